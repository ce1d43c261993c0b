"""CLAP similarity scoring of caption candidates (CLAP-Refine), with optional log-probability fusion.

One interface, `CLAPScorer`, three backends:

* `TransformersClapScorer` -- a transformers `ClapModel` with its `ClapFeatureExtractor` and
  tokenizer: a Hub id such as `laion/clap-htsat-unfused`, any `save_pretrained` folder, or a
  laion-clap `.pt` checkpoint converted on the fly by `convert_laion_clap` (no `laion_clap`
  package needed).
* `LaionClapPackageScorer` -- the `laion_clap` package itself, only when the user has it
  installed (it cannot be a dependency of this stack: it pins numpy < 2).
* `EATClapScorer` -- this project's `EATClapModel` (EAT audio tower + any HF text encoder) with
  `LLMAACFeatureExtractor` and its tokenizer.

`load_clap_scorer(name_or_path)` picks the backend from what it finds. Every backend returns
L2-normalised embeddings, so `score` is a cosine similarity.

Audio handling (documented behaviour, deterministic so that rescoring is reproducible):

* Audio is resampled to the backend's rate with soxr (48 kHz for HTS-AT CLAP; EAT-CLAP's
  feature extractor resamples to 16 kHz itself). The transformers backend can instead resample
  and compute its log-mel features in torch on the model's device (`preprocessing="torch"`, the
  default when the model is on CUDA; `clap_torch_preprocessing`): the same features as
  `ClapFeatureExtractor`, and a resampler built to soxr HQ's specification (`sinc_resample`).
* HTS-AT backends see 10 s windows. A clip of up to 10 s is one window (repeat-padded as in
  laion-clap); a longer clip is covered by ceil(duration / 10 s) evenly spaced 10 s windows
  (the first starts at 0, the last ends at the clip's end) and its embedding is the mean of the
  window embeddings, re-normalised. No random crop is ever taken (the feature extractor's
  `rand_trunc` / `fusion` randomness only applies to inputs longer than one window, which never
  reach it), and fusion models get `is_longer=False` for every window.
* EAT-CLAP encodes the whole clip up to the audio tower's `max_length` (about 123 s for EAT's
  768 time patches); longer clips are split into evenly spaced windows of that length and their
  embeddings averaged in the same way.

The pick: among de-duplicated candidates (case, punctuation and spacing ignored; the first
spelling and the best log-probability of a duplicate group are kept; blank candidates are
dropped unless all are blank), the highest `clap_similarity + lm_weight * log_prob`, where
`log_prob` is the captioner's length-normalised log-probability of the candidate (mean token
log-probability, e.g. beam search's `sequences_scores` with `length_penalty=1`). With
`lm_weight=0` (the default) this is SLAM-AAC's CLAP-Refine. Given captions sampled from the captioner for the
clip (`pseudo_references`), `consensus_weight * consensus` joins the sum: each candidate's agreement with those
samples (`consensus_scoring`, minimum-Bayes-risk decoding), which rewards the wording the references most likely share
where CLAP can only tell whether a caption fits the audio.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .consensus_scoring import consensus_scores
from .feature_extraction_llm_aac import feature_device, mono_float32_samples

BACKENDS = ("transformers", "laion_checkpoint", "laion_clap", "eat_clap")
PREPROCESSING_CHOICES = ("auto", "numpy", "torch")  # TransformersClapScorer audio preprocessing
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


# ----------------------------------------------------------------------------------------------
# Candidate de-duplication and the pick (pure functions, shared by every backend and the pipeline)
# ----------------------------------------------------------------------------------------------


def normalize_caption(text: str) -> str:
    """The key under which two captions count as duplicates: lower case, punctuation and repeated
    spaces removed (`"A dog barks."` and `"a dog  barks"` are the same caption)."""
    if not isinstance(text, str):
        raise TypeError(f"Captions must be strings, got {type(text).__name__}: {text!r}.")
    return " ".join(re.sub(r"[^\w']+", " ", text.lower()).replace("'", "").split())


def deduplicate_candidates(
    candidates: Sequence[str], log_probs: Sequence[float] | None = None
) -> tuple[list[str], list[float] | None]:
    """Remove duplicate candidates (see `normalize_caption`) and blank ones.

    The first spelling of each duplicate group is kept, in first-occurrence order; its log-probability
    is the best of the group (the same caption reached by several beams). Blank candidates are dropped
    unless every candidate is blank, in which case one blank caption remains (a captioner that only
    produced blanks still gets an answer, and evaluation counts it as blank).
    """
    candidates = _check_candidates(candidates)
    if log_probs is not None:
        log_probs = _check_log_probs(log_probs, len(candidates))
    kept: dict[str, int] = {}
    texts: list[str] = []
    best_log_probs: list[float] = []
    for index, text in enumerate(candidates):
        key = normalize_caption(text)
        if not key:
            continue
        if key in kept:
            if log_probs is not None:
                slot = kept[key]
                best_log_probs[slot] = max(best_log_probs[slot], log_probs[index])
            continue
        kept[key] = len(texts)
        texts.append(text.strip())
        if log_probs is not None:
            best_log_probs.append(log_probs[index])
    if not texts:
        texts = [""]
        best_log_probs = [max(log_probs)] if log_probs is not None else []
    return texts, (best_log_probs if log_probs is not None else None)


@dataclass
class CandidateRanking:
    """The outcome of rescoring one clip's candidates.

    `candidates` are the de-duplicated candidates in their original order; `clap_scores` their
    cosine similarities to the clip; `log_probs` the captioner's length-normalised
    log-probabilities (None when not given); `consensus` their agreement with captions sampled from the
    captioner (None when not computed); `scores` the fused scores that decided the pick;
    `caption` the winner, `best_index` its position in `candidates`.
    """

    caption: str
    best_index: int
    candidates: list[str]
    clap_scores: list[float]
    scores: list[float]
    log_probs: list[float] | None = None
    lm_weight: float = 0.0
    consensus: list[float] | None = None
    consensus_weight: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def ranked(self) -> list[tuple[str, float]]:
        """Candidates with their fused scores, best first."""
        order = sorted(range(len(self.candidates)), key=lambda i: -self.scores[i])
        return [(self.candidates[i], self.scores[i]) for i in order]


def rank_candidates(
    candidates: Sequence[str],
    clap_scores: Sequence[float] | torch.Tensor | np.ndarray,
    log_probs: Sequence[float] | None = None,
    *,
    lm_weight: float = 0.0,
    consensus: Sequence[float] | None = None,
    consensus_weight: float = 0.0,
) -> CandidateRanking:
    """Pick the best of already de-duplicated `candidates` from their CLAP similarities.

    score = clap_score + lm_weight * log_prob + consensus_weight * consensus (log_prob: length-normalised
    log-probability; consensus: `consensus_scoring.consensus_scores` against captions sampled for the clip).
    Ties go to the earlier candidate (beam order), so the pick is deterministic.
    """
    candidates = _check_candidates(candidates)
    clap = [float(v) for v in torch.as_tensor(clap_scores, dtype=torch.float64).flatten().tolist()]
    if len(clap) != len(candidates):
        raise ValueError(f"Got {len(candidates)} candidates but {len(clap)} CLAP scores.")
    if any(math.isnan(v) for v in clap):
        raise ValueError(f"CLAP scores contain NaN: {clap}.")
    lm_weight = _check_lm_weight(lm_weight)
    consensus_weight = _check_lm_weight(consensus_weight, "consensus_weight")
    if lm_weight != 0.0 and log_probs is None:
        raise ValueError(
            f"lm_weight={lm_weight} fuses the captioner's log-probabilities, but no log_probs were given."
        )
    if consensus_weight != 0.0 and consensus is None:
        raise ValueError(
            f"consensus_weight={consensus_weight} fuses consensus scores, but none were given (pass "
            "pseudo_references to `CLAPScorer.rerank`, or consensus to `rank_candidates`)."
        )
    scores = list(clap)
    if log_probs is not None:
        log_probs = _check_log_probs(log_probs, len(candidates))
        if lm_weight != 0.0:
            scores = [s + lm_weight * lp for s, lp in zip(scores, log_probs)]
    if consensus is not None:
        consensus = _check_consensus(consensus, len(candidates))
        if consensus_weight != 0.0:
            scores = [s + consensus_weight * c for s, c in zip(scores, consensus)]
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    return CandidateRanking(
        caption=candidates[best],
        best_index=best,
        candidates=list(candidates),
        clap_scores=clap,
        scores=scores,
        log_probs=log_probs,
        lm_weight=lm_weight,
        consensus=consensus,
        consensus_weight=consensus_weight,
    )


def rank_with_samples(
    candidates: Sequence[str],
    similarities: Sequence[float] | torch.Tensor | np.ndarray,
    log_probs: Sequence[float] | None = None,
    *,
    lm_weight: float = 0.0,
    pseudo_references: Sequence[str] | None = None,
    consensus_weight: float = 0.0,
) -> CandidateRanking:
    """`rank_candidates` with each candidate's consensus with `pseudo_references` (captions sampled from the captioner
    for the clip) when they are given; without them the consensus weight does not apply (a scorer's default weight
    must not fail calls that sampled nothing)."""
    if pseudo_references is None:
        return rank_candidates(candidates, similarities, log_probs, lm_weight=lm_weight)
    return rank_candidates(candidates, similarities, log_probs, lm_weight=lm_weight,
                           consensus=consensus_scores(candidates, pseudo_references), consensus_weight=consensus_weight)


def _check_candidates(candidates: Sequence[str]) -> list[str]:
    if isinstance(candidates, str) or not isinstance(candidates, Sequence):
        raise TypeError(
            f"Candidates must be a list of strings, got {type(candidates).__name__}: {candidates!r}."
        )
    if len(candidates) == 0:
        raise ValueError("Got an empty list of candidates; there is nothing to choose from.")
    bad = [c for c in candidates if not isinstance(c, str)]
    if bad:
        raise TypeError(f"Candidates must be strings; got {bad[:3]!r}.")
    return list(candidates)


def _check_log_probs(log_probs: Sequence[float], expected: int) -> list[float]:
    values = [float(v) for v in torch.as_tensor(log_probs, dtype=torch.float64).flatten().tolist()]
    if len(values) != expected:
        raise ValueError(f"Got {expected} candidates but {len(values)} log-probabilities.")
    if any(math.isnan(v) or v == math.inf for v in values):
        raise ValueError(f"Log-probabilities must be finite or -inf, got {values}.")
    return values


def _check_consensus(consensus: Sequence[float], expected: int) -> list[float]:
    values = [float(v) for v in torch.as_tensor(consensus, dtype=torch.float64).flatten().tolist()]
    if len(values) != expected:
        raise ValueError(f"Got {expected} candidates but {len(values)} consensus scores.")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"Consensus scores must be finite, got {values}.")
    return values


def _check_lm_weight(weight: float, name: str = "lm_weight") -> float:
    try:
        value = float(weight)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {weight!r}.") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {weight!r}.")
    return value


# ----------------------------------------------------------------------------------------------
# Audio input checks and windowing
# ----------------------------------------------------------------------------------------------


def _is_single_clip(audio: Any) -> bool:
    if isinstance(audio, (np.ndarray, torch.Tensor)):
        return audio.ndim == 1
    if isinstance(audio, Sequence) and not isinstance(audio, (str, bytes)):
        return len(audio) > 0 and all(isinstance(v, (int, float, np.number)) for v in audio[:8])
    return False


def as_clip_list(audio: Any) -> list[np.ndarray]:
    """Mono clips as a list of float32 arrays.

    Accepts one clip (1-D array / tensor / list of numbers), a batch as a 2-D array `[batch, samples]`
    or a list of 1-D clips of any lengths. Integer PCM is scaled to [-1, 1). Raises `ValueError` /
    `TypeError` for empty, non-finite, complex, non-numeric or badly shaped input.
    """
    if audio is None:
        raise ValueError("No audio given (got None).")
    if _is_single_clip(audio):
        raw = [audio]
    elif isinstance(audio, (np.ndarray, torch.Tensor)):
        if audio.ndim != 2:
            raise ValueError(
                f"Audio must be one clip [samples], a batch [batch, samples] or a list of clips; got an "
                f"array of shape {tuple(audio.shape)}. Mix multi-channel audio down to mono first."
            )
        raw = list(audio)
    elif isinstance(audio, Sequence) and not isinstance(audio, (str, bytes)):
        if len(audio) == 0:
            raise ValueError("Got an empty list of audio clips.")
        raw = list(audio)
    else:
        raise TypeError(
            f"Audio must be a numpy array, a torch tensor or a list of them; got {type(audio).__name__}."
        )
    return [mono_float32_samples(clip, f"Audio clip {index}") for index, clip in enumerate(raw)]


def _check_sampling_rate(sampling_rate: Any) -> int:
    if sampling_rate is None:
        raise ValueError(
            "sampling_rate is required: pass the rate of the audio in Hz (e.g. sampling_rate=44100); "
            "it is resampled to the CLAP model's rate."
        )
    if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, (int, float, np.number)):
        raise TypeError(f"sampling_rate must be a number of Hz, got {sampling_rate!r}.")
    if not math.isfinite(float(sampling_rate)) or sampling_rate <= 0 or float(sampling_rate) != int(sampling_rate):
        raise ValueError(f"sampling_rate must be a positive whole number of Hz, got {sampling_rate!r}.")
    return int(sampling_rate)


def resample(clip: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample one mono clip with soxr (HQ); a no-op at the same rate."""
    if orig_rate == target_rate:
        return clip
    import soxr

    out = soxr.resample(clip, orig_rate, target_rate, quality="HQ").astype(np.float32, copy=False)
    if out.size == 0:
        raise ValueError(
            f"A clip of {clip.size} samples at {orig_rate} Hz is too short to resample to {target_rate} Hz."
        )
    return out


