"""The token pick of the graph decode in one pass over the vocabulary: two Triton kernels per token.

:func:`~rlseek.envs.text.static_decode.pick_tokens` — temperature, banned ids, the exponential
race ``argmax(softmax(s) / q)`` and the chosen token's log-prob — is a softmax, an argmax and a
log-softmax over (rows, 50,257) float32 scores: compiled by inductor it still reads the vocabulary
several times (``benchmarks/GPU_NOTES.md``: ~42 µs per step at batch 64, ~108 µs at 256 on an
H100, noise included). Here each row's vocabulary is cut into chunks; one program per (row,
chunk) streams its logits (bf16 or float32) and its pre-drawn Exp(1) noise once, keeping an
online max and sum of ``exp`` (the log-prob's normaliser) and the running best of
``s - log q``, and a second, tiny kernel combines each row's chunks. ``s - log q`` orders
tokens as ``p / q`` does (``p = exp(s - max) / sum``; the logarithm and the common factor are monotone). The noise
is still drawn by torch (:func:`~rlseek.envs.text.rollout.exponential_noise`), so a seeded
generator gives the tokens of the eager pick; they can part only where two tokens' ``p / q``
agree to float rounding.

Greedy (temperature 0) takes the first maximal score, as ``torch.argmax`` does. Banned ids must
lie below the vocabulary width (the eager ``index_fill`` raises on others; the kernel ignores
them). Top-k sampling is not served here (the compiled :func:`pick_tokens` does it). CPU builds of torch have no
Triton: :func:`available` is then False and the decoder keeps the compiled pick.
"""

from __future__ import annotations

import torch

from rlseek.envs.text.rollout import MASKED_LOGIT

BLOCK = 1024
"""Vocabulary entries per tile."""
NUM_WARPS = 4
"""Warps per program."""
TARGET_PROGRAMS = 1024
"""Each row's vocabulary is cut into chunks of whole tiles so that about this many programs
run: one program per row (64 at batch 64) streams too little at once to load a GPU."""

try:  # Triton ships with CUDA builds of torch; CPU builds go without the kernel
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the torch build
    triton = None

if triton is not None:
    @triton.jit
    def _pick_chunk_kernel(logit_ptr, noise_ptr, banned_ptr, part_ptr, idx_ptr, s_logit, s_noise,
                           width, chunk, n_banned, temperature,
                           SAMPLE: tl.constexpr, TEMPERED: tl.constexpr, LOGPROB: tl.constexpr,
                           MASKED: tl.constexpr, BLOCK: tl.constexpr):
        """One program per (row, chunk of ``chunk`` entries): one pass over the chunk's scores
        (and noise), leaving its max, sum of exp(s - max), best key, the score there and its
        id in the row's partials."""
        row = tl.program_id(0).to(tl.int64)  # row * stride may pass 2**31 for huge batches
        c = tl.program_id(1)
        chunks = tl.num_programs(1)
        lanes = tl.arange(0, BLOCK)
        m_i = tl.full([1], float("-inf"), tl.float32)
        l_i = tl.zeros([1], tl.float32)
        best = tl.full([1], float("-inf"), tl.float32)
        best_idx = tl.zeros([1], tl.int32)
        best_s = tl.zeros([1], tl.float32)
        lo = c * chunk
        hi = tl.minimum(lo + chunk, width)
        for start in range(lo, hi, BLOCK):
            cols = start + lanes
            ok = cols < hi
            s = tl.load(logit_ptr + row * s_logit + cols, mask=ok, other=0.0).to(tl.float32)
            if TEMPERED:
                s = s / temperature
            for j in range(n_banned):
                s = tl.where(cols == tl.load(banned_ptr + j), MASKED, s)
            s = tl.where(ok, s, float("-inf"))
            if LOGPROB:
                m_new = tl.maximum(m_i, tl.max(s, 0))
                m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # all -inf so far: no NaN
                l_i = l_i * tl.exp(m_i - m_safe) + tl.sum(tl.exp(s - m_safe), 0)
                m_i = m_new
            key = s
            if SAMPLE:
                q = tl.load(noise_ptr + row * s_noise + cols, mask=ok, other=1.0)
                key = tl.where(ok, s - tl.log(q), float("-inf"))
            k_max, k_idx = tl.max(key, 0, return_indices=True, return_indices_tie_break_left=True)
            idx = start + k_idx
            s_at = tl.sum(tl.where(cols == idx, s, 0.0), 0)
            better = k_max > best  # strict: an earlier tile keeps a tie, as torch.argmax does
            best_idx = tl.where(better, idx, best_idx)
            best_s = tl.where(better, s_at, best_s)
            best = tl.where(better, k_max, best)
        one = tl.arange(0, 1)
        at = (row * chunks + c) * 4 + one
        tl.store(part_ptr + at, best)
        tl.store(part_ptr + at + 1, best_s)
        tl.store(part_ptr + at + 2, m_i)
        tl.store(part_ptr + at + 3, l_i)
        tl.store(idx_ptr + row * chunks + c + one, best_idx)

    @triton.jit
    def _pick_combine_kernel(part_ptr, idx_ptr, tok_ptr, lp_ptr, chunks,
                             LOGPROB: tl.constexpr, CHUNKS: tl.constexpr):
        """One program per row: the row's token (the first chunk holding the best key) and
        its log-prob (the chunks' sums of exp brought to one max)."""
        row = tl.program_id(0).to(tl.int64)
        c = tl.arange(0, CHUNKS)
        ok = c < chunks
        at = (row * chunks + c) * 4
        best = tl.load(part_ptr + at, mask=ok, other=float("-inf"))
        k_max, k = tl.max(best, 0, return_indices=True, return_indices_tie_break_left=True)
        pick = c == k
        idx = tl.sum(tl.where(pick, tl.load(idx_ptr + row * chunks + c, mask=ok, other=0), 0), 0)
        tl.store(tok_ptr + row, idx.to(tl.int64))
        if LOGPROB:
            s_at = tl.sum(tl.where(pick, tl.load(part_ptr + at + 1, mask=ok, other=0.0), 0.0), 0)
            m = tl.load(part_ptr + at + 2, mask=ok, other=float("-inf"))
            l_c = tl.load(part_ptr + at + 3, mask=ok, other=0.0)
            m_all = tl.max(m, 0)
            m_all = tl.where(m_all == float("-inf"), 0.0, m_all)
            l_all = tl.sum(tl.where(ok, l_c * tl.exp(m - m_all), 0.0), 0)
            tl.store(lp_ptr + row, s_at - m_all - tl.log(l_all))


