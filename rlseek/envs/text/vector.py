"""A batch of text-generation episodes stepped in lockstep, for KV-cached policies.

``make_text_vector_env("rlseek/Arithmetic-v0", num_envs=64)`` returns a :class:`TextVectorEnv`.
Unlike Gymnasium's generic vector envs, all rows start together at :meth:`TextVectorEnv.reset`
and autoreset is disabled: a finished row idles (pad token, mask 0) until the last row finishes,
so a policy keeps one KV cache for the whole batch, feeding each step's ``(B, 1)`` observation.

Contract (the lm-ppo rollout relies on it):

* ``reset(seed, options)`` → ``obs = {"input_ids": (B, P), "attention_mask": (B, P)}`` int64,
  the prompts LEFT-padded to the batch's longest prompt ``P``; ``info = {"prompts", "answers"}``.
  ``options={"prompts": [...], "answers": [...]}`` scores given prompts (e.g. held-out ones).
  ``options={"group_size": G}`` samples ``B / G`` prompts, each repeated on G adjacent rows.
* ``step(actions (B,))`` appends one token per live row and returns ``obs`` of shape ``(B, 1)``
  (the token just appended, pad for finished rows; mask 1 for rows live this step),
  ``rewards (B,)``, ``terminated (B,)`` (EOS), ``truncated (B,)`` (``max_new_tokens`` reached)
  and ``info``. Each row reports done exactly once; a finished row ignores its actions.
* **Rewards arrive at the final step.** The whole batch is scored in ONE ``WeightedReward`` call
  when the LAST row finishes (batch terms such as distinct-n need every completion), and every
  row's total is reported in ``rewards`` at that final step; earlier steps report 0. A row that
  ended earlier therefore reports its reward after its done flag: read rewards when
  ``info["final"]`` is True (or when all rows are done).
* The final step's ``info`` carries ``completions``, ``completion_ids``, ``eos``,
  ``reward_<term>``, ``reward_total``, ``is_success``, ``lengths`` and ``final=True``.
* After the final step, :meth:`step` raises until :meth:`reset`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv

from rlseek.envs.text.core import TextCore
from rlseek.envs.text.tasks import get_task
from rlseek.errors import RlseekError
from rlseek.models.loader import DEFAULT_MODEL


class TextVectorEnv(VectorEnv):
    """``num_envs`` text-generation episodes in lockstep (see the module docstring for the contract).

    Attributes:
        tokenizer: the env's tokenizer (pad ≠ EOS, left padding).
        reward_fn: the :class:`rlseek.rewards.WeightedReward` scoring completions.
        num_envs, max_new_tokens, eos_token_id, pad_token_id: as named.
        single_action_space: ``Discrete(vocab_size)``.
        single_observation_space: the single env's fixed-width observation space (this env
            returns the variable-width incremental form described above instead).
        num_levels, level, set_level(level): the curriculum protocol.
    """

    metadata = {"autoreset_mode": AutoresetMode.DISABLED}

    def __init__(
        self,
        env_id: str,
        num_envs: int,
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
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise RlseekError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.env_id = get_task(env_id).env_id
        self.core = TextCore(get_task(env_id), model=model, max_new_tokens=max_new_tokens,
                             max_prompt_tokens=max_prompt_tokens, reward=reward,
                             reward_params=reward_params, normalize_reward=normalize_reward,
                             prompts_file=prompts_file, level=level,
                             prompt_sources=prompt_sources)
        self.num_envs = int(num_envs)
        self.tokenizer = self.core.tokenizer
        self.reward_fn = self.core.reward_fn
        self.max_new_tokens = self.core.max_new_tokens
        self.eos_token_id = self.core.eos_token_id
        self.pad_token_id = self.core.pad_token_id
        self.num_levels = self.core.num_levels
        vocab = self.core.vocab_size
        self.single_action_space = spaces.Discrete(vocab)
        self.single_observation_space = self.core.observation_space()
        self.resize(self.num_envs)

    def resize(self, num_envs: int) -> None:
        """Change the number of rows (staged batch sizes); takes effect at the next reset.
        Prompt sampling, the reward's running statistics and the level carry over."""
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise RlseekError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.num_envs = b = int(num_envs)
        vocab = self.core.vocab_size
        self.action_space = spaces.MultiDiscrete(np.full(b, vocab))
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, b)
        t = self.max_new_tokens
        self._tokens = np.full((b, t), self.pad_token_id, dtype=np.int64)
        self._lengths = np.zeros(b, dtype=np.int64)
        self._done = np.ones(b, dtype=bool)
        self._eos = np.zeros(b, dtype=bool)
        self._prompts: list[str] = []
        self._answers: list[str | None] = []
        self._finished = True

    @property
    def level(self) -> int:
        """Current difficulty level (0 .. num_levels - 1)."""
        return self.core.level

    def set_level(self, level: int) -> None:
        """Set the difficulty level for the following resets (curriculum protocol)."""
        self.core.set_level(level)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start ``num_envs`` episodes: sampled prompts, or ``options["prompts"/"answers"]``.

        ``options["group_size"]`` = G samples ``num_envs / G`` prompts and repeats each G
        times, the rows of a group adjacent (GRPO / RLOO score G completions per prompt);
        ``num_envs`` must be a multiple of G.
        """
        if seed is not None:
            self._np_random, self._np_random_seed = gym.utils.seeding.np_random(seed)
        group = int((options or {}).get("group_size") or 1)
        if group < 1 or self.num_envs % group:
            raise RlseekError(f"reset option group_size={group} must be >= 1 and divide "
                              f"num_envs={self.num_envs}")
        if options and "prompts" in options:
            prompts = [str(p) for p in options["prompts"]]
            answers = list(options.get("answers") or [None] * len(prompts))
            if len(prompts) != self.num_envs or len(answers) != self.num_envs:
                raise RlseekError(
                    f"reset options give {len(prompts)} prompts and {len(answers)} answers; "
                    f"this vector env has num_envs={self.num_envs}")
            self.core.last_sources = None
        elif group > 1:
            distinct, keys = self.core.sample(self.np_random, self.num_envs // group)
            prompts = [p for p in distinct for _ in range(group)]
            answers = [k for k in keys for _ in range(group)]
            if self.core.last_sources is not None:  # a prompt_sources mixture: one per row
                self.core.last_sources = np.repeat(self.core.last_sources, group)
        else:
            prompts, answers = self.core.sample(self.np_random, self.num_envs)
        ids = self.core.encode_prompts(prompts, limit=self.core.max_prompt_tokens)
        width = max(len(x) for x in ids)
        input_ids = np.full((self.num_envs, width), self.pad_token_id, dtype=np.int64)
        mask = np.zeros((self.num_envs, width), dtype=np.int64)
        for i, x in enumerate(ids):
            input_ids[i, width - len(x):] = x
            mask[i, width - len(x):] = 1
        self._prompts, self._answers = prompts, answers
        self._tokens.fill(self.pad_token_id)
        self._lengths.fill(0)
        self._done.fill(False)
        self._eos.fill(False)
        self._finished = False
        return {"input_ids": input_ids, "attention_mask": mask}, {"prompts": prompts,
                                                                  "answers": answers}

    def step(self, actions: np.ndarray | Sequence[int]
             ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Append one token per live row (see the module docstring for what comes back)."""
        if self._finished:
            raise gym.error.ResetNeeded("every row has finished; call reset() first")
        acts = np.asarray(actions).reshape(-1)
        if acts.shape != (self.num_envs,):
            raise ValueError(f"actions must have shape ({self.num_envs},), got {acts.shape}")
        live = ~self._done
        tokens = np.where(live, acts.astype(np.int64), self.pad_token_id)
        vocab = self.single_action_space.n
        if ((tokens < 0) | (tokens >= vocab)).any():
            raise ValueError(f"actions must be token ids in 0..{vocab - 1}, got {acts.tolist()}")
        rows = np.nonzero(live)[0]
        self._tokens[rows, self._lengths[rows]] = tokens[rows]
        self._lengths[rows] += 1
        terminated = live & (tokens == self.eos_token_id)
        truncated = live & ~terminated & (self._lengths >= self.max_new_tokens)
        self._eos |= terminated
        self._done |= terminated | truncated
        obs = {"input_ids": tokens[:, None], "attention_mask": live.astype(np.int64)[:, None]}
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        if not self._done.all():
            return obs, rewards, terminated, truncated, {}
        self._finished = True
        completion_ids = [self._tokens[i, :n].tolist() for i, n in enumerate(self._lengths)]
        rewards, info = self.core.final_info(self._prompts, self._answers, completion_ids,
                                             self._eos.copy())
        info["lengths"] = self._lengths.copy()
        info["final"] = True
        return obs, rewards.astype(np.float64), terminated, truncated, info

    def score(self, prompts: Sequence[str], answers: Sequence[str | None],
              completion_ids: Sequence[Sequence[int]]
              ) -> tuple[np.ndarray, dict[str, np.ndarray], list[str]]:
        """Score already generated completions through this env's reward, in one batch call.

        ``completion_ids`` are the generated ids per sample (without the prompt); anything
        after the first EOS (padding) is ignored. Returns ``(totals, raw terms, texts)``.
        """
        if not (len(prompts) == len(answers) == len(completion_ids)):
            raise ValueError("prompts, answers and completion_ids must have the same length")
        return self.core.score(prompts, answers, completion_ids)

    def close_extras(self, **kwargs: Any) -> None:
        """Nothing to release: the env holds only a tokenizer."""


def make_text_vector_env(env_id: str, num_envs: int, **env_kwargs: Any) -> TextVectorEnv:
    """A :class:`TextVectorEnv` of ``num_envs`` rows for a text env id (same kwargs as the env)."""
    return TextVectorEnv(env_id, num_envs, **env_kwargs)
