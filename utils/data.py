"""Datasets for the course: MNIST (offline-first), scikit-learn digits, synthetic sets.

Layout conventions (the same everywhere in this module):

- MNIST images: ``(n, 28, 28)`` uint8, 0 = background, 255 = ink, labels ``(n,)``
  uint8 -- exactly what ``keras.datasets.mnist.load_data()`` returns.
- Synthetic sets: channels-last float32 ``(n, H, W, 1)`` in [0, 1]; add a channel
  axis move for PyTorch (``np.moveaxis(x, -1, 1)`` gives ``(n, 1, H, W)``).
- Boxes: ``(y_min, x_min, y_max, x_max)`` normalised to [0, 1] by the image
  height (y) and width (x), in *pixel-edge* coordinates: a box that covers
  pixel rows ``r0 .. r1`` (inclusive) has ``y_min = r0 / H`` and
  ``y_max = (r1 + 1) / H``, so ``(y_max - y_min) * H`` is its height in pixels.

``load_mnist`` tries, in order: a verified cached copy of the full MNIST, a
verified download of it, and the real 10,000-digit subset bundled in
``data/mnist_subset.npz``. See its docstring.

At module level this imports NumPy and the standard library only;
scikit-learn and scikit-image are imported inside the functions that use them.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import pathlib
import tempfile
import urllib.request
import warnings

import numpy as np

from ._validate import non_negative_int, positive_int

__all__ = [
    "MNIST_URL",
    "MNIST_SHA256",
    "BUNDLED_PATH",
    "BUNDLED_SHA256",
    "MnistData",
    "last_source",
    "default_cache_dir",
    "load_mnist",
    "load_digits",
    "make_shapes_dataset",
    "make_localization_dataset",
    "iou",
]

#: Where Keras downloads the full MNIST from (60,000 train + 10,000 test digits, 11 MB).
MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
#: sha256 of that file (the checksum ``keras.datasets.mnist`` verifies).
MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
#: File name of the full MNIST in a cache directory (the Keras name).
MNIST_FILENAME = "mnist.npz"

#: The real MNIST subset shipped with the course (see data/README.md).
BUNDLED_PATH = pathlib.Path(__file__).resolve().parent.parent / "data" / "mnist_subset.npz"
#: sha256 of ``data/mnist_subset.npz`` (printed by ``data/make_mnist_npz.py``).
BUNDLED_SHA256 = "775ba978bbecb1106bbc24128b8ae8e69b18a3eac6752c168342e69c08483dfd"
#: Images per class in the bundled subset (digits 0 ... 9).
BUNDLED_CLASS_COUNTS = (1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978)

#: Which source the last ``load_mnist`` call used: 'cache', 'download', 'bundled', 'file' or None.
last_source: str | None = None


# --------------------------------------------------------------------------- helpers


class MnistData(tuple):
    """What ``load_mnist`` returns: unpacks like Keras, and says where the data came from.

    ``(x_train, y_train), (x_test, y_test) = load_mnist()`` works as with
    ``keras.datasets.mnist.load_data()``. Extra attributes:

    - ``source``: ``'cache'`` (a verified local ``mnist.npz``), ``'download'``
      (just downloaded and verified), ``'bundled'`` (``data/mnist_subset.npz``)
      or ``'file'`` (the ``path=`` you gave).
    - ``path``: the file that was read (``pathlib.Path``).
    - ``message``: the one-line description printed when ``verbose``.
    - ``train``, ``test``: the two ``(x, y)`` pairs.
    """

    def __new__(cls, train, test, source: str, path, message: str = ""):
        self = super().__new__(cls, (tuple(train), tuple(test)))
        self.source = source
        self.path = pathlib.Path(path)
        self.message = message
        return self

    @property
    def train(self):
        return self[0]

    @property
    def test(self):
        return self[1]

    def __reduce__(self):
        return (type(self), (self[0], self[1], self.source, self.path, self.message))

    def __repr__(self):
        (xtr, _), (xte, _) = self
        return (
            f"MnistData(source={self.source!r}, train={xtr.shape[0]}, test={xte.shape[0]}, "
            f"path={str(self.path)!r})"
        )


def default_cache_dir() -> pathlib.Path:
    """``$CNN_COURSE_DATA`` if set, else ``~/.cache/cnn-course``."""
    env = os.environ.get("CNN_COURSE_DATA")
    return pathlib.Path(env or "~/.cache/cnn-course").expanduser()


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _display(path) -> str:
    """``data/mnist_subset.npz`` for the bundled file, the full path otherwise."""
    path = pathlib.Path(path)
    try:
        if path.resolve() == BUNDLED_PATH:
            return "data/mnist_subset.npz"
    except OSError:
        pass
    return str(path)


def _check_sha256(path, expected: str, what: str) -> None:
    actual = _sha256(path)
    if actual != expected.lower():
        raise ValueError(
            f"{_display(path)} is corrupted: sha256 {actual}, expected {expected.lower()} "
            f"({what}). Delete it and load again (or regenerate the bundled subset with "
            "data/make_mnist_npz.py)."
        )


def _read_full(path):
    with np.load(path, allow_pickle=False) as f:
        return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])


def _read_bundled(path):
    with np.load(path, allow_pickle=False) as f:
        return f["images"], f["labels"]


def _stratified_split(labels: np.ndarray, test_size: int, seed: int):
    """Indices (train, test): ``test_size`` test items spread over classes in proportion.

    Per-class test counts use largest remainders so they add up to ``test_size``
    exactly; a seeded ``np.random.default_rng`` picks the items and shuffles the
    two index lists (so they are not sorted by class).
    """
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * test_size / counts.sum()
    n_test = np.floor(exact).astype(int)
    short = test_size - n_test.sum()
    n_test[np.argsort(-(exact - n_test), kind="stable")[:short]] += 1
    train, test = [], []
    for c, k in zip(classes, n_test, strict=True):
        idx = rng.permutation(np.flatnonzero(labels == c))
        test.append(idx[:k])
        train.append(idx[k:])
    train, test = np.concatenate(train), np.concatenate(test)
    return rng.permutation(train), rng.permutation(test)


def _download(url: str, dest: pathlib.Path, sha256: str, timeout: float) -> None:
    """Download ``url`` to ``dest`` via a temp file in the same dir; verify, then rename.

    Network errors propagate as ``urllib.error.URLError`` / ``OSError``; a
    checksum mismatch deletes the temp file and raises ``ValueError``. ``dest``
    is only ever replaced by a verified file.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    tmp = pathlib.Path(tmp_name)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            for block in iter(lambda: resp.read(1 << 20), b""):
                out.write(block)
                h.update(block)
        actual = h.hexdigest()
        if actual != sha256.lower():
            raise ValueError(
                f"download of {url} failed verification: sha256 {actual}, "
                f"expected {sha256.lower()}; the file was deleted and nothing was cached"
            )
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


