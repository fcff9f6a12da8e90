"""Compare offline algorithms (BCQ vs behaviour cloning) on one dataset, with honest statistics.

Every (algorithm, seed) run trains for the same number of gradient steps on the same dataset,
then rlseek's own seeded evaluator plays ``eval_episodes`` episodes of its final policy. Every run
sees the same evaluation start states (reset seeds ``EVAL_SEED + i``: common random numbers), so
differences between runs come from training. The final normalized scores (0 = random policy,
100 = the expert, references from the dataset) are aggregated per algorithm with the IQM and
stratified-bootstrap 95% CIs, and P(A > B) is given for every pair (see :mod:`rlseek.statistics`).

Output folder (never overwritten; written to a temp folder and renamed when complete)::

    OUT/results.json   settings, dataset fingerprints, every run's episode returns, the summary
    OUT/results.md     the table
    OUT/plot.png       IQM with CIs and each seed's score
    OUT/tb/            TensorBoard logs (d3rlpy's losses per run, plus eval/ scores)
    OUT/models/        each run's final weights (rlseek's pickle-free format, see algos.py)
"""

from __future__ import annotations

import datetime as _dt
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from rlseek.errors import RlseekError, did_you_mean
from rlseek.evaluation import EVAL_SEED_OFFSET
from rlseek.offline.algos import (
    ALGOS,
    make_algo,
    policy_fn,
    prime_compile_graph,
    save_algo,
    scalar_fields,
)
from rlseek.offline.dataset import OfflineDataset, normalized_score, read_dataset
from rlseek.runs import atomic_directory, atomic_write_json, sha256_file

EVAL_SEED = EVAL_SEED_OFFSET
"""Reset seed of evaluation episode 0; the same for every training seed (common random numbers)."""
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


def run_one(dataset_path: str, algo: str, seed: int, s: CompareSettings, tb_root: str, models_dir: str) -> dict[str, Any]:
    """Train one (algorithm, seed) run and evaluate its final policy. Runs in a worker process."""
    import d3rlpy
    import torch
    from d3rlpy.logging import TensorboardAdapterFactory
    from tensorboardX import SummaryWriter

    from rlseek.evaluation import evaluate_episodes

    if s.jobs > 1 and not s.device.startswith("cuda"):
        torch.set_num_threads(1)  # several runs share the CPU cores; one thread each avoids oversubscription
    ds = read_dataset(dataset_path)
    buffer = ds.to_d3rlpy()
    if s.compile_graph:
        prime_compile_graph(algo, ds.discrete, buffer, s.params.get(algo), s.device)
    d3rlpy.seed(seed)
    model = make_algo(algo, ds.discrete, s.params.get(algo), device=s.device, compile_graph=s.compile_graph)
    per_epoch = next(s.steps // k for k in (10, 5, 4, 2, 1) if s.steps % k == 0)
    name = f"{algo}_seed{seed}"
    losses: dict[str, float] = {}
    t0 = time.perf_counter()
    for _epoch, metrics in model.fitter(
        buffer, n_steps=s.steps, n_steps_per_epoch=per_epoch, experiment_name=name, with_timestamp=False,
        logger_adapter=TensorboardAdapterFactory(root_dir=tb_root), show_progress=False,
    ):
        losses = {k: float(v) for k, v in metrics.items() if not k.startswith("time_")}
    train_seconds = time.perf_counter() - t0
    env = _make_env(ds)
    torch.manual_seed(EVAL_SEED + seed)  # BCQ samples 100 candidate actions per step
    t1 = time.perf_counter()
    res = evaluate_episodes(env, policy_fn(model, ds.discrete), s.eval_episodes, seed=EVAL_SEED)
    eval_seconds = time.perf_counter() - t1
    env.close()
    norm = ds.normalized(res.returns)
    score = float(np.mean(norm))
    with SummaryWriter(logdir=str(Path(tb_root) / "runs" / name)) as w:
        w.add_scalar("eval/normalized_score", score, s.steps)
        w.add_scalar("eval/mean_return", float(np.mean(res.returns)), s.steps)
    folder = Path(models_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    save_algo(model, folder, {"algo": algo, "seed": seed, "dataset_sha256": ds.metadata["data_sha256"]})
    return {
        "algo": algo, "seed": seed, "steps": s.steps, "score": score,
        "mean_return": float(np.mean(res.returns)), "returns": [float(r) for r in res.returns],
        "normalized_returns": [float(x) for x in norm], "lengths": res.lengths,
        "success_rate": float(np.mean(res.successes)) if res.successes else None,
        "final_losses": losses, "train_seconds": train_seconds, "eval_seconds": eval_seconds,
        "grad_steps_per_second": s.steps / train_seconds if train_seconds > 0 else None,
    }


def compare(dataset_path: str | Path, out: str | Path, settings: CompareSettings,
            log: Any = None) -> dict[str, Any]:
    """Run the whole comparison and write OUT (see the module docstring); returns results.json's content."""
    from rlseek import statistics
    from rlseek.offline.report import write_markdown, write_plot

    s = settings
    ds = validate(dataset_path, out, s)
    t0 = time.perf_counter()
    tasks = [(a, seed) for seed in range(s.seeds) for a in s.algos]
    with atomic_directory(out) as tmp:
        tb, models = str(tmp / "tb"), str(tmp / "models")
        runs: list[dict[str, Any]] = []
        if s.jobs == 1:
            for a, seed in tasks:
                runs.append(run_one(str(dataset_path), a, seed, s, tb, models))
                _log(log, runs[-1], len(runs), len(tasks))
        else:
            import multiprocessing as mp

            with ProcessPoolExecutor(max_workers=s.jobs, mp_context=mp.get_context("spawn")) as pool:
                futures = [pool.submit(run_one, str(dataset_path), a, seed, s, tb, models) for a, seed in tasks]
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


def _log(log: Any, run: dict[str, Any], done: int, total: int) -> None:
    if log is not None:
        log(f"[{done}/{total}] {run['algo']} seed {run['seed']}: normalized score {run['score']:.1f} "
            f"(mean return {run['mean_return']:.2f}), {run['train_seconds']:.0f}s training")
