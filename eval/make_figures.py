"""Figures for the documentation, as PNG files (default folder `docs/`).

    python eval/make_figures.py                                       # features.png only
    python eval/make_figures.py --training runs/aac-small runs/eat-tiny --metrics results/clotho/metrics.json
    python eval/make_figures.py --no-features --ablations runs/ablations/ablations.json

* `features.png` -- the same synthetic clip as the three input features of `LLMAACFeatureExtractor`:
  Kaldi fbank (EAT's input), the band-limited Morlet scalogram (`cwt`) and the original LLM-AAC CWT
  (`cwt_seed`), with the clip's ground-truth events marked (their type and time span are known).
* `training_curves.png` -- training / validation curves of one or more `Trainer` runs
  (`trainer_state.json`, `log_history.json` or a run folder), drawn by `train/plot_curves.py`.
* `metrics_rescoring.png` -- the caption metrics of `llm-aac evaluate --compare-rescoring` (its
  `metrics.json`): beam search against CLAP rescoring, per split, as bars and as a table.
* `ablations.png` -- the table of `train/recipes/run_ablations.py` (its `ablations.json`, e.g. from
  `--aggregate`): per configuration, the mean over seeds as a bar and every seed's value as a dot, one panel per
  column (`--ablation-columns`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence

FEATURES_FILE = "features.png"
CURVES_FILE = "training_curves.png"
METRICS_FILE = "metrics_rescoring.png"
ABLATIONS_FILE = "ablations.png"
DEFAULT_ABLATION_COLUMNS = ("test CIDEr-D CLAP", "compos. CIDEr-D CLAP", "event F1 CLAP", "audio gain")
DEFAULT_CURVE_KEYS = ("loss", "eval_loss", "eval_cider_d", "eval_spider", "frame_loss", "utterance_loss")
FEATURE_TYPES = ("fbank", "cwt", "cwt_seed")
# Semantic-accuracy scores shown beside the caption metrics (synthetic corpus).
SEMANTIC_TITLES = {"event_f1": "event F1", "scene_accuracy": "scene acc."}
FEATURE_TITLES = {
    "fbank": "Kaldi fbank, 128 mel bins (EAT input)",
    "cwt": "Morlet scalogram (cwt), log modulus",
    "cwt_seed": "original LLM-AAC CWT (cwt_seed), first 10 s resampled to 1024 frames",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _hertz(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"


def pick_synthetic_clip(seed: int = 0, split: str = "train", max_seconds: float = 10.0, search: int = 200) -> int:
    """Index of the first clip of `split` with a background event under two or more foreground events and at
    most `max_seconds` long (so that `cwt_seed`'s 10 s window shows all of it); else the first multi-event clip."""
    from llm_aac.processing.synthetic import generate_clip

    fallback = None
    for index in range(search):
        clip = generate_clip(seed, index, split, with_audio=False)
        if clip["num_events"] >= 2 and fallback is None:
            fallback = index
        if clip["layout"] == "background" and clip["num_events"] >= 3 and clip["duration"] <= max_seconds:
            return index
    return 0 if fallback is None else fallback


def plot_features(output_path: str | os.PathLike, *, seed: int = 0, index: int | None = None, split: str = "train") -> str:
    """`features.png`: one panel per feature type for one synthetic clip (raw, unnormalised values)."""
    import numpy as np

    from llm_aac.processing.synthetic import generate_clip
    from modeling_llm_aac.feature_extraction_llm_aac import LLMAACFeatureExtractor

    if index is None:
        index = pick_synthetic_clip(seed, split)
    clip = generate_clip(seed, index, split)
    audio, rate = clip["audio"], clip["sampling_rate"]
    duration = len(audio) / rate

    plt = _pyplot()
    figure, axes = plt.subplots(len(FEATURE_TYPES), 1, figsize=(11, 3.0 * len(FEATURE_TYPES)), squeeze=False)
    for axis, feature_type in zip(axes[:, 0], FEATURE_TYPES):
        extractor = LLMAACFeatureExtractor(feature_type=feature_type)
        output = extractor(audio, sampling_rate=rate, return_tensors="np", do_normalize=False)
        frames = int(output["attention_mask"][0].sum())
        values = output["input_features"][0, :frames].T  # [bins, frames]
        # cwt_seed resamples (at most) the first 10 s to a fixed number of frames.
        span = min(duration, 10.0) if feature_type == "cwt_seed" else frames * extractor.hop_length / rate
        frequencies = np.asarray(extractor.center_frequencies)
        flip = frequencies[0] > frequencies[-1]  # cwt_seed's scales run high -> low frequency
        if flip:
            values, frequencies = values[::-1], frequencies[::-1]
        image = axis.imshow(values, origin="lower", aspect="auto", extent=(0.0, span, 0, values.shape[0]),
                            cmap="magma", interpolation="nearest")
        ticks = np.linspace(0, values.shape[0] - 1, 5).round().astype(int)
        axis.set_yticks(ticks + 0.5)
        axis.set_yticklabels([_hertz(frequencies[t]) for t in ticks])
        axis.set_ylabel("centre frequency (Hz)")
        axis.set_xlim(0.0, duration)
        axis.set_title(f"{FEATURE_TITLES[feature_type]}: {values.shape[0]} bins x {frames} frames")
        figure.colorbar(image, ax=axis, pad=0.01)
        for event in clip["events"]:
            for edge in (event["start"], event["end"]):
                axis.axvline(edge, color="cyan", linewidth=0.8, linestyle="--", alpha=0.8)
            axis.text(event["start"], values.shape[0] * (0.92 if event["background"] else 0.8), event["type"],
                      color="cyan", fontsize=8, va="top")
    axes[-1, 0].set_xlabel("time (s)")
    figure.suptitle(f"synthetic clip {split}/{index} (seed {seed}): \"{clip['captions'][0]}\"", fontsize=10)
    figure.tight_layout()
    return _save(figure, output_path, plt)


def plot_training_curves(runs: Sequence[str | os.PathLike], output_path: str | os.PathLike, *,
                         keys: Sequence[str] = DEFAULT_CURVE_KEYS, labels: Sequence[str] | None = None,
                         title: str | None = None) -> str:
    """`training_curves.png` from `Trainer` logs (see `train/plot_curves.py`)."""
    from llm_aac.train.plot_curves import load_log_history, plot_loss_curves

    if not runs:
        raise ValueError("no training run given")
    histories = [load_log_history(run) for run in runs]
    labels = list(labels) if labels else [os.path.basename(os.path.normpath(os.fspath(r))) for r in runs]
    return plot_loss_curves(histories, output_path, keys=keys, labels=labels, title=title)


def _metric_rows(metrics: Mapping) -> tuple[list[str], list[tuple[str, str, dict[str, float]]]]:
    """(metric names in display order, rows of (split, system label, scores)) from an evaluate metrics.json."""
    from llm_aac.eval.caption_metrics import METRIC_TITLES

    if "splits" not in metrics or "systems" not in metrics:
        raise ValueError("not an `llm-aac evaluate` metrics.json: it needs 'splits' and 'systems'")
    rows, requested = [], []
    semantic = False
    for split, block in metrics["splits"].items():
        for system, scored in block["systems"].items():
            result = scored["caption_metrics"]
            scores = {name: result["scores"].get("vocab.cands" if name == "vocab" else name)
                      for name in result["requested"]}
            if "semantic_accuracy" in scored:
                semantic = True
                scores.update({name: scored["semantic_accuracy"].get(name) for name in SEMANTIC_TITLES})
            rows.append((split, metrics["systems"].get(system, system), scores))
            requested.extend(result["requested"])
    names = [name for name in METRIC_TITLES if name in requested] + (list(SEMANTIC_TITLES) if semantic else [])
    return names, rows


def plot_metrics_table(metrics_json: str | os.PathLike | Mapping, output_path: str | os.PathLike, *,
                       title: str | None = None) -> str:
    """`metrics_rescoring.png`: grouped bars (scores x 100; vocabulary size left out of the bars) and a table
    with every value, one row per split and system; skipped metrics show `n/a`."""
    import numpy as np

    from llm_aac.eval.caption_metrics import METRIC_TITLES

    if isinstance(metrics_json, Mapping):
        metrics = metrics_json
    else:
        with open(os.fspath(metrics_json), encoding="utf-8") as f:
            metrics = json.load(f)
    names, rows = _metric_rows(metrics)
    titles = {**METRIC_TITLES, **SEMANTIC_TITLES}
    bar_names = [n for n in names if n != "vocab" and any(r[2].get(n) is not None for r in rows)]
    if not rows or not names:
        raise ValueError("the metrics file has no scored system")

    plt = _pyplot()
    figure, (bars, table_axis) = plt.subplots(
        2, 1, figsize=(max(7.0, 1.2 * len(names) + 3), 4.5 + 0.35 * len(rows)),
        gridspec_kw={"height_ratios": [3, 0.6 + 0.3 * len(rows)]},
    )
    width = 0.8 / max(1, len(rows))
    positions = np.arange(len(bar_names))
    for offset, (split, label, scores) in enumerate(rows):
        values = [100 * scores[n] if scores.get(n) is not None and not math.isnan(scores[n]) else 0.0 for n in bar_names]
        drawn = bars.bar(positions + (offset - (len(rows) - 1) / 2) * width, values, width, label=f"{split}: {label}")
        for rect, name in zip(drawn, bar_names):
            if scores.get(name) is None:
                bars.text(rect.get_x() + rect.get_width() / 2, 0.5, "n/a", ha="center", va="bottom", fontsize=7, rotation=90)
    bars.set_xticks(positions)
    bars.set_xticklabels([titles[n] for n in bar_names])
    tallest = max((100 * v for _, _, sc in rows for n, v in sc.items() if n in bar_names and v is not None), default=0.0)
    bars.set_ylim(0.0, max(1.0, 1.15 * tallest))
    bars.set_ylabel("score x 100")
    bars.grid(True, axis="y", alpha=0.3)
    bars.legend(fontsize=8)
    bars.set_title(title or f"{metrics.get('model', '')} on {metrics.get('dataset', '')}", fontsize=10)

    def cell(name, scores):
        value = scores.get(name)
        if value is None:
            return "n/a"
        return str(int(round(value))) if name == "vocab" else f"{100 * value:.1f}"

    table_axis.axis("off")
    table = table_axis.table(
        cellText=[[cell(n, scores) for n in names] for _, _, scores in rows],
        rowLabels=[f"{split}: {label}" for split, label, _ in rows],
        colLabels=[titles[n] for n in names],
        loc="center", cellLoc="center",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1.0, 1.3)
    figure.tight_layout()
    return _save(figure, output_path, plt)


def plot_ablations(ablations_json: str | os.PathLike | Mapping, output_path: str | os.PathLike, *,
                   columns: Sequence[str] = DEFAULT_ABLATION_COLUMNS, title: str | None = None) -> str:
    """`ablations.png` from `run_ablations.py`'s `ablations.json`: a panel per column, a bar per configuration
    (its mean over seeds; the baseline's in another colour) with each seed's value as a dot, so that two seeds'
    spread shows beside the mean.

    Rows of several budget scales or sizes are labelled with them. ValueError when the file is not an ablations
    table or a column is in none of its rows (the message lists the columns there are).
    """
    table = ablations_json
    if not isinstance(table, Mapping):
        with open(os.fspath(table), encoding="utf-8") as f:
            table = json.load(f)
    rows = table.get("rows") if isinstance(table, Mapping) else None
    if not isinstance(rows, list) or not rows or not all(isinstance(r, Mapping) and "columns" in r for r in rows):
        raise ValueError("not a run_ablations.py ablations.json (expected a non-empty 'rows' list with 'columns')")
    available = sorted({name for row in rows for name in row["columns"]})
    unknown = [c for c in columns if c not in available]
    if unknown or not columns:
        raise ValueError(f"ablation column(s) {unknown or list(columns)} not in the table; it has {available}")
    several = len({(r.get("budget_scale"), r.get("size")) for r in rows}) > 1
    labels = [f"{r['config']} ({r.get('size')}, x{r.get('budget_scale')})" if several else str(r["config"])
              for r in rows]
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(columns), figsize=(3.2 * len(columns) + 1, 3.6), squeeze=False)
    for axis, column in zip(axes[0], columns):
        for position, row in enumerate(rows):
            cell = row["columns"].get(column) or {}
            values = [v for v in cell.get("values") or [] if v is not None and math.isfinite(v)]
            if cell.get("mean") is not None:
                axis.bar(position, cell["mean"], color="C1" if row["config"] == "baseline" else "C0", alpha=0.6)
            axis.scatter([position] * len(values), values, color="black", s=12, zorder=3)
        axis.set_title(column, fontsize=9)
        axis.set_xticks(range(len(rows)))
        axis.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
        axis.grid(axis="y", alpha=0.3)
    seeds = sorted({s for r in rows for s in r.get("seeds") or []})
    devices = sorted({d for r in rows for d in r.get("devices") or [] if d})
    figure.suptitle(title or f"ablations: mean over seeds {seeds} (bars), each seed (dots)"
                    + (f"; {', '.join(devices)}" if devices else ""), fontsize=10)
    figure.tight_layout()
    return _save(figure, output_path, plt)


