"""A PID controller, and the batch-size controller the dynamic batcher steers with it.

The batcher measures the p95 latency of recent requests after every batch; the controller
turns the gap to the target latency into a batch size between ``min_batch`` and ``max_batch``.
Larger batches raise throughput and the time each batch takes; smaller ones do the opposite,
so the controller trades throughput for latency only when the target is at risk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class PIDController:
    """Textbook positional PID: ``u = bias + kp·e + ki·Σe·dt + kd·Δe/dt``, clamped to limits.

    ``e = setpoint − measurement``. The integral stops accumulating while the output is
    saturated in the direction the error pushes (conditional integration), so after a long
    stretch at a limit the controller reacts as soon as the error changes sign instead of
    first unwinding a huge integral (integrator windup). The derivative acts on the error of
    successive updates; the first update has none.
    """

    kp: float
    ki: float
    kd: float
    setpoint: float
    out_min: float = -math.inf
    out_max: float = math.inf
    bias: float = 0.0
    integral: float = field(default=0.0, init=False)
    _last_error: float | None = field(default=None, init=False, repr=False)
    output: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        for name in ("kp", "ki", "kd", "setpoint", "bias"):
            if not math.isfinite(float(getattr(self, name))):
                raise ValueError(f"PIDController.{name} must be finite, got {getattr(self, name)!r}")
        if self.out_min > self.out_max:
            raise ValueError(f"out_min {self.out_min} > out_max {self.out_max}")
        self.output = min(max(self.bias, self.out_min), self.out_max)

    def update(self, measurement: float, dt: float = 1.0) -> float:
        """Feed one measurement taken ``dt`` (> 0, in the units the gains assume) after the
        previous one; returns the new clamped output. A non-finite measurement is ignored."""
        if not math.isfinite(measurement) or dt <= 0:
            return self.output
        error = self.setpoint - measurement
        deriv = 0.0 if self._last_error is None else (error - self._last_error) / dt
        self._last_error = error
        candidate = self.integral + error * dt
        raw = self.bias + self.kp * error + self.ki * candidate + self.kd * deriv
        saturated_high = raw > self.out_max and error > 0
        saturated_low = raw < self.out_min and error < 0
        if not (saturated_high or saturated_low):
            self.integral = candidate
        raw = self.bias + self.kp * error + self.ki * self.integral + self.kd * deriv
        self.output = min(max(raw, self.out_min), self.out_max)
        return self.output

    def reset(self) -> None:
        """Forget the integral and the last error (the output returns to the bias)."""
        self.integral = 0.0
        self._last_error = None
        self.output = min(max(self.bias, self.out_min), self.out_max)


class BatchSizeController:
    """Steers the batch size so that the measured p95 latency approaches ``target_s``.

    The PID works on normalized quantities: the measurement is ``latency / target`` (so the
    setpoint is 1 and the gains do not depend on the target's unit or size) and the output is a
    fraction of the range ``[min_batch, max_batch]``. One update per finished batch (dt = 1).
    The defaults (kp 0.5, ki 0.1, kd 0.05) are the source document's; starting at ``min_batch``
    is the cautious choice when nothing is known about the load yet.
    """

    def __init__(self, target_s: float, min_batch: int = 4, max_batch: int = 64, *,
                 kp: float = 0.5, ki: float = 0.1, kd: float = 0.05) -> None:
        if not (math.isfinite(target_s) and target_s > 0):
            raise ValueError(f"target latency must be a positive number of seconds, got {target_s!r}")
        if not (1 <= int(min_batch) <= int(max_batch)):
            raise ValueError(f"need 1 <= min_batch <= max_batch, got {min_batch} and {max_batch}")
        self.target_s = float(target_s)
        self.min_batch = int(min_batch)
        self.max_batch = int(max_batch)
        self.pid = PIDController(kp, ki, kd, setpoint=1.0, out_min=0.0, out_max=1.0, bias=0.0)

    @property
    def batch_size(self) -> int:
        """The batch size to use now."""
        span = self.max_batch - self.min_batch
        return self.min_batch + int(round(self.pid.output * span))

    def update(self, p95_latency_s: float) -> int:
        """Feed the p95 latency (seconds) seen since the last update; returns the new batch size."""
        self.pid.update(p95_latency_s / self.target_s)
        return self.batch_size
