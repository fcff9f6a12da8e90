"""Elastic weight consolidation (Kirkpatrick et al., 2017), diagonal Fisher.

After task k the parameters θ*_k are anchored with the diagonal Fisher information F_k of the
model on task k's data; training on later tasks adds

    penalty(θ) = λ/2 · Σ_k Σ_i F_k,i (θ_i − θ*_k,i)²

to the loss. The terms accumulate over tasks (one anchor per finished task), so the first task
stays protected after the third. F is estimated as the mean over ``fisher_samples`` samples of
the squared gradient of the per-sample log-likelihood, ``E[(∂ log p(y|x; θ) / ∂θ)²]``, with y
drawn from the model itself (the true Fisher, not the "empirical" one with dataset labels).

:meth:`EwcPenalty.penalty` gives the penalty as a differentiable tensor (added to a loss);
:meth:`EwcPenalty.add_gradient` adds its gradient λ · Σ_k F_k (θ − θ*_k) to ``.grad`` in place,
which equals adding the penalty to the loss and is how the SB3 agents apply it (an optimizer
step pre-hook, so SB3's own losses stay untouched). Saved as safetensors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from rlseek.errors import RlseekError
from rlseek.runs import atomic_write_bytes

NamedParams = Mapping[str, torch.nn.Parameter]


def diagonal_fisher(params: NamedParams, log_likelihoods: Iterable[Callable[[], torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Mean squared gradient of each per-sample log-likelihood w.r.t. ``params``.

    ``log_likelihoods`` yields one closure per sample, each returning a scalar
    ``log p(y|x; θ)`` built from ``params``; gradients of different samples never mix (one
    backward pass per sample). Parameters a sample does not reach count as zero for it.
    """
    names = list(params)
    tensors = [params[n] for n in names]
    total = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    count = 0
    for ll in log_likelihoods:
        value = ll()
        if value.dim() != 0:
            raise RlseekError(f"a Fisher sample's log-likelihood must be a scalar, got shape {tuple(value.shape)}")
        grads = torch.autograd.grad(value, tensors, allow_unused=True)
        for n, g in zip(names, grads):
            if g is not None:
                total[n] += g.detach().float() ** 2
        count += 1
    if count == 0:
        raise RlseekError("the Fisher needs at least one sample")
    return {n: t / count for n, t in total.items()}


class EwcPenalty:
    """λ/2 · Σ over anchored tasks of Σ F (θ − θ*)², over a fixed set of named parameters."""

    def __init__(self, lam: float) -> None:
        self.lam = float(lam)
        self.terms: list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]] = []
        """One (Fisher, anchor) pair per finished task, each keyed by parameter name."""

    def __len__(self) -> int:
        return len(self.terms)

    def consolidate(self, params: NamedParams, fisher: Mapping[str, torch.Tensor]) -> None:
        """Anchor the current values of ``params`` with ``fisher`` (call after a task)."""
        missing = set(params) ^ set(fisher)
        if missing:
            raise RlseekError(f"Fisher and parameters name different tensors: {sorted(missing)[:5]}")
        anchor = {n: p.detach().float().clone() for n, p in params.items()}
        self.terms.append(({n: f.detach().float().clone() for n, f in fisher.items()}, anchor))

    def _check(self, params: NamedParams) -> None:
        if self.terms and set(params) != set(self.terms[0][0]):
            raise RlseekError("EWC parameters differ from the anchored ones (was the model changed?)")

    def penalty(self, params: NamedParams) -> torch.Tensor:
        """The penalty as a differentiable scalar (0 before any task is anchored)."""
        self._check(params)
        out: Any = 0.0
        for fisher, anchor in self.terms:
            for n, p in params.items():
                out = out + (fisher[n].to(p.device) * (p.float() - anchor[n].to(p.device)) ** 2).sum()
        return 0.5 * self.lam * out if isinstance(out, torch.Tensor) else torch.zeros(())

    @torch.no_grad()
    def add_gradient(self, params: NamedParams) -> float:
        """Add the penalty's gradient to each parameter's ``.grad``; return the penalty value."""
        self._check(params)
        value = 0.0
        for fisher, anchor in self.terms:
            for n, p in params.items():
                diff = p.float() - anchor[n].to(p.device)
                f = fisher[n].to(p.device)
                grad = (self.lam * f * diff).to(p.dtype)
                p.grad = grad.clone() if p.grad is None else p.grad.add_(grad)
                value += 0.5 * self.lam * float((f * diff * diff).sum())
        return value

    def save(self, path: str | Path) -> None:
        """Write every (Fisher, anchor) term atomically as safetensors."""
        from safetensors.torch import save

        flat = {}
        for k, (fisher, anchor) in enumerate(self.terms):
            flat.update({f"{k}.fisher.{n}": t.contiguous() for n, t in fisher.items()})
            flat.update({f"{k}.anchor.{n}": t.contiguous() for n, t in anchor.items()})
        atomic_write_bytes(path, save(flat, metadata={"lambda": repr(self.lam), "tasks": str(len(self.terms))}))

    @classmethod
    def load(cls, path: str | Path, lam: float) -> EwcPenalty:
        """Read the terms written by :meth:`save`; ``lam`` is the current config's λ."""
        from safetensors.torch import load_file

        flat = load_file(str(path))
        out = cls(lam)
        tasks = sorted({int(k.split(".", 1)[0]) for k in flat})
        for k in tasks:
            fisher = {n.split(".", 2)[2]: t for n, t in flat.items() if n.startswith(f"{k}.fisher.")}
            anchor = {n.split(".", 2)[2]: t for n, t in flat.items() if n.startswith(f"{k}.anchor.")}
            out.terms.append((fisher, anchor))
        return out
