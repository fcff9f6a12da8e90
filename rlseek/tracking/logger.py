"""The one place a run's scalars go: TensorBoard (``RUN/tb/``) and the run's MLflow record.

Every agent writes its scalars through :class:`ScalarLogger` (SB3 through an output format
that forwards to it, d3rlpy through a logger adapter, lm-ppo directly), so TensorBoard and
MLflow always hold the same keys at the same steps and nothing is logged twice by hand.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlseek.tracking.tracker import Tracker


class ScalarLogger:
    """Scalars to TensorBoard and to a :class:`~rlseek.tracking.Tracker`.

    Args:
        tb_dir: the TensorBoard folder (created on the first scalar).
        tracker: the run's tracker; None records to TensorBoard only.
    """

    def __init__(self, tb_dir: str | Path | None, tracker: Tracker | None = None) -> None:
        self.tb_dir = Path(tb_dir) if tb_dir is not None else None
        self.tracker = tracker if tracker is not None else Tracker.disabled()
        self._writer: Any = None

    @property
    def writer(self) -> Any:
        """The TensorBoard ``SummaryWriter`` (for text or histograms; scalars go via :meth:`log`)."""
        if self._writer is None and self.tb_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.tb_dir.mkdir(parents=True, exist_ok=True)
            self._writer = SummaryWriter(str(self.tb_dir))
        return self._writer

    def log(self, scalars: Mapping[str, Any], step: int) -> None:
        """Write every number in ``scalars`` at ``step``; None and non-numbers are skipped,
        NaN is kept (TensorBoard and MLflow both show it as a gap)."""
        clean: dict[str, float] = {}
        for key, value in scalars.items():
            if value is None or isinstance(value, bool):
                continue
            try:
                clean[str(key)] = float(value)
            except (TypeError, ValueError):
                continue
        if not clean:
            return
        w = self.writer
        if w is not None:
            for key, value in clean.items():
                w.add_scalar(key, value, int(step))
        self.tracker.log_metrics({k: v for k, v in clean.items() if not math.isinf(v)}, int(step))

    def flush(self) -> None:
        """Flush TensorBoard's event file (an interrupted run keeps its curves)."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flush and close TensorBoard (the tracker is finished by whoever opened it)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
