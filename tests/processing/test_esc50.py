"""ESC-50 loader: published layout, folds, class names, bad metadata."""

import csv
import os
import sys
from pathlib import Path

import pytest
from datasets import Audio

from llm_aac.processing.audio_io import decode_audio
from llm_aac.processing.esc50 import esc50_class_names, is_esc50_root, load_esc50

sys.path.insert(0, str(Path(__file__).parents[1] / "eval"))  # the classification corpora of the eval tests
from classification_fixtures import make_esc50  # noqa: E402


def test_published_layout(tmp_path):
    root = make_esc50(tmp_path / "ESC-50-master")
    assert is_esc50_root(root) and not is_esc50_root(tmp_path)
    dataset = load_esc50(root)
    assert isinstance(dataset.features["audio"], Audio) and dataset.features["audio"].decode is False
    assert len(dataset) == 10 and sorted(set(dataset["fold"])) == [1, 2, 3, 4, 5]
    assert dataset["target"][:2] == [0, 1] and dataset["category"][:2] == ["dog", "rain"]
    assert dataset["esc10"] == [False] * 10
    assert esc50_class_names(dataset) == ["dog", "rain"]
    samples, rate = decode_audio(dataset[0]["audio"])
    assert rate == 22050 and samples.shape == (int(0.6 * 22050),)
    assert load_esc50(root, folds=[2, 4])["fold"] == [2, 2, 4, 4]


def test_errors_name_the_problem(tmp_path):
    root = make_esc50(tmp_path / "esc")
    with pytest.raises(ValueError, match="fold"):
        load_esc50(root, folds=[7])
    os.remove(os.path.join(root, "audio", "3-0-A-0.wav"))
    with pytest.raises(ValueError, match="3-0-A-0.wav"):
        load_esc50(root)
    assert len(load_esc50(root, on_missing_audio="skip")) == 9
    with pytest.raises(ValueError, match="No ESC-50 metadata"):
        load_esc50(tmp_path)

    with open(os.path.join(root, "meta", "esc50.csv")) as f:
        rows = list(csv.reader(f))
    rows[2][3] = "cat"  # class 1 now has two names
    with open(os.path.join(root, "meta", "esc50.csv"), "w", newline="") as f:
        csv.writer(f).writerows(rows)
    with pytest.raises(ValueError, match="called both"):
        load_esc50(root, on_missing_audio="skip")
    rows[2][3], rows[2][1] = "rain", "one"
    with open(os.path.join(root, "meta", "esc50.csv"), "w", newline="") as f:
        csv.writer(f).writerows(rows)
    with pytest.raises(ValueError, match="fold='one'"):
        load_esc50(root, on_missing_audio="skip")
