"""rlseek/FetchReach-v0 and rlseek/FetchPush-v0: gymnasium-robotics' Fetch tasks (v4) with a
weighted, pluggable reward that Hindsight Experience Replay can recompute.

gymnasium-robotics is imported here, i.e. only when a Fetch env is made (importing it also
registers its own env ids with Gymnasium).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

# gymnasium-robotics prints a notice about its Adroit hand envs to stderr on import; it does not
# concern these tasks, and stderr is where rlseek's own one-line errors go.
with contextlib.redirect_stderr(io.StringIO()):
    import gymnasium_robotics  # noqa: F401

from gymnasium_robotics.envs.fetch.push import MujocoFetchPushEnv as FetchPushV4
from gymnasium_robotics.envs.fetch.reach import MujocoFetchReachEnv as FetchReachV4

from rlseek.envs.robot.base import LevelsMixin, WeightedRewardMixin
from rlseek.errors import RlseekError
from rlseek.rewards import get_reward
from rlseek.rewards.robot import is_goal_term

_FETCH_REWARD_KWARGS = {
    "reward_type": "reward={'goal_sparse': 1.0} (native 'sparse') or "
    "reward={'goal_distance': 1.0} (native 'dense')",
}


class GoalRewardMixin(WeightedRewardMixin):
    """Step and ``compute_reward`` of a goal-conditioned (Fetch) env with a weighted reward."""

    native_reward_kwargs: ClassVar[dict[str, str]] = _FETCH_REWARD_KWARGS
    # rlseek computes the reward; the native one is built sparse and never used.
    native_fixed_kwargs: ClassVar[dict[str, Any]] = {"reward_type": "sparse"}
    provides: ClassVar[frozenset[str]] = frozenset({"achieved_goal", "desired_goal"})

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        obs, info = super().reset(seed=seed, options=options)
        self._last_obs = obs
        return obs, info

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if np.shape(action) != self.action_space.shape:
            raise ValueError(
                f"action shape {np.shape(action)} differs from {self.action_space.shape}"
            )
        obs = self._last_obs
        # The native step's order of calls; only the reward differs.
        applied = np.clip(action, self.action_space.low, self.action_space.high)
        self._set_action(applied)
        self._mujoco_step(applied)
        self._step_callback()
        if self.render_mode == "human":
            self.render()
        next_obs = self._get_obs()
        info: dict[str, Any] = {
            "is_success": self._is_success(next_obs["achieved_goal"], self.goal)
        }
        reward = self._score(obs, action, next_obs, info)
        terminated = self.compute_terminated(next_obs["achieved_goal"], self.goal, info)
        truncated = self.compute_truncated(next_obs["achieved_goal"], self.goal, info)
        self._last_obs = next_obs
        return next_obs, reward, terminated, truncated, info

    def compute_reward(
        self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any
    ) -> np.ndarray:
        """The weighted reward for (possibly relabelled) goals; vectorized over a batch axis.

        HER (SB3's ``HerReplayBuffer``) calls this with a batch of achieved goals of shape
        (B, 3), desired goals (B, 3) and infos, and gets rewards of shape (B,); with single
        goals of shape (3,) it returns a scalar. It equals the step reward whenever every term
        with a non-zero weight is a goal term (:func:`rlseek.rewards.robot.goal_term`).
        A non-goal term (such as ``control``) with a non-zero weight cannot be recomputed for
        a relabelled goal, so that raises :class:`RlseekError`, as does ``normalize_reward``.
        """
        terms = self._her_terms()
        next_obs = {"achieved_goal": achieved_goal, "desired_goal": desired_goal}
        total: Any = 0.0
        for fn, weight, params in terms:
            v = np.asarray(fn(None, None, next_obs, info, **params), dtype=np.float64)
            total = total + weight * np.where(np.isnan(v), 0.0, v)
        return total

    def _her_terms(self) -> list[tuple[Any, float, dict[str, Any]]]:
        rf = self.reward_fn
        if rf.normalize:
            raise RlseekError(
                f"{self.env_id}: normalize_reward=True cannot be combined with HER goal "
                "relabelling (compute_reward); make the env with normalize_reward=False"
            )
        terms = []
        for name, weight in rf.weights.items():
            if weight == 0.0:
                continue
            fn = get_reward(name, "robot").fn
            if not is_goal_term(fn):
                raise RlseekError(
                    f"{self.env_id}.compute_reward (HER goal relabelling) can recompute only goal "
                    f"terms such as goal_sparse, goal_distance; term '{name}' has weight {weight}: "
                    "give it weight 0 or train without HER"
                )
            terms.append((fn, weight, rf.params[name]))
        return terms


class FetchReachEnv(GoalRewardMixin, LevelsMixin, FetchReachV4):
    """
    ## Description
    A 7-DoF Fetch arm must move its gripper to a target position in the air (continuing
    task). This is gymnasium-robotics' `FetchReach-v4` (same model, dynamics, observation and
    episode length) with the reward computed by rlseek's weighted reward registry and
    curriculum levels. It follows the goal-conditioned convention (`compute_reward`), so SB3's
    `HerReplayBuffer` works with it.

    ## Action Space
    `Box(-1, 1, (4,), float32)`: gripper displacement dx, dy, dz (scaled by 0.05 m per step)
    and a gripper command that has no effect here (the gripper is blocked).

    ## Observation Space
    A `Dict` with `observation` (10: gripper position (m), finger positions, gripper linear
    velocity and finger velocities (scaled by dt)), `achieved_goal` (3: gripper position, m)
    and `desired_goal` (3: target position, m), as in FetchReach-v4.

    ## Rewards
    `reward = Σ wᵢ·rᵢ` over the terms in `reward=` (see `rlseek rewards`):

    | term | value | unit | default weight |
    |---|---|---|---|
    | `goal_sparse` | −1 while ‖achieved − desired‖ > 0.05 m (param `distance_threshold`), else 0 | per step | 1.0 |
    | `goal_distance` | −‖achieved − desired‖ | m | 0 (not in the default) |

    At the default weights the reward equals FetchReach-v4's sparse reward; `reward={"goal_distance":
    1.0}` gives FetchReachDense-v4's. `compute_reward(achieved_goal, desired_goal, info)`
    recomputes the weighted goal terms for HER; a non-goal term (e.g. `control`) with a
    non-zero weight makes it raise. Every step's `info` carries `reward_<term>`
    (unweighted), `reward_total` and `is_success` (1.0 within 0.05 m of the target, else 0.0).

    ## Starting State
    The gripper at (1.3419, 0.7491, 0.555) m. At the top level (`level=2`, the default) the
    target is the gripper's start plus an offset uniform in [−0.15, 0.15]³ m, as in
    FetchReach-v4; at level k < 2 the range is `LEVEL_TARGET_RANGES[k]` = 0.05, 0.10 m.

    ## Episode End
    Never terminated; truncated after 50 steps (`max_episode_steps`).

    ## Arguments
    | argument | default | meaning |
    |---|---|---|
    | `reward` | `None` | term → weight; `None` = `{"goal_sparse": 1.0}`. Replaces the defaults entirely. |
    | `reward_params` | `None` | term → keyword params of that term |
    | `normalize_reward` | `False` | standardize each term before weighting (not with HER) |
    | `level` | `None` | curriculum level 0–2; `None` = 2 (the native task) |
    | other kwargs | | passed to FetchReach-v4 (`render_mode`, `width`, `height`, ...) |

    The native `reward_type` is rejected: use `reward={"goal_sparse": 1.0}` (sparse) or
    `reward={"goal_distance": 1.0}` (dense).

    ## Version History
    * v0: FetchReach-v4 dynamics; reward from the weighted registry (equal to v4's at default
      weights); `info` adds `reward_<term>` and `reward_total`; curriculum levels.
    """

    env_id: ClassVar[str] = "rlseek/FetchReach-v0"
    native_class: ClassVar[type] = FetchReachV4
    LEVEL_TARGET_RANGES: ClassVar[tuple[float, ...]] = (0.05, 0.10)
    num_levels: ClassVar[int] = len(LEVEL_TARGET_RANGES) + 1

    def __init__(
        self,
        reward: Mapping[str, float] | None = None,
        reward_params: Mapping[str, Mapping[str, Any]] | None = None,
        normalize_reward: bool = False,
        level: int | None = None,
        **kwargs: Any,
    ) -> None:
        self._init_weighted(reward, reward_params, normalize_reward, kwargs, level=level)
        self._native_target_range = self.target_range
        self._init_level(level)

    def _apply_level(self, level: int) -> None:
        # The native goal sampler reads target_range, and draws the same random numbers at
        # every range, so the top level reproduces FetchReach-v4 exactly.
        top = level == self.num_levels - 1
        self.target_range = self._native_target_range if top else self.LEVEL_TARGET_RANGES[level]


class FetchPushEnv(GoalRewardMixin, FetchPushV4):
    """
    ## Description
    A 7-DoF Fetch arm must push a block across a table to a target position. This is
    gymnasium-robotics' `FetchPush-v4` (same model, dynamics, observation and episode length)
    with the reward computed by rlseek's weighted reward registry. It follows the
    goal-conditioned convention (`compute_reward`), so SB3's `HerReplayBuffer` works with it.

    ## Action Space
    `Box(-1, 1, (4,), float32)`: gripper displacement dx, dy, dz (scaled by 0.05 m per step)
    and a gripper command that has no effect here (the gripper is blocked closed).

    ## Observation Space
    A `Dict` with `observation` (25: gripper and block positions, block position relative to
    the gripper, finger positions, block rotation (Euler, rad), block linear and angular
    velocities, gripper and finger velocities; velocities scaled by dt), `achieved_goal`
    (3: block position, m) and `desired_goal` (3: target position, m), as in FetchPush-v4.

    ## Rewards
    `reward = Σ wᵢ·rᵢ` over the terms in `reward=` (see `rlseek rewards`):

    | term | value | unit | default weight |
    |---|---|---|---|
    | `goal_sparse` | −1 while ‖block − target‖ > 0.05 m (param `distance_threshold`), else 0 | per step | 1.0 |
    | `goal_distance` | −‖block − target‖ | m | 0 (not in the default) |

    At the default weights the reward equals FetchPush-v4's sparse reward; `reward={"goal_distance":
    1.0}` gives FetchPushDense-v4's. `compute_reward(achieved_goal, desired_goal, info)`
    recomputes the weighted goal terms for HER; a non-goal term with a non-zero weight makes it
    raise. Every step's `info` carries `reward_<term>` (unweighted), `reward_total` and
    `is_success` (1.0 with the block within 0.05 m of the target, else 0.0).

    ## Starting State
    As in FetchPush-v4: the gripper at (1.3419, 0.7491, 0.555) m; the block on the table at
    the gripper's x, y plus an offset uniform in [−0.15, 0.15]² m, at least 0.1 m away; the
    target on the table at the gripper's x, y plus an offset uniform in [−0.15, 0.15]² m.

    ## Episode End
    Never terminated; truncated after 50 steps (`max_episode_steps`).

    ## Arguments
    | argument | default | meaning |
    |---|---|---|
    | `reward` | `None` | term → weight; `None` = `{"goal_sparse": 1.0}`. Replaces the defaults entirely. |
    | `reward_params` | `None` | term → keyword params of that term |
    | `normalize_reward` | `False` | standardize each term before weighting (not with HER) |
    | other kwargs | | passed to FetchPush-v4 (`render_mode`, `width`, `height`, ...) |

    The native `reward_type` is rejected: use `reward={"goal_sparse": 1.0}` (sparse) or
    `reward={"goal_distance": 1.0}` (dense).

    ## Version History
    * v0: FetchPush-v4 dynamics; reward from the weighted registry (equal to v4's at default
      weights); `info` adds `reward_<term>` and `reward_total`.
    """

    env_id: ClassVar[str] = "rlseek/FetchPush-v0"
    native_class: ClassVar[type] = FetchPushV4
