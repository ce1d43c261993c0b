"""train/duration_grouping.py: clip lengths from clip tables and the length-grouped sampler of the trainers."""

import datasets
import pytest
from transformers import Trainer, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler

from llm_aac.train.caption_data import CaptionPairs
from llm_aac.train.duration_grouping import DurationGroupedSamplerMixin, clip_lengths, table_column


def test_table_column_reads_arrow_tables_and_row_lists():
    rows = [{"num_frames": 10, "captions": ["a"]}, {"num_frames": 30, "captions": ["b"]}]
    assert table_column(rows, "num_frames") == [10, 30]
    assert table_column(datasets.Dataset.from_list(rows), "num_frames") == [10, 30]
    assert table_column(rows + [{"captions": ["c"]}], "num_frames") is None  # a row without it
    assert table_column(datasets.Dataset.from_list(rows), "duration") is None


def test_clip_lengths_prefer_frames_then_duration_in_ms():
    frames = [{"num_frames": 100}, {"num_frames": 250}]
    seconds = [{"duration": 1.5}, {"duration": 2.25}]
    assert clip_lengths([frames, seconds], [(0, 1), (1, 0), (1, 1), (0, 0)]) == [250, 1500, 2250, 100]
    assert clip_lengths([frames, [{"captions": ["x"]}]], [(0, 0)]) is None


def test_caption_pairs_report_one_length_per_pair():
    table = [{"captions": ["a", "b"], "num_frames": 40}, {"captions": [], "num_frames": 99},
             {"captions": ["c"], "num_frames": 70}]
    assert CaptionPairs([table]).clip_lengths() == [40, 40, 70]


class _LengthTrainer(DurationGroupedSamplerMixin, Trainer):
    pass


@pytest.mark.parametrize("grouped", [False, True])
def test_the_mixin_groups_batches_only_with_lengths(tmp_path, grouped):
    import torch

    lengths = torch.randperm(400, generator=torch.Generator().manual_seed(0)).tolist()
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=2, gradient_accumulation_steps=2,
                             report_to="none", use_cpu=True)
    data = [{"x": torch.tensor([float(i)])} for i in range(400)]
    trainer = _LengthTrainer(model=torch.nn.Linear(1, 1), args=args, train_dataset=data,
                             train_lengths=lengths if grouped else None)
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler, LengthGroupedSampler) == grouped
    if grouped:
        torch.manual_seed(0)
        order = list(sampler)
        assert sorted(order) == list(range(400))
        # consecutive items (one optimizer step's clips) have similar lengths: random pairs differ by ~133
        gaps = [abs(lengths[a] - lengths[b]) for a, b in zip(order[0::2], order[1::2])]
        assert sum(gaps) / len(gaps) < 10