# --------------------------------------------------------------------------- MNIST


def load_mnist(
    path=None,
    *,
    cache_dir=None,
    download: bool = True,
    url: str = MNIST_URL,
    sha256: str = MNIST_SHA256,
    timeout: float = 10.0,
    test_size: int = 2000,
    seed: int = 0,
    verbose: bool = True,
) -> MnistData:
    """Load MNIST like ``keras.datasets.mnist.load_data()``, offline first.

    Returns a ``MnistData`` that unpacks as ``(x_train, y_train), (x_test, y_test)``:
    images ``(n, 28, 28)`` uint8 (0 = background, 255 = ink), labels ``(n,)``
    uint8 in 0-9. ``.source`` says where the data came from (also stored in
    the module variable ``utils.data.last_source``).

    Sources, first that works wins:

    1. ``'cache'``: ``mnist.npz`` (the Keras file, 60,000 + 10,000 digits) in
       ``cache_dir``; when ``cache_dir`` is None also Keras's copy
       ``$KERAS_HOME/datasets/mnist.npz`` (default ``~/.keras/datasets/mnist.npz``)
       (where Keras keeps it). It is used only if its sha256 is ``sha256``;
       a file that does not match is reported and skipped.
    2. ``'download'``: if ``download``, fetch ``url`` (timeout ``timeout``
       seconds) into a temp file in ``cache_dir``, verify its sha256 and rename
       it to ``cache_dir/mnist.npz``. A checksum mismatch deletes the temp file
       and raises ``ValueError`` (a wrong file is never kept or used); a network
       error (offline, refused, timeout) falls back to 3. Setting the environment
       variable ``CNN_COURSE_OFFLINE=1`` skips the download (CI does this).
    3. ``'bundled'``: ``data/mnist_subset.npz``, 10,000 real MNIST digits (see
       data/README.md), verified against ``BUNDLED_SHA256``, split into
       ``10000 - test_size`` train / ``test_size`` test images, stratified by
       class, with ``np.random.default_rng(seed)`` (deterministic).

    Parameters
    ----------
    path : str or Path, optional
        Load this file and nothing else (``.source == 'file'``). A Keras-format
        file (``x_train`` ...) is verified against ``sha256``; a subset-format
        file (``images``, ``labels``) against ``BUNDLED_SHA256`` and split like
        the bundled one. A mismatch raises ``ValueError`` naming the file and
        both checksums.
    cache_dir : str or Path, optional
        Default: ``$CNN_COURSE_DATA``, else ``~/.cache/cnn-course``.
    test_size, seed : int
        Only for the subset (the full MNIST keeps its official 60,000 / 10,000 split).
    verbose : bool
        Print one line saying which source was used.
    """
    test_size = positive_int(test_size, "test_size")
    if test_size >= 10000:
        raise ValueError(
            f"test_size must be < 10000 (the bundled subset has 10,000 digits), got {test_size}"
        )
    seed = non_negative_int(seed, "seed")
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, got {type(url).__name__}")
    if not (isinstance(sha256, str) and len(sha256) == 64):
        raise ValueError(f"sha256 must be a 64-character hex string, got {sha256!r}")
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")

    def say(msg):
        if verbose:
            print(msg)

    def done(train, test, source, file, msg):
        global last_source
        last_source = source
        say(msg)
        return MnistData(train, test, source, file, msg)

    if path is not None:
        path = pathlib.Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"path {str(path)!r} does not exist or is not a file")
        try:
            with np.load(path, allow_pickle=False) as f:
                keys = set(f.files)
        except Exception:  # not a zip / npz at all: compare against both checksums
            raise ValueError(
                f"{_display(path)} is corrupted: sha256 {_sha256(path)}, expected "
                f"{BUNDLED_SHA256} (MNIST subset) or {sha256.lower()} (full MNIST)"
            ) from None
        if "x_train" in keys:
            _check_sha256(path, sha256, "full MNIST, mnist.npz")
            train, test = _read_full(path)
            msg = f"MNIST: full dataset from {path} (60,000 train / 10,000 test)"
            return done(train, test, "file", path, msg)
        _check_sha256(path, BUNDLED_SHA256, "MNIST subset, data/mnist_subset.npz")
        return done(*_split_subset(path, test_size, seed), "file", path,
                    f"MNIST: subset from {path} ({10000 - test_size:,} train / {test_size:,} test)")

    cache_dir = default_cache_dir() if cache_dir is None else pathlib.Path(cache_dir).expanduser()
    candidates = [cache_dir / MNIST_FILENAME]
    if cache_dir == default_cache_dir():
        # Where Keras caches it: $KERAS_HOME/datasets, else ~/.keras/datasets.
        keras_home = pathlib.Path(os.environ.get("KERAS_HOME") or "~/.keras").expanduser()
        candidates.append(keras_home / "datasets" / MNIST_FILENAME)

    # 1. a verified cached copy of the full MNIST
    for candidate in candidates:
        if candidate.is_file():
            try:
                _check_sha256(candidate, sha256, "full MNIST")
            except ValueError as err:
                warnings.warn(f"ignoring cached MNIST: {err}", stacklevel=2)
                continue
            train, test = _read_full(candidate)
            return done(train, test, "cache", candidate,
                        f"MNIST: full dataset from cache {candidate} (60,000 train / 10,000 test)")

    # 2. download and verify
    offline_env = os.environ.get("CNN_COURSE_OFFLINE", "").strip().lower()
    offline = offline_env not in ("", "0", "false", "no")
    reason = "download=False" if not download else "CNN_COURSE_OFFLINE is set" if offline else ""
    if download and not offline:
        dest = cache_dir / MNIST_FILENAME
        say(f"MNIST: downloading {url} ...")
        try:
            _download(url, dest, sha256, timeout)
        except (OSError, http.client.HTTPException) as err:  # URLError, timeouts, refused ...
            reason = f"download failed ({getattr(err, 'reason', None) or err})"
        else:
            train, test = _read_full(dest)
            return done(train, test, "download", dest,
                        f"MNIST: downloaded full dataset to {dest} (60,000 train / 10,000 test)")

    # 3. the bundled real subset
    if not BUNDLED_PATH.is_file():
        raise FileNotFoundError(
            f"no MNIST available: {reason or 'no cache'}, and the bundled subset "
            f"{BUNDLED_PATH} is missing"
        )
    _check_sha256(BUNDLED_PATH, BUNDLED_SHA256, "MNIST subset")
    return done(
        *_split_subset(BUNDLED_PATH, test_size, seed), "bundled", BUNDLED_PATH,
        f"MNIST: bundled real subset data/mnist_subset.npz ({10000 - test_size:,} train / "
        f"{test_size:,} test; {reason or 'no full MNIST cached'}). "
        "The full 60,000 / 10,000 set loads when a network is available.",
    )


