"""Text envs: the single token-level env, the lockstep vector env, prompts and held-out split."""

from __future__ import annotations

import pickle
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import rlseek  # noqa: F401  (registers the envs)
from rlseek.envs import rlseek_env_ids
from rlseek.envs.registration import ENV_KINDS
from rlseek.envs.text import heldout_prompts, make_text_vector_env
from rlseek.envs.text.split import is_heldout
from rlseek.errors import DataError, RlseekError

TEXT_IDS = ["rlseek/Arithmetic-v0", "rlseek/Reviews-v0"]


@pytest.fixture(scope="module")
def lm():
    from rlseek.models import load_causal_lm

    return load_causal_lm("rlseek/tiny-lm")


def run_episode(env, tokens):
    for t in tokens:
        obs, reward, terminated, truncated, info = env.step(t)
        if terminated or truncated:
            return obs, reward, terminated, truncated, info
    raise AssertionError("episode did not end")


@pytest.mark.parametrize("env_id", TEXT_IDS)
def test_registered_and_checkers_pass(env_id) -> None:
    assert env_id in rlseek_env_ids() and ENV_KINDS[env_id] == "text"
    env = gym.make(env_id, max_new_tokens=4)
    check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=False)
    blob = pickle.dumps(env.unwrapped)
    assert len(blob) < 1_000_000  # a tokenizer, never model weights
    clone = pickle.loads(blob)
    assert clone.reset(seed=5)[1] == env.unwrapped.reset(seed=5)[1]


def test_arithmetic_episode_ends_at_eos_with_reward_terms() -> None:
    env = gym.make("rlseek/Arithmetic-v0").unwrapped
    obs, info = env.reset(seed=0)
    tok = env.tokenizer
    width = env.max_prompt_tokens + env.max_new_tokens
    assert obs["input_ids"].shape == (width,) and obs["attention_mask"][-1] == 1
    prompt_ids = tok(info["prompt"])["input_ids"]
    assert list(obs["input_ids"][-len(prompt_ids):]) == prompt_ids  # left padded
    assert obs["attention_mask"].sum() == len(prompt_ids)
    answer_ids = tok(info["answer"], add_special_tokens=False)["input_ids"]
    for t in answer_ids:
        obs, reward, terminated, truncated, step_info = env.step(t)
        assert reward == 0.0 and not terminated and not truncated and step_info == {}
        assert obs["input_ids"][-1] == t
    obs, reward, terminated, truncated, info2 = env.step(env.eos_token_id)
    assert terminated and not truncated
    assert info2["completion"] == info["answer"] and info2["is_success"] is True
    assert info2["reward_accuracy"] == 1.0
    expected = (0.6 * info2["reward_accuracy"] + 0.3 * info2["reward_diversity"]
                + 0.1 * info2["reward_efficiency"])
    assert reward == pytest.approx(expected) == pytest.approx(info2["reward_total"])
    with pytest.raises(gym.error.ResetNeeded):
        env.step(5)


def test_truncation_without_eos_and_reward_kwargs() -> None:
    env = gym.make("rlseek/Reviews-v0", max_new_tokens=3, reward={"efficiency": 1.0},
                   reward_params={"efficiency": {"no_eos_penalty": 0.25}}).unwrapped
    env.reset(seed=1)
    _obs, reward, terminated, truncated, info = run_episode(env, [300, 301, 302, 303])
    assert truncated and not terminated and len(info["completion_ids"]) == 3
    assert reward == -0.25 and "reward_sentiment" not in info
    with pytest.raises(RlseekError, match="did you mean"):
        gym.make("rlseek/Reviews-v0", reward={"sentimen": 1.0})


def test_curriculum_levels() -> None:
    env = gym.make("rlseek/Arithmetic-v0").unwrapped
    assert env.num_levels == 5 and env.level == 1
    env.set_level(0)
    assert all(len(env.reset()[1]["prompt"]) == 4 for _ in range(20))  # "3+5="
    env.set_level(4)
    assert all(len(env.reset()[1]["prompt"].split("+")[0].split("-")[0]) == 3 for _ in range(20))
    for bad in (5, -1, 1.5):
        with pytest.raises(RlseekError, match="level"):
            env.set_level(bad)
    prompt = gym.make("rlseek/Arithmetic-v0", level=3).unwrapped.reset(seed=0)[1]["prompt"]
    assert prompt.count("+") + prompt.count("-") == 2
    assert gym.make("rlseek/Reviews-v0").unwrapped.num_levels == 1


