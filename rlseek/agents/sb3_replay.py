"""Replay buffers in checkpoints: the filled rows only, as ``.npz`` (no pickle).

SB3's ``save_replay_buffer`` pickles the whole buffer object. That writes every row of the
buffer, filled or not (a 10⁶-transition HER buffer for FetchReach is 302 MB on disk after
5,000 steps), and loading a pickle can run arbitrary code. rlseek writes the filled rows of
each buffer array to an ``.npz`` file and reads it back with ``allow_pickle=False`` into the
empty buffer that the loaded model already has, so a checkpoint's buffer costs what it holds
(about 300 bytes per FetchReach transition: 3 MB after 10,000 steps) and loading it cannot
run code.

Supported buffers: SB3's ``ReplayBuffer``, ``DictReplayBuffer`` and ``HerReplayBuffer``
(episode bookkeeping included). HER's optional per-transition info dicts
(``copy_info_dict=True``) are not kept.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3 import HerReplayBuffer
from stable_baselines3.common.buffers import ReplayBuffer

from rlseek.errors import RlseekError

# Buffer arrays indexed by [row, env, ...]; dict-valued ones are saved per key as "name.key".
_ROW_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts",
               "ep_start", "ep_length")
# Arrays indexed by env only (HER: where each env's running episode started).
_ENV_ARRAYS = ("_current_ep_start",)
_META = ("pos", "full", "buffer_size", "n_envs")


def save_replay_buffer(buffer: ReplayBuffer, path: str | Path) -> None:
    """Write the filled rows of ``buffer`` (an SB3 replay buffer) to ``path`` as ``.npz``."""
    rows = buffer.buffer_size if buffer.full else buffer.pos
    arrays: dict[str, np.ndarray] = {
        "pos": np.asarray(buffer.pos), "full": np.asarray(bool(buffer.full)),
        "buffer_size": np.asarray(buffer.buffer_size), "n_envs": np.asarray(buffer.n_envs),
    }
    for name in _ROW_ARRAYS + _ENV_ARRAYS:
        value: Any = getattr(buffer, name, None)
        if value is None:  # e.g. next_observations with optimize_memory_usage
            continue
        items = value.items() if isinstance(value, dict) else [("", value)]
        for key, arr in items:
            full_name = f"{name}.{key}" if key else name
            arrays[full_name] = arr if name in _ENV_ARRAYS else arr[:rows]
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load_replay_buffer(buffer: ReplayBuffer, path: str | Path) -> None:
    """Fill the empty ``buffer`` of a freshly loaded model from a file written by
    :func:`save_replay_buffer`.

    The last, unfinished episode in the file is closed, as SB3 does when it reloads a buffer:
    training resumes with fresh episodes, so the transitions after it never come.
    """
    with np.load(path, allow_pickle=False) as data:
        size, n_envs = int(data["buffer_size"]), int(data["n_envs"])
        if (size, n_envs) != (buffer.buffer_size, buffer.n_envs):
            raise RlseekError(
                f"{path}: replay buffer of {size} rows x {n_envs} envs does not fit the model's "
                f"({buffer.buffer_size} x {buffer.n_envs}); was run.n_envs or buffer_size changed?"
            )
        for full_name in data.files:
            if full_name in _META:
                continue
            name, _, key = full_name.partition(".")
            target: Any = getattr(buffer, name, None)
            if isinstance(target, dict):
                target = target.get(key)
            saved = data[full_name]
            if target is None or target.shape[1:] != saved.shape[1:] or len(saved) > len(target):
                raise RlseekError(f"{path}: array '{full_name}' does not fit the model's replay buffer")
            target[: len(saved)] = saved
        buffer.pos = int(data["pos"])
        buffer.full = bool(data["full"])
    if isinstance(buffer, HerReplayBuffer):
        with warnings.catch_warnings():
            # SB3 warns that it truncates the last episode; here that is what resuming means.
            warnings.simplefilter("ignore", UserWarning)
            buffer.truncate_last_trajectory()
    elif getattr(buffer, "optimize_memory_usage", False) and buffer.size() > 0:
        # Without stored next observations, the last transition's successor would be the first
        # observation of the next (new) episode: end it here, as SB3 does on a fresh learn().
        buffer.dones[(buffer.pos - 1) % buffer.buffer_size] = True
