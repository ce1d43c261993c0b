"""CPU cost of EAT-CLAP's compositional hard negatives per training batch (`train/train_clap.py --hard_negatives`).

What a DataLoader worker does per batch: read the items (`ClipCaptionEpochs`: the caption rotation and, with hard
negatives, `perturb_caption`), then collate them (`ClapBatchCollator`: the audio features, the captions' tokens and
the hard negatives' tokens). Also counts the hard negatives per batch (M), i.e. how many captions the text tower
encodes per step (B + M). Three settings at the same batch and the same clips, timed in the same process:

- `off`: plain InfoNCE (the baseline of the ratios);
- `every kind`: up to one hard negative per kind (`--hard_negatives_per_clip 3`, the behaviour before the cap);
- `1 per clip`: one kind drawn among those that apply (`--hard_negatives_per_clip 1`, the default).

Clips are the synthetic corpus's captions (no audio rendered) with random raw features of each clip's length
(100 frames/s, `--bins` bins, what `llm-aac precompute` stores); the tokenizer is trained on the captions as the
small preset does (vocabulary 4000). The tokenizer runs single-threaded as in a forked DataLoader worker.

    python benchmarks/bench_clap_hard_negatives.py [--batch_size 256] [--batches 6] [--clips 2048]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # as in a DataLoader worker forked after tokenizer use

import numpy as np

from llm_aac.processing import caption_perturbations
from llm_aac.processing.caption_perturbations import PERTURBATION_KINDS
from llm_aac.processing.synthetic import generate_clip
from llm_aac.train.train_clap import ClapBatchCollator, ClipCaptionEpochs
from llm_aac.train.train_tokenizer import train_caption_tokenizer
from modeling_llm_aac import LLMAACFeatureExtractor

FRAMES_PER_SECOND = 100
SETTINGS = (("off", (), None), ("every kind", PERTURBATION_KINDS, len(PERTURBATION_KINDS)),
            ("1 per clip", PERTURBATION_KINDS, 1))


def clip_rows(clips: int, bins: int) -> list[dict]:
    """Synthetic clips' captions with random raw features (views of one array: no memory per clip)."""
    generated = [generate_clip(0, i, with_audio=False) for i in range(clips)]
    longest = max(int(c["duration"] * FRAMES_PER_SECOND) for c in generated)
    features = np.random.default_rng(0).standard_normal((longest, bins)).astype(np.float32)
    rows = []
    for clip in generated:
        frames = int(clip["duration"] * FRAMES_PER_SECOND)
        rows.append({"captions": clip["captions"], "input_features": features[:frames], "num_frames": frames})
    return rows


def time_batches(items: ClipCaptionEpochs, collator: ClapBatchCollator, batch_size: int, batches: int) -> dict:
    """Median milliseconds per batch of each part, and the mean hard negatives per batch."""
    caption_perturbations._normalized.cache_clear()  # every setting starts cold, as a fresh worker does
    parts = {"items": [], "audio": [], "caption tokens": [], "hard-negative tokens": []}
    hard_negatives = []
    for batch in range(batches):
        indices = range(batch * batch_size, (batch + 1) * batch_size)
        start = time.perf_counter()
        read = [items[i] for i in indices]
        parts["items"].append(time.perf_counter() - start)
        start = time.perf_counter()
        collator.audio([item["row"] for item in read])
        parts["audio"].append(time.perf_counter() - start)
        start = time.perf_counter()
        collator.text([item["caption"] for item in read])
        parts["caption tokens"].append(time.perf_counter() - start)
        texts = [text for item in read for text in item.get("hard_negatives", ())]
        start = time.perf_counter()
        if texts:
            collator.text(texts)
        parts["hard-negative tokens"].append(time.perf_counter() - start)
        hard_negatives.append(len(texts))
    result = {name: 1e3 * float(np.median(seconds)) for name, seconds in parts.items()}
    result["total"] = sum(result.values())
    result["hard_negatives"] = float(np.mean(hard_negatives))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=256, help="clips per batch (the recipe's clap_batch_size)")
    parser.add_argument("--batches", type=int, default=6, help="timed batches per setting (distinct clips)")
    parser.add_argument("--clips", type=int, default=0, help="clips generated (0: batch_size x batches)")
    parser.add_argument("--bins", type=int, default=64, help="feature bins (cwt: 64, fbank: 128)")
    args = parser.parse_args()

    clips = args.clips or args.batch_size * args.batches
    if clips < args.batch_size * args.batches:
        raise ValueError(f"--clips {clips} < batch_size x batches = {args.batch_size * args.batches}")
    start = time.perf_counter()
    rows = clip_rows(clips, args.bins)
    tokenizer = train_caption_tokenizer([c for row in rows for c in row["captions"]], vocab_size=4000, prompt="")
    collator = ClapBatchCollator(LLMAACFeatureExtractor(feature_type="cwt" if args.bins == 64 else "fbank"), tokenizer)
    print(f"{clips} clips ({np.mean([r['num_frames'] for r in rows]) / FRAMES_PER_SECOND:.1f} s mean), batch "
          f"{args.batch_size}, {args.batches} batches per setting; set-up {time.perf_counter() - start:.1f} s")

    results = {}
    for name, kinds, per_clip in SETTINGS:
        items = ClipCaptionEpochs([rows], seed=0, hard_negative_kinds=kinds, hard_negatives_per_clip=per_clip)
        results[name] = time_batches(items, collator, args.batch_size, args.batches)
    baseline = results["off"]["total"]
    for name, result in results.items():
        encoded = args.batch_size + result["hard_negatives"]
        parts = ", ".join(f"{part} {result[part]:.1f}" for part in ("items", "audio", "caption tokens",
                                                                     "hard-negative tokens"))
        print(f"{name:>11}: {result['total']:6.1f} ms per batch ({result['total'] / baseline:.2f}x off; {parts}); "
              f"M = {result['hard_negatives']:.0f} hard negatives, text tower encodes {encoded:.0f} captions "
              f"({encoded / args.batch_size:.2f} B)")
    every, one = results["every kind"], results["1 per clip"]
    extra_every, extra_one = every["total"] - baseline, one["total"] - baseline
    print(f"hard-negative CPU work per batch: every kind +{extra_every:.1f} ms, 1 per clip +{extra_one:.1f} ms "
          f"({extra_every / max(extra_one, 1e-9):.1f}x less). W DataLoader workers deliver at best a batch every "
          f"total / W ms (off / every kind / 1 per clip): " + "; ".join(
              f"W={w}: {baseline / w:.0f} / {every['total'] / w:.0f} / {one['total'] / w:.0f} ms" for w in (1, 2, 4)))


if __name__ == "__main__":
    main()
