"""train/recipes/synthetic_gpu.py: sizes and their scaling, arguments, the stage cache, the deadline, the results
summary and report; and the whole recipe once at smoke size on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from recipe_modules import RECIPES_DIR, load_recipe_module

recipe = load_recipe_module("synthetic_gpu")


def test_gpu_training_stages_fit_the_issue_budget_and_scale():
    values = recipe.size_values("gpu")
    training = values["eat_minutes"] + values["lm_minutes"] + values["clap_minutes"] + values["projector_minutes"] + \
        values["lora_minutes"]
    assert training <= 15.0  # issue 7 §2: <= 15 minutes of training on one H100
    assert values["eat_config_overrides"].endswith(f"ema_anneal_end_step={values['eat_steps']}")
    assert recipe.worst_case_minutes(values, "gpu") > training  # untimed work is counted too

    scaled = recipe.size_values("gpu", 0.3)
    assert scaled["lora_steps"] == round(values["lora_steps"] * 0.3)
    # the time limit: scaled training minutes + an unscaled allowance for each validation pass (0, 400, ..., 1600)
    allowance = recipe.SIZES["gpu"]["captioner_eval_minutes"]
    assert values["lora_minutes"] == pytest.approx(recipe.SIZES["gpu"]["lora_minutes"] + 5 * allowance)
    assert values["projector_minutes"] == pytest.approx(recipe.SIZES["gpu"]["projector_minutes"] + 2 * allowance)
    assert scaled["lora_minutes"] == pytest.approx(recipe.SIZES["gpu"]["lora_minutes"] * 0.3 + 5 * allowance)
    assert scaled["train_clips"] == 6000 and scaled["test_clips"] == values["test_clips"]  # held-out splits kept
    assert scaled["eat_config_overrides"].endswith(f"ema_anneal_end_step={scaled['eat_steps']}")
    # the EAT stage keeps its length: a shorter one stops before its loss drop and gives a useless encoder
    assert all(scaled[k] == values[k] for k in ("eat_steps", "eat_stop_steps", "eat_minutes"))
    assert 0 < values["eat_stop_steps"] < values["eat_steps"]
    assert recipe.size_values("smoke", 0.01)["train_clips"] == recipe.MIN_TRAIN_CLIPS

    overridden = recipe.size_values("gpu", 1.0, {"lora_steps": 2000, "lora_target_modules": "q_proj,v_proj"})
    assert overridden["lora_steps"] == 2000 and overridden["lora_target_modules"] == "q_proj,v_proj"
    for bad in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="budget scale must be a positive number"):
            recipe.size_values("gpu", bad)
    with pytest.raises(ValueError, match="unknown size"):
        recipe.size_values("huge")


def test_probe_sizes_are_recipe_fields_checked_and_counted():
    values = recipe.size_values("gpu", 0.3)
    assert (values["probe_train_clips"], values["probe_eval_clips"]) == (2000, 500)  # not scaled
    assert recipe.parse_overrides(["probe_train_clips=0"]) == {"probe_train_clips": 0}
    with_probe = recipe.stage_minutes(values, "gpu")
    assert with_probe["probe"] > with_probe["captioner_probe"] > 0
    without = recipe.stage_minutes(recipe.size_values("gpu", 0.3, {"probe_train_clips": 0}), "gpu")
    assert without["probe"] == without["captioner_probe"] == 0
    assert recipe.worst_case_minutes(values, "gpu") == pytest.approx(
        recipe.worst_case_minutes({**values, "probe_train_clips": 0}, "gpu") + with_probe["probe"] +
        with_probe["captioner_probe"])
    for bad in ({"probe_train_clips": 1}, {"probe_train_clips": -5}, {"probe_eval_clips": 0}):
        with pytest.raises(ValueError, match="probe_train_clips must be 0"):
            recipe.size_values("gpu", 1.0, bad)


def test_encoder_knobs_keep_the_baseline_captioner_key():
    settings = {"eat": {"seed": 0}, "projector": "linear", "training": "lora", "lora_steps": 10}
    name, kept = recipe.captioner_cache_entry(recipe.BASELINE, settings)
    # the key the captioner had before the encoder knobs existed: earlier runs' stages stay reusable
    assert name == "captioner-cwt-linear-lora" and kept == settings
    name, changed = recipe.captioner_cache_entry(
        {**recipe.BASELINE, "features": "fbank", "encoder_init": "scratch", "encoder_training": "frozen"}, settings)
    assert name == "captioner-fbank-linear-lora-scratch-frozen"
    assert changed == {**settings, "encoder_init": "scratch", "encoder_training": "frozen"}
    assert recipe.StageCache.key(name, changed) != recipe.StageCache.key(name, settings)
    args = recipe.resolve_arguments(["--output", "x", "--smoke", "--encoder-init", "scratch",
                                     "--encoder-training", "frozen"])
    knobs = {name: getattr(args, name) for name in recipe.KNOBS}
    assert (args.encoder_init, args.encoder_training) == ("scratch", "frozen")
    assert recipe.run_label(knobs) == "scratch+frozen"


def test_candidates_baseline_is_single_pass_and_slam_keeps_the_baseline_captioner_key():
    # One beam search's n-best list is the baseline; SLAM-AAC's 7 searches are the alternative, decoding only.
    assert recipe.BASELINE["candidates"] == "single_pass" and recipe.KNOBS["candidates"] == ("single_pass", "slam")
    settings = {"eat": {"seed": 0}, "projector": "linear", "training": "lora", "lora_steps": 10}
    args = recipe.resolve_arguments(["--output", "x", "--smoke", "--candidates", "slam"])
    knobs = {name: getattr(args, name) for name in recipe.KNOBS}
    assert knobs == {**recipe.BASELINE, "candidates": "slam"} and recipe.run_label(knobs) == "slam"
    assert recipe.captioner_cache_entry(knobs, settings) == recipe.captioner_cache_entry(recipe.BASELINE, settings) \
        == ("captioner-cwt-linear-lora", settings)


def test_overrides_are_typed_and_checked():
    assert recipe.parse_overrides(["lora_steps=2000", "lora_minutes=4.5", "lm_preset=small",
                                   "eat_config_overrides=ema_decay=0.99"]) == {
        "lora_steps": 2000, "lora_minutes": 4.5, "lm_preset": "small", "eat_config_overrides": "ema_decay=0.99"}
    assert recipe.parse_overrides(["captioner_group_by_duration=1"]) == {"captioner_group_by_duration": 1}
    with pytest.raises(ValueError, match="unknown size field 'lora_stepz'"):
        recipe.parse_overrides(["lora_stepz=3"])
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        recipe.parse_overrides(["lora_steps"])


def test_clap_hard_negative_knob_reaches_the_clap_trainer():
    from llm_aac import demo
    from llm_aac.processing.caption_perturbations import parse_perturbation_kinds
    from llm_aac.train.train_clap import parse_arguments

    def clap_arguments(overrides):
        values = recipe.size_values("gpu", 1.0, recipe.parse_overrides(overrides))
        sizes = demo.DemoSizes(**{k: v for k, v in values.items() if k not in recipe.PROBE_FIELDS})
        argv = demo.clap_training_arguments("out/clap", "features", "eat", sizes, 0)
        return argv, parse_arguments(argv)

    argv, (_, data_args, training_args) = clap_arguments(["clap_hard_negatives=count,order",
                                                          "clap_hard_negative_weight=2"])
    assert (data_args.hard_negatives, training_args.hard_negative_weight) == ("count,order", 2.0)
    assert data_args.hard_negatives_per_clip == 1  # one hard negative per clip unless told
    argv, (_, data_args, _) = clap_arguments(["clap_hard_negatives=count,order,antonym",
                                              "clap_hard_negatives_per_clip=3"])
    assert argv[argv.index("--hard_negatives_per_clip") + 1] == "3" and data_args.hard_negatives_per_clip == 3
    argv, (_, data_args, training_args) = clap_arguments([])  # on by default: one per clip, every kind
    assert (data_args.hard_negatives, data_args.hard_negatives_per_clip, training_args.hard_negative_weight) == (
        "count,order,antonym", 1, 1.0)
    argv, (_, data_args, _) = clap_arguments(["clap_hard_negatives="])  # "": off, the plain InfoNCE of before
    assert not any(a.startswith("--hard_negative") for a in argv) and data_args.hard_negatives == ""
    # "none": plain InfoNCE under a CLAP cache key of its own (a fresh baseline that logs the hard-negative accuracy)
    argv, (_, data_args, _) = clap_arguments(["clap_hard_negatives=none"])
    assert argv[argv.index("--hard_negatives") + 1] == "none" and parse_perturbation_kinds(data_args.hard_negatives) == ()
    # a bad value stops the recipe when its sizes are made, not after the stages before the CLAP one
    with pytest.raises(ValueError, match=r"unknown hard-negative kind\(s\) \['colour'\]"):
        clap_arguments(["clap_hard_negatives=colour"])
    with pytest.raises(ValueError, match="clap_hard_negative_weight must be a finite number >= 0, got -1"):
        clap_arguments(["clap_hard_negatives=count", "clap_hard_negative_weight=-1"])
    with pytest.raises(ValueError, match="clap_hard_negatives_per_clip must be an integer >= 1, got 0"):
        clap_arguments(["clap_hard_negatives=count", "clap_hard_negatives_per_clip=0"])


def test_consensus_settings_are_checked_when_the_sizes_are_made():
    import dataclasses

    from llm_aac.demo import SIZES

    assert recipe.size_values("gpu", 1.0, {})["pseudo_references"] == 64 and SIZES["full"].consensus_weight == 4.0
    assert recipe.size_values("gpu", 1.0, {"pseudo_references": 0})["pseudo_references"] == 0  # off
    with pytest.raises(ValueError, match="pseudo_references must be an integer >= 0, got -2"):
        dataclasses.replace(SIZES["full"], pseudo_references=-2)
    with pytest.raises(ValueError, match="consensus_weight must be a finite number >= 0, got nan"):
        dataclasses.replace(SIZES["full"], consensus_weight=float("nan"))


def test_clap_cache_key_holds_the_hard_negative_settings_only_when_on():
    import dataclasses

    from llm_aac import demo

    def key(overrides):
        values = recipe.size_values("gpu", 1.0, recipe.parse_overrides(overrides))
        sizes = demo.DemoSizes(**{k: v for k, v in values.items() if k not in recipe.PROBE_FIELDS})
        return recipe.clap_cache_values(dataclasses.asdict(sizes))

    plain = key(["clap_hard_negatives="])
    assert "clap_batch_size" in plain and not any(k.startswith("clap_hard_negative") for k in plain)
    # no hard negatives: the knob changes nothing
    assert key(["clap_hard_negatives=", "clap_hard_negatives_per_clip=3"]) == plain
    assert key([]) == key(["clap_hard_negatives=count,order,antonym"]) != plain  # the default is on
    one = key(["clap_hard_negatives=count"])
    three = key(["clap_hard_negatives=count", "clap_hard_negatives_per_clip=3"])
    assert (one["clap_hard_negatives_per_clip"], three["clap_hard_negatives_per_clip"]) == (1, 3) and one != three


def test_arguments_defaults_and_errors(monkeypatch, capsys):
    args = recipe.resolve_arguments(["--output", "x", "--smoke"])
    assert (args.size, args.device, args.feature_device, args.dataloader_workers, args.threads) == (
        "smoke", "cpu", "cpu", 0, 1)
    assert (args.features, args.projector, args.training, args.candidates) == ("cwt", "linear", "lora", "single_pass")
    assert (args.encoder_init, args.encoder_training) == ("pretrained", "trained")
    args = recipe.resolve_arguments(["--output", "x", "--features", "fbank", "--feature-device", "cpu"])
    assert (args.size, args.device, args.feature_device, args.dataloader_workers) == ("gpu", "cuda", "cpu", 4)

    for argv, message in (
        (["--deadline-minutes", "0"], "--deadline-minutes must be > 0"),
        (["--budget-scale", "-2"], "budget scale must be a positive number"),
        (["--set", "nope=1"], "unknown size field 'nope'"),
        (["--lm-caption-file", "/no/such/captions.csv"], "does not exist"),
        (["--device", "tpu"], "--device must be cpu or cuda"),
    ):
        with pytest.raises(SystemExit) as raised:
            recipe.resolve_arguments(["--output", "x", *argv])
        assert raised.value.code == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        recipe.resolve_arguments(["--output", "x", "--features", "mfcc"])  # argparse choices
    capsys.readouterr()
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit):
        recipe.resolve_arguments(["--output", "x"])
    assert "runs in one process (WORLD_SIZE=2)" in capsys.readouterr().err


def test_run_labels():
    assert recipe.run_label(recipe.BASELINE) == "baseline"
    assert recipe.run_label({**recipe.BASELINE, "features": "fbank"}) == "fbank"
    assert recipe.run_label({**recipe.BASELINE, "projector": "qformer", "candidates": "slam"}) == "qformer+slam"


def test_output_folder_of_someone_else_is_refused(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    with pytest.raises(ValueError, match="not written by this recipe"):
        recipe.check_output_folder(str(foreign))
    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / recipe.RUN_MARKER).write_text("{}")
    recipe.check_output_folder(str(ours))
    recipe.check_output_folder(str(tmp_path / "new"))
    assert recipe.main(["--output", str(foreign), "--smoke"]) == 2


def test_stage_cache_builds_once_and_rebuilds_after_a_failure(tmp_path):
    cache = recipe.StageCache(str(tmp_path / "cache"))
    calls = []

    def build(folder):
        calls.append(folder)
        os.makedirs(os.path.join(folder, "model"))
        return os.path.join(folder, "model"), {"loss": 1.5}

    first = cache.get_or_build("lm", {"seed": 0}, build)
    again = cache.get_or_build("lm", {"seed": 0}, build)
    other = cache.get_or_build("lm", {"seed": 1}, build)
    assert len(calls) == 2 and not first.reused and again.reused and not other.reused
    assert again.result == first.result and again.extra == {"loss": 1.5} and other.folder != first.folder

    def failing(folder):
        with open(os.path.join(folder, "partial"), "w") as f:
            f.write("half")
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        cache.get_or_build("eat", {"seed": 0}, failing)
    rebuilt = cache.get_or_build("eat", {"seed": 0}, lambda folder: folder)
    assert not rebuilt.reused and not os.path.exists(os.path.join(rebuilt.folder, "partial"))

    # A deadline check runs before a build, never before a reuse.
    def refuse():
        raise recipe.DeadlineReached("too late")

    assert cache.get_or_build("lm", {"seed": 0}, build, before_build=refuse).reused
    with pytest.raises(recipe.DeadlineReached):
        cache.get_or_build("clap", {"seed": 0}, build, before_build=refuse)


def test_stage_cache_makes_a_second_user_wait_for_the_build(tmp_path):
    cache = recipe.StageCache(str(tmp_path))
    events = []

    def slow_build(folder):
        events.append("build start")
        time.sleep(0.5)
        events.append("build end")
        return folder

    builder = threading.Thread(target=lambda: cache.get_or_build("corpus", {"clips": 8}, slow_build))
    builder.start()
    while "build start" not in events:
        time.sleep(0.01)
    waited = cache.get_or_build("corpus", {"clips": 8}, slow_build)  # blocks on the lock, then reuses
    builder.join()
    assert waited.reused and events == ["build start", "build end"]


def test_deadline():
    deadline = recipe.Deadline(10.0, started=time.monotonic() - 8 * 60)
    deadline.check("CLAP", 1.5)
    with pytest.raises(recipe.DeadlineReached, match="stopped before 'captioner'.*10.0-minute deadline"):
        deadline.check("captioner", 2.5)
    recipe.Deadline(None).check("anything", 1e6)


def _evaluation(beam_cider, clap_cider, clap_f1):
    def system(cider, f1):
        return {"caption_metrics": {"scores": {"cider_d": cider, "bleu_4": 0.3, "rouge_l": 0.5},
                                    "skipped": {"meteor": "java not found"}, "num_blank_predictions": 0},
                "semantic_accuracy": {"event_f1": f1, "count_accuracy": 0.8, "order_accuracy": 0.7}}

    return {"splits": {split: {"num_clips": 10, "systems": {"beam_search": system(beam_cider, 0.8),
                                                            "clap_rescoring": system(clap_cider, clap_f1)}}
                       for split in ("test", "compositional")}}


def test_summary_and_targets():
    splits = recipe.summarize_evaluation(_evaluation(1.5, 1.65, 0.95))
    test = splits["test"]
    assert test["rescoring_gain_cider_d"] == pytest.approx(0.1)
    assert test["clap_rescoring"]["event_f1"] == 0.95 and test["beam_search"]["skipped_metrics"] == {
        "meteor": "java not found"}
    targets = recipe.judge_targets(splits)
    assert [t["name"] for t in targets] == ["cider_d", "event_f1", "rescoring_gain"]
    assert all(t["passed"] for t in targets)

    failing = recipe.judge_targets(recipe.summarize_evaluation(_evaluation(1.6, 1.62, 0.85)))
    assert [t["passed"] for t in failing] == [True, False, False]
    no_gain = recipe.summarize_evaluation(_evaluation(0.0, 0.2, 0.1))["test"]["rescoring_gain_cider_d"]
    assert no_gain is None  # relative to a zero baseline: undefined, and the target fails
    assert not recipe.judge_targets(recipe.summarize_evaluation(_evaluation(0.0, 0.2, 0.1)))[2]["passed"]


@pytest.mark.slow
def test_smoke_recipe_end_to_end(tmp_path, monkeypatch):
    """The whole chain at toy size (~40 s on a 2-core machine): every stage, the results files, the model folder."""
    output = tmp_path / "run"
    environment = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    completed = subprocess.run(
        [sys.executable, os.path.join(RECIPES_DIR, "synthetic_gpu.py"), "--smoke", "--output", str(output),
         "--no-progress", "--workers", "1"],
        capture_output=True, text=True, env=environment, timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    stages = ("synthesize corpus", "features", "EAT pretraining", "encoder probe", "tokenizer + text LM", "CLAP",
              "captioner", "captioner encoder probe", "save model folder", "caption + evaluate")
    for number, name in enumerate(stages, start=1):
        assert f"[{number}/10] {name} done in" in completed.stdout
    assert "## Targets (test split)" in completed.stdout and "targets: not all met" in completed.stdout

    results = json.loads((output / recipe.RESULTS_FILE).read_text())
    assert results["label"] == "baseline" and results["config"]["size"] == "smoke"
    assert set(results["splits"]) == {"test", "compositional"}
    assert results["splits"]["test"]["num_clips"] == 5 and results["splits"]["compositional"]["num_clips"] == 4
    for system in ("beam_search", "clap_rescoring"):
        assert {"cider_d", "bleu_4", "rouge_l", "event_f1", "count_accuracy"} <= set(results["splits"]["test"][system])
    assert [t["name"] for t in results["targets"]] == ["cider_d", "event_f1", "rescoring_gain"]
    curve = results["audio_gain_curve"]
    assert [e["stage"] for e in curve][:1] == ["projector"] and curve[-1]["stage"] == "lora"
    assert all("eval_audio_gain" in e for e in curve)
    assert results["training"]["captioner lora"]["steps_done"] == results["sizes"]["lora_steps"]
    assert len(results["stages"]) == 10 and not any(stage["reused"] for stage in results["stages"])
    report = (output / recipe.REPORT_FILE).read_text()
    assert report.startswith("# Synthetic recipe run `baseline`")
    headroom = results["splits"]["test"]["candidate_headroom"]
    assert headroom["clips"] == 5 and headroom["worst"] <= headroom["oracle"]
    assert "Candidate headroom (cider_d" in report
    assert (output / recipe.CURVES_FILE).stat().st_size > 10_000
    assert (output / recipe.MODEL_DIR / "config.json").is_file()
    # The baseline rescores one 7-beam search's hypotheses, and its saved pipeline does so by default.
    assert results["config"]["candidates"] == "single_pass" and "| CLAP rescoring (single_pass) |" in report
    # ... fused with each candidate's consensus with sampled captions, both weights and the samples' temperature
    # chosen on validation.
    saved = json.loads((output / recipe.MODEL_DIR / "audio_captioning.json").read_text())
    samples = results["sizes"]["pseudo_references"]
    tuning = json.loads((output / "evaluation" / "metrics.json").read_text())["lm_weight_tuning"]
    assert tuning["temperatures"] == [1.0, 0.5] and tuning["chosen_temperature"] in (1.0, 0.5)
    assert samples > 0 and saved["defaults"] == {"candidates": "single", "num_pseudo_references": samples,
                                                 "pseudo_reference_temperature": tuning["chosen_temperature"]}
    assert tuning["split"] == "validation" and len(tuning["pairs"]) > len(tuning["weights"])  # consensus swept too
    # the saved pipeline picks with the weights the evaluation chose
    assert (saved["clap"]["lm_weight"], saved["clap"]["consensus_weight"]) == (tuning["chosen"],
                                                                               tuning["chosen_consensus_weight"])

    with open(output / "evaluation" / "predictions-clap_rescoring.jsonl") as f:
        candidates = [c for line in f for c in json.loads(line)["candidates"]]
    origins = {origin for c in candidates for origin in c["origin"].split(",")}
    assert origins <= {f"beam {rank} of 7" for rank in range(1, 8)}, origins
    assert all(0.0 <= c["consensus"] <= 1.0 for c in candidates)

    # The encoder probes: every representation and pooling scored on the smoke size's clips, in the report too.
    probes = results["encoder_probe"]
    eat_probe = probes["eat_stage"]
    assert (eat_probe["train_clips"], eat_probe["eval_clips"]) == (16, 4)
    assert list(eat_probe["representations"]) == ["input_features", "pretrained_eat", "random_eat"]
    assert list(probes["captioner"]["representations"]) == ["captioner_encoder"]
    for probe in (eat_probe, probes["captioner"]):
        for block in probe["representations"].values():
            for metrics in block["poolings"].values():
                assert 0 <= metrics["label_accuracy"] <= 1 and 0 <= metrics["map"] <= 1
                assert {"macro_f1", "micro_f1", "exact_match", "weight_decay"} <= set(metrics)
    summary = probes["summary"]
    assert summary["captioner_start"] == summary["pretrained_eat"] == \
        eat_probe["representations"]["pretrained_eat"]["poolings"]["mean"]["macro_f1"]
    assert "## Encoder probe" in report and "the same EAT architecture with random weights | cls | 32 |" in report

    # The candidates knob changes only the decoding: it is in no stage's cache entry (name or settings), so a
    # `--candidates slam` run on this cache reuses every trained stage, the captioner and CLAP included.
    cache_root = results["paths"]["cache"]
    for entry in (r["cache_entry"] for r in results["stages"] if r["cache_entry"]):
        record = json.loads(open(os.path.join(cache_root, entry, recipe.DONE_FILE)).read())
        stored = json.dumps([entry, record["name"], record["settings"]])
        assert "candidates" not in stored and "single_pass" not in stored and "slam" not in stored, stored

    # A diagnostic run of the frozen-encoder variant on the same cache: it reuses every stage up to the captioner,
    # skips CLAP and the evaluation, and its captioner keeps the EAT stage's weights exactly (so its probe gives the
    # EAT probe's numbers), while the baseline's trained encoder moved.
    import torch

    from llm_aac.eval.linear_probe import load_audio_encoder

    frozen_output = tmp_path / "frozen"
    completed = subprocess.run(
        [sys.executable, os.path.join(RECIPES_DIR, "synthetic_gpu.py"), "--smoke", "--output", str(frozen_output),
         "--cache-dir", results["paths"]["cache"], "--encoder-training", "frozen", "--skip-evaluation",
         "--no-progress", "--workers", "1"],
        capture_output=True, text=True, env=environment, timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "[7/7] captioner encoder probe done in" in completed.stdout
    frozen = json.loads((frozen_output / recipe.RESULTS_FILE).read_text())
    assert frozen["label"] == "frozen" and frozen["splits"] == {} and not frozen["config"]["evaluated"]
    assert {r["name"]: r["reused"] for r in frozen["stages"]} == {
        "synthesize corpus": True, "features": True, "EAT pretraining": True, "encoder probe": True,
        "tokenizer + text LM": True, "captioner": False, "captioner encoder probe": False}
    assert "EAT-CLAP" not in frozen["training"] and frozen["paths"]["model"] is None
    assert "Not evaluated" in (frozen_output / recipe.REPORT_FILE).read_text()

    def stage_result(run, name):
        entry = next(r["cache_entry"] for r in run["stages"] if r["name"] == name)
        folder = os.path.join(run["paths"]["cache"], entry)
        return os.path.join(folder, json.loads(open(os.path.join(folder, recipe.DONE_FILE)).read())["result"])

    pretrained = load_audio_encoder(stage_result(results, "EAT pretraining"), device="cpu")[0].state_dict()
    kept = load_audio_encoder(stage_result(frozen, "captioner"), device="cpu")[0].state_dict()
    trained = load_audio_encoder(stage_result(results, "captioner"), device="cpu")[0].state_dict()
    assert all(torch.equal(kept[k], pretrained[k]) for k in pretrained)
    assert any(not torch.equal(trained[k], pretrained[k]) for k in pretrained)
    ours = frozen["encoder_probe"]["captioner"]["representations"]["captioner_encoder"]["poolings"]["mean"]
    reference = eat_probe["representations"]["pretrained_eat"]["poolings"]["mean"]
    assert ours["map"] == pytest.approx(reference["map"], abs=1e-3)
    assert ours["label_accuracy"] == pytest.approx(reference["label_accuracy"])

    # A frozen random-init encoder, in this process, with a deadline the captioner's probe cannot keep: the run
    # leaves out that optional stage and still writes its results; the encoder has the EAT's shape, new weights.
    monkeypatch.setitem(recipe.UNTIMED_MINUTES["smoke"], "probe_per_1k", 1e6)  # only the uncached probe is checked
    late_output = tmp_path / "scratch-frozen"
    assert recipe.main(["--smoke", "--output", str(late_output), "--cache-dir", results["paths"]["cache"],
                        "--encoder-init", "scratch", "--encoder-training", "frozen", "--skip-evaluation",
                        "--no-progress", "--workers", "1", "--deadline-minutes", "60"]) == 0
    late = json.loads((late_output / recipe.RESULTS_FILE).read_text())
    assert late["label"] == "scratch+frozen" and late["skipped_stages"] == ["captioner encoder probe"]
    assert late["encoder_probe"]["captioner"] is None and late["encoder_probe"]["summary"]["captioner_end"] is None
    assert late["encoder_probe"]["summary"]["captioner_start"] == summary["random_eat"]
    scratch = load_audio_encoder(stage_result(late, "captioner"), device="cpu")[0]
    assert scratch.config.to_diff_dict() == load_audio_encoder(stage_result(results, "EAT pretraining"),
                                                               device="cpu")[0].config.to_diff_dict()
    assert all(not torch.equal(scratch.state_dict()[k], pretrained[k])
               for k, _ in scratch.named_parameters())
    assert "left out to keep the deadline: captioner encoder probe" in (late_output / recipe.REPORT_FILE).read_text()


def test_stage_failure_and_deadline_exit_statuses(tmp_path, monkeypatch, capsys):
    import llm_aac.demo as demo

    # A deadline shorter than any stage: nothing starts, exit status 3 (the same command resumes).
    code = recipe.main(["--smoke", "--output", str(tmp_path / "late"), "--deadline-minutes", "0.001"])
    assert code == recipe.EXIT_DEADLINE
    assert "stopped before 'synthesize corpus'" in capsys.readouterr().out

    def failing_synthesis(*args, **kwargs):
        raise ValueError("no space left on the device")

    monkeypatch.setattr(demo, "synthesize", failing_synthesis)
    output = tmp_path / "broken"
    assert recipe.main(["--smoke", "--output", str(output)]) == 1
    err = capsys.readouterr().err
    assert "stage 1/10 'synthesize corpus' failed" in err and "no space left on the device" in err
    log = (output / recipe.ERROR_LOG).read_text()
    assert "Traceback" in log and "failing_synthesis" in log
    assert not (output / recipe.RESULTS_FILE).exists()


def test_every_knob_value_is_a_choice_the_demo_stages_accept():
    from llm_aac.demo import RecipeChoices

    fields = {"features": "feature_type", "projector": "projector_type"}
    for name, values in recipe.KNOBS.items():
        for value in values:
            RecipeChoices(**{fields.get(name, name): value}).check()
