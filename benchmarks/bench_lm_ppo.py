"""lm-ppo on CPU with the bundled tiny LM: where an iteration's time goes, and rollout speed
side by side with ``model.generate`` and with a naive per-token loop.

1. **Iteration split** — one PPO iteration on ``--env`` with ``--batch`` prompts: *generate*
   (policy forwards and sampling inside the rollout), *env* (token bookkeeping), *score*
   (one ``env.score`` call on the same completions, i.e. the WeightedReward), *train*
   (old/reference forward, GAE and the clipped PPO epochs).
2. **Rollout tokens/s** on the same prompts, same temperature, same length cap, each run until
   every row produced EOS or hit the cap:
   * lm-ppo's KV-cached rollout through the vector env (the env's stepping and scoring included);
   * ``model.generate(do_sample=True)`` (KV cache, no env, no scoring);
   * a naive loop that re-runs the whole prefix at every step without a cache — how RL4LMs
     computes per-token policy outputs.

Shared machines are noisy: each figure is the median of ``--repeats`` runs and the ratios are
measured side by side in one process. Run: ``python benchmarks/bench_lm_ppo.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from rlseek.agents.lm_ppo.config import LmPpoConfig
from rlseek.agents.lm_ppo.model import build_policy
from rlseek.agents.lm_ppo.trainer import PPOTrainer
from rlseek.envs.text import make_text_vector_env
from rlseek.envs.text.rollout import DecodeSettings, RolloutEngine, policy_logits, sample_tokens
from rlseek.models.loader import load_causal_lm


def generated_tokens(new: torch.Tensor, eos: int) -> int:
    """Tokens up to and including the first EOS of each row (all of them when there is none)."""
    total = 0
    for row in new.tolist():
        total += row.index(eos) + 1 if eos in row else len(row)
    return total


@torch.no_grad()
def naive_loop(lm: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, max_new: int, eos: int, pad: int,
               temperature: float, gen: torch.Generator) -> torch.Tensor:
    """Sample by re-running the full (growing) prefix at every step, no KV cache."""
    B = ids.shape[0]
    done = torch.zeros(B, dtype=torch.bool)
    new = []
    for _ in range(max_new):
        pos = (mask.cumsum(-1) - 1).clamp_min(0)
        logits = lm(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False).logits[:, -1]
        scores = policy_logits(logits, temperature, banned_ids=(pad,))
        tok = torch.where(done, torch.full_like(done, pad, dtype=torch.long),
                          sample_tokens(scores, temperature, generator=gen))
        new.append(tok)
        ids = torch.cat([ids, tok[:, None]], 1)
        mask = torch.cat([mask, (~done).long()[:, None]], 1)
        done |= tok == eos
        if done.all():
            break
    return torch.stack(new, 1)


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="rlseek/Reviews-v0")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.manual_seed(0)
    lm, tok = load_causal_lm("rlseek/tiny-lm")
    env = make_text_vector_env(args.env, args.batch, max_new_tokens=args.max_new_tokens)
    cfg = LmPpoConfig(temperature=args.temperature)
    policy, reference = build_policy(lm, cfg)
    engine = RolloutEngine.for_env(policy.lm, env)
    decode = DecodeSettings(temperature=args.temperature)
    trainer = PPOTrainer(policy, reference, cfg, torch.device("cpu"), vocab_size=engine.vocab_size,
                         banned_ids=engine.banned_ids(decode))
    gen = torch.Generator().manual_seed(0)
    eos, pad = env.eos_token_id, env.pad_token_id

    split: dict[str, list[float]] = {"generate": [], "env": [], "score": [], "train": []}
    speed: dict[str, list[float]] = {"lm-ppo rollout": [], "lm-ppo rollout (model only)": [],
                                     "model.generate": [], "naive loop": []}
    for r in range(args.repeats + 1):  # the first round warms up and is not counted
        t0 = time.perf_counter()
        ro = engine.rollout(env, decode, generator=gen, seed=r)
        t_roll = time.perf_counter() - t0
        t0 = time.perf_counter()
        env.score(ro.prompts, ro.answers, [row[m.bool()].tolist() for row, m in zip(ro.response_ids, ro.response_mask)])
        t_score = time.perf_counter() - t0
        t0 = time.perf_counter()
        trainer.step(ro)
        t_train = time.perf_counter() - t0

        ids, mask = ro.prompt_ids, ro.prompt_mask
        t0 = time.perf_counter()
        with torch.no_grad():
            out = policy.lm.generate(input_ids=ids, attention_mask=mask, do_sample=True, top_k=0,
                                     temperature=args.temperature, max_new_tokens=args.max_new_tokens,
                                     eos_token_id=eos, pad_token_id=pad)
        t_hf = time.perf_counter() - t0
        n_hf = generated_tokens(out[:, ids.shape[1]:], eos)
        t0 = time.perf_counter()
        naive = naive_loop(policy.lm, ids, mask, args.max_new_tokens, eos, pad, args.temperature, gen)
        t_naive = time.perf_counter() - t0
        n_naive = generated_tokens(naive, eos)
        if r == 0:
            continue
        split["generate"].append(ro.timings["generate"])
        split["env"].append(ro.timings["env"] - t_score)
        split["score"].append(t_score)
        split["train"].append(t_train)
        speed["lm-ppo rollout"].append(ro.n_tokens / t_roll)
        speed["lm-ppo rollout (model only)"].append(ro.n_tokens / ro.timings["generate"])
        speed["model.generate"].append(n_hf / t_hf)
        speed["naive loop"].append(n_naive / t_naive)

    total = sum(median(v) for v in split.values())
    print(f"lm-ppo iteration on {args.env}: batch {args.batch}, max_new_tokens {args.max_new_tokens}, "
          f"median of {args.repeats}")
    for k, v in split.items():
        print(f"  {k:<10} {median(v):8.3f} s  {100 * median(v) / total:5.1f} %")
    print("rollout tokens/s (same prompts, sampling, until EOS or the cap):")
    for k, v in speed.items():
        print(f"  {k:<28} {median(v):10.1f}")
    ours = median(speed["lm-ppo rollout"])
    ratios = {
        "rollout_vs_generate": ours / median(speed["model.generate"]),
        "rollout_vs_naive": ours / median(speed["naive loop"]),
        "rollout_model_only_vs_generate": median(speed["lm-ppo rollout (model only)"]) / median(speed["model.generate"]),
    }
    for k, v in ratios.items():
        print(f"  ratio {k:<32} {v:6.2f}x")
    print(json.dumps({"benchmark": "bench_lm_ppo", "env": args.env, "batch": args.batch,
                      "split_seconds": {k: median(v) for k, v in split.items()},
                      "tokens_per_s": {k: median(v) for k, v in speed.items()}, "ratios": ratios}))


if __name__ == "__main__":
    main()
