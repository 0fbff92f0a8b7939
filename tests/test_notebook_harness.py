"""The notebook validation harness catches drift and ignores sanitized noise.

Each case copies the fixture notebook tests/notebooks/harness_check.ipynb,
edits one stored output, and runs pytest with the course's nbval options in a
subprocess, exactly as `make test` validates lectures/.
"""

from __future__ import annotations

import copy
import pathlib
import subprocess
import sys

import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "notebooks" / "harness_check.ipynb"
SANITIZER = ROOT / "tests" / "nbval_sanitize.cfg"

CHECKED_SUM, CHECKED_TIMING, UNCHECKED = 1, 2, 3  # cell indices in the fixture


def run_nbval(notebook: nbformat.NotebookNode, tmp_path: pathlib.Path):
    path = tmp_path / "copy.ipynb"
    nbformat.write(notebook, path)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # keep pytest from finding other configs
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", f"--nbval-sanitize-with={SANITIZER}",
         "-p", "no:cacheprovider", "-q", str(path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    return result.returncode, result.stdout + result.stderr


def set_stdout(notebook, index: int, text: str):
    edited = copy.deepcopy(notebook)
    edited.cells[index].outputs[0]["text"] = text
    return edited


@pytest.fixture(scope="module")
def fixture_notebook():
    return nbformat.read(FIXTURE, as_version=4)


def test_fixture_marks_the_cells_this_test_relies_on(fixture_notebook):
    cells = fixture_notebook.cells
    assert cells[CHECKED_SUM].source.startswith("# NBVAL_CHECK_OUTPUT")
    assert cells[CHECKED_TIMING].source.startswith("# NBVAL_CHECK_OUTPUT")
    assert "NBVAL_CHECK_OUTPUT" not in cells[UNCHECKED].source
    assert cells[CHECKED_SUM].outputs[0]["text"] == "25 (4, 4)\n"


def test_unchanged_notebook_passes(fixture_notebook, tmp_path):
    code, log = run_nbval(fixture_notebook, tmp_path)
    assert code == 0, log
    assert "3 passed" in log, log  # the three code cells


def test_changed_checked_output_fails(fixture_notebook, tmp_path):
    drifted = set_stdout(fixture_notebook, CHECKED_SUM, "26 (4, 4)\n")
    code, log = run_nbval(drifted, tmp_path)
    assert code == 1, log
    assert "1 failed" in log and "26 (4, 4)" in log and "25 (4, 4)" in log, log


def test_sanitizer_ignores_addresses_timings_and_devices(fixture_notebook, tmp_path):
    other_machine = set_stdout(
        fixture_notebook, CHECKED_TIMING,
        "<__main__.Layer object at 0x7f00deadbeef> on cuda:0 took 12.345 s\n",
    )
    code, log = run_nbval(other_machine, tmp_path)
    assert code == 0, log


def test_sanitizer_does_not_hide_other_words(fixture_notebook, tmp_path):
    wrong_text = set_stdout(
        fixture_notebook, CHECKED_TIMING,
        "<__main__.Layer object at 0x7fa60c581f50> on cpu took 0.000 s (twice)\n",
    )
    code, log = run_nbval(wrong_text, tmp_path)
    assert code == 1, log


def test_unchecked_cell_may_differ(fixture_notebook, tmp_path):
    code, log = run_nbval(set_stdout(fixture_notebook, UNCHECKED, "something else\n"), tmp_path)
    assert code == 0, log
