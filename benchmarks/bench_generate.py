"""Caption generation speed on a GPU: fast prefix-sharing decoder vs transformers' eager `generate`.

A Vicuna-7B-shaped captioner (Llama, 32 layers, width 4096, vocab 32001 with the audio token; random weights,
bf16, built from configs, nothing downloaded) on EAT-base, over `--num-clips` clips of `--seconds` s (default
1,045 clips of 20 s: the Clotho evaluation split's size, 200 audio tokens + a 20-token prompt per clip).
Random weights make beam outputs arbitrary, so every run decodes exactly `--max-new-tokens` tokens (EOS is
forbidden until then: `min_new_tokens = max_new_tokens`, for both decoders).

Variants (each prints seconds for all clips, clips/s, and the ratio to the issue's target):
  features   Kaldi fbank on the GPU (LLMAACFeatureExtractor), for reference
  beam4      plain beam search, 4 beams                            target <= 12 s (HF eager ~35 s)
  slam       SLAM-AAC CLAP-Refine candidates, beam sizes 2..8      target <= 30 s (HF eager 7 passes ~5 min)
  single     one beam search returning 7 candidates (7 beams)
  diverse    diverse beam search, 7 groups x 2 beams
  sample     7 sampled candidates
  clap       CLAP rescoring of 7 candidates per clip (transformers ClapModel, HTS-AT + RoBERTa-base sizes,
             random weights; audio resampled to 48 kHz, 20 s clips = two 10 s windows); audio preprocessing
             with soxr + ClapFeatureExtractor on the CPU ("numpy") and / or in torch on the GPU ("torch"),
             `--clap-preprocessing numpy|torch|both` (default both: timed in turn, picks and embeddings compared)
Each fast variant runs with the decoder's eager steps and / or with its steps replayed as CUDA graphs
(`--cuda-graphs off|on|both`, default both: timed in the same process, one after the other; rows "(fast)" and
"(fast, CUDA graphs)"; the capture cost is inside the timed call).
The HF eager baselines (`generate`, same inputs and lengths) run on `--hf-clips` / `--hf-slam-clips` clips and are
extrapolated to all clips; `--check` compares the fast decoder's tokens with `generate`'s on a few clips (bf16
rounding can flip near-ties, so this is reported, not asserted; the CPU tests assert equality in float32).

    . benchmarks/setup_gpu_env.sh && python benchmarks/bench_generate.py
    python benchmarks/bench_generate.py --num-clips 256 --variants beam4,slam      # quicker
    python benchmarks/bench_generate.py --variants beam4,slam --cuda-graphs both --profile 96
    python benchmarks/bench_generate.py --variants slam --cuda-graphs off --phases   # where a call's time goes
    python benchmarks/bench_generate.py --size tiny --device cpu --num-clips 8 --hf-clips 4 --hf-slam-clips 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

from modeling_llm_aac.configuration_eat import EATConfig
from modeling_llm_aac.configuration_llm_aac import LLMAACConfig
from modeling_llm_aac.fast_generation import FastCaptionGenerator, _BeamGroups
from modeling_llm_aac.feature_extraction_llm_aac import LLMAACFeatureExtractor
from modeling_llm_aac.modeling_llm_aac import LLMAACForConditionalGeneration

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_profile import profile_step  # noqa: E402

BOS, EOS, PAD = 1, 2, 0
SLAM_SIZES = (2, 3, 4, 5, 6, 7, 8)
TARGETS_S = {"beam4": 12.0, "slam": 30.0}  # for 1,045 clips on one H100 (issue 5)
ALL_VARIANTS = ("features", "beam4", "slam", "single", "diverse", "sample", "clap")


def build_captioner(size: str, device: torch.device) -> LLMAACForConditionalGeneration:
    """Random-weight captioner: "7b" (Vicuna-7B-shaped Llama + EAT-base), "mid" (16-layer Llama of width 1024 with
    4 key/value heads for 16 query heads + tiny EAT: quick GPU checks) or "tiny" (CPU smoke runs)."""
    if size == "7b":
        text = dict(model_type="llama", hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                    num_attention_heads=32, num_key_value_heads=32, vocab_size=32001, max_position_embeddings=4096,
                    bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD)
        audio = EATConfig()
    elif size == "mid":
        text = dict(model_type="llama", hidden_size=1024, intermediate_size=2816, num_hidden_layers=16,
                    num_attention_heads=16, num_key_value_heads=4, vocab_size=32001, max_position_embeddings=2048,
                    bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD)
        audio = EATConfig.tiny(max_length=768)
    else:
        text = dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, vocab_size=1001, max_position_embeddings=1024,
                    bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD)
        audio = EATConfig.tiny(max_length=768)
    config = LLMAACConfig(audio_config=audio, text_config=text, audio_token_id=text["vocab_size"] - 1,
                          attn_implementation="sdpa")
    with device:  # random initialisation on the GPU (seconds), then bf16
        model = LLMAACForConditionalGeneration(config)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    return model.to(dtype).eval()


def make_prompts(model, num_clips: int, num_frames: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """SLAM-AAC-like prompts: BOS + 'USER:' + audio placeholders + 'Describe the audio you hear. ASSISTANT:'
    (token ids drawn at random: only their count matters for the speed)."""
    generator = torch.Generator().manual_seed(seed)
    vocab = model.config.text_config.vocab_size - 1
    head = [BOS] + torch.randint(3, vocab, (3,), generator=generator).tolist()
    tail = torch.randint(3, vocab, (16,), generator=generator).tolist()
    ids = head + [model.config.audio_token_id] * model.config.num_audio_tokens(num_frames) + tail
    input_ids = torch.tensor([ids] * num_clips)
    return input_ids, torch.ones_like(input_ids)


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device, function):
    synchronize(device)
    start = time.perf_counter()
    result = function()
    synchronize(device)
    return time.perf_counter() - start, result


def batches(count: int, size: int):
    for start in range(0, count, size):
        yield slice(start, min(count, start + size))


def report(rows: list[dict], name: str, seconds: float, clips: int, num_clips: int, note: str = "") -> dict:
    per_second = clips / seconds
    total = num_clips / per_second
    row = {"variant": name, "clips_timed": clips, "seconds_timed": round(seconds, 3), "clips_per_s": round(per_second, 2),
           f"seconds_for_{num_clips}": round(total, 2), "note": note}
    target = TARGETS_S.get(name.split(" ")[0]) if "(fast" in name else None
    if target is not None and num_clips == 1045:
        row["target_s"] = target
        row["ratio_to_target"] = round(total / target, 3)
    rows.append(row)
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["7b", "tiny"], default="7b")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--num-clips", type=int, default=1045)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--max-new-tokens", type=int, default=20)
    parser.add_argument("--hf-clips", type=int, default=64, help="clips for the eager generate beam-4 baseline")
    parser.add_argument("--hf-batch", type=int, default=64, help="clips per generate call (beam 4)")
    parser.add_argument("--hf-slam-clips", type=int, default=16, help="clips for the eager 7-pass SLAM baseline")
    parser.add_argument("--clap-clips", type=int, default=128, help="clips for the CLAP rescoring timing")
    parser.add_argument("--clap-preprocessing", choices=["numpy", "torch", "both"], default="both",
                        help="CLAP audio preprocessing timed: soxr + ClapFeatureExtractor on the CPU, torch on the "
                             "model's device, or both in turn (then their picks and embeddings are compared)")
    parser.add_argument("--kv-cache-gb", type=float, default=None, help="fast decoder key/value budget per chunk")
    parser.add_argument("--variants", default=",".join(ALL_VARIANTS), help=f"comma-separated subset of {ALL_VARIANTS}")
    parser.add_argument("--check", type=int, default=8, help="clips on which fast and generate tokens are compared")
    parser.add_argument("--json-out", default=None, help="also write the result rows to this JSON file")
    parser.add_argument("--cuda-graphs", choices=["off", "on", "both"], default="both",
                        help="fast decoder steps eager (off), replayed as CUDA graphs (on), or both timed in turn")
    parser.add_argument("--phases", action="store_true",
                        help="also time one more call of each fast variant on all clips split into phases (prompt "
                             "prefill with the encoder, decode steps, beam bookkeeping, collecting results), the GPU "
                             "synchronised around each phase: where the time goes, idle gaps included")
    parser.add_argument("--profile", type=int, default=0, metavar="CLIPS",
                        help="CUDA only: also profile one fast call of each timed beam variant on this many clips "
                             "(GPU kernel time by category, busy fraction, top kernels)")
    args = parser.parse_args()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(ALL_VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {ALL_VARIANTS}")
    device = torch.device(args.device)
    torch.manual_seed(0)

    start = time.perf_counter()
    model = build_captioner(args.size, device)
    print(f"built {args.size} captioner in {time.perf_counter() - start:.1f} s on {device} "
          f"({sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters)", flush=True)
    extractor = LLMAACFeatureExtractor()
    samples = int(args.seconds * 16000)
    num_frames = extractor.num_frames(samples)
    rng = np.random.default_rng(0)
    audio = torch.from_numpy((0.1 * rng.standard_normal((args.num_clips, samples))).astype(np.float32))
    input_ids, attention_mask = make_prompts(model, args.num_clips, num_frames)
    print(f"{args.num_clips} clips of {args.seconds} s: {num_frames} frames, {input_ids.shape[1]} prompt tokens "
          f"({model.config.num_audio_tokens(num_frames)} audio), {args.max_new_tokens} new tokens", flush=True)

    rows: list[dict] = []

    def compute_features(count):
        parts, masks = [], []
        for part in batches(count, 128):
            out = extractor(audio[part].to(device), sampling_rate=16000, return_tensors="pt", device=device)
            parts.append(out["input_features"])
            masks.append(out["attention_mask"])
        return torch.cat(parts), torch.cat(masks)

    compute_features(min(4, args.num_clips))  # warm-up
    seconds, (features, feature_mask) = timed(device, lambda: compute_features(args.num_clips))
    if "features" in variants:
        report(rows, f"features (fbank, {device.type})", seconds, args.num_clips, args.num_clips)
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "input_features": features,
              "feature_attention_mask": feature_mask}
    budget = None if args.kv_cache_gb is None else int(args.kv_cache_gb * 2**30)
    fast = FastCaptionGenerator(model, kv_cache_bytes=budget)
    length = dict(max_new_tokens=args.max_new_tokens, min_new_tokens=args.max_new_tokens, eos_token_id=EOS)

    def subset(count):
        return {key: value[:count] for key, value in inputs.items()}

    graph_modes = {"off": [False], "on": [True], "both": [False, True]}[args.cuda_graphs]

    def fast_label(name, graphs):
        return f"{name} (fast, CUDA graphs)" if graphs else f"{name} (fast)"

    def run_fast(name, call, **kwargs):
        for graphs in graph_modes:
            fast.cuda_graphs = graphs
            label = fast_label(name, graphs)
            call(**subset(min(8, args.num_clips)), **kwargs)  # warm-up (kernels, allocator, capture stream)
            seconds, _ = timed(device, lambda: call(**inputs, **kwargs))
            report(rows, label, seconds, args.num_clips, args.num_clips,
                   f"graph capture failed: {fast.decoder.graph_failure}" if graphs and fast.decoder.graph_failure else "")
            if args.phases:
                print(json.dumps({"phases": label, **time_phases(fast, lambda: call(**inputs, **kwargs), device)}),
                      flush=True)
            if args.profile and device.type == "cuda":
                part = subset(min(args.profile, args.num_clips))
                print(f"profile of {label} on {part['input_ids'].shape[0]} clips:", flush=True)
                print(profile_step(lambda: call(**part, **kwargs), steps=1, warmup=0, rows=30, unit="call"),
                      flush=True)

    def hf_generate(count, batch, **kwargs):
        for part in batches(count, batch):
            model.generate(**{k: v[part].to(device) for k, v in inputs.items()}, do_sample=False,
                           pad_token_id=PAD, **length, **kwargs)

    with torch.inference_mode():
        if "beam4" in variants:
            run_fast("beam4", fast.beam_search, beam_sizes=(4,), **length)
            hf_generate(min(2, args.num_clips), args.hf_batch, num_beams=4)
            count = min(args.hf_clips, args.num_clips)
            seconds, _ = timed(device, lambda: hf_generate(count, args.hf_batch, num_beams=4))
            report(rows, "beam4 (HF eager generate)", seconds, count, args.num_clips, f"batch {args.hf_batch}")
        if "slam" in variants:
            run_fast("slam", fast.beam_search, beam_sizes=SLAM_SIZES, **length)
            count = min(args.hf_slam_clips, args.num_clips)
            batch = max(1, count)

            def hf_slam():
                for size in SLAM_SIZES:
                    hf_generate(count, batch, num_beams=size)

            hf_generate(min(2, args.num_clips), batch, num_beams=8)
            seconds, _ = timed(device, hf_slam)
            report(rows, "slam (HF eager generate, 7 passes)", seconds, count, args.num_clips, f"batch {batch}")
        if "single" in variants:
            run_fast("single", fast.beam_search, beam_sizes=(7,), num_return_sequences=7, **length)
        if "diverse" in variants:
            run_fast("diverse", fast.beam_search, beam_sizes=(2,) * 7, diversity_penalty=1.0, **length)
        if "sample" in variants:
            run_fast("sample", fast.sample, num_return_sequences=7, do_sample=True, top_k=50, pad_token_id=PAD,
                     **length)
        if args.check > 0:
            count = min(args.check, args.num_clips)
            part = subset(count)
            reference = model.generate(**{k: v.to(device) for k, v in part.items()}, num_beams=4, do_sample=False,
                                       pad_token_id=PAD, **length)
            width = input_ids.shape[1]
            dtype = str(next(model.parameters()).dtype).replace("torch.", "")
            for graphs in graph_modes:
                fast.cuda_graphs = graphs
                ours = fast.beam_search(**part, beam_sizes=(4,), **length)
                same = sum(ours[i][0][0].tokens == reference[i, width:].tolist() for i in range(count))
                print(json.dumps({"check": f"{fast_label('beam-4', graphs)} tokens equal generate's on {same}/{count} "
                                           f"clips ({dtype})"}), flush=True)
    if "clap" in variants:
        run_clap(rows, audio, args, device)

    print("\n| variant | clips timed | s (timed) | clips/s | s for all clips | target s | ratio |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        total = row[f"seconds_for_{args.num_clips}"]
        print(f"| {row['variant']} | {row['clips_timed']} | {row['seconds_timed']} | {row['clips_per_s']} | {total} | "
              f"{row.get('target_s', '')} | {row.get('ratio_to_target', '')} |")
    for name in ("beam4", "slam"):
        theirs = next((r for r in rows if r["variant"].startswith(f"{name} (HF")), None)
        for graphs in graph_modes:
            ours = next((r for r in rows if r["variant"] == fast_label(name, graphs)), None)
            if ours and theirs:
                print(f"{fast_label(name, graphs)}: {ours['clips_per_s'] / theirs['clips_per_s']:.1f}x the clips/s of "
                      "HF eager generate")
    for name in ("beam4", "slam", "single", "diverse", "sample"):
        eager, graphed = (next((r for r in rows if r["variant"] == fast_label(name, g)), None) for g in (False, True))
        if eager and graphed:
            print(f"{name}: CUDA graphs {graphed['clips_per_s'] / eager['clips_per_s']:.2f}x the clips/s of eager steps")
    if args.json_out:
        with open(args.json_out, "w") as handle:
            json.dump(rows, handle, indent=2)


def time_phases(fast: FastCaptionGenerator, call, device: torch.device) -> dict:
    """Seconds of one `call()` per phase of the fast decoder, the device synchronised before and after each phase
    (so a phase's time includes launching its kernels and any wait of the GPU for them); "rest" is the call's
    wall time outside the phases (log-softmax and slot gathers of the beam loop, chunking, Python);
    "computed_row_fraction": decode-step rows computed (distinct paths) over rows stepped."""
    phases = {
        "prefill": (fast, "_prefill_chunk"),
        "decode_steps": (fast.decoder, "step"),
        "beam_select": (_BeamGroups, "select"),
        "beam_bookkeeping": (_BeamGroups, "update_open"),
        "beam_done": (_BeamGroups, "done"),
        "beam_next_rows": (_BeamGroups, "next_rows"),
        "collect": (fast, "_collect_beams"),
        "prefill.language_model": (fast.decoder, "prefill"),  # part of "prefill" (the rest: encoder, projector)
    }
    seconds = dict.fromkeys(phases, 0.0)
    originals = {name: owner.__dict__.get(attribute) for name, (owner, attribute) in phases.items()}

    def timed_phase(name, function):
        def wrapper(*args, **kwargs):
            synchronize(device)
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                synchronize(device)
                seconds[name] += time.perf_counter() - start
        return wrapper

    for name, (owner, attribute) in phases.items():
        setattr(owner, attribute, timed_phase(name, getattr(owner, attribute)))
    decoder, rows = fast.decoder, [0, 0]  # rows computed, rows stepped (distinct paths vs all beams)
    entry_owners = decoder._entry_owners

    def counting_owners(merge):
        owners = entry_owners(merge)
        if device.type == "cuda" and torch.cuda.is_current_stream_capturing():
            return owners  # a CUDA-graph capture may not synchronise; its replays compute every row
        rows[0] += int((owners == decoder.row_range).sum())
        rows[1] += owners.numel()
        return owners

    decoder._entry_owners = counting_owners
    try:
        synchronize(device)
        start = time.perf_counter()
        call()
        synchronize(device)
        wall = time.perf_counter() - start
    finally:
        del decoder._entry_owners
        for name, (owner, attribute) in phases.items():
            if originals[name] is None:  # an instance attribute shadowing the class's method
                delattr(owner, attribute)
            else:
                setattr(owner, attribute, originals[name])
    rounded = {name: round(value, 3) for name, value in seconds.items()}
    outer = sum(value for name, value in seconds.items() if "." not in name)
    return {"wall_s": round(wall, 3), **rounded, "rest": round(wall - outer, 3),
            "computed_row_fraction": round(rows[0] / rows[1], 3) if rows[1] else None}


def run_clap(rows, audio, args, device):
    """CLAP rescoring cost with random HTS-AT / RoBERTa-base-sized weights and a made-up word tokenizer."""
    from tokenizers import Tokenizer, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import ClapConfig, ClapModel, PreTrainedTokenizerFast

    from modeling_llm_aac.clap_scoring import TransformersClapScorer, default_clap_feature_extractor

    words = ("a dog barks car engine hums bird chirps rain falls on roof while people talk in the distance "
             "water runs door closes footsteps wind blows loudly softly music plays").split()
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for word in words:
        vocab.setdefault(word, len(vocab))
    backend = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                        unk_token="<unk>", model_max_length=77)
    config = ClapConfig() if args.size == "7b" else ClapConfig(
        text_config=dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                         projection_dim=12),
        audio_config=dict(depths=[1, 1], num_attention_heads=[2, 2], patch_embeds_hidden_size=8, hidden_size=16,
                          projection_dim=12),
        projection_dim=12,
    )
    with device:
        model = ClapModel(config).eval()
    scorer = TransformersClapScorer(model, default_clap_feature_extractor(config), tokenizer, audio_batch_size=32,
                                    text_batch_size=256)
    rng = np.random.default_rng(1)
    count = min(args.clap_clips, audio.shape[0])
    clips = [audio[i].numpy() for i in range(count)]
    candidates = [[" ".join(rng.choice(words, size=rng.integers(6, 14))) for _ in range(7)] for _ in range(count)]
    modes = ["numpy", "torch"] if args.clap_preprocessing == "both" else [args.clap_preprocessing]
    notes = {"numpy": "soxr + ClapFeatureExtractor on the CPU; audio + text towers on the GPU",
             "torch": "resampling + log-mel in torch on the model's device"}
    picks, speeds, embeddings = {}, {}, {}
    for mode in modes:
        scorer.preprocessing = mode
        scorer.rerank(clips[:2], candidates[:2], 16000)  # warm-up
        seconds, rankings = timed(device, lambda: scorer.rerank(clips, candidates, 16000))
        speeds[mode] = report(rows, f"clap (rescoring 7 candidates, {mode} preprocessing)", seconds, count,
                              args.num_clips, notes[mode])["clips_per_s"]
        picks[mode] = [ranking.caption for ranking in rankings]
        embeddings[mode] = scorer.encode_audio(clips[:16], 16000)
    if len(modes) == 2:
        same = sum(a == b for a, b in zip(picks["numpy"], picks["torch"]))
        cosine = (embeddings["numpy"] * embeddings["torch"]).sum(-1)
        print(json.dumps({"check": f"CLAP torch vs numpy preprocessing: same pick on {same}/{count} clips, audio "
                                   f"embedding cosine min {cosine.min().item():.7f} over {cosine.numel()} clips; torch "
                                   f"{speeds['torch'] / speeds['numpy']:.1f}x the clips/s of numpy"}), flush=True)


if __name__ == "__main__":
    main()
