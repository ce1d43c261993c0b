"""`llm-aac evaluate`: caption a dataset split with a saved captioner and score it the DCASE way.

    llm-aac evaluate --model runs/aac-7b --dataset clotho --data-dir data/clotho --split evaluation \
        --compare-rescoring --clap laion/clap-htsat-unfused --output results/clotho-eval
    llm-aac evaluate --model runs/aac-small --dataset synthetic --data-dir data/synth --metrics fast --output out/

Systems (each scored separately, side by side):

* `beam_search` -- plain decoding with the captioner's generation config (SLAM-AAC: beam 4), or
  `--num-beams` / `--max-new-tokens`;
* `clap_rescoring` -- caption candidates (`--candidates slam|single|sample`; default: the strategy and options
  saved with the captioner (`save_captioner(..., candidates=...)`), else SLAM-AAC's 7 beam searches) re-ranked by
  a CLAP scorer (`--clap`, or the scorer saved with the captioner), optionally fused with the captioner's
  log-probability (`--lm-weight`) and, with `--pseudo-references K` (K captions sampled per clip), with each
  candidate's consensus with those samples (`--consensus-weight`; `modeling_llm_aac.consensus_scoring`).

`--tune-lm-weight SPLIT` chooses the fusion weights on another split (e.g. `validation`) before the evaluation
splits are scored: every weight of `--lm-weights` (and, with sampled captions, every pair with a weight of
`--consensus-weights`) re-picks the rescored captions of SPLIT from the same candidates and scores (nothing is
decoded or scored twice), the weights with the best ranking metric (CIDEr-D by default; ties to the smaller
consensus weight, then the smaller log-probability weight; CIDEr-D where the set's ranking metric, e.g. FENSE,
cannot run here) are then used for every evaluation split, and the sweep is reported in `metrics.json` /
`metrics.md`. Choosing them on a test split itself would overstate the result.
`--pseudo-reference-temperatures 1,0.75,0.5` adds the sampling temperature of the consensus captions to that choice:
SPLIT is captioned first, with one set of samples per temperature (the candidates and CLAP scores are shared), the
sweep runs once per temperature, and the other splits are captioned with the best temperature only.

By default only `beam_search` runs; `--clap` alone runs `clap_rescoring`; `--compare-rescoring` runs both
in one pass. When the plain decoding is a beam search whose beam size is one of the SLAM candidates'
(and its length penalty, length limits and stopping rule are the candidates'), its caption IS that
candidate, so it is read off the candidates instead of decoded a second time.

Captioning goes through `modeling_llm_aac.caption_candidates` (candidates and plain decoding) and the
CLAP scorers of `modeling_llm_aac.clap_scoring`, with the model, processor and scorer loaded by
`AudioCaptioningPipeline`; clips are batched (`--batch-size`) on the GPU when there is one.

Outputs in `--output`:

* `predictions-<system>.jsonl` -- one line per clip: `file`, `split`, `prediction`, `candidates`
  (each with `caption`, `log_prob`, `origin` and, when rescored, `clap_score`, `consensus` (with sampled
  captions) and the fused `score`, best first), `references`, and `pseudo_references` (the sampled captions;
  per temperature on a split captioned with several, with each candidate's `consensus_by_temperature`);
* `metrics.json` -- per split and system, the caption metrics (`CaptionMetricsResult.to_dict()`), for
  `clap_rescoring` the candidates' headroom (`candidate_headroom`: oracle / worst / picked CIDEr-D) and,
  for the synthetic corpus, semantic accuracy (events, counts, order, overlap); plus the settings and
  timings;
* `metrics.md` -- the same as markdown tables.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

logger = logging.getLogger(__name__)

BEAM_SEARCH = "beam_search"
CLAP_RESCORING = "clap_rescoring"
SYSTEMS = (BEAM_SEARCH, CLAP_RESCORING)
DATASETS = ("clotho", "audiocaps", "synthetic")
DEFAULT_SPLITS = {
    "clotho": ("evaluation",),
    "audiocaps": ("test",),
    "synthetic": ("test", "compositional"),
}
DEFAULT_SYNTHETIC_CLIPS = 100
METRICS_FILE = "metrics.json"
REPORT_FILE = "metrics.md"
# Weights of the length-normalised log-probability tried by `--tune-lm-weight` (0 = CLAP alone, SLAM-AAC's pick).
DEFAULT_LM_WEIGHTS = (0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0)
# Weights of the consensus with sampled captions tried alongside them (consensus lies in [0, 1], a CLAP cosine
# difference between candidates is typically 0.01-0.2).
DEFAULT_CONSENSUS_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)
# What the weight sweep ranks by when the metric set's ranking metric (e.g. FENSE, SPIDEr) cannot run here.
FALLBACK_SWEEP_METRIC = "cider_d"
# Plain-decoding options under which its beam search equals one of the SLAM candidates' searches.
_NEUTRAL_STOPPING = (None, False)


def temperature_key(temperature: float) -> str:
    """How a sampling temperature names its consensus scores in a record (`consensus_by_temperature`): "0.75"."""
    return f"{float(temperature):g}"


def predictions_file(system: str) -> str:
    return f"predictions-{system}.jsonl"


# ----------------------------------------------------------------------------------------------- data


def _generated_synthetic_split(split: str, num_clips: int, seed: int) -> list[dict]:
    """Clips 0..num_clips-1 of `split` of the synthetic corpus, rendered in memory (same clips as `llm-aac synth`)."""
    from llm_aac.processing.synthetic import generate_clip

    rows = []
    for index in range(num_clips):
        clip = generate_clip(seed, index, split)
        rows.append({
            "audio": {"array": clip["audio"], "sampling_rate": clip["sampling_rate"]},
            "captions": clip["captions"],
            "events": clip["events"],
            "file_name": clip["file_name"],
            "split": split,
        })
    return rows


def load_evaluation_split(
    dataset: str,
    split: str,
    *,
    data_dir: str | os.PathLike | None = None,
    max_clips: int | None = None,
    synthetic_seed: int = 0,
):
    """Rows of one split with `audio` and `captions` (and `events` for the synthetic corpus).

    Args:
        dataset: `clotho`, `audiocaps` (published layouts under `data_dir`), `synthetic` (an `llm-aac
            synth` folder as `data_dir`, or, without one, clips rendered in memory), or any path / Hub id
            `processing.loaders.load_aac_dataset` reads (it must give a `captions` column).
        split: the split name (Clotho `development` / `validation` / `evaluation`, AudioCaps `train` / `val` /
            `test`, synthetic `train` / `validation` / `test` / `compositional`).
        max_clips: keep the first clips only (synthetic without `data_dir`: how many to render, default 100).
        synthetic_seed: seed of the in-memory synthetic clips.
    """
    from llm_aac.processing.loaders import load_aac_dataset, load_saved_dataset

    if dataset in ("clotho", "audiocaps"):
        if data_dir is None:
            raise ValueError(
                f"--data-dir is required for {dataset}: the folder of its published layout "
                "(see processing/loaders.py; it cannot be downloaded here)"
            )
        rows = load_aac_dataset(data_dir, split, kind=dataset)
    elif dataset == "synthetic":
        if data_dir is None:
            count = DEFAULT_SYNTHETIC_CLIPS if max_clips is None else int(max_clips)
            if count < 1:
                raise ValueError(f"max_clips must be >= 1, got {max_clips}")
            return _generated_synthetic_split(split, count, synthetic_seed)
        rows = load_saved_dataset(data_dir, split)
        if "events" not in rows.column_names:
            raise ValueError(f"{data_dir!r} is not a synthetic corpus: no 'events' column ({rows.column_names})")
    else:
        if data_dir is not None:
            raise ValueError(f"--data-dir only applies to {DATASETS}; {dataset!r} is itself the location")
        rows = load_aac_dataset(dataset, split)
    if hasattr(rows, "keys") and not hasattr(rows, "column_names"):
        raise ValueError(f"{dataset!r} split {split!r} resolved to several splits ({list(rows.keys())}); name one")
    if "captions" not in rows.column_names:
        raise ValueError(f"{dataset!r} split {split!r} has no 'captions' column (reference captions); columns: {rows.column_names}")
    if max_clips is not None and max_clips > 0 and len(rows) > max_clips:
        rows = rows.select(range(int(max_clips)))
    if len(rows) == 0:
        raise ValueError(f"{dataset!r} split {split!r} has no clips")
    return rows


def clip_name(row: Mapping, index: int) -> str:
    """A stable name for a clip in the predictions file (file name, AudioCaps id, or the row index)."""
    if row.get("file_name"):
        return str(row["file_name"])
    if row.get("youtube_id"):
        return f"{row['youtube_id']}_{row.get('start_time', 0)}"
    audio = row.get("audio")
    if isinstance(audio, Mapping) and audio.get("path"):
        return os.path.basename(str(audio["path"]))
    return str(index)


class _DecodedClips:
    """Map-style dataset: row -> decoded mono audio + what the outputs need (decoding runs in loader workers)."""

    def __init__(self, rows, split: str):
        self.rows = rows
        self.split = split

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        from llm_aac.processing.audio_io import decode_audio

        row = self.rows[index]
        name = clip_name(row, index)
        try:
            samples, rate = decode_audio(row["audio"])
        except ValueError as err:
            raise ValueError(f"{self.split} clip {index} ({name}): {err}") from None
        references = list(row["captions"])
        return {
            "array": samples,
            "sampling_rate": rate,
            "file": name,
            "references": references,
            "events": row.get("events"),
        }


def _as_list_batch(items: list[dict]) -> list[dict]:
    return items


# ------------------------------------------------------------------------------------------ captioning


@dataclass
class CaptioningPlan:
    """What runs: the systems, the candidate options and plain-decoding overrides, and whether the plain
    beam search is read off the candidates."""

    systems: tuple[str, ...]
    candidate_options: Any = None  # CandidateOptions
    generate_kwargs: dict = field(default_factory=dict)
    lm_weight: float | None = None
    consensus_weight: float | None = None
    reuse_beam: int | None = None  # beam size whose SLAM candidate is the plain caption
    reuse_reason: str = ""
    # Sampling temperatures whose consensus is recorded per candidate besides the one that ranks (the split the
    # temperature is chosen on is captioned with these; the other splits only with the chosen one).
    consensus_temperatures: tuple[float, ...] = ()


def plan_captioning(model, systems: Sequence[str], candidate_options, generate_kwargs: Mapping | None,
                    lm_weight: float | None = None) -> CaptioningPlan:
    """Decide whether plain decoding can be read off the candidates (see the module docstring)."""
    from modeling_llm_aac.caption_candidates import generation_settings, unsupported_fast_options

    systems = tuple(systems)
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown or not systems:
        raise ValueError(f"systems must be among {SYSTEMS}, got {list(systems)}")
    plan = CaptioningPlan(systems, candidate_options, dict(generate_kwargs or {}), lm_weight)
    if not (BEAM_SEARCH in systems and CLAP_RESCORING in systems):
        return plan
    settings = generation_settings(model, plan.generate_kwargs)
    # transformers 5 keeps unset options as None and applies its defaults inside `generate`.
    length_penalty = 1.0 if settings.get("length_penalty") is None else float(settings["length_penalty"])
    num_beams = int(settings.get("num_beams") or 1)
    options = candidate_options
    default_max = getattr(model.generation_config, "max_new_tokens", None)
    checks = [
        (options.strategy == "slam", f"candidates are {options.strategy!r}, not SLAM beam searches"),
        (num_beams > 1 and not settings.get("do_sample"), "plain decoding is not a beam search"),
        (num_beams in options.beam_sizes, f"beam size {num_beams} is not among the candidates' {options.beam_sizes}"),
        (length_penalty == float(options.length_penalty), "length penalties differ"),
        (settings.get("early_stopping") in _NEUTRAL_STOPPING, "plain decoding stops early"),
        ((options.max_new_tokens or default_max) == settings.get("max_new_tokens", default_max), "max_new_tokens differ"),
        (int(settings.get("min_new_tokens") or 0) == int(options.min_new_tokens), "min_new_tokens differ"),
        (not unsupported_fast_options(settings), "plain decoding uses options the candidates do not apply"),
    ]
    failed = [reason for ok, reason in checks if not ok]
    if failed:
        plan.reuse_reason = "; ".join(failed)
    else:
        plan.reuse_beam = num_beams
        plan.reuse_reason = f"plain beam search (beam {num_beams}) is the SLAM candidate 'beams={num_beams}'"
    return plan


def _candidate_entry(candidate) -> dict:
    return {"caption": candidate.text, "log_prob": candidate.log_prob, "origin": candidate.origin}


def caption_batch(model, processor, scorer, clips: list[dict], plan: CaptioningPlan) -> dict[str, list[dict]]:
    """Captions of a batch of decoded clips for every system of `plan`: system -> one record per clip
    (`prediction`, `candidates`)."""
    from modeling_llm_aac.caption_candidates import generate_candidates, generate_captions, generate_pseudo_references
    from modeling_llm_aac.clap_scoring import normalize_caption
    from modeling_llm_aac.consensus_scoring import consensus_scores
    from modeling_llm_aac.feature_extraction_llm_aac import feature_device

    audio = [{"array": clip["array"], "sampling_rate": int(clip["sampling_rate"])} for clip in clips]
    inputs = processor(audio=audio, return_tensors="pt", device=feature_device(model.device))
    output: dict[str, list[dict]] = {}

    if CLAP_RESCORING in plan.systems:
        options = plan.candidate_options
        if plan.reuse_beam is not None:
            # Keep every search's hypothesis so that the plain beam's caption is found by its origin;
            # the scorer removes the duplicates before ranking.
            options = replace(options, deduplicate=False)
        per_clip = generate_candidates(model, processor, inputs, options)
        samples = (generate_pseudo_references(model, processor, inputs, options) if options.num_pseudo_references
                   else None)
        samples_by_temperature = {
            temperature: samples if temperature == options.pseudo_reference_temperature else
            generate_pseudo_references(model, processor, inputs,
                                       replace(options, pseudo_reference_temperature=temperature))
            for temperature in plan.consensus_temperatures
        } if samples is not None else {}
        if plan.reuse_beam is not None:
            origin = f"beams={plan.reuse_beam}"
            plain = [next(c for c in candidates if c.origin == origin) for candidates in per_clip]
            output[BEAM_SEARCH] = [{"prediction": c.text, "candidates": [_candidate_entry(c)]} for c in plain]
        rankings: list[Any] = [None] * len(clips)
        by_rate: dict[int, list[int]] = {}
        for index, clip in enumerate(clips):
            by_rate.setdefault(int(clip["sampling_rate"]), []).append(index)
        weight = plan.lm_weight if plan.lm_weight is not None else scorer.lm_weight
        agreement_weight = plan.consensus_weight if plan.consensus_weight is not None else scorer.consensus_weight
        for rate, indices in by_rate.items():
            ranked = scorer.rerank(
                [clips[i]["array"] for i in indices], [[c.text for c in per_clip[i]] for i in indices], rate,
                log_probs=[[c.log_prob for c in per_clip[i]] for i in indices], lm_weight=weight,
                pseudo_references=None if samples is None else [samples[i] for i in indices],
                consensus_weight=agreement_weight,
            )
            for index, ranking in zip(indices, ranked):
                rankings[index] = ranking
        records = []
        for clip_index, (candidates, ranking) in enumerate(zip(per_clip, rankings)):
            by_temperature = {
                temperature_key(temperature): consensus_scores(list(ranking.candidates), clip_samples[clip_index])
                for temperature, clip_samples in samples_by_temperature.items()
            }
            origins: dict[str, list[str]] = {}
            for c in candidates:
                origins.setdefault(normalize_caption(c.text), []).append(c.origin)
            entries = []
            for i in sorted(range(len(ranking.candidates)), key=lambda i: (-ranking.scores[i], i)):
                text = ranking.candidates[i]
                entries.append({
                    "index": i,  # position in the scorer's (de-duplicated) candidate list: ties go to the earlier
                    "caption": text,
                    "log_prob": ranking.log_probs[i] if ranking.log_probs is not None else None,
                    "clap_score": ranking.clap_scores[i],
                    **({"consensus": ranking.consensus[i]} if ranking.consensus is not None else {}),
                    **({"consensus_by_temperature": {key: values[i] for key, values in by_temperature.items()}}
                       if by_temperature else {}),
                    "score": ranking.scores[i],
                    "origin": ",".join(origins.get(normalize_caption(text), [])),
                })
            record = {"prediction": ranking.caption, "candidates": entries}
            if samples_by_temperature:
                record["pseudo_references_by_temperature"] = {
                    temperature_key(t): clip_samples[clip_index] for t, clip_samples in samples_by_temperature.items()}
            elif samples is not None:
                record["pseudo_references"] = samples[clip_index]
            records.append(record)
        output[CLAP_RESCORING] = records

    if BEAM_SEARCH in plan.systems and BEAM_SEARCH not in output:
        decoded = generate_captions(model, processor, inputs, backend=plan.candidate_options.backend,
                                    **plan.generate_kwargs)
        output[BEAM_SEARCH] = [{"prediction": c.text, "candidates": [_candidate_entry(c)]} for c in decoded]
    return output


def caption_split(model, processor, scorer, rows, split: str, plan: CaptioningPlan, *, batch_size: int = 8,
                  num_workers: int = 0, progress: bool = True) -> dict[str, list[dict]]:
    """Caption every clip of `rows`: system -> records (`file`, `split`, `prediction`, `candidates`,
    `references`, and `events` when the rows have ground truth), in row order."""
    import torch
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    loader = torch.utils.data.DataLoader(
        _DecodedClips(rows, split), batch_size=batch_size, num_workers=num_workers, collate_fn=_as_list_batch
    )
    records: dict[str, list[dict]] = {system: [] for system in plan.systems}
    with tqdm(total=len(rows), desc=f"captioning {split}", unit="clip", disable=not progress) as bar:
        for clips in loader:
            outputs = caption_batch(model, processor, scorer, clips, plan)
            for system in plan.systems:
                for clip, record in zip(clips, outputs[system]):
                    entry = {"file": clip["file"], "split": split, "prediction": record["prediction"],
                             "candidates": record["candidates"], "references": clip["references"]}
                    for key in ("pseudo_references", "pseudo_references_by_temperature"):
                        if key in record:
                            entry[key] = record[key]
                    if clip.get("events") is not None:
                        entry["events"] = clip["events"]
                    records[system].append(entry)
            bar.update(len(clips))
    return records


# ------------------------------------------------------------------------------------------ evaluation


def load_captioner(model: str | os.PathLike, *, clap: Any = None, clap_kwargs: Mapping | None = None,
                   device: Any = None, dtype: Any = "auto"):
    """The `AudioCaptioningPipeline` of a saved captioner (model, processor and CLAP scorer on `device`).

    Args:
        clap: `None` -> the scorer saved with the captioner, if any; `False` -> none; else a `CLAPScorer` or
            anything `load_clap_scorer` takes.
        dtype: `"auto"` (bfloat16 on CUDA, float32 otherwise), a torch dtype or its name.
    """
    import torch
    from transformers import AutoModel, AutoProcessor

    import modeling_llm_aac  # noqa: F401  (registers the Auto classes and the pipeline)
    from modeling_llm_aac.pipeline_audio_captioning import AudioCaptioningPipeline

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dtype == "auto":
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    elif isinstance(dtype, str):
        if not isinstance(getattr(torch, dtype, None), torch.dtype):
            raise ValueError(f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16")
        dtype = getattr(torch, dtype)
    path = os.fspath(model)
    if not os.path.isdir(path):
        raise ValueError(f"--model {path!r} is not a folder (a captioner saved with save_pretrained / finetune_aac)")
    captioner = AutoModel.from_pretrained(path, dtype=dtype)
    processor = AutoProcessor.from_pretrained(path)
    return AudioCaptioningPipeline(model=captioner.eval(), processor=processor, clap=clap,
                                   clap_kwargs=dict(clap_kwargs or {}), device=device)


def _system_labels(plan: CaptioningPlan, model) -> dict[str, str]:
    from modeling_llm_aac.caption_candidates import generation_settings

    labels = {}
    if BEAM_SEARCH in plan.systems:
        settings = generation_settings(model, plan.generate_kwargs)
        beams = int(settings.get("num_beams") or 1)
        labels[BEAM_SEARCH] = f"beam search ({beams} beams)" if beams > 1 else (
            "sampling" if settings.get("do_sample") else "greedy")
    if CLAP_RESCORING in plan.systems:
        options = plan.candidate_options
        temperature = ("" if options.pseudo_reference_temperature == 1.0 else
                       f" at temperature {options.pseudo_reference_temperature:g}")
        samples = (f", consensus with {options.num_pseudo_references} samples{temperature}"
                   if options.num_pseudo_references else "")
        labels[CLAP_RESCORING] = (f"CLAP rescoring ({options.strategy}, {options.candidates_per_clip} candidates"
                                  f"{samples})")
    return labels


def _plain_decoding(model, plan: CaptioningPlan) -> dict[str, Any]:
    """The decoding settings plain captioning ran with (generation config + overrides), for metrics.json."""
    from modeling_llm_aac.caption_candidates import generation_settings

    settings = generation_settings(model, plan.generate_kwargs)
    names = ("num_beams", "max_new_tokens", "min_new_tokens", "length_penalty", "early_stopping", "do_sample")
    return {"overrides": dict(plan.generate_kwargs), **{name: settings.get(name) for name in names}}


def score_records(records: Sequence[Mapping], metrics: Any, *, tokenize: bool | None = None) -> dict[str, Any]:
    """Caption metrics (and semantic accuracy when the records carry ground-truth `events`) of one split."""
    from llm_aac.eval.caption_metrics import compute_caption_metrics

    predictions = [r["prediction"] for r in records]
    result = compute_caption_metrics(predictions, [r["references"] for r in records], metrics=metrics, tokenize=tokenize)
    scored: dict[str, Any] = {"caption_metrics": result}
    if all(r.get("events") is not None for r in records):
        from llm_aac.eval.semantic_accuracy import semantic_accuracy

        scored["semantic_accuracy"] = semantic_accuracy(predictions, [r["events"] for r in records])
    return scored


def write_jsonl(path: str, records: Sequence[Mapping]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            row = {key: record[key] for key in ("file", "split", "prediction", "candidates", "references",
                                                "pseudo_references", "pseudo_references_by_temperature")
                   if key in record}
            # ASCII escapes: sampled captions may hold U+2028 and the like, which line splitters take for newlines
            f.write(json.dumps(row) + "\n")


def markdown_report(summary: Mapping[str, Any], results: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """Markdown: per split, the caption-metric table (one row per system) and semantic accuracy if any."""
    from llm_aac.eval.candidate_headroom import format_headroom
    from llm_aac.eval.caption_metrics import markdown_table
    from llm_aac.eval.semantic_accuracy import format_table

    labels = summary["systems"]
    lines = [f"# Evaluation of `{summary['model']}` on {summary['dataset']}", ""]
    for split, per_system in results.items():
        lines += [f"## {split} ({summary['splits'][split]['num_clips']} clips)", ""]
        lines.append(markdown_table({labels[s]: scored["caption_metrics"] for s, scored in per_system.items()}).rstrip())
        semantic = {labels[s]: scored["semantic_accuracy"] for s, scored in per_system.items() if "semantic_accuracy" in scored}
        if semantic:
            lines += ["", "Semantic accuracy (events, counts, order, overlap recovered from the captions):", ""]
            lines.append(format_table(semantic).replace("| split |", "| system |", 1))
        headroom = per_system.get(CLAP_RESCORING, {}).get("candidate_headroom")
        if headroom:
            lines += ["", format_headroom(headroom)]
        lines.append("")
    tuning = summary.get("lm_weight_tuning")
    if tuning and tuning.get("temperatures"):
        best = ", ".join(f"{t}: {max(v):.3f}" for t, v in tuning["scores_by_temperature"].items())
        lines.append(f"The consensus captions' sampling temperature {tuning['chosen_temperature']:g} was chosen on the "
                     f"{tuning['split']} split (best {tuning['metric']} per temperature: {best}).")
    if tuning:
        if len(tuning["consensus_weights"]) > 1:
            sweep = ", ".join(f"{w:g} / {c:g}: {v:.3f}" for (w, c), v in zip(tuning["pairs"], tuning["scores"]))
            lines.append(f"CLAP rescoring's lm_weight {tuning['chosen']:g} and consensus_weight "
                         f"{tuning['chosen_consensus_weight']:g} were chosen on the {tuning['split']} split "
                         f"({tuning['metric']} per lm_weight / consensus_weight: {sweep}).")
        else:
            sweep = ", ".join(f"{w:g}: {v:.3f}" for (w, _), v in zip(tuning["pairs"], tuning["scores"]))
            lines.append(f"CLAP rescoring's lm_weight {tuning['chosen']:g} was chosen on the {tuning['split']} split "
                         f"({tuning['metric']} per weight: {sweep}).")
    if summary.get("candidates_reused") is not None:
        lines.append(f"Plain decoding read off the candidates: {summary['candidates_reused']} ({summary['reuse_reason']}).")
    timing = summary.get("timing", {})
    if timing:
        lines.append(f"Captioning: {timing['clips']} clips in {timing['seconds']:.1f} s "
                     f"({timing['clips_per_second']:.2f} clips/s) on {timing['device']}.")
    return "\n".join(lines).rstrip() + "\n"


def repick_with_lm_weight(records: Sequence[Mapping], lm_weight: float, consensus_weight: float = 0.0) -> list[dict]:
    """CLAP-rescoring records re-picked with other fusion weights (log-probability, and consensus for records
    rescored with sampled captions) from their stored candidates, by the scorer's own rule
    (`clap_scoring.rank_candidates`); each record's candidates are re-sorted by the new fused score."""
    from modeling_llm_aac.clap_scoring import rank_candidates

    repicked = []
    for record in records:
        candidates = record["candidates"]
        if not candidates or any("clap_score" not in c for c in candidates):
            raise ValueError(f"record {record.get('file')!r} has no CLAP-scored candidates to re-pick from")
        # The scorer's order (ties go to the earlier candidate); records written before "index" keep theirs.
        ordered = sorted(candidates, key=lambda entry: entry.get("index", 0))
        log_probs = [entry.get("log_prob") for entry in ordered]
        consensus = [entry.get("consensus") for entry in ordered]
        if consensus_weight != 0.0 and None in consensus:
            raise ValueError(f"record {record.get('file')!r} has no consensus scores for consensus_weight="
                             f"{consensus_weight} (it was rescored without sampled captions)")
        ranking = rank_candidates([entry["caption"] for entry in ordered], [entry["clap_score"] for entry in ordered],
                                  None if None in log_probs else log_probs, lm_weight=lm_weight,
                                  consensus=None if None in consensus else consensus,
                                  consensus_weight=consensus_weight)
        rescored = [{**entry, "score": score, "index": entry.get("index", position)}
                    for position, (entry, score) in enumerate(zip(ordered, ranking.scores))]
        rescored.sort(key=lambda entry: (-entry["score"], entry["index"]))
        repicked.append({**record, "prediction": ranking.caption, "candidates": rescored})
    return repicked


