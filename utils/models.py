"""Classic CNN architectures, built the same way in PyTorch and in Keras.

One builder per architecture; every builder takes the architecture's own
arguments plus the keyword-only ``framework``, ``"torch"`` (the default;
``"pytorch"`` also works) or ``"keras"``, and returns a fresh, untrained model::

    import utils.models as models
    net = models.lenet5(framework="torch")    # torch.nn.Module, NCHW: (N, 1, 32, 32) -> (N, 10)
    net = models.lenet5(framework="keras")    # keras.Model,     NHWC: (N, 32, 32, 1) -> (N, 10)

The two frameworks get the same layers, in the same order, with the same
parameter counts (checked by ``tests/test_models.py``). Layouts:

* **PyTorch**: activations NCHW ``(N, C, H, W)``, conv weights OIHW.
  Counting: ``sum(p.numel() for p in model.parameters())``; batch-norm running
  statistics are *buffers*, not parameters.
* **Keras**: activations NHWC ``(N, H, W, C)``, conv kernels HWIO. Every model
  starts from a ``keras.Input`` (so ``model.count_params()`` works at once);
  ``count_params()`` includes batch norm's moving mean and variance as
  *non-trainable* weights (``4C`` per batch norm instead of PyTorch's ``2C``).

:func:`count_params` counts either kind of model (``trainable_only=True`` for
the count PyTorch reports) and :func:`summary` lists a model's layers with their
output shapes and parameters.

Builders (reference counts for the default arguments):

=========================== ============================================ ===============
builder                      what                                          parameters
=========================== ============================================ ===============
``lenet5``                   LeNet-5, 1x32x32 input, 10 classes            61,706
``alexnet``                  AlexNet, 3x224x224, 1000 classes: single       61,100,840
                             stream (torchvision's); ``variant="paper"``:   60,965,224
                             the 2012 two-GPU network (grouped convs)
``vgg_block``                ``num_convs`` x (3x3 conv + ReLU), 2x2 pool    (depends)
``vgg16``                    VGG-16 (configuration D), 3x224x224            138,357,544
``inception_block``          GoogLeNet's inception module (default: 3a,     163,696
                             192 -> 64 + 128 + 32 + 32 = 256 channels)
``resnet_basic_block``       two 3x3 convs with batch norm + shortcut       (depends)
``resnet_bottleneck_block``  1x1 -> 3x3 -> 1x1 (x4 channels) + shortcut     (depends)
``resnet``                   ResNet-18/34/50/101/152 (``depth``)            ResNet-50:
                                                                           25,557,032
``unet``                     the course's U-Net, 16-32-64-128-256           1,940,817
                             filters, dropout, sigmoid output               (1 channel in)
=========================== ============================================ ===============

Large models can be counted without allocating their weights on PyTorch's
meta device: ``with torch.device("meta"): net = resnet(50)`` (the parameters
then have shapes but no storage; :func:`summary` runs its forward pass on meta
tensors too).

Bad arguments raise ``ValueError`` / ``TypeError`` naming the argument. At
module level this imports NumPy and the standard library only; PyTorch and
Keras are imported inside the builders.
"""

from __future__ import annotations

import functools
import math
import numbers
import sys
from collections import OrderedDict
from dataclasses import dataclass

from ._validate import positive_int
from .shapes import _RowTable, _text_table

__all__ = [
    "FRAMEWORKS",
    "RESNET_DEPTHS",
    "lenet5",
    "alexnet",
    "vgg_block",
    "vgg16",
    "inception_block",
    "resnet_basic_block",
    "resnet_bottleneck_block",
    "resnet",
    "unet",
    "count_params",
    "summary",
    "SummaryRow",
    "ModelSummary",
]

#: The values ``framework=`` accepts.
FRAMEWORKS = ("torch", "keras")

#: ResNet depth -> (block kind, blocks per stage), He et al. (2016), table 1.
RESNET_DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}

#: VGG-16 (configuration D of Simonyan & Zisserman): (filters, convs) per block.
VGG16_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))

_BN_EPSILON = 1e-5  # PyTorch's default; Keras' default is 1e-3
_BN_MOMENTUM = 0.9  # Keras' convention for PyTorch's momentum=0.1


# ---------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------


def _check_framework(framework) -> str:
    if not isinstance(framework, str):
        raise TypeError(f"framework must be 'torch' or 'keras', got {type(framework).__name__} {framework!r}")
    word = framework.lower()
    if word in ("pytorch",):
        word = "torch"
    if word not in FRAMEWORKS:
        raise ValueError(f"framework must be 'torch' or 'keras', got {framework!r}")
    return word


def _check_choice(value, name: str, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}, got {value!r}")
    return value


