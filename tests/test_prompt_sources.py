"""Prompt-source mixtures on the text envs: sampling by weight, reporting, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import yaml

import rlseek  # noqa: F401  (registers the envs)
from rlseek.cli import main
from rlseek.envs.text import make_text_vector_env
from rlseek.errors import RlseekError


def prompts_file(folder: Path, name: str, start: int, n: int = 60, answers: bool = True) -> Path:
    path = folder / f"{name}.jsonl"
    rows = [{"prompt": f"{a}+{start}=", **({"answer": str(a + start)} if answers else {})}
            for a in range(10, 10 + n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run_batches(env: Any, batches: int) -> list[dict[str, Any]]:
    infos = []
    for b in range(batches):
        env.reset(seed=b)
        while True:
            *_, info = env.step(np.full(env.num_envs, env.eos_token_id))
            if info.get("final"):
                infos.append(info)
                break
    return infos


def test_realised_mixture_follows_the_weights_and_terms_are_per_source(tmp_path: Path) -> None:
    general = prompts_file(tmp_path, "general", 11)
    env = make_text_vector_env("rlseek/Arithmetic-v0", 100, prompt_sources=[
        {"file": str(general), "weight": 7},
        {"task": "arithmetic", "level": 0, "weight": 2, "name": "easy"},
        {"task": "arithmetic", "level": 4, "weight": 1, "name": "hard"},
    ])
    infos = run_batches(env, 20)
    report = env.core.mixture.report()
    assert [report[n]["requested"] for n in ("general", "easy", "hard")] == pytest.approx([0.7, 0.2, 0.1])
    # 2,000 draws: the realised shares are within 3.5 standard errors of the requested ones.
    for entry in report.values():
        p = entry["requested"]
        assert abs(entry["realised"] - p) < 3.5 * np.sqrt(p * (1 - p) / 2000)
        assert entry["scored"] == entry["prompts"] and set(entry["terms"]) >= {"accuracy", "total"}
    sources = [s for info in infos for s in info["prompt_source"]]
    assert sources.count("general") == report["general"]["prompts"]
    # Rows name their source: "general" prompts are "<a>+11=", level 0 adds one-digit numbers.
    info = infos[0]
    for prompt, src in zip(info["prompts"], info["prompt_source"], strict=True):
        if src == "general":
            assert prompt.endswith("+11=")
        elif src == "easy":
            assert len(prompt) <= 4


def test_the_same_seed_draws_the_same_mixture(tmp_path: Path) -> None:
    general = str(prompts_file(tmp_path, "general", 11))
    spec = [{"file": general, "weight": 1}, {"task": "arithmetic", "weight": 1}]
    draws = []
    for _ in range(2):
        env = make_text_vector_env("rlseek/Arithmetic-v0", 16, prompt_sources=spec)
        draws.append(env.reset(seed=5)[1]["prompts"])
    assert draws[0] == draws[1]


def test_given_prompts_are_not_counted_and_single_env_reports_its_source(tmp_path: Path) -> None:
    general = str(prompts_file(tmp_path, "general", 11))
    env = make_text_vector_env("rlseek/Arithmetic-v0", 2, prompt_sources=[{"file": general}])
    env.reset(options={"prompts": ["1+1=", "2+2="], "answers": ["2", "4"]})
    while not (info := env.step(np.full(2, env.eos_token_id))[-1]).get("final"):
        pass
    assert "prompt_source" not in info and env.core.mixture.report()["general"]["scored"] == 0
    single = gym.make("rlseek/Arithmetic-v0", prompt_sources=[{"file": general, "name": "g"}])
    single.reset(seed=0)
    *_, info = single.step(single.unwrapped.eos_token_id)
    assert info["prompt_source"] == "g"


@pytest.mark.parametrize("sources, fragment", [
    ([], "must be a non-empty list"),
    ([{"weight": 1}], "prompt_sources[0] needs exactly one of 'file' or 'task'"),
    ([{"task": "arithmetic", "weight": 0}], "prompt_sources[0].weight must be a positive number"),
    ([{"task": "arithmetic", "wieght": 1}], "unknown key(s) ['wieght']"),
    ([{"task": "reviews"}], "task 'reviews' has no answers"),
    ([{"task": "arithmetic", "level": 9}], "level must be an integer in 0..4"),
    ([{"task": "arithmetic"}, {"task": "arithmetic"}], "names ['arithmetic'] repeat"),
    ([{"task": "chess"}], "unknown text env 'chess'"),
])
def test_bad_prompt_sources_are_rejected_with_the_field(sources: list, fragment: str) -> None:
    with pytest.raises(RlseekError) as err:
        make_text_vector_env("rlseek/Arithmetic-v0", 2, prompt_sources=sources)
    assert fragment in str(err.value)


def test_file_source_errors_name_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "1+1=", "answer": "2"}\n{"prompt": "2+2="}\n')
    with pytest.raises(RlseekError, match=r"bad.jsonl.*2.*missing field 'answer'"):
        make_text_vector_env("rlseek/Arithmetic-v0", 2, prompt_sources=[{"file": str(bad)}])
    no_answers = prompts_file(tmp_path, "plain", 3, answers=False)
    env = make_text_vector_env("rlseek/Reviews-v0", 2, prompt_sources=[{"file": str(no_answers)}])
    assert env.core.mixture.names == ["plain"]
    with pytest.raises(RlseekError, match="prompts_file or prompt_sources, not both"):
        make_text_vector_env("rlseek/Arithmetic-v0", 2, prompts_file=str(no_answers),
                             prompt_sources=[{"task": "arithmetic"}])


def test_lm_ppo_summary_reports_the_mixture(tmp_path: Path) -> None:
    general = prompts_file(tmp_path, "general", 11)
    cfg = {"env": {"id": "rlseek/Arithmetic-v0", "kwargs": {
               "max_new_tokens": 4,
               "prompt_sources": [{"file": str(general), "weight": 3}, {"task": "arithmetic"}]}},
           "agent": {"algo": "lm-ppo", "params": {"ppo_epochs": 1, "num_minibatches": 1}},
           "run": {"total_steps": 16, "n_envs": 8, "eval_episodes": 4, "eval_every": 100,
                   "checkpoint_every": 100, "tracking": False}}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(path), "--out", str(tmp_path / "run")]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    mix = summary["prompt_sources"]
    assert set(mix) == {"general", "arithmetic"} and mix["general"]["requested"] == 0.75
    assert mix["general"]["prompts"] + mix["arithmetic"]["prompts"] == 16
    assert mix["general"]["terms"] is None or "accuracy" in mix["general"]["terms"]


def test_bad_prompt_sources_in_a_config_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = {"env": {"id": "rlseek/Arithmetic-v0",
                   "kwargs": {"prompt_sources": [{"task": "arithmetic", "weight": -1}]}},
           "agent": {"algo": "lm-ppo", "params": {}},
           "run": {"total_steps": 8, "n_envs": 8, "tracking": False}}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "prompt_sources[0].weight must be a positive number" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()
