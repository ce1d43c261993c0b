"""benchmarks/bench_eat_pretrain.py without a GPU: variant / lever parsing, the main loop (ratios against the baseline,
time budget, JSON) with the timing faked, and the lever check and training step on CPU with a tiny config."""

import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest
import torch

from modeling_llm_aac import EATConfig
from modeling_llm_aac.modeling_eat_pretraining import EATForPreTraining

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tests" / "modeling_llm_aac"))
from autocast_test_utils import cuda_layer_norm_autocast_rule  # noqa: E402


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_eat_pretrain", REPO_ROOT / "benchmarks" / "bench_eat_pretrain.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


bench = load_bench()


class TinyPresets:
    """Stands in for `EATConfig` in the bench's functions: its `base()` is a tiny model (128 bins, 2 decoder layers)."""

    @staticmethod
    def base(**overrides):
        return EATConfig.tiny(**{"decoder_num_layers": 2, **overrides})


def names(variants):
    return [variant.name for variant in variants]


def test_variants_expand_into_baseline_each_lever_and_all(monkeypatch):
    assert names(bench.parse_variants("compile,autotune+ln-autocast+bias-bf16", "all")) == [
        "compile", "compile+ln-autocast", "compile+bias-bf16", "compile+ln-autocast+bias-bf16",
        "autotune+ln-autocast+bias-bf16"]
    assert names(bench.parse_variants(" eager , compile+ln-autocast", "ln-autocast")) == [
        "eager", "eager+ln-autocast", "compile+ln-autocast"]
    assert names(bench.parse_variants("compile")) == ["compile"]
    assert names(bench.parse_variants("compile+bias-bf16+ln-autocast")) == ["compile+ln-autocast+bias-bf16"]

    monkeypatch.setattr(bench, "LEVERS", {"a": {"config": {"hidden_act": "relu"}}, "b": {"decoder": {"x": 1}},
                                          "c": {"config": {"mask_noise_std": 0.0}}})
    assert names(bench.parse_variants("compile", "a,b")) == ["compile", "compile+a", "compile+b", "compile+a+b"]
    assert names(bench.parse_variants("compile+b+a")) == ["compile+a+b"]  # one canonical lever order
    variant = bench.parse_variants("eager+a+b+c")[0]
    assert variant.settings("config") == {"hidden_act": "relu", "mask_noise_std": 0.0}
    assert variant.settings("decoder") == {"x": 1}

    with pytest.raises(ValueError, match=r"unknown runner 'fast'.*eager, compile, cudagraphs, autotune"):
        bench.parse_variants("fast")
    with pytest.raises(ValueError, match=r"unknown levers \['d', 'e'\]; levers: a, b, c"):
        bench.parse_variants("compile+d", "e")
    with pytest.raises(ValueError, match="names no variant"):
        bench.parse_variants(" , ")


def test_runner_compile_modes():
    compile_, autotune, cudagraphs, eager = bench.parse_variants("compile,autotune,cudagraphs,eager")
    assert compile_.compile_mode(None) is None
    assert compile_.compile_mode("max-autotune-no-cudagraphs") == "max-autotune-no-cudagraphs"  # --compile-mode
    assert autotune.compile_mode(None) == autotune.compile_mode("default") == "max-autotune-no-cudagraphs"
    assert cudagraphs.compile_mode(None) == "reduce-overhead"
    assert not eager.compiled and compile_.compiled and autotune.compiled
    assert bench.parse_variants("cdtune")[0].compile_mode("max-autotune") == "default"
    lever = bench.parse_variants("compile+ln-autocast+bias-bf16")[0]
    assert lever.settings("config") == {"layer_norm_in_autocast_dtype": True} and compile_.settings("config") == {}
    assert lever.settings("decoder") == {"bias_in_product_dtype": True} and compile_.settings("decoder") == {}


def test_bad_names_fail_before_any_gpu_work(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="unknown levers"):
        bench.main(["--variants", "compile", "--levers", "ln-fp8"])
    with pytest.raises(ValueError, match="unknown runner"):
        bench.main(["--variants", "compiled"])
    assert bench.main(["--variants", "compile,autotune", "--levers", "all", "--compile-mode",
                       "max-autotune-no-cudagraphs"]) == 1
    assert "needs a CUDA GPU" in capsys.readouterr().out


