"""An IPython kernel for nbgrader that runs inside the sandbox (:mod:`utils.grading.sandbox`).

nbgrader starts the kernel that executes a student's notebook from a kernelspec.
:func:`install_kernelspec` writes one whose command is this module:

    python -m utils.grading.kernel KERNEL_DIR CONNECTION_FILE

which, as the grader's user, copies the connection file where the sandbox can
read it and runs ``python -m ipykernel_launcher -f <copy>`` through
:func:`utils.grading.sandbox.run`: a uid of its own, rlimits (memory,
processes, file size, CPU time), a wall-clock limit, no view of the hidden
paths (solutions, gradebook, other submissions, the grader's secret), and no
PID namespace (ipykernel shuts down when it believes its parent has gone).
With ZeroMQ's ``ipc`` transport (the grader asks for it), the kernel binds its
sockets as files in its own folder and the grader reaches them through links
at the paths it expects, so the kernel gets a new, empty network namespace;
with ``tcp`` it keeps the network (it must reach the grader on loopback).

Interrupts are sent as messages (``interrupt_mode: message``), because a
signal to this wrapper would not reach the sandboxed kernel. When nbgrader
kills the kernel (or the wrapper dies), the sandbox kills the whole tree;
:func:`kill_leftovers` is a last sweep for the grader after the run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import secrets
import shutil
import signal
import sys
import time

KERNEL_NAME = "cnn-course-sandbox"
MARKER_VARIABLE = "CNN_COURSE_KERNEL_RUN"
ROOT = pathlib.Path(__file__).resolve().parents[2]

# Passed through from the grader's environment to the kernel (nothing else is).
PASSED_VARIABLES = ("CNN_COURSE_GRADER_SEED", "CNN_COURSE_OFFLINE", "TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS",
                    "OMP_NUM_THREADS", "PYDEVD_DISABLE_FILE_VALIDATION", "LANG", "NBGRADER_EXECUTION",
                    "CUDA_VISIBLE_DEVICES")
# Read by this wrapper only (never passed on: the student's code need not know where the grading state is).
WRAPPER_VARIABLES = ("CNN_COURSE_KERNEL_SECONDS", "CNN_COURSE_KERNEL_HIDDEN")
KERNEL_SECONDS = 300.0           # the whole life of one kernel (nbgrader's per-notebook limit is below it)
KERNEL_MEMORY = 8 * 2**30        # address space: PyTorch and TensorFlow reserve a lot of it
KERNEL_PROCESSES = 256           # threads count too (BLAS, PyTorch, ZMQ)
GPU_KERNEL_MEMORY = 2**40        # CUDA reserves tens of GiB of address space up front


def has_gpu() -> bool:
    """Whether this machine has NVIDIA device files (a CUDA GPU the kernel must be able to open)."""
    return any(pathlib.Path("/dev").glob("nvidia[0-9]*"))


def install_kernelspec(jupyter_dir: pathlib.Path, kernel_dir: pathlib.Path, env: dict | None = None) -> str:
    """Write ``jupyter_dir/kernels/<KERNEL_NAME>/kernel.json``; point ``JUPYTER_PATH`` at ``jupyter_dir``.

    ``kernel_dir`` is the kernel's private folder (connection copy, home, logs); ``env`` holds variables
    for the kernel that override the grader's own (the kernel's seed, its time limit). Returns the kernel name.
    """
    spec_dir = pathlib.Path(jupyter_dir) / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    pathlib.Path(kernel_dir).mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "utils.grading.kernel", str(kernel_dir), "{connection_file}"],
        "display_name": "Python 3 (sandboxed grading kernel)",
        "language": "python",
        "interrupt_mode": "message",
        "env": {**(env or {}), "PYTHONPATH": str(ROOT)},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    return KERNEL_NAME


def hidden_paths() -> list[pathlib.Path]:
    """What no student code may see: the solutions, grading state, tests, examples, git, the grader's secret."""
    extra = [pathlib.Path(p) for p in os.environ.get("CNN_COURSE_KERNEL_HIDDEN", "").split(os.pathsep) if p]
    paths = [ROOT / "solutions", ROOT / "grading", ROOT / ".grader_secret", ROOT / "examples", ROOT / "tests",
             ROOT / ".git", *extra]
    return [p for p in paths if p.exists()]


