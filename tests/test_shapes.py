"""Tests of utils.shapes against the real PyTorch and Keras layers.

Every size formula is checked on random arguments against the output shape of a
real layer (or, for Keras, ``compute_output_shape``, itself checked against real
calls on zeros); parameter counts against ``sum(p.numel())`` and
``model.count_params()``; receptive fields against PyTorch autograd; MACs
against ``torch.utils.flop_counter`` (which counts 2 FLOPs per multiply-add).
"""

from __future__ import annotations

import doctest
import os

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

import utils.shapes as shapes
from utils.shapes import (
    AvgPool2D,
    BatchNorm2D,
    Conv2D,
    ConvTranspose2D,
    Dense,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    ReLU,
    batchnorm_params,
    conv_macs,
    conv_output_size,
    conv_params,
    conv_transpose_output_size,
    count_params,
    dense_macs,
    dense_params,
    full_padding,
    pool_output_size,
    receptive_field,
    receptive_field_table,
    same_padding,
    summarize,
)

torch = pytest.importorskip("torch")
nn = torch.nn

FRAMEWORK = settings(max_examples=30, deadline=None)
KERAS = settings(max_examples=25, deadline=None)
PURE = settings(max_examples=200, deadline=None)


def _quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


@pytest.fixture(scope="module")
def keras():
    _quiet_tensorflow()
    return pytest.importorskip("keras")


@pytest.fixture(scope="module")
def tf():
    _quiet_tensorflow()
    return pytest.importorskip("tensorflow")


def _raises_in_torch(fn):
    try:
        return False, fn()
    except RuntimeError:
        return True, None


def _ours(fn):
    try:
        return False, fn()
    except ValueError:
        return True, None


# ---------------------------------------------------------------------------
# module hygiene
# ---------------------------------------------------------------------------


def test_doctests():
    result = doctest.testmod(shapes, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 20
    assert result.failed == 0


def test_imports_no_framework():
    source = open(shapes.__file__, encoding="utf-8").read()
    for name in ("torch", "tensorflow", "keras", "jax"):
        assert f"import {name}" not in source
        assert f"from {name}" not in source


def test_every_public_function_documents_itself():
    for name in shapes.__all__:
        obj = getattr(shapes, name)
        assert obj.__doc__ and len(obj.__doc__) > 20, name
    for fn in (conv_output_size, pool_output_size, conv_transpose_output_size, same_padding,
               full_padding, receptive_field, conv_params, dense_params, batchnorm_params):
        assert ">>>" in fn.__doc__, fn.__name__


# ---------------------------------------------------------------------------
# convolution sizes
# ---------------------------------------------------------------------------


@st.composite
def conv_args(draw, dims, max_n=20):
    n = tuple(draw(st.integers(1, max_n)) for _ in range(dims))
    k = tuple(draw(st.integers(1, 6)) for _ in range(dims))
    s = tuple(draw(st.integers(1, 4)) for _ in range(dims))
    p = tuple(draw(st.integers(0, 3)) for _ in range(dims))
    d = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    return n, k, s, p, d


def _torch_conv_shape(n, k, s, p, d):
    conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[len(n)]
    layer = conv(1, 1, k, stride=s, padding=p, dilation=d, bias=False)
    with torch.no_grad():
        return tuple(layer(torch.zeros(1, 1, *n)).shape[2:])


@pytest.mark.parametrize("dims,max_n", [(1, 30), (2, 20), (3, 9)])
def test_conv_output_size_matches_torch(dims, max_n):
    @FRAMEWORK
    @given(conv_args(dims, max_n))
    def check(args):
        n, k, s, p, d = args
        ours_raised, ours = _ours(lambda: conv_output_size(n, k, s, p, d))
        theirs_raised, theirs = _raises_in_torch(lambda: _torch_conv_shape(n, k, s, p, d))
        assert ours_raised == theirs_raised, (args, ours, theirs)
        assert ours == theirs
        if dims == 1:  # the scalar form agrees with the tuple form
            assert _ours(lambda: conv_output_size(n[0], k[0], s[0], p[0], d[0]))[1] == (
                None if ours is None else ours[0]
            )

    check()


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
@FRAMEWORK
@given(n=st.integers(1, 25), k=st.integers(1, 6), d=st.integers(1, 3))
def test_same_padding_stride_1_matches_torch(n, k, d):
    layer = nn.Conv1d(1, 1, k, padding="same", dilation=d, bias=False)
    with torch.no_grad():
        out = layer(torch.zeros(1, 1, n)).shape[-1]
    assert conv_output_size(n, k, padding="same", dilation=d) == out == n


@FRAMEWORK
@given(n=st.integers(1, 25), k=st.integers(1, 6), s=st.integers(1, 3), d=st.integers(1, 3))
def test_full_padding_matches_torch(n, k, s, d):
    p = full_padding(k, d)
    assert p == d * (k - 1)
    layer = nn.Conv1d(1, 1, k, stride=s, padding=p, dilation=d, bias=False)
    with torch.no_grad():
        out = layer(torch.zeros(1, 1, n)).shape[-1]
    assert conv_output_size(n, k, s, "full", d) == out


def test_full_convolution_matches_scipy():
    from scipy.signal import convolve2d

    x, w = np.ones((7, 9)), np.ones((3, 4))
    assert convolve2d(x, w, mode="full").shape == conv_output_size((7, 9), (3, 4), padding="full")
    assert convolve2d(x, w, mode="valid").shape == conv_output_size((7, 9), (3, 4), padding="valid")


@st.composite
def keras_conv_args(draw):
    n = (draw(st.integers(1, 20)), draw(st.integers(1, 20)))
    k = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    if draw(st.booleans()):
        s, d = (draw(st.integers(1, 4)), draw(st.integers(1, 4))), 1
    else:  # Keras refuses strides > 1 together with dilation > 1
        s, d = 1, draw(st.integers(1, 3))
    padding = draw(st.sampled_from(["same", "valid"]))
    return n, k, s, padding, d


@KERAS
@given(args=keras_conv_args())
def test_conv_output_size_matches_keras(keras, args):
    n, k, s, padding, d = args
    raised, ours = _ours(lambda: conv_output_size(n, k, s, padding, d))
    assume(not raised)  # Keras reports a size <= 0 instead of raising
    layer = keras.layers.Conv2D(2, k, strides=s, padding=padding, dilation_rate=d)
    assert tuple(layer.compute_output_shape((None, *n, 3))[1:3]) == ours


@FRAMEWORK
@given(
    h=st.integers(1, 16),
    w=st.integers(1, 16),
    k=st.integers(1, 5),
    s=st.integers(1, 4),
    d=st.integers(1, 3),
)
def test_same_padding_is_what_tensorflow_pads(tf, h, w, k, s, d):
    if d > 1:
        s = 1  # tf.nn.conv2d refuses strides > 1 together with dilations > 1
    rng = np.random.default_rng(h * 100 + w)
    x = tf.constant(rng.normal(size=(1, h, w, 1)))
    kernel = tf.constant(rng.normal(size=(k, k, 1, 1)))
    same = tf.nn.conv2d(x, kernel, strides=s, padding="SAME", dilations=d)
    (top, bottom), (left, right) = same_padding((h, w), k, s, d)
    padded = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]])
    valid = tf.nn.conv2d(padded, kernel, strides=s, padding="VALID", dilations=d)
    assert same.shape[1:3] == conv_output_size((h, w), k, s, "same", d)
    np.testing.assert_allclose(valid.numpy(), same.numpy(), rtol=1e-12, atol=1e-12)


