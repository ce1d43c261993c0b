r"""EAT-base pretraining step throughput (clips/s) and MFU on one GPU, and speed levers against a baseline run in
the same process.

    python benchmarks/bench_eat_pretrain.py                      # eager vs torch.compile, 12 clips x 16 clones
    python benchmarks/bench_eat_pretrain.py --batch-sizes 12,24 --variants eager,compile,cudagraphs --profile
    python benchmarks/bench_eat_pretrain.py --variants compile --decoders conv2d,banded_matmul --check-decoder
    python benchmarks/bench_eat_pretrain.py --variants compile --levers all --compile-mode max-autotune-no-cudagraphs

The levers on one H100 in one command (well under 9 minutes): the baseline `compile`, each lever alone, both levers,
then both levers with the autotuned compile mode. Every variant is compiled afresh (about 1.5 min each in the default
mode, longer with autotuning); the time budget skips, and reports, a variant that would not end in time (a runner not
run yet is expected to take twice the longest variant so far); the `grep` drops the profile's per-kernel rows:

    timeout 500 python3 benchmarks/bench_eat_pretrain.py --batch-sizes 12 --steps 20 --warmup 5 \
        --variants compile,autotune+ln-autocast+bias-bf16 --levers all --check-levers --profile \
        --time-budget-s 420 --output-json $OUT/eat_levers.json > $OUT/eat_levers.log 2>&1; \
        grep -v 'x  \[' $OUT/eat_levers.log | tail -120

If the autotuned variant was skipped, the compile mode on top of both levers on its own (baseline: both levers):

    timeout 500 python3 benchmarks/bench_eat_pretrain.py --batch-sizes 12 --steps 20 --warmup 5 \
        --variants compile+ln-autocast+bias-bf16,autotune+ln-autocast+bias-bf16 --profile \
        --output-json $OUT/eat_autotune.json > $OUT/eat_autotune.log 2>&1; grep -v 'x  \[' $OUT/eat_autotune.log | tail -60

One timed step is what `train/pretrain_eat.py` runs per optimizer update: bf16 autocast forward of the
teacher (whole clips) and the student (16 masked clones per clip) + CNN decoder, backward, gradient
clipping at 4, fused AdamW, and the EMA teacher update, on random 10.24 s inputs ([B, 1024, 128]).
Attention runs through SDPA. FLOPs are counted analytically (`eat_pretraining_flops`: about 1.08 TFLOP
per clip for EAT-base); MFU divides the achieved FLOP/s by the bf16 matmul peak measured first in the
same process (8192^3 products). Each variant is compared with the baseline (the first variant and decoder
measured for its batch size, run in the same process), with the eager stand-in measured earlier (182-202
clips/s, REFERENCE section 7) and with the target (320 clips/s, about 40 % MFU on an H100).

Variants (`--variants`, comma-separated `RUNNER[+LEVER...]`). Runners: `eager`; `compile` (`torch.compile` with
`--compile-mode`, inductor's default mode when unset); `cudagraphs` (mode "reduce-overhead"); `autotune` (mode
"max-autotune-no-cudagraphs": autotuned Triton GEMM templates whose epilogues can absorb bias / GELU / casts);
`cdtune` (the default mode with inductor's `coordinate_descent_tuning`: each generated elementwise / reduction kernel's
block sizes and warps tuned by benchmarking, as `TORCHINDUCTOR_COORDINATE_DESCENT_TUNING=1` does for training).
Levers (model options, off in the baseline):
  `ln-autocast`  `EATConfig(layer_norm_in_autocast_dtype=True)`: LayerNorms return bf16 under autocast instead of
                 autocast's float32, so EAT's post-LN residual stream, the tensors saved for backward around it and the
                 decoder's input grid take half the bytes (expected about 2 ms of the 51.5 ms H100 step; peak memory
                 about 0.7 GiB lower at 12 clips x 16 clones).
  `bias-bf16`    `EATPretrainingDecoder.bias_in_product_dtype = True` (banded decoder): the conv bias is added after
                 the tap sum is rounded to bf16, so the backward materialises each block's gradient (read for the bias
                 gradient and the rolled tap gradients) in bf16 instead of float32 (expected up to about 1 ms).
`--levers ln-autocast,...` (or `all`) expands every spec of `--variants` into: itself, itself + each lever, and
itself + all those levers together. Decoders (`EATPretrainingDecoder.conv_implementation`): `conv2d` (cuDNN
grouped convolution), `banded_matmul` (the convolutions as banded batched GEMMs), `banded_triton` (the same banded
products as Triton kernels that accumulate the taps in registers and skip the zero band), `auto` (the model's default:
banded_triton when compiled on CUDA with Triton, else banded_matmul when compiled, conv2d in eager). `--profile` prints, per variant, the GPU time by kernel category
(matmul, fused triton, attention, convolution, ...) and the top kernels with their calls per step;
`--check-decoder` prints one batch's losses with each decoder in fp32 and bf16; `--check-levers` prints one batch's
losses and the student's output dtype with each lever in fp32 and bf16 (fp32 must match the baseline exactly).
A summary table of every variant ends the output.

Measured (torch 2.11.0+cu130, 12 clips x 16 clones unless stated):
  H200: eager/conv2d 91.8-92.9 ms (130 clips/s, 18 % MFU); compile/conv2d 67.0 ms (179 clips/s, 25 %);
        compile/banded_matmul 48.7 ms (246 clips/s, 34 %); cudagraphs 48.2 ms (249 clips/s, 34.5 %);
        24 clips compile/banded_matmul 91.2 ms (263 clips/s, 36.5 %).
  H100: eager/conv2d 100.2 ms (120 clips/s, 17 %); compile/conv2d 72.4 ms (166 clips/s, 23 %);
        compile/banded_matmul (first version, taps as 3 chained GEMMs) 55.9 ms (215 clips/s, 30 %);
        compile/banded_matmul (final) 51.5 ms (233 clips/s, 32 %).
  H100, 96 clips, both levers: compile/banded_matmul 348.8 ms (275 clips/s, 37.8 %); compile/banded_triton 302.8 ms
        (317 clips/s, 43.6 %); cdtune/banded_triton 299.9 ms (320 clips/s, 44.2 %; first step 397 s).

Needs only torch and transformers (no datasets / soundfile), so it runs on a bare GPU image.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
import types
from dataclasses import dataclass

import torch
import torch._inductor.config  # noqa: F401  (patched while a runner compiles)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_profile import profile_step  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EAGER_STAND_IN_CLIPS_PER_S = (182.0, 202.0)
TARGET_CLIPS_PER_S = 320.0
# Where models, steps and checks run (timing and the matmul peak are CUDA-only); the tests set "cpu" with tiny configs.
DEVICE = "cuda"

# Runner -> torch.compile mode; None: eager. "compile" takes --compile-mode.
RUNNERS = {"eager": None, "compile": "default", "cudagraphs": "reduce-overhead", "autotune": "max-autotune-no-cudagraphs",
           "cdtune": "default"}
# Runner -> inductor settings in force while it compiles (the first step).
RUNNER_INDUCTOR_CONFIG = {"cdtune": {"coordinate_descent_tuning": True}}
# Lever -> EATConfig overrides ("config") and EATPretrainingDecoder attributes ("decoder"); the baseline keeps the defaults.
LEVERS = {
    "ln-autocast": {"config": {"layer_norm_in_autocast_dtype": True}},
    "bias-bf16": {"decoder": {"bias_in_product_dtype": True}},
}


@dataclass(frozen=True)
class Variant:
    """One measured configuration: how the step runs (`runner`) and which model levers are on."""

    runner: str
    levers: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return "+".join((self.runner,) + self.levers)

    @property
    def compiled(self) -> bool:
        return RUNNERS[self.runner] is not None

    def compile_mode(self, default_mode: str | None) -> str | None:
        """The `torch.compile` mode: `--compile-mode` for the `compile` runner, the runner's own mode otherwise."""
        return default_mode if self.runner == "compile" else RUNNERS[self.runner]

    def settings(self, kind: str) -> dict:
        """The levers' `EATConfig` overrides (`kind="config"`) or decoder attributes (`kind="decoder"`)."""
        merged: dict = {}
        for lever in self.levers:
            merged.update(LEVERS[lever].get(kind, {}))
        return merged


