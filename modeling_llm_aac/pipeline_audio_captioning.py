"""`pipeline("audio-captioning")`: audio in, caption out; optionally CLAP-rescored caption candidates.

```python
from transformers import pipeline

captioner = pipeline("audio-captioning", model="path/or/hub-id", trust_remote_code=True)
captioner("dog.wav")                                   # {"caption": "a dog barks ..."}
captioner(["a.flac", {"array": wav, "sampling_rate": 44100}], batch_size=8)
captioner("dog.wav", candidates="slam", return_candidates=True)
```

Inputs: a file path (WAV / FLAC / OGG / ... through soundfile), raw file bytes, a mono numpy array or torch
tensor (at `sampling_rate=`, default the feature extractor's 16 kHz), a dict `{"array" or "raw", "sampling_rate"}`
(the `datasets` audio format; `{"path"}` / `{"bytes"}` rows of `Audio(decode=False)` too), or a list of them.
Multi-channel files are mixed down to mono.

Decoding: without `candidates` the captioner's generation config decides (SLAM-AAC: beam 4). With
`candidates="slam" | "single" | "sample"` (see `caption_candidates`) each clip gets several candidates and the
one with the highest `CLAP similarity + lm_weight * mean token log-probability` is returned (the highest
log-probability when no CLAP scorer is set). With `num_pseudo_references=K` the captioner also samples K captions per
clip, and `consensus_weight * consensus` (each candidate's agreement with those samples, `consensus_scoring`) joins
the sum: CLAP judges whether a caption fits the audio, consensus which wording the references most likely share.
Clips are batched by the processor inside `_forward`, so `batch_size` changes speed, not captions (the sampled
captions excepted: one seeded generator serves the batch, so with samples a clip's caption can depend on its batch).

A folder written by `save_pretrained` (or `save_captioner`) holds the model, processor, generation config,
this pipeline's code, `audio_captioning.json` (default decoding options and the CLAP scorer settings) and, when
the scorer was given as an object, its weights in `clap/`; `pipeline("audio-captioning", model=folder,
trust_remote_code=True)` rebuilds all of it without this package installed.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from transformers import AutoModel, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.pt_utils import PipelineDataset, PipelineIterator

from .caption_candidates import (
    CANDIDATE_STRATEGIES,
    CandidateOptions,
    generate_candidates,
    generate_captions,
    generate_pseudo_references,
)
from .clap_scoring import CLAPScorer, deduplicate_candidates, load_clap_scorer, rank_with_samples
from .feature_extraction_llm_aac import feature_device, mono_float32_samples

try:
    import soundfile
except ImportError:  # pragma: no cover - soundfile is a dependency; arrays still work without it
    soundfile = None

TASK = "audio-captioning"
PIPELINE_CONFIG_NAME = "audio_captioning.json"
CLAP_SUBFOLDER = "clap"
# Keyword arguments of `__call__` that become `CandidateOptions` fields.
_CANDIDATE_FIELDS = (
    "num_candidates", "beam_sizes", "num_beams", "diversity_penalty", "temperature", "top_k", "top_p",
    "max_new_tokens", "min_new_tokens", "length_penalty", "num_pseudo_references", "pseudo_reference_temperature",
    "pseudo_reference_seed",
)


# --------------------------------------------------------------------------------------------- audio input
def _read_audio_file(source, name: str) -> tuple[np.ndarray, int]:
    if soundfile is None:
        raise ImportError("reading audio files needs the soundfile package: pip install soundfile")
    if isinstance(source, str) and not os.path.isfile(source):
        raise ValueError(f"audio file {name} does not exist")
    try:
        samples, rate = soundfile.read(source, dtype="float32", always_2d=True)
    except (soundfile.SoundFileError, RuntimeError, TypeError) as error:
        reason = getattr(error, "error_string", None) or str(error)
        raise ValueError(f"could not decode audio {name}: {reason}") from None
    if samples.shape[0] == 0:
        raise ValueError(f"audio {name} contains no samples")
    return samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0], int(rate)


def _mono(samples, name: str) -> np.ndarray:
    return mono_float32_samples(samples, f"audio {name}", mix_channels=True)


def _check_rate(rate, name: str) -> int:
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) or not rate > 0 \
            or float(rate) != int(rate):
        raise ValueError(f"audio {name}: sampling_rate must be a positive whole number of Hz, got {rate!r}")
    return int(rate)


def load_audio_input(item: Any, default_rate: int) -> tuple[np.ndarray, int]:
    """One pipeline input as (mono float32 samples, sampling rate); see the module docstring for the forms."""
    if isinstance(item, (str, os.PathLike)):
        name = repr(os.fspath(item))
        samples, rate = _read_audio_file(os.fspath(item), name)
        return _mono(samples, name), rate
    if isinstance(item, (bytes, bytearray)):
        name = f"<{len(item)} bytes>"
        samples, rate = _read_audio_file(io.BytesIO(item), name)
        return _mono(samples, name), rate
    if isinstance(item, Mapping):
        keys = sorted(item)
        array_key = "array" if "array" in item else ("raw" if "raw" in item else None)
        if array_key is not None:
            name = f"<{array_key} of dict with keys {keys}>"
            if item.get("sampling_rate") is None:
                raise ValueError(f"audio {name} has no 'sampling_rate'")
            return _mono(item[array_key], name), _check_rate(item["sampling_rate"], name)
        if item.get("bytes") is not None:
            return load_audio_input(bytes(item["bytes"]), default_rate)
        if item.get("path") is not None:
            return load_audio_input(item["path"], default_rate)
        raise ValueError(
            f"a dict input needs 'array' (or 'raw') and 'sampling_rate', or 'path' / 'bytes'; got keys {keys}"
        )
    if isinstance(item, (np.ndarray, torch.Tensor)):
        return _mono(item, f"<array of shape {tuple(item.shape)}>"), _check_rate(default_rate, "array")
    raise TypeError(
        "audio-captioning inputs are file paths, bytes, numpy arrays / tensors, {'array', 'sampling_rate'} dicts "
        f"or lists of them; got {type(item).__name__}"
    )


def _collate_as_lists(items: list[dict]) -> dict[str, list]:
    # The processor batches the clips itself (left-padded prompts, masked frames) inside `_forward`.
    return {key: [item[key] for item in items] for key in items[0]}


# --------------------------------------------------------------------------------------------- the pipeline
class AudioCaptioningPipeline(Pipeline):
    """Audio captioning with an LLM-AAC captioner, optionally rescoring caption candidates with CLAP.

    Args:
        model: an `LLMAACForConditionalGeneration`.
        processor: its `LLMAACProcessor`.
        clap: a `CLAPScorer`, or anything `load_clap_scorer` takes (Hub id, folder, laion-clap `.pt`); `None` reads
            the scorer saved with the model (`audio_captioning.json`), if any; `False` disables rescoring.
        clap_kwargs: keyword arguments of `load_clap_scorer` (e.g. `tokenizer=` for `.pt` checkpoints).
        kwargs: defaults of the call options below, and `Pipeline`'s own (`device`, `batch_size`, ...).

    Call options:
        sampling_rate: rate of raw array inputs (default: the feature extractor's).
        candidates: `None` (plain decoding), `"slam"`, `"single"` or `"sample"`.
        num_candidates, beam_sizes, num_beams, diversity_penalty, temperature, top_k, top_p, max_new_tokens,
            min_new_tokens, length_penalty: the `CandidateOptions` of the candidates.
        num_pseudo_references, pseudo_reference_temperature, pseudo_reference_seed: captions sampled per clip for
            consensus rescoring (default 0: none), their temperature and seed (`CandidateOptions`).
        lm_weight: weight of the mean token log-probability in the pick (default: the scorer's, else 0).
        consensus_weight: weight of the consensus with the sampled captions (default: the scorer's, else 0; with
            0 the consensus is still computed and returned with `return_candidates`, but does not decide).
        backend: `"auto"`, `"fast"` or `"generate"` (see `caption_candidates`).
        cuda_graphs: the fast decoder on CUDA replays its decode steps as CUDA graphs (default: off; see
            `FastCaptionGenerator`).
        generate_kwargs: plain decoding, overrides of the generation config (`num_beams`, `max_new_tokens`, ...).
        return_candidates: add `"candidates"` (best first, each with `log_prob`, with a scorer `clap_score`, with
            sampled captions `consensus`, plus the fused `score`) to each output.
    """

    _load_processor = True
    _load_tokenizer = False
    _load_feature_extractor = False
    _load_image_processor = False

    def __init__(self, model, processor=None, clap: Any = None, clap_kwargs: dict | None = None, **kwargs):
        settings = read_pipeline_settings(getattr(model, "name_or_path", None))
        for key, value in settings.get("defaults", {}).items():
            kwargs.setdefault(key, value)
        super().__init__(model, processor=processor, **kwargs)
        if self.processor is None:
            raise ValueError(
                "AudioCaptioningPipeline needs the captioner's LLMAACProcessor: pass processor=, or load the pipeline "
                "from a folder saved with save_pretrained / save_captioner"
            )
        self.clap_scorer = self._build_scorer(clap, clap_kwargs or {}, settings)

    def _build_scorer(self, clap, clap_kwargs, settings) -> CLAPScorer | None:
        if clap is False:
            return None
        if clap is None:
            saved = settings.get("clap")
            if not saved:
                return None
            clap = _resolve_saved_clap(getattr(self.model, "name_or_path", None), saved)
            clap_kwargs = {"backend": saved.get("backend"), "lm_weight": saved.get("lm_weight", 0.0),
                           "consensus_weight": saved.get("consensus_weight", 0.0), **clap_kwargs}
            if clap_kwargs["backend"] == "laion_checkpoint" and saved.get("tokenizer") and "tokenizer" not in clap_kwargs:
                clap_kwargs["tokenizer"] = saved["tokenizer"]
        scorer = load_clap_scorer(clap, **clap_kwargs)
        if self.device.type != "cpu" and scorer.device != self.device:
            scorer.to(self.device)
        return scorer

    # ----------------------------------------------------------------------------------- parameters
    def _sanitize_parameters(self, sampling_rate=None, candidates=None, lm_weight=None, backend=None,
                             generate_kwargs=None, return_candidates=None, cuda_graphs=None, consensus_weight=None,
                             **kwargs):
        preprocess, forward, postprocess = {}, {}, {}
        if sampling_rate is not None:
            preprocess["sampling_rate"] = sampling_rate
        if candidates is not None:
            if candidates not in CANDIDATE_STRATEGIES and candidates != "none":
                raise ValueError(f"candidates must be None or one of {CANDIDATE_STRATEGIES}, got {candidates!r}")
            forward["candidates"] = None if candidates == "none" else candidates
        unknown = sorted(set(kwargs) - set(_CANDIDATE_FIELDS))
        if unknown:
            raise TypeError(f"unexpected audio-captioning options {unknown}")
        options = {key: value for key, value in kwargs.items() if value is not None}
        if options:
            forward["candidate_options"] = options
        if lm_weight is not None:
            forward["lm_weight"] = float(lm_weight)
        if consensus_weight is not None:
            forward["consensus_weight"] = float(consensus_weight)
        if backend is not None:
            forward["backend"] = backend
        if cuda_graphs is not None:
            if not isinstance(cuda_graphs, bool):
                raise TypeError(f"cuda_graphs must be True or False, got {cuda_graphs!r}")
            forward["cuda_graphs"] = cuda_graphs
        if generate_kwargs is not None:
            if not isinstance(generate_kwargs, Mapping):
                raise TypeError(f"generate_kwargs must be a dict, got {type(generate_kwargs).__name__}")
            forward["generate_kwargs"] = dict(generate_kwargs)
        if return_candidates is not None:
            postprocess["return_candidates"] = bool(return_candidates)
        return preprocess, forward, postprocess

    def __call__(self, inputs, **kwargs):
        """Caption one input (returns a dict) or a list of inputs (returns a list of dicts); see the class."""
        return super().__call__(inputs, **kwargs)

    def get_iterator(self, inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params):
        # As `Pipeline.get_iterator`, but clips are collated into plain lists: the generic collate pads tensors
        # and insists that tokenizer and feature extractor pad on the same side, neither of which applies here.
        if isinstance(inputs, (list, tuple)):
            dataset = PipelineDataset(inputs, self.preprocess, preprocess_params)
        else:
            num_workers = min(num_workers, 1)
            dataset = PipelineIterator(inputs, self.preprocess, preprocess_params)
        loader = torch.utils.data.DataLoader(
            dataset, num_workers=num_workers, batch_size=batch_size, collate_fn=_collate_as_lists
        )
        model_iterator = PipelineIterator(loader, self.forward, forward_params, loader_batch_size=batch_size)
        return PipelineIterator(model_iterator, self.postprocess, postprocess_params)

    # ----------------------------------------------------------------------------------- stages
    def preprocess(self, inputs, sampling_rate=None):
        rate = sampling_rate if sampling_rate is not None else self.processor.feature_extractor.sampling_rate
        samples, clip_rate = load_audio_input(inputs, rate)
        return {"waveform": samples, "sampling_rate": clip_rate}

    def _forward(self, model_inputs, candidates=None, candidate_options=None, lm_weight=None, backend="auto",
                 generate_kwargs=None, cuda_graphs=None, consensus_weight=None):
        waveforms, rates = model_inputs["waveform"], model_inputs["sampling_rate"]
        if not isinstance(waveforms, list):  # batch_size=1 hands over one clip
            waveforms, rates = [waveforms], [rates]
        audio = [{"array": wave, "sampling_rate": int(rate)} for wave, rate in zip(waveforms, rates)]
        inputs = self.processor(audio=audio, return_tensors="pt", device=feature_device(self.model.device))
        if candidates is None:
            decoded = generate_captions(self.model, self.processor, inputs, backend=backend, cuda_graphs=cuda_graphs,
                                        **(generate_kwargs or {}))
            results = [
                {"caption": c.text,
                 "candidates": [{"caption": c.text, "log_prob": c.log_prob, "score": c.log_prob, "origin": c.origin}]}
                for c in decoded
            ]
            return {"results": results}
        options = CandidateOptions(strategy=candidates, backend=backend, cuda_graphs=cuda_graphs,
                                   **(candidate_options or {}))
        per_clip = generate_candidates(self.model, self.processor, inputs, options)
        samples = (generate_pseudo_references(self.model, self.processor, inputs, options)
                   if options.num_pseudo_references else [None] * len(per_clip))
        weight = lm_weight if lm_weight is not None else (self.clap_scorer.lm_weight if self.clap_scorer else 0.0)
        if consensus_weight is None:
            consensus_weight = self.clap_scorer.consensus_weight if self.clap_scorer else 0.0
        if self.clap_scorer is None:
            rankings = []
            for clip, clip_samples in zip(per_clip, samples):
                texts, log_probs = deduplicate_candidates([c.text for c in clip], [c.log_prob for c in clip])
                # The log-probability stands in for the CLAP similarity.
                rankings.append(rank_with_samples(texts, log_probs, log_probs, pseudo_references=clip_samples,
                                                  consensus_weight=consensus_weight))
            with_clap = False
        else:
            rankings = [None] * len(per_clip)
            by_rate: dict[int, list[int]] = {}
            for index, rate in enumerate(rates):
                by_rate.setdefault(int(rate), []).append(index)
            for rate, indices in by_rate.items():
                ranked = self.clap_scorer.rerank(
                    [waveforms[i] for i in indices], [[c.text for c in per_clip[i]] for i in indices], rate,
                    log_probs=[[c.log_prob for c in per_clip[i]] for i in indices], lm_weight=weight,
                    pseudo_references=None if samples[0] is None else [samples[i] for i in indices],
                    consensus_weight=consensus_weight,
                )
                for index, ranking in zip(indices, ranked):
                    rankings[index] = ranking
            with_clap = True
        results = []
        for clip_candidates, ranking in zip(per_clip, rankings):
            origin = {c.text: c.origin for c in clip_candidates}
            entries = []
            for i in sorted(range(len(ranking.candidates)), key=lambda i: (-ranking.scores[i], i)):
                entry = {"caption": ranking.candidates[i], "log_prob": ranking.log_probs[i]}
                if with_clap:
                    entry["clap_score"] = ranking.clap_scores[i]
                if ranking.consensus is not None:
                    entry["consensus"] = ranking.consensus[i]
                entry["score"] = ranking.scores[i]
                entry["origin"] = origin.get(ranking.candidates[i], "")
                entries.append(entry)
            results.append({"caption": ranking.caption, "candidates": entries})
        return {"results": results}

    def postprocess(self, model_outputs, return_candidates=False):
        result = model_outputs["results"]
        if isinstance(result, list):  # batch_size=1: the batch of one was not unrolled
            result = result[0]
        output = {"caption": result["caption"]}
        if return_candidates:
            output["candidates"] = result["candidates"]
        return output

    # ----------------------------------------------------------------------------------- saving
    def save_pretrained(self, save_directory, *, candidates: str | None = None, save_clap_weights: bool = True,
                        **kwargs):
        """Writes one self-contained folder: model (+ `custom_pipelines` in config.json), generation config,
        processor, the remote-code files, and `audio_captioning.json` with the default candidate strategy and
        the CLAP scorer settings (the scorer's weights in `clap/` when `save_clap_weights` and the scorer can save
        them). `kwargs` go to `push_to_hub` through `save_pretrained` (e.g. `push_to_hub=True, repo_id=...`)."""
        register_audio_captioning_pipeline(type(self))
        push = kwargs.pop("push_to_hub", False)
        super().save_pretrained(save_directory)
        self.processor.save_pretrained(save_directory)
        settings: dict[str, Any] = {"defaults": {}}
        default_strategy = candidates if candidates is not None else self._forward_params.get("candidates")
        if default_strategy is not None:
            if default_strategy not in CANDIDATE_STRATEGIES:
                raise ValueError(f"candidates must be None or one of {CANDIDATE_STRATEGIES}, got {default_strategy!r}")
            settings["defaults"]["candidates"] = default_strategy
        for key, value in self._forward_params.get("candidate_options", {}).items():
            settings["defaults"][key] = list(value) if isinstance(value, tuple) else value
        if self.clap_scorer is not None:
            settings["clap"] = _save_scorer(self.clap_scorer, save_directory, save_clap_weights)
        with open(os.path.join(save_directory, PIPELINE_CONFIG_NAME), "w", encoding="utf-8") as handle:
            json.dump(settings, handle, indent=2, sort_keys=True)
            handle.write("\n")
        if push:
            from huggingface_hub import HfApi

            repo_id = kwargs.pop("repo_id", None) or os.path.basename(os.path.abspath(save_directory))
            api = HfApi(token=kwargs.pop("token", None))
            api.create_repo(repo_id, private=kwargs.pop("private", None), exist_ok=True)
            api.upload_folder(repo_id=repo_id, folder_path=save_directory,
                              commit_message=kwargs.pop("commit_message", "Upload audio-captioning pipeline"))


def _save_scorer(scorer: CLAPScorer, directory: str, save_weights: bool) -> dict[str, Any]:
    settings = dict(scorer.settings())
    target = os.path.join(directory, CLAP_SUBFOLDER)
    if save_weights and hasattr(scorer, "save_pretrained"):
        scorer.save_pretrained(target)
        settings.update(name_or_path=CLAP_SUBFOLDER, backend=scorer.backend, subfolder=True)
    elif save_weights and getattr(scorer, "model", None) is not None and hasattr(scorer, "feature_extractor"):
        scorer.model.save_pretrained(target)
        scorer.feature_extractor.save_pretrained(target)
        scorer.tokenizer.save_pretrained(target)
        backend = "transformers" if scorer.backend in ("transformers", "laion_checkpoint") else scorer.backend
        settings.update(name_or_path=CLAP_SUBFOLDER, backend=backend, subfolder=True)
    elif not settings.get("name_or_path"):
        raise ValueError(
            f"the {type(scorer).__name__} scorer has no name_or_path to record and cannot save its weights; "
            "pass save_clap_weights=True with a scorer that can, or a Hub id / path as clap="
        )
    return settings


def read_pipeline_settings(name_or_path) -> dict[str, Any]:
    """The `audio_captioning.json` a captioner folder (or Hub repo) was saved with: default decoding options under
    `"defaults"` and the CLAP scorer settings; `{}` when there is none."""
    if not name_or_path:
        return {}
    path = None
    if os.path.isdir(name_or_path):
        candidate = os.path.join(name_or_path, PIPELINE_CONFIG_NAME)
        path = candidate if os.path.isfile(candidate) else None
    else:
        try:
            from transformers.utils import cached_file

            path = cached_file(name_or_path, PIPELINE_CONFIG_NAME, _raise_exceptions_for_missing_entries=False)
        except (OSError, ValueError):
            path = None
    if path is None:
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _resolve_saved_clap(name_or_path, saved: dict) -> str:
    if not saved.get("subfolder"):
        return saved["name_or_path"]
    if name_or_path and os.path.isdir(name_or_path):
        return os.path.join(name_or_path, saved["name_or_path"])
    from huggingface_hub import snapshot_download

    root = snapshot_download(str(name_or_path), allow_patterns=[f"{saved['name_or_path']}/*"])
    return os.path.join(root, saved["name_or_path"])


def register_audio_captioning_pipeline(pipeline_class: type = AudioCaptioningPipeline) -> None:
    """Registers `pipeline_class` as the `"audio-captioning"` task (loading the model with `AutoModel`)."""
    registered = PIPELINE_REGISTRY.supported_tasks.get(TASK) if hasattr(PIPELINE_REGISTRY, "supported_tasks") else None
    if registered is not None and registered.get("impl") is pipeline_class:
        return
    PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=pipeline_class, pt_model=AutoModel, type="multimodal")


def save_captioner(save_directory, model, processor, *, clap: Any = None, generation_config=None,
                   candidates: str | None = None, save_clap_weights: bool = True, clap_kwargs: dict | None = None,
                   **candidate_defaults) -> AudioCaptioningPipeline:
    """Writes a complete captioner folder (see `AudioCaptioningPipeline.save_pretrained`) and returns the pipeline.

    Args:
        save_directory: the folder.
        model / processor: the captioner and its processor.
        clap: a `CLAPScorer` or anything `load_clap_scorer` takes; stored with the folder.
        generation_config: a `GenerationConfig` (or dict) for plain decoding, saved as generation_config.json.
        candidates: the default candidate strategy of the loaded pipeline (`None`: plain decoding).
        save_clap_weights: copy the scorer's weights into `clap/` (otherwise only its Hub id / path is recorded).
        clap_kwargs: keyword arguments of `load_clap_scorer` when `clap` is a path.
        candidate_defaults: default `CandidateOptions` fields (e.g. `num_candidates=5`, `lm_weight` is the scorer's).

    `push_to_hub`: upload the same folder, e.g. `huggingface_hub.HfApi().upload_folder(repo_id=...,
    folder_path=save_directory)`, or `pipeline.save_pretrained(folder, push_to_hub=True, repo_id=...)`.
    """
    if generation_config is not None:
        from transformers import GenerationConfig

        if isinstance(generation_config, Mapping):
            generation_config = GenerationConfig(**generation_config)
        model.generation_config = generation_config
    pipe = AudioCaptioningPipeline(
        model=model, processor=processor, clap=clap if clap is not None else False, clap_kwargs=clap_kwargs,
        device=model.device, candidates=candidates, **candidate_defaults,
    )
    pipe.save_pretrained(save_directory, candidates=candidates, save_clap_weights=save_clap_weights)
    return pipe


__all__ = [
    "AudioCaptioningPipeline",
    "PIPELINE_CONFIG_NAME",
    "load_audio_input",
    "register_audio_captioning_pipeline",
    "save_captioner",
]
