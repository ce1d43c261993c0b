"""Dataset loaders for audio captioning / tagging corpora, all returning `datasets` objects.

Every loader gives an `audio` column of `Audio(decode=False)` (`{"bytes", "path"}` rows, decoded
later by `processing.audio_io` with soundfile, never torchcodec) plus the corpus' text columns:

| kind        | source                                                      | text columns |
|-------------|-------------------------------------------------------------|--------------|
| clotho      | `clotho_captions_<split>.csv` beside a folder of wavs       | `file_name`, `caption_1..5`, `captions` |
| audiocaps   | `train.csv` / `val.csv` / `test.csv` + a folder of clips    | `youtube_id`, `start_time`, `audiocap_ids`, `captions` |
| audioset    | `agkphysics/AudioSet` on the Hub, or a local copy of it     | `video_id`, `labels`, `human_labels` |
| audiofolder | the `audiofolder` layout (split folders, `metadata.csv`)    | metadata columns (+ `captions`) |
| disk        | anything written by `save_to_disk` (e.g. `llm-aac synth`)   | as saved |
| hub         | any other Hub id or local data folder with an audio column  | as published |

`load_aac_dataset(name_or_path, split)` picks the loader from the path's contents.
"""

from __future__ import annotations

import csv
import logging
import os
import unicodedata
from collections.abc import Sequence

from .audio_io import AUDIO_FILE_EXTENSIONS, ensure_undecoded_audio

logger = logging.getLogger(__name__)

DATASET_KINDS = ("clotho", "audiocaps", "audioset", "audiofolder", "disk", "hub")
AUDIOSET_HUB_ID = "agkphysics/AudioSet"
AUDIOSET_COLUMNS = ("video_id", "audio", "labels", "human_labels")
CLOTHO_NUM_CAPTIONS = 5
AUDIOCAPS_CSV_COLUMNS = ("audiocap_id", "youtube_id", "start_time", "caption")
AUDIOFOLDER_METADATA_FILES = ("metadata.csv", "metadata.jsonl", "metadata.parquet")

# Canonical split name -> accepted spellings.
CLOTHO_SPLITS = {
    "development": ("development", "dev", "train"),
    "validation": ("validation", "val", "valid"),
    "evaluation": ("evaluation", "eval", "test"),
}
AUDIOCAPS_SPLITS = {
    "train": ("train", "training"),
    "val": ("val", "validation", "valid", "dev"),
    "test": ("test", "eval", "evaluation"),
}


def _canonical_split(split: str, table: dict[str, Sequence[str]], corpus: str) -> str:
    for canonical, spellings in table.items():
        if split.lower() in spellings:
            return canonical
    accepted = sorted(s for spellings in table.values() for s in spellings)
    raise ValueError(f"Unknown {corpus} split {split!r}; accepted: {accepted}.")


def _read_csv(path: str, required: Sequence[str]) -> list[dict[str, str]]:
    # utf-8-sig: some published CSVs start with a byte-order mark that would rename the first column.
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [name.strip() for name in (reader.fieldnames or [])]
        missing = [c for c in required if c not in header]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; header is {header}.")
        reader.fieldnames = header
        return [row for row in reader if any((v or "").strip() for v in row.values())]


def _undecoded_audio_dataset(columns: dict, audio_paths: list[str]):
    """A Dataset whose `audio` column points at local files (`{"bytes": None, "path": ...}`)."""
    from datasets import Dataset, Features, Value

    audio = [{"bytes": None, "path": p} for p in audio_paths]
    features = {"audio": {"bytes": Value("binary"), "path": Value("string")}}
    dataset = Dataset.from_dict({"audio": audio, **columns})
    dataset = dataset.cast(Features({**dataset.features, **features}))
    return ensure_undecoded_audio(dataset)


def _index_audio_files(folder: str, recursive: bool) -> dict[str, str]:
    """Map NFC-normalised file name -> path (NFC: names copied between OSes change normalisation)."""
    index = {}
    if recursive:
        walker = ((root, files) for root, _, files in os.walk(folder))
    else:
        walker = [(folder, [e.name for e in os.scandir(folder) if e.is_file()])]
    for root, files in walker:
        for name in files:
            if name.lower().endswith(AUDIO_FILE_EXTENSIONS):
                index.setdefault(unicodedata.normalize("NFC", name), os.path.join(root, name))
    return index


