"""Continual learning for SB3 SAC: start from the previous task, replay and EWC.

* **Start**: a new task's model takes the previous task's final parameters and optimizer state
  (``set_parameters``); its replay buffer starts empty, filled by the new task's env.
* **Replay**: :class:`MixedReplayBuffer` wraps SB3's buffer; every ``sample(batch_size)`` draws
  ``round(fraction · batch_size)`` transitions from the past tasks' reservoir and the rest from
  the current task. When a task ends, its transitions stream into the reservoir.
* **EWC**: the penalty's gradient λ · Σ F (θ − θ*) is added to the actor's and the critic's
  gradients by an optimizer step pre-hook (equal to adding the penalty to SAC's actor and
  critic losses, without copying SAC's ``train``). When a task ends, the diagonal Fisher is
  estimated on ``fisher_samples`` states of its replay buffer: for the actor the true Fisher of
  the squashed Gaussian policy (actions sampled from it), for the critic that of a
  unit-variance Gaussian around each Q head (the Gauss–Newton diagonal E[(∂Q/∂θ)²]).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.buffers import ReplayBuffer

from rlseek.continual.buffer import ReservoirBuffer
from rlseek.continual.ewc import EwcPenalty, diagonal_fisher
from rlseek.continual.state import TaskContext
from rlseek.errors import RlseekError

_FIELDS = ("observations", "actions", "next_observations", "rewards", "dones")


def buffer_rows(buffer: ReplayBuffer) -> dict[str, np.ndarray]:
    """Every stored transition of an SB3 ``ReplayBuffer``, one row each (``dones`` exclude
    time-limit truncations, as SB3's own sampling does)."""
    if getattr(buffer, "optimize_memory_usage", False):
        raise RlseekError("continual replay needs optimize_memory_usage=false in agent.params")
    rows = buffer.buffer_size if buffer.full else buffer.pos

    def flat(a: np.ndarray) -> np.ndarray:
        return a[:rows].reshape(rows * buffer.n_envs, *a.shape[2:])

    dones = buffer.dones[:rows] * (1.0 - buffer.timeouts[:rows])
    return {"observations": flat(buffer.observations), "actions": flat(buffer.actions),
            "next_observations": flat(buffer.next_observations),
            "rewards": flat(buffer.rewards).astype(np.float32), "dones": flat(dones).astype(np.float32)}


class MixedReplayBuffer:
    """An SB3 replay buffer whose samples mix in past-task transitions by ``fraction``.

    Everything but :meth:`sample` goes to the wrapped buffer (``add``, ``size``, checkpoints).
    ``last_mix`` is (current, past) of the newest batch.
    """

    def __init__(self, base: ReplayBuffer, past: ReservoirBuffer, fraction: float, seed: int = 0) -> None:
        self.base = base
        self.past = past
        self.fraction = float(fraction)
        self.last_mix = (0, 0)
        self._rng = np.random.default_rng(seed)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.base, name)

    def sample(self, batch_size: int, env: Any = None) -> Any:
        n_past = int(round(self.fraction * batch_size)) if len(self.past) else 0
        n_past = min(n_past, batch_size - 1)
        cur = self.base.sample(batch_size - n_past, env=env)
        self.last_mix = (batch_size - n_past, n_past)
        if n_past == 0:
            return cur
        rows = self.past.sample(n_past, self._rng)
        dev = cur.observations.device

        def cat(mine: torch.Tensor, key: str) -> torch.Tensor:
            other = torch.as_tensor(rows[key], device=dev, dtype=mine.dtype).reshape(n_past, *mine.shape[1:])
            return torch.cat([mine, other])

        return cur._replace(
            observations=cat(cur.observations, "observations"), actions=cat(cur.actions, "actions"),
            next_observations=cat(cur.next_observations, "next_observations"),
            dones=cat(cur.dones, "dones"), rewards=cat(cur.rewards, "rewards"),
        )


def _groups(model: Any) -> dict[str, tuple[torch.nn.Module, torch.optim.Optimizer]]:
    return {"actor": (model.actor, model.actor.optimizer), "critic": (model.critic, model.critic.optimizer)}


def _optimized_params(module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, torch.nn.Parameter]:
    ids = {id(p) for g in optimizer.param_groups for p in g["params"]}
    return {n: p for n, p in module.named_parameters() if id(p) in ids}


