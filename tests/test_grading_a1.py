"""The checks of assignment a1_numpy_convolution (utils.grading.a1).

- the reference solution (the solution cells of the instructor notebook) passes
  every visible and hidden check;
- hidden checks refuse to run without the grader's seed; grading draws repeat
  with the same seed; a hard-coded answer for a visible example fails;
- every diagnostic message is triggered by an implementation that makes
  exactly that mistake (written here the way a student would write it);
- calling a forbidden reference fails with a ForbiddenCall.
"""

from __future__ import annotations

import json
import pathlib
import re

import numpy as np
import pytest

from utils import grading as g
from utils.grading import CheckError, ForbiddenCall, a1

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "solutions" / "a1_numpy_convolution" / "a1_numpy_convolution.ipynb"
FUNCTIONS = ("zero_pad", "conv_single_step", "conv_output_size", "conv_forward", "conv_param_count",
             "pool_forward", "conv_backward", "pool_backward")


def solution_namespace() -> dict:
    """The solution cells of the instructor notebook, executed: the reference solution."""
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    namespace = {"__name__": "a1_solution"}
    exec("import numpy as np", namespace)
    for cell in cells:
        if cell["metadata"].get("nbgrader", {}).get("solution"):
            exec("".join(cell["source"]), namespace)
    return namespace


SOLUTION = solution_namespace()


@pytest.fixture(params=["visible", "17", "20261121"])
def draws(request, monkeypatch):
    """Diagnostics hold for fresh student draws and for grading seeds."""
    monkeypatch.setattr(g, "SEED_FILE", g.SEED_FILE.with_name("no-such-grader-secret"))
    if request.param == "visible":
        monkeypatch.delenv(g.SEED_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(g.SEED_VARIABLE, request.param)
    return request.param


def fails(check, function, message: str, hidden: bool = False, regex: bool = False):
    """The check fails with ``message`` (a literal unless regex)."""
    with pytest.raises(CheckError, match=message if regex else re.escape(message)) as info:
        check(function, hidden=hidden)
    assert not isinstance(info.value, ForbiddenCall)
    return str(info.value)


# ---------------------------------------------------------------------------
# The reference solution, seeds, hard-coding


@pytest.mark.parametrize("name", FUNCTIONS)
def test_reference_solution_passes_visible_and_hidden_checks(name, monkeypatch, unseeded, capsys):
    check = getattr(a1, f"check_{name}")
    check(SOLUTION[name])
    assert f"{name}: all " in capsys.readouterr().out
    for seed in ("1", "20261121"):
        monkeypatch.setenv(g.SEED_VARIABLE, seed)
        check(SOLUTION[name])
        check(SOLUTION[name], hidden=True)
        assert f"{name} (hidden tests): all " in capsys.readouterr().out


@pytest.mark.parametrize("name", FUNCTIONS)
def test_hidden_checks_refuse_without_the_seed(name, unseeded):
    with pytest.raises(CheckError, match="hidden checks run only while grading"):
        getattr(a1, f"check_{name}")(SOLUTION[name], hidden=True)


def spy(name):
    """The solution, recording the inputs it receives."""
    calls = []

    def function(*args):
        calls.append([a.copy() if isinstance(a, np.ndarray) else a for a in args])
        return SOLUTION[name](*args)

    return function, calls


def same_calls(first, second) -> bool:
    return len(first) == len(second) and all(
        len(a) == len(b) and all(np.array_equal(u, v) if isinstance(u, np.ndarray) else u == v
                                 for u, v in zip(a, b, strict=True))
        for a, b in zip(first, second, strict=True))


@pytest.mark.parametrize("name", FUNCTIONS)
def test_grading_draws_repeat_with_the_seed(name, monkeypatch, unseeded):
    check = getattr(a1, f"check_{name}")
    runs = {}
    for key, seed, hidden in [("a", "5", True), ("b", "5", True), ("c", "6", True), ("d", "5", False)]:
        monkeypatch.setenv(g.SEED_VARIABLE, seed)
        function, calls = spy(name)
        check(function, hidden=hidden)
        runs[key] = calls
    assert same_calls(runs["a"], runs["b"])
    assert not same_calls(runs["a"], runs["c"])
    assert not same_calls(runs["a"], runs["d"])


def test_visible_inputs_differ_between_student_runs(unseeded):
    first, calls_1 = spy("conv_forward")
    second, calls_2 = spy("conv_forward")
    a1.check_conv_forward(first)
    a1.check_conv_forward(second)
    assert not same_calls(calls_1, calls_2)


def test_a_hard_coded_visible_answer_fails(unseeded):
    function, calls = spy("conv_forward")
    a1.check_conv_forward(function)
    answers = [SOLUTION["conv_forward"](*args) for args in calls]

    def hard_coded(x, w, b, stride, pad):
        return answers.pop(0).copy()  # the answers of the previous run, in order

    with pytest.raises(CheckError, match="conv_forward: output"):
        a1.check_conv_forward(hard_coded)

    def worked_example(x, w, b, stride, pad):
        return np.array([[12.0, 12.0], [10.0, 17.0]]).reshape(1, 2, 2, 1)

    with pytest.raises(CheckError, match="conv_forward: output shape is"):
        a1.check_conv_forward(worked_example)

    def hard_coded_count(f, c_in, c_out):
        return 1792  # (3*3*3 + 1)*64, the worked example

    with pytest.raises(CheckError, match="conv_param_count"):
        a1.check_conv_param_count(hard_coded_count)


def test_a_rigged_array_is_refused(unseeded):
    class Rigged(np.ndarray):
        def __eq__(self, other):
            return True

    def rigged(x, pad):
        return np.zeros(1).view(Rigged)

    fails(a1.check_zero_pad, rigged, "zero_pad: output should be a ndarray, got Rigged")


def test_modifying_an_input_fails(unseeded):
    def in_place(x, w, b, stride, pad):
        out = SOLUTION["conv_forward"](x, w, b, stride, pad)
        x[...] = 0
        return out

    fails(a1.check_conv_forward, in_place, "conv_forward: it modified its input x: work on a copy")


@pytest.mark.parametrize("name", FUNCTIONS)
def test_a_blank_function_is_not_implemented_yet(name, unseeded):
    def blank(*args):
        # YOUR CODE HERE
        raise NotImplementedError()

    fails(getattr(a1, f"check_{name}"), blank, f"{name}: not implemented yet: it raised NotImplementedError; "
          "replace `raise NotImplementedError()` with your code")


def test_a_missing_return_is_named(unseeded):
    def zero_pad(x, pad):
        np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))

    fails(a1.check_zero_pad, zero_pad, "zero_pad: returned None: did you forget the `return` statement?")


