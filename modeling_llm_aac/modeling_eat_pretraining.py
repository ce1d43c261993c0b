"""EAT pretraining: the utterance-frame objective (data2vec 2.0 style) as a transformers model.

`EATForPreTraining` holds the student encoder (`eat`, an [`EATModel`]), the CNN decoder used only
for pretraining, and the EMA teacher (`teacher`, another [`EATModel`] with frozen parameters).
One training step, as in the released EAT recipe:

1. the teacher encodes every clip whole; its targets are each block's MLP output before the
   residual add, instance-normalised over the patches, averaged over the top K blocks, then
   LayerNorm-ed (no affine);
2. each clip is cloned `num_mask_clones` times; every clone gets its own inverse block mask on the
   (time, frequency) patch grid (square blocks of *visible* patches, `1 - mask_ratio` of the real
   patches stay visible) and the student encodes only the visible patches plus CLS;
3. the decoder puts the student's patch outputs back on the grid, fills masked positions with
   small Gaussian noise, and runs `decoder_num_layers` x [grouped Conv2d -> LayerNorm (no affine)
   -> GELU] with residuals, then a Linear;
4. frame loss: squared error to the target at masked patches (summed over channels, scaled by
   `1 / sqrt(hidden_size)`, averaged over masked patches); utterance loss: squared error between the
   student's CLS and the clip's mean target (same scaling, summed over views like EAT);
5. after each optimizer step, `update_teacher(step)` moves the teacher towards the student with a
   decay rising linearly from `ema_decay` to `ema_end_decay` over `ema_anneal_end_step` updates.

Variable length: padded patches (those made only of padding frames) are never visible, never
targets, excluded from the target statistics, and zero on the decoder grid, so a clip's targets
and decoder outputs are the same alone and padded inside a batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_eat import EATConfig
from .modeling_eat import EATLayerNorm, EATModel, EATPreTrainedModel, active_autocast_dtype
from .triton_banded_conv import banded_grouped_conv, triton_available

# The reference decoder and target builder use torch's default LayerNorm / instance-norm epsilon.
_DECODER_LAYER_NORM_EPS = 1e-5
_TARGET_NORM_EPS = 1e-5


def ema_decay_at(num_updates: int, start: float, end: float, anneal_end_step: int) -> float:
    """Teacher decay after `num_updates` optimizer updates: linear from `start` to `end`, then `end`."""
    if num_updates >= anneal_end_step:
        return float(end)
    return float(end - (end - start) * (1.0 - num_updates / anneal_end_step))


def _uniform(
    shape: tuple[int, ...], *, device: torch.device | str, generator: torch.Generator | None, dtype: torch.dtype
) -> torch.Tensor:
    """`torch.rand`, leaving out `generator=None`: torch.compile cannot trace the generator overload of
    `torch.rand` with a symbolic size (a batch size made dynamic after a recompilation)."""
    if generator is None:
        return torch.rand(shape, device=device, dtype=dtype)
    return torch.rand(shape, device=device, generator=generator, dtype=dtype)


def compute_inverse_block_mask(
    num_views: int,
    num_time_patches: int,
    num_freq_patches: int,
    *,
    valid_time_patches: torch.Tensor | None = None,
    mask_ratio: float = 0.8,
    mask_ratio_adjust: float = 0.07,
    block_size: int = 5,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse block masks on a (time, frequency) patch grid, vectorised over views.

    For each view with `L` real patches (its first `valid_time_patches` time rows), the number of
    visible patches is `floor(L * (1 - mask_ratio))` (at least 1). `floor(L * (1 - mask_ratio +
    mask_ratio_adjust) / block_size**2)` block centres are drawn uniformly over the real patches;
    each marks a `block_size x block_size` square (clamped to the real grid) as visible; the count
    is then made exact by dropping random block patches or adding random other real patches.
    This is the distribution of EAT's `compute_block_mask_2d(inverse_mask=True,
    require_same_masks=True)`, extended to padded clips.

    Args:
        num_views: number of masks to draw (clips x clones).
        num_time_patches / num_freq_patches: the padded patch grid; patches are time-major.
        valid_time_patches: `[num_views]` real time rows of each view; None means all rows are real.
        mask_ratio: fraction of real patches hidden from the student.
        mask_ratio_adjust: extra share of block centres, compensating for overlapping blocks.
        block_size: side of the square visible blocks.
        device: where the masks are built (defaults to `valid_time_patches`' device, else CPU).
        generator: optional `torch.Generator` for reproducible masks.

    Returns:
        `visible` `[num_views, T * F]` bool (True = shown to the student) and `num_visible`
        `[num_views]` long. Padded patches are never visible.
    """
    if not 0.0 < mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must lie in (0, 1), got {mask_ratio!r}")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size!r}")
    if num_views < 1 or num_time_patches < 1 or num_freq_patches < 1:
        raise ValueError(
            f"need at least one view and one patch, got num_views={num_views}, grid={num_time_patches}x{num_freq_patches}"
        )
    if device is None:
        device = valid_time_patches.device if valid_time_patches is not None else torch.device("cpu")
    num_patches = num_time_patches * num_freq_patches
    keep_ratio = 1.0 - mask_ratio
    if valid_time_patches is None:
        valid_time = torch.full((num_views,), num_time_patches, dtype=torch.long, device=device)
    else:
        if tuple(valid_time_patches.shape) != (num_views,):
            raise ValueError(
                f"valid_time_patches must have shape ({num_views},), got {tuple(valid_time_patches.shape)}"
            )
        valid_time = valid_time_patches.to(device=device, dtype=torch.long).clamp(0, num_time_patches)
    valid_patches = valid_time * num_freq_patches

    # float64 so that the counts round like the reference's Python floats (int(512 * 0.2) = 102, not 103).
    num_visible = torch.floor(valid_patches.double() * keep_ratio).long().clamp(min=1)
    num_visible = torch.minimum(num_visible, valid_patches)
    centre_share = (keep_ratio + mask_ratio_adjust) / block_size**2
    num_centres = torch.floor(valid_patches.double() * centre_share).long()
    max_centres = max(1, int(num_patches * centre_share))

    # Block centres, uniform over each view's real patches (drawn with replacement like the reference).
    uniform = _uniform((num_views, max_centres), device=device, generator=generator, dtype=torch.float64)
    centre = torch.minimum((uniform * valid_patches[:, None]).long(), (valid_patches[:, None] - 1).clamp(min=0))
    centre_t = centre // num_freq_patches
    centre_f = centre % num_freq_patches
    centre_used = torch.arange(max_centres, device=device)[None, :] < num_centres[:, None]

    offsets = torch.arange(block_size, device=device) - block_size // 2
    block_t = centre_t[:, :, None, None] + offsets[None, None, :, None]
    block_f = centre_f[:, :, None, None] + offsets[None, None, None, :]
    last_t = (valid_time - 1).clamp(min=0)[:, None, None, None]
    block_t = torch.minimum(block_t.clamp(min=0), last_t)
    block_f = block_f.clamp(0, num_freq_patches - 1)
    block_index = block_t * num_freq_patches + block_f  # [views, centres, block, block]
    # Unused centres write into one spare column, dropped below.
    block_index = torch.where(centre_used[:, :, None, None], block_index, torch.full_like(block_index, num_patches))
    in_block = torch.zeros(num_views, num_patches + 1, device=device, dtype=torch.float32)
    in_block.scatter_(1, block_index.reshape(num_views, -1), 1.0)
    in_block = in_block[:, :num_patches]

    # Exact count: block patches rank above other real patches, random order within each group,
    # padding last. Keeping the top `num_visible` drops a uniform subset of block patches when there
    # are too many and adds a uniform subset of other real patches when there are too few.
    real = torch.arange(num_patches, device=device)[None, :] < valid_patches[:, None]
    score = _uniform((num_views, num_patches), device=device, generator=generator, dtype=torch.float32) + in_block
    score = torch.where(real, score, torch.full_like(score, -1.0))
    order = score.argsort(dim=1, descending=True)
    rank_visible = torch.arange(num_patches, device=device)[None, :] < num_visible[:, None]
    visible = torch.zeros(num_views, num_patches, dtype=torch.bool, device=device)
    visible.scatter_(1, order, rank_visible)
    return visible, num_visible


