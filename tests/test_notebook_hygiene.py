"""Committed notebooks follow the course conventions (read as JSON; no kernel started).

Lectures are committed executed, small, and free of stored errors and warnings;
student assignments are committed clean.
"""

from __future__ import annotations

import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
MAX_BYTES = 3_000_000


def notebooks(folder: str) -> list[pathlib.Path]:
    return sorted(p for p in (ROOT / folder).glob("**/*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def code_cells(path: pathlib.Path) -> list[dict]:
    return [c for c in json.loads(path.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]


LECTURES = notebooks("lectures")
ASSIGNMENTS = notebooks("assignments")


def ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


@pytest.mark.parametrize("path", LECTURES, ids=ids(LECTURES))
def test_lecture_is_small(path):
    assert path.stat().st_size < MAX_BYTES, f"{path.name} is {path.stat().st_size / 1e6:.1f} MB"


@pytest.mark.parametrize("path", LECTURES, ids=ids(LECTURES))
def test_lecture_is_committed_executed_in_order(path):
    cells = code_cells(path)
    counts = [c["execution_count"] for c in cells if c["source"].strip()]
    assert all(n is not None for n in counts), f"{path.name} has unexecuted code cells"
    assert counts == sorted(counts) and len(set(counts)) == len(counts), (
        f"{path.name} was not run top to bottom in one kernel: execution counts {counts}"
    )


@pytest.mark.parametrize("path", LECTURES, ids=ids(LECTURES))
def test_lecture_outputs_hold_no_error_or_warning(path):
    for index, cell in enumerate(code_cells(path)):
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", f"{path.name} code cell {index}: stored error"
            if output.get("name") == "stderr":
                text = "".join(output["text"])
                assert "Warning" not in text and "WARNING" not in text, (
                    f"{path.name} code cell {index}: warning in output: {text[:200]}"
                )


@pytest.mark.parametrize("path", LECTURES, ids=ids(LECTURES))
def test_lecture_has_colab_badge_and_checked_outputs(path):
    text = path.read_text(encoding="utf-8")
    assert "colab.research.google.com/github/" in text, f"{path.name} has no Open-in-Colab badge"
    assert any("# NBVAL_CHECK_OUTPUT" in c["source"] for c in code_cells(path)), (
        f"{path.name} has no # NBVAL_CHECK_OUTPUT cell: nothing it states is checked"
    )


@pytest.mark.parametrize("path", ASSIGNMENTS, ids=ids(ASSIGNMENTS))
def test_assignment_is_committed_clean(path):
    for index, cell in enumerate(code_cells(path)):
        assert not cell.get("outputs") and cell.get("execution_count") is None, (
            f"{path.name} code cell {index} has outputs: student notebooks are committed clean"
        )
