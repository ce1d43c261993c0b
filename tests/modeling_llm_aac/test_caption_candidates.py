"""Caption candidates: the three strategies, both backends giving the same candidates, duplicates removed,
length-normalised log-probabilities carried along, plain decoding, option checks."""

import pytest
import torch
from captioning_test_utils import audio_clips

from modeling_llm_aac.caption_candidates import (
    CandidateOptions,
    CaptionCandidate,
    generate_candidates,
    generate_captions,
    generate_pseudo_references,
    unsupported_fast_options,
)
from modeling_llm_aac.clap_scoring import normalize_caption


@pytest.fixture(scope="module")
def captioner(tiny_captioner_parts):
    model, processor = tiny_captioner_parts
    inputs = processor(audio_clips(), sampling_rate=16000)
    return model, processor, inputs


def summary(candidates):
    return [[(c.text, round(c.log_prob, 4), c.origin) for c in clip] for clip in candidates]


@pytest.mark.parametrize(
    "options",
    [
        dict(strategy="slam", beam_sizes=(2, 3, 4)),
        dict(strategy="single", num_candidates=3),
        dict(strategy="single", num_candidates=2, num_beams=4, length_penalty=0.5),
    ],
)
def test_fast_and_generate_backends_give_the_same_candidates(captioner, options):
    model, processor, inputs = captioner
    fast = generate_candidates(model, processor, inputs, CandidateOptions(backend="fast", max_new_tokens=8, **options))
    slow = generate_candidates(model, processor, inputs, CandidateOptions(backend="generate", max_new_tokens=8, **options))
    assert summary(fast) == summary(slow)
    assert all(isinstance(c, CaptionCandidate) and c.log_prob < 0 for clip in fast for c in clip)


def test_sampling_candidates_follow_the_random_generator(captioner):
    model, processor, inputs = captioner
    options = CandidateOptions(strategy="sample", num_candidates=4, max_new_tokens=6, temperature=0.7, backend="fast")
    first = generate_candidates(model, processor, inputs, options, generator=torch.Generator().manual_seed(1))
    again = generate_candidates(model, processor, inputs, options, generator=torch.Generator().manual_seed(1))
    other = generate_candidates(model, processor, inputs, options, generator=torch.Generator().manual_seed(2))
    assert summary(first) == summary(again) and summary(first) != summary(other)
    assert all(c.origin.startswith("sample ") for clip in first for c in clip)
    # transformers' generate path draws from the global generator and gives well-formed candidates too.
    torch.manual_seed(0)
    slow = generate_candidates(model, processor, inputs, CandidateOptions(strategy="sample", num_candidates=3,
                                                                          max_new_tokens=6, backend="generate"))
    assert len(slow) == 3 and all(1 <= len(clip) <= 3 for clip in slow)


@pytest.mark.parametrize("backend", ["fast", "generate"])
def test_pseudo_references_are_seeded_samples_of_the_captioner(captioner, backend):
    model, processor, inputs = captioner
    options = CandidateOptions(strategy="single", num_candidates=2, max_new_tokens=6, num_pseudo_references=5,
                               backend=backend)
    torch.manual_seed(123)
    before = torch.rand(1)
    first = generate_pseudo_references(model, processor, inputs, options)
    torch.manual_seed(123)
    again = generate_pseudo_references(model, processor, inputs, options)
    assert torch.rand(1) == before  # the caller's random generator is left as it was
    assert first == again and [len(clip) for clip in first] == [5, 5, 5]
    assert all(isinstance(text, str) for clip in first for text in clip)
    other = generate_pseudo_references(model, processor, inputs,
                                       CandidateOptions(max_new_tokens=6, num_pseudo_references=5, backend=backend,
                                                        pseudo_reference_seed=7))
    assert other != first
    with pytest.raises(ValueError, match="num_pseudo_references >= 1"):
        generate_pseudo_references(model, processor, inputs, CandidateOptions())


