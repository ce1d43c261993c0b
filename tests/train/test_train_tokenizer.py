import csv
import json

import pytest
from transformers import AutoTokenizer

from llm_aac.train import train_tokenizer
from llm_aac.train.caption_text import clean_captions, collect_captions, read_caption_file, synthetic_captions
from llm_aac.train.train_tokenizer import train_caption_tokenizer

CAPTIONS = [
    "A dog barks twice while cars pass by.",
    "Rain falls steadily on a metal roof.",
    "Three high pitched beeps sound, then a siren rises in pitch.",
    "A bell chimes three times over a quiet hiss.",
] * 10


@pytest.fixture(scope="module")
def tokenizer():
    return train_caption_tokenizer(CAPTIONS, vocab_size=400)


def test_special_tokens_are_llama_like_and_audio_is_one_token(tokenizer):
    assert (tokenizer.unk_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (0, 1, 2, 3)
    audio_id = tokenizer.convert_tokens_to_ids("<audio>")
    assert audio_id == 4
    assert "<audio>" in tokenizer.all_special_tokens
    ids = tokenizer("USER: <audio> Describe the audio you hear.\nASSISTANT:")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1
    assert ids.count(audio_id) == 1
    assert tokenizer.eos_token_id not in ids  # EOS is appended by the processor after the caption, not here


def test_round_trip_and_unseen_text(tokenizer):
    for text in CAPTIONS[:4] + ["Ünïcode and digits 1234 never seen!"]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.unk_token_id not in ids  # byte-level: no unknown token for any input
        assert tokenizer.decode(ids, skip_special_tokens=True).strip() == text
    # merges learned: a frequent caption is far shorter than its byte count
    assert len(tokenizer(CAPTIONS[0], add_special_tokens=False)["input_ids"]) < len(CAPTIONS[0]) / 2


def test_save_and_reload_with_auto_tokenizer(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "USER: <audio> Describe the audio you hear.\nASSISTANT: " + CAPTIONS[2]
    assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert (loaded.bos_token, loaded.eos_token, loaded.pad_token, loaded.unk_token) == ("<s>", "</s>", "<pad>", "<unk>")
    assert len(loaded) == len(tokenizer)


def test_lowercase_option():
    lowered = train_caption_tokenizer(CAPTIONS, vocab_size=300, lowercase=True)
    assert lowered("A DOG")["input_ids"] == lowered("a dog")["input_ids"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"vocab_size": 100}, "vocab_size must be an integer >= 261"),
        ({"min_frequency": 0}, "min_frequency must be a positive integer"),
        ({"audio_token": "<s>"}, "collides"),
    ],
)
def test_bad_settings_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        train_caption_tokenizer(CAPTIONS, **kwargs)


def test_no_text_raises():
    with pytest.raises(ValueError, match="at least one non-empty text"):
        train_caption_tokenizer(["", "   "], vocab_size=300)


def test_caption_files(tmp_path):
    clotho = tmp_path / "clotho_captions_development.csv"
    with open(clotho, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file_name"] + [f"caption_{i}" for i in range(1, 6)])
        writer.writerow(["a.wav", "one", "two", "three", "four", "five"])
    audiocaps = tmp_path / "train.csv"
    with open(audiocaps, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["audiocap_id", "youtube_id", "start_time", "caption"])
        writer.writerow(["1", "abc", "30", "  A man   speaks  "])
    text = tmp_path / "captions.txt"
    text.write_text("first caption\n\nsecond caption\n")
    jsonl = tmp_path / "captions.jsonl"
    jsonl.write_text(json.dumps({"captions": ["x y", "z"]}) + "\n" + json.dumps({"caption": "w"}) + "\n")
    assert read_caption_file(clotho) == ["one", "two", "three", "four", "five"]
    assert read_caption_file(audiocaps) == ["A man speaks"]
    assert read_caption_file(text) == ["first caption", "second caption"]
    assert read_caption_file(jsonl) == ["x y", "z", "w"]
    bad = tmp_path / "bad.csv"
    bad.write_text("file_name,label\na.wav,dog\n")
    with pytest.raises(ValueError, match="no caption column"):
        read_caption_file(bad)
    with pytest.raises(ValueError, match="does not exist"):
        read_caption_file(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="no caption source"):
        collect_captions()
    with pytest.raises(TypeError, match="must be strings"):
        clean_captions(["ok", 3])


def test_synthetic_captions_are_the_corpus_captions():
    from llm_aac.processing.synthetic import generate_clip

    captions = synthetic_captions(3, seed=0)
    assert len(captions) == 3 and all(len(five) == 5 for five in captions)
    assert captions[2] == generate_clip(0, 2, "train", with_audio=False)["captions"]


def test_main_writes_a_loadable_tokenizer(tmp_path, tiny_corpus_dir):
    text = tmp_path / "extra.txt"
    text.write_text("an extra caption about a kettle whistling\n")
    output = tmp_path / "tok"
    assert train_tokenizer.main([
        "--corpus_path", str(tiny_corpus_dir), "--synthetic_clips", "5", "--caption_files", str(text),
        "--vocab_size", "300", "--output_dir", str(output),
    ]) == 0
    loaded = AutoTokenizer.from_pretrained(output)
    assert loaded.convert_tokens_to_ids("<audio>") == 4
