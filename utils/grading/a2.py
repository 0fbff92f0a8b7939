"""Checks of assignment 2: convolution and max pooling in PyTorch (NCHW).

The student implements, with torch tensor operations only:

- ``conv2d(x, w, b=None, stride=1, padding=0)``: x ``(N, C, H, W)``, w
  ``(F, C, kh, kw)`` (OIHW), b ``(F,)`` or None -> ``(N, F, H_out, W_out)``
  with ``H_out = (H + 2*padding - kh) // stride + 1`` (same for W_out); a
  cross-correlation, vectorized (im2col), differentiable by autograd, on the
  input's device and in the input's dtype;
- ``max_pool2d(x, kernel_size, stride=None)``: x ``(N, C, H, W)`` ->
  ``(N, C, H_out, W_out)`` with ``H_out = (H - kernel_size) // stride + 1``;
  ``stride`` defaults to ``kernel_size``. Same rules.

One check per graded test cell (points in the notebook). Each returns None and
prints ``"<name>: all N checks passed (...)"`` (via :func:`~utils.grading.passed`)
when everything is right, or raises :class:`~utils.grading.CheckError`:

===============================  =======================================================
``check_conv2d``                 values vs float64 references (float64 and float32, CPU
                                 and CUDA when present)
``check_conv2d_gradients``       autograd gradients of x, w, b vs ``conv2d_backward``
``check_conv2d_device_dtype``    output on the input's device, input dtype kept
``check_conv2d_speed``           at most ``SPEED_LIMIT`` x the time of ``F.conv2d``
``check_max_pool2d``             values, device and dtype
``check_max_pool2d_gradients``   autograd gradient of x vs ``max_pool2d_backward``
===============================  =======================================================

Expected values come from :mod:`utils.conv` (float64 NumPy, computed on the
CPU before the student's function runs); the student's output is brought back
with ``.cpu()``. Calling ``F.conv2d``, ``F.max_pool2d``, ``nn.Conv2d``,
``utils.conv``, ``scipy.signal`` ... from the student's function fails with
:class:`~utils.grading.ForbiddenCall`. On CUDA the checks turn TF32 off
(``torch.backends.cuda.matmul.allow_tf32`` and ``torch.backends.cudnn.allow_tf32``)
and restore it afterwards. Warnings raised while checking are silenced (nbgrader
scores a test cell with stderr output as 0). torch is imported inside the
functions.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import math
import pathlib
import time
import traceback
import warnings

import numpy as np

from utils import conv as _conv
from utils.grading import (
    CheckError,
    Mistake,
    case_rng,
    check_close,
    check_finite,
    diagnose,
    forbid,
    graded,
    passed,
    speed,
    to_numpy,
)

__all__ = [
    "check_conv2d",
    "check_conv2d_gradients",
    "check_conv2d_device_dtype",
    "check_conv2d_speed",
    "check_max_pool2d",
    "check_max_pool2d_gradients",
    "conv2d_cases",
    "max_pool2d_cases",
    "ConvCase",
    "PoolCase",
    "conv_shape_hint",
    "pool_shape_hint",
    "device_mismatch",
    "dtype_mismatch",
    "SPEED_LIMIT",
    "SPEED_PROBLEMS",
]

# ---------------------------------------------------------------------------
# Messages (the tests match them exactly)

LAYOUT = (
    "your output matches channels-last (NHWC): this function takes NCHW: x is (N, C, H, W) with "
    "the channels on axis 1, w is (F, C, kh, kw), and the output is (N, F, H_out, W_out)"
)
LAYOUT_POOL = (
    "your output matches channels-last (NHWC): this function takes NCHW: x is (N, C, H, W); "
    "pool over the last two axes (H, W) and return (N, C, H_out, W_out)"
)
FLIPPED = (
    "the kernel is flipped: you computed a true convolution, but CNN layers (and this function) "
    "compute a cross-correlation: out[n, f, i, j] = b[f] + sum over c, u, v of "
    "x_pad[n, c, i*stride + u, j*stride + v] * w[f, c, u, v], with no torch.flip"
)
NO_BIAS = (
    "off by the bias: add b[f] to every output of filter f "
    "(b.reshape(1, F, 1, 1) broadcasts over N, H_out and W_out)"
)
STRIDE_ON_INPUT = (
    "stride applied to the input instead of the output: you kept every stride-th input pixel "
    "(x[..., ::stride, ::stride]) and slid the kernel one pixel at a time; the stride moves the "
    "window: output (i, j) reads the window whose top-left corner is at row i*stride, column "
    "j*stride of the padded input"
)
STRIDE_IGNORED = (
    "the output has the size of stride 1: the stride is ignored; output (i, j) reads the window "
    "at row i*stride, column j*stride, so H_out = (H + 2*padding - kh) // stride + 1"
)
PAD_MISSING = (
    "padding is missing: the output has the size of padding=0; pad x with `padding` zeros on each "
    "side of H and W first (F.pad(x, (p, p, p, p)) or F.unfold(..., padding=p)): "
    "H_out = (H + 2*padding - kh) // stride + 1"
)
PAD_DOUBLED = (
    "padding is doubled: the output has the size of padding=2*padding; add `padding` zeros on "
    "EACH side (H + 2*padding rows in all), not 2*padding on each side: "
    "H_out = (H + 2*padding - kh) // stride + 1"
)
PAD_ONLY_W = (
    "only the width is padded: F.pad(x, (p, p)) pads the last axis (W) only; "
    "F.pad(x, (p, p, p, p)) pads W and H: H_out = (H + 2*padding - kh) // stride + 1"
)
POOL_STRIDE_DEFAULT = (
    "wrong default stride: with stride=None the windows must not overlap: stride defaults to "
    "kernel_size (as in F.max_pool2d), not 1"
)
POOL_AVERAGE = "that is average pooling: take the maximum of each window (amax), not the mean"
NOT_DIFFERENTIABLE = (
    "the output is cut off from autograd: it does not require grad although the inputs do. "
    "Use torch operations only: no .numpy() round trips, torch.tensor(...) or torch.from_numpy "
    "copies, .detach(), .data or .item()"
)
GRAD_NONE = (
    "{name}.grad is None after backward: the output does not depend on {name} through autograd "
    "(did you use {name}.data, {name}.detach(), {name}.item() or a NumPy copy of {name}?)"
)
BACKWARD_FAILED = (
    "autograd failed in backward ({error}): the usual cause is an in-place operation "
    "(+=, .add_(), .clamp_()) on a tensor that autograd still needs; build results with "
    "out-of-place operations (y = y + ...)"
)
DTYPE = "output dtype is {got} for a {want} input: keep the input's dtype ({want} stays {want}): {hint}"
DTYPE_HINTS = {
    ("float64", "float32"): (
        "float64 comes from NumPy round trips, .double() or torch.float64 tensors; "
        "compute in x.dtype"
    ),
    ("float32", "float64"): (
        "torch.zeros, torch.ones and torch.tensor default to float32: pass dtype=x.dtype "
        "(or use x.new_zeros)"
    ),
}
DTYPE_HINT = "create new tensors with dtype=x.dtype (or x.new_zeros)"
DTYPE_NOTE = "(note: your output is {got} for a {want} input; see the device and dtype check)"
DEVICE = (
    "output is on {got} but the input is on {want}: keep the result on the input's device: "
    "no .cpu() or .numpy(); create new tensors with device=x.device (or x.new_zeros)"
)
NOT_TENSOR = (
    "{what} should be a torch.Tensor, got {got}: compute with torch operations and return a "
    "tensor (no NumPy)"
)
RETURNED_NONE = "returned None: did you forget the `return` statement?"
NOT_IMPLEMENTED = (
    "not implemented yet: it raised NotImplementedError; replace `raise NotImplementedError()` "
    "with your code"
)
RAISED = "raised {kind}: {error}"
FORWARD_FIRST = "(the gradients are checked once the forward values are right)"
SPEED_WRONG = (
    "the speed check needs correct values: the output on the timing input is wrong ({detail}); "
    "pass check_conv2d first"
)
TOO_SLOW = (
    "too slow: {ratio:.1f}x the time of F.conv2d ({student:.2f} ms vs {reference:.2f} ms per call), "
    "the limit is {limit:g}x. A Python loop over output pixels lands here: gather all patches at once "
    "with im2col (F.unfold, or Tensor.unfold) and compute every output with one matrix product "
    "(matmul or einsum); a loop over the kh*kw kernel offsets is fine [timed on {problem}]"
)

CONV_HINT = (
    "implement the convolution with torch tensor operations (F.pad, F.unfold or Tensor.unfold, "
    "matmul or einsum); F.conv2d, nn.Conv2d, utils.conv and scipy.signal are the references "
    "your function replaces"
)
POOL_HINT = (
    "implement max pooling with torch tensor operations (Tensor.unfold or F.unfold, then amax); "
    "F.max_pool2d, nn.MaxPool2d and utils.conv are the references your function replaces"
)

# Forbidden references (dotted names that forbid() turns into tripwires).
_UTILS_CONV = tuple(f"utils.conv.{name}" for name in _conv.__all__)
FORBIDDEN = (
    "torch.nn.functional.conv2d",
    "torch.conv2d",
    "torch.convolution",
    "torch._convolution",
    "torch.nn.Conv2d._conv_forward",
    "torch.nn.functional.conv_transpose2d",
    "torch.conv_transpose2d",
    "torch.nn.functional.max_pool2d",
    "torch.nn.functional.max_pool2d_with_indices",
    "torch.max_pool2d",
    "torch.max_pool2d_with_indices",
    "torch.nn.MaxPool2d.forward",
    *_UTILS_CONV,
    "scipy.signal.convolve2d",
    "scipy.signal.correlate2d",
    "scipy.signal.convolve",
    "scipy.signal.correlate",
    "scipy.signal.fftconvolve",
    "scipy.signal.oaconvolve",
    "numpy.convolve",
    "numpy.correlate",
)

SPEED_LIMIT = 5.0
# The timing problem per device type: (N, C, H, W, F, k, stride), padding 1, float32.
# CPU (timed on one thread): one 64x64 image with 32 channels, 128 filters 3x3, stride 2.
# Its working set (1.2 MB of patches) stays in cache, so the ratio hardly moves when
# other processes load the machine. Measured on a loaded 2-core AVX-512 Xeon: F.conv2d
# (oneDNN) 0.44 ms; F.unfold + matmul 2.5x, Tensor.unfold + einsum 2.3x, a loop over the
# 9 kernel offsets 3.1x, a Python loop over the 32x32 output pixels about 60x. (With
# stride 1 the patches outgrow the cache and the ratios of the same code drift from 3x
# to 6x with the load.) CUDA: a larger batch so that kernel launches do not dominate;
# stride 2 also keeps cuDNN on GEMM-like algorithms (Winograd and FFT need stride 1).
SPEED_PROBLEMS = {"cpu": (1, 32, 64, 64, 128, 3, 2), "cuda": (64, 32, 64, 64, 64, 3, 2)}
SPEED_ROUNDS = 3
SPEED_REPEATS = 5
SPEED_BUDGET_S = 0.5  # stop timing a slow student function after this much
SPEED_GIVE_UP_S = 2.0  # a first call slower than this is not timed again

_CONV_AXES = ("batch size N", "filters F", "output height H_out", "output width W_out")
_POOL_AXES = ("batch size N", "channels C", "output height H_out", "output width W_out")


# ---------------------------------------------------------------------------
# Cases


@dataclasses.dataclass(frozen=True)
class ConvCase:
    """One conv2d input: x (N, C, H, W), w (F, C, kh, kw), b (F,) or None, all float64."""

    x: np.ndarray
    w: np.ndarray
    b: np.ndarray | None
    stride: int
    padding: int
    defaults: bool = False  # call conv2d(x, w): b, stride and padding left at their defaults

    def describe(self, dtype: str, device) -> str:
        b = "None" if self.b is None else str(self.b.shape)
        call = ", called as conv2d(x, w)" if self.defaults else ""
        return (
            f"[input: x {self.x.shape} {dtype} on {device}, w {self.w.shape}, b {b}, "
            f"stride {self.stride}, padding {self.padding}{call}]"
        )


@dataclasses.dataclass(frozen=True)
class PoolCase:
    """One max_pool2d input: x (N, C, H, W) float64; stride None means the default."""

    x: np.ndarray
    kernel_size: int
    stride: int | None

    def describe(self, dtype: str, device) -> str:
        stride = "default (None)" if self.stride is None else self.stride
        return (
            f"[input: x {self.x.shape} {dtype} on {device}, kernel_size {self.kernel_size}, "
            f"stride {stride}]"
        )


def _integers(rng: np.random.Generator, low: int, high: int) -> int:
    """An int in [low, high] (both included)."""
    return int(rng.integers(low, high + 1))


def _conv_case(rng, n, c, h, w, f, kh, kw, stride, padding, bias=True, defaults=False) -> ConvCase:
    x = rng.standard_normal((n, c, h, w))
    weights = rng.standard_normal((f, c, kh, kw))
    b = rng.standard_normal(f) if bias else None
    return ConvCase(x, weights, b, stride, padding, defaults)


def conv2d_cases(hidden: bool = False, salt: str = "conv2d") -> list[ConvCase]:
    """The conv2d inputs of one check: fresh per run, or fixed by the grader's seed.

    The first case has W == C, so that an implementation that reads x as
    channels-last (N, H, W, C) runs and its output can be recognized.
    """
    rng = case_rng(hidden, salt)
    d = lambda lo, hi: _integers(rng, lo, hi)  # noqa: E731
    c0 = d(3, 5)
    if not hidden:
        return [
            # layout probe: W == C, H != W
            _conv_case(rng, 2, c0, c0 + d(2, 4), c0, d(2, 4), 3, 3, 1, 1),
            _conv_case(rng, 2, d(2, 4), d(7, 11), d(7, 11), d(3, 5), 3, 3, 2, 1),
            _conv_case(rng, 2, d(2, 3), d(6, 9), d(6, 9), d(2, 4), 2, 3, 1, 2),
            _conv_case(rng, 3, d(1, 3), d(5, 8), d(5, 8), d(2, 3), 3, 2, 1, 0, bias=False, defaults=True),
            _conv_case(rng, 1, d(2, 3), d(9, 12), d(9, 12), d(2, 4), 4, 4, 3, 1),
        ]
    k = d(3, 4)
    return [
        _conv_case(rng, d(1, 3), c0, c0 + d(1, 5), c0, d(1, 4), 3, 3, 1, d(1, 2)),
        _conv_case(rng, d(1, 3), d(2, 4), d(10, 14), d(10, 14), d(3, 6), 5, 5, 2, 2),
        _conv_case(rng, 1, 1, d(5, 8), d(5, 8), 1, 3, 3, 1, 1),
        _conv_case(rng, 2, d(2, 4), d(6, 9), d(6, 9), d(2, 4), 1, 1, 1, 0),
        _conv_case(rng, 2, d(2, 3), k, k, d(2, 3), k, k, 1, 0, bias=False),  # one output pixel
        _conv_case(rng, 2, d(2, 3), d(11, 15), d(11, 15), d(2, 4), 3, 2, 3, 2),
        _conv_case(rng, 1, d(2, 4), d(8, 12), d(8, 12), d(2, 4), 2, 2, 2, 1, bias=False),
    ]


def _pool_case(rng, n, c, h, w, kernel_size, stride) -> PoolCase:
    return PoolCase(rng.standard_normal((n, c, h, w)), kernel_size, stride)


def max_pool2d_cases(hidden: bool = False, salt: str = "max_pool2d") -> list[PoolCase]:
    """The max_pool2d inputs of one check (stride None: called without a stride)."""
    rng = case_rng(hidden, salt)
    d = lambda lo, hi: _integers(rng, lo, hi)  # noqa: E731
    if not hidden:
        return [
            _pool_case(rng, 2, d(2, 4), 2 * d(2, 4), 2 * d(2, 4), 2, None),
            _pool_case(rng, 2, d(1, 3), d(7, 11), d(7, 11), 3, None),
            _pool_case(rng, 1, d(2, 3), d(7, 11), d(7, 11), 3, 2),
            _pool_case(rng, 2, d(2, 3), d(5, 8), d(5, 8), 2, 1),
            _pool_case(rng, 1, d(2, 4), d(8, 12), d(6, 9), 2, 3),
        ]
    return [
        _pool_case(rng, d(1, 3), d(1, 4), d(6, 12), d(6, 12), 2, None),
        _pool_case(rng, 2, d(2, 4), d(9, 14), d(9, 14), d(3, 4), None),
        _pool_case(rng, 1, d(1, 3), d(9, 14), d(9, 14), 4, 2),
        _pool_case(rng, 2, d(1, 3), d(5, 9), d(5, 9), 3, 1),
        _pool_case(rng, 1, 2, 5, 5, 5, None),  # one window
        _pool_case(rng, 2, d(1, 3), d(7, 10), d(10, 14), 2, 3),
    ]


# ---------------------------------------------------------------------------
# Known mistakes (inputs are float64 NumPy arrays; each returns what the mistake computes)


def _ref_conv(x, w, b, stride, padding):
    return np.ascontiguousarray(_conv.conv2d(x, w, b, stride=stride, padding=padding))


def _require(condition: bool):
    if not condition:
        raise ValueError("this mistake does not apply to these inputs")


def _pad(x, padding):
    return np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))


def _stride_on_input_after_padding(x, w, b, stride, padding):
    _require(stride > 1)
    return _ref_conv(_pad(x, padding)[:, :, ::stride, ::stride], w, b, 1, 0)


def _stride_on_input_before_padding(x, w, b, stride, padding):
    _require(stride > 1)
    return _ref_conv(x[:, :, ::stride, ::stride], w, b, 1, padding)


def _no_bias(x, w, b, stride, padding):
    _require(b is not None)
    return _ref_conv(x, w, None, stride, padding)


def _pad_only_w(x, w, b, stride, padding):
    _require(padding > 0)
    return _ref_conv(np.pad(x, ((0, 0), (0, 0), (0, 0), (padding, padding))), w, b, stride, 0)


CONV_MISTAKES = (
    Mistake("channels-last output", LAYOUT,
            lambda x, w, b, stride, padding: _ref_conv(x, w, b, stride, padding).transpose(0, 2, 3, 1)),
    Mistake("x read as NHWC, NHWC output", LAYOUT,
            lambda x, w, b, stride, padding: _ref_conv(x.transpose(0, 3, 1, 2), w, b, stride, padding)
            .transpose(0, 2, 3, 1)),
    Mistake("x read as NHWC", LAYOUT,
            lambda x, w, b, stride, padding: _ref_conv(x.transpose(0, 3, 1, 2), w, b, stride, padding)),
    Mistake("flipped kernel", FLIPPED,
            lambda x, w, b, stride, padding: _ref_conv(x, w[:, :, ::-1, ::-1], b, stride, padding)),
    Mistake("missing bias", NO_BIAS, _no_bias),
    Mistake("stride on the input", STRIDE_ON_INPUT, _stride_on_input_after_padding),
    Mistake("stride on the input", STRIDE_ON_INPUT, _stride_on_input_before_padding),
    Mistake("stride ignored", STRIDE_IGNORED,
            lambda x, w, b, stride, padding: _require(stride > 1) or _ref_conv(x, w, b, 1, padding)),
    Mistake("padding missing", PAD_MISSING,
            lambda x, w, b, stride, padding: _require(padding > 0) or _ref_conv(x, w, b, stride, 0)),
    Mistake("padding doubled", PAD_DOUBLED,
            lambda x, w, b, stride, padding: _require(padding > 0)
            or _ref_conv(x, w, b, stride, 2 * padding)),
    Mistake("only W padded", PAD_ONLY_W, _pad_only_w),
)


def _ref_pool(x, kernel_size, stride):
    return np.ascontiguousarray(_conv.max_pool2d(x, kernel_size, stride))


POOL_MISTAKES = (
    Mistake("channels-last output", LAYOUT_POOL,
            lambda x, kernel_size, stride: _ref_pool(x, kernel_size, stride).transpose(0, 2, 3, 1)),
    Mistake("x read as NHWC", LAYOUT_POOL,
            lambda x, kernel_size, stride: _ref_pool(x.transpose(0, 3, 1, 2), kernel_size, stride)
            .transpose(0, 2, 3, 1)),
    Mistake("default stride 1", POOL_STRIDE_DEFAULT,
            lambda x, kernel_size, stride: _require(stride is None) or _ref_pool(x, kernel_size, 1)),
    Mistake("average pooling", POOL_AVERAGE,
            lambda x, kernel_size, stride: _conv.avg_pool2d(x, kernel_size, stride)),
)


def _out(i: int, k: int, s: int, p: int) -> int:
    return (i + 2 * p - k) // s + 1


def conv_shape_hint(case: ConvCase, got: tuple[int, ...]) -> str | None:
    """What a wrong conv2d output shape says about the mistake, or None."""
    n, _, h, w = case.x.shape
    f, _, kh, kw = case.w.shape
    s, p = case.stride, case.padding
    ho, wo = _out(h, kh, s, p), _out(w, kw, s, p)
    if len(got) != 4 or tuple(got) == (n, f, ho, wo):
        return None
    if got == (n, ho, wo, f):
        return LAYOUT
    if got[:2] != (n, f):
        return None
    size = tuple(got[2:])
    if p > 0 and size == (_out(h, kh, s, 0), _out(w, kw, s, 0)):
        return PAD_MISSING
    if p > 0 and size == (_out(h, kh, s, 2 * p), _out(w, kw, s, 2 * p)):
        return PAD_DOUBLED
    if p > 0 and size == (_out(h, kh, s, 0), wo):
        return PAD_ONLY_W
    if s > 1 and size == (_out(h, kh, 1, p), _out(w, kw, 1, p)):
        return STRIDE_IGNORED
    if s > 1 and size in (
        (_out(-(-h // s), kh, 1, p), _out(-(-w // s), kw, 1, p)),
        (_out(-(-(h + 2 * p) // s), kh, 1, 0), _out(-(-(w + 2 * p) // s), kw, 1, 0)),
    ):
        return STRIDE_ON_INPUT
    return None


def _conv_formula(case: ConvCase) -> str:
    _, _, h, w = case.x.shape
    _, _, kh, kw = case.w.shape
    s, p = case.stride, case.padding
    return (
        f"H_out = (H + 2*padding - kh) // stride + 1 = ({h} + 2*{p} - {kh}) // {s} + 1 = "
        f"{_out(h, kh, s, p)} and W_out = ({w} + 2*{p} - {kw}) // {s} + 1 = {_out(w, kw, s, p)}"
    )


def pool_shape_hint(case: PoolCase, got: tuple[int, ...]) -> str | None:
    """What a wrong max_pool2d output shape says about the mistake, or None."""
    n, c, h, w = case.x.shape
    k = case.kernel_size
    s = k if case.stride is None else case.stride
    ho, wo = _out(h, k, s, 0), _out(w, k, s, 0)
    if len(got) != 4 or tuple(got) == (n, c, ho, wo):
        return None
    if got == (n, ho, wo, c):
        return LAYOUT_POOL
    if case.stride is None and k > 1 and got == (n, c, _out(h, k, 1, 0), _out(w, k, 1, 0)):
        return POOL_STRIDE_DEFAULT
    return None


def _pool_formula(case: PoolCase) -> str:
    _, _, h, w = case.x.shape
    k = case.kernel_size
    s = k if case.stride is None else case.stride
    return (
        f"H_out = (H - kernel_size) // stride + 1 = ({h} - {k}) // {s} + 1 = {_out(h, k, s, 0)} and "
        f"W_out = ({w} - {k}) // {s} + 1 = {_out(w, k, s, 0)}"
    )


# ---------------------------------------------------------------------------
# Torch helpers


def _torch():
    import torch

    return torch


def _devices() -> list:
    """The devices every check runs on: the CPU, and the first CUDA GPU when there is one."""
    torch = _torch()
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda", torch.cuda.current_device()))
    return devices


def _sync(device) -> None:
    if device.type == "cuda":
        _torch().cuda.synchronize(device)


@contextlib.contextmanager
def _quiet():
    """Silence warnings (ours, torch's and the student's): stderr fails an nbgrader test cell."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@contextlib.contextmanager
