"""Evaluation of a causal-LM policy on given prompts through a text environment.

The prompts go through the same vector env as training (``reset(options={"prompts",
"answers"})``), so they are tokenized and scored exactly as in training: the WeightedReward
total, every term's raw value, EOS and success flags. Decoding is greedy (temperature 0, the
default: one deterministic completion per prompt) or sampled (``temperature`` > 0,
``samples`` completions per prompt, seeded).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from rlseek.agents.lm_ppo.rollout import generate_rollout


def evaluate_prompts(
    lm: nn.Module,
    make_env: Callable[[int], Any],
    prompts: Sequence[str],
    answers: Sequence[Any] | None,
    *,
    batch_size: int,
    temperature: float = 0.0,
    samples: int = 1,
    seed: int = 0,
    device: torch.device | str = "cpu",
    keep_examples: int = 5,
) -> dict[str, Any]:
    """Score ``lm``'s completions of ``prompts``; returns JSON-ready figures.

    Args:
        make_env: ``n -> vector env with n rows``; called once per batch size needed.
        prompts, answers: the prompts to score, with reference answers (or None).
        batch_size: rows per generation batch.
        temperature: 0 for greedy decoding, else sampling temperature.
        samples: completions per prompt when sampling (greedy always uses 1).
        seed: seeds the sampling generator (greedy ignores it).
    """
    prompts = list(prompts)
    answers = list(answers) if answers is not None else [None] * len(prompts)
    if temperature <= 0.0:
        samples = 1
    prompts, answers = prompts * samples, answers * samples
    gen = torch.Generator(device=torch.device(device)).manual_seed(seed)
    envs: dict[int, Any] = {}
    totals: list[np.ndarray] = []
    terms: dict[str, list[np.ndarray]] = {}
    success: list[np.ndarray] = []
    eos: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    completions: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            chunk_p = prompts[start:start + batch_size]
            chunk_a = answers[start:start + batch_size]
            n = len(chunk_p)
            if n not in envs:
                envs[n] = make_env(n)
            ro = generate_rollout(lm, envs[n], temperature=temperature, generator=gen, device=device,
                                  options={"prompts": chunk_p, "answers": chunk_a})
            totals.append(ro.scores)
            for k, v in ro.terms.items():
                terms.setdefault(k, []).append(v)
            if ro.success is not None:
                success.append(ro.success)
            eos.append(ro.eos)
            lengths.append(ro.lengths)
            completions.extend(ro.completions)
    finally:
        for env in envs.values():
            env.close()
    return summarize(prompts, answers, completions, np.concatenate(totals),
                     {k: np.concatenate(v) for k, v in terms.items()},
                     np.concatenate(success) if success else None, np.concatenate(eos),
                     np.concatenate(lengths), temperature=temperature, samples=samples,
                     keep_examples=keep_examples)


def summarize(prompts: list[str], answers: list[Any], completions: list[str], totals: np.ndarray,
              terms: dict[str, np.ndarray], success: np.ndarray | None, eos: np.ndarray,
              lengths: np.ndarray, *, temperature: float, samples: int,
              keep_examples: int = 5) -> dict[str, Any]:
    """The evaluation figures: mean return, success rate, exact match, term means, EOS rate,
    response length, distinct-2 (words, over all completions) and positive fraction."""
    from rlseek.rewards.text import distinct_n

    def nanmean(x: np.ndarray) -> float | None:
        x = np.asarray(x, dtype=np.float64)
        return float(np.nanmean(x)) if x.size and np.isfinite(x).any() else None

    out: dict[str, Any] = {
        "episodes": len(completions),
        "decoding": "greedy" if temperature <= 0 else f"sampled (temperature {temperature}, {samples} per prompt)",
        "mean_return": float(np.mean(totals)) if len(totals) else None,
        "success_rate": float(np.mean(success)) if success is not None and len(success) else None,
        "terms": {k: nanmean(v) for k, v in terms.items()},
        "eos_rate": float(np.mean(eos)) if len(eos) else None,
        "mean_length": float(np.mean(lengths)) if len(lengths) else None,
        "distinct_2": distinct_n(completions, 2),
    }
    if any(a is not None for a in answers):
        hits = [c.strip() == str(a).strip() for c, a in zip(completions, answers) if a is not None]
        out["exact_match"] = float(np.mean(hits))
    if "sentiment" in terms:
        out["positive_fraction"] = float(np.mean(np.asarray(terms["sentiment"]) > 0))
    out["examples"] = [
        {"prompt": p, "completion": c, **({"answer": a} if a is not None else {})}
        for p, c, a in list(zip(prompts, completions, answers))[:keep_examples]
    ]
    for k, v in list(out.items()):
        if isinstance(v, float) and not math.isfinite(v):
            out[k] = None
    return out
