"""User-facing errors.

Anything raised as :class:`RlseekError` is bad input, not a bug: the CLI prints its message on
one line of stderr and exits with code 2, without a traceback. The message says what was wrong,
where (file, line, field) and what would be right.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class RlseekError(Exception):
    """Bad input from the user: reported as one line, exit code 2."""


class ConfigError(RlseekError):
    """An experiment config (YAML file or --set override) is invalid."""


class DataError(RlseekError):
    """A data file (prompts, preferences, offline dataset) is missing or malformed."""


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest known name, or ``""``."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""
