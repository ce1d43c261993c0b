#!/usr/bin/env bash
# GPU pretraining runs of a small EAT on the synthetic corpus (issue 3, section 4).
#
#   bash train/recipes/gpu_pretrain_eat.sh MODE OUT_DIR
#
#   MODE  cwt | fbank  one GPU, Morlet scalogram (64 bins) or Kaldi fbank (128 bins) input
#         both         cwt and fbank at the same time, on GPUs CWT_GPU and FBANK_GPU (default 0 and 1, a 2-GPU
#                      machine; CWT_GPU=0 FBANK_GPU=0 shares one GPU, which a small EAT does not fill)
#         ddp2         fbank on 2 GPUs, data parallel through `accelerate launch` (its python -m form), same global batch
#                      (2 x MICRO_BATCH) as the 1-GPU runs (MICRO_BATCH x 2 accumulation steps)
#
# Each mode fits one 10-minute command on a fresh machine: the synthetic corpus's training clips are
# generated on all CPU cores and featurized on the GPU once, for the mode's feature types only (cached under
# WORK_DIR, reused by a later command on the same machine), then training runs for what is left of BUDGET_S seconds.
# OUT_DIR receives, per run NAME: NAME_loss_curves.png, NAME_log_history.json, NAME_train.log.
# Compare runs afterwards with train/plot_curves.py (see the end of this file).
#
# Environment knobs (defaults): PRESET=small CLIPS=12000 MICRO_BATCH=24 MAX_STEPS=3000 BUDGET_S=540
# TRAIN_MINUTES (default: what BUDGET_S leaves after the preparation) WORK_DIR=/tmp/llm_aac_pretrain SEED=0
# CWT_GPU=0 FBANK_GPU=1 EXTRA_ARGS="" (appended to every pretrain_eat.py call).
# Runs longer than one command (e.g. TRAIN_MINUTES=10.5 for the >= 10-minute curves) are started in their own
# process session so that they outlive the command, and collected by a later command on the same machine:
#   setsid nohup env TRAIN_MINUTES=10.5 CWT_GPU=0 FBANK_GPU=0 bash train/recipes/gpu_pretrain_eat.sh both OUT \
#       > /tmp/pretrain.log 2>&1 < /dev/null &
set -euo pipefail

MODE=${1:?usage: gpu_pretrain_eat.sh cwt|fbank|both|ddp2 OUT_DIR}
OUT=${2:?usage: gpu_pretrain_eat.sh cwt|fbank|both|ddp2 OUT_DIR}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PRESET=${PRESET:-small}
CLIPS=${CLIPS:-12000}
MICRO_BATCH=${MICRO_BATCH:-24}
MAX_STEPS=${MAX_STEPS:-3000}
BUDGET_S=${BUDGET_S:-540}
WORK_DIR=${WORK_DIR:-/tmp/llm_aac_pretrain}
SEED=${SEED:-0}
CWT_GPU=${CWT_GPU:-0}
FBANK_GPU=${FBANK_GPU:-1}
EXTRA_ARGS=${EXTRA_ARGS:-}
START=$(date +%s)
mkdir -p "$OUT" "$WORK_DIR"
cd "$REPO"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
# `python -m` / `-c` put the working directory first on sys.path, where the repo's own llm_aac/ folder (without the
# processing / train / eval subpackages of the installed layout) would shadow the installed package.
export PYTHONSAFEPATH=1
# NVLink multicast stays off on shared hosts (see the machine notes); keep it off for child processes too.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