def test_training_stream_never_draws_heldout_prompts() -> None:
    for env_id in TEXT_IDS:
        env = gym.make(env_id).unwrapped
        env.reset(seed=0)
        task = "arithmetic" if "Arith" in env_id else "reviews"
        drawn = {env.reset()[1]["prompt"] for _ in range(400)}
        assert not any(is_heldout(task, p) for p in drawn)
        held = heldout_prompts(env_id, n=50, seed=3)
        assert all(is_heldout(task, p) for p in held["prompts"])
        assert len(set(held["prompts"])) == 50 and not drawn & set(held["prompts"])
        assert held == heldout_prompts(env_id, n=50, seed=3)
        assert held != heldout_prompts(env_id, n=50, seed=4)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_prompts_file_is_used(tmp_path: Path) -> None:
    f = write(tmp_path / "p.jsonl", '{"prompt": "2+2=", "answer": 4}\n\n{"prompt": "3+3=", "answer": "6"}\n')
    env = gym.make("rlseek/Arithmetic-v0", prompts_file=str(f)).unwrapped
    seen = {(i["prompt"], i["answer"]) for i in (env.reset(seed=s)[1] for s in range(20))}
    assert seen == {("2+2=", "4"), ("3+3=", "6")}
    g = write(tmp_path / "r.jsonl", '{"prompt": "My review of the lamp: it is"}\n')
    assert gym.make("rlseek/Reviews-v0", prompts_file=g).unwrapped.reset()[1]["answer"] is None


def test_prompts_file_holds_out_its_hash_split(tmp_path: Path) -> None:
    records = [(f"{a}+{b}=", str(a + b)) for a in range(10, 20) for b in range(30, 36)]
    held = {p for p, _ in records if is_heldout("arithmetic", p)}
    assert 0 < len(held) < len(records)
    f = write(tmp_path / "p.jsonl", "".join(f'{{"prompt": "{p}", "answer": "{a}"}}\n' for p, a in records))
    env = gym.make("rlseek/Arithmetic-v0", prompts_file=str(f)).unwrapped
    single = {env.reset(seed=s)[1]["prompt"] for s in range(300)}
    venv = make_text_vector_env("rlseek/Arithmetic-v0", 50, prompts_file=str(f))
    vector = {p for s in range(6) for p in venv.reset(seed=s)[1]["prompts"]}
    assert not (single | vector) & held  # evaluation prompts are never trained on
    assert len(vector) > len(records) - len(held) - 5  # and the rest all are
    only_held = write(tmp_path / "h.jsonl", "".join(f'{{"prompt": "{p}", "answer": "1"}}\n' for p in held))
    with pytest.raises(DataError, match="held-out split"):
        make_text_vector_env("rlseek/Arithmetic-v0", 2, prompts_file=str(only_held))


def test_vector_env_enforces_max_prompt_tokens() -> None:
    venv = make_text_vector_env("rlseek/Arithmetic-v0", 1, max_prompt_tokens=3)
    with pytest.raises(RlseekError, match="max_prompt_tokens=3"):
        venv.reset(options={"prompts": ["12+34="], "answers": ["46"]})
    ok = make_text_vector_env("rlseek/Arithmetic-v0", 1)
    assert ok.reset(options={"prompts": ["12+34="], "answers": ["46"]})[0]["input_ids"].shape[1] > 3


@pytest.mark.parametrize("content, message", [
    (None, r"prompts file .*missing.jsonl does not exist"),
    ("", r"prompts file .*\.jsonl is empty"),
    ("\n  \n", r"prompts file .*\.jsonl is empty"),
    ('{"prompt": "1+1=", "answer": "2"}\n{"prompt": "2+2=", "answer": 4,}\n',
     r"prompts file .*bad.jsonl, line 2: malformed JSON"),
    ('{"prompt": "1+1=", "answer": "2"}\n\n{"answer": "4"}\n',
     r"line 3: missing field 'prompt'"),
    ('{"prompt": "1+1="}\n', r"line 1: missing field 'answer'"),
    ('["1+1=", "2"]\n', r"line 1: expected a JSON object"),
    ('{"prompt": "", "answer": "2"}\n', r"line 1: field 'prompt' must be a non-empty string"),
])
def test_bad_prompts_file_raises_one_line_data_error(tmp_path: Path, content, message) -> None:
    path = tmp_path / ("missing.jsonl" if content is None else "bad.jsonl")
    if content is not None:
        write(path, content)
    with pytest.raises(DataError, match=message) as err:
        gym.make("rlseek/Arithmetic-v0", prompts_file=str(path))
    assert "\n" not in str(err.value)
    with pytest.raises(DataError):
        make_text_vector_env("rlseek/Arithmetic-v0", 2, prompts_file=str(path))


