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
    saturated in the direction the error pushes (it integrates only up to the value that
    reaches the limit: conditional integration), so after a long
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
        rest = self.bias + self.kp * error + self.kd * deriv
        candidate = self.integral + error * dt
        raw = rest + self.ki * candidate
        if raw > self.out_max and error > 0 and self.ki > 0:
            # integrate only up to where the output reaches its limit
            candidate = max(self.integral, (self.out_max - rest) / self.ki)
        elif raw < self.out_min and error < 0 and self.ki > 0:
            candidate = min(self.integral, (self.out_min - rest) / self.ki)
        self.integral = candidate
        raw = rest + self.ki * self.integral
        self.output = min(max(raw, self.out_min), self.out_max)
        return self.output

    def reset(self) -> None:
        """Forget the integral and the last error (the output returns to the bias)."""
        self.integral = 0.0
        self._last_error = None
        self.output = min(max(self.bias, self.out_min), self.out_max)


class BatchSizeController:
    """Steers the batch size so that the measured p95 latency approaches ``target_s``.

    The PID works in logarithmic, normalized units, so that the source document's gains
    (kp 0.5, ki 0.1, kd 0.05) are stable whatever the target, the batch range and the model:

    * output ``u`` in [0, 1] ↦ batch size ``min_batch · (max_batch / min_batch) ** u``
      (equal steps of ``u`` are equal *ratios* of batch size);
    * measurement ``ln(latency / target) / ln(max_batch / min_batch)``, setpoint 0.

    Latency grows at most proportionally to the batch size, so in these units the plant's gain
    is at most 1 and kp = 0.5 cannot overshoot into a limit cycle (in linear units a
    three-batches-deep queue made it bounce between the limits). One update per finished
    batch (dt = 1). Starting at ``min_batch`` is the cautious choice when nothing is known
    about the load yet.
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
        self._log_span = math.log(self.max_batch / self.min_batch)
        self.pid = PIDController(kp, ki, kd, setpoint=0.0, out_min=0.0, out_max=1.0, bias=0.0)

    @property
    def batch_size(self) -> int:
        """The batch size to use now."""
        size = self.min_batch * math.exp(self.pid.output * self._log_span)
        return min(max(int(round(size)), self.min_batch), self.max_batch)

    def update(self, p95_latency_s: float) -> int:
        """Feed the p95 latency (seconds) seen since the last update; returns the new batch size."""
        if self._log_span > 0 and math.isfinite(p95_latency_s) and p95_latency_s > 0:
            self.pid.update(math.log(p95_latency_s / self.target_s) / self._log_span)
        return self.batch_size
