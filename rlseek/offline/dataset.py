"""Offline datasets: episodes of (observation, action, reward) with terminals and timeouts apart.

On disk a dataset is one HDF5 file in d3rlpy's episode format (``columns``, ``num_episodes``,
``observations_<i>``, ``actions_<i>``, ``rewards_<i>``, ``terminated_<i>``, ``version``), so
``d3rlpy.dataset.ReplayBuffer.load`` reads it as is, plus an ``rlseek`` group that d3rlpy ignores:

* ``rlseek/final_observations``: per episode, the observation after its last action. d3rlpy keeps
  T observations for T actions and so drops the last transition of an episode that did not
  terminate; with this row the full N+1 observations of every episode are kept (Minari's layout);
* ``rlseek/episode_end``: per episode 0 = terminated (the MDP ended: no bootstrapping),
  1 = truncated by the env's time limit, 2 = cut by the collection budget. 1 and 2 are D4RL's
  "timeouts": the episode could have gone on, so the value of the last state is bootstrapped;
* ``rlseek`` attrs ``metadata``: JSON (env id and version, kind, seeds, behaviour returns,
  reference returns for normalized scores, spaces, versions and ``data_sha256``).

Files are read with h5py only: nothing is ever unpickled. ``data_sha256`` is checked on every
read, so a modified or damaged file fails with one clear line instead of training on bad data.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import h5py
import numpy as np

from rlseek.errors import DataError

FORMAT = "rlseek-offline/1"
END_TERMINATED, END_TIME_LIMIT, END_CUT = 0, 1, 2


@dataclass
class EpisodeData:
    """One episode with T steps.

    Attributes:
        observations: ``(T + 1, *obs_shape)`` float32; row ``t + 1`` is the observation after
            action ``t`` (the last row is the final observation).
        actions: ``(T, *act_shape)`` float32 for Box actions, ``(T,)`` int64 for Discrete.
        rewards: ``(T,)`` float32 env rewards.
        end: how the episode ended: ``END_TERMINATED``, ``END_TIME_LIMIT`` or ``END_CUT``.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    end: int

    def __post_init__(self) -> None:
        t = len(self.actions)
        if t < 1 or len(self.rewards) != t or len(self.observations) != t + 1:
            raise DataError(
                f"episode arrays do not line up: {len(self.observations)} observations, "
                f"{t} actions, {len(self.rewards)} rewards (need T+1, T, T with T >= 1)"
            )
        if self.end not in (END_TERMINATED, END_TIME_LIMIT, END_CUT):
            raise DataError(f"episode end code must be 0, 1 or 2, got {self.end}")

    @property
    def terminated(self) -> bool:
        return self.end == END_TERMINATED

    @property
    def timeout(self) -> bool:
        return self.end != END_TERMINATED

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def episode_return(self) -> float:
        return float(np.sum(self.rewards, dtype=np.float64))


