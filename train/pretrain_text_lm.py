"""Pre-train a small Llama-architecture causal language model on caption text (`Trainer`).

The stand-in for a pretrained LLM such as Vicuna where none can be downloaded: the captioner is then built
on it exactly as on Vicuna-7B (frozen LM, projector, LoRA). It learns the language of captions and, for a
share of the examples, the captioner's chat format (`USER: Describe the audio you hear.\\nASSISTANT:
<caption></s>`, without the audio), as an instruction-tuned LLM knows its prompt format.

    # CPU, seconds: captions of 300 synthetic clips
    python train/pretrain_text_lm.py --preset tiny --synthetic_clips 300 --output_dir runs/lm-tiny

    # GPU: human captions (AudioCaps / Clotho CSVs) and synthetic ones, an existing tokenizer
    accelerate launch train/pretrain_text_lm.py --preset small --caption_files audiocaps/train.csv \
        --synthetic_clips 5000 --tokenizer_path runs/tokenizer --bf16 --output_dir runs/lm-small

Texts are tokenized with BOS in front and EOS after each caption, concatenated and cut into blocks of
`--block_size` tokens (long enough for the positions a caption takes after the audio tokens in the
captioner); `--validation_fraction` of the captions is held out for the validation loss / perplexity.
Without `--tokenizer_path` a byte-level BPE tokenizer is trained on the same text first
(`train/train_tokenizer.py`).

Output in `--output_dir`: model + tokenizer (`AutoModelForCausalLM` / `AutoTokenizer.from_pretrained`),
`checkpoint-*`, `log_history.json`, `lm_curves.png` (training and validation loss).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from llm_aac.train.training_arguments import SyncFreeTrainingArguments

logger = logging.getLogger("pretrain_text_lm")

# Llama-architecture sizes. tiny: CPU tests and the offline demo; small (~30 M parameters): a GPU in minutes.
MODEL_PRESETS: dict[str, dict] = {
    "tiny": dict(hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2),
    "small": dict(hidden_size=512, intermediate_size=1408, num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=8),
}
# Training defaults per preset (anything given on the command line wins).
TRAINING_PRESETS: dict[str, dict] = {
    "tiny": dict(
        learning_rate=3e-3, per_device_train_batch_size=8, per_device_eval_batch_size=16, max_steps=100,
        warmup_steps=10, logging_steps=10, eval_steps=50, save_steps=100, block_size=256, vocab_size=1000,
        report_to="none",
    ),
    "small": dict(
        learning_rate=1e-3, per_device_train_batch_size=64, per_device_eval_batch_size=64, max_steps=1500,
        warmup_steps=100, logging_steps=25, eval_steps=250, save_steps=500, block_size=512, vocab_size=4000,
        report_to="none",
    ),
}
# The captioner's prompt without its audio placeholder.
PROMPT_PREFIX = "USER: Describe the audio you hear.\nASSISTANT:"


def build_lm_config(preset: str, tokenizer, *, max_position_embeddings: int = 2048, overrides: dict | None = None):
    """`LlamaConfig` of a preset, sized to `tokenizer` (vocabulary and BOS / EOS / pad ids)."""
    from transformers import LlamaConfig

    if preset not in MODEL_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(MODEL_PRESETS)}")
    settings = dict(MODEL_PRESETS[preset])
    settings.update(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=False,  # as Llama-2 / Vicuna-7B
    )
    settings.update(overrides or {})
    return LlamaConfig(**settings)


def format_documents(captions: Sequence[str], *, prompt_fraction: float, seed: int) -> list[str]:
    """Captions, a `prompt_fraction` share of them (chosen with `seed`) behind the captioner's prompt."""
    if not 0.0 <= prompt_fraction <= 1.0:
        raise ValueError(f"prompt_fraction must lie in [0, 1], got {prompt_fraction}")
    rng = random.Random(seed)
    return [f"{PROMPT_PREFIX} {caption}" if rng.random() < prompt_fraction else caption for caption in captions]