def with_consensus_at(records: Sequence[Mapping], temperature: float) -> list[dict]:
    """CLAP-rescoring records whose candidates' `consensus` is the one with captions sampled at `temperature`
    (from `consensus_by_temperature`, written when the split was captioned with several temperatures), and whose
    `pseudo_references` are those captions when the record kept them per temperature."""
    key = temperature_key(temperature)
    updated = []
    for record in records:
        candidates = []
        for entry in record["candidates"]:
            by_temperature = entry.get("consensus_by_temperature") or {}
            if key not in by_temperature:
                raise ValueError(f"record {record.get('file')!r} has no consensus with captions sampled at temperature "
                                 f"{key} (it has {sorted(by_temperature) or 'none'})")
            candidates.append({**entry, "consensus": by_temperature[key]})
        samples = record.get("pseudo_references_by_temperature") or {}
        updated.append({**record, "candidates": candidates, **({"pseudo_references": samples[key]} if key in samples
                                                                else {})})
    return updated


def tune_rescoring(records: Sequence[Mapping], weights: Sequence[float], metrics: Any, *,
                   consensus_weights: Sequence[float] = (0.0,), temperatures: Sequence[float] = (),
                   tokenize: bool | None = None) -> dict[str, Any]:
    """`tune_lm_weight`, and with `temperatures` (records captioned with them, see `with_consensus_at`) the same
    sweep once per sampling temperature of the consensus captions: the best triple wins (ties to the earlier
    temperature in `temperatures`). Adds `temperatures`, `scores_by_temperature` (the pair sweep's scores per
    temperature) and `chosen_temperature` to `tune_lm_weight`'s result, whose `pairs` / `scores` are then the
    chosen temperature's."""
    if not temperatures:
        return tune_lm_weight(records, weights, metrics, consensus_weights=consensus_weights, tokenize=tokenize)
    temperatures = list(dict.fromkeys(float(t) for t in temperatures))
    pairs = _weight_pairs(records, weights, consensus_weights)
    # Every temperature re-picks among the same captions: they are tokenised once for all of them.
    metric, as_scored = _sweep_texts(records, metrics, tokenize)
    sweeps = [_sweep_scores(with_consensus_at(records, t), pairs, metric, as_scored) for t in temperatures]
    best_temperature = max(range(len(sweeps)), key=lambda i: (max(sweeps[i]), -i))
    return {**_sweep_result(pairs, sweeps[best_temperature], metric),
            "temperatures": temperatures, "chosen_temperature": temperatures[best_temperature],
            "scores_by_temperature": {temperature_key(t): scores for t, scores in zip(temperatures, sweeps)}}


