"""Precompute audio features into Arrow, resumably and splittable across machines.

Layout of an output folder:

    OUTPUT/
      manifest.json               what was computed: dataset identity, extractor config, chunk grid
      chunks/chunk-00000/         one folder per `chunk_size` rows, renamed into place only when
        data*.arrow               complete (features written by `Dataset.map`),
        stats.json                the chunk's per-bin statistics (count, mean, M2 in float64),
        _COMPLETE.json            and its completion marker
      statistics.json             all chunks' statistics merged in chunk order
      preprocessor_config.json    the feature extractor with `feature_mean` / `feature_std` set

Features are stored raw (`do_normalize=False`) as `input_features` (`Array2D`, shape
`(frames, bins)`, float32, real frames only) with `num_frames`, so the normalisation can be changed
later without recomputing. The chunk grid depends only on the number of rows and `chunk_size`;
`--num-shards N --shard-index I` gives machine I the chunks `i % N == I`. A rerun skips complete
chunks (a full rerun is a pure cache hit); an interrupted run leaves at most one unfinished
temporary folder per worker, which the next run discards and redoes. Merging statistics of
several machines' outputs (`merge_precomputed`) folds the same per-chunk statistics in the same
order as a single run, so the result equals a single run's.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import shutil
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .audio_io import decode_audio, describe_audio_source
from .feature_stats import FeatureStatistics, compute_feature_statistics, merge_statistics

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
CHUNKS_DIR = "chunks"
COMPLETE_MARKER = "_COMPLETE.json"
CHUNK_STATS_FILE = "stats.json"
STATISTICS_FILE = "statistics.json"
CHUNK_LOCATIONS_FILE = "chunk_locations.json"
FEATURES_COLUMN = "input_features"
NUM_FRAMES_COLUMN = "num_frames"
# Extractor fields that do not change the raw features (statistics are measured, not inputs).
_CONFIG_KEYS_NOT_AFFECTING_RAW_FEATURES = ("feature_mean", "feature_std", "do_normalize")


# ----------------------------------------------------------------------------- raw extraction


def extract_raw_features(
    feature_extractor, arrays: Sequence[np.ndarray], sampling_rates: Sequence[int], *, device=None
) -> list[np.ndarray]:
    """Raw (un-normalised) features of each clip, `[num_frames_i, bins]` float32, padding removed.

    One extractor call for the whole batch; each clip carries its own rate (the extractor
    resamples to 16 kHz). A clip's real frames do not depend on the other clips of the batch.
    """
    clips = [{"array": a, "sampling_rate": int(r)} for a, r in zip(arrays, sampling_rates)]
    encoded = feature_extractor(
        clips, return_tensors="np", padding="longest", return_attention_mask=True, do_normalize=False, device=device
    )
    features = np.asarray(encoded["input_features"], dtype=np.float32)
    lengths = np.asarray(encoded["attention_mask"]).sum(axis=1)
    return [np.ascontiguousarray(features[i, : int(n)]) for i, n in enumerate(lengths)]


_IMPORTING_PID = os.getpid()


def _single_threaded_torch_in_forked_worker() -> None:
    # `Dataset.map(num_proc=...)` forks; torch's OpenMP pool, once used by the parent, deadlocks
    # in a forked child. Each worker is one of num_proc processes anyway, so one thread is right.
    global _IMPORTING_PID
    if os.getpid() != _IMPORTING_PID:
        import torch

        torch.set_num_threads(1)
        _IMPORTING_PID = os.getpid()


def extract_features(batch: dict, *, feature_extractor, audio_column: str = "audio", device=None) -> dict:
    """`Dataset.map(batched=True)` function: decode `audio_column`, add raw features.

    Returns `input_features` (list of `[frames, bins]` float32) and `num_frames`.
    """
    _single_threaded_torch_in_forked_worker()
    values = batch[audio_column]
    decoded = [decode_audio(value) for value in values]
    arrays, rates = [d[0] for d in decoded], [d[1] for d in decoded]
    try:
        features = extract_raw_features(feature_extractor, arrays, rates, device=device)
    except (ValueError, TypeError):
        # The extractor names the failing clip by its position in the batch; name its file instead.
        for value, samples, rate in zip(values, arrays, rates):
            try:
                extract_raw_features(feature_extractor, [samples], [rate], device=device)
            except (ValueError, TypeError) as err:
                raise type(err)(f"Audio {describe_audio_source(value)}: {err}") from err
        raise
    return {FEATURES_COLUMN: features, NUM_FRAMES_COLUMN: [f.shape[0] for f in features]}


def feature_schema(num_bins: int) -> dict:
    from datasets import Array2D, Value

    return {
        FEATURES_COLUMN: Array2D(shape=(None, num_bins), dtype="float32"),
        NUM_FRAMES_COLUMN: Value("int32"),
    }


def add_features(
    dataset,
    feature_extractor,
    *,
    audio_column: str = "audio",
    batch_size: int = 16,
    num_proc: int | None = None,
    device=None,
    keep_audio: bool = True,
    cache_file_name: str | None = None,
    desc: str | None = "features",
):
    """`dataset.map(extract_features, batched=True, num_proc=...)` with the Arrow feature types set.

    Stored features are raw (`do_normalize=False`), whatever the extractor's setting.
    """
    from datasets import Features

    if audio_column not in dataset.column_names:
        raise ValueError(f"Dataset has no audio column {audio_column!r}; columns: {dataset.column_names}.")
    kept = {k: v for k, v in dataset.features.items() if keep_audio or k != audio_column}
    features = Features({**kept, **feature_schema(feature_extractor.feature_size)})
    return dataset.map(
        extract_features,
        batched=True,
        batch_size=batch_size,
        num_proc=num_proc,
        fn_kwargs={"feature_extractor": feature_extractor, "audio_column": audio_column, "device": device},
        features=features,
        remove_columns=[] if keep_audio else [audio_column],
        cache_file_name=cache_file_name,
        desc=desc,
    )


# ------------------------------------------------------------------------ manifest and chunks


def _extractor_identity(feature_extractor) -> dict:
    config = feature_extractor.to_dict()
    return {k: v for k, v in sorted(config.items()) if k not in _CONFIG_KEYS_NOT_AFFECTING_RAW_FEATURES}


def build_manifest(dataset, feature_extractor, *, dataset_id: str | None, audio_column: str, chunk_size: int, keep_audio: bool) -> dict:
    """The manifest of an output folder; its `fingerprint` is the cache key.

    The key covers the dataset's content (its `datasets` fingerprint and size), the extractor
    configuration apart from its statistics, and the chunk layout; `dataset_id` is only a label
    (the same data reached through another path is still a cache hit).
    """
    identity = {
        "format_version": FORMAT_VERSION,
        "dataset": {"fingerprint": dataset._fingerprint, "num_rows": dataset.num_rows},
        "audio_column": audio_column,
        "keep_audio": keep_audio,
        "chunk_size": chunk_size,
        "feature_extractor": _extractor_identity(feature_extractor),
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
    num_chunks = max(1, -(-dataset.num_rows // chunk_size))
    return {**identity, "fingerprint": digest, "num_chunks": num_chunks, "dataset_id": dataset_id}


def _write_json_atomic(path: str, data: dict) -> None:
    tmp = f"{path}.tmp-{socket.gethostname()}-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=str)
    os.replace(tmp, path)


def read_manifest(output_dir: str) -> dict:
    path = os.path.join(output_dir, MANIFEST_FILE)
    if not os.path.isfile(path):
        raise ValueError(f"{output_dir!r} holds no precomputed features ({MANIFEST_FILE} is missing).")
    with open(path) as f:
        return json.load(f)


def chunk_name(index: int) -> str:
    return f"chunk-{index:05d}"


def chunk_is_complete(chunk_dir: str) -> bool:
    return os.path.isfile(os.path.join(chunk_dir, COMPLETE_MARKER))


def chunks_of_shard(num_chunks: int, num_shards: int, shard_index: int) -> list[int]:
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ValueError(f"Need num_shards >= 1 and 0 <= shard_index < num_shards; got {num_shards}, {shard_index}.")
    return list(range(shard_index, num_chunks, num_shards))


def _chunk_locations(output_dir: str, manifest: dict) -> dict[int, str]:
    """Complete chunks available from `output_dir` (its own and, after a merge, other folders')."""
    locations = {}
    listed = os.path.join(output_dir, CHUNK_LOCATIONS_FILE)
    if os.path.isfile(listed):
        with open(listed) as f:
            for index, path in json.load(f).items():
                path = path if os.path.isabs(path) else os.path.join(output_dir, path)
                if chunk_is_complete(path):
                    locations[int(index)] = path
    for index in range(manifest["num_chunks"]):
        path = os.path.join(output_dir, CHUNKS_DIR, chunk_name(index))
        if index not in locations and chunk_is_complete(path):
            locations[index] = path
    return locations


def _load_chunk(chunk_dir: str):
    from datasets import Dataset, concatenate_datasets

    with open(os.path.join(chunk_dir, COMPLETE_MARKER)) as f:
        marker = json.load(f)
    parts = [Dataset.from_file(os.path.join(chunk_dir, name)) for name in marker["files"]]
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)


