"""Gymnasium environments of rlseek; importing this module registers them.

Ids are ``rlseek/<Task>-v<N>``; ``gymnasium.make("rlseek:rlseek/Reacher-v0")`` works too.
"""

from rlseek.envs.registration import register_all, rlseek_env_ids

register_all()

__all__ = ["rlseek_env_ids"]