def test_a_crash_keeps_its_traceback_and_names_the_case(unseeded):
    def conv_forward(x, w, b, stride, pad):
        return x[:, :, :, :, 0]  # IndexError

    with pytest.raises(IndexError) as info:
        a1.check_conv_forward(conv_forward)
    assert "(raised by the checked function on case 1 of 4: x (2, " in "\n".join(info.value.__notes__)
    shown = "\n".join(info.value._render_traceback_())  # what IPython prints: the student's frames only
    assert "in conv_forward" in shown and "return x[:, :, :, :, 0]  # IndexError" in shown
    assert "IndexError: too many indices" in shown and "raised by the checked function on case 1" in shown
    assert "in check_conv_forward" not in shown and "grading/a1.py" not in shown


def test_a_failed_check_shows_its_message_without_a_traceback(unseeded):
    """IPython prints _render_traceback_() instead of the traceback: no test-cell lines (hidden tests)."""
    with pytest.raises(CheckError) as info:
        a1.check_conv_param_count(lambda f, c_in, c_out: f * f * c_in * c_out)
    lines = info.value._render_traceback_()
    assert lines == [f"CheckError: {info.value}"] and "you forgot the biases" in lines[0]
    with pytest.raises(ForbiddenCall) as info:
        a1.check_conv_single_step(lambda a_slice, w, b: float(np.correlate(a_slice.ravel(), w.ravel())[0] + b))
    assert info.value._render_traceback_()[0].startswith("ForbiddenCall: conv_single_step called numpy.correlate")


def test_renamed_parameters_are_fine(unseeded):
    def zero_pad(images, p):
        return np.pad(images, ((0, 0), (p, p), (p, p), (0, 0)))

    a1.check_zero_pad(zero_pad)


def test_backward_checks_print_relative_errors_like_cs231n(unseeded, capsys):
    a1.check_conv_backward(SOLUTION["conv_backward"])
    out = capsys.readouterr().out
    errors = [float(v) for v in re.findall(r"(?:dx|dw|db) (\d\.\de-\d\d)", out)]
    assert len(errors) == 9 and max(errors) < 1e-7, out
    a1.check_pool_backward(SOLUTION["pool_backward"])
    out = capsys.readouterr().out
    assert out.count("relative error of dx against the numerical gradient") == 4


# ---------------------------------------------------------------------------
# zero_pad


def pad_with(pad_width, **options):
    def zero_pad(x, pad):
        return np.pad(x, pad_width(pad), **options)

    return zero_pad


SPATIAL = lambda p: ((0, 0), (p, p), (p, p), (0, 0))  # noqa: E731


@pytest.mark.parametrize("mode", ["edge", "reflect", "symmetric"])
def test_zero_pad_border_not_zero(mode, draws):
    fails(a1.check_zero_pad, pad_with(SPATIAL, mode=mode),
          "zero_pad: output is wrong: the border must be zeros, but you filled it with values copied from the "
          "image (np.pad's mode='edge', 'reflect' or 'symmetric'): use the default mode='constant'")


def test_zero_pad_in_the_corner(draws):
    def zero_pad(x, pad):
        n, h, w, c = x.shape
        out = np.zeros((n, h + 2 * pad, w + 2 * pad, c), dtype=x.dtype)
        out[:, :h, :w, :] = x
        return out

    fails(a1.check_zero_pad, zero_pad, "zero_pad: output is wrong: x belongs in the middle, "
          "x_pad[:, pad:pad + H, pad:pad + W, :] = x: you put it in the top-left corner")


KEEP = "pad only the spatial axes H and W (axes 1 and 2): np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))"


@pytest.mark.parametrize("pad_width, message", [
    (lambda p: p, f"you padded every axis, the batch and channel axes too: {KEEP}"),
    (lambda p: ((p, p), (p, p), (p, p), (0, 0)), f"you padded the batch axis too: {KEEP}"),
    (lambda p: ((0, 0), (p, p), (p, p), (p, p)), f"you padded the channel axis too: {KEEP}"),
    (lambda p: ((0, 0), (0, 0), (p, p), (p, p)), "you padded axes 2 and 3 as for channels-first (NCHW) input: "
                                                 f"this function takes NHWC, {KEEP}"),
    (lambda p: ((0, 0), (p, 0), (p, 0), (0, 0)), "pad adds pad zeros on each side (top and bottom, left and "
                                                 "right): the padded height is H + 2*pad"),
    (lambda p: ((0, 0), (2 * p, 2 * p), (2 * p, 2 * p), (0, 0)), "pad is the number of zeros on each side, "
                                                                 "not half of it: the padded height is H + 2*pad"),
    (lambda p: ((0, 0), (p, p), (0, 0), (0, 0)), "pad both spatial axes: the width gets 2*pad zeros too"),
    (lambda p: ((0, 0), (0, 0), (p, p), (0, 0)), "pad both spatial axes: the height gets 2*pad zeros too"),
])
def test_zero_pad_wrong_axes(pad_width, message, draws):
    text = fails(a1.check_zero_pad, pad_with(pad_width), message)
    assert re.match(r"zero_pad: output shape is \(\d+, \d+, \d+, \d+\), expected \(\d+, \d+, \d+, \d+\): ", text)


def test_zero_pad_keeps_the_dtype(draws):
    def zero_pad(x, pad):
        n, h, w, c = x.shape
        out = np.zeros((n, h + 2 * pad, w + 2 * pad, c))  # float64 whatever x is
        out[:, pad:pad + h, pad:pad + w, :] = x
        return out

    fails(a1.check_zero_pad, zero_pad, "zero_pad: output dtype is float64, expected float32")


