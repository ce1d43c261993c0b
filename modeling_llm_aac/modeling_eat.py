"""EAT (Efficient Audio Transformer) as native transformers models.

Architecture of the released EAT checkpoints (fairseq `data2vec_multi` with an image-modality
encoder on 1-channel spectrograms):

* `Conv2d(1, D, 16, stride 16)` on `[B, 1, frames, bins]`, patches flattened time-major
  (patch `t * (bins / 16) + f`), so the real patches of a right-padded clip are a prefix;
* fixed 2-D sin-cos positions for `max_length` time patches, sliced to the input length and added
  to the patches only;
* one CLS token prepended after the positions, one LayerNorm (`pre_norm`) before block 0;
* post-LN blocks: `x = norm1(x + attn(x)); x = norm2(x + mlp(x))`, no final LayerNorm.

Padding: a frame mask `[B, frames]` becomes a key-padding mask over patches (a time patch is real
when any of its frames is), so a clip gives the same outputs alone and padded inside a batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import ModelOutput

from .configuration_eat import EATConfig


def build_2d_sincos_positions(hidden_size: int, num_time_patches: int, num_freq_patches: int) -> torch.Tensor:
    """Fixed 2-D sin-cos position table `[num_time_patches * num_freq_patches, hidden_size]`, row `t * F + f`.

    Same layout as EAT/MAE: the first half of the channels encodes the frequency index, the second
    half the time index; each half is `[sin(p * w_k), cos(p * w_k)]` with `w_k = 10000^(-k / (D / 4))`.
    Computed in float32 like the reference; float32 `pow` / `sin` rounding still differs between
    libraries by up to ~1e-4 at 768 time patches, which is why the table is a persistent buffer:
    converted checkpoints keep the exact table they were trained with.
    """
    if hidden_size % 4:
        raise ValueError(f"hidden_size must be a multiple of 4 for 2-D sin-cos positions, got {hidden_size}")
    quarter = hidden_size // 4
    omega = torch.arange(quarter, dtype=torch.float32) / quarter
    omega = 1.0 / torch.pow(torch.tensor(10000.0, dtype=torch.float32), omega)

    time_index = torch.arange(num_time_patches, dtype=torch.float32).repeat_interleave(num_freq_patches)
    freq_index = torch.arange(num_freq_patches, dtype=torch.float32).repeat(num_time_patches)

    def encode(positions: torch.Tensor) -> torch.Tensor:
        angles = positions[:, None] * omega[None, :]
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)

    return torch.cat([encode(freq_index), encode(time_index)], dim=1)


def frame_mask_to_patch_mask(attention_mask: torch.Tensor, patch_size: int, num_freq_patches: int) -> torch.Tensor:
    """Frame mask `[B, frames]` (1 = real frame) -> patch mask `[B, (frames / patch_size) * num_freq_patches]` (bool).

    A time patch is real when any of its frames is real, so a clip whose length is not a multiple of
    `patch_size` keeps its last, partly padded patch whether it is encoded alone or in a batch.
    """
    batch_size, num_frames = attention_mask.shape
    time_mask = attention_mask.reshape(batch_size, num_frames // patch_size, patch_size).bool().any(dim=-1)
    return time_mask.repeat_interleave(num_freq_patches, dim=1)


def active_autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype `torch.autocast` computes in on `device_type`, or None when autocast is off there."""
    if device_type == "meta":
        return None  # autocast keeps no state for the meta device (asking raises)
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None


