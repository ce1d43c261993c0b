"""`llm-aac demo`: the whole LLM-AAC recipe end to end at toy size, offline, on a CPU in minutes.

    llm-aac demo                                  # ~5 minutes on 2 CPU cores; the captioner lands in ./llm-aac-demo
    llm-aac demo --output my-captioner --num-clips 600 --seed 1
    llm-aac demo --quick                          # ~1 minute: every stage runs, too short to learn much

The stages are the real recipe's, run at toy size in this one process by the project's own training and
evaluation code:

1. synthesize a corpus of sound scenes with five captions each (`processing/synthetic.py`);
2. precompute Morlet-CWT features of its train and validation clips (`processing/precompute.py`);
3. pretrain a tiny EAT encoder on them with EAT's utterance-frame objective (`train/pretrain_eat.py`);
4. train a BPE tokenizer on training captions and pre-train a tiny Llama on that text, the stand-in for a
   pretrained LLM such as Vicuna (`train/train_tokenizer.py`, `train/pretrain_text_lm.py`);
5. train the captioner (`train/finetune_aac.py --stage both`): the projector over the frozen LM (the original
   LLM-AAC set-up), then the projector and a LoRA adapter on the LM (SLAM-AAC); at this toy size the encoder
   is trained with them (a minute of CPU pretraining does not give features worth freezing);
6. train a tiny EAT-CLAP (the pretrained EAT + a small text tower) for caption rescoring (`train/train_clap.py`);
7. save the captioner and its CLAP scorer as one pipeline folder (`save_captioner`) in `--output`;
8. caption the held-out test clips from that folder with plain beam search and with CLAP rescoring of the
   7 best hypotheses of one 7-beam search, and score both (`llm-aac evaluate`): BLEU, METEOR (when Java is
   installed), ROUGE-L, CIDEr-D, and semantic accuracy (events, counts, order recovered from the captions).
   SLAM-AAC's seven beam searches of beam 2..8 are the alternative (`RecipeChoices(candidates="slam")`): on
   this captioner they give about 3 distinct captions per clip, and rescoring them gained nothing over beam search.

Every stage prints its progress bars and its wall time; a failing stage stops the demo with its name and
the cause (exit status 1; the traceback goes to `demo-error.log` in the work folder, which is then kept).
Intermediate files (corpus, features, checkpoints) live in a temporary work folder removed at the end,
unless `--work-dir` names one to keep. Training stages also carry time limits, so a slow machine still
finishes in time (with a less trained model).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DEFAULT_OUTPUT = "llm-aac-demo"
# Written into the output folder; its presence marks a folder that a later demo run may replace.
REPORT_FILE = "demo_report.json"
ERROR_LOG = "demo-error.log"
NUM_EXAMPLES = 5
# Caption metrics printed at the end: CIDEr-D first (the ranking metric of the table), METEOR needs Java.
METRICS = ("cider_d", "bleu_1", "bleu_4", "meteor", "rouge_l")


@dataclass(frozen=True)
class DemoSizes:
    """Toy sizes of every stage.

    Clip counts are per split of the synthetic corpus; `*_steps` are optimizer steps and `*_minutes` the
    time limit of each training stage (the stage stops early, saves and goes on when it is reached).
    """

    train_clips: int
    validation_clips: int
    test_clips: int
    eat_steps: int
    eat_batch_size: int
    eat_max_frames: int
    eat_minutes: float
    text_clips: int  # captions of this many training clips (no audio rendered) for the tokenizer and the LM
    vocab_size: int
    lm_steps: int
    lm_batch_size: int
    lm_minutes: float
    projector_steps: int
    projector_learning_rate: float
    projector_minutes: float
    lora_steps: int
    lora_learning_rate: float
    lora_minutes: float
    captioner_batch_size: int
    captioner_eval_steps: int
    clap_steps: int
    clap_learning_rate: float
    clap_batch_size: int
    clap_minutes: float
    # Below: model sizes and settings that default to the demo's (tiny presets, CPU batch sizes); the GPU recipe
    # (`train/recipes/synthetic_gpu.py`) sets its own.
    compositional_clips: int = 1  # the demo does not evaluate this split; `split_sizes` keeps every split non-empty
    eat_preset: str = "tiny"
    # EAT-tiny's position table is widened to 192 time patches (30.7 s): the captioner encodes whole clips.
    eat_config_overrides: str = "max_length=192"
    # > 0: the EAT stage stops after this many steps while its learning-rate schedule spans `eat_steps` (the first
    # part of a longer run's trajectory rather than a compressed copy of it; `train/pretrain_eat.py --stop_after_steps`)
    eat_stop_steps: int = 0
    lm_preset: str = "tiny"
    captioner_preset: str = "tiny"
    captioner_eval_clips: int = 0  # validation clips scored during captioner training (0: every validation clip)
    captioner_eval_beams: int = 2
    projector_hidden_size: int = 256
    lora_r: int = 16
    lora_alpha: int = 32
    lora_target_modules: str = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
    encoder_learning_rate: float = 0.0  # peak rate of the captioner's encoder when it trains (0: the stage's rate)
    captioner_group_by_duration: int = 0  # 1: captioner batches of clips of similar length (finetune_aac --group_by_duration)
    clap_preset: str = "tiny"
    # EAT-CLAP's compositional hard negatives (`train/train_clap.py --hard_negatives`): "" (off: plain InfoNCE) or a
    # comma list of count, order, antonym; how many in-batch negatives each counts for (`--hard_negative_weight`);
    # at most how many per clip, kinds drawn among those that apply (`--hard_negatives_per_clip`; 3: one of each kind).
    # On by default with one per clip: on the demo's captioner (392 test clips, single-pass candidates) rescoring
    # gained +9.4 % CIDEr-D with them, +5.1 % without, +2.4 % with one of each kind (docs/results.md).
    clap_hard_negatives: str = "count,order,antonym"
    clap_hard_negative_weight: float = 1.0
    clap_hard_negatives_per_clip: int = 1
    log_points: int = 4  # training-loss log entries per stage
    feature_batch_size: int = 8
    eval_batch_size: int = 8
    # Consensus rescoring: captions sampled per clip (0: off) as stand-ins for the references, and the weight of each
    # candidate's agreement with them in the pick (`consensus_scoring`; saved with the model folder). On the demo's
    # captioner (200 test clips, 32 samples) CLAP alone gained +3.4 % CIDEr-D over beam 4, CLAP + 4 x consensus
    # +12.7 %; sampling the corpus grammar itself as a perfect captioner gave +4.6 % at 32 samples, +8 % at 64
    # (docs/results.md).
    pseudo_references: int = 32
    consensus_weight: float = 4.0
    # Sampling temperatures of those captions (comma-separated) among which an evaluation that tunes its weights on
    # validation chooses too (one set of samples each there); the first one samples when nothing is tuned.
    pseudo_reference_temperatures: str = "1"

    def __post_init__(self):
        # Checked here, when the sizes are made (a recipe's `--set`), not after the stages before the CLAP one ran.
        if self.clap_hard_negatives:
            from llm_aac.processing.caption_perturbations import parse_perturbation_kinds

            parse_perturbation_kinds(self.clap_hard_negatives)
        for name in ("clap_hard_negative_weight", "consensus_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        object.__setattr__(self, "pseudo_reference_temperatures",  # frozen: normalised once, here
                           ",".join(f"{t:g}" for t in self.consensus_temperatures))
        for name, least in (("clap_hard_negatives_per_clip", 1), ("pseudo_references", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")

    @property
    def consensus_temperatures(self) -> tuple[float, ...]:
        """`pseudo_reference_temperatures` as numbers (`parse_temperatures`)."""
        return parse_temperatures(self.pseudo_reference_temperatures)


def parse_temperatures(text: str | float) -> tuple[float, ...]:
    """Comma-separated sampling temperatures as distinct positive numbers, in order (a recipe's `--set` may give one
    number instead of text)."""
    text = str(text)
    try:
        values = tuple(dict.fromkeys(float(part) for part in text.split(",") if part.strip()))
    except ValueError:
        values = ()
    if not values or not all(math.isfinite(t) and t > 0 for t in values):
        raise ValueError(f"pseudo_reference_temperatures must be comma-separated positive numbers, got {text!r}")
    return values


# Where the candidates ablation's names meet `CandidateOptions.strategy`.
CANDIDATE_STRATEGIES = {"slam": "slam", "single_pass": "single"}
TRAINING_MODES = ("lora", "projector_only")
ENCODER_TRAINING = ("trained", "frozen")


@dataclass(frozen=True)
class RecipeChoices:
    """What the recipe trains and how it decodes (the GPU recipe's ablation knobs), and where it runs.

    The defaults are the demo's. `training`: `lora` = a projector warm-up over the frozen LM, then projector + LoRA
    (SLAM-AAC); `projector_only` = the projector alone over the frozen LM for the same steps (the original LLM-AAC).
    `candidates`: what CLAP rescoring picks from, `single_pass` (one beam search of 7 beams returning all 7, the
    default: more distinct candidates and the larger rescoring gain in our measurements) or `slam` (SLAM-AAC's
    CLAP-Refine: 7 beam searches of beam 2..8, the top hypothesis of each, which often coincide).
    `lm_caption_files`: caption files (e.g. AudioCaps' CSV) added to the synthetic training captions of the
    tokenizer and text LM. The captioner's encoder: `encoder_init` `pretrained` (the EAT stage's weights) or
    `scratch` (its architecture with fresh weights); `encoder_training` `trained` with the projector and adapter, or
    `frozen` (SLAM-AAC).
    """

    feature_type: str = "cwt"
    projector_type: str = "linear"
    training: str = "lora"
    candidates: str = "single_pass"
    encoder_init: str = "pretrained"
    encoder_training: str = "trained"
    device: str = "cpu"
    dataloader_workers: int = 0
    progress_bars: bool = True
    lm_caption_files: tuple[str, ...] = ()

    def check(self) -> None:
        """Raises a ValueError naming every bad choice (not at construction: the feature types live in a module
        that imports torch, which `llm-aac --help` should not pay for)."""
        from llm_aac.train.finetune_aac import ENCODER_INITS
        from modeling_llm_aac.feature_extraction_llm_aac import FEATURE_TYPES

        allowed = {"feature_type": FEATURE_TYPES, "projector_type": ("linear", "qformer"),
                   "training": TRAINING_MODES, "candidates": tuple(CANDIDATE_STRATEGIES),
                   "encoder_init": ENCODER_INITS, "encoder_training": ENCODER_TRAINING}
        problems = [f"{name} must be one of {choices}, got {getattr(self, name)!r}"
                    for name, choices in allowed.items() if getattr(self, name) not in choices]
        if self.dataloader_workers < 0:
            problems.append(f"dataloader_workers must be >= 0, got {self.dataloader_workers}")
        if problems:
            raise ValueError("invalid recipe choices: " + "; ".join(problems))

    @property
    def on_gpu(self) -> bool:
        return str(self.device).startswith("cuda")


DEMO_CHOICES = RecipeChoices()


SIZES: dict[str, DemoSizes] = {
    "full": DemoSizes(
        train_clips=400, validation_clips=16, test_clips=50,
        # Training seconds of the five training stages on a shared 2-core machine (about one core for this process):
        # 8-12 / 25-35 / 17-25 / 100-140 / 35-50; the time limits stop a stage on a machine about twice as slow, so
        # that the demo still ends within 10 minutes there.
        eat_steps=300, eat_batch_size=8, eat_max_frames=512, eat_minutes=0.4,
        text_clips=3000, vocab_size=600, lm_steps=250, lm_batch_size=16, lm_minutes=0.75,
        projector_steps=150, projector_learning_rate=5e-3, projector_minutes=0.6,
        lora_steps=900, lora_learning_rate=3e-3, lora_minutes=2.75,
        captioner_batch_size=8, captioner_eval_steps=300,
        clap_steps=300, clap_learning_rate=1e-3, clap_batch_size=16, clap_minutes=1.1,
    ),
    "quick": DemoSizes(
        train_clips=24, validation_clips=4, test_clips=5,
        eat_steps=4, eat_batch_size=4, eat_max_frames=256, eat_minutes=0.5,
        text_clips=200, vocab_size=400, lm_steps=10, lm_batch_size=8, lm_minutes=0.5,
        projector_steps=6, projector_learning_rate=2e-3, projector_minutes=0.5,
        lora_steps=4, lora_learning_rate=1e-3, lora_minutes=0.5,
        captioner_batch_size=4, captioner_eval_steps=100,
        clap_steps=4, clap_learning_rate=1e-3, clap_batch_size=4, clap_minutes=0.5,
    ),
}


class DemoStageError(RuntimeError):
    """A stage of the demo failed; `stage` names it and `__cause__` holds the original error."""

    def __init__(self, stage: str, number: int, total: int, cause: BaseException, seconds: float):
        reason = str(cause).strip() or type(cause).__name__
        if isinstance(cause, SystemExit):
            reason = f"exited with status {cause.code}"
        super().__init__(f"stage {number}/{total} '{stage}' failed after {seconds:.1f} s: "
                         f"{type(cause).__name__}: {reason}")
        self.stage = stage


@dataclass
class StageTiming:
    name: str
    seconds: float


class StageRunner:
    """Runs the numbered stages, printing a header and the wall time of each, turning failures into
    `DemoStageError`."""

    def __init__(self, total: int, print_fn: Callable[..., None] = print):
        self.total = total
        self.done: list[StageTiming] = []
        self.print = print_fn

    def run(self, name: str, description: str, function: Callable[[], Any]) -> Any:
        number = len(self.done) + 1
        self.print(f"\n[{number}/{self.total}] {name}: {description}", flush=True)
        start = time.monotonic()
        try:
            result = function()
        except (Exception, SystemExit) as error:  # SystemExit: argument errors of the training scripts
            raise DemoStageError(name, number, self.total, error, time.monotonic() - start) from error
        seconds = time.monotonic() - start
        self.done.append(StageTiming(name, seconds))
        self.print(f"[{number}/{self.total}] {name} done in {seconds:.1f} s", flush=True)
        return result


# ------------------------------------------------------------------------------------------------ stages


def _split_fractions(sizes: DemoSizes) -> tuple[int, dict[str, float]]:
    """Total clips and `synthesize_corpus` split fractions giving exactly the wanted clips per split."""
    from llm_aac.processing.synthetic import split_sizes

    wanted = {"train": sizes.train_clips, "validation": sizes.validation_clips, "test": sizes.test_clips,
              "compositional": sizes.compositional_clips}
    total = sum(wanted.values())
    fractions = {split: count / total for split, count in wanted.items() if split != "train"}
    if split_sizes(total, fractions) != wanted:  # rounding: cannot happen for these integer ratios
        raise AssertionError(f"split sizes {split_sizes(total, fractions)} differ from {wanted}")
    return total, fractions


def synthesize(work: str, sizes: DemoSizes, seed: int, workers: int) -> str:
    from llm_aac.processing.synthetic import synthesize_corpus

    total, fractions = _split_fractions(sizes)
    corpus_dir = os.path.join(work, "corpus")
    corpus = synthesize_corpus(total, seed, corpus_dir, split_fractions=fractions, num_proc=workers, overwrite=True)
    hours = sum(sum(split.data.column("duration").to_pylist()) for split in corpus.values()) / 3600
    print(f"  {total} clips, {hours * 60:.1f} minutes of audio -> {corpus_dir}", flush=True)
    return corpus_dir


def precompute(work: str, corpus_dir: str, workers: int, *, batch_size: int = 8,
               choices: RecipeChoices = DEMO_CHOICES) -> str:
    from llm_aac.processing.loaders import load_aac_dataset
    from llm_aac.processing.precompute import precompute_features
    from modeling_llm_aac import LLMAACFeatureExtractor

    features_dir = os.path.join(work, "features")
    for split in ("train", "validation"):
        dataset = load_aac_dataset(corpus_dir, split)
        # On a GPU each worker process opens its own CUDA context (decoding stays parallel on the CPUs).
        result = precompute_features(
            dataset, LLMAACFeatureExtractor(feature_type=choices.feature_type), os.path.join(features_dir, split),
            dataset_id=f"demo:{split}", batch_size=batch_size,
            num_proc=workers if len(dataset) >= 2 * workers else None, device=choices.device, keep_audio=False,
            overwrite=True, progress=choices.progress_bars,
        )
        if not result.complete:
            raise RuntimeError(f"precomputing the {split} split left chunks missing in {result.output_dir}")
    return features_dir


def _common_training_arguments(seed: int, choices: RecipeChoices = DEMO_CHOICES) -> list[str]:
    # No external loggers, no intermediate checkpoints (each script saves its final model); on a CPU no DataLoader
    # worker processes (two cores), on a GPU bf16 autocast and pinned batches.
    arguments = ["--seed", str(seed), "--report_to", "none", "--dataloader_num_workers", str(choices.dataloader_workers),
                 "--dataloader_pin_memory", "true" if choices.on_gpu else "false", "--save_strategy", "no"]
    # Stated either way: the GPU presets of the training scripts default to bf16, which a CPU refuses.
    arguments += ["--bf16", "true" if choices.on_gpu else "false"]
    if not choices.progress_bars:
        arguments += ["--disable_tqdm", "true"]
    return arguments


def _logging_steps(steps: int, sizes: DemoSizes) -> str:
    return str(max(1, steps // sizes.log_points))


def pretrain_encoder(work: str, features_dir: str, sizes: DemoSizes, seed: int,
                     choices: RecipeChoices = DEMO_CHOICES) -> str:
    from llm_aac.train import pretrain_eat

    output = os.path.join(work, "eat")
    pretrain_eat.main([
        "--preset", sizes.eat_preset, "--feature_type", choices.feature_type,
        "--dataset_path", os.path.join(features_dir, "train"), "--config_overrides", sizes.eat_config_overrides,
        "--max_frames", str(sizes.eat_max_frames),
        "--per_device_train_batch_size", str(sizes.eat_batch_size), "--max_steps", str(sizes.eat_steps),
        "--warmup_steps", str(max(1, sizes.eat_steps // 10)), "--logging_steps", _logging_steps(sizes.eat_steps, sizes),
        "--max_train_minutes", str(sizes.eat_minutes), "--stop_after_steps", str(sizes.eat_stop_steps),
        "--output_dir", output, *_common_training_arguments(seed, choices),
    ])
    return os.path.join(output, "encoder")


def pretrain_language_model(work: str, sizes: DemoSizes, seed: int, choices: RecipeChoices = DEMO_CHOICES, *,
                            corpus_seed: int | None = None) -> str:
    """Tokenizer + text LM on the captions of the corpus's training clips (`corpus_seed`, default `seed`) and
    `choices.lm_caption_files`; the LM is trained with `seed`."""
    from llm_aac.train import pretrain_text_lm, train_tokenizer
    from llm_aac.train.caption_text import synthetic_captions

    text_dir = os.path.join(work, "text")
    os.makedirs(text_dir, exist_ok=True)
    # Captions of training-split clips only (the first ones are the corpus's own): validation and test
    # captions stay unseen. The grammar runs without rendering audio, so thousands of clips take seconds.
    corpus_seed = seed if corpus_seed is None else corpus_seed
    captions = [c for five in synthetic_captions(sizes.text_clips, seed=corpus_seed, split="train") for c in five]
    captions_file = os.path.join(text_dir, "train_captions.txt")
    with open(captions_file, "w", encoding="utf-8") as f:
        f.write("\n".join(captions) + "\n")
    caption_files = [captions_file, *choices.lm_caption_files]
    tokenizer_dir = os.path.join(work, "tokenizer")
    train_tokenizer.main(["--caption_files", *caption_files, "--vocab_size", str(sizes.vocab_size),
                          "--output_dir", tokenizer_dir])
    lm_dir = os.path.join(work, "lm")
    pretrain_text_lm.main([
        "--preset", sizes.lm_preset, "--caption_files", *caption_files, "--tokenizer_path", tokenizer_dir,
        "--per_device_train_batch_size", str(sizes.lm_batch_size), "--max_steps", str(sizes.lm_steps),
        "--warmup_steps", str(max(1, sizes.lm_steps // 10)), "--logging_steps", _logging_steps(sizes.lm_steps, sizes),
        "--eval_strategy", "no", "--max_train_minutes", str(sizes.lm_minutes), "--output_dir", lm_dir,
        *_common_training_arguments(seed, choices),
    ])
    extra = f" + {', '.join(choices.lm_caption_files)}" if choices.lm_caption_files else ""
    print(f"  {len(captions)} synthetic captions{extra}; tokenizer -> {tokenizer_dir}, language model -> {lm_dir}",
          flush=True)
    return lm_dir


def captioner_stage_budgets(projector: float, lora: float, training: str) -> dict[str, float]:
    """Steps (or minutes) of each captioner stage: the projector warm-up then LoRA, or with `projector_only` one
    projector stage that gets the budget of both (so that only the adapter differs between the two)."""
    if training == "projector_only":
        return {"projector": projector + lora}
    return {"projector": projector, "lora": lora}


def train_captioner(work: str, features_dir: str, encoder_dir: str, language_model_dir: str, sizes: DemoSizes,
                    seed: int, choices: RecipeChoices = DEMO_CHOICES) -> tuple[str, dict]:
    """`train/finetune_aac.py --stage both`: the projector over the frozen LM, then projector + LoRA on the LM
    (with `choices.training == "projector_only"`: `--stage projector` for the steps and time of both).

    Returns the captioner folder and the validation scores before training (the LM alone, captioning from
    untrained audio tokens) and after each stage.
    """
    from llm_aac.train import finetune_aac

    output = os.path.join(work, "captioner")
    eval_clips = sizes.captioner_eval_clips or sizes.validation_clips
    steps = captioner_stage_budgets(sizes.projector_steps, sizes.lora_steps, choices.training)
    minutes = captioner_stage_budgets(sizes.projector_minutes, sizes.lora_minutes, choices.training)
    stages = ["--stage", "both" if "lora" in steps else "projector",
              "--projector_max_steps", str(steps["projector"]), "--projector_max_minutes", str(minutes["projector"]),
              "--projector_learning_rate", str(sizes.projector_learning_rate)]
    if "lora" in steps:
        stages += ["--lora_max_steps", str(steps["lora"]), "--lora_max_minutes", str(minutes["lora"]),
                   "--lora_learning_rate", str(sizes.lora_learning_rate)]
    finetune_aac.main([
        "--preset", sizes.captioner_preset, *stages, "--encoder_path", encoder_dir,
        "--language_model", language_model_dir, "--projector_type", choices.projector_type,
        "--dataset_path", features_dir, "--eval_split", "validation", "--max_eval_clips", str(eval_clips),
        "--eval_metrics", "cider_d,bleu_4,rouge_l", "--generation_num_beams", str(sizes.captioner_eval_beams),
        "--generation_max_new_tokens", "40",
        "--per_device_train_batch_size", str(sizes.captioner_batch_size),
        "--per_device_eval_batch_size", str(sizes.captioner_batch_size),
        "--warmup_steps", str(max(1, sizes.projector_steps // 10)),
        "--logging_steps", _logging_steps(sizes.projector_steps, sizes), "--eval_steps", str(sizes.captioner_eval_steps),
        # Toy-size departures from SLAM-AAC (frozen encoder, LoRA r 8 on q/v), measured on this corpus: a minute
        # of CPU pretraining leaves EAT-tiny's features no better than random ones, so the encoder is trained with
        # the captioner by default (as in the GPU learning recipe); a wider projector and LoRA on every linear
        # layer of the tiny LM let the captions depend on the audio within a few hundred steps.
        "--encoder_init", choices.encoder_init,
        "--freeze_encoder", "true" if choices.encoder_training == "frozen" else "false",
        "--projector_hidden_size", str(sizes.projector_hidden_size),
        "--lora_r", str(sizes.lora_r), "--lora_alpha", str(sizes.lora_alpha),
        "--lora_target_modules", sizes.lora_target_modules,
        "--encoder_learning_rate", str(sizes.encoder_learning_rate),
        "--group_by_duration", "true" if sizes.captioner_group_by_duration else "false",
        "--output_dir", output, *_common_training_arguments(seed, choices),
    ])
    with open(os.path.join(output, "summary.json"), encoding="utf-8") as f:
        summary = json.load(f)
    validation = {}
    for stage, label in (("projector", "projector"), ("lora", "projector + LoRA")):
        evaluations = [e for e in summary["evaluations"] if e["stage"] == stage]
        if not evaluations:  # projector_only has no lora stage
            continue
        first, last = evaluations[0], evaluations[-1]
        validation.setdefault("before", first)
        validation[stage] = last
        print(f"  {label}: {summary['stages'][stage]['seconds']:.1f} s; validation loss {first['eval_loss']:.3f} -> "
              f"{last['eval_loss']:.3f}, CIDEr-D {first.get('eval_cider_d', float('nan')):.3f} -> "
              f"{last.get('eval_cider_d', float('nan')):.3f} (beam {sizes.captioner_eval_beams}, {eval_clips} clips)",
              flush=True)
    return output, validation


def clap_training_arguments(output: str, features_dir: str, encoder_dir: str, sizes: DemoSizes, seed: int,
                            choices: RecipeChoices = DEMO_CHOICES) -> list[str]:
    """`train/train_clap.py` arguments of the CLAP stage (the hard-negative ones only when that option is on)."""
    arguments = [
        "--preset", sizes.clap_preset, "--audio_model_path", encoder_dir, "--dataset_path", features_dir,
        "--eval_split", "validation", "--max_eval_clips", str(sizes.validation_clips),
        "--per_device_train_batch_size", str(sizes.clap_batch_size),
        "--per_device_eval_batch_size", str(sizes.clap_batch_size), "--max_steps", str(sizes.clap_steps),
        "--learning_rate", str(sizes.clap_learning_rate), "--max_train_minutes", str(sizes.clap_minutes),
        "--warmup_steps", str(max(1, sizes.clap_steps // 10)), "--logging_steps", _logging_steps(sizes.clap_steps, sizes),
        "--eval_steps", str(max(1, sizes.clap_steps)), "--output_dir", output, *_common_training_arguments(seed, choices),
    ]
    if sizes.clap_hard_negatives:
        arguments += ["--hard_negatives", sizes.clap_hard_negatives,
                      "--hard_negative_weight", str(sizes.clap_hard_negative_weight),
                      "--hard_negatives_per_clip", str(sizes.clap_hard_negatives_per_clip)]
    return arguments


def train_clap_scorer(work: str, features_dir: str, encoder_dir: str, sizes: DemoSizes, seed: int,
                      choices: RecipeChoices = DEMO_CHOICES) -> str:
    from llm_aac.train import train_clap

    output = os.path.join(work, "clap")
    train_clap.main(clap_training_arguments(output, features_dir, encoder_dir, sizes, seed, choices))
    with open(os.path.join(output, "summary.json"), encoding="utf-8") as f:
        evaluations = json.load(f)["evaluations"]
    first, last = evaluations[0], evaluations[-1]
    nan = float("nan")
    print(f"  validation retrieval: audio->text R@1 {first.get('eval_a2t_r1', nan):.2f} -> "
          f"{last.get('eval_a2t_r1', nan):.2f}, text->audio R@1 {first.get('eval_t2a_r1', nan):.2f}"
          f" -> {last.get('eval_t2a_r1', nan):.2f}; hard-negative accuracy "
          f"{first.get('eval_hard_negative_accuracy', nan):.2f} -> {last.get('eval_hard_negative_accuracy', nan):.2f}"
          f" ({sizes.validation_clips} clips)", flush=True)
    return output


def save_model_folder(output: str, captioner_dir: str, clap_dir: str, choices: RecipeChoices = DEMO_CHOICES,
                      sizes: DemoSizes | None = None) -> str:
    from transformers import AutoModel, AutoProcessor

    import modeling_llm_aac  # noqa: F401  (registers the Auto classes)
    from modeling_llm_aac.pipeline_audio_captioning import save_captioner

    model = AutoModel.from_pretrained(captioner_dir)
    processor = AutoProcessor.from_pretrained(captioner_dir)
    generation = model.generation_config
    # SLAM-AAC's plain decoding (beam 4); the saved pipeline rescores the chosen candidates by default (the demo:
    # one 7-beam search's 7 hypotheses, the pipeline's "single" defaults), with the consensus of `sizes`.
    generation.num_beams, generation.max_new_tokens, generation.do_sample = 4, 40, False
    samples = sizes.pseudo_references if sizes is not None else 0
    if os.path.isdir(output):
        shutil.rmtree(output)
    save_captioner(output, model, processor, clap=clap_dir, generation_config=generation,
                   candidates=CANDIDATE_STRATEGIES[choices.candidates],
                   clap_kwargs={"consensus_weight": float(sizes.consensus_weight) if samples else 0.0},
                   **({"num_pseudo_references": samples,
                       "pseudo_reference_temperature": sizes.consensus_temperatures[0]} if samples else {}))
    return output


def evaluate(output: str, work: str, corpus_dir: str, sizes: DemoSizes, choices: RecipeChoices = DEMO_CHOICES,
             splits: tuple[str, ...] = ("test",), tune_lm_weight_on: str | None = None) -> dict:
    """Plain beam search vs CLAP rescoring of `choices.candidates` on `splits` of the corpus (`METRICS` and
    semantic accuracy); outputs in `work/evaluation`. The rescoring samples `sizes.pseudo_references` captions per
    clip for consensus. `tune_lm_weight_on` (a split, e.g. "validation") chooses the rescoring's log-probability and
    consensus weights, and the samples' temperature among `sizes.consensus_temperatures`, there first
    (`evaluate_captioner`); otherwise they are the saved folder's."""
    from llm_aac.eval.evaluate_captioner import BEAM_SEARCH, CLAP_RESCORING, evaluate_captioner
    from modeling_llm_aac.caption_candidates import CandidateOptions

    return evaluate_captioner(
        output, "synthetic", list(splits), output_dir=os.path.join(work, "evaluation"), data_dir=corpus_dir,
        metrics=list(METRICS), systems=(BEAM_SEARCH, CLAP_RESCORING),
        candidate_options=CandidateOptions(strategy=CANDIDATE_STRATEGIES[choices.candidates],
                                           num_pseudo_references=sizes.pseudo_references,
                                           pseudo_reference_temperature=sizes.consensus_temperatures[0]),
        batch_size=sizes.eval_batch_size, num_workers=choices.dataloader_workers, device=choices.device,
        max_clips=max(sizes.test_clips, sizes.compositional_clips), progress=choices.progress_bars,
        tune_lm_weight_on=tune_lm_weight_on,
        pseudo_reference_temperatures=sizes.consensus_temperatures
        if tune_lm_weight_on is not None and sizes.pseudo_references and len(sizes.consensus_temperatures) > 1 else (),
    )


def keep_tuned_weights(model_dir: str, summary: dict) -> dict | None:
    """Write the fusion weights an evaluation chose on validation (`summary["lm_weight_tuning"]`) into the saved
    folder's CLAP settings, and the consensus captions' temperature when it chose one into its candidate defaults,
    so that its pipeline picks captions as the evaluation did. Returns what was written, None when the evaluation
    tuned nothing."""
    from modeling_llm_aac.pipeline_audio_captioning import PIPELINE_CONFIG_NAME

    tuning = summary.get("lm_weight_tuning")
    if not tuning:
        return None
    path = os.path.join(model_dir, PIPELINE_CONFIG_NAME)
    with open(path, encoding="utf-8") as f:
        settings = json.load(f)
    if not settings.get("clap"):
        raise ValueError(f"{path} has no CLAP scorer settings to write the tuned weights into")
    chosen = {"lm_weight": float(tuning["chosen"]), "consensus_weight": float(tuning["chosen_consensus_weight"])}
    settings["clap"].update(chosen)
    if "chosen_temperature" in tuning:
        chosen["pseudo_reference_temperature"] = float(tuning["chosen_temperature"])
        settings.setdefault("defaults", {})["pseudo_reference_temperature"] = chosen["pseudo_reference_temperature"]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(settings, f, indent=2, sort_keys=True)
        f.write("\n")
    return chosen


# ------------------------------------------------------------------------------------------------ report


def _examples(evaluation_dir: str, count: int) -> list[dict]:
    from llm_aac.eval.evaluate_captioner import BEAM_SEARCH, CLAP_RESCORING, predictions_file

    rows: dict[str, list[dict]] = {}
    for system in (BEAM_SEARCH, CLAP_RESCORING):
        with open(os.path.join(evaluation_dir, predictions_file(system)), encoding="utf-8") as f:
            rows[system] = [json.loads(line) for line in f if line.strip()]
    return [
        {"file": plain["file"], "beam_search": plain["prediction"], "clap_rescoring": rescored["prediction"],
         "references": plain["references"]}
        for plain, rescored in list(zip(rows[BEAM_SEARCH], rows[CLAP_RESCORING]))[:count]
    ]


def print_report(timings: list[StageTiming], total_seconds: float, evaluation_dir: str, examples: list[dict],
                 output: str, validation: dict, validation_clips: int) -> None:
    from llm_aac.eval.evaluate_captioner import REPORT_FILE as METRICS_REPORT

    before, after = validation["before"], validation.get("lora", validation.get("projector"))
    print("\n" + "=" * 100)
    print(f"Captioner training, validation ({validation_clips} clips, beam 2): loss {before['eval_loss']:.3f} -> "
          f"{after['eval_loss']:.3f}, CIDEr-D {before.get('eval_cider_d', float('nan')):.3f} (the text LM alone, "
          f"before training) -> {after.get('eval_cider_d', float('nan')):.3f}\n")
    with open(os.path.join(evaluation_dir, METRICS_REPORT), encoding="utf-8") as f:
        print(f.read().replace("# Evaluation of", "# Held-out test clips captioned by", 1).rstrip())
    print(f"\n## {len(examples)} example captions\n")
    for number, example in enumerate(examples, start=1):
        print(f"{number}. {example['file']}")
        print(f"   beam search    : {example['beam_search']}")
        print(f"   CLAP rescoring : {example['clap_rescoring']}")
        for index, reference in enumerate(example["references"]):
            print(f"   {'references     :' if index == 0 else ' ' * 17} {reference}")
    print("\n## Wall time per stage\n")
    print("| stage | seconds |\n|---|---:|")
    for timing in timings:
        print(f"| {timing.name} | {timing.seconds:.1f} |")
    print(f"| **total** | **{total_seconds:.1f}** |")
    print("\nThe captioner (with its CLAP scorer) is saved in", output, "- load it with:\n")
    print("    from transformers import pipeline")
    print(f"    captioner = pipeline(\"audio-captioning\", model={json.dumps(output)}, trust_remote_code=True)")
    print("    captioner(\"clip.wav\")                       # CLAP rescoring of one beam search's 7 hypotheses: "
          "{'caption': ...}")
    print("    captioner(\"clip.wav\", candidates=\"slam\")    # CLAP rescoring of SLAM-AAC's 7 beam searches")
    print("    captioner(\"clip.wav\", candidates=\"none\")    # plain beam search", flush=True)


# ------------------------------------------------------------------------------------------------ driver


def check_output_folder(output: str) -> None:
    """The output folder must be new, empty, or written by an earlier demo (which is then replaced)."""
    if os.path.isfile(output):
        raise ValueError(f"--output {output!r} is a file; give a folder for the captioner")
    if os.path.isdir(output) and os.listdir(output) and not os.path.isfile(os.path.join(output, REPORT_FILE)):
        raise ValueError(
            f"--output {output!r} exists and was not written by `llm-aac demo` (no {REPORT_FILE}); choose a new or "
            "empty folder so that nothing of yours is overwritten"
        )


def run_demo(output: str, sizes: DemoSizes, work: str, *, seed: int = 0, threads: int = 1,
             workers: int | None = None) -> dict:
    """Runs every stage with intermediate files in `work`; returns the report also written to
    `output/demo_report.json`. Raises `DemoStageError` naming the stage that failed.

    `threads` torch threads train and caption (the models are so small that one thread is about as fast as
    two); `workers` processes (default: up to 4 cores) synthesize the corpus and compute its features.
    """
    import torch

    output = os.path.abspath(output)
    torch.set_num_threads(threads)
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    os.makedirs(work, exist_ok=True)
    print(f"LLM-AAC demo: {sizes.train_clips} training clips, {sizes.test_clips} test clips, seed {seed}, "
          f"{threads} torch thread(s), {workers} worker processes; work folder {work}", flush=True)
    runner = StageRunner(total=8)
    started = time.monotonic()
    corpus = runner.run("synthesize corpus",
                        f"{sizes.train_clips} train, {sizes.validation_clips} validation, {sizes.test_clips} test "
                        "sound scenes with 5 captions each",
                        lambda: synthesize(work, sizes, seed, workers))
    features = runner.run("CWT features", "64-scale Morlet CWT of the train and validation clips, per-bin statistics",
                          lambda: precompute(work, corpus, workers, batch_size=sizes.feature_batch_size))
    encoder = runner.run("EAT pretraining",
                         f"tiny EAT, utterance-frame objective on CWT features, {sizes.eat_steps} steps",
                         lambda: pretrain_encoder(work, features, sizes, seed))
    language_model = runner.run("tokenizer + text LM",
                                f"BPE tokenizer and a tiny Llama pre-trained on {sizes.text_clips * 5} training "
                                f"captions, {sizes.lm_steps} steps",
                                lambda: pretrain_language_model(work, sizes, seed))
    captioner, validation = runner.run(
        "captioner", f"projector over the frozen LM ({sizes.projector_steps} steps), then projector + LoRA on the "
        f"LM ({sizes.lora_steps} steps); the EAT is trained with them",
        lambda: train_captioner(work, features, encoder, language_model, sizes, seed))
    clap = runner.run("CLAP", f"tiny EAT-CLAP (pretrained EAT + small text tower), {sizes.clap_steps} steps",
                      lambda: train_clap_scorer(work, features, encoder, sizes, seed))
    runner.run("save model folder", f"captioner + CLAP scorer as one pipeline folder -> {output}",
               lambda: save_model_folder(output, captioner, clap, sizes=sizes))
    summary = runner.run("caption + evaluate",
                         f"{sizes.test_clips} held-out test clips: beam search vs CLAP rescoring of one beam "
                         f"search's 7 hypotheses" + (f", with their consensus with {sizes.pseudo_references} sampled "
                                                     "captions" if sizes.pseudo_references else ""),
                         lambda: evaluate(output, work, corpus, sizes))
    total_seconds = time.monotonic() - started
    evaluation_dir = os.path.join(work, "evaluation")
    examples = _examples(evaluation_dir, NUM_EXAMPLES)
    report = {
        "sizes": dataclasses.asdict(sizes), "seed": seed, "threads": threads, "workers": workers,
        "stage_seconds": {timing.name: round(timing.seconds, 1) for timing in runner.done},
        "total_seconds": round(total_seconds, 1), "captioner_validation": validation,
        "test_split": summary["splits"]["test"], "systems": summary["systems"], "examples": examples,
    }
    with open(os.path.join(output, REPORT_FILE), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1, ensure_ascii=False, default=str)
    print_report(runner.done, total_seconds, evaluation_dir, examples, output, validation, sizes.validation_clips)
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default=DEFAULT_OUTPUT,
                        help=f"folder for the trained captioner pipeline (default ./{DEFAULT_OUTPUT}; an earlier "
                             "demo's folder is replaced, any other non-empty folder is refused)")
    parser.add_argument("--num-clips", type=int, default=None,
                        help=f"training clips of the synthetic corpus (default {SIZES['full'].train_clips}, "
                             f"{SIZES['quick'].train_clips} with --quick)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the corpus and of every training stage (default 0)")
    parser.add_argument("--quick", action="store_true",
                        help="a ~1-minute run of every stage with a handful of clips and steps (a smoke test)")
    parser.add_argument("--work-dir", default=None,
                        help="keep the intermediate files (corpus, features, checkpoints) in this folder "
                             "(default: a temporary folder, removed at the end)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for training and captioning (default 1: the toy models gain nothing from "
                             "more, and on a busy 2-core machine two spinning threads slow every step down)")


