"""Controllers of the KL-penalty coefficient β and the entropy-bonus coefficient α.

Both are updated once per PPO iteration from that iteration's measured value and keep their
state in a plain dict so that checkpoints store them as JSON.
"""

from __future__ import annotations

import math
from typing import Any


class KLController:
    """A fixed KL-penalty coefficient β (``kl_control: fixed``)."""

    def __init__(self, kl_coef: float) -> None:
        self.value = float(kl_coef)

    def update(self, kl: float, n_steps: int) -> float:
        """Observe the iteration's mean sequence KL over ``n_steps`` completions; returns β."""
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = float(state["value"])


class AdaptiveKLController(KLController):
    """Ziegler et al. (2019)'s proportional controller of β.

    After an iteration of ``n`` completions with mean sequence KL ``kl`` (nats)::

        e = clip(kl / target − 1, −0.2, 0.2)
        β ← β · (1 + e · n / horizon)

    So β grows when the policy drifts further from the reference than ``target`` and shrinks
    when it stays closer; the clip bounds the step to ±20 % × n / horizon, and ``horizon``
    (in completions) sets how fast β reacts.
    """

    def __init__(self, kl_coef: float, target: float, horizon: int) -> None:
        super().__init__(kl_coef)
        if target <= 0 or horizon <= 0:
            raise ValueError("target and horizon must be > 0")
        self.target = float(target)
        self.horizon = int(horizon)

    def update(self, kl: float, n_steps: int) -> float:
        if math.isfinite(kl):
            error = min(max(kl / self.target - 1.0, -0.2), 0.2)
            self.value *= 1.0 + error * n_steps / self.horizon
        return self.value


class EntropyController:
    """The entropy-bonus coefficient α: fixed, or steered toward a target entropy.

    Adaptive mode moves log α by a bounded step each iteration::

        log α ← log α + rate · clip((target − H) / target, −1, 1),   α ∈ [1e-6, alpha_max]

    so α rises while the per-token entropy ``H`` (nats) is below target (more bonus, more
    exploration) and falls while it is above. Working in log space keeps α positive and makes
    steps relative, so the same ``rate`` suits α = 1e-3 and α = 0.1 alike.
    """

    MIN_ALPHA = 1e-6

    def __init__(self, ent_coef: float, adaptive: bool = False, target: float = 1.0,
                 rate: float = 0.1, alpha_max: float = 1.0) -> None:
        self.value = float(ent_coef)
        self.adaptive = bool(adaptive)
        self.target = float(target)
        self.rate = float(rate)
        self.alpha_max = float(alpha_max)

    def update(self, entropy: float) -> float:
        """Observe the iteration's mean per-token entropy; returns α for the next iteration."""
        if self.adaptive and math.isfinite(entropy):
            error = min(max((self.target - entropy) / self.target, -1.0), 1.0)
            alpha = max(self.value, self.MIN_ALPHA) * math.exp(self.rate * error)
            self.value = min(max(alpha, self.MIN_ALPHA), self.alpha_max)
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = float(state["value"])


def make_kl_controller(kind: str, kl_coef: float, target: float, horizon: int) -> KLController:
    """``"adaptive"`` → :class:`AdaptiveKLController`, ``"fixed"`` → :class:`KLController`."""
    if kind == "adaptive":
        return AdaptiveKLController(kl_coef, target, horizon)
    if kind == "fixed":
        return KLController(kl_coef)
    raise ValueError(f"unknown kl_control {kind!r}; expected 'adaptive' or 'fixed'")
