"""compute_caption_metrics against aac-metrics' own evaluate() and pycocoevalcap's METEOR.

Java-using tests share one module-scoped `compute_caption_metrics` call (each METEOR start loads a
60 MB paraphrase table); everything else runs the Java-free metrics only.
"""

import math

import pytest

from llm_aac.eval.caption_metrics import (
    METRIC_SETS,
    compute_caption_metrics,
    markdown_table,
    ptb_tokenize,
    resolve_metrics,
    sanitize_caption,
)
from llm_aac.eval.java_tools import detect_java, lifted_java_version_check, prepare_java_tool_cache
from llm_aac.eval.ptb_tokenizer import ptb_tokenize_python
from java_marks import requires_java_tools


# Clip 3's prediction is blank after sanitising; clip 1's has a newline and extra spaces.
PREDICTIONS = [
    "A dog barks loudly while cars pass by.",
    "rain falls\non a   metal roof ",
    "Birds are chirping in the trees.",
    "   ",
    "a man speaks and a door closes",
    "Water is running from a tap.",
]
REFERENCES = [
    [
        "A dog is barking as cars drive past.",
        "A dog barks repeatedly near a busy road.",
        "Cars pass by while a dog barks.",
        "A loud dog barks and vehicles go by.",
        "Traffic passes as a dog keeps barking.",
    ],
    [
        "Rain is falling on a tin roof.",
        "Heavy rain pours onto a metal roof.",
        "Raindrops hit a roof steadily.",
        "Rain patters on a metal surface.",
        "It is raining hard on a roof.",
    ],
    [
        "Birds chirp and sing in the trees.",
        "Several birds are chirping outdoors.",
        "Birds tweet in a forest.",
        "Small birds sing in the morning.",
        "A flock of birds chirps loudly.",
    ],
    [
        "A clock ticks steadily.",
        "A clock is ticking in a quiet room.",
        "Ticking of a clock.",
        "A mechanical clock ticks.",
        "The steady tick of a clock.",
    ],
    [
        "A man talks and then a door shuts.",
        "A man speaks before a door slams.",
        "Someone talks and a door closes.",
        "A male voice speaks, then a door bangs.",
        "A man is speaking and a door closes.",
    ],
    [
        "Water runs from a faucet.",
        "A tap is running water into a sink.",
        "Water flows out of a tap.",
        "Running water splashes in a sink.",
        "Water pours from a kitchen faucet.",
    ],
]
NO_JAVA_METRICS = ["bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider_d"]
TOLERANCE = 1e-6


def sanitized_inputs():
    return [sanitize_caption(p) for p in PREDICTIONS], [[sanitize_caption(r) for r in refs] for refs in REFERENCES]


def aac_evaluate(candidates, references, metrics, preprocess, **kwargs):
    from aac_metrics.functional.evaluate import evaluate

    corpus, _ = evaluate(candidates, references, preprocess=preprocess, metrics=metrics, device="cpu", **kwargs)
    return {key: float(value) for key, value in corpus.items()}


def isolate_model_caches(monkeypatch, tmp_path):
    """Make the FENSE models look absent whatever this machine has cached."""
    import huggingface_hub.constants

    monkeypatch.setenv("FENSE_DATA", str(tmp_path / "fense_data"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))


def hide_java(monkeypatch, tmp_path):
    empty_bin = tmp_path / "bin_without_java"
    empty_bin.mkdir(exist_ok=True)
    monkeypatch.setenv("PATH", str(empty_bin))
    monkeypatch.delenv("AAC_METRICS_JAVA_PATH", raising=False)


@pytest.fixture(scope="module")
def aac_cache(tmp_path_factory):
    return prepare_java_tool_cache(tmp_path_factory.mktemp("aac_cache")).cache_path


