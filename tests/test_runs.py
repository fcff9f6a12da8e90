"""Run directories: creation, refusal to overwrite, atomic checkpoints, pruning, finishing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from rlseek.config import config_from_dict
from rlseek.errors import RlseekError
from rlseek.runs import Run, atomic_directory, atomic_write_json


def make_config(keep: int = 3):  # type: ignore[no-untyped-def]
    return config_from_dict(
        {
            "env": {"id": "rlseek/Reacher-v0", "reward": {"distance": 1.0, "control": 0.1}},
            "agent": {"algo": "sac", "params": {"learning_rate": 0.001}},
            "run": {"seed": 7, "keep_checkpoints": keep},
        }
    )


def write_file(name: str, text: str):  # type: ignore[no-untyped-def]
    def write(folder: Path) -> None:
        (folder / name).write_text(text)

    return write


def test_create_writes_config_command_and_meta(tmp_path: Path) -> None:
    cfg = make_config()
    run = Run.create(tmp_path / "run", cfg, command=["rlseek", "train", "a b.yaml"])
    assert yaml.safe_load((run.path / "config.yaml").read_text())["env"]["reward"] == {
        "distance": 1.0,
        "control": 0.1,
    }
    assert (run.path / "command.txt").read_text() == "rlseek train 'a b.yaml'\n"
    meta = json.loads(run.meta_path.read_text())
    assert meta["config_sha256"] == cfg.sha256()
    assert meta["seed"] == 7 and meta["status"] == "running" and meta["end_time"] is None
    assert run.tb_dir.is_dir() and run.checkpoints_dir.is_dir()
    reopened = Run.open(run.path)
    assert reopened.config == cfg


def test_create_refuses_existing_runs_and_non_empty_dirs(tmp_path: Path) -> None:
    run = Run.create(tmp_path / "run", make_config())
    with pytest.raises(RlseekError, match="unfinished run; continue it with --resume"):
        Run.create(run.path, make_config())
    run.finish({"eval": {"mean_return": -3.0}})
    before = {p: p.read_bytes() for p in run.path.rglob("*") if p.is_file()}
    with pytest.raises(RlseekError, match="finished run; it is never overwritten"):
        Run.create(run.path, make_config())
    assert {p: p.read_bytes() for p in run.path.rglob("*") if p.is_file()} == before

    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(RlseekError, match="is not empty"):
        Run.create(other, make_config())
    assert (other / "notes.txt").read_text() == "mine"
    file_out = tmp_path / "file"
    file_out.write_text("x")
    with pytest.raises(RlseekError, match="not a directory"):
        Run.create(file_out, make_config())


def test_create_accepts_an_empty_existing_dir(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    run = Run.create(tmp_path / "empty", make_config())
    assert (run.path / "meta.json").is_file()


def test_open_rejects_a_directory_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(RlseekError, match="not an rlseek run directory"):
        Run.open(tmp_path)


def test_checkpoints_are_listed_by_step_and_pruned(tmp_path: Path) -> None:
    run = Run.create(tmp_path / "run", make_config(keep=2))
    for step in (300, 100, 200, 400):
        ck = run.save_checkpoint(step, write_file("model.txt", f"at {step}"), {"curve": [[step, 1.0]]})
        assert ck.path.name == f"step_{step:012d}"
    steps = [c.step for c in run.checkpoints()]
    # keep=2 keeps the two highest steps on disk, whatever the writing order was.
    assert steps == [300, 400]
    latest = run.latest_checkpoint()
    assert latest is not None and latest.step == 400
    assert (latest.path / "model.txt").read_text() == "at 400"
    assert latest.state["curve"] == [[400, 1.0]] and latest.state["step"] == 400


def test_a_failed_checkpoint_write_leaves_no_trace(tmp_path: Path) -> None:
    run = Run.create(tmp_path / "run", make_config())
    run.save_checkpoint(100, write_file("model.txt", "good"))

    def crash(folder: Path) -> None:
        (folder / "model.txt").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        run.save_checkpoint(200, crash)
    assert [c.step for c in run.checkpoints()] == [100]
    assert sorted(p.name for p in run.checkpoints_dir.iterdir()) == ["step_000000000100"]


def test_overwriting_a_checkpoint_of_the_same_step_is_atomic(tmp_path: Path) -> None:
    run = Run.create(tmp_path / "run", make_config())
    run.save_checkpoint(100, write_file("model.txt", "first"))

    def crash(folder: Path) -> None:
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        run.save_checkpoint(100, crash)
    assert (run.checkpoints()[0].path / "model.txt").read_text() == "first"
    run.save_checkpoint(100, write_file("model.txt", "second"))
    assert (run.checkpoints()[0].path / "model.txt").read_text() == "second"


def test_leftovers_of_a_killed_write_are_ignored(tmp_path: Path) -> None:
    run = Run.create(tmp_path / "run", make_config())
    run.save_checkpoint(100, write_file("model.txt", "ok"))
    # What a SIGKILL mid-write leaves: a temp folder, and a folder whose state never landed.
    (run.checkpoints_dir / ".step_000000000200.abc.tmp").mkdir()
    (run.checkpoints_dir / "step_000000000300").mkdir()
    broken = run.checkpoints_dir / "step_000000000400"
    broken.mkdir()
    (broken / "state.json").write_text("{not json")
    assert [c.step for c in run.checkpoints()] == [100]


def test_atomic_directory_replaces_only_on_success(tmp_path: Path) -> None:
    final = tmp_path / "final"
    with atomic_directory(final) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(ValueError), atomic_directory(final) as tmp:
        (tmp / "a").write_text("2")
        raise ValueError("boom")
    assert (final / "a").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["final"]


def test_atomic_write_json_writes_non_finite_as_null(tmp_path: Path) -> None:
    import numpy as np

    path = tmp_path / "x.json"
    atomic_write_json(path, {"a": float("nan"), "b": [float("inf"), 1.5], "c": np.float32(2.0)})
    assert json.loads(path.read_text()) == {"a": None, "b": [None, 1.5], "c": 2.0}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_finish_fingerprint_and_resume_command(tmp_path: Path) -> None:
    run = Run.create(tmp_path / "run", make_config(), command=["rlseek", "train", "c.yaml"])
    data = tmp_path / "data.bin"
    data.write_bytes(b"rlseek" * 1000)
    digest = run.add_fingerprint("dataset", data)
    assert digest == hashlib.sha256(data.read_bytes()).hexdigest()
    run.append_command(["rlseek", "train", "--resume", "--out", str(run.path)])
    assert (run.path / "command.txt").read_text().splitlines() == [
        "rlseek train c.yaml",
        f"rlseek train --resume --out {run.path}",
    ]
    assert not run.is_finished
    run.finish({"eval": {"mean_return": float("nan")}})
    meta = run.meta
    assert run.is_finished and meta["end_time"] is not None
    assert meta["data"]["dataset"]["sha256"] == digest
    assert json.loads(run.summary_path.read_text()) == {"eval": {"mean_return": None}}
