"""Aggregate statistics over seeds, after Agarwal et al. (2021), "Deep RL at the Edge of the
Statistical Precipice": interquartile mean (IQM), stratified-bootstrap 95% confidence intervals
and the probability of improvement of one algorithm over another.

Scores are arranged as ``(runs, tasks)`` matrices: one row per seed, one column per task (a
single dataset is one task). Report *final* scores, not the best seen during training.

The point estimates come from :mod:`rliable.metrics`. The bootstrap is done here: rliable's
``library.get_interval_estimates`` needs the ``arch`` package, whose 7.x releases do not import
with pandas 3 and whose 8.x releases changed the keyword rliable passes; and rliable's resampling
draws from NumPy's global generator, so its CIs cannot be seeded. Ours resamples runs with
replacement inside each task (stratified over tasks, as rliable does) from a seeded generator,
and takes percentile intervals.

:class:`RunningMeanStd` is the streaming mean/std that reward normalization (per term, in
:class:`rlseek.rewards.WeightedReward`) and lm-ppo's score normalization share.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlseek.errors import RlseekError

DEFAULT_REPS = 2000
"""Bootstrap replications; 2000 keeps percentile CI endpoints stable to about ±1% of the width."""


def as_score_matrix(scores: Any, name: str = "scores") -> np.ndarray:
    """``scores`` as a float ``(runs, tasks)`` matrix; a 1-D sequence is one task."""
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise RlseekError(f"{name}: need a (runs, tasks) matrix with at least one run, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise RlseekError(f"{name}: scores must be finite numbers")
    return arr


def iqm(scores: Any) -> float:
    """Interquartile mean: the mean of the middle 50% of all run × task scores.

    It is robust to a few outlier seeds (unlike the mean) and uses half the data (unlike the
    median), which is why rliable recommends it for few-seed comparisons.
    """
    from rliable import metrics as rly_metrics

    return float(rly_metrics.aggregate_iqm(as_score_matrix(scores)))


def probability_of_improvement(scores_x: Any, scores_y: Any) -> float:
    """P(X > Y): the chance that a random run of X scores higher than a random run of Y on the
    same task (Mann–Whitney U statistic / (n_x · n_y), ties counting half), averaged over tasks.
    """
    x, y = as_score_matrix(scores_x, "scores_x"), as_score_matrix(scores_y, "scores_y")
    if x.shape[1] != y.shape[1]:
        raise RlseekError(f"probability of improvement: X has {x.shape[1]} tasks, Y has {y.shape[1]}")
    from rliable import metrics as rly_metrics

    return float(rly_metrics.probability_of_improvement(x, y))


def _resample(arr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One stratified resample: runs drawn with replacement, independently within each task."""
    runs, tasks = arr.shape
    idx = rng.integers(0, runs, size=(runs, tasks))
    return np.take_along_axis(arr, idx, axis=0)


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap confidence interval."""

    estimate: float
    low: float
    high: float
    confidence: float

    def to_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "ci_low": self.low, "ci_high": self.high,
                "confidence": self.confidence}


def bootstrap_ci(
    func: Callable[..., float],
    *score_arrays: Any,
    reps: int = DEFAULT_REPS,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile CI of ``func(*score_arrays)`` under a stratified bootstrap.

    Every array is resampled independently (runs within each task), so two algorithms with
    different numbers of seeds can be compared, as with rliable's independent bootstrap.

    Args:
        func: maps one or more ``(runs, tasks)`` matrices to a number (e.g. :func:`iqm`).
        score_arrays: the score matrices.
        reps: bootstrap replications.
        confidence: interval coverage, e.g. 0.95.
        seed: seed of the resampling generator (the same seed gives the same interval).
    """
    if reps < 1:
        raise RlseekError(f"bootstrap reps must be >= 1, got {reps}")
    if not 0.0 < confidence < 1.0:
        raise RlseekError(f"confidence must be in (0, 1), got {confidence}")
    arrays = [as_score_matrix(a) for a in score_arrays]
    rng = np.random.default_rng(seed)
    stats = np.empty(reps, dtype=np.float64)
    for i in range(reps):
        stats[i] = func(*(_resample(a, rng) for a in arrays))
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return Interval(float(func(*arrays)), float(low), float(high), confidence)


def summarize(
    scores: Mapping[str, Any], reps: int = DEFAULT_REPS, confidence: float = 0.95, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """Per algorithm: IQM with its CI, mean with its CI, median, and the raw scores."""
    out: dict[str, dict[str, Any]] = {}
    for name, s in scores.items():
        arr = as_score_matrix(s, name)
        out[name] = {
            "runs": int(arr.shape[0]),
            "iqm": bootstrap_ci(iqm, arr, reps=reps, confidence=confidence, seed=seed).to_dict(),
            "mean": bootstrap_ci(
                lambda a: float(np.mean(a)), arr, reps=reps, confidence=confidence, seed=seed
            ).to_dict(),
            "median": float(np.median(arr)),
            "scores": arr[:, 0].tolist() if arr.shape[1] == 1 else arr.tolist(),
        }
    return out


def improvement(
    scores_x: Any, scores_y: Any, reps: int = DEFAULT_REPS, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """P(X > Y) with its stratified-bootstrap CI (runs of X and Y resampled independently)."""
    return bootstrap_ci(
        probability_of_improvement, scores_x, scores_y, reps=reps, confidence=confidence, seed=seed
    )


class RunningMeanStd:
    """Running mean and variance (Chan et al. parallel update) of a scalar stream."""

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0

    def update(self, values: np.ndarray) -> None:
        """Fold finite ``values`` into the running statistics."""
        values = np.asarray(values, dtype=np.float64)
        values = values[np.isfinite(values)]
        n = values.size
        if n == 0:
            return
        b_mean = float(values.mean())
        b_m2 = float(((values - b_mean) ** 2).sum())
        total = self.count + n
        delta = b_mean - self.mean
        self.mean += delta * n / total
        self.m2 += b_m2 + delta * delta * self.count * n / total
        self.count = total

    @property
    def std(self) -> float:
        """Population standard deviation of everything seen so far (0 before two samples)."""
        return math.sqrt(self.m2 / self.count) if self.count > 1 else 0.0

    def state_dict(self) -> dict[str, float]:
        return {"count": self.count, "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, state: Mapping[str, float]) -> None:
        self.count = int(state["count"])
        self.mean = float(state["mean"])
        self.m2 = float(state["m2"])
