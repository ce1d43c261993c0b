"""`llm-aac rerank-report`: how far could any reference-free re-ranker of the saved candidates go?

    python -m llm_aac.eval.reranker_analysis out/evaluation/predictions-clap_rescoring.jsonl \
        --beam out/evaluation/predictions-beam_search.jsonl --output-json out/evaluation/reranker.json
    llm-aac rerank-report out/evaluation        # the same: the folder's rescoring and beam-search predictions

`llm-aac evaluate --compare-rescoring` saves, per clip, the candidates it re-ranked with their CLAP similarity and
the captioner's length-normalised log-probability. `candidate_headroom` says how much a perfect re-ranker could
gain from them (the oracle, which reads the references); this report asks what a re-ranker that cannot read the
references could realistically take, from the signals there are per candidate:

* `clap` -- the candidate's CLAP audio-text similarity (`clap_score`);
* `log_prob` -- the captioner's length-normalised log-probability;
* `consensus` -- consensus among candidates: the candidate's CIDEr-D against the clip's OTHER candidates as
  references (minimum Bayes risk: the candidate most like the rest is the safest guess of what the references say);
* `sampled_consensus` -- consensus with samples, only when the run sampled captions (`llm-aac evaluate
  --pseudo-references K`): the candidate's agreement with K captions sampled from the captioner for the clip, in
  [0, 1], read from the candidates' `consensus` field (`modeling_llm_aac.consensus_scoring`). Unlike consensus among
  candidates, the samples are drawn independently of the beams, so they estimate the captioner's distribution of
  phrasings rather than the beams' agreement with each other. It is used when every candidate of every clip carries
  the field; a file where only some do is refused. Without it, the report is the three-signal one.

Each signal is z-scored within its clip and mixed linearly with non-negative weights from a small grid (every
combination of `--weights` per signal, at least one non-zero: 215 vectors with the default weights and three
signals, 1295 with four); a mix picks the clip's candidate of highest mixed score. Every pick is scored with CIDEr-D
against the clip's references (`candidate_headroom.candidate_scores`, so the document frequencies are the
evaluation's own). Rules compared, per split:

* beam search (with `--beam`: the plain decoding's caption), the captioner's pick (highest log-probability, which
  is also `log_prob` alone), the run's pick (the records' `prediction`, e.g. CLAP fused with the log-probability),
  `clap` alone, `consensus` alone and, when present, `sampled_consensus` alone (weight 1 on the signal);
* the best mix, with all signals, without `clap` and, when sampled consensus is present, of `clap` and
  `sampled_consensus` only (the other weights 0: how much of a gain is CLAP's and how much the samples'), each chosen
  by cross-fitting: the clips are split into two halves by their position in the split (even / odd), the weights
  that score best on one half are scored on the other, and the reported number is the CIDEr-D over all clips of
  these held-out picks (each clip picked with the weights chosen on the other half). The in-sample best (weights
  chosen and scored on all clips) is reported too, labelled optimistic: with hundreds of weight vectors to choose
  from, it partly fits noise;
* the oracle (best candidate by the references) and the worst candidate.

Gains are relative to beam search, or to the captioner's pick without `--beam`. Ties go to the earlier candidate
(by its `index`, the captioner's rank) and, among weight vectors, to the one with the fewest non-zero weights.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from llm_aac.processing.json_lines import iter_json_lines

SIGNALS = ("clap", "log_prob", "consensus")
SAMPLED_CONSENSUS = "sampled_consensus"
# Record field of each signal read from the candidates. The `consensus` signal (among candidates) is computed here;
# the candidates' `consensus` FIELD is the evaluation's consensus with sampled captions, signal `sampled_consensus`.
SIGNAL_FIELDS = {"clap": "clap_score", "log_prob": "log_prob"}
SAMPLED_CONSENSUS_FIELD = "consensus"
DEFAULT_WEIGHT_VALUES = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
# Cross-fitting needs two halves of at least two clips each.
MIN_CLIPS = 4
HALVES = ("even", "odd")
BEAM_SEARCH = "beam_search"
CAPTIONER_PICK = "captioner_pick"
RULE_LABELS = {
    BEAM_SEARCH: "beam search",
    CAPTIONER_PICK: "captioner's pick (= log-prob alone)",
    "run_pick": "the run's pick (`prediction`)",
    "clap_alone": "CLAP alone",
    "consensus_alone": "consensus alone",
    "sampled_consensus_alone": "sampled consensus alone (consensus with samples)",
    "mix_crossfit": "best mix, cross-fitted",
    "mix_without_clap_crossfit": "best mix without CLAP, cross-fitted",
    "mix_clap_sampled_consensus_crossfit": "best mix of CLAP and sampled consensus only, cross-fitted",
    "mix_in_sample": "best mix, in-sample (optimistic)",
    "mix_without_clap_in_sample": "best mix without CLAP, in-sample (optimistic)",
    "mix_clap_sampled_consensus_in_sample": "best mix of CLAP and sampled consensus only, in-sample (optimistic)",
    "oracle": "oracle (reads the references)",
    "worst": "worst candidate",
}
# With sampled consensus present, the computed consensus is named apart from it.
RULE_LABELS_WITH_SAMPLES = {**RULE_LABELS, "consensus_alone": "consensus among candidates alone"}
SIGNAL_LEGEND = ("Signals: clap = CLAP similarity; log_prob = the captioner's log-probability; consensus = consensus "
                 "among candidates (CIDEr-D against the clip's other candidates); sampled_consensus = consensus with "
                 "samples (agreement with the captioner's sampled captions, the candidates' `consensus` field).")
BASELINE_LABELS = {BEAM_SEARCH: "beam search", CAPTIONER_PICK: "the captioner's pick"}


# ----------------------------------------------------------------------------------------------- input


def read_predictions(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of an evaluation's `predictions-<system>.jsonl`, each checked for `file`, `split` and a string
    `prediction`; ValueError naming the file and line otherwise."""
    path = os.fspath(path)
    records = []
    for number, record in iter_json_lines(path):
        missing = [key for key in ("file", "split", "prediction") if key not in record]
        if missing:
            raise ValueError(f"{path}, line {number}: record has no {', '.join(map(repr, missing))} "
                             f"(keys: {sorted(record)})")
        if not isinstance(record["prediction"], str):
            raise ValueError(f"{path}, line {number} ({record['file']!r}): prediction is "
                             f"{type(record['prediction']).__name__} ({record['prediction']!r}), expected a string")
        records.append(record)
    if not records:
        raise ValueError(f"{path}: empty file, no records")
    return records