def tune_lm_weight(records: Sequence[Mapping], weights: Sequence[float], metrics: Any, *,
                   consensus_weights: Sequence[float] = (0.0,), tokenize: bool | None = None) -> dict[str, Any]:
    """The ranking metric of `records` (one split's CLAP-rescoring records) re-picked with each log-probability
    weight, paired with each consensus weight, and the best pair (ties to the smaller consensus weight, then the
    smaller log-probability weight): `{"weights", "consensus_weights", "pairs", "scores", "metric", "chosen",
    "chosen_consensus_weight"}`."""
    pairs = _weight_pairs(records, weights, consensus_weights)
    metric, as_scored = _sweep_texts(records, metrics, tokenize)
    return _sweep_result(pairs, _sweep_scores(records, pairs, metric, as_scored), metric)


def _weight_pairs(records: Sequence[Mapping], weights: Sequence[float],
                  consensus_weights: Sequence[float]) -> list[tuple[float, float]]:
    weights = sorted({float(w) for w in weights})
    consensus_weights = sorted({float(w) for w in consensus_weights})
    if not weights:
        raise ValueError("no lm_weight to try")
    if not consensus_weights:
        raise ValueError("no consensus_weight to try")
    if not records:
        raise ValueError("no records to tune the lm_weight on")
    return [(w, c) for c in consensus_weights for w in weights]


