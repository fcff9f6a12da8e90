"""Mixture-of-experts MLP blocks in a transformers causal LM (Llama-style ``layer.mlp``).

:func:`moeify` replaces every decoder layer's gated MLP (``down(silu(gate(x)) * up(x))``,
3 matrices of ``hidden x intermediate``) with an :class:`~rlseek.models.moe.MoEBlock` of
``experts`` ungated SiLU MLPs, each ``hidden -> 1.5 * intermediate / top_k -> hidden``: a token
passes through ``top_k`` experts, i.e. as many MLP weights as the dense layer had (equal
*active* parameters; the total grows with the expert count). The balance loss rides on the
block output (``attach_aux``), so any loss computed from the logits — the builder's language
modelling loss, lm-ppo's PPO loss — trains the router towards balance too.

The model's config records ``rlseek_moe: {experts, top_k, balance_coef, expert_hidden}``;
:func:`rlseek.models.loader.load_causal_lm` sees it, builds the architecture from the config,
applies :func:`moeify` and loads the weights strictly, so ``save_pretrained`` folders of a
MoE model (the builder's, lm-ppo's ``final/``) load like any other. ``transformers``'
``AutoModelForCausalLM.from_pretrained`` alone would drop the expert weights.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rlseek.errors import RlseekError
from rlseek.models.moe import MoEBlock, MoESpec

CONFIG_KEY = "rlseek_moe"


def _layers(model: nn.Module) -> list[nn.Module]:
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None or not all(hasattr(layer, "mlp") for layer in layers):
        raise RlseekError(f"MoE layers need a Llama-style model (model.layers[i].mlp); "
                          f"{type(model).__name__} has none")
    return list(layers)


def moeify(model: nn.Module, spec: MoESpec, expert_hidden: int | None = None) -> nn.Module:
    """Replace each decoder layer's MLP of ``model`` by a MoE block (in place; returns it)."""
    spec.check("moe")
    cfg = model.config
    hidden = int(cfg.hidden_size)
    width = int(expert_hidden or max(1, round(1.5 * int(cfg.intermediate_size) / spec.top_k)))
    for layer in _layers(model):
        layer.mlp = MoEBlock(hidden, width, hidden, spec, nn.SiLU, attach_aux=True)
    setattr(cfg, CONFIG_KEY, {"experts": spec.experts, "top_k": spec.top_k,
                              "balance_coef": spec.balance_coef, "expert_hidden": width})
    return model


def moe_config(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``rlseek_moe`` entry of a model folder's config.json, or None (dense or not local)."""
    cfg = Path(path) / "config.json"
    if not cfg.is_file():
        return None
    try:
        return json.loads(cfg.read_text()).get(CONFIG_KEY)
    except (OSError, ValueError):
        return None


def load_moe_causal_lm(path: str | os.PathLike[str], entry: dict[str, Any], dtype: Any = None) -> Any:
    """Build the architecture of ``path``'s config, make it MoE, load its weights strictly."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(path)
    model = AutoModelForCausalLM.from_config(config)
    spec = MoESpec.from_dict({k: entry[k] for k in ("experts", "top_k", "balance_coef") if k in entry},
                             f"{path}/config.json {CONFIG_KEY}")
    moeify(model, spec, int(entry.get("expert_hidden") or 0) or None)
    files = sorted(Path(path).glob("model*.safetensors"))  # not value_head.safetensors
    if not files:
        raise RlseekError(f"cannot load a causal LM from '{path}': no .safetensors weights")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shapes differ from what config.json describes
        detail = str(exc).strip().splitlines()[-1].strip()
        raise RlseekError(f"cannot load the MoE LM from '{path}': its weights do not match its "
                          f"config.json ({detail})") from None
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise RlseekError(f"cannot load the MoE LM from '{path}': missing {sorted(set(missing) - tied)[:3]}, "
                          f"unexpected {sorted(unexpected)[:3]}")
    if tied:
        model.tie_weights()
    if dtype is not None:
        model.to(dtype)
    return model
