import logging
import os

import numpy as np
import pytest
import soundfile
from audio_fixtures import CLOTHO_FILES, make_audiocaps, make_audioset_repo, make_clotho, tone, write_csv, write_wav
from datasets import Audio, Dataset, DatasetDict

from llm_aac.processing.audio_io import decode_audio, ensure_undecoded_audio
from llm_aac.processing.loaders import (
    detect_dataset_kind,
    load_aac_dataset,
    load_audiocaps,
    load_clotho,
)


def test_decode_audio_accepts_every_value_form(tmp_path):
    path = write_wav(tmp_path / "a.wav", seconds=0.25, sampling_rate=22050)
    samples, rate = decode_audio(path)
    assert rate == 22050 and samples.shape == (5512,) and samples.dtype == np.float32
    with open(path, "rb") as f:
        data = f.read()
    from_bytes, _ = decode_audio({"bytes": data, "path": "ignored/when/bytes/exist.wav"})
    np.testing.assert_array_equal(from_bytes, samples)
    np.testing.assert_array_equal(decode_audio({"bytes": None, "path": path})[0], samples)
    decoded = decode_audio({"array": samples.astype(np.float64), "sampling_rate": 22050})
    assert decoded[0].dtype == np.float32 and decoded[1] == 22050


def test_decode_audio_mixes_stereo_to_mono(tmp_path):
    left, right = tone(0.1, 16000, 300.0), tone(0.1, 16000, 900.0)
    soundfile.write(tmp_path / "st.flac", np.stack([left, right], axis=1), 16000)
    mono, _ = decode_audio(str(tmp_path / "st.flac"))
    np.testing.assert_allclose(mono, (left + right) / 2, atol=1e-4)  # FLAC is 16-bit


def test_decode_audio_errors_name_the_file(tmp_path):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"this is not a RIFF file" * 20)
    with pytest.raises(ValueError, match="corrupt.wav"):
        decode_audio(str(corrupt))
    with pytest.raises(ValueError, match="missing.wav.*does not exist"):
        decode_audio({"bytes": None, "path": str(tmp_path / "missing.wav")})
    with pytest.raises(ValueError, match="no samples"):
        soundfile.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
        decode_audio(str(tmp_path / "empty.wav"))
    with pytest.raises(ValueError, match="embedded bytes"):
        decode_audio({"bytes": b"garbage", "path": None})
    with pytest.raises(TypeError, match="int"):
        decode_audio(3)


def test_clotho_published_layout(tmp_path):
    root = make_clotho(tmp_path / "clotho")
    assert detect_dataset_kind(root) == "clotho"
    dev = load_aac_dataset(root, "train")  # alias of development
    assert isinstance(dev.features["audio"], Audio) and dev.features["audio"].decode is False
    assert dev["file_name"] == CLOTHO_FILES
    row = dev[0]
    assert row["captions"] == [row[f"caption_{i}"] for i in range(1, 6)]
    assert row["caption_1"] == 'Birds, morning.wav caption 1, with "quotes"'
    samples, rate = decode_audio(row["audio"])
    assert rate == 44100 and samples.shape == (int(0.3 * 44100),)
    both = load_aac_dataset(root)
    assert isinstance(both, DatasetDict) and set(both) == {"development", "evaluation"}
    assert both["evaluation"].num_rows == 1


def test_clotho_missing_audio(tmp_path):
    root = make_clotho(tmp_path / "clotho")
    os.remove(os.path.join(root, "development", CLOTHO_FILES[1]))
    with pytest.raises(ValueError, match="rain on roof 2.wav"):
        load_clotho(root, "development")
    assert load_clotho(root, "development", on_missing_audio="skip").num_rows == 2
    with pytest.raises(ValueError, match="Unknown Clotho split"):
        load_clotho(root, "holdout")


def test_clotho_bad_csv_header(tmp_path):
    write_csv(tmp_path / "c" / "clotho_captions_validation.csv", ["file_name", "caption_1"], [["x.wav", "a"]])
    with pytest.raises(ValueError, match=r"missing column\(s\) \['caption_2'"):
        load_clotho(tmp_path / "c", "validation", audio_dir=tmp_path)


def test_audiocaps_groups_captions_per_clip(tmp_path, caplog):
    root = make_audiocaps(tmp_path / "audiocaps")
    assert detect_dataset_kind(root) == "audiocaps"
    with caplog.at_level(logging.WARNING):
        test = load_aac_dataset(root, "test")
    assert "1 of 3 AudioCaps clips have no audio" in caplog.text and "goneVideo00" in caplog.text
    assert test["youtube_id"] == ["abcDEF12345", "zz-_top9876"]
    assert test["start_time"] == [30, 0]
    assert test[0]["captions"] == [f"clip 0 caption {k}" for k in range(5)]
    assert test[1]["audiocap_ids"] == [105, 106, 107, 108, 109]
    assert test[1]["audio"]["path"].endswith("Yzz-_top9876.flac")
    per_caption = load_audiocaps(root, "test", group_captions=False)
    assert per_caption.num_rows == 10 and per_caption[6]["caption"] == "clip 1 caption 1"
    train = load_aac_dataset(root, "train")
    assert train[0]["captions"] == ["a dog barks"]
    with pytest.raises(ValueError, match="goneVideo00"):
        load_audiocaps(root, "test", on_missing_audio="error")


