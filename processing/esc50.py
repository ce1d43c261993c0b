"""ESC-50 in its published layout (github.com/karolpiczak/ESC-50), as a `datasets.Dataset`.

    ESC-50-master/
        meta/esc50.csv     filename, fold, target, category, esc10, src_file, take
        audio/*.wav        2,000 clips of 5 s, 44.1 kHz, 50 classes x 40 clips

The benchmark is 5-fold cross-validation over the `fold` column (1..5): train on four folds, test on
the fifth, report the mean accuracy of the five runs. Clips of one freesound source (`src_file`) share a
fold, so the folds must be used as published, never re-drawn.
"""

from __future__ import annotations

import logging
import os

from .loaders import _index_audio_files, _read_csv, _undecoded_audio_dataset

logger = logging.getLogger(__name__)

ESC50_CSV_COLUMNS = ("filename", "fold", "target", "category")
ESC50_NUM_FOLDS = 5


def esc50_csv_path(root: str | os.PathLike) -> str | None:
    """`<root>/meta/esc50.csv` (or `<root>/esc50.csv`) when it exists."""
    root = os.fspath(root)
    for path in (os.path.join(root, "meta", "esc50.csv"), os.path.join(root, "esc50.csv")):
        if os.path.isfile(path):
            return path
    return None


def is_esc50_root(path: str | os.PathLike) -> bool:
    return os.path.isdir(os.fspath(path)) and esc50_csv_path(path) is not None


def load_esc50(
    root: str | os.PathLike,
    *,
    audio_dir: str | os.PathLike | None = None,
    folds: list[int] | tuple[int, ...] | None = None,
    on_missing_audio: str = "error",
):
    """Load ESC-50 (or ESC-10 / any corpus using the same CSV) as one `Dataset` in CSV order.

    Args:
        root: the folder holding `meta/esc50.csv` (the repository's root, `ESC-50-master`).
        audio_dir: folder of the clips (default `<root>/audio`).
        folds: keep only these folds (1-based, as in the CSV); None keeps all.
        on_missing_audio: `"error"` (default) or `"skip"` rows whose file is absent.

    Returns:
        A `Dataset` with `audio` (`Audio(decode=False)`), `filename`, `fold` (int), `target` (int class
        index), `category` (class name) and, when the CSV has them, `esc10` (bool), `src_file`, `take`.
    """
    if on_missing_audio not in ("error", "skip"):
        raise ValueError(f"on_missing_audio must be 'error' or 'skip', got {on_missing_audio!r}.")
    root = os.fspath(root)
    csv_path = esc50_csv_path(root)
    if csv_path is None:
        raise ValueError(f"No ESC-50 metadata under {root!r}: expected {os.path.join(root, 'meta', 'esc50.csv')}.")
    rows = _read_csv(csv_path, ESC50_CSV_COLUMNS)
    if not rows:
        raise ValueError(f"{csv_path} lists no clips.")

    parsed = []
    for line, row in enumerate(rows, start=2):
        try:
            fold, target = int(row["fold"]), int(row["target"])
        except ValueError as err:
            raise ValueError(
                f"{csv_path}, line {line}: fold and target must be integers, got fold={row['fold']!r}, "
                f"target={row['target']!r}."
            ) from err
        if fold < 1:
            raise ValueError(f"{csv_path}, line {line}: folds are numbered from 1, got {fold}.")
        if target < 0:
            raise ValueError(f"{csv_path}, line {line}: target must be a class index >= 0, got {target}.")
        parsed.append((row, fold, target))

    # One name per class index: a CSV that disagrees with itself would silently merge classes.
    names: dict[int, str] = {}
    for row, _, target in parsed:
        name = row["category"].strip()
        if names.setdefault(target, name) != name:
            raise ValueError(f"{csv_path}: class {target} is called both {names[target]!r} and {name!r}.")

    if folds is not None:
        wanted = {int(f) for f in folds}
        present = {fold for _, fold, _ in parsed}
        unknown = sorted(wanted - present)
        if unknown:
            raise ValueError(f"fold(s) {unknown} not in {csv_path}; folds present: {sorted(present)}.")
        parsed = [item for item in parsed if item[1] in wanted]

    audio_dir = os.fspath(audio_dir) if audio_dir is not None else os.path.join(root, "audio")
    if not os.path.isdir(audio_dir):
        raise ValueError(f"ESC-50 audio folder {audio_dir!r} does not exist.")
    index = _index_audio_files(audio_dir, recursive=False)

    kept, paths, missing = [], [], []
    for row, fold, target in parsed:
        path = index.get(row["filename"].strip())
        if path is None:
            missing.append(row["filename"])
            continue
        kept.append((row, fold, target))
        paths.append(path)
    if missing:
        message = f"{len(missing)} of {len(parsed)} ESC-50 clips have no file in {audio_dir} (first: {missing[:5]})."
        if on_missing_audio == "error":
            raise ValueError(message + " Pass on_missing_audio='skip' to drop them.")
        logger.warning(message + " They are skipped.")
    if not kept:
        raise ValueError(f"no ESC-50 clip of {csv_path} has an audio file in {audio_dir}.")

    columns: dict[str, list] = {
        "filename": [row["filename"].strip() for row, _, _ in kept],
        "fold": [fold for _, fold, _ in kept],
        "target": [target for _, _, target in kept],
        "category": [row["category"].strip() for row, _, _ in kept],
    }
    header = kept[0][0].keys()
    if "esc10" in header:
        columns["esc10"] = [str(row["esc10"]).strip().lower() in ("true", "1", "yes") for row, _, _ in kept]
    for extra in ("src_file", "take"):
        if extra in header:
            columns[extra] = [str(row[extra]).strip() for row, _, _ in kept]
    return _undecoded_audio_dataset(columns, paths)


def esc50_class_names(dataset) -> list[str]:
    """Class names indexed by `target` (a gap in the targets is an error: labels must be 0..C-1)."""
    pairs = dict(zip(dataset["target"], dataset["category"]))
    count = max(pairs) + 1
    gaps = [i for i in range(count) if i not in pairs]
    if gaps:
        raise ValueError(f"ESC-50 targets must cover 0..{count - 1}; missing {gaps[:10]}")
    return [pairs[i] for i in range(count)]


__all__ = ["ESC50_NUM_FOLDS", "esc50_class_names", "esc50_csv_path", "is_esc50_root", "load_esc50"]