def build_pretraining_targets(
    layer_outputs: Sequence[torch.Tensor],
    patch_mask: torch.Tensor | None = None,
    *,
    instance_norm: bool = True,
    layer_norm: bool = True,
) -> torch.Tensor:
    """EAT targets from teacher block outputs, in float32.

    Args:
        layer_outputs: the blocks to average, each `[B, P, D]` (patches only, CLS removed).
        patch_mask: `[B, P]`, True / 1 for real patches; statistics ignore the others, whose targets are 0.
        instance_norm: normalise each block's output per channel over the real patches (biased variance,
            epsilon 1e-5, like `F.instance_norm`) before averaging.
        layer_norm: LayerNorm without affine over the channels of the average.
    """
    if len(layer_outputs) == 0:
        raise ValueError("build_pretraining_targets needs at least one teacher layer output")
    weight = None
    count = None
    if patch_mask is not None:
        weight = patch_mask.to(dtype=torch.float32)[..., None]
        count = weight.sum(dim=1, keepdim=True).clamp(min=1.0)
    total = None
    for output in layer_outputs:
        output = output.float()
        if instance_norm:
            if weight is None:
                mean = output.mean(dim=1, keepdim=True)
                variance = output.var(dim=1, unbiased=False, keepdim=True)
            else:
                mean = (output * weight).sum(dim=1, keepdim=True) / count
                variance = ((output - mean).square() * weight).sum(dim=1, keepdim=True) / count
            output = (output - mean) * torch.rsqrt(variance + _TARGET_NORM_EPS)
        total = output if total is None else total + output
    targets = total / len(layer_outputs)
    if layer_norm:
        targets = F.layer_norm(targets, targets.shape[-1:], eps=_TARGET_NORM_EPS)
    if weight is not None:
        targets = targets * weight
    return targets


