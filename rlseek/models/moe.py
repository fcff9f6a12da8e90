"""Mixture-of-experts MLP block: a top-k router, sparse dispatch and a load-balancing loss.

Each token (a row of the input, any leading shape) is scored by a linear router; the ``top_k``
experts with the highest scores process it, and their outputs are summed with the renormalized
softmax weights of the chosen experts (Shazeer et al. 2017; Switch Transformer, Fedus et al.
2021, for the balance loss).

Dispatch is sparse: for each expert the tokens routed to it are gathered, run through that
expert once, weighted and added back with ``index_add_`` — an expert never computes a token it
was not chosen for. ``dispatch="dense"`` runs every expert on every token and masks the
unchosen outputs away (the naive form); it gives the same result and exists only to measure
what sparse dispatch saves (``benchmarks/bench_moe_stages.py --part moe``).

Balance loss (Switch): ``N * sum_i f_i * P_i`` with ``f_i`` the fraction of routing slots that
went to expert ``i`` (top-k choices, counted, no gradient) and ``P_i`` the mean router
probability of expert ``i``; 1.0 when the load is uniform, up to ``N`` when one expert takes
everything. The block keeps the loss of its latest forward pass in :attr:`MoEBlock.aux_loss`;
:func:`moe_aux_loss` sums it over a module's MoE blocks times their ``balance_coef`` so a
training loop can add it to its loss, and :func:`expert_load` reads the load for logging.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from rlseek.errors import RlseekError

DISPATCHES = ("sparse", "dense")


@dataclass(frozen=True)
class MoESpec:
    """How to build a mixture-of-experts block.

    Attributes:
        experts: number of expert MLPs (>= 2).
        top_k: experts per token (1 <= top_k <= experts); the source document uses 2.
        balance_coef: weight of the Switch balance loss in the training loss (>= 0).
        dispatch: ``sparse`` (gather/scatter, the default) or ``dense`` (compute all, mask).
    """

    experts: int = 4
    top_k: int = 2
    balance_coef: float = 0.01
    dispatch: str = "sparse"

    @classmethod
    def from_dict(cls, raw: object, where: str) -> MoESpec:
        """Parse ``{experts, top_k, balance_coef, dispatch}``; bad input raises RlseekError."""
        if not isinstance(raw, dict):
            raise RlseekError(f"{where} must be a mapping like {{experts: 4, top_k: 2, "
                              f"balance_coef: 0.01}}, got {raw!r}")
        unknown = set(raw) - {"experts", "top_k", "balance_coef", "dispatch"}
        if unknown:
            raise RlseekError(f"{where}: unknown key(s) {sorted(unknown)}; known: experts, "
                              "top_k, balance_coef, dispatch")
        try:
            spec = cls(experts=int(raw.get("experts", 4)), top_k=int(raw.get("top_k", 2)),
                       balance_coef=float(raw.get("balance_coef", 0.01)),
                       dispatch=str(raw.get("dispatch", "sparse")))
        except (TypeError, ValueError):
            raise RlseekError(f"{where}: experts and top_k must be integers and balance_coef a "
                              f"number, got {raw!r}") from None
        spec.check(where)
        return spec

    def check(self, where: str = "moe") -> None:
        """Raise RlseekError naming ``where`` if a field is out of range."""
        if self.experts < 2:
            raise RlseekError(f"{where}.experts must be >= 2, got {self.experts}")
        if not 1 <= self.top_k <= self.experts:
            raise RlseekError(f"{where}.top_k must be in [1, experts={self.experts}], got {self.top_k}")
        if self.balance_coef < 0:
            raise RlseekError(f"{where}.balance_coef must be >= 0, got {self.balance_coef}")
        if self.dispatch not in DISPATCHES:
            raise RlseekError(f"{where}.dispatch must be one of {', '.join(DISPATCHES)}, "
                              f"got {self.dispatch!r}")


def balance_loss(probs: torch.Tensor, chosen: torch.Tensor, experts: int) -> torch.Tensor:
    """Switch load-balancing loss ``N * sum_i f_i * P_i``.

    Args:
        probs: ``(tokens, experts)`` router softmax probabilities.
        chosen: ``(tokens, top_k)`` indices of the experts each token was sent to.
        experts: ``N``.
    """
    counts = torch.zeros(experts, dtype=probs.dtype, device=probs.device)
    counts.index_add_(0, chosen.reshape(-1), torch.ones(chosen.numel(), dtype=probs.dtype,
                                                        device=probs.device))
    f = counts / max(1, chosen.numel())
    return experts * torch.sum(f.detach() * probs.mean(dim=0))


class _AttachAuxLoss(torch.autograd.Function):
    """Identity on ``out`` whose backward also sends gradient 1 into ``aux``: a loss computed
    from ``out`` then trains the router on ``aux`` too, without the training loop knowing it
    (SB3's PPO/A2C loss is built inside ``train()``). Autograd sums the gradients reaching
    ``out`` before calling this backward, so the aux loss enters once per backward pass."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, out: torch.Tensor,
                aux: torch.Tensor) -> torch.Tensor:
        return out.view_as(out)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx,
                 grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return grad_out, torch.ones((), dtype=grad_out.dtype, device=grad_out.device)


