"""Tests of utils.models: reference parameter counts, utils.shapes, both frameworks, shapes.

* every builder's parameter count equals the published figure (big models are
  built on PyTorch's meta device, so nothing is allocated);
* the count equals utils.shapes' computation from layer specs written out here;
* the Keras model has the same (trainable) count as the PyTorch one, and where
  the weights are copied across, computes the same function;
* forward passes give the documented output shapes (NCHW / NHWC).
"""

from __future__ import annotations

import numpy as np
import pytest

import utils.models as models
from utils.shapes import (
    AvgPool2D,
    BatchNorm2D,
    Conv2D,
    ConvTranspose2D,
    Dense,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    count_params,
    summarize,
)

torch = pytest.importorskip("torch")
nn = torch.nn

# Published figures (torchvision's for AlexNet, VGG-16 and the ResNets).
LENET5 = 61_706
ALEXNET_SINGLE = 61_100_840
ALEXNET_PAPER = 60_965_224
VGG16 = 138_357_544
INCEPTION_3A = 163_696
RESNET = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160, 152: 60_192_808}
UNET_1 = 1_940_817  # one input channel
UNET_3 = 1_941_105  # three (the original Kaggle nuclei notebook)


@pytest.fixture(scope="module")
def keras():
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    return pytest.importorskip("keras")


def on_meta(build):
    with torch.device("meta"):
        return build()


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------
# utils.shapes layer specs, written out independently of utils.models
# ---------------------------------------------------------------------------


def lenet_specs(pool=MaxPool2D, classes=10):
    return [Conv2D(6, 5), pool(2), Conv2D(16, 5), pool(2), Flatten(), Dense(120), Dense(84), Dense(classes)]


def alexnet_specs(variant):
    if variant == "single":
        f, g = (64, 192, 384, 256, 256), (1, 1, 1, 1, 1)
    else:
        f, g = (96, 256, 384, 384, 256), (1, 2, 1, 2, 2)
    return [Conv2D(f[0], 11, stride=4, padding=2, groups=g[0]), MaxPool2D(3, stride=2),
            Conv2D(f[1], 5, padding=2, groups=g[1]), MaxPool2D(3, stride=2),
            Conv2D(f[2], 3, padding=1, groups=g[2]), Conv2D(f[3], 3, padding=1, groups=g[3]),
            Conv2D(f[4], 3, padding=1, groups=g[4]), MaxPool2D(3, stride=2),
            Flatten(), Dense(4096), Dense(4096), Dense(1000)]


def vgg_block_specs(out_channels, num_convs):
    return [Conv2D(out_channels, 3, padding=1)] * num_convs + [MaxPool2D(2)]


def vgg16_specs():
    layers = []
    for filters, convs in [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]:
        layers += vgg_block_specs(filters, convs)
    return layers + [Flatten(), Dense(4096), Dense(4096), Dense(1000)]


def inception_params(c_in, c1, c3r, c3, c5r, c5, cp):
    branches = [[Conv2D(c1, 1)], [Conv2D(c3r, 1), Conv2D(c3, 3, padding=1)],
                [Conv2D(c5r, 1), Conv2D(c5, 5, padding=2)], [MaxPool2D(3, stride=1, padding=1), Conv2D(cp, 1)]]
    shapes = [summarize((c_in, 28, 28), b) for b in branches]
    assert all(s.output_shape[1:] == (28, 28) for s in shapes)
    return sum(s.total_params for s in shapes), sum(s.output_shape[0] for s in shapes)


def basic_block_params(c_in, c_out, stride, size=32):
    path = [Conv2D(c_out, 3, stride=stride, padding=1, bias=False), BatchNorm2D(),
            Conv2D(c_out, 3, padding=1, bias=False), BatchNorm2D()]
    total = count_params((c_in, size, size), path)
    if stride != 1 or c_in != c_out:
        total += count_params((c_in, size, size), [Conv2D(c_out, 1, stride=stride, bias=False), BatchNorm2D()])
    return total


