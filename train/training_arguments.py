"""`TrainingArguments` defaults shared by this repo's training scripts.

`SyncFreeTrainingArguments` is the base of every script's arguments: Trainer's `logging_nan_inf_filter` (on by
default in transformers) tests each micro-step's loss for NaN / inf on the host, a device sync per step that keeps
the CPU from queueing the next step's kernels while the GPU works; our small models are launch-bound, so it is
off by default here (a NaN loss is then logged as NaN instead of being replaced by the running mean; pass
`--logging_nan_inf_filter true` for transformers' behaviour).

`train/finetune_aac.py` (the captioner) and `train/train_clap.py` (EAT-CLAP) read raw corpus rows through their
own collators, evaluate from the first step on and compute their own metrics beside the loss; their
`TrainingArguments` subclasses add only what differs (output folder, learning-rate schedule).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments


@dataclass
class SyncFreeTrainingArguments(TrainingArguments):
    """`TrainingArguments` without the per-step host sync of the NaN / inf loss filter (see the module docstring)."""

    logging_nan_inf_filter: bool = field(
        default=False,
        metadata={"help": "replace NaN / inf step losses in the logged loss (reads the loss back every step)"},
    )


@dataclass
class CorpusTrainingArguments(SyncFreeTrainingArguments):
    """`TrainingArguments` with the defaults of the corpus training scripts (each can be set on the command line)."""

    remove_unused_columns: bool = field(default=False, metadata={"help": "the collator reads raw rows"})
    eval_strategy: str = field(default="steps", metadata={"help": "evaluate every --eval_steps"})
    eval_on_start: bool = field(default=True, metadata={"help": "evaluate before the first step (baseline)"})
    prediction_loss_only: bool = field(
        default=True, metadata={"help": "evaluation keeps the loss, not the logits (metrics are computed apart)"}
    )
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm"})
    save_total_limit: int | None = field(default=2, metadata={"help": "checkpoints kept (per stage for the captioner)"})
    ddp_find_unused_parameters: bool | None = field(default=False, metadata={"help": "every trained tensor is used"})


__all__ = ["CorpusTrainingArguments", "SyncFreeTrainingArguments"]
