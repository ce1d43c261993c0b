"""Train EAT-CLAP (EAT audio tower + HF text encoder) contrastively with `Trainer`, for caption rescoring.

    # CPU, seconds: tiny towers, a tokenizer trained on the captions, synthetic clips rendered in memory
    python train/train_clap.py --preset tiny --synthetic_clips 32 --synthetic_eval_clips 8 --output_dir runs/clap-tiny

    # a corpus on disk (`llm-aac synth` folder, Clotho / AudioCaps folders, `llm-aac precompute` outputs),
    # one or several GPUs; negatives are gathered from every process
    accelerate launch train/train_clap.py --preset base --dataset_path data/synth --eval_split validation \
        --audio_model_path eat-base-as2m --text_model_path roberta-base --output_dir runs/clap-base

Model: `EATClapModel` = EAT (`--audio_model_path`: a `llm-aac convert-eat` or `train/pretrain_eat.py` encoder
folder; otherwise a random EAT of `--audio_size`) + any `AutoModel` text encoder (`--text_model_path` with its
tokenizer, e.g. `roberta-base`; otherwise a random BERT / RoBERTa of `--text_size` with a byte-level BPE
tokenizer trained on the training captions) + projection heads into a `--projection_dim` space + a learnable
temperature. `--init_from` continues from a saved EAT-CLAP folder.

Loss: symmetric InfoNCE (audio->text and text->audio cross-entropy over the batch). Under `accelerate launch`
/ torchrun every process's embeddings are gathered with a differentiable all-gather, so each clip is contrasted
with the captions of the global batch (per-device batch x processes).

Compositional hard negatives (opt-in, CompA-CLAP style): `--hard_negatives count,order,antonym` (any subset) edits
each training caption into up to `--hard_negatives_per_kind` captions of a different scene per kind (a changed
count, two sequence clauses swapped, a direction / loudness / pitch word flipped: generic English rules,
`llm_aac.processing.caption_perturbations`; a caption no rule applies to gets none, and an edit that equals one of
the clip's references is dropped), and at most `--hard_negatives_per_clip` K (default 1) in all: the kinds are
drawn at random among those that apply to the caption, so the text tower encodes at most 1 + K captions per clip
(uncapped, the three kinds give ~2.4 hard negatives per synthetic caption; K = kinds x per-kind is the uncapped
draw). They are extra negatives in the audio->text softmax of their own clip only, each counted
`--hard_negative_weight` times (see `clap_contrastive_loss`). In-batch negatives almost never differ
from the right caption by a count or an order alone, so plain InfoNCE barely learns to tell such captions apart,
which is what rescoring captioner candidates needs. The edits are drawn per clip and epoch from `--caption_seed`.

Data: each clip is paired with ONE of its reference captions per epoch, cycling through them (epoch e gives
clip i its caption (o_i + e) mod n, o_i a seeded random offset), so five epochs of Clotho show every caption
once. Features come precomputed (`llm-aac precompute`) or are extracted on the fly from the `audio` column;
`--synthetic_clips N` renders N clips of the synthetic corpus in memory instead.

Validation: the in-batch contrastive loss (`eval_loss`, without hard negatives, so that runs with and without
them compare) and retrieval over the first `--max_eval_clips` validation clips with all their references:
audio->text and text->audio recall at 1, 5 and 10 (`eval_a2t_r1`, `eval_t2a_r1`, ...); and, whatever the training
option, the hard-negative accuracy that caption rescoring needs: the fraction of those references that score higher
with their clip than every one of their perturbations (up to 2 of each kind, fixed seed; `eval_hard_negative_
accuracy`, per kind `eval_hard_negative_accuracy_count` / `_order` / `_antonym`, and `eval_hard_negative_margin`, the
mean cosine gap between a reference and its best-scoring perturbation).

Outputs in `--output_dir`: the model, feature extractor and tokenizer in one folder (`load_clap_scorer(dir)`,
`AutoModel.from_pretrained(dir)`), Trainer checkpoints, `log_history.json`, `curves.png`, `summary.json`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import Trainer, TrainerCallback

from llm_aac.processing.caption_perturbations import PERTURBATION_KINDS, parse_perturbation_kinds, perturb_caption
from llm_aac.train.caption_data import CorpusDataArguments
from llm_aac.train.duration_grouping import DurationGroupedSamplerMixin, clip_lengths, training_lengths
from llm_aac.train.training_arguments import CorpusTrainingArguments

logger = logging.getLogger("train_clap")

FEATURE_TYPES = ("fbank", "cwt", "cwt_seed")
AUDIO_SIZES = ("tiny", "small", "base")
TEXT_SIZES = ("tiny", "small", "base")

# Argument defaults per preset; anything given on the command line wins.
PRESETS: dict[str, dict] = {
    # CPU tests and the offline demo.
    "tiny": dict(
        audio_size="tiny", text_size="tiny", tokenizer_vocab_size=600, projection_dim=32,
        learning_rate=5e-4, per_device_train_batch_size=8, per_device_eval_batch_size=8, max_steps=30,
        warmup_steps=2, logging_steps=5, eval_steps=15, save_steps=15, max_eval_clips=16,
    ),
    # One GPU, minutes: a ViT-S-width EAT and a 4-layer BERT.
    "small": dict(
        audio_size="small", text_size="small", tokenizer_vocab_size=4000, projection_dim=256,
        learning_rate=3e-4, per_device_train_batch_size=64, per_device_eval_batch_size=64, max_steps=3000,
        warmup_steps=200, logging_steps=25, eval_steps=250, save_steps=500, max_eval_clips=500, bf16=True,
    ),
    # EAT-base + a roberta-base-shaped text tower (pass --text_model_path roberta-base for pretrained weights),
    # 512-d joint space as laion-clap; 128 clips per device.
    "base": dict(
        audio_size="base", text_size="base", tokenizer_vocab_size=16000, projection_dim=512,
        learning_rate=1e-4, per_device_train_batch_size=128, per_device_eval_batch_size=128, max_steps=40_000,
        warmup_steps=2000, logging_steps=50, eval_steps=2000, save_steps=2000, max_eval_clips=1000, bf16=True,
        weight_decay=0.05,
    ),
}


@dataclass
class ClapModelArguments:
    preset: str = field(default="tiny", metadata={"help": "argument defaults: tiny (CPU tests), small (one GPU), base"})
    init_from: str | None = field(default=None, metadata={"help": "a saved EAT-CLAP folder to continue from"})
    audio_model_path: str | None = field(
        default=None, metadata={"help": "EAT folder (convert-eat / pretrain_eat encoder); default: random --audio_size"}
    )
    audio_size: str = field(default="tiny", metadata={"help": "random EAT without --audio_model_path: tiny, small, base"})
    text_model_path: str | None = field(
        default=None, metadata={"help": "text encoder folder or hub id with its tokenizer (e.g. roberta-base); "
                                "default: a random --text_size encoder with a tokenizer trained on the captions"}
    )
    text_size: str = field(default="tiny", metadata={"help": "random text encoder: tiny, small (BERT), base (RoBERTa)"})
    tokenizer_vocab_size: int = field(default=2000, metadata={"help": "vocabulary of the tokenizer trained for a random text tower"})
    feature_type: str = field(
        default="fbank", metadata={"help": "fbank | cwt | cwt_seed when no saved feature extractor comes with the "
                                   "audio model, --init_from or precomputed features"}
    )
    projection_dim: int = field(default=512, metadata={"help": "joint embedding width"})
    projection_type: str = field(default="mlp", metadata={"help": "mlp (Linear-ReLU-Linear, laion-clap) or linear"})
    audio_pooling: str = field(default="mean", metadata={"help": "mean (learns from random towers too) or cls"})
    text_pooling: str = field(default="mean", metadata={"help": "mean, cls, last or pooler"})
    logit_scale_init_value: float = field(default=1 / 0.07, metadata={"help": "initial inverse temperature"})
    freeze_audio_model: bool = field(default=False, metadata={"help": "train the heads (and text tower) only"})
    freeze_text_model: bool = field(default=False, metadata={"help": "keep the text tower frozen"})


@dataclass
class ClapDataArguments(CorpusDataArguments):
    caption_seed: int = field(default=0, metadata={"help": "seed of the per-clip caption rotation"})
    max_train_minutes: float = field(
        default=0.0, metadata={"help": "stop (saving and evaluating there) once training has run this long; 0: no limit"}
    )
    hard_negatives: str = field(
        default="", metadata={"help": "compositional hard negatives made from each training caption: a comma list of "
                              "count, order, antonym ('' or none: off, plain InfoNCE)"}
    )
    hard_negatives_per_kind: int = field(
        default=1, metadata={"help": "at most this many hard negatives of each kind per caption (drawn per epoch)"}
    )
    hard_negatives_per_clip: int = field(
        default=1, metadata={"help": "at most this many hard negatives per caption in all, kinds drawn at random among "
                             "those that apply to it (1: the text tower encodes at most 2x the batch; the number of "
                             "kinds x --hard_negatives_per_kind: every kind, no cap)"}
    )
    group_by_duration: bool = field(
        default=True, metadata={"help": "batches of clips of similar length (transformers' LengthGroupedSampler: "
                                "random megabatches of 50 batches, each sorted by length), so the audio tower pads "
                                "little; false: uniformly random batches"}
    )


@dataclass
class ClapTrainingArguments(CorpusTrainingArguments):
    """`TrainingArguments` with CLAP defaults (each can be set on the command line)."""

    output_dir: str = field(default="runs/clap", metadata={"help": "where the model, checkpoints and logs go"})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "warm-up then cosine decay (CLIP)"})
    hard_negative_weight: float = field(
        default=1.0, metadata={"help": "how many in-batch negatives each hard negative counts for in its clip's "
                               "audio->text softmax (with --hard_negatives)"}
    )


def parse_arguments(argv: Sequence[str] | None = None):
    from llm_aac.train.argument_presets import parse_with_presets

    return parse_with_presets(
        (ClapModelArguments, ClapDataArguments, ClapTrainingArguments), PRESETS, argv, default_preset="tiny",
        base_defaults={"report_to": "none"},
    )


def check_arguments(model_args: ClapModelArguments, data_args: ClapDataArguments, training_args) -> None:
    problems = []
    if model_args.feature_type not in FEATURE_TYPES:
        problems.append(f"--feature_type must be one of {FEATURE_TYPES}, got {model_args.feature_type!r}")
    if model_args.audio_size not in AUDIO_SIZES:
        problems.append(f"--audio_size must be one of {AUDIO_SIZES}, got {model_args.audio_size!r}")
    if model_args.text_size not in TEXT_SIZES:
        problems.append(f"--text_size must be one of {TEXT_SIZES}, got {model_args.text_size!r}")
    if bool(data_args.dataset_path) == (data_args.synthetic_clips > 0):
        problems.append("give exactly one training input: --dataset_path DIR [DIR ...] or --synthetic_clips N")
    if data_args.synthetic_clips > 0 and data_args.synthetic_eval_clips < 2:
        problems.append(f"--synthetic_eval_clips must be >= 2, got {data_args.synthetic_eval_clips}")
    if data_args.max_train_minutes < 0:
        problems.append(f"--max_train_minutes must be >= 0 (0: no limit), got {data_args.max_train_minutes}")
    if training_args.per_device_train_batch_size < 2:
        problems.append("--per_device_train_batch_size must be >= 2: a contrastive batch needs negatives")
    try:
        parse_perturbation_kinds(data_args.hard_negatives)
    except ValueError as error:
        problems.append(f"--hard_negatives: {error}")
    if data_args.hard_negatives_per_kind < 1:
        problems.append(f"--hard_negatives_per_kind must be >= 1, got {data_args.hard_negatives_per_kind}")
    if data_args.hard_negatives_per_clip < 1:
        problems.append(f"--hard_negatives_per_clip must be >= 1, got {data_args.hard_negatives_per_clip}")
    if not (math.isfinite(training_args.hard_negative_weight) and training_args.hard_negative_weight >= 0):
        problems.append(f"--hard_negative_weight must be a finite number >= 0, got {training_args.hard_negative_weight}")
    if problems:
        raise ValueError("invalid arguments: " + "; ".join(problems))


# -------------------------------------------------------------------------------------------- data


class ClipCaptionEpochs(torch.utils.data.Dataset):
    """One item per clip with a reference caption: `{"row": clip row, "caption": str}`.

    Clip `i` with `n` references gets reference `(offset_i + epoch) mod n` in `epoch` (offsets drawn from
    `seed`), so consecutive epochs cycle through all captions. `EpochCallback` advances `epoch`.

    With `hard_negative_kinds` (see `caption_perturbations.PERTURBATION_KINDS`) items also hold `"hard_negatives"`:
    up to `hard_negatives_per_kind` perturbations of the caption per kind and at most `hard_negatives_per_clip` in
    all (None: no cap; with a cap, kinds drawn at random among those that apply to the caption, see
    `perturb_caption(max_perturbations=...)`), none equal to one of the clip's references, drawn from (`seed`,
    epoch, index), so that they are the same in every DataLoader worker and on a resume, and change from epoch to
    epoch. They are drawn when an item is read (in the DataLoader workers), not precomputed: the caption rotation
    shows a (clip, reference) pair once per n epochs, so a per-dataset table would cost the edits of every
    reference up front (~20 s for 100k references on one core) for a short run that reads each pair about once.
    """

    def __init__(self, tables: Sequence, names: Sequence[str] | None = None, *, seed: int = 0,
                 hard_negative_kinds: Sequence[str] = (), hard_negatives_per_kind: int = 1,
                 hard_negatives_per_clip: int | None = None):
        from llm_aac.train.caption_data import table_captions

        names = list(names) if names is not None else [f"table {i}" for i in range(len(tables))]
        self.tables = list(tables)
        self.items: list[tuple[int, int, list[str]]] = []
        for table_index, (table, name) in enumerate(zip(self.tables, names)):
            captions = table_captions(table, name)
            skipped = 0
            for row_index, references in enumerate(captions):
                if references:
                    self.items.append((table_index, row_index, references))
                else:
                    skipped += 1
            if skipped:
                logger.warning("%s: %d of %d clips have no caption and are skipped", name, skipped, len(captions))
        if len(self.items) < 2:
            raise ValueError(f"contrastive training needs at least 2 captioned clips; {names} hold {len(self.items)}")
        rng = np.random.default_rng(seed)
        self.offsets = [int(rng.integers(len(refs))) for _, _, refs in self.items]
        self.epoch = 0
        self.seed = int(seed)
        self.hard_negative_kinds = parse_perturbation_kinds(hard_negative_kinds)
        self.hard_negatives_per_kind = int(hard_negatives_per_kind)
        self.hard_negatives_per_clip = None if hard_negatives_per_clip is None else int(hard_negatives_per_clip)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def clip_lengths(self) -> list[int] | None:
        """Per item, its clip's length (`duration_grouping.clip_lengths`), or None."""
        return clip_lengths(self.tables, ((table_index, row_index) for table_index, row_index, _ in self.items))

    def caption_index(self, index: int) -> int:
        return (self.offsets[index] + self.epoch) % len(self.items[index][2])

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        table_index, row_index, references = self.items[index]
        caption = references[self.caption_index(index)]
        item = {"row": self.tables[table_index][row_index], "caption": caption}
        if self.hard_negative_kinds:
            perturbations = perturb_caption(
                caption, self.hard_negative_kinds, per_kind=self.hard_negatives_per_kind,
                max_perturbations=self.hard_negatives_per_clip,
                rng=np.random.default_rng([self.seed, self.epoch, index]), exclude=references,
            )
            item["hard_negatives"] = [p.text for p in perturbations]
        return item


