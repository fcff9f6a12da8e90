"""Joining the world before a run starts, and one run directory for all ranks.

:func:`start_world` checks everything a distributed launch can get wrong *before* the first
collective (so every rank fails the same way: one line, exit code 2, nothing written) and
joins the process group. :func:`create_run` / :func:`open_run` give each rank a
:class:`~rlseek.distributed.files.RankRun` on the directory rank 0 created or reopened.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rlseek.config import DISTRIBUTED_DEFAULTS, ExperimentConfig
from rlseek.distributed import world as W
from rlseek.distributed.files import RankRun
from rlseek.errors import ConfigError, RlseekError
from rlseek.runs import Run


def settings(config: ExperimentConfig) -> dict[str, Any]:
    """``run.distributed`` with defaults (ddp, auto backend) when the config leaves it null."""
    return dict(config.run.distributed or DISTRIBUTED_DEFAULTS)


def start_world(config: ExperimentConfig, strategies: Sequence[str], algo: str) -> W.World:
    """Join torchrun's group for ``config`` (a world of one without torchrun).

    Refuses, with a :class:`ConfigError`: an agent without distributed support
    (``strategies`` empty), a strategy the agent does not support (these two also without
    torchrun when ``run.distributed`` is set), a backend the device cannot run, a world size
    that does not divide ``run.n_envs`` (the global batch) or would split a GRPO group.
    """
    launched = W.launched_by_torchrun()
    if not launched and config.run.distributed is None:
        return W.current()
    from rlseek.runtime import resolve_device

    opts = settings(config)
    if not strategies:
        raise ConfigError(f"agent '{algo}' trains in one process only; launch it without torchrun "
                          "(distributed training covers lm-ppo, lm-grpo, lm-rloo and reward models)")
    if opts["strategy"] not in strategies:
        raise ConfigError(f"field 'run.distributed.strategy' is {opts['strategy']!r}, which agent '{algo}' "
                          f"does not support; use {' or '.join(repr(s) for s in strategies)}")
    device = resolve_device(config.run.device, check=True)
    W.resolve_backend(opts["backend"], device)
    if opts["strategy"] == "fsdp":
        for field, why in (("lora", "the adapter and its disabled-adapter reference"),
                           ("micro_batch_tokens", "token-budget micro-batches differ between ranks")):
            if config.agent.params.get(field):
                raise ConfigError(f"field 'agent.params.{field}' is set with run.distributed.strategy "
                                  f"'fsdp', which does not support {why}; use strategy ddp")
    if not launched:  # one process with run.distributed set: a world of one
        return W.current()
    size = int(os.environ["WORLD_SIZE"])
    if getattr(config.run, "tasks", None) is not None or getattr(config.run, "stages", None):
        raise ConfigError("fields 'run.tasks' and 'run.stages' are for one-process runs; launch "
                          "continual or staged runs without torchrun")
    if config.run.n_envs % size:
        raise ConfigError(f"field 'run.n_envs' (the global batch) is {config.run.n_envs}, which world size "
                          f"{size} does not divide; use a multiple of {size} (each rank takes n_envs / world size)")
    group = config.agent.params.get("group_size")
    if isinstance(group, int) and group > 0 and (config.run.n_envs // size) % group:
        raise ConfigError(f"field 'run.n_envs' is {config.run.n_envs}: each of {size} ranks would hold "
                          f"{config.run.n_envs // size} rows, not a multiple of agent.params.group_size "
                          f"({group}); a group's completions must stay on one rank, so use a multiple "
                          f"of {size * group}")
    return W.init_world(opts["backend"], device, opts["timeout_s"])


def create_run(make: Callable[[], Run], collective: bool = False) -> Run:
    """Rank 0 runs ``make`` (``Run.create``); every rank gets a :class:`RankRun` on its
    directory. An :class:`RlseekError` on rank 0 (an --out that is not empty) is raised on
    every rank with the same message."""
    world = W.current()
    if not world.distributed:
        return make()
    run, error = None, None
    if world.is_main:
        try:
            run = make()
        except RlseekError as exc:
            error = str(exc)
    path, error = W.broadcast_object((str(run.path) if run else None, error))
    if error is not None:
        raise RlseekError(error)
    if run is None:
        run = Run.open(Path(path))
    return RankRun.wrap(run, collective=collective)


def open_run(run: Run, collective: bool = False) -> Run:
    """A reopened run (``--resume``) as every rank's :class:`RankRun`."""
    if not W.current().distributed:
        return run
    return RankRun.wrap(run, collective=collective)


def record_world(run: Run, strategy: str) -> None:
    """meta.json: ``world_size`` of this session, ``world_sizes`` over all sessions (resumes may
    change it) and the strategy. Rank 0 writes; no-op for a one-process run without torchrun
    and without ``run.distributed``."""
    world = W.current()
    if not world.distributed and run.config.run.distributed is None:
        return
    if world.is_main:
        sizes = list(run.meta.get("world_sizes") or [])
        run.update_meta(world_size=world.world_size, world_sizes=[*sizes, world.world_size],
                        distributed_strategy=strategy, distributed_backend=world.backend)
    W.barrier()
