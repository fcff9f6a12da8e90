"""``rlseek demo``: every use of rlseek at small scale, on embedded defaults, with a report.

Stages (each calls the Python API that the listed ``rlseek`` commands call, in this process):

1. **robot** — SAC on ``rlseek/Reacher-v0``; learning curve and final evaluation.
2. **rlhf-data** — synthesize Reviews preference pairs with the scripted annotator, train a
   Bradley–Terry reward model on them, report its held-out accuracy.
3. **rlhf-ppo** — lm-ppo on ``rlseek/Reviews-v0`` against a weighted reward whose main term is
   the reward model of stage 2 (plus diversity and efficiency); base vs final figures.
4. **offline** — collect a medium-replay dataset the D4RL way (a small SAC expert's replay buffer
   up to a third of its return) and compare BCQ with behaviour cloning over seeds (IQM,
   bootstrap CIs, P(BCQ > BC)).

The report (``report.md``) is written from the runs' own ``summary.json`` / ``metrics.json`` /
``results.json`` files; nothing in it is typed by hand. ``figures.json`` holds the same figures
and each stage's headline numbers (``values``) as a figure file (:mod:`rlseek.figures`); the
README's demo figures are checked against the committed ``figures/demo-quick.json``. Every run
is recorded in MLflow: in the store ``MLFLOW_TRACKING_URI`` names, else in ``OUT/mlflow.db``
(an embedded sqlite store); the report links the store and says how to open its UI (unless
``RLSEEK_TRACKING=off``). Budgets are small (``--quick`` smaller
still), so the figures show that everything runs end to end, not what full-size runs reach: the
report lists the full-size commands.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rlseek.errors import RlseekError

# Budgets: (full, quick).
_BUDGETS: dict[str, tuple[int, int]] = {
    "robot_steps": (8_000, 2_000),
    "pairs": (1_200, 300),
    "rm_epochs": (2, 1),
    "ppo_steps": (2_048, 512),
    "expert_steps": (6_000, 2_000),
    "offline_steps": (3_000, 1_000),
    "offline_grad_steps": (400, 200),
    "offline_seeds": (5, 2),
}


@dataclass
class StageResult:
    """What one stage produced: figures for the report, plots, and full-size commands."""

    name: str
    title: str
    figures: dict[str, Any] = field(default_factory=dict)
    plots: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    full_commands: list[str] = field(default_factory=list)
    seconds: float = 0.0
    values: dict[str, Any] = field(default_factory=dict)
    """The stage's headline numbers, unformatted (what the README quotes)."""


