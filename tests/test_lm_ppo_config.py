"""LmPpoConfig: defaults the source document asks for, validation with field paths."""

from __future__ import annotations

import pytest

from rlseek.agents import get_agent_class
from rlseek.agents.lm_ppo import LmPpoAgent, LmPpoConfig
from rlseek.errors import ConfigError


def test_defaults_match_the_design() -> None:
    cfg = LmPpoConfig()
    assert (cfg.kl_coef, cfg.ent_coef, cfg.gamma, cfg.lam) == (0.2, 0.01, 0.99, 0.95)
    assert (cfg.lora_r, cfg.lora_alpha, cfg.max_grad_norm) == (8, 16.0, 1.0)
    assert cfg.kl_control == "adaptive" and cfg.kl_estimator == "k1"
    assert cfg.decode_cache == "auto" and cfg.decode_head_float32 is False
    assert get_agent_class("lm-ppo") is LmPpoAgent and LmPpoAgent.env_kind == "text"


def test_from_params_coerces_and_round_trips() -> None:
    cfg = LmPpoConfig.from_params({"learning_rate": 1, "ppo_epochs": 2.0, "lora": True,
                                   "lora_target_modules": "q_proj", "early_stop_kl": None})
    assert cfg.learning_rate == 1.0 and isinstance(cfg.learning_rate, float)
    assert cfg.ppo_epochs == 2 and cfg.lora_target_modules == ["q_proj"]
    assert LmPpoConfig.from_params(cfg.to_dict()) == cfg


@pytest.mark.parametrize("params,message", [
    ({"learning_rte": 1e-5}, r"unknown field 'agent.params.learning_rte' \(did you mean 'learning_rate'\?\)"),
    ({"kl_control": "pid"}, r"'agent.params.kl_control' must be 'adaptive' or 'fixed'"),
    ({"kl_estimator": "k4"}, r"'agent.params.kl_estimator' must be 'k1' or 'k2' or 'k3'"),
    ({"kl_estimator": "k3"}, r"'agent.params.kl_estimator' is 'k3' with kl_penalty 'reward'"),
    ({"kl_estimator": "k2"}, r"'agent.params.kl_estimator' is 'k2' with kl_penalty 'reward'"),
    ({"kl_penalty": "loss", "kl_estimator": "k1"}, r"'agent.params.kl_estimator' is 'k1' with kl_penalty 'loss'"),
    ({"lora": True, "lora_dropout": 0.1}, r"'agent.params.lora_dropout' must be 0 \(lm-ppo keeps dropout off"),
    ({"grad_accum_steps": 0}, r"'agent.params.grad_accum_steps' must be > 0"),
    ({"lr_schedule": "cosine"}, r"'agent.params.lr_schedule' must be 'constant' or 'linear'"),
    ({"gamma": 1.5}, r"'agent.params.gamma' must be in \[0, 1\]"),
    ({"temperature": 0}, r"'agent.params.temperature' must be > 0"),
    ({"ppo_epochs": "four"}, r"'agent.params.ppo_epochs' must be an integer, got 'four'"),
    ({"lora": "yes"}, r"'agent.params.lora' must be true or false, got 'yes'"),
    ({"decode_head_float32": 1}, r"'agent.params.decode_head_float32' must be true or false, got 1"),
    ({"kl_coef": -0.1}, r"'agent.params.kl_coef' must be >= 0"),
    ({"early_stop_kl": 0}, r"'agent.params.early_stop_kl' must be > 0 or null"),
    ({"learning_rate": None}, r"'agent.params.learning_rate' must not be null"),
])
def test_bad_params_name_the_field(params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LmPpoConfig.from_params(params)


@pytest.mark.parametrize("name", ["arithmetic_lm_ppo", "arithmetic_lm_ppo_lora", "reviews_lm_ppo"])
def test_example_configs_validate(name: str) -> None:
    from pathlib import Path

    from rlseek.config import load_config

    config = load_config(Path(__file__).parent.parent / "examples" / "configs" / f"{name}.yaml")
    assert config.agent.algo == "lm-ppo"
    cfg = LmPpoConfig.from_params(config.agent.params)
    assert cfg.lora == name.endswith("lora")
