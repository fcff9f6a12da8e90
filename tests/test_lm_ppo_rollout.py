"""KV-cached rollouts through the real text vector env with the bundled tiny LM."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlseek.agents.lm_ppo import core
from rlseek.agents.lm_ppo.config import LmPpoConfig
from rlseek.agents.lm_ppo.model import build_policy, forward_response, sequence_inputs
from rlseek.agents.lm_ppo.rollout import generate_rollout
from rlseek.agents.lm_ppo.trainer import PPOTrainer
from rlseek.envs.text import heldout_prompts, make_text_vector_env
from rlseek.models.loader import load_causal_lm


@pytest.fixture(scope="module")
def lm():  # type: ignore[no-untyped-def]
    model, _ = load_causal_lm("rlseek/tiny-lm")
    return model


@pytest.fixture(scope="module")
def reviews_env():  # type: ignore[no-untyped-def]
    env = make_text_vector_env("rlseek/Reviews-v0", 6, max_new_tokens=12)
    yield env
    env.close()


def test_greedy_rollout_matches_model_generate(lm, reviews_env) -> None:  # type: ignore[no-untyped-def]
    ro = generate_rollout(lm, reviews_env, temperature=0.0, seed=3)
    env = reviews_env
    with torch.no_grad():
        out = lm.generate(input_ids=ro.prompt_ids, attention_mask=ro.prompt_mask, do_sample=False,
                          max_new_tokens=env.max_new_tokens, eos_token_id=env.eos_token_id,
                          pad_token_id=env.pad_token_id)
    new = out[:, ro.prompt_ids.shape[1]:].tolist()
    for i, ids in enumerate(ro.completion_ids):
        want = new[i][: new[i].index(env.eos_token_id) + 1] if env.eos_token_id in new[i] else new[i]
        assert ids == want


def test_masks_eos_padding_and_scores(lm, reviews_env) -> None:  # type: ignore[no-untyped-def]
    env = reviews_env
    g = torch.Generator().manual_seed(0)
    ro = generate_rollout(lm, env, temperature=1.0, generator=g, seed=5)
    assert ro.prompt_ids.shape[0] == len(ro) == 6
    # left padding: each row's prompt ends in the last column
    assert (ro.prompt_mask[:, -1] == 1).all()
    for i in range(len(ro)):
        n = int(ro.response_mask[i].sum())
        ids = ro.response_ids[i].tolist()
        assert ids[:n] == ro.completion_ids[i]  # mask covers exactly the generated tokens
        assert (ro.response_mask[i, :n] == 1).all() and (ro.response_mask[i, n:] == 0).all()
        assert all(t == env.pad_token_id for t in ids[n:])  # padding after the row ended
        if ro.eos[i]:
            assert ids[n - 1] == env.eos_token_id  # EOS is the last masked-in token
        else:
            assert n == env.max_new_tokens and env.eos_token_id not in ids[:n]
    totals, terms, texts = env.score(ro.prompts, ro.answers, ro.completion_ids)
    np.testing.assert_allclose(ro.scores, totals)  # the env's reward arrives in the rollout
    assert texts == ro.completions
    for name, values in terms.items():
        np.testing.assert_allclose(ro.terms[name], values)


def test_cached_logprobs_equal_teacher_forced_logprobs(lm, reviews_env) -> None:  # type: ignore[no-untyped-def]
    temp = 0.7
    g = torch.Generator().manual_seed(1)
    ro = generate_rollout(lm, reviews_env, temperature=temp, generator=g, seed=7, record_logprobs=True)
    inputs = sequence_inputs(ro.prompt_ids, ro.prompt_mask, ro.response_ids, ro.response_mask)
    with torch.no_grad():
        logits, _ = forward_response(lm, inputs, ro.response_ids.shape[1], temp)
    recomputed = core.logprobs_of(logits, ro.response_ids) * ro.response_mask
    torch.testing.assert_close(recomputed, ro.logprobs, atol=2e-4, rtol=1e-4)


def test_heldout_prompts_are_scored_in_order(lm) -> None:  # type: ignore[no-untyped-def]
    held = heldout_prompts("rlseek/Arithmetic-v0", n=4, seed=0)
    env = make_text_vector_env("rlseek/Arithmetic-v0", 4)
    ro = generate_rollout(lm, env, temperature=0.0, options=held)
    assert ro.prompts == held["prompts"] and ro.answers == held["answers"]
    expected = [c.strip() == a for c, a in zip(ro.completions, held["answers"])]
    assert ro.success.astype(bool).tolist() == expected


def test_ppo_step_at_init_has_zero_kl_and_moves_the_policy(lm) -> None:  # type: ignore[no-untyped-def]
    import copy

    cfg = LmPpoConfig(temperature=0.8, learning_rate=1e-3, ppo_epochs=2, num_minibatches=2)
    policy, reference = build_policy(copy.deepcopy(lm), cfg)
    trainer = PPOTrainer(policy, reference, cfg, torch.device("cpu"))
    env = make_text_vector_env("rlseek/Arithmetic-v0", 8)
    g = torch.Generator().manual_seed(0)
    ro = generate_rollout(policy.lm, env, temperature=cfg.temperature, generator=g, seed=0)
    before = [p.detach().clone() for p in policy.lm.parameters()]
    stats = trainer.step(ro)
    # the policy starts as the reference: KL exactly 0 (same tempered distribution)
    assert stats["charts/kl_ref"] == 0.0 and stats["charts/kl_ref_k1"] == 0.0
    assert stats["charts/value_mean"] == 0.0  # zero-initialised value head
    assert all(np.isfinite(v) or k == "losses/explained_variance" for k, v in stats.items())
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.lm.parameters()))
    stats2 = trainer.step(generate_rollout(policy.lm, env, temperature=0.8, generator=g, seed=1))
    assert stats2["charts/kl_ref"] != 0.0


@pytest.mark.parametrize("env_id,task", [("rlseek/Arithmetic-v0", "arithmetic"), ("rlseek/Reviews-v0", "reviews")])
def test_evaluation_agrees_with_the_envs_baseline_evaluator(lm, env_id: str, task: str) -> None:  # type: ignore[no-untyped-def]
    from rlseek.agents.lm_ppo.evaluation import evaluate_prompts
    from rlseek.envs.text.baseline import evaluate_lm

    theirs = evaluate_lm(lm, env_id, n=40, seed=0, greedy=True, batch_size=20)
    held = heldout_prompts(env_id, n=40, seed=0)
    ours = evaluate_prompts(lm, lambda k: make_text_vector_env(env_id, k), held["prompts"],
                            held["answers"], task=task, batch_size=20)
    for key in ("exact_match", "positive_fraction", "distinct_2", "eos_rate", "mean_length"):
        assert ours.get(key) == pytest.approx(theirs.get(key)), key
    assert ours["mean_return"] == pytest.approx(theirs["reward_total"])