@dataclass
class OfflineDataset:
    """Episodes plus metadata (see the module docstring for the keys)."""

    episodes: list[EpisodeData]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def n_transitions(self) -> int:
        return int(sum(len(e) for e in self.episodes))

    @property
    def discrete(self) -> bool:
        return self.episodes[0].actions.ndim == 1

    def transitions(self) -> dict[str, np.ndarray]:
        """Flat D4RL-style arrays: observations, actions, rewards, next_observations, terminals,
        timeouts (each of length N); ``terminals[t]``/``timeouts[t]`` mark the last step of a
        terminated/truncated episode."""
        obs, nxt, term, tout = [], [], [], []
        for e in self.episodes:
            obs.append(e.observations[:-1])
            nxt.append(e.observations[1:])
            t_flags, o_flags = np.zeros(len(e), dtype=bool), np.zeros(len(e), dtype=bool)
            (t_flags if e.terminated else o_flags)[-1] = True
            term.append(t_flags)
            tout.append(o_flags)
        return {
            "observations": np.concatenate(obs),
            "actions": np.concatenate([e.actions for e in self.episodes]),
            "rewards": np.concatenate([e.rewards for e in self.episodes]),
            "next_observations": np.concatenate(nxt),
            "terminals": np.concatenate(term),
            "timeouts": np.concatenate(tout),
        }

    def complete_returns(self) -> np.ndarray:
        """Returns of the episodes the env ended itself (terminated or time limit)."""
        return np.array([e.episode_return for e in self.episodes if e.end != END_CUT], dtype=np.float64)

    def fingerprint(self) -> str:
        """SHA-256 of the data (arrays in a fixed order, dtype and shape), metadata excluded."""
        h = hashlib.sha256()
        for e in self.episodes:
            for arr in (e.observations, e.actions, e.rewards, np.array([e.end], dtype=np.int8)):
                a = np.ascontiguousarray(arr)
                h.update(f"{a.dtype.str}{a.shape}".encode())
                h.update(a.tobytes())
        return h.hexdigest()

    def normalized(self, returns: Any) -> np.ndarray | None:
        """100 · (R − R_random) / (R_expert − R_random) with this dataset's reference returns."""
        ref = self.metadata.get("reference") or {}
        return normalized_score(returns, ref.get("random_return"), ref.get("expert_return"))

    def check_env(self, env: gym.Env, source: str = "dataset") -> None:
        """Fail with one line when the env's spaces do not match the data."""
        check_spaces(self, env.observation_space, env.action_space, source)

    def to_d3rlpy(self) -> Any:
        """A d3rlpy ``ReplayBuffer`` over these episodes (terminal flags per episode kept)."""
        from d3rlpy.constants import ActionSpace
        from d3rlpy.dataset import Episode, InfiniteBuffer, ReplayBuffer

        from rlseek.offline.algos import quiet_d3rlpy

        quiet_d3rlpy()  # d3rlpy logs an info line per buffer built
        eps = [Episode(*_d3_columns(e), terminated=e.terminated) for e in self.episodes]
        if self.discrete:
            n = int(self.metadata.get("action_space", {}).get("n") or 0)
            n = max(n, int(max(int(e.actions.max()) for e in self.episodes)) + 1)
            return ReplayBuffer(InfiniteBuffer(), episodes=eps, action_space=ActionSpace.DISCRETE, action_size=n)
        return ReplayBuffer(InfiniteBuffer(), episodes=eps, action_space=ActionSpace.CONTINUOUS,
                            action_size=int(np.prod(self.episodes[0].actions.shape[1:])))


def normalized_score(returns: Any, random_return: float | None, expert_return: float | None) -> np.ndarray | None:
    """D4RL's normalized score: 0 = the random policy, 100 = the expert (None if no references)."""
    if random_return is None or expert_return is None or expert_return == random_return:
        return None
    r = np.asarray(returns, dtype=np.float64)
    return 100.0 * (r - random_return) / (expert_return - random_return)


def space_to_dict(space: gym.Space) -> dict[str, Any]:
    """A JSON description of a Box or Discrete space (other spaces are refused)."""
    if isinstance(space, gym.spaces.Box):
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype),
                "low": np.asarray(space.low, dtype=np.float64).ravel().tolist() if space.is_bounded() else None,
                "high": np.asarray(space.high, dtype=np.float64).ravel().tolist() if space.is_bounded() else None}
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n)}
    raise DataError(
        f"offline datasets support Box observations and Box or Discrete actions, got {type(space).__name__}; "
        "wrap the env (e.g. gymnasium.wrappers.FlattenObservation) first"
    )


def check_spaces(ds: OfflineDataset, obs_space: gym.Space, act_space: gym.Space, source: str) -> None:
    """Compare the data's observation/action shapes and action type with the given spaces."""
    obs_shape = tuple(ds.episodes[0].observations.shape[1:])
    if not isinstance(obs_space, gym.spaces.Box) or tuple(obs_space.shape) != obs_shape:
        raise DataError(
            f"{source}: observations have shape {obs_shape} but the env's observation space is {obs_space}"
        )
    if isinstance(act_space, gym.spaces.Discrete):
        if not ds.discrete:
            raise DataError(f"{source}: actions are continuous but the env's action space is {act_space}")
        top = max(int(e.actions.max()) for e in ds.episodes)
        if top >= act_space.n:
            raise DataError(f"{source}: action {top} is outside the env's action space {act_space}")
    elif isinstance(act_space, gym.spaces.Box):
        act_shape = tuple(ds.episodes[0].actions.shape[1:])
        if ds.discrete or tuple(act_space.shape) != act_shape:
            kind = "discrete" if ds.discrete else f"of shape {act_shape}"
            raise DataError(f"{source}: actions are {kind} but the env's action space is {act_space}")
    else:
        raise DataError(f"{source}: unsupported env action space {act_space}")


