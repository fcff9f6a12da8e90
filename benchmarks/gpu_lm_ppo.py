"""lm-ppo on a GPU with a GPT-2-small-sized policy: rollout and training throughput, peak memory.

The policy is ``GPT2LMHeadModel(GPT2Config())`` — 12 layers, 768 dims, vocabulary 50257,
randomly initialised (no download). A random model almost never emits EOS and its vocabulary
is not rlseek's tokenizer's, so instead of a text task the rollouts run through a
fixed-length vector env defined here: ``--batch`` random prompts of ``--prompt-len`` tokens,
each episode exactly ``--new-tokens`` tokens, score 0. Everything else is lm-ppo's own code
path: the KV-cached :class:`~rlseek.envs.text.rollout.RolloutEngine`, and :class:`PPOTrainer.step` (old/reference
forward, GAE, ``ppo_epochs`` × ``num_minibatches`` clipped updates).

Figures (one JSON line on stdout):

* ``rollout_tokens_per_s``: generated tokens / wall time of one rollout (lm-ppo, KV cache);
* ``hf_generate_tokens_per_s``: the same batch with ``model.generate`` (sampling, KV cache);
* ``train_tokens_per_s``: rollout tokens / wall time of one full PPO iteration's update;
* ``train_token_passes_per_s``: tokens × epochs / that time (forward+backward passes);
* ``peak_memory_gib``: ``torch.cuda.max_memory_allocated`` over the whole run.

Run: ``python benchmarks/gpu_lm_ppo.py`` (needs only torch, transformers and rlseek; the whole
script took 35 s wall on an H200). Measured there once with the defaults (batch 64, prompt 64,
128 new tokens, torch 2.11 + transformers 5.17): bfloat16 autocast — rollout 9,029 tokens/s
(model.generate 7,985), training 11,875 tokens/s, peak 7.1 GiB; ``--dtype float32`` (TF32
matmuls) — rollout 11,271 tokens/s (generate 9,190), training 13,025 tokens/s, peak 7.6 GiB.
Why bf16 was slower was not profiled; the likely cause at this small size is per-token kernel
launch overhead, to which autocast adds cast kernels.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from rlseek.agents.lm_ppo.config import LmPpoConfig
from rlseek.agents.lm_ppo.model import build_policy
from rlseek.agents.lm_ppo.trainer import PPOTrainer, autocast
from rlseek.envs.text.rollout import DecodeSettings, RolloutEngine


class FixedLengthEnv:
    """The text-vector-env interface with random prompts and exactly ``new_tokens`` per row."""

    def __init__(self, batch: int, prompt_len: int, new_tokens: int, vocab: int, seed: int = 0) -> None:
        self.num_envs, self.prompt_len, self.max_new_tokens, self.vocab = batch, prompt_len, new_tokens, vocab
        self.rng = np.random.default_rng(seed)
        self.t = 0

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):  # type: ignore[no-untyped-def]
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.t = 0
        ids = self.rng.integers(0, self.vocab, size=(self.num_envs, self.prompt_len))
        obs = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        return obs, {"prompts": [""] * self.num_envs, "answers": [None] * self.num_envs}

    def step(self, actions: np.ndarray):  # type: ignore[no-untyped-def]
        self.t += 1
        last = self.t >= self.max_new_tokens
        obs = {"input_ids": np.asarray(actions).reshape(-1, 1), "attention_mask": np.ones((self.num_envs, 1), np.int64)}
        done = np.full(self.num_envs, last)
        info: dict[str, Any] = {}
        if last:
            info = {"completions": [""] * self.num_envs, "eos": np.zeros(self.num_envs, bool),
                    "reward_total": np.zeros(self.num_envs)}
        return obs, np.zeros(self.num_envs), np.zeros(self.num_envs, bool), done, info

    def close(self) -> None:
        pass


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--prompt-len", type=int, default=64)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cuda", help="cuda (the benchmark) or cpu (a smoke test)")
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_lm_ppo.py needs a CUDA device (or --device cpu for a smoke test)")
    device = torch.device(args.device)
    torch.manual_seed(0)
    lm = GPT2LMHeadModel(GPT2Config()).to(device)
    cfg = LmPpoConfig(model="gpt2-random", dtype=args.dtype, ppo_epochs=4, num_minibatches=4)
    policy, reference = build_policy(lm, cfg)
    policy.to(device)
    reference.to(device)
    trainer = PPOTrainer(policy, reference, cfg, device)
    env = FixedLengthEnv(args.batch, args.prompt_len, args.new_tokens, lm.config.vocab_size)
    gen = torch.Generator(device=device).manual_seed(0)
    engine = RolloutEngine.for_env(policy.lm, env, device)  # FixedLengthEnv: no EOS, no pad

    def rollout(seed: int):  # type: ignore[no-untyped-def]
        with autocast(device, cfg.dtype):
            return engine.rollout(env, DecodeSettings(temperature=1.0), generator=gen, seed=seed)

    ro = rollout(0)  # warm-up (kernels, allocator)
    trainer.step(ro)
    _sync()
    roll_t, train_t, hf_t, n_tok = [], [], [], 0
    for r in range(args.repeats):
        _sync()
        t0 = time.perf_counter()
        ro = rollout(r + 1)
        _sync()
        t1 = time.perf_counter()
        trainer.step(ro)
        _sync()
        t2 = time.perf_counter()
        roll_t.append(t1 - t0)
        train_t.append(t2 - t1)
        n_tok = ro.n_tokens
        ids = ro.prompt_ids.to(device)
        with torch.no_grad(), autocast(device, cfg.dtype):
            _sync()
            t3 = time.perf_counter()
            out = policy.lm.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True,
                                     top_k=0, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                                     pad_token_id=0)
            _sync()
            hf_t.append(time.perf_counter() - t3)
        assert out.shape[1] - ids.shape[1] == args.new_tokens
    result = {
        "benchmark": "gpu_lm_ppo",
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "model": "GPT2Config() random init (12 layers, 768 dims, vocab 50257)",
        "parameters": sum(p.numel() for p in policy.lm.parameters()),
        "dtype": args.dtype,
        "batch": args.batch, "prompt_len": args.prompt_len, "new_tokens": args.new_tokens,
        "ppo_epochs": cfg.ppo_epochs, "num_minibatches": cfg.num_minibatches,
        "rollout_tokens_per_s": n_tok / float(np.median(roll_t)),
        "hf_generate_tokens_per_s": n_tok / float(np.median(hf_t)),
        "rollout_vs_hf_generate": float(np.median(hf_t)) / float(np.median(roll_t)),
        "train_tokens_per_s": n_tok / float(np.median(train_t)),
        "train_token_passes_per_s": n_tok * cfg.ppo_epochs / float(np.median(train_t)),
        "iteration_seconds": float(np.median(roll_t)) + float(np.median(train_t)),
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
        "repeats": args.repeats,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
