#!/usr/bin/env bash
# Installs LiteLLM's proxy (bench/llm/requirements.txt, every dependency
# pinned by requirements.lock) into its own virtualenv and prints that venv's
# directory as its only stdout line. Idempotent: reinstalls only when either
# file changes. Needs python3 >= 3.10 with venv (FAREGATE_PYTHON picks another
# interpreter).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REQS="$HERE/requirements.txt"
LOCK="$HERE/requirements.lock"
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/faregate/litellm-bench-venv"
PY="$VENV/bin/python"
STAMP="$VENV/.faregate-requirements.sha256"
BASE_PYTHON="${FAREGATE_PYTHON:-python3}"

want="$(cat "$REQS" "$LOCK" | sha256sum | cut -d' ' -f1)"
up_to_date() { [[ -x $PY && -x $VENV/bin/litellm && -f $STAMP && "$(cat "$STAMP")" == "$want" ]]; }

if ! up_to_date; then
    mkdir -p "$(dirname "$VENV")"
    exec 9>"$VENV.lock"
    if command -v flock >/dev/null; then flock 9; fi
    if ! up_to_date; then
        if ! "$BASE_PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
            echo "venv.sh: $BASE_PYTHON is missing or older than 3.10" >&2
            exit 1
        fi
        echo "venv.sh: creating $VENV (litellm[proxy], about a minute)" >&2
        "$BASE_PYTHON" -m venv --clear "$VENV" >&2
        "$PY" -m pip install --quiet --disable-pip-version-check --no-input \
            -r "$REQS" -c "$LOCK" >&2
        LITELLM_LOCAL_MODEL_COST_MAP=True "$PY" -c 'import litellm.proxy.proxy_server, uvicorn, uvloop, redis' >&2
        echo "$want" >"$STAMP"
    fi
fi
echo "$VENV"
