"""The trusted verifier: decides each autograded test from plain data, never running student code itself.

nbgrader's verdict comes from the student's own kernel, where code that ran
earlier can patch ``np.allclose``, hide tracebacks or rewrite the test cell.
The verifier decides again, in a process that never executes student code:

1. **Record** (trusted): run each graded test cell of the instructor's notebook
   against the instructor's own solution, with every solution function replaced
   by a recorder. The checks draw their inputs from the grader's secret seed,
   so this lists exactly the calls the checks make.
2. **Run** (sandboxed): a child process (:mod:`utils.grading._verify_child`,
   under :func:`utils.grading.sandbox.run`, limits on time, memory, processes,
   files, output and network; no view of the solutions, gradebook or seed)
   executes the student's solution cells and makes those calls. It hands back
   plain data only (:mod:`utils.grading.transport`: JSON and ``.npy`` loaded
   with ``allow_pickle=False``).
3. **Replay** (trusted): run each test cell again, with each function replaced
   by a replayer that returns what the student's function returned for those
   arguments (or raises what it raised). The course's own checks then compare
   with the float64 references and produce the same messages students see.
   A call the recording did not foresee (a check that feeds the student's
   output back in) is sent to a new child, up to :data:`MAX_ROUNDS` times.

A child that crashes, hangs or floods is killed by the sandbox; every call it
finished still counts, the call it was in fails with the sandbox's message, and
the remaining calls of other functions run in a fresh child.

In the child the reference implementations cannot be imported at all (the
course's ``utils.conv`` and checks, SciPy, PyTorch, TensorFlow: ``blocked_modules``)
and the forbidden functions of modules that must stay are tripwires
(``np.convolve``: ``tripwires``), before any student code runs; so a value the
child reports can only have been computed by the student's own code. A static
scan of the student's source (:func:`dynamic_access`) flags the ways around the
tripwires (``importlib``, ``__import__``, ``getattr`` with a computed name,
``exec``/``eval``, ``sys.modules``, ``ctypes``, private attributes such as
``np._core``): a test of a function that uses them fails with a message saying so.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import hashlib
import io
import os
import pathlib
import shutil
import sys
import time
from collections.abc import Callable, Iterable

import numpy as np

from utils.grading import CheckError, ForbiddenCall, speed, transport

ROOT = pathlib.Path(__file__).resolve().parents[2]
MAX_ROUNDS = 3
DEFAULT_WALL_SECONDS = 30.0    # one sandboxed child
DEFAULT_BUDGET_SECONDS = 120.0  # all the children of one submission

# Modules and names whose use in a solution defeats the tripwires: the call
# could reach a forbidden reference without naming it.
_DYNAMIC_NAMES = {"importlib", "__import__", "exec", "eval", "compile", "globals", "vars", "__builtins__",
                  "builtins", "ctypes", "gc", "inspect", "setattr", "delattr", "breakpoint"}
# Attributes that reach into the interpreter: other functions' variables, frames, tracing hooks.
_INTROSPECTION = {"__dict__", "__globals__", "__code__", "__closure__", "__defaults__", "__kwdefaults__",
                  "__subclasses__", "__getattribute__", "__builtins__", "modules", "cell_contents", "f_locals",
                  "f_globals", "f_back", "tb_frame", "gi_frame", "settrace", "setprofile", "set_trace"}


@dataclasses.dataclass
class Verdict:
    """The verifier's decision on one graded test cell."""

    grade_id: str
    points: float
    passed: bool
    message: str  # "" when passed; else the check's message (no reference values for hidden checks)

    @property
    def score(self) -> float:
        return self.points if self.passed else 0.0


@dataclasses.dataclass
class Assignment:
    """What the verifier needs from the instructor's notebook (trusted text, by grade_id)."""

    setup: list[str]                  # code cells run before the solutions (imports ...)
    solutions: dict[str, str]         # solution grade_id -> the instructor's code
    tests: dict[str, tuple[str, float]]  # test grade_id -> (code, points)
    blocked_modules: tuple[str, ...] = ()  # cannot be imported in the child (reference implementations)
    tripwires: tuple[str, ...] = ()        # "module.function" replaced by a ForbiddenCall raiser in the child


