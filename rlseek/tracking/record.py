"""A run directory's MLflow record: what is logged when a run starts and when it ends.

* params — the resolved config (``config.yaml``), flattened to dotted names;
* tags — ``meta.json``'s fingerprints (``rlseek.version``, ``rlseek.git_revision``,
  ``rlseek.config_sha256``, ``rlseek.data.<name>.sha256``, seed, env id, algo), the run's kind
  and ``rlseek.run_dir``, the absolute path of the run directory;
* metrics — every scalar that goes to TensorBoard (through :class:`~rlseek.tracking.ScalarLogger`),
  plus the summary's numbers under ``summary/`` at the end;
* artifacts — ``summary.json``, ``config.yaml`` and ``meta.json`` (small files).

The final model is *referenced*, not copied: the tag ``rlseek.final_model`` names
``RUN/final``. A policy can be gigabytes (a language model), the run directory already holds it
written atomically, and every rlseek command that uses a model (``eval``, ``--resume``,
``serve``) reads a run directory, not an artifact store; a copy would double the disk use and
could drift from the files those commands read.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlseek.tracking.settings import TrackingSettings, resolve_tracking
from rlseek.tracking.tracker import Tracker, numeric_scalars

if TYPE_CHECKING:
    from rlseek.runs import Run


def meta_tags(meta: Mapping[str, Any]) -> dict[str, str]:
    """``meta.json``'s fingerprints as MLflow tags (``rlseek.*``)."""
    tags = {
        "rlseek.version": meta.get("rlseek_version"),
        "rlseek.git_revision": meta.get("git_revision"),
        "rlseek.config_sha256": meta.get("config_sha256"),
        "rlseek.seed": meta.get("seed"),
        "rlseek.env_id": meta.get("env_id"),
        "rlseek.algo": meta.get("algo"),
        "rlseek.python": meta.get("python"),
    }
    for name, entry in (meta.get("data") or {}).items():
        if isinstance(entry, Mapping):
            tags[f"rlseek.data.{name}.sha256"] = entry.get("sha256")
            tags[f"rlseek.data.{name}.path"] = entry.get("path")
    return {k: str(v) for k, v in tags.items() if v is not None}


def run_settings(run: Run) -> TrackingSettings:
    """The tracking target of a run directory (its config's ``run.tracking``/``tracking_uri``)."""
    rs = run.config.run
    return resolve_tracking(getattr(rs, "tracking_uri", "") or None, enabled=getattr(rs, "tracking", True))


def open_run_tracker(run: Run, *, kind: str = "train", parent_uid: str | None = None,
                     settings: TrackingSettings | None = None,
                     run_dir: str | Path | None = None) -> Tracker:
    """Start (or, for a resumed run, continue) the MLflow record of ``run``; attaches the
    tracker as ``run.tracker`` so the run's :class:`ScalarLogger` forwards to it.

    ``run_dir`` is where the run directory will live when it differs from ``run.path`` (a
    comparison writes its runs in a temp folder renamed when complete)."""
    settings = settings or run_settings(run)
    if not settings.enabled:
        run.tracker = Tracker.disabled()
        return run.tracker
    meta = run.meta
    uid = meta.get("run_uid")
    if not uid:
        uid = uuid.uuid4().hex
        run.update_meta(run_uid=uid)
        meta["run_uid"] = uid
    where = str(Path(run_dir or run.path).resolve())
    tags = {**meta_tags(meta), "rlseek.kind": kind, "rlseek.run_dir": where}
    run.tracker = Tracker(settings, run_uid=uid, run_name=Path(run.path).name, tags=tags,
                          params=run.config.to_dict(), parent_uid=parent_uid)
    run.tracker.run_dir = where
    return run.tracker


