"""The LLM-AAC recipe on the synthetic corpus at GPU size (issue 7 §2): one configuration per run, a results JSON.

    # one H100: ~14 minutes of training, ~18 in all (see "Commands of at most 10 minutes" below)
    python train/recipes/synthetic_gpu.py --output runs/recipe
    accelerate launch train/recipes/synthetic_gpu.py --output runs/recipe        # the same, one process
    # one ablation knob changed, another training seed
    python train/recipes/synthetic_gpu.py --features fbank --seed 1 --output runs/fbank-seed1
    # CPU check of the whole chain at toy size (~1-2 minutes on 2 cores)
    python train/recipes/synthetic_gpu.py --smoke --output /tmp/recipe-smoke

The stages are `llm-aac demo`'s (`llm_aac/demo.py`, called here with GPU sizes and this run's choices):
synthesize the corpus (train / validation / test / compositional) -> precompute features of the train and
validation clips (on the GPU) -> pretrain EAT-small on them -> tokenizer + small Llama on caption text (synthetic
training captions, plus e.g. AudioCaps' caption CSV with `--lm-caption-file`) -> EAT-CLAP (the pretrained EAT +
a small BERT) -> the captioner (a short projector-only warm-up over the frozen LM, then projector + encoder + LoRA
on every linear layer of the LM) -> the pipeline folder (`OUTPUT/model`) -> caption the test and compositional
splits with plain beam search (beam 4) and with CLAP rescoring of the candidates, scored by CIDEr-D, METEOR (when
Java is installed), BLEU, ROUGE-L and semantic accuracy (events, counts, order).

Knobs (the ablations of issue 7 §3; the defaults are the baseline): `--features cwt|fbank|cwt_seed`,
`--projector linear|qformer`, `--training lora|projector_only` (projector_only: the LM stays frozen, without
adapter, for the same steps; the encoder still trains with the projector so that only the adapter differs),
`--candidates single_pass|slam` (one beam search of 7 beams returning all 7, or SLAM-AAC's CLAP-Refine candidates:
7 beam searches of beam 2..8, the top hypothesis of each; decoding only). Diagnostics of the captioner's encoder:
`--encoder-init pretrained|scratch` (the EAT stage's weights, or the same architecture from random weights; the EAT
stage is still built, for CLAP and the probe) and `--encoder-training trained|frozen` (trained with the projector
and adapter, or frozen as in SLAM-AAC).
`--budget-scale S` multiplies every step count, time limit and the number of training clips (validation and test
splits keep their size). `--set FIELD=VALUE` overrides any size (a `DemoSizes` field, e.g. `captioner_batch_size=32`,
`lora_learning_rate=3e-4`, or `probe_train_clips` / `probe_eval_clips`).

Encoder probes (what the features carry, independent of the captioner): after the EAT stage, the event types of
each clip (which of the corpus's 10 types it contains) are predicted by a logistic regression per type from frozen
representations of `probe_train_clips` training clips and scored on `probe_eval_clips` validation clips (macro /
micro F1, per-label and exact-set accuracy, mAP): the input features alone (per-bin mean and std over time), the
pretrained EAT and the same architecture with random weights (mean-pooled patch tokens and CLS); after the captioner,
the same probe of its trained encoder. `--set probe_train_clips=0` skips them.

Outputs in OUTPUT: `results.json` (configuration, device, stage timings, training steps done and whether a
time limit stopped them, the captioner's validation curve with `eval_audio_gain` = mismatched-audio minus
true-audio validation loss, the encoder probes, test and compositional metrics for beam search and CLAP rescoring,
the relative CIDEr-D gain of rescoring, pass/fail against the targets), `report.md` (the same as tables, also printed),
`curves.png`, `model/` (load with `pipeline("audio-captioning", model=OUTPUT/model, trust_remote_code=True)`),
`evaluation/` (per-clip predictions with candidates).
Targets on the test split (issue 7 §2), judged on the CLAP-rescored captions: CIDEr-D >= 1.5, event F1 >= 0.9,
rescoring gain >= +5 % relative CIDEr-D over plain beam search. The rescoring fuses with the CLAP similarity the
captioner's log-probability and each candidate's consensus with 64 captions sampled from the captioner per clip
(`--set pseudo_references=0` turns the samples off; `consensus_scoring`); both weights are chosen on the validation
split first (`llm-aac evaluate --tune-lm-weight validation`), so the test-split figures do not pick their own weights.
`llm-aac rerank-report OUTPUT/evaluation` then separates what CLAP and the samples each contribute.

Stage cache: the corpus, features, EAT, text LM, CLAP, captioner and probes live in `--cache-dir` (default OUTPUT/cache)
under a key of everything that determines them, built under a file lock. A rerun of the same command resumes
after the last finished stage; runs that share a stage (the same seed with other knobs: `run_ablations.py`)
build it once, and `--candidates slam` reuses the baseline's captioner and CLAP (only decoding differs; the knob
enters no cache key).

Commands of at most 10 minutes: `--deadline-minutes M` stops before a stage whose worst case (its time limit
plus the measured-or-estimated overhead) would end after M minutes, with exit status 3; the same command again
resumes there. Or detach the run (`setsid nohup ... &`) and wait for it in a second command.

Without `pip install -e .` (an offline GPU image) the package names are laid out by links under OUTPUT, as
`gpu_finetune_tiny.py` does. Needs torch, transformers, accelerate, peft, datasets, soundfile, soxr,
PyWavelets, aac-metrics 0.5.4; matplotlib for the PNG (optional); Java for METEOR (optional).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import gc
import hashlib
import importlib.util
import json
import logging
import math
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

RECIPES_DIR = os.path.dirname(os.path.abspath(__file__))
PROCESS_START = time.monotonic()  # the deadline counts imports and start-up too
RESULTS_FILE = "results.json"
REPORT_FILE = "report.md"
CURVES_FILE = "curves.png"
MODEL_DIR = "model"
ERROR_LOG = "recipe-error.log"
RUN_MARKER = "recipe_run.json"  # written first: marks a folder this recipe may reuse or replace
DONE_FILE = "_DONE.json"
EXIT_DEADLINE = 3
FORMAT_VERSION = 1

KNOBS: dict[str, tuple[str, ...]] = {
    "features": ("cwt", "fbank", "cwt_seed"),
    "projector": ("linear", "qformer"),
    "training": ("lora", "projector_only"),
    # Decoding only (never in a cache key). single_pass is the baseline: on the CPU demo's captioner SLAM's 7 searches
    # gave 3.1 distinct candidates per clip and a +0.1 % rescoring gain, one 8-beam search's 8 hypotheses +7.2 %
    # (392 test clips); on the full-budget H100 run SLAM's gave 1.38 distinct candidates per clip and +1.2 %.
    "candidates": ("single_pass", "slam"),
    # The captioner's encoder: the EAT stage's weights or the same architecture from random weights, trained with
    # the captioner or frozen (diagnostics of what the pretrained encoder gives the captioner).
    "encoder_init": ("pretrained", "scratch"),
    "encoder_training": ("trained", "frozen"),
}
BASELINE = {name: values[0] for name, values in KNOBS.items()}
# Knobs added after the first GPU runs: only a non-baseline value enters the captioner's cache key, so that the
# baseline (and every configuration that keeps them at the baseline) finds the stages of earlier runs.
ENCODER_KNOBS = ("encoder_init", "encoder_training")
# (metric, threshold, what is judged): issue 7 §2, on the test split.
TARGETS = (
    ("cider_d", 1.5, "CIDEr-D of the CLAP-rescored captions"),
    ("event_f1", 0.9, "event F1 of the CLAP-rescored captions"),
    ("rescoring_gain", 0.05, "relative CIDEr-D gain of CLAP rescoring over plain beam search"),
)
EVALUATION_SPLITS = ("test", "compositional")
# CLAP rescoring's log-probability weight is chosen on the validation clips (never on the splits it is judged on).
LM_WEIGHT_SPLIT = "validation"

# ------------------------------------------------------------------------------------------------ sizes
#
# How the GPU sizes were chosen (one H100; anchors measured on H100 / H200 in docs/benchmarks.md and
# docs/results.md, the rest reasoned from FLOPs):
#
# * Corpus: 20,000 training clips (mean 14.3 s, 5-30 s) = ~80 h of audio, 100,000 caption pairs: about one epoch
#   of captioner training at the throughput below, so pairs are hardly repeated. Synthesis ~8 ms per clip and core
#   including FLAC (benchmarks/bench_synthetic.py) -> ~15 s on 16 cores. Validation 500 (200 of them scored during
#   training, beam 4), test 1,000, compositional 500.
# * Features: CWT on the GPU ~25,000 clips/s (H200, docs/benchmarks.md "Features"), so decoding FLAC, the Arrow
#   writes (float32, ~0.37 MB per CWT clip: ~7.5 GB for 20,500 clips, twice that for fbank) and the statistics
#   pass dominate: ~1 minute on 16 cores.
# * EAT-small (12 x 384, 16 masked views per clip) pretraining: learning-rate (warm-up 10 %, cosine) and EMA
#   (0.999 -> 0.9999; EAT's 100 k-step schedule would leave the teacher at its initialisation) schedules over 3,000
#   steps, stopped after 2,100 (`eat_stop_steps`) or by the 4.5-minute limit, whichever comes first (an H100 alone
#   makes 2,060-2,110 steps in 4.5 minutes at 48 clips per step, measured 2026-11-27). --budget-scale leaves the
#   EAT stage alone: a shorter one gives a useless encoder (below), which would void any reduced-budget comparison;
#   runs sharing a GPU should raise `eat_minutes` (`--set eat_minutes=9`) so the step count decides. The length matters more than anything else in the recipe: the utterance loss stays on a plateau
#   (~2,600-7,000) until a sharp drop near step 1,200 of a 3,000-step schedule (docs/runs/eat_small_*_log_history
#   .json); an encoder stopped before the drop is *worse* for the captioner than a random one (event-type probe,
#   macro F1 from mean-pooled outputs: 0.18 after 1,200 steps on a 1,200-step schedule, 0.62 random, 0.78 after
#   the 2,110 steps here; docs/results.md, diagnosis 2).
# * Text LM (8 x 512 Llama, 64 blocks of 512 tokens per step): the first H100 captioner run trained it at ~10
#   steps/s (700 steps in 81 s with start-up, docs/results.md). In the full-budget H100 run (2026-11-27) its
#   training loss was flat from step ~100 on (0.8 -> 0.73 by step 800; the captioner's LoRA stage trains on the
#   same captions anyway), so 400 steps within 0.8 minutes, and the time saved goes to CLAP.
# * EAT-CLAP: the pretrained EAT-small on whole clips + a 4-layer BERT, 800 steps within 2.7 minutes (retrieval
#   over the 500 validation clips at both ends). Measured on an H100: at 64 clips per step (2026-11-26) the stage
#   took 86 s with its evaluations (~0.12 s per step for ~3 TFLOP of work: launch-bound), reaching validation
#   R@1 0.34 both ways; at 256 clips per step (4x the in-batch negatives InfoNCE learns from; 2026-11-27) 592 steps
#   in 2 minutes reached R@1 0.70 with the loss still falling, and CLAP's share of the rescoring headroom (28 %)
#   is what the rescoring gain target hinges on: 800 steps. Each caption brings one compositional hard negative
#   (a count / order / antonym edit, `DemoSizes.clap_hard_negatives`): on the demo's captioner they raised the
#   rescoring gain from +5.1 % to +9.4 % (docs/results.md); `--set clap_hard_negatives=` trains plain InfoNCE.
# * Captioner (`small` preset, lr 1e-3 for projector and adapter, linear projector 1,024 wide, LoRA r 16 on every
#   linear layer of the LM), batch 96 instead of the preset's 32: the H100 runs of issue 4 made ~6-7 steps/s at
#   batch 32, bound by kernel launches and Python, not by the GPU, so three times the clips per step cost little
#   more time per step. The encoder trains with it at lr 1e-4 (its own optimizer group): at the adapter's 1e-3 it
#   is wrecked within ~200 steps (probe macro F1 0.78 -> 0.22, audio gain 0.004 nats/token), at 1e-4 it sharpens
#   (0.78 -> 0.92, audio gain 0.59, validation CIDEr-D 1.13 after 190 LoRA steps; frozen: 0.36 / 0.72 after 267;
#   diagnosis 2 in docs/results.md). A 100-step projector-only warm-up (~20 s), then 1,600 LoRA steps (4.8 min
#   measured on an H100 at batch 96, 2026-11-26) within 5.2 minutes. The time limits count the validation passes
#   too (loss, mismatched-audio loss and beam-4 captions of 200 clips: ~10 s each, 2 in the warm-up and 5 in the
#   LoRA stage at 400-step spacing), so each stage's limit is its training minutes plus `captioner_eval_minutes`
#   per validation pass; that allowance does not shrink with --budget-scale.
# Training stages: 4.5 + 0.8 + 2.7 + (0.4 + 2 x 0.2) + (5.2 + 5 x 0.2) = 15.0 minutes (<= 15, issue 7 §2); with
# synthesis, features, probes, saving and evaluating 1,500 clips (+ the 500 validation clips that choose the
# rescoring's weights) 22.4 minutes measured on an H100 (2026-11-27, SLAM candidates, no consensus), 25.3 with the
# consensus samples (session 8), ~34 in the worst case (`worst_case_minutes`). The evaluation allowance
# (`UNTIMED_MINUTES`) started from the first run's
# SLAM 7-pass candidates + CLAP (283.5 s for 2,000 clips), whose beam-4 search also gives the plain captions. The
# single-pass candidates (the default) are one 7-beam search, cheaper than SLAM's seven (docs/benchmarks.md,
# `bench_generate.py` `single` vs `slam`), but the plain beam-4 captions then take a decoding pass of their own.
# The 64 captions sampled per clip for consensus rescoring (`pseudo_references`) add one sampling pass of 64 rows per
# clip and its CPU scoring: 534.7 s for the 2,000 clips on an H100 (2026-11-27, session 8), so 4.5 min per 1,000 clips.
# That run's captioner's own samples barely beat beam search as consensus (+1.0 % CIDEr-D on test), while 64 captions
# drawn from the corpus grammar lifted the same candidates +11 %: the samples, not the candidates, fell short. So the
# validation split also tries other sampling temperatures (`pseudo_reference_temperatures`; the weights and the
# temperature are chosen together there): one more sampling pass of its clips each, 1.2 min per 1,000 measured (the
# next H100 run, 608.5 s with 1 / 0.75 / 0.5). There validation CIDEr-D rose as the temperature fell (best pick 2.482 /
# 2.494 / 2.499) and test gained +4.3 % (consensus alone +3.7 %); the grid now goes on below 0.5, keeping 1.
# Every stage keeps its time limit, so a slower card trains fewer steps instead of running late; the results
# record the steps done.

EAT_GPU_OVERRIDES = "ema_decay=0.999,ema_end_decay=0.9999,ema_anneal_end_step={eat_steps}"

SIZES: dict[str, dict[str, Any]] = {
    "gpu": dict(
        train_clips=20_000, validation_clips=500, test_clips=1_000, compositional_clips=500,
        eat_preset="small", eat_config_overrides=EAT_GPU_OVERRIDES, eat_steps=3_000, eat_stop_steps=2_100,
        eat_batch_size=48, eat_max_frames=1024, eat_minutes=4.5,
        text_clips=20_000, vocab_size=2_000, lm_preset="small", lm_steps=400, lm_batch_size=64, lm_minutes=0.8,
        captioner_preset="small", projector_steps=100, projector_learning_rate=1e-3, projector_minutes=0.4,
        lora_steps=1_600, lora_learning_rate=1e-3, lora_minutes=5.2, captioner_eval_minutes=0.2, captioner_batch_size=96,
        encoder_learning_rate=1e-4,
        captioner_eval_steps=400, captioner_eval_clips=200, captioner_eval_beams=4, projector_hidden_size=1024,
        lora_r=16, lora_alpha=32, lora_target_modules="all-linear",
        clap_preset="small", clap_steps=800, clap_learning_rate=3e-4, clap_batch_size=256, clap_minutes=2.7,
        log_points=50, feature_batch_size=64, eval_batch_size=32, pseudo_references=64,
        pseudo_reference_temperatures="1,0.5,0.35,0.25",
        probe_train_clips=2_000, probe_eval_clips=500,
    ),
    # CPU check of the chain (the demo's --quick sizes, plus the compositional split): ~1-2 minutes on 2 cores.
    "smoke": dict(
        train_clips=24, validation_clips=4, test_clips=5, compositional_clips=4,
        eat_steps=4, eat_batch_size=4, eat_max_frames=256, eat_minutes=0.5,
        text_clips=200, vocab_size=400, lm_steps=10, lm_batch_size=8, lm_minutes=0.5,
        projector_steps=6, projector_learning_rate=2e-3, projector_minutes=0.4,
        lora_steps=4, lora_learning_rate=1e-3, lora_minutes=0.4, captioner_eval_minutes=0.05,
        captioner_batch_size=4, captioner_eval_steps=100,
        clap_steps=4, clap_learning_rate=1e-3, clap_batch_size=4, clap_minutes=0.5, pseudo_references=8,
        pseudo_reference_temperatures="1,0.5", probe_train_clips=16, probe_eval_clips=4,
    ),
}
# Sizes of this recipe that are not `DemoSizes` fields (the demo has no such stage): the encoder probes' clips
# (0 training clips: no probe) and the captioner's per-validation-pass allowance (folded into its time limits).
PROBE_FIELDS = ("probe_train_clips", "probe_eval_clips")
RECIPE_FIELDS = ("captioner_eval_minutes", *PROBE_FIELDS)

# Scaled by --budget-scale: step counts, time limits, and training clips (held-out splits keep their size); not the
# EAT stage, whose encoder is useless before its loss drop (see the sizes' notes).
SCALED_FIELDS = ("train_clips", "text_clips", "lm_steps", "lm_minutes", "projector_steps",
                 "projector_minutes", "lora_steps", "lora_minutes", "captioner_eval_steps", "clap_steps", "clap_minutes")
MIN_TRAIN_CLIPS = 16

# Minutes of the work that no time limit bounds, for the deadline check and `run_ablations.py`'s plan. GPU:
# reasoned above (start-up = imports + CUDA context; `stage` = model building, the final evaluation after a
# time limit and saving); smoke: measured on the shared 2-core machine, doubled.
UNTIMED_MINUTES: dict[str, dict[str, float]] = {
    "gpu": dict(startup=0.5, synthesize_per_1k=0.05, features_per_1k=0.06, features_fixed=0.3, stage=0.5,
                captioner_stage=1.0, save=0.25, evaluate_per_1k=4.5, evaluate_fixed=0.4, probe_fixed=0.3,
                probe_per_1k=0.05, resample_per_1k=1.3),
    "smoke": dict(startup=0.2, synthesize_per_1k=0.5, features_per_1k=8.0, features_fixed=0.1, stage=0.3,
                  captioner_stage=0.4, save=0.1, evaluate_per_1k=15.0, evaluate_fixed=0.2, probe_fixed=0.2,
                  probe_per_1k=4.0, resample_per_1k=8.0),
}
# Passes over the probe clips: the EAT stage's probe reads the input features, the pretrained and the randomly
# initialised EAT; the captioner's probe reads its encoder.
PROBE_PASSES = {"probe": 3, "captioner_probe": 1}


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """`["lora_steps=2000", "lm_preset=small"]` -> typed values (ints, floats, strings), checked against
    the size fields."""
    known = _size_field_names() | set(RECIPE_FIELDS)
    values: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set takes FIELD=VALUE, got {item!r}")
        name, text = (part.strip() for part in item.split("=", 1))
        if name not in known:
            raise ValueError(f"--set: unknown size field {name!r}; fields: {', '.join(sorted(known))}")
        try:
            values[name] = int(text)
        except ValueError:
            try:
                values[name] = float(text)
            except ValueError:
                values[name] = text
    return values


def _size_field_names() -> set[str]:
    """`DemoSizes` field names when the package imports, else the fields the recipe's sizes set."""
    try:
        from llm_aac.demo import DemoSizes
    except ImportError:
        return (set(SIZES["gpu"]) | set(SIZES["smoke"])) - set(RECIPE_FIELDS)
    return {f.name for f in dataclasses.fields(DemoSizes)}


