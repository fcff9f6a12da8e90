"""What the single and the vectorized text envs share: tokenizer, prompts, reward and scoring."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from rlseek.envs.registration import declared_reward
from rlseek.envs.text.sources import PromptMixture
from rlseek.envs.text.tasks import TextTask, get_task, load_prompts_file, split_records
from rlseek.errors import DataError, RlseekError
from rlseek.models.loader import DEFAULT_MODEL, load_tokenizer
from rlseek.rewards import TextBatch, WeightedReward


class TextCore:
    """Tokenizer, prompt source, level and reward of one text env (single or vectorized).

    Holds no model weights, only the tokenizer, so envs pickle small and fast.
    """

    def __init__(
        self,
        task: TextTask,
        *,
        model: str | os.PathLike[str] = DEFAULT_MODEL,
        max_new_tokens: int | None = None,
        max_prompt_tokens: int | None = None,
        reward: Mapping[str, float] | None = None,
        reward_params: Mapping[str, Mapping[str, Any]] | None = None,
        normalize_reward: bool = False,
        prompts_file: str | os.PathLike[str] | None = None,
        level: int | None = None,
        prompt_sources: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        if prompt_sources is not None and prompts_file is not None:
            raise RlseekError("env.kwargs: give prompts_file or prompt_sources, not both "
                              "(a file can be one of the prompt_sources)")
        self.task = task
        self.tokenizer = load_tokenizer(model)
        self.eos_token_id = int(self.tokenizer.eos_token_id)
        self.pad_token_id = int(self.tokenizer.pad_token_id)
        self.vocab_size = len(self.tokenizer)
        self.max_new_tokens = int(max_new_tokens or task.max_new_tokens)
        if self.max_new_tokens < 1:
            raise RlseekError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        # The task's declared defaults; they still apply to the terms a user's weights keep.
        weights, params = declared_reward(task.env_id, reward, reward_params) or ({}, {})
        self.reward_fn = WeightedReward(weights, params, kind="text", normalize=normalize_reward)
        self.num_levels = task.num_levels
        self.level = task.default_level
        self.set_level(task.default_level if level is None else level)
        self.file_records: list[tuple[str, str | None]] | None = None
        self.file_heldout: list[tuple[str, str | None]] = []
        if prompts_file is not None:
            records = load_prompts_file(prompts_file, require_answer=task.requires_answer)
            self.file_records, self.file_heldout = split_records(task.name, records)
            if not self.file_records:
                raise DataError(
                    f"prompts file '{prompts_file}': all {len(records)} prompts fall in the "
                    "held-out split (about 10 % of distinct prompts are kept for evaluation); "
                    "give more prompts")
        self.mixture: PromptMixture | None = None
        self.last_sources: np.ndarray | None = None
        """Source index per prompt of the latest sampled batch (None: given prompts)."""
        if prompt_sources is not None:
            self.mixture = PromptMixture.parse(prompt_sources, task)
        self.max_prompt_tokens = int(max_prompt_tokens or self._default_prompt_width())

    def observation_space(self) -> spaces.Dict:
        """One sequence's observation: token ids and attention mask, prompt then completion width."""
        width = self.max_prompt_tokens + self.max_new_tokens
        return spaces.Dict({
            "input_ids": spaces.Box(0, self.vocab_size - 1, shape=(width,), dtype=np.int64),
            "attention_mask": spaces.Box(0, 1, shape=(width,), dtype=np.int64),
        })

    def _default_prompt_width(self) -> int:
        records = self.mixture.all_records() if self.mixture is not None else (
            (self.file_records or []) + self.file_heldout)
        tasks = {s.task.name for s in self.mixture.sources if s.task is not None} if (
            self.mixture is not None) else set()
        base = max([self.task.max_prompt_tokens] + [get_task(t).max_prompt_tokens for t in tasks])
        if not records:
            return base
        lengths = self.tokenizer([p for p, _ in records])["input_ids"]
        return max(base, max(len(x) for x in lengths))

    def set_level(self, level: int) -> None:
        """Difficulty level for the next prompts drawn (0 .. num_levels - 1)."""
        if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not (
                0 <= level < self.num_levels):
            raise RlseekError(f"level must be an integer in 0..{self.num_levels - 1} for "
                              f"{self.task.env_id}, got {level!r}")
        self.level = int(level)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[list[str], list[str | None]]:
        """``n`` training prompts and their answers (from the prompts file's training split
        when one was given, or from the ``prompt_sources`` mixture; :attr:`last_sources`
        then holds each prompt's source index)."""
        self.last_sources = None
        if self.mixture is not None:
            prompts, answers, self.last_sources = self.mixture.sample(rng, n, self.level)
            return prompts, answers
        if self.file_records is not None:
            idx = rng.integers(len(self.file_records), size=n)
            picked = [self.file_records[int(i)] for i in idx]
        else:
            picked = [self.task.sample(rng, self.level) for _ in range(n)]
        return [p for p, _ in picked], [a for _, a in picked]

    def encode_prompts(self, prompts: Sequence[str], limit: int | None = None) -> list[list[int]]:
        """Token ids of each prompt (``<|bos|>`` first); longer than ``limit`` is an error."""
        ids = self.tokenizer(list(prompts))["input_ids"]
        if limit is not None:
            for p, x in zip(prompts, ids):
                if len(x) > limit:
                    raise RlseekError(
                        f"prompt {p[:40]!r} is {len(x)} tokens, more than max_prompt_tokens="
                        f"{limit}; raise max_prompt_tokens")
        return ids

    def split_completion(self, ids: Sequence[int]) -> tuple[list[int], bool]:
        """(ids up to and including the first EOS, whether EOS occurred); pads are dropped."""
        out: list[int] = []
        for t in ids:
            t = int(t)
            if t == self.eos_token_id:
                out.append(t)
                return out, True
            if t != self.pad_token_id:
                out.append(t)
        return out, False

    def decode(self, completion_ids: Sequence[Sequence[int]], eos: Sequence[bool]) -> list[str]:
        """Completion texts: special tokens (EOS, pad) removed."""
        bodies = [list(x[:-1]) if e and len(x) else list(x) for x, e in zip(completion_ids, eos)]
        return self.tokenizer.batch_decode(bodies, skip_special_tokens=True)

    def score(
        self, prompts: Sequence[str], answers: Sequence[str | None],
        completion_ids: Sequence[Sequence[int]], eos: Sequence[bool] | None = None,
    ) -> tuple[np.ndarray, dict[str, np.ndarray], list[str]]:
        """Score completions in ONE WeightedReward call: (totals, raw terms, completion texts).

        ``completion_ids`` may run past EOS (padding, further tokens): each is cut after its
        first EOS. ``eos`` overrides EOS detection (only needed for unusual callers).
        """
        cut = [self.split_completion(x) for x in completion_ids]
        ids = [c for c, _ in cut]
        eos_arr = np.array([e for _, e in cut] if eos is None else list(eos), dtype=bool)
        texts = self.decode(ids, eos_arr)
        info = [{"task": self.task.name, "level": self.level,
                 "max_new_tokens": self.max_new_tokens} for _ in prompts]
        batch = TextBatch(prompts=list(prompts), completions=texts, completion_ids=ids,
                          answers=list(answers), eos=eos_arr, info=info)
        totals, terms = self.reward_fn.text(batch)
        return totals, terms, texts

    def final_info(self, prompts: list[str], answers: list[str | None],
                   completion_ids: list[list[int]], eos: np.ndarray
                   ) -> tuple[np.ndarray, dict[str, Any]]:
        """Rewards and the end-of-episode info shared by the single and vector envs."""
        totals, terms, texts = self.score(prompts, answers, completion_ids, eos)
        info: dict[str, Any] = {
            "prompts": prompts,
            "answers": answers,
            "completions": texts,
            "completion_ids": completion_ids,
            "eos": eos,
        }
        for name, values in terms.items():
            info[f"reward_{name}"] = values
        info["reward_total"] = totals
        info["is_success"] = self.task.is_success(texts, answers, self.reward_fn.params)
        which = self.last_sources
        if self.mixture is not None and which is not None and len(which) == len(prompts):
            info["prompt_source"] = [self.mixture.names[int(i)] for i in which]
            self.mixture.record(which, {**terms, "total": totals})
        return totals, info