def test_same_padding_examples():
    assert same_padding(28, 3) == (1, 1)
    assert same_padding(224, 7, stride=2) == (2, 3)
    assert same_padding(5, 1) == (0, 0)
    assert same_padding(6, 2) == (0, 1)
    assert same_padding(7, 3, stride=3) == (1, 1)  # total = (3-1)*3 + 3 - 7 = 2
    assert same_padding(1, 5) == (2, 2)
    assert same_padding((5, 6), (3, 2)) == ((1, 1), (0, 1))


@PURE
@given(n=st.integers(1, 200), k=st.integers(1, 9), s=st.integers(1, 5), d=st.integers(1, 4))
def test_same_padding_gives_ceil(n, k, s, d):
    before, after = same_padding(n, k, s, d)
    assert 0 <= after - before <= 1
    assert conv_output_size(n, k, s, "same", d) == -(-n // s)
    # The padded input really produces ceil(n/s) outputs, and no smaller padding would.
    k_eff = d * (k - 1) + 1
    assert (n + before + after - k_eff) // s + 1 == -(-n // s)
    if before + after:
        assert (n + before + after - 1 - k_eff) // s + 1 < -(-n // s)


# ---------------------------------------------------------------------------
# pooling sizes
# ---------------------------------------------------------------------------


@st.composite
def pool_args(draw):
    n = (draw(st.integers(1, 20)), draw(st.integers(1, 20)))
    k = draw(st.integers(1, 5))
    s = draw(st.one_of(st.none(), st.integers(1, 4)))
    p = draw(st.integers(0, 3))
    d = draw(st.integers(1, 3))
    ceil_mode = draw(st.booleans())
    return n, k, s, p, d, ceil_mode


@FRAMEWORK
@given(args=pool_args())
@example(args=((5, 5), 2, 2, 1, 1, True))  # last window would start in the right padding
@example(args=((2, 2), 3, 2, 0, 1, True))  # ceil mode: the window hangs over the end
@example(args=((9, 9), 3, 2, 2, 1, False))  # padding > kernel_size // 2: refused
@example(args=((1, 1), 3, 2, 0, 1, True))  # empty even in ceil mode
def test_pool_output_size_matches_torch_maxpool(args):
    n, k, s, p, d, ceil_mode = args
    ours_raised, ours = _ours(lambda: pool_output_size(n, k, s, p, d, ceil_mode))
    layer = nn.MaxPool2d(k, stride=s, padding=p, dilation=d, ceil_mode=ceil_mode)
    theirs_raised, theirs = _raises_in_torch(lambda: tuple(layer(torch.zeros(1, 1, *n)).shape[2:]))
    assert ours_raised == theirs_raised, (args, ours, theirs)
    assert ours == theirs


@FRAMEWORK
@given(args=pool_args())
def test_pool_output_size_matches_torch_avgpool(args):
    n, k, s, p, _, ceil_mode = args
    ours_raised, ours = _ours(lambda: pool_output_size(n, k, s, p, ceil_mode=ceil_mode))
    layer = nn.AvgPool2d(k, stride=s, padding=p, ceil_mode=ceil_mode)
    theirs_raised, theirs = _raises_in_torch(lambda: tuple(layer(torch.zeros(1, 1, *n)).shape[2:]))
    assert ours_raised == theirs_raised, (args, ours, theirs)
    assert ours == theirs


def test_ceil_mode_examples():
    assert pool_output_size(7, 2) == 3
    assert pool_output_size(7, 2, ceil_mode=True) == 4
    assert pool_output_size(2, 3, stride=2, ceil_mode=True) == 1  # window hangs over the end
    # The last window would start in the right padding only: dropped.
    assert pool_output_size(5, 2, stride=2, padding=1, ceil_mode=True) == 3
    assert pool_output_size((7, 8), 2) == (3, 4)


@KERAS
@given(
    n=st.tuples(st.integers(1, 20), st.integers(1, 20)),
    k=st.integers(1, 5),
    s=st.one_of(st.none(), st.integers(1, 4)),
    padding=st.sampled_from(["same", "valid"]),
)
def test_pool_output_size_matches_keras(keras, n, k, s, padding):
    raised, ours = _ours(lambda: pool_output_size(n, k, s, padding))
    assume(not raised)
    for layer in (keras.layers.MaxPooling2D(k, strides=s, padding=padding),
                  keras.layers.AveragePooling2D(k, strides=s, padding=padding)):
        assert tuple(layer.compute_output_shape((None, *n, 2))[1:3]) == ours


# ---------------------------------------------------------------------------
# transposed convolution sizes
# ---------------------------------------------------------------------------


@st.composite
def transpose_args(draw):
    n = (draw(st.integers(1, 12)), draw(st.integers(1, 12)))
    k = draw(st.integers(1, 5))
    s = draw(st.integers(1, 4))
    p = draw(st.integers(0, 4))
    op = draw(st.integers(0, 3))
    d = draw(st.integers(1, 3))
    return n, k, s, p, op, d


@FRAMEWORK
@given(args=transpose_args())
@example(args=((1, 1), 2, 1, 1, 0, 1))  # output exactly 0: refused
@example(args=((1, 1), 5, 2, 3, 1, 1))  # output 0 again; this 2D case returns an empty tensor
@example(args=((3, 3), 3, 2, 1, 1, 1))  # output_padding < stride
@example(args=((3, 3), 3, 1, 1, 1, 2))  # output_padding >= stride but < dilation: allowed
@example(args=((3, 3), 3, 2, 1, 2, 2))  # output_padding >= both: refused
def test_conv_transpose_output_size_matches_torch(args):
    n, k, s, p, op, d = args
    ours_raised, ours = _ours(lambda: conv_transpose_output_size(n, k, s, p, op, d))
    layer = nn.ConvTranspose2d(1, 1, k, stride=s, padding=p, output_padding=op, dilation=d)

    def forward():
        with torch.no_grad():
            return tuple(layer(torch.zeros(1, 1, *n)).shape[2:])

    theirs_raised, theirs = _raises_in_torch(forward)
    if not theirs_raised and 0 in theirs:
        # For an output of exactly 0, ConvTranspose1d and most ConvTranspose2d calls
        # raise "Output size is too small", but some 2D backends return an empty
        # tensor; we always refuse.
        theirs_raised, theirs = True, None
    assert ours_raised == theirs_raised, (args, ours, theirs)
    assert ours == theirs


@st.composite
def keras_transpose_args(draw):
    n = (draw(st.integers(1, 12)), draw(st.integers(1, 12)))
    k = draw(st.integers(1, 5))
    if draw(st.booleans()):
        s, d = draw(st.integers(1, 4)), 1
    else:
        s, d = 1, draw(st.integers(1, 3))
    padding = draw(st.sampled_from(["same", "valid"]))
    op = draw(st.one_of(st.none(), st.integers(0, 4)))
    return n, k, s, padding, op, d


@KERAS
@given(args=keras_transpose_args())
@example(args=((5, 4), 3, 1, "same", 0, 2))  # 'same' pads half the *dilated* kernel
@example(args=((5, 4), 3, 2, "same", 2, 1))  # output_padding >= strides: refused
@example(args=((5, 4), 2, 3, "valid", None, 1))  # kernel smaller than the stride
def test_conv_transpose_output_size_matches_keras(keras, args):
    n, k, s, padding, op, d = args
    ours_raised, ours = _ours(lambda: conv_transpose_output_size(n, k, s, padding, op, d))
    try:
        layer = keras.layers.Conv2DTranspose(
            2, k, strides=s, padding=padding, output_padding=op, dilation_rate=d
        )
    except ValueError:
        assert ours_raised, args  # Keras refuses output_padding >= strides
        return
    assert not ours_raised, args
    assert tuple(layer.compute_output_shape((None, *n, 1))[1:3]) == ours


@PURE
@given(
    n=st.integers(1, 100),
    k=st.integers(1, 7),
    s=st.integers(1, 5),
    p=st.integers(0, 4),
    d=st.integers(1, 3),
)
def test_conv_transpose_inverts_conv(n, k, s, p, d):
    raised, o = _ours(lambda: conv_output_size(n, k, s, p, d))
    assume(not raised)
    op = (n + 2 * p - d * (k - 1) - 1) % s  # the rows the strided conv dropped
    assert conv_transpose_output_size(o, k, s, p, op, d) == n


def test_keras_compute_output_shape_is_the_real_shape(keras):
    """The Keras checks above use compute_output_shape; confirm it on real calls."""
    x = np.zeros((1, 11, 8, 3), dtype="float32")
    layers = [
        (keras.layers.Conv2D(2, 3, strides=2, padding="same"),
         (1, 2) + conv_output_size((11, 8), 3, 2, "same")),
        (keras.layers.Conv2D(2, (4, 3), strides=(3, 1), padding="valid"),
         (1, 2) + conv_output_size((11, 8), (4, 3), (3, 1), "valid")),
        (keras.layers.Conv2D(2, 3, dilation_rate=2, padding="same"),
         (1, 2) + conv_output_size((11, 8), 3, 1, "same", 2)),
        (keras.layers.MaxPooling2D(3, strides=2, padding="same"),
         (1, 3) + pool_output_size((11, 8), 3, 2, "same")),
        (keras.layers.MaxPooling2D(2),
         (1, 3) + pool_output_size((11, 8), 2)),
        (keras.layers.Conv2DTranspose(2, 3, strides=2, padding="same"),
         (1, 2) + conv_transpose_output_size((11, 8), 3, 2, "same")),
        (keras.layers.Conv2DTranspose(2, 3, strides=3, padding="valid", output_padding=2),
         (1, 2) + conv_transpose_output_size((11, 8), 3, 3, "valid", 2)),
    ]
    for layer, (b, c, h, w) in layers:
        assert tuple(layer(x).shape) == (b, h, w, c)
        assert tuple(layer.compute_output_shape(x.shape)) == (b, h, w, c)


# ---------------------------------------------------------------------------
# receptive field
# ---------------------------------------------------------------------------


@st.composite
def rf_stacks(draw):
    layers = []
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.integers(0, 2)):
            layers.append(
                Conv2D(1, draw(st.integers(1, 5)), stride=draw(st.integers(1, 3)),
                       dilation=draw(st.integers(1, 3)))
            )
        else:
            layers.append(AvgPool2D(draw(st.integers(2, 3)),
                                    stride=draw(st.one_of(st.none(), st.integers(1, 3)))))
    return layers


