"""`llm-aac evaluate`: tiny captioner, tiny synthetic corpus, fast metric set; output schema; rescoring reuse."""

import json
import sys
from pathlib import Path

import pytest

from llm_aac.eval.evaluate_captioner import (
    BEAM_SEARCH,
    CLAP_RESCORING,
    caption_batch,
    evaluate_captioner,
    load_evaluation_split,
    plan_captioning,
)
from modeling_llm_aac.caption_candidates import CandidateOptions
from modeling_llm_aac.clap_scoring import normalize_caption

sys.path.insert(0, str(Path(__file__).parents[1] / "modeling_llm_aac"))  # the tiny captioner of the model tests
from captioning_test_utils import LengthPreferringScorer, audio_clips, tiny_captioner  # noqa: E402

RECORD_KEYS = {"file", "split", "prediction", "candidates", "references"}


@pytest.fixture(scope="module")
def captioner_dir(tmp_path_factory):
    model, processor = tiny_captioner()
    folder = tmp_path_factory.mktemp("captioner")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_cli_writes_predictions_metrics_and_semantic_accuracy(tmp_path, captioner_dir, tiny_corpus_dir):
    from llm_aac.cli import main

    output = tmp_path / "eval"
    assert main([
        "evaluate", "--model", str(captioner_dir), "--dataset", "synthetic", "--data-dir", str(tiny_corpus_dir),
        "--metrics", "fast", "--batch-size", "2", "--num-workers", "0", "--device", "cpu", "--output", str(output),
    ]) == 0

    records = read_jsonl(output / "predictions-beam_search.jsonl")
    assert [r["split"] for r in records] == ["test", "test", "compositional", "compositional"]
    for record in records:
        assert set(record) == RECORD_KEYS
        assert record["file"].startswith(f"synth_{record['split']}_") and len(record["references"]) == 5
        assert isinstance(record["prediction"], str)
        (candidate,) = record["candidates"]
        assert candidate["caption"] == record["prediction"] and candidate["origin"] == "beams=3"

    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["systems"] == {BEAM_SEARCH: "beam search (3 beams)"}
    assert metrics["predictions"] == {BEAM_SEARCH: "predictions-beam_search.jsonl"}
    assert metrics["timing"]["clips"] == 4 and metrics["timing"]["device"] == "cpu"
    assert metrics["decoding"][BEAM_SEARCH]["num_beams"] == 3 and metrics["decoding"][BEAM_SEARCH]["max_new_tokens"] == 12
    for split in ("test", "compositional"):
        block = metrics["splits"][split]
        assert block["num_clips"] == 2
        scored = block["systems"][BEAM_SEARCH]
        caption_metrics = scored["caption_metrics"]
        assert caption_metrics["metric_set"] == "fast" and caption_metrics["num_clips"] == 2
        assert set(caption_metrics["scores"]) == {"bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider_d"}
        assert scored["semantic_accuracy"]["num_clips"] == 2 and "event_f1" in scored["semantic_accuracy"]
    report = (output / "metrics.md").read_text()
    assert "## test (2 clips)" in report and "## compositional (2 clips)" in report
    assert "| beam search (3 beams) |" in report and "Semantic accuracy" in report


