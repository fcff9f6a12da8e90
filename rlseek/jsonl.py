"""The one JSONL reader behind every JSON-lines file rlseek reads (preference pairs, candidate
pairs, prompt files).

Blank lines are skipped (line numbers still count them); a byte-order mark is accepted; a
missing file, bytes that are not UTF-8 and a line that is not JSON fail with one
:class:`~rlseek.errors.DataError` naming the file and line. What a record must hold is the
caller's to check, with the ``where`` prefix the reader hands it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rlseek.errors import DataError


def read_jsonl(path: str | os.PathLike[str], what: str) -> Iterator[tuple[int, str, Any]]:
    """Yield ``(line number, where, record)`` for every non-blank line of the JSONL file ``path``.

    ``what`` names the file in messages (``"preference file"``); ``where`` is
    ``"<what> '<path>', line <n>"``, the prefix for the caller's own errors about the record.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"{what} {p} does not exist (expected a JSONL file)")
    if not p.is_file():
        raise DataError(f"{what} {p} is not a file")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{what} {p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"cannot read {what} {p}: {exc.strerror}") from None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{what} {p}, line {lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: malformed JSON ({exc.msg} at column {exc.colno})") from None
        yield lineno, where, record
