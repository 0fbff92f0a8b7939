"""tools.autograde's coordinator side: records are validated and committed into a real nbgrader gradebook."""

from __future__ import annotations

import copy
import pathlib

import pytest
from nbgrader.api import Gradebook

from tools import autograde, course

AID = "a1_numpy_convolution"
POINTS = {"zero_pad_tests": 1.0, "conv_single_step_tests": 1.0, "conv_output_size_tests": 1.0,
          "conv_forward_tests": 3.0, "conv_param_count_tests": 1.0, "pool_forward_tests": 2.0,
          "conv_backward_tests": 3.0, "pool_backward_tests": 2.0}
SOLUTIONS = ["zero_pad", "conv_single_step", "conv_output_size", "conv_forward", "conv_param_count",
             "pool_forward", "conv_backward", "pool_backward"]


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """A state folder whose gradebook knows the assignment (nbgrader generate_assignment, for real)."""
    state = tmp_path_factory.mktemp("state")
    course.Nbgrader(state).run("generate_assignment", AID, "--force", env=course.grading_env(1))
    return state


def record(student: str, failing_verdicts=(), notebook_ok=True) -> dict:
    """A record as grade_submission returns it: the notebook run passed everything (a rigged run)."""
    return {
        "assignment": AID, "student": student, "notebook": AID, "timestamp": "2026-11-20T10:00:00",
        "intake": {"status": "repaired", "messages": ["you added 1 cell: it was dropped"],
                   "items": {gid: {"status": "ok", "message": ""} for gid in SOLUTIONS}},
        "notebook_run": {"ok": notebook_ok, "message": "ran in 1.0 s"},
        "grades": {gid: {"auto_score": points, "max_score": points} for gid, points in POINTS.items()},
        "comments": dict.fromkeys(SOLUTIONS),
        "verdicts": {gid: {"score": 0.0 if gid in failing_verdicts else points, "points": points,
                           "passed": gid not in failing_verdicts,
                           "message": "zero_pad: output is wrong" if gid in failing_verdicts else ""}
                     for gid, points in POINTS.items()},
        "functions": {"zero_pad_tests": ["zero_pad"], "conv_forward_tests": ["conv_forward", "zero_pad"],
                      **{gid: [gid.removesuffix("_tests")] for gid in POINTS
                         if gid not in ("zero_pad_tests", "conv_forward_tests")}},
        "autograded": "/nonexistent", "scratch": "/nonexistent",
    }


def rows(db_url: str, student: str):
    with Gradebook(db_url) as gradebook:
        submission = gradebook.find_submission(AID, student)
        grades = {g.name: (g.auto_score, g.manual_score, g.score, g.needs_manual_grade)
                  for nb in submission.notebooks for g in nb.grades}
        comments = {c.name: c.manual_comment for nb in submission.notebooks for c in nb.comments}
        count = len(gradebook.find_student(student).submissions)
        return float(submission.score), grades, comments, count


def test_the_verifier_overrides_the_notebook_run_with_a_comment(released):
    db_url = course.Nbgrader(released).db_url
    autograde.commit(record("mallory", failing_verdicts={"zero_pad_tests"}), db_url, released)
    score, grades, comments, count = rows(db_url, "mallory")
    assert score == 13.0 and count == 1
    assert grades["zero_pad_tests"] == (1.0, 0.0, 0.0, False)       # auto 1, overridden to 0
    assert grades["pool_forward_tests"] == (2.0, None, 2.0, False)  # verdict agrees: no override
    assert comments["zero_pad"].startswith(autograde.VERIFIED_MARK)
    assert "zero_pad_tests: 0 of 1 points from the trusted check (the notebook run gave 1.0)" in comments["zero_pad"]
    assert "zero_pad: output is wrong" in comments["zero_pad"]
    assert "you added 1 cell" in comments["zero_pad"]                # file-level intake messages: first cell
    assert comments["conv_forward"] is None                          # nothing to say there


