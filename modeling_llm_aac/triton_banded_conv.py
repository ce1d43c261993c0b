"""The EAT pretraining decoder's grouped convolution as Triton implicit GEMMs on its channels-last grid.

The decoder's grid is `[N, T, F, C]` (clips, time patches, frequency patches, channels in `G` groups). For one
group, one time row of the grid is an `F * C/G` vector, and a grouped `k x k` convolution (zero padding, output
row `t` reading input rows `t + tap - k // 2`) is a sum over time taps of that row vector times a matrix banded
along frequency (`EATDecoderConvBlock.banded_weight`, `[G, k, F * C_in/G, F * C_out/G]`):

    out[n, t, :, group g] = bias[g] + sum_tap grid[n, t + tap - row_offset, :, group g] @ weight[g, tap]

with rows outside the clip reading as zeros. cuBLAS runs this only as one GEMM over all taps and all frequencies
(2.7x the convolution's work for EAT's 8 frequency patches) on a group-major copy of the grid, then sums
row-shifted tap outputs: the grid travels through memory three more times per block, and the LayerNorm over all
channels becomes a strided reduction across groups. These kernels read and write the channels-last grid in place
(a group's channels are an address offset), accumulate the taps in registers, and for each output column tile
loop only over the input columns inside the band (1.5x the convolution's work with 64-column tiles, 1.8x with
128-column ones, which the autotuner prefers on an H100), so
the LayerNorm / GELU / residual between blocks stay plain contiguous elementwise work.

Three kernels make the differentiable op `banded_grouped_conv` (a `torch.library` custom op, so `torch.compile`
keeps it as one call in its graph): the forward, the input gradient (the forward kernel on the transposed,
tap-reversed weights) and the weight + bias gradient. They run on CUDA; on CPU only under Triton's interpreter
(`TRITON_INTERPRET=1`, float32 / float16), which is how the tests check them.
"""

