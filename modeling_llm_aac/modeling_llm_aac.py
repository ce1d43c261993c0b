"""LLM-AAC captioner: EAT encoder -> projector -> causal language model (optionally with a LoRA adapter).

Each clip's audio embeddings replace the audio placeholder tokens of its prompt (`masked_scatter`, as in
llava / qwen2-audio); the language model then reads prompt + audio + caption like any text. The language
model is any `AutoModelForCausalLM` kept whole (with its head), so that peft can wrap it and any causal LM
can be plugged in.
"""

from __future__ import annotations

import copy
import inspect
import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import AutoModelForCausalLM, GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers.generation import LogitsProcessor, LogitsProcessorList
from transformers.modeling_outputs import CausalLMOutputWithPast

try:  # transformers >= 5.0: the weight initialisers that respect already-loaded parameters
    from transformers import initialization as hf_init
except ImportError:  # pragma: no cover - depends on the installed transformers
    hf_init = None

try:
    from peft import LoraConfig, PeftModel, get_peft_model
except ImportError:  # pragma: no cover - peft is a dependency, but keep the file importable without it
    LoraConfig = PeftModel = get_peft_model = None

from .configuration_eat import EATConfig
from .configuration_llm_aac import DEFAULT_LORA, LLMAACConfig
from .modeling_eat import EATModel
from .processing_llm_aac import ensure_audio_token
from .projectors import LLMAACQFormerProjector, build_projector

# The part of peft's key names that wrapping adds in front of the language model's own keys.
PEFT_PREFIX = "base_model.model."


@dataclass
class LLMAACCausalLMOutputWithPast(CausalLMOutputWithPast):
    r"""Language-model outputs (loss, logits, cache, hidden states, attentions) plus the audio tokens.

    audio_embeds (`torch.FloatTensor` of shape `(batch, num_audio_tokens, text_hidden_size)`, *optional*):
        projector output for the clips of this step (zero rows beyond each clip's `audio_attention_mask`).
    audio_attention_mask (`torch.BoolTensor` of shape `(batch, num_audio_tokens)`, *optional*):
        which rows of `audio_embeds` are real audio tokens.
    """

    audio_embeds: torch.FloatTensor | None = None
    audio_attention_mask: torch.BoolTensor | None = None


def _lora_config_kwargs(lora: bool | dict | Any | None) -> dict | None:
    """Normalises the `lora` argument of the builder into `LoraConfig` keyword arguments (or None)."""
    if lora is None or lora is False:
        return None
    if lora is True:
        return copy.deepcopy(DEFAULT_LORA)
    if isinstance(lora, dict):
        return {**copy.deepcopy(DEFAULT_LORA), **lora}
    if LoraConfig is not None and isinstance(lora, LoraConfig):
        # Keep only what differs from peft's defaults: the dict then loads with older or newer peft too.
        defaults = LoraConfig().to_dict()
        kwargs = {}
        for key, value in lora.to_dict().items():
            if key in ("peft_type", "task_type", "base_model_name_or_path", "revision", "peft_version"):
                continue
            if isinstance(value, set):
                value = sorted(value)
            default = defaults.get(key)
            if isinstance(default, set):
                default = sorted(default)
            if value != default:
                kwargs[key] = value
        return kwargs
    raise TypeError(f"lora must be None, a bool, a dict of LoraConfig arguments or a peft.LoraConfig, got {type(lora)}")


class SuppressAudioPlaceholder(LogitsProcessor):
    """Never generate the audio placeholder: it marks where audio embeddings go and is not text."""

    def __init__(self, audio_token_id: int):
        self.audio_token_id = audio_token_id

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if 0 <= self.audio_token_id < scores.shape[-1]:
            scores = scores.clone()
            scores[:, self.audio_token_id] = -float("inf")
        return scores


