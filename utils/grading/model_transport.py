"""Models across the verifier's trust boundary: a student's model as plain data, rebuilt from trusted parts.

Assignment 3's functions return models (a ``torch.nn.Module``, or a ``keras.Model``),
and its checks inspect them deeply (``model.modules()``, layer attributes, parameter
counts, forward passes, weights and batch-norm statistics overwritten in place,
``torch.cat`` spied on). The sandboxed child (:mod:`utils.grading._verify_child`)
hands a model to the trusted parent as plain data (:func:`export_model`), and the
parent rebuilds an equivalent model from library code only (:func:`import_model`):
nothing the child chose is ever executed, only looked up in allowlists.

PyTorch
-------
The child traces the model with ``torch.fx`` (the layers of ``torch.nn`` are leaves,
the student's own modules and ``nn.Sequential`` are traced through, with every module
in ``eval()`` mode, as the checks run them). The record::

    {"kind": "model", "framework": "torch", "format": 1,
     "class": {"name": "SmallUNet", "module": "__main__"},   # the student's class
     "training": false,
     "modules": [                                 # named_modules() order; the root ("") first
       {"path": "", "kind": "container", "base": "Module", "class": {...}, "training": false},
       {"path": "enc1", "kind": "container", "base": "Sequential", "class": {...}, "training": false},
       {"path": "enc1.0", "kind": "layer", "type": "Conv2d",      # a public class of torch.nn
        "as": null | {"name": "Conv3x3", "module": "__main__"},   # a subclass that adds no code
        "config": {"in_channels": 1, "kernel_size": {"tuple": [3, 3]}, "bias": true, ...},
        "attributes": {"stride": {"tuple": [1, 1]}, ...},       # public plain attributes
        "training": false}, ...],
     "tensors": [                                 # every parameter and buffer, and fx constants
       {"owner": "enc1.0", "name": "weight", "role": "parameter" | "buffer" | "constant",
        "requires_grad": true, "persistent": true, "torch_dtype": "float32",
        "file": "r3_t0.npy", "dtype": "<f4", "shape": [16, 1, 3, 3]}, ...],
     "graph": [                                   # the fx graph; null when the root is a layer
       {"name": "x", "op": "placeholder", "target": "x", "args": [], "kwargs": {}},
       {"name": "enc1_0", "op": "call_module", "target": "enc1.0", "args": [{"node": "x"}], "kwargs": {}},
       {"name": "cat", "op": "call_function", "target": "torch.cat",
        "args": [[{"node": "up3"}, {"node": "e3"}]], "kwargs": {"dim": 1}},
       {"name": "view", "op": "call_method", "target": "view", "args": [...], "kwargs": {}},
       {"name": "output", "op": "output", "target": "output", "args": [{"node": "head"}], "kwargs": {}}]}

Values in ``config``, ``attributes`` and node arguments are JSON scalars and lists, or
tagged objects: ``{"tuple": [...]}``, ``{"float": "nan" | "inf" | "-inf"}``, and in node
arguments also ``{"node": name}``, ``{"slice": [start, stop, step]}``, ``{"ellipsis": true}``,
``{"dtype": "float32"}``, ``{"device": "cpu"}``, ``{"memory_format": "channels_last"}``.
Layer classes, functions (:data:`OPERATOR_FUNCTIONS`, :data:`MATH_FUNCTIONS`,
``torch.nn.functional``, :data:`TORCH_FUNCTIONS`, ``getattr`` for :data:`TENSOR_ATTRIBUTES`) and Tensor methods
(:data:`TENSOR_METHODS`) are resolved by name through allowlists. The rebuilt model is a
``torch.fx.GraphModule`` (named like the student's class) holding the same module
hierarchy: the layers are real ``torch.nn`` layers built from their configuration, the
student's modules become empty stand-ins with the student's class name, and fx's code
looks ``torch.cat`` up when it runs (a patch of ``torch.cat`` sees the calls).

Keras
-----
``{"kind": "model", "framework": "keras", "format": 1, "class": {...},
"config": model.to_json() (without compile_config), "weights": [{"file", "dtype", "shape"}, ...]}``:
rebuilt with Keras's deserializer in safe mode, after every serialized object in the
configuration was checked against :data:`KERAS_LAYERS` (no ``Lambda``, no custom objects)
and a few initializers, regularizers, constraints and activations.

Not carried (an export error tells the student): forward hooks, parameters shared between
layers, lazy layers, ``forward`` code that fx cannot trace (Python ``if``/loops on tensor
values, ``.item()``, NumPy). Code that branches on ``self.training`` is captured as in
``eval()`` mode. A subclass of a ``torch.nn`` layer with code of its own is traced through and
comes back as a stand-in holding the layer's tensors, so ``isinstance(m, nn.Conv2d)`` no longer
holds for it. The cost of a forward pass is not bounded here (a graph may upsample a lot):
the parent's own time and memory limits apply.

Limits: :data:`MAX_NODES` graph nodes, :data:`MAX_MODULES` modules, :data:`MAX_TOTAL_BYTES`
of arrays (each at most ``transport.MAX_ARRAY_BYTES``). torch and keras are imported
inside the functions only.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import inspect
import json
import keyword
import math
import operator
import pathlib
import re

import numpy as np

from utils.grading import transport

FORMAT = 1
MAX_NODES = 2000
MAX_MODULES = 500
MAX_TENSORS = 2000
MAX_TOTAL_BYTES = 256 * 2**20
MAX_NAME = 200
MAX_STRING = 200
MAX_ITEMS = 1000  # items of one list argument (torch.cat of many tensors)
MAX_DEPTH = 6
MAX_KERAS_JSON = 8 * 2**20

#: ``operator`` functions a forward pass may use (``x + y``, ``x[:, 0]``, ``x.shape[0] * 2`` ...).
OPERATOR_FUNCTIONS = (
    "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "neg", "pos", "abs", "invert",
    "getitem", "setitem", "eq", "ne", "lt", "le", "gt", "ge", "and_", "or_", "xor",
    "iadd", "isub", "imul", "itruediv", "ifloordiv", "imatmul",
)

#: ``math`` functions on sizes (``x / math.sqrt(x.shape[1])``: fx records them as calls).
MATH_FUNCTIONS = ("sqrt", "floor", "ceil", "log", "log2", "exp")

#: ``torch.<name>`` functions a forward pass may use: tensor math only. Nothing that does I/O
#: (load, save, from_file, hub), seeds or draws from the global generator, changes global
#: settings (set_*), compiles (compile, jit) or takes a callable; no factories that take sizes
#: (zeros, ones, empty, arange ...) and nothing that exposes uninitialised memory (empty_like).
TORCH_FUNCTIONS = tuple("""
abs absolute acos acosh adaptive_avg_pool1d adaptive_max_pool1d add addbmm addcdiv addcmul addmm addmv
addr all amax amin aminmax angle any argmax argmin argsort asin asinh atan atan2 atanh avg_pool1d
baddbmm batch_norm bilinear bmm broadcast_tensors broadcast_to cat ceil celu channel_shuffle chunk
clamp clamp_max clamp_min clip clone column_stack concat concatenate conj constant_pad_nd conv1d
conv2d conv3d conv_transpose1d conv_transpose2d conv_transpose3d cos cosh cosine_similarity
count_nonzero cross cummax cummin cumprod cumsum deg2rad diag diag_embed diagonal diff dist div
divide dot dropout dsplit dstack einsum eq erf erfc erfinv exp exp2 expm1 feature_dropout flatten
flip fliplr flipud float_power floor floor_divide fmax fmin fmod frac full_like gather ge greater
greater_equal group_norm gt hardshrink hsplit hstack hypot index_select inner instance_norm isclose
isfinite isinf isnan kron layer_norm le lerp less less_equal lgamma log log10 log1p log2
log_softmax logaddexp logaddexp2 logical_and logical_not logical_or logical_xor logit logsumexp lt
masked_fill masked_select matmul max max_pool1d max_pool2d max_pool3d maximum mean median min
minimum mm moveaxis movedim msort mul multiply mv nan_to_num nanmean nansum narrow ne neg negative
norm not_equal numel ones_like outer permute pixel_shuffle pixel_unshuffle pow prelu prod rad2deg
reciprocal relu remainder repeat_interleave reshape roll rot90 round rsqrt select selu sigmoid sign
signbit sin sinc sinh softmax sort split sqrt square squeeze stack std std_mean sub subtract sum
swapaxes swapdims t take take_along_dim tan tanh tensor_split tensordot tile topk trace transpose
tril triu true_divide trunc unbind unflatten unsqueeze var var_mean vsplit vstack where xlogy
zeros_like
""".split())

#: ``torch.nn.functional`` helpers that are not layer math (all other public functions are allowed).
_FUNCTIONAL_EXCLUDED = frozenset({
    "boolean_dispatch", "handle_torch_function", "has_torch_function", "has_torch_function_unary",
    "has_torch_function_variadic", "assert_int_or_pair", "triplet_margin_with_distance_loss",
})

#: Tensor methods a forward pass may call (``x.view(x.size(0), -1)`` ...). Never ``tolist``,
#: ``numpy``, ``item``, hooks, ``apply_``/``map_``, storage access, ``new_*`` factories or ``cuda``.
TENSOR_METHODS = frozenset("""
abs absolute add add_ addcdiv addcmul all amax amin any argmax argmin argsort bmm bool ceil chunk
clamp clamp_ clamp_max clamp_min clip clone contiguous cos cpu cumprod cumsum detach diag diagonal
dim div div_ double eq exp expand expand_as flatten flip float floor fmod gather ge gt half
index_select int le log log_softmax logsumexp long lt masked_fill masked_fill_ matmul max maximum
mean min minimum mm mul mul_ nan_to_num narrow ndimension ne neg nelement norm numel permute pow
prod reciprocal relu relu_ remainder repeat repeat_interleave reshape reshape_as roll round rsqrt
select sigmoid sigmoid_ sign sin size softmax sort split sqrt square squeeze std sub sub_ sum t
tanh tanh_ tile to topk transpose true_divide type_as unbind unflatten unsqueeze var view view_as
where
""".split())

#: Attributes ``getattr`` may read in a forward pass (``x.shape``, ``x.dtype`` ...).
TENSOR_ATTRIBUTES = frozenset({"shape", "dtype", "device", "ndim", "T", "mT", "is_cuda", "requires_grad"})

#: ``torch.nn`` classes that are never leaves: containers (traced through) and classes the
#: grader cannot rebuild from a configuration (lazy layers, layers built from other modules).
_TORCH_NOT_LAYERS = frozenset({
    "Module", "Container", "Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict",
    "RNNBase", "RNNCellBase", "SyncBatchNorm", "Transformer", "TransformerEncoder", "TransformerDecoder",
    "TripletMarginWithDistanceLoss", "LinearCrossEntropyOptions",
})
_CONTAINER_BASES = ("Module", "Sequential", "ModuleList", "ModuleDict")

#: ``keras.layers`` classes a Keras model may use (no Lambda, TFSMLayer, wrappers or lookups).
KERAS_LAYERS = frozenset("""
InputLayer Conv1D Conv2D Conv3D Conv1DTranspose Conv2DTranspose Conv3DTranspose DepthwiseConv1D
DepthwiseConv2D SeparableConv1D SeparableConv2D Dense Flatten Reshape Permute RepeatVector Activation
ReLU LeakyReLU PReLU ELU Softmax MaxPooling1D MaxPooling2D MaxPooling3D AveragePooling1D
AveragePooling2D AveragePooling3D GlobalAveragePooling1D GlobalAveragePooling2D GlobalAveragePooling3D
GlobalMaxPooling1D GlobalMaxPooling2D GlobalMaxPooling3D BatchNormalization LayerNormalization
GroupNormalization UnitNormalization Dropout SpatialDropout1D SpatialDropout2D SpatialDropout3D
GaussianDropout GaussianNoise AlphaDropout ActivityRegularization ZeroPadding1D ZeroPadding2D
ZeroPadding3D Cropping1D Cropping2D Cropping3D UpSampling1D UpSampling2D UpSampling3D Concatenate Add
Subtract Multiply Average Maximum Minimum Dot Rescaling Identity Embedding Masking
""".split())
_KERAS_MODELS = {("keras", "Sequential"), ("keras", "Functional"), ("keras", "Model"),
                 ("keras.src.models.sequential", "Sequential"), ("keras.src.models.functional", "Functional"),
                 ("keras", "DTypePolicy"), ("keras", "FloatDTypePolicy")}

# numpy dtype (as .npy stores it) -> torch dtype name; bfloat16 travels as float32
_DTYPES = {"|b1": "bool", "|u1": "uint8", "|i1": "int8", "<i2": "int16", "<i4": "int32", "<i8": "int64",
           "<f2": "float16", "<f4": "float32", "<f8": "float64", "<c8": "complex64", "<c16": "complex128"}
_MEMORY_FORMATS = ("contiguous_format", "channels_last", "channels_last_3d", "preserve_format")
_PART = re.compile(r"[A-Za-z0-9_]{1,100}\Z")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}\Z")
_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
# names fx's generated code relies on: a graph input or node must not shadow them
_RESERVED = frozenset({*keyword.kwlist, *dir(builtins), "self", "torch", "device", "inf", "nan", "NoneType",
                       "fx_pytree", "pytree", "wrap", "operator", "math"})
_DEVICE = re.compile(r"(cpu|cuda|mps|meta)(:[0-9]{1,3})?\Z")
# what a class that subclasses a torch.nn layer may define and still be rebuilt as that layer
_NO_CODE = frozenset({"__module__", "__qualname__", "__doc__", "__init__", "__dict__", "__weakref__",
                      "__annotations__", "__firstlineno__", "__static_attributes__", "__classcell__",
                      "__orig_bases__", "__parameters__", "__annotate_func__", "__annotations_cache__",
                      "extra_repr", "__repr__"})


class ModelExportError(Exception):
    """The child cannot turn the student's model into a record (the message is for the student)."""


