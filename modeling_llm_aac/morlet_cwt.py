"""Morlet continuous wavelet transforms in batched torch: a principled scalogram and the original LLM-AAC CWT.

Two feature types live here.

`morlet_scalogram` (feature type "cwt") -- complex analytic Morlet wavelets at log-spaced centre
frequencies, modulus, low-pass pooled onto the 10 ms frame grid of the Kaldi fbank (frame t is
centred on sample 160 t + 199.5, the centre of fbank frame t, so both features have the same
number of frames and are interchangeable), log compression, bins ordered low -> high frequency.

The wavelet of centre frequency f has a Gaussian envelope of standard deviation
`width / (2 pi f)` seconds: `width` is the number of cycles per wavelet (as in MNE's
`n_cycles`), its frequency response is a Gaussian of standard deviation `f / width` Hz. In
PyWavelets terms it is `cmorB-C` with B = 2 and C = width / (2 pi) at scale `C * sr / f`
(`pywt_cmor_name`, `pywt_scales`); `morlet_cwt` returns the unpooled transform with PyWavelets'
normalisation for a parity test against `pywt.cwt(..., method="fft")`.

Speed comes from the band-limited route: one rFFT of the clip; for every wavelet only a band of
the (two-sided) spectrum around its centre is kept, as wide as the rate its modulus needs
(`RATE_SIGMAS` spectral standard deviations plus `RATE_MARGIN_HZ`, rounded up to a whole, 7-smooth
number of samples per 10 ms frame); the filter is applied while slicing that band out of the
spectrum, and an unnormalised inverse FFT of the band gives the complex wavelet output at that
reduced rate; modulus (`hypot`); Hann-weighted pooling (25 ms window, like an fbank frame) onto
the frame grid as one matrix product with frame-sized blocks. Wavelets sharing a rate are
processed together: a 64-scale batch costs about 30 inverse FFT calls, all in float32 (the
pooling falls back to plain multiply-adds when torch lets float32 matmuls run in TF32).

`seed_cwt` (feature type "cwt_seed") reproduces `precompute_wavelets.py` of the original LLM-AAC
project (`pywt.cwt(x, logspace(log10 4, log10(N // 2), 64), "morl")`, modulus,
`scipy.signal.resample` to 1024 frames) with FFT convolutions of exactly PyWavelets' discrete
kernels; see its docstring.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import torch

# Time support of the longest wavelet in envelope standard deviations, used to zero-pad the
# FFT so that circular wrap-around never reaches a real sample.
SUPPORT_SIGMAS = 7.0
# A wavelet output is decimated to a rate of at least this many spectral standard deviations
# (its squared modulus has a Gaussian spectrum of standard deviation sqrt(2) sigma) plus the
# pooling window's main lobe, so that the pooled modulus matches the full-rate computation. The
# band of spectrum kept is as wide as that rate: at least +-6 sigma around the centre, where the
# Gaussian response has fallen to 1.5e-8.
RATE_SIGMAS = 12.0
RATE_MARGIN_HZ = 200.0
# Natural log of (pooled modulus + LOG_FLOOR): finite for silence; about -138 dB re full scale,
# well below 16-bit quantisation noise.
LOG_FLOOR = 1e-6


# --------------------------------------------------------------------------------------------
# Principled analytic Morlet scalogram ("cwt")
# --------------------------------------------------------------------------------------------


def log_spaced_center_frequencies(num_scales: int, f_min: float, f_max: float) -> np.ndarray:
    """`num_scales` centre frequencies in Hz, geometrically spaced from `f_min` to `f_max` (low -> high)."""
    if num_scales < 1:
        raise ValueError(f"num_scales must be >= 1, got {num_scales}")
    if not 0 < f_min <= f_max:
        raise ValueError(f"need 0 < f_min <= f_max, got f_min={f_min}, f_max={f_max}")
    if num_scales == 1:
        return np.array([float(f_min)])
    return np.geomspace(float(f_min), float(f_max), num_scales)


def pywt_cmor_name(width: float) -> str:
    """PyWavelets name of the complex Morlet with `width` cycles: `cmor2.0-{width / (2 pi)}`."""
    return f"cmor2.0-{width / (2 * math.pi)!r}"


def pywt_scales(center_frequencies: Sequence[float], width: float, sample_rate: float) -> np.ndarray:
    """PyWavelets scales (in samples) of `pywt_cmor_name(width)` for the given centre frequencies."""
    return (width / (2 * math.pi)) * float(sample_rate) / np.asarray(center_frequencies, dtype=np.float64)


def pywt_time_offsets(scales: Sequence[float], precision: int = 12) -> np.ndarray:
    """Sub-sample delay, in samples, of `pywt.cwt`'s output relative to a centred wavelet.

    `pywt.cwt` convolves with the integrated wavelet sampled on `L` taps (`arange(16 s + 1)`,
    minus a last tap that can fall off its grid), differentiates and crops `floor((L - 2) / 2)`
    samples on the left, so its coefficient n of scale s is the centred transform at time
    `n - delay(s)` with delay in [0, 1). Used only to compare with PyWavelets.
    """
    grid = np.linspace(-8.0, 8.0, 2**precision)
    grid_step = grid[1] - grid[0]
    delays = []
    for scale in np.asarray(scales, dtype=np.float64):
        grid_index = (np.arange(scale * (grid[-1] - grid[0]) + 1) / (scale * grid_step)).astype(int)
        taps = int(np.count_nonzero(grid_index < grid.size))
        delays.append(taps - 1.5 - math.floor((taps - 2) / 2) - 8.0 * scale)
    return np.asarray(delays)


def _wavelet_response(frequency_hz: torch.Tensor, center_hz: torch.Tensor, width: float, sample_rate: float):
    """Frequency response of the discrete complex Morlet at `frequency_hz` (unwrapped), peak ~1.

    A Gaussian of standard deviation `center / width` around the centre (the continuous
    wavelet's spectrum) times `sinc(f / sr)`: PyWavelets builds its discrete kernel by
    integrating the wavelet over each sample period (a one-sample box filter), and we use the
    same discrete wavelet so that the unpooled transform agrees with `pywt.cwt`.
    """
    gaussian = torch.exp(-0.5 * ((frequency_hz - center_hz) / (center_hz / width)) ** 2)
    return gaussian * torch.sinc(frequency_hz / sample_rate)


def _check_waveforms(waveforms: torch.Tensor, name: str) -> tuple[torch.Tensor, bool]:
    if not torch.is_tensor(waveforms):
        raise TypeError(f"{name} expects a torch.Tensor, got {type(waveforms).__name__}")
    squeeze = waveforms.dim() == 1
    if squeeze:
        waveforms = waveforms[None]
    if waveforms.dim() != 2:
        raise ValueError(f"{name} expects [batch, samples] or [samples], got shape {tuple(waveforms.shape)}")
    return waveforms.to(torch.float32), squeeze


def _is_5_smooth(n: int) -> bool:
    for prime in (2, 3, 5):
        while n % prime == 0:
            n //= prime
    return n == 1


def _next_5_smooth(n: int) -> int:
    n = max(int(n), 1)
    while not _is_5_smooth(n):
        n += 1
    return n


def morlet_cwt(
    waveforms: torch.Tensor,
    center_frequencies: Sequence[float],
    *,
    width: float,
    sample_rate: float = 16000,
    time_offsets: Sequence[float] | None = None,
) -> torch.Tensor:
    """Unpooled complex Morlet CWT at full sample rate, with PyWavelets' normalisation.

    Equals `pywt.cwt(x, pywt_scales(center_frequencies, width, sample_rate),
    pywt_cmor_name(width), 1 / sample_rate, method="fft")[0]` up to PyWavelets' discretisation
    (shift its output by `time_offsets=pywt_time_offsets(scales, precision)` to compare).
    Memory grows as batch x scales x samples: meant for tests and inspection; features use the
    band-limited `morlet_scalogram`.

    Args:
        waveforms: `[batch, samples]` or `[samples]` float tensor, any device.
        center_frequencies: centre frequency of each wavelet in Hz.
        width: cycles per wavelet (envelope standard deviation = width / (2 pi f) seconds).
        sample_rate: sampling rate in Hz.
        time_offsets: optional per-scale delays in samples applied to the output.

    Returns:
        complex64 `[batch, scales, samples]` (or `[scales, samples]` for 1-D input).
    """
    waveforms, squeeze = _check_waveforms(waveforms, "morlet_cwt")
    device = waveforms.device
    freqs = torch.as_tensor(np.asarray(center_frequencies, dtype=np.float64), device=device)[:, None]
    num_samples = waveforms.shape[-1]
    sigma_t = width * sample_rate / (2 * math.pi * float(freqs.min()))
    fft_size = _next_5_smooth(num_samples + int(math.ceil(SUPPORT_SIGMAS * sigma_t)) + 2)
    spectrum = torch.fft.fft(waveforms, n=fft_size)  # [B, P]
    # Each wavelet's response is a Gaussian around its centre; an FFT bin stands for the
    # frequency of its alias nearest to that centre (the DTFT of the sampled wavelet).
    bins = torch.arange(fft_size, device=device, dtype=torch.float64)[None, :]
    centre_bins = freqs * fft_size / sample_rate
    unwrapped = bins + fft_size * torch.round((centre_bins - bins) / fft_size)
    unwrapped_hz = unwrapped * sample_rate / fft_size
    scales = width / (2 * math.pi) * sample_rate / freqs
    response = torch.sqrt(scales) * _wavelet_response(unwrapped_hz, freqs, width, sample_rate)
    response = response.to(torch.complex128)
    if time_offsets is not None:
        delays = torch.as_tensor(np.asarray(time_offsets, dtype=np.float64), device=device)[:, None]
        response = response * torch.exp(-2j * math.pi * unwrapped * delays / fft_size)
    transform = torch.fft.ifft(spectrum[:, None, :] * response.to(torch.complex64), dim=-1)[..., :num_samples]
    return transform[0] if squeeze else transform


def scalogram_num_frames(num_samples: int, *, hop_length: int = 160, window_length: int = 400) -> int:
    """Frames of `morlet_scalogram` for a clip: the Kaldi fbank count, at least one."""
    num_samples = max(int(num_samples), window_length)
    return 1 + (num_samples - window_length) // hop_length


def _is_7_smooth(n: int) -> bool:
    for prime in (2, 3, 5, 7):
        while n % prime == 0:
            n //= prime
    return n == 1


def _next_7_smooth(n: int) -> int:
    n = max(int(n), 1)
    while not _is_7_smooth(n):
        n += 1
    return n


def _decimated_stride(freq: float, width: float, frame_rate: float, hop_length: int) -> int:
    """Decimated samples per frame for the wavelet at `freq`: its output rate is `stride * frame_rate`.

    The rate must reach `RATE_SIGMAS` spectral standard deviations plus the margin; rounding up to
    a 7-smooth stride keeps the inverse FFT (`num_blocks * stride` points) fast; full rate at most.
    """
    rate = RATE_SIGMAS * freq / width + RATE_MARGIN_HZ
    return min(_next_7_smooth(math.ceil(rate / frame_rate - 1e-9)), hop_length)


def _pooling_blocks(stride: int, hop_length: int, window_length: int) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Hann taps at the decimated spacing `hop / stride` samples (|offset| < window / 2), normalised.

    Returns `(first_block, taps, block_weights)`: offset j lies in frame-sized block
    `j // stride` (relative to the frame's own block), at phase `j % stride`; `block_weights[r]`
    holds the taps of block `first_block + r`.
    """
    reach = (window_length * stride - 1) // (2 * hop_length)
    offsets = torch.arange(-reach, reach + 1)
    spacing = hop_length / stride
    taps = 0.5 * (1.0 + torch.cos(math.pi * offsets.to(torch.float64) * spacing / (window_length / 2)))
    taps = taps / taps.sum()
    first_block = math.floor(-reach / stride)
    block_weights = torch.zeros(math.floor(reach / stride) - first_block + 1, stride, dtype=torch.float64)
    for offset, weight in zip(offsets.tolist(), taps.tolist()):
        block_weights[offset // stride - first_block, offset % stride] = weight
    return first_block, taps, block_weights


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
    """Groups of wavelets sharing a decimated rate: spectrum slices, filters and pooling weights.

    Wavelet k of a group reads the `band_length` bins of the (conjugate-symmetric, unwrapped)
    spectrum starting at `first_bins[k]`; a `band_length`-point inverse FFT then gives its output
    at `stride` samples per frame. The output is advanced so that its block b (samples
    `b * stride ... (b + 1) * stride - 1`) is frame t = b - first_block's first pooling block:
    frame t's window covers blocks t ... t + rows - 1, and no frame of the clip wraps around.
    """
    if fft_size % hop_length:
        raise ValueError(f"fft_size {fft_size} must be a multiple of hop_length {hop_length}")
    num_blocks = fft_size // hop_length  # frames' worth of samples on the circular FFT grid
    frame_centre = (window_length - 1) / 2.0  # fbank frame t spans [t * hop, t * hop + window)
    frame_rate = sample_rate / hop_length
    stride_of: dict[int, list[int]] = {}
    for index, freq in enumerate(center_frequencies):
        stride_of.setdefault(_decimated_stride(freq, width, frame_rate, hop_length), []).append(index)

    groups = []
    for stride, indices in sorted(stride_of.items()):
        band_length = num_blocks * stride
        first_block, taps, block_weights = _pooling_blocks(stride, hop_length, window_length)
        freqs = torch.tensor([center_frequencies[i] for i in indices], dtype=torch.float64)[:, None]
        first_bins = torch.round(freqs * fft_size / sample_rate).to(torch.int64) - band_length // 2
        unwrapped = first_bins + torch.arange(band_length)[None, :]  # [S, Lb], may leave [0, fft_size)
        unwrapped_hz = unwrapped.to(torch.float64) * sample_rate / fft_size
        response = _wavelet_response(unwrapped_hz, freqs, width, sample_rate)
        # Normalised so that a unit-amplitude tone at a centre frequency gives modulus 1 (the
        # analytic filter keeps half of a real tone, hence 2); 1 / fft_size is the full-length
        # inverse FFT's normalisation (the short one runs unnormalised); the phase ramp advances
        # the signal to the start of frame 0's first pooling block.
        gain = 2.0 / (fft_size * _wavelet_response(freqs, freqs, width, sample_rate))
        origin = frame_centre + first_block * hop_length
        phase = torch.exp(2j * math.pi * unwrapped.to(torch.float64) * origin / fft_size)
        band_filter = gain * response * phase
        contiguous = indices == list(range(indices[0], indices[-1] + 1))
        groups.append(
            {
                "indices": torch.tensor(indices, device=device),
                "scale_slice": slice(indices[0], indices[-1] + 1) if contiguous else None,
                "first_bins": first_bins.flatten().tolist(),
                "band_length": band_length,
                "band_filter": band_filter.to(device=device, dtype=torch.complex64),
                "stride": stride,
                "first_block": first_block,
                "block_weights": block_weights.to(device=device, dtype=torch.float32),
                "pool_taps": taps.to(device=device, dtype=torch.float32),
            }
        )
    return groups


def scalogram_fft_size(
    num_samples: int, *, f_min: float, width: float, sample_rate: float, hop_length: int, window_length: int = 400
) -> int:
    """FFT length used for a clip: hop times a 7-smooth number of blocks.

    Covers the clip plus the longest wavelet's support (so circular wrap-around never reaches a
    real sample) and every frame's pooling window without wrapping.
    """
    sigma_t = width * sample_rate / (2 * math.pi * f_min)
    needed = num_samples + int(math.ceil(SUPPORT_SIGMAS * sigma_t)) + hop_length + 2
    frames = scalogram_num_frames(num_samples, hop_length=hop_length, window_length=window_length)
    blocks = max(math.ceil(needed / hop_length), frames + math.ceil(window_length / hop_length))
    return hop_length * _next_7_smooth(blocks)


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
        max_batch_elements: clips are processed in chunks such that their spectrum, and the
            decimated outputs of one group of wavelets, hold at most this many complex values
            each (bounds memory: roughly 40 bytes per element at the peak).

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
        num_samples,
        f_min=min(freqs),
        width=width,
        sample_rate=sample_rate,
        hop_length=hop_length,
        window_length=window_length,
    )
    groups = _scalogram_plan(
        fft_size, freqs, float(width), float(sample_rate), hop_length, window_length, waveforms.device
    )
    # Spectrum bins low .. high - 1 (unwrapped, conjugate-symmetric) cover every wavelet's band.
    low = min(min(g["first_bins"]) for g in groups)
    high = max(max(g["first_bins"]) + g["band_length"] for g in groups)
    per_clip = max(high - low, max(len(g["indices"]) * g["band_length"] for g in groups))
    chunk = max(1, max_batch_elements // per_clip)
    # [scales, batch, frames]: every group of wavelets writes one slab.
    pooled = waveforms.new_empty(len(freqs), batch, num_frames)
    for start in range(0, batch, chunk):
        spectrum = _hermitian_extension(torch.fft.rfft(waveforms[start : start + chunk], n=fft_size), fft_size, low, high)
        _scalogram_chunk(spectrum, low, groups, pooled[:, start : start + chunk])
    features = torch.log(pooled.add_(log_floor)).permute(1, 2, 0).contiguous()
    return features[0] if squeeze else features


def _hermitian_extension(half: torch.Tensor, fft_size: int, start: int, stop: int) -> torch.Tensor:
    """Bins `start <= u < stop` of the periodic two-sided spectrum of a real signal, from its rFFT half.

    Bin u holds `half[u mod P]` when `u mod P <= P // 2`, else `conj(half[P - u mod P])`. Built
    from contiguous runs (flipped and conjugated where mirrored) so no index tensor is read.
    """
    pieces = []
    u = start
    while u < stop:
        k = u % fft_size
        if k <= fft_size // 2:
            run = min(stop - u, fft_size // 2 + 1 - k)
            pieces.append(half[:, k : k + run])
        else:
            run = min(stop - u, fft_size - k)
            mirror = fft_size - k  # bins k .. k + run - 1 mirror half[mirror], half[mirror - 1], ...
            pieces.append(half[:, mirror - run + 1 : mirror + 1].flip(-1).conj())
        u += run
    return torch.cat(pieces, dim=-1) if len(pieces) > 1 else pieces[0].resolve_conj()


def _scalogram_chunk(spectrum, low, groups, pooled):
    """Pooled modulus of every wavelet for a chunk of clips, written into `pooled` [scales, chunk, frames].

    `spectrum` holds bins `low ...` of the clips' two-sided spectrum (`_hermitian_extension`).
    """
    num_frames = pooled.shape[-1]
    for group in groups:
        length = group["band_length"]
        band = spectrum.new_empty(len(group["first_bins"]), spectrum.shape[0], length)  # [S, B, Lb]
        for row, first in enumerate(group["first_bins"]):
            # The slice and the filter product in one kernel: no gathered copy of the spectrum.
            torch.mul(spectrum[:, first - low : first - low + length], group["band_filter"][row], out=band[row])
        # Unnormalised inverse FFT (the filters carry 1 / fft_size): no extra scaling pass.
        band = torch.fft.ifft(band, dim=-1, norm="forward")
        # hypot of the real and imaginary views: about twice as fast as abs() of complex on CUDA.
        envelope = torch.hypot(band.real, band.imag)
        del band
        if group["scale_slice"] is not None:
            _pool(envelope, group, num_frames, out=pooled[group["scale_slice"]])
        else:
            pooled.index_copy_(0, group["indices"], _pool(envelope, group, num_frames))


def _matmul_keeps_float32(device: torch.device) -> bool:
    """Whether float32 matmuls on `device` run in float32, not TF32 / bfloat16 (about 3 significant digits)."""
    if device.type == "cuda":
        backend, legacy = torch.backends.cuda.matmul, "allow_tf32"
    elif device.type == "cpu":
        backend, legacy = getattr(torch.backends.mkldnn, "matmul", None), None
    else:
        return False
    try:
        precision = getattr(backend, "fp32_precision", None)  # torch >= 2.9; "none" is the IEEE default
        if precision is None:
            return not getattr(torch.backends.cuda.matmul, legacy) if legacy else True
        return precision in ("none", "ieee")
    except RuntimeError:  # torch refuses to answer after a mix of its legacy and new TF32 switches
        return False


def _pool(
    envelope: torch.Tensor, group: dict, num_frames: int, method: str | None = None, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Hann-weighted average of the decimated modulus around each frame centre.

    `envelope` is `[..., band_length]` laid out as in `_scalogram_plan` (frame t's window covers
    blocks t ... t + rows - 1 of `stride` samples). Three ways to the same numbers: "matmul"
    (every block times the `[stride, rows]` block weights in one matrix product, then a sum over
    a strided view that picks row r of block t + r; the default), "blocks" (multiply-adds, one
    pass per row of block weights; used when float32 matmuls may run in TF32 / bfloat16) and
    "convolution" (a strided conv1d; a reference only, as cuDNN runs float32 convolutions in
    TF32 by default). `out`, if given, receives the `[..., num_frames]` result.
    """
    if method is None:
        method = "matmul" if _matmul_keeps_float32(envelope.device) else "blocks"
    stride, first = group["stride"], group["first_block"]
    leading, length = envelope.shape[:-1], envelope.shape[-1]
    if method == "convolution":
        taps = group["pool_taps"]
        start = -first * stride - (len(taps) - 1) // 2  # first tap of frame 0
        flat = envelope.reshape(-1, 1, length)[..., start:]
        result = torch.nn.functional.conv1d(flat, taps.view(1, 1, -1), stride=stride)[..., :num_frames]
        result = result.view(*leading, num_frames)
        return result if out is None else out.copy_(result)
    weights = group["block_weights"]  # [rows, stride]
    rows = weights.shape[0]
    if num_frames + rows - 1 > length // stride:
        raise ValueError(f"{num_frames} frames need {num_frames + rows - 1} blocks, the envelope has {length // stride}")
    blocks = envelope.view(*leading, length // stride, stride)
    if method == "matmul":
        per_row = torch.matmul(blocks, weights.t())  # [..., blocks, rows], contiguous
        # Frame t sums row r of block t + r: element (t, r) sits at t * rows + r * (rows + 1).
        diagonal = per_row.as_strided(
            (*leading, num_frames, rows), (*per_row.stride()[:-2], rows, rows + 1), per_row.storage_offset()
        )
        return torch.sum(diagonal, dim=-1, out=out) if out is not None else diagonal.sum(-1)
    if method != "blocks":
        raise ValueError(f"unknown pooling method {method!r}")
    result = out
    for row, row_weights in enumerate(weights):
        term = (blocks[..., row : row + num_frames, :] * row_weights).sum(-1)
        result = term if result is None else (result.copy_(term) if row == 0 else result.add_(term))
    return result


# --------------------------------------------------------------------------------------------
# The original LLM-AAC CWT ("cwt_seed")
# --------------------------------------------------------------------------------------------

SEED_MAX_SAMPLES = 160000  # the original caps clips at 10 s of 16 kHz audio
SEED_NUM_FRAMES = 1024  # ... and resamples every clip's time axis to 1024 frames
SEED_MIN_SCALE = 4.0
SEED_PRECISION = 12  # PyWavelets' default integration grid (2**12 points) since v1.5
MORLET_CENTRAL_FREQUENCY = 0.8125  # pywt.scale2frequency("morl", 1)


def seed_scales(num_samples: int, num_scales: int = 64) -> np.ndarray:
    """The original's scales for a clip of `num_samples` (after the cap): logspace(log10 4, log10(N // 2))."""
    return np.logspace(np.log10(SEED_MIN_SCALE), np.log10(num_samples // 2), num=num_scales)


def seed_center_frequencies(num_samples: int = SEED_MAX_SAMPLES, num_scales: int = 64, sample_rate: float = 16000):
    """Centre frequency in Hz of each `cwt_seed` bin (high -> low, the original's order)."""
    return MORLET_CENTRAL_FREQUENCY * sample_rate / seed_scales(num_samples, num_scales)


@functools.lru_cache(maxsize=2)
def _seed_integrated_morlet(precision: int) -> tuple[np.ndarray, np.float32, np.float32]:
    """PyWavelets' integrated real Morlet on its grid, as `pywt.cwt` holds it for float32 audio."""
    grid = np.linspace(-8.0, 8.0, 2**precision)
    psi = np.exp(-(grid**2) / 2.0) * np.cos(5.0 * grid)
    integrated = np.cumsum(psi) * (grid[1] - grid[0])
    grid32 = grid.astype(np.float32)
    return integrated.astype(np.float32), grid32[1] - grid32[0], grid32[-1] - grid32[0]


def _seed_kernel(scale: float, precision: int) -> tuple[np.ndarray, int]:
    """Taps `g` and left crop `a` such that the original's coefficient n is -sqrt(s) sum_k x[k] g[n + a + 1 - k].

    `pywt.cwt` convolves with the integrated wavelet sampled (by flooring) on `arange(16 s + 1)`,
    reversed, differentiates and crops floor((L - 2) / 2) samples on the left; a convolution
    followed by a first difference is one convolution with the differenced kernel.
    """
    integrated, step, span = _seed_integrated_morlet(precision)
    grid_index = (np.arange(scale * span + 1) / (scale * step)).astype(int)
    grid_index = grid_index[grid_index < integrated.size]
    taps = integrated[grid_index][::-1].astype(np.float64)
    differenced = np.diff(taps, prepend=0.0, append=0.0)  # length L + 1
    return differenced, math.floor((taps.size - 2) / 2)


@functools.lru_cache(maxsize=4)
def _seed_filter_bank(num_samples: int, num_scales: int, precision: int, device: torch.device):
    """rFFTs of every scale's kernel on a circular grid long enough for exact linear convolution."""
    fft_size = _next_5_smooth(2 * num_samples - 1)
    spectra = []
    for scale in seed_scales(num_samples, num_scales):
        differenced, left_crop = _seed_kernel(scale, precision)
        # Kernel value at lag u = n - k is -sqrt(s) g[u + a + 1]; only |u| < N can matter.
        lags = np.arange(differenced.size) - (left_crop + 1)
        keep = np.abs(lags) < num_samples
        circular = np.zeros(fft_size)
        circular[lags[keep] % fft_size] = -math.sqrt(scale) * differenced[keep]  # lags are distinct mod M
        spectra.append(np.fft.rfft(circular).astype(np.complex64))
    return fft_size, torch.from_numpy(np.stack(spectra)).to(device)


def _fft_resample(signal: torch.Tensor, num: int) -> torch.Tensor:
    """`scipy.signal.resample(signal, num, axis=-1)` for real input, in torch."""
    length = signal.shape[-1]
    kept = min(num, length)
    spectrum = torch.fft.rfft(signal, dim=-1)[..., : kept // 2 + 1]
    if kept % 2 == 0 and num != length:
        # The unpaired bin at kept // 2: scipy doubles it when downsampling (and irfft then
        # reads only its real part, as Nyquist of the output) and halves it when upsampling.
        spectrum = spectrum.clone()
        if num < length:
            spectrum[..., kept // 2] = 2.0 * spectrum[..., kept // 2].real
        else:
            spectrum[..., kept // 2] *= 0.5
    return torch.fft.irfft(spectrum * (num / length), n=num, dim=-1)


def seed_cwt(
    waveforms: torch.Tensor,
    lengths: Sequence[int] | torch.Tensor | None = None,
    *,
    num_scales: int = 64,
    num_frames: int = SEED_NUM_FRAMES,
    max_samples: int = SEED_MAX_SAMPLES,
    precision: int = SEED_PRECISION,
    max_chunk_elements: int = 1 << 25,
) -> torch.Tensor:
    """The original LLM-AAC CWT features, computed with FFT convolutions in torch.

    Per clip, as `precompute_wavelets.py` of whisperle/LLM-AAC does after its mean removal: cap at
    `max_samples`, scales `logspace(log10 4, log10(N // 2), num_scales)`,
    `pywt.cwt(x, scales, "morl")` (real Morlet, PyWavelets' discrete kernels reproduced exactly,
    as PyWavelets builds them for float32 audio), modulus, `scipy.signal.resample(..., num_frames,
    axis=1)`. Bins keep the original order: scale 4 (3.25 kHz at 16 kHz) first, then lower
    frequencies. Each clip's scales depend on its own length (that is the original's
    definition); clips of equal length share one filter bank, so a batch of 10 s clips costs one
    bank. Clips shorter than 2 samples are zero-padded to 2 (the original fails on them).

    Args:
        waveforms: `[batch, samples]` or `[samples]` float tensor (mean already removed), any device.
        lengths: real samples per clip (default: all samples); the rest is padding.
        num_scales: number of scales (64 in the original).
        num_frames: frames after resampling (1024 in the original).
        max_samples: cap on samples per clip (160000 in the original).
        precision: PyWavelets' integration grid exponent (its default 12).
        max_chunk_elements: bound on the full-rate intermediate (clips x scales x samples).

    Returns:
        float32 `[batch, num_frames, num_scales]` (or `[num_frames, num_scales]`): `out[b, t, s]`
        equals the original's `coef[s, t]` for clip b.
    """
    waveforms, squeeze = _check_waveforms(waveforms, "seed_cwt")
    batch, padded_length = waveforms.shape
    if lengths is None:
        lengths = [padded_length] * batch
    lengths = [min(int(n), max_samples, padded_length) for n in (lengths.tolist() if torch.is_tensor(lengths) else lengths)]
    if len(lengths) != batch:
        raise ValueError(f"seed_cwt got {len(lengths)} lengths for {batch} clips")
    output = waveforms.new_zeros(batch, num_scales, num_frames)
    by_length: dict[int, list[int]] = {}
    for index, length in enumerate(lengths):
        by_length.setdefault(max(length, 2), []).append(index)
    for length, indices in by_length.items():
        clips = waveforms[indices, : min(length, padded_length)]
        if clips.shape[-1] < length:
            clips = torch.nn.functional.pad(clips, (0, length - clips.shape[-1]))
        fft_size, bank = _seed_filter_bank(length, num_scales, precision, waveforms.device)
        spectrum = torch.fft.rfft(clips, n=fft_size)  # [b, M // 2 + 1]
        scales_per_chunk = max(1, max_chunk_elements // (len(indices) * fft_size))
        rows = torch.tensor(indices, device=waveforms.device)
        for start in range(0, num_scales, scales_per_chunk):
            stop = min(num_scales, start + scales_per_chunk)
            coef = torch.fft.irfft(spectrum[:, None, :] * bank[None, start:stop], n=fft_size)[..., :length]
            output[rows, start:stop] = _fft_resample(coef.abs(), num_frames)
    features = output.transpose(1, 2).contiguous()
    return features[0] if squeeze else features
