"""Seeded evaluation of a policy on a Gymnasium env.

Every evaluation episode ``i`` is reset with seed ``seed + i``, so two evaluations of the same
policy with the same seed see the same start states (d3rlpy's and SB3's evaluators do not seed
this way). Per-episode figures are kept, not just the mean, so they can be aggregated with
proper statistics (see :mod:`rlseek.statistics`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

#: Evaluation episode ``i`` of a run is reset with seed ``run.seed + EVAL_SEED_OFFSET + i``
#: (offline agents and ``offline compare``: ``EVAL_SEED_OFFSET + i`` for every seed, so all
#: runs see the same start states): disjoint from the training envs' seeds, and the same for
#: every evaluation of a run (curve, final, ``rlseek eval``). One constant for every agent.
EVAL_SEED_OFFSET = 10_000


@dataclass
class EvalResult:
    """Per-episode results of an evaluation.

    Attributes:
        returns: undiscounted episode returns (sum of env rewards).
        lengths: episode lengths in env steps.
        successes: 1.0/0.0 per episode where the env reports ``is_success`` (else empty).
        terms: term name -> per-episode sums of the unweighted ``reward_<term>`` values.
    """

    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    successes: list[float] = field(default_factory=list)
    terms: dict[str, list[float]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Mean/std/min/max of returns, mean length, success rate and mean term sums."""
        r = np.asarray(self.returns, dtype=np.float64)
        out: dict[str, Any] = {
            "episodes": len(self.returns),
            "mean_return": float(r.mean()) if r.size else None,
            "std_return": float(r.std()) if r.size else None,
            "min_return": float(r.min()) if r.size else None,
            "max_return": float(r.max()) if r.size else None,
            "mean_length": float(np.mean(self.lengths)) if self.lengths else None,
            "success_rate": float(np.mean(self.successes)) if self.successes else None,
            "returns": [float(x) for x in self.returns],
        }
        out["terms"] = {k: float(np.mean(v)) for k, v in self.terms.items() if v}
        return out


def evaluate_episodes(
    env: gym.Env,
    policy: Callable[[Any], Any],
    episodes: int,
    seed: int = 0,
    max_steps: int | None = None,
) -> EvalResult:
    """Run ``episodes`` episodes of ``policy(obs) -> action`` on ``env``.

    Args:
        env: a single (non-vectorized) env; it is reset with ``seed + i`` for episode ``i``.
        policy: maps one observation to one action (deterministic for evaluation).
        episodes: number of episodes.
        seed: base seed.
        max_steps: safety cap on steps per episode (``None``: rely on the env's time limit).
    """
    result = EvalResult()
    for i in range(episodes):
        obs, info = env.reset(seed=seed + i)
        ep_ret, ep_len = 0.0, 0
        ep_terms: dict[str, float] = {}
        done = False
        while not done:
            action = policy(obs)
            obs, reward, terminated, truncated, info = env.step(action)
            ep_ret += float(reward)
            ep_len += 1
            for k, v in info.items():
                if k.startswith("reward_") and k != "reward_total" and np.ndim(v) == 0:
                    ep_terms[k[7:]] = ep_terms.get(k[7:], 0.0) + float(v)
            done = bool(terminated or truncated) or (max_steps is not None and ep_len >= max_steps)
        result.returns.append(ep_ret)
        result.lengths.append(ep_len)
        if "is_success" in info:
            result.successes.append(float(info["is_success"]))
        for k, v in ep_terms.items():
            result.terms.setdefault(k, []).append(v)
    return result
