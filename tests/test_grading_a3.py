"""The checks of assignment 3, *Building CNNs* (utils/grading/a3.py).

The reference implementations are the solution cells of
solutions/a3_building_cnns/a3_building_cnns.ipynb (executed here, not copied),
so these tests also prove that the instructor notebook passes its own checks.
Every diagnostic message is triggered by an implementation that makes exactly
that mistake.
"""

from __future__ import annotations

import json
import pathlib
import sys
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

import utils  # noqa: E402
from utils import grading  # noqa: E402
from utils.grading import (  # noqa: E402
    CheckError,
    ForbiddenCall,
    a3,  # noqa: E402
)

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "solutions" / "a3_building_cnns" / "a3_building_cnns.ipynb"
SOLUTION_IDS = ("lenet5", "vgg_block", "ResidualBlock", "small_unet", "train_digits")
SEED = "20261121"


def _load_reference() -> types.SimpleNamespace:
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    namespace: dict = {"__name__": "a3_reference"}
    exec("import numpy as np\nimport torch\nfrom torch import nn\n"  # noqa: S102
         "import torch.nn.functional as F\nimport utils", namespace)
    namespace["utils"] = utils
    for cell in cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution") and meta.get("grade_id") in SOLUTION_IDS:
            code = compile("".join(cell["source"]), f"<{meta['grade_id']}>", "exec")
            exec(code, namespace)  # noqa: S102
    return types.SimpleNamespace(**{k: namespace[k] for k in SOLUTION_IDS})


REF = _load_reference()


# ---------------------------------------------------------------------------
# wrong implementations, one mistake each


class Permute(nn.Module):
    """Channels-last thinking: (N, H, W, C) -> (N, C, H, W) inside the model."""

    def forward(self, x):
        return x.permute(0, 3, 1, 2)


def make_lenet(*, pad=0, linear_in=400, conv_bias=True, dense_bias=True, with_84=True,
               nhwc=False, c1=6, fixed_classes=None):
    def lenet5(num_classes=10):
        k = fixed_classes or num_classes
        dense = [nn.Linear(linear_in, 120, bias=dense_bias), nn.ReLU()]
        dense += ([nn.Linear(120, 84, bias=dense_bias), nn.ReLU(),
                   nn.Linear(84, k, bias=dense_bias)] if with_84
                  else [nn.Linear(120, k, bias=dense_bias)])
        layers = [nn.Conv2d(1, c1, 5, padding=pad, bias=conv_bias), nn.ReLU(), nn.MaxPool2d(2),
                  nn.Conv2d(c1, 16, 5, bias=conv_bias), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                  *dense]
        return nn.Sequential(*([Permute()] if nhwc else []), *layers)

    return lenet5


def make_vgg(*, relu="every", pool="max", padding=1, bias=True, chain=True, extra=0):
    def vgg_block(in_channels, out_channels, num_convs):
        layers = []
        for i in range(num_convs + extra):
            c = in_channels if (i == 0 or not chain) else out_channels
            layers.append(nn.Conv2d(c, out_channels, 3, padding=padding, bias=bias))
            if relu == "every" or (relu == "last" and i == num_convs + extra - 1):
                layers.append(nn.ReLU())
        layers += {"max": [nn.MaxPool2d(2, 2)], "avg": [nn.AvgPool2d(2, 2)], "none": [],
                   "stride1": [nn.MaxPool2d(2, stride=1)]}[pool]
        return nn.Sequential(*layers)

    return vgg_block


