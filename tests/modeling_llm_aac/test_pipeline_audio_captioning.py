"""pipeline("audio-captioning"): every input form, batching equals one by one, CLAP rescoring picks what the scorer
prefers, candidates in the output, clear errors."""

import io

import numpy as np
import pytest
import soundfile
import torch
from captioning_test_utils import LengthPreferringScorer, audio_clips
from transformers import pipeline

import modeling_llm_aac  # noqa: F401  (registers the task)
from modeling_llm_aac.pipeline_audio_captioning import AudioCaptioningPipeline


@pytest.fixture(scope="module")
def captioner(tiny_captioner_parts):
    model, processor = tiny_captioner_parts
    return pipeline("audio-captioning", model=model, processor=processor, device="cpu")


def test_task_is_registered_and_every_input_form_gives_the_same_caption(captioner, tmp_path):
    assert isinstance(captioner, AudioCaptioningPipeline)
    clip = audio_clips()[1]
    expected = captioner(clip)["caption"]
    assert isinstance(expected, str) and expected

    soundfile.write(tmp_path / "clip.wav", clip, 16000, subtype="FLOAT")
    soundfile.write(tmp_path / "clip.flac", np.stack([clip, clip], axis=1), 16000)  # stereo: mixed down
    soundfile.write(tmp_path / "clip.ogg", clip, 16000)
    wav_bytes = (tmp_path / "clip.wav").read_bytes()
    int16 = (clip * 32767).astype(np.int16)
    lossless = [
        str(tmp_path / "clip.wav"), tmp_path / "clip.wav", wav_bytes, torch.from_numpy(clip),
        {"array": clip, "sampling_rate": 16000}, {"raw": clip, "sampling_rate": 16000},
        {"path": str(tmp_path / "clip.wav"), "bytes": None}, {"bytes": wav_bytes, "path": None},
        {"array": np.stack([clip, clip]), "sampling_rate": 16000},  # (channels, samples) as datasets gives
    ]
    for item in lossless:
        assert captioner(item)["caption"] == expected, type(item)
    # 16-bit FLAC, int16 arrays and 44.1 kHz resampling change the samples slightly: they must still caption.
    for item in (str(tmp_path / "clip.flac"), int16, {"array": clip, "sampling_rate": 44100}):
        assert isinstance(captioner(item)["caption"], str)
    # A raw array at another rate: sampling_rate= says so (it is resampled to 16 kHz).
    resampled = captioner(clip, sampling_rate=32000)["caption"]
    assert resampled == captioner({"array": clip, "sampling_rate": 32000})["caption"]
    # Lists give lists, in order.
    listed = captioner([str(tmp_path / "clip.wav"), {"array": clip, "sampling_rate": 16000}])
    assert [out["caption"] for out in listed] == [expected, expected]
    assert isinstance(captioner(str(tmp_path / "clip.ogg"))["caption"], str)


@pytest.mark.parametrize("options", [{}, {"candidates": "single", "num_candidates": 3}, {"candidates": "slam", "beam_sizes": (2, 3)}])
def test_batched_equals_one_by_one(captioner, options):
    clips = audio_clips(seconds=(1.0, 2.3, 1.6, 0.7, 1.2))
    alone = [captioner(clip, return_candidates=True, **options) for clip in clips]
    for batch_size in (2, 5):
        batched = captioner(clips, batch_size=batch_size, return_candidates=True, **options)
        assert [b["caption"] for b in batched] == [a["caption"] for a in alone]
        for a, b in zip(alone, batched):
            assert [c["caption"] for c in a["candidates"]] == [c["caption"] for c in b["candidates"]]
            np.testing.assert_allclose([c["score"] for c in a["candidates"]], [c["score"] for c in b["candidates"]],
                                       atol=1e-4)


def test_rescoring_picks_what_a_fixed_scorer_prefers(tiny_captioner_parts):
    model, processor = tiny_captioner_parts
    scorer = LengthPreferringScorer()
    rescored = pipeline("audio-captioning", model=model, processor=processor, device="cpu", clap=scorer,
                        candidates="single", num_candidates=4)
    plain = pipeline("audio-captioning", model=model, processor=processor, device="cpu", candidates="single",
                     num_candidates=4)
    clips = audio_clips()
    clips[1] = {"array": clips[1], "sampling_rate": 44100}  # a second rate: the scorer gets each rate's clips
    outputs = rescored(clips, batch_size=3, return_candidates=True)
    by_log_prob = plain(clips, batch_size=3, return_candidates=True)
    changed = 0
    for output, reference in zip(outputs, by_log_prob):
        texts = [c["caption"] for c in output["candidates"]]
        assert sorted(texts) == sorted(c["caption"] for c in reference["candidates"])
        assert output["caption"] == max(texts, key=len)  # what the scorer prefers
        assert output["candidates"][0]["caption"] == output["caption"]
        assert all("clap_score" in c and "log_prob" in c for c in output["candidates"])
        best_log_prob = max(reference["candidates"], key=lambda c: c["log_prob"])["caption"]
        assert reference["caption"] == best_log_prob  # without a scorer: the most probable candidate
        changed += output["caption"] != reference["caption"]
    assert changed > 0
    assert sorted(set(scorer.rates_seen)) == [16000, 44100]

    # Log-probability fusion: a huge weight makes the pick the most probable candidate again.
    fused = rescored(clips, batch_size=3, lm_weight=1e6)
    assert [f["caption"] for f in fused] == [r["caption"] for r in by_log_prob]


