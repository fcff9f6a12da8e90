"""The decode copy's attention function: the single-query kernel where it serves (CUDA), and
transformers' SDPA function, unchanged, everywhere else (CPU, prefill, shapes it refuses)."""

from __future__ import annotations

import os

import pytest
import torch
from decode_fixtures import same_tokens, switched_graph_decodes
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from rlseek.envs.text import decode_attention as da
from rlseek.envs.text.decode_state import additive_mask
from rlseek.envs.text.rollout import DecodeSettings, RolloutEngine
from rlseek.models.loader import load_causal_lm

cuda = pytest.mark.skipif(not da.available(), reason="the kernel needs CUDA and Triton")


class _Module(torch.nn.Module):
    """What transformers' attention functions read off the attention module."""

    is_causal = True

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.num_key_value_groups = groups


def _inputs(B: int, H: int, Hkv: int, L: int, D: int, device: str, dtype: torch.dtype, seed: int = 0):  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, 1, D, generator=g).to(device, dtype)
    k = torch.randn(B, Hkv, L, D, generator=g).to(device, dtype)
    v = torch.randn(B, Hkv, L, D, generator=g).to(device, dtype)
    allowed = torch.rand(B, L, generator=g) > 0.2  # left padding and holes
    allowed[:, 0] = True
    mask = additive_mask(allowed.to(device), dtype)[:, None, None, :]
    return q, k, v, mask