def make_block(*, skip=True, relu="after", mid_relu=True, stride_on=1, projection="auto",
               proj_stride=True, bias=False, affine=True, bn1_in=False, shortcut_bn=True,
               bn_after_relu=False, stats=True):
    class Block(nn.Module):
        def __init__(self, in_channels, out_channels, stride=1):
            super().__init__()
            s1, s2 = (stride, 1) if stride_on == 1 else (1, stride)
            self.conv1 = nn.Conv2d(in_channels, out_channels, 3, s1, 1, bias=bias)
            self.bn1 = nn.BatchNorm2d(in_channels if bn1_in else out_channels, affine=affine,
                                      track_running_stats=stats)
            self.conv2 = nn.Conv2d(out_channels, out_channels, 3, s2, 1, bias=bias)
            self.bn2 = nn.BatchNorm2d(out_channels, affine=affine, track_running_stats=stats)
            needed = stride != 1 or in_channels != out_channels
            if projection == "always" or (projection == "auto" and needed):
                layers = [nn.Conv2d(in_channels, out_channels, 1, stride if proj_stride else 1,
                                    bias=bias)]
                if shortcut_bn:
                    layers.append(nn.BatchNorm2d(out_channels, affine=affine))
                self.shortcut = nn.Sequential(*layers)
            else:
                self.shortcut = nn.Identity()

        def forward(self, x):
            if bn_after_relu:
                f = self.bn1(F.relu(self.conv1(x)))
            else:
                f = self.bn1(self.conv1(x))
                f = F.relu(f) if mid_relu else f
            f = self.bn2(self.conv2(f))
            if not skip:
                return F.relu(f)
            if relu == "before":
                return F.relu(f) + self.shortcut(x)
            if relu == "none":
                return f + self.shortcut(x)
            return F.relu(f + self.shortcut(x))

    return Block


def make_unet(*, skips="cat", up="transpose", bn=False, bias=True, head="classes", cat_dim=1,
              padding=1, fixed=None):
    def small_unet(in_channels=1, num_classes=1, base=16):
        if fixed:
            in_channels, num_classes, base = fixed

        def double(c_in, c):
            one = lambda a: [nn.Conv2d(a, c, 3, padding=padding, bias=bias),  # noqa: E731
                             *([nn.BatchNorm2d(c)] if bn else []), nn.ReLU()]
            return nn.Sequential(*one(c_in), *one(c))

        b = base

        class UNet(nn.Module):
            def __init__(self):
                super().__init__()
                self.enc = nn.ModuleList([double(in_channels, b), double(b, 2 * b),
                                          double(2 * b, 4 * b)])
                self.bottleneck = double(4 * b, 8 * b)
                self.ups, self.decs = nn.ModuleList(), nn.ModuleList()
                for c in (4 * b, 2 * b, b):
                    if up == "transpose":
                        self.ups.append(nn.ConvTranspose2d(2 * c, c, 2, stride=2, bias=bias))
                        up_c = c
                    else:
                        self.ups.append(nn.Upsample(scale_factor=2))
                        up_c = 2 * c
                    self.decs.append(double(up_c + (c if skips == "cat" else 0), c))
                out = {"classes": num_classes, "plus1": num_classes + 1}.get(head)
                self.head = nn.Conv2d(b, out, 1, bias=bias) if out else nn.Identity()

            def forward(self, x):
                skips_ = []
                for enc in self.enc:
                    x = enc(x)
                    skips_.append(x)
                    x = F.max_pool2d(x, 2)
                x = self.bottleneck(x)
                for upsample, dec, skip in zip(self.ups, self.decs, reversed(skips_), strict=True):
                    x = upsample(x)
                    if skips == "cat":
                        x = torch.cat([x, skip], dim=cat_dim)
                    elif skips == "add":
                        x = x + skip
                    x = dec(x)
                return self.head(x)

        return UNet()

    return small_unet


# ---------------------------------------------------------------------------
# the reference passes; hidden checks need the seed; draws repeat


@pytest.mark.parametrize("name", ["lenet5", "vgg_block", "ResidualBlock", "small_unet"])
def test_reference_passes_visible_and_hidden(seeded, capsys, name):
    check = {"lenet5": a3.check_lenet5, "vgg_block": a3.check_vgg_block,
             "ResidualBlock": a3.check_ResidualBlock, "small_unet": a3.check_small_unet}[name]
    check(getattr(REF, name))
    check(getattr(REF, name), hidden=True)
    out = capsys.readouterr()
    assert out.out.startswith(f"{name}: all ") and "checks passed" in out.out
    assert out.err == ""


def test_reference_passes_without_a_seed_too(unseeded, capsys):
    a3.check_lenet5(REF.lenet5)
    a3.check_vgg_block(REF.vgg_block)
    a3.check_residual_block(REF.ResidualBlock)
    a3.check_small_unet(REF.small_unet)
    assert capsys.readouterr().out.count("checks passed") == 4


