"""Registration of every rlseek environment with Gymnasium.

Each env family module exposes ``SPECS``: a list of dicts with ``id``, ``entry_point``,
``kind`` ("robot" or "text") and optional ``max_episode_steps`` / ``kwargs``. Families are
imported lazily by Gymnasium through the entry point string, so registering is cheap.
"""

from __future__ import annotations

import importlib

import gymnasium as gym

# Modules that define SPECS; a family whose module is absent is skipped.
_FAMILIES = ("rlseek.envs.robot.specs", "rlseek.envs.text.specs")

ENV_KINDS: dict[str, str] = {}
ENV_SPECS: dict[str, dict] = {}


def register_all() -> None:
    """Register every rlseek env id with Gymnasium (idempotent)."""
    for fam in _FAMILIES:
        try:
            mod = importlib.import_module(fam)
        except ModuleNotFoundError as exc:
            if exc.name and fam.startswith(exc.name):
                continue
            raise
        for spec in mod.SPECS:
            env_id = spec["id"]
            ENV_KINDS[env_id] = spec["kind"]
            ENV_SPECS[env_id] = spec
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