def _call(argv: list[str], log: Path, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn(*args, **kwargs)`` (the API behind ``rlseek ARGV``), appending what it prints
    to ``log``; a failure names the equivalent command."""
    buf_out, buf_err = io.StringIO(), io.StringIO()
    failure: RlseekError | None = None
    result = None
    with contextlib.redirect_stdout(buf_out), contextlib.redirect_stderr(buf_err):
        try:
            result = fn(*args, **kwargs)
        except RlseekError as exc:
            failure = exc
    with log.open("a", encoding="utf-8") as f:
        f.write("$ rlseek " + " ".join(argv) + "\n" + buf_out.getvalue() + buf_err.getvalue())
        if failure is not None:
            f.write(f"rlseek: error: {failure}\n")
    if failure is not None:
        raise RlseekError(f"demo stage failed: rlseek {' '.join(argv)}: {failure}") from None
    return result


def _write_config(path: Path, cfg: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(path)


def _plot_curve(points: list[list[float]], path: Path, title: str, xlabel: str, ylabel: str) -> str | None:
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs, ys = zip(*[(p[0], p[1]) for p in points])
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=110)
    ax.plot(xs, ys, marker="o")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path.name


def _budget(name: str, quick: bool) -> int:
    full, small = _BUDGETS[name]
    return small if quick else full


# -- stages -----------------------------------------------------------------------------------
def stage_robot(out: Path, quick: bool, log: Path) -> StageResult:
    from rlseek.api import train

    res = StageResult("robot", "Robot control: SAC on rlseek/Reacher-v0")
    steps = _budget("robot_steps", quick)
    cfg = yaml.safe_load(Path(_examples() / "reacher_sac.yaml").read_text())
    cfg["run"].update(
        total_steps=steps, eval_every=max(steps // 4, 500), checkpoint_every=steps,
        eval_episodes=5 if quick else 10,
    )
    cfg["agent"]["params"]["learning_starts"] = min(1000, steps // 5)
    cfg_path = _write_config(out / "reacher_sac.yaml", cfg)
    argv = ["train", cfg_path, "--out", str(out / "robot-run"), "--no-progress"]
    _call(argv, log, train, cfg_path, out=out / "robot-run", command=["rlseek", *argv])
    summary = json.loads((out / "robot-run" / "summary.json").read_text())
    ev = summary["eval"]
    res.figures = {
        "env steps": summary.get("total_steps"),
        "eval mean return": ev["mean_return"],
        "eval episodes": ev["episodes"],
        "steps per second": summary.get("steps_per_second"),
    }
    curve = summary.get("curve") or []
    plot = _plot_curve(curve, out / "robot_curve.png", "SAC on rlseek/Reacher-v0", "env steps", "eval mean return")
    if plot:
        res.plots.append(plot)
    res.figures["curve (steps, return)"] = [[int(s), round(float(r), 2)] for s, r in curve]
    res.values = {"env_steps": summary.get("total_steps"), "eval_mean_return": ev["mean_return"],
                  "eval_episodes": ev["episodes"]}
    res.commands.append("rlseek " + " ".join(argv))
    res.full_commands.append("rlseek train examples/configs/reacher_sac.yaml --out runs/reacher-sac")
    return res


def stage_rlhf_data(out: Path, quick: bool, log: Path) -> StageResult:
    from rlseek.api import synthesize_preferences, train_reward_model
    from rlseek.reward_models.trainer import TrainConfig

    res = StageResult("rlhf-data", "RLHF stages 1–2: preferences and a Bradley–Terry reward model")
    n = _budget("pairs", quick)
    prefs = out / "prefs.jsonl"
    rm_dir = out / "reward-model"
    a1 = ["prefs", "synth", "--task", "rlseek/Reviews-v0", "--n", str(n), "--noise", "0.1",
          "--seed", "1", "--out", str(prefs), "--quiet"]
    a2 = ["reward-model", "train", "--train", str(prefs), "--eval-split", "0.2",
          "--epochs", str(_budget("rm_epochs", quick)), "--out", str(rm_dir), "--quiet"]
    _call(a1, log, synthesize_preferences, "rlseek/Reviews-v0", n, prefs, noise=0.1, seed=1)
    _call(a2, log, train_reward_model, prefs, rm_dir, eval_split=0.2,
          config=TrainConfig(epochs=_budget("rm_epochs", quick)))
    metrics = json.loads((rm_dir / "metrics.json").read_text())
    res.figures = {"preference pairs": n}
    for split in ("train", "eval"):
        for k in ("n", "accuracy", "mean_margin"):
            v = (metrics.get(split) or {}).get(k)
            if isinstance(v, (int, float)):
                res.figures[f"{split} {k.replace('_', ' ')}"] = v
    res.values = {"pairs": n, "eval_accuracy": (metrics.get("eval") or {}).get("accuracy"),
                  "eval_pairs": (metrics.get("eval") or {}).get("n")}
    if isinstance(metrics.get("pairs_per_second"), (int, float)):
        res.figures["training pairs per second"] = metrics["pairs_per_second"]
    hist = metrics.get("history") or []
    pts = [[h["step"], h["eval_accuracy"]] for h in hist if "step" in h and "eval_accuracy" in h]
    plot = _plot_curve(pts, out / "reward_model_curve.png", "Reward model", "optimizer steps", "eval accuracy")
    if plot:
        res.plots.append(plot)
    res.commands += ["rlseek " + " ".join(a1), "rlseek " + " ".join(a2)]
    res.full_commands += [
        "rlseek prefs synth --task rlseek/Reviews-v0 --n 4000 --noise 0.1 --seed 1 --out prefs/reviews-train.jsonl",
        "rlseek prefs synth --task rlseek/Reviews-v0 --n 1000 --noise 0.1 --seed 2 --heldout --out prefs/reviews-eval.jsonl",
        "rlseek reward-model train --train prefs/reviews-train.jsonl --eval prefs/reviews-eval.jsonl --out rm/reviews",
    ]
    return res


def stage_rlhf_ppo(out: Path, quick: bool, log: Path) -> StageResult:
    from rlseek.api import train

    res = StageResult("rlhf-ppo", "RLHF stage 3: lm-ppo on rlseek/Reviews-v0 against the reward model")
    cfg = {
        "env": {
            "id": "rlseek/Reviews-v0",
            "reward": {"reward_model": 0.6, "diversity": 0.3, "efficiency": 0.1, "sentiment": 0.0},
            "reward_params": {"reward_model": {"path": str(out / "reward-model"), "normalize": True}},
        },
        "agent": {"algo": "lm-ppo", "params": {"eval_temperature": 1.0, "learning_rate": 1.0e-4}},
        "run": {
            "total_steps": _budget("ppo_steps", quick), "n_envs": 64, "seed": 0,
            "eval_episodes": 64 if quick else 200,
        },
    }
    cfg_path = _write_config(out / "reviews_lm_ppo.yaml", cfg)
    argv = ["train", cfg_path, "--out", str(out / "rlhf-run"), "--no-progress"]
    _call(argv, log, train, cfg_path, out=out / "rlhf-run", command=["rlseek", *argv])
    summary = json.loads((out / "rlhf-run" / "summary.json").read_text())
    for key in ("completions", "iterations", "base_positive_fraction", "final_positive_fraction",
                "base_distinct_2", "final_distinct_2", "final_kl", "kl_target", "final_entropy",
                "train_wall_seconds"):
        v = summary.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            res.figures[key.replace("_", " ")] = v
    res.values = {k: summary.get(k) for k in ("completions", "base_positive_fraction",
                                              "final_positive_fraction", "final_kl")}
    for key in ("base_eval", "eval"):
        terms = (summary.get(key) or {}).get("terms") or {}
        for term, v in terms.items():
            res.figures[f"{'base' if key == 'base_eval' else 'final'} mean {term}"] = v
    hist = summary.get("history") or []
    pts = [[h["completions"], h["reward/total"]] for h in hist if "reward/total" in h]
    plot = _plot_curve(pts, out / "rlhf_curve.png", "lm-ppo on Reviews", "completions", "mean reward (env total)")
    if plot:
        res.plots.append(plot)
    res.commands.append("rlseek " + " ".join(argv))
    res.full_commands.append("rlseek train examples/configs/reviews_lm_ppo_reward_model.yaml --out runs/reviews-rlhf")
    return res


def stage_offline(out: Path, quick: bool, log: Path) -> StageResult:
    from rlseek.offline.collect import CollectSettings, collect
    from rlseek.offline.compare import CompareSettings, compare

    res = StageResult("offline", "Offline RL: BCQ against behaviour cloning")
    data = out / "reacher-medium-replay.h5"
    expert_steps = _budget("expert_steps", quick)
    a1 = ["offline", "collect", "--env", "rlseek/Reacher-v0", "--kind", "medium-replay",
          "--expert-steps", str(expert_steps), "--eval-every", str(expert_steps // 5),
          "--steps", str(_budget("offline_steps", quick)),
          "--reference-episodes", "5" if quick else "20", "--out", str(data)]
    a2 = ["offline", "compare", "--dataset", str(data), "--algos", "bcq,bc",
          "--seeds", str(_budget("offline_seeds", quick)), "--steps", str(_budget("offline_grad_steps", quick)),
          "--episodes", "5", "--jobs", "2", "--out", str(out / "offline")]
    collect_settings = CollectSettings(expert_steps=expert_steps, eval_every=expert_steps // 5,
                                       reference_episodes=5 if quick else 20)
    _call(a1, log, collect, "rlseek/Reacher-v0", "medium-replay", _budget("offline_steps", quick), data,
          settings=collect_settings)
    compare_settings = CompareSettings(algos=["bcq", "bc"], seeds=_budget("offline_seeds", quick),
                                       steps=_budget("offline_grad_steps", quick), eval_episodes=5, jobs=2)
    _call(a2, log, compare, data, out / "offline", compare_settings, log=print)
    results = json.loads((out / "offline" / "results.json").read_text())
    res.figures = _offline_figures(results)
    res.values = _offline_values(results)
    if (out / "offline" / "plot.png").exists():
        res.plots.append("offline/plot.png")
    res.commands += ["rlseek " + " ".join(a1), "rlseek " + " ".join(a2)]
    res.full_commands += [
        "rlseek offline collect --env rlseek/Reacher-v0 --kind medium-replay --steps 100000 --out data/reacher-mr.h5",
        "rlseek offline compare --dataset data/reacher-mr.h5 --algos bcq,bc --seeds 5 --steps 10000 --out results/reacher-mr",
    ]
    return res


def _offline_figures(results: dict[str, Any]) -> dict[str, Any]:
    figs: dict[str, Any] = {}
    ds = results.get("dataset") or {}
    for k in ("kind", "n_transitions", "n_episodes"):
        if k in ds:
            figs[f"dataset {k.replace('_', ' ')}"] = ds[k]
    beh = ds.get("behaviour") or {}
    if "normalized_mean" in beh:
        figs["behaviour normalized score"] = beh["normalized_mean"]
    for algo, block in (results.get("summary") or {}).items():
        iqm = block.get("iqm") or {}
        if "estimate" in iqm:
            figs[f"{algo} IQM normalized score [95% CI]"] = (
                f"{iqm['estimate']:.1f} [{iqm['ci_low']:.1f}, {iqm['ci_high']:.1f}] over {block.get('runs')} seeds"
            )
    for pair, block in (results.get("probability_of_improvement") or {}).items():
        figs[f"P({pair}) [95% CI]"] = f"{block['estimate']:.2f} [{block['ci_low']:.2f}, {block['ci_high']:.2f}]"
    return figs


def _offline_values(results: dict[str, Any]) -> dict[str, Any]:
    ds = results.get("dataset") or {}
    values: dict[str, Any] = {"n_transitions": ds.get("n_transitions")}
    for algo, block in (results.get("summary") or {}).items():
        iqm = block.get("iqm") or {}
        values[f"{algo}_iqm"] = iqm.get("estimate")
        values[f"{algo}_ci"] = [iqm.get("ci_low"), iqm.get("ci_high")]
        values["seeds"] = block.get("runs")
    for pair, block in (results.get("probability_of_improvement") or {}).items():
        values[f"p({pair})"] = block.get("estimate")
    return values


STAGES: list[tuple[str, Callable[[Path, bool, Path], StageResult]]] = [
    ("robot", stage_robot),
    ("rlhf-data", stage_rlhf_data),
    ("rlhf-ppo", stage_rlhf_ppo),
    ("offline", stage_offline),
]
STAGE_NAMES: tuple[str, ...] = tuple(name for name, _ in STAGES)


def _examples() -> Path:
    here = Path(__file__).resolve().parent.parent / "examples" / "configs"
    if here.is_dir():
        return here
    raise RlseekError("examples/configs not found next to the rlseek package; run the demo from a source checkout")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return ", ".join(f"({a}, {b})" for a, b in v) if v and isinstance(v[0], list) else str(v)
    return str(v)


def _tracking_lines(uri: str | None) -> list[str]:
    """The report's section on the run registry: where the store is, what it holds, how to open it."""
    lines = ["## Run registry (MLflow)", ""]
    if uri is None:
        return lines + ["Tracking was off for this demo (RLSEEK_TRACKING=off); no runs were recorded.", ""]
    from rlseek.tracking.registry import list_runs

    try:
        runs = list_runs(uri)
    except RlseekError as exc:
        return lines + [f"Tracking store `{uri}` could not be read: {exc}", ""]
    kinds: dict[str, int] = {}
    for r in runs:
        kinds[r["kind"] or "?"] = kinds.get(r["kind"] or "?", 0) + 1
    where = uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else uri
    store_link = f"[{Path(where).name}]({Path(where).name})" if uri.startswith("sqlite:///") else f"`{uri}`"
    lines += [
        f"Every run above is recorded in the MLflow store {store_link} (`{uri}`): "
        f"{len(runs)} runs (" + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) + "), each with the "
        "resolved config as params, every TensorBoard scalar (losses, throughput, latency, resources, "
        "quality) as metrics, the data fingerprints as tags and a reference to its run directory.",
        "",
        "```bash",
        f"mlflow ui --backend-store-uri {uri}      # then open http://127.0.0.1:5000",
        f"rlseek runs list --tracking-uri {uri}",
        "```",
        "",
    ]
    return lines


