"""Text-generation environments: ``rlseek/Arithmetic-v0`` and ``rlseek/Reviews-v0``.

* :class:`~rlseek.envs.text.env.ArithmeticEnv`, :class:`~rlseek.envs.text.env.ReviewsEnv`: the
  token-level single-sequence envs registered with Gymnasium.
* :func:`make_text_vector_env`: a batch stepped in lockstep for KV-cached policies.
* :func:`heldout_prompts`: seeded evaluation prompts disjoint from the training stream.

Heavy modules (tokenizers, transformers) load on first use, so registering the envs at
``import rlseek`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TextVectorEnv", "get_task", "heldout_prompts", "load_prompts_file",
           "make_text_vector_env"]

_LAZY = {
    "TextVectorEnv": "rlseek.envs.text.vector",
    "make_text_vector_env": "rlseek.envs.text.vector",
    "heldout_prompts": "rlseek.envs.text.tasks",
    "load_prompts_file": "rlseek.envs.text.tasks",
    "get_task": "rlseek.envs.text.tasks",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rlseek.envs.text' has no attribute '{name}'")
