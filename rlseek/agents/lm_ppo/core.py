"""The math of PPO for language models, readable top to bottom.

Shapes: ``B`` completions, ``T`` response positions (right-padded). ``mask`` is 1.0 on the
generated tokens of a completion (its EOS included) and 0.0 on the padding after it. Every
reduction over tokens is *masked*: padding never contributes to a mean, a variance, an
advantage or a loss.

References: Schulman et al. 2017 (PPO), Schulman et al. 2016 (GAE), Ziegler et al. 2019
(KL-penalized RLHF), Schulman 2020 "Approximating KL divergence" (k1/k2/k3 estimators).
"""

from __future__ import annotations

import torch

from rlseek.envs.text.rollout import sample_tokens, tempered_logits

__all__ = ["entropy_of", "explained_variance", "gae", "kl_estimate", "kl_penalized_rewards",
           "kl_penalty_loss", "last_token_index", "logprobs_of", "masked_mean", "masked_sum",
           "masked_var", "masked_whiten", "policy_loss", "sample_tokens", "tempered_logits",
           "value_loss"]


# -- masked statistics ---------------------------------------------------------------------
def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Sum of ``x`` over the positions where ``mask`` is 1."""
    return (x * mask).sum() if dim is None else (x * mask).sum(dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` over the positions where ``mask`` is 1 (0 where the mask is empty)."""
    count = mask.sum() if dim is None else mask.sum(dim)
    return masked_sum(x, mask, dim) / count.clamp_min(1.0)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of the masked elements of ``x`` (Bessel-corrected by default)."""
    mean = masked_mean(x, mask)
    sq = masked_mean((x - mean) ** 2, mask)
    if not unbiased:
        return sq
    n = mask.sum()
    return torch.where(n > 1, sq * n / (n - 1), sq)  # no host sync on the count


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True,
                  eps: float = 1e-8) -> torch.Tensor:
    """Standardize ``x`` with the mean and std of its masked elements; padding is set to 0.

    ``shift_mean=False`` only rescales (keeps the sign of every element), which is how
    rewards may be whitened without changing which completions are better than average.
    """
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask


# -- log-probs and entropy -----------------------------------------------------------------
def logprobs_of(logits: torch.Tensor, tokens: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
    """log softmax(logits)[token] per position: (B, T, V), (B, T) -> (B, T).

    With ``mask``, positions where it is 0 are exactly 0: the padding after a completion is
    the pad id, which the policy never samples, so its log-prob is hugely negative and two
    forward passes may round it differently.
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    out = torch.gather(logp, -1, tokens.unsqueeze(-1)).squeeze(-1)
    return out if mask is None else torch.where(mask > 0, out, torch.zeros_like(out))