def _check_rate(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in [0, 1), got {type(value).__name__} {value!r}")
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return float(value)


def _check_bool(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value


# ---------------------------------------------------------------------------
# Keras helpers
# ---------------------------------------------------------------------------


def _keras():
    """Import Keras, silencing TensorFlow's start-up logs first (see utils.device)."""
    if "tensorflow" not in sys.modules:
        from .device import quiet_tensorflow

        quiet_tensorflow()
    import keras

    return keras


def _keras_name(prefix: str) -> str:
    """A model name unique in this Keras session: ``prefix``, then ``prefix_2`` ..."""
    keras = _keras()
    uid = keras.backend.get_uid(prefix)
    return prefix if uid == 1 else f"{prefix}_{uid}"


def _keras_he_fan_out():
    # torchvision's ResNet initialisation: kaiming_normal_(mode="fan_out", nonlinearity="relu")
    keras = _keras()
    return keras.initializers.VarianceScaling(2.0, mode="fan_out", distribution="untruncated_normal")


def _keras_bn(name: str):
    keras = _keras()
    return keras.layers.BatchNormalization(momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name=name)


def _keras_conv_bn(x, filters: int, kernel: int, stride: int, name: str, bn_name: str):
    """conv (no bias) + batch norm with PyTorch's padding ``kernel // 2`` on both sides.

    Stride 1: Keras' ``padding='same'`` pads ``k // 2`` on both sides (odd k).
    Stride 2: Keras' ``'same'`` would pad only bottom/right on even inputs, so pad
    explicitly, as PyTorch does, and use ``'valid'``.
    """
    keras = _keras()
    layers = keras.layers
    if stride == 1 or kernel == 1:
        padding = "same" if kernel > 1 else "valid"
    else:
        x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        padding = "valid"
    x = layers.Conv2D(filters, (kernel, kernel), strides=(stride, stride), padding=padding,
                      use_bias=False, kernel_initializer=_keras_he_fan_out(), name=name)(x)
    return _keras_bn(bn_name)(x)


# ---------------------------------------------------------------------------
# PyTorch classes (defined on first use, so that this module imports no torch)
# ---------------------------------------------------------------------------


@functools.cache
def _torch_classes():
    import torch
    from torch import nn

    def init_resnet_convs(module):
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    class InceptionBlock(nn.Module):
        """GoogLeNet's inception module: four parallel branches, concatenated on channels."""

        def __init__(self, in_channels, ch1x1, ch3x3_reduce, ch3x3, ch5x5_reduce, ch5x5, pool_proj):
            super().__init__()

            def conv_relu(c_in, c_out, k):
                return nn.Sequential(OrderedDict(conv=nn.Conv2d(c_in, c_out, k, padding=k // 2),
                                                 relu=nn.ReLU()))

            self.branch1 = conv_relu(in_channels, ch1x1, 1)
            self.branch2 = nn.Sequential(OrderedDict(reduce=conv_relu(in_channels, ch3x3_reduce, 1),
                                                     conv3x3=conv_relu(ch3x3_reduce, ch3x3, 3)))
            self.branch3 = nn.Sequential(OrderedDict(reduce=conv_relu(in_channels, ch5x5_reduce, 1),
                                                     conv5x5=conv_relu(ch5x5_reduce, ch5x5, 5)))
            self.branch4 = nn.Sequential(OrderedDict(pool=nn.MaxPool2d(3, stride=1, padding=1),
                                                     proj=conv_relu(in_channels, pool_proj, 1)))

        def forward(self, x):
            # (N, C, H, W) -> (N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W)
            return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], dim=1)

    class BasicBlock(nn.Module):
        """ResNet's basic block: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""

        def __init__(self, in_channels, out_channels, stride=1, skip=True):
            super().__init__()
            self.skip = skip
            self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(out_channels)
            self.relu = nn.ReLU()
            self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(out_channels)
            self.downsample = None
            if skip and (stride != 1 or in_channels != out_channels):
                self.downsample = nn.Sequential(
                    nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                    nn.BatchNorm2d(out_channels))
            init_resnet_convs(self)

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            if self.skip:
                out = out + (x if self.downsample is None else self.downsample(x))
            return self.relu(out)

        def extra_repr(self):
            return "" if self.skip else "skip=False"

    class Bottleneck(nn.Module):
        """ResNet's bottleneck block: 1x1 (reduce) -> 3x3 -> 1x1 (expand), plus the shortcut."""

        def __init__(self, in_channels, width, stride=1, expansion=4, skip=True):
            super().__init__()
            out_channels = width * expansion
            self.skip = skip
            self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(width)
            self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(out_channels)
            self.relu = nn.ReLU()
            self.downsample = None
            if skip and (stride != 1 or in_channels != out_channels):
                self.downsample = nn.Sequential(
                    nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                    nn.BatchNorm2d(out_channels))
            init_resnet_convs(self)

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            if self.skip:
                out = out + (x if self.downsample is None else self.downsample(x))
            return self.relu(out)

        def extra_repr(self):
            return "" if self.skip else "skip=False"

    class UNet(nn.Module):
        """The course's U-Net: contracting path, transposed-conv expanding path, skips."""

        def __init__(self, in_channels, out_channels, filters, dropout):
            super().__init__()

            def double_conv(c_in, c, p):
                return nn.Sequential(OrderedDict(
                    conv1=nn.Conv2d(c_in, c, 3, padding=1), relu1=nn.ReLU(), dropout=nn.Dropout(p),
                    conv2=nn.Conv2d(c, c, 3, padding=1), relu2=nn.ReLU()))

            f, p = filters, dropout
            self.pool = nn.MaxPool2d(2)
            self.enc1 = double_conv(in_channels, f[0], p[0])
            self.enc2 = double_conv(f[0], f[1], p[1])
            self.enc3 = double_conv(f[1], f[2], p[2])
            self.enc4 = double_conv(f[2], f[3], p[3])
            self.bottleneck = double_conv(f[3], f[4], p[4])
            self.up4 = nn.ConvTranspose2d(f[4], f[3], 2, stride=2)
            self.dec4 = double_conv(2 * f[3], f[3], p[3])
            self.up3 = nn.ConvTranspose2d(f[3], f[2], 2, stride=2)
            self.dec3 = double_conv(2 * f[2], f[2], p[2])
            self.up2 = nn.ConvTranspose2d(f[2], f[1], 2, stride=2)
            self.dec2 = double_conv(2 * f[1], f[1], p[1])
            self.up1 = nn.ConvTranspose2d(f[1], f[0], 2, stride=2)
            self.dec1 = double_conv(2 * f[0], f[0], p[0])
            self.head = nn.Conv2d(f[0], out_channels, 1)
            self.sigmoid = nn.Sigmoid()
            # Keras' "he_normal" (truncated normal, std sqrt(2 / fan_in)), zero biases
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                    # fan-in as Keras computes it: kernel[1] * kh * kw (for a transposed
                    # conv, whose weight is (in, out, kh, kw), that is its *output* channels)
                    fan_in = m.weight.shape[1] * m.weight.shape[2] * m.weight.shape[3]
                    std = math.sqrt(2.0 / fan_in) / 0.87962566103423978  # Keras' truncation factor
                    nn.init.trunc_normal_(m.weight, 0.0, std, -2 * std, 2 * std)
                    nn.init.zeros_(m.bias)
            nn.init.xavier_uniform_(self.head.weight)  # the sigmoid head: Keras' default, Glorot uniform

        def forward(self, x):
            e1 = self.enc1(x)                                           # (f0, H, W)
            e2 = self.enc2(self.pool(e1))                               # (f1, H/2, W/2)
            e3 = self.enc3(self.pool(e2))                               # (f2, H/4, W/4)
            e4 = self.enc4(self.pool(e3))                               # (f3, H/8, W/8)
            z = self.bottleneck(self.pool(e4))                          # (f4, H/16, W/16)
            d4 = self.dec4(torch.cat([self.up4(z), e4], dim=1))         # (f3, H/8, W/8)
            d3 = self.dec3(torch.cat([self.up3(d4), e3], dim=1))        # (f2, H/4, W/4)
            d2 = self.dec2(torch.cat([self.up2(d3), e2], dim=1))        # (f1, H/2, W/2)
            d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))        # (f0, H, W)
            return self.sigmoid(self.head(d1))                          # (out_channels, H, W)

    classes = {"InceptionBlock": InceptionBlock, "BasicBlock": BasicBlock,
               "Bottleneck": Bottleneck, "UNet": UNet}
    for name, cls in classes.items():
        cls.__qualname__ = name
    return classes


