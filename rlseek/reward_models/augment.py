"""Lexicon-swap augmentation of preference pairs (``rlseek prefs augment``).

The Reviews annotator scores completions with rlseek's ``sentiment`` lexicon (about 65 positive
and 65 negative words), so a reward model trained on its pairs meets only those words as
carriers of sentiment, and real reviews use thousands of others. This augmentation writes
copies of each pair in which every lexicon word is replaced by a word of the same polarity from
a much larger, independently rated lexicon: VADER's (C. J. Hutto, MIT licence; shipped inside the
``vaderSentiment`` wheel as ``vader_lexicon.txt``; each entry's mean valence on a −4…4 scale was
rated by ten people).

Why the labels stay right: the annotator's score counts positive and negative lexicon words
(with negation flips by position); a swap keeps every word's polarity and position, so the
score of each side, and so the annotator's preference, is the same as for the original pair.
Within one pair each lexicon word maps to one substitute on both sides (and in the prompt), so
text the two sides share stays shared.

Substitute words: VADER entries of letters only, at least 3 long, with a vowel, whose mean
valence is at least :data:`MIN_VALENCE` in magnitude; the internet acronyms and emoticons that
open the file (every entry before its first dictionary word, ``abandon``) are left out.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from rlseek.errors import RlseekError
from rlseek.reward_models.data import PreferencePair

MIN_VALENCE = 1.0
"""Least |mean valence| (VADER's −4…4 scale) of a substitute word."""

_WORD = re.compile(r"[A-Za-z]+")
_FIRST_WORD = "abandon"


def vader_lexicon_path() -> Path:
    """``vader_lexicon.txt`` inside the installed ``vaderSentiment`` package."""
    spec = importlib.util.find_spec("vaderSentiment")
    if spec is None or not spec.submodule_search_locations:
        raise RlseekError("lexicon 'vader' needs the vaderSentiment package: pip install vaderSentiment")
    path = Path(list(spec.submodule_search_locations)[0]) / "vader_lexicon.txt"
    if not path.is_file():
        raise RlseekError(f"{path} is missing from the installed vaderSentiment package")
    return path


def load_vader_words(path: str | Path | None = None, min_valence: float = MIN_VALENCE) -> tuple[list[str], list[str]]:
    """(positive, negative) substitute words of VADER's lexicon, in file order (see module doc)."""
    path = Path(path) if path is not None else vader_lexicon_path()
    pos: list[str] = []
    neg: list[str] = []
    started = False
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        cols = line.split("\t")
        try:
            word, valence = cols[0], float(cols[1])
        except (IndexError, ValueError):
            raise RlseekError(f"{path}, line {lineno}: expected 'word<TAB>mean valence<TAB>...'") from None
        started = started or word == _FIRST_WORD
        if not started or not re.fullmatch(r"[a-z]{3,}", word) or not re.search(r"[aeiouy]", word):
            continue
        if valence >= min_valence:
            pos.append(word)
        elif valence <= -min_valence:
            neg.append(word)
    if not pos or not neg:
        raise RlseekError(f"{path}: no substitute words with |valence| >= {min_valence}")
    return pos, neg


class LexiconSwap:
    """Replaces rlseek's lexicon words by same-polarity words of a larger lexicon."""

    def __init__(self, positive: list[str], negative: list[str], rng: np.random.Generator) -> None:
        from rlseek.rewards.text import NEGATIVE_WORDS, POSITIVE_WORDS

        self.source = {w: 1 for w in POSITIVE_WORDS} | {w: -1 for w in NEGATIVE_WORDS}
        self.positive = positive
        self.negative = negative
        self.rng = rng

    def pair(self, pair: PreferencePair) -> PreferencePair | None:
        """A swapped copy of ``pair``, or ``None`` when it holds no lexicon word."""
        mapping: dict[str, str] = {}

        def sub(m: re.Match[str]) -> str:
            word = m.group(0)
            low = word.lower()
            polarity = self.source.get(low)
            if polarity is None:
                return word
            if low not in mapping:
                pool = self.positive if polarity > 0 else self.negative
                mapping[low] = pool[int(self.rng.integers(len(pool)))]
            new = mapping[low]
            return new.capitalize() if word[0].isupper() else new

        chosen = _WORD.sub(sub, pair.chosen)
        rejected = _WORD.sub(sub, pair.rejected)
        prompt = _WORD.sub(sub, pair.prompt) if pair.prompt is not None else None
        if not mapping or chosen == rejected:
            return None
        meta = {"augmented": "lexicon-swap"}
        return PreferencePair(chosen, rejected, prompt, pair.margin, meta)


def augment_pairs(pairs: Iterable[PreferencePair], copies: int = 1, seed: int = 0,
                  lexicon_path: str | Path | None = None,
                  min_valence: float = MIN_VALENCE) -> tuple[list[PreferencePair], dict[str, int]]:
    """The original pairs followed by up to ``copies`` lexicon-swapped copies of each.

    Returns the pairs and counts: ``original``, ``added``, ``unchanged`` (pairs without any
    lexicon word, which get no copy). Same input and seed, same output.
    """
    if copies < 1:
        raise RlseekError(f"--copies must be >= 1, got {copies}")
    positive, negative = load_vader_words(lexicon_path, min_valence)
    swap = LexiconSwap(positive, negative, np.random.default_rng(seed))
    originals = list(pairs)
    added: list[PreferencePair] = []
    seen = {(p.prompt, p.chosen, p.rejected) for p in originals}
    unchanged = 0
    for p in originals:
        made = 0
        for _ in range(copies):
            q = swap.pair(p)
            if q is None:
                break
            key = (q.prompt, q.chosen, q.rejected)
            if key in seen:
                continue
            seen.add(key)
            added.append(q)
            made += 1
        unchanged += made == 0
    stats = {"original": len(originals), "added": len(added), "unchanged": unchanged,
             "positive_words": len(positive), "negative_words": len(negative)}
    return originals + added, stats
