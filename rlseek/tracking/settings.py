"""Where runs are tracked: the switch and the tracking URI, resolved the same way everywhere.

Order of precedence for the URI: an explicit one (``run.tracking_uri`` in a config,
``--tracking-uri`` on the command line), then ``MLFLOW_TRACKING_URI``, then the embedded
default — an sqlite file ``mlflow.db`` in the runs folder (``./runs``, or ``RLSEEK_RUNS_DIR``),
with artifacts in ``mlartifacts/`` next to it. No server is started or needed.

The switch: tracking is on unless the config says ``run.tracking: false``, the command got
``--no-tracking``, or the environment has ``RLSEEK_TRACKING=off`` (``0``/``false``/``no``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_SWITCH = "RLSEEK_TRACKING"
ENV_RUNS_DIR = "RLSEEK_RUNS_DIR"
EXPERIMENT = "rlseek"
"""Every rlseek run goes into this MLflow experiment; its tag ``rlseek.kind`` says what it was."""
_OFF = {"0", "off", "false", "no"}


@dataclass(frozen=True)
class TrackingSettings:
    """A resolved tracking target.

    Attributes:
        enabled: False when tracking was switched off.
        uri: the MLflow tracking URI (``sqlite:///...``, ``http://...``, ``file:...``).
        artifact_root: where new experiments keep artifacts (``mlartifacts/`` next to an sqlite
            store's file); None leaves the choice to the tracking server.
    """

    enabled: bool
    uri: str
    artifact_root: str | None = None


def default_store_dir() -> Path:
    """The runs folder that holds the embedded store: ``RLSEEK_RUNS_DIR`` or ``./runs``."""
    return Path(os.environ.get(ENV_RUNS_DIR) or "runs").resolve()


def sqlite_uri(folder: str | Path) -> str:
    """The URI of the embedded sqlite store in ``folder`` (``folder/mlflow.db``)."""
    return f"sqlite:///{(Path(folder).resolve() / 'mlflow.db').as_posix()}"


def switched_off() -> bool:
    """True when ``RLSEEK_TRACKING`` turns tracking off for every command of this process."""
    return os.environ.get(ENV_SWITCH, "").strip().lower() in _OFF


def resolve_tracking(
    uri: str | None = None, *, enabled: bool = True, store_dir: str | Path | None = None
) -> TrackingSettings:
    """The tracking target for one run (see the module docstring for the order).

    Args:
        uri: an explicit tracking URI, or None/"" for the default.
        enabled: the config's or command's switch.
        store_dir: the folder of the embedded store when no URI is given
            (default :func:`default_store_dir`).
    """
    on = bool(enabled) and not switched_off()
    chosen = (uri or "").strip() or os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if chosen.startswith("sqlite:///"):
        # MLflow's default artifact root for a database store is ./mlruns of the current
        # directory; keep artifacts next to the database file instead.
        folder = Path(chosen[len("sqlite:///"):]).resolve().parent
        return TrackingSettings(on, chosen, (folder / "mlartifacts").as_uri())
    if chosen:
        return TrackingSettings(on, chosen, None)
    folder = Path(store_dir).resolve() if store_dir is not None else default_store_dir()
    return TrackingSettings(on, sqlite_uri(folder), (folder / "mlartifacts").as_uri())


def reading_uri(uri: str | None = None) -> str:
    """The URI ``rlseek runs ...`` reads: an explicit one, ``MLFLOW_TRACKING_URI``, or the
    embedded default store (tracking's switch does not matter for reading)."""
    return resolve_tracking(uri, enabled=True).uri