def bottleneck_params(c_in, width, stride, size=32):
    path = [Conv2D(width, 1, bias=False), BatchNorm2D(), Conv2D(width, 3, stride=stride, padding=1, bias=False),
            BatchNorm2D(), Conv2D(4 * width, 1, bias=False), BatchNorm2D()]
    total = count_params((c_in, size, size), path)
    if stride != 1 or c_in != 4 * width:
        total += count_params((c_in, size, size), [Conv2D(4 * width, 1, stride=stride, bias=False), BatchNorm2D()])
    return total


def resnet_params(depth):
    kind, counts = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
                    50: ("bottleneck", (3, 4, 6, 3)), 101: ("bottleneck", (3, 4, 23, 3)),
                    152: ("bottleneck", (3, 8, 36, 3))}[depth]
    total = count_params((3, 224, 224), [Conv2D(64, 7, stride=2, padding=3, bias=False), BatchNorm2D()])
    c_in = 64
    for stage, (width, n) in enumerate(zip((64, 128, 256, 512), counts)):
        for b in range(n):
            stride = 2 if stage and not b else 1
            if kind == "basic":
                total += basic_block_params(c_in, width, stride)
                c_in = width
            else:
                total += bottleneck_params(c_in, width, stride)
                c_in = 4 * width
    return total + count_params((c_in, 7, 7), [GlobalAvgPool2D(), Dense(1000)])


def unet_params(in_channels, size=64):
    def unit(c):
        return [Conv2D(c, 3, padding=1), Conv2D(c, 3, padding=1)]

    total, shape, skips = 0, (in_channels, size, size), []
    for c in (16, 32, 64, 128):
        s = summarize(shape, unit(c))
        skips.append(s.output_shape)
        shape = summarize(s.output_shape, [MaxPool2D(2)]).output_shape
        total += s.total_params
    s = summarize(shape, unit(256))
    total, shape = total + s.total_params, s.output_shape
    for c, skip in zip((128, 64, 32, 16), reversed(skips)):
        up = summarize(shape, [ConvTranspose2D(c, 2, stride=2)])
        assert up.output_shape == skip
        s = summarize((2 * c, *skip[1:]), unit(c))
        total, shape = total + up.total_params + s.total_params, s.output_shape
    return total + count_params(shape, [Conv2D(1, 1)])


# ---------------------------------------------------------------------------
# reference counts (PyTorch, on the meta device) and utils.shapes
# ---------------------------------------------------------------------------