# Without `pip install -e .` (e.g. an offline GPU image) lay out the installed package names by links.
if ! python3 -c "import llm_aac.train.pretrain_eat" 2>/dev/null; then
    SHIM="$WORK_DIR/shim"
    rm -rf "$SHIM" && mkdir -p "$SHIM/llm_aac"
    cp llm_aac/*.py "$SHIM/llm_aac/"
    for sub in processing train eval; do ln -s "$REPO/$sub" "$SHIM/llm_aac/$sub"; done
    export PYTHONPATH="$SHIM:$REPO${PYTHONPATH:+:$PYTHONPATH}"
fi
python3 -c "import torch, transformers, accelerate; print('torch', torch.__version__, 'transformers', transformers.__version__, 'accelerate', accelerate.__version__, 'GPUs', torch.cuda.device_count())"
# Fail before the synthesis if the package cannot be imported here.
python3 -c "import modeling_llm_aac, llm_aac.train.feature_cache, llm_aac.processing.synthetic"

case "$MODE" in
    cwt|fbank|both|ddp2) ;;
    *) echo "unknown MODE $MODE (cwt, fbank, both, ddp2)" >&2; exit 2 ;;
esac

# 1. Audio once, features of the inputs this mode trains on (cwt ~75 s, fbank ~20 s for 12,000 clips on an H100).
case "$MODE" in
    cwt) FEATURE_TYPES=cwt ;;
    fbank|ddp2) FEATURE_TYPES=fbank ;;
    both) FEATURE_TYPES=cwt,fbank ;;
esac
python3 -m llm_aac.train.feature_cache --clips "$CLIPS" --seed "$SEED" --feature-types "$FEATURE_TYPES" \
    --cache-dir "$WORK_DIR/cache" 2>&1 | tee "$WORK_DIR/prepare.log"

# 2. Training gets what is left of the budget, minus ~90 s for start-up, the final save and the plots.
ELAPSED=$(( $(date +%s) - START ))
TRAIN_MINUTES=${TRAIN_MINUTES:-$(python3 -c "print(max(1.0, ($BUDGET_S - $ELAPSED - 90) / 60))")}
echo "prepared in ${ELAPSED}s; training for at most ${TRAIN_MINUTES} min per run"

common_args() {  # $1 feature type, $2 output dir
    echo --preset "$PRESET" --feature_type "$1" --synthetic_clips "$CLIPS" --synthetic_seed "$SEED" \
        --feature_cache_dir "$WORK_DIR/cache" --max_frames 1024 --bf16 --max_steps "$MAX_STEPS" \
        --max_train_minutes "$TRAIN_MINUTES" --logging_steps 10 --save_strategy no \
        --dataloader_num_workers 6 --seed "$SEED" --output_dir "$2" --disable_tqdm true \
        --config_overrides "ema_decay=0.999,ema_end_decay=0.9999,ema_anneal_end_step=$MAX_STEPS" $EXTRA_ARGS
}

collect() {  # $1 run name, $2 run dir
    cp "$2/log_history.json" "$OUT/$1_log_history.json"
    [ -f "$2/loss_curves.png" ] && cp "$2/loss_curves.png" "$OUT/$1_loss_curves.png"
    cp "$WORK_DIR/$1_train.log" "$OUT/$1_train.log"
    python3 - "$2/log_history.json" "$1" <<'PY'
import json, sys
history = json.load(open(sys.argv[1]))
steps = [e for e in history if "loss" in e]
end = next((e for e in history if "train_runtime" in e), {})
if steps:
    first, last = steps[0], steps[-1]
    print(f"{sys.argv[2]}: steps {first['step']}-{last['step']}, loss {first['loss']:.3f} -> {last['loss']:.3f}, "
          f"frame {first['frame_loss']:.3f} -> {last['frame_loss']:.3f}, utterance {first['utterance_loss']:.3f} -> "
          f"{last['utterance_loss']:.3f}, {end.get('train_samples_per_second', float('nan')):.0f} clips/s")
PY
}

single_gpu() {  # $1 feature type, $2 run name, $3 GPU index
    CUDA_VISIBLE_DEVICES=$3 python3 train/pretrain_eat.py $(common_args "$1" "$WORK_DIR/$2") \
        --per_device_train_batch_size "$MICRO_BATCH" --gradient_accumulation_steps 2 \
        > "$WORK_DIR/$2_train.log" 2>&1
}

case "$MODE" in
    cwt|fbank)
        single_gpu "$MODE" "${MODE}_1gpu" 0 || { tail -50 "$WORK_DIR/${MODE}_1gpu_train.log"; exit 1; }
        collect "${MODE}_1gpu" "$WORK_DIR/${MODE}_1gpu"
        ;;
    both)
        single_gpu cwt cwt_1gpu "$CWT_GPU" & CWT_PID=$!
        single_gpu fbank fbank_1gpu "$FBANK_GPU" & FBANK_PID=$!
        status=0
        wait $CWT_PID || { status=1; tail -50 "$WORK_DIR/cwt_1gpu_train.log"; }
        wait $FBANK_PID || { status=1; tail -50 "$WORK_DIR/fbank_1gpu_train.log"; }
        [ $status -eq 0 ] || exit 1
        collect cwt_1gpu "$WORK_DIR/cwt_1gpu"
        collect fbank_1gpu "$WORK_DIR/fbank_1gpu"
        ;;
    ddp2)
        python3 -m accelerate.commands.launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision bf16 \
            --dynamo_backend no train/pretrain_eat.py $(common_args fbank "$WORK_DIR/fbank_2gpu") \
            --per_device_train_batch_size "$MICRO_BATCH" --gradient_accumulation_steps 1 \
            > "$WORK_DIR/fbank_2gpu_train.log" 2>&1 || { tail -50 "$WORK_DIR/fbank_2gpu_train.log"; exit 1; }
        collect fbank_2gpu "$WORK_DIR/fbank_2gpu"
        # Against the 1-GPU run at the same global batch (REFERENCE: a log history; default the H100 run of
        # docs/runs/): one figure, and the mean relative gap of the losses over the updates both logged.
        REFERENCE=${REFERENCE:-docs/runs/eat_small_fbank_1gpu_h100_log_history.json}
        if [ -f "$REFERENCE" ]; then
            python3 train/plot_curves.py "$REFERENCE" "$OUT/fbank_2gpu_log_history.json" \
                --labels "1 GPU (${MICRO_BATCH} x 2 accumulation),2 GPUs (${MICRO_BATCH} each)" \
                --keys loss,frame_loss,utterance_loss --title "EAT-$PRESET pretraining (fbank), 1 vs 2 GPUs" \
                --output "$OUT/fbank_1gpu_vs_2gpu.png" || true
            python3 - "$REFERENCE" "$OUT/fbank_2gpu_log_history.json" <<'PY'
import json, sys
one, two = ({e["step"]: e for e in json.load(open(path)) if "loss" in e} for path in sys.argv[1:3])
common = sorted(set(one) & set(two))
for key in ("loss", "frame_loss", "utterance_loss"):
    gaps = [abs(two[s][key] - one[s][key]) / abs(one[s][key]) for s in common if one[s][key]]
    if gaps:
        print(f"1 vs 2 GPUs, {key}: {len(gaps)} common logged updates (up to {common[-1]}), mean relative gap "
              f"{100 * sum(gaps) / len(gaps):.1f} %, at the last one {one[common[-1]][key]:.3f} vs {two[common[-1]][key]:.3f}")
PY
        fi
        ;;
esac
echo "done in $(( $(date +%s) - START ))s; outputs in $OUT"

# ddp2 compares itself with REFERENCE (default docs/runs/eat_small_fbank_1gpu_h100_log_history.json, the 1-GPU
# H100 run) in OUT/fbank_1gpu_vs_2gpu.png and prints the relative loss gaps over the updates both runs logged.
