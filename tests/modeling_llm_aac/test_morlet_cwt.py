import math

import feature_test_utils  # noqa: F401  (first: keeps a broken torchaudio away from transformers)
import numpy as np
import pytest
import torch
from feature_test_utils import original_llm_aac_cwt, relative_l2

from modeling_llm_aac import morlet_cwt
from modeling_llm_aac.morlet_cwt import (
    log_spaced_center_frequencies,
    morlet_cwt as full_rate_cwt,
    morlet_scalogram,
    pywt_cmor_name,
    pywt_scales,
    pywt_time_offsets,
    scalogram_num_frames,
    seed_center_frequencies,
    seed_cwt,
)

pywt = pytest.importorskip("pywt")
SR = 16000
WIDTH = 12.0
FREQS = log_spaced_center_frequencies(64, 50.0, 7600.0)


def _noise(num_samples, seed=0, batch=None):
    rng = np.random.default_rng(seed)
    shape = (num_samples,) if batch is None else (batch, num_samples)
    return rng.standard_normal(shape).astype(np.float32)


def test_unpooled_transform_matches_pywt_cmor():
    # PyWavelets samples its integrated wavelet on a 2**precision grid by flooring, which adds
    # "zipper" noise of relative size ~ scale * 16 / 2**precision (its docstring warns about
    # it); at its default precision 12 that is several percent for the low-frequency scales,
    # so the reference runs at precision 22. Its kernel is also delayed by a scale-dependent
    # fraction of a sample, which `pywt_time_offsets` reproduces.
    freqs = FREQS[::4]
    scales = pywt_scales(freqs, WIDTH, SR)
    signal = _noise(4000).astype(np.float64)
    expected, _ = pywt.cwt(signal, scales, pywt_cmor_name(WIDTH), 1.0 / SR, method="fft", precision=22)
    actual = full_rate_cwt(
        torch.from_numpy(signal).float(), freqs, width=WIDTH, time_offsets=pywt_time_offsets(scales, 22)
    ).numpy()
    assert actual.shape == expected.shape == (len(freqs), 4000)
    assert relative_l2(actual, expected) <= 1e-3
    per_scale = [relative_l2(actual[k], expected[k]) for k in range(len(freqs))]
    assert max(per_scale) <= 2e-3, per_scale


def test_pywt_parameters_describe_the_wavelet():
    wavelet = pywt.ContinuousWavelet(pywt_cmor_name(WIDTH))
    assert wavelet.bandwidth_frequency == pytest.approx(2.0)
    assert wavelet.center_frequency == pytest.approx(WIDTH / (2 * math.pi), rel=1e-6)
    # pywt's own frequency estimate for our scales lands on our centre frequencies.
    estimated = pywt.scale2frequency(wavelet, pywt_scales(FREQS, WIDTH, SR), precision=16) * SR
    np.testing.assert_allclose(estimated, FREQS, rtol=2e-2)


