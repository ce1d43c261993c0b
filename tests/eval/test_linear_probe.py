"""Linear probe: logistic regression fit, embeddings (CLS / mean, layers), encoder loading, end-to-end runs."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from classification_fixtures import make_esc50

from llm_aac.eval import linear_probe
from llm_aac.eval.linear_probe import (
    extract_embeddings,
    fit_linear_classifier,
    load_audio_encoder,
    multi_label_decision_metrics,
    pool_hidden_states,
    probe_embeddings,
    run_linear_probe,
    time_statistics_embeddings,
)


def blobs(num_per_class: int, num_classes: int, dim: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = 4.0 * rng.standard_normal((num_classes, dim))
    labels = np.repeat(np.arange(num_classes), num_per_class)
    return (centres[labels] + rng.standard_normal((labels.size, dim))).astype(np.float32), labels


def test_logistic_regression_separates_classes_and_picks_a_weight_decay():
    features, labels = blobs(20, 3)
    test_features, test_labels = blobs(10, 3, seed=0)
    classifier, validation = fit_linear_classifier(features, labels, multi_label=False, num_labels=3,
                                                   weight_decays=(1e-3, 1.0))
    assert set(validation) == {"0.001", "1"} and classifier.weight_decay in (1e-3, 1.0)
    assert (classifier.logits(test_features).argmax(axis=1) == test_labels).mean() == 1.0

    multi_hot = np.stack([labels == 0, labels != 2], axis=1).astype(np.float32)  # two overlapping labels
    multi, _ = fit_linear_classifier(features, multi_hot, multi_label=True, num_labels=2, weight_decays=(1e-2,))
    assert ((multi.logits(features) > 0) == multi_hot.astype(bool)).mean() > 0.95

    with pytest.raises(ValueError, match="NaN"):
        fit_linear_classifier(np.full((4, 2), np.nan), np.array([0, 1, 0, 1]), multi_label=False, num_labels=2)


def test_pooling_cls_and_mean_of_real_patches():
    hidden = torch.arange(2 * 4 * 2, dtype=torch.float32).reshape(2, 4, 2)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    assert pool_hidden_states(hidden, mask, "cls").tolist() == hidden[:, 0].tolist()
    mean = pool_hidden_states(hidden, mask, "mean")
    assert mean[0].tolist() == hidden[0, 1:3].mean(0).tolist() and mean[1].tolist() == hidden[1, 1:].mean(0).tolist()
    with pytest.raises(ValueError, match="pooling"):
        pool_hidden_states(hidden, mask, "max")


def test_embeddings_are_batch_independent_and_layers_differ(tmp_path, tiny_eat_dir):
    from llm_aac.processing.esc50 import load_esc50

    dataset = load_esc50(make_esc50(tmp_path / "esc", folds=2))
    encoder, feature_extractor = load_audio_encoder(tiny_eat_dir, device="cpu")
    one = extract_embeddings(encoder, feature_extractor, dataset, batch_size=1, progress=False)
    many = extract_embeddings(encoder, feature_extractor, dataset, batch_size=4, progress=False)
    assert one["cls"].shape == (4, 32) and one["mean"].shape == (4, 32)
    np.testing.assert_allclose(one["cls"], many["cls"], atol=1e-5)
    np.testing.assert_allclose(one["mean"], many["mean"], atol=1e-5)
    first = extract_embeddings(encoder, feature_extractor, dataset, poolings=("cls",), layer=1, progress=False)
    assert not np.allclose(first["cls"], one["cls"])
    with pytest.raises(ValueError, match="layer"):
        extract_embeddings(encoder, feature_extractor, dataset, layer=9, progress=False)


def test_decision_metrics_of_a_multi_label_classifier():
    targets = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 1, 0]], dtype=np.float32)
    logits = np.array([[2.0, -1, -1], [3.0, -2, -1], [1.0, -1, -1], [-1.0, 2, -1]])
    metrics = multi_label_decision_metrics(logits, targets, ["a", "b", "c"])
    # a: 2 true positives, 1 false positive -> 4/5; b: 1 true positive, 1 miss -> 2/3; c: never true nor decided
    assert metrics["per_class_f1"] == {"a": pytest.approx(0.8), "b": pytest.approx(2 / 3)}
    assert metrics["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert metrics["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 2))
    assert metrics["label_accuracy"] == pytest.approx(10 / 12) and metrics["exact_match"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="same"):
        multi_label_decision_metrics(logits[:, :2], targets)


def test_probe_embeddings_scores_separable_labels_perfectly():
    features, labels = blobs(30, 3)
    test_features, test_labels = blobs(10, 3, seed=0)
    multi_hot = np.stack([labels == 0, labels != 2], axis=1).astype(np.float32)
    test_hot = np.stack([test_labels == 0, test_labels != 2], axis=1).astype(np.float32)
    metrics = probe_embeddings(features, multi_hot, test_features, test_hot, multi_label=True, label_names=["x", "y"],
                               weight_decays=(1e-2,))
    assert metrics["macro_f1"] == metrics["map"] == metrics["exact_match"] == 1.0
    assert (metrics["dim"], metrics["num_train_clips"], metrics["weight_decay"]) == (8, 90, 1e-2)
    noise = np.random.default_rng(1).standard_normal(features.shape).astype(np.float32)
    chance = probe_embeddings(noise, multi_hot, noise[:30], multi_hot[:30], multi_label=True, weight_decays=(10.0,))
    assert chance["macro_f1"] < 1.0


def test_time_statistics_of_the_normalised_input(tmp_path):
    from datasets import Dataset

    from modeling_llm_aac import LLMAACFeatureExtractor

    extractor = LLMAACFeatureExtractor(feature_type="cwt", feature_mean=1.0, feature_std=2.0)
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal((frames, 64)).astype(np.float32) for frames in (20, 37)]
    dataset = Dataset.from_dict({"input_features": clips, "num_frames": [20, 37]})
    pooled = time_statistics_embeddings(extractor, dataset, batch_size=2)  # padded to 48 frames: padding ignored
    assert pooled.shape == (2, 128)
    for row, clip in zip(pooled, clips):
        normalised = (clip - 1.0) / 2.0
        np.testing.assert_allclose(row[:64], normalised.mean(axis=0), atol=1e-5)
        np.testing.assert_allclose(row[64:], normalised.std(axis=0), atol=1e-5)


def test_encoder_of_a_saved_captioner_is_read_alone(tmp_path):
    sys.path.insert(0, str(Path(__file__).parents[1] / "modeling_llm_aac"))
    from captioning_test_utils import tiny_captioner

    model, processor = tiny_captioner()
    processor.feature_extractor.feature_mean = -1.25  # its own normalisation, not the fbank defaults
    model.save_pretrained(tmp_path / "captioner")
    processor.save_pretrained(tmp_path / "captioner")
    encoder, feature_extractor = load_audio_encoder(tmp_path / "captioner", device="cpu")
    expected = model.get_encoder().state_dict()
    for key, value in encoder.state_dict().items():
        torch.testing.assert_close(value, expected[key])
    assert feature_extractor.feature_type == "fbank" and feature_extractor.feature_mean == -1.25
    with pytest.raises(ValueError, match="no model config"):
        load_audio_encoder(tmp_path / "nowhere", device="cpu")


def test_esc50_probe_embeds_each_clip_once_and_scores_five_folds(tmp_path, tiny_eat_dir, monkeypatch):
    root = make_esc50(tmp_path / "esc")
    embedded = []
    original = linear_probe.extract_embeddings

    def counting(encoder, feature_extractor, dataset, **kwargs):
        embedded.append(len(dataset))
        return original(encoder, feature_extractor, dataset, **kwargs)

    monkeypatch.setattr(linear_probe, "extract_embeddings", counting)
    results = run_linear_probe(tiny_eat_dir, root, poolings=("cls", "mean"), weight_decays=(1e-2,), device="cpu",
                               progress=False)
    assert sum(embedded) == 10  # 10 clips, five runs
    for pooling in ("cls", "mean"):
        summary = results["poolings"][pooling]["summary"]
        assert summary["num_folds"] == 5 and 0.0 <= summary["accuracy"] <= 1.0
        assert set(results["poolings"][pooling]["runs"]) == {f"fold-{k}" for k in range(1, 6)}
    # pitch separates the two classes: a linear probe on tiny random features gets most clips right
    assert results["poolings"]["mean"]["summary"]["accuracy"] >= 0.7


def test_cli_on_the_synthetic_corpus(tmp_path, tiny_eat_dir, tiny_corpus_dir):
    from llm_aac.cli import main

    output = tmp_path / "probe"
    assert main(["linear-probe", "--model", str(tiny_eat_dir), "--dataset", str(tiny_corpus_dir), "--output",
                 str(output), "--weight-decays", "0.01", "--device", "cpu", "--num-workers", "0"]) == 0
    results = json.loads((output / "linear_probe.json").read_text())
    assert results["task"] == "synthetic" and results["metric"] == "map"
    runs = results["poolings"]["cls"]["runs"]["train"]
    assert set(runs) == {"test", "compositional"}
    assert all(0.0 <= metrics["map"] <= 1.0 for metrics in runs.values())
    report = (output / "linear_probe.md").read_text()
    assert "| cls |" in report and "compositional mAP" in report
