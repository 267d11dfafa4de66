#!/usr/bin/env bash
# Installs the Python side of bench/x402_paid.sh into its own virtualenv --
# interop/x402/requirements.txt (the official x402 SDK, pinned) plus
# bench/x402/requirements.txt (FastAPI + uvicorn for the SDK's server
# middleware) -- and prints that venv's python as its only stdout line.
# Kept apart from interop/x402's venv so the benchmark's web stack never
# leaks into the interop tests. Idempotent: reinstalls only when either
# requirements file changes. Needs python3 >= 3.10 with venv
# (FAREGATE_PYTHON picks another interpreter).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
REQS=("$ROOT/interop/x402/requirements.txt" "$HERE/requirements.txt")
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/faregate/x402-bench-venv"
PY="$VENV/bin/python"
STAMP="$VENV/.faregate-requirements.sha256"
BASE_PYTHON="${FAREGATE_PYTHON:-python3}"

want="$(cat "${REQS[@]}" | sha256sum | cut -d' ' -f1)"
up_to_date() { [[ -x $PY && -f $STAMP && "$(cat "$STAMP")" == "$want" ]]; }

if ! up_to_date; then
    mkdir -p "$(dirname "$VENV")"
    exec 9>"$VENV.lock"
    if command -v flock >/dev/null; then flock 9; fi
    if ! up_to_date; then
        if ! "$BASE_PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
            echo "venv.sh: $BASE_PYTHON is missing or older than 3.10" >&2
            exit 1
        fi
        echo "venv.sh: creating $VENV" >&2
        "$BASE_PYTHON" -m venv --clear "$VENV" >&2
        "$PY" -m pip install --quiet --disable-pip-version-check --no-input \
            -r "${REQS[0]}" -r "${REQS[1]}" >&2
        "$PY" -c 'import x402.http.middleware.fastapi, uvicorn, uvloop, httptools, coincurve' >&2
        echo "$want" >"$STAMP"
    fi
fi
echo "$PY"
