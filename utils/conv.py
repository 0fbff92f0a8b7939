"""Reference NumPy convolution and pooling, forward and backward.

Everything here uses PyTorch's channels-first layout:

======  ============================  =============================
        input ``x``                   weights ``w``
======  ============================  =============================
1D      ``(N, C, W)``                 ``(F, C, K)``
2D      ``(N, C, H, W)``              ``(F, C, HH, WW)``
3D      ``(N, C, D, H, W)``           ``(F, C, KD, KH, KW)``
======  ============================  =============================

``N`` is the batch size, ``C`` the number of input channels and ``F`` the
number of filters (output channels). The bias ``b`` has shape ``(F,)`` or is
``None``.

``stride``, ``padding`` and ``dilation`` are an int (same value on every
spatial axis) or a tuple with one int per spatial axis. Padding is symmetric
zero padding. Along each spatial axis the output size is::

    o = floor((i + 2p - d(k-1) - 1) / s) + 1

with ``i`` the input size, ``k`` the kernel size, ``p`` the padding, ``s``
the stride and ``d`` the dilation (``d(k-1) + 1`` is the *dilated* kernel
size, the span the kernel covers).

Like every CNN layer (``torch.nn.Conv2d``, ``tf.nn.conv2d``) the ``conv*``
functions compute a **cross-correlation**: the kernel is not flipped.
``convolve2d`` and ``convolve2d_single`` compute the true convolution of
signal processing (kernel flipped in both spatial axes).

Two implementations of each convolution:

- ``conv1d_naive``, ``conv2d_naive``, ``conv3d_naive``: plain loops over
  every index, to be read. Slow.
- ``conv1d``, ``conv2d``, ``conv3d``: vectorized with *im2col*: the input
  patches are copied into the columns of a matrix and the output values come
  from matrix products (BLAS), a few images at a time. The computation dtype
  follows the inputs (float32 stays float32, float64 stays float64, integers
  become float64). With stride 1 on the last two axes the 2D/3D result is a
  view whose rows are padded in memory (see ``conv2d``).

Pooling (``max_pool2d``, ``avg_pool2d``, ``sum_pool2d`` and the 1D and global
versions) follows PyTorch's rules for padding and ``ceil_mode``. The backward
passes ``conv2d_backward`` and ``max_pool2d_backward`` return the gradients
that autograd computes; ``conv_transpose2d`` is the input gradient of
``conv2d`` used as a layer.

Only NumPy is imported; the tests (tests/test_conv.py) compare every
function with PyTorch, TensorFlow or SciPy.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ._validate import array_of_rank, as_tuple, non_negative_int, positive_int

__all__ = [
    "conv1d",
    "conv2d",
    "conv3d",
    "conv1d_naive",
    "conv2d_naive",
    "conv3d_naive",
    "convolve2d",
    "correlate2d_single",
    "convolve2d_single",
    "conv2d_backward",
    "conv_transpose2d",
    "max_pool1d",
    "avg_pool1d",
    "max_pool2d",
    "avg_pool2d",
    "sum_pool2d",
    "max_pool2d_backward",
    "global_max_pool2d",
    "global_avg_pool2d",
]

# Layout strings used in docstrings and error messages, per number of spatial axes.
_AXES = {1: ("W",), 2: ("H", "W"), 3: ("D", "H", "W")}
_X_LAYOUT = {1: "(N, C, W)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}
_W_LAYOUT = {1: "(F, C, K)", 2: "(F, C, HH, WW)", 3: "(F, C, KD, KH, KW)"}

# im2col works on blocks of output positions whose patch matrix is about this
# size, so that the copy and the matrix product stay in cache.
_CHUNK_BYTES = 1 << 22


# --------------------------------------------------------------------------
# Argument checks and small helpers
# --------------------------------------------------------------------------


def _out_size(i: int, k: int, s: int, p: int, d: int) -> int:
    """Output size along one axis: floor((i + 2p - d(k-1) - 1)/s) + 1."""
    return (i + 2 * p - d * (k - 1) - 1) // s + 1


def _compute_dtype(*arrays) -> np.dtype:
    """The dtype the result is computed in: the inputs' common float type."""
    dt = np.result_type(*[a.dtype for a in arrays if a is not None])
    if not np.issubdtype(dt, np.inexact):
        dt = np.dtype(np.float64)
    return dt


def _check_not_empty(a: np.ndarray, name: str) -> None:
    if a.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {a.shape}")


def _check_bias(b, n_filters: int):
    if b is None:
        return None
    b = np.asarray(b)
    if not (np.issubdtype(b.dtype, np.number) or b.dtype == np.bool_):
        raise TypeError(f"b must hold numbers, got dtype {b.dtype}")
    if b.shape != (n_filters,):
        raise ValueError(
            f"b must have shape (F,) = ({n_filters},), one bias per filter of w, "
            f"got shape {b.shape}"
        )
    return b


def _check_conv_args(x, w, b, stride, padding, dilation, nd: int):
    """Validate the arguments of an nd convolution; return them normalized."""
    x = array_of_rank(x, nd + 2, "x", _X_LAYOUT[nd])
    w = array_of_rank(w, nd + 2, "w", _W_LAYOUT[nd])
    _check_not_empty(x, "x")
    _check_not_empty(w, "w")
    if x.shape[1] != w.shape[1]:
        raise ValueError(
            f"channel mismatch: x has {x.shape[1]} channels but w expects {w.shape[1]} "
            f"(x.shape[1] must equal w.shape[1])"
        )
    b = _check_bias(b, w.shape[0])
    stride = as_tuple(stride, nd, "stride", positive_int)
    padding = as_tuple(padding, nd, "padding", non_negative_int)
    dilation = as_tuple(dilation, nd, "dilation", positive_int)
    _check_kernel_fits(x.shape[2:], w.shape[2:], padding, dilation, nd)
    return x, w, b, stride, padding, dilation


