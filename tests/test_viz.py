"""utils.viz: every function returns a Figure with the expected axes and artists."""

from __future__ import annotations

import types

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from utils import viz  # noqa: E402

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def n_images(ax) -> int:
    return len(ax.get_images())


def texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def rects(ax) -> list[Rectangle]:
    return [p for p in ax.patches if isinstance(p, Rectangle)]


# --------------------------------------------------------------------------- show_images


@pytest.mark.parametrize("shape", [(5, 8, 8), (5, 8, 8, 1), (5, 8, 8, 3)])
def test_show_images_batches(shape):
    fig = viz.show_images(RNG.random(shape), titles=list("abcde"), ncols=3)
    assert isinstance(fig, Figure) and len(fig.axes) == 5
    assert all(n_images(ax) == 1 for ax in fig.axes)
    assert [ax.get_title() for ax in fig.axes] == list("abcde")
    shown = fig.axes[0].get_images()[0].get_array()
    assert shown.shape == (8, 8) if shape[-1] != 3 else (8, 8, 3)


def test_show_images_lists_nchw_uint8_and_single():
    fig = viz.show_images([np.zeros((4, 6)), np.ones((10, 10, 3))])
    assert len(fig.axes) == 2
    fig = viz.show_images(RNG.random((3, 3, 7, 7)), layout="NCHW")
    assert len(fig.axes) == 3 and fig.axes[0].get_images()[0].get_array().shape == (7, 7, 3)
    fig = viz.show_images(np.full((2, 5, 5), 10, np.uint8))
    assert fig.axes[0].get_images()[0].get_clim() == (0, 255)
    assert len(viz.show_images(np.zeros((6, 6))).axes) == 1


def test_show_images_errors():
    with pytest.raises(ValueError, match="1, 3 or 4 channels"):
        viz.show_images(np.zeros((2, 8, 8, 2)))
    with pytest.raises(ValueError, match="1, 3 or 4 channels.*NCHW"):
        viz.show_images(np.zeros((2, 3, 8, 8)))  # a PyTorch batch without layout='NCHW'
    with pytest.raises(ValueError, match="titles must have one entry per image"):
        viz.show_images(np.zeros((2, 4, 4)), titles=["a"])
    with pytest.raises(ValueError, match="layout must be one of"):
        viz.show_images(np.zeros((2, 4, 4)), layout="CHW")


# --------------------------------------------------------------------------- show_matrix


def test_show_matrix_writes_every_value():
    values = np.arange(12).reshape(3, 4)
    fig = viz.show_matrix(values)
    ax = fig.axes[0]
    assert len(fig.axes) == 1 and n_images(ax) == 1
    assert texts(ax) == [str(v) for v in range(12)]
    assert texts(viz.show_matrix([[0.5, 1.25]]).axes[0]) == ["0.50", "1.25"]
    assert texts(viz.show_matrix([[1.0, -2.0]]).axes[0]) == ["1", "-2"]
    assert texts(viz.show_matrix([[0.5]], fmt=".1f").axes[0]) == ["0.5"]
    assert len(viz.show_matrix(np.zeros((28, 28), np.uint8), show_values=False).axes[0].texts) == 0


def test_show_matrix_into_given_axes_and_errors():
    fig, ax = plt.subplots()
    assert viz.show_matrix(np.eye(3, dtype=int), ax=ax, title="I") is fig
    assert ax.get_title() == "I"
    with pytest.raises(ValueError, match="values must be 2-D"):
        viz.show_matrix(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="needs whole numbers"):
        viz.show_matrix([[0.5]], fmt="d")


# --------------------------------------------------------------------------- kernels, feature maps


