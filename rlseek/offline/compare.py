"""Compare offline algorithms (BCQ vs behaviour cloning) on one dataset, with honest statistics.

Every (algorithm, seed) run trains for the same number of gradient steps on the same dataset,
then rlseek's own seeded evaluator plays ``eval_episodes`` episodes of its final policy. Every run
sees the same evaluation start states (reset seeds ``EVAL_SEED + i``: common random numbers), so
differences between runs come from training. The final normalized scores (0 = random policy,
100 = the expert, references from the dataset) are aggregated per algorithm with the IQM and
stratified-bootstrap 95% CIs, and P(A > B) is given for every pair (see :mod:`rlseek.statistics`).

Each (algorithm, seed) run is an ordinary ``rlseek train`` run of the ``bcq``/``bc`` agent
(:mod:`rlseek.agents.offline`) in its own run directory — the same loop, logger, checkpoints,
summary and MLflow record — so ``rlseek eval OUT/runs/bcq_seed0`` re-evaluates one of them. This
module adds only the statistics across runs. Tracking: the comparison is one MLflow run (tag
``rlseek.kind = offline-compare``; the statistics as metrics, the result files as artifacts) and
each of its runs a child run of it.

Output folder (never overwritten; written to a temp folder and renamed when complete)::

    OUT/results.json   settings, dataset fingerprints, every run's episode returns, the summary
    OUT/results.md     the table
    OUT/plot.png       IQM with CIs and each seed's score
    OUT/runs/ALGO_seedK/  each run's directory: config.yaml, meta.json, tb/ (d3rlpy's losses,
                       eval/ scores, monitoring), final/ (rlseek's pickle-free weights), summary.json
"""

from __future__ import annotations

import datetime as _dt
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from rlseek.errors import RlseekError, did_you_mean
from rlseek.evaluation import EVAL_SEED_OFFSET
from rlseek.offline.algos import ALGOS, make_algo, scalar_fields
from rlseek.offline.dataset import OfflineDataset, normalized_score, read_dataset
from rlseek.runs import atomic_directory, atomic_write_json, sha256_file

EVAL_SEED = EVAL_SEED_OFFSET
"""Evaluation reset seeds start here: away from collection seeds (0, 1, ...) and references (1e6)."""


@dataclass
class CompareSettings:
    """What to compare and with which budget.

    Attributes:
        algos: algorithm names (see :data:`rlseek.offline.algos.ALGOS`); the first is "ours" in P(A > B).
        seeds: training seeds per algorithm (0 .. seeds-1); rliable asks for >= 5.
        steps: gradient steps per run, the same for every algorithm.
        eval_episodes: evaluation episodes per run.
        device: 'cpu', 'cuda', 'cuda:N' or 'auto'.
        compile_graph: d3rlpy's torch.compile + CUDA graphs (GPU only).
        jobs: runs trained at once in separate processes.
        params: per-algorithm d3rlpy config overrides, e.g. {"bcq": {"batch_size": 256}}.
        bootstrap_reps: bootstrap replications for the CIs.
        tracking: record the comparison and its runs in MLflow.
        tracking_uri: MLflow tracking URI ("" = ``MLFLOW_TRACKING_URI`` or the embedded store).
    """

    algos: list[str] = field(default_factory=lambda: ["bcq", "bc"])
    seeds: int = 5
    steps: int = 5_000
    eval_episodes: int = 10
    device: str = "cpu"
    compile_graph: bool = False
    jobs: int = 1
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    bootstrap_reps: int = 2_000
    tracking: bool = True
    tracking_uri: str = ""


def parse_algos(text: str) -> list[str]:
    """'bcq,bc' -> ['bcq', 'bc'], with a did-you-mean for unknown names and no duplicates."""
    names = [a.strip().lower() for a in text.split(",") if a.strip()]
    if not names:
        raise RlseekError("--algos is empty; give e.g. --algos bcq,bc")
    for a in names:
        if a not in ALGOS:
            raise RlseekError(f"unknown algo '{a}'{did_you_mean(a, ALGOS)}; known offline algos: {', '.join(ALGOS)}")
    if len(set(names)) != len(names):
        raise RlseekError(f"--algos lists an algorithm twice: {text}")
    return names


def validate(dataset_path: str | Path, out: str | Path, s: CompareSettings) -> OfflineDataset:
    """Check every input before any training starts; returns the (verified) dataset."""
    if s.seeds < 1:
        raise RlseekError(f"--seeds must be >= 1, got {s.seeds}")
    if s.steps < 1:
        raise RlseekError(f"--steps must be >= 1, got {s.steps}")
    if s.eval_episodes < 1:
        raise RlseekError(f"--episodes must be >= 1, got {s.eval_episodes}")
    if s.jobs < 1:
        raise RlseekError(f"--jobs must be >= 1, got {s.jobs}")
    for a in s.algos:
        parse_algos(a)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RlseekError(f"--out {out} exists and is not empty; results are never overwritten — choose a new --out")
    ds = read_dataset(dataset_path)
    env = _make_env(ds)
    ds.check_env(env, source=str(dataset_path))
    env.close()
    for a in s.algos:
        make_algo(a, ds.discrete, s.params.get(a), device="cpu", source=f"params.{a}")
    if ds.normalized(0.0) is None:
        raise RlseekError(f"{dataset_path}: no reference returns in its metadata; normalized scores need them")
    return ds


