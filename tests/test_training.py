"""utils.training: batched prediction, classifier evaluation and its Wilson interval, mask metrics and the Dice loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from utils import training


class FixedLogits(torch.nn.Module):
    """Returns the rows of a fixed logit table picked by the integer in x[:, 0]."""

    def __init__(self, table):
        super().__init__()
        self.table = torch.nn.Parameter(torch.as_tensor(table, dtype=torch.float32))
        self.calls = []

    def forward(self, x):
        self.calls.append(len(x))
        return self.table[x[:, 0].long()]


def test_predict_batches_and_returns_cpu_outputs_in_eval_mode():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Dropout(0.5))
    x = torch.randn(10, 3)
    out = training.predict(model, x, batch_size=4)
    assert out.shape == (10, 4) and out.device.type == "cpu" and not out.requires_grad
    assert not model.training  # dropout off: the same as one full-batch call without dropout
    torch.testing.assert_close(out, model[0](x).detach())


def test_predict_uses_the_requested_batch_size():
    model = FixedLogits(np.eye(3))
    training.predict(model, torch.tensor([[0], [1], [2], [0], [1]]), batch_size=2)
    assert model.calls == [2, 2, 1]


def test_evaluate_gives_exact_loss_and_accuracy():
    table = np.array([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 1.0]])
    model = FixedLogits(table)
    x = torch.tensor([[0], [1], [2], [2]])
    y = torch.tensor([0, 1, 2, 0])  # the last one is wrong: predicted 2, true 0
    loss, accuracy = training.evaluate(model, x, y, batch_size=3)
    logits = torch.as_tensor(table, dtype=torch.float32)[x[:, 0]]
    assert accuracy == 0.75
    assert loss == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)


@pytest.mark.parametrize(
    "args, error, words",
    [
        (("not a model", torch.zeros(2, 1), torch.zeros(2)), TypeError, "torch.nn.Module"),
        ((FixedLogits(np.eye(2)), torch.zeros(3, 1), torch.zeros(2).long()), ValueError, "same number"),
        ((FixedLogits(np.eye(2)), torch.zeros(2, 1), torch.zeros(2, 1).long()), ValueError, "1-D"),
        ((FixedLogits(np.eye(2)), torch.zeros(0, 1), torch.zeros(0).long()), ValueError, "at least one"),
    ],
)
def test_evaluate_rejects_bad_input_by_name(args, error, words):
    with pytest.raises(error, match=words):
        training.evaluate(*args)


def test_dice_and_iou_on_a_worked_example():
    pred = np.zeros((4, 4))
    pred[:2, :2] = 1          # 4 pixels
    target = np.zeros((4, 4))
    target[:2, :3] = 1        # 6 pixels, 4 shared
    assert training.dice_score(pred, target) == pytest.approx(2 * 4 / (4 + 6))
    assert training.mask_iou(pred, target) == pytest.approx(4 / 6)


def test_metrics_average_per_image_and_score_empty_pairs_as_perfect():
    pred = np.zeros((2, 1, 3, 3), np.float32)
    target = np.zeros((2, 1, 3, 3), np.uint8)
    target[1, 0, 0, 0] = 1            # image 0: both empty (1.0); image 1: missed the only pixel (0.0)
    assert training.dice_score(pred, target) == 0.5
    assert training.mask_iou(pred, target) == 0.5


def test_metrics_threshold_probabilities_and_accept_tensors():
    probs = torch.tensor([[0.2, 0.7], [0.51, 0.49]])
    target = torch.tensor([[0, 1], [1, 0]])
    assert training.dice_score(probs, target) == 1.0
    assert training.dice_score(probs, target, threshold=0.6) == pytest.approx(2 * 1 / (1 + 2))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_iou_equals_dice_over_two_minus_dice_for_one_image(seed):
    rng = np.random.default_rng(seed)
    pred, target = rng.random((6, 7)) > 0.5, rng.random((6, 7)) > 0.5
    dice = training.dice_score(pred, target)
    assert training.mask_iou(pred, target) == pytest.approx(dice / (2 - dice))


@pytest.mark.parametrize(
    "pred, target, threshold, words",
    [
        (np.zeros((2, 3)), np.zeros((3, 2)), 0.5, "same shape"),
        (np.zeros(3), np.zeros(3), 0.5, "at least 2-D"),
        (np.zeros((2, 2)), np.zeros((2, 2)), 1.0, "threshold"),
        (np.array([["a", "b"]]), np.zeros((1, 2)), 0.5, "numeric"),
    ],
)
def test_metrics_reject_bad_input_by_name(pred, target, threshold, words):
    with pytest.raises((ValueError, TypeError), match=words):
        training.dice_score(pred, target, threshold)


def test_soft_dice_loss_is_zero_for_a_perfect_mask_and_has_gradients():
    target = torch.zeros(2, 1, 4, 4)
    target[:, :, 1:3, 1:3] = 1
    assert training.soft_dice_loss(target.clone(), target).item() == pytest.approx(0.0, abs=1e-7)
    probs = torch.full((2, 1, 4, 4), 0.5, requires_grad=True)
    loss = training.soft_dice_loss(probs, target, eps=0.0)
    # each image: 2 * (0.5 * 4) / (0.5 * 16 + 4) = 1/3
    assert loss.item() == pytest.approx(2 / 3, rel=1e-6)
    loss.backward()
    assert probs.grad is not None and torch.isfinite(probs.grad).all()
    assert (probs.grad[:, :, 1:3, 1:3] < 0).all()  # raising a true pixel's probability lowers the loss


def test_soft_dice_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        training.soft_dice_loss(torch.zeros(1, 4), torch.zeros(1, 5))


# ---------------------------------------------------------------------------
# wilson_interval: reference values from scipy.stats.binomtest(k, n).proportion_ci(method="wilson")


@pytest.mark.parametrize("correct, n, low, high", [
    (0, 10, 0.0, 0.27753279986288926),
    (99, 100, 0.9455138038212946, 0.9982325679358593),
    (1800, 2000, 0.8860755875933476, 0.9123907745816503),
    (1980, 2000, 0.984604061540925, 0.9935172321234474),
])
def test_wilson_interval_matches_scipy(correct, n, low, high):
    assert training.wilson_interval(correct, n) == pytest.approx((low, high), abs=1e-12)


def test_wilson_interval_stays_in_the_unit_interval_at_all_right():
    low, high = training.wilson_interval(10, 10)
    assert (low, high) == pytest.approx((1 - 0.27753279986288926, 1.0), abs=1e-12)


@pytest.mark.parametrize("correct, n, message", [
    (11, 10, "correct must be an int between 0 and n=10"),
    (-1, 10, "correct must be an int between 0 and n=10"),
    (0.5, 10, "correct must be an int between 0 and n=10"),
    (1, 0, "n"),
])
def test_wilson_interval_refuses_impossible_counts(correct, n, message):
    with pytest.raises(ValueError, match=message):
        training.wilson_interval(correct, n)
