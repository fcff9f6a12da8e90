"""Adversarial perturbations of input embeddings (PGD with gradient-sign steps).

For a batch of preference pairs the attacker adds ``δ`` to the token embeddings of both texts
and climbs the Bradley–Terry loss: ``steps`` steps of size ``ε/steps`` along ``sign(∇_δ loss)``,
each followed by clipping ``δ`` into the L∞ ball of radius ``ε`` (Madry et al., 2018, without a
random start, so the attack is deterministic). Padding positions are never perturbed; position
embeddings are not perturbed (the backbone adds them to the perturbed token embeddings).

``ε`` is *relative*: it is measured in units of the root-mean-square entry of the backbone's
token-embedding matrix, taken once when the reward model is created from its backbone and saved
with it (``embedding_rms`` in ``reward_model.json``). So ``ε = 0.1`` moves every coordinate of
every token embedding by at most 10 % of a typical coordinate, whatever the backbone's scale,
and a model trained with and one trained without augmentation are attacked with the same
absolute radius. Augmented training adds the loss on the perturbed pair to the clean loss
(weight ``weight``), as in adversarial training for text classifiers (Miyato et al., 2017).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rlseek.rewards.learned.model import RewardModel


@dataclass
class AdversarialConfig:
    """PGD on token embeddings: radius ``epsilon`` (relative, see module doc), ``steps`` steps."""

    epsilon: float = 0.1
    """L∞ radius in units of the embedding matrix's RMS entry."""
    steps: int = 5
    """Gradient-sign steps, each of size epsilon/steps."""
    weight: float = 1.0
    """Weight of the perturbed-pair loss next to the clean loss during training."""

    def __post_init__(self) -> None:
        if not self.epsilon > 0:
            raise ValueError(f"adversarial epsilon must be > 0, got {self.epsilon}")
        if int(self.steps) < 1:
            raise ValueError(f"adversarial steps must be >= 1, got {self.steps}")


def embedding_rms(model: RewardModel) -> float:
    """The RMS entry of the backbone's token-embedding matrix (the unit of ε)."""
    w = model.backbone.get_input_embeddings().weight
    return float(w.detach().float().pow(2).mean().sqrt())


def absolute_epsilon(model: RewardModel, cfg: AdversarialConfig) -> float:
    """ε in embedding units, from the scale saved with the model (or measured now)."""
    scale = model.info.get("embedding_rms")
    if scale is None:
        scale = embedding_rms(model)
        model.info["embedding_rms"] = scale
    return float(cfg.epsilon) * float(scale)


def bt_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor, margin: torch.Tensor | None) -> torch.Tensor:
    """Mean Bradley–Terry loss −log σ(r_c − r_r − margin)."""
    diff = r_chosen - r_rejected
    if margin is not None:
        diff = diff - margin
    return -F.logsigmoid(diff).mean()


def perturb(
    model: RewardModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    loss_of_scores: Callable[[torch.Tensor], torch.Tensor],
    cfg: AdversarialConfig,
) -> torch.Tensor:
    """The PGD perturbation δ (same shape as the token embeddings) that raises the loss.

    ``loss_of_scores`` maps the scores of the whole batch to the loss the attacker climbs.
    Parameters get no gradient from the attack.
    """
    eps = absolute_epsilon(model, cfg)
    step = eps / int(cfg.steps)
    emb = model.embed(input_ids).detach()
    mask = attention_mask.unsqueeze(-1).to(emb.dtype)
    delta = torch.zeros_like(emb, requires_grad=True)
    for _ in range(int(cfg.steps)):
        loss = loss_of_scores(model(attention_mask=attention_mask, inputs_embeds=emb + delta))
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            delta = (delta + step * grad.sign() * mask).clamp(-eps, eps)
        delta.requires_grad_(True)
    return delta.detach()


def perturbed_scores(
    model: RewardModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    delta: torch.Tensor,
) -> torch.Tensor:
    """Scores with ``delta`` added to the token embeddings (gradients reach the embeddings)."""
    return model(attention_mask=attention_mask, inputs_embeds=model.embed(input_ids) + delta)