def _report_missing(missing: list[str], total: int, corpus: str, where: str, on_missing_audio: str) -> None:
    if not missing:
        return
    message = f"{len(missing)} of {total} {corpus} clips have no audio file in {where} (first: {missing[:5]})."
    if on_missing_audio == "error":
        raise ValueError(message + " Pass on_missing_audio='skip' to drop them.")
    logger.warning(message + " They are skipped.")


def _first_file(root: str, subfolders: Sequence[str], name: str) -> str | None:
    """`<root>/<subfolder>/<name>` for the first of `subfolders` ("" is `root` itself) that holds it, or None."""
    for folder in _folders(root, subfolders):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    return None


def _folders(root: str, subfolders: Sequence[str]) -> list[str]:
    return [os.path.join(root, subfolder) for subfolder in subfolders]


def _check_on_missing(on_missing_audio: str) -> None:
    if on_missing_audio not in ("error", "skip"):
        raise ValueError(f"on_missing_audio must be 'error' or 'skip', got {on_missing_audio!r}.")


# --------------------------------------------------------------------------------------- Clotho


# Where the caption CSVs may sit below a corpus root ("": the root itself).
CLOTHO_CSV_FOLDERS = ("", "clotho_csv_files", "csv")


def _clotho_captions_csv(root: str, split: str) -> str | None:
    return _first_file(root, CLOTHO_CSV_FOLDERS, f"clotho_captions_{split}.csv")


def _clotho_splits_present(root: str) -> list[str]:
    return [s for s in CLOTHO_SPLITS if _clotho_captions_csv(root, s) is not None]


def load_clotho(
    root: str | os.PathLike,
    split: str = "development",
    *,
    audio_dir: str | os.PathLike | None = None,
    on_missing_audio: str = "error",
):
    """Load one Clotho split from its published layout.

    Args:
        root: folder holding `clotho_captions_<split>.csv` (Clotho v2.1 names: `development`,
            `validation`, `evaluation`; `train`/`val`/`test` are accepted aliases).
        split: which split.
        audio_dir: folder of that split's audio files; by default the first of `<root>/<split>`,
            `<root>/clotho_audio_<split>`, `<root>/audio/<split>` that exists.
        on_missing_audio: `"error"` (default) or `"skip"` rows whose file is absent.

    Returns:
        A `Dataset` with `audio`, `file_name`, `caption_1` .. `caption_5` and `captions` (the five
        captions as a list), in CSV order.
    """
    _check_on_missing(on_missing_audio)
    root = os.fspath(root)
    split = _canonical_split(split, CLOTHO_SPLITS, "Clotho")
    csv_path = _clotho_captions_csv(root, split)
    if csv_path is None:
        raise ValueError(f"No clotho_captions_{split}.csv in any of {_folders(root, CLOTHO_CSV_FOLDERS)}.")
    caption_columns = [f"caption_{i}" for i in range(1, CLOTHO_NUM_CAPTIONS + 1)]
    rows = _read_csv(csv_path, ["file_name", *caption_columns])

    if audio_dir is None:
        candidates = [os.path.join(root, d) for d in (split, f"clotho_audio_{split}", os.path.join("audio", split))]
        audio_dir = next((c for c in candidates if os.path.isdir(c)), None)
        if audio_dir is None:
            raise ValueError(f"No audio folder for Clotho split {split!r}; looked for {candidates}.")
    audio_dir = os.fspath(audio_dir)
    index = _index_audio_files(audio_dir, recursive=False)

    kept, paths, missing = [], [], []
    for row in rows:
        path = index.get(unicodedata.normalize("NFC", row["file_name"]))
        if path is None:
            missing.append(row["file_name"])
            continue
        kept.append(row)
        paths.append(path)
    _report_missing(missing, len(rows), "Clotho", audio_dir, on_missing_audio)

    columns = {"file_name": [r["file_name"] for r in kept]}
    for c in caption_columns:
        columns[c] = [r[c] for r in kept]
    columns["captions"] = [[r[c] for c in caption_columns] for r in kept]
    return _undecoded_audio_dataset(columns, paths)


# ------------------------------------------------------------------------------------ AudioCaps


AUDIOCAPS_CSV_FOLDERS = ("", "dataset", "csv")


def _audiocaps_csv(root: str, split: str) -> str | None:
    return _first_file(root, AUDIOCAPS_CSV_FOLDERS, f"{split}.csv")


