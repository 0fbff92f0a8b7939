"""Test-session setup shared by tests/ and the notebook validation of lectures/.

Runs before anything imports TensorFlow or starts a kernel, so every kernel
nbval or nbclient starts inherits this environment:

- TensorFlow stays quiet on stderr (both variables are needed: either alone
  still logs on import, and a graded cell with stderr output counts as failed);
- Keras, matplotlib, IPython and Jupyter write into a temporary folder, never
  into the user's $HOME;
- matplotlib draws off-screen;
- nothing tries the network (CNN_COURSE_OFFLINE=1).
"""

from __future__ import annotations

import atexit
import os
import pathlib
import shutil
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
os.environ["MPLBACKEND"] = "Agg"
# Tests and validated notebooks never reach for the network: load_mnist() goes
# straight to the bundled subset (the download path is tested with file:// URLs).
os.environ["CNN_COURSE_OFFLINE"] = "1"
os.environ["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # debugpy's frozen-modules note on stderr

_scratch = pathlib.Path(tempfile.mkdtemp(prefix="cnn-course-tests-"))
atexit.register(shutil.rmtree, _scratch, ignore_errors=True)
for variable, sub in {
    "MPLCONFIGDIR": "matplotlib",
    "KERAS_HOME": "keras",
    "IPYTHONDIR": "ipython",
    "JUPYTER_CONFIG_DIR": "jupyter/config",
    "JUPYTER_DATA_DIR": "jupyter/data",
    "JUPYTER_RUNTIME_DIR": "jupyter/runtime",
    "CNN_COURSE_DATA": "cnn-course-data",
}.items():
    path = _scratch / sub
    path.mkdir(parents=True, exist_ok=True)
    os.environ[variable] = str(path)
# Fixture notebooks under tests/ are data for the harness tests, not lectures.
collect_ignore_glob = ["tests/notebooks/*"]


def pytest_configure(config):
    # nbval only takes its sanitizer on the command line; set it here so that
    # `pytest` run from any directory uses the course's one.
    if hasattr(config.option, "nbval_sanitize_with") and not config.option.nbval_sanitize_with:
        config.option.nbval_sanitize_with = str(ROOT / "tests" / "nbval_sanitize.cfg")
