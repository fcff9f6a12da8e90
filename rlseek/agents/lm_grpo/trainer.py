"""One critic-free iteration (GRPO or RLOO) on a batch of grouped rollouts.

:class:`CriticFreeTrainer` is an :class:`~rlseek.agents.lm_ppo.trainer.LmTrainer`: it shares
lm-ppo's forward pass, no-grad log-prob pass, micro-batch accumulation, optimizer step,
epochs, learning-rate schedule and controllers, and defines only :meth:`prepare` (the
group advantages) and :meth:`micro_loss` (the clipped surrogate, an optional KL loss term
and an optional entropy bonus, all reduced with ``loss_norm``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from rlseek.agents.lm_grpo.config import LmGrpoConfig
from rlseek.agents.lm_grpo.core import critic_free_policy_loss, group_advantages, reduce_tokens
from rlseek.agents.lm_ppo import core
from rlseek.agents.lm_ppo.batching import host_stats, to_device
from rlseek.agents.lm_ppo.model import PolicyWithValueHead
from rlseek.agents.lm_ppo.trainer import LmTrainer
from rlseek.envs.text.rollout import Rollout


class CriticFreeTrainer(LmTrainer):
    """GRPO / RLOO updates (``estimator``) of a policy without a value head."""

    cfg: LmGrpoConfig

    def __init__(self, policy: PolicyWithValueHead, reference: nn.Module | None, cfg: LmGrpoConfig,
                 device: torch.device, *, estimator: str = "grpo", vocab_size: int | None = None,
                 banned_ids: tuple[int, ...] = (), total_iterations: int | None = None) -> None:
        super().__init__(policy, reference, cfg, device, vocab_size=vocab_size,
                         banned_ids=banned_ids, total_iterations=total_iterations)
        self.estimator = estimator

    @property
    def has_reference(self) -> bool:
        """A reference only matters with β > 0; with β = 0 no reference pass is made."""
        return self.cfg.kl_coef > 0 and super().has_reference

    @property
    def on_policy(self) -> bool:
        """One epoch of one minibatch: the update's own log-probs, detached, are the
        rollout's (the policy has not moved yet), so no separate no-grad pass is needed."""
        return self.cfg.ppo_epochs == 1 and self.cfg.num_minibatches == 1

    @torch.no_grad()
    def prepare(self, ro: Rollout) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Group advantages of the env's scores (minus ``missing_eos_penalty`` where no EOS),
        broadcast to every response token; old and reference log-probs when needed."""
        cfg = self.cfg
        batch = self.batch_tensors(ro)
        mask = batch["mask"]
        scores = torch.as_tensor(np.asarray(ro.scores, dtype=np.float64))
        scores = scores - cfg.missing_eos_penalty * torch.as_tensor(~np.asarray(ro.eos, dtype=bool)).double()
        adv = group_advantages(scores, cfg.group_size, self.estimator, cfg.scale_rewards)
        groups = scores.reshape(-1, cfg.group_size)
        stats = {
            "charts/kl_coef": self.kl_ctl.value,
            "charts/ent_coef": self.ent_ctl.value,
            "charts/advantage_std": float(adv.float().std()) if len(adv) > 1 else 0.0,
            "charts/group_score_std": float(groups.std(1).mean()),
            "charts/zero_std_groups": float((groups.std(1) == 0).double().mean()),
            "charts/kl_ref": 0.0, "charts/kl_ref_k1": 0.0, "charts/entropy": math.nan,
        }  # host figures: no device sync
        batch["advantages"] = to_device(adv.float(), self.device)[:, None] * mask
        if self.on_policy and not self.has_reference:
            return batch, stats  # entropy comes from the update (see update)
        passed = self.logprob_pass(batch)
        if not self.on_policy:
            batch["old_logp"] = passed["old_logp"]
        if self.has_reference:
            batch["ref_logp"] = passed["ref_logp"]
        kl = core.kl_estimate(passed["old_logp"], passed["ref_logp"], cfg.kl_estimator) * mask
        return batch, host_stats({
            **stats,
            "charts/kl_ref": core.masked_sum(kl, mask, dim=1).mean(),
            "charts/kl_ref_k1": core.masked_sum(passed["old_logp"] - passed["ref_logp"], mask, dim=1).mean(),
            "charts/entropy": core.masked_mean(passed["entropy"], mask)})

    def loss_units(self, mask: torch.Tensor) -> torch.Tensor:
        """Tokens (``loss_norm: token``) or completions (``sequence``)."""
        if self.cfg.loss_norm == "sequence":
            return (mask.sum(1) > 0).sum().to(mask.dtype)
        return mask.sum()

    def micro_loss(self, mb: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Clipped surrogate − α·entropy (+ β·KL loss), each reduced with ``loss_norm``."""
        cfg = self.cfg
        alpha, beta = self.ent_ctl.value, self.kl_ctl.value
        logits, _ = self.forward(self.policy.lm, mb)
        mask = mb["mask"]
        logp, entropy = self.token_stats(logits, mb["response_ids"], mask, entropy_grad=alpha > 0)
        old = mb["old_logp"] if "old_logp" in mb else logp.detach()
        pg, pstats = critic_free_policy_loss(logp, old, mb["advantages"], mask, cfg.clip_range,
                                             cfg.loss_norm)
        ent = reduce_tokens(entropy, mask, cfg.loss_norm)  # detached when α = 0
        loss = pg - alpha * ent
        parts = {"losses/policy_loss": pg, "losses/entropy": ent,
                 "losses/approx_kl": pstats["approx_kl"], "losses/clipfrac": pstats["clipfrac"]}
        if beta > 0 and "ref_logp" in mb:
            kl_loss = reduce_tokens(core.kl_estimate(logp, mb["ref_logp"].detach(), cfg.kl_estimator),
                                    mask, cfg.loss_norm)
            loss = loss + beta * kl_loss
            parts["losses/kl_penalty"] = kl_loss
        parts["losses/loss"] = loss
        return loss, parts

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        """The shared epochs; when :meth:`prepare` made no no-grad pass, the iteration's
        entropy is the update's own (the same policy, the same tokens)."""
        stats: dict[str, Any] = super().update(batch)
        if "old_logp" not in batch and "ref_logp" not in batch and "losses/entropy" in stats:
            stats["charts/entropy"] = stats["losses/entropy"]
        return stats
