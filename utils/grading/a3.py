"""Checks of assignment 3, *Building CNNs* (``assignments/a3_building_cnns``).

One ``check_<function>(function, hidden=False)`` per graded function:

========================  ===========================================================
``check_lenet5``          ``lenet5(num_classes)``: a PyTorch ``nn.Module`` for NCHW input
                          ``(N, 1, 32, 32)``, or a ``keras.Model`` for NHWC input
                          ``(N, 32, 32, 1)``; output ``(N, num_classes)``
``check_vgg_block``       ``vgg_block(in_channels, out_channels, num_convs)``:
                          ``(N, in, H, W) -> (N, out, H/2, W/2)`` (PyTorch, NCHW)
``check_residual_block``  ``ResidualBlock(in_channels, out_channels, stride)`` (a class):
                          ``(N, in, H, W) -> (N, out, ceil(H/s), ceil(W/s))``
``check_small_unet``      ``small_unet(in_channels, num_classes, base)``:
                          ``(N, in, H, W) -> (N, num_classes, H, W)``, H and W divisible by 8
``check_train_digits``    ``train_digits(x_train, y_train, seed)`` -> a model mapping float32
                          ``(N, 1, 28, 28)`` pixels in [0, 1] to scores ``(N, 10)``
                          (a ``keras.Model``: ``(N, 28, 28, 1)``)
========================  ===========================================================

Every check builds the student's model on inputs drawn by
:func:`utils.grading.case_rng` (fresh per run for a student, from the grader's
secret seed while grading), counts its parameters (PyTorch
``sum(p.numel() for p in model.parameters())``, Keras ``model.count_params()``),
runs a forward pass in the framework's layout and compares shapes, counts and
values with what :mod:`utils.shapes` and :mod:`utils.conv` compute for the
stated architecture. A wrong answer is compared with the known mistakes, and
the message names the likely one.

TensorFlow/Keras are imported only when the student's object is a Keras model;
PyTorch is imported inside the functions. Nothing here writes to stderr.
"""

from __future__ import annotations

import contextlib
import re

import numpy as np

from utils import conv as _ref
from utils import shapes
from utils.grading import (
    CheckError,
    ForbiddenCall,
    Mistake,
    case_rng,
    check,
    check_finite,
    check_shape,
    diagnose,
    forbid,
    graded,
    passed,
    speed,
)

__all__ = [
    "TARGET_ACCURACY",
    "TIME_LIMIT_S",
    "check_lenet5",
    "check_vgg_block",
    "check_residual_block",
    "check_ResidualBlock",
    "check_small_unet",
    "check_train_digits",
    "lenet5_params",
    "vgg_block_params",
    "residual_block_params",
    "unet_params",
]

#: train_digits must reach this accuracy on the held-out digits ...
TARGET_ACCURACY = 0.95
#: ... within this many seconds of wall time (2 CPU cores; the solution takes about 2 s).
TIME_LIMIT_S = 45.0

# The course has no reference models to call, but if a ``utils.models`` module
# ever appears, these are the names that would give the answers away.
_FORBIDDEN = tuple(
    f"utils.models.{name}"
    for name in ("lenet5", "LeNet5", "vgg_block", "ResidualBlock", "BasicBlock", "small_unet",
                 "UNet", "train_digits")
)
_HINT = "build the layers yourself from nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d ..."
# Packages whose ready-made blocks must not appear inside a student's model.
_LIBRARY_PREFIXES = ("torchvision.", "timm.", "segmentation_models_pytorch.", "utils.models",
                     "keras.src.applications", "keras.applications")

_NCHW = ("batch size", "channels", "height", "width")


# ---------------------------------------------------------------------------
# framework helpers


def _is_keras(obj) -> bool:
    """True for a Keras model or layer, without importing Keras."""
    return any(c.__module__.split(".")[0] in ("keras", "tf_keras") for c in type(obj).__mro__)


def _is_torch_module(obj) -> bool:
    import torch

    return isinstance(obj, torch.nn.Module)


def _count_params(model) -> int:
    if _is_keras(model):
        return int(model.count_params())
    return int(sum(p.numel() for p in model.parameters()))


def _first_line(error: BaseException) -> str:
    """The informative first line of an error (Keras puts it after "Exception encountered ...")."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(error).splitlines()]
    lines = [line for line in lines if line and not line.startswith("Exception encountered when")]
    line = lines[0] if lines else ""
    return (line[:300] + " ...") if len(line) > 300 else line


def _raised(function: str, error: BaseException, call: str) -> CheckError:
    if isinstance(error, NotImplementedError):
        return CheckError(f"{function}: not implemented yet ({call} raised NotImplementedError)")
    return CheckError(f"{function}: {call} raised {type(error).__name__}: {_first_line(error)}")


@contextlib.contextmanager
def _seeded_torch(rng: np.random.Generator):
    """Seed PyTorch's global generator from ``rng`` for the block, then restore its state."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(2**31 - 1)))
        yield


def _keras_layers(model) -> list:
    return [model] + list(getattr(model, "_flatten_layers", lambda: [])())


def _keras_channels_first(model) -> bool:
    """A Keras model built for channels-first input (data_format or an Input of (1, H, W))."""
    layers = _keras_layers(model)
    if any(getattr(layer, "data_format", None) == "channels_first" for layer in layers):
        return True
    with contextlib.suppress(Exception):
        return tuple(model.inputs[0].shape[1:2]) == (1,) and model.inputs[0].shape[-1] != 1
    return False


def _library_guard(model, function: str) -> None:
    """Ready-made blocks (torchvision's BasicBlock ...) inside the model are not allowed."""
    if _is_keras(model):
        classes = [type(layer) for layer in _keras_layers(model)]
    else:
        classes = [type(m) for m in model.modules()]
    for cls in classes:
        module = cls.__module__ or ""
        if module.startswith(_LIBRARY_PREFIXES):
            raise ForbiddenCall(
                f"{function} uses {module}.{cls.__name__}: this assignment is about building "
                f"the network yourself; {_HINT}"
            )


def _build(function, name: str, args: tuple, rng, guard_function=None):
    """Call the student's builder inside the forbidden-reference guard."""
    call = f"{name}({', '.join(map(repr, args))})"
    with forbid(guard_function or function, _FORBIDDEN, name, _HINT), _seeded_torch(rng):
        try:
            model = function(*args)
        except CheckError:
            raise
        except Exception as error:  # the student's code may raise anything
            raise _raised(name, error, call) from None
    return model, call