CASES = {
    "lenet5": (lambda: models.lenet5(), LENET5, lambda: count_params((1, 32, 32), lenet_specs())),
    "lenet5 tanh avg": (lambda: models.lenet5(activation="tanh", pooling="avg"), LENET5,
                        lambda: count_params((1, 32, 32), lenet_specs(AvgPool2D))),
    "alexnet": (lambda: models.alexnet(), ALEXNET_SINGLE,
                lambda: count_params((3, 224, 224), alexnet_specs("single"))),
    "alexnet paper": (lambda: models.alexnet(variant="paper"), ALEXNET_PAPER,
                      lambda: count_params((3, 224, 224), alexnet_specs("paper"))),
    "vgg16": (lambda: models.vgg16(), VGG16, lambda: count_params((3, 224, 224), vgg16_specs())),
    "inception 3a": (lambda: models.inception_block(), INCEPTION_3A,
                     lambda: inception_params(192, 64, 96, 128, 16, 32, 32)[0]),
    "resnet18": (lambda: models.resnet(18), RESNET[18], lambda: resnet_params(18)),
    "resnet34": (lambda: models.resnet(34), RESNET[34], lambda: resnet_params(34)),
    "resnet50": (lambda: models.resnet(50), RESNET[50], lambda: resnet_params(50)),
    "resnet101": (lambda: models.resnet(101), RESNET[101], lambda: resnet_params(101)),
    "resnet152": (lambda: models.resnet(152), RESNET[152], lambda: resnet_params(152)),
    "unet": (lambda: models.unet(), UNET_1, lambda: unet_params(1)),
    "unet rgb": (lambda: models.unet(3), UNET_3, lambda: unet_params(3)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_reference_count_equals_utils_shapes(name):
    build, reference, by_shapes = CASES[name]
    model = on_meta(build)
    assert n_params(model) == reference, name
    assert models.count_params(model) == reference
    assert by_shapes() == reference


def test_inception_3a_outputs_256_channels():
    assert inception_params(192, 64, 96, 128, 16, 32, 32) == (INCEPTION_3A, 256)
    other = (480, 192, 96, 208, 16, 48, 64)  # module 4a
    assert n_params(on_meta(lambda: models.inception_block(*other))) == inception_params(*other)[0]


@pytest.mark.parametrize("c_in,c_out,stride", [(64, 64, 1), (64, 128, 2), (32, 48, 1), (16, 16, 2)])
def test_basic_block_count(c_in, c_out, stride):
    block = models.resnet_basic_block(c_in, c_out, stride)
    assert n_params(block) == basic_block_params(c_in, c_out, stride)
    assert (block.downsample is not None) == (stride != 1 or c_in != c_out)


@pytest.mark.parametrize("c_in,width,stride", [(64, 64, 1), (256, 64, 1), (256, 128, 2), (512, 256, 2)])
def test_bottleneck_block_count(c_in, width, stride):
    block = models.resnet_bottleneck_block(c_in, width, stride)
    assert n_params(block) == bottleneck_params(c_in, width, stride)


@pytest.mark.parametrize("c_in,c_out,convs", [(3, 64, 2), (64, 128, 2), (128, 256, 3), (5, 7, 1)])
def test_vgg_block_count(c_in, c_out, convs):
    assert n_params(models.vgg_block(c_in, c_out, convs)) == count_params((c_in, 32, 32),
                                                                           vgg_block_specs(c_out, convs))


@pytest.mark.parametrize("build,specs,input_shape", [
    (lambda: models.lenet5(), lenet_specs(), (1, 32, 32)),
    (lambda: models.alexnet(), alexnet_specs("single"), (3, 224, 224)),
    (lambda: models.alexnet(variant="paper"), alexnet_specs("paper"), (3, 224, 224)),
    (lambda: models.vgg16(), vgg16_specs(), (3, 224, 224)),
], ids=["lenet5", "alexnet", "alexnet paper", "vgg16"])
def test_layer_table_equals_utils_shapes(build, specs, input_shape):
    """Layer by layer: the framework's output shapes and parameters are utils.shapes' rows."""
    table = models.summary(on_meta(build), input_shape, depth=2)
    rows = [(r.output_shape, r.params) for r in table if r.kind not in ("ReLU", "Tanh", "Dropout")]
    assert rows == [(r.output_shape, r.params) for r in summarize(input_shape, specs)]


def test_resnet50_stage_shapes():
    table = models.summary(on_meta(lambda: models.resnet(50)), (3, 224, 224))
    shapes = {r.name: r.output_shape for r in table}
    assert shapes["conv1"] == (64, 112, 112) and shapes["maxpool"] == (64, 56, 56)
    assert [shapes[f"layer{i}"] for i in (1, 2, 3, 4)] == [(256, 56, 56), (512, 28, 28), (1024, 14, 14),
                                                           (2048, 7, 7)]
    assert table.output_shape == (1000,) and table.total_params == RESNET[50]
    assert sum(r.params for r in table) == RESNET[50]


def test_resnet_parameter_names_are_torchvisions():
    keys = set(on_meta(lambda: models.resnet(50)).state_dict())
    for key in ("conv1.weight", "bn1.running_mean", "layer1.0.conv3.weight", "layer1.0.downsample.0.weight",
                "layer1.0.downsample.1.num_batches_tracked", "layer4.2.bn3.bias", "fc.weight", "fc.bias"):
        assert key in keys
    assert len([k for k in keys if k.endswith(".weight")]) == 107  # 53 convs + 53 batch norms + fc
    alex = set(on_meta(lambda: models.alexnet()).state_dict())
    assert alex == {f"{part}.{i}.{w}" for part, ids in (("features", (0, 3, 6, 8, 10)), ("classifier", (1, 4, 6)))
                    for i in ids for w in ("weight", "bias")}


def test_plain_block_has_no_shortcut():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 6, 6)
    for skip in (True, False):
        block = models.resnet_basic_block(8, 8, skip=skip).eval()
        assert n_params(block) == basic_block_params(8, 8, 1)
        with torch.no_grad():
            block.bn2.weight.zero_()  # F(x) = bn2(...) = beta = 0
            out = block(x)
        expected = torch.relu(x) if skip else torch.zeros_like(x)
        assert torch.allclose(out, expected), skip
    assert "skip=False" in repr(models.resnet_basic_block(8, 16, 2, skip=False))
    assert models.resnet_basic_block(8, 16, 2, skip=False).downsample is None
    assert models.resnet_bottleneck_block(16, 4, skip=False).downsample is None


# ---------------------------------------------------------------------------
# forward passes (PyTorch, NCHW)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("build,x_shape,y_shape", [
    (lambda: models.lenet5(), (3, 1, 32, 32), (3, 10)),
    (lambda: models.lenet5(7, in_channels=3, activation="tanh", pooling="avg"), (2, 3, 32, 32), (2, 7)),
    (lambda: models.vgg_block(3, 16, 2), (2, 3, 10, 14), (2, 16, 5, 7)),
    (lambda: models.inception_block(), (2, 192, 28, 28), (2, 256, 28, 28)),
    (lambda: models.inception_block(16, 4, 4, 8, 2, 4, 4), (2, 16, 9, 7), (2, 20, 9, 7)),
    (lambda: models.resnet_basic_block(8, 16, 2), (2, 8, 9, 10), (2, 16, 5, 5)),
    (lambda: models.resnet_bottleneck_block(16, 8, 2), (2, 16, 8, 7), (2, 32, 4, 4)),
    (lambda: models.resnet(18, 10, in_channels=1), (2, 1, 64, 64), (2, 10)),
    (lambda: models.unet(), (2, 1, 64, 48), (2, 1, 64, 48)),
    (lambda: models.unet(3, 2, base=4, dropout=0.0), (1, 3, 32, 32), (1, 2, 32, 32)),
], ids=["lenet5", "lenet5 tanh", "vgg_block", "inception", "inception small", "basic block", "bottleneck",
        "resnet18", "unet", "unet small"])
