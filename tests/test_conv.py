"""Tests for utils.conv: every function against PyTorch, TensorFlow or SciPy.

Shapes, strides, paddings and dilations are drawn by hypothesis strategies
that only produce valid combinations (the dilated kernel fits in the padded
input). float64 results must agree to ~1e-10, float32 to ~1e-4.
"""

from __future__ import annotations

import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np
import pytest
import scipy.signal
import tensorflow as tf
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from utils import conv

SETTINGS = settings(
    deadline=None,
    max_examples=30,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEW = settings(SETTINGS, max_examples=15)

TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
OURS = {1: conv.conv1d, 2: conv.conv2d, 3: conv.conv3d}
NAIVE = {1: conv.conv1d_naive, 2: conv.conv2d_naive, 3: conv.conv3d_naive}

F64 = dict(rtol=1e-10, atol=1e-10)
F32 = dict(rtol=1e-4, atol=1e-4)


def rng_from(seed):
    return np.random.default_rng(seed)


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


# --------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------


def _per_axis(draw, nd, elements):
    """An int (same on every axis) or a tuple with one value per axis."""
    if draw(st.booleans()):
        return draw(elements)
    return tuple(draw(elements) for _ in range(nd))


def _expand(v, nd):
    return v if isinstance(v, tuple) else (v,) * nd


@st.composite
def conv_cases(draw, nd=2, max_n=3, max_c=3, max_f=3, max_k=4, max_s=3, max_p=2, max_d=3,
               max_extra=6, tf_ok=False):
    """A valid convolution problem: x, w, b and the hyper-parameters."""
    stride = _per_axis(draw, nd, st.integers(1, max_s))
    dilation = _per_axis(draw, nd, st.integers(1, max_d))
    if tf_ok and any(s > 1 for s in _expand(stride, nd)):
        dilation = 1  # TensorFlow on CPU: dilation > 1 needs stride 1
    padding = _per_axis(draw, nd, st.integers(0, max_p))
    k = tuple(draw(st.integers(1, max_k)) for _ in range(nd))
    sizes = []
    for ka, d, p in zip(k, _expand(dilation, nd), _expand(padding, nd)):
        span = d * (ka - 1) + 1
        low = max(1, span - 2 * p)
        sizes.append(draw(st.integers(low, low + max_extra)))
    n = draw(st.integers(1, max_n))
    c = draw(st.integers(1, max_c))
    f = draw(st.integers(1, max_f))
    rng = rng_from(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, c, *sizes))
    w = rng.standard_normal((f, c, *k))
    b = rng.standard_normal(f) if draw(st.booleans()) else None
    return dict(x=x, w=w, b=b, stride=stride, padding=padding, dilation=dilation)


