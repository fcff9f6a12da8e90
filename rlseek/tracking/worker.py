"""The tracking worker: a child process that performs one run's MLflow calls.

:class:`rlseek.tracking.Tracker` starts ``python -m rlseek.tracking.worker`` and sends it one
JSON document per line on stdin (``{"op": "start" | "metrics" | "params" | "tags" |
"artifact" | "delete" | "end", ...}``). The worker answers on stdout with ``run_id ID`` once the
MLflow run exists and ``failed MESSAGE`` at its first error, after which it only drains its
input. In a process of its own, MLflow's import (several seconds) and every database write run
beside training instead of competing with it for the interpreter lock. When stdin closes
without an ``end`` — the training process died — the run is ended as KILLED.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from typing import Any

from rlseek.tracking.tracker import (
    MAX_PARAM_LENGTH,
    UID_TAG,
    ensure_experiment,
    flatten,
    open_client,
)

_BATCH = 900


class Worker:
    """Performs the ops of one tracked run against ``uri``."""

    def __init__(self, uri: str, artifact_root: str | None, run_uid: str) -> None:
        self.uri, self.artifact_root, self.run_uid = uri, artifact_root, run_uid
        self.client: Any = None
        self.run_id: str | None = None
        self.ended = False

    def start(self, run_name: str, tags: dict[str, str], params: dict[str, Any], parent_uid: str | None) -> None:
        self.client = open_client(self.uri)
        exp_id = ensure_experiment(self.client, self.artifact_root)
        found = self.client.search_runs([exp_id], filter_string=f"tags.`{UID_TAG}` = '{self.run_uid}'",
                                        max_results=1)
        all_tags = {UID_TAG: self.run_uid, **tags}
        if parent_uid:
            parent = self.client.search_runs([exp_id], filter_string=f"tags.`{UID_TAG}` = '{parent_uid}'",
                                             max_results=1)
            all_tags["rlseek.parent_uid"] = parent_uid
            if parent:
                all_tags["mlflow.parentRunId"] = parent[0].info.run_id
        if found:  # a resumed run continues its record
            self.run_id = found[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
            self.tags(all_tags)
        else:
            self.run_id = self.client.create_run(exp_id, run_name=run_name, tags=all_tags).info.run_id
            self.params(params)
        _say(f"run_id {self.run_id}")

    def params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, _param_text(v)) for k, v in flatten(params).items()]
        for i in range(0, len(items), 100):
            try:
                self.client.log_batch(self.run_id, params=items[i : i + 100])
            except Exception as exc:
                # A resumed run may log a param again with another value; MLflow refuses that.
                if "Changing param values is not allowed" not in str(exc):
                    raise

    def metrics(self, batch: list[list[Any]]) -> None:
        from mlflow.entities import Metric

        items = [Metric(k, float(v) if v is not None and math.isfinite(float(v)) else float("nan"), int(t), int(s))
                 for k, v, t, s in batch]
        for i in range(0, len(items), _BATCH):
            self.client.log_batch(self.run_id, metrics=items[i : i + _BATCH])

    def tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)[:8000]) for k, v in tags.items()])

    def artifact(self, path: str, artifact_path: str | None) -> None:
        import os

        if os.path.isfile(path):
            self.client.log_artifact(self.run_id, path, artifact_path)

    def delete(self) -> None:
        self.client.delete_run(self.run_id)
        self.run_id = None

    def end(self, status: str) -> None:
        self.ended = True
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, status=status)


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= MAX_PARAM_LENGTH else text[: MAX_PARAM_LENGTH - 1] + "…"


def _with_retries(fn: Any, kwargs: dict[str, Any], tries: int = 6) -> None:
    """Call ``fn(**kwargs)``, retrying while an sqlite store is locked by another writer
    (parallel runs of ``offline compare --jobs N`` share one database file)."""
    import time

    for i in range(tries):
        try:
            fn(**kwargs)
            return
        except Exception as exc:
            if "database is locked" not in str(exc) or i == tries - 1:
                raise
            time.sleep(0.25 * 2**i)


def _say(line: str) -> None:
    sys.stdout.write(line.replace("\n", " ") + "\n")
    sys.stdout.flush()


def main() -> int:
    """Read ops from stdin until it closes (see the module docstring)."""
    head = json.loads(sys.stdin.readline() or "{}")
    worker = Worker(head.get("uri", ""), head.get("artifact_root"), head.get("run_uid", ""))
    failed = False
    for line in sys.stdin:
        if failed or not line.strip():
            continue
        op = json.loads(line)
        name = op.pop("op")
        try:
            if name != "start" and worker.run_id is None and name != "end":
                continue
            _with_retries(getattr(worker, name), op)
        except Exception as exc:  # any failure of the tracking backend: report once, drain
            failed = True
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            _say(f"failed {type(exc).__name__}: {first}")
            if worker.run_id is not None and name != "end":
                with contextlib.suppress(Exception):  # leave no record RUNNING forever
                    worker.end("FAILED")
    if not failed and not worker.ended and worker.run_id is not None:  # the parent died
        with contextlib.suppress(Exception):
            worker.end("KILLED")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
