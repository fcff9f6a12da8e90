"""The whole preference pipeline on the bundled tiny LM (slow: minutes on 2 CPU cores).

synthesize Reviews preferences (noise 0.1) -> train a reward model -> held-out accuracy,
then score completions with the `reward_model` term.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from rlseek.cli import main
from rlseek.reward_models.data import PreferenceDataset
from rlseek.rewards import TextBatch, get_reward

pytestmark = pytest.mark.slow


def test_synth_train_eval_on_reviews_reaches_085(tmp_path, capsys):
    train, ev, rm = tmp_path / "train.jsonl", tmp_path / "eval.jsonl", tmp_path / "rm"
    assert main(["prefs", "synth", "--task", "rlseek/Reviews-v0", "--n", "4000", "--noise", "0.1",
                 "--seed", "1", "--out", str(train), "--json", "--quiet"]) == 0
    assert main(["prefs", "synth", "--task", "rlseek/Reviews-v0", "--n", "1000", "--noise", "0.1",
                 "--seed", "2", "--heldout", "--out", str(ev), "--json", "--quiet"]) == 0
    out = capsys.readouterr().out
    eval_stats = json.loads(out[out.rindex('{\n  "task"'):])
    assert eval_stats["n"] == 1000 and 0.8 < eval_stats["agreement"] < 0.95
    assert main(["reward-model", "train", "--train", str(train), "--eval", str(ev), "--device", "cpu",
                 "--out", str(rm), "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["eval_pairs"] == 1000
    assert summary["eval_accuracy"] >= 0.85

    pairs = PreferenceDataset.from_jsonl(ev)[:64]
    batch = TextBatch(prompts=[p.prompt for p in pairs] * 2,
                      completions=[p.chosen for p in pairs] + [p.rejected for p in pairs],
                      completion_ids=[[0]] * 128, answers=[None] * 128, eos=np.ones(128, bool))
    scores = get_reward("reward_model").fn(batch, path=str(rm), device="cpu")
    assert np.mean(scores[:64] > scores[64:]) > 0.75