# ---------------------------------------------------------------------------
# LeNet-5
# ---------------------------------------------------------------------------


def lenet5(num_classes=10, *, in_channels=1, activation="relu", pooling="max", framework="torch"):
    """LeNet-5 (LeCun et al., 1998) for 32x32 images.

    conv 6@5x5 -> pool 2x2 -> conv 16@5x5 -> pool 2x2 -> flatten (400) -> dense 120
    -> dense 84 -> dense ``num_classes`` (scores, no softmax); ``activation``
    (``'relu'`` or ``'tanh'``) after both convs and the first two dense layers;
    ``pooling`` ``'max'`` or ``'avg'`` (the 1998 paper: tanh-like squashing and
    trainable average "subsampling"; its partial C3 connections are not reproduced).

    * torch: ``(N, in_channels, 32, 32)`` -> ``(N, num_classes)``
    * keras: ``(N, 32, 32, in_channels)`` -> ``(N, num_classes)``

    Parameters: ``(25 * in_channels + 1) * 6 + 2,416 + 48,120 + 10,164 + 85 * num_classes``,
    61,706 for one channel and 10 classes.
    """
    framework = _check_framework(framework)
    num_classes = positive_int(num_classes, "num_classes")
    in_channels = positive_int(in_channels, "in_channels")
    activation = _check_choice(activation, "activation", ("relu", "tanh"))
    pooling = _check_choice(pooling, "pooling", ("max", "avg"))
    if framework == "torch":
        from torch import nn

        act = nn.ReLU if activation == "relu" else nn.Tanh
        pool = nn.MaxPool2d if pooling == "max" else nn.AvgPool2d
        return nn.Sequential(OrderedDict(
            conv1=nn.Conv2d(in_channels, 6, 5), act1=act(), pool1=pool(2),      # (6, 28, 28) -> (6, 14, 14)
            conv2=nn.Conv2d(6, 16, 5), act2=act(), pool2=pool(2),               # (16, 10, 10) -> (16, 5, 5)
            flatten=nn.Flatten(),                                               # 400
            fc1=nn.Linear(400, 120), act3=act(),
            fc2=nn.Linear(120, 84), act4=act(),
            fc3=nn.Linear(84, num_classes),
        ))
    keras = _keras()
    layers = keras.layers
    pool = layers.MaxPooling2D if pooling == "max" else layers.AveragePooling2D
    return keras.Sequential([
        keras.Input((32, 32, in_channels)),
        layers.Conv2D(6, (5, 5), activation=activation, name="conv1"),
        pool((2, 2), name="pool1"),
        layers.Conv2D(16, (5, 5), activation=activation, name="conv2"),
        pool((2, 2), name="pool2"),
        layers.Flatten(name="flatten"),
        layers.Dense(120, activation=activation, name="fc1"),
        layers.Dense(84, activation=activation, name="fc2"),
        layers.Dense(num_classes, name="fc3"),
    ], name=_keras_name("lenet5"))


# ---------------------------------------------------------------------------
# AlexNet
# ---------------------------------------------------------------------------

# (filters, kernel, stride, padding, groups, pool after) per conv layer
_ALEXNET_CONVS = {
    "single": ((64, 11, 4, 2, 1, True), (192, 5, 1, 2, 1, True), (384, 3, 1, 1, 1, False),
               (256, 3, 1, 1, 1, False), (256, 3, 1, 1, 1, True)),
    "paper": ((96, 11, 4, 2, 1, True), (256, 5, 1, 2, 2, True), (384, 3, 1, 1, 1, False),
              (384, 3, 1, 1, 2, False), (256, 3, 1, 1, 2, True)),
}


