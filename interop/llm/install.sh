#!/usr/bin/env bash
# Installs the Python side of faregate's LLM interop tests -- the official
# openai and anthropic SDKs, pinned in requirements.txt beside this file --
# into a virtualenv, and prints that venv's python as its only output
# (everything else goes to stderr). Idempotent: it reinstalls only when
# requirements.txt changed. Needs python3 >= 3.10 with the venv module (set
# FAREGATE_PYTHON to pick another interpreter). Use it as
#     FAREGATE_LLM_PYTHON=$(bash interop/llm/install.sh) cargo test -p faregate --test llm_sdk
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REQ="$HERE/requirements.txt"
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/faregate/llm-venv"
PY="$VENV/bin/python"
STAMP="$VENV/.faregate-requirements.sha256"
BASE_PYTHON="${FAREGATE_PYTHON:-python3}"

want="$(sha256sum "$REQ" | cut -d' ' -f1)"
up_to_date() { [[ -x $PY && -f $STAMP && "$(cat "$STAMP")" == "$want" ]]; }

if ! up_to_date; then
    mkdir -p "$(dirname "$VENV")"
    # Serialise concurrent installs (several test binaries may call this at once).
    exec 9>"$VENV.lock"
    if command -v flock >/dev/null; then flock 9; fi
    if ! up_to_date; then
        if ! "$BASE_PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
            echo "install.sh: $BASE_PYTHON is missing or older than 3.10" >&2
            exit 1
        fi
        echo "install.sh: creating $VENV" >&2
        if ! "$BASE_PYTHON" -m venv --clear "$VENV" >&2; then
            echo "install.sh: $BASE_PYTHON -m venv failed (Debian and Ubuntu need python3-venv)" >&2
            exit 1
        fi
        # pip's errors still reach stderr under --quiet.
        if ! "$PY" -m pip install --quiet --disable-pip-version-check --no-input -r "$REQ" >&2; then
            echo "install.sh: pip install -r $REQ failed (see above)" >&2
            exit 1
        fi
        if ! "$PY" -c 'import openai, anthropic' >&2; then
            echo "install.sh: the SDKs were installed but do not import (see above)" >&2
            exit 1
        fi
        echo "$want" >"$STAMP"
    fi
fi
echo "$PY"
