"""Default reward weights and term params come from declared data (robot specs, text tasks)
through one helper, ``rlseek.envs.factory.resolve_reward``, and agree with what each env builds."""

from __future__ import annotations

import gymnasium as gym
import pytest

import rlseek  # noqa: F401  (registers the envs)
from rlseek.config import EnvSection, config_from_dict
from rlseek.envs import rlseek_env_ids
from rlseek.envs.factory import resolve_reward
from rlseek.errors import RlseekError


@pytest.mark.parametrize("env_id", rlseek_env_ids())
def test_declared_defaults_are_what_the_env_builds(env_id: str) -> None:
    resolved = resolve_reward(EnvSection(id=env_id))
    env = gym.make(env_id)
    try:
        wr = env.get_wrapper_attr("reward_fn")
        assert resolved.reward == wr.weights
        assert (resolved.reward_params or {}) == {k: v for k, v in wr.params.items() if v}
    finally:
        env.close()


def test_given_weights_and_params_are_kept_and_completed() -> None:
    section = EnvSection(id="rlseek/Arithmetic-v0", reward={"accuracy": 1.0, "efficiency": 0.5},
                         reward_params={"efficiency": {"target_len": 3}})
    resolved = resolve_reward(section)
    assert resolved.reward == {"accuracy": 1.0, "efficiency": 0.5}
    assert resolved.reward_params == {
        "accuracy": {"partial_credit": 0.5},
        "efficiency": {"max_tokens": None, "target_len": 3, "no_eos_penalty": 1.0},
    }


def test_bad_terms_fail_without_building_the_env() -> None:
    with pytest.raises(RlseekError, match="did you mean 'accuracy'"):
        resolve_reward(EnvSection(id="rlseek/Arithmetic-v0", reward={"acuracy": 1.0}))
    with pytest.raises(RlseekError, match="unknown parameter"):
        resolve_reward(EnvSection(id="rlseek/Reacher-v0", reward_params={"distance": {"scale": 2}}))


def test_lm_ppo_records_term_params_like_sb3() -> None:
    from rlseek.agents import get_agent_class

    cfg = config_from_dict({"env": {"id": "rlseek/Reviews-v0"}, "agent": {"algo": "lm-ppo"}})
    agent = get_agent_class("lm-ppo").config_class.from_params(cfg.agent.params).create(cfg)
    resolved = agent.resolve_config(cfg)
    assert resolved.env.reward == {"sentiment": 0.6, "diversity": 0.3, "efficiency": 0.1}
    assert resolved.env.reward_params["sentiment"] == {"target": "positive"}
    assert resolved.env.reward_params["diversity"] == {"n": 2, "batch_weight": 0.5}
    assert resolved.agent.params["kl_coef"] == 0.2


def test_agent_configs_are_typed_and_bound_to_their_agent() -> None:
    from rlseek.agents import get_agent_class
    from rlseek.agents.lm_ppo import LmPpoAgent, LmPpoConfig

    assert get_agent_class("lm-ppo").config_class is LmPpoConfig
    assert LmPpoConfig.agent_class is LmPpoAgent
    sac, ppo = get_agent_class("sac"), get_agent_class("ppo")
    assert sac.config_class is not ppo.config_class
    assert sac.config_class.agent_class is sac and ppo.config_class.agent_class is ppo
    params = ppo.config_class.from_params({"n_steps": 64.0})
    assert params.to_params() == {"gamma": 0.99, "gae_lambda": 0.95, "ent_coef": 0.01, "n_steps": 64}
    bcq = get_agent_class("bcq").config_class.from_params({"dataset": "d.h5", "batch_size": 32})
    assert bcq.to_params() == {"dataset": "d.h5", "batch_size": 32}