def defined_names(code: str) -> list[str]:
    """Top-level function and class names a cell defines (an unparsable cell defines none)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    return [node.name for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


def dynamic_access(code: str) -> list[str]:
    """Constructs in ``code`` that can reach a forbidden function without naming it, as readable text."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in _DYNAMIC_NAMES:
            found.append(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            found += [m for m in modules if m.split(".")[0] in _DYNAMIC_NAMES]
        elif isinstance(node, ast.Attribute) and (node.attr in _INTROSPECTION
                                                  or (node.attr.startswith("_") and not node.attr.startswith("__")
                                                      and node.attr != "_exit")):
            found.append(f".{node.attr}")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
              and len(node.args) >= 2 and not isinstance(node.args[1], ast.Constant)):
            found.append("getattr with a computed name")
    return sorted(set(found))


def _key(function: str, args: tuple, kwargs: dict) -> str:
    """A digest of one call: the function's name and the exact values of its arguments."""
    digest = hashlib.sha256(function.encode())

    def add(value):
        if isinstance(value, np.ndarray):
            digest.update(f"|a{value.dtype.str}{value.shape}".encode())
            digest.update(np.ascontiguousarray(value).tobytes())
        elif _is_tensor(value):
            digest.update(f"|t{value.dtype}{value.device}{value.requires_grad}{tuple(value.shape)}".encode())
            digest.update(np.ascontiguousarray(value.detach().cpu().numpy()).tobytes())
        else:
            digest.update(f"|v{type(value).__name__}:{value!r}".encode())

    for value in args:
        add(value)
    for name in sorted(kwargs):
        digest.update(f"|k{name}".encode())
        add(kwargs[name])
    return digest.hexdigest()


@dataclasses.dataclass
class _Call:
    id: str
    function: str
    args: tuple
    kwargs: dict
    upstream: np.ndarray | None = None   # the gradient the check's backward sent into the output (autograd)
    rng_state: np.ndarray | None = None  # torch's global generator state at the call (models' initial weights)
    measure: dict | None = None          # a speed measurement (utils.grading.speed), not a plain call

    @classmethod
    def of(cls, call_id: str, function: str, args: tuple, kwargs: dict, **extra) -> _Call:
        """A call with snapshots of its arguments (later changes to the originals do not reach it)."""
        return cls(call_id, function, tuple(_snapshot(a) for a in args), {k: _snapshot(v) for k, v in kwargs.items()},
                   **extra)

    @property
    def key(self) -> str:
        return _key(self.function + ("#speed" if self.measure else ""), self.args, self.kwargs)


def _torch_rng_state() -> np.ndarray | None:
    torch = sys.modules.get("torch")
    return None if torch is None else torch.random.get_rng_state().numpy().copy()


class VerifierError(RuntimeError):
    """The verifier itself failed (not the student's code): grading must stop and say why."""


class _StudentError(Exception):
    """Stands for what the student's function did in the child; its str() is the whole message."""

    function = ""  # set on the stand-ins of exceptions the function raised (_raise_like)


class StoppedByGrader(_StudentError):
    """The student's function was stopped (a limit of the sandbox) or returned something unreadable."""


StoppedByGrader.__module__ = "builtins"  # messages name it plainly


def _exec_quietly(code: str, namespace: dict, name: str) -> None:
    # stderr too: torch.fx prints the generated code of a rebuilt model whose forward raises
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        exec(compile(code, name, "exec"), namespace)  # noqa: S102 (the instructor's own cells)




