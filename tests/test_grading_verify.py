"""The trusted verifier (utils.grading.verify) on assignment 1, with the real sandbox and real child processes.

Each test hands the verifier the solution cells of a real submission (alice: all correct; bob: four
known mistakes), some of them replaced by hostile code, and checks the per-test verdicts.
"""

from __future__ import annotations

import pathlib
import pickle
import time

import nbformat
import numpy as np
import pytest
from verifier_helpers import SEED, example_sources, scores, trusted_verifier, verify_code

from utils.grading import transport, verify

ROOT = pathlib.Path(__file__).resolve().parents[1]
AID = "a1_numpy_convolution"
POINTS = {"zero_pad_tests": 1.0, "conv_single_step_tests": 1.0, "conv_output_size_tests": 1.0,
          "conv_forward_tests": 3.0, "conv_param_count_tests": 1.0, "pool_forward_tests": 2.0,
          "conv_backward_tests": 3.0, "pool_backward_tests": 2.0}
BOB_FAILS = {"conv_forward_tests", "conv_param_count_tests", "pool_forward_tests", "conv_backward_tests"}


def sources(student: str) -> dict[str, str]:
    return example_sources(student, AID)


@pytest.fixture(scope="module")
def verifier():
    with trusted_verifier(AID, wall_seconds=20, budget_seconds=60) as made:
        yield made


@pytest.fixture
def run(verifier, monkeypatch, tmp_path):
    monkeypatch.setenv("CNN_COURSE_GRADER_SEED", SEED)

    def run_with(replacements: dict[str, str], student: str = "alice"):
        return verify_code(verifier, tmp_path, {**sources(student), **replacements})

    return run_with


def test_assignment_is_read_from_the_instructor_notebook(verifier):
    assert list(verifier.assignment.tests) == list(POINTS)
    assert {gid: points for gid, (_, points) in verifier.assignment.tests.items()} == POINTS
    assert verifier.functions["conv_forward"] == ["conv_forward"]
    assert all(verifier.calls[gid] for gid in POINTS)  # every test makes calls that the child must answer


def test_correct_submission_gets_every_point(run):
    verdicts = run({})
    assert scores(verdicts) == POINTS
    assert all(v.passed and v.message == "" for v in verdicts.values())


def test_known_mistakes_fail_only_their_tests_with_a_diagnosis(run):
    verdicts = run({}, student="bob")
    assert {gid for gid, v in verdicts.items() if not v.passed} == BOB_FAILS
    assert sum(v.score for v in verdicts.values()) == 5.0
    assert "you computed the average of each window" in verdicts["pool_forward_tests"].message
    assert "db is not summed over the batch" in verdicts["conv_backward_tests"].message


def test_template_gets_not_implemented_messages(run):
    template = nbformat.read(ROOT / "assignments" / AID / f"{AID}.ipynb", as_version=4)
    code = {c.metadata["nbgrader"]["grade_id"]: c.source for c in template.cells
            if c.metadata.get("nbgrader", {}).get("solution")}
    verdicts = run(code)
    assert scores(verdicts) == dict.fromkeys(POINTS, 0.0)
    assert all("not implemented yet" in v.message for v in verdicts.values())


WRONG_PAD = '''
import numpy as np
np.allclose = lambda *args, **kwargs: True            # the grader's comparisons, if they ran here
np.testing.assert_allclose = lambda *args, **kwargs: None
np.array_equal = lambda *args, **kwargs: True
def zero_pad(x, pad):
    return np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), constant_values=1.0)
'''


def test_monkeypatching_numpy_gets_the_score_of_an_honest_wrong_answer(run):
    honest = "\n".join(line for line in WRONG_PAD.splitlines() if not line.startswith("np."))
    verdicts, honest_verdicts = run({"zero_pad": WRONG_PAD}), run({"zero_pad": honest})
    assert scores(verdicts) == scores(honest_verdicts)
    assert verdicts["zero_pad_tests"].score == 0.0  # (alice's conv_forward calls her zero_pad: it fails too)
    assert verdicts["zero_pad_tests"].message == honest_verdicts["zero_pad_tests"].message
    assert verdicts["pool_forward_tests"].passed