def _compute_chunk(dataset, index: int, *, output_dir: str, manifest: dict, feature_extractor, batch_size, num_proc, device) -> str:
    chunks_dir = os.path.join(output_dir, CHUNKS_DIR)
    final = os.path.join(chunks_dir, chunk_name(index))
    tmp = os.path.join(chunks_dir, f".tmp-{chunk_name(index)}-{socket.gethostname()}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    start = index * manifest["chunk_size"]
    stop = min(dataset.num_rows, start + manifest["chunk_size"])
    part = dataset.select(range(start, stop))
    mapped = add_features(
        part,
        feature_extractor,
        audio_column=manifest["audio_column"],
        batch_size=batch_size,
        num_proc=num_proc if num_proc and num_proc > 1 and part.num_rows > 1 else None,
        device=device,
        keep_audio=manifest["keep_audio"],
        cache_file_name=os.path.join(tmp, "data.arrow"),
        desc=f"{chunk_name(index)} ({start}-{stop})",
    )
    files = [os.path.relpath(f["filename"], tmp) for f in mapped.cache_files]
    if not files or mapped.num_rows != stop - start:
        raise RuntimeError(f"Writing {chunk_name(index)} produced {mapped.num_rows} rows in {files}; expected {stop - start}.")
    compute_feature_statistics(mapped, batch_size=max(batch_size, 64)).save(os.path.join(tmp, CHUNK_STATS_FILE))
    del mapped
    _write_json_atomic(
        os.path.join(tmp, COMPLETE_MARKER),
        {"index": index, "start": start, "stop": stop, "files": files, "fingerprint": manifest["fingerprint"]},
    )
    try:
        os.rename(tmp, final)  # atomic: the chunk appears complete or not at all
    except OSError:
        if not chunk_is_complete(final):
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # another worker finished the same chunk first
    return final


@dataclass
class PrecomputeResult:
    """What `precompute_features` did.

    Attributes:
        output_dir: the output folder.
        computed_chunks / reused_chunks: chunk indices computed now / found complete.
        complete: every chunk of the dataset is present (statistics and config were written).
        statistics: merged statistics of all chunks (None unless complete).
        feature_extractor: extractor carrying those statistics (None unless complete).
    """

    output_dir: str
    computed_chunks: list[int] = field(default_factory=list)
    reused_chunks: list[int] = field(default_factory=list)
    complete: bool = False
    statistics: FeatureStatistics | None = None
    feature_extractor: Any = None

    def load_dataset(self):
        return load_precomputed(self.output_dir)


def precompute_features(
    dataset,
    feature_extractor,
    output_dir: str | os.PathLike,
    *,
    dataset_id: str | None = None,
    audio_column: str = "audio",
    batch_size: int = 16,
    num_proc: int | None = None,
    device=None,
    chunk_size: int = 2048,
    num_shards: int = 1,
    shard_index: int = 0,
    keep_audio: bool = True,
    overwrite: bool = False,
    progress: bool = True,
) -> PrecomputeResult:
    """Compute raw features of `dataset` into `output_dir`, chunk by chunk, resumably.

    Args:
        dataset: a `datasets.Dataset` with an `Audio(decode=False)` column (see `loaders`).
        feature_extractor: an `LLMAACFeatureExtractor`; its config (minus statistics) is part of
            the cache key, and its statistics fields are filled from the data at the end.
        output_dir: where chunks, manifest, statistics and `preprocessor_config.json` go.
        dataset_id: a name recorded in the manifest (e.g. the loader's path and split).
        batch_size: clips per extractor call.
        num_proc: `Dataset.map` worker processes per chunk (decoding is CPU-bound; with
            `device="cuda"` each worker opens its own CUDA context, the parent never does).
        device: where the extractor computes (`"cpu"`, `"cuda"`, ...).
        chunk_size: rows per resumable chunk; fixes the chunk grid (keep it equal across machines).
        num_shards / shard_index: this worker's share: chunks with `index % num_shards == shard_index`.
        keep_audio: keep the audio column next to the features.
        overwrite: delete an existing output made with another dataset / configuration.
        progress: show a tqdm bar over this worker's clips.
    """
    output_dir = os.fspath(output_dir)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}.")
    if dataset.num_rows == 0:
        raise ValueError("The dataset is empty: nothing to precompute.")
    manifest = build_manifest(
        dataset, feature_extractor, dataset_id=dataset_id, audio_column=audio_column, chunk_size=chunk_size, keep_audio=keep_audio
    )
    _prepare_output(output_dir, manifest, overwrite)
    mine = chunks_of_shard(manifest["num_chunks"], num_shards, shard_index)
    result = PrecomputeResult(output_dir=output_dir)

    from tqdm.auto import tqdm

    def rows_of(index):
        return min(dataset.num_rows, (index + 1) * chunk_size) - index * chunk_size

    todo = [i for i in mine if not chunk_is_complete(os.path.join(output_dir, CHUNKS_DIR, chunk_name(i)))]
    result.reused_chunks = [i for i in mine if i not in todo]
    with tqdm(
        total=sum(rows_of(i) for i in mine),
        initial=sum(rows_of(i) for i in result.reused_chunks),
        unit="clip",
        desc=f"precompute shard {shard_index}/{num_shards}",
        disable=not progress,
    ) as bar:
        for index in todo:
            _compute_chunk(
                dataset,
                index,
                output_dir=output_dir,
                manifest=manifest,
                feature_extractor=feature_extractor,
                batch_size=batch_size,
                num_proc=num_proc,
                device=device,
            )
            result.computed_chunks.append(index)
            bar.update(rows_of(index))

    locations = _chunk_locations(output_dir, manifest)
    if len(locations) == manifest["num_chunks"]:
        result.statistics, result.feature_extractor = _finalize(output_dir, locations, feature_extractor)
        result.complete = True
    else:
        missing = sorted(set(range(manifest["num_chunks"])) - set(locations))
        logger.info(
            "%d of %d chunks still missing (e.g. %s); run the other shards, then `llm-aac precompute --merge-stats`.",
            len(missing), manifest["num_chunks"], missing[:8],
        )
    return result