def run_main_with_fake_gpu(monkeypatch, argv, *, compile_seconds):
    """`main(argv)` with the GPU work faked: each variant advances a fake clock by its runner's seconds and "measures"
    55 ms per step (50 ms with any lever). Returns the exit status and the (name, compile mode, decoder) of each run."""
    clock = types.SimpleNamespace(now=0.0)
    calls = []

    def fake_run_variant(variant, EATConfig, EATForPreTraining, *, batch_size, compile_mode, decoder, **kwargs):
        calls.append((variant.name, variant.compile_mode(compile_mode), decoder))
        clock.now += compile_seconds[variant.runner]
        step = types.SimpleNamespace(model=types.SimpleNamespace(config=EATConfig.base(num_mask_clones=16)))
        seconds = 0.050 if variant.levers else 0.055
        return step, seconds * (0.8 if decoder == "banded_triton" else 1.0), compile_seconds[variant.runner], 30.0

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *args: "Fake GPU")
    monkeypatch.setattr(bench, "measure_matmul_peak", lambda: 800e12)
    monkeypatch.setattr(bench, "run_variant", fake_run_variant)
    monkeypatch.setattr(bench, "lever_agreement", lambda variants, *args, **kwargs: "levers checked: " + ", ".join(
        "+".join(levers) or "baseline" for levers in dict.fromkeys(v.levers for v in variants)))
    monkeypatch.setattr(bench, "profile_step", lambda step, rows: f"profile of {rows} rows")
    monkeypatch.setattr(bench, "time", types.SimpleNamespace(perf_counter=lambda: clock.now))
    allow_tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        return bench.main(argv), calls
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = allow_tf32


def test_main_loop_ratios_time_budget_and_json(monkeypatch, tmp_path, capsys):
    output = tmp_path / "levers.json"
    status, calls = run_main_with_fake_gpu(
        monkeypatch,
        ["--variants", "compile,compile+ln-autocast,autotune,autotune+ln-autocast", "--compile-mode",
         "max-autotune-no-cudagraphs", "--time-budget-s", "450", "--output-json", str(output)],
        compile_seconds={"compile": 100.0, "autotune": 300.0},
    )
    assert status == 0
    # compile (t=0..100), compile+lever (100 s expected: ends at 200), autotune (not run yet: twice the longest so far,
    # 200 s expected: ends at 500), autotune+lever: 500 s elapsed + 300 s expected > 450 -> skipped.
    assert calls == [("compile", "max-autotune-no-cudagraphs", "auto"),
                     ("compile+ln-autocast", "max-autotune-no-cudagraphs", "auto"),
                     ("autotune", "max-autotune-no-cudagraphs", "auto")]
    results = json.loads(output.read_text())["results"]
    assert [r["variant"] for r in results] == ["compile", "compile+ln-autocast", "autotune", "autotune+ln-autocast"]
    assert [r.get("vs_baseline") for r in results[:3]] == [1.0, 1.1, 1.0]
    assert {r.get("baseline") for r in results[:3]} == {"compile/auto"}
    assert results[1]["levers"] == ["ln-autocast"] and results[1]["clips_per_s"] == 240.0
    assert "skipped" in results[3] and "450" in results[3]["skipped"]
    out = capsys.readouterr().out
    assert "variants: compile, compile+ln-autocast, autotune, autotune+ln-autocast" in out
    assert "x1.100 vs compile" in out
    summary = out[out.index("summary"):]
    assert "compile+ln-autocast" in summary and "skipped: time budget" in summary


def test_decoders_compare_against_the_first_decoder_of_the_batch_size(monkeypatch, tmp_path):
    output = tmp_path / "decoders.json"
    status, calls = run_main_with_fake_gpu(
        monkeypatch, ["--batch-sizes", "12,24", "--variants", "compile", "--decoders", "banded_matmul,banded_triton",
                      "--output-json", str(output)], compile_seconds={"compile": 60.0})
    assert status == 0 and [decoder for _, _, decoder in calls] == ["banded_matmul", "banded_triton"] * 2
    results = json.loads(output.read_text())["results"]
    assert [r["vs_baseline"] for r in results] == [1.0, 1.25, 1.0, 1.25]
    assert {r["baseline"] for r in results} == {"compile/banded_matmul"}


def documented_commands(tmp_path):
    """The argument lists of the GPU commands in the module docstring (`$OUT` -> tmp_path)."""
    commands = []
    for block in bench.__doc__.split("timeout 500 python3 benchmarks/bench_eat_pretrain.py")[1:]:
        command = block.split("\n\n", 1)[0].replace("\\\n", " ").split(" > ", 1)[0]
        commands.append(command.replace("$OUT", str(tmp_path)).split())
    return commands


