"""Run directories: config, command, meta, TensorBoard logs, atomic checkpoints, summary.

Layout::

    RUN/
      config.yaml      the resolved config (env reward weights filled in)
      command.txt      the command line that started (and resumed) the run
      meta.json        rlseek version, git revision, config sha256, data fingerprints, seed,
                       start/end times, status ("running" | "finished")
      tb/              TensorBoard event files
      checkpoints/     step_000000005000/ ...  each written to a temp dir, then renamed
      final/           the trained policy
      summary.json     the figures the run produced, its evaluation included

Every file rlseek writes here is written atomically (temp file + rename), so a run killed at
any instant leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlseek.config import ExperimentConfig, config_from_dict, dump_config, read_yaml
from rlseek.errors import RlseekError

CHECKPOINT_PREFIX = "step_"


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()
STATE_FILE = "state.json"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Atomically write UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON (NaN is written as null)."""
    atomic_write_text(path, json.dumps(_json_safe(obj), indent=2, sort_keys=False) + "\n")


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        with contextlib.suppress(Exception):
            return _json_safe(obj.item())
    if isinstance(obj, Path):
        return str(obj)
    return obj


@contextlib.contextmanager
def atomic_directory(final: str | Path) -> Iterator[Path]:
    """Yield a temp directory next to ``final``; on success it is renamed to ``final``.

    If ``final`` already exists it is replaced only after the new one is complete.
    On error the temp directory is removed and ``final`` is untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes 0700; give the usual folder mode
    try:
        yield tmp
        _fsync_dir(tmp)
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_new_output(path: str | Path, what: str, force: bool = False) -> None:
    """Refuse to write ``path`` when it exists (``force`` allows replacing a *file*, never a folder).

    ``what`` names the output in the error ("model directory", "output file").
    """
    path = Path(path)
    if path.exists() and not (force and path.is_file()):
        hint = "" if path.is_dir() else " (pass --force to replace it)"
        raise RlseekError(f"{what} {path} already exists; choose a new path{hint}")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file's bytes (data fingerprints)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def git_revision() -> str | None:
    """The git revision of the rlseek source tree, if it is a git checkout."""
    here = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint on disk: its step count, folder and saved state."""

    step: int
    path: Path
    state: dict[str, Any]


