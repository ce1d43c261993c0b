"""EAT-base pretraining step throughput (clips/s) and MFU on one GPU.

    python benchmarks/bench_eat_pretrain.py                      # eager vs torch.compile, 12 clips x 16 clones
    python benchmarks/bench_eat_pretrain.py --batch-sizes 12,24 --variants eager,compile,cudagraphs --profile
    python benchmarks/bench_eat_pretrain.py --variants compile --decoders conv2d,banded_matmul --check-decoder

One timed step is what `train/pretrain_eat.py` runs per optimizer update: bf16 autocast forward of the
teacher (whole clips) and the student (16 masked clones per clip) + CNN decoder, backward, gradient
clipping at 4, fused AdamW, and the EMA teacher update, on random 10.24 s inputs ([B, 1024, 128]).
Attention runs through SDPA. FLOPs are counted analytically (`eat_pretraining_flops`: about 1.08 TFLOP
per clip for EAT-base); MFU divides the achieved FLOP/s by the bf16 matmul peak measured first in the
same process (8192^3 products). Each variant is compared with the first eager variant run in the same
process, with the eager stand-in measured earlier (182-202 clips/s, REFERENCE section 7) and with the
target (320 clips/s, about 40 % MFU on an H100).

Variants: `eager`, `compile` (`torch.compile`, each variant compiled afresh), `cudagraphs` (`torch.compile`
with mode "reduce-overhead"). Decoders (`EATPretrainingDecoder.conv_implementation`): `conv2d` (cuDNN grouped
convolution), `banded_matmul` (the convolutions as banded batched GEMMs), `auto` (the model's default:
banded_matmul when compiled, conv2d in eager). `--profile` prints, per variant, the GPU time by kernel
category (matmul, fused triton, attention, convolution, ...) and the top kernels with their calls per step;
`--check-decoder` prints one batch's losses with each decoder in fp32 and bf16.

Measured (torch 2.11.0+cu130, 12 clips x 16 clones unless stated):
  H200: eager/conv2d 91.8-92.9 ms (130 clips/s, 18 % MFU); compile/conv2d 67.0 ms (179 clips/s, 25 %);
        compile/banded_matmul 48.7 ms (246 clips/s, 34 %); cudagraphs 48.2 ms (249 clips/s, 34.5 %);
        24 clips compile/banded_matmul 91.2 ms (263 clips/s, 36.5 %).
  H100: eager/conv2d 100.2 ms (120 clips/s, 17 %); compile/conv2d 72.4 ms (166 clips/s, 23 %);
        compile/banded_matmul (first version, taps as 3 chained GEMMs) 55.9 ms (215 clips/s, 30 %).

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

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_profile import profile_step  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EAGER_STAND_IN_CLIPS_PER_S = (182.0, 202.0)
TARGET_CLIPS_PER_S = 320.0


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
        self.cuda_graphs = compile_model and compile_mode == "reduce-overhead"
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
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = self.forward(input_features=self.features).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 4.0, foreach=True)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.updates += 1
        self.model.update_teacher(self.updates)


def run_variant(name, EATConfig, EATForPreTraining, *, batch_size, clones, num_frames, steps, warmup, compile_mode,
                decoder):
    torch.manual_seed(0)
    config = EATConfig.base(num_mask_clones=clones)
    config._attn_implementation = "sdpa"
    model = EATForPreTraining(config).cuda().train()
    model.decoder.conv_implementation = decoder
    features = torch.randn(batch_size, num_frames, config.num_mel_bins, device="cuda")
    compiled = name != "eager"
    if compiled:
        # A fresh compilation per variant: otherwise a second batch size would recompile with a dynamic batch.
        torch._dynamo.reset()
    if name == "cudagraphs":
        compile_mode = "reduce-overhead"
    step = PretrainingStep(model, features, compile_model=compiled, compile_mode=compile_mode)
    compile_start = time.perf_counter()
    step()
    torch.cuda.synchronize()
    first_step_s = time.perf_counter() - compile_start
    torch.cuda.reset_peak_memory_stats()
    seconds = cuda_time(step, warmup=warmup, iters=steps)
    peak_memory = torch.cuda.max_memory_allocated() / 2**30
    return step, seconds, first_step_s, peak_memory


def decoder_agreement(EATConfig, EATForPreTraining, *, batch_size, clones, num_frames) -> str:
    """Losses of one bf16-autocast forward with each decoder implementation (same weights, masks, noise seed)."""
    torch.manual_seed(0)
    config = EATConfig.base(num_mask_clones=clones)
    config._attn_implementation = "sdpa"
    model = EATForPreTraining(config).cuda().train()
    features = torch.randn(batch_size, num_frames, config.num_mel_bins, device="cuda")
    from modeling_llm_aac.modeling_eat_pretraining import compute_inverse_block_mask

    num_time = num_frames // config.patch_size
    visible, _ = compute_inverse_block_mask(
        batch_size * clones, num_time, config.num_freq_patches, mask_ratio=config.mask_ratio,
        mask_ratio_adjust=config.mask_ratio_adjust, block_size=config.mask_block_size, device="cuda",
    )
    results = {}
    for implementation in ("banded_matmul", "conv2d"):
        model.decoder.conv_implementation = implementation
        for precision in ("fp32", "bf16"):
            torch.manual_seed(1)  # the same decoder noise in every run
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16"):
                out = model(input_features=features, visible_mask=visible)
            results[(implementation, precision)] = (out.frame_loss.item(), out.utterance_loss.item())
    lines = ["decoder implementations, one forward (frame loss, utterance loss):"]
    for (implementation, precision), (frame, utterance) in results.items():
        lines.append(f"  {implementation:14s} {precision}  {frame:.6f}  {utterance:.6f}")
    del model
    torch.cuda.empty_cache()
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", default="12", help="clips per step, comma-separated (>= 12 for the target)")
    parser.add_argument("--clones", type=int, default=16, help="masked views per clip")
    parser.add_argument("--num-frames", type=int, default=1024, help="frames per clip (1024 = 10.24 s)")
    parser.add_argument(
        "--variants", default="eager,compile",
        help="comma-separated: eager, compile (torch.compile, --compile-mode), cudagraphs (torch.compile reduce-overhead)",
    )
    parser.add_argument("--compile-mode", default=None, help="torch.compile mode (default / max-autotune-no-cudagraphs / ...)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps after the first (compiling) one")
    parser.add_argument(
        "--decoders", default="auto",
        help="decoder convolution implementations to time, comma-separated: auto (default: banded_matmul when "
        "compiled, conv2d in eager), banded_matmul, conv2d",
    )
    parser.add_argument("--profile", action="store_true", help="print GPU time by kernel category and the top kernels of every variant")
    parser.add_argument("--check-decoder", action="store_true", help="print the losses of each decoder implementation on one batch")
    parser.add_argument("--output-json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    if not torch.cuda.is_available():
        print("bench_eat_pretrain needs a CUDA GPU; nothing measured.")
        return 1
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    EATConfig, EATForPreTraining, eat_pretraining_flops = import_eat_pretraining()

    device_name = torch.cuda.get_device_name()
    peak = measure_matmul_peak()
    print(f"{device_name}, torch {torch.__version__}: bf16 8192^3 matmul peak {peak / 1e12:.0f} TFLOP/s")
    config = EATConfig.base(num_mask_clones=args.clones)
    per_clip = eat_pretraining_flops(config, 1, args.num_frames)
    print("analytic FLOPs per clip: " + ", ".join(f"{k} {v / 1e12:.3f} T" for k, v in per_clip.items())
          + " (REFERENCE: about 1.09 T)")

    results = []
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(variants) - {"eager", "compile", "cudagraphs"}
    if unknown:
        raise ValueError(f"unknown variants {sorted(unknown)}; use eager, compile and/or cudagraphs")
    decoders = [d.strip() for d in args.decoders.split(",") if d.strip()]
    from modeling_llm_aac.modeling_eat_pretraining import EATPretrainingDecoder

    unknown = set(decoders) - set(EATPretrainingDecoder.conv_implementations)
    if unknown:
        raise ValueError(f"unknown decoders {sorted(unknown)}; use {EATPretrainingDecoder.conv_implementations}")
    if args.check_decoder:
        print(decoder_agreement(EATConfig, EATForPreTraining, batch_size=2, clones=args.clones, num_frames=args.num_frames))
    failed = False
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        baseline = None
        for decoder, name in ((d, v) for d in decoders for v in variants):
            try:
                step, seconds, first_step_s, memory = run_variant(
                    name, EATConfig, EATForPreTraining, batch_size=batch_size, clones=args.clones,
                    num_frames=args.num_frames, steps=args.steps, warmup=args.warmup, compile_mode=args.compile_mode,
                    decoder=decoder,
                )
            except Exception as error:  # keep measuring the other variants; the exit status reports it
                message = f"{type(error).__name__}: {str(error)[:2000]}"
                print(f"B={batch_size:3d} x {args.clones} clones  {name:10s} {decoder:13s} FAILED: {message}", flush=True)
                results.append(dict(device=device_name, variant=name, decoder=decoder, batch_size=batch_size,
                                    clones=args.clones, error=message))
                failed = True
                torch.cuda.empty_cache()
                continue
            clips_per_s = batch_size / seconds
            flops = eat_pretraining_flops(step.model.config, batch_size, args.num_frames)["total"]
            mfu = flops / seconds / peak
            if baseline is None and name == "eager":
                baseline = clips_per_s
            result = dict(
                device=device_name, variant=name, decoder=decoder, batch_size=batch_size, clones=args.clones,
                step_ms=round(seconds * 1000, 2), clips_per_s=round(clips_per_s, 1),
                tflops=round(flops / seconds / 1e12, 1), mfu=round(mfu, 4),
                first_step_s=round(first_step_s, 1), peak_memory_gib=round(memory, 1),
                vs_eager_in_process=None if baseline is None else round(clips_per_s / baseline, 3),
                vs_eager_stand_in=round(clips_per_s / EAGER_STAND_IN_CLIPS_PER_S[1], 3),
                vs_target=round(clips_per_s / TARGET_CLIPS_PER_S, 3),
            )
            results.append(result)
            print(
                f"B={batch_size:3d} x {args.clones} clones  {name:10s} {decoder:13s} {seconds * 1000:7.2f} ms/step  "
                f"{clips_per_s:7.1f} clips/s  {flops / seconds / 1e12:6.1f} TFLOP/s  MFU {100 * mfu:5.1f} %  "
                f"x{result['vs_eager_in_process'] or 1.0:.2f} vs eager here, x{result['vs_eager_stand_in']:.2f} vs "
                f"stand-in {EAGER_STAND_IN_CLIPS_PER_S[1]:.0f}, x{result['vs_target']:.2f} vs target "
                f"{TARGET_CLIPS_PER_S:.0f}  (first step {first_step_s:.0f} s, peak {memory:.1f} GiB)",
                flush=True,
            )
            if args.profile:
                print(profile_step(step), flush=True)
            del step
            torch.cuda.empty_cache()
            if args.output_json:  # after every variant, so that a run cut short keeps what it measured
                with open(args.output_json, "w") as f:
                    json.dump(dict(matmul_peak_tflops=round(peak / 1e12, 1), results=results), f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