class Verifier:
    """Verifies one assignment's submissions; ``verify(student_sources)`` -> ``{test grade_id: Verdict}``."""

    def __init__(self, assignment: Assignment, *, wall_seconds: float = DEFAULT_WALL_SECONDS,
                 budget_seconds: float = DEFAULT_BUDGET_SECONDS, hidden_paths: Iterable[pathlib.Path] = (),
                 runner: Callable | None = None):
        self.assignment = assignment
        self.wall_seconds = wall_seconds
        self.budget_seconds = budget_seconds
        self.children = 0  # sandboxed child processes started so far (for reports and tests)
        self.hidden_paths = tuple(hidden_paths)
        self.runner = runner
        self.functions = {gid: defined_names(code) for gid, code in assignment.solutions.items()}
        self._base = {"__name__": "__main__"}
        for index, code in enumerate(assignment.setup):
            _exec_quietly(code, self._base, f"<setup {index}>")
        self._reference = dict(self._base)
        for gid, code in assignment.solutions.items():
            _exec_quietly(code, self._reference, f"<solution {gid}>")
        self.calls = self._record()

    # -- 1. record ------------------------------------------------------------------------------

    def _names(self) -> list[str]:
        return [name for names in self.functions.values() for name in names]

    def _record(self) -> dict[str, list[_Call]]:
        """test grade_id -> the calls its checks make, in order (with the reference solution)."""
        calls: dict[str, list[_Call]] = {}
        for gid, (code, _) in self.assignment.tests.items():
            made: list[_Call] = []
            namespace = dict(self._reference)
            for name in self._names():
                namespace[name] = self._recorder(name, self._reference[name], made)
            try:
                # the reference's own duration is not the student's: a busy machine must not fail the recording
                with speed.answered_by(self._speed_recorder(made), seconds=lambda function: 0.0):
                    _exec_quietly(code, namespace, f"<test {gid}>")
            except Exception as error:
                raise RuntimeError(f"the instructor's solution fails its own test {gid}: {error}") from error
            calls[gid] = made
        return calls

    @staticmethod
    def _recorder(name: str, reference: Callable, made: list) -> Callable:
        def recorder(*args, **kwargs):
            call = _Call.of(f"{len(made)}", name, args, kwargs, rng_state=_torch_rng_state())
            made.append(call)
            value = reference(*args, **kwargs)
            if _is_tensor(value) and value.requires_grad:
                def keep(grad, call=call):
                    call.upstream = grad.detach().cpu().numpy().copy()
                value.register_hook(keep)
            return value

        recorder.__name__ = name
        if isinstance(reference, type):  # a graded class (a3's ResidualBlock): record its instantiations
            return _standing_in_for(name, reference, recorder)
        return recorder

    @staticmethod
    def _speed_recorder(made: list) -> Callable:
        def record(function, reference, args, kwargs, device, params):
            made.append(_Call.of(f"{len(made)}", getattr(function, "__name__", "?"), args, kwargs,
                                 measure={"reference": reference, "device": str(device), "params": dict(params)}))
            return speed.Timing((1.0,), (1.0,))  # the recording only lists the calls

        return record

    # -- 2. run the student's cells in the sandbox ----------------------------------------------

    def _run_child(self, student: dict[str, str], calls: list[_Call], scratch: pathlib.Path,
                   hidden: tuple = ()) -> dict[str, dict]:
        """call id -> the child's event for it ("result" / "raised", or a synthetic "crashed").

        A child that dies while executing a solution cell (an endless loop at the top level, ``os._exit``)
        costs that cell: it is left out of the next child, and the calls of the functions it defines fail
        with the sandbox's message. A child that dies inside a call costs that function's remaining calls.
        """
        from utils.grading import sandbox

        events: dict[str, dict] = {}
        broken: dict[str, str] = {}  # solution grade_id -> why it is left out
        pending = list(calls)
        deadline = time.monotonic() + self.budget_seconds
        attempt = 0
        while pending:
            attempt += 1
            remaining = deadline - time.monotonic()
            if remaining < 1:
                for c in pending:
                    events[c.id] = {"event": "crashed", "message": "was not run: the grading time budget of "
                                    f"{self.budget_seconds:.0f} s for this submission was used up"}
                break
            job_dir, out_dir = scratch / f"job{attempt}", scratch / f"out{attempt}"
            job_dir.mkdir()
            out_dir.mkdir()
            cells = [{"grade_id": gid, "code": "" if gid in broken else student.get(gid, "")}
                     for gid in self.assignment.solutions]
            job = {
                "blocked_modules": list(self.assignment.blocked_modules),
                "tripwires": list(self.assignment.tripwires),
                "defined_by": {name: gid for gid, names in self.functions.items() for name in names},
                "setup": self.assignment.setup,
                "cells": cells,
                "calls": [{"id": c.id, "function": c.function,
                           "args": [transport.encode(a, job_dir, f"in{c.id}_{i}") for i, a in enumerate(c.args)],
                           "kwargs": {k: transport.encode(v, job_dir, f"in{c.id}_{k}") for k, v in c.kwargs.items()},
                           "upstream": transport.encode(c.upstream, job_dir, f"up{c.id}"),
                           "rng_state": transport.encode(None if "torch" in self.assignment.blocked_modules
                                                         else c.rng_state, job_dir, f"rng{c.id}"),
                           "measure": c.measure}
                          for c in pending],
                # the references the speed measurements compare with, taken before the tripwires are set
                "references": sorted({c.measure["reference"] for c in pending if c.measure}),
            }
            (job_dir / "job.json").write_text(transport.dumps(job), encoding="utf-8")
            for path in job_dir.iterdir():
                path.chmod(0o644)
            job_dir.chmod(0o755)
            argv = [sys.executable, "-m", "utils.grading._verify_child", str(job_dir), str(out_dir)]
            env = {"PATH": os.defpath, "PYTHONPATH": str(ROOT), "HOME": str(out_dir), "LANG": "C.UTF-8",
                   "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                   "MPLBACKEND": "Agg", "MPLCONFIGDIR": str(out_dir), "PYTHONDONTWRITEBYTECODE": "1",
                   "TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0", "CNN_COURSE_OFFLINE": "1"}
            run = self.runner or sandbox.run
            limits = sandbox.Limits(wall_seconds=min(self.wall_seconds, remaining), output_bytes=4 * 2**20)
            # ROOT too: a checkout under /tmp would otherwise vanish behind the child's private /tmp
            result = run(argv, cwd=out_dir, limits=limits, env=env, writable=(out_dir,), readable=(job_dir, ROOT),
                         hidden=(*self.hidden_paths, *hidden))
            self.children += 1
            lines = result.stdout.decode("utf-8", errors="replace").splitlines()
            if not lines or lines[0] != transport.dumps({"event": "ready"}):
                # it died before any student code ran: the grader's fault, not the student's
                raise VerifierError(f"the verifier's child did not start: {result.message()}\n"
                                    + result.stderr.decode("utf-8", errors="replace")[-2000:])
            in_cell = in_call = None
            for line in lines:
                try:
                    record = transport.loads(line)
                except transport.TransportError:
                    break  # a torn last line: the child died while writing it
                if not isinstance(record, dict):
                    break
                kind = record.get("event")
                if kind == "cell_start":
                    in_cell = record.get("grade_id")
                elif kind == "cell":
                    in_cell = None
                elif kind == "start":
                    in_call = record.get("id")
                elif kind in ("result", "raised") and record.get("id") == in_call:
                    record["folder"] = str(out_dir)
                    events[in_call] = record
                    in_call = None
            why = result.message()
            if in_cell in self.functions and in_cell not in broken:
                broken[in_cell] = why
                names = set(self.functions[in_cell])
                for c in pending:
                    if c.function in names and c.id not in events:
                        events[c.id] = {"event": "crashed", "message": f"(while its cell ran) {why}"}
            elif in_call is not None and in_call not in events:
                crashed_function = next(c.function for c in pending if c.id == in_call)
                events[in_call] = {"event": "crashed", "message": why}
                for c in pending:
                    if c.function == crashed_function and c.id not in events:
                        events[c.id] = {"event": "crashed", "message": f"was not run: an earlier call {why}"}
            elif any(c.id not in events for c in pending):
                # ended between calls without a word (os._exit at the end of a call ...): blame the next call
                first = next(c for c in pending if c.id not in events)
                events[first.id] = {"event": "crashed", "message": why}
            pending = [c for c in pending if c.id not in events]
        return events

    # -- 3. replay ------------------------------------------------------------------------------

    def verify(self, student: dict[str, str], scratch: pathlib.Path | None = None,
               hidden: Iterable[pathlib.Path] = ()) -> dict[str, Verdict]:
        """Verdicts for every graded test cell; ``student`` maps solution grade_id -> the student's code.

        ``hidden``: more paths the child must not see (the grading state folder of this run).
        """
        from utils.grading import sandbox

        owned = scratch is None
        scratch = pathlib.Path(sandbox.scratch_dir("cnn-verify-")) if owned else scratch
        try:
            return self._verify(student, scratch, tuple(p for p in hidden if pathlib.Path(p).exists()))
        finally:
            if owned:
                shutil.rmtree(scratch, ignore_errors=True)

    def _verify(self, student: dict[str, str], scratch: pathlib.Path, hidden: tuple) -> dict[str, Verdict]:
        flagged = {}
        for gid, names in self.functions.items():
            constructs = dynamic_access(student.get(gid, ""))
            for name in names:
                if constructs:
                    flagged[name] = (f"{name}: uses {', '.join(constructs)}, which can reach the off-limits "
                                     "references without naming them; write the computation directly")
        all_calls = [c for calls in self.calls.values() for c in calls]
        for index, call in enumerate(all_calls):
            call.id = str(index)
        answers: dict[str, dict] = {}
        unique: dict[str, _Call] = {}
        for call in all_calls:
            first = unique.setdefault(call.key, call)
            if first.upstream is None:
                first.upstream = call.upstream
        todo = [c for c in unique.values() if c.function not in flagged]
        round_number = 0
        verdicts: dict[str, Verdict] = {}
        while True:
            round_number += 1
            if todo:
                round_dir = scratch / f"round{round_number}"
                round_dir.mkdir(parents=True)
                events = self._run_child(student, todo, round_dir, hidden)
                for call in todo:
                    answers[call.key] = {**events[call.id], "upstream": call.upstream}
            unforeseen: list[_Call] = []
            verdicts = {gid: self._replay(gid, answers, flagged, unforeseen) for gid in self.assignment.tests}
            if not unforeseen or round_number >= MAX_ROUNDS:
                return verdicts
            for index, call in enumerate(unforeseen):
                call.id = f"u{round_number}_{index}"
            todo = list({c.key: c for c in unforeseen}.values())

    def _replay(self, gid: str, answers: dict, flagged: dict, unforeseen: list) -> Verdict:
        code, points = self.assignment.tests[gid]
        namespace = dict(self._base)
        seconds: dict[str, float | None] = {}  # function name -> how long its last call took in the child
        for solution_gid in self.assignment.solutions:
            for name in self.functions[solution_gid]:
                namespace[name] = self._replayer(name, answers, flagged, unforeseen, seconds)
        try:
            with speed.answered_by(self._speed_replayer(answers, flagged, unforeseen),
                                   lambda function: seconds.get(getattr(function, "__name__", None))):
                _exec_quietly(code, namespace, f"<test {gid}>")
        except _Unforeseen:
            return Verdict(gid, points, False, "(not decided: a call was not foreseen)")
        except BaseException as error:  # noqa: BLE001 (every failure of a check is a failed test)
            if isinstance(error, (CheckError, StoppedByGrader)):
                text = str(error)
            elif isinstance(error, _StudentError):
                text = f"{error.function}: raised {type(error).__name__}: {error}"
            else:
                text = f"{type(error).__name__}: {error}"
            return Verdict(gid, points, False, text[:2000])
        return Verdict(gid, points, True, "")

    def _replayer(self, name: str, answers: dict, flagged: dict, unforeseen: list, seconds: dict) -> Callable:
        def replayer(*args, **kwargs):
            if name in flagged:
                raise ForbiddenCall(flagged[name])
            call = _Call.of("", name, args, kwargs, rng_state=_torch_rng_state())
            event = _answer(call, answers, unforeseen)
            took = event.get("seconds")
            seconds[name] = float(took) if type(took) in (int, float) and 0 <= took < 1e6 else None
            try:
                value = transport.decode(event.get("value"), pathlib.Path(event["folder"]))
                if _is_tensor(value) and value.requires_grad:
                    value = _with_recorded_backward(name, value, args, kwargs, event, event.get("upstream"))
            except transport.TransportError as error:
                raise StoppedByGrader(f"{name}: returned something the grader cannot read back: {error}") from None
            for index in event.get("modified") or []:
                if isinstance(index, int) and 0 <= index < len(args) and isinstance(args[index], np.ndarray):
                    _mark_modified(args[index])
            return value

        replayer.__name__ = name
        if isinstance(self._reference.get(name), type):
            import torch

            return _standing_in_for(name, torch.nn.Module, replayer)
        return replayer

    @staticmethod
    def _speed_replayer(answers: dict, flagged: dict, unforeseen: list) -> Callable:
        def replay(function, reference, args, kwargs, device, params):
            name = getattr(function, "__name__", "?")
            if name in flagged:
                raise ForbiddenCall(flagged[name])
            call = _Call.of("", name, args, kwargs,
                            measure={"reference": reference, "device": str(device), "params": dict(params)})
            event = _answer(call, answers, unforeseen)
            try:
                value = transport.decode(event.get("value"), pathlib.Path(event["folder"]))
            except transport.TransportError as error:
                raise StoppedByGrader(f"{name}: its timing could not be read back: {error}") from None
            if (not isinstance(value, list) or len(value) != 2 or not value[1]
                    or not all(isinstance(t, list) and all(type(s) is float and 0 < s < 1e4 for s in t)
                               for t in value)):
                raise StoppedByGrader(f"{name}: its timing could not be read back (not two lists of seconds)")
            if not value[0]:
                raise StoppedByGrader(f"{name}: was not timed (no call finished)")
            return speed.Timing(tuple(value[0]), tuple(value[1]))

        return replay


