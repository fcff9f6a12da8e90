"""Gymnasium environments of rlseek; importing ``rlseek`` registers them.

Ids are ``rlseek/<Task>-v<N>``; ``gymnasium.make("rlseek:rlseek/Reacher-v0")`` works too.
"""

from rlseek.envs.registration import register_specs, rlseek_env_ids

__all__ = ["register_specs", "rlseek_env_ids"]
