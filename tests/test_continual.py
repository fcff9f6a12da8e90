"""Continual learning: EWC's Fisher and penalty by hand, the reservoir, the replay mix, the
config checks, the accuracy-matrix figures, and a two-task SAC sequence with --resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from rlseek.config import config_from_dict
from rlseek.continual import metrics
from rlseek.continual.buffer import ReservoirBuffer
from rlseek.continual.ewc import EwcPenalty, diagonal_fisher
from rlseek.errors import ConfigError, RlseekError

BASE = {"env": {"id": "rlseek/Reacher-v0"}, "agent": {"algo": "sac"}}


def two_params(a: float, b: float) -> dict[str, torch.nn.Parameter]:
    return {"a": torch.nn.Parameter(torch.tensor(a)), "b": torch.nn.Parameter(torch.tensor(b))}


# -- EWC -------------------------------------------------------------------------------------
def test_fisher_is_the_mean_squared_score_per_sample() -> None:
    p = two_params(0.5, -1.0)
    # log p1 = a + 2b -> score (1, 2); log p2 = 3a - b -> score (3, -1); log p3 = a*b -> (b, a)
    samples = [lambda: p["a"] + 2 * p["b"], lambda: 3 * p["a"] - p["b"], lambda: p["a"] * p["b"]]
    fisher = diagonal_fisher(p, samples)
    assert fisher["a"].item() == pytest.approx((1 + 9 + 1.0) / 3)  # b = -1 -> 1
    assert fisher["b"].item() == pytest.approx((4 + 1 + 0.25) / 3)  # a = 0.5 -> 0.25


def test_fisher_rejects_no_samples_and_non_scalars() -> None:
    p = two_params(1.0, 1.0)
    with pytest.raises(RlseekError, match="at least one sample"):
        diagonal_fisher(p, [])
    with pytest.raises(RlseekError, match="scalar"):
        diagonal_fisher(p, [lambda: torch.stack([p["a"], p["b"]])])


def test_ewc_penalty_and_gradient_by_hand(tmp_path: Path) -> None:
    p = two_params(1.0, 2.0)
    ewc = EwcPenalty(lam=2.0)
    assert ewc.penalty(p).item() == 0.0
    ewc.consolidate(p, {"a": torch.tensor(5.0), "b": torch.tensor(2.5)})  # anchor (1, 2)
    with torch.no_grad():
        p["a"].fill_(2.0)
        p["b"].fill_(0.0)
    # lambda/2 * (5 * 1^2 + 2.5 * (-2)^2) = 1 * (5 + 10) = 15
    value = ewc.penalty(p)
    assert value.item() == pytest.approx(15.0)
    value.backward()
    assert (p["a"].grad.item(), p["b"].grad.item()) == pytest.approx((10.0, -10.0))  # lambda F (θ-θ*)
    # A second task's term adds to the first: anchor (2, 0), F (1, 4); θ = (3, 1).
    ewc.consolidate(p, {"a": torch.tensor(1.0), "b": torch.tensor(4.0)})
    with torch.no_grad():
        p["a"].fill_(3.0)
        p["b"].fill_(1.0)
        p["a"].grad = torch.tensor(0.5)
        p["b"].grad = None
    # task 1: 5*4 + 2.5*1 = 22.5; task 2: 1*1 + 4*1 = 5; times lambda/2 = 1
    assert ewc.add_gradient(p) == pytest.approx(27.5)
    # gradients: a: 0.5 + 2*(5*2 + 1*1) = 22.5; b: 2*(2.5*(-1) + 4*1) = 3
    assert (p["a"].grad.item(), p["b"].grad.item()) == pytest.approx((22.5, 3.0))
    ewc.save(tmp_path / "ewc.safetensors")
    back = EwcPenalty.load(tmp_path / "ewc.safetensors", lam=2.0)
    assert len(back) == 2 and back.penalty(p).item() == pytest.approx(27.5)
    with pytest.raises(RlseekError, match="differ"):
        back.penalty({"a": p["a"]})


# -- replay ----------------------------------------------------------------------------------
def test_reservoir_keeps_capacity_and_a_uniform_share_of_every_task(tmp_path: Path) -> None:
    buf = ReservoirBuffer(capacity=300, seed=0)
    for task in range(3):
        buf.add({"x": np.full((1000, 2), task, dtype=np.float32)}, task=task)
    assert len(buf) == 300 and buf.seen == 3000
    counts = buf.task_counts()
    assert set(counts) == {0, 1, 2} and all(60 <= c <= 140 for c in counts.values())  # 100 expected
    buf.save(tmp_path / "r.npz")
    back = ReservoirBuffer.load(tmp_path / "r.npz")
    assert back.task_counts() == counts and back.seen == 3000
    assert np.array_equal(back.arrays["x"][:300], buf.arrays["x"][:300])
    with pytest.raises(RlseekError, match="fields"):
        buf.add({"y": np.zeros((2, 2))}, task=3)
    with pytest.raises(RlseekError, match="empty"):
        ReservoirBuffer(5).sample(1, np.random.default_rng(0))


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5])
def test_replay_fraction_is_respected_in_every_sac_batch(fraction: float) -> None:
    import gymnasium as gym
    from stable_baselines3.common.buffers import ReplayBuffer

    from rlseek.continual.robot import MixedReplayBuffer, buffer_rows

    obs_space = gym.spaces.Box(-1, 1, (3,), np.float32)
    act_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    current = ReplayBuffer(100, obs_space, act_space, device="cpu")
    for _ in range(50):  # current task: reward 0
        current.add(np.zeros((1, 3)), np.zeros((1, 3)), np.zeros((1, 2)), np.zeros(1), np.zeros(1), [{}])
    past = ReservoirBuffer(20)
    rows = buffer_rows(current)
    rows["rewards"] = np.ones_like(rows["rewards"])  # past task: reward 1
    past.add(rows, task=0)
    mixed = MixedReplayBuffer(current, past, fraction, seed=0)
    for batch in (8, 64, 256):
        s = mixed.sample(batch)
        assert s.rewards.shape == (batch, 1) and s.observations.shape == (batch, 3)
        assert int(s.rewards.sum().item()) == round(fraction * batch) == mixed.last_mix[1]
    assert mixed.size() == 50  # everything else goes to SB3's buffer


# -- config ----------------------------------------------------------------------------------
BAD = {
    "one task": ({"tasks": [{"total_steps": 10}]}, "at least 2 tasks"),
    "unknown task field": ({"tasks": [{"steps": 10}, {}]}, "unknown field 'run.tasks[0].steps'"),
    "bad steps": ({"tasks": [{}, {"total_steps": 0}]}, "'run.tasks[1].total_steps' must be >= 1"),
    "replay without tasks": ({"replay": {"fraction": 0.2}}, "needs a task sequence"),
    "fraction 1": ({"tasks": [{}, {}], "replay": {"fraction": 1.0}}, "'run.replay.fraction' must be in [0, 1)"),
    "ewc typo": ({"tasks": [{}, {}], "ewc": {"lamda": 1.0}}, "unknown field 'run.ewc.lamda' (did you mean 'lambda'?)"),
    "repeated names": ({"tasks": [{"name": "a"}, {"name": "a"}]}, "repeated task names"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_sequences_fail_with_the_field_path(case: str) -> None:
    run, fragment = BAD[case]
    with pytest.raises(ConfigError, match=None) as info:
        config_from_dict({**BASE, "run": run}, source="c.yaml")
    assert fragment in str(info.value) and str(info.value).startswith("c.yaml: ")


def test_task_env_is_merged_over_the_env_section() -> None:
    from rlseek.continual.runner import spec_of

    cfg = config_from_dict({"env": {"id": "rlseek/Reacher-v0", "kwargs": {"success_distance": 0.05}},
                            "agent": {"algo": "sac"},
                            "run": {"total_steps": 7, "tasks": [{"env": {"kwargs": {"level": 0}}},
                                                                {"env": {"kwargs": {"level": 2}}, "total_steps": 9}]}})
    spec = spec_of(cfg)
    assert [t.name for t in spec.tasks] == ["reacher-level0", "reacher-level2"]
    assert spec.tasks[1].env["kwargs"] == {"success_distance": 0.05, "level": 2}
    assert [t.total_steps for t in spec.tasks] == [7, 9] and spec.method == "finetune"


def test_algos_without_hooks_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    import rlseek

    with pytest.raises(RlseekError, match="not supported by algo 'ppo'.*sac"):
        rlseek.train({**BASE, "agent": {"algo": "ppo"}, "run": {"tasks": [{}, {}]}}, out=tmp_path / "r")
    assert not (tmp_path / "r").exists()


# -- figures ---------------------------------------------------------------------------------
def test_average_accuracy_and_backward_transfer_by_hand() -> None:
    r = [[0.9, 0.1, 0.0], [0.5, 0.8, 0.2], [0.3, 0.6, 0.7]]
    assert metrics.average_accuracy(r) == pytest.approx((0.3 + 0.6 + 0.7) / 3)
    assert metrics.backward_transfer(r) == pytest.approx(((0.3 - 0.9) + (0.6 - 0.8)) / 2)
    with pytest.raises(RlseekError, match="T x T"):
        metrics.average_accuracy([[1.0, 0.0]])


# -- a real sequence -------------------------------------------------------------------------
SEQ = {
    "env": {"id": "rlseek/Reacher-v0", "kwargs": {"success_distance": 0.1}},
    "agent": {"algo": "sac", "params": {"learning_starts": 50, "batch_size": 32,
                                        "policy_kwargs": {"net_arch": [16]}}},
    "run": {"seed": 0, "eval_episodes": 2, "eval_every": 1000, "checkpoint_every": 100, "torch_threads": 1,
            "tasks": [{"env": {"kwargs": {"level": 0}}, "total_steps": 150},
                      {"env": {"kwargs": {"level": 2}}, "total_steps": 150}],
            "replay": {"fraction": 0.5, "capacity": 64}, "ewc": {"lambda": 10.0, "fisher_samples": 8}},
}


def test_sac_sequence_records_the_matrix_and_resumes(tmp_path: Path) -> None:
    import rlseek
    from rlseek.cli import main

    cfg = tmp_path / "seq.yaml"
    cfg.write_text(yaml.safe_dump(SEQ))
    out = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "replay+ewc" and summary["tasks"] == ["reacher-level0", "reacher-level2"]
    r = np.asarray(summary["accuracy_matrix"])
    assert r.shape == (2, 2) and ((r >= 0) & (r <= 1)).all()
    assert summary["backward_transfer"] == pytest.approx(r[1, 0] - r[0, 0])
    first, second = out / "tasks" / "00-reacher-level0", out / "tasks" / "01-reacher-level2"
    assert {p.name for p in (first / "continual").iterdir()} == {"replay.npz", "ewc-actor.safetensors",
                                                                  "ewc-critic.safetensors"}
    kept = ReservoirBuffer.load(second / "continual" / "replay.npz").task_counts()
    assert set(kept) == {0, 1} and sum(kept.values()) == 64
    assert summary["task_summaries"]["reacher-level2"]["continual"]["ewc_penalty_actor"] > 0
    # Kill the second task after its first checkpoint: --resume finishes it from there.
    meta = json.loads((second / "meta.json").read_text())
    (second / "meta.json").write_text(json.dumps({**meta, "status": "running"}))
    for stale in (second / "summary.json", out / "summary.json"):
        stale.unlink()
    shutil.rmtree(second / "final")
    shutil.rmtree(second / "checkpoints" / "step_000000000150")
    state = json.loads((out / "continual.json").read_text())
    (out / "continual.json").write_text(json.dumps({**state, "rows": state["rows"][:1]}))
    (out / "meta.json").write_text(json.dumps({**json.loads((out / "meta.json").read_text()), "status": "running"}))
    again = rlseek.train(out=out, resume=True)
    assert again.summary["task_summaries"]["reacher-level2"]["resumed_from_step"] == 100
    assert again.summary["accuracy_matrix"][0] == summary["accuracy_matrix"][0]
    assert len(again.summary["accuracy_matrix"]) == 2


# -- text --------------------------------------------------------------------------------------
TEXT = {
    "env": {"id": "rlseek/Arithmetic-v0"},
    "agent": {"algo": "lm-ppo", "params": {"model": "rlseek/tiny-lm", "ppo_epochs": 1, "num_minibatches": 2}},
    "run": {"n_envs": 8, "seed": 0, "device": "cpu", "torch_threads": 1, "eval_episodes": 16,
            "eval_every": 1000, "checkpoint_every": 16,
            "tasks": [{"env": {"kwargs": {"level": 0}}, "total_steps": 16},
                      {"env": {"kwargs": {"level": 1}}, "total_steps": 16}],
            "replay": {"fraction": 0.25, "capacity": 40}, "ewc": {"lambda": 10.0, "fisher_samples": 4}},
}


def _text_hooks(tmp_path: Path, lora: bool = False, **run: object):  # type: ignore[no-untyped-def]
    from rlseek.continual.runner import spec_of
    from rlseek.continual.state import TaskContext
    from rlseek.continual.text import TextContinual, _rows

    spec = spec_of(config_from_dict({**TEXT, "run": {**TEXT["run"], **run}}))
    prev = tmp_path / "00"
    past = ReservoirBuffer(10)
    past.add(_rows([f"{i}+0=" for i in range(10)], [str(i) for i in range(10)]), task=0)
    (prev / "continual").mkdir(parents=True)
    past.save(prev / "continual" / "replay.npz")
    return TextContinual(TaskContext(spec, 1, tmp_path / "01", prev), lora=lora)


def test_text_replay_swaps_the_fraction_of_prompt_groups(tmp_path: Path) -> None:
    from rlseek.envs.text import make_text_vector_env

    hooks = _text_hooks(tmp_path)
    env = make_text_vector_env("rlseek/Arithmetic-v0", 8, model="rlseek/tiny-lm", level=3)
    try:
        opts = hooks.mix(None, env, iteration=0)  # one prompt per row: 2 of 8 rows replayed
        replayed = [i for i, p in enumerate(opts["prompts"]) if p.endswith("+0=")]
        assert len(replayed) == 2 and all(opts["answers"][i] == opts["prompts"][i][:-3] for i in replayed)
        grouped = {"prompts": [f"{g}{g}+{g}{g}-1=" for g in range(1, 5) for _ in range(2)], "answers": None}
        opts = hooks.mix(grouped, env, iteration=1)  # 4 groups of 2 rows: one whole group replayed
        swapped = [i for i, p in enumerate(opts["prompts"]) if p.endswith("+0=")]
        assert len(swapped) == 2 and swapped[1] == swapped[0] + 1 and swapped[0] % 2 == 0
        env.reset(options=opts)  # the env accepts the mixed prompts
        opts = hooks.mix({"group_size": 2}, env, iteration=2)  # lm-grpo's groups: 1 of 4 swapped
        rows = [p.endswith("+0=") for p in opts["prompts"]]
        assert sum(rows) == 2 and rows.index(True) % 2 == 0 and rows[rows.index(True) + 1]
        assert all(opts["prompts"][i] == opts["prompts"][i + 1] for i in range(0, 8, 2))
        env.reset(options=opts)
    finally:
        env.close()
    assert hooks.replayed == 6 and hooks.rows == 24


def test_text_hooks_refuse_ewc_with_lora_and_replay_across_envs(tmp_path: Path) -> None:
    with pytest.raises(RlseekError, match="lora: false"):
        _text_hooks(tmp_path / "a", lora=True)
    tasks = [{"env": "rlseek/Arithmetic-v0"}, {"env": "rlseek/Reviews-v0"}]
    with pytest.raises(RlseekError, match="one env id"):
        _text_hooks(tmp_path / "b", tasks=tasks, ewc=None)


@pytest.mark.parametrize("algo", ["lm-ppo", "lm-grpo"])
def test_text_sequence_starts_each_task_from_the_last_and_applies_ewc(algo: str, tmp_path: Path) -> None:
    import rlseek

    params = {**TEXT["agent"]["params"], **({"group_size": 2} if algo == "lm-grpo" else {})}
    run = rlseek.train({**TEXT, "agent": {"algo": algo, "params": params}}, out=tmp_path / "run")
    s = run.summary
    assert s["tasks"] == ["arithmetic-level0", "arithmetic-level1"] and len(s["accuracy_matrix"]) == 2
    second = yaml.safe_load((run.path / "tasks" / "01-arithmetic-level1" / "config.yaml").read_text())
    assert second["agent"]["params"]["model"] == str((run.path / "tasks" / "00-arithmetic-level0" / "final").resolve())
    late = s["task_summaries"]["arithmetic-level1"]["continual"]
    # 2 iterations x 8 rows x 0.25 (lm-grpo: one of 4 groups of 2 rows per iteration)
    assert late["replayed_rows"] == 2 * 2 and late["rollout_rows"] == 16
    assert late["replay_kept"] == {"0": 16, "1": 16}
    assert "fisher_mean" in s["task_summaries"]["arithmetic-level0"]["continual"]
    assert late["ewc_penalty"] > 0 and s["task_summaries"]["arithmetic-level0"]["continual"]["ewc_penalty"] is None
