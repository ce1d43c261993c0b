"""The band-limited `cwt` route as it was before its GPU rewrite (commit 0faf194), kept frozen.

`modeling_llm_aac.morlet_cwt.morlet_scalogram` was rewritten for speed (fewer decimated samples,
no two-sided spectrum, one-pass pooling); the tests compare the new route against this one. Only
test code imports it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch

from modeling_llm_aac.morlet_cwt import LOG_FLOOR, SUPPORT_SIGMAS, _check_waveforms, _next_5_smooth, _wavelet_response, scalogram_num_frames

RATE_SIGMAS = 12.0
RATE_MARGIN_HZ = 200.0


@functools.lru_cache(maxsize=16)
def _scalogram_plan(
    fft_size: int,
    center_frequencies: tuple[float, ...],
    width: float,
    sample_rate: float,
    hop_length: int,
    window_length: int,
    device: torch.device,
) -> list[dict]:
    """Per-decimation groups of wavelets: band slices, filters and pooling weights."""
    frame_centre = (window_length - 1) / 2.0  # fbank frame t spans [t * hop, t * hop + window)
    divisors = [d for d in range(1, hop_length + 1) if hop_length % d == 0]
    decimation_of: dict[int, list[int]] = {}
    for index, freq in enumerate(center_frequencies):
        rate = RATE_SIGMAS * freq / width + RATE_MARGIN_HZ
        decimation = max([d for d in divisors if sample_rate / d >= rate], default=1)
        decimation_of.setdefault(decimation, []).append(index)

    groups = []
    for decimation, indices in sorted(decimation_of.items()):
        band_length = fft_size // decimation
        freqs = torch.tensor([center_frequencies[i] for i in indices], dtype=torch.float64)[:, None]
        centre_bins = torch.round(freqs * fft_size / sample_rate).to(torch.int64)
        unwrapped = centre_bins - band_length // 2 + torch.arange(band_length)[None, :]  # [S, Lb]
        band_bins = torch.remainder(unwrapped, fft_size)
        unwrapped_hz = unwrapped.to(torch.float64) * sample_rate / fft_size
        response = _wavelet_response(unwrapped_hz, freqs, width, sample_rate)
        # Normalised so that a unit-amplitude tone at a centre frequency gives modulus 1 (the
        # analytic filter keeps half of a real tone, hence 2); 1 / D undoes the short inverse
        # FFT's normalisation; the phase ramp advances the signal to the first frame centre.
        gain = 2.0 / (decimation * _wavelet_response(freqs, freqs, width, sample_rate))
        phase = torch.exp(2j * math.pi * unwrapped.to(torch.float64) * frame_centre / fft_size)
        band_filter = gain * response * phase

        stride = hop_length // decimation  # decimated samples per frame
        reach = int(math.ceil(window_length / 2 / decimation)) - 1  # |j * D| < window / 2
        offsets = torch.arange(-reach, reach + 1)
        hann = 0.5 * (1.0 + torch.cos(math.pi * offsets.to(torch.float64) * decimation / (window_length / 2)))
        hann = hann / hann.sum()
        # Offset j = block * stride + phase_in_block: pooling reads whole frame-sized blocks.
        first_block = math.floor(-reach / stride)
        last_block = math.floor(reach / stride)
        block_weights = torch.zeros(last_block - first_block + 1, stride, dtype=torch.float64)
        for offset, weight in zip(offsets.tolist(), hann.tolist()):
            block_weights[offset // stride - first_block, offset % stride] = weight

        groups.append(
            {
                "indices": torch.tensor(indices, device=device),
                "band_length": band_length,
                "band_bins": band_bins.to(device),
                "band_filter": band_filter.to(device=device, dtype=torch.complex64),
                "stride": stride,
                "first_block": first_block,
                "block_weights": block_weights.to(device=device, dtype=torch.float32),
                "pool_taps": hann.to(device=device, dtype=torch.float32),
            }
        )
    return groups


def scalogram_fft_size(num_samples: int, *, f_min: float, width: float, sample_rate: float, hop_length: int) -> int:
    """FFT length used for a clip: covers the clip plus the longest wavelet's support, a multiple of the hop."""
    sigma_t = width * sample_rate / (2 * math.pi * f_min)
    needed = num_samples + int(math.ceil(SUPPORT_SIGMAS * sigma_t)) + hop_length + 2
    return hop_length * _next_5_smooth(math.ceil(needed / hop_length))