def window_starts(length: int, window: int) -> list[int]:
    """Start offsets of the evenly spaced windows that cover `length` samples (or frames).

    One window (start 0) when `length <= window`; otherwise ceil(length / window) windows, the
    first at 0 and the last ending exactly at `length`, so no part of the clip is left out and no
    window is padded.
    """
    if length <= window:
        return [0]
    count = math.ceil(length / window)
    return [int(round(i * (length - window) / (count - 1))) for i in range(count)]


def _check_texts(texts: Any) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    if not isinstance(texts, Sequence) or len(texts) == 0:
        raise ValueError(f"texts must be a non-empty list of strings, got {texts!r}.")
    bad = [t for t in texts if not isinstance(t, str)]
    if bad:
        raise TypeError(f"texts must be strings; got {bad[:3]!r}.")
    return list(texts)


def _embedding_tensor(output: Any) -> torch.Tensor:
    """`get_*_features` return a tensor in older transformers and a `BaseModelOutputWithPooling`
    (embedding in `pooler_output`) from transformers 5 on."""
    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if pooled is None and isinstance(output, (tuple, list)):
        pooled = output[1] if len(output) > 1 else output[0]
    if pooled is None:
        raise TypeError(f"Cannot find the embedding in {type(output).__name__}.")
    return pooled