def size_values(size: str, budget_scale: float = 1.0, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The recipe's sizes (`DemoSizes` fields and `PROBE_FIELDS`) for `size` (gpu | smoke), scaled and overridden.

    `projector_minutes` / `lora_minutes` (also when overridden) are training minutes: the returned time limits add
    `captioner_eval_minutes` for each validation pass of the stage."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {sorted(SIZES)}")
    if not (isinstance(budget_scale, (int, float)) and math.isfinite(budget_scale) and budget_scale > 0):
        raise ValueError(f"budget scale must be a positive number, got {budget_scale!r}")
    values = dict(SIZES[size])
    for name in SCALED_FIELDS:
        if name not in values:
            continue
        if name.endswith("_minutes"):
            values[name] = round(values[name] * budget_scale, 3)
        else:
            floor = MIN_TRAIN_CLIPS if name.endswith("_clips") else 1
            values[name] = max(floor, int(round(values[name] * budget_scale)))
    values.update(overrides or {})
    train_probe, eval_probe = (values.get(name, 0) for name in PROBE_FIELDS)
    if not (isinstance(train_probe, int) and isinstance(eval_probe, int) and (train_probe == 0 or
                                                                            (train_probe >= 2 and eval_probe >= 1))):
        raise ValueError(f"probe_train_clips must be 0 (no encoder probe) or >= 2 with probe_eval_clips >= 1, got "
                         f"{train_probe!r} and {eval_probe!r}")
    if "{" in values.get("eat_config_overrides", ""):
        values["eat_config_overrides"] = values["eat_config_overrides"].format(**values)
    # The captioner stages' limits: training minutes + an unscaled allowance per validation pass (eval on start,
    # every `captioner_eval_steps`, and at the last step).
    allowance = values.pop("captioner_eval_minutes", 0.0)
    for stage in ("projector", "lora"):
        passes = 2 + (values[f"{stage}_steps"] - 1) // max(1, values["captioner_eval_steps"])
        values[f"{stage}_minutes"] = round(values[f"{stage}_minutes"] + passes * allowance, 3)
    return values


