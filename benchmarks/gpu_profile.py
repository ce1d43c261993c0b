"""Where the GPU time of a benchmark step goes: kernel time by category, the top kernels, and how much of the
wall time the GPU was busy at all (the rest is Python / launch overhead or host synchronisation).

Shared by the benchmark scripts (`--profile`); run from the `benchmarks/` folder or with it on `sys.path`.
"""

from __future__ import annotations

import time

import torch

# Kernel-name patterns, checked in order: inductor's kernels first (their names list the fused ops, e.g.
# "convolution" for a bias add), then cuDNN convolutions (implicit GEMMs) before plain GEMMs.
KERNEL_CATEGORIES = (
    ("fused elementwise (triton)", ("triton",)),
    ("attention", ("flash", "fmha", "attention", "sdpa")),
    ("convolution", ("fprop", "dgrad", "wgrad", "conv", "cudnn")),
    ("matmul", ("gemm", "nvjet", "cutlass", "xmma", "cublas", "sm90_", "sm80_")),
    ("optimizer / EMA", ("adam", "foreach", "multi_tensor", "lerp")),
    ("sort / topk / scatter / index", ("sort", "topk", "scatter", "index", "gather", "radix")),
    ("random", ("philox", "normal", "uniform", "rand")),
    ("softmax", ("softmax",)),
    ("norm / elementwise (eager)", ("norm", "elementwise", "vectorized", "reduce", "gelu", "copy", "cat")),
)


def kernel_category(name: str) -> str:
    lowered = name.lower()
    for category, patterns in KERNEL_CATEGORIES:
        if any(pattern in lowered for pattern in patterns):
            return category
    return "other"


def profile_step(step, *, rows: int = 45, steps: int = 3, warmup: int = 2, unit: str = "step") -> str:
    """Runs `step()` `warmup` times, then profiles `steps` calls: wall time and summed kernel time per call (their
    ratio is the GPU's busy fraction; kernels on several streams can overlap and push it past 100 %), kernel
    time by category, and the top `rows` kernels."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
        wall = (time.perf_counter() - start) / steps
    per_category: dict[str, float] = {}
    per_kernel: dict[str, list] = {}
    for event in prof.events():
        # Kernels and copies only: user annotations (e.g. "Optimizer.step#AdamW.step") would count twice.
        if event.device_type != DeviceType.CUDA or "#" in event.name:
            continue
        micros = event.time_range.elapsed_us() / steps
        category = kernel_category(event.name)
        per_category[category] = per_category.get(category, 0.0) + micros
        entry = per_kernel.setdefault(event.name, [0.0, 0])
        entry[0] += micros
        entry[1] += 1
    total = sum(per_category.values())
    launches = sum(calls for _, calls in per_kernel.values()) / steps
    lines = [
        f"per {unit}: wall {wall * 1000:.2f} ms (profiled), GPU kernel time {total / 1000:.2f} ms "
        f"({100 * total / 1000 / max(wall * 1000, 1e-9):.0f} % busy), {launches:.0f} kernels"
    ]
    for category, micros in sorted(per_category.items(), key=lambda item: -item[1]):
        lines.append(f"  {category:30s} {micros / 1000:9.2f} ms  {100 * micros / max(total, 1e-9):5.1f} %")
    lines.append(f"top {rows} kernels (ms per {unit}, calls per {unit}):")
    for name, (micros, calls) in sorted(per_kernel.items(), key=lambda item: -item[1][0])[:rows]:
        lines.append(f"  {micros / 1000:9.3f} {calls / steps:6.0f}x  [{kernel_category(name)}] {name[:110]}")
    return "\n".join(lines)
