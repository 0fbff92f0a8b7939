"""The untrusted half of the verifier: runs a student's solution cells and calls their functions.

    python -m utils.grading._verify_child JOB_DIR OUT_DIR

Started only inside the sandbox (:mod:`utils.grading.sandbox`). Reads
``JOB_DIR/job.json`` (written by :mod:`utils.grading.verify`) and the input
arrays next to it, executes the assignment's setup cells and the student's
solution cells in one namespace, then makes each requested call under the
assignment's guard (forbidden references become tripwires) and writes one
JSON line per event to a private duplicate of its stdout (a pipe the parent
reads; fd 1 itself goes to /dev/null before student code runs), so that a
child killed mid-way still reports every call it finished:

    {"event": "ready"}   (before any student code: the reference modules are blocked)

    {"event": "cell_start", "grade_id": ...}
    {"event": "cell", "grade_id": ..., "ok": true | false, "error": "..."}
    {"event": "start", "id": ...}
    {"event": "result", "id": ..., "value": <record>, "modified": [argument indices],
     "grads": {argument label: <record> | null}, "backward_error": {"type", "message"}}  (autograd calls)
    {"event": "raised", "id": ..., "type": "IndexError", "message": "...", "traceback": "..."}

Everything here is advisory: the trusted parent decides the verdict from the
returned values alone. Whatever this process says, it cannot see the
reference answers, the hidden checks' code paths or the grader's seed.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import io
import os
import pathlib
import sys
import traceback
import types

import numpy as np

from utils.grading import speed, transport

MAX_TRACEBACK = 3000


class _Log:
    """Events go to a private duplicate of the original stdout (a pipe to the parent), never to a file:
    student code cannot delete it, and fd 1 itself is pointed at /dev/null before any student code runs."""

    def __init__(self):
        self.fd = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)

    def write(self, record: dict) -> None:
        data = (transport.dumps(record) + "\n").encode()
        while data:
            data = data[os.write(self.fd, data):]


class _BlockReferences(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Replaces the reference implementations by stubs for the whole run: importing one still works (a harmless
    ``import tensorflow as tf`` costs nothing), using anything in it raises."""

    def __init__(self, packages):
        self.packages = tuple(packages)

    def find_spec(self, fullname, path=None, target=None):
        if any(fullname == p or fullname.startswith(p + ".") for p in self.packages):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return _Stub(spec.name)

    def exec_module(self, module):
        pass


