"""The math of the critic-free agents (lm-grpo, lm-rloo), readable top to bottom.

Shapes as in :mod:`rlseek.agents.lm_ppo.core`: ``B`` completions, ``T`` response positions
(right-padded), ``mask`` 1.0 on generated tokens. A *group* is ``G`` adjacent rows that
answer the same prompt (the text vector env's ``group_size`` reset option puts them there).

References: Shao et al. 2024 (GRPO, DeepSeekMath), Ahmadian et al. 2024 (RLOO, "Back to
Basics"), Yu et al. 2025 (DAPO: token-level loss normalization), Liu et al. 2025 (Dr. GRPO:
why dividing by the group's std and by each sequence's length biases the update).
"""

from __future__ import annotations

import torch

from rlseek.agents.lm_ppo.core import masked_mean, masked_sum

__all__ = ["ESTIMATORS", "LOSS_NORMS", "critic_free_policy_loss", "group_advantages", "reduce_tokens"]

ESTIMATORS = ("grpo", "rloo")
LOSS_NORMS = ("token", "sequence")


def group_advantages(scores: torch.Tensor, group_size: int, estimator: str = "grpo",
                     scale_rewards: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """One advantage per completion from the scores of its group, (B,) -> (B,).

    * ``grpo``: A_i = r_i − mean_group(r);
    * ``rloo``: A_i = r_i − mean_{j≠i} r_j, the leave-one-out baseline (= G / (G − 1) ×
      the GRPO centring; the baseline of a row never contains its own reward, so it is
      unbiased).

    ``scale_rewards`` then divides by the group's sample standard deviation (Bessel-corrected,
    as TRL does) plus ``eps``; a group whose completions all scored the same gets advantage 0
    either way (nothing to learn from it). Rows of a group must be adjacent: B = n × G.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; expected 'grpo' or 'rloo'")
    if group_size < 2 or scores.shape[0] % group_size:
        raise ValueError(f"{scores.shape[0]} scores do not form groups of {group_size} (>= 2)")
    r = scores.reshape(-1, group_size)
    total = r.sum(1, keepdim=True)
    if estimator == "grpo":
        adv = r - total / group_size
    else:
        adv = r - (total - r) / (group_size - 1)
    if scale_rewards:
        adv = adv / (r.std(1, keepdim=True) + eps)
    return adv.reshape(-1)


def reduce_tokens(x: torch.Tensor, mask: torch.Tensor, loss_norm: str) -> torch.Tensor:
    """Reduce per-token ``x`` to a scalar over the masked tokens.

    * ``token`` (DAPO): sum over every response token of the batch / their number — each
      token weighs the same, so a long completion counts in proportion to its length;
    * ``sequence`` (the original GRPO): the mean over each completion's tokens, then the
      mean over completions — each completion weighs the same, so a token of a short one
      counts more than a token of a long one.
    """
    if loss_norm == "token":
        return masked_mean(x, mask)
    if loss_norm == "sequence":
        lengths = mask.sum(1)
        per_seq = masked_sum(x, mask, dim=1) / lengths.clamp_min(1.0)
        return per_seq.sum() / (lengths > 0).sum().clamp_min(1)  # rows without tokens: none
    raise ValueError(f"unknown loss_norm {loss_norm!r}; expected 'token' or 'sequence'")


def critic_free_policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                            mask: torch.Tensor, clip_range: float, loss_norm: str = "token"
                            ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The clipped surrogate (to be minimized) with one advantage per completion.

    Per token: max(−A·ρ, −A·clip(ρ, 1 − ε, 1 + ε)) with ρ = π / π_old of the sampled token and
    A the completion's advantage ((B,) or already broadcast to (B, T)), reduced by
    :func:`reduce_tokens` with ``loss_norm``. Also returns ``approx_kl`` (k3 of KL(π_old ‖ π))
    and ``clipfrac``, detached, as per-token means.
    """
    adv = advantages.unsqueeze(-1) if advantages.dim() == 1 else advantages
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = reduce_tokens(torch.maximum(unclipped, clipped), mask, loss_norm)
    with torch.no_grad():
        stats = {"approx_kl": masked_mean((ratio - 1.0) - log_ratio, mask),
                 "clipfrac": masked_mean((clipped > unclipped).float(), mask)}
    return loss, stats
