"""Grade a state folder with tools.course.grade in a process of its own, and report what it left behind.

    python tests/corpus/grade.py STATE SEED JOBS OUT.json [STUDENT ...]

Used by tests/test_grading_corpus.py. A process of its own because the grader's time limits are read
from the environment when tools.autograde is imported (CNN_COURSE_NOTEBOOK_SECONDS, ..._CELL_SECONDS,
..._VERIFY_SECONDS: the test sets them), and so that leftovers can be found for certain: this process
makes itself a *child subreaper* (prctl PR_SET_CHILD_SUBREAPER), so every process the grading starts,
however it detaches (setsid, double fork), stays its descendant until it dies. After grade() returns,
whatever descendant is still alive is a leftover; it is reported, then killed.

Writes OUT.json: {"results": <grade()'s results>, "error": <traceback or null>, "seconds": <grade()'s
wall time>, "leftovers": [{"pid", "ppid", "uid", "state", "cmdline"}, ...], "feedback_leaks": [...],
"feedback_errors": [...]}.

``feedback_leaks`` and ``feedback_errors`` come from state/problems.json (written by grade()): feedback
withheld because it still quoted hidden tests, and feedback that could not be generated; the test fails on
either. ``feedback_leaks`` also lists any feedback file that quotes hidden tests after grading.
"""

from __future__ import annotations

import ctypes
import json
import os
import pathlib
import signal
import sys
import threading
import time
import traceback

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

PR_SET_CHILD_SUBREAPER = 36


def _processes() -> dict[int, tuple[int, str, int, str]]:
    """pid -> (ppid, state, uid, cmdline) of every process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                fields = handle.read().rpartition(b")")[2].split()
            state, ppid = fields[0].decode(), int(fields[1])
            uid = os.stat(f"/proc/{pid}").st_uid
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, IndexError, ValueError):
            continue
        table[pid] = (ppid, state, uid, cmdline)
    return table


def descendants() -> dict[int, tuple[int, str, int, str]]:
    table = _processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, *_) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = {}, [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found[child] = table[child]
                todo.append(child)
    return found


def _reap_orphans(stop: threading.Event) -> None:
    """Reap the zombies of sandbox processes that were reparented to this subreaper.

    Only processes of another uid: this process's own children (the pool's workers, nbgrader commands)
    are waited for by the code that started them. A zombie of a sandbox uid left unreaped would count
    against that uid's process limit in a later run.
    """
    me = os.getpid()
    while not stop.wait(0.2):
        for pid, (ppid, state, uid, _) in _processes().items():
            if ppid == me and state == "Z" and uid != os.getuid():
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass


def _alive(processes: dict) -> dict:
    return {pid: info for pid, info in processes.items()
            if info[1] not in ("Z", "X") and "multiprocessing.resource_tracker" not in info[3]}


def main(argv: list[str]) -> int:
    state, seed, jobs, out = pathlib.Path(argv[0]), int(argv[1]), int(argv[2]), pathlib.Path(argv[3])
    students = argv[4:] or None
    libc = ctypes.CDLL(None, use_errno=True)
    subreaper = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    stop = threading.Event()
    reaper = threading.Thread(target=_reap_orphans, args=(stop,), daemon=True)
    reaper.start()

    from tools import course

    report: dict = {"results": None, "error": None, "seconds": None, "leftovers": [], "subreaper": subreaper,
                    "feedback_leaks": [], "feedback_errors": []}

    started = time.monotonic()
    try:
        report["results"] = course.grade(["a1_numpy_convolution"], state, seed, quiet=True, students=students,
                                         jobs=jobs)
    except BaseException:  # noqa: BLE001 (reported to the test, which fails with it)
        report["error"] = traceback.format_exc()
    report["seconds"] = round(time.monotonic() - started, 2)
    # grade() withholds (deletes) a feedback file that still quotes the hidden tests and lists it, with any
    # student whose feedback could not be generated, in state/problems.json
    problems_file = state / "problems.json"
    problems = json.loads(problems_file.read_text()) if problems_file.is_file() else {}
    report["feedback_leaks"] = [f"{k}: {m}" for k, m in problems.items() if "withheld" in m]
    report["feedback_errors"] = [f"{k}: {m}" for k, m in problems.items() if "withheld" not in m]
    report["feedback_leaks"] += [str(p) for p in course.check_feedback(state)]

    # The sandbox kills what it started when each run ends; give stragglers a moment, then look.
    deadline = time.monotonic() + 5
    left = _alive(descendants())
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = _alive(descendants())
    report["leftovers"] = [{"pid": pid, "ppid": info[0], "state": info[1], "uid": info[2], "cmdline": info[3][:300]}
                           for pid, info in sorted(left.items())]
    for pid in left:  # clean up after a failed test, so the next one starts from a clean machine
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    stop.set()
    reaper.join()
    while True:  # the pool and the nbgrader commands are done: every remaining zombie is ours to reap
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            if not _alive(descendants()) and not any(info[1] == "Z" for info in descendants().values()):
                break
            time.sleep(0.1)
    out.write_text(json.dumps(report, indent=1, sort_keys=True), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
