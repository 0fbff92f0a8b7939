"""The shared check machinery of utils.grading (the per-assignment checks have their own tests)."""

from __future__ import annotations

import numpy as np
import pytest

from utils import grading as g


def test_check_shape_names_the_first_wrong_axis():
    with pytest.raises(g.CheckError, match=r"conv_forward: output shape is \(2, 5, 6, 8\), expected "
                       r"\(2, 6, 6, 8\): output height 5, expected 6"):
        g.check_shape(np.zeros((2, 5, 6, 8)), (2, 6, 6, 8), "conv_forward",
                      axes=("batch size", "output height", "output width", "channels"))
    with pytest.raises(g.CheckError, match="3 dimensions, expected 4"):
        g.check_shape(np.zeros((2, 5, 6)), (2, 6, 6, 8), "f")


def test_check_type_refuses_ndarray_subclasses():
    class Rigged(np.ndarray):
        def __eq__(self, other):
            return True

    with pytest.raises(g.CheckError, match="should be a ndarray, got Rigged"):
        g.check_type(np.zeros(3).view(Rigged), np.ndarray, "f")
    g.check_type(np.zeros(3), np.ndarray, "f")


def test_check_dtype_and_finite():
    with pytest.raises(g.CheckError, match="dtype is float64, expected float32"):
        g.check_dtype(np.zeros(2), np.float32, "f")
    with pytest.raises(g.CheckError, match="2 NaN or infinite"):
        g.check_finite(np.array([1.0, np.nan, np.inf]), "f")


def test_check_close_names_the_matching_mistake():
    def reference(x, b):
        return x + b

    mistakes = [g.Mistake("no bias", "off by the bias: did you add b?", lambda x, b: x)]
    x, b = np.arange(4.0), 2.0
    g.check_close(reference(x, b), reference(x, b), "f", inputs={"x": x, "b": b}, mistakes=mistakes)
    with pytest.raises(g.CheckError, match="off by the bias"):
        g.check_close(x, reference(x, b), "f", inputs={"x": x, "b": b}, mistakes=mistakes)
    with pytest.raises(g.CheckError, match=r"at index \(0,\) got 7, expected 2 \(4 of 4 values differ\)"):
        g.check_close(x + 7, reference(x, b), "f", inputs={"x": x, "b": b}, mistakes=mistakes)


def test_visible_inputs_change_between_runs_without_a_seed(monkeypatch):
    monkeypatch.delenv(g.SEED_VARIABLE, raising=False)
    monkeypatch.setattr(g, "SEED_FILE", g.SEED_FILE.with_name("no-such-file"))
    draws = {int(g.case_rng(False, "zero_pad").integers(1 << 62)) for _ in range(5)}
    assert len(draws) == 5
    with pytest.raises(g.CheckError, match="hidden checks run only while grading"):
        g.case_rng(True, "zero_pad")


def test_grading_draws_repeat_with_the_seed_and_differ_by_check(monkeypatch):
    monkeypatch.setenv(g.SEED_VARIABLE, "1234")
    first = g.case_rng(True, "zero_pad").integers(1 << 62, size=3)
    assert np.array_equal(first, g.case_rng(True, "zero_pad").integers(1 << 62, size=3))
    assert not np.array_equal(first, g.case_rng(True, "conv_forward").integers(1 << 62, size=3))
    assert not np.array_equal(first, g.case_rng(False, "zero_pad").integers(1 << 62, size=3))
    monkeypatch.setenv(g.SEED_VARIABLE, "not a number")
    with pytest.raises(ValueError, match="must be an integer"):
        g.grader_seed()