class ModelRecordError(transport.TransportError):
    """A model record is malformed or asks for something the grader does not allow."""


def _fail(message: str):
    raise ModelRecordError(message)


def _require(condition, message: str) -> None:
    if not condition:
        raise ModelRecordError(message)


# ---------------------------------------------------------------------------------------------
# recognising models without importing torch or keras


def _mro_names(value) -> list[tuple[str, str]]:
    return [(getattr(c, "__module__", "") or "", c.__name__) for c in type(value).__mro__]


def _is_torch_module(value) -> bool:
    return ("torch.nn.modules.module", "Module") in _mro_names(value)


def _is_keras_layer(value) -> bool:
    return ("keras.src.layers.layer", "Layer") in _mro_names(value)


def is_model(value) -> bool:
    """Is ``value`` a PyTorch module or a Keras layer/model (decided from class names, no imports)?"""
    return _is_torch_module(value) or _is_keras_layer(value)


def _class_info(cls) -> dict:
    return {"name": str(cls.__name__), "module": str(cls.__module__)}


# ---------------------------------------------------------------------------------------------
# export (the sandboxed child)


def export_model(model, folder: pathlib.Path, stem: str) -> dict:
    """The record of ``model``, its arrays saved as ``folder/<stem>_*.npy`` (child side).

    Raises :class:`ModelExportError` (a message for the student) when the model cannot be
    carried; the record is checked by rebuilding it (:func:`import_model`) before it is returned.
    """
    folder = pathlib.Path(folder)
    if _is_torch_module(model):
        record = _export_torch(model, folder, stem)
    elif _is_keras_layer(model):
        record = _export_keras(model, folder, stem)
    else:
        raise ModelExportError(f"expected a torch.nn.Module or a keras.Model, got {transport._type_name(model)}")
    try:
        transport.dumps(record)
        import_model(record, folder)
    except (transport.TransportError, ValueError, TypeError) as error:
        raise ModelExportError(f"the grader rebuilds your model from its layers and could not rebuild it: "
                               f"{error}") from None
    return record


