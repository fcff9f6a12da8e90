"""The graph decode's one-pass token pick (:mod:`rlseek.envs.text.decode_pick`) against the
compiled pick it replaces (:func:`~rlseek.envs.text.static_decode.pick_tokens`), and the
decode's fused GELU linear layer.

On a CPU without Triton only the refusals run; ``make test-kernel-cpu`` runs the kernel
through Triton's interpreter (``-k interpreted``) and compiles it for an sm_90 GPU."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from decode_fixtures import same_tokens, switched_graph_decodes

from rlseek.envs.text import decode_pick as dpk
from rlseek.envs.text.rollout import DecodeSettings, RolloutEngine, exponential_noise
from rlseek.envs.text.static_decode import GeluConv1D, fuse_gelu_linears, pick_tokens
from rlseek.models.loader import load_causal_lm

cuda = pytest.mark.skipif(not dpk.available(), reason="the kernel needs CUDA and Triton")
interpret = pytest.mark.skipif(
    dpk.triton is None or os.environ.get("TRITON_INTERPRET") != "1",
    reason="needs Triton and TRITON_INTERPRET=1 (make test-kernel-cpu)")


def _logits(rows: int, width: int, dtype: torch.dtype, device: str, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, width, generator=g) * 3
    logits[:, 50:90] = logits[:, 50:90].clamp(max=-1.0)  # bf16 rounds these to many exact ties
    return logits.to(device, dtype)


def _compare(device: str, rows: int, width: int, vocab: int) -> None:
    """The kernel's tokens equal the compiled pick's, and its log-probs agree, on every
    combination of dtype, temperature (greedy, 1, tempered) and log-prob recording."""
    banned = torch.tensor([3, vocab - 1], device=device)
    for dtype in (torch.float32, torch.bfloat16):
        for temperature in (0.0, 1.0, 0.7):
            logits = _logits(rows, width, dtype, device, seed=rows + int(temperature * 10))
            gen = torch.Generator(device=device).manual_seed(1)
            noise = exponential_noise((rows, vocab), logits.device, gen) if temperature else None
            for record in (True, False):
                got, got_lp = dpk.pick(logits, noise, temperature, vocab, banned, record)
                want, want_lp = pick_tokens(logits, noise, temperature, vocab, banned, 0, record)
                assert torch.equal(got, want), (dtype, temperature)
                assert not torch.isin(got, banned).any() and int(got.max()) < vocab
                if record:
                    torch.testing.assert_close(got_lp, want_lp, atol=2e-5, rtol=2e-5)
                else:
                    assert got_lp is None


def test_servable_refuses_top_k_and_strided_rows() -> None:
    logits = torch.zeros(2, 10)
    assert not dpk.servable(logits, top_k=5)
    assert not dpk.servable(logits.t(), top_k=0)
    assert not dpk.servable(logits[:, ::2], top_k=0)
    assert not dpk.servable(logits.long(), top_k=0)
    assert dpk.servable(logits, top_k=0) == (dpk.triton is not None)


def test_gelu_linears_stay_unfused_on_the_cpu() -> None:
    """_addmm_activation's CPU GELU is the erf form, not GPT-2's tanh form: a CPU GPT-2 keeps
    its MLPs as they are (on CUDA the same call folds every one)."""
    from transformers import GPT2Config, GPT2Model

    trunk = GPT2Model(GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=100))
    assert type(trunk.h[0].mlp.act).__name__ in ("NewGELUActivation", "GELUTanh")
    assert fuse_gelu_linears(trunk) == 0
    assert not any(isinstance(m, GeluConv1D) for m in trunk.modules())


@interpret
@pytest.mark.parametrize("programs", [1, 10, 1024])
def test_interpreted_pick_equals_the_compiled_pick(programs: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Five tiles per row (a cut-off vocabulary tail) in one chunk, two uneven chunks, or one
    chunk per tile."""
    monkeypatch.setattr(dpk, "TARGET_PROGRAMS", programs)
    _compare("cpu", rows=5, width=5000, vocab=4990)


