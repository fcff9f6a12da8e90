"""What every rlseek robot env shares: a weighted reward built from registered robot terms.

Each env subclasses the Gymnasium (or gymnasium-robotics) class it is built on together with
:class:`WeightedRewardMixin`, keeps the simulation, observation and episode logic of that class,
and replaces only the reward: the env measures physical quantities in the simulator, puts them
into ``info``, and :class:`rlseek.rewards.WeightedReward` turns them into ``Σ wᵢ·rᵢ``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from gymnasium.utils import EzPickle

from rlseek.envs.robot.specs import default_reward as _declared_default_reward
from rlseek.errors import RlseekError
from rlseek.rewards import WeightedReward, get_reward
from rlseek.rewards.robot import term_reads


class WeightedRewardMixin:
    """Reward plumbing for robot envs; list it before the native env class in the bases.

    Class attributes a subclass sets:
        env_id: its rlseek id, for messages; ``default_reward`` (term -> weight that
            reproduces the native reward exactly) is read from its spec in
            :mod:`rlseek.envs.robot.specs`.
        native_class: the Gymnasium class it is built on (its ``__init__`` is called with the
            remaining make-kwargs plus ``native_fixed_kwargs``).
        native_reward_kwargs: native make-kwargs that set reward weights, mapped to the rlseek
            way of saying the same (they are rejected rather than silently combined with
            ``reward=``).
        provides: quantities this env reports to the terms (info keys, goal-observation keys).
    """

    env_id: ClassVar[str] = ""
    default_reward: ClassVar[dict[str, float]] = {}
    native_class: ClassVar[type]
    native_fixed_kwargs: ClassVar[dict[str, Any]] = {}
    native_reward_kwargs: ClassVar[dict[str, str]] = {}
    provides: ClassVar[frozenset[str]] = frozenset()

    reward_fn: WeightedReward
    _last_obs: Any = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.env_id and "default_reward" not in cls.__dict__:
            cls.default_reward = _declared_default_reward(cls.env_id)

    def __init__(
        self,
        reward: Mapping[str, float] | None = None,
        reward_params: Mapping[str, Mapping[str, Any]] | None = None,
        normalize_reward: bool = False,
        **kwargs: Any,
    ) -> None:
        self._init_weighted(reward, reward_params, normalize_reward, kwargs)

    def _init_weighted(
        self,
        reward: Mapping[str, float] | None,
        reward_params: Mapping[str, Mapping[str, Any]] | None,
        normalize_reward: bool,
        kwargs: dict[str, Any],
        **own: Any,
    ) -> None:
        """The construction every robot env shares: refuse native reward-weight kwargs, build
        the weighted reward, run the native constructor with ``kwargs``, and record every
        constructor argument (``own`` are the subclass's extra ones) for pickling."""
        self._reject_native_reward_kwargs(kwargs)
        self._setup_reward(reward, reward_params, normalize_reward)
        self.native_class.__init__(self, **self.native_fixed_kwargs, **kwargs)
        EzPickle.__init__(
            self, reward=reward, reward_params=reward_params, normalize_reward=normalize_reward,
            **own, **kwargs,
        )

    def reset_model(self) -> np.ndarray:
        # MuJoCo envs reset through reset_model; its observation is the next step's ``obs``.
        obs = super().reset_model()  # type: ignore[misc]
        self._last_obs = obs
        return obs

    def _end_step(self, next_obs: Any) -> None:
        """Keep ``next_obs`` for the next transition and render in human mode, as the native step does."""
        self._last_obs = next_obs
        if self.render_mode == "human":  # type: ignore[attr-defined]
            self.render()  # type: ignore[attr-defined]

    @classmethod
    def _reject_native_reward_kwargs(cls, kwargs: Mapping[str, Any]) -> None:
        for key, hint in cls.native_reward_kwargs.items():
            if key in kwargs:
                raise RlseekError(
                    f"{cls.env_id} takes its reward weights as reward={{...}}, not the native "
                    f"kwarg '{key}'; use {hint} (default weights: {cls.default_reward})"
                )

    def _setup_reward(
        self,
        reward: Mapping[str, float] | None,
        reward_params: Mapping[str, Mapping[str, Any]] | None,
        normalize_reward: bool,
    ) -> None:
        """Build :attr:`reward_fn` and check that this env reports what each term reads."""
        weights = dict(self.default_reward) if reward is None else reward
        self.reward_fn = WeightedReward(
            weights, params=reward_params, kind="robot", normalize=normalize_reward
        )
        for name in self.reward_fn.term_names:
            missing = [q for q in term_reads(get_reward(name).fn) if q not in self.provides]
            if missing:
                raise RlseekError(
                    f"reward term '{name}' reads {missing}, which {self.env_id} does not report; "
                    f"terms that fit this env: {', '.join(self.applicable_terms())}"
                )
        # Precomputed once: building "reward_" + name strings every step costs time.
        self._reward_keys = [(name, "reward_" + name) for name in self.reward_fn.term_names]

    @classmethod
    def applicable_terms(cls) -> list[str]:
        """Registered robot terms whose declared inputs this env reports (user terms that
        declare nothing are listed too)."""
        from rlseek.rewards import list_rewards

        return [
            t.name
            for t in list_rewards("robot")
            if all(q in cls.provides for q in term_reads(t.fn))
        ]

    def _score(self, obs: Any, action: Any, next_obs: Any, info: dict[str, Any]) -> float:
        """Weighted reward of one transition; writes ``reward_<term>`` and ``reward_total``.

        ``info`` holds only measured quantities when the terms see it; the per-term values are
        added afterwards.
        """
        total, values = self.reward_fn.robot(obs, action, next_obs, info)
        for name, key in self._reward_keys:
            info[key] = values[name]
        info["reward_total"] = total
        return total

    # Pickling: the native classes pickle through EzPickle: the copy is rebuilt from the
    # constructor arguments (current curriculum level included), so it starts from a fresh
    # simulation and should be reset (with a seed, to replay an episode) before stepping, as
    # with Gymnasium's own MuJoCo envs. The reward's running normalization statistics are
    # state, so they travel too.
    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_rlseek_reward_state"] = self.reward_fn.state_dict()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        reward_state = state.pop("_rlseek_reward_state", None)
        super().__setstate__(state)
        if reward_state is not None:
            self.reward_fn.load_state_dict(reward_state)


class LevelsMixin:
    """The curriculum protocol: ``num_levels``, ``level`` and ``set_level(level)``.

    Level ``num_levels - 1`` is the native task; lower levels are easier. A new level takes
    effect at the next ``reset()``. See :class:`rlseek.envs.wrappers.CurriculumWrapper`.
    """

    env_id: ClassVar[str] = ""
    num_levels: ClassVar[int] = 1
    level: int

    def _init_level(self, level: int | None) -> None:
        self.level = self.num_levels - 1
        self.set_level(self.num_levels - 1 if level is None else level)

    def set_level(self, level: int) -> None:
        """Switch to difficulty ``level`` (0 = easiest, ``num_levels - 1`` = native task)."""
        if isinstance(level, bool) or not isinstance(level, int) or not (
            0 <= level < self.num_levels
        ):
            raise RlseekError(
                f"{self.env_id} level must be an integer in 0..{self.num_levels - 1}, got {level!r}"
            )
        self.level = level
        # The pickled constructor arguments follow the level, so a copy resumes where this is.
        ez = getattr(self, "_ezpickle_kwargs", None)
        if ez is not None:
            ez["level"] = level
        self._apply_level(level)

    def _apply_level(self, level: int) -> None:
        raise NotImplementedError
