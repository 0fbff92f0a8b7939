"""The trusted verifier on assignment 2 (PyTorch): tensors, autograd gradients, device/dtype and speed.

The student's conv2d and max_pool2d run only in the sandboxed child; the parent replays the course's own
checks (utils.grading.a2) on what came back: output tensors (.npy), the gradients the child's backward gave
each input for the check's upstream gradient, and the times the child measured against F.conv2d.
"""

from __future__ import annotations

import contextlib
import pathlib

import pytest
import torch
from verifier_helpers import SEED, failing, scores, trusted_verifier, verify_code

from utils.grading import speed, transport

ROOT = pathlib.Path(__file__).resolve().parents[1]
AID = "a2_pytorch_convolution"
POINTS = {"conv2d_tests": 3.0, "conv2d_gradients_tests": 2.0, "conv2d_device_dtype_tests": 1.0,
          "conv2d_speed_tests": 2.0, "max_pool2d_tests": 2.0, "max_pool2d_gradients_tests": 1.0}
CONV_TESTS = {"conv2d_tests", "conv2d_gradients_tests", "conv2d_device_dtype_tests", "conv2d_speed_tests"}

PIXEL_LOOP = '''
def conv2d(x, w, b=None, stride=1, padding=0):
    n, _, h, wd = x.shape
    n_filters, _, kh, kw = w.shape
    h_out = (h + 2 * padding - kh) // stride + 1
    w_out = (wd + 2 * padding - kw) // stride + 1
    x_pad = F.pad(x, (padding, padding, padding, padding))
    rows = w.reshape(n_filters, -1)
    out = x.new_zeros((n, n_filters, h_out, w_out))
    for i in range(h_out):
        for j in range(w_out):
            window = x_pad[:, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
            out[:, :, i, j] = window.reshape(n, -1) @ rows.T
    return out if b is None else out + b.reshape(1, -1, 1, 1)
'''


def wrapped(body: str, name: str = "Wrapped") -> str:
    """The instructor's conv2d with x passed through a custom autograd Function first."""
    return f'''
class {name}(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
{body}

_right = conv2d


def conv2d(x, w, b=None, stride=1, padding=0):
    return _right({name}.apply(x), w, b, stride, padding)
'''


@pytest.fixture(scope="module")
def verifier():
    with trusted_verifier(AID, wall_seconds=40, budget_seconds=120) as made:
        yield made


@pytest.fixture
def run(verifier, monkeypatch, tmp_path):
    monkeypatch.setenv("CNN_COURSE_GRADER_SEED", SEED)

    def run_with(replacements: dict[str, str] | None = None, append: dict[str, str] | None = None):
        code = {**verifier.assignment.solutions, **(replacements or {})}
        for gid, extra in (append or {}).items():
            code[gid] += "\n" + extra
        return verify_code(verifier, tmp_path, code)

    return run_with


def test_every_check_makes_calls_and_the_speed_check_a_measurement(verifier):
    assert {gid: points for gid, (_, points) in verifier.assignment.tests.items()} == POINTS
    assert all(verifier.calls[gid] for gid in POINTS)
    measured = [c for c in verifier.calls["conv2d_speed_tests"] if c.measure]
    assert [c.measure["reference"] for c in measured] == ["torch.nn.functional.conv2d"] * 2  # visible, hidden
    gradient_calls = verifier.calls["conv2d_gradients_tests"]
    assert all(c.upstream is not None and c.upstream.shape[0] == c.args[0].shape[0] for c in gradient_calls)


def test_the_instructors_solution_gets_every_point(run):
    verdicts = run()
    assert scores(verdicts) == POINTS
    assert all(v.message == "" for v in verdicts.values())


def test_an_output_cut_off_from_autograd_fails_only_the_gradient_check(run):
    verdicts = run(append={"conv2d": "_right = conv2d\n\ndef conv2d(*args, **kwargs):\n"
                                     "    return _right(*args, **kwargs).detach()"})
    assert failing(verdicts) == {"conv2d_gradients_tests"}
    assert "the output is cut off from autograd" in verdicts["conv2d_gradients_tests"].message


