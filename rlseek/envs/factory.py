"""Building environments from a config section, with clear errors."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from rlseek.config import EnvSection
from rlseek.errors import RlseekError, did_you_mean


def check_env_id(env_id: str) -> None:
    """Fail with a did-you-mean when ``env_id`` is not registered with Gymnasium."""
    import rlseek.envs  # noqa: F401  (registers rlseek ids)

    if env_id not in gym.registry:
        known = [k for k in gym.registry if k.startswith("rlseek/")]
        hint = did_you_mean(env_id, known) or did_you_mean(env_id, list(gym.registry))
        raise RlseekError(
            f"unknown env id '{env_id}'{hint}; rlseek envs: {', '.join(sorted(known))} "
            "(see `rlseek envs`)"
        )


def env_make_kwargs(section: EnvSection, **extra: Any) -> dict[str, Any]:
    """The make-kwargs for ``section``: its kwargs plus reward weights and params."""
    kwargs = dict(section.kwargs)
    if section.reward is not None:
        kwargs["reward"] = dict(section.reward)
    if section.reward_params:
        kwargs["reward_params"] = dict(section.reward_params)
    kwargs.update(extra)
    return kwargs


def make_env(section: EnvSection, **extra: Any) -> gym.Env:
    """``gymnasium.make`` for a config's env section; bad ids/kwargs give one clear line."""
    check_env_id(section.id)
    try:
        return gym.make(section.id, **env_make_kwargs(section, **extra))
    except TypeError as exc:
        raise RlseekError(f"env '{section.id}': bad env.kwargs: {exc}") from None


def resolve_reward(section: EnvSection) -> EnvSection:
    """``section`` with its reward weights and every weighted term's params filled in.

    The weights are the section's own or, when it gives none, the defaults the env family
    declares (robot specs, text tasks); the params are each term's registered defaults, updated
    by the family's declared params and the section's ``reward_params``
    (:func:`~rlseek.envs.registration.declared_reward`, which the text envs use too). Nothing is built: this is what a run's
    ``config.yaml`` records for every agent. Bad weights or params fail as the env would
    (unknown terms with a did-you-mean). Envs that are not rlseek's come back unchanged.
    """
    import dataclasses

    from rlseek.envs.registration import ENV_KINDS, declared_reward
    from rlseek.rewards import WeightedReward

    declared = declared_reward(section.id, section.reward, section.reward_params)
    if section.id not in ENV_KINDS or declared is None:
        return section
    wr = WeightedReward(*declared, kind=ENV_KINDS[section.id])
    params = {name: dict(p) for name, p in wr.params.items() if p}
    return dataclasses.replace(section, reward=dict(wr.weights), reward_params=params or None)


def reward_fn_of(env: gym.Env) -> Any:
    """The env's WeightedReward (every rlseek env exposes ``reward_fn``)."""
    try:
        return env.get_wrapper_attr("reward_fn")
    except AttributeError:
        return None