@pytest.fixture(scope="module")
def all_result(aac_cache, tmp_path_factory):
    """One call of the "all" set: PTB tokenizer + METEOR run, SPICE and FENSE models absent."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate_model_caches(monkeypatch, tmp_path_factory.mktemp("models"))
        return compute_caption_metrics(PREDICTIONS, REFERENCES, "all", cache_path=aac_cache, device="cpu")


@requires_java_tools
def test_all_set_equals_aac_metrics_evaluate(all_result, aac_cache):
    candidates, references = sanitized_inputs()
    # aac-metrics' own pipeline end to end: two PTB-tokenizer runs, then the metrics. Equal
    # n-gram scores show that our single tokenizer run gives aac-metrics' tokens. METEOR is left
    # to test_meteor_equals_pycocoevalcap: it is aac-metrics' own meteor() on those same tokens,
    # and each extra METEOR start costs 6-20 s on this machine.
    with lifted_java_version_check(detect_java()):
        expected = aac_evaluate(
            candidates, references, NO_JAVA_METRICS + ["vocab"], preprocess=True, cache_path=aac_cache
        )
    assert all_result.tokenized and all_result.tokenizer == "java"
    for key, value in expected.items():
        assert all_result.scores[key] == pytest.approx(value, abs=TOLERANCE), key
    assert set(all_result.scores) == set(expected) | {"meteor"}
    assert 0.0 < all_result.scores["meteor"] < 1.0


@requires_java_tools
def test_meteor_equals_pycocoevalcap(all_result, aac_cache):
    from aac_metrics.utils.tokenization import preprocess_mono_sents, preprocess_mult_sents
    from pycocoevalcap.meteor.meteor import Meteor

    candidates, references = sanitized_inputs()
    java = detect_java()
    with lifted_java_version_check(java):
        candidates = preprocess_mono_sents(candidates, cache_path=aac_cache, java_path=java.path)
        references = preprocess_mult_sents(references, cache_path=aac_cache, java_path=java.path)
    meteor = Meteor()
    try:
        corpus, per_clip = meteor.compute_score(
            {i: refs for i, refs in enumerate(references)}, {i: [cand] for i, cand in enumerate(candidates)}
        )
    finally:
        del meteor
    assert all_result.scores["meteor"] == pytest.approx(corpus, abs=TOLERANCE)
    assert all_result.sentence_scores["meteor"] == pytest.approx(per_clip, abs=TOLERANCE)


@requires_java_tools
def test_unavailable_metrics_are_skipped_with_reason_and_fix(all_result, aac_cache):
    assert set(all_result.skipped) == {"spice", "spider", "fer", "spider_fl", "sbert_sim", "fense"}
    assert "aac-metrics-download" in all_result.skipped["spice"]
    assert aac_cache in all_result.skipped["spice"]
    assert "CoreNLP 3.6.0" in all_result.skipped["spider_fl"]
    assert "echecker_clotho_audiocaps_base" in all_result.skipped["spider_fl"]
    assert "paraphrase-TinyBERT-L6-v2" in all_result.skipped["fense"]
    assert "aac-metrics-download" in all_result.skipped["fense"]
    assert all_result.ranking_metric == "fense" and all_result.ranking_score is None
    assert set(all_result.missing) == {"spice_files", "fer_model", "sbert_model"}


@requires_java_tools
def test_blank_prediction_is_counted_and_scores_zero(all_result):
    assert all_result.num_clips == len(PREDICTIONS)
    assert all_result.num_blank_predictions == 1
    for name in ("bleu_1", "meteor", "rouge_l", "cider_d"):
        assert len(all_result.sentence_scores[name]) == len(PREDICTIONS)
        assert all_result.sentence_scores[name][3] == 0.0, name
    # CIDEr-D's corpus score is the mean over clips: the blank clip pulls it down.
    cider = all_result.sentence_scores["cider_d"]
    assert all_result.scores["cider_d"] == pytest.approx(sum(cider) / len(cider))


@requires_java_tools
def test_markdown_table(all_result):
    table = markdown_table({"beam": all_result, "rescored": all_result})
    lines = table.splitlines()
    assert lines[0].startswith("| system | BLEU-1 |") and "**FENSE**" in lines[0]
    assert lines[2].startswith(f"| beam | {all_result.scores['bleu_1']:.3f} |")
    assert "| n/a |" in lines[2]
    assert lines[2].endswith(f"| {int(all_result.scores['vocab.cands'])} |")
    assert any(line.startswith("- beam: SPICE, SPIDEr, SPIDEr-FL skipped:") for line in lines)
    assert any("1 of 6 predictions were blank" in line for line in lines)


def test_fast_set_runs_without_java_and_equals_aac_metrics(monkeypatch, tmp_path):
    hide_java(monkeypatch, tmp_path)
    result = compute_caption_metrics(PREDICTIONS, REFERENCES, "fast")
    candidates, references = sanitized_inputs()
    expected = aac_evaluate(candidates, references, NO_JAVA_METRICS, preprocess=False)
    assert result.scores == pytest.approx(expected, abs=TOLERANCE)
    assert not result.tokenized and not result.skipped and not result.warnings
    assert result.ranking_metric == "cider_d"


def test_blank_prediction_lowers_scores():
    filled = list(PREDICTIONS)
    filled[3] = "A clock is ticking."
    with_blank = compute_caption_metrics(PREDICTIONS, REFERENCES, "fast")
    without_blank = compute_caption_metrics(filled, REFERENCES, "fast")
    assert with_blank.num_blank_predictions == 1 and without_blank.num_blank_predictions == 0
    for name in NO_JAVA_METRICS:
        assert with_blank.scores[name] < without_blank.scores[name], name


def test_no_java_skips_java_metrics_and_keeps_the_others(monkeypatch, tmp_path, caplog):
    hide_java(monkeypatch, tmp_path)
    isolate_model_caches(monkeypatch, tmp_path)
    result = compute_caption_metrics(PREDICTIONS, REFERENCES, "dcase2024", cache_path=tmp_path / "cache")
    assert set(result.skipped) == {"meteor", "spice", "spider", "fer", "spider_fl", "sbert_sim", "fense"}
    for name in ("meteor", "spice", "spider_fl"):
        assert "no Java executable 'java' found on PATH" in result.skipped[name]
        assert "openjdk" in result.skipped[name]
    # CIDEr-D and vocabulary size still computed, on captions tokenised by the Python re-implementation.
    assert set(result.scores) >= {"cider_d", "vocab.cands"}
    assert result.tokenized and result.tokenizer == "python"
    assert result.warnings and "PTB-tokenised by the Python re-implementation" in result.warnings[0]
    assert "no Java executable 'java' found on PATH" in result.warnings[0]
    assert result.to_dict()["tokenizer"] == "python"
    candidates, references = sanitized_inputs()
    tokenized = iter(ptb_tokenize_python(candidates + [ref for refs in references for ref in refs]))
    tokenized_candidates = [next(tokenized) for _ in candidates]
    tokenized_references = [[next(tokenized) for _ in refs] for refs in references]
    assert result.scores["cider_d"] == pytest.approx(
        aac_evaluate(tokenized_candidates, tokenized_references, ["cider_d"], preprocess=False)["cider_d"],
        abs=TOLERANCE,
    )
    assert "caption metric meteor skipped" in caplog.text
    forced = compute_caption_metrics(PREDICTIONS, REFERENCES, ["bleu_1"], tokenize=True, cache_path=tmp_path / "cache")
    assert forced.tokenizer == "python" and not forced.skipped


def test_no_java_and_captions_the_python_tokenizer_refuses(monkeypatch, tmp_path):
    hide_java(monkeypatch, tmp_path)
    predictions = list(PREDICTIONS)
    predictions[0] = "A dog barks <loudly>"
    result = compute_caption_metrics(predictions, REFERENCES, ["cider_d"], cache_path=tmp_path / "cache")
    # Scored untokenised, with a warning naming both reasons.
    assert not result.tokenized and result.tokenizer is None
    assert "not PTB-tokenised" in result.warnings[0] and "no Java executable" in result.warnings[0]
    assert "'<' (U+003C LESS-THAN SIGN)" in result.warnings[0]
    assert "java" in result.missing
    candidates, references = sanitized_inputs()
    candidates[0] = predictions[0]
    assert result.scores["cider_d"] == pytest.approx(
        aac_evaluate(candidates, references, ["cider_d"], preprocess=False)["cider_d"], abs=TOLERANCE
    )
    with pytest.raises(RuntimeError, match="PTB tokenisation was requested but cannot run: no Java.*cannot stand in"):
        compute_caption_metrics(predictions, REFERENCES, ["bleu_1"], tokenize=True, cache_path=tmp_path / "cache")


@requires_java_tools
def test_python_fallback_gives_the_java_tokenised_scores(all_result, monkeypatch, tmp_path):
    hide_java(monkeypatch, tmp_path)
    fallback = compute_caption_metrics(PREDICTIONS, REFERENCES, NO_JAVA_METRICS + ["vocab"], tokenize=True,
                                       cache_path=tmp_path / "cache")
    assert fallback.tokenizer == "python"
    assert fallback.scores == pytest.approx({key: all_result.scores[key] for key in fallback.scores}, abs=TOLERANCE)


def test_metric_sets_and_names():
    names, metric_set, ranking, tokenize = resolve_metrics("dcase2023")
    assert ranking == "spider_fl" and "meteor" in names and "fense" not in names and tokenize
    assert resolve_metrics("dcase2024")[2] == "fense"
    assert resolve_metrics(["CIDEr-D", "bleu"]) == (
        ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "cider_d"),
        None,
        "cider_d",
        True,
    )
    assert set(METRIC_SETS["all"][0]) >= {"bleu_1", "meteor", "spider_fl", "fense", "vocab"}
    with pytest.raises(ValueError, match="unknown metric 'bert'"):
        resolve_metrics(["bert"])


def test_explicit_list_and_ranking_override():
    result = compute_caption_metrics(
        PREDICTIONS, REFERENCES, ["rouge_l", "bleu_4"], tokenize=False, ranking_metric="bleu_4"
    )
    assert set(result.scores) == {"bleu_4", "rouge_l"}
    assert result.requested == ("bleu_4", "rouge_l")
    assert result.ranking_score == result.scores["bleu_4"]
    assert result.to_dict()["ranking_score"] == result.scores["bleu_4"]
    with pytest.raises(ValueError, match="unknown ranking_metric 'fast'"):
        compute_caption_metrics(PREDICTIONS, REFERENCES, "fast", ranking_metric="fast")


def test_sanitize_caption():
    assert sanitize_caption("  A dog\nbarks\t\tloudly \r\n") == "A dog barks loudly"
    assert sanitize_caption("\n \t") == ""


@pytest.mark.parametrize(
    "predictions, references, error, message",
    [
        (["a"], [["a"], ["b"]], ValueError, "1 predictions but 2 reference lists"),
        ([], [], ValueError, "no clips to score"),
        ("a dog", [["a dog"]], TypeError, "predictions must be a list"),
        (["a"], ["a dog"], TypeError, r"references\[0\] is a single string"),
        (["a"], [[]], ValueError, "clip 0 has no reference captions"),
        (["a", "b"], [["a"], ["b", " \n"]], ValueError, r"references\[1\]\[1\]"),
        ([3], [["a"]], TypeError, "prediction 0 is int"),
        (["a"], [[None]], TypeError, r"references\[0\]\[0\] is NoneType"),
    ],
)
def test_bad_inputs(predictions, references, error, message):
    with pytest.raises(error, match=message):
        compute_caption_metrics(predictions, references, "fast")


def test_none_prediction_counts_as_blank():
    result = compute_caption_metrics([None, "a dog barks"], [["a cat"], ["a dog barks"]], "fast")
    assert result.num_blank_predictions == 1
    assert not math.isnan(result.scores["cider_d"])


@requires_java_tools
def test_tokenising_once_then_scoring_untokenised_equals_scoring_with_tokenisation():
    predictions = ["A dog's bark,  then RAIN.", "Someone knocks twice!", "a bell rings (loudly)"]
    references = [["A dog barks, then rain falls.", "rain after a dog's bark"], ["Knock, knock."],
                  ["A loud bell rings.", "the bell rang"]]
    tokenized = ptb_tokenize(predictions + [ref for refs in references for ref in refs])
    assert tokenized[0] == "a dog 's bark then rain"  # lower-cased, PTB split, punctuation dropped
    mapping = dict(zip(predictions + [ref for refs in references for ref in refs], tokenized))
    direct = compute_caption_metrics(predictions, references, ["cider_d", "bleu_4"], tokenize=True)
    once = compute_caption_metrics([mapping[p] for p in predictions], [[mapping[r] for r in refs] for refs in references],
                                   ["cider_d", "bleu_4"], tokenize=False)
    assert once.scores == pytest.approx(direct.scores)


def test_ptb_tokenize_falls_back_to_python_without_java(tmp_path, caplog):
    texts = ["A dog's bark,  then RAIN.", "a bell rings (loudly)"]
    tokenized = ptb_tokenize(texts, java_path=tmp_path / "no-java")
    assert tokenized == ["a dog 's bark then rain", "a bell rings -lrb- loudly -rrb-"]
    assert "PTB-tokenised by the Python re-implementation" in caplog.text
    with pytest.raises(RuntimeError, match="PTB tokenisation cannot run: no Java.*text 1 .*U\\+003E"):
        ptb_tokenize(["a dog", "a -> b"], java_path=tmp_path / "no-java")
