"""Single-query attention for the compiled static decode path: one Triton kernel per layer and token.

During decoding each row brings one query token that attends to the keys cached so far.
``scaled_dot_product_attention`` with an additive mask picks, on an H200, cuDNN's flash kernel,
a prefill kernel that tiles queries by 64 or more: for one query it spends about 20 µs per
layer at batch 64 whatever the length — a quarter of a GPT-2-small decode step
(``benchmarks/GPU_NOTES.md``; FlexAttention compiled by inductor measured 26 µs there). This
kernel streams each (row, head)'s keys and values once with an online softmax, reading only
the positions written so far (the decoder passes their count as the ``rlseek_kv_len`` keyword,
which transformers hands through to attention functions), not the whole pre-allocated cache.
Where rows are few, each (row, head)'s keys are split into parts, one program each, so that a
few thousand programs keep the GPU's memory busy (flash-decoding's split); the part that
finishes last merges the parts' partial softmaxes in a fixed order, in the same kernel.

It is a PyTorch custom op (``rlseek::decode_attention``), so ``torch.compile`` treats it as one
opaque call — inductor neither traces nor recompiles the Triton kernel — and the CUDA graph of
the step captures its launch like the rest. Registered with transformers' ``AttentionInterface``
under :data:`NAME` and used only by the decode copy of the trunk
(:class:`~rlseek.envs.text.static_decode.StaticDecoder`, CUDA); every call it cannot serve (more
than one query, no CUDA, soft-capping, sliding windows,
dropout, an attention mask of another shape, a head size over 256) goes to transformers' own SDPA function unchanged.
The numbers are SDPA's, with a float32 softmax: the same masked softmax of ``q·k·scale + mask``
(``tests/test_decode_attention.py`` compares them).
"""

from __future__ import annotations

from typing import Any

import torch

NAME = "rlseek_decode"
"""The attention implementation name the decode copy's config is set to."""
KV_LEN = "rlseek_kv_len"
"""Keyword of the trunk's forward that carries the count of cached keys (a (1,) long tensor)."""
BLOCK_KEYS = 0
"""Keys per tile; 0: :func:`launch_config` picks."""
NUM_WARPS = 0
"""Warps per (row, head) program; 0: :func:`launch_config` picks."""
NUM_STAGES = 0
"""With BLOCK_KEYS and NUM_WARPS set by hand: Triton software-pipelining stages of the tile
loop; 0: Triton's default."""
UNROLL = True
"""With BLOCK_KEYS and NUM_WARPS set by hand: unrolled tiles when the cache has at most
:data:`MAX_UNROLLED_TILES` of them, else a loop."""
PRELOAD_VALUES = False
"""Load each tile's values together with its keys (more bytes in flight, more registers)."""
SPLIT = 1
"""With BLOCK_KEYS and NUM_WARPS set by hand: parts each (row, head)'s keys are split into
(one program each; the last to finish merges them)."""

try:  # Triton ships with CUDA builds of torch; CPU builds go without the kernel
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the torch build
    triton = None

