"""Shared helpers for the CNN course: every notebook imports this one package.

``import utils`` loads NumPy only. Submodules are imported on first use
(``utils.conv``, ``utils.viz`` ...), and TensorFlow and PyTorch are imported
inside the functions that need them, so a notebook that never touches a
framework never pays for one.

Modules (one concept each):

- ``shapes``:  output sizes, padding, receptive fields, parameter counts.
- ``conv``:    reference NumPy convolution and pooling, forward and backward.
- ``filters``: hand-made kernels (edges, Sobel, Laplacian, blur, Gaussian ...).
- ``images``:  offline sample images and image/array conversions.
- ``data``:    MNIST (cache, download, bundled subset), digits, synthetic sets.
- ``device``:  CUDA or CPU for PyTorch and TensorFlow, seeding, quiet logs.
- ``viz``:     image grids, kernels, feature maps, curves, boxes, masks.
- ``grading``: the checks students and the autograder share.
- ``models``:  classic architectures (LeNet-5 ... ResNet, U-Net) in PyTorch and Keras.
- ``training``: batched prediction, accuracy and its Wilson interval, Dice and IoU of masks, the Dice loss.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("shapes", "conv", "filters", "images", "data", "device", "viz", "grading", "models", "training")

__all__ = list(_SUBMODULES)


def __getattr__(name: str):
    # PEP 562: import submodules lazily so ``import utils`` stays light.
    if name in _SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
