"""Steps per second of rlseek/Reacher-v0 against Gymnasium's Reacher-v5, side by side.

Both envs are made with ``gymnasium.make`` (same wrappers), reset with the same seed and fed
the same pre-sampled actions. Repeats alternate between the two so that load on a shared
machine hits both alike; the ratio compares medians. rlseek's weighted reward must cost at
most 10 % of the native step rate (ratio ≥ 0.9).

    python benchmarks/bench_robot_env.py [--steps 20000] [--repeats 7]

The last line is ``ratio=<rlseek steps/s ÷ native steps/s>``; the figures also go to
``figures/bench_robot_env.json`` (``--figures`` to choose another file), which the README quotes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import numpy as np

import rlseek  # noqa: F401  (registers the envs)
from rlseek.figures import SOURCE_FIGURES, write_figures


def steps_per_second(env: gym.Env, actions: np.ndarray, seed: int = 0) -> float:
    """Step ``env`` through ``actions`` (resetting at episode ends); return steps per second."""
    env.reset(seed=seed)
    step, reset = env.step, env.reset
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = step(action)
        if terminated or truncated:
            reset()
    return len(actions) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--steps", type=int, default=20_000, help="env steps per timed run")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per env, interleaved")
    parser.add_argument("--figures", default=str(SOURCE_FIGURES / "bench_robot_env.json"),
                        help="figure file to write (JSON)")
    args = parser.parse_args()

    envs = {"rlseek/Reacher-v0": gym.make("rlseek/Reacher-v0"), "Reacher-v5": gym.make("Reacher-v5")}
    rng = np.random.default_rng(0)
    space = envs["Reacher-v5"].action_space
    actions = rng.uniform(space.low, space.high, size=(args.steps, *space.shape)).astype(space.dtype)

    for env in envs.values():  # warm-up: first-step checks, caches
        steps_per_second(env, actions[:500])
    rates: dict[str, list[float]] = {name: [] for name in envs}
    for _ in range(args.repeats):
        for name, env in envs.items():
            rates[name].append(steps_per_second(env, actions))

    for name, r in rates.items():
        print(
            f"{name:18s} median {statistics.median(r):9.0f} steps/s  "
            f"(min {min(r):.0f}, max {max(r):.0f}, {args.repeats} runs of {args.steps} steps)"
        )
    ratio = statistics.median(rates["rlseek/Reacher-v0"]) / statistics.median(rates["Reacher-v5"])
    print(f"ratio={ratio:.3f}")
    write_figures(args.figures, "bench_robot_env", {
        "ratio": ratio, "steps": args.steps, "repeats": args.repeats,
        "rlseek_steps_per_second": statistics.median(rates["rlseek/Reacher-v0"]),
        "native_steps_per_second": statistics.median(rates["Reacher-v5"]),
    })


if __name__ == "__main__":
    main()
