"""train/recipes/run_ablations.py: the plan, the parallel runner (with stand-in commands), the aggregation math on
fabricated result files, and the command line with a stand-in recipe script."""

from __future__ import annotations

import json
import os
import statistics
import sys
import textwrap

import pytest
from recipe_modules import load_recipe_module

ablations = load_recipe_module("run_ablations")
recipe = load_recipe_module("synthetic_gpu")


def test_plan_order_dependencies_and_errors():
    plan = ablations.plan_runs(list(ablations.ISSUE_CONFIGS), [0, 1])
    names = [name for name, _, _ in plan]
    assert names[:6] == ["baseline-seed0", "fbank-seed0", "cwt_seed-seed0", "baseline-seed1", "fbank-seed1",
                         "cwt_seed-seed1"]
    # the decoding-only configuration (SLAM-AAC's candidates) goes last: it reuses the baseline's trained stages
    assert names[-2:] == ["slam-seed0", "slam-seed1"] and len(names) == 12
    assert ablations.ISSUE_CONFIGS == ("baseline", "fbank", "cwt_seed", "qformer", "projector_only", "slam")
    assert ablations.CONFIGS["slam"] == {"candidates": "slam"} and "single_pass" not in ablations.CONFIGS
    assert recipe.BASELINE["candidates"] == "single_pass"
    with pytest.raises(ValueError, match="unknown configuration"):
        ablations.plan_runs(["baseline", "mfcc"], [0])
    with pytest.raises(ValueError, match="seeds repeat"):
        ablations.plan_runs(["baseline"], [1, 1])
    with pytest.raises(ValueError, match="configurations repeat"):
        ablations.plan_runs(["baseline", "baseline"], [0])

    command = ablations.recipe_command("recipe.py", "runs/x", "cache", "projector_only", 3, budget_scale=0.4,
                                       smoke=False, workers=16, dataloader_workers=2, threads=3)
    assert command[:2] == [sys.executable, "recipe.py"]
    joined = " ".join(command)
    assert "--training projector_only" in joined and "--seed 3" in joined and "--budget-scale 0.4" in joined
    assert "--cache-dir cache" in joined and "--label projector_only" in joined and "--smoke" not in joined
    assert "--workers 16" in joined and "--dataloader-workers 2" in joined and "--threads 3" in joined
    smoke = ablations.recipe_command("r.py", "o", "c", "baseline", 0, budget_scale=1.0, smoke=True, workers=1,
                                     dataloader_workers=1, threads=1)
    assert "--smoke" in smoke and "--dataloader-workers" not in smoke


def test_custom_configurations_knobs_and_sizes():
    knobs = recipe.KNOBS
    batch = ablations.parse_config("batch32:captioner_batch_size=32, lora_learning_rate=3e-4", knobs,
                                   recipe.parse_overrides)
    assert (batch.name, dict(batch.knobs), batch.sizes) == (
        "batch32", {}, ("captioner_batch_size=32", "lora_learning_rate=3e-4"))
    both = ablations.parse_config("fbank_scratch:features=fbank,encoder_init=scratch", knobs, recipe.parse_overrides)
    assert dict(both.knobs) == {"features": "fbank", "encoder_init": "scratch"} and not both.decoding_only
    assert ablations.parse_config("beams:candidates=slam", knobs, recipe.parse_overrides).decoding_only
    assert ablations.named_configuration("slam").decoding_only
    for text, message in (("nocolon", "NAME:ITEM"), ("bad name:features=fbank", "NAME:ITEM"),
                          ("scratch:features=fbank", "predefined configuration"),
                          ("x:features=mfcc", "features must be one of"), ("x:lora_stepz=3", "unknown size field"),
                          ("x:features", "not KEY=VALUE"), ("x:", "changes nothing")):
        with pytest.raises(ValueError, match=message):
            ablations.parse_config(text, knobs, recipe.parse_overrides)

    # custom runs go after the predefined ones of their tier; decoding-only ones last
    custom = {c.name: c for c in (batch, ablations.parse_config("beams:candidates=slam", knobs,
                                                                   recipe.parse_overrides))}
    plan = ablations.plan_runs(["beams", "batch32", "frozen", "scratch", "fbank", "baseline"], [0], custom)
    assert [name for name, _, _ in plan] == ["baseline-seed0", "fbank-seed0", "scratch-seed0", "frozen-seed0",
                                             "batch32-seed0", "beams-seed0"]

    command = ablations.recipe_command("recipe.py", "runs/x", "cache", "fbank_scratch", 0, budget_scale=0.3,
                                       smoke=False, workers=16, dataloader_workers=2, threads=3, configuration=both,
                                       sizes=["test_clips=300"])
    joined = " ".join(command)
    assert "--features fbank" in joined and "--encoder-init scratch" in joined and "--label fbank_scratch" in joined
    assert "--set test_clips=300" in joined
    sized = ablations.recipe_command("recipe.py", "runs/x", "cache", "batch32", 0, budget_scale=0.3, smoke=False,
                                     workers=1, dataloader_workers=1, threads=1, configuration=batch,
                                     sizes=["captioner_batch_size=64"])
    # the configuration's own size comes last: the recipe keeps the last --set of a field
    assert sized.index("captioner_batch_size=32") > sized.index("captioner_batch_size=64")
    frozen = ablations.recipe_command("r.py", "o", "c", "frozen", 0, budget_scale=1.0, smoke=True, workers=1,
                                      dataloader_workers=1, threads=1)
    assert "--encoder-training frozen" in " ".join(frozen)


