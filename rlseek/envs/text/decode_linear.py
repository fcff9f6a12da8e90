"""Linear layers of a few rows for the graph decode: one split-K Triton kernel per layer and token.

A decode step multiplies a few rows (the batch: 64 or 256) by every weight of the trunk. cuBLAS
tiles such a product by 64 or 128 output columns, so GPT-2 small's ``c_attn`` (768 → 2,304) at
batch 64 runs on ~18 of an H100's 132 SMs and its MLP ``c_proj`` (3,072 → 768) on ~6, split
along K with a second reduce kernel (``benchmarks/GPU_NOTES.md``: the 48 linear layers of a
step take ~5.6 µs each for 1–5 MB of weights, ~0.65 TB/s). This kernel cuts the columns into
narrow tiles *and* K into slices so that about one program per SM runs: each program multiplies
its (rows × K-slice) by its (K-slice × columns) block on tensor cores and stores the float32
partial; the last program of a tile to finish (an atomic ticket per tile) sums the partials in
slice order — the same order whichever finishes last, so the output is deterministic — adds the
bias, applies the optional tanh GELU, writes the output in the input's dtype and resets the
ticket. One kernel per layer, no reduce kernel.

It is a custom op (``rlseek::decode_linear``): ``torch.compile`` keeps it as one opaque call,
and the CUDA graph of the step captures its launch. :class:`DecodeConv1D` puts it in place of
GPT-2's ``Conv1D`` layers in the decode copy (:func:`use_decode_linears`); calls it does not
serve (more rows than :data:`MAX_ROWS`, no CUDA) run ``addmm`` as ``Conv1D`` does.
"""

from __future__ import annotations

import math

import torch
from torch import nn

MAX_ROWS = 256
"""Calls with more rows than this (the prefill) run ``addmm``."""
SM_TARGET = 1.0
"""Programs per SM the split aims for."""
CONFIG: dict[tuple[int, int, int], tuple[int, int, int, int, int]] = {}
"""Hand-set launch configs by (rows, N, K) -> (BLOCK_M, BLOCK_N, BLOCK_K, SPLIT, warps)
(benchmarks); others come from :func:`launch_config`."""

try:  # Triton ships with CUDA builds of torch; CPU builds go without the kernel
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the torch build
    triton = None

if triton is not None:
    @triton.jit
    def _epilogue(acc, b_ptr, o_ptr, rm, rn, M, N, som, HAS_BIAS: tl.constexpr, GELU: tl.constexpr):
        """Bias, tanh GELU and the store of one (BLOCK_M, BLOCK_N) float32 tile."""
        if HAS_BIAS:
            acc += tl.load(b_ptr + rn, mask=rn < N, other=0.0).to(tl.float32)[None, :]
        if GELU:  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), tanh(y) = 2 sigmoid(2y) - 1
            inner = 0.7978845608028654 * (acc + 0.044715 * acc * acc * acc)
            acc = acc * tl.sigmoid(2.0 * inner)
        ok = (rm[:, None] < M) & (rn[None, :] < N)
        tl.store(o_ptr + rm[:, None].to(tl.int64) * som + rn[None, :], acc.to(o_ptr.dtype.element_ty), mask=ok)

    @triton.jit
    def _decode_linear_kernel(x_ptr, w_ptr, b_ptr, o_ptr, part_ptr, ticket_ptr, M, N, K,
                              sxm, swk, swn, som,
                              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                              SPLIT: tl.constexpr, K_SPLIT: tl.constexpr, HAS_BIAS: tl.constexpr,
                              GELU: tl.constexpr):
        """Program (column tile, K slice, row tile): its slice's product; with SPLIT > 1 the
        partial goes to ``part_ptr`` (SPLIT planes of M x N float32) and the tile's last
        program sums the planes in order and runs the epilogue."""
        pid_n = tl.program_id(0)
        pid_s = tl.program_id(1)
        pid_m = tl.program_id(2)
        rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        rk = tl.arange(0, BLOCK_K)
        acc = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
        k_lo = pid_s * K_SPLIT
        for kk in range(0, K_SPLIT, BLOCK_K):
            k = k_lo + kk + rk
            a = tl.load(x_ptr + rm[:, None].to(tl.int64) * sxm + k[None, :],
                        mask=(rm[:, None] < M) & (k[None, :] < K), other=0.0)
            w = tl.load(w_ptr + k[:, None].to(tl.int64) * swk + rn[None, :] * swn,
                        mask=(k[:, None] < K) & (rn[None, :] < N), other=0.0)
            acc = tl.dot(a, w, acc)
        if SPLIT == 1:
            _epilogue(acc, b_ptr, o_ptr, rm, rn, M, N, som, HAS_BIAS, GELU)
        else:
            plane = M * N
            offs = rm[:, None] * N + rn[None, :]
            ok = (rm[:, None] < M) & (rn[None, :] < N)
            tl.store(part_ptr + pid_s * plane + offs, acc, mask=ok)
            tile = pid_m * tl.num_programs(0) + pid_n
            # acq_rel: this program's partial is visible before its ticket; the last one sees all
            ticket = tl.atomic_add(ticket_ptr + tile, 1, sem="acq_rel")
            if ticket == SPLIT - 1:
                total = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
                for s in tl.static_range(SPLIT):
                    total += tl.load(part_ptr + s * plane + offs, mask=ok, other=0.0, cache_modifier=".cg")
                tl.atomic_xchg(ticket_ptr + tile, 0)
                _epilogue(total, b_ptr, o_ptr, rm, rn, M, N, som, HAS_BIAS, GELU)


_TICKETS: dict[torch.device, torch.Tensor] = {}
TICKETS = 4096
"""Tickets (int32, zero between calls) per device: at most this many output tiles per call."""