import math
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
    def _band_columns(n_start, N_DIM: tl.constexpr, IN_PER_GROUP: tl.constexpr, OUT_PER_GROUP: tl.constexpr,
                      NUM_FREQ: tl.constexpr, BAND_BELOW: tl.constexpr, BAND_ABOVE: tl.constexpr,
                      BLOCK_N: tl.constexpr):
        # Output columns [n_start, n_start + BLOCK_N) hold frequencies [first_out, last_out]; the kernel reaches
        # input frequencies [first_out - BAND_BELOW, last_out + BAND_ABOVE]. Returns that input column range.
        first_out = n_start // OUT_PER_GROUP
        last_out = (tl.minimum(n_start + BLOCK_N, N_DIM) - 1) // OUT_PER_GROUP
        first_in = tl.maximum(first_out - BAND_BELOW, 0)
        last_in = tl.minimum(last_out + BAND_ABOVE, NUM_FREQ - 1)
        return first_in * IN_PER_GROUP, (last_in + 1) * IN_PER_GROUP

    @triton.jit
    def _grid_offsets(local_rows, columns, group, NUM_FREQ: tl.constexpr, GROUPS: tl.constexpr,
                      PER_GROUP: tl.constexpr, RUN: tl.constexpr):
        # Offsets of elements (row, column = f * PER_GROUP + c) of `group` on a channels-last
        # [rows, F, GROUPS * PER_GROUP] grid, from a tile's first row: 32-bit (the row base is a 64-bit pointer),
        # half the integer work of 64-bit offsets in the loops.
        freq = columns // PER_GROUP
        channel = columns - freq * PER_GROUP
        within_row = freq * (GROUPS * PER_GROUP) + group * PER_GROUP + channel
        # `columns` start at multiples of RUN, a power of two dividing PER_GROUP: the addresses then come in
        # contiguous, aligned runs of RUN, which the compiler cannot see through the division. Told so, it emits
        # vector loads (and asynchronous copies feeding the tensor cores) instead of one load per element.
        within_row = tl.max_contiguous(tl.multiple_of(within_row, RUN), RUN)
        return (local_rows * (NUM_FREQ * GROUPS * PER_GROUP))[:, None] + within_row[None, :]

    @triton.jit
    def _forward_tile_of_program(pid, num_m, NUM_N: tl.constexpr):
        # The column tiles of one row tile and group run next to each other, so the band columns they share come
        # from L2 instead of memory, once per column tile. (With the band-tight column blocks and 32-bit offsets
        # below, this took the forward from 3.9 to 2.3 ms at EAT-base's shape on an H100.)
        pid_n = pid % NUM_N
        rest = pid // NUM_N
        return rest % num_m, pid_n, rest // num_m

    @triton.jit
    def _banded_grouped_conv_kernel(
        x_ptr, w_ptr, bias_ptr, out_ptr, num_rows, rows_per_clip,
        NUM_FREQ: tl.constexpr, GROUPS: tl.constexpr, IN_PER_GROUP: tl.constexpr, OUT_PER_GROUP: tl.constexpr,
        TAPS: tl.constexpr, ROW_OFFSET: tl.constexpr, BAND_BELOW: tl.constexpr, BAND_ABOVE: tl.constexpr,
        HAS_BIAS: tl.constexpr, IEEE: tl.constexpr, IN_RUN: tl.constexpr, OUT_RUN: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    ):
        K_DIM: tl.constexpr = NUM_FREQ * IN_PER_GROUP
        N_DIM: tl.constexpr = NUM_FREQ * OUT_PER_GROUP
        EVEN_TILES: tl.constexpr = (K_DIM % BLOCK_K == 0) and (N_DIM % BLOCK_N == 0)
        pid_m, pid_n, group = _forward_tile_of_program(
            tl.program_id(0), tl.cdiv(num_rows, BLOCK_M), (N_DIM + BLOCK_N - 1) // BLOCK_N
        )
        row_start = pid_m * BLOCK_M
        local_rows = tl.arange(0, BLOCK_M)
        rows = row_start + local_rows
        cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        row_ok = rows < num_rows
        col_ok = cols < N_DIM
        time = rows % rows_per_clip
        k_begin, k_end = _band_columns(pid_n * BLOCK_N, N_DIM, IN_PER_GROUP, OUT_PER_GROUP, NUM_FREQ,
                                       BAND_BELOW, BAND_ABOVE, BLOCK_N)
        k_steps = tl.cdiv(k_end - k_begin, BLOCK_K)
        if EVEN_TILES:
            # The weight is zero outside the band, so the column blocks may start on any run boundary: moved left
            # to end inside the matrix, they cover the band with the fewest blocks and need no column mask.
            k_begin = tl.maximum(tl.minimum(k_begin, K_DIM - k_steps * BLOCK_K), 0)
        else:
            k_begin = k_begin // BLOCK_K * BLOCK_K
            k_steps = tl.cdiv(k_end - k_begin, BLOCK_K)
        k_begin = tl.multiple_of(k_begin, IN_RUN)
        x_tile = x_ptr + row_start.to(tl.int64) * (NUM_FREQ * GROUPS * IN_PER_GROUP)
        w_group = w_ptr + group.to(tl.int64) * (TAPS * K_DIM * N_DIM)
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        # One loop over (tap, column block) pairs: a few column blocks per tap are too short a loop to pipeline.
        for step in range(0, TAPS * k_steps):
            tap = step // k_steps
            ks = k_begin + (step - tap * k_steps) * BLOCK_K + tl.arange(0, BLOCK_K)
            # Rows outside the clip are the convolution's zero padding.
            source_time = time + (tap - ROW_OFFSET)
            source_ok = row_ok & (source_time >= 0) & (source_time < rows_per_clip)
            a_tile = x_tile + _grid_offsets(local_rows + (tap - ROW_OFFSET), ks, group, NUM_FREQ, GROUPS,
                                            IN_PER_GROUP, IN_RUN)
            w_tile = w_group + tap * (K_DIM * N_DIM) + ks[:, None] * N_DIM + cols[None, :]
            if EVEN_TILES:  # masks constant along the contiguous axis keep the loads vectorised
                a = tl.load(a_tile, mask=source_ok[:, None], other=0.0)
                b = tl.load(w_tile)
            else:
                a = tl.load(a_tile, mask=source_ok[:, None] & (ks < K_DIM)[None, :], other=0.0)
                b = tl.load(w_tile, mask=(ks < K_DIM)[:, None] & col_ok[None, :], other=0.0)
            if IEEE:
                acc = tl.dot(a, b, acc, input_precision="ieee")
            else:
                acc = tl.dot(a, b, acc)
        if HAS_BIAS:
            channels = group * OUT_PER_GROUP + cols % OUT_PER_GROUP
            acc += tl.load(bias_ptr + channels, mask=col_ok, other=0.0).to(tl.float32)[None, :]
        out = out_ptr + row_start.to(tl.int64) * (NUM_FREQ * GROUPS * OUT_PER_GROUP)
        out += _grid_offsets(local_rows, cols, group, NUM_FREQ, GROUPS, OUT_PER_GROUP, OUT_RUN)
        tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])

    @triton.jit
    def _tap_rows(x_tile, local_rows, time, row_ok, tap, TAPS: tl.constexpr, ROW_OFFSET: tl.constexpr,
                  rows_per_clip, ks, k_ok, group, NUM_FREQ: tl.constexpr, GROUPS: tl.constexpr,
                  PER_GROUP: tl.constexpr, RUN: tl.constexpr):
        # The input rows that time tap `tap` reads for a tile of output rows: zeros outside the clip (the
        # convolution's padding) and for taps past the kernel.
        source_time = time + (tap - ROW_OFFSET)
        source_ok = row_ok & (source_time >= 0) & (source_time < rows_per_clip) & (tap < TAPS)
        offsets = _grid_offsets(local_rows + (tap - ROW_OFFSET), ks, group, NUM_FREQ, GROUPS, PER_GROUP, RUN)
        return tl.load(x_tile + offsets, mask=source_ok[:, None] & k_ok[None, :], other=0.0)

    @triton.jit
    def _store_tap_grad(grad_w_ptr, acc, slot, tap, TAPS: tl.constexpr, ks, cols, store_ok, K_DIM: tl.constexpr,
                        N_DIM: tl.constexpr):
        out = grad_w_ptr + (slot + tap).to(tl.int64) * (K_DIM * N_DIM) + ks[:, None] * N_DIM + cols[None, :]
        tl.store(out, acc, mask=store_ok & (tap < TAPS))

    @triton.jit
    def _banded_grouped_conv_weight_grad_kernel(
        x_ptr, grad_ptr, grad_w_ptr, num_rows, rows_per_clip, rows_per_split,
        NUM_FREQ: tl.constexpr, GROUPS: tl.constexpr, IN_PER_GROUP: tl.constexpr, OUT_PER_GROUP: tl.constexpr,
        TAPS: tl.constexpr, ROW_OFFSET: tl.constexpr, BAND_BELOW: tl.constexpr, BAND_ABOVE: tl.constexpr,
        IEEE: tl.constexpr, IN_RUN: tl.constexpr, OUT_RUN: tl.constexpr,
        BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_R: tl.constexpr,
    ):
        # Program (k tile, n tile, (group, tap triple, row split)) writes the partial sums of its rows for three
        # taps to grad_w[split, group, tap]; the caller sums the splits (deterministic, unlike atomics). Each tile
        # of the output gradient is read once for the three taps (with 32-bit offsets: 6.1 -> 2.2 ms at EAT-base's
        # shape on an H100, against one tap per program); taps past the kernel read and store nothing.
        K_DIM: tl.constexpr = NUM_FREQ * IN_PER_GROUP
        N_DIM: tl.constexpr = NUM_FREQ * OUT_PER_GROUP
        pid_k = tl.program_id(0)
        pid_n = tl.program_id(1)
        num_splits = tl.cdiv(num_rows, rows_per_split)
        split = tl.program_id(2) % num_splits
        triple = tl.program_id(2) // num_splits % ((TAPS + 2) // 3)
        group = tl.program_id(2) // num_splits // ((TAPS + 2) // 3)
        tap0 = triple * 3
        ks = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
        cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        k_ok = ks < K_DIM
        col_ok = cols < N_DIM
        k_begin, k_end = _band_columns(pid_n * BLOCK_N, N_DIM, IN_PER_GROUP, OUT_PER_GROUP, NUM_FREQ,
                                       BAND_BELOW, BAND_ABOVE, BLOCK_N)
        # Tiles outside the band are gradients of weights that are zero by construction: written as zeros.
        in_band = (pid_k * BLOCK_K < k_end) & (pid_k * BLOCK_K + BLOCK_K > k_begin)
        row_begin = split * rows_per_split
        split_end = tl.minimum(row_begin + rows_per_split, num_rows)
        row_end = tl.where(in_band, split_end, row_begin)
        # 32-bit offsets from the split's first row (rows_per_split * row stride stays far below 2**31).
        x_split = x_ptr + row_begin.to(tl.int64) * (NUM_FREQ * GROUPS * IN_PER_GROUP)
        grad_split = grad_ptr + row_begin.to(tl.int64) * (NUM_FREQ * GROUPS * OUT_PER_GROUP)
        acc0 = tl.zeros((BLOCK_K, BLOCK_N), dtype=tl.float32)
        acc1 = tl.zeros((BLOCK_K, BLOCK_N), dtype=tl.float32)
        acc2 = tl.zeros((BLOCK_K, BLOCK_N), dtype=tl.float32)
        for r0 in range(row_begin, row_end, BLOCK_R):
            local_rows = r0 - row_begin + tl.arange(0, BLOCK_R)
            rows = row_begin + local_rows
            row_ok = rows < split_end
            time = rows % rows_per_clip
            b = tl.load(grad_split + _grid_offsets(local_rows, cols, group, NUM_FREQ, GROUPS, OUT_PER_GROUP, OUT_RUN),
                        mask=row_ok[:, None] & col_ok[None, :], other=0.0)
            a0 = _tap_rows(x_split, local_rows, time, row_ok, tap0, TAPS, ROW_OFFSET, rows_per_clip, ks, k_ok,
                           group, NUM_FREQ, GROUPS, IN_PER_GROUP, IN_RUN)
            a1 = _tap_rows(x_split, local_rows, time, row_ok, tap0 + 1, TAPS, ROW_OFFSET, rows_per_clip, ks, k_ok,
                           group, NUM_FREQ, GROUPS, IN_PER_GROUP, IN_RUN)
            a2 = _tap_rows(x_split, local_rows, time, row_ok, tap0 + 2, TAPS, ROW_OFFSET, rows_per_clip, ks, k_ok,
                           group, NUM_FREQ, GROUPS, IN_PER_GROUP, IN_RUN)
            if IEEE:
                acc0 = tl.dot(tl.trans(a0), b, acc0, input_precision="ieee")
                acc1 = tl.dot(tl.trans(a1), b, acc1, input_precision="ieee")
                acc2 = tl.dot(tl.trans(a2), b, acc2, input_precision="ieee")
            else:
                acc0 = tl.dot(tl.trans(a0), b, acc0)
                acc1 = tl.dot(tl.trans(a1), b, acc1)
                acc2 = tl.dot(tl.trans(a2), b, acc2)
        slot = (split * GROUPS + group) * TAPS
        store_ok = k_ok[:, None] & col_ok[None, :]
        _store_tap_grad(grad_w_ptr, acc0, slot, tap0, TAPS, ks, cols, store_ok, K_DIM, N_DIM)
        _store_tap_grad(grad_w_ptr, acc1, slot, tap0 + 1, TAPS, ks, cols, store_ok, K_DIM, N_DIM)
        _store_tap_grad(grad_w_ptr, acc2, slot, tap0 + 2, TAPS, ks, cols, store_ok, K_DIM, N_DIM)


