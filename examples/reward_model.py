"""RLHF stages 1-2 in Python: synthesize Reviews preference pairs, train a Bradley-Terry
reward model, evaluate it on held-out pairs, and score two texts with it.

    python examples/reward_model.py --out rm/reviews [--pairs 4000]
"""

import argparse

from rlseek.reward_models import (
    BradleyTerryTrainer,
    PreferenceDataset,
    RewardModel,
    TrainConfig,
    evaluate,
    synthesize,
)

p = argparse.ArgumentParser()
p.add_argument("--out", required=True)
p.add_argument("--pairs", type=int, default=4000)
p.add_argument("--epochs", type=int, default=3)
args = p.parse_args()

train_pairs, figures = synthesize("rlseek/Reviews-v0", n=args.pairs, noise=0.1, seed=1)
eval_pairs, _ = synthesize("rlseek/Reviews-v0", n=max(args.pairs // 4, 50), noise=0.1, seed=2, heldout=True)
print("annotator agreement with its noiseless preference:", figures.get("agreement"))

model = RewardModel.from_backbone("rlseek/tiny-lm")
trainer = BradleyTerryTrainer(model, TrainConfig(epochs=args.epochs), log=print)
metrics = trainer.train(PreferenceDataset(train_pairs), PreferenceDataset(eval_pairs))
model.save(args.out, metrics)

print("held-out accuracy:", evaluate(model, PreferenceDataset(eval_pairs))["accuracy"])
print("scores:", model.score(["The pasta was wonderful and fresh.", "The pasta was cold and bland."]))