@pytest.fixture(scope="module")
def one_thread():
    """Training in tests runs on one thread: on a busy machine two PyTorch threads wait on each
    other (10x slower), and these tests check results, not speed. Grading keeps the default."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(one_thread):
    """The reference passes the visible train_digits check; its model is reused below."""
    models = []

    def spy(x_train, y_train, seed=0):
        models.append(REF.train_digits(x_train, y_train, seed=seed))
        return models[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(grading.SEED_VARIABLE, SEED)
        a3.check_train_digits(spy)
    return models[0]


def test_reference_train_digits_passes_visible_and_hidden(seeded, trained, capsys):
    a3.check_train_digits(REF.train_digits, hidden=True)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("check", [a3.check_lenet5, a3.check_vgg_block, a3.check_residual_block,
                                   a3.check_small_unet, a3.check_train_digits])
def test_hidden_checks_refuse_without_the_grader_seed(unseeded, check):
    with pytest.raises(CheckError, match="hidden checks run only while grading"):
        check(lambda *args, **kwargs: None, hidden=True)


def _recorded_calls(check, monkeypatch, seed, builder):
    monkeypatch.setenv(grading.SEED_VARIABLE, seed)
    calls = []

    def spy(*args):
        calls.append(args)
        return builder(*args)

    check(spy, hidden=True)
    return calls


def test_grading_draws_repeat_with_the_same_seed(monkeypatch):
    first = _recorded_calls(a3.check_vgg_block, monkeypatch, "77", REF.vgg_block)
    again = _recorded_calls(a3.check_vgg_block, monkeypatch, "77", REF.vgg_block)
    other = _recorded_calls(a3.check_vgg_block, monkeypatch, "78", REF.vgg_block)
    assert first == again and first != other
    unet = _recorded_calls(a3.check_small_unet, monkeypatch, "77", REF.small_unet)
    assert unet == _recorded_calls(a3.check_small_unet, monkeypatch, "77", REF.small_unet)


def test_hard_coded_answers_fail(seeded):
    # a LeNet-5 that always has 10 outputs passes the first visible case (10 classes) only
    with pytest.raises(CheckError, match=r"lenet5: [\d,]+ parameters, expected [\d,]+ .* for "
                       r"num_classes=\d+: conv 6@5x5"):
        a3.check_lenet5(make_lenet(fixed_classes=10))
    # a U-Net built for the example (1, 1, 16) fails the random case (base 4 or 8)
    with pytest.raises(CheckError, match=r"small_unet: small_unet\(\d, \d, [48]\)"):
        a3.check_small_unet(make_unet(fixed=(1, 1, 16)))


# ---------------------------------------------------------------------------
# lenet5 diagnostics


@pytest.mark.parametrize("kwargs, message", [
    (dict(pad=2, linear_in=576), a3.LENET_PADDING),  # the padded variant, sized to run
    (dict(pad=2), a3.LENET_PADDING),                 # padded, Linear(400): runs on 28x28 only
    (dict(linear_in=256), a3.LENET_28),
    (dict(dense_bias=False), a3.LENET_DENSE_BIAS),
    (dict(conv_bias=False), a3.LENET_CONV_BIAS),
    (dict(with_84=False), a3.LENET_NO_84),
    (dict(nhwc=True), a3.LENET_LAYOUT_TORCH),        # dave
])
def test_lenet5_diagnostics(seeded, kwargs, message):
    with pytest.raises(CheckError) as info:
        a3.check_lenet5(make_lenet(**kwargs))
    assert str(info.value).startswith("lenet5: ") and str(info.value).endswith(message)


def test_lenet5_with_lazy_layers_passes(seeded, capsys):
    def lenet5(num_classes=10):
        return nn.Sequential(nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2),
                             nn.LazyConv2d(16, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
                             nn.LazyLinear(120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(),
                             nn.Linear(84, num_classes))

    a3.check_lenet5(lenet5)
    assert "lenet5: all 5 checks passed" in capsys.readouterr().out


def test_lenet5_other_mistakes(seeded):
    with pytest.raises(CheckError, match=r"lenet5: 62,132 parameters, expected 61,706 \(\+426\) "
                       r"for num_classes=10: conv 6@5x5"):
        a3.check_lenet5(make_lenet(c1=7, linear_in=400))
    with pytest.raises(CheckError, match="lenet5: should return a torch.nn.Module or a "
                       "keras.Model, got list"):
        a3.check_lenet5(lambda num_classes=10: [nn.Conv2d(1, 6, 5)])
    with pytest.raises(CheckError, match=r"lenet5: not implemented yet \(lenet5\(10\) raised "
                       "NotImplementedError\\)"):
        a3.check_lenet5(lambda num_classes=10: (_ for _ in ()).throw(NotImplementedError()))

    class Broken(nn.Module):
        def __init__(self, k):
            super().__init__()
            self.body = make_lenet()(k)

        def forward(self, x):
            return self.body(x).view(-1, 7)

    with pytest.raises(CheckError, match=r"lenet5: the forward pass on a \(N, 1, 32, 32\) batch "
                       "raised RuntimeError: shape"):
        a3.check_lenet5(Broken)


def test_lenet5_accepts_keras_and_diagnoses_it(seeded, capsys):
    keras = pytest.importorskip("keras")
    from keras import layers

    def lenet_keras(num_classes=10, padding="valid", data_format="channels_last"):
        shape = (32, 32, 1) if data_format == "channels_last" else (1, 32, 32)
        return keras.Sequential([
            keras.Input(shape),
            layers.Conv2D(6, 5, activation="tanh", padding=padding, data_format=data_format),
            layers.AveragePooling2D(2, data_format=data_format),
            layers.Conv2D(16, 5, activation="tanh", data_format=data_format),
            layers.AveragePooling2D(2, data_format=data_format), layers.Flatten(),
            layers.Dense(120, activation="tanh"), layers.Dense(84, activation="tanh"),
            layers.Dense(num_classes)])

    a3.check_lenet5(lenet_keras)
    a3.check_lenet5(lenet_keras, hidden=True)
    assert "lenet5: all 5 checks passed" in capsys.readouterr().out
    with pytest.raises(CheckError, match="your first conv has padding"):
        a3.check_lenet5(lambda num_classes=10: lenet_keras(num_classes, padding="same"))
    with pytest.raises(CheckError) as info:
        a3.check_lenet5(lambda k=10: lenet_keras(k, data_format="channels_first"))
    assert str(info.value) == f"lenet5: {a3.LENET_LAYOUT_KERAS}"
    with pytest.raises(CheckError, match="should return a torch.nn.Module .this part is PyTorch "
                       "only., got the Keras object Sequential"):
        a3.check_vgg_block(lambda i, o, n: lenet_keras(10))


# ---------------------------------------------------------------------------
# vgg_block diagnostics


@pytest.mark.parametrize("kwargs, message", [
    (dict(pool="none"), a3.VGG_NO_POOL),
    (dict(padding=0), a3.VGG_NO_PADDING),
    (dict(pool="stride1"), a3.VGG_POOL_STRIDE),
    (dict(relu="none"), a3.VGG_NO_RELU),
    (dict(relu="last"), a3.VGG_RELU_LAST),
    (dict(pool="avg"), a3.VGG_AVG_POOL),
    (dict(bias=False), a3.VGG_BIAS),
])
def test_vgg_block_diagnostics(seeded, kwargs, message):
    with pytest.raises(CheckError) as info:
        a3.check_vgg_block(make_vgg(**kwargs))
    assert str(info.value).startswith("vgg_block: ") and str(info.value).endswith(message)


def test_vgg_block_other_value_mistakes_name_the_difference(seeded):
    def sigmoid_block(in_channels, out_channels, num_convs):
        block = make_vgg()(in_channels, out_channels, num_convs)
        return nn.Sequential(*[nn.Sigmoid() if isinstance(m, nn.ReLU) else m for m in block])

    with pytest.raises(CheckError, match=r"output values are wrong: \d+ of \d+ values differ from "
                       r"conv \(padding 1\) \+ ReLU for each conv, then 2x2 max pooling, computed "
                       r"with your block's own weights \(largest difference"):
        a3.check_vgg_block(sigmoid_block)
    with pytest.raises(CheckError, match=r"vgg_block: [\d,]+ parameters, expected [\d,]+ "
                       r"\([+-][\d,]+\) for vgg_block\(\d+, \d+, \d\): each conv has"):
        a3.check_vgg_block(_with_1x1)
    with pytest.raises(CheckError, match=r"the forward pass of vgg_block\(\d+, \d+, \d\) on a "
                       r"\(\d+, \d+, \d+, \d+\) batch raised RuntimeError"):
        a3.check_vgg_block(lambda i, o, n: make_vgg()(i + 1, o, n))


def _with_1x1(in_channels, out_channels, num_convs):
    """num_convs convs, but the first is 1x1: right shapes, wrong parameter count."""
    block = make_vgg()(in_channels, out_channels, num_convs)
    block[0] = nn.Conv2d(in_channels, out_channels, 1)
    return block


def test_vgg_block_counts_its_convolutions(seeded):
    with pytest.raises(CheckError, match=r"vgg_block: vgg_block\(\d+, \d+, \d\) has \d nn.Conv2d "
                       r"layers, expected num_convs=\d$"):
        a3.check_vgg_block(make_vgg(extra=1))


def test_vgg_block_unchained_convs_name_the_channels(seeded):
    def unchained(i, o, n):  # every conv reads in_channels (the seed's first case has i != o)
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(i, o, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))

    with pytest.raises(CheckError) as info:
        a3.check_vgg_block(unchained)
    assert str(info.value).endswith(a3.VGG_CHANNELS)


# ---------------------------------------------------------------------------
# ResidualBlock diagnostics


@pytest.mark.parametrize("kwargs, message", [
    (dict(projection="never"), a3.RES_NEEDS_PROJECTION),
    (dict(proj_stride=False), a3.RES_PROJECTION_STRIDE),
    (dict(projection="always"), a3.RES_IDENTITY),
    (dict(bias=True), a3.RES_BIAS),
    (dict(affine=False), a3.RES_BN_AFFINE),
    (dict(bn1_in=True), a3.RES_BN_CHANNELS),
    (dict(stats=False), a3.RES_BN_STATS),
    (dict(skip=False), a3.RES_NO_SKIP),
    (dict(relu="before"), a3.RES_RELU_BEFORE_ADD),
    (dict(relu="none"), a3.RES_RELU_BEFORE_ADD),
    (dict(mid_relu=False), a3.RES_NO_MID_RELU),
    (dict(stride_on=2), a3.RES_STRIDE_SECOND),
])
def test_residual_block_diagnostics(seeded, kwargs, message):
    with pytest.raises(CheckError) as info:
        a3.check_residual_block(make_block(**kwargs))
    assert str(info.value).startswith("ResidualBlock: ") and str(info.value).endswith(message)


class HandMadeConv(nn.Module):
    """A 3x3 convolution (padding 1, no bias) that is not an nn.Conv2d."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3) * 0.1)

    def forward(self, x):
        return F.conv2d(x, self.weight, padding=1)


