"""Plain-data transport between the trusted verifier and its sandboxed child.

Nothing the child writes is ever unpickled. A value crosses as JSON, and every
array as a ``.npy`` file that the trusted side loads with ``allow_pickle=False``
after checking its size, so a rigged object (an ndarray subclass, a custom
``__eq__``, a ``__reduce__`` payload) arrives as what it is: its type's name.

Encoding (``encode`` in the child, ``decode`` in the parent):

========================  ===============================================
value                     JSON
========================  ===============================================
``None``                  ``{"kind": "none"}``
bool, int, float,         ``{"kind": "scalar", "type": "int" | "numpy.int64" | ...,
complex, NumPy scalar       "value": repr}``
str                       ``{"kind": "str", "value": ...}`` (cut at 1,000 chars)
exact ``numpy.ndarray``   ``{"kind": "array", "file": "r12.npy", "dtype", "shape"}``
with a numeric or bool
dtype
tuple / list              ``{"kind": "tuple" | "list", "items": [...]}`` (depth <= 4,
                          at most 64 items)
torch ``nn.Module``,      ``{"kind": "model", ...}`` (:mod:`utils.grading.model_transport`)
Keras model
exact ``torch.Tensor``    ``{"kind": "tensor", "dtype": "float32", "device": "cpu" | "cuda:0",
(numeric dtype)             "requires_grad": bool, "array": <array record>}``
anything else             ``{"kind": "opaque", "type": "MyArray"}``
========================  ===============================================
"""

from __future__ import annotations

import json
import pathlib
import re
import sys

import numpy as np

MAX_ARRAY_BYTES = 64 * 2**20
MAX_ITEMS = 64
MAX_DEPTH = 4
MAX_TEXT = 1000

_SCALAR_TYPES = {
    "bool": bool, "int": int, "float": float, "complex": complex,
    **{f"numpy.{name}": getattr(np, name) for name in (
        "bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
        "float16", "float32", "float64", "complex64", "complex128")},
}
_NUMERIC_KINDS = "biufc"


class TransportError(ValueError):
    """The child's data does not follow the schema (the child is then treated as having crashed)."""


def _type_name(value) -> str:
    cls = type(value)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def encode(value, folder: pathlib.Path, stem: str, depth: int = 0) -> dict:
    """The JSON record of ``value``; arrays are saved as ``folder/<stem>.npy`` (child side)."""
    if value is None:
        return {"kind": "none"}
    if type(value) in (bool, int, float, complex) or (
        isinstance(value, np.generic) and type(value).__module__ == "numpy" and value.dtype.kind in _NUMERIC_KINDS
    ):
        name = type(value).__name__
        name = name if type(value) in (bool, int, float, complex) else f"numpy.{name}"
        if name not in _SCALAR_TYPES:
            return {"kind": "opaque", "type": _type_name(value)}
        return {"kind": "scalar", "type": name, "value": repr(value.item() if isinstance(value, np.generic)
                                                               else value)}
    if type(value) is str:
        return {"kind": "str", "value": value[:MAX_TEXT]}
    if type(value) is np.ndarray and value.dtype.kind in _NUMERIC_KINDS and not value.dtype.fields:
        path = folder / f"{stem}.npy"
        np.save(path, value, allow_pickle=False)
        return {"kind": "array", "file": path.name, "dtype": value.dtype.str, "shape": list(value.shape)}
    if _is_tensor(value):
        return _encode_tensor(value, folder, stem)
    if type(value) in (tuple, list) and depth < MAX_DEPTH and len(value) <= MAX_ITEMS:
        return {"kind": type(value).__name__,
                "items": [encode(item, folder, f"{stem}_{i}", depth + 1) for i, item in enumerate(value)]}
    from utils.grading import model_transport

    if model_transport.is_model(value):  # a torch nn.Module or a Keras model (its export errors propagate)
        return model_transport.export_model(value, folder, stem)
    return {"kind": "opaque", "type": _type_name(value)}


def _opaque(type_name: str):
    # A harmless stand-in that carries only the name of what the child returned.
    name = str(type_name)[:100] or "object"
    cls = type(name.rsplit(".", 1)[-1], (), {"__repr__": lambda self: f"<{name} object>"})
    return cls()


def _parse_scalar(type_name: str, text: str):
    if type_name not in _SCALAR_TYPES or not isinstance(text, str) or len(text) > 200:
        raise TransportError(f"bad scalar record: {type_name!r}")
    if type_name == "bool" or type_name == "numpy.bool_":
        if text not in ("True", "False"):
            raise TransportError(f"bad bool {text!r}")
        raw = text == "True"
    elif type_name in ("complex", "numpy.complex64", "numpy.complex128"):
        raw = complex(text)
    elif type_name in ("float", "numpy.float16", "numpy.float32", "numpy.float64"):
        raw = float(text)
    else:
        raw = int(text)
    return _SCALAR_TYPES[type_name](raw)


