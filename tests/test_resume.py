"""`rlseek train --resume` after a run was killed: step counts continue, nothing restarts.

The main test kills a real training process with SIGKILL (no chance to clean up) as soon as it
has written a checkpoint, then resumes it in-process. The others build the state a kill leaves
(checkpoints up to some step, no final/, status "running") from a short finished run, to cover
the on-policy and HER code paths quickly.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
import yaml
from stable_baselines3 import PPO, SAC, HerReplayBuffer
from stable_baselines3.common.vec_env import DummyVecEnv

from rlseek.cli import main
from rlseek.runs import Run

TOTAL = 400
SAC_CONFIG = {
    "env": {"id": "rlseek/Reacher-v0"},
    "agent": {
        "algo": "sac",
        "params": {"learning_starts": 100, "batch_size": 16, "policy_kwargs": {"net_arch": [16, 16]}},
    },
    "run": {
        "total_steps": TOTAL, "seed": 1, "eval_every": 200, "eval_episodes": 1,
        "checkpoint_every": 50, "keep_checkpoints": 20,
    },
}


def start_training(config: Path, out: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log, "wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "rlseek.cli", "train", str(config), "--out", str(out)],
            stdout=subprocess.DEVNULL, stderr=err, env=env,
        )


def wait_for_checkpoint(proc: subprocess.Popen[bytes], out: Path, timeout_s: float = 240.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if list(out.glob("checkpoints/step_*/state.json")):
            return
        if proc.poll() is not None:
            pytest.fail(f"training exited (code {proc.returncode}) before writing a checkpoint")
        time.sleep(0.02)
    proc.kill()
    pytest.fail("no checkpoint appeared in time")


def test_resume_after_sigkill_continues_the_step_count(tmp_path: Path) -> None:
    config = tmp_path / "sac.yaml"
    config.write_text(yaml.safe_dump(SAC_CONFIG))
    out = tmp_path / "run"
    proc = start_training(config, out, tmp_path / "stderr.txt")
    wait_for_checkpoint(proc, out)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    run = Run.open(out)
    assert not run.is_finished and not run.final_dir.exists()
    before = [c.step for c in run.checkpoints()]
    assert before and before[-1] < TOTAL  # killed part-way

    assert main(["train", "--resume", "--out", str(out)]) == 0

    summary = json.loads((out / "summary.json").read_text())
    assert summary["total_steps"] == TOTAL
    assert summary["resumed_from_step"] == before[-1] > 0
    steps = [c.step for c in run.checkpoints()]
    assert steps[: len(before)] == before  # the pre-kill checkpoints are kept as they were
    assert steps == sorted(set(steps)) and steps[-1] == TOTAL
    assert all(s % 50 == 0 for s in steps)
    curve_steps = [p[0] for p in summary["curve"]]
    assert curve_steps == sorted(set(curve_steps)) and curve_steps[-1] == TOTAL
    for ck in run.checkpoints():
        model = SAC.load(ck.path / "model.zip")
        assert model.num_timesteps == ck.step
        model.load_replay_buffer(ck.path / "replay_buffer.pkl")
        # Every counted step is in the buffer exactly once: the resumed run neither restarted
        # from 0 nor lost or repeated the transitions before the kill.
        assert model.replay_buffer.size() == ck.step
    assert SAC.load(out / "final" / "model.zip").num_timesteps == TOTAL
    assert run.is_finished
    commands = (out / "command.txt").read_text().splitlines()
    assert len(commands) == 2 and commands[1].endswith(f"train --resume --out {out}")


def simulate_kill(run_dir: Path, keep_until: int) -> Path:
    """Turn a finished run into what a kill after step ``keep_until`` leaves behind."""
    killed = run_dir.with_name(run_dir.name + "_killed")
    shutil.copytree(run_dir, killed)
    run = Run.open(killed)
    for ck in run.checkpoints():
        if ck.step > keep_until:
            shutil.rmtree(ck.path)
    shutil.rmtree(run.final_dir)
    run.summary_path.unlink()
    run.update_meta(status="running", end_time=None)
    return killed


def train(folder: Path, data: dict[str, Any]) -> Path:
    cfg = folder / "exp.yaml"
    cfg.write_text(yaml.safe_dump(data))
    assert main(["train", str(cfg), "--out", str(folder / "run")]) == 0
    return folder / "run"


def test_resume_on_policy(tmp_path: Path) -> None:
    data = {
        "env": {"id": "rlseek/Reacher-v0"},
        "agent": {"algo": "ppo", "params": {"n_steps": 32, "batch_size": 32, "n_epochs": 1}},
        "run": {"total_steps": 128, "eval_every": 64, "eval_episodes": 1, "checkpoint_every": 32,
                "keep_checkpoints": 10},
    }
    killed = simulate_kill(train(tmp_path, data), keep_until=64)
    assert main(["train", "--resume", "--out", str(killed)]) == 0
    s = json.loads((killed / "summary.json").read_text())
    assert s["resumed_from_step"] == 64 and s["total_steps"] == 128
    steps = [c.step for c in Run.open(killed).checkpoints()]
    assert steps == [32, 64, 96, 128]
    assert [PPO.load(c.path / "model.zip").num_timesteps for c in Run.open(killed).checkpoints()] == steps


def test_resume_sac_her_restores_the_goal_replay_buffer(tmp_path: Path) -> None:
    data = {
        "env": {"id": "rlseek/FetchReach-v0"},
        "agent": {"algo": "sac-her", "params": {"learning_starts": 100, "batch_size": 16,
                                                "policy_kwargs": {"net_arch": [16]}}},
        "run": {"total_steps": 200, "eval_every": 200, "eval_episodes": 1, "checkpoint_every": 100},
    }
    killed = simulate_kill(train(tmp_path, data), keep_until=100)
    assert main(["train", "--resume", "--out", str(killed)]) == 0
    s = json.loads((killed / "summary.json").read_text())
    assert s["resumed_from_step"] == 100 and s["total_steps"] == 200
    ck = Run.open(killed).latest_checkpoint()
    assert ck is not None and ck.step == 200
    env = DummyVecEnv([lambda: gym.make("rlseek/FetchReach-v0")])
    model = SAC.load(ck.path / "model.zip", env=env)  # a HER model needs its env to load
    model.load_replay_buffer(ck.path / "replay_buffer.pkl")
    assert isinstance(model.replay_buffer, HerReplayBuffer)
    assert model.num_timesteps == 200 and model.replay_buffer.size() == 200
    env.close()


def test_resume_when_only_the_final_evaluation_was_lost(tmp_path: Path) -> None:
    data = {
        "env": {"id": "rlseek/Reacher-v0"},
        "agent": {"algo": "sac", "params": {"learning_starts": 20, "batch_size": 8,
                                            "policy_kwargs": {"net_arch": [8]}}},
        "run": {"total_steps": 50, "eval_every": 50, "eval_episodes": 1, "checkpoint_every": 50},
    }
    run_dir = train(tmp_path, data)
    first = json.loads((run_dir / "summary.json").read_text())
    killed = simulate_kill(run_dir, keep_until=50)  # checkpoint at the end, then killed
    assert main(["train", "--resume", "--out", str(killed)]) == 0
    again = json.loads((killed / "summary.json").read_text())
    assert again["total_steps"] == 50 and again["resumed_from_step"] == 50
    assert again["eval"]["returns"] == pytest.approx(first["eval"]["returns"], rel=1e-9)