def _standing_in_for(name: str, base: type, make: Callable) -> type:
    """A class named ``name`` (a subclass of ``base``) whose instantiation returns ``make(*args, **kwargs)``.

    Checks of a graded class look at the class (``issubclass(ResidualBlock, nn.Module)``) and build
    instances; the recorder's stand-in subclasses the instructor's class, the replayer's ``nn.Module``.
    """

    def __new__(cls, *args, **kwargs):  # noqa: N807 (the stand-in's constructor)
        return make(*args, **kwargs)

    return type(name, (base,), {"__new__": __new__, "__module__": "__main__"})


def _answer(call: _Call, answers: dict, unforeseen: list) -> dict:
    """The child's event for ``call``; raises what the student's code raised, or _Unforeseen for a new call."""
    event = answers.get(call.key)
    if event is None:
        unforeseen.append(call)
        raise _Unforeseen(call.function)
    kind = event.get("event")
    if kind == "crashed":
        raise StoppedByGrader(f"{call.function}: your code {event['message']}")
    if kind == "raised":
        _raise_like(call.function, event)
    return event


class _Unforeseen(BaseException):
    """A check made a call the recording did not list (raised through the checks, caught by _replay)."""


def _raise_like(name: str, event: dict):
    kind, message = str(event.get("type", "Exception"))[:100], str(event.get("message", ""))[:1000]
    if kind == "NotImplementedError":
        raise NotImplementedError(message)
    if kind == "ForbiddenCall":
        raise ForbiddenCall(message)
    if kind in ("SystemExit", "KeyboardInterrupt"):
        raise StoppedByGrader(f"{name}: raised {kind} ({message or 'no message'}): a function must return "
                            "its result, not stop the program")
    trace = str(event.get("traceback", ""))[-1500:]
    # an exception of the same name (a check that names the exception's type names the student's), whose
    # message is the student's; _replay puts "<function>: raised <type>:" in front when no check caught it
    stand_in = type(kind if kind.isidentifier() else "Exception", (_StudentError,),
                    {"function": name, "__module__": "builtins"})
    raise stand_in(message + (f"\n{trace}" if trace else ""))