def available() -> bool:
    """Whether the kernel can run here (CUDA and Triton present)."""
    return triton is not None and torch.cuda.is_available()


def servable(logits: torch.Tensor, top_k: int) -> bool:
    """Whether :func:`pick` serves this call (else the compiled pick does)."""
    return (triton is not None and logits.dim() == 2 and logits.stride(-1) == 1 and top_k <= 0
            and logits.dtype in (torch.float32, torch.bfloat16, torch.float16))


def pick(logits: torch.Tensor, noise: torch.Tensor | None, temperature: float,
         vocab_size: int | None, banned: torch.Tensor | None, record_logprobs: bool,
         ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The next token of each row of (rows, V_model) ``logits`` and, with ``record_logprobs``,
    its (rows, 1) float32 log-prob under the tempered, banned distribution — what
    :func:`~rlseek.envs.text.static_decode.pick_tokens` returns for ``top_k`` 0. ``noise`` is
    (rows, V) float32 Exp(1) (None: greedy); ``banned`` a long tensor of ids or None."""
    rows = logits.shape[0]
    width = logits.shape[-1] if vocab_size is None else min(logits.shape[-1], int(vocab_size))
    sample = temperature > 0
    if sample and (noise is None or noise.shape[-1] < width or noise.stride(-1) != 1):
        raise ValueError(f"decode_pick: noise of shape (rows, >= {width}) needed, got "
                         f"{None if noise is None else tuple(noise.shape)}")
    tok = torch.empty(rows, dtype=torch.long, device=logits.device)
    lp = torch.empty((rows, 1), dtype=torch.float32, device=logits.device) if record_logprobs else None
    n_banned = 0 if banned is None else int(banned.numel())
    if rows:
        tiles = -(-width // BLOCK)
        per_chunk = max(1, -(-tiles // max(1, -(-TARGET_PROGRAMS // rows))))
        chunks = -(-tiles // per_chunk)
        part = torch.empty((rows, chunks, 4), dtype=torch.float32, device=logits.device)
        idx = torch.empty((rows, chunks), dtype=torch.int32, device=logits.device)
        _pick_chunk_kernel[(rows, chunks)](
            logits, noise if sample else logits, banned if n_banned else tok, part, idx,
            logits.stride(0), noise.stride(0) if sample else 0, width, per_chunk * BLOCK, n_banned,
            float(temperature) if sample else 1.0,
            SAMPLE=sample, TEMPERED=temperature not in (0.0, 1.0), LOGPROB=record_logprobs,
            MASKED=MASKED_LOGIT, BLOCK=BLOCK, num_warps=NUM_WARPS,
        )
        _pick_combine_kernel[(rows,)](part, idx, tok, lp if lp is not None else part, chunks,
                                      LOGPROB=record_logprobs, CHUNKS=max(2, triton.next_power_of_2(chunks)),
                                      num_warps=1)
    return tok, lp