class EATLayerNorm(nn.LayerNorm):
    """`nn.LayerNorm` that can return the autocast dtype under autocast (`EATConfig.layer_norm_in_autocast_dtype`).

    Autocast puts `layer_norm` on its float32 list on CUDA: bf16 input is upcast and the output is float32.
    In EAT's post-LN blocks (`x = norm(x + f(x))`) that makes the whole residual stream float32, so every
    add / LayerNorm kernel around it and every tensor saved for backward there moves twice the bytes, and
    each matrix product first casts its float32 input back to bf16. With `keep_autocast_dtype=True` the input,
    weight and bias are cast to the autocast dtype and `F.layer_norm` runs with autocast off, which still
    accumulates mean and variance (and the affine step) in float32 inside the kernel but writes the autocast
    dtype. Outside autocast both settings are plain `nn.LayerNorm`.
    """

    def __init__(
        self,
        normalized_shape: int | tuple[int, ...],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        *,
        keep_autocast_dtype: bool = False,
    ):
        super().__init__(normalized_shape, eps=eps, elementwise_affine=elementwise_affine)
        self.keep_autocast_dtype = keep_autocast_dtype

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        dtype = active_autocast_dtype(hidden_states.device.type) if self.keep_autocast_dtype else None
        if dtype is None:
            return super().forward(hidden_states)
        weight = None if self.weight is None else self.weight.to(dtype)
        bias = None if self.bias is None else self.bias.to(dtype)
        with torch.autocast(hidden_states.device.type, enabled=False):
            return F.layer_norm(hidden_states.to(dtype), self.normalized_shape, weight, bias, self.eps)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, keep_autocast_dtype={self.keep_autocast_dtype}"


def eat_layer_norm(config: EATConfig) -> EATLayerNorm:
    """The LayerNorm of EAT's encoder and heads: width `hidden_size`, `layer_norm_eps`, affine."""
    return EATLayerNorm(
        config.hidden_size, eps=config.layer_norm_eps, keep_autocast_dtype=config.layer_norm_in_autocast_dtype
    )


@dataclass
class EATModelOutput(ModelOutput):
    """Output of [`EATModel`].

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch, 1 + patches, hidden_size)`):
            output of the last block; CLS first, then patches time-major (`t * (bins / 16) + f`).
        hidden_states (`tuple(torch.FloatTensor)`, returned with `output_hidden_states=True`):
            the input of block 0 (embeddings after `pre_norm`) and the output of every block.
        attentions (`tuple(torch.FloatTensor)`, returned with `output_attentions=True`, eager attention only):
            attention probabilities of every block, `(batch, heads, 1 + patches, 1 + patches)`.
        attention_mask (`torch.LongTensor` of shape `(batch, 1 + patches)`):
            1 for the CLS token and real patches, 0 for patches made only of padding frames.
        ffn_states (`tuple(torch.FloatTensor)`, returned with `output_ffn_states=True`):
            every block's MLP output before its residual add (the EAT pretraining targets).
    """

    last_hidden_state: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    attention_mask: torch.LongTensor | None = None
    ffn_states: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class EATEncoderOutput(ModelOutput):
    """Output of [`EATEncoder`]: same fields as [`EATModelOutput`] without the mask."""

    last_hidden_state: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    ffn_states: tuple[torch.FloatTensor, ...] | None = None


