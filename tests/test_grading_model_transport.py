"""Models across the verifier's trust boundary (utils.grading.model_transport), with real PyTorch and Keras.

Each model goes through export (the child's side), JSON text and import (the parent's side); the rebuilt
model must behave like the original under the course's own checks, and hand-forged records that ask for
anything outside the allowlists must be refused with a TransportError.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import pathlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from utils.grading import a3, transport  # noqa: E402 (after the skip)
from utils.grading import model_transport as mt  # noqa: E402

_STEMS = itertools.count()


@pytest.fixture(autouse=True)
def _no_grader_seed(monkeypatch):
    monkeypatch.delenv("CNN_COURSE_GRADER_SEED", raising=False)


@pytest.fixture
def folder(tmp_path) -> pathlib.Path:
    return tmp_path


def export(model, folder: pathlib.Path) -> dict:
    """The record as the parent reads it: through JSON text, as the child's stdout carries it."""
    record = mt.export_model(model, folder, f"r{next(_STEMS)}")
    return transport.loads(transport.dumps(record))


def roundtrip(model, folder: pathlib.Path):
    return mt.import_model(export(model, folder), folder)


def forward(model, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(x.clone())


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


LAYER_ATTRIBUTES = ("kernel_size", "stride", "padding", "dilation", "groups", "in_channels", "out_channels",
                    "output_padding", "padding_mode", "affine", "track_running_stats", "eps", "momentum",
                    "num_features", "in_features", "out_features", "start_dim", "end_dim", "ceil_mode",
                    "negative_slope", "p", "inplace", "dim", "mode", "scale_factor", "normalized_shape",
                    "num_groups", "approximate", "output_size")


def assert_same_structure(original, imported) -> None:
    originals, imports = list(original.modules()), list(imported.modules())
    assert [type(m).__name__ for m in originals] == [type(m).__name__ for m in imports]
    assert [n for n, _ in original.named_parameters()] == [n for n, _ in imported.named_parameters()]
    assert [n for n, _ in original.named_buffers()] == [n for n, _ in imported.named_buffers()]
    assert n_params(original) == n_params(imported)
    for a, b in zip(originals, imports):
        if type(a).__module__.startswith("torch.nn.modules") and a is not original:
            assert type(a) is type(b)
            for name in LAYER_ATTRIBUTES:
                assert getattr(a, name, None) == getattr(b, name, None), (type(a).__name__, name)
            assert (getattr(a, "bias", None) is None) == (getattr(b, "bias", None) is None)
        assert a.training == b.training
    for (name, p), (_, q) in zip(original.state_dict().items(), imported.state_dict().items()):
        assert p.dtype == q.dtype and p.shape == q.shape and torch.equal(p, q), name


# ---------------------------------------------------------------------------------------------
# the instructor's models (small equivalents of solutions/a3_building_cnns)


def lenet5(num_classes=10):
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, kernel_size=5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, num_classes),
    )


def vgg_block(in_channels, out_channels, num_convs):
    layers = []
    for i in range(num_convs):
        layers += [nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, kernel_size=3, padding=1),
                   nn.ReLU()]
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_channels))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def small_unet(in_channels=1, num_classes=1, base=16):
    def double_conv(c_in, c_out):
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(c_out, c_out, 3, padding=1), nn.ReLU())

    class SmallUNet(nn.Module):
        def __init__(self):
            super().__init__()
            b = base
            self.enc1 = double_conv(in_channels, b)
            self.enc2 = double_conv(b, 2 * b)
            self.enc3 = double_conv(2 * b, 4 * b)
            self.pool = nn.MaxPool2d(2)
            self.bottleneck = double_conv(4 * b, 8 * b)
            self.up3 = nn.ConvTranspose2d(8 * b, 4 * b, 2, stride=2)
            self.dec3 = double_conv(8 * b, 4 * b)
            self.up2 = nn.ConvTranspose2d(4 * b, 2 * b, 2, stride=2)
            self.dec2 = double_conv(4 * b, 2 * b)
            self.up1 = nn.ConvTranspose2d(2 * b, b, 2, stride=2)
            self.dec1 = double_conv(2 * b, b)
            self.head = nn.Conv2d(b, num_classes, 1)

        def forward(self, x):
            e1 = self.enc1(x)
            e2 = self.enc2(self.pool(e1))
            e3 = self.enc3(self.pool(e2))
            z = self.bottleneck(self.pool(e3))
            d3 = self.dec3(torch.cat([self.up3(z), e3], dim=1))
            d2 = self.dec2(torch.cat([self.up2(d3), e2], dim=1))
            d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
            return self.head(d1)

    return SmallUNet()


