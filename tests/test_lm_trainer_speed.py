"""The trainer's speed settings change no numbers: token-budget micro-batches give the fixed
split's step, the budget packs rows as documented, and the settings are validated."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_lm_ppo_trainer import make_trainer, rollout

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
