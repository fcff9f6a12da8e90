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
import numpy as np
import pytest
import yaml
from stable_baselines3 import PPO, SAC, HerReplayBuffer
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.vec_env import DummyVecEnv

from rlseek.agents.sb3_replay import load_replay_buffer, save_replay_buffer
from rlseek.cli import main
from rlseek.errors import RlseekError
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
        load_replay_buffer(model.replay_buffer, ck.path / "replay_buffer.npz")
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
    load_replay_buffer(model.replay_buffer, ck.path / "replay_buffer.npz")
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


def fill(buffer: Any, n: int, rng: np.random.Generator) -> None:
    space = buffer.observation_space
    for _ in range(n):
        def obs() -> Any:
            if isinstance(space, gym.spaces.Dict):
                return {k: rng.normal(size=(buffer.n_envs, *s.shape)).astype(np.float32)
                        for k, s in space.spaces.items()}
            return rng.normal(size=(buffer.n_envs, *space.shape)).astype(np.float32)

        buffer.add(obs(), obs(), rng.uniform(-1, 1, (buffer.n_envs, 2)).astype(np.float32),
                   rng.normal(size=buffer.n_envs), rng.uniform(size=buffer.n_envs) < 0.1,
                   [{"TimeLimit.truncated": False}] * buffer.n_envs)


@pytest.mark.parametrize(
    ("dict_obs", "n_envs", "steps", "optimize"),
    [(False, 1, 7, False), (False, 2, 25, False), (True, 2, 5, False), (False, 1, 13, True)],
)
def test_replay_buffer_npz_round_trip(tmp_path: Path, dict_obs: bool, n_envs: int, steps: int,
                                      optimize: bool) -> None:
    box = gym.spaces.Box(-1, 1, (3,), np.float32)
    obs_space = gym.spaces.Dict({"observation": box, "desired_goal": box}) if dict_obs else box
    act_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    cls = DictReplayBuffer if dict_obs else ReplayBuffer
    kwargs = {"optimize_memory_usage": True, "handle_timeout_termination": False} if optimize else {}
    # 10 rows: the 25-step case wraps around and leaves a full buffer.
    src = cls(10, obs_space, act_space, n_envs=n_envs, **kwargs)
    fill(src, steps, np.random.default_rng(0))
    save_replay_buffer(src, tmp_path / "rb.npz")
    if not src.full:  # only filled rows are written
        assert np.load(tmp_path / "rb.npz")["actions"].shape[0] == src.pos
    dst = cls(10, obs_space, act_space, n_envs=n_envs, **kwargs)
    load_replay_buffer(dst, tmp_path / "rb.npz")
    assert (dst.pos, dst.full, dst.size()) == (src.pos, src.full, src.size())
    n = src.size()
    for name in ("observations", "actions", "rewards", "timeouts") + (() if optimize else ("next_observations",)):
        a, b = getattr(src, name), getattr(dst, name)
        pairs = [(a[k], b[k]) for k in a] if isinstance(a, dict) else [(a, b)]
        for x, y in pairs:
            np.testing.assert_array_equal(x[:n], y[:n])
    last = (src.pos - 1) % src.buffer_size
    np.testing.assert_array_equal(np.delete(src.dones, last, 0), np.delete(dst.dones, last, 0))
    if optimize:  # the unfinished last transition is closed, as SB3 does
        assert dst.dones[last].all()
    small = cls(5, obs_space, act_space, n_envs=n_envs, **kwargs)
    with pytest.raises(RlseekError, match="does not fit"):
        load_replay_buffer(small, tmp_path / "rb.npz")
