"""Offline sample images and image <-> array conversions.

Conventions:

- An *image array* is channels-last: ``(H, W)`` grayscale, ``(H, W, 1)``
  grayscale with a channel axis, ``(H, W, 3)`` RGB, or ``(H, W, 4)`` RGBA.
- uint8 arrays hold 0-255; float arrays hold [0, 1] (what ``normalize(...,
  'unit')`` gives). Functions keep the kind they were given (uint8 in, uint8 out;
  float in, float out) unless their docstring says otherwise.

Every sample image ships inside an installed wheel (scikit-image's
``skimage/data`` and scikit-learn's ``sklearn/datasets/images``): nothing is
downloaded. At module level this imports NumPy and the standard library only;
Pillow, scikit-image and scikit-learn are imported inside the functions.
"""

from __future__ import annotations

import numbers
import pathlib

import numpy as np

from ._validate import non_negative_int, positive_int

__all__ = [
    "LUMA_WEIGHTS",
    "sample_image",
    "sample_image_names",
    "lfw_faces",
    "to_array",
    "to_image",
    "to_grayscale",
    "normalize",
    "resize",
    "center_crop",
    "patch",
]

#: ITU-R BT.601 luma weights for R, G, B (the ones Pillow's ``convert('L')`` uses).
LUMA_WEIGHTS = (0.299, 0.587, 0.114)

# name -> (library, loader name, shape, description)
_SAMPLES = {
    "camera": ("skimage", "camera", "(512, 512) grayscale: the cameraman"),
    "astronaut": ("skimage", "astronaut", "(512, 512, 3) RGB: astronaut Eileen Collins"),
    "coins": ("skimage", "coins", "(303, 384) grayscale: Greek coins"),
    "coffee": ("skimage", "coffee", "(400, 600, 3) RGB: a cup of coffee"),
    "china": ("sklearn", "china.jpg", "(427, 640, 3) RGB: a Chinese temple"),
    "flower": ("sklearn", "flower.jpg", "(427, 640, 3) RGB: a flower"),
}


def sample_image_names() -> tuple[str, ...]:
    """Names accepted by ``sample_image``: camera, astronaut, coins, coffee, china, flower."""
    return tuple(_SAMPLES)