def _check_kernel_fits(in_size, k_size, padding, dilation, nd: int) -> None:
    for axis, i, k, p, d in zip(_AXES[nd], in_size, k_size, padding, dilation):
        span = d * (k - 1) + 1
        if span > i + 2 * p:
            raise ValueError(
                f"kernel too large along {axis}: the dilated kernel size d*(k-1)+1 = {span} "
                f"(kernel {k}, dilation {d}) exceeds the padded input size i+2p = {i + 2 * p} "
                f"(input {i}, padding {p})"
            )


def _pad_input(x: np.ndarray, padding, dtype) -> np.ndarray:
    """Return x (N, C, *S) zero padded to a C-contiguous (N, C, *S_padded) of ``dtype``.

    No copy when there is no padding and x already is contiguous in ``dtype``.
    """
    if not any(padding):
        return np.ascontiguousarray(x, dtype=dtype)
    padded = tuple(i + 2 * p for i, p in zip(x.shape[2:], padding))
    xp = np.zeros(x.shape[:2] + padded, dtype=dtype)
    inner = tuple(slice(p, p + i) for p, i in zip(padding, x.shape[2:]))
    xp[(slice(None), slice(None)) + inner] = x
    return xp


def _patch_view(xp: np.ndarray, k_size, stride, dilation, out_size, row_run: bool):
    """Zero-copy view of the patches of xp (N, C, *S): shape (N, C, *k, *per_image).

    ``per_image`` indexes the output positions of one image: ``out_size``
    itself, or with ``row_run`` (stride 1 on the last two axes) the last two
    output axes merged into one run of ``(H_out - 1) * W_pad + W_out``
    positions of the flattened (H_pad, W_pad) plane: output row h starts at
    position h * W_pad of the run, and the ``W_pad - W_out`` positions between
    two rows are wasted. The run makes every patch row one contiguous slice of
    the input, which copies much faster than rows of W_out values.
    """
    xs = xp.strides
    item = xp.itemsize
    kernel_strides = tuple(d * st for d, st in zip(dilation, xs[2:]))
    if row_run:
        run = (out_size[-2] - 1) * xp.shape[-1] + out_size[-1]
        per_image = tuple(out_size[:-2]) + (run,)
        pos_strides = tuple(s * st for s, st in zip(stride[:-2], xs[2:-2])) + (item,)
    else:
        per_image = tuple(out_size)
        pos_strides = tuple(s * st for s, st in zip(stride, xs[2:]))
    return as_strided(
        xp,
        shape=xp.shape[:2] + tuple(k_size) + per_image,
        strides=xs[:2] + kernel_strides + pos_strides,
        writeable=False,
    )