# ----------------------------------------------------------------------------------------------
# The interface
# ----------------------------------------------------------------------------------------------


class CLAPScorer:
    """Common interface of every CLAP backend.

    Subclasses implement `_encode_clips(clips, sampling_rate)` (list of mono float32 arrays ->
    normalised `[num_clips, dim]`) and `_encode_texts(texts)` (-> normalised `[num_texts, dim]`);
    this class provides input checks, similarity, and candidate rescoring.

    Args:
        lm_weight: default weight of the captioner's length-normalised log-probability in the
            fused score (0 = CLAP similarity alone, SLAM-AAC's CLAP-Refine).
        consensus_weight: default weight of the candidates' consensus with captions sampled from the
            captioner (used when `rerank` gets `pseudo_references`; the attribute may be set after construction,
            `load_clap_scorer` does).
    """

    backend: str = ""

    def __init__(self, *, lm_weight: float = 0.0, consensus_weight: float = 0.0):
        self.lm_weight = _check_lm_weight(lm_weight)
        self.consensus_weight = _check_lm_weight(consensus_weight, "consensus_weight")

    # -- backend hooks ---------------------------------------------------------------------
    def _encode_clips(self, clips: list[np.ndarray], sampling_rate: int) -> torch.Tensor:
        raise NotImplementedError

    def _encode_texts(self, texts: list[str]) -> torch.Tensor:
        raise NotImplementedError

    # -- public API ------------------------------------------------------------------------
    @property
    def sampling_rate(self) -> int:
        """The rate the backend's audio tower works at (inputs are resampled to it)."""
        raise NotImplementedError

    def encode_audio(self, audio: Any, sampling_rate: int | None = None) -> torch.Tensor:
        """L2-normalised audio embeddings, `[dim]` for one clip or `[num_clips, dim]` for a batch,
        float32 on CPU. `sampling_rate` is the rate of `audio` (required)."""
        single = _is_single_clip(audio)
        clips = as_clip_list(audio)
        rate = _check_sampling_rate(sampling_rate)
        embeds = F.normalize(self._encode_clips(clips, rate).float(), dim=-1).cpu()
        return embeds[0] if single else embeds

    def encode_text(self, texts: str | Sequence[str]) -> torch.Tensor:
        """L2-normalised text embeddings `[num_texts, dim]` (`[dim]` for a single string)."""
        single = isinstance(texts, str)
        embeds = F.normalize(self._encode_texts(_check_texts(texts)).float(), dim=-1).cpu()
        return embeds[0] if single else embeds

    def score(
        self, audio: Any, texts: str | Sequence[str], sampling_rate: int | None = None
    ) -> torch.Tensor:
        """Cosine similarities between clips and texts: `[num_texts]` for one clip, otherwise
        `[num_clips, num_texts]`."""
        single = _is_single_clip(audio)
        audio_embeds = self.encode_audio(audio, sampling_rate)
        text_embeds = self.encode_text(_check_texts(texts))
        if single:
            return text_embeds @ audio_embeds
        return audio_embeds @ text_embeds.T

    def rerank(
        self,
        audio: Any,
        candidates: Sequence[str] | Sequence[Sequence[str]],
        sampling_rate: int | None = None,
        *,
        log_probs: Sequence[float] | Sequence[Sequence[float]] | None = None,
        lm_weight: float | None = None,
        pseudo_references: Sequence[str] | Sequence[Sequence[str]] | None = None,
        consensus_weight: float | None = None,
    ) -> CandidateRanking | list[CandidateRanking]:
        """Pick each clip's best caption among its candidates.

        `audio` is one clip (then `candidates` is a list of strings) or a batch of clips (then
        `candidates` holds one list per clip). `log_probs`, aligned with `candidates`, are the
        captioner's length-normalised log-probabilities, fused with weight `lm_weight` (default:
        the scorer's `lm_weight`). `pseudo_references` (one list of captions sampled from the captioner per
        clip, or one list for one clip) add each candidate's consensus with them, fused with weight
        `consensus_weight` (default: the scorer's). Candidates are de-duplicated first. Returns a
        `CandidateRanking` (or a list of them for a batch).
        """
        single = _is_single_clip(audio)
        clips = as_clip_list(audio)
        weight = self.lm_weight if lm_weight is None else _check_lm_weight(lm_weight)
        agreement_weight = (self.consensus_weight if consensus_weight is None
                            else _check_lm_weight(consensus_weight, "consensus_weight"))
        if single:
            per_clip_candidates, per_clip_log_probs = [candidates], [log_probs]
            per_clip_samples = [pseudo_references]
        else:
            if isinstance(candidates, str) or not isinstance(candidates, Sequence):
                raise TypeError("For a batch of clips, candidates must be one list of strings per clip.")
            per_clip_candidates = list(candidates)
            if any(isinstance(c, str) for c in per_clip_candidates):
                raise TypeError(
                    "For a batch of clips, candidates must be one list of strings per clip, got a flat "
                    "list of strings."
                )
            per_clip_log_probs = [None] * len(clips) if log_probs is None else list(log_probs)
            per_clip_samples = [None] * len(clips) if pseudo_references is None else list(pseudo_references)
            if pseudo_references is not None and any(isinstance(p, str) for p in per_clip_samples):
                raise TypeError("For a batch of clips, pseudo_references must be one list of strings per clip.")
        if len(per_clip_candidates) != len(clips) or len(per_clip_log_probs) != len(clips) or len(
                per_clip_samples) != len(clips):
            raise ValueError(
                f"Got {len(clips)} clips, {len(per_clip_candidates)} candidate lists, "
                f"{len(per_clip_log_probs)} log-probability lists and {len(per_clip_samples)} pseudo-reference "
                "lists; they must match."
            )
        deduplicated = [
            deduplicate_candidates(cands, lps) for cands, lps in zip(per_clip_candidates, per_clip_log_probs)
        ]
        audio_embeds = F.normalize(
            self._encode_clips(clips, _check_sampling_rate(sampling_rate)).float(), dim=-1
        ).cpu()
        # One text pass for all clips' candidates.
        flat_texts = [text for texts, _ in deduplicated for text in texts]
        text_embeds = self.encode_text(flat_texts) if any(flat_texts) else None
        rankings, offset = [], 0
        for clip_index, (texts, lps) in enumerate(deduplicated):
            if text_embeds is None:
                sims = torch.zeros(len(texts))
            else:
                sims = text_embeds[offset : offset + len(texts)] @ audio_embeds[clip_index]
            offset += len(texts)
            rankings.append(rank_with_samples(texts, sims, lps, lm_weight=weight,
                                              pseudo_references=per_clip_samples[clip_index],
                                              consensus_weight=agreement_weight))
        return rankings[0] if single else rankings

    # -- plumbing --------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def to(self, device: str | torch.device) -> "CLAPScorer":
        return self

    def settings(self) -> dict[str, Any]:
        """What `load_clap_scorer` needs to rebuild this scorer (saved beside a captioner)."""
        return {"backend": self.backend, "lm_weight": self.lm_weight, "consensus_weight": self.consensus_weight}


