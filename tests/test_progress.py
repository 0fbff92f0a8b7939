"""utils.progress: a notebook executed and saved shows its progress bars finished (real kernel, nbclient)."""

from __future__ import annotations

import pytest
from kernel_helpers import execute_cells

from utils import progress


def bar_texts(cell) -> list[str]:
    return [o["data"]["text/plain"] for o in cell.outputs
            if o["output_type"] == "display_data" and "application/vnd.jupyter.widget-view+json" in o["data"]]


@pytest.fixture(scope="module")
def executed():
    return execute_cells(
        "from utils import progress",
        "for _ in progress.bar(range(3), desc='loop', unit='epoch'):\n    pass",
        "b = progress.bar(range(4), desc='manual', unit='run')\n"
        "for _ in b:\n    b.set_postfix(loss='0.5')\nb.close()",
        "from tqdm.auto import tqdm\nfor _ in tqdm(range(3), desc='plain'):\n    pass",
    )


def test_a_loop_bar_is_saved_finished(executed):
    [text] = bar_texts(executed.cells[1])
    assert text.startswith("loop: 100%|") and "| 3/3 [" in text and "epoch/s]" in text, text


def test_a_bar_closed_by_hand_is_saved_finished_with_its_postfix(executed):
    [text] = bar_texts(executed.cells[2])
    assert text.startswith("manual: 100%|") and "| 4/4 [" in text and "loss=0.5]" in text, text


def test_tqdms_own_notebook_bar_is_saved_as_it_started(executed):
    """Why utils.progress exists: a reader without a kernel sees this bar at 0%."""
    [text] = bar_texts(executed.cells[3])
    assert text.startswith("plain:   0%|") and "0/3 [" in text, text


def test_no_bar_writes_to_stderr_or_stdout(executed):
    for cell in executed.cells:
        assert [o for o in cell.outputs if o["output_type"] == "stream"] == []


def test_outside_a_kernel_it_is_the_console_bar(capsys):
    items = list(progress.bar(range(5), desc="console"))
    assert items == [0, 1, 2, 3, 4]
    err = capsys.readouterr().err
    assert "console: 100%|" in err and "5/5" in err
