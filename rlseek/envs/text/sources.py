"""Prompt-source mixtures: draw each prompt from one of several weighted sources.

``env.kwargs.prompt_sources: [{file: general.jsonl, weight: 7}, {file: domain.jsonl, weight: 2},
{task: arithmetic, level: 3, weight: 1}]`` (the source document's general/domain/task mix at
7:2:1). For every prompt the env first draws a source with probability ``weight / sum(weights)``
from its seeded RNG, then a prompt from that source:

* ``file``: a JSONL prompts file (the format of ``prompts_file``); its training split is drawn
  uniformly, its held-out split (the same hash split as ``prompts_file``) is never drawn;
* ``task``: a built-in task's generator (``arithmetic`` or ``reviews``; ``level`` optional,
  default the env's current level when the task is the env's own, else the task's default),
  training problems only.

Keys per source: ``file`` or ``task`` (exactly one), ``weight`` (> 0, default 1), ``name``
(default the file's stem or the task name; names must be distinct), ``level`` (task only).
A task whose reward needs answers (Arithmetic) refuses sources without answers (a reviews
task, a file without ``answer``).

Reporting: every finished episode's ``info`` carries ``prompt_source`` (the source name per
row), and :meth:`PromptMixture.report` gives, per source, the requested and the realised share
of prompts drawn so far and the mean of every raw reward term on that source's completions —
the figures lm-ppo writes into ``summary.json`` as ``prompt_sources``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlseek.errors import RlseekError

_KEYS = {"file", "task", "weight", "name", "level"}


@dataclass
class PromptSource:
    """One weighted source: a prompts file's training split or a built-in task generator."""

    name: str
    weight: float
    records: list[tuple[str, str | None]] | None = None
    """File sources: the training split; None for task sources."""
    heldout: list[tuple[str, str | None]] = field(default_factory=list)
    task: Any = None
    """Task sources: the :class:`~rlseek.envs.text.tasks.TextTask`."""
    level: int | None = None

    def sample(self, rng: np.random.Generator, n: int, env_level: int) -> list[tuple[str, str | None]]:
        """``n`` (prompt, answer) pairs of this source's training part."""
        if self.records is not None:
            idx = rng.integers(len(self.records), size=n)
            return [self.records[int(i)] for i in idx]
        level = env_level if self.level is None else self.level
        return [self.task.sample(rng, level) for _ in range(n)]


def _parse_one(raw: object, i: int, env_task: Any) -> PromptSource:
    from rlseek.envs.text.tasks import get_task, load_prompts_file, split_records

    where = f"env.kwargs.prompt_sources[{i}]"
    if not isinstance(raw, Mapping):
        raise RlseekError(f"{where} must be a mapping like {{file: prompts.jsonl, weight: 0.7}} "
                          f"or {{task: arithmetic, weight: 0.3}}, got {raw!r}")
    unknown = set(raw) - _KEYS
    if unknown:
        raise RlseekError(f"{where}: unknown key(s) {sorted(unknown)}; known: file, task, "
                          "weight, name, level")
    if ("file" in raw) == ("task" in raw):
        raise RlseekError(f"{where} needs exactly one of 'file' or 'task', got {dict(raw)!r}")
    weight = raw.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
        raise RlseekError(f"{where}.weight must be a positive number, got {weight!r}")
    if "file" in raw:
        if "level" in raw:
            raise RlseekError(f"{where}.level applies to task sources only")
        path = Path(os.fspath(raw["file"]))
        records = load_prompts_file(path, require_answer=env_task.requires_answer)
        train, held = split_records(env_task.name, records)
        if not train:
            raise RlseekError(f"{where}: all {len(records)} prompts of {path} fall in the "
                              "held-out split; give more prompts")
        return PromptSource(str(raw.get("name", path.stem)), float(weight), train, held)
    task = get_task(str(raw["task"]))
    if env_task.requires_answer and not task.requires_answer:
        raise RlseekError(f"{where}: task '{task.name}' has no answers, but {env_task.env_id} "
                          "scores answers; use a task or file with answers")
    level = raw.get("level")
    if level is not None and (isinstance(level, bool) or not isinstance(level, int)
                              or not 0 <= level < task.num_levels):
        raise RlseekError(f"{where}.level must be an integer in 0..{task.num_levels - 1} for "
                          f"task '{task.name}', got {level!r}")
    if level is None and task.name != env_task.name:
        level = task.default_level
    return PromptSource(str(raw.get("name", task.name)), float(weight), task=task, level=level)


