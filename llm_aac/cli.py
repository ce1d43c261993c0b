"""The `llm-aac` console script.

Each subcommand lives in its own module exposing `add_arguments(parser)` and `main(args) -> int`;
modules are imported only when their subcommand runs so that `llm-aac --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "precompute": ("llm_aac.processing.precompute", "precompute raw audio features into Arrow shards with per-bin statistics (resumable, multi-machine)"),
    "convert-eat": ("llm_aac.convert_eat", "convert an official EAT .pt or HF-port folder to a transformers EATModel folder"),
    "convert-clap": ("modeling_llm_aac.convert_laion_clap", "convert a laion-clap .pt checkpoint to a transformers ClapModel folder"),
    "synth": ("llm_aac.processing.synthetic", "write the synthetic captioning corpus (scenes, 5 captions, ground truth)"),
    "caption": ("llm_aac.caption", "caption audio files with a saved captioner (optionally CLAP-rescored candidates)"),
    "evaluate": ("llm_aac.eval.evaluate_captioner", "caption a dataset split and score it (DCASE metrics, semantic accuracy, beam search vs CLAP rescoring)"),
    "linear-probe": ("llm_aac.eval.linear_probe", "linear probe of a frozen EAT encoder on AudioSet / ESC-50 / synthetic event labels"),
    "demo": ("llm_aac.demo", "the whole recipe end to end at toy size, offline on a CPU in minutes: corpus, EAT, LM, captioner, CLAP, evaluation"),
    "rerank-report": ("llm_aac.eval.reranker_analysis", "how far any reference-free re-ranker (CLAP, log-prob, consensus among candidates, and consensus with sampled captions when present) of an evaluation's saved candidates could go vs beam search and the oracle"),
}


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """Every subcommand is listed, but only `selected` has its module imported for its arguments:
    modules such as the CLAP converter import transformers' audio stack, which `--help` and the
    other subcommands should not pay for (or fail on)."""
    parser = argparse.ArgumentParser(prog="llm-aac", description="LLM-AAC audio captioning tools.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(_module=module_name)
        if name == selected:
            importlib.import_module(module_name).add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = next((arg for arg in argv if not arg.startswith("-")), None)
    parser = build_parser(selected if selected in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(args._module)
    return int(module.main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
