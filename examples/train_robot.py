"""Train SAC on rlseek/Reacher-v0 and evaluate it under a different reward weighting.

    python examples/train_robot.py --out runs/reacher [--steps 30000]
"""

import argparse

import rlseek

p = argparse.ArgumentParser()
p.add_argument("--out", required=True)
p.add_argument("--steps", type=int, default=30_000)
args = p.parse_args()

run = rlseek.train(
    "examples/configs/reacher_sac.yaml",
    out=args.out,
    overrides=[f"run.total_steps={args.steps}", f"run.eval_every={max(args.steps // 4, 500)}"],
)
print("eval mean return:", run.summary["eval"]["mean_return"])
print("curve (steps, return):", run.summary["curve"])

# Same policy, scored with a heavier control penalty (the run itself is not changed).
heavy = rlseek.evaluate(run.path, episodes=10, overrides=["env.reward.control=2.0"])
print("mean return with control weight 2.0:", heavy["mean_return"])