def _prepare_output(output_dir: str, manifest: dict, overwrite: bool) -> None:
    path = os.path.join(output_dir, MANIFEST_FILE)
    if os.path.isfile(path):
        existing = read_manifest(output_dir)
        if existing.get("fingerprint") != manifest["fingerprint"]:
            if not overwrite:
                differences = [
                    k for k in manifest if k not in ("fingerprint", "dataset_id") and existing.get(k) != manifest[k]
                ]
                raise ValueError(
                    f"{output_dir!r} already holds features of another dataset or configuration "
                    f"(differs in {differences}); choose another output folder or pass overwrite=True (--overwrite)."
                )
            _remove_outputs(output_dir)
    os.makedirs(os.path.join(output_dir, CHUNKS_DIR), exist_ok=True)
    _write_json_atomic(path, manifest)


def _remove_outputs(output_dir: str) -> None:
    shutil.rmtree(os.path.join(output_dir, CHUNKS_DIR), ignore_errors=True)
    for name in (MANIFEST_FILE, STATISTICS_FILE, CHUNK_LOCATIONS_FILE, "preprocessor_config.json"):
        if os.path.isfile(os.path.join(output_dir, name)):
            os.remove(os.path.join(output_dir, name))


def _finalize(output_dir: str, locations: dict[int, str], feature_extractor):
    statistics = merge_statistics(
        FeatureStatistics.load(os.path.join(locations[i], CHUNK_STATS_FILE)) for i in sorted(locations)
    )
    statistics.save(os.path.join(output_dir, STATISTICS_FILE))
    normalizing = copy.deepcopy(feature_extractor)
    statistics.apply_to(normalizing)
    normalizing.do_normalize = True
    normalizing.save_pretrained(output_dir)
    return statistics, normalizing