RIGGED = '''
import numpy as np
class Always(np.ndarray):
    def __eq__(self, other):
        return True
    def __array_finalize__(self, obj):
        pass
def conv_forward(x, w, b, stride, pad):
    return np.zeros(3).view(Always)
def conv_param_count(f, c_in, c_out):
    return float("nan")
'''


def test_rigged_return_objects_arrive_as_their_type_and_fail(run):
    verdicts = run({"conv_forward": RIGGED, "conv_param_count": RIGGED.replace("def conv_forward", "def unused")})
    assert not verdicts["conv_forward_tests"].passed and not verdicts["conv_param_count_tests"].passed
    assert "Always" in verdicts["conv_forward_tests"].message
    assert verdicts["pool_forward_tests"].passed  # the other functions are unaffected


def test_nan_and_wrong_dtype_outputs_fail(run):
    nan_pad = "import numpy as np\ndef zero_pad(x, pad):\n    return np.full((x.shape[0], x.shape[1] + 2 * pad, " \
              "x.shape[2] + 2 * pad, x.shape[3]), np.nan)\n"
    int_pad = "import numpy as np\ndef zero_pad(x, pad):\n    return np.pad(x, ((0, 0), (pad, pad), (pad, pad), " \
              "(0, 0))).astype(np.int64)\n"
    assert "not finite" in run({"zero_pad": nan_pad})["zero_pad_tests"].message \
        or "NaN" in run({"zero_pad": nan_pad})["zero_pad_tests"].message
    assert "dtype" in run({"zero_pad": int_pad})["zero_pad_tests"].message


def test_an_endless_loop_costs_only_its_function_and_ends_in_bounded_time(verifier, run):
    endless = "def conv_forward(x, w, b, stride, pad):\n    while True:\n        pass\n"
    verifier.wall_seconds = 4
    try:
        started = time.monotonic()
        verdicts = run({"conv_forward": endless})
        elapsed = time.monotonic() - started
    finally:
        verifier.wall_seconds = 20
    assert scores(verdicts) == {**POINTS, "conv_forward_tests": 0.0}
    assert "time limit" in verdicts["conv_forward_tests"].message
    assert elapsed < 30


def test_an_endless_loop_at_the_top_of_a_cell_costs_that_cell(verifier, run):
    verifier.wall_seconds = 4
    try:
        verdicts = run({"conv_param_count": "while True:\n    pass\n"})
    finally:
        verifier.wall_seconds = 20
    assert scores(verdicts) == {**POINTS, "conv_param_count_tests": 0.0}
    assert "while its cell ran" in verdicts["conv_param_count_tests"].message


@pytest.mark.parametrize("body, words", [
    ("import os\n    os._exit(3)", "exited with code 3"),
    ("import sys\n    sys.exit(0)", "raised SystemExit"),
    ("raise KeyboardInterrupt", "raised KeyboardInterrupt"),
    ("x = bytearray(8 * 2**30)\n    return x", "MemoryError"),
])
def test_exits_interrupts_and_memory_bombs_fail_that_test_only(run, body, words):
    verdicts = run({"conv_single_step": f"def conv_single_step(a_slice, w, b):\n    {body}\n"})
    assert scores(verdicts) == {**POINTS, "conv_single_step_tests": 0.0}
    assert words in verdicts["conv_single_step_tests"].message


def test_hard_coded_visible_answers_fail_the_hidden_inputs(run):
    hard_coded = "def conv_output_size(n, f, pad, stride):\n    return 3\n"
    verdicts = run({"conv_output_size": hard_coded})
    assert verdicts["conv_output_size_tests"].score == 0.0


def test_forbidden_references_through_importlib_and_getattr_are_caught(run):
    via_importlib = ("import importlib\ndef conv_forward(x, w, b, stride, pad):\n"
                     "    signal = importlib.import_module('scipy.signal')\n    return signal\n")
    via_getattr = ("import numpy as np\ndef conv_single_step(a_slice, w, b):\n"
                   "    name = 'con' + 'volve'\n    return getattr(np, name)(a_slice.ravel(), w.ravel())[0]\n")
    verdicts = run({"conv_forward": via_importlib, "conv_single_step": via_getattr})
    assert "importlib" in verdicts["conv_forward_tests"].message
    assert "getattr with a computed name" in verdicts["conv_single_step_tests"].message
    assert verdicts["zero_pad_tests"].passed


