"""Evaluation helpers and segmentation metrics shared by the training lectures (6-9).

The training loops themselves stay in the notebooks, where they are taught;
what every notebook would otherwise rewrite lives here:

- :func:`predict`: a PyTorch model's outputs on a large tensor, in batches, without gradients.
- :func:`evaluate`: mean softmax cross-entropy and accuracy of a classifier.
- :func:`wilson_interval`: the 95% interval of an accuracy measured on n examples.
- :func:`dice_score`, :func:`mask_iou`: overlap of predicted and true segmentation masks.
- :func:`soft_dice_loss`: the differentiable Dice loss used to train a U-Net.

PyTorch is imported inside the functions, so ``import utils.training`` stays light.
"""

from __future__ import annotations

import numpy as np

from ._validate import positive_int

__all__ = ["predict", "evaluate", "wilson_interval", "dice_score", "mask_iou", "soft_dice_loss"]


def _model_device(model):
    for tensor in model.parameters():
        return tensor.device
    import torch

    return torch.device("cpu")


def predict(model, x, batch_size=1000):
    """Outputs of a PyTorch ``model`` on ``x``, computed in batches in eval mode without gradients.

    - x: tensor ``(N, ...)`` on any device; each batch is moved to the model's device.
    - returns: tensor ``(N, ...)`` of the model's outputs, on the CPU.

    The model is left in eval mode (dropout off, batch norm using its running statistics).
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim == 0 or len(x) == 0:
        raise ValueError(f"x must hold at least one sample along axis 0, got shape {tuple(x.shape)}")
    batch_size = positive_int(batch_size, "batch_size")
    device = _model_device(model)
    model.eval()
    with torch.no_grad():
        return torch.cat([model(xb.to(device)).cpu() for xb in x.split(batch_size)])


def evaluate(model, x, y, batch_size=1000):
    """Mean softmax cross-entropy and accuracy of a classifier that outputs logits.

    - model: PyTorch module, ``(N, ...) -> (N, num_classes)`` logits.
    - x: tensor ``(N, ...)``; y: integer tensor ``(N,)`` of class indices.
    - returns: ``(loss, accuracy)``, two Python floats; accuracy in [0, 1].
    """
    import torch
    import torch.nn.functional as F

    if not isinstance(y, torch.Tensor) or y.ndim != 1:
        raise ValueError(f"y must be a 1-D tensor of class indices, got {getattr(y, 'shape', type(y).__name__)}")
    if len(y) != len(x):
        raise ValueError(f"x and y must hold the same number of samples, got {len(x)} and {len(y)}")
    logits = predict(model, x, batch_size)
    if logits.ndim != 2:
        raise ValueError(f"the model must output logits of shape (N, num_classes), got {tuple(logits.shape)}")
    y = y.cpu().long()
    loss = F.cross_entropy(logits.float(), y).item()
    accuracy = (logits.argmax(1) == y).double().mean().item()
    return loss, accuracy


Z95 = 1.959963984540054  # the standard normal's 97.5% quantile: P(-Z95 < Z < Z95) = 0.95


def wilson_interval(correct, n, z=Z95):
    """The Wilson score interval of an accuracy ``correct / n`` (Wilson 1927).

    - correct: int, 0 <= correct <= n; n: int >= 1 (e.g. right answers among n test images).
    - z: the normal quantile; the default, ``Z95`` (about 1.96), gives a 95% interval.
    - returns: ``(low, high)``, two floats in [0, 1]. Unlike p +- z*sqrt(p(1-p)/n) it stays inside [0, 1]
      and does not collapse to a point at 0 or n correct answers.
    """
    n = positive_int(n, "n")
    if isinstance(correct, bool) or not isinstance(correct, (int, np.integer)) or not 0 <= correct <= n:
        raise ValueError(f"correct must be an int between 0 and n={n}, got {correct!r}")
    p = correct / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return float(max(centre - half, 0.0)), float(min(centre + half, 1.0))


def _binary_masks(pred, target, threshold):
    def as_array(a, name):
        if hasattr(a, "detach"):  # a torch tensor, on any device
            a = a.detach().cpu().numpy()
        a = np.asarray(a)
        if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            raise TypeError(f"{name} must be a numeric array of mask values, got dtype {a.dtype}")
        return a

    pred, target = as_array(pred, "pred"), as_array(target, "target")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {pred.shape} and {target.shape}")
    if pred.ndim < 2:
        raise ValueError(f"masks must be at least 2-D (H, W) or batched (N, ...), got shape {pred.shape}")
    if not 0.0 < float(threshold) < 1.0:
        raise ValueError(f"threshold must lie strictly between 0 and 1, got {threshold!r}")
    if pred.ndim == 2:  # one (H, W) mask -> a batch of one
        pred, target = pred[None], target[None]
    n = pred.shape[0]
    return pred.reshape(n, -1) > threshold, target.reshape(n, -1) > threshold


def dice_score(pred, target, threshold=0.5):
    """Mean Dice coefficient ``2|P n T| / (|P| + |T|)`` of binary masks, over the images of a batch.

    - pred: probabilities or 0/1 masks, ``(N, ...)`` (any layout: ``(N, 1, H, W)`` or ``(N, H, W, 1)``) or
      one ``(H, W)`` mask; NumPy array or tensor. Pixels ``> threshold`` are foreground.
    - target: the true masks, same shape (0/1 values).
    - returns: a Python float in [0, 1]. An image where both masks are empty scores 1 (a perfect "nothing").
    """
    p, t = _binary_masks(pred, target, threshold)
    inter = (p & t).sum(1)
    total = p.sum(1) + t.sum(1)
    per_image = np.where(total == 0, 1.0, 2.0 * inter / np.maximum(total, 1))
    return float(per_image.mean())


def mask_iou(pred, target, threshold=0.5):
    """Mean intersection over union ``|P n T| / |P u T|`` (Jaccard index) of binary masks over a batch.

    Same inputs as :func:`dice_score`; returns a Python float in [0, 1]; both masks empty scores 1.
    For one image, ``IoU = Dice / (2 - Dice)``, so IoU <= Dice.
    """
    p, t = _binary_masks(pred, target, threshold)
    inter = (p & t).sum(1)
    union = (p | t).sum(1)
    per_image = np.where(union == 0, 1.0, inter / np.maximum(union, 1))
    return float(per_image.mean())


def soft_dice_loss(probs, target, eps=1.0):
    """Differentiable Dice loss ``1 - (2 sum(p t) + eps) / (sum(p) + sum(t) + eps)``, averaged over the batch.

    - probs: tensor ``(N, ...)`` of foreground probabilities in [0, 1] (after the sigmoid).
    - target: tensor of the same shape, 0/1.
    - eps: smoothing that keeps empty masks finite; returns a scalar tensor.

    Unlike pixel-wise cross-entropy it does not let a small object drown in background pixels.
    """
    import torch

    if not isinstance(probs, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError("probs and target must be torch tensors")
    if probs.shape != target.shape:
        raise ValueError(f"probs and target must have the same shape, got {tuple(probs.shape)} and "
                         f"{tuple(target.shape)}")
    n = probs.shape[0]
    p, t = probs.reshape(n, -1), target.reshape(n, -1).to(probs.dtype)
    dice = (2 * (p * t).sum(1) + eps) / (p.sum(1) + t.sum(1) + eps)
    return 1 - dice.mean()
