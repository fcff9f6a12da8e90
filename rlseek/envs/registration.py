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


def rlseek_env_ids() -> list[str]:
    """All registered rlseek env ids, sorted."""
    return sorted(ENV_KINDS)
