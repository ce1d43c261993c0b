"""Caption text for the tokenizer and the text-LM stages, from any of the project's caption sources.

Sources (combine freely):

- the synthetic corpus generated in memory (`synthetic_clips` clips of a split, 5 captions each; only the
  caption grammar runs, no audio is rendered, so 10,000 clips take seconds);
- a corpus folder readable by `processing.loaders.load_aac_dataset` (an `llm-aac synth` output, a
  Clotho or AudioCaps folder, an audiofolder with captions): its `captions` / `caption` column only;
- caption files: `.txt` (one caption per line), `.csv` (a `caption` column as in AudioCaps' CSVs, or
  `caption_1..caption_N` as in Clotho's, or `captions`), `.jsonl` (a `caption` or `captions` field per line).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence

from llm_aac.processing.json_lines import iter_json_lines

CSV_SINGLE_COLUMNS = ("caption", "captions", "text", "raw_text")


def synthetic_captions(num_clips: int, seed: int = 0, split: str = "train") -> list[list[str]]:
    """The 5 captions of clips `0 .. num_clips - 1` of the synthetic corpus's `split` (no audio rendered)."""
    from llm_aac.processing.synthetic import generate_clip

    if isinstance(num_clips, bool) or int(num_clips) != num_clips or num_clips < 1:
        raise ValueError(f"num_clips must be a positive integer, got {num_clips!r}")
    return [generate_clip(seed, index, split, with_audio=False)["captions"] for index in range(int(num_clips))]


def _csv_captions(path: str) -> list[str]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        numbered = sorted(
            (c for c in columns if c.startswith("caption_") and c[8:].isdigit()), key=lambda c: int(c[8:])
        )
        single = next((c for c in CSV_SINGLE_COLUMNS if c in columns), None)
        if not numbered and single is None:
            raise ValueError(
                f"{path!r} has no caption column: expected one of {list(CSV_SINGLE_COLUMNS)} or caption_1..caption_N, "
                f"found {columns}"
            )
        texts = []
        for row in reader:
            for column in numbered or [single]:
                value = row.get(column)
                if value:
                    texts.append(value)
        return texts


def _jsonl_captions(path: str) -> list[str]:
    texts = []
    for number, record in iter_json_lines(path):
        value = record.get("captions", record.get("caption"))
        if value is None:
            raise ValueError(f"{path!r} line {number} has no 'caption' or 'captions' field: {sorted(record)}")
        texts.extend([value] if isinstance(value, str) else list(value))
    return texts


def read_caption_file(path: str | os.PathLike) -> list[str]:
    """Captions of a `.txt` (one per line), `.csv` or `.jsonl` file (see the module docstring)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"caption file {path!r} does not exist")
    lowered = path.lower()
    if lowered.endswith(".csv"):
        texts = _csv_captions(path)
    elif lowered.endswith((".jsonl", ".json")):
        texts = _jsonl_captions(path)
    else:
        with open(path, encoding="utf-8") as f:
            texts = [line.rstrip("\n") for line in f]
    return clean_captions(texts)


def corpus_captions(path: str | os.PathLike, split: str | None = None) -> list[str]:
    """Every reference caption of a corpus folder (one split, or all splits when `split` is None)."""
    from datasets import DatasetDict

    from llm_aac.processing.loaders import load_aac_dataset

    dataset = load_aac_dataset(path, split)
    parts = list(dataset.values()) if isinstance(dataset, DatasetDict) else [dataset]
    texts: list[str] = []
    for part in parts:
        if "captions" in part.column_names:
            for captions in part.data.column("captions").to_pylist():
                texts.extend(captions or [])
        elif "caption" in part.column_names:
            texts.extend(part.data.column("caption").to_pylist())
        else:
            raise ValueError(f"{os.fspath(path)!r} has no 'captions' or 'caption' column: {part.column_names}")
    return clean_captions(texts)


def clean_captions(texts: Iterable[str | None]) -> list[str]:
    """Whitespace-normalised, non-empty captions, in order."""
    cleaned = []
    for text in texts:
        if text is None:
            continue
        if not isinstance(text, str):
            raise TypeError(f"captions must be strings, got {text!r} ({type(text).__name__})")
        text = " ".join(text.split())
        if text:
            cleaned.append(text)
    return cleaned


def collect_captions(
    *,
    caption_files: Sequence[str] = (),
    corpus_path: str | None = None,
    corpus_split: str | None = "train",
    synthetic_clips: int = 0,
    synthetic_seed: int = 0,
    synthetic_split: str = "train",
) -> list[str]:
    """Captions from every given source, concatenated; an error when none is given or all are empty."""
    texts: list[str] = []
    if synthetic_clips:
        texts += [c for captions in synthetic_captions(synthetic_clips, synthetic_seed, synthetic_split) for c in captions]
    if corpus_path:
        texts += corpus_captions(corpus_path, corpus_split)
    for path in caption_files:
        texts += read_caption_file(path)
    if not (synthetic_clips or corpus_path or caption_files):
        raise ValueError("no caption source given: pass synthetic clips, a corpus folder or caption files")
    if not texts:
        raise ValueError("the given caption sources hold no caption text")
    return texts


__all__ = [
    "clean_captions",
    "collect_captions",
    "corpus_captions",
    "read_caption_file",
    "synthetic_captions",
]
