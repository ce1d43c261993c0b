"""CLAP (HTS-AT) audio preprocessing in torch, on the scorer's device: the numbers of transformers'
`ClapFeatureExtractor` for the 10 s windows that `TransformersClapScorer` feeds it.

`ClapFeatureExtractor` computes its log-mel spectrogram in numpy, one STFT frame at a time, and the
scorer resamples with soxr before it: on a GPU run both dominate CLAP rescoring. This module does the
same work in batched torch on any device:

* resampling to the extractor's rate (48 kHz) with `sinc_resample`, designed to match soxr HQ;
* padding of a window shorter than `max_length_s` as the extractor does: `repeatpad` tiles the window
  floor(max / length) times and zero-pads the rest, `repeat` tiles it past the end and cuts,
  `pad` zero-pads;
* the log-mel spectrogram: periodic Hann window of `fft_window_size` samples, frames every
  `hop_length` samples centred on their time (reflect padding of half a window at both ends), power
  spectrum |X|^2, triangular mel filters, floor at 1e-10 then 10 log10 (dB, reference 1, no top-dB
  clipping: the extractor never applies its `top_db`);
* the mel filters depend on the model, as in the extractor: non-fusion models (`rand_trunc`) use the
  Slaney mel scale with Slaney area normalisation (librosa's defaults), fusion models use the HTK mel
  scale without normalisation (torchaudio's defaults), both between `frequency_min` and
  `frequency_max` over FFT bins spaced linearly from 0 to sampling_rate // 2 Hz;
* output `[windows, 1, frames, mel bins]` for non-fusion models and four identical copies
  `[windows, 4, frames, mel bins]` for fusion models, which is what the extractor gives for input of
  at most one window. Longer input is the scorer's business (evenly spaced 10 s windows whose
  embeddings are averaged), so the extractor's random crops (`rand_trunc`) and random fusion chunks
  never happen, and this module refuses input longer than one window instead of cropping it.

Everything is computed in float64 (the extractor uses float64 numpy; on a GPU this also keeps TF32
matmul settings away from the features) and returned as float32, like the extractor.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers.audio_utils import mel_filter_bank

from .sinc_resample import sinc_resample_clips

PADDING_MODES = ("repeatpad", "repeat", "pad")
# Power floor before the dB conversion (transformers' spectrogram `mel_floor` / `min_value`): -100 dB.
POWER_FLOOR = 1e-10
FUSION_CHANNELS = 4


@functools.lru_cache(maxsize=8)
def clap_mel_filter_bank(
    num_frequency_bins: int,
    num_mel_filters: int,
    min_frequency: float,
    max_frequency: float,
    sampling_rate: int,
    *,
    slaney: bool,
) -> torch.Tensor:
    """Triangular mel filters `[num_frequency_bins, num_mel_filters]` float64 (CPU, cached).

    Args:
        num_frequency_bins: one-sided FFT bins (fft_size // 2 + 1), spaced linearly from 0 to
            sampling_rate // 2 Hz.
        num_mel_filters: number of filters; their edges are num_mel_filters + 2 points evenly spaced on
            the mel scale between `min_frequency` and `max_frequency`.
        min_frequency / max_frequency: band covered by the filters, in Hz.
        sampling_rate: the audio rate in Hz.
        slaney: Slaney mel scale and area normalisation (each filter scaled by 2 / its width in Hz),
            as `ClapFeatureExtractor.mel_filters_slaney`; otherwise HTK mel scale, peak 1 filters, as
            `ClapFeatureExtractor.mel_filters`.
    """
    if min_frequency > max_frequency:
        raise ValueError(f"frequency_min ({min_frequency}) must not exceed frequency_max ({max_frequency}).")
    # The very function `ClapFeatureExtractor` builds its `mel_filters` / `mel_filters_slaney` with.
    filters = mel_filter_bank(
        num_frequency_bins=num_frequency_bins,
        num_mel_filters=num_mel_filters,
        min_frequency=min_frequency,
        max_frequency=max_frequency,
        sampling_rate=sampling_rate,
        norm="slaney" if slaney else None,
        mel_scale="slaney" if slaney else "htk",
    )
    return torch.from_numpy(np.ascontiguousarray(filters, dtype=np.float64))


@functools.lru_cache(maxsize=8)
def _filters_on(key: tuple, device: torch.device) -> torch.Tensor:
    *args, slaney = key
    return clap_mel_filter_bank(*args, slaney=slaney).to(device)


@functools.lru_cache(maxsize=8)
def _hann_on(length: int, device: torch.device) -> torch.Tensor:
    return torch.hann_window(length, periodic=True, dtype=torch.float64, device=device)


class ClapTorchPreprocessor:
    """Torch twin of a `ClapFeatureExtractor` (see the module docstring), for windows of at most
    `max_length_s` seconds; build it with `from_feature_extractor`.

    Args:
        fusion: whether the CLAP model uses feature fusion (`audio_config.enable_fusion`): picks the mel
            filters and the number of channels, as the scorer's `truncation` choice does.
        sampling_rate: the model's audio rate in Hz (48 kHz for LAION CLAP).
        feature_size: number of mel bins (64).
        fft_window_size: STFT window and FFT length in samples (1024).
        hop_length: STFT hop in samples (480: 100 frames per second at 48 kHz).
        max_length_s: window length in seconds (10); shorter windows are padded to it.
        frequency_min / frequency_max: band of the mel filters in Hz (50 - 14,000 for LAION CLAP).
        padding: `repeatpad`, `repeat` or `pad` (see the module docstring).
    """

    def __init__(
        self,
        *,
        fusion: bool,
        sampling_rate: int = 48_000,
        feature_size: int = 64,
        fft_window_size: int = 1024,
        hop_length: int = 480,
        max_length_s: float = 10,
        frequency_min: float = 50,
        frequency_max: float = 14_000,
        padding: str = "repeatpad",
    ):
        if padding not in PADDING_MODES:
            raise ValueError(f"padding must be one of {PADDING_MODES}, got {padding!r}.")
        for name, value in (("sampling_rate", sampling_rate), ("feature_size", feature_size), ("fft_window_size", fft_window_size), ("hop_length", hop_length)):
            if isinstance(value, bool) or int(value) != value or value <= 0:
                raise ValueError(f"{name} must be a positive whole number, got {value!r}.")
        self.fusion = bool(fusion)
        self.sampling_rate = int(sampling_rate)
        self.feature_size = int(feature_size)
        self.fft_window_size = int(fft_window_size)
        self.hop_length = int(hop_length)
        self.max_length_s = max_length_s
        self.window_samples = int(round(max_length_s * self.sampling_rate))
        if self.window_samples <= self.fft_window_size // 2:
            raise ValueError(
                f"max_length_s={max_length_s} gives windows of {self.window_samples} samples, too short for "
                f"reflect padding of half an FFT window ({self.fft_window_size // 2} samples)."
            )
        self.frequency_min = float(frequency_min)
        self.frequency_max = float(frequency_max)
        self.padding = padding
        self.mel_filters()  # build (and validate) the filters once, on the CPU

    @classmethod
    def from_feature_extractor(cls, feature_extractor: Any, *, fusion: bool) -> "ClapTorchPreprocessor":
        """The twin of a transformers `ClapFeatureExtractor` (its rate, mel geometry, band and padding)."""
        missing = [
            name
            for name in ("sampling_rate", "feature_size", "fft_window_size", "hop_length", "nb_max_samples", "frequency_min", "frequency_max", "padding")
            if not hasattr(feature_extractor, name)
        ]
        if missing:
            raise TypeError(
                f"{type(feature_extractor).__name__} is not a ClapFeatureExtractor (it has no {', '.join(missing)})."
            )
        sampling_rate = int(feature_extractor.sampling_rate)
        return cls(
            fusion=fusion,
            sampling_rate=sampling_rate,
            feature_size=int(feature_extractor.feature_size),
            fft_window_size=int(feature_extractor.fft_window_size),
            hop_length=int(feature_extractor.hop_length),
            max_length_s=int(feature_extractor.nb_max_samples) / sampling_rate,
            frequency_min=feature_extractor.frequency_min,
            frequency_max=feature_extractor.frequency_max,
            padding=feature_extractor.padding,
        )

    @property
    def _filter_key(self) -> tuple:
        return (self.fft_window_size // 2 + 1, self.feature_size, self.frequency_min, self.frequency_max, self.sampling_rate, not self.fusion)

    @property
    def num_frames(self) -> int:
        """Frames per window: 1 + window_samples // hop_length (1,001 for 10 s at 48 kHz)."""
        return 1 + self.window_samples // self.hop_length

    def mel_filters(self, device: torch.device | str | None = None) -> torch.Tensor:
        """The mel filters `[fft_window_size // 2 + 1, feature_size]` float64 this model's features use."""
        return _filters_on(self._filter_key, torch.device(device) if device is not None else torch.device("cpu"))

    def resample(self, clips: Sequence[torch.Tensor], sampling_rate: int) -> list[torch.Tensor]:
        """1-D clips at `sampling_rate` -> float64 clips at the model's rate, on the clips' device."""
        return sinc_resample_clips(list(clips), int(sampling_rate), self.sampling_rate)

    def pad(self, window: torch.Tensor) -> torch.Tensor:
        """One window of at most `window_samples` samples padded to exactly `window_samples`."""
        length = window.shape[-1]
        if window.dim() != 1 or length == 0:
            raise ValueError(f"A window must be a non-empty 1-D tensor, got shape {tuple(window.shape)}.")
        if length > self.window_samples:
            raise ValueError(
                f"A window of {length} samples is longer than max_length_s={self.max_length_s} s "
                f"({self.window_samples} samples); split long clips into windows first (the CLAP scorer does)."
            )
        if length == self.window_samples:
            return window
        if self.padding == "repeatpad":
            window = window.repeat(self.window_samples // length)
        elif self.padding == "repeat":
            window = window.repeat(self.window_samples // length + 1)[: self.window_samples]
        return torch.nn.functional.pad(window, (0, self.window_samples - window.shape[-1]))

    def log_mel(self, waveforms: torch.Tensor) -> torch.Tensor:
        """dB mel spectrogram `[batch, num_frames, feature_size]` float64 of padded `[batch, window_samples]` waveforms."""
        if waveforms.dim() != 2 or waveforms.shape[-1] != self.window_samples:
            raise ValueError(
                f"log_mel expects padded windows [batch, {self.window_samples}], got shape {tuple(waveforms.shape)}."
            )
        waveforms = waveforms.to(torch.float64)
        spectrum = torch.stft(
            waveforms,
            n_fft=self.fft_window_size,
            hop_length=self.hop_length,
            win_length=self.fft_window_size,
            window=_hann_on(self.fft_window_size, waveforms.device),
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )  # [batch, bins, frames]
        power = spectrum.real.square() + spectrum.imag.square()
        mel = torch.matmul(power.transpose(1, 2), self.mel_filters(waveforms.device))
        return 10.0 * torch.log10(mel.clamp(min=POWER_FLOOR))

    def __call__(self, windows: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """`input_features` for `ClapModel.get_audio_features`: `[windows, 1 or 4, num_frames, feature_size]`
        float32 from 1-D windows at the model's rate (each at most `window_samples` long)."""
        if isinstance(windows, torch.Tensor):
            windows = list(windows) if windows.dim() == 2 else [windows]
        if len(windows) == 0:
            raise ValueError("Got no windows to featurise.")
        padded = torch.stack([self.pad(window) for window in windows])
        features = self.log_mel(padded).to(torch.float32)[:, None]
        if self.fusion:
            features = features.expand(-1, FUSION_CHANNELS, -1, -1).contiguous()
        return features


__all__ = ["ClapTorchPreprocessor", "PADDING_MODES", "clap_mel_filter_bank"]
