"""The decoder's banded Triton kernels against a plain PyTorch statement of the same op, and inside the decoder.

Without a GPU they run in Triton's interpreter (tests/conftest.py), in float32 and float16 (the interpreter has no
bfloat16); with one, compiled and autotuned, also at EAT-base's shapes."""

import pytest
import torch
import torch.nn.functional as F

from modeling_llm_aac.modeling_eat_pretraining import EATDecoderConvBlock, EATPretrainingDecoder
from modeling_llm_aac import triton_banded_conv as tbc
from modeling_llm_aac.triton_banded_conv import banded_grouped_conv, triton_available

from test_modeling_eat_pretraining import assert_decoder_implementations_agree, tiny_config

pytestmark = pytest.mark.skipif(not triton_available(), reason="Triton is not installed")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
HALF = torch.bfloat16 if DEVICE == "cuda" else torch.float16


@pytest.fixture(autouse=True)
def exact_float32(monkeypatch):
    """float32 references without TF32 (cuDNN's convolutions use it by default)."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)


def conv_block(groups, in_per_group, out_per_group, kernel_size):
    return EATDecoderConvBlock(groups * in_per_group, groups * out_per_group, kernel_size, groups).to(DEVICE)


def grouped_conv2d(grid, weight, bias, groups):
    """The reference: F.conv2d on the channels-last grid, with EAT's trim of the extra row / column of even kernels."""
    num_time, num_freq = grid.shape[1:3]
    out = F.conv2d(grid.permute(0, 3, 1, 2), weight, bias, padding=weight.shape[-1] // 2, groups=groups)
    return out[:, :, :num_time, :num_freq].permute(0, 2, 3, 1)


@pytest.mark.parametrize(
    "clips, num_time, num_freq, groups, in_per_group, out_per_group, kernel_size, with_bias",
    [
        (2, 5, 8, 2, 4, 4, 3, True),  # EAT's shape class: band skipping on 8 frequencies
        (1, 7, 8, 1, 4, 2, 1, False),  # 1 x 1 kernel
        (3, 3, 6, 2, 3, 5, 5, True),  # EAT-large's 5 x 5 (longer than the clips), widths off the 16-column tiles
        (2, 5, 8, 1, 4, 4, 4, True),  # even kernel: one more tap before the row than after
        (4, 10, 4, 3, 8, 8, 3, False),  # several row tiles, clips inside a tile
        pytest.param(24, 64, 8, 16, 48, 48, 3, True, marks=pytest.mark.skipif(DEVICE == "cpu", reason="GPU size"),
                     id="eat-base"),
    ],
)
def test_op_and_gradients_equal_grouped_conv2d(
    clips, num_time, num_freq, groups, in_per_group, out_per_group, kernel_size, with_bias
):
    torch.manual_seed(0)
    block = conv_block(groups, in_per_group, out_per_group, kernel_size)
    conv_weight = block.conv.weight.detach().clone().requires_grad_(True)
    bias = block.conv.bias.detach().clone().requires_grad_(True) if with_bias else None
    grid = torch.randn(clips, num_time, num_freq, groups * in_per_group, device=DEVICE, requires_grad=True)
    inputs = (grid, conv_weight) + ((bias,) if with_bias else ())

    block.conv.weight = torch.nn.Parameter(conv_weight)  # banded_weight reads the module's weight
    out = banded_grouped_conv(grid, block.banded_weight(num_freq), bias, kernel_size // 2)
    expected = grouped_conv2d(grid, conv_weight, bias, groups)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-5)

    upstream = torch.randn_like(out)
    grads = torch.autograd.grad(out, [grid, block.conv.weight] + ([bias] if with_bias else []), upstream)
    expected_grads = torch.autograd.grad(expected, inputs, upstream)
    for grad, expected_grad in zip(grads, expected_grads):
        torch.testing.assert_close(grad, expected_grad, atol=1e-3, rtol=1e-4)


def test_half_precision_output_rounds_a_float32_accumulation():
    torch.manual_seed(0)
    block = conv_block(2, 4, 4, 3)
    grid = torch.randn(2, 6, 8, 8, device=DEVICE)
    with torch.no_grad():
        out = banded_grouped_conv(grid.to(HALF), block.banded_weight(8), block.conv.bias, 1)
        expected = grouped_conv2d(grid.to(HALF).float(), block.conv.weight.to(HALF).float(), block.conv.bias, 2)
    assert out.dtype == HALF
    torch.testing.assert_close(out.float(), expected.to(HALF).float(), atol=5e-2, rtol=1e-2)


def test_decoder_with_triton_kernels_equals_grouped_conv2d():
    """The whole decoder (padding mask, clip edges, residuals, LayerNorm, GELU): outputs and every gradient."""
    torch.manual_seed(0)
    config = tiny_config(decoder_num_layers=2, decoder_groups=4)
    decoder = EATPretrainingDecoder(config).to(DEVICE)
    grid = torch.randn(3, 6, 4, config.hidden_size, device=DEVICE, requires_grad=True)
    grid_mask = torch.ones(3, 6, 4, device=DEVICE)
    grid_mask[1, 4:] = 0
    upstream = torch.randn(3, 6, 4, config.hidden_size, device=DEVICE)
    assert_decoder_implementations_agree(decoder, ("conv2d", "banded_triton"), grid, grid_mask, upstream)


def test_op_stays_one_call_in_a_compiled_graph():
    """torch.compile keeps the op as an opaque call: same values as eager."""
    torch.manual_seed(0)
    weight = conv_block(2, 4, 4, 3).banded_weight(8).detach().requires_grad_(True)
    x = torch.randn(2, 9, 8, 8, device=DEVICE, requires_grad=True)
    traced_calls = set()

    def recording_backend(graph_module, example_inputs):
        traced_calls.update(str(node.target) for node in graph_module.graph.nodes if node.op == "call_function")
        return graph_module.forward

    def step(x, weight):
        return (banded_grouped_conv(x, weight, None, 1) ** 2).sum()

    compiled = torch.compile(step, backend=recording_backend, fullgraph=True)
    torch.testing.assert_close(compiled(x, weight), step(x, weight))
    assert any("banded_grouped_conv" in call for call in traced_calls)


def test_cpu_tensors_outside_the_interpreter_are_refused(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    weight = conv_block(1, 2, 2, 3).banded_weight(4).detach().cpu()
    with pytest.raises(RuntimeError, match="CUDA tensors"):
        banded_grouped_conv(torch.randn(1, 5, 4, 2), weight, None, 1)


def test_grid_and_weight_shapes_must_agree():
    weight = conv_block(2, 2, 2, 3).banded_weight(4).detach()
    with pytest.raises(ValueError, match=r"grid \(1, 5, 3, 4\) must be \[N, T, F, G \* C_in\]"):
        banded_grouped_conv(torch.randn(1, 5, 3, 4, device=DEVICE), weight, None, 1)


@pytest.mark.skipif(DEVICE == "cuda", reason="the GPU runs the real autotuner")
@pytest.mark.parametrize("config_index", range(max(len(tbc._FORWARD_CONFIGS), len(tbc._WEIGHT_GRAD_CONFIGS))))
def test_every_autotuned_tile_shape_computes_the_convolution(monkeypatch, config_index):
    """The CUDA launch path (autotuner, grid from the chosen blocks) with each tile shape it may choose, run in the
    interpreter: EAT's 48 channels per group make tiles cross frequencies at different places for each shape."""

    def autotune_choosing(configs, key):
        chosen = configs[config_index % len(configs)].kwargs

        def wrap(kernel):
            class Tuned:
                def __getitem__(self, launch_grid):
                    return lambda *args, **meta: kernel[launch_grid(chosen)](*args, **meta, **chosen)

            return Tuned()

        return wrap

    launch = tbc._launch
    monkeypatch.setattr(tbc.triton, "autotune", autotune_choosing)
    monkeypatch.setattr(tbc, "_autotuned", {})
    monkeypatch.setattr(tbc, "_launch", lambda *args, **kwargs: launch(*args[:-1], True, **kwargs))
    monkeypatch.setattr(tbc, "_ROWS_PER_SPLIT", 4)
    torch.manual_seed(0)
    block = conv_block(2, 48, 48, 3)
    grid = torch.randn(2, 3, 8, 96, requires_grad=True)
    out = banded_grouped_conv(grid, block.banded_weight(8), block.conv.bias, 1)
    expected = grouped_conv2d(grid, block.conv.weight, block.conv.bias, 2)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-5)
    upstream = torch.randn_like(out)
    grads = torch.autograd.grad(out, [grid, block.conv.weight, block.conv.bias], upstream)
    expected_grads = torch.autograd.grad(expected, [grid, block.conv.weight, block.conv.bias], upstream)
    for grad, expected_grad in zip(grads, expected_grads):
        torch.testing.assert_close(grad, expected_grad, atol=1e-3, rtol=1e-4)
