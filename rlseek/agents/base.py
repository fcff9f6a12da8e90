"""The agent interface and registry.

An agent is one training algorithm behind ``rlseek train``. Its ``agent.params`` are a typed
:class:`AgentConfig` (d3rlpy-style): ``Agent.config_class.from_params(params)`` parses and
validates them once, and ``create(experiment)`` builds the agent, which keeps them as
``self.params``. An agent is constructed from an :class:`~rlseek.config.ExperimentConfig`
(and its parsed params), trains into a :class:`~rlseek.runs.Run` (writing
checkpoints through ``run.save_checkpoint`` and the final policy into ``run.final_dir``), and
evaluates a finished or checkpointed run. The interface is deliberately small:

* ``train(run, resume=False, progress=False) -> dict`` returns the summary figures (they go
  into ``summary.json``, evaluation included);
* ``evaluate(run, episodes=None) -> dict`` evaluates ``run.final_dir`` (or the newest
  checkpoint) on ``self.config``'s env and returns JSON-serializable figures;
* ``resolve_config(config) -> config`` may fill in defaults (e.g. reward weights) before the
  run directory is written.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rlseek.config import ExperimentConfig, check_field
from rlseek.errors import ConfigError, RlseekError, did_you_mean
from rlseek.runs import Run


class AgentConfig:
    """The typed ``agent.params`` of one algo: a dataclass whose fields are the params.

    :meth:`from_params` checks a config's mapping field by field (unknown names get a
    did-you-mean, types go through :func:`rlseek.config.check_field`, then :meth:`validate`
    checks ranges); :meth:`to_params` is what the run's ``config.yaml`` records;
    :meth:`create` builds the agent. ``agent_class`` is bound by :func:`register_agent`.
    """

    agent_class: ClassVar[type[Agent]]

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None, where: str = "agent.params") -> AgentConfig:
        """Parse and validate ``params`` (the config's ``agent.params``)."""
        params = dict(params or {})
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        owner = getattr(getattr(cls, "agent_class", None), "algo", "") or cls.__name__
        for key in params:
            if key not in fields:
                raise ConfigError(
                    f"unknown field '{where}.{key}'{did_you_mean(str(key), fields)}; "
                    f"{owner} takes: {', '.join(fields)}"
                )
        cfg = cls(**{k: check_field(v, fields[k].type, f"{where}.{k}") for k, v in params.items()})
        cfg.validate(where)
        return cfg

    def validate(self, where: str = "agent.params") -> None:
        """Raise :class:`~rlseek.errors.ConfigError` naming a field out of range (default: none)."""

    def to_params(self) -> dict[str, Any]:
        """The params as plain data (what ``config.yaml`` records)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def create(self, experiment: ExperimentConfig) -> Agent:
        """The agent of ``experiment``, holding these params."""
        return self.agent_class(experiment, self)


@dataclass
class RawParams(AgentConfig):
    """``agent.params`` passed through as a mapping, for agents that check their own."""

    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None, where: str = "agent.params") -> RawParams:
        return cls(dict(params or {}))

    def to_params(self) -> dict[str, Any]:
        return dict(self.params)


class Agent(ABC):
    """Base class of every agent; see the module docstring for the contract."""

    algo: ClassVar[str] = ""
    env_kind: ClassVar[str] = "robot"
    """Which kind of env the agent trains on: "robot", "text" or "offline"."""
    distributed_strategies: ClassVar[tuple[str, ...]] = ()
    """``run.distributed.strategy`` values the agent can train under torchrun with (empty:
    one process only)."""
    config_class: ClassVar[type[AgentConfig]] = RawParams
    """The typed ``agent.params``; :func:`register_agent` binds it to the agent class."""
    supports_continual: ClassVar[bool] = False
    """Whether ``run.tasks`` (continual learning, :mod:`rlseek.continual`) works with this algo."""

    def __init__(self, config: ExperimentConfig, params: AgentConfig | None = None,
                 continual: Any = None) -> None:
        self.config = config
        self.params = params if params is not None else self.config_class.from_params(config.agent.params)
        self.continual = continual
        """A :class:`~rlseek.continual.state.TaskContext` when this run is one task of a
        sequence (set by the continual runner): start from the previous task, replay, EWC."""

    def resolve_config(self, config: ExperimentConfig) -> ExperimentConfig:
        """Fill in defaults before the run directory is written (default: unchanged)."""
        return config

    @abstractmethod
    def train(self, run: Run, *, resume: bool = False, progress: bool = False) -> dict[str, Any]:
        """Train into ``run``; return the summary figures (evaluation included)."""

    @abstractmethod
    def evaluate(self, run: Run, *, episodes: int | None = None) -> dict[str, Any]:
        """Evaluate the run's final policy (or newest checkpoint) on ``self.config``'s env."""


_AGENTS: dict[str, type[Agent]] = {}

# Functions that import agent modules, run on the first lookup (rlseek.builtins adds the
# built-in agents' loader); deferring keeps `import rlseek` free of torch, SB3 and d3rlpy.
_LOADERS: list[Callable[[], object]] = []


def register_agent(name: str):  # type: ignore[no-untyped-def]
    """Class decorator registering an :class:`Agent` subclass under ``name``."""

    def deco(cls: type[Agent]) -> type[Agent]:
        cls.algo = name
        if "config_class" in cls.__dict__:
            cls.config_class.agent_class = cls
        else:
            # A config class shared through a base agent (SB3, offline) gets a subclass bound to
            # this agent, so its create() builds this one.
            base = cls.config_class
            cls.config_class = type(f"{cls.__name__}Config", (base,), {
                "__module__": cls.__module__, "__qualname__": f"{cls.__qualname__}Config",
                "__doc__": base.__doc__, "agent_class": cls,
            })
        _AGENTS[name] = cls
        return cls

    return deco


def add_agent_loader(load: Callable[[], object]) -> None:
    """Run ``load`` (which imports modules that call :func:`register_agent`) on the next lookup."""
    _LOADERS.append(load)


def _load_builtins() -> None:
    while _LOADERS:
        _LOADERS.pop(0)()


def list_agents() -> list[str]:
    """Names of all registered agents."""
    _load_builtins()
    return sorted(_AGENTS)


def get_agent_class(name: str) -> type[Agent]:
    """The agent class for ``name``; unknown names fail with a did-you-mean."""
    _load_builtins()
    if name not in _AGENTS:
        raise RlseekError(
            f"unknown algo '{name}'{did_you_mean(name, _AGENTS)}; known algos: {', '.join(sorted(_AGENTS))}"
        )
    return _AGENTS[name]
