"""The behaviour policies of D4RL's recipe, trained once per env and cached.

One SAC run (DQN for discrete actions) yields everything: its final policy is the *expert*;
policy snapshots taken every ``eval_every`` steps, each with its measured return, give the
*medium* policy (the first snapshot that reaches a third of the way from the random to the
expert return); its replay buffer up to that snapshot is *medium-replay*. The reference returns
for normalized scores are measured here too, over ``reference_episodes`` episodes each: uniform
random actions, and the expert acting deterministically.

The cache folder (``policy_dir/<env>-<algo>-s<seed>-<steps>/``) holds only safe formats:
``behaviour.json``, ``snapshots/*.safetensors`` and ``replay.h5``.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import h5py
import numpy as np
import torch

from rlseek.errors import DataError
from rlseek.evaluation import evaluate_episodes
from rlseek.offline.dataset import END_CUT, END_TERMINATED, END_TIME_LIMIT, EpisodeData
from rlseek.offline.policies import (
    BehaviourPolicy,
    build_model,
    default_algo,
    load_snapshot,
    save_snapshot,
)
from rlseek.runs import atomic_directory, atomic_write_json

INDEX = "behaviour.json"
REFERENCE_SEED = 1_000_000
"""Reset seeds of the reference episodes start here, far from collection and evaluation seeds."""
SNAPSHOT_EVAL_SEED = 2_000_000


@dataclass
class BehaviourCache:
    """A trained behaviour run on disk (see the module docstring)."""

    path: Path
    index: dict[str, Any]

    @property
    def references(self) -> dict[str, Any]:
        return self.index["reference"]

    def policy(self, which: str, env: gym.Env) -> BehaviourPolicy:
        """``which`` is 'expert' or 'medium'."""
        return load_snapshot(self.path / self.index[which]["file"], env)

    def replay_episodes(self, until_step: int) -> list[EpisodeData]:
        """The replay buffer's first ``until_step`` transitions as episodes."""
        with h5py.File(self.path / "replay.h5", "r") as h5:
            arrays = {k: h5[k][:until_step] for k in h5}
        return replay_to_episodes(arrays)