class EATDecoderConvBlock(nn.Module):
    """Grouped Conv2d -> LayerNorm over channels (no affine) -> GELU.

    `forward` runs it with `F.conv2d` on a channels-last grid `[N, T, F, C]`. The decoder's compiled paths
    use `banded_weight` with `forward_group_major` (cuBLAS) or `forward_triton` instead: the same arithmetic as
    banded matrix products (see [`EATPretrainingDecoder`]). `keep_autocast_dtype` is [`EATLayerNorm`]'s (used by `forward`).
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, groups: int, *, keep_autocast_dtype: bool = False
    ):
        super().__init__()
        self.kernel_size = kernel_size
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, groups=groups)
        self.norm = EATLayerNorm(
            out_channels, eps=_DECODER_LAYER_NORM_EPS, elementwise_affine=False, keep_autocast_dtype=keep_autocast_dtype
        )
        self.activation = nn.GELU()

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        num_time, num_freq = grid.shape[1], grid.shape[2]
        # A [N, T, F, C] tensor permuted to NCHW is already in channels-last layout; a channels-last
        # weight lets cuDNN convolve it without transposing copies.
        weight = self.conv.weight.contiguous(memory_format=torch.channels_last)
        out = F.conv2d(grid.permute(0, 3, 1, 2), weight, self.conv.bias, padding=self.kernel_size // 2,
                       groups=self.conv.groups)
        # Even kernels give one extra row and column; the reference trims the last ones (SamePad2d).
        out = out[:, :, :num_time, :num_freq].permute(0, 2, 3, 1)
        return self.activation(self.norm(out))

    def banded_weight(self, num_freq: int) -> torch.Tensor:
        """The convolution as `kernel_size` matrices per group, one per time tap: `[G, k, F * C_in/G, F * C_out/G]`.

        Row `f_in * C_in/G + i`, column `f_out * C_out/G + o` of tap `dt` holds `weight[g, o, i, dt, f_in - f_out + k//2]`
        (zero when that frequency tap is outside the kernel), so multiplying a group's frequency row
        `[F * C_in/G]` by it applies every frequency tap at once, the zero padding along frequency included.
        """
        conv = self.conv
        groups, k = conv.groups, self.kernel_size
        out_per_group, in_per_group = conv.out_channels // groups, conv.in_channels // groups
        weight = conv.weight.view(groups, out_per_group, in_per_group, k, k)  # [G, o, i, dt, df]
        freq = torch.arange(num_freq, device=weight.device)
        taps = torch.arange(k, device=weight.device)
        # A sum of products with a one-hot [f_in, f_out, df] rather than indexing: the indexing's backward
        # (index_put) followed by this permute is miscompiled by inductor's CPU code generation into heap
        # corruption (torch 2.13). Elementwise, so it stays in float32 under autocast, and exact: one term is the
        # weight, the others zeros.
        selector = (freq[:, None, None] - freq[None, :, None] + k // 2 == taps).to(weight.dtype)
        banded = (weight[:, :, :, :, None, None, :] * selector).sum(-1)  # [G, o, i, dt, f_in, f_out]
        return banded.permute(0, 3, 4, 2, 5, 1).reshape(groups, k, num_freq * in_per_group, num_freq * out_per_group)

    def forward_triton(self, grid: torch.Tensor) -> torch.Tensor:
        """Block on the channels-last grid `[N, T, F, C_in]` with the banded Triton kernels, before the residual.

        The convolution runs in `grid`'s dtype (the decoder passes the autocast dtype) and is rounded to it with
        the bias added in float32 (like a convolution's output); LayerNorm and GELU run in float32, as under
        autocast. Returns `[N, T, F, C_out]` in float32.
        """
        out = banded_grouped_conv(grid, self.banded_weight(grid.shape[2]), self.conv.bias, self.kernel_size // 2)
        out = out.float()
        return self.activation(F.layer_norm(out, out.shape[-1:], eps=self.norm.eps))

    def forward_group_major(self, hidden: torch.Tensor, *, bias_in_product_dtype: bool = False) -> torch.Tensor:
        """Block on the decoder's group-major layout (see [`EATPretrainingDecoder`]), before the residual.

        `hidden` `[G, R, F, C_in/G]`: rows of clips, each clip's time rows framed by `k // 2` zero rows.
        Returns `[G, R, F, C_out/G]` in float32; rows framing the clips hold values to be discarded.
        `bias_in_product_dtype`: see [`EATPretrainingDecoder`].
        """
        groups, num_rows, num_freq, _ = hidden.shape
        k, pad = self.kernel_size, self.kernel_size // 2
        # One product per group computes every time tap of every row: columns (tap, f_out, o).
        weight = self.banded_weight(num_freq).permute(0, 2, 1, 3).flatten(2)  # [G, F * C_in/G, k * F * C_out/G]
        per_tap = torch.bmm(hidden.flatten(2), weight).view(groups, num_rows, k, -1)
        # Output row r sums tap dt of input row r + dt - k//2. A roll wraps around the ends of the tensor,
        # which only reaches the framing rows of the first and last clip (discarded), and unlike a padded
        # copy it stays a pure index change that compiles into the summing kernel.
        out = per_tap[:, :, pad].float()
        for dt in range(k):
            if dt != pad:
                out = out + per_tap[:, :, dt].float().roll(pad - dt, dims=1)
        out = out.view(groups, num_rows, num_freq, -1)
        bias = self.conv.bias.view(groups, 1, 1, -1)
        if bias_in_product_dtype:
            # The backward then fans its gradient out to the bias and the taps in the product dtype (class docstring).
            out = (out.to(per_tap.dtype) + bias.to(per_tap.dtype)).float()
        else:
            # Rounded to the product dtype like a convolution's output (bf16 under autocast), then normalised in
            # float32 as autocast runs LayerNorm: the same precision path as `forward`.
            out = (out + bias.float()).to(per_tap.dtype).float()
        # LayerNorm over all channels = over (group, channel-in-group) at each (row, frequency).
        variance, mean = torch.var_mean(out, dim=(0, 3), unbiased=False, keepdim=True)
        return self.activation((out - mean) * torch.rsqrt(variance + self.norm.eps))


class EATPretrainingDecoder(nn.Module):
    """EAT's CNN decoder (data2vec 2.0 `Decoder2d`): residual conv blocks on the patch grid, then a Linear.

    A block's input is added to its output whenever their widths match (every block when
    `decoder_hidden_size == hidden_size`, as in EAT).

    Three implementations of the same arithmetic (`conv_implementation`; the default `"auto"` takes
    `"banded_triton"` inside `torch.compile` on CUDA when Triton is installed, `"banded_matmul"` inside
    `torch.compile` otherwise, and `"conv2d"` in eager mode):

    * `"banded_triton"`: the banded products of `"banded_matmul"` as Triton kernels
      ([`triton_banded_conv.banded_grouped_conv`]) that work on the channels-last grid in place, accumulate the
      time taps in registers and skip the zero band (1.5-1.8x the convolution's work, by tile width, instead of
      2.7x), so no group-major copy, no tap outputs and no row sums go through memory, and LayerNorm / GELU /
      residual between blocks are contiguous elementwise work. EAT-base step, 96 clips x 16 clones, bf16, compiled, one H100:
      302.8 ms instead of 348.8 ms, 1.6 GiB less peak memory. It needs CUDA (or Triton's CPU interpreter, as in
      the tests); `bias_in_product_dtype` does not apply (the kernels add the bias in float32 before rounding).

    * `"banded_matmul"`: the grid is kept group-major, `[G, N * (T + 2p), F, C/G]` with `p =
      k // 2` zero rows framing each clip's `T` time rows, so that one clip's frequency row of one group
      is a contiguous `F * C/G` vector. A grouped k x k convolution is then one batched matrix product per
      block, with a weight that is banded along frequency and holds every time tap in its columns
      ([`EATDecoderConvBlock.banded_weight`]), followed by a sum of the taps over row-shifted views. With
      EAT's 8 frequency patches this does 2.9x the convolution's multiply-adds, but as large dense GEMMs.
      Compiled, the EAT-base step (12 clips x 16 clones, bf16) took 48.7 ms instead of 67.0 ms on an
      H200: cuDNN's grouped convolution (48 channels per group) and its layout transforms had taken
      over half of the step. Eager, its many unfused elementwise passes make it slower (121 vs 92 ms).
    * `"conv2d"`: `F.conv2d` on a channels-last grid (the reference formulation).

    `bias_in_product_dtype` (`"banded_matmul"` only, default False) adds each convolution's bias after rounding the summed
    taps to the product dtype (bf16 under autocast), in that dtype, instead of in float32 before that rounding. It
    costs one more bf16 rounding (of the tap sum). In exchange, the gradient the backward needs in two kernels per
    block (the bias gradient, a reduction over rows, and the rolled tap gradients, which read neighbouring rows) is
    the bf16 one: inductor then stores it in bf16, where the default graph stores its float32 upcast (seen in the
    code inductor generates for this graph on CPU). Without autocast both are the same float32 arithmetic.

    Under autocast the banded path stores the grid between blocks in the autocast dtype (bf16), which is
    also the dtype the convolutions read; sums, LayerNorm and GELU run in float32 inside its fused kernels.
    The conv2d path follows autocast (float32 LayerNorm / GELU / residual stream), or keeps the autocast
    dtype throughout with `EATConfig.layer_norm_in_autocast_dtype`.
    """

    conv_implementations = ("auto", "banded_matmul", "banded_triton", "conv2d")

    def __init__(self, config: EATConfig):
        super().__init__()
        width = config.decoder_hidden_size or config.hidden_size
        self.blocks = nn.ModuleList(
            EATDecoderConvBlock(
                config.hidden_size if i == 0 else width, width, config.decoder_kernel_size, config.decoder_groups,
                keep_autocast_dtype=config.layer_norm_in_autocast_dtype,
            )
            for i in range(config.decoder_num_layers)
        )
        self.proj = nn.Linear(width, config.hidden_size)
        self.groups = config.decoder_groups
        self.kernel_size = config.decoder_kernel_size
        self.conv_implementation = "auto"
        self.bias_in_product_dtype = False

    def forward(self, grid: torch.Tensor, grid_mask: torch.Tensor | None = None) -> torch.Tensor:
        """`grid` `[N, T, F, hidden]` -> predictions `[N, T, F, hidden]`.

        `grid_mask` `[N, T, F]` (1 = real patch): padded positions are zeroed after every block, so
        that they act like the convolution's zero padding and real positions do not see them.
        """
        if self.conv_implementation not in self.conv_implementations:
            raise ValueError(
                f"conv_implementation must be one of {self.conv_implementations}, got {self.conv_implementation!r}"
            )
        implementation = self.conv_implementation
        if implementation == "auto":
            if not torch.compiler.is_compiling():
                implementation = "conv2d"
            elif grid.is_cuda and triton_available():
                implementation = "banded_triton"
            else:
                implementation = "banded_matmul"
        if implementation == "banded_matmul":
            hidden = self._blocks_banded_matmul(grid, grid_mask)
        else:
            hidden = self._blocks_channels_last(grid, grid_mask, triton_kernels=implementation == "banded_triton")
        return self.proj(hidden)

    def _blocks_channels_last(
        self, grid: torch.Tensor, grid_mask: torch.Tensor | None, triton_kernels: bool
    ) -> torch.Tensor:
        # The Triton path keeps the grid between blocks in the autocast dtype, the precision path of
        # `_blocks_banded_matmul`; the conv2d path follows autocast (the reference formulation).
        state_dtype = (active_autocast_dtype(grid.device.type) or grid.dtype) if triton_kernels else None
        keep = None if grid_mask is None else grid_mask[..., None].to(grid.dtype)
        hidden = grid if keep is None else grid * keep
        if state_dtype is not None:
            hidden = hidden.to(state_dtype)
        for block in self.blocks:
            out = block.forward_triton(hidden) if triton_kernels else block(hidden)
            if out.shape[-1] == hidden.shape[-1]:
                out = out + hidden
            hidden = out if keep is None else out * keep.to(out.dtype)
            if state_dtype is not None:
                hidden = hidden.to(state_dtype)
        return hidden

    def _blocks_banded_matmul(self, grid: torch.Tensor, grid_mask: torch.Tensor | None) -> torch.Tensor:
        num_views, num_time, num_freq, channels = grid.shape
        groups, pad = self.groups, self.kernel_size // 2
        framed_time = num_time + 2 * pad
        # Under autocast the grid between blocks is kept in the autocast dtype (the GEMMs' input dtype):
        # half the memory traffic of float32 for the same GEMM inputs; norms and sums still run in float32.
        state_dtype = active_autocast_dtype(grid.device.type) or grid.dtype

        # keep: 1 at real patches, 0 at padded patches and at the zero rows framing each clip.
        keep = grid.new_ones(num_views, num_time, num_freq) if grid_mask is None else grid_mask.to(grid.dtype)
        keep = F.pad(keep, (0, 0, pad, pad)).view(1, num_views * framed_time, num_freq, 1)

        hidden = grid.view(num_views, num_time, num_freq, groups, channels // groups).permute(3, 0, 1, 2, 4)
        hidden = F.pad(hidden, (0, 0, 0, 0, pad, pad)).reshape(groups, num_views * framed_time, num_freq, -1)
        if grid_mask is not None:
            hidden = hidden * keep
        hidden = hidden.to(state_dtype)
        for block in self.blocks:
            out = block.forward_group_major(hidden, bias_in_product_dtype=self.bias_in_product_dtype)  # float32
            if out.shape[-1] == hidden.shape[-1]:
                out = out + hidden.float()
            hidden = (out * keep).to(state_dtype)
        hidden = hidden.view(groups, num_views, framed_time, num_freq, -1)[:, :, pad : pad + num_time]
        return hidden.permute(1, 2, 3, 0, 4).reshape(num_views, num_time, num_freq, -1)


@dataclass
class EATForPreTrainingOutput(ModelOutput):
    """Output of [`EATForPreTraining`].

    Args:
        loss (`torch.FloatTensor`, scalar): `frame_loss_weight * frame_loss + utterance_loss_weight * utterance_loss`.
        frame_loss (`torch.FloatTensor`, scalar): decoder vs target at masked patches.
        utterance_loss (`torch.FloatTensor`, scalar): student CLS vs the clip's mean target.
        visible_mask (`torch.BoolTensor` of shape `(batch * num_mask_clones, patches)`): True where the
            student saw the patch; clone `c` of clip `b` is row `b * num_mask_clones + c`.
        target_std (`torch.FloatTensor`, scalar): mean over channels of the targets' std over real patches
            (collapse diagnostic, as data2vec logs it).
        prediction_std (`torch.FloatTensor`, scalar): the same for the decoder outputs at the masked patches of
            each clip's first clone.
    """

    loss: torch.FloatTensor | None = None
    frame_loss: torch.FloatTensor | None = None
    utterance_loss: torch.FloatTensor | None = None
    visible_mask: torch.BoolTensor | None = None
    target_std: torch.FloatTensor | None = None
    prediction_std: torch.FloatTensor | None = None


def _channel_std(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean over channels of the per-channel std of `values` `[..., D]` over rows weighted by `weight` `[...]`."""
    values = values.reshape(-1, values.shape[-1]).float()
    weight = weight.reshape(-1, 1).float()
    count = weight.sum()
    mean = (values * weight).sum(dim=0) / count.clamp(min=1.0)
    variance = ((values - mean).square() * weight).sum(dim=0) / (count - 1.0).clamp(min=1.0)
    return torch.sqrt(variance + 1e-6).mean()