class EATEmbeddings(nn.Module):
    """Patch embedding + fixed positions + CLS token (no LayerNorm: that is [`EATEncoder`]'s `pre_norm`).

    The two steps are exposed separately because EAT pretraining drops masked patches between them.
    """

    def __init__(self, config: EATConfig):
        super().__init__()
        self.config = config
        self.patch_size = config.patch_size
        self.num_freq_patches = config.num_freq_patches
        self.patch_embedding = nn.Conv2d(
            1, config.hidden_size, kernel_size=config.patch_size, stride=config.patch_size
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        # Persistent so that converted checkpoints carry the exact table they were trained with.
        self.register_buffer(
            "position_embeddings",
            torch.zeros(1, config.max_length * config.num_freq_patches, config.hidden_size),
            persistent=True,
        )

    def embed_patches(self, input_features: torch.Tensor) -> torch.Tensor:
        """`[B, frames, bins]` -> patch tokens with positions `[B, (frames / p) * (bins / p), D]`."""
        weight = self.patch_embedding.weight  # [D, 1, p, p]
        batch_size, num_frames, num_bins = input_features.shape
        size = self.patch_size
        # The patches do not overlap, so the stride-p convolution is one matrix product over flattened
        # (frame, bin) patches: same arithmetic, much faster on GPUs than cuDNN's strided convolution.
        patches = input_features.to(dtype=weight.dtype).reshape(
            batch_size, num_frames // size, size, num_bins // size, size
        )
        patches = patches.transpose(2, 3).reshape(batch_size, -1, size * size)  # time-major: t * (bins / p) + f
        patches = nn.functional.linear(patches, weight.reshape(weight.shape[0], -1), self.patch_embedding.bias)
        positions = self.position_embeddings[:, : patches.shape[1]]
        return patches + positions.to(dtype=patches.dtype)

    def prepend_cls_token(self, patch_tokens: torch.Tensor) -> torch.Tensor:
        """`[B, N, D]` -> `[B, 1 + N, D]`; the CLS token carries no position."""
        cls = self.cls_token.to(dtype=patch_tokens.dtype).expand(patch_tokens.shape[0], -1, -1)
        return torch.cat([cls, patch_tokens], dim=1)

    def forward(self, input_features: torch.Tensor) -> torch.Tensor:
        return self.prepend_cls_token(self.embed_patches(input_features))


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain attention; `attention_mask` is a boolean `[B, 1, 1, K]` (True = attend) or an additive float mask."""
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask
    # Softmax in float32 as the reference does, which keeps bf16/fp16 runs stable.
    probabilities = nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    probabilities = nn.functional.dropout(probabilities, p=dropout, training=module.training)
    attn_output = torch.matmul(probabilities, value).transpose(1, 2).contiguous()
    return attn_output, probabilities


class EATAttention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (as in the checkpoints)."""

    def __init__(self, config: EATConfig):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_probs_dropout_prob
        # Read by transformers' SDPA wrapper: this is an encoder, never causal.
        self.is_causal = False
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=config.qkv_bias)
        self.proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch_size, seq_len, hidden_size = hidden_states.shape
        qkv = self.qkv(hidden_states).reshape(batch_size, seq_len, 3, self.num_heads, self.head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, H, N, head_dim]

        implementation = self.config._attn_implementation or "sdpa"
        if output_attentions and implementation != "eager":
            # Only the eager path materialises the probabilities.
            implementation = "eager"
        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)

        attn_output, attn_weights = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.attention_dropout if self.training else 0.0,
            scaling=self.scaling,
            is_causal=False,
        )
        attn_output = attn_output.reshape(batch_size, seq_len, hidden_size)
        return self.proj(attn_output), attn_weights


class EATMLP(nn.Module):
    def __init__(self, config: EATConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.activation = ACT2FN[config.hidden_act]
        self.activation_dropout = nn.Dropout(config.activation_dropout)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation_dropout(self.activation(self.fc1(hidden_states))))


class EATDropPath(nn.Module):
    """Stochastic depth: drops a whole residual branch per sample while training."""

    def __init__(self, drop_prob: float):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return hidden_states
        keep_prob = 1.0 - self.drop_prob
        shape = (hidden_states.shape[0],) + (1,) * (hidden_states.ndim - 1)
        keep = hidden_states.new_empty(shape).bernoulli_(keep_prob)
        return hidden_states * keep / keep_prob

    def extra_repr(self) -> str:
        return f"p={self.drop_prob}"


