"""Peak GPU memory and speed of LoRA finetuning: Vicuna-7B-shaped captioner + EAT-base (random weights).

Target (issue 4): LoRA finetuning fits in 24 GB at batch >= 4 with bf16 frozen weights + gradient
checkpointing; SLAM-AAC's recipe (fp32 weights under fp16 autocast, no checkpointing) needs an 80 GB card.

Every configuration runs the real training step of `train/finetune_aac.py` on one GPU: frozen EAT-base
(fbank, 10.24 s or 30 s clips, 513 / 1505 tokens), linear projector (stack 5, 2048 hidden) and LoRA (r 8,
alpha 32, q_proj / v_proj) trained in float32 with AdamW, the frozen Llama-7B (Vicuna-7B-v1.5 shape, vocabulary
32,001 with the audio token) under bf16 autocast, the SLAM-AAC prompt (~30 text tokens) + a 25-token caption.
Nothing is downloaded: weights are random, built from configs directly on the GPU. The first configuration
is the SLAM-AAC-style baseline; every other row prints its memory and speed relative to it.

    python benchmarks/bench_finetune_memory.py                 # table on the GPU (~3-5 minutes on one H100)
    python benchmarks/bench_finetune_memory.py --json out.json
    python benchmarks/bench_finetune_memory.py --tiny --device cpu --steps 2   # smoke run of the code path

Columns: peak allocated / reserved memory (torch's caching allocator; `nvidia-smi` shows about the reserved
figure plus the CUDA context), clips per second over `--steps` timed steps after `--warmup` steps.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from dataclasses import asdict, dataclass

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIB = 1024**3
TARGET_GIB = 24.0
PROMPT_TOKENS_BEFORE_AUDIO = 6  # "<s> USER:" with Llama's tokenizer
PROMPT_TOKENS_AFTER_AUDIO = 14  # " Describe the audio you hear.\nASSISTANT:"
CAPTION_TOKENS = 25  # a long Clotho caption + EOS


@dataclass
class BenchConfig:
    name: str
    batch_size: int
    clip_seconds: float
    weights_dtype: str  # dtype of the frozen weights: "bfloat16" or "float32"
    autocast_dtype: str  # "bfloat16" or "float16"
    gradient_checkpointing: bool


@dataclass
class BenchResult:
    config: BenchConfig
    peak_allocated_gib: float | None
    peak_reserved_gib: float | None
    clips_per_second: float | None
    seconds_per_step: float | None
    sequence_length: int
    error: str | None = None


def default_configs() -> list[BenchConfig]:
    return [
        BenchConfig("SLAM-AAC style (fp32 weights, fp16 autocast, no checkpointing)", 4, 10.24, "float32", "float16", False),
        BenchConfig("bf16 weights, no checkpointing", 4, 10.24, "bfloat16", "bfloat16", False),
        BenchConfig("bf16 weights + checkpointing", 4, 10.24, "bfloat16", "bfloat16", True),
        BenchConfig("bf16 weights + checkpointing", 8, 10.24, "bfloat16", "bfloat16", True),
        BenchConfig("bf16 weights + checkpointing", 16, 10.24, "bfloat16", "bfloat16", True),
        BenchConfig("bf16 weights + checkpointing, 30 s clips", 4, 30.0, "bfloat16", "bfloat16", True),
    ]


def captioner_config(tiny: bool):
    """LLMAACConfig: EAT-base + Vicuna-7B-shaped Llama (or tiny versions of both) with SLAM-AAC's LoRA."""
    from transformers import LlamaConfig

    from modeling_llm_aac import DEFAULT_LORA, EATConfig, LLMAACConfig

    if tiny:
        audio = EATConfig.tiny(max_length=768)
        text = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=4, vocab_size=32001, max_position_embeddings=4096)
        projector_hidden = 64
    else:
        audio = EATConfig.base()
        # Vicuna-7B-v1.5 = Llama-2-7B: 32 layers, width 4096, 32 heads, MLP 11008; 32,000 tokens + the audio token.
        text = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                           num_key_value_heads=32, vocab_size=32001, max_position_embeddings=4096, rms_norm_eps=1e-5)
        projector_hidden = 2048
    text._attn_implementation = "sdpa"
    audio._attn_implementation = "sdpa"
    return LLMAACConfig(
        audio_config=audio, text_config=text, projector_type="linear", projector_stack_factor=5,
        projector_hidden_size=projector_hidden, audio_token_id=32000, lora=dict(DEFAULT_LORA),
    )


