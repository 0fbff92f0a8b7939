"""Figures for the course: image grids, matrices, kernels, feature maps, curves, boxes, masks.

Every function returns the matplotlib ``Figure`` it drew (functions with an
``ax=`` argument draw into that axes and return its figure). Figures are made
with ``matplotlib.pyplot``, so Jupyter shows them by itself and no
``plt.show()`` is needed; end the line with ``;`` (or assign the result) when
the call is the last line of a cell, or Jupyter shows the figure a second time
as the cell's value. Close figures you no longer need with ``plt.close(fig)``.

Array layouts are stated per function. Images are channels-last
(``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)``) unless a ``layout=`` argument says
otherwise; PyTorch / TensorFlow tensors are accepted and copied to NumPy.
Boxes are ``(y_min, x_min, y_max, x_max)`` normalised to [0, 1] (see
``utils.data``).

At module level this imports NumPy and the standard library only;
matplotlib is imported inside the functions.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._validate import as_tuple, non_negative_int, positive_int

__all__ = [
    "show_images",
    "show_matrix",
    "show_kernels",
    "show_feature_maps",
    "plot_history",
    "draw_boxes",
    "overlay_mask",
    "show_masks",
    "confusion_matrix",
    "confusion_matrix_plot",
    "show_sliding_window",
    "show_conv_steps",
    "show_pooling",
]

_BOX_COLORS = ("lime", "red", "deepskyblue", "orange", "magenta", "yellow", "cyan", "white")


# --------------------------------------------------------------------------- helpers


def _plt():
    import matplotlib.pyplot as plt

    return plt


def _numpy(x, name: str) -> np.ndarray:
    """ndarray from an array-like, a PyTorch tensor (detached, on CPU) or a TF tensor."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor
        x = x.detach().cpu().numpy()
    elif hasattr(x, "numpy") and not isinstance(x, np.ndarray):  # tf.Tensor
        x = x.numpy()
    try:
        arr = np.asarray(x)
    except ValueError as err:
        raise ValueError(f"{name} could not be converted to an array: {err}") from None
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return arr


def _grid(n: int, ncols: int, size: float, title_space: bool):
    plt = _plt()
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    height = size * nrows + (0.25 * nrows if title_space else 0)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, height), squeeze=False)
    axes = axes.ravel()
    for ax in axes[n:]:
        fig.delaxes(ax)
    for ax in axes[:n]:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig, axes[:n]


def _prepare_display(img: np.ndarray, name: str):
    """(H, W) / (H, W, 1) / (H, W, 3|4) -> something imshow draws; (array, is_color)."""
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return img, False
    if img.ndim == 3 and img.shape[2] in (3, 4):
        if np.issubdtype(img.dtype, np.floating):
            img = np.clip(img, 0.0, 1.0)
        elif img.dtype != np.uint8:
            img = np.clip(img, 0, 255).astype(np.uint8)
        return img, True
    raise ValueError(
        f"{name} must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) channels-last, "
        f"got shape {img.shape}"
    )


def _gray_limits(img: np.ndarray, vmin, vmax):
    if vmin is None and vmax is None and img.dtype == np.uint8:
        return 0, 255
    return vmin, vmax


_NCHW = ("NCHW", "NHWC")


def _check_layout(layout, allowed, name="layout"):
    if not isinstance(layout, str) or layout.upper() not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {layout!r}")
    return layout.upper()


def _image_list(images, layout: str, name: str = "images"):
    """A list of (H, W[, C]) channels-last arrays from a batch array or a list."""
    layout = _check_layout(layout, _NCHW)
    if isinstance(images, (list, tuple)):
        out = [_numpy(im, f"{name}[{i}]") for i, im in enumerate(images)]
        if layout == "NCHW":
            out = [np.moveaxis(im, 0, -1) if im.ndim == 3 else im for im in out]
    else:
        arr = _numpy(images, name)
        if arr.ndim == 2:
            out = [arr]
        elif arr.ndim == 3:
            if layout == "NCHW":
                raise ValueError(
                    f"{name} with layout 'NCHW' must be 4-D (N, C, H, W), got shape {arr.shape}"
                )
            out = list(arr)  # (N, H, W)
        elif arr.ndim == 4:
            if layout == "NCHW":
                arr = np.moveaxis(arr, 1, -1)
            if arr.shape[-1] not in (1, 3, 4):
                raise ValueError(
                    f"{name} must have 1, 3 or 4 channels in layout {layout}, got shape "
                    f"{arr.shape}; wrong layout? pass layout='NCHW' for PyTorch batches"
                )
            out = list(arr)
        else:
            raise ValueError(
                f"{name} must be (N, H, W), (N, H, W, C), a list of images, or one (H, W) "
                f"image; got shape {arr.shape}"
            )
    if not out:
        raise ValueError(f"{name} must contain at least one image")
    return out


# --------------------------------------------------------------------------- images


def show_images(
    images,
    titles=None,
    ncols: int = 8,
    cmap: str = "gray",
    *,
    vmin=None,
    vmax=None,
    size: float = 1.6,
    layout: str = "NHWC",
    suptitle: str | None = None,
):
    """A grid of images, one axes per image; returns the Figure.

    ``images``: ``(N, H, W)``, ``(N, H, W, 1)``, ``(N, H, W, 3)`` (channels-last,
    ``layout='NHWC'``, the default) or ``(N, C, H, W)`` with ``layout='NCHW'``;
    a list of such images (sizes may differ); or a single ``(H, W)`` image. (A
    single RGB image is ``[image]``: a 3-D array is read as N grayscale images.)
    uint8 is drawn on 0-255; float grayscale is auto-scaled per image unless
    ``vmin``/``vmax`` are given; float RGB must be in [0, 1] (clipped).
    ``titles``: one string (or number) per image. ``ncols``: images per row.
    """
    ims = _image_list(images, layout)
    ncols = positive_int(ncols, "ncols")
    if titles is not None:
        titles = list(titles)
        if len(titles) != len(ims):
            raise ValueError(
                f"titles must have one entry per image ({len(ims)}), got {len(titles)}"
            )
    fig, axes = _grid(len(ims), ncols, size, titles is not None)
    for i, (ax, im) in enumerate(zip(axes, ims, strict=True)):
        im, color = _prepare_display(im, f"images[{i}]")
        if color:
            ax.imshow(im)
        else:
            lo, hi = _gray_limits(im, vmin, vmax)
            ax.imshow(im, cmap=cmap, vmin=lo, vmax=hi)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def _text_color(value, vmin, vmax, cmap) -> str:
    """Black or white text, whichever reads better on the cell's color."""
    span = (vmax - vmin) or 1.0
    r, g, b, _ = cmap(float(np.clip((value - vmin) / span, 0, 1)))
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


