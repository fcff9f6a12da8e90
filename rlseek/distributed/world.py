"""The process group of a ``torchrun`` launch, and the few collectives rlseek needs.

``torchrun --nproc-per-node N -m rlseek train CONFIG`` starts N copies of rlseek with
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set;
:func:`init_world` reads them and joins the group (``init_process_group(init_method="env://")``).
Without those variables the world is one process and every collective here returns its input.

Backends: ``auto`` is NCCL on CUDA and gloo on CPU. Asking for NCCL on a machine without CUDA,
or for a CUDA device with gloo only, fails with one line (:class:`~rlseek.errors.ConfigError`,
exit code 2) before anything is written.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from rlseek.errors import ConfigError

STRATEGIES = ("ddp", "fsdp")
"""``run.distributed.strategy`` values: ``ddp`` (replicated weights, gradients all-reduced) or
``fsdp`` (FSDP2: parameters, gradients and optimizer state sharded across ranks)."""
BACKENDS = ("auto", "gloo", "nccl")


@dataclass(frozen=True)
class World:
    """Where this process stands: its rank among ``world_size`` processes and the backend."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    """The torch.distributed backend in use; None for a single process without a group."""

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when a process group is up (also for a torchrun launch of one process)."""
        return self.backend is not None


_WORLD = World()


def launched_by_torchrun() -> bool:
    """Whether torchrun (or another launcher using its env:// variables) started us."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def current() -> World:
    """This process's :class:`World` (size 1 until :func:`init_world` joined a group)."""
    return _WORLD


def resolve_backend(backend: str, device: str) -> str:
    """``auto`` -> NCCL for CUDA devices, gloo otherwise; refuses pairs the machine cannot run."""
    if backend not in BACKENDS:
        raise ConfigError(f"field 'run.distributed.backend' must be one of {', '.join(BACKENDS)}, got {backend!r}")
    cuda = str(device).startswith("cuda")
    if backend == "auto":
        backend = "nccl" if cuda else "gloo"
    if backend == "nccl" and not (cuda and torch.cuda.is_available() and torch.distributed.is_nccl_available()):
        raise ConfigError("field 'run.distributed.backend' is 'nccl' but this process trains on "
                          f"device {device!r} without CUDA/NCCL; use backend gloo (or auto) on CPU")
    if backend == "gloo" and not torch.distributed.is_gloo_available():
        raise ConfigError("field 'run.distributed.backend' is 'gloo' but this torch build has no gloo")
    if backend == "gloo" and cuda:
        raise ConfigError("field 'run.distributed.backend' is 'gloo' with a CUDA device; use nccl (or auto) on GPUs")
    return backend


def init_world(backend: str = "auto", device: str = "cpu", timeout_s: float = 1800.0) -> World:
    """Join torchrun's process group (idempotent); a plain process gets a world of one.

    On CUDA each rank takes ``cuda:LOCAL_RANK``. ``timeout_s`` bounds every collective, so a
    killed peer makes the survivors fail instead of hanging forever.
    """
    global _WORLD
    if _WORLD.distributed or not launched_by_torchrun():
        return _WORLD
    rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    name = resolve_backend(backend, device)
    if name == "nccl":
        torch.cuda.set_device(local)
    torch.distributed.init_process_group(backend=name, init_method="env://", rank=rank,
                                         world_size=size, timeout=dt.timedelta(seconds=float(timeout_s)))
    _WORLD = World(rank=rank, world_size=size, local_rank=local, backend=name)
    return _WORLD


def shutdown() -> None:
    """Leave the process group (at the end of a run)."""
    global _WORLD
    if _WORLD.distributed and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    _WORLD = World()


def rank_seed(seed: int, rank: int) -> int:
    """A seed of its own for each (seed, rank), for per-rank streams (Python/NumPy/torch global
    RNGs). Rank 0's equals ``seed``, so a one-process run keeps its numbers."""
    return int(seed) + 7_919 * int(rank)


def shard_bounds(n: int, world: World | None = None) -> tuple[int, int]:
    """Rows [start, stop) of a global batch of ``n`` that this rank owns (contiguous blocks)."""
    w = world or _WORLD
    per = n // w.world_size
    return w.rank * per, (w.rank + 1) * per


def barrier() -> None:
    """Wait for every rank (no-op alone)."""
    if _WORLD.distributed:
        torch.distributed.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (a picklable Python value; used for small things
    such as the run directory's path, never for files read from disk)."""
    if not _WORLD.distributed:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=src)
    return box[0]


def _on_wire(t: torch.Tensor) -> torch.Tensor:
    """``t`` on a device the backend can reduce (NCCL: the rank's GPU)."""
    if _WORLD.backend == "nccl" and t.device.type != "cuda":
        return t.to(f"cuda:{_WORLD.local_rank}")
    return t


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum of ``t`` over ranks, in place (returned for chaining)."""
    if _WORLD.distributed and _WORLD.world_size > 1:
        wire = _on_wire(t)
        torch.distributed.all_reduce(wire, op=torch.distributed.ReduceOp.SUM)
        if wire is not t:
            t.copy_(wire)
    return t


def all_gather_rows(t: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``t`` (same shape on every rank) along dim 0, in rank order."""
    if not (_WORLD.distributed and _WORLD.world_size > 1):
        return t
    wire = _on_wire(t.contiguous())
    parts = [torch.empty_like(wire) for _ in range(_WORLD.world_size)]
    torch.distributed.all_gather(parts, wire)
    return torch.cat(parts, 0).to(t.device)


def mean_scalars(scalars: Mapping[str, Any], skip: Sequence[str] = ()) -> dict[str, Any]:
    """Logged scalars averaged over ranks (one all-reduce for all keys).

    Every rank holds the same share of the global batch, so a per-rank batch mean averaged
    over ranks is the global batch mean. NaN ("not applicable" reward terms) is left out of the
    mean per key; a key NaN on every rank stays NaN. Keys in ``skip`` and non-numbers are
    rank 0's values (timings, rates), returned as they are.
    """
    out = dict(scalars)
    if not (_WORLD.distributed and _WORLD.world_size > 1):
        return out
    keys = sorted(k for k, v in scalars.items()
                  if k not in skip and isinstance(v, (int, float)) and not isinstance(v, bool))
    vals = torch.tensor([float(scalars[k]) for k in keys], dtype=torch.float64)
    finite = torch.isfinite(vals)
    buf = torch.stack([torch.where(finite, vals, torch.zeros_like(vals)), finite.double()])
    all_reduce_sum(buf)
    for i, key in enumerate(keys):
        count = float(buf[1, i])
        out[key] = float(buf[0, i]) / count if count else float("nan")
    return out