def _is_audiocaps_csv(path: str) -> bool:
    with open(path, newline="", encoding="utf-8-sig") as f:
        header = [h.strip() for h in next(csv.reader(f), [])]
    return all(c in header for c in AUDIOCAPS_CSV_COLUMNS)


def _audiocaps_splits_present(root: str) -> list[str]:
    present = []
    for split in AUDIOCAPS_SPLITS:
        path = _audiocaps_csv(root, split)
        if path is not None and _is_audiocaps_csv(path):
            present.append(split)
    return present


def _audiocaps_file_stems(youtube_id: str, start_time: str, audiocap_ids: list[str]) -> list[str]:
    """File names used by common AudioCaps download scripts for one clip, most specific first."""
    start = int(float(start_time))
    stems = [
        f"{youtube_id}_{start}",
        f"Y{youtube_id}_{start}",
        f"{youtube_id}_{start}.000_{start + 10}.000",
        f"Y{youtube_id}_{start}.000_{start + 10}.000",
        f"{youtube_id}_{start * 1000}",
        youtube_id,
        f"Y{youtube_id}",
    ]
    return stems + list(audiocap_ids)


def load_audiocaps(
    root: str | os.PathLike,
    split: str = "train",
    *,
    audio_dir: str | os.PathLike | None = None,
    group_captions: bool = True,
    on_missing_audio: str = "skip",
):
    """Load one AudioCaps split: its CSV (`audiocap_id, youtube_id, start_time, caption`) + audio.

    Args:
        root: folder holding `train.csv`, `val.csv`, `test.csv` (also looked for under
            `<root>/dataset/`, the layout of the AudioCaps GitHub repository).
        split: `train`, `val` (`validation`) or `test`.
        audio_dir: folder searched recursively for the clips; by default the first existing of
            `<root>/audio/<split>`, `<root>/<split>`, `<root>/audio`, `<root>`. A clip's file may be
            named `<youtube_id>_<start>`, `Y<youtube_id>_<start>.000_<end>.000`, `<youtube_id>`,
            `Y<youtube_id>` or `<audiocap_id>` with any audio extension.
        group_captions: one row per clip with all its captions in `captions` (5 for val / test,
            1 for train) and their ids in `audiocap_ids`. With False, one row per caption
            (`audiocap_id`, `caption`).
        on_missing_audio: `"skip"` (default: part of AudioCaps is always gone from YouTube; a
            warning reports how many) or `"error"`.
    """
    _check_on_missing(on_missing_audio)
    root = os.fspath(root)
    split = _canonical_split(split, AUDIOCAPS_SPLITS, "AudioCaps")
    csv_path = _audiocaps_csv(root, split)
    if csv_path is None:
        raise ValueError(f"No AudioCaps {split}.csv in any of {_folders(root, AUDIOCAPS_CSV_FOLDERS)}.")
    rows = _read_csv(csv_path, AUDIOCAPS_CSV_COLUMNS)

    if audio_dir is None:
        candidates = [os.path.join(root, "audio", split), os.path.join(root, split), os.path.join(root, "audio"), root]
        audio_dir = next(c for c in candidates if os.path.isdir(c))
    audio_dir = os.fspath(audio_dir)
    by_stem = {}
    for name, path in _index_audio_files(audio_dir, recursive=True).items():
        by_stem.setdefault(os.path.splitext(name)[0], path)

    clips: dict[tuple[str, str], dict] = {}
    for row in rows:
        key = (row["youtube_id"].strip(), row["start_time"].strip())
        clip = clips.setdefault(key, {"audiocap_ids": [], "captions": []})
        clip["audiocap_ids"].append(row["audiocap_id"].strip())
        clip["captions"].append(row["caption"])

    kept, paths, missing = [], [], []
    for (youtube_id, start_time), clip in clips.items():
        stems = _audiocaps_file_stems(youtube_id, start_time, clip["audiocap_ids"])
        path = next((by_stem[s] for s in stems if s in by_stem), None)
        if path is None:
            missing.append(youtube_id)
            continue
        kept.append((youtube_id, start_time, clip))
        paths.append(path)
    _report_missing(missing, len(clips), "AudioCaps", audio_dir, on_missing_audio)

    if group_captions:
        columns = {
            "youtube_id": [k[0] for k in kept],
            "start_time": [int(float(k[1])) for k in kept],
            "audiocap_ids": [[int(i) for i in k[2]["audiocap_ids"]] for k in kept],
            "captions": [k[2]["captions"] for k in kept],
        }
        return _undecoded_audio_dataset(columns, paths)
    columns = {"youtube_id": [], "start_time": [], "audiocap_id": [], "caption": []}
    row_paths = []
    for (youtube_id, start_time, clip), path in zip(kept, paths):
        for audiocap_id, caption in zip(clip["audiocap_ids"], clip["captions"]):
            columns["youtube_id"].append(youtube_id)
            columns["start_time"].append(int(float(start_time)))
            columns["audiocap_id"].append(int(audiocap_id))
            columns["caption"].append(caption)
            row_paths.append(path)
    return _undecoded_audio_dataset(columns, row_paths)