@interpret
@pytest.mark.parametrize("programs", [1, 1024])
def test_interpreted_greedy_ties_go_to_the_first_id(programs: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dpk, "TARGET_PROGRAMS", programs)  # ties within one chunk / across chunks
    logits = torch.full((2, 6000), -5.0)
    logits[0, [100, 2500, 5000]] = 3.0  # equal maxima in three tiles
    logits[1, [4200, 4100]] = 3.0  # in one tile
    got, lp = dpk.pick(logits, None, 0.0, None, None, True)
    assert got.tolist() == [100, 4100] == logits.argmax(-1).tolist()
    torch.testing.assert_close(lp, torch.log_softmax(logits, -1).gather(-1, got[:, None]))


@interpret
def test_interpreted_log_prob_survives_a_chunk_of_minus_inf() -> None:
    """Logits of -inf over a whole first tile (a chunk's running max starts at -inf): the
    log-prob is still log_softmax's, not NaN."""
    logits = torch.randn(2, 3000)
    logits[:, : dpk.BLOCK] = float("-inf")
    noise = exponential_noise((2, 3000), logits.device, torch.Generator().manual_seed(0))
    for temperature, q in ((0.0, None), (1.0, noise)):
        got, lp = dpk.pick(logits, q, temperature, None, None, True)
        want, want_lp = pick_tokens(logits, q, temperature, None, None, 0, True)
        assert torch.equal(got, want)
        torch.testing.assert_close(lp, want_lp, atol=2e-5, rtol=2e-5)


@interpret
def test_interpreted_sampling_needs_its_noise() -> None:
    logits = torch.zeros(2, 100)
    with pytest.raises(ValueError, match="noise of shape"):
        dpk.pick(logits, None, 1.0, None, None, False)
    with pytest.raises(ValueError, match="noise of shape"):
        dpk.pick(logits, torch.ones(2, 50), 1.0, None, None, False)


@interpret
def test_interpreted_pick_serves_the_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    """The static decoder on its graph-path settings, stepped eagerly on CPU: with the kernel
    and without it, a seeded sampling decode gives the same tokens and log-probs, and the
    kernel is called once per token."""
    calls: list[int] = []
    real = dpk.pick

    def counted(*args, **kw):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(dpk, "available", lambda: True)
    monkeypatch.setattr(dpk, "pick", counted)
    lm, tok = load_causal_lm("rlseek/tiny-lm")
    from rlseek.envs.text import heldout_prompts
    from rlseek.envs.text.static_decode import WARMUP_STEPS

    enc = tok(heldout_prompts("rlseek/Arithmetic-v0", n=6, seed=2)["prompts"], return_tensors="pt",
              padding=True)
    outs = {}
    for kernel in (True, False):  # few enough tokens that nothing is captured
        engine = RolloutEngine.for_tokenizer(lm, tok)
        dec = engine.static_decoder(False)
        dec.graphs, dec.pick_kernel = True, kernel  # the graph path's copy, stepped eagerly
        with torch.autocast("cpu", torch.bfloat16):
            outs[kernel] = engine.decode(enc["input_ids"], enc["attention_mask"], WARMUP_STEPS + 1,
                                         DecodeSettings(temperature=0.9, cache="static", compile=False,
                                                        record_logprobs=True),
                                         torch.Generator().manual_seed(3))
    assert len(calls) == WARMUP_STEPS + 1 == outs[True].tokens.shape[1]
    assert torch.equal(outs[True].tokens, outs[False].tokens)
    assert outs[True].logprobs is not None and bool((outs[True].logprobs < 0).any())
    torch.testing.assert_close(outs[True].logprobs, outs[False].logprobs, atol=1e-5, rtol=1e-5)