def test_torch_forward_shape(build, x_shape, y_shape):
    torch.manual_seed(0)
    model = build().eval()
    with torch.no_grad():
        y = model(torch.rand(x_shape))
    assert tuple(y.shape) == y_shape and torch.isfinite(y).all()
    if type(model).__name__ == "UNet":
        assert ((y >= 0) & (y <= 1)).all()  # sigmoid output


@pytest.mark.parametrize("build", [lambda: models.alexnet(), lambda: models.vgg16(), lambda: models.resnet(50)],
                         ids=["alexnet", "vgg16", "resnet50"])
def test_torch_forward_imagenet_size(build):
    torch.manual_seed(0)
    model = build().eval()
    with torch.no_grad():
        y = model(torch.rand(1, 3, 224, 224))
    assert tuple(y.shape) == (1, 1000) and torch.isfinite(y).all()


# ---------------------------------------------------------------------------
# Keras (NHWC): same counts, shapes, and the same function
# ---------------------------------------------------------------------------

KERAS_CASES = {
    "lenet5": (lambda f: models.lenet5(framework=f), LENET5),
    "alexnet": (lambda f: models.alexnet(framework=f), ALEXNET_SINGLE),
    "alexnet paper": (lambda f: models.alexnet(variant="paper", framework=f), ALEXNET_PAPER),
    "vgg16": (lambda f: models.vgg16(framework=f), VGG16),
    "vgg_block": (lambda f: models.vgg_block(64, 128, 2, framework=f), None),
    "inception 3a": (lambda f: models.inception_block(framework=f), INCEPTION_3A),
    "basic block": (lambda f: models.resnet_basic_block(64, 128, 2, framework=f), None),
    "bottleneck": (lambda f: models.resnet_bottleneck_block(256, 128, 2, framework=f), None),
    "resnet18": (lambda f: models.resnet(18, framework=f), RESNET[18]),
    "resnet50": (lambda f: models.resnet(50, framework=f), RESNET[50]),
    "unet": (lambda f: models.unet(framework=f), UNET_1),
}