def _torch_forward(model, x: np.ndarray) -> np.ndarray:
    """Forward pass of an nn.Module in eval mode on a float32 NCHW batch; float64 result."""
    import torch

    model.eval()
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    with torch.no_grad():
        out = model(torch.from_numpy(np.array(x, copy=True)).to(device))  # a copy: in-place ops
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"the forward pass returned a {type(out).__name__}, not a torch.Tensor")
    return out.detach().cpu().numpy().astype(np.float64)


def _keras_forward(model, x: np.ndarray) -> np.ndarray:
    out = model(x, training=False)
    if isinstance(out, (list, tuple)):
        raise TypeError(f"the model returned a {type(out).__name__}, expected one tensor")
    return np.asarray(out, dtype=np.float64)


def _forward(model, x_nchw: np.ndarray) -> np.ndarray:
    """Run the model in its framework's layout: NCHW for PyTorch, NHWC for Keras."""
    if _is_keras(model):
        return _keras_forward(model, np.ascontiguousarray(np.moveaxis(x_nchw, 1, -1)))
    return _torch_forward(model, x_nchw)


def _works_on(model, x: np.ndarray, expected_shape) -> bool:
    """Does the model run on ``x`` (as given, no layout change) and give ``expected_shape``?"""
    try:
        if _is_keras(model):
            out = _keras_forward(model, x)
        else:
            out = _torch_forward(model, x)
    except Exception:
        return False
    return tuple(out.shape) == tuple(expected_shape)


def _check_model_type(model, function: str, keras_ok: bool) -> None:
    if _is_keras(model):
        check(keras_ok, function, "should return a torch.nn.Module (this part is PyTorch only), "
              f"got the Keras object {type(model).__name__}")
        return
    kinds = "a torch.nn.Module or a keras.Model" if keras_ok else "a torch.nn.Module"
    check(_is_torch_module(model), function, f"should return {kinds}, got {type(model).__name__}")


def _has_lazy_parameters(model) -> bool:
    from torch.nn.parameter import UninitializedParameter

    return any(isinstance(p, UninitializedParameter) for p in model.parameters())


def _param_message(function: str, got: int, expected: int, detail: str) -> str:
    return (f"{function}: {got:,} parameters, expected {expected:,} ({got - expected:+,}){detail}")


def _torch_modules(model, kind: str) -> list:
    import torch

    cls = {"conv": torch.nn.Conv2d, "bn": torch.nn.BatchNorm2d,
           "convT": torch.nn.ConvTranspose2d}[kind]
    return [m for m in model.modules() if isinstance(m, cls)]


# ---------------------------------------------------------------------------
# lenet5


def _lenet_summary(num_classes: int, *, pad: int = 0, conv_bias: bool = True,
                   dense_bias: bool = True, with_84: bool = True, size: int = 32):
    layers = [shapes.Conv2D(6, 5, padding=pad, bias=conv_bias), shapes.AvgPool2D(2),
              shapes.Conv2D(16, 5, bias=conv_bias), shapes.AvgPool2D(2), shapes.Flatten(),
              shapes.Dense(120, bias=dense_bias)]
    if with_84:
        layers.append(shapes.Dense(84, bias=dense_bias))
    layers.append(shapes.Dense(num_classes, bias=dense_bias))
    return shapes.summarize((1, size, size), layers)


def lenet5_params(num_classes: int = 10) -> int:
    """LeNet-5's parameter count for ``num_classes`` outputs (61,706 for 10)."""
    return _lenet_summary(num_classes).total_params


LENET_PADDING = ("your first conv has padding: LeNet-5 expects 32x32 inputs without padding "
                 "(conv 5x5 takes 32x32 to 28x28, and 16*5*5 = 400 features reach the first "
                 "dense layer); pad the 28x28 digits to 32x32 before the network, not inside it")
LENET_28 = ("the first dense layer is sized for 28x28 inputs (16*4*4 = 256 features): LeNet-5 "
            "takes 32x32 inputs, which leaves 16*5*5 = 400 features after the second pooling")
LENET_DENSE_BIAS = ("the dense layers are missing biases: each nn.Linear / Dense needs its bias "
                    "(keep bias=True, the default)")
LENET_CONV_BIAS = ("the convolutions are missing biases: each conv needs its bias "
                   "(keep bias=True, the default)")
LENET_NO_84 = ("a dense layer is missing: after flattening come dense 120, dense 84, "
               "dense num_classes")
LENET_LAYOUT_TORCH = ("the forward pass fails on a (N, 1, 32, 32) batch but works on "
                      "(N, 32, 32, 1): your model treats the input as channels-last (NHWC), but "
                      "PyTorch layers take NCHW (batch, channels, height, width); do not permute "
                      "or reshape the input")
LENET_LAYOUT_KERAS = ("the forward pass fails on a (N, 32, 32, 1) batch: your Keras model expects "
                      "channels-first input (N, 1, 32, 32), but Keras layers take channels-last "
                      "NHWC (batch, height, width, channels): use Input((32, 32, 1)) and the "
                      "default data_format")


def _lenet_param_mistakes(num_classes: int) -> list[tuple[int, str]]:
    return [
        (_lenet_summary(num_classes, pad=2).total_params, LENET_PADDING),
        (_lenet_summary(num_classes, size=28).total_params, LENET_28),
        (_lenet_summary(num_classes, dense_bias=False).total_params, LENET_DENSE_BIAS),
        (_lenet_summary(num_classes, conv_bias=False).total_params, LENET_CONV_BIAS),
        (_lenet_summary(num_classes, with_84=False).total_params, LENET_NO_84),
    ]