# ------------------------------------------------------------------------------------- AudioSet


def load_audioset(
    name_or_path: str | os.PathLike = AUDIOSET_HUB_ID,
    split: str | None = "train",
    *,
    config: str = "balanced",
    **load_dataset_kwargs,
):
    """Load AudioSet as published on the Hub (`agkphysics/AudioSet`, configs `balanced` /
    `unbalanced`, splits `train` / `test`), or a local copy of that repository (same README
    configs and parquet files) or a `save_to_disk` folder with the same columns.

    Returns `video_id`, `audio` (48 kHz FLAC bytes, undecoded), `labels` (ontology ids),
    `human_labels`. Extra keyword arguments go to `datasets.load_dataset` (e.g. `cache_dir`,
    `num_proc`).
    """
    if split is not None and split.lower() in ("eval", "evaluation"):
        split = "test"
    path = os.fspath(name_or_path)
    if _is_saved_dataset(path):
        dataset = _load_saved(path, split)
    else:
        from datasets import load_dataset

        dataset = load_dataset(path, config, split=split, **load_dataset_kwargs)
    features = dataset.features if hasattr(dataset, "features") else next(iter(dataset.values())).features
    missing = [c for c in AUDIOSET_COLUMNS if c not in features]
    if missing:
        raise ValueError(f"{path!r} is not AudioSet-shaped: missing column(s) {missing}; has {list(features)}.")
    return ensure_undecoded_audio(dataset)


# ---------------------------------------------------------------------------------- audiofolder


def load_audiofolder(path: str | os.PathLike, split: str | None = None, *, drop_labels: bool | None = None):
    """Read a folder in the `datasets` audiofolder layout without torchcodec.

    Same conventions as `load_dataset("audiofolder", data_dir=path)` (whose builder needs
    torchcodec in datasets 5 just to store file paths): splits come from folder / file names
    (`train`, `test`, `validation`, ...; everything is `train` otherwise); a `metadata.csv`,
    `metadata.jsonl` or `metadata.parquet` gives extra columns for the files named in its
    `file_name` column (relative to the metadata file); without metadata, the parent folder name
    becomes a `label` ClassLabel when there are several (unless `drop_labels=True`). Metadata
    columns `caption_1..caption_N` are also gathered into a `captions` list.
    """
    from datasets import ClassLabel, DatasetDict
    from datasets.data_files import DataFilesDict, get_data_patterns

    root = os.path.abspath(os.fspath(path))
    if not os.path.isdir(root):
        raise ValueError(f"audiofolder path {root!r} is not a directory.")
    patterns = get_data_patterns(root)
    files_per_split = {str(s): list(files) for s, files in DataFilesDict.from_patterns(patterns, base_path=root).items()}

    has_metadata = any(os.path.basename(f) in AUDIOFOLDER_METADATA_FILES for fs in files_per_split.values() for f in fs)
    labels = sorted(
        {
            os.path.basename(os.path.dirname(f))
            for fs in files_per_split.values()
            for f in fs
            if f.lower().endswith(AUDIO_FILE_EXTENSIONS)
        }
    )
    add_labels = not has_metadata and len(labels) > 1 and drop_labels is not True

    splits = {}
    for split_name, files in files_per_split.items():
        metadata_files = [f for f in files if os.path.basename(f) in AUDIOFOLDER_METADATA_FILES]
        if has_metadata:
            columns, paths = _read_audiofolder_metadata(metadata_files)
        else:
            paths = sorted(f for f in files if f.lower().endswith(AUDIO_FILE_EXTENSIONS))
            columns = {}
            if add_labels:
                columns["label"] = [os.path.basename(os.path.dirname(p)) for p in paths]
        if not paths:
            continue
        dataset = _undecoded_audio_dataset(columns, paths)
        if add_labels:
            dataset = dataset.cast_column("label", ClassLabel(names=labels))
        splits[split_name] = _with_captions_list(dataset)
    if not splits:
        raise ValueError(f"No audio files ({', '.join(AUDIO_FILE_EXTENSIONS)}) found under {root!r}.")
    return _select_split(DatasetDict(splits), split, root)


