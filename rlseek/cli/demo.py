"""``rlseek demo``: every use of rlseek at small scale (see :mod:`rlseek.demo`)."""

from __future__ import annotations

import argparse
from typing import Any

from rlseek.errors import RlseekError


def cmd_demo(args: argparse.Namespace) -> int:
    from rlseek.demo import STAGES, run_demo

    stages = args.stages.split(",") if args.stages else None
    known = [s for s, _ in STAGES]
    for s in stages or []:
        if s not in known:
            raise RlseekError(f"unknown demo stage '{s}'; stages: {', '.join(known)}")
    report = run_demo(args.out, quick=args.quick, stages=stages, figures=args.figures)
    print(f"report: {report}")
    return 0


def register_cli(sub: Any) -> None:
    """Add ``rlseek demo`` to the CLI."""
    from rlseek.demo import STAGE_NAMES

    s = sub.add_parser("demo", help="run every use of rlseek at small scale and write a report")
    s.add_argument("--quick", action="store_true", help="smallest budgets (about 3 minutes on 2 cores)")
    s.add_argument("--out", default="demo-out", help="output directory (new or empty)")
    s.add_argument("--stages", help=f"comma-separated subset of: {', '.join(STAGE_NAMES)}")
    s.add_argument("--figures", metavar="FILE",
                   help="also write the figure file here (e.g. figures/demo-quick.json; "
                   "OUT/figures.json is always written)")
    s.set_defaults(func=cmd_demo)