def stage_minutes(values: Mapping[str, Any], size: str) -> dict[str, float]:
    """Worst-case minutes of each stage: its time limit plus the untimed work (`UNTIMED_MINUTES`)."""
    from llm_aac.demo import parse_temperatures

    untimed = UNTIMED_MINUTES[size]
    corpus_clips = sum(values[k] for k in ("train_clips", "validation_clips", "test_clips", "compositional_clips")
                       if k in values) / 1000
    featurized = (values["train_clips"] + values["validation_clips"]) / 1000
    # the validation clips too: the rescoring's log-probability weight is chosen on them (`LM_WEIGHT_SPLIT`)
    evaluated = (values["test_clips"] + values.get("compositional_clips", 0) + values["validation_clips"]) / 1000
    # each further temperature of the consensus captions samples the validation clips once more
    temperatures = len(parse_temperatures(values.get("pseudo_reference_temperatures", "1")))
    resampled = (temperatures - 1) * values["validation_clips"] / 1000 if values.get("pseudo_references") else 0.0
    probed = (min(values.get("probe_train_clips", 0), values["train_clips"]) +
              min(values.get("probe_eval_clips", 0), values["validation_clips"])) / 1000
    probes = {name: (untimed["probe_fixed"] + untimed["probe_per_1k"] * passes * probed
                     if values.get("probe_train_clips", 0) > 0 else 0.0) for name, passes in PROBE_PASSES.items()}
    return {
        "synthesize": untimed["stage"] + untimed["synthesize_per_1k"] * corpus_clips,
        "features": untimed["features_fixed"] + untimed["features_per_1k"] * featurized,
        "eat": values["eat_minutes"] + untimed["stage"],
        "probe": probes["probe"],
        "lm": values["lm_minutes"] + untimed["stage"],
        "clap": values["clap_minutes"] + untimed["stage"],
        "captioner": values["projector_minutes"] + values["lora_minutes"] + untimed["captioner_stage"],
        "captioner_probe": probes["captioner_probe"],
        "save": untimed["save"],
        "evaluate": untimed["evaluate_fixed"] + untimed["evaluate_per_1k"] * evaluated
        + untimed["resample_per_1k"] * resampled,
    }


# Stages that `--skip-evaluation` leaves out (CLAP only rescores the evaluation's candidates).
EVALUATION_STAGES = ("clap", "save", "evaluate")


def worst_case_minutes(values: Mapping[str, Any], size: str, skip_evaluation: bool = False) -> float:
    """Worst-case minutes of a whole run that builds every stage itself (without the evaluation stages when
    `skip_evaluation`)."""
    stages = stage_minutes(values, size)
    return UNTIMED_MINUTES[size]["startup"] + sum(minutes for name, minutes in stages.items()
                                                  if not (skip_evaluation and name in EVALUATION_STAGES))


def knob_option(name: str) -> str:
    """The command-line option of a knob (`encoder_init` -> `--encoder-init`)."""
    return "--" + name.replace("_", "-")