@graded
def check_lenet5(lenet5, hidden: bool = False) -> None:
    """Check ``lenet5(num_classes)``: LeNet-5 for 1x32x32 inputs.

    Architecture: conv 6@5x5 (no padding), 2x2 pooling, conv 16@5x5, 2x2 pooling,
    flatten (400), dense 120, dense 84, dense ``num_classes`` (average or max
    pooling, ReLU or tanh). PyTorch: input ``(N, 1, 32, 32)``; Keras: ``(N, 32, 32, 1)``.
    Output ``(N, num_classes)``. Parameters: :func:`lenet5_params` (61,706 for 10 classes).
    """
    name = "lenet5"
    rng = case_rng(hidden, name)
    if hidden:
        cases = [int(rng.integers(2, 100)) for _ in range(2)]
    else:
        cases = [10, int(rng.integers(2, 30))]
    for num_classes in cases:
        model, call = _build(lenet5, name, (num_classes,), rng)
        _check_model_type(model, name, keras_ok=True)
        _library_guard(model, name)
        n = int(rng.integers(1, 5))
        x = rng.uniform(0.0, 1.0, size=(n, 1, 32, 32)).astype(np.float32)
        keras_model = _is_keras(model)
        if (not model.built) if keras_model else _has_lazy_parameters(model):
            with contextlib.suppress(Exception):
                _forward(model, x)  # builds the model (Keras, nn.Lazy*); a failure shows up below
        # parameter count
        expected = lenet5_params(num_classes)
        try:
            got = _count_params(model)
        except Exception as error:
            raise _raised(name, error, f"counting the parameters of {call}") from None
        if got != expected:
            detail = next((f": {msg}" for count, msg in _lenet_param_mistakes(num_classes)
                           if count == got), "")
            if not detail:
                detail = (f" for num_classes={num_classes}: conv 6@5x5, pool, conv 16@5x5, pool, "
                          f"flatten (400), dense 120, 84, {num_classes}; see the table of layer "
                          "shapes")
            raise CheckError(_param_message(name, got, expected, detail))
        # forward pass in the framework's layout
        try:
            out = _forward(model, x)
        except Exception as error:
            nhwc = np.ascontiguousarray(np.moveaxis(x, 1, -1))
            if keras_model and (_keras_channels_first(model)
                                or _works_on(model, x, (n, num_classes))):
                raise CheckError(f"{name}: {LENET_LAYOUT_KERAS}") from None
            if not keras_model and _works_on(model, nhwc, (n, num_classes)):
                raise CheckError(f"{name}: {LENET_LAYOUT_TORCH}") from None
            small = x[:, :, 2:30, 2:30].copy()
            if _works_on(model, small if not keras_model else np.moveaxis(small, 1, -1).copy(),
                         (n, num_classes)):
                raise CheckError(f"{name}: {LENET_PADDING}") from None
            layout = "(N, 32, 32, 1)" if keras_model else "(N, 1, 32, 32)"
            raise CheckError(f"{name}: the forward pass on a {layout} batch raised "
                             f"{type(error).__name__}: {_first_line(error)}") from None
        check_shape(out, (n, num_classes), name, axes=("batch size", "classes"))
        check_finite(out, name)
    checks = ["model type", "parameter count", "forward pass", "output shape", "finite"]
    if not hidden:
        passed(name, checks)


# ---------------------------------------------------------------------------
# vgg_block


def vgg_block_params(in_channels: int, out_channels: int, num_convs: int) -> int:
    """Parameters of ``num_convs`` 3x3 convs with bias: ``(9in + 1)out + (n-1)(9out + 1)out``."""
    layers = [shapes.Conv2D(out_channels, 3, padding=1), shapes.ReLU()] * num_convs
    return shapes.summarize((in_channels, 8, 8), [*layers, shapes.MaxPool2D(2)]).total_params


VGG_NO_POOL = ("the output is not downsampled: end the block with nn.MaxPool2d(kernel_size=2, "
               "stride=2), which halves H and W")
VGG_NO_PADDING = ("each 3x3 convolution shrinks H and W by 2: use padding=1 so the convolutions "
                  "keep the size and only the pooling halves it")
VGG_POOL_STRIDE = ("the pooling must move 2 pixels at a time: nn.MaxPool2d(kernel_size=2, "
                   "stride=2) halves H and W")
VGG_NO_RELU = "a ReLU must follow every convolution (nn.ReLU() after each nn.Conv2d)"
VGG_RELU_LAST = "a ReLU must follow every convolution, not only the last one"
VGG_AVG_POOL = "the block ends with max pooling (nn.MaxPool2d), not average pooling"
VGG_CHANNELS = ("the first convolution maps in_channels -> out_channels, every later one "
                "out_channels -> out_channels")
VGG_BIAS = "the convolutions are missing biases (keep bias=True, the default)"


def _vgg_reference(x, weights, *, relu_every=True, pool="max"):
    out = x
    for i, (w, b) in enumerate(weights):
        out = _ref.conv2d(out, w, b, padding=1)
        if relu_every or i == len(weights) - 1:
            out = np.maximum(out, 0.0)
    return _ref.max_pool2d(out, 2, 2) if pool == "max" else _ref.avg_pool2d(out, 2, 2)