def sample_image(name: str) -> np.ndarray:
    """A sample photo as a uint8 array, loaded offline from an installed wheel.

    ============  =================  ====================================
    name          shape              source
    ============  =================  ====================================
    'camera'      (512, 512)         ``skimage.data.camera()``
    'astronaut'   (512, 512, 3)      ``skimage.data.astronaut()``
    'coins'       (303, 384)         ``skimage.data.coins()``
    'coffee'      (400, 600, 3)      ``skimage.data.coffee()``
    'china'       (427, 640, 3)      ``sklearn.datasets.load_sample_image('china.jpg')``
    'flower'      (427, 640, 3)      ``sklearn.datasets.load_sample_image('flower.jpg')``
    ============  =================  ====================================

    Returns a new uint8 array, ``(H, W)`` grayscale or ``(H, W, 3)`` RGB
    (channels-last), values 0-255. Each call returns a fresh copy.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    key = name.strip().lower()
    if key not in _SAMPLES:
        raise ValueError(f"name must be one of {', '.join(_SAMPLES)}; got {name!r}")
    lib, loader, _ = _SAMPLES[key]
    if lib == "skimage":
        from skimage import data as skdata

        image = getattr(skdata, loader)()
    else:
        from sklearn.datasets import load_sample_image

        image = load_sample_image(loader)
    return np.array(image, dtype=np.uint8, copy=True)


def lfw_faces(include_non_faces: bool = False):
    """Small face crops from Labeled Faces in the Wild (``skimage.data.lfw_subset()``, offline).

    The scikit-image subset holds 100 faces and 100 non-faces (background crops
    of the same photos), each 25 x 25 grayscale.

    - ``include_non_faces=False`` (default): returns the faces only, an array
      ``(100, 25, 25)`` float32 in [0, 1].
    - ``include_non_faces=True``: returns ``(images, is_face)`` with images
      ``(200, 25, 25)`` float32 in [0, 1] (faces first) and ``is_face`` ``(200,)``
      uint8 (1 = face, 0 = non-face) -- a ready-made binary classification set.
    """
    from skimage import data as skdata

    images = np.asarray(skdata.lfw_subset(), dtype=np.float64)
    if images.max() > 1.0:  # older scikit-image versions return 0-255
        images = images / 255.0
    images = images.astype(np.float32)
    if not include_non_faces:
        return images[:100].copy()
    labels = np.zeros(len(images), np.uint8)
    labels[:100] = 1
    return images, labels


# --------------------------------------------------------------------------- conversions


def _image_array(image, name: str = "image") -> np.ndarray:
    """Check an image array: 2-D, or 3-D with 1, 3 or 4 channels last; numeric."""
    x = np.asarray(image)
    if x.dtype == np.bool_:
        x = x.astype(np.uint8)
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
    if x.ndim == 2 or (x.ndim == 3 and x.shape[2] in (1, 3, 4)):
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"{name} must not be empty, got shape {x.shape}")
        return x
    raise ValueError(
        f"{name} must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) channels-last, "
        f"got shape {x.shape}"
    )


def to_array(pil_image) -> np.ndarray:
    """A PIL image (or a path to an image file) as a NumPy array, channels-last.

    Mode 'L' gives ``(H, W)`` uint8, 'RGB' ``(H, W, 3)`` uint8, 'RGBA'
    ``(H, W, 4)`` uint8, 'I;16' uint16, 'F' float32; '1' becomes 'L' (0/255),
    'P' (palette) becomes 'RGB' (or 'RGBA' if it has transparency).
    Returns a new, writable array.
    """
    from PIL import Image

    if isinstance(pil_image, (str, pathlib.Path)):
        with Image.open(pil_image) as im:
            im.load()
            return to_array(im.copy())
    if not isinstance(pil_image, Image.Image):
        raise TypeError(
            f"pil_image must be a PIL.Image.Image or a file path, got {type(pil_image).__name__}"
        )
    im = pil_image
    if im.mode == "1":
        im = im.convert("L")
    elif im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    return np.array(im, copy=True)


def to_image(array):
    """A NumPy image array as a PIL image.

    ``array``: ``(H, W)`` or ``(H, W, 1)`` -> mode 'L'; ``(H, W, 3)`` -> 'RGB';
    ``(H, W, 4)`` -> 'RGBA'. uint8 is used as is; float must lie in [0, 1]
    and is scaled by 255 and rounded; bool becomes 0/255. Other integer types
    must lie in 0-255. (Tensors: call ``.numpy()`` / move channels last first.)
    """
    from PIL import Image

    x = _image_array(array, "array")
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[:, :, 0]
    if np.issubdtype(x.dtype, np.floating):
        if not np.all(np.isfinite(x)):
            raise ValueError("array must be finite (found NaN or inf)")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"a float array must lie in [0, 1], got min {lo:.4g} max {hi:.4g}; "
                "use normalize(array, 'minmax') first, or pass uint8 0-255"
            )
        x = np.round(x * 255.0).astype(np.uint8)
    elif x.dtype != np.uint8:
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi > 255:
            raise ValueError(f"an integer array must lie in 0-255, got min {lo} max {hi}")
        x = x.astype(np.uint8)
    # uint8 (H, W) -> 'L', (H, W, 3) -> 'RGB', (H, W, 4) -> 'RGBA'
    return Image.fromarray(np.ascontiguousarray(x))


def to_grayscale(image, keepdims: bool = False) -> np.ndarray:
    """Luma of an RGB image: ``0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601, as Pillow's 'L').

    ``image``: ``(H, W)`` (returned as a copy), ``(H, W, 1)``, ``(H, W, 3)`` or
    ``(H, W, 4)`` (alpha ignored), channels-last. Returns ``(H, W)``, or
    ``(H, W, 1)`` if ``keepdims``. uint8 in -> uint8 out (rounded); float in ->
    the same float dtype. A pixel whose R, G and B are equal keeps its value
    exactly (a gray RGB image converts to itself).
    """
    x = _image_array(image)
    if x.ndim == 3 and x.shape[2] == 1:
        gray = x[:, :, 0].copy()
    elif x.ndim == 2:
        gray = x.copy()
    else:
        r, g, b = (x[:, :, i] for i in range(3))
        w = LUMA_WEIGHTS
        out_dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
        luma = w[0] * r.astype(out_dtype) + w[1] * g.astype(out_dtype) + w[2] * b.astype(out_dtype)
        if not np.issubdtype(x.dtype, np.floating):
            info = np.iinfo(x.dtype)
            luma = np.clip(np.round(luma), info.min, info.max)
        gray = luma.astype(x.dtype)
        same = (r == g) & (g == b)
        gray[same] = r[same]
    return gray[:, :, None] if keepdims else gray


def normalize(image, mode: str = "unit") -> np.ndarray:
    """Rescale pixel values; returns float32, same shape.

    - ``'unit'``: integer images divided by their type's maximum (uint8 / 255,
      uint16 / 65535) into [0, 1]; bool to 0/1; float images must already lie
      in [0, 1] (else ``ValueError``: use 'minmax').
    - ``'minmax'``: ``(x - min) / (max - min)`` over the whole array, into [0, 1]
      (a constant image gives zeros).
    - ``'standard'``: ``(x - mean) / std`` over the whole array: mean 0, std 1
      (a constant image gives zeros).
    """
    x = np.asarray(image)
    is_bool = x.dtype == np.bool_
    if is_bool:
        x = x.astype(np.uint8)
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise TypeError(f"image must hold real numbers, got dtype {x.dtype}")
    if x.size == 0:
        raise ValueError("image must not be empty")
    modes = ("unit", "minmax", "standard")
    if mode not in modes:
        raise ValueError(f"mode must be one of {modes}, got {mode!r}")
    if mode == "unit":
        if np.issubdtype(x.dtype, np.integer):
            if np.issubdtype(x.dtype, np.signedinteger) and x.min() < 0:
                raise ValueError(
                    "image with negative integers cannot use mode 'unit'; use 'minmax'"
                )
            top = 1 if is_bool else np.iinfo(x.dtype).max
            return (x.astype(np.float64) / top).astype(np.float32)
        lo, hi = float(np.min(x)), float(np.max(x))
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                "a float image must already lie in [0, 1] for mode 'unit' "
                f"(got min {lo:.4g} max {hi:.4g}); use mode='minmax'"
            )
        return x.astype(np.float32)
    xf = x.astype(np.float64)
    if mode == "minmax":
        lo, span = xf.min(), xf.max() - xf.min()
        out = (xf - lo) / span if span > 0 else np.zeros_like(xf)
    else:
        std = xf.std()
        out = (xf - xf.mean()) / std if std > 0 else np.zeros_like(xf)
    return out.astype(np.float32)


def resize(image, shape) -> np.ndarray:
    """Resize to ``shape = (height, width)`` with scikit-image (bilinear, anti-aliased).

    ``image``: ``(H, W)`` or ``(H, W, C)`` channels-last; channels are kept.
    When shrinking, a Gaussian pre-filter removes aliasing
    (``anti_aliasing=True``). Values keep their range and kind: uint8 in ->
    uint8 out (rounded, 0-255); float in -> the same float dtype, no
    rescaling (bilinear interpolation stays within the input's min and max).
    """
    from skimage.transform import resize as _resize

    x = _image_array(image)
    if isinstance(shape, numbers.Integral) or not hasattr(shape, "__len__") or len(shape) != 2:
        raise ValueError(f"shape must be a pair (height, width), got {shape!r}")
    h, w = positive_int(shape[0], "shape[0] (height)"), positive_int(shape[1], "shape[1] (width)")
    shrinking = h < x.shape[0] or w < x.shape[1]
    out = _resize(
        x.astype(np.float64),
        (h, w) + x.shape[2:],
        order=1,
        mode="reflect",
        anti_aliasing=shrinking,
        preserve_range=True,
    )
    if np.issubdtype(x.dtype, np.floating):
        return np.clip(out, x.min(), x.max()).astype(x.dtype)
    info = np.iinfo(x.dtype)
    return np.clip(np.round(out), info.min, info.max).astype(x.dtype)


def _size_pair(size, name="size"):
    if isinstance(size, (tuple, list)):
        if len(size) != 2:
            raise ValueError(f"{name} must be an int or a pair (height, width), got {size!r}")
        return (
            positive_int(size[0], f"{name}[0] (height)"),
            positive_int(size[1], f"{name}[1] (width)"),
        )
    s = positive_int(size, name)
    return s, s


def center_crop(image, size) -> np.ndarray:
    """The central ``size`` x ``size`` (or ``(height, width)``) region, as a copy.

    ``image``: ``(H, W)`` or ``(H, W, C)``. When the margin is odd the extra
    pixel is dropped at the bottom/right (top = ``(H - height) // 2``).
    Raises ``ValueError`` if the crop is larger than the image.
    """
    x = _image_array(image)
    h, w = _size_pair(size)
    if h > x.shape[0] or w > x.shape[1]:
        raise ValueError(f"size {(h, w)} must fit inside the image of height, width {x.shape[:2]}")
    top, left = (x.shape[0] - h) // 2, (x.shape[1] - w) // 2
    return x[top : top + h, left : left + w].copy()


def patch(image, top: int, left: int, size) -> np.ndarray:
    """The ``size`` x ``size`` (or ``(height, width)``) region with top-left pixel ``(top, left)``.

    ``image``: ``(H, W)`` or ``(H, W, C)``; returns a copy ``image[top:top+h, left:left+w]``.
    Raises ``ValueError`` if the patch does not lie fully inside the image.
    """
    x = _image_array(image)
    top, left = non_negative_int(top, "top"), non_negative_int(left, "left")
    h, w = _size_pair(size)
    if top + h > x.shape[0] or left + w > x.shape[1]:
        raise ValueError(
            f"patch rows {top}..{top + h - 1}, columns {left}..{left + w - 1} must lie inside the "
            f"image of height, width {x.shape[:2]}"
        )
    return x[top : top + h, left : left + w].copy()
