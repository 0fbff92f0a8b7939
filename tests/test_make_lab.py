"""`make lab` starts JupyterLab at the repository root with the nbgrader extensions on."""

from __future__ import annotations

import json
import os
import pathlib
import urllib.error
import urllib.request

import pytest
from lab_helpers import lab_server as start_lab

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOKEN = "course-test-token"


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""


@pytest.fixture(scope="module")
def lab_server():
    with start_lab(ROOT, os.environ.copy(), TOKEN) as base:
        yield base


def test_lab_serves_the_repository_root(lab_server):
    status, body = get(f"{lab_server}/api/contents?token={TOKEN}")
    assert status == 200
    names = {item["name"] for item in json.loads(body)["content"]}
    assert {"lectures", "utils", "Makefile", "nbgrader_config.py"} <= names


def test_nbgrader_lab_extension_is_enabled(lab_server):
    status, body = get(f"{lab_server}/lab/api/extensions?token={TOKEN}")
    assert status == 200
    extensions = {e["name"]: e for e in json.loads(body)}
    assert "jupyter-nbgrader" in extensions, sorted(extensions)  # @jupyter/nbgrader
    assert extensions["jupyter-nbgrader"]["enabled"]


def test_nbgrader_formgrader_server_extension_answers(lab_server):
    # /formgrader redirects here; the redirect would drop the token.
    status, body = get(f"{lab_server}/formgrader/manage_assignments?token={TOKEN}")
    assert status == 200
    assert "Manage Assignments" in body
