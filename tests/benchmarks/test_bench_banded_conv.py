"""benchmarks/bench_banded_conv.py without a GPU: its correctness check (Triton passes against F.conv2d, the banded
weight gradient folded back onto the convolution weight) on a tiny grid in Triton's interpreter, and its refusal to
run without CUDA."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from modeling_llm_aac.modeling_eat_pretraining import EATDecoderConvBlock
from modeling_llm_aac.triton_banded_conv import triton_available

REPO_ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("bench_banded_conv", REPO_ROOT / "benchmarks" / "bench_banded_conv.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)

pytestmark = pytest.mark.skipif(not triton_available(), reason="Triton is not installed")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the interpreter runs on CPU tensors")
def test_check_reports_small_differences_and_catches_a_wrong_weight():
    torch.manual_seed(0)
    block = EATDecoderConvBlock(32, 32, 3, 2)
    grid = torch.randn(2, 5, 8, 32)
    grad_out = torch.randn_like(grid)
    banded = block.banded_weight(8).detach()
    report = bench.check_triton_against_cudnn(block, grid, grad_out, banded, block.conv.bias.detach())
    differences = {item.rsplit(" ", 1)[0]: float(item.rsplit(" ", 1)[1]) for item in report.split(", ")}
    assert set(differences) == {"forward", "input grad", "weight grad"}
    assert max(differences.values()) < 1e-5

    report = bench.check_triton_against_cudnn(block, grid, grad_out, banded * 1.5, block.conv.bias.detach())
    assert float(report.split(", ")[0].split(" ")[1]) > 0.1  # a weight that is not the block's shows


@pytest.mark.skipif(torch.cuda.is_available(), reason="the interpreter runs on CPU tensors")
def test_tile_sweep_runs_every_tile_shape_and_agrees_with_the_op():
    from modeling_llm_aac import triton_banded_conv as tbc

    torch.manual_seed(0)
    block = EATDecoderConvBlock(96, 96, 3, 2)  # 48 channels per group, as in EAT
    grid = torch.randn(2, 3, 8, 96)
    grad_out = torch.randn_like(grid)
    calls = []
    lines = bench.tile_sweep(grid, grad_out, block.banded_weight(8).detach(), block.conv.bias.detach(),
                             timer=lambda fn: (calls.append(fn()), 1e-3)[1])
    assert len(lines) == len(calls) == len(tbc._FORWARD_CONFIGS) + len(tbc._WEIGHT_GRAD_CONFIGS)
    for line in lines:
        assert float(line.rsplit("op ", 1)[1].rstrip(")")) < 1e-4, line


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message printed without a GPU")
def test_main_refuses_without_cuda(capsys):
    with pytest.raises(SystemExit):
        bench.main([])
    assert "needs a CUDA GPU" in capsys.readouterr().err
