"""Training batches of clips of similar length, for the `Trainer`s whose audio tower pads every clip of a batch to
the longest one (CLAP, the captioner): clips of 5-30 s in uniformly random batches are padded to ~30 s, about
twice the frames the encoder needs.

`DurationGroupedSamplerMixin` gives a `Trainer` subclass transformers' `LengthGroupedSampler` (random megabatches
of 50 batches, each sorted by length, so batches stay random in order and composition within a megabatch) over
lengths the dataset reports from its clip tables (`clip_lengths`) instead of measuring every item.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def table_column(table: Any, name: str) -> list | None:
    """Column `name` of an Arrow table (`datasets.Dataset`) or of a list of row dicts; None if any row lacks it."""
    if hasattr(table, "column_names"):
        return list(table[name]) if name in table.column_names else None
    values = [row.get(name) for row in table]
    return None if any(value is None for value in values) else values


def clip_lengths(tables: Sequence[Any], rows: Iterable[tuple[int, int]]) -> list[int] | None:
    """Per `(table index, row index)` of `rows`, the clip's feature frames (`num_frames` of precomputed or rendered
    rows) or its duration in ms (rows with `duration` seconds); None when a table holds neither."""
    per_table = []
    for table in tables:
        frames, seconds = table_column(table, "num_frames"), table_column(table, "duration")
        if frames is None and seconds is None:
            return None
        per_table.append([int(n) for n in frames] if frames is not None else [round(1000 * float(d)) for d in seconds])
    return [per_table[table_index][row_index] for table_index, row_index in rows]


def training_lengths(dataset: Any, enabled: bool, log) -> list[int] | None:
    """`dataset.clip_lengths()` when `enabled` (a warning on `log` when its tables cannot tell), else None."""
    if not enabled:
        return None
    lengths = dataset.clip_lengths()
    if lengths is None:
        log.warning("--group_by_duration: the training tables have no num_frames or duration column; batches are "
                    "uniformly random")
    return lengths


class DurationGroupedSamplerMixin:
    """Mixin for a `Trainer` subclass (put it first among the bases): `train_lengths` (one per training item, or
    None for the `Trainer`'s own sampler) batches items of similar length together."""

    def __init__(self, *args, train_lengths: Sequence[int] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.train_lengths = list(train_lengths) if train_lengths is not None else None

    def _get_train_sampler(self, *args, **kwargs):
        # Own lengths instead of the Trainer's option (named differently across transformers 5.x releases, and it
        # would read every item's features to measure them).
        if self.train_lengths is None:
            return super()._get_train_sampler(*args, **kwargs)
        from transformers.trainer_pt_utils import LengthGroupedSampler

        return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                    lengths=self.train_lengths)


__all__ = ["DurationGroupedSamplerMixin", "clip_lengths", "table_column", "training_lengths"]
