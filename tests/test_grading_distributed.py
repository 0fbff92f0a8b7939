"""Grading on Dask distributed with real processes on loopback (tools/distributed_grading.py, no mocks).

A class of 24 a1_numpy_convolution submissions: the example students (alice correct, bob and dave partly
wrong, carol the untouched template) under several names, four hostile entries of the corpus (an endless
loop, a kernel that kills itself, a fork bomb, monkeypatching) and one submission whose grading outlasts
the hard per-task limit (``CNN_COURSE_TASK_SECONDS``, set low here): its task's watchdog kills its worker
process at every attempt (the sandboxed kernel, another uid, cannot kill the worker itself).

The reference is the sequential ``--jobs 1`` run of the class's distinct notebooks (the four examples and the
four hostile entries, one copy each), graded once (module fixture) by ``tools/course.py grade`` in a process
of its own, like every coordinator here (the limits are read from the environment at import). A student's
expected grades are those of their notebook's copy: the verdicts come from the grader's seed, not from the
student's name, so equal notebooks get equal grades, field by field.

* ``test_a_killed_worker_loses_nothing``: a real ``dask scheduler`` and two ``dask worker --nthreads 1``
  processes, each in a session (process group) of its own on 127.0.0.1, grade the class; while one worker
  is grading a submission the test kills that worker's process group with SIGKILL, and a new worker joins
  (a node that comes back). Checks: one gradebook record per submission, grades equal to the reference
  field by field, the self-killing submission an error after the allowed attempts (no hang), the
  submission of the killed worker graded once, no process and no scratch folder left, bounded time.
* ``test_a_restarted_coordinator_grades_only_what_is_left``: the coordinator (reaching the cluster through
  a scheduler file) is killed with SIGKILL after a few commits and started again: the same equality, no
  duplicate record, and the submissions committed before the kill are not graded again.
* the GPU resource, and what a payload carries, on an in-process cluster, and a scheduler that cannot import
  the course's code (seconds).

Teardown stops only the processes the test started (their process groups). About 9 minutes on 2 cores (.ci/run).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import pathlib
import pickle
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import nbformat
import pytest
from process_helpers import live_processes

from tools import distributed_grading
from utils.grading import sandbox

ROOT = pathlib.Path(__file__).resolve().parents[1]
AID = "a1_numpy_convolution"
DASK = pathlib.Path(sys.executable).with_name("dask")
SEED = 40581772
# Limits low enough that the hanging entries cost seconds, with room for a slow or loaded machine: the slowest
# honest cell (the setup cell's imports, about 3 s on an idle machine) stays far below a cell's limit.
LIMITS = {"CNN_COURSE_CELL_SECONDS": "15", "CNN_COURSE_NOTEBOOK_SECONDS": "150", "CNN_COURSE_VERIFY_SECONDS": "5"}
# The task limit lies between the slowest honest entry (the endless loop: one cell's limit, a second run of the
# template, a check's limit; about 35 s on an idle machine, so twice that under load still passes) and the
# self-killer, whose 8 solution cells sleep 12 s each: more than 96 s whatever the load, each cell within its
# own limit.
TASK_SECONDS = 65
SELF_KILLER_SLEEP = 12
ATTEMPTS = 2  # the course's default is 3; two show the same semantics and cost a task limit less
TAG = "t" + secrets.token_hex(2)  # every student's name starts with it: its scratch folders are /tmp/cnng-<TAG>*
EXAMPLES = ["alice", "bob", "dave", "carol"]
HOSTILE = ["c04_infinite_loop", "c08_self_kill", "c10_fork_bomb", "c13_monkeypatch"]
SELF_KILLER = f"{TAG}99_outlasts_its_task"
CLASS_SECONDS = 600      # one run of the class on the cluster, a bound that catches a hang
REFERENCE_SECONDS = 400  # the sequential reference of the 8 distinct notebooks, likewise

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the grader's sandbox needs Linux"),
]


def sources() -> dict[str, pathlib.Path]:
    """The class's distinct notebooks: name -> the folder handed in."""
    found = {example: ROOT / "examples" / "submissions" / example / AID for example in EXAMPLES}
    found.update({entry.split("_")[0]: ROOT / "tests" / "corpus" / entry / AID for entry in HOSTILE})
    return found


