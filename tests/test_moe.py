"""Mixture-of-experts blocks: routing, dispatch, the balance loss, and the SB3 policy option."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import rlseek  # noqa: F401  (registers the envs)
from rlseek.cli import main
from rlseek.errors import RlseekError
from rlseek.models.moe import MoEBlock, MoESpec, balance_loss, expert_load, moe_aux_loss


def block(dispatch: str = "sparse", experts: int = 4, top_k: int = 2, **kw: object) -> MoEBlock:
    torch.manual_seed(0)
    return MoEBlock(6, 8, 5, MoESpec(experts=experts, top_k=top_k, dispatch=dispatch), **kw)


def test_top_k_chosen_are_the_highest_router_scores() -> None:
    moe = block()
    x = torch.randn(32, 6)
    probs, weights, chosen = moe.route(x)
    best = torch.argsort(probs, dim=-1, descending=True)[:, :2]
    assert torch.equal(torch.sort(chosen, dim=-1).values, torch.sort(best, dim=-1).values)
    assert torch.allclose(weights.sum(-1), torch.ones(32))


def test_sparse_dispatch_equals_dense_masking_and_a_hand_loop() -> None:
    sparse, dense = block("sparse"), block("dense")
    dense.load_state_dict(sparse.state_dict())
    x = torch.randn(3, 7, 6)
    out = sparse(x)
    assert out.shape == (3, 7, 5)
    assert torch.allclose(out, dense(x), atol=1e-6)
    flat = x.reshape(-1, 6)
    _, weights, chosen = sparse.route(flat)
    by_hand = torch.stack([
        sum(w * sparse.experts[int(e)](flat[t]) for w, e in zip(weights[t], chosen[t], strict=True))
        for t in range(flat.shape[0])
    ])
    assert torch.allclose(out.reshape(-1, 5), by_hand, atol=1e-6)


def test_router_gets_gradients_from_the_output_and_from_the_balance_loss() -> None:
    moe = block()
    moe(torch.randn(16, 6)).sum().backward()
    assert moe.router.weight.grad is not None and moe.router.weight.grad.abs().sum() > 0
    moe.zero_grad()
    moe(torch.randn(16, 6))
    aux = moe_aux_loss(moe)
    assert aux is not None
    aux.backward()
    assert moe.router.weight.grad.abs().sum() > 0
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in moe.experts.parameters())


def test_attached_balance_loss_adds_exactly_its_gradient_once() -> None:
    plain, attached = block(), block(attach_aux=True)
    x = torch.randn(16, 6)
    out = plain(x)
    (out.sum() + 0.01 * plain.aux_loss).backward()
    attached(x).sum().backward()
    assert torch.allclose(plain.router.weight.grad, attached.router.weight.grad, atol=1e-6)


def test_balance_loss_on_a_hand_computed_example() -> None:
    # 2 experts, top-1: tokens go to experts 0, 0, 1 -> f = (2/3, 1/3);
    # P = mean probs = (0.6, 0.4) -> loss = 2 * (2/3 * 0.6 + 1/3 * 0.4) = 2 * 0.5333 = 1.0667
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    chosen = torch.tensor([[0], [0], [1]])
    assert balance_loss(probs, chosen, 2).item() == pytest.approx(2 * (2 / 3 * 0.6 + 1 / 3 * 0.4))
    uniform = torch.full((4, 2), 0.5)
    assert balance_loss(uniform, torch.tensor([[0], [1], [0], [1]]), 2).item() == pytest.approx(1.0)
    assert balance_loss(torch.tensor([[1.0, 0.0]] * 3), torch.zeros(3, 1, dtype=torch.long),
                        2).item() == pytest.approx(2.0)


def test_expert_load_sums_to_one_and_resets() -> None:
    moe = block()
    moe(torch.randn(40, 6))
    moe(torch.randn(10, 6))
    load = expert_load(moe)
    assert sum(v for k, v in load.items() if k.startswith("moe/load_0_")) == pytest.approx(1.0)
    assert 0.25 <= load["moe/max_load"] <= 1.0 and load["moe/balance_loss"] >= 1.0 - 1e-6
    assert expert_load(moe) == {}


@pytest.mark.parametrize("raw, fragment", [
    ({"experts": 1}, "experts must be >= 2"),
    ({"experts": 4, "top_k": 5}, "top_k must be in [1, experts=4]"),
    ({"balance_coef": -1}, "balance_coef must be >= 0"),
    ({"dispatch": "masked"}, "dispatch must be one of sparse, dense"),
    ({"expert": 4}, "unknown key(s) ['expert']"),
    ({"experts": "four"}, "must be integers"),
    ([4, 2], "must be a mapping"),
])
def test_bad_moe_specs_are_rejected(raw: object, fragment: str) -> None:
    with pytest.raises(RlseekError, match="moe") as err:
        MoESpec.from_dict(raw, "policy_kwargs.moe")
    assert fragment in str(err.value)


def _config(tmp_path: Path, algo: str, moe: object) -> Path:
    data = {
        "env": {"id": "rlseek/Reacher-v0"},
        "agent": {"algo": algo, "params": {"n_steps": 64, "policy_kwargs": {"moe": moe}}
                  if algo in ("ppo", "a2c") else {"policy_kwargs": {"moe": moe}}},
        "run": {"total_steps": 128, "seed": 1, "eval_every": 128, "eval_episodes": 1,
                "checkpoint_every": 128, "tracking": False},
    }
    if algo == "ppo":
        data["agent"]["params"]["batch_size"] = 32
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_sb3_ppo_trains_a_moe_policy_and_logs_expert_load(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from rlseek.agents.sb3_moe import MoEActorCriticPolicy

    cfg = _config(tmp_path, "ppo", {"experts": 4, "top_k": 2, "balance_coef": 0.01})
    out = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(out)]) == 0
    from stable_baselines3 import PPO
    model = PPO.load(out / "final" / "model.zip")
    assert isinstance(model.policy, MoEActorCriticPolicy)
    # 2 experts of 32 hidden units active per token, as the dense [64, 64] network has 64.
    assert model.policy.mlp_extractor.policy_net[0].experts[0][0].out_features == 32
    tags: set[str] = set()
    for f in (out / "tb").rglob("events.*"):
        acc = EventAccumulator(str(f))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    assert {"moe/max_load", "moe/balance_loss", "moe/load_0_3", "moe/load_1_0"} <= tags


@pytest.mark.parametrize("algo, moe, fragment", [
    ("sac", {"experts": 4}, "supported for algo ppo and a2c only, not 'sac'"),
    ("ppo", {"experts": 4, "top_k": 9}, "top_k must be in [1, experts=4]"),
])
def test_sb3_moe_bad_input_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], algo: str, moe: object, fragment: str
) -> None:
    cfg = _config(tmp_path, algo, moe)
    assert main(["train", str(cfg), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists()