def check_rescoring_records(records: Sequence[Mapping[str, Any]], path: str = "the rescoring records") -> None:
    """Every record needs references and candidates, every candidate a caption and finite `clap_score` and
    `log_prob`; the `consensus` field (consensus with sampled captions) is optional, but then on every candidate of
    every record and finite. ValueError naming the first offending clip otherwise."""
    with_consensus = without_consensus = None  # (clip, candidate position) of a first example of each
    for record in records:
        clip = record.get("file")
        references = record.get("references")
        if (not isinstance(references, list) or not references
                or not all(isinstance(r, str) for r in references)):
            raise ValueError(f"{path}: clip {clip!r} has no reference captions (references={references!r})")
        candidates = record.get("candidates")
        if not isinstance(candidates, list) or not candidates:
            raise ValueError(f"{path}: clip {clip!r} has no candidates (candidates={candidates!r}); re-ranking needs "
                             "the candidate lists that `llm-aac evaluate` saves for clap_rescoring")
        for position, entry in enumerate(candidates):
            if not isinstance(entry, Mapping) or not isinstance(entry.get("caption"), str):
                raise ValueError(f"{path}: clip {clip!r}, candidate {position} has no caption: {entry!r}")
            for field in SIGNAL_FIELDS.values():
                if field not in entry or entry[field] is None:
                    raise ValueError(
                        f"{path}: candidates without {field!r} (e.g. clip {clip!r}, candidate {position}: "
                        f"{sorted(entry)}); the re-ranking signals need every candidate's clap_score and log_prob, "
                        "as `llm-aac evaluate` saves them for clap_rescoring")
                value = entry[field]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise ValueError(f"{path}: clip {clip!r}, candidate {position}: {field} is {value!r}, "
                                     "expected a finite number")
            value = entry.get(SAMPLED_CONSENSUS_FIELD)
            if value is None:
                without_consensus = without_consensus or (clip, position)
                continue
            with_consensus = with_consensus or (clip, position)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{path}: clip {clip!r}, candidate {position}: {SAMPLED_CONSENSUS_FIELD} (consensus "
                                 f"with sampled captions) is {value!r}, expected a finite number")
            if with_consensus and without_consensus:
                break
        if with_consensus and without_consensus:
            raise ValueError(
                f"{path}: only some candidates carry {SAMPLED_CONSENSUS_FIELD!r} (consensus with sampled captions): "
                f"clip {without_consensus[0]!r}, candidate {without_consensus[1]} has none, clip "
                f"{with_consensus[0]!r}, candidate {with_consensus[1]} has one; the sampled_consensus signal needs it "
                "on every candidate of every clip (one `llm-aac evaluate --pseudo-references K` run), or on none")


