"""The checks of assignment 2 (utils.grading.a2): conv2d and max_pool2d in PyTorch, NCHW.

The reference solutions are the ones in the instructor notebook; every diagnostic
message is triggered by a wrong implementation that makes exactly that mistake.
Only the CPU paths run here; the CUDA paths are the same code on another device
(the device comparison itself is tested with a real "meta" tensor and with
torch.device objects).
"""

from __future__ import annotations

import json
import pathlib
import re
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from utils import grading as g  # noqa: E402
from utils.grading import a2  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
AID = "a2_pytorch_convolution"
SOLUTION = ROOT / "solutions" / AID / f"{AID}.ipynb"
SEED = "20261121"


def _solution_functions() -> dict:
    """conv2d and max_pool2d as the instructor notebook defines them."""
    cells = json.loads(SOLUTION.read_text(encoding="utf-8"))["cells"]
    namespace = {"torch": torch, "F": F}
    for cell in cells:
        grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id")
        if grade_id in ("conv2d", "max_pool2d"):
            exec("".join(cell["source"]), namespace)  # noqa: S102 (our own notebook)
    return {"conv2d": namespace["conv2d"], "max_pool2d": namespace["max_pool2d"]}


SOLUTIONS = _solution_functions()
conv2d = SOLUTIONS["conv2d"]
max_pool2d = SOLUTIONS["max_pool2d"]


def fails(check, fn, message: str):
    """check(fn) raises CheckError whose message starts with ``message`` (exactly)."""
    with pytest.raises(g.CheckError, match="^" + re.escape(message)):
        check(fn)


CONV_CHECKS = [a2.check_conv2d, a2.check_conv2d_gradients, a2.check_conv2d_device_dtype, a2.check_conv2d_speed]
POOL_CHECKS = [a2.check_max_pool2d, a2.check_max_pool2d_gradients]


# ---------------------------------------------------------------------------
# The reference solutions pass; hidden checks need the grader's seed


@pytest.mark.parametrize("check", CONV_CHECKS, ids=lambda c: c.__name__)
def test_solution_conv2d_passes_visible_and_hidden(seeded, check, capfd):
    assert check(conv2d) is None  # a notebook cell shows no Out[] after the printed line
    check(conv2d, hidden=True)
    visible, hidden = capfd.readouterr().out.splitlines()
    assert visible.startswith("conv2d") and "checks passed" in visible
    assert hidden.startswith("conv2d") and "(hidden tests): all " in hidden
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("check", POOL_CHECKS, ids=lambda c: c.__name__)
def test_solution_max_pool2d_passes_visible_and_hidden(seeded, check, capfd):
    check(max_pool2d)
    check(max_pool2d, hidden=True)
    assert capfd.readouterr().err == ""


def test_visible_checks_run_without_a_seed_and_print_what_passed(unseeded, capsys):
    a2.check_conv2d(conv2d)
    assert capsys.readouterr().out.startswith("conv2d: all 6 checks passed (output is a tensor, shape, finite, ")
    a2.check_max_pool2d(max_pool2d)


@pytest.mark.parametrize("check", CONV_CHECKS + POOL_CHECKS, ids=lambda c: c.__name__)
def test_hidden_checks_refuse_without_the_seed(unseeded, check):
    fn = max_pool2d if check in POOL_CHECKS else conv2d
    with pytest.raises(g.CheckError, match="hidden checks run only while grading"):
        check(fn, hidden=True)


def conv2d_einsum(x, w, b=None, stride=1, padding=0):
    """Another correct solution: a view of the windows and einsum."""
    windows = F.pad(x, (padding,) * 4).unfold(2, w.shape[2], stride).unfold(3, w.shape[3], stride)
    out = torch.einsum("nchwuv,fcuv->nfhw", windows, w)
    return out if b is None else out + b.reshape(1, -1, 1, 1)


