"""stable-baselines3 agents through `rlseek train` / `rlseek eval`, on real MuJoCo envs.

Budgets are tiny (a few hundred env steps): these tests check the plumbing — run directory,
checkpoints, TensorBoard tags, evaluation, config resolution and validation — not learning.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
import yaml
from stable_baselines3 import SAC, TD3

import rlseek  # noqa: F401  (registers the envs)
from rlseek.agents import get_agent_class, list_agents
from rlseek.cli import main
from rlseek.config import config_from_dict, load_config
from rlseek.errors import RlseekError
from rlseek.runs import Run

TINY_SAC = {
    "env": {"id": "rlseek/Reacher-v0"},
    "agent": {
        "algo": "sac",
        "params": {"learning_starts": 64, "batch_size": 32, "policy_kwargs": {"net_arch": [16, 16]}},
    },
    "run": {
        "total_steps": 256, "seed": 3, "eval_every": 128, "eval_episodes": 2,
        "checkpoint_every": 128,
    },
}


def write_config(folder: Path, data: dict[str, Any], name: str = "exp.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data))
    return path


def train(folder: Path, data: dict[str, Any], *extra: str) -> Path:
    out = folder / "run"
    rc = main(["train", str(write_config(folder, data)), "--out", str(out), *extra])
    assert rc == 0
    return out


def files_snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def scalar_tags(tb_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir))
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


@pytest.fixture(scope="module")
def sac_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(tmp_path_factory.mktemp("sac"), TINY_SAC)


def test_all_sb3_agents_are_registered() -> None:
    assert {"ppo", "sac", "td3", "a2c", "dqn", "sac-her"} <= set(list_agents())


def test_run_directory_holds_resolved_config_and_meta(sac_run: Path) -> None:
    cfg = load_config(sac_run / "config.yaml")
    env = gym.make("rlseek/Reacher-v0")
    try:
        default_weights = dict(env.unwrapped.reward_fn.weights)
    finally:
        env.close()
    # The env's own default weights were written into the config, not left as null.
    assert cfg.env.reward == default_weights
    assert cfg.agent.params["policy"] == "MlpPolicy"
    assert cfg.agent.params["buffer_size"] == 256  # min(SB3 default, total_steps)
    assert cfg.agent.params["policy_kwargs"] == {"net_arch": [16, 16]}  # not edited by SB3
    assert (sac_run / "command.txt").read_text().startswith("rlseek train ")
    meta = json.loads((sac_run / "meta.json").read_text())
    assert meta["config_sha256"] == cfg.sha256()
    assert meta["seed"] == 3 and meta["status"] == "finished" and meta["algo"] == "sac"


def test_run_directory_holds_checkpoints_final_model_and_summary(sac_run: Path) -> None:
    run = Run.open(sac_run)
    cps = run.checkpoints()
    assert [c.step for c in cps] == [128, 256]
    for c in cps:
        assert {p.name for p in c.path.iterdir()} == {"model.zip", "replay_buffer.npz", "state.json"}
        assert SAC.load(c.path / "model.zip").num_timesteps == c.step
    assert cps[-1].state["curve"][0][0] == 128
    assert (sac_run / "final" / "model.zip").is_file()
    s = json.loads((sac_run / "summary.json").read_text())
    assert s["algo"] == "sac" and s["env_id"] == "rlseek/Reacher-v0"
    assert s["total_steps"] == 256 and s["steps_per_second"] > 0 and s["wall_time_s"] > 0
    assert [p[0] for p in s["curve"]] == [128, 256]
    ev = s["eval"]
    assert ev["episodes"] == 2 and len(ev["returns"]) == 2 and ev["mean_length"] == 50
    assert s["curve"][-1][1] == ev["mean_return"]
    # Returns are the weighted sums of the per-term sums.
    w = s["reward"]
    assert ev["mean_return"] == pytest.approx(sum(w[k] * ev["terms"][k] for k in w))


def test_tensorboard_has_eval_reward_terms_and_speed(sac_run: Path) -> None:
    tags = scalar_tags(sac_run / "tb")
    assert {"eval/mean_return", "eval/success_rate", "reward/distance", "reward/control", "time/sps"} <= set(tags)
    assert [step for step, _ in tags["eval/mean_return"]] == [128, 256]
    assert all(v <= 0 for _, v in tags["reward/distance"])  # a negative distance, in metres


def test_eval_json_reproduces_the_summary(sac_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = files_snapshot(sac_run)
    assert main(["eval", str(sac_run), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)  # the whole stdout is one JSON document
    summary = json.loads((sac_run / "summary.json").read_text())
    # Same policy, same seeds: `rlseek eval` reproduces the run's own final evaluation.
    assert out["returns"] == pytest.approx(summary["eval"]["returns"], rel=1e-9)
    assert out["model"] == "final/model.zip" and out["steps"] == 256
    assert files_snapshot(sac_run) == before  # evaluation writes nothing into the run


def test_eval_with_other_reward_weights(sac_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(sac_run), "--json", "--episodes", "3", "--set", "env.reward.control=0.5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["reward"] == {"distance": 1.0, "control": 0.5}
    assert out["episodes"] == 3
    assert out["mean_return"] == pytest.approx(out["terms"]["distance"] + 0.5 * out["terms"]["control"])


def test_ppo_defaults_are_written_and_overridable() -> None:
    base = {"env": {"id": "rlseek/Reacher-v0"}, "agent": {"algo": "ppo", "params": {}}}
    cls = get_agent_class("ppo")
    params = cls(config_from_dict(base)).resolve_config(config_from_dict(base)).agent.params
    assert (params["gamma"], params["gae_lambda"], params["ent_coef"]) == (0.99, 0.95, 0.01)
    over = {**base, "agent": {"algo": "ppo", "params": {"ent_coef": 0.0, "gamma": 0.9}}}
    params = cls(config_from_dict(over)).resolve_config(config_from_dict(over)).agent.params
    assert (params["gamma"], params["ent_coef"]) == (0.9, 0.0)
    assert "early stop" in (cls.__doc__ or "") and "not* a KL penalty" in (cls.__doc__ or "")


@pytest.mark.parametrize(
    ("algo", "params", "env_id", "fragment"),
    [
        ("sac", {"learning_rat": 0.001}, "rlseek/Reacher-v0", "unknown agent.params.learning_rat for algo 'sac' (did you mean 'learning_rate'?)"),
        ("sac", {"seed": 1}, "rlseek/Reacher-v0", "set run.seed"),
        ("sac", {"learning_rate": "fast"}, "rlseek/Reacher-v0", "agent.params.learning_rate must be a number"),
        ("sac", {"policy": "CnnPolicyX"}, "rlseek/Reacher-v0", "rejected by SAC"),
        ("sac", {"policy_kwargs": {"activation_fn": "rellu"}}, "rlseek/Reacher-v0", "did you mean 'relu'"),
        ("td3", {"action_noise": {"type": "gauss"}}, "rlseek/Reacher-v0", "action_noise must look like"),
        ("sac", {"replay_buffer_class": "HerReplayBuffer"}, "rlseek/Reacher-v0", "use algo 'sac-her'"),
        ("dqn", {}, "rlseek/Reacher-v0", "needs a discrete action space"),
        ("sac-her", {}, "rlseek/Reacher-v0", "needs a goal-conditioned env"),
    ],
)
def test_bad_agent_settings_fail_before_training(algo: str, params: dict, env_id: str, fragment: str) -> None:
    cfg = config_from_dict({"env": {"id": env_id}, "agent": {"algo": algo, "params": params}})
    with pytest.raises(RlseekError) as info:
        get_agent_class(algo)(cfg).resolve_config(cfg)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_numbers_written_as_text_are_converted() -> None:
    cfg = config_from_dict(
        {"env": {"id": "rlseek/Reacher-v0"},
         "agent": {"algo": "sac", "params": {"learning_rate": "1e-3", "buffer_size": 5e3}}}
    )
    params = get_agent_class("sac")(cfg).resolve_config(cfg).agent.params
    assert params["learning_rate"] == 0.001 and params["buffer_size"] == 5000


def test_on_policy_agents_with_vectorized_envs(tmp_path: Path) -> None:
    data = {
        "env": {"id": "rlseek/Reacher-v0", "reward": {"distance": 1.0, "control": 0.5}},
        "agent": {"algo": "ppo", "params": {"n_steps": 32, "batch_size": 32, "n_epochs": 1}},
        "run": {"total_steps": 128, "n_envs": 2, "eval_every": 64, "eval_episodes": 1,
                "checkpoint_every": 64},
    }
    run = train(tmp_path, data)
    s = json.loads((run / "summary.json").read_text())
    assert s["total_steps"] == 128 and s["algo"] == "ppo"
    assert s["reward"] == {"distance": 1.0, "control": 0.5}
    steps = [c.step for c in Run.open(run).checkpoints()]
    assert steps == sorted(steps) and steps[-1] == 128 and all(st % 64 == 0 for st in steps)


def test_a2c_and_td3_train(tmp_path: Path) -> None:
    a2c = {"env": {"id": "rlseek/Reacher-v0"}, "agent": {"algo": "a2c", "params": {"n_steps": 8}},
           "run": {"total_steps": 64, "eval_every": 64, "eval_episodes": 1}}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert json.loads((train(tmp_path / "a", a2c) / "summary.json").read_text())["total_steps"] == 64
    td3 = {"env": {"id": "rlseek/Reacher-v0"},
           "agent": {"algo": "td3", "params": {"learning_starts": 50, "batch_size": 16,
                                               "action_noise": {"type": "normal", "sigma": 0.2}}},
           "run": {"total_steps": 100, "eval_every": 100, "eval_episodes": 1}}
    run = train(tmp_path / "b", td3)
    model = TD3.load(run / "final" / "model.zip")
    assert model.action_noise is not None
    assert float(model.action_noise._sigma[0]) == pytest.approx(0.2)
    assert load_config(run / "config.yaml").agent.params["action_noise"] == {"type": "normal", "sigma": 0.2}


def test_dqn_trains_on_a_discrete_env(tmp_path: Path) -> None:
    data = {"env": {"id": "CartPole-v1"}, "agent": {"algo": "dqn", "params": {"learning_starts": 50}},
            "run": {"total_steps": 100, "eval_every": 100, "eval_episodes": 1}}
    s = json.loads((train(tmp_path, data) / "summary.json").read_text())
    assert s["total_steps"] == 100 and s["eval"]["mean_return"] > 0


def test_sac_her_on_fetchreach(tmp_path: Path) -> None:
    data = {
        "env": {"id": "rlseek/FetchReach-v0"},
        "agent": {"algo": "sac-her", "params": {"learning_starts": 100, "batch_size": 32,
                                                "policy_kwargs": {"net_arch": [16, 16]}}},
        "run": {"total_steps": 150, "eval_every": 150, "eval_episodes": 2, "checkpoint_every": 100},
    }
    run = train(tmp_path, data)
    cfg = load_config(run / "config.yaml")
    assert cfg.agent.params["policy"] == "MultiInputPolicy"
    assert cfg.env.reward == {"goal_sparse": 1.0}
    s = json.loads((run / "summary.json").read_text())
    assert s["eval"]["success_rate"] is not None and s["success_curve"][-1][0] == 150
    # The replay buffer of a checkpoint restores as a HER buffer on --resume.
    assert (Run.open(run).checkpoints()[0].path / "replay_buffer.npz").is_file()


def test_subproc_and_dummy_vec_envs_give_the_same_run(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    data = {
        "env": {"id": "rlseek/Reacher-v0"},
        "agent": {"algo": "sac", "params": {"learning_starts": 32, "batch_size": 8,
                                            "policy_kwargs": {"net_arch": [8]}}},
        "run": {"total_steps": 64, "n_envs": 2, "eval_every": 64, "eval_episodes": 1, "seed": 5},
    }
    results = {}
    for vec in ("dummy", "subproc"):
        (tmp_path / vec).mkdir()
        run = train(tmp_path / vec, data, "--set", f"run.vec_env={vec}")
        results[vec] = json.loads((run / "summary.json").read_text())["eval"]["returns"]
    assert results["subproc"] == pytest.approx(results["dummy"], rel=1e-9)  # same seeds, same run
    assert capfd.readouterr().err == ""  # worker processes print nothing either
