"""int8 dynamic quantization vs float32 for served policies, measured side by side.

For a language model (lm-ppo run on Arithmetic or Reviews) and a robot policy (SB3 run on
Reacher), both loaded exactly as ``rlseek serve`` loads them (with and without
``--quantize int8``), it reports:

* model size: bytes of the state dict of the acting network as ``torch.save`` writes it;
* latency: median seconds of one ``run_batch`` call with 1 row and with ``--batch`` rows
  (fp32 and int8 calls interleaved, ``--repeats`` each, one torch thread);
* task score: Arithmetic exact match / Reviews positive fraction on held-out prompts (greedy;
  Reviews sampled at T=1, as its evaluation does), Reacher mean return over seeded episodes.

    python benchmarks/bench_int8.py                                   # trains two tiny runs first
    python benchmarks/bench_int8.py --lm-run runs/arith --robot-run runs/reacher --out benchmarks/results

int8 dynamic quantization is a CPU feature of torch (``torch.ao.quantization.quantize_dynamic``);
this benchmark runs on the CPU only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rlseek.serving.policies import RobotPolicy, TextPolicy, load_policy  # noqa: E402


def _median_latency(fns: dict[str, Any], repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():  # interleaved: both see the same machine load
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def text_rows(policy: TextPolicy, n: int, seed: int) -> tuple[list[Any], list[str | None]]:
    from rlseek.envs.text import heldout_prompts

    held = heldout_prompts(policy.env_id, n=n, seed=seed)
    temp = 1.0 if policy.task.name == "reviews" else 0.0
    rows = [policy.validate(p, a, temp) for p, a in zip(held["prompts"], held["answers"])]
    return rows, held["answers"]


def text_score(policy: TextPolicy, rows: list[Any], batch: int) -> dict[str, float]:
    """Exact match (arithmetic) or positive fraction (reviews) of the policy's completions."""
    from rlseek.rewards.text import positive_fraction, sentiment_score

    completions, correct = [], []
    for i in range(0, len(rows), batch):
        chunk = rows[i:i + batch]
        res = policy.run_batch(chunk)
        completions += [r["completion"] for r in res]
        correct += [r["completion"].strip() == (row.answer or "").strip() for r, row in zip(res, chunk)]
    if policy.task.name == "reviews":
        return {"positive_fraction": positive_fraction([sentiment_score(c) for c in completions])}
    return {"exact_match": float(np.mean(correct))}


def robot_return(policy: RobotPolicy, episodes: int, seed: int) -> dict[str, float]:
    """Mean return of the served (deterministic) policy, episode i seeded seed + i."""
    import gymnasium as gym

    env = gym.make(policy.env_id)
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            action = policy.run_batch([policy.validate(obs.tolist())])[0]["action"]
            obs, r, term, trunc, _ = env.step(np.asarray(action, dtype=np.float32))
            total += float(r)
            done = term or trunc
        returns.append(total)
    env.close()
    return {"mean_return": float(np.mean(returns))}


def measure(run: Path, args: argparse.Namespace) -> dict[str, Any]:
    pols = {"fp32": load_policy(run), "int8": load_policy(run, quantize="int8")}
    first = pols["fp32"]
    out: dict[str, Any] = {"run": str(run), "env_id": first.env_id, "kind": first.kind}
    if isinstance(first, TextPolicy):
        rows, _ = text_rows(first, max(args.prompts, args.batch), seed=10_000)
        one, full = rows[:1], rows[:args.batch]
        for k in pols:  # warm-up
            pols[k].run_batch(one)
        lat1 = _median_latency({k: (lambda p=p: p.run_batch(one)) for k, p in pols.items()}, args.repeats)
        latb = _median_latency({k: (lambda p=p: p.run_batch(full)) for k, p in pols.items()}, args.repeats)
        scores = {}
        for k, p in pols.items():
            p._gen.manual_seed(0)  # the same sampling seed for both
            scores[k] = text_score(p, rows[:args.prompts], args.batch)
    else:
        rng = np.random.default_rng(0)
        space = first.observation_space
        obs = [rng.uniform(-1, 1, size=space.shape).astype(space.dtype) for _ in range(args.batch)]
        one, full = obs[:1], obs
        lat1 = _median_latency({k: (lambda p=p: p.run_batch(one)) for k, p in pols.items()}, args.repeats * 20)
        latb = _median_latency({k: (lambda p=p: p.run_batch(full)) for k, p in pols.items()}, args.repeats * 20)
        scores = {k: robot_return(p, args.episodes, seed=10_000) for k, p in pols.items()}
    out["rows"] = {k: {"model_bytes": p.model_bytes, "latency_1_s": lat1[k],
                       f"latency_{args.batch}_s": latb[k], **scores[k]} for k, p in pols.items()}
    out["batch"] = args.batch
    return out


def _train_tiny(folder: Path) -> tuple[Path, Path]:
    import rlseek

    lm = rlseek.train(ROOT / "examples/configs/arithmetic_lm_ppo.yaml", out=folder / "arith",
                      overrides=["run.total_steps=64", "run.eval_episodes=16", "run.eval_every=0",
                                 "run.checkpoint_every=64"]).path
    robot = rlseek.train(ROOT / "examples/configs/reacher_sac.yaml", out=folder / "reacher",
                         overrides=["run.total_steps=1000", "agent.params.learning_starts=200",
                                    "run.eval_episodes=2", "run.eval_every=1000",
                                    "run.checkpoint_every=1000"]).path
    return lm, robot


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lm-run", type=Path, help="a finished lm-ppo run (default: train a tiny one)")
    p.add_argument("--robot-run", type=Path, help="a finished SB3 run (default: train a tiny one)")
    p.add_argument("--prompts", type=int, default=200, help="held-out prompts scored per model")
    p.add_argument("--episodes", type=int, default=20, help="seeded episodes per robot policy")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, help="write serve_int8.json here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        lm_run, robot_run = args.lm_run, args.robot_run
        if lm_run is None or robot_run is None:
            tiny_lm, tiny_robot = _train_tiny(Path(tmp))
            lm_run, robot_run = lm_run or tiny_lm, robot_run or tiny_robot
        results = [measure(lm_run, args), measure(robot_run, args)]
    for r in results:
        print(f"== {r['env_id']} ({r['kind']}) {r['run']}")
        for k, row in r["rows"].items():
            figs = ", ".join(f"{n} {v:.4g}" for n, v in row.items())
            print(f"  {k}: {figs}")
        f, q = r["rows"]["fp32"], r["rows"]["int8"]
        key = f"latency_{r['batch']}_s"
        print(f"  int8/fp32: size {q['model_bytes'] / f['model_bytes']:.3f}, latency(1) "
              f"{q['latency_1_s'] / f['latency_1_s']:.3f}, latency({r['batch']}) {q[key] / f[key]:.3f}")
    if args.out:
        from rlseek.runs import atomic_write_json

        atomic_write_json(args.out / "serve_int8.json",
                          {"command": " ".join(sys.argv), "threads": args.threads, "results": results})
        print(f"wrote {args.out / 'serve_int8.json'}")


if __name__ == "__main__":
    main()
