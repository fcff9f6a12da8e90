"""Wrappers shared by rlseek environments.

:class:`CurriculumWrapper` raises an env's difficulty as the agent starts to succeed. Envs that
support it follow the *curriculum protocol*:

* ``num_levels: int`` — how many difficulty levels there are (0 = easiest);
* ``level: int`` — the current level;
* ``set_level(level: int)`` — switch level; it takes effect at the next ``reset()``;
* ``info["is_success"]`` on the last step of an episode says whether it succeeded.

rlseek/Reacher-v0 (goal radius), rlseek/FetchReach-v0 (target range) and rlseek/Arithmetic-v0
(number of digits) implement it.
"""

from __future__ import annotations

from collections import deque
from typing import Any, SupportsFloat

import gymnasium as gym

from rlseek.errors import RlseekError

_PROTOCOL = ("num_levels", "level", "set_level")


class CurriculumWrapper(gym.Wrapper):
    """Raise the task level when the rolling success rate reaches ``threshold``.

    After each episode its success (``info["is_success"]`` on the final step) joins a window
    of the last ``window`` episodes. Once the window is full and its success rate is at least
    ``threshold``, the env moves up one level (effective from the next reset) and the window is
    cleared, so the new level is judged only on its own episodes. The top level is never left.

    Args:
        env: an env that follows the curriculum protocol (see the module docstring).
        threshold: success rate in (0, 1] over the window that earns the next level.
        window: number of most recent episodes the success rate is computed over.
        start_level: level to start at (default 0, the easiest).

    Every ``info`` (from ``reset`` and ``step``) gets ``curriculum_level``: the level the
    current episode is played at; the final step of an episode that earned a promotion also
    gets ``curriculum_promoted=True``. In a vectorized env each copy keeps its own curriculum.
    """

    def __init__(
        self,
        env: gym.Env,
        threshold: float = 0.8,
        window: int = 50,
        start_level: int = 0,
    ) -> None:
        super().__init__(env)
        missing = [name for name in _PROTOCOL if not _has_attr(env, name)]
        if missing:
            raise RlseekError(
                f"CurriculumWrapper needs an env with num_levels, level and set_level(); "
                f"{_env_name(env)} lacks {missing}"
            )
        if isinstance(threshold, bool) or not 0.0 < float(threshold) <= 1.0:
            raise RlseekError(f"curriculum threshold must be in (0, 1], got {threshold!r}")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise RlseekError(f"curriculum window must be a positive integer, got {window!r}")
        self.threshold = float(threshold)
        self.window = window
        self.num_levels = int(env.get_wrapper_attr("num_levels"))
        self._successes: deque[bool] = deque(maxlen=window)
        self._episode_level = int(start_level)
        self._set_level(int(start_level))
        self.promotions: list[tuple[int, int]] = []  # (episode index, new level)
        self.episodes = 0

    @property
    def level(self) -> int:
        """The level the env will use at its next reset."""
        return int(self.env.get_wrapper_attr("level"))

    @property
    def success_rate(self) -> float:
        """Success rate over the episodes in the current window (0 when it is empty)."""
        return sum(self._successes) / len(self._successes) if self._successes else 0.0

    def _set_level(self, level: int) -> None:
        self.env.get_wrapper_attr("set_level")(level)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._episode_level = self.level
        info["curriculum_level"] = self._episode_level
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["curriculum_level"] = self._episode_level
        if terminated or truncated:
            self._end_episode(info)
        return obs, reward, terminated, truncated, info

    def _end_episode(self, info: dict[str, Any]) -> None:
        if "is_success" not in info:
            raise RlseekError(
                f"CurriculumWrapper needs info['is_success'] at the end of each episode; "
                f"{_env_name(self.env)} does not report it"
            )
        self.episodes += 1
        self._successes.append(bool(info["is_success"]))
        full = len(self._successes) == self.window
        if full and self.success_rate >= self.threshold and self.level < self.num_levels - 1:
            new_level = self.level + 1
            self._set_level(new_level)
            self._successes.clear()
            self.promotions.append((self.episodes, new_level))
            info["curriculum_promoted"] = True

    def state_dict(self) -> dict[str, Any]:
        """Level, window contents and history, for checkpoints."""
        return {
            "level": self.level,
            "successes": list(self._successes),
            "episodes": self.episodes,
            "promotions": [list(p) for p in self.promotions],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (the level applies from the next reset)."""
        self._set_level(int(state["level"]))
        self._successes = deque((bool(s) for s in state["successes"]), maxlen=self.window)
        self.episodes = int(state["episodes"])
        self.promotions = [(int(e), int(lv)) for e, lv in state["promotions"]]


def _has_attr(env: gym.Env, name: str) -> bool:
    try:
        env.get_wrapper_attr(name)
    except AttributeError:
        return False
    return True


def _env_name(env: gym.Env) -> str:
    spec = getattr(env, "spec", None)
    return spec.id if spec is not None else type(env.unwrapped).__name__
