"""Built-in reward terms for robot-control environments (``kind="robot"``).

Every term is called once per transition as ``fn(obs, action, next_obs, info, **params)`` and
returns its *unweighted* value. Sign convention: a term is a reward, so costs and distances
come out negative and weights stay positive; at an env's default weights
``Σ wᵢ·rᵢ`` equals the reward of the Gymnasium environment it is built on.

Terms read physical quantities that the environment measures in the simulator and puts into
``info`` (never the native reward numbers):

========================  =============================================================  ==========
info key                  meaning                                                        envs
========================  =============================================================  ==========
``goal_vector``           3-vector from the controlled point to its goal, metres         Reacher, Pusher
                          (Reacher: fingertip → target; Pusher: object → goal)
``object_vector``         3-vector from the arm tip to the object, metres                Pusher
``x_velocity``            forward velocity of the torso, m/s (Δx / control step)         walkers
``is_healthy``            whether the body is inside its healthy state ranges            Hopper, Walker2d
========================  =============================================================  ==========

Goal terms (``goal_sparse``, ``goal_distance``) read ``next_obs["achieved_goal"]`` and
``next_obs["desired_goal"]`` instead, and work on a leading batch axis too, so goal-conditioned
envs can recompute them for relabelled goals (Hindsight Experience Replay). Mark such a term of
your own with :func:`goal_term`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np

from rlseek.errors import RlseekError
from rlseek.rewards.registry import register_reward

F = TypeVar("F", bound=Callable[..., Any])


def reads(*quantities: str) -> Callable[[F], F]:
    """Declare which info keys (or goal-observation keys) a robot term reads.

    Environments check this when they are made, so that a term an env cannot feed (say
    ``healthy`` on HalfCheetah) fails at once with a list of the terms that fit, rather than
    at the first step of a training run.
    """

    def mark(fn: F) -> F:
        fn.reads = tuple(quantities)  # type: ignore[attr-defined]
        return fn

    return mark


def goal_term(fn: F) -> F:
    """Mark a term as a function of the achieved and desired goal alone, vectorized.

    Such a term must compute only from ``next_obs["achieved_goal"]`` and
    ``next_obs["desired_goal"]`` and accept arrays with a leading batch axis. Goal-conditioned
    envs recompute goal terms in ``compute_reward`` when HER relabels goals.
    """
    fn.goal_term = True  # type: ignore[attr-defined]
    return fn


def term_reads(fn: Callable[..., Any]) -> tuple[str, ...]:
    """The quantities a term declared with :func:`reads` (empty for undeclared user terms)."""
    return tuple(getattr(fn, "reads", ()))


def is_goal_term(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` was marked with :func:`goal_term`."""
    return bool(getattr(fn, "goal_term", False))


def _need(info: Mapping[str, Any], key: str, term: str) -> Any:
    try:
        return info[key]
    except KeyError:
        raise RlseekError(
            f"reward term '{term}' needs info['{key}'], which this environment does not report"
        ) from None


def _norm3(v: np.ndarray) -> float:
    # math.sqrt of a dot product: the cheapest exact Euclidean norm for one short vector
    # (this runs every env step).
    return math.sqrt(float(v @ v))


@register_reward("distance", kind="robot")
@reads("goal_vector")
def distance(obs: Any, action: Any, next_obs: Any, info: Mapping[str, Any]) -> float:
    """Negative distance from the controlled point to its goal, in metres (≤ 0).

    Reads ``info["goal_vector"]`` after the step: Reacher's fingertip → target, Pusher's
    object → goal. Reacher's native ``reward_dist`` and Pusher's ``reward_dist`` at weight 1.
    """
    v = info.get("goal_vector")
    if v is None:
        v = _need(info, "goal_vector", "distance")
    return -_norm3(v)


