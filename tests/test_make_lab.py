"""`make lab` starts JupyterLab at the repository root with the nbgrader extensions on."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOKEN = "course-test-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""


@pytest.fixture(scope="module")
def lab_server():
    port = free_port()
    venv = pathlib.Path(sys.prefix)  # the environment running the tests
    args = f"--no-browser --ip=127.0.0.1 --port={port} --ServerApp.token={TOKEN}"
    process = subprocess.Popen(
        ["make", "--no-print-directory", "lab", f"VENV={venv}", f"LAB_ARGS={args}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True, env=os.environ.copy(),
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"make lab exited with {process.returncode}:\n{process.stdout.read()}")
            try:
                if get(f"{base}/api/status?token={TOKEN}")[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not answer within 90 s")
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


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
