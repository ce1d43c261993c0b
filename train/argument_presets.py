"""Command-line presets for the training scripts: a `--preset` name switches the defaults of any argument.

`HfArgumentParser` takes its defaults from the dataclasses; a preset (e.g. `tiny` for CPU tests, `7b` for the
SLAM-AAC recipe) replaces some of them before parsing, so that anything given on the command line still wins.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence


def parse_with_presets(
    dataclass_types: Sequence[type],
    presets: Mapping[str, Mapping[str, object]],
    argv: Sequence[str] | None = None,
    *,
    default_preset: str,
    base_defaults: Mapping[str, object] | None = None,
):
    """`HfArgumentParser(dataclass_types).parse_args_into_dataclasses(argv)` with the chosen preset's defaults.

    The dataclasses must have a `preset` field; `presets[name]` maps argument names (any dataclass's field) to
    their default under that preset. `base_defaults` holds defaults that apply under every preset (a preset's
    own value for the same argument wins).
    """
    from transformers import HfArgumentParser

    finder = argparse.ArgumentParser(add_help=False)
    finder.add_argument("--preset", default=default_preset)
    chosen, _ = finder.parse_known_args(argv)
    if chosen.preset not in presets:
        raise ValueError(f"unknown --preset {chosen.preset!r}; choose one of {sorted(presets)}")
    defaults = {**(base_defaults or {}), **presets[chosen.preset]}
    parser = HfArgumentParser(dataclass_types)
    known = {action.dest for action in parser._actions}
    unknown = sorted(set(defaults) - known)
    if unknown:
        raise ValueError(f"the defaults under preset {chosen.preset!r} name unknown arguments {unknown}")
    parser.set_defaults(**defaults)
    return parser.parse_args_into_dataclasses(args=list(argv) if argv is not None else None)


__all__ = ["parse_with_presets"]