def main(argv: list[str]) -> int:
    from utils.grading import sandbox

    kernel_dir, connection_file = pathlib.Path(argv[0]), pathlib.Path(argv[1])
    run_id = f"run-{secrets.token_hex(6)}"
    run_dir = kernel_dir / run_id
    run_dir.mkdir(parents=True)
    (kernel_dir / f"{run_id}.marker").touch()  # for kill_leftovers, before anything starts
    connection = run_dir / "connection.json"
    shutil.copyfile(connection_file, connection)
    env = {name: os.environ[name] for name in PASSED_VARIABLES if name in os.environ}
    env.update({"PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg", "MPLCONFIGDIR": str(run_dir),
                "IPYTHONDIR": str(run_dir / "ipython"), "JUPYTER_RUNTIME_DIR": str(run_dir),
                "PYTHONDONTWRITEBYTECODE": "1", MARKER_VARIABLE: run_id})
    gpu = has_gpu()
    limits = sandbox.Limits(wall_seconds=float(os.environ.get("CNN_COURSE_KERNEL_SECONDS", KERNEL_SECONDS)),
                            memory_bytes=GPU_KERNEL_MEMORY if gpu else KERNEL_MEMORY, processes=KERNEL_PROCESSES,
                            network=True, output_bytes=64 * 2**10)
    command = [sys.executable, "-m", "ipykernel_launcher", "-f", str(connection),
               "--HistoryManager.hist_file=:memory:"]
    # bubblewrap gives the child a fresh /dev without the GPU's device files: on a GPU machine the kernel
    # keeps the uid, rlimits and mount namespace (hidden paths) but not bubblewrap.
    info = json.loads(connection.read_text())
    if info.get("transport") == "ipc":
        # Sockets as files: the kernel binds them in its own folder, the client finds them through links at
        # the paths it expects. The kernel then needs no network at all (a new, empty network namespace).
        limits = dataclasses.replace(limits, network=False)
        client_prefix, kernel_prefix = info["ip"], str(run_dir / "kernel-ipc")
        for key in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"):
            link = pathlib.Path(f"{client_prefix}-{info[key]}")
            link.unlink(missing_ok=True)
            link.symlink_to(f"{kernel_prefix}-{info[key]}")
        info["ip"] = kernel_prefix
        connection.write_text(json.dumps(info))
    result = sandbox.run(command, cwd=run_dir, limits=limits, env=env, readable=[ROOT],
                         hidden=hidden_paths(), new_pid_namespace=False, bubblewrap=False if gpu else None)
    (kernel_dir / f"{run_dir.name}.json").write_text(json.dumps(
        {"status": result.status, "message": result.message(), "leftover_killed": result.leftover_killed}))
    return 0 if result.status == "ok" else 1


def kill_leftovers(kernel_dir: pathlib.Path, rounds: int = 50) -> int:
    """SIGKILL every process started by a kernel of ``kernel_dir`` that is still alive; returns how many.

    The sandbox sweeps a kernel's processes when the kernel ends; this catches what is left when the
    wrapper itself was killed (nbgrader killed at its per-notebook limit): every process whose
    environment holds one of the run markers written under ``kernel_dir``.
    """
    markers = [f"{MARKER_VARIABLE}={path.stem}".encode() for path in pathlib.Path(kernel_dir).glob("run-*.marker")]
    killed = 0
    for _ in range(rounds):
        found = [pid for pid in _pids() if _environ_has(pid, markers)]
        if not found:
            break
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.02)
    return killed


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit() and int(name) != os.getpid()]


def _environ_has(pid: int, markers: list[bytes]) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            environ = handle.read().split(b"\0")
    except OSError:
        return False
    return any(marker in environ for marker in markers)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
