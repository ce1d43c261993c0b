"""Audio projectors: encoder tokens -> LLM-width audio embeddings.

Two designs, chosen by `LLMAACConfig.projector_type`:

- `LLMAACLinearProjector` ("linear"): the SLAM-AAC projector. Groups of `k` consecutive encoder tokens
  are concatenated (a trailing group of fewer than `k` tokens is dropped) and mapped by
  Linear -> ReLU -> Linear to the LLM width.
- `LLMAACQFormerProjector` ("qformer"): a window-level Q-Former. The encoder sequence is cut into
  windows of `w` tokens; `q` learned queries, shared by all windows, read each window through BLIP-2
  style layers (self-attention over the queries, cross-attention to the window, feed-forward, each
  followed by a residual add and LayerNorm); a Linear maps each query to the LLM width.

Both take the encoder's `[batch, tokens, dim]` output plus a `[batch, tokens]` mask whose real tokens
form a prefix of each row (EAT orders CLS first and patches time-major), and return
`(audio_embeds [batch, n, text_dim], audio_attention_mask [batch, n])`: the real audio tokens of a clip
are again a prefix of its row, and their number is `LLMAACConfig.num_audio_tokens` of the clip. A clip's
audio tokens only depend on its own real encoder tokens, so a padded batch gives the same embeddings
as encoding the clips one by one.
"""

from __future__ import annotations

import math

import torch
from torch import nn

try:  # transformers >= 4.48
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
except ImportError:  # pragma: no cover - depends on the installed transformers
    ALL_ATTENTION_FUNCTIONS = None

from .configuration_llm_aac import LLMAACConfig
from .modeling_eat import eager_attention_forward


def _check_encoder_inputs(
    encoder_hidden_states: torch.Tensor, encoder_attention_mask: torch.Tensor | None, expected_dim: int
) -> torch.Tensor:
    """Validates the projector inputs and returns a boolean `[batch, tokens]` mask."""
    if encoder_hidden_states.dim() != 3:
        raise ValueError(
            f"encoder_hidden_states must be [batch, tokens, dim], got shape {tuple(encoder_hidden_states.shape)}"
        )
    batch_size, num_tokens, dim = encoder_hidden_states.shape
    if dim != expected_dim:
        raise ValueError(f"encoder_hidden_states has width {dim}, the projector expects {expected_dim}")
    if encoder_attention_mask is None:
        return torch.ones(batch_size, num_tokens, dtype=torch.bool, device=encoder_hidden_states.device)
    if tuple(encoder_attention_mask.shape) != (batch_size, num_tokens):
        raise ValueError(
            f"encoder_attention_mask has shape {tuple(encoder_attention_mask.shape)}, expected "
            f"{(batch_size, num_tokens)} to match encoder_hidden_states"
        )
    return encoder_attention_mask.to(device=encoder_hidden_states.device).bool()


