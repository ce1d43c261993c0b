import itertools

import numpy as np
import pytest

from llm_aac.processing.audio_io import decode_audio
from llm_aac.processing.synthetic import (
    CONTINUOUS_TYPES,
    COUNTABLE_TYPES,
    EVENT_TYPES,
    HELD_OUT_PAIRS,
    MIN_GAP_S,
    SAMPLE_RATE,
    SPLITS,
    generate_clip,
    sample_scene,
    split_sizes,
    synthesize_corpus,
)
from llm_aac.processing.synthetic_events import plan_event, render_event


def _log_mel(x: np.ndarray, n_mels: int = 64) -> np.ndarray:
    """Plain numpy log-mel at a 10 ms hop (25 ms Hann window), frames x bins."""
    win, hop, n_fft = 400, 160, 512
    n = 1 + (len(x) - win) // hop
    frames = x[np.arange(win)[None, :] + hop * np.arange(n)[:, None]] * np.hanning(win)
    power = np.abs(np.fft.rfft(frames, n_fft)) ** 2
    freqs = np.linspace(0, SAMPLE_RATE / 2, n_fft // 2 + 1)

    def mel(hz):
        return 2595 * np.log10(1 + hz / 700)

    edges = 700 * (10 ** (np.linspace(mel(50), mel(7600), n_mels + 2) / 2595) - 1)
    bank = np.stack([np.clip(np.minimum((freqs - lo) / (c - lo), (hi - freqs) / (hi - c)), 0, None)
                     for lo, c, hi in zip(edges[:-2], edges[1:-1], edges[2:])])
    return np.log(power @ bank.T + 1e-8)


def _render_isolated(event_type, seed, *, count=1, rate="fast", level=0.3):
    rng = np.random.default_rng([EVENT_TYPES.index(event_type), seed])
    kwargs = {"duration": 3.0, "rate": rate} if event_type in CONTINUOUS_TYPES else {"count": count}
    plan = plan_event(event_type, rng, **kwargs)
    audio = render_event(plan, rng) * level
    pad = np.zeros(1600, dtype=np.float32)
    audio = np.concatenate([pad, audio, pad])
    return audio + np.random.default_rng(seed).standard_normal(len(audio)).astype(np.float32) * 0.002, plan


def test_event_types_cover_the_required_sounds():
    assert set(EVENT_TYPES) == {"high_beep", "low_beep", "rising_siren", "falling_siren", "hiss", "ticking",
                                "knocking", "engine_hum", "bell", "bird_chirp"}
    assert COUNTABLE_TYPES | CONTINUOUS_TYPES == set(EVENT_TYPES) and not COUNTABLE_TYPES & CONTINUOUS_TYPES


def test_clip_depends_only_on_seed_split_and_index():
    a = generate_clip(7, 3, "train")
    b = generate_clip(7, 3, "train")
    np.testing.assert_array_equal(a["audio"], b["audio"])
    assert a["captions"] == b["captions"] and a["events"] == b["events"]
    for other in (generate_clip(7, 4, "train"), generate_clip(8, 3, "train"), generate_clip(7, 3, "validation")):
        assert other["captions"] != a["captions"]
    # Regenerating without audio gives the same ground truth and captions.
    light = generate_clip(7, 3, "train", with_audio=False)
    assert light["audio"] is None and light["captions"] == a["captions"] and light["events"] == a["events"]


@pytest.mark.parametrize("split", SPLITS)
def test_clips_are_well_formed(split):
    for index in range(6):
        clip = generate_clip(1, index, split)
        audio, duration = clip["audio"], clip["duration"]
        assert audio.dtype == np.float32 and audio.ndim == 1
        assert len(audio) == round(duration * SAMPLE_RATE) and 5.0 <= duration <= 30.0
        assert np.isfinite(audio).all() and 0.0 < np.abs(audio).max() <= 1.0
        assert len(clip["captions"]) == 5 and len(set(clip["captions"])) == 5
        assert all(c[0].isupper() and c.endswith(".") for c in clip["captions"])
        assert clip["file_name"] == f"synth_{split}_{index:06d}.flac"


def test_scene_ground_truth_is_consistent():
    layouts = set()
    for index in range(150):
        scene = sample_scene(2, index, "train")
        events, layout = scene["events"], scene["layout"]
        layouts.add(layout)
        types = [e.type for e in events]
        assert len(set(types)) == len(types) and 1 <= len(types) <= 3
        assert [e.order for e in events] == list(range(len(events)))
        assert all(a.start <= b.start for a, b in zip(events, events[1:]))
        for e in events:
            assert 0.0 < e.start < e.end <= scene["duration"]
            assert e.loudness in ("loud", "normal", "quiet")
            if e.type in COUNTABLE_TYPES:
                assert 1 <= e.count <= 3 and len(e.onsets) == e.count and e.fade == "none"
            else:
                assert e.count == 1 and e.fade in ("none", "in", "out")
            assert (e.rate in ("slow", "fast")) == (e.type == "ticking")
        foreground = [e for e in events if not e.background]
        for a, b in zip(foreground, foreground[1:]):
            assert b.start - a.end >= MIN_GAP_S - 1e-9  # sequential events never overlap
        background = [e for e in events if e.background]
        assert (layout == "background") == bool(background)
        for bg in background:
            assert bg.type in CONTINUOUS_TYPES
            assert all(bg.start < f.start and f.end < bg.end for f in foreground)
    assert layouts == {"single", "sequence", "background"}


def test_compositional_pairs_never_occur_outside_the_compositional_split():
    seen = {split: set() for split in SPLITS}
    for split in SPLITS:
        for index in range(200 if split == "train" else 60):
            types = [e.type for e in sample_scene(0, index, split)["events"]]
            pairs = {frozenset(p) for p in itertools.combinations(types, 2)}
            seen[split] |= pairs
            if split == "compositional":
                assert pairs & HELD_OUT_PAIRS, types
            else:
                assert not pairs & HELD_OUT_PAIRS, (split, types)
    assert seen["compositional"] & HELD_OUT_PAIRS == HELD_OUT_PAIRS
    # Every type still occurs in train, just never with its held-out partner.
    assert {t for pair in seen["train"] for t in pair} == set(EVENT_TYPES)


def test_event_types_separate_on_a_10ms_log_mel():
    # Bag-of-frames statistics plus a first-half/second-half trend (for siren direction), then
    # leave-one-out nearest centroid: a weak classifier, so the sounds themselves must differ.
    features, labels = [], []
    for label, event_type in enumerate(EVENT_TYPES):
        for seed in range(10):
            audio, _ = _render_isolated(event_type, seed, count=1 + seed % 3, rate="slow" if seed % 2 else "fast")
            mel = _log_mel(audio)
            energy = np.log(np.exp(mel).sum(axis=1))
            active = mel[energy > energy.max() - np.log(100.0)]
            half = len(active) // 2
            features.append(np.concatenate([active.mean(0), active.std(0), active[half:].mean(0) - active[:half].mean(0)]))
            labels.append(label)
    features, labels = np.array(features), np.array(labels)
    features = (features - features.mean(0)) / (features.std(0) + 1e-6)
    correct = 0
    for i in range(len(labels)):
        others = np.arange(len(labels)) != i
        centroids = np.stack([features[others & (labels == k)].mean(0) for k in range(len(EVENT_TYPES))])
        correct += int(np.argmin(((centroids - features[i]) ** 2).sum(1)) == labels[i])
    assert correct / len(labels) >= 0.95


@pytest.mark.parametrize("event_type", sorted(COUNTABLE_TYPES))
def test_repetitions_are_audible_as_onsets(event_type):
    for count in (1, 2, 3):
        audio, plan = _render_isolated(event_type, count, count=count)
        assert plan.count == count
        mel = _log_mel(audio)
        energy_db = 10 * np.log10(np.exp(mel).sum(axis=1))
        # An onset: a frame at least 12 dB above the quietest of the 3 frames before it; onsets
        # closer than 0.12 s (a bird call's syllables) are one repetition.
        rises = [t for t in range(3, len(energy_db)) if energy_db[t] - energy_db[t - 3 : t].min() > 12]
        onsets = [t for i, t in enumerate(rises) if i == 0 or t - rises[i - 1] > 12]
        assert len(onsets) == count, (event_type, count, onsets)


def test_ticking_rate_and_fade_are_audible():
    slow, _ = _render_isolated("ticking", 0, rate="slow")
    fast, _ = _render_isolated("ticking", 0, rate="fast")

    def ticks(audio):
        energy = np.exp(_log_mel(audio)).sum(axis=1)
        loud = energy > energy.max() * 0.05
        return int((loud[1:] & ~loud[:-1]).sum())

    assert ticks(slow) <= 8 and ticks(fast) >= 12  # 3 s at 1.5-2.5 Hz vs 4-6 Hz

    clip = next(c for c in (generate_clip(5, i, "train") for i in range(200))
                if c["layout"] == "single" and c["events"][0]["fade"] == "in")
    event = clip["events"][0]
    start, end = (int(event[k] * SAMPLE_RATE) for k in ("start", "end"))
    body = clip["audio"][start:end]
    tenth = len(body) // 10
    assert np.sqrt(np.mean(body[:tenth] ** 2)) * 10 < np.sqrt(np.mean(body[-tenth:] ** 2))


def test_loudness_words_match_levels():
    peaks = {}
    for index in range(80):
        clip = generate_clip(4, index, "train")
        if clip["layout"] != "single" or clip["events"][0]["fade"] != "none":
            continue
        event = clip["events"][0]
        start, end = (int(event[k] * SAMPLE_RATE) for k in ("start", "end"))
        peaks.setdefault(event["loudness"], []).append(20 * np.log10(np.abs(clip["audio"][start:end]).max()))
    assert set(peaks) == {"loud", "normal", "quiet"}
    assert min(peaks["loud"]) > max(peaks["normal"]) and min(peaks["normal"]) > max(peaks["quiet"]) + 6


def test_split_sizes_and_bad_input():
    assert split_sizes(100) == {"train": 85, "validation": 5, "test": 5, "compositional": 5}
    sizes = split_sizes(50_000)
    assert sum(sizes.values()) == 50_000 and sizes["test"] == 2500
    assert min(split_sizes(4).values()) == 1
    with pytest.raises(ValueError, match="num_clips"):
        split_sizes(3)
    with pytest.raises(ValueError, match="unknown split"):
        split_sizes(100, {"dev": 0.1})
    with pytest.raises(ValueError, match="sum to at most 1"):
        split_sizes(100, {"validation": 0.6, "test": 0.6})
    with pytest.raises(ValueError, match="unknown split"):
        generate_clip(0, 0, "eval")
    with pytest.raises(ValueError, match="seed"):
        generate_clip(-1, 0)
    with pytest.raises(ValueError, match="index"):
        generate_clip(0, -2)
    with pytest.raises(ValueError, match="count"):
        plan_event("bell", np.random.default_rng(0), count=4)
    with pytest.raises(ValueError, match="duration"):
        plan_event("hiss", np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown event type"):
        plan_event("dog", np.random.default_rng(0))


def test_synthesize_corpus_round_trip(tmp_path):
    from datasets import Audio

    out = tmp_path / "corpus"
    corpus = synthesize_corpus(8, 3, out, num_proc=2)
    assert list(corpus) == list(SPLITS)
    assert {s: len(d) for s, d in corpus.items()} == split_sizes(8)
    train = corpus["train"]
    assert isinstance(train.features["audio"], Audio) and not train.features["audio"].decode
    assert train["index"] == list(range(len(train)))  # parallel shards keep the order
    for split, dataset in corpus.items():
        row = dataset[len(dataset) - 1]
        reference = generate_clip(3, row["index"], split)
        audio, rate = decode_audio(row["audio"])
        assert rate == SAMPLE_RATE and audio.dtype == np.float32
        np.testing.assert_allclose(audio, reference["audio"], atol=1.5 / 32768)  # 16-bit FLAC
        assert row["captions"] == reference["captions"] and len(row["captions"]) == 5
        assert row["event_labels"] == [e["type"] for e in reference["events"]]
        assert [e["type"] for e in row["events"]] == row["event_labels"] and row["split"] == split
        assert row["events"][0]["start"] == pytest.approx(reference["events"][0]["start"])
    with pytest.raises(ValueError, match="exists"):
        synthesize_corpus(8, 3, out)


def _synth_cli(argv):
    # The `synth` entry of the `llm-aac` dispatcher, parsed exactly as `llm_aac.cli` does, without
    # importing every other subcommand's module.
    import argparse
    import importlib

    from llm_aac.cli import SUBCOMMANDS

    module = importlib.import_module(SUBCOMMANDS["synth"][0])
    parser = argparse.ArgumentParser(prog="llm-aac synth")
    module.add_arguments(parser)
    return module.main(parser.parse_args(argv))


def test_cli_synth(tmp_path, capsys):
    from datasets import load_from_disk

    out = tmp_path / "synth"
    assert _synth_cli(["--num-clips", "5", "--seed", "1", "--output", str(out), "--split-fractions", "0.4,0.2,0.2,0.2"]) == 0
    assert "wrote 5 clips" in capsys.readouterr().out
    corpus = load_from_disk(str(out))
    assert {s: len(d) for s, d in corpus.items()} == {"train": 2, "validation": 1, "test": 1, "compositional": 1}
    assert corpus["test"][0]["captions"] == generate_clip(1, 0, "test", with_audio=False)["captions"]
    with pytest.raises(ValueError, match="exists"):
        _synth_cli(["--num-clips", "5", "--output", str(out)])
    assert _synth_cli(["--num-clips", "4", "--seed", "2", "--output", str(out), "--overwrite"]) == 0
    assert len(load_from_disk(str(out))["train"]) == 1
    with pytest.raises(SystemExit):
        _synth_cli(["--num-clips", "5", "--output", str(out), "--split-fractions", "0.5,0.5"])
