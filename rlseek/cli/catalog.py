"""``rlseek envs`` and ``rlseek rewards``: what is registered, with default weights and params."""

from __future__ import annotations

import argparse
from typing import Any

from rlseek.cli.output import print_json


def env_rows() -> list[dict[str, Any]]:
    """One row per registered rlseek env: id, kind, default reward weights (declared by its
    family's specs), episode limit, and the first line of its class docstring."""
    import importlib

    import gymnasium as gym

    from rlseek.envs.registration import ENV_KINDS, default_reward, rlseek_env_ids

    rows = []
    for env_id in rlseek_env_ids():
        spec = gym.registry[env_id]
        entry = spec.entry_point
        cls = None
        if isinstance(entry, str) and ":" in entry:
            mod, name = entry.split(":")
            try:
                cls = getattr(importlib.import_module(mod), name)
            except (ImportError, AttributeError):
                cls = None
        weights = default_reward(env_id) or {}
        doc = (getattr(cls, "__doc__", "") or "").strip().splitlines()
        summary = next((ln.strip("# ").strip() for ln in doc if ln.strip() and not ln.startswith("#")), "")
        rows.append(
            {
                "id": env_id,
                "kind": ENV_KINDS[env_id],
                "reward": weights,
                "max_episode_steps": spec.max_episode_steps,
                "description": summary,
            }
        )
    return rows


def cmd_envs(args: argparse.Namespace) -> int:
    rows = env_rows()
    if args.json:
        print_json(rows)
        return 0
    for r in rows:
        weights = ", ".join(f"{k}={v:g}" for k, v in r["reward"].items())
        print(f"{r['id']:<24} {r['kind']:<6} reward: {weights}")
    return 0


def cmd_rewards(args: argparse.Namespace) -> int:
    from rlseek.rewards import import_reward_modules, list_rewards

    import_reward_modules(args.imports or [])
    terms = list_rewards()
    if args.json:
        print_json([t.to_dict() for t in terms])
        return 0
    for t in terms:
        params = ", ".join(f"{k}={v!r}" for k, v in t.defaults.items())
        print(f"{t.name:<16} {t.kind:<6} {t.description}" + (f"  [{params}]" if params else ""))
    return 0


def register_cli(sub: Any) -> None:
    """Add ``rlseek envs`` and ``rlseek rewards``."""
    s = sub.add_parser("envs", help="list registered environments")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_envs)

    s = sub.add_parser("rewards", help="list registered reward terms")
    s.add_argument("--json", action="store_true")
    s.add_argument("--import", dest="imports", action="append", metavar="MODULE",
                   help="import a module that registers reward terms (repeatable)")
    s.set_defaults(func=cmd_rewards)
