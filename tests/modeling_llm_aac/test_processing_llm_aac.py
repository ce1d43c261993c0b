"""LLMAACProcessor: placeholder expansion per clip length, labels, padding, decoding, save / load."""

import numpy as np
import pytest
import torch
from llm_aac_test_utils import tiny_config, tiny_model, tiny_tokenizer
from transformers import AutoProcessor

import modeling_llm_aac  # noqa: F401  (registers the Auto* classes)
from modeling_llm_aac.feature_extraction_llm_aac import LLMAACFeatureExtractor
from modeling_llm_aac.processing_llm_aac import DEFAULT_PROMPT, LLMAACProcessor

RATE = 16000


def make_processor(config=None, **kwargs):
    config = config if config is not None else tiny_config()
    return LLMAACProcessor(LLMAACFeatureExtractor(), tiny_tokenizer(), audio_token_settings=config, **kwargs)


def clips(seconds, seed=0):
    generator = np.random.default_rng(seed)
    return [0.1 * generator.standard_normal(int(s * RATE)).astype(np.float32) for s in seconds]


def test_placeholders_match_the_model_for_1_10_and_30_second_clips():
    config = tiny_config()
    processor = make_processor(config)
    fe = processor.feature_extractor
    audio = clips([1, 10, 30])
    inputs = processor(audio, sampling_rate=RATE)
    counts = (inputs["input_ids"] == processor.audio_token_id).sum(dim=1).tolist()
    # 98 / 998 / 2998 frames -> 7 / 63 / 188 time patches x 8 + CLS -> // 5
    assert [fe.num_frames(len(a)) for a in audio] == [98, 998, 2998]
    assert counts == [11, 101, 301]
    assert counts == [config.num_audio_tokens(fe.num_frames(len(a))) for a in audio]
    assert inputs["feature_attention_mask"].sum(dim=1).tolist() == [98, 998, 2998]
    assert inputs["input_features"].shape == (3, 3008, 128)

    model = tiny_model(audio_token_id=processor.audio_token_id)
    output = model(**inputs)
    assert output.audio_attention_mask.sum(dim=1).tolist() == counts


def test_qformer_counts_come_from_the_model_config():
    config = tiny_config("qformer")
    processor = make_processor(config)
    inputs = processor(clips([1, 10]), sampling_rate=RATE)
    counts = (inputs["input_ids"] == processor.audio_token_id).sum(dim=1).tolist()
    assert counts == [config.num_audio_tokens(98), config.num_audio_tokens(998)] == [16, 128]


def test_generation_inputs_are_left_padded_prompts():
    processor = make_processor()
    tokenizer = processor.tokenizer
    inputs = processor(clips([1, 3]), sampling_rate=RATE)
    assert "labels" not in inputs
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    assert mask[0, 0] == 0 and mask[1].all() and mask[:, -1].all()
    assert (ids[0][mask[0] == 0] == tokenizer.pad_token_id).all()
    prompt_tail = tokenizer(" Describe the audio you hear.\nASSISTANT:", add_special_tokens=False)["input_ids"]
    for row, row_mask in zip(ids, mask):
        real = row[row_mask.bool()].tolist()
        assert real[0] == tokenizer.bos_token_id
        assert real[-len(prompt_tail):] == prompt_tail


