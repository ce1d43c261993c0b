#!/usr/bin/env python
"""Feature extraction speed: clips/s for 10 s clips, ours against the original LLM-AAC CWT.

Times, in one process, on synthetic 10 s clips at 16 kHz:

- ours: `cwt` (band-limited complex Morlet scalogram, 64 scales), `cwt_seed` (FFT reproduction of
  the original CWT, 64 scales, 1024 frames) and `fbank` (EAT's Kaldi fbank, 128 bins), batched
  torch on CPU and, when present, on CUDA (batch >= 256, audio already on the GPU);
- baselines on CPU (PyWavelets + SciPy, one clip at a time as the original does): the original
  LLM-AAC algorithm with PyWavelets' default method (`conv`, ~134 s per clip on one core) and with
  `method="fft"`, and `pywt.cwt` with the same complex Morlet as our `cwt` (`method="fft"`).

The default-method original is quadratic in the clip length; `--quick` (or
`--original-conv-seconds S`) times it on one S-second clip and scales the time by (10 / S)^2,
labelled "extrapolated". The speed-ups printed are ratios of per-clip times measured here.

Imports only torch, numpy, PyWavelets (and SciPy when installed, for the original's resample;
otherwise the same FFT resample in numpy); our two feature modules are loaded by file path so
transformers is not needed. Example:

    python benchmarks/bench_features.py --quick                  # CPU, ~1 minute
    python benchmarks/bench_features.py --device cuda --gpu-batch 256 --json bench.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

SR = 16000
CLIP_SECONDS = 10.0
NUM_SCALES = 64
REPO = Path(__file__).resolve().parents[1]


def _load(name: str):
    """Load one of our flat feature modules by path (no package import, no transformers)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "modeling_llm_aac" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


morlet = _load("morlet_cwt")
kaldi = _load("kaldi_fbank")


