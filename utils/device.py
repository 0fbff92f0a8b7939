"""CUDA or CPU for PyTorch and TensorFlow, seeding, determinism, quiet logs.

Typical notebook cell::

    from utils.device import quiet_tensorflow, torch_device, describe_device, seed_everything
    quiet_tensorflow()          # before the first `import tensorflow`
    print(describe_device())    # "PyTorch on CPU (no CUDA GPU found)"
    device = torch_device()     # torch.device('cuda') or torch.device('cpu')
    seed_everything(0)

At module level this imports NumPy and the standard library only. A framework
is imported only by the functions that cannot work without it
(``torch_device``, ``tf_device``, ``describe_device``); ``seed_everything``
and ``set_deterministic`` touch PyTorch / TensorFlow only if the notebook has
already imported them (or if you ask with ``torch=True`` / ``tensorflow=True``).
"""

from __future__ import annotations

import logging
import numbers
import os
import random
import sys
import warnings

import numpy as np

__all__ = [
    "quiet_tensorflow",
    "in_colab",
    "torch_device",
    "tf_device",
    "describe_device",
    "seed_everything",
    "set_deterministic",
]

COLAB_GPU_HINT = (
    "on Colab choose Runtime > Change runtime type > GPU (e.g. T4), then run the notebook again"
)