def test_residual_block_other_mistakes(seeded):
    class DoubledShortcut(make_block()):
        def forward(self, x):
            f = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
            return F.relu(f + 2 * self.shortcut(x))

    with pytest.raises(CheckError, match=r"skip connection wiring is wrong: with the 3x3 conv "
                       r"weights set to zero the residual path is 0, so the block must output "
                       r"relu\(shortcut\(x\)\) = relu\(x\)$"):
        a3.check_residual_block(DoubledShortcut)

    class HandMade(make_block()):
        def __init__(self, in_channels, out_channels, stride=1):
            super().__init__(in_channels, out_channels, stride)
            self.conv2 = HandMadeConv(out_channels, out_channels)

    with pytest.raises(CheckError, match=r"has 1 nn.Conv2d layers with 3x3 kernels, expected 2: "
                       "build both convolutions of the residual path with nn.Conv2d"):
        a3.check_residual_block(HandMade)

    with pytest.raises(CheckError, match=r"has 2 BatchNorm2d layers, expected 3: one after each "
                       "3x3 conv and one after the 1x1 shortcut conv"):
        a3.check_residual_block(make_block(shortcut_bn=False))
    with pytest.raises(CheckError, match=r"output values are wrong: with your block's layers given "
                       r"known weights, relu\(bn2\(conv2"):
        a3.check_residual_block(make_block(bn_after_relu=True))
    with pytest.raises(CheckError, match="ResidualBlock: should be a class"):
        a3.check_residual_block(lambda i, o, s=1: None)
    with pytest.raises(CheckError, match="should be a subclass of torch.nn.Module"):
        a3.check_residual_block(type("Block", (), {}))


