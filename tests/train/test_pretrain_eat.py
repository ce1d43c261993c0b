import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from llm_aac.train.pretrain_eat import build_config, main, parse_overrides
from modeling_llm_aac.modeling_eat_pretraining import ema_decay_at

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EMA = dict(ema_decay=0.5, ema_end_decay=0.9, ema_anneal_end_step=40)  # a decay that visibly changes per step


def tiny_run_args(output_dir, *, max_steps, save_steps, extra=()):
    return [
        "--preset", "tiny",
        "--feature_type", "fbank",
        "--synthetic_clips", "8",
        "--synthesis_workers", "1",
        "--max_frames", "128",
        "--config_overrides", ",".join(f"{k}={v}" for k, v in EMA.items()),
        "--per_device_train_batch_size", "4",
        "--learning_rate", "2e-3",
        "--warmup_steps", "2",
        "--max_steps", str(max_steps),
        "--logging_steps", "1",
        "--save_steps", str(save_steps),
        "--dataloader_num_workers", "0",
        "--disable_tqdm", "true",
        "--output_dir", str(output_dir),
        *extra,
    ]


def split_state(path):
    state = load_file(os.path.join(path, "model.safetensors"))
    teacher = {k[len("teacher."):]: v for k, v in state.items() if k.startswith("teacher.")}
    student = {k[len("eat."):]: v for k, v in state.items() if k.startswith("eat.")}
    assert teacher and teacher.keys() == student.keys()
    return teacher, student


def assert_ema_step(previous_teacher, teacher, student, step):
    decay = ema_decay_at(step, EMA["ema_decay"], EMA["ema_end_decay"], EMA["ema_anneal_end_step"])
    moved = 0
    for name, value in teacher.items():
        expected = previous_teacher[name] if name == "embeddings.position_embeddings" else (
            decay * previous_teacher[name] + (1 - decay) * student[name]
        )
        torch.testing.assert_close(value, expected, atol=1e-6, rtol=1e-5, msg=f"{name} at step {step}")
        moved += int(not torch.equal(value, previous_teacher[name]))
    assert moved > 0