def alexnet(num_classes=1000, *, in_channels=3, variant="single", dropout=0.5, framework="torch"):
    """AlexNet (Krizhevsky, Sutskever & Hinton, 2012) for 224x224 images.

    Five convs (ReLU; 3x3 max pooling with stride 2 after the 1st, 2nd and 5th),
    flatten ``256 * 6 * 6 = 9,216``, dropout, dense 4096, ReLU, dropout, dense 4096,
    ReLU, dense ``num_classes`` (scores). The first conv is 11x11 with stride 4 and
    padding 2: ``(224 + 4 - 11) // 4 + 1 = 55``.

    ``variant``:

    * ``'single'`` (default): the one-stream network of torchvision's
      ``alexnet`` (Krizhevsky, 2014), 64-192-384-256-256 filters,
      **61,100,840** parameters for 1000 classes. The PyTorch parameter names
      equal torchvision's (``features.0.weight`` ... ``classifier.6.bias``);
      torchvision's ``AdaptiveAvgPool2d((6, 6))``, the identity on 224x224
      inputs, is left out so that both frameworks build the same layers.
    * ``'paper'``: the 2012 network trained on two GPUs, 96-256-384-384-256
      filters with conv 2, 4 and 5 split in two groups (each half sees only the
      channels on its own GPU: ``groups=2``), **60,965,224** parameters; local
      response normalisation (no parameters) is left out.

    * torch: ``(N, in_channels, 224, 224)`` -> ``(N, num_classes)``
    * keras: ``(N, 224, 224, in_channels)`` -> ``(N, num_classes)``
    """
    framework = _check_framework(framework)
    num_classes = positive_int(num_classes, "num_classes")
    in_channels = positive_int(in_channels, "in_channels")
    variant = _check_choice(variant, "variant", tuple(_ALEXNET_CONVS))
    dropout = _check_rate(dropout, "dropout")
    convs = _ALEXNET_CONVS[variant]
    if framework == "torch":
        from torch import nn

        features, c_in = [], in_channels
        for filters, k, s, p, groups, pool in convs:
            features += [nn.Conv2d(c_in, filters, k, stride=s, padding=p, groups=groups), nn.ReLU()]
            if pool:
                features.append(nn.MaxPool2d(3, stride=2))
            c_in = filters
        classifier = [nn.Dropout(dropout), nn.Linear(c_in * 6 * 6, 4096), nn.ReLU(),
                      nn.Dropout(dropout), nn.Linear(4096, 4096), nn.ReLU(),
                      nn.Linear(4096, num_classes)]
        return nn.Sequential(OrderedDict(features=nn.Sequential(*features), flatten=nn.Flatten(),
                                         classifier=nn.Sequential(*classifier)))
    keras = _keras()
    layers = keras.layers
    model = [keras.Input((224, 224, in_channels))]
    for index, (filters, k, s, p, groups, pool) in enumerate(convs, start=1):
        if s == 1:
            padding = "same"  # k // 2 on both sides, as p
        else:
            model.append(layers.ZeroPadding2D(p, name=f"pad{index}"))
            padding = "valid"
        model.append(layers.Conv2D(filters, (k, k), strides=(s, s), padding=padding, groups=groups,
                                   activation="relu", name=f"conv{index}"))
        if pool:
            model.append(layers.MaxPooling2D((3, 3), strides=(2, 2), name=f"pool{index}"))
    model += [layers.Flatten(name="flatten"),
              layers.Dropout(dropout, name="dropout6"), layers.Dense(4096, activation="relu", name="fc6"),
              layers.Dropout(dropout, name="dropout7"), layers.Dense(4096, activation="relu", name="fc7"),
              layers.Dense(num_classes, name="fc8")]
    return keras.Sequential(model, name=_keras_name("alexnet" if variant == "single" else "alexnet_paper"))


# ---------------------------------------------------------------------------
# VGG
# ---------------------------------------------------------------------------


def vgg_block(in_channels, out_channels, num_convs, *, framework="torch"):
    """A VGG block: ``num_convs`` x (3x3 conv, padding 1, + ReLU), then 2x2 max pooling.

    * torch: ``(N, in_channels, H, W)`` -> ``(N, out_channels, H // 2, W // 2)`` (an ``nn.Sequential``)
    * keras: ``(N, H, W, in_channels)`` -> ``(N, H // 2, W // 2, out_channels)`` (a ``keras.Sequential``
      for any H, W)

    Parameters: ``(9 * in_channels + 1) * out_channels + (num_convs - 1) * (9 * out_channels + 1) * out_channels``.
    """
    framework = _check_framework(framework)
    in_channels = positive_int(in_channels, "in_channels")
    out_channels = positive_int(out_channels, "out_channels")
    num_convs = positive_int(num_convs, "num_convs")
    return _vgg_block(in_channels, out_channels, num_convs, framework, name=None)


def _vgg_block(in_channels, out_channels, num_convs, framework, name):
    if framework == "torch":
        from torch import nn

        layers = []
        for i in range(num_convs):
            layers += [nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1),
                       nn.ReLU()]
        layers.append(nn.MaxPool2d(2, stride=2))
        return nn.Sequential(*layers)
    keras = _keras()
    block = [keras.Input((None, None, in_channels))]
    block += [keras.layers.Conv2D(out_channels, (3, 3), padding="same", activation="relu", name=f"conv{i + 1}")
              for i in range(num_convs)]
    block.append(keras.layers.MaxPooling2D((2, 2), strides=(2, 2), name="pool"))
    return keras.Sequential(block, name=name or _keras_name("vgg_block"))


def vgg16(num_classes=1000, *, in_channels=3, dropout=0.5, framework="torch"):
    """VGG-16 (Simonyan & Zisserman, 2014, configuration D) for 224x224 images.

    Five :func:`vgg_block` s, 64-128-256-512-512 filters with 2, 2, 3, 3, 3 convs
    (13 convs), then flatten ``512 * 7 * 7 = 25,088``, dense 4096, ReLU, dropout,
    dense 4096, ReLU, dropout, dense ``num_classes`` (scores). **138,357,544**
    parameters for 3 channels and 1000 classes.

    * torch: ``(N, in_channels, 224, 224)`` -> ``(N, num_classes)``; children
      ``block1`` ... ``block5``, ``flatten``, ``fc6`` ... ``fc8``.
    * keras: ``(N, 224, 224, in_channels)`` -> ``(N, num_classes)``; the blocks are
      nested ``keras.Sequential`` models named ``block1`` ... ``block5``.
    """
    framework = _check_framework(framework)
    num_classes = positive_int(num_classes, "num_classes")
    in_channels = positive_int(in_channels, "in_channels")
    dropout = _check_rate(dropout, "dropout")
    blocks, c_in = [], in_channels
    for index, (filters, convs) in enumerate(VGG16_BLOCKS, start=1):
        blocks.append((f"block{index}", _vgg_block(c_in, filters, convs, framework, name=f"block{index}")))
        c_in = filters
    if framework == "torch":
        from torch import nn

        return nn.Sequential(OrderedDict([
            *blocks, ("flatten", nn.Flatten()),
            ("fc6", nn.Linear(512 * 7 * 7, 4096)), ("relu6", nn.ReLU()), ("dropout6", nn.Dropout(dropout)),
            ("fc7", nn.Linear(4096, 4096)), ("relu7", nn.ReLU()), ("dropout7", nn.Dropout(dropout)),
            ("fc8", nn.Linear(4096, num_classes)),
        ]))
    keras = _keras()
    layers = keras.layers
    return keras.Sequential([
        keras.Input((224, 224, in_channels)), *(block for _, block in blocks),
        layers.Flatten(name="flatten"),
        layers.Dense(4096, activation="relu", name="fc6"), layers.Dropout(dropout, name="dropout6"),
        layers.Dense(4096, activation="relu", name="fc7"), layers.Dropout(dropout, name="dropout7"),
        layers.Dense(num_classes, name="fc8"),
    ], name=_keras_name("vgg16"))