def parse_variants(variants: str, levers: str = "") -> list[Variant]:
    """`--variants` (`RUNNER[+LEVER...]`, comma-separated) expanded by `--levers` (comma-separated, or `all`).

    With levers L1..Ln every spec becomes: itself, itself + Li for each i, and itself + L1..Ln (when n > 1), in that
    order, duplicates dropped. Unknown runners or levers are a ValueError naming them and the choices.
    """
    specs = [spec.strip() for spec in variants.split(",") if spec.strip()]
    if not specs:
        raise ValueError(f"--variants names no variant: {variants!r}")
    lever_names = [name.strip() for name in (levers or "").split(",") if name.strip()]
    if lever_names == ["all"]:
        lever_names = list(LEVERS)
    unknown_levers = [name for name in lever_names if name not in LEVERS]
    parsed = []
    for spec in specs:
        runner, *spec_levers = (part.strip() for part in spec.split("+"))
        if runner not in RUNNERS:
            raise ValueError(f"unknown runner {runner!r} in variant {spec!r}; runners: {', '.join(RUNNERS)}")
        unknown_levers += [name for name in spec_levers if name not in LEVERS]
        parsed.append((runner, spec_levers))
    if unknown_levers:
        raise ValueError(f"unknown levers {sorted(set(unknown_levers))}; levers: {', '.join(LEVERS)} (or --levers all)")

    def variant(runner: str, names) -> Variant:
        # One canonical order (LEVERS'), so that "compile+a+b" and "compile+b+a" are the same variant.
        return Variant(runner, tuple(name for name in LEVERS if name in set(names)))

    result: list[Variant] = []
    for runner, spec_levers in parsed:
        candidates = [variant(runner, spec_levers)]
        candidates += [variant(runner, spec_levers + [name]) for name in lever_names]
        if len(lever_names) > 1:
            candidates.append(variant(runner, spec_levers + lever_names))
        for candidate in candidates:
            if candidate not in result:
                result.append(candidate)
    return result