def _torch_stack(layers):
    modules = []
    for layer in layers:
        if isinstance(layer, Conv2D):
            conv = nn.Conv2d(1, 1, layer.kernel_size, stride=layer.stride,
                             dilation=layer.dilation, bias=False).double()
            nn.init.ones_(conv.weight)
            modules.append(conv)
        else:
            modules.append(nn.AvgPool2d(layer.pool_size, stride=layer.stride))
    return nn.Sequential(*modules)


@FRAMEWORK
@given(layers=rf_stacks())
def test_receptive_field_matches_autograd(layers):
    table = receptive_field_table(layers)
    rf, jump = table[-1].rf, table[-1].jump
    assert receptive_field(layers) == rf
    # The tuple form gives the same answer.
    tuples = [(spec.kernel_size, spec.stride or spec.kernel_size, getattr(spec, "dilation", 1))
              for spec in layers]
    assert receptive_field(tuples) == rf

    n = rf + 3 * jump  # room for at least four outputs along each axis
    x = torch.zeros(1, 1, n, n, dtype=torch.float64, requires_grad=True)
    y = _torch_stack(layers)(x)
    assert tuple(y.shape[2:]) == conv_output_size_stack((n, n), layers)
    i = (y.shape[-1] - 1) // 2  # a central output pixel
    (grad,) = torch.autograd.grad(y[0, 0, i, i], x)
    rows, cols = np.nonzero(grad[0, 0].numpy())
    for hits in (rows, cols):
        assert hits.max() - hits.min() + 1 == rf
        assert hits.min() == i * jump  # no padding: output i starts at input i * jump


