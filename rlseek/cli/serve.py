"""``rlseek serve RUN_DIR ...``: serve a run's final policy over HTTP (see :mod:`rlseek.serving`)."""

from __future__ import annotations

import argparse
import logging
import math
import signal
import socket
import sys
from typing import Any

from rlseek.errors import RlseekError


def register_cli(sub: Any) -> None:
    """Add the ``serve`` subcommand to the ``rlseek`` parser."""
    s = sub.add_parser("serve", help="serve a run's final policy over HTTP (dynamic batching, int8, canary)",
                       description="Serve the final policy of a finished run: POST /v1/act (robot) or "
                                   "/v1/generate (language model), GET /healthz, /metrics, /docs.")
    s.add_argument("run_dir", help="a finished rlseek run directory (only serve runs you produced: "
                                   "SB3 model zips are pickles)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine only)")
    s.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    s.add_argument("--quantize", choices=["none", "int8"], default="none",
                   help="int8: dynamic int8 quantization of every Linear layer (CPU)")
    s.add_argument("--target-latency-ms", type=float, default=200.0,
                   help="p95 latency the PID batch controller aims at, ms (default 200)")
    s.add_argument("--min-batch", type=int, default=4, help="smallest dynamic batch size (default 4)")
    s.add_argument("--max-batch", type=int, default=64, help="largest dynamic batch size (default 64)")
    s.add_argument("--batch-size", type=int, default=None,
                   help="fix the batch size instead of the PID controller (e.g. 1)")
    s.add_argument("--max-queue", type=int, default=256,
                   help="items the queue holds at most; beyond it requests get 503 (default 256)")
    s.add_argument("--queue-batches", type=int, default=2,
                   help="batches of the current size the queue holds at most (default 2)")
    s.add_argument("--kp", type=float, default=0.5, help="PID proportional gain (default 0.5)")
    s.add_argument("--ki", type=float, default=0.1, help="PID integral gain per batch (default 0.1)")
    s.add_argument("--kd", type=float, default=0.05, help="PID derivative gain per batch (default 0.05)")
    s.add_argument("--canary", metavar="RUN_B", help="a second run to route a fraction of traffic to")
    s.add_argument("--canary-fraction", type=float, default=0.1, help="share of requests for the canary (default 0.1)")
    s.add_argument("--shadow", action="store_true",
                   help="shadow mode: the canary also answers its share, only the stable answer is returned")
    s.add_argument("--metric", default="reward_total",
                   help="canary metric: reward_total or reward_<term> of the env's reward (default reward_total)")
    s.add_argument("--rollback-drop", type=float, default=0.05,
                   help="roll back when the canary's mean metric is this share below the stable's (default 0.05)")
    s.add_argument("--canary-window", type=int, default=200, help="requests in each rolling window (default 200)")
    s.add_argument("--canary-min-samples", type=int, default=50,
                   help="requests per policy before a rollback can trigger (default 50)")
    s.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    s.add_argument("--seed", type=int, default=0, help="seeds routing and sampling (default 0)")
    s.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"],
                   help="uvicorn's log level (default warning; rollbacks are always logged)")
    s.set_defaults(func=cmd_serve)