def _split_subset(path, test_size, seed):
    images, labels = _read_bundled(path)
    if len(labels) <= test_size:
        raise ValueError(
            f"test_size must be smaller than the {len(labels)} images in {path}, got {test_size}"
        )
    tr, te = _stratified_split(labels, test_size, seed)
    return (images[tr], labels[tr]), (images[te], labels[te])


def _bundled_arrays():
    """Images (10000, 28, 28) uint8 and labels (10000,) uint8 of the verified bundled subset."""
    _check_sha256(BUNDLED_PATH, BUNDLED_SHA256, "MNIST subset")
    return _read_bundled(BUNDLED_PATH)


# --------------------------------------------------------------------------- digits


def load_digits(scale: bool = True):
    """scikit-learn's 8 x 8 handwritten digits (bundled with scikit-learn, offline).

    Returns ``(images, labels)``: images ``(1797, 8, 8)`` float32 -- in [0, 1]
    (the original 0-16 gray levels divided by 16) when ``scale``, else 0-16 --
    and labels ``(1797,)`` int64 in 0-9.
    """
    from sklearn.datasets import load_digits as _load

    d = _load()
    images = d.images.astype(np.float32)
    if scale:
        images /= 16.0
    return images, d.target.astype(np.int64)


# --------------------------------------------------------------------------- synthetic sets


