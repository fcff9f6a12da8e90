"""The token-level text-generation env: one prompt, one token per step, reward at the end."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlseek.envs.text.core import TextCore
from rlseek.envs.text.tasks import get_task
from rlseek.models.loader import DEFAULT_MODEL

_DOC = """
## Description
A token-level MDP over a causal LM's vocabulary, as in RL4LMs: the env shows a prompt, the
agent appends one token per step, and the completion is scored when it ends. {task_doc}

## Action Space
`Discrete(vocab_size)`: the next token id (vocab of the `model` kwarg's tokenizer, 1024 for the
bundled `rlseek/tiny-lm`).

## Observation Space
`Dict(input_ids=Box(0, vocab_size - 1, (L,), int64), attention_mask=Box(0, 1, (L,), int64))`
with `L = max_prompt_tokens + max_new_tokens`: the prompt (`<|bos|>` first) followed by the
tokens generated so far, LEFT-padded with the pad token (mask 0) so the newest token is always
the last column.

## Rewards
0 on every step but the last; at the end, the env's `WeightedReward(kind="text")`
(`env.reward_fn`) scores the completion: total = Σ wᵢ·rᵢ. Default weights: {weights}.
`info` at the end carries `completion` (text), `completion_ids`, `eos`, `reward_<term>` (each
unweighted term), `reward_total` and `is_success` ({success}).

## Starting State
A prompt drawn with the env's seeded RNG from the task's training prompts (never a held-out
one; see `rlseek.envs.text.heldout_prompts`), or uniformly from the training split of the
`prompts_file` (the same hash split holds about 10 % of its distinct prompts out for
evaluation; lm-ppo evaluates on them).

## Episode End
Terminated when the agent emits the EOS token; truncated after `max_new_tokens` tokens
(default {max_new})."""

_ARGS = """
## Arguments
- `model` (str, default "rlseek/tiny-lm"): tokenizer source (bundled name, directory or hub
  name); the env loads only the tokenizer.
- `max_new_tokens` (int): completion budget in tokens, EOS included.
- `max_prompt_tokens` (int): prompt width of the observation (default fits every built-in
  prompt, or the longest prompt of `prompts_file`).
- `reward` (dict name→weight, None = defaults above), `reward_params` (dict name→params),
  `normalize_reward` (bool, standardize each term with running statistics).
- `prompts_file` (path): JSONL, one `{{"prompt": ..., "answer": ...}}` per line{answer_note};
  malformed files raise `DataError` naming the file and line, as does a file whose every
  prompt falls in the held-out split.
- `prompt_sources` (list of `{{file or task, weight, name, level}}`): draw each prompt from
  one of several weighted sources instead (`rlseek.envs.text.sources`); the finished
  episode's `info` names its `prompt_source`. Not together with `prompts_file`.
- `level` (int): difficulty level{level_note}; `set_level(level)` changes it for later resets
  (the curriculum protocol: attributes `num_levels`, `level`).

