"""Policy with a value head, the frozen reference, LoRA, and the teacher-forced forward pass.

The critic is a **value head on the policy's trunk** (a linear layer on the last hidden
state), not a separate network. Why: one forward pass gives both the log-probs and the
values, which halves the training compute of a separate critic — the budget that matters
on a CPU. The head is initialised at zero, so the first values are 0 and, because the
gradient reaching the trunk through the head is proportional to its weights, the value loss
does not disturb the language model until the head has learned something; ``vf_coef``
(0.1 by default) keeps its influence small after that.

The reference model is a frozen copy of the initial policy; with LoRA it is the same base
weights with the adapter disabled (no second copy in memory).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from rlseek.envs.text.rollout import full_precision, lm_head_float32, lm_trunk, policy_logits

_DROPOUT_FIELDS = ("resid_pdrop", "embd_pdrop", "attn_pdrop", "summary_first_dropout",
                   "hidden_dropout", "attention_dropout", "dropout", "hidden_dropout_prob",
                   "attention_probs_dropout_prob", "classifier_dropout")


def disable_dropout(model: nn.Module) -> None:
    """Dropout off everywhere: p = 0 in every Dropout module and in the config.

    PPO's ratio compares log-probs of two forward passes; dropout would make them differ
    even for identical weights and bias the clipping.
    """
    cfg = getattr(model, "config", None)
    for name in _DROPOUT_FIELDS:
        if cfg is not None and isinstance(getattr(cfg, name, None), float):
            setattr(cfg, name, 0.0)
    for mod in model.modules():
        if isinstance(mod, nn.Dropout):
            mod.p = 0.0


class PolicyWithValueHead(nn.Module):
    """A causal LM (optionally peft-wrapped) plus a zero-initialised scalar value head
    (``value_head=False``: none, ``self.value_head`` is None — the critic-free agents)."""

    def __init__(self, lm: nn.Module, hidden_size: int, lora: bool = False,
                 value_head: bool = True) -> None:
        super().__init__()
        self.lm = lm
        self.lora = lora
        self.value_head: nn.Linear | None = None
        if value_head:
            self.value_head = nn.Linear(hidden_size, 1)
            nn.init.zeros_(self.value_head.weight)
            nn.init.zeros_(self.value_head.bias)
        disable_dropout(self.lm)
        self.eval()  # dropout off; nothing else in a causal LM depends on train mode

    def train(self, mode: bool = True) -> PolicyWithValueHead:
        # Keep every module in eval mode: train mode would only switch dropout back on.
        return super().train(False)

    @contextlib.contextmanager
    def reference(self) -> Iterator[nn.Module]:
        """With LoRA: the LM with the adapter disabled (the frozen base = the reference)."""
        if not self.lora:
            raise RuntimeError("reference() is for LoRA policies; full fine-tuning keeps a copy")
        with self.lm.disable_adapter():
            yield self.lm

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def parameter_counts(self) -> dict[str, Any]:
        """Trainable and total parameter counts of the LM (value head reported apart)."""
        lm_total = sum(p.numel() for p in self.lm.parameters())
        lm_trainable = sum(p.numel() for p in self.lm.parameters() if p.requires_grad)
        head = sum(p.numel() for p in self.value_head.parameters()) if self.value_head is not None else 0
        return {
            "lm_parameters": lm_total,
            "lm_trainable_parameters": lm_trainable,
            "trainable_share": lm_trainable / lm_total if lm_total else 0.0,
            "value_head_parameters": head,
        }


def build_policy(lm: nn.Module, cfg: Any, *, value_head: bool = True, reference: bool = True
                 ) -> tuple[PolicyWithValueHead, nn.Module | None]:
    """Wrap ``lm`` as the policy (LoRA if ``cfg.lora``) and build the reference.

    Returns (policy, reference); the reference is None with LoRA (the adapter is disabled
    instead, see :meth:`PolicyWithValueHead.reference`) and with ``reference=False`` (no
    second copy of the weights: a KL-free agent, β = 0). ``value_head=False`` builds a
    policy without a critic.
    """
    disable_dropout(lm)
    hidden = int(lm.config.hidden_size)
    if cfg.lora:
        from peft import LoraConfig, get_peft_model
        from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as targets

        target = cfg.lora_target_modules or targets.get(lm.config.model_type) or "all-linear"
        peft_cfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                              lora_dropout=cfg.lora_dropout, target_modules=target,
                              task_type="CAUSAL_LM", bias="none")
        wrapped = get_peft_model(lm, peft_cfg)
        return PolicyWithValueHead(wrapped, hidden, lora=True, value_head=value_head), None
    if not reference:
        return PolicyWithValueHead(lm, hidden, lora=False, value_head=value_head), None
    ref = copy.deepcopy(lm)
    ref.requires_grad_(False)
    ref.eval()
    return PolicyWithValueHead(lm, hidden, lora=False, value_head=value_head), ref


def sequence_inputs(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, response_ids: torch.Tensor,
                    response_mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """input_ids / attention_mask / position_ids of left-padded prompt + right-padded response.

    Position ids count only real tokens (cumsum of the mask), so a left-padded row sees the
    same positions as it would unpadded — the same ids the cached rollout used.
    """
    ids = torch.cat([prompt_ids, response_ids], dim=1)
    mask = torch.cat([prompt_mask, response_mask.to(prompt_mask.dtype)], dim=1)
    pos = (mask.long().cumsum(-1) - 1).clamp_min(0)
    return {"input_ids": ids, "attention_mask": mask, "position_ids": pos}


def forward_response(lm: nn.Module, inputs: dict[str, torch.Tensor], response_len: int,
                     temperature: float, value_head: nn.Module | None = None, *,
                     vocab_size: int | None = None, banned_ids: Sequence[int] | torch.Tensor = ()
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Teacher-forced forward pass: the policy's logits predicting each response token,
    (B, T, V), and, with ``value_head``, the value of the state before each response token,
    (B, T).

    The trunk runs in whatever precision the caller set (autocast or not); the LM head, the
    logits and the value head run in float32 outside autocast, exactly as the rollout
    engine computes them, so bf16 training compares like with like. Logits are
    :func:`rlseek.envs.text.rollout.policy_logits`: cut to ``vocab_size``, ``banned_ids``
    (the pad id) masked, divided by ``temperature``. Only the last T + 1 positions go
    through the LM head: the logits at position i predict token i + 1, so the response's T
    tokens are predicted from the last prompt token up to the second-to-last response token.
    """
    T = response_len
    out = lm_trunk(lm)(**inputs, use_cache=False)
    hidden = out.last_hidden_state[:, -(T + 1):-1]
    logits = policy_logits(lm_head_float32(lm, hidden), temperature, vocab_size, banned_ids)
    values = None
    if value_head is not None:
        with full_precision(hidden.device):
            values = value_head(hidden.to(value_head.weight.dtype)).squeeze(-1).float()
    return logits, values