def main(args: argparse.Namespace) -> int:
    sizes = SIZES["quick" if args.quick else "full"]
    problems = []
    if args.num_clips is not None:
        if args.num_clips < 8:
            problems.append(f"--num-clips must be >= 8 (a few training batches), got {args.num_clips}")
        else:
            sizes = dataclasses.replace(sizes, train_clips=args.num_clips, text_clips=max(sizes.text_clips, args.num_clips))
    if args.seed < 0:
        problems.append(f"--seed must be >= 0, got {args.seed}")
    if args.threads < 1:
        problems.append(f"--threads must be >= 1, got {args.threads}")
    try:
        check_output_folder(args.output)
    except ValueError as error:
        problems.append(str(error))
    if problems:
        for problem in problems:
            print(f"llm-aac demo: error: {problem}", file=sys.stderr)
        return 2

    # Offline by design: nothing is downloaded, and a stray hub request should fail at once, not retry.
    for variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(variable, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # OpenMP threads that spin while waiting stall each other when the cores are shared (read when torch loads).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # The training scripts log at INFO through `logging.basicConfig`; configured first, the demo keeps to
    # warnings, progress bars and its own lines.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # A deprecation notice from inside peft / transformers that a demo user can do nothing about.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

    work = os.path.abspath(args.work_dir) if args.work_dir else tempfile.mkdtemp(prefix="llm-aac-demo-")
    try:
        run_demo(args.output, sizes, work, seed=args.seed, threads=args.threads)
    except DemoStageError as error:
        log = os.path.join(work, ERROR_LOG)
        with open(log, "w", encoding="utf-8") as f:
            f.write(f"{error}\n\n" + "".join(traceback.format_exception(error.__cause__)))
        print(f"\nllm-aac demo: {error}", file=sys.stderr)
        print(f"llm-aac demo: full traceback in {log}; intermediate files kept in {work}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nllm-aac demo: interrupted; intermediate files kept in {work}", file=sys.stderr)
        return 130
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    return 0