class _TorchModelScorer(CLAPScorer):
    """Shared plumbing of backends that wrap one `PreTrainedModel` with its feature extractor and tokenizer.

    Subclasses name their model and feature-extractor classes (`_pretrained_classes`),
    say what to do for a folder saved without a feature extractor (`_feature_extractor_for`), may check
    that the feature extractor fits the model (`_check_feature_extractor`), tell a user who forgot the
    tokenizer what to pass (`_tokenizer_hint`), and may change which tokenizer outputs the text tower
    takes (`_text_input_names`) and the caption length cap (`text_max_length`); construction,
    `from_pretrained`, text encoding, `save_pretrained` and `settings` are then common.

    Args:
        model: the backend's model.
        feature_extractor: the feature extractor its audio tower was trained with.
        tokenizer: its text tower's tokenizer.
        audio_batch_size: audio windows per forward pass.
        text_batch_size: captions per forward pass.
        lm_weight: default fusion weight (see `CLAPScorer`).
        name_or_path: where the model came from (kept in `settings()` so that it can be reloaded).
    """

    model: torch.nn.Module
    _tokenizer_hint: str = ""
    # tokenizer outputs that the model's `get_text_features` takes (tokenizers may return more)
    _text_input_names: tuple[str, ...] = ("input_ids", "attention_mask")

    def __init__(self, model, feature_extractor, tokenizer, *, audio_batch_size: int = 8, text_batch_size: int = 64, lm_weight: float = 0.0, name_or_path: str | None = None):
        super().__init__(lm_weight=lm_weight)
        if audio_batch_size < 1 or text_batch_size < 1:
            raise ValueError(
                f"Batch sizes must be >= 1, got audio_batch_size={audio_batch_size}, text_batch_size={text_batch_size}."
            )
        if tokenizer is None:
            raise ValueError(f"{type(self).__name__} needs the text tower's tokenizer (got None). {self._tokenizer_hint}".rstrip())
        if feature_extractor is None:
            raise ValueError(f"{type(self).__name__} needs the feature extractor of the audio tower (got None).")
        self._check_feature_extractor(model, feature_extractor)
        self.model = model.eval()
        self.feature_extractor = feature_extractor
        self.tokenizer = tokenizer
        self.name_or_path = name_or_path
        self.audio_batch_size = int(audio_batch_size)
        self.text_batch_size = int(text_batch_size)

    # -- subclass hooks ----------------------------------------------------------------------
    @classmethod
    def _pretrained_classes(cls) -> tuple[type, type]:
        """The model class and feature-extractor class that `from_pretrained` loads (imported lazily)."""
        raise NotImplementedError

    @classmethod
    def _feature_extractor_for(cls, name_or_path: str, model) -> Any:
        """The feature extractor to use when `name_or_path` has no preprocessor_config.json."""
        raise NotImplementedError

    @staticmethod
    def _check_feature_extractor(model, feature_extractor) -> None:
        """Raise a ValueError when `feature_extractor` does not fit `model` (default: no check)."""

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, name_or_path: str, *, tokenizer=None, feature_extractor=None, device=None, dtype=None, **kwargs) -> "_TorchModelScorer":
        """Load the model folder / Hub id with its feature extractor and tokenizer (either may be passed
        instead: an object, or for the tokenizer also a folder / Hub id). `kwargs` go to the constructor."""
        model_class, feature_extractor_class = cls._pretrained_classes()
        model = model_class.from_pretrained(name_or_path, dtype=dtype) if dtype is not None else model_class.from_pretrained(name_or_path)
        if feature_extractor is None:
            try:
                feature_extractor = feature_extractor_class.from_pretrained(name_or_path)
            except OSError:  # saved without preprocessor_config.json: the backend's fallback, below
                pass
        if feature_extractor is None:
            feature_extractor = cls._feature_extractor_for(name_or_path, model)
        tokenizer = _load_tokenizer(tokenizer, name_or_path)
        scorer = cls(model, feature_extractor, tokenizer, name_or_path=str(name_or_path), **kwargs)
        return scorer.to(device) if device is not None else scorer

    @property
    def sampling_rate(self) -> int:
        return int(self.feature_extractor.sampling_rate)

    @property
    def text_max_length(self) -> int:
        """Longest caption, in tokens, given to the text tower (longer ones are truncated)."""
        return _text_max_length(self.tokenizer, self.model.config.text_config)

    def _encode_texts(self, texts: list[str]) -> torch.Tensor:
        embeds = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.text_batch_size):
                tokens = self.tokenizer(
                    texts[start : start + self.text_batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self.text_max_length,
                    return_tensors="pt",
                )
                tokens = {k: v.to(self.device) for k, v in tokens.items() if k in self._text_input_names}
                embeds.append(_embedding_tensor(self.model.get_text_features(**tokens)).float())
        return torch.cat(embeds)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> "_TorchModelScorer":
        self.model.to(device=device, dtype=dtype)
        return self

    def save_pretrained(self, save_directory: str | os.PathLike) -> None:
        """Model, feature extractor and tokenizer in one folder; `load_clap_scorer(folder)` reloads it
        (a converted laion-clap checkpoint is then an ordinary `ClapModel` folder)."""
        self.model.save_pretrained(save_directory)
        self.feature_extractor.save_pretrained(save_directory)
        self.tokenizer.save_pretrained(save_directory)

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "name_or_path": self.name_or_path}