def test_rescoring_reuses_the_plain_beam_of_the_slam_candidates():
    model, processor = tiny_captioner()
    clips = [{"array": clip, "sampling_rate": 16000} for clip in audio_clips()]
    scorer = LengthPreferringScorer()
    both = plan_captioning(model, (BEAM_SEARCH, CLAP_RESCORING), CandidateOptions(), {})
    assert both.reuse_beam == 3  # the generation config's beam search is the 'beams=3' candidate
    outputs = caption_batch(model, processor, scorer, clips, both)
    plain = caption_batch(model, processor, None, clips, plan_captioning(model, (BEAM_SEARCH,), CandidateOptions(), {}))
    assert [r["prediction"] for r in outputs[BEAM_SEARCH]] == [r["prediction"] for r in plain[BEAM_SEARCH]]

    for record in outputs[CLAP_RESCORING]:
        candidates = record["candidates"]
        keys = [normalize_caption(c["caption"]) for c in candidates]
        assert len(set(keys)) == len(keys)  # duplicates merged, their origins listed together
        assert {o for c in candidates for o in c["origin"].split(",")} == {f"beams={k}" for k in range(2, 9)}
        # the stand-in scorer prefers the longest caption; candidates come best first
        assert record["prediction"] == candidates[0]["caption"] == max((c["caption"] for c in candidates), key=len)
        assert all({"clap_score", "score", "log_prob"} <= set(c) for c in candidates)
        assert [c["score"] for c in candidates] == sorted((c["score"] for c in candidates), reverse=True)

    other = plan_captioning(model, (BEAM_SEARCH, CLAP_RESCORING), CandidateOptions(), {"num_beams": 10})
    assert other.reuse_beam is None and "beam size 10" in other.reuse_reason
    sampled = plan_captioning(model, (BEAM_SEARCH, CLAP_RESCORING), CandidateOptions(strategy="sample"), {})
    assert sampled.reuse_beam is None and "'sample'" in sampled.reuse_reason
    separate = caption_batch(model, processor, scorer, clips[:1], other)
    assert set(separate) == {BEAM_SEARCH, CLAP_RESCORING}
    assert separate[BEAM_SEARCH][0]["candidates"][0]["origin"] == "beams=10"


def save_tiny_clap(folder):
    """A tiny transformers ClapModel folder (model, feature extractor, tokenizer), as `--clap` takes."""
    import torch
    from clap_test_utils import tiny_clap_config, tiny_word_tokenizer
    from transformers import ClapModel

    from modeling_llm_aac.clap_scoring import default_clap_feature_extractor

    torch.manual_seed(0)
    model = ClapModel(tiny_clap_config()).eval()
    model.save_pretrained(folder)
    default_clap_feature_extractor(model.config).save_pretrained(folder)
    tiny_word_tokenizer().save_pretrained(folder)
    return folder


def run_compare_rescoring(captioner_dir, clap, output, *extra):
    """`llm-aac evaluate --compare-rescoring` of 2 in-memory synthetic test clips on CPU; returns the exit status."""
    from llm_aac.cli import main

    return main([
        "evaluate", "--model", str(captioner_dir), "--dataset", "synthetic", "--split", "test", "--max-clips", "2",
        "--compare-rescoring", "--clap", str(clap), "--metrics", "fast", "--num-workers", "0", "--device", "cpu",
        *extra, "--output", str(output),
    ])


def test_cli_compares_beam_search_and_clap_rescoring_in_one_run(tmp_path, captioner_dir):
    output = tmp_path / "compare"
    clap = save_tiny_clap(tmp_path / "clap")
    assert run_compare_rescoring(captioner_dir, clap, output) == 0
    summary = json.loads((output / "metrics.json").read_text())
    assert summary["candidates_reused"] is True
    assert set(summary["splits"]["test"]["systems"]) == {BEAM_SEARCH, CLAP_RESCORING}
    assert summary["systems"][CLAP_RESCORING] == "CLAP rescoring (slam, 7 candidates)"
    assert summary["decoding"][CLAP_RESCORING]["clap"]["backend"] == "transformers"
    rescored = read_jsonl(output / "predictions-clap_rescoring.jsonl")
    plain = read_jsonl(output / "predictions-beam_search.jsonl")
    assert len(rescored) == len(plain) == 2 and all(set(r) == RECORD_KEYS for r in rescored)
    assert [r["file"] for r in rescored] == [r["file"] for r in plain] == ["synth_test_000000.flac", "synth_test_000001.flac"]
    for record in rescored:
        assert record["prediction"] == record["candidates"][0]["caption"]
        assert all(-1.0 <= c["clap_score"] <= 1.0 for c in record["candidates"])
    report = (output / "metrics.md").read_text()
    assert "| CLAP rescoring (slam, 7 candidates) |" in report and "read off the candidates: True" in report
    headroom = summary["splits"]["test"]["systems"][CLAP_RESCORING]["candidate_headroom"]
    assert headroom["clips"] == 2 and headroom["worst"] <= headroom["picked"] <= headroom["oracle"]
    assert "Candidate headroom (cider_d" in report