def _make_env(ds: OfflineDataset) -> gym.Env:
    from rlseek.envs.factory import check_env_id

    env_id = ds.metadata.get("env_id")
    if not env_id:
        raise RlseekError("the dataset's metadata names no env_id to evaluate on")
    check_env_id(env_id)
    return gym.make(env_id, **(ds.metadata.get("env_kwargs") or {}))


def run_config(dataset_path: str, algo: str, seed: int, s: CompareSettings, ds: OfflineDataset) -> dict[str, Any]:
    """The ``rlseek train`` config of one (algorithm, seed) run: the whole budget, one
    evaluation and one checkpoint at its end."""
    params: dict[str, Any] = {"dataset": str(dataset_path), **s.params.get(algo, {})}
    if s.compile_graph:
        params["compile_graph"] = True
    return {
        "env": {"id": ds.metadata.get("env_id"), "kwargs": dict(ds.metadata.get("env_kwargs") or {})},
        "agent": {"algo": algo, "params": params},
        "run": {"total_steps": s.steps, "seed": seed, "device": s.device, "eval_every": s.steps,
                "eval_episodes": s.eval_episodes, "checkpoint_every": s.steps, "keep_checkpoints": 1,
                # several runs at once share the CPU cores: one thread each avoids oversubscription
                "torch_threads": 1 if s.jobs > 1 and not s.device.startswith("cuda") else 0,
                "tracking": s.tracking, "tracking_uri": s.tracking_uri},
    }


def run_one(dataset_path: str, algo: str, seed: int, s: CompareSettings, folder: str,
            final_folder: str, parent_uid: str | None = None) -> dict[str, Any]:
    """Train and evaluate one (algorithm, seed) run in the run directory ``folder`` (which will
    be renamed to ``final_folder`` with the whole comparison). Runs in a worker process."""
    from rlseek.agents import get_agent_class
    from rlseek.config import config_from_dict
    from rlseek.runs import Run
    from rlseek.tracking import TrackedRun

    ds = read_dataset(dataset_path)
    cfg = config_from_dict(run_config(dataset_path, algo, seed, s, ds), source=f"offline compare {algo} seed {seed}")
    agent = get_agent_class(algo)(cfg)
    run = Run.create(folder, cfg, ["rlseek", "offline", "compare", f"--algos={algo}", f"--seed={seed}"])
    with TrackedRun(run, kind="train", parent_uid=parent_uid, run_dir=final_folder) as session:
        summary = agent.train(run)
        session.finish(summary)
    ev = summary["eval"]
    fit = float(summary["fit_seconds"])
    return {
        "algo": algo, "seed": seed, "steps": int(summary["gradient_steps"]),
        "score": float(ev["normalized_score"]),
        "mean_return": float(ev["mean_return"]), "returns": [float(r) for r in ev["returns"]],
        "normalized_returns": [float(x) for x in ev["normalized_returns"]], "lengths": ev["lengths"],
        "success_rate": ev.get("success_rate"),
        "final_losses": summary["final_losses"], "train_seconds": fit, "eval_seconds": summary["eval_seconds"],
        "grad_steps_per_second": summary["grad_steps_per_second"],
        "run_dir": str(Path(final_folder).relative_to(Path(final_folder).parent.parent)),
    }


