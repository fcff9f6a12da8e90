"""The ``reward_model`` text reward term: a trained reward model's score of prompt + completion.

Use it with a weight next to other terms in any text env::

    gymnasium.make("rlseek/Reviews-v0", reward={"reward_model": 1.0, "efficiency": 0.1},
                   reward_params={"reward_model": {"path": "rm/reviews"}})

The whole batch is scored in one forward pass (chunks of :data:`MAX_FORWARD_TEXTS` for very
large batches). Loaded models are cached per (path, device) and reloaded only when the
directory's ``reward_model.json`` changes, so PPO pays the load once.

With ``normalize=True`` (the default) the score is standardized with the mean and standard
deviation of the model's scores on its own training texts (saved at training time), so a
weight of 1.0 means about one unit per standard deviation of the training data, whatever
scale the Bradley–Terry fit landed on.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from rlseek.errors import RlseekError
from rlseek.rewards.registry import TextBatch, register_reward

MAX_FORWARD_TEXTS = 512
"""Largest number of texts scored in one forward pass (bounds memory on big batches)."""

_CACHE: dict[tuple[str, str], tuple[float, Any]] = {}
_LOCK = threading.Lock()


def _device(device: str) -> str:
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load_cached(path: str | Path, device: str = "auto") -> Any:
    """The :class:`RewardModel` at ``path`` on ``device``, loaded once and then cached.

    A model directory replaced on disk (its marker rewritten) is loaded again.
    """
    from rlseek.rewards.learned.model import MARKER, RewardModel

    resolved = Path(path).expanduser().resolve()
    dev = _device(device)
    marker = resolved / MARKER
    try:
        stamp = marker.stat().st_mtime_ns
    except OSError:
        stamp = -1.0
    key = (str(resolved), dev)
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        model = RewardModel.load(resolved, device=dev)
        _CACHE[key] = (stamp, model)
        return model


def clear_cache() -> None:
    """Forget every cached reward model (frees their memory)."""
    with _LOCK:
        _CACHE.clear()


@register_reward("reward_model", kind="text")
def reward_model(
    batch: TextBatch, *, path: str | None = None, normalize: bool = True, device: str = "auto"
) -> np.ndarray:
    """Learned reward: a trained reward model's score of prompt + completion.

    Params: ``path`` the reward-model directory (from ``rlseek reward-model train``);
    ``normalize`` standardize by the score mean/std on the model's training data;
    ``device`` "auto" (GPU when available), "cpu" or "cuda".
    """
    if not path:
        raise RlseekError(
            "reward term 'reward_model' needs a path: reward_params: {reward_model: {path: DIR}}"
        )
    model = load_cached(path, device)
    texts = [p + c for p, c in zip(batch.prompts, batch.completions)]
    if not texts:
        return np.zeros(0, dtype=np.float64)
    scores = model.score(texts, batch_size=MAX_FORWARD_TEXTS)
    return model.normalized(scores) if normalize else scores