def conv2d_offsets(x, w, b=None, stride=1, padding=0):
    """Another correct solution: a loop over the kh*kw kernel offsets (allowed)."""
    n_filters, _, kh, kw = w.shape
    h_out = (x.shape[2] + 2 * padding - kh) // stride + 1
    w_out = (x.shape[3] + 2 * padding - kw) // stride + 1
    x_pad = F.pad(x, (padding,) * 4)
    out = 0
    for u in range(kh):
        for v in range(kw):
            shifted = x_pad[:, :, u : u + stride * (h_out - 1) + 1 : stride, v : v + stride * (w_out - 1) + 1 : stride]
            out = out + torch.einsum("nchw,fc->nfhw", shifted, w[:, :, u, v])
    return out if b is None else out + b.reshape(1, -1, 1, 1)


@pytest.mark.parametrize("fn", [conv2d_einsum, conv2d_offsets], ids=lambda f: f.__name__)
def test_other_correct_conv2d_pass(seeded, fn):
    for check in CONV_CHECKS:
        check(fn, hidden=True)


# ---------------------------------------------------------------------------
# conv2d values: every diagnostic


def conv2d_nhwc(x, w, b=None, stride=1, padding=0):
    """dave: reads x as (N, H, W, C) and returns (N, H_out, W_out, F)."""
    x_pad = F.pad(x, (0, 0, padding, padding, padding, padding))
    windows = x_pad.unfold(1, w.shape[2], stride).unfold(2, w.shape[3], stride)
    out = torch.einsum("nhwcuv,fcuv->nhwf", windows, w)
    return out if b is None else out + b


def test_layout_channels_last_input(unseeded):
    fails(a2.check_conv2d, conv2d_nhwc, f"conv2d: output is wrong: {a2.LAYOUT} [input: x ")


def test_layout_channels_last_input_that_crashes_on_nchw_is_recognized(unseeded):
    # The device/dtype case has W != C: the NHWC reading raises, and the probe on x.permute(0, 2, 3, 1) works.
    fails(a2.check_conv2d_device_dtype, conv2d_nhwc,
          f"conv2d: {a2.LAYOUT} (it raised RuntimeError on this NCHW input and works on the same data as "
          "(N, H, W, C))")


def test_layout_channels_last_output(unseeded):
    fails(a2.check_conv2d, lambda x, w, b=None, stride=1, padding=0: conv2d(x, w, b, stride, padding)
          .permute(0, 2, 3, 1), f"conv2d: output is wrong: {a2.LAYOUT}")


def test_layout_channels_last_output_shape_with_wrong_values(unseeded):
    fails(a2.check_conv2d, lambda x, w, b=None, stride=1, padding=0: 2 * conv2d(x, w, b, stride, padding)
          .permute(0, 2, 3, 1), "conv2d: output shape is (2, ")
    with pytest.raises(g.CheckError, match=re.escape(f": {a2.LAYOUT} [input:")):
        a2.check_conv2d(lambda x, w, b=None, stride=1, padding=0: 2 * conv2d(x, w, b, stride, padding)
                        .permute(0, 2, 3, 1))


def test_flipped_kernel(unseeded):
    fails(a2.check_conv2d, lambda x, w, b=None, stride=1, padding=0: conv2d(x, w.flip(2, 3), b, stride, padding),
          f"conv2d: output is wrong: {a2.FLIPPED}")


def test_missing_bias(unseeded):
    fails(a2.check_conv2d, lambda x, w, b=None, stride=1, padding=0: conv2d(x, w, None, stride, padding),
          f"conv2d: output is wrong: {a2.NO_BIAS}")


def test_stride_applied_to_the_input(unseeded):
    def subsample_then_pad(x, w, b=None, stride=1, padding=0):
        return conv2d(x[:, :, ::stride, ::stride], w, b, 1, padding)

    def pad_then_subsample(x, w, b=None, stride=1, padding=0):
        return conv2d(F.pad(x, (padding,) * 4)[:, :, ::stride, ::stride], w, b, 1, 0)

    for fn in (subsample_then_pad, pad_then_subsample):
        fails(a2.check_conv2d, fn, f"conv2d: output is wrong: {a2.STRIDE_ON_INPUT}")


