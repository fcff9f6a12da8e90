"""The PID controller and the batch-size controller, on a simulated plant."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlseek.serving import BatchSizeController, PIDController


def _plant(batch: int, per_item_s: float, overhead_s: float = 0.01) -> float:
    """p95 latency of a saturated queue holding two batches: three batch times."""
    return 3.0 * (overhead_s + per_item_s * batch)


def test_pid_proportional_integral_derivative_terms() -> None:
    pid = PIDController(kp=2.0, ki=0.5, kd=1.0, setpoint=1.0)
    assert pid.update(0.0) == pytest.approx(2.0 * 1 + 0.5 * 1 + 0.0)  # no derivative at first
    # error 0.5: P 1.0, integral 1.5 -> 0.75, derivative (0.5 - 1) = -0.5
    assert pid.update(0.5) == pytest.approx(1.0 + 0.75 - 0.5)


def test_pid_clamps_and_does_not_wind_up() -> None:
    pid = PIDController(kp=0.5, ki=0.1, kd=0.0, setpoint=1.0, out_min=0.0, out_max=1.0)
    for _ in range(1000):
        pid.update(0.0)  # error +1 for a long time: saturated high
    assert pid.output == 1.0
    assert pid.integral < 20  # stopped integrating once saturated
    steps = 0
    while pid.output > 0.0 and steps < 50:
        pid.update(3.0)  # error -2: must come off the limit quickly
        steps += 1
    assert steps <= 12


def test_pid_ignores_non_finite_measurements_and_rejects_bad_gains() -> None:
    pid = PIDController(kp=1.0, ki=0.0, kd=0.0, setpoint=0.0)
    before = pid.update(1.0)
    assert pid.update(math.nan) == before
    with pytest.raises(ValueError, match="kp"):
        PIDController(kp=math.inf, ki=0.0, kd=0.0, setpoint=0.0)


@pytest.mark.parametrize("per_item_ms", [1.0, 2.0, 3.0])
def test_batch_controller_converges_to_the_target_on_a_simulated_plant(per_item_ms: float) -> None:
    target = 0.2
    ctrl = BatchSizeController(target, min_batch=4, max_batch=64)
    lat = []
    for _ in range(300):
        lat.append(_plant(ctrl.batch_size, per_item_ms / 1000))
        ctrl.update(lat[-1])
    # the batch size where 3 * (0.01 + c * b) == 0.2
    ideal = (target / 3 - 0.01) / (per_item_ms / 1000)
    assert abs(ctrl.batch_size - min(max(ideal, 4), 64)) <= 1.5
    assert abs(np.mean(lat[-50:]) - target) / target < 0.05


def test_batch_controller_follows_load_steps_and_stays_in_bounds() -> None:
    ctrl = BatchSizeController(0.2, min_batch=4, max_batch=64)
    sizes = []
    for per_item_ms in (0.5, 4.0, 40.0, 2.0):  # light, heavy, impossible, moderate
        for _ in range(250):
            ctrl.update(_plant(ctrl.batch_size, per_item_ms / 1000))
            sizes.append(ctrl.batch_size)
        if per_item_ms == 0.5:
            assert ctrl.batch_size == 64  # the target is never at risk: largest batch
        if per_item_ms == 4.0:
            assert abs(ctrl.batch_size - 14) <= 1
        if per_item_ms == 40.0:
            assert ctrl.batch_size == 4  # the target is out of reach: smallest batch
    assert min(sizes) >= 4 and max(sizes) <= 64
    assert abs(ctrl.batch_size - 28) <= 1  # recovered from the impossible stretch


def test_batch_controller_settles_under_measurement_noise() -> None:
    rng = np.random.default_rng(0)
    ctrl = BatchSizeController(0.2, min_batch=4, max_batch=64)
    lat = []
    for _ in range(400):
        lat.append(_plant(ctrl.batch_size, 0.002) * (1 + rng.normal(0, 0.2)))
        ctrl.update(lat[-1])
    assert abs(np.mean(lat[-200:]) - 0.2) / 0.2 < 0.1


def test_batch_controller_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="target latency"):
        BatchSizeController(0.0)
    with pytest.raises(ValueError, match="min_batch"):
        BatchSizeController(0.2, min_batch=8, max_batch=4)
