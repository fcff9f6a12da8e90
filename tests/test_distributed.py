"""Distributed training under torchrun: 2 CPU processes on gloo against 1 process.

The main tests launch ``torchrun --nproc-per-node 2 -m rlseek ...`` and check that the weights
after training equal a one-process run with the same global batch (lm-ppo and Bradley-Terry
reward models), that only one run directory was written, and that meta.json records the world.
The launch checks (a world size that does not divide the batch, a strategy the agent or
device does not support) fail before any process group exists, so they are tested in-process
with torchrun's environment variables set. Slow: a SIGKILLed rank, then ``--resume``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file
from test_reward_model_fixtures import build_tiny_backbone, sentiment_pairs, write_jsonl

from rlseek.cli import main

ROOT = Path(__file__).resolve().parent.parent
TOL = 1e-4

# Batch-level reward terms (diversity's distinct-n over the batch) are computed over each
# rank's own completions, so the equality checks weight per-completion terms only.
CONFIG = {
    "env": {"id": "rlseek/Arithmetic-v0", "kwargs": {"max_new_tokens": 6},
            "reward": {"accuracy": 0.9, "efficiency": 0.1}},
    "agent": {"algo": "lm-ppo", "params": {"ppo_epochs": 2, "num_minibatches": 4, "grad_accum_steps": 2,
                                           "learning_rate": 1e-3}},
    "run": {"total_steps": 8, "n_envs": 8, "eval_episodes": 4, "checkpoint_every": 8, "eval_every": 100,
            "seed": 3, "tracking": False, "torch_threads": 1, "distributed": {"strategy": "ddp"}},
}


def write_config(folder: Path, run: dict | None = None, **sections: dict) -> Path:
    cfg = json.loads(json.dumps(CONFIG))
    cfg["run"].update(run or {})
    for key, value in sections.items():
        cfg[key].update(value)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def torchrun(args: list[str], cwd: Path, nproc: int = 2, **popen) -> subprocess.Popen[bytes]:
    """``torchrun --standalone --nproc-per-node N -m rlseek ARGS`` on this checkout's code."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RLSEEK_TRACKING": "off",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "rlseek", *args]
    return subprocess.Popen(cmd, cwd=cwd, env=env, **popen)


