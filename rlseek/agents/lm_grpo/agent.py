"""The ``lm-grpo`` and ``lm-rloo`` agents: critic-free RL of a causal LM on the text envs.

Everything but the advantage is lm-ppo's (:class:`~rlseek.agents.lm_ppo.agent.LmAgent`): the
one rollout engine, the weighted reward registry, LoRA, evaluation, logging, checkpoints and
resume, the run directory and ``final/`` (so ``rlseek eval`` and ``rlseek serve`` load these
runs like lm-ppo runs). What differs:

* each iteration resets the text vector env with ``group_size`` = G: ``run.n_envs / G``
  prompts, each answered G times on adjacent rows;
* no value head and no GAE: a completion's advantage comes from its group's scores
  (:func:`rlseek.agents.lm_grpo.core.group_advantages`), GRPO's normalization for lm-grpo,
  the leave-one-out baseline for lm-rloo;
* β = 0 by default, and then no reference model exists (no second copy of the weights).

Why two agent names over one shared base rather than one agent with an ``estimator`` field:
the name in a run's config says exactly which algorithm produced it, and each gets its own
documented defaults (``scale_rewards`` true for GRPO, false for RLOO) instead of defaults that
change with another field's value.
"""

from __future__ import annotations

from typing import Any

import torch

from rlseek.agents.base import register_agent
from rlseek.agents.lm_grpo.config import LmGrpoConfig, LmRlooConfig
from rlseek.agents.lm_grpo.trainer import CriticFreeTrainer
from rlseek.agents.lm_ppo.agent import LmAgent
from rlseek.agents.lm_ppo.model import build_policy
from rlseek.agents.lm_ppo.trainer import LmTrainer
from rlseek.config import ExperimentConfig
from rlseek.errors import ConfigError


@register_agent("lm-grpo")
class LmGrpoAgent(LmAgent):
    """GRPO: G completions per prompt, advantages normalized within each group."""

    config_class = LmGrpoConfig
    params: LmGrpoConfig
    estimator = "grpo"

    def resolve_config(self, config: ExperimentConfig) -> ExperimentConfig:
        """lm-ppo's resolution, after checking that ``run.n_envs`` holds whole groups."""
        n, g = config.run.n_envs, self.params.group_size
        if n % g:
            raise ConfigError(f"field 'run.n_envs' must be a multiple of agent.params.group_size "
                              f"({g}): each iteration answers n_envs / group_size prompts "
                              f"group_size times, got {n}")
        for i, stage in enumerate(config.run.stages or []):
            if stage["batch_size"] % g:
                raise ConfigError(f"field 'run.stages[{i}].batch_size' must be a multiple of "
                                  f"agent.params.group_size ({g}), got {stage['batch_size']}")
        return super().resolve_config(config)

    def _build_policy(self, lm: Any, cfg: Any) -> tuple[Any, Any]:
        """No value head; a reference copy only when β > 0 (LoRA: the disabled adapter)."""
        return build_policy(lm, cfg, value_head=False, reference=cfg.kl_coef > 0)

    def _make_trainer(self, policy: Any, reference: Any, cfg: Any, device: torch.device, *,
                      vocab_size: int, banned_ids: tuple[int, ...], total_iterations: int
                      ) -> LmTrainer:
        return CriticFreeTrainer(policy, reference, cfg, device, estimator=self.estimator,
                                 vocab_size=vocab_size, banned_ids=banned_ids,
                                 total_iterations=total_iterations)

    def _rollout_options(self, iteration: int) -> dict[str, Any] | None:
        return {"group_size": self.params.group_size}


@register_agent("lm-rloo")
class LmRlooAgent(LmGrpoAgent):
    """RLOO: G completions per prompt, each baselined by the mean of the other G − 1."""

    config_class = LmRlooConfig
    params: LmRlooConfig
    estimator = "rloo"


__all__ = ["LmGrpoAgent", "LmRlooAgent"]