class LLMAACLinearProjector(nn.Module):
    """SLAM-AAC projector: stack `k` consecutive encoder tokens, then Linear -> ReLU -> Linear.

    Sizes come from `config`: `projector_stack_factor` (k, 5 in SLAM-AAC), `projector_hidden_size`
    (2048 in SLAM-AAC), the encoder width `audio_config.hidden_size` and the LLM width
    `text_config.hidden_size`.
    """

    def __init__(self, config: LLMAACConfig):
        super().__init__()
        self.stack_factor = config.projector_stack_factor
        self.encoder_hidden_size = config.audio_config.hidden_size
        self.linear_1 = nn.Linear(self.encoder_hidden_size * self.stack_factor, config.projector_hidden_size)
        self.act = nn.ReLU()
        self.linear_2 = nn.Linear(config.projector_hidden_size, config.text_config.hidden_size)

    def forward(
        self, encoder_hidden_states: torch.Tensor, encoder_attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        token_mask = _check_encoder_inputs(encoder_hidden_states, encoder_attention_mask, self.encoder_hidden_size)
        batch_size, num_tokens, dim = encoder_hidden_states.shape
        num_groups = num_tokens // self.stack_factor
        kept = num_groups * self.stack_factor
        stacked = encoder_hidden_states[:, :kept].reshape(batch_size, num_groups, self.stack_factor * dim)
        audio_embeds = self.linear_2(self.act(self.linear_1(stacked)))
        # Real tokens are a prefix, so a group is real exactly when its last token is.
        audio_attention_mask = token_mask[:, self.stack_factor - 1 : kept : self.stack_factor]
        return audio_embeds, audio_attention_mask


class LLMAACQFormerAttention(nn.Module):
    """Multi-head attention of the Q-Former: self-attention (`key_value_size` = hidden size) or
    cross-attention from the queries to an encoder window (`key_value_size` = encoder width)."""

    is_causal = False

    def __init__(self, config: LLMAACConfig, key_value_size: int):
        super().__init__()
        self.config = config
        hidden_size = config.qformer_hidden_size
        if hidden_size % config.qformer_num_heads:
            raise ValueError(
                f"qformer_hidden_size ({hidden_size}) must be divisible by qformer_num_heads "
                f"({config.qformer_num_heads})"
            )
        self.num_heads = config.qformer_num_heads
        self.head_dim = hidden_size // self.num_heads
        self.num_key_value_groups = 1
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.qformer_attention_dropout
        self.q_proj = nn.Linear(hidden_size, hidden_size)
        self.k_proj = nn.Linear(key_value_size, hidden_size)
        self.v_proj = nn.Linear(key_value_size, hidden_size)
        self.o_proj = nn.Linear(hidden_size, hidden_size)

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_value_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        batch_size, num_queries, _ = hidden_states.shape
        num_keys = key_value_states.shape[1]
        query = self.q_proj(hidden_states).view(batch_size, num_queries, self.num_heads, self.head_dim).transpose(1, 2)
        key = self.k_proj(key_value_states).view(batch_size, num_keys, self.num_heads, self.head_dim).transpose(1, 2)
        value = self.v_proj(key_value_states).view(batch_size, num_keys, self.num_heads, self.head_dim).transpose(1, 2)

        implementation = getattr(self.config, "_attn_implementation", None) or "sdpa"
        attention = eager_attention_forward
        if implementation != "eager" and ALL_ATTENTION_FUNCTIONS is not None:
            # Flash-attention kernels take no arbitrary key masks; SDPA is the right fast path here.
            if implementation not in ALL_ATTENTION_FUNCTIONS or "flash" in implementation:
                implementation = "sdpa"
            attention = ALL_ATTENTION_FUNCTIONS[implementation]
        output, _ = attention(
            self,
            query,
            key,
            value,
            attention_mask,
            scaling=self.scaling,
            dropout=self.attention_dropout if self.training else 0.0,
        )
        return self.o_proj(output.reshape(batch_size, num_queries, -1))


class LLMAACQFormerLayer(nn.Module):
    """One BLIP-2 Q-Former layer (post-LayerNorm, as in BERT): self-attention over the queries,
    cross-attention to the encoder window, feed-forward."""

    def __init__(self, config: LLMAACConfig):
        super().__init__()
        hidden_size = config.qformer_hidden_size
        eps = config.qformer_layer_norm_eps
        self.self_attn = LLMAACQFormerAttention(config, key_value_size=hidden_size)
        self.self_attn_layer_norm = nn.LayerNorm(hidden_size, eps=eps)
        self.cross_attn = LLMAACQFormerAttention(config, key_value_size=config.audio_config.hidden_size)
        self.cross_attn_layer_norm = nn.LayerNorm(hidden_size, eps=eps)
        self.fc1 = nn.Linear(hidden_size, config.qformer_intermediate_size)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(config.qformer_intermediate_size, hidden_size)
        self.final_layer_norm = nn.LayerNorm(hidden_size, eps=eps)
        self.dropout = nn.Dropout(config.qformer_dropout)

    def forward(
        self, queries: torch.Tensor, window_states: torch.Tensor, window_attention_mask: torch.Tensor
    ) -> torch.Tensor:
        queries = self.self_attn_layer_norm(queries + self.dropout(self.self_attn(queries, queries)))
        attended = self.cross_attn(queries, window_states, window_attention_mask)
        queries = self.cross_attn_layer_norm(queries + self.dropout(attended))
        feed_forward = self.fc2(self.dropout(self.act(self.fc1(queries))))
        return self.final_layer_norm(queries + self.dropout(feed_forward))


class LLMAACQFormerProjector(nn.Module):
    """Window-level Q-Former: `q` learned queries summarise each window of `w` encoder tokens.

    Sizes come from `config`: `qformer_window_size` (w), `qformer_num_queries` (q),
    `qformer_hidden_size`, `qformer_num_layers`, `qformer_num_heads`, `qformer_intermediate_size`,
    dropouts and LayerNorm epsilon. A clip of `n` encoder tokens gives `ceil(n / w) * q` audio tokens;
    the keys of its last, partial window are masked so that padding never leaks into a real window.
    """

    def __init__(self, config: LLMAACConfig):
        super().__init__()
        self.window_size = config.qformer_window_size
        self.num_queries = config.qformer_num_queries
        self.encoder_hidden_size = config.audio_config.hidden_size
        self.query_embeds = nn.Parameter(torch.zeros(1, self.num_queries, config.qformer_hidden_size))
        self.query_layer_norm = nn.LayerNorm(config.qformer_hidden_size, eps=config.qformer_layer_norm_eps)
        self.query_dropout = nn.Dropout(config.qformer_dropout)
        self.layers = nn.ModuleList([LLMAACQFormerLayer(config) for _ in range(config.qformer_num_layers)])
        self.linear = nn.Linear(config.qformer_hidden_size, config.text_config.hidden_size)

    def forward(
        self, encoder_hidden_states: torch.Tensor, encoder_attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        token_mask = _check_encoder_inputs(encoder_hidden_states, encoder_attention_mask, self.encoder_hidden_size)
        batch_size, num_tokens, dim = encoder_hidden_states.shape
        num_windows = math.ceil(num_tokens / self.window_size)
        padding = num_windows * self.window_size - num_tokens
        windows = nn.functional.pad(encoder_hidden_states, (0, 0, 0, padding))
        windows = windows.view(batch_size, num_windows, self.window_size, dim)
        window_token_mask = nn.functional.pad(token_mask, (0, padding), value=False)
        window_token_mask = window_token_mask.view(batch_size, num_windows, self.window_size)
        # Only windows holding at least one real token are run: fully padded windows would have no key
        # to attend to, and skipping them saves the work.
        real_windows = window_token_mask.any(dim=-1)

        window_states = windows[real_windows]
        key_mask = window_token_mask[real_windows]
        additive_mask = torch.zeros(key_mask.shape, dtype=window_states.dtype, device=window_states.device)
        additive_mask = additive_mask.masked_fill(~key_mask, torch.finfo(window_states.dtype).min)
        additive_mask = additive_mask[:, None, None, :]

        queries = self.query_embeds.to(window_states.dtype).expand(window_states.shape[0], -1, -1)
        queries = self.query_dropout(self.query_layer_norm(queries))
        for layer in self.layers:
            queries = layer(queries, window_states, additive_mask)
        projected = self.linear(queries)

        audio_embeds = projected.new_zeros(batch_size, num_windows, self.num_queries, projected.shape[-1])
        audio_embeds[real_windows] = projected
        audio_embeds = audio_embeds.view(batch_size, num_windows * self.num_queries, -1)
        audio_attention_mask = real_windows.repeat_interleave(self.num_queries, dim=1)
        return audio_embeds, audio_attention_mask


PROJECTOR_CLASSES = {"linear": LLMAACLinearProjector, "qformer": LLMAACQFormerProjector}


def build_projector(config: LLMAACConfig) -> nn.Module:
    """The projector named by `config.projector_type`."""
    try:
        projector_class = PROJECTOR_CLASSES[config.projector_type]
    except KeyError:
        raise ValueError(
            f"Unknown projector_type {config.projector_type!r}; choose one of {sorted(PROJECTOR_CLASSES)}"
        ) from None
    return projector_class(config)
