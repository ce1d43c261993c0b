"""Tiny captioner parts shared by the LLM-AAC model / projector / processor tests (no hub access)."""

from __future__ import annotations

import math

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from modeling_llm_aac.configuration_eat import EATConfig
from modeling_llm_aac.configuration_llm_aac import LLMAACConfig
from modeling_llm_aac.modeling_llm_aac import LLMAACForConditionalGeneration

CAPTIONS = [
    "a dog barks while cars pass by",
    "rain falls on a metal roof",
    "a man speaks and a door closes",
    "birds chirp in the distance",
    "water runs from a tap",
]
PROMPT_TEXT = "USER: Describe the audio you hear. ASSISTANT: what sound is this ?"
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]

# Token ids used by the model-only tests (which build input_ids by hand).
PAD, BOS, EOS = 0, 1, 2
VOCAB_SIZE = 64
AUDIO_ID = 63


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Word-level tokenizer trained on a few captions; adds BOS in front like Llama's."""
    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=SPECIAL_TOKENS)
    tokenizer.train_from_iterator(CAPTIONS + [PROMPT_TEXT], trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tokenizer.token_to_id("<s>"))]
    )
    tokenizer.decoder = None
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )


def tiny_text_config(vocab_size: int = VOCAB_SIZE, tie: bool = False) -> dict:
    return dict(
        model_type="llama", hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, vocab_size=vocab_size, max_position_embeddings=512, bos_token_id=BOS,
        eos_token_id=EOS, pad_token_id=PAD, tie_word_embeddings=tie,
    )


def tiny_audio_config(**overrides) -> EATConfig:
    # max_length 768 time patches, as in EAT-base, so that 30 s clips fit.
    settings = dict(max_length=768)
    settings.update(overrides)
    return EATConfig.tiny(**settings)


TINY_QFORMER = dict(
    qformer_window_size=16, qformer_num_queries=4, qformer_hidden_size=32, qformer_num_layers=2,
    qformer_num_heads=2, qformer_intermediate_size=64,
)


def tiny_config(projector_type: str = "linear", lora: dict | None = None, tie: bool = False, **overrides) -> LLMAACConfig:
    settings = dict(projector_hidden_size=48, audio_token_id=AUDIO_ID)
    if projector_type == "qformer":
        settings.update(TINY_QFORMER)
    settings.update(overrides)
    return LLMAACConfig(
        audio_config=tiny_audio_config(), text_config=tiny_text_config(tie=tie), projector_type=projector_type,
        lora=lora, **settings,
    )


TINY_LORA = {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}


def tiny_model(projector_type: str = "linear", lora: dict | None = None, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    model = LLMAACForConditionalGeneration(tiny_config(projector_type, lora=lora, **overrides)).eval()
    if lora is not None:
        # peft starts LoRA as the identity (B = 0); random B makes the adapter matter in the tests.
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if "lora_B" in name:
                    parameter.normal_(0.0, 0.2)
    return model


def random_features(frames: list[int], bins: int = 128, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch of random features padded to a multiple of 16 frames, with the frame mask."""
    generator = torch.Generator().manual_seed(seed)
    width = 16 * math.ceil(max(frames) / 16)
    features = torch.randn(len(frames), width, bins, generator=generator)
    mask = torch.zeros(len(frames), width, dtype=torch.long)
    for row, count in enumerate(frames):
        mask[row, :count] = 1
        features[row, count:] = 0.0  # padding value of the feature extractor
    return features, mask


def prompt_batch(
    config: LLMAACConfig,
    frames: list[int],
    captions: list[list[int]] | None = None,
    prefix: tuple[int, ...] = (BOS, 5, 6),
    suffix: tuple[int, ...] = (7, 8, 9),
    padding_side: str = "left",
) -> dict[str, torch.Tensor]:
    """input_ids / attention_mask (/ labels) for clips of `frames` real frames, built without a tokenizer."""
    rows, label_rows = [], []
    for index, count in enumerate(frames):
        ids = list(prefix) + [config.audio_token_id] * config.num_audio_tokens(count) + list(suffix)
        labels = [-100] * len(ids)
        if captions is not None:
            ids += captions[index] + [EOS]
            labels += captions[index] + [EOS]
        rows.append(ids)
        label_rows.append(labels)
    longest = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), longest), PAD)
    attention_mask = torch.zeros(len(rows), longest, dtype=torch.long)
    labels = torch.full((len(rows), longest), -100)
    for index, (ids, label_row) in enumerate(zip(rows, label_rows)):
        span = slice(longest - len(ids), longest) if padding_side == "left" else slice(0, len(ids))
        input_ids[index, span] = torch.tensor(ids)
        attention_mask[index, span] = 1
        labels[index, span] = torch.tensor(label_row)
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    if captions is not None:
        batch["labels"] = labels
    return batch
