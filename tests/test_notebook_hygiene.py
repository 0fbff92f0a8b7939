"""Committed notebooks follow the course conventions (read as JSON; no kernel started).

Lectures are committed executed, small, and free of stored errors, warnings and debris, and their prose
states only key figures (percentages, counts, metrics) that one of their code cells printed; student
assignments are committed clean.
"""

from __future__ import annotations

import ast
import json
import pathlib
import re

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


# tqdm's text form: "desc:  42%|####      | 5/12 [...]"
PROGRESS_BAR = re.compile(r"(\d+)%\|[^|]*\|\s*(\d+)/(\d+)")
# the plain-text forms of ipywidgets objects (what GitHub shows for a widget saved without a fallback)
WIDGET_REPR = re.compile(r"^(interactive|HBox|VBox|Box|IntSlider|FloatSlider|Dropdown|Output|Button|Tab|"
                         r"Accordion|Checkbox|ToggleButtons|Play|Label|HTML|Text|IntProgress|FloatProgress)\(")


def _visible(mime: str, value) -> bool:
    """Whether a renderer shows something for this part of an output (a widget's view needs a kernel)."""
    if mime == "application/vnd.jupyter.widget-view+json":
        return False
    text = "".join(value) if isinstance(value, list) else value
    if not isinstance(text, str):
        return bool(text)
    if mime == "text/html":
        text = re.sub(r"<[^>]+>", "", text)
    return bool(text.strip())


def debris(cells: list[dict]) -> list[str]:
    """What a reader without a kernel would see that is not a result: one line per finding.

    A progress bar saved unfinished, a widget's raw plain-text form, anything on stderr, an output with
    nothing to show (no data, blank text, HTML without text such as an empty ``<pre></pre>`` box).
    """
    found = []
    for index, cell in enumerate(cells):
        for output in cell.get("outputs", []):
            kind = output["output_type"]
            if kind == "stream":
                if output.get("name") == "stderr":
                    found.append(f"code cell {index}: stderr output: {''.join(output.get('text', ''))[:80]!r}")
                continue
            if kind not in ("display_data", "execute_result"):
                continue
            data = output.get("data", {})
            plain = "".join(data.get("text/plain", ""))
            if not any(_visible(mime, value) for mime, value in data.items()):
                found.append(f"code cell {index}: an output with nothing to show ({sorted(data)})")
                continue
            bar = PROGRESS_BAR.search(plain)
            if bar and bar.group(2) != bar.group(3):
                found.append(f"code cell {index}: a progress bar saved unfinished: {plain[:80]!r}")
            if WIDGET_REPR.match(plain):
                found.append(f"code cell {index}: a widget saved as its raw repr: {plain[:80]!r}")
    return found


@pytest.mark.parametrize("path", LECTURES, ids=ids(LECTURES))
def test_lecture_outputs_hold_no_debris(path):
    assert debris(code_cells(path)) == [], path.name


def _output(kind: str, **fields) -> dict:
    return {"output_type": kind, **fields}


@pytest.mark.parametrize("output, finding", [
    (_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "1"},
                                   "text/plain": "PyTorch:   0%|          | 0/12 [00:00<?, ?epoch/s]"}),
     "a progress bar saved unfinished"),
    (_output("display_data", data={"text/plain": "runs:  50%|#####     | 3/6 [00:30<00:30, 10.0s/run]"}),
     "a progress bar saved unfinished"),
    (_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "2"},
                                   "text/plain": "interactive(children=(IntSlider(value=7, description='n'),))"}),
     "a widget saved as its raw repr"),
    (_output("stream", name="stderr", text="some library's notice\n"), "stderr output"),
    (_output("display_data", data={"text/plain": ""}), "an output with nothing to show"),
    (_output("display_data", data={"text/html": "<pre style=\"white-space:pre\"></pre>\n", "text/plain": ""}),
     "an output with nothing to show"),
    (_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "3"}}),
     "an output with nothing to show"),
])
def test_debris_check_finds_each_kind(output, finding):
    cells = [{"cell_type": "code", "source": "x", "outputs": [output]}]
    [line] = debris(cells)
    assert line.startswith(f"code cell 0: {finding}"), line


