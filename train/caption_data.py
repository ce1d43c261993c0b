"""Captioning data for `train/finetune_aac.py` (clip tables also for `train/train_clap.py`): the corpus
arguments, clip tables, (clip, reference) pairs, the batch collator.

A *clip table* is anything indexable whose rows hold a clip and all of its reference captions (`captions`):
a `datasets.Dataset` from `processing.loaders.load_aac_dataset` (rows with `audio`, decoded and featurized
on the fly) or from `llm-aac precompute` (rows with raw `input_features` + `num_frames`), or a list of such
row dicts built in memory (`synthetic_clip_table`). Training pairs each clip with EACH of its references
(`CaptionPairs`: one item per (clip, reference)); evaluation keeps one item per clip with all references
(`ClipReferences`).

`CaptionBatchCollator` turns items into model inputs: features through `processing.collate.
AudioFeatureCollator` (normalised with the feature extractor's statistics, padded to a multiple of 16
frames) and the prompt / caption tokens laid out exactly as `LLMAACProcessor` lays them out for raw audio,
with one audio placeholder per audio token of each clip's real frames.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

CAPTIONS_COLUMN = "captions"
IGNORE_INDEX = -100


# ---------------------------------------------------------------------------------- command line


@dataclass
class CorpusDataArguments:
    """Where the training scripts' clip tables come from: corpus folders, or synthetic clips rendered in memory."""

    dataset_path: list[str] = field(
        default_factory=list, metadata={"help": "training corpus folders (synth / Clotho / AudioCaps / precompute outputs)"}
    )
    train_split: str = field(default="train", metadata={"help": "training split of each corpus"})
    eval_dataset_path: str | None = field(default=None, metadata={"help": "validation corpus (default: the first --dataset_path)"})
    eval_split: str = field(default="validation", metadata={"help": "validation split"})
    synthetic_clips: int = field(default=0, metadata={"help": "> 0: render this many synthetic training clips in memory"})
    synthetic_eval_clips: int = field(default=64, metadata={"help": "synthetic validation clips rendered in memory"})
    synthetic_seed: int = field(default=0, metadata={"help": "seed of the synthetic corpus"})
    synthesis_workers: int = field(default=0, metadata={"help": "processes rendering synthetic audio (0: all cores)"})
    max_eval_clips: int = field(default=200, metadata={"help": "validation clips used (0: all)"})
    max_frames: int | None = field(default=None, metadata={"help": "keep each clip's first frames only (None: whole clips)"})
    max_caption_tokens: int = field(default=64, metadata={"help": "longer reference captions are cut"})


# ---------------------------------------------------------------------------------------- clip tables


def table_captions(table, name: str = "clip table") -> list[list[str]]:
    """Reference captions of every row of a clip table, read without touching the audio / features."""
    if hasattr(table, "column_names"):  # datasets.Dataset
        if CAPTIONS_COLUMN in table.column_names:
            captions = table.data.column(CAPTIONS_COLUMN).to_pylist()
        elif "caption" in table.column_names:
            captions = [[c] for c in table.data.column("caption").to_pylist()]
        else:
            raise ValueError(f"{name} has no '{CAPTIONS_COLUMN}' or 'caption' column; columns: {table.column_names}")
    else:
        captions = []
        for index, row in enumerate(table):
            if CAPTIONS_COLUMN not in row:
                raise ValueError(f"{name} row {index} has no '{CAPTIONS_COLUMN}'; keys: {sorted(row)}")
            captions.append(row[CAPTIONS_COLUMN])
    cleaned = []
    for index, references in enumerate(captions):
        if isinstance(references, str):
            references = [references]
        references = [" ".join(str(c).split()) for c in (references or []) if c is not None and str(c).strip()]
        cleaned.append(references)
    return cleaned


def load_clip_table(path: str | os.PathLike, split: str | None):
    """A clip table from a folder: an `llm-aac precompute` output (`PATH` or `PATH/<split>` holding a
    `manifest.json`), or any corpus `load_aac_dataset` reads (its `split`)."""
    from llm_aac.processing.precompute import MANIFEST_FILE, load_precomputed

    path = os.fspath(path)
    for candidate in ([os.path.join(path, split)] if split else []) + [path]:
        if os.path.isfile(os.path.join(candidate, MANIFEST_FILE)):
            return load_precomputed(candidate)
    from llm_aac.processing.loaders import load_aac_dataset

    table = load_aac_dataset(path, split)
    if not hasattr(table, "column_names"):
        raise ValueError(f"{path!r} holds several splits {list(table)}; choose one")
    return table