def synthetic_clips(count: int, seconds: float = CLIP_SECONDS, seed: int = 0) -> np.ndarray:
    """Noise, a chirp and clicks: broadband content at every scale, mean removed, float32."""
    rng = np.random.default_rng(seed)
    length = int(seconds * SR)
    time_axis = np.arange(length) / SR
    clips = 0.05 * rng.standard_normal((count, length))
    clips += 0.2 * np.sin(2 * np.pi * (100 + 300 * time_axis) * time_axis)[None]
    clips[:, :: SR // 4] += 0.5
    clips -= clips.mean(axis=1, keepdims=True)
    return clips.astype(np.float32)


# ------------------------------------------------------------------------------ baselines


def _numpy_resample(x: np.ndarray, num: int) -> np.ndarray:
    """scipy.signal.resample(x, num, axis=-1) for real input, for machines without SciPy."""
    length = x.shape[-1]
    kept = min(num, length)
    spectrum = np.fft.rfft(x, axis=-1)[..., : kept // 2 + 1]
    if kept % 2 == 0 and num != length:
        spectrum[..., kept // 2] *= 2.0 if num < length else 0.5
    return np.fft.irfft(spectrum * (num / length), n=num, axis=-1)


def original_llm_aac_cwt(waveform: np.ndarray, method: str) -> np.ndarray:
    """REFERENCE section 3: pywt.cwt(x, logspace(log10 4, log10(N//2), 64), 'morl'), |.|, resample to 1024."""
    import pywt

    waveform = waveform[:160000]
    scales = np.logspace(np.log10(4), np.log10(len(waveform) // 2), num=NUM_SCALES)
    coef = np.abs(pywt.cwt(waveform, scales, "morl", 1.0 / SR, method=method)[0])
    try:
        from scipy import signal
    except ImportError:
        return _numpy_resample(coef, 1024)
    return signal.resample(coef, 1024, axis=1)


def pywt_cmor_like_ours(waveform: np.ndarray) -> np.ndarray:
    import pywt

    freqs = morlet.log_spaced_center_frequencies(NUM_SCALES, 50.0, 7600.0)
    scales = morlet.pywt_scales(freqs, 12.0, SR)
    return np.abs(pywt.cwt(waveform, scales, morlet.pywt_cmor_name(12.0), 1.0 / SR, method="fft")[0])


def time_per_clip(function, clips: np.ndarray) -> float:
    start = time.perf_counter()
    for clip in clips:
        function(clip)
    return (time.perf_counter() - start) / len(clips)


# ------------------------------------------------------------------------------ ours


def feature_functions(gpu_chunk_elements: int):
    freqs = tuple(morlet.log_spaced_center_frequencies(NUM_SCALES, 50.0, 7600.0))
    return {
        "cwt": lambda x: morlet.morlet_scalogram(
            x, center_frequencies=freqs, width=12.0, max_batch_elements=gpu_chunk_elements if x.is_cuda else 1 << 27
        ),
        "cwt_seed": lambda x: morlet.seed_cwt(x, num_scales=NUM_SCALES),
        "fbank": lambda x: kaldi.kaldi_fbank(x),
    }


def time_ours(function, batch: torch.Tensor, repeats: int) -> float:
    """Seconds per clip of `function(batch)` after one warm-up call (filter banks are cached)."""
    function(batch)
    if batch.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        function(batch)
    if batch.is_cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / (repeats * batch.shape[0])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all", help="where to time ours (all: CPU and CUDA if present)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (the CPU target is for 2 cores)")
    parser.add_argument("--cpu-batch", type=int, default=4, help="clips per batch on CPU")
    parser.add_argument("--cpu-repeats", type=int, default=2)
    parser.add_argument("--gpu-batch", type=int, default=256, help="clips per batch on CUDA (target: >= 256)")
    parser.add_argument("--gpu-repeats", type=int, default=5)
    parser.add_argument("--gpu-chunk-elements", type=int, default=1 << 28, help="cwt chunk bound on GPU (complex values)")
    parser.add_argument("--quick", action="store_true", help="time the default-method original on a 1 s clip (extrapolated)")
    parser.add_argument("--original-conv-seconds", type=float, default=None, help="clip length for the default-method original (default 10, or 1 with --quick)")
    parser.add_argument("--original-fft-clips", type=int, default=None, help="clips for the method='fft' original (default 2, 1 with --quick)")
    parser.add_argument("--skip-original-conv", action="store_true", help="do not time the default-method original at all")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "threads": args.threads,
        "clip_seconds": CLIP_SECONDS,
        "rows": [],
    }
    print(f"torch {torch.__version__}, {args.threads} CPU threads, 10 s clips at 16 kHz, {NUM_SCALES} scales")

    # --- baselines (CPU, one clip at a time, single-threaded numpy as the original ran)
    baselines = {}
    fft_clips = args.original_fft_clips or (1 if args.quick else 2)
    seconds = baselines["original fft"] = time_per_clip(lambda c: original_llm_aac_cwt(c, "fft"), synthetic_clips(fft_clips))
    print(f"original LLM-AAC CWT, method='fft': {seconds:.2f} s/clip ({fft_clips} clip(s))")
    if not args.skip_original_conv:
        conv_seconds = args.original_conv_seconds or (1.0 if args.quick else CLIP_SECONDS)
        measured = time_per_clip(lambda c: original_llm_aac_cwt(c, "conv"), synthetic_clips(1, conv_seconds))
        scale = (CLIP_SECONDS / conv_seconds) ** 2
        baselines["original conv"] = measured * scale
        note = "" if scale == 1 else f" (extrapolated x{scale:g} from {measured:.2f} s on a {conv_seconds:g} s clip)"
        print(f"original LLM-AAC CWT, default method: {baselines['original conv']:.1f} s/clip{note}")
        results["original_conv_note"] = note.strip() or "measured on one 10 s clip"
    baselines["pywt cmor fft"] = time_per_clip(pywt_cmor_like_ours, synthetic_clips(1))
    print(f"pywt.cwt with our cmor wavelet, method='fft': {baselines['pywt cmor fft']:.2f} s/clip")
    results["baselines_s_per_clip"] = baselines

    # --- ours
    devices = []
    if args.device in ("cpu", "all"):
        devices.append(("cpu", args.cpu_batch, args.cpu_repeats))
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append(("cuda", args.gpu_batch, args.gpu_repeats))
        results["gpu"] = torch.cuda.get_device_name()
    elif args.device == "cuda":
        print("CUDA requested but not available")
        return 1
    functions = feature_functions(args.gpu_chunk_elements)
    print()
    header = f"{'feature':9} {'device':6} {'batch':>5} {'s/clip':>10} {'clips/s':>10}  " + "  ".join(
        f"{'vs ' + name:>18}" for name in baselines
    )
    print(header)
    for device, batch_size, repeats in devices:
        batch = torch.from_numpy(synthetic_clips(batch_size, seed=1)).to(device)
        for name, function in functions.items():
            seconds = time_ours(function, batch, repeats)
            ratios = {base: base_seconds / seconds for base, base_seconds in baselines.items()}
            results["rows"].append(
                {"feature": name, "device": device, "batch": batch_size, "s_per_clip": seconds, "clips_per_s": 1 / seconds, "speedup": ratios}
            )
            print(
                f"{name:9} {device:6} {batch_size:5d} {seconds:10.5f} {1 / seconds:10.1f}  "
                + "  ".join(f"{ratio:17.1f}x" for ratio in ratios.values())
            )
        del batch
        if device == "cuda":
            torch.cuda.empty_cache()

    # --- targets (issue 2, section 5)
    def row(feature, device):
        return next((r for r in results["rows"] if r["feature"] == feature and r["device"] == device), None)

    print()
    checks = []
    cpu_cwt, cpu_seed, gpu_cwt = row("cwt", "cpu"), row("cwt_seed", "cpu"), row("cwt", "cuda")
    if cpu_cwt:
        checks.append((f"CPU cwt <= 0.1 s per 10 s clip on {args.threads} threads", cpu_cwt["s_per_clip"] <= 0.1, f"{cpu_cwt['s_per_clip']:.3f} s"))
    if cpu_seed and "original conv" in baselines:
        ratio = cpu_seed["speedup"]["original conv"]
        checks.append(("CPU cwt_seed >= 20x the original (default method)", ratio >= 20, f"{ratio:.0f}x"))
    if cpu_seed:
        ratio = cpu_seed["speedup"]["original fft"]
        checks.append(("CPU cwt_seed vs the original with method='fft' (info)", None, f"{ratio:.1f}x"))
    if gpu_cwt:
        checks.append((f"GPU cwt >= 10,000 clips/s at batch {gpu_cwt['batch']}", gpu_cwt["clips_per_s"] >= 10000, f"{gpu_cwt['clips_per_s']:.0f} clips/s"))
    for label, passed, value in checks:
        verdict = "info" if passed is None else ("PASS" if passed else "FAIL")
        print(f"[{verdict}] {label}: {value}")
    results["checks"] = [{"target": label, "passed": passed, "value": value} for label, passed, value in checks]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
