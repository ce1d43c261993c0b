"""Batched Kaldi log-mel filterbank in pure torch (EAT's input features).

EAT and SLAM-AAC compute their input with

    torchaudio.compliance.kaldi.fbank(wav, htk_compat=True, sample_frequency=16000, use_energy=False,
                                      window_type="hanning", num_mel_bins=128, dither=0.0, frame_shift=10)

one clip at a time. `kaldi_fbank` gives the same numbers (parity test: <= 1e-4 max abs) for a whole
zero-padded batch at once, on any device, without importing torchaudio (whose compiled extension
does not load on every torch build). Only the options of that call are supported, plus the
frame geometry and number of bins.

Kaldi pipeline per frame (snip_edges=True, so frame t covers samples [t * shift, t * shift + length)):
remove the frame's DC offset, pre-emphasis 0.97 (the first sample is its own predecessor),
symmetric Hann window, zero-pad to the next power of two, power spectrum, triangular mel filters
from 20 Hz to Nyquist on Kaldi's mel scale (1127 ln(1 + f / 700)), natural log floored at float32
epsilon.
"""

from __future__ import annotations

import functools
import math

import torch

# Kaldi floors energies at std::numeric_limits<float>::epsilon() before the log.
FLOAT32_EPSILON = torch.finfo(torch.float32).eps
PREEMPHASIS = 0.97
LOW_FREQUENCY_HZ = 20.0


def kaldi_num_frames(num_samples: int, *, frame_length: int = 400, frame_shift: int = 160) -> int:
    """Frames Kaldi produces for a clip of `num_samples` samples (snip_edges=True).

    Kaldi returns no frame for a clip shorter than one window; we zero-pad such clips to one
    window so that every clip has at least one frame.
    """
    num_samples = max(int(num_samples), frame_length)
    return 1 + (num_samples - frame_length) // frame_shift


def _mel_scale(frequency_hz: torch.Tensor) -> torch.Tensor:
    return 1127.0 * (1.0 + frequency_hz / 700.0).log()


# The filters and the window are built in float32 with the same operation order as
# torchaudio.compliance.kaldi: the lowest mel bins cover one or two FFT bins whose energies sit
# near float32 rounding noise, so a more accurate float64 construction moves those log energies
# by ~1e-4, away from the numbers EAT was trained on. Matching the float32 construction is exact.
@functools.lru_cache(maxsize=8)
def _mel_filterbank_cpu(num_mel_bins: int, fft_size: int, sample_rate: float) -> torch.Tensor:
    """Kaldi's triangular filters as a [fft_size // 2 + 1, num_mel_bins] float32 matrix (Nyquist row zero)."""
    nyquist = 0.5 * sample_rate
    mel_low = 1127.0 * math.log(1.0 + LOW_FREQUENCY_HZ / 700.0)
    mel_high = 1127.0 * math.log(1.0 + nyquist / 700.0)
    mel_step = (mel_high - mel_low) / (num_mel_bins + 1)
    bin_index = torch.arange(num_mel_bins).unsqueeze(1)
    left = mel_low + bin_index * mel_step
    center = mel_low + (bin_index + 1.0) * mel_step
    right = mel_low + (bin_index + 2.0) * mel_step
    bin_mel = _mel_scale((sample_rate / fft_size) * torch.arange(float(fft_size // 2))).unsqueeze(0)
    rising = (bin_mel - left) / (center - left)
    falling = (right - bin_mel) / (right - center)
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)  # [bins, fft_size // 2]
    weights = torch.nn.functional.pad(weights, (0, 1))
    return weights.T.contiguous().to(torch.float32)


@functools.lru_cache(maxsize=8)
def _hann_window_cpu(frame_length: int) -> torch.Tensor:
    # Kaldi's "hanning" is the symmetric Hann window (periodic=False).
    return torch.hann_window(frame_length, periodic=False, dtype=torch.float32)


def kaldi_fbank(
    waveforms: torch.Tensor,
    *,
    sample_rate: int = 16000,
    num_mel_bins: int = 128,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
) -> torch.Tensor:
    """Log-mel filterbank of a batch of waveforms, equal to EAT's `torchaudio.compliance.kaldi.fbank` call.

    Args:
        waveforms: `[batch, samples]` (or `[samples]`) float tensor on any device. Callers remove
            each clip's mean first (EAT does); zero padding at the end of shorter clips only
            affects frames that reach into the padding. Clips shorter than one window are
            zero-padded to one window.
        sample_rate: sampling rate in Hz (16 kHz for EAT).
        num_mel_bins: number of triangular mel filters between 20 Hz and Nyquist.
        frame_length_ms: window length in milliseconds (25 ms = 400 samples at 16 kHz).
        frame_shift_ms: hop in milliseconds (10 ms = 160 samples at 16 kHz).

    Returns:
        `[batch, frames, num_mel_bins]` float32 (or `[frames, num_mel_bins]` for 1-D input), with
        `frames = 1 + (samples - frame_length) // frame_shift`.
    """
    squeeze = waveforms.dim() == 1
    if squeeze:
        waveforms = waveforms[None]
    if waveforms.dim() != 2:
        raise ValueError(f"kaldi_fbank expects [batch, samples] or [samples], got shape {tuple(waveforms.shape)}")
    waveforms = waveforms.to(torch.float32)
    frame_length = int(sample_rate * frame_length_ms * 0.001)
    frame_shift = int(sample_rate * frame_shift_ms * 0.001)
    fft_size = 1 << (frame_length - 1).bit_length()
    if waveforms.shape[-1] < frame_length:
        waveforms = torch.nn.functional.pad(waveforms, (0, frame_length - waveforms.shape[-1]))

    frames = waveforms.unfold(-1, frame_length, frame_shift)  # [B, T, L] view
    frames = frames - frames.mean(dim=-1, keepdim=True)
    previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
    frames = frames - PREEMPHASIS * previous
    frames = frames * _hann_window_cpu(frame_length).to(frames.device)
    power = torch.fft.rfft(frames, n=fft_size).abs().pow(2.0)  # [B, T, fft_size // 2 + 1]
    filterbank = _mel_filterbank_cpu(num_mel_bins, fft_size, float(sample_rate)).to(power.device)
    if power.is_cuda:
        # cuBLAS may run float32 matmuls in TF32 (10-bit mantissa) when the training code enables
        # it globally; float64 keeps the product exact at negligible cost for this small matrix.
        mel_energies = torch.matmul(power.double(), filterbank.double()).float()
    else:
        mel_energies = torch.matmul(power, filterbank)
    features = torch.clamp(mel_energies, min=FLOAT32_EPSILON).log()
    return features[0] if squeeze else features
