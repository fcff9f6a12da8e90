"""Host-side batching helpers of the text-policy trainers (no device sync in the update loop).

:func:`trim` cuts a minibatch to its longest prompt and response, :func:`token_budget_groups`
packs rows into micro-batches of at most ``micro_batch_tokens`` padded tokens,
:func:`make_optimizer` is the trainers' Adam (fused AdamW on CUDA), :func:`to_device` moves
host tensors without a stream sync and :func:`host_floats` brings the update's figures to the
host in one copy. :mod:`rlseek.agents.lm_ppo.trainer`
re-exports them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def make_optimizer(params: list[nn.Parameter], lr: float, device: torch.device) -> torch.optim.Optimizer:
    """Adam (eps 1e-5, no weight decay) over float32 weights with float32 moments; on CUDA the
    fused AdamW kernel with weight decay 0 (the same update, one kernel for all tensors)."""
    if device.type == "cuda":
        return torch.optim.AdamW(params, lr=lr, eps=1e-5, weight_decay=0.0, fused=True)
    return torch.optim.Adam(params, lr=lr, eps=1e-5)


def token_budget_groups(prompt_lens: torch.Tensor, response_lens: torch.Tensor, rows: torch.Tensor,
                        budget: int) -> list[torch.Tensor]:
    """Split ``rows`` (host ids) into groups whose padded size — rows × (longest prompt +
    longest response) — stays within ``budget`` tokens (a longer row alone is its own
    group). Rows are taken longest first, so each group is trimmed to similar lengths.
    Pure host work on Python ints (no per-element tensor reads: the trainers call it once
    per minibatch while the device works)."""
    total = prompt_lens[rows] + response_lens[rows]
    order = rows[torch.sort(total, descending=True, stable=True).indices].tolist()
    plens, rlens = prompt_lens.tolist(), response_lens.tolist()
    groups: list[list[int]] = []
    cur: list[int] = []
    wp = wr = 0
    for i in order:
        p, r = int(plens[i]), int(rlens[i])
        np_, nr = max(wp, p), max(wr, r)
        if cur and (len(cur) + 1) * (np_ + max(nr, 1)) > budget:
            groups.append(cur)
            cur, np_, nr = [], p, r
        cur.append(i)
        wp, wr = np_, nr
    if cur:
        groups.append(cur)
    return [torch.tensor(g, dtype=torch.long) for g in groups]


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``t`` on ``device``. A host tensor bound for a CUDA device goes through pinned memory
    without blocking: a copy from pageable memory would first wait for everything queued on
    the stream, stalling the host at each minibatch while the GPU drains (then idles)."""
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def trim_bounds(prompt_mask: torch.Tensor, mask: torch.Tensor) -> tuple[int, int]:
    """First prompt column that is not padding in every row, and one past the longest response."""
    keep_p = prompt_mask.any(0).nonzero()
    keep_r = mask.any(0).nonzero()
    return (int(keep_p[0]) if len(keep_p) else 0), (int(keep_r[-1]) + 1 if len(keep_r) else 1)


def cut(batch: dict[str, torch.Tensor], start: int, end: int,
        rows: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """``batch`` (its ``rows`` when given) with prompt columns from ``start`` and response
    columns up to ``end``; 1-d entries are kept whole."""
    out = {}
    for key, value in batch.items():
        if rows is not None:
            value = value[rows]
        if key.startswith("prompt_"):
            out[key] = value[:, start:]
        elif value.dim() == 2:
            out[key] = value[:, :end]
        else:
            out[key] = value
    return out


def trim(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop prompt columns that are padding in every row and response columns past the
    longest response, so a minibatch costs only as much as its longest sequence."""
    return cut(batch, *trim_bounds(batch["prompt_mask"], batch["mask"]))


def host_floats(values: list[Any]) -> list[float]:
    """Python floats of a list of 0-d tensors and numbers, the tensors brought over in one
    device copy (one stream sync for all of them)."""
    at = [i for i, v in enumerate(values) if isinstance(v, torch.Tensor)]
    out = [0.0 if isinstance(v, torch.Tensor) else float(v) for v in values]
    if at:
        dev = values[at[0]].device
        got = torch.stack([values[i].reshape(()).to(dev) for i in at]).cpu().tolist()
        for i, g in zip(at, got, strict=True):
            out[i] = float(g)
    return out


def host_stats(stats: dict[str, Any]) -> dict[str, float]:
    """``stats`` with every value a Python float, the 0-d tensors among them brought over in
    one copy (one stream sync for all, not one per figure)."""
    return dict(zip(stats, host_floats(list(stats.values())), strict=True))