def test_show_kernels_both_layouts_give_the_same_picture():
    w = RNG.normal(size=(4, 2, 3, 3))  # PyTorch (F, C, kh, kw)
    torch_fig = viz.show_kernels(w, layout="FCHW")
    keras_w = np.transpose(w, (2, 3, 1, 0))  # Keras (kh, kw, C, F)
    keras_fig = viz.show_kernels(keras_w, layout="HWCF")
    assert len(torch_fig.axes) == len(keras_fig.axes) == 8
    for a, b in zip(torch_fig.axes, keras_fig.axes, strict=True):
        np.testing.assert_array_equal(a.get_images()[0].get_array(), b.get_images()[0].get_array())
    assert len(viz.show_kernels(RNG.normal(size=(3, 3, 1, 6)), layout="keras").axes) == 6
    assert len(viz.show_kernels(RNG.normal(size=(5, 3, 3, 3)), layout="torch", rgb=True).axes) == 5
    sobel = np.array([[[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]]])
    fig = viz.show_kernels(sobel, layout="FCHW", show_values=True)
    assert texts(fig.axes[0]) == [f"{v:.2f}" for v in sobel.ravel()]


def test_show_kernels_needs_a_layout():
    w = np.zeros((3, 3, 1, 4))
    with pytest.raises(TypeError):
        viz.show_kernels(w)  # no guessing
    with pytest.raises(ValueError, match="layout must be 'FCHW'"):
        viz.show_kernels(w, layout="NCHW")
    with pytest.raises(ValueError, match="kernels must be 4-D"):
        viz.show_kernels(np.zeros((3, 3)), layout="FCHW")
    with pytest.raises(ValueError, match="rgb=True needs 3 input channels"):
        viz.show_kernels(w, layout="HWCF", rgb=True)


@pytest.mark.parametrize(
    "layout, shape",
    [("NCHW", (2, 6, 5, 5)), ("NHWC", (2, 5, 5, 6)), ("CHW", (6, 5, 5)), ("HWC", (5, 5, 6))],
)
def test_show_feature_maps_layouts(layout, shape):
    index = 1 if layout[0] == "N" else 0
    fig = viz.show_feature_maps(RNG.random(shape), layout=layout, index=index)
    assert len(fig.axes) == 6 and all(n_images(ax) == 1 for ax in fig.axes)
    assert fig.axes[5].get_title() == "ch 5"


def test_show_feature_maps_picks_the_right_sample_and_channel():
    maps = RNG.random((2, 3, 4, 4))
    fig = viz.show_feature_maps(maps, layout="NCHW", index=1)
    np.testing.assert_array_equal(fig.axes[2].get_images()[0].get_array(), maps[1, 2])
    assert len(viz.show_feature_maps(RNG.random((40, 3, 3)), layout="CHW", max_maps=10).axes) == 10


def test_show_feature_maps_errors():
    with pytest.raises(ValueError, match="must be 4-D"):
        viz.show_feature_maps(np.zeros((6, 5, 5)), layout="NCHW")
    with pytest.raises(ValueError, match="layout must be one of"):
        viz.show_feature_maps(np.zeros((6, 5, 5)), layout="WHC")
    with pytest.raises(ValueError, match="index must be < the batch size"):
        viz.show_feature_maps(np.zeros((2, 6, 5, 5)), layout="NCHW", index=2)


# --------------------------------------------------------------------------- history


def test_plot_history_keras_style():
    h = {"loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.8, 0.7], "accuracy": [0.5, 0.7, 0.8],
         "val_accuracy": [0.45, 0.6, 0.65]}
    # A dict, or anything with a .history dict like keras.callbacks.History.
    for history in (h, types.SimpleNamespace(history=h)):
        fig = viz.plot_history(history)
        assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
        assert all(len(ax.get_lines()) == 2 for ax in fig.axes)
        np.testing.assert_array_equal(fig.axes[1].get_lines()[1].get_ydata(), h["val_accuracy"])


def test_plot_history_names_the_dashed_curve():
    h = {"loss": [1.0, 0.6], "test_loss": [1.1, 0.8]}
    legend = [t.get_text() for t in viz.plot_history(h).axes[0].get_legend().get_texts()]
    assert legend == ["train", "validation"]
    legend = [t.get_text() for t in viz.plot_history(h, val_label="test").axes[0].get_legend().get_texts()]
    assert legend == ["train", "test"]
    with pytest.raises(TypeError, match="val_label must be a str"):
        viz.plot_history(h, val_label=None)


