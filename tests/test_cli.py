"""`rlseek train` / `rlseek eval` on bad input: exit code 2, one stderr line, nothing touched.

Every case snapshots the whole working folder (bytes and mtimes) before and after, so a
command that wrote, rewrote or left behind anything fails the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rlseek.cli import main
from rlseek.config import config_from_dict
from rlseek.runs import Run

GOOD = {
    "env": {"id": "rlseek/Reacher-v0"},
    "agent": {"algo": "sac", "params": {"learning_starts": 10, "policy_kwargs": {"net_arch": [8]}}},
    "run": {"total_steps": 64, "eval_every": 64, "eval_episodes": 1, "checkpoint_every": 64},
}


def with_changes(**sections: dict) -> dict:
    data = {k: dict(v) for k, v in GOOD.items()}
    for name, fields in sections.items():
        data[name].update(fields)
    return data


def snapshot(root: Path) -> dict[str, tuple[bytes, int] | None]:
    return {
        str(p.relative_to(root)): ((p.read_bytes(), p.stat().st_mtime_ns) if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "good.yaml").write_text(yaml.safe_dump(GOOD))
    # A run that finished, and one that was interrupted before its first checkpoint.
    cfg = config_from_dict(GOOD)
    finished = Run.create(tmp_path / "finished", cfg, command=["rlseek", "train", "good.yaml"])
    finished.final_dir.mkdir()
    (finished.final_dir / "model.zip").write_bytes(b"not touched")
    finished.finish({"eval": {"mean_return": -5.0}})
    Run.create(tmp_path / "no_ckpt", cfg, command=["rlseek", "train", "good.yaml"])
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("mine")
    return tmp_path


def run_main(argv: list[str]) -> int:
    """``main(argv)``'s exit code, also when argparse exits by itself."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def write(workdir: Path, name: str, data: dict | str) -> str:
    path = workdir / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return str(path)


CASES = {
    # name: (config file content or None, extra argv, expected fragment of the message)
    "unknown env id": (with_changes(env={"id": "rlseek/Reachr-v0"}), [], "unknown env id 'rlseek/Reachr-v0' (did you mean 'rlseek/Reacher-v0'?)"),
    "unknown algo": (with_changes(agent={"algo": "sacc"}), [], "unknown algo 'sacc' (did you mean 'sac'?)"),
    "unknown reward term": (with_changes(env={"id": "rlseek/Reacher-v0", "reward": {"distanse": 1.0}}), [], "unknown reward term 'distanse' (did you mean 'distance'?)"),
    "term the env cannot feed": (with_changes(env={"id": "rlseek/Reacher-v0", "reward": {"forward": 1.0}}), [], "reward term 'forward'"),
    "malformed yaml": ("env: {id: rlseek/Reacher-v0\nagent: [\n", [], "malformed YAML"),
    "wrong field type": (with_changes(run={"total_steps": "many"}), [], "field 'run.total_steps' must be an integer"),
    "non-finite weight": ("env: {id: rlseek/Reacher-v0, reward: {distance: 1.0, control: .inf}}\nagent: {algo: sac}\n", [], "'env.reward.control' must be finite"),
    "non-finite weight via --set": (GOOD, ["--set", "env.reward.control=.nan"], "'env.reward.control' must be finite"),
    "all-zero weights": (with_changes(env={"id": "rlseek/Reacher-v0", "reward": {"distance": 0.0}}), [], "all zero"),
    "unknown agent param": (with_changes(agent={"algo": "sac", "params": {"gama": 0.9}}), [], "unknown agent.params.gama for algo 'sac' (did you mean 'gamma'?)"),
    "bad agent param value": (with_changes(agent={"algo": "sac", "params": {"batch_size": "big"}}), [], "agent.params.batch_size must be a number"),
    "dqn on continuous actions": (with_changes(agent={"algo": "dqn", "params": {}}), [], "needs a discrete action space"),
    "malformed --set": (GOOD, ["--set", "run.seed"], "expected KEY=VALUE"),
    "one-task sequence": (with_changes(run={"tasks": [{"total_steps": 64}]}), [], "'run.tasks' must be a list of at least 2 tasks"),
    "sequence on an algo without hooks": (with_changes(agent={"algo": "ppo", "params": {}}, run={"tasks": [{}, {}]}), [], "run.tasks is not supported by algo 'ppo'"),
    "unknown env id in a task": (with_changes(run={"tasks": [{"env": "rlseek/Reachr-v0"}, {}]}), [], "unknown env id 'rlseek/Reachr-v0'"),
    "missing config file": (None, [], "config file not found"),
    "out is an existing finished run": (GOOD, ["--out", "{w}/finished"], "holds a finished run; it is never overwritten"),
    "out is an unfinished run": (GOOD, ["--out", "{w}/no_ckpt"], "continue it with --resume"),
    "out is a non-empty folder": (GOOD, ["--out", "{w}/notes"], "is not empty"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_train_bad_input(case: str, workdir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    content, extra, fragment = CASES[case]
    config = write(workdir, "case.yaml", content) if content is not None else str(workdir / "absent.yaml")
    extra = [a.replace("{w}", str(workdir)) for a in extra]
    if "--out" not in extra:
        extra += ["--out", str(workdir / "new_run")]
    before = snapshot(workdir)
    rc = run_main(["train", config, *extra])
    out, err = capfd.readouterr()
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("rlseek: error: ") and fragment in lines[0]
    assert "Traceback" not in err + out
    assert snapshot(workdir) == before  # nothing written, nothing partial left behind


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["train", "--resume", "--out", "{w}/no_ckpt"], "has no complete checkpoint to resume from"),
        (["train", "--resume", "--out", "{w}/finished"], "already finished; nothing to resume"),
        (["train", "--resume", "--out", "{w}/notes"], "is not an rlseek run directory"),
        (["train", "--resume"], "--resume needs --out"),
        (["train"], "train needs CONFIG"),
        (["train", "{w}/good.yaml", "--bogus"], "unrecognized arguments: --bogus"),
        (["eval", "{w}/notes"], "is not an rlseek run directory"),
        (["eval", "{w}/no_ckpt"], "no final/model.zip and no checkpoint"),
        (["eval", "{w}/finished", "--episodes", "0"], "--episodes must be >= 1"),
        (["eval", "{w}/finished", "--set", "env.reward.control=.inf"], "'env.reward.control' must be finite"),
    ],
)
def test_resume_and_eval_bad_input(
    argv: list[str], fragment: str, workdir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(workdir)
    rc = run_main([a.replace("{w}", str(workdir)) for a in argv])
    out, err = capfd.readouterr()
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], err
    assert "Traceback" not in err + out
    assert snapshot(workdir) == before


def test_bad_input_in_a_fresh_process_prints_one_line(workdir: Path) -> None:
    # A fresh interpreter sees every import-time message (library notices, warnings).
    config = write(workdir, "case.yaml", with_changes(env={"id": "rlseek/Reacher-v0", "reward": {"distanse": 1.0}}))
    before = snapshot(workdir)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "rlseek.cli", "train", config, "--out", str(workdir / "new_run")],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        proc.stderr.strip()
    ] and "unknown reward term 'distanse'" in proc.stderr
    assert proc.stdout == ""
    assert snapshot(workdir) == before