## Version History
- v0: initial version."""


class TextGenerationEnv(gym.Env):
    """Base class of the single-sequence text envs; subclasses fix the task."""

    metadata = {"render_modes": ["ansi"]}
    task_name = ""

    def __init__(
        self,
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
        render_mode: str | None = None,
    ) -> None:
        self.core = TextCore(get_task(self.task_name), model=model, max_new_tokens=max_new_tokens,
                             max_prompt_tokens=max_prompt_tokens, reward=reward,
                             reward_params=reward_params, normalize_reward=normalize_reward,
                             prompts_file=prompts_file, level=level,
                             prompt_sources=prompt_sources)
        self.render_mode = render_mode
        self.tokenizer = self.core.tokenizer
        self.reward_fn = self.core.reward_fn
        self.max_new_tokens = self.core.max_new_tokens
        self.max_prompt_tokens = self.core.max_prompt_tokens
        self.eos_token_id = self.core.eos_token_id
        self.pad_token_id = self.core.pad_token_id
        self.num_levels = self.core.num_levels
        width = self.max_prompt_tokens + self.max_new_tokens
        self.observation_space = self.core.observation_space()
        self.action_space = spaces.Discrete(self.core.vocab_size)
        self._ids = np.full(width, self.pad_token_id, dtype=np.int64)
        self._mask = np.zeros(width, dtype=np.int64)
        self._prompt = ""
        self._answer: str | None = None
        self._generated: list[int] = []
        self._done = True

    @property
    def level(self) -> int:
        """Current difficulty level (0 .. num_levels - 1)."""
        return self.core.level

    def set_level(self, level: int) -> None:
        """Set the difficulty level for the following resets (curriculum protocol)."""
        self.core.set_level(level)

    def _obs(self) -> dict[str, np.ndarray]:
        return {"input_ids": self._ids.copy(), "attention_mask": self._mask.copy()}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode on a sampled prompt, or on ``options={"prompt": ..., "answer": ...}``."""
        super().reset(seed=seed)
        if options and "prompt" in options:
            self._prompt, self._answer = str(options["prompt"]), options.get("answer")
            self.core.last_sources = None
        else:
            prompts, answers = self.core.sample(self.np_random, 1)
            self._prompt, self._answer = prompts[0], answers[0]
        prompt_ids = self.core.encode_prompts([self._prompt], self.max_prompt_tokens)[0]
        self._ids.fill(self.pad_token_id)
        self._mask.fill(0)
        # Left padding: the prompt ends in the last column; generated tokens shift in from the right.
        self._ids[-len(prompt_ids):] = prompt_ids
        self._mask[-len(prompt_ids):] = 1
        self._generated = []
        self._done = False
        return self._obs(), {"prompt": self._prompt, "answer": self._answer, "level": self.level}

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Append token ``action``; the reward arrives when the completion ends."""
        if self._done:
            raise gym.error.ResetNeeded("the episode has ended; call reset() first")
        token = int(action)
        if not 0 <= token < self.core.vocab_size:
            raise ValueError(f"action {token} is outside the vocabulary (0..{self.core.vocab_size - 1})")
        self._generated.append(token)
        self._ids = np.roll(self._ids, -1)
        self._mask = np.roll(self._mask, -1)
        self._ids[-1], self._mask[-1] = token, 1
        terminated = token == self.eos_token_id
        truncated = not terminated and len(self._generated) >= self.max_new_tokens
        if not (terminated or truncated):
            return self._obs(), 0.0, False, False, {}
        self._done = True
        totals, batch_info = self.core.final_info(
            [self._prompt], [self._answer], [list(self._generated)], np.array([terminated]))
        info: dict[str, Any] = {"prompt": self._prompt, "answer": self._answer,
                                "completion": batch_info["completions"][0],
                                "completion_ids": list(self._generated), "eos": bool(terminated)}
        for key, value in batch_info.items():
            if key.startswith("reward_") or key == "is_success":
                info[key] = value[0].item()
        if "prompt_source" in batch_info:
            info["prompt_source"] = batch_info["prompt_source"][0]
        return self._obs(), float(totals[0]), bool(terminated), bool(truncated), info

    def render(self) -> str | None:
        """``"ansi"``: the prompt and the completion so far, as text."""
        if self.render_mode != "ansi":
            return None
        text = self.tokenizer.decode(self._generated, skip_special_tokens=True)
        return f"{self._prompt}\u2502{text}"


class ArithmeticEnv(TextGenerationEnv):
    task_name = "arithmetic"


class ReviewsEnv(TextGenerationEnv):
    task_name = "reviews"


ArithmeticEnv.__doc__ = "Arithmetic-v0: answer integer arithmetic prompts such as ``12+34=``.\n" + (
    _DOC.format(
        task_doc="The prompt is a problem such as `12+34=`; the completion must be the integer "
                 "answer (`46`) followed by EOS. Five difficulty levels: 0 one-digit addition, "
                 "1 two-digit addition (default), 2 two-digit addition or subtraction, 3 two "
                 "operators on two-digit numbers, 4 three-digit addition or subtraction.",
        weights="accuracy 0.6, diversity 0.3, efficiency 0.1",
        success="the completion is exactly the answer",
        max_new=8)
    + _ARGS.format(answer_note=" (`answer` required)", level_note=" 0-4, default 1"))
ReviewsEnv.__doc__ = "Reviews-v0: continue a product or restaurant review, steered in sentiment.\n" + (
    _DOC.format(
        task_doc="The prompt opens a review and stops before the first judgement "
                 "(`Review of the desk lamp: After two weeks, the light is`); the completion "
                 "continues it. The `sentiment` term's `target` param (\"positive\" by "
                 "default, or \"negative\") sets the steering direction.",
        weights="sentiment 0.6, diversity 0.3, efficiency 0.1 (efficiency: full score up to "
                "24 tokens, `target_len=24`)",
        success="the completion's lexicon sentiment has the target's sign",
        max_new=48)
    + _ARGS.format(answer_note=" (`answer` optional, unused by the default reward)",
                   level_note=" (one level only: 0)"))