# Tile shapes: (BLOCK_M or BLOCK_K, BLOCK_N, BLOCK_K or BLOCK_R, warps, stages), fastest first at EAT-base's shape on
# an H100 (each timed alone, 96 clips x 16 clones, bf16): forward 2.20 ms with (128, 128, 64, 8, 3) down to 2.57 ms
# with (128, 64, 64, 4, 3); weight gradient 2.02 ms with (64, 128, 64, 4, 3) up to 2.79 ms. 64-column tiles waste less
# of the band, 128-column ones feed the tensor cores better. The weight gradient's three accumulators and three input
# tiles per stage rule out its 128 x 128 tiles (registers) and long row blocks (shared memory).
_FORWARD_CONFIGS = ((128, 128, 64, 8, 3), (128, 128, 64, 4, 3), (256, 128, 64, 8, 4), (256, 128, 32, 8, 4),
                    (128, 128, 32, 4, 3), (64, 128, 64, 4, 3), (128, 64, 64, 4, 3), (128, 64, 32, 4, 4))
_WEIGHT_GRAD_CONFIGS = ((64, 128, 64, 4, 3), (64, 64, 64, 4, 4), (64, 128, 64, 8, 3), (64, 64, 128, 8, 3),
                        (128, 64, 64, 8, 3))
