"""Fine-tune an EAT encoder as an audio classifier (`EATForAudioClassification`) with `Trainer`.

    # ESC-50, 5-fold cross-validation (one run per held-out fold), one or several GPUs
    accelerate launch train/finetune_eat_classifier.py --model_name_or_path runs/eat-base/encoder \
        --dataset_path data/ESC-50-master --output_dir runs/esc50 --bf16

    # AudioSet (balanced train -> eval), multi-label with mAP
    accelerate launch train/finetune_eat_classifier.py --model_name_or_path eat-base \
        --dataset_path audioset --labels_csv class_labels_indices.csv --output_dir runs/as20k --bf16

    # the synthetic corpus' event labels (train -> test and compositional); a tiny random encoder on CPU
    python train/finetune_eat_classifier.py --preset tiny --dataset_path data/synth --num_train_epochs 1 \
        --output_dir runs/synth-cls

Model: `--model_name_or_path` is an EAT folder (`llm-aac convert-eat` output, `train/pretrain_eat.py`'s
`encoder/`, or a fine-tuned classifier whose head is replaced when the classes differ) or a captioner
folder (its audio encoder is used); without it a randomly initialised encoder of size `--preset` is trained
from scratch on `--feature_type` features. The head is CLS -> LayerNorm -> Linear (EAT's).

Data and metrics (see `eval/audio_classification.py`): AudioSet and the synthetic corpus are multi-label
(sigmoid / BCE, mAP); ESC-50 is single-label (softmax / cross-entropy, accuracy) with one run per held-out
fold, reported as the mean over folds. Every evaluation set is scored at the end of each epoch
(`eval_<set>_map` / `eval_<set>_accuracy` in the logs); the reported numbers are those of the final model
(test folds are never used to pick a checkpoint).

Outputs in `--output_dir`: one folder per run (`fold-1` ... or `train`) with the fine-tuned model and its
feature extractor (`AutoModelForAudioClassification.from_pretrained(...)`), its `log_history.json` and
`curves.png`; `metrics.json` and `metrics.md` with every run's final numbers and the summary.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from dataclasses import dataclass, field

from llm_aac.train.training_arguments import SyncFreeTrainingArguments

logger = logging.getLogger("finetune_eat_classifier")

PRESETS = ("tiny", "small", "base", "large")


@dataclass
class ClassifierArguments:
    dataset_path: str = field(
        metadata={"help": "ESC-50 folder, `llm-aac synth` corpus, AudioSet copy / save_to_disk folder, or 'audioset'"}
    )
    task: str | None = field(default=None, metadata={"help": "audioset | esc50 | synthetic (default: detected)"})
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "EAT encoder / classifier folder, or a captioner folder (its encoder)"}
    )
    preset: str = field(default="base", metadata={"help": "encoder size trained from scratch without a model path"})
    feature_type: str = field(default="fbank", metadata={"help": "features of a from-scratch encoder: fbank | cwt | cwt_seed"})
    train_split: str | None = field(default=None, metadata={"help": "AudioSet / synthetic training split (train)"})
    eval_splits: str | None = field(
        default=None, metadata={"help": "comma-separated evaluation splits (AudioSet test; synthetic test,compositional)"}
    )
    folds: str | None = field(default=None, metadata={"help": "ESC-50 folds to hold out, e.g. '1,2' (default all)"})
    labels_csv: str | None = field(default=None, metadata={"help": "AudioSet class_labels_indices.csv (class order)"})
    audioset_config: str | None = field(default=None, metadata={"help": "AudioSet Hub config: balanced | unbalanced"})
    max_train_clips: int | None = field(default=None, metadata={"help": "use only the first N training clips"})
    max_eval_clips: int | None = field(default=None, metadata={"help": "use only the first N evaluation clips"})
    max_frames: int | None = field(
        default=None, metadata={"help": "cut clips to their first N frames (default: the encoder's longest input)"}
    )


@dataclass
class ClassifierTrainingArguments(SyncFreeTrainingArguments):
    """`TrainingArguments` with fine-tuning defaults for an EAT classifier (all overridable)."""

    per_device_train_batch_size: int = field(default=16, metadata={"help": "clips per device"})
    per_device_eval_batch_size: int = field(default=16, metadata={"help": "clips per device at evaluation"})
    learning_rate: float = field(default=5e-5, metadata={"help": "peak learning rate"})
    weight_decay: float = field(default=0.05, metadata={"help": "decoupled weight decay"})
    adam_beta2: float = field(default=0.95, metadata={"help": "Adam beta2"})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "learning-rate schedule"})
    warmup_steps: float = field(default=0.1, metadata={"help": "warm-up steps, or a ratio < 1"})
    num_train_epochs: float = field(default=30.0, metadata={"help": "epochs per run"})
    eval_strategy: str = field(default="epoch", metadata={"help": "score the evaluation sets every epoch"})
    save_strategy: str = field(default="no", metadata={"help": "the final model of each run is saved"})
    logging_steps: float = field(default=10, metadata={"help": "log every N optimizer steps"})
    remove_unused_columns: bool = field(default=False, metadata={"help": "the collator reads the raw columns"})
    dataloader_num_workers: int = field(default=4, metadata={"help": "audio decoding processes per device"})


def build_classifier(args: ClassifierArguments, task):
    """(`EATForAudioClassification` with a fresh `task`-sized head, its feature extractor)."""
    import modeling_llm_aac  # noqa: F401  (registers the Auto classes)
    from modeling_llm_aac import EATForAudioClassification, LLMAACFeatureExtractor

    label_settings = dict(
        num_labels=task.num_labels,
        problem_type=task.problem_type,
        id2label=task.id2label,
        label2id={name: i for i, name in task.id2label.items()},
    )
    if args.model_name_or_path is None:
        from llm_aac.train.pretrain_eat import build_config

        if args.preset not in PRESETS:
            raise ValueError(f"--preset must be one of {PRESETS}, got {args.preset!r}")
        feature_extractor = LLMAACFeatureExtractor(feature_type=args.feature_type)
        config = build_config(args.preset, feature_extractor.feature_size)
        for key, value in label_settings.items():
            setattr(config, key, value)
        return EATForAudioClassification(config), feature_extractor

    from transformers import AutoConfig

    path = args.model_name_or_path
    config = AutoConfig.from_pretrained(path)
    if config.model_type == "eat":
        # An encoder-only folder gets a new head; a fine-tuned one keeps its head only if the classes match.
        model = EATForAudioClassification.from_pretrained(path, ignore_mismatched_sizes=True, **label_settings)
        feature_extractor = (
            LLMAACFeatureExtractor.from_pretrained(path)
            if os.path.isfile(os.path.join(path, "preprocessor_config.json"))
            else LLMAACFeatureExtractor(feature_type="fbank", num_mel_bins=model.config.num_mel_bins)
        )
        return model, feature_extractor
    from llm_aac.eval.linear_probe import load_audio_encoder

    encoder, feature_extractor = load_audio_encoder(path, device="cpu")
    encoder_config = encoder.config
    for key, value in label_settings.items():
        setattr(encoder_config, key, value)
    model = EATForAudioClassification(encoder_config)
    model.eat.load_state_dict(encoder.state_dict())
    return model, feature_extractor


def _metrics_function(task):
    from llm_aac.eval.audio_classification import classification_metrics

    def compute_metrics(prediction):
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        metrics = classification_metrics(logits, prediction.label_ids, task.multi_label, task.label_names)
        # Only numbers go into the Trainer logs; per-class APs stay in metrics.json.
        return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and k != "num_clips"}

    return compute_metrics


def _full_metrics(trainer, task, dataset) -> dict:
    """The final model's detailed metrics on one evaluation set (per-class APs included)."""
    from llm_aac.eval.audio_classification import classification_metrics

    output = trainer.predict(dataset, metric_key_prefix="final")
    logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
    return classification_metrics(logits, output.label_ids, task.multi_label, task.label_names)


