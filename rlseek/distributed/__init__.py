"""Multi-process training on PyTorch's own stack: ``torchrun`` launches, ``torch.distributed``
talks (gloo on CPU, NCCL on CUDA), FSDP2 shards.

* :mod:`rlseek.distributed.world` — the process group from torchrun's environment, rank and
  world size, seeds from (seed, rank), cross-rank reductions of logged scalars, barriers;
* :mod:`rlseek.distributed.grads` — the exact data-parallel gradient all-reduce (``ddp``);
* :mod:`rlseek.distributed.fsdp` — FSDP2 ``fully_shard`` per transformer block, full-state
  gathers for the rollout copy and checkpoints (``fsdp``);
* :mod:`rlseek.distributed.files` — rank 0 writes the run directory, the others wait;
* :mod:`rlseek.distributed.launch` — the checks before a launch joins, one run directory.

A single process (no torchrun) sees a :class:`World` of size 1 and every helper is a no-op, so
the same agent code runs with and without distribution.
"""

from rlseek.distributed.world import (
    STRATEGIES,
    World,
    all_gather_rows,
    all_reduce_sum,
    barrier,
    broadcast_object,
    current,
    init_world,
    launched_by_torchrun,
    mean_scalars,
    rank_seed,
    shard_bounds,
    shutdown,
)

__all__ = ["STRATEGIES", "World", "all_gather_rows", "all_reduce_sum", "barrier", "broadcast_object",
           "current", "init_world", "launched_by_torchrun", "mean_scalars", "rank_seed",
           "shard_bounds", "shutdown"]
