"""Export an rlseek offline dataset to Minari's format (the Farama successor of D4RL).

Minari stores, per episode, T+1 observations (the last is the final observation), T actions,
rewards, ``terminations`` and ``truncations``; our datasets keep the final observation and the
terminal/timeout split, so nothing is lost. The export uses the ``minari`` package itself
(``create_dataset_from_buffers``, HDF5 storage), with the dataset's reference returns as
``ref_min_score``/``ref_max_score``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from rlseek.errors import DataError, RlseekError
from rlseek.offline.dataset import OfflineDataset


@contextlib.contextmanager
def _datasets_root(root: Path) -> Iterator[None]:
    # Minari finds its datasets through MINARI_DATASETS_PATH only.
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def default_dataset_id(ds: OfflineDataset) -> str:
    """e.g. ``rlseek/reacher/medium-replay-v0`` for a Reacher medium-replay dataset."""
    env = str(ds.metadata.get("env_id", "env")).split("/")[-1].split("-v")[0].lower()
    return f"rlseek/{env}/{ds.metadata.get('kind', 'data')}-v0"


def export_minari(ds: OfflineDataset, root: str | Path, dataset_id: str | None = None) -> Path:
    """Write ``ds`` as Minari dataset ``dataset_id`` under ``root``; returns its folder.

    Load it back with ``MINARI_DATASETS_PATH=root`` and ``minari.load_dataset(dataset_id)``.
    """
    try:
        import minari
        from minari.data_collector import EpisodeBuffer
    except ImportError:
        raise RlseekError("Minari export needs the 'minari[hdf5]' package (pip install 'minari[hdf5]')") from None
    dataset_id = dataset_id or default_dataset_id(ds)
    root = Path(root).resolve()  # Minari joins a relative data path twice when sizing the dataset
    folder = root / dataset_id
    if folder.exists():
        raise RlseekError(f"Minari dataset {folder} exists; it is never overwritten — choose another id or root")
    env_id = ds.metadata.get("env_id")
    env = gym.make(env_id, **(ds.metadata.get("env_kwargs") or {}))
    ds.check_env(env, source="Minari export")
    buffers = []
    for i, e in enumerate(ds.episodes):
        n = len(e)
        term = np.zeros(n, dtype=bool)
        trunc = np.zeros(n, dtype=bool)
        (term if e.terminated else trunc)[-1] = True
        obs_dtype = env.observation_space.dtype
        buffers.append(EpisodeBuffer(
            id=i, observations=e.observations.astype(obs_dtype), actions=_actions(e.actions, env.action_space),
            rewards=e.rewards.astype(np.float64), terminations=term, truncations=trunc, infos={},
        ))
    ref = ds.metadata.get("reference") or {}
    root.mkdir(parents=True, exist_ok=True)
    with _datasets_root(root), warnings.catch_warnings():
        # Minari warns about unset author/permalink/eval_env metadata; none of them apply here.
        warnings.simplefilter("ignore", UserWarning)
        try:
            minari.create_dataset_from_buffers(
                dataset_id=dataset_id, buffer=buffers, env=env,
                algorithm_name=str((ds.metadata.get("source") or {}).get("policy", "")),
                ref_min_score=ref.get("random_return"), ref_max_score=ref.get("expert_return"),
                description=f"rlseek {ds.metadata.get('kind')} dataset of {env_id}; data sha256 "
                            f"{ds.metadata.get('data_sha256')}",
                data_format="hdf5", jpeg_encoding=False,
            )
        except BaseException as exc:
            shutil.rmtree(folder, ignore_errors=True)  # leave nothing half-written behind
            if isinstance(exc, ValueError):
                raise DataError(f"Minari export failed: {exc}") from None
            raise
    env.close()
    return folder


def _actions(actions: np.ndarray, space: gym.Space) -> Any:
    if isinstance(space, gym.spaces.Discrete):
        return actions.astype(np.int64)
    return actions.astype(space.dtype)
