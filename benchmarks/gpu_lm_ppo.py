"""lm-ppo (and lm-grpo) at GPU speed: rollout tokens/s, training MFU and peak memory on one GPU.

The policy is ``GPT2LMHeadModel(GPT2Config())`` — 12 layers, 768 dims, vocabulary 50,257,
124 M parameters, randomly initialised (no download), float32 weights with bf16 autocast.
A random model almost never emits EOS and its vocabulary is not rlseek's tokenizer's, so the
rollouts run through a fixed-length vector env defined here: random 64-token prompts, every
episode exactly 128 new tokens, score 0. Everything else is rlseek's own code path: the one
:class:`~rlseek.envs.text.rollout.RolloutEngine` (``DecodeSettings()``: on CUDA the static
cache with a CUDA-graph step, compiled forward, bf16 trunk copy with the single-query attention
kernel, padded bf16 head with float32 output) and the
trainers' ``step`` (one no-grad old/reference pass, then ``ppo_epochs`` × minibatches of
clipped updates, token-budget micro-batches, compiled forward, fused AdamW).

Figures (``figures/gpu_lm_ppo.json``, also printed as one JSON line), per rollout batch
(64 and 256):

* ``rollout_tokens_per_s``: generated tokens / wall time of ``engine.rollout`` (decode and
  the env's per-token stepping); ``decode_tokens_per_s``: tokens / wall time of the decode
  call, which includes the env stepping it overlaps (the static loop steps the env through
  finished columns while the GPU decodes the next ones); ``env_s`` the host seconds of env
  work per rollout, ``env_overlapped_s`` the part of it done inside the decode (all medians
  over the timed rollouts);
* ``hf_static_tokens_per_s``: ``model.generate(cache_implementation="static")`` on a bf16
  copy of the same model, same prompts, sampling, exactly 128 new tokens; and the ratio;
* ``tokens_equal_to_eager``: share of tokens the graph decode shares with the eager dynamic
  decode for the same seed (bf16 near-ties make them diverge on a random model; the exact
  test is ``tests/test_static_decode.py`` in float32);
* ``train_mfu``: (6·P·N·epochs + 2·P·N·2) / (seconds · 790 TFLOP/s) for one iteration, with P
  the parameters, N the batch's tokens (prompt + response), the 2·P·N·2 being the policy's
  and the reference's no-grad forwards — the issue's formula; 790 TFLOP/s is the bf16 rate
  measured on this GPU model;
* ``peak_memory_gib``: ``torch.cuda.max_memory_allocated`` during the phase.

Run (on the GPU machine): ``python benchmarks/gpu_lm_ppo.py`` (``--phases`` picks a subset,
``--time-budget`` skips phases that would not finish; ``--device cpu --batches 8
--new-tokens 8 --layers 1 --minibatch-rows 4`` is a smoke test).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from rlseek.agents.lm_ppo.config import LmPpoConfig
from rlseek.agents.lm_ppo.model import build_policy, disable_dropout
from rlseek.agents.lm_ppo.trainer import PPOTrainer, autocast
from rlseek.envs.text.rollout import DecodeSettings, RolloutEngine
from rlseek.figures import SOURCE_FIGURES, write_figures

GRPO_BETA = 0.04
"""lm-grpo's KL coefficient here (TRL's former default), so a reference pass is made."""
PEAK_TFLOPS = 790.0
"""bf16 dense matmul rate measured on an H200 (8192³ products on random data)."""


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
        if options and options.get("group_size"):  # GRPO: G copies of each prompt, adjacent
            g = int(options["group_size"])
            ids = np.repeat(ids[:: g], g, axis=0)
        obs = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        return obs, {"prompts": [""] * self.num_envs, "answers": [None] * self.num_envs}

    def step(self, actions: np.ndarray):  # type: ignore[no-untyped-def]
        self.t += 1
        last = self.t >= self.max_new_tokens
        obs = {"input_ids": np.asarray(actions).reshape(-1, 1), "attention_mask": np.ones((self.num_envs, 1), np.int64)}
        done = np.full(self.num_envs, last)
        info: dict[str, Any] = {}
        reward = np.zeros(self.num_envs)
        if last:  # a score that varies, so group-normalized advantages are not all 0
            reward = self.rng.standard_normal(self.num_envs)
            info = {"completions": [""] * self.num_envs, "eos": np.zeros(self.num_envs, bool),
                    "reward_total": reward}
        return obs, reward, np.zeros(self.num_envs, bool), done, info

    def close(self) -> None:
        pass


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _timed(fn, repeats: int) -> tuple[list[float], Any]:  # type: ignore[no-untyped-def]
    out, times = None, []
    for _ in range(repeats):
        _sync()
        t0 = time.perf_counter()
        out = fn()
        _sync()
        times.append(time.perf_counter() - t0)
    return times, out


def _peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


class Bench:
    """One model and its trainers, shared by every batch size (compiled code and CUDA graphs
    are kept across them, as in one training run), and the phases measured on them."""

    def __init__(self, args: argparse.Namespace, device: torch.device) -> None:
        self.args, self.device = args, device
        torch.manual_seed(0)
        self.lm = GPT2LMHeadModel(GPT2Config(n_layer=args.layers)).to(device).eval()
        disable_dropout(self.lm)  # as the policy runs (GPT-2's config has dropout 0.1)
        self.params = sum(p.numel() for p in self.lm.parameters())
        self.gen = torch.Generator(device=device).manual_seed(0)
        self.trainers: dict[str, tuple[Any, Any, Any]] = {}
        self.set_batch(args.batches[0])

    def set_batch(self, batch: int) -> None:
        a = self.args
        self.batch = batch
        self.env = FixedLengthEnv(batch, a.prompt_len, a.new_tokens, self.lm.config.vocab_size)

    def rollout_phase(self) -> dict[str, Any]:
        a, dev = self.args, self.device
        _reset_peak(dev)
        engine = self.engine = getattr(self, "engine", None) or RolloutEngine.for_env(self.lm, self.env, dev)
        settings = DecodeSettings(temperature=1.0)

        timings: list[dict[str, float]] = []

        def ours(seed: int = 1):  # type: ignore[no-untyped-def]
            with autocast(dev, "bfloat16"):
                ro = engine.rollout(self.env, settings, generator=self.gen, seed=seed)
            timings.append(ro.timings)
            return ro

        t0 = time.perf_counter()
        ours(0)  # warm-up: compilation and graph capture
        warm = time.perf_counter() - t0
        timings.clear()
        times, ro = _timed(ours, a.repeats)
        n = ro.n_tokens
        out: dict[str, Any] = {
            "rollout_tokens_per_s": n / float(np.median(times)),
            "decode_tokens_per_s": n / float(np.median([t["generate"] for t in timings])),
            "rollout_warmup_s": warm,
            "env_s": float(np.median([t["env"] for t in timings])),
            "env_overlapped_s": float(np.median([t.get("env_overlapped", 0.0) for t in timings])),
        }
        cache, comp = settings.resolved(dev)
        out["decode_path"] = f"{cache} cache, compile {comp}, CUDA graphs {dev.type == 'cuda' and cache == 'static'}"
        if cache == "static":
            dec = engine.static_decoder(comp)
            err = dec.compile_error
            attn = getattr(getattr(dec._copy, "config", None), "_attn_implementation", None)
            out["decode_path"] += f", LM head {str(dec.head_dtype).removeprefix('torch.')}, attention {attn}"
            if err:
                out["decode_compile_error"] = err
        # the eager dynamic decode of the same prompts and seed, for token agreement
        ids, pm = ro.prompt_ids, ro.prompt_mask
        with autocast(dev, "bfloat16"):
            g1 = torch.Generator(device=dev).manual_seed(7)
            g2 = torch.Generator(device=dev).manual_seed(7)
            fast = engine.decode(ids, pm, a.new_tokens, settings, g1)
            eager = engine.decode(ids, pm, a.new_tokens, DecodeSettings(temperature=1.0, cache="dynamic"), g2)
        same = (fast.tokens == eager.tokens).float()
        out["tokens_equal_to_eager"] = float(same.mean())
        out["first_8_tokens_equal_to_eager"] = float(same[:, :8].mean())
        out["eager_dynamic_tokens_per_s"] = n / eager.seconds
        # model.generate with transformers' static cache, on a bf16 copy of the model
        hf = copy.deepcopy(self.lm).to(torch.bfloat16)

        def generate():  # type: ignore[no-untyped-def]
            with torch.no_grad():
                return hf.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True, top_k=0,
                                   max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens, pad_token_id=0,
                                   cache_implementation="static")

        t0 = time.perf_counter()
        generate()
        out["hf_static_warmup_s"] = time.perf_counter() - t0
        hf_times, res = _timed(generate, a.repeats)
        assert res.shape[1] - ids.shape[1] == a.new_tokens
        out["hf_static_tokens_per_s"] = n / float(np.median(hf_times))
        out["rollout_vs_hf_static"] = out["rollout_tokens_per_s"] / out["hf_static_tokens_per_s"]
        out["rollout_peak_memory_gib"] = _peak_gib(dev)
        return out

    def _mfu(self, seconds: float, ro: Any, epochs: int, trainer: Any) -> float:
        """The issue's MFU: fwd+bwd per epoch plus the no-grad forwards actually made (the
        rollout policy's unless on-policy, the reference's when there is one)."""
        tokens = ro.prompt_ids.numel() + ro.response_ids.numel()
        nograd = int(not getattr(trainer, "on_policy", False)) + int(trainer.has_reference)
        flops = 6 * self.params * tokens * epochs + 2 * self.params * tokens * nograd
        return flops / seconds / (PEAK_TFLOPS * 1e12)

    def train_phase(self, algo: str) -> dict[str, Any]:
        a, dev = self.args, self.device
        _reset_peak(dev)
        minibatches = max(1, self.batch // a.minibatch_rows)
        mbt = a.minibatch_rows * (a.prompt_len + a.new_tokens)
        if algo not in self.trainers:
            common = dict(model="gpt2-random", dtype="bfloat16", ppo_epochs=a.epochs,
                          num_minibatches=minibatches, micro_batch_tokens=mbt, compile="auto")
            lm = copy.deepcopy(self.lm)
            if algo == "lm-ppo":
                cfg: Any = LmPpoConfig(**common)
                policy, reference = build_policy(lm, cfg)
                policy.to(dev)
                reference.to(dev)
                made: Any = (PPOTrainer(policy, reference, cfg, dev), None)
            else:
                made = _grpo_trainer(lm, common, dev, a.group)
            self.trainers[algo] = (made[0], made[1], RolloutEngine.for_env(made[0].policy.lm, self.env, dev))
        trainer, options, engine = self.trainers[algo]
        trainer.cfg.num_minibatches = minibatches  # minibatches of minibatch_rows rows at every batch size

        def rollout(seed: int):  # type: ignore[no-untyped-def]
            with autocast(dev, "bfloat16"):
                return engine.rollout(self.env, DecodeSettings(temperature=1.0), generator=self.gen,
                                      seed=seed, options=options)

        ro = rollout(0)
        t0 = time.perf_counter()
        trainer.step(ro)  # warm-up: compilation
        _sync()
        warm = time.perf_counter() - t0
        times = []
        for r in range(a.train_repeats):
            ro = rollout(r + 1)
            t, _ = _timed(lambda ro=ro: trainer.step(ro), 1)
            times.append(t[0])
        sec = float(np.median(times))
        n = ro.n_tokens
        out = {
            "train_mfu": self._mfu(sec, ro, a.epochs, trainer),
            "train_seconds_per_iteration": sec,
            "train_tokens_per_s": n / sec,
            "train_warmup_s": warm,
            "train_minibatches": minibatches,
            "train_micro_batch_tokens": mbt,
            "train_peak_memory_gib": _peak_gib(dev),
            "train_compiled": bool(trainer.compile_forward and trainer.compile_error is None),
        }
        if trainer.compile_error:
            out["train_compile_error"] = trainer.compile_error
        if algo != "lm-ppo":
            out["group"] = a.group
        return out


def _grpo_trainer(lm: torch.nn.Module, common: dict[str, Any], dev: torch.device, group: int):  # type: ignore[no-untyped-def]
    """lm-grpo's trainer for ``lm``: G completions per prompt, no value head, β = 0.04 with a
    reference copy and the same epochs and minibatches as lm-ppo, so both make the same
    passes (the lm-grpo default, β = 0 and one on-policy epoch, makes fewer)."""
    from rlseek.agents.lm_grpo.config import LmGrpoConfig
    from rlseek.agents.lm_grpo.trainer import CriticFreeTrainer

    cfg = LmGrpoConfig(**common, group_size=group, kl_coef=GRPO_BETA)
    policy, reference = build_policy(lm, cfg, value_head=False, reference=True)
    policy.to(dev)
    reference.to(dev)
    return CriticFreeTrainer(policy, reference, cfg, dev, estimator="grpo"), {"group_size": group}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, nargs="+", default=[64, 256])
    p.add_argument("--prompt-len", type=int, default=64)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--layers", type=int, default=12, help="GPT-2 layers (12: GPT-2 small; fewer for a smoke test)")
    p.add_argument("--minibatch-rows", type=int, default=64, help="rows per PPO minibatch")
    p.add_argument("--group", type=int, default=8, help="lm-grpo's completions per prompt")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--train-repeats", type=int, default=2)
    p.add_argument("--phases", nargs="+", default=["rollout", "lm-ppo", "lm-grpo"])
    p.add_argument("--time-budget", type=float, default=1e9, help="seconds; later phases are skipped")
    p.add_argument("--device", default="cuda", help="cuda (the benchmark) or cpu (a smoke test)")
    p.add_argument("--figures", default=str(SOURCE_FIGURES / "gpu_lm_ppo.json"))
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_lm_ppo.py: needs a CUDA device (or --device cpu for a smoke test)", file=sys.stderr)
        raise SystemExit(2)
    device = torch.device(args.device)
    t_start = time.perf_counter()
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "model": f"GPT2Config(n_layer={args.layers}) random init ({args.layers} layers, 768 dims, vocab 50257)",
        "dtype": "float32 weights, bf16 autocast", "prompt_len": args.prompt_len,
        "new_tokens": args.new_tokens, "epochs": args.epochs, "peak_tflops": PEAK_TFLOPS,
        "transformers": __import__("transformers").__version__, "skipped": [],
    }
    # rough phase costs (s) on an H200, compilation included, to skip what would not finish
    cost = {"rollout": 90.0, "lm-ppo": 120.0, "lm-grpo": 120.0}
    bench = Bench(args, device)
    result["parameters"] = bench.params
    for phase in args.phases:
        for batch in args.batches:
            bench.set_batch(batch)
            tag = f"b{batch}_{phase.replace('-', '_')}"
            if time.perf_counter() - t_start + cost[phase] > args.time_budget:
                result["skipped"].append(tag)
                continue
            try:
                figs = bench.rollout_phase() if phase == "rollout" else bench.train_phase(phase)
            except ImportError as err:
                result["skipped"].append(f"{tag} ({err})")
                continue
            result.update({f"{tag}_{k}": v for k, v in figs.items()})
            print(json.dumps({tag: figs}), flush=True)
            write_figures(args.figures, "gpu_lm_ppo", result)
    result["total_seconds"] = time.perf_counter() - t_start
    write_figures(args.figures, "gpu_lm_ppo", result)
    print(json.dumps(result))
    print(f"wrote {Path(args.figures)}")


if __name__ == "__main__":
    main()
