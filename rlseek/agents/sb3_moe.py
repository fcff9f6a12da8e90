"""Mixture-of-experts policy and value networks for SB3's on-policy agents (ppo, a2c).

``agent.params.policy_kwargs: {moe: {experts: 4, top_k: 2, balance_coef: 0.01}}`` swaps the
actor's and the critic's MLP for one :class:`~rlseek.models.moe.MoEBlock` each, followed by
the policy's activation. With a width ``H`` (``net_arch``'s first entry, SB3's default 64),
each expert is ``Linear(obs, H / top_k) -> act -> Linear(H / top_k, H)``: a token runs through
``top_k`` experts, so the *active* parameters per observation equal the dense ``[H, H]``
network's (up to biases and the router) while the total grows with ``experts``. That is the
comparison the source document's claim needs (``benchmarks/bench_moe_stages.py --part moe``).

The Switch balance loss reaches SB3's optimizer through the block's output (an identity
autograd function adds its gradient; see :class:`~rlseek.models.moe.MoEBlock`), so PPO's and
A2C's own ``train()`` optimize it. :class:`MoELoadCallback` logs the expert load
(``moe/load_<block>_<expert>``, ``moe/max_load``) and ``moe/balance_loss`` once per rollout
to TensorBoard and MLflow. Other algos reject ``moe`` with one line.
"""

from __future__ import annotations

from typing import Any

import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn

from rlseek.errors import RlseekError
from rlseek.models.moe import MoEBlock, MoESpec, expert_load

MOE_ALGOS = ("ppo", "a2c")


class MoEExtractor(nn.Module):
    """SB3's ``MlpExtractor`` interface (``latent_dim_pi``/``latent_dim_vf``, ``forward_actor``,
    ``forward_critic``) with one MoE block per network and no shared layers."""

    def __init__(self, features_dim: int, width: int, spec: MoESpec,
                 activation_fn: type[nn.Module]) -> None:
        super().__init__()
        hidden = max(1, width // spec.top_k)

        def net() -> nn.Sequential:
            return nn.Sequential(
                MoEBlock(features_dim, hidden, width, spec, activation_fn, attach_aux=True),
                activation_fn(),
            )

        self.policy_net = net()
        self.value_net = net()
        self.latent_dim_pi = width
        self.latent_dim_vf = width

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_actor(features), self.forward_critic(features)

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        return self.policy_net(features)

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        return self.value_net(features)


def _width(net_arch: Any) -> int:
    if net_arch is None:
        return 64
    if isinstance(net_arch, dict):
        net_arch = net_arch.get("pi") or net_arch.get("vf") or [64]
    if isinstance(net_arch, (list, tuple)) and net_arch and isinstance(net_arch[0], int):
        return int(net_arch[0])
    raise RlseekError(f"agent.params.policy_kwargs.net_arch with moe must be a list of layer "
                      f"widths like [64, 64] (the first sets the width), got {net_arch!r}")


class MoEActorCriticPolicy(ActorCriticPolicy):
    """SB3 ``ActorCriticPolicy`` whose actor and critic are MoE blocks (``moe`` kwarg: a
    :class:`MoESpec` or its dict form)."""

    def __init__(self, *args: Any, moe: MoESpec | dict[str, Any] | None = None, **kwargs: Any) -> None:
        if isinstance(moe, dict) or moe is None:
            moe = MoESpec.from_dict(moe or {}, "agent.params.policy_kwargs.moe")
        self.moe_spec = moe
        self._moe_width = _width(kwargs.get("net_arch"))
        super().__init__(*args, **kwargs)

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = MoEExtractor(self.features_dim, self._moe_width, self.moe_spec,
                                          self.activation_fn).to(self.device)


class MoELoadCallback(BaseCallback):
    """Record expert load and balance loss (since the previous rollout) into SB3's logger."""

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        for key, value in expert_load(self.model.policy).items():
            self.model.logger.record(key, value)


def moe_policy(algo: str, policy: Any, policy_kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """``(policy class, policy_kwargs)`` for ``policy_kwargs`` holding a ``moe`` mapping.

    Raises RlseekError for algos without an actor-critic MLP policy and for dict observations
    (``MultiInputPolicy``), which the MoE extractor does not cover.
    """
    where = "agent.params.policy_kwargs.moe"
    if algo not in MOE_ALGOS:
        raise RlseekError(f"{where} is supported for algo {' and '.join(MOE_ALGOS)} only, not "
                          f"'{algo}'; remove moe or use ppo")
    if policy not in ("MlpPolicy", MoEActorCriticPolicy):
        raise RlseekError(f"{where} needs a flat observation (policy MlpPolicy), got policy "
                          f"{policy!r}")
    spec = MoESpec.from_dict(policy_kwargs["moe"], where)
    _width(policy_kwargs.get("net_arch"))
    return MoEActorCriticPolicy, {**policy_kwargs, "moe": spec}
