"""The ``rlseek`` command line.

Bad input (an :class:`~rlseek.errors.RlseekError`) is reported as one line on stderr with exit
code 2 and no traceback; nothing partial is left behind and no run is overwritten.

Feature packages add their own subcommands through a ``register_cli(subparsers)`` function
(see ``_EXTENSIONS``); a handler is set with ``set_defaults(func=...)`` and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from rlseek.errors import RlseekError

_EXTENSIONS = (
    "rlseek.reward_models.cli",
    "rlseek.agents.offline_cli",
    "rlseek.demo",
)


def _print_json(obj: Any) -> None:
    from rlseek.runs import _json_safe

    sys.stdout.write(json.dumps(_json_safe(obj), indent=2) + "\n")


# -- envs / rewards ---------------------------------------------------------------------------
def _env_rows() -> list[dict[str, Any]]:
    import gymnasium as gym

    from rlseek.envs.registration import ENV_KINDS, ENV_SPECS, rlseek_env_ids

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
        weights = dict(ENV_SPECS[env_id].get("default_reward") or getattr(cls, "default_reward", {}) or {})
        if not weights and ENV_KINDS[env_id] == "text":
            from rlseek.envs.text.tasks import ENV_TASKS

            weights = dict(ENV_TASKS[env_id].default_weights)
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
    rows = _env_rows()
    if args.json:
        _print_json(rows)
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
        _print_json([t.to_dict() for t in terms])
        return 0
    for t in terms:
        params = ", ".join(f"{k}={v!r}" for k, v in t.defaults.items())
        print(f"{t.name:<16} {t.kind:<6} {t.description}" + (f"  [{params}]" if params else ""))
    return 0


# -- train / eval ------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from rlseek.api import train
    from rlseek.rewards import import_reward_modules

    import_reward_modules(args.imports or [])
    result = train(
        args.config, out=args.out, overrides=args.set or [], resume=args.resume,
        progress=_progress(args), command=_command(args),
    )
    print(f"run finished: {result.path}")
    ev = result.summary.get("eval") or {}
    if isinstance(ev, dict) and ev.get("mean_return") is not None:
        line = f"eval mean return {ev['mean_return']:.3f} over {ev.get('episodes')} episodes"
        if ev.get("success_rate") is not None:
            line += f", success rate {ev['success_rate']:.3f}"
        print(line)
    return 0


def _command(args: argparse.Namespace) -> list[str]:
    # The argv main() was given (not sys.argv): main([...]) may be called from Python.
    return ["rlseek", *getattr(args, "argv", sys.argv[1:])]


def _progress(args: argparse.Namespace) -> bool:
    if getattr(args, "no_progress", False):
        return False
    return sys.stdout.isatty()


def cmd_eval(args: argparse.Namespace) -> int:
    from rlseek.api import evaluate

    result = evaluate(args.run_dir, episodes=args.episodes, overrides=args.set or [],
                      imports=args.imports or [])
    if args.json:
        _print_json(result)
    else:
        for k, v in result.items():
            if not isinstance(v, (list, dict)):
                print(f"{k}: {v}")
    return 0


def cmd_version(_: argparse.Namespace) -> int:
    from rlseek import __version__

    print(f"rlseek {__version__}")
    return 0


# -- parser -----------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse's own code)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The full ``rlseek`` parser (core commands plus registered extensions)."""
    p = _Parser(prog="rlseek", description="Reinforcement learning for text and robot control.")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    s = sub.add_parser("envs", help="list registered environments")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_envs)

    s = sub.add_parser("rewards", help="list registered reward terms")
    s.add_argument("--json", action="store_true")
    s.add_argument("--import", dest="imports", action="append", metavar="MODULE",
                   help="import a module that registers reward terms (repeatable)")
    s.set_defaults(func=cmd_rewards)

    s = sub.add_parser("train", help="train an agent from a YAML config")
    s.add_argument("config", nargs="?", help="experiment config (YAML); not needed with --resume")
    s.add_argument("--out", help="run directory (default: runs/<env>-<algo>-s<seed>-<time>)")
    s.add_argument("--set", action="append", metavar="K=V", help="override a config field (repeatable)")
    s.add_argument("--resume", action="store_true", help="continue the run in --out from its last good checkpoint")
    s.add_argument("--import", dest="imports", action="append", metavar="MODULE")
    s.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("eval", help="evaluate a run's final policy")
    s.add_argument("run_dir")
    s.add_argument("--episodes", type=int)
    s.add_argument("--set", action="append", metavar="K=V")
    s.add_argument("--import", dest="imports", action="append", metavar="MODULE")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_eval)

    for mod in _EXTENSIONS:
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise
            continue
        m.register_cli(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rlseek`` console script; returns the exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    if args.version:
        return cmd_version(args)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.command == "train" and not args.resume and not args.config:
        parser.error("train needs CONFIG (or --resume --out RUN_DIR)")
    try:
        return int(args.func(args) or 0)
    except RlseekError as exc:
        sys.stderr.write(f"rlseek: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("rlseek: interrupted; the last checkpoint is kept (continue with --resume)\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