class ViewNet(nn.Module):
    """Shape arithmetic in forward, a parameter and a buffer of its own, a plain tensor attribute."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(2))
        self.fc = nn.Linear(16, 5)
        self.scale = nn.Parameter(torch.tensor(1.5))
        self.register_buffer("shift", torch.arange(5, dtype=torch.float32))
        self.mask = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.5])

    def forward(self, x):
        x = self.features(x)
        x = x.view(x.size(0), -1)
        y = self.fc(x) * self.scale + self.shift
        y = y * self.mask
        z = torch.flatten(x[:, None, :4], 1).sum(dim=1, keepdim=True)
        return F.leaky_relu(y, 0.1) + z.expand(x.shape[0], 5) / math.sqrt(x.shape[1])


def test_lenet5_round_trip(folder):
    model = lenet5(7)
    imported = roundtrip(model, folder)
    x = torch.rand(3, 1, 32, 32)
    assert torch.allclose(forward(model, x), forward(imported, x), atol=1e-6)
    assert_same_structure(model, imported)
    assert type(imported).__name__ == "Sequential"


def test_train_digits_model_round_trip(folder):
    """The solution's train_digits returns nn.Sequential(nn.ZeroPad2d(2), lenet5(10)), trained, in eval mode."""
    model = nn.Sequential(nn.ZeroPad2d(2), lenet5(10)).eval()
    imported = roundtrip(model, folder)
    assert not imported.training and not any(m.training for m in imported.modules())
    x = torch.rand(4, 1, 28, 28)
    assert torch.allclose(forward(model, x), forward(imported, x), atol=1e-6)
    assert_same_structure(model, imported)


def test_vgg_block_round_trip(folder):
    model = vgg_block(3, 5, 2)
    imported = roundtrip(model, folder)
    x = torch.randn(2, 3, 8, 10)
    assert torch.allclose(forward(model, x), forward(imported, x), atol=1e-6)
    assert_same_structure(model, imported)


@pytest.mark.parametrize("args", [(4, 4, 1), (3, 6, 2)], ids=["identity", "projection"])
def test_residual_block_round_trip_and_in_place_edits(folder, args):
    model = ResidualBlock(*args)
    with torch.no_grad():  # trained-looking statistics
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 1.5)
                m.num_batches_tracked += 7
    imported = roundtrip(model, folder)
    assert imported.training and type(imported).__name__ == "ResidualBlock"
    assert_same_structure(model, imported)
    x = torch.randn(2, args[0], 7, 6)
    assert torch.allclose(forward(model, x), forward(imported, x), atol=1e-5)
    before = forward(imported, x)
    # the checks' edits: zero the 3x3 weights, overwrite BN statistics and weights in place
    gamma, mean = torch.rand(args[1]) + 0.5, torch.randn(args[1])
    for net in (model, imported):
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3):
                    m.weight.zero_()
                if isinstance(m, nn.BatchNorm2d):
                    m.weight.copy_(gamma)
                    m.running_mean.copy_(mean)
    after = forward(imported, x)
    assert not torch.allclose(before, after)
    assert torch.allclose(forward(model, x), after, atol=1e-5)
    assert all(not m.training for m in imported.modules())


