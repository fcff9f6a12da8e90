"""lm-ppo: PPO for online RLHF on causal language models, with KL and entropy control.

Modules, each with one job: ``config`` (the typed, documented hyperparameters), ``core`` (GAE,
clipped losses, masked whitening, KL estimators), ``controllers`` (β and α), ``model`` (policy
with value head, reference, LoRA), ``rollout`` (KV-cached rollouts through the text vector
env), ``trainer`` (one PPO iteration), ``evaluation`` and ``agent`` (runs, checkpoints, eval).
"""

from rlseek.agents.lm_ppo.agent import LmPpoAgent
from rlseek.agents.lm_ppo.config import LmPpoConfig

__all__ = ["LmPpoAgent", "LmPpoConfig"]
