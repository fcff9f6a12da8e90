"""Preference data: one pair of texts per JSONL line, in TRL's two formats.

* explicit prompt: ``{"prompt": "The sky is", "chosen": " blue.", "rejected": " green."}``
* implicit prompt: ``{"chosen": "The sky is blue.", "rejected": "The sky is green."}`` (the
  prompt is the shared prefix of both texts)

Either line may carry an optional ``"margin"`` (a finite number: how much more the chosen text
is preferred; the Bradley–Terry loss then asks for ``r_chosen - r_rejected > margin``). Other
keys (e.g. the scores a scripted annotator wrote) are kept in :attr:`PreferencePair.meta` and
ignored by training.

The scored text of a side is ``prompt + completion`` exactly as written (no separator is
inserted, as in TRL), so an explicit completion usually starts with a space.

Validation names the file, line and field of the first problem. Empty texts and a chosen text
equal to the rejected one are errors (they carry no preference); repeated pairs are reported in
:attr:`PreferenceDataset.duplicates` and dropped, so that a seeded train/eval split can never put
the same pair on both sides.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlseek.errors import DataError
from rlseek.jsonl import read_jsonl

TEXT_FIELDS = ("prompt", "chosen", "rejected")

DEFAULT_EVAL_SPLIT = 0.1
"""Share of the training pairs held out for evaluation when no evaluation file is given."""


@dataclass(frozen=True)
class PreferencePair:
    """One preference: ``prompt + chosen`` is preferred over ``prompt + rejected``.

    ``prompt`` is ``None`` for the implicit-prompt format (then ``chosen`` and ``rejected`` are
    whole texts). ``margin`` is ``None`` when the line gave none (the loss then uses 0).
    """

    chosen: str
    rejected: str
    prompt: str | None = None
    margin: float | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def chosen_text(self) -> str:
        """The whole text scored for the chosen side."""
        return (self.prompt or "") + self.chosen

    @property
    def rejected_text(self) -> str:
        """The whole text scored for the rejected side."""
        return (self.prompt or "") + self.rejected

    def to_json(self) -> dict[str, Any]:
        """The JSONL record (explicit format when the pair has a prompt), extras included."""
        rec: dict[str, Any] = {}
        if self.prompt is not None:
            rec["prompt"] = self.prompt
        rec["chosen"] = self.chosen
        rec["rejected"] = self.rejected
        if self.margin is not None:
            rec["margin"] = self.margin
        rec.update(self.meta)
        return rec


def shared_prefix(a: str, b: str) -> str:
    """The longest common prefix of ``a`` and ``b`` (the implicit format's prompt)."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return a[:n]


def parse_pair(record: Any, where: str) -> PreferencePair:
    """Validate one decoded JSON record; ``where`` (``"file, line k"``) prefixes every error."""
    if not isinstance(record, dict):
        raise DataError(
            f"{where}: expected a JSON object with 'chosen' and 'rejected' "
            f"(and optionally 'prompt', 'margin'), got {type(record).__name__}"
        )
    for key in ("chosen", "rejected"):
        if key not in record:
            raise DataError(
                f"{where}: missing field '{key}'; a preference line needs 'chosen' and "
                f"'rejected' (and optionally 'prompt'); it has {sorted(record)}"
            )
    for key in TEXT_FIELDS:
        if key in record and not isinstance(record[key], str):
            raise DataError(
                f"{where}: field '{key}' must be a string, got {type(record[key]).__name__} "
                f"({json.dumps(record[key])[:40]})"
            )
    for key in ("chosen", "rejected"):
        if not record[key].strip():
            raise DataError(f"{where}: field '{key}' is empty; both sides of a pair need text")
    prompt = record.get("prompt")
    if record["chosen"] == record["rejected"]:
        raise DataError(f"{where}: 'chosen' and 'rejected' are the same text; the pair says nothing")
    margin = record.get("margin")
    if margin is not None:
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not math.isfinite(margin):
            raise DataError(f"{where}: field 'margin' must be a finite number, got {json.dumps(margin)}")
        margin = float(margin)
    meta = {k: v for k, v in record.items() if k not in (*TEXT_FIELDS, "margin")}
    return PreferencePair(record["chosen"], record["rejected"], prompt, margin, meta)


class PreferenceDataset(Sequence[PreferencePair]):
    """A list of validated preference pairs, with where they came from.

    Attributes:
        pairs: the pairs, in file order (duplicates dropped).
        source: the file they were read from (or a description).
        duplicates: ``(line, first_line)`` for each dropped repeat of an earlier pair.
    """

    def __init__(
        self,
        pairs: Iterable[PreferencePair],
        source: str = "<memory>",
        duplicates: list[tuple[int, int]] | None = None,
    ) -> None:
        self.pairs = list(pairs)
        self.source = source
        self.duplicates = list(duplicates or [])

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return PreferenceDataset(self.pairs[i], self.source)
        return self.pairs[i]

    def __iter__(self) -> Iterator[PreferencePair]:
        return iter(self.pairs)

    @property
    def has_margins(self) -> bool:
        """True when any pair carries a margin."""
        return any(p.margin is not None for p in self.pairs)

    @classmethod
    def from_jsonl(cls, path: str | Path) -> PreferenceDataset:
        """Read and validate a JSONL preference file (blank lines are skipped)."""
        path = Path(path)
        pairs: list[PreferencePair] = []
        lines: list[int] = []
        seen: dict[tuple[str | None, str, str], int] = {}
        duplicates: list[tuple[int, int]] = []
        for lineno, where, record in read_jsonl(path, "preference file"):
            pair = parse_pair(record, where)
            key = (pair.prompt, pair.chosen, pair.rejected)
            if key in seen:
                duplicates.append((lineno, seen[key]))
                continue
            seen[key] = lineno
            pairs.append(pair)
            lines.append(lineno)
        if not pairs:
            raise DataError(f"{path} is empty: it holds no preference pairs (one JSON object per line)")
        return cls(pairs, str(path), duplicates)

    def to_jsonl(self) -> str:
        """The dataset as JSONL text (one record per line)."""
        return "".join(json.dumps(p.to_json(), ensure_ascii=False) + "\n" for p in self.pairs)

    def split(self, eval_fraction: float, seed: int = 0) -> tuple[PreferenceDataset, PreferenceDataset]:
        """A seeded random (train, eval) split; each side gets at least one pair.

        The same file, fraction and seed always give the same split.
        """
        if not 0.0 < eval_fraction < 1.0:
            raise DataError(f"the eval split must be a fraction in (0, 1), got {eval_fraction}")
        n = len(self.pairs)
        if n < 2:
            raise DataError(f"{self.source}: {n} pair(s) cannot be split into train and eval")
        n_eval = min(n - 1, max(1, round(n * eval_fraction)))
        order = np.random.default_rng(seed).permutation(n)
        ev = sorted(order[:n_eval].tolist())
        tr = sorted(order[n_eval:].tolist())
        return (
            PreferenceDataset([self.pairs[i] for i in tr], f"{self.source} (train split)"),
            PreferenceDataset([self.pairs[i] for i in ev], f"{self.source} (eval split)"),
        )

    def duplicate_report(self, limit: int = 5) -> str:
        """One line describing dropped duplicates, or ``""`` when there were none."""
        if not self.duplicates:
            return ""
        shown = ", ".join(f"line {a} repeats line {b}" for a, b in self.duplicates[:limit])
        more = f" and {len(self.duplicates) - limit} more" if len(self.duplicates) > limit else ""
        return f"{self.source}: dropped {len(self.duplicates)} duplicate pair(s): {shown}{more}"