class SB3Continual:
    """The continual hooks of an SB3 SAC agent for one task (see the module docstring)."""

    def __init__(self, ctx: TaskContext) -> None:
        self.ctx = ctx
        self.past: ReservoirBuffer | None = None
        self.ewc: dict[str, EwcPenalty] = {}
        self.last_penalty: dict[str, float] = {}

    def attach(self, model: Any, resume: bool, model_file: str) -> None:
        """Before learning: take the previous task's policy (fresh runs), mix in replay, hook EWC."""
        if not hasattr(model, "actor") or not hasattr(model, "critic"):
            raise RlseekError("continual learning on SB3 supports algo 'sac' only")
        if not resume and self.ctx.previous is not None:
            model.set_parameters(str(Path(self.ctx.previous) / "final" / model_file), exact_match=True,
                                 device=model.device)
        self.past = self.ctx.load_replay()
        spec = self.ctx.spec
        if self.past is not None and spec.replay is not None and spec.replay.fraction > 0:
            model.replay_buffer = MixedReplayBuffer(model.replay_buffer, self.past, spec.replay.fraction,
                                                    seed=self.ctx.seed + 7919 * self.ctx.index)
        for part, (module, opt) in _groups(model).items():
            penalty = self.ctx.load_ewc(part)
            if penalty is None or not len(penalty):
                continue
            params = _optimized_params(module, opt)
            self.ewc[part] = penalty

            def hook(_opt: Any, _args: Any, _kwargs: Any, part: str = part, params: Any = params) -> None:
                self.last_penalty[part] = self.ewc[part].add_gradient(params)

            opt.register_step_pre_hook(hook)

    def finish(self, model: Any) -> dict[str, Any]:
        """After learning: add this task to the reservoir and the EWC terms; return figures."""
        base = model.replay_buffer.base if isinstance(model.replay_buffer, MixedReplayBuffer) else model.replay_buffer
        rows = buffer_rows(base)
        spec, out = self.ctx.spec, {}
        if spec.replay is not None:
            buf = self.past or self.ctx.new_buffer()
            buf.add(rows, task=self.ctx.index)
            self.ctx.save_replay(buf)
            out["replay_kept"] = {str(k): v for k, v in buf.task_counts().items()}
        if spec.ewc is not None and not self.ctx.is_last:
            rng = np.random.default_rng(self.ctx.seed + 104729 * (self.ctx.index + 1))
            idx = rng.choice(len(rows["observations"]), size=min(spec.ewc.fisher_samples, len(rows["observations"])),
                             replace=False)
            obs = torch.as_tensor(rows["observations"][idx], dtype=torch.float32, device=model.device)
            for part, (module, opt) in _groups(model).items():
                params = _optimized_params(module, opt)
                fisher = diagonal_fisher(params, _log_likelihoods(model, part, obs))
                penalty = self.ewc.get(part) or EwcPenalty(spec.ewc.lam)
                penalty.consolidate(params, fisher)
                self.ctx.save_ewc(part, penalty)
                out[f"fisher_mean_{part}"] = float(np.mean([f.mean().item() for f in fisher.values()]))
        out.update({f"ewc_penalty_{k}": v for k, v in self.last_penalty.items()})
        return out


def _log_likelihoods(model: Any, part: str, obs: torch.Tensor):  # type: ignore[no-untyped-def]
    """One closure per state: log π(a|s) of a sampled action (actor), or the Gaussian
    log-likelihood of a sampled target around every Q head (critic)."""
    actor = model.actor
    for s in obs:
        s = s.unsqueeze(0)
        with torch.no_grad():
            action, _ = actor.action_log_prob(s)
            action = action.clamp(-1 + 1e-6, 1 - 1e-6)
        if part == "actor":
            def ll(s: torch.Tensor = s, a: torch.Tensor = action) -> torch.Tensor:
                mean, log_std, kwargs = actor.get_action_dist_params(s)
                dist = actor.action_dist.proba_distribution(mean, log_std, **kwargs)
                return dist.log_prob(a).sum()
        else:
            def ll(s: torch.Tensor = s, a: torch.Tensor = action) -> torch.Tensor:
                qs = torch.cat(model.critic(s, a))
                target = qs.detach() + torch.randn_like(qs)
                return (-0.5 * (target - qs) ** 2).sum()
        yield ll
