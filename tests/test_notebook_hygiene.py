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
    cells = [c for c in json.loads(path.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]
    for cell in cells:  # nbformat stores multi-line sources as lists of lines
        if isinstance(cell["source"], list):
            cell["source"] = "".join(cell["source"])
    return cells


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


COLAB = "https://colab.research.google.com/github/cnn-course/cnn-course/blob/main/"


def setup_cell_from_conventions() -> str:
    """The setup cell as lectures/README.md prescribes it (the one shared code cell)."""
    text = (ROOT / "lectures" / "README.md").read_text(encoding="utf-8")
    block = text.split("```python\n", 1)[1].split("```", 1)[0]
    return "\n".join(line[3:] if line.startswith("   ") else line for line in block.splitlines())


@pytest.mark.parametrize("path", LECTURES, ids=ids(LECTURES))
def test_lecture_header_has_its_own_colab_badge_then_the_setup_cell(path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    header = "".join(cells[0]["source"])
    assert cells[0]["cell_type"] == "markdown" and header.startswith("# ")
    badge = COLAB + str(path.relative_to(ROOT))
    assert badge in header, f"{path.name}: the first cell needs the Colab badge linking {badge}"
    first_code = next(c for c in cells if c["cell_type"] == "code")
    assert "".join(first_code["source"]).strip() == setup_cell_from_conventions().strip(), (
        f"{path.name}: the first code cell must be the setup cell of lectures/README.md"
    )


@pytest.mark.parametrize("path", LECTURES, ids=ids(LECTURES))
def test_lecture_checks_its_key_outputs(path):
    assert any("# NBVAL_CHECK_OUTPUT" in c["source"] for c in code_cells(path)), (
        f"{path.name} has no # NBVAL_CHECK_OUTPUT cell: nothing it states is checked"
    )


@pytest.mark.parametrize("path", ASSIGNMENTS, ids=ids(ASSIGNMENTS))
def test_assignment_is_committed_clean(path):
    for index, cell in enumerate(code_cells(path)):
        assert not cell.get("outputs") and cell.get("execution_count") is None, (
            f"{path.name} code cell {index} has outputs: student notebooks are committed clean"
        )
