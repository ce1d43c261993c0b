#!/usr/bin/env python
"""Where the GPU time of the `cwt` feature goes, and what the alternatives for each stage cost.

On one CUDA device, for a batch of 10 s clips at 16 kHz and 64 scales (as `bench_features.py`):

1. clips/s of `morlet_scalogram` (current route, and its exact no-matmul pooling fallback) against
   the previous route (`tests/modeling_llm_aac/reference_band_limited_cwt.py`) timed in the same
   run, with the relative L2 distance of their pooled outputs on noise and on tones;
2. a stage-by-stage breakdown of the current route (rFFT, spectrum extension, filter products,
   inverse FFTs, modulus, pooling), synchronised after each stage, plus the kernel count;
3. the torch profiler's top CUDA kernels for one call;
4. alternatives for the modulus and the pooling on the largest groups (time and max difference).

Loads our module by path like `bench_features.py` (no transformers). Example:

    . benchmarks/setup_gpu_env.sh; python3 benchmarks/profile_cwt_gpu.py --batch 256
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_features  # noqa: E402  (loads modeling_llm_aac/morlet_cwt.py by path)

REPO = Path(__file__).resolve().parents[1]
morlet = bench_features.morlet
SR = bench_features.SR


def load_previous_route():
    """The frozen previous route; it imports helpers from `modeling_llm_aac.morlet_cwt`, served by path."""
    package = types.ModuleType("modeling_llm_aac")
    package.__path__ = []
    sys.modules.setdefault("modeling_llm_aac", package)
    sys.modules.setdefault("modeling_llm_aac.morlet_cwt", morlet)
    import importlib.util

    path = REPO / "tests" / "modeling_llm_aac" / "reference_band_limited_cwt.py"
    spec = importlib.util.spec_from_file_location("previous_cwt_route", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def synchronize():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(function, repeats: int) -> float:
    """Seconds per call after one warm-up call."""
    function()
    synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    synchronize()
    return (time.perf_counter() - start) / repeats


def relative_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def pooled_distance(new_log: torch.Tensor, old_log: torch.Tensor) -> float:
    """Worst per-clip relative L2 distance of the pooled moduli (features are log(pooled + floor))."""
    new, old = new_log.exp() - morlet.LOG_FLOOR, old_log.exp() - morlet.LOG_FLOOR
    return max(relative_l2(new[i], old[i]) for i in range(new.shape[0]))


def tones(count: int, num_samples: int, freqs) -> torch.Tensor:
    time_axis = torch.arange(num_samples, dtype=torch.float64) / SR
    rows = []
    for index in range(count):
        k = (7 * index) % (len(freqs) - 8)
        wave = torch.sin(2 * math.pi * freqs[k] * time_axis) + 0.3 * torch.sin(2 * math.pi * 1.03 * freqs[k + 7] * time_axis)
        rows.append(wave * (time_axis > 0.1 * index % 5))
    return torch.stack(rows).float()


def stage_breakdown(waveforms, freqs, repeats: int) -> dict:
    """The current route's stages, each synchronised, summed over groups (one chunk)."""
    m = morlet
    num_samples = waveforms.shape[-1]
    fft_size = m.scalogram_fft_size(num_samples, f_min=min(freqs), width=12.0, sample_rate=SR, hop_length=160)
    groups = m._scalogram_plan(fft_size, tuple(freqs), 12.0, float(SR), 160, 400, waveforms.device)
    num_frames = m.scalogram_num_frames(num_samples)
    totals: dict[str, float] = {}

    def clock(name, function):
        synchronize()
        start = time.perf_counter()
        result = function()
        synchronize()
        totals[name] = totals.get(name, 0.0) + time.perf_counter() - start
        return result

    for _ in range(repeats + 1):
        if _ == 1:
            totals.clear()
        half = clock("rfft", lambda: torch.fft.rfft(waveforms, n=fft_size))
        low = min(min(g["first_bins"]) for g in groups)
        high = max(max(g["first_bins"]) + g["band_length"] for g in groups)
        spectrum = clock("hermitian extension", lambda: m._hermitian_extension(half, fft_size, low, high))
        pooled = waveforms.new_empty(len(freqs), waveforms.shape[0], num_frames)
        for group in groups:
            length = group["band_length"]

            def products():
                band = spectrum.new_empty(len(group["first_bins"]), spectrum.shape[0], length)
                for row, first in enumerate(group["first_bins"]):
                    torch.mul(spectrum[:, first - low : first - low + length], group["band_filter"][row], out=band[row])
                return band

            band = clock("filter products", products)
            inverse = clock("inverse FFT", lambda: torch.fft.ifft(band, dim=-1, norm="forward"))
            envelope = clock("modulus", lambda: torch.hypot(inverse.real, inverse.imag))
            clock("pooling", lambda: m._pool(envelope, group, num_frames, out=pooled[group["scale_slice"]]))
        clock("log + transpose", lambda: torch.log(pooled.add_(m.LOG_FLOOR)).permute(1, 2, 0).contiguous())
    return {name: seconds / repeats for name, seconds in totals.items()}