def _auto_fmt(values: np.ndarray, fmt):
    if fmt is not None:
        if not isinstance(fmt, str):
            raise TypeError(f"fmt must be a format string like 'd' or '.2f', got {fmt!r}")
        if fmt.endswith("d") and not np.issubdtype(values.dtype, np.integer):
            if not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
                raise ValueError(f"fmt {fmt!r} needs whole numbers; use fmt='.2f' for these values")
        return fmt
    if np.issubdtype(values.dtype, np.integer):
        return "d"
    finite = values[np.isfinite(values)]
    if finite.size and np.all(finite == np.round(finite)) and np.abs(finite).max() < 1e6:
        return ".0f"
    return ".2f"


def _format(v, fmt: str) -> str:
    if fmt.endswith("d"):
        return format(int(round(float(v))), fmt)
    return format(float(v), fmt)


def _draw_matrix(ax, values, *, fmt, cmap, vmin, vmax, show_values, fontsize, grid=True):
    plt = _plt()
    cm = plt.get_cmap(cmap)
    finite = values[np.isfinite(values)] if np.issubdtype(values.dtype, np.floating) else values
    if vmin is not None:
        lo = vmin
    else:
        lo = float(finite.min()) if finite.size else 0.0
    if vmax is not None:
        hi = vmax
    else:
        hi = float(finite.max()) if finite.size else 1.0
    ax.imshow(values, cmap=cm, vmin=lo, vmax=hi, interpolation="nearest")
    h, w = values.shape
    if grid:
        ax.set_xticks(np.arange(-0.5, w, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, h, 1), minor=True)
        ax.grid(which="minor", color="0.6", linewidth=0.5)
        ax.tick_params(which="minor", length=0)
    ax.set_xticks([])
    ax.set_yticks([])
    if show_values:
        fmt = _auto_fmt(values, fmt)
        texts = [(r, c, v, _format(v, fmt)) for (r, c), v in np.ndenumerate(values)]
        if fontsize is None:
            # Fit the longest number in a cell: cell size from the axes' place in the figure.
            fig_w, fig_h = ax.figure.get_size_inches()
            pos = ax.get_position()
            cell_pt = 72.0 * min(fig_w * pos.width / w, fig_h * pos.height / h)
            chars = max(len(t[3]) for t in texts)
            fontsize = float(np.clip(cell_pt / (0.62 * chars + 0.6), 3.0, 12.0))
        for r, c, v, text in texts:
            ax.text(c, r, text, ha="center", va="center", fontsize=fontsize,
                    color=_text_color(v, lo, hi, cm))
    return lo, hi


def show_matrix(
    values,
    ax=None,
    fmt: str | None = None,
    *,
    cmap: str = "gray",
    vmin=None,
    vmax=None,
    show_values: bool = True,
    fontsize: float | None = None,
    title: str | None = None,
    cell_size: float = 0.45,
):
    """A small 2-D array drawn as a grid of cells with each number written in its cell.

    The "what the computer sees" figure (e.g. a 28 x 28 MNIST digit as 784
    numbers) and the way to show a kernel. ``values``: ``(H, W)`` (or
    ``(H, W, 1)``). ``fmt``: format of each number; default ``'d'`` for
    integers (and whole-number floats, shown without decimals), ``'.2f'`` for
    other floats. Cells are colored by ``cmap`` on ``vmin``..``vmax``
    (default: the array's range); the text is black or white to stay
    readable. Draws into ``ax`` if given; returns the Figure.
    """
    arr = _numpy(values, "values")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim != 2:
        raise ValueError(f"values must be 2-D (H, W), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("values must not be empty")
    created = ax is None
    if created:
        plt = _plt()
        h, w = arr.shape
        fig, ax = plt.subplots(figsize=(max(1.5, cell_size * w), max(1.5, cell_size * h)))
        fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.9 if title else 0.98)
    _draw_matrix(ax, arr, fmt=fmt, cmap=cmap, vmin=vmin, vmax=vmax, show_values=show_values,
                 fontsize=fontsize)
    if title:
        ax.set_title(title)
    return ax.figure


_KERNEL_LAYOUTS = {
    "FCHW": "FCHW", "OIHW": "FCHW", "TORCH": "FCHW", "PYTORCH": "FCHW",
    "HWCF": "HWCF", "HWIO": "HWCF", "KERAS": "HWCF", "TF": "HWCF", "TENSORFLOW": "HWCF",
}


def show_kernels(
    kernels,
    layout: str,
    *,
    rgb: bool = False,
    max_filters: int = 64,
    ncols: int = 8,
    cmap: str = "gray",
    symmetric: bool = True,
    show_values: bool = False,
    size: float = 1.0,
    titles: bool = True,
):
    """Draw convolution kernels (weights); ``layout`` is required, the shape is never guessed.

    ``kernels``: 4-D weights in one of two layouts:

    - ``layout='FCHW'`` (aliases 'OIHW', 'torch'): ``(F, C, kh, kw)``, PyTorch's
      ``conv.weight``;
    - ``layout='HWCF'`` (aliases 'HWIO', 'keras', 'tf'): ``(kh, kw, C, F)``, Keras'
      ``layer.get_weights()[0]`` / ``layer.kernel``.

    One row per filter, one column per input channel (one axes each); with a
    single input channel the F kernels are laid out ``ncols`` per row. With
    ``rgb=True`` and C == 3 each filter is one RGB image (min-max scaled per
    filter, like the first layer of AlexNet). ``symmetric``: gray levels on
    ``-m..m`` with ``m = max |w|`` so 0 is mid-gray. At most ``max_filters``
    filters are drawn. ``show_values`` writes the numbers in the cells.
    """
    if not isinstance(layout, str) or layout.upper() not in _KERNEL_LAYOUTS:
        raise ValueError(
            "layout must be 'FCHW' (PyTorch (F, C, kh, kw)) or 'HWCF' (Keras (kh, kw, C, F)), "
            f"got {layout!r}"
        )
    canonical = _KERNEL_LAYOUTS[layout.upper()]
    w = _numpy(kernels, "kernels").astype(np.float64)
    if w.ndim != 4:
        expected = "(F, C, kh, kw)" if canonical == "FCHW" else "(kh, kw, C, F)"
        raise ValueError(
            f"kernels must be 4-D, {expected} for layout {layout!r}; got shape {w.shape}"
        )
    if canonical == "HWCF":
        w = np.transpose(w, (3, 2, 0, 1))
    max_filters = positive_int(max_filters, "max_filters")
    w = w[:max_filters]
    f, c, kh, kw = w.shape
    if rgb and c != 3:
        raise ValueError(
            f"rgb=True needs 3 input channels, got {c} (shape as (F, C, kh, kw): {w.shape})"
        )
    m = float(np.abs(w).max()) or 1.0
    lo, hi = (-m, m) if symmetric else (float(w.min()), float(w.max()))
    plt = _plt()
    if rgb:
        fig, axes = _grid(f, positive_int(ncols, "ncols"), size, titles)
        for i, ax in enumerate(axes):
            k = np.moveaxis(w[i], 0, -1)
            span = k.max() - k.min()
            k = (k - k.min()) / span if span > 0 else np.zeros_like(k)
            ax.imshow(k, interpolation="nearest")
            if titles:
                ax.set_title(f"filter {i}", fontsize=8)
    elif c == 1:
        fig, axes = _grid(f, positive_int(ncols, "ncols"), size, titles)
        for i, ax in enumerate(axes):
            _draw_matrix(ax, w[i, 0], fmt=".2f", cmap=cmap, vmin=lo, vmax=hi,
                         show_values=show_values, fontsize=None, grid=show_values)
            if titles:
                ax.set_title(f"filter {i}", fontsize=8)
    else:
        fig, axs = plt.subplots(f, c, figsize=(size * c, size * f), squeeze=False)
        for i in range(f):
            for j in range(c):
                ax = axs[i, j]
                _draw_matrix(ax, w[i, j], fmt=".2f", cmap=cmap, vmin=lo, vmax=hi,
                             show_values=show_values, fontsize=None, grid=show_values)
                if titles and i == 0:
                    ax.set_title(f"in {j}", fontsize=8)
                if titles and j == 0:
                    ax.set_ylabel(f"filter {i}", fontsize=8)
    fig.tight_layout()
    return fig