def test_plot_history_torch_style_and_selection():
    h = {"train_acc": [0.1, 0.2], "train_loss": [3, 2], "val_loss": [3.5, 2.5], "lr": [0.1, 0.1]}
    fig = viz.plot_history(h)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    assert len(fig.axes[1].get_lines()) == 1
    assert [ax.get_title() for ax in viz.plot_history(h, metrics="loss").axes] == ["loss"]
    with pytest.raises(ValueError, match="not in history"):
        viz.plot_history(h, metrics=["iou"])
    with pytest.raises(TypeError, match="history must be"):
        viz.plot_history([1, 2, 3])


# --------------------------------------------------------------------------- boxes and masks


def test_draw_boxes_places_rectangles_in_pixel_edges():
    image = np.zeros((20, 40))
    boxes = np.array([[0.0, 0.0, 1.0, 1.0], [0.25, 0.5, 0.75, 1.0]])
    fig = viz.draw_boxes(image, boxes, labels=["all", 7], colors="red")
    ax = fig.axes[0]
    r = rects(ax)
    assert len(r) == 2 and texts(ax) == ["all", "7"]
    assert (r[0].get_x(), r[0].get_y(), r[0].get_width(), r[0].get_height()) == (-0.5, -0.5, 40, 20)
    assert (r[1].get_x(), r[1].get_y(), r[1].get_width(), r[1].get_height()) == (19.5, 4.5, 20, 10)
    # Predictions on the same axes.
    assert viz.draw_boxes(image, [0.1, 0.1, 0.2, 0.2], ax=ax, colors=["blue"]) is fig
    assert len(rects(ax)) == 3


def test_draw_boxes_errors():
    with pytest.raises(ValueError, match=r"normalised to \[0, 1\]"):
        viz.draw_boxes(np.zeros((8, 8)), [[0, 0, 8, 8]])
    with pytest.raises(ValueError, match="y_max >= y_min"):
        viz.draw_boxes(np.zeros((8, 8)), [[0.5, 0, 0.2, 1]])
    with pytest.raises(ValueError, match="boxes must be"):
        viz.draw_boxes(np.zeros((8, 8)), [[0, 0, 1]])
    with pytest.raises(ValueError, match="labels must have one entry per box"):
        viz.draw_boxes(np.zeros((8, 8)), [[0, 0, 1, 1]], labels=["a", "b"])


def test_overlay_mask_and_show_masks():
    image = RNG.random((16, 16, 1))
    mask = np.zeros((16, 16, 1), np.uint8)
    mask[4:8, 4:8] = 1
    fig = viz.overlay_mask(image, mask, alpha=0.5)
    layers = fig.axes[0].get_images()
    assert len(layers) == 2
    overlay = layers[1].get_array()
    np.testing.assert_array_equal(overlay[..., 3] > 0, mask[..., 0] == 1)
    assert overlay[..., 3].max() == 0.5
    with pytest.raises(ValueError, match="mask must have the image's height and width"):
        viz.overlay_mask(image, np.zeros((8, 8)))
    with pytest.raises(ValueError, match="alpha must be a number in"):
        viz.overlay_mask(image, mask, alpha=2)

    images, masks = RNG.random((5, 16, 16, 1)), np.repeat(mask[None], 5, 0)
    assert len(viz.show_masks(images, masks).axes) == 4 * 2
    fig = viz.show_masks(images, masks, predictions=masks * 0.9, n=3, overlay=True, threshold=0.5)
    assert len(fig.axes) == 3 * 4
    assert [ax.get_title() for ax in fig.axes[:4]] == ["image", "mask", "prediction", "overlay"]
    nchw = viz.show_masks(np.moveaxis(images, -1, 1), np.moveaxis(masks, -1, 1), layout="NCHW",
                          n=None)
    assert len(nchw.axes) == 10
    with pytest.raises(ValueError, match="one mask per image"):
        viz.show_masks(images, masks[:2])


# --------------------------------------------------------------------------- confusion matrix


