"""ClapTorchPreprocessor against transformers' ClapFeatureExtractor, and the CLAP scorer's torch path against
its numpy path (soxr + ClapFeatureExtractor): features, embeddings, rankings, input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from clap_test_utils import tiny_clap_config, tiny_word_tokenizer
from transformers import ClapFeatureExtractor, ClapModel

from modeling_llm_aac.clap_scoring import TransformersClapScorer, default_clap_feature_extractor, resample, window_starts
from modeling_llm_aac.clap_torch_preprocessing import ClapTorchPreprocessor, clap_mel_filter_bank

RATES = (16_000, 44_100, 48_000)
CAPTIONS = ["a dog barks loudly", "bird chirps", "rain falls on roof", "a siren rises and then silence",
            "car engine hums", "bell rings twice", "knocking door"]


def generated_sound(seconds: float, rate: int, seed: int) -> np.ndarray:
    """A broadband test clip: an amplitude-modulated tone, a rising chirp up to 0.9 x Nyquist (it crosses
    the resamplers' pass band edge) and white noise, at -10 dBFS peak or so."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    sweep = 0.45 * rate / seconds  # reaches 0.9 x Nyquist at the end of the clip
    clip = 0.3 * np.sin(2 * np.pi * (300 + 150 * seed) * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
    clip += 0.1 * np.sin(2 * np.pi * (200 * t + 0.5 * sweep * t * t))
    clip += 0.05 * rng.standard_normal(t.size)
    return clip.astype(np.float32)


def as_int16(clip: np.ndarray) -> np.ndarray:
    return np.round(clip * 32767).astype(np.int16)


def reference_features(extractor, windows, fusion):
    return extractor(
        windows, sampling_rate=extractor.sampling_rate, truncation="fusion" if fusion else "rand_trunc", return_tensors="pt"
    )["input_features"]


# ----------------------------------------------------------------------------------------------
# Features
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fusion", [False, True])
def test_mel_filters_equal_the_extractor(fusion):
    for extractor in (default_clap_feature_extractor(tiny_clap_config()), ClapFeatureExtractor(feature_size=96, sampling_rate=32_000, fft_window_size=2048, hop_length=320, frequency_min=20, frequency_max=16_000)):
        ours = ClapTorchPreprocessor.from_feature_extractor(extractor, fusion=fusion).mel_filters()
        theirs = extractor.mel_filters if fusion else extractor.mel_filters_slaney  # HTK / Slaney, as in the extractor
        assert ours.shape == theirs.shape and ours.dtype == torch.float64
        np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-10, atol=1e-14)
    # The two conventions really differ (mel scale and area normalisation).
    assert not torch.allclose(clap_mel_filter_bank(513, 64, 50, 14_000, 48_000, slaney=True), clap_mel_filter_bank(513, 64, 50, 14_000, 48_000, slaney=False))


@pytest.mark.parametrize("fusion", [False, True])
@pytest.mark.parametrize("padding", ["repeatpad", "repeat", "pad"])
def test_features_equal_clap_feature_extractor(fusion, padding):
    # At the model's rate the two are the same computation: full windows, a 3 s window (padded), a
    # window shorter than one FFT hop... any difference is float rounding (measured <= 8e-6 dB).
    extractor = default_clap_feature_extractor(tiny_clap_config(enable_fusion=fusion))
    extractor.padding = padding
    ours = ClapTorchPreprocessor.from_feature_extractor(extractor, fusion=fusion)
    windows = [generated_sound(10.0, 48_000, 0), generated_sound(3.0, 48_000, 1), generated_sound(0.004, 48_000, 2), 0.5 * generated_sound(7.3, 48_000, 3)]
    expected = reference_features(extractor, windows, fusion)
    got = ours([torch.from_numpy(w) for w in windows])
    assert got.shape == expected.shape == (4, 4 if fusion else 1, 1001, 64)
    assert got.dtype == torch.float32
    assert (got - expected).abs().max().item() <= 1e-4  # dB
    # Silence hits the -100 dB floor in both.
    assert ours([torch.zeros(48_000)]).max().item() == pytest.approx(-100.0)


@pytest.mark.parametrize("fusion", [False, True])
@pytest.mark.parametrize("rate", [16_000, 44_100])
@pytest.mark.parametrize("seconds", [3.0, 25.0])
def test_features_after_resampling_are_close_to_soxr_and_the_extractor(rate, seconds, fusion):
    # Resampling is where the paths differ: our Kaiser-windowed sinc vs soxr's multi-stage HQ filter.
    # Measured (max / mean abs difference in dB): 44.1 kHz 0.033 / 4e-5; 16 kHz 0.42 / 0.006 (Slaney
    # filters) and 1.39 / 0.012 (HTK filters, fusion). The 16 kHz maxima sit in mel bins above the
    # source's Nyquist frequency (bins 55 - 63, 8 - 14 kHz), which hold only resampler stop-band residue
    # and window leakage at -80 to -100 dB, 70+ dB below the signal's bins; in the mel bins below
    # 0.9 x the source's Nyquist the worst difference is 0.07 dB (first / last frames of a
    # repeat-padded 3 s clip, where soxr's edge handling differs) and 99.9 % are within 0.0064 dB.
    extractor = default_clap_feature_extractor(tiny_clap_config(enable_fusion=fusion))
    ours = ClapTorchPreprocessor.from_feature_extractor(extractor, fusion=fusion)
    clip = generated_sound(seconds, rate, 4)
    theirs_audio = resample(clip, rate, 48_000)
    our_audio = ours.resample([torch.from_numpy(clip)], rate)[0]
    assert our_audio.shape[0] == theirs_audio.size
    window = ours.window_samples
    starts = window_starts(theirs_audio.size, window)
    expected = reference_features(extractor, [theirs_audio[s : s + window] for s in starts], fusion)
    got = ours([our_audio[s : s + window] for s in starts])
    difference = (got - expected).abs()
    assert difference.max().item() <= (2.0 if rate == 16_000 else 0.1)
    assert difference.mean().item() <= 0.02
    filters = ours.mel_filters()
    top_hz = [filters[:, b].nonzero().max().item() * 48_000 / 1024 for b in range(filters.shape[1])]
    below_edge = [b for b, hz in enumerate(top_hz) if hz < 0.9 * rate / 2]  # mel bins under 0.9 x source Nyquist
    assert difference[..., below_edge].max().item() <= 0.1
    assert difference[..., below_edge].quantile(0.999).item() <= 0.01


def test_preprocessor_refuses_bad_windows_and_settings():
    extractor = default_clap_feature_extractor(tiny_clap_config())
    ours = ClapTorchPreprocessor.from_feature_extractor(extractor, fusion=False)
    with pytest.raises(ValueError, match=r"480001 samples is longer than max_length_s=10.0 s \(480000 samples\)"):
        ours([torch.zeros(480_001)])
    with pytest.raises(ValueError, match=r"non-empty 1-D tensor, got shape \(0,\)"):
        ours([torch.zeros(0)])
    with pytest.raises(ValueError, match="no windows"):
        ours([])
    with pytest.raises(ValueError, match=r"padded windows \[batch, 480000\], got shape \(2, 10\)"):
        ours.log_mel(torch.zeros(2, 10))
    with pytest.raises(ValueError, match=r"padding must be one of .* got 'mirror'"):
        ClapTorchPreprocessor(fusion=False, padding="mirror")
    with pytest.raises(ValueError, match="hop_length must be a positive whole number, got 0"):
        ClapTorchPreprocessor(fusion=False, hop_length=0)
    with pytest.raises(ValueError, match=r"frequency_min \(9000.0\) must not exceed frequency_max \(100.0\)"):
        ClapTorchPreprocessor(fusion=False, frequency_min=9000, frequency_max=100)
    with pytest.raises(TypeError, match="not a ClapFeatureExtractor"):
        ClapTorchPreprocessor.from_feature_extractor(object(), fusion=False)


# ----------------------------------------------------------------------------------------------
# The scorer: numpy path vs torch path
# ----------------------------------------------------------------------------------------------


def sensitive_tiny_clap(fusion: bool) -> ClapModel:
    """A tiny ClapModel whose input BatchNorm standardises log-mel features with statistics of real
    features (as a trained HTS-AT's does), instead of mean 0 / variance 1 that leave a random model
    nearly blind to dB-scale changes. Then a 0.1 dB error moves the embedding well past the parity
    tolerance (checked below), so the tolerance means something."""
    torch.manual_seed(0)
    model = ClapModel(tiny_clap_config(enable_fusion=fusion)).eval()
    extractor = default_clap_feature_extractor(model.config)
    features = reference_features(extractor, [resample(generated_sound(10.0, 16_000, 3), 16_000, 48_000)], False)
    norm = model.audio_model.audio_encoder.batch_norm
    norm.running_mean.copy_(features.mean(dim=(0, 1, 2)))
    norm.running_var.copy_(features.var(dim=(0, 1, 2)))
    return model


@pytest.fixture(scope="module", params=[False, True], ids=["rand_trunc", "fusion"])
def scorers(request):
    model = sensitive_tiny_clap(request.param)
    extractor = default_clap_feature_extractor(model.config)
    tokenizer = tiny_word_tokenizer()
    return {mode: TransformersClapScorer(model, extractor, tokenizer, preprocessing=mode) for mode in ("numpy", "torch")}


def test_tolerance_is_discriminative():
    # Non-fusion model only: the tiny fusion model stays nearly blind to dB offsets even so (cosine
    # 0.999996 for 1 dB), so for fusion models the feature-level tests above carry the parity claim.
    model = sensitive_tiny_clap(False)
    features = reference_features(default_clap_feature_extractor(model.config), [resample(generated_sound(10.0, 44_100, 5), 44_100, 48_000)], False)

    def embed(x):
        with torch.inference_mode():
            output = model.get_audio_features(input_features=x, is_longer=torch.zeros(1, 1, dtype=torch.bool))
        return torch.nn.functional.normalize(getattr(output, "pooler_output", output), dim=-1)[0]

    reference = embed(features)
    assert float(reference @ embed(features + 1.0)) < 0.9999  # a 1 dB gain error
    assert float(reference @ embed(torch.roll(features, 1, dims=2))) < 0.9999  # a 10 ms shift


@pytest.mark.parametrize("rate", RATES)
def test_embeddings_and_rankings_equal_between_paths(scorers, rate):
    # 3 s clips (one repeat-padded window) and 25 s clips (three evenly spaced windows), float and int16
    # PCM: embeddings within cosine 0.9999, the same candidate order, and scores within what that cosine
    # allows (|score difference| <= |embedding difference| = sqrt(2 (1 - cosine)) <= 0.0142).
    clips = [generated_sound(3.0, rate, 6), as_int16(generated_sound(25.0, rate, 7))]
    embeddings = {mode: scorer.encode_audio(clips, sampling_rate=rate) for mode, scorer in scorers.items()}
    cosine = (embeddings["numpy"] * embeddings["torch"]).sum(-1)
    assert cosine.min().item() >= 0.9999, cosine
    rankings = {mode: scorer.rerank(clips, [CAPTIONS, CAPTIONS[::-1]], sampling_rate=rate) for mode, scorer in scorers.items()}
    for ours, theirs in zip(rankings["torch"], rankings["numpy"]):
        assert ours.caption == theirs.caption
        assert [c for c, _ in ours.ranked()] == [c for c, _ in theirs.ranked()]
        np.testing.assert_allclose(ours.clap_scores, theirs.clap_scores, atol=(2 * (1 - 0.9999)) ** 0.5, rtol=0)


def test_torch_path_keeps_the_windowing_rule(scorers):
    # A long clip is still the normalised mean of its evenly spaced windows, deterministically.
    scorer = scorers["torch"]
    clip = generated_sound(25.0, 48_000, 8)
    window = scorer.window_samples
    parts = scorer.encode_audio([clip[s : s + window] for s in window_starts(clip.size, window)], sampling_rate=48_000)
    whole = scorer.encode_audio(clip, sampling_rate=48_000)
    torch.testing.assert_close(whole, torch.nn.functional.normalize(parts.mean(0), dim=0), atol=1e-5, rtol=0)
    torch.testing.assert_close(scorer.encode_audio(clip, sampling_rate=48_000), whole)
    # Batching and the packed resampling do not change a clip's embedding.
    clips = [generated_sound(2.0, 44_100, 9), generated_sound(12.5, 44_100, 10)]
    batch = scorer.encode_audio(clips, sampling_rate=44_100)
    torch.testing.assert_close(scorer.encode_audio(clips[1], sampling_rate=44_100), batch[1], atol=1e-5, rtol=0)


def test_bad_input_errors_are_unchanged(scorers):
    cases = [
        ((np.zeros(0, np.float32), 16_000), ValueError, "empty"),
        ((np.array([0.0, np.nan], np.float32), 16_000), ValueError, r"NaN/Inf samples \(first at index 1"),
        ((np.zeros((2, 3, 4), np.float32), 16_000), ValueError, r"shape \(2, 3, 4\)"),
        ((np.zeros(100, np.float32), None), ValueError, "sampling_rate is required"),
        ((np.zeros(100, np.float32), 44_100.5), ValueError, "positive whole number"),
        ((np.zeros(100, np.complex64), 16_000), TypeError, "complex"),
        ((np.zeros(2, np.float32), 480_000), ValueError, "A clip of 2 samples at 480000 Hz is too short to resample to 48000 Hz"),
    ]
    for (audio, rate), error, message in cases:
        for scorer in scorers.values():
            with pytest.raises(error, match=message):
                scorer.encode_audio(audio, sampling_rate=rate)


def test_preprocessing_option():
    model = ClapModel(tiny_clap_config()).eval()
    extractor = default_clap_feature_extractor(model.config)
    scorer = TransformersClapScorer(model, extractor, tiny_word_tokenizer())
    assert scorer.preprocessing == "auto" and not scorer.uses_torch_preprocessing  # CPU model: numpy
    scorer.preprocessing = "torch"
    assert scorer.uses_torch_preprocessing
    with pytest.raises(ValueError, match=r"preprocessing must be one of \('auto', 'numpy', 'torch'\), got 'gpu'"):
        scorer.preprocessing = "gpu"
    with pytest.raises(ValueError, match="preprocessing must be one of"):
        TransformersClapScorer(model, extractor, tiny_word_tokenizer(), preprocessing="cuda")
    # The twin follows a replaced feature extractor.
    first = scorer.torch_preprocessor
    assert scorer.torch_preprocessor is first
    scorer.feature_extractor = default_clap_feature_extractor(model.config)
    scorer.feature_extractor.padding = "pad"
    assert scorer.torch_preprocessor is not first and scorer.torch_preprocessor.padding == "pad"


def test_load_clap_scorer_passes_the_option(tmp_path):
    from modeling_llm_aac.clap_scoring import load_clap_scorer

    torch.manual_seed(0)
    model = ClapModel(tiny_clap_config()).eval()
    TransformersClapScorer(model, default_clap_feature_extractor(model.config), tiny_word_tokenizer()).save_pretrained(tmp_path)
    loaded = load_clap_scorer(tmp_path, preprocessing="torch")
    assert loaded.preprocessing == "torch" and loaded.uses_torch_preprocessing
    assert loaded.settings() == {"backend": "transformers", "lm_weight": 0.0, "consensus_weight": 0.0,
                                 "name_or_path": str(tmp_path)}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_path_equals_cpu_path_even_with_tf32_matmuls():
    # float64 resampling and features: TF32 matmuls (if a training script enabled them) cannot touch them.
    extractor = default_clap_feature_extractor(tiny_clap_config())
    ours = ClapTorchPreprocessor.from_feature_extractor(extractor, fusion=False)
    clips = [torch.from_numpy(generated_sound(seconds, 44_100, 11)) for seconds in (3.0, 12.0)]
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        on_gpu = ours.resample([clip.cuda() for clip in clips], 44_100)
        features_gpu = ours([clip[: ours.window_samples].float() for clip in on_gpu]).cpu()
    finally:
        torch.set_float32_matmul_precision(previous)
    on_cpu = ours.resample(clips, 44_100)
    for gpu, cpu in zip(on_gpu, on_cpu):
        torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-9, rtol=0)
    features_cpu = ours([clip[: ours.window_samples].float() for clip in on_cpu])
    assert (features_gpu - features_cpu).abs().max().item() <= 1e-4
    # "auto" picks the torch path for a model on CUDA, and its embeddings match the numpy path.
    model = sensitive_tiny_clap(False).cuda()
    scorer = TransformersClapScorer(model, extractor, tiny_word_tokenizer())
    assert scorer.uses_torch_preprocessing
    clip = generated_sound(25.0, 44_100, 12)
    reference = TransformersClapScorer(model, extractor, tiny_word_tokenizer(), preprocessing="numpy").encode_audio(clip, 44_100)
    assert float(scorer.encode_audio(clip, 44_100) @ reference) >= 0.9999
