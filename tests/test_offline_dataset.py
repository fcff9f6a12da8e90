"""Offline datasets: transitions line up with what the env did, after collection, after reloading
(rlseek's reader and d3rlpy's own), in the D4RL flat view and in Minari's N+1 layout; damaged
files fail with one clear error."""

import os

import gymnasium as gym
import h5py
import numpy as np
import pytest
import torch

import rlseek  # noqa: F401  (registers rlseek/* envs)
from rlseek.errors import DataError
from rlseek.offline.behaviour import replay_to_episodes
from rlseek.offline.collect import rollout
from rlseek.offline.dataset import (
    END_CUT,
    END_TERMINATED,
    END_TIME_LIMIT,
    OfflineDataset,
    read_dataset,
    write_dataset,
)


class Recorder(gym.Wrapper):
    """Keeps every transition the env really produced, independently of the dataset code."""

    def __init__(self, env):
        super().__init__(env)
        self.log = []
        self._obs = None

    def reset(self, **kw):
        obs, info = self.env.reset(**kw)
        self._obs = np.array(obs)
        return obs, info

    def step(self, action):
        obs, r, term, trunc, info = self.env.step(action)
        self.log.append((self._obs, np.array(action), float(r), np.array(obs), bool(term), bool(trunc)))
        self._obs = np.array(obs)
        return obs, r, term, trunc, info


def _collect(env_id, steps, seed=0, **kw):
    env = Recorder(gym.make(env_id, **kw))
    env.action_space.seed(seed)
    episodes = rollout(env, lambda _o: env.action_space.sample(), steps, seed)
    return env.log, OfflineDataset(episodes, {"env_id": env_id, "kind": "random",
                                              "reference": {"random_return": -40.0, "expert_return": -4.0}})


def _assert_matches(log, ds):
    tr = ds.transitions()
    assert len(tr["rewards"]) == len(log)
    f32 = np.float32
    np.testing.assert_array_equal(tr["observations"], np.stack([x[0] for x in log]).astype(f32))
    np.testing.assert_array_equal(tr["actions"], np.stack([x[1] for x in log]).astype(tr["actions"].dtype))
    np.testing.assert_array_equal(tr["rewards"], np.array([x[2] for x in log], dtype=f32))
    np.testing.assert_array_equal(tr["next_observations"], np.stack([x[3] for x in log]).astype(f32))
    np.testing.assert_array_equal(tr["terminals"], [x[4] for x in log])
    # A timeout is a time-limit truncation, or the budget cutting the last episode.
    expected_timeouts = np.array([x[5] and not x[4] for x in log])
    expected_timeouts[-1] = expected_timeouts[-1] or not log[-1][4]
    np.testing.assert_array_equal(tr["timeouts"], expected_timeouts)
    assert not np.any(tr["terminals"] & tr["timeouts"])


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    # Small MLPs gain nothing from more threads, and on a busy shared CPU extra threads spin.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def hopper(tmp_path_factory):
    """Random Hopper data: episodes end by termination (it falls) and the last one is cut."""
    log, ds = _collect("rlseek/Hopper-v0", 400, seed=3)
    path = tmp_path_factory.mktemp("ds") / "hopper.h5"
    write_dataset(path, ds)
    return log, ds, path


def test_collected_transitions_line_up_with_the_env(hopper):
    log, ds, _ = hopper
    _assert_matches(log, ds)
    assert sum(e.end == END_TERMINATED for e in ds.episodes) >= 3
    assert ds.episodes[-1].end == END_CUT


def test_reloaded_transitions_line_up_with_the_env(hopper):
    log, ds, path = hopper
    back = read_dataset(path)
    _assert_matches(log, back)
    assert back.fingerprint() == ds.fingerprint() == back.metadata["data_sha256"]
    assert [e.end for e in back.episodes] == [e.end for e in ds.episodes]


def test_time_limit_truncations_are_timeouts_not_terminals(tmp_path):
    log, ds = _collect("rlseek/Reacher-v0", 120, seed=0)  # 50-step episodes: 50 + 50 + 20 (cut)
    write_dataset(tmp_path / "r.h5", ds)
    back = read_dataset(tmp_path / "r.h5")
    _assert_matches(log, back)
    assert [e.end for e in back.episodes] == [END_TIME_LIMIT, END_TIME_LIMIT, END_CUT]
    tr = back.transitions()
    assert tr["terminals"].sum() == 0 and list(np.flatnonzero(tr["timeouts"])) == [49, 99, 119]


def test_d3rlpy_reads_the_file_and_its_transitions_line_up(hopper):
    from d3rlpy.dataset import InfiniteBuffer, ReplayBuffer

    log, ds, path = hopper
    with open(path, "rb") as f:
        rb = ReplayBuffer.load(f, InfiniteBuffer())
    assert len(rb.episodes) == len(ds.episodes)
    picker = rb.transition_picker
    k = 0
    for ep_d3, ep in zip(rb.episodes, ds.episodes):
        assert bool(ep_d3.terminated) == ep.terminated
        for t in range(ep_d3.transition_count):
            tr = picker(ep_d3, t)
            obs, act, rew, nxt, term, _ = log[k + t]
            np.testing.assert_array_equal(tr.observation, obs.astype(np.float32))
            np.testing.assert_array_equal(tr.action, act.astype(np.float32))
            assert tr.reward[0] == np.float32(rew)
            assert tr.terminal == float(term)
            if not term:  # d3rlpy puts zeros after a terminal, the real next state otherwise
                np.testing.assert_array_equal(tr.next_observation, nxt.astype(np.float32))
        k += len(ep)
    # d3rlpy drops the last transition of every non-terminated episode (no next observation in
    # its layout); rlseek's file keeps it in rlseek/final_observations.
    assert rb.transition_count == ds.n_transitions - sum(not e.terminated for e in ds.episodes)
    assert ds.to_d3rlpy().transition_count == rb.transition_count


