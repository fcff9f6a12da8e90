"""lm-ppo end to end through ``rlseek.cli.main``: run directory, final model, resume, eval."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from rlseek.agents.lm_ppo.trainer import PPOTrainer
from rlseek.cli import main

PARAMS = {"ppo_epochs": 1, "num_minibatches": 2, "learning_rate": 1e-3}
RUN = {"total_steps": 24, "n_envs": 8, "eval_episodes": 8, "checkpoint_every": 8,
       "eval_every": 100, "seed": 3}


def write_config(folder: Path, params: dict | None = None, run: dict | None = None) -> Path:
    cfg = {"env": {"id": "rlseek/Arithmetic-v0", "kwargs": {"max_new_tokens": 6}},
           "agent": {"algo": "lm-ppo", "params": {**PARAMS, **(params or {})}},
           "run": {**RUN, **(run or {})}}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lmppo")
    out = folder / "run"
    assert main(["train", str(write_config(folder)), "--out", str(out)]) == 0
    return out


def test_run_directory_final_model_and_summary(finished_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model = AutoModelForCausalLM.from_pretrained(finished_run / "final")
    assert model.config.model_type == "llama"
    summary = json.loads((finished_run / "summary.json").read_text())
    assert summary["iterations"] == 3 and summary["completions"] == 24
    for key in ("base_accuracy", "final_accuracy", "final_kl", "final_entropy", "final_kl_coef"):
        assert summary[key] is not None, key
    assert summary["eval"]["episodes"] == 8 and summary["eval"]["policy"] == "final"
    config = yaml.safe_load((finished_run / "config.yaml").read_text())
    assert config["env"]["reward"] == {"accuracy": 0.6, "diversity": 0.3, "efficiency": 0.1}
    assert config["agent"]["params"]["kl_coef"] == 0.2  # defaults resolved into the config
    acc = EventAccumulator(str(finished_run / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in ("reward/accuracy", "reward/diversity", "reward/efficiency", "charts/kl_ref",
                "charts/kl_coef", "charts/entropy", "charts/ent_coef", "losses/approx_kl",
                "losses/clipfrac", "losses/value_loss", "losses/explained_variance",
                "charts/response_length", "charts/eos_rate", "charts/rollout_tokens_per_second",
                # monitoring scalars of the shared loop
                "latency/rollout_seconds", "latency/train_seconds", "throughput/steps_per_second",
                "throughput/tokens_per_second", "resources/rss_mb", "quality/distinct_2",
                "quality/response_length", "quality/eos_rate"):
        assert tag in tags, tag
    assert summary["step_unit"] == "completions" and summary["steps"] == 24


def test_interrupted_run_resumes_to_the_same_weights(tmp_path: Path, finished_run: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    real_step = PPOTrainer.step
    calls = {"n": 0}

    def interrupted_step(self, ro):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_step(self, ro)

    monkeypatch.setattr(PPOTrainer, "step", interrupted_step)
    assert main(["train", str(write_config(tmp_path)), "--out", str(out)]) == 130
    assert not (out / "final").exists()
    monkeypatch.setattr(PPOTrainer, "step", real_step)
    assert main(["train", "--resume", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from_iteration"] == 2 and summary["iterations"] == 3
    # the same seeds, restored RNG, optimizer and controller state: bit-for-bit the same run
    resumed = load_file(str(out / "final" / "model.safetensors"))
    straight = load_file(str(finished_run / "final" / "model.safetensors"))
    assert resumed.keys() == straight.keys()
    for k in straight:
        torch.testing.assert_close(resumed[k], straight[k], atol=1e-6, rtol=1e-5)
    assert summary["final_kl_coef"] == pytest.approx(
        json.loads((finished_run / "summary.json").read_text())["final_kl_coef"])


def test_eval_scores_an_eval_prompts_file_honouring_episodes(finished_run: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "12+34=", "answer": "46"}\n{"prompt": "3+5=", "answer": 8}\n'
                       '{"prompt": "20+22=", "answer": "42"}\n')
    capsys.readouterr()
    assert main(["eval", str(finished_run), "--set", f"agent.params.eval_prompts_file={prompts}",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["episodes"] == 3 and result["prompts"] == f"eval_prompts_file {prompts} (3 prompts)"
    assert result["decoding"] == "greedy" and 0.0 <= result["exact_match"] <= 1.0
    assert [e["prompt"] for e in result["examples"]] == ["12+34=", "3+5=", "20+22="]
    assert main(["eval", str(finished_run), "--episodes", "2", "--set",
                 f"agent.params.eval_prompts_file={prompts}", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 2


def test_eval_with_a_training_prompts_file_scores_only_its_held_out_split(
        finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rlseek.envs.text.split import is_heldout

    records = [(f"{a}+{b}=", a + b) for a in range(10, 20) for b in range(40, 46)]
    held = [p for p, _ in records if is_heldout("arithmetic", p)]
    assert 0 < len(held) < len(records)
    prompts = tmp_path / "train.jsonl"
    prompts.write_text("".join(f'{{"prompt": "{p}", "answer": {a}}}\n' for p, a in records))
    capsys.readouterr()
    assert main(["eval", str(finished_run), "--episodes", "50", "--set",
                 f"env.kwargs.prompts_file={prompts}", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["episodes"] == len(held)  # not the 60 training prompts
    assert result["prompts"].startswith(f"held-out split of prompts_file {prompts}")
    assert [e["prompt"] for e in result["examples"]] == held[:5]
    summary = json.loads((finished_run / "summary.json").read_text())
    assert summary["eval_prompts"] == "built-in held-out prompts"
    assert summary["eval"]["episodes"] == summary["base_eval"]["episodes"] == 8


def test_lora_run_merges_adapter_into_final(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = write_config(tmp_path, {"lora": True}, {"total_steps": 8, "eval_episodes": 4})
    assert main(["train", str(cfg), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["lora"] is True and 0 < summary["trainable_share"] < 0.1
    weights = load_file(str(out / "final" / "model.safetensors"))
    assert not any("lora" in k for k in weights)  # merged: a plain causal LM
    AutoModelForCausalLM.from_pretrained(out / "final")


def test_bad_params_fail_cleanly_and_leave_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["train", str(write_config(tmp_path, {"kl_coeff": 0.1})), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did you mean 'kl_coef'" in err[0]
    assert not out.exists()
