"""EAT-CLAP: contrastive audio-text pretraining with an EAT audio tower and any HF text encoder.

`EATClapModel` = `EATModel` (audio) + `AutoModel.from_config(text_config)` (text) + projection heads
into a joint space + a learnable temperature, trained with the symmetric InfoNCE loss of CLIP /
CLAP. With several processes (torchrun / `accelerate launch`) the loss uses every process's
embeddings as negatives, gathered with a differentiable all-gather, so the effective batch of
negatives is the global batch.

open_clip-style API: `encode_audio` / `encode_text` return projected embeddings
(`normalize=True` for unit length); `get_audio_features` / `get_text_features` are the
transformers-style names and always normalise.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from transformers import AutoModel, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.utils import ModelOutput

from .configuration_eat_clap import EATClapConfig
from .modeling_eat import EATModel


@dataclass
class EATClapOutput(ModelOutput):
    """Output of [`EATClapModel`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, returned with `return_loss=True`):
            symmetric InfoNCE loss (mean of audio->text and text->audio cross-entropies), with the
            negatives of every process when training is distributed.
        logits_per_audio (`torch.FloatTensor` of shape `(audio_batch, text_batch)`):
            scaled cosine similarities of this process's clips and captions.
        logits_per_text (`torch.FloatTensor` of shape `(text_batch, audio_batch)`): the transpose.
        audio_embeds (`torch.FloatTensor` of shape `(audio_batch, projection_dim)`): normalised.
        text_embeds (`torch.FloatTensor` of shape `(text_batch, projection_dim)`): normalised.
        logit_scale (`torch.FloatTensor` of shape `()`): the (clamped) inverse temperature used.
        audio_model_output / text_model_output: the towers' own outputs.
        hard_negative_embeds (`torch.FloatTensor` of shape `(num_hard_negatives, projection_dim)`): normalised
            embeddings of the hard negatives, when they were given.
    """

    loss: torch.FloatTensor | None = None
    logits_per_audio: torch.FloatTensor | None = None
    logits_per_text: torch.FloatTensor | None = None
    audio_embeds: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    logit_scale: torch.FloatTensor | None = None
    audio_model_output: Any = None
    text_model_output: Any = None
    hard_negative_embeds: torch.FloatTensor | None = None

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(
            v.to_tuple() if isinstance(v, ModelOutput) else v
            for k, v in self.items()
        )


class EATClapProjection(nn.Module):
    """Tower width -> joint width: Linear -> activation -> Linear (`"mlp"`) or one Linear."""

    def __init__(self, in_features: int, config: EATClapConfig):
        super().__init__()
        self.linear1 = nn.Linear(in_features, config.projection_dim)
        if config.projection_type == "mlp":
            self.activation = ACT2FN[config.projection_hidden_act]
            self.linear2 = nn.Linear(config.projection_dim, config.projection_dim)
        else:
            self.activation = None
            self.linear2 = None

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.linear1(hidden_states)
        if self.linear2 is not None:
            hidden_states = self.linear2(self.activation(hidden_states))
        return hidden_states


def _gather_with_grad(embeds: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All processes' rows (this process's rows keep their gradient path through the differentiable
    all-gather) and the offset of this process's rows in the result. Batches may differ in size
    across processes (the last batch of an epoch): rows are padded for the collective and cut after."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return embeds, 0
    from torch.distributed.nn.functional import all_gather

    world, rank = dist.get_world_size(), dist.get_rank()
    local = torch.tensor([embeds.shape[0]], device=embeds.device)
    sizes = [torch.zeros_like(local) for _ in range(world)]
    dist.all_gather(sizes, local)
    sizes = [int(s.item()) for s in sizes]
    longest = max(sizes)
    padded = F.pad(embeds, (0, 0, 0, longest - embeds.shape[0]))
    with warnings.catch_warnings():
        # torch >= 2.10 flags this public autograd all-gather as deprecated in favour of private
        # `_functional_collectives` helpers whose names keep changing; it still works.
        warnings.simplefilter("ignore", FutureWarning)
        gathered = all_gather(padded)
    return torch.cat([g[:n] for g, n in zip(gathered, sizes)]), sum(sizes[:rank])


def check_hard_negative_owners(hard_negative_owners: torch.Tensor, num_clips: int) -> None:
    """Raises a ValueError unless `hard_negative_owners` is a 1-D integer tensor of clip indices in `[0, num_clips)`.

    It reads the values, so call it where they are on the CPU (a data collator, user code): on an accelerator
    `min()` / `max()` would make the host wait for the device. `clap_contrastive_loss` checks CPU owners only.
    """
    if not isinstance(hard_negative_owners, torch.Tensor) or hard_negative_owners.ndim != 1:
        raise ValueError(
            "hard_negative_owners must be a 1-D tensor of clip indices, got "
            + (f"shape {tuple(hard_negative_owners.shape)}" if isinstance(hard_negative_owners, torch.Tensor)
               else type(hard_negative_owners).__name__)
        )
    if hard_negative_owners.dtype.is_floating_point or hard_negative_owners.dtype.is_complex or (
            hard_negative_owners.dtype == torch.bool):
        raise ValueError(f"hard_negative_owners must hold integer clip indices, got dtype {hard_negative_owners.dtype}.")
    if hard_negative_owners.numel() and (
            int(hard_negative_owners.min()) < 0 or int(hard_negative_owners.max()) >= num_clips):
        raise ValueError(
            f"hard_negative_owners must index the {num_clips} clips of the batch, got values "
            f"{sorted(set(hard_negative_owners.tolist()))}."
        )


def _own_hard_negative_logits(
    audio_embeds: torch.Tensor,
    hard_negative_embeds: torch.Tensor,
    hard_negative_owners: torch.Tensor,
    logit_scale: torch.Tensor,
    hard_negative_weight: float,
) -> torch.Tensor:
    """`[clips, hard negatives]` audio->text logits in which clip i sees only its own hard negatives (the others are
    -inf), each counted `hard_negative_weight` times in the softmax denominator (log-weight added to its logit).

    Only shapes are checked here, plus the owners' values when they are on the CPU: reading device values
    (`min()` / `max()`) would stall the host twice per training step. On an accelerator an owner outside
    `[0, clips)` is not detected; its column is -inf for every clip, so that hard negative is left out. The
    training collator (`train/train_clap.py`) builds the owners from its item indices, so they are in range."""
    if hard_negative_embeds.ndim != 2 or hard_negative_embeds.shape[1] != audio_embeds.shape[1]:
        raise ValueError(
            f"hard_negative_embeds must be [num_hard_negatives, {audio_embeds.shape[1]}], got "
            f"{tuple(hard_negative_embeds.shape)}."
        )
    if not isinstance(hard_negative_owners, torch.Tensor) or (
            tuple(hard_negative_owners.shape) != (hard_negative_embeds.shape[0],)):
        raise ValueError(
            "hard_negative_owners must give the clip (row of this batch) of each hard negative: expected shape "
            f"({hard_negative_embeds.shape[0]},) (a tensor), got "
            + (f"shape {tuple(hard_negative_owners.shape)}." if isinstance(hard_negative_owners, torch.Tensor)
               else f"{type(hard_negative_owners).__name__}.")
        )
    if hard_negative_owners.device.type == "cpu":
        check_hard_negative_owners(hard_negative_owners, audio_embeds.shape[0])
    owners = hard_negative_owners.to(device=audio_embeds.device, dtype=torch.long)
    logits = (logit_scale * audio_embeds @ hard_negative_embeds.T).float() + math.log(hard_negative_weight)
    rows = torch.arange(audio_embeds.shape[0], device=audio_embeds.device)
    return logits.masked_fill(owners[None, :] != rows[:, None], float("-inf"))


def clap_contrastive_loss(
    audio_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    logit_scale: torch.Tensor,
    *,
    gather_across_processes: bool = True,
    hard_negative_embeds: torch.Tensor | None = None,
    hard_negative_owners: torch.Tensor | None = None,
    hard_negative_weight: float = 1.0,
) -> torch.Tensor:
    """Symmetric InfoNCE: clip i matches caption i; every other caption of the (global) batch is a
    negative for clip i and vice versa. Embeddings must be normalised.

    Distributed: each process scores its own rows against the gathered rows of all processes (the
    "local loss" of open_clip); with DDP averaging gradients this is the gradient of the global-batch
    loss, at a fraction of the memory of the full similarity matrix.

    Compositional hard negatives (CompA-CLAP style): `hard_negative_embeds [M, dim]` are captions that
    describe a different scene than clip `hard_negative_owners[m]`'s own caption (a changed count, a swapped
    order, a flipped attribute). They join the audio->text softmax of their own clip only, each weighted
    `hard_negative_weight` times in its denominator (0: ignored). Other clips never see them: a perturbation of
    clip j's caption may well describe clip i (few event types, few counts), and it is no harder for clip i
    than clip j's caption, which is already a negative; this also keeps them local (never gathered). They are
    no text->audio anchors, having no clip of their own. With none (M = 0) the loss is the plain one.
    The owners' values are checked only when they are on the CPU (see `check_hard_negative_owners`): the loss
    reads no device value, so it adds no host-device synchronisation to a training step.
    """
    if audio_embeds.shape != text_embeds.shape:
        raise ValueError(
            f"Contrastive loss needs one caption per clip: got {tuple(audio_embeds.shape)} audio and "
            f"{tuple(text_embeds.shape)} text embeddings."
        )
    if not (math.isfinite(hard_negative_weight) and hard_negative_weight >= 0):
        raise ValueError(f"hard_negative_weight must be a finite number >= 0, got {hard_negative_weight!r}.")
    if gather_across_processes:
        all_audio, offset = _gather_with_grad(audio_embeds)
        all_text, _ = _gather_with_grad(text_embeds)
    else:
        all_audio, all_text, offset = audio_embeds, text_embeds, 0
    labels = torch.arange(audio_embeds.shape[0], device=audio_embeds.device) + offset
    logits_audio_to_text = (logit_scale * audio_embeds @ all_text.T).float()
    logits_text_to_audio = (logit_scale * text_embeds @ all_audio.T).float()
    if hard_negative_embeds is not None and hard_negative_embeds.shape[0] > 0 and hard_negative_weight > 0:
        hard_logits = _own_hard_negative_logits(
            audio_embeds, hard_negative_embeds, hard_negative_owners, logit_scale, hard_negative_weight
        )
        logits_audio_to_text = torch.cat([logits_audio_to_text, hard_logits], dim=1)
    return 0.5 * (F.cross_entropy(logits_audio_to_text, labels) + F.cross_entropy(logits_text_to_audio, labels))


class EATClapPreTrainedModel(PreTrainedModel):
    config_class = EATClapConfig
    config: EATClapConfig
    base_model_prefix = "eat_clap"
    main_input_name = "input_features"
    input_modalities = ("audio", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["EATLayer"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # The towers are PreTrainedModels and initialise themselves (transformers dispatches their
        # own `_init_weights`), so the only Linear layers seen here are the projection heads'.
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, EATClapModel):
            init.constant_(module.logit_scale, math.log(self.config.logit_scale_init_value))


class EATClapModel(EATClapPreTrainedModel):
    """EAT audio tower + any HF text encoder, projected into one normalised embedding space."""

    def __init__(self, config: EATClapConfig, *, audio_model: EATModel | None = None, text_model: PreTrainedModel | None = None):
        super().__init__(config)
        self.audio_model = audio_model if audio_model is not None else EATModel(config.audio_config)
        self.text_model = text_model if text_model is not None else AutoModel.from_config(config.text_config)
        if config.text_pooling != "pooler" and isinstance(getattr(self.text_model, "pooler", None), nn.Module):
            # An unused pooler would leave parameters without gradients (DDP would then need
            # find_unused_parameters); BERT-like models skip a pooler set to None.
            self.text_model.pooler = None
        text_width = getattr(config.text_config, "hidden_size", None) or getattr(config.text_config, "d_model", None)
        if text_width is None:
            raise ValueError(
                f"Cannot tell the width of text model type {config.text_config.model_type!r}: its config has "
                "neither hidden_size nor d_model."
            )
        self.audio_projection = EATClapProjection(config.audio_config.hidden_size, config)
        self.text_projection = EATClapProjection(text_width, config)
        self.logit_scale = nn.Parameter(
            torch.tensor(math.log(config.logit_scale_init_value)), requires_grad=config.learnable_logit_scale
        )
        self.post_init()

    @classmethod
    def from_audio_text_pretrained(
        cls,
        audio_model_name_or_path: str | None,
        text_model_name_or_path: str | None,
        **config_kwargs,
    ) -> "EATClapModel":
        """Start from a pretrained EAT (e.g. a `llm-aac convert-eat` folder) and a pretrained text
        encoder folder / Hub id (e.g. `roberta-base`); either may be None for a random tower built
        from `config_kwargs["audio_config"]` / `["text_config"]`. The heads are new."""
        audio_model = EATModel.from_pretrained(audio_model_name_or_path) if audio_model_name_or_path else None
        text_model = AutoModel.from_pretrained(text_model_name_or_path) if text_model_name_or_path else None
        if audio_model is not None:
            config_kwargs["audio_config"] = audio_model.config
        if text_model is not None:
            config_kwargs["text_config"] = text_model.config
        return cls(EATClapConfig(**config_kwargs), audio_model=audio_model, text_model=text_model)

    # -- towers ------------------------------------------------------------------------------
    def _pool_audio(self, output) -> torch.Tensor:
        hidden = output.last_hidden_state
        if self.config.audio_pooling == "cls":
            return hidden[:, 0]
        mask = output.attention_mask[:, 1:].unsqueeze(-1).to(hidden.dtype)
        return (hidden[:, 1:] * mask).sum(1) / mask.sum(1).clamp(min=1)

    def _pool_text(self, output, attention_mask: torch.Tensor | None) -> torch.Tensor:
        pooling = self.config.text_pooling
        if pooling == "pooler":
            pooled = getattr(output, "pooler_output", None)
            if pooled is None:
                raise ValueError(
                    f"text_pooling='pooler' but {type(self.text_model).__name__} returns no pooler_output; "
                    "use 'cls', 'mean' or 'last'."
                )
            return pooled
        hidden = output.last_hidden_state
        if pooling == "cls":
            return hidden[:, 0]
        if attention_mask is None:
            attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
        if pooling == "mean":
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        # "last": the last real token; works for right padding and for left padding.
        positions = torch.arange(hidden.shape[1], device=hidden.device)
        last = (attention_mask.bool() * positions).argmax(dim=1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]

    def encode_audio(
        self, input_features: torch.Tensor, attention_mask: torch.Tensor | None = None, *, normalize: bool = False
    ) -> torch.Tensor:
        """Projected audio embeddings `[batch, projection_dim]` from `input_features [batch, frames, bins]`
        and the feature extractor's frame mask."""
        output = self.audio_model(input_features=input_features, attention_mask=attention_mask, return_dict=True)
        embeds = self.audio_projection(self._pool_audio(output))
        return F.normalize(embeds, dim=-1) if normalize else embeds

    def encode_text(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        *,
        normalize: bool = False,
    ) -> torch.Tensor:
        """Projected text embeddings `[batch, projection_dim]` from tokenised captions."""
        output = self._run_text_model(input_ids, attention_mask, token_type_ids)
        embeds = self.text_projection(self._pool_text(output, attention_mask))
        return F.normalize(embeds, dim=-1) if normalize else embeds

    def _run_text_model(self, input_ids, attention_mask, token_type_ids, **kwargs):
        if not isinstance(input_ids, torch.Tensor) or input_ids.ndim != 2:
            raise ValueError(
                "input_ids must be a [batch, tokens] tensor, got "
                + (f"shape {tuple(input_ids.shape)}" if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__)
            )
        if input_ids.shape[0] == 0 or input_ids.shape[1] == 0:
            raise ValueError(f"input_ids is empty: shape {tuple(input_ids.shape)}.")
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        return self.text_model(**inputs, return_dict=True, **kwargs)

    def get_audio_features(self, input_features: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised audio embeddings `[batch, projection_dim]`."""
        return self.encode_audio(input_features, attention_mask, normalize=True)

    def get_text_features(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Normalised text embeddings `[batch, projection_dim]`."""
        return self.encode_text(input_ids, attention_mask, token_type_ids, normalize=True)

    def get_logit_scale(self) -> torch.Tensor:
        """`exp(logit_scale)`, clamped to `config.max_logit_scale`."""
        return self.logit_scale.clamp(max=math.log(self.config.max_logit_scale)).exp()

    # -- joint forward -----------------------------------------------------------------------
    def forward(
        self,
        input_features: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        audio_attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        return_loss: bool | None = None,
        hard_negative_input_ids: torch.Tensor | None = None,
        hard_negative_attention_mask: torch.Tensor | None = None,
        hard_negative_token_type_ids: torch.Tensor | None = None,
        hard_negative_owners: torch.Tensor | None = None,
        hard_negative_weight: float = 1.0,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> EATClapOutput | tuple:
        r"""
        Args:
            input_features (`torch.FloatTensor` of shape `(batch, frames, bins)`): audio features.
            input_ids (`torch.LongTensor` of shape `(batch, tokens)`): tokenised captions, caption `i`
                belonging to clip `i`.
            attention_mask (`torch.LongTensor` of shape `(batch, tokens)`, *optional*): text padding mask.
            audio_attention_mask (`torch.LongTensor` of shape `(batch, frames)`, *optional*): the feature
                extractor's frame mask.
            return_loss (`bool`, *optional*): compute the symmetric InfoNCE loss.
            hard_negative_input_ids (`torch.LongTensor` of shape `(num_hard_negatives, tokens)`, *optional*):
                tokenised compositional hard negatives (captions edited to describe a different scene, e.g. by
                `llm_aac.processing.caption_perturbations`), with `hard_negative_attention_mask` /
                `hard_negative_token_type_ids` as for the captions.
            hard_negative_owners (`torch.LongTensor` of shape `(num_hard_negatives,)`, *optional*): the clip (row of
                this batch) whose caption each hard negative perturbs; it is a negative for that clip only.
            hard_negative_weight (`float`, *optional*, defaults to 1.0): how many in-batch negatives each hard
                negative counts for in its clip's audio->text softmax (see `clap_contrastive_loss`).
        """
        if input_features is None or input_ids is None:
            raise ValueError(
                "EATClapModel.forward needs both input_features and input_ids; use encode_audio / "
                "encode_text (or get_audio_features / get_text_features) for one modality."
            )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        audio_output = self.audio_model(
            input_features=input_features,
            attention_mask=audio_attention_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        text_output = self._run_text_model(
            input_ids,
            attention_mask,
            token_type_ids,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        audio_embeds = F.normalize(self.audio_projection(self._pool_audio(audio_output)), dim=-1)
        text_embeds = F.normalize(self.text_projection(self._pool_text(text_output, attention_mask)), dim=-1)
        hard_negative_embeds = None
        if hard_negative_input_ids is not None:
            if hard_negative_owners is None:
                raise ValueError("hard_negative_input_ids need hard_negative_owners (the clip of each hard negative).")
            hard_negative_embeds = self.get_text_features(
                hard_negative_input_ids, hard_negative_attention_mask, hard_negative_token_type_ids
            )
        logit_scale = self.get_logit_scale()
        logits_per_audio = logit_scale * audio_embeds @ text_embeds.T
        loss = None
        if return_loss:
            loss = clap_contrastive_loss(
                audio_embeds, text_embeds, logit_scale, gather_across_processes=self.training,
                hard_negative_embeds=hard_negative_embeds, hard_negative_owners=hard_negative_owners,
                hard_negative_weight=hard_negative_weight,
            )
        output = EATClapOutput(
            loss=loss,
            logits_per_audio=logits_per_audio,
            logits_per_text=logits_per_audio.T,
            audio_embeds=audio_embeds,
            text_embeds=text_embeds,
            logit_scale=logit_scale,
            audio_model_output=audio_output,
            text_model_output=text_output,
            hard_negative_embeds=hard_negative_embeds,
        )
        return output if return_dict else output.to_tuple()


__all__ = ["EATClapModel", "EATClapOutput", "EATClapPreTrainedModel", "check_hard_negative_owners",
           "clap_contrastive_loss"]
