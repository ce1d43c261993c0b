"""eval/reranker_analysis.py: re-ranking rules over saved candidates on hand-built records whose answer is known
(which signal points at the reference-like candidate), cross-fitting, the CLI and every bad-input error."""

import json
import math
import random
import re

import numpy as np
import pytest
from aac_metrics.functional import cider_d

from llm_aac import cli
from llm_aac.eval.candidate_headroom import candidate_headroom
from llm_aac.eval.reranker_analysis import (
    analyse_split,
    consensus_scores,
    format_report,
    read_predictions,
    reranker_analysis,
    rescoring_signals,
    weight_grid,
    zscore_within_clips,
)

TOPICS = [("dog", "barks"), ("bell", "rings"), ("car", "passes"), ("bird", "sings"),
          ("door", "slams"), ("baby", "cries"), ("engine", "hums"), ("crowd", "cheers")]
PLACES = ["kitchen", "garden", "street", "forest", "garage", "hallway", "station", "stadium"]


def wrong_captions(noun, place):
    """Two wrong candidates that agree with each other (high consensus) and share only the noun with the references.
    They differ from clip to clip: n-grams found in every clip's references get no CIDEr weight."""
    return [f"a {noun} is heard in the {place} far away", f"a {noun} is heard in the {place} very far away"]


def clip_record(index, noun, verb, *, clap_right, log_prob_right, split="test"):
    """Three candidates: the first copies a reference (the oracle's choice), the other two are WRONG. CLAP and/or
    the log-probability rank the right one first, else the first wrong one."""
    references = [f"a {noun} {verb} nearby", f"the {noun} {verb} loudly", f"someone hears a {noun} that {verb}"]
    captions = [references[0], *wrong_captions(noun, PLACES[index % len(PLACES)])]
    clap = [0.9, 0.5, 0.4] if clap_right else [0.5, 0.9, 0.4]
    log_prob = [-0.2, -0.6, -0.7] if log_prob_right else [-0.6, -0.2, -0.7]
    candidates = [{"index": k, "caption": c, "log_prob": lp, "clap_score": s, "score": s, "origin": f"beam {k + 1}"}
                  for k, (c, lp, s) in enumerate(zip(captions, log_prob, clap))]
    return {"file": f"clip{index}.flac", "split": split, "prediction": captions[int(np.argmax(clap))],
            "candidates": candidates, "references": references}


def with_sampled_consensus(record, *, right):
    """The record with the evaluation's `consensus` field (consensus with sampled captions) on every candidate, high
    on the reference-like candidate when `right`, else on the first wrong one."""
    values = [0.8, 0.3, 0.2] if right else [0.3, 0.8, 0.2]
    for entry, value in zip(record["candidates"], values):
        entry["consensus"] = value
    return record


def analyse(records, beam=None, **kwargs):
    return analyse_split(records, beam, tokenize=False, **kwargs)


def test_clap_pointing_at_the_reference_like_candidate_reaches_the_oracle():
    records = [clip_record(i, *topic, clap_right=True, log_prob_right=False) for i, topic in enumerate(TOPICS)]
    report = analyse(records)
    rules = report["rules"]
    assert report["baseline"] == "captioner_pick" and "beam_search" not in rules
    assert rules["clap_alone"]["cider_d"] == pytest.approx(rules["oracle"]["cider_d"])
    assert rules["run_pick"]["cider_d"] == pytest.approx(rules["oracle"]["cider_d"])  # the records picked by CLAP
    assert rules["captioner_pick"]["cider_d"] < rules["oracle"]["cider_d"]
    assert rules["mix_crossfit"]["cider_d"] == pytest.approx(rules["oracle"]["cider_d"])
    for half in report["crossfit"]["mix"]["halves"]:
        assert half["weights"]["clap"] > 0
    # Without CLAP, nothing points at the right candidate (log-prob and consensus both favour the wrong ones).
    assert rules["mix_without_clap_in_sample"]["cider_d"] < 0.5 * rules["oracle"]["cider_d"]
    assert report["best_mix_gain"] > 0.5 and report["best_mix_without_clap_gain"] <= 1e-9