def close_run_tracker(run: Run, summary: Mapping[str, Any] | None, *, status: str = "FINISHED",
                      step: int = 0) -> None:
    """Log the end of ``run``: fingerprints added while training, the summary's numbers, the
    small files and the final-model reference; then end the MLflow run (bounded wait)."""
    tracker: Tracker | None = getattr(run, "tracker", None)
    if tracker is None or not tracker.enabled:
        return
    path = Path(run.path).resolve()
    final = Path(getattr(tracker, "run_dir", None) or path)
    with contextlib.suppress(Exception):  # an unreadable meta.json must not hide the summary
        tracker.set_tags(meta_tags(run.meta))
    if summary is not None:
        tracker.log_metrics(numeric_scalars(
            {k: v for k, v in summary.items() if k not in ("history", "curve", "evals")}, "summary/"), step)
        tracker.set_tags({"rlseek.final_model": str(final / "final")})
    for name in ("summary.json", "config.yaml", "meta.json"):
        tracker.log_artifact(path / name)
    tracker.finish(status)


class TrackedRun:
    """A run directory's training session with its MLflow record, as a context manager::

        with TrackedRun(run, kind="train") as session:
            summary = agent.train(run, ...)
            session.finish(summary)      # summary.json, meta.json status, the record's end

    Leaving the block without :meth:`finish` (an exception, Ctrl-C) ends the MLflow run as
    FAILED or KILLED; the exception goes on unchanged.
    """

    def __init__(self, run: Run, *, kind: str = "train", parent_uid: str | None = None,
                 run_dir: str | Path | None = None) -> None:
        self.run = run
        self.kind = kind
        self.parent_uid = parent_uid
        self.run_dir = run_dir
        self._done = False

    def __enter__(self) -> TrackedRun:
        open_run_tracker(self.run, kind=self.kind, parent_uid=self.parent_uid, run_dir=self.run_dir)
        return self

    def finish(self, summary: Mapping[str, Any], step: int | None = None) -> None:
        """Write the summary and mark the run finished (``Run.finish``), then close the record."""
        self.run.finish(dict(summary))
        self._done = True
        close_run_tracker(self.run, summary, step=int(step if step is not None else summary.get("steps") or 0))

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if not self._done:
            status = "KILLED" if exc_type is KeyboardInterrupt else "FAILED"
            close_run_tracker(self.run, None, status=status)


def open_model_tracker(out: str | Path, *, kind: str, algo: str, seed: int, params: Mapping[str, Any],
                       data: Mapping[str, str | Path], enabled: bool = True,
                       uri: str | None = None) -> Tracker:
    """The MLflow record of a training that writes a model directory rather than a run
    directory (``reward-model train``): ``params`` as params, each data file's sha256 and path
    as ``rlseek.data.<name>.*`` tags, ``out`` as ``rlseek.run_dir`` and ``rlseek.final_model``."""
    from rlseek._version import __version__
    from rlseek.runs import git_revision, sha256_file

    settings = resolve_tracking(uri, enabled=enabled)
    if not settings.enabled:
        return Tracker.disabled()
    where = str(Path(out).resolve())
    tags: dict[str, Any] = {"rlseek.kind": kind, "rlseek.algo": algo, "rlseek.version": __version__,
                            "rlseek.git_revision": git_revision(), "rlseek.seed": seed,
                            "rlseek.run_dir": where, "rlseek.final_model": where}
    for name, path in data.items():
        tags[f"rlseek.data.{name}.path"] = str(path)
        tags[f"rlseek.data.{name}.sha256"] = sha256_file(path)
    tracker = Tracker(settings, run_uid=uuid.uuid4().hex, run_name=Path(out).name,
                      tags={k: v for k, v in tags.items() if v is not None}, params=params)
    tracker.run_dir = where
    return tracker


def close_model_tracker(tracker: Tracker, history: list[Mapping[str, Any]], summary: Mapping[str, Any],
                        step: int, artifacts: list[Path]) -> None:
    """Log a model training's history (one mapping per evaluation, with its ``step``), its
    summary under ``summary/`` and small files; then end the MLflow run."""
    for rec in history:
        tracker.log_metrics({k: float(v) for k, v in rec.items()
                             if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)},
                            int(rec["step"]))
    tracker.log_metrics(numeric_scalars(summary, "summary/"), step)
    for path in artifacts:
        tracker.log_artifact(path)
    tracker.finish("FINISHED")