def _d3_columns(e: EpisodeData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    acts = e.actions.reshape(-1, 1).astype(np.int32) if e.actions.ndim == 1 else e.actions
    return e.observations[:-1], acts, e.rewards.reshape(-1, 1)


def write_dataset(path: str | Path, dataset: OfflineDataset) -> str:
    """Write ``dataset`` atomically (temp file + rename); returns its data fingerprint.

    ``metadata['data_sha256']`` is set to the fingerprint before writing.
    """
    from d3rlpy.dataset import Episode
    from d3rlpy.dataset.io import dump

    if not dataset.episodes:
        raise DataError("refusing to write an empty dataset (0 episodes)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = dataset.fingerprint()
    meta = dict(dataset.metadata, format=FORMAT, data_sha256=digest,
                n_episodes=len(dataset.episodes), n_transitions=dataset.n_transitions)
    dataset.metadata = meta
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        eps = [Episode(*_d3_columns(e), terminated=e.terminated) for e in dataset.episodes]
        with open(tmp, "w+b") as f:  # h5py reads back what it writes
            dump(eps, f)
        with h5py.File(tmp, "a") as h5:
            g = h5.create_group("rlseek")
            g.create_dataset("final_observations", data=np.stack([e.observations[-1] for e in dataset.episodes]))
            g.create_dataset("episode_end", data=np.array([e.end for e in dataset.episodes], dtype=np.int8))
            g.attrs["metadata"] = json.dumps(meta, sort_keys=True)
        # mkstemp makes the file owner-only; a dataset gets the usual permissions (umask).
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Only the metadata of a dataset file (cheap; the data is not checked)."""
    with _open(path) as h5:
        return _metadata(h5, path)


def read_dataset(path: str | Path, verify: bool = True) -> OfflineDataset:
    """Read a dataset written by :func:`write_dataset`; with ``verify`` the data fingerprint is
    recomputed and compared. Every problem is a :class:`DataError` naming the file."""
    with _open(path) as h5:
        meta = _metadata(h5, path)
        try:
            n = int(h5["num_episodes"][()])
            if n < 1:
                raise DataError(f"{path}: the dataset holds no episodes")
            finals = h5["rlseek/final_observations"][()]
            ends = h5["rlseek/episode_end"][()]
            if len(finals) != n or len(ends) != n:
                raise DataError(f"{path}: {n} episodes but {len(finals)} final observations and {len(ends)} end flags")
            episodes = []
            for i in range(n):
                obs = h5[f"observations_{i}"][()]
                acts = h5[f"actions_{i}"][()]
                rews = h5[f"rewards_{i}"][()].reshape(-1).astype(np.float32)
                terminated = bool(h5[f"terminated_{i}"][()])
                if terminated != (int(ends[i]) == END_TERMINATED):
                    raise DataError(f"{path}: episode {i}: terminal flag and rlseek/episode_end disagree")
                if np.issubdtype(acts.dtype, np.integer):
                    acts = acts.reshape(-1).astype(np.int64)
                full_obs = np.concatenate([obs, finals[i][None]], axis=0).astype(np.float32)
                episodes.append(EpisodeData(full_obs, acts, rews, int(ends[i])))
        except DataError:
            raise
        except (KeyError, OSError, ValueError, TypeError) as exc:
            raise DataError(f"{path}: malformed offline dataset ({_first_line(exc)})") from None
    ds = OfflineDataset(episodes, meta)
    if verify and meta.get("data_sha256") != ds.fingerprint():
        raise DataError(
            f"{path}: data fingerprint mismatch (the file was modified after it was written); "
            "collect it again with `rlseek offline collect`"
        )
    return ds


class _open:
    """``h5py.File(path, 'r')`` with missing, truncated and non-HDF5 files as DataError."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __enter__(self) -> h5py.File:
        if not self.path.is_file():
            raise DataError(f"dataset file not found: {self.path}")
        try:
            self.h5 = h5py.File(self.path, "r")
        except OSError as exc:
            raise DataError(f"{self.path}: not a readable HDF5 dataset ({_first_line(exc)})") from None
        return self.h5

    def __exit__(self, *exc: Any) -> None:
        self.h5.close()


def _metadata(h5: h5py.File, path: str | Path) -> dict[str, Any]:
    try:
        raw = h5["rlseek"].attrs["metadata"]
        meta = json.loads(raw)
    except (KeyError, OSError, ValueError, TypeError):
        raise DataError(
            f"{path}: not an rlseek offline dataset (no rlseek metadata); create one with `rlseek offline collect`"
        ) from None
    if meta.get("format") != FORMAT:
        raise DataError(f"{path}: unsupported dataset format {meta.get('format')!r} (expected {FORMAT})")
    return meta


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]

