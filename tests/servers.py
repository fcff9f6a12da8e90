"""Start and stop HTTP servers in tests: in a thread (any ASGI app) or as a subprocess (any
command line). Generic on purpose: any rlseek web component's tests can use them.

Every server binds 127.0.0.1 on a port the test picks with :func:`free_port`, and every
context manager stops its server on exit, whatever the test did.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout_s: float = 60.0, proc: subprocess.Popen[Any] | None = None) -> None:
    """Poll ``url`` until it answers 200; fail after ``timeout_s`` or when ``proc`` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout_s} s")


@contextlib.contextmanager
def threaded_server(app: Any, *, port: int | None = None, health: str = "/healthz",
                    timeout_s: float = 60.0) -> Iterator[str]:
    """Serve an ASGI ``app`` with uvicorn in a background thread; yields the base URL.

    The lifespan (startup and shutdown) runs as in production; on exit the server is asked to
    stop and the thread joined.
    """
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + health, timeout_s)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30)


class ServerProcess:
    """A server started as a subprocess (``argv``), with its stdout/stderr captured to files."""

    def __init__(self, argv: Sequence[str], *, port: int, health: str = "/healthz",
                 cwd: Path = ROOT, env: dict[str, str] | None = None, log_dir: Path | None = None) -> None:
        self.argv = list(argv)
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.health = health
        self.cwd = cwd
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **(env or {})}
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 120.0) -> ServerProcess:
        import tempfile

        folder = self.log_dir or Path(tempfile.mkdtemp(prefix="server-"))
        self._out = open(folder / "stdout.txt", "wb")  # noqa: SIM115 (closed in stop())
        self._err = open(folder / "stderr.txt", "wb")  # noqa: SIM115
        self.stdout_path, self.stderr_path = folder / "stdout.txt", folder / "stderr.txt"
        self.proc = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdout=self._out,
                                     stderr=self._err)
        try:
            wait_http(self.base + self.health, timeout_s, self.proc)
        except BaseException:
            self.stop()
            raise
        return self

    def terminate(self, timeout_s: float = 60.0) -> int:
        """Send SIGTERM and wait for the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout_s)

    def stop(self) -> None:
        """Stop the process if it still runs (SIGTERM, then SIGKILL) and close its logs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (getattr(self, "_out", None), getattr(self, "_err", None)):
            if f is not None:
                f.close()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def rlseek_argv(*args: str) -> list[str]:
    """``python -m rlseek.cli ARGS`` with this interpreter."""
    return [sys.executable, "-m", "rlseek.cli", *args]
