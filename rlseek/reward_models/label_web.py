"""Label preference pairs in a local web page (``rlseek prefs label --serve``).

The page shows a prompt and two completions side by side (in a seeded random order per pair, so
the file's order cannot lead the person), and takes a choice by click or key: ``1``/``2`` picks
the better side, ``s`` skips the pair, ``u`` undoes the last decision. A progress bar counts the
labelled and skipped pairs.

The output file is the truth, and is never half-written:

* It holds exactly the labels made and not undone, in the order they were made, one TRL
  explicit-format record per line: ``{"prompt", "chosen", "rejected", "pair"}``, where ``pair``
  is the candidate's 0-based position in the ``--data`` file (an extra key, kept as metadata
  and ignored by ``reward-model train``). A candidate without a prompt gets the shared prefix of
  its two texts as prompt, as TRL does when it converts the implicit format.
* Every label is written the moment it is made, before the page is answered: the file is
  rewritten whole to a temporary file that is then renamed over it (and fsynced), so a closed
  browser or a killed server loses nothing and leaves no partial line.
* ``u`` undoes the most recent decision not yet undone. Undoing a label removes it, which is
  always the file's last line (the file is rewritten without it); undoing a skip brings that
  pair back. After a restart the labels already in the file can still be undone, newest first.
* Skips are not written: a pair skipped in one session comes back in the next one.
* Resuming with the same ``--out`` continues with the first pair that has no label. Each line
  of an existing file must match its ``pair`` of ``--data`` (same prompt, same two texts);
  otherwise the labeler refuses to start, so a changed data file cannot mix up labels.

The server binds 127.0.0.1 by default; it has no authentication, so bind another address only
on a network you trust.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from rlseek.errors import DataError, RlseekError
from rlseek.reward_models.data import shared_prefix
from rlseek.runs import atomic_write_text

Candidate = tuple[str | None, str, str]
"""(prompt or None, text a, text b) as read by :func:`rlseek.reward_models.label.read_candidates`."""


def _explicit(candidate: Candidate) -> tuple[str, str, str]:
    """(prompt, completion a, completion b): a missing prompt becomes the shared prefix."""
    prompt, a, b = candidate
    if prompt is not None:
        return prompt, a, b
    common = shared_prefix(a, b)
    # Cut back to a word boundary so neither completion starts mid-word.
    cut = max(common.rfind(" "), 0)
    return a[:cut], a[cut:], b[cut:]


@dataclass
class LabelSession:
    """The labelling state of one ``--data`` file and one ``--out`` file (thread-safe).

    Attributes:
        candidates: the pairs to label, in file order.
        out: the labels file (created on the first label; resumed when it exists).
        seed: seeds the per-pair order of the two sides shown.
    """

    candidates: list[Candidate]
    out: Path
    seed: int = 0
    labels: list[dict[str, Any]] = field(default_factory=list)
    history: list[tuple[str, int]] = field(default_factory=list)
    skipped: set[int] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.out.exists():
            self.labels = self._read_existing()
            self.history = [("label", rec["pair"]) for rec in self.labels]

    def _read_existing(self) -> list[dict[str, Any]]:
        if not self.out.is_file():
            raise DataError(f"output {self.out} exists and is not a file")
        labels: list[dict[str, Any]] = []
        seen: dict[int, int] = {}
        text = self.out.read_text(encoding="utf-8")
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{self.out}, line {lineno}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: malformed JSON ({exc.msg} at column {exc.colno}); "
                                "resume needs a file this labeler wrote") from None
            k = rec.get("pair") if isinstance(rec, dict) else None
            if isinstance(k, bool) or not isinstance(k, int):
                raise DataError(f"{where}: no integer 'pair' field; resume needs a file this "
                                "labeler wrote (or choose a new --out)")
            if not 0 <= k < len(self.candidates):
                raise DataError(f"{where}: pair {k} is outside the {len(self.candidates)} pairs "
                                "of --data; was the data file changed?")
            prompt, a, b = _explicit(self.candidates[k])
            if rec.get("prompt") != prompt or {rec.get("chosen"), rec.get("rejected")} != {a, b}:
                raise DataError(f"{where}: its texts differ from pair {k} of --data; was the data "
                                "file changed? (choose a new --out to start over)")
            if k in seen:
                raise DataError(f"{where}: pair {k} is labelled twice (also line {seen[k]})")
            seen[k] = lineno
            labels.append(rec)
        return labels

    # -- what the page shows ----------------------------------------------------------------
    def _sides(self, k: int) -> tuple[str, str, str, bool]:
        prompt, a, b = _explicit(self.candidates[k])
        swap = bool(np.random.default_rng([self.seed, k]).random() < 0.5)
        return (prompt, b, a, swap) if swap else (prompt, a, b, swap)

    def _current(self) -> int | None:
        done = {rec["pair"] for rec in self.labels}
        for k in range(len(self.candidates)):
            if k not in done and k not in self.skipped:
                return k
        return None

    def state(self) -> dict[str, Any]:
        """What the page shows: progress counts and the current pair (``None`` when done)."""
        with self._lock:
            return self._state()

    def _state(self) -> dict[str, Any]:
        k = self._current()
        pair = None
        if k is not None:
            prompt, left, right, _ = self._sides(k)
            pair = {"id": k, "prompt": prompt, "left": left, "right": right}
        return {"total": len(self.candidates), "labelled": len(self.labels),
                "skipped": len(self.skipped), "can_undo": bool(self.history),
                "out": str(self.out), "pair": pair}

    # -- decisions --------------------------------------------------------------------------
    def _check_current(self, k: int) -> None:
        cur = self._current()
        if k != cur:
            raise ValueError(f"pair {k} is not the current pair ({cur}); reload the page")

    def choose(self, k: int, side: int) -> dict[str, Any]:
        """Label pair ``k``: ``side`` 1 (left) or 2 (right) is the better text; written at once."""
        with self._lock:
            if side not in (1, 2):
                raise ValueError(f"side must be 1 or 2, got {side}")
            self._check_current(k)
            prompt, left, right, _ = self._sides(k)
            chosen, rejected = (left, right) if side == 1 else (right, left)
            rec = {"prompt": prompt, "chosen": chosen, "rejected": rejected, "pair": k}
            self._write(self.labels + [rec])
            self.labels.append(rec)
            self.history.append(("label", k))
            return self._state()

    def skip(self, k: int) -> dict[str, Any]:
        """Skip pair ``k`` for this session (nothing is written)."""
        with self._lock:
            self._check_current(k)
            self.skipped.add(k)
            self.history.append(("skip", k))
            return self._state()

    def undo(self) -> dict[str, Any]:
        """Undo the most recent decision (see the module doc); a no-op when there is none."""
        with self._lock:
            if self.history:
                kind, k = self.history[-1]
                if kind == "label":
                    self._write(self.labels[:-1])
                    self.labels.pop()
                else:
                    self.skipped.discard(k)
                self.history.pop()
            return self._state()

    def _write(self, labels: list[dict[str, Any]]) -> None:
        atomic_write_text(self.out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in labels))


def page_html() -> str:
    """The labelling page (a static asset next to this module)."""
    return resources.files("rlseek.reward_models").joinpath("label_web.html").read_text(encoding="utf-8")


def create_app(session: LabelSession) -> Any:
    """The FastAPI app: ``GET /`` the page, ``GET /api/state``, ``POST /api/{choose,skip,undo}``."""
    from fastapi import Body, FastAPI, HTTPException
    from fastapi.responses import HTMLResponse

    app = FastAPI(title="rlseek preference labeler", docs_url=None, redoc_url=None, openapi_url=None)
    html = page_html()

    def guarded(fn: Any, *args: Any) -> dict[str, Any]:
        try:
            return fn(*args)
        except ValueError as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from None
        except OSError as exc:
            raise HTTPException(status_code=500, detail=f"could not write {session.out}: {exc}") from None

    def _int(body: dict[str, Any], key: str) -> int:
        v = body.get(key)
        if isinstance(v, bool) or not isinstance(v, int):
            raise HTTPException(status_code=422, detail=f"field '{key}' must be an integer")
        return v

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return html

    @app.get("/api/state")
    def state() -> dict[str, Any]:
        return session.state()

    @app.post("/api/choose")
    def choose(body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        return guarded(session.choose, _int(body, "pair"), _int(body, "side"))

    @app.post("/api/skip")
    def skip(body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        return guarded(session.skip, _int(body, "pair"))

    @app.post("/api/undo")
    def undo() -> dict[str, Any]:
        return guarded(session.undo)

    return app


class LabelServer:
    """uvicorn serving :func:`create_app` on ``host:port`` (0 = a free port), in this thread or another.

    The socket is bound and listening once the constructor returns, so ``url`` can be opened
    before serving starts.
    """

    def __init__(self, session: LabelSession, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        if not 0 <= port <= 65535:
            raise RlseekError(f"--port must be in 0..65535, got {port}")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
            # Listening now lets a browser connect (and wait in the backlog) as soon as the
            # URL is printed, before uvicorn's loop runs.
            self.sock.listen(128)
        except OSError as exc:
            self.sock.close()
            raise RlseekError(f"cannot listen on {host}:{port}: {exc.strerror}; "
                              "choose another --port (0 picks a free one)") from None
        self.port = self.sock.getsockname()[1]
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        self.url = f"http://{shown}:{self.port}/"
        config = uvicorn.Config(create_app(session), log_level="warning", access_log=False,
                                lifespan="off")
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def serve(self) -> None:
        """Serve until interrupted (Ctrl-C) or :meth:`stop`."""
        try:
            self.server.run(sockets=[self.sock])
        finally:
            self.sock.close()

    def start(self, timeout: float = 60.0) -> LabelServer:
        """Serve in a background thread; returns once the server accepts connections."""
        self._thread = threading.Thread(target=self.serve, name="rlseek-label-web", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the labeling server at {self.url} did not start")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to exit and wait for its thread."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> LabelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_labels(candidates: list[Candidate], out: str | Path, host: str = "127.0.0.1",
                 port: int = 0, seed: int = 0) -> LabelSession:
    """Run the labeling page until Ctrl-C (the CLI's ``--serve``); prints the URL first."""
    session = LabelSession(candidates, Path(out), seed=seed)
    server = LabelServer(session, host, port)
    st = session.state()
    resumed = f", resuming with {st['labelled']} labels already in {out}" if st["labelled"] else ""
    print(f"labeling {st['total']} pairs into {out}{resumed}", flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.stderr.write(f"warning: listening on {host}, reachable from other machines; "
                         "the page has no authentication\n")
    print(f"open {server.url} (Ctrl-C stops; every label is already saved)", flush=True)
    if threading.current_thread() is threading.main_thread():
        # uvicorn re-raises the signal it caught once it has shut down; with this handler a
        # SIGTERM ends the labeler like Ctrl-C does, with exit code 0.
        signal.signal(signal.SIGTERM, lambda *_: None)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve()
    st = session.state()
    print(f"stopped: {st['labelled']} labels in {out}", flush=True)
    return session