def _mean_over_windows(window_embeds: torch.Tensor, owners: list[int], num_clips: int) -> torch.Tensor:
    """Average normalised window embeddings per clip (then re-normalise)."""
    window_embeds = F.normalize(window_embeds.float(), dim=-1)
    index = torch.tensor(owners, device=window_embeds.device)
    sums = torch.zeros(num_clips, window_embeds.shape[-1], device=window_embeds.device)
    sums.index_add_(0, index, window_embeds)
    return F.normalize(sums, dim=-1)


# ----------------------------------------------------------------------------------------------
# Backend 1 (and 2): transformers ClapModel
# ----------------------------------------------------------------------------------------------


class TransformersClapScorer(_TorchModelScorer):
    """A transformers `ClapModel` (HTS-AT audio tower + RoBERTa text tower).

    Args:
        model: a `ClapModel`.
        feature_extractor: its `ClapFeatureExtractor` (48 kHz log-mel, 10 s windows).
        tokenizer: its tokenizer (RoBERTa for LAION checkpoints).
        audio_batch_size: 10 s windows per forward pass.
        text_batch_size: captions per forward pass.
        lm_weight: default fusion weight (see `CLAPScorer`).
        name_or_path: where the model came from (kept in `settings()`).
        preprocessing: where audio is resampled and turned into log-mel features. `"numpy"`: soxr
            and the `ClapFeatureExtractor` on the CPU (the reference); `"torch"`: `ClapTorchPreprocessor`
            on the model's device (same features: <= 1e-4 dB at the model's rate; embeddings within
            cosine 0.9999 of the reference after resampling); `"auto"` (default): torch when the model
            is on a CUDA device, numpy otherwise.
    """

    backend = "transformers"
    _tokenizer_hint = "LAION CLAP checkpoints use the `roberta-base` tokenizer: pass tokenizer='roberta-base' (or a local copy of it)."

    def __init__(self, model, feature_extractor, tokenizer, *, preprocessing: str = "auto", **kwargs):
        super().__init__(model, feature_extractor, tokenizer, **kwargs)
        self.preprocessing = preprocessing

    @property
    def preprocessing(self) -> str:
        return self._preprocessing

    @preprocessing.setter
    def preprocessing(self, value: str) -> None:
        if value not in PREPROCESSING_CHOICES:
            raise ValueError(f"preprocessing must be one of {PREPROCESSING_CHOICES}, got {value!r}.")
        self._preprocessing = value

    @property
    def uses_torch_preprocessing(self) -> bool:
        """Whether the next call resamples and featurises in torch on the model's device."""
        if self.preprocessing == "auto":
            return self.device.type == "cuda"
        return self.preprocessing == "torch"

    @property
    def torch_preprocessor(self):
        """The `ClapTorchPreprocessor` twin of `feature_extractor` (built on first use, rebuilt if the
        feature extractor is replaced)."""
        from .clap_torch_preprocessing import ClapTorchPreprocessor

        # Keyed on the extractor object itself (held, so that its id cannot be reused) and the fusion flag.
        source = getattr(self, "_torch_preprocessor_source", None)
        if source is None or source[0] is not self.feature_extractor or source[1] != self.is_fusion:
            self._torch_preprocessor = ClapTorchPreprocessor.from_feature_extractor(self.feature_extractor, fusion=self.is_fusion)
            self._torch_preprocessor_source = (self.feature_extractor, self.is_fusion)
        return self._torch_preprocessor

    @classmethod
    def _pretrained_classes(cls) -> tuple[type, type]:
        from transformers import ClapFeatureExtractor, ClapModel

        return ClapModel, ClapFeatureExtractor

    @classmethod
    def _feature_extractor_for(cls, name_or_path: str, model) -> Any:
        return default_clap_feature_extractor(model.config)

    @property
    def is_fusion(self) -> bool:
        return bool(getattr(self.model.config.audio_config, "enable_fusion", False))

    @property
    def window_samples(self) -> int:
        return int(self.feature_extractor.nb_max_samples)

    def _encode_clips(self, clips: list[np.ndarray], sampling_rate: int) -> torch.Tensor:
        # Clips are resampled `audio_batch_size` at a time (on the device: one call per group) and cut into
        # windows; full batches of windows are embedded as soon as they are ready, so at most about two
        # groups of resampled audio are held at once.
        on_device = self.uses_torch_preprocessing
        windows: list = []
        owners: list[int] = []
        embeds: list[torch.Tensor] = []
        for first in range(0, len(clips), self.audio_batch_size):
            part = clips[first : first + self.audio_batch_size]
            if on_device:
                part = self.torch_preprocessor.resample([torch.from_numpy(clip).to(self.device) for clip in part], sampling_rate)
                part = [clip.float() for clip in part]  # float32 samples, as soxr returns them
            else:
                part = [resample(clip, sampling_rate, self.sampling_rate) for clip in part]
            for clip_index, clip in enumerate(part, start=first):
                for start in window_starts(clip.shape[0], self.window_samples):
                    windows.append(clip[start : start + self.window_samples])
                    owners.append(clip_index)
            while len(windows) >= self.audio_batch_size:
                embeds.append(self._embed_windows(windows[: self.audio_batch_size], on_device))
                windows = windows[self.audio_batch_size :]
        if windows:
            embeds.append(self._embed_windows(windows, on_device))
        return _mean_over_windows(torch.cat(embeds), owners, len(clips))

    def _embed_windows(self, windows: list, on_device: bool) -> torch.Tensor:
        with torch.inference_mode():
            if on_device:
                features = self.torch_preprocessor(windows)
            else:
                truncation = "fusion" if self.is_fusion else "rand_trunc"  # never triggered: windows fit
                features = self.feature_extractor(
                    windows, sampling_rate=self.sampling_rate, truncation=truncation, return_tensors="pt"
                )["input_features"]
            # Every window fits, so none is "longer" (the extractor would flag a random one for fusion models).
            is_longer = torch.zeros(len(windows), 1, dtype=torch.bool, device=self.device)
            output = self.model.get_audio_features(input_features=features.to(self.device, self.dtype), is_longer=is_longer)
            return _embedding_tensor(output).float()


