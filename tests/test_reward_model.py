"""RewardModel and BradleyTerryTrainer: scoring, training in both TRL formats, save/load, LoRA,
adversarial augmentation. Uses a tiny random GPT-2 built in-test (see the fixtures module)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_reward_model_fixtures import build_tiny_backbone, sentiment_pairs, write_jsonl

from rlseek.cli import main
from rlseek.reward_models.adversarial import AdversarialConfig, perturb
from rlseek.reward_models.data import PreferenceDataset, PreferencePair
from rlseek.reward_models.trainer import BradleyTerryTrainer, TrainConfig, evaluate
from rlseek.rewards.learned.model import MARKER, RewardModel, is_reward_model_dir


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    return str(build_tiny_backbone(tmp_path_factory.mktemp("bb") / "gpt2"))


@pytest.fixture(scope="module")
def data_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("prefs")
    return {
        "explicit_train": write_jsonl(d / "et.jsonl", sentiment_pairs(160, start=0)),
        "explicit_eval": write_jsonl(d / "ee.jsonl", sentiment_pairs(60, start=200)),
        "implicit_train": write_jsonl(d / "it.jsonl", sentiment_pairs(160, start=0, explicit=False)),
        "implicit_eval": write_jsonl(d / "ie.jsonl", sentiment_pairs(60, start=200, explicit=False)),
    }


def test_score_is_taken_at_the_last_real_token_whatever_the_padding(backbone):
    model = RewardModel.from_backbone(backbone)
    short, long = "Review of the lamp: it is great.", "Review of the kettle: it is awful. " * 4
    alone = model.score([short])
    batched = model.score([short, long], batch_size=2)
    assert np.allclose(alone[0], batched[0], atol=1e-5)
    enc = model.encode([short, long])
    assert enc["input_ids"][0, enc["attention_mask"][0].sum() - 1] == model.eos_id  # EOS appended
    assert not any(m.p for m in model.modules() if isinstance(m, torch.nn.Dropout))


def test_long_texts_keep_their_end(backbone):
    model = RewardModel.from_backbone(backbone, max_length=16)
    rows = model.tokenize(["Review of the lamp: " * 10 + "it is great."])
    assert len(rows[0]) == 16 and rows[0][-1] == model.eos_id
    tail = model.tokenizer.decode(rows[0][:-1], skip_special_tokens=True)
    assert tail.endswith("it is great.")


@pytest.mark.parametrize("fmt", ["explicit", "implicit"])
def test_cli_trains_and_evaluates_each_trl_format(backbone, data_files, tmp_path, capsys, fmt):
    out = tmp_path / f"rm-{fmt}"
    rc = main(["reward-model", "train", "--train", str(data_files[f"{fmt}_train"]),
               "--eval", str(data_files[f"{fmt}_eval"]), "--backbone", backbone, "--epochs", "4",
               "--lr", "1e-3", "--device", "cpu", "--out", str(out), "--json", "--quiet"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["eval_accuracy"] >= 0.9
    assert is_reward_model_dir(out)
    for name in ("config.json", "model.safetensors", "score_head.safetensors", "metrics.json", MARKER):
        assert (out / name).is_file(), name
    marker = json.loads((out / MARKER).read_text())
    assert marker["score_std"] > 0 and "score_mean" in marker
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["eval"]["accuracy"] == summary["eval_accuracy"]
    assert "adversarial_accuracy" in metrics["eval_adversarial"]

    rc = main(["reward-model", "eval", "--model", str(out), "--data", str(data_files[f"{fmt}_eval"]),
               "--device", "cpu", "--json"])
    assert rc == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["n"] == 60 and ev["accuracy"] == pytest.approx(summary["eval_accuracy"])
    assert {"mean_margin", "reward_mean", "reward_std"} <= set(ev)


def test_eval_split_and_existing_out_is_refused(backbone, data_files, tmp_path, capsys):
    out = tmp_path / "rm"
    args = ["reward-model", "train", "--train", str(data_files["explicit_train"]), "--eval-split", "0.25",
            "--backbone", backbone, "--epochs", "1", "--device", "cpu", "--out", str(out), "--quiet"]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["eval"]["pairs"] == 40 and metrics["data"]["train"]["pairs"] == 120
    before = (out / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "model.safetensors").read_bytes() == before


def test_saved_model_scores_like_the_trained_one(backbone, tmp_path):
    train = PreferenceDataset.from_jsonl(write_jsonl(tmp_path / "t.jsonl", sentiment_pairs(48)))
    model = RewardModel.from_backbone(backbone)
    BradleyTerryTrainer(model, TrainConfig(epochs=1, learning_rate=1e-3)).train(train)
    texts = [p.chosen_text for p in train][:8]
    model.save(tmp_path / "rm")
    loaded = RewardModel.load(tmp_path / "rm")
    assert np.allclose(model.score(texts), loaded.score(texts), atol=1e-5)
    assert loaded.info["score_std"] == model.info["score_std"]


def test_margin_asks_for_a_wider_gap(backbone):
    pairs = [PreferencePair(p.chosen, p.rejected, p.prompt) for p in
             PreferenceDataset([PreferencePair(**r) for r in sentiment_pairs(64, 0)])]
    with_margin = PreferenceDataset([PreferencePair(p.chosen, p.rejected, p.prompt, 3.0) for p in pairs])
    gaps = []
    for data in (PreferenceDataset(pairs), with_margin):
        model = RewardModel.from_backbone(backbone)
        BradleyTerryTrainer(model, TrainConfig(epochs=3, learning_rate=1e-3)).train(data)
        gaps.append(evaluate(model, data)["mean_margin"])
    assert gaps[1] > gaps[0] + 0.5


def test_centering_pulls_rewards_to_zero(backbone):
    data = PreferenceDataset([PreferencePair(**r) for r in sentiment_pairs(64, 0)])
    means = []
    for c in (0.0, 0.5):
        model = RewardModel.from_backbone(backbone, seed=1)
        with torch.no_grad():
            model.head.bias.fill_(3.0)  # start far from zero so centering has work to do
        BradleyTerryTrainer(model, TrainConfig(epochs=2, learning_rate=1e-3, center_rewards=c)).train(data)
        means.append(abs(evaluate(model, data)["reward_mean"]))
    assert means[1] < 0.5 * means[0]


def test_lora_trains_a_small_share_and_saves_a_plain_model(backbone, tmp_path):
    data = PreferenceDataset([PreferencePair(**r) for r in sentiment_pairs(96, 0)])
    model = RewardModel.from_backbone(backbone)
    base = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    trainer = BradleyTerryTrainer(model, TrainConfig(epochs=3, learning_rate=3e-3, lora=True))
    share = trainer.parameter_share
    assert share is not None and 0 < share["share"] < 0.5
    result = trainer.train(data)
    assert result["trainable_parameters"]["trainable"] == share["trainable"]
    assert result["train"]["accuracy"] >= 0.9
    model.save(tmp_path / "rm")
    loaded = RewardModel.load(tmp_path / "rm")
    assert not any("lora" in k for k in loaded.backbone.state_dict())
    assert json.loads((tmp_path / "rm" / MARKER).read_text())["lora"]["rank"] == 8
    changed = [k for k, v in loaded.backbone.state_dict().items() if k in base and not torch.equal(v, base[k])]
    assert changed  # the adapters were merged into the weights


def test_pgd_stays_in_the_ball_and_lowers_accuracy(backbone):
    data = PreferenceDataset([PreferencePair(**r) for r in sentiment_pairs(64, 0)])
    model = RewardModel.from_backbone(backbone)
    BradleyTerryTrainer(model, TrainConfig(epochs=2, learning_rate=1e-3)).train(data)
    cfg = AdversarialConfig(epsilon=0.1, steps=5)
    enc = model.encode([p.chosen_text for p in data[:4]] + [p.rejected_text for p in data[:4]])
    delta = perturb(model, enc["input_ids"], enc["attention_mask"],
                    lambda s: -(s[:4] - s[4:]).mean(), cfg)
    eps = 0.1 * model.info["embedding_rms"]
    assert delta.abs().max() <= eps + 1e-7 and delta.abs().max() > 0.5 * eps
    assert (delta[enc["attention_mask"] == 0] == 0).all()  # padding is never perturbed
    res = evaluate(model, data, adversarial=AdversarialConfig(epsilon=1.0, steps=5))
    assert res["adversarial_accuracy"] < res["accuracy"]


def test_adversarial_training_runs_and_reports_both_accuracies(backbone, data_files, tmp_path, capsys):
    out = tmp_path / "rm-adv"
    rc = main(["reward-model", "train", "--train", str(data_files["explicit_train"]),
               "--eval", str(data_files["explicit_eval"]), "--backbone", backbone, "--epochs", "1",
               "--adversarial", "--adv-steps", "2", "--device", "cpu", "--out", str(out), "--quiet"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["adversarial"] == {"epsilon": 0.1, "steps": 2, "weight": 1.0}
    assert 0 <= metrics["eval_adversarial"]["adversarial_accuracy"] <= 1
    assert "under PGD" in capsys.readouterr().out