def test_unet_round_trip_and_cat_is_looked_up_at_call_time(folder):
    model = small_unet(2, 3, 4)
    imported = roundtrip(model, folder)
    assert_same_structure(model, imported)
    x = torch.randn(1, 2, 16, 24)
    records: list = []
    with a3._spy_cat(records):
        out = forward(imported, x)
    assert records == [(4, 1)] * 3  # the spy on torch.cat saw the imported model's three skip connections
    assert torch.allclose(forward(model, x), out, atol=1e-5)


def test_view_and_own_tensors_round_trip(folder):
    model = ViewNet()
    imported = roundtrip(model, folder)
    x = torch.randn(3, 3, 6, 6)
    assert torch.allclose(forward(model, x), forward(imported, x), atol=1e-6)
    assert_same_structure(model, imported)
    assert isinstance(imported.scale, nn.Parameter) and "mask" not in dict(imported.named_buffers())
    with torch.no_grad():
        for net in (model, imported):
            net.scale.fill_(-2.0)
            net.fc.bias.add_(1.0)
    assert torch.allclose(forward(model, x), forward(imported, x), atol=1e-6)
    assert ".view(size, -1)" in imported.code and ".size(0)" in imported.code


def test_layer_settings_round_trip(folder):
    layers = [
        nn.Conv2d(2, 4, 3, stride=2, padding=2, dilation=2, groups=2, padding_mode="reflect"),
        nn.Conv2d(4, 4, 3, padding="same", bias=False),
        nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1),
        nn.BatchNorm2d(3, eps=1e-3, momentum=None, affine=False),
        nn.BatchNorm2d(3, track_running_stats=False),
        nn.GroupNorm(1, 3), nn.Dropout2d(0.3), nn.LeakyReLU(0.2), nn.PReLU(3, init=0.1),
        nn.MaxPool2d(3, 2, 1, ceil_mode=True), nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        nn.ZeroPad2d((1, 0, 2, 0)), nn.AvgPool2d(2), nn.GELU(approximate="tanh"), nn.Softmax(dim=1),
        nn.AdaptiveAvgPool2d((3, 2)), nn.Flatten(1, 2), nn.LayerNorm([9, 2], elementwise_affine=False),
        nn.Unflatten(1, (3, 3)), nn.Identity(), nn.Flatten(), nn.Linear(18, 4, bias=False), nn.ELU(alpha=0.5),
    ]
    model = nn.Sequential(*layers).double()
    imported = roundtrip(model, folder)
    assert_same_structure(model, imported)
    for a, b in zip(model, imported.children()):
        assert a.extra_repr() == b.extra_repr()
    x = torch.randn(2, 2, 11, 9, dtype=torch.float64)
    assert torch.allclose(forward(model, x), forward(imported, x))


def test_model_that_is_one_layer_and_subclassed_layers(folder):
    conv = nn.Conv2d(1, 2, 3)
    imported = roundtrip(conv, folder)
    assert type(imported) is nn.Conv2d and torch.equal(imported.weight, conv.weight)

    class Conv3x3(nn.Conv2d):  # a subclass that only sets arguments: rebuilt as an nn.Conv2d
        def __init__(self, c_in, c_out):
            super().__init__(c_in, c_out, 3, padding=1)

    model = nn.Sequential(Conv3x3(1, 2), nn.ReLU())
    imported = roundtrip(model, folder)
    layer = imported.get_submodule("0")
    assert isinstance(layer, nn.Conv2d) and type(layer).__name__ == "Conv3x3"
    assert type(layer).__module__ == __name__  # what _library_guard looks at
    x = torch.randn(1, 1, 5, 5)
    assert torch.allclose(forward(model, x), forward(imported, x))


def test_custom_forward_is_traced_in_eval_mode(folder):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 3)

        def forward(self, input):  # a common name for the argument (shadows a builtin): allowed
            return self.fc(F.dropout(input, 0.5, self.training)) + torch.tensor([1.0, 2.0, 3.0])

    model = Net()  # returned in training mode: the checks call .eval() before every forward pass
    record = export(model, folder)
    assert [t["role"] for t in record["tensors"]][-1] == "constant"  # the tensor made in forward()
    imported = mt.import_model(record, folder)
    assert imported.training
    x = torch.randn(4, 6)
    assert torch.equal(forward(model, x), forward(imported, x))