def _pool_full_rate(waveforms, freqs, hop=160, window=400):
    """Reference pooling: full-rate modulus, unit-tone gain, Hann(window) average at centres hop t + (window - 1) / 2."""
    modulus = full_rate_cwt(waveforms, freqs, width=WIDTH, time_offsets=-0.5 * np.ones(len(freqs))).abs()
    centre = torch.as_tensor(freqs, dtype=torch.float64)[:, None]
    gain = 2.0 / torch.sqrt(torch.as_tensor(pywt_scales(freqs, WIDTH, SR)))[:, None]
    gain = gain / morlet_cwt._wavelet_response(centre, centre, WIDTH, SR)
    modulus = modulus * gain.float()
    frames = scalogram_num_frames(waveforms.shape[-1], hop_length=hop, window_length=window)
    offsets = torch.arange(-(window // 2) + 1, window // 2)
    window_taps = 0.5 * (1 + torch.cos(math.pi * offsets / (window / 2)))
    window_taps = window_taps / window_taps.sum()
    index = (torch.arange(frames) * hop + window // 2 - 1)[:, None] + offsets[None, :]
    return (modulus[..., index] * window_taps).sum(-1).transpose(-1, -2)


def test_band_limited_scalogram_matches_full_rate_pooling():
    waveforms = torch.from_numpy(_noise(12000, batch=2))
    waveforms[1, 6000:] = 0.0
    waveforms[1, :3000] *= 0.01
    features = morlet_scalogram(waveforms, center_frequencies=FREQS, width=WIDTH)
    assert features.shape == (2, scalogram_num_frames(12000), 64) and features.dtype == torch.float32
    expected = _pool_full_rate(waveforms, FREQS)
    pooled = features.exp() - morlet_cwt.LOG_FLOOR
    for row in range(2):
        assert relative_l2(pooled[row], expected[row]) <= 2e-3


def test_other_hop_and_window_match_full_rate_pooling():
    # The frame geometry is not hard-wired: an 8 ms hop with a 32 ms window (even window: centres
    # on a half sample, as for the default 400-sample window).
    waveforms = torch.from_numpy(_noise(6000, seed=2, batch=1))
    freqs = FREQS[::3]
    features = morlet_scalogram(waveforms, center_frequencies=freqs, width=WIDTH, hop_length=128, window_length=512)
    assert features.shape == (1, scalogram_num_frames(6000, hop_length=128, window_length=512), len(freqs))
    expected = _pool_full_rate(waveforms, freqs, hop=128, window=512)
    assert relative_l2(features[0].exp() - morlet_cwt.LOG_FLOOR, expected[0]) <= 2e-3


def test_pooling_paths_agree():
    # "matmul" (the default), "blocks" (when float32 matmuls may run in TF32) and a plain strided
    # convolution give the same numbers, circular wrap included.
    plan = morlet_cwt._scalogram_plan(172800, tuple(FREQS), WIDTH, float(SR), 160, 400, torch.device("cpu"))
    for group in (plan[0], plan[len(plan) // 2], plan[-1]):
        envelope = torch.rand(2, len(group["indices"]), group["band_length"])
        frames = 172800 // 160 - 3
        by_convolution = morlet_cwt._pool(envelope, group, frames, method="convolution")
        assert by_convolution.shape == (2, len(group["indices"]), frames)
        for method in ("matmul", "blocks"):
            pooled = morlet_cwt._pool(envelope, group, frames, method=method)
            torch.testing.assert_close(pooled, by_convolution, rtol=1e-5, atol=1e-6)


def test_scalogram_without_float32_matmul_uses_exact_pooling(monkeypatch):
    waveforms = torch.from_numpy(_noise(4000, batch=2))
    default = morlet_scalogram(waveforms, center_frequencies=FREQS, width=WIDTH)
    monkeypatch.setattr(morlet_cwt, "_matmul_keeps_float32", lambda device: False)
    fallback = morlet_scalogram(waveforms, center_frequencies=FREQS, width=WIDTH)
    torch.testing.assert_close(fallback, default, rtol=0, atol=1e-5)


def test_chunks_and_unsorted_frequencies_give_the_same_features():
    waveforms = torch.from_numpy(_noise(3000, seed=4, batch=3))
    whole = morlet_scalogram(waveforms, center_frequencies=FREQS, width=WIDTH)
    one_clip_chunks = morlet_scalogram(waveforms, center_frequencies=FREQS, width=WIDTH, max_batch_elements=1)
    torch.testing.assert_close(one_clip_chunks, whole, rtol=0, atol=1e-5)
    order = np.random.default_rng(0).permutation(len(FREQS))  # groups of equal rate no longer contiguous
    shuffled = morlet_scalogram(waveforms, center_frequencies=FREQS[order], width=WIDTH)
    torch.testing.assert_close(shuffled, whole[..., order], rtol=0, atol=1e-5)


def test_hermitian_extension_reads_the_two_sided_spectrum():
    for fft_size in (40, 41):
        signal = torch.randn(3, fft_size, dtype=torch.float64)
        two_sided = torch.fft.fft(signal)
        for start, stop in ((-25, 5), (3, 60), (-7, 90), (0, 21)):
            expected = two_sided[:, torch.remainder(torch.arange(start, stop), fft_size)]
            actual = morlet_cwt._hermitian_extension(torch.fft.rfft(signal), fft_size, start, stop)
            torch.testing.assert_close(actual, expected)


def test_matches_the_previous_band_limited_route():
    # The route was rewritten for GPU speed (lower decimated rates, no two-sided spectrum,
    # one-matmul pooling); its pooled modulus stays within the full-rate test's tolerance of the
    # previous route's, on noise (with silence and a quiet stretch) and on tones.
    from reference_band_limited_cwt import morlet_scalogram as previous_scalogram

    time = torch.arange(9000) / SR
    noise = torch.from_numpy(_noise(9000, seed=5, batch=2))
    noise[1, 5000:] = 0.0
    noise[1, :2000] *= 0.01
    tones = torch.stack(
        [
            torch.sin(2 * math.pi * FREQS[k] * time) + 0.3 * torch.sin(2 * math.pi * 1.03 * FREQS[k + 7] * time)
            for k in (2, 30, 50)
        ]
    )
    for waveforms in (noise, tones):
        new = morlet_scalogram(waveforms, center_frequencies=FREQS, width=WIDTH).exp() - morlet_cwt.LOG_FLOOR
        old = previous_scalogram(waveforms, center_frequencies=FREQS, width=WIDTH).exp() - morlet_cwt.LOG_FLOOR
        for row in range(len(waveforms)):
            assert relative_l2(new[row], old[row]) <= 2e-3


def test_pure_tone_peaks_at_nearest_bin_with_unit_modulus():
    time = torch.arange(SR) / SR
    for position in (5.0, 20.3, 33.0, 47.7, 60.0):  # fractional bin positions on the log axis
        frequency = FREQS[0] * (FREQS[1] / FREQS[0]) ** position
        features = morlet_scalogram(torch.sin(2 * math.pi * frequency * time), center_frequencies=FREQS, width=WIDTH)
        middle = features[features.shape[0] // 2]
        assert int(middle.argmax()) == int(np.argmin(np.abs(np.log(FREQS / frequency))))
    at_centre = morlet_scalogram(0.5 * torch.sin(2 * math.pi * FREQS[40] * time), center_frequencies=FREQS, width=WIDTH)
    assert at_centre[50, 40].exp().item() == pytest.approx(0.5, rel=1e-3)


def test_burst_lands_on_its_frames():
    time = torch.arange(int(1.2 * SR)) / SR
    start, stop = 0.5, 0.7
    burst = torch.sin(2 * math.pi * 1000.0 * time) * ((time >= start) & (time < stop))
    features = morlet_scalogram(burst, center_frequencies=FREQS, width=WIDTH)
    bin_1k = int(np.argmin(np.abs(FREQS - 1000.0)))
    level = features[:, bin_1k].exp()
    loud = (level > 0.5 * level.max()).nonzero().flatten()
    # Frame t is centred on sample 160 t + 199.5: the burst covers frames ~ (start * SR - 200) / 160 ...
    assert abs(int(loud[0]) - (start * SR - 199.5) / 160) <= 1.5
    assert abs(int(loud[-1]) - (stop * SR - 199.5) / 160) <= 1.5
    assert level[:30].max() < 1e-3 * level.max() and level[90:].max() < 1e-3 * level.max()


def test_scalogram_silence_loud_and_short_are_finite():
    silent = morlet_scalogram(torch.zeros(1600), center_frequencies=FREQS)
    assert torch.isfinite(silent).all()
    assert silent.max().item() == pytest.approx(math.log(morlet_cwt.LOG_FLOOR), abs=1e-3)
    loud = morlet_scalogram(torch.from_numpy(_noise(3200)) * 1e4, center_frequencies=FREQS)
    assert torch.isfinite(loud).all()
    short = morlet_scalogram(torch.randn(50), center_frequencies=FREQS)
    assert short.shape == (1, 64) and torch.isfinite(short).all()


def test_scalogram_rejects_bad_frequencies():
    with pytest.raises(ValueError, match="center frequencies"):
        morlet_scalogram(torch.zeros(800), center_frequencies=[100.0, 9000.0])


# ------------------------------------------------------------------------------ cwt_seed


@pytest.mark.parametrize("num_samples", [8000, 16000])
def test_seed_matches_original_algorithm(num_samples):
    clip = _noise(num_samples, seed=num_samples) * 0.1
    clip -= clip.mean()
    expected = original_llm_aac_cwt(clip, method="fft")  # same kernels as the default method
    actual = seed_cwt(torch.from_numpy(clip))
    assert actual.shape == (1024, 64) and actual.dtype == torch.float32
    assert relative_l2(actual.numpy().T, expected) <= 1e-4


def test_seed_default_method_reference_on_a_short_clip():
    clip = _noise(2000, seed=3)
    clip -= clip.mean()
    expected = original_llm_aac_cwt(clip)  # method="conv": what the original ran
    assert relative_l2(seed_cwt(torch.from_numpy(clip)).numpy().T, expected) <= 1e-4


def test_seed_batch_with_different_lengths_matches_clip_by_clip():
    lengths = [3000, 1500, 3000]
    batch = torch.zeros(3, 3000)
    clips = []
    for row, n in enumerate(lengths):
        clip = _noise(n, seed=row)
        clip -= clip.mean()
        clips.append(clip)
        batch[row, :n] = torch.from_numpy(clip)
    features = seed_cwt(batch, lengths)
    for row, clip in enumerate(clips):
        assert relative_l2(features[row].numpy().T, original_llm_aac_cwt(clip, method="fft")) <= 1e-4


def test_seed_resample_matches_scipy_both_directions():
    from scipy import signal

    rng = np.random.default_rng(0)
    for length, num in [(3000, 1024), (1000, 1024), (1025, 1024), (3001, 1024)]:
        x = rng.standard_normal((2, length)).astype(np.float32)
        expected = signal.resample(x, num, axis=1)
        actual = morlet_cwt._fft_resample(torch.from_numpy(x), num).numpy()
        assert relative_l2(actual, expected) <= 1e-5


def test_seed_short_clip_and_frequencies():
    tiny = seed_cwt(torch.tensor([0.5]))
    assert tiny.shape == (1024, 64) and torch.isfinite(tiny).all()
    freqs = seed_center_frequencies()
    assert freqs[0] == pytest.approx(3250.0) and np.all(np.diff(freqs) < 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    waveforms = torch.from_numpy(_noise(8000, batch=3))
    cpu = morlet_scalogram(waveforms, center_frequencies=FREQS)
    gpu = morlet_scalogram(waveforms.cuda(), center_frequencies=FREQS)
    assert (gpu.cpu() - cpu).abs().max().item() <= 1e-3
    seed_cpu = seed_cwt(waveforms[:, :4000])
    seed_gpu = seed_cwt(waveforms[:, :4000].cuda())
    assert relative_l2(seed_gpu.cpu(), seed_cpu) <= 1e-5