def pack_into_blocks(tokenizer, documents: Sequence[str], block_size: int) -> torch.Tensor:
    """`[num_blocks, block_size]` token ids: each document as BOS + text + EOS, concatenated and cut into blocks.

    The trailing partial block is padded with EOS rather than dropped when it is the only one.
    """
    if block_size < 2:
        raise ValueError(f"block_size must be >= 2, got {block_size}")
    if not documents:
        raise ValueError("no documents to pack")
    encoded = tokenizer(list(documents), add_special_tokens=False)["input_ids"]
    stream: list[int] = []
    for ids in encoded:
        stream.append(tokenizer.bos_token_id)
        stream.extend(ids)
        stream.append(tokenizer.eos_token_id)
    num_blocks = len(stream) // block_size
    if num_blocks == 0:
        stream = stream + [tokenizer.eos_token_id] * (block_size - len(stream))
        num_blocks = 1
    return torch.tensor(stream[: num_blocks * block_size], dtype=torch.long).view(num_blocks, block_size)


class TokenBlocks(torch.utils.data.Dataset):
    """Rows `{"input_ids", "labels"}` of packed token blocks (labels = inputs; the model shifts them)."""

    def __init__(self, blocks: torch.Tensor):
        self.blocks = blocks

    def __len__(self) -> int:
        return self.blocks.shape[0]

    def __getitem__(self, index: int) -> dict:
        block = self.blocks[index]
        return {"input_ids": block, "labels": block}


@dataclass
class TextLMArguments:
    preset: str = field(default="tiny", metadata={"help": "model size and training defaults: tiny (CPU) or small (GPU)"})
    tokenizer_path: str | None = field(
        default=None, metadata={"help": "an existing tokenizer folder; default: train one on the same text"}
    )
    vocab_size: int = field(default=1000, metadata={"help": "vocabulary of the tokenizer trained when none is given"})
    caption_files: list[str] = field(default_factory=list, metadata={"help": "caption .txt / .csv / .jsonl files"})
    corpus_path: str | None = field(default=None, metadata={"help": "corpus folder (llm-aac synth output, Clotho, ...)"})
    corpus_split: str | None = field(default="train", metadata={"help": "split of the corpus folder"})
    synthetic_clips: int = field(default=0, metadata={"help": "captions of this many synthetic training clips (5 each)"})
    synthetic_seed: int = field(default=0, metadata={"help": "seed of the synthetic corpus"})
    block_size: int = field(default=256, metadata={"help": "tokens per training block"})
    prompt_fraction: float = field(default=0.5, metadata={"help": "share of captions put behind the captioner's prompt"})
    validation_fraction: float = field(default=0.05, metadata={"help": "share of captions held out for validation"})
    max_position_embeddings: int = field(default=2048, metadata={"help": "longest sequence the LM (and captioner) takes"})
    config_overrides: str = field(default="", metadata={"help": "LlamaConfig fields as JSON, e.g. '{\"num_hidden_layers\": 4}'"})
    max_train_minutes: float = field(default=0.0, metadata={"help": "stop (and save) after this long; 0: no limit"})