def test_library_blocks_keep_their_names(folder):
    """a3._library_guard looks at the classes' modules: a ready-made block must still be seen."""

    class BasicBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3, padding=1)

        def forward(self, x):
            return F.relu(self.conv(x)) + x

    BasicBlock.__module__ = "torchvision.models.resnet"
    imported = roundtrip(nn.Sequential(BasicBlock(), nn.Flatten()), folder)
    with pytest.raises(a3.ForbiddenCall, match="torchvision.models.resnet.BasicBlock"):
        a3._library_guard(imported, "lenet5")


def test_models_inside_transport_values(folder):
    model = vgg_block(1, 2, 1)
    record = transport.encode((model, 3, np.arange(2.0)), folder, "r0")
    value = transport.decode(transport.loads(transport.dumps(record)), folder)
    assert type(value) is tuple and value[1] == 3 and isinstance(value[0], nn.Module)
    assert record["items"][0]["kind"] == "model"
    assert transport.encode(object(), folder, "r1")["kind"] == "opaque"


# ---------------------------------------------------------------------------------------------
# the course's checks pass on the imported instructor models


def carried(build, folder):
    def build_and_carry(*args):
        return roundtrip(build(*args), folder)

    return build_and_carry


def test_course_checks_pass_on_imported_models(folder, capsys):
    a3.check_lenet5(carried(lenet5, folder))
    a3.check_vgg_block(carried(vgg_block, folder))
    a3.check_small_unet(carried(small_unet, folder))

    class CarriedBlock(nn.Module):  # the check takes a class
        def __new__(cls, *args):
            return roundtrip(ResidualBlock(*args), folder)

    a3.check_residual_block(CarriedBlock)
    assert capsys.readouterr().out.count("passed") >= 4


def test_course_checks_still_catch_mistakes_on_imported_models(folder):
    def wrong_axis_unet(in_channels=1, num_classes=1, base=16):
        net = small_unet(in_channels, num_classes, base)

        class Wrong(nn.Module):
            def __init__(self):
                super().__init__()
                self.net = net

            def forward(self, x):
                return torch.cat([self.net(x), self.net(x)], dim=-1)

        return Wrong()

    with pytest.raises(a3.CheckError, match="axis 3"):
        a3.check_small_unet(carried(wrong_axis_unet, folder))


# ---------------------------------------------------------------------------------------------
# Keras


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")


def keras_lenet(keras, num_classes=10, batch_norm=False):
    layers = keras.layers
    return keras.Sequential([
        keras.Input((32, 32, 1)),
        layers.Conv2D(6, 5, activation="relu"), layers.AveragePooling2D(2),
        layers.Conv2D(16, 5, activation="relu"), layers.AveragePooling2D(2),
        layers.Flatten(), layers.Dense(120, activation="relu"),
        *([layers.BatchNormalization()] if batch_norm else []),
        layers.Dense(84, activation="tanh"), layers.Dense(num_classes),
    ])


def test_keras_lenet_round_trip(folder, keras):
    model = keras_lenet(keras, 10, batch_norm=True)
    model.compile(optimizer="adam", loss="mse")
    record = export(model, folder)
    assert record["framework"] == "keras" and "compile_config" not in json.loads(record["config"])
    imported = mt.import_model(record, folder)
    x = np.random.default_rng(0).random((2, 32, 32, 1), dtype=np.float32)
    assert np.allclose(model(x, training=False), imported(x, training=False), atol=1e-6)
    assert imported.count_params() == model.count_params() == a3.lenet5_params(10) + 2 * 120 * 2
    a3.check_lenet5(lambda n: roundtrip(keras_lenet(keras, n), folder))


