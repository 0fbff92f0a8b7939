"""Convolution arithmetic: output sizes, padding, receptive fields, parameter counts.

Pure integer maths (standard library and NumPy only, no framework import), so a
notebook can check a network's shapes before building it. Every size formula
follows Dumoulin & Visin, *A guide to convolution arithmetic for deep learning*
(2016), with PyTorch's and Keras' conventions where they differ; the test suite
checks each function against the real ``torch.nn`` and ``keras.layers`` layers.

Notation (one spatial dimension): input size ``i`` (called ``n`` here), kernel
size ``k``, stride ``s``, padding ``p`` (on each side), dilation ``d``.

* convolution:  ``o = floor((i + 2p - d(k-1) - 1) / s) + 1``
* transposed:   ``o = s(i-1) - 2p + d(k-1) + output_padding + 1``
* ``d(k-1) + 1`` is the *dilated* (effective) kernel size.

The size functions take ``n`` as an int (one dimension) or as a tuple (one entry
per spatial dimension, e.g. ``(H, W)``); the other arguments are then ints (same
for every dimension) or tuples of the same length, and the result is a tuple.

The second half describes whole models as lists of small frozen layer specs
(:class:`Conv2D`, :class:`MaxPool2D`, :class:`Dense` ...) and walks them with
:func:`summarize` / :func:`count_params`:

>>> s = summarize((1, 32, 32), [Conv2D(6, 5), AvgPool2D(2), Conv2D(16, 5), AvgPool2D(2),
...                                Flatten(), Dense(120), Dense(84), Dense(10)])
>>> s.total_params
61706
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ._validate import as_tuple, non_negative_int, positive_int

__all__ = [
    # sizes and padding
    "conv_output_size",
    "pool_output_size",
    "conv_transpose_output_size",
    "same_padding",
    "full_padding",
    # receptive field
    "receptive_field",
    "receptive_field_table",
    "RFRow",
    # parameter and operation counts
    "conv_params",
    "dense_params",
    "batchnorm_params",
    "conv_macs",
    "dense_macs",
    # layer specs and model summaries
    "Conv2D",
    "ConvTranspose2D",
    "MaxPool2D",
    "AvgPool2D",
    "GlobalAvgPool2D",
    "BatchNorm2D",
    "ReLU",
    "Flatten",
    "Dense",
    "LayerRow",
    "Summary",
    "summarize",
    "count_params",
]

_PADDING_WORDS = ("valid", "same", "full")


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _check_padding_word(padding, allowed, name="padding"):
    if isinstance(padding, str):
        word = padding.lower()
        if word not in allowed:
            choices = ", ".join(repr(a) for a in allowed)
            raise ValueError(
                f"{name} must be a non-negative int or one of {choices}, got {padding!r}"
            )
        return word
    return None


def _per_dim(n, name_values):
    """Split a call with tuple ``n`` into one call per dimension.

    Returns ``(ns, per_dim_args)``: the checked sizes and one argument tuple per
    dimension, or ``(None, None)`` for a scalar ``n``.
    ``name_values`` is a list of ``(name, value, check)``; ``check`` None means
    the value is passed through unchanged (strings, bools, None).
    """
    if isinstance(n, (tuple, list)):
        dims = len(n)
        if dims == 0:
            raise ValueError("n must be a positive int or a non-empty tuple of positive ints")
        ns = tuple(positive_int(v, "n") for v in n)
        columns = []
        for name, value, check in name_values:
            if check is None or isinstance(value, str) or value is None:
                columns.append((value,) * dims)
            else:
                columns.append(as_tuple(value, dims, name, check))
        return ns, list(zip(*columns, strict=True)) if columns else [()] * dims
    return None, None


def _too_large(kernel_eff: int, padded: int) -> ValueError:
    return ValueError(
        f"the dilated kernel ({kernel_eff}) is larger than the padded input ({padded}): "
        f"need dilation*(kernel_size-1)+1 <= n + 2*padding"
    )


# ---------------------------------------------------------------------------
# output sizes
# ---------------------------------------------------------------------------


def conv_output_size(n, kernel_size, stride=1, padding=0, dilation=1):
    """Output size of a convolution along one (or each) spatial dimension.

    ``o = floor((n + 2p - d(k-1) - 1) / s) + 1``

    ``padding`` is a non-negative int (the same on both sides, as in PyTorch's
    ``nn.Conv2d``) or one of the words

    * ``'valid'``: no padding (``p = 0``);
    * ``'same'``: TensorFlow/Keras semantics, ``o = ceil(n / s)`` (the padding,
      possibly one pixel larger on the bottom/right, comes from :func:`same_padding`;
      for ``s = 1`` this is also PyTorch's ``padding='same'``);
    * ``'full'``: ``p = d(k-1)`` on each side, every partial overlap counts
      (``o = n + d(k-1)`` for ``s = 1``).

    >>> conv_output_size(32, 5)                       # LeNet's first layer
    28
    >>> conv_output_size(224, 7, stride=2, padding=3)  # ResNet stem
    112
    >>> conv_output_size((28, 28), 3, padding='same')
    (28, 28)

    Raises ``ValueError`` for a non-positive ``n``/``kernel_size``/``stride``/``dilation``,
    a negative ``padding``, or a dilated kernel larger than the padded input.
    """
    ns, args = _per_dim(
        n,
        [
            ("kernel_size", kernel_size, positive_int),
            ("stride", stride, positive_int),
            ("padding", padding, non_negative_int),
            ("dilation", dilation, positive_int),
        ],
    )
    if ns is not None:
        return tuple(conv_output_size(ni, *a) for ni, a in zip(ns, args, strict=True))

    n = positive_int(n, "n")
    k = positive_int(kernel_size, "kernel_size")
    s = positive_int(stride, "stride")
    d = positive_int(dilation, "dilation")
    word = _check_padding_word(padding, _PADDING_WORDS)
    k_eff = d * (k - 1) + 1
    if word == "same":
        return -(-n // s)  # ceil(n / s); TensorFlow pads as much as it needs
    if word == "valid":
        p = 0
    elif word == "full":
        p = d * (k - 1)
    else:
        p = non_negative_int(padding, "padding")
    if k_eff > n + 2 * p:
        raise _too_large(k_eff, n + 2 * p)
    return (n + 2 * p - k_eff) // s + 1


def pool_output_size(n, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Output size of a max/average pooling layer along one (or each) dimension.

    ``stride`` defaults to ``kernel_size`` (non-overlapping windows), as in both
    frameworks. With an int ``padding`` (PyTorch's ``nn.MaxPool2d``/``nn.AvgPool2d``):

    ``o = floor((n + 2p - d(k-1) - 1) / s) + 1``, or with ``ceil_mode=True``
    ``o = ceil((n + 2p - d(k-1) - 1) / s) + 1``, minus one if that last window
    would start beyond the input and the left padding (``(o-1)s >= n + p``):
    PyTorch's rule that every window must start inside the input or the left padding.
    In ceil mode the last window may hang over the end, so the kernel may even be
    larger than the input (``pool_output_size(2, 3, 2, ceil_mode=True) == 1``).

    PyTorch also requires ``padding <= kernel_size // 2``; this function enforces it.

    ``padding='valid'`` or ``'same'`` follow Keras' ``MaxPooling2D``: ``'same'`` gives
    ``ceil(n / s)``, ``'valid'`` is ``p = 0``.

    >>> pool_output_size(28, 2)                     # 2x2 max pooling halves the size
    14
    >>> pool_output_size(7, 2)                      # floor: the last column is dropped
    3
    >>> pool_output_size(7, 2, ceil_mode=True)      # ceil: it gets its own window
    4
    >>> pool_output_size(112, 3, stride=2, padding=1)  # ResNet's stem pooling
    56
    """
    ns, args = _per_dim(
        n,
        [
            ("kernel_size", kernel_size, positive_int),
            ("stride", kernel_size if stride is None else stride, positive_int),
            ("padding", padding, non_negative_int),
            ("dilation", dilation, positive_int),
            ("ceil_mode", ceil_mode, None),
        ],
    )
    if ns is not None:
        return tuple(pool_output_size(ni, *a) for ni, a in zip(ns, args, strict=True))

    n = positive_int(n, "n")
    k = positive_int(kernel_size, "kernel_size")
    s = k if stride is None else positive_int(stride, "stride")
    d = positive_int(dilation, "dilation")
    word = _check_padding_word(padding, ("valid", "same"))
    k_eff = d * (k - 1) + 1
    if word == "same":
        return -(-n // s)
    p = 0 if word == "valid" else non_negative_int(padding, "padding")
    if p > k // 2:
        raise ValueError(
            f"padding ({p}) must be at most half the kernel_size ({k} // 2 = {k // 2}), "
            "as PyTorch requires for pooling"
        )
    numerator = n + 2 * p - k_eff
    if not ceil_mode:
        if numerator < 0:
            raise _too_large(k_eff, n + 2 * p)
        return numerator // s + 1
    o = -(-numerator // s) + 1
    if (o - 1) * s >= n + p:
        o -= 1
    if o < 1:
        raise ValueError(
            f"the output would be empty ({o}): the dilated kernel ({k_eff}) is too large for "
            f"the padded input ({n + 2 * p}) even with ceil_mode=True"
        )
    return o


def conv_transpose_output_size(
    n, kernel_size, stride=1, padding=0, output_padding=None, dilation=1
):
    """Output size of a transposed convolution along one (or each) dimension.

    With an int ``padding`` (PyTorch's ``nn.ConvTranspose2d``):

    ``o = s(n-1) - 2p + d(k-1) + output_padding + 1``

    ``output_padding`` (default 0) adds rows on one side to pick among the input
    sizes a strided convolution maps to the same output; PyTorch requires it to
    be smaller than the stride or the dilation.

    With ``padding='valid'`` or ``'same'`` (Keras' ``Conv2DTranspose``) and
    ``output_padding=None``: ``'same'`` gives ``o = n*s`` and ``'valid'`` gives
    ``o = n*s + max(d(k-1)+1 - s, 0)``; with an int ``output_padding``,
    ``o = s(n-1) + d(k-1) + 1 - 2*pad + output_padding`` where ``pad`` is
    ``(d(k-1)+1) // 2`` for ``'same'`` and 0 for ``'valid'`` (Keras then requires
    ``output_padding < stride``).

    >>> conv_transpose_output_size(14, 4, stride=2, padding=1)   # DCGAN-style 2x upsampling
    28
    >>> conv_transpose_output_size(7, 3, stride=2, padding=1, output_padding=1)
    14
    >>> conv_transpose_output_size(7, 3, stride=2, padding='same')
    14
    """
    ns, args = _per_dim(
        n,
        [
            ("kernel_size", kernel_size, positive_int),
            ("stride", stride, positive_int),
            ("padding", padding, non_negative_int),
            ("output_padding", output_padding, non_negative_int),
            ("dilation", dilation, positive_int),
        ],
    )
    if ns is not None:
        return tuple(
            conv_transpose_output_size(ni, *a) for ni, a in zip(ns, args, strict=True)
        )

    n = positive_int(n, "n")
    k = positive_int(kernel_size, "kernel_size")
    s = positive_int(stride, "stride")
    d = positive_int(dilation, "dilation")
    word = _check_padding_word(padding, ("valid", "same"))
    k_eff = d * (k - 1) + 1
    if word is not None:
        if output_padding is None:
            return n * s if word == "same" else n * s + max(k_eff - s, 0)
        op = non_negative_int(output_padding, "output_padding")
        if op >= s:
            raise ValueError(
                f"output_padding ({op}) must be smaller than the stride ({s}), as Keras requires"
            )
        pad = k_eff // 2 if word == "same" else 0
        return (n - 1) * s + k_eff - 2 * pad + op

    p = non_negative_int(padding, "padding")
    op = 0 if output_padding is None else non_negative_int(output_padding, "output_padding")
    if op >= s and op >= d:
        raise ValueError(
            f"output_padding ({op}) must be smaller than either the stride ({s}) or the "
            f"dilation ({d}), as PyTorch requires"
        )
    o = s * (n - 1) - 2 * p + d * (k - 1) + op + 1
    if o < 1:
        raise ValueError(
            f"the output would be empty ({o}): padding ({p}) is too large; need "
            f"2*padding <= stride*(n-1) + dilation*(kernel_size-1) + output_padding"
        )
    return o


def same_padding(n, kernel_size, stride=1, dilation=1):
    """Padding ``(before, after)`` that TensorFlow/Keras add for ``padding='same'``.

    ``total = max((ceil(n/s) - 1)*s + d(k-1) + 1 - n, 0)``, ``before = total // 2``,
    ``after = total - before``: when the total is odd the extra pixel goes at the
    end (bottom/right). The output size is then ``ceil(n / s)``.

    >>> same_padding(28, 3)
    (1, 1)
    >>> same_padding(224, 7, stride=2)   # odd total: one more on the right
    (2, 3)
    >>> same_padding(6, 2)               # even kernel: 0 left, 1 right
    (0, 1)
    """
    if isinstance(n, (tuple, list)):
        ns, args = _per_dim(
            n,
            [
                ("kernel_size", kernel_size, positive_int),
                ("stride", stride, positive_int),
                ("dilation", dilation, positive_int),
            ],
        )
        return tuple(same_padding(ni, *a) for ni, a in zip(ns, args, strict=True))
    n = positive_int(n, "n")
    k = positive_int(kernel_size, "kernel_size")
    s = positive_int(stride, "stride")
    d = positive_int(dilation, "dilation")
    out = -(-n // s)
    total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
    return total // 2, total - total // 2


def full_padding(kernel_size, dilation=1):
    """Padding on each side of a *full* convolution: ``p = d(k-1)``.

    Every position where the kernel overlaps the input by at least one pixel
    produces an output, so for stride 1 the output is ``n + d(k-1)``.

    >>> full_padding(3)
    2
    >>> full_padding(3, dilation=2)
    4
    """
    k = positive_int(kernel_size, "kernel_size")
    d = positive_int(dilation, "dilation")
    return d * (k - 1)


# ---------------------------------------------------------------------------
# receptive field
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RFRow:
    """One layer of :func:`receptive_field_table`.

    ``rf``: receptive field (input pixels along one dimension) of one output
    pixel of this layer; ``jump``: distance in input pixels between two
    neighbouring outputs of this layer (the product of the strides so far).
    """

    kernel_size: int
    stride: int
    dilation: int
    rf: int
    jump: int


def _rf_layer(layer, index):
    """Return ``(kernel_size, stride, dilation)`` of a receptive-field layer."""
    if isinstance(layer, (Conv2D, _Pool2D)):
        k = _square(layer.kernel_size, f"layers[{index}].kernel_size")
        stride = layer.stride
        if stride is None:
            stride = k
        s = _square(stride, f"layers[{index}].stride")
        d = _square(getattr(layer, "dilation", 1), f"layers[{index}].dilation")
        return k, s, d
    if isinstance(layer, (BatchNorm2D, ReLU)):
        return 1, 1, 1
    if isinstance(layer, (tuple, list)) and len(layer) in (2, 3):
        k = positive_int(layer[0], f"layers[{index}] kernel_size")
        s = positive_int(layer[1], f"layers[{index}] stride")
        d = positive_int(layer[2], f"layers[{index}] dilation") if len(layer) == 3 else 1
        return k, s, d
    raise TypeError(
        f"layers[{index}] must be a (kernel_size, stride) or (kernel_size, stride, dilation) "
        f"tuple or a Conv2D/MaxPool2D/AvgPool2D spec, got {layer!r}"
    )


def _square(value, name):
    if isinstance(value, (tuple, list)):
        values = {positive_int(v, name) for v in value}
        if len(values) != 1:
            raise ValueError(
                f"{name} must be the same in every dimension for receptive_field, got {value!r}"
            )
        return values.pop()
    return positive_int(value, name)


def receptive_field_table(layers):
    """Per-layer receptive field and jump of a stack of convolutions/poolings.

    ``layers`` is a list of ``(kernel_size, stride)`` or
    ``(kernel_size, stride, dilation)`` tuples (or :class:`Conv2D`/:class:`MaxPool2D`/
    :class:`AvgPool2D` specs with square kernels; :class:`BatchNorm2D` and
    :class:`ReLU` are skipped as 1x1). Starting from ``rf = 1, jump = 1``:

    ``rf_l = rf_{l-1} + d_l (k_l - 1) jump_{l-1}``,   ``jump_l = jump_{l-1} s_l``

    Padding does not change the size of the receptive field, only where it sits.

    >>> [(r.rf, r.jump) for r in receptive_field_table([(3, 1), (3, 1), (2, 2), (3, 1)])]
    [(3, 1), (5, 1), (6, 2), (10, 2)]
    """
    if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
        raise TypeError(f"layers must be a list of layers, got {type(layers).__name__}")
    rows = []
    rf, jump = 1, 1
    for index, layer in enumerate(layers):
        k, s, d = _rf_layer(layer, index)
        rf = rf + d * (k - 1) * jump
        jump = jump * s
        rows.append(RFRow(k, s, d, rf, jump))
    return rows


def receptive_field(layers) -> int:
    """Receptive field (in input pixels, along one dimension) of the last layer's outputs.

    See :func:`receptive_field_table` for the recurrence and the accepted layers.

    >>> receptive_field([(3, 1), (3, 1)])          # two 3x3 convs see 5x5
    5
    >>> receptive_field([(3, 1)] * 3)              # three see 7x7 (VGG's argument)
    7
    >>> receptive_field([(3, 1, 1), (3, 1, 2), (3, 1, 4)])   # dilated stack
    15
    """
    rows = receptive_field_table(layers)
    return rows[-1].rf if rows else 1


# ---------------------------------------------------------------------------
# parameter and operation counts
# ---------------------------------------------------------------------------


def _kernel_volume(kernel_size, name="kernel_size"):
    if isinstance(kernel_size, (tuple, list)):
        if len(kernel_size) == 0:
            raise ValueError(f"{name} must be an int or a non-empty tuple of ints")
        return math.prod(positive_int(v, name) for v in kernel_size)
    k = positive_int(kernel_size, name)
    return k * k  # an int means a square 2D kernel


def conv_params(kernel_size, in_channels, out_channels, bias=True, groups=1) -> int:
    """Trainable parameters of a convolution layer.

    ``(k_h * k_w * c_in / groups + 1) * c_out`` (without the ``+ 1`` if ``bias=False``).

    ``kernel_size`` is an int (square 2D kernel) or a tuple (``(k,)`` for 1D,
    ``(k_h, k_w)``, ``(k_d, k_h, k_w)`` for 3D). ``groups`` must divide both
    channel counts (``groups = c_in`` is a depthwise convolution).
    Also right for a transposed convolution with the same arguments.

    >>> conv_params(3, 3, 10)     # ten 3x3x3 filters: 10 * (27 + 1)
    280
    >>> conv_params(5, 3, 6)      # six 5x5x3 filters
    456
    >>> conv_params(3, 32, 32, groups=32, bias=False)   # depthwise 3x3
    288
    """
    volume = _kernel_volume(kernel_size)
    c_in = positive_int(in_channels, "in_channels")
    c_out = positive_int(out_channels, "out_channels")
    g = positive_int(groups, "groups")
    if c_in % g or c_out % g:
        raise ValueError(
            f"groups ({g}) must divide both in_channels ({c_in}) and out_channels ({c_out})"
        )
    return volume * (c_in // g) * c_out + (c_out if bias else 0)


def dense_params(in_features, out_features, bias=True) -> int:
    """Trainable parameters of a fully connected layer: ``(in + 1) * out``.

    >>> dense_params(400, 120)    # LeNet-5's first dense layer
    48120
    """
    n_in = positive_int(in_features, "in_features")
    n_out = positive_int(out_features, "out_features")
    return (n_in + (1 if bias else 0)) * n_out


def batchnorm_params(channels, include_running_stats=False) -> int:
    """Parameters of a batch-normalisation layer over ``channels`` channels.

    ``2C`` trainable values (scale gamma and shift beta per channel). The running
    mean and variance add ``2C`` more *non-trainable* values:

    * PyTorch keeps them as buffers, so ``sum(p.numel() for p in m.parameters())``
      gives ``2C`` (``include_running_stats=False``, the default);
    * Keras keeps them as non-trainable weights, so ``model.count_params()``
      gives ``4C`` (``include_running_stats=True``).

    >>> batchnorm_params(64), batchnorm_params(64, include_running_stats=True)
    (128, 256)
    """
    c = positive_int(channels, "channels")
    return 4 * c if include_running_stats else 2 * c


def conv_macs(output_size, kernel_size, in_channels, out_channels, groups=1) -> int:
    """Multiply-accumulate operations of a convolution (bias additions not counted).

    ``MACs = H_out * W_out * c_out * (k_h * k_w * c_in / groups)``: each output value
    is one dot product of the kernel with a patch. ``output_size`` is an int
    (square) or a tuple of spatial sizes; ``kernel_size`` as in :func:`conv_params`.

    >>> conv_macs(28, 5, 1, 6)    # LeNet-5's first layer
    117600
    """
    if isinstance(output_size, (tuple, list)):
        positions = math.prod(positive_int(v, "output_size") for v in output_size)
    else:
        positions = positive_int(output_size, "output_size") ** 2
    weights = conv_params(kernel_size, in_channels, out_channels, bias=False, groups=groups)
    return positions * weights


def dense_macs(in_features, out_features) -> int:
    """Multiply-accumulate operations of a fully connected layer: ``in * out``.

    >>> dense_macs(400, 120)
    48000
    """
    return dense_params(in_features, out_features, bias=False)


# ---------------------------------------------------------------------------
# layer specs
# ---------------------------------------------------------------------------


def _pair_text(value):
    if isinstance(value, (tuple, list)):
        return "x".join(str(v) for v in value)
    return f"{value}x{value}"


@dataclass(frozen=True)
class Conv2D:
    """A 2D convolution: ``filters`` output channels, ``kernel_size`` int or (k_h, k_w).

    ``padding``: int or (p_h, p_w) (PyTorch style, both sides), or ``'valid'``,
    ``'same'`` (Keras: output ``ceil(n/stride)``), ``'full'``.
    Parameters: :func:`conv_params`; MACs: :func:`conv_macs`.
    """

    filters: int
    kernel_size: int | tuple[int, int]
    stride: int | tuple[int, int] = 1
    padding: int | tuple[int, int] | str = 0
    dilation: int | tuple[int, int] = 1
    bias: bool = True
    groups: int = 1

    def describe(self) -> str:
        text = f"Conv2D {self.filters}@{_pair_text(self.kernel_size)}"
        if self.stride != 1:
            text += f" s{self.stride}"
        if self.padding not in (0, "valid"):
            text += f" p{self.padding}" if not isinstance(self.padding, str) else f" {self.padding}"
        if self.dilation != 1:
            text += f" d{self.dilation}"
        return text


@dataclass(frozen=True)
class ConvTranspose2D:
    """A 2D transposed convolution (see :func:`conv_transpose_output_size`)."""

    filters: int
    kernel_size: int | tuple[int, int]
    stride: int | tuple[int, int] = 1
    padding: int | tuple[int, int] | str = 0
    output_padding: int | tuple[int, int] | None = None
    dilation: int | tuple[int, int] = 1
    bias: bool = True

    def describe(self) -> str:
        return f"ConvTranspose2D {self.filters}@{_pair_text(self.kernel_size)} s{self.stride}"


@dataclass(frozen=True)
class _Pool2D:
    pool_size: int | tuple[int, int]
    stride: int | tuple[int, int] | None = None
    padding: int | tuple[int, int] | str = 0
    ceil_mode: bool = False

    @property
    def kernel_size(self):
        return self.pool_size

    def describe(self) -> str:
        text = f"{type(self).__name__} {_pair_text(self.pool_size)}"
        if self.stride is not None and self.stride != self.pool_size:
            text += f" s{self.stride}"
        return text


@dataclass(frozen=True)
class MaxPool2D(_Pool2D):
    """Max pooling over ``pool_size`` windows; ``stride`` defaults to ``pool_size``.

    ``padding``: int (PyTorch, at most ``pool_size // 2``) or ``'valid'``/``'same'``
    (Keras); ``ceil_mode`` as in PyTorch. Sizes: :func:`pool_output_size`. No parameters.
    """


@dataclass(frozen=True)
class AvgPool2D(_Pool2D):
    """Average pooling; same arguments and sizes as :class:`MaxPool2D`. No parameters."""


@dataclass(frozen=True)
class GlobalAvgPool2D:
    """Average over all of H and W: ``(C, H, W) -> (C,)``."""

    def describe(self) -> str:
        return "GlobalAvgPool2D"


@dataclass(frozen=True)
class BatchNorm2D:
    """Batch normalisation over channels: ``2C`` parameters, ``4C`` if
    ``include_running_stats`` (Keras' count). See :func:`batchnorm_params`."""

    include_running_stats: bool = False

    def describe(self) -> str:
        return "BatchNorm2D"


@dataclass(frozen=True)
class ReLU:
    """An element-wise activation: no parameters, shape unchanged."""

    def describe(self) -> str:
        return "ReLU"


@dataclass(frozen=True)
class Flatten:
    """``(C, H, W) -> (C*H*W,)``."""

    def describe(self) -> str:
        return "Flatten"


@dataclass(frozen=True)
class Dense:
    """A fully connected layer on a flat input: ``(in,) -> (units,)``."""

    units: int
    bias: bool = True

    def describe(self) -> str:
        return f"Dense {self.units}"


@dataclass(frozen=True)
class LayerRow:
    """One row of a :class:`Summary`.

    ``activations``: number of values the layer outputs (per example);
    ``macs``: multiply-accumulates per example (convolutions and dense layers only,
    0 for the rest).
    """

    index: int
    name: str
    layer: object
    output_shape: tuple[int, ...]
    params: int
    activations: int
    macs: int


class _RowTable:
    """Row-container behaviour shared by the summary tables: :class:`Summary` here and
    ``utils.models.ModelSummary``.

    A subclass is a frozen dataclass with the fields ``input_shape`` and ``rows`` (a
    tuple of rows that have an ``output_shape``) and a :meth:`table` method;
    iteration, ``len()`` and indexing go through ``rows``, and ``print()`` shows the table.
    """

    __slots__ = ()

    @property
    def output_shape(self):
        return self.rows[-1].output_shape if self.rows else self.input_shape

    def __iter__(self):
        return iter(self.rows)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, index):
        return self.rows[index]

    def table(self) -> str:
        raise NotImplementedError

    def __str__(self):
        return self.table()


def _text_table(header, lines, total, align) -> str:
    """A plain-text table: the header, a rule, the ``lines``, a rule, the ``total`` row.

    Every row is a sequence of strings as long as ``header``; ``align`` holds one
    format alignment (``"<"`` or ``">"``) per column. Trailing spaces are dropped.
    """
    rows = [header, *lines, total]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]

    def fmt(row):
        cells = zip(row, align, widths, strict=True)
        return "  ".join(f"{c:{a}{w}}" for c, a, w in cells).rstrip()

    rule = "-" * len(fmt(["-" * w for w in widths]))
    return "\n".join([fmt(header), rule, *map(fmt, lines), rule, fmt(total)])


@dataclass(frozen=True)
class Summary(_RowTable):
    """What :func:`summarize` returns: rows plus totals; ``print()`` shows a table."""

    input_shape: tuple[int, ...]
    rows: tuple[LayerRow, ...]
    total_params: int = field(init=False)
    total_activations: int = field(init=False)
    total_macs: int = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "total_params", sum(r.params for r in self.rows))
        object.__setattr__(self, "total_activations", sum(r.activations for r in self.rows))
        object.__setattr__(self, "total_macs", sum(r.macs for r in self.rows))

    def table(self) -> str:
        """The summary as a text table (one line per layer, then totals)."""
        header = ("#", "layer", "output shape", "params", "activations", "MACs")
        lines = [("", "input", str(self.input_shape), "", "", "")]
        for r in self.rows:
            lines.append((str(r.index), r.name, str(r.output_shape), f"{r.params:,}", f"{r.activations:,}",
                          f"{r.macs:,}"))
        total = ("", "total", "", f"{self.total_params:,}", f"{self.total_activations:,}", f"{self.total_macs:,}")
        return _text_table(header, lines, total, "<<<>>>")


# ---------------------------------------------------------------------------
# model walk
# ---------------------------------------------------------------------------


def _need_image(shape, layer, index):
    if len(shape) != 3:
        raise ValueError(
            f"layers[{index}] ({layer.describe()}) needs a (C, H, W) input, got shape {shape}"
        )
    return shape


def _pad_arg(padding):
    # Strings pass through; ints and pairs are checked by the size functions.
    return tuple(padding) if isinstance(padding, list) else padding


def _step(shape, layer, index):
    """Return ``(output_shape, params, macs)`` for one layer."""
    if isinstance(layer, Conv2D):
        c, h, w = _need_image(shape, layer, index)
        filters = positive_int(layer.filters, f"layers[{index}].filters")
        kernel = as_tuple(layer.kernel_size, 2, f"layers[{index}].kernel_size")
        out_hw = conv_output_size(
            (h, w), kernel, layer.stride, _pad_arg(layer.padding), layer.dilation
        )
        params = conv_params(kernel, c, filters, bias=layer.bias, groups=layer.groups)
        macs = conv_macs(out_hw, kernel, c, filters, groups=layer.groups)
        return (filters, *out_hw), params, macs
    if isinstance(layer, ConvTranspose2D):
        c, h, w = _need_image(shape, layer, index)
        filters = positive_int(layer.filters, f"layers[{index}].filters")
        kernel = as_tuple(layer.kernel_size, 2, f"layers[{index}].kernel_size")
        out_hw = conv_transpose_output_size(
            (h, w), kernel, layer.stride, _pad_arg(layer.padding),
            layer.output_padding, layer.dilation,
        )
        params = conv_params(kernel, c, filters, bias=layer.bias)
        macs = conv_macs((h, w), kernel, c, filters)  # each input pixel scatters a kernel
        return (filters, *out_hw), params, macs
    if isinstance(layer, _Pool2D):
        c, h, w = _need_image(shape, layer, index)
        out_hw = pool_output_size(
            (h, w), layer.pool_size, layer.stride, _pad_arg(layer.padding),
            1, layer.ceil_mode,
        )
        return (c, *out_hw), 0, 0
    if isinstance(layer, GlobalAvgPool2D):
        c, _, _ = _need_image(shape, layer, index)
        return (c,), 0, 0
    if isinstance(layer, BatchNorm2D):
        c, _, _ = _need_image(shape, layer, index)
        return shape, batchnorm_params(c, layer.include_running_stats), 0
    if isinstance(layer, ReLU):
        return shape, 0, 0
    if isinstance(layer, Flatten):
        return (math.prod(shape),), 0, 0
    if isinstance(layer, Dense):
        if len(shape) != 1:
            raise ValueError(
                f"layers[{index}] ({layer.describe()}) needs a flat (features,) input, got shape "
                f"{shape}: add Flatten() or GlobalAvgPool2D() before it"
            )
        units = positive_int(layer.units, f"layers[{index}].units")
        return (units,), dense_params(shape[0], units, bias=layer.bias), dense_macs(shape[0], units)
    raise TypeError(
        f"layers[{index}] must be a layer spec from utils.shapes (Conv2D, MaxPool2D, Dense ...), "
        f"got {layer!r}"
    )


def summarize(input_shape, layers) -> Summary:
    """Walk a list of layer specs and return one row per layer plus totals.

    ``input_shape`` is ``(C, H, W)`` (channels first, no batch dimension) or
    ``(features,)`` for a stack of :class:`Dense` layers. Each row holds the layer's
    name, output shape (``(C, H, W)`` or ``(features,)``), parameters,
    activations (values output per example) and MACs (multiply-accumulates per
    example, convolutions and dense layers only). ``print(summary)`` shows a table.

    >>> s = summarize((3, 32, 32), [Conv2D(10, 3, padding='same'), MaxPool2D(2),
    ...                              Flatten(), Dense(10)])
    >>> [r.output_shape for r in s]
    [(10, 32, 32), (10, 16, 16), (2560,), (10,)]
    >>> s.total_params, s.rows[0].macs
    (25890, 276480)
    """
    if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, (tuple, list)):
        raise TypeError(
            f"input_shape must be a tuple (C, H, W) or (features,), got {input_shape!r}"
        )
    if len(input_shape) not in (1, 3):
        raise ValueError(
            f"input_shape must be (C, H, W) (channels first, no batch) or (features,), "
            f"got {tuple(input_shape)}"
        )
    shape = tuple(positive_int(v, "input_shape") for v in input_shape)
    rows = []
    for index, layer in enumerate(layers):
        shape, params, macs = _step(shape, layer, index)
        rows.append(
            LayerRow(
                index=index,
                name=layer.describe(),
                layer=layer,
                output_shape=shape,
                params=params,
                activations=math.prod(shape),
                macs=macs,
            )
        )
    return Summary(tuple(int(v) for v in input_shape), tuple(rows))


def count_params(input_shape, layers) -> int:
    """Total parameters of a model given as a list of layer specs (see :func:`summarize`).

    >>> vgg16 = []
    >>> for filters, convs in [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]:
    ...     vgg16 += [Conv2D(filters, 3, padding='same')] * convs + [MaxPool2D(2)]
    >>> vgg16 += [Flatten(), Dense(4096), Dense(4096), Dense(1000)]
    >>> count_params((3, 224, 224), vgg16)
    138357544
    """
    return summarize(input_shape, layers).total_params
