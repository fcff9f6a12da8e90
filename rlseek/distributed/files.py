"""One run directory for the whole world: rank 0 writes it, the other ranks read and wait.

:class:`RankRun` is the :class:`~rlseek.runs.Run` every rank of a distributed run holds. On
rank 0 it is the ordinary run directory. On the other ranks it writes nothing: no config or
meta, no TensorBoard events (``tb_dir`` is None, so the loop's logger writes nowhere), no
tracking record, no summary. Checkpoints stay atomic (temp folder + rename, by rank 0): with
``collective=False`` (ddp, replicated weights) only rank 0 runs the agent's ``write``; with
``collective=True`` (fsdp, DCP shards) every rank writes its shard into rank 0's temp folder
before the rename. Either way every rank leaves :meth:`RankRun.save_checkpoint` only after the
checkpoint is complete on disk, so a rank killed later resumes from a checkpoint all ranks
reached. The run directory must be on a file system every rank sees (one machine, or a shared
mount across machines).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rlseek.distributed import world as W
from rlseek.runs import (
    CHECKPOINT_PREFIX,
    STATE_FILE,
    Checkpoint,
    Run,
    _now,
    atomic_directory,
    atomic_write_json,
)


class RankRun(Run):
    """A run directory seen from one rank (see the module docstring)."""

    def __init__(self, path: Path, config: Any, *, collective: bool = False) -> None:
        super().__init__(path, config)
        self.world = W.current()
        self.collective = collective
        """Whether checkpoint writes are collective (every rank's ``write`` runs, fsdp)."""

    @classmethod
    def wrap(cls, run: Run, *, collective: bool = False) -> RankRun:
        """The same directory as ``run``, with rank-aware writes (the tracker is kept)."""
        out = cls(run.path, run.config, collective=collective)
        out.tracker = run.tracker
        return out

    @property
    def tb_dir(self) -> Path:  # type: ignore[override]
        return super().tb_dir if self.world.is_main else None  # type: ignore[return-value]

    def update_meta(self, **fields: Any) -> None:
        if self.world.is_main:
            super().update_meta(**fields)

    def add_fingerprint(self, name: str, path: str | Path) -> str:
        if self.world.is_main:
            return super().add_fingerprint(name, path)
        from rlseek.runs import sha256_file

        return sha256_file(path)

    def append_command(self, command: list[str] | None = None) -> None:
        if self.world.is_main:
            super().append_command(command)

    def finish(self, summary: dict[str, Any]) -> None:
        if self.world.is_main:
            super().finish(summary)
        W.barrier()

    def save_checkpoint(self, step: int, write: Callable[[Path], None],
                        state: dict[str, Any] | None = None) -> Checkpoint:
        """Write a checkpoint atomically (rank 0 renames it into place); returns on every rank
        once it is complete."""
        final = self.checkpoints_dir / f"{CHECKPOINT_PREFIX}{int(step):012d}"
        state = {"step": int(step), "time": _now(), **(state or {})}
        with self.shared_directory(final) as tmp:
            if self.collective or self.world.is_main:
                write(tmp)
            if self.world.is_main:
                atomic_write_json(tmp / STATE_FILE, state)
        if self.world.is_main:
            keep = max(1, int(self.config.run.keep_checkpoints))
            for old in self.checkpoints()[:-keep]:
                shutil.rmtree(old.path, ignore_errors=True)
        W.barrier()
        return Checkpoint(int(step), final, state)

    @contextlib.contextmanager
    def shared_directory(self, final: Path) -> Iterator[Path]:
        """:func:`~rlseek.runs.atomic_directory` made by rank 0, its temp path broadcast, and
        renamed into place only after every rank finished writing into it."""
        if not self.world.distributed:
            with atomic_directory(final) as tmp:
                yield tmp
            return
        if self.world.is_main:
            with atomic_directory(final) as tmp:
                W.broadcast_object(str(tmp))
                yield tmp
                W.barrier()
        else:
            tmp = Path(W.broadcast_object(None))
            yield tmp
            W.barrier()


def main_only(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on rank 0 only, then wait for it on every rank; rank 0's result (others: None)."""
    result = fn() if W.current().is_main else None
    W.barrier()
    return result


class FollowerSession:
    """What ranks other than 0 use in place of :class:`~rlseek.tracking.TrackedRun`: no MLflow
    record; :meth:`finish` only waits for rank 0 to write the summary."""

    def __init__(self, run: Run) -> None:
        from rlseek.tracking import Tracker

        self.run = run
        run.tracker = Tracker.disabled()

    def __enter__(self) -> FollowerSession:
        return self

    def finish(self, summary: dict[str, Any], step: int | None = None) -> None:
        self.run.finish(dict(summary))

    def __exit__(self, *exc: Any) -> None:
        return None


def session(run: Run, kind: str = "train") -> Any:
    """The run's training session: tracked on rank 0 (or alone), a :class:`FollowerSession`
    elsewhere."""
    if W.current().is_main:
        from rlseek.tracking import TrackedRun

        return TrackedRun(run, kind=kind)
    return FollowerSession(run)
