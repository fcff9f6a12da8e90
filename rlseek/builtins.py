"""Every built-in registration of rlseek, named in one place with plain imports.

The registries know nothing of what is built in: reward terms (:mod:`rlseek.rewards.registry`),
env ids (:mod:`rlseek.envs.registration`), agents (:mod:`rlseek.agents.base`) and CLI
subcommands (:mod:`rlseek.cli`) hold what has been registered with them. This module, at the
top of the import order, fills them:

* the reward terms and the Gymnasium env ids are registered when ``rlseek`` is imported
  (:func:`register_builtins`, cheap: numpy and gymnasium only);
* the agents are imported on the first agent lookup (:func:`load_agents`; they pull in torch,
  stable-baselines3 and d3rlpy);
* the CLI's subcommand modules are listed by :func:`cli_modules`.

A new built-in is one more import line here; a user's own reward terms or envs come from their
modules (``imports:`` in a config, ``--import``) and need nothing here.
"""

from __future__ import annotations

from types import ModuleType


def register_builtins() -> None:
    """Register the built-in reward terms and env ids; agents are deferred to first lookup."""
    import rlseek.rewards.learned.term
    import rlseek.rewards.robot
    import rlseek.rewards.text  # noqa: F401  (each module registers its terms)
    from rlseek.agents.base import add_agent_loader
    from rlseek.envs.registration import register_specs
    from rlseek.envs.robot.specs import SPECS as ROBOT_SPECS
    from rlseek.envs.text.specs import SPECS as TEXT_SPECS

    register_specs(ROBOT_SPECS)
    register_specs(TEXT_SPECS)
    add_agent_loader(load_agents)


def load_agents() -> None:
    """Import the built-in agents (each module registers its algos)."""
    import rlseek.agents.lm_grpo
    import rlseek.agents.lm_ppo
    import rlseek.agents.sb3
    import rlseek.offline.agent  # noqa: F401  (bcq, bc: above the agents, with the datasets)


def cli_modules() -> list[ModuleType]:
    """The modules whose ``register_cli(subparsers)`` build the ``rlseek`` parser, in help order."""
    from rlseek.cli import catalog, demo, offline, reward_model, runs, serve, train

    return [catalog, train, reward_model, offline, runs, serve, demo]