def test_bad_requests_fail_clearly(tmp_path, captioner_dir):
    with pytest.raises(ValueError, match="--data-dir is required for clotho"):
        load_evaluation_split("clotho", "evaluation")
    with pytest.raises(ValueError, match="pass --clap"):
        evaluate_captioner(captioner_dir, "synthetic", ["test"], output_dir=tmp_path / "x", metrics="fast",
                           systems=(BEAM_SEARCH, CLAP_RESCORING), max_clips=1, device="cpu", progress=False)
    with pytest.raises(ValueError, match="not a folder"):
        evaluate_captioner(tmp_path / "missing", "synthetic", ["test"], output_dir=tmp_path / "y", max_clips=1)
    with pytest.raises(ValueError, match="systems"):
        plan_captioning(None, ("nucleus",), CandidateOptions(), {})


def rescored_record(references, candidates):
    """A CLAP-rescoring record: candidates as (caption, clap_score, log_prob), in the scorer's order."""
    entries = [{"index": i, "caption": c, "clap_score": clap, "log_prob": lp, "score": clap, "origin": ""}
               for i, (c, clap, lp) in enumerate(candidates)]
    entries.sort(key=lambda e: (-e["score"], e["index"]))
    return {"file": "x.flac", "split": "validation", "prediction": entries[0]["caption"], "candidates": entries,
            "references": references}


def test_repick_follows_the_fused_score_and_breaks_ties_to_the_earlier_candidate():
    from llm_aac.eval.evaluate_captioner import repick_with_lm_weight

    record = rescored_record(["a dog barks"], [("a cat meows", 0.9, -3.0), ("a dog barks", 0.5, -0.5),
                                               ("a dog barks loudly", 0.5, -0.5)])
    assert repick_with_lm_weight([record], 0.0)[0]["prediction"] == "a cat meows"
    # 0.5 + 1 * -0.5 = 0.0 beats 0.9 - 3.0; the two tied candidates go to the earlier one.
    repicked = repick_with_lm_weight([record], 1.0)[0]
    assert repicked["prediction"] == "a dog barks"
    assert [c["caption"] for c in repicked["candidates"]] == ["a dog barks", "a dog barks loudly", "a cat meows"]
    assert repicked["candidates"][0]["score"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="finite"):
        repick_with_lm_weight([record], float("nan"))
    with pytest.raises(ValueError, match="no CLAP-scored candidates"):
        repick_with_lm_weight([{**record, "candidates": [{"caption": "a", "log_prob": 0.0}]}], 0.0)


SCENES = ["a dog barks twice", "rain falls on a roof", "a car engine hums", "a bell rings three times"]


def misled_records(wrong_log_prob: float, annotate=None) -> list[dict]:
    """One record per scene of `SCENES` whose CLAP score prefers the next scene's caption by 0.2; the right caption's
    log-probability is -1.0, the wrong one's `wrong_log_prob`. `annotate(record, scene)` adds what else decides."""
    records = []
    for index, scene in enumerate(SCENES):
        wrong = SCENES[(index + 1) % len(SCENES)]
        record = rescored_record([scene, scene + " loudly"], [(wrong, 0.7, wrong_log_prob), (scene, 0.5, -1.0)])
        if annotate is not None:
            annotate(record, scene)
        records.append(record)
    return records


def test_tuning_chooses_the_smallest_weight_with_the_best_ranking_metric():
    from llm_aac.eval.evaluate_captioner import tune_lm_weight

    # The wrong caption's log-probability is lower by 1.0: weights >= 0.25 fix CLAP's pick.
    records = misled_records(-2.0)
    tuning = tune_lm_weight(records, [1.0, 0.0, 0.1, 0.25, 2.0], "fast")
    assert tuning["weights"] == [0.0, 0.1, 0.25, 1.0, 2.0] and tuning["metric"] == "cider_d"
    assert tuning["scores"][0] == tuning["scores"][1] < tuning["scores"][2] == tuning["scores"][3]
    assert tuning["chosen"] == 0.25
    with pytest.raises(ValueError, match="no lm_weight"):
        tune_lm_weight(records, [], "fast")


