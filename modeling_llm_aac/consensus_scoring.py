"""Consensus scores of caption candidates: how well each agrees with captions sampled from the captioner itself.

Rescoring by consensus is minimum-Bayes-risk decoding: caption metrics such as CIDEr-D reward the n-grams that the
*references* of a clip share, and references are several people's phrasings of one scene. The captioner's own
samples (ancestral sampling at temperature 1) are draws from its estimate of that phrasing distribution, so the
candidate that agrees most with many samples is the best guess of the candidate that agrees most with the unseen
references. Beam search picks the single most likely word sequence instead, which is not the same thing.

The agreement is CIDEr-D's per-reference similarity without its corpus statistics: for n = 1..4, the clipped cosine
`sum_g min(c_g, r_g) * r_g / (|c| |r|)` of the n-gram count vectors of candidate `c` and sample `r`, averaged over n,
times CIDEr-D's Gaussian length penalty `exp(-(len(c) - len(r))^2 / (2 sigma^2))`, averaged over the samples. Scores
lie in [0, 1]. Document frequencies are left out on purpose: they would make a clip's pick depend on which other
clips share its batch, and on the synthetic corpus they made no difference to the pick's quality.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

DEFAULT_MAX_N = 4
DEFAULT_SIGMA = 6.0  # CIDEr-D's length-penalty width, in words
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


def caption_words(text: str) -> list[str]:
    """Lower-cased words of a caption, punctuation dropped ("A dog's bark." -> ["a", "dog's", "bark"])."""
    return _WORD.findall(text.lower())


class _NgramProfile:
    """Per-order n-gram counts of one caption and their Euclidean norms."""

    __slots__ = ("length", "counts", "norms")

    def __init__(self, words: list[str], max_n: int):
        self.length = len(words)
        self.counts = [Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1)) for n in range(1, max_n + 1)]
        self.norms = [math.sqrt(sum(v * v for v in counts.values())) for counts in self.counts]


def _similarity(candidate: _NgramProfile, reference: _NgramProfile, max_n: int, sigma: float) -> float:
    total = 0.0
    for cand_counts, cand_norm, ref_counts, ref_norm in zip(candidate.counts, candidate.norms, reference.counts,
                                                            reference.norms):
        if cand_norm == 0.0 or ref_norm == 0.0:
            continue
        shared = sum(min(count, ref_counts[gram]) * ref_counts[gram] for gram, count in cand_counts.items()
                     if gram in ref_counts)
        total += shared / (cand_norm * ref_norm)
    penalty = math.exp(-((candidate.length - reference.length) ** 2) / (2.0 * sigma * sigma))
    return total / max_n * penalty


def consensus_scores(
    candidates: Sequence[str],
    pseudo_references: Sequence[str],
    *,
    max_n: int = DEFAULT_MAX_N,
    sigma: float = DEFAULT_SIGMA,
) -> list[float]:
    """Each candidate's mean agreement with the pseudo-references (see the module docstring), in [0, 1].

    Args:
        candidates: one clip's caption candidates.
        pseudo_references: captions sampled from the captioner for the same clip (blank ones are ignored).
        max_n: longest n-gram compared.
        sigma: width of the length penalty, in words.

    Returns:
        one score per candidate, in order; a blank candidate scores 0.

    Raises:
        ValueError: no candidates, no non-blank pseudo-reference, or `max_n` / `sigma` out of range.
        TypeError: a candidate or pseudo-reference that is not a string.
    """
    for name, texts in (("candidates", candidates), ("pseudo_references", pseudo_references)):
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise TypeError(f"{name} must be a list of strings, got {type(texts).__name__}: {texts!r}")
        bad = [t for t in texts if not isinstance(t, str)]
        if bad:
            raise TypeError(f"{name} must hold strings only, got {bad[:3]!r}")
    if not candidates:
        raise ValueError("consensus_scores got no candidates")
    if isinstance(max_n, bool) or not isinstance(max_n, int) or max_n < 1:
        raise ValueError(f"max_n must be a positive integer, got {max_n!r}")
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive number, got {sigma!r}")
    references = [_NgramProfile(words, max_n) for words in map(caption_words, pseudo_references) if words]
    if not references:
        raise ValueError(
            f"consensus_scores needs at least one non-blank pseudo-reference, got {len(pseudo_references)} "
            f"({list(pseudo_references)[:3]!r}); sample captions from the captioner first"
        )
    scores = []
    for text in candidates:
        words = caption_words(text)
        if not words:
            scores.append(0.0)
            continue
        profile = _NgramProfile(words, max_n)
        scores.append(sum(_similarity(profile, ref, max_n, sigma) for ref in references) / len(references))
    return scores


__all__ = ["DEFAULT_MAX_N", "DEFAULT_SIGMA", "caption_words", "consensus_scores"]
