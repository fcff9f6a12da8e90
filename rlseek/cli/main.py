"""The ``rlseek`` parser and entry point.

Bad input (an :class:`~rlseek.errors.RlseekError`) is reported as one line on stderr with exit
code 2 and no traceback; nothing partial is left behind and no run is overwritten.

Each subcommand lives in a module of this package with a ``register_cli(subparsers)`` function
(listed by :func:`rlseek.builtins.cli_modules`); a handler is set with
``set_defaults(func=...)`` and returns an exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from rlseek.cli.output import Parser
from rlseek.errors import RlseekError


def build_parser() -> argparse.ArgumentParser:
    """The full ``rlseek`` parser: every module of :func:`rlseek.builtins.cli_modules`."""
    from rlseek.builtins import cli_modules

    p = Parser(prog="rlseek", description="Reinforcement learning for text and robot control.")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", parser_class=Parser)
    for module in cli_modules():
        module.register_cli(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rlseek`` console script; returns the exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    if args.version:
        from rlseek._version import __version__

        print(f"rlseek {__version__}")
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.command == "train" and not args.resume and not args.config:
        parser.error("train needs CONFIG (or --resume --out RUN_DIR)")
    # Under torchrun only rank 0 prints (results and the one-line error); every rank exits
    # with the same code.
    follower = int(os.environ.get("RANK") or 0) > 0 and "WORLD_SIZE" in os.environ
    if follower:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the process's lifetime)
    try:
        return int(args.func(args) or 0)
    except RlseekError as exc:
        if not follower:
            sys.stderr.write(f"rlseek: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("rlseek: interrupted; the last checkpoint is kept (continue with --resume)\n")
        return 130
    finally:
        if "rlseek.distributed.world" in sys.modules:
            sys.modules["rlseek.distributed.world"].shutdown()
