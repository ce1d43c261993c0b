"""Audio classification benchmarks for the encoder: data, label encoding, batching and metrics.

Shared by `train/finetune_eat_classifier.py` (fine-tuning) and `eval/linear_probe.py` (frozen
embeddings). Three layouts:

| kind      | source                                                   | labels                           | metric |
|-----------|----------------------------------------------------------|----------------------------------|--------|
| audioset  | `agkphysics/AudioSet` (Hub or a local copy / save_to_disk) | `labels` (ontology ids), multi-label | mAP |
| esc50     | the ESC-50 repository (`meta/esc50.csv` + `audio/`)      | `target` (50 classes)            | accuracy, 5-fold cross-validation |
| synthetic | an `llm-aac synth` corpus                                | `event_labels` (10 event types), multi-label | mAP |

A task is a list of runs, each a training set and one or more evaluation sets: ESC-50 gives one run
per held-out fold (train on the four others, as the benchmark is defined); AudioSet gives one run
(train -> test); the synthetic corpus one run (train -> test and compositional, whose held-out event
pairs never occur in training).

mAP is the mean over classes of the average precision (area under the precision-recall curve, with
tied scores handled as one threshold, as scikit-learn computes it), over the classes that have at
least one positive clip in the evaluation set (AudioSet's convention); classes without positives are
listed in the result.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

TASK_KINDS = ("audioset", "esc50", "synthetic")
CLASS_IDS_COLUMN = "class_ids"
DEFAULT_SPLITS = {
    "audioset": ("train", ("test",)),
    "synthetic": ("train", ("test", "compositional")),
}


@dataclass
class ClassificationRun:
    """One training set and the sets it is evaluated on (e.g. ESC-50 `fold-3`: folds 1, 2, 4, 5 -> 3)."""

    name: str
    train: Any
    evaluations: dict[str, Any]


@dataclass
class ClassificationTask:
    """A benchmark: its classes, whether clips can carry several of them, and its runs.

    Every dataset of every run has a `class_ids` column (list of class indices per clip) next to its
    `audio` column (`Audio(decode=False)`).
    """

    kind: str
    label_names: list[str]
    multi_label: bool
    runs: list[ClassificationRun] = field(default_factory=list)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def problem_type(self) -> str:
        return "multi_label_classification" if self.multi_label else "single_label_classification"

    @property
    def metric_name(self) -> str:
        """The benchmark's headline metric: `map` (multi-label) or `accuracy`."""
        return "map" if self.multi_label else "accuracy"

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.label_names))

    def targets(self, dataset) -> np.ndarray:
        """Multi-hot `[clips, classes]` (multi-label) or class indices `[clips]` of a task dataset."""
        return encode_targets(dataset[CLASS_IDS_COLUMN], self.num_labels, self.multi_label)


def encode_targets(class_ids: Sequence[Sequence[int]], num_labels: int, multi_label: bool) -> np.ndarray:
    """`class_ids` rows -> multi-hot float32 `[N, num_labels]`, or int64 indices `[N]` (one class each)."""
    if multi_label:
        targets = np.zeros((len(class_ids), num_labels), dtype=np.float32)
        for row, ids in enumerate(class_ids):
            targets[row, list(ids)] = 1.0
        return targets
    wrong = [i for i, ids in enumerate(class_ids) if len(ids) != 1]
    if wrong:
        raise ValueError(f"single-label clips must have exactly one class; rows {wrong[:8]} have {class_ids[wrong[0]]}")
    return np.asarray([ids[0] for ids in class_ids], dtype=np.int64)


# ------------------------------------------------------------------------------------------ detection


def detect_task_kind(name_or_path: str | os.PathLike) -> str:
    """`esc50` for an ESC-50 folder, `synthetic` for an `llm-aac synth` corpus, `audioset` for an
    AudioSet copy or the Hub id."""
    from llm_aac.processing.esc50 import is_esc50_root
    from llm_aac.processing.loaders import AUDIOSET_HUB_ID, detect_dataset_kind

    path = os.fspath(name_or_path)
    if is_esc50_root(path):
        return "esc50"
    if path.lower() in ("audioset", AUDIOSET_HUB_ID.lower()):
        return "audioset"
    kind = detect_dataset_kind(path)
    if kind == "audioset":
        return "audioset"
    if kind == "disk":
        columns = _saved_columns(path)
        if "event_labels" in columns:
            return "synthetic"
        if {"labels", "human_labels"} <= columns:
            return "audioset"
        raise ValueError(
            f"{path!r} is a save_to_disk folder with columns {sorted(columns)}: neither a synthetic corpus "
            "(event_labels) nor AudioSet (labels, human_labels); pass --task explicitly if it is one of them"
        )
    raise ValueError(
        f"cannot tell which classification task {path!r} holds (found a {kind!r} dataset); expected an ESC-50 "
        f"folder (meta/esc50.csv), an `llm-aac synth` corpus or AudioSet; choose with task= one of {TASK_KINDS}"
    )