_MAP_LAYOUTS = ("NCHW", "NHWC", "CHW", "HWC")


def show_feature_maps(
    maps,
    layout: str,
    *,
    index: int = 0,
    max_maps: int = 32,
    ncols: int = 8,
    cmap: str = "viridis",
    size: float = 1.4,
    shared_scale: bool = False,
    suptitle: str | None = None,
):
    """The channels of a convolution layer's output, one small image each.

    ``maps`` in ``layout`` (required): ``'NCHW'`` (PyTorch batch), ``'NHWC'``
    (Keras batch), ``'CHW'`` or ``'HWC'`` (one sample). For a batch, sample
    ``index`` is shown. At most ``max_maps`` channels, ``ncols`` per row, each
    auto-scaled (or on one common scale with ``shared_scale=True``); titles
    give the channel number. Returns the Figure (one axes per channel shown).
    """
    layout = _check_layout(layout, _MAP_LAYOUTS)
    arr = _numpy(maps, "maps")
    if arr.ndim != len(layout):
        raise ValueError(
            f"maps with layout {layout!r} must be {len(layout)}-D, got shape {arr.shape}"
        )
    if layout.startswith("N"):
        index = non_negative_int(index, "index")
        if index >= arr.shape[0]:
            raise ValueError(f"index must be < the batch size {arr.shape[0]}, got {index}")
        arr, layout = arr[index], layout[1:]
    if layout == "HWC":
        arr = np.moveaxis(arr, -1, 0)
    max_maps = positive_int(max_maps, "max_maps")
    arr = arr[:max_maps].astype(np.float64)
    lo, hi = (float(arr.min()), float(arr.max())) if shared_scale else (None, None)
    fig, axes = _grid(len(arr), positive_int(ncols, "ncols"), size, True)
    for i, ax in enumerate(axes):
        ax.imshow(arr[i], cmap=cmap, vmin=lo, vmax=hi)
        ax.set_title(f"ch {i}", fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- training curves


def _metric_key(key: str):
    """'val_accuracy' -> ('accuracy', 'val'); 'train_acc' -> ('accuracy', 'train')."""
    split = "train"
    for prefix, s in (("val_", "val"), ("valid_", "val"), ("validation_", "val"), ("test_", "val"),
                      ("train_", "train"), ("training_", "train")):
        if key.startswith(prefix):
            key, split = key[len(prefix):], s
            break
    if key in ("acc", "sparse_categorical_accuracy", "categorical_accuracy", "binary_accuracy"):
        key = "accuracy"
    return key, split


def plot_history(history, metrics=None, *, size: float = 4.0, title: str | None = None,
                 val_label: str = "validation"):
    """Training curves: one panel per metric (loss, then accuracy, then others), train vs val.

    ``history``: a Keras ``History`` (what ``model.fit`` returns), its
    ``.history`` dict, or any dict of per-epoch lists, e.g. from a PyTorch
    loop: ``{'loss': [...], 'val_loss': [...], 'accuracy': [...],
    'val_accuracy': [...]}``. Keys with a ``val_`` / ``test_`` prefix are the
    validation curve (dashed), ``train_`` or no prefix the training curve;
    ``acc`` and ``accuracy`` are one metric. ``metrics``: the metric names to
    draw (default: all; ``'lr'``/``'learning_rate'`` are skipped unless asked).
    ``val_label``: the legend entry of the dashed curve, e.g. ``'test'`` when
    the held-out test split was passed as Keras' ``validation_data``.
    Returns the Figure (one axes per metric).
    """
    if not isinstance(val_label, str):
        raise TypeError(f"val_label must be a str, got {type(val_label).__name__}")
    hist = getattr(history, "history", history)
    if not isinstance(hist, dict):
        raise TypeError(
            f"history must be a Keras History or a dict of lists, got {type(history).__name__}"
        )
    if not hist:
        raise ValueError("history is empty (no metrics recorded)")
    groups: dict[str, dict[str, np.ndarray]] = {}
    for key, series in hist.items():
        vals = _numpy(series, f"history[{key!r}]").astype(np.float64).ravel()
        name, split = _metric_key(str(key))
        groups.setdefault(name, {})[split] = vals
    if metrics is None:
        names = [n for n in groups if n not in ("lr", "learning_rate")]
    else:
        names = [metrics] if isinstance(metrics, str) else list(metrics)
        names = [_metric_key(n)[0] for n in names]
        missing = [n for n in names if n not in groups]
        if missing:
            raise ValueError(f"metrics {missing} not in history (it has {sorted(groups)})")
    order = {"loss": 0, "accuracy": 1}
    names = sorted(dict.fromkeys(names), key=lambda n: (order.get(n, 2), list(groups).index(n)))
    if not names:
        raise ValueError("history has no metric to plot")
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(names), figsize=(size * len(names), size * 0.75), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for split, style in (("train", "-"), ("val", "--")):
            if split in groups[name]:
                y = groups[name][split]
                ax.plot(np.arange(1, len(y) + 1), y, style, marker="o" if len(y) <= 30 else None,
                        markersize=3, label="train" if split == "train" else val_label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(name)
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- boxes and masks


def _single_image(image, name="image"):
    img = _numpy(image, name)
    img, color = _prepare_display(img, name)
    return img, color


def draw_boxes(
    image,
    boxes,
    labels=None,
    colors=None,
    *,
    ax=None,
    linewidth: float = 2.0,
    cmap: str = "gray",
    title: str | None = None,
    size: float = 4.0,
):
    """An image with rectangles drawn on it; returns the Figure.

    ``image``: ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` channels-last.
    ``boxes``: ``(K, 4)`` (or one ``(4,)``) as ``(y_min, x_min, y_max, x_max)``
    normalised to [0, 1] by the image height and width, pixel-edge convention
    (``y_max = 1`` is the bottom edge of the last row). ``labels``: one text
    (or number, e.g. a class or score) per box, written at its top-left.
    ``colors``: one color for all boxes or one per box (default: a cycle).
    Pass ``ax=`` to draw more boxes (e.g. predictions) onto an earlier figure.
    """
    img, color = _single_image(image)
    b = _numpy(boxes, "boxes").astype(np.float64)
    if b.ndim == 1:
        b = b[None]
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(
            f"boxes must be (K, 4) as (y_min, x_min, y_max, x_max), got shape {b.shape}"
        )
    if b.size and (b.min() < -1e-6 or b.max() > 1 + 1e-6):
        raise ValueError(
            "boxes must be normalised to [0, 1] (divide pixel coordinates by the image "
            f"height/width), got values in [{b.min():.3g}, {b.max():.3g}]"
        )
    if np.any(b[:, 2] < b[:, 0]) or np.any(b[:, 3] < b[:, 1]):
        raise ValueError(
            "boxes must have y_max >= y_min and x_max >= x_min "
            "(order: y_min, x_min, y_max, x_max)"
        )
    if labels is not None:
        labels = list(labels) if not isinstance(labels, str) else [labels]
        if len(labels) != len(b):
            raise ValueError(f"labels must have one entry per box ({len(b)}), got {len(labels)}")
    if colors is None:
        colors = [_BOX_COLORS[i % len(_BOX_COLORS)] for i in range(len(b))]
    elif isinstance(colors, str) or (isinstance(colors, tuple) and len(colors) in (3, 4)
                                     and all(isinstance(v, numbers.Real) for v in colors)):
        colors = [colors] * len(b)
    else:
        colors = list(colors)
        if len(colors) != len(b):
            raise ValueError(
                f"colors must be one color or one per box ({len(b)}), got {len(colors)}"
            )
    from matplotlib.patches import Rectangle

    if ax is None:
        fig, ax = _plt().subplots(figsize=(size, size * img.shape[0] / img.shape[1]))
        if color:
            ax.imshow(img)
        else:
            lo, hi = _gray_limits(img, None, None)
            ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi)
        ax.set_xticks([])
        ax.set_yticks([])
    h, w = img.shape[:2]
    for k, (y0, x0, y1, x1) in enumerate(b):
        ax.add_patch(Rectangle((x0 * w - 0.5, y0 * h - 0.5), (x1 - x0) * w, (y1 - y0) * h,
                               fill=False, edgecolor=colors[k], linewidth=linewidth))
        if labels is not None:
            ax.text(x0 * w - 0.5, y0 * h - 0.5, str(labels[k]), color="black", fontsize=8,
                    va="bottom", bbox=dict(facecolor=colors[k], edgecolor="none", pad=1, alpha=0.8))
    if title:
        ax.set_title(title)
    return ax.figure


def _mask2d(mask, name="mask"):
    m = _numpy(mask, name)
    if m.ndim == 3 and m.shape[-1] == 1:
        m = m[:, :, 0]
    if m.ndim != 2:
        raise ValueError(f"{name} must be (H, W) or (H, W, 1), got shape {m.shape}")
    return m


def _overlay(ax, img, color_img, mask, alpha, color, threshold, cmap):
    from matplotlib.colors import to_rgba

    if color_img:
        ax.imshow(img)
    else:
        lo, hi = _gray_limits(img, None, None)
        ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi)
    rgba = np.zeros(mask.shape + (4,))
    rgba[..., :3] = to_rgba(color)[:3]
    rgba[..., 3] = np.where(mask > threshold, alpha, 0.0)
    ax.imshow(rgba)
    ax.set_xticks([])
    ax.set_yticks([])