def _read_audiofolder_metadata(metadata_files: list[str]) -> tuple[dict, list[str]]:
    import pandas as pd

    frames = []
    for metadata_file in sorted(metadata_files):
        if metadata_file.endswith(".csv"):
            frame = pd.read_csv(metadata_file, encoding="utf-8-sig", keep_default_na=False)
        elif metadata_file.endswith(".jsonl"):
            frame = pd.read_json(metadata_file, lines=True)
        else:
            frame = pd.read_parquet(metadata_file)
        if "file_name" not in frame.columns:
            raise ValueError(f"{metadata_file}: metadata needs a 'file_name' column; has {list(frame.columns)}.")
        base = os.path.dirname(metadata_file)
        resolved = []
        for name in frame["file_name"]:
            relative = os.path.normpath(str(name))
            # Same containment rule as datasets: a metadata row may not point outside its folder.
            if os.path.isabs(relative) or relative == ".." or relative.startswith(".." + os.sep) or "://" in str(name):
                raise ValueError(f"{metadata_file}: file_name {name!r} must be a relative path inside its folder.")
            full = os.path.join(base, relative)
            if not os.path.isfile(full):
                raise ValueError(f"{metadata_file}: audio file {full!r} listed in file_name does not exist.")
            resolved.append(full)
        frames.append(frame.drop(columns=["file_name"]).assign(_path=resolved))
    merged = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"_path": []})
    paths = merged.pop("_path").tolist()
    return {c: merged[c].tolist() for c in merged.columns}, paths


# --------------------------------------------------------------------------- save_to_disk / hub


def _is_saved_dataset(path: str) -> bool:
    return os.path.isdir(path) and (
        os.path.isfile(os.path.join(path, "dataset_dict.json")) or os.path.isfile(os.path.join(path, "state.json"))
    )


def _load_saved(path: str, split: str | None):
    from datasets import load_from_disk

    return _select_split(load_from_disk(path), split, path)


def load_saved_dataset(path: str | os.PathLike, split: str | None = None, *, audio_column: str = "audio"):
    """Load a `save_to_disk` folder (e.g. the corpus written by `llm-aac synth`)."""
    path = os.fspath(path)
    if not _is_saved_dataset(path):
        raise ValueError(f"{path!r} is not a save_to_disk folder (no dataset_dict.json or state.json).")
    return ensure_undecoded_audio(_with_captions_list(_load_saved(path, split)), audio_column)


def load_hub_dataset(
    name_or_path: str, split: str | None = None, *, config: str | None = None, audio_column: str = "audio", **kwargs
):
    """Any `datasets.load_dataset` source (Hub id, local folder of parquet / csv / json) with an
    audio column; the audio column is cast to `Audio(decode=False)`."""
    from datasets import load_dataset

    dataset = load_dataset(name_or_path, config, split=split, **kwargs)
    return ensure_undecoded_audio(_with_captions_list(dataset), audio_column)


def _select_split(dataset, split: str | None, where: str):
    from datasets import DatasetDict

    if split is None or not isinstance(dataset, DatasetDict):
        return dataset
    if split in dataset:
        return dataset[split]
    aliases = {"validation": ("val", "valid", "dev"), "test": ("eval", "evaluation"), "train": ("training",)}
    for name in dataset:
        if split in aliases.get(name, ()) or name in aliases.get(split, ()):
            return dataset[name]
    raise ValueError(f"No split {split!r} in {where!r}; available: {list(dataset)}.")


def _with_captions_list(dataset):
    """Add a `captions` list column from `caption_1..caption_N` columns when there is none."""
    from datasets import DatasetDict

    if isinstance(dataset, DatasetDict):
        return DatasetDict({k: _with_captions_list(v) for k, v in dataset.items()})
    names = dataset.column_names
    numbered = sorted((c for c in names if c.startswith("caption_") and c[8:].isdigit()), key=lambda c: int(c[8:]))
    if "captions" in names or not numbered:
        return dataset
    return dataset.map(
        lambda batch: {"captions": [list(caps) for caps in zip(*(batch[c] for c in numbered))]},
        batched=True,
        desc="captions list",
    )


