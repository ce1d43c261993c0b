#!/usr/bin/env bash
# Source this on a bare GPU machine that has torch/transformers/accelerate/peft but no network:
#   . benchmarks/setup_gpu_env.sh
# It installs the wheels carried in .whl/ (datasets, PyWavelets, soundfile, soxr and their pure-Python
# needs; see docs/benchmarks.md for how they are downloaded) into /tmp/site and exposes this checkout
# as the installed packages `modeling_llm_aac` and `llm_aac.{processing,train,eval}` (same mapping as
# pyproject.toml) without needing a build backend.
set -e
repo=$(pwd)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
mkdir -p /tmp/site/llm_aac
cp llm_aac/*.py /tmp/site/llm_aac/
for sub in processing train eval; do ln -sfn "$repo/$sub" "/tmp/site/llm_aac/$sub"; done
ln -sfn "$repo/modeling_llm_aac" /tmp/site/modeling_llm_aac
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
mkdir -p /tmp/bin
printf '#!/usr/bin/env bash\nexec python3 -m llm_aac.cli "$@"\n' > /tmp/bin/llm-aac && chmod +x /tmp/bin/llm-aac
export PATH=/tmp/bin:$PATH
set +e
