"""KV-cached batched rollouts through rlseek's vectorized text environments.

One rollout is one episode of the vector env: ``B`` prompts (left-padded) are run through
the policy once, then each step feeds only the ``B`` tokens the env just appended, reusing
the key/value cache — O(T) token forwards for T new tokens instead of the O(T²) of re-running
the whole prefix at every step. The env owns the episode (it appends tokens, ends a row at
EOS or at its ``max_new_tokens``, and scores the finished batch with its WeightedReward);
the policy only chooses the next token.

The rollout keeps token ids, not log-probs: those are recomputed afterwards by one
teacher-forced forward pass (:func:`rlseek.agents.lm_ppo.model.forward_response`), so the
log-probs PPO compares come from the very computation that training differentiates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from rlseek.agents.lm_ppo.core import sample_tokens, tempered_logits


@dataclass
class Rollout:
    """One batch of finished completions and everything PPO needs about it.

    ``response_mask`` is 1.0 on every token the env appended for the row (EOS included)
    and 0.0 on the padding after the row ended. ``scores`` is each row's episode return
    from the env (the WeightedReward total; it arrives when the batch is scored).
    """

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    response_ids: torch.Tensor
    response_mask: torch.Tensor
    scores: np.ndarray
    eos: np.ndarray
    terms: dict[str, np.ndarray]
    completions: list[str]
    completion_ids: list[list[int]]
    prompts: list[str]
    answers: list[Any]
    success: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)
    logprobs: torch.Tensor | None = None
    """(B, T) tempered log-probs of the chosen tokens from the cached forward, only with
    ``record_logprobs=True`` (a diagnostic: PPO uses the teacher-forced recomputation)."""

    def __len__(self) -> int:
        return int(self.prompt_ids.shape[0])

    @property
    def lengths(self) -> np.ndarray:
        """Generated tokens per completion (EOS included)."""
        return self.response_mask.sum(1).cpu().numpy()

    @property
    def n_tokens(self) -> int:
        return int(self.response_mask.sum().item())


def _cache_kwarg() -> str:
    """The keyword under which this transformers version passes the KV cache (``cache``
    since 5.x, ``past_key_values`` before)."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    return "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


CACHE_KWARG = _cache_kwarg()


def _positions(mask: torch.Tensor) -> torch.Tensor:
    return (mask.long().cumsum(-1) - 1).clamp_min(0)


def _merge_final_info(final: dict[str, Any], info: dict[str, Any]) -> None:
    """Collect per-row end-of-episode info (arrays or lists of length B).

    rlseek's text vector env reports every row's final values in one step; a Gymnasium-style
    env that reports rows as they finish marks them with a boolean ``_key`` array, honoured
    here so both kinds work.
    """
    for key, value in info.items():
        if key.startswith("_"):
            continue
        rows = info.get(f"_{key}")
        if rows is None:
            final[key] = value
        elif isinstance(value, np.ndarray) and value.ndim >= 1:
            if key not in final:
                final[key] = np.zeros(value.shape, dtype=value.dtype)
            final[key][rows] = value[rows]
        elif isinstance(value, list):
            slot = final.setdefault(key, [None] * len(value))
            for i in np.flatnonzero(rows):
                slot[i] = value[i]