def _text_max_length(tokenizer, text_config) -> int:
    """Longest caption the text tower can take: the tokenizer's limit, capped by the position
    table (less 2, the offset RoBERTa-style position ids start at)."""
    positions = getattr(text_config, "max_position_embeddings", None) or 512
    limit = int(getattr(tokenizer, "model_max_length", positions) or positions)
    return max(1, min(limit, positions - 2))


def default_clap_feature_extractor(config) -> Any:
    """The `ClapFeatureExtractor` of the LAION HTS-AT recipe for a `ClapConfig`: 48 kHz, 10 s,
    1024-point FFT, 480 hop, 50 Hz - 14 kHz mel band (laion-clap's `audio_cfg`)."""
    from transformers import ClapFeatureExtractor

    audio_config = config.audio_config
    return ClapFeatureExtractor(
        feature_size=audio_config.num_mel_bins,
        sampling_rate=48_000,
        hop_length=480,
        max_length_s=10,
        fft_window_size=1024,
        frequency_min=50,
        frequency_max=14_000,
        truncation="fusion" if audio_config.enable_fusion else "rand_trunc",
        padding="repeatpad",
    )


def _load_tokenizer(tokenizer, name_or_path):
    from transformers import AutoTokenizer

    if tokenizer is not None and not isinstance(tokenizer, (str, os.PathLike)):
        return tokenizer
    source = tokenizer if tokenizer is not None else name_or_path
    hint = "Pass tokenizer=<folder or Hub id> (LAION CLAP checkpoints use 'roberta-base')."
    try:
        loaded = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError, TypeError) as err:
        raise ValueError(
            f"Could not load a tokenizer from {str(source)!r} ({type(err).__name__}: {err}). {hint}"
        ) from None
    # Without vocabulary files some tokenizer classes load "successfully" with only their special
    # tokens, and every caption would then encode to <unk>.
    if len(loaded) <= len(set(loaded.all_special_tokens)) + 1:
        raise ValueError(
            f"Could not load a tokenizer from {str(source)!r}: it has no vocabulary files (the loaded "
            f"{type(loaded).__name__} knows only {len(loaded)} tokens). {hint}"
        )
    return loaded


# ----------------------------------------------------------------------------------------------
# Backend 2b: the laion_clap package, only when installed
# ----------------------------------------------------------------------------------------------