def cache_key(env_id: str, env_kwargs: dict[str, Any], algo: str, seed: int, steps: int) -> str:
    slug = env_id.replace("/", "_").replace(":", "_")
    kw = hashlib.sha256(json.dumps(env_kwargs, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{slug}-{algo}-s{seed}-{steps}" + (f"-{kw}" if env_kwargs else "")


def load_or_train(
    env_id: str,
    policy_dir: str | Path,
    *,
    env_kwargs: dict[str, Any] | None = None,
    steps: int = 30_000,
    seed: int = 0,
    eval_every: int = 1_000,
    eval_episodes: int = 10,
    reference_episodes: int = 100,
    progress: bool = False,
) -> BehaviourCache:
    """Reuse the cached behaviour run for these settings, or train and cache it."""
    env_kwargs = dict(env_kwargs or {})
    probe = gym.make(env_id, **env_kwargs)
    algo = default_algo(probe)
    probe.close()
    folder = Path(policy_dir) / cache_key(env_id, env_kwargs, algo, seed, steps)
    if (folder / INDEX).is_file():
        index = json.loads((folder / INDEX).read_text())
        if index.get("reference", {}).get("episodes", 0) >= reference_episodes:
            return BehaviourCache(folder, index)
    with atomic_directory(folder) as tmp:
        index = _train(env_id, env_kwargs, algo, steps, seed, eval_every, eval_episodes,
                       reference_episodes, tmp, progress)
        atomic_write_json(tmp / INDEX, index)
    return BehaviourCache(folder, index)


def _train(env_id: str, env_kwargs: dict[str, Any], algo: str, steps: int, seed: int, eval_every: int,
           eval_episodes: int, reference_episodes: int, out: Path, progress: bool) -> dict[str, Any]:
    from stable_baselines3.common.callbacks import BaseCallback

    if steps < 1 or eval_every < 1:
        raise DataError(f"behaviour training needs steps >= 1 and eval_every >= 1, got {steps}, {eval_every}")
    env, eval_env = gym.make(env_id, **env_kwargs), gym.make(env_id, **env_kwargs)
    kw: dict[str, Any] = {"buffer_size": steps + 1, "learning_starts": min(1000, max(100, steps // 10))}
    if algo == "dqn":
        kw["exploration_fraction"] = 0.2
    model = build_model(algo, env, seed=seed, **kw)
    (out / "snapshots").mkdir()
    snapshots: list[dict[str, Any]] = []

    def snapshot(step: int) -> None:
        name = f"snapshots/step_{step:09d}.safetensors"
        save_snapshot(out / name, algo, model)
        torch.manual_seed(SNAPSHOT_EVAL_SEED + step)
        pol = BehaviourPolicy(algo, model)
        res = evaluate_episodes(eval_env, pol.as_fn(deterministic=False), eval_episodes, seed=SNAPSHOT_EVAL_SEED)
        snapshots.append({"step": step, "file": name, "return_mean": float(np.mean(res.returns)),
                          "return_std": float(np.std(res.returns)), "episodes": eval_episodes})

    class Snapshots(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % eval_every == 0:
                snapshot(self.num_timesteps)
            return True

    t0 = time.perf_counter()
    model.learn(total_timesteps=steps, callback=Snapshots(), progress_bar=progress)
    train_seconds = time.perf_counter() - t0
    if not snapshots or snapshots[-1]["step"] != steps:
        snapshot(steps)
    _save_replay(model, out / "replay.h5")

    expert = BehaviourPolicy(algo, model)
    rnd = _random_returns(eval_env, reference_episodes)
    exp = evaluate_episodes(eval_env, expert.as_fn(deterministic=True), reference_episodes, seed=REFERENCE_SEED)
    ref = {"random_return": float(np.mean(rnd)), "random_std": float(np.std(rnd)),
           "expert_return": float(np.mean(exp.returns)), "expert_std": float(np.std(exp.returns)),
           "episodes": reference_episodes, "seed": REFERENCE_SEED,
           "expert_policy": f"{algo} after {steps} steps, deterministic actions",
           "random_policy": "uniform random actions (action_space.sample)"}
    target = ref["random_return"] + (ref["expert_return"] - ref["random_return"]) / 3.0
    medium = next((s for s in snapshots if s["return_mean"] >= target), snapshots[-1])
    env.close()
    eval_env.close()
    return {
        "env_id": env_id, "env_kwargs": env_kwargs, "algo": algo, "seed": seed, "steps": steps,
        "hyperparameters": {**kw, "policy_kwargs": model.policy_kwargs or {}},
        "train_seconds": train_seconds, "eval_every": eval_every, "snapshots": snapshots,
        "expert": {"step": steps, "file": snapshots[-1]["file"]},
        "medium": {**medium, "target_return": target,
                   "rule": "first snapshot whose stochastic return >= random + (expert - random) / 3"},
        "reference": ref,
        "versions": _versions(),
    }


def _random_returns(env: gym.Env, episodes: int) -> list[float]:
    env.action_space.seed(REFERENCE_SEED)
    res = evaluate_episodes(env, lambda _obs: env.action_space.sample(), episodes, seed=REFERENCE_SEED)
    return res.returns


def _save_replay(model: Any, path: Path) -> None:
    """The SB3 replay buffer in time order, actions mapped back to env units."""
    buf = model.replay_buffer
    n = buf.buffer_size if buf.full else buf.pos
    acts = buf.actions[:n, 0]
    if isinstance(model.action_space, gym.spaces.Box):
        # SB3 stores actions rescaled to [-1, 1]; the dataset holds what the env received.
        acts = model.policy.unscale_action(acts)
    with h5py.File(path, "w") as h5:
        h5["observations"] = buf.observations[:n, 0]
        h5["next_observations"] = buf.next_observations[:n, 0]
        h5["actions"] = acts
        h5["rewards"] = buf.rewards[:n, 0]
        h5["dones"] = buf.dones[:n, 0].astype(bool)
        h5["timeouts"] = buf.timeouts[:n, 0].astype(bool)


def replay_to_episodes(a: dict[str, np.ndarray]) -> list[EpisodeData]:
    """Split time-ordered replay arrays at their done flags. ``dones & ~timeouts`` are
    terminals; ``timeouts`` are time-limit truncations; an episode the buffer ends in is cut."""
    episodes: list[EpisodeData] = []
    n = len(a["rewards"])
    start = 0
    discrete = np.issubdtype(a["actions"].dtype, np.integer)
    for t in range(n):
        last = t == n - 1
        if not (a["dones"][t] or last):
            if not np.array_equal(a["next_observations"][t], a["observations"][t + 1]):
                raise DataError(f"replay buffer is not time-ordered at step {t}")
            continue
        obs = np.concatenate([a["observations"][start:t + 1], a["next_observations"][t:t + 1]])
        acts = a["actions"][start:t + 1]
        acts = acts.reshape(-1).astype(np.int64) if discrete else acts.astype(np.float32)
        if a["dones"][t]:
            end = END_TIME_LIMIT if a["timeouts"][t] else END_TERMINATED
        else:
            end = END_CUT
        episodes.append(EpisodeData(obs.astype(np.float32), acts, a["rewards"][start:t + 1].astype(np.float32), end))
        start = t + 1
    return episodes


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for pkg in ("rlseek", "gymnasium", "mujoco", "stable-baselines3", "d3rlpy", "torch"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            continue
    return out