def conv_output_size_stack(n, layers):
    return summarize((1, *n), layers).output_shape[1:]


def test_receptive_field_examples():
    assert receptive_field([(3, 1)]) == 3
    assert receptive_field([(3, 1), (3, 1)]) == 5
    assert receptive_field([(3, 1)] * 3) == 7
    assert receptive_field([(3, 1, 1), (3, 1, 2), (3, 1, 4)]) == 15
    assert receptive_field([]) == 1
    # AlexNet's conv1 / pool1 / conv2 (11 s4, 3 s2, 5 s1): 11, 19, 51.
    table = receptive_field_table([(11, 4), (3, 2), (5, 1)])
    assert [(r.rf, r.jump) for r in table] == [(11, 4), (19, 8), (51, 8)]
    # Specs: BatchNorm/ReLU are 1x1 and do not change it; pooling stride defaults to the size.
    specs = [Conv2D(8, 3), BatchNorm2D(), ReLU(), MaxPool2D(2), Conv2D(8, 3)]
    assert receptive_field(specs) == receptive_field([(3, 1), (2, 2), (3, 1)]) == 8


# ---------------------------------------------------------------------------
# parameter counts
# ---------------------------------------------------------------------------


def test_reference_parameter_counts():
    assert conv_params(3, 3, 10) == 280  # 10 filters of 3x3x3
    assert conv_params(5, 3, 6) == 456  # six 5x5x3 filters
    assert conv_params((3, 3), 3, 10, bias=False) == 270
    assert conv_params((5,), 4, 2) == 42
    assert conv_params((3, 3, 3), 2, 4) == 220
    assert conv_params(3, 32, 64, groups=4) == 3 * 3 * 8 * 64 + 64
    assert dense_params(400, 120) == 48120
    assert dense_params(400, 120, bias=False) == 48000
    assert batchnorm_params(64) == 128
    assert batchnorm_params(64, include_running_stats=True) == 256


