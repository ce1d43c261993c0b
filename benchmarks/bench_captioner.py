"""Captioner cost: LoRA finetuning memory / speed and batched vs one-by-one caption generation.

Builds LLMAACForConditionalGeneration from configs only (random weights, nothing downloaded):
`--size 7b` is Vicuna-7B-v1.5-shaped (Llama, 32 layers, width 4096, vocab 32001 with the audio token)
on EAT-base, the SLAM-AAC set-up; `--size tiny` is a CPU smoke size.

1. finetune: SLAM-AAC's trainable set (linear projector + LoRA r 8 on q_proj / v_proj, encoder and LLM
   frozen), bf16 weights with fp32 trainable parameters under bf16 autocast, gradient checkpointing on the
   language model, AdamW. Prints peak GPU memory and samples/s per clip length and batch size, and the
   ratio of peak memory to the issue's 24 GB target (SLAM-AAC as published needs an 80 GB card).
2. generate: greedy captions for a batch of clips of mixed lengths (5-30 s), one padded batch vs
   the same clips one by one (SLAM-AAC decodes one clip at a time); prints clips/s and the speed-up.

    python benchmarks/bench_captioner.py --size 7b --device cuda
    python benchmarks/bench_captioner.py --size tiny --device cpu --steps 2
"""

from __future__ import annotations

import argparse
import time

import torch

from modeling_llm_aac.configuration_eat import EATConfig
from modeling_llm_aac.configuration_llm_aac import DEFAULT_LORA, LLMAACConfig
from modeling_llm_aac.modeling_llm_aac import LLMAACForConditionalGeneration

TARGET_GB = 24.0
FRAMES_PER_SECOND = 100  # kaldi fbank, 10 ms hop


def build_config(size: str) -> LLMAACConfig:
    if size == "7b":
        text = dict(model_type="llama", hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                    num_attention_heads=32, num_key_value_heads=32, vocab_size=32001, max_position_embeddings=4096,
                    bos_token_id=1, eos_token_id=2, pad_token_id=2)
        audio = EATConfig()
    else:
        text = dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=4, vocab_size=1001, max_position_embeddings=1024,
                    bos_token_id=1, eos_token_id=2, pad_token_id=2)
        audio = EATConfig.tiny(max_length=768)
    return LLMAACConfig(audio_config=audio, text_config=text, audio_token_id=text["vocab_size"] - 1, lora=DEFAULT_LORA)


def build_model(size: str, device: torch.device) -> LLMAACForConditionalGeneration:
    config = build_config(size)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with device:
            model = LLMAACForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    # Trainable parameters in fp32 (optimizer precision); frozen weights stay in bf16.
    for parameter in model.parameters():
        if parameter.requires_grad:
            parameter.data = parameter.data.float()
    return model


