"""Run a few code cells in a real kernel (nbclient), as a notebook is executed and saved."""

from __future__ import annotations

import pathlib

import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[1]


def execute_cells(*sources: str) -> nbformat.NotebookNode:
    """A new notebook of these code cells, executed top to bottom from the repository root."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    return nb
