"""BCQ gradient steps per second: CPU, and with ``--device cuda`` also CUDA with and without
d3rlpy's ``compile_graph`` (torch.compile + CUDA graphs), measured side by side in one run.

The data is a real rlseek dataset: random-policy rollouts of ``rlseek/Reacher-v0`` (no expert
needed), 5000 transitions, loaded through rlseek's dataset reader. BC's rate is printed as a
yardstick: BCQ's target and greedy action score 100 sampled actions per state (d3rlpy's default
``n_action_samples``), so one BCQ step costs far more than one BC step.

    python benchmarks/bench_bcq.py                 # CPU only
    python benchmarks/bench_bcq.py --device cuda   # CPU, CUDA, CUDA + compile_graph

Before a compiled row, 50 uncompiled CUDA updates run untimed (``prime_compile_graph``): without
them the first compiled BCQ of a process fails on torch 2.11 + d3rlpy 2.8.0 (measured on an H200).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import rlseek  # noqa: F401  (registers rlseek/Reacher-v0)
from rlseek.offline.algos import make_algo, prime_compile_graph
from rlseek.offline.collect import rollout
from rlseek.offline.dataset import OfflineDataset, read_dataset, write_dataset


def make_dataset(folder: Path, steps: int) -> OfflineDataset:
    env = gym.make("rlseek/Reacher-v0")
    env.action_space.seed(0)
    eps = rollout(env, lambda _o: env.action_space.sample(), steps, seed=0)
    path = folder / "reacher-random.h5"
    write_dataset(path, OfflineDataset(eps, {"env_id": "rlseek/Reacher-v0", "kind": "random"}))
    return read_dataset(path)


def steps_per_second(algo_name: str, ds: OfflineDataset, device: str, compile_graph: bool,
                     warmup: int, steps: int) -> tuple[float, float]:
    """(timed gradient steps per second, seconds spent in the warm-up steps)."""
    buffer = ds.to_d3rlpy()
    if compile_graph:  # what `rlseek offline compare --compile-graph` does first (see prime_compile_graph)
        prime_compile_graph(algo_name, ds.discrete, buffer, None, device)
    torch.manual_seed(0)
    np.random.seed(0)
    algo = make_algo(algo_name, ds.discrete, device=device, compile_graph=compile_graph)
    algo.build_with_dataset(buffer)
    batch = algo.config.batch_size
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    t0 = time.perf_counter()
    for _ in range(warmup):
        algo.update(buffer.sample_transition_batch(batch))
    sync()
    t1 = time.perf_counter()
    for _ in range(steps):
        algo.update(buffer.sample_transition_batch(batch))
    sync()
    return steps / (time.perf_counter() - t1), t1 - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu, or cuda to add the GPU rows")
    p.add_argument("--steps", type=int, default=None, help="timed steps per row (default: 60 CPU, 1000 GPU)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 5 CPU, 200 GPU)")
    p.add_argument("--bc", action="store_true", help="also time BC on each device (yardstick)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: on a busy shared CPU more threads spin, "
                        "measured 2.1 vs 9.0 BCQ steps/s with 2 vs 1 on 2 loaded cores)")
    args = p.parse_args()
    torch.set_num_threads(max(1, args.threads))
    gpu = args.device.startswith("cuda")
    if gpu and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU is visible")
    cpu_steps = args.steps or 60
    gpu_steps = args.steps or 1000
    with tempfile.TemporaryDirectory() as tmp:
        ds = make_dataset(Path(tmp), 5000)
        print(f"dataset: {ds.n_transitions} transitions of rlseek/Reacher-v0; torch {torch.__version__}, "
              f"{torch.get_num_threads()} CPU threads" + (f", GPU {torch.cuda.get_device_name(0)}" if gpu else ""))
        rows: list[tuple[str, float, float]] = []
        print(f"{'setting':<26} {'grad steps/s':>13} {'warm-up s':>10}", flush=True)

        def row(name: str, device: str, compiled: bool, warmup: int, steps: int) -> None:
            algo = name.split()[0]
            rows.append((name, *steps_per_second(algo, ds, device, compiled, warmup, steps)))
            print(f"{name:<26} {rows[-1][1]:>13.1f} {rows[-1][2]:>10.1f}", flush=True)

        for algo in ["bcq"] + (["bc"] if args.bc else []):
            row(f"{algo} cpu", "cpu", False, args.warmup or 5, cpu_steps)
            if gpu:
                row(f"{algo} cuda", args.device, False, args.warmup or 200, gpu_steps)
                row(f"{algo} cuda+compile_graph", args.device, True, args.warmup or 200, gpu_steps)
    table = {name: sps for name, sps, _ in rows}
    for algo in ("bcq", "bc"):
        if f"{algo} cuda" in table:
            print(f"ratio {algo} cuda / cpu: {table[f'{algo} cuda'] / table[f'{algo} cpu']:.1f}x")
            print(f"ratio {algo} cuda+compile_graph / cuda: "
                  f"{table[f'{algo} cuda+compile_graph'] / table[f'{algo} cuda']:.2f}x")
    if "bc cpu" in table:
        print(f"ratio bc / bcq steps per second on cpu: {table['bc cpu'] / table['bcq cpu']:.1f}x")


if __name__ == "__main__":
    main()
