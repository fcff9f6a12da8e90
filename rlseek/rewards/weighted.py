"""WeightedReward: total = Σ wᵢ·rᵢ over registered reward terms, with a per-term breakdown."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from rlseek.errors import RlseekError
from rlseek.rewards.registry import RewardTerm, TextBatch, get_reward
from rlseek.statistics import RunningMeanStd


class WeightedReward:
    """Combine registered reward terms into one scalar: total = Σ wᵢ·rᵢ.

    Args:
        weights: term name -> weight. Weights must be finite and not all zero; a term with
            weight 0 is still computed and reported (so it can be watched without steering).
        params: term name -> keyword params for that term (overrides its defaults).
        kind: "robot" or "text"; every term must be of this kind. ``None`` accepts either.
        normalize: standardize each term with its running mean/std (updated with each call,
            before it is used) before weighting, so terms on different scales weigh as their
            weights say. The per-term breakdown always reports the *raw* values.
        eps: added to the std when normalizing.

    NaN from a term means "not applicable": it contributes 0 to the total and is counted in
    :attr:`nan_counts`. Infinite values are a bug in the term and raise.
    """

    def __init__(
        self,
        weights: Mapping[str, float],
        params: Mapping[str, Mapping[str, Any]] | None = None,
        kind: str | None = None,
        normalize: bool = False,
        eps: float = 1e-8,
    ) -> None:
        if not isinstance(weights, Mapping) or not weights:
            raise RlseekError(
                "reward weights must be a non-empty mapping of term name to weight, "
                f"e.g. {{'accuracy': 0.6, 'diversity': 0.3}}; got {weights!r}"
            )
        params = dict(params or {})
        extra = sorted(set(params) - set(weights))
        if extra:
            raise RlseekError(
                f"reward_params name term(s) {extra} that have no weight; "
                f"weighted terms: {sorted(weights)}"
            )
        self.kind = kind
        self.normalize = bool(normalize)
        self.eps = float(eps)
        self.weights: dict[str, float] = {}
        self.params: dict[str, dict[str, Any]] = {}
        self._terms: list[tuple[str, RewardTerm, float, dict[str, Any]]] = []
        for name, w in weights.items():
            term = get_reward(str(name), kind)
            if isinstance(w, bool) or not isinstance(w, (int, float, np.floating, np.integer)):
                raise RlseekError(f"reward weight for '{name}' must be a number, got {w!r}")
            w = float(w)
            if not math.isfinite(w):
                raise RlseekError(f"reward weight for '{name}' must be finite, got {w}")
            p = dict(params.get(name) or {})
            unknown = sorted(set(p) - set(term.defaults))
            if unknown:
                raise RlseekError(
                    f"unknown parameter(s) {unknown} for reward term '{name}'; "
                    f"it takes: {sorted(term.defaults) or 'no parameters'}"
                )
            self.weights[name] = w
            self.params[name] = {**term.defaults, **p}
            self._terms.append((name, term, w, p))
        if all(w == 0.0 for w in self.weights.values()):
            raise RlseekError(f"reward weights are all zero ({self.weights}); at least one must be non-zero")
        self.nan_counts: dict[str, int] = {name: 0 for name in self.weights}
        self.stats: dict[str, RunningMeanStd] = {name: RunningMeanStd() for name in self.weights}

    @property
    def term_names(self) -> list[str]:
        """Names of the weighted terms, in the order given."""
        return list(self.weights)

    def _combine(self, values: dict[str, np.ndarray]) -> np.ndarray:
        total = None
        for name, _term, w, _p in self._terms:
            v = values[name]
            nan = np.isnan(v)
            n_nan = int(nan.sum())
            if n_nan:
                self.nan_counts[name] += n_nan
            if np.isinf(v).any():
                raise ValueError(f"reward term '{name}' returned an infinite value")
            if self.normalize:
                st = self.stats[name]
                st.update(v)
                v = (v - st.mean) / (st.std + self.eps)
            contrib = w * np.where(nan, 0.0, v)
            total = contrib if total is None else total + contrib
        assert total is not None
        return total

    def text(self, batch: TextBatch) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Score a batch of completions: (totals of shape (B,), raw value per term)."""
        n = len(batch)
        values: dict[str, np.ndarray] = {}
        for name, term, _w, p in self._terms:
            v = np.asarray(term.fn(batch, **p), dtype=np.float64).reshape(-1)
            if v.shape != (n,):
                raise ValueError(f"text reward term '{name}' returned shape {v.shape}, expected ({n},)")
            values[name] = v
        return self._combine(values), values

    def robot(
        self, obs: Any, action: Any, next_obs: Any, info: Mapping[str, Any]
    ) -> tuple[float, dict[str, float]]:
        """Score one transition: (total, raw value per term)."""
        if not self.normalize:
            # Hot path (called every env step): plain floats, no numpy allocations.
            total = 0.0
            values: dict[str, float] = {}
            for name, term, w, p in self._terms:
                v = float(term.fn(obs, action, next_obs, info, **p))
                values[name] = v
                if v != v:  # NaN: not applicable
                    self.nan_counts[name] += 1
                    continue
                if v in (math.inf, -math.inf):
                    raise ValueError(f"reward term '{name}' returned an infinite value")
                total += w * v
            return total, values
        arrays = {
            name: np.array([float(term.fn(obs, action, next_obs, info, **p))])
            for name, term, _w, p in self._terms
        }
        total_arr = self._combine(arrays)
        return float(total_arr[0]), {k: float(v[0]) for k, v in arrays.items()}

    def __call__(self, *args: Any) -> Any:
        """``wr(batch)`` for text, ``wr(obs, action, next_obs, info)`` for robot transitions."""
        if len(args) == 1:
            return self.text(args[0])
        return self.robot(*args)

    def to_config(self) -> dict[str, Any]:
        """The resolved weights and params, as written into a run's config."""
        return {"weights": dict(self.weights), "params": {k: dict(v) for k, v in self.params.items()}}

    def state_dict(self) -> dict[str, Any]:
        """Running normalization statistics and NaN counts, for checkpoints."""
        return {
            "stats": {k: s.state_dict() for k, s in self.stats.items()},
            "nan_counts": dict(self.nan_counts),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for k, s in state.get("stats", {}).items():
            if k in self.stats:
                self.stats[k].load_state_dict(s)
        for k, c in state.get("nan_counts", {}).items():
            if k in self.nan_counts:
                self.nan_counts[k] = int(c)