@register_reward("near", kind="robot")
@reads("object_vector")
def near(obs: Any, action: Any, next_obs: Any, info: Mapping[str, Any]) -> float:
    """Negative distance from the arm tip to the object it must push, in metres (≤ 0).

    Reads ``info["object_vector"]``; Pusher's native ``reward_near`` at weight 1 (its native
    weight is 0.5).
    """
    v = info.get("object_vector")
    if v is None:
        v = _need(info, "object_vector", "near")
    return -_norm3(v)


@register_reward("control", kind="robot")
def control(obs: Any, action: Any, next_obs: Any, info: Mapping[str, Any]) -> float:
    """Negative squared norm of the action, −Σ aᵢ² (≤ 0; actions are normalized controls).

    The control cost of every MuJoCo task: Reacher's native weight is 1, Pusher's and
    HalfCheetah's 0.1, Hopper's and Walker2d's 0.001. Computed on the action as the agent sent
    it (before the simulator clips it), as the native envs do.
    """
    a = action if isinstance(action, np.ndarray) else np.asarray(action, dtype=np.float64)
    return -float(a @ a)


@register_reward("forward", kind="robot")
@reads("x_velocity")
def forward(obs: Any, action: Any, next_obs: Any, info: Mapping[str, Any]) -> float:
    """Forward velocity of the torso, in m/s (positive = forward progress).

    Δx of the torso over the control step divided by its duration; the native
    ``forward_reward`` of Hopper, HalfCheetah and Walker2d at weight 1.
    """
    v = info.get("x_velocity")
    if v is None:
        v = _need(info, "x_velocity", "forward")
    return float(v)


@register_reward("healthy", kind="robot")
@reads("is_healthy")
def healthy(obs: Any, action: Any, next_obs: Any, info: Mapping[str, Any]) -> float:
    """1 per step while the body is healthy (inside its height/angle/state ranges), else 0.

    The native ``healthy_reward`` of Hopper and Walker2d at weight 1 (weight = reward per
    healthy step).
    """
    h = info.get("is_healthy")
    if h is None:
        h = _need(info, "is_healthy", "healthy")
    return 1.0 if h else 0.0


def _goal_gap(next_obs: Any, term: str) -> np.ndarray:
    try:
        achieved = np.asarray(next_obs["achieved_goal"], dtype=np.float64)
        desired = np.asarray(next_obs["desired_goal"], dtype=np.float64)
    except (KeyError, TypeError, IndexError):
        raise RlseekError(
            f"reward term '{term}' needs a goal observation with 'achieved_goal' and "
            "'desired_goal' (a goal-conditioned env such as rlseek/FetchReach-v0)"
        ) from None
    d = achieved - desired
    # One formula for a single transition and for a batch, so the vectorized value HER computes
    # equals the per-step value bit for bit.
    return np.sqrt(np.sum(d * d, axis=-1))


@register_reward("goal_sparse", kind="robot")
@reads("achieved_goal", "desired_goal")
@goal_term
def goal_sparse(
    obs: Any,
    action: Any,
    next_obs: Any,
    info: Mapping[str, Any],
    *,
    distance_threshold: float = 0.05,
) -> float | np.ndarray:
    """−1 while the achieved goal is farther than ``distance_threshold`` (m) from the desired goal, else 0.

    The native sparse reward of the Fetch tasks (threshold 0.05 m). Vectorized over a leading
    batch axis (returns an array for batched goals).
    """
    gap = _goal_gap(next_obs, "goal_sparse")
    return -(gap > distance_threshold).astype(np.float64)


@register_reward("goal_distance", kind="robot")
@reads("achieved_goal", "desired_goal")
@goal_term
def goal_distance(
    obs: Any, action: Any, next_obs: Any, info: Mapping[str, Any]
) -> float | np.ndarray:
    """Negative Euclidean distance between achieved and desired goal, in metres (≤ 0).

    The native dense reward of the Fetch tasks (``reward_type="dense"``). Vectorized over a
    leading batch axis.
    """
    return -_goal_gap(next_obs, "goal_distance")
