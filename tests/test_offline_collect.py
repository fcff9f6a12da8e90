"""D4RL-style collection: every kind, metadata, the cached SAC expert, policy checkpoints."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import rlseek  # noqa: F401
from rlseek.errors import DataError, RlseekError
from rlseek.offline.behaviour import load_or_train
from rlseek.offline.collect import CollectSettings, collect
from rlseek.offline.dataset import END_CUT, read_dataset, read_metadata
from rlseek.offline.policies import build_model, load_policy

ENV = "rlseek/Reacher-v0"
# A deliberately tiny SAC run (the real recipe trains 30k steps); shared by every test module
# through the on-disk cache in the session's temp folder.
TINY = CollectSettings(expert_steps=300, eval_every=100, eval_episodes=2, reference_episodes=5)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    # Small MLPs gain nothing from more threads, and on a busy shared CPU extra threads spin.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "offline-policies"


@pytest.fixture(scope="module")
def data(tmp_path_factory, policy_dir):
    out = tmp_path_factory.mktemp("collect")
    paths = {}
    for kind in ("random", "medium", "medium-replay", "expert", "medium-expert"):
        paths[kind] = out / f"{kind}.h5"
        collect(ENV, kind, 120, paths[kind], seed=7, policy_dir=policy_dir, settings=TINY)
    return paths


def test_every_kind_has_the_documented_size_and_metadata(data):
    for kind, path in data.items():
        ds = read_dataset(path)
        m = ds.metadata
        assert m["kind"] == kind and m["env_id"] == ENV and m["env_version"] == 0
        assert m["seed"] == 7 and m["data_sha256"] == ds.fingerprint()
        ref = m["reference"]
        assert ref["episodes"] == 5 and ref["expert_return"] > ref["random_return"]
        assert m["behaviour_run"]["algo"] == "sac" and m["behaviour_run"]["steps"] == 300
        assert m["observation_space"]["shape"] == [10] and m["action_space"]["shape"] == [2]
        assert m["n_terminals"] + m["n_timeouts"] == m["n_episodes"]
        expected = {"medium-expert": 240}.get(kind, 120)
        if kind == "medium-replay":
            assert ds.n_transitions <= 120 and all(e.end != END_CUT for e in ds.episodes)
        else:
            assert ds.n_transitions == expected
        if m["behaviour"]["episodes"]:
            assert m["behaviour"]["mean_return"] == pytest.approx(float(np.mean(ds.complete_returns())))


def test_medium_replay_is_the_sac_replay_buffer_up_to_the_medium_snapshot(data, policy_dir):
    cache = load_or_train(ENV, policy_dir, steps=300, seed=0, eval_every=100, eval_episodes=2, reference_episodes=5)
    medium_step = cache.index["medium"]["step"]
    replay = cache.replay_episodes(medium_step)
    ds = read_dataset(data["medium-replay"])
    tail = replay[-len(ds.episodes):]
    for a, b in zip(ds.episodes, tail):
        np.testing.assert_array_equal(a.observations, b.observations)
        np.testing.assert_array_equal(a.actions, b.actions)
    assert sum(len(e) for e in replay) == medium_step


def test_medium_expert_is_medium_then_expert(data):
    me = read_dataset(data["medium-expert"])
    med = read_dataset(data["medium"])
    np.testing.assert_array_equal(me.episodes[0].actions, med.episodes[0].actions)
    assert me.metadata["source"]["medium"]["snapshot_step"] <= me.metadata["source"]["expert"]["snapshot_step"]


def test_the_expert_is_trained_once_and_reused(data, policy_dir, tmp_path):
    (index,) = list(policy_dir.glob("*/behaviour.json"))
    before = index.stat().st_mtime_ns
    collect(ENV, "expert", 60, tmp_path / "again.h5", seed=1, policy_dir=policy_dir, settings=TINY)
    assert index.stat().st_mtime_ns == before
    assert read_metadata(tmp_path / "again.h5")["behaviour_run"]["cache"] == str(index.parent)
    info = json.loads(index.read_text())
    assert [s["step"] for s in info["snapshots"]] == [100, 200, 300]
    assert all(p.suffix == ".safetensors" for p in (policy_dir / index.parent.name / "snapshots").iterdir())


def test_same_seed_same_data(data, policy_dir, tmp_path):
    collect(ENV, "expert", 120, tmp_path / "a.h5", seed=7, policy_dir=policy_dir, settings=TINY)
    assert read_dataset(tmp_path / "a.h5").fingerprint() == read_dataset(data["expert"]).fingerprint()


def test_policy_checkpoints_snapshot_and_sb3_zip(data, policy_dir, tmp_path):
    env = gym.make(ENV)
    snap = sorted(policy_dir.glob("*/snapshots/*.safetensors"))[-1]
    ds = collect(ENV, "policy", 60, tmp_path / "p.h5", policy=snap, policy_dir=policy_dir, settings=TINY)
    assert ds.n_transitions == 60 and str(snap) in ds.metadata["source"]["policy"]
    # An SB3 zip is read without unpickling: the weights must reproduce the model's actions.
    model = build_model("sac", env, seed=0)
    model.save(tmp_path / "sac.zip")
    loaded = load_policy(tmp_path / "sac.zip", env)
    obs = env.observation_space.sample()
    np.testing.assert_allclose(loaded.act(obs, deterministic=True), model.predict(obs, deterministic=True)[0], rtol=1e-6)
    with pytest.raises(DataError):
        load_policy(tmp_path / "p.h5", env)
    with pytest.raises(DataError, match="do not fit"):
        load_policy(snap, gym.make("rlseek/Hopper-v0"))


def test_bad_collect_arguments(tmp_path, policy_dir):
    with pytest.raises(RlseekError, match="did you mean 'medium'"):
        collect(ENV, "medum", 10, tmp_path / "x.h5", policy_dir=policy_dir, settings=TINY)
    with pytest.raises(RlseekError, match="--policy"):
        collect(ENV, "policy", 10, tmp_path / "x.h5", policy_dir=policy_dir, settings=TINY)
    with pytest.raises(RlseekError, match="unknown env id"):
        collect("rlseek/Reacher-v9", "random", 10, tmp_path / "x.h5", policy_dir=policy_dir, settings=TINY)
    assert not (tmp_path / "x.h5").exists()