def test_the_documented_lever_commands_parse_and_run(monkeypatch, tmp_path, capsys):
    """The GPU commands of the module docstring, with the GPU work faked."""
    levers, autotune = documented_commands(tmp_path)
    status, calls = run_main_with_fake_gpu(monkeypatch, levers, compile_seconds={"compile": 60.0, "autotune": 150.0})
    assert status == 0
    assert [name for name, _, _ in calls] == [
        "compile", "compile+ln-autocast", "compile+bias-bf16", "compile+ln-autocast+bias-bf16",
        "autotune+ln-autocast+bias-bf16"]
    assert [mode for _, mode, _ in calls] == [None] * 4 + ["max-autotune-no-cudagraphs"]
    out = capsys.readouterr().out
    assert "levers checked: baseline, ln-autocast, bias-bf16, ln-autocast+bias-bf16" in out
    assert "profile of 45 rows" in out
    assert len(json.loads((tmp_path / "eat_levers.json").read_text())["results"]) == 5
    # Slower compilations: the autotuned variant is skipped (4 x 90 s + 2 x 90 s expected > 420 s budget).
    status, calls = run_main_with_fake_gpu(monkeypatch, levers, compile_seconds={"compile": 90.0, "autotune": 150.0})
    assert status == 0 and len(calls) == 4 and "skipped" in capsys.readouterr().out

    status, calls = run_main_with_fake_gpu(monkeypatch, autotune, compile_seconds={"compile": 90.0, "autotune": 300.0})
    assert status == 0
    assert calls == [("compile+ln-autocast+bias-bf16", None, "auto"),
                     ("autotune+ln-autocast+bias-bf16", "max-autotune-no-cudagraphs", "auto")]


def test_lever_check_decoder_check_and_training_step_on_cpu(monkeypatch):
    monkeypatch.setattr(bench, "DEVICE", "cpu")
    variants = bench.parse_variants("compile", "all")
    with cuda_layer_norm_autocast_rule():  # CUDA autocast's float32 LayerNorm, as on the GPU
        text = bench.lever_agreement(variants, TinyPresets, EATForPreTraining, batch_size=2, clones=2, num_frames=64)
    rows = {tuple(line.split()[:2]): line for line in text.splitlines()[1:]}
    lever_sets = ["baseline", "ln-autocast", "bias-bf16", "ln-autocast+bias-bf16"]
    assert list(rows) == [(levers, precision) for levers in lever_sets for precision in ("fp32", "bf16")]
    for levers in lever_sets:
        fp32, bf16 = rows[(levers, "fp32")], rows[(levers, "bf16")]
        assert fp32.split("rel diff")[1].split() == ["0.0e+00", "0.0e+00"]  # float32: identical losses
        assert max(float(value) for value in bf16.split("rel diff")[1].split()[:2]) < 1e-2
        # Under CUDA autocast's LayerNorm rule the student's output is float32 unless the LayerNorm lever is on.
        assert bf16.endswith("output bfloat16" if "ln-autocast" in levers else "output float32")

    text = bench.decoder_agreement(TinyPresets, EATForPreTraining, batch_size=2, clones=2, num_frames=64)
    rows = [line.split() for line in text.splitlines()[1:]]
    assert [row[:2] for row in rows] == [[name, precision] for name in ("banded_matmul", "banded_triton", "conv2d")
                                         for precision in ("fp32", "bf16")]
    fp32_losses = {row[0]: float(row[2]) for row in rows if row[1] == "fp32"}
    assert max(fp32_losses.values()) - min(fp32_losses.values()) < 1e-4 * max(fp32_losses.values())

    model = bench.build_model(TinyPresets, EATForPreTraining, clones=2, levers=("ln-autocast", "bias-bf16"))
    assert model.config.layer_norm_in_autocast_dtype and model.config._attn_implementation == "sdpa"
    assert model.decoder.bias_in_product_dtype
    teacher_before = model.teacher.encoder.layers[0].mlp.fc1.weight.clone()
    student_before = model.eat.encoder.layers[0].mlp.fc1.weight.clone()
    step = bench.PretrainingStep(model, torch.randn(2, 64, 128), compile_model=False, compile_mode=None)
    step()
    step()
    assert step.updates == 2
    assert not torch.equal(model.eat.encoder.layers[0].mlp.fc1.weight, student_before)
    assert not torch.equal(model.teacher.encoder.layers[0].mlp.fc1.weight, teacher_before)


def test_cdtune_compiles_its_first_step_with_coordinate_descent_tuning(monkeypatch):
    seen = []

    class RecordingStep:
        def __init__(self, model, features, *, compile_model, compile_mode):
            self.mode = compile_mode

        def __call__(self):
            seen.append((self.mode, torch._inductor.config.coordinate_descent_tuning))

    monkeypatch.setattr(bench, "DEVICE", "cpu")
    monkeypatch.setattr(bench, "PretrainingStep", RecordingStep)
    monkeypatch.setattr(bench, "cuda_time", lambda step, warmup, iters: (step(), 0.1)[1])
    for name in ("synchronize", "reset_peak_memory_stats"):
        monkeypatch.setattr(torch.cuda, name, lambda: None)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda: 0)
    for runner in ("cdtune", "compile"):
        bench.run_variant(bench.parse_variants(runner)[0], TinyPresets, EATForPreTraining, batch_size=1, clones=2,
                          num_frames=64, steps=1, warmup=0, compile_mode=None, decoder="auto")
    # cdtune: tuned while compiling (the first step), inductor's setting restored for the timed steps and after.
    assert seen == [("default", True), ("default", False), (None, False), (None, False)]
    assert not torch._inductor.config.coordinate_descent_tuning
