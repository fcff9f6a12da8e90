"""The weighted reward registry: named reward terms and their weighted combination.

Register a term::

    from rlseek.rewards import register_reward

    @register_reward("upright", kind="robot")
    def upright(obs, action, next_obs, info, *, index=1):
        '''Cosine of the torso angle (1 = upright).'''
        return float(np.cos(next_obs[index]))

and use it with a weight in any env of that kind: ``reward={"upright": 0.5, ...}``.
"""

from rlseek.rewards.registry import (
    KINDS,
    RewardTerm,
    TextBatch,
    get_reward,
    import_reward_modules,
    list_rewards,
    register_reward,
)
from rlseek.rewards.weighted import WeightedReward

__all__ = [
    "KINDS",
    "RewardTerm",
    "TextBatch",
    "WeightedReward",
    "get_reward",
    "import_reward_modules",
    "list_rewards",
    "register_reward",
]
