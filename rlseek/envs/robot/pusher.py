"""rlseek/Pusher-v0: Gymnasium's Pusher-v5 with a weighted, pluggable reward."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from gymnasium.envs.mujoco.pusher_v5 import PusherEnv as PusherV5

from rlseek.envs.robot.base import WeightedRewardMixin


class PusherEnv(WeightedRewardMixin, PusherV5):
    """
    ## Description
    A 7-DoF arm must push a cylinder on a table to a goal position. This is Gymnasium's
    `Pusher-v5` (same model, dynamics, observation and episode length) with the reward
    computed by rlseek's weighted reward registry and a success flag.

    ## Action Space
    `Box(-2, 2, (7,), float32)`: torques at the shoulder pan, shoulder lift, upper-arm roll,
    elbow flex, forearm roll, wrist flex and wrist roll joints, in N·m.

    ## Observation Space
    `Box(-inf, inf, (23,), float64)`, as in Pusher-v5: the 7 joint angles (rad), the 7 joint
    angular velocities (rad/s), and the x, y, z positions (m) of the arm's tip, the object and
    the goal.

    ## Rewards
    `reward = Σ wᵢ·rᵢ` over the terms in `reward=` (see `rlseek rewards`):

    | term | value | unit | default weight |
    |---|---|---|---|
    | `near` | −‖object − arm tip‖ | m | 0.5 |
    | `distance` | −‖goal − object‖ | m | 1.0 |
    | `control` | −Σ aᵢ² | (torque)² | 0.1 |

    At the default weights the reward equals Pusher-v5's (`reward_near_weight=0.5`,
    `reward_dist_weight=1`, `reward_control_weight=0.1`). Every step's `info` carries
    `reward_near`, `reward_distance`, `reward_control` (unweighted — note that v5's own
    `reward_near` was weighted) and `reward_total`, plus `object_vector` (object − arm tip, m),
    `goal_vector` (goal − object, m) and `is_success` (object within `success_distance` of the
    goal).

    ## Starting State
    As in Pusher-v5: the arm at its initial pose with velocities uniform in
    [−0.005, 0.005]; the goal at (0, 0); the object uniform in x ∈ [−0.3, 0], y ∈ [−0.2, 0.2] m,
    at least 0.17 m from the goal.

    ## Episode End
    Never terminated; truncated after 100 steps (`max_episode_steps`).

    ## Arguments
    | argument | default | meaning |
    |---|---|---|
    | `reward` | `None` | term → weight; `None` = the defaults above. Replaces the defaults entirely. |
    | `reward_params` | `None` | term → keyword params of that term |
    | `normalize_reward` | `False` | standardize each term with running statistics before weighting |
    | `success_distance` | `0.05` | `is_success` threshold on the object–goal distance, m |
    | other kwargs | | passed to Pusher-v5 (`xml_file`, `frame_skip`, ...) |

    Pusher-v5's `reward_near_weight` / `reward_dist_weight` / `reward_control_weight` are
    rejected: set weights with `reward={"near": ..., "distance": ..., "control": ...}`.

    ## Version History
    * v0: Pusher-v5 dynamics; reward from the weighted registry (equal to v5's at default
      weights); `info` reports unweighted `reward_<term>`, `reward_total`, `object_vector`,
      `goal_vector`, `is_success`.
    """

    env_id: ClassVar[str] = "rlseek/Pusher-v0"
    native_class: ClassVar[type] = PusherV5
    native_reward_kwargs: ClassVar[dict[str, str]] = {
        "reward_near_weight": "reward={'near': w}",
        "reward_dist_weight": "reward={'distance': w}",
        "reward_control_weight": "reward={'control': w}",
    }
    provides: ClassVar[frozenset[str]] = frozenset({"goal_vector", "object_vector"})

    def __init__(
        self,
        reward: Mapping[str, float] | None = None,
        reward_params: Mapping[str, Mapping[str, Any]] | None = None,
        normalize_reward: bool = False,
        success_distance: float = 0.05,
        **kwargs: Any,
    ) -> None:
        self._success_sq = float(success_distance) ** 2
        self._init_weighted(reward, reward_params, normalize_reward, kwargs,
                            success_distance=success_distance)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs = self._last_obs
        self.do_simulation(action, self.frame_skip)
        next_obs = self._get_obs()
        obj = self.get_body_com("object")
        goal_vector = self.get_body_com("goal") - obj
        info: dict[str, Any] = {
            "object_vector": obj - self.get_body_com("tips_arm"),
            "goal_vector": goal_vector,
        }
        reward = self._score(obs, action, next_obs, info)
        info["is_success"] = bool(goal_vector @ goal_vector < self._success_sq)
        self._end_step(next_obs)
        return next_obs, reward, False, False, info
