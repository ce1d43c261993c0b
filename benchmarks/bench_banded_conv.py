r"""The EAT pretraining decoder's grouped convolution alone, at EAT-base's shape: each pass (forward, input gradient,
weight gradient) of the Triton kernels (`conv_implementation="banded_triton"`) against cuDNN's grouped convolution
on the same channels-last grid (the baseline, run in the same process) and against the cuBLAS banded products of
`"banded_matmul"` (one batched GEMM per pass, without that path's tap sums and layout copies).

    python benchmarks/bench_banded_conv.py                        # 96 clips x 16 clones, bf16
    python benchmarks/bench_banded_conv.py --views 384 --iters 20
    python benchmarks/bench_banded_conv.py --tile-sweep          # also each tile shape of the autotuner's lists alone

The grid is `[views, 64, 8, 768]` (10.24-s clips: 64 time x 8 frequency patches; 16 groups of 48 channels, 3 x 3
kernel), `views` = clips x clones. "Nominal" TFLOP/s counts the convolution's own multiply-adds (0.52 TFLOP per
pass at 1536 views); the cuBLAS rows also give their executed rate (2.7x the nominal work: the banded weight's
zeros). Every Triton pass is checked against cuDNN's result before it is timed. A whole pretraining step with
each decoder: `bench_eat_pretrain.py --decoders banded_matmul,banded_triton`.

Needs a CUDA GPU with Triton (it ships with CUDA builds of torch).
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_eat_pretrain import cuda_time, import_eat_pretraining  # noqa: E402


def convolution_passes(views: int, *, dtype: torch.dtype, seed: int = 0) -> dict:
    """Inputs of one decoder block at EAT-base's shape and, per implementation, a callable per pass."""
    import_eat_pretraining()
    from modeling_llm_aac.modeling_eat_pretraining import EATDecoderConvBlock

    torch.manual_seed(seed)
    num_time, num_freq, channels, groups, kernel = 64, 8, 768, 16, 3
    block = EATDecoderConvBlock(channels, channels, kernel, groups).cuda()
    grid = torch.randn(views, num_time, num_freq, channels, device="cuda", dtype=dtype)
    grad_out = torch.randn_like(grid)
    banded = block.banded_weight(num_freq).detach().to(dtype).contiguous()
    bias = block.conv.bias.detach()
    conv_weight = block.conv.weight.detach().to(dtype).contiguous(memory_format=torch.channels_last)
    grid_nchw, grad_nchw = grid.permute(0, 3, 1, 2), grad_out.permute(0, 3, 1, 2)
    ops = torch.ops.llm_aac

    def cudnn_backward(output_mask):
        return torch.ops.aten.convolution_backward(
            grad_nchw, grid_nchw, conv_weight, None, [1, 1], [1, 1], [1, 1], False, [0, 0], groups, output_mask
        )

    # cuBLAS's banded products on the group-major layout: [G, rows, F*C/G] x [G, F*C/G, k*F*C/G] and the two
    # products of its backward.
    rows, width = views * (num_time + 2), num_freq * channels // groups
    hidden = torch.randn(groups, rows, width, device="cuda", dtype=dtype)
    tap_grads = torch.randn(groups, rows, kernel * width, device="cuda", dtype=dtype)
    stacked = banded.permute(0, 2, 1, 3).reshape(groups, width, kernel * width)
    return {
        "nominal_tflop": 2 * views * num_time * num_freq * channels * (channels // groups) * kernel**2 / 1e12,
        "banded_executed_tflop": 2 * groups * rows * width * kernel * width / 1e12,
        "passes": {
            "cuDNN": {
                "forward": lambda: F.conv2d(grid_nchw, conv_weight, bias.to(dtype), padding=1, groups=groups),
                "input grad": lambda: cudnn_backward([True, False, False]),
                "weight grad": lambda: cudnn_backward([False, True, False]),
            },
            "cuBLAS banded": {
                "forward": lambda: torch.bmm(hidden, stacked),
                "input grad": lambda: torch.bmm(tap_grads, stacked.transpose(1, 2)),
                "weight grad": lambda: torch.bmm(hidden.transpose(1, 2), tap_grads),
            },
            "Triton banded": {
                "forward": lambda: ops.banded_grouped_conv(grid, banded, bias, 1),
                "input grad": lambda: ops.banded_grouped_conv_input_grad(grad_out, banded, 1),
                "weight grad": lambda: ops.banded_grouped_conv_weight_grad(grid, grad_out, list(banded.shape), 1,
                                                                           True),
            },
        },
        "check": (block, grid, grad_out, banded, bias),
    }


def check_triton_against_cudnn(block, grid, grad_out, banded, bias) -> str:
    """Largest differences of the Triton passes from cuDNN's, relative to the largest cuDNN value."""
    ops = torch.ops.llm_aac
    grid32 = grid.float().requires_grad_(True)
    weight32 = block.conv.weight.detach().float().requires_grad_(True)
    with torch.backends.cudnn.flags(allow_tf32=False):
        expected = F.conv2d(grid32.permute(0, 3, 1, 2), weight32, bias, padding=1, groups=block.conv.groups)
        expected = expected.permute(0, 2, 3, 1)
        expected_grid_grad, expected_weight_grad = torch.autograd.grad(expected, [grid32, weight32], grad_out.float())
    out = ops.banded_grouped_conv(grid, banded, bias, 1)
    grid_grad = ops.banded_grouped_conv_input_grad(grad_out, banded, 1)
    banded_grad, _ = ops.banded_grouped_conv_weight_grad(grid, grad_out, list(banded.shape), 1, True)
    # The banded gradient folds back onto the convolution weight through `banded_weight`'s own backward.
    weight = block.conv.weight
    weight.grad = None
    block.banded_weight(grid.shape[2]).backward(banded_grad)
    pairs = {"forward": (out, expected), "input grad": (grid_grad, expected_grid_grad),
             "weight grad": (weight.grad, expected_weight_grad)}
    return ", ".join(
        f"{name} {((got.float() - want).abs().max() / want.abs().max()).item():.1e}"
        for name, (got, want) in pairs.items()
    )


def tile_sweep(grid, grad_out, banded, bias, *, timer) -> list[str]:
    """Each tile shape the autotuner may pick, timed alone (`timer(fn)` -> seconds) for the forward and the weight
    gradient kernels, fastest first, with its largest difference from the autotuned op's result (all shapes must
    compute the same sums, up to the order of the float32 accumulation; weight-gradient entries outside the band
    depend on the tile shape and are never used, so only the band is compared)."""
    from modeling_llm_aac import triton_banded_conv as tbc

    in_band = (banded != 0).float()

    passes = {
        "forward": (tbc._FORWARD_CONFIGS, lambda config: tbc._launch_forward(grid, banded, bias, 1, (1, 1), config),
                    torch.ops.llm_aac.banded_grouped_conv(grid, banded, bias, 1)),
        "weight grad": (tbc._WEIGHT_GRAD_CONFIGS,
                        lambda config: tbc._launch_weight_grad(grid, grad_out, list(banded.shape), 1, (1, 1), config),
                        torch.ops.llm_aac.banded_grouped_conv_weight_grad(grid, grad_out, list(banded.shape), 1,
                                                                          False)[0]),
    }
    lines = []
    for name, (configs, launch, expected) in passes.items():
        timed = []
        for config in configs:
            try:
                difference = (launch(config).float() - expected.float()).abs()
                difference = (difference * in_band if name == "weight grad" else difference).max().item()
                timed.append((timer(lambda: launch(config)), config, difference))
            except Exception as error:  # a shape the card cannot hold (shared memory, registers)
                lines.append(f"{name:12s} {config}: not run ({type(error).__name__}: {str(error)[:80]})")
        for seconds, config, difference in sorted(timed):
            lines.append(f"{name:12s} {config}: {seconds * 1e3:8.3f} ms  (max difference from the autotuned op "
                         f"{difference:.1e})")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--views", type=int, default=1536, help="clips x clones in the grid (96 x 16 by default)")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16"])
    parser.add_argument("--iters", type=int, default=10, help="timed calls per pass")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls per pass (the first autotunes)")
    parser.add_argument("--tile-sweep", action="store_true",
                        help="also time each tile shape (block sizes, warps, stages) of the autotuner's lists alone")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        parser.error("needs a CUDA GPU")

    setup = convolution_passes(args.views, dtype=getattr(torch, args.dtype))
    nominal = setup["nominal_tflop"]
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}; grid [{args.views}, 64, 8, 768], 16 groups, "
          f"3 x 3, {args.dtype}: {nominal:.3f} TFLOP per pass (nominal)")
    print("Triton vs cuDNN (relative max difference, float32 cuDNN reference): "
          + check_triton_against_cudnn(*setup["check"]))
    baseline = {}
    for implementation, passes in setup["passes"].items():
        for name, fn in passes.items():
            seconds = cuda_time(fn, warmup=args.warmup, iters=args.iters)
            baseline.setdefault(name, seconds)
            executed = ""
            if implementation == "cuBLAS banded":
                executed = f"  ({setup['banded_executed_tflop'] / seconds:6.1f} executed)"
            print(f"{implementation:14s} {name:12s} {seconds * 1e3:8.3f} ms  {nominal / seconds:6.1f} nominal "
                  f"TFLOP/s  x{baseline[name] / seconds:5.2f} vs cuDNN{executed}", flush=True)
    if args.tile_sweep:
        block, grid, grad_out, banded, bias = setup["check"]
        timer = lambda fn: cuda_time(fn, warmup=1, iters=args.iters)  # noqa: E731
        print("\n".join(["tile shapes (BLOCK_M | BLOCK_K, BLOCK_N, BLOCK_K | BLOCK_R, warps, stages), each alone:"]
                        + tile_sweep(grid, grad_out, banded, bias, timer=timer)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
