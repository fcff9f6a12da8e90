"""lm-ppo's math against values worked out by hand or by naive reference implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rlseek.agents.lm_ppo import core
from rlseek.agents.lm_ppo.controllers import AdaptiveKLController, EntropyController, KLController


# -- GAE -------------------------------------------------------------------------------------
def test_gae_hand_computed_with_padding() -> None:
    # Row 0: three tokens, score 1 at the end. Row 1: two tokens then padding (with garbage
    # rewards/values that must be ignored).
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 2.0, 5.0]])
    values = torch.tensor([[0.5, 0.6, 0.7], [0.1, 0.2, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    adv, ret = core.gae(rewards, values, mask, gamma=0.9, lam=0.8)
    # By hand, gl = γλ = 0.72:
    # row 0: δ2 = 1 - 0.7 = 0.3;  δ1 = 0.9*0.7 - 0.6 = 0.03;  δ0 = 0.9*0.6 - 0.5 = 0.04
    #        A2 = 0.3, A1 = 0.03 + 0.72*0.3 = 0.246, A0 = 0.04 + 0.72*0.246 = 0.21712
    # row 1: δ1 = 2 - 0.2 = 1.8 (episode ends: next value 0), δ0 = 0.9*0.2 - 0.1 = 0.08
    #        A1 = 1.8, A0 = 0.08 + 0.72*1.8 = 1.376, A2 = 0 (padding)
    expected = torch.tensor([[0.21712, 0.246, 0.3], [1.376, 1.8, 0.0]])
    torch.testing.assert_close(adv, expected)
    torch.testing.assert_close(ret, (expected + values) * mask)


def _naive_gae(r: list[float], v: list[float], gamma: float, lam: float) -> list[float]:
    """A_t = Σ_l (γλ)^l δ_{t+l}, δ_t = r_t + γ V_{t+1} − V_t, V after the end = 0."""
    n = len(r)
    vv = list(v) + [0.0]
    deltas = [r[t] + gamma * vv[t + 1] - vv[t] for t in range(n)]
    return [sum((gamma * lam) ** k * deltas[t + k] for k in range(n - t)) for t in range(n)]


@pytest.mark.parametrize("gamma,lam", [(0.99, 0.95), (1.0, 1.0), (0.5, 0.0)])
def test_gae_matches_naive_sum_on_random_ragged_batch(gamma: float, lam: float) -> None:
    g = torch.Generator().manual_seed(0)
    lengths = [5, 1, 3, 7]
    T = max(lengths)
    rewards, values = torch.randn(4, T, generator=g), torch.randn(4, T, generator=g)
    mask = torch.zeros(4, T)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    adv, _ = core.gae(rewards, values, mask, gamma, lam)
    for i, n in enumerate(lengths):
        want = _naive_gae(rewards[i, :n].tolist(), values[i, :n].tolist(), gamma, lam)
        assert adv[i, :n].tolist() == pytest.approx(want, rel=1e-5, abs=1e-5)
        assert (adv[i, n:] == 0).all()
    if lam == 1.0 and gamma == 1.0:  # GAE(1) = Monte Carlo return − V
        mc = torch.flip(torch.cumsum(torch.flip(rewards * mask, [1]), 1), [1])
        torch.testing.assert_close(adv, (mc - values) * mask)


# -- KL estimators ---------------------------------------------------------------------------
def test_kl_estimators_hand_values() -> None:
    logp, ref = torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)])
    # log π − log π_ref = log 2; r = π_ref/π = 0.5
    assert core.kl_estimate(logp, ref, "k1").item() == pytest.approx(math.log(2))
    assert core.kl_estimate(logp, ref, "k2").item() == pytest.approx(0.5 * math.log(2) ** 2)
    assert core.kl_estimate(logp, ref, "k3").item() == pytest.approx(-0.5 + math.log(2))
    # identical distributions: every estimator is exactly 0
    for est in ("k1", "k2", "k3"):
        assert core.kl_estimate(logp, logp, est).item() == 0.0
    with pytest.raises(ValueError, match="k1"):
        core.kl_estimate(logp, ref, "k9")


def test_kl_estimators_unbiased_against_exact_kl() -> None:
    p = torch.tensor([0.6, 0.3, 0.1])
    q = torch.tensor([0.2, 0.5, 0.3])
    exact = float((p * (p / q).log()).sum())  # KL(p‖q) by definition
    x = torch.multinomial(p, 200_000, replacement=True, generator=torch.Generator().manual_seed(1))
    logp, logq = p.log()[x], q.log()[x]
    k1 = core.kl_estimate(logp, logq, "k1")
    k3 = core.kl_estimate(logp, logq, "k3")
    assert k1.mean().item() == pytest.approx(exact, abs=0.01)
    assert k3.mean().item() == pytest.approx(exact, abs=0.01)
    assert (k3 >= 0).all() and (k1 < 0).any()  # k3 is never negative; k1 can be per token
    assert k3.var() < k1.var()


# -- controllers -----------------------------------------------------------------------------
def test_adaptive_kl_controller_update_rule() -> None:
    c = AdaptiveKLController(0.2, target=1.0, horizon=100)
    assert c.update(1.1, 10) == pytest.approx(0.2 * (1 + 0.1 * 10 / 100))  # e = 0.1
    c = AdaptiveKLController(0.2, target=1.0, horizon=100)
    assert c.update(5.0, 10) == pytest.approx(0.2 * (1 + 0.2 * 0.1))  # e clipped to +0.2
    c = AdaptiveKLController(0.2, target=1.0, horizon=100)
    assert c.update(0.5, 10) == pytest.approx(0.2 * (1 - 0.2 * 0.1))  # e clipped to -0.2
    c = AdaptiveKLController(0.2, target=2.0, horizon=100)
    assert c.update(2.0, 50) == pytest.approx(0.2)  # on target: unchanged
    assert c.update(float("nan"), 50) == pytest.approx(0.2)  # no data: unchanged
    fixed = KLController(0.3)
    assert fixed.update(100.0, 1000) == 0.3
    state = c.state_dict()
    c2 = AdaptiveKLController(1.0, target=2.0, horizon=100)
    c2.load_state_dict(state)
    assert c2.value == c.value


def test_entropy_controller_steers_toward_target() -> None:
    e = EntropyController(0.01, adaptive=True, target=2.0, rate=0.5)
    # entropy 1.0 below target 2.0: error 0.5 → α · exp(0.25)
    assert e.update(1.0) == pytest.approx(0.01 * math.exp(0.25))
    e = EntropyController(0.01, adaptive=True, target=2.0, rate=0.5)
    assert e.update(10.0) == pytest.approx(0.01 * math.exp(-0.5))  # error clipped to −1
    e = EntropyController(0.5, adaptive=True, target=2.0, rate=1.0, alpha_max=0.6)
    assert e.update(0.0) == 0.6  # capped
    assert EntropyController(0.01, adaptive=False).update(0.0) == 0.01


# -- masked statistics ------------------------------------------------------------------------
def test_masked_whiten_matches_numpy_on_masked_elements() -> None:
    x = torch.tensor([[1.0, 2.0, 100.0], [3.0, 4.0, -50.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    vals = np.array([1.0, 2.0, 3.0, 4.0])
    want = (vals - vals.mean()) / vals.std(ddof=1)
    out = core.masked_whiten(x, mask)
    assert out[mask.bool()].tolist() == pytest.approx(want.tolist(), rel=1e-5)
    assert out[~mask.bool()].tolist() == [0.0, 0.0]
    scaled = core.masked_whiten(x, mask, shift_mean=False)
    assert scaled[mask.bool()].tolist() == pytest.approx((want + vals.mean()).tolist(), rel=1e-5)
    assert core.masked_mean(x, mask).item() == pytest.approx(2.5)
    assert core.masked_var(x, mask).item() == pytest.approx(vals.var(ddof=1))


def test_eos_position_gets_score_and_padding_gets_nothing() -> None:
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    kl = torch.full((3, 4), 0.5)
    r = core.kl_penalized_rewards(torch.tensor([1.0, 2.0, 3.0]), kl, mask, kl_coef=0.1)
    expected = torch.tensor([
        [-0.05, -0.05, 0.95, 0.0],
        [1.95, 0.0, 0.0, 0.0],
        [-0.05, -0.05, -0.05, 2.95],
    ])
    torch.testing.assert_close(r, expected)
    assert core.last_token_index(mask).tolist() == [2, 0, 3]


# -- temperature -----------------------------------------------------------------------------
def test_temperature_divides_logits_before_log_softmax() -> None:
    logits = torch.tensor([[[2.0, 1.0, 0.0]]])
    tempered = core.tempered_logits(logits, 2.0)
    z = math.exp(1.0) + math.exp(0.5) + 1.0
    want = [1.0 - math.log(z), 0.5 - math.log(z), -math.log(z)]
    for tok in range(3):
        got = core.logprobs_of(tempered, torch.tensor([[tok]])).item()
        assert got == pytest.approx(want[tok], rel=1e-6)
    p = np.exp(want)
    assert core.entropy_of(tempered).item() == pytest.approx(float(-(p * np.log(p)).sum()), rel=1e-6)


def test_sampling_follows_tempered_distribution_and_zero_is_greedy() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0]]).repeat(20_000, 1)
    g = torch.Generator().manual_seed(0)
    for temp in (0.5, 2.0):
        draws = core.sample_tokens(core.tempered_logits(logits, temp), temp, generator=g)
        freq = torch.bincount(draws, minlength=3).float() / len(draws)
        want = torch.softmax(torch.tensor([2.0, 1.0, 0.0]) / temp, 0)
        torch.testing.assert_close(freq, want, atol=0.015, rtol=0)
    assert (core.sample_tokens(logits[:3], 0.0) == 0).all()
    top1 = core.sample_tokens(torch.tensor([[0.0, 5.0, 4.9]]).repeat(200, 1), 1.0, top_k=1, generator=g)
    assert (top1 == 1).all()


# -- losses ----------------------------------------------------------------------------------
def test_clipped_policy_loss_and_clipfrac_by_hand() -> None:
    old = torch.zeros(1, 4)
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.1, 0.5]]))
    adv = torch.tensor([[1.0, -1.0, 1.0, 1.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    loss, stats = core.policy_loss(logp, old, adv, mask, clip_range=0.2)
    # token 0: A=1, r=1.5 → max(-1.5, -1.2) = -1.2 (clipped)
    # token 1: A=-1, r=0.5 → max(0.5, 0.8) = 0.8 (clipped)
    # token 2: A=1, r=1.1 → max(-1.1, -1.1) = -1.1 (inside the clip range)
    assert loss.item() == pytest.approx((-1.2 + 0.8 - 1.1) / 3)
    assert stats["clipfrac"].item() == pytest.approx(2 / 3)
    k3 = [(r - 1) - math.log(r) for r in (1.5, 0.5, 1.1)]
    assert stats["approx_kl"].item() == pytest.approx(sum(k3) / 3, rel=1e-5)


def test_clipped_value_loss_by_hand() -> None:
    old = torch.tensor([[0.0, 0.0]])
    new = torch.tensor([[1.0, 0.1]])
    ret = torch.tensor([[2.0, 1.0]])
    loss, frac = core.value_loss(new, old, ret, torch.ones(1, 2), clip_range_value=0.2)
    # token 0: unclipped (1-2)² = 1, clipped V=0.2 → (0.2-2)² = 3.24 → 3.24
    # token 1: unclipped (0.1-1)² = 0.81, clipped = same → 0.81
    assert loss.item() == pytest.approx(0.5 * (3.24 + 0.81) / 2)
    assert frac.item() == pytest.approx(0.5)


def test_explained_variance() -> None:
    target = torch.tensor([[1.0, 2.0, 3.0, 99.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    assert core.explained_variance(target, target, mask) == pytest.approx(1.0)
    assert core.explained_variance(torch.full_like(target, 2.0), target, mask) == pytest.approx(0.0)
    assert math.isnan(core.explained_variance(target, torch.ones_like(target), mask))


def test_kl_penalty_gradients_against_the_exact_kl_gradient() -> None:
    """How each KL option moves a 50-way softmax policy near its reference, against the exact
    ∇KL(π ‖ π_ref): in the reward (detached, policy gradient E[k·∇log π]) only k1 is right
    (k3 there points elsewhere and is tiny); as a differentiated loss (E[∇k]) k2 is exact and
    k3 (GRPO's) agrees to first order, while k1 gives nothing. The config refuses the wrong
    pairs."""
    from rlseek.agents.lm_ppo.config import LmPpoConfig
    from rlseek.errors import ConfigError

    gen = torch.Generator().manual_seed(0)
    ref_logp = torch.log_softmax(torch.randn(50, generator=gen), -1)
    theta = (ref_logp + 0.05 * torch.randn(50, generator=gen)).requires_grad_()

    def grad(f) -> torch.Tensor:  # type: ignore[no-untyped-def]
        theta.grad = None
        f(torch.log_softmax(theta, -1)).backward()
        return theta.grad.clone()

    exact = grad(lambda logp: (logp.exp() * (logp - ref_logp)).sum())

    def in_reward(est: str) -> torch.Tensor:
        return grad(lambda logp: (logp.exp().detach() * core.kl_estimate(logp.detach(), ref_logp, est)
                                  * logp).sum())

    def in_loss(est: str) -> torch.Tensor:  # the expectation over x ~ π as π-weighted mean
        return grad(lambda logp: core.kl_penalty_loss(logp, ref_logp, logp.exp().detach(), est))

    def cos(g: torch.Tensor) -> float:
        return float(torch.nn.functional.cosine_similarity(g, exact, dim=0))

    assert cos(in_reward("k1")) > 0.999
    assert cos(in_reward("k3")) < 0.0 and in_reward("k3").norm() < 0.05 * exact.norm()
    assert cos(in_loss("k2")) > 0.999
    assert cos(in_loss("k3")) > 0.99
    assert in_loss("k1").norm() < 1e-5 * exact.norm()
    LmPpoConfig(kl_estimator="k1").validate()
    LmPpoConfig(kl_penalty="loss", kl_estimator="k2").validate()
    LmPpoConfig(kl_penalty="loss", kl_estimator="k3").validate()
    for bad in ({"kl_estimator": "k3"}, {"kl_estimator": "k2"},
                {"kl_penalty": "loss", "kl_estimator": "k1"}):
        with pytest.raises(ConfigError, match="kl_estimator"):
            LmPpoConfig.from_params(bad)
