"""The trusted verifier on assignment 3 (building CNNs): models cross as plain data and are rebuilt.

The student's builders (lenet5, vgg_block, the class ResidualBlock, small_unet) and train_digits run only in
the sandboxed child; each model they return crosses as its layers' configuration, its weights (.npy) and
its forward pass as a torch.fx graph (utils.grading.model_transport), and the parent runs the course's own
checks (utils.grading.a3) on a model rebuilt from torch.nn layers. train_digits's time is the child's.
"""

from __future__ import annotations

import contextlib
import json
import pathlib

import pytest
from verifier_helpers import SEED, example_sources, failing, scores, trusted_verifier, verify_code

from utils.grading import a3

ROOT = pathlib.Path(__file__).resolve().parents[1]
AID = "a3_building_cnns"
POINTS = {"lenet5_tests": 3.0, "vgg_block_tests": 3.0, "ResidualBlock_tests": 4.0, "small_unet_tests": 4.0,
          "train_digits_tests": 6.0}
EXPECTED = json.loads((ROOT / "examples" / "submissions" / f"expected_{AID}.json").read_text())

KERAS_LENET = '''
import keras


def lenet5(num_classes=10):
    return keras.Sequential([
        keras.Input((32, 32, 1)),
        keras.layers.Conv2D(6, 5, activation="relu"), keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(16, 5, activation="relu"), keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(120, activation="relu"), keras.layers.Dense(84, activation="relu"),
        keras.layers.Dense(num_classes),
    ])
'''


# Where train_digits is not what a test is about: an answer that fails at once instead of the solution's two
# trainings (about 25 s of the child's time each test on 2 cores); train_digits_tests then fails, as asserted.
NOT_TRAINING = {"train_digits": "def train_digits(x_train, y_train, seed=0):\n    raise NotImplementedError\n"}
UNTRAINED = {"train_digits_tests"}


def sources(student: str) -> dict[str, str]:
    return example_sources(student, AID)


@pytest.fixture(scope="module")
def verifier():
    """Recorded as if the machine were so busy that the instructor's training took past the time limit:
    the reference's duration is not the student's, and must not fail the recording (it once did, under
    pytest-xdist: "the instructor's solution fails its own test train_digits_tests ... took 80.5 s")."""
    with contextlib.ExitStack() as stack:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(a3, "TIME_LIMIT_S", 1e-6)
            made = stack.enter_context(trusted_verifier(AID, wall_seconds=150, budget_seconds=400))
        yield made


@pytest.fixture
def run(verifier, monkeypatch, tmp_path):
    monkeypatch.setenv("CNN_COURSE_GRADER_SEED", SEED)

    def run_with(code: dict[str, str], append: dict[str, str] | None = None):
        code = dict(code)
        for gid, extra in (append or {}).items():
            code[gid] += "\n" + extra
        return verify_code(verifier, tmp_path, code)

    return run_with


def test_the_setup_imports_utils_and_every_check_makes_calls(verifier):
    assert "import utils" in verifier.assignment.setup  # train_digits calls utils.device.seed_everything
    assert {gid: points for gid, (_, points) in verifier.assignment.tests.items()} == POINTS
    assert all(verifier.calls[gid] for gid in POINTS)
    assert all(c.rng_state is not None for c in verifier.calls["lenet5_tests"])  # initial weights as in the kernel


def test_the_instructors_solution_gets_every_point(run, verifier):
    verdicts = run(verifier.assignment.solutions)
    assert scores(verdicts) == POINTS
    assert all(v.message == "" for v in verdicts.values())


@pytest.mark.parametrize("student", ["bob", "dave", "carol"])
def test_example_submissions_get_their_expected_scores_with_the_checks_diagnosis(run, student):
    verdicts = run(sources(student))
    assert scores(verdicts) == {gid: float(points) for gid, points in EXPECTED[student].items()}
    messages = EXPECTED["messages"].get(student, {})
    for gid, words in messages.items():
        assert words in verdicts[gid].message, (gid, verdicts[gid].message)


