"""rlseek/Reacher-v0: Gymnasium's Reacher-v5 with a weighted, pluggable reward and curriculum levels."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from gymnasium.envs.mujoco.reacher_v5 import ReacherEnv as ReacherV5

from rlseek.envs.robot.base import LevelsMixin, WeightedRewardMixin

# Fingertip position (m, world frame) with both joints at zero: where every episode starts,
# up to the reset noise.
_TIP_START = np.array([0.21, 0.0])
# Native goals lie in the disc of radius 0.2 m around the arm's base.
_GOAL_DISC = 0.2


class ReacherEnv(WeightedRewardMixin, LevelsMixin, ReacherV5):
    """
    ## Description
    A two-jointed planar arm must move its fingertip onto a randomly placed target. This is
    Gymnasium's `Reacher-v5` (same model, dynamics, observation and episode length) with the
    reward computed by rlseek's weighted reward registry, a success flag, and curriculum levels.

    ## Action Space
    `Box(-1, 1, (2,), float32)`: torques applied at the two hinge joints (shoulder, elbow), in N·m.

    ## Observation Space
    `Box(-inf, inf, (10,), float64)`, as in Reacher-v5: cos and sin of the two joint angles
    (4), the target's x, y position (2, m), the two joint angular velocities (2, rad/s), and
    the x, y components of fingertip − target (2, m).

    ## Rewards
    `reward = Σ wᵢ·rᵢ` over the terms in `reward=` (see `rlseek rewards`):

    | term | value | unit | default weight |
    |---|---|---|---|
    | `distance` | −‖target − fingertip‖ | m | 1.0 |
    | `control` | −Σ aᵢ² | (normalized torque)² | 1.0 |

    At the default weights the reward equals Reacher-v5's (`reward_dist_weight=1`,
    `reward_control_weight=1`). Every step's `info` carries `reward_distance`, `reward_control`
    (unweighted) and `reward_total`, plus `goal_vector` (target − fingertip, 3-vector, m) and
    `is_success` (fingertip within `success_distance` of the target).

    ## Starting State
    Joint angles uniform in [−0.1, 0.1] rad and velocities uniform in [−0.005, 0.005] rad/s
    around zero (the arm stretched along +x, fingertip at (0.21, 0) m). At the top level
    (`level=3`, the default) the target is drawn as in Reacher-v5: uniform in the disc of
    radius 0.2 m around the base. At level k < 3 it is drawn uniformly from the part of that
    disc within `LEVEL_RADII[k]` = 0.05, 0.10, 0.20 m of the fingertip's start.

    ## Episode End
    Never terminated; truncated after 50 steps (`max_episode_steps`).

    ## Arguments
    | argument | default | meaning |
    |---|---|---|
    | `reward` | `None` | term → weight; `None` = the defaults above. Replaces the defaults entirely. |
    | `reward_params` | `None` | term → keyword params of that term |
    | `normalize_reward` | `False` | standardize each term with running statistics before weighting |
    | `level` | `None` | curriculum level 0–3; `None` = 3 (the native task) |
    | `success_distance` | `0.02` | `is_success` threshold on the final fingertip–target distance, m |
    | other kwargs | | passed to Reacher-v5 (`xml_file`, `frame_skip`, ...) |

    Reacher-v5's `reward_dist_weight` / `reward_control_weight` are rejected: set weights with
    `reward={"distance": ..., "control": ...}`.

    ## Version History
    * v0: Reacher-v5 dynamics; reward from the weighted registry (equal to v5's at default
      weights); `info` reports `reward_<term>`, `reward_total`, `goal_vector`, `is_success`
      instead of v5's `reward_dist` / `reward_ctrl`; curriculum levels.
    """

    env_id: ClassVar[str] = "rlseek/Reacher-v0"
    native_class: ClassVar[type] = ReacherV5
    native_reward_kwargs: ClassVar[dict[str, str]] = {
        "reward_dist_weight": "reward={'distance': w}",
        "reward_control_weight": "reward={'control': w}",
    }
    provides: ClassVar[frozenset[str]] = frozenset({"goal_vector"})
    LEVEL_RADII: ClassVar[tuple[float, ...]] = (0.05, 0.10, 0.20)
    num_levels: ClassVar[int] = len(LEVEL_RADII) + 1

    def __init__(
        self,
        reward: Mapping[str, float] | None = None,
        reward_params: Mapping[str, Mapping[str, Any]] | None = None,
        normalize_reward: bool = False,
        level: int | None = None,
        success_distance: float = 0.02,
        **kwargs: Any,
    ) -> None:
        self._success_sq = float(success_distance) ** 2
        self._init_level(level)
        self._init_weighted(reward, reward_params, normalize_reward, kwargs,
                            level=level, success_distance=success_distance)

    def _apply_level(self, level: int) -> None:
        # Read by reset_model; nothing else changes with the level.
        self._goal_radius = None if level == self.num_levels - 1 else self.LEVEL_RADII[level]

    def reset_model(self) -> np.ndarray:
        if self._goal_radius is None:
            obs = super().reset_model()
        else:
            obs = self._reset_near_start(self._goal_radius)
        self._last_obs = obs
        return obs

    def _reset_near_start(self, radius: float) -> np.ndarray:
        rng = self.np_random
        qpos = rng.uniform(low=-0.1, high=0.1, size=self.model.nq) + self.init_qpos
        while True:
            goal = _TIP_START + rng.uniform(low=-radius, high=radius, size=2)
            if np.linalg.norm(goal) < _GOAL_DISC and np.linalg.norm(goal - _TIP_START) < radius:
                break
        self.goal = goal
        qpos[-2:] = goal
        qvel = self.init_qvel + rng.uniform(low=-0.005, high=0.005, size=self.model.nv)
        qvel[-2:] = 0
        self.set_state(qpos, qvel)
        return self._get_obs()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs = self._last_obs
        self.do_simulation(action, self.frame_skip)
        next_obs = self._get_obs()
        goal_vector = self.get_body_com("target") - self.get_body_com("fingertip")
        info: dict[str, Any] = {"goal_vector": goal_vector}
        reward = self._score(obs, action, next_obs, info)
        info["is_success"] = bool(goal_vector @ goal_vector < self._success_sq)
        self._end_step(next_obs)
        return next_obs, reward, False, False, info
