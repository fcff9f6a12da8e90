"""Shared builders for the reward-model tests: a tiny random GPT-2 and preference files.

The backbone is built in-test (2 layers, 32 dims, a byte-level BPE tokenizer trained on a few
lines) so the tests need no download and run in seconds; the pipeline is the one used with the
bundled tiny LM or any other transformers model folder.
"""

from __future__ import annotations

import json
from pathlib import Path

POSITIVE = ["great", "excellent", "good", "lovely", "perfect", "amazing"]
NEGATIVE = ["awful", "terrible", "bad", "poor", "broken", "disappointing"]
ITEMS = ["lamp", "kettle", "chair", "mouse", "tent", "blender", "toaster", "jacket"]


def build_tiny_backbone(path: Path, eos: bool = True, positions: int = 64) -> Path:
    """Write a random 2-layer GPT-2 and its tokenizer to ``path`` (a transformers model folder)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    corpus = [f"Review of the {i}: it is {w}." for i in ITEMS for w in POSITIVE + NEGATIVE]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = ["<pad>", "<eos>"] if eos else ["<pad>"]
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    kw = {"eos_token": "<eos>"} if eos else {}
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", **kw)
    cfg = GPT2Config(vocab_size=fast.vocab_size, n_positions=positions, n_embd=32, n_layer=2, n_head=2,
                     pad_token_id=fast.pad_token_id,
                     eos_token_id=fast.eos_token_id if eos else None)
    import torch

    torch.manual_seed(0)
    GPT2LMHeadModel(cfg).save_pretrained(path)
    fast.save_pretrained(path)
    return path


def sentiment_pairs(n: int, start: int = 0, explicit: bool = True) -> list[dict]:
    """Pairs where the positive review is chosen (a learnable, noiseless preference).

    All 288 distinct pairs in one fixed shuffled order; ``start`` picks where the ``n`` begin,
    so disjoint slices make disjoint train and eval sets.
    """
    import random

    combos = [(i, g, b) for i in ITEMS for g in POSITIVE for b in NEGATIVE]
    random.Random(0).shuffle(combos)
    if start + n > len(combos):
        raise ValueError(f"only {len(combos)} distinct pairs")
    out = []
    for item, good, bad in combos[start : start + n]:
        prompt = f"Review of the {item}: it is"
        if explicit:
            out.append({"prompt": prompt, "chosen": f" {good}.", "rejected": f" {bad}."})
        else:
            out.append({"chosen": f"{prompt} {good}.", "rejected": f"{prompt} {bad}."})
    return out


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path
