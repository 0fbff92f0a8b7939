"""tools/intake.py: notebook surgery and malformed files are detected, and every submission is rebuilt from the master.

Each broken notebook is built here, in tmp_path, from the real released
assignment and the correct example submission (alice), so the fixtures follow
the assignment when it is re-released. Corpus items 3, 21, 22 and 23 of
/work/shared/DESIGN.md.
"""

from __future__ import annotations

import copy
import json
import os
import pathlib

import nbformat
import pytest

from tools import intake
from tools.intake import Intake, read_submission, solution_sources, write_rebuilt

ROOT = pathlib.Path(__file__).resolve().parents[1]
AID = "a1_numpy_convolution"
MASTER = ROOT / "assignments" / AID / f"{AID}.ipynb"
ALICE = ROOT / "examples" / "submissions" / "alice" / AID / f"{AID}.ipynb"
SOLUTION = ROOT / "solutions" / AID / f"{AID}.ipynb"

SOLUTION_IDS = ["zero_pad", "conv_single_step", "conv_output_size", "conv_forward",
                "conv_param_count", "pool_forward", "conv_backward", "pool_backward"]
TEMPLATE = "graded as the unchanged template (0 points)"


# ---------------------------------------------------------------------------
# helpers


def load(path: pathlib.Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def text(cell: dict) -> str:
    source = cell["source"]
    return "".join(source) if isinstance(source, list) else source


def gid_of(cell: dict) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def index_of(nb: dict, gid: str) -> int:
    return next(i for i, c in enumerate(nb["cells"]) if gid_of(c) == gid)


def solutions_of(nb: dict) -> dict[str, str]:
    return {gid_of(c): text(c) for c in nb["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("solution")}


TEMPLATES = solutions_of(load(MASTER))
ALICE_SOURCES = solutions_of(load(ALICE))


def folder_for(tmp_path: pathlib.Path, student: str = "student") -> pathlib.Path:
    folder = tmp_path / "submitted" / student / AID
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def hand_in(tmp_path: pathlib.Path, nb, name: str = f"{AID}.ipynb", student: str = "student") -> pathlib.Path:
    """Write ``nb`` (a dict, or raw bytes) as a student's file; return the submission folder."""
    folder = folder_for(tmp_path, student)
    data = nb if isinstance(nb, bytes) else json.dumps(nb, indent=1, ensure_ascii=False).encode("utf-8")
    (folder / name).write_bytes(data)
    return folder


def read(folder: pathlib.Path, **kwargs) -> Intake:
    return read_submission(folder, MASTER, **kwargs)


def statuses(result: Intake) -> dict[str, str]:
    return {gid: item.status for gid, item in result.items.items()}


def all_ok_but(**changed: str) -> dict[str, str]:
    return {gid: changed.get(gid, "ok") for gid in SOLUTION_IDS}


def assert_rebuilt(result: Intake) -> None:
    """The rebuilt notebook: the master's cells in the master's order, the chosen sources, no outputs."""
    nb = result.notebook
    nbformat.validate(nb)
    master = nbformat.read(MASTER, as_version=4)
    assert [c.get("id") for c in nb.cells] == [c.get("id") for c in master.cells]
    assert nb.metadata.kernelspec == master.metadata.kernelspec
    for cell, original in zip(nb.cells, master.cells):
        assert cell.cell_type == original.cell_type
        assert cell.metadata == original.metadata
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
        gid = original.metadata.get("nbgrader", {}).get("grade_id")
        if gid in result.items:
            assert cell.source == result.items[gid].source
        else:
            assert cell.source == original.source
    assert solution_sources(result) == {gid: item.source for gid, item in result.items.items()}
    assert list(result.items) == SOLUTION_IDS
    json.dumps(result.to_json())


# ---------------------------------------------------------------------------
# correct and untouched submissions


def test_untouched_template_is_ok(tmp_path):
    result = read(hand_in(tmp_path, load(MASTER)))
    assert result.status == "ok"
    assert result.messages == []
    assert result.student == "student" and result.assignment == AID and result.file == f"{AID}.ipynb"
    assert statuses(result) == all_ok_but()
    assert all(item.message == "" for item in result.items.values())
    assert solution_sources(result) == TEMPLATES
    assert_rebuilt(result)


def test_alice_is_ok_and_her_code_is_graded(tmp_path):
    result = read(hand_in(tmp_path, load(ALICE), student="alice"))
    assert result.status == "ok"
    assert result.messages == []
    assert result.student == "alice"
    assert statuses(result) == all_ok_but()
    assert solution_sources(result) == ALICE_SOURCES
    assert ALICE_SOURCES != TEMPLATES
    assert_rebuilt(result)


def test_every_example_submission_of_every_assignment_is_ok():
    for notebook in sorted((ROOT / "examples" / "submissions").glob("*/*/*.ipynb")):
        aid = notebook.parent.name
        result = read_submission(notebook.parent, ROOT / "assignments" / aid / f"{aid}.ipynb")
        assert (result.status, result.messages) == ("ok", []), notebook
        assert solution_sources(result) == solutions_of(load(notebook))


# ---------------------------------------------------------------------------
# surgery on cells


def test_deleted_solution_cell_is_graded_as_the_template(tmp_path):
    nb = load(ALICE)
    del nb["cells"][index_of(nb, "conv_forward")]
    result = read(hand_in(tmp_path, nb))
    assert result.status == "repaired"
    assert statuses(result) == all_ok_but(conv_forward="missing")
    item = result.items["conv_forward"]
    assert item.source == TEMPLATES["conv_forward"]
    assert item.message == ("the cell `conv_forward` is missing (it was deleted or no cell defines "
                            f"`conv_forward` any more): {TEMPLATE}")
    assert result.messages == []
    assert {g: s for g, s in solution_sources(result).items() if g != "conv_forward"} == {
        g: s for g, s in ALICE_SOURCES.items() if g != "conv_forward"}
    assert_rebuilt(result)


def test_deleted_locked_cell_is_restored(tmp_path):
    nb = load(ALICE)
    del nb["cells"][index_of(nb, "conv_forward_tests")]
    result = read(hand_in(tmp_path, nb))
    assert result.status == "repaired"
    assert statuses(result) == all_ok_but()
    assert result.messages == ["locked cell `conv_forward_tests` was deleted; the original was restored"]
    assert_rebuilt(result)


def test_duplicated_cell_last_code_copy_wins(tmp_path):
    nb = load(ALICE)
    i = index_of(nb, "conv_forward")
    later = copy.deepcopy(nb["cells"][i])
    later["source"] = "# my second try\n" + text(later)
    later["id"] = "c0ffee01"  # JupyterLab gives a pasted cell a new id and keeps the metadata
    nb["cells"].insert(i + 1, later)
    result = read(hand_in(tmp_path, nb))
    assert result.status == "repaired"
    assert statuses(result) == all_ok_but(conv_forward="duplicated")
    item = result.items["conv_forward"]
    assert item.source == "# my second try\n" + ALICE_SOURCES["conv_forward"]
    assert item.message == (f"the cell `conv_forward` appears 2 times: the last code copy (cell {i + 2} of the "
                            "notebook) was graded and the other copies were ignored")
    assert result.messages == []  # the copy is not reported again as an added cell
    assert_rebuilt(result)


def test_duplicated_cell_markdown_copy_does_not_win(tmp_path):
    nb = load(ALICE)
    i = index_of(nb, "conv_forward")
    later = copy.deepcopy(nb["cells"][i])
    later.update(cell_type="markdown", source="I am not sure about this one")
    later.pop("outputs", None)
    later.pop("execution_count", None)
    nb["cells"].insert(i + 1, later)
    result = read(hand_in(tmp_path, nb))
    assert statuses(result) == all_ok_but(conv_forward="duplicated")
    assert result.items["conv_forward"].source == ALICE_SOURCES["conv_forward"]
    assert f"the last code copy (cell {i + 1} of the notebook)" in result.items["conv_forward"].message


def strip_metadata(cell: dict, ids: bool = False) -> None:
    cell["metadata"] = {}
    if ids:
        cell.pop("id", None)


def test_metadata_stripped_cell_is_found_by_its_id(tmp_path):
    nb = load(ALICE)
    strip_metadata(nb["cells"][index_of(nb, "conv_forward")])
    result = read(hand_in(tmp_path, nb))
    assert result.status == "repaired"
    assert statuses(result) == all_ok_but(conv_forward="metadata_stripped")
    assert result.items["conv_forward"].source == ALICE_SOURCES["conv_forward"]
    assert result.items["conv_forward"].message == (
        "the cell `conv_forward` lost its grading metadata; it was recognised by its cell id and graded")
    assert result.messages == []
    assert_rebuilt(result)


def test_metadata_and_id_stripped_cell_is_found_by_the_function_it_defines(tmp_path):
    nb = load(ALICE)
    i = index_of(nb, "conv_forward")
    strip_metadata(nb["cells"][i], ids=True)
    # Moved too, and a magic line that `ast` alone would reject.
    cell = nb["cells"].pop(i)
    cell["source"] = "%%time\n" + text(cell)
    nb["cells"].append(cell)
    result = read(hand_in(tmp_path, nb))
    assert result.status == "repaired"
    assert statuses(result) == all_ok_but(conv_forward="metadata_stripped")
    assert result.items["conv_forward"].source == "%%time\n" + ALICE_SOURCES["conv_forward"]
    assert result.items["conv_forward"].message == (
        "the cell `conv_forward` lost its grading metadata; it was recognised by its definition of "
        "`conv_forward` and graded")
    assert result.messages == []  # used, so not dropped as an added cell
    assert_rebuilt(result)


def test_all_metadata_and_ids_stripped(tmp_path):
    """A notebook that went through a tool that keeps only cell types and sources."""
    nb = load(ALICE)
    for cell in nb["cells"]:
        strip_metadata(cell, ids=True)
    nb["nbformat_minor"] = 4
    result = read(hand_in(tmp_path, nb))
    assert result.status == "repaired"
    assert statuses(result) == {gid: "metadata_stripped" for gid in SOLUTION_IDS}
    assert solution_sources(result) == ALICE_SOURCES
    assert len(result.messages) == 2
    assert result.messages[0].startswith("locked cells `header`, `setup`, `imports`, ")
    assert result.messages[0].endswith(" more were deleted; the originals were restored")
    # The locked cells cannot be recognised, so they count as added (and dropped) cells.
    assert result.messages[1].startswith("34 cells you added (")
    assert_rebuilt(result)


def test_retyped_to_markdown_is_graded_as_code(tmp_path):
    nb = load(ALICE)
    cell = nb["cells"][index_of(nb, "conv_forward")]
    cell["cell_type"] = "markdown"
    cell.pop("outputs")
    cell.pop("execution_count")
    result = read(hand_in(tmp_path, nb))
    assert result.status == "repaired"
    assert statuses(result) == all_ok_but(conv_forward="retyped")
    assert result.items["conv_forward"].source == ALICE_SOURCES["conv_forward"]
    assert result.items["conv_forward"].message == (
        "the cell `conv_forward` was changed into a Markdown cell: its text was graded as code")
    assert_rebuilt(result)
    assert result.notebook.cells[index_of(nb, "conv_forward")].cell_type == "code"


def test_retyped_and_stripped_is_found_by_name(tmp_path):
    nb = load(ALICE)
    cell = nb["cells"][index_of(nb, "pool_forward")]
    cell.update(cell_type="raw", metadata={})
    cell.pop("id")
    cell.pop("outputs")
    cell.pop("execution_count")
    result = read(hand_in(tmp_path, nb))
    assert statuses(result) == all_ok_but(pool_forward="retyped")
    assert result.items["pool_forward"].source == ALICE_SOURCES["pool_forward"]
    assert result.items["pool_forward"].message == (
        "the cell `pool_forward` was changed into a raw cell (its grading metadata was removed; recognised by "
        "its definition of `pool_forward`): its text was graded as code")


def test_solution_source_that_is_not_text_is_unreadable(tmp_path):
    nb = load(ALICE)
    nb["cells"][index_of(nb, "zero_pad")]["source"] = {"not": "text"}
    result = read(hand_in(tmp_path, nb))
    assert result.status == "repaired"
    assert statuses(result) == all_ok_but(zero_pad="unreadable")
    assert result.items["zero_pad"].source == TEMPLATES["zero_pad"]
    assert result.items["zero_pad"].message == (
        f"the cell `zero_pad` could not be read (its source is not text): {TEMPLATE}")
    assert_rebuilt(result)


def test_edited_locked_test_cell_is_restored_from_the_master(tmp_path):
    nb = load(ALICE)
    i = index_of(nb, "zero_pad_tests")
    nb["cells"][i]["source"] = "print('all checks passed')  # trust me"
    nb["cells"][i]["metadata"]["nbgrader"]["points"] = 100  # the student's metadata is not trusted either
    result = read(hand_in(tmp_path, nb))
    assert result.status == "repaired"
    assert statuses(result) == all_ok_but()
    assert result.messages == ["locked cell `zero_pad_tests` was edited; the original was restored"]
    master = nbformat.read(MASTER, as_version=4)
    assert result.notebook.cells[i].source == master.cells[i].source
    assert result.notebook.cells[i].metadata.nbgrader.points == 1
    assert_rebuilt(result)


def test_hidden_test_text_is_never_quoted(tmp_path):
    """The solutions' test cells hold hidden tests; the messages name the cell only."""
    result = read(hand_in(tmp_path, load(SOLUTION)))
    assert result.status == "repaired"
    assert statuses(result) == all_ok_but()
    assert all(m.startswith("locked cell `") and m.endswith("` was edited; the original was restored")
               for m in result.messages)
    report = json.dumps(result.to_json())
    assert "HIDDEN" not in report
    assert "BEGIN HIDDEN TESTS" not in "".join(c.source for c in result.notebook.cells)


def test_added_cells_are_dropped_with_one_message(tmp_path):
    nb = load(ALICE)
    i = index_of(nb, "zero_pad_tests")
    patch = nbformat.v4.new_code_cell("import numpy as np\nnp.allclose = lambda *a, **k: True")
    helper = nbformat.v4.new_code_cell("def helper(x):\n    return x")
    note = nbformat.v4.new_markdown_cell("My notes")
    empty = nbformat.v4.new_code_cell("   \n")
    nb["cells"][i:i] = [patch, helper, note, empty]
    result = read(hand_in(tmp_path, nb))
    assert result.status == "repaired"
    assert statuses(result) == all_ok_but()
    assert result.messages == [
        "3 cells you added (2 code, 1 Markdown) were dropped: only the assignment's own cells are run, "
        "so keep helper functions inside the solution cell that uses them"]
    assert not any("np.allclose =" in c.source or "def helper" in c.source for c in result.notebook.cells)
    assert_rebuilt(result)


def test_changes_to_an_ungraded_cell_are_not_kept(tmp_path):
    aid = "a3_building_cnns"
    master = ROOT / "assignments" / aid / f"{aid}.ipynb"
    nb = load(ROOT / "examples" / "submissions" / "alice" / aid / f"{aid}.ipynb")
    scratch = next(c for c in nb["cells"] if not c["metadata"].get("nbgrader"))
    scratch["source"] = "model = train_digits(x_train, y_train, seed=0)"
    folder = tmp_path / "alice" / aid
    folder.mkdir(parents=True)
    (folder / f"{aid}.ipynb").write_text(json.dumps(nb))
    result = read_submission(folder, master)
    assert result.status == "repaired"
    assert result.messages == ["changes to 1 ungraded cell(s) were not kept (the grader runs the assignment's "
                               "version)"]
    assert scratch["source"] not in [c.source for c in result.notebook.cells]


def test_wrong_kernelspec_is_replaced(tmp_path):
    nb = load(ALICE)
    nb["metadata"]["kernelspec"] = {"name": "ir", "language": "R", "display_name": "R"}
    nb["metadata"]["language_info"] = {"name": "R"}
    result = read(hand_in(tmp_path, nb))
    assert result.status == "repaired"
    assert statuses(result) == all_ok_but()
    assert result.messages == ["the notebook's kernel was `ir` (R); it was replaced by the assignment's "
                               "`python3` (python)"]
    assert result.notebook.metadata.kernelspec.name == "python3"
    assert_rebuilt(result)


def test_missing_or_odd_metadata_is_tolerated(tmp_path):
    nb = load(ALICE)
    nb["metadata"] = "nonsense"
    nb["cells"].insert(3, "not a cell")
    result = read(hand_in(tmp_path, nb))
    assert result.status == "repaired"
    assert statuses(result) == all_ok_but()
    assert result.messages == ["1 entry of the notebook's cell list is not a cell and was ignored"]
    del nb["metadata"]
    del nb["cells"][3]
    result = read(hand_in(tmp_path, nb))
    assert (result.status, result.messages) == ("ok", [])


def test_lone_surrogates_are_replaced_so_the_notebook_can_be_written(tmp_path):
    nb = load(ALICE)
    i = index_of(nb, "zero_pad")
    nb["cells"][i]["source"] = "def zero_pad(x, pad):\n    return x  # SURROGATE\n"
    data = json.dumps(nb).replace("SURROGATE", "\\ud800")  # valid JSON, not encodable as UTF-8
    result = read(hand_in(tmp_path, data.encode("ascii")))
    assert result.items["zero_pad"].source == "def zero_pad(x, pad):\n    return x  # ?\n"
    path = write_rebuilt(result, tmp_path / "rebuilt")
    nbformat.read(path, as_version=4)


# ---------------------------------------------------------------------------
# which file


def test_renamed_notebook_is_used(tmp_path):
    result = read(hand_in(tmp_path, load(ALICE), name="Copy of assignment 1.ipynb"))
    assert result.status == "repaired"
    assert result.file == "Copy of assignment 1.ipynb"
    assert result.messages == ["the notebook was handed in as `Copy of assignment 1.ipynb` instead of "
                               f"`{AID}.ipynb` (renamed); it was graded"]
    assert statuses(result) == all_ok_but()
    assert solution_sources(result) == ALICE_SOURCES
    assert_rebuilt(result)


def test_extra_notebooks_next_to_the_right_one_are_ignored(tmp_path):
    folder = hand_in(tmp_path, load(ALICE))
    hand_in(tmp_path, load(MASTER), name="backup.ipynb")
    hand_in(tmp_path, b"{broken", name="scratch.ipynb")
    (folder / ".ipynb_checkpoints").mkdir()
    result = read(folder)
    assert result.status == "repaired"
    assert result.file == f"{AID}.ipynb"
    assert result.messages == [f"extra notebook(s) ignored: `backup.ipynb`, `scratch.ipynb` (only `{AID}.ipynb` "
                               "is graded)"]
    assert statuses(result) == all_ok_but()
    assert solution_sources(result) == ALICE_SOURCES


def test_of_several_wrongly_named_notebooks_the_best_match_is_used(tmp_path):
    folder = hand_in(tmp_path, nbformat.v4.writes(nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("print(1)")])).encode(), name="a_scratch.ipynb")
    hand_in(tmp_path, load(ALICE), name="final.ipynb")
    hand_in(tmp_path, b"\x00\x01", name="notes.ipynb")
    result = read(folder)
    assert result.status == "repaired"
    assert result.file == "final.ipynb"
    assert result.messages == [f"no `{AID}.ipynb` was handed in; of 3 notebooks, `final.ipynb` matches the "
                               "assignment best and was graded (renamed); ignored: `a_scratch.ipynb`, `notes.ipynb`"]
    assert solution_sources(result) == ALICE_SOURCES


def test_missing_folder(tmp_path):
    result = read(tmp_path / "submitted" / "ghost" / AID)
    assert result.status == "missing"
    assert result.student == "ghost" and result.file is None
    assert result.messages == [f"nothing was submitted (no submission folder, expected `{AID}.ipynb`): "
                               f"every cell is {TEMPLATE}"]
    assert statuses(result) == {gid: "missing" for gid in SOLUTION_IDS}
    assert result.items["zero_pad"].message == f"no notebook was submitted: `zero_pad` {TEMPLATE}"
    assert solution_sources(result) == TEMPLATES
    assert_rebuilt(result)


def test_empty_folder(tmp_path):
    result = read(folder_for(tmp_path))
    assert result.status == "missing"
    assert result.messages == [f"no notebook was submitted (expected `{AID}.ipynb`; the folder is empty): "
                               f"every cell is {TEMPLATE}"]
    assert statuses(result) == {gid: "missing" for gid in SOLUTION_IDS}
    assert solution_sources(result) == TEMPLATES
    assert_rebuilt(result)


def test_folder_without_a_notebook_names_what_it_holds(tmp_path):
    folder = folder_for(tmp_path)
    (folder / "solution.py").write_text("def conv_forward(): ...")
    result = read(folder)
    assert result.status == "missing"
    assert result.messages == [f"no notebook was submitted (expected `{AID}.ipynb`; the folder holds "
                               f"`solution.py`): every cell is {TEMPLATE}"]


def test_symlink_is_not_followed(tmp_path):
    folder = folder_for(tmp_path)
    os.symlink(SOLUTION, folder / f"{AID}.ipynb")
    result = read(folder)
    assert result.status == "malformed"
    assert result.messages == [f"`{AID}.ipynb` is a symbolic link, which the grader does not follow: "
                               f"every cell is {TEMPLATE}"]
    assert solution_sources(result) == TEMPLATES


# ---------------------------------------------------------------------------
# malformed files


def assert_malformed(result: Intake, message: str) -> None:
    assert result.status == "malformed"
    assert result.messages == [f"{message}: every cell is {TEMPLATE}"]
    assert statuses(result) == {gid: "unreadable" for gid in SOLUTION_IDS}
    assert result.items["conv_forward"].message == (
        f"the notebook could not be read: `conv_forward` {TEMPLATE}")
    assert solution_sources(result) == TEMPLATES
    assert_rebuilt(result)


def test_truncated_json(tmp_path):
    data = ALICE.read_bytes()
    data = data[: len(data) // 2]
    try:
        json.loads(data)
    except json.JSONDecodeError as error:
        expected = (f"the notebook is not valid JSON, it is truncated or corrupted ({error.msg} at line "
                    f"{error.lineno}, column {error.colno}, character {error.pos})")
    assert_malformed(read(hand_in(tmp_path, data)), expected)


def test_non_utf8_bytes(tmp_path):
    data = ALICE.read_bytes()
    data = data[:100] + b"\xff" + data[100:]
    assert_malformed(read(hand_in(tmp_path, data)),
                     "the notebook is not valid UTF-8 text (byte 0xff at offset 100)")


def test_latin1_file(tmp_path):
    nb = load(MASTER)
    data = json.dumps(nb, ensure_ascii=False).encode("latin-1", errors="replace")
    offset = data.index("·".encode("latin-1"))
    assert_malformed(read(hand_in(tmp_path, data)),
                     f"the notebook is not valid UTF-8 text (byte 0xb7 at offset {offset})")


@pytest.mark.parametrize("version, shown", [(3, "3"), (5, "5"), ("4", '"4"'), (None, "null")])
def test_wrong_nbformat(tmp_path, version, shown):
    nb = load(ALICE)
    nb["nbformat"] = version
    assert_malformed(read(hand_in(tmp_path, nb)),
                     f"the notebook is in nbformat {shown}, and the course needs nbformat 4 (open it in a "
                     "current Jupyter or Colab and save it again)")


def test_no_nbformat(tmp_path):
    nb = load(ALICE)
    del nb["nbformat"]
    assert_malformed(read(hand_in(tmp_path, nb)), "the file is not a Jupyter notebook (it has no nbformat version)")


def test_cells_not_a_list(tmp_path):
    nb = load(ALICE)
    nb["cells"] = {"0": nb["cells"][0]}
    assert_malformed(read(hand_in(tmp_path, nb)), "the notebook has no list of cells")


def test_json_list(tmp_path):
    assert_malformed(read(hand_in(tmp_path, load(ALICE)["cells"])),
                     "the file is not a Jupyter notebook (its JSON is a list, not an object)")


def test_deeply_nested_json(tmp_path):
    data = b"[" * 200_000 + b"]" * 200_000
    result = read(hand_in(tmp_path, data))
    assert result.status == "malformed"
    assert statuses(result) == {gid: "unreadable" for gid in SOLUTION_IDS}


def test_oversized_file_is_not_read(tmp_path):
    size = ALICE.stat().st_size
    assert 1024 < size < 2**20
    assert_malformed(read(hand_in(tmp_path, ALICE.read_bytes()), max_bytes=1000),
                     f"the notebook is {size / 1024:.1f} KiB, over the limit of 1000 bytes, so it was not read "
                     "(clear all outputs, save and submit again)")
    # The same file under the default cap is fine.
    assert read(folder_for(tmp_path)).status == "ok"
    assert intake.MAX_NOTEBOOK_BYTES == 20 * 2**20


def test_large_outputs_under_the_cap_are_dropped_with_a_note(tmp_path):
    nb = load(ALICE)
    cell = nb["cells"][index_of(nb, "zero_pad_try")]
    cell["outputs"] = [nbformat.v4.new_output("display_data", data={"image/png": "A" * (2 * 2**20)})]
    result = read(hand_in(tmp_path, nb))
    assert result.status == "ok"  # informational only
    assert result.messages == ["the notebook's saved outputs (2.0 MiB) were dropped; the grader runs every "
                               "cell again"]
    assert_rebuilt(result)


# ---------------------------------------------------------------------------
# writing, determinism, instructor errors


def test_write_rebuilt_is_readable_by_nbformat(tmp_path):
    nb = load(ALICE)
    nb["cells"][index_of(nb, "zero_pad_tests")]["source"] = "pass"
    result = read(hand_in(tmp_path, nb))
    path = write_rebuilt(result, tmp_path / "rebuilt" / "student" / AID)
    assert path == tmp_path / "rebuilt" / "student" / AID / f"{AID}.ipynb"
    written = nbformat.read(path, as_version=4)
    nbformat.validate(written)
    assert written == result.notebook
    assert sorted(p.name for p in path.parent.iterdir()) == [f"{AID}.ipynb"]
    assert write_rebuilt(result, path.parent) == path  # overwrites in place
    # A rebuilt template (missing submission) is written too.
    missing = read(tmp_path / "nobody" / AID)
    nbformat.validate(nbformat.read(write_rebuilt(missing, tmp_path / "m"), as_version=4))


def test_reading_twice_gives_the_same_result(tmp_path):
    nb = load(ALICE)
    del nb["cells"][index_of(nb, "pool_forward")]
    nb["cells"].append(nbformat.v4.new_code_cell("x = 1"))
    folder = hand_in(tmp_path, nb)
    first, second = read(folder), read(folder)
    assert first.to_json() == second.to_json()
    assert first.notebook == second.notebook
    assert first.to_json() == {
        "student": "student", "assignment": AID, "status": "repaired", "file": f"{AID}.ipynb",
        "messages": ["1 cell you added (1 code) was dropped: only the assignment's own cells are run, so keep "
                     "helper functions inside the solution cell that uses them"],
        "items": {gid: {"status": "missing" if gid == "pool_forward" else "ok",
                        "message": first.items[gid].message} for gid in SOLUTION_IDS},
    }


def test_bad_instructor_input_raises(tmp_path):
    folder = hand_in(tmp_path, load(ALICE))
    with pytest.raises(ValueError, match="master"):
        read_submission(folder, tmp_path / "no-such-master.ipynb")
    no_solutions = load(MASTER)
    for cell in no_solutions["cells"]:
        cell["metadata"].get("nbgrader", {})["solution"] = False
    path = tmp_path / "plain.ipynb"
    path.write_text(json.dumps(no_solutions))
    with pytest.raises(ValueError, match="no solution cells"):
        read_submission(folder, path)
    with pytest.raises(ValueError, match="max_bytes"):
        read_submission(folder, MASTER, max_bytes=0)


def test_nbgrader_markers_in_student_code_are_defused(tmp_path):
    # nbgrader's ClearHiddenTests refuses a cell holding "BEGIN HIDDEN TESTS" without its end marker: one
    # student's comment would stop the feedback of the whole class
    nb = nbformat.read(ALICE, as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "conv_param_count")
    cell.source = "# BEGIN HIDDEN TESTS\n" + cell.source
    folder = tmp_path / "mallory" / AID
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / f"{AID}.ipynb")
    result = intake.read_submission(folder, MASTER)
    assert result.status == "repaired"
    assert result.items["conv_param_count"].source.startswith("# BEGIN-HIDDEN-TESTS\n")
    assert any("nbgrader's marker of hidden tests" in m for m in result.messages)
