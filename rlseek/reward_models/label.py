"""Label preference pairs by hand in the terminal (``rlseek prefs label``).

Input: a JSONL file of candidate pairs, each line either a preference record (``chosen`` and
``rejected``, optional ``prompt``: the person judges it afresh) or ``{"prompt": ..., "a": ...,
"b": ...}``. The two texts are shown as [1] and [2] in a seeded random order, so the file's order
cannot lead the person. Answers: ``1`` or ``2`` picks a side, ``s`` skips the pair, ``q`` (or the
end of input) stops and keeps what was labelled. Output: the preference format of
:mod:`rlseek.reward_models.data` (explicit prompt where the input had one).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from rlseek.errors import DataError
from rlseek.jsonl import read_jsonl
from rlseek.reward_models.data import PreferencePair

HELP = "type 1 or 2 for the better text, s to skip, q to stop (labelled pairs are kept)"


def read_candidates(path: str | Path) -> list[tuple[str | None, str, str]]:
    """``(prompt, text_a, text_b)`` per line of ``path``, validated with file:line errors."""
    path = Path(path)
    out = []
    for _, where, rec in read_jsonl(path, "candidate file"):
        if not isinstance(rec, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(rec).__name__}")
        keys = ("chosen", "rejected") if "chosen" in rec or "rejected" in rec else ("a", "b")
        for key in (*keys, "prompt"):
            if key == "prompt" and key not in rec:
                continue
            if key not in rec:
                raise DataError(f"{where}: missing field '{key}' (a candidate line has 'a' and 'b', "
                                "or 'chosen' and 'rejected', and optionally 'prompt')")
            if not isinstance(rec[key], str):
                raise DataError(f"{where}: field '{key}' must be a string, got {type(rec[key]).__name__}")
            if key != "prompt" and not rec[key].strip():
                raise DataError(f"{where}: field '{key}' is empty")
        out.append((rec.get("prompt"), rec[keys[0]], rec[keys[1]]))
    if not out:
        raise DataError(f"{path} is empty: it holds no candidate pairs")
    return out


def label_pairs(
    candidates: list[tuple[str | None, str, str]],
    stdin: TextIO,
    write: Callable[[str], Any],
    seed: int = 0,
) -> list[PreferencePair]:
    """Ask about each candidate on ``write``/``stdin``; returns the labelled pairs."""
    rng = np.random.default_rng(seed)
    pairs: list[PreferencePair] = []
    write(HELP + "\n")
    for k, (prompt, a, b) in enumerate(candidates, start=1):
        swap = bool(rng.random() < 0.5)
        first, second = (b, a) if swap else (a, b)
        write(f"\n--- pair {k}/{len(candidates)} ---\n")
        if prompt is not None:
            write(f"prompt: {prompt}\n")
        write(f"[1] {first}\n[2] {second}\n")
        while True:
            write("better (1/2/s/q)? ")
            line = stdin.readline()
            if not line:  # end of input: stop as with q
                write("\n")
                return pairs
            answer = line.strip().lower()
            if answer in ("1", "2"):
                chosen, rejected = (first, second) if answer == "1" else (second, first)
                if chosen != rejected:
                    pairs.append(PreferencePair(chosen, rejected, prompt))
                break
            if answer == "s":
                break
            if answer == "q":
                return pairs
            write(HELP + "\n")
    return pairs
