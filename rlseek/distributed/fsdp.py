"""``strategy: fsdp``: FSDP2 (``torch.distributed.fsdp.fully_shard``) for the text policy.

Each transformer block is its own FSDP unit and a root unit holds the rest (embeddings, final
norm, the LM head — tied weights stay in one unit — and the value head): parameters, gradients
and Adam's state live 1/W on each rank, and a block's weights are all-gathered only while it
runs. FSDP's reduce-scatter averages over ranks while the micro-batch losses are already
weighted by global token shares (see :mod:`rlseek.distributed.grads`), so the text trainer
scales its backward by the world size to get the sum (a divide factor of 1 needs PREMUL_SUM,
which gloo lacks).

What runs unsharded, on purpose: rollouts, evaluation and the files use a plain copy of the
policy refreshed from the shards after every update (:meth:`ShardedPolicy.sync`, one
full-state-dict gather), as RLHF systems feed a separate inference engine; and the frozen
reference is replicated. So FSDP saves the optimizer's and the gradients' memory (the larger
part of training memory with Adam), not the generation copy's. Checkpoints hold the full
weights (``policy/``, as ddp writes them) and the full optimizer state keyed by parameter names
(``optimizer_full.pt``), so they load with any world size.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn


def transformer_blocks(lm: nn.Module) -> list[nn.Module]:
    """The decoder's repeated blocks (``model.layers`` of Llama-style models, ``h`` of GPT-2)."""
    trunk = lm.get_decoder()
    for name in ("layers", "h", "blocks"):
        blocks = getattr(trunk, name, None)
        if isinstance(blocks, nn.ModuleList):
            return list(blocks)
    raise ValueError(f"cannot find the transformer blocks of {type(lm).__name__} for FSDP")


class ResponseForward(nn.Module):
    """The FSDP root: the policy's teacher-forced forward as one module call, so the root's
    hooks (all-gather before, reduce-scatter after backward) run around every forward."""

    def __init__(self, lm: nn.Module, value_head: nn.Module | None) -> None:
        super().__init__()
        self.lm, self.value_head = lm, value_head

    def forward(self, inputs: dict[str, torch.Tensor], response_len: int, temperature: float,
                vocab_size: int | None, banned_ids: tuple[int, ...] | torch.Tensor, values: bool) -> Any:
        from rlseek.agents.lm_ppo.model import forward_response

        logits, vals = forward_response(self.lm, inputs, response_len, temperature,
                                        self.value_head if values else None, vocab_size=vocab_size,
                                        banned_ids=banned_ids)
        # FSDP hooks the backward of the root's outputs; a view (the squeezed values) would
        # lose the hook under an in-place op downstream, so the root returns fresh tensors.
        return logits.clone() if logits._base is not None else logits, None if vals is None else vals.clone()


class ShardedPolicy:
    """A :class:`~rlseek.agents.lm_ppo.model.PolicyWithValueHead` sharded with FSDP2, and its
    unsharded copy for rollouts, evaluation and files (:attr:`plain`)."""

    def __init__(self, policy: nn.Module) -> None:
        from torch.distributed.fsdp import fully_shard

        self.policy = policy
        self.plain = copy.deepcopy(policy)  # rollouts, evaluation, checkpoints and final/
        for p in self.plain.parameters():
            p.requires_grad_(False)
        self.root = ResponseForward(policy.lm, policy.value_head)
        for block in transformer_blocks(policy.lm):
            fully_shard(block)
        fully_shard(self.root)

    def forward(self, inputs: dict[str, torch.Tensor], response_len: int, temperature: float,
                vocab_size: int | None, banned_ids: tuple[int, ...] | torch.Tensor, values: bool) -> Any:
        """(logits, values) through the sharded root (every rank must call it alike)."""
        return self.root(inputs, response_len, temperature, vocab_size, banned_ids, values)

    def full_state(self) -> dict[str, torch.Tensor]:
        """The full weights, keyed like the root (``lm.…``, ``value_head.…``), on every rank."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(self.root, options=StateDictOptions(full_state_dict=True))

    @torch.no_grad()
    def sync(self) -> None:
        """Refresh :attr:`plain` from the shards (collective: every rank calls it)."""
        full = self.full_state()
        self.plain.lm.load_state_dict({k[3:]: v for k, v in full.items() if k.startswith("lm.")})
        if self.plain.value_head is not None:
            self.plain.value_head.load_state_dict(
                {k[len("value_head."):]: v for k, v in full.items() if k.startswith("value_head.")})

    def load_full(self, lm_state: dict[str, torch.Tensor], head_state: dict[str, torch.Tensor] | None) -> None:
        """Load full weights (a checkpoint's) into the shards and the plain copy (collective)."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        full = {f"lm.{k}": v for k, v in lm_state.items()}
        full.update({f"value_head.{k}": v for k, v in (head_state or {}).items()})
        set_model_state_dict(self.root, full, options=StateDictOptions(full_state_dict=True, strict=False))
        self.sync()

    def save_optimizer(self, optimizer: torch.optim.Optimizer, path: Path, write: bool) -> None:
        """The full optimizer state (gathered: collective), written to ``path`` where ``write``."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_optimizer_state_dict,
        )

        state = get_optimizer_state_dict(self.root, optimizer,
                                         options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if write:
            torch.save(state, path)

    def load_optimizer(self, optimizer: torch.optim.Optimizer, path: Path) -> None:
        """Load a full optimizer state written by :meth:`save_optimizer` (any world size)."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_optimizer_state_dict,
        )

        state = torch.load(path, weights_only=True)
        set_optimizer_state_dict(self.root, optimizer, state, options=StateDictOptions(full_state_dict=True))
