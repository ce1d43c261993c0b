"""Audio decoding with soundfile, for `datasets` columns stored as `Audio(decode=False)`.

datasets 5.x decodes `Audio` columns through torchcodec, which needs FFmpeg shared libraries and
a torchcodec build matching the installed torch. Every loader in this package therefore casts its
audio column to `Audio(decode=False)` (rows hold `{"bytes": ..., "path": ...}`) and the audio is
decoded here with libsndfile (WAV, FLAC, OGG/Vorbis, MP3 with libsndfile >= 1.1). Resampling to
16 kHz is left to `LLMAACFeatureExtractor`, which owns the one resampler of the project.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import soundfile

AUDIO_FILE_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au")


def undecoded_audio_feature():
    """The `datasets.Audio` feature used by every loader: rows stay `{"bytes", "path"}` dicts."""
    from datasets import Audio

    return Audio(decode=False)


def describe_audio_source(value: Any) -> str:
    """A short human-readable name for an audio value, used in error messages."""
    if isinstance(value, (str, os.PathLike)):
        return repr(os.fspath(value))
    if isinstance(value, Mapping):
        path = value.get("path")
        if value.get("bytes") is not None:
            where = f" (path {path!r})" if path else ""
            return f"<{len(value['bytes'])} embedded bytes{where}>"
        if path is not None:
            return repr(path)
        if "array" in value:
            return "<decoded array>"
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    return f"<{type(value).__name__}>"


def decode_audio(value: Any, *, mono: bool = True) -> tuple[np.ndarray, int]:
    """Decode one audio value into float32 samples and its sampling rate.

    Accepts a file path, raw file bytes, a `{"bytes", "path"}` dict (an `Audio(decode=False)` row;
    embedded bytes win over the path, as in datasets), or an already decoded
    `{"array", "sampling_rate"}` dict. With `mono=True` channels are averaged, giving shape
    `[samples]`; otherwise the shape is `[samples, channels]`.

    Raises `ValueError` naming the file when it is missing, not audio, corrupt or empty.
    """
    name = describe_audio_source(value)
    if isinstance(value, Mapping) and "array" in value:
        return _from_decoded_dict(value, name, mono)

    if isinstance(value, Mapping):
        data, path = value.get("bytes"), value.get("path")
        if data is not None:
            source: Any = io.BytesIO(data)
        elif path is not None:
            source = os.fspath(path)
        else:
            raise ValueError(f"Audio value {value!r} has neither 'bytes' nor 'path'.")
    elif isinstance(value, (bytes, bytearray)):
        source = io.BytesIO(value)
    elif isinstance(value, (str, os.PathLike)):
        source = os.fspath(value)
    else:
        raise TypeError(
            "Audio must be a path, bytes, a {'bytes', 'path'} dict or an {'array', 'sampling_rate'} "
            f"dict; got {type(value).__name__}."
        )

    if isinstance(source, str) and not os.path.isfile(source):
        raise ValueError(f"Audio file {name} does not exist.")
    try:
        samples, sampling_rate = soundfile.read(source, dtype="float32", always_2d=True)
    except (soundfile.SoundFileError, RuntimeError) as err:
        reason = getattr(err, "error_string", None) or str(err)
        raise ValueError(f"Could not decode audio {name}: {reason}") from err
    if samples.shape[0] == 0:
        raise ValueError(f"Audio {name} contains no samples.")
    if mono:
        samples = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    return np.ascontiguousarray(samples, dtype=np.float32), int(sampling_rate)


def _from_decoded_dict(value: Mapping, name: str, mono: bool) -> tuple[np.ndarray, int]:
    sampling_rate = value.get("sampling_rate")
    if sampling_rate is None:
        raise ValueError(f"Decoded audio {name} has no 'sampling_rate'.")
    samples = np.asarray(value["array"])
    if samples.ndim not in (1, 2):
        raise ValueError(f"Decoded audio {name} must be 1-D or 2-D, got shape {samples.shape}.")
    if samples.size == 0:
        raise ValueError(f"Audio {name} contains no samples.")
    samples = samples.astype(np.float32, copy=False)
    if samples.ndim == 2:
        # datasets returns (channels, samples); the convention here is (samples, channels).
        if samples.shape[0] < samples.shape[1]:
            samples = samples.T
        if mono:
            samples = samples.mean(axis=1)
    elif not mono:
        samples = samples[:, None]
    return np.ascontiguousarray(samples), int(sampling_rate)


def decode_audio_batch(values: Iterable[Any]) -> tuple[list[np.ndarray], list[int]]:
    """Decode several audio values to mono float32; returns (arrays, sampling_rates)."""
    arrays, rates = [], []
    for value in values:
        samples, rate = decode_audio(value)
        arrays.append(samples)
        rates.append(rate)
    return arrays, rates


def ensure_undecoded_audio(dataset, column: str = "audio"):
    """Cast `column` of a Dataset / DatasetDict to `Audio(decode=False)` (no torchcodec needed).

    A column of plain `{"bytes", "path"}` structs or of path strings is accepted too.
    """
    from datasets import Audio, Value

    features = _features_of(dataset)
    if column not in features:
        raise ValueError(f"Dataset has no audio column {column!r}; columns: {sorted(features)}.")
    feature = features[column]
    if isinstance(feature, Audio):
        if feature.decode:
            dataset = dataset.cast_column(column, Audio(decode=False))
        return dataset
    if isinstance(feature, dict) and {"bytes", "path"} >= set(feature):
        return dataset.cast_column(column, Audio(decode=False))
    if isinstance(feature, Value) and feature.dtype in ("string", "large_string"):
        # Path strings: Audio's storage cast turns them into {"bytes": None, "path": ...}.
        return dataset.cast_column(column, Audio(decode=False))
    raise ValueError(
        f"Column {column!r} has feature {feature!r}; expected datasets.Audio, a {{'bytes', 'path'}} "
        "struct or file path strings."
    )


def _features_of(dataset):
    if hasattr(dataset, "features"):
        return dataset.features
    # DatasetDict: all splits share the schema that matters here.
    first = next(iter(dataset.values()))
    return first.features
