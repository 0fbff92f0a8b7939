"""Progress bars that a saved notebook shows finished.

In a Jupyter kernel, tqdm's notebook bar is a widget whose saved output keeps only
the plain-text form it had when it was first displayed (``0%|          | 0/12``),
and a reader without a kernel (GitHub, nbviewer) sees that, not the widget.
:func:`bar` displays the widget under a display id and, when the bar closes,
updates that display: the saved plain-text form is then the finished bar
(``100%|██████████| 12/12 [00:25<00:00, ...]``). Outside a kernel it is tqdm's
console bar.
"""

from __future__ import annotations

import functools
import uuid

__all__ = ["bar"]


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def bar(iterable=None, **kwargs):
    """``tqdm(iterable, **kwargs)``, whose saved notebook output is the finished bar.

    Use it like tqdm: ``for epoch in bar(range(epochs), desc="model", unit="epoch")``, or keep the bar to
    call ``set_postfix`` and close it yourself.
    """
    if not _in_kernel():
        from tqdm import tqdm

        return tqdm(iterable, **kwargs)
    return _notebook_bar()(iterable, **kwargs)


@functools.cache
def _notebook_bar():
    from IPython.display import display, update_display
    from tqdm.notebook import tqdm as notebook_tqdm

    class NotebookBar(notebook_tqdm):
        """tqdm's widget bar, displayed under a display id that is updated when the bar closes."""

        def __init__(self, *args, **kwargs):
            kwargs["display"] = False
            super().__init__(*args, **kwargs)
            self._display_id = uuid.uuid4().hex
            if not self.disable:
                display(self.container, display_id=self._display_id)
                self.displayed = True

        def close(self):
            # tqdm's close() disables the bar, and may run twice: decide before it
            update = not self.disable and not getattr(self, "_final_shown", False)
            super().close()
            if update:
                self._final_shown = True
                update_display(self.container, display_id=self._display_id)

    return NotebookBar