def _save_array(array: np.ndarray, folder: pathlib.Path, name: str) -> dict:
    if not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)  # (which would make a 0-d array 1-d: only when needed)
    if array.dtype.str not in _DTYPES:
        array = array.astype(array.dtype.newbyteorder("<"))
    path = folder / f"{name}.npy"
    np.save(path, array, allow_pickle=False)
    return {"file": path.name, "dtype": array.dtype.str, "shape": list(array.shape)}


def _plain(value, depth: int = 0):
    """A configuration value as JSON (raises TypeError when it is not plain data)."""
    if value is None or type(value) in (bool, int, str):
        if type(value) is str and len(value) > MAX_STRING:
            raise TypeError("string too long")
        return value
    if type(value) is float:
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return _plain(value.item(), depth)
    if depth < 4 and isinstance(value, (tuple, list)) and len(value) <= 64:
        items = [_plain(v, depth + 1) for v in value]
        return items if type(value) is list else {"tuple": items}
    raise TypeError(f"{type(value).__name__} is not plain data")


@functools.lru_cache(maxsize=1)
def _torch_tables():
    """(layer classes by name, container classes by name) of torch.nn."""
    import torch

    layers = {}
    for name in torch.nn.modules.__all__:
        cls = getattr(torch.nn, name, None)
        if (isinstance(cls, type) and issubclass(cls, torch.nn.Module) and name not in _TORCH_NOT_LAYERS
                and not name.startswith("Lazy") and cls.__name__ == name):
            layers[name] = cls
    containers = {name: getattr(torch.nn, name) for name in _CONTAINER_BASES}
    return layers, containers


def _layer_base(cls, layers: dict):
    """(torch.nn layer class, student subclass or None) when ``cls`` is rebuilt as a layer, else None."""
    if layers.get(cls.__name__) is cls:
        return cls, None
    for index, base in enumerate(cls.__mro__):
        if layers.get(base.__name__) is base:
            own = cls.__mro__[:index]
            if all(not c.__module__.startswith("torch.") and set(vars(c)) <= _NO_CODE for c in own):
                return base, cls
            return None
    return None