def test_forbid_catches_direct_renamed_and_dynamic_calls():
    def direct(a):
        return np.convolve(a, [1, 1])

    from numpy import convolve as renamed_convolve

    def renamed(a):
        return renamed_convolve(a, [1, 1])

    def dynamic(a):
        import importlib

        return getattr(importlib.import_module("numpy"), "con" + "volve")(a, [1, 1])

    for function, pattern in [(direct, "called numpy.convolve"), (dynamic, "called numpy.convolve"),
                              (renamed, "uses numpy.convolve \\(as 'renamed_convolve'\\)")]:
        with pytest.raises(g.ForbiddenCall, match=pattern):
            with g.forbid(function, ["numpy.convolve"], function.__name__, "write the loop yourself"):
                function([1.0, 2.0])
    assert np.array_equal(np.convolve([1, 2], [1]), [1, 2])  # restored


def test_forbid_catches_the_course_reference_module():
    import utils.conv as reference

    def student(x, w):
        return reference.conv2d(x, w)

    with pytest.raises(g.ForbiddenCall, match="uses the module utils.conv"):
        with g.forbid(student, ["utils.conv.conv2d"], "conv2d", "implement it yourself"):
            pass


def test_numerical_gradient_matches_the_analytic_one():
    rng = np.random.default_rng(0)
    x, w, dout = rng.normal(size=(3, 4)), rng.normal(size=(4, 2)), rng.normal(size=(3, 2))
    numeric = g.numerical_gradient(lambda x: x @ w, x.copy(), dout)
    np.testing.assert_allclose(numeric, dout @ w.T, rtol=1e-7, atol=1e-9)
    with pytest.raises(TypeError, match="float64"):
        g.numerical_gradient(lambda x: x, x.astype(np.float32), dout)


def test_hidden_checks_never_show_reference_values():
    @g.graded
    def check_add_one(fn, hidden=False):
        x = np.array([1.0, 2.0])
        g.check_close(fn(x), x + 1, "add_one")

    check_add_one(lambda x: x + 1, hidden=True)
    with pytest.raises(g.CheckError) as visible:
        check_add_one(lambda x: x + 2)
    assert "expected 2" in str(visible.value)
    with pytest.raises(g.CheckError) as hidden:
        check_add_one(lambda x: x + 2, hidden=True)
    assert str(hidden.value) == "add_one: output values are wrong on a hidden test case (2 of 2 values differ)"
    assert hidden.value.__cause__ is None and hidden.value.__suppress_context__


@g.graded
def check_double(fn, hidden=False):
    g.check_close(fn(np.arange(3.0)), 2 * np.arange(3.0), "double")


def test_a_blank_function_is_reported_as_not_implemented():
    def double(x):
        raise NotImplementedError()

    with pytest.raises(g.CheckError, match="double: not implemented yet"):
        check_double(double)


def test_a_crash_in_student_code_keeps_its_type_and_shows_only_the_students_frames():
    def double(x):
        return x[0, 0]  # IndexError in the student's line

    with pytest.raises(IndexError) as info:
        check_double(double)
    shown = "\n".join(info.value._render_traceback_())
    assert "in double" in shown and "return x[0, 0]" in shown and "IndexError" in shown
    # The calling frame (a test cell, in Jupyter) and the checks' internals are left out.
    assert "check_double(double)" not in shown and "utils/grading" not in shown


def test_a_failed_check_renders_as_its_message_only():
    with pytest.raises(g.CheckError) as info:
        check_double(lambda x: 3 * x)
    assert info.value._render_traceback_() == [f"CheckError: {info.value}"]


def test_forbid_blocks_importing_a_forbidden_package_that_is_not_imported_yet():
    # In a fresh process: the checks never import a framework just to forbid it; importing one from the
    # checked function is what fails, and the import works again after the check.
    import subprocess
    import sys

    code = """
import sys
from utils.grading import ForbiddenCall, forbid
assert "scipy" not in sys.modules

def student():
    import scipy.signal
    return scipy.signal.correlate

try:
    with forbid(student, ["scipy.signal.correlate"], "conv", "write the loops yourself"):
        student()
except ForbiddenCall as error:
    print("blocked:", error)
import scipy.signal
print("after the check:", "scipy.signal" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["blocked: conv imported scipy while it was checked: write the loops yourself",
                                "after the check: True"]
