"""The EAT pretraining decoder's grouped convolution as Triton implicit GEMMs that skip the zero band.

The decoder keeps its grid group-major, `[G, R, F * C]`: `R` rows (each clip's time rows framed by zero
rows), and per row the `F` frequency patches' channels of one group. A grouped `k x k` convolution is then,
for every group, `k` banded matrices (one per time tap, `[F * C_in, F * C_out]`, built by
`EATDecoderConvBlock.banded_weight`) applied to row-shifted copies of the grid:

    out[g, r] = bias[g] + sum_t x[g, r + t - row_offset] @ weight[g, t]

cuBLAS can only run this as one GEMM over all taps and all frequencies (2.7x the convolution's work for
EAT's 8 frequency patches) followed by a sum of row-shifted tap outputs, which makes the grid travel
through memory three more times per block. The kernels here accumulate the taps in registers (the row
shift is an address offset) and, for each output column tile, loop only over the input columns inside the
band (the frequencies a `k`-wide kernel reaches), about 1.5x the convolution's work with 64-column tiles.

Three kernels make the differentiable op `banded_rows_conv` (a `torch.library` custom op, so
`torch.compile` keeps it as one call in its graph): the forward, the input gradient (the forward kernel on
the transposed, tap-reversed weights) and the weight (+ bias) gradient. They run on CUDA; on CPU only
under Triton's interpreter (`TRITON_INTERPRET=1`, float32 / float16), which is how the tests check them.
"""

import os

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # the op reports it when called; importing this module stays safe
    triton = None


def triton_available() -> bool:
    return triton is not None


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


