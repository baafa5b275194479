# Sourced by scripts/demo and scripts/test: make a virtualenv (./.venv unless VENV=...)
# with Python >= 3.11 (python3 unless PYTHON=...) and install the project into it
# (editable, so rtc_server/web/ and the migrations are served from the tree).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
  || { echo "rtc_server needs Python 3.11, 3.12 or 3.13: '$PY' is missing or older (set PYTHON=...)" >&2; exit 1; }
extras="${1:-}"
stamp="$VENV/.installed${extras:+-$extras}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
elif [ -n "${PYTHON:-}" ]; then
  # An existing virtualenv made with another Python would silently test that one instead.
  want="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  have="$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  if [ "$want" != "$have" ]; then
    echo "$VENV has Python $have, not $want from PYTHON=$PY: remove $VENV or set VENV=.venv-$want" >&2
    exit 1
  fi
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "Installing rtc_server${extras:+[$extras]} into $VENV (first run or pyproject.toml changed)..." >&2
  log="$VENV/install.log"
  # pip's chatter (and setuptools' notes on editable installs) goes to the log; shown on failure.
  if ! { "$VENV/bin/python" -m pip install --upgrade pip \
         && "$VENV/bin/python" -m pip install -e ".${extras:+[$extras]}"; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "installing into $VENV failed; the whole log is in $log" >&2
    exit 1
  fi
  touch "$stamp"
fi
