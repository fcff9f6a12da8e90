"""Continual learning for the text-policy agents (lm-ppo and every :class:`LmAgent`).

* **Start**: a new task's policy is the previous task's final model (the runner points
  ``agent.params.model`` at ``tasks/NN-name/final``, so config.yaml records it); its KL
  reference is that same model, and the value head starts from zero again.
* **Replay**: past-task prompts (with their reference answers) replace
  ``round(fraction · groups)`` prompt groups of every rollout, through the env's reset
  options; a group is the rows that share a prompt (one row each for lm-ppo, a whole group for
  group-sampling algos), so no group is split. Replay needs every task on the same env id (the
  current env scores the replayed prompts). When a task ends, ``min(capacity, total_steps)``
  prompts of its distribution stream into the reservoir.
* **EWC**: ``extra_loss`` of the trainer, added to every micro-batch loss with the micro-batch's
  share (so once per minibatch): λ/2 · Σ F (θ − θ*)² over the LM's parameters. When a task
  ends, F is estimated on ``fisher_samples`` of its prompts with completions sampled from the
  policy (the true Fisher of the sequence distribution: squared gradient of log π(y|x)).
  EWC needs full fine-tuning (``lora: false``): a new task's LoRA adapter starts fresh on the
  merged model, so earlier adapters' values cannot be anchored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rlseek.continual.ewc import EwcPenalty, diagonal_fisher
from rlseek.continual.state import TaskContext
from rlseek.errors import RlseekError

_TEXT = "<U512"  # fixed-width strings: saved in .npz without pickles


def _rows(prompts: list[str], answers: list[Any]) -> dict[str, np.ndarray]:
    if any(len(p) > 512 for p in prompts):
        raise RlseekError("continual replay keeps prompts of at most 512 characters")
    return {"prompts": np.asarray(prompts, dtype=_TEXT),
            "answers": np.asarray(["" if a is None else str(a) for a in answers], dtype=_TEXT),
            "has_answer": np.asarray([a is not None for a in answers])}


class TextContinual:
    """The continual hooks of one text task (see the module docstring)."""

    def __init__(self, ctx: TaskContext, *, lora: bool) -> None:
        self.ctx = ctx
        spec = ctx.spec
        if spec.ewc is not None and lora:
            raise RlseekError("run.ewc needs agent.params.lora: false (a new task's LoRA adapter "
                              "starts fresh, so earlier adapters cannot be anchored)")
        if spec.replay is not None and len({t.env["id"] for t in spec.tasks}) > 1:
            raise RlseekError("run.replay on text tasks needs every task on one env id (the current "
                              "env scores the replayed prompts); use levels or kwargs of one task")
        self.past = ctx.load_replay()
        self.ewc = ctx.load_ewc("policy")
        self.replayed = 0
        self.rows = 0
        self.last_penalty: torch.Tensor | None = None
        """The EWC penalty of the last micro-batch, kept on the device (read once, at the
        task's end: a ``float()`` per micro-batch would make the host wait for the GPU)."""

    def mix(self, options: dict[str, Any] | None, env: Any, iteration: int) -> dict[str, Any] | None:
        """The rollout's reset options with ``fraction`` of its prompt groups from past tasks."""
        spec = self.ctx.spec.replay
        n = int(env.num_envs)
        self.rows += n
        if spec is None or spec.fraction == 0 or self.past is None or len(self.past) == 0:
            return options
        rng = np.random.default_rng([self.ctx.seed, self.ctx.index, iteration, 17])
        if options is None or "prompts" not in options:
            # What the env's reset would sample: one prompt per row, or per group of G rows.
            group = int((options or {}).get("group_size") or 1)
            distinct, keys = env.core.sample(rng, n // group)
            prompts = [p for p in distinct for _ in range(group)]
            answers = [k for k in keys for _ in range(group)]
        else:
            prompts = list(options["prompts"])
            answers = list(options.get("answers") or [None] * n)
        prompts, answers = list(prompts), list(answers)
        groups: dict[str, list[int]] = {}
        for row, p in enumerate(prompts):
            groups.setdefault(p, []).append(row)
        members = list(groups.values())
        k = int(round(spec.fraction * len(members)))
        if k == 0:
            return {**(options or {}), "prompts": prompts, "answers": answers}
        chosen = rng.choice(len(members), size=k, replace=False)
        past = self.past.sample(k, rng)
        for g, p, a, has in zip(chosen, past["prompts"], past["answers"], past["has_answer"]):
            for row in members[g]:
                prompts[row], answers[row] = str(p), (str(a) if has else None)
                self.replayed += 1
        return {**(options or {}), "prompts": prompts, "answers": answers}

    def extra_loss(self, policy: Any) -> Callable[[], torch.Tensor] | None:
        """The EWC penalty over the LM's parameters (None: no earlier task anchored)."""
        if self.ewc is None or not len(self.ewc):
            return None
        params = dict(policy.lm.named_parameters())
        params = {k: p for k, p in params.items() if p.requires_grad}
        ewc = self.ewc

        def penalty() -> torch.Tensor:
            value = ewc.penalty(params)
            self.last_penalty = value.detach()
            return value

        return penalty

    def finish(self, agent: Any, policy: Any, trainer: Any, device: torch.device) -> dict[str, Any]:
        """After the task: its prompts into the reservoir, its Fisher into the EWC terms."""
        from rlseek.agents.lm_ppo import core
        from rlseek.agents.lm_ppo.trainer import autocast, trim
        from rlseek.envs.text.rollout import DecodeSettings, RolloutEngine

        spec, config, cfg = self.ctx.spec, agent.config, agent.params
        out: dict[str, Any] = {"replayed_rows": self.replayed, "rollout_rows": self.rows,
                               "ewc_penalty": None if self.last_penalty is None else float(self.last_penalty)}
        rng = np.random.default_rng([self.ctx.seed, self.ctx.index, 29])
        if spec.replay is not None:
            env = agent._make_env(config, 1)
            n = min(spec.replay.capacity, int(config.run.total_steps))
            prompts, answers = env.core.sample(rng, n)
            env.close()
            buf = self.past or self.ctx.new_buffer()
            buf.add(_rows(list(prompts), list(answers)), task=self.ctx.index)
            self.ctx.save_replay(buf)
            out["replay_kept"] = {str(k): v for k, v in buf.task_counts().items()}
        if spec.ewc is not None and not self.ctx.is_last:
            n = spec.ewc.fisher_samples
            env = agent._make_env(config, n)
            engine = RolloutEngine.for_env(policy.lm, env, device)
            gen = torch.Generator(device=device).manual_seed(self.ctx.seed + 31 * (self.ctx.index + 1))
            with autocast(device, cfg.dtype):
                ro = engine.rollout(env, DecodeSettings(temperature=cfg.temperature, top_k=cfg.top_k),
                                    generator=gen, seed=int(rng.integers(2**31)))
            env.close()
            batch = trainer.batch_tensors(ro)
            params = {k: p for k, p in policy.lm.named_parameters() if p.requires_grad}

            def sample(i: int) -> Callable[[], torch.Tensor]:
                def ll() -> torch.Tensor:
                    mb = trim({k: v[i : i + 1] for k, v in batch.items()})
                    logits, _ = trainer.forward(policy.lm, mb)
                    return core.logprobs_of(logits.float(), mb["response_ids"], mb["mask"]).sum()
                return ll

            fisher = diagonal_fisher(params, (sample(i) for i in range(n)))
            penalty = self.ewc or EwcPenalty(spec.ewc.lam)
            penalty.consolidate(params, fisher)
            self.ctx.save_ewc("policy", penalty)
            out["fisher_mean"] = float(np.mean([f.mean().item() for f in fisher.values()]))
        return out
