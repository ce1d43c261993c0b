"""Consensus scores (minimum-Bayes-risk agreement with sampled captions): hand-computed values, the length penalty,
blanks, and input checks."""

import math

import pytest

from modeling_llm_aac.consensus_scoring import caption_words, consensus_scores


def test_words_ignore_case_and_punctuation():
    assert caption_words("A dog's bark, then RAIN!") == ["a", "dog's", "bark", "then", "rain"]
    assert caption_words("  ...  ") == []


def test_hand_computed_agreement():
    # "dogs bark then rain" vs "dogs bark then wind": 1-grams 3 of 4 shared (cosine 3/4), 2-grams 2 of 3 (2/3),
    # 3-grams 1 of 2 (1/2), 4-grams none (0); same length, no penalty.
    expected = (3 / 4 + 2 / 3 + 1 / 2 + 0) / 4
    assert consensus_scores(["Dogs bark, then rain."], ["dogs bark then wind"]) == [pytest.approx(expected)]
    # Identical captions of four or more words agree fully; a three-word one has no 4-gram to agree on.
    assert consensus_scores(["a dog barks loudly"], ["A dog barks loudly."]) == [pytest.approx(1.0)]
    assert consensus_scores(["a dog barks"], ["a dog barks"]) == [pytest.approx(0.75)]
    # Repeated n-grams are clipped by the reference's count and weighted by it (CIDEr-D's numerator).
    repeated = consensus_scores(["beep beep beep beep"], ["beep beep"])[0]
    # 1-grams: min(4, 2) * 2 / (4 * 2) = 0.5; 2-grams: min(3, 1) * 1 / (3 * 1) = 1/3; 3-, 4-grams: none in the
    # reference; length 4 vs 2: exp(-4 / 72).
    assert repeated == pytest.approx((0.5 + 1 / 3) / 4 * math.exp(-4 / 72))


def test_length_penalty_and_averaging_over_samples():
    short, long = "a dog barks loudly", "a dog barks loudly " + "and then " * 5 + "it stops"
    far = consensus_scores([long], [short])[0]
    words = len(caption_words(long)) - 4
    assert consensus_scores([long], [short], sigma=1e9)[0] * math.exp(-(words**2) / 72) == pytest.approx(far)
    # The score is the mean over the samples, blank samples ignored.
    a, b = consensus_scores(["a dog barks loudly"], ["a dog barks loudly"]), consensus_scores(
        ["a dog barks loudly"], ["rain falls on a roof"])
    assert consensus_scores(["a dog barks loudly"], ["a dog barks loudly", "", "rain falls on a roof"]) == [
        pytest.approx((a[0] + b[0]) / 2)]


def test_the_majority_wording_wins():
    samples = ["a siren rises twice", "a siren rises twice", "a siren rises in pitch twice", "a bell rings"]
    scores = consensus_scores(["a bell rings", "a siren rises in pitch twice", "a siren rises twice", ""], samples)
    assert max(range(3), key=scores.__getitem__) == 2
    assert scores[3] == 0.0  # a blank candidate
    assert all(0.0 <= s <= 1.0 for s in scores)
    # max_n=1: bag-of-words agreement only
    assert consensus_scores(["twice rises siren a"], ["a siren rises twice"], max_n=1) == [pytest.approx(1.0)]


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="no candidates"):
        consensus_scores([], ["a dog"])
    with pytest.raises(ValueError, match="at least one non-blank pseudo-reference"):
        consensus_scores(["a dog"], ["", "  "])
    with pytest.raises(ValueError, match="at least one non-blank pseudo-reference"):
        consensus_scores(["a dog"], [])
    with pytest.raises(TypeError, match="candidates must be a list of strings"):
        consensus_scores("a dog", ["a dog"])
    with pytest.raises(TypeError, match=r"pseudo_references must hold strings only, got \[3\]"):
        consensus_scores(["a dog"], ["a dog", 3])
    with pytest.raises(ValueError, match="max_n must be a positive integer"):
        consensus_scores(["a dog"], ["a dog"], max_n=0)
    with pytest.raises(ValueError, match="sigma must be a positive number"):
        consensus_scores(["a dog"], ["a dog"], sigma=float("nan"))