# ---------------------------------------------------------------------------
# small_unet diagnostics


@pytest.mark.parametrize("kwargs, message", [
    (dict(skips="none"), a3.UNET_NO_SKIPS),
    (dict(skips="add"), a3.UNET_NO_SKIPS),
    (dict(up="upsample"), a3.UNET_UPSAMPLE),
    (dict(bn=True), a3.UNET_BN),
    (dict(bias=False), a3.UNET_BIAS),
    (dict(padding=0), a3.UNET_PADDING),
    (dict(cat_dim=-1), "(dim=-1 is channels-last thinking: NHWC)"),  # dave
])
def test_small_unet_diagnostics(seeded, kwargs, message):
    with pytest.raises(CheckError) as info:
        a3.check_small_unet(make_unet(**kwargs))
    assert str(info.value).startswith("small_unet: ") and str(info.value).endswith(message)


def test_small_unet_other_parameter_counts(seeded):
    def head_3x3(in_channels=1, num_classes=1, base=16):
        model = make_unet()(in_channels, num_classes, base)
        model.head = nn.Conv2d(base, num_classes, 3, padding=1)
        return model

    with pytest.raises(CheckError, match=r"small_unet: [\d,]+ parameters, expected [\d,]+ "
                       r"\(\+[\d,]+\) for small_unet\(1, 1, 16\): see the table of the stated "
                       "architecture"):
        a3.check_small_unet(head_3x3)


