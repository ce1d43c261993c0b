"""Semantic accuracy of captions on the synthetic corpus (`processing/synthetic.py`).

Text metrics reward wording; this module checks content. A caption is parsed back with the corpus
grammar (`processing/synthetic_captions.py`: same keyword tables, synonyms included) into events
with count, loudness, fade, ticking rate, whether the event is a background that overlaps the
others, and the time order of the foreground events. The parse is keyword-based, so it tolerates
missing or extra words: an unknown count on a countable event reads as one, an unmarked loudness as
normal, a missing connective as "then" in text order.

Scores against the ground truth (`events` column of the corpus), micro-averaged over clips:

- `event_precision`, `event_recall`, `event_f1`: event types (a clip has each type at most once;
  a type named twice in one caption counts once as a hit and once as a false positive);
- `count_accuracy`: matched countable events whose repetition count is right;
- `order_accuracy`: pairs of matched events that do not overlap in time, whose order is right
  (saying that they overlap is wrong);
- `overlap_accuracy`: pairs of matched events, overlap-or-not right;
- `loudness_accuracy`, `fade_accuracy` (continuous events), `rate_accuracy` (ticking);
- `scene_accuracy`: clips whose every event, attribute and relation is right with no extra event.

An accuracy with nothing to score (e.g. no matched pair) is `None`; `*_items` give denominators.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields

from llm_aac.processing.synthetic_captions import (
    BACKGROUND_CONNECTIVES,
    CLAUSE_CONNECTIVES,
    COUNT_WORDS,
    FADE_IN_WORDS,
    FADE_OUT_WORDS,
    FALLING_WORDS,
    FAST_WORDS,
    HIGH_WORDS,
    LOUD_WORDS,
    LOW_WORDS,
    QUIET_WORDS,
    RISING_WORDS,
    SLOW_WORDS,
    TYPE_KEYWORDS,
)
from llm_aac.processing.synthetic_events import CONTINUOUS_TYPES, COUNTABLE_TYPES

__all__ = [
    "ParsedEvent",
    "ParsedCaption",
    "SemanticCounts",
    "parse_caption",
    "score_caption",
    "semantic_accuracy",
    "semantic_accuracy_by_split",
]

_WORD_TO_GROUP = {word: group for group, words in TYPE_KEYWORDS.items() for word in words}
_FADE_VERBS = frozenset({"fade", "fades", "fading", "faded"})


@dataclass
class ParsedEvent:
    """One event read from a caption. `position` is the index in the foreground sequence (None for
    a background event)."""

    type: str
    count: int | None
    loudness: str
    fade: str
    rate: str
    background: bool
    position: int | None = None


@dataclass
class ParsedCaption:
    events: list[ParsedEvent]
    duplicates: int = 0  # extra mentions of a type already named

    def by_type(self) -> dict[str, ParsedEvent]:
        return {e.type: e for e in self.events}


def _tokenize(caption: str) -> list[str]:
    text = re.sub(r"[^a-z0-9,]+", " ", caption.lower()).replace(",", " , ")
    return text.split()


@dataclass
class _Segment:
    connectives: set[str] = field(default_factory=set)
    words: list[str] = field(default_factory=list)


def _segments(tokens: list[str]) -> list[_Segment]:
    segments = [_Segment()]
    for token in tokens:
        if token == "," or token in CLAUSE_CONNECTIVES:
            if segments[-1].words:
                segments.append(_Segment())
            if token != ",":
                segments[-1].connectives.add(token)
        else:
            segments[-1].words.append(token)
    return [s for s in segments if s.words]


def _resolve_types(words: list[str]) -> list[str]:
    """Event types named in a clause, in order of first mention."""
    word_set = set(words)
    found: list[str] = []
    for word in words:
        group = _WORD_TO_GROUP.get(word)
        if group is None:
            continue
        if group == "beep":
            high, low = bool(word_set & HIGH_WORDS), bool(word_set & LOW_WORDS)
            if high == low:  # pitch not said (or both said): the beep cannot be identified
                continue
            event_type = "high_beep" if high else "low_beep"
        elif group == "siren":
            rising, falling = bool(word_set & RISING_WORDS), bool(word_set & FALLING_WORDS)
            if rising == falling:
                continue
            event_type = "rising_siren" if rising else "falling_siren"
        else:
            event_type = group
        if event_type not in found:
            found.append(event_type)
    return found


def _count(words: list[str]) -> int | None:
    for word in words:
        if word in COUNT_WORDS:
            return COUNT_WORDS[word]
        if word.isdigit() and 0 < int(word) < 100:
            return int(word)
    return None


def _loudness(words: list[str]) -> str | None:
    for word in words:
        if word in LOUD_WORDS:
            return "loud"
        if word in QUIET_WORDS:
            return "quiet"
    return None


def _fade(words: list[str]) -> str | None:
    for i, word in enumerate(words):
        following = words[i + 1] if i + 1 < len(words) else ""
        if word in _FADE_VERBS and following == "in" and (i + 2 >= len(words) or words[i + 2] != "the"):
            return "in"
        if word in _FADE_VERBS and following in ("out", "away"):
            return "out"
        if word in FADE_IN_WORDS:
            return "in"
        if word in FADE_OUT_WORDS:
            return "out"
    return None


def _rate(words: list[str]) -> str | None:
    for word in words:
        if word in SLOW_WORDS:
            return "slow"
        if word in FAST_WORDS:
            return "fast"
    return None


def parse_caption(caption: str) -> ParsedCaption:
    """Reads events, attributes and relations out of a caption written in the corpus grammar."""
    if caption is None:
        caption = ""
    if not isinstance(caption, str):
        raise TypeError(f"caption must be a string, got {type(caption).__name__}: {caption!r}")
    events: list[ParsedEvent] = []
    foreground: list[ParsedEvent] = []
    duplicates = 0
    # Attribute words of a clause without an event (", growing louder") belong to the last event.
    last: list[ParsedEvent] = []
    pending_words: list[str] = []
    for index, segment in enumerate(_segments(_tokenize(caption))):
        types = _resolve_types(segment.words)
        if not types:
            if last:
                _apply_attributes(last, segment.words, override=False)
            else:
                pending_words.extend(segment.words)
            continue
        words = pending_words + segment.words
        pending_words = []
        background = bool(segment.connectives & BACKGROUND_CONNECTIVES) or "background" in segment.words
        reverse = "after" in segment.connectives and index > 0 and bool(foreground)
        new_events = []
        for event_type in types:
            if any(e.type == event_type for e in events):
                duplicates += 1
                continue
            event = ParsedEvent(event_type, None, "normal", "none", "", background)
            new_events.append(event)
            events.append(event)
        _apply_attributes(new_events, words, override=True)
        if not background:
            if reverse:
                # "B after A": A happened before the event of the previous clause.
                at = foreground.index(last[0]) if last and last[0] in foreground else len(foreground) - 1
                foreground[at:at] = new_events
            else:
                foreground.extend(new_events)
        last = new_events or last
    for position, event in enumerate(foreground):
        event.position = position
    for event in events:
        if event.type in COUNTABLE_TYPES and event.count is None:
            event.count = 1
    return ParsedCaption(events, duplicates)


def _apply_attributes(targets: list[ParsedEvent], words: list[str], *, override: bool) -> None:
    count, loudness, fade, rate = _count(words), _loudness(words), _fade(words), _rate(words)
    for event in targets:
        if event.type in COUNTABLE_TYPES and count is not None and (override or event.count is None):
            event.count = count
        if loudness is not None and (override or event.loudness == "normal"):
            event.loudness = loudness
        if event.type in CONTINUOUS_TYPES and fade is not None and (override or event.fade == "none"):
            event.fade = fade
        if event.type == "ticking" and rate is not None and (override or not event.rate):
            event.rate = rate


# ----------------------------------------------------------------------------- scoring


@dataclass
class SemanticCounts:
    """Sufficient statistics; add them up over clips, then call `metrics()`."""

    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    count_correct: int = 0
    count_items: int = 0
    order_correct: int = 0
    order_items: int = 0
    overlap_correct: int = 0
    overlap_items: int = 0
    loudness_correct: int = 0
    loudness_items: int = 0
    fade_correct: int = 0
    fade_items: int = 0
    rate_correct: int = 0
    rate_items: int = 0
    scenes_correct: int = 0
    scenes: int = 0

    def __add__(self, other: SemanticCounts) -> SemanticCounts:
        return SemanticCounts(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def metrics(self) -> dict[str, float | int | None]:
        def ratio(num, den):
            return num / den if den else None

        precision = ratio(self.true_positives, self.true_positives + self.false_positives)
        recall = ratio(self.true_positives, self.true_positives + self.false_negatives)
        f1 = ratio(2 * self.true_positives, 2 * self.true_positives + self.false_positives + self.false_negatives)
        return {
            "event_precision": precision,
            "event_recall": recall,
            "event_f1": f1,
            "count_accuracy": ratio(self.count_correct, self.count_items),
            "order_accuracy": ratio(self.order_correct, self.order_items),
            "overlap_accuracy": ratio(self.overlap_correct, self.overlap_items),
            "loudness_accuracy": ratio(self.loudness_correct, self.loudness_items),
            "fade_accuracy": ratio(self.fade_correct, self.fade_items),
            "rate_accuracy": ratio(self.rate_correct, self.rate_items),
            "scene_accuracy": ratio(self.scenes_correct, self.scenes),
            "num_clips": self.scenes,
            "count_items": self.count_items,
            "order_items": self.order_items,
            "overlap_items": self.overlap_items,
        }


_REQUIRED_EVENT_KEYS = ("type", "start", "end", "count", "loudness", "fade", "rate")


def _check_events(events, where: str) -> list[Mapping]:
    if isinstance(events, Mapping):
        if "events" not in events:
            raise ValueError(f"{where}: ground-truth row has no 'events' key; keys: {sorted(events)}")
        events = events["events"]
    if not isinstance(events, Sequence) or isinstance(events, (str, bytes)):
        raise TypeError(f"{where}: ground-truth events must be a list of dicts, got {type(events).__name__}")
    for event in events:
        if not isinstance(event, Mapping):
            raise TypeError(f"{where}: each ground-truth event must be a dict, got {event!r}")
        missing = [k for k in _REQUIRED_EVENT_KEYS if k not in event]
        if missing:
            raise ValueError(f"{where}: ground-truth event {dict(event)!r} lacks keys {missing}")
    return list(events)


def score_caption(prediction: str, events: Sequence[Mapping] | Mapping) -> SemanticCounts:
    """Scores one caption against one clip's ground truth (its `events`, or the whole corpus row)."""
    events = _check_events(events, "score_caption")
    parsed = parse_caption(prediction)
    predicted = parsed.by_type()
    truth = {e["type"]: e for e in events}
    matched = [t for t in truth if t in predicted]
    counts = SemanticCounts(scenes=1)
    counts.true_positives = len(matched)
    counts.false_positives = len(set(predicted) - set(truth)) + parsed.duplicates
    counts.false_negatives = len(set(truth) - set(predicted))
    all_right = counts.false_positives == 0 and counts.false_negatives == 0

    for event_type in matched:
        gt, pred = truth[event_type], predicted[event_type]
        checks = [("loudness", pred.loudness == gt["loudness"])]
        if event_type in COUNTABLE_TYPES:
            checks.append(("count", pred.count == int(gt["count"])))
        if event_type in CONTINUOUS_TYPES:
            checks.append(("fade", pred.fade == gt["fade"]))
        if event_type == "ticking":
            checks.append(("rate", pred.rate == gt["rate"]))
        for name, ok in checks:
            setattr(counts, f"{name}_items", getattr(counts, f"{name}_items") + 1)
            setattr(counts, f"{name}_correct", getattr(counts, f"{name}_correct") + int(ok))
            all_right &= ok

    for i, a in enumerate(matched):
        for b in matched[i + 1 :]:
            ga, gb, pa, pb = truth[a], truth[b], predicted[a], predicted[b]
            gt_overlap = ga["start"] < gb["end"] and gb["start"] < ga["end"]
            pred_overlap = pa.background or pb.background
            counts.overlap_items += 1
            counts.overlap_correct += int(gt_overlap == pred_overlap)
            all_right &= gt_overlap == pred_overlap
            if not gt_overlap:
                counts.order_items += 1
                ok = not pred_overlap and (pa.position < pb.position) == (ga["start"] < gb["start"])
                counts.order_correct += int(ok)
                all_right &= ok
    counts.scenes_correct = int(all_right)
    return counts


