"""The `evaluate` module `eval/aac_metrics.py`, loaded from its repository path (offline)."""

from pathlib import Path

import pytest

from llm_aac.eval.caption_metrics import compute_caption_metrics

MODULE_PATH = str(Path(__file__).resolve().parents[2] / "eval" / "aac_metrics.py")

PREDICTIONS = ["A dog barks loudly.", "", "rain falls\non a roof", "a man speaks"]
REFERENCES = [
    ["A dog is barking.", "A dog barks twice.", "Loud barking of a dog."],
    ["A clock ticks.", "Ticking of a clock."],
    ["Rain falls on a roof.", "Heavy rain on a tin roof.", "It is raining."],
    ["A man talks.", "A man is speaking quietly.", "Someone speaks."],
]


def load(tmp_path, config_name, **kwargs):
    import evaluate

    return evaluate.load(MODULE_PATH, config_name, cache_dir=str(tmp_path / "evaluate"), **kwargs)


def test_fast_config_equals_compute_caption_metrics(tmp_path):
    metric = load(tmp_path, "fast")
    assert metric.name == "aac_metrics"
    assert set(metric.features) == {"predictions", "references"}
    scores = metric.compute(predictions=PREDICTIONS, references=REFERENCES)
    expected = compute_caption_metrics(PREDICTIONS, REFERENCES, "fast").scores
    assert scores == pytest.approx(expected, abs=1e-12)


def test_batches_are_scored_as_one_corpus(tmp_path):
    # CIDEr-D's document frequencies depend on the whole reference set: batches must not be
    # averaged, they are accumulated and scored once.
    metric = load(tmp_path, "fast")
    metric.add_batch(predictions=PREDICTIONS[:2], references=REFERENCES[:2])
    metric.add_batch(predictions=PREDICTIONS[2:], references=REFERENCES[2:])
    scores = metric.compute(return_details=True)
    expected = compute_caption_metrics(PREDICTIONS, REFERENCES, "fast")
    assert scores["cider_d"] == pytest.approx(expected.scores["cider_d"], abs=1e-12)
    assert scores["num_blank_predictions"] == 1
    assert scores["ranking_metric"] == "cider_d" and scores["skipped"] == {}


def test_default_config_reports_skipped_metrics_without_java(monkeypatch, tmp_path):
    import huggingface_hub.constants

    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.delenv("AAC_METRICS_JAVA_PATH", raising=False)
    monkeypatch.setenv("FENSE_DATA", str(tmp_path / "fense_data"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))

    metric = load(tmp_path, None, cache_path=str(tmp_path / "aac_cache"))
    scores = metric.compute(predictions=PREDICTIONS, references=REFERENCES, return_details=True)
    assert scores["ranking_metric"] == "fense"
    assert "meteor" not in scores and "no Java executable" in scores["skipped"]["meteor"]
    assert "fense" in scores["skipped"] and str(tmp_path / "aac_cache") in scores["skipped"]["spice"]
    assert {"cider_d", "vocab.cands"} <= set(scores)
    # No Java: the captions went through the pure-Python copy of the PTB tokenizer instead.
    assert scores["tokenized"] is True and scores["tokenizer"] == "python"
    # Without details, only numbers: what Trainer's compute_metrics expects to log.
    plain = metric.compute(predictions=PREDICTIONS, references=REFERENCES, metrics=["cider_d", "vocab"])
    assert all(isinstance(value, float) for value in plain.values())


def test_unknown_config_name(tmp_path):
    with pytest.raises(ValueError, match="unknown config_name 'dcase2099'"):
        load(tmp_path, "dcase2099")