@st.composite
def conv_param_args(draw):
    dims = draw(st.integers(1, 3))
    k = tuple(draw(st.integers(1, 5)) for _ in range(dims))
    groups = draw(st.integers(1, 4))
    c_in = groups * draw(st.integers(1, 4))
    c_out = groups * draw(st.integers(1, 4))
    return k, c_in, c_out, draw(st.booleans()), groups


def _numel(module):
    return sum(p.numel() for p in module.parameters())


@FRAMEWORK
@given(args=conv_param_args())
def test_conv_params_match_torch(args):
    k, c_in, c_out, bias, groups = args
    conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[len(k)]
    transposed = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[len(k)]
    expected = conv_params(k, c_in, c_out, bias=bias, groups=groups)
    assert _numel(conv(c_in, c_out, k, bias=bias, groups=groups)) == expected
    assert _numel(transposed(c_in, c_out, k, bias=bias, groups=groups)) == expected
    if len(k) == 2 and k[0] == k[1]:
        assert conv_params(k[0], c_in, c_out, bias=bias, groups=groups) == expected


@KERAS
@given(args=conv_param_args())
def test_conv_params_match_keras(keras, args):
    k, c_in, c_out, bias, groups = args
    cls = {1: keras.layers.Conv1D, 2: keras.layers.Conv2D, 3: keras.layers.Conv3D}[len(k)]
    layer = cls(c_out, k, use_bias=bias, groups=groups)
    layer.build((None, *([9] * len(k)), c_in))
    assert layer.count_params() == conv_params(k, c_in, c_out, bias=bias, groups=groups)


@FRAMEWORK
@given(n_in=st.integers(1, 300), n_out=st.integers(1, 300), bias=st.booleans())
def test_dense_params_match_torch(n_in, n_out, bias):
    assert _numel(nn.Linear(n_in, n_out, bias=bias)) == dense_params(n_in, n_out, bias=bias)


def test_dense_and_batchnorm_params_match_keras(keras):
    for n_in, n_out, bias in [(400, 120, True), (7, 3, False), (1, 1, True)]:
        layer = keras.layers.Dense(n_out, use_bias=bias)
        layer.build((None, n_in))
        assert layer.count_params() == dense_params(n_in, n_out, bias=bias)
    for channels in (1, 3, 64):
        bn = keras.layers.BatchNormalization()
        bn.build((None, 5, 5, channels))
        # Keras counts the moving mean/variance (non-trainable weights) too.
        assert bn.count_params() == batchnorm_params(channels, include_running_stats=True)
        trainable = sum(int(np.prod(w.shape)) for w in bn.trainable_weights)
        assert trainable == batchnorm_params(channels)


def test_batchnorm_params_match_torch():
    for channels in (1, 3, 64):
        bn = nn.BatchNorm2d(channels)
        # PyTorch keeps running mean/var as buffers, not parameters.
        assert _numel(bn) == batchnorm_params(channels)
        buffers = sum(b.numel() for name, b in bn.named_buffers() if name.startswith("running"))
        assert _numel(bn) + buffers == batchnorm_params(channels, include_running_stats=True)


