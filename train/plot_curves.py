"""Training curves from `Trainer` log histories, as PNG.

    python train/plot_curves.py RUN_DIR_OR_trainer_state.json [...] --output curves.png [--labels a,b]
        [--keys loss,frame_loss,utterance_loss]

Each run is a `trainer_state.json`, a folder holding one (the newest `checkpoint-*` is used when the
folder itself has none), or a JSON list of log entries. One panel per key; several runs are overlaid.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from collections.abc import Sequence


def load_log_history(source: str | os.PathLike) -> list[dict]:
    """Log entries of a run: a `trainer_state.json`, a run / checkpoint folder, or a JSON list of entries."""
    path = os.fspath(source)
    if os.path.isdir(path):
        candidates = [os.path.join(path, "trainer_state.json"), os.path.join(path, "log_history.json")]
        candidates += sorted(
            glob.glob(os.path.join(path, "checkpoint-*", "trainer_state.json")),
            key=lambda p: int(os.path.basename(os.path.dirname(p)).split("-")[-1]),
            reverse=True,
        )
        found = next((c for c in candidates if os.path.isfile(c)), None)
        if found is None:
            raise ValueError(f"{path!r} holds no trainer_state.json, log_history.json or checkpoint-*/trainer_state.json")
        path = found
    if not os.path.isfile(path):
        raise ValueError(f"log history {path!r} does not exist")
    with open(path) as f:
        data = json.load(f)
    history = data.get("log_history") if isinstance(data, dict) else data
    if not isinstance(history, list):
        raise ValueError(f"{path!r} is neither a trainer_state.json nor a JSON list of log entries")
    return history


def curve(history: Sequence[dict], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of `key` over the entries that log it."""
    steps, values = [], []
    for entry in history:
        if key in entry and "step" in entry:
            steps.append(int(entry["step"]))
            values.append(float(entry[key]))
    return steps, values


def _spans_decade(histories, key: str) -> bool:
    values = [v for h in histories for v in curve(h, key)[1]]
    return bool(values) and max(values) > 10 * min(values)


def plot_loss_curves(
    histories: Sequence[Sequence[dict]] | Sequence[dict],
    output_path: str | os.PathLike,
    *,
    keys: Sequence[str] = ("loss", "frame_loss", "utterance_loss"),
    labels: Sequence[str] | None = None,
    title: str | None = None,
    log_scale: bool = True,
) -> str:
    """Write one panel per key (x: optimizer step) with every run overlaid; returns the PNG path.

    Args:
        histories: one log history (a list of dicts such as `trainer.state.log_history`) or several.
        output_path: PNG file to write (folders are created).
        keys: logged values to draw; keys no run logs are skipped, and no key at all is an error.
        labels: legend entry per run (default `run 1`, `run 2`, ...).
        title: figure title.
        log_scale: logarithmic y axis for strictly positive curves spanning more than a decade.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if histories and isinstance(histories[0], dict):
        histories = [histories]
    if not histories:
        raise ValueError("plot_loss_curves needs at least one log history")
    labels = list(labels) if labels is not None else [f"run {i + 1}" for i in range(len(histories))]
    if len(labels) != len(histories):
        raise ValueError(f"got {len(labels)} labels for {len(histories)} runs")
    present = [k for k in keys if any(curve(h, k)[0] for h in histories)]
    if not present:
        logged = sorted({k for h in histories for e in h for k in e})
        raise ValueError(f"no run logs any of {list(keys)}; logged keys: {logged}")

    figure, axes = plt.subplots(1, len(present), figsize=(4.5 * len(present), 3.6), squeeze=False)
    for axis, key in zip(axes[0], present):
        positive = True
        for history, label in zip(histories, labels):
            steps, values = curve(history, key)
            if steps:
                axis.plot(steps, values, label=label, linewidth=1.2)
                positive = positive and min(values) > 0
        if log_scale and positive and _spans_decade(histories, key):
            axis.set_yscale("log")
        axis.set_title(key)
        axis.set_xlabel("optimizer step")
        axis.grid(True, alpha=0.3)
        if len(histories) > 1:
            axis.legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    output_path = os.fspath(output_path)
    os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
    figure.savefig(output_path, dpi=120)
    plt.close(figure)
    return output_path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="trainer_state.json files or run folders")
    parser.add_argument("--output", required=True, help="PNG to write")
    parser.add_argument("--labels", default=None, help="comma-separated legend entries, one per run")
    parser.add_argument("--keys", default="loss,frame_loss,utterance_loss", help="comma-separated logged keys")
    parser.add_argument("--title", default=None)
    args = parser.parse_args(argv)
    histories = [load_log_history(run) for run in args.runs]
    labels = args.labels.split(",") if args.labels else [os.path.basename(os.path.normpath(r)) for r in args.runs]
    path = plot_loss_curves(histories, args.output, keys=args.keys.split(","), labels=labels, title=args.title)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