def test_slam_candidates_are_deduplicated_with_the_best_log_probability(captioner):
    model, processor, inputs = captioner
    options = CandidateOptions(strategy="slam", max_new_tokens=8)
    kept = generate_candidates(model, processor, inputs, options)
    everything = generate_candidates(model, processor, inputs, CandidateOptions(strategy="slam", max_new_tokens=8,
                                                                                 deduplicate=False))
    assert [len(clip) for clip in everything] == [7, 7, 7]
    assert [c.origin for c in everything[0]] == [f"beams={k}" for k in range(2, 9)]
    assert sum(len(clip) for clip in kept) < 21  # a tiny random captioner repeats itself across beam sizes
    for clip_kept, clip_all in zip(kept, everything):
        keys = [normalize_caption(c.text) for c in clip_kept]
        assert len(set(keys)) == len(keys)
        assert set(keys) == {normalize_caption(c.text) for c in clip_all}
        for candidate in clip_kept:
            same = [c.log_prob for c in clip_all if normalize_caption(c.text) == normalize_caption(candidate.text)]
            assert candidate.log_prob == pytest.approx(max(same))


def test_diverse_beam_search_needs_the_fast_backend(captioner):
    model, processor, inputs = captioner
    options = dict(strategy="single", num_candidates=3, diversity_penalty=2.0, max_new_tokens=6)
    diverse = generate_candidates(model, processor, inputs, CandidateOptions(**options))
    assert all([c.origin for c in clip] == ["group 1", "group 2", "group 3"][: len(clip)] for clip in diverse)
    plain = generate_candidates(model, processor, inputs, CandidateOptions(strategy="single", num_candidates=3,
                                                                            max_new_tokens=6))
    assert summary(diverse) != summary(plain)
    with pytest.raises(ValueError, match="group beam search"):
        generate_candidates(model, processor, inputs, CandidateOptions(backend="generate", **options))
    with pytest.raises(ValueError, match="multiple of num_candidates"):
        CandidateOptions(strategy="single", num_candidates=3, num_beams=4, diversity_penalty=1.0)


def test_plain_decoding_follows_the_generation_config(captioner):
    model, processor, inputs = captioner
    fast = generate_captions(model, processor, inputs, backend="fast")
    slow = generate_captions(model, processor, inputs, backend="generate")
    assert [(c.text, round(c.log_prob, 4)) for c in fast] == [(c.text, round(c.log_prob, 4)) for c in slow]
    assert fast[0].origin == "beams=3"  # the tiny captioner's generation config
    greedy = generate_captions(model, processor, inputs, num_beams=1, max_new_tokens=5)
    assert greedy[0].origin == "greedy" and all(c.num_tokens <= 5 for c in greedy)
    # An option the fast decoder lacks sends "auto" to generate, and "fast" refuses it.
    assert unsupported_fast_options({"repetition_penalty": 1.3}) == ["repetition_penalty"]
    penalised = generate_captions(model, processor, inputs, repetition_penalty=1.3)
    assert len(penalised) == 3
    with pytest.raises(ValueError, match="repetition_penalty"):
        generate_captions(model, processor, inputs, backend="fast", repetition_penalty=1.3)


def test_bad_options_raise_clear_errors(captioner):
    model, processor, inputs = captioner
    with pytest.raises(ValueError, match="strategy must be one of"):
        CandidateOptions(strategy="beam")
    with pytest.raises(ValueError, match="num_candidates"):
        CandidateOptions(strategy="sample", num_candidates=0)
    with pytest.raises(ValueError, match="backend"):
        CandidateOptions(backend="vllm")
    with pytest.raises(ValueError, match="cannot return"):
        CandidateOptions(strategy="single", num_candidates=4, num_beams=2)
    with pytest.raises(ValueError, match="num_pseudo_references must be an integer >= 0, got -1"):
        CandidateOptions(num_pseudo_references=-1)
    with pytest.raises(ValueError, match="pseudo_reference_temperature must be a positive number"):
        CandidateOptions(num_pseudo_references=4, pseudo_reference_temperature=0)
    with pytest.raises(ValueError, match="pseudo_reference_seed must be an integer"):
        CandidateOptions(pseudo_reference_seed=1.5)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate_candidates(model, processor, inputs, CandidateOptions(max_new_tokens=0))
    with pytest.raises(ValueError, match="input_features"):
        generate_candidates(model, processor, {"input_ids": inputs["input_ids"]})