def build_model(tiny: bool, weights_dtype: torch.dtype, device: torch.device):
    """The captioner with random weights created directly on `device` in `weights_dtype`; trained parts in fp32."""
    try:
        from llm_aac.train.finetune_aac import keep_trainable_in_float32
    except ImportError:  # repository not installed (offline GPU image): the module imports only torch at the top
        sys.path.insert(0, REPO)
        from train.finetune_aac import keep_trainable_in_float32
    from modeling_llm_aac import LLMAACForConditionalGeneration

    config = captioner_config(tiny)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(weights_dtype)
    try:
        with device:
            model = LLMAACForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    keep_trainable_in_float32(model)
    return model


def make_batch(model, batch_size: int, clip_seconds: float, device: torch.device) -> dict[str, torch.Tensor]:
    """Random normalised fbank clips of `clip_seconds` and right-padded prompt + caption tokens with labels."""
    config = model.config
    frames = int(round(clip_seconds * 100))
    padded_frames = -(-frames // 16) * 16
    num_audio = config.num_audio_tokens(frames)
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(batch_size, padded_frames, config.audio_config.num_mel_bins, generator=generator)
    feature_mask = torch.zeros(batch_size, padded_frames, dtype=torch.long)
    feature_mask[:, :frames] = 1
    text = lambda n: torch.randint(5, 31999, (batch_size, n), generator=generator)  # noqa: E731
    caption = text(CAPTION_TOKENS)
    input_ids = torch.cat(
        [text(PROMPT_TOKENS_BEFORE_AUDIO), torch.full((batch_size, num_audio), config.audio_token_id),
         text(PROMPT_TOKENS_AFTER_AUDIO), caption], dim=1
    )
    labels = torch.full_like(input_ids, -100)
    labels[:, -CAPTION_TOKENS:] = caption
    batch = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels,
             "input_features": features, "feature_attention_mask": feature_mask}
    return {k: v.to(device) for k, v in batch.items()}


def run_config(bench: BenchConfig, *, tiny: bool, device: torch.device, warmup: int, steps: int) -> BenchResult:
    weights_dtype = getattr(torch, bench.weights_dtype)
    autocast_dtype = getattr(torch, bench.autocast_dtype)
    cuda = device.type == "cuda"
    model = optimizer = batch = None
    sequence_length = 0
    try:
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        model = build_model(tiny, weights_dtype, device)
        model.train()
        if bench.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.0)
        scaler = torch.amp.GradScaler(device.type, enabled=autocast_dtype == torch.float16)
        batch = make_batch(model, bench.batch_size, bench.clip_seconds, device)
        sequence_length = batch["input_ids"].shape[1]

        def step():
            with torch.autocast(device.type, dtype=autocast_dtype):
                loss = model(**batch).loss
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)

        for _ in range(warmup):
            step()
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        if cuda:
            torch.cuda.synchronize(device)
        seconds = (time.perf_counter() - start) / steps
        allocated = torch.cuda.max_memory_allocated(device) / GIB if cuda else None
        reserved = torch.cuda.max_memory_reserved(device) / GIB if cuda else None
        return BenchResult(bench, allocated, reserved, bench.batch_size / seconds, seconds, sequence_length)
    except torch.cuda.OutOfMemoryError as error:
        first_line = str(error).splitlines()[0] if str(error) else "out of memory"
        return BenchResult(bench, None, None, None, None, sequence_length, error=f"OOM: {first_line[:120]}")
    finally:
        model = optimizer = batch = None  # free the GPU memory before the next configuration
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()


