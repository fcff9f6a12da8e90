"""Run tracking on MLflow and monitoring scalars.

Layer: foundation, beside ``runs`` (agents import it; it imports only ``errors``, ``_version``,
``runs`` and ``runtime`` — never agents, envs or rewards). Modules: ``settings`` (the switch and
the URI), ``tracker`` (a failure-safe MLflow run, fed to a child process), ``worker`` (that child
process), ``logger`` (the one scalar sink: TensorBoard + the tracker), ``monitor`` (resource
scalars), ``record`` (what a run's record holds), ``registry`` (what ``rlseek runs`` reads;
its CLI is ``rlseek/cli/runs.py``).
"""

from rlseek.tracking.logger import ScalarLogger
from rlseek.tracking.monitor import ResourceMonitor
from rlseek.tracking.record import TrackedRun, close_run_tracker, meta_tags, open_run_tracker
from rlseek.tracking.settings import TrackingSettings, resolve_tracking
from rlseek.tracking.tracker import Tracker

__all__ = [
    "ResourceMonitor", "ScalarLogger", "TrackedRun", "Tracker", "TrackingSettings", "close_run_tracker",
    "meta_tags", "open_run_tracker", "resolve_tracking",
]
