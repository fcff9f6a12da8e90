"""The training loop every agent shares: logging, eval/checkpoint timing, progress, monitoring
and the summary's shape — written once, used by SB3, lm-ppo and the offline agents.

An agent keeps its own algorithm step and calls these hooks; each agent's file shows them in
order (``sb3_callbacks.py`` for SB3, whose loop is SB3's own ``learn``; ``lm_ppo/agent.py``;
``offline/agent.py``)::

    loop = TrainingLoop(run, unit="completions", total=N, start=resumed_step, progress=progress)
    while step < N:
        ... rollout (timed) ... update (timed) ...
        loop.iteration(step, scalars, rollout_s=..., train_s=..., items=..., tokens=...)
        if loop.eval_due(step):        loop.log_eval(evaluate(), step)
        if loop.checkpoint_due(step):  run.save_checkpoint(step, write, state)
    summary = loop.summary(algo=..., steps=step, eval=final_eval, **agent_figures)
    loop.close()

Scalars go through one :class:`~rlseek.tracking.ScalarLogger` (TensorBoard + MLflow). Besides the
agent's own keys the loop writes the monitoring keys:

* ``latency/rollout_seconds``, ``latency/train_seconds``, ``latency/iteration_seconds`` — one
  iteration's split (SB3: a rollout and the gradient steps after it; lm-ppo: generation + scoring
  and the PPO update; offline: no rollout, the gradient steps of a chunk);
* ``throughput/steps_per_second`` (the agent's step unit) and ``throughput/tokens_per_second``
  (text agents);
* ``resources/...`` (:class:`~rlseek.tracking.ResourceMonitor`), at most every 5 s;
* ``quality/...`` — the agent passes its quality figures (text: distinct-2, length, EOS rate;
  robot: success rate, also written by :meth:`TrainingLoop.log_eval`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from rlseek.runs import Run
from rlseek.tracking import ResourceMonitor, ScalarLogger

EVAL_KEYS = ("mean_return", "mean_length", "success_rate", "normalized_score", "exact_match",
             "positive_fraction", "distinct_2")
"""Evaluation figures written as ``eval/<key>`` wherever an evaluation reports them."""


class Cadence:
    """Fires when a step counter passes a multiple of ``every`` (0 or less: never).

    Steps may jump by any amount (a rollout of many env steps, a chunk of gradient steps); the
    cadence fires once per call in which one or more multiples were passed.
    """

    def __init__(self, every: int, start: int = 0) -> None:
        self.every = int(every)
        self.next = (int(start) // self.every + 1) * self.every if self.every > 0 else None

    def due(self, step: int) -> bool:
        """True (and re-armed for the next multiple) when ``step`` reached the next multiple."""
        if self.next is None or step < self.next:
            return False
        self.next = (int(step) // self.every + 1) * self.every
        return True

    def until_next(self, step: int) -> int | None:
        """Steps from ``step`` to the next multiple (None when the cadence never fires)."""
        return None if self.next is None else max(0, self.next - int(step))


class TrainingLoop:
    """The shared skeleton of one training session (see the module docstring).

    Args:
        run: the run directory; its ``run`` section sets the cadences, its ``tracker`` (if any)
            receives every scalar.
        unit: the agent's step unit, written into the summary ("env steps", "completions",
            "gradient steps").
        total: the run's budget in that unit.
        start: the step this session starts at (a resumed run's checkpoint).
        progress: show a tqdm progress bar over ``total``.
        desc: the progress bar's label.
        device: the resolved device (CUDA memory keys appear only on CUDA).
        elapsed_s: training seconds already spent by earlier sessions of this run.
        eval_every, checkpoint_every: override the run section's cadences (SB3 clamps them to >= 1).
    """

    def __init__(self, run: Run, *, unit: str, total: int, start: int = 0, progress: bool = False,
                 desc: str = "", device: str = "cpu", elapsed_s: float = 0.0,
                 eval_every: int | None = None, checkpoint_every: int | None = None) -> None:
        rs = run.config.run
        self.run = run
        self.unit = unit
        self.total = int(total)
        self.start = int(start)
        self.logger = ScalarLogger(run.tb_dir, run.tracker)
        self.evals = Cadence(rs.eval_every if eval_every is None else eval_every, start)
        self.checkpoints = Cadence(rs.checkpoint_every if checkpoint_every is None else checkpoint_every, start)
        self.monitor = ResourceMonitor(device)
        self.elapsed_before_s = float(elapsed_s)
        self._t0 = time.perf_counter()
        self._bar = None
        if progress:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, initial=min(self.start, self.total), unit=unit.split()[-1],
                             desc=desc or run.config.agent.algo, dynamic_ncols=True)

    # -- timing ----------------------------------------------------------------------------
    def restart_clock(self) -> None:
        """Start this session's wall clock now (after setup that should not count)."""
        self._t0 = time.perf_counter()

    def elapsed_s(self) -> float:
        """Training wall time of the whole run so far (earlier sessions included), seconds."""
        return self.elapsed_before_s + (time.perf_counter() - self._t0)

    def eval_due(self, step: int) -> bool:
        """Whether an evaluation is due at ``step`` (``run.eval_every``)."""
        return self.evals.due(step)

    def checkpoint_due(self, step: int) -> bool:
        """Whether a checkpoint is due at ``step`` (``run.checkpoint_every``)."""
        return self.checkpoints.due(step)

    # -- logging ---------------------------------------------------------------------------
    def log(self, scalars: Mapping[str, Any], step: int) -> None:
        """Write scalars at ``step`` to TensorBoard and the run's MLflow record."""
        self.logger.log(scalars, step)

    def monitoring(self, *, rollout_s: float | None = None, train_s: float | None = None,
                   items: float | None = None, tokens: float | None = None,
                   quality: Mapping[str, Any] | None = None) -> dict[str, float]:
        """The monitoring scalars of one iteration (see the module docstring), not yet written."""
        out: dict[str, float] = {}
        total_s = (rollout_s or 0.0) + (train_s or 0.0)
        if rollout_s is not None:
            out["latency/rollout_seconds"] = float(rollout_s)
        if train_s is not None:
            out["latency/train_seconds"] = float(train_s)
        if rollout_s is not None or train_s is not None:
            out["latency/iteration_seconds"] = total_s
        if items is not None and total_s > 0:
            out["throughput/steps_per_second"] = float(items) / total_s
        if tokens is not None and total_s > 0:
            out["throughput/tokens_per_second"] = float(tokens) / total_s
        for key, value in (quality or {}).items():
            if value is not None:
                out[f"quality/{key}"] = float(value)
        out.update(self.monitor.sample())
        return out

    def iteration(self, step: int, scalars: Mapping[str, Any] | None = None, *, log: bool = True,
                  advance: int | None = None, postfix: Mapping[str, Any] | None = None,
                  **monitoring: Any) -> dict[str, float]:
        """End of one iteration at ``step``: write the agent's scalars plus the monitoring ones
        (when ``log``), move the progress bar by ``advance`` (default: to ``step``)."""
        out = {**(scalars or {}), **self.monitoring(**monitoring)}
        if log:
            self.log(out, step)
        self.advance(step if advance is None else None, by=advance, postfix=postfix)
        return out

    def log_eval(self, ev: Mapping[str, Any], step: int, keys: tuple[str, ...] = EVAL_KEYS) -> None:
        """Write an evaluation's figures as ``eval/<key>`` (and ``quality/success_rate``)."""
        scalars = {f"eval/{k}": ev.get(k) for k in keys if ev.get(k) is not None}
        if ev.get("success_rate") is not None:
            scalars["quality/success_rate"] = ev["success_rate"]
        self.log(scalars, step)

    # -- progress --------------------------------------------------------------------------
    def advance(self, step: int | None = None, *, by: int | None = None,
                postfix: Mapping[str, Any] | None = None) -> None:
        """Move the progress bar to ``step`` (or ``by`` steps); optional figures beside it."""
        if self._bar is None:
            return
        if by is not None:
            self._bar.update(by)
        elif step is not None:
            self._bar.update(max(0, min(int(step), self.total) - self._bar.n))
        if postfix:
            self._bar.set_postfix({k: f"{v:.3g}" if isinstance(v, float) else v for k, v in postfix.items()},
                                  refresh=False)

    # -- the end ---------------------------------------------------------------------------
    def summary(self, *, algo: str, steps: int, eval: Mapping[str, Any] | None,
                resumed_from: int | None = None, wall_time_s: float | None = None,
                **figures: Any) -> dict[str, Any]:
        """The summary's shape, the same for every agent: ``algo``, ``env_id``, ``step_unit``,
        ``steps``, ``wall_time_s``, ``steps_per_second``, ``resumed_from_step``, ``eval``,
        ``monitoring`` (the last resource sample), then the agent's own ``figures``."""
        wall = self.elapsed_s() if wall_time_s is None else float(wall_time_s)
        trained = int(steps) - (self.start if self.elapsed_before_s == 0 else 0)
        shape: dict[str, Any] = {
            "algo": algo,
            "env_id": self.run.config.env.id,
            "step_unit": self.unit,
            "steps": int(steps),
            "wall_time_s": wall,
            "steps_per_second": trained / wall if wall > 0 else None,
            "resumed_from_step": resumed_from,
            "eval": dict(eval) if eval is not None else None,
            "monitoring": self.monitor.sample(force=True),
        }
        for key, value in figures.items():
            shape.setdefault(key, value)
        return shape

    def close(self) -> None:
        """Close the progress bar and flush TensorBoard (idempotent; call in ``finally``)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self.logger.close()
