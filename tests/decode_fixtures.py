"""Shared by the CUDA decode tests: one graph decode of the same prompts with a
:class:`~rlseek.envs.text.static_decode.StaticDecoder` switch on and off."""

from __future__ import annotations

from typing import Any

import torch

from rlseek.envs.text import heldout_prompts
from rlseek.envs.text.rollout import DecodeSettings, Generation, RolloutEngine


def switched_graph_decodes(lm: torch.nn.Module, tok: Any, switch: str, new_tokens: int,
                           temperature: float) -> dict[bool, tuple[Generation, Any]]:
    """bf16 CUDA-graph decodes of 40 held-out Arithmetic prompts, seeded, with the decoder
    attribute ``switch`` True and False: {value: (generation, decoder)}."""
    enc = tok(heldout_prompts("rlseek/Arithmetic-v0", n=40, seed=2)["prompts"], return_tensors="pt",
              padding=True)
    outs = {}
    for on in (True, False):
        engine = RolloutEngine.for_tokenizer(lm, tok)
        dec = engine.static_decoder(True)
        setattr(dec, switch, on)
        with torch.autocast("cuda", torch.bfloat16):
            out = engine.decode(enc["input_ids"], enc["attention_mask"], new_tokens,
                                DecodeSettings(temperature=temperature, suppress_eos=True),
                                torch.Generator(device="cuda").manual_seed(0))
        outs[on] = (out, dec)
    return outs


def same_tokens(outs: dict[bool, tuple[Generation, Any]]) -> torch.Tensor:
    """1.0 where the two decodes chose the same token, (rows, tokens)."""
    return (outs[True][0].tokens == outs[False][0].tokens).float()
