"""The canary router's rolling windows and rollback rule, and the batcher's queue bounds."""

from __future__ import annotations

import asyncio
import time

import pytest

from rlseek.serving import CanaryRouter
from rlseek.serving.batcher import Draining, DynamicBatcher, QueueFull


def _feed(router: CanaryRouter, stable: float, canary: float, n: int) -> None:
    for _ in range(n):
        router.record("stable", stable)
        router.record("canary", canary)


def test_rollback_when_canary_is_more_than_5_percent_below() -> None:
    r = CanaryRouter(fraction=0.5, window=20, min_samples=10)
    _feed(r, 1.0, 0.94, 9)
    assert r.active  # not enough samples yet
    _feed(r, 1.0, 0.94, 1)
    assert not r.active and r.rollback is not None
    assert r.rollback.canary_mean == pytest.approx(0.94)
    assert not any(r.pick_canary() for _ in range(100))  # no more canary traffic


@pytest.mark.parametrize("stable,canary", [(1.0, 0.96), (1.0, 1.0), (-10.0, -10.4), (0.0, 0.0)])
def test_no_rollback_within_the_allowed_drop(stable: float, canary: float) -> None:
    r = CanaryRouter(window=50, min_samples=10)
    _feed(r, stable, canary, 100)
    assert r.active and r.rollback is None


def test_negative_metric_drop_is_measured_against_its_magnitude() -> None:
    r = CanaryRouter(window=50, min_samples=10)
    _feed(r, -10.0, -10.6, 10)  # 6 % worse
    assert not r.active


def test_routing_fraction_and_bad_settings() -> None:
    r = CanaryRouter(fraction=0.25, seed=1)
    share = sum(r.pick_canary() for _ in range(4000)) / 4000
    assert 0.2 < share < 0.3
    with pytest.raises(ValueError, match="fraction"):
        CanaryRouter(fraction=1.5)
    with pytest.raises(ValueError, match="mode"):
        CanaryRouter(mode="blue-green")


def test_batcher_bounds_the_queue_fails_a_bad_batch_and_drains() -> None:
    calls: list[int] = []

    def run_batch(items: list[int]) -> list[int]:
        calls.append(len(items))
        time.sleep(0.05)
        if -1 in items:
            raise RuntimeError("boom")
        return [i * 2 for i in items]

    async def scenario() -> None:
        b = DynamicBatcher(run_batch, fixed_batch=2, max_queue=100, queue_batches=2)
        b.start()
        first = b.submit_many([1])
        await asyncio.sleep(0.01)  # the worker took it: the queue is empty, capacity 4
        queued = b.submit_many([2, 3, 4, 5])
        with pytest.raises(QueueFull) as full:
            b.submit_many([6])
        assert full.value.retry_after_s > 0
        assert await asyncio.gather(*first, *queued) == [2, 4, 6, 8, 10]
        bad = b.submit_many([-1, 7])
        results = await asyncio.gather(*bad, return_exceptions=True)
        assert all(isinstance(x, RuntimeError) for x in results)
        ok = b.submit_many([8])  # still serving after a failed batch
        drain = asyncio.create_task(b.drain())
        await asyncio.sleep(0)
        with pytest.raises(Draining):
            b.submit_many([9])
        assert await asyncio.gather(*ok) == [16]
        await drain

    asyncio.run(scenario())
    assert max(calls) <= 2
