"""eval/consensus_ceiling.py: the grammar-as-captioner protocol on 4 clips (structure, determinism, the oracle bounds),
the candidate and pick rules, and every bad-value error of the command line and the function; the saved-candidates
mode on hand-made predictions of 3 corpus clips whose picks are known (numbers, the beam file or not, own samples or
not, the errors for a wrong corpus, file name or record)."""

import json
import re

import pytest

from llm_aac.eval.consensus_ceiling import (
    clip_index,
    consensus_ceiling,
    consensus_pick,
    draw_captions,
    format_saved_candidates_table,
    format_table,
    main,
    most_frequent,
    parse_arguments,
    saved_candidates_consensus,
)

TINY = {"clips": 4, "samples": (2, 4), "draws": 30, "candidates": 3}


@pytest.fixture(scope="module")
def tiny_result():
    return consensus_ceiling(**TINY)


def test_structure_and_bounds(tiny_result):
    assert tiny_result["settings"]["samples"] == [2, 4]
    assert 1.0 <= tiny_result["distinct_per_clip"] <= 3.0
    assert [row["samples"] for row in tiny_result["rows"]] == [2, 4]
    for row in tiny_result["rows"]:
        assert row["mode"] == tiny_result["mode"] and row["oracle"] == tiny_result["oracle"]
        assert row["oracle"] >= row["pick"] - 1e-9
        assert row["oracle"] >= row["mode"] - 1e-9
        assert row["oracle"] >= row["random_phrasing"] - 1e-9
        assert 0.0 <= row["changed"] <= 1.0
        assert row["gain"] == pytest.approx(row["pick"] / row["mode"] - 1.0)
    table = format_table(tiny_result)
    assert table.count("\n| ") == 3  # header + one row per K
    assert "| 4 | " in table


def test_deterministic_and_json_output(tiny_result, tmp_path, capsys):
    path = tmp_path / "ceiling.json"
    args = parse_arguments(["--clips", "4", "--samples", "2", "4", "--draws", "30", "--candidates", "3",
                            "--output-json", str(path)])
    assert main(args) == 0
    assert json.loads(path.read_text()) == json.loads(json.dumps(tiny_result))
    assert "consensus pick" in capsys.readouterr().out


def test_candidates_and_pick_rules():
    # Equal counts keep the order of first appearance.
    assert most_frequent(["b", "a", "a", "c", "b", "d"], 3) == ["b", "a", "c"]
    assert most_frequent(["x"], 5) == ["x"]
    assert consensus_pick(["A dog barks.", "A bell rings."], ["A bell rings loudly.", "The bell rings."]) == 1
    assert consensus_pick(["A dog barks.", "A dog barks."], ["A dog barks."]) == 0  # tie: the earlier one
    events = [{"type": "bell", "count": 2, "loudness": "loud", "fade": "none", "rate": "slow", "background": False}]
    assert draw_captions(events, "single", 5, 3) == draw_captions(events, "single", 5, 3)


