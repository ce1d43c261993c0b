"""`llm-aac demo`: the whole recipe end to end (`--quick`), the saved pipeline folder, and stage failures."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from llm_aac.cli import main
from llm_aac.demo import ERROR_LOG, REPORT_FILE, SIZES, check_output_folder

STAGES = ("synthesize corpus", "CWT features", "EAT pretraining", "tokenizer + text LM", "captioner", "CLAP",
          "save model folder", "caption + evaluate")


@pytest.mark.slow
def test_quick_demo_end_to_end_and_saved_pipeline(tmp_path):
    output = tmp_path / "captioner"
    environment = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    completed = subprocess.run(
        [sys.executable, "-m", "llm_aac.cli", "demo", "--quick", "--output", str(output),
         "--work-dir", str(tmp_path / "work")],
        capture_output=True, text=True, env=environment, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    out = completed.stdout
    for number, stage in enumerate(STAGES, start=1):
        assert f"[{number}/{len(STAGES)}] {stage} done in" in out
    # the default candidates: one 7-beam search's 7 hypotheses (SLAM-AAC's 7 searches are the alternative)
    assert "| beam search (4 beams) |" in out and "| CLAP rescoring (single, 7 candidates, consensus with 32 samples) |" in out
    assert "CIDEr-D" in out and "Semantic accuracy" in out and "event_f1" in out
    assert "Captioner training, validation (4 clips, beam 2): loss " in out
    assert "## 5 example captions" in out and out.count("   references     : ") == 5
    assert f'pipeline("audio-captioning", model="{output}", trust_remote_code=True)' in out

    report = json.loads((output / REPORT_FILE).read_text())
    assert list(report["stage_seconds"]) == list(STAGES)
    assert report["total_seconds"] >= sum(report["stage_seconds"].values()) - 1.0
    test_split = report["test_split"]
    assert test_split["num_clips"] == 5
    for system in ("beam_search", "clap_rescoring"):
        scores = test_split["systems"][system]["caption_metrics"]["scores"]
        assert 0.0 <= scores["cider_d"] and "bleu_4" in scores and "rouge_l" in scores
        assert "event_f1" in test_split["systems"][system]["semantic_accuracy"]
    assert len(report["examples"]) == 5 and all(len(e["references"]) == 5 for e in report["examples"])
    assert {"before", "projector", "lora"} <= set(report["captioner_validation"])

    # The saved pipeline rescores the same candidates by default: one beam search with the "single" defaults, and
    # their consensus with as many sampled captions as the evaluation used, at the demo's weight.
    saved = json.loads((output / "audio_captioning.json").read_text())
    assert saved["defaults"] == {"candidates": "single", "num_pseudo_references": SIZES["quick"].pseudo_references,
                                 "pseudo_reference_temperature": SIZES["quick"].consensus_temperatures[0]}
    assert saved["clap"]["consensus_weight"] == SIZES["quick"].consensus_weight > 0
    rescored = [json.loads(line) for line in (tmp_path / "work" / "evaluation" / "predictions-clap_rescoring.jsonl")
                .read_text().splitlines()]
    assert all("consensus" in c for record in rescored for c in record["candidates"])

    # The printed line works: the folder loads as a pipeline (with its CLAP scorer) and captions a clip.
    from transformers import pipeline

    from llm_aac.processing.synthetic import generate_clip

    clip = generate_clip(7, 0, "test")
    captioner = pipeline("audio-captioning", model=str(output), trust_remote_code=True)
    assert captioner.clap_scorer is not None
    result = captioner({"array": clip["audio"], "sampling_rate": clip["sampling_rate"]}, return_candidates=True)
    assert isinstance(result["caption"], str)
    assert len(result["candidates"]) >= 1
    assert all(candidate["origin"].endswith(" of 7") for candidate in result["candidates"]), result["candidates"]
    assert all(0.0 <= candidate["consensus"] <= 1.0 for candidate in result["candidates"])
    plain = captioner(clip["audio"], candidates="none")
    assert isinstance(plain["caption"], str)


def test_rescoring_candidates_default_to_one_beam_search(tmp_path, monkeypatch):
    """The demo (and the GPU recipe's baseline) rescores one 7-beam search's 7 hypotheses; SLAM-AAC's 7 searches
    are the alternative."""
    import llm_aac.eval.evaluate_captioner as evaluate_captioner
    from llm_aac.demo import CANDIDATE_STRATEGIES, DEMO_CHOICES, SIZES, RecipeChoices, evaluate

    assert DEMO_CHOICES.candidates == "single_pass" and CANDIDATE_STRATEGIES["single_pass"] == "single"
    calls = []
    monkeypatch.setattr(evaluate_captioner, "evaluate_captioner", lambda *args, **kwargs: calls.append(kwargs))
    evaluate("model", str(tmp_path), "corpus", SIZES["quick"])
    evaluate("model", str(tmp_path), "corpus", SIZES["quick"], RecipeChoices(candidates="slam"))
    single, slam = (call["candidate_options"] for call in calls)
    assert (single.strategy, single.candidates_per_clip, single.num_beams) == ("single", 7, None)  # 7 beams
    assert (slam.strategy, slam.beam_sizes) == ("slam", (2, 3, 4, 5, 6, 7, 8))
    assert single.num_pseudo_references == slam.num_pseudo_references == SIZES["quick"].pseudo_references > 0
    evaluate("model", str(tmp_path), "corpus", dataclasses.replace(SIZES["quick"], pseudo_references=0))
    assert calls[-1]["candidate_options"].num_pseudo_references == 0


@pytest.mark.parametrize(
    "failure, cause",
    [(ValueError("no space left on the device"), "ValueError: no space left on the device"),
     (SystemExit(2), "SystemExit: exited with status 2")],
)
def test_stage_failure_names_the_stage_and_the_cause(tmp_path, monkeypatch, capsys, failure, cause):
    import llm_aac.processing.synthetic as synthetic

    def failing_synthesis(*args, **kwargs):
        raise failure

    monkeypatch.setattr(synthetic, "synthesize_corpus", failing_synthesis)
    work = tmp_path / "work"
    code = main(["demo", "--quick", "--output", str(tmp_path / "out"), "--work-dir", str(work)])
    err = capsys.readouterr().err
    assert code == 1
    assert "stage 1/8 'synthesize corpus' failed" in err and cause in err
    log = (work / ERROR_LOG).read_text()
    assert cause in log and "Traceback" in log and "failing_synthesis" in log
    assert not (tmp_path / "out").exists()


@pytest.fixture
def captioner_arguments(tmp_path, monkeypatch):
    """Runs `train_captioner` up to its `finetune_aac.main` call; returns that call's `--option value` pairs."""
    from llm_aac.demo import train_captioner
    from llm_aac.train import finetune_aac

    class Stop(Exception):
        pass

    calls = []

    def record(argv):
        calls.append(argv)
        raise Stop

    monkeypatch.setattr(finetune_aac, "main", record)

    def arguments(sizes, choices) -> dict:
        with pytest.raises(Stop):
            train_captioner(str(tmp_path), "features", "eat", "lm", sizes, 0, choices)
        argv = calls[-1]
        return {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--")}

    return arguments


def test_encoder_choices_reach_the_captioner_training(captioner_arguments):
    from llm_aac.demo import SIZES, RecipeChoices

    scratch_frozen = RecipeChoices(encoder_init="scratch", encoder_training="frozen")
    for choices, init, frozen in ((RecipeChoices(), "pretrained", "false"), (scratch_frozen, "scratch", "true")):
        arguments = captioner_arguments(SIZES["quick"], choices)
        assert arguments["--encoder_init"] == init and arguments["--freeze_encoder"] == frozen
        assert arguments["--encoder_path"] == "eat" and float(arguments["--encoder_learning_rate"]) == 0.0
    slower_encoder = dataclasses.replace(SIZES["quick"], encoder_learning_rate=1e-4)
    assert float(captioner_arguments(slower_encoder, RecipeChoices())["--encoder_learning_rate"]) == 1e-4
    assert captioner_arguments(SIZES["quick"], RecipeChoices())["--group_by_duration"] == "false"
    grouped = dataclasses.replace(SIZES["quick"], captioner_group_by_duration=1)
    assert captioner_arguments(grouped, RecipeChoices())["--group_by_duration"] == "true"
    with pytest.raises(ValueError, match="encoder_init must be one of.*encoder_training must be one of"):
        RecipeChoices(encoder_init="random", encoder_training="partly").check()


def test_projector_only_training_is_one_projector_stage_with_the_budget_of_both(captioner_arguments):
    from llm_aac.demo import SIZES, RecipeChoices

    sizes = SIZES["quick"]
    lora = captioner_arguments(sizes, RecipeChoices(training="lora"))
    projector_only = captioner_arguments(sizes, RecipeChoices(training="projector_only"))
    assert lora["--stage"] == "both" and int(lora["--projector_max_steps"]) == sizes.projector_steps
    assert int(lora["--lora_max_steps"]) == sizes.lora_steps
    assert projector_only["--stage"] == "projector" and "--lora_max_steps" not in projector_only
    assert int(projector_only["--projector_max_steps"]) == sizes.projector_steps + sizes.lora_steps
    assert float(projector_only["--projector_max_minutes"]) == pytest.approx(sizes.projector_minutes + sizes.lora_minutes)


def test_refuses_a_folder_it_did_not_write(tmp_path, capsys):
    output = tmp_path / "mine"
    output.mkdir()
    (output / "notes.txt").write_text("keep me")
    code = main(["demo", "--quick", "--output", str(output)])
    err = capsys.readouterr().err
    assert code == 2
    assert "was not written by `llm-aac demo`" in err and str(output) in err
    assert (output / "notes.txt").read_text() == "keep me"

    earlier = tmp_path / "earlier-demo"  # a folder an earlier demo wrote may be replaced
    earlier.mkdir()
    (earlier / REPORT_FILE).write_text("{}")
    check_output_folder(str(earlier))
    check_output_folder(str(tmp_path / "new"))

    code = main(["demo", "--quick", "--num-clips", "3", "--output", str(tmp_path / "new")])
    assert code == 2
    assert "--num-clips must be >= 8" in capsys.readouterr().err


def test_tuned_weights_are_written_into_the_saved_folder(tmp_path):
    from llm_aac.demo import keep_tuned_weights

    settings = {"defaults": {"candidates": "single"}, "clap": {"backend": "eat_clap", "lm_weight": 0.0,
                                                               "consensus_weight": 4.0, "name_or_path": "clap"}}
    (tmp_path / "audio_captioning.json").write_text(json.dumps(settings))
    assert keep_tuned_weights(str(tmp_path), {"lm_weight_tuning": None}) is None
    tuning = {"chosen": 0.25, "chosen_consensus_weight": 0.5}
    assert keep_tuned_weights(str(tmp_path), {"lm_weight_tuning": tuning}) == {"lm_weight": 0.25,
                                                                              "consensus_weight": 0.5}
    saved = json.loads((tmp_path / "audio_captioning.json").read_text())
    assert saved["clap"] == {**settings["clap"], "lm_weight": 0.25, "consensus_weight": 0.5}
    assert saved["defaults"] == settings["defaults"]
    # A chosen sampling temperature of the consensus captions becomes a candidate default of the pipeline.
    tuning = {**tuning, "chosen_temperature": 0.5, "temperatures": [1.0, 0.5]}
    assert keep_tuned_weights(str(tmp_path), {"lm_weight_tuning": tuning})["pseudo_reference_temperature"] == 0.5
    saved = json.loads((tmp_path / "audio_captioning.json").read_text())
    assert saved["defaults"] == {**settings["defaults"], "pseudo_reference_temperature": 0.5}
    (tmp_path / "audio_captioning.json").write_text(json.dumps({"defaults": {}, "clap": None}))
    with pytest.raises(ValueError, match="no CLAP scorer settings"):
        keep_tuned_weights(str(tmp_path), {"lm_weight_tuning": tuning})


def test_consensus_temperatures_are_parsed_and_checked():
    from dataclasses import replace

    from llm_aac.demo import SIZES

    quick = SIZES["quick"]
    assert quick.consensus_temperatures == (1.0,)
    sizes = replace(quick, pseudo_reference_temperatures="1, 0.75,0.5,1")
    assert sizes.consensus_temperatures == (1.0, 0.75, 0.5) and sizes.pseudo_reference_temperatures == "1,0.75,0.5"
    assert replace(quick, pseudo_reference_temperatures=0.5).consensus_temperatures == (0.5,)  # a recipe's --set
    for bad in ("", "hot", "1,0", "-1", "nan"):
        with pytest.raises(ValueError, match="pseudo_reference_temperatures must be comma-separated positive"):
            replace(quick, pseudo_reference_temperatures=bad)