def overlay_mask(image, mask, alpha: float = 0.4, *, color="red", threshold: float = 0.5, ax=None,
                 cmap: str = "gray", title: str | None = None, size: float = 4.0):
    """An image with a segmentation mask painted over it; returns the Figure.

    ``image``: ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``; ``mask``: ``(H, W)`` or
    ``(H, W, 1)``, binary or probabilities -- pixels ``> threshold`` are painted
    in ``color`` with opacity ``alpha`` (0 = invisible, 1 = opaque).
    """
    img, color_img = _single_image(image)
    m = _mask2d(mask)
    if m.shape != img.shape[:2]:
        raise ValueError(
            f"mask must have the image's height and width {img.shape[:2]}, got {m.shape}"
        )
    if not (isinstance(alpha, numbers.Real) and 0.0 <= alpha <= 1.0):
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    if ax is None:
        fig, ax = _plt().subplots(figsize=(size, size * img.shape[0] / img.shape[1]))
    _overlay(ax, img, color_img, m, alpha, color, threshold, cmap)
    if title:
        ax.set_title(title)
    return ax.figure


def show_masks(
    images,
    masks,
    predictions=None,
    *,
    n: int | None = 4,
    layout: str = "NHWC",
    threshold: float | None = None,
    overlay: bool = False,
    size: float = 2.2,
    cmap: str = "gray",
):
    """Rows of image | true mask | predicted mask (if given) | overlay (if asked).

    ``images``, ``masks``, ``predictions``: batches ``(N, H, W)``, ``(N, H, W, 1)``
    (or ``(N, 1, H, W)`` with ``layout='NCHW'``); images may also be RGB.
    Predictions may be probabilities; ``threshold`` (e.g. 0.5) binarises them
    for display (default: drawn as they are, on 0..1). ``n``: how many rows
    (default 4; None = all). ``overlay=True`` adds a column with the predicted
    (else the true) mask over the image. Returns the Figure with
    ``rows x columns`` axes.
    """
    ims = _image_list(images, layout, "images")
    ms = _image_list(masks, layout, "masks")
    if len(ms) != len(ims):
        raise ValueError(f"masks must have one mask per image ({len(ims)}), got {len(ms)}")
    ps = None
    if predictions is not None:
        ps = _image_list(predictions, layout, "predictions")
        if len(ps) != len(ims):
            raise ValueError(
                f"predictions must have one entry per image ({len(ims)}), got {len(ps)}"
            )
    rows = len(ims) if n is None else min(positive_int(n, "n"), len(ims))
    cols = ["image", "mask"]
    cols += (["prediction"] if ps is not None else []) + (["overlay"] if overlay else [])
    plt = _plt()
    fig, axes = plt.subplots(rows, len(cols), figsize=(size * len(cols), size * rows),
                             squeeze=False)
    for r in range(rows):
        img, color = _prepare_display(ims[r], f"images[{r}]")
        m = _mask2d(ms[r], f"masks[{r}]")
        if m.shape != img.shape[:2]:
            raise ValueError(
                f"masks[{r}] must have the image's height and width {img.shape[:2]}, "
                f"got {m.shape}"
            )
        p = None if ps is None else _mask2d(ps[r], f"predictions[{r}]")
        if p is not None and threshold is not None:
            p = (p > threshold).astype(np.uint8)
        for c, kind in enumerate(cols):
            ax = axes[r, c]
            if kind == "image":
                if color:
                    ax.imshow(img)
                else:
                    lo, hi = _gray_limits(img, None, None)
                    ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi)
            elif kind == "mask":
                ax.imshow(m, cmap="gray", vmin=0, vmax=1)
            elif kind == "prediction":
                ax.imshow(p, cmap="gray", vmin=0, vmax=1)
            else:
                _overlay(ax, img, color, p if p is not None else m, 0.4, "red", 0.5, cmap)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(kind)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- confusion matrix


