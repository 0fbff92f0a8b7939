"""Test-session setup shared by tests/ and the notebook validation of lectures/.

Runs before anything imports TensorFlow or starts a kernel, so every kernel
nbval or nbclient starts inherits this environment (tools/notebook_env.py):
TensorFlow quiet on stderr, no network, and Keras, matplotlib, IPython and
Jupyter writing into a temporary folder instead of the user's $HOME.
"""

from __future__ import annotations

import atexit
import pathlib
import shutil
import tempfile

from tools import notebook_env

ROOT = pathlib.Path(__file__).resolve().parent

_scratch = pathlib.Path(tempfile.mkdtemp(prefix="cnn-course-tests-"))
atexit.register(shutil.rmtree, _scratch, ignore_errors=True)
notebook_env.apply(_scratch)

# Fixture notebooks under tests/ are data for the harness tests, not lectures.
collect_ignore_glob = ["tests/notebooks/*"]


def pytest_configure(config):
    # nbval only takes its sanitizer on the command line; set it here so that
    # `pytest` run from any directory uses the course's one.
    if hasattr(config.option, "nbval_sanitize_with") and not config.option.nbval_sanitize_with:
        config.option.nbval_sanitize_with = str(ROOT / "tests" / "nbval_sanitize.cfg")
