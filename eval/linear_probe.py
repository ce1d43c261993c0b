"""Linear probe of a frozen EAT encoder: clip embeddings -> logistic regression -> mAP / accuracy.

    llm-aac linear-probe --model runs/eat-base/encoder --dataset data/ESC-50-master --output runs/probe-esc50
    llm-aac linear-probe --model eat-base --dataset data/synth --pooling cls mean --output runs/probe-synth
    llm-aac linear-probe --model eat-base --dataset audioset --labels-csv class_labels_indices.csv --output ...

`--model` is an `EATModel` / `EATForAudioClassification` folder (e.g. `llm-aac convert-eat` output or
`train/pretrain_eat.py`'s `encoder/`), or a captioner folder (its audio encoder is read alone, the
language model is never loaded). Its `preprocessor_config.json` gives the features; without one the
EAT fbank defaults are used.

Every clip is embedded once (ESC-50's five runs share the embeddings) as the CLS token and / or the mean
of the real patch tokens of the chosen layer. The classifier is an L2-regularised logistic regression
(softmax for ESC-50, one sigmoid per class for multi-label tasks) on standardised embeddings, fitted by
full-batch L-BFGS; its weight decay is picked on a held-out 10 % of the training clips, then the
classifier is refitted on all of them. Test clips are never used for any choice.

Outputs in `--output`: `linear_probe.json` (per run and evaluation set, per pooling; ESC-50 mean and
std over folds) and `linear_probe.md` (a table).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

POOLINGS = ("cls", "mean")
DEFAULT_WEIGHT_DECAYS = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


# ------------------------------------------------------------------------------------------ encoder


def _captioner_encoder_weights(path: str) -> dict:
    """The `encoder.*` tensors of a saved captioner, read without loading the language model."""
    from safetensors import safe_open

    index_file = os.path.join(path, "model.safetensors.index.json")
    if os.path.isfile(index_file):
        with open(index_file) as f:
            weight_map = json.load(f)["weight_map"]
        files = sorted({file for key, file in weight_map.items() if key.startswith("encoder.")})
    elif os.path.isfile(os.path.join(path, "model.safetensors")):
        files = ["model.safetensors"]
    else:
        raise ValueError(f"{path!r} has no model.safetensors (or index): cannot read the captioner's encoder")
    state = {}
    for file in files:
        with safe_open(os.path.join(path, file), framework="pt") as f:
            for key in f.keys():
                if key.startswith("encoder."):
                    state[key[len("encoder.") :]] = f.get_tensor(key)
    if not state:
        raise ValueError(f"{path!r} holds no encoder.* weights: it was saved without its audio encoder")
    return state


def load_audio_encoder(name_or_path: str | os.PathLike, *, device: Any = None, dtype: Any = None):
    """(`EATModel` in eval mode, `LLMAACFeatureExtractor`) from an EAT folder or a captioner folder."""
    import torch
    from transformers import AutoConfig

    import modeling_llm_aac  # noqa: F401  (registers the Auto classes)
    from modeling_llm_aac import EATModel, LLMAACFeatureExtractor, LLMAACProcessor

    path = os.fspath(name_or_path)
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise ValueError(f"no model config at {path!r}: {err}") from None
    if config.model_type == "eat":
        encoder = EATModel.from_pretrained(path)
    elif config.model_type == "llm_aac":
        encoder = EATModel(config.audio_config)
        missing, unexpected = encoder.load_state_dict(_captioner_encoder_weights(path), strict=False)
        # Fixed (non-persistent) tables are rebuilt by the constructor; anything else missing is an error.
        missing = [k for k in missing if k in dict(encoder.state_dict())]
        if missing or unexpected:
            raise ValueError(f"{path!r}: captioner encoder weights do not fit EATModel (missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]})")
    else:
        raise ValueError(f"{path!r} holds a {config.model_type!r} model; expected an EAT encoder ('eat') or a captioner ('llm_aac')")
    if os.path.isfile(os.path.join(path, "preprocessor_config.json")):
        feature_extractor = LLMAACFeatureExtractor.from_pretrained(path)
    elif os.path.isfile(os.path.join(path, "processor_config.json")):
        # A saved captioner keeps its extractor (and the normalisation it was trained with) inside the processor.
        feature_extractor = LLMAACProcessor.from_pretrained(path).feature_extractor
    else:
        logger.warning("%s has no preprocessor_config.json: using the EAT fbank feature extractor defaults", path)
        feature_extractor = LLMAACFeatureExtractor(feature_type="fbank", num_mel_bins=encoder.config.num_mel_bins)
    if feature_extractor.feature_size != encoder.config.num_mel_bins:
        raise ValueError(
            f"{path!r}: the feature extractor makes {feature_extractor.feature_size} bins but the encoder expects "
            f"{encoder.config.num_mel_bins}"
        )
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    encoder.to(device=device, dtype=dtype).eval()
    return encoder, feature_extractor


# ------------------------------------------------------------------------------------------ embeddings


def pool_hidden_states(hidden, token_mask, pooling: str):
    """`[B, 1 + P, D]` -> `[B, D]`: the CLS token, or the mean of the real patch tokens."""
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "mean":
        mask = token_mask[:, 1:, None].to(hidden.dtype)
        return (hidden[:, 1:] * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
    raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")


def extract_embeddings(
    encoder,
    feature_extractor,
    dataset,
    *,
    poolings: Sequence[str] = POOLINGS,
    layer: int = -1,
    batch_size: int = 16,
    max_frames: int | None = None,
    num_workers: int = 0,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Clip embeddings of `dataset` (`audio` column), float32 `[clips, hidden]` per pooling, in row order.

    Args:
        layer: -1 for the last block's output; `k >= 0` for `hidden_states[k]` (0 = the embeddings after
            `pre_norm`, k = block k's output).
        max_frames: cut clips to their first frames (default: the encoder's longest input).
    """
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from llm_aac.processing.collate import AudioFeatureCollator

    for pooling in poolings:
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be among {POOLINGS}, got {pooling!r}")
    depth = encoder.config.num_hidden_layers
    if layer != -1 and not 0 <= layer <= depth:
        raise ValueError(f"layer must be -1 (last) or in 0..{depth}, got {layer}")
    limit = encoder.config.max_frames if max_frames is None else min(int(max_frames), encoder.config.max_frames)
    device = next(encoder.parameters()).device
    dtype = next(encoder.parameters()).dtype
    collator = AudioFeatureCollator(feature_extractor, max_frames=limit)
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collator, num_workers=num_workers)
    chunks: dict[str, list[np.ndarray]] = {p: [] for p in poolings}
    with torch.inference_mode():
        for batch in tqdm(loader, desc="embedding clips", unit="batch", disable=not progress):
            output = encoder(
                batch["input_features"].to(device=device, dtype=dtype),
                attention_mask=batch["attention_mask"].to(device),
                output_hidden_states=layer != -1,
            )
            hidden = output.last_hidden_state if layer == -1 else output.hidden_states[layer]
            for pooling in poolings:
                pooled = pool_hidden_states(hidden.float(), output.attention_mask, pooling)
                chunks[pooling].append(pooled.cpu().numpy())
    return {p: np.concatenate(chunks[p]).astype(np.float32) for p in poolings}


