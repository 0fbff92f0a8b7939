"""The gradebook on PostgreSQL: a class graded through nbgrader's ``db_url`` into a real server.

A module fixture starts a throwaway PostgreSQL server (the Debian package's binaries: on PATH or
under /usr/lib/postgresql/*/bin) listening only on 127.0.0.1, on a free port, with trust
authentication for loopback, and creates the database ``gradebook``. As root it runs the server
as the ``postgres`` system user (PostgreSQL refuses to run as root). Where the binaries, that user
or the driver are missing, the module is skipped and the reason says what is missing (``-ra``
prints it in the summary).

Two example submissions (alice: all correct, bob: four mistakes) are graded into it with the real
pipeline (``tools.course.grade``), then read back through ``nbgrader.api.Gradebook`` and through
plain SQL, and regraded once to show that a regrade updates the rows instead of adding new ones.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pathlib
import pwd
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import time

import pytest

from tools import course
from utils.grading import sandbox

ROOT = pathlib.Path(__file__).resolve().parents[1]
SEED = 20261121
AID = "a1_numpy_convolution"
STUDENTS = ["alice", "bob"]
EXPECTED = json.loads((ROOT / "examples" / "submissions" / f"expected_{AID}.json").read_text())
BOB_FAILS = {"conv_forward_tests", "conv_param_count_tests", "pool_forward_tests", "conv_backward_tests"}
SERVER_TOOLS = ("pg_ctl", "initdb", "postgres")
START_SECONDS = 30  # bound on waiting for the server to accept connections

pytestmark = pytest.mark.skipif(
    not (ROOT / "solutions" / AID / f"{AID}.ipynb").is_file(), reason=f"solutions/{AID} is missing"
)


# ---------------------------------------------------------------------------------------------
# the server


def _version_key(path: str) -> tuple:
    return tuple(int(n) for n in re.findall(r"\d+", path))


def find_server_tools() -> tuple[dict[str, str] | None, str]:
    """({tool: path} from one directory, "") or (None, why not): PATH first, then /usr/lib/postgresql/*/bin."""
    folders = []
    for tool in SERVER_TOOLS:
        found = shutil.which(tool)
        if found:
            folders.append(os.path.dirname(os.path.realpath(found)))
    folders += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    for folder in dict.fromkeys(folders):  # the tools of one installation, not a mix of versions
        paths = {tool: os.path.join(folder, tool) for tool in SERVER_TOOLS}
        if all(os.path.isfile(p) and os.access(p, os.X_OK) for p in paths.values()):
            return paths, ""
    missing = [t for t in SERVER_TOOLS
               if not shutil.which(t) and not glob.glob(f"/usr/lib/postgresql/*/bin/{t}")]
    if missing:
        return None, (f"PostgreSQL server not installed: {', '.join(missing)} not found on PATH or in "
                      "/usr/lib/postgresql/*/bin (Debian: apt-get install postgresql)")
    return None, f"no single PostgreSQL installation has all of {', '.join(SERVER_TOOLS)} (looked in {folders})"


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run(command: list[str], cwd: pathlib.Path, timeout: float) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}  # no stray PGDATA, PGPORT, ...
    env["LC_ALL"] = "C"
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _tail(result: subprocess.CompletedProcess | None, log: pathlib.Path | None = None) -> str:
    text = "" if result is None else (result.stdout or "") + (result.stderr or "")
    if log is not None and log.is_file():
        text += "\n--- server log ---\n" + log.read_text(errors="replace")
    return "\n".join(text.splitlines()[-30:])


def _connect(psycopg2, port: int, dbname: str):
    return psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname=dbname, connect_timeout=3)


