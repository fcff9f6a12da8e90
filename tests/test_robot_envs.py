"""Robot envs: native reward reproduced at default weights, weighted terms, errors."""

from __future__ import annotations

import inspect
import pickle
import subprocess
import sys

import gymnasium as gym
import gymnasium_robotics
import numpy as np
import pytest

import rlseek  # noqa: F401  (registers the envs)
from rlseek.envs.robot.specs import SPECS
from rlseek.errors import RlseekError
from rlseek.rewards import WeightedReward

gym.register_envs(gymnasium_robotics)

NATIVE = {spec["id"]: spec["native"] for spec in SPECS}
ROBOT_IDS = sorted(NATIVE)
# Walkers whose random-action episodes end by termination: the equality check must cover
# terminal steps.
TERMINATING = {"rlseek/Hopper-v0", "rlseek/Walker2d-v0"}


def _same_obs(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    return np.array_equal(a, b)


def _lockstep(env_id: str, native_id: str, seeds=(0, 1, 2), steps=150, **kwargs):
    """Step an rlseek env and its native env with the same seeds and actions.

    Yields (our step tuple, native step tuple) per step; resets both when an episode ends.
    """
    ours, native = gym.make(env_id, **kwargs), gym.make(native_id)
    for seed in seeds:
        o1, _ = ours.reset(seed=seed)
        o2, _ = native.reset(seed=seed)
        assert _same_obs(o1, o2)
        ours.action_space.seed(seed)
        for _ in range(steps):
            action = ours.action_space.sample()
            r1, r2 = ours.step(action), native.step(action)
            assert _same_obs(r1[0], r2[0])
            yield r1, r2
            if r1[2] or r1[3]:
                assert _same_obs(ours.reset()[0], native.reset()[0])


def test_episode_lengths_match_native() -> None:
    for env_id, native_id in NATIVE.items():
        assert gym.spec(env_id).max_episode_steps == gym.spec(native_id).max_episode_steps


@pytest.mark.parametrize("env_id", ROBOT_IDS)
def test_default_weights_reproduce_native_reward(env_id: str) -> None:
    n_steps = terminal_steps = 0
    for (_, r1, term1, trunc1, info), (_, r2, term2, trunc2, _) in _lockstep(env_id, NATIVE[env_id]):
        assert abs(r1 - float(r2)) < 1e-6
        assert (term1, trunc1) == (term2, trunc2)
        assert info["reward_total"] == r1
        n_steps += 1
        terminal_steps += bool(term1)
    assert n_steps >= 450
    if env_id in TERMINATING:
        assert terminal_steps >= 3


@pytest.mark.parametrize("env_id", ROBOT_IDS)
def test_custom_weights_sum_terms(env_id: str) -> None:
    defaults = gym.make(env_id).unwrapped.default_reward
    # Different weight per term, one of them zero: the term is still reported.
    weights = {name: 0.37 * (i + 1) for i, name in enumerate(defaults)}
    weights[next(iter(weights))] = 0.0
    if "goal_sparse" in weights:
        weights["goal_distance"] = 2.5  # Fetch: the dense term joins the sparse one
    for (_, r, _, _, info), (_, r_native, _, _, _) in _lockstep(
        env_id, NATIVE[env_id], seeds=(3,), steps=60, reward=weights
    ):
        values = {name: info[f"reward_{name}"] for name in weights}
        assert r == pytest.approx(sum(w * values[n] for n, w in weights.items()), abs=1e-12)
        assert info["reward_total"] == r
        default_total = sum(w * values[n] for n, w in defaults.items())
        assert default_total == pytest.approx(float(r_native), abs=1e-6)


def test_weighted_reward_is_exposed() -> None:
    env = gym.make("rlseek/Reacher-v0", reward={"distance": 1.0, "control": 0.1})
    rf = env.get_wrapper_attr("reward_fn")
    assert isinstance(rf, WeightedReward)
    assert rf is env.unwrapped.reward_fn
    assert rf.weights == {"distance": 1.0, "control": 0.1}
    for spec in SPECS:
        cls = gym.make(spec["id"]).unwrapped
        assert cls.default_reward == spec["default_reward"]
        assert gym.make(spec["id"]).unwrapped.reward_fn.weights == spec["default_reward"]


def test_reward_params_reach_the_term() -> None:
    # A 1 m threshold counts every position on the table as reached: the sparse reward is 0.
    env = gym.make("rlseek/FetchPush-v0", reward_params={"goal_sparse": {"distance_threshold": 1.0}})
    env.reset(seed=0)
    rewards = [env.step(env.action_space.sample())[1] for _ in range(5)]
    assert rewards == [0.0] * 5


def test_unknown_term_suggests_a_name() -> None:
    with pytest.raises(RlseekError, match=r"unknown reward term 'distanse'.*did you mean 'distance'"):
        gym.make("rlseek/Reacher-v0", reward={"distanse": 1.0})


def test_text_term_is_rejected_for_robot_env() -> None:
    with pytest.raises(RlseekError, match="'accuracy' is a text term"):
        gym.make("rlseek/Reacher-v0", reward={"accuracy": 1.0})


@pytest.mark.parametrize(
    "weights, message",
    [
        ({"distance": float("nan")}, "must be finite"),
        ({"distance": float("inf"), "control": 1.0}, "must be finite"),
        ({"distance": 0.0, "control": 0.0}, "all zero"),
        ({}, "non-empty"),
        ({"distance": "high"}, "must be a number"),
    ],
)
def test_bad_weights_are_rejected(weights, message) -> None:
    with pytest.raises(RlseekError, match=message):
        gym.make("rlseek/Reacher-v0", reward=weights)


@pytest.mark.parametrize(
    "env_id, kwarg, term",
    [
        ("rlseek/Reacher-v0", "reward_dist_weight", "distance"),
        ("rlseek/Pusher-v0", "reward_near_weight", "near"),
        ("rlseek/Hopper-v0", "healthy_reward", "healthy"),
        ("rlseek/HalfCheetah-v0", "ctrl_cost_weight", "control"),
        ("rlseek/Walker2d-v0", "forward_reward_weight", "forward"),
        ("rlseek/FetchReach-v0", "reward_type", "goal_distance"),
    ],
)
def test_native_weight_kwargs_point_to_reward(env_id: str, kwarg: str, term: str) -> None:
    value = "dense" if kwarg == "reward_type" else 2.0
    with pytest.raises(RlseekError, match=rf"reward=.*'{kwarg}'.*{term}"):
        gym.make(env_id, **{kwarg: value})


def test_term_the_env_cannot_feed_is_rejected() -> None:
    with pytest.raises(RlseekError, match=r"'healthy' reads \['is_healthy'\].*forward"):
        gym.make("rlseek/HalfCheetah-v0", reward={"forward": 1.0, "healthy": 1.0})
    with pytest.raises(RlseekError, match="goal_sparse"):
        gym.make("rlseek/Reacher-v0", reward={"goal_sparse": 1.0})


def test_native_physics_kwargs_pass_through() -> None:
    env = gym.make("rlseek/Hopper-v0", terminate_when_unhealthy=False, healthy_z_range=(2.0, 3.0))
    env.reset(seed=0)
    _, r, terminated, _, info = env.step(np.zeros(3, dtype=np.float32))
    assert not terminated and info["is_healthy"] is False and info["reward_healthy"] == 0.0


def test_fetch_compute_reward_matches_steps_vectorized() -> None:
    weights = {"goal_sparse": 1.0, "goal_distance": 0.5, "control": 0.0}
    env = gym.make("rlseek/FetchReach-v0", reward=weights)
    obs, _ = env.reset(seed=0)
    achieved, desired, infos, rewards = [], [], [], []
    for _ in range(20):
        obs, r, _, _, info = env.step(env.action_space.sample())
        achieved.append(obs["achieved_goal"])
        desired.append(obs["desired_goal"])
        infos.append(info)
        rewards.append(r)
    compute = env.get_wrapper_attr("compute_reward")
    batch = compute(np.array(achieved), np.array(desired), np.array(infos))
    assert batch.shape == (20,)
    np.testing.assert_array_equal(batch, rewards)
    assert compute(achieved[0], desired[0], infos[0]) == rewards[0]
    # Relabelled goal = achieved goal: reached, so only the zero-distance part remains.
    np.testing.assert_array_equal(compute(np.array(achieved), np.array(achieved), infos), 0.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"reward": {"goal_sparse": 1.0, "control": 0.1}}, "term 'control' has weight 0.1"),
        ({"normalize_reward": True}, "normalize_reward"),
    ],
)
def test_fetch_compute_reward_refuses_what_her_cannot_relabel(kwargs, message) -> None:
    env = gym.make("rlseek/FetchReach-v0", **kwargs)
    obs, _ = env.reset(seed=0)
    env.step(env.action_space.sample())  # stepping itself works
    with pytest.raises(RlseekError, match=message):
        env.get_wrapper_attr("compute_reward")(obs["achieved_goal"], obs["desired_goal"], {})