def _no_tf32():
    """Full float32 precision on CUDA (no TF32) inside the block; the settings are restored."""
    torch = _torch()
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    try:
        saved = (matmul.allow_tf32, cudnn.allow_tf32)
        matmul.allow_tf32 = False
        cudnn.allow_tf32 = False
    except (RuntimeError, AttributeError):  # a torch that refuses the legacy flags
        saved = None
    try:
        yield
    finally:
        if saved is not None:
            matmul.allow_tf32, cudnn.allow_tf32 = saved


@contextlib.contextmanager
def _one_thread(device=None):
    """Run CPU work on one thread inside the block (yields a phrase for the speed message).

    The checks' inputs are small: one thread is faster for them than a thread pool
    that waits for busy cores (on a loaded 2-core machine 30x faster), and speed
    ratios measured on one thread hardly depend on the machine's load. A CUDA
    device (the speed check on a GPU) leaves the threads alone.
    """
    torch = _torch()
    if device is not None and device.type != "cpu":
        yield ""
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield ", both on one CPU thread"
    finally:
        torch.set_num_threads(threads)


def _tensor(array, dtype, device, requires_grad=False):
    torch = _torch()
    return torch.tensor(array, dtype=dtype, device=device, requires_grad=requires_grad)


def _dtype_name(dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _rounded(array: np.ndarray | None, dtype_name: str) -> np.ndarray | None:
    """The float64 values a float32 (or float64) tensor of ``array`` holds."""
    if array is None:
        return None
    return array.astype(dtype_name).astype(np.float64)


def _tolerances(dtype_name: str, expected: np.ndarray) -> tuple[float, float]:
    """(rtol, atol) for comparing a result of this dtype with the float64 reference."""
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    tol = 1e-4 if dtype_name == "float32" else 1e-10
    return tol, tol * scale


def device_mismatch(input_device, output_device) -> str | None:
    """The message when the output is not on the input's device, else None.

    Both are ``torch.device`` (or device strings); ``cuda`` without an index
    matches any CUDA device.
    """
    torch = _torch()
    want, got = torch.device(input_device), torch.device(output_device)
    same = want.type == got.type and (want.index is None or got.index is None or want.index == got.index)
    return None if same else DEVICE.format(got=got, want=want)


def dtype_mismatch(input_dtype, output_dtype) -> str | None:
    """The message when the output dtype is not the input dtype, else None."""
    want, got = _dtype_name(input_dtype), _dtype_name(output_dtype)
    if want == got:
        return None
    return DTYPE.format(got=got, want=want, hint=DTYPE_HINTS.get((got, want), DTYPE_HINT))


def _check_tensor(name: str, value, what: str = "output") -> None:
    torch = _torch()
    if value is None:
        raise CheckError(f"{name}: {RETURNED_NONE}")
    if not isinstance(value, torch.Tensor):
        raise CheckError(f"{name}: " + NOT_TENSOR.format(what=what, got=type(value).__name__))


_GRADING_DIR = str(pathlib.Path(__file__).resolve().parent)
# The traceback of the student's own code when it raised, kept for the message of the
# failed check (``graded`` re-raises CheckErrors without their chain).
_STUDENT_TRACE: contextvars.ContextVar[str | None] = contextvars.ContextVar("a2_student_trace", default=None)


def _student_traceback(error: BaseException) -> str:
    """The traceback of an exception raised in the student's code, without the checks' frames."""
    summary = traceback.TracebackException.from_exception(error)
    summary.stack = traceback.StackSummary.from_list(
        [frame for frame in summary.stack if not frame.filename.startswith(_GRADING_DIR)]
    )
    return "".join(summary.format(chain=False))


def _student_facing(check_function):
    """A failed check shows its message, not the traceback of the checks and the test cell.

    IPython (and so Jupyter and nbgrader) prints what an exception's
    ``_render_traceback_()`` returns instead of the traceback. The checks'
    frames teach nothing, and the test cell's context lines would show the
    hidden test calls in nbgrader's feedback. When the student's function
    raised, its own frames (the line in the notebook that failed) come first.
    The exception itself (class, message) is unchanged.
    """

    @functools.wraps(check_function)
    def run(*args, **kwargs):
        token = _STUDENT_TRACE.set(None)
        try:
            return check_function(*args, **kwargs)
        except CheckError as error:
            lines = [f"{type(error).__name__}: {error}"]
            trace = _STUDENT_TRACE.get()
            if trace:
                lines = ["Your function raised an error; where it happened in your code:", "",
                         *trace.rstrip().splitlines(), "", *lines]
            error._render_traceback_ = lambda: lines
            raise
        finally:
            _STUDENT_TRACE.reset(token)

    return run


def _call(fn, name: str, args: tuple, kwargs: dict, desc: str, hint: str, layout_probe=None):
    """Call the student's function with the forbidden references turned into tripwires.

    An exception becomes a CheckError naming the input. ``layout_probe``, when
    given, is called (also under the tripwires) after an exception: it returns
    True when the function works on the same data in channels-last layout, and
    the message then names the layout mistake.
    """
    try:
        with forbid(fn, FORBIDDEN, name, hint):
            return fn(*args, **kwargs)
    except CheckError:
        raise
    except NotImplementedError:
        raise CheckError(f"{name}: {NOT_IMPLEMENTED}") from None
    except Exception as error:  # the student's code failed: say on which input
        _STUDENT_TRACE.set(_student_traceback(error))
        if layout_probe is not None:
            try:
                with forbid(fn, FORBIDDEN, name, hint):
                    works_channels_last = layout_probe()
            except Exception:
                works_channels_last = False
            if works_channels_last:
                raise CheckError(
                    f"{name}: {LAYOUT} (it raised {type(error).__name__} on this NCHW input and "
                    f"works on the same data as (N, H, W, C)) {desc}"
                ) from error
        raise CheckError(f"{name}: " + RAISED.format(kind=type(error).__name__, error=error) + f" {desc}") from error


def _check_output(name, out, expected, *, inputs, mistakes, rtol, atol, desc, shape_hint, axes, formula,
                  what="output", input_dtype=None):
    """Named checks on one output: type, shape (with diagnostics), finite, values (with diagnostics).

    With ``input_dtype``, wrong values of an output in another dtype get a note
    (float32 results cannot meet float64's tolerance).
    """
    _check_tensor(name, out, what)
    got = tuple(out.shape)
    if got != expected.shape:
        mistake = diagnose(out, inputs, mistakes, rtol=rtol, atol=atol)
        if mistake is not None:
            raise CheckError(f"{name}: {what} is wrong: {mistake.message} {desc}")
        hint = shape_hint(got)
        if hint is not None:
            raise CheckError(f"{name}: {what} shape is {got}, expected {expected.shape}: {hint} {desc}")
        detail = ""
        if len(got) == len(expected.shape):
            for axis, g, e in zip(axes, got, expected.shape, strict=True):
                if g != e:
                    detail = f": {axis} {g}, expected {e}"
                    break
        else:
            detail = f": {len(got)} dimensions, expected {len(expected.shape)}"
        raise CheckError(f"{name}: {what} shape is {got}, expected {expected.shape}{detail}; {formula} {desc}")
    try:
        check_finite(out, name, what)
        check_close(out, expected, name, what, rtol=rtol, atol=atol, inputs=inputs, mistakes=mistakes)
    except CheckError as error:
        note = ""
        if input_dtype is not None and out.dtype != input_dtype:
            note = " " + DTYPE_NOTE.format(got=_dtype_name(out.dtype), want=_dtype_name(input_dtype))
        raise CheckError(f"{error} {desc}{note}") from None


def _conv_tensors(case: ConvCase, dtype, device, requires_grad=False):
    x = _tensor(case.x, dtype, device, requires_grad)
    w = _tensor(case.w, dtype, device, requires_grad)
    b = None if case.b is None else _tensor(case.b, dtype, device, requires_grad)
    return x, w, b


def _conv_expected(case: ConvCase, dtype_name: str):
    """(inputs as the tensors hold them, in float64; expected output) for one case and dtype."""
    inputs = {
        "x": _rounded(case.x, dtype_name),
        "w": _rounded(case.w, dtype_name),
        "b": _rounded(case.b, dtype_name),
        "stride": case.stride,
        "padding": case.padding,
    }
    return inputs, _ref_conv(**inputs)


def _conv_call(conv2d, case: ConvCase, x, w, b, expected, desc):
    """conv2d on one case (with the layout probe for a function that only runs on NHWC data)."""
    rtol, atol = _tolerances(_dtype_name(x.dtype), expected)

    def probe():
        out = conv2d(x.permute(0, 2, 3, 1).contiguous(), w, b, stride=case.stride, padding=case.padding)
        array = to_numpy(out)
        return array is not None and any(
            array.shape == e.shape and np.allclose(array, e, rtol=rtol, atol=atol)
            for e in (expected.transpose(0, 2, 3, 1), expected)
        )

    if case.defaults:
        return _call(conv2d, "conv2d", (x, w), {}, desc, CONV_HINT, probe)
    return _call(conv2d, "conv2d", (x, w, b), {"stride": case.stride, "padding": case.padding}, desc,
                 CONV_HINT, probe)


# ---------------------------------------------------------------------------
# conv2d


@_student_facing
@graded
def check_conv2d(conv2d, hidden: bool = False) -> None:
    """Values of ``conv2d(x, w, b, stride, padding)`` (NCHW, OIHW) vs the float64 reference.

    Runs every case in float64 (tolerance about 1e-10) and float32 (about
    1e-4, relative) on the CPU, and on CUDA too when there is a GPU (TF32
    off). A wrong output is compared with known mistakes (channels-last
    layout, flipped kernel, missing bias, stride on the input, padding
    missing, doubled or on W only) and the message names the likely one.
    """
    torch = _torch()
    cases = conv2d_cases(hidden)
    devices = _devices()
    names = ["output is a tensor", "shape", "finite"]
    with _quiet(), _no_tf32(), _one_thread():
        for device in devices:
            for dtype in (torch.float64, torch.float32):
                dtype_name = _dtype_name(dtype)
                for case in cases:
                    inputs, expected = _conv_expected(case, dtype_name)
                    x, w, b = _conv_tensors(case, dtype, device)
                    desc = case.describe(dtype_name, device)
                    out = _conv_call(conv2d, case, x, w, b, expected, desc)
                    rtol, atol = _tolerances(dtype_name, expected)
                    _check_output(
                        "conv2d", out, expected, inputs=inputs, mistakes=CONV_MISTAKES, rtol=rtol,
                        atol=atol, desc=desc, shape_hint=lambda got, case=case: conv_shape_hint(case, got),
                        axes=_CONV_AXES, formula=_conv_formula(case), input_dtype=dtype,
                    )
                names.append(f"values {dtype_name} on {device.type}")
    names.append("no forbidden calls")
    passed("conv2d" + (" (hidden tests)" if hidden else ""), names)


@_student_facing
@graded
def check_conv2d_gradients(conv2d, hidden: bool = False) -> None:
    """Autograd gradients through ``conv2d`` vs ``utils.conv.conv2d_backward`` (float64).

    For each case: the forward output must be right, must require grad, and
    ``(out * dout).sum().backward()`` must give x.grad, w.grad and b.grad equal
    to the reference gradients. On the CPU, and on CUDA too when present.
    """
    cases = conv2d_cases(hidden, salt="conv2d_gradients")[:4]
    rng = case_rng(hidden, "conv2d_gradients:dout")
    torch = _torch()
    names = ["forward values", "output requires grad", "backward runs"]
    with _quiet(), _no_tf32(), _one_thread():
        for device in _devices():
            for case in cases:
                inputs, expected = _conv_expected(case, "float64")
                dout = rng.standard_normal(expected.shape)
                dx, dw, db = _conv.conv2d_backward(dout, case.x, case.w, stride=case.stride, padding=case.padding)
                x, w, b = _conv_tensors(case, torch.float64, device, requires_grad=True)
                desc = case.describe("float64", device)
                out = _conv_call(conv2d, case, x, w, b, expected, desc)
                try:
                    _check_output(
                        "conv2d", out, expected, inputs=inputs, mistakes=CONV_MISTAKES, rtol=1e-10,
                        atol=1e-10 * max(1.0, float(np.abs(expected).max())), desc=desc,
                        shape_hint=lambda got, case=case: conv_shape_hint(case, got), axes=_CONV_AXES,
                        formula=_conv_formula(case), what="forward output", input_dtype=torch.float64,
                    )
                except CheckError as error:
                    raise CheckError(f"{error} {FORWARD_FIRST}") from None
                wanted = [("x", x, dx), ("w", w, dw)] + ([("b", b, db)] if b is not None else [])
                _check_backward("conv2d", conv2d, out, dout, wanted, desc, CONV_HINT)
    names.append("x.grad, w.grad and b.grad" + " on " + "/".join(d.type for d in _devices()))
    passed("conv2d gradients" + (" (hidden tests)" if hidden else ""), names)


def _check_backward(name, fn, out, dout, wanted, desc, hint):
    """out requires grad; backward of sum(out * dout) runs; each input's .grad equals its reference."""
    torch = _torch()
    if not out.requires_grad:
        raise CheckError(f"{name}: {NOT_DIFFERENTIABLE} {desc}")
    try:
        with forbid(fn, FORBIDDEN, name, hint):
            (out * torch.tensor(dout, dtype=out.dtype, device=out.device)).sum().backward()
    except CheckError:
        raise
    except Exception as error:
        message = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        raise CheckError(f"{name}: " + BACKWARD_FAILED.format(error=message) + f" {desc}") from error
    for input_name, tensor, reference in wanted:
        if tensor.grad is None:
            raise CheckError(f"{name}: " + GRAD_NONE.format(name=input_name) + f" {desc}")
        scale = max(1.0, float(np.abs(reference).max()))
        try:
            check_close(tensor.grad, reference, name, f"gradient {input_name}.grad", rtol=1e-8, atol=1e-8 * scale)
        except CheckError as error:
            raise CheckError(f"{error} {desc}") from None


@_student_facing
@graded
def check_conv2d_device_dtype(conv2d, hidden: bool = False) -> None:
    """The output of ``conv2d`` is a tensor on the input's device, in the input's dtype.

    float32 stays float32 and float64 stays float64, on the CPU and on CUDA
    when there is a GPU. Values are checked by :func:`check_conv2d`.
    """
    torch = _torch()
    case = conv2d_cases(hidden, salt="conv2d_device_dtype")[1]
    names = ["output is a tensor"]
    with _quiet(), _no_tf32(), _one_thread():
        for device in _devices():
            for dtype in (torch.float32, torch.float64):
                dtype_name = _dtype_name(dtype)
                _, expected = _conv_expected(case, dtype_name)
                x, w, b = _conv_tensors(case, dtype, device)
                desc = case.describe(dtype_name, device)
                out = _conv_call(conv2d, case, x, w, b, expected, desc)
                _check_tensor("conv2d", out)
                message = device_mismatch(x.device, out.device)
                if message is not None:
                    raise CheckError(f"conv2d: {message} {desc}")
                message = dtype_mismatch(x.dtype, out.dtype)
                if message is not None:
                    raise CheckError(f"conv2d: {message} {desc}")
                names.append(f"{dtype_name} stays {dtype_name} on {device.type}")
    passed("conv2d device and dtype" + (" (hidden tests)" if hidden else ""), names)


@_student_facing
@graded
def check_conv2d_speed(conv2d, hidden: bool = False, limit: float = SPEED_LIMIT) -> None:
    """``conv2d`` takes at most ``limit`` times as long as ``F.conv2d`` (float32, same process).

    On the grading device (CUDA when there is a GPU, else the CPU, both
    timed on one thread), on the problem ``SPEED_PROBLEMS[device.type]``
    (padding 1): the output must first be right; then F.conv2d (outside the
    tripwires) and the student's function are timed in turns, after warm-up,
    with ``torch.cuda.synchronize()`` on CUDA, and the medians compared. A
    slow function stops being timed after ``SPEED_BUDGET_S`` seconds, and one
    whose first call took over ``SPEED_GIVE_UP_S`` seconds is not called again.
    """
    torch = _torch()
    reference = torch.nn.functional.conv2d  # taken before any tripwire is set
    device = _devices()[-1]
    n, c, h, w_, f, k, stride = SPEED_PROBLEMS[device.type]
    rng = case_rng(hidden, "conv2d_speed")
    case = ConvCase(rng.standard_normal((n, c, h, w_)), rng.standard_normal((f, c, k, k)) / math.sqrt(c * k * k),
                    rng.standard_normal(f), stride, 1)
    x, w, b = _conv_tensors(case, torch.float32, device)
    desc = case.describe("float32", device)
    with _quiet(), _no_tf32(), _one_thread(device) as threads:
        expected = to_numpy(reference(x.double(), w.double(), b.double(), stride=stride, padding=1))
        _sync(device)
        start = time.perf_counter()
        out = _conv_call(conv2d, case, x, w, b, expected, desc)
        _sync(device)
        first_call = time.perf_counter() - start
        _check_tensor("conv2d", out)
        rtol, atol = _tolerances("float32", expected)
        try:
            check_close(out, expected, "conv2d", rtol=rtol, atol=atol)
        except CheckError as error:
            detail = str(error).removeprefix("conv2d: ")
            raise CheckError("conv2d: " + SPEED_WRONG.format(detail=detail) + f" {desc}") from None
        del out
        # under the trusted verifier, speed.compare answers with the times measured in its sandboxed child
        timing = speed.compare(conv2d, "torch.nn.functional.conv2d", (x, w, b), {"stride": stride, "padding": 1},
                               device, guard=lambda: forbid(conv2d, FORBIDDEN, "conv2d", CONV_HINT),
                               first_s=first_call, repeats=SPEED_REPEATS, rounds=SPEED_ROUNDS,
                               budget_s=SPEED_BUDGET_S, give_up_s=SPEED_GIVE_UP_S)
    student_ms, reference_ms, ratio = timing.student_ms, timing.reference_ms, timing.ratio
    problem = f"x {case.x.shape}, w {case.w.shape}, stride {stride}, padding 1, float32 on {device}{threads}"
    if ratio > limit:
        raise CheckError(
            "conv2d: "
            + TOO_SLOW.format(student=student_ms, reference=reference_ms, problem=problem, ratio=ratio, limit=limit)
        )
    passed(
        "conv2d speed" + (" (hidden tests)" if hidden else ""),
        ["values on the timing input",
         f"{student_ms:.2f} ms per call vs {reference_ms:.2f} ms for F.conv2d on {problem}: "
         f"{ratio:.1f}x, limit {limit:g}x"],
    )


# ---------------------------------------------------------------------------
# max_pool2d


def _pool_call(max_pool2d, case: PoolCase, x, desc):
    if case.stride is None:
        return _call(max_pool2d, "max_pool2d", (x, case.kernel_size), {}, desc, POOL_HINT)
    return _call(max_pool2d, "max_pool2d", (x, case.kernel_size), {"stride": case.stride}, desc, POOL_HINT)


@_student_facing
@graded
def check_max_pool2d(max_pool2d, hidden: bool = False) -> None:
    """Values, device and dtype of ``max_pool2d(x, kernel_size, stride=None)`` (NCHW).

    Cases call it without a stride (the default must be kernel_size) and with
    strides smaller than (overlapping windows), equal to and larger than the
    window. float64 and float32, on the CPU and on CUDA when present.
    """
    torch = _torch()
    cases = max_pool2d_cases(hidden)
    names = ["output is a tensor", "same device as the input", "dtype kept", "shape", "finite"]
    with _quiet(), _one_thread():
        for device in _devices():
            for dtype in (torch.float64, torch.float32):
                dtype_name = _dtype_name(dtype)
                for case in cases:
                    x64 = _rounded(case.x, dtype_name)
                    inputs = {"x": x64, "kernel_size": case.kernel_size, "stride": case.stride}
                    expected = _ref_pool(x64, case.kernel_size, case.stride)
                    x = _tensor(case.x, dtype, device)
                    desc = case.describe(dtype_name, device)
                    out = _pool_call(max_pool2d, case, x, desc)
                    _check_tensor("max_pool2d", out)
                    message = device_mismatch(x.device, out.device) or dtype_mismatch(x.dtype, out.dtype)
                    if message is not None:
                        raise CheckError(f"max_pool2d: {message} {desc}")
                    rtol, atol = _tolerances(dtype_name, expected)
                    _check_output(
                        "max_pool2d", out, expected, inputs=inputs, mistakes=POOL_MISTAKES, rtol=rtol, atol=atol,
                        desc=desc, shape_hint=lambda got, case=case: pool_shape_hint(case, got), axes=_POOL_AXES,
                        formula=_pool_formula(case),
                    )
                names.append(f"values {dtype_name} on {device.type}")
    names.append("no forbidden calls")
    passed("max_pool2d" + (" (hidden tests)" if hidden else ""), names)


@_student_facing
@graded
def check_max_pool2d_gradients(max_pool2d, hidden: bool = False) -> None:
    """Autograd gradient of x through ``max_pool2d`` vs ``utils.conv.max_pool2d_backward`` (float64).

    Strides are given explicitly (the default stride is checked by
    :func:`check_max_pool2d`); overlapping windows add their gradients.
    """
    torch = _torch()
    cases = [c for c in max_pool2d_cases(hidden, salt="max_pool2d_gradients") if c.stride is not None][:3]
    rng = case_rng(hidden, "max_pool2d_gradients:dout")
    names = ["forward values", "output requires grad", "backward runs"]
    with _quiet(), _one_thread():
        for device in _devices():
            for case in cases:
                inputs = {"x": case.x, "kernel_size": case.kernel_size, "stride": case.stride}
                expected = _ref_pool(case.x, case.kernel_size, case.stride)
                dout = rng.standard_normal(expected.shape)
                dx = _conv.max_pool2d_backward(dout, case.x, case.kernel_size, case.stride)
                x = _tensor(case.x, torch.float64, device, requires_grad=True)
                desc = case.describe("float64", device)
                out = _pool_call(max_pool2d, case, x, desc)
                try:
                    _check_output(
                        "max_pool2d", out, expected, inputs=inputs, mistakes=POOL_MISTAKES, rtol=1e-10,
                        atol=1e-10 * max(1.0, float(np.abs(expected).max())), desc=desc,
                        shape_hint=lambda got, case=case: pool_shape_hint(case, got), axes=_POOL_AXES,
                        formula=_pool_formula(case), what="forward output", input_dtype=torch.float64,
                    )
                except CheckError as error:
                    raise CheckError(f"{error} {FORWARD_FIRST}") from None
                _check_backward("max_pool2d", max_pool2d, out, dout, [("x", x, dx)], desc, POOL_HINT)
    names.append("x.grad on " + "/".join(d.type for d in _devices()))
    passed("max_pool2d gradients" + (" (hidden tests)" if hidden else ""), names)
