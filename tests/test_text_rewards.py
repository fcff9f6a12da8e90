"""The built-in text reward terms, through the registry and WeightedReward."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlseek.envs.text import reviews
from rlseek.errors import RlseekError
from rlseek.rewards import TextBatch, WeightedReward, get_reward, list_rewards
from rlseek.rewards.text import distinct_n, positive_fraction, sentiment_score


def batch(completions, answers=None, ids=None, eos=None, max_new_tokens=8) -> TextBatch:
    n = len(completions)
    ids = ids if ids is not None else [[ord(c) for c in text] + [0] for text in completions]
    return TextBatch(prompts=["p"] * n, completions=list(completions), completion_ids=ids,
                     answers=list(answers) if answers is not None else [None] * n,
                     eos=np.ones(n, bool) if eos is None else np.asarray(eos),
                     info=[{"max_new_tokens": max_new_tokens}] * n)


def term(name):
    return get_reward(name, "text").fn


def test_terms_are_registered_as_text() -> None:
    names = {t.name for t in list_rewards("text")}
    assert {"accuracy", "diversity", "efficiency", "sentiment"} <= names
    with pytest.raises(RlseekError, match="did you mean 'accuracy'"):
        get_reward("acuracy", "text")


def test_accuracy_exact_partial_and_not_applicable() -> None:
    b = batch([" 46", "45", "146", "forty", "", "x"], answers=["46", "46", "46", "46", "46", None])
    out = term("accuracy")(b)
    assert out[0] == 1.0  # surrounding whitespace is ignored
    assert out[1] == pytest.approx(0.5 * 1 / 2)  # one of two digit positions right
    assert out[2] == pytest.approx(0.5 * 2 / 3)
    assert out[3] == 0.0 and out[4] == 0.0
    assert math.isnan(out[5])  # no answer: not applicable
    strict = term("accuracy")(b, partial_credit=0.0)
    assert list(strict[:5]) == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert term("accuracy")(batch(["-7"], answers=["-7"]))[0] == 1.0


def test_accuracy_text_answers_use_word_f1() -> None:
    out = term("accuracy")(batch(["The Cat", "a cat sat", "dog"], answers=["the cat"] * 3))
    assert out[0] == 1.0
    assert 0 < out[1] < 0.5 and out[2] == 0.0


def test_diversity_penalizes_loops_and_collapse() -> None:
    ids = [[5, 5, 5, 5, 5, 9], [1, 2, 3, 4, 5, 9]]
    loop, varied = term("diversity")(batch(["a", "b"], ids=ids))
    assert loop < varied and 0 <= loop <= 1 and 0 <= varied <= 1
    same = term("diversity")(batch(["a"] * 4, ids=[[1, 2, 3, 9]] * 4))
    diff = term("diversity")(batch(["a"] * 4, ids=[[1, 2, 3, 9], [4, 5, 6, 9], [7, 8, 1, 9],
                                                   [3, 2, 1, 9]]))
    assert same.mean() < diff.mean()
    assert np.allclose(diff, 1.0)
    # EOS (the last id when eos=True) is not part of the n-grams.
    assert distinct_n([[1, 2, 1, 2]], 2) == pytest.approx(2 / 3)
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    assert distinct_n([[1]], 2) == 0.0


def test_efficiency_prefers_short_completions_with_eos() -> None:
    ids = [[1, 0], [1, 1, 1, 0], [1] * 8]
    out = term("efficiency")(batch(["a", "b", "c"], ids=ids, eos=[True, True, False]))
    assert out[0] > out[1] > 0 and out[2] == -1.0
    assert out[0] == pytest.approx(1 - 1 / 8)
    relaxed = term("efficiency")(batch(["a", "b"], ids=ids[:2], eos=[True, True]), target_len=3)
    assert list(relaxed) == [1.0, 1.0]
    assert term("efficiency")(batch(["c"], ids=[[1] * 8], eos=[False]), no_eos_penalty=0.5)[0] == -0.5


def test_sentiment_lexicon_with_negation() -> None:
    assert sentiment_score("excellent, I love it.") == 1.0
    assert sentiment_score("terrible and broken.") == -1.0
    assert sentiment_score("not good at all.") == -1.0
    assert sentiment_score("I would not recommend it.") == -1.0
    assert sentiment_score("great sound but the battery is weak.") == 0.0
    assert sentiment_score("about average.") == 0.0
    assert sentiment_score("Not bad. Great value!") == 1.0
    assert positive_fraction([0.5, 0.0, -1.0, 1.0]) == 0.5
    b = batch([" excellent.", " awful."])
    assert list(term("sentiment")(b)) == [1.0, -1.0]
    assert list(term("sentiment")(b, target="negative")) == [-1.0, 1.0]
    with pytest.raises(RlseekError, match="target"):
        term("sentiment")(b, target="happy")


def test_grammar_reviews_score_with_their_sentiment() -> None:
    rng = np.random.default_rng(0)
    by = {"positive": [], "negative": [], "neutral": []}
    for _ in range(600):
        _prompt, continuation, label = reviews.sample_review(rng)
        by[label].append(sentiment_score(continuation))
    assert np.mean(by["positive"]) > 0.5
    assert np.mean(by["negative"]) < -0.5
    assert abs(np.mean(by["neutral"])) < 0.3


def test_weighted_reward_default_arithmetic_weights() -> None:
    wr = WeightedReward({"accuracy": 0.6, "diversity": 0.3, "efficiency": 0.1}, kind="text")
    b = batch(["46", "12"], answers=["46", "46"], ids=[[4, 6, 0], [1, 2, 0]], max_new_tokens=8)
    totals, terms = wr(b)
    assert set(terms) == {"accuracy", "diversity", "efficiency"}
    expected = 0.6 * terms["accuracy"] + 0.3 * terms["diversity"] + 0.1 * terms["efficiency"]
    assert np.allclose(totals, expected)
    assert totals[0] > totals[1]
    with pytest.raises(RlseekError, match="unknown parameter"):
        WeightedReward({"accuracy": 1.0}, {"accuracy": {"partial": 1}}, kind="text")