def _saved_columns(path: str) -> set[str]:
    from datasets import load_from_disk

    dataset = load_from_disk(path)
    first = dataset if hasattr(dataset, "column_names") and not isinstance(dataset, dict) else next(iter(dataset.values()))
    return set(first.column_names)


# ------------------------------------------------------------------------------------------ loading


def _limit(dataset, max_clips: int | None):
    if max_clips is None or max_clips <= 0 or len(dataset) <= max_clips:
        return dataset
    return dataset.select(range(max_clips))


def _with_class_ids(dataset, class_ids: list[list[int]]):
    if CLASS_IDS_COLUMN in dataset.column_names:
        dataset = dataset.remove_columns(CLASS_IDS_COLUMN)
    # add_column joins an in-memory column: the audio bytes are not rewritten.
    return dataset.add_column(CLASS_IDS_COLUMN, class_ids)


def read_audioset_labels_csv(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """`class_labels_indices.csv` (`index, mid, display_name`) -> (ontology ids, names) in index order."""
    with open(os.fspath(path), newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in reader.fieldnames or []]
        if not {"index", "mid", "display_name"} <= set(header):
            raise ValueError(f"{path}: expected columns index, mid, display_name; header is {header}")
        reader.fieldnames = header
        rows = sorted(reader, key=lambda r: int(r["index"]))
    if [int(r["index"]) for r in rows] != list(range(len(rows))):
        raise ValueError(f"{path}: indices must run 0..{len(rows) - 1} without gaps")
    return [r["mid"].strip() for r in rows], [r["display_name"].strip() for r in rows]


def _load_audioset(path, train_split, eval_splits, labels_csv, config, max_train, max_eval) -> ClassificationTask:
    from llm_aac.processing.loaders import load_aac_dataset

    train = _limit(load_aac_dataset(path, train_split, kind="audioset", config=config), max_train)
    evaluations = {s: _limit(load_aac_dataset(path, s, kind="audioset", config=config), max_eval) for s in eval_splits}
    if labels_csv is not None:
        mids, names = read_audioset_labels_csv(labels_csv)
    else:
        # The vocabulary of the data itself, in ontology-id order (all 527 classes on the full sets).
        naming: dict[str, str] = {}
        for dataset in (train, *evaluations.values()):
            columns = dataset.select_columns(["labels", "human_labels"])
            for mids_row, names_row in zip(columns["labels"], columns["human_labels"]):
                for mid, name in zip(mids_row, names_row):
                    naming.setdefault(mid, name)
        mids = sorted(naming)
        names = [naming[m] for m in mids]
    index = {mid: i for i, mid in enumerate(mids)}

    def encode(dataset, name):
        rows = dataset.select_columns(["labels"])["labels"]
        unknown = sorted({m for row in rows for m in row if m not in index})
        if unknown:
            raise ValueError(f"AudioSet {name}: label ids {unknown[:10]} are not in {labels_csv}")
        return _with_class_ids(dataset, [sorted({index[m] for m in row}) for row in rows])

    run = ClassificationRun(
        name=f"{train_split}",
        train=encode(train, train_split),
        evaluations={s: encode(d, s) for s, d in evaluations.items()},
    )
    return ClassificationTask("audioset", names, True, [run])


def synthetic_class_ids(event_labels: Sequence[Sequence[str]], where: str = "synthetic clips") -> list[list[int]]:
    """Per clip, the sorted indices in `EVENT_TYPES` of the event types it contains (its `event_labels`, a type
    that repeats counted once)."""
    from llm_aac.processing.synthetic import EVENT_TYPES

    index = {name: i for i, name in enumerate(EVENT_TYPES)}
    unknown = sorted({e for row in event_labels for e in row if e not in index})
    if unknown:
        raise ValueError(f"{where}: unknown event types {unknown}; known: {list(EVENT_TYPES)}")
    return [sorted({index[e] for e in row}) for row in event_labels]


def _load_synthetic(path, train_split, eval_splits, max_train, max_eval) -> ClassificationTask:
    from llm_aac.processing.loaders import load_saved_dataset
    from llm_aac.processing.synthetic import EVENT_TYPES

    corpus = load_saved_dataset(path)
    available = list(corpus) if isinstance(corpus, Mapping) else []
    if not available:
        raise ValueError(f"{path!r} holds a single Dataset; a synthetic corpus has splits (train, test, ...)")
    missing = [s for s in eval_splits if s not in corpus]
    if train_split not in corpus or len(missing) == len(eval_splits):
        raise ValueError(f"{path!r} has splits {available}; asked for train {train_split!r} and eval {list(eval_splits)}")
    if missing:
        logger.warning("synthetic corpus %s has no split(s) %s; evaluating on the others", path, missing)

    def encode(split):
        dataset = _limit(corpus[split], max_train if split == train_split else max_eval)
        rows = dataset.select_columns(["event_labels"])["event_labels"]
        return _with_class_ids(dataset, synthetic_class_ids(rows, f"synthetic split {split!r}"))

    run = ClassificationRun(
        name=train_split,
        train=encode(train_split),
        evaluations={s: encode(s) for s in eval_splits if s in corpus},
    )
    return ClassificationTask("synthetic", list(EVENT_TYPES), True, [run])


def _load_esc50(path, folds, max_train, max_eval) -> ClassificationTask:
    from llm_aac.processing.esc50 import esc50_class_names, load_esc50

    dataset = load_esc50(path)
    names = esc50_class_names(dataset)
    dataset = _with_class_ids(dataset, [[t] for t in dataset["target"]])
    clip_folds = np.asarray(dataset["fold"])
    present = sorted(set(clip_folds.tolist()))
    if len(present) < 2:
        raise ValueError(f"ESC-50 cross-validation needs at least two folds; {path!r} has {present}")
    held_out = present if folds is None else [int(f) for f in folds]
    unknown = sorted(set(held_out) - set(present))
    if unknown:
        raise ValueError(f"fold(s) {unknown} not in {path!r}; folds present: {present}")
    runs = []
    for fold in held_out:
        train = dataset.select(np.flatnonzero(clip_folds != fold).tolist())
        test = dataset.select(np.flatnonzero(clip_folds == fold).tolist())
        runs.append(ClassificationRun(f"fold-{fold}", _limit(train, max_train), {f"fold-{fold}": _limit(test, max_eval)}))
    return ClassificationTask("esc50", names, False, runs)


def load_classification_task(
    name_or_path: str | os.PathLike,
    kind: str | None = None,
    *,
    train_split: str | None = None,
    eval_splits: Sequence[str] | None = None,
    folds: Sequence[int] | None = None,
    labels_csv: str | os.PathLike | None = None,
    config: str | None = None,
    max_train_clips: int | None = None,
    max_eval_clips: int | None = None,
) -> ClassificationTask:
    """Build a benchmark from a dataset location.

    Args:
        name_or_path: ESC-50 folder, `llm-aac synth` corpus, AudioSet copy / save_to_disk folder, or
            `"audioset"` (the Hub's `agkphysics/AudioSet`).
        kind: one of `TASK_KINDS`; detected from the location when None.
        train_split, eval_splits: AudioSet (`train` -> `test`) and synthetic (`train` -> `test`,
            `compositional`) splits; ignored for ESC-50.
        folds: ESC-50 folds to hold out, one run each (default: all five).
        labels_csv: AudioSet `class_labels_indices.csv` fixing the class order (default: the ontology
            ids present in the data, sorted).
        config: AudioSet Hub config (`balanced` (default) or `unbalanced`).
        max_train_clips, max_eval_clips: keep only the first clips (quick runs).
    """
    path = os.fspath(name_or_path)
    kind = kind or detect_task_kind(path)
    if kind not in TASK_KINDS:
        raise ValueError(f"unknown task {kind!r}; choose one of {TASK_KINDS}")
    if kind == "esc50":
        task = _load_esc50(path, folds, max_train_clips, max_eval_clips)
    else:
        default_train, default_evals = DEFAULT_SPLITS[kind]
        train_split = train_split or default_train
        eval_splits = tuple(eval_splits) if eval_splits else default_evals
        if kind == "audioset":
            task = _load_audioset(path, train_split, eval_splits, labels_csv, config, max_train_clips, max_eval_clips)
        else:
            task = _load_synthetic(path, train_split, eval_splits, max_train_clips, max_eval_clips)
    for run in task.runs:
        for name, dataset in [("train", run.train), *run.evaluations.items()]:
            if len(dataset) == 0:
                raise ValueError(f"{kind} run {run.name!r}: the {name} set is empty")
    return task


# ------------------------------------------------------------------------------------------ batching


@dataclass
class ClassificationCollator:
    """Rows -> `input_features`, `attention_mask` and `labels` (multi-hot float or class index).

    Features come from `processing.collate.AudioFeatureCollator` (decoded and extracted on the fly,
    or precomputed), cut to the first `max_frames` frames.
    """

    feature_extractor: Any
    num_labels: int
    multi_label: bool
    max_frames: int | None = None
    device: Any = None

    def __post_init__(self):
        from llm_aac.processing.collate import AudioFeatureCollator

        self._features = AudioFeatureCollator(
            self.feature_extractor, extra_columns=(CLASS_IDS_COLUMN,), max_frames=self.max_frames, device=self.device
        )

    def __call__(self, rows: Sequence[dict]) -> dict:
        import torch

        batch = self._features(rows)
        targets = encode_targets(batch.pop(CLASS_IDS_COLUMN), self.num_labels, self.multi_label)
        batch["labels"] = torch.from_numpy(targets)
        return batch


# ------------------------------------------------------------------------------------------ metrics


def average_precision(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-class average precision of `scores [N, C]` against binary `targets [N, C]`.

    AP = sum over distinct score thresholds of (recall step) x precision, tied scores forming one
    threshold (scikit-learn's `average_precision_score`). NaN for a class without positives.
    """
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets)
    if scores.ndim == 1:
        scores, targets = scores[:, None], targets[:, None]
    if scores.shape != targets.shape:
        raise ValueError(f"scores {scores.shape} and targets {targets.shape} must have the same shape")
    if not np.isfinite(scores).all():
        bad = np.argwhere(~np.isfinite(scores))[:5].tolist()
        raise ValueError(f"scores contain NaN or Inf (first at [clip, class] {bad})")
    result = np.full(scores.shape[1], np.nan)
    for c in range(scores.shape[1]):
        positives = targets[:, c] > 0
        total = int(positives.sum())
        if total == 0:
            continue
        order = np.argsort(-scores[:, c], kind="mergesort")
        ranked_scores, hits = scores[order, c], positives[order]
        true_positives = np.cumsum(hits)
        # The last index of each run of tied scores is where that threshold's counts are read.
        last_of_tie = np.r_[np.flatnonzero(np.diff(ranked_scores)), len(ranked_scores) - 1]
        tp = true_positives[last_of_tie]
        precision = tp / (last_of_tie + 1)
        recall = tp / total
        result[c] = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    return result


def classification_metrics(
    logits: np.ndarray, targets: np.ndarray, multi_label: bool, label_names: Sequence[str] | None = None
) -> dict[str, Any]:
    """Headline metric and details: `map` (+ `num_scored_classes`, `classes_without_positives`,
    `per_class_ap`) for multi-label, `accuracy` (+ `top5_accuracy` with >= 5 classes) for single-label."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[0] == 0:
        raise ValueError(f"logits must be [clips >= 1, classes], got shape {logits.shape}")
    if multi_label:
        per_class = average_precision(logits, targets)
        scored = ~np.isnan(per_class)
        if not scored.any():
            raise ValueError("no class has a positive clip in the evaluation set: mAP is undefined")
        names = list(label_names) if label_names is not None else [str(i) for i in range(len(per_class))]
        return {
            "map": float(np.mean(per_class[scored])),
            "num_scored_classes": int(scored.sum()),
            "classes_without_positives": [names[i] for i in np.flatnonzero(~scored)],
            "per_class_ap": {names[i]: float(per_class[i]) for i in np.flatnonzero(scored)},
            "num_clips": int(logits.shape[0]),
        }
    targets = np.asarray(targets).reshape(-1)
    if targets.shape[0] != logits.shape[0]:
        raise ValueError(f"{logits.shape[0]} rows of logits but {targets.shape[0]} targets")
    metrics = {"accuracy": float(np.mean(logits.argmax(axis=1) == targets)), "num_clips": int(logits.shape[0])}
    if logits.shape[1] >= 5:
        top5 = np.argsort(-logits, axis=1)[:, :5]
        metrics["top5_accuracy"] = float(np.mean((top5 == targets[:, None]).any(axis=1)))
    return metrics


def summarize_runs(task: ClassificationTask, per_run: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """Mean and standard deviation of the headline metric over runs, per evaluation set name pattern.

    `per_run[run][eval_set]` holds `classification_metrics` output. ESC-50: mean over the five held-out
    folds (the benchmark's number); other tasks: each evaluation set's value.
    """
    key = task.metric_name
    summary: dict[str, Any] = {"metric": key, "task": task.kind, "num_labels": task.num_labels}
    if task.kind == "esc50":
        values = [metrics[key] for run in per_run.values() for metrics in run.values()]
        summary[key] = float(np.mean(values))
        summary[f"{key}_std"] = float(np.std(values)) if len(values) > 1 else 0.0
        summary["num_folds"] = len(values)
        return summary
    for run in per_run.values():
        for eval_name, metrics in run.items():
            summary[f"{eval_name}_{key}"] = metrics[key]
    return summary


def format_percent(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f}"


__all__ = [
    "CLASS_IDS_COLUMN",
    "ClassificationCollator",
    "ClassificationRun",
    "ClassificationTask",
    "TASK_KINDS",
    "average_precision",
    "classification_metrics",
    "detect_task_kind",
    "encode_targets",
    "load_classification_task",
    "read_audioset_labels_csv",
    "summarize_runs",
    "synthetic_class_ids",
]
