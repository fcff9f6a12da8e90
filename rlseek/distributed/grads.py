"""``strategy: ddp``: replicated weights, gradients summed over ranks after backward.

rlseek does not wrap the policy in :class:`torch.nn.parallel.DistributedDataParallel`. Its
updates accumulate micro-batches whose loss weights are shares of the *global* token count
(see the text trainers' ``accumulate``), a rank may hold no row of a minibatch, LoRA leaves
most parameters frozen and the value head is a second module: DDP's hooks would average (not
sum) the gradients, need ``no_sync`` around every micro-batch but the last and
``find_unused_parameters`` for an empty share. Instead each rank backpropagates its own
micro-batches, weighted by ``its tokens / all ranks' tokens``, and :func:`all_reduce_gradients`
sums the gradients once per optimizer step, in flat buckets (one collective per ~25 MB). The
summed gradient is then exactly the one-process gradient of the same global minibatch (up to
float summation order), and clipping and the optimizer step see identical gradients on every
rank, so the replicas stay identical.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from rlseek.distributed import world as W

BUCKET_BYTES = 25 * 2**20
"""Gradient bytes per all-reduce (PyTorch DDP's default bucket size)."""


def all_reduce_gradients(params: Iterable[torch.nn.Parameter], bucket_bytes: int = BUCKET_BYTES) -> None:
    """Sum ``.grad`` of ``params`` over ranks, in place (no-op in a world of one).

    A parameter without a gradient on this rank (it saw no row this step) takes part as zeros,
    so every rank issues the same collectives in the same order.
    """
    world = W.current()
    if not (world.distributed and world.world_size > 1):
        return
    params = [p for p in params if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    bucket: list[torch.Tensor] = []
    size = 0
    for p in params:
        bucket.append(p.grad)
        size += p.grad.numel() * p.grad.element_size()
        if size >= bucket_bytes:
            _reduce(bucket)
            bucket, size = [], 0
    if bucket:
        _reduce(bucket)


def _reduce(grads: list[torch.Tensor]) -> None:
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat, op=torch.distributed.ReduceOp.SUM)
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset:offset + n].view_as(g))
        offset += n