def quiet_tensorflow() -> bool:
    """Silence TensorFlow's start-up logs; call it *before* ``import tensorflow``.

    Sets ``TF_CPP_MIN_LOG_LEVEL=2`` (C++ INFO and WARNING off; kept if already
    higher) and ``TF_ENABLE_ONEDNN_OPTS=0`` (oneDNN custom ops off). Both are
    needed: with only the first, TensorFlow still prints its "oneDNN custom
    operations are on" notice on stderr; with only the second, the CPU-feature
    notice. Also sets the Python loggers ``tensorflow`` and ``absl`` to ERROR.

    Returns True if TensorFlow was not imported yet (the settings take full
    effect). If it was, the environment variables come too late for this
    process: returns False and warns (restart the kernel and call this first).
    """
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "")
    if not (level.isdigit() and int(level) >= 2):
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
    for name in ("tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if "tensorflow" in sys.modules:
        warnings.warn(
            "quiet_tensorflow(): TensorFlow was already imported, so TF_CPP_MIN_LOG_LEVEL and "
            "TF_ENABLE_ONEDNN_OPTS come too late for this session; restart the kernel and call "
            "quiet_tensorflow() before `import tensorflow`",
            stacklevel=2,
        )
        return False
    return True


def in_colab() -> bool:
    """True in Google Colab (its kernel loads ``google.colab`` and sets ``COLAB_RELEASE_TAG``)."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def _check_prefer(prefer) -> str:
    if not isinstance(prefer, str):
        raise TypeError(
            f"prefer must be a str ('cuda', 'cuda:N', 'mps' or 'cpu'), got {type(prefer).__name__}"
        )
    p = prefer.strip().lower()
    if p in ("cuda", "mps", "cpu") or (p.startswith("cuda:") and p[5:].isdigit()):
        return p
    raise ValueError(f"prefer must be 'cuda', 'cuda:N', 'mps' or 'cpu', got {prefer!r}")


def torch_device(prefer: str = "cuda"):
    """The ``torch.device`` to train on.

    ``prefer='cuda'`` (default): CUDA if ``torch.cuda.is_available()``, else CPU.
    ``'cuda:N'``: that GPU if it exists, else CPU. ``'mps'``: Apple-silicon GPU
    if available, else CPU. ``'cpu'``: always the CPU (e.g. to compare speed).
    Imports torch.
    """
    p = _check_prefer(prefer)
    import torch

    if p.startswith("cuda") and torch.cuda.is_available():
        index = int(p[5:]) if ":" in p else 0
        if index < torch.cuda.device_count():
            return torch.device(p)
    if p == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
    return torch.device("cpu")


def tf_device() -> str:
    """``'/GPU:0'`` if TensorFlow sees a GPU, else ``'/CPU:0'`` (for ``with tf.device(...)``).

    Imports TensorFlow (calling ``quiet_tensorflow()`` first if it is not imported yet).
    """
    if "tensorflow" not in sys.modules:
        quiet_tensorflow()
    import tensorflow as tf

    return "/GPU:0" if tf.config.list_physical_devices("GPU") else "/CPU:0"


def describe_device(framework: str = "torch") -> str:
    """One line saying where training will run, for a notebook to print.

    ``framework='torch'``: "PyTorch on CUDA: NVIDIA H100 80GB HBM3" or "PyTorch on
    CPU (no CUDA GPU found)"; ``'tensorflow'`` (or ``'tf'``): "TensorFlow on GPU:
    ..." or "TensorFlow on CPU (no GPU found)". On Colab without a GPU the line
    ends with where to switch one on (Runtime > Change runtime type > GPU).
    Imports that framework.
    """
    names = ("torch", "pytorch", "tensorflow", "tf")
    if not isinstance(framework, str) or framework.lower() not in names:
        raise ValueError(f"framework must be 'torch' or 'tensorflow', got {framework!r}")
    if framework.lower() in ("torch", "pytorch"):
        import torch

        if torch.cuda.is_available():
            names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            more = f" (+{len(names) - 1} more)" if len(names) > 1 else ""
            return f"PyTorch on CUDA: {names[0]}{more}"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "PyTorch on MPS (Apple GPU)"
        line = "PyTorch on CPU (no CUDA GPU found)"
    else:
        if "tensorflow" not in sys.modules:
            quiet_tensorflow()
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            try:
                details = tf.config.experimental.get_device_details(gpus[0])
                name = details.get("device_name", gpus[0].name)
            except Exception:  # pragma: no cover - details are best effort
                name = gpus[0].name
            return f"TensorFlow on GPU: {name}"
        line = "TensorFlow on CPU (no GPU found)"
    if in_colab():
        line += f" - {COLAB_GPU_HINT}"
    return line


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__} {seed!r}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32 - 1] (NumPy's rule), got {seed}")
    return int(seed)


def _want(flag, module: str, name: str) -> bool:
    """None -> only if already imported; True -> yes (import it); False -> no."""
    if flag is None:
        return module in sys.modules
    if not isinstance(flag, bool):
        raise TypeError(f"{name} must be True, False or None, got {flag!r}")
    return flag


def seed_everything(
    seed: int = 0, *, torch: bool | None = None, tensorflow: bool | None = None
) -> tuple[str, ...]:
    """Seed every random number generator a notebook uses, so runs repeat.

    Always: Python's ``random``, NumPy's global generator (``np.random.seed``;
    code using ``np.random.default_rng(seed)`` needs no global seed), and
    ``PYTHONHASHSEED`` (takes effect for subprocesses such as DataLoader workers
    started afterwards, not for the running interpreter).

    ``torch`` / ``tensorflow``: None (default) seeds the framework only if it is
    already imported -- this function never imports a framework just to seed
    it, so call it *after* your imports. True imports and seeds it; False
    skips it. PyTorch: ``torch.manual_seed`` (CPU and every CUDA device).
    TensorFlow: ``tf.random.set_seed`` (and ``keras.utils.set_random_seed``
    when Keras is imported).

    Returns the names of what was seeded, e.g. ``('random', 'numpy',
    'PYTHONHASHSEED', 'torch')``. For bit-exact GPU runs see ``set_deterministic``.
    """
    seed = _check_seed(seed)
    do_torch = _want(torch, "torch", "torch")
    do_tf = _want(tensorflow, "tensorflow", "tensorflow")
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    done = ["random", "numpy", "PYTHONHASHSEED"]
    if do_torch:
        import torch as _torch

        _torch.manual_seed(seed)  # also seeds all CUDA devices
        done.append("torch")
    if do_tf:
        if "tensorflow" not in sys.modules:
            quiet_tensorflow()
        import tensorflow as tf

        tf.random.set_seed(seed)
        if "keras" in sys.modules:
            import keras

            keras.utils.set_random_seed(seed)  # python, numpy and backend seeds
        done.append("tensorflow")
    return tuple(done)


def set_deterministic(enabled: bool = True, *, warn_only: bool = False,
                      torch: bool | None = None, tensorflow: bool | None = None) -> tuple[str, ...]:
    """Ask PyTorch / TensorFlow for deterministic (repeatable, slower) kernels.

    With ``enabled=True``:

    - sets ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (needed by deterministic cuBLAS;
      must be set before CUDA is first used, so call this early);
    - PyTorch: ``torch.use_deterministic_algorithms(True, warn_only=warn_only)``
      (an op without a deterministic version then raises, or warns if
      ``warn_only``), ``torch.backends.cudnn.benchmark = False``,
      ``torch.backends.cudnn.deterministic = True``, and TF32 off
      (``torch.backends.cuda.matmul.allow_tf32`` and
      ``torch.backends.cudnn.allow_tf32`` = False) so float32 matmuls and
      convolutions are full precision;
    - TensorFlow: ``tf.config.experimental.enable_op_determinism()`` and TF32
      off (``enable_tensor_float_32_execution(False)``).

    ``enabled=False`` restores the frameworks' defaults (cuDNN TF32 on, matmul
    TF32 off, benchmark off, op determinism off where TensorFlow allows).
    ``torch`` / ``tensorflow`` follow ``seed_everything``'s rule: None = only if
    already imported. Returns the names of what was configured.
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be True or False, got {enabled!r}")
    do_torch = _want(torch, "torch", "torch")
    do_tf = _want(tensorflow, "tensorflow", "tensorflow")
    done = []
    if enabled:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
        done.append("CUBLAS_WORKSPACE_CONFIG")
    if do_torch:
        import torch as _torch

        _torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
        _torch.backends.cudnn.benchmark = False
        _torch.backends.cudnn.deterministic = enabled
        try:
            _torch.backends.cuda.matmul.allow_tf32 = False  # PyTorch's default is False too
            _torch.backends.cudnn.allow_tf32 = not enabled  # default True
        except RuntimeError:  # pragma: no cover - newer PyTorch refuses to mix with fp32_precision
            _torch.backends.cuda.matmul.fp32_precision = "ieee"
            _torch.backends.cudnn.conv.fp32_precision = "ieee" if enabled else "tf32"
        done.append("torch")
    if do_tf:
        if "tensorflow" not in sys.modules:
            quiet_tensorflow()
        import tensorflow as tf

        if enabled:
            tf.config.experimental.enable_op_determinism()
        else:
            try:
                from tensorflow.python.framework import config as _tf_config

                _tf_config.disable_op_determinism()
            except (ImportError, AttributeError):  # pragma: no cover
                warnings.warn(
                    "this TensorFlow cannot turn op determinism off again; restart the kernel",
                    stacklevel=2,
                )
        tf.config.experimental.enable_tensor_float_32_execution(not enabled)
        done.append("tensorflow")
    return tuple(done)
