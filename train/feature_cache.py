"""In-memory pretraining features: synthesize and featurize once, then serve random crops.

For quick runs and for machines without `datasets` / `soundfile` (the GPU image): the training clips
of the synthetic corpus (`processing.synthetic.generate_clip`, the same clips `llm-aac synth` writes)
are generated in parallel processes, featurized in batches on the GPU with
`LLMAACFeatureExtractor.extract`, normalised with per-bin statistics measured on them, and kept as
one float16 tensor of frames plus per-clip offsets. One tensor (rather than a list of arrays) is
shared by DataLoader workers without copy-on-write blow-up. The store is cached to a `.pt` file so
that another run (or the other ranks of a multi-GPU run) loads it instead of recomputing.

Corpora on disk (`llm-aac precompute` Arrow folders or `llm-aac synth` folders) go through
`processing.collate.AudioFeatureCollator` instead; see `train/pretrain_eat.py`.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

CACHE_FORMAT_VERSION = 1


def _synthetic_clip_audio(task: tuple[int, int, str]) -> np.ndarray:
    from llm_aac.processing.synthetic import generate_clip

    seed, index, split = task
    return generate_clip(seed, index, split)["audio"].astype(np.float32, copy=False)


def synthesize_audio(num_clips: int, seed: int, *, split: str = "train", num_workers: int | None = None) -> list[np.ndarray]:
    """Waveforms (16 kHz, float32) of clips `0 .. num_clips - 1` of the synthetic corpus's `split`."""
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    tasks = [(int(seed), index, split) for index in range(num_clips)]
    workers = max(1, min(num_workers or os.cpu_count() or 1, num_clips))
    if workers == 1:
        return [_synthetic_clip_audio(task) for task in tasks]
    # spawn: the parent may already hold CUDA, which forked children must not inherit.
    import multiprocessing

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(_synthetic_clip_audio, tasks, chunksize=max(1, num_clips // (8 * workers))))


@dataclass
class FeatureStore:
    """Normalised features of many clips: `frames [total_frames, bins]` float16 and `offsets [clips + 1]`."""

    frames: torch.Tensor
    offsets: torch.Tensor
    feature_extractor: object  # LLMAACFeatureExtractor whose statistics normalised `frames`

    def __len__(self) -> int:
        return self.offsets.numel() - 1

    @property
    def num_bins(self) -> int:
        return self.frames.shape[1]

    def clip(self, index: int) -> torch.Tensor:
        return self.frames[self.offsets[index] : self.offsets[index + 1]]

    def save(self, path: str | os.PathLike) -> None:
        path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        temporary = f"{path}.tmp-{os.getpid()}"
        torch.save(
            {
                "version": CACHE_FORMAT_VERSION,
                "frames": self.frames,
                "offsets": self.offsets,
                "feature_extractor": self.feature_extractor.to_dict(),
            },
            temporary,
        )
        os.replace(temporary, path)  # readers never see a half-written cache

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FeatureStore":
        from modeling_llm_aac.feature_extraction_llm_aac import LLMAACFeatureExtractor

        data = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
        if data.get("version") != CACHE_FORMAT_VERSION:
            raise ValueError(f"feature cache {path!r} has format {data.get('version')!r}, expected {CACHE_FORMAT_VERSION}")
        config = {k: v for k, v in data["feature_extractor"].items() if k != "feature_extractor_type"}
        return cls(data["frames"], data["offsets"], LLMAACFeatureExtractor(**config))


def featurize(
    feature_extractor,
    waveforms: list[np.ndarray],
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
) -> FeatureStore:
    """Raw features of every clip on `device`, per-bin statistics over all real frames, normalised store.

    The statistics replace `feature_extractor.feature_mean` / `feature_std` (a copy is returned in the
    store), as `llm-aac precompute` does for corpora on disk.
    """
    import copy

    if not waveforms:
        raise ValueError("featurize needs at least one waveform")
    device = torch.device(device)
    # Long clips first: batches of similar lengths pad less.
    order = sorted(range(len(waveforms)), key=lambda i: -len(waveforms[i]))
    raw: list[torch.Tensor | None] = [None] * len(waveforms)
    total = torch.zeros(feature_extractor.feature_size, dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    count = 0
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        lengths = [len(waveforms[i]) for i in indices]
        batch = torch.zeros(len(indices), max(lengths), dtype=torch.float32)
        for row, i in enumerate(indices):
            batch[row, : lengths[row]] = torch.from_numpy(np.asarray(waveforms[i], dtype=np.float32))
        features, mask = feature_extractor.extract(batch.to(device), torch.tensor(lengths), do_normalize=False)
        real_frames = mask.sum(dim=1).tolist()
        for row, i in enumerate(indices):
            clip = features[row, : real_frames[row]].double()
            total += clip.sum(dim=0).cpu()
            total_sq += clip.square().sum(dim=0).cpu()
            count += clip.shape[0]
            raw[i] = features[row, : real_frames[row]].cpu()
    mean = total / count
    std = (total_sq / count - mean.square()).clamp(min=1e-12).sqrt()
    normalizing = copy.deepcopy(feature_extractor)
    normalizing.feature_mean = mean.tolist()
    normalizing.feature_std = std.tolist()
    normalizing.do_normalize = True
    mean32, std32 = mean.float(), std.float()
    frames = torch.cat([((clip - mean32) / std32).to(torch.float16) for clip in raw])
    offsets = torch.zeros(len(raw) + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(torch.tensor([clip.shape[0] for clip in raw]), dim=0)
    return FeatureStore(frames, offsets, normalizing)


def cache_file_name(feature_type: str, num_clips: int, seed: int) -> str:
    """File name of a synthetic-corpus feature cache (shared by `pretrain_eat.py` and the CLI below)."""
    return f"synthetic-{feature_type}-{num_clips}-seed{seed}.pt"


def synthetic_feature_store(
    feature_extractor,
    num_clips: int,
    seed: int,
    *,
    cache_path: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    num_workers: int | None = None,
) -> FeatureStore:
    """The synthetic corpus's first `num_clips` training clips as a `FeatureStore`, cached at `cache_path`."""
    if cache_path is not None and os.path.isfile(cache_path):
        store = FeatureStore.load(cache_path)
        cached = store.feature_extractor.to_dict()
        wanted = feature_extractor.to_dict()
        differing = sorted(
            k for k in set(cached) | set(wanted)
            if k not in ("feature_mean", "feature_std", "do_normalize") and cached.get(k) != wanted.get(k)
        )
        if differing or len(store) != num_clips:
            raise ValueError(
                f"feature cache {os.fspath(cache_path)!r} holds {len(store)} clips with a different extractor "
                f"(fields {differing}); remove it or choose another cache path"
            )
        return store
    waveforms = synthesize_audio(num_clips, seed, num_workers=num_workers)
    store = featurize(feature_extractor, waveforms, device=device)
    if cache_path is not None:
        store.save(cache_path)
    return store


class RandomCropDataset(Dataset):
    """Items `{"input_features": [frames <= max_frames, bins] float32}`: a random window of each clip per epoch.

    Clips shorter than `max_frames` come whole (the collator pads them and masks the padding).
    """

    def __init__(self, store: FeatureStore, max_frames: int | None = 1024):
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be >= 1 or None, got {max_frames}")
        self.store = store
        self.max_frames = max_frames

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, index: int) -> dict:
        clip = self.store.clip(index)
        if self.max_frames is not None and clip.shape[0] > self.max_frames:
            # torch's RNG: DataLoader seeds it differently in every worker.
            start = int(torch.randint(0, clip.shape[0] - self.max_frames + 1, ()))
            clip = clip[start : start + self.max_frames]
        return {"input_features": clip.float()}


def pad_feature_batch(rows: list[dict], *, pad_to_multiple_of: int = 16, pad_to: int | None = None) -> dict:
    """Normalised `[frames, bins]` tensors -> `input_features [B, T, F]` (zero-padded, T a multiple of
    `pad_to_multiple_of`, at least `pad_to`) and `attention_mask [B, T]`, omitted when nothing is padded."""
    if not rows:
        raise ValueError("cannot collate an empty batch")
    features = [row["input_features"] for row in rows]
    lengths = [f.shape[0] for f in features]
    target = max(max(lengths), pad_to or 0)
    target = -(-target // pad_to_multiple_of) * pad_to_multiple_of
    batch = torch.zeros(len(features), target, features[0].shape[1], dtype=torch.float32)
    for row, f in enumerate(features):
        batch[row, : f.shape[0]] = f
    output = {"input_features": batch}
    if any(n != target for n in lengths):
        mask = torch.zeros(len(features), target, dtype=torch.long)
        for row, n in enumerate(lengths):
            mask[row, :n] = 1
        output["attention_mask"] = mask
    return output


def main(argv: list[str] | None = None) -> int:
    """Prepare caches for several feature types from one synthesis of the audio (GPU recipes run this first)."""
    import argparse
    import time

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--clips", type=int, required=True, help="training clips of the synthetic corpus")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed")
    parser.add_argument("--feature-types", default="cwt,fbank", help="comma-separated: cwt, fbank, cwt_seed")
    parser.add_argument("--cache-dir", required=True, help="folder for the .pt caches")
    parser.add_argument("--workers", type=int, default=0, help="synthesis processes (0: all cores)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)

    from modeling_llm_aac.feature_extraction_llm_aac import LLMAACFeatureExtractor

    wanted = [t.strip() for t in args.feature_types.split(",") if t.strip()]
    paths = {t: os.path.join(args.cache_dir, cache_file_name(t, args.clips, args.seed)) for t in wanted}
    missing = [t for t, path in paths.items() if not os.path.isfile(path)]
    if not missing:
        print(f"feature caches already present: {sorted(paths.values())}")
        return 0
    start = time.perf_counter()
    waveforms = synthesize_audio(args.clips, args.seed, num_workers=args.workers or None)
    hours = sum(len(w) for w in waveforms) / 16000 / 3600
    print(f"synthesized {len(waveforms)} clips ({hours:.1f} h) in {time.perf_counter() - start:.0f} s", flush=True)
    for feature_type in missing:
        start = time.perf_counter()
        store = featurize(LLMAACFeatureExtractor(feature_type=feature_type), waveforms, device=args.device)
        store.save(paths[feature_type])
        print(f"{feature_type}: {store.frames.shape[0]} frames x {store.num_bins} bins in "
              f"{time.perf_counter() - start:.0f} s -> {paths[feature_type]}", flush=True)
    return 0


__all__ = [
    "FeatureStore",
    "cache_file_name",
    "RandomCropDataset",
    "featurize",
    "pad_feature_batch",
    "synthesize_audio",
    "synthetic_feature_store",
]


if __name__ == "__main__":
    import sys

    sys.exit(main())
