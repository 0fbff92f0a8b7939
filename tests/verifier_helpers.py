"""Helpers shared by the verifier's tests (test_grading_verify*.py): one verifier per assignment, verdict views.

Not a test module (no ``test_`` prefix); the test files import it by name (pytest puts tests/ on the path).
"""

from __future__ import annotations

import contextlib
import os
import pathlib

from utils.grading import verify

ROOT = pathlib.Path(__file__).resolve().parents[1]
SEED = "20261121"


@contextlib.contextmanager
def trusted_verifier(aid: str, *, wall_seconds: float, budget_seconds: float):
    """A Verifier of ``aid`` with the grader's settings (tools.autograde.VERIFIED), recorded under SEED."""
    from tools.autograde import VERIFIED

    old = os.environ.get("CNN_COURSE_GRADER_SEED")
    os.environ["CNN_COURSE_GRADER_SEED"] = SEED
    try:
        settings = {k: v for k, v in VERIFIED[aid].items() if k != "wall_seconds"}
        assignment = verify.assignment_from_notebook(ROOT / "solutions" / aid / f"{aid}.ipynb", **settings)
        yield verify.Verifier(assignment, wall_seconds=wall_seconds, budget_seconds=budget_seconds,
                              hidden_paths=[ROOT / "solutions", ROOT / "tests", ROOT / ".git"])
    finally:
        if old is None:
            os.environ.pop("CNN_COURSE_GRADER_SEED", None)
        else:
            os.environ["CNN_COURSE_GRADER_SEED"] = old


def example_sources(student: str, aid: str) -> dict[str, str]:
    """The solution cells (grade_id -> source) of an example submission in examples/submissions."""
    import nbformat

    nb = nbformat.read(ROOT / "examples" / "submissions" / student / aid / f"{aid}.ipynb", as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("solution")}


def verify_code(verifier, tmp_path: pathlib.Path, code: dict[str, str]):
    """The verdicts of ``code`` (solution grade_id -> source), in a fresh scratch folder under ``tmp_path``."""
    scratch = tmp_path / f"scratch{len(list(tmp_path.iterdir()))}"
    scratch.mkdir()
    return verifier.verify(code, scratch)


def scores(verdicts) -> dict[str, float]:
    return {gid: v.score for gid, v in verdicts.items()}


def failing(verdicts) -> set[str]:
    return {gid for gid, v in verdicts.items() if not v.passed}