def test_caption_csvs_are_found_in_the_published_subfolders(tmp_path):
    clotho = make_clotho(tmp_path / "clotho")
    os.renames(os.path.join(clotho, "clotho_captions_development.csv"),
               os.path.join(clotho, "clotho_csv_files", "clotho_captions_development.csv"))
    assert load_clotho(clotho, "development")["file_name"] == CLOTHO_FILES
    os.renames(os.path.join(clotho, "clotho_csv_files", "clotho_captions_development.csv"),
               os.path.join(clotho, "csv", "clotho_captions_development.csv"))
    assert load_clotho(clotho, "development").num_rows == len(CLOTHO_FILES)
    audiocaps = make_audiocaps(tmp_path / "audiocaps")
    for folder in ("dataset", "csv"):
        os.renames(os.path.join(audiocaps, "train.csv"), os.path.join(audiocaps, folder, "train.csv"))
        assert load_audiocaps(audiocaps, "train")[0]["captions"] == ["a dog barks"]
        os.renames(os.path.join(audiocaps, folder, "train.csv"), os.path.join(audiocaps, "train.csv"))
    with pytest.raises(ValueError, match=r"No clotho_captions_validation.csv in any of \[.*clotho_csv_files.*csv'\]"):
        load_clotho(clotho, "validation")


def test_audioset_local_copy_of_hub_repo(tmp_path):
    root = make_audioset_repo(tmp_path / "AudioSet")
    assert detect_dataset_kind(root) == "audioset"
    cache = str(tmp_path / "cache")
    train = load_aac_dataset(root, "train", cache_dir=cache)
    assert train.column_names == ["video_id", "audio", "labels", "human_labels"]
    assert train.features["audio"].decode is False
    assert train[0]["human_labels"] == ["Speech", "Gush"]
    samples, rate = decode_audio(train[0]["audio"])
    assert rate == 48000 and samples.shape == (19200,)
    unbalanced = load_aac_dataset(root, "eval", kind="audioset", config="unbalanced", cache_dir=cache)
    assert unbalanced["video_id"] == ["ab0123456-x"]
    assert load_aac_dataset(root, "train", config="unbalanced", cache_dir=cache).num_rows == 3


def test_audioset_rejects_other_columns(tmp_path):
    Dataset.from_dict({"video_id": ["a"], "audio": ["/x.wav"]}).save_to_disk(tmp_path / "notaudioset")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['labels', 'human_labels'\]"):
        load_aac_dataset(tmp_path / "notaudioset", "train", kind="audioset")


def test_audiofolder_with_metadata_and_captions(tmp_path):
    root = tmp_path / "af"
    write_wav(root / "one.wav")
    write_wav(root / "sub" / "two.wav", sampling_rate=8000)
    write_csv(root / "metadata.csv", ["file_name", "caption_1", "caption_2"], [["one.wav", "a", "b"], ["sub/two.wav", "c", "d"]])
    assert detect_dataset_kind(root) == "audiofolder"
    dataset = load_aac_dataset(root, "train")
    assert dataset["captions"] == [["a", "b"], ["c", "d"]]
    assert decode_audio(dataset[1]["audio"])[1] == 8000
    write_csv(root / "metadata.csv", ["file_name", "caption"], [["../escape.wav", "x"]])
    with pytest.raises(ValueError, match="relative path inside"):
        load_aac_dataset(root, "train")


def test_audiofolder_split_folders_and_labels(tmp_path):
    root = tmp_path / "af"
    write_wav(root / "train" / "dog" / "1.wav")
    write_wav(root / "train" / "cat" / "2.wav")
    write_wav(root / "test" / "dog" / "3.wav")
    dataset = load_aac_dataset(root)
    assert set(dataset) == {"train", "test"}
    labels = dataset["train"].features["label"]
    assert labels.names == ["cat", "dog"] and dataset["train"]["label"] == [0, 1]  # sorted paths: cat/2.wav, dog/1.wav
    assert dataset["test"]["label"] == [1]
    with pytest.raises(ValueError, match="No split 'validation'"):
        load_aac_dataset(root, "validation")


def test_saved_dataset_like_synth_output(tmp_path):
    wav = write_wav(tmp_path / "clip.wav")
    with open(wav, "rb") as f:
        data = f.read()
    split = Dataset.from_dict({"audio": [{"bytes": data, "path": "clip.wav"}], "captions": [["x"] * 5]})
    split = split.cast_column("audio", Audio(decode=False))
    DatasetDict({"train": split, "test": split}).save_to_disk(tmp_path / "synth")
    assert detect_dataset_kind(tmp_path / "synth") == "disk"
    loaded = load_aac_dataset(tmp_path / "synth", "test")
    assert loaded.features["audio"].decode is False and loaded[0]["captions"] == ["x"] * 5
    assert decode_audio(loaded[0]["audio"])[0].shape == (8000,)


def test_ensure_undecoded_audio_rejects_non_audio_column():
    with pytest.raises(ValueError, match="no audio column 'audio'"):
        ensure_undecoded_audio(Dataset.from_dict({"x": [1]}))
    with pytest.raises(ValueError, match="expected datasets.Audio"):
        ensure_undecoded_audio(Dataset.from_dict({"audio": [1]}))


def test_named_corpora_need_a_folder():
    with pytest.raises(ValueError, match="cannot be downloaded automatically"):
        load_aac_dataset("clotho", "evaluation")
