"""Configuration of the LLM-AAC captioner: EAT encoder + projector + causal language model (+ LoRA)."""

from __future__ import annotations

import math
from typing import Any

from transformers import AutoConfig, PretrainedConfig

from .configuration_eat import EATConfig

PROJECTOR_TYPES = ("linear", "qformer")

# SLAM-AAC's LoRA recipe (r 8, alpha 32, dropout 0.05 on the attention query and value projections).
DEFAULT_LORA = {"r": 8, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}


def count_encoder_tokens(num_frames: int, *, patch_size: int, num_mel_bins: int, max_length: int) -> int:
    """Real EAT tokens (CLS + patches) for a clip of `num_frames` real frames.

    A time patch holding at least one real frame is real (EAT's `frame_mask_to_patch_mask`), so a clip padded
    to a multiple of the patch size keeps its last, partial patch.
    """
    if isinstance(num_frames, bool) or int(num_frames) != num_frames or num_frames <= 0:
        raise ValueError(f"num_frames must be a positive integer, got {num_frames!r}")
    time_patches = math.ceil(int(num_frames) / patch_size)
    if time_patches > max_length:
        raise ValueError(
            f"a clip of {num_frames} frames needs {time_patches} time patches, more than the encoder's "
            f"max_length of {max_length} ({max_length * patch_size} frames)"
        )
    return 1 + time_patches * (num_mel_bins // patch_size)


def count_audio_tokens(
    num_frames: int,
    *,
    patch_size: int,
    num_mel_bins: int,
    max_length: int,
    projector_type: str,
    projector_stack_factor: int,
    qformer_window_size: int,
    qformer_num_queries: int,
) -> int:
    """Audio tokens the projector makes for a clip of `num_frames` real frames.

    linear: `floor(n / stack_factor)` of the clip's `n` encoder tokens; qformer: `ceil(n / window) * queries`.
    """
    num_tokens = count_encoder_tokens(num_frames, patch_size=patch_size, num_mel_bins=num_mel_bins, max_length=max_length)
    if projector_type == "linear":
        count = num_tokens // projector_stack_factor
    elif projector_type == "qformer":
        count = math.ceil(num_tokens / qformer_window_size) * qformer_num_queries
    else:
        raise ValueError(f"projector_type must be one of {PROJECTOR_TYPES}, got {projector_type!r}")
    if count == 0:
        raise ValueError(
            f"a clip of {num_frames} frames gives {num_tokens} encoder tokens, fewer than the "
            f"projector_stack_factor {projector_stack_factor}: no audio token would remain"
        )
    return count


class LLMAACConfig(PretrainedConfig):
    r"""Configuration of [`LLMAACForConditionalGeneration`].

    The audio goes through an EAT encoder (`audio_config`), one encoder layer is read
    (`encoder_layer`), a projector turns its tokens into LLM-width audio embeddings, and those replace
    the audio placeholder tokens (`audio_token_id`) of the prompt fed to a causal language model
    (`text_config`), optionally with a LoRA adapter (`lora`).

    Args:
        audio_config (`EATConfig` or `dict`, *optional*): the encoder. Defaults to EAT-base.
        text_config (`PretrainedConfig` or `dict`, *optional*): any causal-LM config
            (`AutoModelForCausalLM.from_config` must accept it); a dict needs its `model_type`.
            Defaults to a Llama config with Vicuna-7B's sizes.
        projector_type (`str`, defaults to `"linear"`): `"linear"` (SLAM-AAC: stack
            `projector_stack_factor` consecutive encoder tokens -> Linear -> ReLU -> Linear) or `"qformer"`
            (window-level Q-Former: `qformer_num_queries` learned queries per window of
            `qformer_window_size` encoder tokens, BLIP-2 style layers, Linear to the LLM width).
        projector_stack_factor (`int`, defaults to 5): linear projector, encoder tokens per audio token;
            a trailing group of fewer tokens is dropped (SLAM-AAC: 513 tokens -> 102).
        projector_hidden_size (`int`, defaults to 2048): linear projector, width between its two layers.
        qformer_window_size (`int`, defaults to 40): Q-Former, encoder tokens per window. With 128-bin EAT
            (8 patches per 160 ms time step) 40 tokens span about 0.8 s; the CLS token sits in the first window.
        qformer_num_queries (`int`, defaults to 8): Q-Former, learned queries (= audio tokens) per window.
            40 / 8 keeps SLAM-AAC's rate of one audio token per 5 encoder tokens.
        qformer_hidden_size (`int`, defaults to 768): Q-Former width (BLIP-2's).
        qformer_num_layers (`int`, defaults to 2): Q-Former layers.
        qformer_num_heads (`int`, defaults to 12): Q-Former attention heads.
        qformer_intermediate_size (`int`, defaults to 3072): Q-Former feed-forward width.
        qformer_dropout (`float`, defaults to 0.1): Q-Former dropout on residual branches and queries.
        qformer_attention_dropout (`float`, defaults to 0.0): Q-Former dropout on attention weights.
        qformer_layer_norm_eps (`float`, defaults to 1e-6): Q-Former LayerNorm epsilon.
        encoder_layer (`int`, defaults to -1): which encoder output feeds the projector, indexing EAT's
            `hidden_states` tuple (0 = the embeddings after EAT's first LayerNorm, `i` = block `i`, -1 = last).
        audio_token (`str`, defaults to `"<audio>"`): the placeholder string of the prompt template.
        audio_token_id (`int`, *optional*): id of `audio_token` in the tokenizer; each placeholder id in
            `input_ids` is replaced by one audio embedding. Set by the builder / processor set-up.
        freeze_encoder (`bool`, defaults to `True`): keep the encoder's weights fixed (SLAM-AAC).
        freeze_language_model (`bool`, defaults to `True`): keep the language model's own weights fixed;
            the LoRA adapter (if any) and the projector are still trained. `False` trains the whole LM and
            cannot be combined with `lora`.
        lora (`dict`, *optional*): keyword arguments of `peft.LoraConfig` for an adapter on the language
            model (e.g. `{"r": 8, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": ["q_proj",
            "v_proj"]}`, see `DEFAULT_LORA`); `None` means no adapter. Stored in `config.json` so that a
            saved folder re-creates the adapter before loading its weights.
        ignore_index (`int`, defaults to -100): label value excluded from the loss.
        kwargs: forwarded to [`~transformers.PretrainedConfig`].
    """

    model_type = "llm_aac"
    sub_configs = {"audio_config": EATConfig, "text_config": AutoConfig}

    def __init__(
        self,
        audio_config: EATConfig | dict | None = None,
        text_config: PretrainedConfig | dict | None = None,
        projector_type: str = "linear",
        projector_stack_factor: int = 5,
        projector_hidden_size: int = 2048,
        qformer_window_size: int = 40,
        qformer_num_queries: int = 8,
        qformer_hidden_size: int = 768,
        qformer_num_layers: int = 2,
        qformer_num_heads: int = 12,
        qformer_intermediate_size: int = 3072,
        qformer_dropout: float = 0.1,
        qformer_attention_dropout: float = 0.0,
        qformer_layer_norm_eps: float = 1e-6,
        encoder_layer: int = -1,
        audio_token: str = "<audio>",
        audio_token_id: int | None = None,
        freeze_encoder: bool = True,
        freeze_language_model: bool = True,
        lora: dict | None = None,
        ignore_index: int = -100,
        **kwargs,
    ):
        if audio_config is None:
            audio_config = EATConfig()
        elif isinstance(audio_config, dict):
            audio_config = EATConfig(**{k: v for k, v in audio_config.items() if k != "model_type"})
        elif not isinstance(audio_config, EATConfig):
            raise TypeError(f"audio_config must be an EATConfig or a dict, got {type(audio_config).__name__}")
        self.audio_config = audio_config

        if text_config is None:
            text_config = AutoConfig.for_model(
                "llama", hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                num_attention_heads=32, num_key_value_heads=32, vocab_size=32000, max_position_embeddings=4096,
            )
        elif isinstance(text_config, dict):
            text_config = dict(text_config)
            model_type = text_config.pop("model_type", None)
            if model_type is None:
                raise ValueError("text_config given as a dict needs a 'model_type' (e.g. 'llama')")
            text_config = AutoConfig.for_model(model_type, **text_config)
        elif not isinstance(text_config, PretrainedConfig):
            raise TypeError(f"text_config must be a PretrainedConfig or a dict, got {type(text_config).__name__}")
        self.text_config = text_config

        self.projector_type = projector_type
        self.projector_stack_factor = projector_stack_factor
        self.projector_hidden_size = projector_hidden_size
        self.qformer_window_size = qformer_window_size
        self.qformer_num_queries = qformer_num_queries
        self.qformer_hidden_size = qformer_hidden_size
        self.qformer_num_layers = qformer_num_layers
        self.qformer_num_heads = qformer_num_heads
        self.qformer_intermediate_size = qformer_intermediate_size
        self.qformer_dropout = qformer_dropout
        self.qformer_attention_dropout = qformer_attention_dropout
        self.qformer_layer_norm_eps = qformer_layer_norm_eps
        self.encoder_layer = encoder_layer
        self.audio_token = audio_token
        self.audio_token_id = audio_token_id
        self.freeze_encoder = freeze_encoder
        self.freeze_language_model = freeze_language_model
        self.lora = dict(lora) if lora is not None else None
        self.ignore_index = ignore_index
        kwargs.setdefault("tie_word_embeddings", False)
        # PretrainedConfig.__init__ pushes its own attention implementation (None unless given) into the
        # sub-configs; sub-configs of already-loaded models must keep theirs.
        sub_attention = {
            name: getattr(sub, "_attn_implementation", None)
            for name, sub in (("audio_config", audio_config), ("text_config", text_config))
        }
        attention_given = "attn_implementation" in kwargs
        super().__init__(**kwargs)
        if not attention_given:
            for name, implementation in sub_attention.items():
                if implementation is not None:
                    getattr(self, name)._attn_implementation = implementation
        self._validate_captioner_fields()

    def _validate_captioner_fields(self) -> None:
        problems = []
        if self.projector_type not in PROJECTOR_TYPES:
            problems.append(f"projector_type must be one of {PROJECTOR_TYPES}, got {self.projector_type!r}")
        for name in ("projector_stack_factor", "projector_hidden_size", "qformer_window_size", "qformer_num_queries",
                     "qformer_hidden_size", "qformer_num_layers", "qformer_num_heads", "qformer_intermediate_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        num_outputs = self.audio_config.num_hidden_layers + 1
        if not isinstance(self.encoder_layer, int) or not -num_outputs <= self.encoder_layer < num_outputs:
            problems.append(
                f"encoder_layer must index the encoder's {num_outputs} hidden states "
                f"(between {-num_outputs} and {num_outputs - 1}), got {self.encoder_layer!r}"
            )
        if self.lora is not None and not self.freeze_language_model:
            problems.append(
                "lora trains an adapter over a frozen language model; set freeze_language_model=True "
                "or lora=None to train the whole language model"
            )
        if self.lora is not None and "r" in self.lora and (not isinstance(self.lora["r"], int) or self.lora["r"] <= 0):
            problems.append(f"lora['r'] must be a positive integer, got {self.lora['r']!r}")
        if problems:
            raise ValueError("Invalid LLMAACConfig: " + "; ".join(problems))

    def audio_token_settings(self) -> dict[str, Any]:
        """The fields that fix how many audio tokens a clip gets (see `count_audio_tokens`); the processor
        stores them so that it counts exactly as the model does without holding the whole config."""
        return {
            "patch_size": self.audio_config.patch_size,
            "num_mel_bins": self.audio_config.num_mel_bins,
            "max_length": self.audio_config.max_length,
            "projector_type": self.projector_type,
            "projector_stack_factor": self.projector_stack_factor,
            "qformer_window_size": self.qformer_window_size,
            "qformer_num_queries": self.qformer_num_queries,
        }

    def num_encoder_tokens(self, num_frames: int) -> int:
        """Real encoder tokens (CLS + patches) for a clip of `num_frames` real frames."""
        settings = self.audio_token_settings()
        return count_encoder_tokens(
            num_frames, patch_size=settings["patch_size"], num_mel_bins=settings["num_mel_bins"],
            max_length=settings["max_length"],
        )

    def num_audio_tokens(self, num_frames: int) -> int:
        """Audio embeddings (= placeholder tokens in the prompt) for a clip of `num_frames` real frames.

        Pure function of the frame count and this config, shared by the model and the processor.
        """
        return count_audio_tokens(num_frames, **self.audio_token_settings())

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        for name in ("audio_config", "text_config"):
            value = output.get(name)
            if isinstance(value, PretrainedConfig):
                output[name] = value.to_dict()
        return output


__all__ = ["LLMAACConfig", "DEFAULT_LORA", "count_audio_tokens", "count_encoder_tokens"]