def test_stride_ignored(unseeded):
    fails(a2.check_conv2d, lambda x, w, b=None, stride=1, padding=0: conv2d(x, w, b, 1, padding),
          f"conv2d: output is wrong: {a2.STRIDE_IGNORED}")


def test_padding_missing(unseeded):
    fails(a2.check_conv2d, lambda x, w, b=None, stride=1, padding=0: conv2d(x, w, b, stride, 0),
          f"conv2d: output is wrong: {a2.PAD_MISSING}")


def test_padding_missing_recognized_by_shape_alone(unseeded):
    fails(a2.check_conv2d, lambda x, w, b=None, stride=1, padding=0: conv2d(x, w, b, stride, 0) + 1.0,
          "conv2d: output shape is ")
    with pytest.raises(g.CheckError, match=re.escape(f": {a2.PAD_MISSING} [input:")):
        a2.check_conv2d(lambda x, w, b=None, stride=1, padding=0: conv2d(x, w, b, stride, 0) + 1.0)


def test_padding_doubled(unseeded):
    fails(a2.check_conv2d, lambda x, w, b=None, stride=1, padding=0: conv2d(x, w, b, stride, 2 * padding),
          f"conv2d: output is wrong: {a2.PAD_DOUBLED}")


def test_padding_only_the_width(unseeded):
    fails(a2.check_conv2d,
          lambda x, w, b=None, stride=1, padding=0: conv2d(F.pad(x, (padding, padding)), w, b, stride, 0),
          f"conv2d: output is wrong: {a2.PAD_ONLY_W}")


def _case(h=9, w=9, c=2, f=3, k=3, stride=2, padding=1):
    rng = np.random.default_rng(0)
    return a2.ConvCase(rng.standard_normal((2, c, h, w)), rng.standard_normal((f, c, k, k)), None, stride, padding)


def test_conv_shape_hints():
    # Sizes for x 9x9, kernel 3, stride 2, padding 1: expected 5x5; padding 0 -> 4x4; padding 2 -> 6x6;
    # only W padded -> 4x5; stride 1 -> 9x9; stride on the input -> 5x5 / 4x4 (not distinguishable here).
    case = _case()
    assert a2.conv_shape_hint(case, (2, 3, 5, 5)) is None  # the right shape is not a mistake
    assert a2.conv_shape_hint(case, (2, 3, 4, 4)) == a2.PAD_MISSING
    assert a2.conv_shape_hint(case, (2, 3, 6, 6)) == a2.PAD_DOUBLED
    assert a2.conv_shape_hint(case, (2, 3, 4, 5)) == a2.PAD_ONLY_W
    assert a2.conv_shape_hint(case, (2, 3, 9, 9)) == a2.STRIDE_IGNORED
    assert a2.conv_shape_hint(case, (2, 5, 5, 3)) == a2.LAYOUT
    # Stride 3 on a 12x12 input, padding 0: expected (12 - 3) // 3 + 1 = 4; x[::3] is 4x4 -> 2x2 with stride 1.
    assert a2.conv_shape_hint(_case(h=12, w=12, stride=3, padding=0), (2, 3, 2, 2)) == a2.STRIDE_ON_INPUT
    assert a2.conv_shape_hint(case, (2, 3, 7, 7)) is None


def test_wrong_shape_names_the_axis_and_the_formula(unseeded):
    fails(a2.check_conv2d, lambda x, w, b=None, stride=1, padding=0: conv2d(x, w, b, stride, padding)[:, :, 1:],
          "conv2d: output shape is (2, ")
    with pytest.raises(g.CheckError, match=r"expected \d+; H_out = \(H \+ 2\*padding - kh\) // stride \+ 1 = "):
        a2.check_conv2d(lambda x, w, b=None, stride=1, padding=0: conv2d(x, w, b, stride, padding)[:, :, 1:])
    with pytest.raises(g.CheckError, match="output height H_out"):
        a2.check_conv2d(lambda x, w, b=None, stride=1, padding=0: conv2d(x, w, b, stride, padding)[:, :, 1:])