if triton is not None:

    @triton.jit
    def _band_columns(n_start, N_DIM: tl.constexpr, IN_PER_FREQ: tl.constexpr, OUT_PER_FREQ: tl.constexpr,
                      NUM_FREQ: tl.constexpr, BAND_BELOW: tl.constexpr, BAND_ABOVE: tl.constexpr,
                      BLOCK_N: tl.constexpr):
        # Output columns [n_start, n_start + BLOCK_N) hold frequencies [first_out, last_out]; the kernel
        # reaches input frequencies [first_out - BAND_BELOW, last_out + BAND_ABOVE].
        first_out = n_start // OUT_PER_FREQ
        last_out = (tl.minimum(n_start + BLOCK_N, N_DIM) - 1) // OUT_PER_FREQ
        first_in = tl.maximum(first_out - BAND_BELOW, 0)
        last_in = tl.minimum(last_out + BAND_ABOVE, NUM_FREQ - 1)
        return first_in * IN_PER_FREQ, (last_in + 1) * IN_PER_FREQ

    @triton.jit
    def _banded_rows_conv_kernel(
        x_ptr, w_ptr, bias_ptr, out_ptr, num_rows,
        K_DIM: tl.constexpr, N_DIM: tl.constexpr, IN_PER_FREQ: tl.constexpr, OUT_PER_FREQ: tl.constexpr,
        NUM_FREQ: tl.constexpr, TAPS: tl.constexpr, ROW_OFFSET: tl.constexpr, BAND_BELOW: tl.constexpr,
        BAND_ABOVE: tl.constexpr, HAS_BIAS: tl.constexpr, IEEE: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    ):
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
        group = tl.program_id(2).to(tl.int64)
        rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        col_ok = cols < N_DIM
        k_begin, k_end = _band_columns(pid_n * BLOCK_N, N_DIM, IN_PER_FREQ, OUT_PER_FREQ, NUM_FREQ,
                                       BAND_BELOW, BAND_ABOVE, BLOCK_N)
        k_begin = k_begin // BLOCK_K * BLOCK_K
        x_group = x_ptr + group * num_rows * K_DIM
        w_group = w_ptr + group * TAPS * K_DIM * N_DIM
        k_steps = tl.cdiv(k_end - k_begin, BLOCK_K)
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        # One loop over (tap, column block) pairs: a few column blocks per tap are too short a loop to pipeline.
        for step in range(0, TAPS * k_steps):
            tap = step // k_steps
            ks = k_begin + (step - tap * k_steps) * BLOCK_K + tl.arange(0, BLOCK_K)
            k_ok = ks < K_DIM
            source = rows + (tap - ROW_OFFSET)
            source_ok = (source >= 0) & (source < num_rows)
            a = tl.load(x_group + source[:, None] * K_DIM + ks[None, :], mask=source_ok[:, None] & k_ok[None, :],
                        other=0.0)
            b = tl.load(w_group + tap * K_DIM * N_DIM + ks[:, None] * N_DIM + cols[None, :],
                        mask=k_ok[:, None] & col_ok[None, :], other=0.0)
            if IEEE:
                acc = tl.dot(a, b, acc, input_precision="ieee")
            else:
                acc = tl.dot(a, b, acc)
        if HAS_BIAS:
            acc += tl.load(bias_ptr + group * N_DIM + cols, mask=col_ok, other=0.0).to(tl.float32)[None, :]
        out = out_ptr + group * num_rows * N_DIM + rows[:, None] * N_DIM + cols[None, :]
        tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=(rows < num_rows)[:, None] & col_ok[None, :])

    @triton.jit
    def _banded_rows_conv_weight_grad_kernel(
        x_ptr, grad_ptr, grad_w_ptr, grad_bias_ptr, num_rows,
        K_DIM: tl.constexpr, N_DIM: tl.constexpr, IN_PER_FREQ: tl.constexpr, OUT_PER_FREQ: tl.constexpr,
        NUM_FREQ: tl.constexpr, TAPS: tl.constexpr, ROW_OFFSET: tl.constexpr, BAND_BELOW: tl.constexpr,
        BAND_ABOVE: tl.constexpr, HAS_BIAS: tl.constexpr, IEEE: tl.constexpr,
        BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_R: tl.constexpr,
    ):
        pid_k = tl.program_id(0)
        pid_n = tl.program_id(1)
        group = (tl.program_id(2) // TAPS).to(tl.int64)
        tap = tl.program_id(2) % TAPS
        ks = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
        cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        k_ok = ks < K_DIM
        col_ok = cols < N_DIM
        k_begin, k_end = _band_columns(pid_n * BLOCK_N, N_DIM, IN_PER_FREQ, OUT_PER_FREQ, NUM_FREQ,
                                       BAND_BELOW, BAND_ABOVE, BLOCK_N)
        # Tiles outside the band are gradients of weights that are zero by construction: written as zeros.
        in_band = (pid_k * BLOCK_K < k_end) & (pid_k * BLOCK_K + BLOCK_K > k_begin)
        # The bias gradient (a column sum) is taken once per column tile: by its first in-band tile of the centre tap.
        sums_bias = (tap == ROW_OFFSET) & (pid_k == k_begin // BLOCK_K)
        row_end = tl.where(in_band, num_rows, 0)
        x_group = x_ptr + group * num_rows * K_DIM
        grad_group = grad_ptr + group * num_rows * N_DIM
        acc = tl.zeros((BLOCK_K, BLOCK_N), dtype=tl.float32)
        bias_acc = tl.zeros((BLOCK_N,), dtype=tl.float32)
        for r0 in range(0, row_end, BLOCK_R):
            rows = r0 + tl.arange(0, BLOCK_R)
            row_ok = rows < num_rows
            source = rows + (tap - ROW_OFFSET)
            source_ok = row_ok & (source >= 0) & (source < num_rows)
            a = tl.load(x_group + source[:, None] * K_DIM + ks[None, :], mask=source_ok[:, None] & k_ok[None, :],
                        other=0.0)
            b = tl.load(grad_group + rows[:, None] * N_DIM + cols[None, :], mask=row_ok[:, None] & col_ok[None, :],
                        other=0.0)
            if IEEE:
                acc = tl.dot(tl.trans(a), b, acc, input_precision="ieee")
            else:
                acc = tl.dot(tl.trans(a), b, acc)
            if HAS_BIAS:
                if sums_bias:
                    bias_acc += tl.sum(b.to(tl.float32), axis=0)
        out = grad_w_ptr + (group * TAPS + tap) * K_DIM * N_DIM + ks[:, None] * N_DIM + cols[None, :]
        tl.store(out, acc, mask=k_ok[:, None] & col_ok[None, :])
        if HAS_BIAS:
            tl.store(grad_bias_ptr + group * N_DIM + cols, bias_acc, mask=col_ok & sums_bias)


# Tile shapes: (BLOCK_M, BLOCK_N, BLOCK_K, warps, stages). 64-column tiles keep the band waste near 1.5x.
_FORWARD_CONFIGS = ((128, 64, 64, 4, 4), (128, 64, 64, 8, 3), (256, 64, 64, 8, 3), (64, 64, 64, 4, 4),
                    (128, 128, 64, 8, 3))
_WEIGHT_GRAD_CONFIGS = ((64, 64, 64, 4, 4), (64, 64, 128, 4, 3), (128, 64, 64, 8, 3))
_INTERPRETER_BLOCKS = (16, 16, 16)
_autotuned: dict[str, object] = {}


def _tuned_kernel(name: str, kernel, configs, block_names: tuple[str, str, str]):
    """The kernel wrapped in `triton.autotune` over `configs` (built on first use, CUDA only)."""
    if name not in _autotuned:
        _autotuned[name] = triton.autotune(
            [triton.Config(dict(zip(block_names, config[:3])), num_warps=config[3], num_stages=config[4])
             for config in configs],
            key=["num_rows", "K_DIM", "N_DIM", "TAPS"],
        )(kernel)
    return _autotuned[name]


def _check_runnable(*tensors: torch.Tensor) -> None:
    if triton is None:
        raise RuntimeError(
            "conv_implementation='banded_triton' needs Triton (it ships with CUDA builds of torch); "
            "use 'banded_matmul' or 'conv2d'"
        )
    on_cuda = [tensor.is_cuda for tensor in tensors]
    if not all(on_cuda) and not (_interpreting() and not any(on_cuda)):
        devices = sorted({str(tensor.device) for tensor in tensors})
        raise RuntimeError(
            f"conv_implementation='banded_triton' runs on CUDA tensors (or on CPU under TRITON_INTERPRET=1), got "
            f"tensors on {devices}"
        )


def _geometry(num_freq: int, taps: int, k_dim: int, n_dim: int) -> dict[str, int]:
    if k_dim % num_freq or n_dim % num_freq:
        raise ValueError(f"row widths {k_dim} (input) and {n_dim} (output) must be multiples of num_freq={num_freq}")
    return {"K_DIM": k_dim, "N_DIM": n_dim, "IN_PER_FREQ": k_dim // num_freq, "OUT_PER_FREQ": n_dim // num_freq,
            "NUM_FREQ": num_freq, "TAPS": taps}


def _launch_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, num_freq: int,
                    row_offset: int, band_below: int, band_above: int) -> torch.Tensor:
    groups, num_rows, k_dim = x.shape
    taps, n_dim = weight.shape[1], weight.shape[3]
    out = x.new_empty(groups, num_rows, n_dim)
    meta = dict(_geometry(num_freq, taps, k_dim, n_dim), ROW_OFFSET=row_offset, BAND_BELOW=band_below,
                BAND_ABOVE=band_above, HAS_BIAS=bias is not None, IEEE=x.dtype == torch.float32)
    bias_arg = bias if bias is not None else out
    if x.is_cuda:
        kernel = _tuned_kernel("forward", _banded_rows_conv_kernel, _FORWARD_CONFIGS, ("BLOCK_M", "BLOCK_N", "BLOCK_K"))

        def grid(blocks):
            return triton.cdiv(num_rows, blocks["BLOCK_M"]), triton.cdiv(n_dim, blocks["BLOCK_N"]), groups

        kernel[grid](x, weight, bias_arg, out, num_rows, **meta)
    else:
        block_m, block_n, block_k = _INTERPRETER_BLOCKS
        grid = (triton.cdiv(num_rows, block_m), triton.cdiv(n_dim, block_n), groups)
        _banded_rows_conv_kernel[grid](x, weight, bias_arg, out, num_rows, **meta, BLOCK_M=block_m, BLOCK_N=block_n,
                                       BLOCK_K=block_k)
    return out


def _launch_weight_grad(x: torch.Tensor, grad_out: torch.Tensor, num_freq: int, taps: int, row_offset: int,
                        band_below: int, band_above: int, with_bias: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    groups, num_rows, k_dim = x.shape
    n_dim = grad_out.shape[2]
    grad_weight = torch.empty(groups, taps, k_dim, n_dim, device=x.device, dtype=torch.float32)
    grad_bias = torch.empty(groups, n_dim, device=x.device, dtype=torch.float32) if with_bias else None
    meta = dict(_geometry(num_freq, taps, k_dim, n_dim), ROW_OFFSET=row_offset, BAND_BELOW=band_below,
                BAND_ABOVE=band_above, HAS_BIAS=with_bias, IEEE=x.dtype == torch.float32)
    bias_arg = grad_bias if with_bias else grad_weight
    if x.is_cuda:
        kernel = _tuned_kernel("weight_grad", _banded_rows_conv_weight_grad_kernel, _WEIGHT_GRAD_CONFIGS,
                               ("BLOCK_K", "BLOCK_N", "BLOCK_R"))

        def grid(blocks):
            return triton.cdiv(k_dim, blocks["BLOCK_K"]), triton.cdiv(n_dim, blocks["BLOCK_N"]), groups * taps

        kernel[grid](x, grad_out, grad_weight, bias_arg, num_rows, **meta)
    else:
        block_k, block_n, block_r = _INTERPRETER_BLOCKS
        grid = (triton.cdiv(k_dim, block_k), triton.cdiv(n_dim, block_n), groups * taps)
        _banded_rows_conv_weight_grad_kernel[grid](x, grad_out, grad_weight, bias_arg, num_rows, **meta,
                                                   BLOCK_K=block_k, BLOCK_N=block_n, BLOCK_R=block_r)
    return grad_weight, grad_bias


def _register_ops():
    """Defines the custom ops, or returns those of an earlier import: Hub remote code can import a second copy
    of this file under another module name, and an op name can be registered only once per process."""
    if hasattr(torch.ops.llm_aac, "banded_rows_conv"):
        return torch.ops.llm_aac.banded_rows_conv

    @torch.library.custom_op("llm_aac::banded_rows_conv", mutates_args=())
    def banded_rows_conv(
        x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, num_freq: int, row_offset: int
    ) -> torch.Tensor:
        """`out[g, r] = bias[g] + sum_t x[g, r + t - row_offset] @ weight[g, t]`, rows outside `x` read as zeros.

        Args:
            x: `[G, R, F * C_in]`, contiguous; its dtype is the computation's (float32 accumulation).
            weight: `[G, k, F * C_in, F * C_out]`, banded along frequency as `EATDecoderConvBlock.banded_weight`
                builds it (entries outside the band are never read); cast to `x`'s dtype.
            bias: `[G, F * C_out]` or None, added in float32 before the output is rounded to `x`'s dtype.
            num_freq: `F`, the frequency patches per row.
            row_offset: the tap that reads the same row (`k // 2` for a convolution padded by `k // 2`).

        Returns:
            `[G, R, F * C_out]` in `x`'s dtype.
        """
        _check_runnable(x, weight)
        taps = weight.shape[1]
        return _launch_forward(x.contiguous(), weight.to(x.dtype).contiguous(), bias, num_freq, row_offset,
                               row_offset, taps - 1 - row_offset)

    @banded_rows_conv.register_fake
    def _(x, weight, bias, num_freq, row_offset):
        return x.new_empty(x.shape[0], x.shape[1], weight.shape[3])

    @torch.library.custom_op("llm_aac::banded_rows_conv_input_grad", mutates_args=())
    def banded_rows_conv_input_grad(
        grad_out: torch.Tensor, weight: torch.Tensor, num_freq: int, row_offset: int
    ) -> torch.Tensor:
        """Gradient of `banded_rows_conv` with respect to `x`: the same kernel on the transposed, tap-reversed weight."""
        _check_runnable(grad_out, weight)
        taps = weight.shape[1]
        transposed = weight.to(grad_out.dtype).flip(1).transpose(2, 3).contiguous()
        return _launch_forward(grad_out.contiguous(), transposed, None, num_freq, taps - 1 - row_offset,
                               taps - 1 - row_offset, row_offset)

    @banded_rows_conv_input_grad.register_fake
    def _(grad_out, weight, num_freq, row_offset):
        return grad_out.new_empty(grad_out.shape[0], grad_out.shape[1], weight.shape[2])

    @torch.library.custom_op("llm_aac::banded_rows_conv_weight_grad", mutates_args=())
    def banded_rows_conv_weight_grad(
        x: torch.Tensor, grad_out: torch.Tensor, taps: int, num_freq: int, row_offset: int, with_bias: bool
    ) -> list[torch.Tensor]:
        """Gradients of `banded_rows_conv` with respect to the weight (inside the band; zero tiles elsewhere) and the
        bias (empty when `with_bias` is False), both float32."""
        _check_runnable(x, grad_out)
        grad_weight, grad_bias = _launch_weight_grad(x.contiguous(), grad_out.to(x.dtype).contiguous(), num_freq, taps,
                                                     row_offset, row_offset, taps - 1 - row_offset, with_bias)
        return [grad_weight, grad_bias if grad_bias is not None else grad_weight.new_empty(0)]

    @banded_rows_conv_weight_grad.register_fake
    def _(x, grad_out, taps, num_freq, row_offset, with_bias):
        groups, _, k_dim = x.shape
        n_dim = grad_out.shape[2]
        grad_bias = x.new_empty(groups, n_dim, dtype=torch.float32) if with_bias else x.new_empty(0, dtype=torch.float32)
        return [x.new_empty(groups, taps, k_dim, n_dim, dtype=torch.float32), grad_bias]

    def _setup_context(ctx, inputs, output):
        x, weight, bias, num_freq, row_offset = inputs
        ctx.save_for_backward(x, weight)
        ctx.num_freq, ctx.row_offset = num_freq, row_offset
        ctx.bias_dtype = None if bias is None else bias.dtype

    def _backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        grad_out = grad_out.to(x.dtype)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = banded_rows_conv_input_grad(grad_out, weight, ctx.num_freq, ctx.row_offset)
        if ctx.needs_input_grad[1] or (ctx.bias_dtype is not None and ctx.needs_input_grad[2]):
            with_bias = ctx.bias_dtype is not None and ctx.needs_input_grad[2]
            grad_weight, grad_bias = banded_rows_conv_weight_grad(
                x, grad_out, weight.shape[1], ctx.num_freq, ctx.row_offset, with_bias
            )
            grad_weight = grad_weight.to(weight.dtype) if ctx.needs_input_grad[1] else None
            grad_bias = grad_bias.to(ctx.bias_dtype) if with_bias else None
        return grad_x, grad_weight, grad_bias, None, None

    banded_rows_conv.register_autograd(_backward, setup_context=_setup_context)
    return banded_rows_conv


banded_rows_conv = _register_ops()
