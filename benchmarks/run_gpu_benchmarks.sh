#!/usr/bin/env bash
# All GPU benchmark figures of docs/benchmarks.md in one command on one GPU (about 10 minutes on an H100):
#
#   bash benchmarks/run_gpu_benchmarks.sh OUT_DIR [generate,eat,features]
#
# 1. generate: CUDA-graph vs eager equality of the fast decoder (check_fast_generation_cuda.py, ~1 min), then
#    bench_generate.py (Vicuna-7B-shaped captioner, 1,045 clips of 20 s; beam 4, SLAM 7-pass and single-pass
#    candidates, each with and without CUDA graphs, HF eager generate baselines on subsets; CLAP rescoring of 256
#    clips with numpy and with torch preprocessing).
# 2. eat: bench_eat_pretrain.py (EAT-base, 12 and 24 clips x 16 clones, compiled, bf16) with the kernel profile.
# 3. features: bench_features.py --quick --device all --gpu-batch 256.
# Each part has its own time limit (seconds: GEN_S=420 EAT_S=240 FEATURES_S=120), so one slow part cannot take the
# others' time; every log lands in OUT_DIR (one file per part), and a one-line summary per part is printed.
# On an offline GPU image run `. benchmarks/setup_gpu_env.sh` first.
set -uo pipefail
OUT=${1:?usage: run_gpu_benchmarks.sh OUT_DIR [generate,eat,features]}
PARTS=${2:-generate,eat,features}
GEN_S=${GEN_S:-420}
EAT_S=${EAT_S:-240}
FEATURES_S=${FEATURES_S:-120}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
status=0

run_part() {  # $1 name, $2 seconds, rest: command
    local name=$1 seconds=$2
    shift 2
    local start=$(date +%s)
    timeout "$seconds" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    echo "== $name: exit $rc after $(( $(date +%s) - start )) s (log $OUT/$name.log)"
    [ $rc -eq 0 ] || status=1
    return $rc
}

if [[ ",$PARTS," == *",generate,"* ]]; then
    run_part check_fast_generation 120 python3 "$HERE/check_fast_generation_cuda.py"
    tail -3 "$OUT/check_fast_generation.log"
    run_part bench_generate "$GEN_S" python3 "$HERE/bench_generate.py" --variants features,beam4,slam,single,clap \
        --cuda-graphs both --check 8 --hf-clips 16 --hf-batch 16 --hf-slam-clips 2 --clap-clips 256 \
        --clap-preprocessing both --json-out "$OUT/bench_generate.json"
    grep -E '^\| |x the clips/s' "$OUT/bench_generate.log"
fi
if [[ ",$PARTS," == *",eat,"* ]]; then
    run_part bench_eat_pretrain "$EAT_S" python3 "$HERE/bench_eat_pretrain.py" --batch-sizes 12,24 --variants compile \
        --profile --output-json "$OUT/bench_eat_pretrain.json"
    grep -E 'clips/s' "$OUT/bench_eat_pretrain.log"
fi
if [[ ",$PARTS," == *",features,"* ]]; then
    run_part bench_features "$FEATURES_S" python3 "$HERE/bench_features.py" --quick --device all --gpu-batch 256
    tail -12 "$OUT/bench_features.log"
fi
exit $status