class LLMAACPreTrainedModel(PreTrainedModel):
    config_class = LLMAACConfig
    config: LLMAACConfig
    main_input_name = "input_ids"
    input_modalities = ("audio", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["EATLayer", "LLMAACQFormerLayer"]
    _skip_keys_device_placement = ["past_key_values", "cache"]
    _supports_sdpa = True
    _supports_flash_attn = False  # EAT and the Q-Former use key-padding masks
    _supports_flex_attn = False

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # Sub-models (EAT, the language model) dispatch to their own `_init_weights`; this only sees the
        # projector's modules.
        super()._init_weights(module)
        if isinstance(module, LLMAACQFormerProjector):
            std = getattr(self.config, "initializer_range", 0.02)
            if hf_init is not None:
                hf_init.normal_(module.query_embeds, mean=0.0, std=std)
            else:  # pragma: no cover
                module.query_embeds.normal_(mean=0.0, std=std)


class LLMAACForConditionalGeneration(LLMAACPreTrainedModel, GenerationMixin):
    """Audio captioner: `encoder` (EAT), `projector` (linear or Q-Former), `language_model` (causal LM).

    Inputs are what [`LLMAACProcessor`] returns: `input_ids` / `attention_mask` (prompt with one audio
    placeholder token per audio embedding, plus the caption when training), `input_features` /
    `feature_attention_mask` (one clip per sequence) and optionally `labels` (-100 outside the caption).

    Build one from pretrained parts with [`~LLMAACForConditionalGeneration.from_pretrained_parts`], or from
    a saved folder with `from_pretrained`.

    Args:
        config ([`LLMAACConfig`]): the whole captioner; with `config.lora` set, the language model is wrapped
            in a peft LoRA adapter at construction (so a saved folder reloads base + adapter in one go).
        encoder (`EATModel`, *optional*): an already built / loaded encoder to use instead of a randomly
            initialised one (its config must be `config.audio_config`).
        language_model (`PreTrainedModel`, *optional*): an already loaded causal LM to use instead of
            `AutoModelForCausalLM.from_config(config.text_config)`.
    """

    def __init__(
        self,
        config: LLMAACConfig,
        *,
        encoder: EATModel | None = None,
        language_model: PreTrainedModel | None = None,
    ):
        super().__init__(config)
        if encoder is not None:
            _mark_initialized(encoder)
        if language_model is not None:
            _mark_initialized(language_model)
        self.encoder = encoder if encoder is not None else EATModel(config.audio_config)
        self.projector = build_projector(config)
        self.language_model = (
            language_model if language_model is not None else AutoModelForCausalLM.from_config(config.text_config)
        )
        self.post_init()
        # The adapter is added after `post_init` so that weight initialisation never touches LoRA's own
        # (identity-preserving) initialisation.
        if config.lora is not None:
            self._add_lora_adapter(config.lora)
        self.apply_freezing()

    # ----------------------------------------------------------------------------------------- parts
    @property
    def has_lora(self) -> bool:
        return PeftModel is not None and isinstance(self.language_model, PeftModel)

    def get_base_language_model(self) -> PreTrainedModel:
        """The causal LM itself, below the peft wrapper if there is one."""
        return self.language_model.get_base_model() if self.has_lora else self.language_model

    def get_input_embeddings(self) -> nn.Module:
        return self.get_base_language_model().get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.get_base_language_model().set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module | None:
        return self.get_base_language_model().get_output_embeddings()

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.get_base_language_model().set_output_embeddings(value)

    def get_encoder(self) -> EATModel:
        return self.encoder

    def _rename_tied_keys(self, old_prefix: str, new_prefix: str) -> None:
        tied = getattr(self, "all_tied_weights_keys", None)
        if not tied:
            return

        def rename(key: str) -> str:
            return new_prefix + key[len(old_prefix):] if key.startswith(old_prefix) else key

        self.all_tied_weights_keys = {rename(k): rename(v) for k, v in tied.items()}

    def _add_lora_adapter(self, lora_kwargs: dict) -> None:
        if get_peft_model is None:
            raise ImportError("config.lora is set but peft is not installed: pip install peft")
        if self.has_lora:
            raise ValueError("the language model already carries a LoRA adapter")
        try:
            lora_config = LoraConfig(**lora_kwargs)
        except TypeError as error:
            raise ValueError(f"config.lora {lora_kwargs} is not a valid set of peft.LoraConfig arguments: {error}") from None
        self.language_model = get_peft_model(self.language_model, lora_config)
        # peft decides what the adapter trains (LoRA matrices, `modules_to_save` copies, ...); remember it,
        # since loading weights later resets every `requires_grad`.
        self._adapter_trainable = {n for n, p in self.language_model.named_parameters() if p.requires_grad}
        if not self._adapter_trainable:
            raise ValueError(f"config.lora {lora_kwargs} matched no module of the language model")
        self._rename_tied_keys("language_model.", "language_model." + PEFT_PREFIX)

    def add_lora(self, lora: bool | dict | Any = True) -> LLMAACForConditionalGeneration:
        """Adds a LoRA adapter to the language model (e.g. after a projector-only training stage).

        Args:
            lora: `True` for SLAM-AAC's adapter (r 8, alpha 32, dropout 0.05, `q_proj`, `v_proj`), a dict of
                `peft.LoraConfig` arguments overriding those defaults, or a `peft.LoraConfig`.
        """
        lora_kwargs = _lora_config_kwargs(lora)
        if lora_kwargs is None:
            raise ValueError("add_lora needs an adapter description (True, a dict or a peft.LoraConfig)")
        if not self.config.freeze_language_model:
            raise ValueError("LoRA trains an adapter over a frozen language model; set config.freeze_language_model=True first")
        self._add_lora_adapter(lora_kwargs)
        self.config.lora = lora_kwargs
        self.apply_freezing()
        return self

    def apply_freezing(self) -> None:
        """Sets `requires_grad` from the config: frozen encoder / language model, trainable projector and
        LoRA adapter. Called at construction and after loading; call again after changing `config.freeze_*`."""
        self.encoder.requires_grad_(not self.config.freeze_encoder)
        self.projector.requires_grad_(True)
        if self.has_lora:
            for name, parameter in self.language_model.named_parameters():
                parameter.requires_grad_(name in self._adapter_trainable)
        else:
            self.language_model.requires_grad_(not self.config.freeze_language_model)

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        loaded = super().from_pretrained(*args, **kwargs)
        # Loading replaces the parameters, which resets `requires_grad`: restore the configured freezing.
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        model.apply_freezing()
        return loaded

    def train(self, mode: bool = True):
        super().train(mode)
        # A frozen encoder keeps its inference behaviour (no dropout / drop-path) while the rest trains.
        if mode and self.config.freeze_encoder:
            self.encoder.eval()
        return self

    def merge_lora(self) -> LLMAACForConditionalGeneration:
        """Folds the LoRA adapter into the language model's weights (for deployment) and removes peft.

        The logits do not change; `save_pretrained` afterwards writes a plain model with `config.lora = None`.
        """
        if not self.has_lora:
            raise ValueError("this model has no LoRA adapter to merge (config.lora is None)")
        self.language_model = self.language_model.merge_and_unload()
        self.config.lora = None
        self._rename_tied_keys("language_model." + PEFT_PREFIX, "language_model.")
        self.apply_freezing()
        return self

    # ----------------------------------------------------------------------------------------- audio
    def get_audio_features(
        self, input_features: torch.Tensor, feature_attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encodes clips into LLM-width audio embeddings.

        Args:
            input_features (`torch.FloatTensor` of shape `(batch, frames, bins)`): feature-extractor output.
            feature_attention_mask (`torch.Tensor` of shape `(batch, frames)`, *optional*): 1 for real frames.

        Returns:
            `(audio_embeds [batch, n, text_hidden_size], audio_attention_mask [batch, n])`; clip `i` has
            `config.num_audio_tokens(real frames of clip i)` real tokens, first in its row.
        """
        encoder_dtype = next(self.encoder.parameters()).dtype
        input_features = input_features.to(encoder_dtype)
        layer = self.config.encoder_layer
        read_last = layer in (-1, self.config.audio_config.num_hidden_layers)
        encoder_trainable = any(p.requires_grad for p in self.encoder.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and encoder_trainable):
            encoder_outputs = self.encoder(
                input_features,
                attention_mask=feature_attention_mask,
                output_hidden_states=not read_last,
                return_dict=True,
            )
        hidden_states = encoder_outputs.last_hidden_state if read_last else encoder_outputs.hidden_states[layer]
        projector_dtype = next(self.projector.parameters()).dtype
        return self.projector(hidden_states.to(projector_dtype), encoder_outputs.attention_mask)

    def merge_audio_embeddings(
        self,
        input_ids: torch.LongTensor,
        inputs_embeds: torch.Tensor,
        audio_embeds: torch.Tensor,
        audio_attention_mask: torch.Tensor,
    ) -> torch.Tensor:
        """Writes each clip's audio tokens over the placeholder tokens of its sequence (row `i` <- clip `i`)."""
        placeholder_mask = input_ids == self.config.audio_token_id
        placeholders_per_row = placeholder_mask.sum(dim=1).tolist()
        audio_tokens_per_clip = audio_attention_mask.sum(dim=1).tolist()
        if placeholders_per_row != audio_tokens_per_clip:
            rows = [
                f"row {i}: {p} placeholders vs {a} audio tokens"
                for i, (p, a) in enumerate(zip(placeholders_per_row, audio_tokens_per_clip))
                if p != a
            ]
            raise ValueError(
                f"audio placeholder tokens (id {self.config.audio_token_id}) do not match the clips' audio tokens: "
                + "; ".join(rows)
                + ". Build the inputs with LLMAACProcessor, which expands each prompt's single "
                f"'{self.config.audio_token}' to config.num_audio_tokens(frames) placeholders."
            )
        audio_tokens = audio_embeds[audio_attention_mask.to(audio_embeds.device)]
        audio_tokens = audio_tokens.to(device=inputs_embeds.device, dtype=inputs_embeds.dtype)
        mask = placeholder_mask.to(inputs_embeds.device).unsqueeze(-1).expand_as(inputs_embeds)
        return inputs_embeds.masked_scatter(mask, audio_tokens)

    # --------------------------------------------------------------------------------------- forward
    def _language_model_accepts(self, name: str) -> bool:
        cache = self.__dict__.setdefault("_lm_forward_parameters", {})
        base = self.get_base_language_model()
        key = id(base)
        if key not in cache:
            cache[key] = set(inspect.signature(base.forward).parameters)
        return name in cache[key]

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        input_features: torch.FloatTensor | None = None,
        feature_attention_mask: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        return_dict: bool | None = None,
        **kwargs,
    ) -> LLMAACCausalLMOutputWithPast | tuple:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch, seq)`): prompt (+ caption) tokens, with
                `config.num_audio_tokens(frames)` audio placeholder tokens per clip.
            input_features (`torch.FloatTensor` of shape `(batch, frames, bins)`, *optional*): one clip per
                sequence. Needed whenever `input_ids` holds placeholders (the first generation step);
                later generation steps run without it.
            feature_attention_mask (`torch.Tensor` of shape `(batch, frames)`, *optional*): 1 for real frames.
            attention_mask (`torch.Tensor` of shape `(batch, seq)`, *optional*): 1 for real tokens. Left or
                right padding both work: positions are counted from it when `position_ids` is not given.
            position_ids (`torch.LongTensor`, *optional*): token positions (computed from `attention_mask`).
            inputs_embeds (`torch.FloatTensor`, *optional*): instead of `input_ids` (text only, no audio).
            labels (`torch.LongTensor` of shape `(batch, seq)`, *optional*): next-token targets aligned with
                `input_ids` (the language model shifts them); -100 (`config.ignore_index`) is ignored. The
                processor puts the caption + EOS here and -100 on prompt, audio and padding.
            use_cache (`bool`, *optional*), logits_to_keep (`int`, *optional*): as for the language model.
            return_dict (`bool`, *optional*): `False` returns a tuple instead of the output dataclass.
            kwargs: forwarded to the language model (the cache as `past_key_values` / `cache`,
                `output_hidden_states`, `num_items_in_batch`, ...).
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        audio_embeds = audio_attention_mask = None
        if inputs_embeds is None:
            placeholder_mask = input_ids == self.config.audio_token_id
            # The placeholder rows are overwritten; id 0 keeps the lookup in range for any vocabulary.
            inputs_embeds = self.get_input_embeddings()(input_ids.masked_fill(placeholder_mask, 0))
            num_placeholders = int(placeholder_mask.sum())
            if input_features is not None:
                if input_features.shape[0] != input_ids.shape[0]:
                    raise ValueError(
                        f"input_features holds {input_features.shape[0]} clips but input_ids holds "
                        f"{input_ids.shape[0]} sequences; the model takes one clip per sequence"
                    )
                audio_embeds, audio_attention_mask = self.get_audio_features(input_features, feature_attention_mask)
                inputs_embeds = self.merge_audio_embeddings(input_ids, inputs_embeds, audio_embeds, audio_attention_mask)
            elif num_placeholders:
                raise ValueError(
                    f"input_ids holds {num_placeholders} audio placeholder tokens (id {self.config.audio_token_id}) "
                    "but no input_features were given"
                )
        elif input_features is not None:
            raise ValueError("input_features need input_ids (to find the audio placeholders), not inputs_embeds")

        if position_ids is None and attention_mask is not None and attention_mask.dim() == 2:
            # Counting positions over real tokens keeps left-padded rows identical to unpadded ones.
            positions = attention_mask.long().cumsum(dim=-1) - 1
            position_ids = positions.clamp(min=0)[:, -inputs_embeds.shape[1]:].to(inputs_embeds.device)

        lm_kwargs = dict(kwargs)
        if logits_to_keep and self._language_model_accepts("logits_to_keep"):
            lm_kwargs["logits_to_keep"] = logits_to_keep
        outputs = self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            labels=labels,
            use_cache=use_cache,
            return_dict=True,
            **lm_kwargs,
        )
        output = LLMAACCausalLMOutputWithPast(
            **dict(outputs.items()), audio_embeds=audio_embeds, audio_attention_mask=audio_attention_mask
        )
        return output if return_dict is not False else output.to_tuple()

    def generate(self, *args, logits_processor: LogitsProcessorList | None = None, **kwargs):
        """`GenerationMixin.generate` (greedy, beam search, sampling, `num_return_sequences`, ...) with the
        audio placeholder token excluded from the outputs. Pass `input_features` / `feature_attention_mask`
        with the prompt; they are used on the first (prefill) step only."""
        processors = LogitsProcessorList(logits_processor if logits_processor is not None else [])
        if self.config.audio_token_id is not None:
            processors.append(SuppressAudioPlaceholder(self.config.audio_token_id))
        return super().generate(*args, logits_processor=processors, **kwargs)

    def prepare_inputs_for_generation(self, *args, **kwargs):
        model_inputs = super().prepare_inputs_for_generation(*args, **kwargs)
        # The generic preparation drops `input_features` after the first (prefill) step; its mask must go too.
        if model_inputs.get("input_features") is None:
            model_inputs.pop("feature_attention_mask", None)
        return model_inputs

    # -------------------------------------------------------------------------------------- building
    @classmethod
    def from_pretrained_parts(
        cls,
        *,
        encoder: str | os.PathLike | EATModel | EATConfig,
        language_model: str | os.PathLike | PreTrainedModel | PretrainedConfig,
        tokenizer: Any = None,
        projector_type: str = "linear",
        projector_options: dict | None = None,
        encoder_layer: int = -1,
        lora: bool | dict | Any | None = None,
        freeze_encoder: bool = True,
        freeze_language_model: bool = True,
        audio_token: str = "<audio>",
        dtype: torch.dtype | str | None = None,
        attn_implementation: str | None = None,
        language_model_kwargs: dict | None = None,
    ) -> LLMAACForConditionalGeneration:
        """Composes a captioner from a pretrained EAT encoder and any pretrained causal language model.

        The projector (and the LoRA adapter, if any) start from random weights; the model is returned in
        evaluation mode, as `from_pretrained` does. The audio placeholder token
        is added to `tokenizer` (in place) when missing, and the language model's embeddings are resized to
        the tokenizer; build the processor with the same tokenizer afterwards.

        Args:
            encoder: an EAT checkpoint folder or hub id (`EATModel.from_pretrained`; a folder of
                `EATForAudioClassification` or a converted EAT-base works too), an `EATModel`, or an
                `EATConfig` for a randomly initialised encoder.
            language_model: a causal-LM hub id or folder (`AutoModelForCausalLM.from_pretrained`, e.g.
                `"lmsys/vicuna-7b-v1.5"`), a loaded causal-LM model, or a config for random weights.
            tokenizer: the language model's tokenizer (object, id or folder). Defaults to loading
                `AutoTokenizer.from_pretrained(language_model)` when `language_model` is an id or folder;
                required otherwise.
            projector_type: `"linear"` (SLAM-AAC) or `"qformer"` (window-level Q-Former).
            projector_options: overrides of the projector fields of [`LLMAACConfig`]
                (`projector_stack_factor`, `projector_hidden_size`, `qformer_window_size`, `qformer_num_queries`,
                `qformer_hidden_size`, `qformer_num_layers`, `qformer_num_heads`, `qformer_intermediate_size`,
                `qformer_dropout`, `qformer_attention_dropout`, `qformer_layer_norm_eps`).
            encoder_layer: which EAT hidden state feeds the projector (-1 = last block, as SLAM-AAC).
            lora: `None` / `False` for no adapter; `True` for SLAM-AAC's LoRA (r 8, alpha 32, dropout 0.05,
                `q_proj`, `v_proj`); a dict of `peft.LoraConfig` arguments overriding those defaults (e.g.
                `{"r": 16, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}`); or a `peft.LoraConfig`.
            freeze_encoder: keep the encoder frozen (SLAM-AAC) or train it.
            freeze_language_model: keep the language model's own weights frozen (the adapter still trains);
                `False` trains the whole language model (not with `lora`).
            audio_token: the placeholder string.
            dtype: dtype of all weights (e.g. `torch.bfloat16` for a 7B model); `None` keeps what loads.
            attn_implementation: attention backend for the pretrained parts (e.g. `"sdpa"`).
            language_model_kwargs: extra keyword arguments of `AutoModelForCausalLM.from_pretrained`
                (`revision`, `device_map`, `trust_remote_code`, ...).
        """
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        load_kwargs = {}
        if dtype is not None:
            load_kwargs["dtype"] = dtype
        if attn_implementation is not None:
            load_kwargs["attn_implementation"] = attn_implementation

        if isinstance(encoder, EATConfig):
            encoder_model = EATModel(encoder)
        elif isinstance(encoder, EATModel):
            encoder_model = encoder
        elif isinstance(encoder, (str, os.PathLike)):
            encoder_model = EATModel.from_pretrained(encoder, **load_kwargs)
        else:
            raise TypeError(f"encoder must be a path / hub id, an EATModel or an EATConfig, got {type(encoder).__name__}")

        language_model_source = None
        if isinstance(language_model, PreTrainedModel):
            lm = language_model
        elif isinstance(language_model, PretrainedConfig):
            lm = AutoModelForCausalLM.from_config(language_model)
        elif isinstance(language_model, (str, os.PathLike)):
            language_model_source = language_model
            lm = AutoModelForCausalLM.from_pretrained(language_model, **load_kwargs, **(language_model_kwargs or {}))
        else:
            raise TypeError(
                "language_model must be a hub id / folder, a causal-LM model or a config, "
                f"got {type(language_model).__name__}"
            )

        if tokenizer is None:
            if language_model_source is None:
                raise ValueError("pass tokenizer= when language_model is a model object or a config")
            tokenizer = language_model_source
        if isinstance(tokenizer, (str, os.PathLike)):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(tokenizer)
        audio_token_id = ensure_audio_token(tokenizer, audio_token)
        if len(tokenizer) > lm.get_input_embeddings().num_embeddings:
            # New rows (the placeholder's) are never read as input: the audio embeddings replace them.
            lm.resize_token_embeddings(len(tokenizer), mean_resizing=False)

        config = LLMAACConfig(
            audio_config=encoder_model.config,
            text_config=lm.config,
            projector_type=projector_type,
            encoder_layer=encoder_layer,
            audio_token=audio_token,
            audio_token_id=audio_token_id,
            freeze_encoder=freeze_encoder,
            freeze_language_model=freeze_language_model,
            lora=_lora_config_kwargs(lora),
            **(projector_options or {}),
        )
        model = cls(config, encoder=encoder_model, language_model=lm)
        model.generation_config = copy.deepcopy(lm.generation_config) if lm.generation_config is not None else None
        if model.generation_config is not None:
            if model.generation_config.pad_token_id is None:
                model.generation_config.pad_token_id = (
                    tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
                )
            if model.generation_config.eos_token_id is None:
                model.generation_config.eos_token_id = tokenizer.eos_token_id
        if dtype is not None:
            model.to(dtype)
        # Like `from_pretrained`: evaluation mode until a trainer (or the user) calls `train()`.
        return model.eval()


def _mark_initialized(module: nn.Module) -> None:
    """Flags a pretrained part so that the composite model's weight initialisation leaves it alone."""
    for submodule in module.modules():
        submodule._is_hf_initialized = True


__all__ = [
    "LLMAACCausalLMOutputWithPast",
    "LLMAACForConditionalGeneration",
    "LLMAACPreTrainedModel",
]
