"""Argument checks shared by the utils modules.

Each raises ``ValueError`` or ``TypeError`` whose message names the argument
and the rule it broke, so a student sees what to fix.
"""

from __future__ import annotations

import numbers

import numpy as np


def positive_int(value, name: str) -> int:
    """Return ``value`` as an int, or raise if it is not an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer (>= 1), got {value}")
    return int(value)


def non_negative_int(value, name: str) -> int:
    """Return ``value`` as an int, or raise if it is not an integer >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be non-negative (>= 0), got {value}")
    return int(value)


def as_tuple(value, n: int, name: str, check=positive_int) -> tuple[int, ...]:
    """Expand an int to an ``n``-tuple, or check a length-``n`` sequence.

    ``check`` validates each entry (``positive_int`` or ``non_negative_int``).
    """
    if isinstance(value, (tuple, list)):
        if len(value) != n:
            raise ValueError(f"{name} must be an int or a sequence of {n} ints, got {value!r}")
        return tuple(check(v, name) for v in value)
    return (check(value, name),) * n


def array_of_rank(x, rank: int, name: str, layout: str) -> np.ndarray:
    """Return ``x`` as an ndarray, or raise if it does not have ``rank`` dimensions."""
    x = np.asarray(x)
    if x.ndim != rank:
        raise ValueError(
            f"{name} must have {rank} dimensions {layout}, got shape {x.shape} ({x.ndim} dimensions)"
        )
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise TypeError(f"{name} must hold numbers, got dtype {x.dtype}")
    return x