def import_eat_pretraining():
    """The EAT modules, without running `modeling_llm_aac/__init__.py` (which imports every model of the package)."""
    if "modeling_llm_aac" not in sys.modules:
        package_dir = os.path.join(REPO_ROOT, "modeling_llm_aac")
        spec = importlib.util.find_spec("modeling_llm_aac")
        if spec is not None and spec.submodule_search_locations:
            package_dir = list(spec.submodule_search_locations)[0]
        # A bare package object: its flat files use single-dot imports, which resolve through __path__.
        package = types.ModuleType("modeling_llm_aac")
        package.__path__ = [package_dir]
        sys.modules["modeling_llm_aac"] = package
    from modeling_llm_aac.configuration_eat import EATConfig
    from modeling_llm_aac.modeling_eat_pretraining import EATForPreTraining, eat_pretraining_flops

    return EATConfig, EATForPreTraining, eat_pretraining_flops


def cuda_time(fn, *, warmup: int, iters: int) -> float:
    """Mean seconds per call of `fn` (CUDA events, after `warmup` untimed calls)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / 1000.0 / iters


def measure_matmul_peak(size: int = 8192, iters: int = 20) -> float:
    a = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    seconds = cuda_time(lambda: torch.mm(a, b), warmup=3, iters=iters)
    del a, b
    return 2.0 * size**3 / seconds


class PretrainingStep:
    """One optimizer update of `EATForPreTraining`, as Trainer runs it with --bf16."""

    def __init__(self, model, features, *, compile_model: bool, compile_mode: str | None):
        self.model = model
        self.features = features
        self.forward = torch.compile(model, mode=compile_mode) if compile_model else model
        self.cuda_graphs = compile_model and compile_mode in ("reduce-overhead", "max-autotune")  # CUDA-graph modes
        params = [p for p in model.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim > 1]
        no_decay = [p for p in params if p.ndim <= 1]
        self.params = params
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
            lr=5e-4, betas=(0.9, 0.95), fused=True,
        )
        self.updates = 0

    def __call__(self):
        if self.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()  # the previous step's graph outputs may be overwritten
        with torch.autocast(DEVICE, dtype=torch.bfloat16):
            loss = self.forward(input_features=self.features).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 4.0, foreach=True)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.updates += 1
        self.model.update_teacher(self.updates)


def build_model(EATConfig, EATForPreTraining, *, clones: int, levers: tuple[str, ...] = (), seed: int = 0):
    """EAT-base pretraining model on the GPU with `levers` on, SDPA attention; the same weights for every lever set
    (the levers add no parameters)."""
    variant = Variant("eager", levers)
    torch.manual_seed(seed)
    config = EATConfig.base(num_mask_clones=clones, **variant.settings("config"))
    config._attn_implementation = "sdpa"
    model = EATForPreTraining(config).to(DEVICE).train()
    for name, value in variant.settings("decoder").items():
        setattr(model.decoder, name, value)
    return model


def run_variant(variant: Variant, EATConfig, EATForPreTraining, *, batch_size, clones, num_frames, steps, warmup,
                compile_mode, decoder):
    model = build_model(EATConfig, EATForPreTraining, clones=clones, levers=variant.levers)
    model.decoder.conv_implementation = decoder
    features = torch.randn(batch_size, num_frames, model.config.num_mel_bins, device=DEVICE)
    if variant.compiled:
        # A fresh compilation per variant: otherwise a second batch size would recompile with a dynamic batch.
        torch._dynamo.reset()
    step = PretrainingStep(model, features, compile_model=variant.compiled, compile_mode=variant.compile_mode(compile_mode))
    compile_start = time.perf_counter()
    with torch._inductor.config.patch(RUNNER_INDUCTOR_CONFIG.get(variant.runner, {})):
        step()
    torch.cuda.synchronize()
    first_step_s = time.perf_counter() - compile_start
    torch.cuda.reset_peak_memory_stats()
    seconds = cuda_time(step, warmup=warmup, iters=steps)
    peak_memory = torch.cuda.max_memory_allocated() / 2**30
    return step, seconds, first_step_s, peak_memory


def _one_batch(EATConfig, *, batch_size, clones, num_frames):
    """Inputs and masks shared by the agreement checks: the same clips and visible patches for every model."""
    config = EATConfig.base(num_mask_clones=clones)
    from modeling_llm_aac.modeling_eat_pretraining import compute_inverse_block_mask

    generator = torch.Generator(device=DEVICE).manual_seed(0)
    features = torch.randn(batch_size, num_frames, config.num_mel_bins, device=DEVICE, generator=generator)
    visible, _ = compute_inverse_block_mask(
        batch_size * clones, num_frames // config.patch_size, config.num_freq_patches, mask_ratio=config.mask_ratio,
        mask_ratio_adjust=config.mask_ratio_adjust, block_size=config.mask_block_size, device=DEVICE,
        generator=generator,
    )
    return features, visible


def _losses(model, features, visible, *, bf16: bool) -> tuple[float, float]:
    torch.manual_seed(1)  # the same decoder noise in every run
    with torch.no_grad(), torch.autocast(DEVICE, dtype=torch.bfloat16, enabled=bf16):
        out = model(input_features=features, visible_mask=visible)
    return out.frame_loss.item(), out.utterance_loss.item()


def decoder_agreement(EATConfig, EATForPreTraining, *, batch_size, clones, num_frames) -> str:
    """Losses of one forward with each decoder implementation (same weights, masks, noise seed)."""
    model = build_model(EATConfig, EATForPreTraining, clones=clones)
    features, visible = _one_batch(EATConfig, batch_size=batch_size, clones=clones, num_frames=num_frames)
    lines = ["decoder implementations, one forward (frame loss, utterance loss):"]
    for implementation in ("banded_matmul", "banded_triton", "conv2d"):
        model.decoder.conv_implementation = implementation
        for precision in ("fp32", "bf16"):
            frame, utterance = _losses(model, features, visible, bf16=precision == "bf16")
            lines.append(f"  {implementation:14s} {precision}  {frame:.6f}  {utterance:.6f}")
    del model
    torch.cuda.empty_cache()
    return "\n".join(lines)


def lever_agreement(variants: list[Variant], EATConfig, EATForPreTraining, *, batch_size, clones, num_frames) -> str:
    """Losses of one forward for every distinct lever set (same weights, masks, noise seed; banded decoder, eager) in
    fp32 and under bf16 autocast, with the relative difference to the first set, and the dtype of the student's
    output (its last LayerNorm) under autocast."""
    features, visible = _one_batch(EATConfig, batch_size=batch_size, clones=clones, num_frames=num_frames)
    lever_sets = list(dict.fromkeys(variant.levers for variant in variants))
    lines = ["levers, one forward (frame loss, utterance loss, relative difference to the first; student output dtype "
             "under bf16 autocast):"]
    reference = {}
    for levers in lever_sets:
        model = build_model(EATConfig, EATForPreTraining, clones=clones, levers=levers)
        model.decoder.conv_implementation = "banded_matmul"  # where the bias lever acts
        with torch.no_grad(), torch.autocast(DEVICE, dtype=torch.bfloat16):
            output_dtype = model.eat(features[:1]).last_hidden_state.dtype
        for precision in ("fp32", "bf16"):
            losses = _losses(model, features, visible, bf16=precision == "bf16")
            reference.setdefault(precision, losses)
            differences = [abs(value - ref) / max(abs(ref), 1e-12) for value, ref in zip(losses, reference[precision])]
            lines.append(
                f"  {'+'.join(levers) or 'baseline':24s} {precision}  {losses[0]:.6f}  {losses[1]:.6f}  "
                f"rel diff {differences[0]:.1e} {differences[1]:.1e}"
                + (f"  output {str(output_dtype).replace('torch.', '')}" if precision == "bf16" else "")
            )
        del model
        torch.cuda.empty_cache()
    return "\n".join(lines)


def summary_table(results: list[dict]) -> str:
    lines = ["summary (ratios against the first variant and decoder measured for each batch size, in this process):",
             f"  {'B':>3s} {'decoder':13s} {'variant':34s} {'ms/step':>8s} {'clips/s':>8s} {'MFU':>6s} {'x base':>7s} "
             f"{'peak GiB':>8s} {'1st step s':>10s}"]
    for r in results:
        head = f"  {r['batch_size']:3d} {r['decoder']:13s} {r['variant']:34s}"
        if "error" in r or "skipped" in r:
            lines.append(f"{head} {'skipped: ' + r['skipped'] if 'skipped' in r else 'FAILED'}")
            continue
        lines.append(
            f"{head} {r['step_ms']:8.2f} {r['clips_per_s']:8.1f} {100 * r['mfu']:5.1f}% {r['vs_baseline']:7.3f} "
            f"{r['peak_memory_gib']:8.1f} {r['first_step_s']:10.0f}"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", default="12", help="clips per step, comma-separated (>= 12 for the target)")
    parser.add_argument("--clones", type=int, default=16, help="masked views per clip")
    parser.add_argument("--num-frames", type=int, default=1024, help="frames per clip (1024 = 10.24 s)")
    parser.add_argument(
        "--variants", default="eager,compile",
        help="comma-separated RUNNER[+LEVER...]; runners: eager, compile (torch.compile, --compile-mode), cudagraphs "
        "(reduce-overhead), autotune (max-autotune-no-cudagraphs), cdtune (default mode + coordinate-descent tuning); "
        "levers: " + ", ".join(LEVERS),
    )
    parser.add_argument(
        "--levers", default="",
        help="comma-separated levers (or 'all'): every variant is also run with each lever and with all of them",
    )
    parser.add_argument("--compile-mode", default=None,
                        help="torch.compile mode of the 'compile' runner (default / max-autotune-no-cudagraphs / ...)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps after the first (compiling) one")
    parser.add_argument(
        "--decoders", default="auto",
        help="decoder convolution implementations to time, comma-separated: auto (default: banded_triton when "
        "compiled on CUDA, conv2d in eager), banded_matmul, banded_triton, conv2d",
    )
    parser.add_argument("--profile", action="store_true", help="print GPU time by kernel category and the top kernels of every variant")
    parser.add_argument("--profile-rows", type=int, default=45, help="top kernels listed per variant with --profile")
    parser.add_argument("--check-decoder", action="store_true", help="print the losses of each decoder implementation on one batch")
    parser.add_argument("--check-levers", action="store_true",
                        help="print the losses and output dtype of every lever set of --variants on one batch")
    parser.add_argument(
        "--time-budget-s", type=float, default=None,
        help="skip (and report) a variant when the seconds elapsed plus the longest earlier variant of the same runner "
        "(twice the longest of any while it has none) would pass this budget",
    )
    parser.add_argument("--output-json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    variants = parse_variants(args.variants, args.levers)  # bad names fail before any GPU work
    decoders = [d.strip() for d in args.decoders.split(",") if d.strip()]

    if not torch.cuda.is_available():
        print("bench_eat_pretrain needs a CUDA GPU; nothing measured.")
        return 1
    bench_start = time.perf_counter()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    EATConfig, EATForPreTraining, eat_pretraining_flops = import_eat_pretraining()
    from modeling_llm_aac.modeling_eat_pretraining import EATPretrainingDecoder

    unknown = set(decoders) - set(EATPretrainingDecoder.conv_implementations)
    if unknown:
        raise ValueError(f"unknown decoders {sorted(unknown)}; use {EATPretrainingDecoder.conv_implementations}")

    device_name = torch.cuda.get_device_name()
    peak = measure_matmul_peak()
    print(f"{device_name}, torch {torch.__version__}: bf16 8192^3 matmul peak {peak / 1e12:.0f} TFLOP/s")
    config = EATConfig.base(num_mask_clones=args.clones)
    per_clip = eat_pretraining_flops(config, 1, args.num_frames)
    print("analytic FLOPs per clip: " + ", ".join(f"{k} {v / 1e12:.3f} T" for k, v in per_clip.items())
          + " (REFERENCE: about 1.09 T)")
    print("variants: " + ", ".join(variant.name for variant in variants), flush=True)

    if args.check_decoder:
        print(decoder_agreement(EATConfig, EATForPreTraining, batch_size=2, clones=args.clones,
                                num_frames=args.num_frames), flush=True)
    if args.check_levers:
        print(lever_agreement(variants, EATConfig, EATForPreTraining, batch_size=2, clones=args.clones,
                              num_frames=args.num_frames), flush=True)

    results = []
    longest_s: dict[str, float] = {}  # runner -> longest wall time of one of its variants so far
    failed = False

    def save_json():  # after every variant, so that a run cut short keeps what it measured
        if args.output_json:
            with open(args.output_json, "w") as f:
                json.dump(dict(matmul_peak_tflops=round(peak / 1e12, 1), results=results), f, indent=1)

    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        baseline = None  # (name, clips/s) of the first variant measured for this batch size, decoders included
        for decoder in decoders:
            for variant in variants:
                label = f"B={batch_size:3d} x {args.clones} clones  {variant.name:28s} {decoder:13s}"
                record = dict(device=device_name, variant=variant.name, runner=variant.runner, levers=list(variant.levers),
                              decoder=decoder, batch_size=batch_size, clones=args.clones)
                elapsed = time.perf_counter() - bench_start
                # The longest earlier variant of this runner; for a runner not run yet (another compile mode, other
                # kernels to build), twice the longest of any.
                expected = longest_s.get(variant.runner, 2.0 * max(longest_s.values(), default=0.0))
                if args.time_budget_s is not None and elapsed + expected > args.time_budget_s:
                    reason = (f"time budget: {elapsed:.0f} s elapsed + {expected:.0f} s expected > "
                              f"{args.time_budget_s:.0f} s")
                    print(f"{label} skipped ({reason})", flush=True)
                    results.append(dict(record, skipped=reason))
                    save_json()
                    continue
                variant_start = time.perf_counter()
                try:
                    step, seconds, first_step_s, memory = run_variant(
                        variant, EATConfig, EATForPreTraining, batch_size=batch_size, clones=args.clones,
                        num_frames=args.num_frames, steps=args.steps, warmup=args.warmup,
                        compile_mode=args.compile_mode, decoder=decoder,
                    )
                except Exception as error:  # keep measuring the other variants; the exit status reports it
                    message = f"{type(error).__name__}: {str(error)[:2000]}"
                    print(f"{label} FAILED: {message}", flush=True)
                    results.append(dict(record, error=message))
                    failed = True
                    torch.cuda.empty_cache()
                    save_json()
                    continue
                clips_per_s = batch_size / seconds
                flops = eat_pretraining_flops(step.model.config, batch_size, args.num_frames)["total"]
                mfu = flops / seconds / peak
                if baseline is None:
                    baseline = (f"{variant.name}/{decoder}", clips_per_s)
                result = dict(
                    record, compile_mode=variant.compile_mode(args.compile_mode) if variant.compiled else None,
                    step_ms=round(seconds * 1000, 2), clips_per_s=round(clips_per_s, 1),
                    tflops=round(flops / seconds / 1e12, 1), mfu=round(mfu, 4),
                    first_step_s=round(first_step_s, 1), peak_memory_gib=round(memory, 2),
                    baseline=baseline[0], vs_baseline=round(clips_per_s / baseline[1], 3),
                    vs_eager_stand_in=round(clips_per_s / EAGER_STAND_IN_CLIPS_PER_S[1], 3),
                    vs_target=round(clips_per_s / TARGET_CLIPS_PER_S, 3),
                )
                print(
                    f"{label} {seconds * 1000:7.2f} ms/step  {clips_per_s:7.1f} clips/s  "
                    f"{flops / seconds / 1e12:6.1f} TFLOP/s  MFU {100 * mfu:5.1f} %  x{result['vs_baseline']:.3f} vs "
                    f"{baseline[0]}, x{result['vs_eager_stand_in']:.2f} vs stand-in {EAGER_STAND_IN_CLIPS_PER_S[1]:.0f}, "
                    f"x{result['vs_target']:.2f} vs target {TARGET_CLIPS_PER_S:.0f}  (first step {first_step_s:.0f} s, "
                    f"peak {memory:.2f} GiB)",
                    flush=True,
                )
                if args.profile:
                    print(profile_step(step, rows=args.profile_rows), flush=True)
                del step
                torch.cuda.empty_cache()
                results.append(result)
                longest_s[variant.runner] = max(longest_s.get(variant.runner, 0.0), time.perf_counter() - variant_start)
                save_json()
    print(summary_table(results), flush=True)
    print(f"total {time.perf_counter() - bench_start:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
