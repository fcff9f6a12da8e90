"""rlseek/HalfCheetah-v0: Gymnasium's HalfCheetah-v5 with a weighted, pluggable reward."""

from __future__ import annotations

from typing import ClassVar

from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv as HalfCheetahV5

from rlseek.envs.robot.locomotion import WALKER_REWARD_KWARGS, LocomotionMixin


class HalfCheetahEnv(LocomotionMixin, HalfCheetahV5):
    """
    ## Description
    A planar two-legged "cheetah" must run forward as fast as it can. This is Gymnasium's
    `HalfCheetah-v5` (same model, dynamics, observation and episode length) with the reward
    computed by rlseek's weighted reward registry.

    ## Action Space
    `Box(-1, 1, (6,), float32)`: torques at the back thigh, shin, foot and front thigh, shin,
    foot hinges, in N·m.

    ## Observation Space
    `Box(-inf, inf, (17,), float64)`, as in HalfCheetah-v5: the joint positions without the
    torso's x (8: torso z in m, torso angle and six joint angles in rad) and the 9 joint
    velocities (m/s, rad/s). With `exclude_current_positions_from_observation=False` the
    torso's x comes first (18).

    ## Rewards
    `reward = Σ wᵢ·rᵢ` over the terms in `reward=` (see `rlseek rewards`):

    | term | value | unit | default weight |
    |---|---|---|---|
    | `forward` | torso forward velocity Δx / dt (dt = 0.05 s) | m/s | 1.0 |
    | `control` | −Σ aᵢ² | (normalized torque)² | 0.1 |

    At the default weights the reward equals HalfCheetah-v5's (`forward_reward_weight=1`,
    `ctrl_cost_weight=0.1`). There is no `healthy` term: the cheetah cannot fall. Every step's
    `info` carries `reward_forward`, `reward_control` (unweighted) and `reward_total`, plus
    `x_position` and `x_velocity`.

    ## Starting State
    As in HalfCheetah-v5: the initial pose with positions perturbed uniformly in
    [−`reset_noise_scale`, `reset_noise_scale`] (default 0.1) and velocities by a standard
    normal times `reset_noise_scale`.

    ## Episode End
    Never terminated; truncated after 1000 steps (`max_episode_steps`).

    ## Arguments
    | argument | default | meaning |
    |---|---|---|
    | `reward` | `None` | term → weight; `None` = the defaults above. Replaces the defaults entirely. |
    | `reward_params` | `None` | term → keyword params of that term |
    | `normalize_reward` | `False` | standardize each term with running statistics before weighting |
    | other kwargs | | passed to HalfCheetah-v5 (`reset_noise_scale`, `xml_file`, ...) |

    HalfCheetah-v5's `forward_reward_weight` / `ctrl_cost_weight` are rejected: set weights
    with `reward={"forward": ..., "control": ...}`.

    ## Version History
    * v0: HalfCheetah-v5 dynamics; reward from the weighted registry (equal to v5's at default
      weights); `info` reports `reward_<term>` and `reward_total` instead of v5's
      `reward_forward` / `reward_ctrl`.
    """

    env_id: ClassVar[str] = "rlseek/HalfCheetah-v0"
    native_class: ClassVar[type] = HalfCheetahV5
    native_reward_kwargs: ClassVar[dict[str, str]] = {
        k: v for k, v in WALKER_REWARD_KWARGS.items() if k != "healthy_reward"
    }
    provides: ClassVar[frozenset[str]] = frozenset({"x_velocity"})
    has_health: ClassVar[bool] = False
