"""train/train_clap.py on CPU: tiny towers on the synthetic corpus (saved with `llm-aac synth`, or rendered in
memory), the per-epoch caption rotation, retrieval metrics, compositional hard negatives (items, collation,
training, the validation hard-negative accuracy), and the saved folder loading as a CLAP scorer."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from llm_aac.processing.caption_perturbations import perturb_caption
from llm_aac.train.train_clap import (
    ClapTrainer,
    ClapBatchCollator,
    ClipCaptionEpochs,
    EpochCallback,
    HardNegativeProbe,
    hard_negative_metrics,
    main,
    retrieval_metrics,
)

TINY = ["--preset", "tiny", "--max_frames", "256", "--synthesis_workers", "1", "--disable_tqdm", "true",
        "--dataloader_pin_memory", "false"]


def _train_on_synthetic_clips(output_dir, clips: int, *arguments: str) -> int:
    """`main` on `clips` synthetic training clips rendered in memory (4 validation clips), no checkpoints."""
    return main(TINY + ["--synthetic_clips", str(clips), "--synthetic_eval_clips", "4", "--save_strategy", "no",
                        "--output_dir", str(output_dir), *arguments])


def test_captions_rotate_once_per_epoch():
    table = [{"captions": [f"clip {i} caption {j}" for j in range(5)]} for i in range(3)]
    table.append({"captions": []})  # skipped
    table.append({"captions": ["only one"]})
    items = ClipCaptionEpochs([table], seed=3)
    assert len(items) == 4
    seen = {i: [] for i in range(len(items))}
    for epoch in range(5):
        EpochCallback(items).on_epoch_begin(None, type("S", (), {"epoch": float(epoch)})(), None)
        for i in range(len(items)):
            seen[i].append(items[i]["caption"])
    for i in range(3):
        assert sorted(seen[i]) == sorted(table[i]["captions"])  # every reference exactly once in 5 epochs
    assert seen[3] == ["only one"] * 5
    with pytest.raises(ValueError, match="at least 2 captioned clips"):
        ClipCaptionEpochs([[{"captions": ["a"]}, {"captions": []}]])


def test_retrieval_metrics_match_a_naive_count():
    generator = torch.Generator().manual_seed(0)
    references = [["a", "b"], ["c"], ["d", "e", "f"], ["g"], ["h"], ["i", "j"]]
    audio_table = torch.nn.functional.normalize(torch.randn(len(references), 4, generator=generator), dim=-1)
    words = [w for refs in references for w in refs]
    text_table = torch.nn.functional.normalize(torch.randn(len(words), 4, generator=generator), dim=-1)

    class Fixed(torch.nn.Module):
        def get_audio_features(self, features, mask):
            return audio_table[features[:, 0, 0].long()]

        def get_text_features(self, input_ids, attention_mask=None):
            return text_table[input_ids[:, 0]]

    class Collator:
        def audio(self, rows):
            return {"input_features": torch.tensor([[[r["id"]]] for r in rows], dtype=torch.float32),
                    "audio_attention_mask": torch.ones(len(rows), 1)}

        def text(self, captions):
            return {"input_ids": torch.tensor([[words.index(c)] for c in captions])}

    clips = [{"row": {"id": i}, "references": refs} for i, refs in enumerate(references)]
    metrics = retrieval_metrics(Fixed(), Collator(), clips, batch_size=4, device="cpu")

    similarity = (audio_table @ text_table.T).tolist()
    owner = [i for i, refs in enumerate(references) for _ in refs]
    for k in (1, 5, 10):
        a2t = 0
        for clip in range(len(references)):
            best_own = max(similarity[clip][t] for t in range(len(words)) if owner[t] == clip)
            better = sum(1 for t in range(len(words)) if similarity[clip][t] > best_own)
            a2t += better < k
        t2a = 0
        for t in range(len(words)):
            better = sum(1 for clip in range(len(references)) if similarity[clip][t] > similarity[owner[t]][t])
            t2a += better < k
        assert metrics[f"a2t_r{k}"] == pytest.approx(a2t / len(references))
        assert metrics[f"t2a_r{k}"] == pytest.approx(t2a / len(words))
    assert any(0 < value < 1 for value in metrics.values())  # a non-trivial case


def test_items_carry_seeded_hard_negatives_and_the_collator_marks_their_clips():
    references = [["A bell rings twice.", "A bell rings two times."], ["A dog barks."],
                  ["A man speaks, then a car passes by.", "After a man speaks, a car passes by."]]
    table = [{"captions": refs, "id": i} for i, refs in enumerate(references)]
    plain = ClipCaptionEpochs([table], seed=1)
    assert "hard_negatives" not in plain[0]  # off by default: the items are unchanged
    items = ClipCaptionEpochs([table], seed=1, hard_negative_kinds=("count", "order"), hard_negatives_per_kind=2)
    first = [items[i] for i in range(3)]
    assert first == [items[i] for i in range(3)]  # the same draw every time (DataLoader workers, resumes)
    assert first[1]["hard_negatives"] == []  # no rule applies to "A dog barks."
    for item, refs in zip(first, references):
        assert item["caption"] in refs and all(n not in refs and n != item["caption"] for n in item["hard_negatives"])
    assert len(first[0]["hard_negatives"]) == 2  # two count edits ("once", "three times"), no order edit
    swapped = {"A man speaks, then a car passes by.": "A car passes by, then a man speaks.",
               "After a man speaks, a car passes by.": "After a car passes by, a man speaks."}
    assert first[2]["hard_negatives"] == [swapped[first[2]["caption"]]]

    class TextLengthCollator(ClapBatchCollator):
        """The real `__call__`, with captions 'tokenised' to their length and no audio work."""

        def __init__(self):
            pass

        def audio(self, rows):
            return {"input_features": torch.zeros(len(rows), 16, 4), "audio_attention_mask": torch.ones(len(rows), 16)}

        def text(self, captions):
            return {"input_ids": torch.tensor([[len(c)] for c in captions]),
                    "attention_mask": torch.ones(len(captions), 1, dtype=torch.long)}

    batch = TextLengthCollator()(first)
    expected = [(owner, len(text)) for owner, item in enumerate(first) for text in item["hard_negatives"]]
    assert batch["hard_negative_owners"].tolist() == [owner for owner, _ in expected]
    assert batch["hard_negative_input_ids"][:, 0].tolist() == [length for _, length in expected]
    assert batch["hard_negative_attention_mask"].shape == (len(expected), 1)
    assert not any(key.startswith("hard_negative") for key in TextLengthCollator()([first[1]]))
    assert not any(key.startswith("hard_negative") for key in TextLengthCollator()([plain[0], plain[1]]))


def test_a_cap_of_one_hard_negative_per_clip():
    references = [["Two quiet beeps sound, then a loud bell rings twice.", "A bell rings after two beeps."],
                  ["A loud siren rises in pitch."], ["A dog barks."]]
    table = [{"captions": refs, "id": i} for i, refs in enumerate(references)]
    kinds = ("count", "order", "antonym")
    capped = ClipCaptionEpochs([table], seed=2, hard_negative_kinds=kinds, hard_negatives_per_clip=1)
    uncapped = ClipCaptionEpochs([table], seed=2, hard_negative_kinds=kinds)
    drawn = {0: set(), 1: set()}
    for epoch in range(12):
        capped.set_epoch(epoch)
        uncapped.set_epoch(epoch)
        items = [capped[i] for i in range(3)]
        assert items == [capped[i] for i in range(3)]  # the same draw on every read (workers, resumes)
        assert items[2]["hard_negatives"] == []  # no rule applies
        for index in (0, 1):
            negatives = items[index]["hard_negatives"]
            assert len(negatives) == 1  # at most one per clip (these captions have some)
            every_kind = perturb_caption(items[index]["caption"], kinds, per_kind=100,
                                         exclude=references[index])
            assert negatives[0] in {p.text for p in every_kind}
            drawn[index].add(next(p.kind for p in every_kind if p.text == negatives[0]))
        assert len(uncapped[0]["hard_negatives"]) >= 2  # without the cap: one of each kind that applies
    assert drawn[0] == {"count", "order", "antonym"} and drawn[1] == {"antonym"}  # among the applicable kinds
    same_seed = ClipCaptionEpochs([table], seed=2, hard_negative_kinds=kinds, hard_negatives_per_clip=1)
    same_seed.set_epoch(11)
    assert [same_seed[i] for i in range(3)] == items  # deterministic under the seed
    # a cap of (kinds x per kind) is the uncapped draw itself
    full = ClipCaptionEpochs([table], seed=2, hard_negative_kinds=kinds, hard_negatives_per_clip=3)
    full.set_epoch(11)
    assert [full[i] for i in range(3)] == [uncapped[i] for i in range(3)]


def test_hard_negative_metrics_match_a_naive_count():
    references = [["A bell rings twice.", "A dog barks."], ["A man speaks, then a car passes by."],
                  ["A loud siren rises twice."]]
    probe = HardNegativeProbe.from_references(references)
    assert probe == HardNegativeProbe.from_references(references)  # fixed seed: every run scores the same texts
    assert set(probe.kinds) == {"count", "order", "antonym"} and 1 not in probe.reference_rows  # "A dog barks."
    generator = torch.Generator().manual_seed(3)
    audio = torch.nn.functional.normalize(torch.randn(3, 4, generator=generator), dim=-1)
    owners = torch.tensor([0, 0, 1, 2])
    reference_embeds = torch.nn.functional.normalize(torch.randn(4, 4, generator=generator), dim=-1)
    perturbation_embeds = torch.nn.functional.normalize(torch.randn(len(probe.texts), 4, generator=generator), dim=-1)
    metrics = hard_negative_metrics(audio, reference_embeds, owners, perturbation_embeds, probe)

    def naive(kind=None):
        wins, margins = [], []
        for row in range(4):
            own = audio[owners[row]]
            scores = [float(own @ perturbation_embeds[p]) for p in range(len(probe.texts))
                      if probe.reference_rows[p] == row and kind in (None, probe.kinds[p])]
            if scores:
                wins.append(float(own @ reference_embeds[row]) > max(scores))
                margins.append(float(own @ reference_embeds[row]) - max(scores))
        return np.mean(wins), np.mean(margins), len(wins)

    accuracy, margin, scored = naive()
    assert metrics["hard_negative_accuracy"] == pytest.approx(accuracy)
    assert metrics["hard_negative_margin"] == pytest.approx(margin, abs=1e-6)
    assert metrics["hard_negative_references"] == scored == 3
    for kind in ("count", "order", "antonym"):
        assert metrics[f"hard_negative_accuracy_{kind}"] == pytest.approx(naive(kind)[0])
    assert 0 < metrics["hard_negative_accuracy_count"] < 1 or 0 < metrics["hard_negative_accuracy"] < 1
    empty = HardNegativeProbe.from_references([["A dog barks."]])
    assert hard_negative_metrics(audio[:1], reference_embeds[:1], owners[:1], torch.empty(0, 4), empty) == {}


def test_hard_negatives_change_the_training_loss_and_are_logged(tmp_path):
    arguments = ("--max_steps", "2", "--per_device_train_batch_size", "4", "--logging_steps", "1", "--eval_steps", "2")
    assert _train_on_synthetic_clips(tmp_path / "plain", 8, *arguments) == 0
    assert _train_on_synthetic_clips(tmp_path / "hard", 8, *arguments, "--hard_negatives", "count,order,antonym",
                                     "--hard_negative_weight", "2") == 0
    plain, hard = (json.load(open(tmp_path / name / "log_history.json")) for name in ("plain", "hard"))
    # Same seed, same first batch: the hard negatives only add terms to the audio->text softmax.
    assert hard[1]["loss"] > plain[1]["loss"]
    for history in (plain, hard):
        evaluations = [e for e in history if "eval_loss" in e]
        assert [e["step"] for e in evaluations] == [0, 2]
        assert all(0 <= e["eval_hard_negative_accuracy"] <= 1 and e["eval_hard_negative_references"] > 0
                   for e in evaluations)
    assert plain[0]["eval_loss"] == hard[0]["eval_loss"]  # the validation loss has no hard negatives: comparable
    summary = json.load(open(tmp_path / "hard" / "summary.json"))
    assert (summary["hard_negatives"], summary["hard_negatives_per_clip"]) == (["count", "order", "antonym"], 1)


def test_loss_falls_on_synthetic_clips(tmp_path):
    out = tmp_path / "clap"
    assert _train_on_synthetic_clips(out, 16, "--max_steps", "24", "--learning_rate", "1e-3", "--logging_steps", "4",
                                     "--eval_steps", "24") == 0
    history = json.load(open(out / "log_history.json"))
    losses = [entry["loss"] for entry in history if "loss" in entry]
    assert len(losses) == 6 and all(np.isfinite(losses))
    assert np.mean(losses[-2:]) < np.mean(losses[:2]) - 0.1, losses
    evaluations = [entry for entry in history if "eval_loss" in entry]
    assert [e["step"] for e in evaluations] == [0, 24]
    assert {"eval_a2t_r1", "eval_t2a_r5", "eval_a2t_r10"} <= set(evaluations[-1])


def test_trains_from_saved_corpus_and_reloads(tmp_path):
    from transformers import AutoModel

    from llm_aac.processing.synthetic import synthesize_corpus
    from modeling_llm_aac import EATClapModel, load_clap_scorer

    corpus = tmp_path / "corpus"
    synthesize_corpus(10, seed=5, output_dir=corpus, split_fractions={"validation": 0.3})
    out = tmp_path / "clap"
    assert main(TINY + ["--dataset_path", str(corpus), "--max_steps", "3", "--per_device_train_batch_size", "4",
                        "--logging_steps", "1", "--eval_steps", "3", "--save_steps", "3", "--output_dir", str(out)]) == 0
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "tokenizer.json", "summary.json",
            "log_history.json"} <= set(os.listdir(out))
    assert os.path.isdir(out / "checkpoint-3")
    model = AutoModel.from_pretrained(out)
    assert isinstance(model, EATClapModel) and model.config.max_text_length == 64

    scorer = load_clap_scorer(out)
    assert scorer.backend == "eat_clap"
    clip = np.sin(2 * np.pi * 880 * np.arange(32_000) / 16_000).astype(np.float32)
    scores = scorer.score(clip, ["a high beep", "an engine hums"], sampling_rate=16_000)
    assert scores.shape == (2,) and torch.isfinite(scores).all()

    # Resume: continues from checkpoint-3 to step 5.
    assert main(TINY + ["--dataset_path", str(corpus), "--max_steps", "5", "--per_device_train_batch_size", "4",
                        "--logging_steps", "1", "--eval_steps", "5", "--save_steps", "5", "--output_dir", str(out),
                        "--resume_from_checkpoint", "true"]) == 0
    history = json.load(open(out / "log_history.json"))
    assert [e["step"] for e in history if "loss" in e] == [1, 2, 3, 4, 5]


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="exactly one training input"):
        main(TINY + ["--output_dir", str(tmp_path)])
    with pytest.raises(ValueError, match="a contrastive batch needs negatives"):
        main(TINY + ["--synthetic_clips", "4", "--per_device_train_batch_size", "1", "--output_dir", str(tmp_path)])
    with pytest.raises(ValueError, match="unknown --preset"):
        main(["--preset", "huge", "--synthetic_clips", "4", "--output_dir", str(tmp_path)])
    with pytest.raises(ValueError, match=r"--hard_negatives: unknown hard-negative kind\(s\) \['colour'\].*"
                                         r"--hard_negatives_per_kind must be >= 1.*--hard_negatives_per_clip must be "
                                         r">= 1, got 0.*--hard_negative_weight must be"):
        main(TINY + ["--synthetic_clips", "4", "--hard_negatives", "count,colour", "--hard_negatives_per_kind", "0",
                     "--hard_negatives_per_clip", "0", "--hard_negative_weight", "-1", "--output_dir", str(tmp_path)])


def test_time_limit_stops_training_and_evaluates_there(tmp_path):
    out = tmp_path / "clap"
    # A limit far below one step's time: training stops after its first step, evaluated and saved there.
    assert _train_on_synthetic_clips(out, 8, "--max_steps", "50", "--per_device_train_batch_size", "4",
                                     "--max_train_minutes", "1e-6", "--eval_steps", "50") == 0
    summary = json.load(open(out / "summary.json"))
    assert summary["global_step"] == 1
    assert [e["step"] for e in summary["evaluations"]] == [0, 1]
    with pytest.raises(ValueError, match="--max_train_minutes must be >= 0"):
        main(TINY + ["--synthetic_clips", "4", "--max_train_minutes", "-1", "--output_dir", str(tmp_path / "bad")])


def test_clip_lengths_for_duration_grouped_batches():
    frames = [{"captions": [f"clip {i}"], "num_frames": 100 + i} for i in range(3)]
    seconds = [{"captions": ["a"], "duration": 1.5}, {"captions": [], "duration": 9.0}, {"captions": ["b"], "duration": 2.25}]
    assert ClipCaptionEpochs([frames, seconds]).clip_lengths() == [100, 101, 102, 1500, 2250]  # captioned rows only
    assert ClipCaptionEpochs([[{"captions": ["a"]}, {"captions": ["b"]}]]).clip_lengths() is None


def test_duration_grouped_batches_hold_clips_of_similar_length(tmp_path, monkeypatch):
    from transformers.trainer_pt_utils import LengthGroupedSampler

    samplers = []
    original = ClapTrainer._get_train_sampler

    def recording(self, *args, **kwargs):
        samplers.append(original(self, *args, **kwargs))
        return samplers[-1]

    monkeypatch.setattr(ClapTrainer, "_get_train_sampler", recording)
    for group in ("true", "false"):
        assert _train_on_synthetic_clips(tmp_path / group, 8, "--max_steps", "1", "--per_device_train_batch_size",
                                         "4", "--group_by_duration", group) == 0
    grouped, plain = samplers
    assert isinstance(grouped, LengthGroupedSampler) and len(grouped.lengths) == 8
    assert not isinstance(plain, LengthGroupedSampler)