def _tickets(device: torch.device) -> torch.Tensor:
    t = _TICKETS.get(device)
    if t is None:
        t = _TICKETS[device] = torch.zeros(TICKETS, dtype=torch.int32, device=device)
    return t


def _sms(device: torch.device) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 132


def launch_config(rows: int, n: int, k: int, sms: int = 132) -> tuple[int, int, int, int, int]:
    """(BLOCK_M, BLOCK_N, BLOCK_K, SPLIT, warps) of a (rows x k) @ (k x n) product: 64 or 128
    rows per tile, 64 columns, 64-deep K steps, and K split (into whole steps) so that the
    programs come to about :data:`SM_TARGET` per SM."""
    if (rows, n, k) in CONFIG:
        return CONFIG[(rows, n, k)]
    bm = 64 if rows <= 64 else 128
    bn, bk = 64, 64
    tiles = math.ceil(rows / bm) * math.ceil(n / bn)
    steps = math.ceil(k / bk)
    split = max(1, min(steps, round(SM_TARGET * sms / tiles)))
    while steps % split:  # whole, equal slices
        split -= 1
    return bm, bn, bk, split, 4


def available() -> bool:
    """Whether the kernel can run here (CUDA and Triton present)."""
    return triton is not None and torch.cuda.is_available()


def servable(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether :func:`decode_linear` runs the kernel for a (rows, K) ``x`` (else ``addmm``)."""
    return (triton is not None and x.is_cuda and x.dim() == 2 and 0 < x.shape[0] <= MAX_ROWS
            and x.stride(-1) == 1 and weight.dtype == x.dtype and x.dtype in (torch.bfloat16, torch.float16))


def launch(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, gelu: bool, out: torch.Tensor,
           config: tuple[int, int, int, int, int] | None = None) -> None:
    """Run the kernel: ``out = gelu?(x @ weight + bias)`` for a (M, K) ``x``, a (K, N) ``weight``
    (any strides) and a (N,) ``bias``."""
    M, K = x.shape
    N = weight.shape[1]
    bm, bn, bk, split, warps = config or launch_config(M, N, K, _sms(x.device))
    grid = (triton.cdiv(N, bn), split, triton.cdiv(M, bm))
    part = x  # unused without a split
    tickets = _tickets(x.device)
    if split > 1:
        if grid[0] * grid[2] > TICKETS:
            raise ValueError(f"decode_linear: {grid[0] * grid[2]} output tiles, at most {TICKETS}")
        part = torch.empty((split, M, N), dtype=torch.float32, device=x.device)
    k_split = triton.cdiv(triton.cdiv(K, split), bk) * bk
    b = bias if bias is not None else x
    _decode_linear_kernel[grid](x, weight, b, out, part, tickets, M, N, K,
                                x.stride(0), weight.stride(0), weight.stride(1), out.stride(0),
                                BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, SPLIT=split, K_SPLIT=k_split,
                                HAS_BIAS=bias is not None, GELU=gelu, num_warps=warps)


@torch.library.custom_op("rlseek::decode_linear", mutates_args=())
def decode_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, gelu: bool) -> torch.Tensor:
    """``x @ weight + bias`` (then the tanh GELU with ``gelu``) of a (M, K) ``x`` and a GPT-2
    ``Conv1D`` (K, N) ``weight``: the kernel for few rows on CUDA, ``addmm`` otherwise."""
    if not servable(x, weight):
        out = torch.addmm(bias, x, weight) if bias is not None else x @ weight
        return torch.nn.functional.gelu(out, approximate="tanh") if gelu else out
    out = torch.empty((x.shape[0], weight.shape[1]), dtype=x.dtype, device=x.device)
    launch(x, weight, bias, gelu, out)
    return out


@decode_linear.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, gelu: bool) -> torch.Tensor:
    return x.new_empty((x.shape[0], weight.shape[1]))


class DecodeConv1D(nn.Module):
    """GPT-2's ``Conv1D`` (``x @ weight + bias``, weight (in, out)), optionally followed by the
    tanh GELU, through :func:`decode_linear`. It holds the Conv1D's own parameters (no copy)."""

    def __init__(self, conv: nn.Module, gelu: bool = False) -> None:
        super().__init__()
        self.nf = conv.nf
        self.weight = conv.weight
        self.bias = conv.bias
        self.gelu = gelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        if flat.shape[0] > MAX_ROWS:  # the prefill: cuBLAS, outside the custom op
            out = torch.addmm(self.bias, flat, self.weight)
            if self.gelu:
                out = torch.nn.functional.gelu(out, approximate="tanh")
        else:
            out = decode_linear(flat, self.weight, self.bias, self.gelu)
        return out.view(*x.shape[:-1], self.nf)


_CONV_NAMES = ("c_attn", "c_proj", "c_fc", "q_attn")


def use_decode_linears(trunk: nn.Module) -> int:
    """Put :class:`DecodeConv1D` in place of every GPT-2 ``Conv1D`` of a CUDA decode copy's
    attention and MLP modules, folding a following tanh GELU (``act``) into ``c_fc``; returns
    how many layers now run the kernel. The parameters and their order stay, so the copy's
    in-place refresh from the LM still lines up."""
    from rlseek.envs.text.static_decode import _TANH_GELUS

    count = 0
    for module in list(trunk.modules()):
        for name in _CONV_NAMES:
            conv = getattr(module, name, None)
            if conv is None or type(conv).__name__ != "Conv1D" or not conv.weight.is_cuda:
                continue
            act = getattr(module, "act", None)
            gelu = name == "c_fc" and act is not None and type(act).__name__ in _TANH_GELUS
            setattr(module, name, DecodeConv1D(conv, gelu=gelu))
            if gelu:
                module.act = nn.Identity()
            count += 1
    return count
