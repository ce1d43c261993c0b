"""`Trainer` for the captioner: validation loss plus generated captions scored with the caption metrics.

At every evaluation (`eval_strategy`, `eval_on_start`), after the validation loss, `CaptionEvaluator`
captions the validation clips with `generate` (beam search by default) and scores them against all of
their references with `eval.caption_metrics.compute_caption_metrics` in one corpus-level call. The scores
join the same log entry as `eval_loss` (`eval_cider_d`, `eval_bleu_4`, `eval_spider` where SPICE can run,
...), so `metric_for_best_model="eval_cider_d"`, early stopping and the curves see them. On several
processes each one captions its share of the clips and the captions are gathered before scoring.

With `mismatched_eval_dataset` (e.g. `caption_data.MismatchedAudioPairs` of the validation clips), every
evaluation of the validation set also computes the loss with each caption given another clip's audio
(`eval_mismatched_audio_loss`) and `eval_audio_gain` = that loss minus `eval_loss`: about 0 while the
captioner only models the caption language, clearly positive once it listens.

`save_trainable_only=True` makes checkpoints hold only the trained parameters (projector, LoRA, the encoder
when it is trained) instead of the whole model: a Vicuna-7B checkpoint shrinks from 13 GB to tens of MB.
`--resume_from_checkpoint` and `load_best_model_at_end` read them back.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence

import torch
from transformers import Trainer

from llm_aac.train.duration_grouping import DurationGroupedSamplerMixin

logger = logging.getLogger(__name__)

TRAINABLE_WEIGHTS_NAME = "trainable_weights.safetensors"


def generate_captions(
    model,
    collator,
    items: Sequence[dict],
    *,
    batch_size: int,
    generation_kwargs: dict,
    device: torch.device | str,
    autocast=None,
) -> list[str]:
    """Captions of `items` (`{"row": clip row, ...}`), `batch_size` clips per `generate` call, in order."""
    import contextlib

    processor = collator.processor
    captions: list[str] = []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(items), batch_size):
            batch = collator([{"row": item["row"]} for item in items[start : start + batch_size]])
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.no_grad(), (autocast() if autocast is not None else contextlib.nullcontext()):
                sequences = model.generate(**batch, **generation_kwargs)
            captions += processor.batch_decode(sequences, prompt_length=batch["input_ids"].shape[1])
    finally:
        model.train(was_training)
    return captions


def parse_metric_names(text: str | Sequence[str]) -> list[str]:
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if not names:
        raise ValueError("no caption metric given (e.g. 'cider_d,bleu_4,rouge_l,spider')")
    return names


class CaptionEvaluator:
    """Captions the evaluation clips and scores them (see the module docstring).

    Args:
        clips: a `ClipReferences` (clip rows + all references).
        collator: the `CaptionBatchCollator` used for training.
        batch_size: clips per `generate` call.
        generation_kwargs: `generate` arguments (`num_beams`, `max_new_tokens`, ...).
        metrics: caption metric names (`eval.caption_metrics.METRIC_TITLES`), e.g. cider_d, bleu_4, spider.
        tokenize: PTB-tokenise captions before scoring (Java, else the pure-Python copy; aac-metrics' published setting).
        predictions_dir: where each evaluation's captions are written as `step-<N>.json` (main process).
        num_examples_logged: captions printed to the log at each evaluation.
    """

    def __init__(
        self,
        clips,
        collator,
        *,
        batch_size: int,
        generation_kwargs: dict,
        metrics: str | Sequence[str] = ("cider_d", "bleu_4", "rouge_l", "spider"),
        tokenize: bool = False,
        predictions_dir: str | None = None,
        num_examples_logged: int = 3,
    ):
        from llm_aac.eval.caption_metrics import resolve_metrics

        self.clips = clips
        self.collator = collator
        self.batch_size = int(batch_size)
        self.generation_kwargs = dict(generation_kwargs)
        self.metrics = parse_metric_names(metrics)
        resolve_metrics(self.metrics)  # unknown names fail now, not after the first training steps
        self.tokenize = tokenize
        self.predictions_dir = predictions_dir
        self.num_examples_logged = num_examples_logged

    def __call__(self, trainer: Trainer, metric_key_prefix: str = "eval") -> dict[str, float]:
        from accelerate.utils import gather_object

        from llm_aac.eval.caption_metrics import compute_caption_metrics

        accelerator = trainer.accelerator
        model = accelerator.unwrap_model(trainer.model)
        rank, world = accelerator.process_index, accelerator.num_processes
        mine = list(range(rank, len(self.clips), world))
        captions = generate_captions(
            model,
            self.collator,
            [self.clips[i] for i in mine],
            batch_size=self.batch_size,
            generation_kwargs=self.generation_kwargs,
            device=trainer.args.device,
            autocast=accelerator.autocast,
        )
        gathered = gather_object(list(zip(mine, captions))) if world > 1 else list(zip(mine, captions))
        by_index = dict(gathered)
        predictions = [by_index[i] for i in range(len(self.clips))]
        references = self.clips.references

        result = compute_caption_metrics(predictions, references, metrics=self.metrics, tokenize=self.tokenize)
        if result.skipped:
            # Reported once (by compute_caption_metrics): later evaluations ask only for what can run.
            self.metrics = [name for name in self.metrics if name not in result.skipped] or ["cider_d"]
        scores = {f"{metric_key_prefix}_{name.replace('.', '_')}": round(value, 6) for name, value in result.scores.items()}
        scores[f"{metric_key_prefix}_blank_captions"] = result.num_blank_predictions / max(1, len(predictions))

        step = trainer.state.global_step
        for prediction, refs in list(zip(predictions, references))[: self.num_examples_logged]:
            logger.info("step %d | generated: %r | reference: %r", step, prediction, refs[0])
        if self.predictions_dir and trainer.is_world_process_zero():
            os.makedirs(self.predictions_dir, exist_ok=True)
            with open(os.path.join(self.predictions_dir, f"step-{step}.json"), "w") as f:
                json.dump(
                    {"step": step, "scores": scores, "skipped": result.skipped,
                     "captions": [{"prediction": p, "references": r} for p, r in zip(predictions, references)]},
                    f, indent=1,
                )
        return scores


class CaptionTrainer(DurationGroupedSamplerMixin, Trainer):
    """`Trainer` + caption metrics at evaluation + (optionally) checkpoints of the trained parameters only.

    Args:
        caption_evaluator: a `CaptionEvaluator`, or None for the validation loss alone.
        mismatched_eval_dataset: validation pairs whose audio belongs to another clip (`MismatchedAudioPairs`),
            or None; when given, evaluations of the validation set log `eval_mismatched_audio_loss` and
            `eval_audio_gain`.
        save_trainable_only: checkpoints hold only parameters with `requires_grad` (+ the config).
        encoder_learning_rate: peak learning rate of the audio encoder's parameters (when it trains), or None for
            the run's `learning_rate`; the schedule scales it like the others. A pretrained encoder usually wants a
            lower rate than the freshly initialised projector and adapter.
        train_lengths: one length per training pair to batch clips of similar length together
            (`DurationGroupedSamplerMixin`), or None for uniformly random batches.
        All other arguments are `Trainer`'s.
    """

    def __init__(
        self,
        *args,
        caption_evaluator: CaptionEvaluator | None = None,
        mismatched_eval_dataset=None,
        save_trainable_only: bool = False,
        encoder_learning_rate: float | None = None,
        **kwargs,
    ):
        if encoder_learning_rate is not None and not encoder_learning_rate > 0:
            raise ValueError(f"encoder_learning_rate must be positive (or None), got {encoder_learning_rate!r}")
        super().__init__(*args, **kwargs)
        self.caption_evaluator = caption_evaluator
        self.mismatched_eval_dataset = mismatched_eval_dataset
        self.save_trainable_only = save_trainable_only
        self.encoder_learning_rate = encoder_learning_rate
        self._validation_extras_pending = False

    # ------------------------------------------------------------------------------------ optimizer
    def create_optimizer(self, *args, **kwargs):
        """`Trainer`'s optimizer, with the encoder's parameters moved into groups of their own at
        `encoder_learning_rate` (same weight decay split)."""
        optimizer = super().create_optimizer(*args, **kwargs)
        encoder = getattr(self.accelerator.unwrap_model(self.model), "encoder", None)
        if self.encoder_learning_rate is None or encoder is None or getattr(optimizer, "_encoder_groups_split", False):
            return optimizer
        encoder_parameters = {id(p) for p in encoder.parameters()}
        groups, optimizer.param_groups = optimizer.param_groups, []
        for group in groups:
            settings = {key: value for key, value in group.items() if key != "params"}
            rest = [p for p in group["params"] if id(p) not in encoder_parameters]
            encoder_part = [p for p in group["params"] if id(p) in encoder_parameters]
            for params, learning_rate in ((rest, group["lr"]), (encoder_part, self.encoder_learning_rate)):
                if params:
                    optimizer.add_param_group({**settings, "params": params, "lr": learning_rate})
        optimizer._encoder_groups_split = True
        return optimizer

    # ------------------------------------------------------------------------------------ evaluation
    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"):
        # Captions and the mismatched-audio loss belong to the configured validation clips only, not to other
        # datasets passed here.
        self._validation_extras_pending = eval_dataset is None
        try:
            return super().evaluate(eval_dataset=eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)
        finally:
            self._validation_extras_pending = False

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None, metric_key_prefix="eval"):
        output = super().evaluation_loop(
            dataloader, description, prediction_loss_only=prediction_loss_only, ignore_keys=ignore_keys,
            metric_key_prefix=metric_key_prefix,
        )
        if self._validation_extras_pending:
            self._validation_extras_pending = False
            # Added to the loop's metrics, so they are logged with eval_loss and seen by on_evaluate callbacks.
            if self.mismatched_eval_dataset is not None:
                output.metrics.update(self.mismatched_audio_metrics(output.metrics, metric_key_prefix))
            if self.caption_evaluator is not None:
                output.metrics.update(self.caption_evaluator(self, metric_key_prefix))
        return output

    def mismatched_audio_metrics(self, metrics: dict, metric_key_prefix: str = "eval") -> dict[str, float]:
        """Validation loss with each caption given another clip's audio, and its excess over the true loss."""
        # The same loop as the true loss (batching, padding, averaging), so the two numbers compare directly.
        mismatched = super().evaluation_loop(
            self.get_eval_dataloader(self.mismatched_eval_dataset), "Evaluation (mismatched audio)",
            prediction_loss_only=True, metric_key_prefix=metric_key_prefix,
        ).metrics
        loss = mismatched[f"{metric_key_prefix}_loss"]
        scores = {f"{metric_key_prefix}_mismatched_audio_loss": loss}
        if f"{metric_key_prefix}_loss" in metrics:
            scores[f"{metric_key_prefix}_audio_gain"] = loss - metrics[f"{metric_key_prefix}_loss"]
        return scores

    # ----------------------------------------------------------------------------------- checkpoints
    def _trainable_state_dict(self) -> dict[str, torch.Tensor]:
        model = self.accelerator.unwrap_model(self.model)
        return {name: p.detach().cpu().contiguous() for name, p in model.named_parameters() if p.requires_grad}

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        if not self.save_trainable_only:
            return super()._save(output_dir, state_dict=state_dict)
        from safetensors.torch import save_file

        output_dir = output_dir if output_dir is not None else self.args.output_dir
        tensors = self._trainable_state_dict()
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        save_file(tensors, os.path.join(output_dir, TRAINABLE_WEIGHTS_NAME), metadata={"format": "pt"})
        self.accelerator.unwrap_model(self.model).config.save_pretrained(output_dir)
        torch.save(self.args, os.path.join(output_dir, "training_args.bin"))

    def load_trainable_weights(self, checkpoint_dir: str) -> None:
        """Copies a checkpoint's trained parameters into the model; every trained parameter must be there."""
        from safetensors.torch import load_file

        path = os.path.join(checkpoint_dir, TRAINABLE_WEIGHTS_NAME)
        state = load_file(path)
        model = self.accelerator.unwrap_model(self.model)
        parameters = dict(model.named_parameters())
        trainable = {name for name, p in parameters.items() if p.requires_grad}
        missing = sorted(trainable - set(state))
        unexpected = sorted(set(state) - set(parameters))
        if missing or unexpected:
            raise ValueError(
                f"checkpoint {checkpoint_dir!r} does not fit this model: trained parameters missing from it "
                f"{missing[:10]} ({len(missing)}), unknown names in it {unexpected[:10]} ({len(unexpected)}). "
                "Resume with the same --stage, --preset and model options."
            )
        with torch.no_grad():
            for name, value in state.items():
                if parameters[name].shape != value.shape:
                    raise ValueError(
                        f"checkpoint {checkpoint_dir!r}: {name} has shape {tuple(value.shape)}, the model's is "
                        f"{tuple(parameters[name].shape)}"
                    )
                parameters[name].copy_(value)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        if os.path.isfile(os.path.join(resume_from_checkpoint, TRAINABLE_WEIGHTS_NAME)):
            return self.load_trainable_weights(resume_from_checkpoint)
        return super()._load_from_checkpoint(resume_from_checkpoint, model=model)

    def _load_best_model(self):
        best = self.state.best_model_checkpoint
        if best is not None and os.path.isfile(os.path.join(best, TRAINABLE_WEIGHTS_NAME)):
            logger.info("loading the best checkpoint %s (score %s)", best, self.state.best_metric)
            return self.load_trainable_weights(best)
        return super()._load_best_model()


__all__ = ["CaptionEvaluator", "CaptionTrainer", "TRAINABLE_WEIGHTS_NAME", "generate_captions", "parse_metric_names"]
