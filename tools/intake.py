"""Submission intake: detect notebook surgery before anything runs, rebuild the notebook from the master.

A student hands in ``submitted/<student>/<assignment>/<assignment>.ipynb``. That
file is untrusted: cells may be deleted, duplicated, retyped (code <-> Markdown)
or stripped of their nbgrader metadata, locked and test cells edited, the
kernelspec changed, the notebook renamed, missing or joined by others, the JSON
truncated, not UTF-8, of another nbformat version, or enormous. nbgrader itself
skips cells that lost their metadata and gives misleading errors for duplicated
ones (nbgrader #1083), so the grader never runs the student's file. Instead:

* the instructor's **master** copy (the released notebook
  ``assignments/<a>/<a>.ipynb``, which carries the nbgrader metadata) defines the
  graded items: one :class:`Item` per solution cell, keyed by its ``grade_id``.
  The student's metadata is never trusted for this;
* the student's file is only a source of **code text for the solution cells**;
* everything else (locked cells, test cells, Markdown, kernelspec) comes from
  the master. The result, :attr:`Intake.notebook`, is a deep copy of the master
  whose solution cells hold the student's code, with every output cleared.

Every problem with the student's file becomes a status and a message (one
sentence for the student and the instructor); :func:`read_submission` never
raises on student input. It raises ``ValueError`` only for bad instructor
input: a missing or unreadable master, a master without solution cells or with
a ``grade_id`` used twice, a bad ``max_bytes``.

Rules
-----
**Which file.** The notebook is ``<folder>/<master name>`` (the master's file
name, ``<assignment>.ipynb``). Other ``*.ipynb`` files next to it are ignored,
with a message naming them. If it is absent: exactly one other ``*.ipynb`` ->
that one is used ("renamed"); several -> the one whose cells match the master
best (most master ``grade_id`` s plus master cell ids found; ties go to the
first name in sorted order; only the first :data:`MAX_CANDIDATES` names are
read) is used and the others are named as ignored.
Names starting with ``.`` (editor and checkpoint files) and subfolders are not
looked at. No folder, or no notebook in it -> status ``"missing"``: every item
is the master's template.

**Reading the file.** Only a regular file is read (a symbolic link is not
followed: it could point at the solutions or the gradebook). A file larger than
``max_bytes`` (default :data:`MAX_NOTEBOOK_BYTES`, 20 MiB) is not read at all:
huge files are nearly always embedded outputs, and one would otherwise be read
and parsed on every re-grade; the message names the size and the cap and tells
the student to clear the outputs. The bytes must be strict UTF-8 (a leading BOM
is accepted), valid JSON, a JSON object with ``"nbformat": 4`` and a list of
``"cells"``; any other metadata may be missing or odd. A file that fails any of
these is ``"malformed"``: the message says what is wrong (byte offset of the
bad UTF-8, position of the JSON error, the nbformat version found) and every
item is graded as the template (item status ``"unreadable"``).

**Finding each solution cell.** For every solution cell of the master
(``metadata.nbgrader.solution`` true), in this order of evidence:

1. student cells whose ``metadata.nbgrader.grade_id`` is that ``grade_id``;
2. else student cells without a known ``grade_id`` whose cell ``id`` equals the
   master cell's (nbformat 4.5 ids are copied at release) -> ``"metadata_stripped"``;
3. else student cells not claimed by steps 1-2 (for any master cell) whose
   source, parsed with :mod:`ast`, defines at top level a function or class the
   master's template defines (``def conv_forward(``) -> ``"metadata_stripped"``
   (code cell) or ``"retyped"`` (Markdown or raw cell). Lines starting with
   ``%`` or ``!`` (IPython magics) do not stop the parse;
4. else ``"missing"``: the master's template is graded.

When several cells qualify at a step, the **last code cell** among them is
used (what running the notebook top to bottom would leave defined) and the item
is ``"duplicated"``; the message says which cell was used and that the other
copies are ignored. When none of them is a code cell, the last one is used as
code and the item is ``"retyped"``: a code cell turned into Markdown keeps its
text, which is graded as code. A cell whose source is not text is
``"unreadable"`` (template graded). Sources given as lists of lines are joined.
Sources are made encodable (lone surrogates replaced) so the rebuilt notebook
can always be written.

**Other cells.** Locked and test cells (master cells with nbgrader metadata and
no solution flag) always come from the master. They are found in the student's
file by ``grade_id``, else by cell id; a copy whose text differs gives one
message per cell, ``locked cell `x` was edited; the original was restored``
(the text itself, which may be a hidden test, is never quoted); deleted and
duplicated locked cells are reported too. Master cells without nbgrader
metadata (an ungraded scratch cell) also come from the master; changes to them
are reported in one message. Cells the student **added** (matched to no master
cell and not used in step 3) are **dropped** with one summary message: they
could hold code that runs before the tests (monkeypatching the checks, input
transformers) and must not run. Helper functions therefore belong inside the
solution cell that uses them; the message says so. Empty added cells are
dropped silently.

**Kernel and outputs.** The kernelspec and language come from the master; a
different kernel name or language in the student's file is reported. All
outputs are cleared; saved outputs over 1 MiB are mentioned (informational).

**Status.** ``"missing"`` (no usable notebook), ``"malformed"`` (the file could
not be read), else ``"repaired"`` when any item is not ``"ok"`` or anything
above was reported (outputs aside), else ``"ok"``.

Usage::

    intake = read_submission(state / "submitted" / "alice" / "a1", ROOT / "assignments" / "a1" / "a1.ipynb")
    write_rebuilt(intake, state / "rebuilt" / "alice" / "a1")   # what autograde runs
    solution_sources(intake)                                    # what the trusted verifier reads
    intake.to_json()                                            # for the report
"""

