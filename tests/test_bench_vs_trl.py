"""The TRL side-by-side benchmark's base cache and its summary across bases (no training here)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bench_vs_trl_grpo", ROOT / "benchmarks" / "bench_vs_trl_grpo.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_a_cached_base_of_another_seed_is_refused_not_reused(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "base"
    folder.mkdir()
    meta = {"seed": 1, "target": 0.5, "pretrain_steps": 640}
    (folder / "base_meta.json").write_text(json.dumps(meta))
    assert bench.build_base(folder, [], [], 0.5, seed=1) == meta  # same seed and target: reused
    with pytest.raises(SystemExit) as exc:
        bench.build_base(folder, [], [], 0.5, seed=0)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "base_meta.json" in err and "seed 1" in err and "seed 0" in err
    with pytest.raises(SystemExit):
        bench.build_base(folder, [], [], 0.6, seed=1)  # another target is another base too
    assert json.loads((folder / "base_meta.json").read_text()) == meta  # nothing overwritten


def _base(seed: int, trl: dict[str, float], rlseek: dict[str, tuple[float, float | None]]) -> dict:
    summary = {f"TRL GRPO lr={lr}": {"best_exact_match": a, "time_ratio_to_trl": None} for lr, a in trl.items()}
    best = max(summary, key=lambda k: summary[k]["best_exact_match"])
    summary[best]["time_ratio_to_trl"] = 1.0
    summary.update({f"rlseek {n} lr=0.0006": {"best_exact_match": a, "time_ratio_to_trl": r}
                    for n, (a, r) in rlseek.items()})
    return {"seed": seed, "trl_best_run": best, "summary": summary}


def test_across_bases_counts_per_method_with_trl_at_its_best_rate() -> None:
    bases = [_base(0, {"0.001": 0.74, "0.0003": 0.71}, {"lm-ppo": (0.757, 0.37), "lm-grpo": (0.753, 0.54)}),
             _base(1, {"0.001": 0.87, "0.0003": 0.93}, {"lm-ppo": (0.953, 0.35), "lm-grpo": (0.923, None)}),
             _base(2, {"0.001": 0.91, "0.0003": 0.90}, {"lm-ppo": (0.903, None), "lm-grpo": (0.88, 0.5)})]
    out = bench.across_bases(bases)
    assert set(out) == {"TRL GRPO (best lr)", "rlseek lm-ppo", "rlseek lm-grpo"}
    assert out["TRL GRPO (best lr)"]["best"] == [0.74, 0.93, 0.91]  # the best rate per base
    assert out["TRL GRPO (best lr)"]["reached_0.90"] == 2
    assert out["rlseek lm-ppo"] == {"bases": 3, "reached_0.90": 2, "within_half_trl_time": 2,
                                    "best": [0.757, 0.953, 0.903], "ratio": [0.37, 0.35, None]}
    assert out["rlseek lm-grpo"]["within_half_trl_time"] == 1  # 0.5 counts, 0.54 and "not reached" do not
    assert out["rlseek lm-grpo"]["reached_0.90"] == 1


def test_across_bases_takes_a_methods_best_rate_on_each_base() -> None:
    base = _base(0, {"0.001": 0.74}, {"lm-grpo": (0.70, None)})
    base["summary"]["rlseek lm-grpo lr=0.0003"] = {"best_exact_match": 0.91, "time_ratio_to_trl": 0.4}
    out = bench.across_bases([base])["rlseek lm-grpo"]
    assert out == {"bases": 1, "reached_0.90": 1, "within_half_trl_time": 1, "best": [0.91], "ratio": [0.4]}
