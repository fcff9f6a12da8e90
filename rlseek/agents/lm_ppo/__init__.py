"""lm-ppo: PPO for online RLHF on causal language models, with KL and entropy control.

Modules, each with one job: ``config`` (the typed, documented hyperparameters), ``core`` (GAE,
clipped losses, masked whitening, KL estimators), ``controllers`` (β and α), ``model`` (policy
with value head, reference, LoRA, the teacher-forced forward), ``trainer`` (one PPO iteration)
and ``agent`` (the loop, runs, checkpoints, eval). Rollouts and evaluation are the text envs'
one engine and evaluator (:mod:`rlseek.envs.text.rollout`, :mod:`rlseek.envs.text.evaluation`).
"""

from rlseek.agents.lm_ppo.agent import LmPpoAgent
from rlseek.agents.lm_ppo.config import LmPpoConfig

__all__ = ["LmPpoAgent", "LmPpoConfig"]
