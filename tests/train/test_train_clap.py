"""train/train_clap.py on CPU: tiny towers on the synthetic corpus (saved with `llm-aac synth`, or rendered in
memory), the per-epoch caption rotation, retrieval metrics, and the saved folder loading as a CLAP scorer."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from llm_aac.train.train_clap import ClipCaptionEpochs, EpochCallback, main, retrieval_metrics

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
