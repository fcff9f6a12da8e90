"""`rlseek offline ...` and `rlseek train` with bcq/bc: a small comparison end to end, single runs
with checkpoints, resume and eval, and bad input (one line on stderr, exit code 2)."""

import json
import shutil

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml

import rlseek  # noqa: F401
from rlseek.cli import main
from rlseek.offline.collect import rollout
from rlseek.offline.dataset import OfflineDataset, read_dataset, write_dataset

ENV = "rlseek/Reacher-v0"
TINY = ["--expert-steps", "300", "--eval-every", "100", "--reference-episodes", "5"]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # small MLPs; extra threads only spin on a busy CPU
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "mr.h5"
    policies = tmp_path_factory.getbasetemp() / "offline-policies"
    rc = main(["offline", "collect", "--env", ENV, "--kind", "medium-replay", "--steps", "300", "--out", str(out),
               "--policy-dir", str(policies), "--seed", "1", *TINY])
    assert rc == 0
    return out


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip()
    assert err.startswith("rlseek: error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_small_comparison_end_to_end(dataset, tmp_path, capsys):
    out = tmp_path / "cmp"
    rc = main(["offline", "compare", "--dataset", str(dataset), "--algos", "bcq,bc", "--seeds", "2",
               "--steps", "10", "--episodes", "2", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "P(BCQ > BC)" in printed
    res = json.loads((out / "results.json").read_text())
    ds = read_dataset(dataset)
    assert res["dataset"]["data_sha256"] == ds.metadata["data_sha256"]
    assert [(r["algo"], r["seed"]) for r in res["runs"]] == [("bcq", 0), ("bc", 0), ("bcq", 1), ("bc", 1)]
    for r in res["runs"]:
        assert r["steps"] == 10 and len(r["returns"]) == 2
        assert r["score"] == pytest.approx(float(np.mean(ds.normalized(r["returns"]))))
        assert r["success_rate"] is not None  # rlseek/Reacher-v0 reports is_success
    for algo in ("bcq", "bc"):
        s = res["summary"][algo]
        assert s["runs"] == 2 and s["iqm"]["ci_low"] <= s["iqm"]["estimate"] <= s["iqm"]["ci_high"]
    p = res["probability_of_improvement"]["bcq>bc"]
    assert 0.0 <= p["ci_low"] <= p["estimate"] <= p["ci_high"] <= 1.0
    assert res["settings"]["algo_configs"]["bcq"]["action_flexibility"] == 0.05
    assert res["settings"]["algo_configs"]["bcq"]["lam"] == 0.75
    assert res["settings"]["algo_configs"]["bcq"]["n_action_samples"] == 100
    assert "| bcq | 2 |" in (out / "results.md").read_text()
    assert (out / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Every (algo, seed) run is an ordinary run directory: its own TensorBoard logs, final
    # weights and summary, and `rlseek eval` reproduces its evaluation from the files.
    for r in res["runs"]:
        run_dir = out / r["run_dir"]
        assert list((run_dir / "tb").glob("events.out.tfevents.*"))
        assert json.loads((run_dir / "meta.json").read_text())["status"] == "finished"
    assert (out / "runs" / "bcq_seed1" / "final" / "d3rlpy_weights.pt").is_file()
    capsys.readouterr()
    assert main(["eval", str(out / "runs" / "bcq_seed1"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["returns"] == res["runs"][2]["returns"]
    # The same seeds give the same scores: training and evaluation are seeded.
    rc = main(["offline", "compare", "--dataset", str(dataset), "--algos", "bc", "--seeds", "1",
               "--steps", "10", "--episodes", "2", "--out", str(tmp_path / "again")])
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    assert again["runs"][0]["returns"] == res["runs"][1]["returns"]


def test_discrete_datasets_use_the_discrete_algorithms(tmp_path, capsys):
    env = gym.make("CartPole-v1")
    env.action_space.seed(0)
    eps = rollout(env, lambda _o: env.action_space.sample(), 300, 0)
    path = tmp_path / "cart.h5"
    write_dataset(path, OfflineDataset(eps, {"env_id": "CartPole-v1", "kind": "random",
                                             "reference": {"random_return": 22.0, "expert_return": 500.0}}))
    rc = main(["offline", "compare", "--dataset", str(path), "--seeds", "1", "--steps", "10", "--episodes", "2",
               "--out", str(tmp_path / "cmp")])
    assert rc == 0
    res = json.loads((tmp_path / "cmp" / "results.json").read_text())
    assert "target_update_interval" in res["settings"]["algo_configs"]["bcq"]  # DiscreteBCQConfig
    assert all(r["success_rate"] is None for r in res["runs"])


def test_compare_never_overwrites_results(dataset, tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "results.json").write_text("{}")
    assert main(["offline", "compare", "--dataset", str(dataset), "--out", str(out)]) == 2
    assert "never overwritten" in _one_error_line(capsys)
    assert (out / "results.json").read_text() == "{}"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--algos", "bcqq,bc"], "unknown algo 'bcqq' (did you mean 'bcq'?)"),
        (["--seeds", "0"], "--seeds must be >= 1"),
        (["--steps", "0"], "--steps must be >= 1"),
        (["--set", "bcq.lamda=0.5"], "did you mean 'lam'"),
    ],
)
def test_compare_bad_arguments(dataset, tmp_path, capsys, args, message):
    out = tmp_path / "cmp"
    assert main(["offline", "compare", "--dataset", str(dataset), "--out", str(out), *args]) == 2
    assert message in _one_error_line(capsys)
    assert not out.exists()


def test_truncated_dataset_file(dataset, tmp_path, capsys):
    cut = tmp_path / "cut.h5"
    cut.write_bytes(dataset.read_bytes()[:4096])
    assert main(["offline", "compare", "--dataset", str(cut), "--out", str(tmp_path / "o")]) == 2
    assert "cut.h5" in _one_error_line(capsys)
    assert main(["offline", "info", str(cut)]) == 2
    _one_error_line(capsys)


def test_dataset_whose_spaces_do_not_match_the_env(tmp_path, capsys):
    # Hopper observations labelled as Reacher data: caught before any training.
    env = gym.make("rlseek/Hopper-v0")
    env.action_space.seed(0)
    eps = rollout(env, lambda _o: env.action_space.sample(), 50, 0)
    path = tmp_path / "wrong.h5"
    write_dataset(path, OfflineDataset(eps, {"env_id": ENV, "kind": "random",
                                             "reference": {"random_return": -40.0, "expert_return": -4.0}}))
    assert main(["offline", "compare", "--dataset", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "observation space" in _one_error_line(capsys)
    cfg = _config(tmp_path, "bc", path)
    assert main(["train", str(cfg), "--out", str(tmp_path / "run")]) == 2
    assert "observation space" in _one_error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_collect_bad_input(tmp_path, capsys):
    assert main(["offline", "collect", "--env", ENV, "--kind", "expret", "--steps", "10",
                 "--out", str(tmp_path / "x.h5")]) == 2
    assert "did you mean 'expert'" in _one_error_line(capsys)
    assert main(["offline", "collect", "--env", ENV, "--kind", "random", "--steps", "0",
                 "--out", str(tmp_path / "x.h5")]) == 2
    _one_error_line(capsys)


def _config(tmp_path, algo, dataset, **run):
    cfg = {"env": {"id": ENV}, "agent": {"algo": algo, "params": {"dataset": str(dataset)}},
           "run": {"total_steps": 20, "seed": 0, "device": "cpu", "eval_every": 10, "eval_episodes": 2,
                   "checkpoint_every": 10, **run}}
    path = tmp_path / f"{algo}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_train_bcq_checkpoints_evaluates_and_resumes(dataset, tmp_path, capsys):
    run = tmp_path / "run"
    cfg = _config(tmp_path, "bcq", dataset, total_steps=10, eval_every=5, checkpoint_every=5)
    assert main(["train", str(cfg), "--out", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["gradient_steps"] == 10 and [e["step"] for e in summary["evals"]] == [5, 10]
    assert summary["eval"]["normalized_score"] is not None and summary["eval"]["success_rate"] is not None
    meta = json.loads((run / "meta.json").read_text())
    assert meta["data"]["dataset"]["sha256"] == summary["dataset"]["sha256"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_000000000005", "step_000000000010"]
    assert list((run / "tb").glob("events.out.tfevents.*"))
    capsys.readouterr()
    assert main(["eval", str(run), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["returns"] == summary["eval"]["returns"]  # same seeds, same weights: same episodes
    # Interrupted after the first checkpoint: resume continues from step 5 to 10.
    shutil.rmtree(run / "final")
    shutil.rmtree(run / "checkpoints" / "step_000000000010")
    (run / "summary.json").unlink()
    meta["status"] = "running"
    (run / "meta.json").write_text(json.dumps(meta))
    assert main(["train", "--resume", "--out", str(run)]) == 0
    resumed = json.loads((run / "summary.json").read_text())
    assert resumed["gradient_steps"] == 10 and [e["step"] for e in resumed["evals"]] == [10]
    assert (run / "checkpoints" / "step_000000000010" / "d3rlpy_weights.pt").is_file()


def test_train_bad_agent_params(dataset, tmp_path, capsys):
    cfg = _config(tmp_path, "bc", dataset)
    assert main(["train", str(cfg), "--out", str(tmp_path / "r1"), "--set", "agent.params.batch_sise=64"]) == 2
    assert "did you mean 'batch_size'" in _one_error_line(capsys)
    assert not (tmp_path / "r1").exists()
    assert main(["train", str(cfg), "--out", str(tmp_path / "r2"), "--set", "agent.params.dataset=null"]) == 2
    assert "agent.params.dataset" in _one_error_line(capsys)
    assert main(["train", str(cfg), "--out", str(tmp_path / "r3"), "--set", "agent.algo=bcqq"]) == 2
    assert "did you mean 'bcq'" in _one_error_line(capsys)


def test_building_a_d3rlpy_buffer_prints_nothing(dataset):
    # d3rlpy logs an info line for every buffer it builds; rlseek's output must stay its own.
    import subprocess
    import sys

    code = ("import rlseek; from rlseek.offline.dataset import read_dataset; "
            f"read_dataset({str(dataset)!r}).to_d3rlpy()")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Signatures" not in r.stdout + r.stderr and "info" not in r.stdout, r.stdout + r.stderr


def test_compile_graph_priming_is_a_no_op_off_cuda(dataset):
    # prime_compile_graph works around a first-compiled-BCQ failure on CUDA; on CPU it must neither
    # train nor draw random numbers (it runs before the run's seed is set, so it must not shift it).
    from rlseek.offline.algos import prime_compile_graph

    ds = read_dataset(dataset)
    buffer = ds.to_d3rlpy()
    np_state, torch_state = np.random.get_state()[1].copy(), torch.get_rng_state().clone()
    prime_compile_graph("bcq", ds.discrete, buffer, None, "cpu")
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.get_rng_state(), torch_state)
