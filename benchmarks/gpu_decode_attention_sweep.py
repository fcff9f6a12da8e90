"""Launch configs of the decode attention kernel, each timed by whole graph decodes.

For each batch and each (keys per tile, warps, unrolled tiles or a loop, Triton pipelining
stages, values loaded with the keys) in the chosen set of :data:`CONFIGS`, the module knobs of
:mod:`rlseek.envs.text.decode_attention` are set and the default rollout decode of
``benchmarks/gpu_decode_variants.py`` is timed: tokens/s, median of ``--repeats`` decodes
after a warm-up one. The first config, all zeros, is whatever ``launch_config`` picks.
``launch_config`` is then chosen from these figures by hand (``benchmarks/GPU_NOTES.md``).

Run on the GPU machine: ``python benchmarks/gpu_decode_attention_sweep.py [--set preload] [--out FILE.json]``.
Needs CUDA and Triton (exit code 2 without them).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from gpu_decode_variants import decode_rate
from transformers import GPT2Config, GPT2LMHeadModel

from rlseek.agents.lm_ppo.model import disable_dropout
from rlseek.envs.text import decode_attention as da

CONFIGS = {
    "launch": [(0, 0, True, 0, False), (16, 1, True, 0, False), (32, 1, True, 0, False),
               (64, 1, True, 0, False), (32, 2, True, 0, False), (64, 2, True, 0, False),
               (128, 2, True, 0, False), (64, 4, True, 0, False), (128, 4, True, 0, False),
               (32, 1, False, 3, False), (64, 2, False, 3, False), (64, 4, False, 3, False),
               (128, 4, False, 3, False), (16, 1, False, 4, False)],
    "preload": [(0, 0, True, 0, False), (0, 0, True, 0, True), (128, 4, True, 0, True),
                (64, 2, True, 0, True), (64, 4, True, 0, True), (32, 1, True, 0, True),
                (32, 2, True, 0, True), (16, 1, False, 4, True), (16, 1, False, 4, False)],
    "split64": [(0, 0, True, 0, False), (64, 2, True, 0, False, 2), (64, 2, True, 0, False, 3),
                (64, 2, True, 0, False, 4), (64, 1, True, 0, False, 4), (32, 1, True, 0, False, 4),
                (16, 1, False, 4, False, 4), (32, 1, True, 0, False, 6), (16, 1, True, 0, False, 12),
                (64, 4, True, 0, False, 3)],
    "parts": [(0, 0, True, 0, False), (16, 1, False, 4, False, 3), (16, 1, False, 4, False, 6),
              (16, 1, False, 4, False, 8)],
    "split256": [(0, 0, True, 0, False), (16, 1, False, 4, False, 2), (32, 1, True, 0, False, 2),
                 (64, 2, True, 0, False, 2), (32, 1, True, 0, False, 3), (64, 2, True, 0, False, 3)],
}
"""Sets of (BLOCK_KEYS, NUM_WARPS, UNROLL, NUM_STAGES, PRELOAD_VALUES[, SPLIT]); zeros: the
module's defaults. "launch": the first sweep of tiles and warps; "preload": values loaded with
keys; "split64"/"split256": each (row, head)'s keys split into parts, for batch 64 / 256;
"parts": launch_config's tiles (16 keys, one warp, a loop) with other part counts."""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, nargs="+", default=[256, 64])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--set", default="launch", choices=list(CONFIGS), help="which configs to time")
    p.add_argument("--out", default=None, help="also write the figures to this JSON file")
    args = p.parse_args()
    if not da.available():
        print("gpu_decode_attention_sweep.py: needs a CUDA device and Triton", file=sys.stderr)
        raise SystemExit(2)
    torch._dynamo.config.cache_size_limit = 64
    torch.manual_seed(0)
    lm = GPT2LMHeadModel(GPT2Config()).cuda().eval()
    disable_dropout(lm)
    result: dict[str, Any] = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    for batch in args.batches:
        for block, warps, unroll, stages, preload, *split in CONFIGS[args.set]:
            da.BLOCK_KEYS, da.NUM_WARPS, da.UNROLL, da.NUM_STAGES = block, warps, unroll, stages
            da.PRELOAD_VALUES, da.SPLIT = preload, (split or [1])[0]
            tag = (f"b{batch}_block{block}_warps{warps}_unroll{int(unroll)}_stages{stages}"
                   f"_preload{int(preload)}_split{da.SPLIT}")
            result[tag] = decode_rate(lm, batch, kernel=True, head32=False,
                                      repeats=args.repeats)["tokens_per_s"]
            print(json.dumps({tag: result[tag]}), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