def test_vector_env_contract() -> None:
    venv = make_text_vector_env("rlseek/Arithmetic-v0", 4, max_new_tokens=3)
    assert venv.single_action_space.n == len(venv.tokenizer) == 1024
    assert venv.pad_token_id != venv.eos_token_id and venv.num_envs == 4
    obs, info = venv.reset(seed=0)
    ids, mask = obs["input_ids"], obs["attention_mask"]
    assert ids.dtype == mask.dtype == np.int64 and ids.shape == mask.shape
    assert (mask[:, -1] == 1).all() and (ids[mask == 0] == venv.pad_token_id).all()
    assert len(info["prompts"]) == len(info["answers"]) == 4
    eos, pad, digit = venv.eos_token_id, venv.pad_token_id, 19
    done_count = np.zeros(4, int)
    plan = [[eos, digit, digit, digit], [digit, eos, digit, digit], [digit, digit, digit, digit]]
    for k, acts in enumerate(plan):
        obs, rewards, term, trunc, step_info = venv.step(np.array(acts))
        assert obs["input_ids"].shape == (4, 1) == obs["attention_mask"].shape
        done_count += term | trunc
        if k == 0:
            assert list(term) == [True, False, False, False] and rewards.sum() == 0
        if k == 1:  # row 0 is finished: its action is ignored and recorded as pad
            assert obs["input_ids"][0, 0] == pad and obs["attention_mask"][0, 0] == 0
            assert list(term) == [False, True, False, False] and step_info == {}
    assert list(done_count) == [1, 1, 1, 1]
    assert list(trunc) == [False, False, True, True]
    assert step_info["final"] and list(step_info["eos"]) == [True, True, False, False]
    assert step_info["completion_ids"] == [[eos], [digit, eos], [digit] * 3, [digit] * 3]
    assert np.allclose(rewards, step_info["reward_total"])
    for name in ("accuracy", "diversity", "efficiency"):
        assert step_info[f"reward_{name}"].shape == (4,)
    assert step_info["is_success"].dtype == bool
    with pytest.raises(gym.error.ResetNeeded):
        venv.step(np.zeros(4, int))
    totals, terms, texts = venv.score(info["prompts"], info["answers"],
                                      [[eos, 7, 7], [digit, eos, pad], [digit] * 3, [digit] * 3])
    assert np.allclose(totals, rewards) and texts == step_info["completions"]
    assert set(terms) == {"accuracy", "diversity", "efficiency"}


def test_vector_env_reset_options_and_errors() -> None:
    venv = make_text_vector_env("rlseek/Reviews-v0", 2)
    held = heldout_prompts("rlseek/Reviews-v0", n=2, seed=0)
    obs, info = venv.reset(options=held)
    assert info["prompts"] == held["prompts"]
    assert obs["input_ids"].shape[1] == max(len(venv.tokenizer(p)["input_ids"]) for p in held["prompts"])
    with pytest.raises(RlseekError, match="num_envs=2"):
        venv.reset(options={"prompts": ["a"]})
    with pytest.raises(ValueError, match="shape"):
        venv.step(np.zeros(3, int))
    with pytest.raises(ValueError, match="token ids"):
        venv.step(np.array([0, 1024]))
    with pytest.raises(RlseekError, match="num_envs"):
        make_text_vector_env("rlseek/Reviews-v0", 0)
    with pytest.raises(RlseekError, match="unknown text env"):
        make_text_vector_env("rlseek/Nope-v0", 2)
    a, b = make_text_vector_env("rlseek/Arithmetic-v0", 3), make_text_vector_env(
        "rlseek/Arithmetic-v0", 3)
    assert a.reset(seed=7)[1] == b.reset(seed=7)[1]


def test_engine_rollout_through_the_vector_env_matches_generate(lm) -> None:
    import torch

    from rlseek.envs.text.rollout import DecodeSettings, RolloutEngine

    model, tok = lm
    venv = make_text_vector_env("rlseek/Reviews-v0", 6, max_new_tokens=12)
    held = heldout_prompts("rlseek/Reviews-v0", n=6, seed=1)
    ro = RolloutEngine.for_env(model, venv).rollout(venv, DecodeSettings(temperature=0.0), options=held)
    enc = tok(held["prompts"], return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=12, do_sample=False)
    for row, ids in zip(out[:, enc["input_ids"].shape[1]:].tolist(), ro.completion_ids):
        assert row[:len(ids)] == ids
    totals, _terms, _texts = venv.score(ro.prompts, ro.answers, ro.completion_ids)
    assert np.allclose(ro.scores, totals)
