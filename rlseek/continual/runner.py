"""Train an agent over a task sequence and measure forgetting.

The sequence run directory holds the config (with ``run.tasks``), ``meta.json``,
``continual.json`` (the accuracy matrix so far) and one ordinary run directory per task,
``tasks/NN-name/``, each starting from the previous task's final policy. After each task every
task of the sequence is evaluated with the new policy (``run.eval_episodes`` episodes or
prompts): row i of the matrix. ``--resume`` skips finished tasks, resumes the current one from
its newest checkpoint (or restarts it when it has none) and re-evaluates a task whose row is
missing. The summary holds the matrix, ACC and BWT (:mod:`rlseek.continual.metrics`) and every
task's own summary. Each task is its own MLflow run, nested under the sequence's.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any

from rlseek.config import EnvSection, ExperimentConfig
from rlseek.continual import metrics
from rlseek.continual.spec import ContinualSpec, TaskSpec, parse_continual
from rlseek.continual.state import TaskContext
from rlseek.errors import RlseekError
from rlseek.runs import Run, atomic_write_json

PROGRESS_FILE = "continual.json"


def spec_of(config: ExperimentConfig) -> ContinualSpec | None:
    """The parsed task sequence of ``config`` (None: an ordinary single-task run)."""
    return parse_continual(config.run, dataclasses.asdict(config.env), config.source)


def task_config(config: ExperimentConfig, task: TaskSpec) -> ExperimentConfig:
    """The single-task config of ``task``: its env and budget, no sequence options."""
    run = dataclasses.replace(config.run, total_steps=task.total_steps, tasks=None, replay=None, ewc=None)
    return dataclasses.replace(config, env=EnvSection(**task.env), run=run)


def accuracy_of(result: dict[str, Any]) -> float:
    """The task family's accuracy in an evaluation: Arithmetic's ``exact_match``, a robot's
    ``success_rate``, Reviews' ``positive_fraction``."""
    for key in ("exact_match", "success_rate", "positive_fraction"):
        value = result.get(key)
        if isinstance(value, (int, float)):
            return float(value)
    raise RlseekError(f"the evaluation reports no accuracy or success rate (keys: {', '.join(sorted(result))})")


def check_supported(agent_cls: type, config: ExperimentConfig) -> None:
    """Refuse algos without continual hooks before anything is written."""
    if not getattr(agent_cls, "supports_continual", False):
        from rlseek.agents import get_agent_class, list_agents

        ok = [a for a in list_agents() if getattr(get_agent_class(a), "supports_continual", False)]
        raise RlseekError(f"{config.source}: run.tasks is not supported by algo '{config.agent.algo}'; "
                          f"algos with continual learning: {', '.join(ok)}")


def _await_record(tracker: Any, timeout_s: float = 60.0) -> None:
    """Wait (at most ``timeout_s``) until the sequence's MLflow run exists. Its worker may be
    creating a new sqlite store; a task's worker creating the same store at the same moment
    fails (SQLAlchemy: duplicate column), losing the sequence's record."""
    start = time.monotonic()
    while (tracker is not None and tracker.enabled and not tracker.failed and tracker.run_id is None
           and time.monotonic() - start < timeout_s):
        time.sleep(0.05)


def _task_dir(run: Run, i: int, task: TaskSpec) -> Path:
    return run.path / "tasks" / f"{i:02d}-{task.name}"


def train_sequence(run: Run, *, resume: bool = False, progress: bool = False,
                   command: list[str] | None = None) -> dict[str, Any]:
    """Train every task of ``run.config``'s sequence in order; return the sequence summary."""
    from rlseek.agents import get_agent_class
    from rlseek.tracking import TrackedRun

    cfg = run.config
    spec = spec_of(cfg)
    if spec is None:
        raise RlseekError(f"{run.path}: config has no run.tasks")
    agent_cls = get_agent_class(cfg.agent.algo)
    check_supported(agent_cls, cfg)
    state_path = run.path / PROGRESS_FILE
    state = json.loads(state_path.read_text()) if resume and state_path.is_file() else {"rows": [], "tasks": {}}
    parent_uid = run.meta.get("run_uid")
    _await_record(getattr(run, "tracker", None))
    started = time.monotonic()
    previous: Path | None = None
    for i, task in enumerate(spec.tasks):
        tdir = _task_dir(run, i, task)
        ctx = TaskContext(spec, i, tdir, previous, seed=int(cfg.run.seed))
        tcfg = task_config(cfg, task)
        if (tdir / "meta.json").is_file():
            tcfg = Run.open(tdir).config  # what the task recorded (its starting model included)
        elif agent_cls.env_kind == "text" and previous is not None:
            # Text policies start from the previous task's final model (see rlseek.continual.text).
            params = {**tcfg.agent.params, "model": str((previous / "final").resolve())}
            tcfg = dataclasses.replace(tcfg, agent=dataclasses.replace(tcfg.agent, params=params))
        agent = agent_cls(tcfg)
        agent.continual = ctx
        if not (tdir / "meta.json").is_file() or not Run.open(tdir).is_finished:
            child = Run.open(tdir) if (tdir / "meta.json").is_file() else None
            again = child is not None and child.latest_checkpoint() is not None
            if child is not None and not again:
                shutil.rmtree(tdir)  # killed before its first checkpoint: nothing to keep
            if again:
                child.append_command(command)
            else:
                agent.config = agent.resolve_config(agent.config)
                child = Run.create(tdir, agent.config, command)
            if progress:
                print(f"task {i + 1}/{len(spec.tasks)}: {task.name}", flush=True)
            with TrackedRun(child, kind="train", parent_uid=parent_uid) as session:
                summary = agent.train(child, resume=again, progress=progress)
                session.finish(summary)
            state["tasks"][task.name] = {k: v for k, v in summary.items() if k not in ("curve", "history", "evals")}
            state["rows"] = state["rows"][:i]
            atomic_write_json(state_path, state)
        if len(state["rows"]) <= i:
            child = Run.open(tdir)
            if task.name not in state["tasks"]:
                state["tasks"][task.name] = json.loads((tdir / "summary.json").read_text()).get("eval", {})
            row = []
            for other in spec.tasks:
                evaluator = agent_cls(task_config(cfg, other))
                row.append(accuracy_of(evaluator.evaluate(child, episodes=int(cfg.run.eval_episodes))))
            state["rows"] = state["rows"][:i] + [row]
            atomic_write_json(state_path, state)
            if getattr(run, "tracker", None) is not None:
                run.tracker.log_metrics({f"continual/acc_{o.name}": v for o, v in zip(spec.tasks, row)}, i)
        previous = tdir
    names = [t.name for t in spec.tasks]
    out = metrics.summary(state["rows"], names)
    steps = sum(t.total_steps for t in spec.tasks)
    return {"algo": cfg.agent.algo, "method": spec.method, **out, "steps": steps, "total_steps": steps,
            "task_summaries": state["tasks"], "wall_time_s": time.monotonic() - started,
            "replay": dataclasses.asdict(spec.replay) if spec.replay else None,
            "ewc": {"lambda": spec.ewc.lam, "fisher_samples": spec.ewc.fisher_samples} if spec.ewc else None,
            "eval": {"average_accuracy": out["average_accuracy"], "backward_transfer": out["backward_transfer"]}}
