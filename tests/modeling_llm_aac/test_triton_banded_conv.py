"""The decoder's banded Triton kernels against a plain PyTorch statement of the same op, and inside the decoder.

Without a GPU they run in Triton's interpreter (tests/conftest.py), in float32 and float16 (the interpreter has no
bfloat16); with one, compiled and autotuned, also at EAT-base's shapes."""

import pytest
import torch

from modeling_llm_aac.modeling_eat_pretraining import EATDecoderConvBlock, EATPretrainingDecoder
from modeling_llm_aac.triton_banded_conv import banded_rows_conv, triton_available

from test_modeling_eat_pretraining import tiny_config

pytestmark = pytest.mark.skipif(not triton_available(), reason="Triton is not installed")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
HALF = torch.bfloat16 if DEVICE == "cuda" else torch.float16


@pytest.fixture(autouse=True)
def exact_float32(monkeypatch):
    """float32 references without TF32 (cuDNN's convolutions use it by default)."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)


def shifted_rows_reference(x, weight, bias, row_offset):
    """out[g, r] = bias[g] + sum_t x[g, r + t - row_offset] @ weight[g, t], rows outside x read as zeros."""
    groups, num_rows, _ = x.shape
    out = torch.zeros(groups, num_rows, weight.shape[3], dtype=x.dtype, device=x.device)
    if bias is not None:
        out = out + bias[:, None, :]
    for tap in range(weight.shape[1]):
        shift = tap - row_offset
        shifted = torch.zeros_like(x)
        first, last = max(0, -shift), min(num_rows, num_rows - shift)
        shifted[:, first:last] = x[:, first + shift : last + shift]
        out = out + shifted @ weight[:, tap]
    return out


def banded_weight(groups, num_freq, in_per_group, out_per_group, kernel_size):
    block = EATDecoderConvBlock(groups * in_per_group, groups * out_per_group, kernel_size, groups).to(DEVICE)
    return block, block.banded_weight(num_freq).detach()


@pytest.mark.parametrize(
    "groups, num_rows, num_freq, in_per_group, out_per_group, kernel_size, with_bias",
    [
        (2, 13, 8, 4, 4, 3, True),  # EAT's shape class: band skipping on 8 frequencies
        (1, 7, 8, 4, 2, 1, False),  # 1 x 1 kernel
        (2, 9, 6, 3, 5, 5, True),  # EAT-large's 5 x 5, widths off the 16-column tiles
        (1, 10, 8, 4, 4, 4, True),  # even kernel: one more tap before the row than after
        (3, 40, 4, 8, 8, 3, False),  # several row tiles
        pytest.param(16, 300, 8, 48, 48, 3, True, marks=pytest.mark.skipif(DEVICE == "cpu", reason="GPU size"),
                     id="eat-base"),
    ],
)
def test_op_and_gradients_equal_the_shifted_row_products(
    groups, num_rows, num_freq, in_per_group, out_per_group, kernel_size, with_bias
):
    torch.manual_seed(0)
    _, weight = banded_weight(groups, num_freq, in_per_group, out_per_group, kernel_size)
    weight.requires_grad_(True)
    x = torch.randn(groups, num_rows, num_freq * in_per_group, device=DEVICE, requires_grad=True)
    bias = torch.randn(groups, num_freq * out_per_group, device=DEVICE, requires_grad=True) if with_bias else None
    inputs = (x, weight) + ((bias,) if with_bias else ())
    out = banded_rows_conv(x, weight, bias, num_freq, kernel_size // 2)
    expected = shifted_rows_reference(x, weight, bias, kernel_size // 2)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-5)

    upstream = torch.randn_like(out)
    grads = torch.autograd.grad(out, inputs, upstream)
    expected_grads = torch.autograd.grad(expected, inputs, upstream)
    in_band = weight != 0  # gradients of the weights that are zero by construction are never used
    torch.testing.assert_close(grads[0], expected_grads[0], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(grads[1] * in_band, expected_grads[1] * in_band, atol=1e-3, rtol=1e-5)
    if with_bias:
        torch.testing.assert_close(grads[2], expected_grads[2], atol=1e-3, rtol=1e-5)


def test_half_precision_output_rounds_a_float32_accumulation():
    torch.manual_seed(0)
    _, weight = banded_weight(2, 8, 4, 4, 3)
    x = torch.randn(2, 11, 32, device=DEVICE)
    bias = torch.randn(2, 32, device=DEVICE)
    out = banded_rows_conv(x.to(HALF), weight, bias, 8, 1)
    assert out.dtype == HALF
    expected = shifted_rows_reference(x.to(HALF).float(), weight.to(HALF).float(), bias, 1)
    torch.testing.assert_close(out.float(), expected.to(HALF).float(), atol=5e-2, rtol=1e-2)


def test_decoder_with_triton_kernels_equals_grouped_conv2d():
    """The whole decoder (masks, framing rows, residuals, LayerNorm, GELU): outputs and every gradient."""
    torch.manual_seed(0)
    config = tiny_config(decoder_num_layers=2, decoder_groups=4)
    decoder = EATPretrainingDecoder(config).to(DEVICE)
    grid = torch.randn(3, 6, 4, config.hidden_size, device=DEVICE, requires_grad=True)
    grid_mask = torch.ones(3, 6, 4, device=DEVICE)
    grid_mask[1, 4:] = 0
    upstream = torch.randn(3, 6, 4, config.hidden_size, device=DEVICE)
    results = []
    for implementation in ("conv2d", "banded_triton"):
        decoder.conv_implementation = implementation
        decoder.zero_grad()
        out = decoder(grid, grid_mask)
        (grid_grad,) = torch.autograd.grad((out * upstream).sum(), grid, retain_graph=True)
        (out * upstream).sum().backward()
        results.append((out, grid_grad, [p.grad.clone() for p in decoder.parameters()]))
    (ref_out, ref_grid_grad, ref_grads), (out, grid_grad, grads) = results
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grid_grad, ref_grid_grad, atol=1e-5, rtol=1e-5)
    for grad, ref_grad in zip(grads, ref_grads):
        torch.testing.assert_close(grad, ref_grad, atol=1e-4, rtol=1e-4)


def test_op_stays_one_call_in_a_compiled_graph():
    """torch.compile keeps the op (and its backward ops) as opaque calls: same values as eager."""
    torch.manual_seed(0)
    _, weight = banded_weight(2, 8, 4, 4, 3)
    weight.requires_grad_(True)
    x = torch.randn(2, 9, 32, device=DEVICE, requires_grad=True)
    traced_calls = set()

    def recording_backend(graph_module, example_inputs):
        traced_calls.update(str(node.target) for node in graph_module.graph.nodes if node.op == "call_function")
        return graph_module.forward

    def step(x, weight):
        return (banded_rows_conv(x, weight, None, 8, 1) ** 2).sum()

    compiled = torch.compile(step, backend=recording_backend, fullgraph=True)
    torch.testing.assert_close(compiled(x, weight), step(x, weight))
    assert any("banded_rows_conv" in call for call in traced_calls)


def test_cpu_tensors_outside_the_interpreter_are_refused(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    weight = banded_weight(1, 4, 2, 2, 3)[1].cpu()
    with pytest.raises(RuntimeError, match="CUDA tensors"):
        banded_rows_conv(torch.randn(1, 5, 8), weight, None, 4, 1)


def test_row_widths_must_split_into_the_frequencies():
    _, weight = banded_weight(1, 4, 2, 2, 3)
    with pytest.raises(ValueError, match="multiples of num_freq=3"):
        banded_rows_conv(torch.randn(1, 5, 8, device=DEVICE), weight, None, 3, 1)
