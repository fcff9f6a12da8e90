"""One MLflow run per rlseek run, written by a child process that can never stop training.

:class:`Tracker` queues every call (params, metrics, tags, artifacts); a writer thread passes
them, one JSON line each, to a worker process (:mod:`rlseek.tracking.worker`) that performs them
with ``mlflow.MlflowClient``. The training loop therefore never waits for MLflow — not for its
import (several seconds of CPU, which in a thread would also hold the interpreter lock that
training needs), not for the sqlite store's first migration, not for a slow server. The first
error is reported as one warning line on stderr; after it the tracker drops everything, and
training goes on. :meth:`Tracker.finish` waits (bounded) until the worker has written
everything, so a finished run's record is complete; a worker whose parent dies ends the run as
KILLED.

Run identity: each rlseek run carries a ``run_uid`` (in ``meta.json``), written to MLflow as the
tag ``rlseek.run_uid``; ``--resume`` finds the same MLflow run by it and continues logging there.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import subprocess
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
_STOP: Any = object()
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


_BAD_NAME = re.compile(r"[^\w\-. :/]")


def metric_name(key: str) -> str:
    """``key`` with the characters MLflow refuses in metric names (anything but letters,
    digits, ``_ - . : /`` and space) replaced by ``_``."""
    return _BAD_NAME.sub("_", str(key))


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
        self._queue: queue.Queue[Any] = queue.Queue()
        self._proc: subprocess.Popen[bytes] | None = None
        self._threads: list[threading.Thread] = []
        self._stderr_tail: list[str] = []
        self._finished = False
        if not self.enabled:
            return
        try:
            self._proc = _start_worker()
        except OSError as exc:
            self._fail(f"{type(exc).__name__}: {exc}")
            return
        self._send({"uri": settings.uri, "artifact_root": settings.artifact_root, "run_uid": run_uid})
        self._put({"op": "start", "run_name": run_name, "tags": {k: str(v) for k, v in (tags or {}).items()},
                   "params": _plain(dict(params or {})), "parent_uid": parent_uid})
        for target in (self._write, self._read, self._read_stderr):
            t = threading.Thread(target=target, name=f"rlseek-tracking{target.__name__}", daemon=True)
            t.start()
            self._threads.append(t)

    @classmethod
    def disabled(cls) -> Tracker:
        """A tracker that records nothing (tracking switched off, or no run)."""
        return cls(TrackingSettings(False, ""), run_uid="", run_name="")

    # -- public calls (never raise, never block) ---------------------------------------------
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Queue scalar metrics at ``step`` (the run's own step unit)."""
        if self.enabled and metrics:
            stamp = int(time.time() * 1000)
            self._put({"op": "metrics",
                       "batch": [[metric_name(k), float(v), stamp, int(step)] for k, v in metrics.items()]})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Queue params (nested mappings are flattened to dotted names)."""
        if self.enabled and params:
            self._put({"op": "params", "params": _plain(dict(params))})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Queue tags (values become text)."""
        if self.enabled and tags:
            self._put({"op": "tags", "tags": {str(k): str(v) for k, v in tags.items()}})

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Queue a small file to copy into the run's artifacts (a summary, a config)."""
        if self.enabled:
            self._put({"op": "artifact", "path": str(Path(path).resolve()), "artifact_path": artifact_path})

    def discard(self, timeout: float = FINISH_TIMEOUT_S) -> None:
        """Delete the MLflow run (a run whose directory was removed: bad input found late)."""
        if self.enabled and not self._finished:
            self._put({"op": "delete"})
            self.finish("FAILED", timeout)

    def finish(self, status: str = "FINISHED", timeout: float = FINISH_TIMEOUT_S) -> None:
        """End the MLflow run (``FINISHED``, ``FAILED`` or ``KILLED``) and wait, at most
        ``timeout`` seconds, until everything queued has been written."""
        if not self.enabled or self._finished:
            return
        self._put({"op": "end", "status": status})
        self._finished = True
        self._queue.put(_STOP)
        if self._proc is None:
            return
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        try:
            self._proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self._proc.kill()
            if not self.failed:
                self._fail(f"no answer within {timeout:.0f}s; the run's record may miss its last metrics")
            return
        if self._proc.returncode != 0 and not self.failed:
            tail = (self._stderr_tail or ["(no message)"])[-1]
            self._fail(f"the tracking worker exited with code {self._proc.returncode}: {tail}")

    # -- plumbing -----------------------------------------------------------------------------
    def _put(self, item: dict[str, Any]) -> None:
        if not self._finished and not self.failed:
            self._queue.put(item)

    def _send(self, doc: dict[str, Any]) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write((json.dumps(doc, default=str) + "\n").encode())

    def _write(self) -> None:
        """Move queued ops to the worker's stdin, merging consecutive metrics into one line."""
        assert self._proc is not None and self._proc.stdin is not None
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    break
                if item["op"] == "metrics":
                    while len(item["batch"]) < _BATCH:
                        try:
                            nxt = self._queue.get_nowait()
                        except queue.Empty:
                            break
                        if nxt is not _STOP and nxt["op"] == "metrics":
                            item["batch"].extend(nxt["batch"])
                            continue
                        self._send(item)
                        item = nxt
                        break
                    if item is _STOP:
                        break
                self._send(item)
                self._proc.stdin.flush()
            self._proc.stdin.flush()
        except (OSError, ValueError):  # the worker is gone; _read reports why
            pass
        finally:
            with contextlib.suppress(OSError, ValueError):
                self._proc.stdin.close()

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for raw in self._proc.stdout:
            line = raw.decode(errors="replace").strip()
            if line.startswith("run_id "):
                self.run_id = line.split(" ", 1)[1]
            elif line.startswith("failed "):
                self._fail(line.split(" ", 1)[1])

    def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for raw in self._proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            if line:
                self._stderr_tail = [*self._stderr_tail[-19:], line]

    def _fail(self, message: str) -> None:
        if self.failed:
            return
        self.failed = True
        _warn(f"tracking to {self.settings.uri} failed ({message}); training goes on without it")


def _plain(obj: Any) -> Any:
    """JSON-ready copy (numpy scalars, paths and other objects become numbers or text)."""
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def _start_worker() -> subprocess.Popen[bytes]:
    """``python -m rlseek.tracking.worker`` with this process's rlseek on its path."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # the folder holding the rlseek package
    env["PYTHONPATH"] = os.pathsep.join([root, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]])
    return subprocess.Popen([sys.executable, "-m", "rlseek.tracking.worker"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


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