# ---------------------------------------------------------------------------- load and merge


def load_precomputed(output_dir: str | os.PathLike, *, allow_partial: bool = False):
    """The precomputed dataset (chunks concatenated in row order).

    `input_features` is formatted as numpy arrays, other columns as Python objects. With
    `allow_partial=True` a shard's own chunks are returned even when others are missing.
    """
    from datasets import concatenate_datasets

    output_dir = os.fspath(output_dir)
    manifest = read_manifest(output_dir)
    locations = _chunk_locations(output_dir, manifest)
    missing = sorted(set(range(manifest["num_chunks"])) - set(locations))
    if missing and not allow_partial:
        raise ValueError(
            f"{output_dir!r} is missing {len(missing)} of {manifest['num_chunks']} chunks (first: {missing[:8]}); "
            "finish or merge the other shards, or pass allow_partial=True."
        )
    if not locations:
        raise ValueError(f"{output_dir!r} holds no complete chunk yet.")
    dataset = concatenate_datasets([_load_chunk(locations[i]) for i in sorted(locations)])
    dataset.set_format("numpy", columns=[FEATURES_COLUMN], output_all_columns=True)
    return dataset


def merge_precomputed(input_dirs: Sequence[str | os.PathLike], output_dir: str | os.PathLike, feature_extractor=None):
    """Merge the outputs of several shards (e.g. one folder per machine) into `output_dir`.

    Checks that all inputs come from the same dataset and configuration and that together they
    cover every chunk, folds the chunk statistics in chunk order (the same result as a single
    run), and writes `manifest.json`, `chunk_locations.json` (absolute paths of the chunks, which
    are not copied), `statistics.json` and `preprocessor_config.json` into `output_dir`, which may
    be one of the inputs. Returns `(statistics, feature_extractor)`.
    """
    if not input_dirs:
        raise ValueError("merge_precomputed needs at least one input folder.")
    input_dirs = [os.path.abspath(os.fspath(d)) for d in input_dirs]
    output_dir = os.path.abspath(os.fspath(output_dir))
    manifests = [read_manifest(d) for d in input_dirs]
    reference = manifests[0]
    for directory, manifest in zip(input_dirs[1:], manifests[1:]):
        if manifest["fingerprint"] != reference["fingerprint"]:
            raise ValueError(
                f"{directory!r} was computed from another dataset or configuration than {input_dirs[0]!r} "
                f"(fingerprints {manifest['fingerprint']} vs {reference['fingerprint']})."
            )
    locations: dict[int, str] = {}
    for directory, manifest in zip(input_dirs, manifests):
        for index, path in _chunk_locations(directory, manifest).items():
            locations.setdefault(index, os.path.abspath(path))
    missing = sorted(set(range(reference["num_chunks"])) - set(locations))
    if missing:
        raise ValueError(f"The inputs lack {len(missing)} of {reference['num_chunks']} chunks: {missing[:20]}.")

    if feature_extractor is None:
        from transformers import AutoFeatureExtractor

        import modeling_llm_aac  # noqa: F401  (registers LLMAACFeatureExtractor with the Auto classes)

        with_config = next((d for d in input_dirs if os.path.isfile(os.path.join(d, "preprocessor_config.json"))), None)
        if with_config is None:
            feature_extractor = _feature_extractor_from_manifest(reference)
        else:
            feature_extractor = AutoFeatureExtractor.from_pretrained(with_config)
    os.makedirs(output_dir, exist_ok=True)
    _write_json_atomic(os.path.join(output_dir, MANIFEST_FILE), reference)
    _write_json_atomic(os.path.join(output_dir, CHUNK_LOCATIONS_FILE), {str(i): locations[i] for i in sorted(locations)})
    return _finalize(output_dir, locations, feature_extractor)


