"""The README's headline figures are the committed figure files' numbers.

Benchmarks write ``figures/<name>.json`` and the demo ``figures/demo-quick.json`` (see
``rlseek.figures``); this test formats the README's sentences from those files and looks for
them, so a re-measured figure that the README does not carry yet fails here instead of drifting.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "figures"
# Line breaks inside a sentence do not matter: the README is compared with whitespace collapsed.
README = " ".join((ROOT / "README.md").read_text().split())


def _num(x: float, spec: str) -> str:
    # The README writes negative numbers with a minus sign (U+2212), as typeset text does.
    return format(x, spec).replace("-", "\N{MINUS SIGN}")


def _demo(f: dict[str, Any]) -> list[str]:
    st = {name: s["values"] for name, s in f["stages"].items()}
    robot, rm, ppo, off = st["robot"], st["rlhf-data"], st["rlhf-ppo"], st["offline"]
    return [
        f"Reacher eval return {_num(robot['eval_mean_return'], '.1f')} after {robot['env_steps']:,} steps",
        f"reward model {rm['eval_accuracy']:.2f} held-out accuracy on {rm['eval_pairs']} pairs",
        f"positive fraction of sampled reviews from {ppo['base_positive_fraction']:.2f} to "
        f"{ppo['final_positive_fraction']:.2f} in {ppo['completions']} completions (KL {ppo['final_kl']:.2f})",
        f"BCQ {_num(off['bcq_iqm'], '.1f')} vs BC {_num(off['bc_iqm'], '.1f')} normalized on a "
        f"{off['n_transitions']:,}-transition dataset, {off['seeds']} seeds",
        f"(P(BCQ > BC) = {off['p(bcq>bc)']:.2f}",
    ]


def _vs_trl(f: dict[str, Any]) -> list[str]:
    def cell(x: float | None, spec: str, unit: str = "") -> str:
        return "not reached" if x is None else f"{format(x, spec)}{unit}"

    rows = [f"| {name} | {r['best_exact_match']:.3f} | {cell(r['seconds_to_trl_best'], '.1f', ' s')} | "
            f"{cell(r['time_ratio_to_trl'], '.2f', '×')} |" for name, r in f["summary"].items()]
    return [f"TRL's best greedy exact match, {f['trl_best']:.3f}", *rows]


CHECKS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "bench_robot_env": lambda f: [f"steps/s ratio **{f['ratio']:.3f}**"],
    "bench_text_env": lambda f: [
        f"tokens/s ratio **{f['ratio']:.3f}** ({f['env_tokens_per_second']:,.0f} vs "
        f"{f['generate_tokens_per_second']:,.0f}"
    ],
    "demo-quick": _demo,
    "bench_vs_trl_grpo": _vs_trl,
}


def _files() -> list[Path]:
    return sorted(FIGURES.glob("*.json"))


def test_every_figure_file_is_checked_and_complete() -> None:
    names = {p.stem for p in _files()}
    assert names, "no figure files committed under figures/"
    assert names <= set(CHECKS), f"add README checks for: {sorted(names - set(CHECKS))}"
    for path in _files():
        doc = json.loads(path.read_text())
        assert doc["name"] == path.stem
        assert doc["command"] and doc["measured_at"] and doc["machine"]["cpus"]
        assert isinstance(doc["figures"], dict) and doc["figures"]


@pytest.mark.parametrize("path", _files(), ids=lambda p: p.stem)
def test_readme_quotes_the_figure_file(path: Path) -> None:
    doc = json.loads(path.read_text())
    missing = [s for s in CHECKS[path.stem](doc["figures"]) if s not in README]
    assert not missing, f"README does not quote {path.name} (re-measured?); expected: {missing}"


def test_the_check_sees_a_drifted_number() -> None:
    # The check can fail: a figure one unit off in its last digit is not found.
    doc = {"ratio": 0.5, "env_tokens_per_second": 1.0, "generate_tokens_per_second": 2.0}
    assert all(s not in README for s in CHECKS["bench_text_env"](doc))
