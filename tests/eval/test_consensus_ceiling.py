"""eval/consensus_ceiling.py: the grammar-as-captioner protocol on 4 clips (structure, determinism, the oracle bounds),
the candidate and pick rules, and every bad-value error of the command line and the function."""

import json

import pytest

from llm_aac.eval.consensus_ceiling import (
    consensus_ceiling,
    consensus_pick,
    draw_captions,
    format_table,
    main,
    most_frequent,
    parse_arguments,
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
