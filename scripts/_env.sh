# Shared set-up for scripts/quickstart.sh and scripts/test.sh: a local virtual environment with ttc-lab installed,
# and Debian's chromium (chart export to PNG/SVG and the browser tests) when it is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "ttc-lab needs Python >= 3.11 (found $("$PYTHON" --version 2>&1)); set PYTHON=python3.11 or newer" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
ensure_chromium() {
  command -v chromium >/dev/null 2>&1 && return 0
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  if command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium (chart export and browser tests)..." >&2
    $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "warning: no chromium and no apt-get: PNG/SVG export and the browser tests will be skipped" >&2
  fi
}
ensure_postgres() {  # the catalog tests start throwaway servers from Debian's binaries
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && return 0
  command -v initdb >/dev/null 2>&1 && return 0
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  if command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's postgresql (the catalog tests start throwaway servers)..." >&2
    $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "warning: no PostgreSQL and no apt-get: the PostgreSQL catalog tests will fail" >&2
  fi
}