def test_captions_become_labels_on_caption_and_eos_only():
    processor = make_processor()
    tokenizer = processor.tokenizer
    captions = ["a dog barks", "rain falls on a metal roof"]
    inputs = processor(clips([1, 2]), text=captions, sampling_rate=RATE)
    ids, mask, labels = inputs["input_ids"], inputs["attention_mask"], inputs["labels"]
    assert mask[:, 0].all() and mask[0, -1] == 0  # right padding for training
    for row, caption in enumerate(captions):
        target = tokenizer(caption, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        kept = labels[row][labels[row] != -100].tolist()
        assert kept == target
        real = ids[row][mask[row].bool()].tolist()
        assert real[-len(target):] == target
        assert (labels[row][mask[row] == 0] == -100).all()
        assert (labels[row][ids[row] == processor.audio_token_id] == -100).all()
    short = processor(clips([1]), text="rain falls on a metal roof", sampling_rate=RATE, max_caption_tokens=2)
    assert (short["labels"] != -100).sum() == 3


def test_batch_decode_returns_only_the_caption():
    processor = make_processor()
    tokenizer = processor.tokenizer
    inputs = processor(clips([1, 2]), sampling_rate=RATE)
    caption_ids = tokenizer(["a dog barks", "birds chirp"], add_special_tokens=False)["input_ids"]
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    generated = torch.tensor([
        inputs["input_ids"][0].tolist() + caption_ids[0] + [eos],
        inputs["input_ids"][1].tolist() + caption_ids[1] + [eos, pad],
    ])
    assert processor.batch_decode(generated) == ["a dog barks", "birds chirp"]
    width = inputs["input_ids"].shape[1]
    assert processor.batch_decode(generated, prompt_length=width) == ["a dog barks", "birds chirp"]
    assert processor.decode(generated[0, width:]) == "a dog barks"
    custom = processor(clips([1]), sampling_rate=RATE, prompt="<audio> what sound is this ?")
    with pytest.raises(ValueError, match="prompt_length"):
        processor.batch_decode(torch.cat([custom["input_ids"], torch.tensor([caption_ids[0]])], dim=1))


def test_processor_and_model_batch_equals_one_by_one():
    processor = make_processor()
    model = tiny_model(lora={"r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
                       audio_token_id=processor.audio_token_id)
    audio = clips([1.0, 2.5, 0.6], seed=3)
    batch = processor(audio, sampling_rate=RATE)
    batched = processor.batch_decode(model.generate(**batch, max_new_tokens=5, do_sample=False))
    alone = [
        processor.decode(model.generate(**processor(clip, sampling_rate=RATE), max_new_tokens=5, do_sample=False)[0])
        for clip in audio
    ]
    assert batched == alone
    assert all(isinstance(text, str) and "ASSISTANT" not in text for text in batched)


def test_save_and_load_with_auto_processor(tmp_path):
    processor = make_processor(tiny_config("qformer"), prompt="USER: <audio> what sound is this ?\nASSISTANT:")
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, LLMAACProcessor)
    assert loaded.prompt == processor.prompt
    assert loaded.audio_token_settings == processor.audio_token_settings
    assert loaded.audio_token_id == processor.audio_token_id
    audio = clips([1, 2])
    expected, got = processor(audio, sampling_rate=RATE), loaded(audio, sampling_rate=RATE)
    for key in ("input_ids", "attention_mask", "input_features", "feature_attention_mask"):
        torch.testing.assert_close(got[key], expected[key])


def test_prompt_and_batch_errors():
    processor = make_processor()
    audio = clips([1, 2])
    with pytest.raises(ValueError, match="no audio placeholder"):
        processor(audio, sampling_rate=RATE, prompt="Describe the audio you hear.")
    with pytest.raises(ValueError, match="2 audio placeholders"):
        processor(audio[:1], sampling_rate=RATE, prompt="<audio> and <audio>: what do you hear?")
    with pytest.raises(ValueError, match="3 prompts for 2 audio clips"):
        processor(audio, sampling_rate=RATE, prompt=[DEFAULT_PROMPT] * 3)
    with pytest.raises(ValueError, match="1 captions for 2 audio clips"):
        processor(audio, text="a dog barks", sampling_rate=RATE)
    with pytest.raises(ValueError, match="audio is required"):
        processor(text="a dog barks")
    with pytest.raises(ValueError, match="no audio placeholder"):
        LLMAACProcessor(LLMAACFeatureExtractor(), tiny_tokenizer(), prompt="Describe it.")
    with pytest.raises(ValueError, match="64 bins"):
        LLMAACProcessor(LLMAACFeatureExtractor(feature_type="cwt"), tiny_tokenizer(), audio_token_settings=tiny_config())