if triton is not None:
    # Defined at module level, as Triton wants its kernels.
    @triton.jit
    def _tile(q, k_ptr, v_ptr, m_ptr, row_k, row_v, row_m, skl, svl, n, start, m_i, l_i, acc,
              HAS_MASK: tl.constexpr, BLOCK: tl.constexpr, D: tl.constexpr, DP: tl.constexpr,
              PRELOAD: tl.constexpr):
        """One tile of BLOCK keys: the online-softmax update of (max, sum, accumulator).
        D is the head size, DP the power of two >= D the lanes are laid out in. PRELOAD: the
        values are loaded with the keys, before the scores need them."""
        d = tl.arange(0, DP)
        cols = start + tl.arange(0, BLOCK)
        ok = cols < n
        kv_ok = ok[:, None] & (d[None, :] < D)
        k = tl.load(k_ptr + row_k + cols[:, None] * skl + d[None, :], mask=kv_ok, other=0.0)
        if PRELOAD:
            v = tl.load(v_ptr + row_v + cols[:, None] * svl + d[None, :], mask=kv_ok, other=0.0)
        s = tl.sum(k.to(tl.float32) * q[None, :], 1)
        if HAS_MASK:
            s += tl.load(m_ptr + row_m + cols, mask=ok, other=0.0).to(tl.float32)
        s = tl.where(ok, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 0))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # no keys yet: no NaN from -inf - -inf
        alpha = tl.exp(m_i - m_safe)
        p = tl.exp(s - m_safe)
        if not PRELOAD:
            v = tl.load(v_ptr + row_v + cols[:, None] * svl + d[None, :], mask=kv_ok, other=0.0)
        return m_new, l_i * alpha + tl.sum(p, 0), acc * alpha + tl.sum(p[:, None] * v.to(tl.float32), 0)

    @triton.jit
    def _append(q, kn_ptr, vn_ptr, k_ptr, v_ptr, m_ptr, row_kn, row_vn, row_k, row_v, row_m, skl, svl,
                cached, d, m_i, l_i, acc, write, HAS_MASK: tl.constexpr, D: tl.constexpr):
        """The step's own key and value (not yet in the cache) as the last key: taken into the
        softmax from registers and, where ``write``, stored into cache slot ``cached``."""
        k_new = tl.load(kn_ptr + row_kn + d, mask=d < D, other=0.0)
        v_new = tl.load(vn_ptr + row_vn + d, mask=d < D, other=0.0)
        s = tl.sum(k_new.to(tl.float32) * q, 0)
        if HAS_MASK:
            s += tl.load(m_ptr + row_m + cached).to(tl.float32)
        m_new = tl.maximum(m_i, s)
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # a -inf mask here: no NaN
        alpha = tl.exp(m_i - m_safe)
        p = tl.exp(s - m_safe)
        if write:  # one program per kv head writes its slot
            tl.store(k_ptr + row_k + cached * skl + d, k_new.to(k_ptr.dtype.element_ty), mask=d < D)
            tl.store(v_ptr + row_v + cached * svl + d, v_new.to(v_ptr.dtype.element_ty), mask=d < D)
        return m_new, l_i * alpha + p, acc * alpha + p * v_new.to(tl.float32)

    @triton.jit
    def _decode_attention_kernel(q_ptr, k_ptr, v_ptr, m_ptr, o_ptr, n_ptr, kn_ptr, vn_ptr, part_ptr,
                                ticket_ptr, sqb, sqh, skb, skh, skl, svb, svh, svl, smb, sob, soh,
                                sknb, sknh, svnb, svnh, heads, group, scale,
                                KEYS: tl.constexpr, HAS_MASK: tl.constexpr, HAS_N: tl.constexpr,
                                UNROLL: tl.constexpr, BLOCK: tl.constexpr, D: tl.constexpr,
                                DP: tl.constexpr, APPEND: tl.constexpr, PRELOAD: tl.constexpr,
                                SPLIT: tl.constexpr, CHUNK: tl.constexpr):
        """Program (row-head, part): one (row, head)'s keys CHUNK * part ... CHUNK * (part + 1)
        (SPLIT parts; one: all KEYS). UNROLL: every tile of the chunk is a static, unrolled
        step (all loads can be issued at once; tiles past the written count are masked off
        and read nothing); else a loop up to the written count.

        APPEND: the step's own key and value (``kn_ptr``/``vn_ptr``, not yet in the cache)
        are the n-th, written into cache slot n - 1 here (by the last part) and taken into
        the softmax from registers after the n - 1 cached ones.

        SPLIT > 1: each part leaves its (max, sum, accumulator) in ``part_ptr`` and takes a
        ticket of its (row, head) (``ticket_ptr``, zero before); the part that draws the last
        ticket merges the parts in part order (the same sums whichever finishes last), writes
        the output and puts the ticket back to zero. No second kernel."""
        pid = tl.program_id(0).to(tl.int64)  # b * row stride may pass 2**31 for long caches
        part = tl.program_id(1)
        b = pid // heads
        h = pid % heads
        hk = h // group
        d = tl.arange(0, DP)
        q = tl.load(q_ptr + b * sqb + h * sqh + d, mask=d < D, other=0.0).to(tl.float32) * scale
        n = KEYS
        if HAS_N:
            n = tl.minimum(tl.load(n_ptr).to(tl.int32), KEYS)
        cached = n
        if APPEND:
            cached = n - 1
        lo = part * CHUNK
        hi = tl.minimum(lo + CHUNK, cached)
        m_i = tl.full([1], float("-inf"), tl.float32)
        l_i = tl.zeros([1], tl.float32)
        acc = tl.zeros([DP], tl.float32)
        row_k, row_v, row_m = b * skb + hk * skh, b * svb + hk * svh, b * smb
        if UNROLL:
            for t in tl.static_range(0, CHUNK, BLOCK):
                m_i, l_i, acc = _tile(q, k_ptr, v_ptr, m_ptr, row_k, row_v, row_m, skl, svl, hi,
                                      lo + t, m_i, l_i, acc, HAS_MASK, BLOCK, D, DP, PRELOAD)
        else:
            for start in range(lo, hi, BLOCK):
                m_i, l_i, acc = _tile(q, k_ptr, v_ptr, m_ptr, row_k, row_v, row_m, skl, svl, hi,
                                      start, m_i, l_i, acc, HAS_MASK, BLOCK, D, DP, PRELOAD)
        if APPEND:  # noqa: SIM102 - a compile-time test, then a run-time one
            if part == SPLIT - 1:
                m_i, l_i, acc = _append(q, kn_ptr, vn_ptr, k_ptr, v_ptr, m_ptr, b * sknb + hk * sknh,
                                        b * svnb + hk * svnh, row_k, row_v, row_m, skl, svl, cached, d,
                                        m_i, l_i, acc, h % group == 0, HAS_MASK, D)
        if SPLIT == 1:
            tl.store(o_ptr + b * sob + h * soh + d, (acc / l_i).to(o_ptr.dtype.element_ty), mask=d < D)
        else:
            one = tl.arange(0, 1)
            slot = part_ptr + (pid * SPLIT + part) * (DP + 2)
            tl.store(slot + d, acc)
            tl.store(slot + DP + one, m_i)
            tl.store(slot + DP + 1 + one, l_i)
            # Every lane's partial stores before the ticket (one thread takes it: the
            # barrier orders the other lanes' stores before its release), then acq_rel: the
            # part drawing the last ticket sees all parts' partials.
            tl.debug_barrier()
            ticket = tl.atomic_add(ticket_ptr + pid, 1, sem="acq_rel")
            if ticket == SPLIT - 1:
                tl.debug_barrier()  # the ticket's acquire before any lane's loads
                first = part_ptr + pid * SPLIT * (DP + 2)
                m_all = tl.full([1], float("-inf"), tl.float32)
                for j in tl.static_range(SPLIT):
                    m_all = tl.maximum(m_all, tl.load(first + j * (DP + 2) + DP + one, cache_modifier=".cg"))
                m_all = tl.where(m_all == float("-inf"), 0.0, m_all)  # no keys at all: 0 / 0, as unsplit
                l_all = tl.zeros([1], tl.float32)
                acc_all = tl.zeros([DP], tl.float32)
                for j in tl.static_range(SPLIT):
                    w = tl.exp(tl.load(first + j * (DP + 2) + DP + one, cache_modifier=".cg") - m_all)
                    l_all += w * tl.load(first + j * (DP + 2) + DP + 1 + one, cache_modifier=".cg")
                    acc_all += w * tl.load(first + j * (DP + 2) + d, cache_modifier=".cg")
                tl.store(o_ptr + b * sob + h * soh + d, (acc_all / l_all).to(o_ptr.dtype.element_ty),
                         mask=d < D)
                tl.atomic_xchg(ticket_ptr + pid, 0)