from __future__ import annotations

import ast
import copy
import json
import os
import re
import stat
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

__all__ = [
    "MAX_NOTEBOOK_BYTES",
    "OUTPUT_NOTE_BYTES",
    "MAX_CANDIDATES",
    "Item",
    "Intake",
    "read_submission",
    "write_rebuilt",
    "solution_sources",
]

MAX_NOTEBOOK_BYTES = 20 * 2**20
_NBGRADER_MARKER = re.compile(r"(BEGIN|END) HIDDEN TESTS")
OUTPUT_NOTE_BYTES = 2**20
MAX_CANDIDATES = 10

TEMPLATE = "graded as the unchanged template (0 points)"


@dataclass
class Item:
    """One solution cell of the master, as found in the student's notebook.

    Attributes:
    - grade_id: the master cell's nbgrader ``grade_id``
    - status: "ok" | "missing" | "duplicated" | "retyped" | "metadata_stripped" | "unreadable"
    - message: one sentence for the student and the instructor; "" when ok
    - source: the code graded for this cell (the student's, or the master's template)
    """

    grade_id: str
    status: str
    message: str
    source: str


@dataclass
class Intake:
    """A submission as read and rebuilt from the master.

    Attributes:
    - student, assignment: names (the folder's parent, the master's file stem)
    - status: "ok" | "repaired" | "missing" | "malformed"
    - messages: file-level messages (which file was used, what was restored or dropped)
    - items: grade_id -> Item, one per solution cell of the master, in master order
    - notebook: the rebuilt notebook (a deep copy of the master, solution sources
      replaced by items[gid].source, all outputs cleared, the master's kernelspec)
    - file: the name of the student's file that was read, None when none was
    """

    student: str
    assignment: str
    status: str
    messages: list[str]
    items: dict[str, Item]
    notebook: nbformat.NotebookNode
    file: str | None = None

    def to_json(self) -> dict:
        """Plain data for a report (no sources, no notebook).

        Returns:
        - dict with keys student, assignment, status, file, messages and items
          (grade_id -> {"status", "message"}).
        """
        return {
            "student": self.student,
            "assignment": self.assignment,
            "status": self.status,
            "file": self.file,
            "messages": list(self.messages),
            "items": {gid: {"status": it.status, "message": it.message} for gid, it in self.items.items()},
        }


# ---------------------------------------------------------------------------
# helpers


class _Unusable(Exception):
    """The student's file cannot be used; the message says why (one clause)."""


@dataclass
class _Cell:
    """One cell of the student's notebook, reduced to what matching needs."""

    index: int  # 0-based position in the student's notebook
    cell_type: str  # "code", "markdown", "raw", or "" when missing/odd
    grade_id: str | None
    cell_id: str | None
    source: str | None  # None when the source is not text
    outputs_bytes: int = 0


def _human(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    if n < 2**20:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 2**20:.1f} MiB"


