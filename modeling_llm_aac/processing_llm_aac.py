"""Processor of the LLM-AAC captioner: feature extractor + tokenizer + prompt template.

For each clip it builds `prompt-with-audio-placeholders (+ caption + EOS)`: the single `<audio>` of the
prompt becomes exactly as many placeholder tokens as the model will produce audio embeddings for that clip
(a function of the clip's real frames, `count_audio_tokens`), so that clips of different lengths batch
correctly. Captions given as `text=` become `labels` (caption + EOS; -100 on prompt, audio and padding).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from transformers import BatchFeature, ProcessorMixin

from .configuration_llm_aac import LLMAACConfig, count_audio_tokens

# SLAM-AAC's instruction, with the audio placed inside the user turn.
DEFAULT_PROMPT = "USER: <audio> Describe the audio you hear.\nASSISTANT:"
IGNORE_INDEX = -100


def ensure_audio_token(tokenizer: Any, audio_token: str = "<audio>") -> int:
    """Adds `audio_token` to `tokenizer` as a special token if it is missing (in place); returns its id."""
    if audio_token not in tokenizer.get_vocab():
        from tokenizers import AddedToken

        tokenizer.add_tokens([AddedToken(audio_token, special=True, normalized=False)], special_tokens=True)
    token_id = tokenizer.convert_tokens_to_ids(audio_token)
    if token_id is None or (token_id == tokenizer.unk_token_id and audio_token != tokenizer.unk_token):
        raise ValueError(f"could not register the audio token {audio_token!r} in the tokenizer")
    return int(token_id)


class LLMAACProcessor(ProcessorMixin):
    r"""Feature extractor + tokenizer + prompt template for [`LLMAACForConditionalGeneration`].

    Args:
        feature_extractor ([`LLMAACFeatureExtractor`]): turns waveforms into `input_features`.
        tokenizer ([`PreTrainedTokenizerBase`]): the language model's tokenizer. The audio token is added
            to it when missing, and a missing pad token is set to the EOS token (as SLAM-AAC does).
        audio_token_settings (`dict` or [`LLMAACConfig`], *optional*): what fixes the number of audio
            tokens per clip (`LLMAACConfig.audio_token_settings()`); pass the model's config. Defaults to the
            default `LLMAACConfig` (EAT-base, linear projector with stack factor 5).
        prompt (`str`, defaults to `DEFAULT_PROMPT`): the prompt template, holding `audio_token` once,
            where the audio goes (SLAM-AAC: `"USER: <audio> Describe the audio you hear.\nASSISTANT:"`).
        audio_token (`str`, defaults to `"<audio>"`): the placeholder string (taken from the config when
            `audio_token_settings` is an [`LLMAACConfig`]).
        chat_template (`str`, *optional*): kept for `ProcessorMixin` compatibility (a tokenizer's chat template
            travels with the processor); prompts come from `prompt`.
    """

    def __init__(
        self,
        feature_extractor,
        tokenizer,
        audio_token_settings: dict | LLMAACConfig | None = None,
        prompt: str = DEFAULT_PROMPT,
        audio_token: str = "<audio>",
        chat_template: str | None = None,
    ):
        if isinstance(audio_token_settings, LLMAACConfig):
            audio_token = audio_token_settings.audio_token
            audio_token_settings = audio_token_settings.audio_token_settings()
        elif audio_token_settings is None:
            audio_token_settings = LLMAACConfig().audio_token_settings()
        self.audio_token_settings = dict(audio_token_settings)
        self.audio_token = audio_token
        self.prompt = prompt
        super().__init__(feature_extractor, tokenizer, chat_template=chat_template)

        expected = set(LLMAACConfig().audio_token_settings())
        if set(self.audio_token_settings) != expected:
            raise ValueError(
                f"audio_token_settings must have exactly the keys {sorted(expected)}, "
                f"got {sorted(self.audio_token_settings)}"
            )
        bins = getattr(feature_extractor, "feature_size", None)
        if bins is not None and bins != self.audio_token_settings["num_mel_bins"]:
            raise ValueError(
                f"the feature extractor makes {bins} bins but the encoder expects "
                f"num_mel_bins={self.audio_token_settings['num_mel_bins']}"
            )
        self._check_prompt(prompt)
        self.audio_token_id = ensure_audio_token(tokenizer, audio_token)
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise ValueError("the tokenizer has neither a pad nor an EOS token; set tokenizer.pad_token")
            tokenizer.pad_token = tokenizer.eos_token
        self._tail_cache: dict[str, list[int]] = {}

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "input_features", "feature_attention_mask"]

    def _check_prompt(self, prompt: str) -> None:
        if not isinstance(prompt, str):
            raise TypeError(f"a prompt must be a string, got {type(prompt).__name__}")
        count = prompt.count(self.audio_token)
        if count == 0:
            raise ValueError(
                f"the prompt {prompt!r} has no audio placeholder {self.audio_token!r}; put it where the audio goes, "
                f"e.g. {DEFAULT_PROMPT!r}"
            )
        if count > 1:
            raise ValueError(
                f"the prompt {prompt!r} has {count} audio placeholders {self.audio_token!r} but each prompt "
                "takes exactly one clip"
            )

    def num_audio_tokens(self, num_frames: int) -> int:
        """Audio tokens (placeholders) for a clip of `num_frames` real feature frames."""
        return count_audio_tokens(num_frames, **self.audio_token_settings)

    @staticmethod
    def _per_clip(value, num_clips: int, name: str) -> list:
        values = [value] if isinstance(value, str) else list(value)
        if len(values) != num_clips:
            raise ValueError(f"got {len(values)} {name} for {num_clips} audio clips; give one per clip")
        return values

    def _prompt_ids(self, prompt: str) -> list[int]:
        self._check_prompt(prompt)
        ids = self.tokenizer(prompt, add_special_tokens=True)["input_ids"]
        found = ids.count(self.audio_token_id)
        if found != 1:
            raise ValueError(
                f"the prompt {prompt!r} tokenizes to {found} audio tokens (id {self.audio_token_id}), expected 1"
            )
        return ids

    def __call__(
        self,
        audio=None,
        text: str | list[str] | None = None,
        *,
        sampling_rate: int | None = None,
        prompt: str | list[str] | None = None,
        padding_side: str | None = None,
        max_caption_tokens: int | None = None,
        return_tensors: str | None = "pt",
        **feature_kwargs,
    ) -> BatchFeature:
        """Prepares clips (and optionally their captions) for the model.

        Args:
            audio: one clip or a batch of clips of any lengths, in any layout the feature extractor reads
                (1-D waveform, `[clips, samples]` array, list of waveforms, `datasets` audio dicts).
            text: the caption of each clip, for training; gives `labels`. `None` for generation.
            sampling_rate: the waveforms' rate (the feature extractor resamples to its own); required unless
                the clips are dicts carrying their own.
            prompt: a prompt for all clips or one per clip (default: `self.prompt`); each holds one
                audio placeholder.
            padding_side: `"left"` or `"right"`; defaults to `"left"` without captions (generation, so that
                new tokens follow every prompt directly) and `"right"` with captions.
            max_caption_tokens: cut longer captions to this many tokens (EOS not counted).
            return_tensors: `"pt"` (default), `"np"` or `None` (lists).
            feature_kwargs: forwarded to the feature extractor (`max_length`, `truncation`, ...).

        Returns:
            [`BatchFeature`] with `input_ids`, `attention_mask`, `input_features`, `feature_attention_mask` and,
            with captions, `labels`.
        """
        if audio is None:
            raise ValueError("audio is required: the processor prepares one prompt per audio clip")
        feature_kwargs.setdefault("return_attention_mask", True)
        # The feature extractor reads every accepted audio layout (arrays, lists, datasets dicts); the number
        # of clips is the batch size of its output.
        features = self.feature_extractor(
            audio, sampling_rate=sampling_rate, padding=feature_kwargs.pop("padding", True), return_tensors="pt",
            **feature_kwargs,
        )
        input_features = features["input_features"]
        feature_attention_mask = features.get("attention_mask")
        if feature_attention_mask is None:
            feature_attention_mask = torch.ones(input_features.shape[:2], dtype=torch.long, device=input_features.device)
        frames_per_clip = [int(n) for n in feature_attention_mask.sum(dim=1).tolist()]
        num_clips = len(frames_per_clip)

        prompt = prompt if prompt is not None else self.prompt
        prompts = [prompt] * num_clips if isinstance(prompt, str) else self._per_clip(prompt, num_clips, "prompts")
        captions = self._per_clip(text, num_clips, "captions") if text is not None else None
        if captions is not None and not all(isinstance(c, str) for c in captions):
            raise TypeError("captions (text=) must be strings")
        if padding_side is None:
            padding_side = "right" if captions is not None else "left"
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")

        sequences, label_rows = [], []
        for index, (clip_prompt, num_frames) in enumerate(zip(prompts, frames_per_clip)):
            ids = self._prompt_ids(clip_prompt)
            where = ids.index(self.audio_token_id)
            ids = ids[:where] + [self.audio_token_id] * self.num_audio_tokens(num_frames) + ids[where + 1:]
            labels = [IGNORE_INDEX] * len(ids)
            if captions is not None:
                caption_ids = self.tokenizer(captions[index].strip(), add_special_tokens=False)["input_ids"]
                if max_caption_tokens is not None:
                    caption_ids = caption_ids[:max_caption_tokens]
                caption_ids = caption_ids + [self.tokenizer.eos_token_id]
                ids = ids + caption_ids
                labels = labels + caption_ids
            sequences.append(ids)
            label_rows.append(labels)

        longest = max(len(ids) for ids in sequences)
        pad_id = self.tokenizer.pad_token_id
        input_ids, attention_mask, labels = [], [], []
        for ids, label_row in zip(sequences, label_rows):
            padding = longest - len(ids)
            if padding_side == "left":
                input_ids.append([pad_id] * padding + ids)
                attention_mask.append([0] * padding + [1] * len(ids))
                labels.append([IGNORE_INDEX] * padding + label_row)
            else:
                input_ids.append(ids + [pad_id] * padding)
                attention_mask.append([1] * len(ids) + [0] * padding)
                labels.append(label_row + [IGNORE_INDEX] * padding)

        data = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "input_features": input_features,
            "feature_attention_mask": feature_attention_mask,
        }
        if captions is not None:
            data["labels"] = labels
        if return_tensors is None:
            data["input_features"] = input_features.tolist()
            data["feature_attention_mask"] = torch.as_tensor(feature_attention_mask).tolist()
        return BatchFeature(data=data, tensor_type=return_tensors)

    # ------------------------------------------------------------------------------------------ decoding
    def _prompt_tail(self, prompt: str) -> list[int]:
        """Token ids that follow the audio placeholders in `prompt`, as they appear in the model input."""
        if prompt not in self._tail_cache:
            ids = self._prompt_ids(prompt)
            self._tail_cache[prompt] = ids[ids.index(self.audio_token_id) + 1:]
        return self._tail_cache[prompt]

    def strip_prompt(self, sequence, prompt_length: int | None = None) -> list[int]:
        """The generated part of one `generate` output row.

        With `prompt_length` (the model input's width) the row is cut there. Otherwise the prompt is found
        from its end: the last audio placeholder followed by the rest of the processor's prompt template.
        """
        ids = sequence.tolist() if isinstance(sequence, (torch.Tensor, np.ndarray)) else list(sequence)
        if prompt_length is not None:
            return ids[prompt_length:]
        if self.audio_token_id not in ids:
            return ids  # already only the generated tokens
        last_audio = len(ids) - 1 - ids[::-1].index(self.audio_token_id)
        tail = self._prompt_tail(self.prompt)
        after = ids[last_audio + 1:]
        if after[: len(tail)] != tail:
            raise ValueError(
                "the sequence does not continue its audio placeholders with the processor's prompt template "
                f"{self.prompt!r} (a different prompt= was used?); pass prompt_length=inputs['input_ids'].shape[1]"
            )
        return after[len(tail):]

    def batch_decode(self, sequences, prompt_length: int | None = None, skip_special_tokens: bool = True, **kwargs):
        """Decodes `generate` outputs into captions: the prompt is removed (see `strip_prompt`), special
        tokens (EOS, padding) are skipped and surrounding spaces stripped."""
        rows = [self.strip_prompt(row, prompt_length) for row in sequences]
        texts = self.tokenizer.batch_decode(rows, skip_special_tokens=skip_special_tokens, **kwargs)
        return [text.strip() for text in texts]

    def decode(self, sequence, prompt_length: int | None = None, skip_special_tokens: bool = True, **kwargs) -> str:
        """Single-row `batch_decode`."""
        return self.batch_decode([sequence], prompt_length, skip_special_tokens, **kwargs)[0]


__all__ = ["LLMAACProcessor", "DEFAULT_PROMPT", "ensure_audio_token"]