class MoEBlock(nn.Module):
    """``dim -> dim_out`` mixture of ``spec.experts`` MLPs ``Linear(dim, hidden), act,
    Linear(hidden, dim_out)``, each token processed by its ``spec.top_k`` best experts.

    With ``attach_aux`` the balance loss (times ``balance_coef``) reaches the optimizer through
    the output itself (:class:`_AttachAuxLoss`), so any loss computed from the output trains the
    router towards balance; without it, add :func:`moe_aux_loss` to the loss yourself.
    """

    def __init__(self, dim: int, hidden: int, dim_out: int | None = None, spec: MoESpec | None = None,
                 activation: Callable[[], nn.Module] = nn.GELU, attach_aux: bool = False) -> None:
        super().__init__()
        self.spec = spec or MoESpec()
        self.spec.check()
        self.dim_out = dim if dim_out is None else dim_out
        self.router = nn.Linear(dim, self.spec.experts)
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, hidden), activation(), nn.Linear(hidden, self.dim_out))
            for _ in range(self.spec.experts)
        )
        self.attach_aux = attach_aux
        self.aux_loss: torch.Tensor = torch.zeros(())
        """Balance loss of the latest forward pass (unweighted; 1.0 = uniform load)."""
        self.load = torch.zeros(self.spec.experts)
        """Fraction of routing slots each expert got in the latest forward pass."""
        self._load_sum = torch.zeros(self.spec.experts)
        self._aux_sum = 0.0
        self._calls = 0

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(probs, weights, chosen)`` for ``(tokens, dim)`` input: softmax probabilities
        over experts, the renormalized weights of the ``top_k`` chosen experts, their indices."""
        probs = torch.softmax(self.router(x), dim=-1)
        top_p, chosen = torch.topk(probs, self.spec.top_k, dim=-1)
        return probs, top_p / top_p.sum(dim=-1, keepdim=True), chosen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        probs, weights, chosen = self.route(flat)
        if self.spec.dispatch == "dense":
            out = self._dense(flat, weights, chosen)
        else:
            out = self._sparse(flat, weights, chosen)
        self.aux_loss = balance_loss(probs, chosen, self.spec.experts)
        with torch.no_grad():
            counts = torch.bincount(chosen.reshape(-1), minlength=self.spec.experts).float().cpu()
            self.load = counts / max(1, chosen.numel())
            self._load_sum += counts
            self._aux_sum += float(self.aux_loss)
            self._calls += 1
        if self.attach_aux and torch.is_grad_enabled() and self.spec.balance_coef > 0:
            out = _AttachAuxLoss.apply(out, self.spec.balance_coef * self.aux_loss)
        return out.reshape(*shape[:-1], self.dim_out)

    def take_stats(self) -> tuple[list[float], float] | None:
        """``(load per expert, mean balance loss)`` over every forward pass since the last
        call (None if there was none), and reset: the figures a logger writes per interval."""
        if self._calls == 0:
            return None
        total = float(self._load_sum.sum()) or 1.0
        stats = ([float(c) / total for c in self._load_sum.tolist()], self._aux_sum / self._calls)
        self._load_sum = torch.zeros(self.spec.experts)
        self._aux_sum, self._calls = 0.0, 0
        return stats

    def _sparse(self, x: torch.Tensor, weights: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        out = x.new_zeros(x.shape[0], self.dim_out)
        token_idx = torch.arange(x.shape[0], device=x.device).repeat_interleave(self.spec.top_k)
        flat_expert = chosen.reshape(-1)
        flat_weight = weights.reshape(-1)
        order = torch.argsort(flat_expert, stable=True)
        counts = torch.bincount(flat_expert, minlength=self.spec.experts).tolist()
        start = 0
        for e, n in enumerate(counts):
            if n == 0:
                continue
            slots = order[start:start + n]
            start += n
            tokens = token_idx[slots]
            y = self.experts[e](x[tokens]) * flat_weight[slots].unsqueeze(-1)
            out.index_add_(0, tokens, y)
        return out

    def _dense(self, x: torch.Tensor, weights: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        all_out = torch.stack([expert(x) for expert in self.experts], dim=1)  # (T, N, out)
        gate = x.new_zeros(x.shape[0], self.spec.experts)
        gate.scatter_(1, chosen, weights)
        return torch.einsum("tn,tno->to", gate, all_out)


def moe_blocks(module: nn.Module) -> list[MoEBlock]:
    """Every :class:`MoEBlock` inside ``module`` (in definition order)."""
    return [m for m in module.modules() if isinstance(m, MoEBlock)]


def moe_aux_loss(module: nn.Module) -> torch.Tensor | None:
    """Sum of ``balance_coef * aux_loss`` over the MoE blocks of ``module``'s latest forward
    pass (None when it has none): add it to the training loss so the router learns balance."""
    blocks = moe_blocks(module)
    if not blocks:
        return None
    return sum(b.spec.balance_coef * b.aux_loss for b in blocks)  # type: ignore[return-value]


def expert_load(module: nn.Module) -> dict[str, float]:
    """Routing figures since the last call, for logging: ``moe/load_<block>_<expert>`` (share
    of routing slots, sums to 1 per block), ``moe/max_load`` (largest share of any expert;
    ``1/experts`` is perfect balance) and ``moe/balance_loss`` (mean over blocks and passes)."""
    out: dict[str, float] = {}
    losses, maxes = [], []
    for b_i, block in enumerate(moe_blocks(module)):
        stats = block.take_stats()
        if stats is None:
            continue
        load, aux = stats
        for e_i, frac in enumerate(load):
            out[f"moe/load_{b_i}_{e_i}"] = frac
        losses.append(aux)
        maxes.append(max(load))
    if losses:
        out["moe/balance_loss"] = sum(losses) / len(losses)
        out["moe/max_load"] = max(maxes)
    return out
