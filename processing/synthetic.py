"""Synthetic audio-captioning corpus: procedurally generated sound scenes whose content is known.

Real datasets cannot be downloaded everywhere, so the demo, the tests and the GPU learning runs use
scenes built from ten event types (`EVENT_TYPES`, sounds in `synthetic_events.py`) with five
Clotho-style captions each (grammar in `synthetic_captions.py`) and their structured ground truth.

A scene has one to three events of distinct types, in one of three layouts:

- `single`: one event;
- `sequence`: two or three events one after another (gaps of at least 0.6 s);
- `background`: a continuous event (`hiss`, `ticking`, `engine_hum`) that spans one or two
  foreground events, which follow each other.

Countable events repeat 1-3 times; every event is loud, normal or quiet (peak -3 / -10.5 / -22
dBFS, +-1.5 dB); continuous events may fade in or out; ticking is slow (1.5-2.5 Hz) or fast
(4-6 Hz). Clips last 5-30 s, at 16 kHz, over a faint white-noise floor (-60 to -50 dBFS RMS).

Determinism: clip `index` of `split` depends only on `(seed, split, index)`, so any clip can be
regenerated alone, corpora of different sizes share their first clips, and generation runs in
parallel. Splits `train`, `validation`, `test` share one distribution; `compositional` only holds
scenes containing one of `HELD_OUT_PAIRS` (unordered pairs of event types) and those pairs never
occur in the other splits.

The saved corpus (`synthesize_corpus`, `llm-aac synth`) is a `DatasetDict` with columns
`audio` (`Audio(sampling_rate=16000, decode=False)`: `{"bytes": FLAC bytes, "path": file_name}`;
decode with `processing.audio_io.decode_audio(row["audio"])` -> `(float32 array, 16000)`, or cast to
`Audio(decode=True)` where torchcodec is installed), `captions` (5 strings), `file_name`,
`duration`, `layout`, `events` (list of structs, see `EVENT_FEATURES`), `event_labels` (types in
time order), `num_events`, `seed`, `index`, `split`.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .synthetic_captions import realize_captions
from .synthetic_events import (
    CONTINUOUS_TYPES,
    COUNTABLE_TYPES,
    EVENT_TYPES,
    SAMPLE_RATE,
    TICK_RATES_HZ,
    plan_event,
    render_event,
)

__all__ = [
    "EVENT_TYPES",
    "COUNTABLE_TYPES",
    "CONTINUOUS_TYPES",
    "SAMPLE_RATE",
    "SPLITS",
    "HELD_OUT_PAIRS",
    "LOUDNESS_LEVELS_DB",
    "generate_clip",
    "generate_rows",
    "sample_scene",
    "split_sizes",
    "synthesize_corpus",
    "corpus_features",
]

SPLITS: tuple[str, ...] = ("train", "validation", "test", "compositional")
DEFAULT_SPLIT_FRACTIONS: dict[str, float] = {"train": 0.85, "validation": 0.05, "test": 0.05, "compositional": 0.05}

# One held-out partner per type, so every type still occurs in train with the other eight.
HELD_OUT_PAIRS: frozenset[frozenset[str]] = frozenset(
    frozenset(pair)
    for pair in (
        ("high_beep", "engine_hum"),
        ("knocking", "hiss"),
        ("bell", "ticking"),
        ("rising_siren", "bird_chirp"),
        ("low_beep", "falling_siren"),
    )
)

# Peak level (dBFS) of each loudness word, before a +-1.5 dB jitter.
LOUDNESS_LEVELS_DB: dict[str, float] = {"loud": -3.0, "normal": -10.5, "quiet": -22.0}
MIN_CLIP_S, MAX_CLIP_S = 5.0, 30.0
MIN_GAP_S = 0.6  # between sequential events, so that "then" is audible
FADE_FLOOR_DB = -40.0

_SPLIT_IDS = {name: i for i, name in enumerate(SPLITS)}


@dataclass
class SceneEvent:
    """Ground truth of one event; `to_dict` gives the row layout stored in the corpus."""

    type: str
    start: float
    end: float
    count: int
    onsets: list[float]
    loudness: str
    peak_db: float
    fade: str
    rate: str
    rate_hz: float
    background: bool
    order: int = 0

    def to_dict(self) -> dict:
        return {
            "type": self.type,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "count": self.count,
            "countable": self.type in COUNTABLE_TYPES,
            "onsets": [round(o, 3) for o in self.onsets],
            "loudness": self.loudness,
            "peak_db": round(self.peak_db, 2),
            "fade": self.fade,
            "rate": self.rate,
            "rate_hz": round(self.rate_hz, 3),
            "background": self.background,
            "order": self.order,
        }


def _check_split(split: str) -> None:
    if split not in _SPLIT_IDS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")


def _clip_rngs(seed: int, split: str, index: int) -> tuple[np.random.Generator, ...]:
    """Independent streams for scene layout, audio and captions of one clip."""
    if not (isinstance(seed, (int, np.integer)) and seed >= 0):
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not (isinstance(index, (int, np.integer)) and index >= 0):
        raise ValueError(f"index must be a non-negative integer, got {index!r}")
    sequence = np.random.SeedSequence([int(seed), _SPLIT_IDS[split], int(index)])
    return tuple(np.random.default_rng(child) for child in sequence.spawn(3))


def _contains_held_out_pair(types: Sequence[str]) -> bool:
    types = list(types)
    return any(frozenset((a, b)) in HELD_OUT_PAIRS for i, a in enumerate(types) for b in types[i + 1 :])


def _sample_types(rng: np.random.Generator, split: str) -> list[str]:
    if split == "compositional":
        pairs = sorted(tuple(sorted(p)) for p in HELD_OUT_PAIRS)
        types = list(pairs[int(rng.integers(len(pairs)))])
        if rng.random() < 0.5:
            others = [t for t in EVENT_TYPES if t not in types]
            types.append(others[int(rng.integers(len(others)))])
        return [types[i] for i in rng.permutation(len(types))]
    num_events = int(rng.choice([1, 2, 3], p=[0.25, 0.45, 0.30]))
    while True:
        types = [EVENT_TYPES[i] for i in rng.choice(len(EVENT_TYPES), size=num_events, replace=False)]
        if not _contains_held_out_pair(types):
            return types


def _sample_attributes(rng: np.random.Generator, event_type: str) -> dict:
    loudness = ["normal", "loud", "quiet"][int(rng.choice(3, p=[0.5, 0.25, 0.25]))]
    attributes = {
        "loudness": loudness,
        "peak_db": LOUDNESS_LEVELS_DB[loudness] + float(rng.uniform(-1.5, 1.5)),
        "count": int(rng.integers(1, 4)) if event_type in COUNTABLE_TYPES else 1,
        "fade": ["none", "in", "out"][int(rng.choice(3, p=[0.5, 0.25, 0.25]))] if event_type in CONTINUOUS_TYPES else "none",
        "rate": ("slow" if rng.random() < 0.5 else "fast") if event_type == "ticking" else "",
    }
    return attributes


def sample_scene(seed: int, index: int, split: str = "train") -> dict:
    """The scene (no audio): layout, duration, event plans and ground truth of one clip."""
    _check_split(split)
    scene_rng, _, _ = _clip_rngs(seed, split, index)
    types = _sample_types(scene_rng, split)
    continuous = [t for t in types if t in CONTINUOUS_TYPES]
    if len(types) == 1:
        layout = "single"
    elif continuous and scene_rng.random() < 0.4:
        layout = "background"
    else:
        layout = "sequence"
    background_type = continuous[int(scene_rng.integers(len(continuous)))] if layout == "background" else None
    foreground = [t for t in types if t != background_type]
    attributes = {t: _sample_attributes(scene_rng, t) for t in types}

    plans = {}
    for t in foreground:
        a = attributes[t]
        duration = float(scene_rng.uniform(2.0, 6.0)) if t in CONTINUOUS_TYPES else None
        plans[t] = plan_event(t, scene_rng, count=a["count"], duration=duration, rate=a["rate"] or None)

    # Foreground events in time order with minimum gaps; slack is spread over lead, gaps and tail.
    busy = sum(plans[t].duration for t in foreground) + MIN_GAP_S * (len(foreground) - 1)
    extra_gaps = scene_rng.uniform(0.0, 1.0, size=len(foreground))  # background layout only
    if background_type is None:
        needed = busy + 0.5
        clip_s = _clip_length(scene_rng, needed)
        shares = scene_rng.dirichlet(np.ones(len(foreground) + 1)) * (clip_s - needed)
        cursor = 0.25 + shares[0]
        starts = {}
        for i, t in enumerate(foreground):
            starts[t] = cursor
            cursor += plans[t].duration + MIN_GAP_S + (shares[i + 1] if i + 1 < len(foreground) else 0.0)
    else:
        margins = scene_rng.uniform(0.5, 3.0, size=2)
        busy += float(extra_gaps[:-1].sum())
        background_s = busy + margins.sum()
        needed = background_s + 0.5
        clip_s = _clip_length(scene_rng, needed)
        background_start = 0.25 + float(scene_rng.uniform(0.0, clip_s - needed))
        a = attributes[background_type]
        plans[background_type] = plan_event(background_type, scene_rng, duration=background_s, rate=a["rate"] or None)
        cursor = background_start + margins[0]
        starts = {background_type: background_start}
        for i, t in enumerate(foreground):
            starts[t] = cursor
            cursor += plans[t].duration + MIN_GAP_S + extra_gaps[i]

    events = []
    for t in types:
        plan, a = plans[t], attributes[t]
        start = float(starts[t])
        events.append(
            SceneEvent(
                type=t,
                start=start,
                end=start + plan.duration,
                count=plan.count if t in COUNTABLE_TYPES else 1,
                onsets=[start + o for o in plan.unit_onsets],
                loudness=a["loudness"],
                peak_db=a["peak_db"],
                fade=a["fade"],
                rate=a["rate"],
                rate_hz=float(plan.params.get("rate_hz", 0.0)),
                background=t == background_type,
            )
        )
    events.sort(key=lambda e: (e.start, e.type))
    for order, event in enumerate(events):
        event.order = order
    return {"layout": layout, "duration": round(clip_s, 2), "events": events, "plans": plans}


def _clip_length(rng: np.random.Generator, needed: float) -> float:
    if needed > MAX_CLIP_S:
        raise AssertionError(f"scene needs {needed:.2f} s > {MAX_CLIP_S} s")  # plan ranges make this impossible
    low = max(MIN_CLIP_S, needed)
    return float(round(rng.uniform(low, min(MAX_CLIP_S, low + 14.0)), 2))


def _fade_envelope(n: int, fade: str, rng: np.random.Generator) -> np.ndarray:
    """Gain rising from FADE_FLOOR_DB to 0 dB over 50-80 % of the event (or the reverse), linear in dB."""
    ramp = int(n * rng.uniform(0.5, 0.8))
    envelope = np.ones(n, dtype=np.float32)
    db = np.linspace(FADE_FLOOR_DB, 0.0, ramp, dtype=np.float32)
    curve = np.power(np.float32(10.0), db / np.float32(20.0))
    if fade == "in":
        envelope[:ramp] = curve
    else:
        envelope[n - ramp :] = curve[::-1]
    return envelope


def _render_scene(scene: dict, rng: np.random.Generator) -> np.ndarray:
    num_samples = int(round(scene["duration"] * SAMPLE_RATE))
    floor_rms = 10.0 ** (rng.uniform(-60.0, -50.0) / 20.0)
    audio = rng.standard_normal(num_samples, dtype=np.float32) * np.float32(floor_rms)
    for event in scene["events"]:
        wave = render_event(scene["plans"][event.type], rng)
        if event.fade != "none":
            wave *= _fade_envelope(len(wave), event.fade, rng)
        wave *= np.float32(10.0 ** (event.peak_db / 20.0))
        start = int(round(event.start * SAMPLE_RATE))
        end = min(num_samples, start + len(wave))
        audio[start:end] += wave[: end - start]
    peak = float(np.max(np.abs(audio)))
    if peak > 0.99:  # overlapping loud events: scale the clip rather than clip the waveform
        audio *= np.float32(0.99 / peak)
    return audio


def generate_clip(seed: int, index: int, split: str = "train", *, with_audio: bool = True) -> dict:
    """Generates clip `index` of `split` from `seed` alone.

    Returns a dict with `audio` (float32 mono at 16 kHz, or None when `with_audio=False`),
    `sampling_rate`, `captions` (5 distinct strings), `events` (ground-truth dicts in time order),
    `event_labels`, `layout`, `duration`, `file_name`, `seed`, `index`, `split`.
    """
    _check_split(split)
    scene = sample_scene(seed, index, split)
    _, audio_rng, caption_rng = _clip_rngs(seed, split, index)
    events = [e.to_dict() for e in scene["events"]]
    return {
        "audio": _render_scene(scene, audio_rng) if with_audio else None,
        "sampling_rate": SAMPLE_RATE,
        "captions": realize_captions(events, scene["layout"], caption_rng),
        "events": events,
        "event_labels": [e["type"] for e in events],
        "num_events": len(events),
        "layout": scene["layout"],
        "duration": scene["duration"],
        "file_name": f"synth_{split}_{int(index):06d}.flac",
        "seed": int(seed),
        "index": int(index),
        "split": split,
    }


# ----------------------------------------------------------------------------- corpus on disk


def corpus_features(*, audio_as_struct: bool = False):
    """The `datasets.Features` of a saved corpus.

    `audio_as_struct=True` types `audio` as the plain `{"bytes", "path"}` struct that `Audio` stores:
    datasets' `Audio.encode_example` insists on torchcodec even for ready-made bytes, so rows are
    written as structs and the column is cast to `Audio(decode=False)` afterwards (no re-encoding).
    """
    from datasets import Audio, Features, List, Value

    event = {
        "type": Value("string"),
        "start": Value("float64"),
        "end": Value("float64"),
        "count": Value("int32"),
        "countable": Value("bool"),
        "onsets": List(Value("float64")),
        "loudness": Value("string"),
        "peak_db": Value("float64"),
        "fade": Value("string"),
        "rate": Value("string"),
        "rate_hz": Value("float64"),
        "background": Value("bool"),
        "order": Value("int32"),
    }
    return Features(
        {
            "audio": {"bytes": Value("binary"), "path": Value("string")}
            if audio_as_struct
            else Audio(sampling_rate=SAMPLE_RATE, decode=False),
            "file_name": Value("string"),
            "captions": List(Value("string")),
            "duration": Value("float64"),
            "layout": Value("string"),
            "events": List(event),
            "event_labels": List(Value("string")),
            "num_events": Value("int32"),
            "seed": Value("int64"),
            "index": Value("int64"),
            "split": Value("string"),
        }
    )


def encode_flac(audio: np.ndarray, sampling_rate: int = SAMPLE_RATE) -> bytes:
    """16-bit FLAC bytes of a float32 waveform (the noise floor stays ~40 dB above the LSB)."""
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, audio, sampling_rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def generate_rows(seed: int, split: str, indices: Sequence[int]) -> Iterator[dict]:
    """Corpus rows (audio as FLAC bytes) for `indices` of `split`; the `Dataset.from_generator` body."""
    for index in indices:
        clip = generate_clip(seed, int(index), split)
        audio = clip.pop("audio")
        clip.pop("sampling_rate")
        clip["audio"] = {"bytes": encode_flac(audio), "path": clip["file_name"]}
        yield clip


def split_sizes(num_clips: int, fractions: dict[str, float] | None = None) -> dict[str, int]:
    """Clips per split: `fractions` of `num_clips` (rounded), every split non-empty, train takes the rest."""
    fractions = dict(DEFAULT_SPLIT_FRACTIONS if fractions is None else fractions)
    unknown = set(fractions) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split(s) {sorted(unknown)} in split fractions; expected names from {SPLITS}")
    if any(not (0.0 <= f <= 1.0) for f in fractions.values()) or sum(fractions.values()) > 1.0 + 1e-9:
        raise ValueError(f"split fractions must lie in [0, 1] and sum to at most 1, got {fractions}")
    if not isinstance(num_clips, (int, np.integer)) or num_clips < len(SPLITS):
        raise ValueError(f"num_clips must be an integer >= {len(SPLITS)} (one clip per split), got {num_clips!r}")
    sizes = {s: max(1, int(round(num_clips * fractions.get(s, 0.0)))) for s in SPLITS if s != "train"}
    sizes = {"train": num_clips - sum(sizes.values()), **sizes}
    if sizes["train"] < 1:
        raise ValueError(f"split fractions {fractions} leave no training clips out of {num_clips}")
    return sizes


def _generate_shards(seed: int, split: str, shards: list[list[int]]) -> Iterator[dict]:
    # `from_generator` hands each process a sub-list of the list-valued `shards` argument.
    for indices in shards:
        yield from generate_rows(seed, split, indices)


def synthesize_corpus(
    num_clips: int,
    seed: int,
    output_dir: str | os.PathLike,
    *,
    split_fractions: dict[str, float] | None = None,
    num_proc: int | None = None,
    overwrite: bool = False,
    writer_batch_size: int = 100,
):
    """Generates `num_clips` clips split over `SPLITS` and writes them with `save_to_disk`.

    Clips stream through `Dataset.from_generator` (`writer_batch_size` rows in memory per process),
    so 50,000 clips need no more memory than 100. Intermediate Arrow files live in a temporary
    folder next to `output_dir` and are removed afterwards. Returns the corpus re-opened from disk.

    Args:
        num_clips: total clips over all splits (at least 4).
        seed: corpus seed; clip `i` of a split depends only on `(seed, split, i)`.
        output_dir: destination folder for `DatasetDict.save_to_disk`.
        split_fractions: fraction of clips per split name; train takes the remainder
            (default: validation, test and compositional 5 % each).
        num_proc: worker processes for generation (default 1).
        overwrite: replace an existing `output_dir`; otherwise an existing one is an error.
        writer_batch_size: rows buffered per Arrow write.
    """
    from datasets import Dataset, DatasetDict, load_from_disk

    output_dir = os.fspath(output_dir)
    sizes = split_sizes(num_clips, split_fractions)
    if os.path.exists(output_dir) and os.listdir(output_dir):
        if not overwrite:
            raise ValueError(f"output folder {output_dir!r} exists and is not empty; pass overwrite=True (--overwrite)")
        shutil.rmtree(output_dir)
    num_proc = max(1, int(num_proc or 1))
    parent = os.path.dirname(os.path.abspath(output_dir))
    os.makedirs(parent, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=".synth-cache-", dir=parent)
    try:
        splits = {}
        for split, size in sizes.items():
            workers = min(num_proc, size)
            # Contiguous blocks, one per worker, concatenated in order: rows stay sorted by index.
            shards = [block.tolist() for block in np.array_split(np.arange(size), workers)]
            splits[split] = Dataset.from_generator(
                _generate_shards,
                features=corpus_features(audio_as_struct=True),
                gen_kwargs={"seed": int(seed), "split": split, "shards": shards},
                num_proc=workers if workers > 1 else None,
                cache_dir=scratch,
                writer_batch_size=writer_batch_size,
                split=split,
            ).cast(corpus_features())
        DatasetDict(splits).save_to_disk(output_dir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return load_from_disk(output_dir)


# ----------------------------------------------------------------------------- CLI


def _parse_fractions(text: str) -> dict[str, float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--split-fractions must be numbers separated by commas, got {text!r}") from err
    if len(values) != len(SPLITS):
        raise argparse.ArgumentTypeError(
            f"--split-fractions needs {len(SPLITS)} values ({','.join(SPLITS)}), got {len(values)}: {text!r}"
        )
    return dict(zip(SPLITS[1:], values[1:]))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--num-clips", type=int, required=True, help="total clips over all splits (>= 4)")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    parser.add_argument("--output", required=True, help="folder for DatasetDict.save_to_disk")
    parser.add_argument("--num-proc", type=int, default=1, help="generation processes (default 1)")
    parser.add_argument(
        "--split-fractions",
        type=_parse_fractions,
        default=None,
        help="fractions for train,validation,test,compositional (train takes the remainder; "
        "default 0.85,0.05,0.05,0.05)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")


def main(args: argparse.Namespace) -> int:
    sizes = split_sizes(args.num_clips, args.split_fractions)
    print("synthesising " + ", ".join(f"{n} {s}" for s, n in sizes.items()) + f" clips (seed {args.seed})")
    corpus = synthesize_corpus(
        args.num_clips, args.seed, args.output, split_fractions=args.split_fractions, num_proc=args.num_proc,
        overwrite=args.overwrite,
    )
    hours = sum(sum(d.data.column("duration").to_pylist()) for d in corpus.values()) / 3600
    print(f"wrote {sum(len(d) for d in corpus.values())} clips ({hours:.2f} h of audio) to {args.output}")
    return 0
