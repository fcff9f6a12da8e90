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

    lines = []
    for b in f["bases"]:  # one table row per (base, run), one base line per base
        m = b["base"]
        lines.append(f"| {b['seed']} | {m['pretrain_steps']:,} steps | {m['base_accuracy']:.3f} | "
                     f"{b['trl_best']:.3f} | `{m['weights_sha256'][:12]}` |")
        lines += [f"| {b['seed']} | {name} | {r['best_exact_match']:.3f} | "
                  f"{cell(r['seconds_to_trl_best'], '.1f', ' s')} | {cell(r['time_ratio_to_trl'], '.2f', '×')} |"
                  for name, r in b["summary"].items()]
    for name, m in f["across_bases"].items():  # the summary across bases
        lines.append(f"| {name} | {m['reached_0.90']} of {m['bases']} | {m['within_half_trl_time']} of {m['bases']} | "
                     f"{min(m['best']):.3f}–{max(m['best']):.3f} |")
    return lines


def _continual(f: dict[str, Any]) -> list[str]:
    """One README table row per method: ACC and BWT with their 95 % CIs (see bench_continual)."""
    def cell(x: dict[str, float], spec: str) -> str:
        return f"{_num(x['estimate'], spec)} [{_num(x['ci_low'], spec)}, {_num(x['ci_high'], spec)}]"

    return [f"| {f['sequence']} | {m} | {cell(r['acc'], '.2f')} | {cell(r['bwt'], '+.2f')} |"
            for m, r in f["methods"].items()]


def _ci(d: dict[str, Any], spec: str) -> str:
    return f"{_num(d['estimate'], spec)} [{_num(d['ci_low'], spec)}, {_num(d['ci_high'], spec)}]"


def _moe(f: dict[str, Any]) -> list[str]:
    rows = [f"| {n} | {r['sparse_ms']:.1f} | {r['dense_ms']:.1f} | **{r['dense_over_sparse']:.2f} ×** |"
            for n, r in f["dispatch"]["experts"].items()]
    p = f["ppo"]
    return rows + [
        f"| dense `[64, 64]` | {_ci(p['dense']['return']['iqm'], '.2f')} | "
        f"{sum(p['dense']['steps_per_second']) / len(p['dense']['steps_per_second']):,.0f} |",
        f"| MoE 4 experts, top-2 | {_ci(p['moe']['return']['iqm'], '.2f')} | "
        f"{sum(p['moe']['steps_per_second']) / len(p['moe']['steps_per_second']):,.0f} |",
        f"steps/s ratio MoE / dense {_ci(p['sps_ratio_moe_over_dense'], '.3f')}",
        f"IQM difference MoE − dense {_ci(p['iqm_difference_moe_minus_dense'], '.2f')}",
    ]


def _stages(f: dict[str, Any]) -> list[str]:
    return [f"steps ratio staged / constant {_ci(f['steps_ratio_staged_over_constant'], '.2f')}",
            f"wall-time ratio {_ci(f['wall_s_ratio_staged_over_constant'], '.2f')}",
            f"{f['staged']['reached']} of {f['seeds']} staged and {f['constant']['reached']} of "
            f"{f['seeds']} constant runs reached it"]


def _mixture(f: dict[str, Any]) -> list[str]:
    return [f"| {name} | {m['requested']:.3f} | {m['realised']:.3f} [{m['realised_ci'][0]:.3f}, "
            f"{m['realised_ci'][1]:.3f}] | {m['prompts']} | {m['terms']['accuracy']:.3f} |"
            for name, m in f["sources"].items()]


def _distributed(f: dict[str, Any]) -> list[str]:
    """One README table row per trainer: weight difference and wall times, 1 vs 2 processes."""
    return [f"| {name} | {r['max_weight_diff']:.1e} | {r['train_seconds_1']:.1f} | {r['train_seconds_2']:.1f} | "
            f"{r['speedup']:.2f} × |" for name, r in ((k, f[k]) for k in ("lm-ppo", "lm-ppo-fsdp", "lm-grpo",
                                                                  "reward-model"))]


CHECKS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "bench_distributed": _distributed,
    "bench_moe_stages_moe": _moe,
    "bench_moe_stages_stages_robot": _stages,
    "bench_moe_stages_stages_text": _stages,
    "bench_moe_stages_mixture": _mixture,
    "continual_robot": _continual,
    "continual_text": _continual,
    "bench_robot_env": lambda f: [f"steps/s ratio **{f['ratio']:.3f}**"],
    "bench_text_env": lambda f: [
        f"tokens/s ratio **{f['ratio']:.3f}** ({f['env_tokens_per_second']:,.0f} vs "
        f"{f['generate_tokens_per_second']:,.0f}"
    ],
    "demo-quick": _demo,
    "bench_vs_trl_grpo": _vs_trl,
    "gpu_lm_ppo": lambda f: [
        f"| rollout (decode + env stepping) | **{f['b64_rollout_rollout_tokens_per_s']:,.0f}** tokens/s | "
        f"**{f['b256_rollout_rollout_tokens_per_s']:,.0f}** tokens/s |",
        f"| {f['b64_rollout_hf_static_tokens_per_s']:,.0f} tokens/s | {f['b256_rollout_hf_static_tokens_per_s']:,.0f} tokens/s |",
        f"| ratio | **{f['b64_rollout_rollout_vs_hf_static']:.2f} ×** | **{f['b256_rollout_rollout_vs_hf_static']:.2f} ×** |",
        f"| lm-ppo training MFU | **{100 * f['b64_lm_ppo_train_mfu']:.1f} %** "
        f"({f['b64_lm_ppo_train_seconds_per_iteration']:.3f} s / iteration) | **{100 * f['b256_lm_ppo_train_mfu']:.1f} %**",
        f"training MFU | **{100 * f['b64_lm_grpo_train_mfu']:.1f} %** "
        f"({f['b64_lm_grpo_train_seconds_per_iteration']:.3f} s) | **{100 * f['b256_lm_grpo_train_mfu']:.1f} %**",
        f"| {f['b64_rollout_rollout_peak_memory_gib']:.1f} / {f['b64_lm_ppo_train_peak_memory_gib']:.1f} / "
        f"{f['b64_lm_grpo_train_peak_memory_gib']:.1f} GiB |",
    ],
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
