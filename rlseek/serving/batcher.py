"""The dynamic batcher: a bounded request queue and one worker that runs batches.

Requests (one *item* per observation or prompt) wait in a FIFO queue; a single worker task
takes up to the controller's current batch size, runs the policy on them in a worker thread
(so the event loop keeps accepting and rejecting requests meanwhile), resolves each item's
future, and feeds the p95 latency of recent items to the :class:`BatchSizeController`.

The queue is bounded twice: at most ``max_queue`` items (memory), and at most
``queue_batches`` batches of the current size (latency): an item beyond that would wait
longer than the controller allows, so :meth:`DynamicBatcher.submit` refuses it at once with
:class:`QueueFull` (HTTP 503 with ``Retry-After``) instead of letting it time out later.
This also keeps the plant the PID controls monotonic: under overload an admitted item waits
at most ``queue_batches`` batches, so a smaller batch size always means lower latency.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlseek.serving.pid import BatchSizeController


class QueueFull(Exception):
    """The queue cannot take the items now; retry after ``retry_after_s`` seconds."""

    def __init__(self, retry_after_s: float, reason: str) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class Draining(Exception):
    """The server is shutting down and takes no new requests."""


@dataclass
class _Item:
    payload: Any
    future: asyncio.Future[Any]
    enqueued: float


@dataclass
class BatchRecord:
    """One finished batch (for metrics and the benchmark's plot)."""

    time: float
    size: int
    compute_s: float
    p95_s: float
    batch_size_after: int


class DynamicBatcher:
    """Queue + worker around ``run_batch(payloads) -> results`` (one result per payload).

    Args:
        run_batch: called in a worker thread with a list of payloads; returns a list of
            results of the same length, or raises (every item of that batch then fails with
            the exception; the batcher keeps running).
        controller: steers the batch size; ``None`` fixes it at ``fixed_batch``.
        max_queue: items the queue holds at most.
        queue_batches: batches of the current size the queue holds at most (see module doc).
        window_s: the p95 fed to the controller is over items finished in the last window_s.
    """

    def __init__(self, run_batch: Callable[[list[Any]], Sequence[Any]], *,
                 controller: BatchSizeController | None = None, fixed_batch: int = 1,
                 max_queue: int = 256, queue_batches: int = 2, window_s: float = 1.0,
                 name: str = "policy", on_batch: Callable[[BatchRecord], None] | None = None) -> None:
        if max_queue < 1 or queue_batches < 1:
            raise ValueError("max_queue and queue_batches must be >= 1")
        self.run_batch = run_batch
        self.controller = controller
        self.fixed_batch = int(fixed_batch)
        self.max_queue = int(max_queue)
        self.queue_batches = int(queue_batches)
        self.window_s = float(window_s)
        self.name = name
        self.on_batch = on_batch
        self._queue: collections.deque[_Item] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"batch-{name}")
        self._recent: collections.deque[tuple[float, float]] = collections.deque(maxlen=4096)
        self._in_flight = 0
        self._closing = False
        self._last_compute_s = 0.0
        self.records: collections.deque[BatchRecord] = collections.deque(maxlen=100_000)

    # -- state ----------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        """The batch size the next batch may reach."""
        return self.controller.batch_size if self.controller is not None else self.fixed_batch

    @property
    def queue_depth(self) -> int:
        """Items waiting (not counting the batch being computed)."""
        return len(self._queue)

    @property
    def capacity(self) -> int:
        """Items the queue admits now: min(max_queue, queue_batches × batch size)."""
        return min(self.max_queue, self.queue_batches * self.batch_size)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker task on the running event loop."""
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._worker(), name=f"batcher-{self.name}")

    async def drain(self) -> None:
        """Refuse new items, finish every queued and in-flight one, then stop the worker."""
        self._closing = True
        while self._queue or self._in_flight:
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)

    # -- submitting ------------------------------------------------------------------------
    def submit_many(self, payloads: Sequence[Any]) -> list[asyncio.Future[Any]]:
        """Queue ``payloads`` together (all or none); returns one future per payload.

        Raises :class:`QueueFull` when they do not fit, :class:`Draining` while shutting down.
        """
        if self._closing:
            raise Draining("the server is shutting down")
        cap = self.capacity
        if len(self._queue) + len(payloads) > cap:
            raise QueueFull(self.retry_after_s(),
                            f"queue full ({len(self._queue)} of {cap} items waiting)")
        loop = asyncio.get_running_loop()
        now = time.perf_counter()
        futures = []
        for p in payloads:
            fut: asyncio.Future[Any] = loop.create_future()
            self._queue.append(_Item(p, fut, now))
            futures.append(fut)
        assert self._wakeup is not None, "start() the batcher first"
        self._wakeup.set()
        return futures

    def retry_after_s(self) -> float:
        """Seconds until the queue has room again (about one batch's compute time)."""
        return max(self._last_compute_s, 0.001)

    # -- the worker ------------------------------------------------------------------------
    async def _worker(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            n = min(self.batch_size, len(self._queue))
            items = [self._queue.popleft() for _ in range(n)]
            self._in_flight = n
            t0 = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._executor, self.run_batch,
                                                     [it.payload for it in items])
                if len(results) != len(items):
                    raise RuntimeError(f"run_batch returned {len(results)} results for {len(items)} items")
                error: BaseException | None = None
            except Exception as exc:  # a failing batch fails its items, never the server
                results, error = [], exc
            t1 = time.perf_counter()
            self._last_compute_s = t1 - t0
            for i, it in enumerate(items):
                if it.future.done():  # the client went away
                    continue
                if error is not None:
                    it.future.set_exception(error)
                else:
                    it.future.set_result(results[i])
                self._recent.append((t1, t1 - it.enqueued))
            self._in_flight = 0
            p95 = self.recent_p95(t1)
            if self.controller is not None and math.isfinite(p95):
                self.controller.update(p95)
            rec = BatchRecord(time.time(), n, t1 - t0, p95, self.batch_size)
            self.records.append(rec)
            if self.on_batch is not None:
                self.on_batch(rec)

    def recent_p95(self, now: float | None = None) -> float:
        """p95 latency (seconds, enqueue to result) of items finished in the last window."""
        now = time.perf_counter() if now is None else now
        lat = [lat for t, lat in self._recent if now - t <= self.window_s]
        return float(np.percentile(lat, 95)) if lat else math.nan