@dataclass
class TextLMTrainingArguments(SyncFreeTrainingArguments):
    """`TrainingArguments` with language-model pretraining defaults (each can be set on the command line)."""

    output_dir: str = field(default="runs/text-lm", metadata={"help": "where the model and logs go"})
    eval_strategy: str = field(default="steps", metadata={"help": "evaluate every --eval_steps"})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "learning-rate schedule"})
    weight_decay: float = field(default=0.1, metadata={"help": "decoupled weight decay"})
    adam_beta2: float = field(default=0.95, metadata={"help": "Adam beta2"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm"})
    save_total_limit: int | None = field(default=2, metadata={"help": "checkpoints kept"})


def parse_arguments(argv: Sequence[str] | None = None):
    from llm_aac.train.argument_presets import parse_with_presets

    return parse_with_presets(
        (TextLMArguments, TextLMTrainingArguments), TRAINING_PRESETS, argv, default_preset="tiny"
    )


def load_or_train_tokenizer(args: TextLMArguments, texts: Sequence[str]):
    from transformers import AutoTokenizer

    from llm_aac.train.train_tokenizer import train_caption_tokenizer

    if args.tokenizer_path:
        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer_path)
        missing = [name for name in ("bos_token", "eos_token") if getattr(tokenizer, name) is None]
        if missing:
            raise ValueError(f"tokenizer {args.tokenizer_path!r} has no {missing}; the LM needs BOS and EOS")
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer
    return train_caption_tokenizer(texts, vocab_size=args.vocab_size)


def main(argv: Sequence[str] | None = None) -> int:
    from transformers import AutoModelForCausalLM, GenerationConfig, Trainer, set_seed

    from llm_aac.train.callbacks import TimeLimitCallback
    from llm_aac.train.caption_text import collect_captions
    from llm_aac.train.plot_curves import plot_loss_curves

    args, training_args = parse_arguments(argv)
    logging.basicConfig(level=logging.INFO if training_args.should_log else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not 0.0 < args.validation_fraction < 1.0:
        raise ValueError(f"--validation_fraction must lie strictly between 0 and 1, got {args.validation_fraction}")
    overrides = json.loads(args.config_overrides) if args.config_overrides.strip() else {}
    if not isinstance(overrides, dict):
        raise ValueError(f"--config_overrides must be a JSON object, got {args.config_overrides!r}")
    set_seed(training_args.seed)

    texts = collect_captions(
        caption_files=args.caption_files, corpus_path=args.corpus_path, corpus_split=args.corpus_split,
        synthetic_clips=args.synthetic_clips, synthetic_seed=args.synthetic_seed,
    )
    order = list(range(len(texts)))
    random.Random(training_args.seed).shuffle(order)
    num_validation = max(1, int(round(len(texts) * args.validation_fraction)))
    if num_validation >= len(texts):
        raise ValueError(f"{len(texts)} captions are too few to hold out {num_validation} for validation")
    validation_texts = [texts[i] for i in order[:num_validation]]
    training_texts = [texts[i] for i in order[num_validation:]]

    tokenizer = load_or_train_tokenizer(args, training_texts)
    train_blocks = pack_into_blocks(
        tokenizer, format_documents(training_texts, prompt_fraction=args.prompt_fraction, seed=training_args.seed),
        args.block_size,
    )
    eval_blocks = pack_into_blocks(
        tokenizer, format_documents(validation_texts, prompt_fraction=args.prompt_fraction, seed=training_args.seed + 1),
        args.block_size,
    )
    config = build_lm_config(args.preset, tokenizer, max_position_embeddings=args.max_position_embeddings, overrides=overrides)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    logger.info(
        "text LM (%s): %.2f M parameters, vocabulary %d; %d training captions -> %d blocks of %d tokens, "
        "%d validation captions -> %d blocks",
        args.preset, model.num_parameters() / 1e6, len(tokenizer), len(training_texts), len(train_blocks),
        args.block_size, len(validation_texts), len(eval_blocks),
    )

    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=TokenBlocks(train_blocks),
        eval_dataset=TokenBlocks(eval_blocks),
        processing_class=tokenizer,
        callbacks=[TimeLimitCallback(args.max_train_minutes)] if args.max_train_minutes > 0 else None,
    )
    resume = training_args.resume_from_checkpoint
    if isinstance(resume, str) and resume.lower() in ("true", "latest"):
        resume = True
    trainer.train(resume_from_checkpoint=resume)
    metrics = trainer.evaluate()
    metrics["eval_perplexity"] = math.exp(min(metrics["eval_loss"], 50.0))
    trainer.log_metrics("eval", metrics)
    trainer.save_model()

    if trainer.is_world_process_zero():
        history = trainer.state.log_history
        with open(os.path.join(training_args.output_dir, "log_history.json"), "w") as f:
            json.dump(history, f, indent=1)
        try:
            plot_loss_curves(history, os.path.join(training_args.output_dir, "lm_curves.png"),
                             keys=("loss", "eval_loss"), title=f"text LM ({args.preset}) on captions")
        except (ValueError, ImportError) as error:  # nothing logged yet / matplotlib missing
            logger.warning("no curve written: %s", error)
        logger.info("validation loss %.3f (perplexity %.1f); model + tokenizer saved to %s",
                    metrics["eval_loss"], metrics["eval_perplexity"], training_args.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
