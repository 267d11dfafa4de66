#!/usr/bin/env bash
# What running the helper threads below the workers buys (ARCHITECTURE §5,
# "Threads"): two faregate gateways, one binary, in front of one LLM double,
# on 127.0.0.1. "lowered" runs as built (SQLite's and the access log's
# threads at nice 10); "equal" has them put back at the main thread's
# priority with renice, which needs root (lowering a nice value takes
# CAP_SYS_NICE). Both use bench/llm/faregate.toml.tmpl (budgets on, the
# batched SQLite ledger, a 10 ms flush), each with its own account and key.
# bench/llm/paired.py then loads the double and both gateways in turn at one
# connection, round after round, plain and streamed, and prints the added
# p50 and p99 of each.
#
# Usage: sudo bash bench/llm-helpers.sh
# Env:   ROUNDS (10), DURATION (4 s per load), MODES ("0 1": plain, streamed),
#        FAREGATE_BIN (default: build the release binary), KEEP_TMP=1
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${ROUNDS:-10}
DURATION=${DURATION:-4}
MODES=${MODES:-0 1}
ADMIN_TOKEN=bench-admin-token
DOUBLE_KEY=sk-double

log() { printf '[llm-helpers] %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}
((EUID == 0)) || die "run as root: putting the helpers back at nice 0 takes CAP_SYS_NICE"
for t in wrk curl python3 renice setsid; do command -v "$t" >/dev/null || die "$t is required"; done
[[ $(uname -s) == Linux ]] || die "the helpers are lowered on Linux only"

if [[ -n ${FAREGATE_BIN:-} ]]; then
    FG=$FAREGATE_BIN
else
    (cd "$ROOT" && cargo build --release -p faregate) || die "cargo build failed"
    FG="${CARGO_TARGET_DIR:-$ROOT/target}/release/faregate"
fi
[[ -x $FG ]] || die "no faregate binary at $FG"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/faregate-llm-helpers.XXXXXX")
PIDS=()
cleanup() {
    local rc=$? pid
    for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if ((rc == 0)) && [[ ${KEEP_TMP:-0} != 1 ]]; then rm -rf "$TMP"; else log "kept $TMP"; fi
    exit "$rc"
}
trap cleanup EXIT

read -r DOUBLE_PORT P1 A1 P2 A2 < <(python3 -c '
import socket
s = [socket.socket() for _ in range(5)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))')

start_bg() { # name cmd...
    local name=$1
    shift
    setsid "$@" >"$TMP/$name.log" 2>&1 </dev/null &
    PIDS+=("$!")
}
wait_ok() { # url
    local i
    for ((i = 0; i < 75; i++)); do
        curl -sf -o /dev/null --max-time 1 "$1" && return 0
        sleep 0.2
    done
    die "nothing answered on $1; logs in $TMP"
}

start_bg double "$FG" --threads 1 llm-double --listen "127.0.0.1:$DOUBLE_PORT" --api-key "$DOUBLE_KEY"

# gateway NAME PORT ADMIN_PORT: starts it, makes an account with credit and a
# key, and writes the key to $TMP/NAME/key. (Not run in $(...): the
# process it starts must be in this shell's PIDS for cleanup.)
gateway() {
    local name=$1 port=$2 admin=$3 dir="$TMP/$1" account
    mkdir -p "$dir"
    sed -e "s|{{TMP}}|$dir|g" -e "s|{{DOUBLE_PORT}}|$DOUBLE_PORT|g" \
        -e "s|{{DOUBLE_KEY}}|$DOUBLE_KEY|g" -e "s|{{FAREGATE_PORT}}|$port|g" \
        -e "s|{{ADMIN_PORT}}|$admin|g" -e "s|{{ADMIN_TOKEN}}|$ADMIN_TOKEN|g" \
        -e "s|{{FLUSH_INTERVAL}}|10ms|g" "$ROOT/bench/llm/faregate.toml.tmpl" >"$dir/faregate.toml"
    start_bg "$name" env FAREGATE_LOG=warn "$FG" --threads "$(nproc)" serve --config "$dir/faregate.toml"
    wait_ok "http://127.0.0.1:$admin/healthz"
    local api=(-sSf --max-time 10 -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json')
    account=$(curl "${api[@]}" -d '{"name":"helpers","currency":"USD"}' \
        "http://127.0.0.1:$admin/v1/accounts" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    curl "${api[@]}" -H "Idempotency-Key: helpers-$account" -d '{"amount":"1000.00","currency":"USD","reason":"bench"}' \
        "http://127.0.0.1:$admin/v1/accounts/$account/credits" >/dev/null
    curl "${api[@]}" -d '{}' "http://127.0.0.1:$admin/v1/accounts/$account/keys" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])' >"$dir/key"
}
gateway lowered "$P1" "$A1"
gateway equal "$P2" "$A2"
KEY1=$(cat "$TMP/lowered/key")
KEY2=$(cat "$TMP/equal/key")

# "equal": every thread back at the main thread's nice value.
EQUAL_PID=$(pgrep -f "serve --config $TMP/equal/faregate.toml" | head -n 1)
[[ -n $EQUAL_PID ]] || die "cannot find the second gateway's process"
main_nice=$(ps -o ni= -p "$EQUAL_PID" | tr -d ' ')
for task in /proc/"$EQUAL_PID"/task/*; do
    renice -n "$main_nice" -p "${task##*/}" >/dev/null
done
log "threads (name, nice) of lowered: $(ps -L -o comm=,ni= -p "$(pgrep -f "serve --config $TMP/lowered/faregate.toml" | head -n 1)" | sort | uniq -c | tr -s ' ' | tr '\n' ';')"
log "threads (name, nice) of equal:   $(ps -L -o comm=,ni= -p "$EQUAL_PID" | sort | uniq -c | tr -s ' ' | tr '\n' ';')"

for mode in $MODES; do
    echo "## LLM_STREAM=$mode, one connection, $ROUNDS rounds of ${DURATION}s (added over the double, us)"
    LLM_STREAM=$mode ROUNDS=$ROUNDS DURATION=$DURATION python3 "$ROOT/bench/llm/paired.py" \
        "$ROOT/bench/llm/chat.lua" "http://127.0.0.1:$DOUBLE_PORT" "$DOUBLE_KEY" \
        "lowered=http://127.0.0.1:$P1=$KEY1" "equal=http://127.0.0.1:$P2=$KEY2"
done
