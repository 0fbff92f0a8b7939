"""utils.device: devices, seeding, determinism, quiet TensorFlow.

TensorFlow is only ever imported in a subprocess (with both log variables
removed from its environment), so this test process stays light and the
quiet_tensorflow() claim is checked on a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from utils import device

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(code: str, drop=("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")):
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120)


@pytest.fixture
def torch():
    torch = pytest.importorskip("torch")
    state = (torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
             torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    env = {k: os.environ.get(k) for k in ("CUBLAS_WORKSPACE_CONFIG", "PYTHONHASHSEED")}
    yield torch
    torch.use_deterministic_algorithms(state[0], warn_only=state[1])
    (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
     torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) = state[2:]
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_not_in_colab_here(monkeypatch):
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    assert device.in_colab() is False
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab_20250101")
    assert device.in_colab() is True


def test_torch_device(torch):
    dev = device.torch_device()
    assert isinstance(dev, torch.device)
    assert dev.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert device.torch_device("cpu") == torch.device("cpu")
    assert device.torch_device("cuda:7").type in ("cuda", "cpu")
    with pytest.raises(ValueError, match="prefer must be"):
        device.torch_device("gpu")
    with pytest.raises(TypeError, match="prefer must be a str"):
        device.torch_device(0)


def test_describe_device_says_cpu_here(torch, monkeypatch):
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    line = device.describe_device()
    if torch.cuda.is_available():  # pragma: no cover - GPU machines
        assert line.startswith("PyTorch on CUDA: ") and torch.cuda.get_device_name(0) in line
    else:
        assert line == "PyTorch on CPU (no CUDA GPU found)"
        monkeypatch.setenv("COLAB_RELEASE_TAG", "x")
        assert "Runtime > Change runtime type > GPU" in device.describe_device()
    with pytest.raises(ValueError, match="framework must be"):
        device.describe_device("jax")


def test_seed_everything_repeats_numpy_random_and_torch(torch):
    # tensorflow=False: whether an earlier test imported TensorFlow must not matter here.
    assert device.seed_everything(123, tensorflow=False) == ("random", "numpy", "PYTHONHASHSEED", "torch")
    a = (np.random.rand(3), random.random(), torch.randn(3))
    device.seed_everything(123, tensorflow=False)
    b = (np.random.rand(3), random.random(), torch.randn(3))
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1] and torch.equal(a[2], b[2])
    assert os.environ["PYTHONHASHSEED"] == "123"
    device.seed_everything(124)
    assert not np.array_equal(np.random.rand(3), a[0])
    assert device.seed_everything(1, torch=False, tensorflow=False) == ("random", "numpy", "PYTHONHASHSEED")
    with pytest.raises(ValueError, match="seed must be in"):
        device.seed_everything(-1)
    with pytest.raises(TypeError, match="seed must be an integer"):
        device.seed_everything(1.5)
    with pytest.raises(TypeError, match="torch must be True, False or None"):
        device.seed_everything(1, torch="yes")


def test_seed_everything_does_not_import_frameworks():
    out = run_python("""
        import sys, utils.device as d
        done = d.seed_everything(0)
        print(done, 'torch' in sys.modules, 'tensorflow' in sys.modules)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "('random', 'numpy', 'PYTHONHASHSEED') False False"


def test_set_deterministic_torch(torch):
    assert device.set_deterministic(True, tensorflow=False) == ("CUBLAS_WORKSPACE_CONFIG", "torch")
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    device.set_deterministic(False, tensorflow=False)
    assert not torch.are_deterministic_algorithms_enabled()
    assert not torch.backends.cudnn.deterministic
    assert torch.backends.cudnn.allow_tf32
    with pytest.raises(TypeError, match="enabled must be True or False"):
        device.set_deterministic("yes")


def test_quiet_tensorflow_and_tf_helpers_in_a_fresh_process():
    out = run_python("""
        import json, warnings
        from utils import device
        first = device.quiet_tensorflow()
        import tensorflow as tf
        tf.constant(1.0) + 1.0  # runs an op: would log if not quiet
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            again = device.quiet_tensorflow()
        print(json.dumps({
            "first": first, "again": again, "warned": [str(x.message) for x in w],
            "tf_device": device.tf_device(), "describe": device.describe_device("tensorflow"),
            "seeded": device.seed_everything(0),
            "determinism": device.set_deterministic(True),
        }))
    """)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # not one line of TensorFlow start-up logging
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["first"] is True and result["again"] is False
    assert any("already imported" in m for m in result["warned"])
    gpu = result["tf_device"] == "/GPU:0"
    assert result["tf_device"] in ("/GPU:0", "/CPU:0")
    expected = "TensorFlow on GPU" if gpu else "TensorFlow on CPU (no GPU found)"
    assert result["describe"].startswith(expected)
    assert "tensorflow" in result["seeded"] and "torch" not in result["seeded"]
    assert result["determinism"] == ["CUBLAS_WORKSPACE_CONFIG", "tensorflow"]
