"""Agents: stable-baselines3 (robot control) and lm-ppo (RLHF on language models).

The offline agents (``bcq``, ``bc``) live with their datasets in :mod:`rlseek.offline.agent`.
"""

from rlseek.agents.base import Agent, get_agent_class, list_agents, register_agent

__all__ = ["Agent", "get_agent_class", "list_agents", "register_agent"]