# ---------------------------------------------------------------------------
# Inception
# ---------------------------------------------------------------------------


def inception_block(in_channels=192, ch1x1=64, ch3x3_reduce=96, ch3x3=128, ch5x5_reduce=16, ch5x5=32,
                    pool_proj=32, *, framework="torch"):
    """GoogLeNet's inception module (Szegedy et al., 2015), as in the paper: no batch norm.

    Four parallel branches on the same input, each conv with a bias and a ReLU,
    concatenated along the channels (in this order):

    1. 1x1 conv, ``ch1x1`` filters;
    2. 1x1 conv to ``ch3x3_reduce`` channels (the bottleneck), then 3x3 conv, ``ch3x3``;
    3. 1x1 conv to ``ch5x5_reduce`` channels, then 5x5 conv, ``ch5x5``;
    4. 3x3 max pooling (stride 1, padding 1), then 1x1 conv, ``pool_proj``.

    Every branch keeps H and W, so the output has
    ``ch1x1 + ch3x3 + ch5x5 + pool_proj`` channels. The defaults are module 3a:
    192 -> 64 + 128 + 32 + 32 = 256 channels, **163,696** parameters.

    * torch: ``(N, in_channels, H, W)`` -> ``(N, out, H, W)``; children ``branch1`` ... ``branch4``
    * keras: ``(N, H, W, in_channels)`` -> ``(N, H, W, out)`` (a functional model, any H, W)
    """
    framework = _check_framework(framework)
    names = ("in_channels", "ch1x1", "ch3x3_reduce", "ch3x3", "ch5x5_reduce", "ch5x5", "pool_proj")
    values = (in_channels, ch1x1, ch3x3_reduce, ch3x3, ch5x5_reduce, ch5x5, pool_proj)
    args = [positive_int(v, n) for v, n in zip(values, names)]
    if framework == "torch":
        return _torch_classes()["InceptionBlock"](*args)
    c_in, c1, c3r, c3, c5r, c5, cp = args
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input((None, None, c_in))

    def conv(x, filters, k, name):
        return layers.Conv2D(filters, (k, k), padding="same", activation="relu", name=name)(x)

    b1 = conv(inputs, c1, 1, "branch1_1x1")
    b2 = conv(conv(inputs, c3r, 1, "branch2_reduce"), c3, 3, "branch2_3x3")
    b3 = conv(conv(inputs, c5r, 1, "branch3_reduce"), c5, 5, "branch3_5x5")
    pooled = layers.MaxPooling2D((3, 3), strides=(1, 1), padding="same", name="branch4_pool")(inputs)
    b4 = conv(pooled, cp, 1, "branch4_proj")
    outputs = layers.Concatenate(axis=-1, name="concat")([b1, b2, b3, b4])
    return keras.Model(inputs, outputs, name=_keras_name("inception_block"))


# ---------------------------------------------------------------------------
# ResNet
# ---------------------------------------------------------------------------


def _check_block_args(in_channels, channels, stride, skip, channels_name):
    return (positive_int(in_channels, "in_channels"), positive_int(channels, channels_name),
            _check_stride(stride), _check_bool(skip, "skip"))


def _check_stride(stride):
    stride = positive_int(stride, "stride")
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride}")
    return stride


def resnet_basic_block(in_channels, out_channels, stride=1, *, skip=True, framework="torch"):
    """ResNet's basic block (He et al., 2016), used by ResNet-18 and -34.

    ``out = relu(F(x) + shortcut(x))`` with
    ``F(x) = bn2(conv2(relu(bn1(conv1(x)))))``: two 3x3 convs (padding 1, no
    bias: the batch norm's shift replaces it), ``conv1`` with the ``stride``.
    ``shortcut(x) = x`` when ``stride == 1`` and ``in_channels == out_channels``,
    else a projection: 1x1 conv with the stride (no bias) + batch norm.

    ``skip=False`` gives the *plain* block of the paper's baseline: the same
    convs and batch norms, ``out = relu(F(x))``, no shortcut at all.

    * torch: ``(N, in_channels, H, W)`` -> ``(N, out_channels, (H - 1) // stride + 1, (W - 1) // stride + 1)``;
      attribute names as torchvision's ``BasicBlock`` (``conv1``, ``bn1``, ``conv2``, ``bn2``, ``downsample``)
    * keras: ``(N, H, W, in_channels)`` -> ``(N, H', W', out_channels)`` (a functional model, any H, W)

    Trainable parameters: ``9 c_in c_out + 9 c_out^2 + 4 c_out`` (+ ``c_in c_out + 2 c_out``
    for a projection). Keras' ``count_params()`` adds ``2 c_out`` per batch norm
    (moving mean and variance, non-trainable). Convs are initialised as in
    torchvision (He normal, fan-out); batch norms use PyTorch's epsilon 1e-5
    and momentum 0.1 (Keras: ``momentum=0.9``) in both frameworks.
    """
    framework = _check_framework(framework)
    c_in, c_out, stride, skip = _check_block_args(in_channels, out_channels, stride, skip, "out_channels")
    if framework == "torch":
        return _torch_classes()["BasicBlock"](c_in, c_out, stride, skip)
    return _keras_basic_block(c_in, c_out, stride, skip, name=_keras_name("basic_block" if skip else "plain_block"))


def _keras_basic_block(c_in, c_out, stride, skip, name):
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input((None, None, c_in))
    x = _keras_conv_bn(inputs, c_out, 3, stride, "conv1", "bn1")
    x = layers.ReLU(name="relu1")(x)
    x = _keras_conv_bn(x, c_out, 3, 1, "conv2", "bn2")
    if skip:
        shortcut = inputs
        if stride != 1 or c_in != c_out:
            shortcut = _keras_conv_bn(inputs, c_out, 1, stride, "downsample_conv", "downsample_bn")
        x = layers.Add(name="add")([x, shortcut])
    outputs = layers.ReLU(name="relu2")(x)
    return keras.Model(inputs, outputs, name=name)