@interpret
def test_interpreted_kernels_compile_for_hopper() -> None:
    """Both Triton kernels of the decode compile to an sm_90 cubin with the installed Triton
    (the interpreter alone would not catch what only the compiler refuses). Compiled in a
    child process: TRITON_INTERPRET=1 would hand the compiler interpreted functions."""
    code = r"""
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from rlseek.envs.text import decode_attention as da, decode_pick as dpk
target = GPUTarget("cuda", 90, 32)
part_sig = {"logit_ptr": "*bf16", "noise_ptr": "*fp32", "banned_ptr": "*i64", "part_ptr": "*fp32",
            "idx_ptr": "*i32", "s_logit": "i32", "s_noise": "i32", "width": "i32", "chunk": "i32",
            "n_banned": "i32", "temperature": "fp32"}
for sample in (True, False):
    const = {"SAMPLE": sample, "TEMPERED": True, "LOGPROB": True, "MASKED": -1e9, "BLOCK": dpk.BLOCK}
    sig = {**part_sig, **{k: "constexpr" for k in const}}
    k = triton.compile(ASTSource(dpk._pick_chunk_kernel, sig, constexprs=const), target=target,
                       options={"num_warps": dpk.NUM_WARPS})
    assert k.asm["cubin"]
comb_sig = {"part_ptr": "*fp32", "idx_ptr": "*i32", "tok_ptr": "*i64", "lp_ptr": "*fp32", "chunks": "i32",
            "LOGPROB": "constexpr", "CHUNKS": "constexpr"}
k = triton.compile(ASTSource(dpk._pick_combine_kernel, comb_sig, constexprs={"LOGPROB": True, "CHUNKS": 16}),
                   target=target, options={"num_warps": 1})
assert k.asm["cubin"]
att_sig = {n: "*bf16" for n in ("q_ptr", "k_ptr", "v_ptr", "m_ptr", "o_ptr")}
att_sig["n_ptr"] = "*i64"
att_sig.update({"kn_ptr": "*bf16", "vn_ptr": "*bf16", "part_ptr": "*fp32", "ticket_ptr": "*i32"})
for n in ("sqb", "sqh", "skb", "skh", "skl", "svb", "svh", "svl", "smb", "sob", "soh",
          "sknb", "sknh", "svnb", "svnh", "heads", "group"):
    att_sig[n] = "i32"
att_sig["scale"] = "fp32"
for unroll, append, split in ((True, True, 1), (False, True, 4), (True, False, 3), (False, False, 1)):
    const = {"KEYS": 192, "HAS_MASK": True, "HAS_N": True, "UNROLL": unroll, "BLOCK": 128 if unroll else 16,
             "D": 64, "DP": 64, "APPEND": append, "PRELOAD": append, "SPLIT": split, "CHUNK": 192 // split}
    sig = {**att_sig, **{k: "constexpr" for k in const}}
    for warps in (1, 2):
        k = triton.compile(ASTSource(da._decode_attention_kernel, sig, constexprs=const), target=target,
                           options={"num_warps": warps})
        assert k.asm["cubin"]
        if split > 1:  # a barrier orders every lane's partial stores before the ticket
            ptx = k.asm["ptx"]
            assert "bar.sync" in ptx[:ptx.index("atom.global")], warps
print("compiled")
"""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "compiled" in done.stdout, done.stderr[-2000:]


@cuda
def test_pick_equals_the_compiled_pick_on_cuda() -> None:
    _compare("cuda", rows=64, width=50304, vocab=50257)  # GPT-2's padded head


@cuda
def test_gelu_linear_equals_the_unfused_mlp() -> None:
    from transformers import GPT2Config, GPT2Model

    trunk = GPT2Model(GPT2Config(n_layer=2)).cuda().to(torch.bfloat16).eval()
    with torch.no_grad():  # GPT-2 starts with zero biases: make a dropped bias show
        for layer in trunk.h:
            layer.mlp.c_fc.bias.normal_()
    x = torch.randn(64, 1, 768, device="cuda", dtype=torch.bfloat16)
    mlp = trunk.h[0].mlp
    want = mlp(x)
    assert fuse_gelu_linears(trunk) == 2 and isinstance(trunk.h[0].mlp.c_fc, GeluConv1D)
    torch.testing.assert_close(mlp(x).float(), want.float(), atol=3e-2, rtol=3e-2)


@cuda
def test_graph_decode_with_the_pick_kernel_gives_the_same_tokens() -> None:
    """bf16 graph decode of the tiny LM with the pick kernel and with the compiled pick, seeded
    sampling: the same tokens but where a bf16 near-tie parts them."""
    lm, tok = load_causal_lm("rlseek/tiny-lm")
    same = same_tokens(switched_graph_decodes(lm.to("cuda"), tok, "pick_kernel", 12, temperature=1.0))
    assert float(same.mean()) >= 0.95, float(same.mean())