def test_keras_forged_records_are_refused(folder, keras):
    record = export(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]), folder)

    def forged(change):
        config = json.loads(record["config"])
        change(config)
        return {**record, "config": json.dumps(config)}

    def layer(config):
        return config["config"]["layers"][1]

    cases = [
        lambda c: layer(c).update(class_name="Lambda"),
        lambda c: layer(c).update(module="os", class_name="system"),
        lambda c: layer(c).update(registered_name="evil>Dense"),
        lambda c: layer(c)["config"].update(kernel_initializer={"class_name": "__lambda__", "config": {}}),
        lambda c: layer(c)["config"].update(activation={"module": "builtins", "class_name": "function",
                                                        "config": "eval", "registered_name": "function"}),
        lambda c: c.update(compile_config={"loss": "mse"}),
    ]
    for change in cases:
        with pytest.raises(transport.TransportError):
            mt.import_model(forged(change), folder)
    bad_shape = {**record, "weights": record["weights"][::-1]}
    with pytest.raises(transport.TransportError, match="not match|shape"):
        mt.import_model(bad_shape, folder)


def test_keras_lambda_layer_is_an_export_error(folder, keras):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda t: t * 2), keras.layers.Dense(2)])
    with pytest.raises(mt.ModelExportError, match="Lambda"):
        mt.export_model(model, folder, "r0")


# ---------------------------------------------------------------------------------------------
# export errors: what the student is told


def test_untraceable_model_gives_a_clear_export_error(folder):
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            if x.sum() > 0:
                return self.fc(x)
            return x

    with pytest.raises(mt.ModelExportError, match="torch.fx.*could not trace.*Python if"):
        mt.export_model(Branchy(), folder, "r0")


@pytest.mark.parametrize("value, message", [
    (np.zeros(3), "numpy.ndarray"),
    ("lenet", "str"),
])
def test_not_a_model_is_an_export_error(folder, value, message):
    with pytest.raises(mt.ModelExportError, match=message):
        mt.export_model(value, folder, "r0")


def test_unsupported_models_are_export_errors(folder):
    lazy = nn.Sequential(nn.LazyLinear(3))
    with pytest.raises(mt.ModelExportError, match="LazyLinear"):
        mt.export_model(lazy, folder, "r0")
    tied = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    tied[1].weight = tied[0].weight
    with pytest.raises(mt.ModelExportError, match="shared"):
        mt.export_model(tied, folder, "r1")
    hooked = nn.Sequential(nn.Linear(3, 3))
    hooked[0].register_forward_hook(lambda module, args, out: out * 2)
    with pytest.raises(mt.ModelExportError, match="hooks"):
        mt.export_model(hooked, folder, "r2")

    class Numpyish(nn.Module):
        def forward(self, x):
            return x.numpy() * 2

    with pytest.raises(mt.ModelExportError, match="'numpy' is not allowed"):
        mt.export_model(Numpyish(), folder, "r3")


# ---------------------------------------------------------------------------------------------
# forged torch records


@pytest.fixture
def base_record(folder) -> dict:
    return export(ViewNet(), folder)


def node(record, name):
    return next(n for n in record["graph"] if n["name"] == name)


def first(record, op):
    return next(n for n in record["graph"] if n["op"] == op)


def set_function(target):
    return lambda r: first(r, "call_function").update(target=target)


def set_method(target):
    return lambda r: first(r, "call_method").update(target=target)


def set_layer_type(name):
    return lambda r: next(m for m in r["modules"] if m["kind"] == "layer").update(type=name)


