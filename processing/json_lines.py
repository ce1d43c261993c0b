"""Reading JSON-lines files (one JSON object per line) with errors that name the file and the line.

Caption lists, evaluation predictions and run records are JSON lines; a truncated or hand-edited file should fail
on the line that is wrong, not later on a missing key.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any


def iter_json_lines(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield `(line number, object)` for every non-blank line of `path` (numbers start at 1).

    Raises:
        ValueError: the file does not exist, or a line is not JSON or not a JSON object (file, line and the
            line's start in the message).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file")
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {number}: not JSON ({error}): {line.strip()[:80]!r}") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}, line {number}: expected a JSON object, got {type(record).__name__} "
                                 f"({line.strip()[:80]!r})")
            yield number, record