_SHAPES = ("circle", "rectangle", "triangle")


def make_shapes_dataset(
    n: int,
    size: int = 64,
    seed: int = 0,
    *,
    max_shapes: int = 3,
    noise: float = 0.05,
    shapes=_SHAPES,
):
    """Images of shapes on a noisy background, with their masks (for U-Net segmentation).

    Each image has a uniform background level in [0.0, 0.35], 1 to
    ``max_shapes`` shapes (circles, rectangles, triangles; each with its own
    level in [0.6, 1.0], later ones drawn over earlier ones), then Gaussian
    noise of std ``noise``, clipped to [0, 1]. With ``noise=0`` a pixel is
    foreground exactly when it differs from the background level.

    Returns ``(images, masks)``:

    - images ``(n, size, size, 1)`` float32 in [0, 1], channels-last;
    - masks ``(n, size, size, 1)`` uint8, 1 = shape (foreground), 0 = background.

    Deterministic: the same ``seed`` gives the same arrays
    (``np.random.default_rng(seed)``).
    """
    from skimage import draw

    n = positive_int(n, "n")
    size = positive_int(size, "size")
    if size < 8:
        raise ValueError(f"size must be >= 8 pixels, got {size}")
    seed = non_negative_int(seed, "seed")
    max_shapes = positive_int(max_shapes, "max_shapes")
    if not isinstance(noise, (int, float)) or isinstance(noise, bool) or noise < 0:
        raise ValueError(f"noise must be a number >= 0, got {noise!r}")
    shapes = tuple(shapes)
    bad = [s for s in shapes if s not in _SHAPES]
    if not shapes or bad:
        raise ValueError(f"shapes must be a non-empty subset of {_SHAPES}, got {shapes!r}")

    rng = np.random.default_rng(seed)
    images = np.empty((n, size, size, 1), np.float32)
    masks = np.zeros((n, size, size, 1), np.uint8)
    for i in range(n):
        img = np.full((size, size), rng.uniform(0.0, 0.35), np.float64)
        mask = masks[i, :, :, 0]
        for _ in range(rng.integers(1, max_shapes + 1)):
            kind = shapes[rng.integers(len(shapes))]
            level = rng.uniform(0.6, 1.0)
            cy, cx = rng.uniform(0.15, 0.85, size=2) * size
            r = rng.uniform(0.08, 0.22) * size
            if kind == "circle":
                rr, cc = draw.disk((cy, cx), r, shape=(size, size))
            elif kind == "rectangle":
                h, w = rng.uniform(0.7, 1.3, size=2) * r
                rr, cc = draw.rectangle(
                    (max(0, int(cy - h)), max(0, int(cx - w))),
                    (min(size - 1, int(cy + h)), min(size - 1, int(cx + w))),
                )
            else:
                angles = rng.uniform(0, 2 * np.pi) + np.array([0, 2, 4]) * np.pi / 3
                rr, cc = draw.polygon(cy + 1.2 * r * np.sin(angles), cx + 1.2 * r * np.cos(angles),
                                      shape=(size, size))
            if len(rr) == 0:  # pragma: no cover - radius >= 0.08 * size always covers pixels
                continue
            img[rr, cc] = level
            mask[rr, cc] = 1
        if noise:
            img = img + rng.normal(0.0, noise, img.shape)
        images[i, :, :, 0] = np.clip(img, 0.0, 1.0)
    return images, masks


