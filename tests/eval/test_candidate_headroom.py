"""eval/candidate_headroom.py: oracle / worst / picked CIDEr-D of rescoring candidates, equal to aac-metrics'
CIDEr-D sentence scores on fixed examples."""

import pytest
from aac_metrics.functional import cider_d

from llm_aac.eval.candidate_headroom import candidate_headroom, format_headroom

REFERENCES = [
    ["a dog barks twice", "a dog barks two times", "two barks from a dog"],
    ["a bell rings three times", "a bell rings thrice", "three bell rings"],
    ["a siren rises then a bell rings", "a rising siren and then a bell", "a siren wails then a bell rings"],
]
CANDIDATES = [  # (caption, length-normalised log-probability)
    [("a dog barks three times", -0.2), ("a dog barks twice", -0.3)],
    [("a bell rings three times", -0.1)],
    [("a bell rings then a siren rises", -0.4), ("a siren rises then a bell rings", -0.5),
     ("a siren rises", -0.6)],
]
PICKED = ["a dog barks twice", "a bell rings three times", "a bell rings then a siren rises"]


def records():
    return [{"file": f"clip{i}", "prediction": picked, "references": refs,
             "candidates": [{"caption": c, "log_prob": lp} for c, lp in candidates]}
            for i, (picked, refs, candidates) in enumerate(zip(PICKED, REFERENCES, CANDIDATES))]


def reference_scores():
    """Per clip, each candidate's CIDEr-D from aac-metrics, one corpus call per candidate slot as the module does."""
    per_clip = [[] for _ in CANDIDATES]
    for slot in range(max(len(c) for c in CANDIDATES)):
        filled = [c[slot][0] if slot < len(c) else c[0][0] for c in CANDIDATES]
        _, sentences = cider_d(filled, REFERENCES)
        for index, value in enumerate(sentences["cider_d"].tolist()):
            if slot < len(CANDIDATES[index]):
                per_clip[index].append(value)
    return per_clip


def test_equals_aac_metrics_sentence_scores_on_fixed_examples():
    scores = reference_scores()
    summary = candidate_headroom(records(), tokenize=False)
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    assert summary["clips"] == 3 and summary["distinct_per_clip"] == pytest.approx(2.0)
    assert summary["oracle"] == pytest.approx(mean([max(s) for s in scores]))
    assert summary["worst"] == pytest.approx(mean([min(s) for s in scores]))
    assert summary["picked"] == pytest.approx(mean([scores[0][1], scores[1][0], scores[2][0]]))
    own = mean([scores[0][0], scores[1][0], scores[2][0]])  # the highest log-probability of each clip
    assert summary["captioner_pick"] == pytest.approx(own)
    assert summary["headroom_taken"] == pytest.approx((summary["picked"] - own) / (summary["oracle"] - own))
    assert summary["worst"] < summary["picked"] < summary["oracle"]
    line = format_headroom(summary)
    assert line.startswith("Candidate headroom (cider_d, 2.00 distinct candidates per clip): oracle ")
    assert "% of the headroom" in line


def test_without_log_probabilities_there_is_no_captioner_pick():
    plain = [{**r, "candidates": [{"caption": c["caption"]} for c in r["candidates"]]} for r in records()]
    summary = candidate_headroom(plain, tokenize=False)
    assert summary["captioner_pick"] is None and summary["headroom_taken"] is None
    assert "captioner's own pick" not in format_headroom(summary)


def test_bad_records_are_named():
    with pytest.raises(ValueError, match="no records"):
        candidate_headroom([])
    broken = records()
    broken[1]["candidates"] = []
    with pytest.raises(ValueError, match=r"1 record\(s\) have no candidates, e.g. \['clip1'\]"):
        candidate_headroom(broken)
