"""lm-ppo: PPO for online RLHF on causal language models, with KL and entropy control.

Modules, each with one job: ``config`` (the typed, documented hyperparameters), ``core`` (GAE,
clipped losses, masked whitening, KL estimators), ``controllers`` (β and α), ``model`` (policy
with value head, reference, LoRA, the teacher-forced forward), ``trainer`` (one PPO iteration),
``files`` (checkpoints and the final folder)
and ``agent`` (the loop, runs, checkpoints, eval). Rollouts and evaluation are the text envs'
one engine and evaluator (:mod:`rlseek.envs.text.rollout`, :mod:`rlseek.envs.text.evaluation`).

The shared bases of every text-policy agent live here too, next to their lm-ppo subclasses:
:class:`LmPolicyConfig` (config), :class:`~rlseek.agents.lm_ppo.trainer.LmTrainer` (trainer)
and :class:`LmAgent` (agent); the critic-free agents (:mod:`rlseek.agents.lm_grpo`) build on them.
"""

from rlseek.agents.lm_ppo.agent import LmAgent, LmPpoAgent
from rlseek.agents.lm_ppo.config import LmPolicyConfig, LmPpoConfig
from rlseek.agents.lm_ppo.trainer import LmTrainer, PPOTrainer

__all__ = ["LmAgent", "LmPolicyConfig", "LmPpoAgent", "LmPpoConfig", "LmTrainer", "PPOTrainer"]
