"""Drive a :class:`TextVectorEnv` with a causal LM that keeps its KV cache across steps.

This is the reference loop for the vector env's contract: one prefill forward over the
left-padded prompts, then one single-token forward per env step, feeding the env's ``(B, 1)``
observation together with the growing attention mask. Evaluation (:mod:`.baseline`) and the
benchmark use it; RL agents write their own (they also need log-probs and values).
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch

from rlseek.envs.text.vector import TextVectorEnv


def _cache_kwarg(model: Any) -> str:
    """The forward argument that takes the KV cache: ``cache`` (transformers >= 5.2x) or the
    older ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _cache_of(out: Any) -> Any:
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that count only attended tokens, so left padding does not shift them."""
    return (mask.cumsum(-1) - 1).clamp_min(0)


@torch.no_grad()
def kv_cached_rollout(
    model: Any,
    venv: TextVectorEnv,
    *,
    seed: int | None = None,
    options: dict[str, Any] | None = None,
    do_sample: bool = True,
    temperature: float = 1.0,
    suppress_eos: bool = False,
) -> dict[str, Any]:
    """Run one batch episode of ``venv`` with ``model``; return the final step's info.

    Args:
        model: a transformers causal LM on any device (the env's tokens move to it).
        venv: the vector env; it is reset here with ``seed`` and ``options``.
        do_sample: sample from softmax(logits / temperature); False = greedy (argmax).
        temperature: sampling temperature (ignored when greedy).
        suppress_eos: never emit EOS (every row runs to ``max_new_tokens``; for benchmarks).

    Sampling uses a torch generator seeded from ``seed`` so that a rollout is reproducible.
    The returned info also holds ``"rewards"`` (the final step's reward array).
    """
    device = next(model.parameters()).device
    gen = torch.Generator(device=device)
    gen.manual_seed(0 if seed is None else int(seed))
    obs, _ = venv.reset(seed=seed, options=options)
    ids = torch.as_tensor(obs["input_ids"], device=device)
    mask = torch.as_tensor(obs["attention_mask"], device=device)
    out = model(input_ids=ids, attention_mask=mask, position_ids=_positions(mask), use_cache=True)
    cache_kw = _cache_kwarg(model)
    past = _cache_of(out)
    logits = out.logits[:, -1, :]
    while True:
        logits = logits.float()
        if suppress_eos:
            logits[:, venv.eos_token_id] = -torch.inf
        if do_sample:
            probs = torch.softmax(logits / temperature, dim=-1)
            action = torch.multinomial(probs, 1, generator=gen).squeeze(-1)
        else:
            action = logits.argmax(-1)
        obs, rewards, _term, _trunc, info = venv.step(action.cpu().numpy())
        if info.get("final"):
            info["rewards"] = np.asarray(rewards)
            return info
        step_ids = torch.as_tensor(obs["input_ids"], device=device)
        mask = torch.cat([mask, torch.as_tensor(obs["attention_mask"], device=device)], dim=1)
        pos = (mask.sum(-1, keepdim=True) - 1).clamp_min(0)
        out = model(input_ids=step_ids, attention_mask=mask, position_ids=pos,
                    use_cache=True, **{cache_kw: past})
        past = _cache_of(out)
        logits = out.logits[:, -1, :]
