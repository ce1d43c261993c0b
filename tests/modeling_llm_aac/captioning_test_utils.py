"""A tiny captioner + processor with a real (word-level) tokenizer, test audio and a fixed CLAP scorer, shared by
the candidate, pipeline, remote-code and CLI tests (no hub access)."""

from __future__ import annotations

import numpy as np
import torch
from llm_aac_test_utils import tiny_audio_config, tiny_text_config, tiny_tokenizer
from transformers import AutoConfig

from modeling_llm_aac.clap_scoring import CLAPScorer
from modeling_llm_aac.feature_extraction_llm_aac import LLMAACFeatureExtractor
from modeling_llm_aac.modeling_llm_aac import LLMAACForConditionalGeneration
from modeling_llm_aac.processing_llm_aac import LLMAACProcessor

# The processor's default prompt holds words the tiny tokenizer does not know (<unk>), which is fine.
PROMPT = "USER: <audio> Describe the audio you hear. ASSISTANT:"


def tiny_captioner(seed: int = 0, eos_boost: float = 1.6):
    """(model, processor): tiny EAT + tiny Llama over the word-level test vocabulary.

    `eos_boost` scales the EOS row of the output layer so that random weights end captions at varied lengths
    (finished beams, early stopping and padding all get exercised)."""
    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed)
    text_config = dict(tiny_text_config(vocab_size=len(tokenizer) + 1))
    model_type = text_config.pop("model_type")
    model = LLMAACForConditionalGeneration.from_pretrained_parts(
        encoder=tiny_audio_config(),
        language_model=AutoConfig.for_model(model_type, **text_config),
        tokenizer=tokenizer,
        projector_options={"projector_hidden_size": 48},
    )
    eos = tokenizer.eos_token_id
    with torch.no_grad():
        model.get_output_embeddings().weight[eos] *= eos_boost
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.max_new_tokens = 12
    model.generation_config.num_beams = 3
    processor = LLMAACProcessor(LLMAACFeatureExtractor(), tokenizer, audio_token_settings=model.config, prompt=PROMPT)
    return model.eval(), processor


def audio_clips(seed: int = 0, seconds=(1.0, 2.3, 1.6), rate: int = 16000) -> list[np.ndarray]:
    """Noise bursts and tones of different lengths (so that batches need padding)."""
    rng = np.random.default_rng(seed)
    clips = []
    for index, duration in enumerate(seconds):
        t = np.arange(int(duration * rate)) / rate
        tone = 0.3 * np.sin(2 * np.pi * (220 + 110 * index) * t)
        clips.append((tone + 0.05 * rng.standard_normal(t.size)).astype(np.float32))
    return clips


class LengthPreferringScorer(CLAPScorer):
    """A fixed CLAP stand-in: similarity grows with the caption's number of characters (ties: earlier wins),
    so the caption it prefers is known without any model. Audio embeddings are constant."""

    backend = "length_test"

    @property
    def sampling_rate(self) -> int:
        return 16000

    def _encode_clips(self, clips, sampling_rate):
        self.rates_seen = getattr(self, "rates_seen", []) + [sampling_rate]
        return torch.tensor([[1.0, 0.0]] * len(clips))

    def _encode_texts(self, texts):
        # angle shrinks as the text grows: cos(angle) increases with length
        angles = torch.tensor([1.5 / (1 + len(t)) for t in texts])
        return torch.stack([angles.cos(), angles.sin()], dim=1)