def test_same_numbers_as_candidate_headroom():
    records = [clip_record(i, *topic, clap_right=i % 3 == 0, log_prob_right=i % 2 == 0)
               for i, topic in enumerate(TOPICS)]
    rules = analyse(records)["rules"]
    headroom = candidate_headroom(records, tokenize=False)
    for ours, theirs in (("oracle", "oracle"), ("worst", "worst"), ("captioner_pick", "captioner_pick"),
                         ("run_pick", "picked")):
        assert rules[ours]["cider_d"] == pytest.approx(headroom[theirs])


def test_majority_phrasing_consensus_beats_the_captioners_pick():
    records = []
    for index, (noun, verb) in enumerate(TOPICS[:4]):
        references = [f"a {noun} {verb} loudly nearby", f"the {noun} {verb} loudly", f"a {noun} {verb} loudly outside"]
        majority = [f"a {noun} {verb} loudly nearby", f"a {noun} {verb} loudly outside", f"the {noun} {verb} loudly"]
        # The captioner prefers the odd one out; CLAP is uninformative (equal for all).
        captions = [f"some {noun} noise is heard far away", *majority]
        candidates = [{"index": k, "caption": c, "log_prob": -0.1 if k == 0 else -0.5 - k / 10, "clap_score": 0.5}
                      for k, c in enumerate(captions)]
        records.append({"file": f"c{index}", "split": "test", "prediction": captions[0], "candidates": candidates,
                        "references": references})
    rules = analyse(records)["rules"]
    assert rules["consensus_alone"]["cider_d"] > rules["captioner_pick"]["cider_d"]
    assert rules["consensus_alone"]["gain"] > 0 and rules["captioner_pick"]["gain"] == pytest.approx(0.0)
    assert rules["clap_alone"]["cider_d"] == pytest.approx(rules["captioner_pick"]["cider_d"])  # ties -> index 0


def test_oracle_bounds_every_rule_and_worst_is_below_every_rule():
    rng = random.Random(0)
    words = "a the dog bell car bird barks rings passes sings loudly softly nearby twice then".split()
    records = []
    for index in range(10):
        references = [" ".join(rng.choices(words, k=6)) for _ in range(3)]
        captions = list(dict.fromkeys(" ".join(rng.choices(words, k=rng.randint(3, 7))) for _ in range(rng.randint(1, 5))))
        candidates = [{"index": k, "caption": c, "log_prob": rng.uniform(-2, 0), "clap_score": rng.uniform(0, 1)}
                      for k, c in enumerate(captions)]
        records.append({"file": f"r{index}", "split": "test", "prediction": rng.choice(captions),
                        "candidates": candidates, "references": references})
    beam = [r["candidates"][0]["caption"] for r in records]
    report = analyse(records, beam)
    rules = report["rules"]
    assert 1 < report["candidates_per_clip"] < 5
    for name, rule in rules.items():
        assert rules["worst"]["cider_d"] - 1e-9 <= rule["cider_d"] <= rules["oracle"]["cider_d"] + 1e-9, name
    assert rules["beam_search"]["gain"] == pytest.approx(0.0)


def test_crossfitting_scores_weights_only_on_the_other_half():
    # Even clips: CLAP is right and the log-probability wrong; odd clips: the reverse.
    records = [clip_record(i, *topic, clap_right=i % 2 == 0, log_prob_right=i % 2 == 1)
               for i, topic in enumerate(TOPICS)]
    report = analyse(records)
    halves = {half["chosen_on"]: half for half in report["crossfit"]["mix"]["halves"]}
    assert halves["even"]["scored_on"] == "odd" and halves["odd"]["scored_on"] == "even"
    assert halves["even"]["weights"] == {"clap": 0.25, "log_prob": 0.0, "consensus": 0.0}
    assert halves["odd"]["weights"] == {"clap": 0.0, "log_prob": 0.25, "consensus": 0.0}
    # Each half's weights are perfect where they were chosen (the two halves are equal in size, so their fitted
    # scores average to the oracle) and wrong on the other half, which is what the cross-fitted number reports.
    rules = report["rules"]
    assert np.mean([h["fitted_score"] for h in halves.values()]) == pytest.approx(rules["oracle"]["cider_d"])
    for half in halves.values():
        assert half["fitted_score"] > half["held_out_score"]
    held_out = np.mean([h["held_out_score"] for h in halves.values()])
    assert rules["mix_crossfit"]["cider_d"] == pytest.approx(held_out)
    assert rules["mix_crossfit"]["cider_d"] < 0.5 * rules["mix_in_sample"]["cider_d"]
    assert rules["mix_crossfit"]["weights_by_half"]["even"] == halves["even"]["weights"]


