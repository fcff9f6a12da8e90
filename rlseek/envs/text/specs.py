"""Registration specs of the text envs (read by :mod:`rlseek.envs.registration`).

Each spec carries its task's default reward weights and term params, so that listings and config resolution
need not build the env.
"""

from rlseek.envs.text.tasks import ENV_TASKS

SPECS = [
    {
        "id": env_id,
        "entry_point": f"rlseek.envs.text.env:{cls}",
        "kind": "text",
        "default_reward": dict(ENV_TASKS[env_id].default_weights),
        "default_reward_params": {k: dict(v) for k, v in ENV_TASKS[env_id].default_params.items()},
    }
    for env_id, cls in (("rlseek/Arithmetic-v0", "ArithmeticEnv"), ("rlseek/Reviews-v0", "ReviewsEnv"))
]
