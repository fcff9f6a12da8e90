"""The task × task accuracy matrix of a continual run and its standard figures.

``R[i][j]`` is the accuracy on task j after training on tasks 0..i (Lopez-Paz & Ranzato, 2017).
With T tasks:

* average accuracy ``ACC = mean_j R[T-1][j]`` — how good the final policy is on every task;
* backward transfer ``BWT = mean_{j<T-1} (R[T-1][j] − R[j][j])`` — how much later tasks changed
  earlier ones (negative: forgetting).

Accuracy is the task family's own score in [0, 1]: text tasks the exact-answer rate of the
evaluation, robot tasks the success rate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rlseek.errors import RlseekError


def as_matrix(rows: Sequence[Sequence[float]]) -> np.ndarray:
    """A complete T × T accuracy matrix (T >= 2) as a float array."""
    r = np.asarray(rows, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] != r.shape[1] or r.shape[0] < 2:
        raise RlseekError(f"an accuracy matrix must be T x T with T >= 2, got shape {r.shape}")
    return r


def average_accuracy(rows: Sequence[Sequence[float]]) -> float:
    """ACC: the mean of the last row."""
    return float(as_matrix(rows)[-1].mean())


def backward_transfer(rows: Sequence[Sequence[float]]) -> float:
    """BWT: the mean over earlier tasks of final accuracy minus accuracy right after learning it."""
    r = as_matrix(rows)
    t = r.shape[0]
    return float(np.mean([r[-1, j] - r[j, j] for j in range(t - 1)]))


def summary(rows: Sequence[Sequence[float]], names: Sequence[str]) -> dict[str, object]:
    """The matrix with its task names, ACC and BWT (what the run's summary.json records)."""
    r = as_matrix(rows)
    if len(names) != r.shape[0]:
        raise RlseekError(f"{len(names)} task names for a {r.shape[0]}-task matrix")
    return {"tasks": list(names), "accuracy_matrix": r.tolist(),
            "average_accuracy": average_accuracy(r), "backward_transfer": backward_transfer(r)}
