"""``rlseek train`` and ``rlseek eval``: thin wrappers of :func:`rlseek.api.train` and
:func:`rlseek.api.evaluate`."""

from __future__ import annotations

import argparse
from typing import Any

from rlseek.cli.output import command_line, print_json, show_progress


def cmd_train(args: argparse.Namespace) -> int:
    from rlseek.api import train

    overrides = list(args.set or [])
    if args.no_tracking:
        overrides.append("run.tracking=false")
    if args.tracking_uri:
        overrides.append(f"run.tracking_uri={args.tracking_uri}")
    result = train(
        args.config, out=args.out, overrides=overrides, resume=args.resume,
        progress=show_progress(args), command=command_line(args), imports=args.imports or [],
    )
    print(f"run finished: {result.path}")
    ev = result.summary.get("eval") or {}
    if isinstance(ev, dict) and ev.get("mean_return") is not None:
        line = f"eval mean return {ev['mean_return']:.3f} over {ev.get('episodes')} episodes"
        if ev.get("success_rate") is not None:
            line += f", success rate {ev['success_rate']:.3f}"
        print(line)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from rlseek.api import evaluate

    result = evaluate(args.run_dir, episodes=args.episodes, overrides=args.set or [],
                      imports=args.imports or [])
    if args.json:
        print_json(result)
    else:
        for k, v in result.items():
            if not isinstance(v, (list, dict)):
                print(f"{k}: {v}")
    return 0


def register_cli(sub: Any) -> None:
    """Add ``rlseek train`` and ``rlseek eval``."""
    s = sub.add_parser("train", help="train an agent from a YAML config")
    s.add_argument("config", nargs="?", help="experiment config (YAML); not needed with --resume")
    s.add_argument("--out", help="run directory (default: runs/<env>-<algo>-s<seed>-<time>)")
    s.add_argument("--set", action="append", metavar="K=V", help="override a config field (repeatable)")
    s.add_argument("--resume", action="store_true", help="continue the run in --out from its last good checkpoint")
    s.add_argument("--import", dest="imports", action="append", metavar="MODULE",
                   help="import a module that registers reward terms or envs (repeatable); "
                   "recorded in the run's config.yaml, so workers, eval and --resume import it too")
    s.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    s.add_argument("--no-tracking", action="store_true",
                   help="do not record the run in MLflow (= --set run.tracking=false)")
    s.add_argument("--tracking-uri", metavar="URI",
                   help="MLflow tracking URI (= --set run.tracking_uri=URI; default: "
                        "MLFLOW_TRACKING_URI, else the sqlite store runs/mlflow.db)")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("eval", help="evaluate a run's final policy")
    s.add_argument("run_dir")
    s.add_argument("--episodes", type=int)
    s.add_argument("--set", action="append", metavar="K=V")
    s.add_argument("--import", dest="imports", action="append", metavar="MODULE")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_eval)
