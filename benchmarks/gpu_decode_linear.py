"""The decode's linear layers alone: rlseek's split-K kernel against cuBLAS, side by side.

For each linear layer shape of a GPT-2-small decode step (``c_attn`` 768 → 2,304, attention
``c_proj`` 768 → 768, ``c_fc`` 768 → 3,072 with its tanh GELU, MLP ``c_proj`` 3,072 → 768) and
each batch (rows), one CUDA graph runs the layer's product for 12 layers' distinct bf16
weights (as a decode step does: 170 MB of weights do not stay in L2), once through
``torch.addmm`` / ``torch._addmm_activation`` (cuBLAS/cuBLASLt, what the compiled decode
calls) and once through :func:`rlseek.envs.text.decode_linear.launch`; the graph is replayed
``--repeats`` times and µs per layer call printed (launch gaps included, as in the decode's
graph). ``--sweep`` also times a grid of launch configs (tile sizes, K splits) per shape and
prints the best. Outputs are checked against cuBLAS's (max abs difference).

Run on the GPU machine: ``python benchmarks/gpu_decode_linear.py [--sweep] [--out FILE.json]``.
Needs CUDA and Triton (exit code 2 without them).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from rlseek.envs.text import decode_linear

SHAPES = {"c_attn": (768, 2304, False), "attn_c_proj": (768, 768, False),
          "c_fc_gelu": (768, 3072, True), "mlp_c_proj": (3072, 768, False)}
"""Layer -> (K, N, GELU)."""
LAYERS = 12


def graph_us(calls: Callable[[], None], repeats: int) -> float:
    """µs per layer call of a CUDA graph of ``calls`` (LAYERS calls), median of 5 timings of
    ``repeats`` replays."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):
            calls()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        calls()
    times = []
    for _ in range(5):
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(repeats):
            graph.replay()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    times.sort()
    return round(times[2] / repeats / LAYERS * 1e6, 2)


def sweep_configs(rows: int, n: int, k: int, sms: int) -> list[tuple[int, int, int, int, int]]:
    """A grid of launch configs: 64/128-row tiles, 32/64/128 columns, 64-deep K steps, every
    equal K split, 4 warps; only those giving between 16 and 8 x SMs programs."""
    out = []
    for bm, bn, split in itertools.product((64, 128), (32, 64, 128), range(1, 17)):
        if bm > 64 and rows <= 64 or (k // 64) % split:
            continue
        programs = -(-rows // bm) * -(-n // bn) * split
        if 16 <= programs <= 8 * sms:
            out.append((bm, bn, 64, split, 4))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, nargs="+", default=[64, 256])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--sweep", action="store_true", help="also time a grid of launch configs")
    p.add_argument("--sweep-seconds", type=float, default=30.0, help="time limit of one shape's sweep")
    p.add_argument("--out", default=None, help="also write the figures to this JSON file")
    args = p.parse_args()
    if not decode_linear.available():
        print("gpu_decode_linear.py: needs CUDA and Triton", file=sys.stderr)
        raise SystemExit(2)
    dev = torch.device("cuda")
    sms = torch.cuda.get_device_properties(dev).multi_processor_count
    result: dict[str, Any] = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "sms": sms}
    g = torch.Generator(device=dev).manual_seed(0)
    for rows in args.batches:
        totals = {"cublas": 0.0, "kernel": 0.0, "best": 0.0}
        for name, (k, n, gelu) in SHAPES.items():
            ws = [torch.randn(k, n, device=dev, generator=g).mul_(0.02).bfloat16() for _ in range(LAYERS)]
            bs = [torch.randn(n, device=dev, generator=g).mul_(0.02).bfloat16() for _ in range(LAYERS)]
            x = torch.randn(rows, k, device=dev, generator=g).bfloat16()
            outs = [torch.empty(rows, n, device=dev, dtype=torch.bfloat16) for _ in range(LAYERS)]
            refs: list[torch.Tensor] = [torch.empty(0)] * LAYERS

            def cublas() -> None:
                for i in range(LAYERS):
                    refs[i] = (torch._addmm_activation(bs[i], x, ws[i], use_gelu=True) if gelu
                               else torch.addmm(bs[i], x, ws[i]))

            def kernel(config: tuple[int, int, int, int, int] | None = None) -> Callable[[], None]:
                def calls() -> None:
                    for i in range(LAYERS):
                        decode_linear.launch(x, ws[i], bs[i], gelu, outs[i], config)
                return calls

            row: dict[str, Any] = {"cublas_us": graph_us(cublas, args.repeats)}
            row["config"] = decode_linear.launch_config(rows, n, k, sms)
            row["kernel_us"] = graph_us(kernel(), args.repeats)
            cublas()
            kernel()()
            row["max_abs_diff"] = max(float((o.float() - r.float()).abs().max()) for o, r in zip(outs, refs))
            best = (row["kernel_us"], row["config"])
            if args.sweep:
                t0 = time.perf_counter()
                for config in sweep_configs(rows, n, k, sms):
                    if time.perf_counter() - t0 > args.sweep_seconds:
                        row["sweep_cut"] = True
                        break
                    us = graph_us(kernel(config), args.repeats)
                    best = min(best, (us, config))
                row["best_us"], row["best_config"] = best
            totals["cublas"] += row["cublas_us"] * LAYERS
            totals["kernel"] += row["kernel_us"] * LAYERS
            totals["best"] += best[0] * LAYERS
            result[f"b{rows}_{name}"] = row
            print(json.dumps({f"b{rows}_{name}": row}), flush=True)
        result[f"b{rows}_step_linears_us"] = {k: round(v, 1) for k, v in totals.items()}
        print(json.dumps({f"b{rows}_step_linears_us": result[f"b{rows}_step_linears_us"]}), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
