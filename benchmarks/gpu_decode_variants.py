"""What each of the rollout decode's GPU choices is worth, in one process.

The graph decode of :mod:`rlseek.envs.text.static_decode` has five switches on CUDA: the decode
copy's attention (rlseek's single-query Triton kernel, ``StaticDecoder.attention_kernel``, or
transformers' SDPA), the LM head's dtype (bf16, the default, or float32:
``DecodeSettings.head_float32``), the token pick (the one-pass Triton kernel,
``StaticDecoder.pick_kernel``, or the compiled ``pick_tokens``), the MLP's first linear layer
with its GELU as one cuBLASLt call (``StaticDecoder.fused_gelu``), and the kernel writing each
step's key and value into the cache itself (``StaticDecoder.append_in_kernel``). This script
decodes the same prompts with the earlier paths, each newer switch alone, and all of them, on
the model and shapes of ``benchmarks/gpu_lm_ppo.py`` (GPT-2-small config, random init, bf16 autocast, 64-token prompts, exactly 128 new tokens, sampling at T=1) and
prints, per batch and variant, tokens/s (median of ``--repeats`` whole decodes after one
warm-up decode that compiles and captures). ``--profile`` adds, for each variant, the CUDA
kernels' time per decode step (µs, the 45 longest, their sum and their count) from
``torch.profiler``.

Run on the GPU machine: ``python benchmarks/gpu_decode_variants.py [--out FILE.json]``.
Needs CUDA (exit code 2 without it); ``--device cpu --batches 2 --layers 1 --repeats 1`` is a
smoke test of the script (the CPU decodes on the dynamic path, so the variants do not differ).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gpu_lm_ppo import FixedLengthEnv
from transformers import GPT2Config, GPT2LMHeadModel

from rlseek.agents.lm_ppo.model import disable_dropout
from rlseek.envs.text.rollout import DecodeSettings, RolloutEngine

PROMPT, NEW = 64, 128
VARIANTS: dict[str, dict[str, bool]] = {
    "sdpa_head32": dict(kernel=False, head32=True, pick=False, gelu=False, append=False),
    "kernel_headbf16": dict(kernel=True, head32=False, pick=False, gelu=False, append=False),
    "kernel_headbf16_pick": dict(kernel=True, head32=False, pick=True, gelu=False, append=False),
    "kernel_headbf16_gelu": dict(kernel=True, head32=False, pick=False, gelu=True, append=False),
    "kernel_headbf16_append": dict(kernel=True, head32=False, pick=False, gelu=False, append=True),
    "default": dict(kernel=True, head32=False, pick=True, gelu=True, append=True),
    "default_autotune": dict(kernel=True, head32=False, pick=True, gelu=True, append=True, autotune=True),
}
"""Switches per variant: the earlier paths first (b66b2e4's; then attention kernel and bf16
head, the default up to 1d61f59), each newer switch alone on the latter, then the default
(all on), and the default with the decode forward compiled in inductor's
``max-autotune-no-cudagraphs`` mode (``StaticDecoder.compile_mode``: Triton GEMM templates
timed against cuBLAS per shape)."""


def decode_rate(lm: torch.nn.Module, batch: int, *, kernel: bool, head32: bool, repeats: int,
                profile: bool = False, pick: bool = True, gelu: bool = True,
                append: bool = True, autotune: bool = False) -> dict[str, Any]:
    """Tokens/s of whole graph decodes of ``batch`` random prompts with one variant (through
    gpu_lm_ppo.py's fixed-length env: every episode exactly NEW tokens)."""
    rng = np.random.default_rng(batch)
    device = next(lm.parameters()).device
    ids = torch.as_tensor(rng.integers(0, 50257, size=(batch, PROMPT)), device=device)
    engine = RolloutEngine.for_env(lm, FixedLengthEnv(batch, PROMPT, NEW, 50257), device)
    dec = engine.static_decoder(True)
    dec.attention_kernel, dec.pick_kernel, dec.fused_gelu, dec.append_in_kernel = kernel, pick, gelu, append
    dec.compile_mode = "max-autotune-no-cudagraphs" if autotune else None
    settings = DecodeSettings(temperature=1.0, head_float32=head32)
    gen = torch.Generator(device=device).manual_seed(0)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    out: dict[str, Any] = {}
    with torch.autocast(device.type, torch.bfloat16):
        t0 = time.perf_counter()
        engine.decode(ids, torch.ones_like(ids), NEW, settings, gen)
        out["warmup_s"] = round(time.perf_counter() - t0, 1)
        times = []
        for _ in range(repeats):
            sync()
            t = time.perf_counter()
            engine.decode(ids, torch.ones_like(ids), NEW, settings, gen)
            sync()
            times.append(time.perf_counter() - t)
        if profile and device.type == "cuda":  # CUDA kernels only
            from torch.profiler import ProfilerActivity
            from torch.profiler import profile as torch_profile

            with torch_profile(activities=[ProfilerActivity.CUDA]) as prof:
                engine.decode(ids, torch.ones_like(ids), NEW, settings, gen)
                torch.cuda.synchronize()
            events = sorted(prof.key_averages(), key=lambda e: -e.device_time_total)
            out["kernel_us_per_step"] = round(sum(e.device_time_total for e in events) / (NEW - 1), 1)
            out["kernels_per_step"] = round(sum(e.count for e in events) / (NEW - 1), 1)
            out["us_per_step"] = [[e.key[:90], e.count, round(e.device_time_total / (NEW - 1), 1)]
                                  for e in events[:45]]
    out["tokens_per_s"] = round(batch * NEW / float(np.median(times)), 1)
    out["attention"] = dec._copy.config._attn_implementation if dec._copy is not None else None
    out["head_dtype"] = str(dec.head_dtype)
    out["fused_mlps"] = dec.fused_mlps
    out["appending_layers"] = dec.appending_layers
    out["compile_error"] = dec.compile_error
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, nargs="+", default=[64, 256])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--profile", action="store_true", help="kernel times per step of each variant run")
    p.add_argument("--variants", nargs="*", default=None, choices=list(VARIANTS),
                   help="only these variants (default: all)")
    p.add_argument("--rounds", type=int, default=1,
                   help="run the variants this many times in turn (an A/B on one card; tags of later rounds end _r2, ...)")
    p.add_argument("--out", default=None, help="also write the figures to this JSON file")
    p.add_argument("--layers", type=int, default=12, help="GPT-2 layers (12: GPT-2 small)")
    p.add_argument("--device", default="cuda", help="cuda (the benchmark) or cpu (a smoke test)")
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_decode_variants.py: needs a CUDA device", file=sys.stderr)
        raise SystemExit(2)
    torch._dynamo.config.cache_size_limit = 64  # a dozen decode copies' graphs in one process
    torch.manual_seed(0)
    lm = GPT2LMHeadModel(GPT2Config(n_layer=args.layers)).to(args.device).eval()
    disable_dropout(lm)
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    result: dict[str, Any] = {"device": name, "torch": torch.__version__}
    for batch in args.batches:
        for rnd, (name, switches) in ((r, v) for r in range(1, args.rounds + 1) for v in VARIANTS.items()):
            if args.variants and name not in args.variants:
                continue
            tag = f"b{batch}_{name}" + (f"_r{rnd}" if rnd > 1 else "")
            result[tag] = decode_rate(lm, batch, repeats=args.repeats,
                                      profile=args.profile, **switches)
            print(json.dumps({tag: result[tag]}), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