def run_label(knobs: Mapping[str, str]) -> str:
    """`baseline`, or the knob values that differ from it (e.g. `fbank`, `qformer+slam`)."""
    changed = [knobs[name] for name in KNOBS if knobs.get(name, BASELINE[name]) != BASELINE[name]]
    return "+".join(changed) if changed else "baseline"


# ------------------------------------------------------------------------------------------- stage cache


class DeadlineReached(Exception):
    """A stage would end after the run's deadline; nothing of it was started."""


class Deadline:
    def __init__(self, minutes: float | None, started: float | None = None):
        self.minutes = minutes
        self.started = time.monotonic() if started is None else started

    def elapsed_minutes(self) -> float:
        return (time.monotonic() - self.started) / 60

    def check(self, stage: str, needed_minutes: float) -> None:
        if self.minutes is None:
            return
        elapsed = self.elapsed_minutes()
        if elapsed + needed_minutes > self.minutes:
            raise DeadlineReached(
                f"stopped before '{stage}': {elapsed:.1f} min elapsed + up to {needed_minutes:.1f} min for it > the "
                f"{self.minutes:.1f}-minute deadline; run the same command again to continue from here"
            )


@dataclasses.dataclass
class CachedStage:
    folder: str
    result: str
    extra: Any
    seconds: float
    reused: bool