def make_localization_dataset(
    n: int,
    canvas: int = 64,
    seed: int = 0,
    *,
    scale=(0.8, 1.6),
    noise: float = 0.0,
):
    """Real MNIST digits placed at random positions and scales on a blank canvas.

    Each sample takes a digit from the bundled subset (``data/mnist_subset.npz``),
    crops it to its ink, resizes it by a random factor in ``scale`` (anti-aliased,
    scikit-image; capped to fit the canvas) and pastes it at a random position.
    Optional Gaussian background noise of std ``noise`` is added *after* the
    boxes are computed (then clipped to [0, 1]).

    Returns ``(images, labels, boxes)``:

    - images ``(n, canvas, canvas, 1)`` float32 in [0, 1], channels-last;
    - labels ``(n,)`` int64, the digit 0-9;
    - boxes ``(n, 4)`` float32 ``(y_min, x_min, y_max, x_max)`` normalised to
      [0, 1] by ``canvas``, pixel-edge convention: the tight box of the digit's
      nonzero pixels, rows ``r0..r1`` -> ``y_min = r0 / canvas``,
      ``y_max = (r1 + 1) / canvas`` (same for columns).

    Deterministic for a given ``seed``.
    """
    from skimage.transform import resize

    n = positive_int(n, "n")
    canvas = positive_int(canvas, "canvas")
    if canvas < 16:
        raise ValueError(f"canvas must be >= 16 pixels, got {canvas}")
    seed = non_negative_int(seed, "seed")
    try:
        lo, hi = (float(s) for s in scale)
    except (TypeError, ValueError):
        raise TypeError(f"scale must be a pair (min, max) of numbers, got {scale!r}") from None
    if not 0 < lo <= hi:
        raise ValueError(f"scale must satisfy 0 < min <= max, got {scale!r}")
    if not isinstance(noise, (int, float)) or isinstance(noise, bool) or noise < 0:
        raise ValueError(f"noise must be a number >= 0, got {noise!r}")

    digits, digit_labels = _bundled_arrays()
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(digits), size=n, replace=n > len(digits))
    images = np.zeros((n, canvas, canvas, 1), np.float32)
    boxes = np.empty((n, 4), np.float32)
    for i, k in enumerate(pick):
        digit = digits[k].astype(np.float64) / 255.0
        rows, cols = np.flatnonzero(digit.any(1)), np.flatnonzero(digit.any(0))
        digit = digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        s = min(rng.uniform(lo, hi), canvas / max(digit.shape))
        h, w = (max(1, min(canvas, round(d * s))) for d in digit.shape)
        patch = resize(
            digit, (h, w), order=1, anti_aliasing=s < 1, preserve_range=True, mode="constant"
        )
        patch = np.clip(patch, 0.0, 1.0)
        patch[patch < 1.0 / 255.0] = 0.0
        top = rng.integers(0, canvas - h + 1)
        left = rng.integers(0, canvas - w + 1)
        images[i, top : top + h, left : left + w, 0] = patch
        rr, cc = np.flatnonzero(patch.any(1)), np.flatnonzero(patch.any(0))
        boxes[i] = (top + rr[0], left + cc[0], top + rr[-1] + 1, left + cc[-1] + 1)
    boxes /= canvas
    if noise:
        images = np.clip(images + rng.normal(0.0, noise, images.shape), 0.0, 1.0).astype(np.float32)
    return images, digit_labels[pick].astype(np.int64), boxes


