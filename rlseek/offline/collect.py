"""Collect D4RL-style offline datasets.

Kinds (D4RL's recipe, with our env versions):

* ``random``: uniform random actions;
* ``expert``: the fully trained SAC policy, actions *sampled* (stochastic), as in D4RL;
* ``medium``: the SAC snapshot at about a third of the expert's return, actions sampled;
* ``medium-replay``: SAC's replay buffer up to that snapshot (whole buffer; ``steps`` caps it,
  keeping the newest whole episodes);
* ``medium-expert``: ``steps`` medium transitions followed by ``steps`` expert ones (2·steps);
* ``policy``: a given policy checkpoint (``policy=``), actions sampled.

Rollouts take exactly ``steps`` transitions; episode ``k`` is reset with seed ``seed + k`` and
the last episode, cut by the budget, is flagged as a timeout (as D4RL's ``timeouts``). The SAC
run is cached in ``policy_dir`` (see :mod:`rlseek.offline.behaviour`), so collecting several
kinds trains it once.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlseek.errors import DataError, RlseekError, did_you_mean
from rlseek.offline.behaviour import BehaviourCache, load_or_train
from rlseek.offline.dataset import (
    END_CUT,
    END_TERMINATED,
    END_TIME_LIMIT,
    EpisodeData,
    OfflineDataset,
    normalized_score,
    space_to_dict,
    write_dataset,
)
from rlseek.offline.policies import load_policy

KINDS = ("random", "medium", "medium-replay", "expert", "medium-expert", "policy")


@dataclass
class CollectSettings:
    """How the behaviour SAC is trained (its cache key includes steps and seed)."""

    expert_steps: int = 30_000
    expert_seed: int = 0
    eval_every: int = 1_000
    eval_episodes: int = 10
    reference_episodes: int = 100


def rollout(env: gym.Env, policy: Callable[[np.ndarray], Any], steps: int, seed: int) -> list[EpisodeData]:
    """Exactly ``steps`` transitions of ``policy`` in ``env``; see the module docstring."""
    episodes: list[EpisodeData] = []
    done_steps, k = 0, 0
    while done_steps < steps:
        obs, _ = env.reset(seed=seed + k)
        observations, actions, rewards = [np.asarray(obs, dtype=np.float32)], [], []
        end = END_CUT
        while done_steps < steps:
            action = policy(obs)
            obs, reward, terminated, truncated, _ = env.step(action)
            observations.append(np.asarray(obs, dtype=np.float32))
            actions.append(action)
            rewards.append(float(reward))
            done_steps += 1
            if terminated or truncated:
                end = END_TERMINATED if terminated else END_TIME_LIMIT
                break
        acts = np.asarray(actions)
        acts = acts.astype(np.int64).reshape(-1) if isinstance(env.action_space, gym.spaces.Discrete) \
            else acts.astype(np.float32).reshape(len(actions), *env.action_space.shape)
        episodes.append(EpisodeData(np.stack(observations), acts, np.asarray(rewards, dtype=np.float32), end))
        k += 1
    return episodes


def collect(
    env_id: str,
    kind: str,
    steps: int,
    out: str | Path,
    *,
    seed: int = 0,
    policy: str | Path | None = None,
    policy_dir: str | Path | None = None,
    env_kwargs: dict[str, Any] | None = None,
    settings: CollectSettings | None = None,
    progress: bool = False,
) -> OfflineDataset:
    """Collect a dataset of ``kind`` and write it to ``out`` (HDF5); returns it.

    Args:
        env_id: a registered Gymnasium id (rlseek ids included).
        kind: one of :data:`KINDS`.
        steps: transitions to collect (per part for medium-expert; a cap for medium-replay).
        out: the dataset file to write; an existing file is refused.
        seed: base reset seed of the rollouts and seed of the policy's action sampling.
        policy: checkpoint for ``kind='policy'`` (snapshot, SB3 zip or run directory).
        policy_dir: cache of the behaviour SAC run (default: ``policies/`` next to ``out``).
        env_kwargs: make-kwargs of the env (e.g. reward weights).
        settings: behaviour training settings.
    """
    settings = settings or CollectSettings()
    env_kwargs = dict(env_kwargs or {})
    out = Path(out)
    _check_args(env_id, kind, steps, out, policy)
    env = gym.make(env_id, **env_kwargs)
    spaces = {"observation_space": space_to_dict(env.observation_space),
              "action_space": space_to_dict(env.action_space)}
    cache = load_or_train(
        env_id, policy_dir or out.parent / "policies", env_kwargs=env_kwargs,
        steps=settings.expert_steps, seed=settings.expert_seed, eval_every=settings.eval_every,
        eval_episodes=settings.eval_episodes, reference_episodes=settings.reference_episodes,
        progress=progress,
    )
    source: dict[str, Any]
    if kind == "random":
        env.action_space.seed(seed)
        episodes = rollout(env, lambda _obs: env.action_space.sample(), steps, seed)
        source = {"policy": "uniform random actions"}
    elif kind in ("expert", "medium"):
        episodes = _sampled(cache.policy(kind, env), env, steps, seed)
        source = {"policy": f"{cache.index['algo']} {kind} snapshot, sampled actions", **_snap(cache, kind)}
    elif kind == "medium-expert":
        episodes = _sampled(cache.policy("medium", env), env, steps, seed)
        episodes += _sampled(cache.policy("expert", env), env, steps, seed + len(episodes))
        source = {"policy": "medium then expert, sampled actions",
                  "medium": _snap(cache, "medium"), "expert": _snap(cache, "expert")}
    elif kind == "medium-replay":
        episodes = _newest(cache.replay_episodes(int(cache.index["medium"]["step"])), steps)
        source = {"policy": f"{cache.index['algo']} replay buffer up to the medium snapshot", **_snap(cache, "medium")}
    else:
        episodes = _sampled(load_policy(policy, env), env, steps, seed)  # type: ignore[arg-type]
        source = {"policy": f"checkpoint {policy}, sampled actions"}
    env_version = env.spec.version if env.spec is not None else None
    env.close()
    ds = OfflineDataset(episodes, {})
    ref = cache.references
    rets = ds.complete_returns()
    norm = normalized_score(rets, ref["random_return"], ref["expert_return"])
    ds.metadata = {
        "env_id": env_id, "env_version": env_version, "env_kwargs": env_kwargs, "kind": kind,
        "steps": steps, "seed": seed, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "source": source,
        "behaviour": {"episodes": int(rets.size),
                      "mean_return": float(rets.mean()) if rets.size else None,
                      "std_return": float(rets.std()) if rets.size else None,
                      "normalized_mean": float(norm.mean()) if norm is not None and rets.size else None},
        "reference": ref,
        "behaviour_run": {"algo": cache.index["algo"], "steps": cache.index["steps"], "seed": cache.index["seed"],
                          "cache": str(cache.path)},
        **spaces,
        "n_terminals": int(sum(e.end == END_TERMINATED for e in episodes)),
        "n_timeouts": int(sum(e.end != END_TERMINATED for e in episodes)),
        "versions": cache.index.get("versions", {}),
    }
    write_dataset(out, ds)
    return ds


def _check_args(env_id: str, kind: str, steps: int, out: Path, policy: Any) -> None:
    if kind not in KINDS:
        raise RlseekError(f"unknown dataset kind '{kind}'{did_you_mean(kind, KINDS)}; kinds: {', '.join(KINDS)}")
    if steps < 1:
        raise RlseekError(f"--steps must be >= 1, got {steps}")
    if (kind == "policy") != (policy is not None):
        raise RlseekError("--kind policy needs --policy CKPT, and --policy needs --kind policy")
    if out.exists():
        raise RlseekError(f"--out {out} exists; datasets are never overwritten — choose a new path")
    from rlseek.envs.factory import check_env_id

    check_env_id(env_id)


def _sampled(policy: Any, env: gym.Env, steps: int, seed: int) -> list[EpisodeData]:
    # Action sampling draws from torch (SAC, PPO) and NumPy (DQN's epsilon): seed both.
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    return rollout(env, policy.as_fn(deterministic=False), steps, seed)


def _snap(cache: BehaviourCache, which: str) -> dict[str, Any]:
    info = cache.index[which]
    snap = next((s for s in cache.index["snapshots"] if s["file"] == info["file"]), {})
    return {"snapshot_step": info["step"], "snapshot_return": snap.get("return_mean")}


def _newest(episodes: list[EpisodeData], steps: int) -> list[EpisodeData]:
    """The newest whole episodes totalling at most ``steps`` transitions (at least one)."""
    kept: list[EpisodeData] = []
    total = 0
    for e in reversed(episodes):
        if kept and total + len(e) > steps:
            break
        kept.append(e)
        total += len(e)
    if not kept:
        raise DataError("the replay buffer is empty")
    return kept[::-1]