def make_batch(config: LLMAACConfig, seconds: list[float], device: torch.device, caption_tokens: int = 20):
    frames = [int(s * FRAMES_PER_SECOND) - 2 for s in seconds]
    width = 16 * -(-max(frames) // 16)
    features = torch.randn(len(frames), width, config.audio_config.num_mel_bins, device=device)
    feature_mask = torch.zeros(len(frames), width, dtype=torch.long, device=device)
    rows = []
    for row, count in enumerate(frames):
        feature_mask[row, :count] = 1
        # "USER: <audio...> Describe ... ASSISTANT:" stand-ins: BOS, a few text ids, the placeholders, a few more.
        rows.append([1, 11, 12, 13] + [config.audio_token_id] * config.num_audio_tokens(count) + [14, 15, 16, 17])
    longest = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), longest + caption_tokens), 2, device=device)
    attention_mask = torch.zeros_like(input_ids)
    labels = torch.full_like(input_ids, -100)
    for index, ids in enumerate(rows):
        start = longest - len(ids)  # left padding, so that generation continues every prompt directly
        input_ids[index, start:longest] = torch.tensor(ids, device=device)
        attention_mask[index, start:] = 1
        caption = torch.randint(3, config.audio_token_id - 1, (caption_tokens,), device=device)
        input_ids[index, longest:] = caption
        labels[index, longest:] = caption
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
            "input_features": features, "feature_attention_mask": feature_mask}, longest


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_finetune(model, device, batch_sizes, clip_seconds, steps) -> None:
    model.train()
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.0)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    precision = "bf16 autocast" if device.type == "cuda" else "fp32"
    print(f"finetune: {trainable / 1e6:.1f} M trainable of {total / 1e9:.2f} B parameters, "
          f"{precision}, gradient checkpointing, AdamW")
    autocast_dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    for seconds in clip_seconds:
        for batch_size in batch_sizes:
            batch, _ = make_batch(model.config, [seconds] * batch_size, device)
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            elapsed = 0.0
            for step in range(steps + 1):  # step 0 warms up
                synchronize(device)
                start = time.perf_counter()
                with torch.autocast(device.type, dtype=autocast_dtype, enabled=device.type == "cuda"):
                    loss = model(**batch).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                synchronize(device)
                if step:
                    elapsed += time.perf_counter() - start
            line = (f"  {seconds:>4.0f} s clips, batch {batch_size:>2}: {batch['input_ids'].shape[1]} tokens/seq, "
                    f"{batch_size * steps / elapsed:.2f} samples/s, loss {loss.item():.3f}")
            if device.type == "cuda":
                peak = torch.cuda.max_memory_allocated(device) / 2**30
                line += f", peak {peak:.1f} GiB = {peak / TARGET_GB:.2f} x the {TARGET_GB:.0f} GB target"
            print(line)
    disable = getattr(model, "activation_checkpointing_disable", None) or model.gradient_checkpointing_disable
    disable()
    model.eval()


@torch.no_grad()
def bench_generate(model, device, num_clips, new_tokens) -> None:
    generator = torch.Generator().manual_seed(0)
    seconds = (5 + 25 * torch.rand(num_clips, generator=generator)).tolist()
    batch, width = make_batch(model.config, seconds, device, caption_tokens=0)
    batch.pop("labels")
    settings = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    with autocast:
        model.generate(**{k: v[:2] for k, v in batch.items()}, **settings)  # warm-up
        synchronize(device)
        start = time.perf_counter()
        batched = model.generate(**batch, **settings)
        synchronize(device)
        batched_s = time.perf_counter() - start
        start = time.perf_counter()
        alone = []
        for row in range(num_clips):
            keep = batch["attention_mask"][row].bool()
            frames = int(batch["feature_attention_mask"][row].sum())
            single = {
                "input_ids": batch["input_ids"][row : row + 1, keep],
                "attention_mask": batch["attention_mask"][row : row + 1, keep],
                "input_features": batch["input_features"][row : row + 1, : 16 * -(-frames // 16)],
                "feature_attention_mask": batch["feature_attention_mask"][row : row + 1, : 16 * -(-frames // 16)],
            }
            alone.append(model.generate(**single, **settings)[0, int(keep.sum()):])
        synchronize(device)
        alone_s = time.perf_counter() - start
    same = sum(int(torch.equal(batched[row, width:], alone[row])) for row in range(num_clips))
    print(f"generate ({num_clips} clips of 5-30 s, greedy, {new_tokens} new tokens): one padded batch "
          f"{num_clips / batched_s:.2f} clips/s, one by one {num_clips / alone_s:.2f} clips/s, "
          f"speed-up {alone_s / batched_s:.1f}x; identical captions {same}/{num_clips}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["7b", "tiny"], default="7b")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--mode", choices=["all", "finetune", "generate"], default="all")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--clip-seconds", type=float, nargs="+", default=[10.0, 30.0])
    parser.add_argument("--steps", type=int, default=5, help="timed optimizer steps per setting")
    parser.add_argument("--generate-clips", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=20)
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    start = time.perf_counter()
    model = build_model(args.size, device)
    print(f"{args.size} captioner built on {device} in {time.perf_counter() - start:.1f} s "
          f"({'bf16' if device.type == 'cuda' else 'fp32'} frozen weights)")
    if args.mode in ("all", "finetune"):
        bench_finetune(model, device, args.batch_sizes, args.clip_seconds, args.steps)
    if args.mode in ("all", "generate"):
        bench_generate(model, device, args.generate_clips, args.new_tokens)


if __name__ == "__main__":
    main()
