"""Hand-made 2D kernels: the filters a CNN learns to approximate in its first layer.

Each function returns a fresh ``float64`` NumPy array of shape ``(kh, kw)``, so a
notebook may modify it freely. Kernels are written for *cross-correlation*, the
operation every deep-learning framework calls "convolution" (``scipy.signal.correlate2d``,
``torch.nn.functional.conv2d``, ``utils.conv``): the kernel is slid over the image
without flipping. Image coordinates: x grows to the right, y grows downwards.

Sign conventions of the edge kernels:

* :func:`sobel_x`, :func:`scharr_x`: positive where the image gets *brighter* to the
  right (dark-to-bright going left to right); :func:`sobel_y`: brighter downwards.
* :func:`vertical_edge` (Andrew Ng's ``[[1, 0, -1]] * 3``) has the *opposite*
  sign: positive for bright-to-dark from left to right.

Blurs sum to 1 (they keep the mean brightness); edge, gradient and Laplacian
kernels sum to 0 (no response on a flat region); :func:`sharpen` and
:func:`identity` sum to 1.

>>> sobel_x()
array([[-1.,  0.,  1.],
       [-2.,  0.,  2.],
       [-1.,  0.,  1.]])
"""

from __future__ import annotations

import numbers

import numpy as np

from ._validate import positive_int

__all__ = [
    "identity",
    "box_blur",
    "gaussian",
    "gaussian_3x3",
    "gaussian_5x5",
    "vertical_edge",
    "horizontal_edge",
    "sobel_x",
    "sobel_y",
    "scharr_x",
    "scharr_y",
    "laplacian",
    "laplacian_diagonal",
    "sharpen",
    "edge_detect",
    "gallery",
]


def _odd_size(size, name="size") -> int:
    size = positive_int(size, name)
    if size % 2 == 0:
        raise ValueError(f"{name} must be odd so the kernel has a centre pixel, got {size}")
    return size


def _kernel(rows) -> np.ndarray:
    return np.array(rows, dtype=np.float64)


def identity(size=3) -> np.ndarray:
    """The identity kernel: 1 at the centre, 0 elsewhere; leaves the image unchanged.

    ``size`` must be odd (default 3)::

        [[0, 0, 0],
         [0, 1, 0],
         [0, 0, 0]]
    """
    size = _odd_size(size)
    k = np.zeros((size, size), dtype=np.float64)
    k[size // 2, size // 2] = 1.0
    return k


def box_blur(size=3) -> np.ndarray:
    """Box (mean) blur: every pixel becomes the average of its ``size x size`` neighbourhood.

    All entries ``1 / size**2`` (sum 1)::

        [[1, 1, 1],
         [1, 1, 1],   * 1/9
         [1, 1, 1]]
    """
    size = positive_int(size, "size")
    return np.full((size, size), 1.0 / (size * size), dtype=np.float64)


def gaussian(size=5, sigma=1.0) -> np.ndarray:
    """Gaussian blur: a smooth, isotropic low-pass filter (a weighted mean).

    ``K[i, j] ∝ exp(-(x_i**2 + y_j**2) / (2 sigma**2))`` for integer offsets
    ``x, y`` in ``-size//2 .. size//2``, normalised to sum 1. It is separable:
    the outer product of the normalised 1-D Gaussian with itself (the same
    sampled, truncated kernel ``scipy.ndimage.gaussian_filter`` uses).
    A large ``sigma`` approaches :func:`box_blur`, a small one :func:`identity`.

    ``size``: odd integer >= 1; ``sigma``: standard deviation in pixels, > 0.

    >>> gaussian(3, 1.0).round(4)
    array([[0.0751, 0.1238, 0.0751],
           [0.1238, 0.2042, 0.1238],
           [0.0751, 0.1238, 0.0751]])
    """
    size = _odd_size(size)
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real):
        raise TypeError(f"sigma must be a real number, got {type(sigma).__name__} {sigma!r}")
    if not np.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be a finite number > 0, got {sigma}")
    x = np.arange(size, dtype=np.float64) - size // 2
    g = np.exp(-0.5 * (x / float(sigma)) ** 2)
    g /= g.sum()
    return np.outer(g, g)


