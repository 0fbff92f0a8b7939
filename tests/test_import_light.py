"""`import utils` loads NumPy only; frameworks load when a function needs them."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "tensorflow", "keras", "matplotlib", "scipy", "sklearn", "skimage", "PIL")


def modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in json.loads(out.stdout.splitlines()[-1])}


def test_import_utils_loads_no_framework():
    loaded = modules_after("import utils")
    assert not loaded & set(HEAVY), f"`import utils` loaded {sorted(loaded & set(HEAVY))}"


def test_every_submodule_imports_without_a_framework():
    import utils

    for name in utils.__all__:
        loaded = modules_after(f"import utils.{name}")
        assert not loaded & set(HEAVY), f"`import utils.{name}` loaded {sorted(loaded & set(HEAVY))}"


def test_submodules_load_lazily_on_attribute_access():
    loaded = modules_after("import utils\nutils.shapes.conv_output_size(5, 3)")
    assert {"utils", "numpy"} <= loaded and not loaded & set(HEAVY)


def test_unknown_attribute_is_an_attribute_error():
    import pytest

    import utils

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        utils.nope  # noqa: B018