def eat_pretraining_flops(config: EATConfig, batch_size: int, num_frames: int) -> dict[str, float]:
    """Analytic FLOPs of one pretraining step on `batch_size` full clips of `num_frames` frames.

    Counts matrix multiplications and convolutions (2 FLOPs per multiply-add): student and decoder
    forward + backward (3x forward), teacher forward only. Elementwise work is ignored, as MFU
    conventions do. Returns the parts and their `total`.
    """
    hidden = config.hidden_size
    mlp = config.intermediate_size
    layers = config.num_hidden_layers
    clones = config.num_mask_clones
    num_patches = config.num_patches(num_frames)
    num_visible = max(1, int(num_patches * (1.0 - config.mask_ratio)))
    patch_area = config.patch_size**2

    def encoder_forward(tokens: int) -> float:
        projections = 2 * tokens * (4 * hidden * hidden + 2 * hidden * mlp)
        attention = 2 * 2 * tokens * tokens * hidden
        return float(layers * (projections + attention))

    patch_embed = 2.0 * num_patches * patch_area * hidden
    width = config.decoder_hidden_size or hidden
    kernel_area = config.decoder_kernel_size**2
    decoder = 0.0
    for i in range(config.decoder_num_layers):
        in_width = hidden if i == 0 else width
        decoder += 2.0 * num_patches * width * (in_width // config.decoder_groups) * kernel_area
    decoder += 2.0 * num_patches * width * hidden
    parts = {
        "student": batch_size * (3 * clones * encoder_forward(1 + num_visible) + 3 * patch_embed),
        "decoder": batch_size * 3 * clones * decoder,
        "teacher": batch_size * (encoder_forward(1 + num_patches) + patch_embed),
    }
    parts["total"] = sum(parts.values())
    return parts


class EATForPreTraining(EATPreTrainedModel):
    """EAT with its pretraining objective (student, CNN decoder, EMA teacher). See the module docstring.

    Train it with any loop that calls `update_teacher(num_updates)` after each optimizer step
    (`llm_aac.train.ema.EATTeacherEMACallback` does it for `Trainer`). `model.eat` is the encoder to
    keep: `model.eat.save_pretrained(path)` writes an `EATModel` folder.
    """

    def __init__(self, config: EATConfig):
        super().__init__(config)
        self.eat = EATModel(config)
        self.decoder = EATPretrainingDecoder(config)
        self.teacher = EATModel(config)
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        self.post_init()
        self._copy_student_to_teacher()

    @classmethod
    def from_encoder(cls, encoder: EATModel | str, **config_overrides) -> "EATForPreTraining":
        """Continue pretraining an existing encoder: student and teacher both start from its weights.

        Args:
            encoder: an [`EATModel`] or a folder / Hub id loadable with `EATModel.from_pretrained`.
            config_overrides: pretraining fields to change (e.g. `num_mask_clones=8`).
        """
        if not isinstance(encoder, EATModel):
            encoder = EATModel.from_pretrained(encoder)
        config = EATConfig.from_dict({**encoder.config.to_dict(), **config_overrides})
        model = cls(config)
        model.eat.load_state_dict(encoder.state_dict())
        model._copy_student_to_teacher()
        return model

    @torch.no_grad()
    def _copy_student_to_teacher(self) -> None:
        student_state = self.eat.state_dict()
        if any(t.is_meta for t in student_state.values()):
            return  # built on the meta device by from_pretrained: the checkpoint fills both
        self.teacher.load_state_dict(student_state)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, EATPretrainingDecoder):
            # The reference keeps torch's default init for the decoder convolutions and projection.
            for layer in module.modules():
                if isinstance(layer, (nn.Conv2d, nn.Linear)):
                    init.kaiming_uniform_(layer.weight, a=math.sqrt(5))
                    fan_in = layer.weight[0].numel()
                    bound = 1.0 / math.sqrt(fan_in)
                    init.uniform_(layer.bias, -bound, bound)
            return
        if isinstance(module, nn.LayerNorm) and module.weight is None:
            return  # the decoder's norms have no affine parameters
        super()._init_weights(module)

    def train(self, mode: bool = True) -> "EATForPreTraining":
        super().train(mode)
        self.teacher.eval()  # the teacher never uses dropout / drop-path
        return self

    def get_input_embeddings(self) -> nn.Module:
        return self.eat.get_input_embeddings()

    def floating_point_ops(self, input_dict: dict, exclude_embeddings: bool = True) -> int:
        """Analytic FLOPs of a training step on this batch (used by `Trainer` for `total_flos`)."""
        features = input_dict.get(self.main_input_name)
        if features is None or features.ndim != 3:
            return 0
        return int(eat_pretraining_flops(self.config, features.shape[0], features.shape[1])["total"])

    # ------------------------------------------------------------------------------- EMA teacher

    def ema_decay(self, num_updates: int) -> float:
        """Teacher decay used for the update that brings the optimizer to `num_updates` steps."""
        config = self.config
        return ema_decay_at(num_updates, config.ema_decay, config.ema_end_decay, config.ema_anneal_end_step)

    @torch.no_grad()
    def update_teacher(self, num_updates: int) -> float:
        """One EMA step after the optimizer update number `num_updates` (1 after the first update).

        Trainable student tensors: `teacher = decay * teacher + (1 - decay) * student` in float32;
        frozen ones and buffers (the position table) are copied. Returns the decay used.
        """
        decay = self.ema_decay(num_updates)
        if decay >= 1.0:
            return decay
        student_params = dict(self.eat.named_parameters())
        moving_teacher, moving_student = [], []
        for name, teacher_param in self.teacher.named_parameters():
            student_param = student_params[name]
            if teacher_param.dtype != torch.float32:
                raise ValueError(
                    f"the EMA teacher must stay in float32 (teacher.{name} is {teacher_param.dtype}): an EMA step of "
                    f"{1 - decay:.1e} is below bfloat16/float16 resolution. Keep the model in float32 and train with "
                    "autocast (Trainer's --bf16) instead of casting it."
                )
            if student_param.requires_grad:
                moving_teacher.append(teacher_param)
                moving_student.append(student_param.detach().to(torch.float32))
            else:
                teacher_param.copy_(student_param)
        if moving_teacher:
            torch._foreach_lerp_(moving_teacher, moving_student, 1.0 - decay)
        student_buffers = dict(self.eat.named_buffers())
        for name, teacher_buffer in self.teacher.named_buffers():
            teacher_buffer.copy_(student_buffers[name])
        return decay

    # ---------------------------------------------------------------------------------- forward

    @staticmethod
    def _check_visible_mask(
        visible_mask: torch.Tensor, num_views: int, num_patches: int, patch_mask: torch.Tensor | None, clones: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if tuple(visible_mask.shape) != (num_views, num_patches):
            raise ValueError(
                f"visible_mask must have shape (batch * num_mask_clones, patches) = {(num_views, num_patches)}, "
                f"got {tuple(visible_mask.shape)}"
            )
        visible = visible_mask.to(dtype=torch.bool)
        num_visible = visible.sum(dim=1)
        if patch_mask is not None:
            on_padding = (visible & ~patch_mask.repeat_interleave(clones, dim=0)).any(dim=1)
            if bool(on_padding.any()):
                raise ValueError(f"visible_mask shows padded patches in views {on_padding.nonzero().flatten().tolist()}")
        if bool((num_visible == 0).any()):
            raise ValueError(f"visible_mask shows no patch in views {(num_visible == 0).nonzero().flatten().tolist()}")
        return visible, num_visible

    def forward(
        self,
        input_features: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        visible_mask: torch.Tensor | None = None,
        return_dict: bool | None = None,
    ) -> EATForPreTrainingOutput | tuple:
        r"""
        Args:
            input_features (`torch.FloatTensor` of shape `(batch, frames, bins)`):
                normalised spectrogram frames, `frames` a multiple of `patch_size`.
            attention_mask (`torch.Tensor` of shape `(batch, frames)`, *optional*):
                1 for real frames, 0 for padding. None (or all ones) takes the fastest path.
            visible_mask (`torch.BoolTensor` of shape `(batch * num_mask_clones, patches)`, *optional*):
                precomputed masks (True = shown to the student; clone `c` of clip `b` is row
                `b * num_mask_clones + c`); drawn with [`compute_inverse_block_mask`] when None.
        """
        config = self.config
        return_dict = return_dict if return_dict is not None else config.return_dict
        self.eat.check_input_features(input_features, attention_mask)
        batch_size, num_frames, _ = input_features.shape
        num_time = num_frames // config.patch_size
        num_freq = config.num_freq_patches
        num_patches = num_time * num_freq
        clones = config.num_mask_clones
        num_views = batch_size * clones
        hidden = config.hidden_size
        device = input_features.device

        valid_time = None  # [B] real time patches, None when nothing is padded
        patch_mask = None  # [B, P] bool
        if attention_mask is not None:
            time_mask = attention_mask.reshape(batch_size, num_time, config.patch_size).bool().any(dim=-1)
            valid_time = time_mask.sum(dim=1)
            any_empty, all_real = torch.stack([(valid_time == 0).any(), time_mask.all()]).tolist()
            if any_empty:
                empty_rows = (valid_time == 0).nonzero().flatten().tolist()
                raise ValueError(f"attention_mask marks no real frame for batch rows {empty_rows}")
            if all_real:
                valid_time = None
            else:
                patch_mask = time_mask.repeat_interleave(num_freq, dim=1)

        # ---- teacher: targets from the whole clips
        with torch.no_grad():
            teacher_tokens = self.teacher.embeddings(input_features)
            teacher_token_mask = None
            if patch_mask is not None:
                teacher_token_mask = torch.cat([patch_mask.new_ones(batch_size, 1), patch_mask], dim=1)
            teacher_out = self.teacher.encoder(teacher_tokens, attention_mask=teacher_token_mask, output_ffn_states=True)
            top_k = config.target_top_k_layers or config.num_hidden_layers
            targets = build_pretraining_targets(
                [state[:, 1:] for state in teacher_out.ffn_states[-top_k:]],
                patch_mask,
                instance_norm=config.target_instance_norm,
                layer_norm=config.target_layer_norm,
            )  # [B, P, D] float32
            if patch_mask is None:
                utterance_targets = targets.mean(dim=1)
            else:
                real_count = patch_mask.sum(dim=1, keepdim=True).clamp(min=1)
                utterance_targets = targets.sum(dim=1) / real_count

        # ---- student: one mask per clone, only visible patches + CLS
        if visible_mask is None:
            view_valid_time = None if valid_time is None else valid_time.repeat_interleave(clones)
            visible, num_visible = compute_inverse_block_mask(
                num_views,
                num_time,
                num_freq,
                valid_time_patches=view_valid_time,
                mask_ratio=config.mask_ratio,
                mask_ratio_adjust=config.mask_ratio_adjust,
                block_size=config.mask_block_size,
                device=device,
            )
            # Without padding every view has exactly this many visible patches; with padding it bounds them,
            # and knowing it without reading the masks back keeps the step free of host syncs.
            max_visible = max(1, int(num_patches * (1.0 - config.mask_ratio)))
            same_count = valid_time is None
        else:
            visible, num_visible = self._check_visible_mask(visible_mask, num_views, num_patches, patch_mask, clones)
            min_visible, max_visible = torch.stack([num_visible.min(), num_visible.max()]).tolist()
            same_count = min_visible == max_visible
        positions = torch.arange(num_patches, device=device)
        # Visible patches first, each group in grid order.
        visible_ids = torch.where(visible, positions, positions + num_patches).sort(dim=1).values[:, :max_visible]
        visible_ids = visible_ids % num_patches
        slot_used = None
        if not same_count:
            slot_used = torch.arange(max_visible, device=device)[None, :] < num_visible[:, None]

        patch_tokens = self.eat.embeddings.embed_patches(input_features)  # [B, P, D], computed once per clip
        view_clip = torch.arange(batch_size, device=device).repeat_interleave(clones)
        flat_ids = (view_clip[:, None] * num_patches + visible_ids).reshape(-1)
        student_patches = patch_tokens.reshape(batch_size * num_patches, hidden).index_select(0, flat_ids)
        student_tokens = self.eat.embeddings.prepend_cls_token(student_patches.view(num_views, max_visible, hidden))
        student_token_mask = None
        if slot_used is not None:
            student_token_mask = torch.cat([slot_used.new_ones(num_views, 1), slot_used], dim=1)
        student_out = self.eat.encoder(student_tokens, attention_mask=student_token_mask).last_hidden_state

        # ---- decoder: student outputs back on the grid, noise at masked positions
        student_patch_out = student_out[:, 1:]
        # Unused slots (padded batches only) write into one spare row, dropped before decoding. The grid takes the
        # student's output dtype: float32 under autocast, bf16 with layer_norm_in_autocast_dtype (the banded
        # decoder rounds it to bf16 before its first use either way).
        rows = num_patches if slot_used is None else num_patches + 1
        grid = torch.empty(num_views, rows, hidden, device=device, dtype=student_patch_out.dtype)
        grid.normal_(0.0, config.mask_noise_std)
        scatter_ids = visible_ids if slot_used is None else torch.where(slot_used, visible_ids, num_patches)
        grid = grid.scatter(1, scatter_ids[..., None].expand(-1, -1, hidden), student_patch_out)
        grid = grid[:, :num_patches].reshape(num_views, num_time, num_freq, hidden)
        if slot_used is not None:
            grid = grid.contiguous()  # the channels-last convolutions want dense [N, T, F, D]
        grid_mask = None
        if patch_mask is not None:
            grid_mask = patch_mask.repeat_interleave(clones, dim=0).view(num_views, num_time, num_freq)
        predictions = self.decoder(grid, grid_mask).reshape(batch_size, clones, num_patches, hidden)

        # ---- losses
        scale = config.loss_scale if config.loss_scale is not None else 1.0 / math.sqrt(hidden)
        masked = ~visible
        if patch_mask is not None:
            masked = masked & patch_mask.repeat_interleave(clones, dim=0)
        masked_weight = masked.view(batch_size, clones, num_patches).to(torch.float32)
        num_masked = masked_weight.sum()
        patch_errors = (predictions.float() - targets[:, None]).square().sum(dim=-1) * scale  # [B, C, P]
        frame_loss = (patch_errors * masked_weight).sum() / num_masked.clamp(min=1.0)

        cls_out = student_out[:, 0].float().view(batch_size, clones, hidden)
        view_errors = (cls_out - utterance_targets[:, None]).square().sum(dim=-1) * scale  # [B, C]
        utterance_loss = view_errors.sum() if config.utterance_loss_reduction == "sum" else view_errors.mean()

        loss = config.frame_loss_weight * frame_loss + config.utterance_loss_weight * utterance_loss

        with torch.no_grad():
            target_weight = patch_mask if patch_mask is not None else targets.new_ones(batch_size, num_patches)
            target_std = _channel_std(targets, target_weight)
            # First clone of each clip only: the same statistic at 1/num_mask_clones of the memory traffic.
            prediction_std = _channel_std(predictions[:, 0].detach(), masked_weight[:, 0])

        output = EATForPreTrainingOutput(
            loss=loss,
            frame_loss=frame_loss.detach(),
            utterance_loss=utterance_loss.detach(),
            visible_mask=visible,
            target_std=target_std,
            prediction_std=prediction_std,
        )
        return output if return_dict else output.to_tuple()


__all__ = [
    "EATDecoderConvBlock",
    "EATForPreTraining",
    "EATForPreTrainingOutput",
    "EATPretrainingDecoder",
    "build_pretraining_targets",
    "compute_inverse_block_mask",
    "eat_pretraining_flops",
    "ema_decay_at",
]
