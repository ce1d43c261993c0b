"""Configuration of the EAT audio encoder (Efficient Audio Transformer, Chen et al., IJCAI 2024).

Field names follow transformers conventions (`hidden_size`, `num_hidden_layers`, ...); the defaults
are EAT-base as released by the authors. `EATConfig.large()` and `EATConfig.tiny()` give the other
presets.
"""

from __future__ import annotations

from transformers import PretrainedConfig


class EATConfig(PretrainedConfig):
    r"""Configuration of [`EATModel`] and [`EATForAudioClassification`].

    The encoder reads a spectrogram-like input `[batch, frames, bins]`, cuts it into
    `patch_size x patch_size` patches with a strided convolution, adds fixed 2-D sin-cos positions,
    prepends one CLS token, applies one LayerNorm and runs `num_hidden_layers` post-LN transformer
    blocks (no final LayerNorm).

    Args:
        hidden_size (`int`, defaults to 768): width of every token.
        num_hidden_layers (`int`, defaults to 12): number of transformer blocks.
        num_attention_heads (`int`, defaults to 12): attention heads per block.
        intermediate_size (`int`, defaults to 3072): hidden width of each block's MLP.
        hidden_act (`str`, defaults to `"gelu"`): MLP activation (a key of `transformers.activations.ACT2FN`).
            EAT uses the exact (erf) GELU.
        patch_size (`int`, defaults to 16): side of the square patches, in frames and in bins.
        num_mel_bins (`int`, defaults to 128): number of input bins (128 for kaldi fbank, the number of
            scales for CWT scalograms). Must be a multiple of `patch_size`.
        max_length (`int`, defaults to 768): the longest input, counted in **time patches**
            (768 patches x 16 frames x 10 ms = 122.88 s). The fixed position table is built for
            `max_length x (num_mel_bins / patch_size)` patches.
        layer_norm_eps (`float`, defaults to 1e-6): epsilon of every LayerNorm.
        qkv_bias (`bool`, defaults to `True`): whether the fused query/key/value projection has a bias.
        hidden_dropout_prob (`float`, defaults to 0.0): dropout after the attention output projection and
            after the MLP output, before each residual add.
        attention_probs_dropout_prob (`float`, defaults to 0.0): dropout on the attention probabilities.
        activation_dropout (`float`, defaults to 0.0): dropout after the MLP activation.
        drop_path_rate (`float`, defaults to 0.0): stochastic-depth rate of the last block; block `i`
            uses `drop_path_rate * i / (num_hidden_layers - 1)` (EAT fine-tuning uses 0.1).
        initializer_range (`float`, defaults to 0.02): std of the normal init of linear layers.
        cls_token_initializer_range (`float`, defaults to 1.0): std of the normal init of the CLS token
            (EAT draws it from N(0, 1)).
        classifier_dropout (`float`, defaults to 0.0): dropout before the classification head of
            [`EATForAudioClassification`].
        layer_norm_in_autocast_dtype (`bool`, defaults to `False`): under `torch.autocast`, make every LayerNorm of
            the model (`pre_norm`, the blocks' norms, `fc_norm`, the pretraining decoder's norms) return the autocast
            dtype (bf16 / fp16) instead of float32, the dtype autocast gives `layer_norm` on CUDA. Mean, variance and
            the affine step are still computed in float32 inside the kernel; weight and bias are rounded to the
            autocast dtype first, as autocast rounds the weights of matrix products.
            In EAT's post-LN blocks the LayerNorm outputs are the residual stream, so this halves the bytes of the
            residual stream, of the tensors kept for backward around it and of the pretraining decoder's input grid
            (a training-speed option: the released EAT recipe, fairseq `fp16: true`, normalised in half precision
            too). Without autocast it changes nothing: float32 runs are bit-identical either way.

        Pretraining ([`EATForPreTraining`], the utterance-frame objective; ignored by the encoder and the
        classifier; defaults are the released EAT-base recipe, `large()` sets EAT-large's):
        mask_ratio (`float`, defaults to 0.8): fraction of each clip's real patches hidden from the student.
        mask_ratio_adjust (`float`, defaults to 0.07): extra share of block centres drawn so that overlapping
            blocks still cover about `1 - mask_ratio` of the grid before the count is made exact.
        mask_block_size (`int`, defaults to 5): side of the square blocks of *visible* patches on the
            (time, frequency) patch grid (inverse block masking).
        mask_noise_std (`float`, defaults to 0.01): std of the Gaussian noise put at masked positions of the
            decoder input.
        num_mask_clones (`int`, defaults to 16): views per clip, each with its own mask (`clone_batch`); the
            teacher encodes each clip once.
        decoder_hidden_size (`int`, *optional*): width of the CNN decoder; None means `hidden_size`.
        decoder_num_layers (`int`, defaults to 6): grouped-conv -> LayerNorm -> GELU blocks of the decoder.
        decoder_kernel_size (`int`, defaults to 3): kernel side of the decoder convolutions.
        decoder_groups (`int`, defaults to 16): groups of the decoder convolutions.
        target_top_k_layers (`int`, *optional*): how many of the teacher's last blocks are averaged into the
            targets; None means all of them (EAT).
        target_instance_norm (`bool`, defaults to True): instance-normalise each teacher block's output over
            the patches before averaging.
        target_layer_norm (`bool`, defaults to True): LayerNorm (no affine) over the averaged target.
        frame_loss_weight (`float`, defaults to 1.0): weight of the frame loss (decoder vs target at masked
            patches).
        utterance_loss_weight (`float`, defaults to 1.0): weight of the utterance loss (student CLS vs the mean
            target of the clip).
        utterance_loss_reduction (`str`, defaults to `"sum"`): `"sum"` adds the utterance loss over the views of
            the (per-device) batch as EAT does, `"mean"` averages it (batch-size independent).
        loss_scale (`float`, *optional*): factor on both squared errors; None means `1 / sqrt(hidden_size)`.
        ema_decay (`float`, defaults to 0.9998): teacher EMA decay at update 0.
        ema_end_decay (`float`, defaults to 0.99999): teacher EMA decay from `ema_anneal_end_step` on.
        ema_anneal_end_step (`int`, defaults to 100000): updates over which the decay rises linearly.
        kwargs: forwarded to [`~transformers.PretrainedConfig`] (`num_labels`, `id2label`,
            `problem_type`, ...). `problem_type="multi_label_classification"` makes
            [`EATForAudioClassification`] use a sigmoid/BCE loss (AudioSet), otherwise softmax/CE.
    """

    model_type = "eat"

    # Declared as class fields too: transformers 5 configs are dataclasses, and `max_length` is only
    # accepted by `save_pretrained` (not mistaken for a generation parameter) when it is a declared field.
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    patch_size: int = 16
    num_mel_bins: int = 128
    max_length: int = 768
    layer_norm_eps: float = 1e-6
    qkv_bias: bool = True
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    activation_dropout: float = 0.0
    drop_path_rate: float = 0.0
    initializer_range: float = 0.02
    cls_token_initializer_range: float = 1.0
    classifier_dropout: float = 0.0
    layer_norm_in_autocast_dtype: bool = False
    # --- pretraining (EATForPreTraining) ---
    mask_ratio: float = 0.8
    mask_ratio_adjust: float = 0.07
    mask_block_size: int = 5
    mask_noise_std: float = 0.01
    num_mask_clones: int = 16
    decoder_hidden_size: int | None = None
    decoder_num_layers: int = 6
    decoder_kernel_size: int = 3
    decoder_groups: int = 16
    target_top_k_layers: int | None = None
    target_instance_norm: bool = True
    target_layer_norm: bool = True
    frame_loss_weight: float = 1.0
    utterance_loss_weight: float = 1.0
    utterance_loss_reduction: str = "sum"
    loss_scale: float | None = None
    ema_decay: float = 0.9998
    ema_end_decay: float = 0.99999
    ema_anneal_end_step: int = 100000

    def __init__(
        self,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        intermediate_size: int = 3072,
        hidden_act: str = "gelu",
        patch_size: int = 16,
        num_mel_bins: int = 128,
        max_length: int = 768,
        layer_norm_eps: float = 1e-6,
        qkv_bias: bool = True,
        hidden_dropout_prob: float = 0.0,
        attention_probs_dropout_prob: float = 0.0,
        activation_dropout: float = 0.0,
        drop_path_rate: float = 0.0,
        initializer_range: float = 0.02,
        cls_token_initializer_range: float = 1.0,
        classifier_dropout: float = 0.0,
        layer_norm_in_autocast_dtype: bool = False,
        # --- pretraining (EATForPreTraining) ---
        mask_ratio: float = 0.8,
        mask_ratio_adjust: float = 0.07,
        mask_block_size: int = 5,
        mask_noise_std: float = 0.01,
        num_mask_clones: int = 16,
        decoder_hidden_size: int | None = None,
        decoder_num_layers: int = 6,
        decoder_kernel_size: int = 3,
        decoder_groups: int = 16,
        target_top_k_layers: int | None = None,
        target_instance_norm: bool = True,
        target_layer_norm: bool = True,
        frame_loss_weight: float = 1.0,
        utterance_loss_weight: float = 1.0,
        utterance_loss_reduction: str = "sum",
        loss_scale: float | None = None,
        ema_decay: float = 0.9998,
        ema_end_decay: float = 0.99999,
        ema_anneal_end_step: int = 100000,
        **kwargs,
    ):
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.patch_size = patch_size
        self.num_mel_bins = num_mel_bins
        self.max_length = max_length
        self.layer_norm_eps = layer_norm_eps
        self.qkv_bias = qkv_bias
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.activation_dropout = activation_dropout
        self.drop_path_rate = drop_path_rate
        self.initializer_range = initializer_range
        self.cls_token_initializer_range = cls_token_initializer_range
        self.classifier_dropout = classifier_dropout
        self.layer_norm_in_autocast_dtype = layer_norm_in_autocast_dtype
        # --- pretraining (EATForPreTraining) ---
        self.mask_ratio = mask_ratio
        self.mask_ratio_adjust = mask_ratio_adjust
        self.mask_block_size = mask_block_size
        self.mask_noise_std = mask_noise_std
        self.num_mask_clones = num_mask_clones
        self.decoder_hidden_size = decoder_hidden_size
        self.decoder_num_layers = decoder_num_layers
        self.decoder_kernel_size = decoder_kernel_size
        self.decoder_groups = decoder_groups
        self.target_top_k_layers = target_top_k_layers
        self.target_instance_norm = target_instance_norm
        self.target_layer_norm = target_layer_norm
        self.frame_loss_weight = frame_loss_weight
        self.utterance_loss_weight = utterance_loss_weight
        self.utterance_loss_reduction = utterance_loss_reduction
        self.loss_scale = loss_scale
        self.ema_decay = ema_decay
        self.ema_end_decay = ema_end_decay
        self.ema_anneal_end_step = ema_anneal_end_step
        super().__init__(**kwargs)
        self._validate_eat_fields()
        self._validate_pretraining_fields()

    def _validate_eat_fields(self) -> None:
        problems = []
        for name in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                     "patch_size", "num_mel_bins", "max_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        if not problems:
            if self.hidden_size % self.num_attention_heads:
                problems.append(
                    f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                    f"({self.num_attention_heads})"
                )
            # The 2-D sin-cos table gives half of the channels to each axis, each half split into sin and cos.
            if self.hidden_size % 4:
                problems.append(f"hidden_size ({self.hidden_size}) must be a multiple of 4 for 2-D sin-cos positions")
            if self.num_mel_bins % self.patch_size:
                problems.append(
                    f"num_mel_bins ({self.num_mel_bins}) must be a multiple of patch_size ({self.patch_size})"
                )
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "activation_dropout",
                     "drop_path_rate", "classifier_dropout"):
            value = getattr(self, name)
            if not 0.0 <= float(value) < 1.0:
                problems.append(f"{name} must lie in [0, 1), got {value!r}")
        if not isinstance(self.layer_norm_in_autocast_dtype, bool):
            problems.append(
                f"layer_norm_in_autocast_dtype must be True or False, got {self.layer_norm_in_autocast_dtype!r}"
            )
        if problems:
            raise ValueError("Invalid EATConfig: " + "; ".join(problems))

    def _validate_pretraining_fields(self) -> None:
        problems = []
        if not 0.0 < float(self.mask_ratio) < 1.0:
            problems.append(f"mask_ratio must lie in (0, 1), got {self.mask_ratio!r}")
        if not 0.0 <= float(self.mask_ratio_adjust) < 1.0:
            problems.append(f"mask_ratio_adjust must lie in [0, 1), got {self.mask_ratio_adjust!r}")
        if float(self.mask_noise_std) < 0.0:
            problems.append(f"mask_noise_std must be >= 0, got {self.mask_noise_std!r}")
        for name in ("mask_block_size", "num_mask_clones", "decoder_num_layers", "decoder_kernel_size",
                     "decoder_groups", "ema_anneal_end_step"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        decoder_width = self.decoder_hidden_size if self.decoder_hidden_size is not None else self.hidden_size
        if not isinstance(decoder_width, int) or isinstance(decoder_width, bool) or decoder_width <= 0:
            problems.append(f"decoder_hidden_size must be a positive integer or None, got {self.decoder_hidden_size!r}")
        elif isinstance(self.decoder_groups, int) and self.decoder_groups > 0:
            for width_name, width in (("hidden_size", self.hidden_size), ("decoder width", decoder_width)):
                if isinstance(width, int) and width % self.decoder_groups:
                    problems.append(f"{width_name} ({width}) must be divisible by decoder_groups ({self.decoder_groups})")
        top_k = self.target_top_k_layers
        if top_k is not None and (
            not isinstance(top_k, int) or isinstance(top_k, bool) or not 0 < top_k <= self.num_hidden_layers
        ):
            problems.append(
                f"target_top_k_layers must be None or an integer in [1, num_hidden_layers={self.num_hidden_layers}], "
                f"got {top_k!r}"
            )
        if self.utterance_loss_reduction not in ("sum", "mean"):
            problems.append(f"utterance_loss_reduction must be 'sum' or 'mean', got {self.utterance_loss_reduction!r}")
        if self.loss_scale is not None and not float(self.loss_scale) > 0.0:
            problems.append(f"loss_scale must be None or > 0, got {self.loss_scale!r}")
        for name in ("frame_loss_weight", "utterance_loss_weight"):
            if float(getattr(self, name)) < 0.0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0.0 <= float(self.ema_decay) <= float(self.ema_end_decay) <= 1.0:
            problems.append(
                f"EMA decays must satisfy 0 <= ema_decay <= ema_end_decay <= 1, got ema_decay={self.ema_decay!r}, "
                f"ema_end_decay={self.ema_end_decay!r}"
            )
        if problems:
            raise ValueError("Invalid EATConfig (pretraining fields): " + "; ".join(problems))

    @property
    def num_freq_patches(self) -> int:
        """Patches along the bin axis (8 for 128-bin fbank)."""
        return self.num_mel_bins // self.patch_size

    @property
    def max_frames(self) -> int:
        """Longest input in frames (`max_length * patch_size`)."""
        return self.max_length * self.patch_size

    def num_patches(self, num_frames: int) -> int:
        """Patch tokens (CLS excluded) produced for `num_frames` frames (a multiple of `patch_size`)."""
        return (num_frames // self.patch_size) * self.num_freq_patches

    @classmethod
    def base(cls, **overrides) -> "EATConfig":
        """EAT-base: 12 layers, width 768, 12 heads, MLP 3072 (88 M parameters). Any field can be overridden."""
        return cls(**overrides)

    @classmethod
    def large(cls, **overrides) -> "EATConfig":
        """EAT-large: 24 layers, width 1024, 16 heads, MLP 4096 (309 M parameters). Any field can be overridden.

        Also sets EAT-large's pretraining recipe: mask ratio 0.75 (+0.1 adjust), a 3-layer kernel-5 decoder,
        EMA annealed over 150 k updates.
        """
        settings = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)
        settings.update(
            mask_ratio=0.75, mask_ratio_adjust=0.1, decoder_num_layers=3, decoder_kernel_size=5,
            ema_anneal_end_step=150_000,
        )
        settings.update(overrides)
        return cls(**settings)

    @classmethod
    def tiny(cls, **overrides) -> "EATConfig":
        """A 2-layer, width-32 model for tests and CPU smoke runs (128 fbank bins, up to 64 time patches)."""
        settings = dict(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_length=64
        )
        settings.update(overrides)
        return cls(**settings)


__all__ = ["EATConfig"]