def test_minari_export_keeps_n_plus_one_observations(hopper, tmp_path, monkeypatch):
    pytest.importorskip("minari")
    from rlseek.offline.minari_export import export_minari

    log, ds, path = hopper
    monkeypatch.chdir(tmp_path)  # a relative root, as users type it
    folder = export_minari(read_dataset(path), "minari", "test/hopper/random-v0")
    with h5py.File(folder / "data" / "main_data.hdf5", "r") as h5:
        k = 0
        for i, ep in enumerate(ds.episodes):
            g = h5[f"episode_{i}"]
            obs = g["observations"][()]
            assert obs.shape[0] == len(ep) + 1 == g["actions"].shape[0] + 1
            steps = log[k:k + len(ep)]
            np.testing.assert_allclose(obs[:-1], np.stack([s[0] for s in steps]).astype(np.float32))
            np.testing.assert_allclose(obs[1:], np.stack([s[3] for s in steps]).astype(np.float32))
            np.testing.assert_array_equal(g["terminations"][()], [s[4] for s in steps])
            assert bool(g["truncations"][-1]) == (not ep.terminated)
            k += len(ep)
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(tmp_path / "minari")
    try:
        import minari

        m = minari.load_dataset("test/hopper/random-v0")
        assert m.total_steps == ds.n_transitions and m.total_episodes == len(ds.episodes)
    finally:
        os.environ.pop("MINARI_DATASETS_PATH") if old is None else os.environ.__setitem__("MINARI_DATASETS_PATH", old)


def test_replay_buffer_split_keeps_terminals_and_timeouts_apart():
    # Two episodes in a replay buffer: one terminates at t=2, one is truncated at t=4; a third is
    # cut by the end of the buffer.
    obs = np.arange(7, dtype=np.float64)[:, None] * np.ones((1, 3))
    nxt = obs + 1
    nxt[2] = 99.0  # terminal observation differs from the next episode's reset
    nxt[4] = 77.0
    a = {"observations": obs, "next_observations": nxt, "actions": np.zeros((7, 2), np.float32),
         "rewards": np.arange(7, dtype=np.float32), "dones": np.array([0, 0, 1, 0, 1, 0, 0], bool),
         "timeouts": np.array([0, 0, 0, 0, 1, 0, 0], bool)}
    eps = replay_to_episodes(a)
    assert [e.end for e in eps] == [END_TERMINATED, END_TIME_LIMIT, END_CUT]
    assert [len(e) for e in eps] == [3, 2, 2]
    assert eps[0].observations[-1, 0] == 99.0 and eps[1].observations[-1, 0] == 77.0
    assert eps[2].observations[:, 0].tolist() == [5.0, 6.0, 7.0]
    bad = dict(a, observations=obs[::-1].copy())
    with pytest.raises(DataError, match="time-ordered"):
        replay_to_episodes(bad)


def test_truncated_file_is_a_data_error(hopper, tmp_path):
    _, _, path = hopper
    cut = tmp_path / "cut.h5"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match="cut.h5"):
        read_dataset(cut)


def test_modified_data_fails_the_fingerprint_check(hopper, tmp_path):
    _, _, path = hopper
    bad = tmp_path / "bad.h5"
    bad.write_bytes(path.read_bytes())
    with h5py.File(bad, "a") as h5:
        h5["rewards_0"][0] = 123.0
    with pytest.raises(DataError, match="fingerprint"):
        read_dataset(bad)


def test_foreign_hdf5_and_missing_files_are_data_errors(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as h5:
        h5["x"] = np.zeros(3)
    with pytest.raises(DataError, match="not an rlseek offline dataset"):
        read_dataset(tmp_path / "other.h5")
    with pytest.raises(DataError, match="not found"):
        read_dataset(tmp_path / "nope.h5")
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(DataError, match="HDF5"):
        read_dataset(tmp_path / "text.h5")


def test_space_mismatch_is_reported(hopper):
    _, ds, _ = hopper
    with pytest.raises(DataError, match="observation space"):
        ds.check_env(gym.make("rlseek/Reacher-v0"))
    cart = gym.make("CartPole-v1")
    with pytest.raises(DataError):
        ds.check_env(cart)


def test_discrete_actions_round_trip(tmp_path):
    log, ds = _collect("CartPole-v1", 150, seed=1)
    assert ds.discrete and ds.episodes[0].actions.dtype == np.int64
    write_dataset(tmp_path / "c.h5", ds)
    back = read_dataset(tmp_path / "c.h5")
    _assert_matches(log, back)
    rb = back.to_d3rlpy()
    assert rb.dataset_info.action_size == 2
