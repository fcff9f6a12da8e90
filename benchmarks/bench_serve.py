"""Load test of ``rlseek serve`` on loopback: dynamic batching vs batch size 1, and the PID
batch controller under an offered load that steps up and down.

Part ``compare``: for a language model (an lm-ppo run on Arithmetic) and a Reacher SAC policy,
a server with PID-controlled dynamic batching and one with a fixed batch size of 1 are loaded
by ``--clients`` closed-loop clients (each sends its next request when the last one returned)
for ``--compare-s`` seconds; throughput (answered requests per second) and client-side
p50/p95/p99 latency are printed side by side with their ratio. Both servers get the same queue
room (``--queue-batches 64``) so that neither refuses requests in this part.

Part ``pid``: one language-model server with the default queue bound (two batches) is offered
an open-loop load (requests at fixed intervals, ``--rows-per-request`` prompts each, so that
the model rather than HTTP handling is the bottleneck) that steps through ``--levels``
requests/s, ``--level-s`` seconds each; every 0.5 s the p95 of the answers in that interval, the batch size
and the share of 503 answers are recorded. The plot (``--out``/serve_pid.png) shows p95 against
the target and the batch size the controller chose.

Every server is an ``rlseek serve`` subprocess on 127.0.0.1 on a free port, stopped with SIGTERM
at the end of its part; every part is bounded in time and request count. On a machine shared
with other work the client and the server compete for the same cores: compare ratios, not
absolute figures.

    python benchmarks/bench_serve.py                       # trains two tiny runs first
    python benchmarks/bench_serve.py --lm-run runs/arith --robot-run runs/reacher --out benchmarks/results
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MAX_IN_FLIGHT = 2000  # open-loop requests outstanding at most (bounded memory)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``rlseek serve RUN ARGS`` as a subprocess on a free loopback port."""

    def __init__(self, run: Path, *args: str, threads: int = 1) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rlseek.cli", "serve", str(run), "--port", str(self.port),
             "--threads", str(threads), *args],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def __enter__(self) -> Server:
        import httpx

        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(self.base + "/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        self.__exit__()
        raise TimeoutError("server did not start within 180 s")

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def request_maker(kind: str, obs_dim: int, rows: int = 1) -> Any:
    """(path, json body) for the i-th request: arithmetic prompts or random observations;
    with ``rows`` > 1 each language-model request carries that many prompts."""
    rng = np.random.default_rng(0)
    if kind == "text":
        from rlseek.envs.text import heldout_prompts

        held = heldout_prompts("rlseek/Arithmetic-v0", n=500, seed=7)["prompts"]
        if rows > 1:
            return lambda i: ("/v1/generate", {"prompts": [held[(i * rows + j) % len(held)] for j in range(rows)]})
        return lambda i: ("/v1/generate", {"prompt": held[i % len(held)]})
    obs = rng.uniform(-1, 1, size=(500, obs_dim)).tolist()
    return lambda i: ("/v1/act", {"observation": obs[i % len(obs)]})


def _percentiles(lat: list[float]) -> dict[str, float | None]:
    if not lat:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None}
    p = np.percentile(np.asarray(lat) * 1000, [50, 95, 99])
    return {"p50_ms": float(p[0]), "p95_ms": float(p[1]), "p99_ms": float(p[2])}


async def closed_loop(base: str, make: Any, clients: int, seconds: float, max_requests: int) -> dict[str, Any]:
    import httpx

    lat: list[float] = []
    codes: dict[int, int] = {}
    counter = iter(range(max_requests))
    stop = time.monotonic() + seconds

    async def client(c: httpx.AsyncClient) -> None:
        for i in counter:
            if time.monotonic() >= stop:
                return
            path, body = make(i)
            t0 = time.perf_counter()
            r = await c.post(base + path, json=body)
            codes[r.status_code] = codes.get(r.status_code, 0) + 1
            if r.status_code == 200:
                lat.append(time.perf_counter() - t0)

    t0 = time.monotonic()
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=clients)) as c:
        await asyncio.gather(*[client(c) for _ in range(clients)])
    wall = time.monotonic() - t0
    return {"answered": len(lat), "wall_s": wall, "throughput_rps": len(lat) / wall,
            "status_codes": codes, **_percentiles(lat)}


def _batch_items(base: str) -> float | None:
    import httpx

    total = count = None
    for line in httpx.get(base + "/metrics").text.splitlines():
        if line.startswith('rlseek_batch_items_sum{policy="stable"}'):
            total = float(line.rsplit(" ", 1)[1])
        if line.startswith('rlseek_batch_items_count{policy="stable"}'):
            count = float(line.rsplit(" ", 1)[1])
    return total / count if total is not None and count else None