def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """Counts ``C[i, j]`` = number of samples of true class ``i`` predicted as ``j`` (NumPy only).

    ``y_true``: ``(N,)`` integer labels 0..K-1. ``y_pred``: ``(N,)`` labels, or
    ``(N, K)`` scores/probabilities (argmax is taken). ``num_classes``: K
    (default: ``max label + 1``). Returns ``(K, K)`` int64, rows = true class.
    """
    t = _numpy(y_true, "y_true")
    p = _numpy(y_pred, "y_pred")
    if p.ndim == 2:
        p = p.argmax(axis=1)
    t, p = t.ravel(), p.ravel()
    if t.shape != p.shape:
        raise ValueError(
            "y_true and y_pred must have the same number of samples, "
            f"got {t.shape[0]} and {p.shape[0]}"
        )
    for arr, name in ((t, "y_true"), (p, "y_pred")):
        if arr.size and (not np.all(arr == np.round(arr)) or arr.min() < 0):
            raise ValueError(f"{name} must hold non-negative integer class labels")
    t, p = t.astype(np.int64), p.astype(np.int64)
    if num_classes is None:
        k = int(max(t.max(initial=-1), p.max(initial=-1)) + 1)
    else:
        k = positive_int(num_classes, "num_classes")
    if t.size and max(t.max(), p.max()) >= k:
        raise ValueError(f"labels must be < num_classes ({k}), got {max(t.max(), p.max())}")
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def confusion_matrix_plot(
    y_true,
    y_pred,
    class_names=None,
    *,
    normalize: str | None = None,
    num_classes: int | None = None,
    cmap: str = "Blues",
    ax=None,
    show_values: bool = True,
    title: str | None = "confusion matrix",
    size: float = 5.0,
):
    """The confusion matrix as a colored grid with counts; rows = true class, columns = predicted.

    ``y_true``, ``y_pred``: as in ``confusion_matrix`` (labels, or scores for
    ``y_pred``). ``normalize``: None (counts), ``'true'`` (each row sums to 1:
    recall per class), ``'pred'`` (columns sum to 1: precision) or ``'all'``.
    ``class_names``: tick labels. The matrix is stored on the figure as
    ``fig.confusion_matrix``. Returns the Figure.
    """
    cm = confusion_matrix(y_true, y_pred, num_classes)
    if class_names is not None:
        class_names = [str(c) for c in class_names]
        if num_classes is None and len(class_names) > cm.shape[0]:  # classes never seen: empty rows
            cm = confusion_matrix(y_true, y_pred, len(class_names))
    k = cm.shape[0]
    if normalize not in (None, "true", "pred", "all"):
        raise ValueError(f"normalize must be None, 'true', 'pred' or 'all', got {normalize!r}")
    values = cm.astype(np.float64)
    if normalize in ("true", "pred"):
        totals = values.sum(1 if normalize == "true" else 0, keepdims=True)
        values = np.divide(values, totals, out=np.zeros_like(values), where=totals > 0)
    elif normalize == "all":
        values = values / max(values.sum(), 1)
    else:
        values = cm
    if class_names is not None:
        if len(class_names) != k:
            raise ValueError(
                f"class_names must have {k} entries (one per class), got {len(class_names)}"
            )
    if ax is None:
        fig, ax = _plt().subplots(figsize=(size, size))
    _draw_matrix(ax, values, fmt=None if normalize is None else ".2f", cmap=cmap, vmin=0, vmax=None,
                 show_values=show_values, fontsize=None if k > 10 else 9, grid=False)
    names = class_names if class_names is not None else [str(i) for i in range(k)]
    ax.set_xticks(range(k))
    ax.set_xticklabels(names, rotation=45 if max(len(s) for s in names) > 2 else 0)
    ax.set_yticks(range(k))
    ax.set_yticklabels(names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    fig = ax.figure
    fig.confusion_matrix = cm
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- conv arithmetic


def show_sliding_window(
    image,
    kernel_size,
    stride=1,
    padding=0,
    position=(0, 0),
    output=None,
    *,
    kernel=None,
    progressive: bool = False,
    show_values: bool = True,
    fmt: str | None = None,
    cell_size: float = 0.45,
    color: str = "tab:red",
    axes=None,
):
    """One step of a convolution: the input grid with the current window, and the output grid.

    Left: the input ``image`` ``(H, W)`` (small, e.g. 5 x 5), surrounded by
    ``padding`` rows/columns of zero cells shaded gray, with the
    ``kernel_size`` window that produces output cell ``position = (row, col)``
    outlined. Right: the output grid of size
    ``((H + 2p - k) // s + 1, (W + 2p - k) // s + 1)`` with that cell outlined.
    ``kernel_size``, ``stride``, ``padding``: an int or a pair (rows, cols).

    Output values: ``output`` (an array of the output's shape) if given, else
    computed from ``kernel`` (cross-correlation, as in CNN layers) if given,
    else the cells are left blank. ``progressive=True`` fills only the cells up
    to ``position`` (row-major order): draw every position to make an
    animation. ``axes``: a pair of matplotlib axes ``(input, output)`` to draw
    into (e.g. one row of ``plt.subplots(2, 4)``, to put several steps in one
    figure); by default a new figure. Returns the Figure (2 axes: input,
    output; with ``axes`` given, the figure that holds them).
    """
    from matplotlib.patches import Rectangle

    img = _numpy(image, "image")
    if not np.issubdtype(img.dtype, np.integer):
        img = img.astype(np.float64)
    if img.ndim != 2 or img.size == 0:
        raise ValueError(f"image must be a non-empty 2-D (H, W) array, got shape {img.shape}")
    kh, kw = as_tuple(kernel_size, 2, "kernel_size")
    sh, sw = as_tuple(stride, 2, "stride")
    ph, pw = as_tuple(padding, 2, "padding", check=non_negative_int)
    H, W = img.shape
    Hp, Wp = H + 2 * ph, W + 2 * pw
    if kh > Hp or kw > Wp:
        raise ValueError(f"kernel_size {(kh, kw)} must fit in the padded input {(Hp, Wp)}")
    oh, ow = (Hp - kh) // sh + 1, (Wp - kw) // sw + 1
    r, c = as_tuple(position, 2, "position", check=non_negative_int)
    if r >= oh or c >= ow:
        raise ValueError(f"position {(r, c)} must be inside the output grid of shape {(oh, ow)}")
    padded = np.zeros((Hp, Wp), dtype=img.dtype)
    padded[ph : ph + H, pw : pw + W] = img
    if output is None and kernel is not None:
        k = _numpy(kernel, "kernel").astype(np.float64)
        if k.shape != (kh, kw):
            raise ValueError(f"kernel must have shape kernel_size {(kh, kw)}, got {k.shape}")
        output = np.array([
            [np.sum(padded[i * sh : i * sh + kh, j * sw : j * sw + kw] * k) for j in range(ow)]
            for i in range(oh)
        ])
        if np.issubdtype(img.dtype, np.integer) and np.all(k == np.round(k)):
            output = output.astype(np.int64)
    if output is not None:
        output = _numpy(output, "output")
        if output.shape != (oh, ow):
            raise ValueError(
                f"output must have the output grid's shape {(oh, ow)}, got {output.shape}"
            )

    plt = _plt()
    if axes is None:
        fig, (ax_in, ax_out) = plt.subplots(
            1, 2, figsize=(cell_size * (Wp + ow) + 1.5, cell_size * max(Hp, oh) + 0.8),
            gridspec_kw={"width_ratios": [Wp, max(ow, 1)]},
        )
    else:
        pair = list(np.ravel(np.asarray(axes, dtype=object)))
        if len(pair) != 2:
            raise ValueError(
                f"axes must be a pair of matplotlib axes (input, output), got {len(pair)}"
            )
        ax_in, ax_out = pair
        fig = ax_in.figure
    lo, hi = float(img.min()), float(img.max())
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    # Input: values in the interior, padding cells shaded.
    interior = np.pad(np.ones((H, W), bool), ((ph, ph), (pw, pw)))
    shown = np.where(interior, padded, np.nan).astype(np.float64)
    cm = plt.get_cmap("Greys").with_extremes(bad="0.85")
    ax_in.imshow(np.ma.masked_invalid(shown), cmap=cm, vmin=lo - 0.4 * (hi - lo),
                 vmax=hi + 0.6 * (hi - lo), interpolation="nearest")
    fmt_in = _auto_fmt(img, fmt)
    for (i, j), v in np.ndenumerate(padded):
        is_pad = not (ph <= i < ph + H and pw <= j < pw + W)
        if show_values:
            ax_in.text(j, i, _format(v, fmt_in), ha="center", va="center", fontsize=9,
                       color="0.45" if is_pad else "black")
    corner = (c * sw - 0.5, r * sh - 0.5)
    ax_in.add_patch(Rectangle(corner, kw, kh, fill=True, facecolor=color, alpha=0.15))
    ax_in.add_patch(Rectangle(corner, kw, kh, fill=False, edgecolor=color, linewidth=2.5))
    pad_text = f", padding {ph if ph == pw else (ph, pw)}" if ph or pw else ""
    ax_in.set_title(f"input {H}x{W}{pad_text}\nkernel {kh}x{kw}, "
                    f"stride {sh if sh == sw else (sh, sw)}", fontsize=10)
    # Output grid.
    filled = np.ones((oh, ow), bool)
    if progressive:
        filled = (np.arange(oh * ow).reshape(oh, ow) <= r * ow + c)
    ax_out.imshow(np.where(filled, 0.1, 0.0), cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    if output is not None and show_values:
        fmt_out = _auto_fmt(output, fmt)
        for (i, j), v in np.ndenumerate(output):
            if filled[i, j]:
                ax_out.text(j, i, _format(v, fmt_out), ha="center", va="center", fontsize=9)
    ax_out.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=True, facecolor=color, alpha=0.15))
    ax_out.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor=color,
                               linewidth=2.5))
    ax_out.set_title(f"output {oh}x{ow}\ncell {(r, c)}", fontsize=10)
    for ax, (h, w) in ((ax_in, (Hp, Wp)), (ax_out, (oh, ow))):
        ax.set_xticks(np.arange(-0.5, w, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, h, 1), minor=True)
        ax.grid(which="minor", color="0.5", linewidth=0.8)
        ax.tick_params(which="both", length=0)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
    if axes is None:
        fig.tight_layout()
    return fig