def test_consensus_is_cider_d_against_the_other_candidates():
    captions = [["a dog barks", "a dog barks twice", "a cat meows"], ["a bell rings", "two bells ring"],
                ["a car passes"]]
    scores = consensus_scores(captions, tokenize=False)
    assert [len(s) for s in scores] == [3, 2, 1] and scores[2] == [0.0]
    for slot in range(3):
        positions = [slot if slot < len(c) else 0 for c in captions]
        others = [[r for j, r in enumerate(c) if j != k] or list(c) for c, k in zip(captions, positions)]
        _, sentences = cider_d([c[k] for c, k in zip(captions, positions)], others)
        for clip, value in enumerate(sentences["cider_d"].tolist()):
            if slot < len(captions[clip]) and len(captions[clip]) > 1:
                assert scores[clip][slot] == pytest.approx(value)
    assert scores[0][0] > scores[0][2]  # "a dog barks" agrees with "a dog barks twice", the cat with neither


def test_zscore_within_clips_and_weight_grid():
    values = np.array([[[1.0], [5.0], [0.0]], [[2.0], [2.0], [0.0]]])
    mask = np.array([[True, True, False], [True, True, False]])
    z = zscore_within_clips(values, mask)
    assert z[0, :2, 0].tolist() == pytest.approx([-1.0, 1.0]) and z[0, 2, 0] == 0
    assert z[1].tolist() == [[0.0], [0.0], [0.0]]  # constant within the clip: no information
    grid = weight_grid()
    assert len(grid) == 6 ** 3 - 1 and (0.0, 0.0, 0.0) not in grid
    assert grid[0] == (0.0, 0.0, 0.25) and sum(v != 0 for v in grid[-1]) == 3
    for bad in ([0, 0], [-1, 1], [math.nan]):
        with pytest.raises(ValueError, match="finite, non-negative and not all zero"):
            weight_grid(bad)


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


def split_records():
    rescoring = [clip_record(i, *topic, clap_right=True, log_prob_right=i % 2 == 0, split=split)
                 for split, topics in (("test", TOPICS[:4]), ("compositional", TOPICS[4:])) for i, topic in enumerate(topics)]
    for index, record in enumerate(rescoring):
        record["file"] = f"{record['split']}_{index}.flac"
    beam = [{"file": r["file"], "split": r["split"], "prediction": r["candidates"][1]["caption"],
             "references": r["references"],
             "candidates": [{"caption": r["candidates"][1]["caption"], "log_prob": -0.3, "origin": "beams=4"}]}
            for r in rescoring]
    return rescoring, beam


