"""Fast batched decoding for the LLM-AAC captioner (beam search, several beam searches at once, sampling).

Why not `model.generate`: transformers expands every clip to `num_beams` rows *before* the prompt is run, so
the ~200 audio + prompt tokens of a clip are computed, cached and re-read once per beam; SLAM-AAC's
CLAP-Refine (beam sizes 2..8) runs seven such searches. Here each clip's prompt is run once (the *prefix*),
its keys / values are kept once per clip, and every beam of the clip attends to that shared prefix plus its own
generated tokens. All searches of a clip (e.g. the seven beam sizes of CLAP-Refine, or the groups of a
diverse beam search) run in one decoding loop over the same prefix. Clips are processed in chunks sized to
a key/value memory budget.

A row's generated keys / values stay where they were computed (a reordering beam search copies nothing; an
attention mask follows each row's path). Rows of a clip whose paths are equal (CLAP-Refine's searches keep many
of the same hypotheses: ~30 % of its rows hold a distinct path on a 7B captioner) are computed once per step and
share their entries and logits. An eager step attends over the entries written so far. With every row computed
and the whole buffer attended, a step has the same shapes at every step and reads its step number from a device
tensor, so it can instead be replayed as a CUDA graph (`FastCaptionGenerator(..., cuda_graphs=True)`), which
removes the launch gaps of its ~45 small kernels per layer.

The decoding semantics are transformers' (v5 vectorised beam search: `2 * num_beams` candidates per step,
finished hypotheses ranked by `sum_log_prob / length ** length_penalty`, the `early_stopping` heuristics;
greedy and multinomial sampling with temperature / top-k / top-p; `min_new_tokens`), so the tokens equal
`generate`'s up to floating-point rounding (tested on tiny models).

Supported language models: the Llama family layout (`model.layers[i].self_attn.{q,k,v,o}_proj`,
`input_layernorm`, `post_attention_layernorm`, `mlp`, `model.norm`, `model.rotary_emb`, `lm_head`):
Llama / Vicuna, Mistral (without an active sliding window), Qwen2, Qwen3; a peft LoRA adapter on any of
their linear layers works unchanged. `fast_generation_unsupported_reason(model)` says why another model is
not supported; callers then fall back to `generate`.
"""

from __future__ import annotations

import math
import sys
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")
# Additive penalty transformers uses to push finished / impossible beams out of the running set.
_BEAM_PENALTY = -1.0e9
# Eager runs of the decode step on the capture stream before a CUDA graph is captured (lazy cuBLAS / attention
# workspaces and handles must exist before the capture starts).
_GRAPH_WARMUP_STEPS = 2
# Output-projection rows padded to a multiple of this (aligned GEMM tiles for the logits).
_HEAD_ALIGNMENT = 64


@dataclass
class Hypothesis:
    """One decoded caption: generated token ids (EOS included when it was generated), the sum of the model's
    token log-probabilities (softmax of the raw logits, before any length penalty or diversity penalty), and
    the score the search ranked it by."""

    tokens: list[int]
    log_prob_sum: float
    score: float

    @property
    def num_tokens(self) -> int:
        return len(self.tokens)

    @property
    def mean_log_prob(self) -> float:
        """Length-normalised log-probability (mean over generated tokens, EOS included)."""
        return self.log_prob_sum / max(1, len(self.tokens))


def _causal_lm_parts(model) -> Any:
    """The causal LM below the captioner (and below a peft wrapper)."""
    if hasattr(model, "get_base_language_model"):
        return model.get_base_language_model()
    return model