class StageCache:
    """Stage outputs under `root/<name>-<hash of settings>/`, built once under an exclusive file lock.

    A finished entry holds `_DONE.json` (settings, result path relative to the entry, build seconds); an entry
    without it (a build that failed or was killed) is removed and rebuilt. Processes that need an entry another
    one is building wait on its lock, then reuse it.
    """

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        os.makedirs(self.root, exist_ok=True)

    @staticmethod
    def key(name: str, settings: Mapping[str, Any]) -> str:
        digest = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]
        return f"{name}-{digest}"

    def is_built(self, name: str, settings: Mapping[str, Any]) -> bool:
        return os.path.isfile(os.path.join(self.root, self.key(name, settings), DONE_FILE))

    def get_or_build(self, name: str, settings: Mapping[str, Any], build: Callable[[str], Any], *,
                     before_build: Callable[[], None] | None = None) -> CachedStage:
        """`build(folder)` returns a path inside `folder`, or `(path, extra JSON-able data)`."""
        import fcntl

        folder = os.path.join(self.root, self.key(name, settings))
        with open(folder + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                done = os.path.join(folder, DONE_FILE)
                if os.path.isfile(done):
                    with open(done, encoding="utf-8") as f:
                        record = json.load(f)
                    return CachedStage(folder, os.path.join(folder, record["result"]), record.get("extra"),
                                       record["seconds"], reused=True)
                if before_build is not None:
                    before_build()
                shutil.rmtree(folder, ignore_errors=True)
                os.makedirs(folder)
                start = time.monotonic()
                built = build(folder)
                seconds = time.monotonic() - start
                path, extra = built if isinstance(built, tuple) else (built, None)
                record = {"name": name, "settings": settings, "result": os.path.relpath(path, folder),
                          "extra": extra, "seconds": round(seconds, 1),
                          "finished": datetime.datetime.now().isoformat(timespec="seconds")}
                with open(done + ".tmp", "w", encoding="utf-8") as f:
                    json.dump(record, f, indent=1, default=str)
                os.replace(done + ".tmp", done)
                return CachedStage(folder, path, extra, seconds, reused=False)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


# ----------------------------------------------------------------------------------------- encoder probes

# What each probed representation is, in report order.
PROBE_REPRESENTATIONS = {
    "input_features": "input features: per-bin mean and std over time (no encoder)",
    "pretrained_eat": "EAT after the EAT stage",
    "random_eat": "the same EAT architecture with random weights",
    "captioner_encoder": "the captioner's encoder after captioner training",
}
PROBE_POOLINGS = ("mean", "cls")
PROBE_FILE = "encoder_probe.json"


def probe_encoders(folder: str, features_dir: str, encoders: Mapping[str, tuple[str, bool]], *, train_clips: int,
                   eval_clips: int, seed: int, device: str, batch_size: int,
                   with_input_features: bool = False) -> tuple[str, dict]:
    """Linear probes of the clips' event types (which of the corpus's event types each clip contains) on frozen
    representations: the first `train_clips` training and `eval_clips` validation clips of `features_dir` (the
    precomputed features the captioner trains on), an L2-regularised logistic regression per event type
    (`eval/linear_probe.py`, weight decay picked on held-out training clips), scored on the validation clips.

    `encoders`: name -> (EAT or captioner folder, whether to replace its weights by a random initialisation of the
    same architecture, seeded with `seed`), each read with the first folder's normalisation, mean-pooled over the
    patch tokens and as the CLS token. `with_input_features` adds the no-encoder reference (the first folder's
    normalised features, per-bin mean and std over time). Writes `folder/encoder_probe.json`; returns its path and
    contents.
    """
    import numpy as np
    import torch

    from llm_aac.eval.audio_classification import encode_targets, synthetic_class_ids
    from llm_aac.eval.linear_probe import (
        extract_embeddings,
        load_audio_encoder,
        probe_embeddings,
        time_statistics_embeddings,
    )
    from llm_aac.processing.precompute import load_precomputed
    from llm_aac.processing.synthetic import EVENT_TYPES
    from modeling_llm_aac import EATModel

    started = time.monotonic()
    data = {}
    for split, limit in (("train", train_clips), ("validation", eval_clips)):
        dataset = load_precomputed(os.path.join(features_dir, split))
        dataset = dataset.select(range(min(limit, len(dataset))))
        labels = synthetic_class_ids(dataset.select_columns(["event_labels"])["event_labels"], f"{split} features")
        data[split] = (dataset, encode_targets(labels, len(EVENT_TYPES), multi_label=True))
    (train, train_targets), (validation, eval_targets) = data["train"], data["validation"]
    representations: dict[str, Any] = {}

    def probe(name: str, source: str, pooled: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> None:
        representations[name] = {"description": PROBE_REPRESENTATIONS.get(name, name), "source": source, "poolings": {
            pooling: probe_embeddings(train_x, train_targets, eval_x, eval_targets, multi_label=True,
                                      label_names=EVENT_TYPES, seed=seed, device=device)
            for pooling, (train_x, eval_x) in pooled.items()}}

    reference_extractor = None
    for name, (path, random_init) in encoders.items():
        encoder, extractor = load_audio_encoder(path, device=device)
        reference_extractor = reference_extractor or extractor
        if random_init:
            torch.manual_seed(seed)
            encoder = EATModel(encoder.config).to(encoder.device).eval()
        embedded = [extract_embeddings(encoder, reference_extractor, dataset, poolings=PROBE_POOLINGS,
                                       batch_size=batch_size, progress=False) for dataset in (train, validation)]
        probe(name, path, {p: (embedded[0][p], embedded[1][p]) for p in PROBE_POOLINGS})
        max_frames = encoder.config.max_frames
        del encoder
    if with_input_features and reference_extractor is not None:
        statistics = [time_statistics_embeddings(reference_extractor, dataset, batch_size=batch_size,
                                                 max_frames=max_frames) for dataset in (train, validation)]
        probe("input_features", features_dir, {"time statistics": tuple(statistics)})
    order = list(PROBE_REPRESENTATIONS)
    result = {
        "train_split": "train", "eval_split": "validation", "train_clips": len(train), "eval_clips": len(validation),
        "labels": list(EVENT_TYPES), "train_label_frequency": [round(float(f), 4) for f in train_targets.mean(axis=0)],
        "representations": dict(sorted(representations.items(),
                                       key=lambda item: order.index(item[0]) if item[0] in order else len(order))),
        "seconds": round(time.monotonic() - started, 1),
    }
    path = os.path.join(folder, PROBE_FILE)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    return path, result


def probe_summary(eat_probe: Mapping[str, Any] | None, captioner_probe: Mapping[str, Any] | None,
                  encoder_init: str) -> dict[str, float | None]:
    """Macro F1 of the mean-pooled probes: the input features, the encoder the captioner started from (pretrained
    or random, as `encoder_init` chose) and the captioner's encoder after training."""
    def macro_f1(probe: Mapping[str, Any] | None, name: str) -> float | None:
        poolings = ((probe or {}).get("representations", {}).get(name) or {}).get("poolings", {})
        block = poolings.get("mean") or poolings.get("time statistics")
        return None if block is None else block.get("macro_f1")

    start = "random_eat" if encoder_init == "scratch" else "pretrained_eat"
    return {"input_features": macro_f1(eat_probe, "input_features"),
            "pretrained_eat": macro_f1(eat_probe, "pretrained_eat"), "random_eat": macro_f1(eat_probe, "random_eat"),
            "captioner_start": macro_f1(eat_probe, start),
            "captioner_end": macro_f1(captioner_probe, "captioner_encoder")}


PROBE_COLUMNS = (("macro F1", "macro_f1"), ("micro F1", "micro_f1"), ("label acc.", "label_accuracy"),
                 ("exact set", "exact_match"), ("mAP", "map"))


def probe_table(probes: Sequence[Mapping[str, Any] | None]) -> list[str]:
    """Markdown rows of `probe_encoders` results: one per representation and pooling."""
    lines = ["| representation | pooling | dim | " + " | ".join(title for title, _ in PROBE_COLUMNS) + " |",
             "|---" * (len(PROBE_COLUMNS) + 3) + "|"]
    for probe in probes:
        for name, block in (probe or {}).get("representations", {}).items():
            for pooling, metrics in block["poolings"].items():
                cells = " | ".join(_cell(metrics.get(key)) for _, key in PROBE_COLUMNS)
                lines.append(f"| {block['description']} | {pooling} | {metrics.get('dim')} | {cells} |")
    return lines


def print_probe(probe: Mapping[str, Any] | None) -> None:
    if probe:
        print(f"  probe of the event types ({probe['train_clips']} train / {probe['eval_clips']} validation clips, "
              f"{probe['seconds']:.1f} s):\n  " + "\n  ".join(probe_table([probe])), flush=True)


# ------------------------------------------------------------------------------------------------ results


def _flatten_system(scored: Mapping[str, Any]) -> dict[str, Any]:
    caption = scored["caption_metrics"]
    flat: dict[str, Any] = dict(caption["scores"])
    flat["num_blank_predictions"] = caption.get("num_blank_predictions")
    if caption.get("skipped"):
        flat["skipped_metrics"] = dict(caption["skipped"])
    for key, value in (scored.get("semantic_accuracy") or {}).items():
        flat[key] = value
    return flat


def relative_gain(rescored: float | None, plain: float | None) -> float | None:
    if rescored is None or plain is None or plain <= 0:
        return None
    return (rescored - plain) / plain


def summarize_evaluation(evaluation: Mapping[str, Any]) -> dict[str, Any]:
    """Per split: the two systems' flat metrics and the relative CIDEr-D gain of rescoring."""
    splits = {}
    for split, info in evaluation["splits"].items():
        systems = {system: _flatten_system(scored) for system, scored in info["systems"].items()}
        entry: dict[str, Any] = {"num_clips": info["num_clips"], **systems}
        if "beam_search" in systems and "clap_rescoring" in systems:
            entry["rescoring_gain_cider_d"] = relative_gain(systems["clap_rescoring"].get("cider_d"),
                                                            systems["beam_search"].get("cider_d"))
        headroom = info["systems"].get("clap_rescoring", {}).get("candidate_headroom")
        if headroom:
            entry["candidate_headroom"] = dict(headroom)
        splits[split] = entry
    return splits


def judge_targets(splits: Mapping[str, Any]) -> list[dict[str, Any]]:
    test = splits.get("test", {})
    rescored = test.get("clap_rescoring", {})
    values = {"cider_d": rescored.get("cider_d"), "event_f1": rescored.get("event_f1"),
              "rescoring_gain": test.get("rescoring_gain_cider_d")}
    return [{"name": name, "description": description, "value": values[name], "target": threshold,
             "passed": values[name] is not None and values[name] >= threshold}
            for name, threshold, description in TARGETS]


def _history(path: str) -> list[dict]:
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _steps_done(history: Sequence[dict]) -> int:
    return max((int(e["step"]) for e in history if "step" in e), default=0)


def eat_steps_text(sizes) -> str:
    if sizes.eat_stop_steps and sizes.eat_stop_steps < sizes.eat_steps:
        return f"{sizes.eat_stop_steps} steps of a {sizes.eat_steps}-step schedule"
    return f"{sizes.eat_steps} steps"


def training_summary(paths: Mapping[str, str], values: Mapping[str, Any], training: str) -> tuple[dict, dict]:
    """(per training stage: steps planned / done and whether a time limit stopped it; the log histories)."""
    # A stage that did not run (no CLAP with --skip-evaluation: its path is None) has no history and no entry.
    stages = {"EAT pretraining": ("eat", "eat_steps"), "text LM": ("lm", "lm_steps"), "EAT-CLAP": ("clap", "clap_steps"),
              "captioner": ("captioner", None)}
    histories = {name: _history(os.path.join(paths[key], "log_history.json"))
                 for name, (key, _) in stages.items() if paths.get(key)}
    with open(os.path.join(paths["captioner"], "summary.json"), encoding="utf-8") as f:
        captioner = json.load(f)
    planned = {name: values[steps] for name, (_, steps) in stages.items() if steps and name in histories}
    if values.get("eat_stop_steps") and "EAT pretraining" in planned:
        planned["EAT pretraining"] = min(values["eat_stop_steps"], values["eat_steps"])
    summary: dict[str, Any] = {}
    for name, steps in planned.items():
        done = _steps_done(histories[name])
        summary[name] = {"steps_planned": steps, "steps_done": done, "stopped_by_time_limit": done < steps}
    if "EAT pretraining" in summary:
        summary["EAT pretraining"]["schedule_steps"] = values["eat_steps"]
    from llm_aac.demo import captioner_stage_budgets

    stage_steps = captioner_stage_budgets(values["projector_steps"], values["lora_steps"], training)
    for stage, steps in stage_steps.items():
        info = captioner["stages"].get(stage, {})
        done = max((e.get("stage_step", 0) for e in captioner["evaluations"] if e["stage"] == stage), default=0)
        summary[f"captioner {stage}"] = {"steps_planned": steps, "steps_done": done,
                                         "stopped_by_time_limit": done < steps, "seconds": info.get("seconds")}
    return summary, histories


def audio_gain_curve(captioner_dir: str) -> list[dict]:
    with open(os.path.join(captioner_dir, "summary.json"), encoding="utf-8") as f:
        evaluations = json.load(f)["evaluations"]
    keys = ("stage", "step", "stage_step", "eval_loss", "eval_mismatched_audio_loss", "eval_audio_gain",
            "eval_cider_d", "eval_bleu_4", "eval_rouge_l")
    return [{k: e[k] for k in keys if k in e} for e in evaluations]


# Panels of curves.png: (title, stage, logged keys).
CURVE_PANELS = (
    ("EAT pretraining loss", "EAT pretraining", ("loss", "frame_loss", "utterance_loss")),
    ("text LM loss", "text LM", ("loss", "eval_loss")),
    ("EAT-CLAP", "EAT-CLAP", ("loss", "eval_loss", "eval_a2t_r1", "eval_t2a_r1", "eval_hard_negative_accuracy")),
    ("captioner loss", "captioner", ("loss", "eval_loss", "eval_mismatched_audio_loss")),
    ("captioner audio gain (nats/token)", "captioner", ("eval_audio_gain",)),
    ("captioner validation CIDEr-D", "captioner", ("eval_cider_d",)),
)


def plot_recipe_curves(histories: Mapping[str, Sequence[dict]], path: str, title: str) -> str | None:
    """One panel per `CURVE_PANELS` entry that has data; None when matplotlib is missing or nothing was logged."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logging.getLogger("synthetic_gpu").warning("matplotlib is missing: no %s", path)
        return None
    from llm_aac.train.plot_curves import curve

    panels = [(t, stage, [k for k in keys if curve(histories.get(stage, []), k)[0]]) for t, stage, keys in CURVE_PANELS]
    panels = [p for p in panels if p[2]]
    if not panels:
        return None
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.6 * rows), squeeze=False)
    for axis in axes.flat[len(panels):]:
        axis.set_visible(False)
    for axis, (panel_title, stage, keys) in zip(axes.flat, panels):
        for key in keys:
            steps, values = curve(histories[stage], key)
            axis.plot(steps, values, label=key, linewidth=1.2, marker="o" if len(steps) < 12 else None, markersize=3)
        if stage == "captioner":
            boundaries = [e["step"] for e in histories[stage] if e.get("stage") == "lora" and e.get("stage_step") == 0]
            for step in boundaries[:1]:
                axis.axvline(step, color="grey", linestyle=":", linewidth=1)
        axis.set_title(panel_title)
        axis.set_xlabel("optimizer step")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _cell(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


REPORT_COLUMNS = (("CIDEr-D", "cider_d"), ("METEOR", "meteor"), ("BLEU-4", "bleu_4"), ("ROUGE-L", "rouge_l"),
                  ("event F1", "event_f1"), ("count acc.", "count_accuracy"), ("order acc.", "order_accuracy"),
                  ("blank", "num_blank_predictions"))


def markdown_report(results: Mapping[str, Any]) -> str:
    config = results["config"]
    lines = [f"# Synthetic recipe run `{results['label']}` (seed {config['seed']})", "",
             f"{results['device']}, {results['date']}, `{results['command']}`", "",
             "Knobs: " + ", ".join(f"{k} {config.get(k, BASELINE[k])}" for k in KNOBS) +
             f"; size {config['size']}, budget scale {config['budget_scale']}", ""]
    if results.get("skipped_stages"):
        lines += [f"Optional stages left out to keep the deadline: {', '.join(results['skipped_stages'])}.", ""]
    for split, info in results["splits"].items():
        lines += [f"## {split} ({info['num_clips']} clips)", "",
                  "| system | " + " | ".join(title for title, _ in REPORT_COLUMNS) + " |",
                  "|---" * (len(REPORT_COLUMNS) + 1) + "|"]
        systems = (("beam_search", "beam search (beam 4)"),
                   ("clap_rescoring", f"CLAP rescoring ({config['candidates']})"))
        for system, name in systems:
            if system in info:
                cells = " | ".join(_cell(info[system].get(key)) for _, key in REPORT_COLUMNS)
                lines.append(f"| {name} | {cells} |")
        gain = info.get("rescoring_gain_cider_d")
        lines += ["", f"Rescoring gain (relative CIDEr-D): {'-' if gain is None else f'{100 * gain:+.1f} %'}", ""]
        if info.get("candidate_headroom"):
            from llm_aac.eval.candidate_headroom import format_headroom

            lines += [format_headroom(info["candidate_headroom"]), ""]
        skipped = info.get("beam_search", {}).get("skipped_metrics")
        if skipped:
            lines += [f"Skipped metrics: {skipped}", ""]
    lines += ["## Targets (test split)", ""]
    if not config.get("evaluated", True):
        lines += ["Not evaluated: a diagnostic run (--skip-evaluation) stops after the captioner and its probe.", ""]
    for target in results["targets"]:
        lines.append(f"- {'PASS' if target['passed'] else 'FAIL'}: {target['description']} = {_cell(target['value'])} "
                     f"(target >= {target['target']})")
    lines += ["", "## Captioner validation (audio gain = mismatched-audio minus true-audio loss)", "",
              "| stage | step | val loss | mismatched-audio loss | audio gain | CIDEr-D |", "|---|---|---|---|---|---|"]
    for e in results["audio_gain_curve"]:
        lines.append(f"| {e['stage']} | {e['step']} | {_cell(e.get('eval_loss'))} | "
                     f"{_cell(e.get('eval_mismatched_audio_loss'))} | {_cell(e.get('eval_audio_gain'))} | "
                     f"{_cell(e.get('eval_cider_d'))} |")
    probes = results.get("encoder_probe") or {}
    if probes.get("eat_stage") or probes.get("captioner"):
        first = probes.get("eat_stage") or probes["captioner"]
        lines += ["", f"## Encoder probe (logistic regression per event type: {first['train_clips']} training clips -> "
                      f"{first['eval_clips']} validation clips)", "", *probe_table([probes.get("eat_stage"),
                                                                                   probes.get("captioner")]),
                  "", "Macro F1 over the event types, decisions at probability 0.5; label acc. = right (clip, type) "
                      "decisions; exact set = clips whose whole set of types is right. The captioner started from "
                      f"the {'random' if config.get('encoder_init') == 'scratch' else 'pretrained'} EAT."]
    for name, info in results["training"].items():
        lines.append(f"| {name} | {info['steps_planned']} | {info['steps_done']} | {info['stopped_by_time_limit']} |")
    lines += ["", "## Wall time per stage", "", "| stage | seconds | reused from cache (built in s) |", "|---|---|---|"]
    for stage in results["stages"]:
        reused = f"yes ({stage['built_seconds']:.1f})" if stage["reused"] else ""
        lines.append(f"| {stage['name']} | {stage['seconds']:.1f} | {reused} |")
    lines.append(f"| **total** | **{results['total_seconds']:.1f}** | |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ the run


def _free_accelerator_memory() -> None:
    gc.collect()
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def _caption_file_identity(path: str) -> dict:
    stat = os.stat(path)
    return {"path": os.path.abspath(path), "bytes": stat.st_size, "mtime": int(stat.st_mtime)}


def run_recipe(args: argparse.Namespace, output: str) -> dict:
    """Every stage of one configuration; returns the results also written to OUTPUT/results.json.
    Raises `DemoStageError` (its `__cause__` a `DeadlineReached` when the deadline stopped it)."""
    from llm_aac import demo

    all_values = size_values(args.size, args.budget_scale, args.overrides)
    sizes = demo.DemoSizes(**{k: v for k, v in all_values.items() if k not in PROBE_FIELDS})
    values = dataclasses.asdict(sizes)  # every field, defaults included: cache keys and the results
    probe_sizes = {name: all_values[name] for name in PROBE_FIELDS}
    probing = probe_sizes["probe_train_clips"] > 0
    knobs = {name: getattr(args, name) for name in KNOBS}
    label = args.label or run_label(knobs)
    choices = demo.RecipeChoices(
        feature_type=args.features, projector_type=args.projector, training=args.training, candidates=args.candidates,
        encoder_init=args.encoder_init, encoder_training=args.encoder_training,
        device=args.device, dataloader_workers=args.dataloader_workers, progress_bars=not args.no_progress,
        lm_caption_files=tuple(os.path.abspath(p) for p in args.lm_caption_file),
    )
    choices.check()
    feature_choices = dataclasses.replace(choices, device=args.feature_device)
    deadline = Deadline(args.deadline_minutes, started=PROCESS_START)
    cache = StageCache(args.cache_dir or os.path.join(output, "cache"))
    worst = stage_minutes({**values, **probe_sizes}, args.size)
    runner = demo.StageRunner(total=8 + 2 * probing - 3 * args.skip_evaluation)
    records: list[dict] = []

    skipped: list[str] = []

    def stage(name: str, description: str, worst_key: str, cache_name: str | None, settings: Mapping | None,
              build: Callable[[str], Any], *, optional: bool = False) -> CachedStage | None:
        """Runs (or reuses) a stage; an `optional` one (a diagnostic the results can do without) that the deadline
        stops is left out (None) instead of stopping the run."""
        if optional and cache_name is not None and not cache.is_built(cache_name, settings):
            try:
                deadline.check(name, worst[worst_key])
            except DeadlineReached as reason:
                print(f"\nskipped '{name}' (optional): {reason}", flush=True)
                skipped.append(name)
                return None

        def step():
            if cache_name is None:
                deadline.check(name, worst[worst_key])
                start = time.monotonic()
                return CachedStage(output, build(output), None, time.monotonic() - start, reused=False)
            # an optional stage passed its deadline check above: once started, it finishes
            return cache.get_or_build(cache_name, settings, build,
                                      before_build=None if optional else lambda: deadline.check(name, worst[worst_key]))

        done = runner.run(name, description, step)
        _free_accelerator_memory()
        if done.reused:
            print(f"  reused {os.path.basename(done.folder)} (built in {done.seconds:.1f} s)", flush=True)
        records.append({"name": name, "seconds": round(runner.done[-1].seconds, 1), "reused": done.reused,
                        "built_seconds": round(done.seconds, 1),
                        "cache_entry": os.path.basename(done.folder) if cache_name else None})
        return done

    print(f"synthetic recipe '{label}': {knobs}, seed {args.seed}, size {args.size} x {args.budget_scale}, device "
          f"{args.device} (features on {args.feature_device}), worst case "
          f"{worst_case_minutes({**values, **probe_sizes}, args.size, args.skip_evaluation):.1f} "
          f"min{'' if args.deadline_minutes is None else f', deadline {args.deadline_minutes:.1f} min'}", flush=True)
    started = time.monotonic()
    corpus_settings = {"corpus_seed": args.corpus_seed, **{k: values[k] for k in
                       ("train_clips", "validation_clips", "test_clips", "compositional_clips")}}
    corpus = stage("synthesize corpus",
                   f"{sizes.train_clips} train, {sizes.validation_clips} validation, {sizes.test_clips} test, "
                   f"{sizes.compositional_clips} compositional clips", "synthesize", "corpus", corpus_settings,
                   lambda folder: demo.synthesize(folder, sizes, args.corpus_seed, args.workers))
    feature_settings = {**corpus_settings, "feature_type": args.features}
    features = stage("features", f"{args.features} features of the train and validation clips on {args.feature_device}",
                     "features", f"features-{args.features}", feature_settings,
                     lambda folder: demo.precompute(folder, corpus.result, args.workers,
                                                    batch_size=sizes.feature_batch_size, choices=feature_choices))
    eat_settings = {**feature_settings, "seed": args.seed, **{k: v for k, v in values.items() if k.startswith("eat_")},
                    "log_points": sizes.log_points}
    encoder = stage("EAT pretraining", f"EAT-{sizes.eat_preset}, {eat_steps_text(sizes)} or {sizes.eat_minutes} min",
                    "eat", f"eat-{args.features}", eat_settings,
                    lambda folder: demo.pretrain_encoder(folder, features.result, sizes, args.seed, choices))
    eat_probe = None
    probe_options = dict(train_clips=probe_sizes["probe_train_clips"], eval_clips=probe_sizes["probe_eval_clips"],
                         seed=args.seed, device=args.device, batch_size=sizes.feature_batch_size)
    if probing:
        eat_probe = stage(
            "encoder probe", f"event-type probes of the input features and of the pretrained and a random-init EAT "
            f"({probe_sizes['probe_train_clips']} train / {probe_sizes['probe_eval_clips']} validation clips)",
            "probe", f"probe-{args.features}", {**eat_settings, **probe_sizes},
            lambda folder: probe_encoders(
                folder, features.result,
                {"pretrained_eat": (encoder.result, False), "random_eat": (encoder.result, True)},
                with_input_features=True, **probe_options))
        print_probe(eat_probe.extra)
    lm_settings = {"corpus_seed": args.corpus_seed, "seed": args.seed, "text_clips": sizes.text_clips,
                   "vocab_size": sizes.vocab_size, "log_points": sizes.log_points,
                   **{k: v for k, v in values.items() if k.startswith("lm_")},
                   "caption_files": [_caption_file_identity(p) for p in choices.lm_caption_files]}
    language_model = stage(
        "tokenizer + text LM", f"{sizes.lm_preset} Llama, {sizes.lm_steps} steps or {sizes.lm_minutes} min", "lm",
        "lm", lm_settings,
        lambda folder: demo.pretrain_language_model(folder, sizes, args.seed, choices, corpus_seed=args.corpus_seed))
    clap_settings = {**eat_settings, **clap_cache_values(values), "validation_clips": sizes.validation_clips}
    clap = None
    if not args.skip_evaluation:  # the CLAP scorer only rescores the evaluation's candidates
        clap = stage("CLAP", f"EAT-CLAP ({sizes.clap_preset}), {sizes.clap_steps} steps or {sizes.clap_minutes} min",
                     "clap", f"clap-{args.features}", clap_settings,
                     lambda folder: demo.train_clap_scorer(folder, features.result, encoder.result, sizes, args.seed,
                                                           choices))
    captioner_fields = ("projector_steps", "projector_learning_rate", "projector_minutes", "lora_steps",
                        "lora_learning_rate", "lora_minutes", "captioner_batch_size", "captioner_eval_steps",
                        "captioner_eval_clips", "captioner_eval_beams", "captioner_preset", "projector_hidden_size",
                        "lora_r", "lora_alpha", "lora_target_modules", "validation_clips")
    # A separate encoder learning rate and duration-grouped batches enter the key only when set, so that earlier
    # captioners keep theirs.
    optional = {k: values[k] for k in ("encoder_learning_rate", "captioner_group_by_duration") if values.get(k)}
    captioner_name, captioner_settings = captioner_cache_entry(
        knobs, {"eat": eat_settings, "lm": lm_settings, "projector": args.projector, "training": args.training,
                **{k: values[k] for k in captioner_fields}, **optional})
    steps = (f"{sizes.projector_steps} projector-only steps, then {sizes.lora_steps} with LoRA"
             if args.training == "lora" else f"{sizes.projector_steps + sizes.lora_steps} projector-only steps")
    encoder_role = (f"the {'pretrained' if args.encoder_init == 'pretrained' else 'randomly initialised'} encoder "
                    f"{'trains with them' if args.encoder_training == 'trained' else 'stays frozen'}")
    captioner = stage("captioner", f"{args.projector} projector, {steps}; {encoder_role}", "captioner",
                      captioner_name, captioner_settings,
                      lambda folder: demo.train_captioner(folder, features.result, encoder.result,
                                                          language_model.result, sizes, args.seed, choices))
    captioner_probe = None
    if probing:
        captioner_probe = stage(
            "captioner encoder probe", "the same event-type probe of the captioner's trained encoder",
            "captioner_probe", "captioner-probe", {"captioner": os.path.basename(captioner.folder), **probe_sizes},
            lambda folder: probe_encoders(folder, features.result, {"captioner_encoder": (captioner.result, False)},
                                          **probe_options), optional=True)
        print_probe(captioner_probe.extra if captioner_probe else None)
    model_dir = evaluation_dir = None
    splits: dict[str, Any] = {}
    if not args.skip_evaluation:
        model_dir, evaluation_dir = os.path.join(output, MODEL_DIR), os.path.join(output, "evaluation")
        stage("save model folder", f"captioner + CLAP scorer -> {model_dir}", "save", None, None,
              lambda _: demo.save_model_folder(model_dir, captioner.result, clap.result, choices, sizes))

        def evaluate_and_keep_weights(_):
            summary = demo.evaluate(model_dir, output, corpus.result, sizes, choices, splits=EVALUATION_SPLITS,
                                    tune_lm_weight_on=LM_WEIGHT_SPLIT)
            demo.keep_tuned_weights(model_dir, summary)  # the saved pipeline picks as the evaluation did
            return summary

        evaluation = stage(
            "caption + evaluate",
            f"{' + '.join(EVALUATION_SPLITS)} splits: beam search vs CLAP rescoring ({args.candidates}"
            + (f", consensus with {sizes.pseudo_references} samples" if sizes.pseudo_references else "") + ")",
            "evaluate", None, None, evaluate_and_keep_weights)
        # The evaluation summary is the stage's return value (not a path): `stage` stored it as the result.
        splits = summarize_evaluation(evaluation.result)
    total_seconds = time.monotonic() - started

    targets = judge_targets(splits)
    paths = {"eat": os.path.dirname(encoder.result), "lm": language_model.result,
             "clap": clap.result if clap else None, "captioner": captioner.result}
    training, histories = training_summary(paths, values, args.training)
    results = {
        "format": FORMAT_VERSION,
        "label": label,
        "config": {**knobs, "seed": args.seed, "corpus_seed": args.corpus_seed, "size": args.size,
                   "budget_scale": args.budget_scale, "overrides": dict(args.overrides),
                   "lm_caption_files": list(choices.lm_caption_files), "evaluated": not args.skip_evaluation},
        "device": _device_name(args.device),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([os.path.relpath(sys.argv[0]) if sys.argv and sys.argv[0] else "synthetic_gpu.py",
                             *sys.argv[1:]]),
        "sizes": {**values, **probe_sizes},
        "stages": records,
        "total_seconds": round(total_seconds, 1),
        "training_minutes_built": round(sum(r["built_seconds"] for r in records if r["name"] in
                                            ("EAT pretraining", "tokenizer + text LM", "CLAP", "captioner")) / 60, 2),
        "training": training,
        "captioner_validation": captioner.extra,
        "audio_gain_curve": audio_gain_curve(captioner.result),
        "skipped_stages": skipped,
        "encoder_probe": {"eat_stage": eat_probe.extra if eat_probe else None,
                          "captioner": captioner_probe.extra if captioner_probe else None,
                          "summary": probe_summary(eat_probe.extra if eat_probe else None,
                                                   captioner_probe.extra if captioner_probe else None,
                                                   args.encoder_init)},
        "splits": splits,
        "targets": targets,
        "passed": all(t["passed"] for t in targets),
        "examples": demo._examples(evaluation_dir, demo.NUM_EXAMPLES) if evaluation_dir else [],
        "paths": {"model": model_dir, "corpus": corpus.result, "evaluation": evaluation_dir, "cache": cache.root},
    }
    curves = plot_recipe_curves(histories, os.path.join(output, CURVES_FILE),
                                title=f"synthetic recipe '{label}', seed {args.seed} ({results['device']})")
    results["curves"] = curves
    with open(os.path.join(output, RESULTS_FILE), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1, ensure_ascii=False, default=str)
    with open(os.path.join(output, REPORT_FILE), "w", encoding="utf-8") as f:
        f.write(markdown_report(results))
    return results


def clap_cache_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """The CLAP stage's own sizes in its cache key: every `clap_` field, the hard-negative ones (kinds, weight, per
    clip) only when that option is on, so that earlier CLAP stages without hard negatives keep their key."""
    return {k: v for k, v in values.items() if k.startswith("clap_")
            and (values["clap_hard_negatives"] or not k.startswith("clap_hard_negative"))}


def captioner_cache_entry(knobs: Mapping[str, str], settings: Mapping[str, Any]) -> tuple[str, dict]:
    """(cache name, settings) of the captioner stage: the encoder knobs enter both only when they leave the
    baseline, so that a baseline-encoder captioner keeps the key it had before those knobs existed."""
    name = f"captioner-{knobs['features']}-{knobs['projector']}-{knobs['training']}"
    settings = dict(settings)
    for knob in ENCODER_KNOBS:
        if knobs[knob] != BASELINE[knob]:
            settings[knob] = knobs[knob]
            name += f"-{knobs[knob]}"
    return name, settings


def _device_name(device: str) -> str:
    if str(device).startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(0)
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


# ------------------------------------------------------------------------------------------------ command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True,
                        help="folder for results.json, report.md, curves.png, model/ (a folder of an earlier run is "
                             "reused; any other non-empty folder is refused)")
    for name, values in KNOBS.items():
        parser.add_argument(knob_option(name), dest=name, choices=values, default=BASELINE[name],
                            help=f"default {BASELINE[name]}")
    parser.add_argument("--seed", type=int, default=0, help="seed of every training stage (default 0)")
    parser.add_argument("--corpus-seed", type=int, default=0, help="seed of the synthetic corpus (default 0)")
    parser.add_argument("--smoke", action="store_true", help="toy sizes on the CPU: the whole chain in ~1-2 minutes")
    parser.add_argument("--budget-scale", type=float, default=1.0,
                        help="multiply step counts, time limits and training clips (e.g. 0.4 for ablations)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a size (a DemoSizes field, e.g. lora_steps=2000); repeatable")
    parser.add_argument("--lm-caption-file", action="append", default=[], metavar="PATH",
                        help="caption file added to the text LM's training text (e.g. AudioCaps' train_v2.csv from "
                             "the aac-datasets source package); repeatable")
    parser.add_argument("--cache-dir", default=None, help="stage cache (default OUTPUT/cache); share it between runs")
    parser.add_argument("--deadline-minutes", type=float, default=None,
                        help="stop (exit status 3) before a stage that could end after this many minutes")
    parser.add_argument("--device", default=None, help="cuda (default) or cpu (default with --smoke)")
    parser.add_argument("--feature-device", default=None, help="where features are computed (default: --device)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes for synthesis and feature extraction (default: up to 16 CPU cores)")
    parser.add_argument("--dataloader-workers", type=int, default=None,
                        help="DataLoader worker processes per training stage (default: 4 on a GPU, 0 on a CPU)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: 1 on a CPU, 4 on a GPU)")
    parser.add_argument("--label", default=None, help="name of this configuration in tables (default from the knobs)")
    parser.add_argument("--skip-evaluation", action="store_true",
                        help="stop after the captioner and its encoder probe (diagnostic runs): no CLAP, no model "
                             "folder, no test-split captions; results.json keeps the training curves, the captioner's "
                             "validation scores and the probes")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs written to files)")
    return parser


def resolve_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parsed and checked arguments with defaults filled in; a clear `SystemExit(2)` for bad ones."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.size = "smoke" if args.smoke else "gpu"
    problems = []
    try:
        args.overrides = parse_overrides(args.overrides)
        size_values(args.size, args.budget_scale, args.overrides)
    except ValueError as error:
        problems.append(str(error))
    if args.seed < 0 or args.corpus_seed < 0:
        problems.append(f"seeds must be >= 0, got --seed {args.seed} --corpus-seed {args.corpus_seed}")
    if args.deadline_minutes is not None and not args.deadline_minutes > 0:
        problems.append(f"--deadline-minutes must be > 0, got {args.deadline_minutes}")
    for path in args.lm_caption_file:
        if not os.path.isfile(path):
            problems.append(f"--lm-caption-file {path!r} does not exist")
    args.device = args.device or ("cpu" if args.smoke else "cuda")
    if args.device not in ("cpu", "cuda") and not args.device.startswith("cuda:"):
        problems.append(f"--device must be cpu or cuda[:N], got {args.device!r}")
    args.feature_device = args.feature_device or args.device
    on_gpu = args.device.startswith("cuda")
    cpus = os.cpu_count() or 1
    args.workers = args.workers if args.workers is not None else max(1, min(16, cpus))
    args.dataloader_workers = args.dataloader_workers if args.dataloader_workers is not None else (4 if on_gpu else 0)
    args.threads = args.threads if args.threads is not None else (4 if on_gpu else 1)
    for name in ("workers", "threads"):
        if getattr(args, name) < 1:
            problems.append(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.dataloader_workers < 0:
        problems.append(f"--dataloader-workers must be >= 0, got {args.dataloader_workers}")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        problems.append(f"this recipe runs in one process (WORLD_SIZE={os.environ['WORLD_SIZE']}); launch it with "
                        "`accelerate launch --num_processes 1` or plain python, and use run_ablations.py --parallel "
                        "to fill a GPU with several runs")
    if problems:
        for problem in problems:
            print(f"synthetic_gpu: error: {problem}", file=sys.stderr)
        raise SystemExit(2)
    return args


def check_output_folder(output: str) -> None:
    if os.path.isfile(output):
        raise ValueError(f"--output {output!r} is a file; give a folder")
    if os.path.isdir(output) and os.listdir(output) and not os.path.isfile(os.path.join(output, RUN_MARKER)):
        raise ValueError(f"--output {output!r} exists and was not written by this recipe (no {RUN_MARKER}); choose a "
                         "new or empty folder")


def _load_sibling(name: str):
    """A module of this folder by path (the recipes are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"recipes_{name}", os.path.join(RECIPES_DIR, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def main(argv: Sequence[str] | None = None) -> int:
    args = resolve_arguments(argv)
    output = os.path.abspath(args.output)
    try:
        check_output_folder(output)
    except ValueError as error:
        print(f"synthetic_gpu: error: {error}", file=sys.stderr)
        return 2
    os.makedirs(output, exist_ok=True)
    with open(os.path.join(output, RUN_MARKER), "w", encoding="utf-8") as f:
        json.dump({"argv": list(sys.argv[1:] if argv is None else argv), "started": time.time()}, f)
    # a rerun must not leave an older run's results behind
    for stale in (RESULTS_FILE, REPORT_FILE, CURVES_FILE, ERROR_LOG):
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(output, stale))

    for variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(variable, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Feature workers fork and open their own CUDA contexts: asking whether CUDA exists must not initialise it here.
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    tiny_recipe = _load_sibling("gpu_finetune_tiny")
    tiny_recipe.make_package_importable(output)
    tiny_recipe.check_environment()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import torch

    from llm_aac.demo import DemoStageError

    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("synthetic_gpu: error: no GPU here; this recipe is sized for one H100 (--smoke, or --device cpu, runs "
              "on a CPU)", file=sys.stderr)
        return 2
    try:
        results = run_recipe(args, output)
    except DemoStageError as error:
        if isinstance(error.__cause__, DeadlineReached):
            print(f"\nsynthetic_gpu: {error.__cause__}", flush=True)
            return EXIT_DEADLINE
        log = os.path.join(output, ERROR_LOG)
        with open(log, "w", encoding="utf-8") as f:
            f.write(f"{error}\n\n" + "".join(traceback.format_exception(error.__cause__)))
        print(f"\nsynthetic_gpu: {error}\nfull traceback in {log}; finished stages are kept in the cache (the same "
              "command again resumes after them)", file=sys.stderr)
        return 1
    print("\n" + "=" * 100 + "\n" + markdown_report(results), flush=True)
    print(f"results: {os.path.join(output, RESULTS_FILE)}; curves: {results['curves']}; "
          f"model: {results['paths']['model']}")
    print(f"targets: {'all PASS' if results['passed'] else 'not all met'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
