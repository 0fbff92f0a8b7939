"""utils.images: offline sample images and conversions (real images, no mocks)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from utils import images as im

EXPECTED = {
    "camera": ((512, 512), np.uint8),
    "astronaut": ((512, 512, 3), np.uint8),
    "coins": ((303, 384), np.uint8),
    "coffee": ((400, 600, 3), np.uint8),
    "china": ((427, 640, 3), np.uint8),
    "flower": ((427, 640, 3), np.uint8),
}


@pytest.fixture(scope="module")
def astronaut():
    return im.sample_image("astronaut")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_images_have_documented_shape_and_dtype(name):
    a = im.sample_image(name)
    shape, dtype = EXPECTED[name]
    assert a.shape == shape and a.dtype == dtype
    assert a.min() < 60 and a.max() > 200  # a real photo, not a blank array


def test_sample_image_names_and_fresh_copies():
    assert set(im.sample_image_names()) == set(EXPECTED)
    a = im.sample_image("camera")
    a[:] = 0
    assert im.sample_image("camera").max() > 0
    assert im.sample_image(" Camera ").shape == (512, 512)


def test_sample_image_rejects_unknown_names():
    with pytest.raises(ValueError, match="name must be one of camera"):
        im.sample_image("lena")
    with pytest.raises(TypeError, match="name must be a str"):
        im.sample_image(3)


def test_lfw_faces():
    faces = im.lfw_faces()
    assert faces.shape == (100, 25, 25) and faces.dtype == np.float32
    assert 0.0 <= faces.min() and faces.max() <= 1.0
    images, is_face = im.lfw_faces(include_non_faces=True)
    assert images.shape == (200, 25, 25) and is_face.shape == (200,)
    assert is_face[:100].all() and not is_face[100:].any()
    np.testing.assert_array_equal(images[:100], faces)


def test_to_image_to_array_round_trip(astronaut, tmp_path):
    gray = im.sample_image("camera")
    for a, mode in ((gray, "L"), (astronaut, "RGB")):
        pil = im.to_image(a)
        assert pil.mode == mode and pil.size == (a.shape[1], a.shape[0])
        np.testing.assert_array_equal(im.to_array(pil), a)
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 128, np.uint8)])
    assert im.to_image(rgba).mode == "RGBA"
    np.testing.assert_array_equal(im.to_array(im.to_image(rgba)), rgba)
    # (H, W, 1) -> 'L'; a file path is read too.
    im.to_image(gray[:, :, None]).save(tmp_path / "g.png")
    np.testing.assert_array_equal(im.to_array(tmp_path / "g.png"), gray)


def test_float_images_round_trip_within_half_a_level():
    x = np.random.default_rng(0).random((10, 12, 3))
    back = im.to_array(im.to_image(x)) / 255.0
    assert np.abs(back - x).max() <= 0.5 / 255 + 1e-12


def test_to_image_and_to_array_reject_bad_input():
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        im.to_image(np.full((4, 4), 2.0))
    with pytest.raises(ValueError, match="0-255"):
        im.to_image(np.full((4, 4), 300, np.int32))
    with pytest.raises(ValueError, match="channels-last"):
        im.to_image(np.zeros((3, 8, 8)))
    with pytest.raises(TypeError, match="pil_image must be"):
        im.to_array(np.zeros((4, 4)))


def test_to_array_converts_palette_and_bilevel_images(astronaut):
    pil = Image.fromarray(astronaut).convert("P")
    assert im.to_array(pil).shape == (512, 512, 3)
    assert set(np.unique(im.to_array(Image.new("1", (4, 4), 1)))) == {255}


def test_grayscale_of_a_gray_rgb_image_is_unchanged():
    gray = im.sample_image("camera")
    rgb = np.dstack([gray] * 3)
    np.testing.assert_array_equal(im.to_grayscale(rgb), gray)
    f = np.random.default_rng(1).random((9, 7))
    np.testing.assert_array_equal(im.to_grayscale(np.dstack([f] * 3)), f)
    assert im.to_grayscale(rgb, keepdims=True).shape == (512, 512, 1)
    assert im.to_grayscale(gray[:, :, None]).shape == (512, 512)


def test_grayscale_uses_bt601_like_pillow(astronaut):
    ours = im.to_grayscale(astronaut)
    assert ours.shape == (512, 512) and ours.dtype == np.uint8
    pillow = np.asarray(Image.fromarray(astronaut).convert("L"))
    assert np.abs(ours.astype(int) - pillow).max() <= 1
    f = im.to_grayscale(astronaut / 255.0)
    assert f.dtype == np.float64
    r, g, b = (astronaut[..., i] / 255.0 for i in range(3))
    np.testing.assert_allclose(f, 0.299 * r + 0.587 * g + 0.114 * b, atol=1e-12)


def test_normalize_modes():
    x = im.sample_image("coins")
    u = im.normalize(x)
    assert u.dtype == np.float32 and u.shape == x.shape
    np.testing.assert_allclose(u, x / 255.0, rtol=1e-6)
    s = im.normalize(x, "standard")
    assert abs(float(s.mean())) < 1e-4 and abs(float(s.std()) - 1) < 1e-4
    m = im.normalize(x.astype(float) * 3 + 7, "minmax")
    assert m.min() == 0.0 and m.max() == 1.0
    assert not im.normalize(np.full((3, 3), 5.0), "minmax").any()
    assert not im.normalize(np.full((3, 3), 5.0), "standard").any()
    np.testing.assert_array_equal(im.normalize(np.array([[True, False]])), [[1.0, 0.0]])
    with pytest.raises(ValueError, match="use mode='minmax'"):
        im.normalize(np.array([[0.0, 2.0]]), "unit")
    with pytest.raises(ValueError, match="mode must be one of"):
        im.normalize(x, "zscore")


def test_resize_keeps_dtype_range_and_channels(astronaut):
    small = im.resize(astronaut, (64, 80))
    assert small.shape == (64, 80, 3) and small.dtype == np.uint8
    cam = im.sample_image("camera") / 255.0
    big = im.resize(cam[:50, :50], (100, 100))
    assert big.dtype == np.float64 and big.shape == (100, 100)
    assert big.min() >= cam[:50, :50].min() and big.max() <= cam[:50, :50].max()
    with pytest.raises(ValueError, match="shape must be a pair"):
        im.resize(cam, 32)
    with pytest.raises(ValueError, match="positive"):
        im.resize(cam, (0, 5))


def test_resize_is_anti_aliased():
    checker = (np.indices((64, 64)).sum(0) % 2).astype(np.float64)  # 1-pixel checkerboard
    half = im.resize(checker, (16, 16))
    # Without a low-pass filter, sampling would give pure 0s / 1s (aliasing).
    assert np.abs(half[2:-2, 2:-2] - 0.5).max() < 0.05


def test_center_crop_and_patch():
    x = np.arange(7 * 9).reshape(7, 9)
    c = im.center_crop(x, 3)
    np.testing.assert_array_equal(c, x[2:5, 3:6])
    np.testing.assert_array_equal(im.center_crop(x, (4, 2)), x[1:5, 3:5])
    p = im.patch(x, 1, 2, (3, 4))
    np.testing.assert_array_equal(p, x[1:4, 2:6])
    p[:] = -1  # a copy, not a view
    assert x.min() == 0
    rgb = im.sample_image("coffee")
    assert im.center_crop(rgb, 100).shape == (100, 100, 3)
    with pytest.raises(ValueError, match="must fit inside"):
        im.center_crop(x, 8)
    with pytest.raises(ValueError, match="must lie inside"):
        im.patch(x, 5, 0, 3)
    with pytest.raises(ValueError, match="top must be non-negative"):
        im.patch(x, -1, 0, 2)
