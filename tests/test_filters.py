"""Tests of utils.filters: exact kernels, sums, symmetries, the Gaussian against
scikit-image, and what the edge kernels do to synthetic images."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import correlate2d

import utils.filters as filters
from utils.filters import (
    box_blur,
    edge_detect,
    gallery,
    gaussian,
    gaussian_3x3,
    gaussian_5x5,
    horizontal_edge,
    identity,
    laplacian,
    laplacian_diagonal,
    scharr_x,
    scharr_y,
    sharpen,
    sobel_x,
    sobel_y,
    vertical_edge,
)

EXACT = {
    "identity": (identity, [[0, 0, 0], [0, 1, 0], [0, 0, 0]], 1),
    "box_blur": (box_blur, [[1, 1, 1], [1, 1, 1], [1, 1, 1]], 1 / 9),
    "gaussian_3x3": (gaussian_3x3, [[1, 2, 1], [2, 4, 2], [1, 2, 1]], 1 / 16),
    "gaussian_5x5": (
        gaussian_5x5,
        [[1, 4, 6, 4, 1], [4, 16, 24, 16, 4], [6, 24, 36, 24, 6], [4, 16, 24, 16, 4],
         [1, 4, 6, 4, 1]],
        1 / 256,
    ),
    "vertical_edge": (vertical_edge, [[1, 0, -1], [1, 0, -1], [1, 0, -1]], 1),
    "horizontal_edge": (horizontal_edge, [[1, 1, 1], [0, 0, 0], [-1, -1, -1]], 1),
    "sobel_x": (sobel_x, [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], 1),
    "sobel_y": (sobel_y, [[-1, -2, -1], [0, 0, 0], [1, 2, 1]], 1),
    "scharr_x": (scharr_x, [[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]], 1),
    "scharr_y": (scharr_y, [[-3, -10, -3], [0, 0, 0], [3, 10, 3]], 1),
    "laplacian": (laplacian, [[0, 1, 0], [1, -4, 1], [0, 1, 0]], 1),
    "laplacian_diagonal": (laplacian_diagonal, [[1, 1, 1], [1, -8, 1], [1, 1, 1]], 1),
    "sharpen": (sharpen, [[0, -1, 0], [-1, 5, -1], [0, -1, 0]], 1),
    "edge_detect": (edge_detect, [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], 1),
}
BLURS = [box_blur, gaussian_3x3, gaussian_5x5, gaussian]
ZERO_SUM = [vertical_edge, horizontal_edge, sobel_x, sobel_y, scharr_x, scharr_y, laplacian,
            laplacian_diagonal, edge_detect]


def test_doctests():
    result = doctest.testmod(filters, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 3
    assert result.failed == 0


@pytest.mark.parametrize("name", sorted(EXACT))
def test_exact_values(name):
    fn, matrix, scale = EXACT[name]
    kernel = fn()
    assert kernel.dtype == np.float64
    assert kernel.ndim == 2
    np.testing.assert_array_equal(kernel, np.array(matrix, dtype=np.float64) * scale)
    # The docstring shows the matrix.
    first_row = "[" + ", ".join(str(v) for v in matrix[0])
    assert first_row in " ".join(fn.__doc__.split()).replace("[ ", "["), name


@pytest.mark.parametrize("name", sorted(EXACT))
def test_returns_fresh_arrays(name):
    fn = EXACT[name][0]
    kernel = fn()
    kernel[...] = 123.0
    assert not np.any(fn() == 123.0)


def test_sums():
    for fn in BLURS + [identity, sharpen]:
        assert fn().sum() == pytest.approx(1.0, abs=1e-15), fn.__name__
    for fn in ZERO_SUM:
        assert fn().sum() == 0.0, fn.__name__


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7])
def test_box_blur_sizes(size):
    kernel = box_blur(size)
    assert kernel.shape == (size, size)
    assert kernel.sum() == pytest.approx(1.0)
    assert np.all(kernel == kernel[0, 0])


@pytest.mark.parametrize("size", [1, 3, 5, 9])
def test_identity_sizes(size):
    kernel = identity(size)
    assert kernel.shape == (size, size)
    assert kernel[size // 2, size // 2] == 1.0 and kernel.sum() == 1.0
    image = np.random.default_rng(0).normal(size=(12, 12))
    np.testing.assert_array_equal(correlate2d(image, kernel, mode="same"), image)


def test_symmetries():
    np.testing.assert_array_equal(sobel_y(), sobel_x().T)
    np.testing.assert_array_equal(scharr_y(), scharr_x().T)
    np.testing.assert_array_equal(horizontal_edge(), vertical_edge().T)
    # x-derivatives flip sign left-right and are symmetric top-bottom.
    for fn in (sobel_x, scharr_x, vertical_edge):
        np.testing.assert_array_equal(np.fliplr(fn()), -fn())
        np.testing.assert_array_equal(np.flipud(fn()), fn())
    # Ng's vertical edge has the opposite sign of Sobel (no centre-row weight of 2).
    assert np.all(np.sign(vertical_edge()) == -np.sign(sobel_x()))
    # Blurs, Laplacians, sharpen and edge detection are symmetric under every flip.
    for fn in (identity, box_blur, gaussian_3x3, gaussian_5x5, gaussian, laplacian,
               laplacian_diagonal, sharpen, edge_detect):
        k = fn()
        for transformed in (k.T, np.fliplr(k), np.flipud(k), np.rot90(k)):
            np.testing.assert_array_equal(transformed, k, err_msg=fn.__name__)


def test_relations_between_kernels():
    np.testing.assert_array_equal(sharpen(), identity() - laplacian())
    np.testing.assert_array_equal(edge_detect(), -laplacian_diagonal())
    # Sobel = [1, 2, 1] smoothing (outer) [-1, 0, 1] central difference: separable.
    np.testing.assert_array_equal(sobel_x(), np.outer([1, 2, 1], [-1, 0, 1]))
    np.testing.assert_array_equal(gaussian_3x3(), np.outer([1, 2, 1], [1, 2, 1]) / 16)
    for fn in (box_blur, gaussian_3x3, gaussian_5x5, gaussian, sobel_x, sobel_y, vertical_edge):
        assert np.linalg.matrix_rank(fn()) == 1, fn.__name__
    for fn in (laplacian, laplacian_diagonal, sharpen):
        assert np.linalg.matrix_rank(fn()) > 1, fn.__name__


# ---------------------------------------------------------------------------
# gaussian(size, sigma)
# ---------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(size=st.sampled_from([1, 3, 5, 7, 9, 11]), sigma=st.floats(0.3, 6.0))
def test_gaussian_matches_skimage(size, sigma):
    from skimage.filters import gaussian as sk_gaussian

    radius = size // 2
    impulse = np.zeros((size + 6, size + 6))
    impulse[impulse.shape[0] // 2, impulse.shape[1] // 2] = 1.0
    # skimage truncates at radius int(truncate * sigma + 0.5): pick truncate to cut at size // 2.
    blurred = sk_gaussian(impulse, sigma=sigma, mode="constant", cval=0.0,
                          truncate=radius / sigma, preserve_range=True)
    c = impulse.shape[0] // 2
    expected = blurred[c - radius:c + radius + 1, c - radius:c + radius + 1]
    kernel = gaussian(size, sigma)
    assert kernel.shape == (size, size) and kernel.dtype == np.float64
    np.testing.assert_allclose(kernel, expected, rtol=1e-12, atol=1e-15)
    assert blurred.sum() == pytest.approx(1.0)  # nothing fell outside the kernel


@settings(max_examples=50, deadline=None)
@given(size=st.integers(0, 7).map(lambda i: 2 * i + 1), sigma=st.floats(0.05, 50.0))
def test_gaussian_is_the_normalised_sampled_density(size, sigma):
    x = np.arange(size) - size // 2
    xx, yy = np.meshgrid(x, x, indexing="ij")
    density = np.exp(-(xx**2 + yy**2) / (2 * sigma**2)) / (2 * np.pi * sigma**2)
    kernel = gaussian(size, sigma)
    np.testing.assert_allclose(kernel, density / density.sum(), rtol=1e-12, atol=1e-300)
    assert kernel.sum() == pytest.approx(1.0, abs=1e-12)
    assert kernel.argmax() == (size * size) // 2  # peak at the centre
    # Weights fall off with distance from the centre.
    row = kernel[size // 2]
    assert np.all(np.diff(row[size // 2:]) <= 0)


def test_gaussian_limits():
    np.testing.assert_allclose(gaussian(5, 1e4), box_blur(5), atol=1e-8)
    np.testing.assert_allclose(gaussian(3, 1e4), box_blur(3), atol=1e-8)
    np.testing.assert_allclose(gaussian(5, 0.05), identity(5), atol=1e-12)
    np.testing.assert_array_equal(gaussian(1, 0.7), [[1.0]])
    # Wider sigma spreads the weight: the centre weight decreases.
    centres = [gaussian(7, s)[3, 3] for s in (0.3, 0.5, 1, 2, 4, 100)]
    assert np.all(np.diff(centres) < 0)
    # The binomial kernels approximate sampled, truncated Gaussians (best fits:
    # sigma about 0.85 for 3x3 and 1.1 for 5x5).
    np.testing.assert_allclose(gaussian(3, 0.85), gaussian_3x3(), atol=1e-3)
    np.testing.assert_allclose(gaussian(5, 1.1), gaussian_5x5(), atol=5e-3)


# ---------------------------------------------------------------------------
# the kernels on images
# ---------------------------------------------------------------------------


def _step(rows=8, cols=10, edge=5, left=0.0, right=1.0):
    image = np.full((rows, cols), left)
    image[:, edge:] = right
    return image


def test_sobel_x_responds_only_at_a_vertical_step_edge():
    response = correlate2d(_step(), sobel_x(), mode="valid")  # (6, 8)
    # Output column j sees input columns j..j+2; only j = 3, 4 straddle the edge at 5.
    expected = np.zeros((6, 8))
    expected[:, 3:5] = 4.0  # 1 + 2 + 1: brighter to the right gives a positive response
    np.testing.assert_array_equal(response, expected)
    np.testing.assert_array_equal(
        correlate2d(_step(left=1.0, right=0.0), sobel_x(), mode="valid"), -expected
    )
    # A vertical edge has no vertical gradient.
    np.testing.assert_array_equal(correlate2d(_step(), sobel_y(), mode="valid"), 0.0)
    # Rotate the picture: sobel_y sees a horizontal edge, brighter below is positive.
    np.testing.assert_array_equal(correlate2d(_step().T, sobel_y(), mode="valid"), expected.T)
    np.testing.assert_array_equal(correlate2d(_step().T, sobel_x(), mode="valid"), 0.0)


def test_andrew_ng_vertical_edge_example():
    image = np.array([[10, 10, 10, 0, 0, 0]] * 6, dtype=float)
    np.testing.assert_array_equal(
        correlate2d(image, vertical_edge(), mode="valid"), [[0, 30, 30, 0]] * 4
    )
    np.testing.assert_array_equal(
        correlate2d(image[:, ::-1], vertical_edge(), mode="valid"), [[0, -30, -30, 0]] * 4
    )
    np.testing.assert_array_equal(
        correlate2d(image.T, horizontal_edge(), mode="valid"), np.array([[0, 30, 30, 0]] * 4).T
    )


def test_second_derivatives_and_flat_regions():
    y, x = np.mgrid[0:9, 0:9].astype(float)
    ramp = 3 * x - 2 * y + 5
    for fn in (laplacian, laplacian_diagonal, edge_detect):
        np.testing.assert_allclose(correlate2d(ramp, fn(), mode="valid"), 0.0, atol=1e-12)
    # d2/dx2 + d2/dy2 of x^2 + y^2 is 4 (the 8-neighbour stencil is 3x that).
    bowl = x**2 + y**2
    np.testing.assert_allclose(correlate2d(bowl, laplacian(), mode="valid"), 4.0)
    np.testing.assert_allclose(correlate2d(bowl, laplacian_diagonal(), mode="valid"), 12.0)
    # Blurs and sharpen leave a flat image unchanged; edge kernels give 0.
    flat = np.full((7, 7), 0.3)
    for fn in (box_blur, gaussian_3x3, gaussian_5x5, gaussian, sharpen, identity):
        np.testing.assert_allclose(correlate2d(flat, fn(), mode="valid"), 0.3, err_msg=fn.__name__)
    for fn in ZERO_SUM:
        np.testing.assert_allclose(correlate2d(flat, fn(), mode="valid"), 0.0, atol=1e-15)


def test_kernels_are_for_cross_correlation_as_in_pytorch():
    torch = pytest.importorskip("torch")
    image = np.random.default_rng(1).normal(size=(9, 11))
    for fn in (sobel_x, sobel_y, vertical_edge, sharpen):
        ours = correlate2d(image, fn(), mode="valid")
        theirs = torch.nn.functional.conv2d(
            torch.from_numpy(image)[None, None], torch.from_numpy(fn())[None, None]
        )[0, 0].numpy()
        np.testing.assert_allclose(theirs, ours, rtol=1e-12, atol=1e-12)


def test_gallery():
    kernels = gallery()
    assert list(kernels) == [
        "identity", "edge detection", "Laplacian", "Sobel x", "Sobel y", "sharpen",
        "box blur", "Gaussian 3x3", "Gaussian 5x5",
    ]
    expected = [identity, edge_detect, laplacian, sobel_x, sobel_y, sharpen, box_blur,
                gaussian_3x3, gaussian_5x5]
    for kernel, fn in zip(kernels.values(), expected, strict=True):
        np.testing.assert_array_equal(kernel, fn())
        assert kernel.dtype == np.float64
    kernels["identity"][1, 1] = 7.0
    assert gallery()["identity"][1, 1] == 1.0


# ---------------------------------------------------------------------------
# bad arguments
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: gaussian(4, 1.0), ValueError, r"size must be odd .* got 4"),
        (lambda: gaussian(0, 1.0), ValueError, r"size must be a positive integer"),
        (lambda: gaussian(5, 0), ValueError, r"sigma must be a finite number > 0, got 0"),
        (lambda: gaussian(5, -1.5), ValueError, r"sigma must be a finite number > 0, got -1.5"),
        (lambda: gaussian(5, float("nan")), ValueError, r"sigma must be a finite number > 0"),
        (lambda: gaussian(5, float("inf")), ValueError, r"sigma must be a finite number > 0"),
        (lambda: gaussian(5, "1"), TypeError, r"sigma must be a real number"),
        (lambda: gaussian(5.0, 1.0), TypeError, r"size must be an integer"),
        (lambda: identity(4), ValueError, r"size must be odd"),
        (lambda: box_blur(0), ValueError, r"size must be a positive integer"),
        (lambda: box_blur(2.5), TypeError, r"size must be an integer"),
    ],
)
def test_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()
