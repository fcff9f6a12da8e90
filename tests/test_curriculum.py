"""Curriculum levels of the robot envs and the CurriculumWrapper."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import rlseek  # noqa: F401  (registers the envs)
from rlseek.envs.robot.reacher import ReacherEnv
from rlseek.envs.wrappers import CurriculumWrapper
from rlseek.errors import RlseekError

TIP_START = np.array([0.21, 0.0])


def _reacher_goals(level: int | None, n: int = 40) -> np.ndarray:
    env = gym.make("rlseek/Reacher-v0", level=level)
    return np.array([env.reset(seed=s)[0][4:6] for s in range(n)])  # target x, y


def test_reacher_goal_radius_grows_with_level() -> None:
    spread = []
    for level, radius in enumerate(ReacherEnv.LEVEL_RADII):
        goals = _reacher_goals(level)
        dist = np.linalg.norm(goals - TIP_START, axis=1)
        assert (dist < radius).all() and (np.linalg.norm(goals, axis=1) < 0.2).all()
        spread.append(dist.max())
    top = _reacher_goals(None)
    spread.append(np.linalg.norm(top - TIP_START, axis=1).max())
    assert spread == sorted(spread) and spread[-1] > ReacherEnv.LEVEL_RADII[-1]
    # The top level is the native task: same targets as Reacher-v5 for the same seeds.
    native = gym.make("Reacher-v5")
    np.testing.assert_array_equal(top, [native.reset(seed=s)[0][4:6] for s in range(40)])


def test_fetch_reach_target_range_grows_with_level() -> None:
    def offsets(level: int) -> np.ndarray:
        env = gym.make("rlseek/FetchReach-v0", level=level)
        out = []
        for seed in range(25):
            obs, _ = env.reset(seed=seed)
            out.append(np.abs(obs["desired_goal"] - obs["achieved_goal"]).max())
        return np.array(out)

    ranges = (0.05, 0.10, 0.15)
    widest = [offsets(level).max() for level in range(3)]
    for level, r in enumerate(ranges):
        assert widest[level] <= r + 0.01  # + the gripper's small offset from its nominal start
    assert widest == sorted(widest)


def test_set_level_validates_and_applies_at_reset() -> None:
    env = gym.make("rlseek/Reacher-v0")
    raw = env.unwrapped
    assert (raw.num_levels, raw.level) == (4, 3)
    for bad in (-1, 4, 1.5, True):
        with pytest.raises(RlseekError, match=r"level must be an integer in 0\.\.3"):
            raw.set_level(bad)
    with pytest.raises(RlseekError):
        gym.make("rlseek/FetchReach-v0", level=3)
    raw.set_level(0)
    goal = env.reset(seed=1)[0][4:6]
    assert np.linalg.norm(goal - TIP_START) < ReacherEnv.LEVEL_RADII[0]


def _play(env: gym.Env, episodes: int) -> list[dict]:
    """Run episodes with random actions; return the final step's info of each."""
    finals = []
    env.reset(seed=0)
    env.action_space.seed(0)
    while len(finals) < episodes:
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        if terminated or truncated:
            finals.append(info)
            env.reset()
    return finals


def test_wrapper_promotes_after_full_successful_windows() -> None:
    # success_distance=1 m: every Reacher episode succeeds, so each full window promotes.
    env = CurriculumWrapper(gym.make("rlseek/Reacher-v0", success_distance=1.0), window=3)
    assert env.level == 0
    finals = _play(env, 12)
    assert [f["curriculum_level"] for f in finals] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert [bool(f.get("curriculum_promoted")) for f in finals] == [False, False, True] * 3 + [False] * 3
    assert env.promotions == [(3, 1), (6, 2), (9, 3)]
    assert env.level == 3 == env.unwrapped.level  # the top level is kept


def test_wrapper_never_promotes_without_success() -> None:
    env = CurriculumWrapper(gym.make("rlseek/Reacher-v0", success_distance=0.0), window=2)
    finals = _play(env, 6)
    assert {f["curriculum_level"] for f in finals} == {0}
    assert env.success_rate == 0.0 and env.promotions == []


class ScriptedLevels(gym.Env):
    """One-step episodes whose success is the action (1 = success); protocol attributes only.

    Lets the tests choose exact success sequences, which a physical task cannot.
    """

    observation_space = gym.spaces.Discrete(1)
    action_space = gym.spaces.Discrete(2)
    num_levels = 3

    def __init__(self, report_success: bool = True) -> None:
        self.level = 0
        self.report_success = report_success

    def set_level(self, level: int) -> None:
        self.level = level

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return 0, {}

    def step(self, action):
        info = {"is_success": bool(action)} if self.report_success else {}
        return 0, float(action), True, False, info


def _run(env: CurriculumWrapper, outcomes: list[int]) -> list[int]:
    levels = []
    for a in outcomes:
        env.reset()
        levels.append(env.step(a)[4]["curriculum_level"])
    return levels


def test_wrapper_uses_rolling_window_and_clears_it() -> None:
    env = CurriculumWrapper(ScriptedLevels(), threshold=0.75, window=4)
    # Window after episode 4: [0,0,1,1] = 0.5; after 5: [0,1,1,1] = 0.75 -> promote, clear.
    _run(env, [0, 0, 1, 1, 1])
    assert env.level == 1 and env.success_rate == 0.0 and env.promotions == [(5, 1)]
    # Three successes do not fill the cleared window of 4, so no promotion yet.
    _run(env, [1, 1, 1])
    assert env.level == 1
    assert _run(env, [1, 0]) == [1, 2]


def test_wrapper_threshold_is_inclusive_and_state_round_trips() -> None:
    env = CurriculumWrapper(ScriptedLevels(), threshold=0.5, window=2, start_level=1)
    _run(env, [1, 0])
    assert env.level == 2
    state = env.state_dict()
    fresh = CurriculumWrapper(ScriptedLevels(), threshold=0.5, window=2)
    fresh.load_state_dict(state)
    assert fresh.level == 2 and fresh.state_dict() == state


def test_wrapper_rejects_envs_and_arguments_it_cannot_use() -> None:
    with pytest.raises(RlseekError, match="lacks"):
        CurriculumWrapper(gym.make("rlseek/Hopper-v0"))
    for kwargs in ({"threshold": 0.0}, {"threshold": 1.5}, {"window": 0}, {"window": 2.5}):
        with pytest.raises(RlseekError, match="curriculum"):
            CurriculumWrapper(ScriptedLevels(), **kwargs)
    with pytest.raises(RlseekError, match="level"):
        CurriculumWrapper(gym.make("rlseek/Reacher-v0"), start_level=9)
    env = CurriculumWrapper(ScriptedLevels(report_success=False))
    env.reset()
    with pytest.raises(RlseekError, match="is_success"):
        env.step(1)


def test_wrapper_works_on_fetch_reach() -> None:
    env = CurriculumWrapper(gym.make("rlseek/FetchReach-v0"), window=5)
    obs, info = env.reset(seed=0)
    assert info["curriculum_level"] == 0 and env.unwrapped.target_range == 0.05
    finals = _play(env, 2)
    assert all("is_success" in f and f["curriculum_level"] == 0 for f in finals)