def logprobs_and_entropy(logits: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor | None = None,
                         entropy_grad: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`logprobs_of` and :func:`entropy_of` from one log-softmax (the same numbers):
    (B, T, V), (B, T) -> two (B, T). ``entropy_grad=False`` detaches the entropy (a figure,
    not a loss term: no backward through it). The trainers compile this on CUDA, where the
    fused kernels read the (B, T, V) float32 logits once instead of several times."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    out = torch.gather(logp, -1, tokens.unsqueeze(-1)).squeeze(-1)
    out = out if mask is None else torch.where(mask > 0, out, torch.zeros_like(out))
    lp = logp if entropy_grad else logp.detach()
    return out, -(lp.exp() * lp).sum(-1)


def entropy_of(logits: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of softmax(logits) per position: (B, T, V) -> (B, T)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


# -- KL estimators -------------------------------------------------------------------------
def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(π ‖ π_ref) from the log-probs of the *sampled* tokens.

    With r = π_ref(x) / π(x) and x ~ π, as estimates of the KL's *value*:
      * ``k1`` = −log r = log π − log π_ref: unbiased, high variance, negative for some tokens;
      * ``k2`` = ½ (log r)²: biased, low variance, ≥ 0;
      * ``k3`` = (r − 1) − log r: unbiased, low variance, ≥ 0.

    Their *gradients* are another matter (what matters for a penalty). As a detached
    per-token reward (policy gradient E[k · ∇log π]), only k1 gives ∇KL; k3 used that way
    barely regularizes near the reference. Differentiated as a loss term (E[∇k], GRPO's
    form), k2 gives ∇KL(π ‖ π_ref) and k3 gives ∇KL(π_ref ‖ π), which agrees with it to first
    order near the reference; k1 gives 0 in expectation. See :func:`kl_penalty_loss` and
    ``LmPpoConfig.kl_penalty``.
    """
    log_ratio = ref_logp - logp
    if estimator == "k1":
        return -log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio**2
    if estimator == "k3":
        return torch.expm1(log_ratio) - log_ratio
    raise ValueError(f"unknown KL estimator {estimator!r}; expected 'k1', 'k2' or 'k3'")


def kl_penalty_loss(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor,
                    estimator: str) -> torch.Tensor:
    """The KL penalty as a differentiated loss term (``kl_penalty: loss``): the masked
    per-token mean of ``kl_estimate(logp, ref_logp, estimator)``, with the gradient flowing
    through ``logp`` (the tokens are sampled from the rollout policy, which PPO's minibatch
    policy stays close to). Multiply by β and add to the loss."""
    return masked_mean(kl_estimate(logp, ref_logp.detach(), estimator), mask)


# -- rewards and advantages ----------------------------------------------------------------
def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last masked-in position per row, (B, T) -> (B,) (0 for an empty row)."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return torch.where(mask > 0, positions, torch.zeros_like(positions)).amax(1)


def kl_penalized_rewards(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor,
                         kl_coef: float) -> torch.Tensor:
    """Per-token rewards: −β·KL on every response token plus the score on the last one.

    The last token is the EOS token when the completion produced one, else the last token
    generated before the length cap.
    """
    rewards = -kl_coef * kl * mask
    idx = last_token_index(mask)
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards[rows, idx] += scores.to(rewards.dtype)
    return rewards


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
        lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation over right-padded responses.

    Each response ends its episode (EOS or length cap), so the value after the last token
    is 0: a truncated completion is final in RLHF, nothing follows it.
    Returns (advantages, returns), both 0 on padding; returns = advantages + values.
    """
    rewards, values = rewards * mask, values * mask
    T = rewards.shape[1]
    adv = torch.zeros_like(rewards)
    next_adv = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(T)):
        next_value = values[:, t + 1] if t + 1 < T else torch.zeros_like(values[:, 0])
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_adv = (delta + gamma * lam * next_adv) * mask[:, t]
        adv[:, t] = next_adv
    return adv, (adv + values) * mask


# -- losses --------------------------------------------------------------------------------
def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, clip_range: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate (to be minimized), per-token mean over the masked tokens.

    Also returns ``approx_kl`` (k3 estimate of KL(π_old ‖ π), Schulman 2020) and ``clipfrac``
    (share of tokens whose ratio was clipped), both detached.
    """
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {
            "approx_kl": masked_mean((ratio - 1.0) - log_ratio, mask),
            "clipfrac": masked_mean((clipped > unclipped).float(), mask),
        }
    return loss, stats


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
               mask: torch.Tensor, clip_range_value: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped value loss ½·max((V − R)², (V_clip − R)²), masked mean; also the clip share."""
    v_clipped = old_values + torch.clamp(values - old_values, -clip_range_value, clip_range_value)
    err = (values - returns) ** 2
    err_clipped = (v_clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(err, err_clipped), mask)
    return loss, masked_mean((err_clipped > err).float(), mask).detach()


def explained_variance(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """1 − Var[target − pred] / Var[target] over masked tokens (nan if Var[target] = 0)."""
    var_t = masked_var(target, mask)
    if var_t.item() == 0.0:
        return float("nan")
    return float(1.0 - masked_var(target - pred, mask) / var_t)
