"""The real-text pieces of the reward-model work: lexicon-swap augmentation (``prefs augment``)
and the builder of the held-out real review pairs (``scripts/build_real_review_pairs.py``)."""

from __future__ import annotations

import bz2
import csv
import importlib.util
import io
import json
from pathlib import Path

import pytest

from rlseek.cli import main
from rlseek.errors import RlseekError
from rlseek.reward_models.augment import augment_pairs, load_vader_words
from rlseek.reward_models.data import PreferenceDataset, PreferencePair
from rlseek.rewards.text import NEGATIVE_WORDS, POSITIVE_WORDS

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("build_real_review_pairs", ROOT / "scripts" / "build_real_review_pairs.py")
builder = importlib.util.module_from_spec(spec)
spec.loader.exec_module(builder)


# -- prefs augment --------------------------------------------------------------------------
def test_vader_words_are_dictionary_words_of_the_right_sign():
    pos, neg = load_vader_words()
    assert len(pos) > 1000 and len(neg) > 1000
    assert "excellent" in pos and "dull" in neg and "wtf" not in neg  # acronyms are left out
    assert not set(pos) & set(neg)


def test_swap_keeps_polarity_position_and_shared_text():
    pos, neg = set(load_vader_words()[0]), set(load_vader_words()[1])
    pair = PreferencePair(" great, not bad. Great value.", " bad and slow. Not great.", "The lamp is")
    out, stats = augment_pairs([pair], copies=2, seed=0)
    assert out[0] == pair and stats == {"original": 1, "added": 2, "unchanged": 0,
                                        "positive_words": len(pos), "negative_words": len(neg)}
    for copy in out[1:]:
        assert copy.prompt == "The lamp is" and copy.meta == {"augmented": "lexicon-swap"}
        c, r = copy.chosen.split(), copy.rejected.split()
        great, bad = c[0].rstrip(","), c[2].rstrip(".")
        assert great in pos and bad in neg
        assert c[3] == great.capitalize()  # one substitute per word, capitalisation kept
        assert r[0] == bad and r[4] == great + "."  # the same word maps the same on both sides
        assert not {w.strip(",.").lower() for w in c + r} & (POSITIVE_WORDS | NEGATIVE_WORDS)
    assert augment_pairs([pair], copies=2, seed=0)[0] == out  # seeded
    assert augment_pairs([pair], copies=2, seed=1)[0] != out


def test_pairs_without_lexicon_words_get_no_copy_and_copies_must_be_positive():
    plain = PreferencePair(" about average.", " what you would expect.", "The fit is")
    out, stats = augment_pairs([plain], copies=3)
    assert out == [plain] and stats["unchanged"] == 1 and stats["added"] == 0
    with pytest.raises(RlseekError, match="--copies must be >= 1"):
        augment_pairs([plain], copies=0)


def test_cli_augment_writes_trainable_pairs_and_refuses_bad_input(tmp_path, capsys):
    src = tmp_path / "train.jsonl"
    src.write_text(json.dumps({"prompt": "The soup was", "chosen": " delicious.", "rejected": " cold."}) + "\n")
    out = tmp_path / "aug.jsonl"
    assert main(["prefs", "augment", "--in", str(src), "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["added"] == 1
    data = PreferenceDataset.from_jsonl(out)
    assert len(data) == 2 and data[1].meta == {"augmented": "lexicon-swap"}
    assert main(["prefs", "augment", "--in", str(src), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["prefs", "augment", "--in", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


# -- the real-review pair builder -----------------------------------------------------------
def _corpus(path: Path, rows: list[tuple[str, str, str]], columns=("category", "text", "movie_name")) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(columns)
    w.writerows(rows)
    path.write_bytes(bz2.compress(buf.getvalue().encode("utf-8")))
    return path


def test_builder_pairs_fresh_with_rotten_of_the_same_film(tmp_path, capsys):
    src = _corpus(tmp_path / "rt.csv.bz2", [
        ("plot", "A synopsis.", "heat"),
        ("fresh", "A  taut, brilliant\nthriller.", "heat"),
        ("fresh", "Gripping from start to end.", "heat"),
        ("rotten", "Overlong and dull.", "heat"),
        ("fresh", "Charming.", "up"),  # no rotten sentence for this film: unused
        ("rotten", "Overlong and dull.", "cats"),  # a repeated sentence is used once
        ("fresh", "Purrfect.", "cats"),
    ])
    out = tmp_path / "real.jsonl"
    assert builder.main(["--source", str(src), "--out", str(out), "--seed", "0"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["pairs"] == 1 and stats["movies"] == 1
    (rec,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert rec["prompt"] == "Review of Heat:" and rec["rejected"] == " Overlong and dull."
    assert rec["chosen"] in (" A taut, brilliant thriller.", " Gripping from start to end.")
    assert len(PreferenceDataset.from_jsonl(out)) == 1  # readable by reward-model eval


def test_builder_bad_input_is_one_line_exit_2(tmp_path, capsys):
    out = tmp_path / "real.jsonl"
    bad = _corpus(tmp_path / "bad.csv.bz2", [("fresh", "x", "y")], columns=("label", "text", "movie"))
    for argv, needle in [
        (["--source", str(bad), "--out", str(out)], "missing column(s)"),
        (["--source", str(tmp_path / "none.bz2"), "--out", str(out)], "does not exist"),
        (["--source", str(_corpus(tmp_path / "one.csv.bz2", [("fresh", "Fine.", "a")])), "--out", str(out)],
         "no film has both fresh and rotten"),
    ]:
        assert builder.main(argv) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists()
    out.write_text("keep\n")
    assert builder.main(["--source", str(bad), "--out", str(out)]) == 2
    assert out.read_text() == "keep\n"