def resnet_bottleneck_block(in_channels, width, stride=1, *, expansion=4, skip=True, framework="torch"):
    """ResNet's bottleneck block (He et al., 2016), used by ResNet-50, -101 and -152.

    ``F(x)``: 1x1 conv ``in_channels -> width`` (reduce), BN, ReLU; 3x3 conv
    ``width -> width`` with the ``stride`` (padding 1), BN, ReLU; 1x1 conv
    ``width -> width * expansion`` (expand), BN. ``out = relu(F(x) + shortcut(x))``
    with the identity shortcut when ``stride == 1`` and
    ``in_channels == width * expansion``, else a 1x1 projection (stride, no bias) + BN.
    The stride sits on the 3x3 conv, as in torchvision ("ResNet v1.5"; the paper
    put it on the first 1x1 conv; the parameter count is the same).
    ``skip=False``: the plain block, no shortcut.

    * torch: ``(N, in_channels, H, W)`` -> ``(N, width * expansion, (H - 1) // stride + 1, ...)``;
      attribute names as torchvision's ``Bottleneck``
    * keras: ``(N, H, W, in_channels)`` -> ``(N, H', W', width * expansion)`` (functional, any H, W)

    Trainable parameters: ``c_in w + 9 w^2 + 4 w^2 + 2 (w + w + 4 w)``
    (+ ``4 w c_in + 8 w`` for a projection), with ``w = width``, ``expansion = 4``.
    """
    framework = _check_framework(framework)
    c_in, width, stride, skip = _check_block_args(in_channels, width, stride, skip, "width")
    expansion = positive_int(expansion, "expansion")
    if framework == "torch":
        return _torch_classes()["Bottleneck"](c_in, width, stride, expansion, skip)
    return _keras_bottleneck_block(c_in, width, stride, expansion, skip,
                                   name=_keras_name("bottleneck_block" if skip else "plain_bottleneck_block"))


def _keras_bottleneck_block(c_in, width, stride, expansion, skip, name):
    keras = _keras()
    layers = keras.layers
    c_out = width * expansion
    inputs = keras.Input((None, None, c_in))
    x = layers.ReLU(name="relu1")(_keras_conv_bn(inputs, width, 1, 1, "conv1", "bn1"))
    x = layers.ReLU(name="relu2")(_keras_conv_bn(x, width, 3, stride, "conv2", "bn2"))
    x = _keras_conv_bn(x, c_out, 1, 1, "conv3", "bn3")
    if skip:
        shortcut = inputs
        if stride != 1 or c_in != c_out:
            shortcut = _keras_conv_bn(inputs, c_out, 1, stride, "downsample_conv", "downsample_bn")
        x = layers.Add(name="add")([x, shortcut])
    outputs = layers.ReLU(name="relu3")(x)
    return keras.Model(inputs, outputs, name=name)


