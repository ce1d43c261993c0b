"""Tiny on-disk corpora in the real published layouts, written by the tests themselves."""

from __future__ import annotations

import csv
import io
import os

import numpy as np
import soundfile


def tone(seconds: float, sampling_rate: int, frequency: float = 440.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sampling_rate)) / sampling_rate
    return (0.3 * np.sin(2 * np.pi * frequency * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def write_wav(path, seconds: float = 0.5, sampling_rate: int = 16000, frequency: float = 440.0, seed: int = 0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    soundfile.write(path, tone(seconds, sampling_rate, frequency, seed), sampling_rate)
    return str(path)


def flac_bytes(seconds: float, sampling_rate: int, seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, tone(seconds, sampling_rate, seed=seed), sampling_rate, format="FLAC")
    return buffer.getvalue()


def write_csv(path, header, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


CLOTHO_FILES = ["Birds, morning.wav", "rain on roof 2.wav", "Café door.wav"]


def make_clotho(root) -> str:
    """Clotho v2.1 layout: clotho_captions_<split>.csv + <split>/ folders of wavs."""
    root = str(root)
    header = ["file_name"] + [f"caption_{i}" for i in range(1, 6)]
    rows = [[name] + [f'{name} caption {i}, with "quotes"' for i in range(1, 6)] for name in CLOTHO_FILES]
    write_csv(os.path.join(root, "clotho_captions_development.csv"), header, rows)
    for i, name in enumerate(CLOTHO_FILES):
        write_wav(os.path.join(root, "development", name), seconds=0.3 + 0.1 * i, sampling_rate=44100, seed=i)
    write_csv(os.path.join(root, "clotho_captions_evaluation.csv"), header, rows[:1])
    write_wav(os.path.join(root, "evaluation", CLOTHO_FILES[0]), sampling_rate=44100)
    return root


def make_audiocaps(root) -> str:
    """AudioCaps CSVs (audiocap_id, youtube_id, start_time, caption) + audio/<split>/ clips."""
    root = str(root)
    header = ["audiocap_id", "youtube_id", "start_time", "caption"]
    test_rows = []
    for clip, (ytid, start) in enumerate([("abcDEF12345", 30), ("zz-_top9876", 0), ("goneVideo00", 10)]):
        for k in range(5):
            test_rows.append([100 + 5 * clip + k, ytid, start, f"clip {clip} caption {k}"])
    write_csv(os.path.join(root, "test.csv"), header, test_rows)
    write_wav(os.path.join(root, "audio", "test", "abcDEF12345_30.wav"))
    write_wav(os.path.join(root, "audio", "test", "Yzz-_top9876.flac"), seed=1)  # another naming scheme
    write_csv(os.path.join(root, "train.csv"), header, [[1, "trainVid001", 5, "a dog barks"]])
    write_wav(os.path.join(root, "audio", "train", "trainVid001_5.wav"))
    return root


def make_audioset_repo(root) -> str:
    """A local copy of agkphysics/AudioSet: README configs + data/<part>/*.parquet with FLAC bytes."""
    from datasets import Audio, Dataset

    root = str(root)
    os.makedirs(root, exist_ok=True)
    readme = """---
configs:
- config_name: balanced
  data_files:
  - split: train
    path: data/bal_train/*.parquet
  - split: test
    path: data/eval/*.parquet
- config_name: unbalanced
  data_files:
  - split: train
    path: data/unbal_train/*.parquet
  - split: test
    path: data/eval/*.parquet
---
"""
    with open(os.path.join(root, "README.md"), "w") as f:
        f.write(readme)
    parts = {"bal_train": ["--PJHxphWEs", "-0BIyqJj9ZU"], "eval": ["ab0123456-x"], "unbal_train": ["u1", "u2", "u3"]}
    for part, video_ids in parts.items():
        rows = {
            "video_id": video_ids,
            "audio": [
                {"bytes": flac_bytes(0.4, 48000, seed=i), "path": f"audio/{part}/{v}.flac"}
                for i, v in enumerate(video_ids)
            ],
            "labels": [["/m/09x0r", "/t/dd00088"]] * len(video_ids),
            "human_labels": [["Speech", "Gush"]] * len(video_ids),
        }
        dataset = Dataset.from_dict(rows).cast_column("audio", Audio(decode=False))
        os.makedirs(os.path.join(root, "data", part), exist_ok=True)
        dataset.to_parquet(os.path.join(root, "data", part, "00000.parquet"))
    return root
