"""The human-readable outputs of a comparison: a Markdown table and a plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlseek.runs import atomic_write_bytes, atomic_write_text


def _ci(d: dict[str, float]) -> str:
    return f"{d['estimate']:.1f} [{d['ci_low']:.1f}, {d['ci_high']:.1f}]"


def markdown(results: dict[str, Any]) -> str:
    """results.json as a Markdown report: dataset line, one row per algorithm, P(A > B)."""
    ds, st = results["dataset"], results["settings"]
    ref = ds.get("reference") or {}
    beh = ds.get("behaviour") or {}
    lines = [
        f"# Offline comparison on {ds['env_id']} ({ds['kind']})",
        "",
        f"Dataset: `{ds['path']}` — {ds['n_transitions']} transitions, {ds['n_episodes']} episodes, "
        f"data sha256 `{ds['data_sha256'][:16]}…`.",
        f"Behaviour policy: mean return {_num(beh.get('mean_return'))} "
        f"(normalized {_num(ds.get('behaviour_normalized'), 1)}). "
        f"References ({ref.get('episodes')} episodes each): random {_num(ref.get('random_return'))}, "
        f"expert {_num(ref.get('expert_return'))}.",
        f"Budget: {st['steps']} gradient steps per run, {st['seeds']} seeds per algorithm, "
        f"{st['eval_episodes']} evaluation episodes per run (reset seeds {st['eval_seed']}+i), device {st['device']}.",
        "",
        "Score = normalized score of the final policy (0 = random, 100 = expert). "
        f"CIs: {int(100 * 0.95)}% stratified bootstrap, {st['bootstrap_reps']} replications.",
        "",
        "| algo | runs | IQM [95% CI] | mean [95% CI] | median | mean return | success rate | s/run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for algo, row in results["summary"].items():
        succ = "—" if row.get("success_rate") is None else f"{row['success_rate']:.2f}"
        lines.append(
            f"| {algo} | {row['runs']} | {_ci(row['iqm'])} | {_ci(row['mean'])} | {row['median']:.1f} | "
            f"{row['mean_return']:.2f} | {succ} | {row['train_seconds_per_run']:.0f} |"
        )
    lines.append("")
    for pair, p in results["probability_of_improvement"].items():
        a, b = pair.split(">")
        lines.append(f"P({a.upper()} > {b.upper()}) = {p['estimate']:.2f} [{p['ci_low']:.2f}, {p['ci_high']:.2f}]")
    lines.append("")
    lines.append("Per-seed scores: " + "; ".join(
        f"{a}: " + ", ".join(f"{x:.1f}" for x in row["scores"]) for a, row in results["summary"].items()))
    return "\n".join(lines) + "\n"


def _num(x: Any, digits: int = 2) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def write_markdown(path: str | Path, results: dict[str, Any]) -> None:
    atomic_write_text(path, markdown(results))


def write_plot(path: str | Path, results: dict[str, Any]) -> None:
    """IQM with its 95% CI per algorithm, and every seed's final score as a dot."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = results["summary"]
    algos = list(summary)
    fig, ax = plt.subplots(figsize=(6, 1.2 + 0.8 * len(algos)), dpi=110)
    for i, a in enumerate(algos):
        row = summary[a]
        iq = row["iqm"]
        ax.errorbar(iq["estimate"], i, xerr=[[iq["estimate"] - iq["ci_low"]], [iq["ci_high"] - iq["estimate"]]],
                    fmt="s", color=f"C{i}", capsize=6, markersize=8, label=f"{a} IQM")
        ax.scatter(row["scores"], [i + 0.18] * len(row["scores"]), color=f"C{i}", alpha=0.5, s=18)
    ax.set_yticks(range(len(algos)), [a.upper() for a in algos])
    ax.set_ylim(-0.6, len(algos) - 0.4)
    ax.set_xlabel("normalized score (0 = random, 100 = expert)")
    ds = results["dataset"]
    title = f"{ds['env_id']} {ds['kind']}: IQM, 95% CI, seeds as dots"
    pairs = results["probability_of_improvement"]
    if pairs:
        k, p = next(iter(pairs.items()))
        a, b = k.split(">")
        title += f"\nP({a.upper()} > {b.upper()}) = {p['estimate']:.2f} [{p['ci_low']:.2f}, {p['ci_high']:.2f}]"
    ax.set_title(title, fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
