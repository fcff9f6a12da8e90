"""One MLflow run per rlseek run, written from a background thread that can never stop training.

:class:`Tracker` queues every call (params, metrics, tags, artifacts) and a worker thread
performs them with ``mlflow.MlflowClient``. The training loop therefore never waits for MLflow
— not for its import (seconds), not for the sqlite store's first migration, not for a slow
server. The first exception the worker meets is reported as one warning line on stderr; after
it the tracker drops everything, and training goes on. :meth:`Tracker.finish` waits (bounded)
for the queue to drain, so a finished run's record is complete.

Run identity: each rlseek run carries a ``run_uid`` (in ``meta.json``), written to MLflow as the
tag ``rlseek.run_uid``; ``--resume`` finds the same MLflow run by it and continues logging there.
"""

from __future__ import annotations

import json
import math
import os
import queue
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlseek.tracking.settings import EXPERIMENT, TrackingSettings

MAX_PARAM_LENGTH = 6000
"""MLflow's limit on a param value; longer values are cut (the full config is an artifact)."""
_BATCH = 900
"""Metrics per ``log_batch`` call (MLflow allows 1000)."""
FINISH_TIMEOUT_S = 120.0
_STOP = object()
UID_TAG = "rlseek.run_uid"


def flatten(data: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """Nested mappings -> ``{"a.b.c": value}``; lists stay values (written as JSON)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}{sep}", sep))
        else:
            out[name] = value
    return out


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= MAX_PARAM_LENGTH else text[: MAX_PARAM_LENGTH - 1] + "…"


def numeric_scalars(data: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The number leaves of a nested mapping as ``prefix + "a/b"`` (bools and None skipped)."""
    out: dict[str, float] = {}
    for key, value in flatten(data, prefix, "/").items():
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, (int, float)):
            out[key] = float(value)
    return out