def fast_generation_unsupported_reason(model, max_total_length: int | None = None) -> str | None:
    """`None` when `FastCaptionGenerator` can decode with `model`, else the reason it cannot."""
    lm = _causal_lm_parts(model)
    config = getattr(lm, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        return f"language model type {model_type!r} is not one of {SUPPORTED_MODEL_TYPES}"
    body = getattr(lm, "model", None)
    needed = ("layers", "norm", "rotary_emb", "embed_tokens")
    if body is None or any(not hasattr(body, name) for name in needed) or not hasattr(lm, "lm_head"):
        return f"{type(lm).__name__} does not have the Llama layout (model.layers / norm / rotary_emb, lm_head)"
    attention = body.layers[0].self_attn
    if any(not hasattr(attention, name) for name in ("q_proj", "k_proj", "v_proj", "o_proj")):
        return f"{type(attention).__name__} has no separate q/k/v/o projections"
    window = getattr(config, "sliding_window", None)
    if window is not None and (model_type != "qwen2" or getattr(config, "use_sliding_window", False)):
        if max_total_length is None or max_total_length > window:
            return f"sliding-window attention (window {window}) is not implemented by the fast path"
    if getattr(config, "pretraining_tp", 1) not in (None, 1):
        return "pretraining_tp > 1 is not supported"
    return None


class _PrefixSharedDecoder:
    """Runs the Llama-layout decoder layers with one shared prompt cache per clip.

    Key / value cache of a chunk of clips: one buffer `[layers, 2, clips, kv_heads, width + max_new_tokens *
    rows_per_clip, head_dim]`. Positions `[0, width)` hold the clip's (left-padded) prompt; position
    `width + t * rows_per_clip + r` holds what row `r` of the clip computed for its generated token `t`.
    Entries are never moved when beams reorder: `history[c, r, t]` names the row whose token-`t` entry lies on
    row `r`'s path, and the attention mask lets each row see its prompt and exactly the entries of its own
    path. So all rows of a clip attend in one call over the same keys, and every decode step has the same
    shapes and reads its step number from a device tensor: nothing a step launches depends on a Python value
    that changes between steps.

    With `use_cuda_graphs` (CUDA only), the step is captured once per buffer shape as a CUDA graph and replayed:
    its inputs (`tokens`, `parent_rows`, `step_index`) and output (the logits) are the static buffers the graph
    was captured with. The step is idempotent (it reads `history`, writes `next_history`; `step` commits it), so
    the eager warm-up runs before the capture leave the state as one run does.
    """

    def __init__(self, lm):
        self.lm = lm
        body = lm.model
        self.body = body
        self.layers = list(body.layers)
        config = lm.config
        attention = self.layers[0].self_attn
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = getattr(config, "num_key_value_heads", None) or self.num_heads
        self.head_dim = getattr(attention, "head_dim", None) or config.hidden_size // self.num_heads
        self.scaling = getattr(attention, "scaling", self.head_dim**-0.5)
        self.groups = self.num_heads // self.num_kv_heads
        # The rotary formula of the model's own module (partial rotary variants included).
        self.apply_rotary = getattr(sys.modules[type(attention).__module__], "apply_rotary_pos_emb", None)
        if self.apply_rotary is None:
            raise ValueError(f"cannot find apply_rotary_pos_emb next to {type(attention).__name__}")
        weight = lm.get_input_embeddings().weight
        self.dtype, self.device = weight.dtype, weight.device
        self.shape = None  # (clips, prefix width, rows per clip, max new tokens) of the allocated buffers
        self.use_cuda_graphs = False
        self.graph = self.graph_logits = None
        self.graph_failure: str | None = None  # why capturing failed once (then the step stays eager)
        self.padded_head_weight: torch.Tensor | None = None
        self.vocab_size = 0
        # Eager steps attend over the key/value entries written so far; False: over the whole buffer, as a captured
        # step does (bitwise the graph's results: benchmarks/check_fast_generation_cuda.py).
        self.attend_written_only = True
        # Eager steps compute each distinct path of a clip once (`_decode_step`'s `merge`); False: every row.
        self.merge_repeated_paths = True

    # ------------------------------------------------------------------------------------- helpers
    def _qkv(self, layer, hidden: torch.Tensor, cos, sin):
        """q `[B, H, T, d]`, k / v `[B, Hkv, T, d]` with rotary positions applied."""
        attention = layer.self_attn
        batch, length = hidden.shape[:2]
        q = attention.q_proj(hidden).view(batch, length, -1, self.head_dim)
        k = attention.k_proj(hidden).view(batch, length, -1, self.head_dim)
        v = attention.v_proj(hidden).view(batch, length, -1, self.head_dim)
        if getattr(attention, "q_norm", None) is not None:  # Qwen3
            q = attention.q_norm(q)
            k = attention.k_norm(k)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q, k = self.apply_rotary(q, k, cos, sin)
        return q, k, v

    def _logits(self, hidden_last: torch.Tensor) -> torch.Tensor:
        hidden_last = self.body.norm(hidden_last)
        if self.padded_head_weight is None:
            return self.lm.lm_head(hidden_last).float()
        return F.linear(hidden_last, self.padded_head_weight)[:, : self.vocab_size].float()

    def _pad_head(self) -> None:
        """A zero-padded copy of the output projection, made with the chunk buffers and dropped with them (a copy
        kept across calls would go stale once the weights train). A vocabulary that is not a multiple of 8 (e.g.
        32,000 + the audio placeholder) leaves cuBLAS only unaligned GEMM kernels for the logits, several times
        slower (H100 profile in docs/benchmarks.md)."""
        head = self.lm.lm_head
        self.padded_head_weight = None
        if type(head) is not torch.nn.Linear or head.bias is not None:
            return  # a wrapped head (e.g. a peft adapter) computes more than its weight
        self.vocab_size = head.weight.shape[0]
        padding = -self.vocab_size % _HEAD_ALIGNMENT
        if padding:
            self.padded_head_weight = F.pad(head.weight.detach(), (0, 0, 0, padding))

    # ------------------------------------------------------------------------------------- buffers
    def begin(self, num_clips: int, width: int, rows_per_clip: int, max_new_tokens: int) -> None:
        """Buffers of a chunk; those of the previous chunk are reused when the shape is the same."""
        shape = (num_clips, width, rows_per_clip, max_new_tokens)
        if shape != self.shape:
            self.release()
            self._pad_head()
            rows, generated = num_clips * rows_per_clip, max_new_tokens * rows_per_clip
            length = width + generated
            device, long = self.device, dict(dtype=torch.long, device=self.device)
            self.cache = torch.empty(
                len(self.layers), 2, num_clips, self.num_kv_heads, length, self.head_dim, dtype=self.dtype,
                device=device,
            )
            # Additive attention mask, one row per (beam, query group) of a clip. The storage's rows are padded to
            # a multiple of 16 entries: fused attention kernels want aligned mask strides, else they copy it.
            queries = rows_per_clip * self.groups
            storage = torch.zeros(num_clips, 1, queries, -(-length // 16) * 16, dtype=self.dtype, device=device)
            self.attention_mask = storage[..., :length]
            self.generated_mask = storage[..., width:length]
            self.history = torch.zeros(num_clips, rows_per_clip, max_new_tokens, **long)
            self.next_history = torch.zeros_like(self.history)
            # owners[c, r]: the row whose entries row r's path uses (itself, or the first row with the same path)
            self.owners = torch.zeros(num_clips, rows_per_clip, **long)
            self.next_owners = torch.zeros_like(self.owners)
            self.row_range = torch.arange(rows_per_clip, **long)
            self.all_rows = torch.arange(rows, **long)
            self.step_range = torch.arange(max_new_tokens, **long)
            # Static inputs of a step (written before each step).
            self.tokens = torch.zeros(rows, **long)
            self.parent_rows = torch.zeros(num_clips, rows_per_clip, **long)
            self.step_index = torch.zeros((), **long)
            self.row_positions = torch.zeros(rows, **long)
            self.shape = shape
        # Entries that a row may not see (generated by other rows, in front of a narrower prompt) still enter the
        # attention with zero weight: they must be finite (`prefill` clears the columns in front of its prompts).
        self.cache[..., width:, :].zero_()

    def release(self) -> None:
        """Frees the chunk buffers and the CUDA graph captured on them."""
        if self.graph is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # its memory pool returns to the allocator: no replay may be running
        self.graph = self.graph_logits = None
        self.padded_head_weight = None
        self.cache = self.attention_mask = self.generated_mask = None
        self.history = self.next_history = self.tokens = self.parent_rows = self.step_index = None
        self.owners = self.next_owners = None
        self.row_positions = self.row_range = self.all_rows = self.step_range = None
        self.shape = None

    # ------------------------------------------------------------------------------------- prefill
    @torch.no_grad()
    def prefill(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, clips: slice) -> torch.Tensor:
        """Runs left-padded prompts of the chunk's `clips` (after `begin`), keeping their keys / values at the end of
        the cache's prompt region; returns the next-token logits `[len(clips), V]`."""
        batch, length = attention_mask.shape
        prompt = slice(self.shape[1] - length, self.shape[1])
        if prompt.start > 0:
            self.cache[:, :, clips, :, : prompt.start].zero_()
        real = attention_mask.bool()
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        hidden = inputs_embeds.to(self.dtype)
        cos, sin = self.body.rotary_emb(hidden, position_ids)
        causal = torch.ones(length, length, dtype=torch.bool, device=hidden.device).tril()
        # Padding rows attend to themselves only, so that no row is fully masked (which gives NaN).
        eye = torch.eye(length, dtype=torch.bool, device=hidden.device)
        mask = (causal[None] & real[:, None, :]) | eye[None]
        mask = mask[:, None]
        for index, layer in enumerate(self.layers):
            residual = hidden
            x = layer.input_layernorm(hidden)
            q, k, v = self._qkv(layer, x, cos, sin)
            self.cache[index, 0, clips, :, prompt] = k
            self.cache[index, 1, clips, :, prompt] = v
            if self.groups > 1:
                k = k.repeat_interleave(self.groups, dim=1)
                v = v.repeat_interleave(self.groups, dim=1)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scaling)
            out = out.transpose(1, 2).reshape(batch, length, -1)
            hidden = residual + layer.self_attn.o_proj(out)
            hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
        return self._logits(hidden[:, -1])

    # ------------------------------------------------------------------------------------- decode
    def start(self, prefix_mask: torch.Tensor) -> None:
        """After the chunk's prefill: every row starts from its clip's prompt (`prefix_mask` `[clips, prompt width]`,
        which may be narrower than the buffer: the columns in front of it are masked)."""
        num_clips, width, rows_per_clip, _ = self.shape
        prefix_blocked = F.pad(~prefix_mask.bool(), (width - prefix_mask.shape[1], 0), value=True)[:, None, None, :]
        self.attention_mask[..., :width] = torch.zeros_like(prefix_blocked, dtype=self.dtype).masked_fill_(
            prefix_blocked, float("-inf")
        )
        self.row_positions.copy_(prefix_mask.long().sum(-1).repeat_interleave(rows_per_clip))
        self.parent_rows.copy_(self.row_range.expand(num_clips, -1))
        self.history.zero_()
        self.owners.zero_()  # every row's path so far is the prompt

    def step(self, tokens: torch.Tensor, step: int, parent_rows: torch.Tensor | None = None, *,
             paths_may_repeat: bool = True) -> torch.Tensor:
        """Feeds generated token number `step` (0-based) of every row; returns next-token logits `[rows, V]`.

        `parent_rows` `[clips, rows_per_clip]`: the row (within its clip) that each row continues, whose path of
        earlier tokens it takes over (beam search); `None` keeps the previous rows (sampling).
        `paths_may_repeat`: whether two rows of a clip can hold the same tokens (several beam searches, samples);
        False (one beam search, whose beams are distinct paths) skips looking for them."""
        self.tokens.copy_(tokens)
        if parent_rows is not None:
            self.parent_rows.copy_(parent_rows)
        self.step_index.fill_(step)
        logits = self._replay_graph() if self._graphs_enabled() else None
        if logits is None:
            attended = None
            if self.attend_written_only:
                num_clips, width, per_clip, _ = self.shape
                # Rounded up to 64 entries: a handful of distinct shapes per decode (attention kernels are planned
                # per shape) for at most 63 masked entries more.
                attended = min(self.cache.shape[-2], -(-(width + (step + 1) * per_clip) // 64) * 64)
            merge = paths_may_repeat and self.merge_repeated_paths and self.shape[2] > 1
            logits = self._decode_step(attended, merge)
        self.history.copy_(self.next_history)
        self.owners.copy_(self.next_owners)
        return logits

    def _graphs_enabled(self) -> bool:
        return self.use_cuda_graphs and self.graph_failure is None and self.device.type == "cuda"

    def _replay_graph(self) -> torch.Tensor | None:
        """The step through the CUDA graph of the current buffers (captured on first use); its logits buffer is
        overwritten by the next step. `None` when the capture failed (the caller then steps eagerly)."""
        if self.graph is None:
            try:
                self.graph, self.graph_logits = self._capture_graph()
            except RuntimeError as error:  # e.g. an operator that synchronises (dynamic RoPE, data-dependent shapes)
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                self.graph_failure = f"{type(error).__name__}: {error}"
                warnings.warn(f"the decode step could not be captured as a CUDA graph, decoding eagerly: "
                              f"{self.graph_failure}", RuntimeWarning, stacklevel=3)
                return None
        self.graph.replay()
        return self.graph_logits

    def _capture_graph(self):
        # PyTorch's recipe: warm up on a side stream, capture there, and let the current stream wait for it. The
        # capture is begun / ended by hand so that a failed capture still ends and restores the current stream.
        current = torch.cuda.current_stream(self.device)
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(current)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.device(self.device), torch.cuda.stream(stream):
            for _ in range(_GRAPH_WARMUP_STEPS):
                self._decode_step()
            stream.synchronize()
            # thread_local: CUDA calls of other threads (e.g. a DataLoader's pin-memory thread) neither fail the
            # capture nor get captured.
            graph.capture_begin(capture_error_mode="thread_local")
            try:
                logits = self._decode_step()
            except BaseException:
                try:
                    graph.capture_end()
                except RuntimeError:
                    pass  # the capture is already invalid; the first error is the one to report
                raise
            graph.capture_end()
        current.wait_stream(stream)
        return graph, logits

    def _entry_owners(self, merge: bool) -> torch.Tensor:
        """`[C, R]`: the row whose key/value entry for this step each row uses. Without `merge` every row computes
        its own; with it, rows whose paths are equal (same owner of the parent's path, same new token) share the
        first such row's entries and logits, so the step computes each distinct path once."""
        num_clips, _, per_clip, _ = self.shape
        if not merge:
            owners = self.row_range.expand(num_clips, -1)
        else:
            parent_owners = self.owners.gather(1, self.parent_rows)
            # (owner of the parent's path, token) as one integer; token ids are below 2**32 for any vocabulary
            paths = parent_owners * (1 << 32) + self.tokens.view(num_clips, per_clip)
            same = paths[:, :, None] == paths[:, None, :]
            owners = torch.where(same, self.row_range, per_clip).amin(-1)
        self.next_owners.copy_(owners)
        return owners

    @torch.no_grad()
    def _decode_step(self, attended: int | None = None, merge: bool = False) -> torch.Tensor:
        """One decoding step computed from the static inputs only (tokens, parent rows, step index).

        `attended`: key/value entries the attention reads, from the start of the buffer. The entries of later
        steps are masked anyway; an eager step reads only those written so far (about a third less key/value
        traffic over a decode), a captured step the whole buffer (`None`), so that every step has one shape.
        `merge`: compute each distinct path of a clip once (`_entry_owners`); the number of distinct paths sizes
        the step (read on the host: eager steps only). CLAP-Refine's seven beam searches keep many of the same
        hypotheses, so this saves a large part of their work."""
        num_clips, width, per_clip, max_new_tokens = self.shape
        attended = self.cache.shape[-2] if attended is None else attended
        attention_mask = self.attention_mask[..., :attended]
        kv_heads, groups, dim = self.num_kv_heads, self.groups, self.head_dim
        rows, step = num_clips * per_clip, self.step_index
        owners = self._entry_owners(merge)
        # Row r inherits its parent's path; its entry for this step is its owner's.
        history = self.history.gather(1, self.parent_rows[..., None].expand_as(self.history))
        history = torch.where(self.step_range == step, owners[..., None], history)
        self.next_history.copy_(history)
        visible = (history[..., None] == self.row_range) & (self.step_range <= step)[:, None]  # [C, R, T, R]
        visible = visible.view(num_clips, 1, per_clip, 1, max_new_tokens * per_clip)
        visible = visible.expand(-1, -1, -1, groups, -1).reshape(num_clips, 1, per_clip * groups, -1)
        self.generated_mask.copy_(torch.where(visible, 0.0, float("-inf")))

        # The rows computed (all, or the owners) and where each row finds its result among them.
        computed, result_of_row = self.all_rows, None
        if merge:
            is_owner = (owners == self.row_range).flatten()
            computed = is_owner.nonzero().squeeze(1)  # synchronises: the count sizes the step
            owner_flat = owners.flatten() + self.all_rows - self.all_rows % per_clip  # the owner's row in the chunk
            result_of_row = (is_owner.cumsum(0) - 1)[owner_flat]
        write_clip = computed // per_clip
        write_at = width + step * per_clip + computed % per_clip

        hidden = self.body.embed_tokens(self.tokens[computed])[:, None]  # [computed rows, 1, D]
        cos, sin = self.body.rotary_emb(hidden, (self.row_positions[computed] + step)[:, None])
        for index, layer in enumerate(self.layers):
            residual = hidden
            q, k, v = self._qkv(layer, layer.input_layernorm(hidden), cos, sin)  # [computed, H(kv), 1, d]
            keys, values = self.cache[index, 0], self.cache[index, 1]  # [clips, kv, width + T * R, d]
            keys[write_clip, :, write_at] = k[:, :, 0]
            values[write_clip, :, write_at] = v[:, :, 0]
            if result_of_row is not None:
                q = q[result_of_row]
            # A clip's rows x query groups form the query axis of one attention call per (clip, kv head).
            q = q.reshape(num_clips, per_clip, kv_heads, groups, dim).permute(0, 2, 1, 3, 4)
            q = q.reshape(num_clips, kv_heads, per_clip * groups, dim)
            out = F.scaled_dot_product_attention(
                q, keys[:, :, :attended], values[:, :, :attended], attn_mask=attention_mask, scale=self.scaling
            )
            out = out.view(num_clips, kv_heads, per_clip, groups, dim).permute(0, 2, 1, 3, 4).reshape(rows, 1, -1)
            if result_of_row is not None:
                out = out[computed]
            hidden = residual + layer.self_attn.o_proj(out)
            hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
        logits = self._logits(hidden[:, 0])
        return logits if result_of_row is None else logits[result_of_row]


class _BeamGroups:
    """State of several independent beam searches per clip (one per group, group `g` with `beam_sizes[g]`
    beams), stored padded to the largest beam size; padded slots hold -inf scores and are never chosen."""

    def __init__(self, num_clips, beam_sizes, max_new_tokens, num_eos, device):
        self.beam_sizes = list(beam_sizes)
        num_groups, widest = len(beam_sizes), max(beam_sizes)
        self.widest = widest
        # transformers keeps (1 + number of EOS tokens, at least 2) x num_beams candidates per step.
        self.keep_factor = max(2, 1 + num_eos)
        sizes = torch.tensor(beam_sizes, device=device)
        slot = torch.arange(widest, device=device)
        self.slot_valid = slot[None, :] < sizes[:, None]  # [G, K]
        candidate = torch.arange(self.keep_factor * widest, device=device)
        self.candidate_valid = candidate[None, :] < self.keep_factor * sizes[:, None]  # [G, 2K]
        self.candidate_top = candidate[None, :] < sizes[:, None]
        offsets = torch.cumsum(sizes, 0) - sizes
        self.slot_row = (offsets[:, None] + slot[None, :]).clamp(max=int(sizes.sum()) - 1)  # [G, K] row in clip
        self.row_group = torch.repeat_interleave(torch.arange(num_groups, device=device), sizes)
        self.row_slot = torch.cat([torch.arange(int(k), device=device) for k in beam_sizes])
        shape = (num_clips, num_groups, widest)
        neg_inf = float("-inf")
        self.running_scores = torch.full(shape, _BEAM_PENALTY, device=device)
        self.running_scores[..., 0] = 0.0
        self.running_scores.masked_fill_(~self.slot_valid, neg_inf)
        self.running_raw = torch.zeros(shape, device=device)
        self.running_tokens = torch.zeros(*shape, max_new_tokens, dtype=torch.long, device=device)
        self.running_parent = torch.zeros(shape, dtype=torch.long, device=device)
        self.finished_scores = torch.full(shape, _BEAM_PENALTY, device=device).masked_fill_(~self.slot_valid, neg_inf)
        self.finished_raw = torch.zeros(shape, device=device)
        self.finished_tokens = torch.zeros(*shape, max_new_tokens, dtype=torch.long, device=device)
        self.finished_lengths = torch.zeros(shape, dtype=torch.long, device=device)
        self.is_finished = (~self.slot_valid).expand(shape).clone()
        self.open = torch.ones(num_clips, num_groups, dtype=torch.bool, device=device)
        # Whether every candidate of this step stopped (a device tensor: read once per step, in `done`).
        self.all_hit = torch.ones((), dtype=torch.bool, device=device)

    def select(self, groups: slice, log_probs, raw_log_probs, step, eos, max_new_tokens, length_penalty, early_stopping,
               blocked=None):
        """One beam-search step for `groups`. `log_probs`: `[C, G', K, V]` per slot, the processed scores that rank;
        `raw_log_probs`: `[C, rows_per_clip, V]`, the model's own log-probabilities that are reported; `blocked`:
        token ids that may not be chosen at this step (ranked as -inf)."""
        clips, num_groups, widest, vocab = log_probs.shape
        slot_valid = self.slot_valid[groups]
        candidate_valid, candidate_top = self.candidate_valid[groups], self.candidate_top[groups]
        accumulated = log_probs + self.running_scores[:, groups, :, None]
        if blocked is not None:  # on the sum, a fresh tensor: no copy of the log-probabilities
            accumulated.index_fill_(-1, blocked, float("-inf"))
        top_scores, top_index = accumulated.reshape(clips, num_groups, widest * vocab).topk(self.keep_factor * widest, dim=-1)
        top_scores = top_scores.masked_fill(~candidate_valid, float("-inf"))
        parent = torch.div(top_index, vocab, rounding_mode="floor")
        token = top_index % vocab
        parent_row = self.slot_row[groups][None].expand(clips, -1, -1).gather(2, parent)
        chosen_raw = raw_log_probs.reshape(clips, -1).gather(1, (parent_row * vocab + token).reshape(clips, -1))
        raw = self.running_raw[:, groups].gather(2, parent) + chosen_raw.view_as(parent_row)
        tokens = self.running_tokens[:, groups].gather(2, parent[..., None].expand(-1, -1, -1, max_new_tokens))
        tokens[..., step] = token
        hits = torch.zeros_like(token, dtype=torch.bool) if eos is None else torch.isin(token, eos)
        if step + 1 >= max_new_tokens:
            hits = torch.ones_like(hits)
        self.all_hit = self.all_hit & (hits | ~candidate_valid).all()  # no boolean indexing: no device sync

        # Next running beams: the best candidates that did not stop.
        running = top_scores + hits.float() * _BEAM_PENALTY
        order = running.topk(widest, dim=-1).indices
        self.running_scores[:, groups] = running.gather(2, order).masked_fill(~slot_valid, float("-inf"))
        self.running_raw[:, groups] = raw.gather(2, order)
        self.running_tokens[:, groups] = tokens.gather(2, order[..., None].expand(-1, -1, -1, max_new_tokens))
        self.running_parent[:, groups] = parent.gather(2, order)

        # Finished hypotheses: the top `num_beams` candidates that stopped, ranked with the length penalty.
        just_finished = hits & candidate_top
        normalised = top_scores / float(step + 1) ** length_penalty
        if early_stopping is True:
            full = self.is_finished[:, groups].all(dim=-1, keepdim=True)
            normalised = normalised + full.float() * _BEAM_PENALTY
        normalised = normalised + (~self.open[:, groups, None]).float() * _BEAM_PENALTY
        normalised = normalised + (~just_finished).float() * _BEAM_PENALTY
        merged_scores = torch.cat([self.finished_scores[:, groups], normalised], dim=2)
        keep = merged_scores.topk(widest, dim=-1).indices
        lengths = torch.full_like(token, step + 1)
        self.finished_scores[:, groups] = merged_scores.gather(2, keep).masked_fill(~slot_valid, float("-inf"))
        self.finished_raw[:, groups] = torch.cat([self.finished_raw[:, groups], raw], 2).gather(2, keep)
        merged_tokens = torch.cat([self.finished_tokens[:, groups], tokens], 2)
        self.finished_tokens[:, groups] = merged_tokens.gather(2, keep[..., None].expand(-1, -1, -1, max_new_tokens))
        self.finished_lengths[:, groups] = torch.cat([self.finished_lengths[:, groups], lengths], 2).gather(2, keep)
        finished = torch.cat([self.is_finished[:, groups], just_finished], 2).gather(2, keep)
        self.is_finished[:, groups] = finished | ~slot_valid

    def update_open(self, generated_length, max_new_tokens, length_penalty, early_stopping) -> None:
        """transformers' `_check_early_stop_heuristic`: can a running beam still beat the worst finished one?"""
        if early_stopping == "never" and length_penalty > 0.0:
            best_length = max_new_tokens
        else:
            best_length = generated_length
        best_possible = self.running_scores[..., :1] / float(best_length) ** length_penalty
        worst = self.finished_scores.masked_fill(~self.slot_valid, float("inf")).min(dim=-1, keepdim=True).values
        worst_per_slot = torch.where(self.is_finished, worst, torch.full_like(worst, _BEAM_PENALTY))
        self.open &= (best_possible > worst_per_slot).any(dim=-1)

    def done(self, early_stopping) -> bool:
        finished = ~self.open.any() | self.all_hit
        if early_stopping is True:
            finished = finished | self.is_finished.all()
        return bool(finished)

    def next_rows(self, step: int):
        """New token and parent row (within the clip) of every decoding row, `[C, rows_per_clip]` each."""
        group, slot = self.row_group, self.row_slot
        step_tokens = self.running_tokens[:, group, slot, step]
        parent_slot = self.running_parent[:, group, slot]
        parent_row = self.slot_row[group[None, :].expand_as(parent_slot), parent_slot]
        return step_tokens, parent_row


class FastCaptionGenerator:
    """Prefix-sharing decoder for [`LLMAACForConditionalGeneration`] (see the module docstring).

    Args:
        model: the captioner (its language model must pass `fast_generation_unsupported_reason`).
        kv_cache_bytes: key/value memory budget of one chunk of clips (prompt cache + generated tokens).
            Default: 60 % of the free GPU memory on CUDA (memory that PyTorch's allocator keeps cached but unused
            counts as free), 1 GiB on CPU.
        max_prefill_tokens: prompt tokens run through the model at once (bounds activation memory).
        max_clips_per_chunk: upper bound on clips decoded together.
        cuda_graphs: replay each decode step as a CUDA graph (the language model on a CUDA device; ignored on
            other devices). Within one call, the step is captured once per key/value buffer shape (clips, prompt
            width, rows per clip, `max_new_tokens`): chunks whose prompts fill at least half of a buffer's width
            share it, so a call typically needs one shape plus one for its last, smaller chunk, each capture
            costing about three eager steps. The graph removes the launch gaps of the ~45 small kernels per layer
            and step; results are those of the eager step. A step that cannot be captured (e.g. a dynamic RoPE
            variant, which synchronises) falls back to eager decoding with a `RuntimeWarning`. Default `False`:
            graphs keep a private copy of the step's activations per shape, and a captured step computes every
            row and attends over the whole buffer, which costs CLAP-Refine more than the launches it saves (H100:
            1.02x for beam 4; docs/benchmarks.md, `bench_generate.py --cuda-graphs`, verified by
            benchmarks/check_fast_generation_cuda.py). Can be changed later through the `cuda_graphs` attribute.
    """

    def __init__(self, model, *, kv_cache_bytes: int | None = None, max_prefill_tokens: int = 16384,
                 max_clips_per_chunk: int | None = None, cuda_graphs: bool = False):
        reason = fast_generation_unsupported_reason(model)
        if reason is not None:
            raise ValueError(f"fast generation is not available for this captioner: {reason}")
        self.model = model
        self.decoder = _PrefixSharedDecoder(_causal_lm_parts(model))
        self.kv_cache_bytes = kv_cache_bytes
        if int(max_prefill_tokens) < 1:
            raise ValueError(f"max_prefill_tokens must be positive, got {max_prefill_tokens}")
        self.max_prefill_tokens = int(max_prefill_tokens)
        self.max_clips_per_chunk = max_clips_per_chunk
        self.cuda_graphs = cuda_graphs

    @property
    def cuda_graphs(self) -> bool:
        return self.decoder.use_cuda_graphs

    @cuda_graphs.setter
    def cuda_graphs(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise TypeError(f"cuda_graphs must be True or False, got {value!r}")
        self.decoder.use_cuda_graphs = value

    # ------------------------------------------------------------------------------ chunking
    def _bytes_per_token(self) -> int:
        d = self.decoder
        return 2 * len(d.layers) * d.num_kv_heads * d.head_dim * torch.finfo(d.dtype).bits // 8

    def _budget(self) -> int:
        if self.kv_cache_bytes is not None:
            return int(self.kv_cache_bytes)
        device = self.decoder.device
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            # Blocks the caching allocator holds without a tensor in them (e.g. the buffers of an earlier call) are
            # reusable: without them a second call would get chunks sized to what the first one left over.
            cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
            return int(0.6 * (free + cached))
        return 1 << 30

    def _chunks(self, prompt_lengths: list[int], rows_per_clip: int, max_new_tokens: int) -> list[tuple[list[int], int]]:
        """(clip indices, prompt width of the key/value buffer) of each chunk, longest prompts first.

        The widest remaining prompt sets a buffer width and the number of clips that fit the budget with it; the
        following clips are cut into chunks of that many clips and keep that buffer (and, with `cuda_graphs`, its
        captured step) as long as their prompts fill at least half of its width."""
        order = sorted(range(len(prompt_lengths)), key=lambda i: -prompt_lengths[i])
        per_token, budget = self._bytes_per_token(), self._budget()
        chunks, start = [], 0
        while start < len(order):
            width = prompt_lengths[order[start]]
            per_chunk = max(1, budget // ((width + rows_per_clip * max_new_tokens) * per_token))
            if self.max_clips_per_chunk is not None:
                per_chunk = min(per_chunk, self.max_clips_per_chunk)
            end = start
            while end < len(order) and 2 * prompt_lengths[order[end]] >= width:
                end += 1
            for first in range(start, end, per_chunk):
                # Input order inside a chunk: one chunk then draws its samples exactly as `generate` does.
                chunks.append((sorted(order[first:min(end, first + per_chunk)]), width))
            start = end
        return chunks

    # ------------------------------------------------------------------------------ inputs
    def _check_inputs(self, input_ids, attention_mask):
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be [batch, tokens], got shape {tuple(input_ids.shape)}")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"attention_mask shape {tuple(attention_mask.shape)} differs from input_ids {tuple(input_ids.shape)}"
            )
        if bool((attention_mask[:, -1] == 0).any()):
            rows = torch.nonzero(attention_mask[:, -1] == 0).flatten().tolist()
            raise ValueError(
                f"rows {rows} end with padding: fast generation needs left-padded prompts "
                "(LLMAACProcessor pads on the left when no captions are given)"
            )
        return attention_mask

    def _prefill_chunk(self, chunk, input_ids, attention_mask, input_features, feature_attention_mask,
                       rows_per_clip, max_new_tokens):
        """Runs the chunk's prompts in sub-batches into the decoder's cache and readies it for decoding with
        `rows_per_clip` rows per clip; returns the next-token logits of each clip `[clips, V]`."""
        clip_indices, buffer_width = chunk
        model, device = self.model, self.decoder.device
        ids = input_ids[clip_indices]
        mask = attention_mask[clip_indices]
        width = int(mask.sum(-1).max())  # leading columns that are padding in every row are dropped
        ids, mask = ids[:, -width:].to(device), mask[:, -width:].to(device)
        # Sub-batches of (nearly) equal size: a small remainder batch would run weight-bound GEMMs.
        num_batches = -(-len(clip_indices) // max(1, self.max_prefill_tokens // width))
        per_batch = -(-len(clip_indices) // num_batches)
        self.decoder.begin(len(clip_indices), buffer_width, rows_per_clip, max_new_tokens)
        logits = []
        for start in range(0, len(clip_indices), per_batch):
            part = slice(start, start + per_batch)
            part_ids, part_mask = ids[part], mask[part]
            placeholders = part_ids == model.config.audio_token_id
            embeds = model.get_input_embeddings()(part_ids.masked_fill(placeholders, 0))
            if bool(placeholders.any()):
                if input_features is None:
                    raise ValueError("input_ids hold audio placeholders but no input_features were given")
                rows = clip_indices[part]
                features = input_features[rows]
                frame_mask = feature_attention_mask[rows] if feature_attention_mask is not None else None
                if frame_mask is not None:
                    frames = int(frame_mask.sum(-1).max())
                    frames = -(-frames // 16) * 16  # EAT's patch size: whole patches only
                    features, frame_mask = features[:, :frames], frame_mask[:, :frames].to(device)
                audio_embeds, audio_mask = model.get_audio_features(features.to(device), frame_mask)
                embeds = model.merge_audio_embeddings(part_ids, embeds, audio_embeds, audio_mask)
            logits.append(self.decoder.prefill(embeds, part_mask, part))
        self.decoder.start(mask)
        return torch.cat(logits)

    @staticmethod
    def _eos_tensor(eos_token_id, device):
        if eos_token_id is None:
            return None
        ids = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
        return torch.tensor(ids, dtype=torch.long, device=device) if ids else None

    @staticmethod
    def _check_lengths(max_new_tokens, min_new_tokens):
        if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
        if not isinstance(min_new_tokens, int) or not 0 <= min_new_tokens <= max_new_tokens:
            raise ValueError(f"min_new_tokens must be an integer in [0, max_new_tokens], got {min_new_tokens!r}")

    # ------------------------------------------------------------------------------ beam search
    @torch.no_grad()
    def beam_search(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        feature_attention_mask: torch.Tensor | None = None,
        *,
        beam_sizes: tuple[int, ...] | list[int] = (4,),
        num_return_sequences: int = 1,
        max_new_tokens: int = 30,
        min_new_tokens: int = 0,
        length_penalty: float = 1.0,
        early_stopping: bool | str = False,
        eos_token_id: int | list[int] | None = None,
        diversity_penalty: float = 0.0,
    ) -> list[list[list[Hypothesis]]]:
        """Beam searches over each clip's shared prompt cache.

        Args:
            input_ids, attention_mask, input_features, feature_attention_mask: the processor's output for
                generation (left-padded prompts).
            beam_sizes: one beam search per entry, all run together; `(4,)` is ordinary beam search with 4 beams,
                `(2, 3, 4, 5, 6, 7, 8)` SLAM-AAC's CLAP-Refine (35 beams per clip).
            num_return_sequences: best finished hypotheses returned per search (at most its beam size).
            max_new_tokens, min_new_tokens, length_penalty, early_stopping, eos_token_id: as in `generate`.
            diversity_penalty: > 0 makes the searches a *diverse* (group) beam search (Vijayakumar et al.):
                at each step the groups choose in order, and a group's log-probabilities are lowered by
                `diversity_penalty` times the number of times each token was just chosen by the earlier
                groups (Hamming diversity). The penalty enters the ranking scores, not the reported
                `log_prob_sum`.

        Returns:
            for each clip, for each search, its best `num_return_sequences` hypotheses, best first.
        """
        beam_sizes = [int(k) for k in beam_sizes]
        if not beam_sizes or any(k < 1 for k in beam_sizes):
            raise ValueError(f"beam_sizes must be positive integers, got {beam_sizes}")
        if not 1 <= num_return_sequences <= min(beam_sizes):
            raise ValueError(
                f"num_return_sequences must be between 1 and the smallest beam size {min(beam_sizes)}, "
                f"got {num_return_sequences}"
            )
        if diversity_penalty < 0:
            raise ValueError(f"diversity_penalty must be >= 0, got {diversity_penalty}")
        self._check_lengths(max_new_tokens, min_new_tokens)
        attention_mask = self._check_inputs(input_ids, attention_mask)
        rows_per_clip = sum(beam_sizes)
        lengths = attention_mask.sum(-1).tolist()
        results: list[Any] = [None] * input_ids.shape[0]
        try:
            for chunk in self._chunks(lengths, rows_per_clip, max_new_tokens):
                hypotheses = self._beam_search_chunk(
                    chunk, input_ids, attention_mask, input_features, feature_attention_mask, beam_sizes,
                    num_return_sequences, max_new_tokens, min_new_tokens, length_penalty, early_stopping,
                    eos_token_id, float(diversity_penalty),
                )
                for index, clip_hypotheses in zip(chunk[0], hypotheses):
                    results[index] = clip_hypotheses
        finally:  # the chunks of one call share the decoder's buffers; nothing is kept between calls
            self.decoder.release()
        return results

    def _beam_search_chunk(self, chunk, input_ids, attention_mask, input_features, feature_attention_mask,
                           beam_sizes, num_return, max_new_tokens, min_new_tokens, length_penalty,
                           early_stopping, eos_token_id, diversity_penalty):
        decoder, device = self.decoder, self.decoder.device
        clips, rows_per_clip = len(chunk[0]), sum(beam_sizes)
        logits = self._prefill_chunk(
            chunk, input_ids, attention_mask, input_features, feature_attention_mask, rows_per_clip, max_new_tokens
        )
        eos = self._eos_tensor(eos_token_id, device)
        state = _BeamGroups(clips, beam_sizes, max_new_tokens, 0 if eos is None else len(eos), device)
        logits = logits.repeat_interleave(rows_per_clip, dim=0)  # every beam starts from the prompt
        num_groups, widest = len(beam_sizes), max(beam_sizes)
        rows_are_slots = len(set(beam_sizes)) == 1  # e.g. plain beam search: no gather from rows to slots
        for step in range(max_new_tokens):
            raw = torch.log_softmax(logits.float(), dim=-1).view(clips, rows_per_clip, -1)
            # transformers' MinNewTokensLengthLogitsProcessor: EOS impossible before `min_new_tokens`.
            blocked = eos if eos is not None and step < min_new_tokens else None
            if rows_are_slots:
                slot_log_probs = raw.view(clips, num_groups, widest, -1)
            else:
                slot_log_probs = raw[:, state.slot_row]  # [C, G, K, V], padded slots repeat a row (-inf scores)
            state.all_hit = torch.ones((), dtype=torch.bool, device=device)
            if diversity_penalty > 0 and num_groups > 1:
                counts = torch.zeros(clips, raw.shape[-1], device=device)
                for group in range(num_groups):
                    part = slice(group, group + 1)
                    penalised = slot_log_probs[:, part] - diversity_penalty * counts[:, None, None, :]
                    state.select(part, penalised, raw, step, eos, max_new_tokens,
                                 length_penalty, early_stopping, blocked)
                    chosen = state.running_tokens[:, group, : beam_sizes[group], step]
                    counts.scatter_add_(1, chosen, torch.ones_like(chosen, dtype=counts.dtype))
            else:
                state.select(slice(None), slot_log_probs, raw, step, eos, max_new_tokens,
                             length_penalty, early_stopping, blocked)
            state.update_open(step + 1, max_new_tokens, length_penalty, early_stopping)
            if step + 1 >= max_new_tokens or state.done(early_stopping):
                break
            tokens, parent_rows = state.next_rows(step)
            logits = decoder.step(tokens.flatten(), step, parent_rows, paths_may_repeat=num_groups > 1)
        return self._collect_beams(state, beam_sizes, num_return)

    @staticmethod
    def _collect_beams(state, beam_sizes, num_return):
        scores = state.finished_scores.tolist()
        raws = state.finished_raw.tolist()
        lengths = state.finished_lengths.tolist()
        tokens = state.finished_tokens.cpu()
        output = []
        for clip in range(len(scores)):
            groups = []
            for group, size in enumerate(beam_sizes):
                hyps = []
                for slot in range(num_return):
                    length = lengths[clip][group][slot]
                    hyps.append(Hypothesis(tokens[clip, group, slot, :length].tolist(), raws[clip][group][slot],
                                           scores[clip][group][slot]))
                groups.append(hyps)
            output.append(groups)
        return output

    # ------------------------------------------------------------------------------ sampling / greedy
    @torch.no_grad()
    def sample(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        feature_attention_mask: torch.Tensor | None = None,
        *,
        num_return_sequences: int = 1,
        do_sample: bool = True,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        max_new_tokens: int = 30,
        min_new_tokens: int = 0,
        eos_token_id: int | list[int] | None = None,
        pad_token_id: int | None = None,
        generator: torch.Generator | None = None,
    ) -> list[list[Hypothesis]]:
        """Greedy decoding (`do_sample=False`) or multinomial sampling of `num_return_sequences` captions per clip.

        Sampling follows transformers' order of logits warpers (temperature, then top-k, then top-p) and draws
        one `torch.multinomial` per step over all rows, as `generate` does. Returns for each clip its
        hypotheses in sampling order; `score` is the mean log-probability.
        """
        if num_return_sequences < 1:
            raise ValueError(f"num_return_sequences must be positive, got {num_return_sequences}")
        if do_sample and not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if top_p is not None and not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        if top_k is not None and top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {top_k}")
        self._check_lengths(max_new_tokens, min_new_tokens)
        attention_mask = self._check_inputs(input_ids, attention_mask)
        lengths = attention_mask.sum(-1).tolist()
        results: list[Any] = [None] * input_ids.shape[0]
        try:
            for chunk in self._chunks(lengths, num_return_sequences, max_new_tokens):
                hyps = self._sample_chunk(
                    chunk, input_ids, attention_mask, input_features, feature_attention_mask, num_return_sequences,
                    do_sample, temperature, top_k, top_p, max_new_tokens, min_new_tokens, eos_token_id,
                    pad_token_id, generator,
                )
                for index, clip_hyps in zip(chunk[0], hyps):
                    results[index] = clip_hyps
        finally:
            self.decoder.release()
        return results

    @staticmethod
    def _warp(logits, temperature, top_k, top_p):
        if temperature != 1.0:
            logits = logits / temperature
        if top_k:
            k = min(int(top_k), logits.shape[-1])
            threshold = logits.topk(k, dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < threshold, float("-inf"))
        if top_p is not None and top_p < 1.0:
            sorted_logits, sorted_index = logits.sort(dim=-1, descending=False)
            cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
            remove = cumulative <= (1 - top_p)
            remove[..., -1:] = False  # keep at least one token
            logits = logits.masked_fill(remove.scatter(-1, sorted_index, remove), float("-inf"))
        return logits

    def _sample_chunk(self, chunk, input_ids, attention_mask, input_features, feature_attention_mask, per_clip,
                      do_sample, temperature, top_k, top_p, max_new_tokens, min_new_tokens, eos_token_id, pad_token_id,
                      generator):
        decoder, device = self.decoder, self.decoder.device
        logits = self._prefill_chunk(
            chunk, input_ids, attention_mask, input_features, feature_attention_mask, per_clip, max_new_tokens
        )
        eos = self._eos_tensor(eos_token_id, device)
        rows = len(chunk[0]) * per_clip
        logits = logits.repeat_interleave(per_clip, dim=0)
        tokens = torch.zeros(rows, max_new_tokens, dtype=torch.long, device=device)
        raw_sums = torch.zeros(rows, device=device)
        lengths = torch.zeros(rows, dtype=torch.long, device=device)
        unfinished = torch.ones(rows, dtype=torch.bool, device=device)
        for step in range(max_new_tokens):
            logits = logits.float()
            raw = torch.log_softmax(logits, dim=-1)
            if eos is not None and step < min_new_tokens:
                logits[:, eos] = float("-inf")
            if do_sample:
                probs = self._warp(logits, temperature, top_k, top_p).softmax(dim=-1)
                chosen = torch.multinomial(probs, num_samples=1, generator=generator).squeeze(1)
            else:
                chosen = logits.argmax(dim=-1)
            # Finished rows keep feeding the pad token, as `generate` does.
            chosen = torch.where(unfinished, chosen, torch.full_like(chosen, pad_token_id or 0))
            tokens[:, step] = chosen
            raw_sums += torch.where(unfinished, raw.gather(1, chosen[:, None]).squeeze(1), torch.zeros_like(raw_sums))
            lengths += unfinished.long()
            if eos is not None:
                unfinished &= ~torch.isin(chosen, eos)
            if step + 1 >= max_new_tokens or not bool(unfinished.any()):
                break
            logits = decoder.step(chosen, step)
        tokens, raw_sums, lengths = tokens.cpu(), raw_sums.tolist(), lengths.tolist()
        output = []
        for clip in range(len(chunk[0])):
            hyps = []
            for row in range(clip * per_clip, (clip + 1) * per_clip):
                total = raw_sums[row]
                hyps.append(Hypothesis(tokens[row, : lengths[row]].tolist(), total, total / max(1, lengths[row])))
            output.append(hyps)
        return output


__all__ = ["FastCaptionGenerator", "Hypothesis", "SUPPORTED_MODEL_TYPES", "fast_generation_unsupported_reason"]
