"""Text tasks: where prompts come from, default rewards, success, and user prompt files.

A task is the part of a text environment that knows its problems: ``arithmetic``
(``rlseek/Arithmetic-v0``) and ``reviews`` (``rlseek/Reviews-v0``). The token-level MDP around it
lives in :mod:`rlseek.envs.text.env` (one sequence) and :mod:`rlseek.envs.text.vector` (a batch).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlseek.envs.text import arithmetic, reviews
from rlseek.errors import DataError, RlseekError
from rlseek.jsonl import read_jsonl
from rlseek.rewards.text import sentiment_score


@dataclass(frozen=True)
class TextTask:
    """Static description of one text task.

    Attributes:
        name: task name ("arithmetic", "reviews").
        env_id: the registered env id.
        default_weights: reward weights used when the env's ``reward`` kwarg is None.
        default_params: reward params merged under the user's ``reward_params``.
        max_new_tokens: default completion budget in tokens (EOS included).
        max_prompt_tokens: default prompt width of the single env's observation, in tokens
            (``<|bos|>`` included); every built-in prompt fits.
        num_levels: number of difficulty levels (1 = no curriculum).
        default_level: level used when the ``level`` kwarg is None.
        requires_answer: whether every prompt needs a reference answer.
    """

    name: str
    env_id: str
    default_weights: Mapping[str, float]
    default_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    max_new_tokens: int = 16
    max_prompt_tokens: int = 32
    num_levels: int = 1
    default_level: int = 0
    requires_answer: bool = False

    def sample(self, rng: np.random.Generator, level: int, heldout: bool = False
               ) -> tuple[str, str | None]:
        """One built-in (prompt, answer) from the training or held-out part of the task."""
        if self.name == "arithmetic":
            return arithmetic.sample_split(rng, level, heldout)
        return reviews.sample_prompt(rng, heldout), None

    def is_success(self, completions: Sequence[str], answers: Sequence[str | None],
                   params: Mapping[str, Mapping[str, Any]]) -> np.ndarray:
        """Per-sample success: exact answer (arithmetic) or the target sentiment (reviews)."""
        if self.name == "arithmetic":
            return np.array([a is not None and c.strip() == str(a).strip()
                             for c, a in zip(completions, answers)], dtype=bool)
        sign = -1.0 if params.get("sentiment", {}).get("target") == "negative" else 1.0
        return np.array([sign * sentiment_score(c) > 0 for c in completions], dtype=bool)


TASKS: dict[str, TextTask] = {
    "arithmetic": TextTask(
        name="arithmetic",
        env_id="rlseek/Arithmetic-v0",
        default_weights={"accuracy": 0.6, "diversity": 0.3, "efficiency": 0.1},
        max_new_tokens=8,
        max_prompt_tokens=16,
        num_levels=len(arithmetic.LEVELS),
        default_level=arithmetic.DEFAULT_LEVEL,
        requires_answer=True,
    ),
    "reviews": TextTask(
        name="reviews",
        env_id="rlseek/Reviews-v0",
        default_weights={"sentiment": 0.6, "diversity": 0.3, "efficiency": 0.1},
        # A review earns full efficiency up to 24 tokens: short, but a sentence or two.
        default_params={"efficiency": {"target_len": 24}},
        max_new_tokens=48,
        max_prompt_tokens=40,
    ),
}
ENV_TASKS = {t.env_id: t for t in TASKS.values()}


def get_task(name_or_env_id: str) -> TextTask:
    """The task for a task name or env id (``"rlseek:"`` prefix allowed)."""
    key = name_or_env_id.split(":", 1)[-1]
    task = TASKS.get(key) or ENV_TASKS.get(key)
    if task is None:
        known = sorted(ENV_TASKS)
        raise RlseekError(f"unknown text env '{name_or_env_id}'; text envs: {', '.join(known)}")
    return task


def load_prompts_file(path: str | os.PathLike[str], *, require_answer: bool
                      ) -> list[tuple[str, str | None]]:
    """Read a JSONL prompts file: one ``{"prompt": str, "answer": str|int}`` object per line.

    Blank lines are skipped (line numbers still count them). ``answer`` is required when
    ``require_answer`` (tasks scored against a reference) and optional otherwise; numbers are
    turned into strings. Any problem raises :class:`DataError` naming the file and line.
    """
    p = Path(path)
    records: list[tuple[str, str | None]] = []
    for _, where, obj in read_jsonl(p, "prompts file"):
        if not isinstance(obj, dict):
            raise DataError(f"{where}: expected a JSON object like "
                            f'{{"prompt": "12+34=", "answer": "46"}}, got {type(obj).__name__}')
        if "prompt" not in obj:
            raise DataError(f"{where}: missing field 'prompt'")
        prompt = obj["prompt"]
        if not isinstance(prompt, str) or not prompt:
            raise DataError(f"{where}: field 'prompt' must be a non-empty string")
        answer = obj.get("answer")
        if answer is None and require_answer:
            raise DataError(f"{where}: missing field 'answer' (this task scores answers)")
        if answer is not None and (isinstance(answer, bool)
                                   or not isinstance(answer, (str, int, float))):
            raise DataError(f"{where}: field 'answer' must be a string or a number")
        records.append((prompt, None if answer is None else str(answer)))
    if not records:
        raise DataError(f"prompts file {p} is empty; expected JSON lines like "
                        '{"prompt": "12+34=", "answer": "46"}')
    return records


def split_records(task: str, records: Sequence[tuple[str, str | None]]
                  ) -> tuple[list[tuple[str, str | None]], list[tuple[str, str | None]]]:
    """(training, held-out) records of a prompts file, by the hash split that the built-in
    tasks use (:func:`rlseek.envs.text.split.is_heldout` of the prompt string): about 10 %
    of the distinct prompts are held out for evaluation and never drawn for training."""
    from rlseek.envs.text.split import is_heldout

    train, held = [], []
    for rec in records:
        (held if is_heldout(task, rec[0]) else train).append(rec)
    return train, held


def heldout_prompts(env_id: str, n: int = 500, seed: int = 0, level: int | None = None
                    ) -> dict[str, list]:
    """``n`` seeded held-out prompts of a text env, as ``{"prompts": [...], "answers": [...]}``.

    Held-out problems are disjoint from every training prompt the env draws and from the
    bundled tiny LM's pre-training corpus (a hash split, see :mod:`rlseek.envs.text.split`).
    Prompts are distinct while the held-out space allows (level 0 of Arithmetic has only a
    handful of held-out problems, so they repeat). The result passes straight into the vector
    env's ``reset(options=...)``.
    """
    task = get_task(env_id)
    lvl = task.default_level if level is None else level
    if not 0 <= lvl < task.num_levels:
        raise RlseekError(f"level {lvl} out of range for {task.env_id}: 0..{task.num_levels - 1}")
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    prompts: list[str] = []
    answers: list[str | None] = []
    misses = 0
    while len(prompts) < n:
        prompt, answer = task.sample(rng, lvl, heldout=True)
        if prompt in seen and misses < 20 * n:
            misses += 1
            continue
        seen.add(prompt)
        prompts.append(prompt)
        answers.append(answer)
    return {"prompts": prompts, "answers": answers}
