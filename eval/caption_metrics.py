"""Caption metrics the way the DCASE audio-captioning task computes them, through aac-metrics.

`compute_caption_metrics(predictions, references, metrics="dcase2024")` scores a whole split in one
corpus-level aac-metrics call (CIDEr-D's document frequencies come from the evaluated references),
with every reference of every clip and blank predictions kept as empty strings. Captions are first
sanitised (newlines and runs of whitespace collapsed, ends stripped) and, as aac-metrics'
`evaluate(preprocess=True)` does, lower-cased and tokenised by the Stanford PTB tokenizer, here in a
single Java call for predictions and references together. Without Java (or the tokenizer jar) the
captions are tokenised by `ptb_tokenizer.ptb_tokenize_python`, a pure-Python re-implementation
giving the Java tool's output, unless a caption holds characters it does not cover.

Metrics whose runtime is missing (Java, SPICE's CoreNLP 3.6.0, FENSE's models) are detected before
anything runs and reported in `CaptionMetricsResult.skipped` with the reason and the command that
fixes it; the other metrics are still computed. Nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .java_tools import (
    JavaRuntime,
    JavaToolFiles,
    detect_java,
    lifted_java_version_check,
    prepare_java_tool_cache,
)
from .ptb_tokenizer import ptb_tokenize_python, python_tokenizer_problem

logger = logging.getLogger(__name__)

# Reported score -> column title. Order is the display order of tables.
METRIC_TITLES: dict[str, str] = {
    "bleu_1": "BLEU-1",
    "bleu_2": "BLEU-2",
    "bleu_3": "BLEU-3",
    "bleu_4": "BLEU-4",
    "meteor": "METEOR",
    "rouge_l": "ROUGE-L",
    "cider_d": "CIDEr-D",
    "spice": "SPICE",
    "spider": "SPIDEr",
    "fer": "FER",
    "spider_fl": "SPIDEr-FL",
    "sbert_sim": "SBERT-sim",
    "fense": "FENSE",
    "vocab": "Vocab",
}

# Named metric sets: (scores, ranking metric, PTB tokenisation).
# dcase2023 / dcase2024 are aac-metrics' own sets (2024 as defined in aac-metrics >= 0.5.5) with
# the scores their composite metrics report spelled out, so that SPICE missing still leaves CIDEr-D.
METRIC_SETS: dict[str, tuple[tuple[str, ...], str, bool]] = {
    "dcase2023": (("meteor", "cider_d", "spice", "spider", "fer", "spider_fl"), "spider_fl", True),
    "dcase2024": (
        ("meteor", "cider_d", "spice", "spider", "fer", "spider_fl", "sbert_sim", "fense", "vocab"),
        "fense",
        True,
    ),
    "all": (tuple(METRIC_TITLES), "fense", True),
    # No Java and no model: for quick validation during training. Scores are computed on the
    # sanitised but untokenised captions, so they are not comparable with published numbers.
    "fast": (("bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider_d"), "cider_d", False),
}

# What each score needs besides Python.
_REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "meteor": ("java", "meteor_files"),
    "spice": ("java", "spice_files"),
    "spider": ("java", "spice_files"),
    "fer": ("fer_model",),
    "spider_fl": ("java", "spice_files", "fer_model"),
    "sbert_sim": ("sbert_model",),
    "fense": ("sbert_model", "fer_model"),
}
# aac-metrics functions that report several scores; one call replaces the separate ones.
_COMPOSITE_OUTPUTS: dict[str, frozenset[str]] = {
    "spider_fl": frozenset({"cider_d", "spice", "spider", "fer", "spider_fl"}),
    "fense": frozenset({"sbert_sim", "fer", "fense"}),
    "spider": frozenset({"cider_d", "spice", "spider"}),
}

# Models aac-metrics 0.5.4 loads for FENSE / SPIDEr-FL / FER (aac_metrics.functional.sbert_sim / fer).
SBERT_MODEL_ID = "sentence-transformers/paraphrase-TinyBERT-L6-v2"
FER_CHECKPOINT_NAME = "echecker_clotho_audiocaps_base"
# The encoder the FER checkpoint is built on; read from the checkpoint when possible.
FER_DEFAULT_BACKBONE = "bert-base-uncased"
PYTHON_TOKENIZER_NOTE = (
    "captions were PTB-tokenised by the Python re-implementation (the Java tokenizer cannot run: {problem}); it "
    "gives the Java tokenizer's tokens, so the scores stay comparable with published aac-metrics numbers"
)
MODEL_FIX = (
    "with network access and HF_HUB_OFFLINE unset, run `aac-metrics-download --ptb_tokenizer false "
    "--meteor false --spice false` (downloads {sbert}, {backbone} and the {ckpt} checkpoint)"
)


@dataclass
class CaptionMetricsResult:
    """Corpus-level caption scores and what could not be computed.

    Attributes:
        scores: aac-metrics' corpus scores by their aac-metrics names (`bleu_4`, `cider_d`,
            `spider_fl`, `fense`, `vocab.cands` = vocabulary size of the predictions, ...).
        skipped: requested metric -> why it was not computed and how to make it available.
        ranking_metric: the metric a challenge ranks by (`spider_fl` for dcase2023, `fense` for
            dcase2024), None when none applies.
        metric_set: the set name the metrics came from, None for an explicit list.
        requested: every metric asked for, computed or skipped, in display order.
        num_clips: number of scored clips.
        num_blank_predictions: predictions that were empty after sanitising (scored as "").
        tokenized: whether captions went through the PTB tokenizer (aac-metrics' preprocessing).
        sentence_scores: per-clip scores for the per-clip metrics, in input order.
        warnings: caveats about comparability (e.g. tokenisation unavailable).
        missing: runtime requirement ("java", "spice_files", "fer_model", ...) -> what is missing
            and the fix, for the requirements that caused a skip or a warning.
        tokenizer: which PTB tokenizer ran: "java" (aac-metrics' Stanford tool), "python"
            (`ptb_tokenizer.ptb_tokenize_python`, when Java or the jar is missing), None when the
            captions were not tokenised.
    """

    scores: dict[str, float]
    skipped: dict[str, str]
    ranking_metric: str | None
    metric_set: str | None
    requested: tuple[str, ...]
    num_clips: int
    num_blank_predictions: int
    tokenized: bool
    sentence_scores: dict[str, list[float]] = field(default_factory=dict, repr=False)
    warnings: list[str] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)
    tokenizer: str | None = None

    @property
    def ranking_score(self) -> float | None:
        """Score of the ranking metric, None when it was skipped or there is none."""
        if self.ranking_metric is None:
            return None
        return self.scores.get(self.ranking_metric)

    def to_dict(self, include_sentence_scores: bool = False) -> dict[str, Any]:
        """JSON-serialisable view (what `llm-aac evaluate` writes as metrics.json)."""
        out: dict[str, Any] = {
            "scores": dict(self.scores),
            "skipped": dict(self.skipped),
            "ranking_metric": self.ranking_metric,
            "ranking_score": self.ranking_score,
            "metric_set": self.metric_set,
            "requested": list(self.requested),
            "num_clips": self.num_clips,
            "num_blank_predictions": self.num_blank_predictions,
            "tokenized": self.tokenized,
            "tokenizer": self.tokenizer,
            "warnings": list(self.warnings),
            "missing": dict(self.missing),
        }
        if include_sentence_scores:
            out["sentence_scores"] = {name: list(values) for name, values in self.sentence_scores.items()}
        return out

    def markdown_table(self, name: str = "model", digits: int = 3) -> str:
        """This result as a one-row markdown table followed by notes on skipped metrics."""
        return markdown_table({name: self}, digits=digits)


def resolve_metrics(metrics: str | Iterable[str]) -> tuple[tuple[str, ...], str | None, str | None, bool]:
    """Expand a set name or list into (metric names, set name, ranking metric, tokenise by default).

    Args:
        metrics: "dcase2023", "dcase2024", "all", "fast", a single metric name or a list of names
            (see `METRIC_TITLES`; "bleu" stands for bleu_1..bleu_4).
    """
    if isinstance(metrics, str) and metrics in METRIC_SETS:
        names, ranking, tokenize = METRIC_SETS[metrics]
        return names, metrics, ranking, tokenize
    listed = [metrics] if isinstance(metrics, str) else list(metrics)
    if not listed:
        raise ValueError("metrics is empty: pass a set name (" + ", ".join(METRIC_SETS) + ") or metric names")
    expanded: list[str] = []
    for name in listed:
        if not isinstance(name, str):
            raise TypeError(f"metric names must be strings, got {name!r} ({type(name).__name__})")
        key = name.strip().lower().replace("-", "_")
        parts = ["bleu_1", "bleu_2", "bleu_3", "bleu_4"] if key == "bleu" else [key]
        for part in parts:
            if part not in METRIC_TITLES:
                raise ValueError(
                    f"unknown metric {name!r}; known metrics: {', '.join(METRIC_TITLES)}; "
                    f"metric sets: {', '.join(METRIC_SETS)}"
                )
            if part not in expanded:
                expanded.append(part)
    ordered = tuple(name for name in METRIC_TITLES if name in expanded)
    return ordered, None, expanded[0], True


def sanitize_caption(text: str) -> str:
    """Collapse newlines, tabs and runs of whitespace into single spaces and strip the ends."""
    return " ".join(text.split())


def ptb_tokenize(texts: Sequence[str], *, cache_path: str | os.PathLike | None = None,
                 java_path: str | os.PathLike | None = None) -> list[str]:
    """PTB-tokenise (and lower-case) captions in one Java run, as `compute_caption_metrics` does before scoring;
    whitespace is collapsed first (`sanitize_caption`). The tokenizer works line by line (but for one case: a
    single-letter acronym such as "I." ending a caption loses its period when the next caption starts with "The",
    "It", ...), so scoring the returned strings with `tokenize=False` equals scoring the originals with
    `tokenize=True`: callers that score many re-selections of the same captions tokenise once.

    Without Java or the tokenizer jar, the captions are tokenised by the pure-Python re-implementation
    (`ptb_tokenizer.ptb_tokenize_python`, same output) and a warning says so.

    Raises:
        RuntimeError: Java or the tokenizer jar is missing and a caption holds characters the Python
            re-implementation does not cover (the message names it and says how to install Java).
    """
    sanitized = [sanitize_caption(text) for text in texts]
    java = detect_java(java_path)
    files = prepare_java_tool_cache(cache_path)
    problem = java.problem or files.ptb_tokenizer_problem
    if problem:
        python_problem = python_tokenizer_problem(sanitized)
        if python_problem is not None:
            raise RuntimeError(f"PTB tokenisation cannot run: {problem}; the Python re-implementation cannot stand in: "
                               f"{python_problem}")
        logger.warning(PYTHON_TOKENIZER_NOTE.format(problem=problem))
        return ptb_tokenize_python(sanitized)
    from aac_metrics.utils.tokenization import preprocess_mono_sents

    with lifted_java_version_check(java):
        return preprocess_mono_sents(sanitized, cache_path=files.cache_path, java_path=java.path)


def _sanitize_inputs(
    predictions: Sequence[str | None], references: Sequence[Sequence[str]]
) -> tuple[list[str], list[list[str]], int]:
    if isinstance(predictions, str) or not isinstance(predictions, Sequence):
        raise TypeError(f"predictions must be a list of strings (one per clip), got {type(predictions).__name__}")
    if isinstance(references, str) or not isinstance(references, Sequence):
        raise TypeError(
            f"references must be a list with one list of reference captions per clip, got {type(references).__name__}"
        )
    if len(predictions) != len(references):
        raise ValueError(f"got {len(predictions)} predictions but {len(references)} reference lists; they must match clip by clip")
    if len(predictions) == 0:
        raise ValueError("no clips to score: predictions and references are empty")

    candidates: list[str] = []
    for index, prediction in enumerate(predictions):
        if prediction is None:
            prediction = ""
        if not isinstance(prediction, str):
            raise TypeError(f"prediction {index} is {type(prediction).__name__} ({prediction!r}), expected a string")
        candidates.append(sanitize_caption(prediction))

    mult_references: list[list[str]] = []
    blank_references: list[str] = []
    for index, clip_references in enumerate(references):
        if isinstance(clip_references, str):
            raise TypeError(
                f"references[{index}] is a single string ({clip_references!r}); wrap it in a list: one list of captions per clip"
            )
        if not isinstance(clip_references, Sequence) or len(clip_references) == 0:
            raise ValueError(f"clip {index} has no reference captions (got {clip_references!r})")
        cleaned = []
        for ref_index, reference in enumerate(clip_references):
            if not isinstance(reference, str):
                raise TypeError(
                    f"references[{index}][{ref_index}] is {type(reference).__name__} ({reference!r}), expected a string"
                )
            reference = sanitize_caption(reference)
            if not reference:
                blank_references.append(f"references[{index}][{ref_index}]")
            cleaned.append(reference)
        mult_references.append(cleaned)
    if blank_references:
        shown = ", ".join(blank_references[:10]) + (" ..." if len(blank_references) > 10 else "")
        raise ValueError(f"{len(blank_references)} reference captions are blank ({shown}); fix the reference data")

    num_blank = sum(1 for candidate in candidates if not candidate)
    return candidates, mult_references, num_blank


def _hub_cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def _fense_data_dir() -> Path:
    # Same lookup as aac_metrics.functional.fer (FENSE_DATA, else <torch hub dir>/fense_data).
    import torch.hub

    return Path(os.path.expanduser(os.environ.get("FENSE_DATA", os.path.join(torch.hub.get_dir(), "fense_data"))))


def _fer_backbone(checkpoint: Path) -> str:
    import torch

    try:
        # mmap reads the small header without loading the 400 MB of weights.
        state = torch.load(checkpoint, map_location="cpu", mmap=True, weights_only=True)
        return str(state["model_type"])
    except Exception:  # legacy (non-zip) checkpoint format or unexpected layout: assume FENSE's encoder
        return FER_DEFAULT_BACKBONE


def _model_problems(needed: set[str]) -> dict[str, str | None]:
    problems: dict[str, str | None] = {}
    checkpoint = _fense_data_dir() / f"{FER_CHECKPOINT_NAME}.ckpt"
    backbone = FER_DEFAULT_BACKBONE
    if "fer_model" in needed:
        if not checkpoint.is_file():
            problems["fer_model"] = f"fluency-error detector checkpoint {checkpoint} is missing"
        else:
            backbone = _fer_backbone(checkpoint)
            cached = _hub_cached(backbone) or (
                "/" not in backbone and _hub_cached(f"google-bert/{backbone}")
            )
            problems["fer_model"] = None if cached else f"the detector's encoder {backbone!r} is not in the Hugging Face cache"
    if "sbert_model" in needed:
        problems["sbert_model"] = (
            None if _hub_cached(SBERT_MODEL_ID) else f"the SBERT model {SBERT_MODEL_ID!r} is not in the Hugging Face cache"
        )
    fix = MODEL_FIX.format(sbert=SBERT_MODEL_ID, backbone=backbone, ckpt=checkpoint)
    return {key: (f"{problem}; fix: {fix}" if problem else None) for key, problem in problems.items()}


def _plan_aac_calls(wanted: Sequence[str]) -> list[str]:
    """aac-metrics metric functions that produce `wanted` with the fewest calls."""
    calls: list[str] = []
    covered: set[str] = set()
    for composite, outputs in _COMPOSITE_OUTPUTS.items():
        if composite in wanted and composite not in covered:
            calls.append(composite)
            covered |= outputs
    for name in wanted:
        if name not in covered:
            calls.append(name)
            covered.add(name)
    return calls


def _keep_score(key: str, wanted: Sequence[str]) -> bool:
    return key in wanted or ("vocab" in wanted and key.startswith("vocab."))


def compute_caption_metrics(
    predictions: Sequence[str | None],
    references: Sequence[Sequence[str]],
    metrics: str | Iterable[str] = "dcase2024",
    *,
    ranking_metric: str | None = None,
    tokenize: bool | None = None,
    cache_path: str | os.PathLike | None = None,
    java_path: str | os.PathLike | None = None,
    device: Any = "cuda_if_available",
    verbose: int = 0,
) -> CaptionMetricsResult:
    """Score generated captions against their references with aac-metrics, in one corpus-level call.

    Args:
        predictions: one generated caption per clip; blank strings (or None) are scored as "".
        references: for each clip, all of its reference captions.
        metrics: a set name ("dcase2023": SPIDEr-FL ranking; "dcase2024": FENSE ranking; "all";
            "fast": BLEU / ROUGE-L / CIDEr-D without Java or tokenisation) or metric names
            (`METRIC_TITLES`).
        ranking_metric: override the metric reported as `ranking_metric` (default: the set's, or
            the first listed metric).
        tokenize: PTB-tokenise (and lower-case) captions before scoring as aac-metrics does. None:
            yes, except for the "fast" set. When Java or the tokenizer jar is missing, the pure-Python
            re-implementation tokenises instead (same tokens; `tokenizer` says "python", with a
            warning); when it cannot either (a caption holds characters it does not cover), the
            scores are computed on untokenised captions with a warning. True: fail in that case.
        cache_path: aac-metrics cache directory holding the jars (default: aac-metrics' own,
            $AAC_METRICS_CACHE_PATH or ~/.cache). The PTB-tokenizer and METEOR jars are linked
            there from the installed `pycocoevalcap` wheel when missing.
        java_path: Java executable (default: $AAC_METRICS_JAVA_PATH or `java` on PATH). Java newer
            than aac-metrics' supported 13 is accepted (see `java_tools.lifted_java_version_check`).
        device: torch device for FENSE / SPIDEr-FL / FER models.
        verbose: aac-metrics verbosity.

    Returns:
        `CaptionMetricsResult` with corpus scores, skipped metrics and their reasons.
    """
    candidates, mult_references, num_blank = _sanitize_inputs(predictions, references)
    requested, metric_set, set_ranking, default_tokenize = resolve_metrics(metrics)
    if ranking_metric is not None:
        key = str(ranking_metric).strip().lower().replace("-", "_")
        if key not in METRIC_TITLES:
            raise ValueError(f"unknown ranking_metric {ranking_metric!r}; known metrics: {', '.join(METRIC_TITLES)}")
        ranking_metric = key
    else:
        ranking_metric = set_ranking
    must_tokenize = tokenize is True
    want_tokenize = default_tokenize if tokenize is None else tokenize

    needed = {requirement for name in requested for requirement in _REQUIREMENTS.get(name, ())}
    if want_tokenize:
        needed |= {"java", "ptb_files"}
    problems: dict[str, str | None] = {}
    java: JavaRuntime | None = None
    files: JavaToolFiles | None = None
    if "java" in needed:
        java = detect_java(java_path)
        problems["java"] = java.problem
    if needed & {"ptb_files", "meteor_files", "spice_files"}:
        files = prepare_java_tool_cache(cache_path)
        problems["ptb_files"] = files.ptb_tokenizer_problem
        problems["meteor_files"] = files.meteor_problem
        problems["spice_files"] = files.spice_problem
    problems.update(_model_problems(needed & {"fer_model", "sbert_model"}))

    skipped: dict[str, str] = {}
    for name in requested:
        reasons = [problems[req] for req in _REQUIREMENTS.get(name, ()) if problems.get(req)]
        if reasons:
            # De-duplicate while keeping order (SPIDEr-FL can list Java twice through SPICE).
            skipped[name] = " | ".join(dict.fromkeys(reasons))
    wanted = [name for name in requested if name not in skipped]
    used = {req for name in skipped for req in _REQUIREMENTS[name]}

    warnings: list[str] = []
    tokenizer: str | None = None
    if want_tokenize:
        tokenizer_problem = problems.get("java") or problems.get("ptb_files")
        python_problem = None
        if tokenizer_problem is not None:
            python_problem = python_tokenizer_problem(candidates + [ref for refs in mult_references for ref in refs])
        if tokenizer_problem is None:
            tokenizer = "java"
        elif python_problem is None:
            tokenizer = "python"
            message = PYTHON_TOKENIZER_NOTE.format(problem=tokenizer_problem)
            warnings.append(message)
            logger.warning(message)
        elif must_tokenize:
            raise RuntimeError(
                f"PTB tokenisation was requested but cannot run: {tokenizer_problem}; the Python re-implementation "
                f"cannot stand in: {python_problem}"
            )
        else:
            message = (
                "captions were not PTB-tokenised (" + tokenizer_problem + "; the Python re-implementation cannot "
                "stand in: " + python_problem + "); scores are computed on untokenised text and are not comparable "
                "with published aac-metrics numbers"
            )
            warnings.append(message)
            logger.warning(message)
            used |= {"java", "ptb_files"}
    tokenized = tokenizer is not None
    missing = {req: problem for req, problem in problems.items() if problem and req in used}
    for name, reason in skipped.items():
        logger.warning("caption metric %s skipped: %s", name, reason)

    scores: dict[str, float] = {}
    sentence_scores: dict[str, list[float]] = {}
    uses_java = tokenizer == "java" or any("java" in _REQUIREMENTS.get(name, ()) for name in wanted)
    if wanted:
        from aac_metrics.functional.evaluate import evaluate as aac_evaluate
        from aac_metrics.utils.tokenization import preprocess_mult_sents

        java_executable = java.path if java is not None and java.available else java_path
        aac_cache = files.cache_path if files is not None else cache_path
        with lifted_java_version_check(java) if uses_java and java is not None else contextlib.nullcontext():
            if tokenized:
                # One tokenizer run for predictions and references together: the PTB tokenizer
                # works line by line (see `ptb_tokenize` for the one exception), so this equals
                # aac-metrics' two separate runs.
                together = [[candidate] for candidate in candidates] + mult_references
                if tokenizer == "java":
                    tokenized_all = preprocess_mult_sents(
                        together, cache_path=aac_cache, java_path=java_executable, verbose=verbose
                    )
                else:
                    flat = iter(ptb_tokenize_python([sentence for sentences in together for sentence in sentences]))
                    tokenized_all = [[next(flat) for _ in sentences] for sentences in together]
                candidates = [sentences[0] for sentences in tokenized_all[: len(candidates)]]
                mult_references = tokenized_all[len(candidates) :]
            corpus_outputs, sentence_outputs = aac_evaluate(
                candidates,
                mult_references,
                preprocess=False,
                metrics=_plan_aac_calls(wanted),
                cache_path=aac_cache,
                java_path=java_executable,
                device=device,
                verbose=verbose,
            )
        scores = {key: float(value) for key, value in corpus_outputs.items() if _keep_score(key, wanted)}
        sentence_scores = {
            key: [float(v) for v in value.tolist()]
            for key, value in sentence_outputs.items()
            if _keep_score(key, wanted)
        }

    return CaptionMetricsResult(
        scores=scores,
        skipped=skipped,
        ranking_metric=ranking_metric,
        metric_set=metric_set,
        requested=requested,
        num_clips=len(candidates),
        num_blank_predictions=num_blank,
        tokenized=tokenized,
        sentence_scores=sentence_scores,
        warnings=warnings,
        missing=missing,
        tokenizer=tokenizer,
    )


def _format_score(name: str, result: CaptionMetricsResult, digits: int) -> str:
    key = "vocab.cands" if name == "vocab" else name
    value = result.scores.get(key)
    if value is None:
        return "n/a"
    if name == "vocab":
        return str(int(round(value)))
    if math.isnan(value):
        return "nan"
    return f"{value:.{digits}f}"


def markdown_table(results: Mapping[str, CaptionMetricsResult], digits: int = 3) -> str:
    """A markdown table with one row per named result (e.g. beam search vs CLAP rescoring).

    Columns are the union of the requested metrics in display order; the ranking metric's title is
    bold; skipped metrics show "n/a" and are explained in notes under the table.
    """
    if not results:
        raise ValueError("markdown_table needs at least one result")
    requested = {name for result in results.values() for name in result.requested}
    columns = [name for name in METRIC_TITLES if name in requested]
    rankings = {result.ranking_metric for result in results.values()}
    titles = [f"**{METRIC_TITLES[name]}**" if name in rankings else METRIC_TITLES[name] for name in columns]
    lines = [
        "| system | " + " | ".join(titles) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for row_name, result in results.items():
        cells = [_format_score(name, result, digits) for name in columns]
        lines.append(f"| {row_name} | " + " | ".join(cells) + " |")

    notes: list[str] = []
    for row_name, result in results.items():
        prefix = f"{row_name}: " if len(results) > 1 else ""
        for requirement, problem in result.missing.items():
            affected = [METRIC_TITLES[name] for name in result.skipped if requirement in _REQUIREMENTS[name]]
            if affected:
                notes.append(f"- {prefix}{', '.join(affected)} skipped: {problem}")
        for warning in result.warnings:
            notes.append(f"- {prefix}{warning}")
        if result.num_blank_predictions:
            notes.append(
                f"- {prefix}{result.num_blank_predictions} of {result.num_clips} predictions were blank (scored as empty captions)"
            )
    if notes:
        lines.append("")
        lines.extend(notes)
    return "\n".join(lines) + "\n"