def test_a_bias_outside_autograd_leaves_b_grad_none(run):
    verdicts = run(append={"conv2d": "_right = conv2d\n\ndef conv2d(x, w, b=None, stride=1, padding=0):\n"
                                     "    return _right(x, w, None if b is None else b.detach(), stride, padding)"})
    assert failing(verdicts) == {"conv2d_gradients_tests"}
    assert verdicts["conv2d_gradients_tests"].message.startswith("conv2d: b.grad is None after backward")


def test_wrong_gradients_are_the_childs_and_fail_with_the_checks_message(run):
    verdicts = run(append={"conv2d": wrapped("        return 2 * g")})
    assert failing(verdicts) == {"conv2d_gradients_tests"}
    assert verdicts["conv2d_gradients_tests"].message.startswith("conv2d: gradient x.grad values are wrong: at index")


def test_a_backward_that_raises_fails_with_its_exception_named(run):
    verdicts = run(append={"conv2d": wrapped('        raise IndexError("boom in backward")')})
    assert failing(verdicts) == {"conv2d_gradients_tests"}
    assert "autograd failed in backward (IndexError: boom in backward)" in verdicts["conv2d_gradients_tests"].message


def test_calling_F_conv2d_fails_every_conv2d_test_and_nothing_else(run):
    verdicts = run({"conv2d": "def conv2d(x, w, b=None, stride=1, padding=0):\n"
                              "    return torch.nn.functional.conv2d(x, w, b, stride=stride, padding=padding)\n"})
    assert failing(verdicts) == CONV_TESTS
    assert all("called torch.nn.functional.conv2d" in verdicts[g].message for g in CONV_TESTS)


def test_an_nn_conv2d_module_inside_is_caught_too(run):
    verdicts = run({"conv2d": "def conv2d(x, w, b=None, stride=1, padding=0):\n"
                              "    layer = torch.nn.Conv2d(w.shape[1], w.shape[0], w.shape[2:], stride, padding)\n"
                              "    return layer._conv_forward(x, w, b)\n"})
    assert failing(verdicts) == CONV_TESTS
    assert "_conv_forward" in verdicts["conv2d_tests"].message  # the static scan: a private attribute


def test_a_pixel_loop_is_right_but_too_slow(run):
    verdicts = run({"conv2d": PIXEL_LOOP})
    assert failing(verdicts) == {"conv2d_speed_tests"}
    assert verdicts["conv2d_speed_tests"].message.startswith("conv2d: too slow: ")
    assert "the limit is 5x" in verdicts["conv2d_speed_tests"].message


def test_patching_the_clock_in_the_child_does_not_make_a_pixel_loop_fast(run):
    patch = ("import time as clock_module\n_real = clock_module.perf_counter\n"
             "clock_module.perf_counter = lambda: _real() * 1e-3\n"
             "import utils.grading.speed as speed_module\nspeed_module.measure = lambda *a, **k: None\n")
    verdicts = run({"conv2d": PIXEL_LOOP + patch})
    assert failing(verdicts) == {"conv2d_speed_tests"}
    message = verdicts["conv2d_speed_tests"].message
    student_ms = float(message.split("(")[1].split(" ms")[0])
    assert student_ms > 1.0  # the real time of a loop over 1,024 output pixels, not a thousandth of it


def test_monkeypatching_torch_and_numpy_gets_the_score_of_an_honest_wrong_answer(run):
    wrong_pool = ("def max_pool2d(x, kernel_size, stride=None):\n"
                  "    stride = kernel_size if stride is None else stride\n"
                  "    return x.unfold(2, kernel_size, stride).unfold(3, kernel_size, stride).mean(dim=(-2, -1))\n")
    honest = run({"max_pool2d": wrong_pool})
    patched = run({"max_pool2d": wrong_pool + "import numpy as np\nnp.allclose = lambda *a, **k: True\n"
                                              "torch.allclose = lambda *a, **k: True\n"
                                              "np.testing.assert_allclose = lambda *a, **k: None\n"})
    assert failing(honest) == {"max_pool2d_tests", "max_pool2d_gradients_tests"}
    assert scores(patched) == scores(honest)
    assert "average pooling" in patched["max_pool2d_tests"].message


