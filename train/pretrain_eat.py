"""Pretrain an EAT encoder with the utterance-frame objective (`EATForPreTraining`) using `Trainer`.

    # CPU smoke run on synthetic clips generated in memory (no corpus on disk needed)
    python train/pretrain_eat.py --preset tiny --synthetic_clips 64 --max_frames 256 \
        --per_device_train_batch_size 4 --max_steps 20 --output_dir runs/eat-tiny

    # one or several GPUs, features precomputed with `llm-aac precompute` (or a `llm-aac synth` folder)
    accelerate launch train/pretrain_eat.py --preset base --dataset_path features/train \
        --per_device_train_batch_size 12 --bf16 --max_steps 400000 --output_dir runs/eat-base

Data: `--dataset_path` is a `llm-aac precompute` output folder (raw features + measured statistics), or
a `save_to_disk` corpus with an `audio` column (features are then extracted on the fly with
`--feature_type`); `--synthetic_clips N` instead synthesizes N clips of the synthetic corpus in memory
(cached under `--feature_cache_dir`). Clips longer than `--max_frames` are cut at a random offset each
time they are drawn; shorter ones are padded and masked.

Optimisation defaults follow EAT: Adam(W) betas (0.9, 0.95), weight decay 0.05, lr 5e-4 with cosine decay
after a warm-up of 13.3 % of the steps, gradient clipping at 4, 12 clips per device. The EMA teacher is
updated after every optimizer step by `EMATeacherCallback`; it is part of the model, so checkpoints
carry it and `--resume_from_checkpoint` continues with the same teacher at the same step.

bf16 numerics levers: under bf16 mixed precision (`--bf16`, or `accelerate launch --mixed_precision bf16`) two
training-time numerics options of the model are on by default: every LayerNorm returns bf16 instead of autocast's
float32 (`EATConfig.layer_norm_in_autocast_dtype`) and the banded decoder adds its conv bias in bf16
(`EATPretrainingDecoder.bias_in_product_dtype`). On one H200 (EAT-base, 12 clips x 16 clones, torch.compile) they
raised the throughput from 249 to 261 clips/s and lowered the peak memory from 11.0 to 9.4 GiB; one-forward losses
stayed within 5e-5 (relative) of the standard bf16 numerics. `--bf16_numerics_levers false` keeps autocast's
standard numerics; fp32 and fp16 runs never use them. They are set on the training model's modules only: every
config the run saves (checkpoints, the final model, `encoder/`) keeps the standard numerics for whoever loads it.

    # bf16 with autocast's standard numerics (float32 LayerNorm outputs)
    accelerate launch train/pretrain_eat.py --preset base --dataset_path features/train --bf16 \
        --bf16_numerics_levers false --output_dir runs/eat-base-standard-numerics

Outputs in `--output_dir`: the pretraining model (student, decoder, teacher) and `checkpoint-*` folders,
`encoder/` (an `EATModel` + its feature extractor, loadable with `AutoModel` / `AutoFeatureExtractor`),
`log_history.json` and `loss_curves.png` (frame and utterance losses logged separately).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from dataclasses import dataclass, field

import torch
from llm_aac.train.training_arguments import SyncFreeTrainingArguments

logger = logging.getLogger("pretrain_eat")

PRESETS = ("tiny", "small", "base", "large")


def build_config(preset: str, num_mel_bins: int, overrides: dict | None = None):
    """`EATConfig` for a preset: `tiny` (CPU tests), `small` (ViT-S width, quick GPU runs), `base`, `large`."""
    from modeling_llm_aac import EATConfig

    settings = dict(overrides or {})
    settings.setdefault("num_mel_bins", num_mel_bins)
    if preset == "tiny":
        for key, value in dict(num_mask_clones=4, decoder_num_layers=2, decoder_groups=4).items():
            settings.setdefault(key, value)
        return EATConfig.tiny(**settings)
    if preset == "small":
        for key, value in dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                               intermediate_size=1536).items():
            settings.setdefault(key, value)
        return EATConfig.base(**settings)
    if preset == "base":
        return EATConfig.base(**settings)
    if preset == "large":
        return EATConfig.large(**settings)
    raise ValueError(f"unknown preset {preset!r}; choose one of {PRESETS}")


# Training-time numerics options of `EATForPreTraining` (the names of the modeling options they set).
BF16_NUMERICS_LEVERS = ("layer_norm_in_autocast_dtype", "bias_in_product_dtype")


def training_mixed_precision(training_args) -> str:
    """`"bf16"`, `"fp16"` or `"no"`: the autocast `Trainer` (through accelerate) runs the model under.

    `--fp16` / `--bf16` decide, else accelerate's `ACCELERATE_MIXED_PRECISION` (`accelerate launch
    --mixed_precision`); recent transformers resolve this into `training_args.mixed_precision`.
    """
    resolved = getattr(training_args, "mixed_precision", None)
    if resolved is not None:
        return resolved
    if training_args.fp16:
        return "fp16"
    if training_args.bf16:
        return "bf16"
    return os.environ.get("ACCELERATE_MIXED_PRECISION", "no")


def training_numerics_levers(training_args, *, enabled: bool = True) -> tuple[str, ...]:
    """The numerics levers (`BF16_NUMERICS_LEVERS` names) a pretraining run turns on: all of them when the run trains
    under bf16 autocast and `enabled` (`--bf16_numerics_levers`), none otherwise.

    fp16 runs keep them off: only bf16 was measured (speed and losses), and both levers move more of the backward
    pass (the gradients around the LayerNorm outputs, the decoder blocks' bias / tap gradients) from float32 to the
    autocast dtype, where fp16's loss-scaled gradients can overflow its 65504 range (skipped steps) and bf16, with
    float32's exponent range, does not. In fp32 there is no autocast, and both levers would change nothing.
    """
    if enabled and training_mixed_precision(training_args) == "bf16":
        return BF16_NUMERICS_LEVERS
    return ()


def apply_numerics_levers(model, levers) -> None:
    """Turn the named numerics levers on in an `EATForPreTraining` (student, teacher and decoder).

    They are set on the modules, not in `model.config`: the saved configs (checkpoints, the `EATModel` folder) keep
    `layer_norm_in_autocast_dtype` at its default, so whoever loads them under autocast gets the standard numerics,
    and a resumed run gets the levers from its own command line. A lever not named is left as the model was built
    (e.g. `--config_overrides layer_norm_in_autocast_dtype=true`, which is then saved too).
    """
    from modeling_llm_aac.modeling_eat import EATLayerNorm

    unknown = sorted(set(levers) - set(BF16_NUMERICS_LEVERS))
    if unknown:
        raise ValueError(f"unknown numerics levers {unknown}; choose from {BF16_NUMERICS_LEVERS}")
    if "layer_norm_in_autocast_dtype" in levers:
        # What EATConfig(layer_norm_in_autocast_dtype=True) gives every EATLayerNorm at construction.
        for module in model.modules():
            if isinstance(module, EATLayerNorm):
                module.keep_autocast_dtype = True
    if "bias_in_product_dtype" in levers:
        model.decoder.bias_in_product_dtype = True


def parse_overrides(text: str | None) -> dict:
    """`"ema_decay=0.999,num_mask_clones=8"` -> typed dict (JSON values: numbers, true/false, null)."""
    overrides: dict = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise ValueError(f"--config_overrides entries must be key=value, got {item!r}")
        key, value = (part.strip() for part in item.split("=", 1))
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


@dataclass
class PretrainEATArguments:
    preset: str = field(default="base", metadata={"help": "model size: tiny (CPU tests), small, base, large"})
    feature_type: str = field(
        default="fbank",
        metadata={"help": "cwt | fbank | cwt_seed: features extracted on the fly / synthesized (a precomputed "
                  "folder brings its own and must match)"},
    )
    dataset_path: str | None = field(
        default=None, metadata={"help": "`llm-aac precompute` output folder or `save_to_disk` corpus with audio"}
    )
    dataset_split: str = field(default="train", metadata={"help": "split of a DatasetDict / precompute output"})
    synthetic_clips: int = field(
        default=0, metadata={"help": "> 0: synthesize this many training clips of the synthetic corpus in memory"}
    )
    synthetic_seed: int = field(default=0, metadata={"help": "seed of the synthetic corpus"})
    feature_cache_dir: str | None = field(
        default=None, metadata={"help": "cache folder for synthesized features (default OUTPUT_DIR/feature_cache)"}
    )
    synthesis_workers: int = field(default=0, metadata={"help": "processes generating audio (0: all CPU cores)"})
    max_frames: int = field(default=1024, metadata={"help": "clips are cut to this many frames at a random offset"})
    pad_to_max_frames: bool = field(
        default=False, metadata={"help": "pad every batch to max_frames (static shapes for --torch_compile)"}
    )
    config_overrides: str = field(default="", metadata={"help": "EATConfig fields, e.g. 'ema_decay=0.999,num_mask_clones=8'"})
    max_train_minutes: float = field(
        default=0.0, metadata={"help": "stop (and save) once training has run this long; 0 disables"}
    )
    stop_after_steps: int = field(
        default=0,
        metadata={"help": "stop (and save) after this many optimizer steps while the learning-rate and EMA schedules "
                  "keep the length of --max_steps; 0: train all --max_steps"},
    )
    bf16_numerics_levers: bool = field(
        default=True,
        metadata={"help": "under bf16 mixed precision, train with LayerNorm outputs in bf16 and the decoder's conv "
                  "bias added in bf16 (faster, less memory; saved configs keep the standard numerics); false: "
                  "autocast's standard numerics. Never used in fp32 / fp16 runs"},
    )
    coordinate_descent_tuning: bool = field(
        default=False,
        metadata={"help": "with --torch_compile: tune the block sizes of every kernel inductor generates by "
                  "benchmarking (inductor's coordinate_descent_tuning); the first step compiles minutes longer, "
                  "an EAT-base step (96 clips) took 300 instead of 305 ms on an H100"},
    )


@dataclass
class EATPretrainingTrainingArguments(SyncFreeTrainingArguments):
    """`TrainingArguments` with EAT's pretraining defaults (each can still be set on the command line)."""

    per_device_train_batch_size: int = field(default=12, metadata={"help": "clips per device (EAT: 12)"})
    learning_rate: float = field(default=5e-4, metadata={"help": "peak learning rate (EAT-base 5e-4, large 4e-4)"})
    adam_beta2: float = field(default=0.95, metadata={"help": "Adam beta2 (EAT: 0.95)"})
    weight_decay: float = field(default=0.05, metadata={"help": "decoupled weight decay (EAT: 0.05)"})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "learning-rate schedule"})
    warmup_steps: float = field(default=53_333 / 400_000, metadata={"help": "warm-up steps, or a ratio < 1"})
    max_grad_norm: float = field(default=4.0, metadata={"help": "gradient clipping norm (EAT: 4)"})
    logging_steps: float = field(default=10, metadata={"help": "log every N optimizer steps"})
    save_steps: float = field(default=1000, metadata={"help": "checkpoint every N optimizer steps"})
    remove_unused_columns: bool = field(default=False, metadata={"help": "the collators read raw columns"})
    ddp_find_unused_parameters: bool | None = field(default=False, metadata={"help": "every trainable tensor is used"})
    ddp_broadcast_buffers: bool | None = field(default=False, metadata={"help": "the only buffers are fixed tables"})
    dataloader_num_workers: int = field(default=4, metadata={"help": "data loading processes per device"})


def _make_trainer_class():
    from transformers import Trainer

    from llm_aac.train.ema import EMATeacherCallback

    class EATPretrainingTrainer(Trainer):
        """`Trainer` that also logs the frame / utterance losses, the target / prediction spread and the EMA decay."""

        _component_names = ("frame_loss", "utterance_loss", "target_std", "prediction_std")

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._component_sum: torch.Tensor | None = None
            self._component_steps = 0

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            outputs = model(**inputs)
            components = torch.stack([getattr(outputs, name).detach().float() for name in self._component_names])
            # Summed on the device: reading them back only when logging keeps the step free of host syncs.
            self._component_sum = components if self._component_sum is None else self._component_sum + components
            self._component_steps += 1
            return (outputs.loss, outputs) if return_outputs else outputs.loss

        def log(self, logs, start_time=None):
            if "loss" in logs and self._component_sum is not None:
                mean = self._component_sum / self._component_steps
                if self.accelerator.num_processes > 1:
                    mean = self.accelerator.reduce(mean, reduction="mean")
                for name, value in zip(self._component_names, mean.tolist()):
                    logs[name] = round(value, 6)
                self._component_sum, self._component_steps = None, 0
                ema = next((c for c in self.callback_handler.callbacks if isinstance(c, EMATeacherCallback)), None)
                if ema is not None and ema.last_decay is not None:
                    logs["ema_decay"] = ema.last_decay
            super().log(logs, start_time)

    return EATPretrainingTrainer


class CropRowsCollator:
    """Random windows of at most `max_frames` frames, then `AudioFeatureCollator`; drops an all-ones mask.

    Rows with precomputed `input_features` are cut directly; rows with only `audio` are decoded and cut
    before extraction, so long clips cost only the window.
    """

    def __init__(self, collator, max_frames: int | None, *, pad_to_max_frames: bool = False):
        self.collator = collator
        self.max_frames = max_frames
        self.pad_to_max_frames = pad_to_max_frames

    def _crop(self, row: dict) -> dict:
        from llm_aac.processing.audio_io import decode_audio
        from llm_aac.processing.precompute import FEATURES_COLUMN, NUM_FRAMES_COLUMN

        if self.max_frames is None:
            return row
        row = dict(row)
        stored = row.get(FEATURES_COLUMN)
        if stored is not None:
            import numpy as np

            array = np.asarray(stored)
            length = int(row.get(NUM_FRAMES_COLUMN) or array.shape[0])
            if length > self.max_frames:
                start = int(torch.randint(0, length - self.max_frames + 1, ()))
                row[FEATURES_COLUMN] = array[start : start + self.max_frames]
                row[NUM_FRAMES_COLUMN] = self.max_frames
            return row
        samples, rate = decode_audio(row[self.collator.audio_column])
        # 10 ms hop plus one 25 ms window: enough samples for max_frames frames at any rate.
        window = int(round(rate * (self.max_frames * 0.010 + 0.025)))
        if samples.shape[0] > window:
            start = int(torch.randint(0, samples.shape[0] - window + 1, ()))
            samples = samples[start : start + window]
        row[self.collator.audio_column] = {"array": samples, "sampling_rate": rate}
        return row

    def __call__(self, rows):
        batch = self.collator([self._crop(row) for row in rows])
        batch = {"input_features": batch["input_features"], "attention_mask": batch["attention_mask"]}
        if self.pad_to_max_frames and self.max_frames and batch["input_features"].shape[1] < self.max_frames:
            pad = self.max_frames - batch["input_features"].shape[1]
            batch["input_features"] = torch.nn.functional.pad(batch["input_features"], (0, 0, 0, pad))
            batch["attention_mask"] = torch.nn.functional.pad(batch["attention_mask"], (0, pad))
        if bool(batch["attention_mask"].all()):
            del batch["attention_mask"]  # no padding: the model takes its fastest path
        return batch


def load_training_data(args: PretrainEATArguments, training_args):
    """(train_dataset, data_collator, feature_extractor) for the chosen input."""
    from modeling_llm_aac import LLMAACFeatureExtractor

    if bool(args.dataset_path) == (args.synthetic_clips > 0):
        raise ValueError("give exactly one input: --dataset_path DIR or --synthetic_clips N")

    if args.synthetic_clips > 0:
        from llm_aac.train.feature_cache import (
            RandomCropDataset,
            cache_file_name,
            pad_feature_batch,
            synthetic_feature_store,
        )

        cache_dir = args.feature_cache_dir or os.path.join(training_args.output_dir, "feature_cache")
        cache = os.path.join(cache_dir, cache_file_name(args.feature_type, args.synthetic_clips, args.synthetic_seed))
        device = "cuda" if torch.cuda.is_available() else "cpu"
        # Rank 0 builds the cache; the other ranks load it.
        with training_args.main_process_first(desc="synthesizing features"):
            store = synthetic_feature_store(
                LLMAACFeatureExtractor(feature_type=args.feature_type),
                args.synthetic_clips,
                args.synthetic_seed,
                cache_path=cache,
                device=device,
                num_workers=args.synthesis_workers or None,
            )
        dataset = RandomCropDataset(store, args.max_frames)
        pad_to = args.max_frames if args.pad_to_max_frames else None
        return dataset, functools.partial(pad_feature_batch, pad_to=pad_to), store.feature_extractor

    from transformers import AutoFeatureExtractor

    from llm_aac.processing.collate import AudioFeatureCollator
    from llm_aac.processing.precompute import MANIFEST_FILE, load_precomputed

    path = args.dataset_path
    if not os.path.isdir(path):
        raise ValueError(f"--dataset_path {path!r} is not a folder")
    precomputed = next(
        (p for p in (path, os.path.join(path, args.dataset_split)) if os.path.isfile(os.path.join(p, MANIFEST_FILE))), None
    )
    if precomputed is not None:
        dataset = load_precomputed(precomputed)
        feature_extractor = AutoFeatureExtractor.from_pretrained(precomputed)
        if feature_extractor.feature_type != args.feature_type:
            raise ValueError(
                f"{precomputed!r} holds {feature_extractor.feature_type!r} features but --feature_type is "
                f"{args.feature_type!r}"
            )
    else:
        from datasets import DatasetDict, load_from_disk

        dataset = load_from_disk(path)
        if isinstance(dataset, DatasetDict):
            if args.dataset_split not in dataset:
                raise ValueError(f"{path!r} has splits {sorted(dataset)}, not {args.dataset_split!r}")
            dataset = dataset[args.dataset_split]
        if "audio" not in dataset.column_names:
            raise ValueError(f"{path!r} has no 'audio' or precomputed feature column: {dataset.column_names}")
        from llm_aac.processing.audio_io import ensure_undecoded_audio

        dataset = ensure_undecoded_audio(dataset, "audio")
        feature_extractor = LLMAACFeatureExtractor(feature_type=args.feature_type)
    collator = CropRowsCollator(
        AudioFeatureCollator(feature_extractor, max_frames=args.max_frames),
        args.max_frames,
        pad_to_max_frames=args.pad_to_max_frames,
    )
    return dataset, collator, feature_extractor


def apply_compile_tuning(args, training_args) -> None:
    """`--coordinate_descent_tuning`: inductor's setting for the whole run (it applies when Trainer compiles)."""
    if not args.coordinate_descent_tuning:
        return
    if not training_args.torch_compile:
        raise ValueError("--coordinate_descent_tuning tunes the kernels of torch.compile: add --torch_compile")
    import torch._inductor.config

    torch._inductor.config.coordinate_descent_tuning = True


def parse_arguments(argv: list[str] | None = None):
    """(`PretrainEATArguments`, `EATPretrainingTrainingArguments`) from `argv` (default: the command line)."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser((PretrainEATArguments, EATPretrainingTrainingArguments))
    return parser.parse_args_into_dataclasses(args=argv)


def main(argv: list[str] | None = None) -> int:
    from transformers import set_seed

    import modeling_llm_aac  # noqa: F401  (registers the Auto classes)
    from llm_aac.train.callbacks import StepLimitCallback, TimeLimitCallback
    from llm_aac.train.ema import EMATeacherCallback, unwrap_model
    from llm_aac.train.plot_curves import plot_loss_curves
    from modeling_llm_aac.modeling_eat_pretraining import EATForPreTraining

    args, training_args = parse_arguments(argv)
    logging.basicConfig(level=logging.INFO if training_args.should_log else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.preset not in PRESETS:
        raise ValueError(f"--preset must be one of {PRESETS}, got {args.preset!r}")
    if args.feature_type not in ("cwt", "fbank", "cwt_seed"):
        raise ValueError(f"--feature_type must be cwt, fbank or cwt_seed, got {args.feature_type!r}")
    if args.stop_after_steps < 0:
        raise ValueError(f"--stop_after_steps must be >= 0, got {args.stop_after_steps}")
    apply_compile_tuning(args, training_args)
    set_seed(training_args.seed)

    dataset, collator, feature_extractor = load_training_data(args, training_args)
    config = build_config(args.preset, feature_extractor.feature_size, parse_overrides(args.config_overrides))
    if args.max_frames and args.max_frames > config.max_frames:
        raise ValueError(f"--max_frames {args.max_frames} exceeds the model's {config.max_frames} frames (max_length)")
    model = EATForPreTraining(config)
    levers = training_numerics_levers(training_args, enabled=args.bf16_numerics_levers)
    apply_numerics_levers(model, levers)
    precision = training_mixed_precision(training_args)
    if levers:
        logger.info("bf16 numerics levers on: %s (--bf16_numerics_levers false for autocast's standard numerics)",
                    ", ".join(levers))
    else:
        reason = "--bf16_numerics_levers false" if precision == "bf16" else f"mixed precision {precision!r}"
        logger.info("bf16 numerics levers off (%s)", reason)
    logger.info("EAT-%s: %.1f M encoder parameters, %d clips, %s features (%d bins)", args.preset,
                model.eat.num_parameters() / 1e6, len(dataset), feature_extractor.feature_type, config.num_mel_bins)

    callbacks = [EMATeacherCallback()]
    if args.max_train_minutes > 0:
        # pretraining steps are short: a clock check (a collective under DDP) every 10 steps is plenty
        callbacks.append(TimeLimitCallback(args.max_train_minutes, check_every=10))
    if args.stop_after_steps:
        callbacks.append(StepLimitCallback(args.stop_after_steps))
    trainer = _make_trainer_class()(
        model=model, args=training_args, train_dataset=dataset, data_collator=collator, callbacks=callbacks
    )
    resume = training_args.resume_from_checkpoint
    if isinstance(resume, str) and resume.lower() in ("true", "latest"):
        resume = True
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model()

    if trainer.is_world_process_zero():
        output_dir = training_args.output_dir
        encoder_dir = os.path.join(output_dir, "encoder")
        unwrap_model(trainer.model).eat.save_pretrained(encoder_dir)
        feature_extractor.save_pretrained(encoder_dir)
        history = trainer.state.log_history
        with open(os.path.join(output_dir, "log_history.json"), "w") as f:
            json.dump(history, f, indent=1)
        try:
            plot_loss_curves(history, os.path.join(output_dir, "loss_curves.png"),
                             title=f"EAT-{args.preset} pretraining ({feature_extractor.feature_type})")
        except (ValueError, ImportError) as err:  # nothing logged yet, or no matplotlib on this machine
            logger.warning("no loss curve written (plot log_history.json with train/plot_curves.py): %s", err)
        logger.info("encoder saved to %s", encoder_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
