"""What every ``rlseek`` subcommand shares: JSON output, the command line it was started with,
whether to draw progress, and the one-line error parser."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


class Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line on stderr with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def print_json(obj: Any) -> None:
    """Write ``obj`` to stdout as one JSON document (NaN and numpy values made JSON-safe)."""
    from rlseek.runs import _json_safe

    sys.stdout.write(json.dumps(_json_safe(obj), indent=2) + "\n")


def err(msg: str) -> None:
    """One line on stderr, flushed (progress lines and warnings of long commands)."""
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def command_line(args: argparse.Namespace) -> list[str]:
    """The command as the user typed it: ``rlseek`` plus the argv ``main()`` was given."""
    # main([...]) may be called from Python, so this is not sys.argv.
    return ["rlseek", *getattr(args, "argv", sys.argv[1:])]


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars only on a terminal, and never with ``--no-progress``."""
    if getattr(args, "no_progress", False):
        return False
    return sys.stdout.isatty()


def group_help(parser: argparse.ArgumentParser) -> Any:
    """A handler for a command group called without its subcommand: help on stderr, exit 2."""

    def show(_args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    return show