def _sweep_texts(records: Sequence[Mapping], metrics: Any, tokenize: bool | None) -> tuple[str, dict[str, str]]:
    """The metric that ranks the weights (the set's ranking metric, CIDEr-D where that one cannot run here), and
    every candidate and reference as it is scored (PTB-tokenised once, when tokenising: each tokenizer run may start
    Java)."""
    from llm_aac.eval.caption_metrics import compute_caption_metrics, ptb_tokenize, resolve_metrics

    _, _, metric, tokenize_by_default = resolve_metrics(metrics)
    texts = list(dict.fromkeys(text for record in records for text in
                               [*(c["caption"] for c in record["candidates"]), *record["references"]]))
    as_scored = {text: text for text in texts}
    if (tokenize_by_default if tokenize is None else tokenize):
        try:
            as_scored = dict(zip(texts, ptb_tokenize(texts)))
        except RuntimeError:
            if tokenize:
                raise
            logger.warning("the weight sweep scores untokenised captions: PTB tokenisation cannot run here")
    if metric != FALLBACK_SWEEP_METRIC:
        trial = compute_caption_metrics([as_scored[r["prediction"]] for r in records],
                                        [[as_scored[ref] for ref in r["references"]] for r in records],
                                        metrics=[metric], tokenize=False)
        if metric in trial.skipped:
            logger.warning("the weight sweep ranks by %s: %s cannot run here (%s)", FALLBACK_SWEEP_METRIC, metric,
                           trial.skipped[metric])
            metric = FALLBACK_SWEEP_METRIC
    return metric, as_scored


