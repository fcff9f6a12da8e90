"""Every registered rlseek env passes the same checks (one parametrized test over the registry).

For each id in ``rlseek.envs.rlseek_env_ids()``: Gymnasium's ``check_env``, SB3's
``check_env``, same-seed determinism and a pickle round-trip. An env that cannot be made with
its registered defaults fails here; nothing is skipped.
"""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.utils.env_checker import data_equivalence
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import rlseek
from rlseek.envs import rlseek_env_ids

N_STEPS = 12


def _rollout(env: gym.Env, seed: int, n_steps: int) -> list:
    """reset(seed) then n_steps steps with actions from a seeded action space; resets (without
    a seed) when an episode ends, so the env's own RNG carries on."""
    env.action_space.seed(seed)
    out = [env.reset(seed=seed)]
    for _ in range(n_steps):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        out.append((obs, float(reward), terminated, truncated, info))
        if terminated or truncated:
            out.append(env.reset())
    return out


def _assert_same(a: list, b: list, what: str) -> None:
    assert len(a) == len(b), what
    for i, (x, y) in enumerate(zip(a, b)):
        assert data_equivalence(x, y, exact=True), f"{what}: differs at record {i}: {x!r} != {y!r}"


def test_registry_lists_robot_envs() -> None:
    ids = rlseek_env_ids()
    for task in ("Reacher", "Pusher", "Hopper", "HalfCheetah", "Walker2d", "FetchReach", "FetchPush"):
        assert f"rlseek/{task}-v0" in ids
    assert all(i in gym.registry for i in ids)
    assert rlseek.__version__


@pytest.mark.parametrize("env_id", rlseek_env_ids())
def test_env_passes_checks(env_id: str) -> None:
    with warnings.catch_warnings():
        # The checkers warn about unbounded Box observations and similar native traits.
        warnings.simplefilter("ignore")
        # Checkers get the bare env: SB3's checker calls env.compute_reward() directly, which
        # Gymnasium wrappers do not forward. Rendering is skipped: the test machine has no
        # display (the "human" mode needs a window).
        gym_check_env(gym.make(env_id).unwrapped, skip_render_check=True)
        sb3_check_env(gym.make(env_id).unwrapped, warn=False)

    # Same seed, same actions => identical observations, rewards, flags and infos.
    env_a, env_b = gym.make(env_id), gym.make(env_id)
    _assert_same(_rollout(env_a, 7, N_STEPS), _rollout(env_b, 7, N_STEPS), "determinism")

    # A pickled copy steps exactly like the original (after the same seeded reset).
    copy = pickle.loads(pickle.dumps(env_a))
    _assert_same(_rollout(env_a, 11, N_STEPS), _rollout(copy, 11, N_STEPS), "pickle round-trip")
    for env in (env_a, env_b, copy):
        env.close()