def test_small_value_error_points_at_the_largest_difference(unseeded):
    fails(a2.check_conv2d, lambda x, w, b=None, stride=1, padding=0: conv2d(x, w, b, stride, padding) * 1.001,
          "conv2d: output values are wrong: at index (")


def test_not_finite(unseeded):
    fails(a2.check_conv2d, lambda x, w, b=None, stride=1, padding=0: conv2d(x, w, b, stride, padding) / 0.0,
          "conv2d: output has ")


def test_returned_none_and_numpy_and_not_implemented_and_raised(unseeded):
    def forgot_return(x, w, b=None, stride=1, padding=0):
        conv2d(x, w, b, stride, padding)

    def blank(x, w, b=None, stride=1, padding=0):
        raise NotImplementedError()

    def renamed(x, w, b=None, step=1, pad=0):
        return conv2d(x, w, b, step, pad)

    fails(a2.check_conv2d, forgot_return, f"conv2d: {a2.RETURNED_NONE}")
    fails(a2.check_conv2d, lambda x, w, b=None, stride=1, padding=0: conv2d(x, w, b, stride, padding).numpy(),
          "conv2d: output should be a torch.Tensor, got ndarray: compute with torch operations")
    for check in CONV_CHECKS:
        fails(check, blank, f"conv2d: {a2.NOT_IMPLEMENTED}")
    fails(a2.check_conv2d, renamed, "conv2d: raised TypeError: ")


def test_hard_coded_visible_answers_fail_on_the_next_run(unseeded):
    answers = []

    def recording(x, w, b=None, stride=1, padding=0):
        out = conv2d(x, w, b, stride, padding)
        answers.append(out.clone())
        return out

    a2.check_conv2d(recording)
    replay = iter(answers)

    def hard_coded(x, w, b=None, stride=1, padding=0):
        return next(replay)

    with pytest.raises(g.CheckError, match=r"^conv2d: output (shape is|values are wrong|is wrong)"):
        a2.check_conv2d(hard_coded)


# ---------------------------------------------------------------------------
# Forbidden references


def test_forbidden_references_fail(unseeded):
    from torch.nn.functional import conv2d as library_conv

    import utils.conv

    def calls_functional(x, w, b=None, stride=1, padding=0):
        return F.conv2d(x, w, b, stride=stride, padding=padding)

    def aliased(x, w, b=None, stride=1, padding=0):
        return library_conv(x, w, b, stride=stride, padding=padding)

    def module_layer(x, w, b=None, stride=1, padding=0):
        layer = torch.nn.Conv2d(w.shape[1], w.shape[0], w.shape[2:], stride=stride, padding=padding,
                                bias=b is not None).to(x.dtype)
        return layer(x)

    def reference_numpy(x, w, b=None, stride=1, padding=0):
        b = None if b is None else b.numpy()
        return torch.from_numpy(utils.conv.conv2d(x.numpy(), w.numpy(), b, stride, padding).copy())

    fails(a2.check_conv2d, calls_functional, "conv2d called torch.")
    fails(a2.check_conv2d, aliased, "conv2d uses torch.")
    fails(a2.check_conv2d, module_layer, "conv2d called torch.nn.Conv2d._conv_forward: implement the convolution")
    fails(a2.check_conv2d, reference_numpy, "conv2d called utils.conv.conv2d")
    fails(a2.check_conv2d_speed, calls_functional, "conv2d called torch.")
    fails(a2.check_max_pool2d, lambda x, kernel_size, stride=None: F.max_pool2d(x, kernel_size, stride),
          "max_pool2d called torch.nn.functional.max_pool2d: implement max pooling")
    fails(a2.check_max_pool2d, lambda x, kernel_size, stride=None: torch.nn.MaxPool2d(kernel_size, stride)(x),
          "max_pool2d called torch.")
    # The tripwires are gone afterwards.
    assert F.conv2d is library_conv and torch.nn.Conv2d._conv_forward.__qualname__ == "Conv2d._conv_forward"
    assert F.max_pool2d.__name__ != "raise_forbidden" and utils.conv.conv2d.__name__ == "conv2d"
    assert torch.nn.Conv2d(1, 1, 1)(torch.zeros(1, 1, 2, 2)).shape == (1, 1, 2, 2)