# ------------------------------------------------------------------------------------- dispatch


def _contains_audioset_parquet(folder: str) -> bool:
    import pyarrow.parquet as pq

    for root, _, files in os.walk(folder):
        for name in files:
            if name.endswith(".parquet"):
                schema_names = set(pq.read_schema(os.path.join(root, name)).names)
                return {"video_id", "labels", "human_labels"} <= schema_names
    return False


def _contains_audio_files(folder: str) -> bool:
    return any(name.lower().endswith(AUDIO_FILE_EXTENSIONS) for _, _, files in os.walk(folder) for name in files)


def detect_dataset_kind(name_or_path: str | os.PathLike) -> str:
    """Guess which loader fits `name_or_path` (one of `DATASET_KINDS`)."""
    path = os.fspath(name_or_path)
    if os.path.isdir(path):
        if _is_saved_dataset(path):
            return "disk"
        if _clotho_splits_present(path):
            return "clotho"
        if _audiocaps_splits_present(path):
            return "audiocaps"
        if _contains_audioset_parquet(path):
            return "audioset"
        if _contains_audio_files(path):
            return "audiofolder"
        return "hub"
    if os.path.exists(path):
        return "hub"
    lowered = path.lower()
    if lowered in ("audioset", AUDIOSET_HUB_ID.lower()):
        return "audioset"
    if lowered in ("clotho", "audiocaps"):
        raise ValueError(
            f"{path} cannot be downloaded automatically: download it yourself and pass its folder "
            f"(see processing/loaders.py for the expected layout)."
        )
    return "hub"


def load_aac_dataset(
    name_or_path: str | os.PathLike,
    split: str | None = None,
    *,
    kind: str | None = None,
    config: str | None = None,
    audio_dir: str | os.PathLike | None = None,
    on_missing_audio: str | None = None,
    **kwargs,
):
    """Load any supported corpus with an `Audio(decode=False)` `audio` column.

    Args:
        name_or_path: a local folder (Clotho / AudioCaps layout, AudioSet copy, audiofolder,
            `save_to_disk` output such as `llm-aac synth`'s), `"audioset"` /
            `"agkphysics/AudioSet"`, or any Hub dataset id.
        split: split name; None returns every split found as a `DatasetDict`.
        kind: force a loader (one of `DATASET_KINDS`) instead of detecting it.
        config: Hub config name (AudioSet: `balanced` (default) or `unbalanced`).
        audio_dir: Clotho / AudioCaps audio folder when not in the default place.
        on_missing_audio: Clotho / AudioCaps: `"error"` or `"skip"` (each loader's default if None).
        **kwargs: passed to the selected loader.
    """
    path = os.fspath(name_or_path)
    kind = kind or detect_dataset_kind(path)
    if kind not in DATASET_KINDS:
        raise ValueError(f"Unknown dataset kind {kind!r}; choose from {DATASET_KINDS}.")
    local_options = {}
    if audio_dir is not None:
        local_options["audio_dir"] = audio_dir
    if on_missing_audio is not None:
        local_options["on_missing_audio"] = on_missing_audio
    if local_options and kind not in ("clotho", "audiocaps"):
        raise ValueError(f"audio_dir / on_missing_audio only apply to clotho and audiocaps, not {kind!r}.")

    if kind in ("clotho", "audiocaps"):
        loader, table, present = (
            (load_clotho, CLOTHO_SPLITS, _clotho_splits_present)
            if kind == "clotho"
            else (load_audiocaps, AUDIOCAPS_SPLITS, _audiocaps_splits_present)
        )
        if split is not None:
            return loader(path, split, **local_options, **kwargs)
        from datasets import DatasetDict

        names = present(path)
        if not names:
            raise ValueError(f"No {kind} caption CSVs found under {path!r}.")
        return DatasetDict({name: loader(path, name, **local_options, **kwargs) for name in names})
    if kind == "audioset":
        hub_or_path = AUDIOSET_HUB_ID if path.lower() in ("audioset", AUDIOSET_HUB_ID.lower()) else path
        return load_audioset(hub_or_path, split, config=config or "balanced", **kwargs)
    if kind == "audiofolder":
        return load_audiofolder(path, split, **kwargs)
    if kind == "disk":
        return load_saved_dataset(path, split, **kwargs)
    return load_hub_dataset(path, split, config=config, **kwargs)