def precomputed_feature_extractor(path: str | os.PathLike, split: str | None):
    """The feature extractor saved beside precomputed features (with their measured statistics), or None."""
    from llm_aac.processing.precompute import MANIFEST_FILE

    path = os.fspath(path)
    for candidate in ([os.path.join(path, split)] if split else []) + [path]:
        if os.path.isfile(os.path.join(candidate, MANIFEST_FILE)):
            from modeling_llm_aac.feature_extraction_llm_aac import LLMAACFeatureExtractor

            return LLMAACFeatureExtractor.from_pretrained(candidate)
    return None


def synthetic_clip_table(
    feature_extractor,
    num_clips: int,
    *,
    seed: int = 0,
    split: str = "train",
    device: str | torch.device = "cpu",
    num_workers: int | None = None,
    chunk_size: int = 512,
    max_frames: int | None = None,
) -> list[dict]:
    """Clips `0 .. num_clips - 1` of the synthetic corpus's `split`, featurized in memory.

    The same clips `llm-aac synth` writes (clip `i` depends only on `(seed, split, i)`), without the FLAC
    round trip. Rows: `input_features` (raw, un-normalised features `[frames, bins]`, float16 numpy, like a
    precomputed row), `num_frames`, `captions` (5), `event_labels`, `duration`, `index`. Audio is rendered in
    `num_workers` processes (default: all cores) and featurized on `device`, `chunk_size` clips at a time, so
    memory holds one chunk of audio. `max_frames` keeps each clip's first frames only (SLAM-AAC's 10.24 s
    cut); None keeps whole clips.
    """
    from llm_aac.processing.precompute import extract_raw_features
    from llm_aac.processing.synthetic import SAMPLE_RATE, generate_clip

    if isinstance(num_clips, bool) or int(num_clips) != num_clips or num_clips < 1:
        raise ValueError(f"num_clips must be a positive integer, got {num_clips!r}")
    indices = list(range(int(num_clips)))
    workers = max(1, min(num_workers or os.cpu_count() or 1, len(indices)))
    pool = None
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn: the parent may already hold CUDA, which forked children must not inherit.
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    rows: list[dict] = []
    try:
        for start in range(0, len(indices), chunk_size):
            chunk = indices[start : start + chunk_size]
            # Workers import only the (numpy-only) synthetic module: spawning them stays cheap.
            if pool is None:
                clips = [generate_clip(seed, index, split) for index in chunk]
            else:
                clips = list(pool.map(generate_clip, [seed] * len(chunk), chunk, [split] * len(chunk),
                                      chunksize=max(1, len(chunk) // (4 * workers))))
            for offset in range(0, len(clips), 64):
                batch = clips[offset : offset + 64]
                features = extract_raw_features(
                    feature_extractor, [clip["audio"] for clip in batch], [SAMPLE_RATE] * len(batch), device=device
                )
                for clip_features, clip in zip(features, batch):
                    if max_frames is not None:
                        clip_features = clip_features[:max_frames]
                    rows.append(
                        {"input_features": clip_features.astype(np.float16), "num_frames": int(clip_features.shape[0]),
                         **{key: clip[key] for key in ("captions", "event_labels", "duration", "index")}}
                    )
    finally:
        if pool is not None:
            pool.shutdown()
    return rows


def measure_feature_statistics(feature_extractor, tables: Sequence[Sequence[dict]]):
    """Per-bin mean / std of the raw features of in-memory clip tables, written into `feature_extractor`."""
    from llm_aac.processing.feature_stats import FeatureStatistics

    statistics = FeatureStatistics()
    for table in tables:
        statistics.update([np.asarray(row["input_features"], dtype=np.float32) for row in table])
    statistics.apply_to(feature_extractor)
    feature_extractor.do_normalize = True
    return feature_extractor


def load_corpus_tables(
    data_args: CorpusDataArguments, feature_extractor, *, device: str | torch.device = "cpu",
    measure_statistics: bool = False,
) -> tuple[list, list[str], Any]:
    """(training clip tables, their names, validation clip table) that `data_args` names.

    With `synthetic_clips > 0` both splits are rendered and featurized in memory (every process renders the
    same clips, so no file has to be shared between ranks), on `device` when it is a CUDA device (the
    process's training device) and on the CPU otherwise; with `measure_statistics`, the per-bin statistics of
    the training clips are written into `feature_extractor`. Otherwise each `dataset_path` gives its
    `train_split` and `eval_dataset_path` (default: the first one) its `eval_split`.
    """
    if data_args.synthetic_clips > 0:
        device = device if torch.device(device).type == "cuda" else "cpu"
        options = dict(seed=data_args.synthetic_seed, device=device, num_workers=data_args.synthesis_workers or None,
                       max_frames=data_args.max_frames)
        start = time.monotonic()
        train_table = synthetic_clip_table(feature_extractor, data_args.synthetic_clips, split="train", **options)
        eval_table = synthetic_clip_table(
            feature_extractor, data_args.synthetic_eval_clips, split=data_args.eval_split, **options
        )
        logger.info("rendered and featurized %d + %d synthetic clips in %.1f s", len(train_table), len(eval_table),
                    time.monotonic() - start)
        if measure_statistics:
            measure_feature_statistics(feature_extractor, [train_table])
            logger.info("feature statistics measured on the training clips (%s)", feature_extractor.feature_type)
        return [train_table], ["synthetic train"], eval_table
    tables = [load_clip_table(path, data_args.train_split) for path in data_args.dataset_path]
    names = [f"{path} ({data_args.train_split})" for path in data_args.dataset_path]
    eval_table = load_clip_table(data_args.eval_dataset_path or data_args.dataset_path[0], data_args.eval_split)
    return tables, names, eval_table


# --------------------------------------------------------------------------------------------- items


class CaptionPairs(torch.utils.data.Dataset):
    """One item per (clip, reference caption) over several clip tables: `{"row": clip row, "caption": str}`.

    Clips without any reference are skipped (with a warning); `max_clips` keeps the first clips with references
    of each table (the clips `ClipReferences(table, max_clips=...)` holds).
    """

    def __init__(self, tables: Sequence[Any], names: Sequence[str] | None = None, *, max_clips: int | None = None):
        names = list(names) if names is not None else [f"table {i}" for i in range(len(tables))]
        self.tables = list(tables)
        self.pairs: list[tuple[int, int, str]] = []
        for table_index, (table, name) in enumerate(zip(self.tables, names)):
            captions = table_captions(table, name)
            empty = kept = 0
            for row_index, references in enumerate(captions):
                if not references:
                    empty += 1
                    continue
                if max_clips and kept == max_clips:
                    break
                kept += 1
                for caption in references:
                    self.pairs.append((table_index, row_index, caption))
            if empty:
                logger.warning("%s: %d of %d clips have no reference caption and are skipped", name, empty, len(captions))
        if not self.pairs:
            raise ValueError(f"no (clip, caption) pair in {names}: every clip lacks captions")

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        table_index, row_index, caption = self.pairs[index]
        return {"row": self.tables[table_index][row_index], "caption": caption}

    def clip_lengths(self) -> list[int] | None:
        """Per pair, its clip's length (`duration_grouping.clip_lengths`), or None."""
        from llm_aac.train.duration_grouping import clip_lengths

        return clip_lengths(self.tables, ((table_index, row_index) for table_index, row_index, _ in self.pairs))


class MismatchedAudioPairs(CaptionPairs):
    """The pairs of `CaptionPairs`, each caption given the audio of the NEXT clip of its table (cyclically).

    The audio-grounding control of the validation loss: a captioner that uses the audio scores clearly worse
    on these pairs than on the true ones, while one that only learned the caption language scores the same
    (the GPU learning run of 2026-11-26 fell ~1.1 on both, which the plain validation loss could not tell).
    The partner clip is fixed, so every evaluation scores the same pairs. Each table needs at least two clips
    with references.
    """

    def __init__(self, tables: Sequence[Any], names: Sequence[str] | None = None, *, max_clips: int | None = None):
        super().__init__(tables, names, max_clips=max_clips)
        names = list(names) if names is not None else [f"table {i}" for i in range(len(self.tables))]
        clips_per_table: dict[int, list[int]] = {}
        for table_index, row_index, _ in self.pairs:
            rows = clips_per_table.setdefault(table_index, [])
            if not rows or rows[-1] != row_index:
                rows.append(row_index)
        self.partner: dict[tuple[int, int], int] = {}
        for table_index, rows in clips_per_table.items():
            if len(rows) < 2:
                raise ValueError(
                    f"{names[table_index]} has {len(rows)} clip with references; mismatched-audio pairs need at least 2"
                )
            for position, row_index in enumerate(rows):
                self.partner[(table_index, row_index)] = rows[(position + 1) % len(rows)]

    def __getitem__(self, index: int) -> dict:
        table_index, row_index, caption = self.pairs[index]
        return {"row": self.tables[table_index][self.partner[(table_index, row_index)]], "caption": caption}


class ClipReferences(torch.utils.data.Dataset):
    """One item per clip of a table (the first `max_clips`): `{"row": clip row, "references": [str, ...]}`."""

    def __init__(self, table, name: str = "evaluation table", max_clips: int | None = None):
        captions = table_captions(table, name)
        keep = [i for i, references in enumerate(captions) if references]
        if max_clips:
            keep = keep[:max_clips]
        if not keep:
            raise ValueError(f"{name} has no clip with reference captions")
        self.table = table
        self.indices = keep
        self.references = [captions[i] for i in keep]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict:
        return {"row": self.table[self.indices[index]], "references": self.references[index]}


# ------------------------------------------------------------------------------------------ collator


class CaptionBatchCollator:
    """Items -> `input_ids`, `attention_mask`, `input_features`, `feature_attention_mask` (+ `labels`).

    Items with a `caption` are training items: prompt + caption + EOS, right-padded, `labels` on the caption
    and EOS only. Items without one are generation items: the prompt alone, left-padded, no labels.

    Args:
        processor: the `LLMAACProcessor` (tokenizer, prompt template, feature extractor, audio-token count).
        max_frames: keep at most this many frames of each clip (None: whole clips).
        max_caption_tokens: cut longer captions to this many tokens (EOS not counted).
        device: where on-the-fly feature extraction runs.
    """

    def __init__(self, processor, *, max_frames: int | None = None, max_caption_tokens: int | None = None, device=None):
        from llm_aac.processing.collate import AudioFeatureCollator

        self.processor = processor
        self.max_caption_tokens = max_caption_tokens
        self.features = AudioFeatureCollator(processor.feature_extractor, max_frames=max_frames, device=device)
        self._prompt_ids: list[int] | None = None

    def prompt_ids(self) -> tuple[list[int], int]:
        """The tokenized prompt template and the position of its single audio placeholder."""
        if self._prompt_ids is None:
            ids = self.processor.tokenizer(self.processor.prompt, add_special_tokens=True)["input_ids"]
            if ids.count(self.processor.audio_token_id) != 1:
                raise ValueError(
                    f"the prompt {self.processor.prompt!r} tokenizes to {ids.count(self.processor.audio_token_id)} "
                    f"audio tokens (id {self.processor.audio_token_id}), expected 1"
                )
            self._prompt_ids = ids
        return self._prompt_ids, self._prompt_ids.index(self.processor.audio_token_id)

    def text_inputs(self, frames_per_clip: Sequence[int], captions: Sequence[str] | None) -> dict[str, torch.Tensor]:
        """Token inputs for clips of `frames_per_clip` real frames (and their captions, when training)."""
        tokenizer = self.processor.tokenizer
        prompt, where = self.prompt_ids()
        caption_ids = None
        if captions is not None:
            caption_ids = tokenizer([c.strip() for c in captions], add_special_tokens=False)["input_ids"]
        sequences, label_rows = [], []
        for index, num_frames in enumerate(frames_per_clip):
            audio = [self.processor.audio_token_id] * self.processor.num_audio_tokens(int(num_frames))
            ids = prompt[:where] + audio + prompt[where + 1 :]
            labels = [IGNORE_INDEX] * len(ids)
            if caption_ids is not None:
                caption = caption_ids[index]
                if self.max_caption_tokens is not None:
                    caption = caption[: self.max_caption_tokens]
                caption = caption + [tokenizer.eos_token_id]
                ids, labels = ids + caption, labels + caption
            sequences.append(ids)
            label_rows.append(labels)
        longest = max(len(ids) for ids in sequences)
        left = captions is None
        input_ids = torch.full((len(sequences), longest), tokenizer.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(sequences), longest), dtype=torch.long)
        labels = torch.full((len(sequences), longest), IGNORE_INDEX, dtype=torch.long)
        for row, (ids, label_row) in enumerate(zip(sequences, label_rows)):
            span = slice(longest - len(ids), longest) if left else slice(0, len(ids))
            input_ids[row, span] = torch.tensor(ids)
            attention_mask[row, span] = 1
            labels[row, span] = torch.tensor(label_row)
        output = {"input_ids": input_ids, "attention_mask": attention_mask}
        if captions is not None:
            output["labels"] = labels
        return output

    def __call__(self, items: Sequence[dict]) -> dict[str, torch.Tensor]:
        if not items:
            raise ValueError("cannot collate an empty batch")
        has_caption = ["caption" in item for item in items]
        if any(has_caption) and not all(has_caption):
            raise ValueError("a batch mixes training items (with 'caption') and generation items (without)")
        features = self.features([item["row"] for item in items])
        frames = features["attention_mask"].sum(dim=1).tolist()
        captions = [item["caption"] for item in items] if all(has_caption) else None
        batch = self.text_inputs(frames, captions)
        batch["input_features"] = features["input_features"]
        batch["feature_attention_mask"] = features["attention_mask"]
        return batch


__all__ = [
    "CaptionBatchCollator",
    "CaptionPairs",
    "ClipReferences",
    "CorpusDataArguments",
    "MismatchedAudioPairs",
    "load_clip_table",
    "load_corpus_tables",
    "measure_feature_statistics",
    "precomputed_feature_extractor",
    "synthetic_clip_table",
    "table_captions",
]
