"""The grading pipeline end to end: real nbgrader, real kernels, a real SQLite gradebook.

One class is graded once per test session (module fixture) in a temporary state
folder: the example submissions of examples/submissions, each solutions/
notebook handed in as student `solution`, each released notebook handed in
untouched as student `released`, and a correct submission whose graded cell
imports TensorFlow. The tests then read the gradebook, the autograded notebooks
and the feedback.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil

import nbformat
import pytest

from tools import course

ROOT = pathlib.Path(__file__).resolve().parents[1]
SEED = 20261121
IDS = course.assignment_ids()
EXPECTED = {
    aid: json.loads((ROOT / "examples" / "submissions" / f"expected_{aid}.json").read_text())
    for aid in IDS
}
EXAMPLE_STUDENTS = sorted({s for e in EXPECTED.values() for s in e if s != "messages"})

pytestmark = pytest.mark.skipif(not IDS, reason="no assignments in solutions/")


def hand_in(state: pathlib.Path, student: str, aid: str, source: pathlib.Path) -> pathlib.Path:
    target = state / "submitted" / student / aid
    target.mkdir(parents=True, exist_ok=True)
    return pathlib.Path(shutil.copy2(source, target / f"{aid}.ipynb"))


def with_tensorflow_import(source: pathlib.Path, target: pathlib.Path) -> None:
    """A copy of a correct submission whose first solution cell imports TensorFlow."""
    nb = nbformat.read(source, as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution"))
    cell.source = "import tensorflow as tf  # a student's harmless import\n" + cell.source
    nbformat.write(nb, target)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    state = tmp_path_factory.mktemp("grading")
    for aid in IDS:
        for student in EXAMPLE_STUDENTS:
            hand_in(state, student, aid, ROOT / "examples" / "submissions" / student / aid / f"{aid}.ipynb")
        hand_in(state, "solution", aid, ROOT / "solutions" / aid / f"{aid}.ipynb")
        hand_in(state, "released", aid, ROOT / "assignments" / aid / f"{aid}.ipynb")
    tf_student = state / "submitted" / "tf_importer" / IDS[0]
    tf_student.mkdir(parents=True)
    with_tensorflow_import(ROOT / "examples" / "submissions" / "alice" / IDS[0] / f"{IDS[0]}.ipynb",
                           tf_student / f"{IDS[0]}.ipynb")
    results = course.grade(IDS, state, SEED, quiet=True)
    # read now: the regrading test below writes the file again
    problems = json.loads((state / "problems.json").read_text())
    return state, results, problems


def entry_of(graded, student: str, aid: str) -> dict:
    """The gradebook's record of one submission; a submission the grader could not grade fails with its problem."""
    _, results, problems = graded
    assert aid in results.get(student, {}), problems.get(f"{student}/{aid}", problems)
    return results[student][aid]


def test_every_submission_is_graded_without_problems(graded):
    _, results, problems = graded
    assert problems == {}
    assert sorted(results) == sorted([*EXAMPLE_STUDENTS, "solution", "released", "tf_importer"])


def test_committed_assignments_are_what_solutions_generate():
    assert course.check_release(IDS) == []


@pytest.mark.parametrize("aid", IDS)
def test_solutions_get_full_marks(graded, aid):
    entry = entry_of(graded, "solution", aid)
    failed = {g: s for g, s in entry["tests"].items() if s[0] != s[1]}
    assert entry["score"] == entry["max_score"] > 0, (failed, entry["messages"])


@pytest.mark.parametrize("aid", IDS)
def test_released_notebooks_get_zero(graded, aid):
    entry = entry_of(graded, "released", aid)
    assert entry["score"] == 0 and entry["max_score"] > 0, entry["tests"]


@pytest.mark.parametrize("aid", IDS)
@pytest.mark.parametrize("student", EXAMPLE_STUDENTS)
def test_example_submissions_get_exactly_their_expected_scores(graded, aid, student):
    expected = EXPECTED[aid][student]
    entry = entry_of(graded, student, aid)
    got = {grade_id: score for grade_id, (score, _) in entry["tests"].items()}
    assert got == pytest.approx(expected), entry["messages"]


@pytest.mark.parametrize("aid", IDS)
def test_failing_tests_show_the_diagnostic_of_the_mistake(graded, aid):
    for student, by_test in EXPECTED[aid].get("messages", {}).items():
        messages = entry_of(graded, student, aid)["messages"]
        for grade_id, fragment in by_test.items():
            assert fragment in messages.get(grade_id, ""), (student, grade_id, messages.get(grade_id))


def test_tensorflow_import_in_a_graded_cell_costs_nothing(graded):
    entry = entry_of(graded, "tf_importer", IDS[0])
    assert entry["score"] == entry["max_score"], entry["messages"]


def test_feedback_exists_and_reveals_no_hidden_tests(graded):
    state, results, _ = graded
    for student in results:
        for aid in results[student]:
            html = state / "feedback" / student / aid / f"{aid}.html"
            assert html.is_file(), html
            assert html.stat().st_size < 2_000_000
    assert course.check_feedback(state) == []


def test_grades_are_exported(graded):
    """nbgrader's CSV export holds every graded submission with the gradebook's score."""
    import csv

    state, results, _ = graded
    with (state / "grades.csv").open() as handle:
        rows = {(r["assignment"], r["student_id"]): r for r in csv.DictReader(handle)}
    for student, by_assignment in results.items():
        for aid, entry in by_assignment.items():
            row = rows[(aid, student)]
            assert float(row["score"]) == entry["score"] and float(row["max_score"]) == entry["max_score"]


def test_regrading_gives_identical_scores(graded):
    """bob: partly wrong in every assignment, his seeded training in a3 included. (A correct submission's
    regrade is tests/test_grading_corpus.py's c01_correct; alice's 6-epoch training would double this test.)"""
    state, _, _ = graded
    students = ["bob"]
    again = course.grade(IDS, state, SEED, quiet=True, students=students)
    assert sorted(again) == students
    for student in students:
        for aid in IDS:
            assert again[student][aid]["tests"] == entry_of(graded, student, aid)["tests"], (student, aid)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands student code to another uid")
def test_a_checkout_the_sandbox_cannot_reach_is_refused_before_any_student(tmp_path, monkeypatch):
    """Where no mount namespace can show a closed folder to the sandbox's uid (a container without
    CAP_SYS_ADMIN), grading stops before anything is graded, naming the folder and the fix."""
    from utils.grading import sandbox

    monkeypatch.setattr(sandbox, "_ns_probe", {"ok": False})
    closed = tmp_path / "private"
    checkout = closed / "course"
    checkout.mkdir(parents=True)
    closed.chmod(0o700)
    monkeypatch.setattr(course, "ROOT", checkout)
    state = tmp_path / "state"
    with pytest.raises(course.PipelineError) as caught:
        course.grade(["a1_numpy_convolution"], state, seed=1, quiet=True)
    message = str(caught.value)
    assert message.startswith(f"cannot grade here: the sandbox's uid cannot reach {checkout}: ")
    closed_dirs = [str(d) for d in reversed(checkout.parents) if not os.stat(d).st_mode & 0o001]
    assert closed_dirs[-1] == str(closed)  # and maybe pytest's own root above it
    assert f"{', '.join(closed_dirs)} {'is' if len(closed_dirs) == 1 else 'are'} closed to other users" in message
    assert f"(chmod o+x {' '.join(closed_dirs)}, or clone the course elsewhere" in message
    assert not state.exists()
