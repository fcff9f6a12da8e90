"""Offline RL: collect a medium-replay dataset of rlseek/Reacher-v0 the D4RL way and compare
BCQ with behaviour cloning over seeds (IQM, bootstrap CIs, probability of improvement).

    python examples/offline.py --out results/reacher [--expert-steps 30000] [--seeds 5]
"""

import argparse
from pathlib import Path

from rlseek.offline.collect import CollectSettings, collect
from rlseek.offline.compare import CompareSettings, compare

p = argparse.ArgumentParser()
p.add_argument("--out", required=True)
p.add_argument("--expert-steps", type=int, default=30_000)
p.add_argument("--seeds", type=int, default=5)
p.add_argument("--grad-steps", type=int, default=2000)
p.add_argument("--reference-episodes", type=int, default=100)
args = p.parse_args()

out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
settings = CollectSettings(expert_steps=args.expert_steps, eval_every=max(args.expert_steps // 10, 200),
                           reference_episodes=args.reference_episodes)
data = collect("rlseek/Reacher-v0", "medium-replay", 100_000, out / "medium-replay.h5", settings=settings)
print("transitions:", data.n_transitions)

results = compare(out / "medium-replay.h5", out / "bcq-vs-bc",
                  CompareSettings(algos=["bcq", "bc"], seeds=args.seeds, steps=args.grad_steps))
for algo, block in results["summary"].items():
    iqm = block["iqm"]
    print(f"{algo}: IQM {iqm['estimate']:.1f} [{iqm['ci_low']:.1f}, {iqm['ci_high']:.1f}]")
print("P(BCQ > BC):", results["probability_of_improvement"]["bcq>bc"]["estimate"])
