"""Check on a CUDA GPU that the fast decoder's CUDA-graph replay gives exactly its eager results, and time both.

A mid-size random captioner (16-layer Llama of width 1024, 16 query / 4 key-value heads, vocabulary 32,001;
tiny EAT; bf16; see bench_generate.build_captioner) decodes `--num-clips` clips of random length between
`--min-seconds` and `--max-seconds` (so prompts have different widths: left padding, several key/value buffer
shapes, narrower prompts inside a wider buffer, a smaller last chunk that is captured again). The EOS row of the
output layer is scaled by `--eos-scale` so that hypotheses end at different steps. The key/value budget
(`--kv-cache-mb`) is small so that every decoding runs in several chunks.

Each decoding (beam 4 returning 2; SLAM-AAC beam sizes 2..8; greedy; 3 samples per clip from a seeded generator)
runs once eagerly and once with `cuda_graphs=True`, in the same process after a warm-up call of each. Passes when
every token sequence is equal and every score differs by at most `--tolerance` (default 0: the graph replays the
eager kernels, so the results should be bitwise equal), and when graphs were captured and none failed.

    python benchmarks/check_fast_generation_cuda.py                        # about a minute on one H100
    python benchmarks/check_fast_generation_cuda.py --size tiny --device cpu --num-clips 12   # smoke run of the script

Prints one JSON line per decoding (match counts, largest score difference, eager and graph seconds, speed-up,
captures) and exits with status 1 when anything differs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

from modeling_llm_aac.fast_generation import FastCaptionGenerator
from modeling_llm_aac.feature_extraction_llm_aac import LLMAACFeatureExtractor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_generate import BOS, EOS, PAD, SLAM_SIZES, build_captioner, synchronize  # noqa: E402


def make_inputs(model, extractor, num_clips, min_seconds, max_seconds, device, seed=0):
    """Left-padded SLAM-AAC-like prompts (random word ids around the audio placeholders) of random-length clips."""
    rng = np.random.default_rng(seed)
    rate = extractor.sampling_rate
    lengths = rng.uniform(min_seconds, max_seconds, num_clips)
    clips = [torch.from_numpy((0.1 * rng.standard_normal(int(s * rate))).astype(np.float32)) for s in lengths]
    features = extractor([clip.to(device) for clip in clips], sampling_rate=rate, return_tensors="pt", device=device)
    frames = features["attention_mask"].sum(-1).tolist()
    vocab = model.config.text_config.vocab_size - 1
    head = [BOS] + rng.integers(3, vocab, 3).tolist()
    tail = rng.integers(3, vocab, 16).tolist()
    rows = [head + [model.config.audio_token_id] * model.config.num_audio_tokens(int(n)) + tail for n in frames]
    width = max(len(row) for row in rows)
    input_ids = torch.tensor([[PAD] * (width - len(row)) + row for row in rows])
    attention_mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows])
    widths = sorted({len(row) for row in rows})
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "input_features": features["input_features"],
              "feature_attention_mask": features["attention_mask"]}
    return inputs, widths


def flatten(results):
    """(tokens, log_prob_sum, score) of every hypothesis, clip by clip."""
    out = []
    for clip in results:
        for item in clip:
            for hyp in item if isinstance(item, list) else [item]:
                out.append((hyp.tokens, hyp.log_prob_sum, hyp.score))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["mid", "tiny", "7b"], default="mid")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--num-clips", type=int, default=300)
    parser.add_argument("--min-seconds", type=float, default=5.0)
    parser.add_argument("--max-seconds", type=float, default=20.0)
    parser.add_argument("--max-new-tokens", type=int, default=20)
    parser.add_argument("--kv-cache-mb", type=float, default=480.0, help="key/value budget per chunk")
    parser.add_argument("--eos-scale", type=float, default=3.0, help="scales the EOS row of the output layer")
    parser.add_argument("--tolerance", type=float, default=0.0, help="largest allowed score difference")
    parser.add_argument("--decodings", default="beam4,slam,greedy,sample")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_captioner(args.size, device)
    with torch.no_grad():
        model.get_output_embeddings().weight[EOS] *= args.eos_scale
    extractor = LLMAACFeatureExtractor()
    inputs, widths = make_inputs(model, extractor, args.num_clips, args.min_seconds, args.max_seconds, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(json.dumps({"device": name, "torch": torch.__version__, "size": args.size, "clips": args.num_clips,
                      "prompt_widths": f"{widths[0]}..{widths[-1]} ({len(widths)} distinct)",
                      "dtype": str(next(model.parameters()).dtype)}), flush=True)
    if device.type != "cuda":
        print(json.dumps({"note": "no CUDA device: cuda_graphs is ignored, both runs are eager"}), flush=True)

    budget = int(args.kv_cache_mb * 2**20)
    eager = FastCaptionGenerator(model, kv_cache_bytes=budget, cuda_graphs=False)
    graphs = FastCaptionGenerator(model, kv_cache_bytes=budget, cuda_graphs=True)
    # A captured step attends over the whole key/value buffer; eager steps do the same here so that both run the
    # same kernels on the same shapes (by default eager steps read only the entries written so far; on a CPU the
    # "graphs" generator runs eagerly too).
    for generator in (eager, graphs):
        generator.decoder.attend_written_only = False
        generator.decoder.merge_repeated_paths = False  # a captured step computes every row
    captures = []
    capture = graphs.decoder._capture_graph

    def counting_capture():
        captures.append(graphs.decoder.shape)
        return capture()

    graphs.decoder._capture_graph = counting_capture
    length = dict(max_new_tokens=args.max_new_tokens, eos_token_id=EOS)
    decodings = {
        "beam4": lambda g, part: g.beam_search(**part, beam_sizes=(4,), num_return_sequences=2, **length),
        "slam": lambda g, part: g.beam_search(**part, beam_sizes=SLAM_SIZES, **length),
        "greedy": lambda g, part: g.sample(**part, do_sample=False, pad_token_id=PAD, **length),
        "sample": lambda g, part: g.sample(
            **part, num_return_sequences=3, do_sample=True, top_k=50, pad_token_id=PAD, **length,
            generator=torch.Generator(device=device).manual_seed(1234),
        ),
    }
    chosen = [d.strip() for d in args.decodings.split(",") if d.strip()]
    unknown = sorted(set(chosen) - set(decodings))
    if unknown:
        raise SystemExit(f"unknown decodings {unknown}; choose from {sorted(decodings)}")
    warm = {key: value[:4] for key, value in inputs.items()}
    failed = False
    with torch.inference_mode():
        for key in chosen:
            decode = decodings[key]
            timings, outputs = {}, {}
            for label, generator in (("eager", eager), ("graphs", graphs)):
                decode(generator, warm)  # warm-up: kernels, allocator, cuBLAS handles of the capture stream
                first_capture = len(captures)
                synchronize(device)
                start = time.perf_counter()
                outputs[label] = flatten(decode(generator, inputs))
                synchronize(device)
                timings[label] = time.perf_counter() - start
                if label == "graphs":
                    timed_captures = len(captures) - first_capture
            ours, theirs = outputs["graphs"], outputs["eager"]
            same_tokens = sum(a[0] == b[0] for a, b in zip(ours, theirs))
            score_diff = max((max(abs(a[1] - b[1]), abs(a[2] - b[2])) for a, b in zip(ours, theirs)), default=0.0)
            ended = sum(len(t) < args.max_new_tokens for t, _, _ in theirs)
            ok = (len(ours) == len(theirs) and same_tokens == len(theirs) and score_diff <= args.tolerance
                  and graphs.decoder.graph_failure is None and (device.type != "cuda" or timed_captures > 0))
            failed |= not ok
            print(json.dumps({
                "decoding": key, "ok": ok, "hypotheses": len(theirs), "same_tokens": same_tokens,
                "max_score_difference": score_diff, "ended_before_limit": ended,
                "eager_s": round(timings["eager"], 3), "graphs_s": round(timings["graphs"], 3),
                "speedup": round(timings["eager"] / timings["graphs"], 2), "captures_in_timed_call": timed_captures,
                "graph_failure": graphs.decoder.graph_failure,
            }), flush=True)
    print("PASS: CUDA-graph decoding equals eager decoding" if not failed else "FAIL: see the lines above", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
