"""Grading a class on Dask distributed: one pure task per submission, one coordinator that writes the gradebook.

nbgrader has no parallel or distributed autograde; this module fans the grading out on Dask distributed
(no scheduler of our own), so that the same code grades on one machine and on several:

* **executors** (:func:`open_executor`): ``jobs=1`` grades in this process, one submission after the other
  (the reference); ``jobs=N`` starts a ``distributed.LocalCluster`` of N single-threaded worker processes;
  ``scheduler="tcp://host:8786"`` (or the path of a scheduler file) connects to a cluster started with the
  ``dask scheduler`` / ``dask worker`` commands (README, "Grading on several machines"). The tasks and the
  coordinator are the same in all three.
* **the task** (:func:`grade_task`, on a worker): takes plain data (the payload: the submission's files, the
  assignment's template, the secret seed, the time limits) and returns a plain JSON record (per-test scores
  and messages, the intake's findings, the verifier's verdicts and the autograded notebook's files; no
  path). It writes only in a scratch folder of its own (``/tmp/cnng-<student>-*``), runs the student's
  code in the sandbox (:mod:`tools.autograde`) and has a hard wall-clock limit of its own
  (``CNN_COURSE_TASK_SECONDS``): Dask has no per-task timeout, so a watchdog thread kills the worker
  process when the task runs past it, and Dask reschedules the task elsewhere. It never sees a database
  URL or password.
* **the coordinator** (:func:`grade_assignment`, in the process that runs ``tools/course.py grade``): the only
  writer of the gradebook. It submits one task per submission under a stable key,
  ``grade-<assignment>-<student>-<content hash>``, validates each record that comes back, commits it (one
  transaction, idempotent: :func:`tools.autograde.commit`) and only then writes the submission's *done
  marker*, ``<state>/work/<assignment>/done/<student>.json``. A coordinator that is restarted after a crash
  skips every submission whose marker holds the same content hash (and whose rows are in the gradebook),
  and grades the rest: nothing is lost, nothing is written twice.

Failures. A worker that dies mid-task (killed, out of memory, its machine gone) loses nothing: the
scheduler reschedules its task and the coordinator commits the one record that comes back. A submission
whose grading kills its worker every time (it runs past the task's limit, or crashes the worker) is given
up after ``CNN_COURSE_TASK_ATTEMPTS`` attempts (default 3; the scheduler's ``allowed-failures`` is set to
one less) and ends as an error for that submission, with a message, while the rest of the class is
graded. Kernels and sandboxed processes left behind by a dead worker are killed, and its scratch folder
removed, by the next task on that machine and at the end of the run (:func:`sweep_orphans`).

GPU tasks (``gpu=True``) are submitted with ``resources={"GPU": 1}``: only workers started with
``--resources GPU=1`` take them. When no such worker is in the cluster for ``CNN_COURSE_GPU_WAIT_SECONDS``
(default 300), those submissions fail with a message instead of waiting forever.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import hmac
import json
import logging
import os
import pathlib
import platform
import re
import shutil
import signal
import socket
import stat
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PAYLOAD_FORMAT = 1
# Environment variables that may hold database credentials: never passed to a worker, removed from a worker's
# environment before a task runs (besides any variable whose value holds the gradebook's URL).
SECRET_VARIABLES = ("NBGRADER_DB_URL", "DATABASE_URL", "PGPASSWORD", "PGPASSFILE", "PGSERVICE", "PGSERVICEFILE")
OWNER_FILE = ".cnn-course-owner"   # in a task's scratch folder: which process works in it
SCRATCH_PREFIX = "cnng-"           # tools.autograde's prefix: a task's scratch is /tmp/cnng-<student>-*


def task_attempts() -> int:
    """How many times one submission is tried before it is given up (the scheduler's allowed-failures + 1)."""
    return max(1, int(os.environ.get("CNN_COURSE_TASK_ATTEMPTS", "3")))


def task_seconds() -> float:
    """The hard wall-clock limit of one grading task on a worker (``$CNN_COURSE_TASK_SECONDS``).

    Default: twice the notebook limit (the submission's run and the template's), the verifier's whole
    budget and two minutes for the rest (intake, nbgrader's import, the commit's data): 720 s with the
    default limits, about ten times what a normal submission takes.
    """
    from tools import autograde

    default = 2 * autograde.NOTEBOOK_SECONDS + 4 * autograde.VERIFY_SECONDS + 120
    return float(os.environ.get("CNN_COURSE_TASK_SECONDS", default))


def gpu_wait_seconds() -> float:
    return float(os.environ.get("CNN_COURSE_GPU_WAIT_SECONDS", "300"))


def limits() -> dict[str, float]:
    """The grading limits of this process (tools.autograde reads them from the environment at import)."""
    from tools import autograde

    return {"notebook_seconds": float(autograde.NOTEBOOK_SECONDS), "cell_seconds": float(autograde.CELL_SECONDS),
            "verify_seconds": float(autograde.VERIFY_SECONDS)}


GRADER_TREES = ("tools", "utils", "solutions")  # the course's code and instructor notebooks that grade


def _course_files(top: pathlib.Path):
    """The regular files under ``top`` that count, sorted (no caches, no hidden files or folders)."""
    for path in sorted(top.rglob("*")):
        relative = path.relative_to(top).parts
        if path.is_file() and not any(part.startswith(".") or part == "__pycache__" for part in relative):
            yield path


def _code_fingerprint() -> str:
    digest = hashlib.sha256()
    for tree in GRADER_TREES:
        for path in _course_files(ROOT / tree):
            name = str(path.relative_to(ROOT)).encode()
            data = path.read_bytes()
            digest.update(len(name).to_bytes(8, "big") + name + len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()[:20]


@functools.lru_cache(maxsize=1)
def _package_versions() -> dict[str, str | None]:
    import importlib.metadata as metadata

    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package in ("nbgrader", "numpy", "dask", "distributed"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def grader_version() -> dict[str, str | None]:
    """What must be the same on every node: the course's grading code and instructor notebooks (a fingerprint
    of the contents of tools/, utils/ and solutions/, read afresh at each call: about 10 ms) and the versions
    of the packages that grade. A commit that changes only other files does not change it."""
    return {"code": _code_fingerprint(), **_package_versions()}


# ---------------------------------------------------------------------------------------------
# payloads: what a task needs, as plain data


def snapshot(folder: pathlib.Path) -> dict | None:
    """What the intake can see of a submission folder, as plain data (None: there is no folder).

    ``{name: entry}`` for every top-level entry whose name does not start with "." (the intake ignores those):
    ``{"data": bytes}`` for a notebook the intake may read (at most its size cap) and a small timestamp.txt;
    ``{"size": n}`` for any other regular file (the intake reads only notebooks: it is recreated as an empty
    file of that size); ``{"link": target}`` for a symbolic link (never followed); ``{"dir": True}`` for a
    folder; ``{"fifo": True}`` for a named pipe.
    """
    from tools import intake

    folder = pathlib.Path(folder)
    if not folder.is_dir():
        return None
    entries = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            entries[path.name] = {"link": os.readlink(path)}
        elif stat.S_ISDIR(info.st_mode):
            entries[path.name] = {"dir": True}
        elif stat.S_ISFIFO(info.st_mode):
            entries[path.name] = {"fifo": True}
        elif stat.S_ISREG(info.st_mode):
            small = (path.name.endswith(".ipynb") and info.st_size <= intake.MAX_NOTEBOOK_BYTES) or (
                path.name == "timestamp.txt" and info.st_size < 200)
            entries[path.name] = {"data": path.read_bytes()} if small else {"size": info.st_size}
    return entries


def _materialize(entries: dict | None, folder: pathlib.Path) -> None:
    if entries is None:
        return
    folder.mkdir(parents=True)
    for name, entry in entries.items():
        if not _plain_name(name):
            raise ValueError(f"submission entry {name!r} is not a plain file name")
        path = folder / name
        if "data" in entry:
            path.write_bytes(entry["data"])
        elif "size" in entry:
            with path.open("wb") as handle:
                handle.truncate(int(entry["size"]))  # sparse: only its size matters (it is never read)
        elif "link" in entry:
            os.symlink(entry["link"], path)
        elif entry.get("dir"):
            path.mkdir()
        elif entry.get("fifo"):
            os.mkfifo(path)


def _plain_name(name: str) -> bool:
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\0" not in name


def template_files(template: pathlib.Path) -> dict[str, bytes]:
    """The files of an assignment's template (tools.autograde.prepare), relative path -> zlib-compressed bytes."""
    files = {}
    for path in sorted(template.rglob("*")):
        if path.is_file() and not path.is_symlink():
            files[str(path.relative_to(template))] = zlib.compress(path.read_bytes(), 6)
    return files


def _write_template(files: dict[str, bytes], template: pathlib.Path) -> None:
    for relative, data in files.items():
        parts = pathlib.PurePosixPath(relative).parts
        if not parts or relative.startswith("/") or any(not _plain_name(part) for part in parts):
            raise ValueError(f"template file {relative!r} is not a relative path")
        path = template.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(zlib.decompress(data))


def content_hash(aid: str, student: str, entries: dict | None, grading_limits: dict) -> str:
    """sha256 of everything a submission's grade depends on but the seed and the grader's code.

    The submission as the intake sees it, the instructor's notebook(s) of the assignment (``solutions/<aid>``:
    the master and the hidden tests), and the time limits. A change to any of them makes a new key and
    invalidates the done marker, so the submission is graded again.
    """
    digest = hashlib.sha256()

    def add(*parts):
        for part in parts:
            data = part if isinstance(part, bytes) else str(part).encode("utf-8", "surrogateescape")
            digest.update(len(data).to_bytes(8, "big"))
            digest.update(data)

    add("cnn-course-grading", PAYLOAD_FORMAT, aid, student, json.dumps(grading_limits, sort_keys=True))
    if entries is None:
        add("no submission folder")
    else:
        for name, entry in sorted(entries.items()):
            add(name, json.dumps({k: v for k, v in entry.items() if k != "data"}, sort_keys=True),
                entry.get("data", b""))
    for path in _course_files(ROOT / "solutions" / aid):
        add(path.relative_to(ROOT), path.read_bytes())
    return digest.hexdigest()


def task_key(aid: str, student: str, digest: str) -> str:
    return f"grade-{aid}-{student}-{digest[:16]}"


def _seed_check(seed: int, digest: str) -> str:
    # the done marker must match the seed too; the digest alone (in the task's key) reveals nothing about it
    return hmac.new(str(seed).encode(), digest.encode(), hashlib.sha256).hexdigest()[:32]


def build_payload(state: pathlib.Path, aid: str, student: str, seed: int, template: dict[str, bytes],
                  entries: dict | None = None, digest: str | None = None, grader: dict | None = None) -> dict:
    """Everything one task needs, as plain data: no path of the coordinator's machine, no database URL."""
    grading_limits = limits()
    if entries is None:
        entries = snapshot(state / "submitted" / student / aid)
    digest = digest or content_hash(aid, student, entries, grading_limits)
    return {
        "format": PAYLOAD_FORMAT, "key": task_key(aid, student, digest), "hash": digest,
        "assignment": aid, "student": student, "seed": seed, "files": entries, "template": template,
        "limits": grading_limits, "task_seconds": task_seconds(), "grader": grader or grader_version(),
        "hard_limit": True,
    }


# ---------------------------------------------------------------------------------------------
# the task (on a worker)


def scrub_secrets(environ, db_url: str | None = None) -> list[str]:
    """Remove the variables that may hold database credentials from ``environ``; returns their names."""
    names = [name for name in environ if name in SECRET_VARIABLES or (
        db_url and not db_url.startswith("sqlite") and db_url in str(environ[name]))]
    for name in names:
        del environ[name]
    return names


def _process_start(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rpartition(b")")[2].split()[19].decode()
    except (OSError, IndexError):
        return None


def _write_owner(scratch: pathlib.Path) -> None:
    owner = {"pid": os.getpid(), "start": _process_start(os.getpid()), "host": socket.gethostname()}
    partial = scratch / (OWNER_FILE + ".partial")
    partial.write_text(json.dumps(owner))
    partial.rename(scratch / OWNER_FILE)


def _owner_alive(scratch: pathlib.Path) -> bool:
    try:
        owner = json.loads((scratch / OWNER_FILE).read_text())
        pid, start = int(owner["pid"]), owner["start"]
    except (OSError, ValueError, KeyError, TypeError):
        return True  # unreadable: not one of ours to judge
    return _process_start(pid) == start


def _kill_kernel_wrappers(scratch: pathlib.Path) -> int:
    """SIGKILL the kernel wrappers (``python -m utils.grading.kernel <scratch>/kernel ...``) working in scratch."""
    needle = str(scratch / "kernel").encode()
    killed = 0
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        if b"utils.grading.kernel" in argv and needle in argv:
            with contextlib.suppress(OSError):
                os.kill(int(name), signal.SIGKILL)
                killed += 1
    return killed


def _clean_scratch(scratch: pathlib.Path) -> int:
    """Kill what the kernels of ``scratch`` left running and remove the folder; returns how many were killed."""
    from utils.grading import kernel

    killed = 0
    for _ in range(5):
        killed += _kill_kernel_wrappers(scratch) + kernel.kill_leftovers(scratch / "kernel")
        # the owner file goes last: a folder left half removed (a process still writing) keeps its owner, so
        # sweep_orphans() can judge it later
        with contextlib.suppress(OSError):
            for entry in list(scratch.iterdir()):
                if entry.name != OWNER_FILE:
                    with contextlib.suppress(OSError):
                        if entry.is_dir() and not entry.is_symlink():
                            shutil.rmtree(entry, ignore_errors=True)
                        else:
                            entry.unlink()
        owner = None
        try:
            if any(entry.name != OWNER_FILE for entry in scratch.iterdir()):
                raise OSError(f"{scratch} is not empty yet")
            with contextlib.suppress(FileNotFoundError):
                owner = (scratch / OWNER_FILE).read_bytes()
                (scratch / OWNER_FILE).unlink()
            scratch.rmdir()
            break
        except FileNotFoundError:
            break
        except OSError:
            if owner is not None:  # something appeared after all: the folder keeps its owner
                with contextlib.suppress(OSError):
                    (scratch / OWNER_FILE).write_bytes(owner)
            time.sleep(0.2)
    return killed


def sweep_orphans() -> dict:
    """Clean up after grading tasks whose worker process died on this machine; returns what was done.

    A task's scratch folder names its process (:data:`OWNER_FILE`); when that process is gone, its kernels
    (their wrappers and everything that holds their run markers) are killed and the folder is removed. Then
    every sandbox uid that no live run holds is swept (:func:`utils.grading.sandbox.sweep_orphaned_uids`:
    the verifier's children and the kernels of a dead worker, as root). Folders and processes of live
    workers are left alone, so any worker may run this at any time.
    """
    from utils.grading import sandbox

    removed, killed = [], 0
    for owner in pathlib.Path(sandbox.scratch_parent()).glob(f"{SCRATCH_PREFIX}*/{OWNER_FILE}"):
        scratch = owner.parent
        if not _owner_alive(scratch):
            killed += _clean_scratch(scratch)
            removed.append(scratch.name)
    uids = sandbox.sweep_orphaned_uids()
    return {"scratch_removed": removed, "kernel_processes_killed": killed,
            "uid_processes_killed": sum(uids.values())}


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as handle:
                    ppid = int(handle.read().rpartition(b")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _arm_watchdog(seconds: float, key: str, scratch: pathlib.Path) -> threading.Timer:
    """Past ``seconds``, kill what the task started and then this worker process (Dask then reschedules)."""

    def fire():
        print(f"cnn-course: grading task {key} ran past its limit of {seconds:.0f} s: killing this worker "
              f"process (pid {os.getpid()}); the scheduler gives the task to another worker or gives it up",
              file=sys.stderr, flush=True)
        try:
            for pid in _descendants(os.getpid()):  # first: nothing of the task writes in scratch any more
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            _clean_scratch(scratch)
        finally:
            os.kill(os.getpid(), signal.SIGKILL)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    return timer


class WorkerMismatch(RuntimeError):
    """A worker that would grade differently from the coordinator (another checkout, versions or limits)."""


def _check_worker(payload: dict) -> dict:
    """This worker's grader_version(), when it grades as the coordinator would; WorkerMismatch otherwise."""
    here = socket.gethostname()
    ours, theirs = grader_version(), payload.get("grader", {})
    differ = {k: (ours.get(k), theirs.get(k)) for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k)}
    if differ:
        raise WorkerMismatch(
            f"the worker on {here} grades with {', '.join(f'{k} {a}' for k, (a, _) in sorted(differ.items()))} but "
            f"the coordinator with {', '.join(f'{k} {b}' for k, (_, b) in sorted(differ.items()))}: every node "
            "needs the same checkout and environment")
    if limits() != payload.get("limits"):
        raise WorkerMismatch(
            f"the worker on {here} has the limits {limits()} but the coordinator {payload.get('limits')}: start the "
            "workers with the same CNN_COURSE_*_SECONDS variables as the coordinator")
    return ours


def grade_task(payload: dict) -> dict:
    """Grade one submission from its payload (:func:`build_payload`); returns its self-contained JSON record.

    Runs on a worker (or in the coordinator's process with ``jobs=1``). Writes only in a new scratch folder,
    which it removes; with ``payload["hard_limit"]`` a watchdog kills this process at ``task_seconds``.
    """
    from tools import autograde, course

    if payload.get("format") != PAYLOAD_FORMAT:
        raise WorkerMismatch(f"payload format {payload.get('format')!r}; this worker reads {PAYLOAD_FORMAT}")
    if payload["hard_limit"]:
        scrub_secrets(os.environ)  # a worker process: nothing of the gradebook's credentials stays in it
    version = _check_worker(payload)
    with contextlib.suppress(Exception):  # a failed sweep must not cost this submission its grade
        sweep_orphans()
    aid, student, seed = payload["assignment"], payload["student"], payload["seed"]
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", student)[:12]
    from utils.grading import sandbox

    scratch = pathlib.Path(sandbox.scratch_dir(f"{SCRATCH_PREFIX}{safe}-"))
    watchdog = None
    try:
        _write_owner(scratch)
        if payload["hard_limit"]:
            watchdog = _arm_watchdog(float(payload["task_seconds"]), payload["key"], scratch)
        # the submission and the template as tools.autograde expects them in a state folder; the kernel and
        # the verifier's child do not see this folder (grade_submission hides the state)
        state = scratch / "input"
        _materialize(payload["files"], state / "submitted" / student / aid)
        (state / "submitted").mkdir(parents=True, exist_ok=True)
        _write_template(payload["template"], autograde.work_dir(state, aid) / "template")
        env = course.grading_env(seed)
        env.pop(course.SEED_VARIABLE, None)  # the kernel gets a seed of its own (autograde.kernel_seed)
        scrub_secrets(env)
        record = autograde.grade_submission(aid, student, state, env, seed, scratch=scratch)
        record["autograded_files"] = autograde.pack_autograded(pathlib.Path(record.pop("autograded")))
        record.pop("scratch", None)
        record.update(key=payload["key"], hash=payload["hash"], grader=version,
                      worker={"host": socket.gethostname(), "pid": os.getpid()})
        return json.loads(json.dumps(record))  # plain JSON: what crosses the network is data
    finally:
        if watchdog is not None:
            watchdog.cancel()
        _clean_scratch(scratch)


# ---------------------------------------------------------------------------------------------
# executors


class GradingFailed(RuntimeError):
    """A submission that could not be graded; the message says why (it goes to problems.json)."""


class InProcess:
    """``jobs=1``: grades in this process, one submission after the other (the reference run)."""

    def __init__(self, gpu: bool = False):
        self.gpu = gpu

    def run(self, payloads: list[dict]) -> Iterator[tuple[dict, dict | BaseException]]:
        from utils.grading import kernel

        for payload in payloads:
            if self.gpu and not kernel.has_gpu():
                yield payload, GradingFailed("this assignment is graded on a GPU and this machine has none: grade "
                                             "it on a cluster with a GPU worker (SCHEDULER=..., README)")
                continue
            try:
                yield payload, grade_task({**payload, "hard_limit": False})
            except Exception as error:  # noqa: BLE001 (one submission's failure never stops the class)
                yield payload, error

    def close(self) -> None:
        pass


class ClusterError(RuntimeError):
    """The cluster cannot grade (a scheduler or worker without the course's code); the message says why."""


def _configure_scheduler(dask_scheduler, allowed_failures: int):
    # Run on the scheduler, pickled by value, so that it also runs where the course's code cannot be imported
    # and says so. A worker's death counts against every task it was processing; with one task per thread
    # (worker-saturation 1.0, tasks queued on the scheduler) only the task that was running is charged with it.
    try:
        import tools.distributed_grading  # noqa: F401 (the scheduler unpickles tasks that name its functions)
        importable = True
    except ImportError as error:
        importable = str(error)
    before = {"allowed_failures": dask_scheduler.allowed_failures,
              "worker_saturation": dask_scheduler.WORKER_SATURATION, "importable": importable}
    dask_scheduler.allowed_failures = allowed_failures
    dask_scheduler.WORKER_SATURATION = 1.0
    return before


def _worker_version():
    # run on every worker, by value: its grader_version(), or why the course's code cannot be imported there
    try:
        from tools import distributed_grading
    except ImportError as error:
        return str(error)
    return distributed_grading.grader_version()


class DaskExecutor:
    """Grades on a Dask cluster through ``client``; one task per submission, under its stable key."""

    def __init__(self, client, gpu: bool = False, poll_seconds: float = 1.0):
        self.client, self.gpu, self.poll = client, gpu, poll_seconds
        self.attempts = task_attempts()
        self.scheduler_before = client.run_on_scheduler(_by_value(_configure_scheduler),
                                                        allowed_failures=self.attempts - 1)
        hint = ("start it from the course's checkout with the checkout on its path (`make scheduler`, `make "
                "worker`, or PYTHONPATH=/path/to/course dask ...)")
        if self.scheduler_before["importable"] is not True:
            raise ClusterError(f"the Dask scheduler cannot import the course's code "
                               f"({self.scheduler_before['importable']}): {hint}")
        answers = client.run(_by_value(_worker_version))
        missing = {address: answer for address, answer in answers.items() if isinstance(answer, str)}
        if missing:
            raise ClusterError(f"Dask workers cannot import the course's code ({missing}): {hint}")
        ours = grader_version()
        differ = {address: {k: v for k, v in answer.items() if ours.get(k) != v} for address, answer in answers.items()
                  if answer != ours}
        if differ:
            raise ClusterError(f"Dask workers would grade with other code or packages than this coordinator "
                               f"({ours}): {differ}; every node needs the same checkout and environment")

    def _gpu_capacity(self) -> float:
        workers = self.client.scheduler_info(n_workers=-1).get("workers", {})
        return sum(float(w.get("resources", {}).get("GPU", 0)) for w in workers.values())

    def _submit(self, payloads: list[dict], resources: dict | None) -> dict:
        from dask.task_spec import DataNode, Task

        # A data-producing task with no dependency is queued on the scheduler, not on a worker, so a worker
        # holds only the task it runs (resource-restricted tasks are never queued: the GPU ones are throttled).
        graph = {p["key"]: Task(p["key"], grade_task, DataNode(None, p), _data_producer=True) for p in payloads}
        futures = self.client.get(graph, list(graph), sync=False, resources=resources)
        return dict(zip(futures, payloads, strict=True))

    def _outcome(self, future, payload: dict) -> dict | BaseException:
        from concurrent.futures import CancelledError

        from distributed import KilledWorker

        try:
            return future.result()
        except KilledWorker as error:
            return GradingFailed(
                f"grading this submission killed its worker {error.allowed_failures + 1} times (attempts allowed: "
                f"{self.attempts}); it was given up. A grading task is stopped, with its worker process, after "
                f"{payload['task_seconds']:.0f} s (CNN_COURSE_TASK_SECONDS); the workers' logs say more")
        except CancelledError:
            return GradingFailed("the grading task was cancelled")
        except Exception as error:  # noqa: BLE001 (the task's own exception, raised on the worker)
            return error

    def run(self, payloads: list[dict]) -> Iterator[tuple[dict, dict | BaseException]]:
        from distributed import wait

        pending: dict = {}
        queued_gpu: list[dict] = []
        if self.gpu:
            queued_gpu = list(payloads)
        elif payloads:
            pending.update(self._submit(payloads, None))
        gpu_missing_since = None
        while pending or queued_gpu:
            if self.gpu:
                capacity = self._gpu_capacity()
                in_flight = len(pending)
                room = int(capacity) - in_flight
                if room > 0 and queued_gpu:
                    batch, queued_gpu = queued_gpu[:room], queued_gpu[room:]
                    pending.update(self._submit(batch, {"GPU": 1}))
                if capacity:
                    gpu_missing_since = None
                elif gpu_missing_since is None:
                    gpu_missing_since = time.monotonic()
                elif time.monotonic() - gpu_missing_since > gpu_wait_seconds():
                    message = (f"this assignment is graded on a GPU worker, and no worker with a GPU resource "
                               f"(`dask worker ... --resources GPU=1`) was in the cluster for "
                               f"{gpu_wait_seconds():.0f} s (CNN_COURSE_GPU_WAIT_SECONDS): not graded")
                    for future, payload in list(pending.items()):
                        future.cancel()
                        yield payload, GradingFailed(message)
                    pending.clear()
                    for payload in queued_gpu:
                        yield payload, GradingFailed(message)
                    queued_gpu = []
                    break
            if not pending:
                time.sleep(self.poll)
                continue
            try:
                done, _ = wait(list(pending), timeout=self.poll, return_when="FIRST_COMPLETED")
            except TimeoutError:
                done = set()
            for future in done:
                payload = pending.pop(future)
                outcome = self._outcome(future, payload)
                future.release()  # the worker may drop the record now: a later death must not recompute it
                yield payload, outcome

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.run(_by_value(_sweep_on_worker), on_error="return")


def _sweep_on_worker():
    from tools import distributed_grading

    return distributed_grading.sweep_orphans()


def _by_value(function: Callable) -> Callable:
    """A copy of a module-level function that cloudpickle sends by value (the remote end need not import us)."""
    import types

    copy = types.FunctionType(function.__code__, {"__builtins__": __builtins__}, function.__name__,
                              function.__defaults__, function.__closure__)
    copy.__module__ = "__main__"
    copy.__qualname__ = f"<by value>.{function.__name__}"
    return copy


def _quiet_logs() -> None:
    for name in ("distributed", "distributed.nanny", "distributed.scheduler", "distributed.worker",
                 "distributed.core", "distributed.client", "distributed.shuffle", "dask"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def open_executor(jobs: int = 1, scheduler=None, gpu: bool = False, quiet: bool = False,
                  db_url: str | None = None):
    """The executor of a grading run (a context manager; the cluster it starts is closed at the end).

    ``scheduler``: an address (``tcp://host:8786``, ``tls://...``) or the path of a scheduler file (``dask
    scheduler --scheduler-file``), or a connected ``distributed.Client`` (Dask Gateway, dask-kubernetes,
    dask-jobqueue: README), which is left open: the tasks go to that cluster and ``jobs`` is ignored. Else
    ``jobs`` > 1 starts a LocalCluster of ``jobs`` single-threaded worker processes, and ``jobs`` = 1 grades in
    this process. ``db_url``: the gradebook's URL, kept out of the local workers' environment.
    """
    if scheduler is None and jobs <= 1:
        executor = InProcess(gpu)
        yield executor
        return
    import dask
    from distributed import Client, LocalCluster

    if quiet:
        _quiet_logs()
    if isinstance(scheduler, Client):
        executor = DaskExecutor(scheduler, gpu=gpu)
        try:
            yield executor
        finally:
            executor.close()
        return
    cluster = None
    settings = {"distributed.scheduler.allowed-failures": task_attempts() - 1,
                "distributed.scheduler.worker-saturation": 1.0,
                # tasks carry their submission's files: say nothing about graphs of a few MB
                "distributed.admin.large-graph-warning-threshold": "512MB"}
    with dask.config.set(settings):
        if scheduler is not None:
            if "://" in scheduler or not pathlib.Path(scheduler).is_file():
                client = Client(scheduler, timeout="60s")
            else:
                client = Client(scheduler_file=scheduler, timeout="60s")
        else:
            from utils.grading import kernel

            hidden = {name: "" for name in os.environ if name in SECRET_VARIABLES or (
                db_url and not db_url.startswith("sqlite") and db_url in os.environ[name])}
            cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=":0",
                                   env=hidden, resources={"GPU": 1} if gpu and kernel.has_gpu() else None,
                                   silence_logs=logging.ERROR if quiet else logging.WARNING)
            client = Client(cluster)
    executor = None
    try:
        executor = DaskExecutor(client, gpu=gpu)
        yield executor
    finally:
        if executor is not None:
            executor.close()
        client.close()
        if cluster is not None:
            cluster.close()


# ---------------------------------------------------------------------------------------------
# the coordinator


def done_path(state: pathlib.Path, aid: str, student: str) -> pathlib.Path:
    return state / "work" / aid / "done" / f"{student}.json"


def read_done(state: pathlib.Path, aid: str, student: str) -> dict | None:
    try:
        marker = json.loads(done_path(state, aid, student).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def _write_done(state: pathlib.Path, aid: str, payload: dict, record: dict, seed: int) -> None:
    path = done_path(state, aid, payload["student"])
    path.parent.mkdir(parents=True, exist_ok=True)
    marker = {"key": payload["key"], "hash": payload["hash"], "seed_check": _seed_check(seed, payload["hash"]),
              "committed": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "grader": record.get("grader"),
              "record": _without_files(record)}
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(marker, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(partial, path)


def _without_files(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("autograded_files", "autograded", "scratch")}


def validate_record(record, payload: dict) -> None:
    """Raise ValueError unless ``record`` is the answer to ``payload`` and has the shape commit() writes."""
    from tools import autograde

    if not isinstance(record, dict):
        raise ValueError(f"the task returned a {type(record).__name__}, not a record")
    for name in ("key", "hash", "assignment", "student"):
        expected = payload[name]
        if record.get(name) != expected:
            raise ValueError(f"the record's {name} is {str(record.get(name))[:80]!r}, not {expected!r}")
    if "autograded_files" not in record:
        raise ValueError("the record carries no autograded files")
    if record.get("grader") != payload["grader"]:
        raise ValueError(f"graded by a worker with {record.get('grader')}, the coordinator has {payload['grader']}")
    autograde.validate(record)


def _describe(error: BaseException) -> str:
    if isinstance(error, GradingFailed):
        return str(error)
    return f"{type(error).__name__}: {error}"


@dataclasses.dataclass
class Outcome:
    records: dict = dataclasses.field(default_factory=dict)   # student -> record (committed or from its marker)
    errors: dict = dataclasses.field(default_factory=dict)    # student -> message
    skipped: list = dataclasses.field(default_factory=list)   # students whose done marker was up to date
    other_grader: list = dataclasses.field(default_factory=list)  # of those, graded by another grader version


def grade_assignment(aid: str, students: Iterable[str], state: pathlib.Path, seed: int, db_url: str, executor,
                     regrade: bool = False, progress: Callable[[str], None] | None = None) -> Outcome:
    """Grade ``students``' submissions of ``aid`` on ``executor`` and commit them; the one gradebook writer.

    ``tools.autograde.prepare`` must have made the assignment's template. Without ``regrade``, a submission whose
    done marker holds the same content hash and seed, and whose rows are in the gradebook, is not graded
    again (its record comes from the marker).
    """
    from nbgrader.api import Gradebook, MissingEntry

    from tools import autograde

    outcome = Outcome()
    template = template_files(autograde.work_dir(state, aid) / "template")
    grading_limits = limits()
    version = grader_version()
    payloads = []
    with Gradebook(db_url) as gradebook:
        for student in students:
            entries = snapshot(state / "submitted" / student / aid)
            digest = content_hash(aid, student, entries, grading_limits)
            marker = None if regrade else read_done(state, aid, student)
            if marker and marker.get("hash") == digest and marker.get("seed_check") == _seed_check(seed, digest) \
                    and (state / "autograded" / student / aid).is_dir():
                try:
                    gradebook.find_submission(aid, student)
                except MissingEntry:
                    marker = None
                if marker is not None:
                    outcome.records[student] = marker["record"]
                    outcome.skipped.append(student)
                    if marker.get("grader") != version:
                        outcome.other_grader.append(student)
                    if progress:
                        progress(student)
                    continue
            payloads.append(build_payload(state, aid, student, seed, template, entries, digest, version))
    for payload, result in executor.run(payloads):
        student = payload["student"]
        if isinstance(result, BaseException):
            outcome.errors[student] = _describe(result)
        else:
            try:
                validate_record(result, payload)
            except ValueError as error:
                outcome.errors[student] = f"the record of this submission was refused: {error}"
            else:
                autograde.commit(result, db_url, state)
                _write_done(state, aid, payload, result, seed)  # only after the commit
                outcome.records[student] = _without_files(result)
        if progress:
            progress(student)
    return outcome