def bn_channels(torch_model) -> int:
    return sum(m.num_features for m in torch_model.modules() if isinstance(m, nn.BatchNorm2d))


@pytest.mark.parametrize("name", list(KERAS_CASES))
def test_keras_count_equals_torch(keras, name):
    build, reference = KERAS_CASES[name]
    torch_model = on_meta(lambda: build("torch"))
    keras_model = build("keras")
    assert isinstance(keras_model, keras.Model)
    trainable = models.count_params(keras_model, trainable_only=True)
    assert trainable == n_params(torch_model)
    if reference is not None:
        assert trainable == reference
    # Keras' count_params() adds each batch norm's moving mean and variance (non-trainable).
    assert keras_model.count_params() - trainable == 2 * bn_channels(torch_model)
    assert models.count_params(keras_model) == keras_model.count_params()


def test_keras_resnet50_counts(keras):
    model = models.resnet(50, framework="keras")
    non_trainable = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    assert non_trainable == 53_120
    assert model.count_params() - non_trainable == RESNET[50] == 25_557_032
    table = models.summary(model, (224, 224, 3))
    shapes = {r.name: r.output_shape for r in table}
    assert [shapes[f"layer{i}"] for i in (1, 2, 3, 4)] == [(56, 56, 256), (28, 28, 512), (14, 14, 1024),
                                                           (7, 7, 2048)]
    assert table.trainable_params == RESNET[50] and table.total_params == RESNET[50] + 53_120
    assert "trainable" in table.table().splitlines()[0]


@pytest.mark.parametrize("build,x_shape,y_shape", [
    (lambda: models.lenet5(framework="keras"), (3, 32, 32, 1), (3, 10)),
    (lambda: models.alexnet(10, variant="paper", framework="keras"), (1, 224, 224, 3), (1, 10)),
    (lambda: models.vgg_block(3, 16, 2, framework="keras"), (2, 10, 14, 3), (2, 5, 7, 16)),
    (lambda: models.inception_block(framework="keras"), (2, 28, 28, 192), (2, 28, 28, 256)),
    (lambda: models.resnet_basic_block(8, 16, 2, framework="keras"), (2, 9, 10, 8), (2, 5, 5, 16)),
    (lambda: models.resnet_bottleneck_block(16, 8, 2, framework="keras"), (2, 8, 7, 16), (2, 4, 4, 32)),
    (lambda: models.resnet(50, 10, framework="keras"), (1, 64, 64, 3), (1, 10)),
    (lambda: models.unet(framework="keras"), (2, 64, 48, 1), (2, 64, 48, 1)),
], ids=["lenet5", "alexnet paper", "vgg_block", "inception", "basic block", "bottleneck", "resnet50", "unet"])
def test_keras_forward_shape(keras, build, x_shape, y_shape):
    y = np.asarray(build()(np.random.default_rng(0).random(x_shape, dtype=np.float32), training=False))
    assert y.shape == y_shape and np.isfinite(y).all()


