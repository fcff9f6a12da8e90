"""MoE policy layers, staged batch sizes and prompt-source mixtures, measured (issue 16, items 1-3).

Parts (``--part``), each writing ``figures/bench_moe_stages_<part>.json`` which the README quotes:

* ``moe``: (a) sparse top-k dispatch vs computing every expert and masking, forward+backward
  time of one MoE block on a batch of tokens at 4/8/16 experts; (b) SB3 PPO on
  rlseek/Reacher-v0 with a dense ``[64, 64]`` actor/critic vs 4 experts top-2 at equal active
  parameters: final eval return (IQM with 95 % bootstrap CI over seeds), env steps/s, expert load;
* ``stages-robot`` / ``stages-text``: staged vs constant batch size (``run.stages``), env steps
  (completions) and wall time to a target eval score, per seed, with the ratio's bootstrap CI
  (PPO on rlseek/Reacher-v0; lm-ppo on rlseek/Arithmetic-v0);
* ``mixture``: an lm-ppo run on rlseek/Arithmetic-v0 with three prompt sources at 7:2:1,
  realised vs requested shares (bootstrap CI) and per-source accuracy.

Every training run goes through ``rlseek.api.train`` (the same path as ``rlseek train``), with
torch at one thread, so figures measured on a shared machine stay comparable side by side.

Run::

    python benchmarks/bench_moe_stages.py --part moe
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rlseek import api  # noqa: E402
from rlseek.figures import SOURCE_FIGURES, write_figures  # noqa: E402
from rlseek.models.moe import MoEBlock, MoESpec  # noqa: E402
from rlseek.statistics import bootstrap_ci, iqm, summarize  # noqa: E402

REACHER_PPO = {"n_steps": 512, "batch_size": 64, "n_epochs": 10, "gamma": 0.9,
               "gae_lambda": 0.95, "learning_rate": 3e-4, "ent_coef": 0.0}


def _ratio_ci(x: list[float], y: list[float]) -> dict[str, float]:
    """mean(x) / mean(y) with a 95 % stratified-bootstrap CI (statistics.bootstrap_ci)."""
    return bootstrap_ci(lambda a, b: float(np.mean(a) / np.mean(b)), np.array(x), np.array(y)).to_dict()


def time_block(experts: int, dispatch: str, tokens: int, repeats: int) -> float:
    """Median seconds of one forward+backward of a ``64 -> 64`` MoE block (top-2)."""
    torch.manual_seed(0)
    block = MoEBlock(64, 64, 64, MoESpec(experts=experts, top_k=2, dispatch=dispatch))
    x = torch.randn(tokens, 64)
    times = []
    for i in range(repeats + 2):
        t0 = time.perf_counter()
        block(x).sum().backward()
        if i >= 2:  # two warm-up passes
            times.append(time.perf_counter() - t0)
        block.zero_grad()
    return statistics.median(times)


def dispatch_speed(tokens: int, repeats: int) -> dict[str, Any]:
    rows = {}
    for n in (4, 8, 16):
        sparse = time_block(n, "sparse", tokens, repeats)
        dense = time_block(n, "dense", tokens, repeats)
        rows[str(n)] = {"sparse_ms": sparse * 1e3, "dense_ms": dense * 1e3, "dense_over_sparse": dense / sparse}
        print(f"experts={n:2d}  sparse {sparse * 1e3:7.2f} ms  dense-masked {dense * 1e3:7.2f} ms  "
              f"ratio {dense / sparse:.2f}", flush=True)
    return {"tokens": tokens, "top_k": 2, "dim": 64, "repeats": repeats, "experts": rows}


def train_reacher(out: Path, seed: int, steps: int, params: dict[str, Any],
                  stages: list[dict[str, Any]] | None = None, eval_every: int = 0) -> dict[str, Any]:
    run = {"total_steps": steps, "seed": seed, "eval_every": eval_every or steps,
           "eval_episodes": 10, "checkpoint_every": steps, "tracking": False}
    if stages is not None:
        run["stages"] = stages
    cfg = {"env": {"id": "rlseek/Reacher-v0"}, "agent": {"algo": "ppo", "params": params}, "run": run}
    return api.train(cfg, out=out).summary


def expert_load_of(run_dir: Path) -> dict[str, float]:
    """Expert load of a trained MoE policy on 20 evaluation episodes (deterministic actions)."""
    import gymnasium as gym
    from stable_baselines3 import PPO

    from rlseek.models.moe import expert_load

    model = PPO.load(run_dir / "final" / "model.zip", device="cpu")
    env = gym.make("rlseek/Reacher-v0")
    expert_load(model.policy)  # drop the stats of loading
    for ep in range(20):
        obs, _ = env.reset(seed=10_000 + ep)
        done = False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, _, term, trunc, _ = env.step(action)
            done = term or trunc
        model.policy.predict_values(torch.as_tensor(obs[None], dtype=torch.float32))
    return expert_load(model.policy)


def part_moe(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    speed = dispatch_speed(args.tokens, args.repeats)
    variants = {"dense": {**REACHER_PPO, "policy_kwargs": {"net_arch": [64, 64]}},
                "moe": {**REACHER_PPO, "policy_kwargs": {
                    "net_arch": [64, 64], "moe": {"experts": 4, "top_k": 2, "balance_coef": 0.01}}}}
    scores: dict[str, list[float]] = {k: [] for k in variants}
    sps: dict[str, list[float]] = {k: [] for k in variants}
    loads: list[dict[str, float]] = []
    for seed in range(args.seeds):
        for name, params in variants.items():  # interleaved: both variants see the same load
            out = tmp / f"{name}-{seed}"
            s = train_reacher(out, seed, args.steps, params)
            scores[name].append(s["eval"]["mean_return"])
            sps[name].append(s["steps_per_second"])
            print(f"{name:5s} seed {seed}: return {scores[name][-1]:7.2f}  {sps[name][-1]:6.0f} steps/s",
                  flush=True)
            if name == "moe":
                loads.append(expert_load_of(out))
    summary = summarize({k: np.array(v) for k, v in scores.items()})
    max_load = [ld["moe/max_load"] for ld in loads]
    return {
        "dispatch": speed,
        "ppo": {
            "env": "rlseek/Reacher-v0", "steps": args.steps, "seeds": args.seeds, "params": REACHER_PPO,
            "dense": {"return": summary["dense"], "steps_per_second": sps["dense"]},
            "moe": {"return": summary["moe"], "steps_per_second": sps["moe"], "experts": 4, "top_k": 2,
                    "max_load": max_load, "balance_loss": [ld["moe/balance_loss"] for ld in loads],
                    "load_actor": [[ld[f"moe/load_0_{e}"] for e in range(4)] for ld in loads]},
            "sps_ratio_moe_over_dense": _ratio_ci(sps["moe"], sps["dense"]),
            "iqm_difference_moe_minus_dense": bootstrap_ci(
                lambda a, b: iqm(a) - iqm(b), np.array(scores["moe"]), np.array(scores["dense"])).to_dict(),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--part", required=True, choices=("moe", "stages-robot", "stages-text", "mixture"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20_000, help="env steps (moe, stages-robot)")
    parser.add_argument("--completions", type=int, default=1024, help="lm-ppo completions (mixture)")
    parser.add_argument("--tokens", type=int, default=4096, help="tokens per timed MoE block pass")
    parser.add_argument("--repeats", type=int, default=15, help="timed MoE block passes")
    parser.add_argument("--figures", default=None, help="figure file (default figures/bench_moe_stages_<part>.json)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    parts = {"moe": part_moe}
    try:
        from bench_stages import PARTS  # the staged-batch and mixture parts
        parts.update(PARTS)
    except ImportError:
        pass
    name = "bench_moe_stages_" + args.part.replace("-", "_")
    path = args.figures or str(SOURCE_FIGURES / f"{name}.json")
    command = "python benchmarks/bench_moe_stages.py " + " ".join(sys.argv[1:])
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        figures = parts[args.part](args, Path(tmp))
    figures["bench_wall_s"] = time.perf_counter() - t0
    write_figures(path, name, figures, command=command)
    print(json.dumps(figures, indent=1)[:3000])


if __name__ == "__main__":
    main()