_STEP_COLORS = {"input": "#9ecae1", "pad": "#e3e3e3", "done": "#a1d99b", "todo": "#ffffff"}


def _conv_steps_axis(n, k, s, padding, d, transposed, op, axis):
    """One axis of show_conv_steps: (grid size, input cells, output size, window step, pads)."""
    from .shapes import conv_transpose_output_size, same_padding

    k_eff = d * (k - 1) + 1
    if transposed:
        if isinstance(padding, str):
            raise ValueError("padding must be an int when transposed=True (PyTorch's convention)")
        p = non_negative_int(padding, "padding")
        o = conv_transpose_output_size(n, k, s, p, op, d)  # checks output_padding
        q = d * (k - 1) - p
        if q < 0:
            raise ValueError(
                f"padding ({p}) larger than dilation*(kernel_size-1) ({d * (k - 1)}) along {axis}: "
                "the transposed convolution would crop its input; this drawing needs "
                "padding <= dilation*(kernel_size-1)"
            )
        grid = s * (n - 1) + 1 + 2 * q + op
        return grid, q + s * np.arange(n), o, 1, (q, q + op)
    if isinstance(padding, str):
        word = padding.lower()
        if word == "valid":
            before = after = 0
        elif word == "same":
            before, after = same_padding(n, k, s, d)
        elif word == "full":
            before = after = d * (k - 1)
        else:
            raise ValueError(
                f"padding must be a non-negative int or 'valid', 'same', 'full', got {padding!r}"
            )
    else:
        before = after = non_negative_int(padding, "padding")
    grid = n + before + after
    if k_eff > grid:
        raise ValueError(
            f"the dilated kernel ({k_eff}) is larger than the padded input ({grid}) along {axis}: "
            "need dilation*(kernel_size-1)+1 <= n + 2*padding"
        )
    return grid, before + np.arange(n), (grid - k_eff) // s + 1, s, (before, after)