# ---------------------------------------------------------------------------
# conv_single_step


@pytest.mark.parametrize("step, message", [
    (lambda a, w, b: np.sum(a * w), "off by the bias: add b once to the sum, Z = sum(a_slice * w) + b"),
    (lambda a, w, b: np.sum(a * w + b), "you added b to every product before summing, so it counts f*f*C times: "
                                        "add it once, Z = sum(a_slice * w) + b"),
    (lambda a, w, b: np.mean(a * w) + b, "you averaged the products: Z is their sum, np.sum(a_slice * w) + b"),
    (lambda a, w, b: np.sum(a * w) * b, "you multiplied by the bias: add it, Z = sum(a_slice * w) + b"),
])
def test_conv_single_step_mistakes(step, message, draws):
    def conv_single_step(a_slice, w, b):
        return step(a_slice, w, b)

    fails(a1.check_conv_single_step, conv_single_step,
          r"conv_single_step: output is -?\d\S*, expected -?\d\S*: " + re.escape(message), regex=True)


def test_conv_single_step_returns_a_number(draws):
    fails(a1.check_conv_single_step, lambda a_slice, w, b: np.sum(a_slice * w, axis=(0, 1)) + b,
          "output should be a scalar, got an array of shape (", regex=False)
    fails(a1.check_conv_single_step, lambda a_slice, w, b: np.sum(a_slice * w, axis=(0, 1)) + b,
          "(you summed over some axes only): sum the element-wise product over all three axes")
    fails(a1.check_conv_single_step, lambda a_slice, w, b: np.array([np.sum(a_slice * w) + b]),
          "got an array of shape (1,) (it holds one number): sum the element-wise product")
    fails(a1.check_conv_single_step, lambda a_slice, w, b: str(np.sum(a_slice * w) + b),
          "conv_single_step: output should be a number (a float), got str")


# ---------------------------------------------------------------------------
# conv_output_size and conv_param_count


