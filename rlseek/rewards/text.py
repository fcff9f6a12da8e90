"""Built-in text reward terms: ``accuracy``, ``diversity``, ``efficiency``, ``sentiment``.

Each is a ``(batch: TextBatch, **params) -> np.ndarray`` of shape (B,), called once per batch of
finished completions, so batch-level terms (distinct-n) see the whole batch. Default weights per
env: Arithmetic ``accuracy 0.6 / diversity 0.3 / efficiency 0.1``; Reviews
``sentiment 0.6 / diversity 0.3 / efficiency 0.1`` (the sentiment term takes accuracy's place,
as reviews have no reference answer).

Public helpers (:func:`sentiment_score`, :func:`distinct_n`, :func:`positive_fraction`) compute
the evaluation figures with exactly the same definitions as the terms.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from rlseek.errors import RlseekError
from rlseek.rewards.registry import TextBatch, register_reward

_INT = re.compile(r"[+-]?\d+")


def _numeric_credit(pred: str, answer: str) -> float:
    """Share of digit positions (right-aligned, sign included) where ``pred`` matches ``answer``."""
    width = max(len(pred), len(answer))
    p, a = pred.rjust(width), answer.rjust(width)
    return sum(x == y for x, y in zip(p, a)) / width


def _word_f1(pred: str, answer: str) -> float:
    p, a = pred.lower().split(), answer.lower().split()
    common = sum((Counter(p) & Counter(a)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(a)
    return 2 * precision * recall / (precision + recall)


@register_reward("accuracy", kind="text")
def accuracy(batch: TextBatch, *, partial_credit: float = 0.5) -> np.ndarray:
    """Exact match of the completion with the reference answer (1.0), with partial credit below.

    The completion and answer are compared after stripping surrounding whitespace.

    * Integer answers (arithmetic): a completion that is an integer but not the answer earns
      ``partial_credit`` × the share of digit positions, aligned from the right, that agree
      (``"45"`` for ``"46"``: 0.5 × 1/2 = 0.25). Anything else (words, empty) earns 0.
    * Text answers: case-insensitive exact match earns 1.0; otherwise ``partial_credit`` × the
      word-overlap F1 (as in SQuAD).

    So a wrong answer always scores below ``partial_credit`` and only an exact one scores 1.
    Samples without an answer are NaN ("not applicable"). Set ``partial_credit=0`` for strict
    exact match.
    """
    out = np.full(len(batch), np.nan)
    for i, (completion, answer) in enumerate(zip(batch.completions, batch.answers)):
        if answer is None:
            continue
        pred, ref = completion.strip(), str(answer).strip()
        if _INT.fullmatch(ref):
            if pred == ref:
                out[i] = 1.0
            elif _INT.fullmatch(pred):
                out[i] = partial_credit * _numeric_credit(pred, ref)
            else:
                out[i] = 0.0
        elif " ".join(pred.lower().split()) == " ".join(ref.lower().split()):
            out[i] = 1.0
        else:
            out[i] = partial_credit * _word_f1(pred, ref)
    return out


def _content_ids(batch: TextBatch) -> list[list[int]]:
    """Completion token ids without the final EOS token."""
    return [list(ids[:-1]) if eos and len(ids) else list(ids)
            for ids, eos in zip(batch.completion_ids, batch.eos)]


def _ngrams(ids: Sequence[int], n: int) -> list[tuple[int, ...]]:
    return [tuple(ids[k:k + n]) for k in range(len(ids) - n + 1)]


def distinct_n(sequences: Sequence[Sequence[int]] | Sequence[str], n: int = 2) -> float:
    """Distinct-n of a corpus (Li et al., 2016): unique n-grams / all n-grams, in [0, 1].

    ``sequences`` are token-id lists (as the diversity term uses) or strings, which are split
    on whitespace into words. Returns 0.0 when no sequence has ``n`` tokens.
    """
    grams: list[tuple] = []
    for seq in sequences:
        items = seq.split() if isinstance(seq, str) else list(seq)
        grams.extend(_ngrams(items, n))
    return len(set(grams)) / len(grams) if grams else 0.0


@register_reward("diversity", kind="text")
def diversity(batch: TextBatch, *, n: int = 2, batch_weight: float = 0.5) -> np.ndarray:
    """Distinct-n across the batch blended with a within-completion repetition penalty, in [0, 1].

    ``diversity_i = batch_weight · D + (1 − batch_weight) · u_i`` on completion token ids (EOS
    excluded), where ``D`` is the batch's distinct-n (unique n-grams / all n-grams over every
    completion of the batch; the same for every row, it rewards a policy that does not collapse
    onto one output) and ``u_i`` is completion i's own distinct-n (1 − its share of repeated
    n-grams; it penalizes loops such as "the the the"). A completion shorter than ``n`` tokens
    repeats nothing: ``u_i = 1``.
    """
    ids = _content_ids(batch)
    batch_d = distinct_n(ids, n)
    own = np.array([distinct_n([x], n) if len(x) >= n else 1.0 for x in ids])
    return batch_weight * batch_d + (1.0 - batch_weight) * own


@register_reward("efficiency", kind="text")
def efficiency(
    batch: TextBatch, *, max_tokens: int | None = None, target_len: int = 0,
    no_eos_penalty: float = 1.0,
) -> np.ndarray:
    """Shorter completions that end with EOS score higher; no EOS costs ``no_eos_penalty``.

    With EOS: ``1 − max(0, L − target_len) / (max_tokens − target_len)`` clipped to [0, 1], where
    ``L`` is the number of tokens before EOS and ``max_tokens`` defaults to the env's
    ``max_new_tokens`` (from the sample's info). Completions of up to ``target_len`` tokens
    score 1. Without EOS (cut off at the token limit): ``−no_eos_penalty``, the missing-EOS
    penalty PPO-RLHF needs so a policy learns to stop.
    """
    ids = _content_ids(batch)
    out = np.empty(len(batch))
    for i, (x, eos) in enumerate(zip(ids, batch.eos)):
        if not eos:
            out[i] = -no_eos_penalty
            continue
        limit = max_tokens or batch.info[i].get("max_new_tokens") or max(len(y) + 1 for y in ids)
        span = max(1, int(limit) - target_len)
        out[i] = float(np.clip(1.0 - max(0, len(x) - target_len) / span, 0.0, 1.0))
    return out


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


POSITIVE_WORDS = _wordset("""
good great excellent amazing love loved loves lovely perfect perfectly fantastic wonderful
delicious tasty fresh friendly helpful recommend recommended comfortable reliable sturdy happy
best better nice pleasant impressive impressed worth fast quick solid beautiful superb awesome
enjoyed enjoy favorite favourite clean cozy generous smooth quiet bright durable value glad
""")
NEGATIVE_WORDS = _wordset("""
bad terrible awful poor disappointing disappointed disappointment broke broken worst worse slow
rude bland stale noisy flimsy useless hate hated horrible overpriced weak dirty greasy returned
refund avoid waste annoying leaked mediocre uncomfortable problem problems failed fails faulty
unreliable cheap cold soggy burnt sad angry wrong dull ugly
""")
NEGATORS = _wordset("""not no never hardly nothing nobody neither nor without isn't wasn't
don't doesn't didn't won't wouldn't can't cannot aren't weren't""")
NEGATION_SCOPE = 3
"""A negator flips the polarity of sentiment words among the next 3 words of its clause."""

_WORD_OR_PUNCT = re.compile(r"[a-z]+(?:'[a-z]+)?|[.,;:!?]")


def sentiment_score(text: str) -> float:
    """Lexicon sentiment of ``text`` in [-1, 1]: ``(P − N) / (P + N)``, 0 with no sentiment words.

    ``P`` and ``N`` count the words of :data:`POSITIVE_WORDS` and :data:`NEGATIVE_WORDS`
    (lower-cased). A word within :data:`NEGATION_SCOPE` words after a negator of
    :data:`NEGATORS` ("not good", "never again worth it") counts for the opposite side;
    punctuation ends a negation's scope.
    """
    pos = neg = 0
    scope = 0
    for tok in _WORD_OR_PUNCT.findall(text.lower()):
        if tok in ".,;:!?":
            scope = 0
            continue
        if tok in NEGATORS or tok.endswith("n't"):
            scope = NEGATION_SCOPE
            continue
        polarity = 1 if tok in POSITIVE_WORDS else -1 if tok in NEGATIVE_WORDS else 0
        if scope:
            scope -= 1
            polarity = -polarity
        pos += polarity > 0
        neg += polarity < 0
    return (pos - neg) / (pos + neg) if pos + neg else 0.0


def positive_fraction(scores: Sequence[float] | np.ndarray) -> float:
    """Share of completions whose :func:`sentiment_score` is strictly positive (> 0)."""
    arr = np.asarray(scores, dtype=float)
    return float((arr > 0).mean()) if arr.size else math.nan


@register_reward("sentiment", kind="text")
def sentiment(batch: TextBatch, *, target: str = "positive") -> np.ndarray:
    """Lexicon sentiment of each completion in [-1, 1] (see ``sentiment_score``), signed by target.

    ``target="positive"`` rewards positive completions (the score itself); ``"negative"``
    rewards negative ones (the negated score). Only the completion is scored, not the prompt.
    """
    if target not in ("positive", "negative"):
        raise RlseekError(f"sentiment target must be 'positive' or 'negative', got {target!r}")
    sign = 1.0 if target == "positive" else -1.0
    return np.array([sign * sentiment_score(c) for c in batch.completions], dtype=float)
