"""IQM, stratified bootstrap CIs and probability of improvement (rlseek.statistics)."""

import numpy as np
import pytest

from rlseek import statistics as st
from rlseek.errors import RlseekError


def test_iqm_is_the_mean_of_the_middle_half():
    # 8 scores: the lowest two and highest two are dropped; mean of 3, 4, 5, 6 is 4.5.
    assert st.iqm([1, 2, 3, 4, 5, 6, 7, 8]) == pytest.approx(4.5)
    # One wild seed moves the mean a lot and the IQM not at all.
    assert st.iqm([1, 2, 3, 4, 5, 6, 7, 1000]) == pytest.approx(4.5)


def test_iqm_pools_runs_and_tasks():
    scores = np.array([[1.0, 5.0], [2.0, 6.0], [3.0, 7.0], [4.0, 8.0]])
    assert st.iqm(scores) == pytest.approx(4.5)


def test_probability_of_improvement_extremes_and_ties():
    assert st.probability_of_improvement([5, 6, 7], [1, 2, 3]) == pytest.approx(1.0)
    assert st.probability_of_improvement([1, 2, 3], [5, 6, 7]) == pytest.approx(0.0)
    assert st.probability_of_improvement([1, 2, 3], [1, 2, 3]) == pytest.approx(0.5)
    # x beats y in 3 of 4 pairs: (2>1), (4>1), (4>3); (2<3).
    assert st.probability_of_improvement([2, 4], [1, 3]) == pytest.approx(0.75)


def test_bootstrap_ci_brackets_the_estimate_and_is_seeded():
    rng = np.random.default_rng(0)
    scores = rng.normal(50, 10, size=10)
    a = st.bootstrap_ci(st.iqm, scores, reps=500, seed=3)
    b = st.bootstrap_ci(st.iqm, scores, reps=500, seed=3)
    c = st.bootstrap_ci(st.iqm, scores, reps=500, seed=4)
    assert a == b
    assert (a.low, a.high) != (c.low, c.high)
    assert a.low <= a.estimate <= a.high
    assert a.high - a.low > 0


def test_bootstrap_resamples_within_tasks_only():
    # Task 0 always scores 0 and task 1 always 100: a stratified bootstrap never mixes them, so
    # the mean over both tasks is exactly 50 in every resample.
    scores = np.column_stack([np.zeros(6), np.full(6, 100.0)])
    ci = st.bootstrap_ci(lambda s: float(np.mean(s)), scores, reps=200)
    assert ci.low == pytest.approx(50.0) and ci.high == pytest.approx(50.0)


def test_constant_scores_give_a_zero_width_interval():
    ci = st.bootstrap_ci(st.iqm, [7.0] * 5, reps=100)
    assert (ci.estimate, ci.low, ci.high) == (7.0, 7.0, 7.0)


def test_improvement_interval_for_clearly_separated_algorithms():
    ci = st.improvement([10, 11, 12, 13, 14], [0, 1, 2, 3, 4], reps=300)
    assert ci.estimate == pytest.approx(1.0)
    assert ci.low == pytest.approx(1.0)


def test_summarize_reports_iqm_mean_and_scores():
    out = st.summarize({"bcq": [1, 2, 3, 4, 5], "bc": [2, 2, 2, 2, 2]}, reps=200)
    assert out["bcq"]["runs"] == 5
    assert out["bcq"]["scores"] == [1, 2, 3, 4, 5]
    assert out["bc"]["iqm"]["estimate"] == pytest.approx(2.0)
    assert out["bcq"]["iqm"]["ci_low"] <= out["bcq"]["iqm"]["estimate"] <= out["bcq"]["iqm"]["ci_high"]
    assert out["bcq"]["median"] == pytest.approx(3.0)


@pytest.mark.parametrize("bad", [[], [[]], [1.0, float("nan")], np.zeros((2, 2, 2))])
def test_bad_scores_are_rejected(bad):
    with pytest.raises(RlseekError):
        st.iqm(bad)


def test_bad_bootstrap_settings_are_rejected():
    with pytest.raises(RlseekError):
        st.bootstrap_ci(st.iqm, [1, 2, 3], reps=0)
    with pytest.raises(RlseekError):
        st.bootstrap_ci(st.iqm, [1, 2, 3], confidence=1.5)
    with pytest.raises(RlseekError):
        st.probability_of_improvement([[1, 2]], [[1, 2, 3]])