class Run:
    """A run directory (see module docstring). Create with :meth:`create`, reopen with :meth:`open`."""

    def __init__(self, path: Path, config: ExperimentConfig) -> None:
        self.path = Path(path)
        self.config = config
        self.tracker: Any = None
        """This session's MLflow record (:class:`rlseek.tracking.Tracker`), set by
        ``rlseek.tracking.open_run_tracker``; None when the run is not tracked."""

    # -- paths -------------------------------------------------------------------------------
    @property
    def tb_dir(self) -> Path:
        return self.path / "tb"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def final_dir(self) -> Path:
        return self.path / "final"

    @property
    def meta_path(self) -> Path:
        return self.path / "meta.json"

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.json"

    # -- creation ----------------------------------------------------------------------------
    @classmethod
    def create(cls, out: str | Path, config: ExperimentConfig, command: list[str] | None = None) -> Run:
        """Start a new run in ``out``; refuses to touch a directory that holds anything."""
        out = Path(out)
        if out.exists():
            if not out.is_dir():
                raise RlseekError(f"--out {out} exists and is not a directory; choose a new path")
            if (out / "meta.json").exists():
                status = _read_json(out / "meta.json").get("status")
                if status == "finished":
                    raise RlseekError(
                        f"--out {out} holds a finished run; it is never overwritten — choose a new --out"
                    )
                raise RlseekError(
                    f"--out {out} holds an unfinished run; continue it with --resume or choose a new --out"
                )
            if any(out.iterdir()):
                raise RlseekError(f"--out {out} is not empty; choose a new or empty directory")
        out.mkdir(parents=True, exist_ok=True)
        run = cls(out, config)
        atomic_write_text(out / "config.yaml", dump_config(config))
        atomic_write_text(out / "command.txt", _command_line(command) + "\n")
        from rlseek._version import __version__

        atomic_write_json(
            run.meta_path,
            {
                "rlseek_version": __version__,
                "git_revision": git_revision(),
                "python": sys.version.split()[0],
                "config_sha256": config.sha256(),
                "seed": config.run.seed,
                "env_id": config.env.id,
                "algo": config.agent.algo,
                "data": {},
                "start_time": _now(),
                "end_time": None,
                "status": "running",
            },
        )
        run.tb_dir.mkdir(exist_ok=True)
        run.checkpoints_dir.mkdir(exist_ok=True)
        return run

    @classmethod
    def open(cls, path: str | Path) -> Run:
        """Reopen an existing run directory (for --resume and eval)."""
        path = Path(path)
        if not (path / "config.yaml").is_file() or not (path / "meta.json").is_file():
            raise RlseekError(
                f"{path} is not an rlseek run directory (it needs config.yaml and meta.json)"
            )
        config = config_from_dict(read_yaml(path / "config.yaml"), source=str(path / "config.yaml"))
        return cls(path, config)

    # -- meta --------------------------------------------------------------------------------
    @property
    def meta(self) -> dict[str, Any]:
        return _read_json(self.meta_path)

    def update_meta(self, **fields: Any) -> None:
        """Merge ``fields`` into meta.json (atomically)."""
        meta = self.meta
        meta.update(fields)
        atomic_write_json(self.meta_path, meta)

    def add_fingerprint(self, name: str, path: str | Path) -> str:
        """Record the sha256 of a data file the run used; returns the digest."""
        digest = sha256_file(path)
        meta = self.meta
        meta.setdefault("data", {})[name] = {"path": str(path), "sha256": digest}
        atomic_write_json(self.meta_path, meta)
        return digest

    def append_command(self, command: list[str] | None = None) -> None:
        """Record a resume command under the original one."""
        prev = (self.path / "command.txt").read_text() if (self.path / "command.txt").exists() else ""
        atomic_write_text(self.path / "command.txt", prev + _command_line(command) + "\n")

    @property
    def is_finished(self) -> bool:
        return self.meta.get("status") == "finished"

    def finish(self, summary: dict[str, Any]) -> None:
        """Write summary.json, then mark the run finished in meta.json."""
        atomic_write_json(self.summary_path, summary)
        self.update_meta(status="finished", end_time=_now())

    # -- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(
        self, step: int, write: Callable[[Path], None], state: dict[str, Any] | None = None
    ) -> Checkpoint:
        """Write a checkpoint atomically: ``write(tmpdir)`` saves the agent's files, then the
        folder (with ``state.json``) is renamed into place. Keeps the newest ``keep_checkpoints``.
        """
        final = self.checkpoints_dir / f"{CHECKPOINT_PREFIX}{int(step):012d}"
        state = {"step": int(step), "time": _now(), **(state or {})}
        with atomic_directory(final) as tmp:
            write(tmp)
            atomic_write_json(tmp / STATE_FILE, state)
        keep = max(1, int(self.config.run.keep_checkpoints))
        for old in self.checkpoints()[:-keep]:
            shutil.rmtree(old.path, ignore_errors=True)
        return Checkpoint(int(step), final, state)

    def checkpoints(self) -> list[Checkpoint]:
        """Complete checkpoints on disk, oldest first (temp folders and broken ones skipped)."""
        out: list[Checkpoint] = []
        if not self.checkpoints_dir.is_dir():
            return out
        for p in self.checkpoints_dir.iterdir():
            if not p.is_dir() or not p.name.startswith(CHECKPOINT_PREFIX):
                continue
            try:
                state = json.loads((p / STATE_FILE).read_text())
                out.append(Checkpoint(int(state["step"]), p, state))
            except (OSError, ValueError, KeyError):
                continue
        return sorted(out, key=lambda c: c.step)

    def latest_checkpoint(self) -> Checkpoint | None:
        """The newest complete checkpoint, or None."""
        cps = self.checkpoints()
        return cps[-1] if cps else None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise RlseekError(f"cannot read {path}: {exc}") from None


def _command_line(command: list[str] | None) -> str:
    import shlex

    argv = command if command is not None else ["rlseek", *sys.argv[1:]]
    return " ".join(shlex.quote(a) for a in argv)
