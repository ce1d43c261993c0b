"""Tiny classification corpora in the published layouts (ESC-50, AudioSet) and a tiny saved EAT encoder,
shared by the linear-probe and classifier fine-tuning tests."""

from __future__ import annotations

import csv
import io
import os

import numpy as np
import soundfile

ESC50_CLASSES = ("dog", "rain")
# Class -> tone frequency: the classes are told apart by pitch, so even a tiny encoder separates them.
CLASS_FREQUENCIES = {0: 300.0, 1: 3000.0, 2: 1200.0}


def tone_clip(frequency: float, seconds: float, rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * frequency * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def make_esc50(root, *, classes=ESC50_CLASSES, clips_per_fold: int = 1, folds: int = 5, seconds: float = 0.6,
               rate: int = 22050) -> str:
    """`meta/esc50.csv` (filename, fold, target, category, esc10, src_file, take) + `audio/*.wav`."""
    root = str(root)
    os.makedirs(os.path.join(root, "meta"), exist_ok=True)
    os.makedirs(os.path.join(root, "audio"), exist_ok=True)
    rows = []
    for fold in range(1, folds + 1):
        for target, name in enumerate(classes):
            for take in range(clips_per_fold):
                filename = f"{fold}-{100 * target + take}-A-{target}.wav"
                clip = tone_clip(CLASS_FREQUENCIES[target], seconds, rate, seed=fold * 10 + target + take)
                soundfile.write(os.path.join(root, "audio", filename), clip, rate)
                rows.append([filename, fold, target, name, "False", f"{100 * target + take}", "A"])
    with open(os.path.join(root, "meta", "esc50.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "fold", "target", "category", "esc10", "src_file", "take"])
        writer.writerows(rows)
    return root


def _flac(clip: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, clip, rate, format="FLAC")
    return buffer.getvalue()


AUDIOSET_LABELS = {"/m/09x0r": "Speech", "/m/0jbk": "Animal", "/m/04rlf": "Music"}


def make_audioset_disk(root, *, train_clips: int = 6, test_clips: int = 4, rate: int = 16000) -> str:
    """A save_to_disk DatasetDict shaped like agkphysics/AudioSet (video_id, audio, labels, human_labels)."""
    from datasets import Dataset, DatasetDict

    mids = list(AUDIOSET_LABELS)
    splits = {}
    for split, count in (("train", train_clips), ("test", test_clips)):
        rows = {"video_id": [], "audio": [], "labels": [], "human_labels": []}
        for i in range(count):
            first = i % 2  # Speech or Animal, by pitch; every third clip adds Music (a third tone)
            labels = [mids[first]] + ([mids[2]] if i % 3 == 0 else [])
            clip = tone_clip(CLASS_FREQUENCIES[first], 0.5, rate, seed=i)
            if i % 3 == 0:
                clip = clip + tone_clip(CLASS_FREQUENCIES[2], 0.5, rate, seed=100 + i)
            rows["video_id"].append(f"{split}{i:03d}")
            rows["audio"].append({"bytes": _flac(clip, rate), "path": f"{split}{i:03d}.flac"})
            rows["labels"].append(labels)
            rows["human_labels"].append([AUDIOSET_LABELS[m] for m in labels])
        splits[split] = Dataset.from_dict(rows)
    DatasetDict(splits).save_to_disk(str(root))
    return str(root)


def save_tiny_eat(directory, seed: int = 0) -> str:
    """A tiny random `EATModel` + fbank feature extractor saved like `llm-aac convert-eat` output."""
    import torch

    from modeling_llm_aac import EATConfig, EATModel, LLMAACFeatureExtractor

    torch.manual_seed(seed)
    EATModel(EATConfig.tiny()).save_pretrained(directory)
    LLMAACFeatureExtractor().save_pretrained(directory)
    return str(directory)