def _sweep_scores(records: Sequence[Mapping], pairs: Sequence[tuple[float, float]], metric: str,
                  as_scored: Mapping[str, str]) -> list[float]:
    """The ranking metric of `records` re-picked with each (log-probability, consensus) weight pair."""
    from llm_aac.eval.caption_metrics import compute_caption_metrics

    scores = []
    for weight, agreement in pairs:
        repicked = repick_with_lm_weight(records, weight, agreement)
        result = compute_caption_metrics([as_scored[r["prediction"]] for r in repicked],
                                         [[as_scored[ref] for ref in r["references"]] for r in repicked],
                                         metrics=[metric], tokenize=False)
        scores.append(float(result.scores[metric]))
    return scores


def _sweep_result(pairs: Sequence[tuple[float, float]], scores: Sequence[float], metric: str) -> dict[str, Any]:
    """`tune_lm_weight`'s result: the best pair, ties to the smaller consensus weight, then the smaller lm weight."""
    best = max(range(len(pairs)), key=lambda i: (scores[i], -pairs[i][1], -pairs[i][0]))
    return {"weights": sorted({w for w, _ in pairs}), "consensus_weights": sorted({c for _, c in pairs}),
            "pairs": [list(p) for p in pairs], "scores": list(scores), "metric": metric, "chosen": pairs[best][0],
            "chosen_consensus_weight": pairs[best][1]}