def compare(dataset_path: str | Path, out: str | Path, settings: CompareSettings,
            log: Any = None) -> dict[str, Any]:
    """Run the whole comparison and write OUT (see the module docstring); returns results.json's content."""
    s = settings
    ds = validate(dataset_path, out, s)
    t0 = time.perf_counter()
    tasks = [(a, seed) for seed in range(s.seeds) for a in s.algos]
    tracker = _open_parent(dataset_path, out, s, ds)
    try:
        results = _compare(dataset_path, Path(out), s, ds, tasks, t0, tracker, log)
    except BaseException as exc:
        tracker.finish("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    _close_parent(tracker, results, Path(out))
    return results


def _compare(dataset_path: str | Path, out: Path, s: CompareSettings, ds: OfflineDataset,
             tasks: list[tuple[str, int]], t0: float, tracker: Any, log: Any) -> dict[str, Any]:
    from rlseek import statistics
    from rlseek.offline.report import write_markdown, write_plot

    with atomic_directory(out) as tmp:
        runs: list[dict[str, Any]] = []
        jobs = [(str(dataset_path), a, seed, s, str(tmp / "runs" / f"{a}_seed{seed}"),
                 str(out.resolve() / "runs" / f"{a}_seed{seed}"), tracker.run_uid or None) for a, seed in tasks]
        if s.jobs == 1:
            for job in jobs:
                runs.append(run_one(*job))
                _log(log, runs[-1], len(runs), len(tasks))
        else:
            import multiprocessing as mp

            with ProcessPoolExecutor(max_workers=s.jobs, mp_context=mp.get_context("spawn")) as pool:
                futures = [pool.submit(run_one, *job) for job in jobs]
                for fut in futures:
                    runs.append(fut.result())
                    _log(log, runs[-1], len(runs), len(tasks))
        scores = {a: [r["score"] for r in runs if r["algo"] == a] for a in s.algos}
        summary = statistics.summarize(scores, reps=s.bootstrap_reps)
        for a in s.algos:
            mine = [r for r in runs if r["algo"] == a]
            summary[a]["mean_return"] = float(np.mean([r["mean_return"] for r in mine]))
            succ = [r["success_rate"] for r in mine if r["success_rate"] is not None]
            summary[a]["success_rate"] = float(np.mean(succ)) if succ else None
            summary[a]["train_seconds_per_run"] = float(np.mean([r["train_seconds"] for r in mine]))
        poi = {f"{x}>{y}": statistics.improvement(scores[x], scores[y], reps=s.bootstrap_reps).to_dict()
               for i, x in enumerate(s.algos) for y in s.algos[i + 1:]}
        meta = ds.metadata
        beh_return = (meta.get("behaviour") or {}).get("mean_return")
        behaviour_norm = None if beh_return is None else normalized_score(
            beh_return, meta["reference"]["random_return"], meta["reference"]["expert_return"])
        results = {
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "dataset": {
                "path": str(dataset_path), "file_sha256": sha256_file(dataset_path),
                "data_sha256": meta["data_sha256"], "env_id": meta.get("env_id"),
                "env_version": meta.get("env_version"), "kind": meta.get("kind"),
                "n_episodes": len(ds.episodes), "n_transitions": ds.n_transitions,
                "behaviour": meta.get("behaviour"),
                "behaviour_normalized": None if behaviour_norm is None else float(behaviour_norm),
                "reference": meta.get("reference"),
            },
            "settings": {**asdict(s), "eval_seed": EVAL_SEED, "score": "normalized score of the final policy, mean over eval episodes",
                         "algo_configs": {a: {**scalar_fields(a, ds.discrete), **s.params.get(a, {})} for a in s.algos}},
            "runs": runs,
            "summary": summary,
            "probability_of_improvement": poi,
            "elapsed_seconds": time.perf_counter() - t0,
            "versions": meta.get("versions", {}),
        }
        atomic_write_json(tmp / "results.json", results)
        write_markdown(tmp / "results.md", results)
        write_plot(tmp / "plot.png", results)
    return results


def _open_parent(dataset_path: str | Path, out: str | Path, s: CompareSettings, ds: OfflineDataset) -> Any:
    """The comparison's own MLflow run (its runs are children of it)."""
    from rlseek.tracking import Tracker, resolve_tracking

    settings = resolve_tracking(s.tracking_uri or None, enabled=s.tracking)
    if not settings.enabled:
        return Tracker.disabled()
    meta = ds.metadata
    tags = {"rlseek.kind": "offline-compare", "rlseek.algo": ",".join(s.algos),
            "rlseek.env_id": meta.get("env_id"), "rlseek.run_dir": str(Path(out).resolve()),
            "rlseek.data.dataset.sha256": sha256_file(dataset_path),
            "rlseek.data.dataset.data_sha256": meta.get("data_sha256"),
            "rlseek.data.dataset.path": str(dataset_path)}
    return Tracker(settings, run_uid=uuid.uuid4().hex, run_name=Path(out).name,
                   tags={k: v for k, v in tags.items() if v is not None}, params=asdict(s))


def _close_parent(tracker: Any, results: dict[str, Any], out: Path) -> None:
    from rlseek.tracking.tracker import numeric_scalars

    metrics: dict[str, float] = {}
    for algo, row in results["summary"].items():
        metrics.update(numeric_scalars({k: v for k, v in row.items() if k != "scores"}, f"summary/{algo}/"))
    poi = {pair.replace(">", "_over_"): v for pair, v in results["probability_of_improvement"].items()}
    metrics.update(numeric_scalars(poi, "summary/probability_of_improvement/"))
    tracker.log_metrics(metrics, int(results["settings"]["steps"]))
    for name in ("results.json", "results.md", "plot.png"):
        tracker.log_artifact(out / name)
    tracker.finish("FINISHED")


def _log(log: Any, run: dict[str, Any], done: int, total: int) -> None:
    if log is not None:
        log(f"[{done}/{total}] {run['algo']} seed {run['seed']}: normalized score {run['score']:.1f} "
            f"(mean return {run['mean_return']:.2f}), {run['train_seconds']:.0f}s training")
