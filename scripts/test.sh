#!/usr/bin/env bash
# One command for the whole test suite: install ttc-lab with its test extra, then run every tier
# (unit, real-model integration, Streamlit AppTest and headless-Chromium UI). GPU tests skip without a GPU.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
ensure_chromium
exec .venv/bin/python -m pytest -q "$@"
