"""Experiment configs: loading, validation with field paths, --set overrides, fingerprints."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from rlseek.config import (
    ExperimentConfig,
    apply_overrides,
    config_from_dict,
    dump_config,
    load_config,
    read_yaml,
)
from rlseek.errors import ConfigError, RlseekError

GOOD = """\
env:
  id: rlseek/Reacher-v0
  reward: {distance: 1.0, control: 0.1}
agent:
  algo: sac
  params: {learning_rate: 3e-4, buffer_size: 1e5}
run:
  total_steps: 2e4
  seed: 3
"""


def write(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_load_valid_config_fills_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.env.id == "rlseek/Reacher-v0"
    assert cfg.env.reward == {"distance": 1.0, "control": 0.1}
    assert cfg.run.seed == 3
    assert cfg.run.n_envs == 1 and cfg.run.vec_env == "dummy"  # defaults
    assert cfg.imports == []


def test_exponent_numbers_are_floats_not_strings(tmp_path: Path) -> None:
    # PyYAML alone reads "3e-4" as a string; a learning rate must arrive as a number.
    cfg = load_config(write(tmp_path, GOOD))
    lr = cfg.agent.params["learning_rate"]
    assert isinstance(lr, float) and math.isclose(lr, 3e-4)
    assert cfg.agent.params["buffer_size"] == 1e5
    assert cfg.run.total_steps == 20000 and isinstance(cfg.run.total_steps, int)


def test_set_overrides_parse_values_as_yaml(tmp_path: Path) -> None:
    cfg = load_config(
        write(tmp_path, GOOD),
        [
            "agent.params.learning_rate=1e-5",
            "run.n_envs=4",
            "env.reward.control=0.5",
            "agent.params.policy_kwargs={net_arch: [64, 64]}",
            "agent.params.new_key=null",
        ],
    )
    assert cfg.agent.params["learning_rate"] == pytest.approx(1e-5)
    assert cfg.run.n_envs == 4
    assert cfg.env.reward == {"distance": 1.0, "control": 0.5}
    assert cfg.agent.params["policy_kwargs"] == {"net_arch": [64, 64]}
    assert cfg.agent.params["new_key"] is None


def test_apply_overrides_does_not_mutate_input() -> None:
    data = {"run": {"seed": 0}}
    out = apply_overrides(data, ["run.seed=5", "run.extra.deep=1"])
    assert data == {"run": {"seed": 0}}
    assert out == {"run": {"seed": 5, "extra": {"deep": 1}}}


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("run.seed", "expected KEY=VALUE"),
        ("run..seed=1", "empty component"),
        ("env.id.sub=1", "'env.id' is not a mapping"),
    ],
)
def test_malformed_overrides_fail_clearly(tmp_path: Path, override: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, GOOD), [override])
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("env: {id: x}\nagent: {algo: sac}\nrnu: {}\n", "unknown top-level field 'rnu' (did you mean 'run'?)"),
        ("env: {id: x}\nagent: {algo: sac}\nrun: {total_step: 5}\n", "'run.total_step' (did you mean 'total_steps'?)"),
        ("agent: {algo: sac}\n", "missing required section 'env'"),
        ("env: {kwargs: {}}\nagent: {algo: sac}\n", "missing required field 'env.id'"),
        ("env: {id: x}\nagent: {algo: sac}\nrun: {total_steps: many}\n", "'run.total_steps' must be an integer, got 'many'"),
        ("env: {id: x}\nagent: {algo: sac}\nrun: {seed: 1.5}\n", "'run.seed' must be an integer"),
        ("env: {id: 7}\nagent: {algo: sac}\n", "'env.id' must be a string"),
        ("env: {id: x}\nagent: {algo: sac, params: [1]}\n", "'agent.params' must be a mapping"),
        ("env: {id: x, reward: {control: .inf}}\nagent: {algo: sac}\n", "'env.reward.control' must be finite"),
        ("env: {id: x, reward: {control: .nan}}\nagent: {algo: sac}\n", "'env.reward.control' must be finite"),
        ("env: {id: x, reward: {control: high}}\nagent: {algo: sac}\n", "'env.reward.control' must be a number"),
        ("env: {id: x, reward: {control: true}}\nagent: {algo: sac}\n", "'env.reward.control' must be a number"),
        ("env: {id: x, reward_params: {control: 3}}\nagent: {algo: sac}\n", "'env.reward_params.control' must be a mapping"),
        ("env: {id: x}\nagent: {algo: sac}\nrun: {n_envs: 0}\n", "'run.n_envs' must be >= 1"),
        ("env: {id: x}\nagent: {algo: sac}\nrun: {vec_env: threads}\n", "'run.vec_env' must be 'dummy' or 'subproc'"),
        ("env: {id: x}\nagent: {algo: sac}\nimports: my_pkg\n", "'imports' must be a list"),
        ("- a\n- b\n", "must be a YAML mapping"),
        ("", "config file is empty"),
    ],
)
def test_invalid_configs_name_the_field(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert fragment in msg
    assert str(path) in msg  # says which file
    assert "\n" not in msg  # one line


def test_malformed_yaml_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "env:\n  id: rlseek/Reacher-v0\nagent: {algo: [sac\n")
    with pytest.raises(ConfigError) as info:
        read_yaml(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}:") and "malformed YAML" in msg
    line = int(msg.split(":")[1])
    assert line >= 3


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_config_errors_are_rlseek_errors() -> None:
    # The CLI turns RlseekError into one stderr line and exit code 2.
    assert issubclass(ConfigError, RlseekError)


def test_dump_and_reload_round_trip_keeps_sha(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD), ["imports=[my.mod]"])
    again = load_config(write(tmp_path, dump_config(cfg), "again.yaml"))
    assert again == cfg
    assert again.sha256() == cfg.sha256()


def test_sha256_ignores_key_order_but_not_values() -> None:
    a = config_from_dict({"env": {"id": "x", "reward": {"a": 1.0, "b": 2.0}}, "agent": {"algo": "sac"}})
    b = config_from_dict({"agent": {"algo": "sac"}, "env": {"reward": {"b": 2.0, "a": 1.0}, "id": "x"}})
    c = config_from_dict({"env": {"id": "x", "reward": {"a": 1.0, "b": 2.5}}, "agent": {"algo": "sac"}})
    assert a.sha256() == b.sha256()
    assert a.sha256() != c.sha256()
    assert isinstance(a, ExperimentConfig) and len(a.sha256()) == 64
