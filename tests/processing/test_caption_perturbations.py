"""processing/caption_perturbations.py: count, order and antonym edits of English captions (synthetic-corpus style
and AudioCaps / Clotho style), what is never edited, and the seeded sampling of `perturb_caption`."""

from __future__ import annotations

import numpy as np
import pytest

from llm_aac.processing.caption_perturbations import (
    PERTURBATION_KINDS,
    antonym_flips,
    count_edits,
    order_swaps,
    parse_perturbation_kinds,
    perturb_caption,
)


@pytest.mark.parametrize("caption, expected", [
    ("A bell rings twice.", ["A bell rings once.", "A bell rings three times."]),
    # a singular numeral becomes plural with its noun and verb (and back), so that the edit stays grammatical
    ("A single bell rings.", ["Two bells ring.", "Three bells ring."]),
    ("Two men talk", ["A single man talks", "Three men talk"]),
    ("three quiet chimes ring.", ["a single quiet chime rings.", "two quiet chimes ring.", "four quiet chimes ring."]),
    ("A single bus passes by", ["Two buses pass by", "Three buses pass by"]),
    ("A dog barks 3 times followed by a man speaking",
     ["A dog barks once followed by a man speaking", "A dog barks 2 times followed by a man speaking",
      "A dog barks 4 times followed by a man speaking"]),
    ("Two quiet low pitched beeps are heard.", ["A single quiet low pitched beep is heard.",
                                                "Three quiet low pitched beeps are heard."]),
    ("A bird chirps a few times", ["A bird chirps once"]),
])
def test_count_edits(caption, expected):
    assert count_edits(caption) == expected


@pytest.mark.parametrize("caption", [
    "A dog barks.",  # no count said
    "One of the men speaks",  # pronoun, not a numeral
    "All at once a dog barks",
    "Once the door opens, a man speaks",
    "People talk one after another",
])
def test_count_edits_leave_captions_without_a_count_alone(caption):
    assert count_edits(caption) == []


@pytest.mark.parametrize("caption, expected", [
    ("A man speaks then a dog barks", ["A dog barks then a man speaks"]),
    ("A car passes by, after that a horn honks twice.", ["A horn honks twice, after that a car passes by."]),
    ("Rain falls after a clock ticks quickly.", ["A clock ticks quickly after rain falls."]),
    # a leading "first" / "after A," stays first; every adjacent pair of three clauses is swapped once
    ("First three beeps go off, then a siren wails.", ["First a siren wails, then three beeps go off."]),
    ("After two sirens rise, a clock ticks, then a knock sounds.",
     ["After a clock ticks, two sirens rise, then a knock sounds.",
      "After two sirens rise, a knock sounds, then a clock ticks."]),
    ("A bird chirps, then two bells ring, and finally a knock sounds.",
     ["Two bells ring, then a bird chirps, and finally a knock sounds.",
      "A bird chirps, then a knock sounds, and finally two bells ring."]),
])
def test_order_swaps(caption, expected):
    assert order_swaps(caption) == expected


@pytest.mark.parametrize("caption", [
    "Birds chirp while a man speaks",  # simultaneous: swapping says the same
    "A woman talks and a baby cries",
    "A dog barks as rain falls",
    "A dog barks after a while",  # a time expression, not a clause
    "After a while, a dog barks",
    "A dog barks every now and then",
    "A dog barks, then a dog barks",  # swapping identical clauses changes nothing
    "Then a dog barks",
])
def test_order_swaps_never_split_overlaps_or_non_sequences(caption):
    assert order_swaps(caption) == []


def test_order_swap_keeps_while_clauses_whole():
    assert order_swaps("A bell rings while rain falls, then a dog barks.") == [
        "A dog barks, then a bell rings while rain falls."]


def test_antonym_flips():
    assert antonym_flips("A loud siren rises in pitch and fades in.") == [
        "A quiet siren rises in pitch and fades in.", "A loud siren falls in pitch and fades in.",
        "A loud siren rises in pitch and fades out."]
    assert antonym_flips("Faint high pitched beeps") == ["Loud high pitched beeps", "Faint low pitched beeps"]
    assert antonym_flips("A dog barks.") == []


