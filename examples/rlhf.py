"""RLHF stage 3: PPO on the bundled tiny LM against a weighted reward whose main term is a
reward model (train one with examples/reward_model.py), then compare base and final figures.

    python examples/rlhf.py --reward-model rm/reviews --out runs/reviews-rlhf [--completions 9600]
"""

import argparse

import rlseek

p = argparse.ArgumentParser()
p.add_argument("--reward-model", required=True)
p.add_argument("--out", required=True)
p.add_argument("--completions", type=int, default=9600)
args = p.parse_args()

config = {
    "env": {
        "id": "rlseek/Reviews-v0",
        # The learned reward steers; the lexicon score (what the annotator judged by) is only watched.
        "reward": {"reward_model": 0.7, "diversity": 0.2, "efficiency": 0.1, "sentiment": 0.0},
        "reward_params": {"reward_model": {"path": args.reward_model, "normalize": True}},
    },
    "agent": {
        "algo": "lm-ppo",
        "params": {"learning_rate": 1e-4, "kl_target": 4.0, "kl_horizon": 4000, "eval_temperature": 1.0},
    },
    "run": {"total_steps": args.completions, "n_envs": 64, "eval_episodes": 200, "torch_threads": 1},
}
run = rlseek.train(config, out=args.out)
s = run.summary
print(f"positive fraction {s['base_positive_fraction']:.3f} -> {s['final_positive_fraction']:.3f}")
print(f"annotator score   {s['base_eval']['terms']['sentiment']:.3f} -> {s['eval']['terms']['sentiment']:.3f}")
print(f"KL to reference   {s['final_kl']:.2f} nats (target {s['kl_target']})")