def _check_args(a: argparse.Namespace) -> None:
    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise RlseekError(msg)

    need(0 <= a.port <= 65535, f"--port must be in 0..65535, got {a.port}")
    need(math.isfinite(a.target_latency_ms) and a.target_latency_ms > 0,
         f"--target-latency-ms must be a positive number, got {a.target_latency_ms}")
    need(1 <= a.min_batch <= a.max_batch, f"need 1 <= --min-batch <= --max-batch, got {a.min_batch} and {a.max_batch}")
    need(a.batch_size is None or a.batch_size >= 1, f"--batch-size must be >= 1, got {a.batch_size}")
    need(a.max_queue >= 1 and a.queue_batches >= 1, "--max-queue and --queue-batches must be >= 1")
    for name in ("kp", "ki", "kd"):
        need(math.isfinite(getattr(a, name)), f"--{name} must be a finite number")
    need(0.0 <= a.canary_fraction <= 1.0, f"--canary-fraction must be in [0, 1], got {a.canary_fraction}")
    need(0.0 <= a.rollback_drop < 1.0, f"--rollback-drop must be in [0, 1), got {a.rollback_drop}")
    need(1 <= a.canary_min_samples <= a.canary_window,
         f"need 1 <= --canary-min-samples <= --canary-window, got {a.canary_min_samples} and {a.canary_window}")
    need(a.threads >= 1, f"--threads must be >= 1, got {a.threads}")
    need(not (a.canary is None and a.shadow), "--shadow needs --canary RUN_B")


def _check_metric(policy: Any, metric: str, shadow: bool) -> None:
    if policy.kind == "robot":
        if shadow:
            raise RlseekError("--shadow needs a language-model policy: a robot action's metric is known "
                              "only once the action is executed, and shadow actions never are")
        return
    terms = sorted(policy.scorer.reward_fn.weights)
    known = ["reward_total", *(f"reward_{t}" for t in terms)]
    if metric not in known:
        from rlseek.errors import did_you_mean

        raise RlseekError(f"--metric '{metric}' is not scored by {policy.env_id}"
                          f"{did_you_mean(metric, known)}; known: {', '.join(known)}")


def _listen(host: str, port: int) -> socket.socket:
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(info[0], socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(info[4])
        sock.listen(2048)
    except OSError as exc:
        raise RlseekError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
                          "choose another --port (0 picks a free one)") from None
    sock.set_inheritable(True)
    return sock


def cmd_serve(args: argparse.Namespace) -> int:
    """Load the policies, bind the socket, serve until SIGTERM/SIGINT, drain, exit 0."""
    import torch
    import uvicorn

    from rlseek.serving.app import PolicyServer, ServeOptions, create_app
    from rlseek.serving.policies import load_policy

    _check_args(args)
    torch.set_num_threads(args.threads)
    stable = load_policy(args.run_dir, quantize=args.quantize, seed=args.seed)
    canary = load_policy(args.canary, quantize=args.quantize, seed=args.seed + 1) if args.canary else None
    if canary is not None:
        _check_metric(stable, args.metric, args.shadow)
    options = ServeOptions(
        target_latency_ms=args.target_latency_ms, min_batch=args.min_batch, max_batch=args.max_batch,
        fixed_batch=args.batch_size, max_queue=args.max_queue, queue_batches=args.queue_batches,
        kp=args.kp, ki=args.ki, kd=args.kd, canary_fraction=args.canary_fraction,
        canary_mode="shadow" if args.shadow else "canary", metric=args.metric,
        rollback_drop=args.rollback_drop, canary_window=args.canary_window,
        canary_min_samples=args.canary_min_samples, seed=args.seed,
    )
    server = PolicyServer(stable, options, canary)
    sock = _listen(args.host, args.port)
    host, port = sock.getsockname()[:2]
    logging.basicConfig(level=logging.INFO, format="rlseek serve: %(message)s", stream=sys.stderr)
    logging.getLogger("rlseek.serve").setLevel(logging.INFO)
    config = uvicorn.Config(create_app(server), log_level=args.log_level, access_log=False,
                            timeout_graceful_shutdown=30)
    uv = uvicorn.Server(config)
    # uvicorn re-raises the signal it caught once it has shut down; with this handler in place
    # that re-raise is a no-op and a drained server exits 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    print(f"serving {args.run_dir} ({stable.kind}, {stable.env_id}) on http://{host}:{port} "
          f"(OpenAPI page: /docs)", flush=True)
    uv.run(sockets=[sock])
    print("rlseek serve: drained and stopped", file=sys.stderr, flush=True)
    return 0