class Tracker:
    """A failure-safe MLflow run (see the module docstring). ``Tracker.disabled()`` does nothing.

    Args:
        settings: where to track (:func:`rlseek.tracking.resolve_tracking`).
        run_uid: rlseek's id of the run (the tag that finds it again on resume).
        run_name: the MLflow run name (the run directory's name).
        tags: tags set when the run is created (``rlseek.*`` fingerprints).
        params: params logged when the run is created (the resolved config, flattened).
        parent_uid: ``run_uid`` of a parent run (``offline compare``); links the MLflow runs.
    """

    def __init__(
        self,
        settings: TrackingSettings,
        *,
        run_uid: str,
        run_name: str,
        tags: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        parent_uid: str | None = None,
    ) -> None:
        self.settings = settings
        self.run_uid = run_uid
        self.enabled = settings.enabled
        self.failed = False
        self.run_id: str | None = None
        self.run_dir: str | None = None
        """Where the tracked run directory lives (set by ``open_run_tracker``)."""
        self._client: Any = None
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._finished = False
        if self.enabled:
            self._put("start", run_name, dict(tags or {}), dict(params or {}), parent_uid)
            self._thread = threading.Thread(target=self._work, name="rlseek-tracking", daemon=True)
            self._thread.start()

    @classmethod
    def disabled(cls) -> Tracker:
        """A tracker that records nothing (tracking switched off, or no run)."""
        return cls(TrackingSettings(False, ""), run_uid="", run_name="")

    # -- public calls (never raise, never block) ---------------------------------------------
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Queue scalar metrics at ``step`` (the run's own step unit)."""
        if self.enabled and metrics:
            stamp = int(time.time() * 1000)
            self._put("metrics", [(str(k), float(v), stamp, int(step)) for k, v in metrics.items()])

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Queue params (nested mappings are flattened to dotted names)."""
        if self.enabled and params:
            self._put("params", flatten(params))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Queue tags (values become text)."""
        if self.enabled and tags:
            self._put("tags", {str(k): str(v) for k, v in tags.items()})

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Queue a small file to copy into the run's artifacts (a summary, a config)."""
        if self.enabled:
            self._put("artifact", str(path), artifact_path)

    def finish(self, status: str = "FINISHED", timeout: float = FINISH_TIMEOUT_S) -> None:
        """End the MLflow run (``FINISHED``, ``FAILED`` or ``KILLED``) and wait, at most
        ``timeout`` seconds, until everything queued has been written."""
        if not self.enabled or self._finished:
            return
        self._finished = True
        self._put("end", status)
        self._queue.put(_STOP)
        assert self._thread is not None
        self._thread.join(timeout)
        if self._thread.is_alive() and not self.failed:
            self.failed = True
            _warn(f"tracking to {self.settings.uri} did not finish within {timeout:.0f}s; "
                  "the run's record may miss its last metrics")

    def discard(self, timeout: float = FINISH_TIMEOUT_S) -> None:
        """Delete the MLflow run (a run whose directory was removed: bad input found late)."""
        if not self.enabled or self._finished:
            return
        self._put("delete")
        self.finish("FAILED", timeout)

    # -- worker -------------------------------------------------------------------------------
    def _put(self, *item: Any) -> None:
        if not self._finished or item[0] == "end":
            self._queue.put(item)

    def _work(self) -> None:
        pending: list[tuple[str, float, int, int]] = []
        while True:
            item = self._queue.get()
            if item is _STOP:
                self._flush(pending)
                return
            if self.failed:
                continue
            if item[0] == "metrics":
                pending.extend(item[1])
                if self._queue.empty() or len(pending) >= _BATCH:
                    self._flush(pending)
                continue
            self._flush(pending)
            self._guard(getattr(self, f"_do_{item[0]}"), *item[1:])

    def _flush(self, pending: list[tuple[str, float, int, int]]) -> None:
        if pending and not self.failed:
            batch = list(pending)
            self._guard(self._do_metrics, batch)
        pending.clear()

    def _guard(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:  # any failure of the tracking backend: warn once, go on
            self.failed = True
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            _warn(f"tracking to {self.settings.uri} failed ({type(exc).__name__}: {first}); "
                  "training goes on without it")

    def _do_start(self, run_name: str, tags: dict[str, Any], params: dict[str, Any],
                  parent_uid: str | None) -> None:
        self._client = open_client(self.settings.uri)
        client = self._client
        exp_id = ensure_experiment(client, self.settings.artifact_root)
        found = client.search_runs([exp_id], filter_string=f"tags.`{UID_TAG}` = '{self.run_uid}'",
                                   max_results=1)
        all_tags = {UID_TAG: self.run_uid, **{k: str(v) for k, v in tags.items()}}
        if parent_uid:
            parent = client.search_runs([exp_id], filter_string=f"tags.`{UID_TAG}` = '{parent_uid}'",
                                        max_results=1)
            all_tags["rlseek.parent_uid"] = parent_uid
            if parent:
                all_tags["mlflow.parentRunId"] = parent[0].info.run_id
        if found:  # a resumed run continues its record
            self.run_id = found[0].info.run_id
            client.update_run(self.run_id, status="RUNNING")
            self._do_tags(all_tags)
            return
        run = client.create_run(exp_id, run_name=run_name, tags=all_tags)
        self.run_id = run.info.run_id
        self._do_params(flatten(params))

    def _do_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        if self.run_id is None:
            return
        items = [Param(k, _param_text(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):
            try:
                self._client.log_batch(self.run_id, params=items[i : i + 100])
            except Exception as exc:
                # A resumed run may log a param again with another value; MLflow refuses that.
                if "Changing param values is not allowed" not in str(exc):
                    raise

    def _do_metrics(self, batch: list[tuple[str, float, int, int]]) -> None:
        from mlflow.entities import Metric

        if self.run_id is None:
            return
        metrics = [Metric(k, v if math.isfinite(v) else float("nan"), t, s) for k, v, t, s in batch]
        for i in range(0, len(metrics), _BATCH):
            self._client.log_batch(self.run_id, metrics=metrics[i : i + _BATCH])

    def _do_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        if self.run_id is not None:
            self._client.log_batch(self.run_id, tags=[RunTag(k, v[:8000]) for k, v in tags.items()])

    def _do_artifact(self, path: str, artifact_path: str | None) -> None:
        if self.run_id is not None and os.path.isfile(path):
            self._client.log_artifact(self.run_id, path, artifact_path)

    def _do_delete(self) -> None:
        if self.run_id is not None:
            self._client.delete_run(self.run_id)
            self.run_id = None

    def _do_end(self, status: str) -> None:
        if self.run_id is not None:
            self._client.set_terminated(self.run_id, status=status)


def open_client(uri: str) -> Any:
    """An ``MlflowClient`` on ``uri``, with MLflow's and alembic's info logs silenced and HTTP
    retries bounded (an unreachable server fails in seconds, not minutes)."""
    from rlseek.runtime import quiet_libraries

    quiet_libraries("mlflow", "alembic")
    # MLflow retries an HTTP request 7 times with exponential backoff by default (minutes);
    # these defaults apply only when the user has not set them.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    from mlflow import MlflowClient

    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=uri)


def ensure_experiment(client: Any, artifact_root: str | None) -> str:
    """The id of the ``rlseek`` experiment, created on first use."""
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is not None:
        return str(exp.experiment_id)
    try:
        return str(client.create_experiment(EXPERIMENT, artifact_location=artifact_root))
    except Exception:
        exp = client.get_experiment_by_name(EXPERIMENT)  # created meanwhile by another process
        if exp is None:
            raise
        return str(exp.experiment_id)


def _warn(message: str) -> None:
    sys.stderr.write(f"rlseek: warning: {message}\n")
    sys.stderr.flush()