@st.composite
def pool_cases(draw, nd=2, max_k=4, max_s=3, max_extra=7):
    k = _per_axis(draw, nd, st.integers(1, max_k))
    stride = draw(st.none() | st.integers(1, max_s) | st.tuples(*[st.integers(1, max_s)] * nd))
    padding = tuple(draw(st.integers(0, ka // 2)) for ka in _expand(k, nd))
    if draw(st.booleans()) and len(set(padding)) == 1:
        padding = padding[0]
    sizes = []
    for ka, p in zip(_expand(k, nd), _expand(padding, nd)):
        low = max(1, ka - 2 * p)
        sizes.append(draw(st.integers(low, low + max_extra)))
    n = draw(st.integers(1, 3))
    c = draw(st.integers(1, 3))
    rng = rng_from(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, c, *sizes))
    ceil_mode = draw(st.booleans())
    return dict(x=x, kernel_size=k, stride=stride, padding=padding, ceil_mode=ceil_mode)


def torch_conv(case, nd, dtype=torch.float64):
    b = case["b"]
    return TORCH_CONV[nd](
        t(case["x"]).to(dtype),
        t(case["w"]).to(dtype),
        None if b is None else t(b).to(dtype),
        stride=case["stride"],
        padding=case["padding"],
        dilation=case["dilation"],
    ).numpy()


def ours(fn, case, **extra):
    return fn(case["x"], case["w"], case["b"], stride=case["stride"], padding=case["padding"],
              dilation=case["dilation"], **extra)


# --------------------------------------------------------------------------
# Vectorized convolution vs PyTorch and TensorFlow
# --------------------------------------------------------------------------


@SETTINGS
@given(conv_cases(nd=1, max_k=5, max_extra=10))
def test_conv1d_matches_torch(case):
    out = ours(conv.conv1d, case)
    np.testing.assert_allclose(out, torch_conv(case, 1), **F64)
    assert out.dtype == np.float64


@SETTINGS
@given(conv_cases(nd=2))
def test_conv2d_matches_torch(case):
    out = ours(conv.conv2d, case)
    ref = torch_conv(case, 2)
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, **F64)
    assert out.dtype == np.float64


def test_conv2d_output_is_a_plain_writeable_array():
    """The stride-1 result is a view with padded rows: writeable, no aliasing."""
    rng = rng_from(3)
    x, w = rng.standard_normal((2, 3, 9, 8)), rng.standard_normal((4, 3, 3, 3))
    out = conv.conv2d(x, w, padding=1)
    assert out.shape == (2, 4, 9, 8) and out.flags.writeable
    ref = F.conv2d(t(x), t(w), padding=1).numpy()
    np.testing.assert_allclose(np.ascontiguousarray(out), ref, **F64)
    out[...] = 1.0
    assert out.sum() == out.size  # every element has its own memory


@FEW
@given(conv_cases(nd=3, max_n=2, max_k=3, max_d=2, max_extra=3))
def test_conv3d_matches_torch(case):
    np.testing.assert_allclose(ours(conv.conv3d, case), torch_conv(case, 3), **F64)


@SETTINGS
@given(conv_cases(nd=2, max_c=4, max_f=4))
def test_conv2d_float32_matches_torch(case):
    case32 = {k: v.astype(np.float32) if isinstance(v, np.ndarray) else v
              for k, v in case.items()}
    out = ours(conv.conv2d, case32)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, torch_conv(case32, 2, torch.float32), **F32)


@SETTINGS
@given(conv_cases(nd=2, tf_ok=True))
def test_conv2d_matches_tensorflow(case):
    s = _expand(case["stride"], 2)
    p = _expand(case["padding"], 2)
    d = _expand(case["dilation"], 2)
    x_nhwc = np.transpose(case["x"], (0, 2, 3, 1))
    w_hwio = np.transpose(case["w"], (2, 3, 1, 0))
    ref = tf.nn.conv2d(
        x_nhwc,
        w_hwio,
        strides=[1, s[0], s[1], 1],
        padding=[[0, 0], [p[0], p[0]], [p[1], p[1]], [0, 0]],
        dilations=[1, d[0], d[1], 1],
    ).numpy()
    if case["b"] is not None:
        ref = ref + case["b"]
    np.testing.assert_allclose(ours(conv.conv2d, case), np.transpose(ref, (0, 3, 1, 2)), **F64)


@pytest.mark.parametrize("chunk", [64, 4096, 1 << 16])
@pytest.mark.parametrize(
    "nd, stride", [(1, 1), (1, 2), (2, 1), (2, 2), (2, (1, 2)), (3, 1), (3, (2, 1, 1))]
)
def test_blocked_im2col(monkeypatch, chunk, nd, stride):
    """Blocks of images, slabs of output rows, ragged last blocks: same result."""
    monkeypatch.setattr(conv, "_CHUNK_BYTES", chunk)
    rng = rng_from(nd)
    spatial = {1: (23,), 2: (13, 11), 3: (7, 6, 5)}[nd]
    x = rng.standard_normal((5, 3) + spatial)
    w = rng.standard_normal((4, 3) + (3, 2, 2)[:nd])
    b = rng.standard_normal(4)
    ref = TORCH_CONV[nd](t(x), t(w), t(b), stride=stride, padding=1, dilation=1).numpy()
    np.testing.assert_allclose(OURS[nd](x, w, b, stride=stride, padding=1), ref, **F64)
    ref = TORCH_CONV[nd](t(x), t(w), None, stride=stride, padding=0, dilation=2).numpy()
    np.testing.assert_allclose(OURS[nd](x, w, stride=stride, dilation=2), ref, **F64)


