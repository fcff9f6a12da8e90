"""rlseek's one text evaluator: a causal LM's figures on given prompts, through a text env.

The prompts go through the same vector env as training (``reset(options={"prompts",
"answers"})``) and the same :class:`~rlseek.envs.text.rollout.RolloutEngine`, so they are
tokenized, decoded and scored exactly as in training. The same figures serve for a base model
and for an RL-tuned policy, so a before/after comparison uses one definition:

* ``exact_match`` (Arithmetic): share of completions that are exactly the answer (the env's
  ``is_success``);
* ``positive_fraction`` (Reviews): share of completions whose lexicon ``sentiment`` score is
  > 0 (:func:`rlseek.rewards.text.positive_fraction`), and ``mean_sentiment``;
* ``distinct_2``: distinct-2 over the token ids of ALL evaluated completions together (EOS
  excluded), as :func:`rlseek.rewards.text.distinct_n` defines it;
* ``mean_return`` (the env's WeightedReward total) and ``terms`` (each term's raw mean;
  distinct-n inside the diversity term is per batch of ``batch_size``), ``success_rate``,
  ``eos_rate``, ``mean_length`` (tokens, EOS included).

Decoding is greedy (temperature 0: one deterministic completion per prompt) or sampled
(``temperature`` > 0, ``samples`` completions per prompt, one torch generator seeded with
``seed``).

Run ``python -m rlseek.envs.text.evaluation`` for the bundled model's figures (greedy and
sampled at temperature 1.0, 500 held-out prompts per env, seed 0).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from rlseek.envs.text.rollout import DecodeSettings, Rollout, RolloutEngine


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
    """Score ``lm``'s completions of ``prompts``; returns JSON-ready figures (module docstring).

    Args:
        make_env: ``n -> text vector env with n rows``; called once per batch size needed.
        prompts, answers: the prompts to score, with reference answers (or None).
        task: the env's task name ("arithmetic", "reviews"), which decides the headline figure.
        batch_size: rows per generation batch.
        temperature: 0 for greedy decoding, else the sampling temperature.
        samples: completions per prompt when sampling (greedy always uses 1).
        seed: seeds the sampling generator (greedy ignores it).
    """
    prompts = list(prompts)
    answers = list(answers) if answers is not None else [None] * len(prompts)
    if temperature <= 0.0:
        samples = 1
    prompts, answers = prompts * samples, answers * samples
    device = torch.device(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    settings = DecodeSettings(temperature=max(float(temperature), 0.0))
    envs: dict[int, Any] = {}
    rollouts = []
    try:
        for start in range(0, len(prompts), batch_size):
            chunk_p = prompts[start:start + batch_size]
            chunk_a = answers[start:start + batch_size]
            n = len(chunk_p)
            if n not in envs:
                envs[n] = make_env(n)
            engine = RolloutEngine.for_env(lm, envs[n], device)
            rollouts.append(engine.rollout(envs[n], settings, generator=gen,
                                           options={"prompts": chunk_p, "answers": chunk_a}))
    finally:
        for env in envs.values():
            env.close()
    return summarize(rollouts, task=task, temperature=temperature, samples=samples,
                     keep_examples=keep_examples)


def summarize(rollouts: Sequence[Rollout], *, task: str, temperature: float, samples: int,
              keep_examples: int = 5) -> dict[str, Any]:
    """The evaluation figures of finished rollouts (defined in the module docstring)."""
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


def evaluate_heldout(model: nn.Module, env_id: str, *, n: int = 500, seed: int = 0,
                     temperature: float = 0.0, batch_size: int = 100,
                     env_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """:func:`evaluate_prompts` on ``n`` seeded held-out prompts of ``env_id``
    (:func:`rlseek.envs.text.heldout_prompts`), with ``env_id`` and ``seed`` in the result."""
    from rlseek.envs.text.tasks import get_task, heldout_prompts
    from rlseek.envs.text.vector import make_text_vector_env

    kwargs = dict(env_kwargs or {})
    task = get_task(env_id)
    held = heldout_prompts(env_id, n=n, seed=seed, level=kwargs.get("level"))
    device = next(model.parameters()).device
    figures = evaluate_prompts(model, lambda k: make_text_vector_env(env_id, k, **kwargs),
                               held["prompts"], held["answers"], task=task.name,
                               batch_size=batch_size, temperature=temperature, seed=seed,
                               device=device, keep_examples=3)
    return {"env_id": task.env_id, "seed": seed, **figures}


def main(argv: list[str] | None = None) -> int:
    """``python -m rlseek.envs.text.evaluation``: a model's held-out figures, one JSON line
    per env and decoding."""
    ap = argparse.ArgumentParser(description="Held-out figures of a causal LM on the text envs.")
    ap.add_argument("--model", default="rlseek/tiny-lm")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--envs", default="rlseek/Arithmetic-v0,rlseek/Reviews-v0")
    args = ap.parse_args(argv)
    from rlseek.models import load_causal_lm

    model, _tok = load_causal_lm(args.model)
    for env_id in args.envs.split(","):
        for temperature in (0.0, 1.0):
            fig = evaluate_heldout(model, env_id, n=args.n, seed=args.seed, temperature=temperature,
                                   batch_size=args.batch_size, env_kwargs={"model": args.model})
            print(json.dumps(fig), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
