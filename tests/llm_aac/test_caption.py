"""`llm-aac caption`: good files are captioned, unreadable ones get one error line each, exit status 1 then."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

sys.path.insert(0, str(Path(__file__).parents[1] / "modeling_llm_aac"))  # the tiny captioner of the model tests
from captioning_test_utils import audio_clips  # noqa: E402

from llm_aac.cli import main  # noqa: E402
from modeling_llm_aac.pipeline_audio_captioning import save_captioner  # noqa: E402


@pytest.fixture(scope="module")
def folder(tmp_path_factory, tiny_captioner_parts):
    model, processor = tiny_captioner_parts
    path = tmp_path_factory.mktemp("captioner") / "model"
    pipe = save_captioner(path, model, processor)
    clips = audio_clips()
    return path, pipe, clips


def test_good_corrupt_and_text_files(folder, tmp_path, capsys):
    path, pipe, clips = folder
    soundfile.write(tmp_path / "a.wav", clips[0], 16000, subtype="FLOAT")
    soundfile.write(tmp_path / "b.flac", clips[1], 16000)
    soundfile.write(tmp_path / "c.ogg", clips[2], 16000)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(200)))
    (tmp_path / "notes.txt").write_text("these are not samples\n")
    files = [tmp_path / "a.wav", tmp_path / "corrupt.wav", tmp_path / "b.flac", tmp_path / "notes.txt",
             tmp_path / "c.ogg"]

    code = main(["caption", *map(str, files), "--model", str(path), "--device", "cpu", "--batch-size", "2"])
    out, err = capsys.readouterr()
    assert code == 1
    lines = out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(files[0]), str(files[2]), str(files[4])]
    assert lines[0].split("\t")[1] == pipe(clips[0])["caption"]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2
    assert "corrupt.wav" in errors[0] and "notes.txt" in errors[1]

    code = main(["caption", str(files[0]), str(files[3]), "--model", str(path), "--device", "cpu", "--json",
                 "--candidates", "single", "--num-candidates", "3"])
    out, err = capsys.readouterr()
    assert code == 1
    results = json.loads(out)
    assert results[0]["file"] == str(files[0]) and len(results[0]["candidates"]) >= 1
    assert results[0]["caption"] == results[0]["candidates"][0]["caption"]
    assert results[1]["file"] == str(files[3]) and "could not decode" in results[1]["error"].lower()

    assert main(["caption", str(files[0]), "--model", str(path), "--device", "cpu"]) == 0
    capsys.readouterr()

    # Consensus with sampled captions (no CLAP saved: log-probability + weighted consensus decide).
    code = main(["caption", str(files[0]), "--model", str(path), "--device", "cpu", "--json", "--candidates",
                 "single", "--num-candidates", "3", "--pseudo-references", "4", "--consensus-weight", "2"])
    out, _ = capsys.readouterr()
    (result,) = json.loads(out)
    assert code == 0 and all(0.0 <= c["consensus"] <= 1.0 for c in result["candidates"])
    assert all(c["score"] == pytest.approx(c["log_prob"] + 2 * c["consensus"]) for c in result["candidates"])
    # ... sampled at another temperature: other samples, so other consensus scores of the same candidates.
    code = main(["caption", str(files[0]), "--model", str(path), "--device", "cpu", "--json", "--candidates",
                 "single", "--num-candidates", "3", "--pseudo-references", "4", "--consensus-weight", "2",
                 "--pseudo-reference-temperature", "0.2"])
    (cold,) = json.loads(capsys.readouterr()[0])
    assert code == 0 and {c["caption"] for c in cold["candidates"]} == {c["caption"] for c in result["candidates"]}
    assert [c["consensus"] for c in cold["candidates"]] != [c["consensus"] for c in result["candidates"]]
    code = main(["caption", str(files[0]), "--model", str(path), "--device", "cpu", "--candidates", "single",
                 "--pseudo-references", "4", "--pseudo-reference-temperature", "0"])
    assert code == 2 and "pseudo_reference_temperature must be a positive number" in capsys.readouterr().err


def test_missing_model_is_a_clear_error(tmp_path, capsys):
    soundfile.write(tmp_path / "a.wav", np.zeros(16000, dtype=np.float32), 16000)
    code = main(["caption", str(tmp_path / "a.wav"), "--model", str(tmp_path / "nowhere"), "--device", "cpu"])
    # a mistyped local folder or a file is named as such, not as an invalid Hub repo id
    assert code == 2
    assert "cannot load the captioner" in (err := capsys.readouterr().err) and "no such folder" in err
    code = main(["caption", str(tmp_path / "a.wav"), "--model", str(tmp_path / "a.wav"), "--device", "cpu"])
    assert code == 2 and "this is a file" in capsys.readouterr().err


def caption_a_bad_and_a_good_file(model_path, bad, good_clip, tmp_path, capsys) -> str:
    """`llm-aac caption BAD GOOD`: exit 1, the good file captioned, exactly one error line; returns that line."""
    soundfile.write(tmp_path / "a.wav", good_clip, 16000, subtype="FLOAT")
    code = main(["caption", str(bad), str(tmp_path / "a.wav"), "--model", str(model_path), "--device", "cpu"])
    out, err = capsys.readouterr()
    assert code == 1
    assert [line.split("\t")[0] for line in out.strip().splitlines()] == [str(tmp_path / "a.wav")]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    return errors[0]


def test_a_file_longer_than_the_encoder_takes_is_one_error_line(folder, tmp_path, capsys):
    path, pipe, clips = folder
    audio = pipe.model.config.audio_config
    limit_seconds = audio.max_length * audio.patch_size / 100  # 10 ms frames
    rate = 8000  # not the model's rate: the length check converts
    soundfile.write(tmp_path / "long.wav", np.zeros(int((limit_seconds + 1) * rate), dtype=np.float32) + 0.01, rate)
    error = caption_a_bad_and_a_good_file(path, tmp_path / "long.wav", clips[0], tmp_path, capsys)
    assert "long.wav" in error and "max_length" in error


def test_a_file_with_nan_samples_is_one_error_line(folder, tmp_path, capsys):
    path, pipe, clips = folder
    broken = clips[1].astype(np.float32).copy()
    broken[5] = np.nan
    soundfile.write(tmp_path / "nan.wav", broken, 16000, subtype="FLOAT")
    error = caption_a_bad_and_a_good_file(path, tmp_path / "nan.wav", clips[0], tmp_path, capsys)
    assert "nan.wav" in error and "1 NaN/Inf samples (first at index 5" in error
