"""Preference data: JSONL formats, validation, split; the scripted annotator; terminal labelling."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from test_reward_model_fixtures import build_tiny_backbone, sentiment_pairs, write_jsonl

from rlseek.cli import main
from rlseek.envs.text.split import is_heldout
from rlseek.errors import DataError, RlseekError
from rlseek.reward_models.data import PreferenceDataset, shared_prefix
from rlseek.reward_models.label import label_pairs, read_candidates
from rlseek.reward_models.synth import ScriptedAnnotator, get_task
from rlseek.rewards import TextBatch, register_reward


def test_explicit_and_implicit_formats_give_the_same_texts(tmp_path):
    exp = PreferenceDataset.from_jsonl(write_jsonl(tmp_path / "e.jsonl", sentiment_pairs(5, 3)))
    imp = PreferenceDataset.from_jsonl(write_jsonl(tmp_path / "i.jsonl", sentiment_pairs(5, 3, explicit=False)))
    assert [p.chosen_text for p in exp] == [p.chosen_text for p in imp]
    assert [p.rejected_text for p in exp] == [p.rejected_text for p in imp]
    assert exp[0].prompt is not None and imp[0].prompt is None
    assert shared_prefix(imp[0].chosen, imp[0].rejected).startswith("Review of the")


def test_margin_and_extra_fields_are_kept(tmp_path):
    recs = [{"prompt": "p", "chosen": " a", "rejected": " b", "margin": 1.5, "source": "x"}]
    ds = PreferenceDataset.from_jsonl(write_jsonl(tmp_path / "m.jsonl", recs))
    assert ds.has_margins and ds[0].margin == 1.5 and ds[0].meta == {"source": "x"}
    again = [json.loads(line) for line in ds.to_jsonl().splitlines()]
    assert again == recs


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"chosen": "a", "rejected": "b"', "line 2: malformed JSON"),
        ('{"prompt": "p", "chosen": "a"}', "line 2: missing field 'rejected'"),
        ('{"chosen": 3, "rejected": "b"}', "line 2: field 'chosen' must be a string"),
        ('{"prompt": ["p"], "chosen": "a", "rejected": "b"}', "line 2: field 'prompt' must be a string"),
        ('{"chosen": "  ", "rejected": "b"}', "line 2: field 'chosen' is empty"),
        ('{"chosen": "a", "rejected": "a"}', "line 2: 'chosen' and 'rejected' are the same"),
        ('{"chosen": "a", "rejected": "b", "margin": "big"}', "line 2: field 'margin' must be a finite"),
        ('["a", "b"]', "line 2: expected a JSON object"),
    ],
)
def test_validation_names_line_and_field(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"chosen": "x", "rejected": "y"}\n' + line + "\n")
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        PreferenceDataset.from_jsonl(path)


def test_empty_file_and_missing_file(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(DataError, match="is empty"):
        PreferenceDataset.from_jsonl(tmp_path / "empty.jsonl")
    with pytest.raises(DataError, match="does not exist"):
        PreferenceDataset.from_jsonl(tmp_path / "nope.jsonl")


def test_duplicates_are_reported_and_dropped(tmp_path):
    recs = sentiment_pairs(4)
    ds = PreferenceDataset.from_jsonl(write_jsonl(tmp_path / "d.jsonl", recs + [recs[1], recs[3]]))
    assert len(ds) == 4
    assert ds.duplicates == [(5, 2), (6, 4)]
    assert "line 5 repeats line 2" in ds.duplicate_report()


def test_split_is_seeded_disjoint_and_complete():
    pairs = PreferenceDataset(_pairs(50))
    tr1, ev1 = pairs.split(0.2, seed=1)
    tr2, ev2 = pairs.split(0.2, seed=1)
    _, ev3 = pairs.split(0.2, seed=2)
    assert len(ev1) == 10 and len(tr1) == 40
    assert [p.chosen for p in ev1] == [p.chosen for p in ev2]
    assert [p.chosen for p in ev1] != [p.chosen for p in ev3]
    assert {p.chosen for p in tr1} | {p.chosen for p in ev1} == {p.chosen for p in pairs}
    assert not {p.chosen for p in tr1} & {p.chosen for p in ev1}
    with pytest.raises(DataError):
        pairs.split(1.0)


def _pairs(n):
    from rlseek.reward_models.data import PreferencePair

    return [PreferencePair(f"good {i}", f"bad {i}", "p:") for i in range(n)]


def test_annotator_follows_bradley_terry_and_noise():
    rng = np.random.default_rng(0)
    sharp = ScriptedAnnotator(temperature=0.05, noise=0.0, rng=rng)
    assert np.mean([sharp.choose_first(1.0, 0.0) for _ in range(2000)]) == 1.0
    # A gap of one temperature is preferred with probability sigma(1) = 0.731.
    bt = ScriptedAnnotator(temperature=0.5, noise=0.0, rng=rng)
    assert abs(np.mean([bt.choose_first(0.5, 0.0) for _ in range(20000)]) - 0.7311) < 0.015
    noisy = ScriptedAnnotator(temperature=0.05, noise=0.2, rng=rng)
    assert abs(np.mean([noisy.choose_first(1.0, 0.0) for _ in range(20000)]) - 0.8) < 0.015
    with pytest.raises(RlseekError):
        ScriptedAnnotator(temperature=0.1, noise=0.7, rng=rng)


def test_unknown_task_has_did_you_mean(capsys, tmp_path):
    with pytest.raises(RlseekError, match="did you mean 'rlseek/Reviews-v0'"):
        get_task("rlseek/Review-v0")
    out = tmp_path / "p.jsonl"
    assert main(["prefs", "synth", "--task", "rlseek/Reveiws-v0", "--n", "3", "--out", str(out)]) == 2
    assert "did you mean" in capsys.readouterr().err and not out.exists()


def test_label_from_stdin_writes_the_preference_format(tmp_path, monkeypatch, capsys):
    cands = [{"prompt": "Review:", "a": " great.", "b": " awful."},
             {"prompt": "Review:", "a": " fine.", "b": " bad."},
             {"chosen": "x good", "rejected": "x bad"}]
    src = write_jsonl(tmp_path / "cands.jsonl", cands)
    # Find which side is shown first for each pair (seeded), then answer "the positive one".
    shown = io.StringIO()
    label_pairs(read_candidates(src), io.StringIO("1\n1\n1\n"), shown.write, seed=0)
    answers = []
    for block in shown.getvalue().split("--- pair ")[1:]:
        first = block.split("[1] ")[1].split("\n")[0]
        answers.append("1" if first in (" great.", " fine.", "x good") else "2")
    answers.insert(1, "?")  # an unknown answer re-asks
    answers[2] = "s"  # skip the second pair
    out = tmp_path / "labelled.jsonl"
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(answers) + "\n"))
    assert main(["prefs", "label", "--in", str(src), "--out", str(out)]) == 0
    ds = PreferenceDataset.from_jsonl(out)
    assert [(p.prompt, p.chosen, p.rejected) for p in ds] == [
        ("Review:", " great.", " awful."), (None, "x good", "x bad")]
    assert "wrote 2 labelled pairs" in capsys.readouterr().out


def test_label_stops_at_end_of_input_and_rejects_bad_candidates(tmp_path, monkeypatch, capsys):
    src = write_jsonl(tmp_path / "c.jsonl", [{"a": "one", "b": "two"}, {"a": "three", "b": "four"}])
    out = tmp_path / "o.jsonl"
    monkeypatch.setattr("sys.stdin", io.StringIO("2\n"))
    assert main(["prefs", "label", "--in", str(src), "--out", str(out)]) == 0
    assert len(PreferenceDataset.from_jsonl(out)) == 1
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"a": "one"}])
    out2 = tmp_path / "o2.jsonl"
    assert main(["prefs", "label", "--in", str(bad), "--out", str(out2)]) == 2
    assert "line 1: missing field 'b'" in capsys.readouterr().err and not out2.exists()


@register_reward("test_completion_chars", kind="text")
def _completion_chars(batch: TextBatch, *, scale: float = 1.0) -> np.ndarray:
    """Completion length in characters (a score that rarely ties, for testing the annotator)."""
    return np.array([scale * len(c) for c in batch.completions], dtype=float)


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return str(build_tiny_backbone(tmp_path_factory.mktemp("policy") / "gpt2", positions=256))


def _synth(policy, out, *extra):
    return main(["prefs", "synth", "--task", "rlseek/Reviews-v0", "--n", "24", "--policy", policy,
                 "--score-term", "test_completion_chars", "--temperature", "0.01", "--device", "cpu",
                 "--out", str(out), "--json", "--quiet", *extra])


def test_synth_labels_pairs_by_the_score_term(policy, tmp_path, capsys):
    out = tmp_path / "p.jsonl"
    assert _synth(policy, out, "--noise", "0", "--seed", "3") == 0
    stats = json.loads(capsys.readouterr().out)
    ds = PreferenceDataset.from_jsonl(out)
    assert len(ds) == stats["n"] == 24 and stats["agreement"] == 1.0
    assert all(len(p.chosen) > len(p.rejected) for p in ds)  # tau is tiny: always the longer one
    assert all(p.meta["score_chosen"] == len(p.chosen) for p in ds)
    assert not any(is_heldout("reviews", p.prompt) for p in ds)
    again = tmp_path / "again.jsonl"
    assert _synth(policy, again, "--noise", "0", "--seed", "3") == 0
    assert again.read_text() == out.read_text()  # seeded


def test_synth_noise_and_heldout_prompts(policy, tmp_path, capsys):
    out = tmp_path / "p.jsonl"
    assert _synth(policy, out, "--noise", "0.5", "--seed", "4", "--heldout") == 0
    stats = json.loads(capsys.readouterr().out)
    ds = PreferenceDataset.from_jsonl(out)
    assert all(is_heldout("reviews", p.prompt) for p in ds)
    flipped = sum(len(p.chosen) < len(p.rejected) for p in ds)
    assert 3 <= flipped <= 21 and stats["agreement"] == pytest.approx(1 - flipped / 24)