@pytest.fixture(scope="module")
def postgres_url():
    """``postgresql+psycopg2://postgres@127.0.0.1:PORT/gradebook`` of a server this fixture starts and stops.

    The driver is named: SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3, while the pinned
    driver is psycopg2 (psycopg2-binary in requirements.txt).
    """
    tools, why = find_server_tools()
    if tools is None:
        print(f"skipping the PostgreSQL gradebook test: {why}")
        pytest.skip(why)
    try:
        import psycopg2
    except ImportError as error:  # pinned in requirements.txt; tests/test_environment.py checks it
        why = f"the PostgreSQL driver psycopg2 is not installed ({error}): pip install -r requirements.txt"
        print(f"skipping the PostgreSQL gradebook test: {why}")
        pytest.skip(why)

    as_user: list[str] = []
    owner = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the postgres system user
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            why = "running as root and there is no `postgres` system user to run the PostgreSQL server as"
            print(f"skipping the PostgreSQL gradebook test: {why}")
            pytest.skip(why)
        runuser = shutil.which("runuser")
        if runuser is None:
            why = "running as root and `runuser` (util-linux) is missing to run PostgreSQL as user postgres"
            print(f"skipping the PostgreSQL gradebook test: {why}")
            pytest.skip(why)
        as_user = [runuser, "-u", "postgres", "--"]

    # A folder of its own that the postgres user can reach (pytest's tmp root, a private TMPDIR and a
    # checkout under /root are closed to it): the sandbox's scratch folders are made for that.
    base = pathlib.Path(sandbox.scratch_dir("cnn-course-pg-"))
    data, sockets, log = base / "data", base / "sockets", base / "server.log"
    sockets.mkdir()
    if owner is not None:
        for path in (base, sockets):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    started = False
    try:
        result = _run([*as_user, tools["initdb"], "-D", str(data), "-U", "postgres", "--auth=trust",
                       "-E", "UTF8", "--no-locale", "--no-sync"], cwd=base, timeout=120)
        assert result.returncode == 0, f"initdb failed:\n{_tail(result)}"

        port = None
        for _ in range(3):  # the free port can be taken between probing and binding: try another
            candidate = free_loopback_port()
            options = " ".join(shlex.quote(o) for o in (
                "-c", "listen_addresses=127.0.0.1", "-p", str(candidate), "-k", str(sockets),
                "-c", "fsync=off", "-c", "max_connections=20"))
            result = _run([*as_user, tools["pg_ctl"], "-D", str(data), "-l", str(log), "-o", options,
                           "-w", "-t", str(START_SECONDS), "start"], cwd=base, timeout=START_SECONDS + 30)
            started = started or (data / "postmaster.pid").exists()
            if result.returncode == 0:
                port = candidate
                break
            if started:  # it came up partly: stop it before trying again
                _run([*as_user, tools["pg_ctl"], "-D", str(data), "stop", "-m", "immediate", "-w"],
                     cwd=base, timeout=60)
        assert port is not None, f"pg_ctl start failed:\n{_tail(result, log)}"

        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                connection = _connect(psycopg2, port, "postgres")
                break
            except psycopg2.OperationalError as error:
                if time.monotonic() > deadline:
                    raise AssertionError(f"PostgreSQL did not accept connections in {START_SECONDS} s: "
                                         f"{error}\n{_tail(None, log)}") from error
                time.sleep(0.2)
        connection.autocommit = True
        with contextlib.closing(connection), connection.cursor() as cursor:
            cursor.execute("CREATE DATABASE gradebook")
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/gradebook"
    finally:
        if started or (data / "postmaster.pid").exists():
            stop = _run([*as_user, tools["pg_ctl"], "-D", str(data), "stop", "-m", "immediate", "-w", "-t", "30"],
                        cwd=base, timeout=60)
            pid_file = data / "postmaster.pid"
            if stop.returncode != 0 and pid_file.exists():  # only the server of this data folder
                with contextlib.suppress(ValueError, IndexError, ProcessLookupError):
                    os.kill(int(pid_file.read_text().splitlines()[0]), signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# the class


def hand_in(state: pathlib.Path, student: str) -> None:
    target = state / "submitted" / student / AID
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "examples" / "submissions" / student / AID / f"{AID}.ipynb", target / f"{AID}.ipynb")


@pytest.fixture(scope="module")
def graded(postgres_url, tmp_path_factory):
    state = tmp_path_factory.mktemp("grading_postgres")
    for student in STUDENTS:
        hand_in(state, student)
    results = course.grade([AID], state, SEED, quiet=True, db_url=postgres_url)
    return state, postgres_url, results


@pytest.fixture(scope="module")
def regraded(graded):
    """bob regraded once more into the same PostgreSQL gradebook."""
    state, url, _ = graded
    return course.grade([AID], state, SEED, quiet=True, students=["bob"], db_url=url)


def sql(url: str, query: str, *params) -> list[tuple]:
    import psycopg2

    libpq_url = url.replace("postgresql+psycopg2://", "postgresql://", 1)  # libpq knows no SQLAlchemy driver
    with contextlib.closing(psycopg2.connect(libpq_url)) as connection, connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


