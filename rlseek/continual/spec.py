"""The continual-learning part of a config: ``run.tasks``, ``run.replay`` and ``run.ewc``.

```yaml
env:   {id: rlseek/Reacher-v0}
agent: {algo: sac}
run:
  tasks:                       # trained in order; each starts from the previous task's policy
    - {env: {kwargs: {level: 0}}, total_steps: 3000}
    - {env: {kwargs: {level: 2}}, total_steps: 3000, name: wide}
  replay: {fraction: 0.25, capacity: 5000}
  ewc: {lambda: 100.0, fisher_samples: 256}
```

A task's ``env`` is merged over the config's ``env`` section: ``id`` and ``reward`` replace,
``kwargs`` and ``reward_params`` are merged key by key; a plain string is an env id. A task
without ``total_steps`` takes ``run.total_steps``. ``replay.fraction`` is the share of every
update's batch drawn from past tasks' samples (0 <= fraction < 1), ``replay.capacity`` the
number of past-task samples kept (a reservoir over all past tasks). ``ewc.lambda`` weighs the
penalty λ/2 · Σ F (θ − θ*)², ``ewc.fisher_samples`` is how many samples of each finished task
estimate its diagonal Fisher F.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rlseek.errors import ConfigError, did_you_mean

_TASK_KEYS = ("env", "total_steps", "name")
_ENV_KEYS = ("id", "kwargs", "reward", "reward_params")


@dataclass(frozen=True)
class TaskSpec:
    """One task of the sequence: its env section (as a plain mapping) and its budget."""

    name: str
    env: dict[str, Any]
    total_steps: int


@dataclass(frozen=True)
class ReplaySpec:
    """Past-task samples mixed into every update: ``fraction`` of each batch, ``capacity`` kept."""

    fraction: float
    capacity: int


@dataclass(frozen=True)
class EwcSpec:
    """Elastic weight consolidation: weight ``lam`` (the config's ``lambda``) and Fisher samples."""

    lam: float
    fisher_samples: int


@dataclass(frozen=True)
class ContinualSpec:
    """A parsed task sequence with its replay and EWC options (None: off)."""

    tasks: tuple[TaskSpec, ...]
    replay: ReplaySpec | None
    ewc: EwcSpec | None

    @property
    def method(self) -> str:
        """``finetune``, ``replay``, ``ewc`` or ``replay+ewc``: what the benchmark compares."""
        parts = [p for p, on in (("replay", self.replay), ("ewc", self.ewc)) if on is not None]
        return "+".join(parts) or "finetune"


def _number(value: Any, where: str, src: str, integer: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if integer:
        ok = ok and float(value).is_integer()
    if not ok:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{src}: field '{where}' must be {kind}, got {value!r}")
    return int(value) if integer else float(value)


def _check_keys(data: Any, allowed: tuple[str, ...], where: str, src: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{src}: field '{where}' must be a mapping, got {data!r}")
    for key in data:
        if key not in allowed:
            raise ConfigError(f"{src}: unknown field '{where}.{key}'{did_you_mean(str(key), allowed)}; "
                              f"'{where}' takes: {', '.join(allowed)}")
    return data


def merge_env(base: Mapping[str, Any], task_env: Any, where: str, src: str) -> dict[str, Any]:
    """The config's env section with a task's ``env`` merged over it (see the module docstring)."""
    if isinstance(task_env, str):
        task_env = {"id": task_env}
    task_env = _check_keys(task_env if task_env is not None else {}, _ENV_KEYS, where, src)
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in base.items()}
    for key, value in task_env.items():
        if key in ("kwargs", "reward_params"):
            if value is not None and not isinstance(value, Mapping):
                raise ConfigError(f"{src}: field '{where}.{key}' must be a mapping, got {value!r}")
            out[key] = {**(out.get(key) or {}), **(value or {})}
        elif key == "id" and not isinstance(value, str):
            raise ConfigError(f"{src}: field '{where}.id' must be an env id string, got {value!r}")
        else:
            out[key] = value
    return out


def _task_name(index: int, env: Mapping[str, Any], given: Any, where: str, src: str) -> str:
    if given is not None:
        if not isinstance(given, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", given):
            raise ConfigError(f"{src}: field '{where}.name' must be 1-40 letters, digits, '_', '.' "
                              f"or '-', got {given!r}")
        return given
    name = str(env.get("id", "task")).split("/")[-1].split("-v")[0].lower()
    level = (env.get("kwargs") or {}).get("level")
    return f"{name}-level{level}" if level is not None else f"{name}-{index}"


def parse_continual(run: Any, env: Mapping[str, Any], src: str = "<dict>") -> ContinualSpec | None:
    """Validate ``run.tasks``/``run.replay``/``run.ewc`` of a config (None without tasks).

    ``run`` is the config's :class:`~rlseek.config.RunSection`, ``env`` its env section as a
    mapping. Errors name the field path (``run.tasks[1].total_steps``) and what would be right.
    """
    tasks_raw, replay_raw, ewc_raw = run.tasks, run.replay, run.ewc
    if tasks_raw is None:
        for name, value in (("replay", replay_raw), ("ewc", ewc_raw)):
            if value is not None:
                raise ConfigError(f"{src}: field 'run.{name}' needs a task sequence in 'run.tasks'")
        return None
    if not isinstance(tasks_raw, list) or len(tasks_raw) < 2:
        raise ConfigError(f"{src}: field 'run.tasks' must be a list of at least 2 tasks "
                          f"({{env: ..., total_steps: ...}}), got {tasks_raw!r}")
    tasks: list[TaskSpec] = []
    for i, raw in enumerate(tasks_raw):
        where = f"run.tasks[{i}]"
        raw = _check_keys(raw, _TASK_KEYS, where, src)
        task_env = merge_env(env, raw.get("env"), f"{where}.env", src)
        steps = _number(raw.get("total_steps", run.total_steps), f"{where}.total_steps", src, integer=True)
        if steps < 1:
            raise ConfigError(f"{src}: field '{where}.total_steps' must be >= 1, got {steps}")
        tasks.append(TaskSpec(_task_name(i, task_env, raw.get("name"), where, src), task_env, int(steps)))
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ConfigError(f"{src}: field 'run.tasks' has repeated task names {names}; give each a 'name'")
    replay = None
    if replay_raw is not None:
        r = _check_keys(replay_raw, ("fraction", "capacity"), "run.replay", src)
        fraction = _number(r.get("fraction", 0.25), "run.replay.fraction", src)
        capacity = _number(r.get("capacity", 10_000), "run.replay.capacity", src, integer=True)
        if not 0.0 <= fraction < 1.0:
            raise ConfigError(f"{src}: field 'run.replay.fraction' must be in [0, 1), got {fraction}")
        if capacity < 1:
            raise ConfigError(f"{src}: field 'run.replay.capacity' must be >= 1, got {capacity}")
        replay = ReplaySpec(fraction, int(capacity))
    ewc = None
    if ewc_raw is not None:
        e = _check_keys(ewc_raw, ("lambda", "fisher_samples"), "run.ewc", src)
        lam = _number(e.get("lambda", 100.0), "run.ewc.lambda", src)
        samples = _number(e.get("fisher_samples", 256), "run.ewc.fisher_samples", src, integer=True)
        if lam < 0:
            raise ConfigError(f"{src}: field 'run.ewc.lambda' must be >= 0, got {lam}")
        if samples < 1:
            raise ConfigError(f"{src}: field 'run.ewc.fisher_samples' must be >= 1, got {samples}")
        ewc = EwcSpec(lam, int(samples))
    return ContinualSpec(tuple(tasks), replay, ewc)
