"""rlseek's one text-generation engine: KV-cached batched decoding, alone or through a text env.

Everything in rlseek that makes a causal LM write text goes through :class:`RolloutEngine`:
lm-ppo's rollouts, the text evaluator (:mod:`rlseek.envs.text.evaluation`), preference
synthesis (:mod:`rlseek.reward_models.synth`) and the benchmarks. One decode loop, two entry
points:

* :meth:`RolloutEngine.decode` — prompts in, completions out (token ids and masks): one
  prefill forward over the left-padded prompts, then one single-token forward per new token
  that reuses the key/value cache, O(T) token forwards for T new tokens instead of the O(T²)
  of re-running the whole prefix. A row ends at EOS or after ``max_new_tokens``; after that
  it is fed the pad token with attention mask 0.
* :meth:`RolloutEngine.rollout` — one episode of a text vector env
  (:class:`rlseek.envs.text.vector.TextVectorEnv`): the env's reset gives the prompts, the
  decode loop writes the completions, and the tokens are then stepped through the env, which
  appends them, checks where each row ended and scores the finished batch with its
  WeightedReward. The env stays the judge of the episode; the engine checks that the two
  agree on every row's end.

What the policy samples from (:func:`policy_logits`), for sampling and for every log-prob and
entropy that PPO computes from it:

* the LM head, the log-softmax and sampling run in float32, outside any autocast region
  (bf16 logits differ between a cached and a teacher-forced pass by a sizeable fraction of
  PPO's clip range);
* logits are cut to the tokenizer's vocabulary (real models pad their embedding matrix
  beyond it: Qwen2.5 has 151,936 rows for 151,665 tokens), so no id outside it is sampled;
* the pad id is never sampled (it marks "this row has ended");
* the temperature divides the logits (0 = greedy).

The loop keeps its state on the model's device: sampling uses a ``torch.Generator`` there,
the new tokens go into a pre-allocated ``(B, max_new_tokens)`` tensor and the attention mask
into a pre-allocated ``(B, P + max_new_tokens)`` one, so nothing is copied to the host per
token; "have all rows ended?" is asked every ``DecodeSettings.exit_check_every`` tokens (the
only host sync of the loop). On CUDA, ``DecodeSettings.cache`` ``"static"`` (the default
there, through ``"auto"``) runs the same loop with a pre-allocated static cache and the
decode step captured in a CUDA graph per shape bucket (:mod:`rlseek.envs.text.static_decode`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CACHE_CHOICES = ("dynamic", "static", "auto")
"""Values of ``DecodeSettings.cache`` (and of the agents' ``decode_cache``)."""

ColumnsCallback = Callable[[np.ndarray, np.ndarray, int], None]
"""``on_columns(tokens, mask, start)``: generated token ids and live mask (both (rows, n)
int64) of columns ``start .. start + n`` of a decode, final when handed over."""

MASKED_LOGIT = -1e9
"""Logit given to ids that must never be sampled (pad, or EOS when suppressed). Finite on
purpose: softmax gives them exactly 0 while log-probs and entropies stay finite (−inf would
turn 0·log 0 into NaN)."""


def _cache_kwarg() -> str:
    """The keyword under which this transformers version passes the KV cache (``cache``
    since 5.x, ``past_key_values`` before)."""
    from transformers.modeling_outputs import BaseModelOutputWithPast

    return "cache" if "cache" in BaseModelOutputWithPast.__dataclass_fields__ else "past_key_values"


CACHE_KWARG = _cache_kwarg()


# -- what the policy samples from ------------------------------------------------------------
def tempered_logits(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Logits divided by the sampling temperature, in float32 (temperature 0 counts as 1:
    greedy decoding is the argmax of the untempered logits)."""
    logits = logits.float()
    return logits / temperature if temperature not in (0.0, 1.0) else logits


def policy_logits(logits: torch.Tensor, temperature: float, vocab_size: int | None = None,
                  banned_ids: Sequence[int] | torch.Tensor = ()) -> torch.Tensor:
    """The logits of the distribution the policy samples from, (..., V_model) -> (..., V).

    float32, cut to the first ``vocab_size`` ids (None: keep all), divided by
    ``temperature``, and :data:`MASKED_LOGIT` at ``banned_ids`` (the pad id; a list, or a
    long tensor already on the logits' device). Sampling, the rollout's log-probs and PPO's
    teacher-forced log-probs and entropies all use this.
    """
    if vocab_size is not None and logits.shape[-1] > vocab_size:
        logits = logits[..., :vocab_size]
    logits = tempered_logits(logits, temperature)
    if isinstance(banned_ids, torch.Tensor):  # pre-built on the device (a CUDA-graph step)
        return logits.index_fill(-1, banned_ids, MASKED_LOGIT) if banned_ids.numel() else logits
    if banned_ids:
        idx = torch.as_tensor(list(banned_ids), device=logits.device)
        logits = logits.index_fill(-1, idx, MASKED_LOGIT)
    return logits


def sample_tokens(logits: torch.Tensor, temperature: float, top_k: int = 0,
                  generator: torch.Generator | None = None,
                  rows: tuple[int, int] | None = None,
                  noise: torch.Tensor | None = None) -> torch.Tensor:
    """One token per row from (B, V) :func:`policy_logits` (already tempered): argmax when
    ``temperature`` is 0, else a draw from softmax, among the ``top_k`` most likely (0: all).

    The draw is the exponential race ``argmax(p / q)``, q ~ Exp(1) from ``generator`` — the
    algorithm ``torch.multinomial(p, 1)`` runs, so it returns the same ids for the same
    generator state, without multinomial's host-side validity checks (two syncs per token
    on a GPU, and not allowed inside a CUDA graph).

    ``rows`` = (first, total) makes these B rows rows ``first .. first + B`` of a batch of
    ``total`` (one rank's share of a distributed batch): q is drawn for all ``total`` rows and
    the share's rows kept, so every row gets the token it would get in one process holding
    the whole batch (same generator state). It costs ``total × V`` random numbers per token
    on every rank.

    ``noise`` is q already drawn, (B, V) float32 (:func:`exponential_noise`): the CUDA-graph
    decode draws it outside its compiled region (inductor does not take a generator) and
    then samples inside it; the ids are those of drawing here.
    """
    if temperature <= 0.0:
        return logits.argmax(-1)
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = F.softmax(logits, dim=-1)
    if noise is not None:
        return (probs / noise).argmax(-1)
    if rows is not None:
        first, total = rows
        q = torch.empty((total, probs.shape[-1]), dtype=probs.dtype, device=probs.device)
        q = q.exponential_(1, generator=generator)[first:first + probs.shape[0]]
        return (probs / q).argmax(-1)
    return (probs / exponential_noise(probs.shape, probs.device, generator)).argmax(-1)


def exponential_noise(shape: tuple[int, ...] | torch.Size, device: torch.device,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """q ~ Exp(1), float32, of ``shape``: the draw :func:`sample_tokens` makes (the same
    numbers for the same generator state)."""
    return torch.empty(shape, dtype=torch.float32, device=device).exponential_(1, generator=generator)


@contextlib.contextmanager
def full_precision(device: torch.device) -> Iterator[None]:
    """Leave any autocast region: what runs inside computes in the dtype of its inputs."""
    with torch.autocast(device.type, enabled=False):
        yield


def lm_trunk(lm: nn.Module) -> nn.Module:
    """The transformer body of a causal LM (peft-wrapped or not): hidden states, no LM head."""
    return lm.get_decoder()


def lm_head_float32(lm: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """Logits of ``hidden`` through ``lm``'s output layer in float32, outside autocast.

    The output layer's weights are float32 (autocast keeps weights as they are), so this is a
    full-precision matmul whatever dtype the trunk computed in. A model's final logit
    soft-capping (Gemma 2's ``final_logit_softcapping``) is applied as its own head does.
    """
    head = lm.get_output_embeddings()
    weight = getattr(head, "weight", None)
    # A dynamically quantized int8 head exposes weight() as a method and takes float32 input.
    dtype = weight.dtype if isinstance(weight, torch.Tensor) else torch.float32
    with full_precision(hidden.device):
        logits = head(hidden.to(dtype)).float()
        cap = getattr(getattr(lm, "config", None), "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
    return logits


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that count only attended tokens, so left padding does not shift them."""
    return (mask.long().cumsum(-1) - 1).clamp_min(0)


# -- settings and results --------------------------------------------------------------------
@dataclass(frozen=True)
class DecodeSettings:
    """How the engine decodes (every field has the meaning named; none changes the model).

    ``cache`` and ``compile`` select the decode loop's implementation (the same tokens
    either way); ``"auto"`` leaves the CPU on the eager dynamic-cache loop.
    """

    temperature: float = 1.0
    """Sampling temperature; 0 = greedy (argmax)."""
    top_k: int = 0
    """Sample among the k most likely tokens (0: the full distribution)."""
    suppress_eos: bool = False
    """Never emit EOS: every row runs to ``max_new_tokens`` (benchmarks)."""
    record_logprobs: bool = False
    """Keep the cached forward's log-probs of the chosen tokens (a diagnostic: PPO recomputes
    them with a teacher-forced pass)."""
    exit_check_every: int = 1
    """Ask "have all rows ended?" every this many tokens (a host sync on a GPU); rows that
    ended only receive pad tokens meanwhile, so the result does not depend on it. The
    static path asks every 16 tokens at least."""
    cache: str = "auto"
    """Decode-step implementation: ``"dynamic"`` (transformers' growing cache, eager
    forwards: the CPU path), ``"static"`` (:mod:`rlseek.envs.text.static_decode`: a
    pre-allocated cache, and on CUDA the step captured in a CUDA graph), or ``"auto"``
    (static on CUDA, dynamic elsewhere)."""
    compile: bool | str = "auto"
    """Static path only: ``torch.compile`` the trunk's decode forward before capturing it
    (True / False; ``"auto"``: on CUDA). A failed compilation falls back to the eager
    forward (``StaticDecoder.compile_error`` says why)."""
    head_float32: bool = False
    """Static path on CUDA under bf16/fp16 autocast: keep the LM head in float32 (the
    teacher-forced pass's precision) instead of the decode copy's dtype. The default runs it
    in bf16 with float32 output (as the trunk already runs; with SDPA attention on an H100 it
    took the whole decode from 64,763 to 71,418 tokens/s at batch 64, README "GPU speed"),
    and the rollout's distribution differs from the float32 head's only by bf16
    rounding of the logits — PPO's ratios use the teacher-forced log-probs either way."""
    noise_rows: tuple[int, int] | None = None
    """(first, total): the decoded rows are rows ``first ..`` of a global batch of ``total``
    split across ranks; sampling then draws as for the whole batch (see :func:`sample_tokens`),
    so the tokens do not depend on the world size. The dynamic-cache loop honours it; the
    static (CUDA-graph) loop does not yet, so distributed GPU rollouts draw per rank."""

    def __post_init__(self) -> None:
        for name, low in (("temperature", 0), ("top_k", 0), ("exit_check_every", 1)):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)}")
        if self.cache not in CACHE_CHOICES:
            raise ValueError(f"cache must be one of {', '.join(map(repr, CACHE_CHOICES))}, got {self.cache!r}")
        if self.compile not in (True, False, "auto"):
            raise ValueError(f"compile must be true, false or 'auto', got {self.compile!r}")

    def resolved(self, device: torch.device) -> tuple[str, bool]:
        """(cache, compile) on ``device``: ``"auto"`` means static + compile on CUDA only."""
        cuda = device.type == "cuda"
        cache = ("static" if cuda else "dynamic") if self.cache == "auto" else self.cache
        comp = cuda if self.compile == "auto" else bool(self.compile)
        return cache, comp and cache == "static"


@dataclass
class Generation:
    """Completions of one batch of prompts, right-padded to the longest one.

    ``mask`` is 1 on every generated token of a row (its EOS included) and 0 on the pad
    tokens after the row ended; ``eos`` says which rows ended with EOS.
    """

    tokens: torch.Tensor
    mask: torch.Tensor
    eos: torch.Tensor
    logprobs: torch.Tensor | None = None
    seconds: float = 0.0

    def rows(self) -> list[list[int]]:
        """Each row's generated ids (EOS included, padding dropped)."""
        lengths = self.mask.sum(1).tolist()
        return [row[: int(n)] for row, n in zip(self.tokens.tolist(), lengths)]


@dataclass
class Rollout:
    """One episode of a text vector env: prompts, completions and the env's scores.

    ``response_mask`` is 1.0 on every token the env appended for the row (EOS included)
    and 0.0 on the padding after the row ended. ``scores`` is each row's episode return
    from the env (the WeightedReward total; it arrives when the batch is scored).
    """

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    response_ids: torch.Tensor
    response_mask: torch.Tensor
    scores: np.ndarray
    eos: np.ndarray
    terms: dict[str, np.ndarray]
    completions: list[str]
    completion_ids: list[list[int]]
    prompts: list[str]
    answers: list[Any]
    success: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds: ``generate`` (wall time of the decode call, the env stepping done inside it
    included), ``env`` (host time in the env's reset and steps), ``env_overlapped`` (the part
    of ``env`` done inside the decode call, so counted in ``generate`` too: on CUDA it runs
    while the GPU decodes the next chunk of tokens; on the CPU it is only interleaved)."""
    logprobs: torch.Tensor | None = None
    """(B, T) tempered log-probs of the chosen tokens from the cached forward, only with
    ``record_logprobs=True``."""

    def __len__(self) -> int:
        return int(self.prompt_ids.shape[0])

    @property
    def lengths(self) -> np.ndarray:
        """Generated tokens per completion (EOS included)."""
        return self.response_mask.sum(1).cpu().numpy()

    @property
    def n_tokens(self) -> int:
        return int(self.response_mask.sum().item())


# -- the engine ------------------------------------------------------------------------------
class RolloutEngine:
    """KV-cached batched decoding with ``lm`` (see the module docstring).

    Args:
        lm: a transformers causal LM, peft-wrapped or not; its dropout should be off.
        vocab_size: the tokenizer's vocabulary; ids at or above it are never sampled
            (None: every row of the LM head may be sampled).
        pad_token_id: fills rows that ended; never sampled (None: rows are filled with 0).
        eos_token_id: ends a row (None: rows end only at ``max_new_tokens``).
        device: where the prompts go (default: the LM's device).
    """

    def __init__(self, lm: nn.Module, *, vocab_size: int | None, pad_token_id: int | None,
                 eos_token_id: int | None, device: torch.device | str | None = None) -> None:
        self.lm = lm
        self.vocab_size = None if vocab_size is None else int(vocab_size)
        self.pad_token_id = None if pad_token_id is None else int(pad_token_id)
        self.eos_token_id = None if eos_token_id is None else int(eos_token_id)
        self.device = torch.device(device) if device is not None else next(lm.parameters()).device
        self._static: dict[bool, Any] = {}

    @classmethod
    def for_env(cls, lm: nn.Module, env: Any, device: torch.device | str | None = None) -> RolloutEngine:
        """An engine that decodes as ``env`` (a text vector env) ends and pads its rows."""
        space = getattr(env, "single_action_space", None)
        return cls(lm, vocab_size=getattr(space, "n", None),
                   pad_token_id=getattr(env, "pad_token_id", None),
                   eos_token_id=getattr(env, "eos_token_id", None), device=device)

    @classmethod
    def for_tokenizer(cls, lm: nn.Module, tokenizer: Any,
                      device: torch.device | str | None = None) -> RolloutEngine:
        """An engine for ``tokenizer``'s vocabulary, pad and EOS ids."""
        return cls(lm, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                   eos_token_id=tokenizer.eos_token_id, device=device)

    def banned_ids(self, settings: DecodeSettings) -> tuple[int, ...]:
        """Ids never sampled under ``settings``: the pad id, and EOS when suppressed."""
        banned = [] if self.pad_token_id is None else [self.pad_token_id]
        if settings.suppress_eos and self.eos_token_id is not None:
            banned.append(self.eos_token_id)
        return tuple(banned)

    def static_decoder(self, compile: bool) -> Any:
        """The engine's :class:`~rlseek.envs.text.static_decode.StaticDecoder` (one per
        ``compile`` value, kept: it holds the caches and CUDA graphs)."""
        if compile not in self._static:
            from rlseek.envs.text.static_decode import StaticDecoder

            self._static[compile] = StaticDecoder(self, graphs=self.device.type == "cuda", compile=compile)
        return self._static[compile]

    def _step(self, ids: torch.Tensor, attn: torch.Tensor, pos: torch.Tensor,
              cache: Any) -> tuple[torch.Tensor, Any]:
        """One trunk forward (prefill when ``cache`` is None): float32 logits of the last
        position, (B, V_model), and the cache to pass next time."""
        kwargs = {} if cache is None else {CACHE_KWARG: cache}
        out = lm_trunk(self.lm)(input_ids=ids, attention_mask=attn, position_ids=pos,
                                use_cache=True, **kwargs)
        logits = lm_head_float32(self.lm, out.last_hidden_state[:, -1:])[:, -1]
        return logits, getattr(out, CACHE_KWARG)

    @torch.no_grad()
    def decode(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, max_new_tokens: int,
               settings: DecodeSettings = DecodeSettings(),
               generator: torch.Generator | None = None,
               on_columns: ColumnsCallback | None = None) -> Generation:
        """Complete left-padded prompts (B, P): at most ``max_new_tokens`` tokens per row.

        ``generator`` (on the engine's device) makes sampling reproducible; None uses
        torch's global RNG. Returns a :class:`Generation` trimmed to the longest row.
        ``settings.cache`` picks the loop: this one (dynamic) or the static-cache / CUDA-graph
        one of :mod:`rlseek.envs.text.static_decode`; both give the same tokens.

        ``on_columns(tokens, mask, start)``, if given, may be called during the decode with
        consecutive ranges of final columns (token ids and live mask as (B, n) int64 arrays,
        columns ``start .. start + n``, beginning at 0) — the static loop does so at its exit
        checks, while the GPU decodes the next chunk. Ranges may run past the returned
        Generation's width (columns where no row is live); columns not handed over by the
        time ``decode`` returns are the caller's to read from the Generation.
        """
        cache, comp = settings.resolved(self.device)
        if cache == "static":
            return self.static_decoder(comp).decode(prompt_ids, prompt_mask, max_new_tokens,
                                                    settings, generator, on_columns)
        t0 = time.perf_counter()
        dev = self.device
        ids = prompt_ids.to(dev, torch.long)
        pmask = prompt_mask.to(dev, torch.long)
        B, P = ids.shape
        T = int(max_new_tokens)
        fill = self.pad_token_id if self.pad_token_id is not None else 0
        banned = self.banned_ids(settings)
        tokens = torch.full((B, T), fill, dtype=torch.long, device=dev)
        live_mask = torch.zeros((B, T), dtype=torch.long, device=dev)
        attn = torch.zeros((B, P + T), dtype=torch.long, device=dev)
        attn[:, :P] = pmask
        done = torch.zeros(B, dtype=torch.bool, device=dev)
        eos = torch.zeros(B, dtype=torch.bool, device=dev)
        logprobs = torch.zeros((B, T), device=dev) if settings.record_logprobs else None
        next_pos = pmask.sum(1, keepdim=True)
        logits, cache = self._step(ids, pmask, positions(pmask), None)
        steps = T
        for t in range(T):
            scores = policy_logits(logits, settings.temperature, self.vocab_size, banned)
            action = sample_tokens(scores, settings.temperature, settings.top_k, generator,
                                   rows=settings.noise_rows)
            live = ~done
            action = torch.where(live, action, torch.full_like(action, fill))
            tokens[:, t] = action
            live_mask[:, t] = live.long()
            if logprobs is not None:
                lp = torch.log_softmax(scores, -1).gather(-1, action[:, None]).squeeze(-1)
                logprobs[:, t] = lp * live
            if self.eos_token_id is not None:
                ended = live & (action == self.eos_token_id)
                eos |= ended
                done |= ended
            if t + 1 == T or ((t + 1) % settings.exit_check_every == 0 and bool(done.all())):
                steps = t + 1
                break
            attn[:, P + t] = live.long()
            logits, cache = self._step(action[:, None], attn[:, : P + t + 1], next_pos, cache)
            next_pos = next_pos + live.long()[:, None]
        width = max(int(live_mask[:, :steps].sum(1).max()), 1) if B else 1
        return Generation(tokens=tokens[:, :width], mask=live_mask[:, :width], eos=eos,
                          logprobs=None if logprobs is None else logprobs[:, :width],
                          seconds=time.perf_counter() - t0)

    def rollout(self, env: Any, settings: DecodeSettings = DecodeSettings(), *,
                generator: torch.Generator | None = None, seed: int | None = None,
                options: dict[str, Any] | None = None) -> Rollout:
        """Run one episode of ``env`` (a text vector env) with this engine choosing the tokens.

        ``seed`` and ``options`` go to ``env.reset`` (``options={"prompts", "answers"}``
        scores given prompts). Raises ``RuntimeError`` if the env ends a row where the
        engine did not (an env whose EOS, pad or length budget differ from the engine's).
        """
        t0 = time.perf_counter()
        obs, info = env.reset(seed=seed, options=options)
        prompts = list(info.get("prompts", []))
        answers = list(info.get("answers", [None] * len(prompts)))
        prompt_ids = torch.as_tensor(obs["input_ids"], dtype=torch.long, device=self.device)
        prompt_mask = torch.as_tensor(obs["attention_mask"], dtype=torch.long, device=self.device)
        B = prompt_ids.shape[0]
        stepper = _EnvStepper(env, B)
        t_reset = time.perf_counter() - t0

        # The static loop hands over finished columns while it decodes the next ones: the env
        # is stepped through them then, and whatever is left after the decode returns here.
        gen = self.decode(prompt_ids, prompt_mask, int(env.max_new_tokens), settings, generator,
                          on_columns=stepper)
        overlapped = stepper.seconds
        start = stepper.next_column
        if start < gen.tokens.shape[1]:
            stepper(gen.tokens[:, start:].cpu().numpy(), gen.mask[:, start:].cpu().numpy(), start)
        stepper.finish()
        returns, final = stepper.returns, stepper.final

        response_mask = gen.mask.float()
        terms = {key[len("reward_"):]: np.asarray(val, dtype=np.float64)
                 for key, val in final.items() if key.startswith("reward_") and key != "reward_total"}
        eos = np.asarray(final.get("eos", np.zeros(B)), dtype=bool)
        success = np.asarray(final["is_success"], dtype=np.float64) if "is_success" in final else None
        completions = [str(c) for c in final.get("completions", [""] * B)]
        given = final.get("completion_ids")  # the env's, else the engine's (already lists of ints)
        completion_ids = [list(map(int, x)) for x in given] if given is not None else gen.rows()
        return Rollout(
            prompt_ids=prompt_ids, prompt_mask=prompt_mask, response_ids=gen.tokens,
            response_mask=response_mask, scores=returns, eos=eos, terms=terms,
            completions=completions, completion_ids=completion_ids, prompts=prompts,
            answers=answers, success=success,
            timings={"generate": gen.seconds, "env": t_reset + stepper.seconds,
                     "env_overlapped": overlapped},
            logprobs=gen.logprobs,
        )


class _EnvStepper:
    """Steps a text vector env through decoded columns, in order, as they arrive: sums each
    row's rewards, collects the end-of-episode info and checks that the env ends rows where
    the engine did. ``seconds``: host time spent stepping."""

    def __init__(self, env: Any, batch: int) -> None:
        self.env, self.batch = env, batch
        self.returns = np.zeros(batch, dtype=np.float64)
        self.done = np.zeros(batch, dtype=bool)
        self.final: dict[str, Any] = {}
        self.next_column = 0
        self.seconds = 0.0

    def __call__(self, tokens: np.ndarray, mask: np.ndarray, start: int) -> None:
        if start != self.next_column:
            raise RuntimeError(f"columns handed over out of order: got {start}, expected {self.next_column}")
        t0 = time.perf_counter()
        B = self.batch
        for j in range(tokens.shape[1]):
            want = mask[:, j]
            if not want.any():  # every row has ended: the columns from here on are padding
                break
            t = start + j
            obs, reward, terminated, truncated, info = self.env.step(tokens[:, j])
            self.returns += np.asarray(reward, dtype=np.float64)
            if not np.array_equal(np.asarray(obs["attention_mask"]).reshape(B), want):
                raise RuntimeError("the env and the rollout engine disagree on which rows are "
                                   f"live at token {t}; their EOS, pad or max_new_tokens differ")
            self.done |= np.asarray(terminated) | np.asarray(truncated)
            if info:
                _merge_final_info(self.final, info)
        self.next_column = start + tokens.shape[1]
        self.seconds += time.perf_counter() - t0

    def finish(self) -> None:
        """Raise if the env has not ended every row once every column was stepped."""
        if not self.done.all():
            raise RuntimeError("the rollout engine ended every row but the env did not; their "
                               "EOS or max_new_tokens differ")


def _merge_final_info(final: dict[str, Any], info: dict[str, Any]) -> None:
    """Collect per-row end-of-episode info (arrays or lists of length B).

    rlseek's text vector env reports every row's final values in one step; a Gymnasium-style
    env that reports rows as they finish marks them with a boolean ``_key`` array, honoured
    here so both kinds work.
    """
    for key, value in info.items():
        if key.startswith("_"):
            continue
        rows = info.get(f"_{key}")
        if rows is None:
            final[key] = value
        elif isinstance(value, np.ndarray) and value.ndim >= 1:
            if key not in final:
                final[key] = np.zeros(value.shape, dtype=value.dtype)
            final[key][rows] = value[rows]
        elif isinstance(value, list):
            slot = final.setdefault(key, [None] * len(value))
            for i in np.flatnonzero(rows):
                slot[i] = value[i]
