"""1 process against 2 torchrun processes (gloo, CPU) on the same global batch.

What it measures, side by side in one run: lm-ppo and lm-grpo on rlseek/Arithmetic-v0 and a
Bradley-Terry reward model, each trained once in one process and once under
``torchrun --nproc-per-node 2``, with the same config and global batch. It reports the largest
absolute difference between the two runs' final weights (the distributed path is meant to
reproduce the one-process update up to float summation order), the same difference after each
lm iteration and the number of leading iterations whose rollouts scored the same (a last-bit
difference can flip one sampled token, after which the runs part like different seeds), and the
training wall time of each (``train_wall_seconds`` of summary.json; the reward model: its
``train_seconds``).

The wall times are from a 2-core machine shared with other work, 1 torch thread per process:
they say whether two CPU processes help there, not how GPUs scale (unmeasured: no multi-GPU
machine was available). Usage::

    python benchmarks/bench_distributed.py [--out figures/bench_distributed.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from rlseek.figures import SOURCE_FIGURES, write_figures  # noqa: E402

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "RLSEEK_TRACKING": "off",
       "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
REWARD = {"accuracy": 0.9, "efficiency": 0.1}  # per-completion terms (see README)


def lm_config(algo: str, strategy: str = "ddp") -> dict:
    params = {"learning_rate": 1e-3, "ppo_epochs": 2, "num_minibatches": 2}
    if algo == "lm-grpo":
        params.update(group_size=4, kl_coef=0.05)
    return {"env": {"id": "rlseek/Arithmetic-v0", "kwargs": {"max_new_tokens": 8}, "reward": REWARD},
            "agent": {"algo": algo, "params": params},
            "run": {"total_steps": 320, "n_envs": 32, "eval_episodes": 16, "checkpoint_every": 32,
                    "keep_checkpoints": 20,
                    "eval_every": 10_000, "seed": 0, "tracking": False, "torch_threads": 1,
                    "distributed": {"strategy": strategy}}}


def launch(args: list[str], nproc: int, cwd: Path) -> None:
    prefix = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
              if nproc > 1 else [sys.executable])
    subprocess.run([*prefix, "-m", "rlseek", *args], cwd=cwd, env=ENV, check=True,
                   stdout=subprocess.DEVNULL)


def max_diff(a: Path, b: Path) -> float:
    x, y = load_file(str(a)), load_file(str(b))
    return max(float((x[k] - y[k]).abs().max()) for k in x)


def bench_lm(algo: str, tmp: Path, strategy: str = "ddp") -> dict:
    """``algo`` in 1 process and in 2 under ``strategy`` (the 1-process run is unsharded)."""
    cfg = tmp / f"{algo}-{strategy}.yaml"
    cfg.write_text(yaml.safe_dump(lm_config(algo, strategy)))
    out: dict = {"iterations": 10, "global_batch": 32, "strategy": strategy}
    algo = f"{algo}-{strategy}"
    for n in (1, 2):
        launch(["train", str(cfg), "--out", str(tmp / f"{algo}-{n}")], n, tmp)
        out[f"train_seconds_{n}"] = json.loads((tmp / f"{algo}-{n}" / "summary.json").read_text())["train_wall_seconds"]
    out["max_weight_diff"] = max_diff(tmp / f"{algo}-1/final/model.safetensors",
                                      tmp / f"{algo}-2/final/model.safetensors")
    # After every iteration (each one's checkpoint): where, if anywhere, the runs part.
    out["max_weight_diff_per_iteration"] = [
        max_diff(tmp / f"{algo}-1/checkpoints/step_{32 * i:012d}/policy/model.safetensors",
                 tmp / f"{algo}-2/checkpoints/step_{32 * i:012d}/policy/model.safetensors")
        for i in range(1, 11)]
    rewards = [[h["reward/total"] for h in json.loads((tmp / f"{algo}-{n}" / "summary.json").read_text())["history"]]
               for n in (1, 2)]
    same = [abs(a - b) < 1e-9 for a, b in zip(*rewards)]
    out["iterations_with_equal_rollout_reward"] = same.index(False) if False in same else len(same)
    out["speedup"] = out["train_seconds_1"] / out["train_seconds_2"]
    return out


def bench_reward_model(tmp: Path) -> dict:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_reward_model_fixtures import build_tiny_backbone, sentiment_pairs, write_jsonl

    bb = build_tiny_backbone(tmp / "bb")
    train = write_jsonl(tmp / "train.jsonl", sentiment_pairs(192))
    evals = write_jsonl(tmp / "eval.jsonl", sentiment_pairs(64, start=200))
    out: dict = {"pairs": 192, "batch_size": 16, "epochs": 2}
    for n in (1, 2):
        launch(["reward-model", "train", "--train", str(train), "--eval", str(evals), "--backbone", str(bb),
                "--epochs", "2", "--batch-size", "16", "--patience", "0", "--no-tracking", "--device", "cpu",
                "--quiet", "--out", str(tmp / f"rm-{n}")], n, tmp)
        out[f"train_seconds_{n}"] = json.loads((tmp / f"rm-{n}" / "metrics.json").read_text())["train_seconds"]
    out["max_weight_diff"] = max_diff(tmp / "rm-1/model.safetensors", tmp / "rm-2/model.safetensors")
    out["speedup"] = out["train_seconds_1"] / out["train_seconds_2"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(SOURCE_FIGURES / "bench_distributed.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        result = {"backend": "gloo", "device": "cpu",
                  "torch_threads_per_process": 1, "cores": os.cpu_count(),
                  "lm-ppo": bench_lm("lm-ppo", tmp), "lm-ppo-fsdp": bench_lm("lm-ppo", tmp, "fsdp"),
                  "lm-grpo": bench_lm("lm-grpo", tmp),
                  "reward-model": bench_reward_model(tmp)}
    write_figures(args.out, "bench_distributed", result, command="python benchmarks/bench_distributed.py")
    for key in ("lm-ppo", "lm-ppo-fsdp", "lm-grpo", "reward-model"):
        r = result[key]
        per = r.get("max_weight_diff_per_iteration")
        if per:
            print(f"{key}: per iteration " + " ".join(f"{d:.1e}" for d in per))
        print(f"{key}: max |w1 - w2| = {r['max_weight_diff']:.2e}; train seconds 1 proc "
              f"{r['train_seconds_1']:.1f}, 2 procs {r['train_seconds_2']:.1f} (x{r['speedup']:.2f})")


if __name__ == "__main__":
    main()