def test_a_tensor_subclass_arrives_as_its_type_and_fails(run):
    rigged = ("class Rigged(torch.Tensor):\n    def __eq__(self, other):\n        return True\n\n"
              "_right = max_pool2d\n\ndef max_pool2d(x, kernel_size, stride=None):\n"
              "    return _right(x, kernel_size, stride).as_subclass(Rigged)\n")
    verdicts = run(append={"max_pool2d": rigged})
    assert failing(verdicts) == {"max_pool2d_tests", "max_pool2d_gradients_tests"}
    assert "got Rigged" in verdicts["max_pool2d_tests"].message


def test_a_float32_output_fails_the_dtype_check_with_its_hint(run):
    verdicts = run(append={"conv2d": "_right = conv2d\n\ndef conv2d(*args, **kwargs):\n"
                                     "    return _right(*args, **kwargs).float()"})
    assert "conv2d_device_dtype_tests" in failing(verdicts)
    assert verdicts["conv2d_device_dtype_tests"].message.startswith(
        "conv2d: output dtype is float32 for a float64 input")
    assert not failing(verdicts) & {"max_pool2d_tests", "max_pool2d_gradients_tests"}


# ---------------------------------------------------------------------------------------------
# the pieces: tensor transport, speed measurement


def test_tensors_cross_as_plain_arrays_with_dtype_device_and_grad_flag(tmp_path):
    x = torch.arange(6, dtype=torch.float64).reshape(2, 3).requires_grad_()
    record = transport.loads(transport.dumps(transport.encode(x * 2, tmp_path, "t")))
    assert record == {"kind": "tensor", "dtype": "float64", "device": "cpu", "requires_grad": True,
                      "array": {"kind": "array", "file": "t.npy", "dtype": "<f8", "shape": [2, 3]}}
    back = transport.decode(record, tmp_path)
    assert type(back) is torch.Tensor and back.requires_grad and back.is_leaf
    assert torch.equal(back.detach(), (x * 2).detach())
    assert transport.encode(torch.nn.Parameter(torch.ones(2)), tmp_path, "p") == {
        "kind": "opaque", "type": "torch.nn.parameter.Parameter"}


@pytest.mark.parametrize("change, words", [
    ({"device": "/dev/null"}, "bad tensor record"),
    ({"dtype": "object"}, "bad tensor record"),
    ({"dtype": "float32"}, "its array holds float64"),
    ({"requires_grad": "yes"}, "bad tensor record"),
])
def test_forged_tensor_records_are_refused(tmp_path, change, words):
    record = transport.encode(torch.zeros(3, dtype=torch.float64), tmp_path, "t")
    with pytest.raises(transport.TransportError, match=words):
        transport.decode({**record, **change}, tmp_path)


def test_an_integer_tensor_cannot_claim_to_require_grad(tmp_path):
    record = transport.encode(torch.zeros(3, dtype=torch.int64), tmp_path, "t")
    with pytest.raises(transport.TransportError, match="integer tensor cannot require grad"):
        transport.decode({**record, "requires_grad": True}, tmp_path)


def test_speed_compare_times_both_in_turns_and_can_be_answered_by_a_hook():
    x, w = torch.randn(1, 4, 16, 16), torch.randn(8, 4, 3, 3)
    calls = []

    def student(x, w, stride=1):
        calls.append(1)
        return torch.nn.functional.conv2d(x, w, stride=stride)

    timing = speed.compare(student, "torch.nn.functional.conv2d", (x, w), {"stride": 1}, torch.device("cpu"),
                           repeats=3, rounds=2, budget_s=10.0)
    assert len(timing.student_s) == 6 and len(timing.reference_s) == 6 and len(calls) == 7  # + the warm-up
    assert timing.ratio == timing.student_ms / timing.reference_ms > 0
    answered = speed.Timing((0.004,), (0.002,))
    with speed.answered_by(lambda *args: answered):
        assert speed.compare(student, "torch.nn.functional.conv2d", (x, w), {}, torch.device("cpu")) is answered
    assert len(calls) == 7 and speed.Timing((0.004,), (0.002,)).ratio == pytest.approx(2.0)


def test_speed_compare_does_not_call_a_function_again_after_a_very_slow_first_call():
    calls = []
    timing = speed.compare(lambda *a: calls.append(1), "torch.nn.functional.relu", (torch.ones(3),), {},
                           torch.device("cpu"), first_s=3.0, give_up_s=2.0, guard=contextlib.nullcontext)
    assert calls == [] and timing.student_s == (3.0,) and len(timing.reference_s) == 5