@pytest.mark.parametrize("argv, message", [
    (["--clips", "0"], "--clips: must be >= 1, got 0"),
    (["--samples", "4", "0"], "--samples: must be >= 1, got 0"),
    (["--candidates", "0"], "--candidates: must be >= 1, got 0"),
    (["--draws", "5", "--candidates", "7"], "M=5 < C=7"),
    (["--clips", "two"], "expected an integer, got 'two'"),
    (["--split", "train"], "invalid choice: 'train'"),
])
def test_command_line_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_arguments(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("overrides, message", [
    ({"clips": 0}, "clips must be an integer >= 1, got 0"),
    ({"samples": []}, "samples must be a non-empty list"),
    ({"samples": (2, 0)}, "every number of samples must be an integer >= 1, got 0"),
    ({"candidates": 0}, "candidates must be an integer >= 1, got 0"),
    ({"draws": 2}, "draws must be an integer >= 3, got 2"),
    ({"split": "train"}, "split must be one of"),
    ({"corpus_seed": -1}, "corpus_seed must be an integer >= 0, got -1"),
])
def test_function_errors(overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        consensus_ceiling(**{**TINY, **overrides})


# ----------------------------------------------------------------------------------------------- saved candidates

# Words the grammar never writes: these candidates agree with no grammar sample and score 0 against the references.
NONSENSE = ("Xylo quorp wibble.", "Blorp fizz snarg.")


def _candidate(index, caption, log_prob):
    return {"index": index, "caption": caption, "log_prob": log_prob, "clap_score": 0.5, "consensus": 0.0,
            "score": 0.0, "origin": f"beam {index + 1}"}


def _saved_evaluation(folder, *, with_beam=True, with_samples=True, edit=None):
    """Rescoring (and beam-search) predictions of test clips 0-2 whose picks are known by construction:

    clip 0: candidates [nonsense A (top log-prob), reference 0, nonsense B]; own samples are nonsense B, so consensus
            with them picks B (slot 2); grammar samples pick the reference (slot 1); run's pick: the reference;
            beam search: nonsense A.
    clip 1: candidates [reference 1 (top log-prob), nonsense A], listed out of index order; own samples: the
            reference; both consensus picks: slot 0; run's pick and beam search: nonsense A.
    clip 2: candidates [nonsense A, nonsense B (top log-prob)]; own samples: nonsense B (slot 1); grammar samples
            agree with neither, the tie goes to slot 0; beam search: reference 2, not a candidate (an extra slot).
    """
    from llm_aac.processing.synthetic import generate_clip

    refs = [generate_clip(0, i, "test", with_audio=False)["captions"] for i in range(3)]
    clips = [
        ([_candidate(0, NONSENSE[0], -0.1), _candidate(1, refs[0][0], -0.5), _candidate(2, NONSENSE[1], -0.9)],
         refs[0][0], [NONSENSE[1]] * 2, NONSENSE[0]),
        ([_candidate(1, NONSENSE[0], -0.7), _candidate(0, refs[1][1], -0.2)], NONSENSE[0], [refs[1][1]] * 2,
         NONSENSE[0]),
        ([_candidate(0, NONSENSE[0], -0.6), _candidate(1, NONSENSE[1], -0.3)], NONSENSE[0], [NONSENSE[1]] * 2,
         refs[2][2]),
    ]
    records, beams = [], []
    for i, (candidates, prediction, own, beam) in enumerate(clips):
        record = {"file": f"synth_test_{i:06d}.flac", "split": "test", "prediction": prediction,
                  "candidates": candidates, "references": list(refs[i])}
        if with_samples:
            record["pseudo_references"] = own
        records.append(record)
        beams.append({"file": record["file"], "split": "test", "prediction": beam, "references": list(refs[i])})
    if edit is not None:
        edit(records)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "predictions-clap_rescoring.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if with_beam:
        (folder / "predictions-beam_search.jsonl").write_text("".join(json.dumps(r) + "\n" for r in beams))
    return folder, refs


@pytest.fixture(scope="module")
def saved_result(tmp_path_factory):
    folder, refs = _saved_evaluation(tmp_path_factory.mktemp("saved") / "evaluation")
    return saved_candidates_consensus(predictions=folder, samples=(1, 2, 3)), refs


def test_saved_candidates_picks_and_numbers(saved_result):
    from llm_aac.eval.candidate_headroom import candidate_scores

    result, refs = saved_result
    assert result["clips"] == 3 and result["own_samples_saved"] == 2 and result["baseline"] == "beam_search"
    assert result["candidates_per_clip"] == pytest.approx(7 / 3)
    per_clip = result["per_clip"]
    assert [clip["index"] for clip in per_clip] == [0, 1, 2]
    assert [clip["captioner_pick"] for clip in per_clip] == [0, 0, 1]
    # Own picks per K (1, 2, 3): the third K is above the 2 samples saved.
    assert [clip["own_picks"] for clip in per_clip] == [[2, 2, None], [0, 0, None], [1, 1, None]]
    assert [clip["grammar_picks"] for clip in per_clip] == [[1, 1, 1], [0, 0, 0], [0, 0, 0]]

    # The truth, scored independently: the references' captions score > 0, nonsense 0.
    good = candidate_scores([[refs[0][0]], [refs[1][1]], [refs[2][2]]], refs, tokenize=False)
    good = [scores[0] for scores in good]
    assert min(good) > 0
    assert [clip["candidate_cider_d"] for clip in per_clip] == [
        [0.0, pytest.approx(good[0]), 0.0], [pytest.approx(good[1]), 0.0], [0.0, 0.0]]
    assert [clip["beam_cider_d"] for clip in per_clip] == [0.0, 0.0, pytest.approx(good[2])]

    rows = {(row["rule"], row["samples"]): row for row in result["rows"]}
    assert list(rows) == [("beam_search", None), ("captioner_pick", None), ("run_pick", None),
                          ("own_samples", 1), ("grammar_samples", 1), ("own_samples", 2), ("grammar_samples", 2),
                          ("own_samples", 3), ("grammar_samples", 3), ("oracle", None)]
    beam = good[2] / 3
    expected = {"beam_search": beam, "captioner_pick": good[1] / 3, "run_pick": good[0] / 3,
                "own_samples": good[1] / 3, "grammar_samples": (good[0] + good[1]) / 3,
                "oracle": (good[0] + good[1]) / 3}
    for (rule, k), row in rows.items():
        if k == 3 and rule == "own_samples":
            assert row["cider_d"] is None and row["gain"] is None
            continue
        assert row["cider_d"] == pytest.approx(expected[rule]), rule
        assert row["gain"] == pytest.approx(expected[rule] / beam - 1.0)
        oracle = expected["oracle"]
        assert row["headroom_taken"] == pytest.approx((expected[rule] - beam) / (oracle - beam))
    assert rows[("own_samples", 2)]["same_as_grammar"] == pytest.approx(1 / 3)  # clip 1 only
    assert rows[("grammar_samples", 2)]["changed"] == pytest.approx(2 / 3)  # clips 0 and 2
    assert rows[("beam_search", None)]["changed"] == pytest.approx(2 / 3)  # clip 0: the same caption as slot 0

    table = format_saved_candidates_table(result)
    assert "| consensus, grammar samples | 2 |" in table and "n/a (only 2 saved)" in table
    assert "vs beam search" in table and table.count("\n| ") == 11  # header + 10 rows


def test_saved_candidates_command_line(tmp_path, capsys):
    """A folder without the beam-search file (gains vs the captioner's pick) and a file without own samples, through
    the command line, with --max-clips and the JSON output."""
    folder, refs = _saved_evaluation(tmp_path / "evaluation", with_beam=False, with_samples=False)
    path = tmp_path / "saved.json"
    args = parse_arguments(["--predictions", str(folder), "--samples", "2", "--max-clips", "2",
                            "--output-json", str(path)])
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "vs captioner's pick" in out and "no own samples in the file" in out
    assert "the first 2 of 3 by clip index" in out
    result = json.loads(path.read_text())
    assert result["baseline"] == "captioner_pick" and result["settings"]["beam"] is None
    assert [(row["rule"], row["samples"]) for row in result["rows"]] == [
        ("captioner_pick", None), ("run_pick", None), ("grammar_samples", 2), ("oracle", None)]
    assert [clip["grammar_picks"] for clip in result["per_clip"]] == [[1], [0]]
    assert result["rows"][0]["gain"] == 0.0


def _swap_references(records):
    records[1]["references"] = records[1]["references"][::-1]


def _rename_clip(records):
    records[2]["file"] = "clip_000002.flac"


def _some_samples(records):
    del records[1]["pseudo_references"]


def _no_index(records):
    del records[0]["candidates"][1]["index"]


@pytest.mark.parametrize("edit, overrides, message", [
    (_swap_references, {}, "clip 'synth_test_000001.flac': its references are not the captions of clip 1 of split "
                           "'test' with corpus seed 0"),
    (None, {"corpus_seed": 1}, "with corpus seed 1 (the corpus seed or split does not match"),
    (_rename_clip, {}, "clip file name 'clip_000002.flac' is not synth_test_<6 digits>.<ext>"),
    (_some_samples, {}, "only some clips carry pseudo_references"),
    (_no_index, {}, "every candidate needs a distinct integer `index`"),
    (None, {"split": "compositional"}, "no records of split 'compositional'"),
    (None, {"max_clips": 0}, "max_clips must be an integer >= 1, got 0"),
])
def test_saved_candidates_errors(tmp_path, edit, overrides, message):
    folder, _ = _saved_evaluation(tmp_path / "evaluation", edit=edit)
    with pytest.raises(ValueError, match=re.escape(message)):
        saved_candidates_consensus(predictions=folder, samples=(1,), **overrides)


def test_clip_index():
    assert clip_index("synth_test_000123.flac", "test") == 123
    assert clip_index("/data/synth_compositional_004000.wav", "compositional") == 4000
    for name in ("synth_test_123.flac", "synth_test_000123", "synth_compositional_000123.flac"):
        with pytest.raises(ValueError, match="is not synth_test_<6 digits>"):
            clip_index(name, "test")


@pytest.mark.parametrize("argv, message", [
    (["--predictions", "x", "--clips", "5"], "--clips belong to the grammar-only mode"),
    (["--predictions", "x", "--draws", "5", "--candidate-seed-offset", "1"],
     "--draws, --candidate-seed-offset belong to the grammar-only mode"),
    (["--max-clips", "5"], "--max-clips belongs to the saved-candidates mode"),
])
def test_mode_errors(argv, message, capsys):
    with pytest.raises(SystemExit):
        parse_arguments(argv)
    assert message in capsys.readouterr().err


def test_missing_predictions_file(tmp_path, capsys):
    assert main(parse_arguments(["--predictions", str(tmp_path)])) == 2
    assert "the folder has no predictions-clap_rescoring.jsonl" in capsys.readouterr().err
