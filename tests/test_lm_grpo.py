"""lm-grpo / lm-rloo: group advantages and loss normalization on hand-computed examples, no
reference at β = 0, config errors, a short CLI run, and SIGKILL-resume = uninterrupted."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM

from rlseek.agents.lm_grpo import (
    LmGrpoConfig,
    LmRlooConfig,
    critic_free_policy_loss,
    group_advantages,
)
from rlseek.agents.lm_grpo.trainer import CriticFreeTrainer
from rlseek.agents.lm_ppo.model import build_policy
from rlseek.cli import main
from rlseek.envs.text.rollout import Rollout
from rlseek.runs import Run

SCORES = torch.tensor([1.0, 2.0, 3.0, 6.0, 5.0, 5.0, 5.0, 5.0], dtype=torch.float64)


def test_grpo_advantages_on_hand_computed_groups() -> None:
    # group 1: mean 3, deviations -2, -1, 0, 3; sample std sqrt(14 / 3); group 2 all equal
    std = math.sqrt(14 / 3)
    scaled = group_advantages(SCORES, 4, "grpo", scale_rewards=True)
    want = [-2 / (std + 1e-4), -1 / (std + 1e-4), 0.0, 3 / (std + 1e-4), 0, 0, 0, 0]
    assert scaled.tolist() == pytest.approx(want, abs=1e-12)
    assert group_advantages(SCORES, 4, "grpo", scale_rewards=False).tolist() == [-2, -1, 0, 3, 0, 0, 0, 0]
    # groups of 2: (1, 2) (3, 6) (5, 5) (5, 5)
    assert group_advantages(SCORES, 2, "grpo", scale_rewards=False).tolist() == [-0.5, 0.5, -1.5, 1.5, 0, 0, 0, 0]


def test_rloo_advantages_use_the_leave_one_out_baseline() -> None:
    # 1 - mean(2, 3, 6), 2 - mean(1, 3, 6), 3 - mean(1, 2, 6), 6 - mean(1, 2, 3)
    want = [1 - 11 / 3, 2 - 10 / 3, 3 - 3, 6 - 2, 0, 0, 0, 0]
    assert group_advantages(SCORES, 4, "rloo", scale_rewards=False).tolist() == pytest.approx(want)
    std = math.sqrt(14 / 3)
    scaled = group_advantages(SCORES, 4, "rloo", scale_rewards=True)
    assert scaled.tolist() == pytest.approx([w / (std + 1e-4) for w in want])
    with pytest.raises(ValueError, match="groups of 3"):
        group_advantages(SCORES, 3, "rloo")
    with pytest.raises(ValueError, match="unknown estimator"):
        group_advantages(SCORES, 4, "ppo")


def test_loss_normalization_token_vs_sequence() -> None:
    # ratio 1 everywhere, so each token's loss is -A: row 0 has 3 tokens with A = 1, row 1
    # one token with A = -1 (its padding must not count)
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    logp = torch.zeros(2, 3, requires_grad=True)
    adv = torch.tensor([1.0, -1.0])
    token, stats = critic_free_policy_loss(logp, logp.detach(), adv, mask, 0.2, "token")
    sequence, _ = critic_free_policy_loss(logp, logp.detach(), adv, mask, 0.2, "sequence")
    assert token.item() == pytest.approx((-3 + 1) / 4)
    assert sequence.item() == pytest.approx((-1 + 1) / 2)
    assert stats["clipfrac"].item() == 0.0 and stats["approx_kl"].item() == 0.0
    # the gradient per token: 1/4 each under token; 1/6 vs 1/2 under sequence
    (grad,) = torch.autograd.grad(sequence, logp)
    assert grad[mask > 0].tolist() == pytest.approx([-1 / 6, -1 / 6, -1 / 6, 1 / 2])
    # the clip binds: ratio e^0.5 with a positive advantage is held at 1.2
    moved = torch.full((2, 3), 0.5)
    clipped, st = critic_free_policy_loss(moved, torch.zeros(2, 3), torch.tensor([1.0, 1.0]), mask, 0.2)
    assert clipped.item() == pytest.approx(-1.2) and st["clipfrac"].item() == 1.0
    with pytest.raises(ValueError, match="loss_norm"):
        critic_free_policy_loss(logp, logp, adv, mask, 0.2, "mean")


def tiny_lm() -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=2, num_attention_heads=4,
                                        num_key_value_heads=2, pad_token_id=0)).eval()


def grouped_rollout() -> Rollout:
    """Two prompts, two completions each (3, 1, 4 and 2 tokens)."""
    prompt_ids = torch.tensor([[0, 5, 6], [0, 5, 6], [7, 8, 9], [7, 8, 9]])
    lengths = [3, 1, 4, 2]
    resp, mask = torch.zeros(4, 4, dtype=torch.long), torch.zeros(4, 4)
    g = torch.Generator().manual_seed(0)
    for i, n in enumerate(lengths):
        resp[i, :n] = torch.randint(3, 32, (n,), generator=g)
        mask[i, :n] = 1
    return Rollout(prompt_ids=prompt_ids, prompt_mask=(prompt_ids != 0).long(), response_ids=resp,
                   response_mask=mask, scores=np.array([1.0, 0.0, 0.0, 2.0]), eos=np.ones(4, bool),
                   terms={}, completions=[""] * 4, completion_ids=[resp[i, :n].tolist() for i, n in enumerate(lengths)],
                   prompts=[""] * 4, answers=[None] * 4)


@pytest.mark.parametrize("loss_norm", ["token", "sequence"])
def test_accumulated_micro_batches_give_the_unaccumulated_step(loss_norm: str) -> None:
    weights = []
    for accum in (1, 4):
        cfg = LmGrpoConfig(group_size=2, learning_rate=1e-2, loss_norm=loss_norm, grad_accum_steps=accum)
        policy, ref = build_policy(tiny_lm(), cfg, value_head=False, reference=False)
        tr = CriticFreeTrainer(policy, ref, cfg, torch.device("cpu"))
        stats = tr.step(grouped_rollout())
        assert stats["losses/clipfrac"] == 0.0  # on-policy: the ratio is exactly 1
        weights.append(torch.cat([p.detach().flatten() for p in policy.parameters()]))
    torch.testing.assert_close(weights[0], weights[1], atol=1e-6, rtol=1e-5)


def test_beta_zero_keeps_no_reference_and_beta_positive_does() -> None:
    cfg = LmGrpoConfig(group_size=2)
    policy, ref = build_policy(tiny_lm(), cfg, value_head=False, reference=cfg.kl_coef > 0)
    tr = CriticFreeTrainer(policy, ref, cfg, torch.device("cpu"))
    assert ref is None and policy.value_head is None and not tr.has_reference
    assert sum(1 for m in policy.modules() if isinstance(m, LlamaForCausalLM)) == 1  # no copy
    batch, stats = tr.prepare(grouped_rollout())
    assert "ref_logp" not in batch and "old_logp" not in batch and stats["charts/kl_ref"] == 0.0
    cfg = LmRlooConfig(group_size=2, kl_coef=0.1, learning_rate=1e-2)
    policy, ref = build_policy(tiny_lm(), cfg, value_head=False, reference=True)
    tr = CriticFreeTrainer(policy, ref, cfg, torch.device("cpu"), estimator="rloo")
    assert ref is not None and tr.has_reference
    tr.step(grouped_rollout())
    _, stats = tr.prepare(grouped_rollout())
    assert stats["charts/kl_ref"] > 1e-4  # the policy moved away from its reference
    assert cfg.scale_rewards is False and LmGrpoConfig().scale_rewards is True


ENV = {"id": "rlseek/Arithmetic-v0", "kwargs": {"max_new_tokens": 6}}
RUN = {"total_steps": 16, "n_envs": 8, "eval_episodes": 4, "checkpoint_every": 8,
       "eval_every": 100, "seed": 3, "torch_threads": 1}


def write_config(folder: Path, algo: str = "lm-grpo", params: dict | None = None,
                 run: dict | None = None) -> Path:
    cfg = {"env": ENV, "agent": {"algo": algo, "params": {"learning_rate": 1e-3, "group_size": 4,
                                                          **(params or {})}},
           "run": {**RUN, **(run or {})}}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("params,run,fragment", [
    ({"group_size": 1}, {}, "'agent.params.group_size' must be >= 2"),
    ({"loss_norm": "mean"}, {}, "'agent.params.loss_norm' must be 'token' or 'sequence', got 'mean'"),
    ({"kl_penalty": "reward"}, {}, "'agent.params.kl_penalty' must be 'loss'"),
    ({"kl_estimator": "k1", "kl_coef": 0.1}, {}, "'agent.params.kl_estimator' is 'k1' with kl_penalty 'loss'"),
    ({"scale_rewards": "maybe"}, {}, "'agent.params.scale_rewards' must be true or false"),
    ({"value_coef": 0.1}, {}, "unknown field 'agent.params.value_coef'"),
    ({}, {"n_envs": 6}, "'run.n_envs' must be a multiple of agent.params.group_size (4)"),
])
def test_bad_config_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          params: dict, run: dict, fragment: str) -> None:
    out = tmp_path / "run"
    assert main(["train", str(write_config(tmp_path, "lm-grpo", params, run)), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_short_cli_runs_write_the_run_directory(tmp_path: Path) -> None:
    from rlseek.serving.policies import TextPolicy

    for algo in ("lm-grpo", "lm-rloo"):
        out = tmp_path / algo
        assert main(["train", str(write_config(tmp_path, algo, {"loss_norm": "sequence"})),
                     "--out", str(out)]) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert summary["algo"] == algo and summary["iterations"] == 2 and summary["completions"] == 16
        assert summary["value_head_parameters"] == 0 and summary["final_kl"] == 0.0
        assert summary["final_entropy"] > 0 and summary["eval"]["episodes"] == 4
        config = yaml.safe_load((out / "config.yaml").read_text())
        assert config["agent"]["params"]["scale_rewards"] is (algo == "lm-grpo")  # defaults resolved
        assert (out / "final" / "model.safetensors").is_file()
        assert not (out / "final" / "value_head.safetensors").exists()
        ckpts = Run.open(out).checkpoints()
        assert [c.step for c in ckpts] == [8, 16]
        assert not (ckpts[-1].path / "value_head.safetensors").exists()
        served = TextPolicy(out)  # rlseek serve loads it like an lm-ppo run
        assert served.describe()["kind"] == "text"
        (reply,) = served.run_batch([served.validate("12+34=", "46", 0.0)])
        assert isinstance(reply["completion"], str) and reply["completion_ids"]


@pytest.mark.slow  # ~9-11 s on a shared 2-core machine
def test_sigkill_resume_gives_the_uninterrupted_weights(tmp_path: Path) -> None:
    run = {"total_steps": 64, "checkpoint_every": 8}
    params = {"num_minibatches": 2, "ppo_epochs": 2, "kl_coef": 0.05}  # old/ref passes, shuffling
    straight = tmp_path / "straight"
    straight.mkdir()
    assert main(["train", str(write_config(straight, "lm-grpo", params, run)), "--out",
                 str(straight / "run")]) == 0
    killed = tmp_path / "killed"
    killed.mkdir()
    out = killed / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(killed / "stderr.txt", "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "rlseek.cli", "train",
                                 str(write_config(killed, "lm-grpo", params, run)), "--out", str(out)],
                                stdout=subprocess.DEVNULL, stderr=err, env=env)
    deadline = time.monotonic() + 240
    while not list(out.glob("checkpoints/step_*/state.json")):
        assert proc.poll() is None, "training exited before writing a checkpoint"
        assert time.monotonic() < deadline, "no checkpoint appeared in time"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "final").exists()
    before = [c.step for c in Run.open(out).checkpoints()]
    assert before and before[-1] < 64
    assert main(["train", "--resume", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from_iteration"] == before[-1] // 8 and summary["iterations"] == 8
    resumed = load_file(str(out / "final" / "model.safetensors"))
    uninterrupted = load_file(str(straight / "run" / "final" / "model.safetensors"))
    assert resumed.keys() == uninterrupted.keys()
    for k in uninterrupted:
        torch.testing.assert_close(resumed[k], uninterrupted[k], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name,algo", [("arithmetic_lm_grpo", "lm-grpo"), ("reviews_lm_rloo", "lm-rloo")])
def test_example_configs_validate(name: str, algo: str) -> None:
    from rlseek.config import load_config

    config = load_config(Path(__file__).parent.parent / "examples" / "configs" / f"{name}.yaml")
    assert config.agent.algo == algo
    cls = LmGrpoConfig if algo == "lm-grpo" else LmRlooConfig
    cfg = cls.from_params(config.agent.params)
    assert config.run.n_envs % cfg.group_size == 0