def test_debris_check_passes_finished_bars_and_widgets_with_a_fallback():
    cells = [{"cell_type": "code", "source": "x", "outputs": [
        _output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "1"},
                                      "text/plain": "PyTorch: 100%|##########| 12/12 [00:25<00:00, 2.1s/epoch]"}),
        _output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "2"},
                                      "text/plain": "[sliders for explore(n, f): run this notebook in Jupyter]"}),
        _output("stream", name="stdout", text="accuracy 98.5%\n"),
        _output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure size 640x480>"}),
    ]}]
    assert debris(cells) == []


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


def defined_names(path: pathlib.Path) -> set[str]:
    """Names a notebook's code cells define with ``def``/``async def``/``class``, at any depth.

    Functions nested in functions, loops or ``if`` blocks count; methods (functions directly in a
    class body, such as ``__init__`` and ``forward``) do not: their names belong to their class,
    whose own name counts. IPython magics (``%``, ``!``) are turned into Python first.
    """
    from IPython.core.inputtransformer2 import TransformerManager

    names: set[str] = set()

    def visit(node, in_class_body=False):
        for child in ast.iter_child_nodes(node):
            is_def = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            if is_def and not (in_class_body and not isinstance(child, ast.ClassDef)):
                names.add(child.name)
            visit(child, in_class_body=isinstance(child, ast.ClassDef))

    for index, cell in enumerate(code_cells(path)):
        try:
            tree = ast.parse(TransformerManager().transform_cell(cell["source"]))
        except SyntaxError as error:
            pytest.fail(f"{path.name} code cell {index} does not parse: {error}")
        visit(tree)
    return names


def duplicate_definitions(paths) -> dict[str, list[str]]:
    """``{name: [notebook, ...]}`` for every name that more than one of ``paths`` defines."""
    where: dict[str, list[str]] = {}
    for path in paths:
        for name in defined_names(path):
            where.setdefault(name, []).append(path.name)
    return {name: files for name, files in sorted(where.items()) if len(files) > 1}


def test_no_function_is_defined_in_more_than_one_lecture():
    # lectures/README.md: reusable code lives in `utils` with a test; no function is defined in more
    # than one notebook. Unrelated helpers that happen to share a name must be renamed.
    duplicates = duplicate_definitions(LECTURES)
    assert not duplicates, "defined in more than one lecture (move it to utils with a test, or rename it):\n" + (
        "\n".join(f"  {name}: {', '.join(files)}" for name, files in duplicates.items())
    )


def test_duplicate_definition_check_sees_nested_defs_and_skips_methods(tmp_path):
    def notebook(name, *sources):
        cells = [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": s}
                 for s in sources]
        path = tmp_path / name
        path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
        return path

    a = notebook("01_a.ipynb", "%matplotlib inline\ndef evaluate(m, x, y):\n    return 0\n",
                 "class Net:\n    def __init__(self):\n        pass\n\n    def forward(self, x):\n        return x\n",
                 "def make_cnn():\n    def block(c):\n        return [c]\n    return block(1)\n")
    b = notebook("02_b.ipynb", "if True:\n    def evaluate(model, x, y):\n        return 1\n",
                 "class Other:\n    def __init__(self):\n        pass\n\n    def forward(self, x):\n        return x\n",
                 "def fit():\n    def block(c):\n        return c\n    return block\n")
    assert defined_names(a) == {"evaluate", "Net", "make_cnn", "block"}
    assert duplicate_definitions([a, b]) == {"block": ["01_a.ipynb", "02_b.ipynb"],
                                             "evaluate": ["01_a.ipynb", "02_b.ipynb"]}


@pytest.mark.parametrize("path", ASSIGNMENTS, ids=ids(ASSIGNMENTS))
def test_assignment_is_committed_clean(path):
    for index, cell in enumerate(code_cells(path)):
        assert not cell.get("outputs") and cell.get("execution_count") is None, (
            f"{path.name} code cell {index} has outputs: student notebooks are committed clean"
        )