class EATLayer(GradientCheckpointingLayer):
    """Post-LN block: `x = norm1(x + attn(x)); x = norm2(x + mlp(x))`.

    Returns the new hidden states, the MLP output before its residual add (EAT's pretraining target)
    and the attention probabilities (eager attention with `output_attentions=True`, else None).
    """

    def __init__(self, config: EATConfig, drop_path_rate: float = 0.0):
        super().__init__()
        self.attention = EATAttention(config)
        self.post_attention_layernorm = eat_layer_norm(config)
        self.mlp = EATMLP(config)
        self.post_mlp_layernorm = eat_layer_norm(config)
        self.hidden_dropout = nn.Dropout(config.hidden_dropout_prob)
        self.drop_path = EATDropPath(drop_path_rate)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        attn_output, attn_weights = self.attention(hidden_states, attention_mask, output_attentions)
        hidden_states = self.post_attention_layernorm(
            hidden_states + self.drop_path(self.hidden_dropout(attn_output))
        )
        ffn_output = self.mlp(hidden_states)
        hidden_states = self.post_mlp_layernorm(hidden_states + self.drop_path(self.hidden_dropout(ffn_output)))
        return hidden_states, ffn_output, attn_weights


class EATEncoder(nn.Module):
    """`pre_norm` LayerNorm followed by the blocks; no final LayerNorm.

    `attention_mask` is a key-padding mask over the token sequence `[B, N]` (1 / True = real token);
    None means every token is real.
    """

    def __init__(self, config: EATConfig):
        super().__init__()
        self.config = config
        self.pre_norm = eat_layer_norm(config)
        num_layers = config.num_hidden_layers
        rates = [config.drop_path_rate * i / max(num_layers - 1, 1) for i in range(num_layers)]
        self.layers = nn.ModuleList([EATLayer(config, drop_path_rate=rate) for rate in rates])
        self.gradient_checkpointing = False

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        output_ffn_states: bool = False,
    ) -> EATEncoderOutput:
        key_mask = None
        if attention_mask is not None:
            if attention_mask.shape != hidden_states.shape[:2]:
                raise ValueError(
                    f"EATEncoder attention_mask must have shape {tuple(hidden_states.shape[:2])} "
                    f"(batch, tokens), got {tuple(attention_mask.shape)}"
                )
            key_mask = attention_mask.bool()[:, None, None, :]  # [B, 1, 1, N], broadcast over heads and queries

        hidden_states = self.pre_norm(hidden_states)
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        all_attentions = () if output_attentions else None
        all_ffn_states = () if output_ffn_states else None

        for layer in self.layers:
            hidden_states, ffn_output, attn_weights = layer(hidden_states, key_mask, output_attentions)
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            if output_attentions:
                all_attentions += (attn_weights,)
            if output_ffn_states:
                all_ffn_states += (ffn_output,)

        return EATEncoderOutput(
            last_hidden_state=hidden_states,
            hidden_states=all_hidden_states,
            attentions=all_attentions,
            ffn_states=all_ffn_states,
        )


class EATPreTrainedModel(PreTrainedModel):
    config_class = EATConfig
    config: EATConfig
    base_model_prefix = "eat"
    main_input_name = "input_features"
    input_modalities = ("audio",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["EATLayer"]
    _supports_sdpa = True
    _supports_flash_attn = False
    _supports_flex_attn = False

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """EAT's initialisation: N(0, 0.02) linears, xavier patch projection, N(0, 1) CLS, sin-cos positions."""
        config = self.config
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=config.initializer_range)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, EATEmbeddings):
            # The patch projection is initialised like a linear layer on flattened patches (MAE / EAT).
            weight = module.patch_embedding.weight
            if not getattr(weight, "_is_hf_initialized", False):
                flat = torch.empty(weight.shape[0], weight[0].numel(), dtype=weight.dtype, device=weight.device)
                nn.init.xavier_uniform_(flat)
                init.copy_(weight, flat.view_as(weight))
            init.zeros_(module.patch_embedding.bias)
            init.normal_(module.cls_token, mean=0.0, std=config.cls_token_initializer_range)
            table = build_2d_sincos_positions(config.hidden_size, config.max_length, config.num_freq_patches)
            init.copy_(module.position_embeddings, table.unsqueeze(0).to(module.position_embeddings.device))