@pytest.fixture(scope="module")
def pretraining_run(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("eat-pretrain") / "run"
    assert main(tiny_run_args(output_dir, max_steps=20, save_steps=10)) == 0
    return output_dir


def test_loss_falls_and_outputs_are_written(pretraining_run):
    history = json.load(open(pretraining_run / "log_history.json"))
    losses = [entry["loss"] for entry in history if "loss" in entry]
    assert len(losses) == 20
    assert sum(losses[-4:]) / 4 < 0.95 * sum(losses[:4]) / 4
    logged = next(entry for entry in history if "loss" in entry)
    for key in ("frame_loss", "utterance_loss", "target_std", "prediction_std", "ema_decay"):
        assert key in logged
    assert logged["loss"] == pytest.approx(logged["frame_loss"] + logged["utterance_loss"], rel=1e-4)
    assert (pretraining_run / "loss_curves.png").stat().st_size > 10_000

    from transformers import AutoFeatureExtractor, AutoModel

    import modeling_llm_aac

    encoder = AutoModel.from_pretrained(pretraining_run / "encoder")
    assert isinstance(encoder, modeling_llm_aac.EATModel)
    _, student = split_state(pretraining_run)
    for name, value in encoder.state_dict().items():
        assert torch.equal(value, student[name]), name
    extractor = AutoFeatureExtractor.from_pretrained(pretraining_run / "encoder")
    assert extractor.feature_type == "fbank" and len(extractor.feature_mean) == 128  # measured per-bin statistics


def test_resume_continues_with_the_checkpointed_teacher_and_the_ema_rule(pretraining_run, tmp_path):
    def resume_to(max_steps):
        output_dir = tmp_path / f"resumed-to-{max_steps}"
        assert main(tiny_run_args(output_dir, max_steps=max_steps, save_steps=100, extra=(
            "--resume_from_checkpoint", str(pretraining_run / "checkpoint-10"),
            "--feature_cache_dir", str(pretraining_run / "feature_cache"),
        ))) == 0
        return output_dir

    to_11, to_12 = resume_to(11), resume_to(12)
    # The restored state carries the history up to step 10; the resumed run went on from step 11.
    history = json.load(open(to_12 / "log_history.json"))
    assert [entry["step"] for entry in history if "loss" in entry] == list(range(1, 13))
    logged = {entry["step"]: entry["ema_decay"] for entry in history if "ema_decay" in entry}
    assert logged[12] == pytest.approx(ema_decay_at(12, EMA["ema_decay"], EMA["ema_end_decay"], 40))
    # Step 11 moved the *checkpointed* teacher by the step-11 rule; step 12 (identical up to step 11,
    # both runs restore the same state) moved that teacher by the step-12 rule.
    previous, _ = split_state(pretraining_run / "checkpoint-10")
    for output_dir, step in ((to_11, 11), (to_12, 12)):
        teacher, student = split_state(output_dir)
        assert_ema_step(previous, teacher, student, step)
        previous = teacher


def test_time_limit_stops_and_saves_at_the_first_clock_check(pretraining_run, tmp_path):
    output_dir = tmp_path / "timed"
    assert main(tiny_run_args(output_dir, max_steps=30, save_steps=100, extra=(
        "--max_train_minutes", "1e-9",  # over from the first step; the clock is read every 10 steps
        "--feature_cache_dir", str(pretraining_run / "feature_cache"),
    ))) == 0
    history = json.load(open(output_dir / "log_history.json"))
    assert max(entry["step"] for entry in history) == 10
    assert (output_dir / "checkpoint-10").is_dir() and (output_dir / "encoder" / "config.json").is_file()


def test_stop_after_steps_keeps_the_longer_schedule(pretraining_run, tmp_path):
    output_dir = tmp_path / "stopped"
    assert main(tiny_run_args(output_dir, max_steps=20, save_steps=100, extra=(
        "--stop_after_steps", "6", "--feature_cache_dir", str(pretraining_run / "feature_cache"),
    ))) == 0
    history = json.load(open(output_dir / "log_history.json"))
    assert max(entry["step"] for entry in history) == 6
    full = {e["step"]: e for e in json.load(open(pretraining_run / "log_history.json")) if "learning_rate" in e}
    stopped = {e["step"]: e for e in history if "learning_rate" in e}
    # the same learning rate at the same step as the full 20-step run: the schedule was not compressed
    assert stopped and all(stopped[s]["learning_rate"] == pytest.approx(full[s]["learning_rate"]) for s in stopped)
    assert (output_dir / "checkpoint-6").is_dir() and (output_dir / "encoder" / "config.json").is_file()
    with pytest.raises(ValueError, match="--stop_after_steps must be >= 0"):
        main(tiny_run_args(tmp_path / "bad", max_steps=4, save_steps=100, extra=("--stop_after_steps", "-1")))


def test_precomputed_arrow_features(tmp_path):
    from llm_aac.processing.precompute import precompute_features
    from llm_aac.processing.synthetic import synthesize_corpus
    from modeling_llm_aac import LLMAACFeatureExtractor

    corpus = synthesize_corpus(6, seed=1, output_dir=tmp_path / "corpus", split_fractions={})
    precompute_features(corpus["train"], LLMAACFeatureExtractor(feature_type="fbank"), tmp_path / "features",
                        progress=False)
    run = tmp_path / "run"
    args = [
        "--preset", "tiny", "--dataset_path", str(tmp_path / "features"), "--max_frames", "96",
        "--per_device_train_batch_size", "2", "--max_steps", "2", "--logging_steps", "1",
        "--dataloader_num_workers", "0", "--disable_tqdm", "true", "--output_dir", str(run),
    ]
    assert main(args) == 0
    history = json.load(open(run / "log_history.json"))
    assert all(torch.isfinite(torch.tensor(e["loss"])) for e in history if "loss" in e)
    with pytest.raises(ValueError, match="holds 'fbank' features"):
        main(args[:2] + ["--feature_type", "cwt"] + args[2:])


def test_on_the_fly_audio_corpus(tmp_path):
    from llm_aac.processing.synthetic import synthesize_corpus

    synthesize_corpus(6, seed=2, output_dir=tmp_path / "corpus", split_fractions={})
    run = tmp_path / "run"
    assert main([
        "--preset", "tiny", "--feature_type", "cwt", "--dataset_path", str(tmp_path / "corpus"),
        "--max_frames", "96", "--per_device_train_batch_size", "2", "--max_steps", "1", "--logging_steps", "1",
        "--dataloader_num_workers", "0", "--disable_tqdm", "true", "--output_dir", str(run),
    ]) == 0
    config = json.load(open(run / "encoder" / "config.json"))
    assert config["num_mel_bins"] == 64  # the scalogram's bins


def test_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="exactly one input"):
        main(["--preset", "tiny", "--output_dir", str(tmp_path)])
    with pytest.raises(ValueError, match="--preset"):
        main(["--preset", "huge", "--synthetic_clips", "2", "--output_dir", str(tmp_path)])
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides("ema_decay")
    assert parse_overrides("ema_decay=0.999, target_top_k_layers=null,utterance_loss_reduction=mean") == {
        "ema_decay": 0.999, "target_top_k_layers": None, "utterance_loss_reduction": "mean"}
    small = build_config("small", 64)
    assert (small.hidden_size, small.num_hidden_layers, small.num_mel_bins) == (384, 12, 64)
    assert build_config("large", 128).decoder_kernel_size == 5


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_process_data_parallel_run(pretraining_run, tmp_path):
    """`torchrun` with 2 CPU processes (gloo), as `accelerate launch` runs it on 2 GPUs: each update takes a batch on
    every process (twice the clips of the 1-process run per step), rank 0 alone writes the outputs, and the saved
    teacher follows the EMA rule of the gradient-synchronised student."""
    output_dir = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(free_port()), os.path.join(REPO, "train", "pretrain_eat.py"),
        *tiny_run_args(output_dir, max_steps=4, save_steps=3, extra=(
            "--ddp_backend", "gloo", "--feature_cache_dir", str(pretraining_run / "feature_cache"),
        )),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert result.stderr.count("encoder saved to") == 1, result.stderr[-4000:]

    history = json.load(open(output_dir / "log_history.json"))
    single = json.load(open(pretraining_run / "log_history.json"))
    epoch_per_step = {entry["step"]: entry["epoch"] for entry in history if "loss" in entry}
    assert sorted(epoch_per_step) == [1, 2, 3, 4]
    single_epoch_1 = next(entry["epoch"] for entry in single if entry.get("step") == 1 and "loss" in entry)
    assert epoch_per_step[1] == pytest.approx(2 * single_epoch_1)  # the 8 clips are split over the 2 processes
    assert all(entry["loss"] == entry["loss"] for entry in history if "loss" in entry)  # finite, not NaN

    previous, _ = split_state(output_dir / "checkpoint-3")
    teacher, student = split_state(output_dir)
    assert_ema_step(previous, teacher, student, 4)