@torch.no_grad()
def generate_rollout(
    lm: nn.Module,
    env: Any,
    *,
    temperature: float,
    top_k: int = 0,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    seed: int | None = None,
    options: dict[str, Any] | None = None,
    record_logprobs: bool = False,
) -> Rollout:
    """Run one episode of ``env`` (a rlseek text vector env) with ``lm`` choosing tokens.

    Args:
        lm: a causal LM (a peft model works too); its dropout should be off.
        env: ``make_text_vector_env(...)``; reset gives left-padded prompts, each step the
            token appended per row.
        temperature: sampling temperature (0 = greedy); the logits are divided by it.
        top_k: sample among the k most likely tokens (0 = all).
        generator: torch RNG for sampling (on ``device``), for reproducible rollouts.
        seed, options: passed to ``env.reset`` (``options={"prompts", "answers"}`` scores
            given prompts).
        record_logprobs: also keep the cached forward's log-probs of the chosen tokens.
    """
    device = torch.device(device)
    t0 = time.perf_counter()
    obs, info = env.reset(seed=seed, options=options)
    prompts = list(info.get("prompts", []))
    answers = list(info.get("answers", [None] * len(prompts)))
    prompt_ids = torch.as_tensor(obs["input_ids"], dtype=torch.long, device=device)
    prompt_mask = torch.as_tensor(obs["attention_mask"], dtype=torch.long, device=device)
    B = prompt_ids.shape[0]
    t_env = time.perf_counter() - t0

    t1 = time.perf_counter()
    out = lm(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=_positions(prompt_mask),
             use_cache=True, logits_to_keep=1)
    cache, logits = getattr(out, CACHE_KWARG), out.logits[:, -1]
    next_pos = prompt_mask.sum(1, keepdim=True)  # position of the next real token per row
    attn = prompt_mask
    t_model = time.perf_counter() - t1

    tokens: list[torch.Tensor] = []
    masks: list[torch.Tensor] = []
    step_logprobs: list[torch.Tensor] = []
    returns = np.zeros(B, dtype=np.float64)
    done = np.zeros(B, dtype=bool)
    final: dict[str, Any] = {}
    while True:
        t1 = time.perf_counter()
        action = sample_tokens(logits, temperature, top_k, generator)
        if record_logprobs:
            tempered = tempered_logits(logits, temperature if temperature > 0 else 1.0)
            step_logprobs.append(torch.log_softmax(tempered, -1).gather(-1, action[:, None]))
        action_np = action.cpu().numpy()
        t_model += time.perf_counter() - t1

        t1 = time.perf_counter()
        obs, reward, terminated, truncated, info = env.step(action_np)
        t_env += time.perf_counter() - t1
        returns += np.asarray(reward, dtype=np.float64)
        done |= np.asarray(terminated) | np.asarray(truncated)
        if info:
            _merge_final_info(final, info)
        tok = torch.as_tensor(obs["input_ids"], dtype=torch.long, device=device).reshape(B, 1)
        m = torch.as_tensor(obs["attention_mask"], dtype=torch.long, device=device).reshape(B, 1)
        tokens.append(tok)
        masks.append(m)
        if done.all():
            break
        t1 = time.perf_counter()
        attn = torch.cat([attn, m], dim=1)
        out = lm(input_ids=tok, attention_mask=attn, position_ids=next_pos, use_cache=True,
                 **{CACHE_KWARG: cache})
        cache, logits = getattr(out, CACHE_KWARG), out.logits[:, -1]
        next_pos = next_pos + m
        t_model += time.perf_counter() - t1

    response_ids = torch.cat(tokens, dim=1)
    response_mask = torch.cat(masks, dim=1).float()
    terms = {
        key[len("reward_"):]: np.asarray(val, dtype=np.float64)
        for key, val in final.items()
        if key.startswith("reward_") and key != "reward_total"
    }
    eos = np.asarray(final.get("eos", np.zeros(B)), dtype=bool)
    success = np.asarray(final["is_success"], dtype=np.float64) if "is_success" in final else None
    completions = [str(c) for c in final.get("completions", [""] * B)]
    completion_ids = [list(map(int, x)) for x in final.get("completion_ids", [[] for _ in range(B)])]
    return Rollout(
        prompt_ids=prompt_ids, prompt_mask=prompt_mask, response_ids=response_ids,
        response_mask=response_mask, scores=returns, eos=eos, terms=terms,
        completions=completions, completion_ids=completion_ids, prompts=prompts, answers=answers, success=success,
        timings={"generate": t_model, "env": t_env},
        logprobs=torch.cat(step_logprobs, 1) * response_mask if record_logprobs else None,
    )