def test_worst_case_makespan():
    Job = ablations.Job
    jobs = [Job("a", [], "l", "r", worst_minutes=4), Job("b", [], "l", "r", worst_minutes=3),
            Job("c", [], "l", "r", worst_minutes=2), Job("d", [], "l", "r", worst_minutes=1)]
    # two slots in order: a 0-4, b 0-3, c 3-5, d 4-5
    assert ablations.worst_case_makespan(jobs, 2) == pytest.approx(5)
    assert ablations.worst_case_makespan(jobs, 1) == pytest.approx(10)
    assert ablations.worst_case_makespan([], 3) == 0


def _fake_job(tmp_path, name, seconds=0.0, exit_code=0, write_result=True):
    """A stand-in run: records its start / end times, sleeps, writes its result file, exits with `exit_code`."""
    result = tmp_path / "runs" / name / "results.json"
    script = textwrap.dedent(f"""
        import json, os, sys, time
        times = {{"start": time.time(), "argv": sys.argv[1:]}}
        time.sleep({seconds})
        times["end"] = time.time()
        os.makedirs({str(result.parent)!r}, exist_ok=True)
        if {write_result}:
            json.dump(times, open({str(result)!r}, "w"))
        print("fake run", {name!r})
        sys.exit({exit_code})
    """)
    return ablations.Job(name=name, command=[sys.executable, "-c", script], log=str(tmp_path / "logs" / f"{name}.log"),
                         result=str(result))


def _times(job):
    with open(job.result) as f:
        return json.load(f)


def test_runner_parallelism_order_and_statuses(tmp_path):
    jobs = [_fake_job(tmp_path, f"run{i}", seconds=0.6) for i in range(4)]
    jobs.append(_fake_job(tmp_path, "crashes", exit_code=1))
    jobs.append(_fake_job(tmp_path, "no-result", write_result=False))
    jobs.append(_fake_job(tmp_path, "deadline", exit_code=ablations.EXIT_DEADLINE, write_result=False))
    lines = []
    ablations.run_jobs(jobs, 2, poll_seconds=0.05, print_fn=lambda *a, **k: lines.append(" ".join(map(str, a))))
    status = {job.name: job.status for job in jobs}
    assert status == {"run0": "done", "run1": "done", "run2": "done", "run3": "done", "crashes": "failed",
                      "no-result": "failed", "deadline": "deadline"}
    spans = [(_times(job)["start"], _times(job)["end"]) for job in jobs[:4]]
    for start, _ in spans:  # never more than 2 at once
        assert sum(1 for s, e in spans if s <= start < e) <= 2
    assert spans[2][0] >= min(spans[0][1], spans[1][1])  # the third started when a slot freed, in plan order
    assert "fake run run1" in open(jobs[1].log).read() and open(jobs[1].log).read().startswith("$ ")
    assert any("crashes: failed (exit 1)" in line for line in lines)


def test_runner_deadline_is_passed_on_and_stops_new_starts(tmp_path):
    first = _fake_job(tmp_path, "first", seconds=1.0)
    late = _fake_job(tmp_path, "late")
    # a 1 s deadline, no start with less than 0.2 s left: `first` starts, `late` (after it, serial) does not
    ablations.run_jobs([first, late], 1, deadline_minutes=1 / 60, min_start_minutes=0.2 / 60,
                       poll_seconds=0.05, print_fn=lambda *a, **k: None)
    argv = _times(first)["argv"]
    assert argv[0] == "--deadline-minutes" and 0.2 / 60 <= float(argv[1]) <= 1 / 60
    assert (first.status, late.status) == ("done", "deadline") and not os.path.exists(late.result)
    with pytest.raises(ValueError, match="job names repeat"):
        ablations.run_jobs([_fake_job(tmp_path, "x"), _fake_job(tmp_path, "x")], 1)


