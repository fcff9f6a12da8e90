"""KV-cached rollouts through the real text vector env with the bundled tiny LM."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlseek.agents.lm_ppo import core
from rlseek.agents.lm_ppo.config import LmPpoConfig
from rlseek.agents.lm_ppo.model import build_policy, forward_response, sequence_inputs
from rlseek.agents.lm_ppo.trainer import PPOTrainer
from rlseek.envs.text import heldout_prompts, make_text_vector_env
from rlseek.envs.text.rollout import DecodeSettings, RolloutEngine
from rlseek.models.loader import load_causal_lm


def generate_rollout(lm, env, *, temperature, generator=None, seed=None, options=None,  # type: ignore[no-untyped-def]
                     record_logprobs=False):
    engine = RolloutEngine.for_env(lm, env)
    settings = DecodeSettings(temperature=temperature, record_logprobs=record_logprobs)
    return engine.rollout(env, settings, generator=generator, seed=seed, options=options)


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
    # the policy starts as the reference: KL 0 up to float32 rounding (the policy's pass runs
    # through the value-head path, the reference's does not; oneDNN may order sums differently)
    assert abs(stats["charts/kl_ref"]) < 1e-5 and abs(stats["charts/kl_ref_k1"]) < 1e-5
    assert stats["charts/value_mean"] == 0.0  # zero-initialised value head
    assert all(np.isfinite(v) or k == "losses/explained_variance" for k, v in stats.items())
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.lm.parameters()))
    stats2 = trainer.step(generate_rollout(policy.lm, env, temperature=0.8, generator=g, seed=1))
    assert stats2["charts/kl_ref"] > 1e-4  # far above the rounding floor once the policy moved


def test_padded_vocabulary_never_samples_extra_rows_or_pad() -> None:
    """Real models pad their embedding matrix past the tokenizer (Qwen2.5: 151,936 rows for
    151,665 tokens). A random-init model with 64 extra rows, whose head favours those rows
    and the pad id, must sample only real, non-pad tokens; PPO's teacher-forced distribution
    is the same one (the tokenizer's vocabulary, pad at probability 0)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    env = make_text_vector_env("rlseek/Arithmetic-v0", 8)
    V, pad = int(env.single_action_space.n), env.pad_token_id
    torch.manual_seed(0)
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=V + 64, hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=1, num_attention_heads=4,
                                      num_key_value_heads=2, pad_token_id=pad)).eval()
    boost = torch.zeros(V + 64)
    boost[V:] = boost[pad] = 30.0
    lm.lm_head.register_forward_hook(lambda _m, _i, out: out + boost)
    cfg = LmPpoConfig()
    policy, reference = build_policy(lm, cfg)
    engine = RolloutEngine.for_env(policy.lm, env)
    assert engine.vocab_size == V and engine.banned_ids(DecodeSettings()) == (pad,)
    ro = engine.rollout(env, DecodeSettings(temperature=1.0), generator=torch.Generator().manual_seed(0),
                        seed=0)
    sampled = ro.response_ids[ro.response_mask > 0]
    assert (sampled < V).all() and (sampled != pad).all()
    inputs = sequence_inputs(ro.prompt_ids, ro.prompt_mask, ro.response_ids, ro.response_mask)
    with torch.no_grad():
        logits, _ = forward_response(policy.lm, inputs, ro.response_ids.shape[1], 1.0,
                                     vocab_size=V, banned_ids=(pad,))
    assert logits.shape[-1] == V and (torch.softmax(logits, -1)[..., pad] == 0).all()
    trainer = PPOTrainer(policy, reference, cfg, torch.device("cpu"), vocab_size=V, banned_ids=(pad,))
    with torch.no_grad():  # the trainer's own forward cuts and masks the same way
        own, _ = trainer.forward(policy.lm, trainer.batch_tensors(ro))
    assert own.shape[-1] == V and (torch.softmax(own, -1)[..., pad] == 0).all()
    stats = trainer.step(ro)
    assert all(np.isfinite(v) or k == "losses/explained_variance" for k, v in stats.items())
    assert stats["charts/kl_ref"] == 0.0  # the reference's distribution is cut the same way


def test_bf16_cached_and_teacher_forced_logprobs_agree(lm) -> None:  # type: ignore[no-untyped-def]
    """Under bf16 autocast the rollout's log-probs and PPO's teacher-forced ones must agree to
    well inside the clip range (ε = 0.2, |log 1.2| = 0.18 nats): the bound 0.02 nats is a
    ninth of it. With the LM head and log-softmax in bf16 the difference reached 0.056 nats on
    these batches; with them in float32 (the trunk alone in bf16) it is about 0.005."""
    env = make_text_vector_env("rlseek/Reviews-v0", 16, max_new_tokens=24)
    engine = RolloutEngine.for_env(lm, env)
    settings = DecodeSettings(temperature=1.0, record_logprobs=True)
    worst = 0.0
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            ro = engine.rollout(env, settings, generator=g, seed=seed)
            inputs = sequence_inputs(ro.prompt_ids, ro.prompt_mask, ro.response_ids, ro.response_mask)
            with torch.no_grad():
                logits, values = forward_response(lm, inputs, ro.response_ids.shape[1], 1.0,
                                                  torch.nn.Linear(lm.config.hidden_size, 1),
                                                  vocab_size=engine.vocab_size, banned_ids=(env.pad_token_id,))
        assert logits.dtype == values.dtype == torch.float32
        recomputed = core.logprobs_of(logits, ro.response_ids, ro.response_mask)
        worst = max(worst, float((recomputed - ro.logprobs).abs().max()))
    assert worst < 0.02