def decode(record, folder: pathlib.Path, depth: int = 0):
    """The value a JSON record stands for (parent side); raises :class:`TransportError` when malformed."""
    if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
        raise TransportError("a record must be an object with a 'kind'")
    kind = record["kind"]
    if kind == "none":
        return None
    if kind == "scalar":
        try:
            return _parse_scalar(record.get("type"), record.get("value"))
        except (ValueError, OverflowError) as error:
            raise TransportError(f"bad scalar value: {error}") from None
    if kind == "str":
        if not isinstance(record.get("value"), str):
            raise TransportError("bad str record")
        return record["value"][:MAX_TEXT]
    if kind == "array":
        return _load_array(record, folder)
    if kind in ("tuple", "list"):
        items = record.get("items")
        if not isinstance(items, list) or len(items) > MAX_ITEMS or depth >= MAX_DEPTH:
            raise TransportError("bad sequence record")
        values = [decode(item, folder, depth + 1) for item in items]
        return tuple(values) if kind == "tuple" else values
    if kind == "tensor":
        return _decode_tensor(record, folder)
    if kind == "opaque":
        return _opaque(record.get("type", "object"))
    if kind == "model":
        from utils.grading import model_transport

        return model_transport.import_model(record, folder)
    raise TransportError(f"unknown record kind {kind!r}")


def _load_array(record: dict, folder: pathlib.Path) -> np.ndarray:
    name = record.get("file")
    if not isinstance(name, str) or "/" in name or "\\" in name or not name.endswith(".npy") or name.startswith("."):
        raise TransportError(f"bad array file name {name!r}")
    path = folder / name
    if path.is_symlink() or not path.is_file():
        raise TransportError(f"array file {name} is missing or not a plain file")
    if path.stat().st_size > MAX_ARRAY_BYTES:
        raise TransportError(f"array file {name} is larger than {MAX_ARRAY_BYTES} bytes")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise TransportError(f"array file {name} is not a plain .npy array: {error}") from None
    if type(array) is not np.ndarray or array.dtype.kind not in _NUMERIC_KINDS or array.dtype.fields:
        raise TransportError(f"array file {name} holds dtype {array.dtype}, not a plain numeric array")
    if array.dtype.str != record.get("dtype") or list(array.shape) != record.get("shape"):
        raise TransportError(f"array file {name} does not match its record")
    return array


# torch tensors: torch is imported only when a tensor crosses (assignments 2 and 3)

_TENSOR_DTYPES = ("float16", "float32", "float64", "complex64", "complex128", "int8", "int16", "int32", "int64",
                  "uint8", "bool")
_DEVICE = re.compile(r"^(cpu|cuda(:[0-9]{1,2})?)$")


def _is_tensor(value) -> bool:
    torch = sys.modules.get("torch")
    try:
        tensor_type = torch.Tensor  # in the verifier's child of a1, torch is a stub that raises on any use
    except Exception:  # noqa: BLE001
        return False
    return type(value) is tensor_type  # a subclass (rigged or not) stays opaque


def _encode_tensor(value, folder: pathlib.Path, stem: str) -> dict:
    dtype = str(value.dtype).removeprefix("torch.")
    if dtype not in _TENSOR_DTYPES or value.layout != sys.modules["torch"].strided:
        return {"kind": "opaque", "type": f"torch.Tensor ({dtype}, {value.layout})"}
    array = value.detach().cpu().resolve_conj().resolve_neg().numpy()
    return {"kind": "tensor", "dtype": dtype, "device": str(value.device), "requires_grad": bool(value.requires_grad),
            "array": encode(np.ascontiguousarray(array), folder, stem)}


def _decode_tensor(record: dict, folder: pathlib.Path):
    import torch

    dtype, device, requires_grad = record.get("dtype"), record.get("device"), record.get("requires_grad")
    if dtype not in _TENSOR_DTYPES or not isinstance(device, str) or not _DEVICE.match(device) \
            or not isinstance(requires_grad, bool):
        raise TransportError("bad tensor record")
    array_record = record.get("array")
    if not isinstance(array_record, dict) or array_record.get("kind") != "array":
        raise TransportError("bad tensor record: no array")
    array = _load_array(array_record, folder)
    if array.dtype != np.dtype(dtype):
        raise TransportError(f"tensor record says {dtype}, its array holds {array.dtype}")
    if device != "cpu" and not torch.cuda.is_available():
        raise TransportError(f"tensor on {device}, but this process has no CUDA device")
    tensor = torch.from_numpy(array.copy()).to(device)
    if requires_grad:
        if not (tensor.is_floating_point() or tensor.is_complex()):
            raise TransportError("an integer tensor cannot require grad")
        tensor.requires_grad_(True)
    return tensor


def dumps(record) -> str:
    """JSON text; NaN and infinities are allowed inside scalar repr strings only."""
    return json.dumps(record, allow_nan=False)


def loads(text: str):
    def reject_constant(name):
        raise TransportError(f"non-standard JSON constant {name}")

    try:
        return json.loads(text, parse_constant=reject_constant)
    except json.JSONDecodeError as error:
        raise TransportError(f"bad JSON: {error}") from None