def compare(runs: dict[str, Path], args: argparse.Namespace) -> list[dict[str, Any]]:
    from rlseek.serving.policies import load_policy

    rows = []
    for name, run in runs.items():
        pol = load_policy(run)
        make = request_maker(pol.kind, int(np.prod(getattr(pol, "observation_space", None).shape))
                             if pol.kind == "robot" else 0)
        for label, extra in (("dynamic (PID)", ["--target-latency-ms", str(args.target_ms)]),
                             ("batch size 1", ["--batch-size", "1"])):
            with Server(run, *extra, "--queue-batches", "64", "--max-queue", "1024") as srv:
                asyncio.run(closed_loop(srv.base, make, 4, 2.0, 200))  # warm-up
                res = asyncio.run(closed_loop(srv.base, make, args.clients, args.compare_s, args.max_requests))
                res["mean_batch"] = _batch_items(srv.base)
            res.update(policy=name, mode=label)
            rows.append(res)
            print(f"{name:<10} {label:<14} {res['throughput_rps']:8.1f} req/s  p50 {res['p50_ms']:7.1f}  "
                  f"p95 {res['p95_ms']:7.1f}  p99 {res['p99_ms']:7.1f} ms  mean batch "
                  f"{res['mean_batch'] or 0:.1f}  codes {res['status_codes']}", flush=True)
        dyn, one = rows[-2], rows[-1]
        print(f"{name:<10} dynamic / batch 1: throughput {dyn['throughput_rps'] / one['throughput_rps']:.2f} x, "
              f"p95 {dyn['p95_ms'] / one['p95_ms']:.2f} x", flush=True)
    return rows


