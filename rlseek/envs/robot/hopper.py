"""rlseek/Hopper-v0: Gymnasium's Hopper-v5 with a weighted, pluggable reward."""

from __future__ import annotations

from typing import ClassVar

from gymnasium.envs.mujoco.hopper_v5 import HopperEnv as HopperV5

from rlseek.envs.robot.locomotion import LocomotionMixin


class HopperEnv(LocomotionMixin, HopperV5):
    """
    ## Description
    A one-legged planar robot (torso, thigh, leg, foot) must hop forward as fast as it can
    without falling. This is Gymnasium's `Hopper-v5` (same model, dynamics, observation,
    termination and episode length) with the reward computed by rlseek's weighted reward
    registry.

    ## Action Space
    `Box(-1, 1, (3,), float32)`: torques at the thigh, leg and foot hinges, in N·m.

    ## Observation Space
    `Box(-inf, inf, (11,), float64)`, as in Hopper-v5: the joint positions without the
    torso's x (5: torso z in m, torso angle and three joint angles in rad) and the 6 joint
    velocities (m/s, rad/s), clipped to [−10, 10]. With
    `exclude_current_positions_from_observation=False` the torso's x comes first (12).

    ## Rewards
    `reward = Σ wᵢ·rᵢ` over the terms in `reward=` (see `rlseek rewards`):

    | term | value | unit | default weight |
    |---|---|---|---|
    | `forward` | torso forward velocity Δx / dt (dt = 0.008 s) | m/s | 1.0 |
    | `healthy` | 1 while healthy, else 0 | per step | 1.0 |
    | `control` | −Σ aᵢ² | (normalized torque)² | 0.001 |

    At the default weights the reward equals Hopper-v5's (`forward_reward_weight=1`,
    `healthy_reward=1`, `ctrl_cost_weight=1e-3`). Every step's `info` carries
    `reward_forward`, `reward_healthy`, `reward_control` (unweighted) and `reward_total`, plus
    `x_position`, `x_velocity`, `z_distance_from_origin` and `is_healthy`.

    ## Starting State
    As in Hopper-v5: the initial pose with positions and velocities perturbed uniformly in
    [−`reset_noise_scale`, `reset_noise_scale`] (default 0.005).

    ## Episode End
    Terminated when the hopper is unhealthy and `terminate_when_unhealthy=True` (default):
    any state element beyond `healthy_state_range`, torso z outside `healthy_z_range`
    (0.7 m, ∞) or torso angle outside `healthy_angle_range` (−0.2, 0.2) rad. Truncated after
    1000 steps (`max_episode_steps`).

    ## Arguments
    | argument | default | meaning |
    |---|---|---|
    | `reward` | `None` | term → weight; `None` = the defaults above. Replaces the defaults entirely. |
    | `reward_params` | `None` | term → keyword params of that term |
    | `normalize_reward` | `False` | standardize each term with running statistics before weighting |
    | other kwargs | | passed to Hopper-v5 (`terminate_when_unhealthy`, `healthy_z_range`, `reset_noise_scale`, ...) |

    Hopper-v5's `forward_reward_weight` / `healthy_reward` / `ctrl_cost_weight` are rejected:
    set weights with `reward={"forward": ..., "healthy": ..., "control": ...}`.

    ## Version History
    * v0: Hopper-v5 dynamics; reward from the weighted registry (equal to v5's at default
      weights); `info` reports `reward_<term>`, `reward_total` and `is_healthy` instead of
      v5's `reward_forward` / `reward_ctrl` / `reward_survive`.
    """

    env_id: ClassVar[str] = "rlseek/Hopper-v0"
    native_class: ClassVar[type] = HopperV5
    provides: ClassVar[frozenset[str]] = frozenset({"x_velocity", "is_healthy"})
