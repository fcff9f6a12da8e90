"""Reading the run registry: list, show, compare and retire tracked runs.

A run is named by its MLflow run id (or a unique prefix of at least 6 characters), by its
run name (the run directory's name) when that is unique, or by the path of its run directory
(found through ``meta.json``'s ``run_uid``). Retiring a run sets the tags ``rlseek.retired``,
``rlseek.retired_why`` and ``rlseek.retired_at``, and writes the same into the run directory's
``meta.json`` when that directory is still there.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlseek.errors import RlseekError
from rlseek.tracking.settings import EXPERIMENT
from rlseek.tracking.tracker import UID_TAG, open_client

HEADLINE_METRICS = (
    "summary/eval/mean_return", "summary/final_accuracy", "summary/eval_accuracy",
    "summary/eval/normalized_score", "summary/average_accuracy",
)
"""The first of these a run has is shown as its headline figure in ``rlseek runs list``."""


def _client(uri: str) -> Any:
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        raise RlseekError(
            f"no MLflow store at {uri[len('sqlite:///'):]}; runs are recorded there by rlseek train, "
            "reward-model train and offline compare (or pass --tracking-uri)"
        )
    try:
        return open_client(uri)
    except Exception as exc:  # a bad URI scheme, a missing plugin
        raise RlseekError(f"cannot open the tracking store {uri}: {exc}") from None


def _experiment_ids(client: Any) -> list[str]:
    exp = client.get_experiment_by_name(EXPERIMENT)
    return [str(exp.experiment_id)] if exp is not None else []


def _search(client: Any, filter_string: str = "", max_results: int = 1000) -> list[Any]:
    ids = _experiment_ids(client)
    if not ids:
        return []
    try:
        return list(client.search_runs(ids, filter_string=filter_string, max_results=max_results,
                                       order_by=["attributes.start_time DESC"]))
    except Exception as exc:
        raise RlseekError(f"cannot read runs from the tracking store: {exc}") from None


def record(run: Any) -> dict[str, Any]:
    """A tracked run as plain data: id, name, status, times, params, latest metrics, tags."""
    info, data = run.info, run.data
    return {
        "run_id": info.run_id,
        "name": info.run_name,
        "status": info.status,
        "start_time": _iso(info.start_time),
        "end_time": _iso(info.end_time),
        "kind": data.tags.get("rlseek.kind"),
        "algo": data.tags.get("rlseek.algo"),
        "env_id": data.tags.get("rlseek.env_id"),
        "run_dir": data.tags.get("rlseek.run_dir"),
        "retired": data.tags.get("rlseek.retired") == "true",
        "retired_why": data.tags.get("rlseek.retired_why"),
        "params": dict(sorted(data.params.items())),
        "metrics": dict(sorted(data.metrics.items())),
        "tags": {k: v for k, v in sorted(data.tags.items()) if not k.startswith("mlflow.")},
    }


def headline(rec: dict[str, Any]) -> tuple[str, float] | None:
    """The run's headline metric (see :data:`HEADLINE_METRICS`), if it has one."""
    for key in HEADLINE_METRICS:
        if key in rec["metrics"]:
            return key[len("summary/"):], rec["metrics"][key]
    return None


def list_runs(uri: str, *, include_retired: bool = True) -> list[dict[str, Any]]:
    """Every tracked run, newest first."""
    runs = [record(r) for r in _search(_client(uri))]
    return [r for r in runs if include_retired or not r["retired"]]


def resolve(uri: str, ref: str) -> Any:
    """The MLflow run named by ``ref`` (id, id prefix, run name or run directory)."""
    client = _client(uri)
    path = Path(ref)
    if (path / "meta.json").is_file():
        try:
            uid = json.loads((path / "meta.json").read_text()).get("run_uid")
        except (OSError, ValueError):
            uid = None
        found = _search(client, f"tags.`{UID_TAG}` = '{uid}'", 2) if uid else []
        if found:
            return client, found[0]
        raise RlseekError(f"{ref} is a run directory, but the tracking store has no record of it "
                          "(was tracking off for it?)")
    runs = _search(client)
    exact = [r for r in runs if r.info.run_id == ref]
    if exact:
        return client, exact[0]
    named = [r for r in runs if r.info.run_name == ref]
    prefixed = [r for r in runs if len(ref) >= 6 and r.info.run_id.startswith(ref)]
    for matches in (named, prefixed):
        if len(matches) == 1:
            return client, matches[0]
        if len(matches) > 1:
            ids = ", ".join(r.info.run_id[:12] for r in matches[:5])
            raise RlseekError(f"'{ref}' names {len(matches)} runs ({ids}); give a run id instead")
    raise RlseekError(f"no tracked run '{ref}' in {uri}; `rlseek runs list` shows the runs "
                      "(a run id, a unique id prefix of >= 6 characters, a run name or a run directory)")


def show(uri: str, ref: str) -> dict[str, Any]:
    """The full record of one run."""
    _, run = resolve(uri, ref)
    return record(run)


def compare(uri: str, refs: Sequence[str]) -> dict[str, Any]:
    """Runs side by side: their records, the params that differ, and every metric."""
    if len(refs) < 2:
        raise RlseekError("runs compare needs at least two runs")
    recs = [show(uri, r) for r in refs]
    keys = sorted(set().union(*(r["params"] for r in recs)))
    differ = {k: [r["params"].get(k) for r in recs] for k in keys
              if len({r["params"].get(k) for r in recs}) > 1}
    mkeys = sorted(set().union(*(r["metrics"] for r in recs)))
    metrics = {k: [r["metrics"].get(k) for r in recs] for k in mkeys}
    return {"runs": [{k: r[k] for k in ("run_id", "name", "kind", "algo", "env_id", "status", "retired")}
                     for r in recs],
            "params_differing": differ, "metrics": metrics}


def retire(uri: str, ref: str, why: str) -> dict[str, Any]:
    """Mark a run retired with its reason (MLflow tags, and meta.json when the run dir exists)."""
    why = (why or "").strip()
    if not why:
        raise RlseekError("runs retire needs --why \"...\": the reason is the point of the record")
    client, run = resolve(uri, ref)
    at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    try:
        client.set_tag(run.info.run_id, "rlseek.retired", "true")
        client.set_tag(run.info.run_id, "rlseek.retired_why", why)
        client.set_tag(run.info.run_id, "rlseek.retired_at", at)
    except Exception as exc:
        raise RlseekError(f"cannot write to the tracking store: {exc}") from None
    run_dir = run.data.tags.get("rlseek.run_dir")
    if run_dir and (Path(run_dir) / "meta.json").is_file():
        from rlseek.runs import atomic_write_json

        meta = json.loads((Path(run_dir) / "meta.json").read_text())
        meta["retired"] = {"why": why, "at": at}
        atomic_write_json(Path(run_dir) / "meta.json", meta)
    _, run = resolve(uri, run.info.run_id)
    return record(run)


def _iso(ms: int | None) -> str | None:
    if not ms:
        return None
    return _dt.datetime.fromtimestamp(ms / 1000, _dt.timezone.utc).isoformat(timespec="seconds")