# ---------------------------------------------------------------------------
# conv2d gradients


def test_gradients_lost_to_a_numpy_round_trip(unseeded):
    def numpy_round_trip(x, w, b=None, stride=1, padding=0):
        b = None if b is None else b.detach()
        return torch.from_numpy(conv2d(x.detach(), w.detach(), b, stride, padding).numpy())

    a2.check_conv2d(numpy_round_trip)  # the values are right
    fails(a2.check_conv2d_gradients, numpy_round_trip, f"conv2d: {a2.NOT_DIFFERENTIABLE}")


def test_gradient_of_a_detached_bias_is_none(unseeded):
    fails(a2.check_conv2d_gradients,
          lambda x, w, b=None, stride=1, padding=0: conv2d(x, w, None if b is None else b.detach(), stride, padding),
          "conv2d: " + a2.GRAD_NONE.format(name="b"))


def test_in_place_change_breaks_backward(unseeded):
    def in_place(x, w, b=None, stride=1, padding=0):
        out = conv2d(x, w, b, stride, padding)
        grown = torch.exp(out)  # exp keeps its result for the backward pass
        grown.mul_(1.0)  # ... and this changes it in place
        return torch.log(grown)

    a2.check_conv2d(in_place)
    fails(a2.check_conv2d_gradients, in_place, "conv2d: autograd failed in backward (RuntimeError: one of the "
          "variables needed for gradient computation has been modified by an inplace operation")


def test_wrong_gradient_with_right_forward(unseeded):
    def cut_from_x(x, w, b=None, stride=1, padding=0):
        return conv2d(x.detach(), w, b, stride, padding) + 0.0 * x.sum()

    fails(a2.check_conv2d_gradients, cut_from_x, "conv2d: gradient x.grad values are wrong: at index (")


def test_gradients_wait_for_the_forward_values(unseeded):
    with pytest.raises(g.CheckError, match=re.escape(f"conv2d: forward output is wrong: {a2.NO_BIAS}") + ".*"
                       + re.escape(a2.FORWARD_FIRST) + "$"):
        a2.check_conv2d_gradients(lambda x, w, b=None, stride=1, padding=0: conv2d(x, w, None, stride, padding))


# ---------------------------------------------------------------------------
# conv2d device and dtype


def test_float64_output_for_a_float32_input(unseeded):
    def double(x, w, b=None, stride=1, padding=0):
        return conv2d(x.double(), w.double(), None if b is None else b.double(), stride, padding)

    a2.check_conv2d(double)  # the values are right
    fails(a2.check_conv2d_device_dtype, double,
          "conv2d: " + a2.DTYPE.format(got="float64", want="float32", hint=a2.DTYPE_HINTS[("float64", "float32")]))


def test_float32_output_for_a_float64_input(unseeded):
    def zeros_default_dtype(x, w, b=None, stride=1, padding=0):
        return torch.zeros(1) + conv2d(x, w, b, stride, padding).float()

    with pytest.raises(g.CheckError, match=r"^conv2d: output values are wrong: .*" + re.escape(
            a2.DTYPE_NOTE.format(got="float32", want="float64")) + "$"):
        a2.check_conv2d(zeros_default_dtype)
    fails(a2.check_conv2d_device_dtype, zeros_default_dtype,
          "conv2d: " + a2.DTYPE.format(got="float32", want="float64", hint=a2.DTYPE_HINTS[("float32", "float64")]))


def test_dtype_message_for_other_dtypes():
    assert a2.dtype_mismatch(torch.float32, torch.float32) is None
    assert a2.dtype_mismatch(torch.float16, torch.float32) == a2.DTYPE.format(
        got="float32", want="float16", hint=a2.DTYPE_HINT)


