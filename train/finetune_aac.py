"""Finetune the LLM-AAC captioner (EAT encoder -> projector -> causal LM, optionally + LoRA) with `Trainer`.

    # CPU, seconds: tiny EAT + tiny Llama + a tokenizer trained on the corpus captions, synthetic clips in memory
    python train/finetune_aac.py --preset tiny --synthetic_clips 16 --synthetic_eval_clips 4 --output_dir runs/aac-tiny

    # a corpus on disk (`llm-aac synth` folder, Clotho / AudioCaps folders, `llm-aac precompute` outputs),
    # a pretrained EAT and the text LM of `train/pretrain_text_lm.py`, one or several GPUs
    accelerate launch train/finetune_aac.py --preset small --dataset_path data/synth --eval_split validation \
        --encoder_path runs/eat/encoder --language_model runs/lm-small --output_dir runs/aac-small

    # SLAM-AAC's recipe: Vicuna-7B-v1.5 + EAT-base (converted with `llm-aac convert-eat`), LoRA r 8 / alpha 32
    # on q_proj / v_proj, lr 1e-4, 16 clips per step (4 x 4 accumulation), bf16, gradient checkpointing, beam 4
    accelerate launch train/finetune_aac.py --preset 7b --encoder_path eat-base-as2m \
        --dataset_path features/clotho features/audiocaps --eval_dataset_path features/clotho \
        --train_split development --eval_split validation --stage lora --output_dir runs/aac-7b

Stages (`--stage`): `projector` trains the projector alone over the frozen LM (the original LLM-AAC set-up);
`lora` trains projector + a LoRA adapter on the LM (SLAM-AAC); `both` runs `projector`, then `lora` starting
from its result, each stage with its own `--projector_max_steps` / `--lora_max_steps` and learning rates (by
default `--max_steps` / `--learning_rate`). The encoder stays frozen unless `--freeze_encoder false`;
`--encoder_init scratch` gives it the architecture of `--encoder_path` with fresh weights (what pretraining adds).
The projector-only stage relies on the LM being steerable by its input embeddings, which large instruction-tuned
LMs are and small ones are not: over a small LM (the `small` preset's stand-in) it only learns the caption
language, so keep it short there (a warm-up) and give the `lora` stage the steps.

Audio grounding: next to the validation loss, every evaluation scores the same captions against other clips'
audio (`eval_mismatched_audio_loss`) and logs the difference, `eval_audio_gain` (~0 for a captioner that only
models the caption language; `--eval_mismatched_audio false` skips it).

Data: every clip is paired with EACH of its reference captions (5 per Clotho clip). Features come precomputed
(`llm-aac precompute` output: raw features + statistics, normalised here) or are extracted on the fly from the
`audio` column; `--synthetic_clips N` renders and featurizes N clips of the synthetic corpus in memory
instead (on the GPU when there is one). Validation: loss on the first `--max_eval_clips` validation clips (all
references), then those clips are captioned (`--generation_num_beams`, `--generation_max_new_tokens`) and
scored against all their references (`--eval_metrics`, default CIDEr-D, BLEU-4, ROUGE-L and SPIDEr where SPICE
can run) in the same log entry (`eval_cider_d`, ...).

Outputs in `--output_dir`: `<stage>/` (Trainer checkpoints, `predictions/step-N.json`, `captioner/` = the model
after that stage), the final captioner (model + processor: `AutoModel.from_pretrained(output_dir)`,
`AutoProcessor.from_pretrained(output_dir)`), `log_history.json` (all stages, steps counted across stages),
`curves.png` (training loss, validation loss, CIDEr-D over steps) and `summary.json`.
`--resume_from_checkpoint true` skips finished stages and continues the unfinished one from its last checkpoint.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from llm_aac.train.caption_data import CorpusDataArguments
from llm_aac.train.training_arguments import CorpusTrainingArguments

logger = logging.getLogger("finetune_aac")

STAGES = ("projector", "lora", "both")
STAGE_COMPLETE_FILE = "stage_complete.json"
CAPTIONER_DIR = "captioner"
FEATURE_TYPES = ("fbank", "cwt", "cwt_seed")
ENCODER_SIZES = ("tiny", "small", "base")
ENCODER_INITS = ("pretrained", "scratch")
ALL_LINEAR = "all-linear"

# Argument defaults per preset; anything given on the command line wins.
PRESETS: dict[str, dict] = {
    # CPU tests and the offline demo: everything tiny, a few steps.
    "tiny": dict(
        encoder_size="tiny", language_model_size="tiny", tokenizer_vocab_size=1000, projector_hidden_size=64,
        lora_r=4, lora_alpha=8, lora_dropout=0.0,
        learning_rate=2e-3, per_device_train_batch_size=4, per_device_eval_batch_size=8, max_steps=20,
        warmup_steps=2, logging_steps=5, eval_steps=10, save_steps=10, max_eval_clips=8,
        generation_num_beams=2, generation_max_new_tokens=32,
    ),
    # One GPU, minutes: a small EAT and a small LM (`train/pretrain_text_lm.py --preset small`). A small LM,
    # unlike Vicuna-7B, cannot be steered by input embeddings alone (a frozen caption-trained LM read the clips'
    # true event labels, fed as learned audio tokens, no better than no audio): the adapter on every linear
    # layer, trained from the first steps, is what lets it read the audio.
    "small": dict(
        encoder_size="small", language_model_size="small", tokenizer_vocab_size=4000, projector_hidden_size=1024,
        lora_r=16, lora_alpha=32, lora_dropout=0.05, lora_target_modules=ALL_LINEAR,
        learning_rate=1e-3, per_device_train_batch_size=32, per_device_eval_batch_size=64, max_steps=1500,
        warmup_steps=100, logging_steps=25, eval_steps=250, save_steps=500, max_eval_clips=200,
        generation_num_beams=4, generation_max_new_tokens=64, bf16=True,
    ),
    # SLAM-AAC: Vicuna-7B-v1.5 + EAT-base, LoRA r 8 alpha 32 dropout 0.05 on q/v, lr 1e-4, 16 clips per step,
    # 1 k warm-up steps then linear decay, no weight decay, beam 4 with up to 200 new tokens.
    "7b": dict(
        encoder_size="base", language_model="lmsys/vicuna-7b-v1.5", model_dtype="bfloat16", projector_hidden_size=2048,
        lora_r=8, lora_alpha=32, lora_dropout=0.05,
        learning_rate=1e-4, per_device_train_batch_size=4, gradient_accumulation_steps=4, per_device_eval_batch_size=8,
        max_steps=100_000, warmup_steps=1000, logging_steps=50, eval_steps=2000, save_steps=2000, max_eval_clips=0,
        generation_num_beams=4, generation_max_new_tokens=200, bf16=True, gradient_checkpointing=True,
    ),
}


@dataclass
class ModelArguments:
    preset: str = field(default="tiny", metadata={"help": "argument defaults: tiny (CPU tests), small (one GPU), 7b (SLAM-AAC)"})
    init_from: str | None = field(
        default=None, metadata={"help": "a saved captioner folder to continue from (e.g. OUTPUT/projector/captioner)"}
    )
    encoder_path: str | None = field(
        default=None, metadata={"help": "EAT folder or hub id (pretrain_eat's encoder/, convert-eat output); "
                                "default: a random encoder of --encoder_size"}
    )
    encoder_size: str = field(default="tiny", metadata={"help": "random encoder size without --encoder_path: tiny, small, base"})
    encoder_init: str = field(
        default="pretrained", metadata={"help": "pretrained: the weights of --encoder_path; scratch: its architecture "
                                        "(config) with freshly initialised weights, its feature extractor kept (a "
                                        "control for what pretraining gives the captioner)"}
    )
    language_model: str | None = field(
        default=None, metadata={"help": "causal LM folder or hub id (pretrain_text_lm output, lmsys/vicuna-7b-v1.5); "
                                "default: a random LM of --language_model_size with a tokenizer trained on the captions"}
    )
    language_model_size: str = field(default="tiny", metadata={"help": "random LM size without --language_model: tiny, small"})
    tokenizer_path: str | None = field(default=None, metadata={"help": "tokenizer folder (default: the language model's)"})
    tokenizer_vocab_size: int = field(default=1000, metadata={"help": "vocabulary of the tokenizer trained for a random LM"})
    feature_type: str = field(
        default="fbank", metadata={"help": "fbank | cwt | cwt_seed when no saved feature extractor comes with the "
                                   "encoder, the captioner or precomputed features"}
    )
    projector_type: str = field(default="linear", metadata={"help": "linear (SLAM-AAC) or qformer"})
    projector_stack_factor: int = field(default=5, metadata={"help": "linear projector: encoder tokens per audio token"})
    projector_hidden_size: int = field(default=2048, metadata={"help": "linear projector: hidden width"})
    qformer_window_size: int = field(default=40, metadata={"help": "Q-Former: encoder tokens per window"})
    qformer_num_queries: int = field(default=8, metadata={"help": "Q-Former: audio tokens per window"})
    encoder_layer: int = field(default=-1, metadata={"help": "EAT hidden state read by the projector (-1 = last)"})
    freeze_encoder: bool = field(default=True, metadata={"help": "keep the encoder frozen (SLAM-AAC)"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout"})
    lora_target_modules: str = field(
        default="q_proj,v_proj", metadata={"help": "comma-separated LM modules given LoRA, or all-linear (every linear "
                                          "layer but the output head)"}
    )
    model_dtype: str = field(
        default="float32", metadata={"help": "dtype of the frozen weights (bfloat16 for 7B); trained ones stay float32"}
    )
    prompt: str | None = field(default=None, metadata={"help": "prompt template with one <audio> (default: SLAM-AAC's)"})


@dataclass
class StageArguments:
    stage: str = field(default="both", metadata={"help": "projector | lora | both (projector, then lora)"})
    projector_max_steps: int = field(default=0, metadata={"help": "steps of the projector stage (0: --max_steps)"})
    projector_learning_rate: float = field(default=0.0, metadata={"help": "its learning rate (0: --learning_rate)"})
    lora_max_steps: int = field(default=0, metadata={"help": "steps of the lora stage (0: --max_steps)"})
    lora_learning_rate: float = field(default=0.0, metadata={"help": "its learning rate (0: --learning_rate)"})
    encoder_learning_rate: float = field(
        default=0.0, metadata={"help": "peak learning rate of the audio encoder when it trains (--freeze_encoder "
                               "false), in every stage (0: the stage's learning rate)"}
    )
    group_by_duration: bool = field(
        default=False, metadata={"help": "batches of clips of similar length (transformers' LengthGroupedSampler over "
                                 "the clips' frames: less padding for the encoder and the LM); false: uniformly random"}
    )
    projector_max_minutes: float = field(default=0.0, metadata={"help": "stop the projector stage after this long (0: no limit)"})
    lora_max_minutes: float = field(default=0.0, metadata={"help": "stop the lora stage after this long (0: no limit)"})
    generation_num_beams: int = field(default=4, metadata={"help": "beam size of validation captions"})
    generation_max_new_tokens: int = field(default=200, metadata={"help": "longest validation caption"})
    eval_metrics: str = field(
        default="cider_d,bleu_4,rouge_l,spider", metadata={"help": "caption metrics (skipped when their runtime is missing)"}
    )
    eval_ptb_tokenize: bool = field(default=False, metadata={"help": "PTB-tokenise captions before scoring (Java, else its pure-Python copy)"})
    eval_mismatched_audio: bool = field(
        default=True, metadata={"help": "also score the validation captions against other clips' audio "
                                "(eval_mismatched_audio_loss, eval_audio_gain: ~0 until the captioner listens)"}
    )
    save_trainable_only: bool = field(default=True, metadata={"help": "checkpoints hold only the trained parameters"})
    merge_lora: bool = field(default=False, metadata={"help": "fold the adapter into the LM in the final saved model"})


@dataclass
class FinetuneTrainingArguments(CorpusTrainingArguments):
    """`TrainingArguments` with captioner defaults (each can be set on the command line)."""

    output_dir: str = field(default="runs/aac", metadata={"help": "where stages, logs and the final captioner go"})
    lr_scheduler_type: str = field(default="linear", metadata={"help": "SLAM-AAC: warm-up then linear decay"})


def parse_arguments(argv: Sequence[str] | None = None):
    from llm_aac.train.argument_presets import parse_with_presets

    return parse_with_presets(
        (ModelArguments, CorpusDataArguments, StageArguments, FinetuneTrainingArguments), PRESETS, argv,
        default_preset="tiny", base_defaults={"report_to": "none"},
    )


def check_arguments(model_args: ModelArguments, data_args: CorpusDataArguments, stage_args: StageArguments) -> None:
    problems = []
    if stage_args.stage not in STAGES:
        problems.append(f"--stage must be one of {STAGES}, got {stage_args.stage!r}")
    if model_args.feature_type not in FEATURE_TYPES:
        problems.append(f"--feature_type must be one of {FEATURE_TYPES}, got {model_args.feature_type!r}")
    if model_args.encoder_size not in ENCODER_SIZES:
        problems.append(f"--encoder_size must be one of {ENCODER_SIZES}, got {model_args.encoder_size!r}")
    if model_args.encoder_init not in ENCODER_INITS:
        problems.append(f"--encoder_init must be one of {ENCODER_INITS}, got {model_args.encoder_init!r}")
    elif model_args.encoder_init == "scratch" and (not model_args.encoder_path or model_args.init_from):
        problems.append("--encoder_init scratch takes the architecture of --encoder_path and cannot restart the "
                        f"encoder of --init_from (got --encoder_path {model_args.encoder_path!r}, --init_from "
                        f"{model_args.init_from!r}); without --encoder_path the encoder is random already "
                        "(--encoder_size)")
    if bool(data_args.dataset_path) == (data_args.synthetic_clips > 0):
        problems.append("give exactly one training input: --dataset_path DIR [DIR ...] or --synthetic_clips N")
    if data_args.synthetic_clips > 0 and data_args.synthetic_eval_clips < 1:
        problems.append(f"--synthetic_eval_clips must be >= 1, got {data_args.synthetic_eval_clips}")
    if model_args.model_dtype not in ("float32", "bfloat16", "float16"):
        problems.append(f"--model_dtype must be float32, bfloat16 or float16, got {model_args.model_dtype!r}")
    if stage_args.encoder_learning_rate < 0:
        problems.append(f"--encoder_learning_rate must be >= 0 (0: the stage's rate), got {stage_args.encoder_learning_rate}")
    if stage_args.generation_num_beams < 1 or stage_args.generation_max_new_tokens < 1:
        problems.append("--generation_num_beams and --generation_max_new_tokens must be >= 1")
    from llm_aac.eval.caption_metrics import resolve_metrics
    from llm_aac.train.caption_trainer import parse_metric_names

    try:
        resolve_metrics(parse_metric_names(stage_args.eval_metrics))
    except ValueError as error:
        problems.append(f"--eval_metrics: {error}")
    if problems:
        raise ValueError("invalid arguments: " + "; ".join(problems))


# ------------------------------------------------------------------------------------------- model


def lora_settings(model_args: ModelArguments) -> dict:
    targets = [t.strip() for t in model_args.lora_target_modules.split(",") if t.strip()]
    if not targets:
        raise ValueError("--lora_target_modules is empty")
    if ALL_LINEAR in targets:
        if len(targets) > 1:
            raise ValueError(f"--lora_target_modules {ALL_LINEAR!r} already names every linear layer; got {targets}")
        targets = ALL_LINEAR  # peft's shortcut: every linear layer of the LM except its output head
    return {"r": model_args.lora_r, "lora_alpha": model_args.lora_alpha, "lora_dropout": model_args.lora_dropout,
            "target_modules": targets}


def random_encoder_config(size: str, num_bins: int):
    """`EATConfig` of a random encoder: tiny (tests), small (ViT-S width, 6 layers), base (EAT-base)."""
    from modeling_llm_aac import EATConfig

    # 768 time patches (123 s) as EAT-base, so that 30 s clips are encoded whole.
    if size == "tiny":
        return EATConfig.tiny(num_mel_bins=num_bins, max_length=768)
    if size == "small":
        return EATConfig.base(num_mel_bins=num_bins, hidden_size=384, num_hidden_layers=6, num_attention_heads=6,
                              intermediate_size=1536)
    if size == "base":
        return EATConfig.base(num_mel_bins=num_bins)
    raise ValueError(f"unknown encoder size {size!r}; choose one of {ENCODER_SIZES}")


def encoder_architecture(path: str):
    """The `EATConfig` of an EAT folder (encoder or classifier) or hub id, for an encoder of the same shape with
    fresh weights."""
    from transformers import AutoConfig

    from modeling_llm_aac import EATConfig

    config = AutoConfig.from_pretrained(path)
    if not isinstance(config, EATConfig):
        raise ValueError(f"--encoder_path {path!r} holds a {config.model_type!r} model, not an EAT encoder: "
                         "--encoder_init scratch needs an EAT config to copy")
    return config


def _raw_feature_settings(feature_extractor) -> dict:
    """The extractor fields that fix the raw features (not the normalisation statistics)."""
    # auto_map only says where remote code lives (set once a folder was saved with it), not how features look.
    ignored = ("feature_mean", "feature_std", "do_normalize", "processor_class", "feature_extractor_type", "auto_map")
    return {k: v for k, v in feature_extractor.to_dict().items() if k not in ignored}


def resolve_feature_extractor(model_args: ModelArguments, data_args: CorpusDataArguments):
    """(feature extractor, whether its statistics are still the defaults and may be measured on the data).

    The normalisation a model was trained with wins: a captioner's (`--init_from`), then a pretrained encoder
    folder's; otherwise the statistics measured by `llm-aac precompute`; otherwise a new extractor of
    `--feature_type`. Precomputed raw features must come from the same extractor settings.
    """
    from llm_aac.train.caption_data import precomputed_feature_extractor
    from modeling_llm_aac import LLMAACFeatureExtractor, LLMAACProcessor

    chosen, source = None, None
    if model_args.init_from:
        chosen, source = LLMAACProcessor.from_pretrained(model_args.init_from).feature_extractor, model_args.init_from
    elif model_args.encoder_path and os.path.isfile(os.path.join(model_args.encoder_path, "preprocessor_config.json")):
        chosen, source = LLMAACFeatureExtractor.from_pretrained(model_args.encoder_path), model_args.encoder_path
    precomputed = [(path, data_args.train_split) for path in data_args.dataset_path]
    if data_args.eval_dataset_path:
        precomputed.append((data_args.eval_dataset_path, data_args.eval_split))
    elif data_args.dataset_path:
        precomputed.append((data_args.dataset_path[0], data_args.eval_split))
    for path, split in precomputed:
        extractor = precomputed_feature_extractor(path, split)
        if extractor is None:
            continue
        if chosen is None:
            chosen, source = extractor, path
        elif _raw_feature_settings(extractor) != _raw_feature_settings(chosen):
            differing = sorted(k for k, v in _raw_feature_settings(extractor).items() if _raw_feature_settings(chosen).get(k) != v)
            raise ValueError(
                f"the precomputed features in {path!r} ({split}) were made with other extractor settings than "
                f"{source!r}: {differing}; precompute them with that extractor (`llm-aac precompute --feature-extractor`)"
            )
    if chosen is None:
        return LLMAACFeatureExtractor(feature_type=model_args.feature_type), True
    return chosen, False


def _dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def keep_trainable_in_float32(model) -> None:
    """Trained parameters in float32 (AdamW updates of bf16 weights lose most of their bits); frozen ones keep
    their dtype. Mixed precision (`--bf16`) still runs the matmuls in bf16."""
    for parameter in model.parameters():
        if parameter.requires_grad and parameter.dtype != torch.float32:
            parameter.data = parameter.data.float()


def build_captioner(model_args: ModelArguments, feature_extractor, training_captions: Sequence[str], *, with_lora: bool):
    """A new captioner from parts, and its processor (see `ModelArguments`)."""
    from transformers import AutoTokenizer

    from llm_aac.train.pretrain_text_lm import build_lm_config
    from llm_aac.train.train_tokenizer import train_caption_tokenizer
    from modeling_llm_aac import LLMAACForConditionalGeneration, LLMAACProcessor
    from modeling_llm_aac.processing_llm_aac import DEFAULT_PROMPT

    if model_args.encoder_path and model_args.encoder_init == "scratch":
        encoder = encoder_architecture(model_args.encoder_path)
        logger.warning("--encoder_init scratch: the encoder has the architecture of %s and random weights",
                       model_args.encoder_path)
    elif model_args.encoder_path:
        encoder = model_args.encoder_path
    else:
        encoder = random_encoder_config(model_args.encoder_size, feature_extractor.feature_size)
        logger.warning("no --encoder_path: the encoder (%s) starts from random weights", model_args.encoder_size)
    if model_args.language_model:
        language_model = model_args.language_model
        tokenizer = AutoTokenizer.from_pretrained(model_args.tokenizer_path or model_args.language_model)
    else:
        tokenizer = (
            AutoTokenizer.from_pretrained(model_args.tokenizer_path)
            if model_args.tokenizer_path
            else train_caption_tokenizer(training_captions, vocab_size=model_args.tokenizer_vocab_size)
        )
        language_model = build_lm_config(model_args.language_model_size, tokenizer)
        logger.warning("no --language_model: a random %s Llama (vocabulary %d) is used", model_args.language_model_size,
                       len(tokenizer))
    dtype = _dtype(model_args.model_dtype)
    projector_options = {"projector_stack_factor": model_args.projector_stack_factor,
                         "projector_hidden_size": model_args.projector_hidden_size,
                         "qformer_window_size": model_args.qformer_window_size,
                         "qformer_num_queries": model_args.qformer_num_queries}
    model = LLMAACForConditionalGeneration.from_pretrained_parts(
        encoder=encoder,
        language_model=language_model,
        tokenizer=tokenizer,
        projector_type=model_args.projector_type,
        projector_options=projector_options,
        encoder_layer=model_args.encoder_layer,
        lora=lora_settings(model_args) if with_lora else None,
        freeze_encoder=model_args.freeze_encoder,
        dtype=None if dtype == torch.float32 else dtype,
        attn_implementation="sdpa",
    )
    if model.config.audio_config.num_mel_bins != feature_extractor.feature_size:
        raise ValueError(
            f"the encoder expects {model.config.audio_config.num_mel_bins} bins but the feature extractor makes "
            f"{feature_extractor.feature_size} ({feature_extractor.feature_type}); use the encoder's own extractor"
        )
    processor = LLMAACProcessor(
        feature_extractor, tokenizer, audio_token_settings=model.config, prompt=model_args.prompt or DEFAULT_PROMPT
    )
    return model, processor


def load_captioner(folder: str, model_args: ModelArguments):
    """A saved captioner (model + processor), with the encoder freezing of `--freeze_encoder`."""
    from modeling_llm_aac import LLMAACForConditionalGeneration, LLMAACProcessor

    dtype = _dtype(model_args.model_dtype)
    model = LLMAACForConditionalGeneration.from_pretrained(folder, dtype=dtype)
    processor = LLMAACProcessor.from_pretrained(folder)
    model.config.freeze_encoder = model_args.freeze_encoder
    model.apply_freezing()
    return model, processor


def prepare_stage_model(stage: str, model, model_args: ModelArguments):
    if stage == "projector" and model.has_lora:
        raise ValueError(
            "the projector stage trains the projector over a plain language model, but this captioner already "
            "carries a LoRA adapter; continue it with --stage lora"
        )
    if stage == "lora" and not model.has_lora:
        model.add_lora(lora_settings(model_args))
    model.apply_freezing()
    keep_trainable_in_float32(model)
    return model


def parameter_counts(model) -> dict[str, int]:
    counts = {"total": 0, "trainable": 0}
    for parameter in model.parameters():
        counts["total"] += parameter.numel()
        if parameter.requires_grad:
            counts["trainable"] += parameter.numel()
    return counts


# -------------------------------------------------------------------------------------------- data


def load_data(model_args: ModelArguments, data_args: CorpusDataArguments, training_args):
    """(training tables, their names, validation table, feature extractor)."""
    from llm_aac.train.caption_data import load_corpus_tables

    feature_extractor, default_statistics = resolve_feature_extractor(model_args, data_args)
    tables, names, eval_table = load_corpus_tables(
        data_args, feature_extractor, device=training_args.device, measure_statistics=default_statistics
    )
    return tables, names, eval_table, feature_extractor


# ------------------------------------------------------------------------------------------ stages


def stage_list(stage: str) -> list[str]:
    return ["projector", "lora"] if stage == "both" else [stage]


def stage_is_complete(stage_dir: str) -> bool:
    return os.path.isfile(os.path.join(stage_dir, STAGE_COMPLETE_FILE)) and os.path.isfile(
        os.path.join(stage_dir, CAPTIONER_DIR, "config.json")
    )


def stage_training_arguments(training_args, stage: str, stage_args: StageArguments, output_dir: str):
    arguments = copy.deepcopy(training_args)
    arguments.output_dir = output_dir
    steps = getattr(stage_args, f"{stage}_max_steps")
    learning_rate = getattr(stage_args, f"{stage}_learning_rate")
    if steps:
        arguments.max_steps = steps
    if learning_rate:
        arguments.learning_rate = learning_rate
    if arguments.gradient_checkpointing and not arguments.gradient_checkpointing_kwargs:
        # Non-reentrant checkpointing needs no input that requires grad (the LM's embeddings are frozen).
        arguments.gradient_checkpointing_kwargs = {"use_reentrant": False}
    return arguments


def last_eval_step(history: Sequence[dict]) -> int | None:
    steps = [entry["step"] for entry in history if "eval_loss" in entry]
    return steps[-1] if steps else None


def run_stage(stage, model, processor, training_args, model_args, stage_args, data, *, resume):
    """Trains one stage; returns (model, log history, final evaluation metrics)."""
    from transformers.trainer_utils import get_last_checkpoint

    from llm_aac.train.caption_data import CaptionBatchCollator, CaptionPairs, ClipReferences, MismatchedAudioPairs
    from llm_aac.train.callbacks import TimeLimitCallback
    from llm_aac.train.caption_trainer import CaptionEvaluator, CaptionTrainer
    from llm_aac.train.duration_grouping import training_lengths

    tables, names, eval_table, data_args = data
    model = prepare_stage_model(stage, model, model_args)
    counts = parameter_counts(model)
    logger.info("stage %s: %.2f M trained parameters of %.1f M", stage, counts["trainable"] / 1e6, counts["total"] / 1e6)

    collator = CaptionBatchCollator(
        processor, max_frames=data_args.max_frames, max_caption_tokens=data_args.max_caption_tokens,
        device=None,
    )
    max_clips = data_args.max_eval_clips or None
    train_pairs = CaptionPairs(tables, names)
    eval_pairs = CaptionPairs([eval_table], ["validation"], max_clips=max_clips)
    eval_clips = ClipReferences(eval_table, "validation", max_clips=max_clips)
    if len(eval_clips) < 2 and training_args.eval_strategy != "no":
        raise ValueError(
            f"the validation split holds {len(eval_clips)} clip with captions; caption metrics need at least 2 "
            "(CIDEr-D weighs n-grams by their document frequency over the clips). Use a larger --eval_split / "
            "--max_eval_clips, or --eval_strategy no"
        )
    evaluates = training_args.eval_strategy != "no"
    mismatched_pairs = (
        MismatchedAudioPairs([eval_table], ["validation"], max_clips=max_clips)
        if evaluates and stage_args.eval_mismatched_audio else None
    )
    logger.info("stage %s: %d training pairs, %d validation pairs over %d clips", stage, len(train_pairs),
                len(eval_pairs), len(eval_clips))
    generation_kwargs = {"num_beams": stage_args.generation_num_beams,
                         "max_new_tokens": stage_args.generation_max_new_tokens, "do_sample": False}
    evaluator = CaptionEvaluator(
        eval_clips, collator, batch_size=training_args.per_device_eval_batch_size, generation_kwargs=generation_kwargs,
        metrics=stage_args.eval_metrics, tokenize=stage_args.eval_ptb_tokenize,
        predictions_dir=os.path.join(training_args.output_dir, "predictions"),
    )
    callbacks = []
    minutes = getattr(stage_args, f"{stage}_max_minutes")
    if minutes > 0:
        callbacks.append(TimeLimitCallback(minutes))
    train_lengths = training_lengths(train_pairs, stage_args.group_by_duration, logger)
    trainer = CaptionTrainer(
        model=model,
        args=training_args,
        train_dataset=train_pairs,
        eval_dataset=eval_pairs,
        data_collator=collator,
        processing_class=processor,
        caption_evaluator=evaluator,
        mismatched_eval_dataset=mismatched_pairs,
        save_trainable_only=stage_args.save_trainable_only,
        encoder_learning_rate=stage_args.encoder_learning_rate or None,
        train_lengths=train_lengths,
        callbacks=callbacks,
    )
    checkpoint = None
    if resume is True:
        checkpoint = get_last_checkpoint(training_args.output_dir) if os.path.isdir(training_args.output_dir) else None
        if checkpoint:
            logger.info("stage %s: resuming from %s", stage, checkpoint)
    elif resume:
        checkpoint = resume
    trainer.train(resume_from_checkpoint=checkpoint)
    history = list(trainer.state.log_history)
    if training_args.eval_strategy != "no" and last_eval_step(history) != trainer.state.global_step:
        trainer.evaluate()
        history = list(trainer.state.log_history)
    final = {k: v for k, v in history[-1].items()} if history else {}
    model = trainer.accelerator.unwrap_model(trainer.model)

    if trainer.is_world_process_zero():
        captioner_dir = os.path.join(training_args.output_dir, CAPTIONER_DIR)
        model.save_pretrained(captioner_dir)
        processor.save_pretrained(captioner_dir)
        with open(os.path.join(training_args.output_dir, "log_history.json"), "w") as f:
            json.dump(history, f, indent=1)
        with open(os.path.join(training_args.output_dir, STAGE_COMPLETE_FILE), "w") as f:
            json.dump({"stage": stage, "global_step": trainer.state.global_step, "final_evaluation": final,
                       "parameters": counts}, f, indent=1)
    trainer.accelerator.wait_for_everyone()
    return model, history, final


def combined_history(stage_histories: Sequence[tuple[str, list[dict]]]) -> list[dict]:
    """All stages' log entries with a `stage` tag and steps counted from the start of the first stage."""
    combined, offset = [], 0
    for stage, history in stage_histories:
        last = 0
        for entry in history:
            shifted = dict(entry, stage=stage)
            if "step" in entry:
                shifted["stage_step"] = entry["step"]
                shifted["step"] = entry["step"] + offset
                last = max(last, entry["step"])
            combined.append(shifted)
        offset += last
    return combined