def pooling_alternatives(groups, batch: int, num_frames: int, repeats: int, device) -> list[str]:
    """Modulus and pooling variants on a few groups: time and worst relative difference."""
    lines = []
    for group in sorted(groups, key=lambda g: -len(g["indices"]) * g["band_length"])[:2] + [groups[0], groups[len(groups) // 2]]:
        scales, length, stride = len(group["indices"]), group["band_length"], group["stride"]
        inverse = torch.randn(scales, batch, length, dtype=torch.complex64, device=device)
        envelope = torch.hypot(inverse.real, inverse.imag)
        weights64 = group["block_weights"].double()
        reference = morlet._pool(envelope.double(), {**group, "block_weights": weights64}, num_frames, "blocks").float()
        weights, rows = group["block_weights"], group["block_weights"].shape[0]
        num_blocks = length // stride

        def rows_first():
            per_row = torch.matmul(weights, envelope.view(-1, stride).t())  # [rows, N * blocks]
            n = scales * batch
            view = per_row.as_strided((n, num_frames, rows), (num_blocks, 1, n * num_blocks + 1))
            return view.sum(-1).view(scales, batch, num_frames)

        taps = group["pool_taps"]
        start = -group["first_block"] * stride - (len(taps) - 1) // 2
        bag_rows = start + torch.arange(num_frames, device=device)[:, None] * stride + torch.arange(len(taps), device=device)[None, :]
        bag_weights = taps[None, :].expand(num_frames, -1).contiguous()

        def embedding_bag():
            table = envelope.view(-1, length).t()  # [time, scales * batch], a strided view
            summed = torch.nn.functional.embedding_bag(bag_rows, table, per_sample_weights=bag_weights, mode="sum")
            return summed.t().reshape(scales, batch, num_frames)

        entries = {
            "abs": lambda: inverse.abs(),
            "hypot": lambda: torch.hypot(inverse.real, inverse.imag),
            "matmul": lambda: morlet._pool(envelope, group, num_frames, "matmul"),
            "matmul rows-first": rows_first,
            "blocks": lambda: morlet._pool(envelope, group, num_frames, "blocks"),
            "embedding_bag": embedding_bag,
        }
        cells = []
        for name, function in entries.items():
            seconds = timed(function, repeats)
            note = ""
            if name not in ("abs", "hypot"):
                worst = float(((function() - reference).abs() / reference.abs().clamp_min(1e-30)).max())
                note = f" ({worst:.0e})"
            cells.append(f"{name} {seconds * 1e3:.3f}{note}")
        mb = scales * batch * length * 8 / 1e6
        lines.append(f"stride {stride:3d} x{scales} band {length} ({mb:.0f} MB): " + "; ".join(cells))
        del inverse, envelope
    return lines


def fft_size_alternatives(batch: int, repeats: int, device) -> list[str]:
    """Unnormalised inverse FFT time per complex value for a few strides and blocks-per-clip counts."""
    lines = []
    for stride in (3, 12, 40, 80):
        cells = []
        scales = max(1, 160 // stride // 4)
        for blocks in (1029, 1050, 1080, 1120, 1152):
            band = torch.randn(scales, batch, blocks * stride, dtype=torch.complex64, device=device)
            seconds = timed(lambda: torch.fft.ifft(band, dim=-1, norm="forward"), repeats)
            cells.append(f"{blocks}: {seconds / band.numel() * 1e12:.1f} ps")
            del band
        lines.append(f"stride {stride:3d} x{scales}: " + ", ".join(cells))
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--chunk-elements", type=int, default=1 << 28, help="max_batch_elements (bench_features' GPU default)")
    parser.add_argument("--skip-profiler", action="store_true")
    parser.add_argument("--alternatives", action="store_true", help="also time modulus / pooling / FFT-length alternatives")
    parser.add_argument(
        "--blocks-per-clip", type=int, nargs="*", default=[],
        help="also time the whole route with the FFT grid forced to these numbers of 10 ms blocks",
    )
    parser.add_argument("--device", default="cuda", help="cpu only to smoke-test this script")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("needs a CUDA device")
        return 1
    name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(f"{name}, torch {torch.__version__}, batch {args.batch} x 10 s, 64 scales")
    freqs = tuple(morlet.log_spaced_center_frequencies(64, 50.0, 7600.0))
    clips = torch.from_numpy(bench_features.synthetic_clips(args.batch, seed=1)).to(args.device)
    previous = load_previous_route()

    def run_current():
        return morlet.morlet_scalogram(clips, center_frequencies=freqs, max_batch_elements=args.chunk_elements)

    def run_blocks():
        keep = morlet._matmul_keeps_float32
        morlet._matmul_keeps_float32 = lambda device: False
        try:
            return run_current()
        finally:
            morlet._matmul_keeps_float32 = keep

    def run_previous():
        return previous.morlet_scalogram(clips, center_frequencies=freqs, max_batch_elements=args.chunk_elements)

    rates = {}
    for name, function in [("previous route", run_previous), ("current route", run_current), ("current, blocks pooling", run_blocks)]:
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        seconds = timed(function, args.repeats)
        rates[name] = args.batch / seconds
        peak = torch.cuda.max_memory_allocated() / 2**30 if args.device == "cuda" else float("nan")
        print(f"{name:26s} {args.batch / seconds:10.0f} clips/s  peak {peak:.1f} GiB")
    print(f"speed-up current / previous: {rates['current route'] / rates['previous route']:.2f}x")
    chosen = morlet.scalogram_fft_size(clips.shape[-1], f_min=min(freqs), width=12.0, sample_rate=SR, hop_length=160)
    for blocks in args.blocks_per_clip:
        keep = morlet.scalogram_fft_size
        morlet.scalogram_fft_size = lambda *a, **k: 160 * blocks
        try:
            print(f"  FFT grid of {blocks} blocks (default {chosen // 160}): {args.batch / timed(run_current, args.repeats):8.0f} clips/s")
        finally:
            morlet.scalogram_fft_size = keep

    toned = tones(min(args.batch, 16), clips.shape[-1], freqs).to(args.device)
    for name, batch in [("noise+chirp+clicks", clips[:16]), ("tones", toned)]:
        new = morlet.morlet_scalogram(batch, center_frequencies=freqs)
        old = previous.morlet_scalogram(batch, center_frequencies=freqs)
        print(f"pooled rel L2, current vs previous, {name}: {pooled_distance(new, old):.2e} (max log diff {float((new - old).abs().max()):.2e})")
    blocks = run_blocks()
    print(f"matmul vs blocks pooling, max |log diff|: {float((run_current() - blocks).abs().max()):.2e}")

    print("\nstages of the current route (synchronised, ms per batch):")
    stages = stage_breakdown(clips, freqs, args.repeats)
    for name, seconds in stages.items():
        print(f"  {name:22s} {seconds * 1e3:8.2f}")
    print(f"  {'sum':22s} {sum(stages.values()) * 1e3:8.2f}")

    if not args.skip_profiler and args.device == "cuda":
        from torch.profiler import ProfilerActivity, profile

        run_current()
        synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            run_current()
            synchronize()
        events = [e for e in prof.key_averages() if getattr(e, "device_type", None) is not None and str(e.device_type).endswith("CUDA")]
        kernels = sum(e.count for e in events)
        busy = sum(getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0)) for e in events)
        print(f"\nprofiler: {kernels} CUDA kernels/copies per call, {busy / 1e3:.2f} ms device time")
        print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=14, max_name_column_width=50))

    if not args.alternatives:
        return 0
    print("\npooling / modulus alternatives on the largest groups (ms per batch):")
    num_samples = clips.shape[-1]
    fft_size = morlet.scalogram_fft_size(num_samples, f_min=min(freqs), width=12.0, sample_rate=SR, hop_length=160)
    groups = morlet._scalogram_plan(fft_size, freqs, 12.0, float(SR), 160, 400, clips.device)
    print(f"  fft size {fft_size}, {len(groups)} groups, strides {[g['stride'] for g in groups]}")
    for line in pooling_alternatives(groups, args.batch, morlet.scalogram_num_frames(num_samples), args.repeats, clips.device):
        print("  " + line)
    print("\ninverse FFT per complex value by blocks per clip (1029 = 3 * 7**3 is used for 10 s clips):")
    for line in fft_size_alternatives(args.batch, args.repeats, clips.device):
        print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
