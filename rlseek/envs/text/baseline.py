"""Evaluate a causal LM on a text env's seeded held-out prompts.

The same figures serve for the base model and for an RL-tuned policy, so a before/after
comparison uses one definition:

* ``exact_match`` (Arithmetic): share of completions that are exactly the answer;
* ``positive_fraction`` (Reviews): share of completions whose lexicon ``sentiment`` score is
  > 0 (:func:`rlseek.rewards.text.positive_fraction`);
* ``distinct_2``: distinct-2 over the token ids of ALL evaluated completions together (EOS
  excluded), as :func:`rlseek.rewards.text.distinct_n` defines it;
* ``reward_total`` and each ``reward_<term>``: means of the env's default reward (distinct-n
  inside the diversity term is per batch of ``batch_size``);
* ``eos_rate``, ``mean_length`` (tokens, EOS included).

Run ``python -m rlseek.envs.text.baseline`` for the bundled model's figures (greedy and sampled
at temperature 1.0, 500 held-out prompts per env, seed 0).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np

from rlseek.envs.text.rollout import kv_cached_rollout
from rlseek.envs.text.tasks import get_task, heldout_prompts
from rlseek.envs.text.vector import TextVectorEnv
from rlseek.models.loader import DEFAULT_MODEL
from rlseek.rewards.text import distinct_n, positive_fraction, sentiment_score


def evaluate_lm(
    model: Any,
    env_id: str,
    *,
    n: int = 500,
    seed: int = 0,
    greedy: bool = True,
    temperature: float = 1.0,
    batch_size: int = 100,
    env_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Figures of ``model`` on ``n`` held-out prompts of ``env_id`` (see the module docstring).

    ``greedy=True`` decodes with argmax; otherwise samples at ``temperature``, seeded by ``seed``
    (batch k uses seed ``seed + k``). ``n`` must be a multiple of ``batch_size``.
    """
    if n % batch_size:
        raise ValueError(f"n ({n}) must be a multiple of batch_size ({batch_size})")
    kwargs = dict(env_kwargs or {})
    venv = TextVectorEnv(env_id, batch_size, **kwargs)
    held = heldout_prompts(env_id, n=n, seed=seed, level=kwargs.get("level"))
    infos = []
    for k in range(n // batch_size):
        sl = slice(k * batch_size, (k + 1) * batch_size)
        options = {"prompts": held["prompts"][sl], "answers": held["answers"][sl]}
        infos.append(kv_cached_rollout(model, venv, seed=seed + k, options=options,
                                       do_sample=not greedy, temperature=temperature))

    def cat(key: str) -> np.ndarray:
        return np.concatenate([np.asarray(i[key]) for i in infos])

    completions = [c for i in infos for c in i["completions"]]
    bodies = [ids[:-1] if e else ids for i in infos
              for ids, e in zip(i["completion_ids"], i["eos"])]
    figures: dict[str, Any] = {
        "env_id": get_task(env_id).env_id,
        "n": n,
        "seed": seed,
        "decoding": "greedy" if greedy else f"sampling, temperature {temperature}",
        "distinct_2": distinct_n(bodies, 2),
        "eos_rate": float(cat("eos").mean()),
        "mean_length": float(cat("lengths").mean()),
        "reward_total": float(cat("reward_total").mean()),
    }
    for key in infos[0]:
        if key.startswith("reward_") and key != "reward_total":
            figures[key] = float(np.nanmean(cat(key)))
    if get_task(env_id).name == "arithmetic":
        figures["exact_match"] = float(cat("is_success").mean())
    else:
        scores = [sentiment_score(c) for c in completions]
        figures["positive_fraction"] = positive_fraction(scores)
        figures["mean_sentiment"] = float(np.mean(scores))
    figures["examples"] = [{"prompt": p, "completion": c}
                           for p, c in zip(held["prompts"][:3], completions[:3])]
    return figures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Held-out figures of a causal LM on the text envs.")
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--envs", default="rlseek/Arithmetic-v0,rlseek/Reviews-v0")
    args = ap.parse_args(argv)
    from rlseek.models import load_causal_lm

    model, _tok = load_causal_lm(args.model)
    results = []
    for env_id in args.envs.split(","):
        for greedy in (True, False):
            fig = evaluate_lm(model, env_id, n=args.n, seed=args.seed, greedy=greedy,
                              batch_size=args.batch_size, env_kwargs={"model": args.model})
            results.append(fig)
            print(json.dumps(fig), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