_INTERPRETER_BLOCKS = (16, 16, 16)
_autotuned: dict = {}


def _launch(name: str, kernel, configs, block_names: tuple, launch_grid, args: tuple, meta: dict, on_cuda: bool,
            config: tuple | None = None):
    """Runs `kernel` on `args`: on CUDA wrapped in `triton.autotune` over `configs` (built on first use), in the
    interpreter with `_INTERPRETER_BLOCKS`, or with one given `config` (a tuple like those of `configs`; for timing
    each tile shape alone, `benchmarks/bench_banded_conv.py --tile-sweep`). `launch_grid(*blocks)` gives the
    program grid for the block sizes named by `block_names`."""
    if config is not None or not on_cuda:
        blocks = config[:3] if config is not None else _INTERPRETER_BLOCKS
        options = dict(num_warps=config[3], num_stages=config[4]) if config is not None and on_cuda else {}
        kernel[launch_grid(*blocks)](*args, **meta, **dict(zip(block_names, blocks)), **options)
        return
    if name not in _autotuned:
        _autotuned[name] = triton.autotune(
            [triton.Config(dict(zip(block_names, config[:3])), num_warps=config[3], num_stages=config[4])
             for config in configs],
            key=["num_rows", "NUM_FREQ", "GROUPS", "IN_PER_GROUP", "OUT_PER_GROUP", "TAPS"],
        )(kernel)
    _autotuned[name][lambda blocks: launch_grid(*(blocks[block] for block in block_names))](*args, **meta)


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