def _split_list(text: str | None) -> list[str] | None:
    return [item.strip() for item in text.split(",") if item.strip()] if text else None


def main(argv: list[str] | None = None) -> int:
    from transformers import HfArgumentParser, Trainer, set_seed

    from llm_aac.eval.audio_classification import (
        ClassificationCollator,
        format_percent,
        load_classification_task,
        summarize_runs,
    )
    from llm_aac.train.plot_curves import plot_loss_curves

    parser = HfArgumentParser((ClassifierArguments, ClassifierTrainingArguments))
    args, training_args = parser.parse_args_into_dataclasses(args=argv)
    logging.basicConfig(level=logging.INFO if training_args.should_log else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    folds = [int(f) for f in _split_list(args.folds)] if args.folds else None
    with training_args.main_process_first(desc="loading the dataset"):
        task = load_classification_task(
            args.dataset_path, args.task, train_split=args.train_split, eval_splits=_split_list(args.eval_splits),
            folds=folds, labels_csv=args.labels_csv, config=args.audioset_config,
            max_train_clips=args.max_train_clips, max_eval_clips=args.max_eval_clips,
        )
    logger.info("%s: %d classes (%s), %d run(s)", task.kind, task.num_labels, task.problem_type, len(task.runs))

    root = training_args.output_dir
    per_run: dict[str, dict[str, dict]] = {}
    for run in task.runs:
        set_seed(training_args.seed)
        model, feature_extractor = build_classifier(args, task)
        max_frames = model.config.max_frames if args.max_frames is None else min(args.max_frames, model.config.max_frames)
        run_dir = os.path.join(root, run.name)
        run_args = dataclasses.replace(training_args, output_dir=run_dir)
        trainer = Trainer(
            model=model,
            args=run_args,
            train_dataset=run.train,
            eval_dataset=dict(run.evaluations),
            data_collator=ClassificationCollator(feature_extractor, task.num_labels, task.multi_label, max_frames),
            compute_metrics=_metrics_function(task),
        )
        logger.info("run %s: %d training clips, evaluation on %s", run.name, len(run.train),
                    {name: len(d) for name, d in run.evaluations.items()})
        trainer.train()
        per_run[run.name] = {name: _full_metrics(trainer, task, data) for name, data in run.evaluations.items()}
        if trainer.is_world_process_zero():
            trainer.save_model(run_dir)
            feature_extractor.save_pretrained(run_dir)
            history = trainer.state.log_history
            with open(os.path.join(run_dir, "log_history.json"), "w") as f:
                json.dump(history, f, indent=1)
            keys = ["loss"] + [f"eval_{name}_{key}" for name in run.evaluations for key in ("loss", task.metric_name)]
            try:
                plot_loss_curves(history, os.path.join(run_dir, "curves.png"), keys=keys,
                                 title=f"EAT classifier, {task.kind} {run.name}", log_scale=False)
            except (ValueError, ImportError) as err:
                logger.warning("no curves written for %s: %s", run.name, err)
            logger.info("run %s: %s", run.name, {k: round(v[task.metric_name], 4) for k, v in per_run[run.name].items()})
        del trainer, model

    summary = summarize_runs(task, per_run)
    if training_args.process_index == 0:
        os.makedirs(root, exist_ok=True)
        with open(os.path.join(root, "metrics.json"), "w") as f:
            json.dump({"task": task.kind, "model": args.model_name_or_path or f"random {args.preset}",
                       "summary": summary, "runs": per_run}, f, indent=1)
        name = "mAP" if task.metric_name == "map" else "accuracy"
        lines = [f"Fine-tuned EAT classifier on {task.kind} ({name}, %)", "", "| run | set | " + name + " |", "|---|---|---:|"]
        for run_name, sets in per_run.items():
            for set_name, metrics in sets.items():
                lines.append(f"| {run_name} | {set_name} | {format_percent(metrics[task.metric_name])} |")
        if task.kind == "esc50":
            lines.append(f"| mean over {summary['num_folds']} folds | | {format_percent(summary[task.metric_name])} "
                         f"+- {format_percent(summary[task.metric_name + '_std'])} |")
        with open(os.path.join(root, "metrics.md"), "w") as f:
            f.write("\n".join(lines) + "\n")
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
