"""Bad input to `rlseek reward-model` and `rlseek prefs`: one clear line, exit 2, nothing written."""

from __future__ import annotations

import pytest
from test_reward_model_fixtures import build_tiny_backbone, sentiment_pairs, write_jsonl

from rlseek.cli import main

GOOD = '{"prompt": "Review:", "chosen": " great.", "rejected": " awful."}\n'


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    return str(build_tiny_backbone(tmp_path_factory.mktemp("bb") / "gpt2"))


def _assert_one_line_error(capsys, rc, *needles):
    err = capsys.readouterr().err
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("rlseek: error: ")
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], lines[0]


def _nothing_written(folder, keep):
    return sorted(p.name for p in folder.iterdir()) == sorted(keep)


@pytest.mark.parametrize(
    "content, needles",
    [
        (GOOD * 2 + '{"chosen": "a", "rejected": \n', ["line 3", "malformed JSON"]),
        (GOOD + '{"prompt": "p", "chosen": "a"}\n', ["line 2", "missing field 'rejected'"]),
        (GOOD + '{"chosen": "a", "rejected": null}\n', ["line 2", "field 'rejected' must be a string"]),
        (GOOD + '{"chosen": ["a"], "rejected": "b"}\n', ["line 2", "field 'chosen' must be a string"]),
        ("", ["is empty"]),
    ],
)
def test_bad_training_data(tmp_path, capsys, backbone, content, needles):
    data = tmp_path / "prefs.jsonl"
    data.write_text(content)
    out = tmp_path / "rm"
    rc = main(["reward-model", "train", "--train", str(data), "--backbone", backbone, "--out", str(out)])
    _assert_one_line_error(capsys, rc, "prefs.jsonl", *needles)
    assert _nothing_written(tmp_path, ["prefs.jsonl"])


def test_bad_eval_data_writes_nothing(tmp_path, capsys, backbone):
    train = write_jsonl(tmp_path / "train.jsonl", sentiment_pairs(20))
    bad = tmp_path / "eval.jsonl"
    bad.write_text(GOOD + '{"chosen": "x", "rejected": "y", "margin": "wide"}\n')
    rc = main(["reward-model", "train", "--train", str(train), "--eval", str(bad), "--backbone", backbone,
               "--out", str(tmp_path / "rm")])
    _assert_one_line_error(capsys, rc, "eval.jsonl, line 2", "margin")
    assert _nothing_written(tmp_path, ["train.jsonl", "eval.jsonl"])


@pytest.mark.parametrize("make", ["empty_dir", "hf_model_dir", "missing", "bad_marker"])
def test_eval_refuses_a_folder_that_is_not_a_reward_model(tmp_path, capsys, backbone, make):
    data = write_jsonl(tmp_path / "d.jsonl", sentiment_pairs(4))
    model = {"empty_dir": tmp_path / "empty", "hf_model_dir": backbone, "missing": tmp_path / "nope",
             "bad_marker": tmp_path / "bad"}[make]
    if make == "empty_dir":
        model.mkdir()
    if make == "bad_marker":
        model.mkdir()
        (model / "reward_model.json").write_text("{not json")
    rc = main(["reward-model", "eval", "--model", str(model), "--data", str(data)])
    needle = "does not exist" if make == "missing" else "is not an rlseek reward model"
    _assert_one_line_error(capsys, rc, needle)


def test_bad_arguments(tmp_path, capsys, backbone):
    data = write_jsonl(tmp_path / "d.jsonl", sentiment_pairs(10))
    base = ["reward-model", "train", "--train", str(data), "--backbone", backbone, "--out", str(tmp_path / "rm")]
    _assert_one_line_error(capsys, main([*base, "--eval-split", "1.5"]), "--eval-split")
    _assert_one_line_error(capsys, main([*base, "--epochs", "0"]), "epochs")
    _assert_one_line_error(capsys, main([*base, "--adversarial", "--adv-epsilon", "0"]), "epsilon")
    rc = main(["reward-model", "train", "--train", str(data), "--backbone", str(tmp_path / "no-such-model"),
               "--out", str(tmp_path / "rm")])
    _assert_one_line_error(capsys, rc, "no-such-model")
    assert _nothing_written(tmp_path, ["d.jsonl"])


def test_prefs_synth_refuses_bad_options_before_loading_anything(tmp_path, capsys):
    out = tmp_path / "p.jsonl"
    base = ["prefs", "synth", "--task", "rlseek/Reviews-v0", "--out", str(out)]
    _assert_one_line_error(capsys, main([*base, "--n", "10", "--noise", "0.9"]), "noise")
    _assert_one_line_error(capsys, main([*base, "--n", "0"]), "--n")
    out.write_text("keep me\n")
    _assert_one_line_error(capsys, main([*base, "--n", "4"]), "already exists", "--force")
    assert out.read_text() == "keep me\n"