def _ground_truth_rows(references) -> list:
    # A datasets.Dataset: read only the ground truth, never the audio.
    if hasattr(references, "column_names") and hasattr(references, "select_columns"):
        if "events" not in references.column_names:
            raise ValueError(f"dataset has no 'events' column; columns: {references.column_names}")
        return list(references.select_columns(["events"])["events"])
    return list(references)


def semantic_accuracy(predictions: Sequence[str], references) -> dict[str, float | int | None]:
    """Micro-averaged semantic scores of `predictions` against ground truth.

    Args:
        predictions: one caption per clip (None or "" for a blank output, which scores as no event).
        references: per clip, a corpus row (a mapping with `events`), or the event list itself, or a
            `datasets.Dataset` of the corpus (only its `events` column is read).
    """
    if isinstance(predictions, str):
        raise TypeError("predictions must be a list of captions, not a single string")
    predictions = list(predictions)
    rows = _ground_truth_rows(references)
    if len(predictions) != len(rows):
        raise ValueError(f"got {len(predictions)} predictions for {len(rows)} ground-truth clips")
    total = SemanticCounts()
    for i, (prediction, row) in enumerate(zip(predictions, rows)):
        if prediction is not None and not isinstance(prediction, str):
            raise TypeError(f"prediction {i} must be a string, got {type(prediction).__name__}: {prediction!r}")
        total = total + score_caption(prediction or "", _check_events(row, f"clip {i}"))
    return total.metrics()