# ---------------------------------------------------------------------------
# whole models
# ---------------------------------------------------------------------------

LENET5 = [
    Conv2D(6, 5), AvgPool2D(2), Conv2D(16, 5), AvgPool2D(2),
    Flatten(), Dense(120), Dense(84), Dense(10),
]


def _vgg16():
    layers = []
    for filters, convs in [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]:
        layers += [Conv2D(filters, 3, padding="same")] * convs + [MaxPool2D(2)]
    return layers + [Flatten(), Dense(4096), Dense(4096), Dense(1000)]


def _torch_model(input_shape, layers):
    """Build the PyTorch twin of a spec list ('same' conv padding as k // 2).

    Each module gets its input channels/features from the previous row of our
    own summary; a wrong figure would make the PyTorch forward fail.
    """
    in_shapes = [tuple(input_shape)] + [r.output_shape for r in summarize(input_shape, layers)]
    modules = []
    for layer, shape in zip(layers, in_shapes[:-1], strict=True):
        c = shape[0]
        if isinstance(layer, Conv2D):
            padding = (layer.kernel_size // 2) if layer.padding == "same" else layer.padding
            modules.append(nn.Conv2d(c, layer.filters, layer.kernel_size, layer.stride, padding,
                                     layer.dilation, bias=layer.bias, groups=layer.groups))
        elif isinstance(layer, ConvTranspose2D):
            modules.append(nn.ConvTranspose2d(c, layer.filters, layer.kernel_size, layer.stride,
                                              layer.padding, layer.output_padding or 0,
                                              bias=layer.bias))
        elif isinstance(layer, MaxPool2D):
            modules.append(nn.MaxPool2d(layer.pool_size, layer.stride, layer.padding,
                                        ceil_mode=layer.ceil_mode))
        elif isinstance(layer, AvgPool2D):
            modules.append(nn.AvgPool2d(layer.pool_size, layer.stride, layer.padding,
                                        ceil_mode=layer.ceil_mode))
        elif isinstance(layer, BatchNorm2D):
            modules.append(nn.BatchNorm2d(c))
        elif isinstance(layer, ReLU):
            modules.append(nn.ReLU())
        elif isinstance(layer, GlobalAvgPool2D):
            modules += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        elif isinstance(layer, Flatten):
            modules.append(nn.Flatten())
        elif isinstance(layer, Dense):
            modules.append(nn.Linear(c, layer.units, bias=layer.bias))
    return modules


def _torch_walk(modules, input_shape, device="cpu"):
    """Run the modules one by one, returning the model and its per-spec output shapes."""
    x = torch.zeros(1, *input_shape, device=device)
    shapes_out = []
    for module in modules:
        x = module(x)
        if not isinstance(module, nn.AdaptiveAvgPool2d):  # GlobalAvgPool2D = pool + flatten
            shapes_out.append(tuple(x.shape[1:]))
    return nn.Sequential(*modules), shapes_out


def test_lenet5_counts():
    summary = summarize((1, 32, 32), LENET5)
    assert count_params((1, 32, 32), LENET5) == summary.total_params == 61706
    assert [r.output_shape for r in summary] == [
        (6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5), (400,), (120,), (84,), (10,)
    ]
    assert [r.params for r in summary] == [156, 0, 2416, 0, 0, 48120, 10164, 850]
    assert [r.activations for r in summary] == [4704, 1176, 1600, 400, 400, 120, 84, 10]
    assert [r.macs for r in summary] == [117600, 0, 240000, 0, 0, 48000, 10080, 840]
    assert summary.total_macs == 416520
    assert conv_macs(28, 5, 1, 6) == 117600 and dense_macs(400, 120) == 48000
    text = str(summary)
    assert "61,706" in text and "Conv2D 6@5x5" in text and "(16, 5, 5)" in text


def test_lenet5_matches_torch():
    from torch.utils.flop_counter import FlopCounterMode

    summary = summarize((1, 32, 32), LENET5)
    with FlopCounterMode(display=False) as counter:
        model, torch_shapes = _torch_walk(_torch_model((1, 32, 32), LENET5), (1, 32, 32))
    assert torch_shapes == [r.output_shape for r in summary]
    assert _numel(model) == 61706
    # The flop counter counts one multiply-add as 2 FLOPs (biases not counted).
    assert counter.get_total_flops() == 2 * summary.total_macs


def test_lenet5_matches_keras(keras):
    model = keras.Sequential([
        keras.Input((32, 32, 1)),
        keras.layers.Conv2D(6, 5, activation="tanh"),
        keras.layers.AveragePooling2D(2),
        keras.layers.Conv2D(16, 5, activation="tanh"),
        keras.layers.AveragePooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(120, activation="tanh"),
        keras.layers.Dense(84, activation="tanh"),
        keras.layers.Dense(10),
    ])
    summary = summarize((1, 32, 32), LENET5)
    assert model.count_params() == count_params((1, 32, 32), LENET5) == 61706
    for layer, row in zip(model.layers, summary, strict=True):
        channels_last = row.output_shape[1:] + row.output_shape[:1]
        assert tuple(layer.output.shape[1:]) == channels_last
        assert layer.count_params() == row.params


SMALL_CNN = [
    Conv2D(16, 3, padding="same", bias=False), BatchNorm2D(), ReLU(), MaxPool2D(2),
    Conv2D(32, 3, stride=2, padding="same"), BatchNorm2D(), ReLU(),
    Conv2D(32, 3, padding=1, groups=32), ReLU(),
    GlobalAvgPool2D(), Dense(10),
]


def test_small_cnn_matches_keras(keras):
    model = keras.Sequential([
        keras.Input((29, 31, 3)),
        keras.layers.Conv2D(16, 3, padding="same", use_bias=False),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(32, 3, strides=2, padding="same"),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.Conv2D(32, 3, padding="same", groups=32),
        keras.layers.ReLU(),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10),
    ])
    keras_counted = [
        BatchNorm2D(include_running_stats=True) if isinstance(spec, BatchNorm2D) else spec
        for spec in SMALL_CNN
    ]
    summary = summarize((3, 29, 31), keras_counted)
    assert model.count_params() == summary.total_params
    for layer, row in zip(model.layers, summary, strict=True):
        shape = row.output_shape
        channels_last = shape[1:] + shape[:1] if len(shape) == 3 else shape
        assert tuple(layer.output.shape[1:]) == channels_last, row.name
        assert layer.count_params() == row.params, row.name
    # PyTorch's count leaves out the running statistics.
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == count_params((3, 29, 31), SMALL_CNN)


