"""Monitoring scalars: resources of this process and its GPU, under ``resources/``.

:class:`ResourceMonitor` samples, at most once per ``interval_s``:

* ``resources/rss_mb`` — resident memory of this process (psutil), MiB;
* ``resources/cuda_allocated_mb``, ``resources/cuda_reserved_mb`` — torch's CUDA caching
  allocator, MiB, when a CUDA device is in use;
* ``resources/gpu_utilization`` — percent busy of the GPU over NVML's last sample period, when
  ``nvidia-ml-py`` (``pynvml``) is installed and a GPU is visible.

Throughput (``throughput/...``), latency (``latency/...``) and quality (``quality/...``) keys are
written by the training loop (:mod:`rlseek.agents.loop`), which knows the step units.
"""

from __future__ import annotations

import os
import time
from typing import Any


class ResourceMonitor:
    """Samples process and GPU resources (see the module docstring).

    Args:
        device: the run's resolved device; CUDA keys appear only for ``cuda*``.
        interval_s: the shortest time between two samples (``sample`` returns {} in between).
    """

    def __init__(self, device: str = "cpu", interval_s: float = 5.0) -> None:
        self.cuda = str(device).startswith("cuda")
        self.interval_s = float(interval_s)
        self._last = -float("inf")
        self._proc: Any = None
        self._nvml: Any = None
        try:
            import psutil

            self._proc = psutil.Process(os.getpid())
        except ImportError:
            self._proc = None
        if self.cuda:
            self._nvml = _nvml_handle(device)

    def sample(self, force: bool = False) -> dict[str, float]:
        """The current figures, or {} when the last sample is younger than ``interval_s``."""
        now = time.monotonic()
        if not force and now - self._last < self.interval_s:
            return {}
        self._last = now
        out: dict[str, float] = {}
        if self._proc is not None:
            out["resources/rss_mb"] = self._proc.memory_info().rss / 2**20
        if self.cuda:
            import torch

            if torch.cuda.is_available():
                out["resources/cuda_allocated_mb"] = torch.cuda.memory_allocated() / 2**20
                out["resources/cuda_reserved_mb"] = torch.cuda.memory_reserved() / 2**20
        if self._nvml is not None:
            try:
                import pynvml

                out["resources/gpu_utilization"] = float(pynvml.nvmlDeviceGetUtilizationRates(self._nvml).gpu)
            except Exception:  # NVML went away (driver reset): stop asking
                self._nvml = None
        return out


def _nvml_handle(device: str) -> Any:
    """NVML's handle of the run's GPU, or None without nvidia-ml-py or a driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
        index = int(str(device).split(":")[1]) if ":" in str(device) else 0
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible:
            ids = [v.strip() for v in visible.split(",") if v.strip()]
            if index < len(ids) and ids[index].isdigit():
                index = int(ids[index])
        return pynvml.nvmlDeviceGetHandleByIndex(index)
    except Exception:
        return None