def _results(label, seed, cider_beam, cider_clap, f1, *, scale=0.4, date="2026-11-27T10:00:00", gain=0.1):
    def system(cider, event_f1):
        return {"cider_d": cider, "bleu_4": 0.2, "rouge_l": 0.4, "meteor": None, "event_f1": event_f1,
                "count_accuracy": 0.5, "order_accuracy": 0.6}

    return {
        "format": 1, "label": label, "date": date, "device": "NVIDIA H100 80GB HBM3", "passed": False,
        "config": {"seed": seed, "size": "gpu", "budget_scale": scale},
        "splits": {"test": {"num_clips": 1000, "beam_search": system(cider_beam, f1 - 0.05),
                            "clap_rescoring": system(cider_clap, f1),
                            "rescoring_gain_cider_d": (cider_clap - cider_beam) / cider_beam},
                   "compositional": {"num_clips": 500, "clap_rescoring": system(cider_clap / 2, f1 / 2)}},
        "audio_gain_curve": [{"eval_audio_gain": 0.01}, {"eval_audio_gain": gain}],
        "training_minutes_built": 5.0,
    }


def _write(folder, name, results):
    path = folder / name / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results))
    return path


def test_aggregation_math_over_folders(tmp_path):
    command_a, command_b = tmp_path / "a", tmp_path / "b"
    _write(command_a / "runs", "baseline-seed0", _results("baseline", 0, 1.0, 1.1, 0.8, gain=0.2))
    _write(command_b / "runs", "baseline-seed1", _results("baseline", 1, 1.2, 1.4, 0.9, gain=0.3))
    _write(command_a / "runs", "fbank-seed0", _results("fbank", 0, 0.8, 0.82, 0.7))
    _write(command_a / "runs", "fbank-seed0-old", _results("fbank", 0, 0.1, 0.1, 0.1, date="2026-11-26T10:00:00"))
    _write(command_a / "runs", "qformer-seed0", _results("qformer", 0, 0.5, 0.5, 0.5, scale=1.0))
    _write(command_a / "cache" / "x", "ignored", {"not": "a result"})  # the stage cache is not searched

    files = ablations.find_results([str(command_a), str(command_b)])
    assert len(files) == 5
    notes = []
    rows = ablations.aggregate(ablations.load_results(files, print_fn=notes.append))
    assert any("appears twice" in note for note in notes)
    assert [(r["config"], r["budget_scale"], r["n"]) for r in rows] == [
        ("baseline", 0.4, 2), ("fbank", 0.4, 1), ("qformer", 1.0, 1)]
    baseline = rows[0]["columns"]
    assert baseline["test CIDEr-D CLAP"]["mean"] == pytest.approx(1.25)
    assert baseline["test CIDEr-D CLAP"]["spread"] == pytest.approx(statistics.stdev([1.1, 1.4]))
    gains = [100 * 0.1 / 1.0, 100 * 0.2 / 1.2]
    assert baseline["rescoring gain %"]["mean"] == pytest.approx(statistics.fmean(gains))
    assert baseline["audio gain"]["mean"] == pytest.approx(0.25)
    assert baseline["METEOR CLAP"]["mean"] is None  # no Java on either run
    fbank = rows[1]["columns"]
    assert fbank["test CIDEr-D CLAP"]["mean"] == pytest.approx(0.82) and fbank["test CIDEr-D CLAP"]["spread"] is None

    table = ablations.markdown_table(rows)
    assert "| baseline | 0.4 | 2 (0, 1) | 1.100 ± 0.141 | 1.250 ± 0.212 | 13.3 ± 4.7 |" in table
    assert "| fbank | 0.4 | 1 (0) | 0.800 | 0.820 |" in table
    assert "NVIDIA H100 80GB HBM3" in table

    paired = ablations.paired_deltas(rows)
    # fbank seed 0 against baseline seed 0 only; qformer ran at another budget scale: no baseline to pair with.
    assert [entry["config"] for entry in paired] == ["fbank"]
    clap = paired[0]["columns"]["test CIDEr-D CLAP"]
    assert clap["deltas"] == [pytest.approx(0.82 - 1.1)] and clap["better"] == 0 and clap["spread"] is None
    assert paired[0]["columns"]["event F1 CLAP"]["deltas"] == [pytest.approx(0.7 - 0.8)]
    paired_table = ablations.paired_markdown(paired)
    assert "| fbank | 0.4 | -0.280 (better on 0/1) | -0.200 (better on 0/1) | -0.100 (better on 0/1) |" in paired_table

    table_path = tmp_path / "docs" / "ablations.md"
    assert ablations.main(["--aggregate", str(command_a), str(command_b), "--table", str(table_path)]) == 0
    assert table_path.read_text() == table + "\n" + paired_table
    assert ablations.main(["--aggregate", str(tmp_path / "empty-or-missing")]) == 2