def semantic_accuracy_by_split(predictions, references=None) -> dict[str, dict]:
    """Semantic scores per split.

    Either `predictions` maps split name -> captions and `references` maps split name -> ground
    truth (e.g. the corpus `DatasetDict`), or `predictions` is a flat list and `references` the
    matching corpus rows, grouped by their `split` field.
    """
    if isinstance(predictions, Mapping):
        if references is None or not isinstance(references, Mapping):
            raise TypeError("with predictions per split, references must map split names to ground truth")
        missing = sorted(set(predictions) - set(references))
        if missing:
            raise ValueError(f"no ground truth for split(s) {missing}; references have {sorted(references)}")
        return {split: semantic_accuracy(preds, references[split]) for split, preds in predictions.items()}
    rows = _ground_truth_rows(references)
    predictions = list(predictions)
    if len(predictions) != len(rows):
        raise ValueError(f"got {len(predictions)} predictions for {len(rows)} ground-truth rows")
    grouped: dict[str, tuple[list, list]] = {}
    for i, (prediction, row) in enumerate(zip(predictions, rows)):
        if not isinstance(row, Mapping) or "split" not in row:
            raise ValueError(f"row {i} has no 'split' field; pass predictions and references per split instead")
        preds, refs = grouped.setdefault(row["split"], ([], []))
        preds.append(prediction)
        refs.append(row)
    return {split: semantic_accuracy(preds, refs) for split, (preds, refs) in grouped.items()}


def format_table(results: Mapping[str, Mapping], keys: Iterable[str] = (
        "event_f1", "event_precision", "event_recall", "count_accuracy", "order_accuracy", "overlap_accuracy",
        "scene_accuracy")) -> str:
    """A markdown table of per-split semantic scores (one row per split)."""
    keys = list(keys)
    lines = ["| split | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for split, metrics in results.items():
        cells = ["-" if metrics.get(k) is None else f"{metrics[k]:.3f}" for k in keys]
        lines.append(f"| {split} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
