"""Registration specs of the robot-control environments (read by ``rlseek.envs.registration``).

This module is imported whenever ``rlseek`` is, so it must stay cheap: no MuJoCo, no
gymnasium-robotics. Entry points are strings, imported only when an env is made.

Each spec also names the native env it is built on and its default reward weights, so that
listings (``rlseek envs``) need not import the env classes.
"""

from __future__ import annotations

from typing import Any

SPECS: list[dict[str, Any]] = [
    {
        "id": "rlseek/Reacher-v0",
        "entry_point": "rlseek.envs.robot.reacher:ReacherEnv",
        "kind": "robot",
        "max_episode_steps": 50,
        "native": "Reacher-v5",
        "default_reward": {"distance": 1.0, "control": 1.0},
    },
    {
        "id": "rlseek/Pusher-v0",
        "entry_point": "rlseek.envs.robot.pusher:PusherEnv",
        "kind": "robot",
        "max_episode_steps": 100,
        "native": "Pusher-v5",
        "default_reward": {"near": 0.5, "distance": 1.0, "control": 0.1},
    },
    {
        "id": "rlseek/Hopper-v0",
        "entry_point": "rlseek.envs.robot.hopper:HopperEnv",
        "kind": "robot",
        "max_episode_steps": 1000,
        "native": "Hopper-v5",
        "default_reward": {"forward": 1.0, "healthy": 1.0, "control": 0.001},
    },
    {
        "id": "rlseek/HalfCheetah-v0",
        "entry_point": "rlseek.envs.robot.half_cheetah:HalfCheetahEnv",
        "kind": "robot",
        "max_episode_steps": 1000,
        "native": "HalfCheetah-v5",
        "default_reward": {"forward": 1.0, "control": 0.1},
    },
    {
        "id": "rlseek/Walker2d-v0",
        "entry_point": "rlseek.envs.robot.walker2d:Walker2dEnv",
        "kind": "robot",
        "max_episode_steps": 1000,
        "native": "Walker2d-v5",
        "default_reward": {"forward": 1.0, "healthy": 1.0, "control": 0.001},
    },
    {
        "id": "rlseek/FetchReach-v0",
        "entry_point": "rlseek.envs.robot.fetch:FetchReachEnv",
        "kind": "robot",
        "max_episode_steps": 50,
        "native": "FetchReach-v4",
        "default_reward": {"goal_sparse": 1.0},
    },
    {
        "id": "rlseek/FetchPush-v0",
        "entry_point": "rlseek.envs.robot.fetch:FetchPushEnv",
        "kind": "robot",
        "max_episode_steps": 50,
        "native": "FetchPush-v4",
        "default_reward": {"goal_sparse": 1.0},
    },
]


def default_reward(env_id: str) -> dict[str, float]:
    """Default weights of a robot env: the ones that reproduce its native reward."""
    for spec in SPECS:
        if spec["id"] == env_id:
            return dict(spec["default_reward"])
    raise KeyError(env_id)
