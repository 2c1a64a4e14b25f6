#!/usr/bin/env bash
# Creates (or reuses) the Python environment for the example notebooks, their
# headless run in the tests and the scenario timeline (scripts/adaptive-timeline.py):
# $TRACEFEED_HOME/venv with the packages in examples/notebooks/requirements.txt, from PyPI. Quiet when up to date.
# Prints the venv's python path on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
TF_HOME="${TRACEFEED_HOME:-$PWD/.tracefeed}"
VENV="$TF_HOME/venv"
REQ=examples/notebooks/requirements.txt
STAMP="$VENV/.requirements.sha256"
want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [[ ! -x $VENV/bin/python || ! -f $STAMP || $(cat "$STAMP") != "$want" ]]; then
  echo "python-env: installing notebook packages into $VENV (log: $TF_HOME/logs/pip.log)" >&2
  mkdir -p "$TF_HOME/logs"
  command -v python3 >/dev/null || { echo "python-env: python3 is missing (apt-get install python3 python3-venv)" >&2; exit 1; }
  python3 -m venv "$VENV" || { echo "python-env: python3 -m venv failed (apt-get install python3-venv)" >&2; exit 1; }
  if ! "$VENV/bin/pip" install --disable-pip-version-check -q -r "$REQ" >"$TF_HOME/logs/pip.log" 2>&1; then
    tail -n 30 "$TF_HOME/logs/pip.log" >&2
    echo "python-env: pip install failed (full log: $TF_HOME/logs/pip.log)" >&2
    exit 1
  fi
  echo "$want" >"$STAMP"
fi
echo "$VENV/bin/python"
