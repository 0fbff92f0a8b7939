"""Checks of assignment a1_numpy_convolution: convolution and pooling step by step in NumPy.

Every array is **channels-last, like Keras/TensorFlow**:

==========  ===================  ==============================================
name        shape                meaning
==========  ===================  ==============================================
``x``       ``(N, H, W, C)``     N images, H rows, W columns, C channels (NHWC)
``w``       ``(f, f, C, F)``     F filters of f x f x C weights (HWIO)
``b``       ``(F,)``             one bias per filter
``out``     ``(N, H', W', F)``   H' = floor((H + 2 pad - f) / stride) + 1
``dout``    shape of ``out``     upstream gradient of the backward passes
==========  ===================  ==============================================

One ``check_<function>(function, hidden=False)`` per graded function. A check
calls the student's function on several random cases (visible: fresh inputs
on every run of a student; hidden: inputs from the grader's secret seed), and
runs named checks in order: type, shape, dtype, finite, values (and: the
inputs are left unchanged). Expected values come from the float64 references
of ``utils.conv`` (channels-first, so the arrays are transposed), computed
before the student's function runs. A wrong answer is compared with the
outputs of known mistakes, and the message names the likely one; every
message ends with the case that failed, e.g.

    conv_forward: output shape is (2, 3, 4, 3), expected (2, 4, 5, 3): output
    height 3, expected 4: check the padding term of the output-size formula
    [case 2 of 4: x (2, 7, 9, 2), w (2, 2, 2, 3), b (3,), stride=2, pad=2]

The student's function runs with the course's references and the library
convolutions (``utils.conv``, ``utils.shapes``' sizes and counts,
``scipy.signal``, ``scipy.ndimage``, ``numpy.convolve``/``correlate``,
PyTorch's ``conv2d``/pooling, TensorFlow's if it is imported) turned into
tripwires: calling one fails with :class:`~utils.grading.ForbiddenCall`.

A visible check prints one line when everything passed, e.g.
``zero_pad: all 6 checks passed (...)``; the backward checks also print, per
case, the relative error of each gradient against the numerical gradient, as
in cs231n. Nothing is written to stderr: warnings raised while a check runs
(the student's included) are silenced, because nbgrader gives 0 points to a
test cell with stderr output.

A failed check shows only its message in Jupyter (no traceback through this
module, and none of the test cell's lines, which would show the hidden tests in
nbgrader's feedback); an error raised by the student's code shows the
student's frames only, with a note naming the case. A blank function
(``raise NotImplementedError()``) fails with "not implemented yet".

Generic helpers defined here (candidates for ``utils.grading`` if another
assignment needs them): :func:`guard` (``forbid`` plus a scan of the
student's own helper functions, warnings silenced), :func:`rel_error`
(cs231n's relative error) and ``_student_traceback``. The message-only
rendering of failed checks and the redaction of reference values in hidden
checks come from ``utils.grading.graded``.
"""

from __future__ import annotations

import contextlib
import pathlib
import sys
import traceback
import types
import warnings
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from utils import conv as _reference
from utils.grading import (
    CheckError,
    ForbiddenCall,
    Mistake,
    case_rng,
    check_close,
    check_dtype,
    check_finite,
    check_shape,
    check_type,
    diagnose,
    forbid,
    graded,
    numerical_gradient,
    passed,
)

__all__ = [
    "check_zero_pad",
    "check_conv_single_step",
    "check_conv_output_size",
    "check_conv_forward",
    "check_conv_param_count",
    "check_pool_forward",
    "check_conv_backward",
    "check_pool_backward",
    "guard",
    "rel_error",
    "forbidden_targets",
]

NOT_IMPLEMENTED = ("not implemented yet: it raised NotImplementedError; replace `raise NotImplementedError()` "
                   "with your code")
RTOL, ATOL = 1e-6, 1e-8  # float64 answers: loops and BLAS agree far better than this
NUMERIC_RTOL, NUMERIC_ATOL = 1e-5, 1e-7  # against a centred-difference gradient (h = 1e-5)

HINT = (
    "this assignment is about writing the loops yourself; the library and course "
    "implementations are off limits here (NumPy slicing, np.sum, np.max, np.mean and np.pad are fine)"
)

# ---------------------------------------------------------------------------
# Forbidden references


def forbidden_targets() -> list[str]:
    """Dotted names of the functions a student may not call in this assignment.

    TensorFlow's are included only if TensorFlow is already imported (importing
    it just to forbid it would cost seconds on every check).
    """
    from utils import shapes

    targets = [f"utils.conv.{name}" for name in _reference.__all__]
    targets += [
        f"utils.shapes.{name}"
        for name in ("conv_output_size", "pool_output_size", "conv_params", "count_params", "summarize",
                     "conv_macs")
        if hasattr(shapes, name)
    ]
    targets += [
        "scipy.signal.correlate", "scipy.signal.correlate2d", "scipy.signal.convolve",
        "scipy.signal.convolve2d", "scipy.signal.fftconvolve", "scipy.signal.oaconvolve",
        "scipy.ndimage.convolve", "scipy.ndimage.correlate", "scipy.ndimage.maximum_filter",
        "scipy.ndimage.uniform_filter",
        "numpy.convolve", "numpy.correlate",
        "torch.nn.functional.conv2d", "torch.nn.functional.max_pool2d", "torch.nn.functional.avg_pool2d",
        "torch.nn.grad.conv2d_input", "torch.nn.grad.conv2d_weight",
        "torch.conv2d", "torch.max_pool2d", "torch.avg_pool2d",
    ]
    if "tensorflow" in sys.modules:
        targets += ["tensorflow.nn.conv2d", "tensorflow.nn.convolution", "tensorflow.nn.max_pool2d",
                    "tensorflow.nn.avg_pool2d", "tensorflow.nn.pool"]
    return targets


def _helpers(function: Callable) -> list[Callable]:
    """The student's own functions that ``function`` reaches by name (recursively)."""
    found, todo = [], [function]
    seen = {id(function)}
    while todo:
        current = todo.pop()
        code = getattr(current, "__code__", None)
        if code is None:
            continue
        names = set(code.co_names)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                names |= set(const.co_names)
        for name in names:
            value = current.__globals__.get(name)
            if (isinstance(value, types.FunctionType) and id(value) not in seen
                    and value.__module__ == function.__module__):
                seen.add(id(value))
                found.append(value)
                todo.append(value)
    return found


@contextlib.contextmanager
def guard(function: Callable, name: str, hint: str = HINT) -> Iterator[None]:
    """Run the block with the forbidden references as tripwires, warnings silenced.

    Like :func:`utils.grading.forbid`, and also scans the student's helper
    functions that ``function`` calls by name (``conv_forward`` calling
    ``zero_pad`` ...), so that a reference bound under another name is caught
    there too.
    """
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        targets = forbidden_targets()
        for helper in _helpers(function):
            with forbid(helper, targets, name, hint):
                pass
        with forbid(function, targets, name, hint):
            yield


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


@contextlib.contextmanager
def _case(index: int, total: int, description: str) -> Iterator[None]:
    """Add the failing case to a CheckError's message (a ForbiddenCall stays as it is).

    Any other exception (an IndexError in the student's loop ...) gets a note naming the case, and is
    shown in Jupyter with the student's frames only (see :func:`_student_traceback`).
    """
    try:
        yield
    except ForbiddenCall:
        raise
    except CheckError as error:
        raise CheckError(f"{error} [case {index} of {total}: {description}]") from None
    except Exception as error:
        error.add_note(f"(raised by the checked function on case {index} of {total}: {description})")
        with contextlib.suppress(AttributeError, TypeError):
            error._render_traceback_ = lambda error=error: _student_traceback(error)
        raise


