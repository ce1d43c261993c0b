"""Shared references for the feature tests: torchaudio's Kaldi fbank and the original LLM-AAC CWT.

Importing this module first also keeps a broken torchaudio from breaking transformers: with a CPU
torch, torchaudio 2.11's compiled extension fails to load (it links CUDA libraries), and
transformers' audio utilities import torchaudio whenever the package is installed. Marking it
absent (`sys.modules["torchaudio"] = None`) makes transformers treat it as not installed.
"""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import importlib.util
import sys
import types

import numpy as np

try:
    import torchaudio  # noqa: F401
except Exception:  # OSError from the CUDA-linked extension, or ImportError
    sys.modules["torchaudio"] = None


def load_reference_kaldi():
    """torchaudio's `compliance/kaldi.py`, loaded as a plain file.

    `import torchaudio` fails with the CPU torch used here, but `kaldi.fbank` is pure torch: the
    module only needs `torchaudio.functional.create_dct` for MFCCs. A stub `torchaudio` module is
    placed in `sys.modules` while the file executes, then the previous entry is restored.
    Returns None when torchaudio is not installed.
    """
    try:
        distribution = importlib.metadata.distribution("torchaudio")
    except importlib.metadata.PackageNotFoundError:
        return None
    path = distribution.locate_file("torchaudio/compliance/kaldi.py")
    stub = types.ModuleType("torchaudio")
    stub.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
    previous = sys.modules.get("torchaudio")
    sys.modules["torchaudio"] = stub
    try:
        spec = importlib.util.spec_from_file_location("reference_torchaudio_kaldi", str(path))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.modules["torchaudio"] = previous
    return module


def reference_eat_fbank(kaldi, waveform):
    """EAT's call, one clip (`waveform` 1-D torch tensor, mean already removed)."""
    return kaldi.fbank(
        waveform[None],
        htk_compat=True,
        sample_frequency=16000,
        use_energy=False,
        window_type="hanning",
        num_mel_bins=128,
        dither=0.0,
        frame_shift=10,
    )


def original_llm_aac_cwt(waveform: np.ndarray, method: str = "conv") -> np.ndarray:
    """The original LLM-AAC `compute_cwt` (REFERENCE section 3), written out with PyWavelets + SciPy.

    `waveform`: float32 mono 16 kHz samples, mean already removed. Returns `coef` `[64, 1024]`.
    """
    import pywt
    from scipy import signal

    waveform = waveform[:160000]
    scales = np.logspace(np.log10(4), np.log10(len(waveform) // 2), num=64)
    coef, _ = pywt.cwt(waveform, scales, "morl", 1.0 / 16000, method=method)
    coef = np.abs(coef)
    if coef.shape[1] != 1024:
        coef = signal.resample(coef, 1024, axis=1)
    return coef


def relative_l2(actual, expected) -> float:
    actual, expected = np.asarray(actual), np.asarray(expected)
    dtype = np.complex128 if np.iscomplexobj(actual) or np.iscomplexobj(expected) else np.float64
    actual, expected = actual.astype(dtype), expected.astype(dtype)
    return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))


FBANK_FIXTURE = __import__("pathlib").Path(__file__).parent / "data" / "eat_fbank_reference.npz"


def write_fbank_fixture(path=FBANK_FIXTURE) -> None:
    """Regenerate the committed fbank fixture with torchaudio's kaldi.py (needs torchaudio installed).

    `cd tests/modeling_llm_aac && python -c "import feature_test_utils as u; u.write_fbank_fixture()"`
    Stores three clips (one window, an odd length, 1 s; decaying tone + noise + DC offset) and EAT's
    fbank of each after mean removal, so the parity test runs where torchaudio is not installed.
    """
    import torch

    kaldi = load_reference_kaldi()
    if kaldi is None:
        raise RuntimeError("writing the fixture needs torchaudio installed")
    rng = np.random.default_rng(20261126)
    arrays = {}
    for index, num_samples in enumerate([400, 4321, 16000]):
        time = np.arange(num_samples) / 16000
        clip = 0.05 * rng.standard_normal(num_samples) + 0.3 * np.sin(2 * np.pi * 440 * time) * np.exp(-3 * time) + 0.1
        clip = clip.astype(np.float32)
        centred = torch.from_numpy(clip) - torch.from_numpy(clip).mean()
        arrays[f"waveform_{index}"] = clip
        arrays[f"fbank_{index}"] = reference_eat_fbank(kaldi, centred).numpy()
    np.savez_compressed(path, **arrays)


def load_fbank_fixture() -> list[tuple[np.ndarray, np.ndarray]]:
    """`(waveform, EAT fbank of the mean-removed waveform)` pairs from the committed fixture."""
    with np.load(FBANK_FIXTURE) as data:
        count = len([key for key in data.files if key.startswith("waveform_")])
        return [(data[f"waveform_{i}"], data[f"fbank_{i}"]) for i in range(count)]
