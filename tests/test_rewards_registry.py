"""The reward registry and WeightedReward: weighting, NaN, normalization, errors, user modules."""

from __future__ import annotations

import json
import math
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest

import rlseek  # noqa: F401  (registers the envs)
from rlseek.cli import main
from rlseek.errors import RlseekError
from rlseek.rewards import (
    TextBatch,
    WeightedReward,
    get_reward,
    import_reward_modules,
    list_rewards,
    register_reward,
)

# Terms registered by this module; names start with "t_" so they cannot clash with builtins.
_VALUES: dict[str, float] = {"t_a": 1.0, "t_b": 2.0, "t_nan": float("nan")}


@register_reward("t_a", kind="robot")
def t_a(obs, action, next_obs, info, *, scale: float = 1.0):  # type: ignore[no-untyped-def]
    """Test term: info['a'] times scale."""
    return info.get("a", _VALUES["t_a"]) * scale


@register_reward("t_b", kind="robot")
def t_b(obs, action, next_obs, info):  # type: ignore[no-untyped-def]
    """Test term: info['b']."""
    return info.get("b", _VALUES["t_b"])


@register_reward("t_nan", kind="robot")
def t_nan(obs, action, next_obs, info):  # type: ignore[no-untyped-def]
    """Test term: NaN unless info['c'] is given (not applicable)."""
    return info.get("c", float("nan"))


@register_reward("t_inf", kind="robot")
def t_inf(obs, action, next_obs, info):  # type: ignore[no-untyped-def]
    """Test term: always +inf (a broken term)."""
    return math.inf


@register_reward("t_len", kind="text")
def t_len(batch, *, unit: float = 1.0):  # type: ignore[no-untyped-def]
    """Test term: completion length in characters times unit; NaN where the answer is None."""
    return np.array(
        [len(c) * unit if a is not None else np.nan for c, a in zip(batch.completions, batch.answers)]
    )


@register_reward("t_bad_shape", kind="text")
def t_bad_shape(batch):  # type: ignore[no-untyped-def]
    """Test term: returns one value too many."""
    return np.zeros(len(batch) + 1)


def batch(completions: list[str], answers: list[str | None] | None = None) -> TextBatch:
    n = len(completions)
    return TextBatch(
        prompts=["p"] * n,
        completions=completions,
        completion_ids=[[1, 2]] * n,
        answers=answers if answers is not None else ["x"] * n,
        eos=np.ones(n, dtype=bool),
    )


def test_total_is_the_weighted_sum_and_breakdown_is_raw() -> None:
    wr = WeightedReward({"t_a": 0.5, "t_b": -2.0}, params={"t_a": {"scale": 3.0}}, kind="robot")
    total, terms = wr(None, None, None, {"a": 2.0, "b": 1.5})
    assert terms == {"t_a": 6.0, "t_b": 1.5}
    assert total == pytest.approx(0.5 * 6.0 - 2.0 * 1.5)
    assert wr.params["t_a"] == {"scale": 3.0} and wr.params["t_b"] == {}
    assert wr.to_config() == {"weights": {"t_a": 0.5, "t_b": -2.0}, "params": {"t_a": {"scale": 3.0}, "t_b": {}}}


def test_zero_weight_term_is_still_reported() -> None:
    wr = WeightedReward({"t_a": 1.0, "t_b": 0.0})
    total, terms = wr(None, None, None, {"a": 1.0, "b": 5.0})
    assert total == 1.0 and terms["t_b"] == 5.0


def test_nan_counts_as_zero_and_is_counted_robot() -> None:
    wr = WeightedReward({"t_a": 1.0, "t_nan": 10.0})
    total, terms = wr(None, None, None, {"a": 2.0})
    assert total == 2.0 and math.isnan(terms["t_nan"])
    wr(None, None, None, {"a": 2.0})
    total, _ = wr(None, None, None, {"a": 2.0, "c": 0.5})
    assert total == pytest.approx(2.0 + 5.0)
    assert wr.nan_counts == {"t_a": 0, "t_nan": 2}


def test_nan_counts_as_zero_and_is_counted_text() -> None:
    wr = WeightedReward({"t_len": 0.5}, params={"t_len": {"unit": 2.0}}, kind="text")
    totals, values = wr(batch(["abc", "de", "f"], answers=["1", None, "3"]))
    np.testing.assert_allclose(values["t_len"], [6.0, np.nan, 2.0])
    np.testing.assert_allclose(totals, [3.0, 0.0, 1.0])
    assert wr.nan_counts["t_len"] == 1


def test_normalize_standardizes_each_term_and_keeps_raw_values() -> None:
    wr = WeightedReward({"t_len": 2.0}, kind="text", normalize=True)
    comps = ["a", "abc", "abcde", "abcdefg"]
    totals, values = wr(batch(comps))
    raw = np.array([1.0, 3.0, 5.0, 7.0])
    np.testing.assert_allclose(values["t_len"], raw)
    np.testing.assert_allclose(totals, 2.0 * (raw - raw.mean()) / (raw.std() + 1e-8))
    # Running statistics carry over to the next batch and survive a state round trip.
    wr2 = WeightedReward({"t_len": 2.0}, kind="text", normalize=True)
    wr2.load_state_dict(json.loads(json.dumps(wr.state_dict())))
    t1, _ = wr(batch(["abcd"]))
    t2, _ = wr2(batch(["abcd"]))
    np.testing.assert_allclose(t1, t2)
    all_raw = np.array([1.0, 3.0, 5.0, 7.0, 4.0])
    np.testing.assert_allclose(t1, 2.0 * (4.0 - all_raw.mean()) / (all_raw.std() + 1e-8))


