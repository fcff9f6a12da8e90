"""Small trained runs for the serving tests, trained once per test process through the public
API (``rlseek.train``): a Reacher SAC policy, an Arithmetic lm-ppo policy, and deliberately
worse copies of both (their final weights perturbed with seeded noise) for canary rollback."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np

import rlseek

ROOT = Path(__file__).resolve().parent.parent

REACHER_OVERRIDES = [
    "run.total_steps=200", "agent.params.learning_starts=100", "agent.params.batch_size=32",
    "agent.params.buffer_size=200", "agent.params.policy_kwargs={net_arch: [32, 32]}",
    "run.eval_episodes=1", "run.eval_every=200", "run.checkpoint_every=200", "run.seed=0",
]
ARITH_OVERRIDES = ["run.total_steps=8", "run.n_envs=8", "run.eval_episodes=8", "run.eval_every=0",
                   "run.checkpoint_every=8"]


@functools.lru_cache(maxsize=1)
def _root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="rlseek-serve-runs-"))
    atexit.register(shutil.rmtree, root, True)
    return root


@functools.cache
def reacher_run() -> Path:
    """A finished Reacher SAC run (200 env steps, a 32x32 actor)."""
    return rlseek.train(ROOT / "examples/configs/reacher_sac.yaml", out=_root() / "reacher",
                        overrides=REACHER_OVERRIDES).path


@functools.cache
def arith_run() -> Path:
    """A finished Arithmetic lm-ppo run of the tiny LM (one iteration of 8 completions)."""
    return rlseek.train(ROOT / "examples/configs/arithmetic_lm_ppo.yaml", out=_root() / "arith",
                        overrides=ARITH_OVERRIDES).path


@functools.cache
def worse_arith_run() -> Path:
    """A copy of :func:`arith_run` whose final LM weights carry large seeded noise."""
    from safetensors.numpy import load_file, save_file

    out = _root() / "arith-worse"
    shutil.copytree(arith_run(), out)
    path = out / "final" / "model.safetensors"
    rng = np.random.default_rng(0)
    weights = {k: (v + rng.normal(0.0, 3.0 * (float(v.std()) or 1.0), v.shape)).astype(v.dtype)
               for k, v in load_file(path).items()}
    save_file(weights, path, metadata={"format": "pt"})
    return out


@functools.cache
def worse_reacher_run() -> Path:
    """A copy of :func:`reacher_run` whose actor outputs the largest action in every joint."""
    import torch
    from stable_baselines3 import SAC

    out = _root() / "reacher-worse"
    shutil.copytree(reacher_run(), out)
    model = SAC.load(out / "final" / "model.zip", device="cpu")
    with torch.no_grad():
        model.policy.actor.mu.weight.zero_()
        model.policy.actor.mu.bias.fill_(5.0)
    model.save(out / "final" / "model.zip")
    return out