async def open_loop_steps(base: str, make: Any, levels: list[float], level_s: float) -> list[dict[str, Any]]:
    """Offer each level (requests/s) for level_s seconds; one record per 0.5 s interval."""
    import httpx

    done: list[tuple[float, float, int]] = []  # (finish time, latency, status)
    sizes: list[tuple[float, int, float | None]] = []
    t_start = time.monotonic()
    in_flight = 0

    async def one(c: httpx.AsyncClient, i: int) -> None:
        nonlocal in_flight
        path, body = make(i)
        t0 = time.monotonic()
        try:
            r = await c.post(base + path, json=body)
            status = r.status_code
        except httpx.HTTPError:
            status = 0
        done.append((time.monotonic() - t_start, time.monotonic() - t0, status))
        in_flight -= 1

    async def poll(c: httpx.AsyncClient, until: float) -> None:
        while time.monotonic() < until:
            try:
                h = (await c.get(base + "/healthz")).json()
                sizes.append((time.monotonic() - t_start, int(h["batch_size"]["stable"]),
                              h["p95_ms"]["stable"]))
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.25)

    end = t_start + level_s * len(levels)
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=MAX_IN_FLIGHT)) as c:
        poller = asyncio.create_task(poll(c, end))
        tasks = []
        i = 0
        for k, rate in enumerate(levels):
            level_end = t_start + level_s * (k + 1)
            next_t = time.monotonic()
            while next_t < level_end:
                await asyncio.sleep(max(0.0, next_t - time.monotonic()))
                if in_flight < MAX_IN_FLIGHT:
                    in_flight += 1
                    tasks.append(asyncio.create_task(one(c, i)))
                    i += 1
                next_t += 1.0 / rate
        await asyncio.gather(*tasks)
        await poller
    records = []
    for w in np.arange(0.0, level_s * len(levels), 0.5):
        in_w = [(lat, s) for t, lat, s in done if w <= t < w + 0.5]
        ok = [lat for lat, s in in_w if s == 200]
        bs = [b for t, b, _ in sizes if w <= t < w + 0.5]
        srv = [p for t, _, p in sizes if w <= t < w + 0.5 and p is not None]
        records.append({"t": float(w + 0.5), "offered_rps": levels[min(int(w // level_s), len(levels) - 1)],
                        "answered_rps": len(ok) / 0.5, "rejected_share": (len(in_w) - len(ok)) / len(in_w) if in_w else 0.0,
                        "p95_ms": float(np.percentile(ok, 95) * 1000) if ok else None,
                        "batch_size": float(np.mean(bs)) if bs else None,
                        "server_p95_ms": float(np.mean(srv)) if srv else None})
    return records


def pid_part(run: Path, args: argparse.Namespace) -> dict[str, Any]:
    make = request_maker("text", 0, args.rows_per_request)
    levels = [float(x) for x in args.levels.split(",")]
    with Server(run, "--target-latency-ms", str(args.target_ms)) as srv:
        asyncio.run(closed_loop(srv.base, make, 4, 2.0, 100))  # warm-up
        records = asyncio.run(open_loop_steps(srv.base, make, levels, args.level_s))
    for k, rate in enumerate(levels):
        rec = [r for r in records if r["offered_rps"] == rate and
               k * args.level_s + 2.0 <= r["t"] <= (k + 1) * args.level_s]  # skip 2 s of settling
        p95 = [r["p95_ms"] for r in rec if r["p95_ms"] is not None]
        sp95 = [r["server_p95_ms"] for r in rec if r["server_p95_ms"] is not None]
        bs = [r["batch_size"] for r in rec if r["batch_size"] is not None]
        print(f"offered {rate:6.1f} req/s: answered {np.mean([r['answered_rps'] for r in rec]):6.1f} req/s, "
              f"p95 client {np.median(p95) if p95 else float('nan'):7.1f} ms, server "
              f"{np.median(sp95) if sp95 else float('nan'):7.1f} ms (target {args.target_ms:g}), "
              f"batch {np.mean(bs) if bs else float('nan'):5.1f}, rejected {np.mean([r['rejected_share'] for r in rec]):.2f}",
              flush=True)
    return {"levels": levels, "level_s": args.level_s, "target_ms": args.target_ms,
            "rows_per_request": args.rows_per_request, "records": records}


def plot(pid: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rec = pid["records"]
    t = [r["t"] for r in rec]
    fig, axes = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    axes[0].plot(t, [r["server_p95_ms"] if r["server_p95_ms"] is not None else np.nan for r in rec],
                 label="server p95 (queue + batch; what the PID sees)")
    axes[0].plot(t, [r["p95_ms"] if r["p95_ms"] is not None else np.nan for r in rec], alpha=0.6,
                 label="client p95 (0.5-s windows, HTTP included)")
    axes[0].axhline(pid["target_ms"], color="k", ls="--", label=f"target {pid['target_ms']:g} ms")
    axes[0].set_ylabel("ms")
    axes[0].legend(loc="upper left")
    axes[1].plot(t, [r["batch_size"] if r["batch_size"] is not None else np.nan for r in rec], color="C1")
    axes[1].set_ylabel("batch size (PID)")
    axes[2].plot(t, [r["offered_rps"] for r in rec], color="k", ls="--", label="offered")
    axes[2].plot(t, [r["answered_rps"] for r in rec], color="C2", label="answered (200)")
    axes[2].plot(t, [r["rejected_share"] * r["offered_rps"] for r in rec], color="C3", label="refused (503)")
    axes[2].set_ylabel(f"requests / s ({pid['rows_per_request']} prompts each)")
    axes[2].set_xlabel("seconds")
    axes[2].legend(loc="upper left")
    fig.suptitle("rlseek serve: PID batch controller under stepped load (tiny LM, Arithmetic)")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def _train_tiny(folder: Path) -> tuple[Path, Path]:
    import rlseek

    lm = rlseek.train(ROOT / "examples/configs/arithmetic_lm_ppo.yaml", out=folder / "arith",
                      overrides=["run.total_steps=64", "run.eval_episodes=16", "run.eval_every=0",
                                 "run.checkpoint_every=64"]).path
    robot = rlseek.train(ROOT / "examples/configs/reacher_sac.yaml", out=folder / "reacher",
                         overrides=["run.total_steps=1000", "agent.params.learning_starts=200",
                                    "run.eval_episodes=2", "run.eval_every=1000",
                                    "run.checkpoint_every=1000"]).path
    return lm, robot


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lm-run", type=Path, help="a finished lm-ppo Arithmetic run (default: train a tiny one)")
    p.add_argument("--robot-run", type=Path, help="a finished SB3 Reacher run (default: train a tiny one)")
    p.add_argument("--part", choices=["compare", "pid", "all"], default="all")
    p.add_argument("--clients", type=int, default=32, help="closed-loop clients in the compare part")
    p.add_argument("--compare-s", type=float, default=10.0, help="seconds per compare measurement")
    p.add_argument("--max-requests", type=int, default=20_000, help="requests per compare measurement at most")
    p.add_argument("--target-ms", type=float, default=200.0, help="the servers' --target-latency-ms")
    p.add_argument("--levels", default="1,4,16,4,1", help="offered loads of the pid part, requests/s")
    p.add_argument("--level-s", type=float, default=12.0, help="seconds per offered load")
    p.add_argument("--rows-per-request", type=int, default=8,
                   help="prompts per request in the pid part (so that the model, not HTTP, is the bottleneck)")
    p.add_argument("--out", type=Path, help="write serve_compare.json, serve_pid.json and serve_pid.png here")
    args = p.parse_args()
    from rlseek.runs import atomic_write_json

    with tempfile.TemporaryDirectory() as tmp:
        lm_run, robot_run = args.lm_run, args.robot_run
        if lm_run is None or robot_run is None:
            tiny_lm, tiny_robot = _train_tiny(Path(tmp))
            lm_run, robot_run = lm_run or tiny_lm, robot_run or tiny_robot
        result: dict[str, Any] = {"command": " ".join(sys.argv)}
        if args.part in ("compare", "all"):
            result["compare"] = compare({"tiny LM": lm_run, "Reacher": robot_run}, args)
        if args.part in ("pid", "all"):
            result["pid"] = pid_part(lm_run, args)
    out = args.out or Path(tempfile.gettempdir())
    out.mkdir(parents=True, exist_ok=True)
    if "pid" in result:
        plot(result["pid"], out / "serve_pid.png")
        print(f"wrote {out / 'serve_pid.png'}")
    if args.out:
        for part in ("compare", "pid"):
            if part in result:
                atomic_write_json(out / f"serve_{part}.json", {"command": result["command"], part: result[part]})
                print(f"wrote {out / f'serve_{part}.json'}")


if __name__ == "__main__":
    main()