class LaionClapPackageScorer(CLAPScorer):
    """laion-clap's own `CLAP_Module` (the `laion_clap` package), for users who have it installed.

    Not a dependency: the default route for `.pt` checkpoints converts them to a transformers
    `ClapModel` instead (backend `laion_checkpoint`). Audio goes through laion-clap's own
    `get_audio_embedding_from_data` (48 kHz, int16 quantisation, its own long-clip handling).

    Args:
        checkpoint: the `.pt` file.
        enable_fusion: whether the checkpoint is a fusion model (`*-fusion-*.pt`).
        amodel: laion-clap audio model name (`HTSAT-tiny`, `HTSAT-base`, ...).
        tmodel: laion-clap text model name (`roberta`).
    """

    backend = "laion_clap"

    def __init__(self, checkpoint: str, *, enable_fusion: bool = False, amodel: str = "HTSAT-tiny", tmodel: str = "roberta", device=None, lm_weight: float = 0.0):
        super().__init__(lm_weight=lm_weight)
        try:
            import laion_clap
        except ImportError as err:
            raise ImportError(
                "backend='laion_clap' needs the `laion_clap` package, which is not installed (and cannot "
                "be a dependency of this project: it pins numpy < 2). Use backend='laion_checkpoint' "
                "(the default for .pt files) to convert the checkpoint to a transformers ClapModel instead."
            ) from err
        if not os.path.isfile(checkpoint):
            raise ValueError(f"laion-clap checkpoint {checkpoint!r} does not exist.")
        self.checkpoint = checkpoint
        self.module = laion_clap.CLAP_Module(enable_fusion=enable_fusion, amodel=amodel, tmodel=tmodel, device=device)
        self.module.load_ckpt(checkpoint)
        self.enable_fusion, self.amodel, self.tmodel = enable_fusion, amodel, tmodel

    @property
    def sampling_rate(self) -> int:
        return 48_000

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def _encode_clips(self, clips, sampling_rate):
        with torch.no_grad():
            return torch.stack(
                [
                    torch.as_tensor(self.module.get_audio_embedding_from_data([resample(c, sampling_rate, 48_000)], use_tensor=False))[0]
                    for c in clips
                ]
            )

    def _encode_texts(self, texts):
        with torch.no_grad():
            return torch.as_tensor(self.module.get_text_embedding(texts))

    def settings(self) -> dict[str, Any]:
        return {
            **super().settings(),
            "name_or_path": self.checkpoint,
            "enable_fusion": self.enable_fusion,
            "amodel": self.amodel,
            "tmodel": self.tmodel,
        }


# ----------------------------------------------------------------------------------------------
# Backend 3: this project's EAT-CLAP
# ----------------------------------------------------------------------------------------------


