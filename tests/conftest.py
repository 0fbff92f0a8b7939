"""Fixtures shared by the grading tests: with and without the grader's secret seed."""

from __future__ import annotations

import pytest

from utils import grading

GRADER_SEED = "20261121"


@pytest.fixture
def seeded(monkeypatch):
    """Grading: hidden checks run, and every draw repeats."""
    monkeypatch.setenv(grading.SEED_VARIABLE, GRADER_SEED)


@pytest.fixture
def unseeded(monkeypatch):
    """A student's run: no seed in the environment and no .grader_secret file."""
    monkeypatch.delenv(grading.SEED_VARIABLE, raising=False)
    monkeypatch.setattr(grading, "SEED_FILE", grading.SEED_FILE.with_name("no-such-grader-secret"))