def test_tuning_ranks_by_cider_d_where_the_sets_ranking_metric_cannot_run(monkeypatch, tmp_path):
    import huggingface_hub.constants

    from llm_aac.eval.evaluate_captioner import tune_lm_weight

    # dcase2024 ranks by FENSE, whose model is not in this (empty) Hub cache and cannot be downloaded offline.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("FENSE_DATA", str(tmp_path / "fense_data"))
    records = misled_records(-2.0)
    tuning = tune_lm_weight(records, [0.0, 0.25], "dcase2024", tokenize=False)
    assert tuning["metric"] == "cider_d" and tuning["chosen"] == 0.25
    assert tuning["scores"] == tune_lm_weight(records, [0.0, 0.25], "fast")["scores"]


def test_consensus_joins_the_repick_and_the_tuning_grid():
    from llm_aac.eval.evaluate_captioner import repick_with_lm_weight, tune_lm_weight

    def with_consensus(record, scene):
        for entry in record["candidates"]:
            entry["consensus"] = 0.8 if entry["caption"] == scene else 0.2

    # CLAP and the log-probability prefer the wrong caption; only consensus (0.6 higher) fixes it, at consensus
    # weights > 1/3.
    records = misled_records(-0.5, with_consensus)
    assert repick_with_lm_weight(records, 0.0)[0]["prediction"] == SCENES[1]
    assert repick_with_lm_weight(records, 0.0, 0.5)[0]["prediction"] == SCENES[0]
    tuning = tune_lm_weight(records, [0.0, 1.0], "fast", consensus_weights=[2.0, 0.0, 0.25, 0.5])
    assert tuning["consensus_weights"] == [0.0, 0.25, 0.5, 2.0] and len(tuning["scores"]) == 8
    assert tuning["pairs"][:2] == [[0.0, 0.0], [1.0, 0.0]]
    assert (tuning["chosen"], tuning["chosen_consensus_weight"]) == (0.0, 0.5)  # ties: the smaller weights
    no_consensus = [dict(r, candidates=[{k: v for k, v in c.items() if k != "consensus"} for c in r["candidates"]])
                    for r in records]
    with pytest.raises(ValueError, match="no consensus scores for consensus_weight=0.5"):
        repick_with_lm_weight(no_consensus, 0.0, 0.5)
    with pytest.raises(ValueError, match="no consensus_weight"):
        tune_lm_weight(records, [0.0], "fast", consensus_weights=[])


def test_the_consensus_temperature_joins_the_tuning_grid():
    from llm_aac.eval.evaluate_captioner import tune_rescoring, with_consensus_at

    def with_consensus_per_temperature(record, scene):
        for entry in record["candidates"]:
            entry["consensus_by_temperature"] = {"1": 0.3, "0.5": 0.9 if entry["caption"] == scene else 0.1}
        record["pseudo_references_by_temperature"] = {"1": ["a cat"], "0.5": [scene]}

    # CLAP and the log-probability prefer the wrong caption; only the consensus of the samples drawn at temperature
    # 0.5 prefers the right one.
    records = misled_records(-0.5, with_consensus_per_temperature)
    tuning = tune_rescoring(records, [0.0], "fast", consensus_weights=[0.0, 1.0], temperatures=[1.0, 0.5, 1.0])
    assert tuning["temperatures"] == [1.0, 0.5] and tuning["chosen_temperature"] == 0.5
    assert tuning["chosen_consensus_weight"] == 1.0 and tuning["pairs"] == [[0.0, 0.0], [0.0, 1.0]]
    at_one, at_half = tuning["scores_by_temperature"]["1"], tuning["scores_by_temperature"]["0.5"]
    assert at_one[0] == at_one[1] == at_half[0] < at_half[1] == tuning["scores"][1]
    chosen = with_consensus_at(records, 0.5)[0]
    assert chosen["pseudo_references"] == [SCENES[0]]
    assert sorted(c["consensus"] for c in chosen["candidates"]) == [0.1, 0.9]
    # Without temperatures it is tune_lm_weight's sweep, on the records' own consensus.
    plain = tune_rescoring(with_consensus_at(records, 1.0), [0.0], "fast", consensus_weights=[0.0, 1.0])
    assert "chosen_temperature" not in plain and plain["scores"] == at_one
    with pytest.raises(ValueError, match="no consensus with captions sampled at temperature 0.7"):
        with_consensus_at(records, 0.7)