def write_curves(stage_histories, path: str, title: str) -> str | None:
    from llm_aac.train.plot_curves import plot_loss_curves

    combined = combined_history(stage_histories)
    per_stage = [[e for e in combined if e["stage"] == stage] for stage, _ in stage_histories]
    try:
        return plot_loss_curves(per_stage, path, keys=("loss", "eval_loss", "eval_audio_gain", "eval_cider_d"),
                                labels=[stage for stage, _ in stage_histories], title=title, log_scale=False)
    except (ValueError, ImportError) as error:  # nothing logged yet / matplotlib missing
        logger.warning("no curve written: %s", error)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    from transformers import set_seed

    import modeling_llm_aac  # noqa: F401  (registers the Auto classes)
    from llm_aac.train.caption_data import table_captions

    model_args, data_args, stage_args, training_args = parse_arguments(argv)
    logging.basicConfig(level=logging.INFO if training_args.should_log else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    check_arguments(model_args, data_args, stage_args)
    set_seed(training_args.seed)
    output_dir = training_args.output_dir
    resume = training_args.resume_from_checkpoint
    if isinstance(resume, str) and resume.lower() in ("true", "latest"):
        resume = True

    tables, names, eval_table, feature_extractor = load_data(model_args, data_args, training_args)
    stages = stage_list(stage_args.stage)
    model = processor = None
    stage_histories: list[tuple[str, list[dict]]] = []
    summary: dict = {"preset": model_args.preset, "stages": {}}
    for index, stage in enumerate(stages):
        stage_dir = os.path.join(output_dir, stage)
        if resume and stage_is_complete(stage_dir):
            logger.info("stage %s is complete in %s: loading its captioner", stage, stage_dir)
            model, processor = load_captioner(os.path.join(stage_dir, CAPTIONER_DIR), model_args)
            with open(os.path.join(stage_dir, "log_history.json")) as f:
                history = json.load(f)
            with open(os.path.join(stage_dir, STAGE_COMPLETE_FILE)) as f:
                summary["stages"][stage] = json.load(f)
            stage_histories.append((stage, history))
            continue
        if model is None:
            if model_args.init_from:
                model, processor = load_captioner(model_args.init_from, model_args)
            else:
                captions = [c for table, name in zip(tables, names) for refs in table_captions(table, name) for c in refs]
                model, processor = build_captioner(model_args, feature_extractor, captions, with_lora=stage == "lora")
        arguments = stage_training_arguments(training_args, stage, stage_args, stage_dir)
        start = time.monotonic()
        model, history, final = run_stage(
            stage, model, processor, arguments, model_args, stage_args, (tables, names, eval_table, data_args),
            resume=resume,
        )
        stage_histories.append((stage, history))
        summary["stages"][stage] = {"final_evaluation": final, "seconds": round(time.monotonic() - start, 1),
                                    "parameters": parameter_counts(model)}
        resume = True if resume else None  # an explicit checkpoint path belongs to the first unfinished stage only

    is_main = training_args.process_index == 0
    if is_main:
        if stage_args.merge_lora and model.has_lora:
            model.merge_lora()
        model.save_pretrained(output_dir)
        processor.save_pretrained(output_dir)
        combined = combined_history(stage_histories)
        with open(os.path.join(output_dir, "log_history.json"), "w") as f:
            json.dump(combined, f, indent=1)
        curves = write_curves(stage_histories, os.path.join(output_dir, "curves.png"),
                              title=f"LLM-AAC finetuning ({model_args.preset}: {', '.join(stages)})")
        summary["curves"] = curves
        summary["evaluations"] = [
            {k: v for k, v in entry.items() if k in ("stage", "step", "stage_step") or k.startswith("eval_")}
            for entry in combined if "eval_loss" in entry
        ]
        with open(os.path.join(output_dir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
        for entry in summary["evaluations"]:
            logger.info("%-9s step %5d: eval_loss %.3f  mismatched-audio loss %s  CIDEr-D %s", entry["stage"], entry["step"],
                        entry["eval_loss"],
                        f"{entry['eval_mismatched_audio_loss']:.3f}" if "eval_mismatched_audio_loss" in entry else "n/a",
                        f"{entry['eval_cider_d']:.3f}" if "eval_cider_d" in entry else "n/a")
        logger.info("captioner saved to %s", output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