def test_consensus_with_sampled_captions_joins_the_pick(tiny_captioner_parts):
    model, processor = tiny_captioner_parts
    scorer = LengthPreferringScorer()
    rescored = pipeline("audio-captioning", model=model, processor=processor, device="cpu", clap=scorer,
                        candidates="single", num_candidates=4, num_pseudo_references=6, max_new_tokens=8)
    clips = audio_clips()
    clap_only = rescored(clips, batch_size=3, return_candidates=True)
    assert all("consensus" in c for output in clap_only for c in output["candidates"])
    # Weight 0 (the scorer's default): the consensus is reported but the scorer decides, as without samples.
    assert [o["caption"] for o in clap_only] == [max((c["caption"] for c in o["candidates"]), key=len)
                                                 for o in clap_only]
    # A huge weight: the candidate agreeing most with the samples wins; the samples are seeded, so calls repeat.
    by_consensus = rescored(clips, batch_size=3, return_candidates=True, consensus_weight=1e6)
    assert by_consensus == rescored(clips, batch_size=3, return_candidates=True, consensus_weight=1e6)
    for output in by_consensus:
        best = max(output["candidates"], key=lambda c: (c["consensus"], -output["candidates"].index(c)))
        assert output["caption"] == best["caption"]
    # Without a scorer: log-probability plus the weighted consensus.
    plain = pipeline("audio-captioning", model=model, processor=processor, device="cpu", candidates="single",
                     num_candidates=4, num_pseudo_references=6, max_new_tokens=8)
    for output in plain(clips, batch_size=3, return_candidates=True, consensus_weight=2.0):
        for candidate in output["candidates"]:
            assert candidate["score"] == pytest.approx(candidate["log_prob"] + 2.0 * candidate["consensus"])
    # The scorer's default weight applies when the call gives none.
    scorer.consensus_weight = 1e6
    assert [o["caption"] for o in rescored(clips, batch_size=3)] == [o["caption"] for o in by_consensus]


def test_plain_decoding_candidates_output_and_overrides(captioner):
    clip = audio_clips()[0]
    output = captioner(clip, return_candidates=True)
    assert set(output) == {"caption", "candidates"} and output["candidates"][0]["caption"] == output["caption"]
    short = captioner(clip, generate_kwargs={"num_beams": 1, "max_new_tokens": 2})["caption"]
    assert len(short.split()) <= 2
    same = captioner(clip, backend="generate")["caption"]
    assert same == output["caption"]


def test_bad_inputs_and_options_raise_clear_errors(captioner, tmp_path):
    (tmp_path / "notes.txt").write_text("not audio\n")
    with pytest.raises(ValueError, match="could not decode audio .*notes.txt"):
        captioner(str(tmp_path / "notes.txt"))
    with pytest.raises(ValueError, match="does not exist"):
        captioner(str(tmp_path / "missing.wav"))
    with pytest.raises(ValueError, match="could not decode"):
        captioner(b"RIFF0000WAVEjunk")
    with pytest.raises(ValueError, match="NaN"):
        captioner(np.full(16000, np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="empty"):
        captioner(np.zeros(0, dtype=np.float32))
    with pytest.raises(ValueError, match="sampling_rate"):
        captioner({"array": np.zeros(16000, dtype=np.float32)})
    with pytest.raises(ValueError, match="sampling_rate"):
        captioner({"array": np.zeros(16000, dtype=np.float32), "sampling_rate": -5})
    with pytest.raises(ValueError, match="shape"):
        captioner(np.zeros((40, 16000), dtype=np.float32))
    with pytest.raises(TypeError, match="got int"):
        captioner(5)
    with pytest.raises(ValueError, match="candidates must be"):
        captioner(np.zeros(16000, dtype=np.float32), candidates="beam")
    with pytest.raises(TypeError, match="unexpected audio-captioning options"):
        captioner(np.zeros(16000, dtype=np.float32), num_candidate=3)
    with pytest.raises(ValueError, match="LLMAACProcessor"):
        AudioCaptioningPipeline(model=captioner.model, device="cpu")


def test_bytes_of_other_containers_are_read(captioner, tmp_path):
    clip = audio_clips()[0]
    buffer = io.BytesIO()
    soundfile.write(buffer, clip, 16000, format="FLAC")
    assert isinstance(captioner(buffer.getvalue())["caption"], str)


def test_cuda_graphs_option_reaches_the_fast_decoder(tiny_captioner_parts):
    model, processor = tiny_captioner_parts
    clips = audio_clips(seconds=(1.0, 1.6))
    plain = pipeline("audio-captioning", model=model, processor=processor, device="cpu")
    expected = [plain(clips, **options) for options in ({}, {"candidates": "slam", "beam_sizes": (2, 3)})]
    # On the CPU the option is accepted and ignored (no CUDA graphs): the same captions.
    graphs = pipeline("audio-captioning", model=model, processor=processor, device="cpu", cuda_graphs=True)
    for options, reference in zip(({}, {"candidates": "slam", "beam_sizes": (2, 3)}), expected):
        assert graphs(clips, **options) == reference
        assert model._llm_aac_fast_generator.cuda_graphs is True
    plain(clips, cuda_graphs=False)
    assert model._llm_aac_fast_generator.cuda_graphs is False
    with pytest.raises(TypeError, match="cuda_graphs"):
        plain(clips, cuda_graphs="on")
