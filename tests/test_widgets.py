"""utils.widgets: an explorer shows its starting result as plain output, then live sliders with a fallback text
(real kernel, nbclient)."""

from __future__ import annotations

import pytest
from kernel_helpers import execute_cells

WIDGET = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def outputs():
    nb = execute_cells(
        "from utils import widgets\n"
        "def area(h, w):\n"
        "    print(f'{h} x {w} = {h * w}')\n"
        "widgets.explore(area, h=widgets.int_slider(3, 1, 9, 'h'), w=widgets.int_slider(4, 1, 9, 'w'))")
    return nb.cells[0].outputs


def test_the_starting_values_result_is_ordinary_output(outputs):
    assert outputs[0]["output_type"] == "stream" and outputs[0]["text"] == "3 x 4 = 12\n"


def test_the_live_sliders_follow_with_a_fallback_text_not_their_repr(outputs):
    [display] = [o for o in outputs if o["output_type"] == "display_data"]
    assert WIDGET in display["data"]
    assert display["data"]["text/plain"] == ("[sliders for area(h, w): run this notebook in Jupyter to move them; "
                                             "above, the result for their starting values]")
    assert len(outputs) == 2  # the widget's own output (a second 3 x 4 = 12) lives inside the widget


def test_a_slider_calls_back_only_when_released():
    from utils import widgets

    slider = widgets.int_slider(2, 0, 5, "k")
    assert (slider.value, slider.min, slider.max, slider.description, slider.continuous_update) == (2, 0, 5, "k",
                                                                                                    False)