def class_members() -> dict[str, str]:
    """student -> the name of their notebook in sources() (without the self-killer, which the test writes)."""
    members = {f"{TAG}{index:02d}_{EXAMPLES[index % len(EXAMPLES)]}": EXAMPLES[index % len(EXAMPLES)]
               for index in range(19)}
    for index, entry in enumerate(HOSTILE, start=19):
        members[f"{TAG}{index:02d}_{entry.split('_')[0]}"] = entry.split("_")[0]
    return members


def expected(reference: dict, field: str, members: dict[str, str]) -> dict:
    """The reference's ``results`` or ``rows``, one entry per member: that of their notebook (the intake report
    names the student, the one field that differs)."""
    found = {student: copy.deepcopy(reference[field][f"{TAG}ref_{source}"]) for student, source in members.items()}
    if field == "results":
        for student, entry in found.items():
            entry[AID]["intake"]["student"] = student
    return found


def write_self_killer(folder: pathlib.Path) -> None:
    """alice's notebook, every solution cell slowed down: each cell stays within its own limit, but the notebook
    alone outlasts the task's limit (a submission that kills its worker every time)."""
    nb = nbformat.read(ROOT / "examples" / "submissions" / "alice" / AID / f"{AID}.ipynb", as_version=4)
    slowed = 0
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = f"import time as _time\n_time.sleep({SELF_KILLER_SLEEP})\n\n" + cell.source
            slowed += 1
    assert slowed * SELF_KILLER_SLEEP > 1.3 * TASK_SECONDS
    assert SELF_KILLER_SLEEP < 0.85 * float(LIMITS["CNN_COURSE_CELL_SECONDS"])
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / f"{AID}.ipynb")


def hand_in(state: pathlib.Path, students: dict[str, str], self_killer: bool) -> None:
    for student, source in students.items():
        shutil.copytree(sources()[source], state / "submitted" / student / AID)
    if self_killer:
        write_self_killer(state / "submitted" / SELF_KILLER / AID)


# ---------------------------------------------------------------------------------------------
# processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in distributed_grading.SECRET_VARIABLES}
    env.update(LIMITS)
    env.update({"PYTHONPATH": str(ROOT), "CNN_COURSE_TASK_SECONDS": str(TASK_SECONDS),
                "CNN_COURSE_TASK_ATTEMPTS": str(ATTEMPTS), "CNN_COURSE_GRADER_SEED": str(SEED),
                "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": str(ATTEMPTS - 1),
                "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0"})
    env.update(extra)
    return env


