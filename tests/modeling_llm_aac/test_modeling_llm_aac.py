"""LLMAACForConditionalGeneration on a tiny EAT + tiny Llama: loss, gradients, generation, batching, LoRA."""

import json
import os

import pytest
import torch
from llm_aac_test_utils import (
    AUDIO_ID,
    EOS,
    TINY_LORA,
    prompt_batch,
    random_features,
    tiny_audio_config,
    tiny_config,
    tiny_model,
    tiny_text_config,
    tiny_tokenizer,
)
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

import modeling_llm_aac  # noqa: F401  (registers the Auto* classes)
from modeling_llm_aac.configuration_llm_aac import LLMAACConfig
from modeling_llm_aac.modeling_eat import EATModel
from modeling_llm_aac.modeling_llm_aac import LLMAACForConditionalGeneration

CAPTIONS = [[10, 11, 12], [13, 14, 15, 16, 17]]


def inputs_for(config, frames, captions=None, padding_side="left", seed=0):
    features, feature_mask = random_features(frames, seed=seed)
    batch = prompt_batch(config, frames, captions=captions, padding_side=padding_side)
    return {**batch, "input_features": features, "feature_attention_mask": feature_mask}


def test_forward_loss_covers_caption_tokens_only():
    model = tiny_model("linear", lora=TINY_LORA)
    frames = [98, 230]
    batch = inputs_for(model.config, frames, captions=CAPTIONS, padding_side="right")
    output = model(**batch)
    assert output.logits.shape == (*batch["input_ids"].shape, model.config.text_config.vocab_size)
    assert int(output.audio_attention_mask.sum()) == sum(model.config.num_audio_tokens(f) for f in frames)

    # Reference: next-token cross-entropy over the caption + EOS positions only.
    logits, labels = output.logits[:, :-1], batch["labels"][:, 1:]
    keep = labels != -100
    assert int(keep.sum()) == sum(len(c) + 1 for c in CAPTIONS)
    expected = torch.nn.functional.cross_entropy(logits[keep], labels[keep])
    torch.testing.assert_close(output.loss, expected)


def test_backward_reaches_only_trainable_parts():
    model = tiny_model("qformer", lora=TINY_LORA).train()
    batch = inputs_for(model.config, [98, 230], captions=CAPTIONS, padding_side="right")
    model(**batch).loss.backward()
    for name, parameter in model.named_parameters():
        trainable = name.startswith("projector.") or "lora_" in name
        assert parameter.requires_grad == trainable, name
        if trainable:
            assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        else:
            assert parameter.grad is None, name
    assert not model.encoder.training  # a frozen encoder stays in eval mode while the rest trains


