"""Registration of rlseek environments with Gymnasium.

An env family declares ``SPECS``: a list of dicts with ``id``, ``entry_point``, ``kind``
("robot" or "text") and optional ``max_episode_steps`` / ``kwargs`` / ``default_reward``.
:func:`register_specs` registers them; :mod:`rlseek.builtins` passes the built-in families
when ``rlseek`` is imported. Gymnasium imports a family's module only through its entry point
string, on ``gymnasium.make``, so registering is cheap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import gymnasium as gym

ENV_KINDS: dict[str, str] = {}
ENV_SPECS: dict[str, dict[str, Any]] = {}


def register_specs(specs: Iterable[Mapping[str, Any]]) -> None:
    """Register every env spec in ``specs`` with Gymnasium (idempotent per id)."""
    for spec in specs:
        env_id = spec["id"]
        ENV_KINDS[env_id] = spec["kind"]
        ENV_SPECS[env_id] = dict(spec)
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point=spec["entry_point"],
            max_episode_steps=spec.get("max_episode_steps"),
            kwargs=spec.get("kwargs", {}),
        )


def default_reward(env_id: str) -> dict[str, float] | None:
    """The default reward weights an env family declares for ``env_id`` (None: not declared)."""
    spec = ENV_SPECS.get(env_id)
    weights = spec.get("default_reward") if spec else None
    return dict(weights) if weights else None


def declared_reward(
    env_id: str,
    reward: Mapping[str, float] | None = None,
    reward_params: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[dict[str, float], dict[str, dict[str, Any]]] | None:
    """The weights and term params an env of ``env_id`` scores with, given its ``reward`` and
    ``reward_params`` make-kwargs, from what its family declares (``default_reward``,
    ``default_reward_params``): without ``reward`` the declared weights; declared params of the
    weighted terms, updated per term by ``reward_params``. None when nothing is declared and
    no weights are given. (Term defaults are added by :class:`~rlseek.rewards.WeightedReward`.)
    """
    spec = ENV_SPECS.get(env_id) or {}
    weights = dict(reward) if reward is not None else default_reward(env_id)
    if weights is None:
        return None
    declared = spec.get("default_reward_params") or {}
    params = {k: dict(v) for k, v in declared.items() if k in weights}
    for name, p in (reward_params or {}).items():
        params[name] = {**params.get(name, {}), **dict(p or {})}
    return weights, params


def rlseek_env_ids() -> list[str]:
    """All registered rlseek env ids, sorted."""
    return sorted(ENV_KINDS)
