#!/usr/bin/env bash
# One command for the whole test suite: install ttc-lab with its test extra, check the style (ruff lint and
# format, mypy on backend/ and store/), then run every tier (unit, real-model integration, Streamlit AppTest and
# headless-Chromium UI). GPU tests skip without a GPU. With pytest arguments, only pytest runs.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
ensure_chromium
if [ "$#" -eq 0 ]; then  # the whole suite starts with the checked style: lint, format, types
  .venv/bin/ruff check .
  .venv/bin/ruff format --check .
  .venv/bin/mypy
fi
exec .venv/bin/python -m pytest -q "$@"
