"""Causal LMs for the text tasks: the bundled ``rlseek/tiny-lm`` and the loader for any other."""

from rlseek.models.loader import (
    BUNDLED_MODELS,
    DEFAULT_MODEL,
    load_causal_lm,
    load_tokenizer,
    prepare_tokenizer,
    resolve_device,
    resolve_model_path,
)

__all__ = [
    "BUNDLED_MODELS",
    "DEFAULT_MODEL",
    "load_causal_lm",
    "load_tokenizer",
    "prepare_tokenizer",
    "resolve_device",
    "resolve_model_path",
]