class EpochCallback(TrainerCallback):
    """Tells the training dataset which epoch starts (before its iterator, and its workers, are created)."""

    def __init__(self, dataset: ClipCaptionEpochs):
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        # `state.epoch` is the fraction of epochs done (e.g. 2.0 at the start of the third, 1.5 on a resume).
        self.dataset.set_epoch(math.floor((state.epoch or 0.0) + 1e-6))


class ClapBatchCollator:
    """Items (`{"row", "caption"}`) -> `input_features`, `audio_attention_mask`, `input_ids`, `attention_mask`.

    Features go through `processing.collate.AudioFeatureCollator` (precomputed or extracted on the fly,
    normalised with the extractor's statistics, padded to a multiple of 16 frames); captions through the
    text tower's tokenizer (`max_caption_tokens`). Items' `"hard_negatives"` (when the batch has any) become
    `hard_negative_input_ids` / `hard_negative_attention_mask` (/ `hard_negative_token_type_ids`) and
    `hard_negative_owners`, the item index of each (in range by construction, which the loss on an accelerator
    relies on: it reads no owner value).
    """

    def __init__(self, feature_extractor, tokenizer, *, max_frames: int | None = None, max_caption_tokens: int = 64):
        from llm_aac.processing.collate import AudioFeatureCollator

        self.features = AudioFeatureCollator(feature_extractor, max_frames=max_frames)
        self.tokenizer = tokenizer
        self.max_caption_tokens = max_caption_tokens

    def audio(self, rows: Sequence[dict]) -> dict[str, torch.Tensor]:
        features = self.features(rows)
        return {"input_features": features["input_features"], "audio_attention_mask": features["attention_mask"]}

    def text(self, captions: Sequence[str]) -> dict[str, torch.Tensor]:
        tokens = self.tokenizer(
            [" ".join(c.split()) for c in captions], padding=True, truncation=True,
            max_length=self.max_caption_tokens, return_tensors="pt",
        )
        return {k: v for k, v in tokens.items() if k in ("input_ids", "attention_mask", "token_type_ids")}

    def __call__(self, items: Sequence[dict]) -> dict:
        if not items:
            raise ValueError("cannot collate an empty batch")
        batch = {**self.audio([item["row"] for item in items]), **self.text([item["caption"] for item in items]),
                 "return_loss": True}
        hard_negatives = [(owner, text) for owner, item in enumerate(items) for text in item.get("hard_negatives", ())]
        if hard_negatives:
            tokens = self.text([text for _, text in hard_negatives])
            batch.update({f"hard_negative_{name}": value for name, value in tokens.items()})
            batch["hard_negative_owners"] = torch.tensor([owner for owner, _ in hard_negatives], dtype=torch.long)
        return batch


