"""The one text rollout engine and the one text evaluator, against plain transformers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlseek.envs.text import heldout_prompts, make_text_vector_env
from rlseek.envs.text.evaluation import evaluate_heldout, evaluate_prompts
from rlseek.envs.text.rollout import DecodeSettings, RolloutEngine
from rlseek.models.loader import load_causal_lm
from rlseek.rewards.text import distinct_n, positive_fraction, sentiment_score


@pytest.fixture(scope="module")
def lm_tok():  # type: ignore[no-untyped-def]
    return load_causal_lm("rlseek/tiny-lm")


def greedy_generate(lm, tok, prompts: list[str], max_new: int) -> list[list[int]]:  # type: ignore[no-untyped-def]
    """model.generate's greedy completions, cut after the first EOS."""
    enc = tok(prompts, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = lm.generate(**enc, do_sample=False, max_new_tokens=max_new,
                          eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    rows = []
    for ids in out[:, enc["input_ids"].shape[1]:].tolist():
        rows.append(ids[: ids.index(tok.eos_token_id) + 1] if tok.eos_token_id in ids else ids)
    return rows


@pytest.mark.parametrize("env_id", ["rlseek/Arithmetic-v0", "rlseek/Reviews-v0"])
def test_greedy_figures_match_an_independent_computation(lm_tok, env_id: str) -> None:  # type: ignore[no-untyped-def]
    lm, tok = lm_tok
    env = make_text_vector_env(env_id, 1)
    held = heldout_prompts(env_id, n=40, seed=0)
    fig = evaluate_heldout(lm, env_id, n=40, seed=0, batch_size=20)
    rows = greedy_generate(lm, tok, held["prompts"], env.max_new_tokens)
    eos = [bool(r) and r[-1] == tok.eos_token_id for r in rows]
    bodies = [r[:-1] if e else r for r, e in zip(rows, eos)]
    texts = tok.batch_decode(bodies, skip_special_tokens=True)
    assert fig["env_id"] == env_id and fig["episodes"] == 40 and fig["decoding"] == "greedy"
    assert fig["eos_rate"] == pytest.approx(np.mean(eos))
    assert fig["mean_length"] == pytest.approx(np.mean([len(r) for r in rows]))
    assert fig["distinct_2"] == pytest.approx(distinct_n(bodies, 2))
    if env_id == "rlseek/Arithmetic-v0":
        want = np.mean([t.strip() == a for t, a in zip(texts, held["answers"])])
        assert fig["exact_match"] == pytest.approx(want) and fig["success_rate"] == fig["exact_match"]
    else:
        scores = [sentiment_score(t) for t in texts]
        assert fig["positive_fraction"] == pytest.approx(positive_fraction(scores))
        assert fig["mean_sentiment"] == pytest.approx(np.mean(scores))
    totals, terms, _ = env.score(held["prompts"][:20], held["answers"][:20], rows[:20])
    totals2, terms2, _ = env.score(held["prompts"][20:], held["answers"][20:], rows[20:])
    assert fig["mean_return"] == pytest.approx(np.mean(np.concatenate([totals, totals2])))
    for name in terms:
        assert fig["terms"][name] == pytest.approx(np.nanmean(np.concatenate([terms[name], terms2[name]])))


def test_sampled_evaluation_is_seeded_and_counts_samples(lm_tok) -> None:  # type: ignore[no-untyped-def]
    lm, _ = lm_tok
    held = heldout_prompts("rlseek/Reviews-v0", n=8, seed=1)

    def run(seed: int) -> dict:
        return evaluate_prompts(lm, lambda k: make_text_vector_env("rlseek/Reviews-v0", k),
                                held["prompts"], None, task="reviews", batch_size=8,
                                temperature=1.0, samples=2, seed=seed)

    a, b, c = run(0), run(0), run(1)
    assert a["episodes"] == 16 and a["decoding"] == "sampled (temperature 1.0, 2 per prompt)"
    assert a == b and a["examples"] != c["examples"]


def test_decode_early_exit_and_suppressed_eos(lm_tok) -> None:  # type: ignore[no-untyped-def]
    lm, tok = lm_tok
    held = heldout_prompts("rlseek/Arithmetic-v0", n=6, seed=2)
    enc = tok(held["prompts"], return_tensors="pt", padding=True)
    engine = RolloutEngine.for_tokenizer(lm, tok)
    greedy = engine.decode(enc["input_ids"], enc["attention_mask"], 20, DecodeSettings(temperature=0.0))
    assert greedy.rows() == greedy_generate(lm, tok, held["prompts"], 20)
    assert greedy.eos.all() and greedy.tokens.shape[1] < 20  # every row ended: the loop stopped
    # checking for the end only every 7 tokens gives the same completions
    sparse = engine.decode(enc["input_ids"], enc["attention_mask"], 20,
                           DecodeSettings(temperature=0.0, exit_check_every=7))
    assert sparse.rows() == greedy.rows() and torch.equal(sparse.tokens, greedy.tokens)
    g1, g2 = (torch.Generator().manual_seed(5) for _ in range(2))
    s1 = engine.decode(enc["input_ids"], enc["attention_mask"], 20, DecodeSettings(exit_check_every=1), g1)
    s2 = engine.decode(enc["input_ids"], enc["attention_mask"], 20, DecodeSettings(exit_check_every=4), g2)
    assert s1.rows() == s2.rows()
    long = engine.decode(enc["input_ids"], enc["attention_mask"], 9, DecodeSettings(suppress_eos=True))
    assert long.mask.all() and long.tokens.shape == (6, 9) and not long.eos.any()
    assert not (long.tokens == tok.eos_token_id).any() and not (long.tokens == tok.pad_token_id).any()
    with pytest.raises(ValueError, match="exit_check_every must be >= 1"):
        DecodeSettings(exit_check_every=0)
    with pytest.raises(ValueError, match="cache must be one of 'dynamic', 'static', 'auto'"):
        DecodeSettings(cache="paged")


def test_rollout_refuses_an_env_that_ends_rows_elsewhere(lm_tok) -> None:  # type: ignore[no-untyped-def]
    lm, tok = lm_tok
    env = make_text_vector_env("rlseek/Arithmetic-v0", 4, max_new_tokens=6)
    engine = RolloutEngine(lm, vocab_size=len(tok), pad_token_id=tok.pad_token_id, eos_token_id=None)
    with pytest.raises(RuntimeError, match="disagree"):
        engine.rollout(env, DecodeSettings(temperature=0.0), seed=0)