def _save(figure, output_path, plt) -> str:
    output_path = os.fspath(output_path)
    os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
    figure.savefig(output_path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return output_path


def make_figures(output_dir: str | os.PathLike = "docs", *, training: Sequence[str] = (), training_labels=None,
                 curve_keys: Sequence[str] = DEFAULT_CURVE_KEYS, metrics: str | os.PathLike | None = None,
                 features: bool = True, clip_seed: int = 0, clip_index: int | None = None,
                 ablations: str | os.PathLike | None = None,
                 ablation_columns: Sequence[str] = DEFAULT_ABLATION_COLUMNS) -> list[str]:
    """Writes the figures whose inputs are given (the features figure needs none); returns their paths."""
    written = []
    if features:
        written.append(plot_features(os.path.join(output_dir, FEATURES_FILE), seed=clip_seed, index=clip_index))
    if training:
        written.append(plot_training_curves(training, os.path.join(output_dir, CURVES_FILE), keys=curve_keys,
                                            labels=training_labels))
    if metrics is not None:
        written.append(plot_metrics_table(metrics, os.path.join(output_dir, METRICS_FILE)))
    if ablations is not None:
        written.append(plot_ablations(ablations, os.path.join(output_dir, ABLATIONS_FILE), columns=ablation_columns))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default="docs", help="folder for the PNG files (default docs/)")
    parser.add_argument("--training", nargs="*", default=[], help="Trainer runs: trainer_state.json, log_history.json or run folders")
    parser.add_argument("--training-labels", default=None, help="comma-separated legend entries, one per run")
    parser.add_argument("--curve-keys", default=",".join(DEFAULT_CURVE_KEYS), help="comma-separated logged keys to draw")
    parser.add_argument("--metrics", default=None, help="metrics.json of `llm-aac evaluate --compare-rescoring`")
    parser.add_argument("--ablations", default=None, help="ablations.json of train/recipes/run_ablations.py")
    parser.add_argument("--ablation-columns", default=",".join(DEFAULT_ABLATION_COLUMNS),
                        help="comma-separated columns of the ablations table to draw, one panel each")
    parser.add_argument("--no-features", action="store_true", help="skip features.png")
    parser.add_argument("--clip-seed", type=int, default=0, help="synthetic corpus seed of the features clip")
    parser.add_argument("--clip-index", type=int, default=None,
                        help="index of the synthetic train clip (default: first background scene of <= 10 s)")
    args = parser.parse_args(argv)
    written = make_figures(
        args.output_dir, training=args.training,
        training_labels=args.training_labels.split(",") if args.training_labels else None,
        curve_keys=[k for k in args.curve_keys.split(",") if k], metrics=args.metrics,
        features=not args.no_features, clip_seed=args.clip_seed, clip_index=args.clip_index,
        ablations=args.ablations, ablation_columns=[c for c in args.ablation_columns.split(",") if c],
    )
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
