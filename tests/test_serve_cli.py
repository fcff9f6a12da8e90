"""``rlseek serve`` as a command: bad arguments (one line, exit 2) and SIGTERM draining."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import httpx
import pytest
from serve_fixtures import arith_run, reacher_run
from servers import ServerProcess, free_port, rlseek_argv

from rlseek.cli import main


def _one_line_error(capsys: pytest.CaptureFixture[str], code: int, needle: str) -> None:
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("args,needle", [
    (["--min-batch", "8", "--max-batch", "4"], "--min-batch <= --max-batch"),
    (["--target-latency-ms", "0"], "--target-latency-ms must be a positive number"),
    (["--shadow"], "--shadow needs --canary"),
    (["--canary-fraction", "2"], "--canary-fraction must be in [0, 1]"),
])
def test_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str) -> None:
    _one_line_error(capsys, main(["serve", str(tmp_path), *args]), needle)


def test_not_a_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _one_line_error(capsys, main(["serve", str(tmp_path)]), "is not an rlseek run directory")


def test_unknown_metric_and_mixed_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    run = str(arith_run())
    code = main(["serve", run, "--canary", run, "--metric", "reward_acuracy"])
    _one_line_error(capsys, code, "did you mean 'reward_accuracy'")
    code = main(["serve", run, "--canary", str(reacher_run())])
    _one_line_error(capsys, code, "both must be of the same kind")
    code = main(["serve", str(reacher_run()), "--canary", str(reacher_run()), "--shadow"])
    _one_line_error(capsys, code, "--shadow needs a language-model policy")


def test_port_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        code = main(["serve", str(reacher_run()), "--port", str(port)])
    _one_line_error(capsys, code, f"cannot listen on 127.0.0.1:{port}")


def test_sigterm_drains_in_flight_requests_then_exits_0(tmp_path: Path) -> None:
    port = free_port()
    server = ServerProcess(rlseek_argv("serve", str(arith_run()), "--port", str(port),
                                       "--batch-size", "1", "--queue-batches", "32"),
                           port=port, log_dir=tmp_path)

    async def load_then_terminate() -> tuple[list[httpx.Response], float, list[float]]:
        done: list[float] = []
        async with httpx.AsyncClient(timeout=120) as client:
            async def one(i: int) -> httpx.Response:
                r = await client.post(server.base + "/v1/generate", json={"prompt": f"{i}+{i}="})
                done.append(time.monotonic())
                return r

            tasks = [asyncio.create_task(one(i)) for i in range(24)]
            while server.proc is not None and len(done) < 1:
                await asyncio.sleep(0.005)
            sent = time.monotonic()
            server.proc.terminate()  # SIGTERM while 23 requests are queued or running
            return list(await asyncio.gather(*tasks)), sent, done

    with server:
        responses, sent, done = asyncio.run(load_then_terminate())
        code = server.proc.wait(timeout=60)
    assert [r.status_code for r in responses] == [200] * 24
    assert max(done) > sent  # some answers came after the signal: they were drained, not lost
    assert code == 0
    assert "drained and stopped" in server.stderr