def show_conv_steps(
    n,
    kernel_size,
    stride=1,
    padding=0,
    dilation=1,
    *,
    transposed: bool = False,
    output_padding=0,
    steps=None,
    max_steps: int = 4,
    width: float = 10.0,
    color: str = "tab:red",
):
    """A row of frames of a kernel sliding over its input: an animation printed on paper.

    Each frame shows the (padded) input grid on the left, with the kernel's
    taps filled in ``color`` and the window's outline (dashed when dilated),
    and the output grid on the right: the cell being computed in ``color``,
    the cells already computed in green. Input cells are blue, padding gray.

    ``n``: input size, an int (square) or ``(H, W)``. ``kernel_size``,
    ``stride``, ``dilation``: an int or a pair. ``padding``: a non-negative
    int or pair (both sides, as PyTorch) or ``'valid'``, ``'same'``
    (TensorFlow's: the odd extra pixel goes bottom/right, see
    ``utils.shapes.same_padding``) or ``'full'`` (``d(k-1)`` on each side).

    ``transposed=True`` draws a transposed convolution (PyTorch's int
    ``padding`` and ``output_padding``) as the stride-1 convolution that
    computes it (Dumoulin & Visin 2016, section 4): ``stride - 1`` zeros
    between the input pixels, ``d(k-1) - padding`` zeros around them (plus
    ``output_padding`` at the bottom/right), then a stride-1 window.

    ``steps``: the output cells to draw, as ``(row, col)`` pairs or row-major
    indices; default: the first row (up to ``max_steps - 1`` cells) and the
    last cell. ``width``: figure width in inches. Returns the Figure (one
    axes per frame) with ``fig.output_size = (oh, ow)`` and ``fig.steps``.
    """
    from matplotlib.colors import to_rgb, to_rgba
    from matplotlib.patches import Patch, Rectangle

    transposed = bool(transposed)
    ns = as_tuple(n, 2, "n")
    ks = as_tuple(kernel_size, 2, "kernel_size")
    ss = as_tuple(stride, 2, "stride")
    ds = as_tuple(dilation, 2, "dilation")
    ops = as_tuple(output_padding, 2, "output_padding", check=non_negative_int)
    if not transposed and any(ops):
        raise ValueError("output_padding is only used with transposed=True")
    pads = (padding, padding) if isinstance(padding, str) else as_tuple(
        padding, 2, "padding", check=non_negative_int)
    max_steps = positive_int(max_steps, "max_steps")
    geo = [_conv_steps_axis(*args) for args in zip(ns, ks, ss, pads, ds, (transposed,) * 2, ops,
                                                    ("rows", "columns"), strict=True)]
    (hp, rows_in, oh, sh, pad_h), (wp, cols_in, ow, sw, pad_w) = geo
    (kh, kw), (dh, dw) = ks, ds

    # Which output cells to draw.
    total = oh * ow
    if steps is None:
        if total <= max_steps:
            flat = list(range(total))
        else:
            flat = list(range(min(ow, max_steps - 1))) + [total - 1]
            flat = list(dict.fromkeys(flat))
        positions = [divmod(i, ow) for i in flat]
    else:
        positions = []
        for step in steps:
            if isinstance(step, (tuple, list)):
                r, c = as_tuple(step, 2, "steps", check=non_negative_int)
            else:
                r, c = divmod(non_negative_int(step, "steps"), ow)
            if r >= oh or c >= ow:
                raise ValueError(f"step {step!r} is outside the output grid of shape {(oh, ow)}")
            positions.append((r, c))
        if not positions:
            raise ValueError("steps must name at least one output cell")

    plt = _plt()
    gap = 1.6
    span_w, span_h = wp + gap + ow, max(hp, oh)
    frames = len(positions)
    cell = min(0.32, width / (frames * (span_w + 0.8)))
    figsize = (cell * (span_w + 0.8) * frames, cell * span_h + 1.2)
    fig, axes = plt.subplots(1, frames, figsize=figsize, squeeze=False, layout="constrained")
    axes = axes[0]
    base = np.empty((hp, wp, 3))
    base[:] = to_rgb(_STEP_COLORS["pad"])
    base[np.ix_(rows_in, cols_in)] = to_rgb(_STEP_COLORS["input"])
    x0, y0 = wp + gap, (span_h - oh) / 2
    order = np.arange(total).reshape(oh, ow)
    face = to_rgba(color, 0.55)
    for ax, (r, c) in zip(axes, positions, strict=True):
        ax.imshow(base, extent=(-0.5, wp - 0.5, hp - 0.5, -0.5), interpolation="nearest")
        out = np.empty((oh, ow, 3))
        out[:] = to_rgb(_STEP_COLORS["todo"])
        out[order < r * ow + c] = to_rgb(_STEP_COLORS["done"])
        ax.imshow(out, extent=(x0 - 0.5, x0 + ow - 0.5, y0 + oh - 0.5, y0 - 0.5),
                  interpolation="nearest")
        for left, top, h, w in ((0, 0, hp, wp), (x0, y0, oh, ow)):
            xs, ys = left + np.arange(w + 1) - 0.5, top + np.arange(h + 1) - 0.5
            ax.vlines(xs, top - 0.5, top + h - 0.5, color="0.45", lw=0.6)
            ax.hlines(ys, left - 0.5, left + w - 0.5, color="0.45", lw=0.6)
        top, left = r * sh, c * sw
        for i in range(kh):
            for j in range(kw):
                ax.add_patch(Rectangle((left + j * dw - 0.5, top + i * dh - 0.5), 1, 1,
                                       facecolor=face, edgecolor=color, linewidth=1.0))
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), dw * (kw - 1) + 1, dh * (kh - 1) + 1,
                               fill=False, edgecolor=color, linewidth=2.0,
                               linestyle="--" if max(dh, dw) > 1 else "-"))
        ax.add_patch(Rectangle((x0 + c - 0.5, y0 + r - 0.5), 1, 1, facecolor=face,
                               edgecolor=color, linewidth=2.0))
        ax.annotate("", xy=(x0 - 0.8, span_h / 2 - 0.5), xytext=(wp - 0.2, span_h / 2 - 0.5),
                    arrowprops={"arrowstyle": "->", "color": "0.3"})
        ax.set_title(f"output ({r}, {c})", fontsize=9)
        ax.set_xlim(-0.7, x0 + ow - 0.3)
        ax.set_ylim(span_h - 0.3, -0.7)
        ax.set_aspect("equal")
        ax.axis("off")

    def pair(a, b):
        return f"{a}" if a == b else f"({a}, {b})"

    def size(a, b):
        return f"{a}x{b}"

    if transposed:
        (q_top, _), (q_left, _) = pad_h, pad_w
        title = (f"transposed: input {size(*ns)}, kernel {size(kh, kw)}, stride {pair(*ss)}, "
                 f"padding {pair(*pads)}" + (f", output_padding {pair(*ops)}" if any(ops) else "")
                 + (f", dilation {pair(dh, dw)}" if max(ds) > 1 else "")
                 + f" -> output {size(oh, ow)}\n= stride-1 convolution after inserting "
                 f"{pair(ss[0] - 1, ss[1] - 1)} zero(s) between pixels and "
                 f"{pair(q_top, q_left)} around them" + (f" (+{pair(*ops)} bottom/right)" if any(ops) else ""))
    else:
        if isinstance(padding, str):
            before, after = pad_h
            sides = pair(pad_h, pad_w) if pad_h != pad_w else (
                f"{before}" if before == after else f"{before} top/left, {after} bottom/right")
            pad_text = f"padding '{padding.lower()}' ({sides})"
        else:
            pad_text = f"padding {pair(*pads)}"
        title = (f"input {size(*ns)}, kernel {size(kh, kw)}, {pad_text}, stride {pair(*ss)}"
                 + (f", dilation {pair(dh, dw)}" if max(ds) > 1 else "")
                 + f" -> output {size(oh, ow)}")
    fig.suptitle(title, fontsize=10)
    handles = [Patch(facecolor=_STEP_COLORS["input"], edgecolor="0.45", label="input"),
               Patch(facecolor=_STEP_COLORS["pad"], edgecolor="0.45",
                     label="zeros (padding, inserted)" if transposed else "padding (zeros)"),
               Patch(facecolor=face, edgecolor=color, label="kernel taps / current output"),
               Patch(facecolor=_STEP_COLORS["done"], edgecolor="0.45", label="outputs so far")]
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=8, frameon=False)
    fig.output_size = (oh, ow)
    fig.steps = positions
    return fig