def _tune_on_split(records: Sequence[Mapping], plan: CaptioningPlan, lm_weights: Sequence[float],
                   consensus_weight: float | None, consensus_weights: Sequence[float], metrics: Any,
                   tokenize: bool | None) -> dict[str, Any]:
    """Choose the fusion weights (and the consensus captions' temperature) on one split's CLAP-rescoring records
    and set them in `plan`, so that the splits captioned next use them."""
    split = records[0]["split"] if records else None
    if not plan.candidate_options.num_pseudo_references:
        tried_consensus = (0.0,)
    elif consensus_weight is not None:
        tried_consensus = (consensus_weight,)
    else:
        tried_consensus = consensus_weights
    tuning = {"split": split, **tune_rescoring(records, lm_weights, metrics, tokenize=tokenize,
                                              consensus_weights=tried_consensus,
                                              temperatures=plan.consensus_temperatures)}
    plan.lm_weight, plan.consensus_weight = tuning["chosen"], tuning["chosen_consensus_weight"]
    if "chosen_temperature" in tuning:
        plan.candidate_options = replace(plan.candidate_options,
                                         pseudo_reference_temperature=tuning["chosen_temperature"])
        plan.consensus_temperatures = ()
        logger.info("consensus captions sampled at temperature %s chosen on %s (best %s per temperature: %s)",
                    tuning["chosen_temperature"], split, tuning["metric"],
                    ", ".join(f"{t} -> {max(v):.4f}" for t, v in tuning["scores_by_temperature"].items()))
    logger.info("lm_weight %s, consensus_weight %s chosen on %s (%s: %s)", plan.lm_weight, plan.consensus_weight,
                split, tuning["metric"],
                ", ".join(f"{w:g}/{c:g} -> {v:.4f}" for (w, c), v in zip(tuning["pairs"], tuning["scores"])))
    return tuning


