"""A text agent's global batch split across the ranks of a torchrun world.

``run.n_envs`` is the global batch; rank r of W owns rows ``r·b .. (r+1)·b`` (b = n_envs / W).
:class:`BatchShard` is everything the text trainer and agent need to make an update of the
sharded batch equal the one-process update of the whole batch (up to float summation order):

* prompts: every rank samples the global batch's prompts exactly as a one-process env would
  (same seed, same sampler) and keeps its rows (:meth:`BatchShard.rollout_options`);
* tokens: sampling draws its noise for all global rows and keeps the rank's rows
  (``DecodeSettings.noise_rows``), with the generator re-seeded from (seed, iteration) every
  iteration (:attr:`BatchShard.reseed`), since ranks stop decoding at different lengths;
* minibatches are drawn over global row indices (the shuffle generator is the same on every
  rank), a rank processes the rows of each minibatch it owns, micro-batch losses are weighted
  by *global* token counts and gradients are summed (:mod:`rlseek.distributed.grads`);
* batch statistics that shape the update — score normalization, advantage whitening, the
  entropy and KL the controllers see — are computed over the global batch.

A world of one is a :class:`BatchShard` whose every method is the identity, so lm-ppo's
one-process numbers do not change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rlseek.agents.lm_ppo import core
from rlseek.distributed import (
    World,
    all_gather_rows,
    all_reduce_sum,
    current,
    mean_scalars,
    rank_seed,
)

TIMING_KEYS = ("charts/time_rollout", "charts/time_train", "charts/time_env",
               "charts/rollout_tokens_per_second", "charts/train_tokens_per_second")
"""Per-rank figures that are not averaged over ranks (rank 0's are logged)."""


@dataclass
class BatchShard:
    """This rank's share of a global batch of ``global_rows`` rows."""

    global_rows: int
    world: World = field(default_factory=current)
    reseed: bool = False
    """Re-seed token sampling from (seed, iteration) every iteration: on whenever the world is
    distributed or ``run.distributed`` is set, so a one-process run with ``run.distributed``
    reproduces an N-process run over every iteration (without it, one generator runs through
    the whole run, as lm-ppo always did; the first iteration is the same either way)."""

    @property
    def split(self) -> bool:
        """Whether the batch is really split (more than one rank)."""
        return self.world.world_size > 1

    @property
    def rows(self) -> int:
        """Rows this rank owns."""
        return self.global_rows // self.world.world_size

    @property
    def first(self) -> int:
        """Global index of this rank's first row."""
        return self.world.rank * self.rows

    # -- rollouts -------------------------------------------------------------------------------
    per_rank_noise: bool = False
    """The decode loop cannot draw for the global batch (the static CUDA-graph loop): each
    rank then seeds its own stream from (seed, iteration, rank), so ranks sample independently
    but the tokens depend on the world size."""

    def sample_seed(self, seed: int, iteration: int) -> int:
        """Seed of the token-sampling generator at ``iteration`` (iteration 0: ``seed``, the
        one-process run's first seed)."""
        base = int(seed) + 1_000_003 * int(iteration)
        return rank_seed(base, self.world.rank) if self.per_rank_noise else base

    def rollout_options(self, env: Any, seed: int, options: dict[str, Any] | None) -> dict[str, Any] | None:
        """Reset options giving this rank its rows of the global batch's prompts, sampled as a
        one-process vector env of ``global_rows`` rows samples them at ``env.reset(seed=seed)``
        (``options["group_size"]`` G: ``global_rows / G`` prompts, each on G adjacent rows)."""
        if not self.split or (options and "prompts" in options):
            return options
        import gymnasium as gym

        rng, _ = gym.utils.seeding.np_random(seed)
        group = int((options or {}).get("group_size") or 1)
        prompts, answers = env.core.sample(rng, self.global_rows // group)
        prompts = [p for p in prompts for _ in range(group)]
        answers = [a for a in answers for _ in range(group)]
        lo, hi = self.first, self.first + self.rows
        return {**(options or {}), "prompts": prompts[lo:hi], "answers": answers[lo:hi]}

    # -- the update -----------------------------------------------------------------------------
    def local(self, idx: torch.Tensor) -> torch.Tensor:
        """The positions in this rank's rows of the global row indices ``idx`` it owns."""
        if not self.split:
            return idx
        keep = (idx >= self.first) & (idx < self.first + self.rows)
        return idx[keep] - self.first

    def total(self, x: torch.Tensor) -> torch.Tensor:
        """Sum of ``x`` over ranks (the identity alone)."""
        if not self.split:
            return x
        return all_reduce_sum(x.detach().clone().double()).to(x.dtype)

    def reduce_parts(self, parts: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Loss parts weighted by global shares, summed over ranks (same keys on every rank).
        One collective on the parts' own device: on NCCL the sum stays on the GPU, queued
        behind the backward, and the host does not wait for it (the figures are read once,
        at the update's end)."""
        if not self.split:
            return parts
        keys = sorted(parts)
        vals = torch.stack([torch.as_tensor(parts[k]).detach().to(torch.float64).reshape(()) for k in keys])
        all_reduce_sum(vals)
        return {k: vals[i] for i, k in enumerate(keys)}

    def max_counts(self, counts: list[int]) -> list[int]:
        """The largest of each of ``counts`` over ranks (how many forward/backward passes every
        rank must make per minibatch under FSDP): one collective for a whole epoch's
        minibatches, so the host waits once per epoch, not once per minibatch."""
        if not self.split or not counts:
            return counts
        t = torch.tensor([float(n) for n in counts], dtype=torch.float64)
        if self.world.backend == "nccl":
            t = t.cuda()
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return [int(n) for n in t.tolist()]

    def gather(self, x: np.ndarray) -> np.ndarray:
        """Every rank's rows of a per-row array, in global order."""
        if not self.split:
            return np.asarray(x)
        t = torch.as_tensor(np.asarray(x, dtype=np.float64))
        return all_gather_rows(t).numpy()

    def mine(self, x: Any) -> Any:
        """This rank's rows of a global per-row array or tensor."""
        return x[self.first:self.first + self.rows] if self.split else x

    def masked_mean(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """:func:`core.masked_mean` over the masked elements of all ranks."""
        if not self.split:
            return core.masked_mean(x, mask)
        s = self.total(torch.stack([core.masked_sum(x.double(), mask.double()), mask.double().sum()]))
        return (s[0] / s[1].clamp_min(1.0)).to(x.dtype)

    def masked_whiten(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """:func:`core.masked_whiten` with the mean and (Bessel-corrected) variance of the
        masked elements of all ranks."""
        if not self.split:
            return core.masked_whiten(x, mask)
        n = self.total(mask.double().sum())
        mean = self.masked_mean(x, mask)
        sq = self.total(core.masked_sum(((x - mean) ** 2).double(), mask.double())) / n.clamp_min(1.0)
        var = (sq * n / (n - 1) if n > 1 else sq).to(x.dtype)
        return (x - mean) * torch.rsqrt(var + 1e-8) * mask

    def mean_scalars(self, stats: dict[str, Any]) -> dict[str, Any]:
        """Logged figures averaged over ranks (timings: rank 0's)."""
        return mean_scalars(stats, skip=TIMING_KEYS) if self.split else stats
