"""Interactive explorers that a saved notebook still shows without a kernel.

``ipywidgets.interact`` draws its figures inside the widget, and a saved notebook
keeps only the widget's plain-text form (``interactive(children=(IntSlider(...``):
a reader on GitHub sees that and no figure. :func:`explore` first runs the
function once with the sliders' starting values as ordinary output (what every
reader sees), then shows the live sliders, whose plain-text form says what they
are.
"""

from __future__ import annotations

__all__ = ["explore", "int_slider"]


def int_slider(value: int, low: int, high: int, name: str):
    """An integer slider that calls the function only when released (``continuous_update=False``)."""
    from ipywidgets import IntSlider

    return IntSlider(value=value, min=low, max=high, description=name, continuous_update=False)


def explore(function, **sliders) -> None:
    """``function(**starting values)`` as plain output, then ``interact(function, **sliders)`` live.

    sliders: name -> an ipywidgets slider (:func:`int_slider`). Without ipywidgets only the first part runs.
    """
    function(**{name: slider.value for name, slider in sliders.items()})
    from IPython.display import display

    try:
        from ipywidgets import interactive
    except ImportError:
        print(f"(ipywidgets is not installed: call {function.__name__}(...) with other values yourself)")
        return
    live = interactive(function, **sliders)
    bundle = live._repr_mimebundle_()
    names = ", ".join(sliders)
    bundle["text/plain"] = (f"[sliders for {function.__name__}({names}): run this notebook in Jupyter to move "
                            "them; above, the result for their starting values]")
    display(bundle, raw=True)
