"""Staged batch sizes: ``run.stages: [{steps, batch_size, curriculum}, ...]``, shared by agents.

The source document trains in three stages, 4096 -> 1024 -> 256, the second with a
curriculum. In rlseek a run may list stages; each runs for ``steps`` of the run's unit (env
steps for SB3 agents, completions for lm-ppo) with its own ``batch_size``, and their steps must
add up to ``run.total_steps``. What ``batch_size`` means is each agent's, where a batch size is
meaningful:

* SB3 on-policy (ppo, a2c): the rollout size, ``n_steps = batch_size / n_envs`` env steps per
  env between updates (PPO's minibatch ``batch_size`` is kept, capped at the rollout);
* SB3 off-policy (sac, td3, dqn, sac-her): the gradient minibatch ``batch_size``;
* lm-ppo: completions per rollout (``run.n_envs``, the rows of the text vector env).

``curriculum: true`` makes a stage start at the env's easiest level (0) and promote one level
at a time by :class:`CurriculumRule`: once the last ``window`` finished episodes (default 50)
have a success rate of at least ``threshold`` (default 0.8), the level rises and the window
is cleared — the rule of :class:`rlseek.envs.wrappers.CurriculumWrapper` — up to the level the
config sets (``env.kwargs.level``, else the env's default: the native task for the robots,
level 1 for Arithmetic), never past it. A stage without curriculum plays the configured level. The stage in force is a function of
the step count alone, so a resumed run picks up in the right stage (a curriculum stage
restarts its level at 0 on resume, noted in the summary as a promotion history restart).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from rlseek.errors import ConfigError

_KEYS = ("steps", "batch_size", "curriculum", "threshold", "window")


@dataclass(frozen=True)
class Stage:
    """One stage: ``steps`` in the run's unit at ``batch_size``, optionally with curriculum."""

    steps: int
    batch_size: int
    curriculum: bool = False
    threshold: float = 0.8
    """Curriculum stages: success rate over the window that earns the next level."""
    window: int = 50
    """Curriculum stages: finished episodes the success rate is computed over."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _int(value: Any, where: str, src: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{src}: field '{where}' must be a positive integer, got {value!r}")
    return value


def parse_stages(raw: Any, total_steps: int, src: str = "<dict>") -> list[Stage]:
    """Validate ``run.stages``; an empty list or None means no stages. Errors name the field."""
    if raw is None or (isinstance(raw, list) and not raw):
        return []
    if not isinstance(raw, list):
        raise ConfigError(f"{src}: field 'run.stages' must be a list like [{{steps: 20000, "
                          f"batch_size: 4096}}, {{steps: 20000, batch_size: 1024, curriculum: "
                          f"true}}], got {raw!r}")
    stages = []
    for i, item in enumerate(raw):
        where = f"run.stages[{i}]"
        if isinstance(item, Stage):
            item = item.to_dict()
        if not isinstance(item, dict):
            raise ConfigError(f"{src}: field '{where}' must be a mapping with steps and "
                              f"batch_size, got {item!r}")
        unknown = sorted(set(item) - set(_KEYS))
        if unknown:
            raise ConfigError(f"{src}: unknown field '{where}.{unknown[0]}'; a stage takes: "
                              f"{', '.join(_KEYS)}")
        for key in ("steps", "batch_size"):
            if key not in item:
                raise ConfigError(f"{src}: missing required field '{where}.{key}'")
        curriculum = item.get("curriculum", False)
        if not isinstance(curriculum, bool):
            raise ConfigError(f"{src}: field '{where}.curriculum' must be true or false, "
                              f"got {curriculum!r}")
        threshold = item.get("threshold", 0.8)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not (
                0 < threshold <= 1):
            raise ConfigError(f"{src}: field '{where}.threshold' must be in (0, 1], got {threshold!r}")
        stages.append(Stage(_int(item["steps"], f"{where}.steps", src),
                            _int(item["batch_size"], f"{where}.batch_size", src), curriculum,
                            float(threshold), _int(item.get("window", 50), f"{where}.window", src)))
    total = sum(s.steps for s in stages)
    if total != total_steps:
        raise ConfigError(f"{src}: run.stages steps add up to {total:,} but run.total_steps is "
                          f"{total_steps:,}; make them equal")
    return stages


def stage_index(stages: Sequence[Stage], step: int) -> int:
    """Index of the stage in force at ``step`` (steps done so far; the last stage past the end)."""
    end = 0
    for i, s in enumerate(stages):
        end += s.steps
        if step < end:
            return i
    return len(stages) - 1


def stage_end(stages: Sequence[Stage], index: int) -> int:
    """Step count at which stage ``index`` ends."""
    return sum(s.steps for s in stages[: index + 1])


class CurriculumRule:
    """The promotion rule of a curriculum stage over a stream of finished episodes.

    ``observe(success)`` returns the new level when this episode earned a promotion, else
    None. The top level (``num_levels - 1``) is never left.
    """

    def __init__(self, num_levels: int, threshold: float = 0.8, window: int = 50) -> None:
        self.num_levels = int(num_levels)
        self.threshold = float(threshold)
        self.level = 0
        self._window: deque[bool] = deque(maxlen=int(window))
        self.promotions: list[list[int]] = []
        """``[episode index, new level]`` per promotion."""
        self.episodes = 0

    def observe(self, success: bool) -> int | None:
        self.episodes += 1
        self._window.append(bool(success))
        full = len(self._window) == self._window.maxlen
        if full and sum(self._window) / len(self._window) >= self.threshold and (
                self.level < self.num_levels - 1):
            self.level += 1
            self._window.clear()
            self.promotions.append([self.episodes, self.level])
            return self.level
        return None


def iteration_rows(stages: Sequence[Stage], total_steps: int, n_envs: int) -> list[int]:
    """Rows (completions) of each lm iteration: ``ceil(steps / batch_size)`` iterations of
    ``batch_size`` rows per stage, or without stages ``ceil(total_steps / n_envs)`` of
    ``n_envs`` rows."""
    if not stages:
        return [int(n_envs)] * -(-int(total_steps) // int(n_envs))
    return [s.batch_size for s in stages for _ in range(-(-s.steps // s.batch_size))]


def iteration_stage(stages: Sequence[Stage], iteration: int) -> int:
    """Index of the stage that 0-based lm ``iteration`` belongs to (see :func:`iteration_rows`)."""
    end = 0
    for i, s in enumerate(stages):
        end += -(-s.steps // s.batch_size)
        if iteration < end:
            return i
    return len(stages) - 1


class TextStages:
    """What the lm agents do per iteration under ``run.stages``: resize the text vector env to
    the stage's rows, run a curriculum stage's promotion rule over the rollouts' successes
    (``is_success`` per completion), and keep one record per stage entered."""

    def __init__(self, stages: Sequence[Stage], env: Any) -> None:
        self.stages = list(stages)
        self.env = env
        self.base_level = int(getattr(env, "level", 0))
        """The configured level, restored after a curriculum stage."""
        self.current: int | None = None
        self.rule: CurriculumRule | None = None
        self.records: list[dict[str, Any]] = []

    def enter(self, iteration: int, rows: int) -> None:
        """Switch to the stage of 0-based ``iteration`` (``rows`` completions) if it changed."""
        if not self.stages:
            return
        i = iteration_stage(self.stages, iteration)
        if i == self.current:
            return
        self.current, stage = i, self.stages[i]
        if self.env.num_envs != rows:
            self.env.resize(rows)
        if stage.curriculum:
            if int(getattr(self.env, "num_levels", 1)) < 2 or self.base_level == 0:
                raise ConfigError(f"run.stages[{i}].curriculum needs an env with difficulty "
                                  f"levels below the configured one (rlseek/Arithmetic-v0 at "
                                  f"level >= 1); {self.env.env_id} at level {self.base_level} "
                                  "has none")
            self.rule = CurriculumRule(self.base_level + 1, stage.threshold, stage.window)
            self.env.set_level(0)
        else:
            self.rule = None
            self.env.set_level(self.base_level)
        self.records.append({"index": i, "batch_size": rows, "curriculum": stage.curriculum,
                             "start_iteration": iteration, "promotions": []})

    def observe(self, rollout: Any) -> dict[str, float]:
        """Feed a rollout's successes to a curriculum stage's rule; returns scalars to log."""
        if self.rule is None:
            return {}
        for success in np.asarray(rollout.success, dtype=bool).reshape(-1):
            if self.rule.observe(bool(success)) is not None:
                self.env.set_level(self.rule.level)
        self.records[-1]["promotions"] = [list(p) for p in self.rule.promotions]
        return {"curriculum/level": float(self.rule.level)}