def test_cli_end_to_end(tmp_path, capsys):
    rescoring, beam = split_records()
    predictions = write_jsonl(tmp_path / "predictions-clap_rescoring.jsonl", rescoring)
    beam_path = write_jsonl(tmp_path / "predictions-beam_search.jsonl", beam)
    output = tmp_path / "report.json"
    assert cli.main(["rerank-report", predictions, "--beam", beam_path, "--output-json", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "## test: 4 clips, 3.00 candidates per clip (CIDEr-D, untokenised; 215 weight vectors)" in printed
    assert "## compositional: 4 clips" in printed
    assert "| rule | CIDEr-D | vs beam search | weights (clap / log_prob / consensus) |" in printed
    assert "| best mix, cross-fitted |" in printed and "chosen on even: " in printed
    assert "Best cross-fitted mix over beam search: " in printed
    saved = json.loads(output.read_text())
    assert saved["predictions"] == predictions and saved["beam"] == beam_path
    assert list(saved["splits"]) == ["test", "compositional"]
    test = saved["splits"]["test"]
    assert test["baseline"] == "beam_search"
    assert test["rules"]["beam_search"]["cider_d"] < test["rules"]["clap_alone"]["cider_d"]
    assert {h["chosen_on"] for h in test["crossfit"]["mix_without_clap"]["halves"]} == {"even", "odd"}
    assert f"{test['rules']['oracle']['cider_d']:.3f}" in printed
    assert format_report(saved) in printed

    assert cli.main(["rerank-report", predictions, "--split", "compositional", "--weights", "0,1"]) == 0
    printed = capsys.readouterr().out
    assert "## test" not in printed and "7 weight vectors" in printed and "vs the captioner's pick |" in printed

    assert cli.main(["rerank-report", predictions, "--split", "validation"]) == 2
    assert "split(s) ['validation'] not in" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["rerank-report", predictions, "--weights", "0,-1"])
    assert "--weights '0,-1'" in capsys.readouterr().err


def test_cli_takes_an_evaluation_folder(tmp_path, capsys):
    rescoring, beam = split_records()
    write_jsonl(tmp_path / "predictions-clap_rescoring.jsonl", rescoring)
    assert cli.main(["rerank-report", str(tmp_path), "--split", "test"]) == 0
    assert "vs the captioner's pick |" in capsys.readouterr().out  # no beam file in the folder yet
    beam_path = write_jsonl(tmp_path / "predictions-beam_search.jsonl", beam)
    assert cli.main(["rerank-report", str(tmp_path), "--split", "test", "--output-json", str(tmp_path / "r.json")]) == 0
    assert "vs beam search |" in capsys.readouterr().out
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["predictions"] == str(tmp_path / "predictions-clap_rescoring.jsonl") and saved["beam"] == beam_path
    (tmp_path / "empty").mkdir()
    assert cli.main(["rerank-report", str(tmp_path / "empty")]) == 2
    assert "the folder has no predictions-clap_rescoring.jsonl" in capsys.readouterr().err


def test_bad_files_are_named(tmp_path, capsys):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(ValueError, match=r"nope.jsonl: no such file"):
        read_predictions(missing)
    assert cli.main(["rerank-report", str(missing)]) == 2
    assert "rerank-report: error: " in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="empty.jsonl: empty file"):
        read_predictions(empty)
    (tmp_path / "broken.jsonl").write_text('{"file": "a", "split": "test", "prediction": "x"}\n{oops\n')
    with pytest.raises(ValueError, match="broken.jsonl, line 2: not JSON"):
        read_predictions(tmp_path / "broken.jsonl")
    (tmp_path / "keys.jsonl").write_text('{"file": "a", "prediction": "x"}\n')
    with pytest.raises(ValueError, match="line 1: record has no 'split'"):
        read_predictions(tmp_path / "keys.jsonl")


def test_bad_records_are_named():
    rescoring, beam = split_records()
    no_candidates = json.loads(json.dumps(rescoring))
    no_candidates[2]["candidates"] = []
    with pytest.raises(ValueError, match=r"clip 'test_2.flac' has no candidates"):
        reranker_analysis(no_candidates)
    for field in ("clap_score", "log_prob"):
        broken = json.loads(json.dumps(rescoring))
        del broken[5]["candidates"][1][field]
        with pytest.raises(ValueError, match=rf"candidates without '{field}' \(e.g. clip 'compositional_5.flac', "
                                             r"candidate 1"):
            reranker_analysis(broken)
    not_finite = json.loads(json.dumps(rescoring))
    not_finite[0]["candidates"][0]["clap_score"] = math.nan
    with pytest.raises(ValueError, match="clip 'test_0.flac', candidate 0: clap_score is nan"):
        reranker_analysis(not_finite)
    no_references = json.loads(json.dumps(rescoring))
    no_references[1]["references"] = []
    with pytest.raises(ValueError, match="clip 'test_1.flac' has no reference captions"):
        reranker_analysis(no_references)

    with pytest.raises(ValueError, match=r"the splits differ: .* has \['compositional', 'test'\], .* has \['test'\]"):
        reranker_analysis(rescoring, [b for b in beam if b["split"] == "test"])
    with pytest.raises(ValueError, match=r"split 'test': the files hold different clips: 1 only in .*test_3.flac.*"
                                         r"0 only in"):
        reranker_analysis(rescoring, [b for b in beam if b["file"] != "test_3.flac"])
    with pytest.raises(ValueError, match="beam-search records: no records"):
        reranker_analysis(rescoring, [])
    with pytest.raises(ValueError, match="clip 'test_0.flac' appears twice in split 'test'"):
        reranker_analysis(rescoring + rescoring[:1])
    with pytest.raises(ValueError, match=r"split 'test' has 3 clip\(s\); cross-fitting needs at least 4"):
        reranker_analysis(rescoring[1:], splits=["test"])
    reranker_analysis(rescoring[1:], splits=["compositional"], weight_values=[1])  # the short split is not asked for


