"""The pinned environment: pip pins and environment.yml agree, and what runs is what is pinned."""

from __future__ import annotations

import importlib.metadata
import pathlib
import re

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;#]+)$")


def parse_pins(lines) -> dict[str, str]:
    pins = {}
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = PIN.match(line)
        assert match, f"not an exact pin (name==version): {raw!r}"
        name = re.sub(r"\[.*\]", "", match.group(1)).lower().replace("_", "-")
        assert name not in pins, f"{name} pinned twice"
        pins[name] = match.group(2)
    return pins


def requirements_pins() -> dict[str, str]:
    return parse_pins((ROOT / "requirements.txt").read_text().splitlines())


def environment_yml_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip: section"
    return parse_pins(pip_sections[0])


def test_environment_yml_and_requirements_agree():
    pip_pins, conda_pins = requirements_pins(), environment_yml_pins()
    only_pip = sorted(set(pip_pins) - set(conda_pins))
    only_conda = sorted(set(conda_pins) - set(pip_pins))
    differ = sorted(n for n in set(pip_pins) & set(conda_pins) if pip_pins[n] != conda_pins[n])
    assert not (only_pip or only_conda or differ), (
        f"requirements.txt and environment.yml disagree: only in requirements.txt {only_pip}, "
        f"only in environment.yml {only_conda}, different versions "
        f"{[(n, pip_pins[n], conda_pins[n]) for n in differ]}"
    )


def test_environment_yml_python_matches_the_course():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]


def test_parse_pins_rejects_loose_requirements():
    with pytest.raises(AssertionError, match="not an exact pin"):
        parse_pins(["torch>=2.0"])
    with pytest.raises(AssertionError, match="pinned twice"):
        parse_pins(["numpy==2.0", "numpy==2.1"])


REQUIRED = {  # what the course promises in the README, with the version family it relies on
    "numpy": None, "matplotlib": None, "jupyterlab": "4.", "notebook": "7.", "nbgrader": "0.9.",
    "nbval": None, "nbclient": None, "nbformat": None, "ipykernel": None, "torch": "2.13.0",
    "tensorflow-cpu": "2.21", "keras": "3.", "scikit-learn": None, "scikit-image": None,
    "pillow": None, "tqdm": None, "pytest": None, "hypothesis": None,
    "psycopg2-binary": "2.9.",  # the gradebook on PostgreSQL (tests/test_grading_postgres.py)
    "dask": "2026.", "distributed": "2026.",  # grading on Dask (tests/test_grading_distributed.py)
}


@pytest.mark.parametrize("name,family", sorted(REQUIRED.items()))
def test_required_package_is_pinned_and_installed(name, family):
    pins = requirements_pins()
    assert name in pins, f"{name} is not pinned in requirements.txt"
    if family:
        assert pins[name].startswith(family), f"{name}=={pins[name]} is not {family}x"
    installed = importlib.metadata.version(name)
    # torch's local build is 2.13.0+cpu: the local label is not part of the pin.
    assert installed.split("+")[0] == pins[name], (
        f"{name} {installed} is installed but {pins[name]} is pinned: run `make setup`"
    )


def test_nbformat_does_not_compile_the_iri_grammars_at_import():
    """jsonschema 4.25+ imports rfc3987-syntax, which builds its Earley parsers at import: 3 s added to every
    process that reads a notebook (each nbgrader command, each grading worker). The pin keeps it out."""
    import subprocess
    import sys

    code = "import sys, nbformat, nbgrader.apps; print('rfc3987_syntax' in sys.modules, 'lark' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
