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


def _tiny_llama(tmp_path: Path, experts: int) -> tuple[Path, torch.nn.Module]:
    from transformers import LlamaConfig, LlamaForCausalLM

    from rlseek.models.loader import load_tokenizer
    from rlseek.models.moe_lm import moeify

    tok = load_tokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=True,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    model = moeify(LlamaForCausalLM(cfg), MoESpec(experts=experts, top_k=2))
    out = tmp_path / "moe-lm"
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out, model


def test_moe_lm_has_equal_active_mlp_weights_and_round_trips_through_the_loader(tmp_path: Path) -> None:
    from rlseek.models.loader import load_causal_lm

    path, model = _tiny_llama(tmp_path, experts=4)
    block = model.model.layers[0].mlp
    assert isinstance(block, MoEBlock)
    # dense gated MLP: 3 * 32 * 64 weights; 2 active experts of 2 * 32 * 48 weights each
    assert 2 * sum(p.numel() for n, p in block.experts[0].named_parameters() if "weight" in n) == 3 * 32 * 64
    loaded, _ = load_causal_lm(path)
    assert isinstance(loaded.model.layers[1].mlp, MoEBlock)
    ids = torch.tensor([[1, 5, 9, 11, 4]])
    model.eval()
    assert torch.allclose(model(ids).logits, loaded(ids).logits, atol=1e-5)


def test_moe_lm_router_learns_from_the_language_modelling_loss(tmp_path: Path) -> None:
    _, model = _tiny_llama(tmp_path, experts=4)
    ids = torch.randint(5, 100, (2, 12))
    model(ids, labels=ids).loss.backward()
    for layer in model.model.layers:
        assert layer.mlp.router.weight.grad.abs().sum() > 0


def test_a_broken_moe_lm_folder_is_one_clear_error(tmp_path: Path) -> None:
    import json

    from rlseek.models.loader import load_causal_lm

    path, _ = _tiny_llama(tmp_path, experts=4)
    cfg = json.loads((path / "config.json").read_text())
    cfg["rlseek_moe"]["experts"] = 8  # weights of 4 experts, config says 8
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RlseekError, match="cannot load the MoE LM .* do not match its config.json"):
        load_causal_lm(path)


@pytest.mark.slow
def test_builder_moe_option_and_lm_ppo_trains_the_moe_lm(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    out = tmp_path / "lm"
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, str(root / "scripts" / "build_tiny_lm.py"), "--out", str(out),
                    "--n-arith", "400", "--n-reviews", "100", "--max-steps", "3", "--eval-every", "3",
                    "--hidden", "32", "--layers", "1", "--moe-experts", "4"], check=True, cwd=root,
                   env={**__import__("os").environ, "PYTHONPATH": str(root)})
    assert json.loads((out / "build_info.json").read_text())["moe"]["experts"] == 4
    cfg = {"env": {"id": "rlseek/Arithmetic-v0", "kwargs": {"max_new_tokens": 4}},
           "agent": {"algo": "lm-ppo", "params": {"model": str(out), "ppo_epochs": 1, "num_minibatches": 1}},
           "run": {"total_steps": 8, "n_envs": 8, "eval_episodes": 4, "tracking": False}}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(tmp_path / "exp.yaml"), "--out", str(tmp_path / "run")]) == 0
    from rlseek.models.loader import load_causal_lm
    trained, _ = load_causal_lm(tmp_path / "run" / "final")
    assert isinstance(trained.model.layers[0].mlp, MoEBlock)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(tmp_path / "run" / "tb"))
    acc.Reload()
    assert {"moe/max_load", "moe/balance_loss", "moe/load_0_0"} <= set(acc.Tags()["scalars"])
