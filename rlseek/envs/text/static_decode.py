"""The GPU decode path of :class:`~rlseek.envs.text.rollout.RolloutEngine`: a static cache and a
CUDA-graph decode step (``DecodeSettings(cache="static")``).

Same loop, same numbers as the engine's eager dynamic-cache decode — one prefill, then one
single-token forward per new token, the token chosen by the same
:func:`~rlseek.envs.text.rollout.policy_logits` and
:func:`~rlseek.envs.text.rollout.sample_tokens` — but shaped for a GPU:

* the KV cache is transformers' ``StaticCache``, pre-allocated per shape bucket
  (:mod:`rlseek.envs.text.decode_state`), and the attention mask is a pre-built additive
  4-D tensor, so a decode step allocates nothing and has fixed shapes;
* on CUDA the whole step (forward, LM head, sampling, bookkeeping) is captured once per
  bucket in a ``torch.cuda.CUDAGraph`` and replayed per token: no Python and no kernel
  launches per token. The trunk's forward may first be compiled (``compile``; inductor
  fuses the small kernels the graph then replays);
* sampling never synchronises with the host (``sample_tokens`` is the exponential race
  that ``torch.multinomial`` runs for one sample, without its host-side checks), and with a
  ``torch.Generator`` the graph replays it reproducibly (the generator is registered with
  the graph);
* under bf16 autocast the trunk decodes from a bf16 copy of its weights (refreshed from the
  float32 weights at every decode: autocast would otherwise re-cast every weight at every
  token); on the graph path the copy attends through
  :mod:`~rlseek.envs.text.decode_attention`'s single-query kernel, which reads only the
  keys written so far, and the LM head is a bf16 copy (float32 with
  ``DecodeSettings.head_float32``) padded to a multiple of :data:`HEAD_MULTIPLE` rows
  (GPT-2's 50,257 → 50,304: cuBLAS picks a far faster kernel; the padded logits are cut
  off before sampling);
* the token pick (temperature, banned ids, the exponential race, the log-prob) is one pass
  of :mod:`~rlseek.envs.text.decode_pick`'s two kernels over the logits and the noise drawn
  just before it (top-k sampling, or no Triton: one compiled function of them);
* "have all rows ended?" is asked every ``max(exit_check_every, 16)`` tokens; at each ask
  the columns decoded so far can be handed to the caller (``on_columns``) while the next
  chunk runs: :meth:`RolloutEngine.rollout` steps its env through them there, so the env's
  per-token work overlaps the decode instead of following it.

On the CPU the same code runs eagerly (no graph, no padding, no bf16 copy); the tests use
that to check that it gives the dynamic path's tokens.
"""

from __future__ import annotations

import copy
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from rlseek.envs.text import decode_attention, decode_pick
from rlseek.envs.text.decode_state import MAX_BUCKETS, DecodeState, bucket_shape
from rlseek.envs.text.rollout import (
    CACHE_KWARG,
    ColumnsCallback,
    Generation,
    exponential_noise,
    full_precision,
    lm_trunk,
    policy_logits,
    positions,
    sample_tokens,
)

if TYPE_CHECKING:
    from rlseek.envs.text.rollout import DecodeSettings, RolloutEngine

HEAD_MULTIPLE = 64
"""Rows of the padded LM head on the graph path are a multiple of this."""
MIN_EXIT_CHECK = 16
"""Tokens between two "all ended?" host checks, at least."""
WARMUP_STEPS = 3
"""Eager steps run on a side stream before a capture (cuBLAS handles, compilation)."""


