"""Reward models from preference data: data, synthesis, labeling, Bradley–Terry training.

The pipeline (RLHF's first two stages)::

    rlseek prefs synth --task rlseek/Reviews-v0 --n 4000 --noise 0.1 --out prefs.jsonl
    rlseek reward-model train --train prefs.jsonl --out rm/
    # then in a text env config: reward: {reward_model: 1.0}, reward_params: {reward_model: {path: rm/}}

The model itself and the ``reward_model`` term that scores with it live in
:mod:`rlseek.rewards.learned` (below the envs); ``RewardModel`` is re-exported here.

Names are imported lazily so that ``import rlseek.reward_models`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PreferencePair": "rlseek.reward_models.data",
    "PreferenceDataset": "rlseek.reward_models.data",
    "RewardModel": "rlseek.rewards.learned.model",
    "BradleyTerryTrainer": "rlseek.reward_models.trainer",
    "TrainConfig": "rlseek.reward_models.trainer",
    "evaluate": "rlseek.reward_models.trainer",
    "AdversarialConfig": "rlseek.reward_models.adversarial",
    "ScriptedAnnotator": "rlseek.reward_models.synth",
    "synthesize": "rlseek.reward_models.synth",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'rlseek.reward_models' has no attribute {name!r}")