def _export_torch(model, folder: pathlib.Path, stem: str) -> dict:
    import torch
    import torch.fx

    layers, containers = _torch_tables()

    def is_layer(module) -> bool:
        return _layer_base(type(module), layers) is not None

    def check_supported(module, path: str) -> None:
        cls = type(module)
        if (cls.__module__.startswith("torch.nn.modules") and not is_layer(module)
                and cls.__name__ not in containers and cls.__name__ not in ("ParameterList", "ParameterDict")):
            where = f" ({path})" if path else ""
            raise ModelExportError(
                f"your model uses nn.{cls.__name__}{where}, which the grader cannot rebuild from its settings"
                + (": give the layer its input size (nn.Linear / nn.Conv2d instead of the lazy version)"
                   if cls.__name__.startswith("Lazy") else ""))
        if getattr(module, "_forward_hooks", None) or getattr(module, "_forward_pre_hooks", None):
            raise ModelExportError(f"the module {path or 'model'} has forward hooks, which the grader cannot "
                                   "carry: compute everything in forward()")

    named = list(model.named_modules())
    if len(named) > MAX_MODULES:
        raise ModelExportError(f"your model has {len(named)} modules, the grader accepts at most {MAX_MODULES}")
    modules, tensors = [], []
    seen_tensors: dict[int, str] = {}
    tensor_paths: set[str] = set()

    def add_tensor(owner: str, name: str, tensor, role: str, persistent: bool = True) -> None:
        path = f"{owner}.{name}" if owner else name
        if id(tensor) in seen_tensors and role != "constant":
            raise ModelExportError(f"{path} and {seen_tensors[id(tensor)]} are the same tensor: the grader "
                                   "cannot carry parameters shared between layers")
        seen_tensors[id(tensor)] = path
        if len(tensors) >= MAX_TENSORS:
            raise ModelExportError(f"your model has more than {MAX_TENSORS} tensors")
        if not isinstance(tensor, torch.Tensor) or tensor.is_meta or tensor.layout != torch.strided \
                or tensor.is_quantized or type(tensor) not in (torch.Tensor, torch.nn.Parameter):
            raise ModelExportError(f"{path} is not a plain initialised tensor ({type(tensor).__name__}): the "
                                   "grader cannot carry it (run a forward pass to initialise lazy layers)")
        data = tensor.detach().cpu()
        torch_dtype = str(data.dtype).removeprefix("torch.")
        if data.dtype == torch.bfloat16:
            data = data.float()
        if torch_dtype not in _DTYPES.values() and torch_dtype != "bfloat16":
            raise ModelExportError(f"{path} has dtype {torch_dtype}, which the grader cannot carry")
        entry = {"owner": owner, "name": name, "role": role,
                 "requires_grad": bool(tensor.requires_grad) if role == "parameter" else False,
                 "persistent": persistent, "torch_dtype": torch_dtype,
                 **_save_array(data.numpy(), folder, f"{stem}_t{len(tensors)}")}
        tensors.append(entry)
        tensor_paths.add(path)

    inside_layer: list[str] = []
    for path, module in named:
        if any(prefix == "" or path.startswith(prefix + ".") for prefix in inside_layer):
            continue
        check_supported(module, path)
        base = _layer_base(type(module), layers)
        if base is not None:
            layer_class, subclass = base
            entry = {"path": path, "kind": "layer", "type": layer_class.__name__,
                     "as": None if subclass is None else _class_info(subclass),
                     "config": _layer_config(module, layer_class), "attributes": _layer_attributes(module),
                     "training": bool(module.training)}
            inside_layer.append(path)
            for key, tensor in module.state_dict(keep_vars=True).items():
                add_tensor(path, key, tensor, "parameter" if isinstance(tensor, torch.nn.Parameter) else "buffer")
        else:
            base_name = next((c.__name__ for c in type(module).__mro__ if containers.get(c.__name__) is c
                              and c.__name__ != "Module"), "Module")
            entry = {"path": path, "kind": "container", "base": base_name, "class": _class_info(type(module)),
                     "training": bool(module.training)}
            for name, tensor in module.named_parameters(recurse=False):
                add_tensor(path, name, tensor, "parameter")
            non_persistent = getattr(module, "_non_persistent_buffers_set", set())
            for name, tensor in module.named_buffers(recurse=False):
                add_tensor(path, name, tensor, "buffer", persistent=name not in non_persistent)
        modules.append(entry)

    record = {"kind": "model", "framework": "torch", "format": FORMAT, "class": _class_info(type(model)),
              "training": bool(model.training), "modules": modules, "tensors": tensors, "graph": None}
    if modules[0]["kind"] == "layer":
        return record

    class Tracer(torch.fx.Tracer):
        def is_leaf_module(self, module, qualified_name):  # noqa: D102 (torch.fx's hook)
            return is_layer(module)

    flags = [(m, m.training) for _, m in named]
    try:
        for m, _ in flags:
            m.training = False  # traced as the checks run it: in eval mode
        graph = Tracer().trace(model)
    except ModelExportError:
        raise
    except Exception as error:  # a student's forward pass may raise anything while traced
        raise ModelExportError(
            "the grader rebuilds your model from its layers and its forward pass with torch.fx, and could not "
            f"trace it: {type(error).__name__}: {str(error)[:500]}. Write forward() as plain tensor operations: "
            "no Python if/for/while on tensor values, no .item()/.tolist()/.numpy(), no printing or NumPy "
            "inside forward()") from None
    finally:
        for m, flag in flags:
            m.training = flag
    if len(graph.nodes) > MAX_NODES:
        raise ModelExportError(f"the forward pass has {len(graph.nodes)} operations, the grader accepts at "
                               f"most {MAX_NODES}")
    names = _function_names()
    nodes = []
    for node in graph.nodes:
        if node.op == "get_attr" and node.target not in tensor_paths:
            value = model
            for part in node.target.split("."):
                value = getattr(value, part)
            owner, _, name = node.target.rpartition(".")
            add_tensor(owner, name, value, "constant")
        if node.op == "call_function":
            target = names.get(id(node.target)) or _qualified_name(node.target)
        else:
            target = str(node.target)
        context = f"{target} in forward()"
        nodes.append({"name": node.name, "op": node.op, "target": target,
                      "args": [_encode_arg(a, context) for a in node.args],
                      "kwargs": {str(k): _encode_arg(v, context) for k, v in node.kwargs.items()}})
    record["graph"] = nodes
    return record


def _qualified_name(function) -> str:
    module = getattr(function, "__module__", None) or "?"
    return f"{module}.{getattr(function, '__qualname__', None) or getattr(function, '__name__', '?')}"


def _layer_config(module, layer_class) -> dict:
    """Constructor arguments read from the same-named attributes (``bias``: whether there is one)."""
    config = {}
    try:
        parameters = list(inspect.signature(layer_class.__init__).parameters.values())[1:]
    except (TypeError, ValueError):
        return config
    params = getattr(module, "_parameters", {})
    for p in parameters:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in ("device", "dtype"):
            continue
        if p.name in params:
            config[p.name] = params[p.name] is not None
        elif p.name in vars(module):
            try:
                config[p.name] = _plain(vars(module)[p.name])
            except TypeError:
                continue
    return config


def _layer_attributes(module) -> dict:
    attributes = {}
    for name, value in vars(module).items():
        if name.startswith("_") or name == "training" or not _PART.match(name):
            continue
        try:
            attributes[name] = _plain(value)
        except TypeError:
            continue
    return attributes


def _encode_arg(value, context: str, depth: int = 0):
    import torch
    import torch.fx

    if depth > MAX_DEPTH:
        raise ModelExportError(f"{context}: arguments nested too deeply")
    if isinstance(value, torch.fx.Node):
        return {"node": value.name}
    if value is None or type(value) in (bool, int, str, float):
        return _plain(value) if type(value) is not str or len(value) <= MAX_STRING else _too_long(context)
    if isinstance(value, (tuple, list)) and type(value) not in (torch.Size,) and len(value) <= MAX_ITEMS:
        items = [_encode_arg(v, context, depth + 1) for v in value]
        return {"tuple": items} if isinstance(value, tuple) else items
    if isinstance(value, torch.Size):
        return {"tuple": [int(v) for v in value]}
    if type(value) is slice:
        return {"slice": [_encode_arg(v, context, depth + 1) for v in (value.start, value.stop, value.step)]}
    if value is Ellipsis:
        return {"ellipsis": True}
    if isinstance(value, torch.dtype):
        return {"dtype": str(value).removeprefix("torch.")}
    if isinstance(value, torch.device):
        return {"device": str(value)}
    if isinstance(value, torch.memory_format):
        return {"memory_format": str(value).removeprefix("torch.")}
    raise ModelExportError(f"{context} is given a {type(value).__name__} ({str(value)[:80]}): the grader "
                           "carries only tensors, numbers, strings, tuples and lists between the operations "
                           "of forward()")


