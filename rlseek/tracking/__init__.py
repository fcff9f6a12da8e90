"""Run tracking on MLflow and monitoring scalars.

Layer: above ``errors``/``config``/``runs``, below ``agents`` (agents import it; it never imports
agents, envs or rewards). Modules: ``settings`` (the switch and the URI), ``tracker`` (a
failure-safe MLflow run written from a background thread), ``logger`` (the one scalar sink:
TensorBoard + the tracker), ``monitor`` (resource scalars), ``record`` (what a run directory's
record holds), ``registry`` and ``cli`` (``rlseek runs ...``).
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