def test_sac_her_trains_on_fetch() -> None:
    from stable_baselines3 import SAC, HerReplayBuffer

    env = gym.make("rlseek/FetchReach-v0", reward={"goal_distance": 1.0})
    model = SAC(
        "MultiInputPolicy",
        env,
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs={"n_sampled_goal": 4, "goal_selection_strategy": "future"},
        learning_starts=100,
        batch_size=16,
        policy_kwargs={"net_arch": [16, 16]},
        seed=0,
    )
    model.learn(130)  # HER samples relabelled goals through compute_reward in every update
    assert model.replay_buffer.size() > 0


def test_normalized_reward_reports_raw_terms_and_pickles_its_statistics() -> None:
    env = gym.make("rlseek/Reacher-v0", normalize_reward=True)
    env.reset(seed=0)
    for _ in range(30):
        _, r, _, _, info = env.step(env.action_space.sample())
    assert info["reward_distance"] <= 0.0 and info["reward_control"] <= 0.0
    rf = env.unwrapped.reward_fn
    assert rf.stats["distance"].count == 30
    copy = pickle.loads(pickle.dumps(env))
    assert copy.unwrapped.reward_fn.stats["distance"].state_dict() == rf.stats["distance"].state_dict()


def test_pickle_keeps_weights_and_level() -> None:
    env = gym.make("rlseek/Reacher-v0", reward={"distance": 2.0}, level=0)
    env.unwrapped.set_level(1)
    copy = pickle.loads(pickle.dumps(env)).unwrapped
    assert copy.level == 1 and copy.reward_fn.weights == {"distance": 2.0}


