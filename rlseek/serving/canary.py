"""Canary and shadow deployment with automatic rollback on a rolling metric.

A :class:`CanaryRouter` decides, per request, which policy answers: in ``canary`` mode a
fraction of requests goes to the canary and its answer is returned; in ``shadow`` mode every
request is answered by the stable policy and a fraction is *also* sent to the canary, whose
answer is scored and discarded. Answers are scored by the env's reward registry (the metric,
e.g. ``reward_total`` or ``reward_accuracy``) into a rolling window per policy: in canary mode
each policy's own requests; in shadow mode only the shadowed requests, as pairs (the stable and
the canary answer to the same prompts), so the comparison is paired and an equal canary
compares exactly equal. (Robot actions are scored by the client, which reports the metric of
an executed action through ``POST /v1/feedback``; shadow actions are never executed, so shadow
mode is for language models.)

Rollback: once both windows hold at least ``min_samples`` values, the canary is stopped for
good when ``mean(canary) < mean(stable) − rollback_drop · |mean(stable)|`` — "more than 5 %
below the stable one" at the default ``rollback_drop = 0.05``. Relative to ``|mean|`` so that a
negative metric (robot returns) falls in the right direction too; when the stable mean is 0
any lower canary mean counts as a drop.
"""

from __future__ import annotations

import collections
import logging
import math
import random
import threading
import time
from dataclasses import dataclass

log = logging.getLogger("rlseek.serve")

MODES = ("canary", "shadow")


class MetricWindow:
    """The last ``size`` values of a metric (NaN and infinities are dropped)."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"window size must be >= 1, got {size}")
        self.values: collections.deque[float] = collections.deque(maxlen=int(size))

    def add(self, value: float) -> None:
        if math.isfinite(value):
            self.values.append(float(value))

    def __len__(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values) if self.values else math.nan


@dataclass
class RollbackEvent:
    """Why and when the canary was stopped."""

    time: float
    stable_mean: float
    canary_mean: float
    samples: int

    def message(self, metric: str, drop: float) -> str:
        return (f"canary rolled back: mean {metric} {self.canary_mean:.4g} is more than "
                f"{drop:.0%} below the stable policy's {self.stable_mean:.4g} over the last "
                f"{self.samples} requests; all traffic goes to the stable policy")


class CanaryRouter:
    """Routes requests between a stable and a canary policy and rolls the canary back."""

    def __init__(self, *, fraction: float = 0.1, mode: str = "canary", metric: str = "reward_total",
                 rollback_drop: float = 0.05, window: int = 200, min_samples: int = 50,
                 seed: int = 0) -> None:
        if not (0.0 <= fraction <= 1.0):
            raise ValueError(f"canary fraction must be in [0, 1], got {fraction}")
        if mode not in MODES:
            raise ValueError(f"canary mode must be one of {MODES}, got {mode!r}")
        if not (0.0 <= rollback_drop < 1.0):
            raise ValueError(f"rollback drop must be in [0, 1), got {rollback_drop}")
        if not (1 <= min_samples <= window):
            raise ValueError(f"need 1 <= min_samples <= window, got {min_samples} and {window}")
        self.fraction = float(fraction)
        self.mode = mode
        self.metric = metric
        self.rollback_drop = float(rollback_drop)
        self.min_samples = int(min_samples)
        self.windows = {"stable": MetricWindow(window), "canary": MetricWindow(window)}
        self.active = True
        self.rollback: RollbackEvent | None = None
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def pick_canary(self) -> bool:
        """Whether this request goes to the canary (answers in canary mode, shadows otherwise)."""
        with self._lock:
            return self.active and self._rng.random() < self.fraction

    def record(self, policy: str, value: float) -> RollbackEvent | None:
        """Add one request's metric for ``policy`` ("stable" or "canary"); returns the rollback
        event when this value triggered it."""
        with self._lock:
            self.windows[policy].add(value)
            if not self.active:
                return None
            s, c = self.windows["stable"], self.windows["canary"]
            if len(s) < self.min_samples or len(c) < self.min_samples:
                return None
            threshold = s.mean - self.rollback_drop * abs(s.mean)
            if c.mean < threshold:
                self.active = False
                self.rollback = RollbackEvent(time.time(), s.mean, c.mean, min(len(s), len(c)))
                log.warning(self.rollback.message(self.metric, self.rollback_drop))
                return self.rollback
            return None
