"""The example scripts use the public API only, and run (slow: tiny budgets, end to end)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted((ROOT / "examples").glob("*.py"))
PUBLIC = {"rlseek", "rlseek.reward_models", "rlseek.offline", "rlseek.offline.collect",
          "rlseek.offline.compare", "rlseek.rewards"}


def test_there_is_one_script_per_use() -> None:
    names = {p.stem for p in SCRIPTS}
    assert {"train_robot", "reward_model", "rlhf", "offline"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_example_imports_only_public_api(script: Path) -> None:
    tree = ast.parse(script.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rlseek"):
            assert node.module in PUBLIC, f"{script.name} imports {node.module}"
            assert not any(a.name.startswith("_") for a in node.names)
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("rlseek"):
                    assert a.name in PUBLIC, f"{script.name} imports {a.name}"


@pytest.mark.slow
def test_examples_run_end_to_end(tmp_path: Path) -> None:
    py = sys.executable
    runs = [
        ["examples/train_robot.py", "--out", str(tmp_path / "robot"), "--steps", "1000"],
        ["examples/reward_model.py", "--out", str(tmp_path / "rm"), "--pairs", "200", "--epochs", "1"],
        ["examples/rlhf.py", "--reward-model", str(tmp_path / "rm"), "--out", str(tmp_path / "rlhf"),
         "--completions", "128"],
        ["examples/offline.py", "--out", str(tmp_path / "off"), "--expert-steps", "1000", "--seeds", "2",
         "--grad-steps", "50", "--reference-episodes", "3"],
    ]
    for argv in runs:
        proc = subprocess.run([py, *argv], cwd=ROOT, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"{argv[0]} failed:\n{proc.stderr[-2000:]}"