def copy_to_keras(torch_model, keras_model, names):
    """Copy PyTorch weights into the Keras layers named by ``names`` (OIHW -> HWIO)."""
    modules = dict(torch_model.named_modules())
    for torch_name, keras_name in names.items():
        m, layer = modules[torch_name], keras_model.get_layer(keras_name)
        if isinstance(m, nn.BatchNorm2d):
            values = [m.weight, m.bias, m.running_mean, m.running_var]
        elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):  # both permute to (kh, kw, dim1, dim0)
            values = [m.weight.permute(2, 3, 1, 0)] + ([m.bias] if m.bias is not None else [])
        elif isinstance(m, nn.Linear):
            values = [m.weight.T, m.bias]
        else:
            raise TypeError(torch_name)
        layer.set_weights([v.detach().numpy() for v in values])


def randomize_batch_norms(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)


def block_names(n_convs, projection):
    names = {f"{kind}{i}": f"{kind}{i}" for i in range(1, n_convs + 1) for kind in ("conv", "bn")}
    if projection:
        names.update({"downsample.0": "downsample_conv", "downsample.1": "downsample_bn"})
    return names


def unet_names():
    names = {f"{part}.conv{i}": f"{part}_conv{i}" for i in (1, 2)
             for part in ("enc1", "enc2", "enc3", "enc4", "bottleneck", "dec4", "dec3", "dec2", "dec1")}
    return names | {f"up{i}": f"up{i}" for i in (1, 2, 3, 4)} | {"head": "head"}


INCEPTION_NAMES = {"branch1.conv": "branch1_1x1", "branch2.reduce.conv": "branch2_reduce",
                   "branch2.conv3x3.conv": "branch2_3x3", "branch3.reduce.conv": "branch3_reduce",
                   "branch3.conv5x5.conv": "branch3_5x5", "branch4.proj.conv": "branch4_proj"}


@pytest.mark.parametrize("case", ["inception", "basic identity", "basic projection", "bottleneck projection",
                                  "unet"])