def test_a_keras_lenet_is_rebuilt_from_its_config_and_passes(run, verifier):
    verdicts = run({**verifier.assignment.solutions, **NOT_TRAINING, "lenet5": KERAS_LENET})
    assert verdicts["lenet5_tests"].passed, verdicts["lenet5_tests"].message
    assert failing(verdicts) == UNTRAINED


def test_patching_the_checks_and_torch_in_the_child_gets_the_score_of_an_honest_wrong_answer(run, verifier):
    no_84 = verifier.assignment.solutions["lenet5"].replace("nn.Linear(120, 84), nn.ReLU(),\n", "").replace(
        "nn.Linear(84, num_classes)", "nn.Linear(120, num_classes)")
    assert no_84 != verifier.assignment.solutions["lenet5"]
    honest = run({**verifier.assignment.solutions, **NOT_TRAINING, "lenet5": no_84})
    patches = ("\nimport numpy as np\nnp.allclose = lambda *a, **k: True\ntorch.allclose = lambda *a, **k: True\n"
               "nn.Module.parameters = lambda self, recurse=True: iter(())\n"
               "import utils.grading.a3 as checks\nchecks.check_lenet5 = lambda *a, **k: None\n")
    patched = run({**verifier.assignment.solutions, **NOT_TRAINING, "lenet5": no_84 + patches})
    assert failing(honest) == {"lenet5_tests"} | UNTRAINED
    assert "a dense layer is missing" in honest["lenet5_tests"].message
    assert scores(patched)["lenet5_tests"] == 0.0
    assert scores(patched)["vgg_block_tests"] == POINTS["vgg_block_tests"]


def test_a_model_the_grader_cannot_trace_fails_with_what_to_change(run, verifier):
    branchy = ("\nclass Branchy(nn.Module):\n    def __init__(self, inner):\n        super().__init__()\n"
               "        self.inner = inner\n\n    def forward(self, x):\n        if x.sum() > 0:\n"
               "            return self.inner(x)\n        return self.inner(-x)\n\n\n_built = vgg_block\n\n\n"
               "def vgg_block(*args):\n    return Branchy(_built(*args))\n")
    verdicts = run({**verifier.assignment.solutions, **NOT_TRAINING}, append={"vgg_block": branchy})
    assert failing(verdicts) == {"vgg_block_tests"} | UNTRAINED
    message = verdicts["vgg_block_tests"].message
    assert message.startswith("vgg_block: vgg_block(") and "raised ModelExportError: the grader rebuilds" in message


def test_a_class_that_is_not_a_module_fails_residual_block(run, verifier):
    plain = "class ResidualBlock:\n    def __init__(self, in_channels, out_channels, stride=1):\n        pass\n"
    verdicts = run({**verifier.assignment.solutions, **NOT_TRAINING, "ResidualBlock": plain})
    assert failing(verdicts) == {"ResidualBlock_tests"} | UNTRAINED
    assert "ResidualBlock" in verdicts["ResidualBlock_tests"].message


def test_train_digits_is_timed_in_the_child_not_in_the_replay(run, verifier, monkeypatch):
    # 1.5 s of CPU work in the child (wall-clock time spent waiting for a core is not charged), then an
    # untrained model: the time check comes before the accuracy check
    slow = "\nimport time\n\n\ndef train_digits(*args, **kwargs):\n" \
           "    start = time.process_time()\n    while time.process_time() - start < 1.5:\n        pass\n" \
           "    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))\n"
    monkeypatch.setattr(a3, "TIME_LIMIT_S", 1.0)  # the replay itself takes a few ms
    verdicts = run(verifier.assignment.solutions, append={"train_digits": slow})
    assert failing(verdicts) == {"train_digits_tests"}
    assert "the limit is 1 s" in verdicts["train_digits_tests"].message