def time_statistics_embeddings(
    feature_extractor, dataset, *, batch_size: int = 16, max_frames: int | None = None, num_workers: int = 0
) -> np.ndarray:
    """The no-encoder reference of a probe: per bin, the mean and the standard deviation over a clip's real frames
    of its normalised features, `[clips, 2 * bins]` float32 in row order (what a linear classifier can read from
    the input itself)."""
    from torch.utils.data import DataLoader

    from llm_aac.processing.collate import AudioFeatureCollator

    collator = AudioFeatureCollator(feature_extractor, max_frames=max_frames, return_tensors="np")
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collator, num_workers=num_workers)
    rows = []
    for batch in loader:
        features, mask = batch["input_features"], batch["attention_mask"][..., None].astype(np.float32)
        frames = mask.sum(axis=1)
        mean = (features * mask).sum(axis=1) / frames
        spread = np.sqrt((((features - mean[:, None]) ** 2) * mask).sum(axis=1) / frames)
        rows.append(np.concatenate([mean, spread], axis=1))
    return np.concatenate(rows).astype(np.float32)


# ------------------------------------------------------------------------------------------ classifier


@dataclass
class LinearClassifier:
    """Standardisation + linear layer; `logits(x)` gives class scores for raw embeddings."""

    mean: np.ndarray
    std: np.ndarray
    weight: np.ndarray  # [classes, dim]
    bias: np.ndarray  # [classes]
    weight_decay: float
    multi_label: bool

    def logits(self, features: np.ndarray) -> np.ndarray:
        standardized = (np.asarray(features, dtype=np.float32) - self.mean) / self.std
        return standardized @ self.weight.T + self.bias