def rescoring_signals(records: Sequence[Mapping[str, Any]], path: str = "the rescoring records") -> tuple[str, ...]:
    """The signals the records allow (checked by `check_rescoring_records`): `SIGNALS`, plus `sampled_consensus`
    when the candidates carry their consensus with sampled captions."""
    check_rescoring_records(records, path)
    sampled = bool(records) and records[0]["candidates"][0].get(SAMPLED_CONSENSUS_FIELD) is not None
    return (*SIGNALS, SAMPLED_CONSENSUS) if sampled else SIGNALS


def _by_split(records: Sequence[Mapping[str, Any]], path: str) -> dict[str, dict[str, Mapping[str, Any]]]:
    grouped: dict[str, dict[str, Mapping[str, Any]]] = {}
    for record in records:
        clips = grouped.setdefault(str(record["split"]), {})
        if record["file"] in clips:
            raise ValueError(f"{path}: clip {record['file']!r} appears twice in split {record['split']!r}")
        clips[record["file"]] = record
    return grouped


def match_beam_predictions(records: Sequence[Mapping[str, Any]], beam_records: Sequence[Mapping[str, Any]], *,
                           path: str = "the rescoring records", beam_path: str = "the beam-search records",
                           ) -> dict[str, list[str]]:
    """Per split, the beam-search caption of each rescoring record (in the records' order); ValueError when the two
    files hold different splits or different clips."""
    ours, theirs = _by_split(records, path), _by_split(beam_records, beam_path)
    if set(ours) != set(theirs):
        raise ValueError(f"the splits differ: {path} has {sorted(ours)}, {beam_path} has {sorted(theirs)}")
    matched = {}
    for split, clips in ours.items():
        only_ours = [clip for clip in clips if clip not in theirs[split]]
        only_theirs = [clip for clip in theirs[split] if clip not in clips]
        if only_ours or only_theirs:
            raise ValueError(
                f"split {split!r}: the files hold different clips: {len(only_ours)} only in {path} "
                f"(e.g. {only_ours[:3]}), {len(only_theirs)} only in {beam_path} (e.g. {only_theirs[:3]})")
        matched[split] = [theirs[split][clip]["prediction"] for clip in clips]
    return matched


# ----------------------------------------------------------------------------------------------- signals