def _shown(name: str, limit: int = 60) -> str:
    """A student-chosen name, safe to put in a message: no control characters, bounded length."""
    name = "".join(ch if ch.isprintable() else "?" for ch in name)
    return name if len(name) <= limit else name[: limit - 3] + "..."


def _names(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(f"`{_shown(n)}`" for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _encodable(text: str) -> str:
    """``text`` with lone surrogates (valid in JSON, not in UTF-8) replaced by '?'."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


def _text(source) -> str | None:
    if isinstance(source, str):
        return _encodable(source)
    if isinstance(source, list) and all(isinstance(s, str) for s in source):
        return _encodable("".join(source))
    return None


def _nbgrader(cell) -> dict:
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    nbg = meta.get("nbgrader") if isinstance(meta, dict) else None
    return nbg if isinstance(nbg, dict) else {}


_MAGIC = re.compile(r"^([ \t]*)[%!].*$", re.MULTILINE)


def _top_level_names(source: str) -> list[str]:
    """Functions and classes ``source`` defines at top level ([] when it does not parse)."""
    try:
        tree = ast.parse(_MAGIC.sub(r"\1pass", source))
    except Exception:  # SyntaxError, ValueError (null bytes), RecursionError, MemoryError
        return []
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; _Unusable otherwise."""
    name = _shown(path.name)
    try:
        info = os.lstat(path)
    except OSError as error:
        raise _Unusable(f"`{name}` could not be read ({error.strerror})") from None
    if stat.S_ISLNK(info.st_mode):
        raise _Unusable(f"`{name}` is a symbolic link, which the grader does not follow")
    if not stat.S_ISREG(info.st_mode):
        raise _Unusable(f"`{name}` is not a regular file")
    if info.st_size > max_bytes:
        raise _Unusable(f"the notebook is {_human(info.st_size)}, over the limit of {_human(max_bytes)}, "
                        "so it was not read (clear all outputs, save and submit again)")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as error:
        raise _Unusable(f"`{name}` could not be read ({error.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise _Unusable(f"`{name}` is not a regular file")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:  # it grew after lstat
        raise _Unusable(f"the notebook is over the limit of {_human(max_bytes)}, so it was not read "
                        "(clear all outputs, save and submit again)")
    return data


def _parse(data: bytes) -> dict:
    """The notebook's JSON object (nbformat 4, with a list of cells); _Unusable otherwise."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _Unusable(f"the notebook is not valid UTF-8 text (byte 0x{data[error.start]:02x} at offset "
                        f"{error.start})") from None
    text = text.removeprefix("\ufeff")
    try:
        nb = json.loads(text)
    except json.JSONDecodeError as error:
        raise _Unusable(f"the notebook is not valid JSON, it is truncated or corrupted ({error.msg} at line "
                        f"{error.lineno}, column {error.colno}, character {error.pos})") from None
    except RecursionError:
        raise _Unusable("the notebook's JSON is nested too deeply to read") from None
    except ValueError as error:  # e.g. an integer with too many digits
        raise _Unusable(f"the notebook's JSON could not be read ({_shown(str(error), 120)})") from None
    if not isinstance(nb, dict):
        kind = {list: "a list", str: "a string", int: "a number", float: "a number",
                bool: "a boolean", type(None): "null"}.get(type(nb), "not an object")
        raise _Unusable(f"the file is not a Jupyter notebook (its JSON is {kind}, not an object)")
    if "nbformat" not in nb:
        raise _Unusable("the file is not a Jupyter notebook (it has no nbformat version)")
    version = nb["nbformat"]
    if version != 4 or isinstance(version, bool):
        shown = "(a list or object)" if isinstance(version, (list, dict)) else _shown(json.dumps(version), 40)
        raise _Unusable(f"the notebook is in nbformat {shown}, and the course needs nbformat 4 "
                        "(open it in a current Jupyter or Colab and save it again)")
    if not isinstance(nb.get("cells"), list):
        raise _Unusable("the notebook has no list of cells")
    return nb


def _cells(nb: dict) -> tuple[list[_Cell], int]:
    """The student's cells, and how many entries were not cells at all."""
    cells, odd = [], 0
    for index, raw in enumerate(nb["cells"]):
        if not isinstance(raw, dict):
            odd += 1
            continue
        gid = _nbgrader(raw).get("grade_id")
        cid = raw.get("id")
        cell_type = raw.get("cell_type")
        outputs = raw.get("outputs")
        size = 0
        if isinstance(outputs, list) and outputs:
            try:
                size = len(json.dumps(outputs))
            except Exception:
                size = 0
        cells.append(_Cell(index=index, cell_type=cell_type if isinstance(cell_type, str) else "",
                           grade_id=gid if isinstance(gid, str) else None,
                           cell_id=cid if isinstance(cid, str) else None,
                           source=_text(raw.get("source", "")), outputs_bytes=size))
    return cells, odd


@dataclass
class _Master:
    path: Path
    nb: nbformat.NotebookNode
    solution: list[int]  # positions of solution cells
    by_gid: dict[str, int]
    by_id: dict[str, int]
    names: dict[int, list[str]] = field(default_factory=dict)  # solution position -> template's defined names


def _load_master(master: Path) -> _Master:
    master = Path(master)
    if not master.is_file():
        raise ValueError(f"master: {master} is not a file (expected the released notebook with nbgrader metadata)")
    try:
        nb = nbformat.read(master, as_version=4)
    except Exception as error:
        raise ValueError(f"master: {master} is not a readable notebook ({error})") from None
    by_gid, by_id, solution, names = {}, {}, [], {}
    for pos, cell in enumerate(nb.cells):
        nbg = cell.metadata.get("nbgrader", {})
        gid = nbg.get("grade_id")
        if gid is not None:
            if gid in by_gid:
                raise ValueError(f"master: {master.name} uses grade_id {gid!r} twice")
            by_gid[gid] = pos
        if cell.get("id"):
            by_id[cell["id"]] = pos
        if nbg.get("solution"):
            if not gid:
                raise ValueError(f"master: {master.name} has a solution cell (#{pos + 1}) without a grade_id")
            solution.append(pos)
            names[pos] = _top_level_names(cell.source) if cell.cell_type == "code" else []
    if not solution:
        raise ValueError(f"master: {master.name} has no solution cells (metadata nbgrader.solution)")
    return _Master(master, nb, solution, by_gid, by_id, names)


def _match_score(path: Path, master: _Master, max_bytes: int) -> int:
    """How many master grade_ids and cell ids a candidate notebook holds (-1 when unreadable)."""
    try:
        cells, _ = _cells(_parse(_read_bytes(path, max_bytes)))
    except _Unusable:
        return -1
    gids = {c.grade_id for c in cells if c.grade_id in master.by_gid}
    ids = {c.cell_id for c in cells if c.cell_id in master.by_id}
    return len(gids) + len(ids)


def _locate(folder: Path, master: _Master, max_bytes: int, messages: list[str]) -> Path | None:
    """The notebook to read (None when there is none); appends file-level messages."""
    expected = master.path.name
    if not folder.is_dir():
        messages.append(f"nothing was submitted (no submission folder, expected `{expected}`): "
                        f"every cell is {TEMPLATE}")
        return None
    try:
        entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError as error:
        messages.append(f"the submission folder could not be read ({error.strerror}): every cell is {TEMPLATE}")
        return None
    notebooks = [p for p in entries if p.name.endswith(".ipynb") and not p.is_dir()]
    target = folder / expected
    others = [p for p in notebooks if p.name != expected]
    if target in notebooks:
        if others:
            messages.append(f"extra notebook(s) ignored: {_names([p.name for p in others])} "
                            f"(only `{expected}` is graded)")
        return target
    if not notebooks:
        found = f"; the folder holds {_names([p.name for p in entries], 5)}" if entries else "; the folder is empty"
        messages.append(f"no notebook was submitted (expected `{expected}`{found}): every cell is {TEMPLATE}")
        return None
    if len(notebooks) == 1:
        messages.append(f"the notebook was handed in as `{_shown(notebooks[0].name)}` instead of `{expected}` "
                        "(renamed); it was graded")
        return notebooks[0]
    # At most MAX_CANDIDATES are read (a folder of many huge notebooks must not stall the grader);
    # max() keeps the first of equal scores, and the list is sorted by name.
    scores = {p: _match_score(p, master, max_bytes) if k < MAX_CANDIDATES else -1 for k, p in enumerate(notebooks)}
    best = max(notebooks, key=scores.__getitem__)
    ignored = [p.name for p in notebooks if p != best]
    messages.append(f"no `{expected}` was handed in; of {len(notebooks)} notebooks, "
                    f"`{_shown(best.name)}` matches the assignment best and was graded (renamed); "
                    f"ignored: {_names(ignored)}")
    return best


def _kind(cell: _Cell) -> str:
    return {"markdown": "a Markdown cell", "raw": "a raw cell", "": "a cell of no type"}.get(
        cell.cell_type, f"a {_shown(cell.cell_type, 20)} cell")


def _pick(candidates: list[_Cell]) -> tuple[_Cell | None, bool]:
    """The last code cell with a text source, else the last cell with one; (cell, is_code)."""
    readable = [c for c in candidates if c.source is not None]
    code = [c for c in readable if c.cell_type == "code"]
    if code:
        return code[-1], True
    if readable:
        return readable[-1], False
    return None, False


def _item(gid: str, candidates: list[_Cell], how: str, master_cell, template: str) -> Item:
    """The Item for one solution cell, given the student cells found for it and how they were found.

    how: "grade_id" | "id" | "name:<function name>".
    """
    chosen, is_code = _pick(candidates)
    if chosen is None:
        return Item(gid, "unreadable", f"the cell `{gid}` could not be read (its source is not text): {TEMPLATE}",
                    template)
    if master_cell.cell_type != "code":  # a written answer: any cell type is fine
        is_code = True
    if how == "grade_id":
        found = ""
    elif how == "id":
        found = "its cell id"
    else:
        found = f"its definition of `{how[5:]}`"
    lost = f" (its grading metadata was removed; recognised by {found})" if found else ""
    where = f"cell {chosen.index + 1} of the notebook"
    if len(candidates) > 1:
        used = "the last code copy" if is_code else f"the last copy, {_kind(chosen)} whose text was taken as code"
        return Item(gid, "duplicated", f"the cell `{gid}` appears {len(candidates)} times{lost}: {used} "
                    f"({where}) was graded and the other copies were ignored", chosen.source)
    if not is_code:
        return Item(gid, "retyped", f"the cell `{gid}` was changed into {_kind(chosen)}{lost}: its text was "
                    "graded as code", chosen.source)
    if not found:
        return Item(gid, "ok", "", chosen.source)
    return Item(gid, "metadata_stripped", f"the cell `{gid}` lost its grading metadata; it was recognised by "
                f"{found} and graded", chosen.source)


def _rebuild(master: _Master, items: dict[str, Item]) -> nbformat.NotebookNode:
    nb = copy.deepcopy(master.nb)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in items and cell.metadata["nbgrader"].get("solution"):
            cell.source = items[gid].source
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    return nb


def _template_intake(student: str, master: _Master, status: str, messages: list[str], file: str | None,
                     reason: str) -> Intake:
    items = {}
    for pos in master.solution:
        cell = master.nb.cells[pos]
        gid = cell.metadata.nbgrader.grade_id
        item_status = "missing" if status == "missing" else "unreadable"
        items[gid] = Item(gid, item_status, f"{reason}: `{gid}` {TEMPLATE}", cell.source)
    return Intake(student, master.path.stem, status, messages, items, _rebuild(master, items), file)


# ---------------------------------------------------------------------------
# public API


def read_submission(folder: Path, master: Path, *, max_bytes: int = MAX_NOTEBOOK_BYTES) -> Intake:
    """Read one student's submission and rebuild it from the instructor's master (rules: module docstring).

    Inputs:
    - folder: the submission folder, ``submitted/<student>/<assignment>``; it may be
      missing, empty or hold anything at all
    - master: the released notebook ``assignments/<assignment>/<assignment>.ipynb``
      (nbgrader metadata on every graded cell)
    - max_bytes: files larger than this are not read (status "malformed")

    Returns:
    - Intake; its status is "ok", "repaired", "missing" or "malformed". Never raises on
      the student's input.

    Raises:
    - ValueError: the master is missing, unreadable, has no solution cells or a
      duplicated grade_id; max_bytes is not a positive int.
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
        raise ValueError(f"max_bytes must be a positive int, got {max_bytes!r}")
    m = _load_master(Path(master))
    folder = Path(folder)
    student = folder.parent.name
    messages: list[str] = []
    path = _locate(folder, m, max_bytes, messages)
    if path is None:
        return _template_intake(student, m, "missing", messages, None, "no notebook was submitted")
    try:
        nb = _parse(_read_bytes(path, max_bytes))
    except _Unusable as problem:
        messages.append(f"{problem}: every cell is {TEMPLATE}")
        return _template_intake(student, m, "malformed", messages, path.name, "the notebook could not be read")
    try:
        return _match(student, m, nb, messages, path.name)
    except Exception as error:  # a safety net: student input must never crash the grader
        messages.append(f"the notebook could not be processed ({type(error).__name__}): every cell is {TEMPLATE}")
        return _template_intake(student, m, "malformed", messages, path.name, "the notebook could not be read")


def _match(student: str, m: _Master, nb: dict, messages: list[str], file: str) -> Intake:
    repaired = bool(messages)  # renamed or extra notebooks
    cells, odd = _cells(nb)
    if odd:
        messages.append(f"{odd} entr{'y' if odd == 1 else 'ies'} of the notebook's cell list "
                        f"{'is' if odd == 1 else 'are'} not a cell and {'was' if odd == 1 else 'were'} ignored")
        repaired = True

    # Steps 1 and 2: map student cells onto master cells by grade_id, else by cell id.
    by_gid: dict[int, list[_Cell]] = defaultdict(list)
    by_id: dict[int, list[_Cell]] = defaultdict(list)
    for cell in cells:
        if cell.grade_id in m.by_gid:
            by_gid[m.by_gid[cell.grade_id]].append(cell)
        elif cell.cell_id in m.by_id:
            by_id[m.by_id[cell.cell_id]].append(cell)
    mapped = {c.index for group in (*by_gid.values(), *by_id.values()) for c in group}

    items: dict[str, Item] = {}
    used_by_name: set[int] = set()
    for pos in m.solution:
        master_cell = m.nb.cells[pos]
        gid = master_cell.metadata.nbgrader.grade_id
        if by_gid.get(pos):
            items[gid] = _item(gid, by_gid[pos], "grade_id", master_cell, master_cell.source)
        elif by_id.get(pos):
            items[gid] = _item(gid, by_id[pos], "id", master_cell, master_cell.source)
        else:
            items[gid] = _by_name(gid, m.names.get(pos, []), cells, mapped, master_cell, used_by_name)

    # Locked, test and ungraded master cells: always the master's; report what the student changed.
    edited, deleted, ungraded_changed = [], [], 0
    for pos, master_cell in enumerate(m.nb.cells):
        nbg = master_cell.metadata.get("nbgrader", {})
        if nbg.get("solution"):
            continue
        copies = by_gid.get(pos) or by_id.get(pos) or []
        label = nbg.get("grade_id")
        if not nbg:
            ungraded_changed += any(c.source != master_cell.source for c in copies)
            continue
        if not copies:
            deleted.append(label)
        elif any(c.source != master_cell.source for c in copies):
            edited.append(label)
        if len(copies) > 1:
            messages.append(f"locked cell `{label}` appears {len(copies)} times; only the original was kept")
            repaired = True
    for label in edited:
        messages.append(f"locked cell `{label}` was edited; the original was restored")
    if deleted:
        messages.append(f"locked cell{'s' if len(deleted) > 1 else ''} {_names(deleted)} "
                        f"{'were' if len(deleted) > 1 else 'was'} deleted; the original"
                        f"{'s were' if len(deleted) > 1 else ' was'} restored")
    if ungraded_changed:
        messages.append(f"changes to {ungraded_changed} ungraded cell(s) were not kept "
                        "(the grader runs the assignment's version)")
    repaired = repaired or bool(edited or deleted or ungraded_changed)

    # Cells the student added: dropped.
    added = [c for c in cells if c.index not in mapped and c.index not in used_by_name
             and (c.source is None or c.source.strip())]
    if added:
        kinds = defaultdict(int)
        for c in added:
            kinds["code" if c.cell_type == "code" else "Markdown" if c.cell_type == "markdown" else "other"] += 1
        detail = ", ".join(f"{n} {k}" for k, n in kinds.items())
        messages.append(f"{len(added)} cell{'s' if len(added) > 1 else ''} you added ({detail}) "
                        f"{'were' if len(added) > 1 else 'was'} dropped: only the assignment's own cells are run, "
                        "so keep helper functions inside the solution cell that uses them")
        repaired = True

    # Kernel.
    if _kernel_differs(nb.get("metadata"), m.nb.metadata, messages):
        repaired = True

    # Outputs (informational).
    output_bytes = sum(c.outputs_bytes for c in cells)
    if output_bytes > OUTPUT_NOTE_BYTES:
        messages.append(f"the notebook's saved outputs ({_human(output_bytes)}) were dropped; "
                        "the grader runs every cell again")

    # nbgrader's markers in a student's code would make nbgrader cut or refuse the cell at feedback time, and
    # a hidden test's own text would make the feedback look like a leak and be withheld.
    for item in items.values():
        cleaned = _NBGRADER_MARKER.sub(lambda found: found.group(0).replace(" ", "-"), item.source)
        cleaned = cleaned.replace("hidden=True", "hidden = True")  # the same code; no longer a hidden test's text
        if cleaned != item.source:
            item.source = cleaned
            # (the message must not quote the markers itself: the feedback would look like a leak)
            messages.append(f"the cell `{item.grade_id}` contained nbgrader's marker of hidden tests or the "
                            "keyword argument of a hidden check; they were respaced")
            repaired = True

    repaired = repaired or any(it.status != "ok" for it in items.values())
    return Intake(student, m.path.stem, "repaired" if repaired else "ok", messages, items,
                  _rebuild(m, items), file)


def _by_name(gid: str, names: list[str], cells: list[_Cell], mapped: set[int], master_cell,
             used: set[int]) -> Item:
    """Step 3 (a student cell that defines the template's function or class), else step 4 (missing)."""
    wanted = set(names)
    candidates, hit = [], None
    if wanted:
        for cell in cells:
            if cell.index in mapped or cell.source is None:
                continue
            # Cheap filter before parsing: the name must appear after `def ` or `class `.
            if not any(re.search(rf"\b(def|class)\s+{re.escape(n)}\b", cell.source) for n in wanted):
                continue
            defined = wanted.intersection(_top_level_names(cell.source))
            if defined:
                candidates.append(cell)
                hit = hit or sorted(defined, key=names.index)[0]
    if candidates:
        item = _item(gid, candidates, f"name:{hit}", master_cell, master_cell.source)
        used.update(c.index for c in candidates)
        return item
    what = f" or no cell defines `{names[0]}` any more" if names else ""
    return Item(gid, "missing", f"the cell `{gid}` is missing (it was deleted{what}): {TEMPLATE}",
                master_cell.source)


def _kernel_differs(meta, master_meta, messages: list[str]) -> bool:
    """Appends a message when the student's kernelspec or language differs from the master's."""
    if not isinstance(meta, dict):
        return False
    spec = meta.get("kernelspec") if isinstance(meta.get("kernelspec"), dict) else {}
    info = meta.get("language_info") if isinstance(meta.get("language_info"), dict) else {}
    want = master_meta.get("kernelspec", {})
    want_name, want_lang = want.get("name", "python3"), want.get("language", "python")
    got_name, got_lang = spec.get("name"), spec.get("language", info.get("name"))
    differs = (isinstance(got_name, str) and got_name != want_name) or (
        isinstance(got_lang, str) and got_lang.lower() != want_lang.lower())
    if not differs and isinstance(info.get("name"), str) and info["name"].lower() != want_lang.lower():
        differs, got_lang = True, info["name"]
    if differs:
        shown = _shown(str(got_name if got_name is not None else "none"), 40)
        messages.append(f"the notebook's kernel was `{shown}` ({_shown(str(got_lang), 20)}); "
                        f"it was replaced by the assignment's `{want_name}` ({want_lang})")
    return differs


def write_rebuilt(intake: Intake, dest: Path) -> Path:
    """Write the rebuilt notebook to ``dest/<assignment>.ipynb`` (validated; atomic replace).

    Inputs:
    - intake: from read_submission
    - dest: a folder, created when missing

    Returns:
    - the path written.

    Raises:
    - nbformat.ValidationError: the rebuilt notebook does not validate (a bad master).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    nbformat.validate(intake.notebook)
    path = dest / f"{intake.assignment}.ipynb"
    scratch = dest / f".{intake.assignment}.ipynb.tmp"
    try:
        nbformat.write(intake.notebook, scratch)
        os.replace(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)
    return path


def solution_sources(intake: Intake) -> dict[str, str]:
    """grade_id -> the code graded for that solution cell, in master order (for the trusted verifier)."""
    return {gid: item.source for gid, item in intake.items.items()}
