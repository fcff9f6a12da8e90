"""The policy/value model: padded teacher-forced forward vs a naive unpadded one, LoRA, dropout."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from rlseek.agents.lm_ppo import core
from rlseek.agents.lm_ppo.config import LmPpoConfig
from rlseek.agents.lm_ppo.model import build_policy, forward_response, sequence_inputs

PAD = 0


def tiny_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      pad_token_id=PAD, attention_dropout=0.3)
    return LlamaForCausalLM(cfg).eval()


def tiny_gpt2() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=40, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                     pad_token_id=PAD, resid_pdrop=0.5, embd_pdrop=0.5, attn_pdrop=0.5)
    return GPT2LMHeadModel(cfg)


def ragged_batch() -> tuple[list[list[int]], list[list[int]]]:
    prompts = [[5, 6, 7, 8], [9, 10], [11, 12, 13]]
    responses = [[14, 15, 3], [16, 3], [17, 18, 19, 20]]  # 3 plays EOS; the last row is truncated
    return prompts, responses


def padded(prompts: list[list[int]], responses: list[list[int]]) -> tuple[torch.Tensor, ...]:
    P, T = max(map(len, prompts)), max(map(len, responses))
    pid = torch.full((3, P), PAD)
    pm = torch.zeros(3, P, dtype=torch.long)
    rid = torch.full((3, T), PAD)
    rm = torch.zeros(3, T)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        pid[i, P - len(p):] = torch.tensor(p)  # left padding
        pm[i, P - len(p):] = 1
        rid[i, :len(r)] = torch.tensor(r)  # right padding
        rm[i, :len(r)] = 1
    return pid, pm, rid, rm


@pytest.mark.parametrize("make", [tiny_llama, tiny_gpt2])
def test_padded_forward_matches_unpadded_naive_forward(make) -> None:  # type: ignore[no-untyped-def]
    lm = make()
    cfg = LmPpoConfig()
    policy, _ = build_policy(lm, cfg)
    torch.nn.init.normal_(policy.value_head.weight)  # non-zero so values are checked too
    prompts, responses = ragged_batch()
    pid, pm, rid, rm = padded(prompts, responses)
    temp = 0.7
    with torch.no_grad():
        logits, values = forward_response(policy.lm, sequence_inputs(pid, pm, rid, rm), rid.shape[1],
                                          temp, policy.value_head)
        logp = core.logprobs_of(logits, rid)
        for i, (p, r) in enumerate(zip(prompts, responses)):
            seq = torch.tensor([p + r])
            out = policy.lm(seq, output_hidden_states=True)
            naive_logits = out.logits[0, len(p) - 1:len(p) + len(r) - 1] / temp
            naive = torch.log_softmax(naive_logits, -1).gather(-1, torch.tensor(r)[:, None])[:, 0]
            torch.testing.assert_close(logp[i, :len(r)], naive, atol=1e-5, rtol=1e-4)
            h = out.hidden_states[-1][0, len(p) - 1:len(p) + len(r) - 1]
            torch.testing.assert_close(values[i, :len(r)], policy.value_head(h)[:, 0], atol=1e-5, rtol=1e-4)


def test_value_head_starts_at_zero_and_dropout_is_off() -> None:
    policy, reference = build_policy(tiny_gpt2(), LmPpoConfig())
    assert (policy.value_head.weight == 0).all() and (policy.value_head.bias == 0).all()
    policy.train()  # must stay in eval mode
    assert not any(m.training for m in policy.modules())
    assert all(m.p == 0.0 for m in policy.modules() if isinstance(m, torch.nn.Dropout))
    pid, pm, rid, rm = padded(*ragged_batch())
    inputs = sequence_inputs(pid, pm, rid, rm)
    a, va = forward_response(policy.lm, inputs, rid.shape[1], 1.0, policy.value_head)
    b, _ = forward_response(policy.lm, inputs, rid.shape[1], 1.0, policy.value_head)
    assert torch.equal(a, b)  # deterministic: no dropout
    assert (va == 0).all()
    # the reference is a frozen copy: same outputs, no gradients
    r, _ = forward_response(reference, inputs, rid.shape[1], 1.0)
    torch.testing.assert_close(a, r)
    assert not any(p.requires_grad for p in reference.parameters())


def test_lora_policy_reference_is_base_with_adapter_disabled() -> None:
    cfg = LmPpoConfig(lora=True)
    base = tiny_llama()
    pid, pm, rid, rm = padded(*ragged_batch())
    inputs = sequence_inputs(pid, pm, rid, rm)
    with torch.no_grad():
        base_logits, _ = forward_response(base, inputs, rid.shape[1], 1.0)
    policy, reference = build_policy(base, cfg)
    assert reference is None
    counts = policy.parameter_counts()
    assert 0 < counts["trainable_share"] < 0.2
    # move the adapter away from its no-op init: the policy changes, the reference does not
    with torch.no_grad():
        for name, p in policy.lm.named_parameters():
            if "lora_B" in name:
                p.add_(0.5)
        pol_logits, _ = forward_response(policy.lm, inputs, rid.shape[1], 1.0)
        with policy.reference() as ref:
            ref_logits, _ = forward_response(ref, inputs, rid.shape[1], 1.0)
    torch.testing.assert_close(ref_logits, base_logits)
    assert not torch.allclose(pol_logits, base_logits)
    trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
    assert all("lora_" in n or n.startswith("value_head") for n in trainable)
