"""The static-cache decode path gives the eager dynamic-cache decode's tokens (tiny LM, CPU),
and on CUDA its CUDA-graph replay gives the eager static step's tokens."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from rlseek.envs.text import heldout_prompts
from rlseek.envs.text.decode_state import bucket_shape
from rlseek.envs.text.rollout import DecodeSettings, RolloutEngine, sample_tokens
from rlseek.models.loader import load_causal_lm

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")


@pytest.fixture(scope="module")
def lm_tok():  # type: ignore[no-untyped-def]
    return load_causal_lm("rlseek/tiny-lm")


def _prompts(tok, n: int = 7):  # type: ignore[no-untyped-def]
    held = heldout_prompts("rlseek/Reviews-v0", n=n, seed=4)
    return tok(held["prompts"], return_tensors="pt", padding=True)


def _decode(engine: RolloutEngine, enc, cache: str, temperature: float, seed: int | None = None,  # type: ignore[no-untyped-def]
            **kw):
    g = None if seed is None else torch.Generator(device=engine.device).manual_seed(seed)
    return engine.decode(enc["input_ids"], enc["attention_mask"], 16,
                         DecodeSettings(temperature=temperature, cache=cache, compile=False, **kw), g)


def test_sampler_is_torch_multinomial() -> None:
    p = torch.softmax(torch.randn(32, 500), -1)
    want = torch.multinomial(p, 1, generator=torch.Generator().manual_seed(3)).squeeze(-1)
    got = sample_tokens(p.log(), 1.0, generator=torch.Generator().manual_seed(3))
    assert torch.equal(got, want)


@pytest.mark.parametrize("temperature", [0.0, 1.0, 0.7])
def test_static_cache_gives_the_dynamic_decode_tokens(lm_tok, temperature: float) -> None:  # type: ignore[no-untyped-def]
    lm, tok = lm_tok
    enc = _prompts(tok)
    engine = RolloutEngine.for_tokenizer(lm, tok)
    dyn = _decode(engine, enc, "dynamic", temperature, seed=11, record_logprobs=True)
    sta = _decode(engine, enc, "static", temperature, seed=11, record_logprobs=True)
    assert torch.equal(sta.tokens, dyn.tokens) and torch.equal(sta.mask, dyn.mask)
    assert torch.equal(sta.eos, dyn.eos)
    torch.testing.assert_close(sta.logprobs, dyn.logprobs, atol=1e-4, rtol=1e-4)
    # a second decode reuses the bucket's buffers and gives the same result
    again = _decode(engine, enc, "static", temperature, seed=11, record_logprobs=True)
    assert torch.equal(again.tokens, sta.tokens)
    other = _decode(engine, enc, "static", temperature, seed=12)
    if temperature > 0:
        assert not torch.equal(other.tokens, sta.tokens)


def test_static_decode_ends_rows_at_eos_and_pads_after(lm_tok) -> None:  # type: ignore[no-untyped-def]
    lm, tok = lm_tok
    enc = _prompts(tok, 5)
    engine = RolloutEngine.for_tokenizer(lm, tok)
    out = _decode(engine, enc, "static", 1.0, seed=0)
    for row, mask, eos in zip(out.tokens.tolist(), out.mask.tolist(), out.eos.tolist()):
        n = sum(mask)
        assert mask == [1] * n + [0] * (len(mask) - n)
        assert all(t == tok.pad_token_id for t in row[n:])
        assert eos == (row[n - 1] == tok.eos_token_id)
    long = _decode(engine, enc, "static", 1.0, seed=0, suppress_eos=True)
    assert long.mask.all() and not (long.tokens == tok.eos_token_id).any()


def test_static_decode_refuses_a_generator_on_another_device(lm_tok) -> None:  # type: ignore[no-untyped-def]
    lm, tok = lm_tok
    enc = _prompts(tok, 3)
    engine = RolloutEngine.for_tokenizer(lm, tok, device="meta")
    with pytest.raises(ValueError, match="generator is on cpu, the decode on meta"):
        engine.static_decoder(False).decode(enc["input_ids"], enc["attention_mask"], 4,
                                            DecodeSettings(cache="static"), torch.Generator())


def test_settings_refuse_unknown_values_and_resolve_auto() -> None:
    with pytest.raises(ValueError, match="cache must be one of"):
        DecodeSettings(cache="paged")
    with pytest.raises(ValueError, match="compile must be true, false or 'auto'"):
        DecodeSettings(compile="yes")
    assert DecodeSettings().resolved(torch.device("cpu")) == ("dynamic", False)
    assert DecodeSettings().resolved(torch.device("cuda")) == ("static", True)
    assert DecodeSettings(cache="dynamic").resolved(torch.device("cuda")) == ("dynamic", False)
    assert bucket_shape(61, 40, True) == (64, 64) and bucket_shape(61, 40, False) == (61, 40)


@cuda
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_cuda_graph_replay_gives_the_eager_tokens(lm_tok, temperature: float) -> None:  # type: ignore[no-untyped-def]
    lm, tok = lm_tok
    lm = copy.deepcopy(lm).to("cuda")  # the module fixture stays on the CPU
    enc = _prompts(tok, 13)
    graph = RolloutEngine.for_tokenizer(lm, tok)
    eager = RolloutEngine.for_tokenizer(lm, tok)
    dyn = _decode(eager, enc, "dynamic", temperature, seed=5)
    outs = [_decode(graph, enc, "static", temperature, seed=5) for _ in range(2)]
    assert graph.static_decoder(False).states and all(
        s.graph is not None for s in graph.static_decoder(False).states.values())
    assert torch.equal(outs[0].tokens, outs[1].tokens)
    # float32 on the tiny LM: the graph decode equals the eager dynamic one token for token
    assert torch.equal(outs[0].tokens, dyn.tokens) and torch.equal(outs[0].mask, dyn.mask)


def _rollouts(lm, tok, cache: str, every: int, env_id: str = "rlseek/Reviews-v0", **env_kw):  # type: ignore[no-untyped-def]
    from rlseek.envs.text import make_text_vector_env

    env = make_text_vector_env(env_id, 6, **env_kw)
    engine = RolloutEngine.for_env(lm, env)
    settings = DecodeSettings(temperature=1.0, cache=cache, compile=False, exit_check_every=every)
    g = torch.Generator().manual_seed(21)
    return engine.rollout(env, settings, generator=g, seed=3)


@pytest.mark.parametrize("every", [1, 3])
def test_rollout_steps_the_env_through_columns_handed_over_mid_decode(lm_tok, every: int) -> None:  # type: ignore[no-untyped-def]
    """The static loop hands finished columns to the env while it decodes; the episode is the
    one the dynamic loop (env stepped after the decode) gives."""
    lm, tok = lm_tok
    after = _rollouts(lm, tok, "dynamic", every)
    during = _rollouts(lm, tok, "static", every)
    assert after.timings["env_overlapped"] == 0.0
    assert during.timings["env_overlapped"] > 0.0  # some columns were stepped inside the decode
    assert torch.equal(during.response_ids, after.response_ids)
    assert torch.equal(during.response_mask, after.response_mask)
    np.testing.assert_array_equal(during.scores, after.scores)
    np.testing.assert_array_equal(during.eos, after.eos)
    assert during.completions == after.completions and during.completion_ids == after.completion_ids
    assert during.terms.keys() == after.terms.keys()
    for key, values in after.terms.items():
        np.testing.assert_array_equal(during.terms[key], values)


def test_static_decode_hands_over_consecutive_final_columns(lm_tok) -> None:  # type: ignore[no-untyped-def]
    lm, tok = lm_tok
    enc = _prompts(tok, 5)
    engine = RolloutEngine.for_tokenizer(lm, tok)
    got: list[tuple[int, np.ndarray, np.ndarray]] = []
    settings = DecodeSettings(temperature=1.0, cache="static", compile=False, exit_check_every=4, suppress_eos=True)
    out = engine.decode(enc["input_ids"], enc["attention_mask"], 16, settings,
                        torch.Generator().manual_seed(2), on_columns=lambda t, m, s: got.append((s, t.copy(), m.copy())))
    assert [s for s, _, _ in got] == [0, 4, 8]  # handed over at the checks of steps 8 and 12, and at the end
    tokens = np.concatenate([t for _, t, _ in got], 1)
    mask = np.concatenate([m for _, _, m in got], 1)
    np.testing.assert_array_equal(tokens, out.tokens[:, :12].numpy())
    np.testing.assert_array_equal(mask, out.mask[:, :12].numpy())


def test_static_rollout_still_refuses_an_env_that_ends_rows_elsewhere(lm_tok) -> None:  # type: ignore[no-untyped-def]
    from rlseek.envs.text import make_text_vector_env

    lm, tok = lm_tok
    env = make_text_vector_env("rlseek/Arithmetic-v0", 4, max_new_tokens=12)
    engine = RolloutEngine(lm, vocab_size=len(tok), pad_token_id=tok.pad_token_id, eos_token_id=None)
    with pytest.raises(RuntimeError, match="disagree"):
        engine.rollout(env, DecodeSettings(temperature=0.0, cache="static", compile=False, exit_check_every=2), seed=0)


@cuda
def test_cuda_graph_rollout_steps_the_env_during_the_decode(lm_tok) -> None:  # type: ignore[no-untyped-def]
    """On the graph path columns are copied to pinned memory and handed over while the next
    chunk runs: the episode equals the eager loop's (float32, greedy, 40 tokens: two chunks
    handed over inside the decode)."""
    from rlseek.envs.text import make_text_vector_env

    lm, tok = lm_tok
    lm = copy.deepcopy(lm).to("cuda")  # the module fixture stays on the CPU
    out = {}
    for cache in ("dynamic", "static"):
        env = make_text_vector_env("rlseek/Reviews-v0", 6, max_new_tokens=40)
        engine = RolloutEngine.for_env(lm, env)
        out[cache] = engine.rollout(env, DecodeSettings(temperature=0.0, cache=cache, compile=False,
                                                        suppress_eos=True), seed=3)
    assert out["static"].timings["env_overlapped"] > 0.0
    assert torch.equal(out["static"].response_ids, out["dynamic"].response_ids)
    np.testing.assert_array_equal(out["static"].scores, out["dynamic"].scores)
    assert out["static"].completions == out["dynamic"].completions


@pytest.mark.parametrize("every, new_tokens", [(2, 16), (3, 16), (8, 5)])
def test_columns_handed_over_plus_the_rest_are_the_generation_when_rows_end_early(
        lm_tok, every: int, new_tokens: int) -> None:  # type: ignore[no-untyped-def]
    """An EOS the tiny LM writes often: rows end early, the loop may stop at a check with a
    chunk still pending (handed over then), or before any check (nothing handed)."""
    lm, tok = lm_tok
    enc = _prompts(tok, 6)
    settings = DecodeSettings(temperature=1.0, cache="static", compile=False, exit_check_every=every)
    free = RolloutEngine(lm, vocab_size=len(tok), pad_token_id=tok.pad_token_id, eos_token_id=None)
    first = free.decode(enc["input_ids"], enc["attention_mask"], 16, settings, torch.Generator().manual_seed(5))
    common = int(torch.mode(first.tokens.flatten()).values)  # an id most rows write soon
    engine = RolloutEngine(lm, vocab_size=len(tok), pad_token_id=tok.pad_token_id, eos_token_id=common)
    got: list[tuple[int, np.ndarray, np.ndarray]] = []
    out = engine.decode(enc["input_ids"], enc["attention_mask"], new_tokens, settings,
                        torch.Generator().manual_seed(5), on_columns=lambda t, m, s: got.append((s, t, m)))
    assert bool(out.eos.any())
    starts = [s for s, _, _ in got]
    widths = [t.shape[1] for _, t, _ in got]
    assert starts == [sum(widths[:i]) for i in range(len(got))]  # consecutive, from column 0
    handed = sum(widths)
    if new_tokens < every:
        assert not got
    width = out.tokens.shape[1]
    if new_tokens == 16:
        assert width < new_tokens  # every row ended before the budget: the loop stopped early
    if got:
        tokens = np.concatenate([t for _, t, _ in got], 1)
        mask = np.concatenate([m for _, _, m in got], 1)
        np.testing.assert_array_equal(tokens[:, :width], out.tokens[:, :handed].numpy())
        np.testing.assert_array_equal(mask[:, :width], out.mask[:, :handed].numpy())
        assert not mask[:, width:].any()  # columns handed past the Generation's width: all ended
