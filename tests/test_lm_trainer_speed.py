"""The trainer's speed settings change no numbers: token-budget micro-batches give the fixed
split's step, the budget packs rows as documented, and the settings are validated."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_lm_ppo_trainer import make_trainer, rollout

from rlseek.agents.lm_ppo import core
from rlseek.agents.lm_ppo.batching import host_floats, host_stats, to_device
from rlseek.agents.lm_ppo.config import LmPpoConfig
from rlseek.agents.lm_ppo.trainer import make_optimizer, token_budget_groups
from rlseek.errors import ConfigError


def _step(**overrides: object) -> tuple[list[torch.Tensor], dict[str, float], list[int]]:
    tr = make_trainer(num_minibatches=1, ppo_epochs=2, compile=False, **overrides)
    sizes: list[int] = []
    split = tr.micro_batches

    def spy(idx, batch=None):  # type: ignore[no-untyped-def]
        groups = split(idx, batch)
        sizes.append(len(groups))
        return groups

    tr.micro_batches = spy  # type: ignore[method-assign]
    stats = tr.step(rollout([1.0, -2.0, 0.5, 3.0], [True, True, False, True]))
    return [p.detach().clone() for p in tr.policy.parameters()], stats, sizes


def test_token_budget_micro_batches_give_the_unsplit_step() -> None:
    base, base_stats, base_sizes = _step()
    # rows of 2+3, 3+1, 1+4 and 2+2 prompt+response tokens: no two fit in 8 padded tokens
    split, split_stats, sizes = _step(micro_batch_tokens=8)
    assert base_sizes == [1, 1] and sizes == [4, 4]
    for a, b in zip(base, split):
        torch.testing.assert_close(a, b, atol=2e-6, rtol=1e-5)
    for key in ("losses/policy_loss", "losses/value_loss", "losses/approx_kl", "losses/grad_norm"):
        assert split_stats[key] == pytest.approx(base_stats[key], rel=1e-4, abs=1e-6)
    # and the budget differs from a plain equal-count split only by float rounding
    accum, _, _ = _step(grad_accum_steps=4)
    for a, b in zip(accum, split):
        torch.testing.assert_close(a, b, atol=2e-6, rtol=1e-5)


def test_token_budget_groups_pack_longest_first_within_the_budget() -> None:
    plen = torch.tensor([3, 3, 1, 2, 8])
    rlen = torch.tensor([3, 1, 4, 2, 9])
    groups = token_budget_groups(plen, rlen, torch.arange(5), budget=12)
    assert [g.tolist() for g in groups] == [[4], [0], [2], [1, 3]]
    for g in groups:
        if len(g) > 1:  # a group's padded size stays within the budget
            assert len(g) * (int(plen[g].max()) + int(rlen[g].max())) <= 12
    assert sorted(torch.cat(groups).tolist()) == list(range(5))
    # a budget below one row still makes progress: one row per group
    assert [len(g) for g in token_budget_groups(plen, rlen, torch.arange(5), budget=1)] == [1] * 5


def test_speed_settings_are_validated() -> None:
    for params, msg in [({"micro_batch_tokens": 0}, "micro_batch_tokens' must be a positive integer"),
                        ({"compile": "yes"}, "compile' must be true, false or 'auto'"),
                        ({"decode_cache": "paged"}, "decode_cache' must be 'dynamic', 'static' or 'auto'")]:
        with pytest.raises(ConfigError, match=msg):
            LmPpoConfig.from_params(params)
    cfg = LmPpoConfig.from_params({"micro_batch_tokens": 4096, "compile": False, "decode_cache": "static"})
    assert (cfg.micro_batch_tokens, cfg.compile, cfg.decode_cache) == (4096, False, "static")


def test_optimizer_is_adam_on_cpu_and_the_forward_is_not_compiled_there() -> None:
    p = [torch.nn.Parameter(torch.zeros(3))]
    assert type(make_optimizer(p, 1e-3, torch.device("cpu"))) is torch.optim.Adam
    tr = make_trainer()
    assert tr.compile_forward is False and tr.compile_error is None
    assert np.isfinite(tr.step(rollout([1.0, 0.0, 0.5, 2.0], [True] * 4))["losses/loss"])


def test_host_stats_brings_tensor_figures_over_as_floats() -> None:
    stats = host_stats({"a": torch.tensor(1.5), "b": torch.tensor(2.25, dtype=torch.float64),
                        "c": 3, "d": float("nan"), "e": torch.tensor([4.0])})
    assert stats == pytest.approx({"a": 1.5, "b": 2.25, "c": 3.0, "d": float("nan"), "e": 4.0}, nan_ok=True)
    assert all(type(v) is float for v in stats.values())
    assert host_stats({}) == {}
    mixed = host_floats([torch.tensor(0.5), 2, torch.tensor(-1.0, dtype=torch.float64), 3.25])
    assert mixed == [0.5, 2.0, -1.0, 3.25] and all(type(v) is float for v in mixed)


def test_to_device_keeps_a_host_tensor_bound_for_the_host() -> None:
    t = torch.arange(5)
    assert to_device(t, torch.device("cpu")) is t  # nothing copied


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_to_device_moves_a_host_tensor_to_cuda_as_it_was_when_called() -> None:
    """The values arrive intact, whatever happens to the source after the call (that the copy
    does not block is a timing matter: GPU_NOTES.md measures it, a test cannot)."""
    t = torch.arange(1000)
    out = to_device(t, torch.device("cuda"))
    t.add_(1)  # the source was copied to pinned memory first: changing it now changes nothing
    assert out.device.type == "cuda" and torch.equal(out.cpu(), torch.arange(1000))


def test_masked_var_of_one_element_is_zero_not_a_division_by_zero() -> None:
    x = torch.tensor([[3.0, 7.0]])
    assert core.masked_var(x, torch.tensor([[1.0, 0.0]])).item() == 0.0
    assert core.masked_var(x, torch.tensor([[0.0, 0.0]])).item() == 0.0  # nothing masked in
    assert core.masked_var(x, torch.tensor([[1.0, 1.0]])).item() == pytest.approx(8.0)  # Bessel: n − 1
    assert core.masked_var(x, torch.tensor([[1.0, 1.0]]), unbiased=False).item() == pytest.approx(4.0)


def test_raw_advantage_std_is_measured_before_whitening() -> None:
    ro = rollout([1.0, -2.0, 0.5, 3.0], [True, True, False, True])
    raw = make_trainer(reward_norm=False, whiten_advantages=False)
    batch, raw_stats = raw.prepare(ro)
    _, stats = make_trainer(reward_norm=False, whiten_advantages=True).prepare(ro)
    want = core.masked_var(batch["advantages"], batch["mask"]).sqrt().item()
    assert want > 1.5  # far from the whitened advantages' 1.0
    assert stats["charts/advantage_raw_std"] == pytest.approx(want, rel=1e-6)
    assert raw_stats["charts/advantage_raw_std"] == pytest.approx(want, rel=1e-6)


def test_the_update_reads_row_lengths_from_the_rollouts_host_masks() -> None:
    tr = make_trainer()
    ro = rollout([1.0, -2.0, 0.5, 3.0], [True, True, False, True])
    batch = tr.batch_tensors(ro)
    prompt_mask, mask = tr.host_masks(batch)
    assert prompt_mask is ro.prompt_mask and mask is ro.response_mask  # no device-to-host copy
    other = {**batch, "mask": batch["mask"].clone()}  # another batch: its own masks, copied
    assert torch.equal(tr.host_masks(other)[1], ro.response_mask)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_compiled_cuda_steps_keep_the_banned_id_at_probability_zero() -> None:
    """The GPU training path: the compiled forward on CUDA, with the banned ids (the pad id) as
    the trainer's device tensor, masks them out and the iterations stay finite."""
    from test_lm_ppo_trainer import PAD, tiny_lm

    from rlseek.agents.lm_ppo.model import build_policy
    from rlseek.agents.lm_ppo.trainer import PPOTrainer

    dev = torch.device("cuda")
    cfg = LmPpoConfig(num_minibatches=2, ppo_epochs=2, learning_rate=1e-3, compile=True)
    policy, reference = build_policy(tiny_lm(), cfg)
    policy.to(dev)
    reference.to(dev)
    tr = PPOTrainer(policy, reference, cfg, dev, vocab_size=32, banned_ids=(PAD,))
    ro = rollout([1.0, -2.0, 0.5, 3.0], [True, True, False, True])
    stats = [tr.step(ro) for _ in range(2)]
    assert tr.compile_forward and tr.compile_error is None
    with torch.no_grad():
        logits, _ = tr.forward(policy.lm, tr.batch_tensors(ro))
    assert logits.is_cuda and (torch.softmax(logits.float(), -1)[..., PAD] == 0).all()
    assert all(np.isfinite(v) for s in stats for k, v in s.items() if k != "losses/explained_variance")