def _fit(features, targets, multi_label: bool, num_labels: int, weight_decay: float, device, max_iter: int):
    import torch

    x = torch.as_tensor(features, dtype=torch.float32, device=device)
    if multi_label:
        y = torch.as_tensor(targets, dtype=torch.float32, device=device)
    else:
        y = torch.as_tensor(targets, dtype=torch.long, device=device)
    weight = torch.zeros(num_labels, x.shape[1], device=device, requires_grad=True)
    bias = torch.zeros(num_labels, device=device, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, history_size=20,
                                  tolerance_grad=1e-6, tolerance_change=1e-9, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        logits = x @ weight.T + bias
        if multi_label:
            # Summed over classes, averaged over clips: each class is its own logistic regression.
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="sum") / x.shape[0]
        else:
            loss = torch.nn.functional.cross_entropy(logits, y)
        loss = loss + 0.5 * weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach().cpu().numpy(), bias.detach().cpu().numpy()


def _standardizer(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = features.mean(axis=0)
    std = features.std(axis=0)
    # Constant dimensions (std 0) carry nothing; dividing by 1 leaves them at zero after centring.
    return mean.astype(np.float32), np.where(std > 1e-8, std, 1.0).astype(np.float32)


def fit_linear_classifier(
    features: np.ndarray,
    targets: np.ndarray,
    *,
    multi_label: bool,
    num_labels: int,
    weight_decays: Sequence[float] = DEFAULT_WEIGHT_DECAYS,
    validation_fraction: float = 0.1,
    seed: int = 0,
    device: Any = None,
    max_iter: int = 100,
) -> tuple[LinearClassifier, dict[str, float]]:
    """Logistic regression on standardised `features`, weight decay chosen on a held-out part of them.

    Returns the classifier refitted on all clips with the chosen weight decay, and the validation
    metric of every weight decay tried (empty when only one was given).
    """
    from llm_aac.eval.audio_classification import classification_metrics

    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"need [clips >= 2, dim] training features, got shape {features.shape}")
    if not np.isfinite(features).all():
        raise ValueError("training embeddings contain NaN or Inf: the encoder produced non-finite outputs")
    weight_decays = [float(w) for w in weight_decays]
    if not weight_decays or any(w < 0 for w in weight_decays):
        raise ValueError(f"weight_decays must be non-negative numbers, got {weight_decays}")
    device = device or "cpu"
    key = "map" if multi_label else "accuracy"

    validation_scores: dict[str, float] = {}
    chosen = weight_decays[0]
    holdout = int(round(validation_fraction * features.shape[0]))
    if len(weight_decays) > 1 and holdout >= 1 and features.shape[0] - holdout >= 1:
        order = np.random.default_rng(seed).permutation(features.shape[0])
        val_idx, fit_idx = order[:holdout], order[holdout:]
        mean, std = _standardizer(features[fit_idx])
        fit_x, val_x = (features[fit_idx] - mean) / std, (features[val_idx] - mean) / std
        for weight_decay in weight_decays:
            weight, bias = _fit(fit_x, targets[fit_idx], multi_label, num_labels, weight_decay, device, max_iter)
            try:
                value = classification_metrics(val_x @ weight.T + bias, targets[val_idx], multi_label)[key]
            except ValueError:  # no positive clip of any class in a tiny held-out part
                value = float("nan")
            validation_scores[f"{weight_decay:g}"] = value
        finite = {w: v for w, v in zip(weight_decays, validation_scores.values()) if not math.isnan(v)}
        if finite:
            # Ties go to the strongest regularisation (the simpler classifier).
            chosen = max(finite, key=lambda w: (finite[w], w))
    mean, std = _standardizer(features)
    weight, bias = _fit((features - mean) / std, targets, multi_label, num_labels, chosen, device, max_iter)
    return LinearClassifier(mean, std, weight, bias, chosen, multi_label), validation_scores


