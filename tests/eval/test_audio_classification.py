"""Classification tasks (AudioSet / ESC-50 / synthetic layouts), label encoding, batching and metrics."""

import numpy as np
import pytest
from classification_fixtures import AUDIOSET_LABELS, make_audioset_disk, make_esc50

from llm_aac.eval.audio_classification import (
    CLASS_IDS_COLUMN,
    ClassificationCollator,
    average_precision,
    classification_metrics,
    detect_task_kind,
    load_classification_task,
    summarize_runs,
)


def test_average_precision_by_hand():
    # positives at ranks 1 and 3 of 4: AP = (1/1 + 2/3) / 2
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    targets = np.array([1, 0, 1, 0])
    assert average_precision(scores, targets)[0] == pytest.approx((1 + 2 / 3) / 2)
    # a tie between a positive and a negative counts as one threshold: precision 1/2 at recall 1
    assert average_precision(np.array([0.5, 0.5]), np.array([1, 0]))[0] == pytest.approx(0.5)
    # no positive: undefined
    assert np.isnan(average_precision(np.array([0.3, 0.2]), np.array([0, 0]))[0])
    with pytest.raises(ValueError, match="NaN"):
        average_precision(np.array([np.nan, 0.2]), np.array([1, 0]))


def test_average_precision_matches_scikit_learn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    # rounded scores: many ties
    scores = np.round(rng.random((60, 5)), 1)
    targets = (rng.random((60, 5)) < 0.3).astype(int)
    ours = average_precision(scores, targets)
    for c in range(5):
        assert ours[c] == pytest.approx(sklearn_metrics.average_precision_score(targets[:, c], scores[:, c]), abs=1e-12)


def test_classification_metrics():
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, -1.0], [0.0, -1.0, 3.0], [1.0, 0.0, 0.5]])
    single = classification_metrics(logits, np.array([0, 1, 2, 2]), multi_label=False)
    assert single["accuracy"] == pytest.approx(0.75) and "top5_accuracy" not in single
    multi = classification_metrics(logits, np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]]), True, ["a", "b", "c"])
    assert multi["map"] == pytest.approx(1.0) and multi["num_scored_classes"] == 3
    partial = classification_metrics(logits, np.array([[1, 0, 0], [1, 0, 0], [0, 0, 1], [1, 0, 0]]), True, ["a", "b", "c"])
    assert partial["classes_without_positives"] == ["b"] and partial["num_scored_classes"] == 2
    with pytest.raises(ValueError, match="logits"):
        classification_metrics(np.zeros(3), np.zeros(3), False)


def test_esc50_task_has_one_run_per_held_out_fold(tmp_path):
    root = make_esc50(tmp_path / "esc")
    assert detect_task_kind(root) == "esc50"
    task = load_classification_task(root)
    assert task.kind == "esc50" and not task.multi_label and task.label_names == ["dog", "rain"]
    assert [run.name for run in task.runs] == [f"fold-{k}" for k in range(1, 6)]
    for fold, run in enumerate(task.runs, start=1):
        (test,) = run.evaluations.values()
        assert set(test["fold"]) == {fold} and fold not in set(run.train["fold"])
        assert len(run.train) == 8 and len(test) == 2
    assert task.targets(task.runs[0].evaluations["fold-1"]).tolist() == [0, 1]
    assert [run.name for run in load_classification_task(root, folds=[3]).runs] == ["fold-3"]
    summary = summarize_runs(task, {"fold-1": {"fold-1": {"accuracy": 0.5}}, "fold-2": {"fold-2": {"accuracy": 1.0}}})
    assert summary["accuracy"] == pytest.approx(0.75) and summary["accuracy_std"] == pytest.approx(0.25)


def test_audioset_layout_is_multi_label(tmp_path):
    root = make_audioset_disk(tmp_path / "audioset")
    assert detect_task_kind(root) == "audioset"
    task = load_classification_task(root)
    assert task.multi_label and task.metric_name == "map"
    assert task.label_names == [AUDIOSET_LABELS[m] for m in sorted(AUDIOSET_LABELS)]
    (run,) = task.runs
    assert list(run.evaluations) == ["test"] and len(run.train) == 6
    targets = task.targets(run.train)
    assert targets.shape == (6, 3) and targets.sum() == 8  # 6 clips, two of them with Music too

    labels_csv = tmp_path / "class_labels_indices.csv"
    labels_csv.write_text("index,mid,display_name\n0,/m/09x0r,Speech\n1,/m/04rlf,Music\n2,/m/0jbk,Animal\n3,/m/x,Other\n")
    fixed = load_classification_task(root, labels_csv=labels_csv)
    assert fixed.label_names == ["Speech", "Music", "Animal", "Other"]
    assert fixed.runs[0].train[CLASS_IDS_COLUMN][0] == [0, 1]  # Speech + Music


def test_synthetic_corpus_event_labels(tiny_corpus_dir):
    from llm_aac.processing.synthetic import EVENT_TYPES

    assert detect_task_kind(tiny_corpus_dir) == "synthetic"
    task = load_classification_task(tiny_corpus_dir)
    (run,) = task.runs
    assert task.label_names == list(EVENT_TYPES) and task.multi_label
    assert list(run.evaluations) == ["test", "compositional"]
    row = run.train[0]
    assert sorted(EVENT_TYPES[i] for i in row[CLASS_IDS_COLUMN]) == sorted(row["event_labels"])
    with pytest.raises(ValueError, match="splits"):
        load_classification_task(tiny_corpus_dir, eval_splits=["holdout"])


def test_collator_gives_features_masks_and_labels(tmp_path):
    from modeling_llm_aac import LLMAACFeatureExtractor

    task = load_classification_task(make_audioset_disk(tmp_path / "audioset"))
    run = task.runs[0]
    collate = ClassificationCollator(LLMAACFeatureExtractor(), task.num_labels, task.multi_label, max_frames=32)
    batch = collate([run.train[i] for i in range(3)])
    assert batch["input_features"].shape == (3, 32, 128) and batch["attention_mask"].shape == (3, 32)
    assert batch["labels"].dtype.is_floating_point and batch["labels"].shape == (3, 3)

    esc = load_classification_task(make_esc50(tmp_path / "esc"), folds=[1])
    single = ClassificationCollator(LLMAACFeatureExtractor(), esc.num_labels, False)
    labels = single([esc.runs[0].train[i] for i in range(4)])["labels"]
    assert labels.tolist() == [0, 1, 0, 1] and not labels.dtype.is_floating_point