def test_results_of_an_older_configuration_definition_count_under_the_knobs_they_ran(tmp_path):
    # Before one beam search's hypotheses became the baseline's candidates, `baseline` rescored SLAM-AAC's and
    # `single_pass` was the alternative: such results count as `slam` and `baseline`, other runs keep their label.
    def ran(label, seed, cider, **knobs):
        results = _results(label, seed, 1.0, cider, 0.8)
        results["config"].update({"features": "cwt", "projector": "linear", "training": "lora", **knobs})
        return results

    old_baseline, old_single = ran("baseline", 0, 1.01, candidates="slam"), ran("single_pass", 0, 1.07,
                                                                               candidates="single_pass")
    old_fbank = ran("fbank", 0, 0.9, candidates="slam", features="fbank")
    new_slam, custom = ran("slam", 1, 1.02, candidates="slam"), ran("beams", 0, 1.0, candidates="slam")
    assert [ablations.configuration_label(r) for r in (old_baseline, old_single, old_fbank, new_slam, custom)] == [
        "slam", "baseline", "fbank+slam", "slam", "beams"]
    # no knobs recorded: the definition's
    assert ablations.configuration_label(_results("fbank", 0, 1.0, 1.0, 0.8)) == "fbank"
    assert ablations.configuration_label(_results("single_pass", 0, 1.0, 1.0, 0.8)) == "baseline"
    with pytest.raises(ValueError, match="predefined configuration"):
        ablations.parse_config("single_pass:candidates=slam", recipe.KNOBS, recipe.parse_overrides)

    for name, results in (("baseline-seed0", old_baseline), ("single_pass-seed0", old_single),
                          ("slam-seed1", new_slam)):
        _write(tmp_path / "runs", name, results)
    notes = []
    rows = ablations.aggregate(ablations.load_results(ablations.find_results([str(tmp_path)]), print_fn=notes.append))
    assert [(r["config"], r["seeds"]) for r in rows] == [("baseline", [0]), ("slam", [0, 1])]
    assert rows[0]["columns"]["test CIDEr-D CLAP"]["values"] == [1.07]
    assert sum("counted as" in note for note in notes) == 2


def test_mean_and_spread_ignores_missing_values():
    assert ablations.mean_and_spread([1.0, None, 3.0, float("nan")]) == (2.0, pytest.approx(2 ** 0.5))
    assert ablations.mean_and_spread([None]) == (None, None)
    assert ablations.mean_and_spread([2.0]) == (2.0, None)


FAKE_RECIPE = '''
import argparse, json, os, sys
parser = argparse.ArgumentParser()
for name in ("--output", "--cache-dir", "--seed", "--budget-scale", "--label", "--workers", "--threads",
             "--dataloader-workers", "--features", "--projector", "--training", "--candidates", "--deadline-minutes"):
    parser.add_argument(name)
parser.add_argument("--no-progress", action="store_true")
parser.add_argument("--smoke", action="store_true")
args = parser.parse_args()
os.makedirs(args.output, exist_ok=True)
seed = int(args.seed)
cider = {"baseline": 1.0, "slam": 0.9}[args.label] + 0.1 * seed
results = {"label": args.label, "date": "2026-11-27", "device": "fake",
           "config": {"seed": seed, "size": "smoke" if args.smoke else "gpu", "budget_scale": float(args.budget_scale)},
           "splits": {"test": {"num_clips": 5, "beam_search": {"cider_d": 1.0}, "clap_rescoring": {"cider_d": cider},
                               "rescoring_gain_cider_d": cider - 1.0}}}
json.dump(results, open(os.path.join(args.output, "results.json"), "w"))
'''