_POOL_MODES = ("max", "avg", "sum")
_POOL_COLORS = ("tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown",
                "tab:pink", "tab:olive", "tab:cyan", "tab:gray")


def show_pooling(
    x,
    kernel_size,
    stride=None,
    modes=("max", "avg", "sum"),
    *,
    fmt: str | None = None,
    cell_size: float = 0.55,
    mark_max: bool = True,
):
    """The windows of a 2-D pooling, each in its own colour, and the pooled outputs.

    Left: the input ``x`` ``(H, W)`` (small, e.g. 4 x 4) with its numbers; each
    pooling window is outlined and lightly filled in its own colour (window
    ``(i, j)`` covers rows ``i*sh .. i*sh + kh - 1`` and columns
    ``j*sw .. j*sw + kw - 1``). With ``mark_max`` (and ``'max'`` in ``modes``)
    the maximum of each window is circled: the first one in row-major order on
    ties, the input that receives the window's gradient in the backward pass.
    Right: one output grid per mode (``'max'``, ``'avg'``, ``'sum'``), cell
    ``(i, j)`` in the colour of window ``(i, j)``, with its value computed by
    ``utils.conv`` (no padding, floor mode: ``o = floor((n - k)/s) + 1``).

    ``kernel_size``, ``stride`` (default: ``kernel_size``): an int or a pair.
    Returns the Figure (1 + len(modes) axes) with ``fig.outputs``, a dict
    mode -> ``(H_out, W_out)`` array.
    """
    from matplotlib.patches import Circle, Rectangle

    from .conv import avg_pool2d, max_pool2d, sum_pool2d

    img = _numpy(x, "x")
    if img.ndim != 2 or img.size == 0:
        raise ValueError(f"x must be a non-empty 2-D (H, W) array, got shape {img.shape}")
    kh, kw = as_tuple(kernel_size, 2, "kernel_size")
    sh, sw = (kh, kw) if stride is None else as_tuple(stride, 2, "stride")
    if isinstance(modes, str):
        modes = (modes,)
    modes = tuple(modes)
    if not modes or any(m not in _POOL_MODES for m in modes):
        raise ValueError(f"modes must be a non-empty sequence of {_POOL_MODES}, got {modes!r}")
    h, w = img.shape
    if kh > h or kw > w:
        raise ValueError(f"kernel_size {(kh, kw)} must fit in the input of shape {(h, w)}")
    pool = {"max": max_pool2d, "avg": avg_pool2d, "sum": sum_pool2d}
    x4 = img[None, None]
    outputs = {m: pool[m](x4, (kh, kw), (sh, sw))[0, 0] for m in modes}
    oh, ow = next(iter(outputs.values())).shape
    colors = [_POOL_COLORS[k % len(_POOL_COLORS)] for k in range(oh * ow)]

    plt = _plt()
    widths = [w] + [ow] * len(modes)
    figsize = (cell_size * (sum(widths) + 1.2 * len(widths)), cell_size * h + 0.9)
    fig, axes = plt.subplots(1, 1 + len(modes), figsize=figsize,
                             gridspec_kw={"width_ratios": widths}, squeeze=False)
    axes = axes[0]
    ax_in = axes[0]
    # White cells with black numbers: every value lies far below the top of the colour scale.
    _draw_matrix(ax_in, img, fmt=fmt, cmap="Greys", vmin=0, vmax=1e30, show_values=True,
                 fontsize=None)
    ax_in.set_title(f"input {h}x{w}\nwindow {kh}x{kw}, stride {sh if sh == sw else (sh, sw)}",
                    fontsize=9)
    inset = 0.06 if (sh < kh or sw < kw) else 0.0  # overlapping windows: keep outlines apart
    for i in range(oh):
        for j in range(ow):
            k = i * ow + j
            d = inset * (k % 3)
            top, left = i * sh, j * sw
            ax_in.add_patch(Rectangle((left - 0.5 + d, top - 0.5 + d), kw - 2 * d, kh - 2 * d,
                                      facecolor=colors[k], alpha=0.18, edgecolor="none"))
            ax_in.add_patch(Rectangle((left - 0.5 + d, top - 0.5 + d), kw - 2 * d, kh - 2 * d,
                                      fill=False, edgecolor=colors[k], linewidth=2.5))
            if mark_max and "max" in modes:
                window = img[top:top + kh, left:left + kw]
                r, c = divmod(int(np.argmax(window)), kw)
                ax_in.add_patch(Circle((left + c, top + r), 0.4, fill=False, edgecolor=colors[k],
                                       linewidth=1.8))
    names = {"max": "max pooling", "avg": "average pooling", "sum": "sum pooling"}
    for ax, mode in zip(axes[1:], modes, strict=True):
        out = outputs[mode]
        _draw_matrix(ax, out, fmt=fmt, cmap="Greys", vmin=0, vmax=1e30, show_values=True,
                     fontsize=None)
        for i in range(oh):
            for j in range(ow):
                k = i * ow + j
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=colors[k], alpha=0.25,
                                       edgecolor=colors[k], linewidth=2.5))
        ax.set_title(f"{names[mode]}\n{oh}x{ow}", fontsize=9)
    fig.tight_layout()
    fig.outputs = outputs
    return fig