def test_normalize_ignores_nan_in_statistics() -> None:
    wr = WeightedReward({"t_len": 1.0}, kind="text", normalize=True)
    totals, _ = wr(batch(["ab", "abcdef", "abcd"], answers=["x", None, "x"]))
    # Statistics from the two applicable samples only (2 and 4): mean 3, std 1.
    np.testing.assert_allclose(totals, [-1.0, 0.0, 1.0], atol=1e-6)
    assert wr.stats["t_len"].count == 2


def test_unknown_term_has_did_you_mean_and_known_list() -> None:
    with pytest.raises(RlseekError) as info:
        WeightedReward({"distanse": 1.0}, kind="robot")
    msg = str(info.value)
    assert "unknown reward term 'distanse' (did you mean 'distance'?)" in msg
    assert "known robot terms:" in msg and "control" in msg
    with pytest.raises(RlseekError, match="did you mean 't_len'"):
        get_reward("t_lenn", kind="text")


@pytest.mark.parametrize(
    ("weights", "fragment"),
    [
        ({"t_a": float("inf")}, "must be finite"),
        ({"t_a": float("nan")}, "must be finite"),
        ({"t_a": -float("inf"), "t_b": 1.0}, "must be finite"),
        ({"t_a": 0.0, "t_b": 0.0}, "all zero"),
        ({}, "non-empty mapping"),
        ({"t_a": "1.0"}, "must be a number"),
        ({"t_a": True}, "must be a number"),
        ({"t_a": None}, "must be a number"),
    ],
)
def test_bad_weights_are_rejected(weights: dict, fragment: str) -> None:
    with pytest.raises(RlseekError, match=fragment):
        WeightedReward(weights)


def test_bad_params_are_rejected() -> None:
    with pytest.raises(RlseekError, match=r"unknown parameter\(s\) \['scal'\] for reward term 't_a'"):
        WeightedReward({"t_a": 1.0}, params={"t_a": {"scal": 2}})
    with pytest.raises(RlseekError, match="have no weight"):
        WeightedReward({"t_a": 1.0}, params={"t_b": {}})


def test_kind_mismatch_is_rejected() -> None:
    with pytest.raises(RlseekError, match="'t_len' is a text term and cannot score a robot environment"):
        WeightedReward({"t_len": 1.0}, kind="robot")


def test_broken_terms_raise() -> None:
    with pytest.raises(ValueError, match="infinite"):
        WeightedReward({"t_inf": 1.0})(None, None, None, {})
    with pytest.raises(ValueError, match="shape"):
        WeightedReward({"t_bad_shape": 1.0}, kind="text")(batch(["a", "b"]))


def test_registering_a_name_twice_needs_override() -> None:
    def other(obs, action, next_obs, info):  # type: ignore[no-untyped-def]
        return 0.0

    with pytest.raises(ValueError, match="already registered"):
        register_reward("t_b", kind="robot")(other)
    with pytest.raises(ValueError, match="kind must be one of"):
        register_reward("t_new", kind="audio")
    assert get_reward("t_b").fn is t_b


def test_registry_lists_terms_with_their_params() -> None:
    names = {t.name: t for t in list_rewards("robot")}
    assert {"distance", "control", "t_a"} <= set(names)
    assert names["t_a"].defaults == {"scale": 1.0}
    assert names["t_a"].description == "Test term: info['a'] times scale."
    assert all(t.kind == "text" for t in list_rewards("text"))


@pytest.fixture(scope="module")
def user_module(tmp_path_factory: pytest.TempPathFactory) -> str:
    # Module-scoped: importing the module registers its term once for the whole process.
    folder = tmp_path_factory.mktemp("usermod")
    name = "rlseek_user_terms_for_test"
    (folder / f"{name}.py").write_text(
        textwrap.dedent(
            """
            from rlseek.rewards import register_reward

            @register_reward("user_still", kind="robot")
            def user_still(obs, action, next_obs, info, *, bonus=1.0):
                "A user term: a constant bonus per step."
                return bonus
            """
        )
    )
    sys.path.insert(0, str(folder))
    yield name
    sys.path.remove(str(folder))


def test_user_module_terms_work_in_a_real_env(user_module: str) -> None:
    import_reward_modules([user_module])
    env = gym.make(
        "rlseek/Reacher-v0",
        reward={"distance": 1.0, "user_still": 0.5},
        reward_params={"user_still": {"bonus": 4.0}},
    )
    try:
        env.reset(seed=0)
        _, reward, _, _, info = env.step(np.zeros(2, dtype=np.float32))
    finally:
        env.close()
    assert info["reward_user_still"] == 4.0
    assert reward == pytest.approx(info["reward_distance"] + 0.5 * 4.0)


def test_user_module_via_cli_import(user_module: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rewards", "--json", "--import", user_module]) == 0
    terms = {t["name"]: t for t in json.loads(capsys.readouterr().out)}
    assert terms["user_still"]["params"] == {"bonus": 1.0}
    assert terms["user_still"]["module"] == user_module


def test_missing_user_module_is_one_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(RlseekError, match="cannot import reward module 'no_such_rlseek_mod'"):
        import_reward_modules(["no_such_rlseek_mod"])
    assert main(["rewards", "--import", "no_such_rlseek_mod"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no_such_rlseek_mod" in err
