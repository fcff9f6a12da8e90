"""Serving trained policies over HTTP: ``rlseek serve RUN_DIR``.

* :mod:`~rlseek.serving.policies` loads a finished run's final policy (SB3 robot policy or
  lm-ppo language model), optionally int8-quantized, and answers batches;
* :mod:`~rlseek.serving.pid` the PID controller that steers the batch size toward a target
  p95 latency; :mod:`~rlseek.serving.batcher` the bounded queue and the batch worker;
* :mod:`~rlseek.serving.canary` canary/shadow routing with automatic rollback;
* :mod:`~rlseek.serving.app` the FastAPI application (the subcommand is :mod:`rlseek.cli.serve`).

Layer: above agents, envs and rewards; below the Python API and the CLI.
"""

from rlseek.serving.canary import CanaryRouter, MetricWindow
from rlseek.serving.pid import BatchSizeController, PIDController

__all__ = ["BatchSizeController", "CanaryRouter", "MetricWindow", "PIDController"]