def test_keras_and_torch_compute_the_same_function(keras, case):
    """Same weights in, same outputs out: the layers, paddings and concatenation orders agree."""
    build, names, x_shape = {
        "inception": (lambda f: models.inception_block(16, 4, 4, 8, 2, 4, 4, framework=f), INCEPTION_NAMES,
                      (2, 16, 9, 7)),
        "basic identity": (lambda f: models.resnet_basic_block(8, 8, framework=f), block_names(2, False),
                           (2, 8, 9, 10)),
        "basic projection": (lambda f: models.resnet_basic_block(8, 16, 2, framework=f), block_names(2, True),
                             (2, 8, 9, 10)),
        "bottleneck projection": (lambda f: models.resnet_bottleneck_block(8, 4, 2, framework=f),
                                  block_names(3, True), (2, 8, 8, 9)),
        "unet": (lambda f: models.unet(2, base=4, framework=f), unet_names(), (2, 2, 32, 16)),
    }[case]
    torch.manual_seed(0)
    torch_model = build("torch").eval()
    randomize_batch_norms(torch_model)
    keras_model = build("keras")
    copy_to_keras(torch_model, keras_model, names)
    x = np.random.default_rng(0).standard_normal(x_shape).astype(np.float32)  # NCHW
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x)).numpy()
    got = np.asarray(keras_model(x.transpose(0, 2, 3, 1), training=False)).transpose(0, 3, 1, 2)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_keras_and_torch_lenet5_agree_after_reordering_the_flatten(keras):
    """NCHW flattens (C, H, W), NHWC (H, W, C): fc1's 400 inputs come in another order."""
    torch.manual_seed(0)
    torch_model = models.lenet5().eval()
    keras_model = models.lenet5(framework="keras")
    copy_to_keras(torch_model, keras_model, {"conv1": "conv1", "conv2": "conv2", "fc2": "fc2", "fc3": "fc3"})
    w = torch_model.fc1.weight.detach().reshape(120, 16, 5, 5).permute(2, 3, 1, 0).reshape(400, 120)
    keras_model.get_layer("fc1").set_weights([w.numpy(), torch_model.fc1.bias.detach().numpy()])
    x = np.random.default_rng(1).random((4, 1, 32, 32), dtype=np.float32)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x)).numpy()
    got = np.asarray(keras_model(x.transpose(0, 2, 3, 1), training=False))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_initialisation_matches_across_frameworks(keras):
    """Same scheme in both: U-Net He-normal (fan-in), ResNet He-normal (fan-out, torchvision's)."""
    torch.manual_seed(0)
    keras.utils.set_random_seed(0)
    pairs = [(models.unet(), models.unet(framework="keras"),
              [("enc3.conv2", "enc3_conv2"), ("up2", "up2"), ("dec4.conv1", "dec4_conv1")]),
             (models.resnet_basic_block(64, 128, 2), models.resnet_basic_block(64, 128, 2, framework="keras"),
              [("conv2", "conv2"), ("downsample.0", "downsample_conv")])]
    for torch_model, keras_model, names in pairs:
        modules = dict(torch_model.named_modules())
        for torch_name, keras_name in names:
            w_torch = modules[torch_name].weight.detach().numpy()
            w_keras = np.asarray(keras_model.get_layer(keras_name).get_weights()[0])
            assert w_torch.size == w_keras.size
            assert np.std(w_torch) == pytest.approx(np.std(w_keras), rel=0.1), torch_name
            bias = modules[torch_name].bias
            assert bias is None or not bias.detach().any()


def test_keras_blocks_can_be_used_twice_in_one_model(keras):
    model = keras.Sequential([keras.Input((16, 16, 8)),
                              models.resnet_basic_block(8, 8, framework="keras"),
                              models.resnet_basic_block(8, 8, framework="keras"),
                              models.inception_block(8, 2, 2, 2, 2, 2, 2, framework="keras"),
                              models.inception_block(8, 2, 2, 2, 2, 2, 2, framework="keras")])
    assert len({layer.name for layer in model.layers}) == 4
    assert model.output_shape == (None, 16, 16, 8)


# ---------------------------------------------------------------------------
# summary and count_params
# ---------------------------------------------------------------------------


def test_summary_torch_table_and_state():
    model = models.lenet5()
    model.train()
    table = models.summary(model, (1, 32, 32))
    assert model.training and all(m.training for m in model.modules())  # mode restored
    assert [r.name for r in table][:3] == ["conv1", "act1", "pool1"]
    assert table.output_shape == (10,) and table.total_params == LENET5 == table.trainable_params
    text = str(table)
    assert "61,706" in text and "(6, 28, 28)" in text and "trainable" not in text.splitlines()[0]
    inception = models.summary(models.inception_block(), (192, 28, 28))
    assert [r.name for r in inception] == ["branch1", "branch2", "branch3", "branch4"]
    assert sum(r.params for r in inception) == INCEPTION_3A