def _reference(q, k, v, mask, n=None):  # type: ignore[no-untyped-def]
    """float64 masked softmax over the first ``n`` keys, (B, 1, H, D) like the kernel."""
    H, Hkv = q.shape[1], k.shape[1]
    k, v = k.double().repeat_interleave(H // Hkv, 1), v.double().repeat_interleave(H // Hkv, 1)
    s = q.double() @ k.transpose(-1, -2) * q.shape[-1] ** -0.5 + mask.double()
    if n is not None:
        s[..., n:] = float("-inf")
    return (torch.softmax(s, -1) @ v).transpose(1, 2)


CONFIGS = {"default": None, "unrolled": (128, 2, True, 0, 1), "split_unrolled": (32, 1, True, 0, 3),
           "split_loop": (16, 1, False, 4, 5)}
"""Launch configs (BLOCK_KEYS, NUM_WARPS, UNROLL, NUM_STAGES, SPLIT) the interpreted tests run;
None: :func:`launch_config`'s."""


def _hand_config(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    config = CONFIGS[name]
    if config is not None:
        for knob, value in zip(("BLOCK_KEYS", "NUM_WARPS", "UNROLL", "NUM_STAGES", "SPLIT"), config):
            monkeypatch.setattr(da, knob, value)


def test_registered_under_its_name() -> None:
    assert da.register() == da.NAME == da.register()  # idempotent
    assert AttentionInterface._global_mapping[da.NAME] is da.attention_forward


def test_cpu_calls_go_to_sdpa_unchanged() -> None:
    q, k, v, mask = _inputs(2, 4, 2, 10, 16, "cpu", torch.float32)
    assert not da.servable(q, k, mask)
    module = _Module(2)
    got, _ = da.attention_forward(module, q, k, v, mask, **{da.KV_LEN: torch.tensor([7])})
    want, _ = sdpa_attention_forward(module, q, k, v, mask)
    assert torch.equal(got, want)
    torch.testing.assert_close(got.double(), _reference(q, k, v, mask), atol=1e-5, rtol=1e-5)


def test_servable_refuses_what_the_kernel_does_not_do() -> None:
    q, k, _, mask = _inputs(2, 4, 2, 10, 16, "cpu", torch.float32)
    # on CPU nothing is served; the shape rules are checked on CUDA copies where there is one
    assert not da.servable(q, k, mask)
    if not da.available():
        return
    qc, kc, mc = q.cuda(), k.cuda(), mask.cuda()
    assert da.servable(qc, kc, mc) and da.servable(qc, kc, None)
    assert not da.servable(torch.cat([qc, qc], 2), kc, mc)  # two queries (prefill)
    assert not da.servable(qc, kc, mc, dropout=0.1)
    assert not da.servable(qc, kc, mc, softcap=30.0)
    assert not da.servable(qc, kc, mc, sliding_window=4)
    assert not da.servable(qc, kc, mc.bool())
    assert not da.servable(qc, kc[:, :1].expand(2, 3, 10, 16).contiguous(), mc)  # 4 heads over 3


@cuda
@pytest.mark.parametrize("B,H,Hkv,L,D", [(3, 4, 4, 200, 64), (5, 8, 2, 33, 48), (64, 12, 12, 192, 64),
                                         (2, 2, 1, 700, 128)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("config", ["default", "unrolled"])
def test_kernel_equals_the_masked_softmax(B: int, H: int, Hkv: int, L: int, D: int, dtype: torch.dtype,
                                          config: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel against a float64 masked softmax (the default config splits every shape
    here: few (row, head) programs), the same output again (the parts merge in a fixed
    order), and through the attention function against transformers' SDPA."""
    _hand_config(monkeypatch, config)
    q, k, v, mask = _inputs(B, H, Hkv, L, D, "cuda", dtype, seed=B + L)
    tol = 2e-5 if dtype == torch.float32 else 2e-2
    full = da.decode_attention(q, k, v, mask, None, D ** -0.5)
    torch.testing.assert_close(full.double(), _reference(q, k, v, mask), atol=tol, rtol=tol)
    n = L // 2 + 1  # only the keys written so far
    part = da.decode_attention(q, k, v, mask, torch.tensor([n], device="cuda"), D ** -0.5)
    torch.testing.assert_close(part.double(), _reference(q, k, v, mask, n), atol=tol, rtol=tol)
    assert torch.equal(da.decode_attention(q, k, v, mask, torch.tensor([n], device="cuda"), D ** -0.5), part)
    # the same through the attention function, against transformers' SDPA
    got, _ = da.attention_forward(_Module(H // Hkv), q, k, v, mask)
    want, _ = sdpa_attention_forward(_Module(H // Hkv), q, k, v, mask)
    torch.testing.assert_close(got.float(), want.float(), atol=tol, rtol=tol)


@cuda
@pytest.mark.parametrize("warps", [1, 2])
def test_split_kernel_gives_the_same_output_every_time(warps: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many parts racing for the merge, appending, 300 times over: every output and cache
    bit-equal to the first (the parts merge in part order whichever finishes last, and a
    partial stored by any lane is seen by the merging part), and close to float64."""
    for knob, value in zip(("BLOCK_KEYS", "NUM_WARPS", "UNROLL", "NUM_STAGES", "SPLIT"), (16, warps, False, 4, 12)):
        monkeypatch.setattr(da, knob, value)
    q, k, v, mask = _inputs(64, 12, 4, 192, 64, "cuda", torch.bfloat16, seed=5)
    g = torch.Generator().manual_seed(6)
    kn = torch.randn(64, 4, 1, 64, generator=g).to("cuda", torch.bfloat16)
    vn = torch.randn(64, 4, 1, 64, generator=g).to("cuda", torch.bfloat16)
    n = torch.tensor([150], device="cuda")
    first_k, first_v = k.clone(), v.clone()
    first = da.decode_attention_append(q, kn, vn, first_k, first_v, mask, n, 64 ** -0.5)
    want_k, want_v = k.clone(), v.clone()
    want_k[:, :, 149], want_v[:, :, 149] = kn[:, :, 0], vn[:, :, 0]
    torch.testing.assert_close(first.double(), _reference(q, want_k, want_v, mask, 150), atol=2e-2, rtol=2e-2)
    for _ in range(300):
        kc, vc = k.clone(), v.clone()
        assert torch.equal(da.decode_attention_append(q, kn, vn, kc, vc, mask, n, 64 ** -0.5), first)
        assert torch.equal(kc, first_k) and torch.equal(vc, first_v)
    assert not bool(da._TICKETS[q.device].any())


@cuda
def test_graph_decode_with_the_kernel_gives_the_sdpa_tokens() -> None:
    """bf16 decode of the tiny LM (head size 48) through the kernel and through SDPA: the
    same first tokens (later ones may part at a bf16 near-tie), same compiled graph path."""
    lm, tok = load_causal_lm("rlseek/tiny-lm")
    outs = switched_graph_decodes(lm.to("cuda"), tok, "attention_kernel", 12, temperature=0.0)
    for kernel, (_, dec) in outs.items():
        used = dec._copy.config._attn_implementation
        assert (used == da.NAME) == kernel, used
    same = same_tokens(outs)
    assert float(same[:, :4].mean()) >= 0.95 and float(same.mean()) >= 0.8


def test_only_gpt2_attention_classes_append_in_the_kernel() -> None:
    """append_in_kernel wraps GPT-2's attention modules (keeping their parameters, in order)
    and leaves a look-alike of another class — same attribute names, another q/k/v layout —
    alone."""
    from transformers import GPT2Config, GPT2Model

    trunk = GPT2Model(GPT2Config(n_layer=3, n_embd=64, n_head=2, vocab_size=100))
    before = [id(p) for p in trunk.parameters()]
    assert da.append_in_kernel(trunk) == 3
    assert all(isinstance(block.attn, da.AppendingAttention) for block in trunk.h)
    assert [id(p) for p in trunk.parameters()] == before
    assert da.append_in_kernel(trunk) == 0  # idempotent

    class LookAlikeAttention(torch.nn.Module):
        c_attn = c_proj = resid_dropout = torch.nn.Identity()
        split_size, head_dim, layer_idx = 64, 32, 0

    holder = torch.nn.Module()
    holder.attn = LookAlikeAttention()
    assert da.append_in_kernel(holder) == 0 and isinstance(holder.attn, LookAlikeAttention)


@cuda
def test_graph_decode_of_gpt2_appending_in_the_kernel_gives_the_sdpa_tokens() -> None:
    """bf16 graph decode of a random 4-layer GPT-2 whose attention appends the step's key and
    value inside the kernel, against SDPA after transformers' cache update: the same tokens
    but where a bf16 near-tie parts them."""
    from transformers import GPT2Config, GPT2LMHeadModel

    _, tok = load_causal_lm("rlseek/tiny-lm")
    torch.manual_seed(0)
    lm = GPT2LMHeadModel(GPT2Config(n_layer=4, vocab_size=len(tok), bos_token_id=tok.bos_token_id,
                                    eos_token_id=tok.eos_token_id)).cuda().eval()
    outs = switched_graph_decodes(lm, tok, "attention_kernel", 24, temperature=1.0)
    for kernel, (_, dec) in outs.items():
        assert dec.appending_layers == (4 if kernel else 0)
    same = same_tokens(outs)
    assert float(same[:, :4].mean()) >= 0.95 and float(same.mean()) >= 0.9, float(same.mean())


# -- the same kernel through Triton's interpreter, on CPU -------------------------------------
# ``make test-kernel-cpu`` installs Triton beside the project and runs these with
# TRITON_INTERPRET=1: the kernel's arithmetic and its wiring into the decode copy are then
# checked on a machine without a GPU (the interpreter runs each program in numpy).
interpret = pytest.mark.skipif(
    da.triton is None or os.environ.get("TRITON_INTERPRET") != "1",
    reason="needs Triton and TRITON_INTERPRET=1 (make test-kernel-cpu)")


@interpret
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("B,H,Hkv,L,D", [(3, 4, 4, 40, 48), (2, 4, 2, 300, 64), (2, 2, 1, 64, 128),
                                         (2, 3, 3, 90, 80)])
def test_interpreted_kernel_equals_the_masked_softmax(B: int, H: int, Hkv: int, L: int, D: int, config: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel against a float64 masked softmax, over all keys and over the first n, with
    each launch config (split ones merge parts, some of them empty)."""
    _hand_config(monkeypatch, config)
    q, k, v, mask = _inputs(B, H, Hkv, L, D, "cpu", torch.float32, seed=B + L)
    full = da.decode_attention(q, k, v, mask, None, D ** -0.5)
    torch.testing.assert_close(full.double(), _reference(q, k, v, mask), atol=2e-5, rtol=2e-5)
    n = L // 2 + 1
    part = da.decode_attention(q, k, v, mask, torch.tensor([n]), D ** -0.5)
    torch.testing.assert_close(part.double(), _reference(q, k, v, mask, n), atol=2e-5, rtol=2e-5)
    # masked-off keys beyond n must not matter, not even NaNs there
    k[:, :, n:] = float("nan")
    again = da.decode_attention(q, k, v, mask, torch.tensor([n]), D ** -0.5)
    assert torch.equal(again, part)
    tickets = da._TICKETS.get(q.device)
    assert tickets is None or not bool(tickets.any())  # every split kernel put its tickets back


@interpret
@pytest.mark.parametrize("arch,append", [("llama", True), ("gpt2", True), ("gpt2", False)])
def test_interpreted_kernel_serves_the_decode_copy(arch: str, append: bool,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The static decoder's bf16 copy on its graph-path settings, run eagerly on CPU (few
    enough tokens that nothing is captured): the kernel is called for every single-query
    layer call with the count of written keys — a GPT-2 copy appending the step's key and
    value itself (the default), else after the cache update wrote them — and the tokens are
    SDPA's. The tiny LM is a Llama; the GPT-2 is a random 2-layer one on its tokenizer."""
    calls: list[tuple[str, int]] = []
    real, real_append = da.decode_attention, da.decode_attention_append

    def counted(q, k, v, mask, n, scale):  # type: ignore[no-untyped-def]
        calls.append(("read", int(n)))
        return real(q, k, v, mask, n, scale)

    def counted_append(q, kn, vn, k, v, mask, n, scale):  # type: ignore[no-untyped-def]
        calls.append(("append", int(n)))
        return real_append(q, kn, vn, k, v, mask, n, scale)

    monkeypatch.setattr(da, "available", lambda: True)
    monkeypatch.setattr(da, "servable", lambda q, k, m, *a, **kw: q.shape[2] == 1)
    monkeypatch.setattr(da, "decode_attention", counted)
    monkeypatch.setattr(da, "decode_attention_append", counted_append)
    lm, tok = load_causal_lm("rlseek/tiny-lm")
    if arch == "gpt2":
        from transformers import GPT2Config, GPT2LMHeadModel

        torch.manual_seed(0)
        lm = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=96, n_head=2, vocab_size=len(tok),
                                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)).eval()
    from rlseek.envs.text import heldout_prompts
    from rlseek.envs.text.static_decode import WARMUP_STEPS, bucket_shape

    enc = tok(heldout_prompts("rlseek/Arithmetic-v0", n=6, seed=2)["prompts"], return_tensors="pt",
              padding=True)
    appends = append and arch == "gpt2"
    tokens, logprobs = {}, {}
    for kernel in (True, False):
        engine = RolloutEngine.for_tokenizer(lm, tok)
        dec = engine.static_decoder(False)
        dec.graphs, dec.attention_kernel = True, kernel  # the graph path's copy, stepped eagerly
        dec.append_in_kernel = append
        with torch.autocast("cpu", torch.bfloat16):
            out = engine.decode(enc["input_ids"], enc["attention_mask"], WARMUP_STEPS + 1,
                                DecodeSettings(temperature=0.0, suppress_eos=True, cache="static",
                                               compile=False, record_logprobs=True))
        assert (dec._copy.config._attn_implementation == da.NAME) == kernel
        assert out.logprobs is not None and bool((out.logprobs < 0).any())
        assert dec.appending_layers == (lm.config.num_hidden_layers if kernel and appends else 0)
        tokens[kernel], logprobs[kernel] = out.tokens, out.logprobs
    layers = lm.config.num_hidden_layers
    _, P = bucket_shape(*enc["input_ids"].shape, True)  # the prompt's columns, left-padded
    # step s (1..T-1) feeds one token: P + s keys are then written, in every layer
    kind = "append" if appends else "read"
    assert calls == [(kind, P + s) for s in range(1, WARMUP_STEPS + 1) for _ in range(layers)]
    assert torch.equal(tokens[True], tokens[False])
    torch.testing.assert_close(logprobs[True], logprobs[False], atol=0.1, rtol=0)  # bf16 attention arithmetic


@interpret
def test_interpreted_launch_config_by_program_count(monkeypatch: pytest.MonkeyPatch) -> None:
    assert da.launch_config(192, 64 * 12) == (16, 1, False, 4, 4)  # GPT-2 small, batch 64: split in 4
    assert da.launch_config(192, 256 * 12) == (16, 1, False, 4, 1)  # batch 256: enough programs
    assert da.launch_config(192, 128 * 12) == (16, 1, False, 4, 2)
    assert da.launch_config(40, 8) == (16, 1, False, 4, 3)  # at most one part per 16 keys
    assert da.launch_config(10, 8) == (16, 1, False, 4, 1)
    monkeypatch.setattr(da, "BLOCK_KEYS", 32)
    monkeypatch.setattr(da, "NUM_WARPS", 4)
    monkeypatch.setattr(da, "UNROLL", False)
    assert da.launch_config(192, 768) == (32, 4, False, 0, 1)  # set by hand
    monkeypatch.setattr(da, "SPLIT", 3)
    assert da.launch_config(192, 768) == (32, 4, False, 0, 3)
    monkeypatch.setattr(da, "SPLIT", 50)
    assert da.launch_config(40, 768) == (32, 4, False, 0, 3)  # by hand too, at most one part per 16 keys


@interpret
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("L,n", [(40, 17), (300, 250), (64, 1), (90, 90)])
def test_interpreted_append_writes_the_slot_and_attends_to_it(L: int, n: int, config: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The appending kernel writes the new key and value into slot n - 1 (nothing else in the
    caches changes) and gives the attention over the first n keys of the updated caches, with
    each launch config (split: the last part appends)."""
    _hand_config(monkeypatch, config)
    B, H, Hkv, D = 2, 4, 2, 48
    q, k, v, mask = _inputs(B, H, Hkv, L, D, "cpu", torch.float32, seed=L)
    g = torch.Generator().manual_seed(n)
    kn, vn = torch.randn(B, Hkv, 1, D, generator=g), torch.randn(B, Hkv, 1, D, generator=g)
    k[:, :, n - 1:] = float("nan")  # the slot and what follows are never read
    v[:, :, n - 1:] = float("nan")
    want_k, want_v = k.clone(), v.clone()
    want_k[:, :, n - 1], want_v[:, :, n - 1] = kn[:, :, 0], vn[:, :, 0]
    out = da.decode_attention_append(q, kn, vn, k, v, mask, torch.tensor([n]), D ** -0.5)
    assert torch.equal(k.nan_to_num(7.0), want_k.nan_to_num(7.0))
    assert torch.equal(v.nan_to_num(7.0), want_v.nan_to_num(7.0))
    torch.testing.assert_close(out.double(), _reference(q, want_k.nan_to_num(0.0), want_v.nan_to_num(0.0), mask, n), atol=2e-5, rtol=2e-5)


@interpret
def test_interpreted_tickets_grow_and_keep_the_old_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    """More (row, head) pairs than the ticket buffer holds get a larger, zeroed buffer; the
    outgrown one stays alive (a captured CUDA graph may still point at it), and the split
    kernel puts every ticket back."""
    monkeypatch.setattr(da, "_TICKETS", {})
    monkeypatch.setattr(da, "_OUTGROWN", [])
    first = da._tickets(torch.device("cpu"), 10)
    assert first is not None and first.numel() == 4096 and not bool(first.any())
    assert da._tickets(torch.device("cpu"), 4096) is first
    bigger = da._tickets(torch.device("cpu"), 5000)
    assert bigger is not None and bigger.numel() == 5000
    assert len(da._OUTGROWN) == 1 and da._OUTGROWN[0] is first
    _hand_config(monkeypatch, "split_loop")
    q, k, v, mask = _inputs(2, 3, 3, 64, 32, "cpu", torch.float32)
    out = da.decode_attention(q, k, v, mask, None, 32 ** -0.5)
    torch.testing.assert_close(out.double(), _reference(q, k, v, mask), atol=2e-5, rtol=2e-5)
    assert da._tickets(torch.device("cpu"), 6) is bigger and not bool(bigger.any())
