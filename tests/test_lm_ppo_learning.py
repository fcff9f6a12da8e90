"""lm-ppo learns: held-out exact match on Arithmetic rises well above the base model's (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from rlseek.cli import main


@pytest.mark.slow
def test_arithmetic_accuracy_rises_with_kl_near_target(tmp_path: Path) -> None:
    cfg = yaml.safe_load(Path("examples/configs/arithmetic_lm_ppo.yaml").read_text())
    cfg["run"].update(total_steps=4800, eval_episodes=300, eval_every=10**9, checkpoint_every=10**9)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(path), "--out", str(tmp_path / "run")]) == 0
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["final_accuracy"] >= s["base_accuracy"] + 0.15, (s["base_accuracy"], s["final_accuracy"])
    assert 0.0 < s["final_kl_last5_mean"] <= 1.5 * s["kl_target"]
    assert s["final_eos_rate"] > 0.9
