"""How much consensus rescoring could gain on the synthetic corpus for a perfectly calibrated captioner.

    python eval/consensus_ceiling.py --clips 300 --samples 16 32 64 --output-json out/consensus_ceiling.json

Consensus rescoring (`modeling_llm_aac.consensus_scoring`, minimum-Bayes-risk decoding) picks, among a clip's
candidates, the one that agrees most with captions sampled from the captioner. How well that works depends on how
well the captioner's samples match the distribution the references were written from. This script removes that
question: the corpus's own caption grammar (`llm_aac.processing.synthetic_captions.realize_caption`), which wrote the
references, stands in for the captioner, so the samples come from exactly the references' distribution. What is left
is the ceiling of the method itself on this corpus: given candidates that differ only in phrasing, how much CIDEr-D
does choosing by consensus gain over the single most likely phrasing?

Protocol, deterministic for given arguments, for clips 0..N-1 of `--split` (corpus seed `--corpus-seed`), scene and
references from `llm_aac.processing.synthetic.generate_clip(seed, index, split, with_audio=False)`:

1. Candidates: M draws from the grammar with `np.random.default_rng(candidate_seed_offset + index)` (default offset
   10 000); the C most frequent distinct draws, most frequent first, equal counts in order of first appearance. The
   first one, the mode, is the most likely phrasing: the stand-in for beam search's top hypothesis ("beam search" in
   the table). A scene with fewer than C distinct draws keeps the ones it has.
2. Pseudo-references, per K in `--samples`: the first K draws from a fresh
   `np.random.default_rng(sample_seed_offset + index)` (default offset 50 000; so the K=16 samples are the first 16 of
   the K=32 ones), independent of the candidates' draws.
3. The consensus pick: the candidate with the highest `consensus_scores(candidates, pseudo_references)`, ties to the
   earlier (more frequent) candidate.
4. Truth: every candidate's CIDEr-D against the clip's 5 real references
   (`llm_aac.eval.candidate_headroom.candidate_scores`: aac-metrics, one corpus call per candidate slot, so the
   document frequencies are those of these N clips' references; no PTB tokenisation unless `--tokenize`).

Reported per K, as means over the clips: `mode` (beam search's stand-in), `pick` (the consensus pick), `gain`
(`pick / mode - 1`), `headroom_taken` (`(pick - mode) / (oracle - mode)`), `changed` (share of clips whose pick is not
the mode), and, the same for every K, `oracle` (each clip's best candidate: the ceiling of any re-ranker of these
candidates) and `random_phrasing` (the mean over a clip's candidates: choosing a phrasing uniformly at random).
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(
        os.path.abspath(__file__)):
    # Run as `python eval/consensus_ceiling.py`, Python puts eval/ first on the path, where eval/aac_metrics.py
    # would shadow the aac-metrics package; the installed `llm_aac.eval` is what this script imports instead.
    del sys.path[0]

import argparse
import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

DEFAULT_CLIPS = 300
DEFAULT_SAMPLES = (16, 32, 64)
DEFAULT_CANDIDATES = 7
DEFAULT_DRAWS = 300
DEFAULT_CANDIDATE_SEED_OFFSET = 10_000
DEFAULT_SAMPLE_SEED_OFFSET = 50_000
CEILING_SPLITS = ("test", "compositional")


def draw_captions(events: Sequence[dict], layout: str, count: int, seed: int) -> list[str]:
    """`count` captions of one scene drawn from the corpus grammar with `np.random.default_rng(seed)`."""
    from llm_aac.processing.synthetic_captions import realize_caption

    rng = np.random.default_rng(seed)
    return [realize_caption(list(events), layout, rng) for _ in range(count)]


def most_frequent(draws: Sequence[str], count: int) -> list[str]:
    """The `count` most frequent distinct captions of `draws`, most frequent first; equal counts keep the order in
    which the captions first appear (Counter keeps insertion order and `most_common` sorts stably)."""
    return [caption for caption, _ in Counter(draws).most_common(count)]


def consensus_pick(candidates: Sequence[str], pseudo_references: Sequence[str]) -> int:
    """Index of the candidate agreeing most with the pseudo-references; ties go to the earlier candidate."""
    from modeling_llm_aac.consensus_scoring import consensus_scores

    scores = consensus_scores(list(candidates), list(pseudo_references))
    return max(range(len(scores)), key=lambda k: (scores[k], -k))


def _check_count(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def consensus_ceiling(
    *,
    clips: int = DEFAULT_CLIPS,
    samples: Sequence[int] = DEFAULT_SAMPLES,
    candidates: int = DEFAULT_CANDIDATES,
    draws: int = DEFAULT_DRAWS,
    corpus_seed: int = 0,
    split: str = "test",
    candidate_seed_offset: int = DEFAULT_CANDIDATE_SEED_OFFSET,
    sample_seed_offset: int = DEFAULT_SAMPLE_SEED_OFFSET,
    tokenize: bool = False,
) -> dict[str, Any]:
    """The consensus-rescoring ceiling of the protocol in the module docstring.

    Args:
        clips: N, clips 0..N-1 of the split.
        samples: the numbers K of pseudo-references to try, each >= 1 (duplicates are measured once).
        candidates: C, candidates per clip (the most frequent distinct draws).
        draws: M, grammar draws the candidates are taken from; at least C.
        corpus_seed: the synthetic corpus's seed (`llm-aac synth --seed`).
        split: "test" or "compositional".
        candidate_seed_offset: clip `index` draws its candidates with `default_rng(candidate_seed_offset + index)`.
        sample_seed_offset: clip `index` draws its pseudo-references with `default_rng(sample_seed_offset + index)`.
        tokenize: PTB-tokenise captions before CIDEr-D (needs Java; off: aac-metrics without the tokenizer).

    Returns:
        `settings` (the arguments), `distinct_per_clip` (mean number of candidates), `mode`, `oracle`,
        `random_phrasing` and `rows`, one per K with `samples`, `mode`, `pick`, `gain`, `headroom_taken` (None when
        the oracle equals the mode), `changed`, `oracle`, `random_phrasing`.

    Raises:
        ValueError: a count below 1, `draws < candidates`, an unknown split or a negative seed or offset.
    """
    from llm_aac.eval.candidate_headroom import candidate_scores
    from llm_aac.processing.synthetic import generate_clip

    _check_count("clips", clips)
    _check_count("candidates", candidates)
    _check_count("draws", draws, candidates)
    if isinstance(samples, (str, bytes)) or not isinstance(samples, Sequence) or not samples:
        raise ValueError(f"samples must be a non-empty list of integers >= 1, got {samples!r}")
    for value in samples:
        _check_count("every number of samples", value)
    for name, value in (("corpus_seed", corpus_seed), ("candidate_seed_offset", candidate_seed_offset),
                        ("sample_seed_offset", sample_seed_offset)):
        _check_count(name, value, 0)
    if split not in CEILING_SPLITS:
        raise ValueError(f"split must be one of {CEILING_SPLITS}, got {split!r}")
    sample_counts = list(dict.fromkeys(int(k) for k in samples))

    references: list[list[str]] = []
    candidate_lists: list[list[str]] = []
    picks: dict[int, list[int]] = {k: [] for k in sample_counts}
    for index in range(clips):
        clip = generate_clip(corpus_seed, index, split, with_audio=False)
        references.append(list(clip["captions"]))
        clip_candidates = most_frequent(
            draw_captions(clip["events"], clip["layout"], draws, candidate_seed_offset + index), candidates)
        candidate_lists.append(clip_candidates)
        # Nested samples: the K pseudo-references of a smaller K are the first K of a larger one.
        pool = draw_captions(clip["events"], clip["layout"], max(sample_counts), sample_seed_offset + index)
        for k in sample_counts:
            picks[k].append(consensus_pick(clip_candidates, pool[:k]))

    per_clip = candidate_scores(candidate_lists, references, tokenize=tokenize)

    def mean(values: Sequence[float]) -> float:
        return float(sum(values) / len(values))

    mode = mean([scores[0] for scores in per_clip])
    oracle = mean([max(scores) for scores in per_clip])
    random_phrasing = mean([mean(scores) for scores in per_clip])
    rows = []
    for k in sample_counts:
        pick = mean([scores[choice] for scores, choice in zip(per_clip, picks[k])])
        ceiling = oracle - mode
        rows.append({
            "samples": k,
            "mode": mode,
            "pick": pick,
            "gain": pick / mode - 1.0 if mode > 0 else None,
            "headroom_taken": (pick - mode) / ceiling if ceiling > 1e-12 else None,
            "changed": mean([float(choice != 0) for choice in picks[k]]),
            "oracle": oracle,
            "random_phrasing": random_phrasing,
        })
    return {
        "settings": {"clips": int(clips), "samples": sample_counts, "candidates": int(candidates),
                     "draws": int(draws), "corpus_seed": int(corpus_seed), "split": split,
                     "candidate_seed_offset": int(candidate_seed_offset),
                     "sample_seed_offset": int(sample_seed_offset), "tokenize": bool(tokenize)},
        "metric": "cider_d",
        "distinct_per_clip": mean([float(len(c)) for c in candidate_lists]),
        "mode": mode,
        "oracle": oracle,
        "random_phrasing": random_phrasing,
        "rows": rows,
    }


def format_table(result: dict[str, Any]) -> str:
    """The result as a markdown table (one row per K) with a line saying what was measured."""
    settings = result["settings"]
    lines = [
        f"Consensus-rescoring ceiling, grammar as the captioner: {settings['split']} clips 0..{settings['clips'] - 1} "
        f"(corpus seed {settings['corpus_seed']}), {settings['candidates']} candidates from {settings['draws']} draws "
        f"({result['distinct_per_clip']:.2f} distinct per clip), CIDEr-D vs the 5 references.",
        "",
        "| K samples | beam search (mode) | consensus pick | gain | headroom taken | picks changed | oracle | "
        "random phrasing |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        gain = "n/a" if row["gain"] is None else f"{100 * row['gain']:+.1f} %"
        taken = "n/a" if row["headroom_taken"] is None else f"{100 * row['headroom_taken']:.0f} %"
        lines.append(f"| {row['samples']} | {row['mode']:.3f} | {row['pick']:.3f} | {gain} | {taken} | "
                     f"{100 * row['changed']:.0f} % | {row['oracle']:.3f} | {row['random_phrasing']:.3f} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------- CLI


def _at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clips", type=_at_least(1), default=DEFAULT_CLIPS, metavar="N",
                        help=f"clips 0..N-1 of the split (default {DEFAULT_CLIPS})")
    parser.add_argument("--samples", type=_at_least(1), nargs="+", default=list(DEFAULT_SAMPLES), metavar="K",
                        help="numbers of pseudo-references (grammar samples) to try (default: "
                             + " ".join(map(str, DEFAULT_SAMPLES)) + ")")
    parser.add_argument("--candidates", type=_at_least(1), default=DEFAULT_CANDIDATES, metavar="C",
                        help=f"candidates per clip: the C most frequent distinct draws (default {DEFAULT_CANDIDATES})")
    parser.add_argument("--draws", type=_at_least(1), default=DEFAULT_DRAWS, metavar="M",
                        help=f"grammar draws the candidates come from, at least C (default {DEFAULT_DRAWS})")
    parser.add_argument("--corpus-seed", type=_at_least(0), default=0, help="the synthetic corpus's seed (default 0)")
    parser.add_argument("--split", choices=CEILING_SPLITS, default="test", help="corpus split (default test)")
    parser.add_argument("--candidate-seed-offset", type=_at_least(0), default=DEFAULT_CANDIDATE_SEED_OFFSET,
                        help="clip i draws its candidates with default_rng(offset + i) (default "
                             f"{DEFAULT_CANDIDATE_SEED_OFFSET})")
    parser.add_argument("--sample-seed-offset", type=_at_least(0), default=DEFAULT_SAMPLE_SEED_OFFSET,
                        help="clip i draws its pseudo-references with default_rng(offset + i) (default "
                             f"{DEFAULT_SAMPLE_SEED_OFFSET})")
    parser.add_argument("--tokenize", action="store_true",
                        help="PTB-tokenise captions before CIDEr-D (needs Java; off by default)")
    parser.add_argument("--output-json", default=None, metavar="PATH", help="also write every number to this file")


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, with the checks that involve two options (M >= C) reported as argparse errors."""
    parser = argparse.ArgumentParser(prog="python eval/consensus_ceiling.py", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.draws < args.candidates:
        parser.error(f"--draws M must be at least --candidates C, got M={args.draws} < C={args.candidates}")
    return args


def main(args: argparse.Namespace) -> int:
    try:
        result = consensus_ceiling(clips=args.clips, samples=args.samples, candidates=args.candidates,
                                   draws=args.draws, corpus_seed=args.corpus_seed, split=args.split,
                                   candidate_seed_offset=args.candidate_seed_offset,
                                   sample_seed_offset=args.sample_seed_offset, tokenize=args.tokenize)
    except ValueError as error:
        print(f"consensus-ceiling: error: {error}", file=sys.stderr)
        return 2
    print(format_table(result), end="")
    if args.output_json:
        with open(args.output_json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
        print(f"written to {args.output_json}")
    return 0


__all__ = ["consensus_ceiling", "consensus_pick", "draw_captions", "format_table", "most_frequent",
           "parse_arguments"]


if __name__ == "__main__":
    sys.exit(main(parse_arguments()))