def test_reacher_and_pusher_report_success() -> None:
    env = gym.make("rlseek/Reacher-v0", success_distance=1.0)  # everything is within 1 m
    env.reset(seed=0)
    assert env.step(env.action_space.sample())[4]["is_success"] is True
    env = gym.make("rlseek/Pusher-v0")
    env.reset(seed=0)
    assert env.step(env.action_space.sample())[4]["is_success"] is False  # object starts ≥ 0.17 m away


def test_make_with_module_prefix_in_fresh_interpreter() -> None:
    code = (
        "import gymnasium as gym; e = gym.make('rlseek:rlseek/Reacher-v0'); e.reset(seed=0); "
        "print(sorted(e.step(e.action_space.sample())[4]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "reward_distance" in out.stdout and "reward_total" in out.stdout


SECTIONS = (
    "## Description", "## Action Space", "## Observation Space", "## Rewards",
    "## Starting State", "## Episode End", "## Arguments", "## Version History",
)


@pytest.mark.parametrize("env_id", ROBOT_IDS)
def test_docstring_documents_spaces_terms_and_weights(env_id: str) -> None:
    env = gym.make(env_id).unwrapped
    doc = inspect.getdoc(type(env))
    for section in SECTIONS:
        assert section in doc, f"{env_id} docstring lacks {section}"
    for name in env.default_reward:
        assert f"`{name}`" in doc