@pytest.mark.parametrize("size, message", [
    (lambda n, f, pad, stride: (n - f) // stride + 1,
     "check the padding term of the output-size formula: floor((n + 2*pad - f)/stride) + 1"),
    (lambda n, f, pad, stride: (n + pad - f) // stride + 1,
     "the padding adds pad zeros on each side: the padded size is n + 2*pad, not n + pad"),
    (lambda n, f, pad, stride: n + 2 * pad - f + 1,
     "check the stride: divide (n + 2*pad - f) by the stride, floor, then add 1"),
    (lambda n, f, pad, stride: (n + 2 * pad - f) // stride,
     "off by one: floor((n + 2*pad - f)/stride) + 1, with the + 1 outside the floor (it counts the first window)"),
    (lambda n, f, pad, stride: (n + 2 * pad - f + 1) // stride,
     "off by one: floor((n + 2*pad - f)/stride) + 1, with the + 1 outside the floor"),
    (lambda n, f, pad, stride: -(-(n + 2 * pad - f) // stride) + 1,
     "round down, not up: a window that does not fit entirely in the padded input is dropped"),
    (lambda n, f, pad, stride: (n - 2 * pad - f) // stride + 1,
     "the padding makes the input larger: n + 2*pad, not n - 2*pad"),
    (lambda n, f, pad, stride: (n + 2 * pad) // stride + 1,
     "subtract the kernel size: the last window must fit, floor((n + 2*pad - f)/stride) + 1"),
])
def test_conv_output_size_mistakes(size, message, draws):
    def conv_output_size(n, f, pad, stride):
        return size(n, f, pad, stride)

    text = fails(a1.check_conv_output_size, conv_output_size, message)
    assert re.match(r"conv_output_size: conv_output_size\(n=\d+, f=\d+, pad=\d+, stride=\d+\) returned -?\d+, "
                    r"expected \d+: ", text)


def test_conv_output_size_returns_an_int(draws):
    fails(a1.check_conv_output_size, lambda n, f, pad, stride: (n + 2 * pad - f) / stride + 1,
          r"returned \d+\.\d+, a float: sizes and counts are ints; use floor division // \(or int\(...\)\) "
          r"instead of /", regex=True)
    fails(a1.check_conv_output_size, lambda n, f, pad, stride: [(n + 2 * pad - f) // stride + 1],
          r"returned \[\d+\] \(list\), expected an int", regex=True)


@pytest.mark.parametrize("count, message", [
    (lambda f, c_in, c_out: f * f * c_in * c_out,
     "you forgot the biases: each of the c_out filters has one, (f*f*c_in + 1)*c_out"),
    (lambda f, c_in, c_out: f * f * c_in * c_out + 1,
     "one bias per filter, so c_out biases, not one in all: (f*f*c_in + 1)*c_out"),
    (lambda f, c_in, c_out: (f * f + 1) * c_in * c_out,
     "one bias per filter, not per input channel: (f*f*c_in + 1)*c_out"),
    (lambda f, c_in, c_out: (f * f + 1) * c_out,
     "each filter spans all c_in input channels: it has f*f*c_in weights, plus 1 bias"),
    (lambda f, c_in, c_out: (f * c_in + 1) * c_out,
     "the kernel is f x f: f*f*c_in weights per filter, (f*f*c_in + 1)*c_out"),
    (lambda f, c_in, c_out: (f * f * c_out + 1) * c_in,
     "the filters are the output channels: c_out filters of f*f*c_in weights and 1 bias each, (f*f*c_in + 1)*c_out"),
])
def test_conv_param_count_mistakes(count, message, draws):
    def conv_param_count(f, c_in, c_out):
        return count(f, c_in, c_out)

    text = fails(a1.check_conv_param_count, conv_param_count, message)
    assert re.match(r"conv_param_count: conv_param_count\(f=\d+, c_in=\d+, c_out=\d+\) returned \d+, "
                    r"expected \d+: ", text)


def test_conv_param_count_returns_an_int(draws):
    fails(a1.check_conv_param_count, lambda f, c_in, c_out: float((f * f * c_in + 1) * c_out),
          "a float: sizes and counts are ints")


# ---------------------------------------------------------------------------
# conv_forward: one loop implementation with the usual slips as switches


def student_conv_forward(x, w, b, stride, pad, *, flip=False, bias="once", window_stride=True,
                         size="right", layout="nhwc"):
    """How a student writes it; each switch is one slip."""
    if flip:
        w = w[::-1, ::-1]
    n_images, h, wd, c = x.shape
    f, _, _, filters = w.shape
    sizes = {
        "right": lambda n: (n + 2 * pad - f) // stride + 1,
        "no padding": lambda n: (n - f) // stride + 1,
        "stride 1": lambda n: n + 2 * pad - f + 1,
    }
    h_out, w_out = sizes[size](h), sizes[size](wd)
    x_pad = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    out = np.zeros((n_images, h_out, w_out, filters))
    for n in range(n_images):
        for i in range(h_out):
            for j in range(w_out):
                top, left = (i * stride, j * stride) if window_stride else (i, j)
                window = x_pad[n, top:top + f, left:left + f, :]
                for k in range(filters):
                    if bias == "once":
                        out[n, i, j, k] = np.sum(window * w[:, :, :, k]) + b[k]
                    elif bias == "none":
                        out[n, i, j, k] = np.sum(window * w[:, :, :, k])
                    else:
                        out[n, i, j, k] = np.sum(window * w[:, :, :, k] + b[k])
    return np.transpose(out, (0, 3, 1, 2)) if layout == "nchw output" else out


def dave_conv_forward(x, w, b, stride, pad):
    """Dave reads x as channels-first (N, C, H, W), as in PyTorch (this is examples/ dave's code)."""
    N, C, H, W = x.shape
    f, _, _, F = w.shape
    H_out = (H + 2 * pad - f) // stride + 1
    W_out = (W + 2 * pad - f) // stride + 1
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((N, F, H_out, W_out))
    for n in range(N):
        for k in range(F):
            kernel = np.transpose(w[:, :, :, k], (2, 0, 1))  # (C, f, f)
            for h in range(H_out):
                for w_ in range(W_out):
                    window = x_pad[n, :, h * stride:h * stride + f, w_ * stride:w_ * stride + f]
                    out[n, k, h, w_] = np.sum(window * kernel) + b[k]
    return out


def conv_variant(**switches):
    def conv_forward(x, w, b, stride, pad):
        return student_conv_forward(x, w, b, stride, pad, **switches)

    return conv_forward


def test_conv_forward_padding_term_missing_is_named_by_the_shape(draws):
    fails(a1.check_conv_forward, conv_variant(size="no padding"),
          r"conv_forward: output shape is \(2, \d+, \d+, \d+\), expected \(2, \d+, \d+, \d+\): output (height|width) "
          r"(\d+), expected (?!\2)\d+: check the padding term of the output-size formula: "
          r"floor\(\(([HW]) \+ 2\*pad - f\)/stride\) \+ 1 \[case 2 of \d+: x \(", regex=True)


def test_conv_forward_brief_example_message():
    """The message of the brief: output height 5, expected 6 (H = 6, f = 3, pad = 1, stride = 1)."""
    x = np.zeros((2, 6, 6, 3))
    value = student_conv_forward(x, np.zeros((3, 3, 3, 8)), np.zeros(8), 1, 1, size="no padding")
    with pytest.raises(CheckError, match=re.escape(
            "conv_forward: output shape is (2, 4, 4, 8), expected (2, 6, 6, 8): output height 4, expected 6: "
            "check the padding term of the output-size formula")):
        a1._check_array(value, np.zeros((2, 6, 6, 8)), "conv_forward", "output",
                        ("batch size", "output height", "output width", "channels"), inputs={},
                        shape_hints=a1._conv_shape_hints(2, 6, 6, 8, 3, 1, 1))


@pytest.mark.parametrize("switches, message", [
    ({"flip": True}, "your output equals true convolution: you flipped the kernel, but CNN layers compute "
                     "cross-correlation (no flip)"),
    ({"bias": "none"}, "off by the bias: add b[k] to every output of filter k"),
    ({"bias": "everywhere"}, "the bias counts f*f*C times: add b[k] once per output, not to every product"),
    ({"window_stride": False}, "the window of output (h, w) starts at (h*stride, w*stride) in the padded input: "
                               "you used (h, w), so the stride never moved the window"),
    ({"window_stride": False, "size": "stride 1"}, "you ignored the stride: output (h, w) reads the window "
                                                   "starting at (h*stride, w*stride)"),
    ({"layout": "nchw output"}, "your output is channels-first (N, F, H', W'): this function returns NHWC "
                                "(N, H', W', F), like Keras"),
])
def test_conv_forward_mistakes(switches, message, draws):
    fails(a1.check_conv_forward, conv_variant(**switches), "conv_forward: output is wrong: " + message)


def test_conv_forward_output_index_times_stride(draws):
    def conv_forward(x, w, b, stride, pad):  # loops over input positions and writes out[h] for window start h
        n_images, h, wd, c = x.shape
        f, _, _, filters = w.shape
        x_pad = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        out = np.zeros((n_images, h + 2 * pad - f + 1, wd + 2 * pad - f + 1, filters))
        for n in range(n_images):
            for top in range(0, h + 2 * pad - f + 1, stride):
                for left in range(0, wd + 2 * pad - f + 1, stride):
                    for k in range(filters):
                        window = x_pad[n, top:top + f, left:left + f, :]
                        out[n, top, left, k] = np.sum(window * w[:, :, :, k]) + b[k]
        return out

    fails(a1.check_conv_forward, conv_forward, "conv_forward: output is wrong: you wrote output (h, w) at index "
          "(h*stride, w*stride): the stride moves the window in the input")


def test_conv_forward_channels_first_input_is_named(draws):
    fails(a1.check_conv_forward, dave_conv_forward, "conv_forward: output is wrong: your output matches "
          "channels-first (NCHW) input: this function takes NHWC, x[n, h, w, c] [case 1 of ")

    def transposed_back(x, w, b, stride, pad):
        return np.transpose(dave_conv_forward(x, w, b, stride, pad), (0, 2, 3, 1))

    fails(a1.check_conv_forward, transposed_back, "your output matches channels-first (NCHW) input")


@pytest.mark.parametrize("size, message", [
    (lambda n, f, p, s: (n + p - f) // s + 1, "the padding adds pad zeros on each side: the padded size is "),
    (lambda n, f, p, s: n + 2 * p - f + 1, "check the stride: divide ("),
    (lambda n, f, p, s: (n + 2 * p - f) // s, "off by one: floor(("),
    (lambda n, f, p, s: -(-(n + 2 * p - f) // s) + 1, "round down, not up: a window that does not fit"),
])
def test_conv_forward_size_slips_are_named_by_the_shape(size, message, draws):
    def conv_forward(x, w, b, stride, pad):  # right values where they exist, in an array of the wrong size
        right = student_conv_forward(x, w, b, stride, pad)
        f = w.shape[0]
        out = np.zeros((x.shape[0], size(x.shape[1], f, pad, stride), size(x.shape[2], f, pad, stride), w.shape[3]))
        rows, cols = min(out.shape[1], right.shape[1]), min(out.shape[2], right.shape[2])
        out[:, :rows, :cols] = right[:, :rows, :cols]
        return out

    fails(a1.check_conv_forward, conv_forward,
          r"conv_forward: output shape is \([^)]*\), expected \([^)]*\): output (height|width) \d+, expected \d+: "
          + re.escape(message), regex=True)


def test_conv_forward_channels_of_the_input(draws):
    def conv_forward(x, w, b, stride, pad):
        out = student_conv_forward(x, w, b, stride, pad)
        return np.zeros(out.shape[:3] + (x.shape[3],))

    fails(a1.check_conv_forward, conv_forward,
          r"channels \d+, expected \d+: the output has one channel per filter, F = w.shape\[3\] = \d+, not the "
          r"input's C = \d+", regex=True)


# ---------------------------------------------------------------------------
# pool_forward


def student_pool_forward(x, f, stride, mode, *, swap=False, total=False, window_stride=True, size="right",
                         channels="each", layout="nhwc"):
    n_images, h, wd, c = x.shape
    if size == "right":
        h_out, w_out = (h - f) // stride + 1, (wd - f) // stride + 1
    else:
        h_out, w_out = h - f + 1, wd - f + 1
    use_max = (mode == "max") != swap
    out = np.zeros((n_images, h_out, w_out, c if channels == "each" else 1))
    for n in range(n_images):
        for i in range(h_out):
            for j in range(w_out):
                top, left = (i * stride, j * stride) if window_stride else (i, j)
                if channels == "each":
                    for ch in range(c):
                        window = x[n, top:top + f, left:left + f, ch]
                        out[n, i, j, ch] = np.max(window) if use_max else (
                            np.sum(window) if total else np.mean(window))
                else:
                    window = x[n, top:top + f, left:left + f, :]
                    out[n, i, j, 0] = np.max(window) if use_max else np.mean(window)
    if channels == "squeezed":
        return out[..., 0]
    if channels == "broadcast":
        return np.repeat(out, c, axis=3)
    return np.transpose(out, (0, 3, 1, 2)) if layout == "nchw output" else out


def dave_pool_forward(x, f, stride, mode="max"):
    """Dave reads x as channels-first (N, C, H, W) (this is examples/ dave's code)."""
    N, C, H, W = x.shape
    H_out = (H - f) // stride + 1
    W_out = (W - f) // stride + 1
    out = np.zeros((N, C, H_out, W_out))
    for n in range(N):
        for c in range(C):
            for h in range(H_out):
                for w_ in range(W_out):
                    window = x[n, c, h * stride:h * stride + f, w_ * stride:w_ * stride + f]
                    out[n, c, h, w_] = np.max(window) if mode == "max" else np.mean(window)
    return out


def pool_variant(**switches):
    def pool_forward(x, f, stride, mode="max"):
        return student_pool_forward(x, f, stride, mode, **switches)

    return pool_forward


CHANNELS = ("you pooled across channels: pooling works on each channel separately, e.g. "
            "np.max(x[n, h0:h0 + f, w0:w0 + f, c]) for channel c")


@pytest.mark.parametrize("switches, message", [
    ({"swap": True}, "for mode='max' you computed the average of each window: max and average are swapped"),
    ({"window_stride": False}, "the window of output (h, w) starts at (h*stride, w*stride): you used (h, w), so "
                               "the stride never moved the window"),
    ({"window_stride": False, "size": "stride 1"}, "you ignored the stride: windows start every stride rows "
                                                   "and columns, and there are floor((H - f)/stride) + 1 rows"),
    ({"channels": "broadcast"}, CHANNELS),
    ({"channels": "one"}, CHANNELS),
    ({"channels": "squeezed"}, CHANNELS),
    ({"layout": "nchw output"}, "your output is channels-first (N, C, H', W'): this function returns NHWC "
                                "(N, H', W', C), like Keras"),
])
def test_pool_forward_mistakes(switches, message, draws):
    fails(a1.check_pool_forward, pool_variant(**switches), "pool_forward: output is wrong: " + message)


def test_pool_forward_average_mistakes(draws):
    def only_average_swapped(x, f, stride, mode="max"):
        return student_pool_forward(x, f, stride, mode, swap=mode == "average")

    fails(a1.check_pool_forward, only_average_swapped,
          "for mode='average' you computed the max of each window: max and average are swapped")

    def window_sums(x, f, stride, mode="max"):
        return student_pool_forward(x, f, stride, mode, total=True)

    fails(a1.check_pool_forward, window_sums, "you computed the sum of each window: the average divides it by f*f")


def test_pool_forward_channels_first_input_is_named(draws):
    fails(a1.check_pool_forward, dave_pool_forward, "pool_forward: output is wrong: your output matches "
          "channels-first (NCHW) input: this function takes NHWC, x[n, h, w, c] [case 1 of ")

    def transposed_back(x, f, stride, mode="max"):
        return np.transpose(dave_pool_forward(x, f, stride, mode), (0, 2, 3, 1))

    fails(a1.check_pool_forward, transposed_back, "your output matches channels-first (NCHW) input")


@pytest.mark.parametrize("size, message", [
    (lambda n, f, s: n - f + 1, "check the stride: divide (H - f) by the stride, floor, then add 1"),
    (lambda n, f, s: (n - f) // s, "off by one: floor((H - f)/stride) + 1"),
    (lambda n, f, s: -(-(n - f) // s) + 1, "round down, not up"),
])
def test_pool_forward_size_slips_are_named_by_the_shape(size, message, draws):
    def pool_forward(x, f, stride, mode="max"):
        return np.zeros((x.shape[0], size(x.shape[1], f, stride), size(x.shape[2], f, stride), x.shape[3]))

    fails(a1.check_pool_forward, pool_forward,
          r"pool_forward: output shape is \([^)]*\), expected \([^)]*\): output (height|width) \d+, expected \d+: "
          + re.escape(message).replace("H", "[HW]"), regex=True)


# ---------------------------------------------------------------------------
# conv_backward


def student_conv_backward(dout, x, w, b, stride, pad, *, swap=False, dx_assign=False, dw_assign=False,
                          db_assign=False, order="nhwk", window_stride=True, crop="right", dx_flip=False,
                          dw_reset_per_example=False, dw_first_example=False, dw_mean=False, dw_flip=False,
                          dw_layout="hwio", db_mode="sum"):
    n_images, h, wd, c = x.shape
    f, _, _, filters = w.shape
    _, h_out, w_out, _ = dout.shape
    x_pad = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    dx_pad = np.zeros(x_pad.shape)
    dw = np.zeros(w.shape)
    db = np.zeros(filters)
    w_dx = w[::-1, ::-1] if dx_flip else w
    for n in range(n_images):
        if dw_reset_per_example:
            dw = np.zeros(w.shape)
        if dw_first_example and n > 0:
            dw_frozen = dw.copy()
        if order == "nhwk":
            positions = [(i, j, k) for i in range(h_out) for j in range(w_out) for k in range(filters)]
        else:
            positions = [(i, j, k) for k in range(filters) for i in range(h_out) for j in range(w_out)]
        for i, j, k in positions:
            top, left = (i * stride, j * stride) if window_stride else (i, j)
            g = dout[n, i, j, k]
            window = x_pad[n, top:top + f, left:left + f, :]
            to_dx, to_dw = (window, w_dx[:, :, :, k]) if swap else (w_dx[:, :, :, k], window)
            if dx_assign:
                dx_pad[n, top:top + f, left:left + f, :] = to_dx * g
            else:
                dx_pad[n, top:top + f, left:left + f, :] += to_dx * g
            if dw_assign:
                dw[:, :, :, k] = to_dw * g
            else:
                dw[:, :, :, k] += to_dw * g
            if db_assign:
                db[k] = g
            else:
                db[k] += g
        if dw_first_example and n > 0:
            dw = dw_frozen
    if dw_mean:
        dw = dw / n_images
    if dw_flip:
        dw = dw[::-1, ::-1]
    if dw_layout == "oihw":
        dw = np.transpose(dw, (3, 2, 0, 1))
    db = {"sum": db, "per example": dout.sum(axis=(1, 2)), "last example": dout[-1].sum(axis=(0, 1)),
          "first example": dout[0].sum(axis=(0, 1)), "mean": dout.sum(axis=(1, 2)).mean(axis=0),
          "all": dout.sum(), "over k": dout.sum(axis=3), "keepdims": dout.sum(axis=(0, 1, 2), keepdims=True)}[db_mode]
    dx = {"right": dx_pad[:, pad:pad + h, pad:pad + wd, :], "none": dx_pad,
          "corner": dx_pad[:, :h, :wd, :], "minus": dx_pad[:, pad:-pad, pad:-pad, :]}[crop]
    return dx, dw, db


def backward_variant(**switches):
    def conv_backward(dout, x, w, b, stride, pad):
        return student_conv_backward(dout, x, w, b, stride, pad, **switches)

    return conv_backward


NOT_ACCUMULATED_DX = ("dx is not accumulated: overlapping windows (and the F filters) all add to the same input "
                      "pixels, so use dx_pad[...] += ..., not =")
DB_NOT_SUMMED = "db is not summed over the batch: db[k] is the sum of dout[n, h, w, k] over n, h and w, shape (F,)"


@pytest.mark.parametrize("switches, message", [
    ({"swap": True}, "dx is wrong: dx and dw are swapped: dx_pad[window] += w[:, :, :, k] * dout[n, h, w, k] and "
                     "dw[:, :, :, k] += x_pad[window] * dout[n, h, w, k]"),
    ({"dx_assign": True}, "dx is wrong: " + NOT_ACCUMULATED_DX),
    ({"dx_assign": True, "order": "nkhw"}, "dx is wrong: " + NOT_ACCUMULATED_DX),
    ({"window_stride": False}, "dx is wrong: the window of output (h, w) starts at (h*stride, w*stride) in the "
                               "padded input, in the backward pass as in the forward pass: you used (h, w)"),
    ({"crop": "none"}, "dx is wrong: dx still has the padding: return dx_pad[:, pad:pad + H, pad:pad + W, :], "
                       "the shape of x"),
    ({"crop": "corner"}, "dx is wrong: crop the padding from both sides: dx = dx_pad[:, pad:pad + H, "
                         "pad:pad + W, :]"),
    ({"dx_flip": True}, "dx is wrong: dx used the flipped kernel: the forward pass does not flip it"),
    ({"dw_assign": True}, "dw is wrong: dw is not accumulated: every window and every example adds to "
                          "dw[:, :, :, k], so use dw[:, :, :, k] += ..., not ="),
    ({"dw_reset_per_example": True}, "dw is wrong: dw is not summed over the batch: add the contributions of "
                                     "every example n"),
    ({"dw_first_example": True}, "dw is wrong: dw is not summed over the batch"),
    ({"dw_mean": True}, "dw is wrong: you divided dw by the batch size: the gradient of a sum over the batch is "
                        "the sum of the gradients"),
    ({"dw_flip": True}, "dw is wrong: dw is flipped: the forward pass does not flip the kernel"),
    ({"dw_layout": "oihw"}, "dw is wrong: dw must have the shape of w, (f, f, C, F) (HWIO): you returned "
                            "(F, C, f, f)"),
    ({"db_mode": "per example"}, "db is wrong: " + DB_NOT_SUMMED),
    ({"db_mode": "last example"}, "db is wrong: " + DB_NOT_SUMMED),
    ({"db_mode": "first example"}, "db is wrong: " + DB_NOT_SUMMED),
    ({"db_mode": "mean"}, "db is wrong: " + DB_NOT_SUMMED),
    ({"db_assign": True}, "db is wrong: db is not accumulated: every output position adds to db[k], so use "
                          "db[k] += dout[n, h, w, k], not ="),
    ({"db_mode": "all"}, "db is wrong: db has one value per filter: sum dout over n, h and w, but not over the "
                         "filters k"),
    ({"db_mode": "over k"}, "db is wrong: db has one value per filter k: sum dout[n, h, w, k] over n, h and w "
                            "(axes 0, 1, 2), not over k"),
])
def test_conv_backward_mistakes(switches, message, draws):
    fails(a1.check_conv_backward, backward_variant(**switches), "conv_backward: " + message)


def test_conv_backward_dw_swapped_alone(draws):
    def conv_backward(dout, x, w, b, stride, pad):
        dx, _, db = student_conv_backward(dout, x, w, b, stride, pad)
        return dx, student_conv_backward(dout, x, w, b, stride, pad, swap=True)[1], db

    fails(a1.check_conv_backward, conv_backward, "conv_backward: dw is wrong: dx and dw are swapped")


def test_conv_backward_shape_slips(draws):
    fails(a1.check_conv_backward, backward_variant(crop="minus"),
          r"conv_backward: dx shape is \(2, 0, 0, \d\), expected \(2, \d, \d, \d\): height 0, expected \d: dx is "
          r"empty: with pad = 0, dx_pad\[:, pad:-pad\] selects nothing; slice with "
          r"dx_pad\[:, pad:pad \+ H, pad:pad \+ W, :\] \[case 2 of", regex=True)
    fails(a1.check_conv_backward, backward_variant(db_mode="keepdims"),
          r"conv_backward: db shape is \(1, 1, 1, \d\), expected \(\d,\): 4 dimensions, expected 1: db must have "
          r"the shape of b, \(F,\): sum over axes \(0, 1, 2\) without keepdims", regex=True)

    def padded_zeros(dout, x, w, b, stride, pad):
        dx, dw, db = student_conv_backward(dout, x, w, b, stride, pad, crop="none")
        return np.zeros_like(dx), dw, db

    fails(a1.check_conv_backward, padded_zeros, "dx still has the padding: return dx_pad[:, pad:pad + H, "
                                                "pad:pad + W, :], the shape of x")


def test_conv_backward_returns_a_tuple(draws):
    fails(a1.check_conv_backward, lambda dout, x, w, b, stride, pad: student_conv_backward(
        dout, x, w, b, stride, pad)[0], "conv_backward: should return a tuple (dx, dw, db), got a ndarray")
    fails(a1.check_conv_backward, lambda dout, x, w, b, stride, pad: student_conv_backward(
        dout, x, w, b, stride, pad)[:2], "conv_backward: should return a tuple (dx, dw, db), got a tuple of length 2")


def test_conv_backward_hidden_uses_the_reference(monkeypatch):
    monkeypatch.setenv(g.SEED_VARIABLE, "3")
    fails(a1.check_conv_backward, backward_variant(db_mode="per example"), "db is wrong: " + DB_NOT_SUMMED,
          hidden=True)


# ---------------------------------------------------------------------------
# pool_backward


def student_pool_backward(dout, x, f, stride, mode, *, route="argmax", assign=False, window_stride=True,
                          swap=False, shape="x"):
    dx = np.zeros(x.shape)
    n_images, h_out, w_out, c = dout.shape
    use_max = (mode == "max") != swap
    for n in range(n_images):
        for i in range(h_out):
            for j in range(w_out):
                for ch in range(c):
                    top, left = (i * stride, j * stride) if window_stride else (i, j)
                    window = x[n, top:top + f, left:left + f, ch]
                    g = dout[n, i, j, ch]
                    if route == "all":
                        part = np.ones(window.shape) * g
                    elif use_max:
                        mask = window == np.max(window)
                        part = mask * 1.0 if route == "mask only" else mask * g
                    else:
                        part = np.ones(window.shape) * g / (f * f)
                    if assign:
                        dx[n, top:top + f, left:left + f, ch] = part
                    else:
                        dx[n, top:top + f, left:left + f, ch] += part
    return np.zeros(dout.shape) if shape == "dout" else dx


def pool_backward_variant(**switches):
    def pool_backward(dout, x, f, stride, mode="max"):
        return student_pool_backward(dout, x, f, stride, mode, **switches)

    return pool_backward


@pytest.mark.parametrize("switches, message", [
    ({"route": "all"}, "you routed dout[n, h, w, c] to every element of the window: max pooling sends it only to "
                       "the argmax, the position of the window's maximum (mask = window == np.max(window))"),
    ({"route": "mask only"}, "the mask says where the maximum is: multiply it by dout[n, h, w, c]"),
    ({"swap": True}, "for mode='max' you computed the gradient of average pooling: the modes are swapped"),
    ({"assign": True}, "dx is not accumulated: a pixel in several overlapping windows gets the sum of their "
                       "gradients, so use dx[...] += ..., not ="),
    ({"window_stride": False}, "the window of output (h, w) starts at (h*stride, w*stride), in the backward pass "
                               "as in the forward pass: you used (h, w)"),
])
def test_pool_backward_max_mistakes(switches, message, draws):
    fails(a1.check_pool_backward, pool_backward_variant(**switches), "pool_backward: dx is wrong: " + message
          + " [case 1 of")


@pytest.mark.parametrize("switches, message", [
    ({"route": "all"}, "average pooling spreads dout[n, h, w, c] evenly: each of the f*f positions gets "
                       "dout[n, h, w, c] / (f*f)"),
    ({"swap": True}, "for mode='average' you computed the gradient of max pooling: the modes are swapped"),
    ({"assign": True}, "dx is not accumulated: a pixel in several overlapping windows gets the sum"),
    ({"window_stride": False}, "the window of output (h, w) starts at (h*stride, w*stride)"),
])
def test_pool_backward_average_mistakes(switches, message, draws):
    def pool_backward(dout, x, f, stride, mode="max"):
        if mode == "max":
            return student_pool_backward(dout, x, f, stride, mode)
        return student_pool_backward(dout, x, f, stride, mode, **switches)

    fails(a1.check_pool_backward, pool_backward, "pool_backward: dx is wrong: " + message)


def test_pool_backward_shape_of_dout(draws):
    fails(a1.check_pool_backward, pool_backward_variant(shape="dout"),
          "dx has the shape of dout: it must have the shape of x, the gradient flows back to the input of the pooling")


# ---------------------------------------------------------------------------
# Forbidden references


def test_forbidden_library_calls_fail(unseeded):
    def scipy_conv(x, w, b, stride, pad):
        import scipy.signal

        scipy.signal.correlate(x[0, :, :, 0], w[:, :, 0, 0], mode="valid")
        return student_conv_forward(x, w, b, stride, pad)

    # "called ..." when the library was imported before the check (its function is a tripwire), "imported ..."
    # when the student's function imports it during the check (blocked: forbidden libraries are not imported
    # by the checks themselves). Which one depends on what this test process imported earlier.
    with pytest.raises(ForbiddenCall, match=r"conv_forward (called scipy.signal.correlate|"
                                            r"imported scipy\S* while it was checked): "
                                            r"this assignment is about writing the loops yourself"):
        a1.check_conv_forward(scipy_conv)

    def torch_conv(x, w, b, stride, pad):
        import torch
        import torch.nn.functional as F

        out = F.conv2d(torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(w).permute(3, 2, 0, 1),
                       torch.from_numpy(b), stride=stride, padding=pad)
        return out.permute(0, 2, 3, 1).numpy()

    with pytest.raises(ForbiddenCall, match=r"conv_forward (called torch.nn.functional.conv2d|"
                                            r"imported torch\S* while it was checked)"):
        a1.check_conv_forward(torch_conv)

    def torch_pool(x, f, stride, mode="max"):
        import torch

        return torch.nn.MaxPool2d(f, stride)(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()

    with pytest.raises(ForbiddenCall, match=r"pool_forward (called torch.nn.functional.max_pool2d|"
                                            r"imported torch\S* while it was checked)"):
        a1.check_pool_forward(torch_pool)

    def numpy_correlate(a_slice, w, b):
        return float(np.correlate(a_slice.ravel(), w.ravel())[0] + b)

    with pytest.raises(ForbiddenCall, match="conv_single_step called numpy.correlate"):
        a1.check_conv_single_step(numpy_correlate)


def test_the_course_references_are_forbidden(unseeded):
    from utils import conv, shapes

    def course_conv(x, w, b, stride, pad):
        out = conv.conv2d(np.transpose(x, (0, 3, 1, 2)), np.transpose(w, (3, 2, 0, 1)), b, stride, pad)
        return np.transpose(out, (0, 2, 3, 1))

    with pytest.raises(ForbiddenCall, match="conv_forward uses the module utils.conv"):
        a1.check_conv_forward(course_conv)

    def course_size(n, f, pad, stride):
        return shapes.conv_output_size(n, f, stride, pad)

    with pytest.raises(ForbiddenCall, match="conv_output_size uses the module utils.shapes"):
        a1.check_conv_output_size(course_size)

    def course_size_imported_inside(n, f, pad, stride):
        import utils.shapes

        return utils.shapes.conv_output_size(n, f, stride, pad)

    with pytest.raises(ForbiddenCall, match="conv_output_size called utils.shapes.conv_output_size"):
        a1.check_conv_output_size(course_size_imported_inside)

    def course_backward(dout, x, w, b, stride, pad):
        import utils.conv as reference

        return reference.conv2d_backward(dout, x, w, stride, pad)

    with pytest.raises(ForbiddenCall, match="conv_backward called utils.conv.conv2d_backward"):
        a1.check_conv_backward(course_backward)


@pytest.mark.slow
def test_tensorflow_is_forbidden_once_imported(unseeded):
    import tensorflow as tf

    def keras_user(x, w, b, stride, pad):
        padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        return tf.nn.conv2d(padded, w, strides=stride, padding="VALID").numpy() + b

    with pytest.raises(ForbiddenCall, match="conv_forward called tensorflow.nn.conv2d"):
        a1.check_conv_forward(keras_user)
    a1.check_conv_forward(SOLUTION["conv_forward"])  # a right function is unaffected by the import


def helper_with_a_renamed_reference(x, w):
    return renamed_correlate2d(x, w, mode="valid")  # noqa: F821 (bound below)


def test_a_renamed_reference_in_a_helper_is_caught(unseeded):
    from scipy.signal import correlate2d

    globals()["renamed_correlate2d"] = correlate2d
    try:
        def conv_forward(x, w, b, stride, pad):
            helper_with_a_renamed_reference(x[0, :, :, 0], w[:, :, 0, 0])
            return student_conv_forward(x, w, b, stride, pad)

        conv_forward.__module__ = helper_with_a_renamed_reference.__module__
        with pytest.raises(ForbiddenCall, match=r"conv_forward uses scipy.signal.correlate2d \(as "
                                                r"'renamed_correlate2d'\)"):
            a1.check_conv_forward(conv_forward)
    finally:
        del globals()["renamed_correlate2d"]
    assert np.array_equal(np.convolve([1.0, 2.0], [1.0]), [1.0, 2.0])  # the tripwires are gone


def test_checks_write_nothing_to_stderr(unseeded, capsys):
    def noisy(x, w, b, stride, pad):
        import warnings

        warnings.warn("a student's warning", RuntimeWarning, stacklevel=1)
        np.log(np.zeros(1))
        return student_conv_forward(x, w, b, stride, pad)

    a1.check_conv_forward(noisy)
    with pytest.raises(CheckError):
        a1.check_conv_backward(backward_variant(dx_assign=True))
    assert capsys.readouterr().err == ""
