"""Batched captioning of clips of mixed lengths: one padded `generate` call vs the same clips one by one.

SLAM-AAC decodes one clip at a time (no batched variable-length inference). This times greedy captioning of
`--num-clips` clips of 5-30 s (random lengths, fixed seed) as one left-padded batch, each clip's padding
frames masked, against one `generate` call per clip (the baseline), in the same process. It prints clips/s
of both, the speed-up, and how many batched captions equal the clip's caption decoded alone (bf16 can flip
near-ties, so this is reported, not asserted; the CPU tests assert padding invariance in float32).

The captioner is `bench_finetune_memory.py`'s (Vicuna-7B-shaped Llama + EAT-base + linear projector + LoRA,
random weights built on the device, frozen weights in bf16 on a GPU; `--tiny` for small versions of both).
Random weights make captions arbitrary, so every clip decodes exactly `--new-tokens` tokens (EOS is
forbidden until then). LoRA finetuning memory and speed are measured by `bench_finetune_memory.py`.

    python benchmarks/bench_captioner.py                                            # one GPU
    python benchmarks/bench_captioner.py --tiny --device cpu --num-clips 4 --new-tokens 4   # smoke run
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_finetune_memory import (  # noqa: E402
    PROMPT_TOKENS_AFTER_AUDIO,
    PROMPT_TOKENS_BEFORE_AUDIO,
    add_captioner_arguments,
    build_model,
    captioner_device,
)

FRAMES_PER_SECOND = 100  # kaldi fbank, 10 ms hop
EOS = 2  # Llama's; also the padding id, as in SLAM-AAC


def make_prompts(model, clip_seconds: list[float], device: torch.device) -> dict[str, torch.Tensor]:
    """Random normalised fbank clips of the given lengths (right-padded to a multiple of 16 frames, masked)
    and their left-padded prompts: text, the clip's audio placeholders, text."""
    config = model.config
    frames = [int(round(seconds * FRAMES_PER_SECOND)) for seconds in clip_seconds]
    width = -(-max(frames) // 16) * 16
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(len(frames), width, config.audio_config.num_mel_bins, generator=generator)
    feature_mask = torch.zeros(len(frames), width, dtype=torch.long)
    prompts = []
    for row, count in enumerate(frames):
        feature_mask[row, :count] = 1
        text = lambda n: torch.randint(5, config.audio_token_id - 1, (n,), generator=generator)  # noqa: E731
        audio = torch.full((config.num_audio_tokens(count),), config.audio_token_id)
        prompts.append(torch.cat([text(PROMPT_TOKENS_BEFORE_AUDIO), audio, text(PROMPT_TOKENS_AFTER_AUDIO)]))
    longest = max(len(prompt) for prompt in prompts)
    input_ids = torch.full((len(prompts), longest), EOS)
    attention_mask = torch.zeros_like(input_ids)
    for row, prompt in enumerate(prompts):
        input_ids[row, longest - len(prompt):] = prompt  # left padding: every prompt ends where decoding starts
        attention_mask[row, longest - len(prompt):] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention_mask, "input_features": features,
             "feature_attention_mask": feature_mask}
    return {key: value.to(device) for key, value in batch.items()}


def one_clip(batch: dict[str, torch.Tensor], row: int) -> dict[str, torch.Tensor]:
    """Row `row` of a padded batch without its padding (prompt and frames), as a batch of one."""
    keep = batch["attention_mask"][row].bool()
    width = 16 * -(-int(batch["feature_attention_mask"][row].sum()) // 16)
    return {
        "input_ids": batch["input_ids"][row : row + 1, keep],
        "attention_mask": batch["attention_mask"][row : row + 1, keep],
        "input_features": batch["input_features"][row : row + 1, :width],
        "feature_attention_mask": batch["feature_attention_mask"][row : row + 1, :width],
    }


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def bench_batched_generate(model, device: torch.device, num_clips: int, new_tokens: int) -> dict[str, float]:
    generator = torch.Generator().manual_seed(0)
    clip_seconds = (5 + 25 * torch.rand(num_clips, generator=generator)).tolist()
    batch = make_prompts(model, clip_seconds, device)
    prompt_length = batch["input_ids"].shape[1]
    settings = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, num_beams=1,
                    pad_token_id=EOS, eos_token_id=EOS)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        model.generate(**one_clip(batch, 0), **settings)  # warm-up
        synchronize(device)
        start = time.perf_counter()
        batched = model.generate(**batch, **settings)[:, prompt_length:]
        synchronize(device)
        batched_s = time.perf_counter() - start
        start = time.perf_counter()
        alone = []
        for row in range(num_clips):
            single = one_clip(batch, row)
            alone.append(model.generate(**single, **settings)[0, single["input_ids"].shape[1]:])
        synchronize(device)
        alone_s = time.perf_counter() - start
    identical = sum(int(torch.equal(batched[row], alone[row])) for row in range(num_clips))
    print(f"{num_clips} clips of 5-30 s, greedy, {new_tokens} new tokens: one padded batch "
          f"{num_clips / batched_s:.2f} clips/s, one by one (baseline) {num_clips / alone_s:.2f} clips/s, "
          f"speed-up {alone_s / batched_s:.1f}x; identical captions {identical}/{num_clips}")
    return {"batched_s": batched_s, "alone_s": alone_s, "identical": identical}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_captioner_arguments(parser)
    parser.add_argument("--num-clips", type=int, default=32, help="clips of 5-30 s, captioned both ways")
    parser.add_argument("--new-tokens", type=int, default=20, help="tokens decoded per clip")
    args = parser.parse_args(argv)
    if args.num_clips < 1 or args.new_tokens < 1:
        raise SystemExit(f"--num-clips and --new-tokens must be >= 1, got {args.num_clips} and {args.new_tokens}")
    device = captioner_device(args)
    torch.manual_seed(0)
    weights_dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    start = time.perf_counter()
    model = build_model(args.tiny, weights_dtype, device).eval()
    print(f"{'tiny' if args.tiny else '7B'} captioner built on {device} in {time.perf_counter() - start:.1f} s "
          f"({str(weights_dtype).removeprefix('torch.')} frozen weights)")
    bench_batched_generate(model, device, args.num_clips, args.new_tokens)
    return 0


if __name__ == "__main__":
    sys.exit(main())
