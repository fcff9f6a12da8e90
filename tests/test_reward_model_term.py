"""The `reward_model` text reward term: registry entry, weighted use, normalization, cache, errors."""

from __future__ import annotations

import numpy as np
import pytest
from test_reward_model_fixtures import build_tiny_backbone, sentiment_pairs

from rlseek.errors import RlseekError
from rlseek.reward_models.data import PreferenceDataset, PreferencePair
from rlseek.reward_models.trainer import BradleyTerryTrainer, TrainConfig
from rlseek.rewards import TextBatch, WeightedReward, get_reward
from rlseek.rewards.learned import term as rm_term
from rlseek.rewards.learned.model import RewardModel


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("rm")
    backbone = build_tiny_backbone(root / "gpt2")
    model = RewardModel.from_backbone(str(backbone))
    data = PreferenceDataset([PreferencePair(**r) for r in sentiment_pairs(128)])
    BradleyTerryTrainer(model, TrainConfig(epochs=3, learning_rate=1e-3)).train(data)
    model.save(root / "model")
    return root / "model"


def _batch(prompts, completions):
    return TextBatch(prompts=prompts, completions=completions, completion_ids=[[1]] * len(prompts),
                     answers=[None] * len(prompts), eos=np.ones(len(prompts), bool))


def test_term_is_registered_with_its_params():
    term = get_reward("reward_model", "text")
    assert term.kind == "text"
    assert set(term.defaults) == {"path", "normalize", "device"}
    assert term.defaults["normalize"] is True


def test_weighted_with_other_terms_and_normalized(rm_dir):
    batch = _batch(["Review of the tent: it is"] * 2 + ["Review of the chair: it is"] * 2,
                   [" excellent.", " terrible.", " lovely.", " broken."])
    reward = WeightedReward({"reward_model": 1.0, "sentiment": 0.5},
                            params={"reward_model": {"path": str(rm_dir), "device": "cpu"}}, kind="text")
    total, values = reward.text(batch)
    model = RewardModel.load(rm_dir)
    raw = model.score([p + c for p, c in zip(batch.prompts, batch.completions)])
    expected = (raw - model.info["score_mean"]) / model.info["score_std"]
    assert np.allclose(values["reward_model"], expected, atol=1e-5)
    assert np.allclose(total, values["reward_model"] + 0.5 * values["sentiment"])
    assert values["reward_model"][0] > values["reward_model"][1]  # learned: positive beats negative
    assert values["reward_model"][2] > values["reward_model"][3]
    unnormalized = get_reward("reward_model").fn(batch, path=str(rm_dir), normalize=False, device="cpu")
    assert np.allclose(unnormalized, raw, atol=1e-5)


def test_model_is_loaded_once_and_reloaded_when_replaced(rm_dir, tmp_path):
    rm_term.clear_cache()
    first = rm_term.load_cached(rm_dir, "cpu")
    assert rm_term.load_cached(rm_dir, "cpu") is first
    copy = tmp_path / "copy"
    first.save(copy)
    a = rm_term.load_cached(copy, "cpu")
    marker = copy / "reward_model.json"
    marker.write_text(marker.read_text())  # a rewritten marker means a replaced model
    import os

    st = marker.stat()
    os.utime(marker, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert rm_term.load_cached(copy, "cpu") is not a


def test_empty_batch_and_bad_paths(rm_dir, tmp_path):
    fn = get_reward("reward_model").fn
    assert fn(_batch([], []), path=str(rm_dir)).shape == (0,)
    with pytest.raises(RlseekError, match="needs a path"):
        fn(_batch(["p"], ["c"]))
    (tmp_path / "plain").mkdir()
    with pytest.raises(RlseekError, match="not an rlseek reward model"):
        fn(_batch(["p"], ["c"]), path=str(tmp_path / "plain"))