class EATModel(EATPreTrainedModel):
    """The EAT encoder. Input `input_features [batch, frames, bins]` as the feature extractor returns them."""

    def __init__(self, config: EATConfig):
        super().__init__(config)
        self.embeddings = EATEmbeddings(config)
        self.encoder = EATEncoder(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embedding

    def check_input_features(self, input_features: torch.Tensor, attention_mask: torch.Tensor | None) -> None:
        """Raise a ValueError naming the problem when the input cannot be encoded."""
        config = self.config
        if not isinstance(input_features, torch.Tensor):
            raise TypeError(f"input_features must be a torch.Tensor, got {type(input_features).__name__}")
        if input_features.ndim != 3:
            raise ValueError(
                f"input_features must have shape [batch, frames, bins], got {tuple(input_features.shape)}"
            )
        if not input_features.is_floating_point():
            raise TypeError(f"input_features must be a floating-point tensor, got dtype {input_features.dtype}")
        batch_size, num_frames, num_bins = input_features.shape
        if batch_size == 0 or num_frames == 0:
            raise ValueError(f"input_features is empty: shape {tuple(input_features.shape)}")
        if num_bins != config.num_mel_bins:
            raise ValueError(
                f"input_features has {num_bins} bins but the model expects num_mel_bins={config.num_mel_bins}; "
                "is the input [batch, frames, bins] (not [batch, bins, frames]) and from the matching feature extractor?"
            )
        if num_frames % config.patch_size:
            raise ValueError(
                f"input_features has {num_frames} frames, not a multiple of patch_size={config.patch_size}; "
                f"pad to {-(-num_frames // config.patch_size) * config.patch_size} frames (the feature extractor does) "
                "and pass attention_mask"
            )
        if num_frames > config.max_frames:
            raise ValueError(
                f"input_features has {num_frames} frames ({num_frames // config.patch_size} time patches) but the "
                f"model encodes at most max_length={config.max_length} time patches ({config.max_frames} frames, "
                f"{config.max_frames / 100:.2f} s at a 10 ms hop); cut the clip or raise max_length"
            )
        if attention_mask is not None and tuple(attention_mask.shape) != (batch_size, num_frames):
            raise ValueError(
                f"attention_mask must have shape [batch, frames] = {(batch_size, num_frames)}, "
                f"got {tuple(attention_mask.shape)}"
            )

    def forward(
        self,
        input_features: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        output_ffn_states: bool = False,
        return_dict: bool | None = None,
    ) -> EATModelOutput | tuple:
        r"""
        Args:
            input_features (`torch.FloatTensor` of shape `(batch, frames, bins)`):
                normalised spectrogram frames; `frames` must be a multiple of `patch_size` and at most
                `max_length * patch_size`.
            attention_mask (`torch.Tensor` of shape `(batch, frames)`, *optional*):
                1 for real frames, 0 for padding. Patches made only of padding are masked out as keys.
            output_ffn_states (`bool`, *optional*): also return every block's MLP output before the
                residual add.
        """
        config = self.config
        output_attentions = output_attentions if output_attentions is not None else config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else config.return_dict
        self.check_input_features(input_features, attention_mask)

        batch_size, num_frames, _ = input_features.shape
        patch_tokens = self.embeddings.embed_patches(input_features)
        hidden_states = self.embeddings.prepend_cls_token(patch_tokens)

        token_mask = None
        if attention_mask is not None:
            attention_mask = attention_mask.to(hidden_states.device)
            patch_mask = frame_mask_to_patch_mask(attention_mask, config.patch_size, config.num_freq_patches)
            empty = ~patch_mask.any(dim=1)
            if bool(empty.any()):
                raise ValueError(
                    f"attention_mask marks no real frame for batch rows {empty.nonzero().flatten().tolist()}"
                )
            cls_mask = patch_mask.new_ones(batch_size, 1)
            token_mask = torch.cat([cls_mask, patch_mask], dim=1)

        # A mask with no padding is dropped so that SDPA can pick its fastest kernel.
        encoder_mask = token_mask if token_mask is not None and not bool(token_mask.all()) else None
        encoder_outputs = self.encoder(
            hidden_states,
            attention_mask=encoder_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            output_ffn_states=output_ffn_states,
        )
        if token_mask is None:
            token_mask = torch.ones(batch_size, hidden_states.shape[1], dtype=torch.long, device=hidden_states.device)

        output = EATModelOutput(
            last_hidden_state=encoder_outputs.last_hidden_state,
            hidden_states=encoder_outputs.hidden_states,
            attentions=encoder_outputs.attentions,
            attention_mask=token_mask.long(),
            ffn_states=encoder_outputs.ffn_states,
        )
        return output if return_dict else output.to_tuple()


class EATForAudioClassification(EATPreTrainedModel):
    """EAT with its fine-tuning head: CLS token -> `fc_norm` LayerNorm -> Linear.

    Loss: `problem_type == "multi_label_classification"` -> BCE with logits (AudioSet),
    `"single_label_classification"` -> cross-entropy, `"regression"` -> MSE; when unset it is inferred
    from `num_labels` and the labels' dtype as in transformers' sequence classifiers.
    """

    def __init__(self, config: EATConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.eat = EATModel(config)
        self.fc_norm = eat_layer_norm(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_features: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> SequenceClassifierOutput | tuple:
        r"""
        labels (`torch.Tensor`, *optional*):
            class indices `(batch,)` for single-label, multi-hot `(batch, num_labels)` for multi-label,
            values `(batch,)` or `(batch, num_labels)` for regression.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.eat(
            input_features,
            attention_mask=attention_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        pooled = self.fc_norm(outputs.last_hidden_state[:, 0])
        logits = self.classifier(self.dropout(pooled))

        loss = None
        if labels is not None:
            loss = self.classification_loss(logits, labels)

        if not return_dict:
            output = (logits,) + tuple(v for v in (outputs.hidden_states, outputs.attentions) if v is not None)
            return ((loss,) + output) if loss is not None else output
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )

    def classification_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        labels = labels.to(logits.device)
        problem_type = self.config.problem_type
        if problem_type is None:
            if self.num_labels == 1:
                problem_type = "regression"
            elif labels.dtype in (torch.long, torch.int, torch.int16, torch.int8, torch.uint8):
                problem_type = "single_label_classification"
            else:
                problem_type = "multi_label_classification"

        if problem_type == "regression":
            if self.num_labels == 1:
                return nn.functional.mse_loss(logits.squeeze(-1), labels.squeeze(-1).to(logits.dtype))
            return nn.functional.mse_loss(logits, labels.to(logits.dtype))
        if problem_type == "single_label_classification":
            if labels.shape != logits.shape[:1]:
                raise ValueError(
                    f"single-label labels must be class indices of shape {tuple(logits.shape[:1])}, "
                    f"got {tuple(labels.shape)}"
                )
            return nn.functional.cross_entropy(logits.float(), labels.long())
        if problem_type == "multi_label_classification":
            if labels.shape != logits.shape:
                raise ValueError(
                    f"multi-label labels must be multi-hot of shape {tuple(logits.shape)}, got {tuple(labels.shape)}"
                )
            return nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float())
        raise ValueError(f"unknown problem_type {problem_type!r}")


__all__ = [
    "EATEmbeddings",
    "EATEncoder",
    "EATEncoderOutput",
    "EATForAudioClassification",
    "EATLayer",
    "EATLayerNorm",
    "EATModel",
    "EATModelOutput",
    "EATPreTrainedModel",
    "active_autocast_dtype",
    "build_2d_sincos_positions",
    "frame_mask_to_patch_mask",
]
