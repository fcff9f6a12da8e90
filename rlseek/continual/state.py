"""What one task of a continual run hands to its agent, and what it leaves for the next task.

Every task's run directory ``tasks/NN-name/`` gets a ``continual/`` folder, written when the
task's training ends: ``replay.npz`` (the reservoir of samples of this and all earlier tasks)
and ``ewc-<part>.safetensors`` (the Fisher/anchor terms of this and all earlier tasks). The next
task reads them from its predecessor, so a killed run resumes from files alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rlseek.continual.buffer import ReservoirBuffer
from rlseek.continual.ewc import EwcPenalty
from rlseek.continual.spec import ContinualSpec

STATE_DIR = "continual"


@dataclass
class TaskContext:
    """Task ``index`` of ``spec``: where its predecessor's policy and state lie, where its go."""

    spec: ContinualSpec
    index: int
    run_dir: Path
    """This task's run directory."""
    previous: Path | None
    """The previous task's run directory (None for the first task)."""
    seed: int = 0

    @property
    def is_last(self) -> bool:
        return self.index == len(self.spec.tasks) - 1

    @property
    def state_dir(self) -> Path:
        return self.run_dir / STATE_DIR

    def _prev(self, name: str) -> Path | None:
        if self.previous is None:
            return None
        path = self.previous / STATE_DIR / name
        return path if path.is_file() else None

    def load_replay(self) -> ReservoirBuffer | None:
        """The past tasks' reservoir (None: replay off, or the first task)."""
        path = self._prev("replay.npz")
        if self.spec.replay is None or path is None:
            return None
        return ReservoirBuffer.load(path, seed=self.seed + 1000 * self.index)

    def save_replay(self, buffer: ReservoirBuffer) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        buffer.save(self.state_dir / "replay.npz")

    def load_ewc(self, part: str) -> EwcPenalty | None:
        """The past tasks' EWC terms for parameter group ``part`` (None: EWC off, first task)."""
        path = self._prev(f"ewc-{part}.safetensors")
        if self.spec.ewc is None or path is None:
            return None
        return EwcPenalty.load(path, self.spec.ewc.lam)

    def save_ewc(self, part: str, penalty: EwcPenalty) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        penalty.save(self.state_dir / f"ewc-{part}.safetensors")

    def new_buffer(self) -> ReservoirBuffer:
        """An empty reservoir of the configured capacity (replay must be on)."""
        assert self.spec.replay is not None
        return ReservoirBuffer(self.spec.replay.capacity, seed=self.seed + 1000 * self.index)
