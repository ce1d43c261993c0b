"""Speed of the synthetic corpus generator (`processing/synthetic.py`).

Target: a 30 s clip (audio + 5 captions + ground truth) in well under 0.1 s on one CPU core, so
that `llm-aac synth --num-clips 50000 --num-proc 16` takes minutes. Prints, for the longest
clips among the first scenes and for an average mix of clips: seconds per clip, the real-time
factor (audio seconds generated per compute second) and the ratio to the 0.1 s-per-30 s target,
plus the cost of FLAC encoding (what `llm-aac synth` stores).

    python benchmarks/bench_synthetic.py [--clips 200]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from llm_aac.processing.synthetic import encode_flac, generate_clip, sample_scene

TARGET_S_PER_30S = 0.1


def _time_clips(indices, split="train"):
    seconds, audio_s, flac_s = [], 0.0, 0.0
    for index in indices:
        start = time.perf_counter()
        clip = generate_clip(0, int(index), split)
        middle = time.perf_counter()
        encode_flac(clip["audio"])
        seconds.append(middle - start)
        flac_s += time.perf_counter() - middle
        audio_s += clip["duration"]
    return np.array(seconds), audio_s, flac_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200, help="clips in the average-mix run")
    args = parser.parse_args()

    generate_clip(0, 0, "train")  # warm-up: scipy import, wavetables
    durations = np.array([sample_scene(0, i, "train")["duration"] for i in range(2000)])
    longest = np.argsort(durations)[-20:]
    seconds, audio_s, flac_s = _time_clips(longest)
    per_30s = float((seconds / durations[longest] * 30.0).mean())
    print(f"longest 20 clips ({durations[longest].min():.1f}-{durations[longest].max():.1f} s): "
          f"median {np.median(seconds) * 1e3:.1f} ms, max {seconds.max() * 1e3:.1f} ms per clip; "
          f"{per_30s * 1e3:.1f} ms per 30 s of audio = {TARGET_S_PER_30S / per_30s:.1f}x faster than the 0.1 s target; "
          f"FLAC encoding {flac_s / len(longest) * 1e3:.1f} ms per clip")
    seconds, audio_s, flac_s = _time_clips(range(args.clips))
    total = seconds.sum() + flac_s
    print(f"{args.clips} ordinary clips ({audio_s / args.clips:.1f} s mean): {seconds.mean() * 1e3:.1f} ms per clip, "
          f"{args.clips / total:.1f} clips/s per core incl. FLAC, real-time factor {audio_s / total:.0f}x")


if __name__ == "__main__":
    main()