def resnet(depth=50, num_classes=1000, *, in_channels=3, framework="torch"):
    """ResNet-18, -34, -50, -101 or -152 (He et al., 2016; torchvision's layout).

    Stem: 7x7 conv, 64 filters, stride 2, padding 3 (no bias), BN, ReLU, 3x3 max
    pooling with stride 2 and padding 1 (224 -> 112 -> 56). Four stages of
    blocks (:func:`resnet_basic_block` for 18 and 34, :func:`resnet_bottleneck_block`
    for 50 and deeper; :data:`RESNET_DEPTHS` gives the blocks per stage) with
    64, 128, 256, 512 channels (x4 for bottlenecks); the first block of stages
    2-4 has stride 2 (56 -> 28 -> 14 -> 7). Global average pooling, dense
    ``num_classes`` (scores).

    Parameters for 3 channels and 1000 classes (PyTorch, all trainable):
    ResNet-18 11,689,512; ResNet-34 21,797,672; **ResNet-50 25,557,032**;
    ResNet-101 44,549,160; ResNet-152 60,192,808. Keras' ``count_params()``
    additionally counts each batch norm's moving mean and variance
    (non-trainable; 53,120 for ResNet-50): compare
    ``count_params(model, trainable_only=True)``.

    * torch: ``(N, in_channels, H, W)`` -> ``(N, num_classes)``; the children and
      parameter names equal torchvision's (``conv1``, ``bn1``, ``relu``, ``maxpool``,
      ``layer1`` ... ``layer4``, ``avgpool``, then ``flatten`` and ``fc``), so a
      torchvision state dict loads into it.
    * keras: ``(N, H, W, in_channels)`` -> ``(N, num_classes)`` (any H, W >= 32);
      each stage is a nested ``keras.Sequential`` (``layer1`` ...) of block models
      (``layer1.0`` ...). Max pooling follows a ReLU, so zero padding before it
      equals PyTorch's padding with minus infinity.
    """
    framework = _check_framework(framework)
    if isinstance(depth, bool) or not isinstance(depth, numbers.Integral):
        raise TypeError(f"depth must be an integer, one of {sorted(RESNET_DEPTHS)}, got {depth!r}")
    if depth not in RESNET_DEPTHS:
        raise ValueError(f"depth must be one of {sorted(RESNET_DEPTHS)}, got {depth}")
    num_classes = positive_int(num_classes, "num_classes")
    in_channels = positive_int(in_channels, "in_channels")
    kind, counts = RESNET_DEPTHS[int(depth)]
    expansion = 1 if kind == "basic" else 4

    # (stage name, [(block name, c_in, width, stride)])
    stages, c_in = [], 64
    for s, (width, n) in enumerate(zip((64, 128, 256, 512), counts), start=1):
        blocks = []
        for b in range(n):
            stride = 2 if (s > 1 and b == 0) else 1
            blocks.append((f"layer{s}.{b}", c_in, width, stride))
            c_in = width * expansion
        stages.append((f"layer{s}", blocks))

    if framework == "torch":
        from torch import nn

        classes = _torch_classes()
        children = [
            ("conv1", nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)),
            ("bn1", nn.BatchNorm2d(64)), ("relu", nn.ReLU()),
            ("maxpool", nn.MaxPool2d(3, stride=2, padding=1)),
        ]
        nn.init.kaiming_normal_(children[0][1].weight, mode="fan_out", nonlinearity="relu")
        for stage, blocks in stages:
            if kind == "basic":
                modules = [classes["BasicBlock"](ci, w, st) for _, ci, w, st in blocks]
            else:
                modules = [classes["Bottleneck"](ci, w, st) for _, ci, w, st in blocks]
            children.append((stage, nn.Sequential(*modules)))
        children += [("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()),
                     ("fc", nn.Linear(c_in, num_classes))]
        return nn.Sequential(OrderedDict(children))

    keras = _keras()
    layers = keras.layers
    inputs = keras.Input((None, None, in_channels))
    x = layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
    x = layers.Conv2D(64, (7, 7), strides=(2, 2), use_bias=False, kernel_initializer=_keras_he_fan_out(),
                      name="conv1")(x)
    x = layers.ReLU(name="relu")(_keras_bn("bn1")(x))
    x = layers.ZeroPadding2D(1, name="maxpool_pad")(x)
    x = layers.MaxPooling2D((3, 3), strides=(2, 2), name="maxpool")(x)
    for stage, blocks in stages:
        models = [keras.Input((None, None, blocks[0][1]))]
        for name, ci, w, st in blocks:
            if kind == "basic":
                models.append(_keras_basic_block(ci, w, st, True, name=name))
            else:
                models.append(_keras_bottleneck_block(ci, w, st, 4, True, name=name))
        x = keras.Sequential(models, name=stage)(x)
    x = layers.GlobalAveragePooling2D(name="avgpool")(x)
    outputs = layers.Dense(num_classes, name="fc")(x)
    return keras.Model(inputs, outputs, name=_keras_name(f"resnet{depth}"))


# ---------------------------------------------------------------------------
# U-Net
# ---------------------------------------------------------------------------


def unet(in_channels=1, out_channels=1, *, base=16, dropout=(0.1, 0.1, 0.2, 0.2, 0.3), framework="torch"):
    """The course's U-Net (after Ronneberger, Fischer & Brox, 2015), for H and W divisible by 16.

    Contracting path: five levels with ``base * (1, 2, 4, 8, 16)`` filters
    (16-32-64-128-256 by default); each level is conv 3x3 + ReLU, dropout
    (``dropout[level]``, default 0.1, 0.1, 0.2, 0.2, 0.3), conv 3x3 + ReLU
    (padding 'same'), and levels 1-4 end in 2x2 max pooling. Expanding path,
    levels 4 to 1: 2x2 transposed conv with stride 2 (doubles H and W, halves the
    channels), **concatenation with the contracting features of the same size**
    (upsampled first, then the skip), and the same conv-dropout-conv unit. Head:
    1x1 conv to ``out_channels`` with a sigmoid (per-pixel probabilities).
    Every conv has a bias; weights are He-normal (Keras' ``'he_normal'``; the head: Glorot
    uniform, Keras' default), biases zero, in both frameworks.

    * torch: ``(N, in_channels, H, W)`` -> ``(N, out_channels, H, W)``
    * keras: ``(N, H, W, in_channels)`` -> ``(N, H, W, out_channels)`` (any H, W divisible by 16)

    1,940,817 parameters for 1 input channel (1,941,105 for 3), in both frameworks.
    ``dropout`` is one rate for every level or five rates.
    """
    framework = _check_framework(framework)
    in_channels = positive_int(in_channels, "in_channels")
    out_channels = positive_int(out_channels, "out_channels")
    base = positive_int(base, "base")
    if isinstance(dropout, (tuple, list)):
        if len(dropout) != 5:
            raise ValueError(f"dropout must be one rate or five rates (one per level), got {dropout!r}")
        rates = tuple(_check_rate(r, "dropout") for r in dropout)
    else:
        rates = (_check_rate(dropout, "dropout"),) * 5
    filters = tuple(base * 2**i for i in range(5))
    if framework == "torch":
        return _torch_classes()["UNet"](in_channels, out_channels, filters, rates)
    keras = _keras()
    layers = keras.layers

    def double_conv(x, f, p, name):
        x = layers.Conv2D(f, (3, 3), activation="relu", padding="same", kernel_initializer="he_normal",
                          name=f"{name}_conv1")(x)
        x = layers.Dropout(p, name=f"{name}_dropout")(x)
        return layers.Conv2D(f, (3, 3), activation="relu", padding="same", kernel_initializer="he_normal",
                             name=f"{name}_conv2")(x)

    inputs = keras.Input((None, None, in_channels))
    skips, x = [], inputs
    for level in range(4):
        x = double_conv(x, filters[level], rates[level], f"enc{level + 1}")
        skips.append(x)
        x = layers.MaxPooling2D((2, 2), name=f"pool{level + 1}")(x)
    x = double_conv(x, filters[4], rates[4], "bottleneck")
    for level in reversed(range(4)):
        x = layers.Conv2DTranspose(filters[level], (2, 2), strides=(2, 2), padding="same",
                                   kernel_initializer="he_normal", name=f"up{level + 1}")(x)
        x = layers.Concatenate(axis=-1, name=f"concat{level + 1}")([x, skips[level]])
        x = double_conv(x, filters[level], rates[level], f"dec{level + 1}")
    outputs = layers.Conv2D(out_channels, (1, 1), activation="sigmoid", name="head")(x)
    return keras.Model(inputs, outputs, name=_keras_name("unet"))


# ---------------------------------------------------------------------------
# counting and summaries
# ---------------------------------------------------------------------------


def _framework_of(model) -> str:
    for cls in type(model).__mro__:
        root = (cls.__module__ or "").split(".")[0]
        if root in ("keras", "tf_keras"):
            return "keras"
        if root == "torch":
            return "torch"
    raise TypeError(f"model must be a torch.nn.Module or a keras Model/Layer, got {type(model).__name__}")


def _keras_weight_count(weights) -> int:
    return int(sum(math.prod(int(d) for d in w.shape) for w in weights))


def count_params(model, *, trainable_only=False) -> int:
    """Number of parameters of a PyTorch module or a Keras model/layer.

    * torch: ``sum(p.numel() for p in model.parameters())`` (with
      ``trainable_only``, only those with ``requires_grad``). Buffers such as
      batch norm's running mean and variance are never counted. Works on the
      meta device.
    * keras: ``model.count_params()``, which includes non-trainable weights
      (batch norm's moving mean and variance, ``2C`` per layer); with
      ``trainable_only``, only ``model.trainable_weights``, the figure
      PyTorch and the papers report.
    """
    trainable_only = _check_bool(trainable_only, "trainable_only")
    if _framework_of(model) == "keras":
        if trainable_only:
            return _keras_weight_count(model.trainable_weights)
        return int(model.count_params())
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only))