class StaticDecoder:
    """Static-cache decoding for one :class:`RolloutEngine` (see the module docstring).

    Args:
        engine: the engine whose LM, vocabulary, pad and EOS ids are used.
        graphs: capture the decode step in CUDA graphs (CUDA only).
        compile: ``torch.compile`` the trunk's single-token forward first.
    """

    def __init__(self, engine: RolloutEngine, *, graphs: bool, compile: bool) -> None:
        self.engine = engine
        self.graphs = graphs and engine.device.type == "cuda"
        self.compile = compile
        self.states: OrderedDict[tuple[int, ...], DecodeState] = OrderedDict()
        self._copy: nn.Module | None = None
        self._head: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self._compiled: Any = None
        self._pick: Any = None
        self._record: Any = None
        self.compile_error: str | None = None
        self.attention_kernel = True
        """Graph path: the decode copy attends through :mod:`~rlseek.envs.text.decode_attention`'s
        single-query kernel (where Triton is present) instead of SDPA."""
        self.pick_kernel = True
        """Graph path: the token is picked by :mod:`~rlseek.envs.text.decode_pick`'s one-pass
        kernels (where Triton is present and ``top_k`` is 0) instead of the compiled
        :func:`pick_tokens`."""
        self.append_in_kernel = True
        """Graph path, with the attention kernel: a GPT-2-style decode copy's single-token
        steps write their key and value into the cache inside the kernel
        (:class:`~rlseek.envs.text.decode_attention.AppendingAttention`)."""
        self.appending_layers = 0
        """Attention layers of the current decode copy that append in the kernel."""
        self.fused_gelu = True
        """Graph path: in the decode copy, a GPT-2-style MLP's first linear layer and its tanh
        GELU run as one cuBLASLt call with a GELU epilogue (:func:`fuse_gelu_linears`)."""
        self.fused_mlps = 0
        """MLPs of the current decode copy whose first linear layer carries the GELU."""
        self.compile_mode: str | None = None
        """``torch.compile`` mode of the decode forward (None: the default)."""
        self.head_dtype = torch.float32
        """dtype of the padded LM head on the graph path, set per decode from
        ``DecodeSettings.head_float32`` (logits are float32 either way)."""

    # -- weights ----------------------------------------------------------------------------
    def _trunk(self, dtype: torch.dtype | None) -> nn.Module:
        """The trunk to decode with: the LM's own, or (``dtype`` given) a copy in ``dtype``
        whose weights are refreshed in place from the LM's (addresses stay for the graph)."""
        trunk = lm_trunk(self.engine.lm)
        if dtype is None:
            return trunk
        if self._copy is None or next(self._copy.parameters()).dtype != dtype:
            self._copy = copy.deepcopy(trunk).to(dtype).requires_grad_(False)
            self.appending_layers = self.fused_mlps = 0
            if self.graphs and self.attention_kernel and decode_attention.available() and hasattr(self._copy, "config"):
                self._copy.config._attn_implementation = decode_attention.register()
                if self.append_in_kernel:
                    self.appending_layers = decode_attention.append_in_kernel(self._copy)
            if self.graphs and self.fused_gelu:
                self.fused_mlps = fuse_gelu_linears(self._copy)
        with torch.no_grad():
            src = list(trunk.parameters()) + list(trunk.buffers())
            dst = list(self._copy.parameters()) + list(self._copy.buffers())
            torch._foreach_copy_(dst, src)
        return self._copy

    def _head_weights(self) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """The LM head's float32 weight padded to :data:`HEAD_MULTIPLE` rows (and bias), or
        None when the head is not a plain linear layer (then it is called as it is)."""
        head = self.engine.lm.get_output_embeddings()
        weight, bias = getattr(head, "weight", None), getattr(head, "bias", None)
        if not self.graphs or not isinstance(weight, torch.Tensor):
            return None
        rows = -(-weight.shape[0] // HEAD_MULTIPLE) * HEAD_MULTIPLE
        dt = self.head_dtype
        if self._head is None or self._head[0].shape != (rows, weight.shape[1]) or self._head[0].dtype != dt:
            w = torch.zeros((rows, weight.shape[1]), dtype=dt, device=weight.device)
            b = None if bias is None else torch.zeros(rows, dtype=dt, device=weight.device)
            self._head = (w, b)
        w, b = self._head
        with torch.no_grad():
            w[: weight.shape[0]].copy_(weight)
            if b is not None and bias is not None:
                b[: bias.shape[0]].copy_(bias)
        return self._head

    def _logits(self, hidden: torch.Tensor, head: tuple[torch.Tensor, torch.Tensor | None] | None,
                ) -> torch.Tensor:
        """Logits of (B, H) hidden states, (B, V_model) (padding rows cut off): float32, or
        the padded head's dtype on the graph path (bf16 there unless ``head_float32``; the
        pick upcasts them in its first fused pass instead of a pass of its own here)."""
        from rlseek.envs.text.rollout import lm_head_float32

        lm = self.engine.lm
        if head is None:
            return lm_head_float32(lm, hidden[:, None])[:, -1]
        w, b = head
        with full_precision(hidden.device):
            logits = torch.nn.functional.linear(hidden.to(w.dtype), w, b)
            cap = getattr(getattr(lm, "config", None), "final_logit_softcapping", None)
            if cap:
                logits = torch.tanh(logits.float() / cap) * cap
        return logits[:, : lm.get_output_embeddings().weight.shape[0]]

    # -- the loop -----------------------------------------------------------------------------
    def _forward(self, trunk: nn.Module, st: DecodeState, ids: torch.Tensor, mask: torch.Tensor,
                 pos: torch.Tensor, kv_len: torch.Tensor | None = None) -> torch.Tensor:
        extra = {decode_attention.KV_LEN: kv_len} if kv_len is not None else {}
        out = trunk(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True,
                    **{CACHE_KWARG: st.cache}, **extra)
        return out.last_hidden_state[:, -1]

    def _choose(self, st: DecodeState, logits: torch.Tensor, settings: DecodeSettings,
                banned: torch.Tensor | None, generator: torch.Generator | None,
                advance: bool = False) -> None:
        """Pick the next token from the logits and record it, all in place (``advance``: a
        decode step's, whose fed token moves each live row's position on by one)."""
        eng = self.engine
        fill = eng.pad_token_id if eng.pad_token_id is not None else 0
        # Only the real rows are scored and sampled; their noise is drawn as the dynamic
        # path draws it, (rows, V) from the generator.
        rows = st.rows
        real = logits[:rows]
        noise = None
        if settings.temperature > 0:  # drawn here: the compiled pick takes no generator
            width = min(real.shape[-1], eng.vocab_size) if eng.vocab_size else real.shape[-1]
            noise = exponential_noise((rows, width), real.device, generator)
        if self.graphs and self.pick_kernel and decode_pick.available() \
                and decode_pick.servable(real, settings.top_k):
            drawn, lp_rows = decode_pick.pick(real, noise, settings.temperature, eng.vocab_size, banned,
                                              settings.record_logprobs)
        else:
            pick = self._pick if self._pick is not None else pick_tokens
            drawn, lp_rows = pick(real, noise, settings.temperature, eng.vocab_size, banned,
                                  settings.top_k, settings.record_logprobs)
        record = self._record if self._record is not None else record_token
        record(st.tokens, st.live_mask, st.logprobs, st.eos, st.done,
               st.mask, st.tok, st.live, st.pos, st.step, drawn, lp_rows, fill, eng.eos_token_id,
               st.prompt_len, advance)

    def _step(self, trunk: nn.Module, st: DecodeState, head: Any, settings: DecodeSettings,
              banned: torch.Tensor | None, generator: torch.Generator | None) -> None:
        """One token: forward the last chosen token, then choose the next one."""
        fwd = self._compiled if self._compiled is not None else self._forward
        # The fed token's key lands at column P + step - 1: P + step keys are then cached.
        uses_kernel = trunk is self._copy and getattr(trunk, "config", None) is not None \
            and trunk.config._attn_implementation == decode_attention.NAME
        kv_len = st.step + st.prompt_len if uses_kernel else None
        hidden = fwd(trunk, st, st.tok, st.mask, st.pos, kv_len)
        self._choose(st, self._logits(hidden, head), settings, banned, generator, advance=True)

    def _state(self, B: int, P: int, T: int, mask_dtype: torch.dtype) -> DecodeState:
        key = (B, P, T)
        st = self.states.get(key)
        if st is None or st.mask.dtype != mask_dtype:
            st = DecodeState.allocate(self.engine.lm.config, B, P, T, self.engine.device, mask_dtype)
            self.states[key] = st
            while len(self.states) > MAX_BUCKETS:
                self.states.popitem(last=False)
        self.states.move_to_end(key)
        return st

    def _prefill(self, trunk: nn.Module, st: DecodeState, ids: torch.Tensor, pmask: torch.Tensor,
                 rows: int, head: Any) -> torch.Tensor:
        fill = self.engine.pad_token_id if self.engine.pad_token_id is not None else 0
        mask4 = st.reset(pmask, rows, fill)
        full_ids = torch.full((st.batch, st.prompt_len), fill, dtype=torch.long, device=ids.device)
        full_ids[:rows] = ids
        pm = torch.zeros_like(full_ids)
        pm[:rows] = pmask
        hidden = self._forward(trunk, st, full_ids, mask4, positions(pm))
        return self._logits(hidden, head)

    def _capture(self, trunk: nn.Module, st: DecodeState, head: Any, settings: DecodeSettings,
                 banned: torch.Tensor | None, generator: torch.Generator | None) -> None:
        """Capture one decode step of ``st`` (warm-up steps first, on a side stream, with a
        throw-away generator so ``generator``'s stream is not consumed)."""
        if self.compile and self._compiled is None and self.compile_error is None:
            self._compiled = torch.compile(self._forward, dynamic=False, mode=self.compile_mode)
            self._pick = torch.compile(pick_tokens, dynamic=False)
            self._record = torch.compile(record_token, dynamic=False)
        dummy = torch.Generator(device=self.engine.device).manual_seed(0)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(WARMUP_STEPS):
                try:
                    self._step(trunk, st, head, settings, banned, dummy)
                except Exception as err:  # compile failed: decode eagerly inside the graph
                    if self._compiled is None:
                        raise
                    self.compile_error = f"{type(err).__name__}: {err}"[:300]
                    self._compiled = self._pick = self._record = None
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        if generator is not None:
            graph.register_generator_state(generator)
        with torch.cuda.graph(graph):
            self._step(trunk, st, head, settings, banned, generator)
        st.graph = graph

    @torch.no_grad()
    def decode(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, max_new_tokens: int,
               settings: DecodeSettings, generator: torch.Generator | None = None,
               on_columns: ColumnsCallback | None = None) -> Generation:
        """:meth:`RolloutEngine.decode` with a static cache (and CUDA graphs on CUDA).

        ``on_columns(tokens, mask, start)``: see :meth:`RolloutEngine.decode`. Called at the
        exit checks with the columns final there (int64 arrays, one row per prompt), after
        the next chunk of steps is queued on the GPU, so the call runs while it decodes.
        """
        t0 = time.perf_counter()
        eng, dev = self.engine, self.engine.device
        if generator is not None and not _same_device(generator.device, dev):  # a graph would crash on it
            raise ValueError(f"decode: the generator is on {generator.device}, the decode on {dev}; "
                             f"pass torch.Generator(device={str(dev)!r})")
        ids = prompt_ids.to(dev, torch.long)
        pmask = prompt_mask.to(dev, torch.long)
        rows, P0 = ids.shape
        T = int(max_new_tokens)
        B, P = bucket_shape(rows, P0, self.graphs)
        if P > P0:  # left-pad to the bucket's columns
            pad = P - P0
            ids = torch.cat([torch.full((rows, pad), eng.pad_token_id or 0, dtype=torch.long, device=dev), ids], 1)
            pmask = torch.cat([torch.zeros((rows, pad), dtype=torch.long, device=dev), pmask], 1)
        autocast_on = torch.is_autocast_enabled(dev.type)
        amp = torch.get_autocast_dtype(dev.type) if autocast_on else None
        copy_dtype = amp if (self.graphs and amp is not None) else None
        trunk = self._trunk(copy_dtype)
        self.head_dtype = torch.float32 if settings.head_float32 or copy_dtype is None else copy_dtype
        compute = copy_dtype or amp or next(trunk.parameters()).dtype
        head = self._head_weights()
        banned_list = eng.banned_ids(settings)
        banned = torch.as_tensor(banned_list, dtype=torch.long, device=dev) if banned_list else None
        st = self._state(B, P, T, compute)
        ctx = full_precision(dev) if copy_dtype is not None else _nullcontext()
        with ctx:
            key = (rows, settings.temperature, settings.top_k, settings.record_logprobs, banned_list,
                   id(generator), id(trunk))
            if self.graphs and T > WARMUP_STEPS + 1 and (st.graph is None or st.graph_key != key):
                try:
                    self._prefill(trunk, st, ids, pmask, rows, head)
                    self._capture(trunk, st, head, settings, banned, generator)
                except Exception as err:  # noqa: BLE001 - compiled capture failed: capture eagerly
                    if self._compiled is None:
                        raise
                    self.compile_error = f"{type(err).__name__}: {err}"[:300]
                    self._compiled = self._pick = self._record = None
                    torch.cuda.synchronize()
                    self._prefill(trunk, st, ids, pmask, rows, head)
                    self._capture(trunk, st, head, settings, banned, generator)
                st.graph_key = key
            logits = self._prefill(trunk, st, ids, pmask, rows, head)
            self._choose(st, logits, settings, banned, generator)
            every = max(settings.exit_check_every, MIN_EXIT_CHECK) if self.graphs else settings.exit_check_every
            steps, handed, pending = 1, 0, None
            while steps < T:
                if steps % every == 0:
                    if on_columns is not None and pending is not None:  # the next chunk is queued: hand these over
                        handed = _hand_over(pending, handed, on_columns)
                        pending = None
                    if bool(st.done[:rows].all()):
                        break
                    if on_columns is not None:
                        pending = _columns_to_host(st, rows, handed, steps)
                if st.graph is not None and st.graph_key == key:
                    st.graph.replay()
                else:
                    self._step(trunk, st, head, settings, banned, generator)
                steps += 1
            if on_columns is not None and pending is not None:
                _hand_over(pending, handed, on_columns)
        live_mask = st.live_mask[:rows, :steps]
        width = max(int(live_mask.sum(1).max()), 1) if rows else 1
        return Generation(tokens=st.tokens[:rows, :width].clone(), mask=live_mask[:, :width].clone(),
                          eos=st.eos[:rows].clone(),
                          logprobs=st.logprobs[:rows, :width].clone() if settings.record_logprobs else None,
                          seconds=time.perf_counter() - t0)


def _same_device(a: torch.device, b: torch.device) -> bool:
    """Same device type, and the same index where both name one (``cuda`` means the current)."""
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def _columns_to_host(st: DecodeState, rows: int, start: int, stop: int) -> tuple[torch.Tensor, Any]:
    """Queue the copy of columns ``start:stop`` (tokens and live mask, stacked) to pinned host
    memory; returns the host tensor and the event that marks the copy done (None on the CPU)."""
    cols = torch.stack((st.tokens[:rows, start:stop], st.live_mask[:rows, start:stop]))
    if cols.device.type != "cuda":
        return cols.cpu(), None
    host = torch.empty(cols.shape, dtype=cols.dtype, pin_memory=True)
    host.copy_(cols, non_blocking=True)  # on the current stream of the cache's device
    event = torch.cuda.Event()
    event.record(torch.cuda.current_stream(cols.device))
    return host, event


def _hand_over(pending: tuple[torch.Tensor, Any], start: int, on_columns: ColumnsCallback) -> int:
    """Wait for a queued column copy and hand it to ``on_columns``; returns the next column."""
    host, event = pending
    if event is not None:
        event.synchronize()
    cols = host.numpy()
    if cols.shape[-1]:
        on_columns(cols[0], cols[1], start)
    return start + cols.shape[-1]


def record_token(tokens: torch.Tensor, live_mask: torch.Tensor, logprobs: torch.Tensor,
                 eos: torch.Tensor, done: torch.Tensor, mask: torch.Tensor, tok: torch.Tensor,
                 live: torch.Tensor, pos: torch.Tensor, step: torch.Tensor, drawn: torch.Tensor,
                 lp_rows: torch.Tensor | None, fill: int, eos_id: int | None, prompt_len: int,
                 advance: bool) -> None:
    """Record the tokens ``drawn`` for the first ``len(drawn)`` rows at column ``step`` of a
    decode's state, all in place: rows already done get ``fill``, a live mask of 0 and a
    log-prob of 0; EOS ends a row; the new column of the additive attention mask opens for
    live rows; ``tok``/``live`` become the next step's input; ``step`` moves on. With
    ``advance`` each row live before this token first moves its position on by one (the fed
    token took a position). A pure function of tensors, so the graph path compiles it
    (a handful of kernels instead of some two dozen tiny ones per token)."""
    rows, batch = drawn.shape[0], done.shape[0]
    if advance:
        pos.add_(live[:, None])
    action = torch.full((batch,), fill, dtype=torch.long, device=drawn.device)
    action[:rows] = drawn
    alive = ~done
    action = torch.where(alive, action, torch.full_like(action, fill))
    tokens.index_copy_(1, step, action[:, None])
    live_mask.index_copy_(1, step, alive.long()[:, None])
    if lp_rows is not None:
        lp = torch.zeros((batch, 1), device=drawn.device)
        lp[:rows] = lp_rows
        logprobs.index_copy_(1, step, lp * alive[:, None])
    if eos_id is not None:
        ended = alive & (action == eos_id)
        eos |= ended
        done |= ended
    col = torch.zeros_like(alive, dtype=mask.dtype).masked_fill_(~alive, torch.finfo(mask.dtype).min)
    mask.index_copy_(3, step + prompt_len, col[:, None, None, None])
    tok.copy_(action[:, None])
    live.copy_(alive.long())
    step.add_(1)


def pick_tokens(logits: torch.Tensor, noise: torch.Tensor | None, temperature: float,
                vocab_size: int | None, banned: torch.Tensor | None, top_k: int,
                record_logprobs: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The next token of each row from (rows, V_model) float32 logits and pre-drawn
    Exp(1) ``noise`` (None when greedy), and its (rows, 1) log-prob when ``record_logprobs``:
    :func:`policy_logits` then :func:`sample_tokens`, as the dynamic loop chooses. A pure
    function of tensors, so the graph path compiles it (inductor fuses the passes over the
    vocabulary into a few kernels). bf16 logits are upcast first."""
    scores = policy_logits(logits.float(), temperature, vocab_size, () if banned is None else banned)
    drawn = sample_tokens(scores, temperature, top_k, noise=noise)
    lp = torch.log_softmax(scores, -1).gather(-1, drawn[:, None]) if record_logprobs else None
    return drawn, lp


class GeluConv1D(nn.Module):
    """GPT-2's ``Conv1D`` (``x @ weight + bias``, weight (in, out)) followed by the tanh GELU,
    as one ``torch._addmm_activation`` call: on CUDA one cuBLASLt matmul whose epilogue adds
    the bias and applies the GELU, where inductor would otherwise run the matmul and a fused
    bias-GELU kernel after it. It holds the Conv1D's own parameters (no copy)."""

    def __init__(self, conv: nn.Module) -> None:
        super().__init__()
        self.nf = conv.nf
        self.weight = conv.weight
        self.bias = conv.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch._addmm_activation(self.bias, x.reshape(-1, x.shape[-1]), self.weight, use_gelu=True)
        return out.view(*x.shape[:-1], self.nf)


_TANH_GELUS = ("NewGELUActivation", "GELUTanh", "FastGELUActivation", "PytorchGELUTanh")


def fuse_gelu_linears(trunk: nn.Module) -> int:
    """Fold the GELU of every GPT-2-style MLP (``c_fc`` a ``Conv1D``, ``act`` a tanh GELU) of a
    CUDA decode copy into its ``c_fc`` (:class:`GeluConv1D`); returns how many were folded.
    CUDA only: there ``_addmm_activation``'s GELU is the tanh form (on the CPU it is the erf
    form, so CPU copies are left as they are). The parameters and their order stay, so the
    copy's in-place refresh from the LM still lines up."""
    count = 0
    for module in list(trunk.modules()):
        fc, act = getattr(module, "c_fc", None), getattr(module, "act", None)
        if fc is None or act is None or type(fc).__name__ != "Conv1D" or type(act).__name__ not in _TANH_GELUS:
            continue
        if not fc.weight.is_cuda or fc.bias is None:
            continue
        module.c_fc = GeluConv1D(fc)
        module.act = nn.Identity()
        count += 1
    return count


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