@graded
def check_vgg_block(vgg_block, hidden: bool = False) -> None:
    """Check ``vgg_block(in_channels, out_channels, num_convs)`` (PyTorch, NCHW).

    ``num_convs`` x (nn.Conv2d 3x3 with padding 1, bias + nn.ReLU), then nn.MaxPool2d(2, 2):
    ``(N, in, H, W) -> (N, out, H // 2, W // 2)``; parameters :func:`vgg_block_params`.
    The values are compared with a float64 forward pass that uses the block's own weights.
    """
    name = "vgg_block"
    rng = case_rng(hidden, name)
    n_cases = 3 if hidden else 2
    for _ in range(n_cases):
        c_in, c_out = int(rng.integers(1, 7)), int(rng.integers(2, 13))
        num_convs = int(rng.integers(1, 4))
        h, w = (int(v) for v in 2 * rng.integers(3, 8, size=2))
        n = int(rng.integers(1, 4))
        model, call = _build(vgg_block, name, (c_in, c_out, num_convs), rng)
        _check_model_type(model, name, keras_ok=False)
        _library_guard(model, name)
        convs = _torch_modules(model, "conv")
        x = rng.standard_normal((n, c_in, h, w)).astype(np.float32)
        try:
            out = _forward(model, x)
        except Exception as error:
            if len(convs) > 1 and all(m.in_channels == c_in for m in convs) and c_in != c_out:
                raise CheckError(f"{name}: {call}: {VGG_CHANNELS}") from None
            raise CheckError(f"{name}: the forward pass of {call} on a {x.shape} batch raised "
                             f"{type(error).__name__}: {_first_line(error)}") from None
        expected_shape = (n, c_out, h // 2, w // 2)
        if out.shape != expected_shape and out.ndim == 4 and out.shape[:2] == (n, c_out):
            hw = tuple(out.shape[2:])
            shrunk = (h - 2 * num_convs, w - 2 * num_convs)
            for sizes, message in [((h, w), VGG_NO_POOL), (shrunk, VGG_NO_PADDING),
                                   ((shrunk[0] // 2, shrunk[1] // 2), VGG_NO_PADDING),
                                   ((h - 1, w - 1), VGG_POOL_STRIDE)]:
                if hw == sizes:
                    raise CheckError(f"{name}: {call} gives shape {out.shape} for a {x.shape} "
                                     f"input, expected {expected_shape}: {message}")
        check_shape(out, expected_shape, name, axes=_NCHW)
        # parameter count and structure
        expected = vgg_block_params(c_in, c_out, num_convs)
        got = _count_params(model)
        if len(convs) != num_convs:
            raise CheckError(f"{name}: {call} has {len(convs)} nn.Conv2d layers, expected "
                             f"num_convs={num_convs}")
        if got != expected:
            detail = f" for {call}: each conv has 3*3*c_in*out weights + out biases"
            if got == expected - num_convs * c_out:
                detail = f": {VGG_BIAS}"
            raise CheckError(_param_message(name, got, expected, detail))
        check_finite(out, name)
        # ReLU, then the values against the block's own weights
        if out.min() < -1e-6:
            raise CheckError(f"{name}: the output has negative values (min {out.min():.3g}), but "
                             f"ReLU then max pooling cannot give any: {VGG_NO_RELU}")
        weights = [(m.weight.detach().cpu().numpy().astype(np.float64),
                    None if m.bias is None else m.bias.detach().cpu().numpy().astype(np.float64))
                   for m in convs]
        x64 = x.astype(np.float64)
        expected_out = _vgg_reference(x64, weights)
        if not np.allclose(out, expected_out, rtol=1e-4, atol=1e-4):
            mistakes = [Mistake("relu last", VGG_RELU_LAST,
                                lambda x, w=weights: _vgg_reference(x, w, relu_every=False)),
                        Mistake("avg pool", VGG_AVG_POOL,
                                lambda x, w=weights: _vgg_reference(x, w, pool="avg"))]
            found = diagnose(out, {"x": x64}, mistakes, rtol=1e-4, atol=1e-4)
            message = found.message if found else (
                f"{int(np.count_nonzero(~np.isclose(out, expected_out, rtol=1e-4, atol=1e-4)))} of "
                f"{out.size} values differ from conv (padding 1) + ReLU for each conv, then 2x2 "
                f"max pooling, computed with your block's own weights (largest difference "
                f"{np.abs(out - expected_out).max():.3g})")
            raise CheckError(f"{name}: {call}: output values are wrong: {message}")
    checks = ["model type", "forward pass", "output shape", "parameter count", "finite",
              "ReLU", "values"]
    if not hidden:
        passed(name, checks)


# ---------------------------------------------------------------------------
# ResidualBlock


def residual_block_params(in_channels: int, out_channels: int, stride: int = 1) -> int:
    """Two 3x3 convs (no bias) with BN (2C each), plus a 1x1 conv + BN shortcut if needed."""
    main = [shapes.Conv2D(out_channels, 3, stride=stride, padding=1, bias=False),
            shapes.BatchNorm2D(), shapes.ReLU(),
            shapes.Conv2D(out_channels, 3, padding=1, bias=False), shapes.BatchNorm2D()]
    total = shapes.summarize((in_channels, 8, 8), main).total_params
    if stride != 1 or in_channels != out_channels:
        shortcut = [shapes.Conv2D(out_channels, 1, stride=stride, bias=False), shapes.BatchNorm2D()]
        total += shapes.summarize((in_channels, 8, 8), shortcut).total_params
    return total


RES_NEEDS_PROJECTION = ("the shortcut needs a 1x1 conv when the stride or channels change "
                        "(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False) + "
                        "nn.BatchNorm2d(out_channels)), so that it has the residual path's shape")
RES_PROJECTION_STRIDE = ("the 1x1 shortcut conv must use the block's stride, so that the shortcut "
                         "has the residual path's height and width")
RES_IDENTITY = ("use the identity shortcut (no 1x1 conv) when stride == 1 and in_channels == "
                "out_channels: the input already has the right shape")
RES_BIAS = ("your convolutions have biases: a conv followed by BatchNorm needs none (BN's shift "
            "beta replaces it): use bias=False")
RES_BN_AFFINE = ("BatchNorm2d(C) has 2C trainable parameters (the scale gamma and the shift beta; "
                 "the running mean and variance are buffers): keep affine=True")
RES_BN_STATS = ("keep track_running_stats=True in every BatchNorm2d: in eval() mode batch norm "
                "must normalise with the running mean and variance learned in training")
RES_BN_CHANNELS = ("every BatchNorm2d in the block normalises out_channels channels (the output of "
                   "the conv before it)")
RES_NO_SKIP = ("the skip connection is missing: the output equals the residual path alone; add "
               "the shortcut, out = relu(F(x) + shortcut(x))")
RES_RELU_BEFORE_ADD = ("the block ends with a ReLU after the addition: out = relu(F(x) + "
                       "shortcut(x)), not relu(F(x)) + shortcut(x) and not F(x) + shortcut(x)")
RES_NO_MID_RELU = "a ReLU must follow the first conv + BN: F(x) = bn2(conv2(relu(bn1(conv1(x)))))"
RES_STRIDE_SECOND = ("the stride belongs to the first 3x3 conv (and the 1x1 shortcut conv); the "
                     "second 3x3 conv has stride 1")


def _bn(y, gamma, beta, mean, var, eps):
    shape = (1, -1, 1, 1)
    return (y - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * gamma.reshape(shape) \
        + beta.reshape(shape)


def _residual_reference(x, w1, w2, ws, bn, stride, *, skip=True, relu_where="after",
                        mid_relu=True, stride_on=1, shortcut_bn=True):
    s1, s2 = (stride, 1) if stride_on == 1 else (1, stride)
    f = _bn(_ref.conv2d(x, w1, stride=s1, padding=1), *bn)
    if mid_relu:
        f = np.maximum(f, 0.0)
    f = _bn(_ref.conv2d(f, w2, stride=s2, padding=1), *bn)
    if ws is None:
        shortcut = x
    else:
        shortcut = _ref.conv2d(x, ws, stride=stride)
        if shortcut_bn:
            shortcut = _bn(shortcut, *bn)
    if not skip:
        return np.maximum(f, 0.0)
    if relu_where == "before":
        return np.maximum(f, 0.0) + shortcut
    if relu_where == "none":
        return f + shortcut
    return np.maximum(f + shortcut, 0.0)


def _residual_variant(ws, bn, stride, **mistake):
    """A known wrong block as a function of (x, w1, w2), for :func:`diagnose`."""
    return lambda x, w1, w2: _residual_reference(x, w1, w2, ws, bn, stride, **mistake)


def _residual_cases(rng, hidden: bool):
    kinds = ["identity", "projection"] if not hidden else ["channels", "stride", "projection"]
    cases = []
    for kind in kinds:
        c_in = int(rng.integers(2, 9))
        c_out = c_in if kind in ("identity", "stride") else int(rng.choice(
            [c for c in range(2, 17) if c != c_in]))
        stride = 2 if kind in ("projection", "stride") else 1
        h, w = (int(v) for v in rng.integers(4, 11, size=2))
        cases.append((c_in, c_out, stride, h, w, int(rng.integers(2, 4))))
    return cases


@graded
def check_residual_block(ResidualBlock, hidden: bool = False) -> None:  # noqa: N803 (the class)
    """Check the class ``ResidualBlock(in_channels, out_channels, stride=1)`` (PyTorch, NCHW).

    Residual path ``F(x) = bn2(conv2(relu(bn1(conv1(x)))))`` with 3x3 convs (padding 1,
    no bias; ``conv1`` has the stride); shortcut ``x`` when ``stride == 1`` and
    ``in == out``, else ``bn(conv1x1(x))`` with the stride; ``out = relu(F(x) + shortcut)``.
    Shape ``(N, in, H, W) -> (N, out, (H-1)//s + 1, (W-1)//s + 1)``; parameters
    :func:`residual_block_params` (BatchNorm: 2C trainable). Evaluated in ``eval()`` mode.
    """
    import torch

    name = "ResidualBlock"
    rng = case_rng(hidden, name)
    check(isinstance(ResidualBlock, type), name,
          "should be a class (class ResidualBlock(nn.Module): ...), got "
          f"{type(ResidualBlock).__name__}")
    if not issubclass(ResidualBlock, torch.nn.Module):
        raise CheckError(f"{name}: should be a subclass of torch.nn.Module")
    for c_in, c_out, stride, h, w, n in _residual_cases(rng, hidden):
        args = (c_in, c_out, stride)
        with forbid(ResidualBlock.forward, _FORBIDDEN, name, _HINT):
            model, call = _build(ResidualBlock, name, args, rng,
                                 guard_function=ResidualBlock.__init__)
        _library_guard(model, name)
        projection = stride != 1 or c_in != c_out
        convs = _torch_modules(model, "conv")
        bns = _torch_modules(model, "bn")
        ones = [m for m in convs if tuple(m.kernel_size) == (1, 1)]
        x = rng.standard_normal((n, c_in, h, w)).astype(np.float32)
        try:
            with forbid(ResidualBlock.forward, _FORBIDDEN, name, _HINT):
                out = _forward(model, x)
        except CheckError:
            raise
        except Exception as error:
            if projection and not ones:
                raise CheckError(f"{name}: {call} fails on a {x.shape} batch: "
                                 f"{RES_NEEDS_PROJECTION}") from None
            if projection and any(tuple(m.stride) != (stride, stride) for m in ones):
                raise CheckError(f"{name}: {call}: {RES_PROJECTION_STRIDE}") from None
            if any(m.num_features != c_out for m in bns):
                raise CheckError(f"{name}: {call}: {RES_BN_CHANNELS}") from None
            raise CheckError(f"{name}: the forward pass of {call} on a {x.shape} batch raised "
                             f"{type(error).__name__}: {_first_line(error)}") from None
        h_out, w_out = (h - 1) // stride + 1, (w - 1) // stride + 1
        check_shape(out, (n, c_out, h_out, w_out), name, f"{call} output", axes=_NCHW)
        # parameter count and structure
        expected = residual_block_params(c_in, c_out, stride)
        got = _count_params(model)
        n_bn = 3 if projection else 2
        if not projection and ones:
            raise CheckError(f"{name}: {call} has a 1x1 conv: {RES_IDENTITY}")
        if projection and not ones:
            raise CheckError(f"{name}: {call}: {RES_NEEDS_PROJECTION}")
        if any(m.bias is not None for m in convs):
            raise CheckError(_param_message(name, got, expected, f" for {call}: {RES_BIAS}"))
        if len(bns) != n_bn:
            raise CheckError(f"{name}: {call} has {len(bns)} BatchNorm2d layers, expected {n_bn}: "
                             "one after each 3x3 conv" + (" and one after the 1x1 shortcut conv"
                                                      if projection else ""))
        if any(not m.affine for m in bns):
            raise CheckError(_param_message(name, got, expected, f" for {call}: {RES_BN_AFFINE}"))
        if any(not m.track_running_stats for m in bns):
            raise CheckError(f"{name}: {call}: {RES_BN_STATS}")
        if got != expected:
            raise CheckError(_param_message(
                name, got, expected,
                f" for {call}: 9*in*out + 2*out + 9*out*out + 2*out"
                + (" + in*out + 2*out (1x1 conv + BN shortcut)" if projection else "")))
        check_finite(out, name)
        threes = [m for m in convs if tuple(m.kernel_size) == (3, 3)]
        check(len(threes) == 2, name, f"{call} has {len(threes)} nn.Conv2d layers with 3x3 "
              "kernels, expected 2: build both convolutions of the residual path with nn.Conv2d")
        x64 = x.astype(np.float64)
        # skip wiring: with every 3x3 conv weight zero the residual path is 0 (BN with its
        # initial statistics passes 0 through), so the block must compute relu(shortcut(x)).
        with torch.no_grad():
            for m in threes:
                m.weight.zero_()
        zero_out = _forward(model, x)
        if projection:
            ws = ones[0].weight.detach().cpu().numpy().astype(np.float64)
            eps = bns[0].eps
            want = np.maximum(_ref.conv2d(x64, ws, stride=stride) / np.sqrt(1.0 + eps), 0.0)
            shortcut_value = _ref.conv2d(x64, ws, stride=stride) / np.sqrt(1.0 + eps)
        else:
            want, shortcut_value = np.maximum(x64, 0.0), x64
        if not np.allclose(zero_out, want, rtol=1e-4, atol=1e-5):
            if np.allclose(zero_out, 0.0, atol=1e-6):
                message = RES_NO_SKIP
            elif np.allclose(zero_out, shortcut_value, rtol=1e-4, atol=1e-5):
                message = RES_RELU_BEFORE_ADD
            else:
                message = ("with the 3x3 conv weights set to zero the residual path is 0, so the "
                           "block must output relu(shortcut(x))"
                           + (" = relu(x)" if not projection else ""))
            raise CheckError(f"{name}: {call}: skip connection wiring is wrong: {message}")
        # values: the same random statistics in every BN, fresh random conv weights
        gamma, beta = rng.uniform(0.5, 1.5, c_out), rng.normal(0.0, 0.3, c_out)
        mean, var = rng.normal(0.0, 0.3, c_out), rng.uniform(0.5, 1.5, c_out)
        eps = float(bns[0].eps)
        bn = (gamma, beta, mean, var, eps)
        with torch.no_grad():
            for m in bns:
                m.weight.copy_(torch.from_numpy(gamma))
                m.bias.copy_(torch.from_numpy(beta))
                m.running_mean.copy_(torch.from_numpy(mean))
                m.running_var.copy_(torch.from_numpy(var))
            drawn = {}
            for m in threes + ones:
                fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                drawn[id(m)] = rng.normal(0.0, 1.0 / np.sqrt(fan_in), tuple(m.weight.shape))
                m.weight.copy_(torch.from_numpy(drawn[id(m)]))
        got_out = _forward(model, x)
        ws = drawn[id(ones[0])] if projection else None
        a, b = (drawn[id(m)] for m in threes)
        if c_in == c_out:  # both 3x3 convs have the same shape: either may come first
            orders = [(a, b), (b, a)]
        else:
            orders = [(a, b)] if threes[0].in_channels == c_in else [(b, a)]
        inputs = [{"x": x64, "w1": a, "w2": b} for a, b in orders]
        if any(np.allclose(got_out, _residual_reference(x64, a, b, ws, bn, stride),
                           rtol=1e-4, atol=1e-4) for a, b in orders):
            continue
        mistakes = [
            Mistake("no skip", RES_NO_SKIP, _residual_variant(ws, bn, stride, skip=False)),
            Mistake("relu before add", RES_RELU_BEFORE_ADD,
                    _residual_variant(ws, bn, stride, relu_where="before")),
            Mistake("no middle relu", RES_NO_MID_RELU,
                    _residual_variant(ws, bn, stride, mid_relu=False)),
        ]
        if stride != 1:
            mistakes.append(Mistake("stride on conv2", RES_STRIDE_SECOND,
                                    _residual_variant(ws, bn, stride, stride_on=2)))
        for given in inputs:
            found = diagnose(got_out, given, mistakes, rtol=1e-4, atol=1e-4)
            if found is not None:
                raise CheckError(f"{name}: {call}: output values are wrong: {found.message}")
        reference = _residual_reference(x64, *orders[0], ws, bn, stride)
        raise CheckError(
            f"{name}: {call}: output values are wrong: with your block's layers given known "
            f"weights, relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)) differs in "
            f"{int(np.count_nonzero(~np.isclose(got_out, reference, rtol=1e-4, atol=1e-4)))} of "
            f"{reference.size} values (largest difference {np.abs(got_out - reference).max():.3g})")
    checks = ["class", "forward pass", "output shape", "parameter count", "batch norm",
              "finite", "skip wiring", "values"]
    if not hidden:
        passed(name, checks)


check_ResidualBlock = check_residual_block  # the check_<name> of the graded class


# ---------------------------------------------------------------------------
# small_unet


def _double_conv(c_in: int, c_out: int, bn: bool = False, bias: bool = True) -> int:
    one = [shapes.Conv2D(c_out, 3, padding=1, bias=bias)] + ([shapes.BatchNorm2D()] if bn else [])
    layers = [*one, shapes.ReLU(), *one, shapes.ReLU()]
    return shapes.summarize((c_in, 8, 8), layers).total_params


def unet_params(in_channels: int = 1, num_classes: int = 1, base: int = 16, *, skips: bool = True,
                upsample: str = "transpose", bn: bool = False, bias: bool = True) -> int:
    """Parameters of the assignment's small U-Net (see the notebook's table).

    Encoder double convs ``in -> b``, ``b -> 2b``, ``2b -> 4b``; bottleneck ``4b -> 8b``;
    decoder: ``ConvTranspose2d(2c, c, 2, stride=2)``, concatenation with the encoder
    output (``c + c`` channels), double conv ``2c -> c`` for ``c = 4b, 2b, b``;
    1x1 conv ``b -> num_classes``. Every conv has a bias, no batch norm.
    The keyword arguments give the counts of the known wrong variants.
    """
    b = base
    total = (_double_conv(in_channels, b, bn, bias) + _double_conv(b, 2 * b, bn, bias)
             + _double_conv(2 * b, 4 * b, bn, bias) + _double_conv(4 * b, 8 * b, bn, bias))
    for c in (4 * b, 2 * b, b):
        if upsample == "transpose":
            total += shapes.summarize((2 * c, 4, 4), [shapes.ConvTranspose2D(
                c, 2, stride=2, bias=bias)]).total_params
            up_channels = c
        else:  # nn.Upsample: no parameters, keeps the 2c channels
            up_channels = 2 * c
        total += _double_conv(up_channels + (c if skips else 0), c, bn, bias)
    total += shapes.summarize((b, 8, 8), [shapes.Conv2D(num_classes, 1, bias=bias)]).total_params
    return total


UNET_NO_SKIPS = ("your parameter count equals the U-Net without skip connections: the decoder's "
                 "double convs must take the upsampled features concatenated with the encoder "
                 "output of the same size (2c input channels, torch.cat([up, skip], dim=1)), "
                 "not the upsampled features alone or their sum")
UNET_UPSAMPLE = ("your parameter count equals a decoder with nn.Upsample: the stated architecture "
                 "upsamples with nn.ConvTranspose2d(2c, c, kernel_size=2, stride=2), which also "
                 "halves the channels")
UNET_BN = "the stated architecture has no batch norm: conv 3x3 (padding 1, bias) + ReLU, twice"
UNET_BIAS = "the convolutions are missing biases (keep bias=True, the default)"
UNET_PADDING = "the 3x3 convs need padding=1 so that the output has the input's height and width"
UNET_CAT_AXIS = ("the skip connection is concatenated along axis {axis} ({what}): in NCHW the "
                 "channels are axis 1, so concatenate with torch.cat([up, skip], dim=1) (dim=-1 "
                 "is channels-last thinking: NHWC)")


@contextlib.contextmanager
def _spy_cat(records: list):
    """Record (ndim, axis) of every torch.cat / torch.concat / torch.concatenate call."""
    import torch

    names = [n for n in ("cat", "concat", "concatenate") if hasattr(torch, n)]
    originals = {n: getattr(torch, n) for n in names}

    def make(original):
        def spy(tensors, *args, **kwargs):
            with contextlib.suppress(Exception):
                dim = kwargs.get("dim", kwargs.get("axis", args[0] if args else 0))
                ndim = tensors[0].dim()
                records.append((ndim, int(dim) % ndim))
            return original(tensors, *args, **kwargs)

        return spy

    try:
        for n in names:
            setattr(torch, n, make(originals[n]))
        yield records
    finally:
        for n in names:
            setattr(torch, n, originals[n])


def _cat_axis_message(records) -> str | None:
    for ndim, axis in records:
        if ndim == 4 and axis in (2, 3):
            return UNET_CAT_AXIS.format(axis=axis, what="height" if axis == 2 else "width")
    return None


def _unpadded_convs(model) -> bool:
    """Does a 3x3 convolution of the model lack padding?"""
    return any(tuple(m.kernel_size) == (3, 3) and tuple(m.padding) == (0, 0)
               for m in _torch_modules(model, "conv"))


@graded
def check_small_unet(small_unet, hidden: bool = False) -> None:
    """Check ``small_unet(in_channels, num_classes, base)`` (PyTorch, NCHW).

    ``(N, in_channels, H, W) -> (N, num_classes, H, W)`` for H, W divisible by 8;
    parameters :func:`unet_params`; the output is finite.
    """
    name = "small_unet"
    rng = case_rng(hidden, name)
    cases = []
    if not hidden:
        cases.append((1, 1, 16, 32, 32, 1))
    for _ in range(2 if hidden else 1):
        cases.append((int(rng.choice([1, 3])), int(rng.integers(1, 5)), int(rng.choice([4, 8])),
                      8 * int(rng.integers(2, 6)), 8 * int(rng.integers(2, 6)),
                      int(rng.integers(1, 3))))
    for c_in, classes, base, h, w, n in cases:
        args = (c_in, classes, base)
        model, call = _build(small_unet, name, args, rng)
        _check_model_type(model, name, keras_ok=False)
        _library_guard(model, name)
        x = rng.standard_normal((n, c_in, h, w)).astype(np.float32)
        records: list = []
        try:
            with _spy_cat(records):
                out = _forward(model, x)
        except Exception as error:
            axis = _cat_axis_message(records)
            if axis:
                raise CheckError(f"{name}: {call}: the forward pass fails: {axis}") from None
            if _unpadded_convs(model):
                raise CheckError(f"{name}: the forward pass of {call} on a {x.shape} batch raised "
                                 f"{type(error).__name__}: {UNET_PADDING}") from None
            raise CheckError(f"{name}: the forward pass of {call} on a {x.shape} batch raised "
                             f"{type(error).__name__}: {_first_line(error)}") from None
        expected_shape = (n, classes, h, w)
        if out.shape != expected_shape and out.ndim == 4:
            axis = _cat_axis_message(records)
            if axis:
                raise CheckError(f"{name}: {call}: {axis}")
            if out.shape[0] == n and out.shape[2:] == (h, w) and out.shape[1] != classes:
                what = (" (is the final 1x1 conv missing?)" if out.shape[1] == base else "")
                raise CheckError(
                    f"{name}: {call} has {out.shape[1]} output channels, expected "
                    f"num_classes={classes}: the last layer is a 1x1 conv base -> "
                    f"num_classes{what}")
            if out.shape[:2] == (n, classes) and (_unpadded_convs(model) or out.shape[2] < h
                                                  or out.shape[3] < w):
                raise CheckError(f"{name}: {call} output shape is {out.shape} for a {x.shape} "
                                 f"input, expected {expected_shape}: {UNET_PADDING}")
        check_shape(out, expected_shape, name, f"{call} output", axes=_NCHW)
        expected = unet_params(c_in, classes, base)
        got = _count_params(model)
        if got != expected:
            variants = [(unet_params(c_in, classes, base, skips=False), UNET_NO_SKIPS),
                        (unet_params(c_in, classes, base, upsample="nearest"), UNET_UPSAMPLE),
                        (unet_params(c_in, classes, base, bn=True), UNET_BN),
                        (unet_params(c_in, classes, base, bias=False), UNET_BIAS)]
            detail = next((f": {msg}" for count, msg in variants if count == got),
                          f" for {call}: see the table of the stated architecture")
            raise CheckError(_param_message(name, got, expected, detail))
        check_finite(out, name)
    checks = ["model type", "forward pass", "output shape", "parameter count", "finite"]
    if not hidden:
        passed(name, checks)


# ---------------------------------------------------------------------------
# train_digits

_DATA_CACHE: dict = {}


def _mnist_split(seed: int):
    """The bundled real MNIST subset split 8,000 / 2,000 with ``seed`` (offline, cached)."""
    if seed not in _DATA_CACHE:
        from utils import data

        (x_train, y_train), (x_test, y_test) = data.load_mnist(path=data.BUNDLED_PATH, seed=seed,
                                                               verbose=False)
        _DATA_CACHE[seed] = (x_train, y_train, x_test, y_test)
    return _DATA_CACHE[seed]


def _predict(model, images_uint8: np.ndarray, scale: float = 255.0) -> np.ndarray:
    """Scores of the model for uint8 (N, 28, 28) digits fed as float32 pixels / scale."""
    x = (images_uint8.astype(np.float32) / np.float32(scale))[:, None]  # (N, 1, 28, 28)
    return _forward(model, x)


TRAIN_LAYOUT_TORCH = ("the returned model fails on a (N, 1, 28, 28) batch but works on "
                      "(N, 28, 28, 1): it expects channels-last (NHWC) images, but PyTorch "
                      "convolutions take NCHW: "
                      "add the channel axis with x[:, None] (not x[..., None]) and do not permute")
TRAIN_LAYOUT_KERAS = ("the returned Keras model fails on a (N, 28, 28, 1) batch: it expects "
                      "channels-first images (N, 1, 28, 28), but Keras layers take channels-last "
                      "NHWC: use Input((28, 28, 1)) and the default data_format")


@graded
def check_train_digits(train_digits, hidden: bool = False) -> None:
    """Check ``train_digits(x_train, y_train, seed)``: train a small CNN on MNIST digits.

    The check loads the bundled 10,000-digit MNIST subset itself, calls
    ``train_digits`` with the 8,000 training digits (uint8 ``(8000, 28, 28)``, labels
    ``(8000,)``) and a seed, times the call (the smaller of its wall-clock and CPU time:
    waiting for a busy machine's cores is not the student's cost; limit :data:`TIME_LIMIT_S`),
    and evaluates the returned model on the 2,000 held-out digits fed as float32
    pixels in [0, 1]: PyTorch ``(N, 1, 28, 28)`` (NCHW), Keras ``(N, 28, 28, 1)``.
    The accuracy must be at least :data:`TARGET_ACCURACY`. The hidden check uses
    another split and relabels the digits with a secret permutation of 0-9, so only
    a model trained on the data it is given scores well.
    """
    name = "train_digits"
    rng = case_rng(hidden, name)
    split_seed = int(rng.integers(1, 1000)) if hidden else 0
    seed = int(rng.integers(0, 10_000))
    x_train, y_train, x_test, y_test = _mnist_split(split_seed)
    relabel = np.arange(10)
    if hidden:
        while np.any(relabel == np.arange(10)):
            relabel = rng.permutation(10)
    y_train_given = relabel[y_train].astype(np.uint8)
    y_test_given = relabel[y_test]
    call = f"{name}(x_train, y_train, seed={seed})"
    with forbid(train_digits, _FORBIDDEN, name, _HINT), _seeded_torch(rng):
        state = np.random.get_state()
        try:
            # under the trusted verifier: the seconds the call took in its sandboxed child
            model, seconds = speed.timed_call(train_digits, x_train.copy(), y_train_given.copy(), seed=seed)
        except CheckError:
            raise
        except Exception as error:
            raise _raised(name, error, call) from None
        finally:
            np.random.set_state(state)
    _check_model_type(model, name, keras_ok=True)
    _library_guard(model, name)
    keras_model = _is_keras(model)
    try:
        scores, predicting = speed.timed_call(_predict, model, x_test)
        seconds += predicting  # a model that trains on its first call pays too
    except Exception as error:
        probe = (x_test[:8].astype(np.float32) / 255.0)
        if not keras_model and _works_on(model, probe[:, :, :, None].copy(), (8, 10)):
            raise CheckError(f"{name}: {TRAIN_LAYOUT_TORCH}") from None
        if keras_model and (_keras_channels_first(model)
                            or _works_on(model, probe[:, None].copy(), (8, 10))):
            raise CheckError(f"{name}: {TRAIN_LAYOUT_KERAS}") from None
        layout = "(N, 28, 28, 1)" if keras_model else "(N, 1, 28, 28)"
        raise CheckError(f"{name}: the returned model fails on a {layout} float32 batch: "
                         f"{type(error).__name__}: {_first_line(error)}") from None
    check_shape(scores, (len(x_test), 10), name, "the model's output",
                axes=("batch size", "classes"))
    check_finite(scores, name, "the model's output")
    check(seconds <= TIME_LIMIT_S, name,
          f"{call} took {seconds:.1f} s, the limit is {TIME_LIMIT_S:.0f} s: train for fewer "
          "epochs, use a smaller model or a larger batch")
    predictions = scores.argmax(axis=1)
    correct = int(np.count_nonzero(predictions == y_test_given))
    accuracy = correct / len(y_test_given)
    if accuracy < TARGET_ACCURACY:
        detail = ("train longer (more epochs), use Adam (a learning rate of 1e-3 to 1e-2), "
                  "and feed the pixels as float32 in [0, 1] (x / 255)")
        raw_scores = None
        with contextlib.suppress(Exception):
            raw_scores = _predict(model, x_test, scale=1.0)
        if raw_scores is not None:
            raw_accuracy = float(np.mean(raw_scores.argmax(axis=1) == y_test_given))
            if raw_accuracy >= TARGET_ACCURACY:
                detail = (f"on pixels 0..255 the model scores {raw_accuracy:.1%}: it was trained "
                          "on unscaled pixels, but the contract is float32 pixels in [0, 1]: "
                          "divide by 255 before training")
        if hidden and float(np.mean(predictions == y_test)) >= TARGET_ACCURACY:
            detail = ("the model predicts the original MNIST labels, not the labels it was given: "
                      "train on the x_train, y_train passed in (no saved weights, no loading the "
                      "dataset yourself)")
        raise CheckError(f"{name}: test accuracy {accuracy:.1%} ({correct} of {len(y_test_given)} "
                         f"held-out digits), expected at least {TARGET_ACCURACY:.0%}: {detail}")
    if not hidden:
        print(f"{name}: test accuracy {accuracy:.2%} on {len(y_test_given):,} held-out digits, "
              f"training took {seconds:.1f} s (limit {TIME_LIMIT_S:.0f} s, seed {seed})")
    checks = ["runs", "model type", "output shape", "finite", "time", "accuracy"]
    if not hidden:
        passed(name, checks)