# Key figures in prose: a percentage, a count with thousands separators, a decimal after a metric's name.
# Each must be printed by a code cell of the same notebook (math and inline code are not prose).
_PERCENT = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s?%")
_COUNT = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+)(?![\d,]*\d)")
_METRIC = re.compile(r"\b(?:accuracy|Dice|IoU|loss|error rate)\b[^.\n$]{0,40}?(?<![\w.])(\d*\.\d+)(?![\w.]\d|\d|\s?%)",
                     re.IGNORECASE)
_NOT_PROSE = re.compile(r"\$\$.*?\$\$|\$[^$\n]*\$|`[^`\n]*`|<[^>\n]*>", re.DOTALL)


def _printed_text(cells: list[dict]) -> str:
    """Everything the code cells show as text: streams and the text forms of rich outputs."""
    found = []
    for cell in cells:
        for output in cell.get("outputs", []) if cell["cell_type"] == "code" else []:
            if "text" in output:
                found.append("".join(output["text"]))
            for mime, value in output.get("data", {}).items():
                if mime.startswith("text/"):
                    found.append("".join(value) if isinstance(value, list) else value)
    return "\n".join(found)


def _spellings(kind: str, figure: str) -> set[str]:
    """How a code cell may print the figure: 61,706 as 61706 or 61_706; 97.3% as 0.973."""
    digits = figure.replace(",", "")
    spellings = {figure, digits}
    if kind == "count":
        spellings |= {f"{int(digits):,}", f"{int(digits):_}"}
    if kind == "percentage":
        decimals = len(digits.split(".")[1]) if "." in digits else 0
        spellings.add(f"{float(digits) / 100:.{decimals + 2}f}")
    return spellings


def unprinted_figures(cells: list[dict]) -> list[str]:
    """Key figures of the markdown cells that no code cell printed: one line per finding."""
    printed = _printed_text(cells)
    found = []
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "markdown":
            continue
        prose = _NOT_PROSE.sub(" ", "".join(cell["source"]))
        figures = [("percentage", m.group(1)) for m in _PERCENT.finditer(prose)]
        figures += [("count", m.group(1)) for m in _COUNT.finditer(prose)]
        figures += [("metric", m.group(1)) for m in _METRIC.finditer(prose)]
        for kind, figure in figures:
            if not any(re.search(rf"(?<!\d){re.escape(s)}(?!\d)", printed) for s in _spellings(kind, figure)):
                found.append(f"cell {index}: the {kind} {figure} is printed by no code cell")
    return found


@pytest.mark.parametrize("path", LECTURES, ids=ids(LECTURES))
def test_lecture_prose_states_only_printed_figures(path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    assert unprinted_figures(cells) == [], path.name


def _markdown(text: str) -> dict:
    return {"cell_type": "markdown", "source": text}


def _printing(text: str) -> dict:
    return {"cell_type": "code", "source": "print(...)", "outputs": [_output("stream", name="stdout", text=text)]}


@pytest.mark.parametrize("prose, printed, finding", [
    ("The network reaches 99.0% on the test set.", "test accuracy 98.62%\n", "the percentage 99.0"),
    ("LeNet-5 has 61,706 parameters.", "total 60,850\n", "the count 61,706"),
    ("It reaches a Dice of 0.91 on the test masks.", "Dice 0.87\n", "the metric 0.91"),
    ("Accuracy: 97.3% here, 61,706 weights.", "accuracy 0.973, 61706 weights\n", None),
    ("The kernel is $3 \\times 3$, `Dense(1,024)`, <img width=\"1,200\"> and $50\\%$ or $$1,024$$.", "", None),
])
def test_figure_check_finds_each_unprinted_kind(prose, printed, finding):
    found = unprinted_figures([_markdown(prose), _printing(printed)])
    assert found == ([f"cell 0: {finding} is printed by no code cell"] if finding else []), found