def test_confusion_matrix_counts():
    y_true = [0, 0, 1, 1, 2, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0, 2]
    expected = [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
    np.testing.assert_array_equal(viz.confusion_matrix(y_true, y_pred), expected)
    scores = np.eye(3)[y_pred] * 0.8 + 0.05
    np.testing.assert_array_equal(viz.confusion_matrix(y_true, scores), expected)
    assert viz.confusion_matrix([0], [0], num_classes=4).shape == (4, 4)
    with pytest.raises(ValueError, match="same number of samples"):
        viz.confusion_matrix([0, 1], [0])
    with pytest.raises(ValueError, match="must be < num_classes"):
        viz.confusion_matrix([0, 5], [0, 1], num_classes=3)


def test_confusion_matrix_plot():
    y_true, y_pred = [0, 0, 1, 1, 2, 2, 2], [0, 1, 1, 1, 2, 0, 2]
    fig = viz.confusion_matrix_plot(y_true, y_pred, class_names=["cat", "dog", "fox"])
    ax = fig.axes[0]
    assert texts(ax) == ["1", "1", "0", "0", "2", "0", "1", "0", "2"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cat", "dog", "fox"]
    assert fig.confusion_matrix.sum() == 7
    norm = viz.confusion_matrix_plot(y_true, y_pred, normalize="true").axes[0]
    assert texts(norm)[:3] == ["0.50", "0.50", "0.00"]
    with pytest.raises(ValueError, match="normalize must be"):
        viz.confusion_matrix_plot(y_true, y_pred, normalize="rows")
    with pytest.raises(ValueError, match="class_names must have 3 entries"):
        viz.confusion_matrix_plot(y_true, y_pred, class_names=["a", "b"])
    # Class 'd' never occurs: an empty row and column.
    wider = viz.confusion_matrix_plot(y_true, y_pred, class_names=list("abcd"))
    assert wider.confusion_matrix.shape == (4, 4) and wider.confusion_matrix[3].sum() == 0


# --------------------------------------------------------------------------- sliding window


def test_show_sliding_window_geometry_and_values():
    image = np.arange(25).reshape(5, 5)
    kernel = np.ones((3, 3), int)
    fig = viz.show_sliding_window(image, 3, stride=2, padding=1, position=(1, 2), kernel=kernel)
    ax_in, ax_out = fig.axes
    assert len(fig.axes) == 2
    # Padded input 7 x 7: 49 numbers, the 24 padding cells are zeros.
    assert len(ax_in.texts) == 49 and texts(ax_in).count("0") == 24 + 1
    window = rects(ax_in)[-1]
    assert (window.get_x(), window.get_y()) == (3.5, 1.5)
    assert (window.get_width(), window.get_height()) == (3, 3)
    cell = rects(ax_out)[-1]
    assert (cell.get_x(), cell.get_y(), cell.get_width(), cell.get_height()) == (1.5, 0.5, 1, 1)
    # Output (5 + 2 - 3) // 2 + 1 = 3 per side; the highlighted cell is the window's sum.
    padded = np.pad(image, 1)
    assert len(ax_out.texts) == 9
    assert texts(ax_out)[1 * 3 + 2] == str(padded[2:5, 4:7].sum())


def test_show_sliding_window_progressive_and_given_output():
    image = np.arange(16).reshape(4, 4)
    fig = viz.show_sliding_window(image, 2, position=(1, 0), output=np.zeros((3, 3)),
                                  progressive=True)
    assert texts(fig.axes[1]) == ["0"] * 4  # cells (0,0) (0,1) (0,2) (1,0) so far
    fig = viz.show_sliding_window(image, (2, 3))
    assert len(fig.axes[1].texts) == 0  # no output given: blank cells


def test_show_sliding_window_draws_into_given_axes():
    image = np.arange(16).reshape(4, 4)
    kernel = np.ones((3, 3), int)
    fig, axes = plt.subplots(2, 4)
    for k, (i, j) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        pair = axes.ravel()[2 * k: 2 * k + 2]
        assert viz.show_sliding_window(image, 3, position=(i, j), kernel=kernel, axes=pair) is fig
    assert len(fig.axes) == 8  # no new figure, no extra axes
    assert texts(axes[1, 3]) == [str(image[i:i + 3, j:j + 3].sum()) for i in (0, 1) for j in (0, 1)]
    window = rects(axes[1, 2])[-1]  # step (1, 1): the window starts at row 1, column 1
    assert (window.get_x(), window.get_y()) == (0.5, 0.5)
    with pytest.raises(ValueError, match="axes must be a pair"):
        viz.show_sliding_window(image, 3, axes=axes[0])


def test_show_sliding_window_errors():
    image = np.zeros((4, 4))
    with pytest.raises(ValueError, match="position .* must be inside the output grid"):
        viz.show_sliding_window(image, 3, position=(2, 0))
    with pytest.raises(ValueError, match="must fit in the padded input"):
        viz.show_sliding_window(image, 5)
    with pytest.raises(ValueError, match="output must have the output grid's shape"):
        viz.show_sliding_window(image, 3, output=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="kernel must have shape"):
        viz.show_sliding_window(image, 3, kernel=np.ones((2, 2)))
    with pytest.raises(ValueError, match="image must be a non-empty 2-D"):
        viz.show_sliding_window(np.zeros((2, 4, 4)), 3)
    with pytest.raises(ValueError, match="stride must be a positive integer"):
        viz.show_sliding_window(image, 3, stride=0)


# --------------------------------------------------------------------------- conv steps


def test_show_conv_steps_frames_taps_and_output_size():
    fig = viz.show_conv_steps(7, 3, stride=2, dilation=1)
    assert fig.output_size == (3, 3) and len(fig.axes) == 4
    assert fig.steps == [(0, 0), (0, 1), (0, 2), (2, 2)]  # first row, then the last cell
    # Frame 2 (output (0, 1)): 9 taps starting at column 2 (stride 2), the window, the output cell.
    taps = rects(fig.axes[1])[:9]
    assert sorted({(t.get_x(), t.get_y()) for t in taps}) == [
        (x - 0.5, y - 0.5) for x in (2, 3, 4) for y in (0, 1, 2)
    ]
    window = rects(fig.axes[1])[9]
    assert (window.get_width(), window.get_height(), window.get_linestyle()) == (3, 3, "-")
    # Input and output drawn as two images: 7 x 7 input, 3 x 3 output; one done cell in frame 2.
    images = fig.axes[1].get_images()
    assert images[0].get_array().shape[:2] == (7, 7) and images[1].get_array().shape[:2] == (3, 3)
    done = np.all(images[1].get_array() != 1.0, axis=-1)
    assert done.sum() == 1 and done[0, 0]


def test_show_conv_steps_dilation_padding_words_and_steps():
    fig = viz.show_conv_steps(7, 3, dilation=2, steps=[4])
    assert fig.output_size == (3, 3) and fig.steps == [(1, 1)]
    taps = rects(fig.axes[0])[:9]
    assert {t.get_x() + 0.5 for t in taps} == {1, 3, 5}  # every other column from 1
    assert rects(fig.axes[0])[9].get_width() == 5 and rects(fig.axes[0])[9].get_linestyle() == "--"
    # 'same' with an even kernel: TensorFlow pads 0 before and 1 after (see shapes.same_padding).
    fig = viz.show_conv_steps(6, 2, padding="same", steps=[(0, 0)])
    assert fig.output_size == (6, 6)
    grid = fig.axes[0].get_images()[0].get_array()
    assert grid.shape[:2] == (7, 7)
    assert not np.allclose(grid[0, 0], grid[6, 6]) and np.allclose(grid[6, 6], grid[0, 6])
    assert viz.show_conv_steps(5, 3, padding="full").output_size == (7, 7)
    assert "padding 'same'" in fig._suptitle.get_text()


def test_show_conv_steps_transposed_inserts_zeros():
    # 2x2 -> 5x5 with kernel 3, stride 2: one zero between pixels, 2 around (d(k-1) - p).
    fig = viz.show_conv_steps(2, 3, stride=2, transposed=True, steps=[0])
    assert fig.output_size == (5, 5)
    grid = fig.axes[0].get_images()[0].get_array()
    assert grid.shape[:2] == (7, 7)
    is_input = np.all(np.isclose(grid, grid[2, 2]), axis=-1)
    assert sorted(zip(*np.nonzero(is_input), strict=True)) == [(2, 2), (2, 4), (4, 2), (4, 4)]
    fig = viz.show_conv_steps(3, 3, stride=2, padding=1, output_padding=1, transposed=True)
    assert fig.output_size == (6, 6)  # shapes.conv_transpose_output_size(3, 3, 2, 1, 1)
    assert "inserting 1 zero(s)" in fig._suptitle.get_text()


def test_show_conv_steps_errors():
    with pytest.raises(ValueError, match="dilated kernel .* larger than the padded input"):
        viz.show_conv_steps(4, 3, dilation=2)
    with pytest.raises(ValueError, match="padding must be a non-negative int or"):
        viz.show_conv_steps(4, 3, padding="half")
    with pytest.raises(ValueError, match="output_padding is only used with transposed"):
        viz.show_conv_steps(4, 3, output_padding=1)
    with pytest.raises(ValueError, match="padding must be an int when transposed"):
        viz.show_conv_steps(4, 3, padding="same", transposed=True)
    with pytest.raises(ValueError, match="would crop its input"):
        viz.show_conv_steps(4, 3, stride=2, padding=3, transposed=True)
    with pytest.raises(ValueError, match="output_padding"):
        viz.show_conv_steps(4, 3, stride=2, output_padding=2, transposed=True)
    with pytest.raises(ValueError, match="outside the output grid"):
        viz.show_conv_steps(5, 3, steps=[(3, 0)])
    with pytest.raises(ValueError, match="stride must be a positive integer"):
        viz.show_conv_steps(5, 3, stride=0)


# --------------------------------------------------------------------------- pooling


def test_show_pooling_windows_outputs_and_max_marks():
    from matplotlib.patches import Circle

    x = np.array([[1, 3, 2, 1], [4, 6, 5, 0], [3, 1, 1, 2], [0, 2, 7, 8]])
    fig = viz.show_pooling(x, 2)
    assert len(fig.axes) == 4  # input, max, avg, sum
    assert fig.outputs["max"].tolist() == [[6, 5], [3, 8]]
    assert fig.outputs["avg"].tolist() == [[3.5, 2.0], [1.5, 4.5]]
    assert fig.outputs["sum"].tolist() == [[14, 8], [6, 18]]
    assert texts(fig.axes[1]) == ["6", "5", "3", "8"]
    assert texts(fig.axes[3]) == ["14", "8", "6", "18"]
    ax_in = fig.axes[0]
    assert len(ax_in.texts) == 16
    # Two rectangles (fill, outline) per window; window (1, 0) covers rows 2-3, columns 0-1.
    outlines = [r for r in rects(ax_in) if not r.get_fill()]
    assert len(outlines) == 4
    assert (outlines[2].get_x(), outlines[2].get_y(), outlines[2].get_width()) == (-0.5, 1.5, 2)
    circles = [p for p in ax_in.patches if isinstance(p, Circle)]
    assert sorted(c.center for c in circles) == [(0, 2), (1, 1), (2, 1), (3, 3)]  # (col, row)


def test_show_pooling_overlapping_windows_single_mode_and_ties():
    x = np.zeros((5, 5))
    fig = viz.show_pooling(x, 3, stride=2, modes="max")
    assert len(fig.axes) == 2 and fig.outputs["max"].shape == (2, 2)
    from matplotlib.patches import Circle

    circles = [p for p in fig.axes[0].patches if isinstance(p, Circle)]
    # All values tie: each window marks its first (top-left) cell, as PyTorch routes the gradient.
    assert sorted(c.center for c in circles) == [(0, 0), (0, 2), (2, 0), (2, 2)]
    fig = viz.show_pooling(x, 2, modes=("avg",))
    assert not [p for p in fig.axes[0].patches if isinstance(p, Circle)]


def test_show_pooling_errors():
    with pytest.raises(ValueError, match="modes must be"):
        viz.show_pooling(np.zeros((4, 4)), 2, modes=("median",))
    with pytest.raises(ValueError, match="must fit in the input"):
        viz.show_pooling(np.zeros((4, 4)), 5)
    with pytest.raises(ValueError, match="x must be a non-empty 2-D"):
        viz.show_pooling(np.zeros((1, 4, 4)), 2)
    with pytest.raises(ValueError, match="stride must be a positive integer"):
        viz.show_pooling(np.zeros((4, 4)), 2, stride=0)
