"""Per-bin feature statistics (mean / std over all real frames), streamed and mergeable.

Statistics are kept as (count, mean, M2) in float64 and combined with Chan et al.'s pairwise
update, which stays accurate when the mean is large compared with the spread (log-compressed
features sit around -4 with a std of a few units) and merges exactly the same way whether the
pieces come from batches, `num_proc` workers, chunks or machines. They are saved as JSON with
`repr`-exact floats so that a merge of saved pieces equals an in-memory merge bit for bit.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

# Bins that (almost) never vary, e.g. Kaldi mel bins narrower than one FFT bin that sit at the log
# floor, would turn float rounding noise into unit-size values when divided by their own std: their
# std is raised to a thousandth of the median bin's (and never below an absolute 1e-6).
MIN_RELATIVE_STD = 1e-3
MIN_FEATURE_STD = 1e-6


@dataclass
class FeatureStatistics:
    """Running per-bin statistics of feature frames.

    Attributes:
        count: number of frames seen.
        mean: per-bin mean, float64 `[bins]` (None until the first update).
        m2: per-bin sum of squared deviations from the mean, float64 `[bins]`.
    """

    count: int = 0
    mean: np.ndarray | None = None
    m2: np.ndarray | None = field(default=None, repr=False)

    @property
    def num_bins(self) -> int | None:
        return None if self.mean is None else int(self.mean.shape[0])

    @property
    def variance(self) -> np.ndarray:
        """Population variance (ddof=0) per bin."""
        self._require_data()
        return self.m2 / self.count

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.variance)

    def update(self, frames: np.ndarray | Sequence[np.ndarray]) -> FeatureStatistics:
        """Add frames `[num_frames, bins]` (or a list of such arrays, one per clip) in place."""
        if isinstance(frames, np.ndarray) and frames.dtype != object:
            arrays = [frames]
        else:
            arrays = [np.asarray(f) for f in frames]
        arrays = [a for a in arrays if a.size]
        if not arrays:
            return self
        for a in arrays:
            if a.ndim != 2:
                raise ValueError(f"Feature frames must be 2-D [frames, bins]; got shape {a.shape}.")
        stacked = np.concatenate(arrays, axis=0).astype(np.float64, copy=False)
        bad = ~np.isfinite(stacked)
        if bad.any():
            rows = np.unique(np.nonzero(bad)[0])[:5].tolist()
            raise ValueError(f"Non-finite feature values (NaN/Inf) in frames {rows} of this batch.")
        batch_mean = stacked.mean(axis=0)
        batch = FeatureStatistics(
            count=int(stacked.shape[0]),
            mean=batch_mean,
            m2=np.square(stacked - batch_mean).sum(axis=0),
        )
        merged = self.merge(batch)
        self.count, self.mean, self.m2 = merged.count, merged.mean, merged.m2
        return self

    def merge(self, other: FeatureStatistics) -> FeatureStatistics:
        """Statistics of the union of the frames behind `self` and `other` (new object)."""
        if other.count == 0:
            return self.copy()
        if self.count == 0:
            return other.copy()
        if self.num_bins != other.num_bins:
            raise ValueError(f"Cannot merge statistics over {self.num_bins} and {other.num_bins} bins.")
        total = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / total)
        m2 = self.m2 + other.m2 + np.square(delta) * (self.count * other.count / total)
        return FeatureStatistics(count=total, mean=mean, m2=m2)

    def copy(self) -> FeatureStatistics:
        return FeatureStatistics(
            count=self.count,
            mean=None if self.mean is None else self.mean.copy(),
            m2=None if self.m2 is None else self.m2.copy(),
        )

    def to_dict(self) -> dict:
        return {
            "count": self.count,
            "mean": None if self.mean is None else self.mean.tolist(),
            "m2": None if self.m2 is None else self.m2.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> FeatureStatistics:
        try:
            count = int(data["count"])
            mean, m2 = data["mean"], data["m2"]
        except (KeyError, TypeError) as err:
            raise ValueError(f"Not a feature-statistics record (needs count, mean, m2): {data!r:.200}") from err
        if count == 0:
            return cls()
        mean, m2 = np.asarray(mean, dtype=np.float64), np.asarray(m2, dtype=np.float64)
        if mean.ndim != 1 or mean.shape != m2.shape:
            raise ValueError(f"Statistics mean/m2 must be 1-D of equal length; got {mean.shape}, {m2.shape}.")
        return cls(count=count, mean=mean, m2=m2)

    def save(self, path: str | os.PathLike) -> None:
        """Write JSON atomically (temporary file + rename)."""
        tmp = f"{os.fspath(path)}.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(self.to_dict(), f)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> FeatureStatistics:
        with open(path) as f:
            return cls.from_dict(json.load(f))

    def normalization_std(self, *, min_relative_std: float = MIN_RELATIVE_STD, min_std: float = MIN_FEATURE_STD) -> np.ndarray:
        """Per-bin std to divide by: the measured std, floored at `min_relative_std` x the median
        bin's std and at `min_std` (constant bins would otherwise amplify rounding noise)."""
        std = self.std
        return np.maximum(std, max(min_std, min_relative_std * float(np.median(std))))

    def apply_to(self, feature_extractor, *, min_relative_std: float = MIN_RELATIVE_STD, min_std: float = MIN_FEATURE_STD):
        """Store per-bin mean / `normalization_std` in `feature_extractor.feature_mean` /
        `feature_std` (in place) and return the extractor."""
        self._require_data()
        expected = getattr(feature_extractor, "feature_size", None)
        if expected is not None and expected != self.num_bins:
            raise ValueError(
                f"Statistics cover {self.num_bins} bins but the feature extractor produces {expected}."
            )
        feature_extractor.feature_mean = self.mean.tolist()
        feature_extractor.feature_std = self.normalization_std(min_relative_std=min_relative_std, min_std=min_std).tolist()
        return feature_extractor

    def _require_data(self) -> None:
        if self.count == 0:
            raise ValueError("No frames have been accumulated: statistics are undefined.")


def merge_statistics(pieces: Iterable[FeatureStatistics]) -> FeatureStatistics:
    """Merge pieces left to right (keep a fixed order for reproducible float results)."""
    total = FeatureStatistics()
    for piece in pieces:
        total = total.merge(piece)
    return total


def compute_feature_statistics(
    dataset,
    *,
    column: str = "input_features",
    batch_size: int = 64,
    statistics: FeatureStatistics | None = None,
) -> FeatureStatistics:
    """One streaming pass over `dataset[column]` (rows of `[frames, bins]`, real frames only).

    Reads `batch_size` rows at a time from the memory-mapped Arrow table, so memory stays bounded
    whatever the dataset size. Pass `statistics` to continue an existing accumulation.
    """
    if column not in dataset.column_names:
        raise ValueError(f"Dataset has no column {column!r}; columns: {dataset.column_names}.")
    stats = statistics.copy() if statistics is not None else FeatureStatistics()
    numpy_view = dataset.select_columns([column]).with_format("numpy")
    for batch in numpy_view.iter(batch_size=batch_size):
        stats.update(list(batch[column]))
    return stats