def recall_at(ranks: torch.Tensor, k: int) -> float:
    return float((ranks < k).float().mean())


class _EvaluationMode:
    """`with _EvaluationMode(model):` runs in eval mode (no dropout) and restores the previous mode."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.was_training = self.model.training
        self.model.eval()

    def __exit__(self, *exc_info):
        self.model.train(self.was_training)


@torch.no_grad()
def embed_clips(model, collator: ClapBatchCollator, clips, *, batch_size: int, device):
    """(audio `[clips, dim]`, references `[references, dim]`, owner clip of each reference `[references]`) for
    `clips` (a `ClipReferences`: rows + all references), normalised, float32."""
    audio, text, owners = [], [], []
    with _EvaluationMode(model):
        for start in range(0, len(clips), batch_size):
            items = [clips[i] for i in range(start, min(start + batch_size, len(clips)))]
            batch = collator.audio([item["row"] for item in items])
            audio.append(model.get_audio_features(batch["input_features"].to(device), batch["audio_attention_mask"].to(device)))
            for offset, item in enumerate(items):
                owners += [start + offset] * len(item["references"])
                text_batch = {k: v.to(device) for k, v in collator.text(item["references"]).items()}
                text.append(model.get_text_features(**text_batch))
    audio = torch.cat(audio).float()
    return audio, torch.cat(text).float(), torch.tensor(owners, device=audio.device)


@torch.no_grad()
def embed_texts(model, collator: ClapBatchCollator, texts: Sequence[str], *, batch_size: int, device) -> torch.Tensor:
    """Normalised float32 embeddings `[len(texts), dim]` of captions, `batch_size` at a time."""
    embeds = []
    with _EvaluationMode(model):
        for start in range(0, len(texts), batch_size):
            text_batch = {k: v.to(device) for k, v in collator.text(texts[start:start + batch_size]).items()}
            embeds.append(model.get_text_features(**text_batch))
    return torch.cat(embeds).float()


def retrieval_metrics_from_embeddings(audio: torch.Tensor, text: torch.Tensor, owners: torch.Tensor) -> dict[str, float]:
    """Audio->text and text->audio recall at 1 / 5 / 10 from `embed_clips`' output.

    Audio->text: a clip counts as found at k when any of its references is among the k nearest captions.
    """
    similarity = audio @ text.T  # [clips, captions]
    # Stable sorts: ties keep index order, so the metrics are deterministic.
    # text -> audio: rank of the caption's own clip among all clips.
    order = torch.sort(similarity.T, dim=1, descending=True, stable=True).indices
    t2a = (order == owners[:, None]).float().argmax(dim=1)
    # audio -> text: rank of the best-placed reference of each clip.
    order = torch.sort(similarity, dim=1, descending=True, stable=True).indices
    own = owners[order] == torch.arange(audio.shape[0], device=audio.device)[:, None]
    a2t = own.float().argmax(dim=1)
    metrics = {}
    for k in (1, 5, 10):
        metrics[f"a2t_r{k}"] = recall_at(a2t, k)
        metrics[f"t2a_r{k}"] = recall_at(t2a, k)
    return metrics


def retrieval_metrics(model, collator: ClapBatchCollator, clips, *, batch_size: int, device) -> dict[str, float]:
    """Audio->text and text->audio recall at 1 / 5 / 10 over `clips` (a `ClipReferences`: rows + all references)."""
    return retrieval_metrics_from_embeddings(*embed_clips(model, collator, clips, batch_size=batch_size, device=device))


# Validation perturbations: a fixed seed and every kind, whatever the training option, so that runs compare.
HARD_NEGATIVE_PROBE_PER_KIND = 2
HARD_NEGATIVE_PROBE_SEED = 0


@dataclass(frozen=True)
class HardNegativeProbe:
    """Perturbations of validation references: `texts[p]` perturbs reference row `reference_rows[p]` (rows in
    `embed_clips`' order: clip by clip, references in order) by rule `kinds[p]`."""

    texts: list[str]
    reference_rows: list[int]
    kinds: list[str]

    @classmethod
    def from_references(cls, references: Sequence[Sequence[str]], *, per_kind: int = HARD_NEGATIVE_PROBE_PER_KIND,
                        seed: int = HARD_NEGATIVE_PROBE_SEED) -> "HardNegativeProbe":
        texts, rows, kinds = [], [], []
        row = 0
        for clip, clip_references in enumerate(references):
            for number, reference in enumerate(clip_references):
                for perturbation in perturb_caption(reference, PERTURBATION_KINDS, per_kind=per_kind,
                                                    rng=np.random.default_rng([seed, clip, number]),
                                                    exclude=clip_references):
                    texts.append(perturbation.text)
                    rows.append(row)
                    kinds.append(perturbation.kind)
                row += 1
        return cls(texts, rows, kinds)


def hard_negative_metrics(audio: torch.Tensor, references: torch.Tensor, owners: torch.Tensor,
                          perturbations: torch.Tensor, probe: HardNegativeProbe) -> dict[str, float]:
    """How well the model prefers each reference to its own perturbations (what choosing among near-duplicate
    captioner candidates needs), from `embed_clips`' output and the embeddings of `probe.texts`:

    - `hard_negative_accuracy`: fraction of the references with perturbations whose cosine with their clip beats
      that of every perturbation; `hard_negative_accuracy_<kind>`: the same against that kind's perturbations,
      over the references that have some;
    - `hard_negative_margin`: mean of (reference cosine - best perturbation cosine);
    - `hard_negative_references`: how many references were scored.

    Empty when no reference has a perturbation.
    """
    if not probe.texts:
        return {}
    rows = torch.tensor(probe.reference_rows, device=audio.device)
    reference_scores = (audio[owners] * references).sum(-1)
    perturbation_scores = (audio[owners[rows]] * perturbations).sum(-1)
    kinds = np.array(probe.kinds)
    metrics: dict[str, float] = {}
    for kind in (None, *PERTURBATION_KINDS):
        selected = torch.from_numpy(kinds == kind if kind else np.ones(len(kinds), dtype=bool)).to(audio.device)
        if not bool(selected.any()):
            continue
        best = torch.full_like(reference_scores, float("-inf")).scatter_reduce(
            0, rows[selected], perturbation_scores[selected], reduce="amax")
        scored = torch.isfinite(best)
        won = (reference_scores[scored] > best[scored]).float().mean()
        if kind is None:
            metrics["hard_negative_accuracy"] = float(won)
            metrics["hard_negative_margin"] = float((reference_scores[scored] - best[scored]).mean())
            metrics["hard_negative_references"] = int(scored.sum())
        else:
            metrics[f"hard_negative_accuracy_{kind}"] = float(won)
    return metrics


class ClapTrainer(DurationGroupedSamplerMixin, Trainer):
    """`Trainer` whose evaluations also report retrieval recall and hard-negative accuracy (same log entry as
    `eval_loss`), and whose training loss weights the batch's hard negatives by `hard_negative_weight`."""

    def __init__(self, *args, retrieval_clips=None, retrieval_collator=None, hard_negative_probe=None,
                 hard_negative_weight: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.retrieval_clips = retrieval_clips
        self.retrieval_collator = retrieval_collator
        self.hard_negative_probe = hard_negative_probe
        self.hard_negative_weight = hard_negative_weight

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if "hard_negative_input_ids" in inputs:
            inputs = {**inputs, "hard_negative_weight": self.hard_negative_weight}
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None, metric_key_prefix="eval"):
        output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        if self.retrieval_clips is not None:
            model = self.accelerator.unwrap_model(self.model)
            batch_size, device = self.args.per_device_eval_batch_size, self.args.device
            audio, references, owners = embed_clips(model, self.retrieval_collator, self.retrieval_clips,
                                                    batch_size=batch_size, device=device)
            metrics = retrieval_metrics_from_embeddings(audio, references, owners)
            probe = self.hard_negative_probe
            if probe is not None and probe.texts:
                perturbations = embed_texts(model, self.retrieval_collator, probe.texts, batch_size=batch_size,
                                            device=device)
                metrics.update(hard_negative_metrics(audio, references, owners, perturbations, probe))
            output.metrics.update({f"{metric_key_prefix}_{k}": v for k, v in metrics.items()})
        return output


# ------------------------------------------------------------------------------------------- model


def random_text_config(size: str, tokenizer):
    """Config of a random text tower sized `size`, matching `tokenizer` (vocabulary, special ids)."""
    from transformers import BertConfig, RobertaConfig

    shared = dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                  bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    if size == "tiny":
        return BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          max_position_embeddings=128, **shared)
    if size == "small":
        return BertConfig(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
                          max_position_embeddings=128, **shared)
    if size == "base":
        # roberta-base's shape; RoBERTa positions start after the padding id, hence the larger table.
        return RobertaConfig(max_position_embeddings=512 + tokenizer.pad_token_id + 1, **shared)
    raise ValueError(f"unknown text size {size!r}; choose one of {TEXT_SIZES}")


