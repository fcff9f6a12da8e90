"""Synthesized preference data: a policy writes two completions, a scripted annotator picks one.

The annotator is a Bradley–Terry chooser over a documented score ``s`` (a registered text reward
term), with label noise:

1. ``P(a ≻ b) = σ((s(a) − s(b)) / τ)``: the temperature ``τ`` (in units of the score) sets how
   decisive the annotator is: a score gap of ``τ`` is preferred with probability σ(1) ≈ 0.73,
   a gap of ``3τ`` with 0.95;
2. the choice drawn from that probability is then flipped with probability ``noise`` (a
   careless click).

Pairs whose two scores tie carry no preference (the annotator would toss a coin) and are
skipped, as are identical completions. The *noiseless preference* of a pair is the side with
the higher score; the annotator's agreement with it (reported by :func:`synthesize`) bounds the
accuracy any reward model can reach on these labels.

Tasks (prompts from the task's training or held-out prompt space, score term, default τ):

* ``rlseek/Reviews-v0``: the review openings of :mod:`rlseek.envs.text.reviews`; score = the
  ``sentiment`` lexicon term of :mod:`rlseek.rewards.text`; τ = :data:`REVIEWS_TEMPERATURE`.
* ``rlseek/Arithmetic-v0``: 2-digit additions; score = the ``accuracy`` term (1 for the right
  answer, else 0), so only right-versus-wrong pairs are kept; τ = 0.25.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlseek.envs.text.tasks import ENV_TASKS
from rlseek.errors import RlseekError, did_you_mean
from rlseek.models.loader import DEFAULT_MODEL
from rlseek.reward_models.data import PreferencePair

REVIEWS_TEMPERATURE = 0.05
"""τ for Reviews, in units of the sentiment score (see :data:`TASKS`)."""


@dataclass(frozen=True)
class AnnotatorTask:
    """How to synthesize preferences for one text env: its prompts, score term and τ."""

    env_id: str
    task: str
    prompts: Callable[[np.random.Generator, bool], tuple[str, str | None]]
    """(rng, heldout) -> (prompt, reference answer or None)."""
    score_term: str
    temperature: float
    max_new_tokens: int
    score_params: dict[str, Any] = field(default_factory=dict)


def _reviews_prompt(rng: np.random.Generator, heldout: bool) -> tuple[str, str | None]:
    from rlseek.envs.text import reviews

    return reviews.sample_prompt(rng, heldout=heldout), None


def _arithmetic_prompt(rng: np.random.Generator, heldout: bool) -> tuple[str, str | None]:
    from rlseek.envs.text import arithmetic

    return arithmetic.sample_split(rng, arithmetic.DEFAULT_LEVEL, heldout)


TASKS: dict[str, AnnotatorTask] = {
    "rlseek/Reviews-v0": AnnotatorTask("rlseek/Reviews-v0", "reviews", _reviews_prompt,
                                       "sentiment", REVIEWS_TEMPERATURE,
                                       ENV_TASKS["rlseek/Reviews-v0"].max_new_tokens),
    "rlseek/Arithmetic-v0": AnnotatorTask("rlseek/Arithmetic-v0", "arithmetic", _arithmetic_prompt,
                                          "accuracy", 0.25,
                                          ENV_TASKS["rlseek/Arithmetic-v0"].max_new_tokens),
}


def get_task(env_id: str) -> AnnotatorTask:
    """The annotator task of ``env_id``; unknown ids fail with a did-you-mean."""
    if env_id not in TASKS:
        raise RlseekError(
            f"no scripted annotator for task '{env_id}'{did_you_mean(env_id, TASKS)}; "
            f"tasks with one: {', '.join(TASKS)}"
        )
    return TASKS[env_id]


class ScriptedAnnotator:
    """Bradley–Terry choice with temperature ``temperature`` and flip probability ``noise``."""

    def __init__(self, temperature: float, noise: float, rng: np.random.Generator) -> None:
        if not temperature > 0:
            raise RlseekError(f"annotator temperature must be > 0, got {temperature}")
        if not 0.0 <= noise <= 0.5:
            raise RlseekError(f"--noise is a flip probability in [0, 0.5], got {noise}")
        self.temperature = float(temperature)
        self.noise = float(noise)
        self.rng = rng

    def p_first(self, s_a: float, s_b: float) -> float:
        """Noiseless Bradley–Terry probability that ``a`` is preferred."""
        z = (s_a - s_b) / self.temperature
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    def choose_first(self, s_a: float, s_b: float) -> bool:
        """Draw the label: True when ``a`` is chosen."""
        first = bool(self.rng.random() < self.p_first(s_a, s_b))
        if self.rng.random() < self.noise:
            first = not first
        return first


def _generate(model: Any, tokenizer: Any, prompts: list[str], max_new_tokens: int,
              generator: Any) -> list[tuple[list[int], bool]]:
    """Two sampled completions per prompt (temperature 1, no top-k), through rlseek's rollout
    engine: [(ids with EOS if any, ended with EOS)] for prompt 0 twice, prompt 1 twice, ..."""
    from rlseek.envs.text.rollout import DecodeSettings, RolloutEngine

    doubled = [p for p in prompts for _ in range(2)]
    enc = tokenizer(doubled, return_tensors="pt", padding=True)
    engine = RolloutEngine.for_tokenizer(model, tokenizer)
    gen = engine.decode(enc["input_ids"], enc["attention_mask"], max_new_tokens,
                        DecodeSettings(temperature=1.0), generator=generator)
    return list(zip(gen.rows(), gen.eos.tolist()))


def synthesize(
    env_id: str,
    n: int,
    noise: float = 0.1,
    seed: int = 0,
    policy: str = DEFAULT_MODEL,
    temperature: float | None = None,
    heldout: bool = False,
    score_term: str | None = None,
    score_params: dict[str, Any] | None = None,
    device: str = "cpu",
    prompts_per_batch: int = 64,
    log: Callable[[str], None] | None = None,
) -> tuple[list[PreferencePair], dict[str, Any]]:
    """``n`` labelled pairs for ``env_id`` and the annotator's figures.

    ``score_term`` replaces the task's score (any registered text term, e.g. one of a user
    module); its params are ``score_params``. ``temperature`` is then in that term's units.

    Each pair keeps, besides prompt/chosen/rejected, the annotator's ``score_chosen``,
    ``score_rejected`` and ``agrees`` (label equals the noiseless preference). The figures:
    ``agreement`` (share of pairs that agree), ``skipped_ties``, ``temperature``, ``noise``.
    """
    import torch

    from rlseek.models.loader import load_causal_lm
    from rlseek.rewards.registry import TextBatch, get_reward

    if n < 1:
        raise RlseekError(f"--n must be >= 1, got {n}")
    task = get_task(env_id)
    term_name = score_term or task.score_term
    term = get_reward(term_name, "text")
    params = dict(task.score_params if score_term is None else {}, **(score_params or {}))
    tau = float(temperature if temperature is not None else task.temperature)
    rng = np.random.default_rng(seed)
    annotator = ScriptedAnnotator(tau, noise, np.random.default_rng([seed, 1]))
    model, tokenizer = load_causal_lm(policy, device=device)
    sampler = torch.Generator(device=model.device).manual_seed(seed)
    pairs: list[PreferencePair] = []
    ties = 0
    attempts = 0
    while len(pairs) < n:
        if attempts > 20 * n + 10 * prompts_per_batch:
            raise RlseekError(
                f"after {attempts} prompts only {len(pairs)} of {n} pairs had distinct scores; "
                f"the policy's completions tie on '{term_name}' too often"
            )
        drawn = [task.prompts(rng, heldout) for _ in range(prompts_per_batch)]
        attempts += len(drawn)
        prompts = [p for p, _ in drawn]
        rows = _generate(model, tokenizer, prompts, task.max_new_tokens, sampler)
        texts = [tokenizer.decode(ids, skip_special_tokens=True) for ids, _ in rows]
        batch = TextBatch(
            prompts=[p for p in prompts for _ in range(2)],
            completions=texts,
            completion_ids=[ids for ids, _ in rows],
            answers=[a for _, a in drawn for _ in range(2)],
            eos=np.array([e for _, e in rows]),
            info=[{"task": task.task} for _ in rows],
        )
        scores = np.asarray(term.fn(batch, **params), dtype=np.float64)
        for i, prompt in enumerate(prompts):
            a, b = texts[2 * i], texts[2 * i + 1]
            s_a, s_b = scores[2 * i], scores[2 * i + 1]
            if a == b or not a.strip() or not b.strip() or not (np.isfinite(s_a) and np.isfinite(s_b)) \
                    or abs(s_a - s_b) < 1e-9:
                ties += 1
                continue
            first = annotator.choose_first(s_a, s_b)
            (chosen, s_c), (rejected, s_r) = ((a, s_a), (b, s_b)) if first else ((b, s_b), (a, s_a))
            meta = {"score_chosen": round(float(s_c), 6), "score_rejected": round(float(s_r), 6),
                    "agrees": bool(s_c > s_r)}
            pairs.append(PreferencePair(chosen, rejected, prompt, None, meta))
            if len(pairs) == n:
                break
        if log is not None:
            log(f"{len(pairs)}/{n} pairs ({ties} tied pairs skipped)")
    agreement = float(np.mean([p.meta["agrees"] for p in pairs]))
    stats = {
        "task": env_id,
        "n": len(pairs),
        "prompts": "heldout" if heldout else "train",
        "score_term": term_name,
        "temperature": tau,
        "noise": float(noise),
        "seed": int(seed),
        "policy": policy,
        "skipped_ties": ties,
        "agreement": agreement,
    }
    return pairs, stats