def gaussian_3x3() -> np.ndarray:
    """The 3x3 binomial approximation of a Gaussian blur (sum 1)::

        [[1, 2, 1],
         [2, 4, 2],   * 1/16
         [1, 2, 1]]
    """
    return _kernel([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16.0


def gaussian_5x5() -> np.ndarray:
    """The 5x5 binomial Gaussian blur: outer product of ``[1, 4, 6, 4, 1]`` / 256 (sum 1)::

        [[1,  4,  6,  4, 1],
         [4, 16, 24, 16, 4],
         [6, 24, 36, 24, 6],   * 1/256
         [4, 16, 24, 16, 4],
         [1,  4,  6,  4, 1]]
    """
    b = _kernel([1, 4, 6, 4, 1])
    return np.outer(b, b) / 256.0


def vertical_edge() -> np.ndarray:
    """Vertical edge detector from Andrew Ng's course (sum 0)::

        [[1, 0, -1],
         [1, 0, -1],
         [1, 0, -1]]

    Responds to vertical edges: positive where the image is brighter on the
    left than on the right, negative for dark-to-bright, 0 on flat regions.
    """
    return _kernel([[1, 0, -1], [1, 0, -1], [1, 0, -1]])


def horizontal_edge() -> np.ndarray:
    """Horizontal edge detector, the transpose of :func:`vertical_edge` (sum 0)::

        [[ 1,  1,  1],
         [ 0,  0,  0],
         [-1, -1, -1]]

    Positive where the image is brighter above than below.
    """
    return vertical_edge().T.copy()


def sobel_x() -> np.ndarray:
    """Sobel operator for the horizontal gradient d/dx; detects vertical edges (sum 0)::

        [[-1, 0, 1],
         [-2, 0, 2],
         [-1, 0, 1]]

    A central difference smoothed vertically by ``[1, 2, 1]``; positive where the
    image gets brighter to the right.
    """
    return _kernel([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])


def sobel_y() -> np.ndarray:
    """Sobel operator for the vertical gradient d/dy (y downwards); detects horizontal
    edges (sum 0). The transpose of :func:`sobel_x`::

        [[-1, -2, -1],
         [ 0,  0,  0],
         [ 1,  2,  1]]

    Positive where the image gets brighter downwards.
    """
    return sobel_x().T.copy()


def scharr_x() -> np.ndarray:
    """Scharr operator for d/dx: like :func:`sobel_x` with better rotational symmetry::

        [[ -3, 0,  3],
         [-10, 0, 10],
         [ -3, 0,  3]]
    """
    return _kernel([[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]])


def scharr_y() -> np.ndarray:
    """Scharr operator for d/dy (y downwards), the transpose of :func:`scharr_x`::

        [[-3, -10, -3],
         [ 0,   0,  0],
         [ 3,  10,  3]]
    """
    return scharr_x().T.copy()


def laplacian() -> np.ndarray:
    """4-neighbour Laplacian (second derivative d2/dx2 + d2/dy2); edges and blobs in
    every direction, 0 on flat regions and linear ramps (sum 0)::

        [[0,  1, 0],
         [1, -4, 1],
         [0,  1, 0]]
    """
    return _kernel([[0, 1, 0], [1, -4, 1], [0, 1, 0]])


def laplacian_diagonal() -> np.ndarray:
    """8-neighbour Laplacian (diagonals included, more isotropic) (sum 0)::

        [[1,  1, 1],
         [1, -8, 1],
         [1,  1, 1]]
    """
    return _kernel([[1, 1, 1], [1, -8, 1], [1, 1, 1]])


def sharpen() -> np.ndarray:
    """Sharpening: the identity minus the 4-neighbour Laplacian, which boosts
    local contrast (sum 1, so flat regions are unchanged)::

        [[ 0, -1,  0],
         [-1,  5, -1],
         [ 0, -1,  0]]
    """
    return _kernel([[0, -1, 0], [-1, 5, -1], [0, -1, 0]])


def edge_detect() -> np.ndarray:
    """The common "edge detection" (outline) kernel, minus the 8-neighbour
    Laplacian: bright outlines on black, 0 on flat regions (sum 0)::

        [[-1, -1, -1],
         [-1,  8, -1],
         [-1, -1, -1]]
    """
    return _kernel([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]])


def gallery() -> dict[str, np.ndarray]:
    """The classic kernels for a lecture figure, as an ordered ``{title: kernel}`` dict.

    Order: identity, edge detection, Laplacian, Sobel x, Sobel y, sharpen,
    box blur, Gaussian 3x3, Gaussian 5x5. Fresh arrays on every call.

    >>> kernels = gallery()
    >>> list(kernels)[:4], len(kernels)
    (['identity', 'edge detection', 'Laplacian', 'Sobel x'], 9)
    """
    return {
        "identity": identity(),
        "edge detection": edge_detect(),
        "Laplacian": laplacian(),
        "Sobel x": sobel_x(),
        "Sobel y": sobel_y(),
        "sharpen": sharpen(),
        "box blur": box_blur(),
        "Gaussian 3x3": gaussian_3x3(),
        "Gaussian 5x5": gaussian_5x5(),
    }
