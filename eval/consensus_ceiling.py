"""How much consensus rescoring could gain on the synthetic corpus for a perfectly calibrated captioner.

    python eval/consensus_ceiling.py --clips 300 --samples 16 32 64 --output-json out/consensus_ceiling.json

Consensus rescoring (`modeling_llm_aac.consensus_scoring`, minimum-Bayes-risk decoding) picks, among a clip's
candidates, the one that agrees most with captions sampled from the captioner. How well that works depends on how
well the captioner's samples match the distribution the references were written from. This script removes that
question: the corpus's own caption grammar (`llm_aac.processing.synthetic_captions.realize_caption`), which wrote the
references, stands in for the captioner, so the samples come from exactly the references' distribution. What is left
is the ceiling of the method itself on this corpus: given candidates that differ only in phrasing, how much CIDEr-D
does choosing by consensus gain over the single most likely phrasing?

Protocol, deterministic for given arguments, for clips 0..N-1 of `--split` (corpus seed `--corpus-seed`), scene and
references from `llm_aac.processing.synthetic.generate_clip(seed, index, split, with_audio=False)`:

1. Candidates: M draws from the grammar with `np.random.default_rng(candidate_seed_offset + index)` (default offset
   10 000); the C most frequent distinct draws, most frequent first, equal counts in order of first appearance. The
   first one, the mode, is the most likely phrasing: the stand-in for beam search's top hypothesis ("beam search" in
   the table). A scene with fewer than C distinct draws keeps the ones it has.
2. Pseudo-references, per K in `--samples`: the first K draws from a fresh
   `np.random.default_rng(sample_seed_offset + index)` (default offset 50 000; so the K=16 samples are the first 16 of
   the K=32 ones), independent of the candidates' draws.
3. The consensus pick: the candidate with the highest `consensus_scores(candidates, pseudo_references)`, ties to the
   earlier (more frequent) candidate.
4. Truth: every candidate's CIDEr-D against the clip's 5 real references
   (`llm_aac.eval.candidate_headroom.candidate_scores`: aac-metrics, one corpus call per candidate slot, so the
   document frequencies are those of these N clips' references; no PTB tokenisation unless `--tokenize`).

Reported per K, as means over the clips: `mode` (beam search's stand-in), `pick` (the consensus pick), `gain`
(`pick / mode - 1`), `headroom_taken` (`(pick - mode) / (oracle - mode)`), `changed` (share of clips whose pick is not
the mode), and, the same for every K, `oracle` (each clip's best candidate: the ceiling of any re-ranker of these
candidates) and `random_phrasing` (the mean over a clip's candidates: choosing a phrasing uniformly at random).

Second mode, a real captioner's saved candidates:

    python eval/consensus_ceiling.py --predictions out/evaluation --split test --samples 16 32 64

asks whether consensus with perfectly calibrated samples (the grammar) would pick better among the candidates a real
captioner produced than consensus with the captioner's OWN samples. `--predictions` is an evaluation's
`predictions-clap_rescoring.jsonl` (`llm-aac evaluate --compare-rescoring`, with `--pseudo-references K` for the own
samples) or its output folder, whose `predictions-beam_search.jsonl` is read too when there is one. Protocol, for the
records of `--split` ordered by clip index (the first `--max-clips` of them when given):

1. The clip: its index from the record's `file`, which must be `synth_<split>_<6 digits>.<ext>`; its scene from
   `generate_clip(corpus_seed, index, split, with_audio=False)`, whose 5 captions must equal the record's
   `references` (otherwise the corpus seed or split is not the evaluation's, and the run stops naming the file).
2. Candidates: the record's candidate captions in `index` order (the captioner's rank); the captioner's pick is the
   highest `log_prob` (ties to the lower index), the run's pick is the record's `prediction`.
3. Samples, per K in `--samples`: own = the first K of the record's `pseudo_references` (the captions the captioner
   sampled for the clip; only when the file has them, and only for K up to the number saved: larger K are reported
   as n/a); grammar = the first K of `draw_captions(events, layout, max K, sample_seed_offset + index)`, the same
   nested draws as step 2 of the grammar-only protocol. Each gives a consensus pick (`consensus_pick`: the highest
   `consensus_scores`, ties to the lower index).
4. Truth: CIDEr-D against the 5 references (`candidate_scores`, one corpus call per slot, document frequencies of the
   chosen clips' references; `--tokenize` as above) of every candidate and, as extra slots, of the beam-search
   caption and the run's pick when they are not among the candidates.

Rows, as means over the clips: beam search (with the beam file), the captioner's pick, the run's pick, per K the
consensus pick with own samples and with grammar samples, and the oracle (each clip's best candidate; the beam-search
caption is not a candidate). Each row has its `gain` over beam search (over the captioner's pick without the beam
file), `headroom_taken` (`(row - baseline) / (oracle - baseline)`) and `changed` (share of clips whose caption is not
the captioner's pick); own-sample rows also say how often they pick the same candidate as the grammar samples.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(
        os.path.abspath(__file__)):
    # Run as `python eval/consensus_ceiling.py`, Python puts eval/ first on the path, where eval/aac_metrics.py
    # would shadow the aac-metrics package; the installed `llm_aac.eval` is what this script imports instead.
    del sys.path[0]

import argparse
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

DEFAULT_CLIPS = 300
DEFAULT_SAMPLES = (16, 32, 64)
DEFAULT_CANDIDATES = 7
DEFAULT_DRAWS = 300
DEFAULT_CANDIDATE_SEED_OFFSET = 10_000
DEFAULT_SAMPLE_SEED_OFFSET = 50_000
CEILING_SPLITS = ("test", "compositional")


def draw_captions(events: Sequence[dict], layout: str, count: int, seed: int) -> list[str]:
    """`count` captions of one scene drawn from the corpus grammar with `np.random.default_rng(seed)`."""
    from llm_aac.processing.synthetic_captions import realize_caption

    rng = np.random.default_rng(seed)
    return [realize_caption(list(events), layout, rng) for _ in range(count)]


def most_frequent(draws: Sequence[str], count: int) -> list[str]:
    """The `count` most frequent distinct captions of `draws`, most frequent first; equal counts keep the order in
    which the captions first appear (Counter keeps insertion order and `most_common` sorts stably)."""
    return [caption for caption, _ in Counter(draws).most_common(count)]


def consensus_pick(candidates: Sequence[str], pseudo_references: Sequence[str]) -> int:
    """Index of the candidate agreeing most with the pseudo-references; ties go to the earlier candidate."""
    from modeling_llm_aac.consensus_scoring import consensus_scores

    scores = consensus_scores(list(candidates), list(pseudo_references))
    return max(range(len(scores)), key=lambda k: (scores[k], -k))


def _check_count(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def consensus_ceiling(
    *,
    clips: int = DEFAULT_CLIPS,
    samples: Sequence[int] = DEFAULT_SAMPLES,
    candidates: int = DEFAULT_CANDIDATES,
    draws: int = DEFAULT_DRAWS,
    corpus_seed: int = 0,
    split: str = "test",
    candidate_seed_offset: int = DEFAULT_CANDIDATE_SEED_OFFSET,
    sample_seed_offset: int = DEFAULT_SAMPLE_SEED_OFFSET,
    tokenize: bool = False,
) -> dict[str, Any]:
    """The consensus-rescoring ceiling of the protocol in the module docstring.

    Args:
        clips: N, clips 0..N-1 of the split.
        samples: the numbers K of pseudo-references to try, each >= 1 (duplicates are measured once).
        candidates: C, candidates per clip (the most frequent distinct draws).
        draws: M, grammar draws the candidates are taken from; at least C.
        corpus_seed: the synthetic corpus's seed (`llm-aac synth --seed`).
        split: "test" or "compositional".
        candidate_seed_offset: clip `index` draws its candidates with `default_rng(candidate_seed_offset + index)`.
        sample_seed_offset: clip `index` draws its pseudo-references with `default_rng(sample_seed_offset + index)`.
        tokenize: PTB-tokenise captions before CIDEr-D (Java, else the pure-Python copy; off: aac-metrics without it).

    Returns:
        `settings` (the arguments), `distinct_per_clip` (mean number of candidates), `mode`, `oracle`,
        `random_phrasing` and `rows`, one per K with `samples`, `mode`, `pick`, `gain`, `headroom_taken` (None when
        the oracle equals the mode), `changed`, `oracle`, `random_phrasing`.

    Raises:
        ValueError: a count below 1, `draws < candidates`, an unknown split or a negative seed or offset.
    """
    from llm_aac.eval.candidate_headroom import candidate_scores
    from llm_aac.processing.synthetic import generate_clip

    _check_count("clips", clips)
    _check_count("candidates", candidates)
    _check_count("draws", draws, candidates)
    if isinstance(samples, (str, bytes)) or not isinstance(samples, Sequence) or not samples:
        raise ValueError(f"samples must be a non-empty list of integers >= 1, got {samples!r}")
    for value in samples:
        _check_count("every number of samples", value)
    for name, value in (("corpus_seed", corpus_seed), ("candidate_seed_offset", candidate_seed_offset),
                        ("sample_seed_offset", sample_seed_offset)):
        _check_count(name, value, 0)
    if split not in CEILING_SPLITS:
        raise ValueError(f"split must be one of {CEILING_SPLITS}, got {split!r}")
    sample_counts = list(dict.fromkeys(int(k) for k in samples))

    references: list[list[str]] = []
    candidate_lists: list[list[str]] = []
    picks: dict[int, list[int]] = {k: [] for k in sample_counts}
    for index in range(clips):
        clip = generate_clip(corpus_seed, index, split, with_audio=False)
        references.append(list(clip["captions"]))
        clip_candidates = most_frequent(
            draw_captions(clip["events"], clip["layout"], draws, candidate_seed_offset + index), candidates)
        candidate_lists.append(clip_candidates)
        # Nested samples: the K pseudo-references of a smaller K are the first K of a larger one.
        pool = draw_captions(clip["events"], clip["layout"], max(sample_counts), sample_seed_offset + index)
        for k in sample_counts:
            picks[k].append(consensus_pick(clip_candidates, pool[:k]))

    per_clip = candidate_scores(candidate_lists, references, tokenize=tokenize)

    def mean(values: Sequence[float]) -> float:
        return float(sum(values) / len(values))

    mode = mean([scores[0] for scores in per_clip])
    oracle = mean([max(scores) for scores in per_clip])
    random_phrasing = mean([mean(scores) for scores in per_clip])
    rows = []
    for k in sample_counts:
        pick = mean([scores[choice] for scores, choice in zip(per_clip, picks[k])])
        ceiling = oracle - mode
        rows.append({
            "samples": k,
            "mode": mode,
            "pick": pick,
            "gain": pick / mode - 1.0 if mode > 0 else None,
            "headroom_taken": (pick - mode) / ceiling if ceiling > 1e-12 else None,
            "changed": mean([float(choice != 0) for choice in picks[k]]),
            "oracle": oracle,
            "random_phrasing": random_phrasing,
        })
    return {
        "settings": {"clips": int(clips), "samples": sample_counts, "candidates": int(candidates),
                     "draws": int(draws), "corpus_seed": int(corpus_seed), "split": split,
                     "candidate_seed_offset": int(candidate_seed_offset),
                     "sample_seed_offset": int(sample_seed_offset), "tokenize": bool(tokenize)},
        "metric": "cider_d",
        "distinct_per_clip": mean([float(len(c)) for c in candidate_lists]),
        "mode": mode,
        "oracle": oracle,
        "random_phrasing": random_phrasing,
        "rows": rows,
    }


def format_table(result: dict[str, Any]) -> str:
    """The result as a markdown table (one row per K) with a line saying what was measured."""
    settings = result["settings"]
    lines = [
        f"Consensus-rescoring ceiling, grammar as the captioner: {settings['split']} clips 0..{settings['clips'] - 1} "
        f"(corpus seed {settings['corpus_seed']}), {settings['candidates']} candidates from {settings['draws']} draws "
        f"({result['distinct_per_clip']:.2f} distinct per clip), CIDEr-D vs the 5 references.",
        "",
        "| K samples | beam search (mode) | consensus pick | gain | headroom taken | picks changed | oracle | "
        "random phrasing |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        gain = "n/a" if row["gain"] is None else f"{100 * row['gain']:+.1f} %"
        taken = "n/a" if row["headroom_taken"] is None else f"{100 * row['headroom_taken']:.0f} %"
        lines.append(f"| {row['samples']} | {row['mode']:.3f} | {row['pick']:.3f} | {gain} | {taken} | "
                     f"{100 * row['changed']:.0f} % | {row['oracle']:.3f} | {row['random_phrasing']:.3f} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------- saved candidates

BEAM_SEARCH_ROW = "beam_search"
CAPTIONER_PICK_ROW = "captioner_pick"
RUN_PICK_ROW = "run_pick"
OWN_SAMPLES_ROW = "own_samples"
GRAMMAR_SAMPLES_ROW = "grammar_samples"
ORACLE_ROW = "oracle"
SAVED_ROW_LABELS = {
    BEAM_SEARCH_ROW: "beam search",
    CAPTIONER_PICK_ROW: "captioner's pick (highest log-prob)",
    RUN_PICK_ROW: "the run's pick (`prediction`)",
    OWN_SAMPLES_ROW: "consensus, captioner's own samples",
    GRAMMAR_SAMPLES_ROW: "consensus, grammar samples",
    ORACLE_ROW: "oracle (best candidate)",
}


def clip_index(file_name: str, split: str, path: str = "the predictions") -> int:
    """The corpus index of a synthetic clip from its file name `synth_<split>_<6 digits>.<ext>` (directories
    ignored); ValueError naming the file otherwise."""
    match = re.fullmatch(rf"synth_{re.escape(split)}_(\d{{6}})\.[A-Za-z0-9]+", os.path.basename(str(file_name)))
    if match is None:
        raise ValueError(f"{path}: clip file name {file_name!r} is not synth_{split}_<6 digits>.<ext>; this mode "
                         f"needs an evaluation of the synthetic corpus's {split!r} split (`llm-aac synth`)")
    return int(match.group(1))


def _own_samples(records: Sequence[dict[str, Any]], path: str) -> int | None:
    """How many own samples every record has (the smallest count), or None when no record has any; ValueError for
    a malformed list or a file where only some records have them."""
    counts = {}
    for record in records:
        samples = record.get("pseudo_references")
        if samples is None or samples == []:
            counts[record["file"]] = 0
            continue
        if not isinstance(samples, list) or not all(isinstance(text, str) for text in samples):
            raise ValueError(f"{path}: clip {record['file']!r}: pseudo_references must be a list of captions, got "
                             f"{samples!r:.200}")
        counts[record["file"]] = len(samples)
    without = [clip for clip, count in counts.items() if count == 0]
    if len(without) == len(counts):
        return None
    if without:
        with_some = next(clip for clip, count in counts.items() if count)
        raise ValueError(f"{path}: only some clips carry pseudo_references (the captioner's own samples): "
                         f"{len(without)} of {len(counts)} have none (e.g. {without[:3]}), {with_some!r} has "
                         f"{counts[with_some]}; use one `llm-aac evaluate --pseudo-references K` run's file")
    return min(counts.values())


def _candidates_in_index_order(record: dict[str, Any], path: str) -> list[dict[str, Any]]:
    """The record's candidates in the captioner's order (`index`; the file lists them best-scored first)."""
    indices = [entry.get("index") for entry in record["candidates"]]
    if (not all(isinstance(i, int) and not isinstance(i, bool) for i in indices)
            or len(set(indices)) != len(indices)):
        raise ValueError(f"{path}: clip {record['file']!r}: every candidate needs a distinct integer `index` (its "
                         f"position in the scorer's list), got {indices}")
    return sorted(record["candidates"], key=lambda entry: entry["index"])


def saved_candidates_consensus(
    *,
    predictions: str | os.PathLike,
    split: str = "test",
    samples: Sequence[int] = DEFAULT_SAMPLES,
    max_clips: int | None = None,
    corpus_seed: int = 0,
    sample_seed_offset: int = DEFAULT_SAMPLE_SEED_OFFSET,
    tokenize: bool = False,
) -> dict[str, Any]:
    """Consensus with the captioner's own samples vs grammar samples on saved candidates (second protocol of the
    module docstring).

    Args:
        predictions: an evaluation's `predictions-clap_rescoring.jsonl`, or its output folder (then its
            `predictions-beam_search.jsonl` is read too when present).
        split: the split of the records to use, "test" or "compositional".
        samples: the numbers K of samples to try, each >= 1 (duplicates are measured once).
        max_clips: use only the first N records of the split by clip index (None: all of them).
        corpus_seed: the synthetic corpus's seed (`llm-aac synth --seed`) the evaluation ran on.
        sample_seed_offset: clip `index` draws its grammar samples with `default_rng(sample_seed_offset + index)`.
        tokenize: PTB-tokenise captions before CIDEr-D (Java, else the pure-Python copy; off: aac-metrics without it).

    Returns:
        `settings` (the arguments and the files read), `metric`, `clips`, `candidates_per_clip`,
        `own_samples_saved` (per clip, None without own samples), `baseline` ("beam_search" or "captioner_pick"),
        `rows` (each with `rule`, `samples` (K or None), `cider_d`, `gain`, `headroom_taken`, `changed` and, for own
        samples, `same_as_grammar`; numbers None for an own-sample K above the number saved) and `per_clip` (per
        clip: `file`, `index`, `candidate_cider_d`, `beam_cider_d`, `run_pick_cider_d`, and the positions of the
        `captioner_pick`, `own_picks` and `grammar_picks` (one per K) among the candidates in `index` order).

    Raises:
        ValueError: a bad argument, an unreadable or malformed file, a split the file lacks, a clip file name that is
            not the synthetic corpus's, references that are not the regenerated clip's captions (wrong corpus seed
            or split), own samples on only some clips, or beam-search records of other clips.
    """
    from llm_aac.eval.candidate_headroom import candidate_scores
    from llm_aac.eval.reranker_analysis import (
        _by_split,
        check_rescoring_records,
        evaluation_files,
        match_beam_predictions,
        read_predictions,
    )
    from llm_aac.processing.synthetic import generate_clip

    if isinstance(samples, (str, bytes)) or not isinstance(samples, Sequence) or not samples:
        raise ValueError(f"samples must be a non-empty list of integers >= 1, got {samples!r}")
    for value in samples:
        _check_count("every number of samples", value)
    if max_clips is not None:
        _check_count("max_clips", max_clips)
    for name, value in (("corpus_seed", corpus_seed), ("sample_seed_offset", sample_seed_offset)):
        _check_count(name, value, 0)
    if split not in CEILING_SPLITS:
        raise ValueError(f"split must be one of {CEILING_SPLITS}, got {split!r}")
    sample_counts = list(dict.fromkeys(int(k) for k in samples))

    path, beam_path = evaluation_files(predictions, None)
    records = read_predictions(path)
    grouped = _by_split(records, path)
    if split not in grouped:
        raise ValueError(f"{path} has no records of split {split!r}; it holds {sorted(grouped)}")
    indexed = sorted(((clip_index(file, split, path), record) for file, record in grouped[split].items()),
                     key=lambda pair: pair[0])
    repeated = [(a["file"], b["file"]) for (i, a), (j, b) in zip(indexed, indexed[1:]) if i == j]
    if repeated:
        raise ValueError(f"{path}: two records of split {split!r} are the same clip: {repeated[0]}")
    beam_by_file = None
    if beam_path is not None:
        matched = match_beam_predictions(records, read_predictions(beam_path), path=path, beam_path=beam_path)
        beam_by_file = dict(zip(grouped[split], matched[split]))
    chosen = [record for _, record in indexed[:max_clips]]
    check_rescoring_records(chosen, path)
    saved = _own_samples(chosen, path)
    own_counts = [k for k in sample_counts if saved is not None and k <= saved]

    references: list[list[str]] = []
    scored: list[list[str]] = []  # per clip: its candidates, then the beam / run captions that are not among them
    per_clip: list[dict[str, Any]] = []
    for index, record in indexed[:max_clips]:
        clip = generate_clip(corpus_seed, index, split, with_audio=False)
        if list(clip["captions"]) != list(record["references"]):
            raise ValueError(
                f"{path}: clip {record['file']!r}: its references are not the captions of clip {index} of split "
                f"{split!r} with corpus seed {corpus_seed} (the corpus seed or split does not match the evaluation's "
                f"corpus): file {list(record['references'])[:2]!r}..., corpus {list(clip['captions'])[:2]!r}...")
        candidates = _candidates_in_index_order(record, path)
        captions = [entry["caption"] for entry in candidates]
        log_probs = [float(entry["log_prob"]) for entry in candidates]
        slots = list(captions)

        def slot_of(caption: str) -> int:
            if caption not in slots:
                slots.append(caption)
            return slots.index(caption)

        try:
            own_picks = [consensus_pick(captions, record["pseudo_references"][:k]) for k in own_counts]
        except ValueError as error:
            raise ValueError(f"{path}: clip {record['file']!r}, own samples: {error}") from None
        pool = draw_captions(clip["events"], clip["layout"], max(sample_counts), sample_seed_offset + index)
        per_clip.append({
            "file": record["file"],
            "index": index,
            "captioner_pick": max(range(len(captions)), key=lambda k: (log_probs[k], -k)),
            "run_slot": slot_of(record["prediction"]),
            "beam_slot": None if beam_by_file is None else slot_of(beam_by_file[record["file"]]),
            "own_picks": own_picks + [None] * (len(sample_counts) - len(own_counts)),
            "grammar_picks": [consensus_pick(captions, pool[:k]) for k in sample_counts],
            "candidates": len(captions),
        })
        references.append(list(record["references"]))
        scored.append(slots)

    scores = candidate_scores(scored, references, tokenize=tokenize)

    def mean(values: Sequence[float]) -> float:
        return float(sum(values) / len(values))

    def captions_of(slot_per_clip: Sequence[int]) -> list[str]:
        return [clip_slots[slot] for clip_slots, slot in zip(scored, slot_per_clip)]

    captioner = [clip["captioner_pick"] for clip in per_clip]
    oracle = mean([max(s[:clip["candidates"]]) for s, clip in zip(scores, per_clip)])
    rules: list[tuple[str, int | None, list[int] | None]] = []  # (rule, K, slot per clip or None: not measured)
    if beam_by_file is not None:
        rules.append((BEAM_SEARCH_ROW, None, [clip["beam_slot"] for clip in per_clip]))
    rules += [(CAPTIONER_PICK_ROW, None, captioner), (RUN_PICK_ROW, None, [clip["run_slot"] for clip in per_clip])]
    for position, k in enumerate(sample_counts):
        if saved is not None:
            rules.append((OWN_SAMPLES_ROW, k, [clip["own_picks"][position] for clip in per_clip]
                          if k in own_counts else None))
        rules.append((GRAMMAR_SAMPLES_ROW, k, [clip["grammar_picks"][position] for clip in per_clip]))
    rules.append((ORACLE_ROW, None, [max(range(clip["candidates"]), key=lambda j: (s[j], -j))
                                     for s, clip in zip(scores, per_clip)]))

    baseline_rule = BEAM_SEARCH_ROW if beam_by_file is not None else CAPTIONER_PICK_ROW
    baseline_slots = rules[0][2]
    base = mean([s[slot] for s, slot in zip(scores, baseline_slots)])
    captioner_captions = captions_of(captioner)
    rows = []
    for rule, k, slots_chosen in rules:
        row: dict[str, Any] = {"rule": rule, "samples": k}
        if slots_chosen is None:
            row.update(cider_d=None, gain=None, headroom_taken=None, changed=None, same_as_grammar=None)
            rows.append(row)
            continue
        value = mean([s[slot] for s, slot in zip(scores, slots_chosen)])
        row.update(
            cider_d=value,
            gain=value / base - 1.0 if base > 0 else None,
            headroom_taken=(value - base) / (oracle - base) if oracle - base > 1e-12 else None,
            changed=mean([float(a != b) for a, b in zip(captions_of(slots_chosen), captioner_captions)]),
        )
        if rule == OWN_SAMPLES_ROW:
            grammar = [clip["grammar_picks"][sample_counts.index(k)] for clip in per_clip]
            row["same_as_grammar"] = mean([float(a == b) for a, b in zip(slots_chosen, grammar)])
        rows.append(row)

    return {
        "settings": {"predictions": path, "beam": beam_path, "split": split, "samples": sample_counts,
                     "max_clips": None if max_clips is None else int(max_clips), "corpus_seed": int(corpus_seed),
                     "sample_seed_offset": int(sample_seed_offset), "tokenize": bool(tokenize)},
        "metric": "cider_d",
        "clips": len(per_clip),
        "clips_in_file": len(indexed),
        "candidates_per_clip": mean([float(clip["candidates"]) for clip in per_clip]),
        "own_samples_saved": saved,
        "baseline": baseline_rule,
        "rows": rows,
        "per_clip": [{
            "file": clip["file"],
            "index": clip["index"],
            "candidate_cider_d": s[:clip["candidates"]],
            "beam_cider_d": None if clip["beam_slot"] is None else s[clip["beam_slot"]],
            "run_pick_cider_d": s[clip["run_slot"]],
            "captioner_pick": clip["captioner_pick"],
            "own_picks": clip["own_picks"],
            "grammar_picks": clip["grammar_picks"],
        } for s, clip in zip(scores, per_clip)],
    }


def format_saved_candidates_table(result: dict[str, Any]) -> str:
    """The saved-candidates comparison as a markdown table (one row per rule and K) with a line saying what was
    measured."""
    settings = result["settings"]
    baseline = SAVED_ROW_LABELS[result["baseline"]]
    own = ("no own samples in the file" if result["own_samples_saved"] is None
           else f"{result['own_samples_saved']} own samples saved per clip")
    subset = ("" if result["clips"] == result["clips_in_file"]
              else f" (the first {result['clips']} of {result['clips_in_file']} by clip index)")
    tokenised = "PTB-tokenised" if settings["tokenize"] else "untokenised"
    lines = [
        f"Consensus with the captioner's own samples vs grammar samples (perfectly calibrated), on the saved "
        f"candidates of {settings['predictions']}: {settings['split']}, {result['clips']} clips{subset}, corpus seed "
        f"{settings['corpus_seed']}, {result['candidates_per_clip']:.2f} candidates per clip, {own}; CIDEr-D "
        f"({tokenised}) vs the 5 references.",
        "",
        f"| rule | K samples | CIDEr-D | vs {baseline} | headroom taken | not the captioner's pick | "
        "same pick as grammar samples |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]

    def percent(value: float | None, signed: bool = False) -> str:
        if value is None:
            return "n/a"
        return f"{100 * value:+.1f} %" if signed else f"{100 * value:.0f} %"

    for row in result["rows"]:
        samples = "" if row["samples"] is None else str(row["samples"])
        if row["cider_d"] is None:
            lines.append(f"| {SAVED_ROW_LABELS[row['rule']]} | {samples} | n/a (only {result['own_samples_saved']} "
                         "saved) | | | | |")
            continue
        same = percent(row["same_as_grammar"]) if row["rule"] == OWN_SAMPLES_ROW else ""
        lines.append(f"| {SAVED_ROW_LABELS[row['rule']]} | {samples} | {row['cider_d']:.3f} | "
                     f"{percent(row['gain'], signed=True)} | {percent(row['headroom_taken'])} | "
                     f"{percent(row['changed'])} | {same} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------- CLI


def _at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


# Options of the grammar-only mode: None on the command line means "not given" (refused with --predictions).
GRAMMAR_ONLY_DEFAULTS = {"clips": DEFAULT_CLIPS, "candidates": DEFAULT_CANDIDATES, "draws": DEFAULT_DRAWS,
                         "candidate_seed_offset": DEFAULT_CANDIDATE_SEED_OFFSET}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--predictions", default=None, metavar="DIR_OR_JSONL",
                        help="saved-candidates mode: an evaluation's predictions-clap_rescoring.jsonl, or its output "
                             "folder (then its predictions-beam_search.jsonl too, when present); compares consensus "
                             "with the captioner's own samples (pseudo_references) and with grammar samples")
    parser.add_argument("--max-clips", type=_at_least(1), default=None, metavar="N",
                        help="saved-candidates mode: only the split's first N clips by index (default: all)")
    parser.add_argument("--clips", type=_at_least(1), default=None, metavar="N",
                        help=f"grammar-only mode: clips 0..N-1 of the split (default {DEFAULT_CLIPS})")
    parser.add_argument("--samples", type=_at_least(1), nargs="+", default=list(DEFAULT_SAMPLES), metavar="K",
                        help="numbers of pseudo-references (samples) to try (default: "
                             + " ".join(map(str, DEFAULT_SAMPLES)) + ")")
    parser.add_argument("--candidates", type=_at_least(1), default=None, metavar="C",
                        help="grammar-only mode: candidates per clip, the C most frequent distinct draws (default "
                             f"{DEFAULT_CANDIDATES})")
    parser.add_argument("--draws", type=_at_least(1), default=None, metavar="M",
                        help=f"grammar-only mode: grammar draws the candidates come from, at least C (default "
                             f"{DEFAULT_DRAWS})")
    parser.add_argument("--corpus-seed", type=_at_least(0), default=0, help="the synthetic corpus's seed (default 0)")
    parser.add_argument("--split", choices=CEILING_SPLITS, default="test", help="corpus split (default test)")
    parser.add_argument("--candidate-seed-offset", type=_at_least(0), default=None,
                        help="grammar-only mode: clip i draws its candidates with default_rng(offset + i) (default "
                             f"{DEFAULT_CANDIDATE_SEED_OFFSET})")
    parser.add_argument("--sample-seed-offset", type=_at_least(0), default=DEFAULT_SAMPLE_SEED_OFFSET,
                        help="clip i draws its grammar samples (pseudo-references) with default_rng(offset + i) "
                             f"(default {DEFAULT_SAMPLE_SEED_OFFSET})")
    parser.add_argument("--tokenize", action="store_true",
                        help="PTB-tokenise captions before CIDEr-D (Java, else its pure-Python copy; off by default)")
    parser.add_argument("--output-json", default=None, metavar="PATH", help="also write every number to this file")


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, with the checks that involve two options (M >= C; each mode's own options) reported as
    argparse errors; the grammar-only options not given get their defaults."""
    parser = argparse.ArgumentParser(prog="python eval/consensus_ceiling.py", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    given = ["--" + name.replace("_", "-") for name in GRAMMAR_ONLY_DEFAULTS if getattr(args, name) is not None]
    if args.predictions is not None and given:
        parser.error(f"{', '.join(given)} belong to the grammar-only mode; with --predictions the candidates are the "
                     "file's")
    if args.predictions is None and args.max_clips is not None:
        parser.error("--max-clips belongs to the saved-candidates mode (--predictions); the grammar-only mode takes "
                     "--clips")
    for name, default in GRAMMAR_ONLY_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.draws < args.candidates:
        parser.error(f"--draws M must be at least --candidates C, got M={args.draws} < C={args.candidates}")
    return args


def main(args: argparse.Namespace) -> int:
    try:
        if getattr(args, "predictions", None) is not None:
            result = saved_candidates_consensus(
                predictions=args.predictions, split=args.split, samples=args.samples, max_clips=args.max_clips,
                corpus_seed=args.corpus_seed, sample_seed_offset=args.sample_seed_offset, tokenize=args.tokenize)
            table = format_saved_candidates_table(result)
        else:
            grammar_only = {name: default if getattr(args, name, None) is None else getattr(args, name)
                            for name, default in GRAMMAR_ONLY_DEFAULTS.items()}
            result = consensus_ceiling(samples=args.samples, corpus_seed=args.corpus_seed, split=args.split,
                                       sample_seed_offset=args.sample_seed_offset, tokenize=args.tokenize,
                                       **grammar_only)
            table = format_table(result)
    except ValueError as error:
        print(f"consensus-ceiling: error: {error}", file=sys.stderr)
        return 2
    from llm_aac.eval.reranker_analysis import print_report

    print_report(table, result, args.output_json)
    return 0


__all__ = ["clip_index", "consensus_ceiling", "consensus_pick", "draw_captions", "format_saved_candidates_table",
           "format_table", "most_frequent", "parse_arguments", "saved_candidates_consensus"]


if __name__ == "__main__":
    sys.exit(main(parse_arguments()))