def multi_label_decision_metrics(
    logits: np.ndarray, targets: np.ndarray, label_names: Sequence[str] | None = None
) -> dict[str, Any]:
    """Scores of the decisions `logit > 0` (probability above 0.5) of a multi-label classifier.

    `macro_f1`: the mean F1 over the classes that have a positive clip or a positive decision (a class with
    neither has no F1); `micro_f1` over all (clip, class) decisions; `label_accuracy`: the share of right
    (clip, class) decisions; `exact_match`: the share of clips whose whole label set is right; `per_class_f1`.
    """
    logits = np.asarray(logits, dtype=np.float64)
    targets = np.asarray(targets) > 0.5
    if logits.ndim != 2 or logits.shape != targets.shape or logits.shape[0] == 0:
        raise ValueError(f"logits {logits.shape} and multi-hot targets {targets.shape} must be the same [clips >= 1, "
                         "classes] shape")
    decided = logits > 0
    true_positives = (decided & targets).sum(axis=0)
    errors = (decided != targets).sum(axis=0)
    denominator = 2 * true_positives + errors
    names = list(label_names) if label_names is not None else [str(i) for i in range(logits.shape[1])]
    per_class = {names[i]: float(2 * true_positives[i] / denominator[i]) for i in np.flatnonzero(denominator)}
    all_positives = 2 * true_positives.sum() + errors.sum()
    return {
        "macro_f1": float(np.mean(list(per_class.values()))) if per_class else float("nan"),
        "micro_f1": float(2 * true_positives.sum() / all_positives) if all_positives else float("nan"),
        "label_accuracy": float(np.mean(decided == targets)),
        "exact_match": float(np.mean((decided == targets).all(axis=1))),
        "per_class_f1": per_class,
    }


def probe_embeddings(
    train_features: np.ndarray,
    train_targets: np.ndarray,
    eval_features: np.ndarray,
    eval_targets: np.ndarray,
    *,
    multi_label: bool,
    label_names: Sequence[str] | None = None,
    weight_decays: Sequence[float] = DEFAULT_WEIGHT_DECAYS,
    seed: int = 0,
    device: Any = None,
) -> dict[str, Any]:
    """Fit `fit_linear_classifier` on one set of embeddings and score it on another: `classification_metrics`
    (mAP or accuracy), plus `multi_label_decision_metrics` for multi-label targets, the chosen weight decay and the
    embedding width."""
    from llm_aac.eval.audio_classification import classification_metrics

    num_labels = train_targets.shape[1] if multi_label else int(max(train_targets.max(), eval_targets.max())) + 1
    classifier, validation = fit_linear_classifier(
        train_features, train_targets, multi_label=multi_label, num_labels=num_labels, weight_decays=weight_decays,
        seed=seed, device=device,
    )
    logits = classifier.logits(eval_features)
    metrics = classification_metrics(logits, eval_targets, multi_label, label_names)
    if multi_label:
        metrics.update(multi_label_decision_metrics(logits, eval_targets, label_names))
    shape = np.asarray(train_features).shape
    metrics.update(weight_decay=classifier.weight_decay, validation=validation, dim=int(shape[1]),
                   num_train_clips=int(shape[0]))
    return metrics


# ------------------------------------------------------------------------------------------ the probe


def _clip_keys(dataset) -> list[str]:
    """One key per row that identifies the clip across splits / folds (its audio file or bytes)."""
    import hashlib

    keys = []
    # In batches: a corpus with embedded audio bytes is never held in memory whole.
    for batch in dataset.select_columns(["audio"]).iter(batch_size=256):
        for value in batch["audio"]:
            if value.get("bytes") is not None:
                keys.append("sha1:" + hashlib.sha1(value["bytes"]).hexdigest())
            else:
                keys.append("path:" + os.path.abspath(value["path"]))
    return keys


