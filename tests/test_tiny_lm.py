"""The bundled tiny LM and the model loader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlseek.errors import RlseekError
from rlseek.models import BUNDLED_MODELS, load_causal_lm, load_tokenizer, resolve_model_path

TINY = BUNDLED_MODELS["rlseek/tiny-lm"]


@pytest.fixture(scope="module")
def plain():
    """Model and tokenizer loaded with plain transformers, no rlseek code involved."""
    return AutoModelForCausalLM.from_pretrained(TINY), AutoTokenizer.from_pretrained(TINY)


def test_bundled_files_are_safetensors_and_small() -> None:
    names = {p.name for p in TINY.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "generation_config.json", "build_info.json"} <= names
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)
    assert sum(p.stat().st_size for p in TINY.iterdir()) <= 20 * 2**20
    info = json.loads((TINY / "build_info.json").read_text())
    assert 1_000_000 <= info["parameters"] <= 5_000_000
    assert 0.3 <= info["heldout_2digit_addition_greedy_em_200"] <= 0.6


def test_plain_transformers_loads_and_generates(plain) -> None:
    model, tok = plain
    assert sum(p.numel() for p in model.parameters()) == json.loads(
        (TINY / "build_info.json").read_text())["parameters"]
    assert tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id
    assert tok.bos_token_id is not None and tok.padding_side == "left"
    assert model.generation_config.eos_token_id == tok.eos_token_id
    assert model.generation_config.pad_token_id == tok.pad_token_id
    enc = tok(["12+34=", "Review of the blender: The motor is"], return_tensors="pt",
              padding=True)
    assert enc["input_ids"][:, -1].ne(tok.pad_token_id).all()  # left padded
    out = model.generate(**enc, max_new_tokens=40, do_sample=False)
    new = out[:, enc["input_ids"].shape[1]:]
    answer = tok.decode(new[0], skip_special_tokens=True)
    # The base model answers arithmetic with an integer and stops (right or wrong).
    assert answer.strip().lstrip("-").isdigit(), answer
    assert tok.eos_token_id in new[0].tolist()
    review = tok.decode(new[1], skip_special_tokens=True)
    assert len(review.split()) >= 2 and review.strip()[0].isalpha(), review


def test_load_causal_lm_bundled() -> None:
    model, tok = load_causal_lm("rlseek/tiny-lm")
    assert not model.training
    assert tok.padding_side == "left" and tok.pad_token_id != tok.eos_token_id
    assert model.config.pad_token_id == tok.pad_token_id
    assert next(model.parameters()).dtype == torch.float32
    model16, _ = load_causal_lm("rlseek/tiny-lm", dtype="bfloat16")
    assert next(model16.parameters()).dtype == torch.bfloat16


def test_pad_token_added_when_pad_is_eos(tmp_path: Path, plain) -> None:
    model, tok = plain
    tok = AutoTokenizer.from_pretrained(TINY)
    tok.pad_token = tok.eos_token  # a common shortcut that breaks RL masking
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    lm, tok2 = load_causal_lm(tmp_path)
    assert tok2.pad_token_id != tok2.eos_token_id
    assert tok2.convert_ids_to_tokens(tok2.pad_token_id) == "<|pad|>"
    # "<|pad|>" is already in this vocabulary: it is reused, no row is added.
    assert lm.get_input_embeddings().num_embeddings == len(tok2) == len(tok)
    assert load_tokenizer(tmp_path).pad_token_id == tok2.pad_token_id


def test_pad_token_added_and_embeddings_grown_when_missing(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    raw = Tokenizer(models.WordLevel({"<unk>": 0, "<eos>": 1, "a": 2, "b": 3}, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<eos>", unk_token="<unk>")
    assert tok.pad_token is None
    cfg = LlamaConfig(vocab_size=4, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, eos_token_id=1)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    lm, tok2 = load_causal_lm(tmp_path)
    assert tok2.pad_token == "<|pad|>" and tok2.pad_token_id == 4
    assert lm.get_input_embeddings().num_embeddings == 5
    assert lm.generation_config.pad_token_id == 4
    out = lm.generate(**tok2(["a b", "a"], return_tensors="pt", padding=True), max_new_tokens=2,
                      min_new_tokens=2)  # a random head may pick EOS first; the shape is the point
    assert out.shape == (2, 4)


def test_resolve_local_and_bundled(tmp_path: Path) -> None:
    assert Path(resolve_model_path("rlseek/tiny-lm")) == TINY
    assert resolve_model_path(TINY) == str(TINY)
    with pytest.raises(RlseekError, match="does not exist"):
        resolve_model_path(tmp_path / "missing")
    with pytest.raises(RlseekError, match="no config.json"):
        resolve_model_path(tmp_path)


def test_uncached_hub_name_offline_fails_in_one_line(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RlseekError) as err:
        load_causal_lm("rlseek-tests/not-a-cached-model")
    msg = str(err.value)
    assert "\n" not in msg
    assert "rlseek-tests/not-a-cached-model" in msg and "rlseek/tiny-lm" in msg
    assert "local directory" in msg