# --------------------------------------------------------------------------- boxes


def iou(box_a, box_b):
    """Intersection over union of boxes ``(y_min, x_min, y_max, x_max)``.

    ``box_a`` and ``box_b`` are array-likes whose last axis has length 4; the
    leading axes broadcast (``(N, 4)`` vs ``(N, 4)`` gives ``(N,)``; ``(N, 1, 4)``
    vs ``(1, M, 4)`` gives the ``(N, M)`` matrix). Any units work as long as both
    use the same. Boxes with ``max < min`` raise ``ValueError``; if the union is
    empty (two zero-area boxes) the IoU is 0. Returns float64 (a Python float
    for two single boxes).
    """
    a = np.asarray(box_a, dtype=np.float64)
    b = np.asarray(box_b, dtype=np.float64)
    for arr, name in ((a, "box_a"), (b, "box_b")):
        if arr.ndim == 0 or arr.shape[-1] != 4:
            raise ValueError(
                f"{name} must have a last axis of length 4 (y_min, x_min, y_max, x_max), "
                f"got shape {arr.shape}"
            )
        if np.any(arr[..., 2] < arr[..., 0]) or np.any(arr[..., 3] < arr[..., 1]):
            raise ValueError(f"{name} must have y_max >= y_min and x_max >= x_min")
    inter_h = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    inter_w = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = inter_h * inter_w
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    out = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return float(out) if out.ndim == 0 else out