def run_linear_probe(
    model: str | os.PathLike,
    dataset: str | os.PathLike,
    *,
    task: str | None = None,
    poolings: Sequence[str] = ("cls",),
    layer: int = -1,
    train_split: str | None = None,
    eval_splits: Sequence[str] | None = None,
    folds: Sequence[int] | None = None,
    labels_csv: str | None = None,
    max_train_clips: int | None = None,
    max_eval_clips: int | None = None,
    max_frames: int | None = None,
    batch_size: int = 16,
    num_workers: int = 0,
    weight_decays: Sequence[float] = DEFAULT_WEIGHT_DECAYS,
    device: Any = None,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Embed every clip of the task once, fit one linear classifier per run and pooling, and score it.

    Returns `{"task", "model", "metric", "poolings": {pooling: {"runs": {run: {eval_set: metrics,
    "weight_decay", "validation"}}, "summary": ...}}}` (see `audio_classification.summarize_runs`).
    """
    from llm_aac.eval.audio_classification import classification_metrics, load_classification_task, summarize_runs

    task_data = load_classification_task(
        dataset, task, train_split=train_split, eval_splits=eval_splits, folds=folds, labels_csv=labels_csv,
        max_train_clips=max_train_clips, max_eval_clips=max_eval_clips,
    )
    encoder, feature_extractor = load_audio_encoder(model, device=device)
    torch_device = next(encoder.parameters()).device

    # Embed each distinct clip once, whatever the number of runs it appears in.
    datasets = [d for run in task_data.runs for d in (run.train, *run.evaluations.values())]
    cache: dict[str, dict[str, np.ndarray]] = {}
    keys_of = []
    for data in datasets:
        keys = _clip_keys(data)
        keys_of.append(keys)
        todo = [i for i, k in enumerate(keys) if k not in cache]
        if todo:
            embedded = extract_embeddings(
                encoder, feature_extractor, data.select(todo), poolings=poolings, layer=layer,
                batch_size=batch_size, max_frames=max_frames, num_workers=num_workers, progress=progress,
            )
            for row, index in enumerate(todo):
                cache[keys[index]] = {p: embedded[p][row] for p in poolings}

    def matrix(data_index: int, pooling: str) -> np.ndarray:
        return np.stack([cache[k][pooling] for k in keys_of[data_index]])

    results: dict[str, Any] = {
        "task": task_data.kind,
        "model": os.fspath(model),
        "dataset": os.fspath(dataset),
        "metric": task_data.metric_name,
        "layer": layer,
        "num_labels": task_data.num_labels,
        "poolings": {},
    }
    for pooling in poolings:
        per_run: dict[str, dict[str, Any]] = {}
        details: dict[str, Any] = {}
        position = 0
        for run in task_data.runs:
            train_x = matrix(position, pooling)
            classifier, validation = fit_linear_classifier(
                train_x, task_data.targets(run.train), multi_label=task_data.multi_label,
                num_labels=task_data.num_labels, weight_decays=weight_decays, seed=seed, device=torch_device,
            )
            position += 1
            per_run[run.name] = {}
            for eval_name, eval_data in run.evaluations.items():
                logits = classifier.logits(matrix(position, pooling))
                position += 1
                per_run[run.name][eval_name] = classification_metrics(
                    logits, task_data.targets(eval_data), task_data.multi_label, task_data.label_names
                )
            details[run.name] = {"weight_decay": classifier.weight_decay, "validation": validation,
                                 "num_train_clips": int(train_x.shape[0])}
            logger.info("%s / %s pooling: weight decay %g, %s", run.name, pooling, classifier.weight_decay,
                        {k: round(v[task_data.metric_name], 4) for k, v in per_run[run.name].items()})
        results["poolings"][pooling] = {
            "runs": per_run,
            "fits": details,
            "summary": summarize_runs(task_data, per_run),
        }
    return results


def markdown_report(results: dict[str, Any]) -> str:
    """One row per pooling: the headline metric of each evaluation set (ESC-50: mean +- std over folds)."""
    from llm_aac.eval.audio_classification import format_percent

    metric = results["metric"]
    title = "mAP" if metric == "map" else "accuracy"
    rows = []
    columns: list[str] = []
    for pooling, block in results["poolings"].items():
        summary = block["summary"]
        if results["task"] == "esc50":
            cells = {f"{title} (5-fold)" if summary["num_folds"] == 5 else f"{title} ({summary['num_folds']} folds)":
                     f"{format_percent(summary[metric])} +- {format_percent(summary[metric + '_std'])}"}
        else:
            cells = {f"{name[: -len(metric) - 1]} {title}": format_percent(value)
                     for name, value in summary.items() if name.endswith("_" + metric)}
        for name in cells:
            if name not in columns:
                columns.append(name)
        rows.append((pooling, cells))
    lines = [
        f"Linear probe of `{results['model']}` on {results['task']} (layer {results['layer']}, values in %)",
        "",
        "| pooling | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for pooling, cells in rows:
        lines.append(f"| {pooling} | " + " | ".join(cells.get(c, "n/a") for c in columns) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="EAT encoder folder (or a captioner folder: its encoder)")
    parser.add_argument("--dataset", required=True,
                        help="ESC-50 folder, `llm-aac synth` corpus, AudioSet copy, or 'audioset' (Hub)")
    parser.add_argument("--task", choices=["audioset", "esc50", "synthetic"], default=None,
                        help="benchmark layout (default: detected from --dataset)")
    parser.add_argument("--output", required=True, help="folder for linear_probe.json and linear_probe.md")
    parser.add_argument("--pooling", nargs="+", choices=POOLINGS, default=["cls"],
                        help="clip embedding(s): CLS token and/or mean of the patch tokens (default cls)")
    parser.add_argument("--layer", type=int, default=-1,
                        help="-1: last block (default); k: hidden_states[k] (0 = embeddings, k = block k)")
    parser.add_argument("--train-split", default=None, help="AudioSet / synthetic training split (default train)")
    parser.add_argument("--eval-splits", nargs="+", default=None,
                        help="AudioSet / synthetic evaluation splits (default test; synthetic: test compositional)")
    parser.add_argument("--folds", nargs="+", type=int, default=None, help="ESC-50 folds to hold out (default 1..5)")
    parser.add_argument("--labels-csv", default=None, help="AudioSet class_labels_indices.csv (class order)")
    parser.add_argument("--max-train-clips", type=int, default=None, help="use only the first N training clips")
    parser.add_argument("--max-eval-clips", type=int, default=None, help="use only the first N evaluation clips")
    parser.add_argument("--max-frames", type=int, default=None,
                        help="cut clips to their first N frames (default: the encoder's longest input)")
    parser.add_argument("--batch-size", type=int, default=16, help="clips per encoder batch (default 16)")
    parser.add_argument("--num-workers", type=int, default=0, help="audio decoding processes (default 0)")
    parser.add_argument("--weight-decays", type=float, nargs="+", default=list(DEFAULT_WEIGHT_DECAYS),
                        help="L2 strengths tried on a held-out 10%% of the training clips")
    parser.add_argument("--device", default=None, help="cuda / cpu (default: cuda when available)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out split (default 0)")


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    results = run_linear_probe(
        args.model, args.dataset, task=args.task, poolings=args.pooling, layer=args.layer,
        train_split=args.train_split, eval_splits=args.eval_splits, folds=args.folds, labels_csv=args.labels_csv,
        max_train_clips=args.max_train_clips, max_eval_clips=args.max_eval_clips, max_frames=args.max_frames,
        batch_size=args.batch_size, num_workers=args.num_workers, weight_decays=args.weight_decays,
        device=args.device, seed=args.seed,
    )
    os.makedirs(args.output, exist_ok=True)
    with open(os.path.join(args.output, "linear_probe.json"), "w") as f:
        json.dump(results, f, indent=1)
    report = markdown_report(results)
    with open(os.path.join(args.output, "linear_probe.md"), "w") as f:
        f.write(report)
    print(report)
    return 0


if __name__ == "__main__":
    import sys

    parser = argparse.ArgumentParser(prog="linear_probe", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