def test_the_temperature_sweep_tokenises_the_captions_once(monkeypatch):
    import llm_aac.eval.caption_metrics as caption_metrics
    from llm_aac.eval.evaluate_captioner import tune_rescoring

    def with_consensus_per_temperature(record, scene):
        for entry in record["candidates"]:
            entry["consensus_by_temperature"] = {"1": 0.5, "0.5": 0.9 if entry["caption"] == scene else 0.1}

    calls = []
    monkeypatch.setattr(caption_metrics, "ptb_tokenize", lambda texts: calls.append(len(texts)) or
                        [text.lower().rstrip(".") for text in texts])
    records = misled_records(-0.5, with_consensus_per_temperature)
    tuning = tune_rescoring(records, [0.0], "fast", consensus_weights=[1.0], temperatures=[1.0, 0.5], tokenize=True)
    assert len(calls) == 1 and tuning["chosen_temperature"] == 0.5


def test_cli_samples_captions_and_tunes_both_weights(tmp_path, captioner_dir):
    output = tmp_path / "consensus"
    clap = save_tiny_clap(tmp_path / "clap")
    assert run_compare_rescoring(captioner_dir, clap, output, "--pseudo-references", "4", "--tune-lm-weight",
                                 "validation", "--lm-weights", "0,1", "--consensus-weights", "0,2") == 0
    summary = json.loads((output / "metrics.json").read_text())
    tuning = summary["lm_weight_tuning"]
    assert tuning["pairs"] == [[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [1.0, 2.0]] and len(tuning["scores"]) == 4
    decoding = summary["decoding"][CLAP_RESCORING]
    assert decoding["num_pseudo_references"] == 4
    assert (decoding["lm_weight"], decoding["consensus_weight"]) == (tuning["chosen"], tuning["chosen_consensus_weight"])
    for record in read_jsonl(output / "predictions-clap_rescoring.jsonl"):
        fused = [c["clap_score"] + tuning["chosen"] * c["log_prob"] + tuning["chosen_consensus_weight"] * c["consensus"]
                 for c in record["candidates"]]
        assert all(0.0 <= c["consensus"] <= 1.0 for c in record["candidates"])
        assert record["prediction"] == record["candidates"][0]["caption"] and fused[0] == pytest.approx(max(fused))
    assert "consensus_weight" in (output / "metrics.md").read_text()
    assert summary["systems"][CLAP_RESCORING] == "CLAP rescoring (slam, 7 candidates, consensus with 4 samples)"
    with pytest.raises(ValueError, match="--consensus-weights must be comma-separated numbers"):
        run_compare_rescoring(captioner_dir, clap, tmp_path / "bad", "--pseudo-references", "4",
                              "--consensus-weights", "a,b")


def test_cli_chooses_the_consensus_temperature_on_validation(tmp_path, captioner_dir):
    output = tmp_path / "temperatures"
    clap = save_tiny_clap(tmp_path / "clap")
    assert run_compare_rescoring(captioner_dir, clap, output, "--pseudo-references", "3", "--tune-lm-weight",
                                 "validation", "--lm-weights", "0,1", "--consensus-weights", "0,2",
                                 "--pseudo-reference-temperatures", "1,0.5") == 0
    summary = json.loads((output / "metrics.json").read_text())
    tuning = summary["lm_weight_tuning"]
    assert tuning["split"] == "validation" and tuning["temperatures"] == [1.0, 0.5]
    assert set(tuning["scores_by_temperature"]) == {"1", "0.5"}
    best = max(range(2), key=lambda i: (max(tuning["scores_by_temperature"][["1", "0.5"][i]]), -i))
    assert tuning["chosen_temperature"] == [1.0, 0.5][best]
    decoding = summary["decoding"][CLAP_RESCORING]
    assert decoding["pseudo_reference_temperature"] == tuning["chosen_temperature"]
    assert list(summary["splits"]) == ["test"]  # validation only chose
    records = read_jsonl(output / "predictions-clap_rescoring.jsonl")
    assert [r["split"] for r in records] == ["test", "test"]
    for record in records:
        assert len(record["pseudo_references"]) == 3 and "pseudo_references_by_temperature" not in record
        assert all("consensus_by_temperature" not in c for c in record["candidates"])
    assert "sampling temperature" in (output / "metrics.md").read_text()
    from llm_aac.eval.evaluate_captioner import evaluate_captioner

    with pytest.raises(ValueError, match="chosen among on a tuning split"):
        evaluate_captioner(captioner_dir, "synthetic", ["test"], output_dir=tmp_path / "bad", metrics="fast",
                           systems=(BEAM_SEARCH, CLAP_RESCORING), clap=str(clap), max_clips=1, device="cpu",
                           progress=False, candidate_options=CandidateOptions(strategy="single",
                                                                              num_pseudo_references=2),
                           pseudo_reference_temperatures=[1.0, 0.5])


def test_cli_tunes_the_lm_weight_on_validation_and_scores_test_with_it(tmp_path, captioner_dir):
    output = tmp_path / "tuned"
    clap = save_tiny_clap(tmp_path / "clap")
    assert run_compare_rescoring(captioner_dir, clap, output, "--tune-lm-weight", "validation",
                                 "--lm-weights", "0,0.5,3") == 0
    summary = json.loads((output / "metrics.json").read_text())
    tuning = summary["lm_weight_tuning"]
    assert tuning["split"] == "validation" and tuning["weights"] == [0.0, 0.5, 3.0] and len(tuning["scores"]) == 3
    assert tuning["chosen"] in tuning["weights"]
    assert summary["decoding"][CLAP_RESCORING]["lm_weight"] == tuning["chosen"]
    assert list(summary["splits"]) == ["test"]  # the tuning split is not reported as a result
    rescored = read_jsonl(output / "predictions-clap_rescoring.jsonl")
    assert {r["split"] for r in rescored} == {"test"}
    for record in rescored:
        fused = [c["clap_score"] + tuning["chosen"] * c["log_prob"] for c in record["candidates"]]
        assert record["prediction"] == record["candidates"][0]["caption"] and fused[0] == pytest.approx(max(fused))
    assert "chosen on the validation split" in (output / "metrics.md").read_text()
    with pytest.raises(ValueError, match="either lm_weight"):
        evaluate_captioner(captioner_dir, "synthetic", ["test"], output_dir=tmp_path / "z", metrics="fast", clap=clap,
                           lm_weight=0.5, tune_lm_weight_on="validation", max_clips=1, device="cpu", progress=False)
    with pytest.raises(ValueError, match="needs the clap_rescoring system"):
        evaluate_captioner(captioner_dir, "synthetic", ["test"], output_dir=tmp_path / "w", metrics="fast",
                           tune_lm_weight_on="validation", max_clips=1, device="cpu", progress=False)


def test_evaluation_candidates_default_to_the_ones_saved_with_the_captioner(tmp_path):
    from llm_aac.eval.evaluate_captioner import saved_candidate_defaults

    assert saved_candidate_defaults(tmp_path) == {"strategy": "slam"}  # nothing saved: SLAM-AAC's
    settings = {"defaults": {"candidates": "single", "num_candidates": 5, "beam_sizes": [2, 3]}, "clap": None}
    (tmp_path / "audio_captioning.json").write_text(json.dumps(settings))
    options = saved_candidate_defaults(tmp_path)
    assert options == {"strategy": "single", "num_candidates": 5, "beam_sizes": (2, 3)}
    assert CandidateOptions(**options).candidates_per_clip == 5


def test_predictions_stay_one_line_per_clip_whatever_the_captions_hold(tmp_path):
    from llm_aac.eval.evaluate_captioner import write_jsonl

    odd = "a bell\u2028rings\u0085 twice \u00e9t\u00e9"  # a sampled caption of an untrained captioner can hold these
    record = {"file": "a.flac", "split": "test", "prediction": odd, "candidates": [], "references": ["r"],
              "pseudo_references": [odd, "x"]}
    write_jsonl(str(tmp_path / "p.jsonl"), [record, record])
    lines = (tmp_path / "p.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and json.loads(lines[1]) == record