def evaluate_captioner(
    model: str | os.PathLike,
    dataset: str,
    splits: Sequence[str] | None = None,
    *,
    output_dir: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    metrics: Any = "dcase2024",
    tokenize: bool | None = None,
    systems: Sequence[str] | None = None,
    clap: Any = None,
    clap_kwargs: Mapping | None = None,
    candidate_options: Any = None,
    lm_weight: float | None = None,
    tune_lm_weight_on: str | None = None,
    lm_weights: Sequence[float] = DEFAULT_LM_WEIGHTS,
    consensus_weight: float | None = None,
    consensus_weights: Sequence[float] = DEFAULT_CONSENSUS_WEIGHTS,
    pseudo_reference_temperatures: Sequence[float] = (),
    generate_kwargs: Mapping | None = None,
    batch_size: int = 8,
    num_workers: int = 0,
    device: Any = None,
    dtype: Any = "auto",
    max_clips: int | None = None,
    synthetic_seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Caption `splits` of `dataset` with the captioner at `model`, score them, and write the outputs.

    Args:
        systems: subset of `SYSTEMS`; default `beam_search`, or `clap_rescoring` when `clap` is given.
        clap: a `CLAPScorer` or anything `load_clap_scorer` takes; `None` uses the scorer saved with the
            captioner (required for `clap_rescoring`).
        candidate_options: `CandidateOptions` of `clap_rescoring` (default SLAM-AAC's 7 beam searches); its
            `backend` also decodes `beam_search`.
        lm_weight: weight of the log-probability fused with the CLAP similarity (default: the scorer's).
        tune_lm_weight_on: a split on which to choose the weight among `lm_weights` instead (see the module
            docstring); it is captioned too, and reported with the other splits only if among `splits`. With
            sampled captions (`candidate_options.num_pseudo_references`) the consensus weight is chosen with it among
            `consensus_weights`, unless `consensus_weight` fixes it.
        consensus_weight: weight of the consensus with sampled captions (default: the scorer's).
        pseudo_reference_temperatures: with `tune_lm_weight_on` and sampled captions, the sampling temperatures
            tried there too: that split is captioned first, with one set of samples per temperature, and the
            temperature of the best (log-probability weight, consensus weight, temperature) triple samples the
            captions of every other split (`tune_rescoring`). Empty: `candidate_options`' temperature only.
        generate_kwargs: plain-decoding overrides of the generation config (`num_beams`, `max_new_tokens`).
        Other arguments: see `load_evaluation_split`, `compute_caption_metrics` and the CLI.

    Returns:
        The content of `metrics.json`.
    """
    from llm_aac.eval.candidate_headroom import candidate_headroom
    from modeling_llm_aac.caption_candidates import CandidateOptions

    if systems is None:
        systems = (CLAP_RESCORING,) if clap not in (None, False) else (BEAM_SEARCH,)
    systems = tuple(dict.fromkeys(systems))
    splits = list(splits or DEFAULT_SPLITS.get(dataset, ("test",)))
    if not splits:
        raise ValueError("no split to evaluate")
    # Data problems surface before any model is loaded.
    if tune_lm_weight_on is not None and CLAP_RESCORING not in systems:
        raise ValueError(f"tune_lm_weight_on={tune_lm_weight_on!r} needs the {CLAP_RESCORING} system")
    if tune_lm_weight_on is not None and lm_weight is not None:
        raise ValueError(f"give either lm_weight ({lm_weight}) or tune_lm_weight_on ({tune_lm_weight_on!r}), not both")
    temperatures = tuple(dict.fromkeys(float(t) for t in pseudo_reference_temperatures))
    if temperatures:
        bad = [t for t in temperatures if not (math.isfinite(t) and t > 0)]
        if bad:
            raise ValueError(f"pseudo_reference_temperatures must be positive numbers, got {list(temperatures)}")
        if tune_lm_weight_on is None or not (candidate_options and candidate_options.num_pseudo_references):
            raise ValueError(f"pseudo_reference_temperatures={list(temperatures)} are chosen among on a tuning split: "
                             "give tune_lm_weight_on and candidate options with num_pseudo_references >= 1")
    # The tuning split goes first: the other splits are then captioned with what was chosen on it.
    captioned = ([tune_lm_weight_on] if tune_lm_weight_on is not None else []) + [
        split for split in splits if split != tune_lm_weight_on]
    data = {split: load_evaluation_split(dataset, split, data_dir=data_dir, max_clips=max_clips,
                                         synthetic_seed=synthetic_seed) for split in captioned}

    pipe = load_captioner(model, clap=clap if CLAP_RESCORING in systems else False, clap_kwargs=clap_kwargs,
                          device=device, dtype=dtype)
    if CLAP_RESCORING in systems and pipe.clap_scorer is None:
        raise ValueError(
            f"clap_rescoring needs a CLAP scorer: {os.fspath(model)!r} has none saved with it; pass --clap "
            "(a Hub id such as laion/clap-htsat-unfused, a ClapModel / EAT-CLAP folder or a laion-clap .pt)"
        )
    plan = plan_captioning(pipe.model, systems, candidate_options or CandidateOptions(), generate_kwargs, lm_weight)
    plan.consensus_weight = consensus_weight
    plan.consensus_temperatures = temperatures
    if temperatures and plan.candidate_options.pseudo_reference_temperature not in temperatures:
        # the samples that rank the tuning split are one of the tried sets, not an extra pass
        plan.candidate_options = replace(plan.candidate_options, pseudo_reference_temperature=temperatures[0])

    os.makedirs(output_dir, exist_ok=True)
    all_records: dict[str, list[dict]] = {system: [] for system in systems}
    results: dict[str, dict[str, dict[str, Any]]] = {}
    split_info: dict[str, dict[str, Any]] = {}
    seconds, total, tuning = 0.0, 0, None
    for split, rows in data.items():
        started = time.perf_counter()
        records = caption_split(pipe.model, pipe.processor, pipe.clap_scorer, rows, split, plan,
                                batch_size=batch_size, num_workers=num_workers, progress=progress)
        seconds += time.perf_counter() - started
        total += len(rows)
        split_info[split] = {"num_clips": len(rows)}
        for system in systems:
            all_records[system].extend(records[system])
        results[split] = {system: None for system in systems}
        if split == tune_lm_weight_on:
            tuning = _tune_on_split(records[CLAP_RESCORING], plan, lm_weights, consensus_weight, consensus_weights,
                                    metrics, tokenize)

    if tuning is not None:
        if "chosen_temperature" in tuning:
            all_records[CLAP_RESCORING] = [
                with_consensus_at([r], tuning["chosen_temperature"])[0] if r["split"] == tune_lm_weight_on else r
                for r in all_records[CLAP_RESCORING]]
        # The other splits were ranked with the chosen weights already; the tuning split is re-picked with them.
        all_records[CLAP_RESCORING] = repick_with_lm_weight(all_records[CLAP_RESCORING], plan.lm_weight,
                                                            plan.consensus_weight)
        if tune_lm_weight_on not in splits:
            for system in systems:
                all_records[system] = [r for r in all_records[system] if r["split"] != tune_lm_weight_on]
            del results[tune_lm_weight_on], split_info[tune_lm_weight_on]

    for split in results:
        for system in systems:
            records = [r for r in all_records[system] if r["split"] == split]
            results[split][system] = score_records(records, metrics, tokenize=tokenize)
            if system == CLAP_RESCORING:
                results[split][system]["candidate_headroom"] = candidate_headroom(records, tokenize=tokenize)
    for system in systems:
        write_jsonl(os.path.join(output_dir, predictions_file(system)), all_records[system])

    options = plan.candidate_options
    labels = _system_labels(plan, pipe.model)
    summary: dict[str, Any] = {
        "model": os.fspath(model),
        "dataset": os.fspath(dataset) if data_dir is None else f"{dataset} ({os.fspath(data_dir)})",
        "metric_set": metrics if isinstance(metrics, str) else list(metrics),
        "systems": labels,
        "decoding": {
            BEAM_SEARCH: _plain_decoding(pipe.model, plan),
            CLAP_RESCORING: {
                "strategy": options.strategy, "candidates_per_clip": options.candidates_per_clip,
                "beam_sizes": list(options.beam_sizes), "lm_weight": plan.lm_weight if plan.lm_weight is not None
                else (pipe.clap_scorer.lm_weight if pipe.clap_scorer is not None else None),
                "num_pseudo_references": options.num_pseudo_references,
                "pseudo_reference_temperature": options.pseudo_reference_temperature
                if options.num_pseudo_references else None,
                "consensus_weight": (plan.consensus_weight if plan.consensus_weight is not None else
                                     (pipe.clap_scorer.consensus_weight if pipe.clap_scorer is not None else None))
                if options.num_pseudo_references else None,
                "clap": pipe.clap_scorer.settings() if pipe.clap_scorer is not None else None,
            },
        },
        "lm_weight_tuning": tuning,
        "candidates_reused": plan.reuse_beam is not None if len(systems) == 2 else None,
        "reuse_reason": plan.reuse_reason,
        "splits": {
            split: {
                **split_info[split],
                "systems": {
                    system: {
                        "caption_metrics": scored["caption_metrics"].to_dict(),
                        **{key: scored[key] for key in ("semantic_accuracy", "candidate_headroom") if key in scored},
                    }
                    for system, scored in per_system.items()
                },
            }
            for split, per_system in results.items()
        },
        "predictions": {system: predictions_file(system) for system in systems},
        "timing": {"clips": total, "seconds": seconds, "clips_per_second": total / max(seconds, 1e-9),
                   "device": str(pipe.device), "batch_size": batch_size},
    }
    with open(os.path.join(output_dir, METRICS_FILE), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1, ensure_ascii=False, default=str)
    report = markdown_report(summary, results)
    with open(os.path.join(output_dir, REPORT_FILE), "w", encoding="utf-8") as f:
        f.write(report)
    return summary


# ------------------------------------------------------------------------------------------ CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="captioner folder (model + processor, e.g. finetune_aac output)")
    parser.add_argument("--dataset", required=True,
                        help="clotho | audiocaps | synthetic, or a dataset path / Hub id with audio + captions")
    parser.add_argument("--split", nargs="+", default=None,
                        help="split(s) (default: clotho evaluation, audiocaps test, synthetic test compositional)")
    parser.add_argument("--data-dir", default=None,
                        help="Clotho / AudioCaps folder, or an `llm-aac synth` corpus (synthetic without it: "
                             "clips rendered in memory)")
    parser.add_argument("--output", required=True, help="folder for predictions-*.jsonl, metrics.json, metrics.md")
    parser.add_argument("--metrics", default="dcase2024",
                        help="metric set (dcase2023, dcase2024, all, fast) or comma-separated metric names")
    parser.add_argument("--no-tokenize", action="store_true",
                        help="score untokenised captions (numbers then differ from published ones)")
    parser.add_argument("--compare-rescoring", action="store_true",
                        help="evaluate plain beam search and CLAP rescoring in one run")
    parser.add_argument("--clap", default=None,
                        help="CLAP scorer for rescoring: Hub id, ClapModel / EAT-CLAP folder or laion-clap .pt "
                             "(default with --compare-rescoring: the scorer saved with the captioner)")
    parser.add_argument("--clap-tokenizer", default=None, help="tokenizer of a laion-clap .pt (e.g. roberta-base)")
    parser.add_argument("--candidates", choices=["slam", "single", "sample"], default=None,
                        help="candidate strategy for rescoring (default: the one saved with the captioner, which "
                             "the pipeline uses too; else slam: beam sizes 2..8)")
    parser.add_argument("--num-candidates", type=int, default=None, help="candidates per clip (single / sample)")
    parser.add_argument("--lm-weight", type=float, default=None,
                        help="weight of the captioner's log-probability in the pick (default: the scorer's, 0)")
    parser.add_argument("--tune-lm-weight", default=None, metavar="SPLIT",
                        help="choose --lm-weight on this split (e.g. validation) by the ranking metric, then score the "
                             "evaluation splits with it")
    parser.add_argument("--lm-weights", default=",".join(f"{w:g}" for w in DEFAULT_LM_WEIGHTS),
                        help="comma-separated weights tried by --tune-lm-weight (default %(default)s)")
    parser.add_argument("--pseudo-references", type=int, default=None, metavar="K",
                        help="sample K captions per clip and fuse each candidate's consensus with them into the pick "
                             "(default: the number saved with the captioner, else 0: none)")
    parser.add_argument("--consensus-weight", type=float, default=None,
                        help="weight of the consensus in the pick (default: the scorer's; chosen with "
                             "--tune-lm-weight unless given)")
    parser.add_argument("--consensus-weights", default=",".join(f"{w:g}" for w in DEFAULT_CONSENSUS_WEIGHTS),
                        help="comma-separated consensus weights tried by --tune-lm-weight (default %(default)s)")
    parser.add_argument("--pseudo-reference-temperature", type=float, default=None, metavar="T",
                        help="sampling temperature of those captions (default: the one saved with the captioner, "
                             "else 1)")
    parser.add_argument("--pseudo-reference-temperatures", default=None, metavar="T1,T2,...",
                        help="with --tune-lm-weight: sampling temperatures tried on that split too (one set of "
                             "samples each); the best one samples the evaluation splits' captions")
    parser.add_argument("--num-beams", type=int, default=None, help="plain decoding beams (default: generation config)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="caption length limit (default: generation config)")
    parser.add_argument("--backend", choices=["auto", "fast", "generate"], default="auto",
                        help="decoder: fast (prefix-sharing, Llama family), generate, or auto")
    parser.add_argument("--batch-size", type=int, default=8, help="clips per batch (default 8)")
    parser.add_argument("--num-workers", type=int, default=2, help="audio decoding processes (default 2)")
    parser.add_argument("--device", default=None, help="cuda / cpu (default: cuda when available)")
    parser.add_argument("--dtype", default="auto", help="auto (bf16 on CUDA), float32, bfloat16, float16")
    parser.add_argument("--max-clips", type=int, default=None,
                        help="first N clips per split (synthetic without --data-dir: clips rendered, default 100)")
    parser.add_argument("--synthetic-seed", type=int, default=0, help="seed of in-memory synthetic clips")


def saved_candidate_defaults(model: str | os.PathLike) -> dict[str, Any]:
    """`CandidateOptions` fields of the candidates saved with a captioner folder (or Hub id) by `save_captioner`,
    so that the evaluation rescores what `pipeline("audio-captioning", model=...)` rescores; SLAM-AAC's
    candidates when the folder saved none."""
    from modeling_llm_aac.caption_candidates import CandidateOptions
    from modeling_llm_aac.pipeline_audio_captioning import read_pipeline_settings

    saved = dict(read_pipeline_settings(os.fspath(model)).get("defaults", {}))
    strategy = saved.pop("candidates", None) or "slam"
    known = {f.name for f in fields(CandidateOptions)}
    return {"strategy": strategy, **{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k in known}}


def _metric_argument(text: str):
    from llm_aac.eval.caption_metrics import METRIC_SETS

    return text if text in METRIC_SETS else [name.strip() for name in text.split(",") if name.strip()]


def _weights_argument(text: str, option: str = "--lm-weights") -> list[float]:
    try:
        weights = [float(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise ValueError(f"{option} must be comma-separated numbers, got {text!r}") from error
    if not weights or not all(math.isfinite(w) for w in weights):
        raise ValueError(f"{option} must hold at least one finite number, got {text!r}")
    return weights


def main(args: argparse.Namespace) -> int:
    from modeling_llm_aac.caption_candidates import CandidateOptions

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.compare_rescoring:
        systems = (BEAM_SEARCH, CLAP_RESCORING)
    elif args.clap is not None:
        systems = (CLAP_RESCORING,)
    else:
        systems = (BEAM_SEARCH,)
    generate_kwargs = {}
    if args.num_beams is not None:
        generate_kwargs["num_beams"] = args.num_beams
    if args.max_new_tokens is not None:
        generate_kwargs["max_new_tokens"] = args.max_new_tokens
    options = saved_candidate_defaults(args.model) if args.candidates is None else {"strategy": args.candidates}
    for name in ("num_candidates", "max_new_tokens"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    if args.pseudo_references is not None:
        options["num_pseudo_references"] = args.pseudo_references
    if args.pseudo_reference_temperature is not None:
        options["pseudo_reference_temperature"] = args.pseudo_reference_temperature
    temperatures = (_weights_argument(args.pseudo_reference_temperatures, "--pseudo-reference-temperatures")
                    if args.pseudo_reference_temperatures is not None else ())
    candidate_options = CandidateOptions(**options, backend=args.backend)
    clap_kwargs = {"tokenizer": args.clap_tokenizer} if args.clap_tokenizer else {}
    summary = evaluate_captioner(
        args.model, args.dataset, args.split, output_dir=args.output, data_dir=args.data_dir,
        metrics=_metric_argument(args.metrics), tokenize=False if args.no_tokenize else None, systems=systems,
        clap=args.clap, clap_kwargs=clap_kwargs, candidate_options=candidate_options, lm_weight=args.lm_weight,
        tune_lm_weight_on=args.tune_lm_weight, lm_weights=_weights_argument(args.lm_weights),
        consensus_weight=args.consensus_weight,
        consensus_weights=_weights_argument(args.consensus_weights, "--consensus-weights"),
        pseudo_reference_temperatures=temperatures, generate_kwargs=generate_kwargs,
        batch_size=args.batch_size, num_workers=args.num_workers, device=args.device, dtype=args.dtype,
        max_clips=args.max_clips, synthetic_seed=args.synthetic_seed,
    )
    with open(os.path.join(args.output, REPORT_FILE), encoding="utf-8") as f:
        print(f.read())
    print(f"predictions and metrics written to {args.output}")
    return 0 if summary else 1