def _too_long(context: str):
    raise ModelExportError(f"{context}: a string argument longer than {MAX_STRING} characters")


def _export_keras(model, folder: pathlib.Path, stem: str) -> dict:
    import keras

    if not isinstance(model, keras.Model):
        raise ModelExportError(f"expected a keras.Model, got the Keras layer {type(model).__name__}: wrap it in "
                               "keras.Sequential([...])")
    try:
        config = json.loads(model.to_json())
    except Exception as error:  # a subclassed model's get_config may raise anything
        raise ModelExportError(
            "the grader rebuilds Keras models from their configuration (model.to_json()), which failed: "
            f"{type(error).__name__}: {str(error)[:300]}; build the model with keras.Sequential or the functional "
            "API from keras.layers") from None
    config.pop("compile_config", None)
    weights = [_save_array(np.asarray(w), folder, f"{stem}_w{i}") for i, w in enumerate(model.get_weights())]
    return {"kind": "model", "framework": "keras", "format": FORMAT, "class": _class_info(type(model)),
            "config": json.dumps(config), "weights": weights}


# ---------------------------------------------------------------------------------------------
# import (the trusted parent)


def import_model(record: dict, folder: pathlib.Path):
    """The model a record stands for, rebuilt from library code (parent side).

    Raises :class:`ModelRecordError` (a :class:`transport.TransportError`) for a malformed record or
    anything outside the allowlists.
    """
    _require(isinstance(record, dict) and record.get("kind") == "model", "a model record must have kind 'model'")
    _require(record.get("format") == FORMAT, f"unknown model record format {record.get('format')!r}")
    folder = pathlib.Path(folder)
    framework = record.get("framework")
    _require(framework in ("torch", "keras"), f"unknown model framework {str(framework)[:50]!r}")
    try:
        return _import_torch(record, folder) if framework == "torch" else _import_keras(record, folder)
    except transport.TransportError:
        raise
    except Exception as error:  # torch or keras refused what passed the checks above: still the record's fault
        raise ModelRecordError(f"the model cannot be rebuilt: {type(error).__name__}: {str(error)[:300]}") from None


def _keys(entry, required: set, what: str) -> None:
    _require(isinstance(entry, dict), f"{what} must be an object")
    _require(set(entry) == required, f"{what} must have exactly the keys {sorted(required)}, "
                                     f"got {sorted(map(str, entry))[:20]}")


def _path(value, what: str, allow_root: bool = False) -> str:
    _require(isinstance(value, str) and len(value) <= MAX_NAME, f"bad {what} {str(value)[:80]!r}")
    if value == "" and allow_root:
        return value
    parts = value.split(".")
    _require(len(parts) <= 32 and all(_PART.match(p) and not p.startswith("__") for p in parts),
             f"bad {what} {value[:80]!r}: dotted names of letters, digits and _ only")
    return value


def _identifier(value, what: str) -> str:
    _require(isinstance(value, str) and _IDENTIFIER.match(value) and not keyword.iskeyword(value)
             and not value.startswith("__"), f"bad {what} {str(value)[:80]!r}")
    return value


def _class_record(value, what: str) -> tuple[str, str]:
    _keys(value, {"name", "module"}, what)
    name, module = value["name"], value["module"]
    _require(isinstance(name, str) and _IDENTIFIER.match(name), f"bad class name in {what}")
    _require(isinstance(module, str) and len(module) <= MAX_NAME and _MODULE_NAME.match(module),
             f"bad module name in {what}")
    return name, module


def _value(value, what: str, depth: int = 0):
    """A plain configuration value from its JSON form."""
    _require(depth <= 4, f"{what}: nested too deeply")
    if value is None or type(value) in (bool, int, float):
        _require(type(value) is not int or abs(value) <= 2**63, f"{what}: integer out of range")
        return value
    if type(value) is str:
        _require(len(value) <= MAX_STRING, f"{what}: string too long")
        return value
    if type(value) is list:
        _require(len(value) <= 64, f"{what}: list too long")
        return [_value(v, what, depth + 1) for v in value]
    if type(value) is dict and len(value) == 1:
        (tag, inner), = value.items()
        if tag == "tuple" and type(inner) is list and len(inner) <= 64:
            return tuple(_value(v, what, depth + 1) for v in inner)
        if tag == "float" and inner in ("nan", "inf", "-inf"):
            return float(inner)
    _fail(f"{what}: not a plain value: {str(value)[:80]}")


def _plain_type(value) -> bool:
    if value is None or type(value) in (bool, int, float, str):
        return True
    return type(value) in (tuple, list) and all(_plain_type(v) for v in value)


@functools.lru_cache(maxsize=1)
def _function_table() -> dict:
    """Allowed ``call_function`` targets: canonical name -> function."""
    import torch
    import torch.nn.functional as F  # noqa: N812 (the usual name)

    table = {"builtins.getattr": getattr}
    for name in OPERATOR_FUNCTIONS:
        table[f"_operator.{name}"] = getattr(operator, name)
    for name in MATH_FUNCTIONS:
        table[f"math.{name}"] = getattr(math, name)
    for name in sorted(dir(F)):
        value = getattr(F, name)
        if (not name.startswith("_") and name not in _FUNCTIONAL_EXCLUDED and callable(value)
                and not isinstance(value, type)
                and getattr(value, "__module__", None) in ("torch.nn.functional", "torch", "torch._C._nn")):
            table[f"torch.nn.functional.{name}"] = value
    for name in TORCH_FUNCTIONS:
        value = getattr(torch, name, None)
        if callable(value) and not isinstance(value, type):
            table[f"torch.{name}"] = value
    return table


@functools.lru_cache(maxsize=1)
def _function_names_cached() -> tuple:
    names = {}
    for name, function in _function_table().items():
        names.setdefault(id(function), name)
    return tuple(names.items())


def _function_names() -> dict:
    """id(function) -> canonical name (the first name in the table)."""
    return dict(_function_names_cached())


def _load_arrays(entries: list, folder: pathlib.Path) -> list:
    total = 0
    for entry in entries:
        name = entry.get("file")
        _require(isinstance(name, str) and "/" not in name and "\\" not in name and not name.startswith(".")
                 and name.endswith(".npy"), f"bad array file name {str(name)[:80]!r}")
        path = folder / name
        _require(path.is_file() and not path.is_symlink(), f"array file {name} is missing or not a plain file")
        total += path.stat().st_size
        _require(total <= MAX_TOTAL_BYTES, f"the model's arrays are larger than {MAX_TOTAL_BYTES} bytes")
    arrays = []
    for entry in entries:
        array = transport._load_array({"file": entry["file"], "dtype": entry.get("dtype"),
                                       "shape": entry.get("shape")}, folder)
        _require(array.dtype.str in _DTYPES, f"array file {entry['file']} has dtype {array.dtype.str}")
        arrays.append(array)
    return arrays


