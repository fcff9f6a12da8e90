"""Forgetting under continual learning: plain fine-tuning, replay, EWC and replay + EWC.

Each method trains the same task sequence (a config with ``run.tasks``) for ``--seeds`` seeds;
every run's summary gives the task × task accuracy matrix, its average final accuracy (ACC) and
backward transfer (BWT, negative = forgetting). The table shows per method the mean over seeds
with a 95 % stratified-bootstrap CI (:func:`rlseek.statistics.bootstrap_ci`). Methods are the
config's ``run.replay`` / ``run.ewc`` switched on or off; their settings come from the config.

    python benchmarks/bench_continual.py --sequence robot --seeds 3
    python benchmarks/bench_continual.py --sequence text --seeds 3
    python benchmarks/bench_continual.py                  # both (what `make bench` runs)

Runs go to ``--out`` (default a temp folder); the figures to ``figures/continual_<sequence>.json``,
which the README quotes. Torch uses one thread (``run.torch_threads: 1``) so runs measured under
load stay comparable.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import rlseek
from rlseek.config import read_yaml
from rlseek.figures import SOURCE_FIGURES, write_figures
from rlseek.statistics import bootstrap_ci

ROOT = Path(__file__).resolve().parent.parent
SEQUENCES = {"robot": ROOT / "examples/configs/continual_reacher_sac.yaml",
             "text": ROOT / "examples/configs/continual_arithmetic_lm_ppo.yaml"}
METHODS = ("finetune", "replay", "ewc", "replay+ewc")


def method_config(base: dict[str, Any], method: str, seed: int) -> dict[str, Any]:
    """``base`` with replay / EWC kept or removed for ``method``, at ``seed``, untracked."""
    run = dict(base["run"])
    if "replay" not in method:
        run.pop("replay", None)
    if "ewc" not in method:
        run.pop("ewc", None)
    run.update(seed=seed, torch_threads=1, tracking=False)
    return {**base, "run": run}


def _ci(values: list[float]) -> dict[str, float]:
    return bootstrap_ci(lambda a: float(np.mean(a)), np.asarray(values)[:, None], seed=0).to_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sequence", choices=sorted(SEQUENCES), default=None, help="default: both")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--config", default=None, help="sequence config (default: the sequence's example)")
    parser.add_argument("--out", default=None, help="folder for the runs (default: a temp folder)")
    parser.add_argument("--figures", default=None, help="figure file (default figures/continual_<sequence>.json)")
    args = parser.parse_args()
    if args.sequence is None and (args.config or args.figures):
        raise SystemExit("--config and --figures need --sequence")
    torch.set_num_threads(1)
    for sequence in [args.sequence] if args.sequence else sorted(SEQUENCES):
        bench(sequence, args.seeds, args.config, args.out, args.figures)


def bench(sequence: str, seeds: int, config_path: str | None, out_dir: str | None, figures_path: str | None) -> None:
    """Train every method on ``sequence`` for ``seeds`` seeds; print the table, write the figures."""
    config = Path(config_path or SEQUENCES[sequence])
    base = read_yaml(config)
    if not all(k in base["run"] for k in ("replay", "ewc")):
        raise SystemExit(f"{config}: run.replay and run.ewc must both be set (the benchmark switches them)")
    out = Path(out_dir) / sequence if out_dir else Path(tempfile.mkdtemp(prefix=f"continual-{sequence}-"))
    results: dict[str, dict[str, Any]] = {m: {"acc": [], "bwt": [], "matrices": []} for m in METHODS}
    start = time.monotonic()
    for seed in range(seeds):
        for method in METHODS:  # methods interleaved per seed: machine load hits all alike
            t0 = time.monotonic()
            run = rlseek.train(method_config(base, method, seed), out=out / f"{method}-s{seed}")
            s = run.summary
            results[method]["acc"].append(s["average_accuracy"])
            results[method]["bwt"].append(s["backward_transfer"])
            results[method]["matrices"].append(s["accuracy_matrix"])
            print(f"{method:>10} seed {seed}: ACC {s['average_accuracy']:.3f} BWT {s['backward_transfer']:+.3f} "
                  f"matrix {np.round(s['accuracy_matrix'], 3).tolist()} ({time.monotonic() - t0:.0f} s)", flush=True)
    figures: dict[str, Any] = {"sequence": sequence, "config": str(config.relative_to(ROOT)),
                               "seeds": seeds, "tasks": s["tasks"], "wall_s": round(time.monotonic() - start, 1),
                               "methods": {}}
    print("\n| method | ACC (95% CI) | BWT (95% CI) |\n|---|---|---|")
    for method, r in results.items():
        acc, bwt = _ci(r["acc"]), _ci(r["bwt"])
        figures["methods"][method] = {"acc": acc, "bwt": bwt, "acc_runs": r["acc"], "bwt_runs": r["bwt"],
                                      "matrices": r["matrices"]}
        print(f"| {method} | {acc['estimate']:.2f} [{acc['ci_low']:.2f}, {acc['ci_high']:.2f}] | "
              f"{bwt['estimate']:+.2f} [{bwt['ci_low']:+.2f}, {bwt['ci_high']:+.2f}] |")
    path = Path(figures_path or SOURCE_FIGURES / f"continual_{sequence}.json")
    command = f"python benchmarks/bench_continual.py --sequence {sequence} --seeds {seeds}"
    write_figures(path, path.stem, figures, command=command)
    print(f"figures: {path}")


if __name__ == "__main__":
    main()