def _feature_extractor_from_manifest(manifest: dict):
    from modeling_llm_aac import LLMAACFeatureExtractor

    return LLMAACFeatureExtractor.from_dict(manifest["feature_extractor"])


# ----------------------------------------------------------------------------------------- CLI


def add_arguments(parser) -> None:
    parser.add_argument("--dataset", help="dataset folder (Clotho, AudioCaps, audiofolder, save_to_disk, AudioSet copy), 'audioset' or a Hub id")
    parser.add_argument("--split", default=None, help="split to process (default: every split, each into OUTPUT/<split>)")
    parser.add_argument("--kind", default=None, help="force the loader: clotho, audiocaps, audioset, audiofolder, disk, hub")
    parser.add_argument("--config", default=None, help="Hub config (AudioSet: balanced or unbalanced)")
    parser.add_argument("--feature-type", default="cwt", choices=["cwt", "fbank", "cwt_seed"], help="feature type (default cwt)")
    parser.add_argument("--feature-extractor", default=None, help="saved feature extractor folder to start from (overrides --feature-type)")
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    parser.add_argument("--batch-size", type=int, default=16, help="clips per extractor call (default 16)")
    parser.add_argument("--num-proc", type=int, default=None, help="Dataset.map worker processes")
    parser.add_argument("--chunk-size", type=int, default=2048, help="rows per resumable chunk (same on every machine)")
    parser.add_argument("--num-shards", type=int, default=1, help="number of machines splitting the dataset")
    parser.add_argument("--shard-index", type=int, default=0, help="this machine's shard, 0 .. num-shards-1")
    parser.add_argument("--drop-audio", action="store_true", help="do not keep the audio column next to the features")
    parser.add_argument("--overwrite", action="store_true", help="replace an output made from another dataset / config")
    parser.add_argument(
        "--merge-stats", nargs="+", metavar="DIR", default=None,
        help="merge the shard outputs DIR... into --output (statistics + chunk list) instead of computing",
    )