@dataclass(frozen=True)
class SummaryRow:
    """One row of a :class:`ModelSummary`.

    ``output_shape`` has no batch axis: ``(C, H, W)`` for PyTorch, ``(H, W, C)``
    for Keras (``None`` where the model accepts any size). ``params``: what the
    framework counts (Keras: including non-trainable weights); ``trainable``:
    the trainable part.
    """

    name: str
    kind: str
    output_shape: tuple
    params: int
    trainable: int


@dataclass(frozen=True)
class ModelSummary(_RowTable):
    """What :func:`summary` returns: rows plus totals; ``print()`` shows a table.

    Iterating, ``len()``, indexing and ``.output_shape`` work as for
    :class:`utils.shapes.Summary` (the same row container).
    """

    framework: str
    input_shape: tuple
    rows: tuple
    total_params: int
    trainable_params: int

    def table(self) -> str:
        """The summary as a plain-text table (one line per row, then totals)."""
        columns = 6 if self.trainable_params != self.total_params else 5   # "trainable" only where it differs
        header = ["#", "layer", "type", "output shape", "params", "trainable"][:columns]
        layout = "(C, H, W)" if self.framework == "torch" else "(H, W, C)"
        lines = [["", "input", layout, _shape_text(self.input_shape), "", ""][:columns]]
        for i, r in enumerate(self.rows):
            lines.append([str(i), r.name, r.kind, _shape_text(r.output_shape), f"{r.params:,}",
                          f"{r.trainable:,}"][:columns])
        total = ["", "total", "", "", f"{self.total_params:,}", f"{self.trainable_params:,}"][:columns]
        return _text_table(header, lines, total, "<<<<>>"[:columns])


def _shape_text(shape) -> str:
    if shape is None:
        return "?"
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def summary(model, input_shape=None, *, depth=1) -> ModelSummary:
    """Per-layer output shapes and parameters of a PyTorch or Keras model.

    * torch: ``input_shape`` is ``(C, H, W)`` (no batch axis; required). One
      forward pass of a single zero image (in ``eval()`` mode, without
      gradients, on the model's device; on the meta device nothing is
      computed) records each submodule's output shape. Rows are the submodules
      ``depth`` levels down (``depth=1``: the model's children; names like
      ``layer1.0``), in the order they first run; a module without children
      higher up is a row too.
    * keras: the model's layers (``model.layers``, without the input layer) with
      their output shapes ``(H, W, C)``: as the model was built (``None`` where it
      accepts any size), or traced symbolically (nothing computed) for
      ``input_shape`` ``(H, W, C)`` when given. Only ``depth=1`` (a nested model
      is one row).

    ``print(summary(...))`` shows the table; ``.rows``, ``.total_params``,
    ``.trainable_params`` hold the numbers.
    """
    depth = positive_int(depth, "depth")
    framework = _framework_of(model)
    if framework == "keras":
        return _keras_summary(model, input_shape, depth)
    return _torch_summary(model, input_shape, depth)


def _keras_summary(model, input_shape, depth):
    if depth != 1:
        raise ValueError(f"depth must be 1 for a Keras model (nested models are one row each), got {depth}")
    if not getattr(model, "inputs", None) or len(model.inputs) != 1:
        raise ValueError("model must be a built Keras model with one keras.Input(...)")
    own = tuple(model.inputs[0].shape[1:])
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    shapes = [tuple(layer.output.shape[1:]) for layer in layers]
    if input_shape is not None:
        if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, (tuple, list)):
            raise TypeError(f"input_shape must be a tuple (H, W, C) for a Keras model, got {input_shape!r}")
        shape = tuple(positive_int(v, "input_shape") for v in input_shape)
        if len(shape) != len(own) or any(o is not None and o != s for o, s in zip(own, shape)):
            raise ValueError(f"input_shape {shape} does not fit the Keras model's input {own} (H, W, C)")
        if shape != own:  # trace the layers' outputs symbolically for this input size
            keras = _keras()
            probe = keras.Model(model.inputs, [layer.output for layer in layers])
            outs = probe(keras.Input(shape))
            outs = outs if isinstance(outs, (list, tuple)) else [outs]
            shapes = [tuple(out.shape[1:]) for out in outs]
        own = shape
    rows = [SummaryRow(layer.name, type(layer).__name__, shape, int(layer.count_params()),
                       _keras_weight_count(layer.trainable_weights))
            for layer, shape in zip(layers, shapes)]
    return ModelSummary("keras", own, tuple(rows), int(model.count_params()),
                        _keras_weight_count(model.trainable_weights))


def _torch_summary(model, input_shape, depth):
    import torch

    if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, (tuple, list)):
        raise TypeError(f"input_shape must be a tuple (C, H, W) for a PyTorch model, got {input_shape!r}")
    shape = tuple(positive_int(v, "input_shape") for v in input_shape)

    rows_modules = []

    def collect(module, prefix, level):
        for name, child in module.named_children():
            full = f"{prefix}{name}"
            if level == depth or not list(child.children()):
                rows_modules.append((full, child))
            else:
                collect(child, f"{full}.", level + 1)

    collect(model, "", 1)
    outputs, order = {}, []

    def hook_for(name):
        def hook(module, args, output):
            if name not in outputs:
                order.append(name)
                outputs[name] = tuple(output.shape[1:]) if isinstance(output, torch.Tensor) else None
        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in rows_modules]
    tensors = list(model.parameters()) + list(model.buffers())
    device = tensors[0].device if tensors else torch.device("cpu")
    dtype = next((t.dtype for t in tensors if t.is_floating_point()), torch.float32)
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *shape), device=device, dtype=dtype))
    finally:
        for h in handles:
            h.remove()
        for m, training in modes.items():
            m.training = training
    by_name = dict(rows_modules)
    names = order + [n for n, _ in rows_modules if n not in outputs]
    rows = []
    for name in names:
        module = by_name[name]
        params = sum(p.numel() for p in module.parameters())
        trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
        rows.append(SummaryRow(name, type(module).__name__, outputs.get(name), int(params), int(trainable)))
    return ModelSummary("torch", shape, tuple(rows), count_params(model),
                        count_params(model, trainable_only=True))
