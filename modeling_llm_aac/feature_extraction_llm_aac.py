"""Feature extractor for LLM-AAC: Kaldi fbank (EAT's input), Morlet scalogram, or the original LLM-AAC CWT.

Input conventions (see `LLMAACFeatureExtractor.__call__`):

- One clip: a 1-D numpy array, torch tensor or list of numbers, or a `{"array", "sampling_rate"}`
  dict (a decoded `datasets` audio row). A batch: a list of clips, or a 2-D array/tensor read as
  `[batch, samples]` (mono clips of equal length).
- A multichannel clip is a 2-D element *inside a list*, either `[channels, samples]` (torch
  layout) or `[samples, channels]` (soundfile layout): the shorter axis is taken as channels
  (at most 16) and the channels are averaged to mono.
- Integer PCM is scaled by its type's range (int16 / 32768, uint8 centred on 128, ...); Python
  lists are read as float samples. Float input is used as is.
- `sampling_rate` is required for raw arrays (a wrong rate silently gives wrong features);
  dicts carry their own. Audio at another rate is resampled to 16 kHz with soxr (on CPU; torch
  tensors come back to their device). At 16 kHz torch tensors stay on their device.
- Clips keep their full length; `max_length` (frames) with `truncation=True` cuts them.

Output: `input_features` `[batch, frames, bins]` float32 (time-major) and `attention_mask`
`[batch, frames]` (1 = real frame). Frames are on the 10 ms grid of the Kaldi fbank
(`num_frames(n) = 1 + (n - 400) // 160`, at least 1) for "fbank" and "cwt", and always 1024 for
"cwt_seed"; the batch is padded to a multiple of `pad_to_multiple_of` (16, EAT's patch size).
Padded frames hold `padding_value` in raw feature units before normalisation, as EAT pads its
fbank with zeros before normalising (default: 0.0 for fbank and cwt_seed, the silence level
log(1e-6) for cwt).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
from transformers.feature_extraction_utils import BatchFeature

from .kaldi_fbank import kaldi_fbank, kaldi_num_frames
from .morlet_cwt import (
    LOG_FLOOR,
    SEED_MAX_SAMPLES,
    SEED_NUM_FRAMES,
    log_spaced_center_frequencies,
    morlet_scalogram,
    seed_center_frequencies,
    seed_cwt,
)

try:  # soxr is a declared dependency; keep the module importable without it for 16 kHz input
    import soxr
except ImportError:  # pragma: no cover
    soxr = None

FEATURE_TYPES = ("fbank", "cwt", "cwt_seed")
# EAT's fbank statistics (AudioSet); EAT divides by twice the standard deviation.
EAT_FBANK_MEAN = -4.268
EAT_FBANK_STD = 4.569 * 2
# Rough log-modulus statistics of the default scalogram (64 bins, 50 Hz - 7.6 kHz, width 12):
# white and pink noise at -40 to -20 dBFS give mean -5.5, std 1.2 where EAT's fbank gives -3.5
# (AudioSet: -4.27); shifted by the same amount and, like EAT's, divided by about twice the
# standard deviation so most values land in [-1, 1]. `llm-aac precompute` replaces them with
# per-bin dataset statistics.
CWT_DEFAULT_MEAN = -6.2
CWT_DEFAULT_STD = 3.0
MAX_CHANNELS = 16


class LLMAACFeatureExtractor(SequenceFeatureExtractor):
    r"""Audio features for the EAT encoder and the LLM-AAC captioner.

    Args:
        feature_type (`str`, *optional*, defaults to `"fbank"`):
            `"fbank"`: EAT's exact input (per-clip mean removal, 128-bin Kaldi fbank, 25 ms / 10 ms).
            `"cwt"`: log-modulus complex Morlet scalogram on the same 10 ms frame grid.
            `"cwt_seed"`: the original LLM-AAC CWT (64 real-Morlet scales, 1024 frames, first 10 s),
            kept so that checkpoints pretrained on it stay usable.
        num_mel_bins (`int`, *optional*, defaults to 128): fbank bins.
        num_scales (`int`, *optional*, defaults to 64): wavelets for "cwt" and "cwt_seed".
        f_min (`float`, *optional*, defaults to 50.0): lowest "cwt" centre frequency in Hz.
        f_max (`float`, *optional*, defaults to 7600.0): highest "cwt" centre frequency in Hz.
        width (`float`, *optional*, defaults to 12.0): "cwt" cycles per wavelet (Gaussian envelope
            standard deviation = width / (2 pi f)); larger is sharper in frequency, blurrier in time.
        sampling_rate (`int`, *optional*, defaults to 16000): rate the features are computed at.
        do_normalize (`bool`, *optional*, defaults to `True`): apply `(x - feature_mean) / feature_std`.
        feature_mean, feature_std (`float` or `list[float]`, *optional*): normalisation statistics,
            one value or one per bin. Defaults: fbank EAT's (-4.268, 2 x 4.569); cwt (-6.2, 3.0);
            cwt_seed (0.0, 1.0), i.e. raw magnitudes until dataset statistics are measured.
        padding_value (`float`, *optional*): raw feature value of padded frames (see module docs).
        pad_to_multiple_of (`int`, *optional*, defaults to 16): frames are padded to a multiple of it.
        return_attention_mask (`bool`, *optional*, defaults to `True`): return the frame mask.
    """

    model_input_names = ["input_features", "attention_mask"]

    def __init__(
        self,
        feature_type: str = "fbank",
        num_mel_bins: int = 128,
        num_scales: int = 64,
        f_min: float = 50.0,
        f_max: float = 7600.0,
        width: float = 12.0,
        sampling_rate: int = 16000,
        do_normalize: bool = True,
        feature_mean: float | Sequence[float] | None = None,
        feature_std: float | Sequence[float] | None = None,
        padding_value: float | None = None,
        pad_to_multiple_of: int | None = 16,
        return_attention_mask: bool = True,
        **kwargs,
    ):
        if feature_type not in FEATURE_TYPES:
            raise ValueError(f"feature_type must be one of {FEATURE_TYPES}, got {feature_type!r}")
        if int(sampling_rate) <= 0:
            raise ValueError(f"sampling_rate must be positive, got {sampling_rate}")
        if feature_type == "cwt":
            if not 0 < float(f_min) < float(f_max) <= sampling_rate / 2:
                raise ValueError(
                    f"need 0 < f_min < f_max <= sampling_rate / 2 = {sampling_rate / 2}, got f_min={f_min}, f_max={f_max}"
                )
            if float(width) <= 0:
                raise ValueError(f"width (cycles per wavelet) must be positive, got {width}")
        if pad_to_multiple_of is not None and int(pad_to_multiple_of) < 1:
            raise ValueError(f"pad_to_multiple_of must be a positive integer or None, got {pad_to_multiple_of}")
        feature_size = num_mel_bins if feature_type == "fbank" else num_scales
        if int(feature_size) < 1:
            raise ValueError(f"the number of bins must be positive, got {feature_size}")
        default_padding = {"fbank": 0.0, "cwt": float(np.log(LOG_FLOOR)), "cwt_seed": 0.0}[feature_type]
        super().__init__(
            feature_size=int(feature_size),
            sampling_rate=int(sampling_rate),
            padding_value=default_padding if padding_value is None else float(padding_value),
            return_attention_mask=return_attention_mask,
            **kwargs,
        )
        self.feature_type = feature_type
        self.num_mel_bins = int(num_mel_bins)
        self.num_scales = int(num_scales)
        self.f_min = float(f_min)
        self.f_max = float(f_max)
        self.width = float(width)
        self.do_normalize = bool(do_normalize)
        default_mean, default_std = {
            "fbank": (EAT_FBANK_MEAN, EAT_FBANK_STD),
            "cwt": (CWT_DEFAULT_MEAN, CWT_DEFAULT_STD),
            "cwt_seed": (0.0, 1.0),
        }[feature_type]
        self.feature_mean = self._check_statistic("feature_mean", default_mean if feature_mean is None else feature_mean)
        self.feature_std = self._check_statistic("feature_std", default_std if feature_std is None else feature_std)
        if np.any(np.asarray(self.feature_std, dtype=np.float64) <= 0):
            raise ValueError(f"feature_std must be positive everywhere, got {self.feature_std}")
        self.pad_to_multiple_of = None if pad_to_multiple_of is None else int(pad_to_multiple_of)
        self.hop_length = round(0.010 * self.sampling_rate)
        self.window_length = round(0.025 * self.sampling_rate)

    # ---------------------------------------------------------------- configuration helpers

    def _check_statistic(self, name: str, value) -> float | list[float]:
        if isinstance(value, numbers.Real):
            value = float(value)
            if not np.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value}")
            return value
        array = np.asarray(value, dtype=np.float64).reshape(-1)
        if array.size != self.feature_size:
            raise ValueError(f"{name} has {array.size} values but the features have {self.feature_size} bins")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} must be finite, got {array.tolist()}")
        return array.tolist()

    @property
    def center_frequencies(self) -> list[float]:
        """Centre frequency in Hz of every bin, in bin order.

        cwt: the wavelets' centre frequencies (low -> high). cwt_seed: the real Morlet's
        centre frequency at each scale for a 10 s clip (high -> low; scales depend on the clip
        length). fbank: the mel filters' centres (low -> high).
        """
        if self.feature_type == "cwt":
            return log_spaced_center_frequencies(self.num_scales, self.f_min, self.f_max).tolist()
        if self.feature_type == "cwt_seed":
            return seed_center_frequencies(SEED_MAX_SAMPLES, self.num_scales, self.sampling_rate).tolist()
        mel_low, mel_high = 1127.0 * np.log1p(20.0 / 700.0), 1127.0 * np.log1p(self.sampling_rate / 2 / 700.0)
        centres = mel_low + (np.arange(self.num_mel_bins) + 1) * (mel_high - mel_low) / (self.num_mel_bins + 1)
        return (700.0 * np.expm1(centres / 1127.0)).tolist()

    def num_frames(self, num_samples: int) -> int:
        """Real (unpadded) frames of a clip of `num_samples` samples at `sampling_rate`."""
        if self.feature_type == "cwt_seed":
            return SEED_NUM_FRAMES
        return kaldi_num_frames(num_samples, frame_length=self.window_length, frame_shift=self.hop_length)

    def num_samples_for_frames(self, num_frames: int) -> int:
        """Fewest samples whose clip has `num_frames` frames (fbank / cwt)."""
        return self.window_length + (int(num_frames) - 1) * self.hop_length

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        for derived in ("hop_length", "window_length", "feature_size"):
            output.pop(derived, None)
        return output

    # ---------------------------------------------------------------- torch entry point

    @torch.no_grad()
    def extract(
        self,
        waveforms: torch.Tensor,
        lengths: torch.Tensor | Sequence[int] | None = None,
        *,
        do_normalize: bool | None = None,
        padding: bool | str = "longest",
        max_length: int | None = None,
        truncation: bool = False,
        pad_to_multiple_of: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Features of a zero-padded batch of mono waveforms at `sampling_rate`, on their device.

        The batch path used by `__call__` and by training code that decodes audio itself.
        Inputs are trusted (no NaN / shape checks beyond the basics; `__call__` validates).

        Args:
            waveforms: `[batch, samples]` float tensor (or `[samples]`), any device.
            lengths: real samples per clip (default: all); the mean is removed over them only.
            do_normalize: override `self.do_normalize`.
            padding: `"longest"`/`True` (to the longest clip), `"max_length"` (to `max_length`
                frames, or longer for longer clips unless truncated), `False`/`"do_not_pad"`
                (all clips must then have the same number of frames).
            max_length: frames; with `truncation=True` clips are cut to it.
            truncation: cut clips longer than `max_length` frames.
            pad_to_multiple_of: override `self.pad_to_multiple_of`.

        Returns:
            `(features [batch, frames, bins] float32, attention_mask [batch, frames] int64)`.
        """
        if waveforms.dim() == 1:
            waveforms = waveforms[None]
        if waveforms.dim() != 2:
            raise ValueError(f"extract expects [batch, samples], got shape {tuple(waveforms.shape)}")
        if not torch.is_floating_point(waveforms):
            raise TypeError(f"extract expects float waveforms, got {waveforms.dtype}")
        waveforms = waveforms.to(torch.float32)
        batch, num_samples = waveforms.shape
        device = waveforms.device
        if lengths is None:
            lengths = torch.full((batch,), num_samples, dtype=torch.long, device=device)
        lengths = torch.as_tensor(lengths, dtype=torch.long, device=device).reshape(-1)
        if lengths.numel() != batch or bool((lengths < 1).any()) or bool((lengths > num_samples).any()):
            raise ValueError(
                f"lengths must hold one value in [1, {num_samples}] per clip, got {lengths.tolist()}"
            )
        padding = "longest" if padding is True else ("do_not_pad" if padding is False else padding)
        if padding not in ("longest", "max_length", "do_not_pad"):
            raise ValueError(f"padding must be True/False, 'longest', 'max_length' or 'do_not_pad', got {padding!r}")
        if (padding == "max_length" or truncation) and max_length is None:
            raise ValueError(f"max_length (in frames) is required with padding={padding!r} / truncation={truncation}")
        if max_length is not None and int(max_length) < 1:
            raise ValueError(f"max_length must be a positive number of frames, got {max_length}")

        # The mean comes from the whole clip (EAT removes it before computing and trimming the fbank).
        real = torch.arange(num_samples, device=device)[None, :] < lengths[:, None]
        means = (waveforms * real).sum(-1, keepdim=True) / lengths[:, None]
        # Then drop samples that no kept frame reads.
        if truncation and self.feature_type != "cwt_seed":
            keep = self.num_samples_for_frames(int(max_length))
            if num_samples > keep:
                waveforms, real, num_samples = waveforms[:, :keep], real[:, :keep], keep
                lengths = lengths.clamp(max=keep)
        waveforms = (waveforms - means) * real

        if self.feature_type == "fbank":
            features = kaldi_fbank(
                waveforms, sample_rate=self.sampling_rate, num_mel_bins=self.num_mel_bins,
            )
        elif self.feature_type == "cwt":
            features = morlet_scalogram(
                waveforms,
                center_frequencies=self.center_frequencies,
                width=self.width,
                sample_rate=self.sampling_rate,
                hop_length=self.hop_length,
                window_length=self.window_length,
            )
        else:
            features = seed_cwt(waveforms, lengths, num_scales=self.num_scales)

        real_frames = torch.tensor([self.num_frames(n) for n in lengths.tolist()], device=device)
        if truncation:
            real_frames = real_frames.clamp(max=int(max_length))
        longest = int(real_frames.max())
        if padding == "do_not_pad":
            if bool((real_frames != longest).any()):
                raise ValueError(
                    f"clips have different numbers of frames {real_frames.tolist()}; use padding=True to batch them"
                )
            target = longest
        else:
            target = max(longest, int(max_length)) if padding == "max_length" else longest
            multiple = self.pad_to_multiple_of if pad_to_multiple_of is None else pad_to_multiple_of
            if multiple:
                target = -(-target // multiple) * multiple

        if features.shape[1] >= target:
            features = features[:, :target]
        else:
            features = torch.nn.functional.pad(features, (0, 0, 0, target - features.shape[1]))
        attention_mask = (torch.arange(target, device=device)[None, :] < real_frames[:, None]).long()
        features = torch.where(attention_mask[..., None].bool(), features, features.new_tensor(self.padding_value))
        if self.do_normalize if do_normalize is None else do_normalize:
            mean = torch.as_tensor(self.feature_mean, dtype=torch.float32, device=device)
            std = torch.as_tensor(self.feature_std, dtype=torch.float32, device=device)
            features = (features - mean) / std
        return features.contiguous(), attention_mask

    # ---------------------------------------------------------------- HF entry point

    def __call__(
        self,
        raw_audio,
        sampling_rate: int | None = None,
        return_tensors: str | None = None,
        padding: bool | str = True,
        max_length: int | None = None,
        truncation: bool = False,
        pad_to_multiple_of: int | None = None,
        return_attention_mask: bool | None = None,
        do_normalize: bool | None = None,
        device: str | torch.device | None = None,
        **kwargs,
    ) -> BatchFeature:
        """Featurize one clip or a batch of clips (see the module docstring for accepted inputs).

        Args:
            raw_audio: a clip or a batch of clips.
            sampling_rate: rate of `raw_audio` in Hz; required unless every clip is a dict
                carrying its own `"sampling_rate"`.
            return_tensors: `"pt"` (torch, on the compute device), `"np"` or `None` (numpy).
            padding, max_length, truncation, pad_to_multiple_of: as in `extract`; `max_length`
                counts frames (1024 frames = 10.24 s).
            return_attention_mask: override `self.return_attention_mask`.
            do_normalize: override `self.do_normalize`.
            device: where to compute (default: the device of the input tensors, else CPU).

        Returns:
            `BatchFeature` with `input_features` `[batch, frames, bins]` and `attention_mask`.
        """
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        if return_tensors not in (None, "pt", "np"):
            raise ValueError(f"return_tensors must be 'pt', 'np' or None, got {return_tensors!r}")
        clips = self._prepare_clips(raw_audio, sampling_rate)
        if device is None:
            devices = {clip.device for clip in clips}
            device = next((d for d in devices if d.type != "cpu"), torch.device("cpu"))
        device = torch.device(device)
        lengths = [clip.shape[0] for clip in clips]
        batch = torch.zeros(len(clips), max(lengths), dtype=torch.float32, device=device)
        for row, clip in enumerate(clips):
            batch[row, : clip.shape[0]] = clip.to(device)
        features, attention_mask = self.extract(
            batch,
            torch.tensor(lengths, device=device),
            do_normalize=do_normalize,
            padding=padding,
            max_length=max_length,
            truncation=truncation,
            pad_to_multiple_of=pad_to_multiple_of,
        )
        data = {"input_features": features}
        if self.return_attention_mask if return_attention_mask is None else return_attention_mask:
            data["attention_mask"] = attention_mask
        if return_tensors != "pt":
            data = {key: value.cpu().numpy() for key, value in data.items()}
        return BatchFeature(data=data, tensor_type=return_tensors)

    # ---------------------------------------------------------------- input normalisation

    def _prepare_clips(self, raw_audio, sampling_rate) -> list[torch.Tensor]:
        """Validate the input and return mono float32 clips at `self.sampling_rate`."""
        items = self._split_batch(raw_audio)
        if not items:
            raise ValueError("raw_audio is an empty batch: pass at least one clip")
        clips = []
        for index, item in enumerate(items):
            rate = sampling_rate
            if isinstance(item, Mapping):
                if "array" not in item:
                    raise ValueError(f"clip {index}: a dict clip needs an 'array' key, got keys {sorted(item)}")
                own_rate = item.get("sampling_rate")
                if own_rate is not None and rate is not None and int(own_rate) != int(rate):
                    raise ValueError(
                        f"clip {index}: its dict says sampling_rate={own_rate} but sampling_rate={rate} was passed"
                    )
                rate = own_rate if own_rate is not None else rate
                item = item["array"]
            if rate is None:
                raise ValueError(
                    "sampling_rate is required: pass the rate of your audio, e.g. "
                    f"sampling_rate={self.sampling_rate} if it is already at {self.sampling_rate} Hz "
                    "(a wrong rate silently produces wrong features)"
                )
            if int(rate) <= 0:
                raise ValueError(f"clip {index}: sampling_rate must be positive, got {rate}")
            clip = self._to_mono_tensor(item, index)
            clips.append(self._resample(clip, int(rate)))
        return clips

    @staticmethod
    def _split_batch(raw_audio) -> list:
        if isinstance(raw_audio, Mapping):
            return [raw_audio]
        if isinstance(raw_audio, (np.ndarray, torch.Tensor)):
            if raw_audio.ndim == 0:
                raise ValueError("raw_audio is a scalar; expected samples")
            if raw_audio.ndim == 1:
                return [raw_audio]
            if raw_audio.ndim == 2:
                batch, samples = raw_audio.shape
                if samples <= 2 < batch:
                    raise ValueError(
                        f"a 2-D array is read as [batch, samples]; shape {tuple(raw_audio.shape)} would be {batch} "
                        f"clips of {samples} samples. For one multichannel clip pass it inside a list: [audio]"
                    )
                return list(raw_audio)
            raise ValueError(
                f"raw_audio has {raw_audio.ndim} dims (shape {tuple(raw_audio.shape)}); expected [samples] or "
                "[batch, samples] (multichannel clips go inside a list)"
            )
        if isinstance(raw_audio, (list, tuple)):
            if raw_audio and all(isinstance(x, numbers.Number) and not isinstance(x, bool) for x in raw_audio):
                return [raw_audio]  # one clip given as a list of samples
            return list(raw_audio)
        raise TypeError(
            f"raw_audio must be a numpy array, torch tensor, list or {{'array', 'sampling_rate'}} dict, "
            f"got {type(raw_audio).__name__}"
        )

    @staticmethod
    def _to_mono_tensor(item, index: int) -> torch.Tensor:
        if isinstance(item, (list, tuple)):
            if not all(isinstance(x, numbers.Number) and not isinstance(x, (bool, complex)) for x in item):
                if any(isinstance(x, (list, tuple, np.ndarray, torch.Tensor)) for x in item):
                    item = np.asarray(item, dtype=np.float32)  # nested lists: a multichannel clip
                else:
                    bad = next(x for x in item if not isinstance(x, numbers.Number) or isinstance(x, (bool, complex)))
                    raise TypeError(f"clip {index}: samples must be real numbers, found {bad!r}")
            else:
                item = np.asarray(item, dtype=np.float32)
        if isinstance(item, np.ndarray):
            if item.dtype == np.bool_ or item.dtype.kind not in "iuf":
                raise TypeError(f"clip {index}: unsupported sample dtype {item.dtype} (need float or integer PCM)")
            if item.dtype.kind in "iu":
                item = _scale_pcm(item)
            tensor = torch.from_numpy(np.ascontiguousarray(item, dtype=np.float32))
        elif isinstance(item, torch.Tensor):
            if item.dtype == torch.bool or item.is_complex():
                raise TypeError(f"clip {index}: unsupported sample dtype {item.dtype} (need float or integer PCM)")
            if not item.is_floating_point():
                item = torch.from_numpy(_scale_pcm(item.cpu().numpy())).to(item.device)
            tensor = item.detach().to(torch.float32)
        else:
            raise TypeError(f"clip {index}: expected an array, tensor or list of samples, got {type(item).__name__}")
        return checked_mono_samples(tensor, f"clip {index}", mix_channels=True)

    def _resample(self, clip: torch.Tensor, rate: int) -> torch.Tensor:
        if rate == self.sampling_rate:
            return clip
        if soxr is None:  # pragma: no cover
            raise ImportError(f"resampling {rate} Hz audio to {self.sampling_rate} Hz needs `pip install soxr`")
        resampled = soxr.resample(clip.cpu().numpy(), rate, self.sampling_rate, quality="HQ")
        if resampled.size == 0:
            resampled = np.zeros(1, dtype=np.float32)  # a few samples can round down to none
        return torch.from_numpy(np.ascontiguousarray(resampled, dtype=np.float32)).to(clip.device)


def feature_device(model_device: str | torch.device | None) -> torch.device | None:
    """Where to featurize clips for a model on `model_device`: on its GPU when it has one (the features the recipes
    train on are computed there too, and a CPU core spends ~40 ms on the CWT of a 30 s clip), else None (the CPU)."""
    if model_device is None:
        return None
    device = torch.device(model_device)
    return device if device.type == "cuda" else None


def mono_float32_samples(samples: Any, name: str, *, mix_channels: bool = False) -> np.ndarray:
    """One clip as contiguous float32 mono samples, or a `TypeError` / `ValueError` that starts with `name`.

    `samples` is a numpy array, a torch tensor or a list of real numbers. Integer PCM is scaled to [-1, 1)
    (unsigned centred on its midpoint). With `mix_channels`, a 2-D clip of at most `MAX_CHANNELS` channels
    (`[channels, samples]` as `datasets` gives, or `[samples, channels]` as soundfile does) is averaged to mono;
    otherwise the clip must already be 1-D. Non-numeric or complex samples, other shapes, empty clips and NaN /
    Inf samples are refused.
    """
    if isinstance(samples, torch.Tensor):
        samples = samples.detach().cpu().numpy()
    try:
        array = np.asarray(samples)
    except (TypeError, ValueError) as error:  # ragged nested lists
        raise TypeError(f"{name} is not a numeric array: {error}") from None
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise TypeError(f"{name} has non-numeric dtype {array.dtype}")
    if np.iscomplexobj(array):
        raise TypeError(f"{name} is complex ({array.dtype}); pass real samples")
    if array.size == 0:
        raise ValueError(f"{name} is empty (0 samples), shape {array.shape}")
    if np.issubdtype(array.dtype, np.integer):
        array = _scale_pcm(array)  # before any channel mix, which would turn the PCM into unscaled floats
    array = np.ascontiguousarray(array, dtype=np.float32)
    return checked_mono_samples(torch.from_numpy(array), name, mix_channels=mix_channels).numpy()


def checked_mono_samples(samples: torch.Tensor, name: str, *, mix_channels: bool) -> torch.Tensor:
    """The checks every clip gets, on float32 samples on any device: not empty, one channel (with `mix_channels`, a
    2-D clip of at most `MAX_CHANNELS` channels, `[channels, samples]` or `[samples, channels]`, is averaged),
    finite. Returns the 1-D clip; errors start with `name`."""
    if samples.numel() == 0:
        raise ValueError(f"{name} is empty (0 samples), shape {tuple(samples.shape)}")
    if mix_channels and samples.dim() == 2 and min(samples.shape) <= MAX_CHANNELS:
        samples = samples.mean(dim=0 if samples.shape[0] <= samples.shape[1] else 1)
    if samples.dim() != 1:
        expected = f"mono samples [samples] or at most {MAX_CHANNELS} channels" if mix_channels else "1-D mono samples"
        raise ValueError(
            f"{name} must be {expected}, got an array of shape {tuple(samples.shape)}; mix multi-channel audio down "
            "to mono first and pass several clips as a list"
        )
    finite = torch.isfinite(samples)
    if not bool(finite.all()):
        bad = (~finite).nonzero().flatten()
        raise ValueError(
            f"{name} has {bad.numel()} NaN/Inf samples (first at index {int(bad[0])}: {float(samples[bad[0]])})"
        )
    return samples.contiguous()


def _scale_pcm(samples: np.ndarray) -> np.ndarray:
    """Integer PCM to float in [-1, 1): signed by 2**(bits - 1), unsigned centred on its midpoint."""
    info = np.iinfo(samples.dtype)
    if info.min == 0:
        midpoint = (int(info.max) + 1) // 2
        return ((samples.astype(np.float64) - midpoint) / midpoint).astype(np.float32)
    return (samples.astype(np.float64) / -float(info.min)).astype(np.float32)


__all__ = ["LLMAACFeatureExtractor", "feature_device", "mono_float32_samples"]
