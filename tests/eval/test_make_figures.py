"""make_figures: features, training curves and the rescoring table as PNG files."""

import json

import pytest

from llm_aac.eval.caption_metrics import compute_caption_metrics
from llm_aac.eval.make_figures import main, pick_synthetic_clip, plot_metrics_table

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def is_png(path) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == PNG_SIGNATURE


def evaluate_metrics_json():
    """An `llm-aac evaluate --compare-rescoring` metrics.json, with real metric results."""
    references = [["a dog barks loudly", "a dog is barking"], ["rain falls on a roof", "rain on a metal roof"]]
    beam = compute_caption_metrics(["a dog barks", "rain falls"], references, metrics="fast")
    rescored = compute_caption_metrics(["a dog barks loudly", "rain falls on a roof"], references, metrics="fast")
    semantic = {"event_f1": 0.5, "scene_accuracy": 0.0}
    return {
        "model": "tiny", "dataset": "synthetic",
        "systems": {"beam_search": "beam search (4 beams)", "clap_rescoring": "CLAP rescoring (slam, 7 candidates)"},
        "splits": {"test": {"num_clips": 2, "systems": {
            "beam_search": {"caption_metrics": beam.to_dict(), "semantic_accuracy": semantic},
            "clap_rescoring": {"caption_metrics": rescored.to_dict(), "semantic_accuracy": semantic},
        }}},
    }


def test_all_figures(tmp_path):
    state = {"log_history": [
        {"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.5}, {"step": 2, "eval_loss": 2.7, "eval_cider_d": 0.1},
        {"step": 3, "loss": 2.0}, {"step": 4, "eval_loss": 2.2, "eval_cider_d": 0.2},
    ]}
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "trainer_state.json").write_text(json.dumps(state))
    (tmp_path / "metrics.json").write_text(json.dumps(evaluate_metrics_json()))
    out = tmp_path / "docs"
    assert main(["--output-dir", str(out), "--training", str(tmp_path / "run"),
                 "--metrics", str(tmp_path / "metrics.json")]) == 0
    for name in ("features.png", "training_curves.png", "metrics_rescoring.png"):
        assert is_png(out / name) and (out / name).stat().st_size > 10_000


def test_features_clip_choice_and_bad_metrics_file(tmp_path):
    from llm_aac.processing.synthetic import generate_clip

    index = pick_synthetic_clip(0)
    clip = generate_clip(0, index, "train", with_audio=False)
    assert clip["layout"] == "background" and clip["num_events"] >= 3 and clip["duration"] <= 10.0
    with pytest.raises(ValueError, match="not an `llm-aac evaluate` metrics.json"):
        plot_metrics_table({"scores": {}}, tmp_path / "x.png")


def ablations_table():
    """The shape of `run_ablations.py`'s ablations.json: rows with per-column mean, spread and per-seed values."""
    def cell(*values):
        return {"mean": sum(values) / len(values), "spread": None, "values": list(values)}

    return {"rows": [
        {"config": "baseline", "size": "gpu", "budget_scale": 0.3, "seeds": [0, 1], "devices": ["NVIDIA H200"],
         "columns": {"test CIDEr-D CLAP": cell(1.36, 1.22), "audio gain": cell(0.69, 0.64)}},
        {"config": "fbank", "size": "gpu", "budget_scale": 0.3, "seeds": [0, 1], "devices": ["NVIDIA H200"],
         "columns": {"test CIDEr-D CLAP": cell(0.32, 0.41), "audio gain": cell(0.05, 0.12)}},
    ], "paired": []}


def test_ablations_figure(tmp_path):
    (tmp_path / "ablations.json").write_text(json.dumps(ablations_table()))
    out = tmp_path / "docs"
    assert main(["--output-dir", str(out), "--no-features", "--ablations", str(tmp_path / "ablations.json"),
                 "--ablation-columns", "test CIDEr-D CLAP,audio gain"]) == 0
    assert is_png(out / "ablations.png") and (out / "ablations.png").stat().st_size > 10_000
    assert not (out / "features.png").exists()


def test_ablations_figure_bad_input(tmp_path):
    from llm_aac.eval.make_figures import plot_ablations

    with pytest.raises(ValueError, match="not a run_ablations.py ablations.json"):
        plot_ablations({"rows": []}, tmp_path / "a.png")
    with pytest.raises(ValueError, match=r"\['METEOR CLAP'\] not in the table; it has \['audio gain', 'test CIDEr-D CLAP'\]"):
        plot_ablations(ablations_table(), tmp_path / "a.png", columns=["METEOR CLAP"])