def test_sampled_consensus_pointing_at_the_reference_like_candidate_reaches_the_oracle():
    # CLAP, the log-probability and the consensus among candidates all favour wrong candidates; only the consensus
    # with sampled captions points at the right one.
    records = [with_sampled_consensus(clip_record(i, *topic, clap_right=False, log_prob_right=False), right=True)
               for i, topic in enumerate(TOPICS)]
    assert rescoring_signals(records) == ("clap", "log_prob", "consensus", "sampled_consensus")
    report = analyse(records)
    rules, oracle = report["rules"], report["rules"]["oracle"]["cider_d"]
    assert report["grid_size"] == 6 ** 4 - 1
    assert rules["sampled_consensus_alone"]["cider_d"] == pytest.approx(oracle)
    assert rules["sampled_consensus_alone"]["weights"] == {"clap": 0.0, "log_prob": 0.0, "consensus": 0.0,
                                                           "sampled_consensus": 1.0}
    assert rules["clap_alone"]["cider_d"] < 0.5 * oracle and rules["consensus_alone"]["cider_d"] < 0.5 * oracle
    for family in ("mix", "mix_without_clap", "mix_clap_sampled_consensus"):
        assert rules[f"{family}_crossfit"]["cider_d"] == pytest.approx(oracle), family
        assert report[f"best_{family}_gain"] == pytest.approx(rules[f"{family}_crossfit"]["gain"])
        for half in report["crossfit"][family]["halves"]:
            assert half["weights"]["sampled_consensus"] > 0, family
    for half in report["crossfit"]["mix_clap_sampled_consensus"]["halves"]:
        assert half["weights"]["log_prob"] == half["weights"]["consensus"] == 0
    # The order of the rows: each signal alone, then the cross-fitted mixes, then the in-sample ones.
    keys = list(rules)
    assert keys.index("consensus_alone") < keys.index("sampled_consensus_alone") < keys.index("mix_crossfit")
    assert keys.index("mix_without_clap_crossfit") < keys.index("mix_clap_sampled_consensus_crossfit") \
        < keys.index("mix_in_sample")


def test_clap_and_sampled_consensus_mix_is_cross_fitted_on_the_other_half():
    # Even clips: the samples are right and CLAP wrong; odd clips: the reverse. No single weight vector of the two
    # gets both halves right, so each half's choice is perfect where chosen and wrong where it is scored.
    records = [with_sampled_consensus(clip_record(i, *topic, clap_right=i % 2 == 1, log_prob_right=False),
                                      right=i % 2 == 0) for i, topic in enumerate(TOPICS)]
    report = analyse(records)
    rules, oracle = report["rules"], report["rules"]["oracle"]["cider_d"]
    halves = {half["chosen_on"]: half for half in report["crossfit"]["mix_clap_sampled_consensus"]["halves"]}
    assert halves["even"]["weights"] == {"clap": 0.0, "log_prob": 0.0, "consensus": 0.0, "sampled_consensus": 0.25}
    assert halves["odd"]["weights"] == {"clap": 0.25, "log_prob": 0.0, "consensus": 0.0, "sampled_consensus": 0.0}
    for half in halves.values():
        assert half["fitted_score"] == pytest.approx(oracle) and half["held_out_score"] < 0.5 * oracle
    row = rules["mix_clap_sampled_consensus_crossfit"]
    assert row["cider_d"] == pytest.approx(np.mean([h["held_out_score"] for h in halves.values()]))
    assert row["cider_d"] < rules["mix_clap_sampled_consensus_in_sample"]["cider_d"] < oracle
    assert row["weights_by_half"] == {name: half["weights"] for name, half in halves.items()}


