"""The step shared by the planar walkers (Hopper, HalfCheetah, Walker2d)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from gymnasium.utils import EzPickle

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

    def _init_locomotion(
        self,
        native_cls: type,
        reward: Mapping[str, float] | None,
        reward_params: Mapping[str, Mapping[str, Any]] | None,
        normalize_reward: bool,
        kwargs: dict[str, Any],
    ) -> None:
        self._reject_native_reward_kwargs(kwargs)
        self._setup_reward(reward, reward_params, normalize_reward)
        native_cls.__init__(self, **kwargs)
        EzPickle.__init__(
            self,
            reward=reward,
            reward_params=reward_params,
            normalize_reward=normalize_reward,
            **kwargs,
        )

    def reset_model(self) -> np.ndarray:
        obs = super().reset_model()
        self._last_obs = obs
        return obs

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
        self._last_obs = next_obs
        if self.render_mode == "human":
            self.render()
        return next_obs, reward, terminated, False, info