def _import_torch(record: dict, folder: pathlib.Path):
    import torch
    import torch.fx

    _keys(record, {"kind", "framework", "format", "class", "training", "modules", "tensors", "graph"},
          "a torch model record")
    root_name, root_module = _class_record(record["class"], "the model's class")
    _require(type(record["training"]) is bool, "training must be true or false")
    entries, tensor_entries, graph_entries = record["modules"], record["tensors"], record["graph"]
    _require(type(entries) is list and 1 <= len(entries) <= MAX_MODULES,
             f"modules must be a list of 1 to {MAX_MODULES} entries")
    _require(type(tensor_entries) is list and len(tensor_entries) <= MAX_TENSORS,
             f"tensors must be a list of at most {MAX_TENSORS} entries")
    layers, containers = _torch_tables()

    # -- modules: validate every entry, then build (layers on the meta device: no allocation yet) ----------
    kinds: dict[str, str] = {}
    built: dict[str, torch.nn.Module] = {}
    for index, entry in enumerate(entries):
        _require(isinstance(entry, dict), "a module entry must be an object")
        path = _path(entry.get("path"), "module path", allow_root=True)
        _require((index == 0) == (path == ""), "the root module (path '') must come first, and only once")
        _require(path not in kinds, f"module {path!r} is listed twice")
        if path:
            parent = path.rpartition(".")[0]
            _require(kinds.get(parent) == "container", f"module {path!r} comes before its parent or lies inside a "
                                                       "layer")
        if entry.get("kind") == "layer":
            _keys(entry, {"path", "kind", "type", "as", "config", "attributes", "training"}, f"layer {path!r}")
            built[path] = _build_layer(entry, layers)
        elif entry.get("kind") == "container":
            _keys(entry, {"path", "kind", "base", "class", "training"}, f"module {path!r}")
            _require(entry["base"] in _CONTAINER_BASES, f"module {path!r}: unknown base {str(entry['base'])[:40]!r}")
            _require(type(entry["training"]) is bool, f"module {path!r}: training must be true or false")
            name, module = _class_record(entry["class"], f"module {path!r}")
            if path:
                cls = containers[entry["base"]]
                if (name, module) != (cls.__name__, cls.__module__):  # a stand-in named like the student's class
                    cls = type(name, (cls,), {"__module__": module, "__qualname__": name})
                built[path] = cls()
                built[path].training = entry["training"]
        else:
            _fail(f"module {path!r}: kind must be 'layer' or 'container'")
        kinds[path] = entry["kind"]
    root_is_layer = kinds[""] == "layer"
    _require((graph_entries is None) == root_is_layer,
             "the graph must be null exactly when the model itself is a layer")

    # -- tensors ---------------------------------------------------------------------------------------------
    by_path: dict[str, dict] = {}
    for entry in tensor_entries:
        _keys(entry, {"owner", "name", "role", "requires_grad", "persistent", "torch_dtype", "file", "dtype",
                      "shape"}, "a tensor entry")
        owner = _path(entry["owner"], "tensor owner", allow_root=True)
        _require(kinds.get(owner) is not None, f"tensor {entry['name']!r}: unknown owner module {owner!r}")
        role = entry["role"]
        _require(role in ("parameter", "buffer", "constant"), f"bad tensor role {str(role)[:40]!r}")
        if kinds[owner] == "layer":
            _path(entry["name"], "tensor name")
            _require(role != "constant", "a constant cannot belong to a layer")
        else:
            _require(isinstance(entry["name"], str) and _PART.match(entry["name"])
                     and not entry["name"].startswith("__"), f"bad tensor name {str(entry['name'])[:80]!r}")
        _require(type(entry["requires_grad"]) is bool and type(entry["persistent"]) is bool,
                 "requires_grad and persistent must be true or false")
        _require(entry["torch_dtype"] == _DTYPES.get(entry["dtype"])
                 or (entry["torch_dtype"] == "bfloat16" and entry["dtype"] == "<f4"),
                 f"tensor {entry['name']!r}: torch_dtype does not match the array's dtype")
        _require(isinstance(entry["shape"], list) and len(entry["shape"]) <= 8, "bad tensor shape")
        full = f"{owner}.{entry['name']}" if owner else entry["name"]
        _require(full not in by_path, f"tensor {full!r} is listed twice")
        by_path[full] = entry
    arrays = _load_arrays(tensor_entries, folder)
    tensors = {}
    for entry, array in zip(tensor_entries, arrays):
        tensor = torch.from_numpy(array)
        if entry["torch_dtype"] == "bfloat16":
            tensor = tensor.to(torch.bfloat16)
        tensors[f"{entry['owner']}.{entry['name']}" if entry["owner"] else entry["name"]] = tensor

    for path, module in built.items():
        if kinds[path] == "layer":
            _load_layer(path, module, {k: v for k, v in by_path.items() if v["owner"] == path}, tensors)
    if root_is_layer:
        model = built[""]
        model.train(record["training"])
        return model

    # -- the hierarchy under a GraphModule -----------------------------------------------------------------
    model = torch.fx.GraphModule(torch.nn.Module(), torch.fx.Graph(), class_name=root_name)
    type(model).__module__ = root_module
    type(model).__qualname__ = root_name
    built[""] = model
    for entry in entries[1:]:
        parent, _, name = entry["path"].rpartition(".")
        try:
            built[parent].add_module(name, built[entry["path"]])
        except (KeyError, TypeError, AttributeError) as error:
            _fail(f"module {entry['path']!r} cannot be added: {error}")
    for full, entry in by_path.items():
        if kinds[entry["owner"]] != "container":
            continue
        owner, name, tensor = built[entry["owner"]], entry["name"], tensors[full]
        try:
            if entry["role"] == "parameter":
                owner.register_parameter(name, torch.nn.Parameter(tensor, requires_grad=entry["requires_grad"]))
            elif entry["role"] == "buffer":
                owner.register_buffer(name, tensor, persistent=entry["persistent"])
            else:
                _require(not hasattr(owner, name), f"constant {full!r} would replace an attribute")
                setattr(owner, name, tensor)
        except (KeyError, TypeError, RuntimeError) as error:
            _fail(f"tensor {full!r} cannot be added: {error}")

    # -- the graph -----------------------------------------------------------------------------------------
    layer_paths = {p for p, k in kinds.items() if k == "layer"}
    model.graph = _build_graph(graph_entries, layer_paths, set(by_path))
    try:
        model.graph.lint()
    except Exception as error:  # fx's own consistency check (RuntimeError, AssertionError ...)
        _fail(f"the graph is inconsistent: {error}")
    model.training = record["training"]
    return model


