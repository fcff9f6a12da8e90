"""A reservoir replay buffer of past-task samples.

Each sample is one row of a set of named arrays (robot: ``observations``, ``actions``,
``next_observations``, ``rewards``, ``dones``; text: prompt and answer ids). Rows stream in task
after task; reservoir sampling (Vitter's algorithm R) keeps ``capacity`` of them so that every
row seen so far is kept with the same probability ``capacity / seen``: old tasks are not pushed
out by the newest, which a FIFO buffer would do. Saved as ``.npz`` without pickles.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from rlseek.errors import RlseekError
from rlseek.runs import atomic_write_bytes


class ReservoirBuffer:
    """At most ``capacity`` rows of named arrays, a uniform sample of every row added."""

    def __init__(self, capacity: int, seed: int = 0) -> None:
        if capacity < 1:
            raise RlseekError(f"replay capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.seen = 0
        """Rows offered so far (kept or not)."""
        self.arrays: dict[str, np.ndarray] = {}
        self.size = 0
        """Rows kept (<= capacity)."""
        self.task_ids = np.zeros(0, dtype=np.int64)
        """The task index of every kept row (its first ``size`` entries are valid)."""
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.size

    def add(self, rows: Mapping[str, np.ndarray], task: int) -> None:
        """Offer every row of ``rows`` (arrays with a common first dimension) from task ``task``."""
        n = {len(v) for v in rows.values()}
        if len(n) != 1:
            raise RlseekError(f"replay rows must share their first dimension, got sizes {sorted(n)}")
        if self.arrays and set(rows) != set(self.arrays):
            raise RlseekError(f"replay rows have fields {sorted(rows)}, the buffer {sorted(self.arrays)}")
        count = n.pop()
        if not self.arrays:
            self.arrays = {k: np.empty((self.capacity, *np.shape(v)[1:]), dtype=np.asarray(v).dtype)
                           for k, v in rows.items()}
            self.task_ids = np.zeros(self.capacity, dtype=np.int64)
        for i in range(count):
            self.seen += 1
            slot = self.size if self.size < self.capacity else int(self._rng.integers(self.seen))
            if slot >= self.capacity:
                continue
            for k, a in self.arrays.items():
                a[slot] = rows[k][i]
            self.task_ids[slot] = task
            self.size = max(self.size, slot + 1)

    def sample(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``n`` rows drawn uniformly with replacement (the buffer must not be empty)."""
        if len(self) == 0:
            raise RlseekError("cannot sample from an empty replay buffer")
        idx = rng.integers(len(self), size=int(n))
        return {k: a[idx] for k, a in self.arrays.items()}

    def task_counts(self) -> dict[int, int]:
        """Kept rows per task index."""
        ids, counts = np.unique(self.task_ids[: self.size], return_counts=True)
        return {int(i): int(c) for i, c in zip(ids, counts)}

    def save(self, path: str | Path) -> None:
        """Write the buffer atomically as ``.npz`` (no pickles)."""
        import io

        blob = io.BytesIO()
        np.savez(blob, _capacity=np.asarray(self.capacity), _seen=np.asarray(self.seen),
                 _task_ids=self.task_ids[: self.size],
                 **{f"a.{k}": v[: self.size] for k, v in self.arrays.items()})
        atomic_write_bytes(path, blob.getvalue())

    @classmethod
    def load(cls, path: str | Path, seed: int = 0) -> ReservoirBuffer:
        """Read a buffer written by :meth:`save` (``allow_pickle=False``)."""
        with np.load(path, allow_pickle=False) as data:
            buf = cls(int(data["_capacity"]), seed=seed)
            buf.seen = int(data["_seen"])
            kept = data["_task_ids"].astype(np.int64)
            buf.size = len(kept)
            buf.task_ids = np.zeros(buf.capacity, dtype=np.int64)
            buf.task_ids[: buf.size] = kept
            buf.arrays = {}
            for k in data.files:
                if k.startswith("a."):
                    saved = data[k]
                    arr = np.empty((buf.capacity, *saved.shape[1:]), dtype=saved.dtype)
                    arr[: buf.size] = saved
                    buf.arrays[k[2:]] = arr
        return buf