def test_report_with_sampled_consensus_names_both_consensus_signals(tmp_path, capsys):
    rescoring, beam = split_records()
    for index, record in enumerate(rescoring):
        with_sampled_consensus(record, right=index % 3 != 0)
    predictions = write_jsonl(tmp_path / "predictions-clap_rescoring.jsonl", rescoring)
    write_jsonl(tmp_path / "predictions-beam_search.jsonl", beam)
    output = tmp_path / "report.json"
    assert cli.main(["rerank-report", str(tmp_path), "--output-json", str(output)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("Signals: ") and "consensus = consensus among candidates" in printed
    assert "sampled_consensus = consensus with samples" in printed
    assert "(CIDEr-D, untokenised; 1295 weight vectors)" in printed
    assert "| rule | CIDEr-D | vs beam search | weights (clap / log_prob / consensus / sampled_consensus) |" in printed
    assert "| consensus among candidates alone |" in printed and "| consensus alone |" not in printed
    assert "| sampled consensus alone (consensus with samples) | " in printed and "| 0 / 0 / 0 / 1 |" in printed
    assert "| best mix of CLAP and sampled consensus only, cross-fitted |" in printed
    assert "| best mix of CLAP and sampled consensus only, in-sample (optimistic) |" in printed
    assert "without, " in printed and " with CLAP and sampled consensus only (oracle " in printed
    saved = json.loads(output.read_text())
    assert saved["predictions"] == predictions
    assert saved["signals"] == ["clap", "log_prob", "consensus", "sampled_consensus"]
    test = saved["splits"]["test"]
    assert set(test["crossfit"]) == {"mix", "mix_without_clap", "mix_clap_sampled_consensus"}
    assert "best_mix_clap_sampled_consensus_gain" in test
    assert format_report(saved) in printed


def test_records_without_sampled_consensus_keep_the_three_signals():
    rescoring, _ = split_records()
    assert rescoring_signals(rescoring) == ("clap", "log_prob", "consensus")
    result = reranker_analysis(rescoring, splits=["test"], weight_values=[1])
    assert result["signals"] == ["clap", "log_prob", "consensus"]
    report = result["splits"]["test"]
    assert set(report["crossfit"]) == {"mix", "mix_without_clap"} and report["grid_size"] == 7
    assert not any("sampled" in key for key in (*report, *report["rules"]))
    assert "sampled" not in format_report(result) and "Signals:" not in format_report(result)
    four = ("clap", "log_prob", "consensus", "sampled_consensus")
    with pytest.raises(ValueError, match=r"cannot use signals \['clap', 'log_prob', 'consensus', 'sampled_consensus'\]; "
                                         r"the records allow \['clap', 'log_prob', 'consensus'\]"):
        analyse(rescoring[:4], signals=four)


def test_partial_or_non_finite_sampled_consensus_is_named():
    rescoring, _ = split_records()
    for record in rescoring:
        with_sampled_consensus(record, right=True)
    one_missing = json.loads(json.dumps(rescoring))
    del one_missing[5]["candidates"][2]["consensus"]
    with pytest.raises(ValueError, match=r"only some candidates carry 'consensus' \(consensus with sampled captions\): "
                                         r"clip 'compositional_5.flac', candidate 2 has none, clip 'test_0.flac', "
                                         r"candidate 0 has one"):
        reranker_analysis(one_missing)
    one_clip = json.loads(json.dumps(rescoring))
    for record in one_clip[1:]:
        for entry in record["candidates"]:
            entry["consensus"] = None  # the same as absent
    with pytest.raises(ValueError, match=r"clip 'test_1.flac', candidate 0 has none, clip 'test_0.flac'"):
        reranker_analysis(one_clip)
    for bad in (math.nan, math.inf, "0.5", True):
        broken = json.loads(json.dumps(rescoring))
        broken[3]["candidates"][1]["consensus"] = bad
        with pytest.raises(ValueError, match=rf"clip 'test_3.flac', candidate 1: consensus \(consensus with sampled "
                                             rf"captions\) is {re.escape(repr(bad))}, expected a finite number"):
            reranker_analysis(broken)
