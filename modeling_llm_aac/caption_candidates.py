"""Caption candidates for CLAP rescoring, and plain caption decoding, with either decoding backend.

Three candidate strategies (`CandidateOptions.strategy`):

* `"slam"` -- SLAM-AAC's CLAP-Refine: one beam search per beam size 2..8, the top hypothesis of each
  (7 candidates, 35 beams per clip).
* `"single"` -- one pass: a beam search returning its `num_candidates` best hypotheses, or, with
  `diversity_penalty > 0`, a diverse (group) beam search with one group per candidate, each group's best
  hypothesis being a candidate.
* `"sample"` -- `num_candidates` sampled captions (temperature / top-k / top-p).

Apart from the candidates, `num_pseudo_references > 0` asks for that many captions sampled from the captioner at
`pseudo_reference_temperature` with no top-k / top-p filter (`generate_pseudo_references`): not candidates, but the
stand-ins for the unseen references against which `consensus_scoring` rates each candidate. They are drawn from a
generator seeded with `pseudo_reference_seed`, so the same call gives the same caption.

Duplicates (same words up to case and punctuation) are removed, keeping the best log-probability of a
duplicate group. Every candidate carries the captioner's length-normalised log-probability (mean token
log-probability, EOS included), the value `CLAPScorer.rerank` fuses with the CLAP similarity.

Backends: `"fast"` is `FastCaptionGenerator` (shared prompt cache, all searches of a clip in one loop; Llama-
family language models); `"generate"` is transformers' `generate` (any language model). `"auto"` takes the fast
one when the language model supports it. Both give the same candidates up to floating-point rounding, with one
exception: transformers 5 moved group (diverse) beam search out of `generate` to the Hub
(`transformers-community/group-beam-search`, which needs network access and remote code), so
`diversity_penalty > 0` needs the fast backend.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import torch

from .clap_scoring import deduplicate_candidates, normalize_caption
from .fast_generation import FastCaptionGenerator, fast_generation_unsupported_reason

CANDIDATE_STRATEGIES = ("slam", "single", "sample")
BACKENDS = ("auto", "fast", "generate")
SLAM_BEAM_SIZES = (2, 3, 4, 5, 6, 7, 8)
DEFAULT_NUM_CANDIDATES = 7
DEFAULT_MAX_NEW_TOKENS = 50
# Generation options that change the scores beyond what the fast decoder implements; with any of them set
# (to a non-neutral value) in the model's generation config, plain decoding goes through `generate`.
_NEUTRAL_OPTIONS = {
    "repetition_penalty": (None, 1.0),
    "encoder_repetition_penalty": (None, 1.0),
    "no_repeat_ngram_size": (None, 0),
    "encoder_no_repeat_ngram_size": (None, 0),
    "bad_words_ids": (None,),
    "force_words_ids": (None,),
    "constraints": (None,),
    "suppress_tokens": (None,),
    "begin_suppress_tokens": (None,),
    "sequence_bias": (None,),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "exponential_decay_length_penalty": (None,),
    "renormalize_logits": (None, False),
    "typical_p": (None, 1.0),
    "epsilon_cutoff": (None, 0.0),
    "eta_cutoff": (None, 0.0),
    "min_p": (None,),
    "top_h": (None,),
    "guidance_scale": (None, 1.0),
    "watermarking_config": (None,),
    "min_length": (None, 0),
    "num_beam_groups": (None, 1),
    "diversity_penalty": (None, 0.0),
}


# transformers' values for generation options left unset (None) in a generation config.
_GENERATE_DEFAULTS = {
    "min_new_tokens": 0, "num_beams": 1, "do_sample": False, "length_penalty": 1.0, "early_stopping": False,
    "temperature": 1.0, "top_k": 50, "top_p": 1.0,
}


@dataclass
class CaptionCandidate:
    """One caption: its text, the captioner's mean token log-probability (EOS included), its token count,
    and where it came from (e.g. `"beams=4"`, `"beam 2 of 8"`, `"group 3"`, `"sample 5"`)."""

    text: str
    log_prob: float
    num_tokens: int
    origin: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CandidateOptions:
    """How candidates are made.

    Args:
        strategy: `"slam"`, `"single"` or `"sample"` (see the module docstring).
        num_candidates: candidates per clip for `"single"` and `"sample"` (default 7, as many as CLAP-Refine);
            `"slam"` makes one per beam size.
        beam_sizes: `"slam"`: the beam sizes, one search each (SLAM-AAC: 2..8).
        num_beams: `"single"`: beams of the search (default `num_candidates`); with `diversity_penalty > 0`,
            beams in all groups together (default 2 per group; must be a multiple of `num_candidates`).
        diversity_penalty: `"single"`: > 0 for a diverse beam search (Hamming diversity between groups).
        temperature, top_k, top_p: `"sample"`: the sampling distribution (transformers' meaning; `top_k=0` and
            `top_p=1` switch those filters off).
        max_new_tokens: caption length limit (default: the model's generation config, else 50).
        min_new_tokens: EOS is forbidden before this many tokens.
        length_penalty: beam searches rank finished captions by `sum_log_prob / length ** length_penalty`.
        backend: `"auto"`, `"fast"` or `"generate"` (see the module docstring).
        deduplicate: remove duplicate and blank candidates.
        num_pseudo_references: captions to sample per clip for consensus rescoring (0: none; see the module
            docstring). 32-64 is where the synthetic corpus's consensus gain levels off.
        pseudo_reference_temperature: their sampling temperature (1 = the captioner's own distribution).
        pseudo_reference_seed: seed of their random generator.
        cuda_graphs: fast backend on CUDA: replay its decode steps as CUDA graphs (`FastCaptionGenerator`'s
            `cuda_graphs`); `None` keeps the model's fast generator as it is (off unless switched on before).
    """

    strategy: str = "slam"
    num_candidates: int | None = None
    beam_sizes: tuple[int, ...] = SLAM_BEAM_SIZES
    num_beams: int | None = None
    diversity_penalty: float = 0.0
    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 1.0
    max_new_tokens: int | None = None
    min_new_tokens: int = 0
    length_penalty: float = 1.0
    backend: str = "auto"
    deduplicate: bool = True
    num_pseudo_references: int = 0
    pseudo_reference_temperature: float = 1.0
    pseudo_reference_seed: int = 0
    cuda_graphs: bool | None = None

    def __post_init__(self):
        if self.strategy not in CANDIDATE_STRATEGIES:
            raise ValueError(f"strategy must be one of {CANDIDATE_STRATEGIES}, got {self.strategy!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.cuda_graphs is not None and not isinstance(self.cuda_graphs, bool):
            raise TypeError(f"cuda_graphs must be None, True or False, got {self.cuda_graphs!r}")
        if self.num_candidates is not None and (isinstance(self.num_candidates, bool) or int(self.num_candidates) < 1):
            raise ValueError(f"num_candidates must be a positive integer, got {self.num_candidates!r}")
        if isinstance(self.num_pseudo_references, bool) or not isinstance(self.num_pseudo_references, int) or (
                self.num_pseudo_references < 0):
            raise ValueError(f"num_pseudo_references must be an integer >= 0, got {self.num_pseudo_references!r}")
        if not (isinstance(self.pseudo_reference_temperature, (int, float)) and self.pseudo_reference_temperature > 0):
            raise ValueError(
                f"pseudo_reference_temperature must be a positive number, got {self.pseudo_reference_temperature!r}")
        if isinstance(self.pseudo_reference_seed, bool) or not isinstance(self.pseudo_reference_seed, int):
            raise ValueError(f"pseudo_reference_seed must be an integer, got {self.pseudo_reference_seed!r}")
        self.beam_sizes = tuple(int(k) for k in self.beam_sizes)
        if not self.beam_sizes or any(k < 1 for k in self.beam_sizes):
            raise ValueError(f"beam_sizes must be positive integers, got {self.beam_sizes}")
        if self.diversity_penalty < 0:
            raise ValueError(f"diversity_penalty must be >= 0, got {self.diversity_penalty}")
        if self.strategy == "single" and self.diversity_penalty > 0:
            groups = self.candidates_per_clip
            beams = self.num_beams if self.num_beams is not None else 2 * groups
            if beams % groups:
                raise ValueError(
                    f"a diverse beam search splits num_beams={beams} into num_candidates={groups} groups; "
                    "num_beams must be a multiple of num_candidates"
                )
        elif self.strategy == "single" and self.num_beams is not None and self.num_beams < self.candidates_per_clip:
            raise ValueError(
                f"num_beams={self.num_beams} cannot return num_candidates={self.candidates_per_clip} hypotheses"
            )

    @property
    def candidates_per_clip(self) -> int:
        if self.strategy == "slam":
            return len(self.beam_sizes)
        return int(self.num_candidates or DEFAULT_NUM_CANDIDATES)


# --------------------------------------------------------------------------------------------- helpers
def _generation_ids(model, processor) -> tuple[Any, int | None]:
    config = getattr(model, "generation_config", None)
    eos = getattr(config, "eos_token_id", None)
    pad = getattr(config, "pad_token_id", None)
    tokenizer = getattr(processor, "tokenizer", None)
    if eos is None and tokenizer is not None:
        eos = tokenizer.eos_token_id
    if pad is None and tokenizer is not None:
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return eos, pad


def _max_new_tokens(model, requested: int | None) -> int:
    if requested is not None:
        value = requested
    else:
        value = getattr(getattr(model, "generation_config", None), "max_new_tokens", None) or DEFAULT_MAX_NEW_TOKENS
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"max_new_tokens must be a positive integer, got {value!r}")
    return value


def resolve_backend(model, backend: str, *, needs_fast: str | None = None) -> str:
    """`"fast"` or `"generate"` for `backend` (`"auto"` picks fast when the language model supports it).

    `needs_fast` names a feature only the fast backend has; asking for it with `"generate"`, or with a model the
    fast decoder cannot run, raises a `ValueError`."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    reason = fast_generation_unsupported_reason(model)
    if needs_fast is not None:
        if backend == "generate":
            raise ValueError(
                f"{needs_fast} is not available through transformers' generate (transformers 5 moved group beam "
                "search to the Hub); use backend='fast' or 'auto'"
            )
        if reason is not None:
            raise ValueError(f"{needs_fast} needs the fast decoder, which cannot run this captioner: {reason}")
        return "fast"
    if backend == "fast":
        if reason is not None:
            raise ValueError(f"backend='fast' cannot run this captioner: {reason}")
        return "fast"
    if backend == "generate":
        return "generate"
    return "fast" if reason is None else "generate"


def _fast_generator(model, cuda_graphs: bool | None = None) -> FastCaptionGenerator:
    """One `FastCaptionGenerator` per model (kept on the model: it holds no state between calls); `cuda_graphs`,
    unless `None`, switches its CUDA-graph replay on or off."""
    generator = getattr(model, "_llm_aac_fast_generator", None)
    if generator is None or generator.model is not model:
        generator = FastCaptionGenerator(model)
        try:
            object.__setattr__(model, "_llm_aac_fast_generator", generator)
        except AttributeError:  # pragma: no cover - exotic module wrappers
            pass
    if cuda_graphs is not None:
        generator.cuda_graphs = cuda_graphs
    return generator


def _model_inputs(inputs, device) -> dict[str, torch.Tensor]:
    names = ("input_ids", "attention_mask", "input_features", "feature_attention_mask")
    missing = [name for name in ("input_ids", "input_features") if inputs.get(name) is None]
    if missing:
        raise ValueError(f"the inputs lack {missing}: pass the LLMAACProcessor output of the audio clips")
    return {name: inputs[name].to(device) for name in names if inputs.get(name) is not None}


def _generated_length(row: list[int], eos) -> int:
    """Tokens up to and including the first EOS; the whole row when no EOS was generated."""
    eos_ids = {eos} if isinstance(eos, int) else set(eos or ())
    for index, token in enumerate(row):
        if token in eos_ids:
            return index + 1
    return len(row)


def _decode(processor, token_rows: list[list[int]]) -> list[str]:
    return processor.batch_decode(token_rows, prompt_length=0) if token_rows else []


def _finish(candidates: list[list[CaptionCandidate]], deduplicate: bool) -> list[list[CaptionCandidate]]:
    if not deduplicate:
        return candidates
    output = []
    for clip_candidates in candidates:
        texts, log_probs = deduplicate_candidates(
            [c.text for c in clip_candidates], [c.log_prob for c in clip_candidates]
        )
        first = {}
        for candidate in clip_candidates:
            first.setdefault(normalize_caption(candidate.text), candidate)
        kept = []
        for text, log_prob in zip(texts, log_probs):
            source = first.get(normalize_caption(text))
            if source is None:  # every candidate was blank: one blank remains
                source = clip_candidates[0]
            kept.append(replace(source, text=text, log_prob=float(log_prob)))
        output.append(kept)
    return output


# ------------------------------------------------------------------------------------ transformers' generate
def _generate_beams(model, inputs, *, num_beams, num_return, max_new_tokens, min_new_tokens, length_penalty,
                    eos, pad, early_stopping=False):
    """(token rows, mean log-probs) of `generate`'s beam search: `num_return` rows per clip, best first."""
    from transformers import GenerationConfig

    config = GenerationConfig(
        num_beams=num_beams, num_return_sequences=num_return, do_sample=False, max_new_tokens=max_new_tokens,
        min_new_tokens=min_new_tokens or None, length_penalty=length_penalty, early_stopping=early_stopping,
        eos_token_id=eos, pad_token_id=pad, return_dict_in_generate=True, output_scores=True,
    )
    output = model.generate(**inputs, generation_config=config)
    width = inputs["input_ids"].shape[1]
    rows, means = [], []
    for row, score in zip(output.sequences[:, width:].tolist(), output.sequences_scores.tolist()):
        length = _generated_length(row, eos)
        rows.append(row[:length])
        # sequences_scores = sum / length ** length_penalty
        means.append(score * length**length_penalty / max(1, length))
    return rows, means


def _generate_samples(model, inputs, *, num_return, do_sample, temperature, top_k, top_p, max_new_tokens,
                      min_new_tokens, eos, pad):
    from transformers import GenerationConfig

    config = GenerationConfig(
        do_sample=do_sample, num_beams=1, num_return_sequences=num_return, temperature=temperature if do_sample else None,
        top_k=top_k if do_sample else None, top_p=top_p if do_sample else None, max_new_tokens=max_new_tokens,
        min_new_tokens=min_new_tokens or None, eos_token_id=eos, pad_token_id=pad, return_dict_in_generate=True,
        output_logits=True,
    )
    output = model.generate(**inputs, generation_config=config)
    width = inputs["input_ids"].shape[1]
    generated = output.sequences[:, width:]
    log_probs = torch.stack([torch.log_softmax(step.float(), dim=-1) for step in output.logits], dim=1)
    token_log_probs = log_probs.gather(2, generated[:, : log_probs.shape[1], None].to(log_probs.device)).squeeze(2)
    rows, means = [], []
    for row_index, row in enumerate(generated.tolist()):
        length = _generated_length(row, eos)
        rows.append(row[:length])
        means.append(float(token_log_probs[row_index, :length].sum()) / max(1, length))
    return rows, means


# ------------------------------------------------------------------------------------------- candidates
@torch.no_grad()
def generate_candidates(model, processor, inputs, options: CandidateOptions | None = None, *,
                        generator: torch.Generator | None = None) -> list[list[CaptionCandidate]]:
    """Caption candidates for each clip of `inputs` (the processor's output for generation).

    Args:
        model: the captioner ([`LLMAACForConditionalGeneration`]).
        processor: its [`LLMAACProcessor`] (decodes the tokens).
        inputs: `processor(audio, sampling_rate=...)` (left-padded prompts, features, masks).
        options: [`CandidateOptions`] (default: SLAM-AAC's CLAP-Refine candidates).
        generator: random generator for `"sample"` with the fast backend (the global RNG otherwise).

    Returns:
        one list of [`CaptionCandidate`] per clip, in search / sample order, duplicates removed.
    """
    options = options or CandidateOptions()
    inputs = _model_inputs(inputs, model.device)
    eos, pad = _generation_ids(model, processor)
    max_new = _max_new_tokens(model, options.max_new_tokens)
    diverse = options.strategy == "single" and options.diversity_penalty > 0
    backend = resolve_backend(model, options.backend, needs_fast="diverse beam search" if diverse else None)
    count = options.candidates_per_clip
    num_clips = inputs["input_ids"].shape[0]
    per_clip: list[list[tuple[list[int], float, str]]] = [[] for _ in range(num_clips)]
    common = dict(max_new_tokens=max_new, min_new_tokens=options.min_new_tokens, eos_token_id=eos)
    fast = _fast_generator(model, options.cuda_graphs) if backend == "fast" else None

    if options.strategy == "slam":
        if backend == "fast":
            groups = fast.beam_search(
                **inputs, beam_sizes=options.beam_sizes, length_penalty=options.length_penalty, **common
            )
            for clip, clip_groups in enumerate(groups):
                for size, (best,) in zip(options.beam_sizes, clip_groups):
                    per_clip[clip].append((best.tokens, best.mean_log_prob, f"beams={size}"))
        else:
            for size in options.beam_sizes:
                rows, means = _generate_beams(
                    model, inputs, num_beams=size, num_return=1, max_new_tokens=max_new,
                    min_new_tokens=options.min_new_tokens, length_penalty=options.length_penalty, eos=eos, pad=pad,
                )
                for clip in range(num_clips):
                    per_clip[clip].append((rows[clip], means[clip], f"beams={size}"))
    elif options.strategy == "single" and not diverse:
        beams = options.num_beams or count
        if backend == "fast":
            groups = fast.beam_search(
                **inputs, beam_sizes=(beams,), num_return_sequences=count, length_penalty=options.length_penalty,
                **common,
            )
            for clip, (hyps,) in enumerate(groups):
                for rank, hyp in enumerate(hyps):
                    per_clip[clip].append((hyp.tokens, hyp.mean_log_prob, f"beam {rank + 1} of {beams}"))
        else:
            rows, means = _generate_beams(
                model, inputs, num_beams=beams, num_return=count, max_new_tokens=max_new,
                min_new_tokens=options.min_new_tokens, length_penalty=options.length_penalty, eos=eos, pad=pad,
            )
            for index, (row, mean) in enumerate(zip(rows, means)):
                per_clip[index // count].append((row, mean, f"beam {index % count + 1} of {beams}"))
    elif options.strategy == "single":
        beams = options.num_beams or 2 * count
        groups = fast.beam_search(
            **inputs, beam_sizes=(beams // count,) * count, length_penalty=options.length_penalty,
            diversity_penalty=options.diversity_penalty, **common,
        )
        for clip, clip_groups in enumerate(groups):
            for group, (best,) in enumerate(clip_groups):
                per_clip[clip].append((best.tokens, best.mean_log_prob, f"group {group + 1}"))
    else:  # sample
        sampling = dict(temperature=options.temperature, top_k=options.top_k, top_p=options.top_p)
        if backend == "fast":
            samples = fast.sample(
                **inputs, num_return_sequences=count, do_sample=True, pad_token_id=pad, generator=generator,
                **sampling, **common,
            )
            for clip, hyps in enumerate(samples):
                for index, hyp in enumerate(hyps):
                    per_clip[clip].append((hyp.tokens, hyp.mean_log_prob, f"sample {index + 1}"))
        else:
            rows, means = _generate_samples(
                model, inputs, num_return=count, do_sample=True, max_new_tokens=max_new,
                min_new_tokens=options.min_new_tokens, eos=eos, pad=pad, **sampling,
            )
            for index, (row, mean) in enumerate(zip(rows, means)):
                per_clip[index // count].append((row, mean, f"sample {index % count + 1}"))

    flat = [tokens for clip in per_clip for tokens, _, _ in clip]
    texts = iter(_decode(processor, flat))
    candidates = [
        [CaptionCandidate(next(texts), float(mean), len(tokens), origin) for tokens, mean, origin in clip]
        for clip in per_clip
    ]
    return _finish(candidates, options.deduplicate)


def generate_pseudo_references(model, processor, inputs, options: CandidateOptions) -> list[list[str]]:
    """`options.num_pseudo_references` captions sampled per clip of `inputs` for consensus rescoring, in sample
    order, blanks and repeats kept (they are draws from the captioner's distribution; `consensus_scoring` ignores
    blanks). Seeded with `options.pseudo_reference_seed`: the same inputs in the same batch give the same samples.

    Raises:
        ValueError: `options.num_pseudo_references` is 0.
    """
    if options.num_pseudo_references < 1:
        raise ValueError("generate_pseudo_references needs options.num_pseudo_references >= 1, got 0")
    sampling = replace(options, strategy="sample", num_candidates=options.num_pseudo_references,
                       temperature=float(options.pseudo_reference_temperature), top_k=0, top_p=1.0,
                       deduplicate=False, num_pseudo_references=0)
    device = torch.device(model.device)
    backend = resolve_backend(model, options.backend)
    if backend == "fast":
        generator = torch.Generator(device=device).manual_seed(options.pseudo_reference_seed)
        per_clip = generate_candidates(model, processor, inputs, sampling, generator=generator)
    else:  # `generate` samples from the global generator: seed it inside a fork so the caller's RNG is untouched
        devices = []
        if device.type == "cuda":
            devices = [device.index if device.index is not None else torch.cuda.current_device()]
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(options.pseudo_reference_seed)
            per_clip = generate_candidates(model, processor, inputs, sampling)
    return [[candidate.text for candidate in clip] for clip in per_clip]


# ------------------------------------------------------------------------------------------- plain decoding
def generation_settings(model, overrides: dict | None = None) -> dict[str, Any]:
    """The decoding settings of plain captioning: the model's generation config, updated by `overrides`
    (the keyword arguments one would pass to `generate`)."""
    base = getattr(model, "generation_config", None)
    settings = base.to_dict() if base is not None else {}
    settings.update(overrides or {})
    return settings


def unsupported_fast_options(settings: dict) -> list[str]:
    """Generation options in `settings` that the fast decoder does not implement (non-neutral values only)."""
    found = [name for name, neutral in _NEUTRAL_OPTIONS.items() if settings.get(name) not in neutral]
    if settings.get("do_sample") and (settings.get("num_beams") or 1) > 1:
        found.append("do_sample with num_beams > 1 (beam sampling)")
    if (settings.get("num_return_sequences") or 1) != 1:
        found.append("num_return_sequences")
    return found


@torch.no_grad()
def generate_captions(model, processor, inputs, *, backend: str = "auto", generator: torch.Generator | None = None,
                      cuda_graphs: bool | None = None, **generate_kwargs) -> list[CaptionCandidate]:
    """One caption per clip, decoded with the model's generation config (updated by `generate_kwargs`):
    beam search when `num_beams > 1`, else greedy or sampling. The fast backend is used when `backend` allows
    and every option is one it implements (see `unsupported_fast_options`); `generate` otherwise. `cuda_graphs`:
    as in `CandidateOptions`."""
    settings = generation_settings(model, generate_kwargs)

    def setting(name):  # transformers 5 stores unset options as None and applies its defaults at generate time
        value = settings.get(name)
        return _GENERATE_DEFAULTS.get(name) if value is None else value

    inputs = _model_inputs(inputs, model.device)
    eos, pad = _generation_ids(model, processor)
    eos = setting("eos_token_id") if setting("eos_token_id") is not None else eos
    pad = setting("pad_token_id") if setting("pad_token_id") is not None else pad
    max_new = _max_new_tokens(model, settings.get("max_new_tokens"))
    min_new = int(setting("min_new_tokens"))
    num_beams = int(setting("num_beams"))
    length_penalty = float(setting("length_penalty"))
    do_sample = bool(setting("do_sample")) and num_beams == 1
    unsupported = unsupported_fast_options(settings)
    chosen = resolve_backend(model, backend)
    if chosen == "fast" and unsupported:
        if backend == "fast":
            raise ValueError(f"backend='fast' does not implement the generation options {unsupported}")
        chosen = "generate"

    if chosen == "generate":
        overrides = dict(generate_kwargs)
        overrides.setdefault("max_new_tokens", max_new)
        overrides.update(return_dict_in_generate=True, output_scores=num_beams > 1, output_logits=num_beams == 1)
        if pad is not None:
            overrides.setdefault("pad_token_id", pad)
        output = model.generate(**inputs, **overrides)
        width = inputs["input_ids"].shape[1]
        rows, means = [], []
        if num_beams > 1:
            for row, score in zip(output.sequences[:, width:].tolist(), output.sequences_scores.tolist()):
                length = _generated_length(row, eos)
                rows.append(row[:length])
                means.append(score * length**length_penalty / max(1, length))
        else:
            generated = output.sequences[:, width:]
            log_probs = torch.stack([torch.log_softmax(s.float(), dim=-1) for s in output.logits], dim=1)
            picked = log_probs.gather(2, generated[:, : log_probs.shape[1], None].to(log_probs.device)).squeeze(2)
            for index, row in enumerate(generated.tolist()):
                length = _generated_length(row, eos)
                rows.append(row[:length])
                means.append(float(picked[index, :length].sum()) / max(1, length))
    else:
        fast = _fast_generator(model, cuda_graphs)
        common = dict(max_new_tokens=max_new, min_new_tokens=min_new, eos_token_id=eos)
        if num_beams > 1:
            results = fast.beam_search(
                **inputs, beam_sizes=(num_beams,), length_penalty=length_penalty,
                early_stopping=setting("early_stopping"), **common,
            )
            best = [groups[0][0] for groups in results]
        else:
            results = fast.sample(
                **inputs, do_sample=do_sample, temperature=float(setting("temperature")), top_k=setting("top_k"),
                top_p=setting("top_p"), pad_token_id=pad, generator=generator,
                **common,
            )
            best = [hyps[0] for hyps in results]
        rows = [hyp.tokens for hyp in best]
        means = [hyp.mean_log_prob for hyp in best]
    origin = f"beams={num_beams}" if num_beams > 1 else ("sample" if do_sample else "greedy")
    texts = _decode(processor, rows)
    return [CaptionCandidate(text, float(mean), len(row), origin) for text, mean, row in zip(texts, means, rows)]


__all__ = [
    "BACKENDS",
    "CANDIDATE_STRATEGIES",
    "CaptionCandidate",
    "CandidateOptions",
    "SLAM_BEAM_SIZES",
    "generate_candidates",
    "generate_captions",
    "generate_pseudo_references",
    "generation_settings",
    "resolve_backend",
    "unsupported_fast_options",
]
