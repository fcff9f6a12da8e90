"""``LmGrpoConfig`` and ``LmRlooConfig``: the critic-free agents' hyperparameters.

Both extend :class:`~rlseek.agents.lm_ppo.config.LmPolicyConfig` (model, LoRA, rollouts, KL
and entropy control, optimizer, evaluation, logging — the same fields and meanings as
lm-ppo's) with the group and loss options below, and change some defaults: no KL penalty
(β = 0, so no reference model is built at all), no entropy bonus, one epoch over one
minibatch per iteration (strictly on-policy: the rollout's log-probs are the update's own,
detached, so no extra forward pass is made for them), which is how TRL's GRPOTrainer runs by
default. With β > 0 the KL enters the loss (GRPO's form, k3 by default), never the reward.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlseek.agents.lm_grpo.core import LOSS_NORMS
from rlseek.agents.lm_ppo.config import LmPolicyConfig
from rlseek.errors import ConfigError


@dataclass
class LmGrpoConfig(LmPolicyConfig):
    """Hyperparameters of GRPO: G completions per prompt, group-normalized advantages."""

    # -- changed defaults of the shared fields --------------------------------------------------
    kl_coef: float = 0.0
    """β of the KL-to-reference loss term; 0 (the default) keeps no reference model at all."""
    kl_control: str = "fixed"
    """"fixed" (default) or "adaptive" (β steered toward ``kl_target``; needs β > 0)."""
    kl_penalty: str = "loss"
    """Must be "loss": a critic-free agent has no per-token reward to put a KL in."""
    kl_estimator: str = "k3"
    """"k3" (GRPO's, the default) or "k2"; see ``LmPolicyConfig.kl_estimator``."""
    ent_coef: float = 0.0
    """α of the entropy bonus (0: none)."""
    ppo_epochs: int = 1
    """Passes over one iteration's rollouts (GRPO's μ). 1 with ``num_minibatches`` 1 is
    strictly on-policy: the ratio is 1 and the clip never binds."""
    num_minibatches: int = 1
    """Optimizer steps per epoch (the completions of an iteration are split into these)."""

    # -- GRPO / RLOO ---------------------------------------------------------------------------
    group_size: int = 8
    """G: completions per prompt. ``run.n_envs`` (completions per iteration) must be a
    multiple of it; an iteration trains on n_envs / G prompts."""
    scale_rewards: bool = True
    """Divide each group's centred scores by the group's standard deviation (+ 1e-4). GRPO's
    default; false is Dr. GRPO's advice (the division up-weights groups that barely differ)."""
    loss_norm: str = "token"
    """"token": the loss is the sum over all response tokens of the (mini)batch divided by
    their number (DAPO); "sequence": mean over each completion's tokens, then over
    completions (the original GRPO). See :func:`rlseek.agents.lm_grpo.core.reduce_tokens`."""
    missing_eos_penalty: float = 0.0
    """Subtracted from the env's score of a completion that ended without EOS, before the
    group advantages (in the score's own unit; 0: none)."""

    def validate(self, where: str = "agent.params") -> None:
        """Raise :class:`ConfigError` naming the first field with a value out of range."""
        if self.kl_penalty != "loss":
            raise ConfigError(f"field '{where}.kl_penalty' must be 'loss' (a critic-free agent "
                              f"puts the KL in the loss, not in a per-token reward), got "
                              f"{self.kl_penalty!r}")
        super().validate(where)
        if self.group_size < 2:
            raise self._bad(where, "group_size", ">= 2 (a group's baseline needs two completions)")
        if self.loss_norm not in LOSS_NORMS:
            raise self._bad(where, "loss_norm", "'token' or 'sequence'")
        if self.missing_eos_penalty < 0:
            raise self._bad(where, "missing_eos_penalty", ">= 0")
        if self.kl_control == "adaptive" and self.kl_coef == 0:
            raise self._bad(where, "kl_coef", "> 0 with kl_control 'adaptive' (β = 0 never moves)")


@dataclass
class LmRlooConfig(LmGrpoConfig):
    """Hyperparameters of RLOO: the leave-one-out baseline of the group, unscaled."""

    scale_rewards: bool = False
    """RLOO's advantage is r_i − mean_{j≠i} r_j, unscaled (the default); true also divides by
    the group's standard deviation."""