def _aligned_run(per_group: int) -> int:
    """The largest power of two (at most 16, the smallest tile) dividing a group's channel count."""
    return math.gcd(per_group, 16)


def _geometry(grid: torch.Tensor, weight_shape, row_offset: int, band: tuple) -> dict:
    """Kernel constants of a `[N, T, F, G * C_in]` grid convolved by a `[G, k, F * C_in/G, F * C_out/G]` weight."""
    num_freq = grid.shape[2]
    groups, taps, k_dim, n_dim = weight_shape
    if grid.dim() != 4 or k_dim % num_freq or n_dim % num_freq or grid.shape[3] != groups * (k_dim // num_freq):
        raise ValueError(
            f"grid {tuple(grid.shape)} must be [N, T, F, G * C_in] and weight {tuple(weight_shape)} "
            f"[G, k, F * C_in/G, F * C_out/G] with the same F and G"
        )
    in_per_group, out_per_group = k_dim // num_freq, n_dim // num_freq
    return dict(NUM_FREQ=num_freq, GROUPS=groups, IN_PER_GROUP=in_per_group, OUT_PER_GROUP=out_per_group,
                TAPS=taps, ROW_OFFSET=row_offset, BAND_BELOW=band[0], BAND_ABOVE=band[1],
                IEEE=grid.dtype == torch.float32, IN_RUN=_aligned_run(in_per_group),
                OUT_RUN=_aligned_run(out_per_group))


def _launch_forward(grid: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, row_offset: int,
                    band: tuple, config: tuple | None = None) -> torch.Tensor:
    meta = dict(_geometry(grid, weight.shape, row_offset, band), HAS_BIAS=bias is not None)
    num_clips, num_time, num_freq, _ = grid.shape
    groups, n_dim = weight.shape[0], weight.shape[3]
    num_rows = num_clips * num_time
    out = grid.new_empty(num_clips, num_time, num_freq, groups * (n_dim // num_freq))
    bias_arg = bias if bias is not None else out
    _launch("forward", _banded_grouped_conv_kernel, _FORWARD_CONFIGS, ("BLOCK_M", "BLOCK_N", "BLOCK_K"),
            lambda block_m, block_n, _: (triton.cdiv(num_rows, block_m) * triton.cdiv(n_dim, block_n) * groups,),
            (grid, weight, bias_arg, out, num_rows, num_time), meta, grid.is_cuda, config=config)
    return out


# Rows per program of the weight gradient: enough programs to fill the GPU at large batches, partial sums kept small.
_ROWS_PER_SPLIT = 16384


def _launch_weight_grad(grid: torch.Tensor, grad_out: torch.Tensor, weight_shape: list, row_offset: int,
                        band: tuple, config: tuple | None = None) -> torch.Tensor:
    groups, taps, k_dim, n_dim = weight_shape
    meta = _geometry(grid, weight_shape, row_offset, band)
    num_rows, num_time = grid.shape[0] * grid.shape[1], grid.shape[1]
    rows_per_split = _ROWS_PER_SPLIT if grid.is_cuda else 8  # several splits in the interpreter's tests
    num_splits = triton.cdiv(num_rows, rows_per_split)
    partial = torch.empty(num_splits, groups, taps, k_dim, n_dim, device=grid.device, dtype=torch.float32)
    _launch("weight_grad", _banded_grouped_conv_weight_grad_kernel, _WEIGHT_GRAD_CONFIGS,
            ("BLOCK_K", "BLOCK_N", "BLOCK_R"),
            lambda block_k, block_n, _: (triton.cdiv(k_dim, block_k), triton.cdiv(n_dim, block_n),
                                         groups * triton.cdiv(taps, 3) * num_splits),
            (grid, grad_out, partial, num_rows, num_time, rows_per_split), meta, grid.is_cuda, config=config)
    return partial.sum(0) if num_splits > 1 else partial[0]


def _register_ops():
    """Defines the custom ops, or returns those of an earlier import: Hub remote code can import a second copy
    of this file under another module name, and an op name can be registered only once per process."""
    if hasattr(torch.ops.llm_aac, "banded_grouped_conv"):
        return torch.ops.llm_aac.banded_grouped_conv

    @torch.library.custom_op("llm_aac::banded_grouped_conv", mutates_args=())
    def banded_grouped_conv(
        grid: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, row_offset: int
    ) -> torch.Tensor:
        """Grouped `k x k` convolution of a channels-last grid with zero padding, through its banded weight.

        Args:
            grid: `[N, T, F, C_in]`; its dtype is the computation's (float32 accumulation). Made contiguous.
            weight: `[G, k, F * C_in/G, F * C_out/G]`, banded along frequency as `EATDecoderConvBlock.banded_weight`
                builds it, zero outside the band (the kernel reads only the band, widened to whole column blocks);
                cast to `grid`'s dtype.
            bias: `[C_out]` or None, added in float32 before the output is rounded to `grid`'s dtype.
            row_offset: the tap that reads the same time row (`k // 2`); output row `t` reads input rows
                `t + tap - row_offset` of the same clip.

        Returns:
            `[N, T, F, C_out]` in `grid`'s dtype.
        """
        _check_runnable(grid, weight)
        taps = weight.shape[1]
        return _launch_forward(grid.contiguous(), weight.to(grid.dtype).contiguous(), bias, row_offset,
                               (row_offset, taps - 1 - row_offset))

    @banded_grouped_conv.register_fake
    def _(grid, weight, bias, row_offset):
        groups, _, _, n_dim = weight.shape
        return grid.new_empty(*grid.shape[:3], groups * (n_dim // grid.shape[2]))

    @torch.library.custom_op("llm_aac::banded_grouped_conv_input_grad", mutates_args=())
    def banded_grouped_conv_input_grad(grad_out: torch.Tensor, weight: torch.Tensor, row_offset: int) -> torch.Tensor:
        """Gradient of `banded_grouped_conv` with respect to the grid: the same kernel on the transposed,
        tap-reversed weight."""
        _check_runnable(grad_out, weight)
        taps = weight.shape[1]
        transposed = weight.to(grad_out.dtype).flip(1).transpose(2, 3).contiguous()
        return _launch_forward(grad_out.contiguous(), transposed, None, taps - 1 - row_offset,
                               (taps - 1 - row_offset, row_offset))

    @banded_grouped_conv_input_grad.register_fake
    def _(grad_out, weight, row_offset):
        groups, _, k_dim, _ = weight.shape
        return grad_out.new_empty(*grad_out.shape[:3], groups * (k_dim // grad_out.shape[2]))

    @torch.library.custom_op("llm_aac::banded_grouped_conv_weight_grad", mutates_args=())
    def banded_grouped_conv_weight_grad(
        grid: torch.Tensor, grad_out: torch.Tensor, weight_shape: list[int], row_offset: int, with_bias: bool
    ) -> list[torch.Tensor]:
        """Gradients of `banded_grouped_conv` with respect to the banded weight (float32; inside the band, zero
        tiles elsewhere) and the bias (float32 `[C_out]`; empty when `with_bias` is False)."""
        _check_runnable(grid, grad_out)
        taps = weight_shape[1]
        grad_out = grad_out.to(grid.dtype).contiguous()
        grad_weight = _launch_weight_grad(grid.contiguous(), grad_out, weight_shape, row_offset,
                                          (row_offset, taps - 1 - row_offset))
        grad_bias = grad_out.sum(dim=(0, 1, 2), dtype=torch.float32) if with_bias else grad_weight.new_empty(0)
        return [grad_weight, grad_bias]

    @banded_grouped_conv_weight_grad.register_fake
    def _(grid, grad_out, weight_shape, row_offset, with_bias):
        grad_bias = grid.new_empty(grad_out.shape[3] if with_bias else 0, dtype=torch.float32)
        return [grid.new_empty(weight_shape, dtype=torch.float32), grad_bias]

    def setup_context(ctx, inputs, output):
        grid, weight, bias, row_offset = inputs
        ctx.save_for_backward(grid, weight)
        ctx.row_offset = row_offset
        ctx.bias_dtype = None if bias is None else bias.dtype

    def backward(ctx, grad_out):
        grid, weight = ctx.saved_tensors
        grad_out = grad_out.to(grid.dtype)
        grad_grid = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_grid = banded_grouped_conv_input_grad(grad_out, weight, ctx.row_offset)
        with_bias = ctx.bias_dtype is not None and ctx.needs_input_grad[2]
        if ctx.needs_input_grad[1] or with_bias:
            grad_weight, grad_bias = banded_grouped_conv_weight_grad(
                grid, grad_out, list(weight.shape), ctx.row_offset, with_bias
            )
            grad_weight = grad_weight.to(weight.dtype) if ctx.needs_input_grad[1] else None
            grad_bias = grad_bias.to(ctx.bias_dtype) if with_bias else None
        return grad_grid, grad_weight, grad_bias, None

    banded_grouped_conv.register_autograd(backward, setup_context=setup_context)
    return banded_grouped_conv


banded_grouped_conv = _register_ops()