def write_report(out: Path, results: list[StageResult], quick: bool, seconds: float,
                 tracking_uri: str | None = None) -> Path:
    """Write ``report.md`` from the stage results (the runs' own figures)."""
    from rlseek._version import __version__

    lines = [
        "# rlseek demo report",
        "",
        f"rlseek {__version__}; mode: {'quick' if quick else 'full demo'}; total time {seconds:.0f} s.",
        "Every figure below was read from the files the stage's run wrote. Budgets are small: the "
        "figures show the pipeline end to end, not what full-size runs reach (commands below).",
        "",
    ]
    for r in results:
        lines += [f"## {r.title}", "", f"Stage time: {r.seconds:.0f} s.", "", "| figure | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in r.figures.items()]
        lines.append("")
        lines += [f"![{r.name}]({p})" for p in r.plots]
        lines += ["", "Ran (through the Python API these commands call):", "", "```bash", *r.commands, "```", "", "Full size:", "", "```bash", *r.full_commands, "```", ""]
    lines += _tracking_lines(tracking_uri)
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def write_figures_file(path: Path, results: list[StageResult], quick: bool, seconds: float,
                       command: str | None = None) -> Path:
    """Write the demo's figure file (see :mod:`rlseek.figures`) from the stage results."""
    from rlseek.figures import write_figures

    figures = {
        "mode": "quick" if quick else "full",
        "seconds": seconds,
        "stages": {r.name: {"title": r.title, "seconds": r.seconds, "values": r.values,
                            "figures": r.figures} for r in results},
    }
    return write_figures(path, "demo-quick" if quick else "demo", figures, command=command)


def run_demo(out: str | Path, quick: bool = False, stages: list[str] | None = None,
             figures: str | Path | None = None) -> Path:
    """Run the demo stages into ``out`` (must be new or empty) and return the report's path.

    ``out/figures.json`` gets the figures as a figure file; ``figures`` names a second copy
    (e.g. ``figures/demo-quick.json`` in the source tree)."""
    from tqdm import tqdm

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise RlseekError(f"--out {out} is not empty; the demo never overwrites — choose a new directory")
    out.mkdir(parents=True, exist_ok=True)
    log = out / "demo.log"
    chosen = [s for s in STAGES if stages is None or s[0] in stages]
    t0 = time.time()
    results: list[StageResult] = []
    uri = _demo_tracking_uri(out)
    with _tracking_env(uri):
        for name, fn in chosen:
            with tqdm(total=1, desc=f"demo: {name}", file=sys.stderr, bar_format="{desc} {elapsed}") as bar:
                ts = time.time()
                r = fn(out, quick, log)
                r.seconds = time.time() - ts
                results.append(r)
                bar.update(1)
    seconds = time.time() - t0
    command = "rlseek demo" + (" --quick" if quick else "") + (f" --stages {','.join(stages)}" if stages else "")
    for path in [out / "figures.json", *([Path(figures)] if figures else [])]:
        write_figures_file(path, results, quick, seconds, command=command)
    return write_report(out, results, quick, seconds, uri)


def _demo_tracking_uri(out: Path) -> str | None:
    """The store the demo records into: ``MLFLOW_TRACKING_URI``, else ``OUT/mlflow.db``;
    None when tracking is switched off."""
    from rlseek.tracking import resolve_tracking

    settings = resolve_tracking(store_dir=out)
    return settings.uri if settings.enabled else None


@contextlib.contextmanager
def _tracking_env(uri: str | None) -> Any:
    """Point every command the demo runs (and their worker processes) at the demo's store."""
    import os

    if uri is None:
        yield
        return
    before = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before
