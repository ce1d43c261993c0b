import numpy as np
import pytest
from datasets import Array2D, Dataset, Features, Value

from llm_aac.processing.feature_stats import FeatureStatistics, compute_feature_statistics, merge_statistics


def _clips(seed=0, num=7, bins=5):
    rng = np.random.default_rng(seed)
    # Large offset relative to the spread: the case where sum/sum-of-squares loses digits.
    return [(rng.standard_normal((int(rng.integers(1, 40)), bins)) * 0.5 - 1e3).astype(np.float32) for _ in range(num)]


def test_matches_numpy_over_all_frames():
    clips = _clips()
    stats = FeatureStatistics().update(clips)
    frames = np.concatenate(clips).astype(np.float64)
    assert stats.count == frames.shape[0]
    np.testing.assert_allclose(stats.mean, frames.mean(0), rtol=0, atol=1e-10)
    np.testing.assert_allclose(stats.std, frames.std(0), rtol=1e-10)


def test_merge_is_independent_of_how_frames_are_split():
    clips = _clips(1, num=12)
    whole = FeatureStatistics().update(clips)
    batches = FeatureStatistics()
    for i in range(0, 12, 5):
        batches.update(clips[i : i + 5])
    pieces = merge_statistics(FeatureStatistics().update(clips[i : i + 3]) for i in range(0, 12, 3))
    for other in (batches, pieces):
        assert other.count == whole.count
        np.testing.assert_allclose(other.mean, whole.mean, rtol=1e-12, atol=0)
        np.testing.assert_allclose(other.std, whole.std, rtol=1e-12, atol=0)


def test_json_round_trip_is_exact(tmp_path):
    stats = FeatureStatistics().update(_clips(2))
    stats.save(tmp_path / "s.json")
    loaded = FeatureStatistics.load(tmp_path / "s.json")
    assert loaded.count == stats.count
    np.testing.assert_array_equal(loaded.mean, stats.mean)
    np.testing.assert_array_equal(loaded.m2, stats.m2)


def test_empty_pieces_and_bad_input():
    stats = FeatureStatistics().update(_clips(3))
    assert FeatureStatistics().merge(stats).count == stats.count
    assert stats.merge(FeatureStatistics()).count == stats.count
    with pytest.raises(ValueError, match="No frames"):
        FeatureStatistics().std
    with pytest.raises(ValueError, match="5 and 3 bins"):
        stats.merge(FeatureStatistics().update(np.zeros((2, 3), np.float32)))
    bad = np.zeros((4, 5), np.float32)
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"Non-finite.*\[2\]"):
        FeatureStatistics().update(bad)
    with pytest.raises(ValueError, match="2-D"):
        FeatureStatistics().update([np.zeros(5)])


def test_streaming_pass_over_arrow_and_apply_to_extractor():
    clips = _clips(4)
    features = Features({"input_features": Array2D(shape=(None, 5), dtype="float32"), "n": Value("int32")})
    dataset = Dataset.from_dict({"input_features": clips, "n": [len(c) for c in clips]}, features=features)
    streamed = compute_feature_statistics(dataset, batch_size=3)
    direct = FeatureStatistics().update(clips)
    np.testing.assert_allclose(streamed.mean, direct.mean, rtol=1e-12)
    np.testing.assert_allclose(streamed.m2, direct.m2, rtol=1e-12)

    class Extractor:
        feature_size = 5
        feature_mean = -4.268
        feature_std = 9.138

    extractor = streamed.apply_to(Extractor())
    assert extractor.feature_mean == streamed.mean.tolist() and len(extractor.feature_std) == 5
    constant = FeatureStatistics().update(np.ones((3, 5), np.float32))
    assert constant.apply_to(Extractor()).feature_std == [1e-6] * 5
    one_flat_bin = np.random.default_rng(0).standard_normal((50, 5)).astype(np.float32)
    one_flat_bin[:, 2] = -15.9
    floored = FeatureStatistics().update(one_flat_bin)
    std = floored.apply_to(Extractor()).feature_std
    assert std[2] == pytest.approx(1e-3 * np.median(floored.std)) and std[0] == floored.std[0]
    Extractor.feature_size = 4
    with pytest.raises(ValueError, match="5 bins but the feature extractor produces 4"):
        streamed.apply_to(Extractor())
