#!/usr/bin/env bash
# The captioner's encoder at the demo's sizes, on a CPU (~12 minutes on 2 cores): does the captioner use the
# audio (audio gain) with the EAT stage's weights, a random initialisation, a shorter EAT stage, a frozen
# encoder, or a lower learning rate with larger batches; and what a linear probe of the event types reads from
# each encoder (results in docs/results.md, "Encoder diagnosis at the demo's sizes").
#
#   bash train/recipes/cpu_encoder_diagnosis.sh OUT_DIR
#
# Five `synthetic_gpu.py --smoke --skip-evaluation` runs with every `llm-aac demo` size set, two at a time,
# sharing one stage cache (corpus, features, EAT, text LM); each writes OUT_DIR/NAME/{results.json,report.md}.
set -uo pipefail
OUT=${1:?usage: cpu_encoder_diagnosis.sh OUT_DIR}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
mkdir -p "$OUT"
SIZES=(
    train_clips=400 validation_clips=16 test_clips=50 compositional_clips=4
    eat_steps=300 eat_batch_size=8 eat_max_frames=512 eat_minutes=0.6
    text_clips=3000 vocab_size=600 lm_steps=250 lm_batch_size=16 lm_minutes=1.0
    projector_steps=150 projector_learning_rate=5e-3 projector_minutes=0.8
    lora_steps=900 lora_learning_rate=3e-3 lora_minutes=3.5 captioner_batch_size=8 captioner_eval_steps=300
    probe_train_clips=300 probe_eval_clips=16
)
SETS=()
for item in "${SIZES[@]}"; do SETS+=(--set "$item"); done

run() {  # NAME, then the variant's own options
    local name=$1
    shift
    python "$REPO/train/recipes/synthetic_gpu.py" --smoke --no-progress --skip-evaluation --threads 1 \
        --cache-dir "$OUT/cache" --output "$OUT/$name" "${SETS[@]}" "$@" > "$OUT/$name.log" 2>&1
    echo "$name: exit $? (log $OUT/$name.log)"
}

run baseline  # builds the shared stages first
run scratch --encoder-init scratch &
run eat30 --set eat_steps=30 &
wait
run lr1e3_b24 --set lora_learning_rate=1e-3 --set projector_learning_rate=1e-3 --set captioner_batch_size=24 \
    --set lora_steps=300 &
run frozen --encoder-training frozen &
wait
for name in baseline scratch eat30 lr1e3_b24 frozen; do
    echo "== $name"
    grep -E "^\| (lora|projector) \|" "$OUT/$name/report.md" | tail -1
    grep -E "^\| .*\| mean \|" "$OUT/$name/report.md"
done
