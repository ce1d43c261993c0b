"""Batch collation for training and evaluation: precomputed features or on-the-fly extraction.

A row may carry precomputed raw features (`input_features` `[frames, bins]` + `num_frames`,
written by `processing.precompute`) or only its `audio` (`Audio(decode=False)`); both go
through the same normalisation and padding, and the on-the-fly path runs the same raw
extraction as the precompute, so a batch has the same values either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .audio_io import decode_audio
from .precompute import FEATURES_COLUMN, NUM_FRAMES_COLUMN, extract_raw_features


def normalize_features(features: np.ndarray, feature_extractor) -> np.ndarray:
    """`(x - feature_mean) / feature_std` with the extractor's scalar or per-bin statistics
    (float32, as `LLMAACFeatureExtractor` computes it); identity when `do_normalize` is off."""
    if not feature_extractor.do_normalize:
        return np.asarray(features, dtype=np.float32)
    mean = np.asarray(feature_extractor.feature_mean, dtype=np.float32)
    std = np.asarray(feature_extractor.feature_std, dtype=np.float32)
    return (features - mean) / std


@dataclass
class AudioFeatureCollator:
    """Data collator turning dataset rows into `input_features` [B, T, F] + `attention_mask` [B, T].

    Usable as `Trainer(data_collator=...)` with `TrainingArguments(remove_unused_columns=False)`
    (the collator needs the raw columns). Rows with precomputed features use them; other rows
    are decoded and extracted here (on `device`). Features are normalised with the extractor's
    `feature_mean` / `feature_std` (see `processing.precompute`) and padded like the extractor
    pads (its raw `padding_value`, normalised) to the longest clip rounded up to
    `pad_to_multiple_of` frames: the batch equals `feature_extractor(clips)` of the same clips.

    Args:
        feature_extractor: the `LLMAACFeatureExtractor` whose statistics normalise the features.
        audio_column: column with `Audio(decode=False)` values, used when features are absent.
        features_column: column with precomputed raw features.
        extra_columns: columns passed through unchanged as lists (e.g. `("captions",)`).
        pad_to_multiple_of: frame padding granularity; None uses the extractor's (16, EAT's patch).
        max_frames: keep at most this many frames of each clip, cut after extraction (None keeps
            the full length).
        device: where on-the-fly extraction runs.
        return_tensors: `"pt"` (torch tensors) or `"np"`.
    """

    feature_extractor: Any
    audio_column: str = "audio"
    features_column: str = FEATURES_COLUMN
    extra_columns: Sequence[str] = ()
    pad_to_multiple_of: int | None = None
    max_frames: int | None = None
    device: Any = None
    return_tensors: str = "pt"

    def __post_init__(self):
        if self.return_tensors not in ("pt", "np"):
            raise ValueError(f"return_tensors must be 'pt' or 'np', got {self.return_tensors!r}.")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames}.")

    def __call__(self, rows: Sequence[dict]) -> dict:
        if not rows:
            raise ValueError("Cannot collate an empty list of rows.")
        features = self._raw_features(rows)
        num_bins = self.feature_extractor.feature_size
        for i, f in enumerate(features):
            if f.ndim != 2 or f.shape[1] != num_bins or f.shape[0] == 0:
                raise ValueError(
                    f"Row {i}: features of shape {f.shape}; expected [frames >= 1, {num_bins}] for this feature extractor."
                )
        if self.max_frames is not None:
            features = [f[: self.max_frames] for f in features]
        lengths = [f.shape[0] for f in features]
        multiple = self.pad_to_multiple_of or self.feature_extractor.pad_to_multiple_of or 1
        total = -(-max(lengths) // multiple) * multiple
        padding = np.full((1, num_bins), self.feature_extractor.padding_value, dtype=np.float32)
        batch = np.empty((len(features), total, num_bins), dtype=np.float32)
        batch[:] = normalize_features(padding, self.feature_extractor)
        mask = np.zeros((len(features), total), dtype=np.int64)
        for i, f in enumerate(features):
            batch[i, : f.shape[0]] = normalize_features(f, self.feature_extractor)
            mask[i, : f.shape[0]] = 1
        output: dict[str, Any] = {"input_features": batch, "attention_mask": mask}
        if self.return_tensors == "pt":
            import torch

            output = {k: torch.from_numpy(v) for k, v in output.items()}
        for column in self.extra_columns:
            missing = [i for i, row in enumerate(rows) if column not in row]
            if missing:
                raise ValueError(f"Rows {missing[:8]} have no column {column!r}; they have {sorted(rows[missing[0]])}.")
            output[column] = [row[column] for row in rows]
        return output

    def _raw_features(self, rows: Sequence[dict]) -> list[np.ndarray]:
        features: list[np.ndarray | None] = [None] * len(rows)
        to_extract = []
        for i, row in enumerate(rows):
            stored = row.get(self.features_column)
            if stored is not None:
                array = np.asarray(stored, dtype=np.float32)
                if NUM_FRAMES_COLUMN in row and row[NUM_FRAMES_COLUMN] is not None:
                    array = array[: int(row[NUM_FRAMES_COLUMN])]
                features[i] = array
            elif row.get(self.audio_column) is not None:
                to_extract.append(i)
            else:
                raise ValueError(
                    f"Row {i} has neither {self.features_column!r} nor {self.audio_column!r}; keys: {sorted(row)}."
                )
        if to_extract:
            decoded = [decode_audio(rows[i][self.audio_column]) for i in to_extract]
            extracted = extract_raw_features(
                self.feature_extractor, [d[0] for d in decoded], [d[1] for d in decoded], device=self.device
            )
            for i, f in zip(to_extract, extracted):
                features[i] = f
        return features