def _build_layer(entry: dict, layers: dict):
    path = entry["path"]
    type_name = entry["type"]
    _require(isinstance(type_name, str) and type_name in layers,
             f"layer {path!r}: {str(type_name)[:60]!r} is not a layer class of torch.nn the grader can rebuild")
    cls = layers[type_name]
    if entry["as"] is not None:
        name, module = _class_record(entry["as"], f"layer {path!r}")
        cls = type(name, (cls,), {"__module__": module, "__qualname__": name})
    _require(type(entry["training"]) is bool, f"layer {path!r}: training must be true or false")
    config, attributes = entry["config"], entry["attributes"]
    _require(type(config) is dict and type(attributes) is dict and len(config) <= 64 and len(attributes) <= 64,
             f"layer {path!r}: config and attributes must be objects")
    parameters = inspect.signature(layers[type_name].__init__).parameters
    accepted = {name for name, p in parameters.items()
                if name not in ("self", "device", "dtype") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    kwargs = {}
    for name, value in config.items():
        _require(name in accepted, f"layer {path!r}: nn.{type_name} takes no argument {str(name)[:40]!r}")
        kwargs[name] = _value(value, f"layer {path!r} argument {name}")
    if "device" in parameters:
        kwargs["device"] = "meta"  # no memory for sizes the record chose; the tensors come from the record
    try:
        layer = cls(**kwargs)
    except Exception as error:  # torch's constructors raise TypeError, ValueError, RuntimeError ...
        _fail(f"layer {path!r}: nn.{type_name}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"[:300]
              + f" fails: {type(error).__name__}: {str(error)[:200]}")
    state = vars(layer)
    for name, value in attributes.items():
        _require(isinstance(name, str) and _PART.match(name), f"layer {path!r}: bad attribute name")
        new = _value(value, f"layer {path!r} attribute {name}")
        if name.startswith("_") or name == "training" or name not in state or not _plain_type(state[name]):
            continue  # an attribute this layer does not have (set by the student): it plays no part in forward
        setattr(layer, name, new)
    layer.train(entry["training"])
    return layer


def _load_layer(path: str, layer, entries: dict, tensors: dict) -> None:
    import torch

    expected = layer.state_dict(keep_vars=True)
    given = {entry["name"]: entry for entry in entries.values()}
    missing, unexpected = sorted(set(expected) - set(given)), sorted(set(given) - set(expected))
    _require(not missing and not unexpected,
             f"layer {path!r} ({type(layer).__name__}): the tensors do not match the layer's "
             f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    state = {}
    for name, entry in given.items():
        role = "parameter" if isinstance(expected[name], torch.nn.Parameter) else "buffer"
        _require(entry["role"] == role, f"layer {path!r}: {name} is a {role}, not a {entry['role']}")
        _require(tuple(expected[name].shape) == tuple(entry["shape"]),
                 f"layer {path!r}: {name} has shape {tuple(entry['shape'])}, the layer needs "
                 f"{tuple(expected[name].shape)}")
        state[name] = tensors[f"{path}.{name}" if path else name]
    try:
        layer.load_state_dict(state, strict=True, assign=True)
        for name, parameter in layer.named_parameters():
            requires = given[name]["requires_grad"] if name in given else parameter.requires_grad
            parameter.requires_grad_(requires and (parameter.is_floating_point() or parameter.is_complex()))
    except (RuntimeError, KeyError, ValueError) as error:
        _fail(f"layer {path!r}: its tensors cannot be loaded: {str(error)[:300]}")
    _require(not any(t.is_meta for t in [*layer.parameters(), *layer.buffers()]),
             f"layer {path!r} (nn.{type(layer).__name__}) cannot be rebuilt from its tensors")


def _build_graph(entries, layer_paths: set, tensor_paths: set):
    import torch
    import torch.fx

    _require(type(entries) is list and 1 <= len(entries) <= MAX_NODES,
             f"the graph must be a list of 1 to {MAX_NODES} nodes")
    table = _function_table()
    graph = torch.fx.Graph()
    nodes: dict[str, torch.fx.Node] = {}
    placeholders_done = False

    def arg(value, depth: int = 0):
        _require(depth <= MAX_DEPTH, "node arguments nested too deeply")
        if value is None or type(value) in (bool, float):
            return value
        if type(value) is int:
            _require(abs(value) <= 2**63, "an integer argument is out of range")
            return value
        if type(value) is str:
            _require(len(value) <= MAX_STRING, "a string argument is too long")
            return value
        if type(value) is list:
            _require(len(value) <= MAX_ITEMS, "a list argument is too long")
            return [arg(v, depth + 1) for v in value]
        _require(type(value) is dict and len(value) == 1, f"bad node argument {str(value)[:80]}")
        (tag, inner), = value.items()
        if tag == "node":
            _require(isinstance(inner, str) and inner in nodes, f"argument refers to an unknown or later node "
                                                                f"{str(inner)[:60]!r}")
            return nodes[inner]
        if tag == "tuple":
            _require(type(inner) is list and len(inner) <= MAX_ITEMS, "bad tuple argument")
            return tuple(arg(v, depth + 1) for v in inner)
        if tag == "float":
            _require(inner in ("nan", "inf", "-inf"), "bad float argument")
            return float(inner)
        if tag == "slice":
            _require(type(inner) is list and len(inner) == 3, "bad slice argument")
            return slice(*(arg(v, depth + 1) for v in inner))
        if tag == "ellipsis":
            _require(inner is True, "bad ellipsis argument")
            return Ellipsis
        if tag == "dtype":
            _require(inner in (*_DTYPES.values(), "bfloat16"), f"dtype {str(inner)[:40]!r} is not allowed")
            return getattr(torch, inner)
        if tag == "device":
            _require(isinstance(inner, str) and _DEVICE.match(inner), f"bad device {str(inner)[:40]!r}")
            return torch.device(inner)
        if tag == "memory_format":
            _require(inner in _MEMORY_FORMATS, f"bad memory format {str(inner)[:40]!r}")
            return getattr(torch, inner)
        _fail(f"bad node argument tag {str(tag)[:40]!r}")

    for index, entry in enumerate(entries):
        _keys(entry, {"name", "op", "target", "args", "kwargs"}, "a graph node")
        name = _identifier(entry["name"], "node name")
        _require(name not in _RESERVED, f"the node name {name!r} is reserved")
        _require(name not in nodes, f"node {name!r} is defined twice")
        op, target = entry["op"], entry["target"]
        _require(type(entry["args"]) is list and type(entry["kwargs"]) is dict and len(entry["kwargs"]) <= 64,
                 f"node {name!r}: args must be a list and kwargs an object")
        args = tuple(arg(v) for v in entry["args"])
        kwargs = {_identifier(k, f"node {name!r} keyword"): arg(v) for k, v in entry["kwargs"].items()}
        last = index == len(entries) - 1
        _require(op != "placeholder" or not placeholders_done, "the inputs (placeholders) must come first")
        _require((op == "output") == last, "the graph must end with its one output node")
        if op == "placeholder":
            target = _identifier(target, "input name")
            _require(target == "input" or target not in _RESERVED, f"the input name {target!r} is reserved")
            _require(target != "self" and len(args) <= 1 and not kwargs
                     and not any(isinstance(a, torch.fx.Node) for a in args), f"bad input {target!r}")
        else:
            placeholders_done = True
        if op == "get_attr":
            _require(isinstance(target, str) and target in tensor_paths and not args and not kwargs,
                     f"get_attr {str(target)[:80]!r} is not one of the model's tensors")
        elif op == "call_module":
            _require(isinstance(target, str) and target in layer_paths,
                     f"call_module {str(target)[:80]!r} is not one of the model's layers")
        elif op == "call_method":
            _require(isinstance(target, str) and target in TENSOR_METHODS,
                     f"the Tensor method {str(target)[:60]!r} is not allowed in a model's forward pass")
            _require(args and isinstance(args[0], torch.fx.Node), f"call_method {target}: no tensor to call it on")
        elif op == "call_function":
            _require(isinstance(target, str) and target in table,
                     f"{str(target)[:80]!r} is not allowed in a model's forward pass (allowed: torch.nn layers, "
                     "torch.nn.functional, tensor math such as torch.cat or torch.flatten, Tensor methods such "
                     "as view or reshape, and Python operators)")
            if target == "builtins.getattr":
                _require(len(args) == 2 and not kwargs and isinstance(args[0], torch.fx.Node)
                         and args[1] in TENSOR_ATTRIBUTES, f"getattr of {str(args[1:])[:40]} is not allowed")
            target = table[target]
        elif op == "output":
            _require(target == "output" and len(args) == 1 and not kwargs, "bad output node")
        elif op != "placeholder":
            _fail(f"unknown node op {str(op)[:40]!r}")
        nodes[name] = graph.create_node(op, target, args, kwargs, name=name)
    return graph


# -- Keras -------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _keras_allowed() -> frozenset:
    """(module, class_name) pairs a Keras configuration may name."""
    import keras

    pairs = set(_KERAS_MODELS)
    pairs |= {("keras.layers", name) for name in KERAS_LAYERS if hasattr(keras.layers, name)}
    for module, base in (("initializers", keras.initializers.Initializer),
                         ("regularizers", keras.regularizers.Regularizer),
                         ("constraints", keras.constraints.Constraint)):
        namespace = getattr(keras, module)
        for name in dir(namespace):
            value = getattr(namespace, name)
            if not name.startswith("_") and isinstance(value, type) and issubclass(value, base) \
                    and value is not base:
                pairs.add((f"keras.{module}", name))
    return frozenset(pairs)


def _keras_activations() -> set:
    import keras

    return {n for n in dir(keras.activations) if not n.startswith("_") and n not in ("get", "serialize",
                                                                                      "deserialize")}


def _check_keras_config(config) -> None:
    allowed = _keras_allowed()
    activations = _keras_activations()
    stack, count = [(config, 0)], 0
    while stack:
        value, depth = stack.pop()
        count += 1
        _require(depth <= 64 and count <= 200_000, "the Keras configuration is too large or too deep")
        if isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
        elif isinstance(value, dict):
            if "class_name" in value or "module" in value or "registered_name" in value:
                class_name, module = value.get("class_name"), value.get("module")
                _require(value.get("registered_name") in (None, class_name),
                         f"the Keras object {str(class_name)[:60]!r} is a registered custom object")
                if class_name in ("__keras_tensor__", "__tuple__"):
                    _require(module is None, "bad Keras tensor reference")
                elif class_name == "function":
                    _require(module in ("keras.activations", "builtins") and value.get("config") in activations,
                             f"the Keras function {str(value.get('config'))[:60]!r} is not an allowed activation")
                else:
                    _require((module, class_name) in allowed,
                             f"the Keras object {str(module)[:60]}.{str(class_name)[:60]} is not allowed (a model "
                             f"may use only the layers of keras.layers such as Conv2D or Dense; no Lambda layers "
                             "and no custom classes)")
            stack.extend((v, depth + 1) for v in value.values())
        else:
            _require(value is None or type(value) in (bool, int, float, str), "bad value in the Keras configuration")


def _import_keras(record: dict, folder: pathlib.Path):
    import keras

    _keys(record, {"kind", "framework", "format", "class", "config", "weights"}, "a keras model record")
    _class_record(record["class"], "the model's class")
    text, weights = record["config"], record["weights"]
    _require(isinstance(text, str) and len(text) <= MAX_KERAS_JSON, "the Keras configuration must be a string")
    _require(type(weights) is list and len(weights) <= MAX_TENSORS, "weights must be a list")
    for entry in weights:
        _keys(entry, {"file", "dtype", "shape"}, "a weight entry")
    config = transport.loads(text)
    _require(isinstance(config, dict), "the Keras configuration must be an object")
    _require(not config.get("compile_config"), "the Keras configuration must not carry a compile_config")
    _check_keras_config(config)
    arrays = _load_arrays(weights, folder)
    try:
        from keras.src.saving import serialization_lib

        safe = serialization_lib.SafeModeScope(True)  # also when unsafe deserialization was enabled globally
    except (ImportError, AttributeError):
        safe = contextlib.nullcontext()
    try:
        with safe:
            model = keras.saving.deserialize_keras_object(config, custom_objects=None, safe_mode=True)
    except Exception as error:  # Keras raises ValueError, TypeError, KeyError ... on a bad configuration
        _fail(f"the Keras model cannot be rebuilt: {type(error).__name__}: {str(error)[:300]}")
    _require(isinstance(model, keras.Model), "the Keras configuration is not a model")
    for layer in model._flatten_layers(include_self=False):
        _require(type(layer).__module__.startswith("keras.src.") and type(layer).__name__ in KERAS_LAYERS,
                 f"the Keras layer {type(layer).__name__} is not allowed")
    expected = model.get_weights()
    _require(len(expected) == len(arrays), f"the model has {len(expected)} weight arrays, the record {len(arrays)}")
    for index, (want, got) in enumerate(zip(expected, arrays)):
        _require(want.shape == got.shape and want.dtype == got.dtype,
                 f"weight {index} has shape {got.shape} ({got.dtype}), the model needs {want.shape} ({want.dtype})")
    model.set_weights(arrays)
    return model