class Processes:
    """The processes a test starts, each the leader of a session (process group) of its own."""

    def __init__(self, logs: pathlib.Path):
        self.logs = logs
        logs.mkdir(parents=True, exist_ok=True)
        self.started: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], env: dict) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self.started[name] = process
        return process

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def kill(self, name: str, sig=signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.started[name].pid, sig)

    def group_alive(self, name: str) -> bool:
        return any(process.pgid == self.started[name].pid for process in live_processes())

    def stop_all(self) -> None:
        """SIGTERM to every group started, then SIGKILL to what is left; only these groups."""
        for name in self.started:
            self.kill(name, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.started.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        for name, process in self.started.items():
            self.kill(name, signal.SIGKILL)
            process.wait(timeout=30)
        deadline = time.monotonic() + 10
        while any(self.group_alive(n) for n in self.started) and time.monotonic() < deadline:
            time.sleep(0.2)


class Cluster:
    """A real scheduler and workers on 127.0.0.1 (the dask commands of the README)."""

    def __init__(self, processes: Processes, scheduler_file: pathlib.Path | None = None):
        self.processes = processes
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        argv = [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard"]
        if scheduler_file is not None:
            argv += ["--scheduler-file", str(scheduler_file)]
        processes.start("scheduler", argv, base_env())  # it unpickles the tasks: the checkout on its path
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the scheduler did not start:\n" + processes.log("scheduler")[-2000:])
        if scheduler_file is not None:
            while not scheduler_file.is_file() and time.monotonic() < deadline:
                time.sleep(0.1)
        from distributed import Client

        self.client = Client(self.address, timeout="30s")

    def add_worker(self, name: str) -> None:
        self.processes.start(name, [str(DASK), "worker", self.address, "--nthreads", "1", "--name", name,
                                    "--host", "127.0.0.1", "--no-dashboard", "--memory-limit", "0"], base_env())

    def wait_for(self, names: set[str], timeout: float = 90) -> dict[str, str]:
        """name -> address, once every named worker is in the cluster."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            workers = self.client.scheduler_info(n_workers=-1)["workers"]
            found = {w["name"]: address for address, w in workers.items()}
            if names <= set(found):
                return found
            time.sleep(0.3)
        raise AssertionError(f"workers {names} did not join: {self.processes.logs}")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()


@contextlib.contextmanager
def two_workers(processes: Processes, scheduler_file: pathlib.Path | None = None):
    """A scheduler and workers w1 and w2, joined; at the end every process the test started is stopped."""
    cluster = None
    try:
        cluster = Cluster(processes, scheduler_file)
        cluster.add_worker("w1")
        cluster.add_worker("w2")
        cluster.wait_for({"w1", "w2"})
        yield cluster
    finally:
        if cluster is not None:
            cluster.close()
        processes.stop_all()


def coordinator(processes: Processes, name: str, state: pathlib.Path, out: pathlib.Path, *options: str):
    argv = [sys.executable, str(ROOT / "tools" / "course.py"), "grade", AID, "--state", str(state),
            "--json", str(out), *options]
    return processes.start(name, argv, base_env())


def markers(state: pathlib.Path) -> dict[str, str]:
    folder = state / "work" / AID / "done"
    return {p.stem: p.read_text() for p in folder.glob("*.json")} if folder.is_dir() else {}


def ours() -> dict[int, str]:
    """Live processes of this test's grading: anything whose command line or working folder names its students
    (kernels, their wrappers, the verifier's children, a fork bomb's copies all work in /tmp/cnng-<TAG>*)."""
    found = {}
    needle = f"cnng-{TAG}"
    for process in live_processes():
        try:
            cmdline, cwd = process.cmdline(), process.cwd()
        except OSError:
            continue
        if needle in cmdline or needle in cwd:
            found[process.pid] = cmdline[:200]
    return found


def scratch_folders() -> set[str]:
    return {p.name for p in pathlib.Path(sandbox.scratch_parent()).glob(f"cnng-{TAG}*")}


def gradebook_rows(state: pathlib.Path) -> dict:
    """student -> every grade and comment row of its submission, and how many submissions it has."""
    from nbgrader.api import Gradebook

    rows = {}
    with Gradebook(f"sqlite:///{state / 'gradebook.db'}") as gradebook:
        for student in gradebook.students:
            submissions = [s for s in student.submissions if s.assignment.name == AID]
            entry = {"submissions": len(submissions)}
            for submission in submissions:
                for notebook in submission.notebooks:
                    for grade in notebook.grades:
                        entry[grade.name] = (grade.auto_score, grade.manual_score, grade.max_score,
                                             grade.needs_manual_grade)
                    for comment in notebook.comments:
                        entry["comment " + comment.name] = (comment.auto_comment, comment.manual_comment)
            rows[student.id] = entry
    with contextlib.closing(sqlite3.connect(f"file:{state / 'gradebook.db'}?mode=ro", uri=True)) as db:
        counts = dict(db.execute("SELECT student_id, count(*) FROM submitted_assignment GROUP BY student_id"))
    for student, entry in rows.items():
        entry["rows"] = counts.get(student, 0)
    return rows


def comparable(results: dict) -> dict:
    """grade()'s results without the timings."""
    return {student: {aid: {k: v for k, v in entry.items() if k != "seconds"} for aid, entry in by_aid.items()}
            for student, by_aid in results.items()}


def run_to_end(processes: Processes, name: str, timeout: float) -> float:
    started = time.monotonic()
    try:
        returncode = processes.started[name].wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        processes.kill(name)
        raise AssertionError(f"{name} did not finish in {timeout} s:\n" + processes.log(name)[-3000:]) from None
    assert returncode == 0, processes.log(name)[-3000:]
    return time.monotonic() - started


def wait_until(condition, timeout: float, what: str, poll: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


def assert_graded_like_the_reference(state: pathlib.Path, results_file: pathlib.Path, members: dict[str, str],
                                     reference: dict) -> None:
    """One gradebook record per member and nothing else; the results and every gradebook row equal the
    sequential reference's field by field."""
    results = json.loads(results_file.read_text())
    rows = gradebook_rows(state)
    assert sorted(rows) == sorted(members) == sorted(results)
    assert all(entry["submissions"] == 1 and entry["rows"] == 1 for entry in rows.values())
    assert comparable(results) == expected(reference, "results", members)
    assert rows == expected(reference, "rows", members)


def assert_nothing_left(processes: Processes, scratch_before: set[str]) -> None:
    processes.stop_all()
    assert not any(processes.group_alive(name) for name in processes.started), "a started process group lives on"
    left = {}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        left = ours()
        if not left:
            break
        time.sleep(0.5)
    assert left == {}, left
    assert scratch_folders() - scratch_before == set()


# ---------------------------------------------------------------------------------------------
# the reference: the class graded one submission after the other, in one process


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    base = tmp_path_factory.mktemp("reference")
    state = base / "state"
    hand_in(state, {f"{TAG}ref_{source}": source for source in sources()}, self_killer=False)
    processes = Processes(base / "logs")
    try:
        coordinator(processes, "reference", state, base / "results.json", "--jobs", "1")
        seconds = run_to_end(processes, "reference", REFERENCE_SECONDS)
    finally:
        processes.stop_all()
    results = json.loads((base / "results.json").read_text())
    print(f"\nreference: {len(results)} submissions graded one after the other in {seconds:.0f} s")
    assert json.loads((state / "problems.json").read_text()) == {}
    results, rows = comparable(results), gradebook_rows(state)
    assert len(results) == len(rows) == len(sources())
    return {"state": state, "results": results, "rows": rows}


# ---------------------------------------------------------------------------------------------
# the tests


def test_a_killed_worker_loses_nothing(reference, tmp_path):
    scratch_before = scratch_folders()
    state = tmp_path / "state"
    members = class_members()
    hand_in(state, members, self_killer=True)
    assert len(members) + 1 >= 24
    processes = Processes(tmp_path / "logs")
    with two_workers(processes) as cluster:
        started = time.monotonic()
        coordinator(processes, "coordinator", state, tmp_path / "results.json", "--scheduler", cluster.address)

        def w1_grading_an_honest_submission():
            if len(markers(state)) < 3:
                return None
            # w1's address changes when its nanny restarts it (after the self-killer's attempt on it)
            with contextlib.suppress(Exception):
                address = cluster.wait_for({"w1"}, timeout=5)["w1"]
                keys = cluster.client.processing(workers=[address]).get(address, [])
                honest = [k for k in keys if SELF_KILLER not in k]
                if honest:
                    return honest[0], cluster.client.run(os.getpid, workers=[address])[address]
            return None

        victim, w1_pid = wait_until(w1_grading_an_honest_submission, 240, "w1 grading a submission")
        processes.kill("w1")  # the whole process group: nanny and worker
        cluster.add_worker("w3")
        seconds = run_to_end(processes, "coordinator", CLASS_SECONDS)
        wall = time.monotonic() - started
        worker_logs = processes.log("w1") + processes.log("w2") + processes.log("w3")
    print(f"\n{len(members) + 1} submissions on 2 workers, one killed while grading {victim}: {wall:.0f} s")

    # one record per submission (the self-killer none), grades equal to the sequential run's
    assert_graded_like_the_reference(state, tmp_path / "results.json", members, reference)
    # the killed worker's submission was graded (once: one record) by another worker
    student = next(s for s in members if f"-{s}-" in victim)
    marker = json.loads((state / "work" / AID / "done" / f"{student}.json").read_text())
    assert marker["key"] == victim and marker["record"]["worker"]["pid"] != w1_pid
    # the self-killer: an error after the allowed attempts, with a message; the watchdog fired on each attempt
    problems = json.loads((state / "problems.json").read_text())
    assert list(problems) == [f"{SELF_KILLER}/{AID}"]
    assert f"killed its worker {ATTEMPTS} times" in problems[f"{SELF_KILLER}/{AID}"]
    assert f"{TASK_SECONDS} s" in problems[f"{SELF_KILLER}/{AID}"]
    fired = worker_logs.count(f"grading task grade-{AID}-{SELF_KILLER}-")
    assert 1 <= fired <= ATTEMPTS, worker_logs[-3000:]
    assert not (state / "work" / AID / "done" / f"{SELF_KILLER}.json").exists()
    # bounded time, nothing left behind
    assert seconds < CLASS_SECONDS
    assert_nothing_left(processes, scratch_before)


def test_a_restarted_coordinator_grades_only_what_is_left(reference, tmp_path):
    scratch_before = scratch_folders()
    state = tmp_path / "state"
    members = dict(list(class_members().items())[5:13])  # 9 students: 8 examples and a hostile entry
    members.update({s: p for s, p in class_members().items() if "c13" in s})
    hand_in(state, members, self_killer=False)
    processes = Processes(tmp_path / "logs")
    scheduler_file = tmp_path / "scheduler.json"
    with two_workers(processes, scheduler_file):
        options = ("--scheduler-file", str(scheduler_file))
        coordinator(processes, "first", state, tmp_path / "first.json", *options)
        wait_until(lambda: len(markers(state)) >= 3, 240, "three commits")
        processes.kill("first")
        wait_until(lambda: not processes.group_alive("first"), 10, "the coordinator's end")
        processes.started["first"].wait()
        before = markers(state)
        assert 3 <= len(before) < len(members), "the coordinator was killed too late to test a restart"
        coordinator(processes, "second", state, tmp_path / "second.json", *options)
        seconds = run_to_end(processes, "second", CLASS_SECONDS)
        output = processes.log("second")
    print(f"\ncoordinator killed after {len(before)} of {len(members)} commits; the restart took {seconds:.0f} s")

    assert_graded_like_the_reference(state, tmp_path / "second.json", members, reference)
    # what was committed before the kill was not graded again: its markers are untouched
    after = markers(state)
    assert {s: after[s] for s in before} == before
    assert f"{len(before)} submission(s) already graded" in output
    assert json.loads((state / "problems.json").read_text()) == {}
    assert_nothing_left(processes, scratch_before)


# ---------------------------------------------------------------------------------------------
# GPU workers and payloads (an in-process cluster: seconds)


def fake_payload(student: str = "x") -> dict:
    return {"format": -1, "key": f"grade-{AID}-{student}-0000000000000000", "student": student,
            "task_seconds": 5.0}


def test_gpu_tasks_without_a_gpu_worker_fail_with_a_message(monkeypatch):
    from distributed import Client, LocalCluster

    monkeypatch.setenv("CNN_COURSE_GPU_WAIT_SECONDS", "2")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        executor = distributed_grading.DaskExecutor(client, gpu=True, poll_seconds=0.2)
        started = time.monotonic()
        outcomes = list(executor.run([fake_payload("a"), fake_payload("b")]))
    assert time.monotonic() - started < 15
    assert [p["student"] for p, _ in outcomes] == ["a", "b"]
    for _, outcome in outcomes:
        assert isinstance(outcome, distributed_grading.GradingFailed)
        assert "no worker with a GPU resource" in str(outcome) and "--resources GPU=1" in str(outcome)


def test_gpu_tasks_run_on_a_worker_with_the_gpu_resource():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0",
                      resources={"GPU": 1}) as cluster, Client(cluster) as client:
        executor = distributed_grading.DaskExecutor(client, gpu=True, poll_seconds=0.2)
        outcomes = list(executor.run([fake_payload("a")]))
    # it ran on the worker (which refused the payload's format), instead of waiting for a GPU
    assert isinstance(outcomes[0][1], distributed_grading.WorkerMismatch), outcomes


def test_the_payload_carries_no_database_credentials(tmp_path, monkeypatch):
    url = "postgresql+psycopg2://grader:s3cret-pw@db.example/gradebook"
    monkeypatch.setenv("NBGRADER_DB_URL", url)
    monkeypatch.setenv("PGPASSWORD", "s3cret-pw")
    folder = tmp_path / "submitted" / "eve" / AID
    folder.mkdir(parents=True)
    shutil.copy2(ROOT / "examples" / "submissions" / "alice" / AID / f"{AID}.ipynb", folder)
    (folder / "data.bin").write_bytes(b"x" * 100)
    payload = distributed_grading.build_payload(tmp_path, AID, "eve", 123, {"gradebook.db": b"template"})
    data = pickle.dumps(payload)
    assert b"s3cret" not in data and b"db.example" not in data
    assert payload["key"].startswith(f"grade-{AID}-eve-") and len(payload["hash"]) == 64
    assert payload["files"]["data.bin"] == {"size": 100}  # not a notebook: only its size travels
    environ = {"NBGRADER_DB_URL": url, "PGPASSWORD": "s3cret-pw", "OTHER": url, "PATH": "/bin"}
    assert sorted(distributed_grading.scrub_secrets(environ, url)) == ["NBGRADER_DB_URL", "OTHER", "PGPASSWORD"]
    assert environ == {"PATH": "/bin"}


def test_a_record_that_does_not_answer_its_payload_is_refused():
    payload = {"key": "grade-a-s-1", "hash": "h", "assignment": "a", "student": "s", "grader": {"commit": "c"}}
    record = {"key": "grade-a-s-2", "hash": "h", "assignment": "a", "student": "s", "grader": {"commit": "c"}}
    with pytest.raises(ValueError, match="key"):
        distributed_grading.validate_record(record, payload)
    from tools import autograde

    with pytest.raises(ValueError, match="not a plain file name"):
        autograde._unpack_autograded({"../gradebook.db": {"encoding": "utf-8", "content": ""}})


def test_a_scheduler_without_the_courses_code_is_refused_at_once(tmp_path):
    """The scheduler unpickles the tasks: one started without the checkout on its path is named, not 24 errors."""
    processes = Processes(tmp_path / "logs")
    port = free_port()
    env = {k: v for k, v in base_env().items() if k != "PYTHONPATH"}
    try:
        processes.start("scheduler", [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                      "--no-dashboard"], env)
        def listening():
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0

        wait_until(listening, 60, "the scheduler")
        with pytest.raises(distributed_grading.ClusterError, match="scheduler cannot import the course's code"), \
                distributed_grading.open_executor(scheduler=f"tcp://127.0.0.1:{port}", quiet=True):
            pass
    finally:
        processes.stop_all()
    assert not processes.group_alive("scheduler")
