"""Tokens/second: a KV-cached policy stepping the text vector env vs plain ``model.generate``.

Both sides use the bundled tiny LM, the same batch of Reviews-v0 prompts (left-padded by the
env), sampling at temperature 1.0 and exactly ``--new-tokens`` new tokens per row (EOS
suppressed on both sides, so the work is equal). The env side includes everything an RL rollout
pays for: the env's per-step bookkeeping, decoding the completions and scoring them with the
default WeightedReward. Rounds alternate between the two sides and the median of each is
reported, because the machine is shared. ``ratio = env tokens/s / generate tokens/s``; 1.0
means stepping the env costs nothing over generate.

    python benchmarks/bench_text_env.py [--batch 64 --new-tokens 32 --rounds 7]

The figures also go to ``figures/bench_text_env.json`` (``-cuda`` added on a GPU;
``--figures`` chooses another file), which the README quotes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=7)
    # One thread by default: on a shared 2-core machine a second thread spin-waits against
    # other processes and made both sides ~7x slower here; the ratio is what matters.
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--figures", help="figure file to write (default figures/bench_text_env[-cuda].json)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from rlseek.envs.text import make_text_vector_env
    from rlseek.envs.text.rollout import DecodeSettings, RolloutEngine
    from rlseek.figures import SOURCE_FIGURES, write_figures
    from rlseek.models import load_causal_lm, resolve_device

    device = resolve_device(args.device)
    model, tok = load_causal_lm("rlseek/tiny-lm", device=device)
    venv = make_text_vector_env("rlseek/Reviews-v0", args.batch, max_new_tokens=args.new_tokens)
    obs, info = venv.reset(seed=0)
    options = {"prompts": info["prompts"], "answers": info["answers"]}
    ids = torch.as_tensor(obs["input_ids"], device=device)
    mask = torch.as_tensor(obs["attention_mask"], device=device)
    tokens = args.batch * args.new_tokens
    engine = RolloutEngine.for_env(model, venv, device)
    settings = DecodeSettings(temperature=1.0, suppress_eos=True)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def run_env(seed: int) -> float:
        sync()
        t0 = time.perf_counter()
        gen = torch.Generator(device=device).manual_seed(seed)
        out = engine.rollout(venv, settings, generator=gen, seed=seed, options=options)
        sync()
        dt = time.perf_counter() - t0
        assert sum(len(c) for c in out.completion_ids) == tokens
        return tokens / dt

    @torch.no_grad()
    def run_generate(seed: int) -> float:
        torch.manual_seed(seed)
        sync()
        t0 = time.perf_counter()
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True,
                             temperature=1.0, top_k=0, top_p=1.0,
                             max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens)
        sync()
        dt = time.perf_counter() - t0
        assert out.shape == (args.batch, ids.shape[1] + args.new_tokens)
        return tokens / dt

    run_env(1000), run_generate(1000)  # warm-up: allocator, lazy imports
    env_tps, gen_tps = [], []
    for r in range(args.rounds):
        env_tps.append(run_env(r))
        gen_tps.append(run_generate(r))
    env_med, gen_med = statistics.median(env_tps), statistics.median(gen_tps)
    print(f"text env (KV-cached policy): {env_med:,.0f} tokens/s  "
          f"(median of {args.rounds}; batch {args.batch}, {args.new_tokens} new tokens, {device})")
    print(f"model.generate:               {gen_med:,.0f} tokens/s")
    print(f"ratio={env_med / gen_med:.3f}")
    suffix = "-cuda" if device.startswith("cuda") else ""
    write_figures(args.figures or SOURCE_FIGURES / f"bench_text_env{suffix}.json", "bench_text_env", {
        "ratio": env_med / gen_med, "env_tokens_per_second": env_med,
        "generate_tokens_per_second": gen_med, "batch": args.batch, "new_tokens": args.new_tokens,
        "rounds": args.rounds, "device": device,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
