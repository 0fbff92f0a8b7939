"""nbgrader preprocessors for feedback: nothing of the hidden tests reaches a student.

``RedactTestTracebacks``: IPython's traceback of a failing test cell quotes the
lines around the failing call, which in the autograded notebook include the
hidden tests. Feedback (nbgrader's ``GenerateFeedback``, configured in
nbgrader_config.py) therefore shows a failed test cell's error as
``ErrorName: message`` only; the message is written by the course's checks and
names the mistake without hidden inputs or reference values.

``RedactHiddenTests``: a student's own cell can print the hidden tests too (IPython's
``In`` history holds every executed cell, an interrupted cell's traceback quotes its
source). Any output of any cell that holds a line of the assignment's hidden tests
(read from ``solutions/<assignment>``) or one of nbgrader's markers is replaced by
a one-line notice.
"""

from __future__ import annotations

import functools
import json
import pathlib
import re

import nbformat
from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

ROOT = pathlib.Path(__file__).resolve().parents[1]
MARKERS = ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "hidden=True")
NOTICE = "[output removed from the feedback: it quoted the hidden tests]\n"
_HIDDEN_BLOCK = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.DOTALL)


class RedactTestTracebacks(Preprocessor):
    # nbconvert's preprocessors are off unless enabled; nbgrader registers these by name, without enabling
    enabled = Bool(True).tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade"):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
        return cell, resources


@functools.lru_cache(maxsize=16)
def hidden_lines(assignment: str) -> tuple[str, ...]:
    """The stripped lines (8 characters or more) of the hidden tests of ``solutions/<assignment>``."""
    lines = set()
    for path in (ROOT / "solutions" / assignment).glob("*.ipynb"):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            for block in _HIDDEN_BLOCK.findall(source):
                lines.update(line.strip() for line in block.splitlines() if len(line.strip()) >= 8)
    return tuple(sorted(lines))


def _text(output) -> str:
    parts = [output.get("text", ""), output.get("evalue", ""), *output.get("traceback", [])]
    for value in output.get("data", {}).values():
        parts.append("".join(value) if isinstance(value, list) else str(value))
    return "\n".join(p if isinstance(p, str) else "".join(p) for p in parts)


def quotes_hidden_tests(text: str, lines: tuple[str, ...]) -> bool:
    return any(marker in text for marker in MARKERS) or any(line in text for line in lines)


class RedactHiddenTests(Preprocessor):
    enabled = Bool(True).tag(config=True)

    def preprocess(self, nb, resources):
        assignment = resources.get("nbgrader", {}).get("assignment", "")
        self._lines = hidden_lines(assignment) if assignment else ()
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code":
            for i, output in enumerate(cell.get("outputs", [])):
                if quotes_hidden_tests(_text(output), self._lines):
                    cell.outputs[i] = nbformat.v4.new_output("stream", name="stdout", text=NOTICE)
        return cell, resources