def test_output_moved_off_the_input_device(unseeded):
    # A real tensor on another device: "meta" exists on every machine (CUDA is not needed).
    fails(a2.check_conv2d_device_dtype,
          lambda x, w, b=None, stride=1, padding=0: conv2d(x, w, b, stride, padding).to("meta"),
          "conv2d: " + a2.DEVICE.format(got="meta", want="cpu"))


def test_device_comparison_of_a_cuda_input():
    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    assert a2.device_mismatch(cuda, cpu) == a2.DEVICE.format(got="cpu", want="cuda:0")
    assert a2.device_mismatch(cuda, cpu).startswith("output is on cpu but the input is on cuda:0: keep the result")
    assert a2.device_mismatch(cuda, torch.device("cuda", 0)) is None
    assert a2.device_mismatch(cuda, "cuda") is None
    assert a2.device_mismatch("cuda:0", "cuda:1") is not None
    assert a2.device_mismatch(cpu, cpu) is None


# ---------------------------------------------------------------------------
# conv2d speed


def conv2d_pixels(x, w, b=None, stride=1, padding=0):
    """bob: right values, one output pixel at a time."""
    n, _, h, wd = x.shape
    n_filters, _, kh, kw = w.shape
    h_out = (h + 2 * padding - kh) // stride + 1
    w_out = (wd + 2 * padding - kw) // stride + 1
    x_pad = F.pad(x, (padding,) * 4)
    rows = w.reshape(n_filters, -1)
    out = x.new_zeros((n, n_filters, h_out, w_out))
    for i in range(h_out):
        for j in range(w_out):
            out[:, :, i, j] = x_pad[:, :, i * stride : i * stride + kh, j * stride : j * stride + kw].reshape(n, -1) @ rows.T
    return out if b is None else out + b.reshape(1, -1, 1, 1)


def test_a_loop_over_pixels_is_too_slow(unseeded):
    threads = torch.get_num_threads()
    a2.check_conv2d(conv2d_pixels)  # right values
    with pytest.raises(g.CheckError, match=r"^conv2d: too slow: [\d.]+x the time of F.conv2d \([\d.]+ ms vs [\d.]+ "
                       r"ms per call\), the limit is 5x\. A Python loop over output pixels lands here: gather all "
                       r"patches at once with im2col .* \[timed on x \(1, 32, 64, 64\), w \(128, 32, 3, 3\), "
                       r"stride 2, padding 1, float32 on cpu, both on one CPU thread\]$"):
        a2.check_conv2d_speed(conv2d_pixels)
    assert torch.get_num_threads() == threads


def test_a_very_slow_function_is_called_only_once(unseeded, monkeypatch):
    calls = []

    def counted(x, w, b=None, stride=1, padding=0):
        calls.append(1)
        return conv2d_pixels(x, w, b, stride, padding)

    monkeypatch.setattr(a2, "SPEED_GIVE_UP_S", 0.0)
    with pytest.raises(g.CheckError, match=r"^conv2d: too slow: .*, the limit is 5x"):
        a2.check_conv2d_speed(counted)
    assert len(calls) == 1


