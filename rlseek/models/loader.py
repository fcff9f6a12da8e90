"""Load causal LMs and their tokenizers: the bundled ``rlseek/tiny-lm``, a directory, or a hub name.

Every loader returns a tokenizer ready for RL generation:

* **pad ≠ EOS.** PPO-RLHF masks padding and scores the EOS token, so the two must differ. A
  tokenizer without a pad token, or whose pad token is its EOS token (a common shortcut), gets a
  new special token ``<|pad|>``; :func:`load_causal_lm` then grows the model's embedding matrix
  by that one row (the pad embedding is never attended to, so its value does not matter).
* **Left padding.** Prompts are left-padded so that every row's next token sits in the last
  column, as batched generation with a KV cache needs.

Hub names are resolved through the local Hugging Face cache only when no network is reachable
(or ``HF_HUB_OFFLINE=1``): an uncached name then fails at once with one :class:`RlseekError`
line naming the local options, instead of retrying a download for a minute.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from rlseek.errors import RlseekError

DEFAULT_MODEL = "rlseek/tiny-lm"
"""The bundled tiny LM: the default policy, backbone and tokenizer everywhere in rlseek."""

BUNDLED_MODELS: dict[str, Path] = {
    DEFAULT_MODEL: Path(__file__).resolve().parent.parent / "assets" / "tiny-lm",
}
"""Names of the models that ship inside the rlseek package, and their directories."""
PAD_TOKEN = "<|pad|>"

_OFFLINE_VALUES = {"1", "true", "yes", "on"}
# A hub repository id: "name" or "org/name" (letters, digits, '-', '_', '.'), no path syntax.
_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def _local_options() -> str:
    return (f"use the bundled model '{DEFAULT_MODEL}' or a local directory written by "
            "save_pretrained")


def _hub_offline() -> bool:
    """True when the hub cannot be reached: HF_HUB_OFFLINE set, or its host does not answer."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _OFFLINE_VALUES:
        return True
    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or ""
    try:
        with socket.create_connection((host, 443), timeout=3):
            return False
    except OSError:
        return True


def resolve_model_path(name_or_path: str | os.PathLike[str]) -> str:
    """Where to load ``name_or_path`` from: a directory path, or a hub name to download.

    Resolution order: the bundled names (:data:`BUNDLED_MODELS`), an existing local directory,
    then a hub name (``org/model``). A hub name is returned as is when it is cached locally or the
    hub is reachable; otherwise :class:`RlseekError`.
    """
    name = os.fspath(name_or_path)
    if name in BUNDLED_MODELS:
        path = BUNDLED_MODELS[name]
        if not (path / "config.json").is_file():
            raise RlseekError(
                f"the bundled model '{name}' is missing from {path}; rebuild it with "
                "`python scripts/build_tiny_lm.py --out rlseek/assets/tiny-lm`"
            )
        return str(path)
    path = Path(name).expanduser()
    if path.is_dir():
        if not any((path / f).is_file() for f in ("config.json", "tokenizer.json",
                                                  "tokenizer_config.json")):
            raise RlseekError(
                f"model directory '{path}' holds no config.json or tokenizer files; "
                "point to a directory written by save_pretrained"
            )
        return str(path)
    if not _HUB_NAME.fullmatch(name):
        raise RlseekError(f"model directory '{name}' does not exist; {_local_options()}")
    if _hub_cached(name):
        return name
    if _hub_offline():
        raise RlseekError(
            f"model '{name}' is no local directory and not in the local Hugging Face cache, "
            f"and the hub is offline; {_local_options()}"
        )
    return name


def _hub_cached(name: str) -> bool:
    """True when the hub cache holds a config or tokenizer file of ``name``."""
    from huggingface_hub import try_to_load_from_cache

    for filename in ("config.json", "tokenizer_config.json"):
        hit = try_to_load_from_cache(name, filename)
        if isinstance(hit, str):
            return True
    return False


def _load_tokenizer_from(path: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RlseekError(f"cannot load a tokenizer from '{path}': {first}") from None


def prepare_tokenizer(tokenizer: Any) -> bool:
    """Make ``tokenizer`` fit for RL generation in place; True when a pad token was added.

    Sets left padding and guarantees a pad token distinct from EOS (adding ``<|pad|>`` when
    the tokenizer has no pad token or uses EOS as pad). A tokenizer without an EOS token
    cannot end episodes and is rejected.
    """
    if tokenizer.eos_token_id is None:
        raise RlseekError(
            f"tokenizer '{tokenizer.name_or_path}' has no EOS token; text environments end "
            "episodes at EOS, so set tokenizer.eos_token before use"
        )
    added = False
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
        added = True
    tokenizer.padding_side = "left"
    return added


def load_tokenizer(name_or_path: str | os.PathLike[str] = DEFAULT_MODEL) -> Any:
    """The tokenizer of a model (bundled name, directory or hub name), ready for RL.

    See :func:`prepare_tokenizer` for what is adjusted. Text environments use this, so they
    hold only a tokenizer, never model weights.
    """
    tokenizer = _load_tokenizer_from(resolve_model_path(name_or_path))
    prepare_tokenizer(tokenizer)
    return tokenizer


def _resolve_dtype(dtype: Any) -> Any:
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
             "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if str(dtype) not in names:
        raise RlseekError(f"unknown dtype '{dtype}'; use one of {sorted(names)}")
    return names[str(dtype)]


def resolve_device(device: str = "cpu") -> str:
    """``"auto"`` becomes ``"cuda"`` when a GPU is visible, else ``"cpu"``; others pass through
    (:func:`rlseek.runtime.resolve_device`, the one place this is decided)."""
    from rlseek.runtime import resolve_device as resolve

    return resolve(device)


def load_causal_lm(
    name_or_path: str | os.PathLike[str] = DEFAULT_MODEL,
    *,
    device: str = "cpu",
    dtype: Any = None,
) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` for generation and RL fine-tuning.

    Args:
        name_or_path: ``"rlseek/tiny-lm"`` (bundled), a ``save_pretrained`` directory, or a
            hub name (cached, or downloadable when the hub is reachable).
        device: torch device string, or ``"auto"`` (GPU when available).
        dtype: ``None`` (the checkpoint's own, float32 for the tiny LM), a ``torch.dtype`` or a
            name such as ``"bfloat16"``.

    The model is returned in eval mode (dropout off, as PPO-RLHF needs for consistent
    log-probs); its generation config carries the tokenizer's pad and EOS ids.
    """
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(name_or_path)
    tokenizer = _load_tokenizer_from(path)
    added_pad = prepare_tokenizer(tokenizer)
    from rlseek.models.moe_lm import load_moe_causal_lm, moe_config

    try:
        moe = moe_config(path)  # rlseek's MoE MLP blocks: transformers would drop the experts
        if moe is not None:
            model = load_moe_causal_lm(path, moe, _resolve_dtype(dtype))
        else:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=_resolve_dtype(dtype))
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RlseekError(f"cannot load a causal LM from '{path}': {first}") from None
    if added_pad or model.get_input_embeddings().num_embeddings < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    if model.generation_config is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        if model.generation_config.eos_token_id is None:
            model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.to(resolve_device(device))
    model.eval()
    return model, tokenizer
