#!/usr/bin/env bash
# One command from a fresh clone to a running dashboard: install, prepare the default model, run the demo
# experiment on it, start a worker and the dashboard on http://localhost:8501.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
ensure_chromium
.venv/bin/ttc models --prepare
STORE=${TTC_STORE:-$PWD/ttc-store}
.venv/bin/ttc run examples/demo.yaml --store "$STORE"
exec .venv/bin/ttc dashboard --store "$STORE" "$@"