def resolve_feature_extractor(model_args: ClapModelArguments, data_args: ClapDataArguments):
    """(feature extractor, whether its statistics are still the defaults and may be measured on the data)."""
    from llm_aac.train.caption_data import precomputed_feature_extractor
    from modeling_llm_aac import LLMAACFeatureExtractor

    for path in data_args.dataset_path:
        extractor = precomputed_feature_extractor(path, data_args.train_split)
        if extractor is not None:
            return extractor, False
    for folder in (model_args.init_from, model_args.audio_model_path):
        if folder and os.path.isfile(os.path.join(folder, "preprocessor_config.json")):
            return LLMAACFeatureExtractor.from_pretrained(folder), False
    return LLMAACFeatureExtractor(feature_type=model_args.feature_type), True


def build_model(model_args: ClapModelArguments, feature_extractor, training_captions: Sequence[str]):
    """(EATClapModel, tokenizer) from `--init_from`, or from pretrained / random towers."""
    from transformers import AutoTokenizer

    from llm_aac.train.finetune_aac import random_encoder_config
    from llm_aac.train.train_tokenizer import train_caption_tokenizer
    from modeling_llm_aac import EATClapConfig, EATClapModel, EATModel

    if model_args.init_from:
        return EATClapModel.from_pretrained(model_args.init_from), AutoTokenizer.from_pretrained(model_args.init_from)
    if model_args.audio_model_path:
        audio_model = EATModel.from_pretrained(model_args.audio_model_path)
    else:
        audio_model = EATModel(random_encoder_config(model_args.audio_size, feature_extractor.feature_size))
        logger.warning("no --audio_model_path: the EAT tower (%s) starts from random weights", model_args.audio_size)
    if model_args.text_model_path:
        from transformers import AutoModel

        text_model = AutoModel.from_pretrained(model_args.text_model_path)
        tokenizer = AutoTokenizer.from_pretrained(model_args.text_model_path)
    else:
        tokenizer = train_caption_tokenizer(training_captions, vocab_size=model_args.tokenizer_vocab_size, prompt="")
        text_model = None
        logger.warning("no --text_model_path: a random %s text tower (vocabulary %d) is used", model_args.text_size,
                       len(tokenizer))
    config = EATClapConfig(
        audio_config=audio_model.config,
        text_config=text_model.config if text_model is not None else random_text_config(model_args.text_size, tokenizer),
        projection_dim=model_args.projection_dim,
        projection_type=model_args.projection_type,
        audio_pooling=model_args.audio_pooling,
        text_pooling=model_args.text_pooling,
        logit_scale_init_value=model_args.logit_scale_init_value,
    )
    model = EATClapModel(config, audio_model=audio_model, text_model=text_model)
    if model.config.audio_config.num_mel_bins != feature_extractor.feature_size:
        raise ValueError(
            f"the audio tower expects {model.config.audio_config.num_mel_bins} bins but the feature extractor makes "
            f"{feature_extractor.feature_size} ({feature_extractor.feature_type}); use the tower's own extractor"
        )
    return model, tokenizer