def test_small_unet_output_channels(seeded):
    with pytest.raises(CheckError, match=r"has \d output channels, expected num_classes=\d: the "
                       r"last layer is a 1x1 conv base -> num_classes$"):
        a3.check_small_unet(make_unet(head="plus1"))
    with pytest.raises(CheckError, match=r"has 16 output channels, expected num_classes=1: .* "
                       r"\(is the final 1x1 conv missing\?\)"):
        a3.check_small_unet(make_unet(head="none"))


# ---------------------------------------------------------------------------
# train_digits diagnostics


class Scaled(nn.Module):
    """A model that expects pixels 0..255: what training on unscaled pixels gives."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x / 255.0)


class ChannelsLast(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x.permute(0, 3, 1, 2))


def test_train_digits_diagnostics(seeded, trained):
    def returns(model):
        return lambda x_train, y_train, seed=0: model

    untrained = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with pytest.raises(CheckError, match=r"train_digits: test accuracy \d+\.\d% \(\d+ of 2000 "
                       r"held-out digits\), expected at least 95%: train longer"):
        a3.check_train_digits(returns(untrained))
    with pytest.raises(CheckError, match=r"test accuracy \d+\.\d% .*: on pixels 0..255 the model "
                       r"scores 9\d\.\d%: it was trained on unscaled pixels"):
        a3.check_train_digits(returns(Scaled(trained)))
    with pytest.raises(CheckError) as info:
        a3.check_train_digits(returns(ChannelsLast(trained)))
    assert str(info.value) == f"train_digits: {a3.TRAIN_LAYOUT_TORCH}"
    with pytest.raises(CheckError, match=r"test accuracy \d+\.\d% .*: the model predicts the "
                       "original MNIST labels, not the labels it was given"):
        a3.check_train_digits(returns(trained), hidden=True)
    with pytest.raises(CheckError, match=r"the model's output shape is \(2000, 9\), expected "
                       r"\(2000, 10\): classes 9, expected 10"):
        a3.check_train_digits(returns(nn.Sequential(nn.Flatten(), nn.Linear(784, 9))))
    with pytest.raises(CheckError, match=r"train_digits: not implemented yet \(train_digits\("
                       r"x_train, y_train, seed=\d+\) raised NotImplementedError\)"):
        a3.check_train_digits(lambda x, y, seed=0: (_ for _ in ()).throw(NotImplementedError()))


def test_train_digits_model_that_fails(seeded):
    class Fails(nn.Module):
        def forward(self, x):
            raise RuntimeError("something inside the model")

    with pytest.raises(CheckError, match=r"train_digits: the returned model fails on a "
                       r"\(N, 1, 28, 28\) float32 batch: RuntimeError: something inside the model"):
        a3.check_train_digits(lambda x, y, seed=0: Fails())
    with pytest.raises(CheckError, match="train_digits: should return a torch.nn.Module or a "
                       "keras.Model, got NoneType"):
        a3.check_train_digits(lambda x, y, seed=0: None)


def test_train_digits_time_limit(seeded, trained, monkeypatch):
    monkeypatch.setattr(a3, "TIME_LIMIT_S", 0.0)
    with pytest.raises(CheckError, match=r"train_digits: train_digits\(x_train, y_train, "
                       r"seed=\d+\) took \d+\.\d s, the limit is 0 s: train for fewer epochs"):
        a3.check_train_digits(lambda x, y, seed=0: trained)


def test_train_digits_keras_models_are_evaluated_channels_last(seeded):
    keras = pytest.importorskip("keras")
    from keras import layers

    def model(data_format):
        shape = (28, 28, 1) if data_format == "channels_last" else (1, 28, 28)
        return keras.Sequential([keras.Input(shape), layers.Conv2D(4, 3, data_format=data_format),
                                 layers.Flatten(), layers.Dense(10)])

    with pytest.raises(CheckError, match=r"train_digits: test accuracy \d+\.\d%"):
        a3.check_train_digits(lambda x, y, seed=0: model("channels_last"))
    with pytest.raises(CheckError) as info:
        a3.check_train_digits(lambda x, y, seed=0: model("channels_first"))
    assert str(info.value) == f"train_digits: {a3.TRAIN_LAYOUT_KERAS}"


def test_the_check_gives_copies_and_restores_global_random_state(seeded):
    seen = {}

    def train(x_train, y_train, seed=0):
        seen.update(x=x_train, y=y_train, seed=seed)
        x_train[:] = 0  # must not change the check's cached data
        np.random.seed(seed)
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))

    state = np.random.get_state()[1].copy()
    with pytest.raises(CheckError, match="test accuracy"):
        a3.check_train_digits(train)
    assert np.array_equal(np.random.get_state()[1], state)
    assert seen["x"].shape == (8000, 28, 28) and seen["x"].dtype == np.uint8
    assert seen["y"].shape == (8000,) and set(np.unique(a3._mnist_split(0)[1])) == set(range(10))
    assert a3._mnist_split(0)[0].max() == 255


# ---------------------------------------------------------------------------
# forbidden references


def test_forbidden_references_fail(seeded, monkeypatch):
    fake = types.ModuleType("utils.models")
    fake.lenet5 = REF.lenet5
    monkeypatch.setitem(sys.modules, "utils.models", fake)
    monkeypatch.setattr(utils, "models", fake, raising=False)

    def lenet5(num_classes=10):
        import utils.models

        return utils.models.lenet5(num_classes)

    with pytest.raises(ForbiddenCall, match=r"lenet5 called utils.models.lenet5: build the layers "
                       "yourself"):
        a3.check_lenet5(lenet5)
    # a reference bound under another name is caught before the call
    namespace = {"ready_made": fake.lenet5}
    exec("def lenet5(num_classes=10):\n    return ready_made(num_classes)", namespace)  # noqa: S102
    with pytest.raises(ForbiddenCall, match=r"lenet5 uses utils.models.lenet5 \(as 'ready_made'\)"):
        a3.check_lenet5(namespace["lenet5"])


def test_ready_made_library_blocks_fail(seeded):
    class BasicBlock(REF.ResidualBlock):  # stands in for torchvision's
        pass

    BasicBlock.__module__ = "torchvision.models.resnet"

    class Wrapped(nn.Module):
        def __init__(self, in_channels, out_channels, stride=1):
            super().__init__()
            self.block = BasicBlock(in_channels, out_channels, stride)

        def forward(self, x):
            return self.block(x)

    with pytest.raises(ForbiddenCall, match="ResidualBlock uses "
                       "torchvision.models.resnet.BasicBlock: this assignment is about building "
                       "the network yourself"):
        a3.check_residual_block(Wrapped)


# ---------------------------------------------------------------------------
# the stated counts


def test_stated_parameter_counts():
    assert a3.lenet5_params(10) == 61_706
    assert a3.vgg_block_params(3, 64, 2) == 38_720
    assert a3.residual_block_params(64, 128, 2) == 230_144
    assert a3.residual_block_params(64, 64, 1) == 73_984
    assert a3.unet_params(1, 1, 16) == 481_745
    for args in [(1, 1, 16), (3, 2, 8)]:
        model = REF.small_unet(*args)
        assert sum(p.numel() for p in model.parameters()) == a3.unet_params(*args)
    block = REF.ResidualBlock(5, 7, 2)
    assert sum(p.numel() for p in block.parameters()) == a3.residual_block_params(5, 7, 2)
