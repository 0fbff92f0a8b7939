"""Every door into the grader: `make grade`, `nbgrader autograde`, formgrader's autograde API.

Each test copies the course's working tree into a private place (a folder under pytest's mode-0700 temporary
root, with a private mode-0700 TMPDIR for every process it starts: where users clone), hands in submissions
of the hostile corpus (tests/corpus) and grades them through one entry point:

- c13_monkeypatch: a wrong conv_forward with np.allclose and the course's checks patched; it must get exactly
  the score of the same wrong code without the patches (tests/corpus/expected.json);
- c19_writes_files: tries to delete the gradebook and other submissions and to write into the repository
  (solutions/, tools/, utils/, the gradebook, .grader_secret) by relative and absolute paths; it must get
  full marks, and nothing outside its scratch space may change;
- c01_correct (through `make grade` only): the control, full marks.

Then: the exact per-test scores in the gradebook, the gradebook intact (SQLite's integrity check, every
student's rows readable), solutions/ and every other file of the course unchanged (hashes), and no sign in
the graded notebooks that an attempt to write succeeded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pathlib
import shutil
import sqlite3
import subprocess
import sys
import urllib.request

import nbformat
import pytest
from lab_helpers import lab_server

from tools import course as course_module

ROOT = pathlib.Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "corpus"
EXPECTED = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
AID = EXPECTED["assignment"]
HOSTILE = ("c13_monkeypatch", "c19_writes_files")
TOKEN = "entry-points-test-token"
# Never copied: the environment, grading state, caches and version control.
SKIP = {".git", ".venv", "grading", "__pycache__", ".pytest_cache", ".ipynb_checkpoints", ".hypothesis",
        ".grader_secret"}
SEED = "731904583"  # the corpus's grader seed

pytestmark = pytest.mark.slow


def private_course(tmp_path_factory, name: str) -> tuple[pathlib.Path, dict[str, str]]:
    """A copy of the working tree under a mode-0700 folder, and the environment for its processes
    (a private mode-0700 TMPDIR, no gradebook URL of the caller's)."""
    parent = tmp_path_factory.mktemp(name)
    parent.chmod(0o700)
    course = parent / "course"
    shutil.copytree(ROOT, course, ignore=lambda _dir, names: [n for n in names if n in SKIP], symlinks=True)
    tmpdir = parent / "tmp"
    tmpdir.mkdir(mode=0o700)
    env = {**os.environ, "TMPDIR": str(tmpdir), course_module.SEED_VARIABLE: SEED}
    env.pop("NBGRADER_DB_URL", None)
    # nbgrader runs `alembic` from PATH: the environment's scripts first, as in an activated environment
    env["PATH"] = f"{pathlib.Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for student in ("c01_correct", *HOSTILE):
        shutil.copytree(CORPUS / student / AID, course / "grading" / "submitted" / student / AID)
    return course, env


def tree_digest(top: pathlib.Path) -> dict[str, str]:
    """sha256 of every file under top, except the grading state and Python's byte-code caches."""
    digest = {}
    for path in sorted(top.rglob("*")):
        rel = path.relative_to(top)
        if rel.parts[0] == "grading" or "__pycache__" in rel.parts or not path.is_file() or path.is_symlink():
            continue
        digest[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


def gradebook_scores(course: pathlib.Path, students: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """{student: {grade_id: score}} read back through nbgrader, after SQLite's integrity check."""
    from nbgrader.api import Gradebook

    path = course / "grading" / "gradebook.db"
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    scores: dict[str, dict[str, float]] = {}
    with Gradebook(f"sqlite:///{path}") as gradebook:
        for student in students:
            submission = gradebook.find_submission(AID, student)
            scores[student] = {grade.name: float(grade.score) for nb in submission.notebooks for grade in nb.grades}
    return scores


def outputs_text(path: pathlib.Path) -> str:
    """Every output of a graded notebook's cells as one text (what the student's code printed)."""
    notebook = nbformat.read(path, as_version=4)
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(str(output.get("text", "")))
            parts.extend(str(value) for value in output.get("data", {}).values())
            parts.extend(output.get("traceback", []))
    return "\n".join(parts)


def check_graded(course: pathlib.Path, before: dict[str, str], students: tuple[str, ...]) -> None:
    scores = gradebook_scores(course, students)
    for student in students:
        expected = {gid: float(points) for gid, points in EXPECTED["students"][student]["tests"].items()}
        assert scores.get(student) == expected, f"{student}: {scores.get(student)} != {expected}"
        graded = course / "grading" / "autograded" / student / AID / f"{AID}.ipynb"
        outputs = outputs_text(graded)
        assert "SUCCEEDED" not in outputs, [line for line in outputs.splitlines() if "SUCCEEDED" in line]
        if student == "c19_writes_files":
            assert "c19 " in outputs and "refused" in outputs, "c19's code did not run in the notebook"
    after = tree_digest(course)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert changed == [], f"files changed outside the grading state: {changed}"
    assert (course / "solutions" / AID / f"{AID}.ipynb").is_file()
    environment = pathlib.Path(sys.prefix)  # c19 also tries the virtual environment, outside the copy
    assert not (environment / "c19-was-here.txt").exists()
    assert not list(environment.glob("lib/python*/site-packages/c19-was-here.txt"))
    for student in students:  # nobody's submission was deleted
        assert (course / "grading" / "submitted" / student / AID / f"{AID}.ipynb").is_file()


def run(command: list[str], course: pathlib.Path, env: dict[str, str], timeout: float) -> str:
    done = subprocess.run(command, cwd=course, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, (
        f"{command} exited with {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    return done.stdout + done.stderr


def test_make_grade_in_a_private_clone(tmp_path_factory):
    """The regression test of a checkout under a mode-0700 folder with a private TMPDIR: the README's
    `make grade` gives the control and both hostile submissions exactly their corpus scores."""
    course, env = private_course(tmp_path_factory, "make-grade")
    before = tree_digest(course)
    run(["make", "--no-print-directory", "grade", f"A={AID}", f"VENV={sys.prefix}"], course, env, timeout=900)
    check_graded(course, before, ("c01_correct", *HOSTILE))


def nbgrader(*args: str) -> list[str]:
    return [sys.executable, "-m", "nbgrader", *args]


def test_nbgrader_autograde_on_the_command_line_goes_through_the_pipeline(tmp_path_factory):
    """What nbgrader's documentation says to run: generate_assignment, then autograde, in the course folder."""
    course, env = private_course(tmp_path_factory, "nbgrader-cli")
    shutil.rmtree(course / "grading" / "submitted" / "c01_correct")
    before = tree_digest(course)
    run(nbgrader("generate_assignment", AID, "--force"), course, env, timeout=300)
    log = run(nbgrader("autograde", AID, "--force"), course, env, timeout=900)
    # one run of the pipeline for both students (nbgrader converts them one after the other)
    assert log.count("with the course's pipeline") == 1
    assert f"Grading {', '.join(HOSTILE)} of {AID} with the course's pipeline" in log
    check_graded(course, before, HOSTILE)


def test_nbgrader_autograde_refuses_another_layout_before_running_anything(tmp_path_factory):
    course, env = private_course(tmp_path_factory, "nbgrader-layout")
    (course / "elsewhere").mkdir()
    shutil.copytree(course / "grading" / "submitted", course / "elsewhere" / "submitted")
    command = nbgrader("autograde", AID, "--force", "--CourseDirectory.submitted_directory=elsewhere/submitted")
    done = subprocess.run(command, cwd=course, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "CourseDirectory.submitted_directory is 'elsewhere/submitted'" in done.stderr
    assert "make grade" in done.stderr
    assert not (course / "grading" / "autograded").exists() and not (course / "grading" / "gradebook.db").exists()


def test_formgrader_autograde_api_goes_through_the_pipeline(tmp_path_factory):
    """formgrader's Autograde button posts to /formgrader/api/submission/<assignment>/<student>/autograde."""
    course, env = private_course(tmp_path_factory, "formgrader")
    shutil.rmtree(course / "grading" / "submitted" / "c01_correct")
    before = tree_digest(course)
    run(nbgrader("generate_assignment", AID, "--force"), course, env, timeout=300)
    with lab_server(course, env, TOKEN) as base:
        for student in HOSTILE:
            request = urllib.request.Request(f"{base}/formgrader/api/submission/{AID}/{student}/autograde",
                                             data=b"", method="POST", headers={"Authorization": f"token {TOKEN}"})
            with urllib.request.urlopen(request, timeout=900) as response:
                answer = json.loads(response.read())
            assert answer["success"], answer.get("error") or answer
            assert "with the course's pipeline" in answer["log"]
    check_graded(course, before, HOSTILE)