def weight_grid(values: Sequence[float] = DEFAULT_WEIGHT_VALUES, signals: Sequence[str] = SIGNALS,
                ) -> list[tuple[float, ...]]:
    """Every weight vector over `signals` with entries from `values` and at least one non-zero, sparsest first (so
    that ties between equally good vectors go to the simplest). 0 is always among the values: every signal can be
    left out (the mixes without CLAP need it)."""
    values = sorted(set(float(v) for v in values) | {0.0})
    if any(not math.isfinite(v) or v < 0 for v in values) or max(values) <= 0:
        raise ValueError(f"weights must be finite, non-negative and not all zero, got {values}")
    grid = [w for w in itertools.product(values, repeat=len(signals)) if any(w)]
    return sorted(grid, key=lambda w: (sum(v != 0 for v in w), w))


def consensus_scores(captions: Sequence[Sequence[str]], tokenize: bool | None) -> list[list[float]]:
    """Per clip, each candidate's CIDEr-D against the clip's other candidates as references: one corpus call per
    candidate slot (the document frequencies are those of the other candidates, over all clips). A clip with a
    single candidate gets 0 (it has nothing to agree with, and nothing to be chosen over)."""
    from llm_aac.eval.candidate_headroom import slot_scores

    def others(positions: list[int]) -> list[list[str]]:
        return [[r for j, r in enumerate(c) if j != k] or list(c) for c, k in zip(captions, positions)]

    scores = slot_scores(captions, others, tokenize)
    return [clip if len(c) > 1 else [0.0] for clip, c in zip(scores, captions)]


def zscore_within_clips(values, mask):
    """`values` (clips, slots, signals) standardised per clip and signal over the clip's real candidates (`mask`);
    a signal constant within a clip becomes 0 there.

    Why within the clip: only the ranking inside a clip matters, and the signals' scales differ from clip to clip
    (CLAP similarities of one clip's candidates may span 0.005, another's 0.1; log-probabilities likewise), so raw
    values would let the clips with the widest spread decide the weights. Standardised, a weight means "per
    within-clip standard deviation" and one weight vector fits every clip."""
    import numpy as np

    real = mask[..., None].astype(values.dtype)
    count = real.sum(axis=1, keepdims=True)
    filled = np.where(mask[..., None], values, 0.0)
    mean = filled.sum(axis=1, keepdims=True) / count
    spread = np.sqrt((((filled - mean) * real) ** 2).sum(axis=1, keepdims=True) / count)
    safe = np.where(spread > 1e-12, spread, 1.0)
    return np.where((spread > 1e-12) & mask[..., None], (filled - mean) / safe, 0.0)


# ----------------------------------------------------------------------------------------------- analysis


