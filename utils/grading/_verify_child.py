"""The untrusted half of the verifier: runs a student's solution cells and calls their functions.

    python -m utils.grading._verify_child JOB_DIR OUT_DIR

Started only inside the sandbox (:mod:`utils.grading.sandbox`). Reads
``JOB_DIR/job.json`` (written by :mod:`utils.grading.verify`) and the input
arrays next to it, executes the assignment's setup cells and the student's
solution cells in one namespace, then makes each requested call under the
assignment's guard (forbidden references become tripwires) and appends one
JSON line per event to ``OUT_DIR/results.jsonl``, flushed at once, so that a
child killed mid-way still reports every call it finished:

    {"event": "cell_start", "grade_id": ...}
    {"event": "cell", "grade_id": ..., "ok": true | false, "error": "..."}
    {"event": "start", "id": ...}
    {"event": "result", "id": ..., "value": <record>, "modified": [argument indices]}
    {"event": "raised", "id": ..., "type": "IndexError", "message": "...", "traceback": "..."}

Everything here is advisory: the trusted parent decides the verdict from the
returned values alone. Whatever this process says, it cannot see the
reference answers, the hidden checks' code paths or the grader's seed.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import pathlib
import sys
import traceback

import numpy as np

from utils.grading import transport

MAX_TRACEBACK = 3000


class _Log:
    def __init__(self, path: pathlib.Path):
        self.handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 (kept open for the whole run)

    def write(self, record: dict) -> None:
        self.handle.write(transport.dumps(record) + "\n")
        self.handle.flush()
        os.fsync(self.handle.fileno())


def _student_frames(error: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename.startswith("<cell ")]
    text = "".join(traceback.format_list(frames)) + "".join(traceback.format_exception_only(type(error), error))
    return text[-MAX_TRACEBACK:]


def _copy(value):
    return value.copy() if isinstance(value, np.ndarray) else value


def _unchanged(before, after) -> bool:
    if isinstance(before, np.ndarray):
        return (isinstance(after, np.ndarray) and after.shape == before.shape and after.dtype == before.dtype
                and np.array_equal(after, before, equal_nan=True))
    return True


def main(argv: list[str]) -> int:
    job_dir, out_dir = pathlib.Path(argv[0]), pathlib.Path(argv[1])
    job = transport.loads((job_dir / "job.json").read_text(encoding="utf-8"))
    log = _Log(out_dir / "results.jsonl")
    guard = None
    if job.get("guard"):
        module_name, _, attribute = job["guard"].partition(":")
        guard = getattr(importlib.import_module(module_name), attribute)

    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
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
            log.write({"event": "cell", "grade_id": cell["grade_id"], "ok": False,
                       "error": f"{type(error).__name__}: {error}"[:500]})

    for call in job["calls"]:
        log.write({"event": "start", "id": call["id"]})
        function = namespace.get(call["function"])
        try:
            if not callable(function):
                raise NameError(f"name {call['function']!r} is not defined (its cell did not define it)")
            args = [transport.decode(record, job_dir) for record in call["args"]]
            kwargs = {key: transport.decode(record, job_dir) for key, record in call["kwargs"].items()}
            before = [_copy(a) for a in args]
            context = guard(function, call["function"]) if guard else contextlib.nullcontext()
            with context, contextlib.redirect_stdout(io.StringIO()):
                value = function(*args, **kwargs)
            modified = [i for i, (b, a) in enumerate(zip(before, args, strict=True)) if not _unchanged(b, a)]
            log.write({"event": "result", "id": call["id"], "modified": modified,
                       "value": transport.encode(value, out_dir, f"r{call['id']}")})
        except BaseException as error:  # noqa: BLE001 (SystemExit and KeyboardInterrupt from student code too)
            log.write({"event": "raised", "id": call["id"], "type": type(error).__name__,
                       "message": str(error)[:1000], "traceback": _student_frames(error)})
    return 0


if __name__ == "__main__":
    os._exit(main(sys.argv[1:]))  # no atexit handlers or finalizers a student's code registered