def _mark_modified(array: np.ndarray) -> None:
    # The child saw the student's function change this argument: change it here too, so the
    # check's "inputs unchanged" test sees what really happened.
    if array.size and array.flags.writeable:
        flat = array.reshape(-1)
        flat[0] = flat[0] + 1 if array.dtype.kind != "b" else not flat[0]


def _snapshot(value):
    if isinstance(value, np.ndarray):
        return value.copy()
    if _is_tensor(value):
        return value.detach().clone().requires_grad_(value.requires_grad)
    return value


def _is_tensor(value) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _tensor_arguments(args, kwargs) -> list[tuple[str, object]]:
    """(label, tensor) of every tensor argument that requires grad: "0", "1" ... positional, "k:name" keyword."""
    labelled = [(str(i), a) for i, a in enumerate(args)] + [(f"k:{k}", v) for k, v in sorted(kwargs.items())]
    return [(label, value) for label, value in labelled if _is_tensor(value) and value.requires_grad]


def _exception_like(kind: str, message: str) -> Exception:
    import builtins

    cls = getattr(builtins, kind, None)
    if isinstance(cls, type) and issubclass(cls, Exception) and cls.__module__ == "builtins":
        return cls(message)
    return RuntimeError(f"{kind}: {message}")


def _with_recorded_backward(name: str, value, args, kwargs, event: dict, upstream):
    """``value`` as the output of an autograd node whose backward hands out the child's gradients.

    The child ran the student's function on the same inputs and called ``backward(upstream)`` on its output
    (``upstream`` recorded from the check's own backward with the instructor's solution). Here, a backward
    with that upstream gradient gives every input the gradient the student's code gave it there (None stays
    None), or raises what the student's backward raised.
    """
    import torch

    inputs = _tensor_arguments(args, kwargs)
    folder = pathlib.Path(event["folder"])
    grads = event.get("grads") if isinstance(event.get("grads"), dict) else {}
    decoded = []
    for label, tensor in inputs:
        record = grads.get(label)
        grad = None if record is None else transport.decode(record, folder)
        if grad is not None and (not _is_tensor(grad) or tuple(grad.shape) != tuple(tensor.shape)):
            raise transport.TransportError(f"the gradient of argument {label} does not fit it")
        decoded.append(None if grad is None else grad.to(dtype=tensor.dtype, device=tensor.device))
    error = event.get("backward_error")

    class Replayed(torch.autograd.Function):
        @staticmethod
        def forward(ctx, output, *tensors):
            return output.detach().clone()

        @staticmethod
        def backward(ctx, grad_output):
            if isinstance(error, dict):
                raise _exception_like(str(error.get("type", "RuntimeError"))[:100],
                                      str(error.get("message", ""))[:1000])
            given = grad_output.detach().cpu().numpy()
            if upstream is None or given.shape != upstream.shape or not np.allclose(given, upstream, rtol=1e-6,
                                                                                     atol=1e-12):
                raise StoppedByGrader(f"{name}: (not decided: the gradient flowing back was not foreseen)")
            return (None, *decoded)

    return Replayed.apply(value.detach(), *[tensor for _, tensor in inputs])


# ---------------------------------------------------------------------------------------------
# from an nbgrader notebook


def assignment_from_notebook(path: pathlib.Path, blocked_modules: Iterable[str] = (),
                             tripwires: Iterable[str] = ()) -> Assignment:
    """The verifier's view of an instructor (source) notebook: setup, solution and test cells by grade_id.

    Setup cells are the code cells before the first solution cell, except the Colab/device cell
    (grade_id ``setup``). Test cells are the graded code cells that are not solution cells.
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    assignment = Assignment(setup=[], solutions={}, tests={}, blocked_modules=tuple(blocked_modules),
                            tripwires=tuple(tripwires))
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code":
            continue
        gid = meta.get("grade_id", "")
        if meta.get("solution"):
            assignment.solutions[gid] = cell.source
        elif meta.get("grade"):
            assignment.tests[gid] = (cell.source, float(meta.get("points", 0)))
        elif not assignment.solutions and gid != "setup":
            assignment.setup.append(cell.source)
        elif gid == "setup" and "import utils" in cell.source:
            assignment.setup.append("import utils")  # the Colab/device cell itself prints and may fetch code
    if not assignment.solutions or not assignment.tests:
        raise ValueError(f"{path} has no solution cells or no graded test cells")
    return assignment
