import json
import os

import numpy as np
import pytest
import soundfile
from audio_fixtures import make_clotho, write_wav
from datasets import Dataset

from llm_aac import cli
from llm_aac.processing.audio_io import decode_audio, ensure_undecoded_audio
from llm_aac.processing.feature_stats import FeatureStatistics
from llm_aac.processing.precompute import (
    CHUNKS_DIR,
    load_precomputed,
    merge_precomputed,
    precompute_features,
)
from modeling_llm_aac import LLMAACFeatureExtractor

RATES = [16000, 22050, 44100, 16000, 8000, 16000, 32000]


@pytest.fixture
def clips(tmp_path):
    paths = [
        write_wav(tmp_path / "audio" / f"clip{i}.wav", seconds=0.2 + 0.07 * i, sampling_rate=rate, frequency=200 + 150 * i, seed=i)
        for i, rate in enumerate(RATES)
    ]
    dataset = Dataset.from_dict({"audio": paths, "captions": [[f"clip {i}"] * 5 for i in range(len(paths))]})
    return ensure_undecoded_audio(dataset)


@pytest.fixture
def extractor():
    return LLMAACFeatureExtractor(feature_type="fbank")


@pytest.fixture
def call_counter(monkeypatch):
    """Counts feature extractor calls; `fail_after` makes the n+1-th call raise (an interruption)."""
    state = {"calls": 0, "fail_after": None}
    original = LLMAACFeatureExtractor.__call__

    def counting(self, *args, **kwargs):
        if state["fail_after"] is not None and state["calls"] >= state["fail_after"]:
            raise KeyboardInterrupt("simulated interruption")
        state["calls"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(LLMAACFeatureExtractor, "__call__", counting)
    return state


def _raw_reference(extractor, value):
    samples, rate = decode_audio(value)
    out = extractor([samples], sampling_rate=rate, return_tensors="np", do_normalize=False)
    return out["input_features"][0, : int(out["attention_mask"][0].sum())]


def _assert_same_rows(a, b):
    assert a.num_rows == b.num_rows and a.column_names == b.column_names
    for i in range(a.num_rows):
        np.testing.assert_array_equal(a[i]["input_features"], b[i]["input_features"])
        assert a[i]["captions"] == b[i]["captions"] and a[i]["num_frames"] == b[i]["num_frames"]


def test_features_are_raw_and_stats_per_bin(clips, extractor, tmp_path):
    result = precompute_features(clips, extractor, tmp_path / "out", chunk_size=3, batch_size=2, progress=False)
    assert result.complete and result.computed_chunks == [0, 1, 2] and result.reused_chunks == []
    dataset = load_precomputed(tmp_path / "out")
    assert dataset.features["input_features"].shape == (None, 128)
    assert dataset.features["input_features"].dtype == "float32"
    assert dataset["captions"][3] == ["clip 3"] * 5
    frames = []
    for i in range(dataset.num_rows):
        stored = dataset[i]["input_features"]
        assert stored.dtype == np.float32 and stored.shape == (dataset[i]["num_frames"], 128)
        np.testing.assert_allclose(stored, _raw_reference(extractor, clips[i]["audio"]), rtol=0, atol=1e-4)
        frames.append(stored)
    expected = FeatureStatistics().update(frames)
    assert result.statistics.count == expected.count
    np.testing.assert_allclose(result.statistics.mean, expected.mean, rtol=1e-12)
    np.testing.assert_allclose(result.statistics.std, expected.std, rtol=1e-12)

    with open(tmp_path / "out" / "preprocessor_config.json") as f:
        saved = json.load(f)
    assert saved["feature_mean"] == result.statistics.mean.tolist() and saved["do_normalize"] is True
    reloaded = LLMAACFeatureExtractor.from_pretrained(tmp_path / "out")
    np.testing.assert_allclose(reloaded.feature_std, result.statistics.normalization_std(), rtol=1e-12)
    assert np.all(np.asarray(reloaded.feature_std) > 0)


def test_rerun_is_a_cache_hit(clips, extractor, tmp_path, call_counter):
    precompute_features(clips, extractor, tmp_path / "out", chunk_size=4, progress=False)
    first_calls = call_counter["calls"]
    assert first_calls > 0
    chunk_dirs = sorted(os.listdir(tmp_path / "out" / CHUNKS_DIR))
    mtimes = [os.stat(tmp_path / "out" / CHUNKS_DIR / d / "stats.json").st_mtime_ns for d in chunk_dirs]
    again = precompute_features(clips, LLMAACFeatureExtractor(feature_type="fbank"), tmp_path / "out", chunk_size=4, progress=False)
    assert call_counter["calls"] == first_calls
    assert again.computed_chunks == [] and again.reused_chunks == [0, 1] and again.complete
    assert mtimes == [os.stat(tmp_path / "out" / CHUNKS_DIR / d / "stats.json").st_mtime_ns for d in chunk_dirs]


def test_interrupted_run_resumes_without_redoing_chunks(clips, extractor, tmp_path, call_counter):
    reference = precompute_features(clips, extractor, tmp_path / "ref", chunk_size=2, batch_size=1, progress=False)
    calls_per_clip = call_counter["calls"] / clips.num_rows
    call_counter["calls"] = 0
    call_counter["fail_after"] = 3  # dies in the middle of the second chunk
    with pytest.raises(KeyboardInterrupt):
        precompute_features(clips, extractor, tmp_path / "out", chunk_size=2, batch_size=1, progress=False)
    chunks = tmp_path / "out" / CHUNKS_DIR
    left = sorted(os.listdir(chunks))
    assert len(left) == 2 and left[0].startswith(".tmp-chunk-00001-") and left[1] == "chunk-00000"
    with pytest.raises(ValueError, match="missing 3 of 4 chunks"):
        load_precomputed(tmp_path / "out")
    assert load_precomputed(tmp_path / "out", allow_partial=True).num_rows == 2

    call_counter["calls"], call_counter["fail_after"] = 0, None
    resumed = precompute_features(clips, extractor, tmp_path / "out", chunk_size=2, batch_size=1, progress=False)
    assert resumed.reused_chunks == [0] and resumed.computed_chunks == [1, 2, 3]
    assert call_counter["calls"] == (clips.num_rows - 2) * calls_per_clip
    assert sorted(os.listdir(chunks)) == [f"chunk-0000{i}" for i in range(4)]  # stale temporary folder gone
    _assert_same_rows(load_precomputed(tmp_path / "out"), load_precomputed(tmp_path / "ref"))
    np.testing.assert_array_equal(resumed.statistics.m2, reference.statistics.m2)


def test_shards_merge_to_the_single_run_statistics(clips, extractor, tmp_path):
    single = precompute_features(clips, extractor, tmp_path / "single", chunk_size=2, progress=False)
    dirs = []
    for shard in range(3):
        part = precompute_features(
            clips, extractor, tmp_path / f"machine{shard}", chunk_size=2, num_shards=3, shard_index=shard, progress=False
        )
        assert not part.complete and part.computed_chunks == list(range(shard, 4, 3))
        dirs.append(tmp_path / f"machine{shard}")
    with pytest.raises(ValueError, match=r"lack 1 of 4 chunks: \[2\]"):
        merge_precomputed(dirs[:2], tmp_path / "merged")
    statistics, merged_extractor = merge_precomputed(dirs, tmp_path / "merged")
    assert statistics.count == single.statistics.count
    np.testing.assert_allclose(statistics.mean, single.statistics.mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(statistics.std, single.statistics.std, rtol=0, atol=1e-12)
    assert merged_extractor.feature_mean == single.feature_extractor.feature_mean
    _assert_same_rows(load_precomputed(tmp_path / "merged"), load_precomputed(tmp_path / "single"))

    # Statistics do not depend on the chunk grid either (beyond float64 rounding).
    other_grid = precompute_features(clips, extractor, tmp_path / "grid5", chunk_size=5, progress=False)
    np.testing.assert_allclose(other_grid.statistics.mean, single.statistics.mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(other_grid.statistics.std, single.statistics.std, rtol=0, atol=1e-12)


def test_output_of_another_configuration_is_protected(clips, extractor, tmp_path):
    precompute_features(clips.select(range(2)), extractor, tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match="another dataset or configuration"):
        precompute_features(clips, extractor, tmp_path / "out", progress=False)
    cwt = LLMAACFeatureExtractor(feature_type="cwt", num_scales=16)
    with pytest.raises(ValueError, match="feature_extractor"):
        precompute_features(clips.select(range(2)), cwt, tmp_path / "out", progress=False)
    replaced = precompute_features(clips.select(range(2)), cwt, tmp_path / "out", overwrite=True, progress=False)
    assert replaced.complete and load_precomputed(tmp_path / "out")[0]["input_features"].shape[1] == 16
    with pytest.raises(ValueError, match="fingerprints"):
        merge_precomputed([tmp_path / "out", _other_output(clips, extractor, tmp_path)], tmp_path / "m")


def _other_output(clips, extractor, tmp_path):
    precompute_features(clips.select(range(3)), extractor, tmp_path / "other", progress=False)
    return tmp_path / "other"


def test_num_proc_workers_write_the_same_features(clips, extractor, tmp_path):
    serial = precompute_features(clips, extractor, tmp_path / "serial", chunk_size=7, progress=False)
    parallel = precompute_features(clips, extractor, tmp_path / "parallel", chunk_size=7, num_proc=2, progress=False)
    _assert_same_rows(load_precomputed(tmp_path / "parallel"), load_precomputed(tmp_path / "serial"))
    np.testing.assert_array_equal(parallel.statistics.mean, serial.statistics.mean)


def test_bad_audio_names_the_file(tmp_path, extractor, clips):
    (tmp_path / "broken.wav").write_bytes(b"not audio at all" * 10)
    dataset = ensure_undecoded_audio(Dataset.from_dict({"audio": [str(tmp_path / "broken.wav")]}))
    with pytest.raises(ValueError, match="broken.wav"):
        precompute_features(dataset, extractor, tmp_path / "out", progress=False)
    samples = np.zeros(4000, np.float32)
    samples[123] = np.nan
    soundfile.write(tmp_path / "nan.wav", samples, 16000, subtype="FLOAT")
    good = clips[0]["audio"]["path"]
    dataset = ensure_undecoded_audio(Dataset.from_dict({"audio": [good, str(tmp_path / "nan.wav")]}))
    with pytest.raises(ValueError, match=r"nan\.wav.*NaN"):
        precompute_features(dataset, extractor, tmp_path / "out2", progress=False)


def test_cli_precompute_shards_and_merge(tmp_path, capsys):
    root = make_clotho(tmp_path / "clotho")
    common = ["precompute", "--dataset", root, "--split", "development", "--feature-type", "fbank", "--chunk-size", "1"]
    for shard in range(2):
        args = common + ["--output", str(tmp_path / f"s{shard}"), "--num-shards", "2", "--shard-index", str(shard)]
        assert cli.main(args) == 0
    assert "merge all shards" in capsys.readouterr().out
    assert cli.main(["precompute", "--merge-stats", str(tmp_path / "s0"), str(tmp_path / "s1"), "--output", str(tmp_path / "m")]) == 0
    assert "statistics over" in capsys.readouterr().out
    assert cli.main(common + ["--output", str(tmp_path / "single")]) == 0
    assert "computed 3, reused 0" in capsys.readouterr().out
    assert cli.main(common + ["--output", str(tmp_path / "single")]) == 0
    assert "computed 0, reused 3" in capsys.readouterr().out
    merged = FeatureStatistics.load(tmp_path / "m" / "statistics.json")
    single = FeatureStatistics.load(tmp_path / "single" / "statistics.json")
    np.testing.assert_allclose(merged.mean, single.mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(merged.m2 / merged.count, single.m2 / single.count, rtol=1e-12)
    assert load_precomputed(tmp_path / "m")["file_name"] == load_precomputed(tmp_path / "single")["file_name"]


def test_cli_on_the_synthetic_corpus_every_split(tmp_path, capsys):
    from llm_aac.processing.collate import AudioFeatureCollator
    from llm_aac.processing.synthetic import synthesize_corpus

    synthesize_corpus(num_clips=4, seed=3, output_dir=tmp_path / "synth")
    args = ["precompute", "--dataset", str(tmp_path / "synth"), "--feature-type", "fbank", "--output", str(tmp_path / "features")]
    assert cli.main(args) == 0
    assert capsys.readouterr().out.count("statistics over") == 4
    test = load_precomputed(tmp_path / "features" / "test")
    assert test.features["input_features"].shape == (None, 128)
    assert len(test[0]["captions"]) == 5 and "events" in test.column_names
    extractor = LLMAACFeatureExtractor.from_pretrained(tmp_path / "features" / "test")
    batch = AudioFeatureCollator(extractor, extra_columns=("captions",))([test[0]])
    frames = test[0]["num_frames"]
    assert batch["attention_mask"].sum().item() == frames
    # Per-bin statistics of a single clip normalise it to zero mean, unit variance.
    normalised = batch["input_features"][0, :frames].double()
    assert normalised.mean(0).abs().max().item() < 1e-4
