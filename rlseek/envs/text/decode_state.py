"""The pre-allocated state of the static decode path (:mod:`rlseek.envs.text.static_decode`).

One :class:`DecodeState` per shape bucket (batch rows, prompt columns, new tokens): a
transformers ``StaticCache`` of ``prompt_len + new_tokens`` positions and every tensor the
decode step reads or writes (the current token, position ids, the additive attention mask,
the live/ended flags, the output tokens and mask, the step counter). The step only writes
into these tensors in place, so their addresses never change and one captured CUDA graph of
the step replays for every token of every rollout of that bucket.

Why buckets: a CUDA graph is fixed to its tensors' shapes. Rounding the batch up to a
multiple of :data:`BATCH_MULTIPLE` rows and the prompt up to a multiple of
:data:`PROMPT_MULTIPLE` columns (extra rows are ended from the start, extra columns are left
padding with mask 0) lets a run whose prompt lengths vary reuse a few graphs instead of
capturing one per batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

BATCH_MULTIPLE = 8
"""Rows are padded up to a multiple of this on the graph path."""
PROMPT_MULTIPLE = 32
"""Prompt columns are left-padded up to a multiple of this on the graph path."""
MAX_BUCKETS = 4
"""Buckets (caches and graphs) kept per engine; the least recently used goes first."""


def bucket_shape(batch: int, prompt_len: int, padded: bool) -> tuple[int, int]:
    """(rows, prompt columns) of the bucket for a ``batch`` × ``prompt_len`` decode;
    unchanged when ``padded`` is False (no graphs: nothing to reuse)."""
    if not padded:
        return batch, prompt_len
    up = lambda n, m: -(-n // m) * m  # noqa: E731
    return up(max(batch, 1), BATCH_MULTIPLE), up(max(prompt_len, 1), PROMPT_MULTIPLE)


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """0 where ``allowed``, the dtype's most negative finite value elsewhere (finite, so a
    row that may attend to nothing gets uniform weights instead of NaN)."""
    low = torch.finfo(dtype).min
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill_(~allowed, low)


@dataclass
class DecodeState:
    """Every tensor of one bucket's decode loop (shapes: B rows, P prompt columns, T tokens)."""

    batch: int
    prompt_len: int
    new_tokens: int
    cache: Any
    """transformers ``StaticCache`` of P + T positions."""
    tok: torch.Tensor
    """(B, 1) the token the next forward consumes."""
    pos: torch.Tensor
    """(B, 1) its position id (attended tokens before it)."""
    live: torch.Tensor
    """(B,) long: 1 where the row was live when ``tok`` was chosen."""
    done: torch.Tensor
    """(B,) bool: the row has ended."""
    eos: torch.Tensor
    """(B,) bool: the row ended with EOS."""
    tokens: torch.Tensor
    """(B, T) the chosen tokens (the fill id after a row ended)."""
    live_mask: torch.Tensor
    """(B, T) long: 1 on every generated token (EOS included)."""
    logprobs: torch.Tensor
    """(B, T) the cached forward's log-probs (written only with ``record_logprobs``)."""
    mask: torch.Tensor
    """(B, 1, 1, P + T) additive attention mask of the next forward."""
    step: torch.Tensor
    """(1,) long: the index of the next token to choose."""
    rows: int = 0
    """Real rows of the decode in progress (the rest are bucket padding, ended from the start)."""
    graph: torch.cuda.CUDAGraph | None = None
    graph_key: tuple[Any, ...] | None = None

    @classmethod
    def allocate(cls, config: Any, batch: int, prompt_len: int, new_tokens: int,
                 device: torch.device, mask_dtype: torch.dtype) -> DecodeState:
        """Fresh buffers on ``device`` and a static cache for ``config`` (allocated by the
        first prefill, in the dtype the trunk computes in)."""
        from transformers import StaticCache

        B, P, T = batch, prompt_len, new_tokens
        long = dict(dtype=torch.long, device=device)
        return cls(
            batch=B, prompt_len=P, new_tokens=T,
            cache=StaticCache(config=config, max_cache_len=P + T),
            tok=torch.zeros((B, 1), **long), pos=torch.zeros((B, 1), **long),
            live=torch.zeros(B, **long), done=torch.zeros(B, dtype=torch.bool, device=device),
            eos=torch.zeros(B, dtype=torch.bool, device=device),
            tokens=torch.zeros((B, T), **long), live_mask=torch.zeros((B, T), **long),
            logprobs=torch.zeros((B, T), device=device),
            mask=torch.zeros((B, 1, 1, P + T), dtype=mask_dtype, device=device),
            step=torch.zeros(1, **long),
        )

    def reset(self, prompt_mask: torch.Tensor, rows: int, fill: int) -> torch.Tensor:
        """Start a decode of ``prompt_mask`` (rows × P, already left-padded to the bucket's
        columns) in place; rows past ``rows`` are ended from the start. Returns the (B, 1, P,
        P + T) additive mask of the prefill."""
        B, P = self.batch, self.prompt_len
        self.cache.reset()
        self.rows = rows
        pm = torch.zeros((B, P), dtype=torch.bool, device=self.tokens.device)
        pm[:rows] = prompt_mask.bool()
        self.pos.copy_(pm.long().sum(1, keepdim=True))
        self.done.fill_(False)
        self.done[rows:] = True
        self.eos.fill_(False)
        self.tokens.fill_(fill)
        self.live_mask.zero_()
        self.logprobs.zero_()
        self.step.zero_()
        self.live.zero_()
        keys = torch.zeros((B, P + self.new_tokens), dtype=torch.bool, device=pm.device)
        keys[:, :P] = pm
        self.mask.copy_(additive_mask(keys, self.mask.dtype)[:, None, None, :])
        causal = torch.ones((P, P + self.new_tokens), dtype=torch.bool, device=pm.device).tril()
        return additive_mask(keys[:, None, :] & causal[None], self.mask.dtype)[:, None]