def main(args) -> int:
    if args.merge_stats:
        statistics, _ = merge_precomputed(args.merge_stats, args.output)
        _print_statistics(args.output, statistics)
        return 0
    if not args.dataset:
        raise SystemExit("llm-aac precompute: --dataset is required (or use --merge-stats DIR...).")

    from datasets import DatasetDict

    from .loaders import load_aac_dataset

    feature_extractor = _build_feature_extractor(args)
    loaded = load_aac_dataset(args.dataset, args.split, kind=args.kind, config=args.config)
    splits = loaded.items() if isinstance(loaded, DatasetDict) else [(None, loaded)]
    for split, dataset in splits:
        output = args.output if split is None else os.path.join(args.output, split)
        result = precompute_features(
            dataset,
            feature_extractor,
            output,
            dataset_id=f"{args.dataset}:{split or args.split}",
            batch_size=args.batch_size,
            num_proc=args.num_proc,
            device=args.device,
            chunk_size=args.chunk_size,
            num_shards=args.num_shards,
            shard_index=args.shard_index,
            keep_audio=not args.drop_audio,
            overwrite=args.overwrite,
        )
        print(
            f"{output}: {dataset.num_rows} clips, chunks computed {len(result.computed_chunks)}, "
            f"reused {len(result.reused_chunks)}"
        )
        if result.complete:
            _print_statistics(output, result.statistics)
        else:
            print(f"{output}: this shard is done; merge all shards with `llm-aac precompute --merge-stats DIR... --output DIR`.")
    return 0


def _build_feature_extractor(args):
    if args.feature_extractor:
        from transformers import AutoFeatureExtractor

        import modeling_llm_aac  # noqa: F401  (registers the Auto classes)

        return AutoFeatureExtractor.from_pretrained(args.feature_extractor)
    from modeling_llm_aac import LLMAACFeatureExtractor

    return LLMAACFeatureExtractor(feature_type=args.feature_type)


def _print_statistics(output_dir: str, statistics: FeatureStatistics) -> None:
    std = statistics.std
    print(
        f"{output_dir}: statistics over {statistics.count} frames x {statistics.num_bins} bins: "
        f"mean {statistics.mean.min():.3f}..{statistics.mean.max():.3f}, std {std.min():.3f}..{std.max():.3f}; "
        f"written to {os.path.join(output_dir, 'preprocessor_config.json')}"
    )