def test_small_cnn_matches_torch():
    from torch.utils.flop_counter import FlopCounterMode

    input_shape = (3, 28, 28)  # even sizes: PyTorch's symmetric padding equals 'same' here
    summary = summarize(input_shape, SMALL_CNN)
    with FlopCounterMode(display=False) as counter:
        model, torch_shapes = _torch_walk(_torch_model(input_shape, SMALL_CNN), input_shape)
    assert torch_shapes == [r.output_shape for r in summary]
    assert _numel(model) == summary.total_params == count_params(input_shape, SMALL_CNN)
    assert counter.get_total_flops() == 2 * summary.total_macs


def test_decoder_with_transposed_convs_matches_torch():
    from torch.utils.flop_counter import FlopCounterMode

    layers = [ConvTranspose2D(8, 4, stride=2, padding=1), ReLU(),
              ConvTranspose2D(3, 3, stride=2, padding=1, output_padding=1, bias=False)]
    summary = summarize((16, 7, 7), layers)
    assert [r.output_shape for r in summary] == [(8, 14, 14), (8, 14, 14), (3, 28, 28)]
    with FlopCounterMode(display=False) as counter:
        model, torch_shapes = _torch_walk(_torch_model((16, 7, 7), layers), (16, 7, 7))
    assert torch_shapes == [r.output_shape for r in summary]
    assert _numel(model) == summary.total_params == (16 * 8 * 16 + 8) + 8 * 3 * 9
    assert counter.get_total_flops() == 2 * summary.total_macs


def test_vgg16():
    from torch.utils.flop_counter import FlopCounterMode

    layers = _vgg16()
    summary = summarize((3, 224, 224), layers)
    assert summary.total_params == count_params((3, 224, 224), layers) == 138_357_544
    assert summary.rows[17].output_shape == (512, 7, 7)
    assert summary.rows[18].output_shape == (25088,)
    # On the meta device PyTorch builds the model and infers shapes without allocating.
    with torch.device("meta"), FlopCounterMode(display=False) as counter:
        model, torch_shapes = _torch_walk(_torch_model((3, 224, 224), layers), (3, 224, 224),
                                          device="meta")
    assert _numel(model) == 138_357_544
    assert torch_shapes == [r.output_shape for r in summary]
    assert counter.get_total_flops() == 2 * summary.total_macs  # about 15.5 GMACs
    assert 15.4e9 < summary.total_macs < 15.6e9