def apply_freezing(model, model_args: ClapModelArguments) -> None:
    for tower, frozen in ((model.audio_model, model_args.freeze_audio_model), (model.text_model, model_args.freeze_text_model)):
        for parameter in tower.parameters():
            parameter.requires_grad = not frozen


def load_data(model_args: ClapModelArguments, data_args: ClapDataArguments, training_args):
    """(training tables, their names, validation table, feature extractor)."""
    from llm_aac.train.caption_data import load_corpus_tables

    feature_extractor, default_statistics = resolve_feature_extractor(model_args, data_args)
    tables, names, eval_table = load_corpus_tables(
        data_args, feature_extractor, device=training_args.device, measure_statistics=default_statistics
    )
    return tables, names, eval_table, feature_extractor


def main(argv: Sequence[str] | None = None) -> int:
    from transformers import set_seed
    from transformers.trainer_utils import get_last_checkpoint

    import modeling_llm_aac  # noqa: F401  (registers the Auto classes)
    from llm_aac.train.callbacks import TimeLimitCallback
    from llm_aac.train.caption_data import ClipReferences, table_captions
    from llm_aac.train.plot_curves import plot_loss_curves

    model_args, data_args, training_args = parse_arguments(argv)
    logging.basicConfig(level=logging.INFO if training_args.should_log else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    check_arguments(model_args, data_args, training_args)
    set_seed(training_args.seed)

    tables, names, eval_table, feature_extractor = load_data(model_args, data_args, training_args)
    captions = [c for table, name in zip(tables, names) for refs in table_captions(table, name) for c in refs]
    model, tokenizer = build_model(model_args, feature_extractor, captions)
    model.config.max_text_length = data_args.max_caption_tokens
    apply_freezing(model, model_args)
    if training_args.gradient_checkpointing and not training_args.gradient_checkpointing_kwargs:
        training_args.gradient_checkpointing_kwargs = {"use_reentrant": False}

    train_items = ClipCaptionEpochs(tables, names, seed=data_args.caption_seed,
                                    hard_negative_kinds=parse_perturbation_kinds(data_args.hard_negatives),
                                    hard_negatives_per_kind=data_args.hard_negatives_per_kind,
                                    hard_negatives_per_clip=data_args.hard_negatives_per_clip)
    eval_items = ClipCaptionEpochs([eval_table], ["validation"], seed=data_args.caption_seed)
    if data_args.max_eval_clips:
        eval_items = torch.utils.data.Subset(eval_items, range(min(data_args.max_eval_clips, len(eval_items))))
    retrieval_clips = ClipReferences(eval_table, "validation", max_clips=data_args.max_eval_clips or None)
    hard_negative_probe = HardNegativeProbe.from_references(retrieval_clips.references)
    collator = ClapBatchCollator(feature_extractor, tokenizer, max_frames=data_args.max_frames,
                                 max_caption_tokens=data_args.max_caption_tokens)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info("%d training clips, %d validation clips; %.2f M trained parameters of %.2f M", len(train_items),
                len(retrieval_clips), trainable / 1e6, sum(p.numel() for p in model.parameters()) / 1e6)
    logger.info("hard negatives: %s; validation probe: %d perturbations of %d references",
                f"{', '.join(train_items.hard_negative_kinds)} (up to {data_args.hard_negatives_per_kind} per kind and "
                f"{data_args.hard_negatives_per_clip} per clip, weight {training_args.hard_negative_weight:g})"
                if train_items.hard_negative_kinds else "off",
                len(hard_negative_probe.texts), len(set(hard_negative_probe.reference_rows)))

    train_lengths = training_lengths(train_items, data_args.group_by_duration, logger)
    trainer = ClapTrainer(
        model=model,
        args=training_args,
        train_dataset=train_items,
        eval_dataset=eval_items,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=[EpochCallback(train_items)] + (
            [TimeLimitCallback(data_args.max_train_minutes)] if data_args.max_train_minutes > 0 else []
        ),
        retrieval_clips=retrieval_clips,
        retrieval_collator=collator,
        hard_negative_probe=hard_negative_probe,
        hard_negative_weight=training_args.hard_negative_weight,
        train_lengths=train_lengths,
    )
    resume = training_args.resume_from_checkpoint
    if isinstance(resume, str) and resume.lower() in ("true", "latest"):
        resume = get_last_checkpoint(training_args.output_dir) if os.path.isdir(training_args.output_dir) else None
    start = time.monotonic()
    trainer.train(resume_from_checkpoint=resume)
    history = list(trainer.state.log_history)
    evaluated = [entry["step"] for entry in history if "eval_loss" in entry]
    if not evaluated or evaluated[-1] != trainer.state.global_step:
        trainer.evaluate()
        history = list(trainer.state.log_history)

    if trainer.is_world_process_zero():
        output_dir = training_args.output_dir
        model = trainer.accelerator.unwrap_model(trainer.model)
        model.save_pretrained(output_dir)
        feature_extractor.save_pretrained(output_dir)
        tokenizer.save_pretrained(output_dir)
        with open(os.path.join(output_dir, "log_history.json"), "w") as f:
            json.dump(history, f, indent=1)
        try:
            curves = plot_loss_curves([history], os.path.join(output_dir, "curves.png"),
                                      keys=("loss", "eval_loss", "eval_a2t_r1", "eval_t2a_r1",
                                            "eval_hard_negative_accuracy"),
                                      title=f"EAT-CLAP ({model_args.preset})", log_scale=False)
        except ValueError as error:
            logger.warning("no curve written: %s", error)
            curves = None
        evaluations = [{k: v for k, v in e.items() if k == "step" or k.startswith("eval_")} for e in history if "eval_loss" in e]
        summary = {"preset": model_args.preset, "seconds": round(time.monotonic() - start, 1),
                   "hard_negatives": list(train_items.hard_negative_kinds),
                   "hard_negatives_per_clip": train_items.hard_negatives_per_clip if train_items.hard_negative_kinds
                   else None,
                   "global_step": trainer.state.global_step, "evaluations": evaluations, "curves": curves,
                   "trained_parameters": trainable}
        with open(os.path.join(output_dir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
        for entry in evaluations:
            logger.info("step %5d: eval_loss %.3f  a2t R@1 %.3f  t2a R@1 %.3f  hard-negative accuracy %.3f",
                        entry["step"], entry["eval_loss"], entry.get("eval_a2t_r1", float("nan")),
                        entry.get("eval_t2a_r1", float("nan")), entry.get("eval_hard_negative_accuracy", float("nan")))
        logger.info("EAT-CLAP saved to %s (load with modeling_llm_aac.load_clap_scorer)", output_dir)
    trainer.accelerator.wait_for_everyone()
    return 0


if __name__ == "__main__":
    sys.exit(main())