def test_unfrozen_encoder_and_language_model_get_gradients():
    model = tiny_model("linear", freeze_encoder=False, freeze_language_model=False).train()
    batch = inputs_for(model.config, [98, 230], captions=CAPTIONS)
    model(**batch).loss.backward()
    assert all(p.grad is not None for p in model.encoder.parameters())
    assert model.language_model.get_input_embeddings().weight.grad is not None
    with pytest.raises(ValueError, match="freeze_language_model"):
        tiny_config(lora=TINY_LORA, freeze_language_model=False)


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    model = tiny_model("linear", lora=TINY_LORA).train()
    batch = inputs_for(model.config, [98, 230], captions=CAPTIONS)
    loss = model(**batch).loss
    loss.backward()
    reference = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    # transformers 5.24 renamed it; 5.17 only has the old name.
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable()
    checkpointed = model(**batch).loss
    checkpointed.backward()
    torch.testing.assert_close(checkpointed, loss)
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            torch.testing.assert_close(parameter.grad, reference[name], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("projector_type", ["linear", "qformer"])
def test_mixed_length_batch_equals_one_by_one(projector_type):
    model = tiny_model(projector_type)
    frames = [98, 517, 300]
    batch = inputs_for(model.config, frames)
    batched = model(**batch).logits
    generated = model.generate(**batch, max_new_tokens=6, do_sample=False)
    width = batch["input_ids"].shape[1]
    for row, count in enumerate(frames):
        frame_width = 16 * -(-count // 16)
        single = {
            "input_features": batch["input_features"][row : row + 1, :frame_width],
            **prompt_batch(model.config, [count]),
        }
        alone = model(**single).logits
        length = alone.shape[1]
        torch.testing.assert_close(batched[row, -length:], alone[0], atol=1e-4, rtol=1e-4)
        alone_generated = model.generate(**single, max_new_tokens=6, do_sample=False)
        assert generated[row, width:].tolist() == alone_generated[0, length:].tolist()


def test_generate_greedy_beam_sampling_and_several_returns():
    model = tiny_model("qformer", lora=TINY_LORA)
    batch = inputs_for(model.config, [98, 300])
    width = batch["input_ids"].shape[1]

    greedy = model.generate(**batch, max_new_tokens=5, do_sample=False)
    assert greedy.shape[0] == 2 and greedy.shape[1] <= width + 5
    assert torch.equal(greedy[:, :width], batch["input_ids"])
    assert AUDIO_ID not in greedy[:, width:].tolist()
    uncached = model.generate(**batch, max_new_tokens=5, do_sample=False, use_cache=False)
    assert torch.equal(uncached, greedy)

    beams = model.generate(**batch, max_new_tokens=5, num_beams=3, num_return_sequences=2, do_sample=False)
    assert beams.shape[0] == 4
    assert torch.equal(beams[0::2, :width], batch["input_ids"]) and torch.equal(beams[1::2, :width], batch["input_ids"])

    torch.manual_seed(0)
    sampled = model.generate(**batch, max_new_tokens=5, do_sample=True, top_k=10, num_return_sequences=3)
    assert sampled.shape[0] == 6


def test_thirty_second_clip_is_encoded_whole():
    model = tiny_model("linear")
    frames = [2998]  # 30 s of 16 kHz audio at a 10 ms hop (kaldi framing)
    batch = inputs_for(model.config, frames)
    assert batch["input_features"].shape[1] == 3008
    output = model(**batch)
    # 188 time patches x 8 frequency patches + CLS = 1505 encoder tokens -> 301 audio tokens.
    assert model.config.num_encoder_tokens(2998) == 1505
    assert int(output.audio_attention_mask.sum()) == 301 == model.config.num_audio_tokens(2998)


def test_encoder_layer_selects_the_hidden_state():
    model = tiny_model("linear", encoder_layer=1)
    features, mask = random_features([200])
    audio, _ = model.get_audio_features(features, mask)
    hidden = model.encoder(features, attention_mask=mask, output_hidden_states=True)
    expected, _ = model.projector(hidden.hidden_states[1], hidden.attention_mask)
    torch.testing.assert_close(audio, expected)
    with pytest.raises(ValueError, match="encoder_layer"):
        tiny_config(encoder_layer=5)


def test_placeholder_mismatches_raise_clear_errors():
    model = tiny_model("linear")
    config = model.config
    batch = inputs_for(config, [98, 230])
    with pytest.raises(ValueError, match=r"row 0: 0 placeholders vs 11 audio tokens; row 1: 0 placeholders vs 24"):
        model(**{**batch, "input_ids": batch["input_ids"].masked_fill(batch["input_ids"] == AUDIO_ID, 5)})
    extra = prompt_batch(config, [98, 230], prefix=(1, AUDIO_ID, AUDIO_ID))
    with pytest.raises(ValueError, match=r"row 0: 13 placeholders vs 11 audio tokens"):
        model(**{**batch, **extra})
    with pytest.raises(ValueError, match="no input_features"):
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    with pytest.raises(ValueError, match="2 sequences"):
        model(**{**batch, "input_features": batch["input_features"][:1], "feature_attention_mask": None})


def test_lora_save_load_round_trip_and_merge(tmp_path):
    model = tiny_model("qformer", lora=TINY_LORA, tie=True)
    batch = inputs_for(model.config, [98, 300])
    reference = model(**batch).logits
    model.save_pretrained(tmp_path / "lora")
    saved = json.loads((tmp_path / "lora" / "config.json").read_text())
    assert saved["lora"]["r"] == TINY_LORA["r"] and saved["model_type"] == "llm_aac"

    reloaded = AutoModel.from_pretrained(tmp_path / "lora")
    assert isinstance(reloaded, LLMAACForConditionalGeneration) and reloaded.has_lora
    torch.testing.assert_close(reloaded(**batch).logits, reference)
    trainable = {n for n, p in reloaded.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("projector.") or "lora_" in n for n in trainable)

    reloaded.merge_lora()
    assert not reloaded.has_lora and reloaded.config.lora is None
    torch.testing.assert_close(reloaded(**batch).logits, reference, atol=1e-5, rtol=1e-5)
    reloaded.save_pretrained(tmp_path / "merged")
    merged = LLMAACForConditionalGeneration.from_pretrained(tmp_path / "merged")
    assert not merged.has_lora
    torch.testing.assert_close(merged(**batch).logits, reference, atol=1e-5, rtol=1e-5)
    assert merged.get_input_embeddings().weight is merged.get_output_embeddings().weight
    with pytest.raises(ValueError, match="no LoRA adapter"):
        merged.merge_lora()


def test_from_pretrained_parts_composes_saved_encoder_and_language_model(tmp_path):
    torch.manual_seed(0)
    EATModel(tiny_audio_config()).save_pretrained(tmp_path / "eat")
    tokenizer = tiny_tokenizer()
    text_config = AutoConfig.for_model(**tiny_text_config(vocab_size=len(tokenizer)))
    AutoModelForCausalLM.from_config(text_config).save_pretrained(tmp_path / "lm")
    tokenizer.save_pretrained(tmp_path / "lm")

    model = LLMAACForConditionalGeneration.from_pretrained_parts(
        encoder=tmp_path / "eat", language_model=str(tmp_path / "lm"), projector_type="qformer",
        projector_options={"qformer_hidden_size": 32, "qformer_num_heads": 2, "qformer_intermediate_size": 64},
        lora=True,
    )
    config = model.config
    assert config.lora == {"r": 8, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}
    assert config.qformer_hidden_size == 32 and config.projector_type == "qformer"
    # The audio token was added to the language model's tokenizer and the embeddings grew by one row.
    assert config.audio_token_id == len(tokenizer) and config.text_config.vocab_size == len(tokenizer) + 1
    assert model.get_input_embeddings().num_embeddings == len(tokenizer) + 1
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    loaded_eat = EATModel.from_pretrained(tmp_path / "eat")
    torch.testing.assert_close(model.encoder.embeddings.cls_token, loaded_eat.embeddings.cls_token)

    batch = inputs_for(config, [98, 300])
    reference = model(**batch).logits
    model.save_pretrained(tmp_path / "captioner")
    files = set(os.listdir(tmp_path / "captioner"))
    assert {"config.json", "model.safetensors", "configuration_llm_aac.py", "modeling_llm_aac.py"} <= files
    assert json.loads((tmp_path / "captioner" / "config.json").read_text())["auto_map"]["AutoModel"].endswith(
        "LLMAACForConditionalGeneration")
    restored = AutoModel.from_pretrained(tmp_path / "captioner")
    torch.testing.assert_close(restored(**batch).logits, reference)


def test_config_round_trip_and_validation(tmp_path):
    config = tiny_config("qformer", lora=TINY_LORA)
    config.save_pretrained(tmp_path)
    restored = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(restored, LLMAACConfig)
    without_path = lambda c: {k: v for k, v in c.to_dict().items() if k != "_name_or_path"}  # noqa: E731
    assert without_path(restored) == without_path(config)
    assert restored.num_audio_tokens(517) == config.num_audio_tokens(517)
    with pytest.raises(ValueError, match="model_type"):
        LLMAACConfig(text_config={"hidden_size": 8})
    with pytest.raises(ValueError, match="lora"):
        LLMAACConfig(lora={"r": 0})
    default = LLMAACConfig()
    assert default.text_config.hidden_size == 4096 and default.audio_config.hidden_size == 768
    assert EOS == default.text_config.eos_token_id


def test_add_lora_after_a_projector_only_stage(tmp_path):
    model = tiny_model("linear")
    assert {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad} == {"projector"}
    batch = inputs_for(model.config, [98, 300])
    before = model(**batch).logits
    model.add_lora({"r": 2, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]})
    assert model.config.lora["r"] == 2 and model.config.lora["lora_alpha"] == 32
    torch.testing.assert_close(model(**batch).logits, before)  # LoRA starts as the identity
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("o_proj.lora_A" in n for n in trainable)
    assert all(n.startswith("projector.") or "lora_" in n for n in trainable)
    model.save_pretrained(tmp_path)
    reloaded = LLMAACForConditionalGeneration.from_pretrained(tmp_path)
    assert {n for n, p in reloaded.named_parameters() if p.requires_grad} == trainable
    with pytest.raises(ValueError, match="already carries"):
        reloaded.add_lora(True)
    with pytest.raises(ValueError, match="no_such_proj"):
        tiny_model("linear", lora={"target_modules": ["no_such_proj"]})
