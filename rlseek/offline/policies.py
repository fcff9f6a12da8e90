"""Behaviour policies for data collection, saved and loaded without unpickling.

Snapshots are the policy network's weights in safetensors plus a JSON note of the algorithm and
its ``policy_kwargs``; a snapshot is loaded by building a fresh stable-baselines3 model for the
env and loading the weights into it. SB3's own ``.zip`` files hold cloudpickled objects, so
:func:`load_policy` never calls ``SB3.load`` on them: it reads only the JSON ``data`` entry (for
the algorithm and plain ``policy_kwargs``) and ``policy.pth`` with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from safetensors.torch import load_file, save_file

from rlseek.errors import DataError

# Which part of the policy's state dict acts: the critics are not needed to collect data.
_ACTING_PREFIX = {"sac": "actor.", "td3": "actor.", "dqn": "q_net.", "ppo": "", "a2c": ""}
_MODULE_ALGO = {
    "stable_baselines3.sac.policies": "sac",
    "stable_baselines3.td3.policies": "td3",
    "stable_baselines3.dqn.policies": "dqn",
    "stable_baselines3.common.policies": "ppo",  # ActorCriticPolicy: PPO and A2C share it
}


def algo_class(algo: str) -> type:
    import stable_baselines3 as sb3

    classes = {"sac": sb3.SAC, "td3": sb3.TD3, "dqn": sb3.DQN, "ppo": sb3.PPO, "a2c": sb3.A2C}
    if algo not in classes:
        raise DataError(f"unsupported behaviour algorithm '{algo}'; known: {', '.join(classes)}")
    return classes[algo]


def default_algo(env: gym.Env) -> str:
    """SAC for continuous actions (D4RL's recipe), DQN for discrete ones (SAC needs a Box)."""
    return "dqn" if isinstance(env.action_space, gym.spaces.Discrete) else "sac"


def build_model(algo: str, env: gym.Env, policy_kwargs: dict[str, Any] | None = None,
                seed: int | None = None, **kwargs: Any) -> Any:
    """A fresh SB3 model for ``env`` on the CPU (small MLPs act fastest there)."""
    cls = algo_class(algo)
    extra: dict[str, Any] = dict(kwargs)
    if algo in ("sac", "td3", "dqn"):
        extra.setdefault("buffer_size", 1)
        extra.setdefault("learning_starts", 0)
    return cls("MlpPolicy", env, policy_kwargs=policy_kwargs or None, seed=seed, device="cpu", verbose=0, **extra)


@dataclass
class BehaviourPolicy:
    """An SB3 model used only to act. ``act(obs)`` samples (D4RL's stochastic behaviour);
    ``act(obs, deterministic=True)`` takes the mean/greedy action (for reference returns)."""

    algo: str
    model: Any

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        action, _ = self.model.predict(obs, deterministic=deterministic)
        return action

    def as_fn(self, deterministic: bool = False) -> Callable[[np.ndarray], np.ndarray]:
        return lambda obs: self.act(obs, deterministic=deterministic)


def acting_state(algo: str, model: Any) -> dict[str, torch.Tensor]:
    """The acting part of the policy's weights (contiguous CPU tensors)."""
    prefix = _ACTING_PREFIX[algo]
    return {k: v.detach().cpu().contiguous() for k, v in model.policy.state_dict().items() if k.startswith(prefix)}


def save_snapshot(path: str | Path, algo: str, model: Any) -> None:
    """Write the acting weights to ``path`` (.safetensors) with algo and policy_kwargs in its header."""
    kwargs = _plain_policy_kwargs(model.policy_kwargs)
    save_file(acting_state(algo, model), str(path),
              metadata={"algo": algo, "policy_kwargs": json.dumps(kwargs)})


def load_snapshot(path: str | Path, env: gym.Env) -> BehaviourPolicy:
    """Load a snapshot written by :func:`save_snapshot` into a fresh model for ``env``."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
        algo, kwargs = meta["algo"], json.loads(meta.get("policy_kwargs") or "{}")
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path}: not a readable policy snapshot ({exc})") from None
    return _with_state(algo, kwargs, state, env, str(path))


def load_policy(path: str | Path, env: gym.Env) -> BehaviourPolicy:
    """Load a behaviour policy from a snapshot (.safetensors), an SB3 .zip, or a run directory
    (its ``final/`` folder, else its newest checkpoint, holding one of those)."""
    p = Path(path)
    if p.is_dir():
        cands = sorted(p.glob("final/*.safetensors")) + sorted(p.glob("final/*.zip"))
        if not cands:
            cps = sorted(d for d in (p / "checkpoints").glob("step_*") if d.is_dir())
            for d in reversed(cps):
                cands = sorted(d.glob("*.safetensors")) + sorted(d.glob("*.zip"))
                if cands:
                    break
        if not cands:
            raise DataError(f"--policy {p}: no .safetensors or .zip policy in final/ or checkpoints/")
        p = cands[0]
    if not p.is_file():
        raise DataError(f"--policy {p}: file not found")
    if p.suffix == ".safetensors":
        return load_snapshot(p, env)
    if p.suffix == ".zip":
        return _load_sb3_zip(p, env)
    raise DataError(f"--policy {p}: expected a .safetensors snapshot, an SB3 .zip or a run directory")


def _load_sb3_zip(path: Path, env: gym.Env) -> BehaviourPolicy:
    try:
        with zipfile.ZipFile(path) as z:
            data = json.loads(z.read("data"))
            with z.open("policy.pth") as f:
                state = torch.load(f, map_location="cpu", weights_only=True)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, RuntimeError) as exc:
        raise DataError(f"--policy {path}: not a readable stable-baselines3 zip ({exc})") from None
    module = (data.get("policy_class") or {}).get("__module__", "")
    algo = _MODULE_ALGO.get(module)
    if algo is None:
        raise DataError(f"--policy {path}: unsupported policy class from module '{module}'")
    kwargs = data.get("policy_kwargs") or {}
    if ":serialized:" in kwargs:
        raise DataError(
            f"--policy {path}: its policy_kwargs are pickled (custom classes); "
            "they are not loaded for safety — save a snapshot with plain policy_kwargs instead"
        )
    return _with_state(algo, kwargs, state, env, str(path))


def _with_state(algo: str, kwargs: dict[str, Any], state: dict[str, torch.Tensor], env: gym.Env,
                source: str) -> BehaviourPolicy:
    kwargs = {k: v for k, v in kwargs.items() if k != "device"}
    try:
        model = build_model(algo, env, policy_kwargs=kwargs)
    except (ValueError, TypeError, AssertionError) as exc:
        raise DataError(f"{source}: cannot build a {algo} policy for this env ({exc})") from None
    prefix = _ACTING_PREFIX[algo]
    own = {k for k in model.policy.state_dict() if k.startswith(prefix)}
    missing = own - set(state)
    try:
        model.policy.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise DataError(f"{source}: policy weights do not fit this env's spaces ({str(exc).splitlines()[0]})") from None
    if missing:
        raise DataError(f"{source}: policy weights lack {len(missing)} tensors, e.g. '{sorted(missing)[0]}'")
    if algo == "dqn":
        # D4RL-style stochastic behaviour for DQN is epsilon-greedy at its final exploration rate.
        model.exploration_rate = float(model.exploration_final_eps)
    model.policy.set_training_mode(False)
    return BehaviourPolicy(algo, model)


def _plain_policy_kwargs(kwargs: dict[str, Any] | None) -> dict[str, Any]:
    out = {}
    for k, v in (kwargs or {}).items():
        try:
            json.dumps(v)
        except TypeError:
            raise DataError(f"policy_kwargs['{k}'] is not JSON-serializable; snapshots keep plain kwargs only") from None
        out[k] = v
    return out
