"""``--import`` modules travel with the run: written into config.yaml, imported by subprocess
env workers, by ``rlseek eval`` and by ``--resume`` without being named again."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
MODULE = "rlseek_user_term_travels"


def _cli(args: list[str], module_dir: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(module_dir)]), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "rlseek.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_cli_import_is_recorded_and_reaches_subprocess_workers(tmp_path: Path) -> None:
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / f"{MODULE}.py").write_text(textwrap.dedent("""
        from rlseek.rewards import register_reward

        @register_reward("still_bonus", kind="robot")
        def still_bonus(obs, action, next_obs, info, *, bonus=1.0):
            "A user term: a constant bonus per step."
            return bonus
    """))
    cfg = {
        "env": {"id": "rlseek/Reacher-v0", "reward": {"distance": 1.0, "still_bonus": 0.5},
                "reward_params": {"still_bonus": {"bonus": 2.0}}},
        "agent": {"algo": "ppo", "params": {"n_steps": 32, "batch_size": 32, "n_epochs": 1,
                                            "policy_kwargs": {"net_arch": [8]}}},
        "run": {"total_steps": 128, "n_envs": 2, "vec_env": "subproc", "eval_every": 128,
                "eval_episodes": 1, "checkpoint_every": 64},
    }
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    proc = _cli(["train", "exp.yaml", "--import", MODULE, "--out", str(out), "--no-progress"], mods, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["imports"] == [MODULE]
    assert resolved["env"]["reward"]["still_bonus"] == 0.5

    # A later process that is not told about the module still finds the term.
    proc = _cli(["eval", str(out), "--episodes", "1", "--json"], mods, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '"still_bonus"' in proc.stdout


def test_import_given_twice_is_recorded_once(tmp_path: Path) -> None:
    from rlseek.api import merge_imports

    assert merge_imports(["a", "b"], ["b", "c"]) == ["a", "b", "c"]
    assert merge_imports([], []) == []
