"""finetune_eat_classifier: Trainer runs end to end on tiny ESC-50 (folds) and AudioSet (mAP) layouts."""

import json
import sys
from pathlib import Path

import pytest

from llm_aac.train.finetune_eat_classifier import main

sys.path.insert(0, str(Path(__file__).parents[1] / "eval"))  # the classification corpora of the eval tests
from classification_fixtures import make_audioset_disk, make_esc50, save_tiny_eat  # noqa: E402

COMMON = [
    "--num_train_epochs", "1", "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4",
    "--learning_rate", "1e-3", "--logging_steps", "1", "--dataloader_num_workers", "0", "--use_cpu", "true",
    "--disable_tqdm", "true",
]


def test_esc50_runs_one_classifier_per_held_out_fold(tmp_path):
    from transformers import AutoModelForAudioClassification

    output = tmp_path / "esc"
    assert main(["--preset", "tiny", "--dataset_path", make_esc50(tmp_path / "data"), "--folds", "1,2",
                 "--output_dir", str(output), *COMMON]) == 0
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["summary"]["task"] == "esc50" and metrics["summary"]["num_folds"] == 2
    assert set(metrics["runs"]) == {"fold-1", "fold-2"}
    accuracies = [metrics["runs"][f"fold-{k}"][f"fold-{k}"]["accuracy"] for k in (1, 2)]
    assert all(0.0 <= a <= 1.0 for a in accuracies)
    assert metrics["summary"]["accuracy"] == pytest.approx(sum(accuracies) / 2)
    assert "mean over 2 folds" in (output / "metrics.md").read_text()

    model = AutoModelForAudioClassification.from_pretrained(output / "fold-1")
    assert model.config.id2label == {0: "dog", 1: "rain"}
    assert model.config.problem_type == "single_label_classification"
    history = json.loads((output / "fold-1" / "log_history.json").read_text())
    assert any("eval_fold-1_accuracy" in entry for entry in history)
    assert (output / "fold-1" / "curves.png").stat().st_size > 0


def test_audioset_layout_from_a_pretrained_encoder(tmp_path):
    output = tmp_path / "as"
    encoder = save_tiny_eat(tmp_path / "eat")
    assert main(["--model_name_or_path", encoder, "--dataset_path", make_audioset_disk(tmp_path / "audioset"),
                 "--output_dir", str(output), *COMMON]) == 0
    metrics = json.loads((output / "metrics.json").read_text())
    test = metrics["runs"]["train"]["test"]
    assert 0.0 <= test["map"] <= 1.0 and test["num_scored_classes"] == 3 and len(test["per_class_ap"]) == 3
    assert metrics["summary"]["test_map"] == test["map"]
    config = json.loads((output / "train" / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification" and len(config["id2label"]) == 3
