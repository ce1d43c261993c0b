"""CLAP scorer interface: de-duplication, the pick, log-probability fusion, input checks, and the
transformers ClapModel backend built from a tiny config."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from clap_test_utils import tiny_clap_config, tiny_word_tokenizer, tone
from transformers import ClapModel

from modeling_llm_aac.clap_scoring import (
    CLAPScorer,
    TransformersClapScorer,
    as_clip_list,
    deduplicate_candidates,
    default_clap_feature_extractor,
    detect_clap_backend,
    load_clap_scorer,
    normalize_caption,
    rank_candidates,
    window_starts,
)
from modeling_llm_aac.consensus_scoring import consensus_scores


# ----------------------------------------------------------------------------------------------
# Pure functions
# ----------------------------------------------------------------------------------------------


def test_normalize_caption_ignores_case_punctuation_and_spacing():
    assert normalize_caption("A dog barks.") == normalize_caption("a  dog barks") == "a dog barks"
    assert normalize_caption("It's raining!") == "its raining"
    assert normalize_caption("  ...  ") == ""
    with pytest.raises(TypeError, match="strings"):
        normalize_caption(3)


def test_deduplicate_keeps_first_spelling_and_best_log_prob():
    texts, lps = deduplicate_candidates(
        ["A dog barks.", "a bird chirps", "a dog barks", "", "  ", "A bird chirps!"],
        [-1.5, -0.9, -0.4, -0.1, -0.2, -2.0],
    )
    assert texts == ["A dog barks.", "a bird chirps"]
    assert lps == [-0.4, -0.9]
    assert deduplicate_candidates(["", " . "]) == ([""], None)
    assert deduplicate_candidates(["", ""], [-3.0, -1.0]) == ([""], [-1.0])
    with pytest.raises(ValueError, match="empty list of candidates"):
        deduplicate_candidates([])
    with pytest.raises(ValueError, match="2 candidates but 3 log-probabilities"):
        deduplicate_candidates(["a", "b"], [0.0, 0.0, 0.0])
    with pytest.raises(TypeError, match="list of strings"):
        deduplicate_candidates("a dog barks")


def test_rank_candidates_fuses_log_probs_with_the_given_weight():
    candidates = ["a dog barks", "a car passes", "rain falls"]
    clap = [0.30, 0.25, 0.10]
    log_probs = [-2.0, -0.5, -0.1]
    assert rank_candidates(candidates, clap).caption == "a dog barks"
    # 0.30 - 0.2 = 0.10 < 0.25 - 0.05 = 0.20 > 0.10 - 0.01
    fused = rank_candidates(candidates, clap, log_probs, lm_weight=0.1)
    assert fused.caption == "a car passes" and fused.best_index == 1
    assert fused.scores == pytest.approx([0.10, 0.20, 0.09])
    assert fused.ranked()[0] == ("a car passes", pytest.approx(0.20))
    # Large weight: the captioner's favourite wins.
    assert rank_candidates(candidates, clap, log_probs, lm_weight=10.0).caption == "rain falls"
    # Ties go to the earlier candidate.
    assert rank_candidates(["x", "y"], [0.5, 0.5]).caption == "x"
    # A candidate the captioner gave probability 0 can still be chosen by CLAP alone...
    assert rank_candidates(["x", "y"], [0.1, 0.9], [-0.1, -math.inf]).caption == "y"
    # ...but not once its log-probability counts.
    assert rank_candidates(["x", "y"], [0.1, 0.9], [-0.1, -math.inf], lm_weight=0.5).caption == "x"


def test_rank_candidates_rejects_bad_input():
    with pytest.raises(ValueError, match="2 candidates but 3 CLAP scores"):
        rank_candidates(["a", "b"], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="NaN"):
        rank_candidates(["a", "b"], [0.1, float("nan")])
    with pytest.raises(ValueError, match="no log_probs were given"):
        rank_candidates(["a"], [0.1], lm_weight=0.5)
    with pytest.raises(ValueError, match="finite"):
        rank_candidates(["a"], [0.1], [0.0], lm_weight=float("inf"))
    with pytest.raises(ValueError, match=r"finite or -inf.*nan"):
        rank_candidates(["a"], [0.1], [float("nan")], lm_weight=1.0)


def test_rank_candidates_fuses_consensus_with_the_given_weight():
    candidates = ["a dog barks", "a dog barks twice", "rain falls"]
    clap, log_probs, consensus = [0.30, 0.28, 0.10], [-0.5, -0.6, -0.1], [0.2, 0.5, 0.0]
    assert rank_candidates(candidates, clap, consensus=consensus).caption == "a dog barks"  # weight 0: CLAP alone
    fused = rank_candidates(candidates, clap, log_probs, lm_weight=0.1, consensus=consensus, consensus_weight=1.0)
    # 0.30 - 0.05 + 0.2 = 0.45; 0.28 - 0.06 + 0.5 = 0.72; 0.10 - 0.01 + 0 = 0.09
    assert fused.scores == pytest.approx([0.45, 0.72, 0.09]) and fused.caption == "a dog barks twice"
    assert fused.consensus == consensus and fused.consensus_weight == 1.0
    with pytest.raises(ValueError, match="consensus_weight=2.0 fuses consensus scores, but none were given"):
        rank_candidates(candidates, clap, consensus_weight=2.0)
    with pytest.raises(ValueError, match="3 candidates but 2 consensus scores"):
        rank_candidates(candidates, clap, consensus=[0.1, 0.2], consensus_weight=1.0)
    with pytest.raises(ValueError, match="Consensus scores must be finite"):
        rank_candidates(candidates, clap, consensus=[0.1, float("nan"), 0.0], consensus_weight=1.0)
    with pytest.raises(ValueError, match="consensus_weight must be finite"):
        rank_candidates(candidates, clap, consensus=consensus, consensus_weight=float("inf"))


def test_window_starts_cover_the_clip_evenly():
    assert window_starts(50, 100) == [0]
    assert window_starts(100, 100) == [0]
    assert window_starts(250, 100) == [0, 75, 150]
    starts = window_starts(1001, 100)
    assert len(starts) == 11 and starts[0] == 0 and starts[-1] + 100 == 1001
    assert all(b - a <= 100 for a, b in zip(starts, starts[1:]))


def test_audio_input_checks_name_the_problem():
    assert [c.shape for c in as_clip_list(np.zeros(10))] == [(10,)]
    assert [c.shape for c in as_clip_list(np.zeros((3, 10)))] == [(10,)] * 3
    assert [c.shape for c in as_clip_list([np.zeros(5), torch.zeros(7)])] == [(5,), (7,)]
    pcm = as_clip_list(np.array([16384, -32768], dtype=np.int16))[0]
    np.testing.assert_allclose(pcm, [0.5, -1.0])
    with pytest.raises(ValueError, match="empty"):
        as_clip_list(np.zeros(0))
    with pytest.raises(ValueError, match="empty list"):
        as_clip_list([])
    with pytest.raises(ValueError, match=r"NaN/Inf samples \(first at index 2"):
        as_clip_list(np.array([0.0, 0.1, np.nan], dtype=np.float32))
    with pytest.raises(ValueError, match=r"shape \(2, 3, 4\)"):
        as_clip_list(np.zeros((2, 3, 4)))
    with pytest.raises(TypeError, match="complex"):
        as_clip_list(np.zeros(4, dtype=np.complex64))
    with pytest.raises(TypeError, match="non-numeric"):
        as_clip_list(np.array(["a", "b"]))
    with pytest.raises(ValueError, match="must be 1-D"):
        as_clip_list([np.zeros((2, 5))])
    with pytest.raises(TypeError, match="numpy array"):
        as_clip_list("clip.wav")


# ----------------------------------------------------------------------------------------------
# The interface with a fixed, hand-written scorer
# ----------------------------------------------------------------------------------------------


class KeywordScorer(CLAPScorer):
    """Audio embedding: [low-frequency energy, high-frequency energy, 0]; text embedding from the
    words 'low', 'high' and anything else. A fixed scorer whose preferences are known."""

    backend = "keyword"

    @property
    def sampling_rate(self):
        return 16_000

    def _encode_clips(self, clips, sampling_rate):
        rows = []
        for clip in clips:
            spectrum = np.abs(np.fft.rfft(clip))
            freqs = np.fft.rfftfreq(clip.size, 1 / sampling_rate)
            rows.append([spectrum[freqs < 1000].sum(), spectrum[freqs >= 1000].sum(), 0.0])
        return torch.tensor(rows, dtype=torch.float32)

    def _encode_texts(self, texts):
        rows = [[float("low" in t), float("high" in t), 0.3] for t in texts]
        return torch.tensor(rows)


def test_fixed_scorer_rescoring_picks_what_the_scorer_prefers():
    scorer = KeywordScorer()
    low, high = tone(300, 1.0, 16_000), tone(3000, 1.0, 16_000)
    candidates = ["a beep", "a low beep", "A high beep.", "a high beep"]
    ranking = scorer.rerank(high, candidates, sampling_rate=16_000)
    assert ranking.caption == "A high beep."
    assert ranking.candidates == ["a beep", "a low beep", "A high beep."]  # duplicate removed
    torch.testing.assert_close(
        torch.tensor(ranking.clap_scores, dtype=torch.float32),
        scorer.score(high, ranking.candidates, sampling_rate=16_000),
    )
    batch = scorer.rerank([low, high], [["a high beep", "a low beep"], ["a low beep", "a high beep"]], sampling_rate=16_000)
    assert [r.caption for r in batch] == ["a low beep", "a high beep"]
    # Fusion with the captioner: a strong preference for "a beep" wins with a big weight.
    fused = scorer.rerank(high, ["a beep", "a high beep"], sampling_rate=16_000, log_probs=[-0.1, -3.0], lm_weight=1.0)
    assert fused.caption == "a beep"
    # The scorer's default weight applies when the call does not give one.
    scorer.lm_weight = 1.0
    assert scorer.rerank(high, ["a beep", "a high beep"], sampling_rate=16_000, log_probs=[-0.1, -3.0]).caption == "a beep"


def test_fixed_scorer_fuses_consensus_with_sampled_captions():
    scorer = KeywordScorer()
    high = tone(3000, 1.0, 16_000)
    candidates = ["a high beep", "a high beep sounds twice"]  # CLAP (keywords) cannot tell them apart
    samples = ["a high beep sounds twice", "a high beep sounds twice", "a high beep sounds once"]
    alone = scorer.rerank(high, candidates, sampling_rate=16_000)
    assert alone.caption == "a high beep" and alone.consensus is None  # tie: the earlier candidate
    fused = scorer.rerank(high, candidates, sampling_rate=16_000, pseudo_references=samples, consensus_weight=1.0)
    assert fused.caption == "a high beep sounds twice"
    assert fused.consensus == pytest.approx(consensus_scores(candidates, samples))
    # Weight 0 computes the consensus but leaves the pick to CLAP; the scorer's default weight applies otherwise.
    assert scorer.rerank(high, candidates, sampling_rate=16_000, pseudo_references=samples).caption == "a high beep"
    scorer.consensus_weight = 1.0
    batch = scorer.rerank([high, high], [candidates, candidates], sampling_rate=16_000,
                          pseudo_references=[samples, ["a high beep", "a high beep"]])
    assert [r.caption for r in batch] == ["a high beep sounds twice", "a high beep"]
    with pytest.raises(TypeError, match="pseudo_references must be one list of strings per clip"):
        scorer.rerank([high, high], [candidates, candidates], sampling_rate=16_000, pseudo_references=samples[:2])
    with pytest.raises(ValueError, match="1 pseudo-reference lists"):
        scorer.rerank([high, high], [candidates, candidates], sampling_rate=16_000, pseudo_references=[samples])
    with pytest.raises(ValueError, match="at least one non-blank pseudo-reference"):
        scorer.rerank(high, candidates, sampling_rate=16_000, pseudo_references=[""])


def test_fixed_scorer_shapes_and_errors():
    scorer = KeywordScorer()
    clip = tone(300, 0.5, 16_000)
    assert scorer.encode_audio(clip, 16_000).shape == (3,)
    assert scorer.encode_audio([clip, clip], 16_000).shape == (2, 3)
    assert scorer.encode_text("low").shape == (3,)
    assert scorer.encode_text(["low", "high"]).shape == (2, 3)
    assert scorer.score(clip, ["low", "high", "x"], 16_000).shape == (3,)
    assert scorer.score([clip, clip], ["low", "high", "x"], 16_000).shape == (2, 3)
    torch.testing.assert_close(scorer.encode_text(["low", "high"]).norm(dim=-1), torch.ones(2))
    with pytest.raises(ValueError, match="sampling_rate is required"):
        scorer.encode_audio(clip)
    for bad_rate in (0, -16000, 44100.5):
        with pytest.raises(ValueError, match="positive whole number"):
            scorer.encode_audio(clip, bad_rate)
    with pytest.raises(TypeError, match="sampling_rate must be a number"):
        scorer.encode_audio(clip, "16k")
    with pytest.raises(ValueError, match="non-empty list of strings"):
        scorer.encode_text([])
    with pytest.raises(TypeError, match="texts must be strings"):
        scorer.encode_text(["ok", 3])
    with pytest.raises(ValueError, match="2 clips, 1 candidate lists"):
        scorer.rerank([clip, clip], [["a"]], sampling_rate=16_000)
    with pytest.raises(TypeError, match="flat list of strings"):
        scorer.rerank([clip, clip], ["a", "b"], sampling_rate=16_000)
    with pytest.raises(TypeError, match="lm_weight must be a number"):
        scorer.rerank(clip, ["a"], sampling_rate=16_000, lm_weight="high")


# ----------------------------------------------------------------------------------------------
# transformers ClapModel backend
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hf_scorer():
    torch.manual_seed(0)
    model = ClapModel(tiny_clap_config()).eval()
    return TransformersClapScorer(model, default_clap_feature_extractor(model.config), tiny_word_tokenizer())


def test_transformers_backend_shapes_and_normalisation(hf_scorer):
    clips = [tone(440, 2.0, 16_000), tone(880, 3.0, 16_000)]
    audio = hf_scorer.encode_audio(clips, sampling_rate=16_000)
    text = hf_scorer.encode_text(["a dog barks", "a high beep", "bird chirps"])
    assert audio.shape == (2, 12) and text.shape == (3, 12)
    torch.testing.assert_close(audio.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(text.norm(dim=-1), torch.ones(3))
    scores = hf_scorer.score(clips, ["a dog barks", "a high beep", "bird chirps"], sampling_rate=16_000)
    torch.testing.assert_close(scores, audio @ text.T)
    # One clip alone gives the same embedding as inside a batch; calls are deterministic.
    torch.testing.assert_close(hf_scorer.encode_audio(clips[1], sampling_rate=16_000), audio[1], atol=1e-5, rtol=0)
    torch.testing.assert_close(hf_scorer.encode_text("a high beep"), text[1], atol=1e-5, rtol=0)


def test_long_clip_is_the_mean_of_its_windows(hf_scorer):
    rate = 48_000
    rng = np.random.default_rng(0)
    clip = (0.1 * rng.standard_normal(25 * rate)).astype(np.float32)
    window = hf_scorer.window_samples
    starts = window_starts(clip.size, window)
    assert len(starts) == 3
    parts = hf_scorer.encode_audio([clip[s : s + window] for s in starts], sampling_rate=rate)
    expected = F.normalize(parts.mean(0), dim=0)
    got = hf_scorer.encode_audio(clip, sampling_rate=rate)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(hf_scorer.encode_audio(clip, sampling_rate=rate), got)  # no random crop


def test_audio_is_resampled_to_48k(hf_scorer):
    at_16k = tone(440, 2.0, 16_000)
    at_48k = tone(440, 2.0, 48_000)
    cosine = hf_scorer.encode_audio(at_16k, sampling_rate=16_000) @ hf_scorer.encode_audio(at_48k, sampling_rate=48_000)
    other = hf_scorer.encode_audio(at_16k, sampling_rate=16_000) @ hf_scorer.encode_audio(tone(5000, 2.0, 48_000), sampling_rate=48_000)
    assert cosine > 0.999 and cosine > other


def test_fusion_model_is_deterministic_on_long_clips():
    torch.manual_seed(1)
    model = ClapModel(tiny_clap_config(enable_fusion=True)).eval()
    scorer = TransformersClapScorer(model, default_clap_feature_extractor(model.config), tiny_word_tokenizer())
    clip = tone(700, 14.0, 48_000)
    torch.testing.assert_close(scorer.encode_audio(clip, 48_000), scorer.encode_audio(clip, 48_000))


def test_save_load_and_backend_detection(hf_scorer, tmp_path):
    folder = tmp_path / "clap"
    hf_scorer.save_pretrained(folder)
    assert detect_clap_backend(folder) == "transformers"
    loaded = load_clap_scorer(folder, lm_weight=0.3, consensus_weight=2.0)
    assert isinstance(loaded, TransformersClapScorer) and loaded.lm_weight == 0.3
    assert loaded.settings() == {"backend": "transformers", "lm_weight": 0.3, "consensus_weight": 2.0,
                                 "name_or_path": str(folder)}
    with pytest.raises(ValueError, match="consensus_weight must be finite"):
        load_clap_scorer(folder, consensus_weight=float("nan"))
    clip = tone(440, 1.5, 22_050)
    texts = ["a dog barks", "rain falls on roof"]
    torch.testing.assert_close(loaded.score(clip, texts, 22_050), hf_scorer.score(clip, texts, 22_050))
    assert load_clap_scorer(loaded) is loaded

    with pytest.raises(ValueError, match="does not exist"):
        detect_clap_backend(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="Cannot find a CLAP model"):
        detect_clap_backend(tmp_path / "nowhere")
    (tmp_path / "bert").mkdir()
    from transformers import BertConfig

    BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8).save_pretrained(tmp_path / "bert")
    with pytest.raises(ValueError, match="'bert' model, not a CLAP model"):
        load_clap_scorer(tmp_path / "bert")
    with pytest.raises(ValueError, match="Unknown CLAP backend"):
        load_clap_scorer(folder, backend="msclap")

    no_tokenizer = tmp_path / "no_tokenizer"
    hf_scorer.model.save_pretrained(no_tokenizer)
    with pytest.raises(ValueError, match="Could not load a tokenizer"):
        load_clap_scorer(no_tokenizer)


def test_transformers_backend_rerank(hf_scorer):
    clip = tone(440, 1.0, 16_000)
    candidates = ["a dog barks", "bird chirps", "A dog barks!", "rain falls on roof"]
    ranking = hf_scorer.rerank(clip, candidates, sampling_rate=16_000)
    scores = hf_scorer.score(clip, ranking.candidates, sampling_rate=16_000)
    assert ranking.candidates == ["a dog barks", "bird chirps", "rain falls on roof"]
    assert ranking.caption == ranking.candidates[int(scores.argmax())]


# ----------------------------------------------------------------------------------------------
# EAT-CLAP backend
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def eat_scorer():
    from transformers import BertConfig

    from modeling_llm_aac import EATClapConfig, EATClapModel, EATClapScorer, EATConfig, LLMAACFeatureExtractor

    torch.manual_seed(0)
    config = EATClapConfig(
        audio_config=EATConfig.tiny(max_length=32),  # 512 frames: clips over 5.12 s are windowed
        text_config=BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, max_position_embeddings=40),
        projection_dim=12,
        audio_pooling="mean",
    )
    model = EATClapModel(config).eval()
    return EATClapScorer(model, LLMAACFeatureExtractor(feature_type="fbank"), tiny_word_tokenizer(), audio_batch_size=2)


def test_eat_backend_shapes_padding_and_windows(eat_scorer):
    clips = [tone(440, 1.0, 16_000), tone(880, 3.3, 16_000), tone(220, 0.4, 16_000)]
    audio = eat_scorer.encode_audio(clips, sampling_rate=16_000)
    text = eat_scorer.encode_text(["a dog barks", "a high beep"])
    assert audio.shape == (3, 12) and text.shape == (2, 12)
    torch.testing.assert_close(audio.norm(dim=-1), torch.ones(3))
    # Each clip gets the same embedding alone as padded inside a batch.
    for index, clip in enumerate(clips):
        torch.testing.assert_close(eat_scorer.encode_audio(clip, 16_000), audio[index], atol=2e-5, rtol=0)
    # Resampled input (soxr inside the feature extractor) gives nearly the same embedding.
    at_44k = tone(440, 1.0, 44_100)
    assert float(eat_scorer.encode_audio(at_44k, 44_100) @ audio[0]) > 0.99

    # A 12 s clip (1198 frames > 512) is the mean of 3 evenly spaced 512-frame windows.
    long_clip = (0.1 * np.random.default_rng(0).standard_normal(12 * 16_000)).astype(np.float32)
    features = eat_scorer.feature_extractor(long_clip, sampling_rate=16_000, return_tensors="pt", return_attention_mask=True)
    real = int(features["attention_mask"][0].sum())
    starts = window_starts(real, eat_scorer.max_frames)
    assert len(starts) == 3
    with torch.no_grad():
        windows = torch.stack([features["input_features"][0, s : s + eat_scorer.max_frames] for s in starts])
        expected = F.normalize(eat_scorer.model.get_audio_features(windows).mean(0), dim=0)
    got = eat_scorer.encode_audio([clips[0], long_clip], sampling_rate=16_000)
    torch.testing.assert_close(got[1], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(got[0], audio[0], atol=2e-5, rtol=0)


def test_eat_backend_save_and_auto_load(eat_scorer, tmp_path):
    eat_scorer.save_pretrained(tmp_path)
    assert detect_clap_backend(tmp_path) == "eat_clap"
    loaded = load_clap_scorer(tmp_path)
    assert loaded.backend == "eat_clap" and loaded.sampling_rate == 16_000
    clip = tone(600, 2.0, 16_000)
    texts = ["a high beep", "bird chirps", "rain falls on roof"]
    torch.testing.assert_close(loaded.score(clip, texts, 16_000), eat_scorer.score(clip, texts, 16_000))
    ranking = loaded.rerank(clip, texts + ["A high beep!"], sampling_rate=16_000, log_probs=[-1.0, -0.5, -0.7, -0.2], lm_weight=0.5)
    assert ranking.candidates == texts and ranking.log_probs == [-0.2, -0.5, -0.7]
    assert ranking.caption == texts[int(np.argmax(ranking.scores))]


def test_eat_backend_rejects_mismatched_feature_extractor(eat_scorer):
    from modeling_llm_aac import EATClapScorer, LLMAACFeatureExtractor

    with pytest.raises(ValueError, match="gives 64 bins per frame but the audio tower expects 128"):
        EATClapScorer(eat_scorer.model, LLMAACFeatureExtractor(feature_type="cwt", num_scales=64), eat_scorer.tokenizer)
    with pytest.raises(ValueError, match="needs the text tower's tokenizer"):
        EATClapScorer(eat_scorer.model, eat_scorer.feature_extractor, None)


def test_from_pretrained_without_a_saved_feature_extractor(hf_scorer, eat_scorer, tmp_path):
    from modeling_llm_aac import EATClapScorer

    # A ClapModel folder without preprocessor_config.json gets the LAION HTS-AT recipe's extractor.
    clap_folder = tmp_path / "clap"
    hf_scorer.model.save_pretrained(clap_folder)
    hf_scorer.tokenizer.save_pretrained(clap_folder)
    loaded = TransformersClapScorer.from_pretrained(clap_folder, text_batch_size=3)
    assert loaded.feature_extractor.to_dict() == default_clap_feature_extractor(hf_scorer.model.config).to_dict()
    assert loaded.text_batch_size == 3 and loaded.settings()["name_or_path"] == str(clap_folder)
    clip, texts = tone(440, 1.5, 22_050), ["a dog barks", "rain falls on roof", "bird chirps", "a high beep"]
    torch.testing.assert_close(loaded.score(clip, texts, 22_050), hf_scorer.score(clip, texts, 22_050))

    # EAT-CLAP features cannot be guessed: a clear error naming the missing file.
    eat_folder = tmp_path / "eat_clap"
    eat_scorer.model.save_pretrained(eat_folder)
    eat_scorer.tokenizer.save_pretrained(eat_folder)
    with pytest.raises(ValueError, match="has no preprocessor_config.json; pass the feature_extractor"):
        EATClapScorer.from_pretrained(eat_folder)
    passed = EATClapScorer.from_pretrained(eat_folder, feature_extractor=eat_scorer.feature_extractor)
    torch.testing.assert_close(passed.score(clip, texts, 22_050), eat_scorer.score(clip, texts, 22_050))


def test_scorer_needs_tokenizer_and_feature_extractor(hf_scorer):
    with pytest.raises(ValueError, match="needs the text tower's tokenizer.*tokenizer='roberta-base'"):
        TransformersClapScorer(hf_scorer.model, hf_scorer.feature_extractor, None)
    with pytest.raises(ValueError, match="needs the feature extractor of the audio tower"):
        TransformersClapScorer(hf_scorer.model, None, hf_scorer.tokenizer)