MAX_UNROLLED_TILES = 16
"""Parts of more tiles than this run the loop, not the unrolled steps."""


TARGET_PROGRAMS = 3072
""":func:`launch_config` splits each (row, head)'s keys into parts so that about this many
programs run."""


def launch_config(keys: int, programs: int) -> tuple[int, int, bool, int, int]:
    """(keys per tile, warps, unrolled tiles, pipelining stages (0: Triton's default), parts
    each (row, head)'s keys are split into) of ``programs`` (row, head) programs over ``keys``
    cached keys: one warp, 16-key tiles in a loop with 4 stages, and the keys split into as
    many parts as bring the programs to about :data:`TARGET_PROGRAMS` (at most one part per
    16 keys).

    From the sweeps of ``benchmarks/gpu_decode_attention_sweep.py`` on H100s
    (``benchmarks/GPU_NOTES.md``, GPT-2 small, 192 keys): at batch 256 (3,072 programs) this
    tile config unsplit was the fastest (+10 % tokens/s over 128-key unrolled tiles with two
    warps; splitting lost 3–18 %); at batch 64 (768 programs) the 128-key unrolled tiles were
    the best unsplit config, and these 16-key tiles split in four took 6 % less kernel time
    than them (164 vs 174 µs per decode step; +2–6 % decode tokens/s, alternating A/B in one
    process)."""
    most = -(-keys // 16)
    if BLOCK_KEYS and NUM_WARPS:  # set by hand (benchmarks)
        return BLOCK_KEYS, NUM_WARPS, UNROLL, NUM_STAGES, max(1, min(SPLIT, most))
    return 16, 1, False, 4, max(1, min(round(TARGET_PROGRAMS / max(programs, 1)), most))


_TICKETS: dict[torch.device, torch.Tensor] = {}
_OUTGROWN: list[torch.Tensor] = []
"""Ticket buffers replaced by larger ones, kept alive: CUDA graphs captured earlier still
point at them."""


def _tickets(device: torch.device, count: int) -> torch.Tensor | None:
    """The device's int32 tickets of split programs (zero between kernels; each kernel puts
    back what it takes; kernels on one stream at a time), at least ``count`` of them; None
    where more are needed while a CUDA graph is being captured (a new buffer's zeroing would
    not be part of the graph)."""
    t = _TICKETS.get(device)
    if t is None or t.numel() < count:
        if device.type == "cuda" and torch.cuda.is_current_stream_capturing():
            return None
        if t is not None:
            _OUTGROWN.append(t)
        t = _TICKETS[device] = torch.zeros(max(count, 4096), dtype=torch.int32, device=device)
    return t


def available() -> bool:
    """Whether the kernel can run here (CUDA and Triton present)."""
    return triton is not None and torch.cuda.is_available()


@torch.library.custom_op("rlseek::decode_attention", mutates_args=())
def decode_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     mask: torch.Tensor | None, kv_len: torch.Tensor | None,
                     scale: float) -> torch.Tensor:
    """Attention of one query per (row, head): (B, H, 1, D) query, (B, H_kv, L, D) keys and
    values, optional (B, 1, 1, L) additive mask -> (B, 1, H, D) output (the layout
    transformers' attention functions return). With ``kv_len`` (a one-element long device
    tensor) only the first ``kv_len`` keys are read (the rest must be masked anyway)."""
    B, H, _, D = query.shape
    out = torch.empty((B, 1, H, D), dtype=query.dtype, device=query.device)
    _launch(query, key, value, mask, kv_len, scale, out, None, None)
    return out