def test_speed_needs_right_values(unseeded):
    fails(a2.check_conv2d_speed, lambda x, w, b=None, stride=1, padding=0: torch.zeros(
        x.shape[0], w.shape[0], (x.shape[2] + 2 * padding - 3) // stride + 1, (x.shape[3] + 2 * padding - 3) // stride + 1),
        "conv2d: the speed check needs correct values: the output on the timing input is wrong (")


def test_speed_line_states_both_times_and_the_ratio(unseeded, capsys):
    a2.check_conv2d_speed(conv2d)
    line = capsys.readouterr().out
    assert re.search(r"[\d.]+ ms per call vs [\d.]+ ms for F.conv2d on x \(1, 32, 64, 64\).*: [\d.]+x, limit 5x", line)


# ---------------------------------------------------------------------------
# max_pool2d


def test_max_pool2d_default_stride_of_one(unseeded):
    def stride_one(x, kernel_size, stride=1):
        return max_pool2d(x, kernel_size, stride)

    fails(a2.check_max_pool2d, stride_one, f"max_pool2d: output is wrong: {a2.POOL_STRIDE_DEFAULT}")
    a2.check_max_pool2d_gradients(stride_one)  # explicit strides: only the default is wrong


def test_max_pool2d_default_stride_recognized_by_shape_alone(unseeded):
    with pytest.raises(g.CheckError, match=r"^max_pool2d: output shape is .*" + re.escape(f": {a2.POOL_STRIDE_DEFAULT}")):
        a2.check_max_pool2d(lambda x, kernel_size, stride=1: max_pool2d(x, kernel_size, stride) + 1.0)


def test_max_pool2d_channels_last(unseeded):
    def nhwc(x, kernel_size, stride=None):  # pools axes 1 and 2, as if x were (N, H, W, C)
        stride = kernel_size if stride is None else stride
        return x.unfold(1, kernel_size, stride).unfold(2, kernel_size, stride).amax(dim=(-2, -1))

    fails(a2.check_max_pool2d, nhwc, f"max_pool2d: output is wrong: {a2.LAYOUT_POOL}")
    fails(a2.check_max_pool2d, lambda x, kernel_size, stride=None: max_pool2d(x, kernel_size, stride)
          .permute(0, 2, 3, 1), f"max_pool2d: output is wrong: {a2.LAYOUT_POOL}")
    case = a2.PoolCase(np.zeros((2, 3, 8, 6)), 2, None)
    assert a2.pool_shape_hint(case, (2, 4, 3, 3)) == a2.LAYOUT_POOL
    assert a2.pool_shape_hint(case, (2, 3, 7, 5)) == a2.POOL_STRIDE_DEFAULT
    assert a2.pool_shape_hint(case, (2, 3, 4, 3)) is None


def test_max_pool2d_average(unseeded):
    def average(x, kernel_size, stride=None):
        stride = kernel_size if stride is None else stride
        return x.unfold(2, kernel_size, stride).unfold(3, kernel_size, stride).mean(dim=(-2, -1))

    fails(a2.check_max_pool2d, average, f"max_pool2d: output is wrong: {a2.POOL_AVERAGE}")


def test_max_pool2d_wrong_shape_names_the_formula(unseeded):
    with pytest.raises(g.CheckError, match=r"^max_pool2d: output shape is .*; H_out = \(H - kernel_size\) // "
                       r"stride \+ 1 = "):
        a2.check_max_pool2d(lambda x, kernel_size, stride=None: max_pool2d(x, kernel_size, stride)[:, :, :-1])


def test_max_pool2d_device_dtype_and_gradients(unseeded):
    fails(a2.check_max_pool2d, lambda x, kernel_size, stride=None: max_pool2d(x, kernel_size, stride).double(),
          "max_pool2d: " + a2.DTYPE.format(got="float64", want="float32", hint=a2.DTYPE_HINTS[("float64", "float32")]))
    fails(a2.check_max_pool2d, lambda x, kernel_size, stride=None: max_pool2d(x, kernel_size, stride).to("meta"),
          "max_pool2d: " + a2.DEVICE.format(got="meta", want="cpu"))
    fails(a2.check_max_pool2d_gradients,
          lambda x, kernel_size, stride=None: torch.from_numpy(max_pool2d(x.detach(), kernel_size, stride).numpy()),
          f"max_pool2d: {a2.NOT_DIFFERENTIABLE}")
    fails(a2.check_max_pool2d_gradients, lambda x, kernel_size, stride=None: max_pool2d(x, kernel_size, stride) * 1.01,
          "max_pool2d: forward output values are wrong: at index (")
    fails(a2.check_max_pool2d, lambda x, kernel_size, stride=None: None, f"max_pool2d: {a2.RETURNED_NONE}")


# ---------------------------------------------------------------------------
# Draws, side effects, notebook


def test_grading_draws_repeat_with_the_same_seed(monkeypatch):
    monkeypatch.setenv(g.SEED_VARIABLE, SEED)
    for hidden in (False, True):
        first, second = a2.conv2d_cases(hidden), a2.conv2d_cases(hidden)
        assert all(np.array_equal(a.x, b.x) and np.array_equal(a.w, b.w) for a, b in zip(first, second, strict=True))
        pools = a2.max_pool2d_cases(hidden), a2.max_pool2d_cases(hidden)
        assert all(np.array_equal(a.x, b.x) and a.stride == b.stride for a, b in zip(*pools, strict=True))
    visible, hidden = a2.conv2d_cases(False), a2.conv2d_cases(True)
    assert visible[0].x.shape != hidden[0].x.shape or not np.array_equal(visible[0].x, hidden[0].x)
    monkeypatch.setenv(g.SEED_VARIABLE, "7")
    assert not np.array_equal(a2.conv2d_cases(True)[1].x, hidden[1].x)


def test_layout_probe_case_reads_as_nhwc(unseeded):
    case = a2.conv2d_cases(False)[0]
    assert case.x.shape[1] == case.x.shape[3] != case.x.shape[2]  # W == C, so NHWC code runs on it


def test_checks_are_silent_on_stderr_and_restore_global_state(unseeded, capfd):
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    threads = torch.get_num_threads()

    def noisy(x, w, b=None, stride=1, padding=0):
        warnings.warn("a student's warning", UserWarning, stacklevel=1)
        return conv2d(x, w, b, stride, padding)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a2.check_conv2d(noisy)
        with pytest.raises(g.CheckError):
            a2.check_conv2d(conv2d_nhwc)
    assert capfd.readouterr().err == ""
    assert torch.get_num_threads() == threads  # the checks run on one thread and restore the count
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (matmul, cudnn)
    with a2._no_tf32():
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (matmul, cudnn)


def test_notebook_cells_match_the_expected_scores():
    cells = json.loads(SOLUTION.read_text(encoding="utf-8"))["cells"]
    graded = {c["metadata"]["nbgrader"]["grade_id"]: c["metadata"]["nbgrader"]["points"]
              for c in cells if c["metadata"].get("nbgrader", {}).get("grade")}
    expected = json.loads((ROOT / "examples" / "submissions" / f"expected_{AID}.json").read_text())
    assert graded == expected["alice"] and sum(graded.values()) == 11
    for student in ("alice", "bob", "carol", "dave"):
        assert set(expected[student]) == set(graded)
        assert all(0 <= expected[student][k] <= graded[k] for k in graded)
    ids = [c["metadata"]["nbgrader"]["grade_id"] for c in cells]
    assert len(ids) == len(set(ids))
    assert all(not c.get("outputs") for c in cells if c["cell_type"] == "code")


def test_hidden_checks_never_show_reference_values(seeded):
    with pytest.raises(g.CheckError, match=r"^conv2d: output values are wrong on a hidden test case \(\d+ of \d+ "
                       r"values differ\) \[input: "):
        a2.check_conv2d(lambda x, w, b=None, stride=1, padding=0: conv2d(x, w, b, stride, padding) * 1.001,
                        hidden=True)


def test_a_failed_check_renders_its_message_and_the_students_frames_only(unseeded):
    with pytest.raises(g.CheckError) as caught:
        a2.check_conv2d(conv2d_nhwc)
    assert caught.value._render_traceback_() == [f"CheckError: {caught.value}"]

    def buggy(x, w, b=None, stride=1, padding=0):
        sizes = list(x.shape)
        return sizes[7]  # the student's bug

    with pytest.raises(g.CheckError, match=r"^conv2d: raised IndexError: list index out of range \[input: ") as caught:
        a2.check_conv2d(buggy)
    rendered = "\n".join(caught.value._render_traceback_())
    assert "return sizes[7]  # the student's bug" in rendered and "IndexError" in rendered
    assert "utils/grading" not in rendered and "hidden" not in rendered
    assert rendered.endswith(f"CheckError: {caught.value}")
