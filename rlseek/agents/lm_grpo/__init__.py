"""lm-grpo and lm-rloo: critic-free RL for causal language models on lm-ppo's machinery.

Modules: ``core`` (group advantages, the clipped surrogate with token or sequence loss
normalization), ``config`` (the two agents' typed hyperparameters), ``trainer`` (one
iteration, an :class:`~rlseek.agents.lm_ppo.trainer.LmTrainer`) and ``agent`` (the two
registered agents, :class:`~rlseek.agents.lm_ppo.agent.LmAgent`\\ s).
"""

from rlseek.agents.lm_grpo.agent import LmGrpoAgent, LmRlooAgent
from rlseek.agents.lm_grpo.config import LmGrpoConfig, LmRlooConfig
from rlseek.agents.lm_grpo.core import critic_free_policy_loss, group_advantages

__all__ = ["LmGrpoAgent", "LmGrpoConfig", "LmRlooAgent", "LmRlooConfig", "critic_free_policy_loss",
           "group_advantages"]