def test_committing_again_leaves_one_record_with_the_same_values(released):
    db_url = course.Nbgrader(released).db_url
    first = record("trent", failing_verdicts={"conv_forward_tests"})
    autograde.commit(first, db_url, released)
    before = rows(db_url, "trent")
    autograde.commit(copy.deepcopy(first), db_url, released)
    assert rows(db_url, "trent") == before
    assert before[0] == 11.0 and before[3] == 1


def test_an_instructors_override_survives_a_regrade(released):
    db_url = course.Nbgrader(released).db_url
    autograde.commit(record("peggy"), db_url, released)
    with Gradebook(db_url) as gradebook:
        grade = gradebook.find_grade("conv_backward_tests", AID, AID, "peggy")
        grade.manual_score = 1.5
        gradebook.db.commit()
    autograde.commit(record("peggy"), db_url, released)
    _, grades, _, _ = rows(db_url, "peggy")
    assert grades["conv_backward_tests"] == (3.0, 1.5, 1.5, True)  # kept, flagged for a look


def test_records_that_do_not_fit_are_refused(released):
    db_url = course.Nbgrader(released).db_url
    bad = record("oscar")
    bad["verdicts"]["zero_pad_tests"]["score"] = 5.0
    with pytest.raises(ValueError, match="verdict 'zero_pad_tests' does not fit its grade"):
        autograde.commit(bad, db_url, released)
    missing = record("oscar")
    del missing["grades"]
    with pytest.raises(ValueError, match="'grades' must be a dict"):
        autograde.commit(missing, db_url, released)
    with Gradebook(db_url) as gradebook:
        assert "oscar" not in {s.id for s in gradebook.students}


def test_kernel_seed_is_stable_per_submission_and_reveals_nothing():
    seeds = {autograde.kernel_seed(20261121, AID, s) for s in ("alice", "bob", "carol")}
    assert len(seeds) == 3 and 20261121 not in seeds
    assert autograde.kernel_seed(20261121, AID, "alice") == autograde.kernel_seed(20261121, AID, "alice")
    assert autograde.kernel_seed(1, AID, "alice") != autograde.kernel_seed(2, AID, "alice")


def test_cap_outputs_cuts_floods_and_big_images(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print('x' * 10**6)")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="x" * 10**6),
                    nbformat.v4.new_output("display_data", data={"image/png": "A" * 10**6, "text/plain": "<Figure>"})]
    nb.cells.append(cell)
    path = pathlib.Path(tmp_path / "flood.ipynb")
    nbformat.write(nb, path)
    path.chmod(0o444)  # as nbgrader leaves an autograded notebook (a grader that is not root cannot write it)
    assert autograde.cap_outputs(path) == 2
    assert path.stat().st_mode & 0o7777 == 0o444 and sorted(p.name for p in tmp_path.iterdir()) == ["flood.ipynb"]
    again = nbformat.read(path, as_version=4)
    text = again.cells[0].outputs[0]["text"]
    assert len(text) < autograde.MAX_OUTPUT_TEXT + 100 and text.endswith("characters]")
    assert "image/png" not in again.cells[0].outputs[1]["data"]
    assert path.stat().st_size < 100_000


def test_cap_outputs_removes_active_html_and_bounds_the_total(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    html = nbformat.v4.new_code_cell("display(HTML(...))")
    html.outputs = [nbformat.v4.new_output("display_data", data={"text/html": "<script>steal()</script>",
                                                                 "text/plain": "<IPython.core.display.HTML>"})]
    many = nbformat.v4.new_code_cell("for i in range(500): print(...)")
    many.outputs = [nbformat.v4.new_output("stream", name="stdout", text="y" * 19_000) for _ in range(500)]
    nb.cells += [html, many]
    path = pathlib.Path(tmp_path / "many.ipynb")
    nbformat.write(nb, path)
    autograde.cap_outputs(path)
    again = nbformat.read(path, as_version=4)
    assert again.cells[0].outputs[0]["data"] == {"text/plain": "<IPython.core.display.HTML>"}
    assert path.stat().st_size < autograde.MAX_NOTEBOOK_OUTPUT + 100_000
