"""Configuration of EAT-CLAP: a contrastive audio-text model with an EAT audio tower and any
Hugging Face text encoder (BERT, RoBERTa, ...), trained by `train/train_clap.py`."""

from __future__ import annotations

import math

from transformers import AutoConfig, PretrainedConfig

from .configuration_eat import EATConfig

AUDIO_POOLING = ("cls", "mean")
TEXT_POOLING = ("cls", "mean", "last", "pooler")
PROJECTION_TYPES = ("mlp", "linear")


class EATClapConfig(PretrainedConfig):
    r"""Configuration of [`EATClapModel`].

    Args:
        audio_config (`EATConfig` or `dict`, *optional*): the EAT audio tower (default EAT-base).
        text_config (`PretrainedConfig` or `dict`, *optional*): any encoder config that
            `AutoModel.from_config` builds; a dict needs its `model_type` (default: roberta-base's shape).
        projection_dim (`int`, defaults to 512): width of the joint embedding space.
        projection_type (`str`, defaults to `"mlp"`): `"mlp"` = Linear -> activation -> Linear (as in
            laion-clap), `"linear"` = one Linear.
        projection_hidden_act (`str`, defaults to `"relu"`): activation inside the `"mlp"` projections.
        audio_pooling (`str`, defaults to `"mean"`): `"mean"` (mean of the real patch tokens) or `"cls"`
            (EAT's utterance token). Mean pooling is the default because it trains from random towers too:
            the CLS output of an untrained EAT is the same for every clip (cosine 1.0 between clips), which
            leaves the contrastive loss stuck at log(batch).
        text_pooling (`str`, defaults to `"mean"`): `"mean"` (mean of real tokens), `"cls"` (first token),
            `"last"` (last real token, for causal text models) or `"pooler"` (the text model's own
            `pooler_output`, e.g. BERT's tanh pooler).
        logit_scale_init_value (`float`, defaults to 1 / 0.07): initial value of the temperature's
            inverse `exp(logit_scale)` (CLIP / laion-clap).
        max_logit_scale (`float`, defaults to 100): `exp(logit_scale)` is clamped to this value (CLIP).
        learnable_logit_scale (`bool`, defaults to `True`): whether the temperature is trained.
        max_text_length (`int`, *optional*): captions are truncated to this many tokens by the scorer and
            the training collator (default: the tokenizer's limit).
        initializer_range (`float`, defaults to 0.02): std of the projections' normal init.
    """

    model_type = "eat_clap"
    sub_configs = {"audio_config": EATConfig, "text_config": AutoConfig}

    def __init__(
        self,
        audio_config: EATConfig | dict | None = None,
        text_config: PretrainedConfig | dict | None = None,
        projection_dim: int = 512,
        projection_type: str = "mlp",
        projection_hidden_act: str = "relu",
        audio_pooling: str = "mean",
        text_pooling: str = "mean",
        logit_scale_init_value: float = 1 / 0.07,
        max_logit_scale: float = 100.0,
        learnable_logit_scale: bool = True,
        max_text_length: int | None = None,
        initializer_range: float = 0.02,
        **kwargs,
    ):
        if audio_config is None:
            audio_config = EATConfig()
        elif isinstance(audio_config, dict):
            audio_config = EATConfig(**{k: v for k, v in audio_config.items() if k != "model_type"})
        if not isinstance(audio_config, EATConfig):
            raise TypeError(f"audio_config must be an EATConfig or a dict, got {type(audio_config).__name__}.")
        if text_config is None:
            text_config = AutoConfig.for_model("roberta")
        elif isinstance(text_config, dict):
            if "model_type" not in text_config:
                raise ValueError(
                    "text_config as a dict needs its 'model_type' (e.g. 'bert', 'roberta') to know which "
                    f"model to build; got keys {sorted(text_config)}."
                )
            fields = dict(text_config)
            text_config = AutoConfig.for_model(fields.pop("model_type"), **fields)
        if not isinstance(text_config, PretrainedConfig):
            raise TypeError(f"text_config must be a PretrainedConfig or a dict, got {type(text_config).__name__}.")
        if audio_pooling not in AUDIO_POOLING:
            raise ValueError(f"audio_pooling must be one of {AUDIO_POOLING}, got {audio_pooling!r}.")
        if text_pooling not in TEXT_POOLING:
            raise ValueError(f"text_pooling must be one of {TEXT_POOLING}, got {text_pooling!r}.")
        if projection_type not in PROJECTION_TYPES:
            raise ValueError(f"projection_type must be one of {PROJECTION_TYPES}, got {projection_type!r}.")
        if not isinstance(projection_dim, int) or projection_dim <= 0:
            raise ValueError(f"projection_dim must be a positive integer, got {projection_dim!r}.")
        if not (logit_scale_init_value > 0 and math.isfinite(logit_scale_init_value)):
            raise ValueError(f"logit_scale_init_value must be a positive number, got {logit_scale_init_value!r}.")
        if not max_logit_scale >= logit_scale_init_value:
            raise ValueError(
                f"max_logit_scale ({max_logit_scale}) must be >= logit_scale_init_value ({logit_scale_init_value})."
            )
        self.audio_config = audio_config
        self.text_config = text_config
        self.projection_dim = projection_dim
        self.projection_type = projection_type
        self.projection_hidden_act = projection_hidden_act
        self.audio_pooling = audio_pooling
        self.text_pooling = text_pooling
        self.logit_scale_init_value = float(logit_scale_init_value)
        self.max_logit_scale = float(max_logit_scale)
        self.learnable_logit_scale = learnable_logit_scale
        self.max_text_length = max_text_length
        self.initializer_range = initializer_range
        super().__init__(**kwargs)


__all__ = ["EATClapConfig"]
