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

from rlseek.agents.lm_ppo.rollout import Rollout, generate_rollout


def evaluate_prompts(
    lm: nn.Module,
    make_env: Callable[[int], Any],
    prompts: Sequence[str],
    answers: Sequence[Any] | None,
    *,
    task: str,
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
        task: the env's task name ("arithmetic", "reviews"), which decides the headline figure.
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
    rollouts = []
    try:
        for start in range(0, len(prompts), batch_size):
            chunk_p = prompts[start:start + batch_size]
            chunk_a = answers[start:start + batch_size]
            n = len(chunk_p)
            if n not in envs:
                envs[n] = make_env(n)
            rollouts.append(generate_rollout(lm, envs[n], temperature=temperature, generator=gen,
                                             device=device,
                                             options={"prompts": chunk_p, "answers": chunk_a}))
    finally:
        for env in envs.values():
            env.close()
    return summarize(rollouts, task=task, temperature=temperature, samples=samples,
                     keep_examples=keep_examples)


def summarize(rollouts: Sequence[Rollout], *, task: str, temperature: float, samples: int,
              keep_examples: int = 5) -> dict[str, Any]:
    """The evaluation figures, defined as :mod:`rlseek.envs.text.baseline` defines them:

    * ``exact_match`` (arithmetic): share of completions that are exactly the answer
      (the env's ``is_success``);
    * ``positive_fraction`` (reviews): share of completions whose lexicon sentiment is > 0;
    * ``distinct_2``: distinct-2 over the token ids of all completions together, EOS excluded;
    * ``mean_return`` (the WeightedReward total), ``terms`` (each term's raw mean),
      ``success_rate``, ``eos_rate``, ``mean_length`` (tokens, EOS included).
    """
    from rlseek.rewards.text import distinct_n, positive_fraction, sentiment_score

    def cat(get: Callable[[Rollout], Any]) -> np.ndarray:
        return np.concatenate([np.asarray(get(r), dtype=np.float64) for r in rollouts])

    completions = [c for r in rollouts for c in r.completions]
    bodies = [ids[:-1] if e else ids for r in rollouts for ids, e in zip(r.completion_ids, r.eos)]
    term_names = list(rollouts[0].terms) if rollouts else []
    terms = {k: cat(lambda r, k=k: r.terms[k]) for k in term_names}
    success = cat(lambda r: r.success) if rollouts and rollouts[0].success is not None else None
    out: dict[str, Any] = {
        "episodes": len(completions),
        "decoding": "greedy" if temperature <= 0 else f"sampled (temperature {temperature}, {samples} per prompt)",
        "mean_return": float(cat(lambda r: r.scores).mean()),
        "success_rate": float(success.mean()) if success is not None else None,
        "terms": {k: float(np.nanmean(v)) if np.isfinite(v).any() else None for k, v in terms.items()},
        "eos_rate": float(cat(lambda r: r.eos).mean()),
        "mean_length": float(cat(lambda r: r.lengths).mean()),
        "distinct_2": distinct_n(bodies, 2),
    }
    if task == "arithmetic" and success is not None:
        out["exact_match"] = float(success.mean())
    elif task == "reviews":
        scores = [sentiment_score(c) for c in completions]
        out["positive_fraction"] = positive_fraction(scores)
        out["mean_sentiment"] = float(np.mean(scores)) if scores else None
    prompts = [p for r in rollouts for p in r.prompts]
    answers = [a for r in rollouts for a in r.answers]
    out["examples"] = [
        {"prompt": p, "completion": c, **({"answer": a} if a is not None else {})}
        for p, c, a in list(zip(prompts, completions, answers))[:keep_examples]
    ]
    for k, v in list(out.items()):
        if isinstance(v, float) and not math.isfinite(v):
            out[k] = None
    return out