def test_model_summary_table_text_and_row_container():
    # ModelSummary shares its row container and table layout with utils.shapes.Summary.
    rows = (models.SummaryRow("conv", "Conv2D", (None, None, 8), 224, 224),
            models.SummaryRow("bn", "BatchNormalization", (None, None, 8), 32, 16))
    keras_like = models.ModelSummary("keras", (None, None, 3), rows, 256, 240)
    assert str(keras_like) == keras_like.table() == "\n".join([
        "#  layer  type                output shape     params  trainable",
        "----------------------------------------------------------------",
        "   input  (H, W, C)           (None, None, 3)",
        "0  conv   Conv2D              (None, None, 8)     224        224",
        "1  bn     BatchNormalization  (None, None, 8)      32         16",
        "----------------------------------------------------------------",
        "   total                                          256        240",
    ])
    assert len(keras_like) == 2 and list(keras_like) == list(rows) and keras_like[-1] is rows[1]
    assert keras_like[:1] == rows[:1] and keras_like.output_shape == (None, None, 8)
    torch_like = models.ModelSummary("torch", (3, 4, 4), (models.SummaryRow("fc", "Linear", (5,), 245, 245),),
                                     245, 245)
    assert str(torch_like).splitlines() == [
        "#  layer  type       output shape  params",
        "-----------------------------------------",
        "   input  (C, H, W)  (3, 4, 4)",
        "0  fc     Linear     (5,)             245",
        "-----------------------------------------",
        "   total                              245",
    ]
    empty = models.ModelSummary("torch", (3, 4, 4), (), 0, 0)
    assert len(empty) == 0 and list(empty) == [] and empty.output_shape == (3, 4, 4)
    spec = summarize((3, 4, 4), [])
    assert (len(spec), list(spec), spec.output_shape) == (len(empty), list(empty), empty.output_shape)


def test_count_params_trainable_only():
    model = models.lenet5()
    model.conv1.weight.requires_grad_(False)
    assert models.count_params(model) == LENET5
    assert models.count_params(model, trainable_only=True) == LENET5 - 150


def test_summary_keras_shapes(keras):
    model = models.inception_block(framework="keras")
    assert models.summary(model).rows[-1].output_shape == (None, None, 256)
    assert models.summary(model, (28, 28, 192)).rows[-1].output_shape == (28, 28, 256)
    lenet = models.summary(models.lenet5(framework="keras"))
    assert [r.output_shape for r in lenet][:2] == [(28, 28, 6), (14, 14, 6)]
    with pytest.raises(ValueError, match="input_shape"):
        models.summary(models.lenet5(framework="keras"), (28, 28, 1))
    with pytest.raises(ValueError, match="depth"):
        models.summary(model, depth=2)


# ---------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("call,error,match", [
    (lambda: models.lenet5(framework="tf"), ValueError, "framework"),
    (lambda: models.lenet5(framework=None), TypeError, "framework"),
    (lambda: models.lenet5(0), ValueError, "num_classes"),
    (lambda: models.lenet5(activation="sigmoid"), ValueError, "activation"),
    (lambda: models.lenet5(pooling="sum"), ValueError, "pooling"),
    (lambda: models.alexnet(variant="two-gpu"), ValueError, "variant"),
    (lambda: models.alexnet(dropout=1.0), ValueError, "dropout"),
    (lambda: models.vgg16(dropout="0.5"), TypeError, "dropout"),
    (lambda: models.vgg_block(3, 64, 0), ValueError, "num_convs"),
    (lambda: models.vgg_block(3.0, 64, 2), TypeError, "in_channels"),
    (lambda: models.inception_block(192, 64, 96, 128, 16, 32, 0), ValueError, "pool_proj"),
    (lambda: models.resnet_basic_block(8, 8, 3), ValueError, "stride"),
    (lambda: models.resnet_basic_block(8, 8, skip=1), TypeError, "skip"),
    (lambda: models.resnet_bottleneck_block(8, 0), ValueError, "width"),
    (lambda: models.resnet(20), ValueError, "depth"),
    (lambda: models.resnet("50"), TypeError, "depth"),
    (lambda: models.unet(dropout=(0.1, 0.2)), ValueError, "dropout"),
    (lambda: models.unet(base=0), ValueError, "base"),
    (lambda: models.count_params("model"), TypeError, "model"),
    (lambda: models.summary(models.lenet5()), TypeError, "input_shape"),
    (lambda: models.summary(models.lenet5(), (1, 32, 32), depth=0), ValueError, "depth"),
])
def test_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()