class EATClapScorer(_TorchModelScorer):
    """`EATClapModel` with its `LLMAACFeatureExtractor` and tokenizer.

    The whole clip is encoded (clips of different lengths are padded with a frame mask) up to the
    audio tower's `max_length`; longer clips are split into evenly spaced windows of that length
    whose embeddings are averaged.

    Args:
        model: an `EATClapModel`.
        feature_extractor: the `LLMAACFeatureExtractor` the audio tower was trained with.
        tokenizer: the text tower's tokenizer.
        audio_batch_size / text_batch_size / lm_weight / name_or_path: as in `TransformersClapScorer`.
    """

    backend = "eat_clap"
    _text_input_names = ("input_ids", "attention_mask", "token_type_ids")  # BERT-style text towers use segment ids

    @staticmethod
    def _check_feature_extractor(model, feature_extractor) -> None:
        bins = model.config.audio_config.num_mel_bins
        if int(feature_extractor.feature_size) != int(bins):
            raise ValueError(
                f"The feature extractor gives {feature_extractor.feature_size} bins per frame but the audio "
                f"tower expects {bins} (config.audio_config.num_mel_bins)."
            )

    @classmethod
    def _pretrained_classes(cls) -> tuple[type, type]:
        from .feature_extraction_llm_aac import LLMAACFeatureExtractor
        from .modeling_eat_clap import EATClapModel

        return EATClapModel, LLMAACFeatureExtractor

    @classmethod
    def _feature_extractor_for(cls, name_or_path: str, model) -> Any:
        # EAT-CLAP's features (fbank / CWT, their statistics) cannot be guessed from the model config
        raise ValueError(
            f"{name_or_path!r} has no preprocessor_config.json; pass the feature_extractor the audio "
            "tower was trained with."
        )

    @property
    def max_frames(self) -> int:
        """Longest input of the audio tower, in frames (EAT-base: 768 patches x 16 = 12,288, 122.9 s)."""
        audio_config = self.model.config.audio_config
        return int(audio_config.max_length * audio_config.patch_size)

    def _encode_clips(self, clips: list[np.ndarray], sampling_rate: int) -> torch.Tensor:
        # The feature extractor resamples, pads each batch with its own padding value and returns
        # the frame mask, which EAT turns into a key-padding mask: a clip gets the same embedding
        # alone and inside any batch. Clips longer than the tower's position table are split
        # into windows of exactly `max_frames` frames (no padding needed).
        patch = self.model.config.audio_config.patch_size
        embeds: list[torch.Tensor] = []
        owners: list[int] = []
        with torch.inference_mode():
            for first in range(0, len(clips), self.audio_batch_size):
                features = self.feature_extractor(
                    clips[first : first + self.audio_batch_size],
                    sampling_rate=sampling_rate,
                    return_tensors="pt",
                    return_attention_mask=True,
                    device=feature_device(self.device),
                )
                frames, mask = features["input_features"], features["attention_mask"]
                real = mask.sum(dim=1).tolist()
                fitting = [row for row, n in enumerate(real) if n <= self.max_frames]
                if fitting:
                    width = -(-max(real[row] for row in fitting) // patch) * patch
                    embeds.append(self._embed_frames(frames[fitting, :width], mask[fitting, :width]))
                    owners.extend(first + row for row in fitting)
                for row, n in enumerate(real):
                    if n <= self.max_frames:
                        continue
                    windows = torch.stack(
                        [frames[row, start : start + self.max_frames] for start in window_starts(n, self.max_frames)]
                    )
                    for chunk in windows.split(self.audio_batch_size):
                        embeds.append(self._embed_frames(chunk, None))
                    owners.extend([first + row] * windows.shape[0])
        return _mean_over_windows(torch.cat(embeds), owners, len(clips))

    def _embed_frames(self, frames: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        output = self.model.get_audio_features(
            input_features=frames.to(self.device, self.dtype),
            attention_mask=None if mask is None else mask.to(self.device),
        )
        return _embedding_tensor(output).float()

    @property
    def text_max_length(self) -> int:
        return self.model.config.max_text_length or super().text_max_length


# ----------------------------------------------------------------------------------------------
# The factory
# ----------------------------------------------------------------------------------------------


def detect_clap_backend(name_or_path: str | os.PathLike) -> str:
    """Which backend `load_clap_scorer` uses for `name_or_path`: `.pt`/`.pth`/`.ckpt` files are
    laion-clap checkpoints; folders and Hub ids are told apart by `config.json`'s `model_type`
    (`clap` -> transformers, `eat_clap` -> this project's CLAP)."""
    path = os.fspath(name_or_path)
    if path.lower().endswith(_CHECKPOINT_SUFFIXES):
        if not os.path.isfile(path):
            raise ValueError(f"CLAP checkpoint file {path!r} does not exist.")
        return "laion_checkpoint"
    from transformers import PretrainedConfig

    try:
        config_dict, _ = PretrainedConfig.get_config_dict(path)
    except (OSError, ValueError) as err:
        raise ValueError(
            f"Cannot find a CLAP model at {path!r}: expected a laion-clap .pt file, a save_pretrained "
            f"folder or a cached Hub id ({type(err).__name__}: {err})."
        ) from None
    model_type = config_dict.get("model_type")
    if model_type == "clap":
        return "transformers"
    if model_type == "eat_clap":
        return "eat_clap"
    raise ValueError(
        f"{path!r} holds a {model_type!r} model, not a CLAP model (expected model_type 'clap' or 'eat_clap')."
    )


def load_clap_scorer(
    name_or_path: str | os.PathLike | CLAPScorer,
    backend: str | None = None,
    *,
    tokenizer=None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    lm_weight: float = 0.0,
    consensus_weight: float = 0.0,
    **kwargs,
) -> CLAPScorer:
    """Build a `CLAPScorer` from a Hub id, a folder or a laion-clap `.pt` file.

    Args:
        name_or_path: `laion/clap-htsat-unfused`, a `save_pretrained` folder of a `ClapModel` or an
            `EATClapModel`, or a laion-clap checkpoint such as `630k-audioset-best.pt`. An existing
            `CLAPScorer` is returned as is.
        backend: `None` (detect), `"transformers"`, `"laion_checkpoint"` (convert a `.pt` to a
            `ClapModel` in memory), `"laion_clap"` (use the installed `laion_clap` package) or
            `"eat_clap"`.
        tokenizer: a tokenizer object, folder or Hub id; needed for `.pt` checkpoints (LAION CLAP
            uses `roberta-base`) and for folders saved without one.
        device / dtype: where and in which precision to run the model.
        lm_weight: default fusion weight of the captioner's log-probabilities.
        consensus_weight: default fusion weight of the consensus with sampled captions (see `CLAPScorer`).
        **kwargs: passed to the backend (`audio_batch_size`, `text_batch_size`; for `transformers` and
            `laion_checkpoint` also `preprocessing` ("auto", "numpy" or "torch", see
            `TransformersClapScorer`); for `laion_checkpoint` also the converter's options such as
            `spec_size`; for `laion_clap` `enable_fusion`, `amodel`).
    """
    if isinstance(name_or_path, CLAPScorer):
        return name_or_path
    if backend is None:
        backend = detect_clap_backend(name_or_path)
    if backend not in BACKENDS:
        raise ValueError(f"Unknown CLAP backend {backend!r}; choose one of {BACKENDS} or None to detect.")
    path = os.fspath(name_or_path)
    consensus_weight = _check_lm_weight(consensus_weight, "consensus_weight")
    if backend == "transformers":
        scorer = TransformersClapScorer.from_pretrained(path, tokenizer=tokenizer, device=device, dtype=dtype,
                                                        lm_weight=lm_weight, **kwargs)
    elif backend == "eat_clap":
        scorer = EATClapScorer.from_pretrained(path, tokenizer=tokenizer, device=device, dtype=dtype,
                                               lm_weight=lm_weight, **kwargs)
    elif backend == "laion_clap":
        scorer = LaionClapPackageScorer(path, device=device, lm_weight=lm_weight, **kwargs)
    else:
        from .convert_laion_clap import convert_laion_clap_checkpoint

        scorer_kwargs = {k: kwargs.pop(k) for k in ("audio_batch_size", "text_batch_size", "preprocessing") if k in kwargs}
        model = convert_laion_clap_checkpoint(path, **kwargs)
        if dtype is not None:
            model.to(dtype=dtype)
        scorer = TransformersClapScorer(
            model,
            default_clap_feature_extractor(model.config),
            _load_tokenizer(tokenizer if tokenizer is not None else "roberta-base", path),
            lm_weight=lm_weight,
            name_or_path=path,
            **scorer_kwargs,
        )
        if device is not None:
            scorer = scorer.to(device)
    scorer.consensus_weight = consensus_weight
    return scorer


__all__ = [
    "BACKENDS",
    "CLAPScorer",
    "CandidateRanking",
    "EATClapScorer",
    "LaionClapPackageScorer",
    "TransformersClapScorer",
    "as_clip_list",
    "deduplicate_candidates",
    "default_clap_feature_extractor",
    "detect_clap_backend",
    "load_clap_scorer",
    "normalize_caption",
    "rank_candidates",
    "rank_with_samples",
    "window_starts",
]
