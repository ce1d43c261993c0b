"""Tiny CLAP building blocks for the tests: a word-level tokenizer made with the `tokenizers` library
(no hub), a tiny HTS-AT `ClapConfig`, and test audio."""

from __future__ import annotations

import numpy as np

WORDS = (
    "a dog barks loudly while car engine hums beep high low bird chirps rain falls on roof "
    "siren rises and then silence bell rings twice three times knocking door ticking clock"
).split()


def tiny_word_tokenizer(words=WORDS):
    """RoBERTa-style special tokens (<s>=0, <pad>=1, </s>=2, <unk>=3) so that ClapTextModel's
    position ids (which start after the padding index) line up."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for word in words:
        vocab.setdefault(word, len(vocab))
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=32,
    )


def tiny_clap_config(*, enable_fusion: bool = False, vocab_size: int = 64):
    """HTS-AT geometry of the real models (256 x 256 input, 64 mel bins, 4 x 4 patches, window 8)
    so that the stock 10 s / 48 kHz ClapFeatureExtractor fits, with tiny widths."""
    from transformers import ClapConfig

    return ClapConfig(
        text_config=dict(
            vocab_size=vocab_size,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=40,
            projection_dim=12,
        ),
        audio_config=dict(
            depths=[1, 1],
            num_attention_heads=[2, 2],
            patch_embeds_hidden_size=8,
            hidden_size=16,
            projection_dim=12,
            enable_fusion=enable_fusion,
        ),
        projection_dim=12,
    )


def tone(freq: float, seconds: float, rate: int, *, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
