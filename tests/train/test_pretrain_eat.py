import json
import logging
import os
import socket
import subprocess
import sys
import types

import pytest
import torch
from safetensors.torch import load_file

from llm_aac.train import pretrain_eat
from llm_aac.train.pretrain_eat import (
    BF16_NUMERICS_LEVERS,
    apply_compile_tuning,
    apply_numerics_levers,
    build_config,
    main,
    parse_arguments,
    parse_overrides,
    training_numerics_levers,
)
from modeling_llm_aac.modeling_eat import EATLayerNorm
from modeling_llm_aac.modeling_eat_pretraining import EATForPreTraining, ema_decay_at

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "modeling_llm_aac"))  # the autocast helpers of the model tests
from autocast_test_utils import cuda_layer_norm_autocast_rule  # noqa: E402
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
    with pytest.raises(ValueError, match="add --torch_compile"):
        main(["--preset", "tiny", "--synthetic_clips", "2", "--coordinate_descent_tuning", "--output_dir", str(tmp_path)])
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


# ---- bf16 numerics levers: on by default under bf16, off with the switch, in fp32 and fp16

def lever_state(model) -> dict:
    """Each numerics lever's setting in a pretraining model: the set of its LayerNorms' flags, the decoder's flag."""
    norms = {m.keep_autocast_dtype for m in model.modules() if isinstance(m, EATLayerNorm)}
    return {"layer_norm_in_autocast_dtype": norms, "bias_in_product_dtype": model.decoder.bias_in_product_dtype}


LEVERS_ON = {"layer_norm_in_autocast_dtype": {True}, "bias_in_product_dtype": True}
LEVERS_OFF = {"layer_norm_in_autocast_dtype": {False}, "bias_in_product_dtype": False}
BF16_ON_CPU = ("--bf16", "true", "--use_cpu", "true")  # CPU bf16 autocast: a CPU refuses --bf16 without --use_cpu


@pytest.mark.parametrize(("extra", "expected"), [
    (BF16_ON_CPU, BF16_NUMERICS_LEVERS),
    (BF16_ON_CPU + ("--bf16_numerics_levers", "false"), ()),
    (BF16_ON_CPU + ("--no_bf16_numerics_levers",), ()),
    (("--bf16", "false"), ()),
    ((), ()),
])
def test_numerics_levers_follow_the_mixed_precision(tmp_path, extra, expected):
    args, training_args = parse_arguments(tiny_run_args(tmp_path, max_steps=1, save_steps=1, extra=extra))
    assert training_numerics_levers(training_args, enabled=args.bf16_numerics_levers) == expected


def test_numerics_levers_stay_off_in_fp16_and_read_accelerate_without_a_resolved_precision(monkeypatch):
    assert training_numerics_levers(types.SimpleNamespace(mixed_precision="fp16")) == ()
    assert training_numerics_levers(types.SimpleNamespace(mixed_precision="bf16")) == BF16_NUMERICS_LEVERS
    # Training arguments without `mixed_precision` (older transformers): --fp16 / --bf16, else accelerate's setting.
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    older = types.SimpleNamespace(fp16=False, bf16=False)
    assert training_numerics_levers(older) == BF16_NUMERICS_LEVERS
    assert training_numerics_levers(older, enabled=False) == ()
    assert training_numerics_levers(types.SimpleNamespace(fp16=True, bf16=False)) == ()
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")
    assert training_numerics_levers(older) == ()


def test_applied_levers_are_the_modeling_options_without_touching_the_config():
    """Set on a default model, the levers run exactly what `EATConfig(layer_norm_in_autocast_dtype=True)` plus
    `decoder.bias_in_product_dtype = True` run (what the benchmark measured), and the config keeps its default."""
    torch.manual_seed(0)
    applied = EATForPreTraining(build_config("tiny", 64)).train()
    untouched = EATForPreTraining(build_config("tiny", 64)).train()
    configured = EATForPreTraining(build_config("tiny", 64, {"layer_norm_in_autocast_dtype": True})).train()
    configured.decoder.bias_in_product_dtype = True
    for model in (untouched, configured):
        model.load_state_dict(applied.state_dict())
    apply_numerics_levers(applied, ())
    assert lever_state(applied) == LEVERS_OFF
    apply_numerics_levers(applied, BF16_NUMERICS_LEVERS)
    assert lever_state(applied) == LEVERS_ON and lever_state(configured) == LEVERS_ON
    assert applied.config.layer_norm_in_autocast_dtype is False
    with pytest.raises(ValueError, match="unknown numerics levers.*'fp8'"):
        apply_numerics_levers(applied, ("fp8",))

    features = torch.randn(2, 64, 64)
    losses = {}
    for name, model in (("applied", applied), ("untouched", untouched), ("configured", configured)):
        model.decoder.conv_implementation = "banded_matmul"  # the compiled path, where the bias lever acts
        torch.manual_seed(1)  # the same masks and decoder noise
        with torch.autocast("cpu", dtype=torch.bfloat16), cuda_layer_norm_autocast_rule():
            losses[name] = model(features).loss
    assert torch.equal(losses["applied"], losses["configured"])
    assert not torch.equal(losses["applied"], losses["untouched"])  # the levers do change the bf16 numerics


@pytest.fixture
def recorded_levers(monkeypatch):
    """The lever state of the model each training step of `main` ran, recorded at its first step."""
    seen: list[dict] = []
    make_trainer_class = pretrain_eat._make_trainer_class

    def recording_trainer_class():
        from llm_aac.train.ema import unwrap_model

        class RecordingTrainer(make_trainer_class()):
            def compute_loss(self, model, inputs, *args, **kwargs):
                if not seen:
                    seen.append(lever_state(unwrap_model(model)))
                return super().compute_loss(model, inputs, *args, **kwargs)

        return RecordingTrainer

    monkeypatch.setattr(pretrain_eat, "_make_trainer_class", recording_trainer_class)
    return seen


