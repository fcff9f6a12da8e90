"""Staged batch sizes (``run.stages``): parsing, the promotion rule, SB3 and lm-ppo runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_resume import simulate_kill

import rlseek  # noqa: F401  (registers the envs)
from rlseek.cli import main
from rlseek.errors import ConfigError
from rlseek.stages import CurriculumRule, Stage, parse_stages, stage_end, stage_index


def test_stages_parse_and_locate_steps() -> None:
    stages = parse_stages([{"steps": 100, "batch_size": 64},
                           {"steps": 50, "batch_size": 32, "curriculum": True, "window": 5}], 150)
    assert stages == [Stage(100, 64), Stage(50, 32, True, 0.8, 5)]
    assert [stage_index(stages, s) for s in (0, 99, 100, 149, 400)] == [0, 0, 1, 1, 1]
    assert stage_end(stages, 0) == 100 and stage_end(stages, 1) == 150
    assert parse_stages([], 10) == [] and parse_stages(None, 10) == []


@pytest.mark.parametrize("raw, fragment", [
    ({"steps": 10}, "'run.stages' must be a list"),
    ([{"steps": 10}], "missing required field 'run.stages[0].batch_size'"),
    ([{"steps": 0, "batch_size": 4}], "'run.stages[0].steps' must be a positive integer, got 0"),
    ([{"steps": 10, "batch_size": 2.5}], "'run.stages[0].batch_size' must be a positive integer"),
    ([{"steps": 10, "batch_size": 4, "curriculum": "yes"}], "curriculum' must be true or false"),
    ([{"steps": 10, "batch_size": 4, "batch": 4}], "unknown field 'run.stages[0].batch'"),
    ([{"steps": 10, "batch_size": 4, "threshold": 1.5}], "threshold' must be in (0, 1]"),
    ([{"steps": 6, "batch_size": 4}, {"steps": 6, "batch_size": 2}],
     "run.stages steps add up to 12 but run.total_steps is 10; make them equal"),
])
def test_bad_stages_are_rejected_with_the_field(raw: Any, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_stages(raw, 10, "exp.yaml")
    assert fragment in str(err.value) and str(err.value).startswith("exp.yaml: ")


def test_curriculum_rule_promotes_on_a_full_window_and_stops_at_the_top() -> None:
    rule = CurriculumRule(num_levels=3, threshold=0.5, window=4)
    seen = [rule.observe(s) for s in (True, True, False)]  # window not full yet
    assert seen == [None, None, None] and rule.level == 0
    assert rule.observe(False) == 1  # 2 of 4 = 0.5 >= threshold
    assert [rule.observe(s) for s in (True, False, False, False)] == [None] * 4  # 0.25: no
    assert [rule.observe(True) for _ in range(2)] == [None, 2]  # window slides to 2/4
    assert [rule.observe(True) for _ in range(8)] == [None] * 8 and rule.level == 2
    assert rule.promotions == [[4, 1], [10, 2]]


def write(folder: Path, data: dict[str, Any]) -> Path:
    path = folder / "exp.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def robot_config(algo: str, stages: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    return {"env": {"id": "rlseek/Reacher-v0"}, "agent": {"algo": algo, "params": params},
            "run": {"total_steps": sum(s["steps"] for s in stages), "seed": 2, "eval_every": 10_000,
                    "eval_episodes": 1, "checkpoint_every": 10_000, "tracking": False,
                    "stages": stages}}


def test_ppo_stages_change_the_rollout_size_and_run_a_curriculum(tmp_path: Path) -> None:
    from stable_baselines3 import PPO
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    stages = [{"steps": 128, "batch_size": 128},
              {"steps": 192, "batch_size": 64, "curriculum": True, "threshold": 0.01, "window": 1},
              {"steps": 64, "batch_size": 32}]
    cfg = robot_config("ppo", stages, {"n_steps": 512, "batch_size": 64, "n_epochs": 1})
    out = tmp_path / "run"
    assert main(["train", str(write(tmp_path, cfg)), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    recs = summary["stages"]
    assert [r["batch_size"] for r in recs] == [128, 64, 32] and summary["steps"] == 384
    assert [(r["start"], r["end"]) for r in recs] == [(0, 128), (128, 320), (320, 384)]
    model = PPO.load(out / "final" / "model.zip")
    assert model.n_steps == 32 and model.batch_size == 32  # minibatch capped at the rollout
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["run"]["stages"][1]["curriculum"] is True
    acc = EventAccumulator(str(out / "tb"))
    acc.Reload()
    assert "curriculum/level" in acc.Tags()["scalars"]


def test_sac_stages_set_the_minibatch(tmp_path: Path) -> None:
    from stable_baselines3 import SAC

    stages = [{"steps": 96, "batch_size": 64}, {"steps": 32, "batch_size": 16}]
    cfg = robot_config("sac", stages, {"learning_starts": 32, "policy_kwargs": {"net_arch": [8]}})
    out = tmp_path / "run"
    assert main(["train", str(write(tmp_path, cfg)), "--out", str(out)]) == 0
    assert SAC.load(out / "final" / "model.zip").batch_size == 16
    assert [r["batch_size"] for r in json.loads((out / "summary.json").read_text())["stages"]] == [64, 16]


def test_bad_stages_in_a_config_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = robot_config("ppo", [{"steps": 64, "batch_size": 32}], {})
    cfg["run"]["total_steps"] = 100
    assert main(["train", str(write(tmp_path, cfg)), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "steps add up to 64 but run.total_steps is 100" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_lm_ppo_stages_change_the_rollout_rows_and_run_a_curriculum(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    stages = [{"steps": 16, "batch_size": 8},
              {"steps": 8, "batch_size": 4, "curriculum": True, "threshold": 0.01, "window": 1},
              {"steps": 4, "batch_size": 4}]
    cfg = {"env": {"id": "rlseek/Arithmetic-v0", "kwargs": {"max_new_tokens": 4}},
           "agent": {"algo": "lm-ppo", "params": {"ppo_epochs": 1, "num_minibatches": 1}},
           "run": {"total_steps": 28, "n_envs": 8, "eval_episodes": 4, "eval_every": 100,
                   "checkpoint_every": 100, "tracking": False, "stages": stages}}
    out = tmp_path / "run"
    assert main(["train", str(write(tmp_path, cfg)), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["completions"] == 28 and summary["iterations"] == 5
    recs = summary["stages"]
    assert [(r["batch_size"], r["start_iteration"]) for r in recs] == [(8, 0), (4, 2), (4, 4)]
    acc = EventAccumulator(str(out / "tb"))
    acc.Reload()
    assert "curriculum/level" in acc.Tags()["scalars"]


def test_lm_ppo_curriculum_stage_needs_levels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = {"env": {"id": "rlseek/Reviews-v0", "kwargs": {"max_new_tokens": 4}},
           "agent": {"algo": "lm-ppo", "params": {"ppo_epochs": 1, "num_minibatches": 1}},
           "run": {"total_steps": 4, "n_envs": 4, "eval_episodes": 2, "tracking": False,
                   "stages": [{"steps": 4, "batch_size": 4, "curriculum": True}]}}
    assert main(["train", str(write(tmp_path, cfg)), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "run.stages[0].curriculum needs an env with difficulty levels below" in err
    assert not (tmp_path / "run").exists()


def test_lm_grpo_stage_batches_must_hold_whole_groups(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = {"env": {"id": "rlseek/Arithmetic-v0"},
           "agent": {"algo": "lm-grpo", "params": {"group_size": 4}},
           "run": {"total_steps": 14, "n_envs": 8, "tracking": False,
                   "stages": [{"steps": 8, "batch_size": 8}, {"steps": 6, "batch_size": 6}]}}
    assert main(["train", str(write(tmp_path, cfg)), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "'run.stages[1].batch_size' must be a multiple of agent.params.group_size (4), got 6" in err


def test_a_killed_staged_ppo_run_resumes_in_its_stage(tmp_path: Path) -> None:
    from stable_baselines3 import PPO

    stages = [{"steps": 64, "batch_size": 32}, {"steps": 64, "batch_size": 16}]
    cfg = robot_config("ppo", stages, {"n_steps": 32, "batch_size": 16, "n_epochs": 1})
    cfg["run"].update(checkpoint_every=32, keep_checkpoints=10)
    out = tmp_path / "run"
    assert main(["train", str(write(tmp_path, cfg)), "--out", str(out)]) == 0
    out = simulate_kill(out, keep_until=64)
    assert main(["train", "--resume", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from_step"] == 64 and summary["steps"] == 128
    assert [(r["index"], r["batch_size"], r["start"]) for r in summary["stages"]] == [(1, 16, 64)]
    assert PPO.load(out / "final" / "model.zip").n_steps == 16


def test_a_killed_staged_lm_ppo_run_resumes_in_its_stage(tmp_path: Path) -> None:
    stages = [{"steps": 16, "batch_size": 8}, {"steps": 8, "batch_size": 4}]
    cfg = {"env": {"id": "rlseek/Arithmetic-v0", "kwargs": {"max_new_tokens": 4}},
           "agent": {"algo": "lm-ppo", "params": {"ppo_epochs": 1, "num_minibatches": 1}},
           "run": {"total_steps": 24, "n_envs": 8, "eval_episodes": 4, "eval_every": 100,
                   "checkpoint_every": 8, "keep_checkpoints": 10, "tracking": False,
                   "stages": stages}}
    out = tmp_path / "run"
    assert main(["train", str(write(tmp_path, cfg)), "--out", str(out)]) == 0
    out = simulate_kill(out, keep_until=16)
    assert main(["train", "--resume", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from_step"] == 16 and summary["completions"] == 24
    assert [(r["index"], r["batch_size"], r["start_iteration"]) for r in summary["stages"]] == [(1, 4, 2)]


@pytest.mark.parametrize("name", ["reacher_ppo_staged.yaml", "reacher_ppo_moe.yaml"])
def test_the_example_configs_load_and_build(name: str) -> None:
    from rlseek.agents import get_agent_class
    from rlseek.config import load_config

    cfg = load_config(Path(__file__).resolve().parent.parent / "examples" / "configs" / name)
    agent_cls = get_agent_class(cfg.agent.algo)
    agent = agent_cls.config_class.from_params(cfg.agent.params).create(cfg)
    resolved = agent.resolve_config(cfg)  # builds the SB3 model once
    assert resolved.run.stages or "moe" in resolved.agent.params["policy_kwargs"]
