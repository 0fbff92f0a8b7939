"""The environment every validating or executing kernel runs in.

Used by conftest.py (pytest and nbval) and tools/run_notebooks.py (executing
lectures for commit), so a notebook behaves the same in both.
"""

from __future__ import annotations

import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]

# TensorFlow logs to stderr on import unless both are set (either alone is not
# enough), and nbgrader fails a test cell with stderr output.
QUIET = {
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",  # debugpy's frozen-modules note on stderr
    # Never reach for the network: load_mnist() uses the bundled subset, so
    # outputs do not depend on what a machine has cached or can download.
    "CNN_COURSE_OFFLINE": "1",
}

# Tools that otherwise write into $HOME, and the sub-folder each gets.
HOME_WRITERS = {
    "MPLCONFIGDIR": "matplotlib",
    "KERAS_HOME": "keras",
    "IPYTHONDIR": "ipython",
    "JUPYTER_CONFIG_DIR": "jupyter/config",
    "JUPYTER_DATA_DIR": "jupyter/data",
    "JUPYTER_RUNTIME_DIR": "jupyter/runtime",
    "CNN_COURSE_DATA": "cnn-course-data",
}


def apply(scratch: pathlib.Path) -> None:
    """Set the quiet variables and point every $HOME writer into ``scratch``."""
    os.environ.update(QUIET)
    for variable, sub in HOME_WRITERS.items():
        path = scratch / sub
        path.mkdir(parents=True, exist_ok=True)
        os.environ[variable] = str(path)