# ---------------------------------------------------------------------------
# bad arguments
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: conv_output_size(4, 5), ValueError,
         r"the dilated kernel \(5\) is larger than the padded input \(4\)"),
        (lambda: conv_output_size(4, 3, dilation=2), ValueError,
         r"the dilated kernel \(5\) is larger than the padded input \(4\)"),
        (lambda: conv_output_size(3, 7, padding=1), ValueError,
         r"the dilated kernel \(7\) is larger than the padded input \(5\)"),
        (lambda: conv_output_size(10, 3, stride=0), ValueError,
         r"stride must be a positive integer \(>= 1\), got 0"),
        (lambda: conv_output_size(10, 0), ValueError, r"kernel_size must be a positive integer"),
        (lambda: conv_output_size(10, 3, dilation=-1), ValueError,
         r"dilation must be a positive integer"),
        (lambda: conv_output_size(10, 3, padding=-1), ValueError,
         r"padding must be non-negative \(>= 0\), got -1"),
        (lambda: conv_output_size(10, 3, padding="half"), ValueError,
         r"padding must be a non-negative int or one of 'valid', 'same', 'full', got 'half'"),
        (lambda: conv_output_size(0, 3), ValueError, r"n must be a positive integer"),
        (lambda: conv_output_size(10, 3, stride=1.5), TypeError, r"stride must be an integer"),
        (lambda: conv_output_size(10, True), TypeError, r"kernel_size must be an integer"),
        (lambda: conv_output_size((5, 5), (3, 3, 3)), ValueError,
         r"kernel_size must be an int or a sequence of 2 ints"),
        (lambda: pool_output_size(10, 3, padding=2), ValueError,
         r"padding \(2\) must be at most half the kernel_size \(3 // 2 = 1\)"),
        (lambda: pool_output_size(2, 3), ValueError,
         r"the dilated kernel \(3\) is larger than the padded input \(2\)"),
        (lambda: pool_output_size(1, 3, stride=2, ceil_mode=True), ValueError,
         r"output would be empty"),
        (lambda: pool_output_size(10, 2, padding="full"), ValueError,
         r"padding must be a non-negative int or one of 'valid', 'same'"),
        (lambda: pool_output_size(10, 2, stride=0), ValueError, r"stride must be a positive"),
        (lambda: conv_transpose_output_size(5, 3, stride=2, output_padding=2), ValueError,
         r"output_padding \(2\) must be smaller than either the stride \(2\) "
         r"or the dilation \(1\)"),
        (lambda: conv_transpose_output_size(5, 3, 2, "same", output_padding=2), ValueError,
         r"output_padding \(2\) must be smaller than the stride \(2\)"),
        (lambda: conv_transpose_output_size(1, 1, padding=1), ValueError,
         r"output would be empty .* padding \(1\) is too large"),
        (lambda: conv_transpose_output_size(5, 3, output_padding=-1), ValueError,
         r"output_padding must be non-negative"),
        (lambda: same_padding(5, 3, stride=0), ValueError, r"stride must be a positive"),
        (lambda: full_padding(0), ValueError, r"kernel_size must be a positive"),
        (lambda: conv_params(3, 6, 4, groups=4), ValueError,
         r"groups \(4\) must divide both in_channels \(6\) and out_channels \(4\)"),
        (lambda: conv_params(3, 0, 4), ValueError, r"in_channels must be a positive"),
        (lambda: conv_params((), 1, 4), ValueError, r"kernel_size must be an int or a non-empty"),
        (lambda: dense_params(10, 0), ValueError, r"out_features must be a positive"),
        (lambda: batchnorm_params(-2), ValueError, r"channels must be a positive"),
        (lambda: receptive_field([(3, 1), (3,)]), TypeError, r"layers\[1\] must be a"),
        (lambda: receptive_field([(3, 0)]), ValueError, r"layers\[0\] stride must be a positive"),
        (lambda: receptive_field([Conv2D(1, (3, 5))]), ValueError,
         r"layers\[0\].kernel_size must be the same in every dimension"),
        (lambda: receptive_field([Dense(3)]), TypeError, r"layers\[0\] must be a"),
        (lambda: summarize((32, 32), LENET5), ValueError,
         r"input_shape must be \(C, H, W\) \(channels first, no batch\) or \(features,\)"),
        (lambda: summarize([1, 0, 3], LENET5), ValueError, r"input_shape must be a positive"),
        (lambda: summarize("1x32x32", LENET5), TypeError, r"input_shape must be a tuple"),
        (lambda: summarize((1, 32, 32), [Conv2D(6, 5), Dense(10)]), ValueError,
         r"layers\[1\] \(Dense 10\) needs a flat \(features,\) input.*add Flatten\(\)"),
        (lambda: summarize((10,), [Conv2D(6, 5)]), ValueError,
         r"layers\[0\] \(Conv2D 6@5x5\) needs a \(C, H, W\) input"),
        (lambda: summarize((1, 8, 8), [Conv2D(6, 9)]), ValueError,
         r"the dilated kernel \(9\) is larger than the padded input \(8\)"),
        (lambda: summarize((1, 8, 8), [Conv2D(0, 3)]), ValueError,
         r"layers\[0\].filters must be a positive"),
        (lambda: summarize((1, 8, 8), [Conv2D(4, 3), "relu"]), TypeError,
         r"layers\[1\] must be a layer spec"),
    ],
)
def test_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_specs_are_frozen_and_hashable():
    layer = Conv2D(8, 3)
    with pytest.raises(AttributeError):
        layer.filters = 4
    assert len({Conv2D(8, 3), Conv2D(8, 3), MaxPool2D(2), AvgPool2D(2)}) == 3
    assert not isinstance(AvgPool2D(2), MaxPool2D)