def _launch(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None,
            kv_len: torch.Tensor | None, scale: float, out: torch.Tensor,
            key_new: torch.Tensor | None, value_new: torch.Tensor | None) -> None:
    B, H, _, D = query.shape
    Hkv, L = key.shape[1], key.shape[2]
    m = mask if mask is not None else query
    n = kv_len if kv_len is not None else query
    append = key_new is not None and value_new is not None
    kn = key_new if append else query
    vn = value_new if append else query
    block, warps, unroll, stages, split = launch_config(L, B * H)
    chunk = -(-L // split)
    tickets, part = query, query  # not read without a split
    if split > 1:
        block = min(block, max(16, triton.next_power_of_2(chunk)))
        tickets = _tickets(query.device, B * H)
        if tickets is None:
            split, chunk, tickets = 1, L, query
        else:
            part = torch.empty((B * H, split, triton.next_power_of_2(D) + 2), dtype=torch.float32,
                               device=query.device)
    _decode_attention_kernel[(B * H, split)](
        query, key, value, m, out, n, kn, vn, part, tickets,
        query.stride(0), query.stride(1), key.stride(0), key.stride(1), key.stride(2),
        value.stride(0), value.stride(1), value.stride(2),
        m.stride(0) if mask is not None else 0, out.stride(0), out.stride(2),
        kn.stride(0), kn.stride(1), vn.stride(0), vn.stride(1),
        H, H // Hkv, float(scale),
        KEYS=L, HAS_MASK=mask is not None, HAS_N=kv_len is not None,
        UNROLL=unroll and -(-chunk // block) <= MAX_UNROLLED_TILES, BLOCK=block, D=D,
        DP=triton.next_power_of_2(D), APPEND=append, PRELOAD=PRELOAD_VALUES, SPLIT=split, CHUNK=chunk,
        num_warps=warps,
        **({"num_stages": stages} if stages else {}),
    )


@decode_attention.register_fake
def _(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None,
      kv_len: torch.Tensor | None, scale: float) -> torch.Tensor:
    B, H, _, D = query.shape
    return query.new_empty((B, 1, H, D))


@torch.library.custom_op("rlseek::decode_attention_append", mutates_args=("key_cache", "value_cache"))
def decode_attention_append(query: torch.Tensor, key_new: torch.Tensor, value_new: torch.Tensor,
                            key_cache: torch.Tensor, value_cache: torch.Tensor,
                            mask: torch.Tensor | None, kv_len: torch.Tensor, scale: float) -> torch.Tensor:
    """:func:`decode_attention` of a step whose own (B, H_kv, 1, D) key and value are not yet
    cached: the kernel writes them into slot ``kv_len - 1`` of the caches (in place) and
    attends over the ``kv_len - 1`` keys before it and the new one. One kernel instead of the
    cache update's two index copies and the attention."""
    B, H, _, D = query.shape
    out = torch.empty((B, 1, H, D), dtype=query.dtype, device=query.device)
    _launch(query, key_cache, value_cache, mask, kv_len, scale, out, key_new, value_new)
    return out


@decode_attention_append.register_fake
def _(query: torch.Tensor, key_new: torch.Tensor, value_new: torch.Tensor, key_cache: torch.Tensor,
      value_cache: torch.Tensor, mask: torch.Tensor | None, kv_len: torch.Tensor, scale: float) -> torch.Tensor:
    B, H, _, D = query.shape
    return query.new_empty((B, 1, H, D))


def servable(query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None,
             dropout: float = 0.0, softcap: float | None = None,
             sliding_window: int | None = None) -> bool:
    """Whether :func:`decode_attention` serves this call (else SDPA does)."""
    B, H, Q, D = query.shape
    if triton is None or Q != 1 or not query.is_cuda or dropout or D > 256:
        return False
    if softcap or sliding_window or H % key.shape[1]:
        return False
    if query.stride(-1) != 1 or key.stride(-1) != 1 or query.dtype != key.dtype:
        return False
    return mask is None or (mask.dim() == 4 and mask.shape[1] == 1 and mask.shape[2] == 1
                            and mask.shape[0] == B and mask.shape[-1] == key.shape[2]
                            and mask.stride(-1) == 1 and mask.dtype != torch.bool)


def attention_forward(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor,
                      value: torch.Tensor, attention_mask: torch.Tensor | None,
                      dropout: float = 0.0, scaling: float | None = None,
                      **kwargs: Any) -> tuple[torch.Tensor, None]:
    """A transformers attention function: the kernel for single-query calls it can serve,
    transformers' SDPA function for everything else."""
    n = kwargs.pop(KV_LEN, None)
    if servable(query, key, attention_mask, dropout, kwargs.get("softcap"), kwargs.get("sliding_window")):
        scale = scaling if scaling is not None else query.shape[-1] ** -0.5
        n = n if isinstance(n, torch.Tensor) and n.numel() == 1 else None
        return decode_attention(query, key, value, attention_mask, n, float(scale)), None
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                  scaling=scaling, **kwargs)


class AppendingAttention(torch.nn.Module):
    """GPT-2's self-attention module in the decode copy, for single-token steps: the query,
    key and value from ``c_attn``, then :func:`decode_attention_append` — the kernel writes the
    step's key and value into the static cache itself, where transformers' cache update would
    run two index copies (two more kernels per layer and token) — then ``c_proj``. Anything
    else (the prefill, calls without the written-key count, shapes the kernel refuses) goes to
    the wrapped module unchanged. It holds the wrapped module's parameters, in their order.

    The cache layer's ``cumulative_length`` is not advanced by these steps: the decoder passes
    positions and the 4-D mask itself, and resets the cache before the next prefill. So within
    one decode a single-token call must not fall back to the wrapped module after appending
    steps (transformers' update would write at the stale length): the fallback conditions
    depend only on what is fixed for a whole decode (cache, mask layout, dtype, the count
    keyword being passed)."""

    def __init__(self, attn: torch.nn.Module) -> None:
        super().__init__()
        self.inner = attn

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        a = self.inner
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        n = kwargs.get(KV_LEN)
        mask = kwargs.get("attention_mask")
        layers = getattr(cache, "layers", None)
        layer = layers[a.layer_idx] if layers is not None and a.layer_idx < len(layers) else None
        if (args or a.training or hidden_states.dim() != 3 or hidden_states.shape[1] != 1
                or not isinstance(n, torch.Tensor) or n.numel() != 1 or layer is None
                or not getattr(layer, "is_initialized", False)
                or kwargs.get("encoder_hidden_states") is not None):
            return a(hidden_states, *args, **kwargs)
        q, k, v = a.c_attn(hidden_states).split(a.split_size, dim=2)
        shape = (*hidden_states.shape[:-1], -1, a.head_dim)
        q, k, v = (x.view(shape).transpose(1, 2) for x in (q, k, v))
        if not servable(q, layer.keys, mask) or k.dtype != layer.keys.dtype:
            return a(hidden_states, *args, **kwargs)
        scale = a.scaling if getattr(a, "scaling", None) is not None else a.head_dim ** -0.5
        out = decode_attention_append(q, k, v, layer.keys, layer.values, mask, n, float(scale))
        out = a.c_proj(out.reshape(*out.shape[:-2], -1))
        return a.resid_dropout(out), None


APPENDING_CLASSES = ("GPT2Attention", "DecisionTransformerGPT2Attention")
"""Attention classes whose q/k/v layout (one ``c_attn``, split in three, heads contiguous)
:class:`AppendingAttention` reproduces. Look-alikes with other layouts (GPTBigCode's
multi-query split) are left alone."""


def append_in_kernel(trunk: torch.nn.Module) -> int:
    """Wrap every self-attention module of a decode copy whose class is one of
    :data:`APPENDING_CLASSES` (not cross-attention) in :class:`AppendingAttention`; returns
    how many were wrapped."""
    count = 0
    for module in list(trunk.modules()):
        attn = getattr(module, "attn", None)
        if isinstance(attn, AppendingAttention) or attn is None or getattr(attn, "is_cross_attention", False):
            continue
        if type(attn).__name__ in APPENDING_CLASSES and all(
                hasattr(attn, a) for a in ("c_attn", "c_proj", "split_size", "head_dim", "layer_idx",
                                           "resid_dropout")):
            module.attn = AppendingAttention(attn)
            count += 1
    return count


def register() -> str:
    """Register :func:`attention_forward` (and SDPA's mask builder) under :data:`NAME`;
    returns the name. Idempotent."""
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, attention_forward)
    try:
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

        ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    except (ImportError, AttributeError):  # older transformers: masks are passed 4-D anyway
        pass
    return NAME