def test_conv2d_benchmark_shape_float32():
    """The benchmark's problem: float32 in, float32 out, equal to PyTorch."""
    rng = rng_from(1)
    x = rng.standard_normal((32, 16, 32, 32)).astype(np.float32)
    w = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    out = conv.conv2d(x, w, b)
    assert out.dtype == np.float32 and out.shape == (32, 32, 30, 30)
    np.testing.assert_allclose(out, F.conv2d(t(x), t(w), t(b)).numpy(), rtol=1e-4, atol=1e-4)


def test_integer_inputs_give_float64():
    x = np.arange(2 * 1 * 4 * 4).reshape(2, 1, 4, 4)
    w = np.ones((1, 1, 2, 2), dtype=np.int32)
    out = conv.conv2d(x, w)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, conv.conv2d_naive(x, w))


# --------------------------------------------------------------------------
# Naive loops
# --------------------------------------------------------------------------


@FEW
@given(conv_cases(nd=1, max_extra=5))
def test_conv1d_naive_matches_vectorized_and_torch(case):
    naive = ours(conv.conv1d_naive, case)
    np.testing.assert_allclose(naive, ours(conv.conv1d, case), **F64)
    np.testing.assert_allclose(naive, torch_conv(case, 1), **F64)


@FEW
@given(conv_cases(nd=2, max_n=2, max_c=2, max_f=2, max_k=3, max_extra=4))
def test_conv2d_naive_matches_vectorized_and_torch(case):
    naive = ours(conv.conv2d_naive, case)
    np.testing.assert_allclose(naive, ours(conv.conv2d, case), **F64)
    np.testing.assert_allclose(naive, torch_conv(case, 2), **F64)


@settings(SETTINGS, max_examples=8)
@given(conv_cases(nd=3, max_n=1, max_c=2, max_f=2, max_k=2, max_d=2, max_p=1, max_extra=2))
def test_conv3d_naive_matches_vectorized_and_torch(case):
    naive = ours(conv.conv3d_naive, case)
    np.testing.assert_allclose(naive, ours(conv.conv3d, case), **F64)
    np.testing.assert_allclose(naive, torch_conv(case, 3), **F64)


# --------------------------------------------------------------------------
# True convolution and the single-channel helpers
# --------------------------------------------------------------------------


def test_lecture_worked_example():
    image = np.array([[3, 3, 2, 1], [0, 0, 1, 3], [3, 1, 2, 2], [2, 0, 0, 2]])
    kernel = np.array([[0, 1, 2], [2, 2, 0], [0, 1, 2]])
    expected = np.array([[12, 12], [10, 17]])
    np.testing.assert_array_equal(conv.correlate2d_single(image, kernel), expected)
    x, w = image[None, None], kernel[None, None]  # as (N, C, H, W) and (F, C, HH, WW)
    np.testing.assert_array_equal(conv.conv2d(x, w)[0, 0], expected)
    np.testing.assert_array_equal(conv.conv2d_naive(x, w)[0, 0], expected)
    np.testing.assert_array_equal(conv.convolve2d_single(image, kernel[::-1, ::-1]), expected)


