#!/usr/bin/env bash
# One command for the whole test suite: install ttc-lab with its test extra, check the style (ruff lint and
# format, mypy on backend/ and store/), run every tier of the base install (unit, real-model integration, Streamlit
# AppTest and headless-Chromium UI; the catalog on SQLite and on throwaway PostgreSQL servers from Debian's
# packages), then the vLLM tier in its own environment (.venv-vllm: vLLM's CPU build, made
# by scripts/vllm-env.sh on first use). GPU tests skip without a GPU. Every test's time is kept in .test-results/
# (JUnit XML; scripts/suite_times.py summarises it).
# With pytest arguments only pytest runs: tests/vllm... in .venv-vllm, anything else in .venv.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
ensure_chromium
ensure_postgres
export TTC_REQUIRE_POSTGRES=1  # the catalog tests must run on PostgreSQL here, not skip
if [ "$#" -eq 0 ]; then  # the whole suite starts with the checked style: lint, format, types
  # the vLLM environment (mostly downloads and unpacking) is made while the base tiers run; its log is printed
  # only if it fails
  ./scripts/vllm-env.sh > .venv-vllm.log 2>&1 &
  vllm_env=$!
  trap 'kill "$vllm_env" 2>/dev/null || true' EXIT
  .venv/bin/ruff check .
  .venv/bin/ruff format --check .
  .venv/bin/mypy
  .venv/bin/python -m pytest -q --durations=15 --junitxml=.test-results/base.xml
  wait "$vllm_env" || { cat .venv-vllm.log >&2; echo "scripts/vllm-env.sh failed (log above)" >&2; exit 1; }
  trap - EXIT
  exec .venv-vllm/bin/python -m pytest -q --junitxml=.test-results/vllm.xml tests/vllm
fi
case "$1" in
  tests/vllm*)
    ./scripts/vllm-env.sh
    exec .venv-vllm/bin/python -m pytest -q "$@"
    ;;
esac
exec .venv/bin/python -m pytest -q "$@"