def _im2col_matmul(xp: np.ndarray, w: np.ndarray, b, stride, dilation, out_size) -> np.ndarray:
    """Vectorized cross-correlation: im2col + matrix products, block by block.

    xp: (N, C, *S) already padded; w: (F, C, *k); b: (F,) or None; all of the
    computation dtype. Returns out (N, F, *out_size) (see ``_im2col_blocks``
    for its memory layout).

    An image too large for one block of about ``_CHUNK_BYTES`` is cut into
    slabs of output indices along the first spatial axis; each slab is a
    smaller convolution of the input rows it reads.
    """
    n, c = xp.shape[:2]
    f = w.shape[0]
    k_size = w.shape[2:]
    nd = len(k_size)
    row_run = nd >= 2 and stride[-1] == 1 and stride[-2] == 1
    rows = c * math.prod(k_size)
    n_rows = rows + (b is not None)
    wmat = np.empty((f, n_rows), dtype=xp.dtype)
    wmat[:, :rows] = w.reshape(f, rows)
    if b is not None:
        wmat[:, rows] = b  # the bias: one more column, times a row of ones

    # Columns of one image for ``a`` output indices along the first axis.
    def n_cols(a):
        sub = (a,) + tuple(out_size[1:])
        if row_run:
            return math.prod(sub[:-2]) * ((sub[-2] - 1) * xp.shape[-1] + sub[-1])
        return math.prod(sub)

    o0 = out_size[0]
    bytes_per_image = n_rows * n_cols(o0) * xp.itemsize
    if bytes_per_image <= _CHUNK_BYTES:  # whole images per block
        images = max(1, min(n, _CHUNK_BYTES // bytes_per_image))
        return _im2col_blocks(xp, wmat, rows, k_size, stride, dilation, out_size, row_run, images)

    slab = max(1, min(o0, o0 * _CHUNK_BYTES // bytes_per_image))
    result = np.empty((n, f) + tuple(out_size), dtype=xp.dtype)
    s0, d0, k0 = stride[0], dilation[0], k_size[0]
    for a0 in range(0, o0, slab):
        a1 = min(o0, a0 + slab)
        x_slab = xp[:, :, a0 * s0 : (a1 - 1) * s0 + d0 * (k0 - 1) + 1]  # the rows a0..a1-1 read
        sub_out = (a1 - a0,) + tuple(out_size[1:])
        result[:, :, a0:a1] = _im2col_blocks(x_slab, wmat, rows, k_size, stride, dilation, sub_out,
                                             row_run, 1)
    return result


def _im2col_blocks(xp, wmat, rows, k_size, stride, dilation, out_size, row_run, images):
    """Cross-correlate xp (N, C, *S) with wmat (F, rows [+ 1]), ``images`` images at a time.

    For each image, the patch matrix ("columns") has one row per (channel,
    kernel offset), plus a row of ones for the bias, and one column per
    output position; the image's output is ``wmat @ columns`` (BLAS). The
    patches are copied from the zero-copy view of ``_patch_view`` into a
    buffer of a few images, reused so that the copy and the product stay in
    cache.

    Returns (N, F, *out_size): C-contiguous, except with a row run (stride 1
    on the last two axes), where it is a view that skips the wasted run
    positions: its rows are W_pad apart in memory instead of W_out.
    """
    n = xp.shape[0]
    f, n_rows = wmat.shape
    nd = len(k_size)
    item = xp.itemsize
    patches = _patch_view(xp, k_size, stride, dilation, out_size, row_run)  # (N, C, *k, *per_image)
    per_image = patches.shape[2 + nd :]
    q = math.prod(per_image)
    images = min(images, n)

    cols = np.empty((images, n_rows, q), dtype=xp.dtype)
    cols[:, rows:] = 1  # the bias row, if any
    cols_patches = cols[:, :rows].reshape((images,) + patches.shape[1:])
    if not np.may_share_memory(cols_patches, cols):  # reshape must give a view into cols
        raise RuntimeError("internal error: im2col buffer view is a copy")
    prod = np.empty((n, f, q), dtype=xp.dtype)
    for i0 in range(0, n, images):
        m = min(images, n - i0)
        np.copyto(cols_patches[:m], patches[i0 : i0 + m])  # im2col
        np.matmul(wmat, cols[:m], out=prod[i0 : i0 + m])  # (F, rows) @ (rows, q), per image

    if not row_run:
        return prod.reshape((n, f) + tuple(out_size))
    # Output row h of an image starts at position h * W_pad of its run.
    outer = tuple(math.prod(per_image[j + 1 :]) * item for j in range(len(per_image) - 1))
    strides = (f * q * item, q * item) + outer + (xp.shape[-1] * item, item)
    return as_strided(prod, shape=(n, f) + tuple(out_size), strides=strides, writeable=True)


def _conv_nd(x, w, b, stride, padding, dilation, nd: int) -> np.ndarray:
    x, w, b, stride, padding, dilation = _check_conv_args(x, w, b, stride, padding, dilation, nd)
    dtype = _compute_dtype(x, w, b)
    xp = _pad_input(x, padding, dtype)
    w = w.astype(dtype, copy=False)
    b = None if b is None else b.astype(dtype, copy=False)
    out_size = tuple(
        _out_size(i, k, s, p, d)
        for i, k, s, p, d in zip(x.shape[2:], w.shape[2:], stride, padding, dilation)
    )
    return _im2col_matmul(xp, w, b, stride, dilation, out_size)


def conv1d(x, w, b=None, stride=1, padding=0, dilation=1):
    """1D convolution layer (cross-correlation), vectorized with im2col.

    Inputs:
    - x: input, shape (N, C, W): N sequences of C channels and length W.
    - w: filters, shape (F, C, K): F filters of C channels and length K.
    - b: biases, shape (F,), or None for no bias.
    - stride: step between two output positions (int or 1-tuple, >= 1).
    - padding: zeros added at both ends (int or 1-tuple, >= 0).
    - dilation: spacing between kernel taps (int or 1-tuple, >= 1).

    Returns:
    - out: shape (N, F, W_out) with
      W_out = floor((W + 2p - d(K-1) - 1)/s) + 1 and
      out[n, f, i] = b[f] + sum_{c, k} x_pad[n, c, i*s + k*d] * w[f, c, k].

    Same result as ``torch.nn.functional.conv1d``.
    """
    return _conv_nd(x, w, b, stride, padding, dilation, 1)


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1):
    """2D convolution layer (cross-correlation), vectorized with im2col.

    Inputs:
    - x: input, shape (N, C, H, W): N images with C channels, H rows, W columns.
    - w: filters, shape (F, C, HH, WW): F filters, each C x HH x WW.
    - b: biases, shape (F,), or None for no bias.
    - stride: step between two output positions (int or (sh, sw), >= 1).
    - padding: zeros added on each side (int or (ph, pw), >= 0).
    - dilation: spacing between kernel taps (int or (dh, dw), >= 1).

    Returns:
    - out: shape (N, F, H_out, W_out) with
      H_out = floor((H + 2ph - dh(HH-1) - 1)/sh) + 1,
      W_out = floor((W + 2pw - dw(WW-1) - 1)/sw) + 1 and
      out[n, f, i, j] = b[f] + sum_{c, u, v} x_pad[n, c, i*sh + u*dh, j*sw + v*dw] * w[f, c, u, v].

    Same result as ``torch.nn.functional.conv2d``. The patches of every
    output position are copied into a matrix (im2col), then a matrix product
    with ``w.reshape(F, -1)`` computes all outputs. float32 inputs are
    computed in float32, float64 in float64.

    With stride 1 the result is a writeable view whose rows lie
    W + 2pw elements apart in memory (the positions between them were
    computed and dropped); ``np.ascontiguousarray(out)`` makes a compact copy
    if one is ever needed.
    """
    return _conv_nd(x, w, b, stride, padding, dilation, 2)


def conv3d(x, w, b=None, stride=1, padding=0, dilation=1):
    """3D convolution layer (cross-correlation), vectorized with im2col.

    Inputs:
    - x: input, shape (N, C, D, H, W): N volumes with C channels.
    - w: filters, shape (F, C, KD, KH, KW).
    - b: biases, shape (F,), or None for no bias.
    - stride, padding, dilation: int or a 3-tuple (depth, height, width).

    Returns:
    - out: shape (N, F, D_out, H_out, W_out) where along each axis
      o = floor((i + 2p - d(k-1) - 1)/s) + 1 and
      out[n, f, t, i, j] = b[f] + sum_{c, r, u, v}
      x_pad[n, c, t*sd + r*dd, i*sh + u*dh, j*sw + v*dw] * w[f, c, r, u, v].

    Same result as ``torch.nn.functional.conv3d``. With stride 1 along H and
    W the result is a writeable view with padded rows, as in ``conv2d``.
    """
    return _conv_nd(x, w, b, stride, padding, dilation, 3)


# --------------------------------------------------------------------------
# Naive convolution: every index written out
# --------------------------------------------------------------------------


def _naive_setup(x, w, b, stride, padding, dilation, nd):
    x, w, b, stride, padding, dilation = _check_conv_args(x, w, b, stride, padding, dilation, nd)
    dtype = _compute_dtype(x, w, b)
    pad_width = [(0, 0), (0, 0)] + [(p, p) for p in padding]
    x_pad = np.pad(x.astype(dtype), pad_width, mode="constant", constant_values=0)
    if b is None:
        b = np.zeros(w.shape[0], dtype=dtype)
    out_size = tuple(
        _out_size(i, k, s, p, d)
        for i, k, s, p, d in zip(x.shape[2:], w.shape[2:], stride, padding, dilation)
    )
    return x_pad, w.astype(dtype), b.astype(dtype), stride, dilation, out_size, dtype


def conv1d_naive(x, w, b=None, stride=1, padding=0, dilation=1):
    """1D convolution layer (cross-correlation) with explicit loops.

    Inputs:
    - x: input, shape (N, C, W).
    - w: filters, shape (F, C, K).
    - b: biases, shape (F,), or None.
    - stride, padding, dilation: int or 1-tuple.

    Returns:
    - out: shape (N, F, W_out), W_out = floor((W + 2p - d(K-1) - 1)/s) + 1.

    Slow on purpose: it shows every index. Use ``conv1d`` for real work.
    """
    x_pad, w, b, (s,), (d,), (W_out,), dtype = _naive_setup(x, w, b, stride, padding, dilation, 1)
    N, C = x_pad.shape[:2]
    F, _, K = w.shape
    out = np.zeros((N, F, W_out), dtype=dtype)
    for n in range(N):  # each sequence
        for f in range(F):  # each filter
            for i in range(W_out):  # each output position
                total = b[f]
                for c in range(C):  # each input channel
                    for k in range(K):  # each kernel tap
                        total += x_pad[n, c, i * s + k * d] * w[f, c, k]
                out[n, f, i] = total
    return out


def conv2d_naive(x, w, b=None, stride=1, padding=0, dilation=1):
    """2D convolution layer (cross-correlation) with explicit loops.

    Inputs:
    - x: input, shape (N, C, H, W).
    - w: filters, shape (F, C, HH, WW).
    - b: biases, shape (F,), or None.
    - stride, padding, dilation: int or (height, width) tuple.

    Returns:
    - out: shape (N, F, H_out, W_out) with
      H_out = floor((H + 2ph - dh(HH-1) - 1)/sh) + 1 and
      W_out = floor((W + 2pw - dw(WW-1) - 1)/sw) + 1.

    Slow on purpose: it shows every index. Use ``conv2d`` for real work.
    """
    x_pad, w, b, (sh, sw), (dh, dw), (H_out, W_out), dtype = _naive_setup(
        x, w, b, stride, padding, dilation, 2
    )
    N, C = x_pad.shape[:2]
    F, _, HH, WW = w.shape
    out = np.zeros((N, F, H_out, W_out), dtype=dtype)
    for n in range(N):  # each image
        for f in range(F):  # each filter
            for i in range(H_out):  # each output row
                for j in range(W_out):  # each output column
                    total = b[f]
                    for c in range(C):  # each input channel
                        for u in range(HH):  # each kernel row
                            for v in range(WW):  # each kernel column
                                row = i * sh + u * dh  # the input pixel this tap reads
                                col = j * sw + v * dw
                                total += x_pad[n, c, row, col] * w[f, c, u, v]
                    out[n, f, i, j] = total
    return out


def conv3d_naive(x, w, b=None, stride=1, padding=0, dilation=1):
    """3D convolution layer (cross-correlation) with explicit loops.

    Inputs:
    - x: input, shape (N, C, D, H, W).
    - w: filters, shape (F, C, KD, KH, KW).
    - b: biases, shape (F,), or None.
    - stride, padding, dilation: int or (depth, height, width) tuple.

    Returns:
    - out: shape (N, F, D_out, H_out, W_out) where along each axis
      o = floor((i + 2p - d(k-1) - 1)/s) + 1.

    Slow on purpose: it shows every index. Use ``conv3d`` for real work.
    """
    x_pad, w, b, (sd, sh, sw), (dd, dh, dw), (D_out, H_out, W_out), dtype = _naive_setup(
        x, w, b, stride, padding, dilation, 3
    )
    N, C = x_pad.shape[:2]
    F, _, KD, KH, KW = w.shape
    out = np.zeros((N, F, D_out, H_out, W_out), dtype=dtype)
    for n in range(N):  # each volume
        for f in range(F):  # each filter
            for t in range(D_out):  # each output slice
                for i in range(H_out):  # each output row
                    for j in range(W_out):  # each output column
                        total = b[f]
                        for c in range(C):  # each input channel
                            for r in range(KD):  # each kernel slice
                                for u in range(KH):  # each kernel row
                                    for v in range(KW):  # each kernel column
                                        dep = t * sd + r * dd  # the input voxel read
                                        row = i * sh + u * dh
                                        col = j * sw + v * dw
                                        total += x_pad[n, c, dep, row, col] * w[f, c, r, u, v]
                        out[n, f, t, i, j] = total
    return out


# --------------------------------------------------------------------------
# True convolution and single-channel helpers
# --------------------------------------------------------------------------


def convolve2d(x, w, b=None, stride=1, padding=0, dilation=1):
    """True 2D convolution: cross-correlation with the kernel flipped.

    Inputs:
    - x: input, shape (N, C, H, W).
    - w: filters, shape (F, C, HH, WW).
    - b: biases, shape (F,), or None.
    - stride, padding, dilation: int or (height, width) tuple.

    Returns:
    - out: shape (N, F, H_out, W_out), o = floor((i + 2p - d(k-1) - 1)/s) + 1,
      equal to ``conv2d(x, w[:, :, ::-1, ::-1], b, ...)``.

    With one channel, one filter, stride 1 and no padding this is
    ``scipy.signal.convolve2d(x, w, mode="valid")``.
    """
    w = array_of_rank(w, 4, "w", _W_LAYOUT[2])
    return conv2d(x, w[:, :, ::-1, ::-1], b, stride=stride, padding=padding, dilation=dilation)


def _check_single(image, kernel, padding, stride):
    image = array_of_rank(image, 2, "image", "(H, W)")
    kernel = array_of_rank(kernel, 2, "kernel", "(kh, kw)")
    _check_not_empty(image, "image")
    _check_not_empty(kernel, "kernel")
    padding = as_tuple(padding, 2, "padding", non_negative_int)
    stride = as_tuple(stride, 2, "stride", positive_int)
    _check_kernel_fits(image.shape, kernel.shape, padding, (1, 1), 2)
    return image, kernel, padding, stride


def correlate2d_single(image, kernel, padding=0, stride=1):
    """Cross-correlate one 2D image with one 2D kernel (the lecture's example).

    Inputs:
    - image: shape (H, W).
    - kernel: shape (kh, kw).
    - padding: zeros added on each side (int or (ph, pw), >= 0).
    - stride: step between output positions (int or (sh, sw), >= 1).

    Returns:
    - out: shape (H_out, W_out), H_out = floor((H + 2ph - kh)/sh) + 1,
      W_out = floor((W + 2pw - kw)/sw) + 1 and
      out[i, j] = sum(image_pad[i*sh : i*sh + kh, j*sw : j*sw + kw] * kernel).

    Example: [[3,3,2,1],[0,0,1,3],[3,1,2,2],[2,0,0,2]] with kernel
    [[0,1,2],[2,2,0],[0,1,2]] gives [[12,12],[10,17]].
    """
    image, kernel, (ph, pw), (sh, sw) = _check_single(image, kernel, padding, stride)
    dtype = _compute_dtype(image, kernel)
    image_pad = np.pad(image.astype(dtype), ((ph, ph), (pw, pw)))
    kh, kw = kernel.shape
    H_out = _out_size(image.shape[0], kh, sh, ph, 1)
    W_out = _out_size(image.shape[1], kw, sw, pw, 1)
    out = np.zeros((H_out, W_out), dtype=dtype)
    for i in range(H_out):
        for j in range(W_out):
            window = image_pad[i * sh : i * sh + kh, j * sw : j * sw + kw]
            out[i, j] = np.sum(window * kernel)
    return out


def convolve2d_single(image, kernel, padding=0, stride=1):
    """Convolve one 2D image with one 2D kernel (kernel flipped in both axes).

    Inputs:
    - image: shape (H, W).
    - kernel: shape (kh, kw).
    - padding, stride: as in ``correlate2d_single``.

    Returns:
    - out: shape (H_out, W_out), o = floor((i + 2p - k)/s) + 1, equal to
      ``correlate2d_single(image, kernel[::-1, ::-1], ...)``; with padding 0 and
      stride 1 this is ``scipy.signal.convolve2d(image, kernel, mode="valid")``.
    """
    kernel = array_of_rank(kernel, 2, "kernel", "(kh, kw)")
    return correlate2d_single(image, kernel[::-1, ::-1], padding=padding, stride=stride)


# --------------------------------------------------------------------------
# Backward passes and transposed convolution
# --------------------------------------------------------------------------


def _col2im_input_grad(dout, w, stride, dilation, full_size, dtype):
    """Input gradient of a 2D cross-correlation, on the padded input.

    dout: (N, F, Ho, Wo); w: (F, C, HH, WW). Returns dx_pad (N, C, *full_size).
    The gradient of each patch matrix column is ``w.reshape(F, -1).T @ dout``
    (one matrix product); "col2im" then adds every patch gradient back onto
    the input pixels the patch read: one strided add per kernel tap, none
    per pixel.
    """
    n, f, ho, wo = dout.shape
    _, c, hh, ww = w.shape
    sh, sw = stride
    dh, dw = dilation
    dout_mat = np.ascontiguousarray(np.swapaxes(dout, 0, 1)).reshape(f, n * ho * wo)
    dcols = (w.reshape(f, -1).T @ dout_mat).reshape(c, hh, ww, n, ho, wo)
    dx_pad = np.zeros((c, n) + tuple(full_size), dtype=dtype)  # channels first, like dcols
    for u in range(hh):
        for v in range(ww):
            rows = slice(u * dh, u * dh + sh * (ho - 1) + 1, sh)  # input rows tap (u, v) read
            cols = slice(v * dw, v * dw + sw * (wo - 1) + 1, sw)
            dx_pad[:, :, rows, cols] += dcols[:, u, v]
    return np.swapaxes(dx_pad, 0, 1)


def conv2d_backward(dout, x, w, stride=1, padding=0, dilation=1):
    """Backward pass of ``conv2d``.

    Inputs:
    - dout: upstream gradient, shape (N, F, H_out, W_out).
    - x: input of the forward pass, shape (N, C, H, W).
    - w: filters of the forward pass, shape (F, C, HH, WW).
    - stride, padding, dilation: as in the forward pass (int or 2-tuple);
      H_out = floor((H + 2ph - dh(HH-1) - 1)/sh) + 1, same for W_out.

    Returns a tuple (dx, dw, db):
    - dx: gradient with respect to x, shape (N, C, H, W).
    - dw: gradient with respect to w, shape (F, C, HH, WW).
    - db: gradient with respect to b, shape (F,).
    """
    x, w, _, stride, padding, dilation = _check_conv_args(x, w, None, stride, padding, dilation, 2)
    dout = array_of_rank(dout, 4, "dout", "(N, F, H_out, W_out)")
    n, c, h, wd = x.shape
    f, _, hh, ww = w.shape
    out_size = tuple(
        _out_size(i, k, s, p, d)
        for i, k, s, p, d in zip((h, wd), (hh, ww), stride, padding, dilation)
    )
    expected = (n, f) + out_size
    if dout.shape != expected:
        raise ValueError(
            f"dout must have shape (N, F, H_out, W_out) = {expected}, got {dout.shape}"
        )
    dtype = _compute_dtype(dout, x, w)
    dout = dout.astype(dtype, copy=False)
    w = w.astype(dtype, copy=False)
    ph, pw = padding
    sh, sw = stride
    dil_h, dil_w = dilation
    ho, wo = out_size
    x_pad = np.pad(x.astype(dtype, copy=False), ((0, 0), (0, 0), (ph, ph), (pw, pw)))

    # The forward pass as matrices: out_mat (F, P) = w_mat (F, K) @ cols (K, P) + b,
    # with P = N*Ho*Wo output positions and K = C*HH*WW patch values (im2col).
    s_n, s_c, s_h, s_w = x_pad.strides
    patches = as_strided(
        x_pad,
        shape=(c, hh, ww, n, ho, wo),
        strides=(s_c, dil_h * s_h, dil_w * s_w, s_n, sh * s_h, sw * s_w),
        writeable=False,
    )
    cols = patches.reshape(c * hh * ww, n * ho * wo)  # a copy
    dout_mat = np.ascontiguousarray(np.swapaxes(dout, 0, 1)).reshape(f, n * ho * wo)

    db = dout_mat.sum(axis=1)  # the bias adds to every position
    dw = (dout_mat @ cols.T).reshape(w.shape)  # d(w_mat @ cols)/d(w_mat)
    # dcols = w_mat.T @ dout_mat, added back onto the input pixels (col2im):
    dx_pad = _col2im_input_grad(dout, w, stride, dilation, x_pad.shape[2:], dtype)
    dx = dx_pad[:, :, ph : ph + h, pw : pw + wd]
    return np.ascontiguousarray(dx), dw, db


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, dilation=1):
    """2D transposed convolution ("deconvolution"), PyTorch's weight layout.

    Inputs:
    - x: input, shape (N, C_in, H, W).
    - w: weights, shape (C_in, C_out, HH, WW) (note: C_in first, as in
      ``torch.nn.ConvTranspose2d``).
    - b: biases, shape (C_out,), or None.
    - stride, padding, dilation: int or 2-tuple, the parameters of the
      convolution whose input gradient this is.
    - output_padding: extra rows/columns added at the bottom/right (int or
      2-tuple, each smaller than the stride or the dilation on that axis).

    Returns:
    - out: shape (N, C_out, H_out, W_out) with
      H_out = (H - 1)*sh - 2ph + dh(HH-1) + output_padding_h + 1, same for W.

    It is the gradient of ``conv2d(y, w)`` with respect to ``y``: every input
    value is spread, weighted by the kernel, over the output. Same result as
    ``torch.nn.functional.conv_transpose2d``.
    """
    x = array_of_rank(x, 4, "x", "(N, C_in, H, W)")
    w = array_of_rank(w, 4, "w", "(C_in, C_out, HH, WW)")
    _check_not_empty(x, "x")
    _check_not_empty(w, "w")
    if x.shape[1] != w.shape[0]:
        raise ValueError(
            f"channel mismatch: x has {x.shape[1]} channels but w expects {w.shape[0]} "
            f"(x.shape[1] must equal w.shape[0] for a transposed convolution)"
        )
    b = _check_bias(b, w.shape[1])
    stride = as_tuple(stride, 2, "stride", positive_int)
    padding = as_tuple(padding, 2, "padding", non_negative_int)
    output_padding = as_tuple(output_padding, 2, "output_padding", non_negative_int)
    dilation = as_tuple(dilation, 2, "dilation", positive_int)
    for axis, op, s, d in zip(_AXES[2], output_padding, stride, dilation):
        if op >= max(s, d):
            raise ValueError(
                f"output_padding along {axis} must be smaller than the stride or the dilation "
                f"(max({s}, {d}) = {max(s, d)}), got {op}"
            )
    dtype = _compute_dtype(x, w, b)
    full = []
    out_size = []
    axes = zip(_AXES[2], x.shape[2:], w.shape[2:], stride, padding, output_padding, dilation)
    for axis, i, k, s, p, op, d in axes:
        size = (i - 1) * s + d * (k - 1) + 1 + op
        if size - 2 * p < 1:
            raise ValueError(
                f"padding too large along {axis}: the output size "
                f"(i-1)*s - 2p + d(k-1) + output_padding + 1 "
                f"= {size - 2 * p} must be >= 1 (padding {p})"
            )
        full.append(size)
        out_size.append(size - 2 * p)
    x = x.astype(dtype, copy=False)
    w = w.astype(dtype, copy=False)
    out_full = _col2im_input_grad(x, w, stride, dilation, full, dtype)
    ph, pw = padding
    out = np.ascontiguousarray(out_full[:, :, ph : ph + out_size[0], pw : pw + out_size[1]])
    if b is not None:
        out += b.astype(dtype).reshape(1, -1, 1, 1)
    return out


# --------------------------------------------------------------------------
# Pooling
# --------------------------------------------------------------------------


def _pool_args(x, kernel_size, stride, padding, ceil_mode, nd, fn):
    x = array_of_rank(x, nd + 2, "x", _X_LAYOUT[nd])
    _check_not_empty(x, "x")
    kernel_size = as_tuple(kernel_size, nd, "kernel_size", positive_int)
    stride = kernel_size if stride is None else as_tuple(stride, nd, "stride", positive_int)
    padding = as_tuple(padding, nd, "padding", non_negative_int)
    if not isinstance(ceil_mode, (bool, np.bool_)):
        raise TypeError(f"ceil_mode must be True or False, got {ceil_mode!r}")
    out_size = []
    for axis, i, k, s, p in zip(_AXES[nd], x.shape[2:], kernel_size, stride, padding):
        if 2 * p > k:
            raise ValueError(
                f"padding along {axis} must be at most half the kernel size "
                f"(2p <= k, PyTorch's rule), "
                f"got padding {p} with kernel_size {k} in {fn}"
            )
        if k > i + 2 * p:
            raise ValueError(
                f"kernel_size along {axis} ({k}) is larger than the padded input size "
                f"i+2p = {i + 2 * p} "
                f"(input {i}, padding {p})"
            )
        out_size.append(_pool_out_size(i, k, s, p, ceil_mode))
    return x, kernel_size, stride, padding, tuple(out_size)


def _pool_out_size(i, k, s, p, ceil_mode):
    """floor (or ceil) of (i + 2p - k)/s, plus 1; PyTorch's rule for ceil_mode.

    With ceil_mode the last window may hang over the right padding, but it
    must start inside the input or the left padding; otherwise it is dropped.
    """
    num = i + 2 * p - k
    o = (-(-num // s) if ceil_mode else num // s) + 1
    if ceil_mode and (o - 1) * s >= i + p:
        o -= 1
    return o


def _pool_taps(x, kernel_size, stride, padding, out_size, fill):
    """Pad x (N, C, *S) with ``fill`` and return, for each kernel tap, the view
    (N, C, *out_size) of the values that tap reads in every window.

    A window's max (or sum) is then the elementwise max (or sum) of these
    views: one array operation per tap, none per window.
    """
    pad = [(0, 0), (0, 0)]
    for i, k, s, p, o in zip(x.shape[2:], kernel_size, stride, padding, out_size):
        right = max((o - 1) * s + k - i - p, 0)  # ceil_mode windows may hang past the padding
        pad.append((p, right))
    xp = np.pad(x, pad, mode="constant", constant_values=fill)
    taps = []
    for offsets in itertools.product(*(range(k) for k in kernel_size)):
        index = tuple(
            slice(t, t + s * (o - 1) + 1, s) for t, s, o in zip(offsets, stride, out_size)
        )
        taps.append(xp[(slice(None), slice(None)) + index])
    return taps, xp.shape[2:]


def _max_fill(dtype):
    if np.issubdtype(dtype, np.floating):
        return -np.inf
    if np.issubdtype(dtype, np.integer):
        return np.iinfo(dtype).min
    return False  # bool


def _max_pool(x, kernel_size, stride, padding, ceil_mode, nd, fn):
    x, kernel_size, stride, padding, out_size = _pool_args(
        x, kernel_size, stride, padding, ceil_mode, nd, fn
    )
    taps, _ = _pool_taps(x, kernel_size, stride, padding, out_size, _max_fill(x.dtype))
    out = taps[0].copy()
    for tap in taps[1:]:
        np.maximum(out, tap, out=out)
    return out


def _sum_pool(x, kernel_size, stride, padding, ceil_mode, nd, fn, average):
    x, kernel_size, stride, padding, out_size = _pool_args(
        x, kernel_size, stride, padding, ceil_mode, nd, fn
    )
    dtype = _compute_dtype(x) if average else x.dtype
    taps, _ = _pool_taps(x.astype(dtype, copy=False), kernel_size, stride, padding, out_size, 0)
    total = taps[0].copy()
    for tap in taps[1:]:
        np.add(total, tap, out=total)
    if not average:
        return total
    # PyTorch's divisor (count_include_pad=True): the window size clipped to the
    # padded input, i.e. padded zeros count, the overhang of ceil_mode does not.
    divisor = np.ones((1, 1) + out_size, dtype=dtype)
    for a, (i, k, s, p, o) in enumerate(zip(x.shape[2:], kernel_size, stride, padding, out_size)):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, i + p)
        shape = [1] * (nd + 2)
        shape[2 + a] = o
        divisor = divisor * (end - start).reshape(shape)
    return total / divisor


def max_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """1D max pooling.

    Inputs:
    - x: shape (N, C, W).
    - kernel_size: window length (int >= 1).
    - stride: step between windows (default: kernel_size).
    - padding: implicit -inf padding on both ends (2*padding <= kernel_size).
    - ceil_mode: round the output size up instead of down.

    Returns:
    - out: shape (N, C, W_out), W_out = floor((W + 2p - k)/s) + 1 (ceil with
      ceil_mode, PyTorch's rule). Same as ``torch.nn.functional.max_pool1d``.
    """
    return _max_pool(x, kernel_size, stride, padding, ceil_mode, 1, "max_pool1d")


def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """1D average pooling (padded zeros count in the average, PyTorch's default).

    Inputs and output as in ``max_pool1d``: x (N, C, W) -> (N, C, W_out),
    W_out = floor((W + 2p - k)/s) + 1. Same as ``torch.nn.functional.avg_pool1d``.
    """
    return _sum_pool(x, kernel_size, stride, padding, ceil_mode, 1, "avg_pool1d", average=True)


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """2D max pooling.

    Inputs:
    - x: shape (N, C, H, W).
    - kernel_size: window size (int or (kh, kw), >= 1).
    - stride: step between windows (int or 2-tuple; default: kernel_size).
    - padding: implicit -inf padding on each side (int or 2-tuple,
      2*padding <= kernel_size as in PyTorch).
    - ceil_mode: round the output size up; the last window may then hang over
      the right padding but must start inside the input or the left padding.

    Returns:
    - out: shape (N, C, H_out, W_out), H_out = floor((H + 2ph - kh)/sh) + 1
      (ceil with ceil_mode), same for W_out.

    Same as ``torch.nn.functional.max_pool2d``.
    """
    return _max_pool(x, kernel_size, stride, padding, ceil_mode, 2, "max_pool2d")


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """2D average pooling.

    Inputs and output shapes as in ``max_pool2d``: x (N, C, H, W) ->
    (N, C, H_out, W_out), H_out = floor((H + 2ph - kh)/sh) + 1.

    Padding adds zeros that count in the average (PyTorch's default
    ``count_include_pad=True``); with ``ceil_mode`` the part of a window that
    hangs beyond the padding does not count. Same as
    ``torch.nn.functional.avg_pool2d``.
    """
    return _sum_pool(x, kernel_size, stride, padding, ceil_mode, 2, "avg_pool2d", average=True)


def sum_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """2D sum pooling: the sum of each window (padded zeros add nothing).

    Inputs and output shapes as in ``max_pool2d``: x (N, C, H, W) ->
    (N, C, H_out, W_out), H_out = floor((H + 2ph - kh)/sh) + 1.
    """
    return _sum_pool(x, kernel_size, stride, padding, ceil_mode, 2, "sum_pool2d", average=False)


def max_pool2d_backward(dout, x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """Backward pass of ``max_pool2d``.

    Inputs:
    - dout: upstream gradient, shape (N, C, H_out, W_out).
    - x: input of the forward pass, shape (N, C, H, W).
    - kernel_size, stride, padding, ceil_mode: as in the forward pass.

    Returns:
    - dx: shape (N, C, H, W). Each window sends its gradient to the position
      of its maximum (the first one on ties, like PyTorch); positions picked
      by several overlapping windows add up.
    """
    x, kernel_size, stride, padding, out_size = _pool_args(
        x, kernel_size, stride, padding, ceil_mode, 2, "max_pool2d_backward"
    )
    dout = array_of_rank(dout, 4, "dout", "(N, C, H_out, W_out)")
    expected = x.shape[:2] + out_size
    if dout.shape != expected:
        raise ValueError(
            f"dout must have shape (N, C, H_out, W_out) = {expected}, got {dout.shape}"
        )
    n, c, h, wd = x.shape
    kh, kw = kernel_size
    sh, sw = stride
    ph, pw = padding
    ho, wo = out_size
    taps, padded = _pool_taps(x, kernel_size, stride, padding, out_size, _max_fill(x.dtype))
    # Index of the first maximum of each window (ties: the first, as PyTorch).
    best = taps[0].copy()
    arg = np.zeros(best.shape, dtype=np.intp)
    better = np.empty(best.shape, dtype=bool)
    for t, tap in enumerate(taps[1:], start=1):
        np.greater(tap, best, out=better)  # strictly greater: an earlier tie keeps its place
        np.maximum(best, tap, out=best)
        np.copyto(arg, t, where=better)
    rows = np.arange(ho)[:, None] * sh + arg // kw  # row of the maximum in the padded input
    cols = np.arange(wo)[None, :] * sw + arg % kw
    hp, wp = padded
    flat = (np.arange(n * c).reshape(n, c, 1, 1) * hp + rows) * wp + cols
    dtype = _compute_dtype(dout, x)
    dx_pad = np.bincount(flat.ravel(), weights=dout.ravel(), minlength=n * c * hp * wp)
    dx_pad = dx_pad.reshape(n, c, hp, wp)[:, :, ph : ph + h, pw : pw + wd]
    return np.ascontiguousarray(dx_pad, dtype=dtype)


def global_max_pool2d(x):
    """Global max pooling: the maximum of each channel.

    Input: x of shape (N, C, H, W). Returns: shape (N, C).
    """
    x = array_of_rank(x, 4, "x", _X_LAYOUT[2])
    _check_not_empty(x, "x")
    return x.max(axis=(2, 3))


def global_avg_pool2d(x):
    """Global average pooling: the mean of each channel.

    Input: x of shape (N, C, H, W). Returns: shape (N, C).
    """
    x = array_of_rank(x, 4, "x", _X_LAYOUT[2])
    _check_not_empty(x, "x")
    return x.mean(axis=(2, 3), dtype=_compute_dtype(x))
