"""PPOTrainer on hand-built rollouts: score shaping, KL penalty placement, whitening, early stop."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from rlseek.agents.lm_ppo import core
from rlseek.agents.lm_ppo.config import LmPpoConfig
from rlseek.agents.lm_ppo.model import build_policy, forward_response, sequence_inputs
from rlseek.agents.lm_ppo.trainer import PPOTrainer
from rlseek.envs.text.rollout import Rollout

PAD, EOS = 0, 2


def tiny_lm() -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=2, num_attention_heads=4,
                                        num_key_value_heads=2, pad_token_id=PAD)).eval()


def rollout(scores: list[float], eos: list[bool]) -> Rollout:
    """Four completions of 3, 1, 4 and 2 tokens after left-padded prompts."""
    prompt_ids = torch.tensor([[0, 5, 6], [7, 8, 9], [0, 0, 4], [0, 10, 11]])
    prompt_mask = (prompt_ids != PAD).long()
    lengths = [3, 1, 4, 2]
    resp = torch.full((4, 4), PAD)
    mask = torch.zeros(4, 4)
    g = torch.Generator().manual_seed(0)
    for i, n in enumerate(lengths):
        resp[i, :n] = torch.randint(3, 32, (n,), generator=g)
        if eos[i]:
            resp[i, n - 1] = EOS
        mask[i, :n] = 1
    return Rollout(prompt_ids=prompt_ids, prompt_mask=prompt_mask, response_ids=resp,
                   response_mask=mask, scores=np.array(scores), eos=np.array(eos), terms={},
                   completions=[""] * 4, completion_ids=[resp[i, :n].tolist() for i, n in enumerate(lengths)],
                   prompts=[""] * 4, answers=[None] * 4)


def make_trainer(device: str = "cpu", total_iterations: int | None = None,
                 **overrides: object) -> PPOTrainer:
    cfg = LmPpoConfig(**{"num_minibatches": 2, "ppo_epochs": 2, "learning_rate": 1e-3, **overrides})
    policy, reference = build_policy(tiny_lm(), cfg)
    return PPOTrainer(policy, reference, cfg, torch.device(device), total_iterations=total_iterations)


def test_shape_scores_normalizes_penalizes_missing_eos_and_clips() -> None:
    tr = make_trainer(reward_clip=1.0, missing_eos_penalty=1.0)
    out = tr.shape_scores(np.array([1.0, 2.0, 3.0]), np.array([True, False, True]))
    # running mean 2, population std sqrt(2/3): normalized [-1.2247, 0, 1.2247];
    # the middle one lacks EOS: -1; clip to ±1
    assert out.tolist() == pytest.approx([-1.0, -1.0, 1.0])
    raw = make_trainer(reward_norm=False, reward_clip=10.0, missing_eos_penalty=0.5)
    assert raw.shape_scores(np.array([3.0, 4.0]), np.array([False, True])).tolist() == [2.5, 4.0]


def test_prepare_puts_score_on_last_token_and_whitens_over_the_mask() -> None:
    tr = make_trainer(reward_norm=False, whiten_advantages=False, gamma=1.0, lam=1.0)
    ro = rollout([1.0, -2.0, 0.5, 3.0], [True, True, False, True])
    batch, stats = tr.prepare(ro)
    mask = ro.response_mask
    # reference = policy at the start, values = 0: with γ = λ = 1 the advantage of every
    # token is the row's shaped score (no KL), the missing-EOS row losing its penalty
    want = torch.tensor([1.0, -2.0, 0.5 - 1.0, 3.0])[:, None] * mask
    torch.testing.assert_close(batch["advantages"], want)
    torch.testing.assert_close(batch["returns"], want)
    assert stats["charts/kl_ref"] == 0.0
    # with whitening: zero mean / unit std over the masked tokens, zero on padding
    tr2 = make_trainer(reward_norm=False)
    b2, _ = tr2.prepare(ro)
    adv = b2["advantages"]
    assert core.masked_mean(adv, mask).item() == pytest.approx(0.0, abs=1e-6)
    assert core.masked_var(adv, mask).item() == pytest.approx(1.0, rel=1e-4)
    assert (adv[mask == 0] == 0).all()


def test_kl_penalty_enters_rewards_per_token_with_fixed_beta() -> None:
    tr = make_trainer(reward_norm=False, whiten_advantages=False, kl_control="fixed", kl_coef=0.5,
                      gamma=0.0, lam=0.0)
    with torch.no_grad():  # move the policy away from the reference
        for p in tr.policy.lm.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ro = rollout([0.0, 0.0, 0.0, 0.0], [True, True, True, True])
    batch, stats = tr.prepare(ro)
    # γ = 0: advantage = r_t − V_t = −β·k1_t (values are 0 at init; score 0)
    inputs = sequence_inputs(ro.prompt_ids, ro.prompt_mask, ro.response_ids, ro.response_mask)
    with torch.no_grad():
        ref_logits, _ = forward_response(tr.reference, inputs, 4, tr.cfg.temperature)
    ref_logp = core.logprobs_of(ref_logits, ro.response_ids)
    k1 = (batch["old_logp"] - ref_logp) * ro.response_mask
    torch.testing.assert_close(batch["advantages"], -0.5 * k1, atol=1e-5, rtol=1e-4)
    assert stats["charts/kl_ref_k1"] == pytest.approx(float(k1.sum(1).mean()), rel=1e-4)
    assert tr.kl_ctl.update(100.0, 64) == 0.5  # fixed mode never moves


def test_early_stop_kl_stops_the_epochs() -> None:
    ro = rollout([1.0, -1.0, 0.5, 2.0], [True, True, True, True])
    free = make_trainer(learning_rate=1e-2)
    assert free.update(free.prepare(ro)[0])["losses/early_stopped"] == 0.0
    tight = make_trainer(learning_rate=1e-2, early_stop_kl=1e-9)
    stats = tight.update(tight.prepare(ro)[0])
    assert stats["losses/early_stopped"] == 1.0


def test_step_updates_controllers_and_state_round_trips() -> None:
    # k3 (never negative): these hand-built completions are not samples of the policy, so
    # k1's sum could come out negative
    tr = make_trainer(kl_target=1e-6, kl_horizon=10, kl_penalty="loss", kl_estimator="k3",
                      ent_control="adaptive",
                      ent_target=100.0)
    ro = rollout([1.0, -1.0, 0.5, 2.0], [True, True, True, True])
    tr.step(ro)  # KL exactly 0 (policy = reference): below target, β shrinks by 20 % × 4/10
    assert tr.kl_ctl.value == pytest.approx(0.2 * (1 - 0.2 * 4 / 10))
    tr.step(ro)  # the policy moved: KL far above the tiny target, β grows by 20 % × 4/10
    assert tr.kl_ctl.value == pytest.approx(0.2 * (1 - 0.08) * (1 + 0.08))
    assert tr.ent_ctl.value > 0.01  # entropy far below the target: α grows
    state = copy.deepcopy(tr.state_dict())
    other = make_trainer()
    other.load_state_dict(state)
    assert other.state_dict() == state


@pytest.mark.parametrize("minibatches,accum", [(1, 2), (1, 4), (2, 2)])
def test_gradient_accumulation_equals_the_unaccumulated_step(minibatches: int, accum: int) -> None:
    # rows of 3, 1, 4 and 2 tokens: micro-batches hold different token counts, so a plain
    # mean of micro-batch losses would weight tokens unequally
    ro = rollout([1.0, -1.0, 0.5, 2.0], [True, False, True, True])
    plain = make_trainer(num_minibatches=minibatches, ppo_epochs=2)
    accumulated = make_trainer(num_minibatches=minibatches, ppo_epochs=2, grad_accum_steps=accum)
    s_plain, s_acc = plain.step(ro), accumulated.step(ro)
    for a, b in zip(plain.policy.parameters(), accumulated.policy.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    for key in ("losses/policy_loss", "losses/value_loss", "losses/entropy", "losses/approx_kl",
                "losses/grad_norm"):
        assert s_acc[key] == pytest.approx(s_plain[key], rel=1e-4, abs=1e-7), key


def test_linear_lr_schedule_decays_over_the_run_and_resumes() -> None:
    ro = rollout([1.0, -1.0, 0.5, 2.0], [True, True, True, True])
    tr = make_trainer(total_iterations=4, lr_schedule="linear", learning_rate=1e-3, ppo_epochs=1)
    rates = []
    for _ in range(2):
        rates.append(tr.step(ro)["charts/learning_rate"])
        assert tr.optimizer.param_groups[0]["lr"] == rates[-1]
    resumed = make_trainer(total_iterations=4, lr_schedule="linear", learning_rate=1e-3, ppo_epochs=1)
    resumed.load_state_dict(copy.deepcopy(tr.state_dict()))
    rates += [resumed.step(ro)["charts/learning_rate"] for _ in range(2)]
    assert rates == pytest.approx([1e-3, 7.5e-4, 5e-4, 2.5e-4])
    const = make_trainer(ppo_epochs=1)
    assert [const.step(ro)["charts/learning_rate"] for _ in range(2)] == [1e-3, 1e-3]
    with pytest.raises(ValueError, match="total_iterations"):
        make_trainer(lr_schedule="linear")


def test_tf32_is_an_agent_setting_applied_on_cuda_only() -> None:
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    saved = matmul.fp32_precision, conv.fp32_precision
    try:
        matmul.fp32_precision = conv.fp32_precision = "ieee"
        make_trainer(device="cpu")
        assert matmul.fp32_precision == "ieee"  # nothing changes off CUDA
        make_trainer(device="cuda")  # the default: TF32 on
        assert matmul.fp32_precision == "tf32" and conv.fp32_precision == "tf32"
        make_trainer(device="cuda", tf32=False)
        assert matmul.fp32_precision == "ieee" and conv.fp32_precision == "ieee"
    finally:
        matmul.fp32_precision, conv.fp32_precision = saved


def test_kl_penalty_as_a_loss_keeps_it_out_of_the_rewards() -> None:
    tr = make_trainer(reward_norm=False, whiten_advantages=False, kl_control="fixed", kl_coef=0.5,
                      gamma=0.0, lam=0.0, kl_penalty="loss", kl_estimator="k3")
    with torch.no_grad():  # move the policy away from the reference
        for p in tr.policy.lm.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ro = rollout([0.0, 0.0, 0.0, 0.0], [True, True, True, True])
    batch, stats = tr.prepare(ro)
    assert (batch["advantages"] == 0).all()  # score 0, no KL in the reward, values 0
    assert stats["charts/kl_ref"] > 0  # the k3 sequence KL is still measured for the controller
    assert tr.update(batch)["losses/kl_penalty"] > 0
