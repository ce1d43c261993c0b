"""How much a re-ranker could gain from a set of caption candidates, and how much of it the CLAP pick takes.

Rescoring can only choose among the candidates it is given: when the candidates of a clip are few or nearly the
same, even a perfect scorer gains little, and when they differ, the gain depends on the scorer. Per clip, every
candidate is scored with CIDEr-D against the clip's references (sentence scores of one corpus-level call per
candidate slot, so the document frequencies are those of the evaluation itself), then:

* `oracle` -- the corpus CIDEr-D of always choosing each clip's best candidate (the ceiling of any re-ranker);
* `worst` -- always the worst one (the floor);
* `picked` -- the candidates the records chose (the CLAP pick);
* `captioner_pick` -- the log-probability-best candidate (what the captioner alone would pick);
* `distinct_per_clip` -- mean number of candidates per clip (the records hold deduplicated candidates).

`headroom_taken` is `(picked - captioner_pick) / (oracle - captioner_pick)`: the share of the ceiling's gain the pick
realised (None when the ceiling equals the captioner's own pick).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

HEADROOM_METRIC = "cider_d"


def sentence_scores(predictions: Sequence[str], references: Sequence[Sequence[str]], tokenize: bool | None) -> list[float]:
    """Per-clip CIDEr-D of `predictions` from one corpus-level call (document frequencies of these references)."""
    from llm_aac.eval.caption_metrics import compute_caption_metrics

    result = compute_caption_metrics(list(predictions), [list(r) for r in references], metrics=[HEADROOM_METRIC],
                                     tokenize=tokenize)
    return [float(value) for value in result.sentence_scores[HEADROOM_METRIC]]


def candidate_scores(captions: Sequence[Sequence[str]], references: Sequence[Sequence[str]],
                     tokenize: bool | None) -> list[list[float]]:
    """CIDEr-D of every candidate of every clip against the clip's references: one corpus call per candidate slot,
    so the document frequencies are those of the evaluation itself.

    Args:
        captions: per clip, its candidate captions (at least one).
        references: per clip, its reference captions.
        tokenize: passed to `compute_caption_metrics`.

    Returns:
        per clip, one score per candidate, in the candidates' order.
    """
    return slot_scores(captions, lambda positions: references, tokenize)


def slot_scores(captions: Sequence[Sequence[str]],
                references_at: Callable[[list[int]], Sequence[Sequence[str]]],
                tokenize: bool | None) -> list[list[float]]:
    """Per clip, a CIDEr-D score for each of its candidates, from one corpus call per candidate slot.

    `references_at(positions)` gives each clip's references for the call that scores candidate `positions[i]` of
    clip i (the slot, or 0 for a clip with fewer candidates: it stands in its first one, whose score is not kept),
    e.g. the same references for every slot (`candidate_scores`) or the clip's other candidates (consensus).
    """
    per_clip: list[list[float]] = [[] for _ in captions]
    for slot in range(max(len(c) for c in captions)):
        positions = [slot if slot < len(c) else 0 for c in captions]
        filled = [c[k] for c, k in zip(captions, positions)]
        for index, score in enumerate(sentence_scores(filled, references_at(positions), tokenize)):
            if slot < len(captions[index]):
                per_clip[index].append(score)
    return per_clip


def candidate_headroom(records: Sequence[Mapping[str, Any]], *, tokenize: bool | None = None) -> dict[str, Any]:
    """The headroom summary (module docstring) of one split's rescoring records.

    Args:
        records: `predictions-clap_rescoring.jsonl` lines of one split: `prediction`, `references` and
            `candidates` (each with `caption` and, for `captioner_pick`, `log_prob`).
        tokenize: passed to `compute_caption_metrics` (None: the metric's default).
    """
    if not records:
        raise ValueError("no records to measure the candidate headroom of")
    empty = [record.get("file", index) for index, record in enumerate(records) if not record.get("candidates")]
    if empty:
        raise ValueError(f"{len(empty)} record(s) have no candidates, e.g. {empty[:3]}")
    references = [list(record["references"]) for record in records]
    captions = [[entry["caption"] for entry in record["candidates"]] for record in records]
    per_clip = candidate_scores(captions, references, tokenize)

    def corpus(values: list[float]) -> float:
        return sum(values) / len(values)

    # The picks get their own corpus call too (same references, so the same document frequencies).
    picked = corpus(sentence_scores([r["prediction"] for r in records], references, tokenize))
    summary: dict[str, Any] = {
        "metric": HEADROOM_METRIC,
        "clips": len(records),
        "distinct_per_clip": sum(len(c) for c in captions) / len(records),
        "oracle": corpus([max(scores) for scores in per_clip]),
        "worst": corpus([min(scores) for scores in per_clip]),
        "picked": picked,
        "captioner_pick": None,
        "headroom_taken": None,
    }
    if all(entry.get("log_prob") is not None for record in records for entry in record["candidates"]):
        best = [max(range(len(c)), key=lambda k, r=r: (r["candidates"][k]["log_prob"], -k))
                for c, r in zip(captions, records)]
        summary["captioner_pick"] = corpus([per_clip[i][k] for i, k in enumerate(best)])
        ceiling = summary["oracle"] - summary["captioner_pick"]
        if ceiling > 1e-12:
            summary["headroom_taken"] = (picked - summary["captioner_pick"]) / ceiling
    return summary


def format_headroom(summary: Mapping[str, Any]) -> str:
    """One markdown line for a report."""
    taken = summary.get("headroom_taken")
    own = summary.get("captioner_pick")
    return (f"Candidate headroom ({summary['metric']}, {summary['distinct_per_clip']:.2f} distinct candidates per "
            f"clip): oracle {summary['oracle']:.3f}, worst {summary['worst']:.3f}, "
            + (f"captioner's own pick {own:.3f}, " if own is not None else "")
            + f"rescored pick {summary['picked']:.3f}"
            + (f" ({100 * taken:.0f} % of the headroom)" if taken is not None else "") + ".")


__all__ = ["HEADROOM_METRIC", "candidate_headroom", "candidate_scores", "format_headroom", "sentence_scores",
           "slot_scores"]
