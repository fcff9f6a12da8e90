"""MLflow tracking and the run registry: a tracked run reads back through `rlseek runs`,
a tracking failure warns once and training goes on, and the pieces the loop shares.

The session's tracking is off (conftest.py); these tests switch it on for themselves, against
one temporary sqlite store per test session (MLflow creates its tables once).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_reward_model_fixtures import build_tiny_backbone, sentiment_pairs, write_jsonl

import rlseek  # noqa: F401
from rlseek.agents.loop import Cadence
from rlseek.cli import main
from rlseek.tracking import ScalarLogger, Tracker, resolve_tracking
from rlseek.tracking.settings import TrackingSettings

TINY_SAC = {
    "env": {"id": "rlseek/Reacher-v0"},
    "agent": {"algo": "sac", "params": {"learning_starts": 64, "batch_size": 32,
                                        "policy_kwargs": {"net_arch": [16, 16]}}},
    "run": {"total_steps": 192, "seed": 1, "eval_every": 96, "eval_episodes": 2, "checkpoint_every": 96},
}


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def tracking_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLSEEK_TRACKING", "on")


def _train(folder: Path, *extra: str, config: dict | None = None) -> Path:
    cfg = folder / "exp.yaml"
    cfg.write_text(yaml.safe_dump(config or TINY_SAC))
    out = folder / "run"
    assert main(["train", str(cfg), "--out", str(out), "--no-progress", *extra]) == 0
    return out


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> object:
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def _scalar_tags(tb_dir: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir))
    acc.Reload()
    return set(acc.Tags()["scalars"])


@pytest.fixture(scope="module")
def tracked_sac(tmp_path_factory: pytest.TempPathFactory, store: str) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RLSEEK_TRACKING", "on")
        return _train(tmp_path_factory.mktemp("tracked"), "--tracking-uri", store)


def test_runs_show_reads_back_params_metrics_and_tags(tracked_sac: Path, store: str, capsys) -> None:
    rec = _json(capsys, ["runs", "show", str(tracked_sac), "--json", "--tracking-uri", store])
    meta = json.loads((tracked_sac / "meta.json").read_text())
    summary = json.loads((tracked_sac / "summary.json").read_text())
    assert rec["status"] == "FINISHED" and rec["kind"] == "train" and rec["algo"] == "sac"
    # params: the resolved config, flattened
    assert rec["params"]["agent.algo"] == "sac"
    assert rec["params"]["run.total_steps"] == "192"
    assert rec["params"]["agent.params.batch_size"] == "32"
    assert rec["params"]["env.reward.distance"] == "1.0"
    # tags: meta.json's fingerprints and where the run and its model live
    assert rec["tags"]["rlseek.config_sha256"] == meta["config_sha256"]
    assert rec["tags"]["rlseek.run_uid"] == meta["run_uid"]
    assert rec["tags"]["rlseek.version"] == meta["rlseek_version"]
    assert rec["tags"]["rlseek.run_dir"] == str(tracked_sac.resolve())
    assert rec["tags"]["rlseek.final_model"] == str(tracked_sac.resolve() / "final")
    # metrics: every TensorBoard scalar, the monitoring keys, and the summary
    tb = _scalar_tags(tracked_sac / "tb")
    assert tb and tb <= set(rec["metrics"]), tb - set(rec["metrics"])
    assert {"latency/rollout_seconds", "latency/train_seconds", "throughput/steps_per_second",
            "resources/rss_mb", "quality/success_rate"} <= tb
    assert rec["metrics"]["summary/eval/mean_return"] == pytest.approx(summary["eval"]["mean_return"])
    assert rec["metrics"]["eval/mean_return"] == pytest.approx(summary["eval"]["mean_return"])


def test_runs_list_compare_and_retire(tracked_sac: Path, store: str, capsys, tmp_path) -> None:
    rows = _json(capsys, ["runs", "list", "--json", "--tracking-uri", store])
    mine = [r for r in rows if r["run_dir"] == str(tracked_sac.resolve())]
    assert len(mine) == 1 and not mine[0]["retired"]
    run_id = mine[0]["run_id"]
    capsys.readouterr()
    assert main(["runs", "list", "--tracking-uri", store]) == 0
    table = capsys.readouterr().out
    assert run_id[:12] in table and "eval/mean_return=" in table
    # retire: the reason lands in MLflow and in the run's meta.json
    rec = _json(capsys, ["runs", "retire", run_id[:8], "--why", "superseded by seed 2", "--json",
                         "--tracking-uri", store])
    assert rec["retired"] and rec["retired_why"] == "superseded by seed 2"
    assert json.loads((tracked_sac / "meta.json").read_text())["retired"]["why"] == "superseded by seed 2"
    active = _json(capsys, ["runs", "list", "--active", "--json", "--tracking-uri", store])
    assert run_id not in {r["run_id"] for r in active}
    # compare: a run against itself differs in nothing; the metrics sit side by side
    res = _json(capsys, ["runs", "compare", run_id, str(tracked_sac), "--json", "--tracking-uri", store])
    assert res["params_differing"] == {}
    a, b = res["metrics"]["summary/eval/mean_return"]
    assert a == b


def test_runs_bad_input_is_one_line(store: str, tracked_sac: Path, capsys, tmp_path) -> None:
    def one_line(argv: list[str], needle: str) -> None:
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("rlseek: error: ") and "\n" not in err and needle in err, err

    one_line(["runs", "list", "--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}"], "no MLflow store")
    assert not (tmp_path / "none.db").exists()  # reading never creates a store
    one_line(["runs", "show", "no-such-run", "--tracking-uri", store], "no tracked run 'no-such-run'")
    one_line(["runs", "retire", str(tracked_sac), "--why", "  ", "--tracking-uri", store], "--why")
    one_line(["runs", "compare", str(tracked_sac), "--tracking-uri", store], "at least two")


def test_a_resumed_run_continues_its_record(tracking_on, store: str, tmp_path, capsys) -> None:
    import shutil

    out = _train(tmp_path, "--tracking-uri", store)
    first = _json(capsys, ["runs", "show", str(out), "--json", "--tracking-uri", store])
    # As if killed after the first checkpoint: the last checkpoint, final/ and summary gone.
    shutil.rmtree(out / "final")
    shutil.rmtree(out / "checkpoints" / "step_000000000192")
    (out / "summary.json").unlink()
    meta = json.loads((out / "meta.json").read_text())
    (out / "meta.json").write_text(json.dumps({**meta, "status": "running", "end_time": None}))
    assert main(["train", "--resume", "--out", str(out), "--no-progress"]) == 0
    again = _json(capsys, ["runs", "show", str(out), "--json", "--tracking-uri", store])
    assert again["run_id"] == first["run_id"] and again["status"] == "FINISHED"
    assert again["metrics"]["summary/resumed_from_step"] == 96


def test_unreachable_tracking_uri_warns_once_and_the_run_finishes(tracking_on, tmp_path, capsys) -> None:
    out = _train(tmp_path, "--tracking-uri", "http://127.0.0.1:9")
    err = capsys.readouterr().err
    warnings = [ln for ln in err.splitlines() if ln.startswith("rlseek: warning: tracking")]
    assert len(warnings) == 1, err
    assert "http://127.0.0.1:9" in warnings[0] and "training goes on" in warnings[0]
    assert "Traceback" not in err
    assert json.loads((out / "meta.json").read_text())["status"] == "finished"
    assert json.loads((out / "summary.json").read_text())["eval"]["episodes"] == 2


def test_reward_model_training_is_tracked(tracking_on, store: str, tmp_path, capsys) -> None:
    backbone = build_tiny_backbone(tmp_path / "gpt2")
    data = write_jsonl(tmp_path / "prefs.jsonl", sentiment_pairs(24))
    out = tmp_path / "rm"
    assert main(["reward-model", "train", "--train", str(data), "--backbone", str(backbone),
                 "--epochs", "1", "--batch-size", "8", "--quiet", "--tracking-uri", store,
                 "--out", str(out)]) == 0
    rec = _json(capsys, ["runs", "show", "rm", "--json", "--tracking-uri", store])
    metrics = json.loads((out / "metrics.json").read_text())
    from rlseek.runs import sha256_file

    assert rec["kind"] == "reward-model" and rec["status"] == "FINISHED"
    assert rec["tags"]["rlseek.data.train.sha256"] == sha256_file(data)
    assert rec["params"]["batch_size"] == "8" and rec["params"]["epochs"] == "1"
    assert rec["metrics"]["summary/eval_accuracy"] == pytest.approx(metrics["eval"]["accuracy"])
    assert "train/loss" in rec["metrics"] and "eval/accuracy" in rec["metrics"]


# -- the pieces ---------------------------------------------------------------------------------
def test_switch_and_uri_resolution(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("RLSEEK_TRACKING", "on")
    monkeypatch.setenv("RLSEEK_RUNS_DIR", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    s = resolve_tracking()
    assert s.enabled and s.uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert s.artifact_root == (tmp_path.resolve() / "mlartifacts").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert resolve_tracking().uri == "http://mlflow.example:5000"
    assert resolve_tracking("sqlite:////x/y.db").uri == "sqlite:////x/y.db"  # explicit wins
    assert not resolve_tracking(enabled=False).enabled
    for off in ("off", "0", "false", "no"):
        monkeypatch.setenv("RLSEEK_TRACKING", off)
        assert not resolve_tracking().enabled


def test_tracking_off_leaves_no_store(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("RLSEEK_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("RLSEEK_TRACKING", "on")
    cfg = {**TINY_SAC, "run": {**TINY_SAC["run"], "total_steps": 96, "eval_every": 96}}
    out = _train(tmp_path, "--no-tracking", config=cfg)
    assert (out / "summary.json").is_file()
    assert not (tmp_path / "runs").exists()
    assert "tracking: false" in (out / "config.yaml").read_text()


def test_a_failing_backend_warns_once_and_drops_the_rest(capsys) -> None:
    t = Tracker(TrackingSettings(True, "nosuchscheme://nowhere"), run_uid="u1", run_name="x")
    for step in range(50):
        t.log_metrics({"loss": 1.0 / (step + 1)}, step)  # never raises, never blocks
    t.set_tags({"a": "b"})
    t.finish()
    err = capsys.readouterr().err
    assert err.count("rlseek: warning:") == 1 and "nosuchscheme://nowhere" in err, err
    assert t.failed


def test_scalar_logger_writes_tensorboard_and_the_tracker(tmp_path) -> None:
    class Recorder(Tracker):
        def __init__(self) -> None:
            super().__init__(TrackingSettings(False, ""), run_uid="", run_name="")
            self.enabled, self.seen = True, []

        def log_metrics(self, metrics, step):  # type: ignore[override]
            self.seen.append((dict(metrics), step))

    rec = Recorder()
    log = ScalarLogger(tmp_path / "tb", rec)
    log.log({"a/x": 1.5, "a/none": None, "a/text": "skip", "a/flag": True, "a/int": 3}, step=7)
    log.close()
    assert rec.seen == [({"a/x": 1.5, "a/int": 3.0}, 7)]
    assert _scalar_tags(tmp_path / "tb") == {"a/x", "a/int"}


def test_cadence_fires_once_per_multiple_passed() -> None:
    c = Cadence(100)
    assert [s for s in (50, 99, 100, 150, 199, 260, 300, 301) if c.due(s)] == [100, 260, 300]
    resumed = Cadence(100, start=200)
    assert not resumed.due(200) and resumed.due(300)
    assert resumed.until_next(310) == 90
    never = Cadence(0)
    assert not any(never.due(s) for s in range(0, 1000, 50)) and never.until_next(5) is None


def test_metric_names_mlflow_refuses_are_rewritten() -> None:
    from rlseek.tracking.tracker import metric_name

    assert metric_name("summary/poi/bcq>bc") == "summary/poi/bcq_bc"
    assert metric_name("losses/approx_kl") == "losses/approx_kl"
    assert metric_name("a b:c.d-e") == "a b:c.d-e"


def test_run_tracking_must_be_a_boolean() -> None:
    from rlseek.config import config_from_dict
    from rlseek.errors import ConfigError

    with pytest.raises(ConfigError, match=r"'run.tracking' must be true or false, got 1"):
        config_from_dict({"env": {"id": "rlseek/Reacher-v0"}, "agent": {"algo": "sac"}, "run": {"tracking": 1}})
    cfg = config_from_dict({"env": {"id": "rlseek/Reacher-v0"}, "agent": {"algo": "sac"},
                            "run": {"tracking": False, "tracking_uri": "http://127.0.0.1:5000"}})
    assert cfg.run.tracking is False and cfg.run.tracking_uri == "http://127.0.0.1:5000"