def _student_traceback(error: BaseException) -> list[str]:
    """The traceback of an error raised in the student's code, from the student's function down.

    The frames of the test cell and of this module are left out: they teach nothing, and the test
    cell's context lines would show the hidden tests in nbgrader's feedback.
    """
    internal = {pathlib.Path(__file__).resolve(), pathlib.Path(contextlib.__file__).resolve(),
                pathlib.Path(forbid.__code__.co_filename).resolve()}
    frames = traceback.extract_tb(error.__traceback__)
    last_internal = max((i for i, frame in enumerate(frames)
                         if pathlib.Path(frame.filename).resolve() in internal), default=-1)
    text = ["Traceback (most recent call last):\n", *traceback.format_list(frames[last_internal + 1:]),
            *traceback.format_exception_only(type(error), error)]
    return "".join(text).rstrip("\n").split("\n")


def rel_error(a, b) -> float:
    """cs231n's relative error: max |a - b| / max(1e-8, |a| + |b|)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


def _error_text(value, numeric: np.ndarray) -> str:
    """The relative error for the cs231n-style line, or why there is none."""
    if type(value) is not np.ndarray:
        return f"(not an array: {type(value).__name__})"
    if value.shape != numeric.shape:
        return f"(shape {value.shape}, expected {numeric.shape})"
    with _quiet():
        return f"{rel_error(value, numeric):.1e}"


# ---------------------------------------------------------------------------
# NHWC references (utils.conv is NCHW)


def _nchw(x):
    return np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2)))


def _nhwc(x):
    return np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1)))


def _oihw(w):
    return np.ascontiguousarray(np.transpose(w, (3, 2, 0, 1)))


def _hwio(w):
    return np.ascontiguousarray(np.transpose(w, (2, 3, 1, 0)))


def _pad(x, pad):
    return np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))


def _conv(x, w, b, stride, pad):
    """out (N, H', W', F) = cross-correlation of x (N, H, W, C) with w (f, f, C, F), plus b."""
    return _nhwc(_reference.conv2d(_nchw(x), _oihw(w), b, stride, pad))


def _pool(x, f, stride, mode):
    """Max or average pooling of x (N, H, W, C) over f x f windows: (N, H', W', C)."""
    pool = _reference.max_pool2d if mode == "max" else _reference.avg_pool2d
    return _nhwc(pool(_nchw(x), f, stride))


def _conv_backward(dout, x, w, stride, pad):
    dx, dw, db = _reference.conv2d_backward(_nchw(dout), _nchw(x), _oihw(w), stride, pad)
    return _nhwc(dx), _hwio(dw), np.ascontiguousarray(db)


def _pool_backward(dout, x, f, stride, mode):
    if mode == "max":
        return _nhwc(_reference.max_pool2d_backward(_nchw(dout), _nchw(x), f, stride))
    dx = np.zeros_like(x, dtype=np.float64)
    ho, wo = dout.shape[1:3]
    for i in range(f):
        for j in range(f):
            dx[:, i: i + stride * (ho - 1) + 1: stride, j: j + stride * (wo - 1) + 1: stride] += dout / (f * f)
    return dx


# ---------------------------------------------------------------------------
# Generic parts of a check


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return str(value.shape) if value.dtype == np.float64 else f"{value.shape} {value.dtype}"
    return repr(value)


def _case_text(case: dict) -> str:
    return ", ".join(f"{k} {_describe(v)}" if isinstance(v, np.ndarray) else f"{k}={v!r}"
                     for k, v in case.items())


def _copies(case: dict) -> dict:
    return {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in case.items()}


def _call(function, name: str, case: dict):
    """The student's function on copies of the case's inputs, under the tripwires."""
    arguments = _copies(case)
    try:
        with guard(function, name):
            result = function(*arguments.values())  # positional: a renamed parameter still works
    except NotImplementedError:
        raise CheckError(f"{name}: {NOT_IMPLEMENTED}") from None
    if result is None:
        raise CheckError(f"{name}: returned None: did you forget the `return` statement?")
    for key, value in case.items():
        if isinstance(value, np.ndarray) and not (
            arguments[key].shape == value.shape and np.array_equal(arguments[key], value)
        ):
            raise CheckError(f"{name}: it modified its input {key}: work on a copy "
                             f"(the caller still needs {key})")
    return result


def _check_array(value, expected, name: str, what: str, axes: Sequence[str], *, inputs: dict,
                 mistakes: Sequence[Mistake] = (), shape_hints: Sequence[tuple[tuple, str]] = (),
                 rtol: float = RTOL, atol: float = ATOL) -> None:
    """type, shape (known mistakes, then shape hints), dtype, finite, values."""
    if type(value) is not np.ndarray and isinstance(value, (np.generic, int, float)):
        with _quiet():
            mistake = diagnose(np.asarray(value), inputs, mistakes, rtol=rtol, atol=atol)
        if mistake is not None:
            raise CheckError(f"{name}: {what} is wrong: {mistake.message}")
    check_type(value, np.ndarray, name, what)
    if value.shape != expected.shape:
        with _quiet():
            mistake = diagnose(value, inputs, mistakes, rtol=rtol, atol=atol)
        if mistake is not None:
            raise CheckError(f"{name}: {what} is wrong: {mistake.message}")
        try:
            check_shape(value, expected.shape, name, what, axes)
        except CheckError as error:
            hints = [hint for shape, hint in shape_hints if tuple(shape) == value.shape]
            if len(set(hints)) == 1:
                raise CheckError(f"{error}: {hints[0]}") from None
            raise
    check_dtype(value, expected.dtype, name, what)
    check_finite(value, name, what)
    with _quiet():
        check_close(value, expected, name, what, rtol=rtol, atol=atol, inputs=inputs, mistakes=mistakes)


def _size_variants(n: int, f: int, pad: int, stride: int) -> dict[str, int]:
    """The output size along one axis, right and with the usual slips."""
    m = n + 2 * pad - f
    return {
        "right": m // stride + 1,
        "no padding": (n - f) // stride + 1,
        "padding once": (n + pad - f) // stride + 1,
        "no stride": m + 1,
        "no +1": m // stride,
        "ceil": -(-m // stride) + 1,
    }


_SIZE_HINTS = {
    "no padding": "check the padding term of the output-size formula: floor(({n} + 2*pad - f)/stride) + 1",
    "padding once": "the padding adds pad zeros on each side: the padded size is {n} + 2*pad, not {n} + pad",
    "no stride": "check the stride: divide ({n} + 2*pad - f) by the stride, floor, then add 1",
    "no +1": "off by one: floor(({n} + 2*pad - f)/stride) + 1, with the + 1 outside the floor "
             "(it counts the first window)",
    "ceil": "round down, not up: a window that does not fit entirely in the padded input is dropped "
            "(floor(({n} + 2*pad - f)/stride) + 1)",
}


def _conv_shape_hints(batch, h, w, channels, f, pad, stride, letters=("H", "W")):
    """(wrong output shape, hint) for each slip of the output-size formula."""
    rows, cols = _size_variants(h, f, pad, stride), _size_variants(w, f, pad, stride)
    hints = []
    for key, text in _SIZE_HINTS.items():
        shape = (batch, rows[key], cols[key], channels)
        if shape != (batch, rows["right"], cols["right"], channels):
            hints.append((shape, text.format(n=letters[0] if rows[key] != rows["right"] else letters[1])))
    return hints


def _distinct_sizes(h, w, f, pad, stride, keys=None) -> bool:
    """True if each slip of the output-size formula gives its own (H', W')."""
    rows, cols = _size_variants(h, f, pad, stride), _size_variants(w, f, pad, stride)
    keys = keys or list(rows)
    pairs = [(rows[k], cols[k]) for k in keys]
    return len(set(pairs)) == len(pairs) and min(min(p) for p in pairs) >= 1


def _bias(rng, size):
    """Biases far enough from 0 that forgetting them shows."""
    return rng.choice([-1.0, 1.0], size=size) * rng.uniform(0.5, 2.0, size=size)


def _report(name: str, hidden: bool, checks: list[str]) -> None:
    passed(f"{name} (hidden tests)" if hidden else name, checks)


# ---------------------------------------------------------------------------
# zero_pad


def _zero_pad_cases(rng, hidden):
    def draw(pad, dtype=np.float64, n=None, c=None, hw=(2, 7)):
        n = int(rng.integers(1, 4)) if n is None else n
        c = int(rng.integers(1, 5)) if c is None else c
        h, w = (int(v) for v in rng.integers(hw[0], hw[1], size=2))
        return {"x": rng.normal(size=(n, h, w, c)).astype(dtype), "pad": pad}

    cases = [draw(int(rng.integers(1, 4))), draw(int(rng.integers(1, 4))), draw(0),
             draw(int(rng.integers(1, 3)), np.float32)]
    if hidden:
        cases += [draw(int(rng.integers(4, 7)), hw=(1, 4)), draw(2, n=1, c=1), draw(1, np.float32, c=3)]
    return cases


def _zero_pad_mistakes():
    def np_pad(mode):
        return lambda x, pad: np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode=mode)

    def corner(x, pad):
        out = np.zeros((x.shape[0], x.shape[1] + 2 * pad, x.shape[2] + 2 * pad, x.shape[3]), x.dtype)
        out[:, : x.shape[1], : x.shape[2]] = x
        return out

    border = ("the border must be zeros, but you filled it with values copied from the image (np.pad's "
              "mode='edge', 'reflect' or 'symmetric'): use the default mode='constant'")
    return [
        Mistake("edge", border, np_pad("edge")),
        Mistake("reflect", border, np_pad("reflect")),
        Mistake("symmetric", border, np_pad("symmetric")),
        Mistake("corner", "x belongs in the middle, x_pad[:, pad:pad + H, pad:pad + W, :] = x: you put it "
                          "in the top-left corner", corner),
    ]


def _zero_pad_shape_hints(x, pad):
    n, h, w, c = x.shape
    p2 = 2 * pad
    keep = "pad only the spatial axes H and W (axes 1 and 2): np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))"
    return [
        ((n + p2, h + p2, w + p2, c + p2), f"you padded every axis, the batch and channel axes too: {keep}"),
        ((n + p2, h + p2, w + p2, c), f"you padded the batch axis too: {keep}"),
        ((n, h + p2, w + p2, c + p2), f"you padded the channel axis too: {keep}"),
        ((n, h, w + p2, c + p2), "you padded axes 2 and 3 as for channels-first (NCHW) input: this "
                                 f"function takes NHWC, {keep}"),
        ((n, h + pad, w + pad, c), "pad adds pad zeros on each side (top and bottom, left and right): "
                                   "the padded height is H + 2*pad"),
        ((n, h + 4 * pad, w + 4 * pad, c), "pad is the number of zeros on each side, not half of it: the "
                                           "padded height is H + 2*pad"),
        ((n, h + p2, w, c), "pad both spatial axes: the width gets 2*pad zeros too"),
        ((n, h, w + p2, c), "pad both spatial axes: the height gets 2*pad zeros too"),
    ]


@graded
def check_zero_pad(zero_pad: Callable, hidden: bool = False) -> None:
    """Check ``zero_pad(x, pad)``: x (N, H, W, C) -> (N, H + 2 pad, W + 2 pad, C), same dtype.

    The padding is zeros, on the spatial axes only (axes 1 and 2); x sits in
    the middle: ``x_pad[:, pad:pad + H, pad:pad + W, :] == x``.
    """
    name = "zero_pad"
    cases = _zero_pad_cases(case_rng(hidden, name), hidden)
    for index, case in enumerate(cases, 1):
        with _case(index, len(cases), _case_text(case)):
            expected = _pad(case["x"], case["pad"])
            value = _call(zero_pad, name, case)
            _check_array(value, expected, name, "output", ("batch size", "padded height", "padded width",
                                                            "channels"),
                         inputs=_copies(case), mistakes=_zero_pad_mistakes(),
                         shape_hints=_zero_pad_shape_hints(case["x"], case["pad"]), rtol=0, atol=0)
    _report(name, hidden, ["type", "shape", "dtype", "finite", f"values on {len(cases)} random cases",
                           "inputs unchanged"])


# ---------------------------------------------------------------------------
# conv_single_step


def _single_step_cases(rng, hidden):
    count = 6 if hidden else 4
    cases = []
    for i in range(count):
        f, c = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        if i == 0:
            f, c = int(rng.integers(2, 5)), int(rng.integers(2, 4))  # one f x f x C window with f, C >= 2
        b = float(_bias(rng, 1)[0])
        cases.append({"a_slice": rng.normal(size=(f, f, c)), "w": rng.normal(size=(f, f, c)),
                      "b": np.float64(b) if hidden and i % 2 else b})
    return cases


def _single_step_mistakes():
    return [
        Mistake("no bias", "off by the bias: add b once to the sum, Z = sum(a_slice * w) + b",
                lambda a_slice, w, b: np.sum(a_slice * w)),
        Mistake("bias everywhere", "you added b to every product before summing, so it counts f*f*C times: "
                                   "add it once, Z = sum(a_slice * w) + b",
                lambda a_slice, w, b: np.sum(a_slice * w + b)),
        Mistake("mean", "you averaged the products: Z is their sum, np.sum(a_slice * w) + b",
                lambda a_slice, w, b: np.mean(a_slice * w) + b),
        Mistake("times bias", "you multiplied by the bias: add it, Z = sum(a_slice * w) + b",
                lambda a_slice, w, b: np.sum(a_slice * w) * b),
    ]


@graded
def check_conv_single_step(conv_single_step: Callable, hidden: bool = False) -> None:
    """Check ``conv_single_step(a_slice, w, b)``: one window (f, f, C) with one filter (f, f, C).

    Returns a scalar (Python or NumPy float): ``sum(a_slice * w) + b``, b a scalar.
    """
    name = "conv_single_step"
    cases = _single_step_cases(case_rng(hidden, name), hidden)
    for index, case in enumerate(cases, 1):
        with _case(index, len(cases), _case_text(case)):
            expected = float(np.sum(case["a_slice"] * case["w"]) + case["b"])
            value = _call(conv_single_step, name, case)
            if isinstance(value, np.ndarray) and value.ndim > 0:
                what = ("you summed over some axes only" if value.size > 1 else "it holds one number")
                raise CheckError(
                    f"{name}: output should be a scalar, got an array of shape {value.shape} ({what}): "
                    "sum the element-wise product over all three axes (rows, columns, channels), then add b; "
                    "float(...) makes a number of a one-element array")
            ok_type = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
                value, (bool, np.bool_))
            if not (ok_type or isinstance(value, np.ndarray)):
                raise CheckError(f"{name}: output should be a number (a float), got {type(value).__name__}")
            number = float(value)
            check_finite(np.asarray(number), name)
            if not np.isclose(number, expected, rtol=RTOL, atol=ATOL):
                with _quiet():
                    mistake = diagnose(np.asarray(number), _copies(case), _single_step_mistakes(),
                                       rtol=RTOL, atol=ATOL)
                detail = f": {mistake.message}" if mistake else ""
                raise CheckError(f"{name}: output is {number:.6g}, expected {expected:.6g}{detail}")
    _report(name, hidden, ["type", "finite", f"values on {len(cases)} random cases", "inputs unchanged"])


# ---------------------------------------------------------------------------
# Integer answers: conv_output_size and conv_param_count


def _check_int_cases(function, name: str, cases: list[dict], reference: Callable,
                     mistakes: Sequence[Mistake], hidden: bool) -> None:
    """Every case returns an int equal to the reference; a wrong vector of answers is diagnosed."""
    results = []
    for case in cases:
        value = _call(function, name, case)
        call = f"{name}({', '.join(f'{k}={v}' for k, v in case.items())})"
        if isinstance(value, (float, np.floating)):
            raise CheckError(f"{name}: {call} returned {value!r}, a float: sizes and counts are ints; "
                             "use floor division // (or int(...)) instead of /")
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise CheckError(f"{name}: {call} returned {value!r} ({type(value).__name__}), expected an int")
        results.append(int(value))
    expected = [int(reference(**case)) for case in cases]
    if results != expected:
        first = next(i for i, (r, e) in enumerate(zip(results, expected, strict=True)) if r != e)
        arrays = {k: np.array([c[k] for c in cases]) for k in cases[0]}
        with _quiet():
            mistake = diagnose(np.array(results), arrays, mistakes, rtol=0, atol=0)
        call = f"{name}({', '.join(f'{k}={v}' for k, v in cases[first].items())})"
        detail = f": {mistake.message}" if mistake else ""
        raise CheckError(f"{name}: {call} returned {results[first]}, expected {expected[first]}{detail}")
    _report(name, hidden, ["type (int)", f"values on {len(cases)} random cases"])


def _distinct_answers(cases: list[dict], reference: Callable, mistakes: Sequence[Mistake]) -> bool:
    """True if every known mistake (every message) answers these cases differently from the others."""
    arrays = {k: np.array([c[k] for c in cases]) for k in cases[0]}
    right = tuple(int(reference(**c)) for c in cases)
    by_message: dict[str, set] = {}
    for mistake in mistakes:
        by_message.setdefault(mistake.message, set()).add(tuple(int(v) for v in mistake.compute(**arrays)))
    answers = [answer for group in by_message.values() for answer in group]
    owners = {answer: message for message, group in by_message.items() for answer in group}
    return right not in owners and len(owners) == len(set(answers))


def _output_size_mistakes():
    def variant(key):
        return lambda n, f, pad, stride: np.array(
            [_size_variants(*args)[key] for args in zip(n, f, pad, stride, strict=True)])

    texts = {k: v.format(n="n") for k, v in _SIZE_HINTS.items()}
    return [Mistake(k, texts[k], variant(k)) for k in ("no padding", "padding once", "no stride", "no +1", "ceil")] + [
        Mistake("+1 inside", texts["no +1"], lambda n, f, pad, stride: (n + 2 * pad - f + 1) // stride),
        Mistake("minus padding", "the padding makes the input larger: n + 2*pad, not n - 2*pad",
                lambda n, f, pad, stride: (n - 2 * pad - f) // stride + 1),
        Mistake("no kernel", "subtract the kernel size: the last window must fit, floor((n + 2*pad - f)/stride) + 1",
                lambda n, f, pad, stride: (n + 2 * pad) // stride + 1),
    ]


def _output_size_cases(rng, hidden):
    def draw(pad_range, stride_range, f_max=7, n_range=(3, 40)):
        while True:
            n = int(rng.integers(*n_range))
            pad = int(rng.integers(*pad_range))
            stride = int(rng.integers(*stride_range))
            f = int(rng.integers(1, f_max + 1))
            if f <= n + 2 * pad:
                return {"n": n, "f": f, "pad": pad, "stride": stride}

    mistakes = _output_size_mistakes()
    while True:  # until every known slip gives its own answers
        cases = [draw((1, 4), (1, 2)), draw((1, 4), (2, 5)), draw((0, 1), (2, 5)), draw((1, 4), (2, 5)),
                 draw((0, 3), (1, 2)), draw((0, 4), (1, 5)), draw((1, 4), (2, 4)), draw((0, 4), (1, 5))]
        if hidden:
            n = int(rng.integers(3, 20))
            cases += [{"n": n, "f": n + 2, "pad": 1, "stride": int(rng.integers(1, 4))},  # output 1
                      {"n": n, "f": 1, "pad": 0, "stride": 1},
                      {"n": 224, "f": 7, "pad": 3, "stride": 2},
                      draw((0, 3), (5, 9), n_range=(3, 12))]
        if _distinct_answers(cases, lambda n, f, pad, stride: _size_variants(n, f, pad, stride)["right"],
                             mistakes):
            return cases


@graded
def check_conv_output_size(conv_output_size: Callable, hidden: bool = False) -> None:
    """Check ``conv_output_size(n, f, pad, stride)`` -> int: floor((n + 2 pad - f) / stride) + 1."""
    name = "conv_output_size"
    cases = _output_size_cases(case_rng(hidden, name), hidden)
    def reference(n, f, pad, stride):
        return _size_variants(n, f, pad, stride)["right"]

    _check_int_cases(conv_output_size, name, cases, reference, _output_size_mistakes(), hidden)


def _param_count_mistakes():
    return [
        Mistake("no bias", "you forgot the biases: each of the c_out filters has one, (f*f*c_in + 1)*c_out",
                lambda f, c_in, c_out: f * f * c_in * c_out),
        Mistake("one bias", "one bias per filter, so c_out biases, not one in all: (f*f*c_in + 1)*c_out",
                lambda f, c_in, c_out: f * f * c_in * c_out + 1),
        Mistake("bias per channel", "one bias per filter, not per input channel: (f*f*c_in + 1)*c_out",
                lambda f, c_in, c_out: (f * f + 1) * c_in * c_out),
        Mistake("no c_in", "each filter spans all c_in input channels: it has f*f*c_in weights, plus 1 bias",
                lambda f, c_in, c_out: (f * f + 1) * c_out),
        Mistake("f not squared", "the kernel is f x f: f*f*c_in weights per filter, (f*f*c_in + 1)*c_out",
                lambda f, c_in, c_out: (f * c_in + 1) * c_out),
        Mistake("swapped", "the filters are the output channels: c_out filters of f*f*c_in weights and 1 bias "
                           "each, (f*f*c_in + 1)*c_out",
                lambda f, c_in, c_out: (f * f * c_out + 1) * c_in),
    ]


def _param_count_cases(rng, hidden):
    mistakes = _param_count_mistakes()
    while True:
        count = 10 if hidden else 6
        cases = [{"f": int(rng.integers(1, 8)), "c_in": int(rng.integers(1, 257)), "c_out": int(rng.integers(1, 257))}
                 for _ in range(count)]
        cases[0]["f"] = int(rng.integers(2, 8))
        if hidden:
            cases[1] = {"f": 3, "c_in": 3, "c_out": 64}
            cases[2] = {"f": 1, "c_in": int(rng.integers(2, 600)), "c_out": int(rng.integers(2, 600))}
        if _distinct_answers(cases, lambda f, c_in, c_out: (f * f * c_in + 1) * c_out, mistakes):
            return cases


@graded
def check_conv_param_count(conv_param_count: Callable, hidden: bool = False) -> None:
    """Check ``conv_param_count(f, c_in, c_out)`` -> int: (f*f*c_in + 1)*c_out weights and biases."""
    name = "conv_param_count"
    cases = _param_count_cases(case_rng(hidden, name), hidden)
    _check_int_cases(conv_param_count, name, cases, lambda f, c_in, c_out: (f * f * c_in + 1) * c_out,
                     _param_count_mistakes(), hidden)


# ---------------------------------------------------------------------------
# conv_forward

_LAYOUT_INPUT = "your output matches channels-first (NCHW) input: this function takes NHWC, x[n, h, w, c]"
_LAYOUT_OUTPUT = ("your output is channels-first (N, F, H', W'): this function returns NHWC (N, H', W', F), "
                  "like Keras")


def _conv_cases(rng, hidden):
    def case(n, h, w, c, f, F, stride, pad):
        return {"x": rng.normal(size=(n, h, w, c)), "w": rng.normal(size=(f, f, c, F)), "b": _bias(rng, F),
                "stride": stride, "pad": pad}

    def probe(sizes):
        # H = W = C: a channels-first reading of x runs, and can be recognised.
        s = int(rng.choice(sizes))
        f = int(rng.integers(2, 4))
        filters = int(rng.choice([k for k in (2, 3, 4) if k not in (s - f + 1, s)]))
        return case(2, s, s, s, f, filters, 1, 0)

    def discriminating():
        # every slip of the output-size formula gives its own output shape
        while True:
            h, w = (int(v) for v in rng.integers(4, 10, size=2))
            f, pad, stride = int(rng.integers(1, 5)), int(rng.integers(1, 3)), int(rng.integers(2, 4))
            if f <= min(h, w) and _distinct_sizes(h, w, f, pad, stride):
                return case(2, h, w, int(rng.integers(1, 4)), f, int(rng.integers(1, 4)), stride, pad)

    def draw(f, stride, pad, n=(1, 3), hw=(4, 9), c=(1, 4), filters=(1, 5)):
        while True:
            h, w = (int(v) for v in rng.integers(*hw, size=2))
            if f <= min(h, w) + 2 * pad:
                return case(int(rng.integers(*n)), h, w, int(rng.integers(*c)), f, int(rng.integers(*filters)),
                            stride, pad)

    cases = [probe((4, 5)), discriminating(), draw(3, 1, 1, c=(2, 4)), draw(2, 2, 0)]
    if hidden:
        cases += [probe((5, 6)), draw(1, 1, 0), draw(2, 3, 1), draw(2, 1, 3, hw=(3, 6)),
                  draw(3, 2, 1, n=(3, 4), hw=(7, 10), c=(4, 5), filters=(5, 6)),
                  draw(4, 1, 2, n=(1, 2), c=(1, 2), filters=(1, 2))]
    return cases


def _conv_forward_mistakes():
    def stride_on_input(x, w, b, stride, pad):
        out = _conv(x, w, b, stride, pad)
        return _conv(x, w, b, 1, pad)[:, : out.shape[1], : out.shape[2]]

    def output_index_times_stride(x, w, b, stride, pad):
        full = _conv(x, w, b, 1, pad)
        sparse = np.zeros_like(full)
        sparse[:, ::stride, ::stride] = _conv(x, w, b, stride, pad)
        return sparse

    def bias_everywhere(x, w, b, stride, pad):
        return _conv(x, w, b, stride, pad) + (w[..., 0].size - 1) * b

    def nchw_input(x, w, b, stride, pad):  # x read as (N, C, H, W): needs x.shape[1] == C
        return _reference.conv2d(x, _oihw(w), b, stride, pad)

    stride_text = ("the window of output (h, w) starts at (h*stride, w*stride) in the padded input: you "
                   "used (h, w), so the stride never moved the window")
    return [
        Mistake("flipped", "your output equals true convolution: you flipped the kernel, but CNN layers "
                           "compute cross-correlation (no flip)",
                lambda x, w, b, stride, pad: _conv(x, w[::-1, ::-1], b, stride, pad)),
        Mistake("no bias", "off by the bias: add b[k] to every output of filter k",
                lambda x, w, b, stride, pad: _conv(x, w, None, stride, pad)),
        Mistake("bias everywhere", "the bias counts f*f*C times: add b[k] once per output, not to every product",
                bias_everywhere),
        Mistake("stride on input", stride_text, stride_on_input),
        Mistake("output index times stride", "you wrote output (h, w) at index (h*stride, w*stride): the stride "
                "moves the window in the input, the output index stays (h, w), and the output has "
                "floor((H + 2*pad - f)/stride) + 1 rows", output_index_times_stride),
        Mistake("stride ignored", "you ignored the stride: output (h, w) reads the window starting at "
                "(h*stride, w*stride), and there are floor((H + 2*pad - f)/stride) + 1 rows",
                lambda x, w, b, stride, pad: _conv(x, w, b, 1, pad)),
        Mistake("nchw input", _LAYOUT_INPUT, nchw_input),
        Mistake("nchw input, nhwc output", _LAYOUT_INPUT, lambda **kw: _nhwc(nchw_input(**kw))),
        Mistake("nchw output", _LAYOUT_OUTPUT, lambda x, w, b, stride, pad: _nchw(_conv(x, w, b, stride, pad))),
    ]


@graded
def check_conv_forward(conv_forward: Callable, hidden: bool = False) -> None:
    """Check ``conv_forward(x, w, b, stride, pad)`` -> out (N, H', W', F), NHWC.

    x (N, H, W, C), w (f, f, C, F) (HWIO), b (F,);
    ``out[n, h, w, k] = b[k] + sum_{i, j, c} x_pad[n, h*stride + i, w*stride + j, c] * w[i, j, c, k]``
    (cross-correlation), H' = floor((H + 2 pad - f)/stride) + 1, same for W'.
    """
    name = "conv_forward"
    cases = _conv_cases(case_rng(hidden, name), hidden)
    for index, case in enumerate(cases, 1):
        with _case(index, len(cases), _case_text(case)):
            expected = _conv(**case)
            value = _call(conv_forward, name, case)
            n, h, w, c = case["x"].shape
            f, _, _, filters = case["w"].shape
            hints = _conv_shape_hints(n, h, w, filters, f, case["pad"], case["stride"])
            if filters != c:
                hints.append(((n,) + expected.shape[1:3] + (c,),
                              f"the output has one channel per filter, F = w.shape[3] = {filters}, not the "
                              f"input's C = {c}"))
            _check_array(value, expected, name, "output", ("batch size", "output height", "output width",
                                                            "channels"),
                         inputs=_copies(case), mistakes=_conv_forward_mistakes(), shape_hints=hints)
    _report(name, hidden, ["type", "shape", "dtype", "finite", f"values on {len(cases)} random cases",
                           "inputs unchanged"])


# ---------------------------------------------------------------------------
# pool_forward


def _pool_size_variants(n, f, stride):
    variants = _size_variants(n, f, 0, stride)
    return {k: variants[k] for k in ("right", "no stride", "no +1", "ceil")}


def _pool_cases(rng, hidden):
    def draw(mode, f, stride, n=(1, 3), hw=(4, 9), c=(2, 4)):
        while True:
            h, w = (int(v) for v in rng.integers(*hw, size=2))
            if f <= min(h, w):
                shape = (int(rng.integers(*n)), h, w, int(rng.integers(*c)))
                return {"x": rng.normal(size=shape), "f": f, "stride": stride, "mode": mode}

    def discriminating(mode):
        # each slip of the output-size formula gives its own shape; C >= f, so that a channels-first
        # reading of x (pooling over W and C) runs and can be recognised
        while True:
            h, w = (int(v) for v in rng.integers(5, 11, size=2))
            f, stride = int(rng.integers(2, 4)), int(rng.integers(2, 4))
            rows, cols = _pool_size_variants(h, f, stride), _pool_size_variants(w, f, stride)
            pairs = {(rows[k], cols[k]) for k in rows}
            if len(pairs) == len(rows) and min(min(p) for p in pairs) >= 1:
                return {"x": rng.normal(size=(2, h, w, int(rng.integers(f, 5)))), "f": f, "stride": stride,
                        "mode": mode}

    cases = [discriminating("max"), discriminating("average"), draw("max", 3, 2), draw("average", 2, 2)]
    if hidden:
        h = int(rng.integers(3, 6))
        cases += [draw("max", 2, 1), draw("average", 3, 1), draw("max", 2, 3), draw("max", 1, 1),
                  {"x": rng.normal(size=(2, h, h, 3)), "f": h, "stride": 1, "mode": "average"},
                  draw("max", 3, 3, n=(1, 2), c=(1, 2))]
    return cases


def _pool_forward_mistakes(mode):
    other = "average" if mode == "max" else "max"

    def across_channels(x, f, stride, mode, keep):
        out = _pool(x, f, stride, mode)
        merged = out.max(axis=3, keepdims=True) if mode == "max" else out.mean(axis=3, keepdims=True)
        return np.broadcast_to(merged, out.shape) if keep else merged

    def stride_on_input(x, f, stride, mode):
        out = _pool(x, f, stride, mode)
        return _pool(x, f, 1, mode)[:, : out.shape[1], : out.shape[2]]

    def nchw_input(x, f, stride, mode):
        pool = _reference.max_pool2d if mode == "max" else _reference.avg_pool2d
        return pool(x, f, stride)

    channels = ("you pooled across channels: pooling works on each channel separately, e.g. "
                "np.max(x[n, h0:h0 + f, w0:w0 + f, c]) for channel c")
    return [
        Mistake("swapped", f"for mode='{mode}' you computed the {other} of each window: max and average "
                           "are swapped", lambda x, f, stride, mode: _pool(x, f, stride, other)),
        Mistake("sum", "you computed the sum of each window: the average divides it by f*f",
                lambda x, f, stride, mode: _pool(x, f, stride, "average") * f * f),
        Mistake("stride on input", "the window of output (h, w) starts at (h*stride, w*stride): you used "
                                   "(h, w), so the stride never moved the window", stride_on_input),
        Mistake("stride ignored", "you ignored the stride: windows start every stride rows and columns, and "
                                  "there are floor((H - f)/stride) + 1 rows",
                lambda x, f, stride, mode: _pool(x, f, 1, mode)),
        Mistake("across channels", channels, lambda **kw: across_channels(**kw, keep=True)),
        Mistake("across channels, one channel", channels, lambda **kw: across_channels(**kw, keep=False)),
        Mistake("across channels, squeezed", channels, lambda **kw: across_channels(**kw, keep=False)[..., 0]),
        Mistake("nchw input", _LAYOUT_INPUT, nchw_input),
        Mistake("nchw input, nhwc output", _LAYOUT_INPUT, lambda **kw: _nhwc(nchw_input(**kw))),
        Mistake("nchw output", _LAYOUT_OUTPUT.replace("(N, F, H', W')", "(N, C, H', W')").replace(
            "(N, H', W', F)", "(N, H', W', C)"), lambda x, f, stride, mode: _nchw(_pool(x, f, stride, mode))),
    ]


@graded
def check_pool_forward(pool_forward: Callable, hidden: bool = False) -> None:
    """Check ``pool_forward(x, f, stride, mode)`` -> (N, H', W', C), NHWC, no padding.

    ``mode='max'``: the maximum of each f x f window of each channel;
    ``mode='average'``: the mean. H' = floor((H - f)/stride) + 1, same for W'.
    """
    name = "pool_forward"
    cases = _pool_cases(case_rng(hidden, name), hidden)
    for index, case in enumerate(cases, 1):
        with _case(index, len(cases), _case_text(case)):
            expected = _pool(**case)
            value = _call(pool_forward, name, case)
            n, h, w, c = case["x"].shape
            rows = _pool_size_variants(h, case["f"], case["stride"])
            cols = _pool_size_variants(w, case["f"], case["stride"])
            hints = []
            for key in ("no stride", "no +1", "ceil"):
                letter = "H" if rows[key] != rows["right"] else "W"
                hints.append(((n, rows[key], cols[key], c),
                              _SIZE_HINTS[key].format(n=letter).replace(" + 2*pad", "").replace("2*pad", "0")))
            _check_array(value, expected, name, "output", ("batch size", "output height", "output width",
                                                            "channels"),
                         inputs=_copies(case), mistakes=_pool_forward_mistakes(case["mode"]), shape_hints=hints)
    _report(name, hidden, ["type", "shape", "dtype", "finite", f"values on {len(cases)} random cases (max and "
                           "average)", "inputs unchanged"])


# ---------------------------------------------------------------------------
# conv_backward


def _conv_backward_loop(dout, x, w, stride, pad, *, window_stride=True, accumulate=True, order="nhwk",
                        swap=False):
    """The textbook loop, with switches for its usual slips; returns (dx, dw, db, dx_pad)."""
    n_images, h, wd, _ = x.shape
    f, _, _, filters = w.shape
    _, ho, wo, _ = dout.shape
    x_pad = _pad(x, pad)
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    db = np.zeros(filters)
    if order == "nhwk":
        positions = ((n, i, j, k) for n in range(n_images) for i in range(ho) for j in range(wo)
                     for k in range(filters))
    else:
        positions = ((n, i, j, k) for n in range(n_images) for k in range(filters) for i in range(ho)
                     for j in range(wo))
    for n, i, j, k in positions:
        r, c = (i * stride, j * stride) if window_stride else (i, j)
        g = dout[n, i, j, k]
        window = x_pad[n, r: r + f, c: c + f, :]
        to_dx, to_dw = (window, w[..., k]) if swap else (w[..., k], window)
        if accumulate:
            dx_pad[n, r: r + f, c: c + f, :] += to_dx * g
            dw[..., k] += to_dw * g
            db[k] += g
        else:
            dx_pad[n, r: r + f, c: c + f, :] = to_dx * g
            dw[..., k] = to_dw * g
            db[k] = g
    return dx_pad[:, pad: pad + h, pad: pad + wd], dw, db, dx_pad


def _conv_backward_mistakes():
    def loop(part, **switches):
        index = {"dx": 0, "dw": 1, "db": 2, "dx_pad": 3}[part]
        return lambda dout, x, w, b, stride, pad: _conv_backward_loop(dout, x, w, stride, pad, **switches)[index]

    def ref(part):
        index = {"dx": 0, "dw": 1, "db": 2}[part]
        return lambda dout, x, w, b, stride, pad: _conv_backward(dout, x, w, stride, pad)[index]

    swapped = ("dx and dw are swapped: dx_pad[window] += w[:, :, :, k] * dout[n, h, w, k] and "
               "dw[:, :, :, k] += x_pad[window] * dout[n, h, w, k]")
    stride = ("the window of output (h, w) starts at (h*stride, w*stride) in the padded input, in the backward "
              "pass as in the forward pass: you used (h, w)")
    not_batch = "{} is not summed over the batch: add the contributions of every example n"
    dx = [
        Mistake("swap", swapped, loop("dx", swap=True)),
        Mistake("dx =", "dx is not accumulated: overlapping windows (and the F filters) all add to the same "
                        "input pixels, so use dx_pad[...] += ..., not =", loop("dx", accumulate=False)),
        Mistake("dx = (k first)", "dx is not accumulated: overlapping windows (and the F filters) all add to "
                                  "the same input pixels, so use dx_pad[...] += ..., not =",
                loop("dx", accumulate=False, order="nkhw")),
        Mistake("stride", stride, loop("dx", window_stride=False)),
        Mistake("dx padded", "dx still has the padding: return dx_pad[:, pad:pad + H, pad:pad + W, :], the "
                             "shape of x", loop("dx_pad")),
        Mistake("crop corner", "crop the padding from both sides: dx = dx_pad[:, pad:pad + H, pad:pad + W, :]",
                lambda dout, x, w, b, stride, pad: loop("dx_pad")(dout, x, w, b, stride, pad)[
                    :, : x.shape[1], : x.shape[2]]),
        Mistake("dx flipped", "dx used the flipped kernel: the forward pass does not flip it, so dx_pad[window] "
                              "+= w[:, :, :, k] * dout[n, h, w, k]",
                lambda dout, x, w, b, stride, pad: _conv_backward(dout, x, w[::-1, ::-1], stride, pad)[0]),
    ]
    dw = [
        Mistake("swap", swapped, loop("dw", swap=True)),
        Mistake("dw =", "dw is not accumulated: every window and every example adds to dw[:, :, :, k], so use "
                        "dw[:, :, :, k] += ..., not =", loop("dw", accumulate=False)),
        Mistake("dw last example", not_batch.format("dw"),
                lambda dout, x, w, b, stride, pad: _conv_backward(dout[-1:], x[-1:], w, stride, pad)[1]),
        Mistake("dw first example", not_batch.format("dw"),
                lambda dout, x, w, b, stride, pad: _conv_backward(dout[:1], x[:1], w, stride, pad)[1]),
        Mistake("dw mean", "you divided dw by the batch size: the gradient of a sum over the batch is the sum "
                           "of the gradients", lambda dout, x, w, b, stride, pad: ref("dw")(dout, x, w, b, stride,
                                                                                             pad) / len(x)),
        Mistake("stride", stride, loop("dw", window_stride=False)),
        Mistake("dw flipped", "dw is flipped: the forward pass does not flip the kernel, so dw[i, j, c, k] pairs "
                              "x_pad[n, h*stride + i, w*stride + j, c] with dout[n, h, w, k]",
                lambda dout, x, w, b, stride, pad: ref("dw")(dout, x, w, b, stride, pad)[::-1, ::-1]),
        Mistake("dw oihw", "dw must have the shape of w, (f, f, C, F) (HWIO): you returned (F, C, f, f)",
                lambda dout, x, w, b, stride, pad: _oihw(ref("dw")(dout, x, w, b, stride, pad))),
    ]
    db_not_batch = ("db is not summed over the batch: db[k] is the sum of dout[n, h, w, k] over n, h and w, "
                    "shape (F,)")
    db = [
        Mistake("db per example", db_not_batch, lambda dout, **kw: dout.sum(axis=(1, 2))),
        Mistake("db last example", db_not_batch, lambda dout, **kw: dout[-1].sum(axis=(0, 1))),
        Mistake("db first example", db_not_batch, lambda dout, **kw: dout[0].sum(axis=(0, 1))),
        Mistake("db mean", db_not_batch, lambda dout, **kw: dout.sum(axis=(1, 2)).mean(axis=0)),
        Mistake("db =", "db is not accumulated: every output position adds to db[k], so use db[k] += "
                        "dout[n, h, w, k], not =", loop("db", accumulate=False)),
        Mistake("db all", "db has one value per filter: sum dout over n, h and w, but not over the filters k",
                lambda dout, **kw: dout.sum()),
        Mistake("db over k", "db has one value per filter k: sum dout[n, h, w, k] over n, h and w (axes 0, 1, "
                             "2), not over k", lambda dout, **kw: dout.sum(axis=3)),
    ]
    return dx, dw, db


def _conv_backward_cases(rng, hidden):
    def case(n, h, w, c, f, filters, stride, pad):
        x = rng.normal(size=(n, h, w, c))
        weights = rng.normal(size=(f, f, c, filters))
        ho, wo = (h + 2 * pad - f) // stride + 1, (w + 2 * pad - f) // stride + 1
        return {"dout": rng.normal(size=(n, ho, wo, filters)), "x": x, "w": weights, "b": _bias(rng, filters),
                "stride": stride, "pad": pad}

    def draw(f, stride, pad, n=(2, 3), hw=(4, 7), c=(2, 4), filters=(2, 4)):
        while True:
            h, w = (int(v) for v in rng.integers(*hw, size=2))
            if f <= min(h, w) + 2 * pad:
                return case(int(rng.integers(*n)), h, w, int(rng.integers(*c)), f, int(rng.integers(*filters)),
                            stride, pad)

    cases = [draw(3, 1, 1), draw(2, 2, 0), draw(3, 2, 2, n=(1, 2), hw=(4, 6))]
    if hidden:
        cases += [draw(1, 1, 0), draw(2, 3, 1), draw(3, 2, 1, n=(3, 4), hw=(6, 9), c=(4, 5), filters=(3, 4)),
                  draw(4, 1, 2, c=(1, 2), filters=(1, 2)), draw(3, 1, 0)]
    return cases


def _numeric_conv_gradients(dout, x, w, b, stride, pad):
    dx = numerical_gradient(lambda v: _conv(v, w, b, stride, pad), x.copy(), dout)
    dw = numerical_gradient(lambda v: _conv(x, v, b, stride, pad), w.copy(), dout)
    db = numerical_gradient(lambda v: _conv(x, w, v, stride, pad), b.copy(), dout)
    return dx, dw, db


@graded
def check_conv_backward(conv_backward: Callable, hidden: bool = False) -> None:
    """Check ``conv_backward(dout, x, w, b, stride, pad)`` -> (dx, dw, db).

    dout (N, H', W', F) is the gradient of the loss with respect to the output
    of ``conv_forward(x, w, b, stride, pad)``; dx, dw, db have the shapes of
    x (N, H, W, C), w (f, f, C, F) and b (F,). Visible checks compare with the
    numerical gradient (and print the relative errors), hidden checks with the
    float64 reference.
    """
    name = "conv_backward"
    cases = _conv_backward_cases(case_rng(hidden, name), hidden)
    mistakes = dict(zip(("dx", "dw", "db"), _conv_backward_mistakes(), strict=True))
    axes = {"dx": ("batch size", "height", "width", "channels"),
            "dw": ("filter height", "filter width", "input channels", "filters"), "db": ("filters",)}
    for index, case in enumerate(cases, 1):
        description = _case_text({k: v for k, v in case.items() if k != "b"})
        with _case(index, len(cases), description):
            with _quiet():
                exact = _conv_backward(case["dout"], case["x"], case["w"], case["stride"], case["pad"])
                expected = exact if hidden else _numeric_conv_gradients(**case)
            value = _call(conv_backward, name, case)
            if not isinstance(value, (tuple, list)) or len(value) != 3:
                got = f"a {type(value).__name__}" + (f" of length {len(value)}" if isinstance(value, (tuple, list))
                                                     else "")
                raise CheckError(f"{name}: should return a tuple (dx, dw, db), got {got}")
            n, h, w, c = case["x"].shape
            pad = case["pad"]
            hints = {
                "dx": [((n, h + 2 * pad, w + 2 * pad, c), "dx still has the padding: return "
                        "dx_pad[:, pad:pad + H, pad:pad + W, :], the shape of x"),
                       ((n, 0, 0, c), "dx is empty: with pad = 0, dx_pad[:, pad:-pad] selects nothing; slice "
                        "with dx_pad[:, pad:pad + H, pad:pad + W, :]")],
                "dw": [],
                "db": [((1, 1, 1, len(case["b"])), "db must have the shape of b, (F,): sum over axes (0, 1, 2) "
                        "without keepdims")],
            }
            if not hidden:
                errors = [f"{part} {_error_text(mine, numeric)}"
                          for part, mine, numeric in zip(("dx", "dw", "db"), value, expected, strict=True)]
                print(f"{name} case {index} ({description}): relative error against the numerical gradient: "
                      + ", ".join(errors))
            rtol, atol = (RTOL, ATOL) if hidden else (NUMERIC_RTOL, NUMERIC_ATOL)
            for part, mine, reference in zip(("dx", "dw", "db"), value, expected, strict=True):
                _check_array(mine, reference, name, part, axes[part], inputs=_copies(case), mistakes=mistakes[part],
                             shape_hints=hints[part], rtol=rtol, atol=atol)
    against = "the float64 reference" if hidden else "the numerical gradient"
    _report(name, hidden, ["type", "shape", "dtype", "finite", f"dx, dw, db against {against} on {len(cases)} "
                           "random cases", "inputs unchanged"])


# ---------------------------------------------------------------------------
# pool_backward


def _pool_backward_loop(dout, x, f, stride, mode, *, route="right", accumulate=True, window_stride=True):
    """The textbook loop with switches for its slips. route: 'right', 'all', 'mask only', 'swapped'."""
    dx = np.zeros_like(x, dtype=np.float64)
    n_images, ho, wo, channels = dout.shape
    as_max = (mode == "max") != (route == "swapped")
    for n in range(n_images):
        for i in range(ho):
            for j in range(wo):
                for c in range(channels):
                    r, col = (i * stride, j * stride) if window_stride else (i, j)
                    window = x[n, r: r + f, col: col + f, c]
                    g = dout[n, i, j, c]
                    if route == "all":
                        part = np.full(window.shape, g)
                    elif as_max:
                        mask = window == np.max(window)
                        part = mask.astype(np.float64) if route == "mask only" else mask * g
                    else:
                        part = np.full(window.shape, g / (f * f))
                    if accumulate:
                        dx[n, r: r + f, col: col + f, c] += part
                    else:
                        dx[n, r: r + f, col: col + f, c] = part
    return dx


def _pool_backward_mistakes(mode):
    def loop(**switches):
        return lambda dout, x, f, stride, mode: _pool_backward_loop(dout, x, f, stride, mode, **switches)

    other = "average" if mode == "max" else "max"
    common = [
        Mistake("swapped", f"for mode='{mode}' you computed the gradient of {other} pooling: the modes are "
                           "swapped", loop(route="swapped")),
        Mistake("=", "dx is not accumulated: a pixel in several overlapping windows gets the sum of their "
                     "gradients, so use dx[...] += ..., not =", loop(accumulate=False)),
        Mistake("stride", "the window of output (h, w) starts at (h*stride, w*stride), in the backward pass as "
                          "in the forward pass: you used (h, w)", loop(window_stride=False)),
    ]
    if mode == "max":
        return [
            Mistake("all", "you routed dout[n, h, w, c] to every element of the window: max pooling sends it "
                           "only to the argmax, the position of the window's maximum "
                           "(mask = window == np.max(window))", loop(route="all")),
            Mistake("mask only", "the mask says where the maximum is: multiply it by dout[n, h, w, c]",
                    loop(route="mask only")),
        ] + common
    return [
        Mistake("not divided", "average pooling spreads dout[n, h, w, c] evenly: each of the f*f positions "
                               "gets dout[n, h, w, c] / (f*f)", loop(route="all")),
    ] + common


def _pool_backward_cases(rng, hidden):
    def draw(mode, f, stride, n=(2, 3), hw=(4, 8), c=(2, 3)):
        while True:
            h, w = (int(v) for v in rng.integers(*hw, size=2))
            if f <= min(h, w):
                break
        shape = (int(rng.integers(*n)), h, w, int(rng.integers(*c)))
        size = int(np.prod(shape))
        # distinct values, at least 0.005 apart: one maximum per window, also within h = 1e-5
        x = ((rng.permutation(size) + rng.uniform(0.0, 0.5, size=size)) * (4.0 / size) - 2.0).reshape(shape)
        ho, wo = (h - f) // stride + 1, (w - f) // stride + 1
        return {"dout": rng.normal(size=(shape[0], ho, wo, shape[3])), "x": x, "f": f, "stride": stride,
                "mode": mode}

    cases = [draw("max", 3, 2, hw=(5, 8)), draw("average", 2, 1), draw("max", 2, 2), draw("average", 3, 3, hw=(6, 10))]
    if hidden:
        cases += [draw("max", 2, 1), draw("average", 3, 2), draw("max", 1, 1), draw("average", 2, 3),
                  draw("max", 4, 1, n=(1, 2), c=(1, 2), hw=(4, 5)), draw("average", 3, 2, n=(3, 4), hw=(6, 9))]
    return cases


@graded
def check_pool_backward(pool_backward: Callable, hidden: bool = False) -> None:
    """Check ``pool_backward(dout, x, f, stride, mode)`` -> dx, the shape of x (N, H, W, C).

    ``mode='max'``: dout[n, h, w, c] goes to the position of the maximum of
    window (h, w) of channel c; ``mode='average'``: it is spread evenly,
    dout / (f*f) to each position of the window. Overlapping windows add up.
    """
    name = "pool_backward"
    cases = _pool_backward_cases(case_rng(hidden, name), hidden)
    for index, case in enumerate(cases, 1):
        description = _case_text(case)
        with _case(index, len(cases), description):
            with _quiet():
                if hidden:
                    expected = _pool_backward(**case)
                else:
                    expected = numerical_gradient(lambda v: _pool(v, case["f"], case["stride"], case["mode"]),
                                                  case["x"].copy(), case["dout"])
            value = _call(pool_backward, name, case)
            if not hidden:
                error = _error_text(value, expected)
                print(f"{name} case {index} ({description}): relative error of dx against the numerical "
                      f"gradient: {error}")
            hints = [(case["dout"].shape, "dx has the shape of dout: it must have the shape of x, the gradient "
                                          "flows back to the input of the pooling")]
            rtol, atol = (RTOL, ATOL) if hidden else (NUMERIC_RTOL, NUMERIC_ATOL)
            _check_array(value, expected, name, "dx", ("batch size", "height", "width", "channels"),
                         inputs=_copies(case), mistakes=_pool_backward_mistakes(case["mode"]), shape_hints=hints,
                         rtol=rtol, atol=atol)
    against = "the float64 reference" if hidden else "the numerical gradient"
    _report(name, hidden, ["type", "shape", "dtype", "finite", f"dx against {against} on {len(cases)} random "
                           "cases (max and average)", "inputs unchanged"])