GRADES_SQL = """
SELECT sa.student_id, bc.name, COALESCE(g.manual_score, g.auto_score), gc.max_score
FROM grade g
JOIN submitted_notebook sn ON g.notebook_id = sn.id
JOIN submitted_assignment sa ON sn.assignment_id = sa.id
JOIN assignment a ON sa.assignment_id = a.id
JOIN grade_cells gc ON g.cell_id = gc.id
JOIN base_cell bc ON gc.id = bc.id
WHERE a.name = %s
"""


def expected_tests(student: str) -> dict[str, float]:
    return {gid: float(score) for gid, score in EXPECTED[student].items()}


# ---------------------------------------------------------------------------------------------
# the checks


def test_the_pipeline_grades_the_class_exactly(graded):
    _, _, results = graded
    assert sorted(results) == STUDENTS
    alice, bob = results["alice"][AID], results["bob"][AID]
    assert (alice["score"], alice["max_score"]) == (14.0, 14.0), alice["messages"]
    assert (bob["score"], bob["max_score"]) == (5.0, 14.0), bob["messages"]
    for student in STUDENTS:
        got = {gid: score for gid, (score, _) in results[student][AID]["tests"].items()}
        assert got == expected_tests(student), (student, results[student][AID]["messages"])
    assert {g for g, (s, m) in bob["tests"].items() if s < m} == BOB_FAILS
    assert set(bob["messages"]) == BOB_FAILS
    assert not alice["messages"]


def test_the_gradebook_reads_back_through_nbgrader(graded):
    from nbgrader.api import Gradebook

    _, url, _ = graded
    with Gradebook(url) as gradebook:
        assert gradebook.db.get_bind().dialect.name == "postgresql"
        assert sorted(s.id for s in gradebook.students) == STUDENTS
        assert gradebook.find_assignment(AID).max_score == 14.0
        for student, total in (("alice", 14.0), ("bob", 5.0)):
            submission = gradebook.find_submission(AID, student)
            assert (submission.score, submission.max_score) == (total, 14.0), student
            tests = {g.name: g.score for nb in submission.notebooks for g in nb.grades}
            assert tests == expected_tests(student), student


def test_the_rows_live_in_postgresql(graded):
    state, url, _ = graded
    assert sql(url, "SELECT current_database()") == [("gradebook",)]
    assert sql(url, "SELECT count(*) FROM student") == [(2,)]
    assert sql(url, "SELECT count(*) FROM assignment WHERE name = %s", AID) == [(1,)]
    scores: dict[str, dict[str, float]] = {}
    for student, gid, score, max_score in sql(url, GRADES_SQL, AID):
        scores.setdefault(student, {})[gid] = float(score)
    assert scores == {s: expected_tests(s) for s in STUDENTS}
    assert sum(float(m) for *_, m in sql(url, GRADES_SQL, AID)) == 2 * 14.0

    # No SQLite gradebook took the grades: none beside the state, and the only SQLite files are the
    # per-assignment scratch templates (tools/autograde.prepare), which hold no student.
    assert not (state / "gradebook.db").exists()
    for found in state.rglob("*.db"):
        assert found.parent == state / "work" / AID / "template", found
        with contextlib.closing(sqlite3.connect(f"file:{found}?mode=ro", uri=True)) as db:
            assert db.execute("SELECT count(*) FROM student").fetchone() == (0,), found


def test_the_export_comes_from_postgresql(graded):
    import csv

    state, _, _ = graded
    with (state / "grades.csv").open() as handle:
        rows = {r["student_id"]: r for r in csv.DictReader(handle) if r["assignment"] == AID}
    assert {s: (float(r["score"]), float(r["max_score"])) for s, r in rows.items()} == {
        "alice": (14.0, 14.0), "bob": (5.0, 14.0)}


def test_regrading_updates_the_rows_in_place(graded, regraded):
    _, url, results = graded
    assert sorted(regraded) == ["bob"]
    assert regraded["bob"][AID]["tests"] == results["bob"][AID]["tests"]
    assert regraded["bob"][AID]["score"] == 5.0
    assert sql(url, "SELECT count(*) FROM student") == [(2,)]
    per_student = sql(url, "SELECT sa.student_id, count(*) FROM submitted_assignment sa "
                           "JOIN assignment a ON sa.assignment_id = a.id WHERE a.name = %s "
                           "GROUP BY sa.student_id ORDER BY sa.student_id", AID)
    assert per_student == [("alice", 1), ("bob", 1)]
    n_tests = len(EXPECTED["alice"])
    assert sql(url, "SELECT count(*) FROM grade g JOIN grade_cells gc ON g.cell_id = gc.id") == [(2 * n_tests,)]
