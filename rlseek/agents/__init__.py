"""Agents: stable-baselines3 (robot control), lm-ppo (RLHF on language models), offline (d3rlpy)."""

from rlseek.agents.base import Agent, get_agent_class, list_agents, register_agent

__all__ = ["Agent", "get_agent_class", "list_agents", "register_agent"]