def run_torchrun(args: list[str], cwd: Path, nproc: int = 2) -> str:
    proc = torchrun(args, cwd, nproc, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = proc.communicate(timeout=600)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    return text


def max_diff(a: Path, b: Path, name: str) -> float:
    x, y = load_file(str(a / name)), load_file(str(b / name))
    assert x.keys() == y.keys()
    return max(float((x[k] - y[k]).abs().max()) for k in x)


def test_lm_ppo_two_processes_equal_one(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    one, two = tmp_path / "one", tmp_path / "work" / "two"
    two.parent.mkdir()
    assert main(["train", str(config), "--out", str(one)]) == 0
    log = run_torchrun(["train", str(config), "--out", str(two)], cwd=two.parent)
    assert log.count("run finished") == 1  # rank 0 prints; rank 1 is quiet
    diff = max_diff(one / "final", two / "final", "model.safetensors")
    assert diff < TOL
    assert max_diff(one / "final", two / "final", "value_head.safetensors") < TOL
    base = load_file(str(ROOT / "rlseek/assets/tiny-lm/model.safetensors"))
    trained = load_file(str(two / "final/model.safetensors"))
    assert max(float((trained[k] - base[k]).abs().max()) for k in base) > 10 * TOL  # it did train
    # One run directory, written by one rank: nothing else in the launch folder, one event file.
    assert sorted(p.name for p in two.parent.iterdir()) == ["two"]
    assert len(list((two / "tb").glob("events.*"))) == 1
    meta = json.loads((two / "meta.json").read_text())
    assert meta["status"] == "finished"
    assert (meta["world_size"], meta["world_sizes"], meta["distributed_strategy"]) == (2, [2], "ddp")
    summaries = [json.loads((d / "summary.json").read_text()) for d in (one, two)]
    assert summaries[0]["history"][0]["reward/total"] == pytest.approx(summaries[1]["history"][0]["reward/total"])
    assert summaries[1]["eval"]["episodes"] == 4


def test_reward_model_two_processes_equal_one(tmp_path: Path) -> None:
    backbone = build_tiny_backbone(tmp_path / "bb")
    train = write_jsonl(tmp_path / "train.jsonl", sentiment_pairs(24))
    evals = write_jsonl(tmp_path / "eval.jsonl", sentiment_pairs(8, start=100))
    args = ["reward-model", "train", "--train", str(train), "--eval", str(evals), "--backbone", str(backbone),
            "--epochs", "1", "--batch-size", "8", "--no-tracking", "--device", "cpu", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    work = tmp_path / "work"
    work.mkdir()
    run_torchrun([*args, "--out", str(work / "two")], cwd=work)
    assert sorted(p.name for p in work.iterdir()) == ["two"]
    for name in ("model.safetensors", "score_head.safetensors"):
        assert max_diff(tmp_path / "one", work / "two", name) < TOL
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (tmp_path / "one", work / "two")]
    assert metrics[0]["steps"] == metrics[1]["steps"] == 3
    assert metrics[1]["history"][-1]["train_loss"] == pytest.approx(metrics[0]["history"][-1]["train_loss"], abs=1e-5)


# -- launch checks: one line, exit code 2, nothing written ----------------------------------
@pytest.fixture()
def torchrun_env(monkeypatch: pytest.MonkeyPatch):
    """torchrun's variables for rank ``rank`` of a world of 2 (no peer ever connects: these
    checks fail before the process group is joined)."""
    def set_rank(rank: int = 0, size: int = 2) -> None:
        for key, value in {"RANK": rank, "LOCAL_RANK": rank, "WORLD_SIZE": size,
                           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": 1}.items():
            monkeypatch.setenv(key, str(value))
    return set_rank


def one_line_error(capsys: pytest.CaptureFixture[str], rc: int, *needles: str) -> None:
    err = capsys.readouterr().err
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlseek: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("run, needles", [
    ({"n_envs": 7}, ["run.n_envs", "7", "world size 2", "multiple of 2"]),
    ({"distributed": {"backend": "nccl"}}, ["run.distributed.backend", "nccl", "gloo"]),
    ({"distributed": {"strategy": "zero3"}}, ["run.distributed.strategy", "'ddp' or 'fsdp'", "zero3"]),
    ({"distributed": {"stratgy": "ddp"}}, ["unknown field 'run.distributed.stratgy'", "strategy"]),
])
def test_bad_distributed_launch(tmp_path: Path, capsys, torchrun_env, run: dict, needles: list[str]) -> None:
    torchrun_env(0)
    out = tmp_path / "run"
    rc = main(["train", str(write_config(tmp_path, run)), "--out", str(out)])
    one_line_error(capsys, rc, *needles)
    assert not out.exists()


def test_agent_without_distributed_support_and_quiet_followers(tmp_path: Path, capsys, torchrun_env) -> None:
    config = tmp_path / "sac.yaml"
    config.write_text(yaml.safe_dump({"env": {"id": "rlseek/Reacher-v0"}, "agent": {"algo": "sac"},
                                      "run": {"total_steps": 100, "n_envs": 2, "tracking": False}}))
    torchrun_env(0)
    one_line_error(capsys, main(["train", str(config), "--out", str(tmp_path / "a")]),
                   "agent 'sac' trains in one process only")
    torchrun_env(1)  # the other ranks fail with the same exit code and print nothing
    assert main(["train", str(config), "--out", str(tmp_path / "b")]) == 2
    assert capsys.readouterr().err == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sac.yaml"]


def test_reward_model_batch_not_divisible(tmp_path: Path, capsys, torchrun_env) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", sentiment_pairs(8))
    torchrun_env(0)
    rc = main(["reward-model", "train", "--train", str(train), "--batch-size", "7", "--out", str(tmp_path / "m"),
               "--no-tracking"])
    one_line_error(capsys, rc, "--batch-size 7", "world size 2")
    assert not (tmp_path / "m").exists()


# -- slow: a killed rank, then --resume -------------------------------------------------------
@pytest.mark.slow
def test_sigkill_rank_1_then_resume(tmp_path: Path) -> None:
    """Rank 1 is SIGKILLed once the first checkpoint exists; ``--resume`` under torchrun ends
    with the weights of an uninterrupted 2-process run, and the same checkpoint also resumes
    in one process (checkpoints do not depend on the world size)."""
    import shutil

    import psutil

    run = {"total_steps": 48, "checkpoint_every": 8, "keep_checkpoints": 10}
    config = write_config(tmp_path, run)
    full, killed = tmp_path / "full", tmp_path / "killed"
    run_torchrun(["train", str(config), "--out", str(full)], cwd=tmp_path)
    launcher = torchrun(["train", str(config), "--out", str(killed)], tmp_path,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list(killed.glob("checkpoints/step_*/state.json")):
        assert launcher.poll() is None, "training ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.05)
    rank1 = [p for p in psutil.Process(launcher.pid).children(recursive=True)
             if p.environ().get("RANK") == "1"]
    assert len(rank1) == 1
    os.kill(rank1[0].pid, signal.SIGKILL)
    assert launcher.wait(timeout=300) != 0
    meta = json.loads((killed / "meta.json").read_text())
    assert meta["status"] == "running" and not (killed / "final").exists()
    last = max(int(json.loads(p.read_text())["step"]) for p in killed.glob("checkpoints/step_*/state.json"))
    assert 8 <= last < 48
    alone = tmp_path / "alone"
    shutil.copytree(killed, alone)

    run_torchrun(["train", "--resume", "--out", str(killed)], cwd=tmp_path)
    summary = json.loads((killed / "summary.json").read_text())
    assert summary["resumed_from_step"] == last and summary["completions"] == 48
    assert max_diff(full / "final", killed / "final", "model.safetensors") < TOL
    assert json.loads((killed / "meta.json").read_text())["world_sizes"] == [2, 2]

    # The same checkpoint in a world of one: it continues and finishes. (Its weights are not
    # compared: over several iterations a last-bit difference between the two layouts can
    # flip one sampled token, after which the runs differ.)
    assert main(["train", "--resume", "--out", str(alone)]) == 0
    summary = json.loads((alone / "summary.json").read_text())
    assert summary["resumed_from_step"] == last and summary["completions"] == 48
    assert json.loads((alone / "meta.json").read_text())["world_sizes"] == [2, 1]


@pytest.mark.slow
def test_lm_grpo_two_processes_equal_one(tmp_path: Path) -> None:
    """lm-grpo shares the text trainer's distribution: groups stay on one rank, two
    iterations of 2 processes reach the 1-process weights."""
    config = write_config(tmp_path, {"total_steps": 32, "n_envs": 16, "checkpoint_every": 16},
                          agent={"algo": "lm-grpo", "params": {"group_size": 4, "learning_rate": 1e-3,
                                                               "kl_coef": 0.05, "ppo_epochs": 2,
                                                               "num_minibatches": 2}})
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["train", str(config), "--out", str(one)]) == 0
    run_torchrun(["train", str(config), "--out", str(two)], cwd=tmp_path)
    assert max_diff(one / "final", two / "final", "model.safetensors") < TOL
    assert not (two / "final" / "value_head.safetensors").exists()


def test_groups_must_not_straddle_ranks(tmp_path: Path, capsys, torchrun_env) -> None:
    torchrun_env(0)
    config = write_config(tmp_path, {"n_envs": 12},
                          agent={"algo": "lm-grpo", "params": {"group_size": 4}})
    one_line_error(capsys, main(["train", str(config), "--out", str(tmp_path / "r")]),
                   "agent.params.group_size (4)", "multiple of 8")


def test_one_process_refuses_what_torchrun_would(tmp_path: Path, capsys) -> None:
    """``run.distributed`` in a plain one-process run is checked the same way."""
    lora = {**CONFIG["agent"]["params"], "lora": True}
    for run, agent, needle in (({"distributed": {"strategy": "fsdp"}}, {"params": lora}, "agent.params.lora"),
                               ({"distributed": {"backend": "nccl"}}, {}, "nccl")):
        config = write_config(tmp_path, run, agent=agent)
        one_line_error(capsys, main(["train", str(config), "--out", str(tmp_path / "r")]), needle)
        assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_fsdp_two_processes_train_resume_and_match(tmp_path: Path) -> None:
    """FSDP2 on gloo: 2 processes reach DDP's 2-process weights, and the 1-process weights up
    to float summation order; a run cut after its first checkpoint resumes under FSDP in a
    world of 1 and of 2 and ends where the whole run did.

    Over these 2 iterations (16 optimizer steps) the order in which 2 ranks' sums are added
    moves a few q/k weights, through Adam's normalisation, by 1.3e-4 under DDP and 1.5e-4
    under FSDP against one process, while FSDP and DDP with 2 processes stay within 1.6e-5:
    hence DDP with 2 processes as the tight reference and 3 × TOL against one process."""
    import shutil

    run = {"total_steps": 16, "checkpoint_every": 8, "keep_checkpoints": 10,
           "distributed": {"strategy": "fsdp"}}
    config = write_config(tmp_path, run)
    one, two = tmp_path / "one", tmp_path / "two"
    (tmp_path / "ddp").mkdir()
    ddp = write_config(tmp_path / "ddp", {**run, "distributed": {"strategy": "ddp"}})
    assert main(["train", str(ddp), "--out", str(one)]) == 0
    run_torchrun(["train", str(config), "--out", str(two)], cwd=tmp_path)
    run_torchrun(["train", str(ddp), "--out", str(tmp_path / "ddp2")], cwd=tmp_path)
    assert max_diff(tmp_path / "ddp2" / "final", two / "final", "model.safetensors") < TOL
    assert max_diff(one / "final", two / "final", "model.safetensors") < 3 * TOL
    meta = json.loads((two / "meta.json").read_text())
    assert meta["distributed_strategy"] == "fsdp" and meta["world_sizes"] == [2]
    first = sorted(two.glob("checkpoints/step_*"))[0]
    assert (first / "optimizer_full.pt").is_file() and (first / "policy" / "model.safetensors").is_file()
    for world in (1, 2):  # the state a kill after the first checkpoint leaves
        cut = tmp_path / f"cut{world}"
        shutil.copytree(two, cut)
        shutil.rmtree(cut / "final")
        (cut / "summary.json").unlink()
        for later in sorted(cut.glob("checkpoints/step_*"))[1:]:
            shutil.rmtree(later)
        meta = json.loads((cut / "meta.json").read_text())
        (cut / "meta.json").write_text(json.dumps({**meta, "status": "running"}))
        run_torchrun(["train", "--resume", "--out", str(cut)], cwd=tmp_path, nproc=world)
        assert json.loads((cut / "summary.json").read_text())["resumed_from_step"] == 8
        assert json.loads((cut / "meta.json").read_text())["world_sizes"] == [2, world]
        assert max_diff(two / "final", cut / "final", "model.safetensors") < TOL
