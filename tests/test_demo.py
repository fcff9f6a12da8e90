"""`rlseek demo --quick` end to end: every stage runs and the report carries its own figures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rlseek.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RLSEEK_TRACKING", "on")  # the demo records its runs in OUT/mlflow.db
        assert main(["demo", "--quick", "--out", str(out)]) == 0
    return out


def test_report_links_the_mlflow_store_which_holds_every_run(demo_dir: Path, capsys) -> None:
    report = (demo_dir / "report.md").read_text()
    uri = f"sqlite:///{demo_dir.resolve() / 'mlflow.db'}"
    assert "## Run registry (MLflow)" in report and "[mlflow.db](mlflow.db)" in report
    assert f"mlflow ui --backend-store-uri {uri}" in report
    capsys.readouterr()
    assert main(["runs", "list", "--json", "--tracking-uri", uri]) == 0
    runs = json.loads(capsys.readouterr().out)
    kinds = sorted(r["kind"] for r in runs)
    # robot + rlhf + 2x2 offline runs, the reward model, the comparison itself
    assert kinds.count("train") == 6 and kinds.count("reward-model") == 1 and kinds.count("offline-compare") == 1
    assert all(r["status"] == "FINISHED" for r in runs), [(r["name"], r["kind"], r["status"]) for r in runs]
    assert f"{len(runs)} runs" in report


def _row(report: str, name: str) -> str:
    m = re.search(rf"^\| {re.escape(name)} \| (.+?) \|$", report, flags=re.M)
    assert m, f"report has no row '{name}'"
    return m.group(1)


def _numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", text)]


def test_report_has_a_number_from_every_stage(demo_dir: Path) -> None:
    report = (demo_dir / "report.md").read_text()
    for heading in ("Robot control", "RLHF stages 1–2", "RLHF stage 3", "Offline RL"):
        assert f"## {heading}" in report
    # Bounds a working pipeline meets even at --quick budgets: SAC beats a random Reacher
    # policy (about -42); the reward model beats chance (0.5) on held-out pairs; PPO raises the
    # positive fraction while its KL stays finite and small; normalized scores lie in their CI.
    assert -35.0 < float(_row(report, "eval mean return")) <= 0.0
    assert 0.6 <= float(_row(report, "eval accuracy")) <= 1.0
    base, final = float(_row(report, "base positive fraction")), float(_row(report, "final positive fraction"))
    assert 0.0 <= base < final <= 1.0
    assert 0.0 <= float(_row(report, "final kl")) < 10.0
    for algo in ("bcq", "bc"):
        est, low, high, seeds = _numbers(_row(report, f"{algo} IQM normalized score [95% CI]"))
        assert low <= est <= high and -20.0 < est < 120.0 and seeds == 2
    p, p_low, p_high = _numbers(_row(report, "P(bcq>bc) [95% CI]"))
    assert 0.0 <= p_low <= p <= p_high <= 1.0


def test_figure_file_holds_the_report_numbers(demo_dir: Path) -> None:
    doc = json.loads((demo_dir / "figures.json").read_text())
    assert doc["name"] == "demo-quick" and doc["command"] == "rlseek demo --quick"
    stages = doc["figures"]["stages"]
    assert set(stages) == {"robot", "rlhf-data", "rlhf-ppo", "offline"}
    robot = json.loads((demo_dir / "robot-run" / "summary.json").read_text())
    assert stages["robot"]["values"]["eval_mean_return"] == robot["eval"]["mean_return"]
    off = json.loads((demo_dir / "offline" / "results.json").read_text())
    assert stages["offline"]["values"]["bcq_iqm"] == off["summary"]["bcq"]["iqm"]["estimate"]
    assert stages["offline"]["values"]["p(bcq>bc)"] == off["probability_of_improvement"]["bcq>bc"]["estimate"]


def test_report_figures_are_the_runs_own(demo_dir: Path) -> None:
    report = (demo_dir / "report.md").read_text()
    robot = json.loads((demo_dir / "robot-run" / "summary.json").read_text())
    assert float(_row(report, "eval mean return")) == pytest.approx(robot["eval"]["mean_return"], rel=1e-3)
    rm = json.loads((demo_dir / "reward-model" / "metrics.json").read_text())
    assert float(_row(report, "eval accuracy")) == pytest.approx(rm["eval"]["accuracy"], rel=1e-3)
    ppo = json.loads((demo_dir / "rlhf-run" / "summary.json").read_text())
    assert float(_row(report, "final kl")) == pytest.approx(ppo["final_kl"], rel=1e-3)
    off = json.loads((demo_dir / "offline" / "results.json").read_text())
    iqm = off["summary"]["bcq"]["iqm"]["estimate"]
    assert _row(report, "bcq IQM normalized score [95% CI]").startswith(f"{iqm:.1f} ")


def test_plots_are_png_images(demo_dir: Path) -> None:
    report = (demo_dir / "report.md").read_text()
    plots = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert len(plots) >= 4
    import matplotlib.image as mpimg

    for p in plots:
        data = (demo_dir / p).read_bytes()
        assert data[:8] == PNG_MAGIC, p
        assert mpimg.imread(demo_dir / p).ndim == 3


def test_demo_refuses_a_non_empty_out(demo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (demo_dir / "report.md").read_bytes()
    assert main(["demo", "--quick", "--out", str(demo_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not empty" in err[0]
    assert (demo_dir / "report.md").read_bytes() == before