def _ordered_candidates(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    # Records list candidates best-scored first; the captioner's own order (`index`) makes ties go to its top beam.
    candidates = list(record["candidates"])
    if all(isinstance(entry.get("index"), int) for entry in candidates):
        candidates.sort(key=lambda entry: entry["index"])
    return candidates


def analyse_split(records: Sequence[Mapping[str, Any]], beam_predictions: Sequence[str] | None = None, *,
                  tokenize: bool | None = False, weight_values: Sequence[float] = DEFAULT_WEIGHT_VALUES,
                  split: str = "split", signals: Sequence[str] | None = None) -> dict[str, Any]:
    """The report (module docstring) of one split.

    Args:
        records: the split's `predictions-clap_rescoring.jsonl` records (checked by `check_rescoring_records`).
        beam_predictions: the plain beam search's caption per record, in the same order (None: no beam row; gains
            are then relative to the captioner's pick).
        tokenize: PTB-tokenise before CIDEr-D (`compute_caption_metrics`: Java, else the pure-Python copy).
        weight_values: the values each signal's weight takes in the grid.
        split: the split's name, for error messages.
        signals: the signals to use, `SIGNALS` with or without `sampled_consensus` (default: `rescoring_signals` of
            the records, i.e. with it when the candidates carry their consensus with sampled captions).

    Returns:
        `clips`, `candidates_per_clip`, `baseline`, `rules` (per rule: `cider_d`, `gain` over the baseline, and for
        mixes the `weights`), `crossfit` (per mix family: the weights chosen on each half and their scores on it and
        on the other half), `grid_size`, and the cross-fitted gains of the best mixes (`best_mix_gain`,
        `best_mix_without_clap_gain` and, with sampled consensus, `best_mix_clap_sampled_consensus_gain`).
    """
    import numpy as np

    from llm_aac.eval.candidate_headroom import candidate_scores, sentence_scores

    if len(records) < MIN_CLIPS:
        raise ValueError(f"split {split!r} has {len(records)} clip(s); cross-fitting needs at least {MIN_CLIPS} "
                         "(two halves of two)")
    if beam_predictions is not None and len(beam_predictions) != len(records):
        raise ValueError(f"split {split!r}: {len(beam_predictions)} beam-search captions for {len(records)} records")
    available = rescoring_signals(records, f"split {split!r}")
    signals = available if signals is None else tuple(signals)
    if signals not in (SIGNALS, (*SIGNALS, SAMPLED_CONSENSUS)) or not set(signals) <= set(available):
        raise ValueError(f"split {split!r}: cannot use signals {list(signals)}; the records allow {list(available)} "
                         f"(and the signals are {list(SIGNALS)}, optionally with {SAMPLED_CONSENSUS!r})")
    candidates = [_ordered_candidates(record) for record in records]
    captions = [[entry["caption"] for entry in c] for c in candidates]
    references = [list(record["references"]) for record in records]
    clips, slots = len(records), max(len(c) for c in captions)

    mask = np.zeros((clips, slots), dtype=bool)
    cider = np.full((clips, slots), np.nan)
    raw = np.zeros((clips, slots, len(signals)))
    consensus = consensus_scores(captions, tokenize)
    for i, (entries, scores) in enumerate(zip(candidates, candidate_scores(captions, references, tokenize))):
        mask[i, :len(entries)] = True
        cider[i, :len(entries)] = scores
        for k, entry in enumerate(entries):
            raw[i, k, :2] = (entry[SIGNAL_FIELDS["clap"]], entry[SIGNAL_FIELDS["log_prob"]])
            raw[i, k, 2] = consensus[i][k]
            if SAMPLED_CONSENSUS in signals:
                raw[i, k, 3] = entry[SAMPLED_CONSENSUS_FIELD]
    standardised = zscore_within_clips(raw, mask)

    grid = weight_grid(weight_values, signals)

    def without(*left_out: str) -> list[int]:  # the grid vectors that give the named signals weight 0
        return [g for g, w in enumerate(grid) if all(w[signals.index(s)] == 0 for s in left_out)]

    families = {"mix": list(range(len(grid))), "mix_without_clap": without("clap")}
    if SAMPLED_CONSENSUS in signals:
        families["mix_clap_sampled_consensus"] = without("log_prob", "consensus")
    mixed = standardised @ np.asarray(grid).T  # (clips, slots, grid)
    mixed[~mask] = -np.inf
    picked = cider[np.arange(clips)[:, None], mixed.argmax(axis=1)]  # (clips, grid): CIDEr-D of each vector's pick

    def pick_by(weights: Sequence[float]) -> float:
        values = standardised @ np.asarray(weights, dtype=float)
        values[~mask] = -np.inf
        return float(cider[np.arange(clips), values.argmax(axis=1)].mean())

    def as_weights(index: int) -> dict[str, float]:
        return dict(zip(signals, grid[index]))

    rules: dict[str, dict[str, Any]] = {}
    if beam_predictions is not None:
        rules[BEAM_SEARCH] = {"cider_d": float(np.mean(sentence_scores(beam_predictions, references, tokenize)))}
    log_probs = np.where(mask, raw[..., signals.index("log_prob")], -np.inf)
    rules[CAPTIONER_PICK] = {"cider_d": float(cider[np.arange(clips), log_probs.argmax(axis=1)].mean())}
    rules["run_pick"] = {"cider_d": float(np.mean(sentence_scores([r["prediction"] for r in records], references,
                                                                  tokenize)))}
    for signal in ("clap", "consensus", SAMPLED_CONSENSUS):
        if signal in signals:
            alone = tuple(float(s == signal) for s in signals)
            rules[f"{signal}_alone"] = {"cider_d": pick_by(alone), "weights": dict(zip(signals, alone))}

    halves = {name: np.arange(start, clips, 2) for start, name in enumerate(HALVES)}
    crossfit: dict[str, Any] = {}
    for family, members in families.items():
        members = np.asarray(members)
        # In-sample: weights chosen and scored on every clip.
        best = int(members[picked[:, members].mean(axis=0).argmax()])
        rules[f"{family}_in_sample"] = {"cider_d": float(picked[:, best].mean()), "weights": as_weights(best)}
        # Cross-fitted: each half's clips are picked with the weights chosen on the OTHER half.
        held_out = np.empty(clips)
        chosen = []
        for name, other in zip(HALVES, reversed(HALVES)):
            fit, score = halves[name], halves[other]
            index = int(members[picked[np.ix_(fit, members)].mean(axis=0).argmax()])
            held_out[score] = picked[score, index]
            chosen.append({"chosen_on": name, "clips": len(fit), "weights": as_weights(index),
                           "fitted_score": float(picked[fit, index].mean()), "scored_on": other,
                           "held_out_score": float(picked[score, index].mean())})
        crossfit[family] = {"halves": chosen, "cider_d": float(held_out.mean())}
        rules[f"{family}_crossfit"] = {"cider_d": float(held_out.mean()),
                                       "weights_by_half": {h["chosen_on"]: h["weights"] for h in chosen}}
    rules["oracle"] = {"cider_d": float(np.nanmax(cider, axis=1).mean())}
    rules["worst"] = {"cider_d": float(np.nanmin(cider, axis=1).mean())}

    baseline = BEAM_SEARCH if beam_predictions is not None else CAPTIONER_PICK
    base = rules[baseline]["cider_d"]
    for rule in rules.values():
        rule["gain"] = (rule["cider_d"] - base) / base if base > 0 else None
    ordered = {key: rules[key] for key in RULE_LABELS if key in rules}
    report = {
        "clips": clips,
        "candidates_per_clip": float(mask.sum() / clips),
        "baseline": baseline,
        "rules": ordered,
        "crossfit": crossfit,
        "grid_size": len(grid),
    }
    for family in families:
        report[f"best_{family}_gain"] = ordered[f"{family}_crossfit"]["gain"]
    return report


def reranker_analysis(records: Sequence[Mapping[str, Any]], beam_records: Sequence[Mapping[str, Any]] | None = None,
                      *, splits: Sequence[str] | None = None, tokenize: bool | None = False,
                      weight_values: Sequence[float] = DEFAULT_WEIGHT_VALUES, path: str = "the rescoring records",
                      beam_path: str = "the beam-search records") -> dict[str, Any]:
    """`analyse_split` for each requested split (default: every split of `records`, in order of appearance).

    Args:
        records: `predictions-clap_rescoring.jsonl` records (with candidates).
        beam_records: `predictions-beam_search.jsonl` records of the same clips, or None.
        splits: the splits to report (each must be in `records`).
        tokenize, weight_values: see `analyse_split`.
        path, beam_path: names of the two inputs in error messages.
    """
    if not records:
        raise ValueError(f"{path}: no records")
    if beam_records is not None and not beam_records:
        raise ValueError(f"{beam_path}: no records")
    signals = rescoring_signals(records, path)
    grouped = _by_split(records, path)
    beam = None
    if beam_records is not None:
        beam = match_beam_predictions(records, beam_records, path=path, beam_path=beam_path)
    chosen = list(dict.fromkeys(splits)) if splits else list(grouped)
    unknown = [s for s in chosen if s not in grouped]
    if unknown:
        raise ValueError(f"split(s) {unknown} not in {path}, which holds {sorted(grouped)}")
    return {
        "metric": "cider_d",
        "tokenize": tokenize,
        "signals": list(signals),
        "weight_values": sorted(set(float(v) for v in weight_values) | {0.0}),
        "splits": {split: analyse_split(list(grouped[split].values()), beam[split] if beam else None,
                                        tokenize=tokenize, weight_values=weight_values, split=split,
                                        signals=signals)
                   for split in chosen},
    }


# ----------------------------------------------------------------------------------------------- report


def _weights_text(weights: Mapping[str, float], signals: Sequence[str]) -> str:
    return " / ".join(f"{weights[s]:g}" for s in signals)


def _gain_text(gain: float | None) -> str:
    return "n/a" if gain is None else f"{100 * gain:+.1f} %"


def format_report(result: Mapping[str, Any]) -> str:
    """The analysis as markdown: one table per split, then the best cross-fitted mixes' gains (with sampled
    consensus, a legend first that tells the two consensus signals apart)."""
    signals = list(result.get("signals", SIGNALS))
    sampled = SAMPLED_CONSENSUS in signals
    labels = RULE_LABELS_WITH_SAMPLES if sampled else RULE_LABELS
    lines = [SIGNAL_LEGEND, ""] if sampled else []
    tokenised = "PTB-tokenised" if result.get("tokenize") else "untokenised"
    for split, report in result["splits"].items():
        baseline = BASELINE_LABELS[report["baseline"]]
        lines += [f"## {split}: {report['clips']} clips, {report['candidates_per_clip']:.2f} candidates per clip "
                  f"(CIDEr-D, {tokenised}; {report['grid_size']} weight vectors)", "",
                  f"| rule | CIDEr-D | vs {baseline} | weights ({' / '.join(signals)}) |", "|---|---:|---:|---|"]
        for key, rule in report["rules"].items():
            if "weights_by_half" in rule:
                weights = "; ".join(f"chosen on {half}: {_weights_text(w, signals)}"
                                    for half, w in rule["weights_by_half"].items())
            elif "weights" in rule:
                weights = _weights_text(rule["weights"], signals)
            else:
                weights = ""
            lines.append(f"| {labels[key]} | {rule['cider_d']:.3f} | {_gain_text(rule['gain'])} | {weights} |")
        samples_only = (f", {_gain_text(report['best_mix_clap_sampled_consensus_gain'])} with CLAP and sampled "
                        "consensus only" if sampled else "")
        lines += ["", f"Best cross-fitted mix over {baseline}: {_gain_text(report['best_mix_gain'])} with CLAP, "
                      f"{_gain_text(report['best_mix_without_clap_gain'])} without{samples_only} (oracle "
                      f"{_gain_text(report['rules']['oracle']['gain'])}).", ""]
    return "\n".join(lines).rstrip() + "\n"


# ----------------------------------------------------------------------------------------------- CLI


def _weight_values_argument(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
        weight_grid(values)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--weights {text!r}: {error}") from None
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("predictions", metavar="PREDICTIONS_JSONL_OR_FOLDER",
                        help="an evaluation's predictions-clap_rescoring.jsonl (candidates with clap_score and "
                             "log_prob, and, from `llm-aac evaluate --pseudo-references K`, consensus: then the "
                             "consensus with sampled captions is a fourth signal, sampled_consensus, next to the "
                             "consensus among candidates that the report computes), or the evaluation's output folder "
                             "holding it")
    parser.add_argument("--beam", default=None, metavar="BEAM_JSONL",
                        help="the same evaluation's predictions-beam_search.jsonl: adds the beam-search row, and gains "
                             "are measured against it (default: against the captioner's pick; with a folder, its "
                             "predictions-beam_search.jsonl when there is one)")
    parser.add_argument("--split", action="append", default=None,
                        help="report this split (repeatable; default: every split in the file)")
    parser.add_argument("--tokenize", action="store_true",
                        help="PTB-tokenise captions before CIDEr-D as aac-metrics does (Java, else its pure-Python copy); off "
                             "by default because it is slow (the numbers match the evaluation's metrics.md when both "
                             "were scored the same way)")
    parser.add_argument("--weights", type=_weight_values_argument, default=DEFAULT_WEIGHT_VALUES,
                        metavar="W1,W2,...",
                        help="values each signal's weight takes in the grid, 0 always included (default: "
                             + ",".join(f"{w:g}" for w in DEFAULT_WEIGHT_VALUES) + ": 215 weight vectors over three "
                             "signals, 1295 over four)")
    parser.add_argument("--output-json", default=None, metavar="PATH",
                        help="also write every number (the signals used; per rule, the weights chosen per half) to "
                             "this JSON file")


def evaluation_files(predictions: str | os.PathLike, beam: str | os.PathLike | None) -> tuple[str, str | None]:
    """(rescoring records, beam-search records or None) from the command line: a file is taken as it is; a folder
    (`llm-aac evaluate --output`) gives its `predictions-clap_rescoring.jsonl` and, unless `beam` names a file, its
    `predictions-beam_search.jsonl` when that exists."""
    from llm_aac.eval.evaluate_captioner import BEAM_SEARCH, CLAP_RESCORING, predictions_file

    predictions = os.fspath(predictions)
    if not os.path.isdir(predictions):
        return predictions, None if beam is None else os.fspath(beam)
    rescoring = os.path.join(predictions, predictions_file(CLAP_RESCORING))
    if not os.path.isfile(rescoring):
        raise ValueError(f"{predictions}: the folder has no {predictions_file(CLAP_RESCORING)} (run `llm-aac evaluate "
                         "--compare-rescoring --output FOLDER` first, or give the file)")
    if beam is None:
        found = os.path.join(predictions, predictions_file(BEAM_SEARCH))
        beam = found if os.path.isfile(found) else None
    return rescoring, None if beam is None else os.fspath(beam)


def main(args: argparse.Namespace) -> int:
    try:
        args.predictions, args.beam = evaluation_files(args.predictions, args.beam)
        records = read_predictions(args.predictions)
        beam = read_predictions(args.beam) if args.beam else None
        result = reranker_analysis(records, beam, splits=args.split, tokenize=True if args.tokenize else False,
                                   weight_values=args.weights, path=os.fspath(args.predictions),
                                   beam_path=os.fspath(args.beam) if args.beam else "the beam-search records")
    except ValueError as error:
        print(f"rerank-report: error: {error}", file=sys.stderr)
        return 2
    result = {"predictions": os.fspath(args.predictions), "beam": args.beam, **result}
    print_report(format_report(result), result, args.output_json)
    return 0


def print_report(report: str, result: dict[str, Any], output_json: str | None) -> None:
    """A CLI's last step: print the markdown report, and write every number to `output_json` when given."""
    print(report, end="")
    if output_json:
        with open(output_json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
        print(f"written to {output_json}")


__all__ = ["DEFAULT_WEIGHT_VALUES", "SAMPLED_CONSENSUS", "SIGNALS", "analyse_split", "check_rescoring_records",
           "consensus_scores", "evaluation_files", "format_report", "match_beam_predictions", "print_report",
           "read_predictions", "reranker_analysis", "rescoring_signals", "weight_grid", "zscore_within_clips"]


if __name__ == "__main__":
    cli = argparse.ArgumentParser(prog="python -m llm_aac.eval.reranker_analysis",
                                  description=__doc__.split("\n\n")[0])
    add_arguments(cli)
    sys.exit(main(cli.parse_args()))