def test_perturb_caption_is_seeded_bounded_and_excludes_references():
    caption = "Two quiet low pitched beeps are heard, then three quiet chimes ring."
    first = perturb_caption(caption, rng=7)
    assert first == perturb_caption(caption, rng=np.random.default_rng(7))  # same seed, same edits
    assert [p.kind for p in first] == list(PERTURBATION_KINDS)  # one of each kind by default
    draws = {tuple(p.text for p in perturb_caption(caption, rng=seed)) for seed in range(12)}
    assert len(draws) > 1  # the seed picks among the edits
    two = perturb_caption(caption, "count", per_kind=2, rng=0)
    assert len(two) == 2 and {p.kind for p in two} == {"count"} and len({p.text for p in two}) == 2
    everything = perturb_caption(caption, "count", per_kind=100, rng=0)
    assert [p.text for p in everything] == count_edits(caption)
    # an edit equal to another reference of the clip is dropped (case and punctuation aside)
    excluded = perturb_caption("A bell rings twice.", "count", per_kind=5, exclude=["a bell rings ONCE"])
    assert [p.text for p in excluded] == ["A bell rings three times."]
    assert perturb_caption("A dog barks.", rng=0) == []  # no rule applies: no hard negative
    for kind in ("count", "order", "antonym"):
        assert all(p.text != caption for p in perturb_caption(caption, kind, per_kind=100))


def test_kinds_parsing_and_bad_arguments():
    assert parse_perturbation_kinds("order, COUNT") == ("count", "order")
    assert parse_perturbation_kinds("") == parse_perturbation_kinds("none") == parse_perturbation_kinds(None) == ()
    assert parse_perturbation_kinds(["antonym"]) == ("antonym",)
    with pytest.raises(ValueError, match=r"unknown hard-negative kind\(s\) \['colour'\]"):
        parse_perturbation_kinds("count,colour")
    with pytest.raises(TypeError, match="comma-separated string or a list, got 3"):
        parse_perturbation_kinds(3)
    with pytest.raises(ValueError, match="per_kind must be a positive integer, got 0"):
        perturb_caption("A bell rings twice.", per_kind=0)
    with pytest.raises(TypeError, match="caption must be a string"):
        perturb_caption(None)


def test_a_cap_per_caption_draws_kinds_among_the_applicable_ones():
    caption = "Two quiet low pitched beeps are heard, then three quiet chimes ring."  # every kind applies
    no_order = "A loud bell rings twice."  # count and antonym apply, order does not
    for text, applicable in ((caption, set(PERTURBATION_KINDS)), (no_order, {"count", "antonym"})):
        drawn = []
        for seed in range(30):
            one = perturb_caption(text, max_perturbations=1, rng=seed)
            assert one == perturb_caption(text, max_perturbations=1, rng=np.random.default_rng(seed))  # seeded
            assert len(one) == 1 and one[0].kind in applicable
            assert one[0].text in {p.text for p in perturb_caption(text, one[0].kind, per_kind=100)}
            drawn.append(one[0].kind)
        assert set(drawn) == applicable  # every applicable kind gets drawn, none that does not apply
        two = perturb_caption(text, max_perturbations=2, rng=0)
        assert len(two) == 2 and len({p.kind for p in two}) == 2  # two kinds, in PERTURBATION_KINDS order
        assert [p.kind for p in two] == [k for k in PERTURBATION_KINDS if k in {p.kind for p in two}]
    assert perturb_caption("A dog barks.", max_perturbations=1, rng=0) == []  # no kind applies
    # a kind with one edit, the cap filled from the next kinds: at most max_perturbations in all
    assert len(perturb_caption(caption, per_kind=2, max_perturbations=3, rng=4)) == 3
    # a cap that cannot bind changes nothing, not even the draws
    for seed in range(5):
        for per_kind in (1, 2):
            assert perturb_caption(caption, per_kind=per_kind, max_perturbations=3 * per_kind, rng=seed) == \
                perturb_caption(caption, per_kind=per_kind, rng=seed)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="max_perturbations must be a positive integer or None"):
            perturb_caption(caption, max_perturbations=bad)