def test_command_line_with_a_stand_in_recipe(tmp_path, capsys):
    fake = tmp_path / "fake_recipe.py"
    fake.write_text(FAKE_RECIPE)
    output = tmp_path / "ablations"
    argv = ["--output", str(output), "--configs", "baseline,slam", "--seeds", "0", "1", "--smoke",
            "--parallel", "2", "--recipe", str(fake), "--budget-scale", "0.5"]
    assert ablations.main(argv) == 0
    out = capsys.readouterr().out
    assert "4 runs (0 already done), 2 at a time; each:" in out and "makespan: " in out
    assert "| baseline | 0.5 (smoke) | 2 (0, 1) | 1.000 ± 0.000 | 1.050 ± 0.071 | 5.0 ± 7.1 |" in out
    assert "| slam | 0.5 (smoke) | 2 (0, 1) |" in out
    assert (output / ablations.TABLE_FILE).is_file() and (output / ablations.SUMMARY_FILE).is_file()
    log = (output / "logs" / "slam-seed1.log").read_text()
    assert log.startswith("$ ") and "--candidates slam" in log
    assert "--candidates" not in (output / "logs" / "baseline-seed1.log").read_text()  # the recipe's default

    # The same command again: everything is done, nothing runs.
    assert ablations.main(argv) == 0
    assert "4 runs (4 already done)" in capsys.readouterr().out
    # A baseline finished before the baseline's candidates changed (SLAM-AAC's then) is a `slam` run now: run again.
    stale = output / "runs" / "baseline-seed0" / "results.json"
    stale.write_text(json.dumps({**json.loads(stale.read_text()), "config": {
        "seed": 0, "size": "smoke", "budget_scale": 0.5, "features": "cwt", "candidates": "slam"}}))
    assert ablations.main(argv) == 0
    out = capsys.readouterr().out
    assert "ran other knobs than 'baseline' now has (counted as 'slam'); it runs again" in out
    assert "4 runs (3 already done)" in out and "| baseline | 0.5 (smoke) | 2 (0, 1) |" in out

    assert ablations.main(["--output", str(output), "--configs", "baseline,mfcc", "--smoke"]) == 2
    assert "unknown configuration(s) ['mfcc']" in capsys.readouterr().err

    # Configurations of one's own and sizes of every run: planned with their sizes, passed on as --set.
    diagnose = ["--output", str(tmp_path / "diagnose"), "--seeds", "0", "--budget-scale", "0.3", "--dry-run",
                "--configs", "baseline,scratch", "--config", "batch32:captioner_batch_size=32,lora_minutes=9",
                "--set", "test_clips=300", "--deadline-minutes", "9.5"]
    assert ablations.main(diagnose) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("$ ")]
    assert len(lines) == 3 and all("--set test_clips=300" in line for line in lines)
    assert "--encoder-init scratch" in lines[1] and "--set captioner_batch_size=32 --set lora_minutes=9" in lines[2]
    longest = recipe.worst_case_minutes(recipe.size_values("gpu", 0.3, {"test_clips": 300, "lora_minutes": 9}), "gpu")
    assert f"worst case per run: {longest:.1f} min" in out and "> the 9.5-minute deadline" in out
    assert ablations.main(diagnose[:-2] + ["--config", "bad:lora_stepz=1"]) == 2
    assert "unknown size field 'lora_stepz'" in capsys.readouterr().err
    # Diagnostic runs without the evaluation stages: planned without them, told to skip them.
    assert ablations.main(diagnose + ["--skip-evaluation"]) == 0
    out = capsys.readouterr().out
    assert all("--skip-evaluation" in line for line in out.splitlines() if line.startswith("$ "))
    shorter = recipe.worst_case_minutes(recipe.size_values("gpu", 0.3, {"test_clips": 300, "lora_minutes": 9}), "gpu",
                                        skip_evaluation=True)
    assert shorter < longest and f"worst case per run: {shorter:.1f} min" in out
    assert ablations.main(diagnose + ["--skip-evaluation", "--configs", "baseline,slam"]) == 2
    assert "only change the decoding" in capsys.readouterr().err
    # --config alone runs only the configurations defined
    assert ablations.main(["--output", str(tmp_path / "d2"), "--seeds", "0", "--dry-run",
                           "--config", "lr:lora_learning_rate=3e-4"]) == 0
    assert "1 runs (0 already done)" in capsys.readouterr().out
    assert ablations.main(["--output", str(output), "--configs", "baseline", "--parallel", "0"]) == 2
    assert ablations.main(["--configs", "baseline"]) == 2
    assert "--output is required" in capsys.readouterr().err
