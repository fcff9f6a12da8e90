"""One iteration of a text-policy algorithm on a batch of rollouts.

:class:`LmTrainer` is what lm-ppo and the critic-free agents (lm-grpo, lm-rloo) share: the
rollout's tensors, the teacher-forced forward, one batched no-grad pass for the old and
reference log-probs, the token-level micro-batch loop :meth:`LmTrainer.accumulate` around an
algorithm's :meth:`LmTrainer.micro_loss`, the optimizer step, the epochs over shuffled
minibatches, the learning-rate schedule and the KL and entropy controllers.

:class:`PPOTrainer` adds score shaping, the KL-penalized rewards, GAE and the clipped policy
and value losses; it owns the running statistics of the env's score. ``step`` turns one
:class:`Rollout` into a policy update and returns the iteration's figures (keys namespaced
like CleanRL's).

Hook points, in the order one update calls them: :meth:`LmTrainer.prepare` (the algorithm's
advantages), per minibatch :meth:`LmTrainer.accumulate` → :meth:`LmTrainer.micro_batches`
(how a minibatch is split) → :meth:`LmTrainer.micro_loss` per micro-batch, each weighted by
:meth:`LmTrainer.loss_units` → :meth:`LmTrainer.optimizer_step`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from rlseek.agents.lm_ppo import core
from rlseek.agents.lm_ppo.batching import (
    cut,
    host_floats,
    host_stats,
    make_optimizer,
    to_device,
    token_budget_groups,
    trim_bounds,
)
from rlseek.agents.lm_ppo.batching import trim as trim  # re-exported (continual.text uses it)
from rlseek.agents.lm_ppo.config import LmPolicyConfig, LmPpoConfig
from rlseek.agents.lm_ppo.controllers import EntropyController, make_kl_controller
from rlseek.agents.lm_ppo.model import PolicyWithValueHead, forward_response, sequence_inputs
from rlseek.agents.lm_ppo.sharding import BatchShard
from rlseek.distributed import World
from rlseek.distributed.grads import all_reduce_gradients
from rlseek.envs.text.rollout import Rollout
from rlseek.statistics import RunningMeanStd

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def autocast(device: torch.device, dtype: str) -> contextlib.AbstractContextManager[Any]:
    """Mixed precision for ``dtype`` other than float32 (weights and Adam stay float32)."""
    if dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=_DTYPES[dtype])


def set_matmul_precision(device: torch.device, tf32: bool) -> None:
    """On CUDA, float32 matmuls and convolutions in TF32 (``tf32=True``) or full IEEE fp32;
    nothing happens on other devices (``LmPolicyConfig.tf32``)."""
    if device.type == "cuda":
        mode = "tf32" if tf32 else "ieee"
        torch.backends.cuda.matmul.fp32_precision = mode
        torch.backends.cudnn.conv.fp32_precision = mode


class LmTrainer:
    """Updates of a text policy (:class:`PolicyWithValueHead`) against a frozen reference.

    Subclasses define :meth:`prepare` (rollout → batch of tensors with ``old_logp`` and
    ``advantages``, plus the iteration's chart figures, ``charts/kl_ref`` and
    ``charts/entropy`` among them) and :meth:`micro_loss`.
    """

    def __init__(self, policy: PolicyWithValueHead, reference: nn.Module | None, cfg: LmPolicyConfig,
                 device: torch.device, *, vocab_size: int | None = None,
                 banned_ids: tuple[int, ...] = (), total_iterations: int | None = None) -> None:
        """``vocab_size`` and ``banned_ids`` define the policy's distribution as the rollout
        engine samples it (the tokenizer's vocabulary; the pad id never sampled);
        ``total_iterations`` is the horizon of ``lr_schedule: linear``. ``reference`` None
        with a LoRA policy is the base with the adapter disabled; None without LoRA means no
        reference at all (:attr:`has_reference` False: no reference log-probs, KL 0)."""
        self.policy, self.reference, self.cfg, self.device = policy, reference, cfg, device
        self.vocab_size, self.banned_ids = vocab_size, tuple(banned_ids)
        self._banned: tuple[int, ...] | torch.Tensor = (
            torch.tensor(self.banned_ids, dtype=torch.long, device=device) if self.banned_ids else ())
        """``banned_ids`` as a long tensor on the device, built once: a list would be copied
        to the device at every forward (a blocking copy from pageable memory on CUDA)."""
        self.total_iterations = total_iterations
        if cfg.lr_schedule == "linear" and not total_iterations:
            raise ValueError("lr_schedule 'linear' needs total_iterations")
        self.iteration = 0
        set_matmul_precision(device, cfg.tf32)
        self.optimizer = make_optimizer(policy.trainable_parameters(), cfg.learning_rate, device)
        self._trainable = [p for group in self.optimizer.param_groups for p in group["params"]]
        """The parameters the optimizer steps (clipped and all-reduced): listed once, not
        walked through the modules at every minibatch."""
        self.compile_forward = cfg.compile is True or (cfg.compile == "auto" and device.type == "cuda")
        self.compile_error: str | None = None
        self._compiled: Any = None
        self._compiled_stats: Any = None
        self._host: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self.kl_ctl = make_kl_controller(cfg.kl_control, cfg.kl_coef, cfg.kl_target, cfg.kl_horizon)
        self.ent_ctl = EntropyController(cfg.ent_coef, cfg.ent_control == "adaptive",
                                         cfg.ent_target, cfg.ent_rate, cfg.ent_coef_max)
        self.shuffle_gen = torch.Generator()
        self.shard = BatchShard(0, World())
        self.sharded: Any = None
        """``strategy: fsdp``: the policy's :class:`~rlseek.distributed.fsdp.ShardedPolicy`."""
        """This rank's rows of the global batch (set by the agent under torchrun; alone, the
        whole batch): see :mod:`rlseek.agents.lm_ppo.sharding`."""
        self.extra_loss: Callable[[], torch.Tensor] | None = None
        """A loss term added to every micro-batch's loss (weighted by its share, so once per
        minibatch), logged as ``losses/extra``: continual learning's EWC penalty."""

    @property
    def has_reference(self) -> bool:
        """Whether a reference policy exists (a copy, or the LoRA base)."""
        return self.reference is not None or bool(getattr(self.policy, "lora", False))

    # -- tensors and forward passes -----------------------------------------------------------
    def batch_tensors(self, ro: Rollout) -> dict[str, torch.Tensor]:
        """The rollout's token tensors on the trainer's device: ``prompt_ids``,
        ``prompt_mask`` (left-padded), ``response_ids`` and ``mask`` (right-padded)."""
        d = self.device
        batch = {"prompt_ids": to_device(ro.prompt_ids, d), "prompt_mask": to_device(ro.prompt_mask, d),
                 "response_ids": to_device(ro.response_ids, d), "mask": to_device(ro.response_mask, d)}
        if ro.prompt_mask.device.type == "cpu" and ro.response_mask.device.type == "cpu":
            self._host = (batch["mask"], ro.prompt_mask, ro.response_mask)  # see host_masks
        return batch

    def forward(self, lm: nn.Module, mb: dict[str, torch.Tensor], value_head: nn.Module | None = None):
        """Teacher-forced (logits, values) of ``mb``'s responses under ``lm`` (values None
        without ``value_head``); see :func:`forward_response`."""
        inputs = sequence_inputs(mb["prompt_ids"], mb["prompt_mask"], mb["response_ids"], mb["mask"])
        args = (lm, inputs, mb["response_ids"].shape[1], self.cfg.temperature, value_head)
        kw = {"vocab_size": self.vocab_size, "banned_ids": self._banned}
        with autocast(self.device, self.cfg.dtype):
            if self.sharded is not None and lm is self.policy.lm:  # FSDP: through the root unit
                return self.sharded.forward(inputs, args[2], self.cfg.temperature, self.vocab_size,
                                            self._banned, value_head is not None)
            if self.compile_forward and self.compile_error is None:
                if self._compiled is None:
                    self._compiled = torch.compile(forward_response)
                try:
                    return self._compiled(*args, **kw)
                except Exception as err:  # noqa: BLE001 - a compiler failure: run eagerly from now on
                    self.compile_error = f"{type(err).__name__}: {err}"[:300]
            return forward_response(*args, **kw)

    def token_stats(self, logits: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor, *,
                    entropy_grad: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(log-prob of each token, entropy per position) of (B, T, V) logits, as
        :func:`core.logprobs_and_entropy`; compiled along with the forward (``compile``)."""
        if self.compile_forward and self.compile_error is None:
            if self._compiled_stats is None:
                self._compiled_stats = torch.compile(core.logprobs_and_entropy)
            try:
                return self._compiled_stats(logits, tokens, mask, entropy_grad)
            except Exception as err:  # noqa: BLE001 - a compiler failure: run eagerly from now on
                self.compile_error = f"{type(err).__name__}: {err}"[:300]
        return core.logprobs_and_entropy(logits, tokens, mask, entropy_grad)

    # -- rows, lengths and micro-batches (host-side: no device sync in the update loop) ---------
    def host_masks(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's prompt and response masks on the host (copied once per batch)."""
        if self._host is None or self._host[0] is not batch["mask"]:  # held: no id reuse
            self._host = (batch["mask"], batch["prompt_mask"].detach().cpu(), batch["mask"].detach().cpu())
        return self._host[1], self._host[2]

    def rows_of(self, batch: dict[str, torch.Tensor], rows: torch.Tensor,
                device_rows: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``batch``'s ``rows`` (host ids), trimmed as :func:`trim` does, with the bounds
        read from the host masks instead of the device. ``device_rows``: the same ids
        already on the batch's device (saves a copy)."""
        rows = rows.cpu()
        pm, m = self.host_masks(batch)
        start, end = trim_bounds(pm[rows], m[rows])
        if device_rows is None or device_rows.device != batch["mask"].device:
            device_rows = to_device(rows, batch["mask"].device)
        return cut(batch, start, end, device_rows)

    def _budget_groups(self, batch: dict[str, torch.Tensor], rows: torch.Tensor) -> list[torch.Tensor]:
        pm, m = self.host_masks(batch)
        return token_budget_groups(pm.sum(1), m.sum(1), rows.cpu(), int(self.cfg.micro_batch_tokens or 0))

    def _chunks(self, n: int, order: torch.Tensor | None = None) -> list[torch.Tensor]:
        idx = order if order is not None else torch.arange(n)
        return [c for c in torch.tensor_split(idx, min(self.cfg.num_minibatches, n)) if len(c)]

    @torch.no_grad()
    def logprob_pass(self, batch: dict[str, torch.Tensor], *, values: bool = False
                     ) -> dict[str, torch.Tensor]:
        """One no-grad pass over the batch (in ``num_minibatches`` chunks, or chunks of
        ``micro_batch_tokens`` tokens when that is set): the rollout
        policy's ``old_logp`` and per-token ``entropy``, the reference's ``ref_logp`` (equal
        to ``old_logp`` when there is no reference, so every KL is 0) and, with ``values``,
        the value head's ``old_values``; all (B, T), 0 on padding."""
        B, T = batch["response_ids"].shape
        out = {k: torch.zeros(B, T, device=self.device) for k in ("old_logp", "ref_logp", "entropy")}
        if values:
            out["old_values"] = torch.zeros(B, T, device=self.device)
        head = self.policy.value_head if values else None
        chunks = (self._budget_groups(batch, torch.arange(B)) if self.cfg.micro_batch_tokens
                  else self._chunks(B))
        for idx in chunks:
            host_idx, idx = idx, to_device(idx, self.device)
            mb = self.rows_of(batch, host_idx, idx)
            t = mb["response_ids"].shape[1]
            logits, vals = self.forward(self.policy.lm, mb, head)
            out["old_logp"][idx, :t], out["entropy"][idx, :t] = self.token_stats(
                logits, mb["response_ids"], mb["mask"])
            if values:
                out["old_values"][idx, :t] = vals.float()
            if not self.has_reference:
                out["ref_logp"][idx, :t] = out["old_logp"][idx, :t]
                continue
            if self.reference is None:
                with self.policy.reference() as ref:
                    ref_logits, _ = self.forward(ref, mb, None)
            else:
                ref_logits, _ = self.forward(self.reference, mb, None)
            out["ref_logp"][idx, :t] = core.logprobs_of(ref_logits, mb["response_ids"], mb["mask"])
        return out

    # -- the algorithm's parts ----------------------------------------------------------------
    def prepare(self, ro: Rollout) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """The batch for :meth:`update` (tensors incl. ``old_logp`` and ``advantages``) and
        the iteration's chart figures."""
        raise NotImplementedError

    def micro_loss(self, mb: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss of one micro-batch (normalized over its :meth:`loss_units`) and its
        named parts (``losses/approx_kl`` among them, for ``early_stop_kl``). The
        controllers' α and β are ``self.ent_ctl.value`` and ``self.kl_ctl.value``."""
        raise NotImplementedError

    def loss_units(self, mask: torch.Tensor) -> torch.Tensor:
        """What a loss is a mean over, counted in ``mask``'s rows: response tokens here
        (micro-batches are weighted by their share of the minibatch's units)."""
        return mask.sum()

    # -- the update ---------------------------------------------------------------------------
    def micro_batches(self, idx: torch.Tensor, batch: dict[str, torch.Tensor] | None = None
                      ) -> list[torch.Tensor]:
        """Split a minibatch's row indices (host) into micro-batches: token-budget groups
        when ``micro_batch_tokens`` is set (see :func:`token_budget_groups`), else
        ``grad_accum_steps`` equal-count splits."""
        if self.cfg.micro_batch_tokens and batch is not None:
            return self._budget_groups(batch, idx)
        return list(torch.tensor_split(idx, min(self.cfg.grad_accum_steps, len(idx))))

    def accumulate(self, batch: dict[str, torch.Tensor], idx: torch.Tensor,
                   passes: int | None = None, micros: list[torch.Tensor] | None = None
                   ) -> dict[str, torch.Tensor]:
        """Backward of the minibatch ``idx`` over its micro-batches, each loss weighted by
        its share of the minibatch's :meth:`loss_units`, so the accumulated gradient equals
        the unaccumulated one; returns the loss parts, weighted the same way (detached).

        Under torchrun ``idx`` is this rank's part of a global minibatch: the shares are of
        the units of all ranks, the gradients and parts are summed over ranks afterwards, so
        every rank ends with the one-process gradient of the whole minibatch. A rank owning no
        row of it backpropagates one of its rows with weight 0 (the same collectives on every
        rank, and the parts' keys). ``passes``: under FSDP, the forward/backward passes every
        rank makes for this minibatch (the most micro-batches any rank has); ``micros``: its
        micro-batches when already split (both from :meth:`plan`)."""
        split = self.shard.split
        mask_rows = batch["mask"][to_device(idx, batch["mask"].device)]  # host ids, moved without a sync
        total = self.shard.total(self.loss_units(mask_rows)).clamp_min(1.0)
        parts: dict[str, torch.Tensor] = {}
        empty = split and len(idx) == 0
        if empty:
            micros = [torch.zeros(1, dtype=torch.long)]
        elif micros is None:
            micros = self.micro_batches(idx, batch)
        real = 0 if empty else len(micros)
        if self.sharded is not None:  # FSDP: the same number of forward/backward passes per rank
            if passes is None:
                passes = self.shard.max_counts([len(micros)])[0]
            micros = micros + [torch.zeros(1, dtype=torch.long)] * (passes - len(micros))
        for i, micro in enumerate(micros):
            mb = self.rows_of(batch, micro)
            share = self.loss_units(mb["mask"]) / total * (1.0 if i < real else 0.0)
            loss, micro_parts = self.micro_loss(mb)
            if self.extra_loss is not None:
                extra = self.extra_loss()
                loss = loss + extra
                micro_parts = {**micro_parts, "losses/extra": extra}
            # FSDP's reduce-scatter averages over ranks; the shares already are of all ranks.
            (loss * share * (self.shard.world.world_size if self.sharded is not None else 1)).backward()
            for key, val in micro_parts.items():
                parts[key] = parts.get(key, 0.0) + val.detach() * share
        if split:
            if self.sharded is None:  # FSDP reduce-scatters its gradients itself
                all_reduce_gradients(self._trainable)
            parts = self.shard.reduce_parts(parts)
        return parts

    def plan(self, batch: dict[str, torch.Tensor], chunks: list[torch.Tensor]
             ) -> list[tuple[int | None, list[torch.Tensor] | None]]:
        """Per minibatch of an epoch (this rank's row ids of each), the forward/backward
        passes :meth:`accumulate` makes and its micro-batches. Under FSDP the passes are the
        most micro-batches any rank has for it, agreed in one collective for the epoch (the
        split is kept, so it is not made twice); else (None, None): each rank splits and
        makes its own."""
        if self.sharded is None:
            return [(None, None)] * len(chunks)
        micros = [self.micro_batches(idx, batch) if len(idx) else None for idx in chunks]
        counts = [len(m) if m is not None else 1 for m in micros]
        return list(zip(self.shard.max_counts(counts), micros, strict=True))

    def optimizer_step(self) -> torch.Tensor:
        """Clip the gradient norm to ``max_grad_norm`` and step; returns the norm before."""
        grad_norm = torch.nn.utils.clip_grad_norm_(self._trainable, self.cfg.max_grad_norm)
        self.optimizer.step()
        if hasattr(grad_norm, "full_tensor"):  # FSDP: a DTensor
            grad_norm = grad_norm.full_tensor()
        return grad_norm

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """``ppo_epochs`` passes over shuffled minibatches, one optimizer step each.

        With ``grad_accum_steps`` = k, each minibatch is split into k micro-batches (see
        :meth:`accumulate`). ``early_stop_kl`` skips the minibatch that moved too far and
        ends the iteration.
        """
        cfg = self.cfg
        # Minibatches are drawn over the global batch's rows; each rank keeps those it owns.
        B = batch["response_ids"].shape[0] * self.shard.world.world_size
        sums: dict[str, list[Any]] = {}
        stopped = False
        self.host_masks(batch)
        for _ in range(cfg.ppo_epochs):
            order = torch.randperm(B, generator=self.shuffle_gen)
            chunks = [self.shard.local(idx) for idx in self._chunks(B, order)]  # host ids
            for idx, (passes, micros) in zip(chunks, self.plan(batch, chunks)):  # figures stay on the device
                self.optimizer.zero_grad(set_to_none=True)
                parts = self.accumulate(batch, idx, passes, micros)
                if cfg.early_stop_kl is not None and float(parts["losses/approx_kl"]) > 1.5 * cfg.early_stop_kl:
                    # SB3's target_kl: this minibatch already moved too far; skip it and stop.
                    self.optimizer.zero_grad(set_to_none=True)
                    stopped = True
                    break
                parts["losses/grad_norm"] = self.optimizer_step()
                for key, val in parts.items():
                    sums.setdefault(key, []).append(val.detach() if isinstance(val, torch.Tensor) else val)
            if stopped:
                break
        flat = host_floats([v for vals in sums.values() for v in vals])  # one copy for all figures
        stats, at = {}, 0
        for key, vals in sums.items():
            stats[key] = float(np.mean(flat[at:at + len(vals)]))
            at += len(vals)
        stats["losses/early_stopped"] = float(stopped)
        return stats

    def step(self, ro: Rollout) -> dict[str, float]:
        """One iteration on ``ro``; updates β and α afterwards."""
        lr = self.learning_rate(self.iteration)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batch, stats = self.prepare(ro)
        stats = self.shard.mean_scalars(stats)  # the controllers see the global batch's figures
        stats["charts/learning_rate"] = lr
        stats.update(self.update(batch))
        self.kl_ctl.update(stats["charts/kl_ref"], len(ro) * self.shard.world.world_size)
        self.ent_ctl.update(stats["charts/entropy"])
        self.iteration += 1
        if self.sharded is not None:
            self.sharded.sync()  # the rollouts' unsharded copy
        return stats

    def learning_rate(self, iteration: int) -> float:
        """The learning rate of 0-based ``iteration`` under ``lr_schedule``."""
        if self.cfg.lr_schedule == "linear":
            assert self.total_iterations
            return self.cfg.learning_rate * max(0.0, 1.0 - iteration / self.total_iterations)
        return self.cfg.learning_rate

    # -- checkpoint state -------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON-serializable state (controllers, iteration)."""
        return {"kl_ctl": self.kl_ctl.state_dict(), "ent_ctl": self.ent_ctl.state_dict(),
                "iteration": self.iteration}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.kl_ctl.load_state_dict(state["kl_ctl"])
        self.ent_ctl.load_state_dict(state["ent_ctl"])
        self.iteration = int(state.get("iteration", 0))


class PPOTrainer(LmTrainer):
    """PPO-RLHF updates of a :class:`PolicyWithValueHead` against a frozen reference."""

    cfg: LmPpoConfig

    def __init__(self, policy: PolicyWithValueHead, reference: nn.Module | None, cfg: LmPpoConfig,
                 device: torch.device, *, vocab_size: int | None = None,
                 banned_ids: tuple[int, ...] = (), total_iterations: int | None = None) -> None:
        super().__init__(policy, reference, cfg, device, vocab_size=vocab_size,
                         banned_ids=banned_ids, total_iterations=total_iterations)
        self.score_stats = RunningMeanStd()

    def shape_scores(self, scores: np.ndarray, eos: np.ndarray) -> torch.Tensor:
        """Env scores → the scalar reward at each completion's last token.

        Normalize with the running mean / std (updated with this batch first), subtract
        ``missing_eos_penalty`` where no EOS was produced, clip to ±``reward_clip``.
        """
        # Under torchrun the running statistics see the global batch (every rank alike).
        scores, eos = self.shard.gather(scores), self.shard.gather(eos).astype(bool)
        s = torch.as_tensor(np.asarray(scores, dtype=np.float64))
        if self.cfg.reward_norm:
            self.score_stats.update(s.numpy())
            std = self.score_stats.std
            s = (s - self.score_stats.mean) / (std if std > 1e-6 else 1.0)
        s = s - self.cfg.missing_eos_penalty * torch.as_tensor(~np.asarray(eos, dtype=bool)).double()
        s = s.clamp(-self.cfg.reward_clip, self.cfg.reward_clip)
        return to_device(self.shard.mine(s).float(), self.device)

    @torch.no_grad()
    def prepare(self, ro: Rollout) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Old log-probs and values, reference log-probs, KL-penalized rewards and GAE."""
        batch = self.batch_tensors(ro)
        scores = self.shape_scores(ro.scores, ro.eos)  # host work before the device's is queued
        passed = self.logprob_pass(batch, values=True)
        old_logp, ref_logp = passed["old_logp"], passed["ref_logp"]
        old_values, entropy = passed["old_values"], passed["entropy"]
        mask = batch["mask"]
        kl = core.kl_estimate(old_logp, ref_logp, self.cfg.kl_estimator) * mask
        beta = self.kl_ctl.value
        in_reward = self.cfg.kl_penalty == "reward"
        rewards = core.kl_penalized_rewards(scores, kl, mask, beta if in_reward else 0.0)
        adv, returns = core.gae(rewards, old_values, mask, self.cfg.gamma, self.cfg.lam)
        raw_std = core.masked_var(adv, mask).sqrt()
        if self.cfg.whiten_advantages:
            adv = self.shard.masked_whiten(adv, mask)
        batch.update(old_logp=old_logp, ref_logp=ref_logp, old_values=old_values, advantages=adv,
                     returns=returns)
        seq_kl = core.masked_sum(kl, mask, dim=1)
        seq_kl1 = core.masked_sum(old_logp - ref_logp, mask, dim=1)
        stats = host_stats({
            "charts/kl_ref": seq_kl.mean(),
            "charts/kl_ref_k1": seq_kl1.mean(),
            "charts/kl_coef": beta,
            "charts/entropy": self.shard.masked_mean(entropy, mask),
            "charts/ent_coef": self.ent_ctl.value,
            "charts/score_shaped": scores.mean(),
            "charts/non_score_reward": (-beta * seq_kl).mean(),
            "charts/advantage_raw_std": raw_std,
            "charts/value_mean": core.masked_mean(old_values, mask),
        })
        return batch, stats

    def micro_loss(self, mb: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The PPO loss of one (micro-)batch, a per-token mean over its masked tokens."""
        cfg, policy = self.cfg, self.policy
        alpha, beta = self.ent_ctl.value, self.kl_ctl.value
        logits, values = self.forward(policy.lm, mb, policy.value_head)
        mask = mb["mask"]
        logp, entropy = self.token_stats(logits, mb["response_ids"], mask)
        pg, pstats = core.policy_loss(logp, mb["old_logp"], mb["advantages"], mask, cfg.clip_range)
        vf, vclip = core.value_loss(values, mb["old_values"], mb["returns"], mask, cfg.clip_range_value)
        ent = core.masked_mean(entropy, mask)
        loss = pg + cfg.vf_coef * vf - alpha * ent
        parts = {"losses/policy_loss": pg, "losses/value_loss": vf, "losses/entropy": ent,
                 "losses/approx_kl": pstats["approx_kl"], "losses/clipfrac": pstats["clipfrac"],
                 "losses/value_clipfrac": vclip}
        if cfg.kl_penalty == "loss":
            kl_loss = core.kl_penalty_loss(logp, mb["ref_logp"], mask, cfg.kl_estimator)
            loss = loss + beta * kl_loss
            parts["losses/kl_penalty"] = kl_loss
        parts["losses/loss"] = loss
        return loss, parts

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """The shared epochs of clipped updates, plus the value head's explained variance."""
        stats = super().update(batch)
        stats["losses/explained_variance"] = core.explained_variance(
            batch["old_values"], batch["returns"], batch["mask"])
        return stats

    # -- checkpoint state -------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON-serializable state (controllers, score statistics, iteration)."""
        return {**super().state_dict(), "score_stats": self.score_stats.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.score_stats.load_state_dict(state["score_stats"])