def morlet_scalogram(
    waveforms: torch.Tensor,
    *,
    center_frequencies: Sequence[float],
    width: float = 12.0,
    sample_rate: int = 16000,
    hop_length: int = 160,
    window_length: int = 400,
    log_floor: float = LOG_FLOOR,
    max_batch_elements: int = 1 << 27,
) -> torch.Tensor:
    """Log-modulus complex Morlet scalogram pooled onto the fbank frame grid.

    Args:
        waveforms: `[batch, samples]` or `[samples]` float tensor at `sample_rate`, any device.
            Zero padding at the end of shorter clips only affects frames past their own end.
        center_frequencies: wavelet centre frequencies in Hz (increasing order gives bins low -> high).
        width: cycles per wavelet.
        sample_rate: sampling rate in Hz.
        hop_length: frame hop in samples (160 = 10 ms at 16 kHz).
        window_length: pooling window (a Hann window, like an fbank frame) in samples.
        log_floor: added to the pooled modulus before the natural log.
        max_batch_elements: clips are processed in chunks whose band-limited intermediate holds
            at most this many complex values (bounds memory on GPU).

    Returns:
        float32 `[batch, frames, scales]` (or `[frames, scales]`), frames = `scalogram_num_frames`.
        A unit-amplitude sinusoid at a centre frequency gives a pooled modulus of 1 in that bin.
    """
    waveforms, squeeze = _check_waveforms(waveforms, "morlet_scalogram")
    freqs = tuple(float(f) for f in center_frequencies)
    if not freqs:
        raise ValueError("center_frequencies is empty")
    if min(freqs) <= 0 or max(freqs) > sample_rate / 2:
        raise ValueError(f"center frequencies must lie in (0, {sample_rate / 2}] Hz, got {min(freqs)}..{max(freqs)}")
    if hop_length < 1 or window_length < 1:
        raise ValueError(f"hop_length and window_length must be positive, got {hop_length}, {window_length}")
    if waveforms.shape[-1] < window_length:
        waveforms = torch.nn.functional.pad(waveforms, (0, window_length - waveforms.shape[-1]))
    batch, num_samples = waveforms.shape
    num_frames = scalogram_num_frames(num_samples, hop_length=hop_length, window_length=window_length)
    fft_size = scalogram_fft_size(
        num_samples, f_min=min(freqs), width=width, sample_rate=sample_rate, hop_length=hop_length
    )
    groups = _scalogram_plan(
        fft_size, freqs, float(width), float(sample_rate), hop_length, window_length, waveforms.device
    )
    per_clip = sum(len(g["indices"]) * g["band_length"] for g in groups)
    chunk = max(1, max_batch_elements // per_clip)
    outputs = [
        _scalogram_chunk(waveforms[start : start + chunk], groups, fft_size, num_frames, len(freqs))
        for start in range(0, batch, chunk)
    ]
    features = torch.log(torch.cat(outputs, dim=0) + log_floor).transpose(1, 2).contiguous()
    return features[0] if squeeze else features


def _scalogram_chunk(waveforms, groups, fft_size, num_frames, num_scales):
    half = torch.fft.rfft(waveforms, n=fft_size)  # [B, P // 2 + 1]
    # Two-sided spectrum of the real clip: bins above Nyquist are the conjugate mirror.
    spectrum = torch.cat([half, half[:, 1 : fft_size - fft_size // 2].flip(-1).conj()], dim=-1)
    pooled = waveforms.new_empty(waveforms.shape[0], num_scales, num_frames)
    for group in groups:
        band = spectrum[:, group["band_bins"]]  # [B, S, Lb]
        band = torch.fft.ifft(band.mul_(group["band_filter"]), dim=-1)
        envelope = torch.hypot(band.real, band.imag)
        pooled[:, group["indices"]] = _pool(envelope, group, num_frames)
    return pooled


def _pool(envelope: torch.Tensor, group: dict, num_frames: int, use_convolution: bool | None = None) -> torch.Tensor:
    """Hann-weighted average of the decimated modulus around each frame centre (circular).

    On CPU a strided convolution; on CUDA plain multiply-adds over frame-sized blocks, because
    cuDNN may run float32 convolutions in TF32 (10-bit mantissa). Both give the same numbers.
    """
    stride, taps = group["stride"], group["pool_taps"]
    if use_convolution is None:
        use_convolution = not envelope.is_cuda
    if not use_convolution:
        blocks = envelope.view(*envelope.shape[:2], -1, stride)  # [B, S, P / hop, stride]
        first, weights = group["first_block"], group["block_weights"]
        num_blocks = blocks.shape[-2]
        # Circular padding by whole blocks so that every frame reads a plain slice.
        blocks = torch.cat(
            [blocks[..., num_blocks + first :, :], blocks, blocks[..., : len(weights) + first, :]], dim=-2
        )
        result = None
        for row, row_weights in enumerate(weights):
            term = (blocks[..., row : row + num_frames, :] * row_weights).sum(-1)
            result = term if result is None else result.add_(term)
        return result
    batch, scales, length = envelope.shape
    reach = (len(taps) - 1) // 2
    flat = envelope.reshape(batch * scales, 1, length)
    flat = torch.cat([flat[..., length - reach :], flat, flat[..., :reach]], dim=-1)
    result = torch.nn.functional.conv1d(flat, taps.view(1, 1, -1), stride=stride)[..., :num_frames]
    return result.view(batch, scales, num_frames)