@st.composite
def single_cases(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    h, w = draw(st.integers(kh, kh + 6)), draw(st.integers(kw, kw + 6))
    rng = rng_from(draw(st.integers(0, 2**32 - 1)))
    return rng.standard_normal((h, w)), rng.standard_normal((kh, kw))


@SETTINGS
@given(single_cases(), st.integers(0, 2), st.integers(1, 3))
def test_single_channel_helpers_match_scipy(case, padding, stride):
    image, kernel = case
    padded = np.pad(image, padding)
    corr = scipy.signal.correlate2d(padded, kernel, mode="valid")[::stride, ::stride]
    convd = scipy.signal.convolve2d(padded, kernel, mode="valid")[::stride, ::stride]
    np.testing.assert_allclose(conv.correlate2d_single(image, kernel, padding, stride), corr, **F64)
    np.testing.assert_allclose(conv.convolve2d_single(image, kernel, padding, stride), convd, **F64)


@SETTINGS
@given(conv_cases(nd=2, max_s=1, max_p=0, max_d=1))
def test_convolve2d_matches_scipy(case):
    x, w, b = case["x"], case["w"], case["b"]
    out = conv.convolve2d(x, w, b)
    n, c = x.shape[:2]
    f = w.shape[0]
    ref = np.zeros_like(out)
    for i in range(n):
        for j in range(f):
            ref[i, j] = sum(scipy.signal.convolve2d(x[i, ch], w[j, ch], mode="valid")
                            for ch in range(c))
            if b is not None:
                ref[i, j] += b[j]
    np.testing.assert_allclose(out, ref, **F64)


@SETTINGS
@given(conv_cases(nd=2))
def test_convolve2d_is_correlation_with_flipped_kernel(case):
    flipped = dict(case, w=case["w"][:, :, ::-1, ::-1].copy())
    np.testing.assert_allclose(ours(conv.convolve2d, case), torch_conv(flipped, 2), **F64)


# --------------------------------------------------------------------------
# Pooling
# --------------------------------------------------------------------------


def _torch_pool(fn, case, **extra):
    return fn(t(case["x"]), case["kernel_size"], stride=case["stride"], padding=case["padding"],
              ceil_mode=case["ceil_mode"], **extra).numpy()


def _our_pool(fn, case):
    return fn(case["x"], case["kernel_size"], stride=case["stride"], padding=case["padding"],
              ceil_mode=case["ceil_mode"])


@SETTINGS
@given(pool_cases())
def test_max_pool2d_matches_torch(case):
    np.testing.assert_array_equal(_our_pool(conv.max_pool2d, case), _torch_pool(F.max_pool2d, case))


@SETTINGS
@given(pool_cases())
def test_avg_pool2d_matches_torch(case):
    ref = _torch_pool(F.avg_pool2d, case)
    np.testing.assert_allclose(_our_pool(conv.avg_pool2d, case), ref, **F64)


@SETTINGS
@given(pool_cases())
def test_sum_pool2d_matches_torch(case):
    ref = _torch_pool(F.avg_pool2d, case, divisor_override=1)
    np.testing.assert_allclose(_our_pool(conv.sum_pool2d, case), ref, **F64)


@FEW
@given(pool_cases(nd=1))
def test_pool1d_matches_torch(case):
    np.testing.assert_array_equal(_our_pool(conv.max_pool1d, case), _torch_pool(F.max_pool1d, case))
    ref = _torch_pool(F.avg_pool1d, case)
    np.testing.assert_allclose(_our_pool(conv.avg_pool1d, case), ref, **F64)


def test_pool_ceil_mode_drops_window_starting_in_right_padding():
    # i=5, k=2, s=2, p=1: ceil((5+2-2)/2)+1 = 4, but the 4th window would start
    # at 6 >= i + p = 6, entirely in the right padding: PyTorch keeps 3.
    x = np.arange(5.0).reshape(1, 1, 1, 5)
    out = conv.max_pool2d(x, (1, 2), stride=(1, 2), padding=(0, 1), ceil_mode=True)
    ref = F.max_pool2d(t(x), (1, 2), stride=(1, 2), padding=(0, 1), ceil_mode=True).numpy()
    assert out.shape == ref.shape == (1, 1, 1, 3)
    np.testing.assert_array_equal(out, ref)


@SETTINGS
@given(pool_cases(max_extra=4))
def test_global_pooling_matches_torch(case):
    x = case["x"]
    np.testing.assert_array_equal(conv.global_max_pool2d(x), torch.amax(t(x), dim=(2, 3)).numpy())
    ref = torch.mean(t(x), dim=(2, 3)).numpy()
    np.testing.assert_allclose(conv.global_avg_pool2d(x), ref, **F64)
    assert conv.global_avg_pool2d(x).shape == x.shape[:2]


# --------------------------------------------------------------------------
# Backward passes and transposed convolution
# --------------------------------------------------------------------------


@SETTINGS
@given(conv_cases(nd=2), st.integers(0, 2**32 - 1))
def test_conv2d_backward_matches_autograd(case, seed):
    x = t(case["x"]).requires_grad_()
    w = t(case["w"]).requires_grad_()
    b = torch.zeros(case["w"].shape[0], dtype=torch.float64, requires_grad=True)
    hyper = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"])
    out = F.conv2d(x, w, b, **hyper)
    dout = rng_from(seed).standard_normal(tuple(out.shape))
    out.backward(t(dout))
    dx, dw, db = conv.conv2d_backward(dout, case["x"], case["w"], **hyper)
    np.testing.assert_allclose(dx, x.grad.numpy(), **F64)
    np.testing.assert_allclose(dw, w.grad.numpy(), **F64)
    np.testing.assert_allclose(db, b.grad.numpy(), **F64)
    assert dx.shape == case["x"].shape and dw.shape == case["w"].shape and db.shape == b.shape


@SETTINGS
@given(pool_cases(), st.integers(0, 2**32 - 1))
def test_max_pool2d_backward_matches_autograd(case, seed):
    x = t(case["x"]).requires_grad_()
    out = F.max_pool2d(x, case["kernel_size"], stride=case["stride"], padding=case["padding"],
                       ceil_mode=case["ceil_mode"])
    dout = rng_from(seed).standard_normal(tuple(out.shape))
    out.backward(t(dout))
    dx = conv.max_pool2d_backward(dout, case["x"], case["kernel_size"], stride=case["stride"],
                                  padding=case["padding"], ceil_mode=case["ceil_mode"])
    np.testing.assert_allclose(dx, x.grad.numpy(), **F64)


@st.composite
def transpose_cases(draw):
    stride = _per_axis(draw, 2, st.integers(1, 3))
    dilation = _per_axis(draw, 2, st.integers(1, 2))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    sizes = (draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1))
                           for s, d in zip(_expand(stride, 2), _expand(dilation, 2)))
    padding = []
    for i, ka, s, d, op in zip(sizes, k, _expand(stride, 2), _expand(dilation, 2), output_padding):
        full = (i - 1) * s + d * (ka - 1) + 1 + op
        padding.append(draw(st.integers(0, min(3, (full - 1) // 2))))
    rng = rng_from(draw(st.integers(0, 2**32 - 1)))
    cin, cout, n = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    x = rng.standard_normal((n, cin, *sizes))
    w = rng.standard_normal((cin, cout, *k))
    b = rng.standard_normal(cout) if draw(st.booleans()) else None
    return dict(x=x, w=w, b=b, stride=stride, padding=tuple(padding), output_padding=output_padding,
                dilation=dilation)


@SETTINGS
@given(transpose_cases())
def test_conv_transpose2d_matches_torch(case):
    b = case["b"]
    hyper = {k: case[k] for k in ("stride", "padding", "output_padding", "dilation")}
    ref = F.conv_transpose2d(t(case["x"]), t(case["w"]), None if b is None else t(b), **hyper)
    ref = ref.numpy()
    out = conv.conv_transpose2d(**case)
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, **F64)


# --------------------------------------------------------------------------
# Bad arguments
# --------------------------------------------------------------------------

X = np.zeros((2, 3, 5, 5))
W = np.zeros((4, 3, 3, 3))
W4 = np.zeros((4, 4, 3, 3))  # expects 4 channels
V, E = ValueError, TypeError
c = conv

BAD_CALLS = [
    (lambda: c.conv2d(X, W4), V, r"x has 3 channels but w expects 4"),
    (lambda: c.conv2d_naive(X, W4), V, r"x has 3 channels but w expects 4"),
    (lambda: c.conv2d(X, np.zeros((4, 3, 7, 3))), V, r"kernel too large along H"),
    (lambda: c.conv2d(X, W, dilation=3), V, r"kernel.*dilation 3"),
    (lambda: c.conv2d(X, np.zeros((4, 3, 8, 8)), padding=1), V, r"padded input size i\+2p = 7"),
    (lambda: c.conv2d(X, W, stride=0), V, r"stride must be a positive integer"),
    (lambda: c.conv2d(X, W, stride=-2), V, r"stride"),
    (lambda: c.conv2d(X, W, stride=1.5), E, r"stride must be an integer"),
    (lambda: c.conv2d(X, W, dilation=0), V, r"dilation must be a positive integer"),
    (lambda: c.conv2d(X, W, padding=-1), V, r"padding must be non-negative"),
    (lambda: c.conv2d(X, W, padding=(1, 1, 1)), V, r"padding must be an int or a sequence of 2"),
    (lambda: c.conv2d(X[0], W), V, r"x must have 4 dimensions"),
    (lambda: c.conv2d(X, W[0]), V, r"w must have 4 dimensions"),
    (lambda: c.conv1d(X, W), V, r"x must have 3 dimensions"),
    (lambda: c.conv3d(X, W), V, r"x must have 5 dimensions"),
    (lambda: c.conv2d(X, W, b=np.zeros(3)), V, r"b must have shape \(F,\) = \(4,\)"),
    (lambda: c.conv2d(X, W, b=np.zeros((4, 1))), V, r"b must have shape"),
    (lambda: c.conv2d(X.astype(str), W), E, r"x must hold numbers"),
    (lambda: c.conv2d(np.zeros((0, 3, 5, 5)), W), V, r"x must not be empty"),
    (lambda: c.conv2d_backward(np.zeros((2, 4, 2, 2)), X, W), V, r"dout must have shape"),
    (lambda: c.conv_transpose2d(X, W), V, r"x has 3 channels but w expects 4"),
    (lambda: c.conv_transpose2d(X, W[:3], stride=2, output_padding=2), V, r"output_padding"),
    (lambda: c.correlate2d_single(np.zeros((2, 2)), np.zeros((3, 3))), V, r"kernel too large"),
    (lambda: c.correlate2d_single(X[0], np.zeros((3, 3))), V, r"image must have 2 dimensions"),
    (lambda: c.max_pool2d(X, 2, padding=2), V, r"padding along H must be at most half"),
    (lambda: c.max_pool2d(X, 0), V, r"kernel_size must be a positive integer"),
    (lambda: c.avg_pool2d(X, 2, stride=0), V, r"stride must be a positive integer"),
    (lambda: c.max_pool2d(X, 6), V, r"kernel_size along H"),
    (lambda: c.max_pool2d(X, 2, ceil_mode="yes"), E, r"ceil_mode"),
    (lambda: c.max_pool2d_backward(np.zeros((2, 3, 3, 3)), X, 2), V, r"dout must have shape"),
    (lambda: c.global_avg_pool2d(X[0]), V, r"x must have 4 dimensions"),
]


@pytest.mark.parametrize("call, error, match", BAD_CALLS, ids=[m for _, _, m in BAD_CALLS])
def test_bad_arguments_raise_with_a_clear_message(call, error, match):
    """Each error names the argument and the rule broken."""
    with pytest.raises(error, match=match):
        call()


def test_import_pulls_in_numpy_only():
    code = (
        "import sys, utils.conv; "
        "bad = [m for m in ('torch', 'tensorflow', 'scipy', 'keras') if m in sys.modules]; "
        "assert not bad, bad"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, env=env)
