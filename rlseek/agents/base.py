"""The agent interface and registry.

An agent is one training algorithm behind ``rlseek train``. It is constructed from an
:class:`~rlseek.config.ExperimentConfig`, trains into a :class:`~rlseek.runs.Run` (writing
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

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from rlseek.config import ExperimentConfig
from rlseek.errors import RlseekError, did_you_mean
from rlseek.runs import Run


class Agent(ABC):
    """Base class of every agent; see the module docstring for the contract."""

    algo: ClassVar[str] = ""
    env_kind: ClassVar[str] = "robot"
    """Which kind of env the agent trains on: "robot", "text" or "offline"."""

    def __init__(self, config: ExperimentConfig) -> None:
        self.config = config

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