def format_table(results: list[BenchResult], device_name: str) -> str:
    baseline = results[0]
    lines = [
        f"LoRA finetuning memory / speed on {device_name} (target: <= {TARGET_GIB:.0f} GiB at batch >= 4)",
        "",
        "| configuration | batch | clip | seq | peak alloc GiB | peak reserved GiB | vs baseline | clips/s | vs baseline | fits 24 GiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        c = result.config
        if result.error:
            lines.append(f"| {c.name} | {c.batch_size} | {c.clip_seconds:g} s | {result.sequence_length} | {result.error} | | | | | no |")
            continue
        memory_ratio = speed_ratio = "n/a"
        if baseline.peak_reserved_gib and result.peak_reserved_gib is not None:
            memory_ratio = f"{result.peak_reserved_gib / baseline.peak_reserved_gib:.2f}x"
        if baseline.clips_per_second and result.clips_per_second is not None:
            speed_ratio = f"{result.clips_per_second / baseline.clips_per_second:.2f}x"
        allocated = f"{result.peak_allocated_gib:.1f}" if result.peak_allocated_gib is not None else "n/a"
        reserved = f"{result.peak_reserved_gib:.1f}" if result.peak_reserved_gib is not None else "n/a"
        fits = "n/a" if result.peak_reserved_gib is None else ("yes" if result.peak_reserved_gib <= TARGET_GIB else "no")
        lines.append(
            f"| {c.name} | {c.batch_size} | {c.clip_seconds:g} s | {result.sequence_length} | {allocated} | {reserved} | "
            f"{memory_ratio} | {result.clips_per_second:.1f} | {speed_ratio} | {fits} |"
        )
    return "\n".join(lines)


def add_captioner_arguments(parser: argparse.ArgumentParser) -> None:
    """`--device` and `--tiny`, the options of every benchmark that builds this captioner."""
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (with --tiny, a smoke run)")
    parser.add_argument("--tiny", action="store_true", help="tiny EAT + tiny Llama instead of EAT-base + 7B")


def captioner_device(args: argparse.Namespace) -> torch.device:
    """The device of `--device`, after checking that the chosen captioner can run there (exits if not)."""
    if REPO not in sys.path:
        sys.path.insert(0, REPO)  # modeling_llm_aac/ sits at the repository root
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run on a GPU, or pass --tiny --device cpu for a smoke run")
    if device.type != "cuda" and not args.tiny:
        raise SystemExit("the 7B configuration needs a GPU; pass --tiny for a CPU smoke run")
    return device


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_captioner_arguments(parser)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per configuration")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration")
    parser.add_argument("--batch_sizes", default=None, help="comma-separated batch sizes of the bf16 + checkpointing rows")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    device = captioner_device(args)
    import modeling_llm_aac  # noqa: F401  (registers the Auto classes)

    configs = default_configs()
    if args.batch_sizes:
        sizes = [int(s) for s in args.batch_sizes.split(",") if s.strip()]
        configs = configs[:3] + [BenchConfig("bf16 weights + checkpointing", b, 10.24, "bfloat16", "bfloat16", True)
                                 for b in sizes if b != 4] + configs[-1:]
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        device_name = torch.cuda.get_device_name(device)
    else:
        device_name = "CPU"
    results = []
    for bench in configs:
        result = run_config(bench, tiny=args.tiny, device=device, warmup=args.warmup, steps=args.steps)
        results.append(result)
        status = result.error or (
            f"{result.clips_per_second:.1f} clips/s"
            + (f", peak reserved {result.peak_reserved_gib:.1f} GiB" if result.peak_reserved_gib is not None else "")
        )
        print(f"[{len(results)}/{len(configs)}] {bench.name}, batch {bench.batch_size}, {bench.clip_seconds:g} s: {status}",
              flush=True)
    print()
    print(format_table(results, device_name + (" (tiny models)" if args.tiny else "")))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device_name, "tiny": args.tiny,
                       "results": [dict(asdict(r), config=asdict(r.config)) for r in results]}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
