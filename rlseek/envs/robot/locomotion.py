"""The step shared by the planar walkers (Hopper, HalfCheetah, Walker2d)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from rlseek.envs.robot.base import WeightedRewardMixin

# Native kwargs that set a reward weight, and the rlseek way to say the same.
WALKER_REWARD_KWARGS: dict[str, str] = {
    "forward_reward_weight": "reward={'forward': w}",
    "ctrl_cost_weight": "reward={'control': w}",
    "healthy_reward": "reward={'healthy': w}",
}


class LocomotionMixin(WeightedRewardMixin):
    """Walker step with the weighted reward; list it before the native v5 class in the bases.

    The env measures the torso's forward velocity (Δx over the control step / its duration,
    m/s) and, where the body has healthy ranges, whether it is healthy; terms turn those into
    the reward. Termination when unhealthy follows the native ``terminate_when_unhealthy``.
    """

    has_health: ClassVar[bool] = True
    native_reward_kwargs: ClassVar[dict[str, str]] = WALKER_REWARD_KWARGS

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs = self._last_obs
        qpos = self.data.qpos
        x_before = qpos[0]
        self.do_simulation(action, self.frame_skip)
        x_after = qpos[0]
        next_obs = self._get_obs()
        info: dict[str, Any] = {
            "x_position": x_after,
            "x_velocity": (x_after - x_before) / self.dt,
        }
        terminated = False
        if self.has_health:
            healthy = bool(self.is_healthy)
            info["z_distance_from_origin"] = qpos[1] - self.init_qpos[1]
            info["is_healthy"] = healthy
            terminated = (not healthy) and self._terminate_when_unhealthy
        reward = self._score(obs, action, next_obs, info)
        self._end_step(next_obs)
        return next_obs, reward, terminated, False, info