class PromptMixture:
    """Weighted prompt sources with running per-source tallies (see the module docstring)."""

    def __init__(self, sources: Sequence[PromptSource]) -> None:
        self.sources = list(sources)
        total = sum(s.weight for s in self.sources)
        self.probs = np.array([s.weight / total for s in self.sources])
        self.counts = np.zeros(len(self.sources), dtype=np.int64)
        self._term_sums: list[dict[str, float]] = [{} for _ in self.sources]
        self._scored = np.zeros(len(self.sources), dtype=np.int64)

    @classmethod
    def parse(cls, raw: object, env_task: Any) -> PromptMixture:
        """Build from the ``prompt_sources`` list of an env of task ``env_task``."""
        if not isinstance(raw, Sequence) or isinstance(raw, (str, bytes)) or not raw:
            raise RlseekError("env.kwargs.prompt_sources must be a non-empty list like "
                              "[{file: general.jsonl, weight: 0.7}, {task: arithmetic, "
                              f"weight: 0.3}}], got {raw!r}")
        sources = [_parse_one(r, i, env_task) for i, r in enumerate(raw)]
        names = [s.name for s in sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise RlseekError(f"env.kwargs.prompt_sources: names {dupes} repeat; give each "
                              "source a distinct 'name'")
        return cls(sources)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.sources]

    def all_records(self) -> list[tuple[str, str | None]]:
        """Every prompt of the file sources (training and held-out), e.g. to size the window."""
        out: list[tuple[str, str | None]] = []
        for s in self.sources:
            if s.records is not None:
                out += s.records + s.heldout
        return out

    def heldout(self) -> list[tuple[str, str | None]]:
        """The held-out records of the file sources, in source order."""
        return [r for s in self.sources for r in s.heldout]

    def sample(self, rng: np.random.Generator, n: int, env_level: int
               ) -> tuple[list[str], list[str | None], np.ndarray]:
        """``n`` prompts, their answers and the index of the source each came from."""
        which = rng.choice(len(self.sources), size=n, p=self.probs)
        prompts: list[str] = []
        answers: list[str | None] = []
        for i in which:
            (p, a), = self.sources[int(i)].sample(rng, 1, env_level)
            prompts.append(p)
            answers.append(a)
        self.counts += np.bincount(which, minlength=len(self.sources))
        return prompts, answers, which

    def record(self, which: np.ndarray, terms: Mapping[str, np.ndarray]) -> None:
        """Add finished episodes' raw reward terms (``reward_<term>`` arrays) to the tallies."""
        for row, i in enumerate(which):
            self._scored[int(i)] += 1
            sums = self._term_sums[int(i)]
            for name, values in terms.items():
                sums[name] = sums.get(name, 0.0) + float(np.asarray(values)[row])

    def report(self) -> dict[str, dict[str, Any]]:
        """Per source: requested share, realised share and count of prompts drawn, and the mean
        of each reward term over its scored completions (None before any was scored)."""
        drawn = int(self.counts.sum())
        out: dict[str, dict[str, Any]] = {}
        for i, s in enumerate(self.sources):
            n = int(self._scored[i])
            out[s.name] = {
                "requested": float(self.probs[i]),
                "realised": float(self.counts[i] / drawn) if drawn else None,
                "prompts": int(self.counts[i]),
                "scored": n,
                "terms": {k: v / n for k, v in self._term_sums[i].items()} if n else None,
            }
        return out