FORGERIES = {
    "torch.load": set_function("torch.load"),
    "torch.save": set_function("torch.save"),
    "os.system": set_function("os.system"),
    "builtins.eval": set_function("builtins.eval"),
    "builtins.exec": set_function("builtins.exec"),
    "torch.manual_seed": set_function("torch.manual_seed"),
    "torch.set_grad_enabled": set_function("torch.set_grad_enabled"),
    "torch.compile": set_function("torch.compile"),
    "torch.hub.load": set_function("torch.hub.load"),
    "F.handle_torch_function": set_function("torch.nn.functional.handle_torch_function"),
    "method tolist": set_method("tolist"),
    "method register_hook": set_method("register_hook"),
    "method __reduce__": set_method("__reduce__"),
    "method numpy": set_method("numpy"),
    "method apply_": set_method("apply_"),
    "method with code": set_method("view(); import os; os.system('true'); x.view"),
    "getattr __class__": lambda r: r["graph"].insert(1, {"name": "cls", "op": "call_function",
                                                         "target": "builtins.getattr",
                                                         "args": [{"node": "x"}, "__class__"], "kwargs": {}}),
    "layer Lambda": set_layer_type("Lambda"),
    "layer MyLayer": set_layer_type("MyLayer"),
    "layer Sequential": set_layer_type("Sequential"),
    "layer LazyLinear": set_layer_type("LazyLinear"),
    "container base": lambda r: r["modules"][1].update(base="Lambda"),
    "container class name": lambda r: r["modules"][1]["class"].update(name="a.b; import os"),
    "config keyword": lambda r: next(m for m in r["modules"] if m["kind"] == "layer")["config"].update(evil=1),
    "config object": lambda r: next(m for m in r["modules"] if m["kind"] == "layer")["config"].update(
        kernel_size={"__reduce__": [1]}),
    "input shadows torch": lambda r: first(r, "placeholder").update(target="torch"),
    "input injects code": lambda r: first(r, "placeholder").update(target="x): import os #"),
    "node named self": lambda r: first(r, "call_module").update(name="self"),
    "keyword injects code": lambda r: first(r, "call_method")["kwargs"].update({"dim=1) or os.system('x'": 1}),
    "call_module on a container": lambda r: first(r, "call_module").update(target="features"),
    "call_module on a path": lambda r: first(r, "call_module").update(target="features.__class__"),
    "get_attr not a tensor": lambda r: first(r, "get_attr").update(target="fc.forward"),
    "later node": lambda r: first(r, "call_module")["args"].__setitem__(0, {"node": "output"}),
    "unknown tag": lambda r: first(r, "call_method")["args"].append({"lambda": "x"}),
    "two outputs": lambda r: r["graph"].append(dict(r["graph"][-1])),
    "module order": lambda r: r["modules"].reverse(),
    "tensor path escape": lambda r: r["tensors"][0].update(file="../r0_t0.npy"),
    "tensor dtype lie": lambda r: r["tensors"][0].update(dtype="<f8", torch_dtype="float64"),
    "tensor role": lambda r: next(t for t in r["tensors"] if t["owner"] == "fc").update(role="buffer"),
    "missing tensor": lambda r: r["tensors"].pop(0),
    "extra key": lambda r: r.update(code="print(1)"),
}


@pytest.mark.parametrize("name", list(FORGERIES))
def test_forged_torch_records_are_refused(folder, base_record, name):
    mt.import_model(copy.deepcopy(base_record), folder)  # the genuine record imports
    record = copy.deepcopy(base_record)
    FORGERIES[name](record)
    with pytest.raises(transport.TransportError):
        mt.import_model(transport.loads(transport.dumps(record)), folder)


def test_state_dict_shape_mismatch_is_refused(folder, base_record):
    entry = next(t for t in base_record["tensors"] if t["owner"] == "fc" and t["name"] == "weight")
    wrong = np.zeros((5, 17), dtype=np.float32)
    np.save(folder / entry["file"], wrong, allow_pickle=False)
    entry["shape"] = [5, 17]
    with pytest.raises(transport.TransportError, match="shape"):
        mt.import_model(base_record, folder)


def test_size_limits(folder, base_record, monkeypatch):
    record = copy.deepcopy(base_record)
    output = record["graph"].pop()
    last = record["graph"][-1]["name"]
    record["graph"] += [{"name": f"n{i}", "op": "call_method", "target": "relu",
                         "args": [{"node": last}], "kwargs": {}} for i in range(mt.MAX_NODES)]
    record["graph"].append(output)
    with pytest.raises(transport.TransportError, match="nodes"):
        mt.import_model(record, folder)
    monkeypatch.setattr(mt, "MAX_TOTAL_BYTES", 1000)
    with pytest.raises(transport.TransportError, match="larger than"):
        mt.import_model(base_record, folder)