class _Stub(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        raise _ForbiddenCall(f"{self.__name__} is off limits while your functions are checked "
                             f"(used {self.__name__}.{name})")


def _owner(dotted: str):
    """(object holding the last name, that name) for "torch.nn.functional.conv2d" or "torch.nn.Conv2d.forward";
    (None, name) when the module is not installed or this version lacks the name (it cannot be called then)."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for name in parts[cut:-1]:
                owner = getattr(owner, name)
        except AttributeError:
            return None, parts[-1]
        return (owner, parts[-1]) if hasattr(owner, parts[-1]) else (None, parts[-1])
    return None, parts[-1]


def _tripwire(dotted):
    def forbidden(*args, **kwargs):
        raise _ForbiddenCall(f"called {dotted}: the library and course implementations are off limits here")
    return forbidden


class _ForbiddenCall(Exception):
    pass


def _student_frames(error: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename.startswith("<cell ")]
    text = "".join(traceback.format_list(frames)) + "".join(traceback.format_exception_only(type(error), error))
    return text[-MAX_TRACEBACK:]


def _fingerprint(value):
    # bytes, shape and dtype: compared with bytes.__eq__, which student code cannot patch
    if isinstance(value, np.ndarray):
        return (value.shape, value.dtype.str, np.ndarray.tobytes(value))
    return None


def _set_torch_rng(state) -> None:
    if state is not None:
        import torch

        torch.random.set_rng_state(torch.from_numpy(state))


def _backward(value, upstream, args, kwargs, out_dir: pathlib.Path, call_id: str) -> dict:
    """Backward of the student's output with the check's upstream gradient: the inputs' gradients, as records."""
    import torch

    inputs = [(str(i), a) for i, a in enumerate(args)] + [(f"k:{k}", v) for k, v in sorted(kwargs.items())]
    inputs = [(label, t) for label, t in inputs if type(t) is torch.Tensor and t.requires_grad]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            value.backward(torch.as_tensor(upstream, dtype=value.dtype, device=value.device))
    except Exception as error:  # noqa: BLE001 (the student's backward may raise anything)
        return {"grads": {}, "backward_error": {"type": type(error).__name__, "message": str(error)[:1000]}}
    return {"grads": {label: None if t.grad is None
                      else transport.encode(t.grad, out_dir, f"g{call_id}_{label.replace(':', '_')}")
                      for label, t in inputs}}


def main(argv: list[str]) -> int:
    job_dir, out_dir = pathlib.Path(argv[0]), pathlib.Path(argv[1])
    log = _Log()
    job = transport.loads((job_dir / "job.json").read_text(encoding="utf-8"))
    # the references that speed measurements compare with: taken before they become tripwires
    references = {dotted: speed.resolve(dotted) for dotted in job.get("references", [])}
    measure_speed = speed.measure  # bound now: student code may rebind the module's names, not this one
    started, seconds_since = speed.started, speed.seconds_since
    # Before any student code: the reference modules cannot be imported, forbidden functions of modules
    # that must stay (NumPy) are tripwires, and the comparison of inputs uses bytes, which no patch reaches.
    for name in list(sys.modules):
        if any(name == p or name.startswith(p + ".") for p in job["blocked_modules"]):
            del sys.modules[name]
    sys.meta_path.insert(0, _BlockReferences(job["blocked_modules"]))
    for dotted in job["tripwires"]:
        if any(dotted.startswith(p + ".") for p in job["blocked_modules"]):
            continue  # its module is a stub already
        owner, attribute = _owner(dotted)
        if owner is not None:
            setattr(owner, attribute, _tripwire(dotted))
    log.write({"event": "ready"})

    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    cell_errors: dict[str, str] = {}
    for index, code in enumerate(job["setup"]):
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(code, f"<setup {index}>", "exec"), namespace)  # noqa: S102 (the course's own cells)
    for cell in job["cells"]:
        log.write({"event": "cell_start", "grade_id": cell["grade_id"]})
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(cell["code"], f"<cell {cell['grade_id']}>", "exec"), namespace)  # noqa: S102
            log.write({"event": "cell", "grade_id": cell["grade_id"], "ok": True, "error": ""})
        except BaseException as error:  # noqa: BLE001 (a student's cell may raise anything, SystemExit too)
            cell_errors[cell["grade_id"]] = f"{type(error).__name__}: {error}"[:500]
            log.write({"event": "cell", "grade_id": cell["grade_id"], "ok": False,
                       "error": cell_errors[cell["grade_id"]]})

    for call in job["calls"]:
        log.write({"event": "start", "id": call["id"]})
        function = namespace.get(call["function"])
        try:
            if not callable(function):
                cell = job.get("defined_by", {}).get(call["function"])
                why = (f": its cell raised {cell_errors[cell]}" if cell in cell_errors
                       else " (its cell did not define it)")
                raise NameError(f"name {call['function']!r} is not defined{why}")
            args = [transport.decode(record, job_dir) for record in call["args"]]
            kwargs = {key: transport.decode(record, job_dir) for key, record in call["kwargs"].items()}
            _set_torch_rng(transport.decode(call.get("rng_state", {"kind": "none"}), job_dir))
            measure = call.get("measure")
            if measure:
                import torch

                with contextlib.redirect_stdout(io.StringIO()):
                    timing = measure_speed(function, references[measure["reference"]], tuple(args), kwargs,
                                           torch.device(measure["device"]), **measure["params"])
                log.write({"event": "result", "id": call["id"], "modified": [],
                           "value": transport.encode([list(timing.student_s), list(timing.reference_s)], out_dir,
                                                     f"r{call['id']}")})
                continue
            before = [_fingerprint(a) for a in args]
            start = started()
            with contextlib.redirect_stdout(io.StringIO()):
                value = function(*args, **kwargs)
            seconds = seconds_since(start)
            modified = [i for i, (b, a) in enumerate(zip(before, args, strict=True)) if b != _fingerprint(a)]
            event = {"event": "result", "id": call["id"], "modified": modified, "seconds": seconds,
                     "value": transport.encode(value, out_dir, f"r{call['id']}")}
            upstream = transport.decode(call.get("upstream", {"kind": "none"}), job_dir)
            if upstream is not None and getattr(value, "requires_grad", False) is True:
                event.update(_backward(value, upstream, args, kwargs, out_dir, call["id"]))
            log.write(event)
        except BaseException as error:  # noqa: BLE001 (SystemExit and KeyboardInterrupt from student code too)
            kind = "ForbiddenCall" if isinstance(error, _ForbiddenCall) else type(error).__name__
            log.write({"event": "raised", "id": call["id"], "type": kind,
                       "message": f"{call['function']}: {error}" if kind == "ForbiddenCall" else str(error)[:1000],
                       "traceback": _student_frames(error)})
    return 0


if __name__ == "__main__":
    os._exit(main(sys.argv[1:]))  # no atexit handlers or finalizers a student's code registered