def saved_layer_norm_settings(run_dir) -> dict:
    """`layer_norm_in_autocast_dtype` of every config the run saved, and of the reloaded encoder's LayerNorms."""
    from transformers import AutoConfig, AutoModel

    import modeling_llm_aac  # noqa: F401  (registers the Auto classes)

    folders = {"output_dir": run_dir, "encoder": run_dir / "encoder"}
    folders.update({folder.name: folder for folder in run_dir.glob("checkpoint-*")})
    settings = {name: AutoConfig.from_pretrained(path).layer_norm_in_autocast_dtype for name, path in folders.items()}
    encoder = AutoModel.from_pretrained(run_dir / "encoder")
    settings["encoder modules"] = {m.keep_autocast_dtype for m in encoder.modules() if isinstance(m, EATLayerNorm)}
    return settings


@pytest.mark.parametrize(("extra", "expected", "message"), [
    (BF16_ON_CPU, LEVERS_ON, "bf16 numerics levers on: layer_norm_in_autocast_dtype, bias_in_product_dtype "
                             "(--bf16_numerics_levers false for autocast's standard numerics)"),
    (BF16_ON_CPU + ("--bf16_numerics_levers", "false"), LEVERS_OFF,
     "bf16 numerics levers off (--bf16_numerics_levers false)"),
    ((), LEVERS_OFF, "bf16 numerics levers off (mixed precision 'no')"),
], ids=["bf16", "bf16-switched-off", "fp32"])
def test_training_runs_with_the_levers_and_saves_standard_numerics(
        pretraining_run, tmp_path, recorded_levers, caplog, extra, expected, message):
    output_dir = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="pretrain_eat"):
        assert main(tiny_run_args(output_dir, max_steps=2, save_steps=2, extra=(
            "--feature_cache_dir", str(pretraining_run / "feature_cache"), *extra))) == 0
    assert recorded_levers == [expected]
    assert message in caplog.messages
    assert saved_layer_norm_settings(output_dir) == {
        "output_dir": False, "encoder": False, "checkpoint-2": False, "encoder modules": {False}}


def test_bf16_run_resumes_with_the_levers(pretraining_run, tmp_path, recorded_levers):
    cache = ("--feature_cache_dir", str(pretraining_run / "feature_cache"))
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    assert main(tiny_run_args(full, max_steps=4, save_steps=2, extra=(*BF16_ON_CPU, *cache))) == 0
    recorded_levers.clear()
    assert main(tiny_run_args(resumed, max_steps=4, save_steps=100, extra=(
        *BF16_ON_CPU, *cache, "--resume_from_checkpoint", str(full / "checkpoint-2")))) == 0
    assert recorded_levers == [LEVERS_ON]  # the checkpoint's config (default False) did not turn them off
    history = json.load(open(resumed / "log_history.json"))
    assert [entry["step"] for entry in history if "loss" in entry] == [1, 2, 3, 4]
    assert saved_layer_norm_settings(resumed) == {
        "output_dir": False, "encoder": False, "checkpoint-4": False, "encoder modules": {False}}
    # The resumed steps 3-4 are the uninterrupted run's steps 3-4: same state, same numerics.
    full_state, resumed_state = load_file(full / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert full_state.keys() == resumed_state.keys()
    for name, value in full_state.items():
        torch.testing.assert_close(resumed_state[name], value, atol=0, rtol=0, msg=name)


@pytest.mark.parametrize(("device", "expected"), [("cuda", BF16_NUMERICS_LEVERS), ("cpu", ())])
def test_demo_eat_stage_gets_the_levers_on_a_gpu_only(monkeypatch, tmp_path, device, expected):
    """The demo and the GPU recipe pretrain EAT through `pretrain_eat.main`: bf16 (levers on) on a GPU, fp32 on CPU."""
    from llm_aac import demo

    calls: list[list[str]] = []
    monkeypatch.setattr(pretrain_eat, "main", lambda argv: calls.append(list(argv)) or 0)
    demo.pretrain_encoder(str(tmp_path), str(tmp_path / "features"), demo.SIZES["full"], 0,
                          demo.RecipeChoices(device=device))
    (argv,) = calls
    args, training_args = parse_arguments(argv + ["--use_cpu", "true"])  # this CPU machine stands in for the GPU
    assert training_numerics_levers(training_args, enabled=args.bf16_numerics_levers) == expected


def test_coordinate_descent_tuning_sets_inductor_for_the_compiled_run(monkeypatch, tmp_path):
    import torch._inductor.config

    monkeypatch.setattr(torch._inductor.config, "coordinate_descent_tuning", False)
    args, training_args = parse_arguments(["--preset", "tiny", "--synthetic_clips", "2", "--torch_compile",
                                           "--coordinate_descent_tuning", "--output_dir", str(tmp_path)])
    apply_compile_tuning(args, training_args)
    assert torch._inductor.config.coordinate_descent_tuning
    monkeypatch.setattr(torch._inductor.config, "coordinate_descent_tuning", False)
    args, training_args = parse_arguments(["--preset", "tiny", "--synthetic_clips", "2", "--torch_compile",
                                           "--output_dir", str(tmp_path)])
    apply_compile_tuning(args, training_args)
    assert not torch._inductor.config.coordinate_descent_tuning