def test_the_child_cannot_read_the_solutions_or_the_grader_seed(run):
    spy = (
        "import os, pathlib\n"
        "def conv_param_count(f, c_in, c_out):\n"
        f"    found = [p for p in ({str(ROOT / 'solutions')!r}, {str(ROOT / 'tests')!r}) if os.listdir(p)]\n"
        "    if found or os.environ.get('CNN_COURSE_GRADER_SEED'):\n"
        "        return -1\n"
        "    return (f * f * c_in + 1) * c_out\n"
    )
    assert run({"conv_param_count": spy})["conv_param_count_tests"].passed


def test_forged_result_files_are_never_unpickled(run, tmp_path):
    sentinel = tmp_path / "unpickled"
    payload = pickle.dumps(np.array([Exploit(str(sentinel))], dtype=object))
    forge = (
        "import numpy as np, pathlib\n"
        "def zero_pad(x, pad):\n"
        f"    pathlib.Path('evil.npy').write_bytes({payload!r})\n"
        "    return np.zeros((1,), dtype=object)\n"
    )
    verdicts = run({"zero_pad": forge})
    assert not verdicts["zero_pad_tests"].passed
    assert not sentinel.exists()


class Exploit:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def test_transport_round_trips_plain_values_and_refuses_pickles(tmp_path):
    values = [None, 3, np.int64(4), 2.5, np.float32(1.5), True, "max", (np.arange(6.0).reshape(2, 3), [1, 2]),
              np.array([np.nan, np.inf])]
    for index, value in enumerate(values):
        record = transport.loads(transport.dumps(transport.encode(value, tmp_path, f"v{index}")))
        back = transport.decode(record, tmp_path)
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(back, value)
        elif isinstance(value, tuple):
            np.testing.assert_array_equal(back[0], value[0])
            assert back[1] == value[1]
        else:
            assert back == value and type(back) is type(value)
    assert transport.encode(np.zeros(2).view(np.matrix), tmp_path, "m")["kind"] == "opaque"
    np.save(tmp_path / "evil.npy", np.array([object()], dtype=object), allow_pickle=True)
    with pytest.raises(transport.TransportError, match="not a plain .npy array"):
        transport.decode({"kind": "array", "file": "evil.npy", "dtype": "|O", "shape": [1]}, tmp_path)
    with pytest.raises(transport.TransportError, match="bad array file name"):
        transport.decode({"kind": "array", "file": "../x.npy"}, tmp_path)
    with pytest.raises(transport.TransportError, match="non-standard JSON"):
        transport.loads('{"kind": "scalar", "value": NaN}')


def test_dynamic_access_scan_names_what_it_found():
    assert verify.dynamic_access("import numpy as np\ndef f(x):\n    return np.sum(x)\n") == []
    assert verify.dynamic_access("def f():\n    return __import__('scipy')\n") == ["__import__"]
    assert verify.dynamic_access("import importlib.util\n") == ["importlib.util"]
    assert verify.dynamic_access("def f(m, n):\n    return getattr(m, n)\n") == ["getattr with a computed name"]
    assert verify.dynamic_access("def f(m):\n    return getattr(m, 'shape')\n") == []


def test_importing_a_reference_library_is_harmless_but_using_it_fails(run):
    harmless = "import tensorflow as tf  # never used\nimport scipy.signal\n" + sources("alice")["conv_param_count"]
    used = ("import scipy.signal\ndef conv_single_step(a_slice, w, b):\n"
            "    return scipy.signal.correlate(a_slice, w, mode='valid').item() + float(b)\n")
    verdicts = run({"conv_param_count": harmless, "conv_single_step": used})
    assert verdicts["conv_param_count_tests"].passed
    assert not verdicts["conv_single_step_tests"].passed
    assert "scipy.signal is off limits while your functions are checked" in verdicts["conv_single_step_tests"].message
