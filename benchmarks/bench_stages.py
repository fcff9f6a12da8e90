"""The ``stages-robot``, ``stages-text`` and ``mixture`` parts of ``bench_moe_stages.py``.

Staged vs constant batch size, time to a target: each run evaluates every ``eval_every`` steps
(the configured, native level, whatever stage is training), and its time to the target is
the first evaluation at or above the target — env steps (completions) and wall seconds from
the run directory's creation (setup included, alike for both variants) to that evaluation's
TensorBoard event. SB3 evaluates at rollout boundaries, when the policy changes: a 4096-step
rollout is judged after 4096 steps. A run that never reaches
the target counts its whole budget (a lower bound, flagged ``reached: false``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from rlseek import api
from rlseek.statistics import bootstrap_ci

ROBOT_STAGES = [{"steps": 8192, "batch_size": 4096}, {"steps": 4096, "batch_size": 1024, "curriculum": True},
                {"steps": 4096, "batch_size": 256}]
ROBOT_CONSTANT = 1024
ROBOT_TARGET = -9.0
ROBOT_PPO = {"batch_size": 64, "n_epochs": 10, "gamma": 0.9, "gae_lambda": 0.95,
             "learning_rate": 3e-4, "ent_coef": 0.0}
TEXT_STAGES = [{"steps": 512, "batch_size": 64}, {"steps": 512, "batch_size": 32, "curriculum": True},
               {"steps": 512, "batch_size": 16}]
TEXT_CONSTANT = 32
TEXT_TARGET = 0.50
TEXT_PPO = {"learning_rate": 3e-4, "ppo_epochs": 2, "num_minibatches": 2, "kl_coef": 0.05}


def _scalars(run_dir: Path, tag: str) -> tuple[list[tuple[float, int, float]], float]:
    """(events ``(wall_time, step, value)`` of ``tag``, the run's start: the time its
    directory's config.yaml was written, just before env and model setup)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    start = (run_dir / "config.yaml").stat().st_mtime
    return [(e.wall_time, e.step, e.value) for e in acc.Scalars(tag)], start


def time_to_target(run_dir: Path, tag: str, target: float, budget: int, wall: float) -> dict[str, Any]:
    """The first evaluation at or above ``target``, or the whole budget (``reached: false``)."""
    events, first = _scalars(run_dir, tag)
    for t, step, value in sorted(events, key=lambda e: e[1]):
        if value >= target:
            return {"reached": True, "steps": int(step), "wall_s": t - first,
                    "curve": [[s, v] for _, s, v in events]}
    last = max((t for t, _, _ in events), default=first + wall)
    return {"reached": False, "steps": budget, "wall_s": last - first,
            "curve": [[s, v] for _, s, v in events]}


def _compare(results: dict[str, list[dict[str, Any]]], target: float) -> dict[str, Any]:
    out: dict[str, Any] = {"target": target}
    for key in ("steps", "wall_s"):
        st = [r[key] for r in results["staged"]]
        co = [r[key] for r in results["constant"]]
        out[f"{key}_ratio_staged_over_constant"] = bootstrap_ci(
            lambda a, b: float(np.mean(a) / np.mean(b)), np.array(st), np.array(co)).to_dict()
    for name, rs in results.items():
        out[name] = {"runs": rs, "reached": sum(r["reached"] for r in rs),
                     "mean_steps": float(np.mean([r["steps"] for r in rs])),
                     "mean_wall_s": float(np.mean([r["wall_s"] for r in rs]))}
    return out


def _staged_vs_constant(args: argparse.Namespace, tmp: Path, total: int, config: Any, tag: str,
                        target: float, eval_key: str, final_key: str, unit: str
                        ) -> dict[str, list[dict[str, Any]]]:
    """Per seed, one staged and one constant-batch run of ``config(seed, staged)``; each run's
    steps and wall time to ``target`` on the eval scalar ``tag``, its final eval figure and,
    for staged runs, the curriculum promotions of every stage."""
    results: dict[str, list[dict[str, Any]]] = {"staged": [], "constant": []}
    for seed in range(args.seeds):
        for name in ("staged", "constant"):
            out = tmp / f"{name}-{seed}"
            s = api.train(config(seed, name == "staged"), out=out).summary
            r = time_to_target(out, tag, target, total, s["wall_time_s"])
            r.update({final_key: s["eval"].get(eval_key), "total_wall_s": s["wall_time_s"]})
            if name == "staged":
                r["promotions"] = [st["promotions"] for st in s["stages"]]
            results[name].append(r)
            print(f"{name:8s} seed {seed}: reached={r['reached']} {unit}={r['steps']} "
                  f"wall={r['wall_s']:.1f}s final={r[final_key]}", flush=True)
    return results


def part_stages_robot(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    total = sum(s["steps"] for s in ROBOT_STAGES)

    def config(seed: int, staged: bool) -> dict[str, Any]:
        run = {"total_steps": total, "seed": seed, "eval_every": 1024, "eval_episodes": 10,
               "checkpoint_every": total, "tracking": False}
        if staged:
            run["stages"] = ROBOT_STAGES
        params = {**ROBOT_PPO, "n_steps": ROBOT_CONSTANT}
        return {"env": {"id": "rlseek/Reacher-v0"}, "agent": {"algo": "ppo", "params": params}, "run": run}

    results = _staged_vs_constant(args, tmp, total, config, "eval/mean_return", ROBOT_TARGET,
                                  "mean_return", "final_return", "steps")
    return {"env": "rlseek/Reacher-v0", "algo": "ppo", "stages": ROBOT_STAGES,
            "constant_batch_size": ROBOT_CONSTANT, "params": ROBOT_PPO, "steps": total,
            "seeds": args.seeds, **_compare(results, ROBOT_TARGET)}


def part_stages_text(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    total = sum(s["steps"] for s in TEXT_STAGES)

    def config(seed: int, staged: bool) -> dict[str, Any]:
        run = {"total_steps": total, "n_envs": TEXT_CONSTANT, "seed": seed, "eval_every": 128,
               "eval_episodes": 100, "checkpoint_every": total, "tracking": False,
               "device": "cpu", "torch_threads": 1}
        if staged:
            run["stages"] = TEXT_STAGES
        return {"env": {"id": "rlseek/Arithmetic-v0"}, "agent": {"algo": "lm-ppo", "params": TEXT_PPO},
                "run": run}

    results = _staged_vs_constant(args, tmp, total, config, "eval/exact_match", TEXT_TARGET,
                                  "exact_match", "final_accuracy", "completions")
    return {"env": "rlseek/Arithmetic-v0", "algo": "lm-ppo", "stages": TEXT_STAGES,
            "constant_batch_size": TEXT_CONSTANT, "params": TEXT_PPO, "completions": total,
            "seeds": args.seeds, **_compare(results, TEXT_TARGET)}


def _prompts(path: Path, level_digits: int, n: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    lo, hi = 10 ** (level_digits - 1), 10 ** level_digits
    rows = []
    for _ in range(n):
        a, b = (int(x) for x in rng.integers(lo, hi, size=2))
        rows.append({"prompt": f"{a}+{b}=", "answer": str(a + b)})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def part_mixture(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """lm-ppo with general (2-digit file) / domain (3-digit file) / task (built-in level 0)
    prompts at 7:2:1; realised shares with bootstrap CIs, per-source accuracy."""
    sources = [{"file": str(_prompts(tmp / "general.jsonl", 2, 2000, 1)), "weight": 7, "name": "general"},
               {"file": str(_prompts(tmp / "domain.jsonl", 3, 2000, 2)), "weight": 2, "name": "domain"},
               {"task": "arithmetic", "level": 0, "weight": 1, "name": "task"}]
    cfg = {"env": {"id": "rlseek/Arithmetic-v0", "kwargs": {"prompt_sources": sources}},
           "agent": {"algo": "lm-ppo", "params": TEXT_PPO},
           "run": {"total_steps": args.completions, "n_envs": 64, "seed": 0, "eval_episodes": 100,
                   "eval_every": args.completions, "checkpoint_every": args.completions,
                   "tracking": False, "device": "cpu", "torch_threads": 1}}
    s = api.train(cfg, out=tmp / "mix").summary
    mix = s["prompt_sources"]
    total = sum(m["prompts"] for m in mix.values())
    rows = {}
    for name, m in mix.items():
        indicator = np.r_[np.ones(m["prompts"]), np.zeros(total - m["prompts"])]
        ci = bootstrap_ci(lambda a: float(np.mean(a)), indicator)
        rows[name] = {**m, "realised_ci": [ci.low, ci.high]}
        print(f"{name:8s} requested {m['requested']:.3f} realised {m['realised']:.3f} "
              f"[{ci.low:.3f}, {ci.high:.3f}] accuracy {m['terms']['accuracy']:.3f}", flush=True)
    return {"env": "rlseek/Arithmetic-v0", "completions": total, "sources": rows,
            "eval_exact_match": s["eval"].get("exact_match")}


PARTS = {"stages-robot": part_stages_robot, "stages-text": part_stages_text, "mixture": part_mixture}

if __name__ == "__main__":  # a quick look at one part without writing figures
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=list(PARTS), required=True)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--completions", type=int, default=256)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        print(json.dumps(PARTS[a.part](a, Path(d)), indent=1, default=str)[:4000])
