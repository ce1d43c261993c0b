import json

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from llm_aac.train.pretrain_text_lm import PROMPT_PREFIX, build_lm_config, format_documents, pack_into_blocks, parse_arguments
from llm_aac.train.train_tokenizer import train_caption_tokenizer

CAPTIONS = ["a dog barks", "rain falls on a roof", "a bell rings twice"] * 5


@pytest.fixture(scope="module")
def tokenizer():
    return train_caption_tokenizer(CAPTIONS, vocab_size=300)


def test_pack_into_blocks(tokenizer):
    blocks = pack_into_blocks(tokenizer, CAPTIONS, block_size=8)
    stream = []
    for caption in CAPTIONS:
        stream += [tokenizer.bos_token_id] + tokenizer(caption, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert blocks.shape == (len(stream) // 8, 8)
    assert blocks.flatten().tolist() == stream[: blocks.numel()]
    short = pack_into_blocks(tokenizer, ["a dog"], block_size=64)  # shorter than one block: padded with EOS
    assert short.shape == (1, 64) and short[0, -1].item() == tokenizer.eos_token_id
    with pytest.raises(ValueError, match="block_size"):
        pack_into_blocks(tokenizer, CAPTIONS, block_size=1)


def test_format_documents():
    assert format_documents(CAPTIONS, prompt_fraction=0.0, seed=0) == CAPTIONS
    assert all(d == f"{PROMPT_PREFIX} {c}" for d, c in zip(format_documents(CAPTIONS, prompt_fraction=1.0, seed=0), CAPTIONS))
    mixed = format_documents(CAPTIONS * 20, prompt_fraction=0.5, seed=0)
    share = sum(d.startswith("USER:") for d in mixed) / len(mixed)
    assert 0.3 < share < 0.7
    with pytest.raises(ValueError, match="prompt_fraction"):
        format_documents(CAPTIONS, prompt_fraction=1.5, seed=0)


def test_build_lm_config_fits_the_tokenizer(tokenizer):
    config = build_lm_config("tiny", tokenizer)
    assert config.vocab_size == len(tokenizer)
    assert (config.bos_token_id, config.eos_token_id, config.pad_token_id) == (1, 2, 3)
    assert config.tie_word_embeddings is False
    with pytest.raises(ValueError, match="unknown preset"):
        build_lm_config("huge", tokenizer)


def test_presets_set_defaults_and_command_line_wins():
    args, training = parse_arguments(["--preset", "small", "--output_dir", "x"])
    assert (args.block_size, training.learning_rate, training.max_steps) == (512, 1e-3, 1500)
    args, training = parse_arguments(["--preset", "small", "--learning_rate", "0.01", "--output_dir", "x"])
    assert training.learning_rate == 0.01
    with pytest.raises(ValueError, match="unknown --preset"):
        parse_arguments(["--preset", "nope"])


def test_pretrained_tiny_lm_learns_and_reloads(tiny_lm_dir):
    history = json.loads((tiny_lm_dir / "log_history.json").read_text())
    losses = [e["loss"] for e in history if "loss" in e]
    evals = [e["eval_loss"] for e in history if "eval_loss" in e]
    assert losses[-1] < losses[0] - 0.5, losses
    assert evals[-1] < evals[0], evals
    assert (tiny_lm_dir / "lm_curves.png").stat().st_size > 0
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_dir)
    assert model.config.vocab_size == len(tokenizer)
    inputs = tokenizer(PROMPT_PREFIX, return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert output.shape[1] > inputs["input_ids"].shape[1]
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id


def test_no_text_source_is_an_error(tmp_path):
    from llm_aac.train import pretrain_text_lm

    with pytest.raises(ValueError, match="no caption source"):
        pretrain_text_lm.main(["--output_dir", str(tmp_path)])
    with pytest.raises(ValueError, match="validation_fraction"):
        pretrain_text_lm.main(["--synthetic_clips", "4", "--validation_fraction", "0", "--output_dir", str(tmp_path)])
