#!/usr/bin/env bash
# User-space instructions per proxied request, faregate beside nginx
# proxy_pass, counted by valgrind's callgrind. Unlike requests/s on a shared
# 2-core VM (±20% from run to run), instruction counts repeat: use this to
# judge a change to the hot path.
#
# Each proxy runs twice under callgrind, on the same nginx upstream: once
# with no load (start-up and shutdown only) and once under wrk. The
# difference, divided by the requests served, is the cost of one request.
# Kernel time (the socket system calls, about half the real cost) is not
# counted; both proxies make the same calls per request.
#
# Usage: bash bench/instructions.sh      Env: DURATION (10), CONNECTIONS (8),
#        FAREGATE_BIN (build one when unset), KEEP_TMP=1
set -euo pipefail

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-8}
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
log() { printf '[instructions] %s\n' "$*" >&2; }
die() { printf '[instructions] ERROR: %s\n' "$*" >&2; exit 1; }

missing=()
command -v valgrind >/dev/null || missing+=(valgrind)
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

FG=${FAREGATE_BIN:-}
if [[ -z $FG ]]; then
    log "building faregate (release)"
    (cd "$ROOT" && cargo build --release -q -p faregate)
    FG=$ROOT/target/release/faregate
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/faregate-instr.XXXXXX")
mkdir -p "$TMP/upstream-tmp" "$TMP/proxy-tmp"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [[ ${KEEP_TMP:-0} == 1 ]] || rm -rf "$TMP"
}
trap cleanup EXIT

read -r UPSTREAM_PORT PROXY_PORT FAREGATE_PORT ADMIN_PORT < <(python3 -c '
import socket
s = [socket.socket() for _ in range(4)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))')
KEY_SHA256=$(printf '%s' fg_test_benchbenchbenchbench01 | sha256sum | cut -d' ' -f1)
for t in nginx-upstream.conf nginx-proxy.conf faregate.toml; do
    sed -e "s|{{TMP}}|$TMP|g; s|{{WORKERS}}|1|g; s|{{UPSTREAM_PORT}}|$UPSTREAM_PORT|g" \
        -e "s|{{PROXY_PORT}}|$PROXY_PORT|g; s|{{FAREGATE_PORT}}|$FAREGATE_PORT|g" \
        -e "s|{{ADMIN_PORT}}|$ADMIN_PORT|g; s|{{KEY_SHA256}}|$KEY_SHA256|g" \
        "$BENCH_DIR/$t.tmpl" >"$TMP/$t"
done

"$NGINX" -p "$TMP" -c "$TMP/nginx-upstream.conf" -g 'daemon off;' >"$TMP/upstream.log" 2>&1 &
PIDS+=($!)

wait_ready() { # url
    for ((i = 0; i < 600; i++)); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1" || true) == 200 ]] && return 0
        sleep 0.1
    done
    die "nothing answers 200 on $1"
}
wait_ready "http://127.0.0.1:$UPSTREAM_PORT/bench/free"

# run NAME URL SIGNAL LOAD -- CMD...: prints "total_instructions requests"
run() {
    local name=$1 url=$2 sig=$3 load=$4
    shift 5
    local out="$TMP/$name.$load.callgrind"
    valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >"$TMP/$name.$load.stdout" 2>"$TMP/$name.$load.stderr" &
    local pid=$!
    wait_ready "$url"
    local requests=0
    if [[ $load == load ]]; then
        requests=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "$url" | awk '/requests in/ {print $1}')
    fi
    kill "-$sig" "$pid"
    wait "$pid" || true
    local total
    total=$(awk '/^totals:/ {print $2}' "$out" 2>/dev/null)
    [[ -n $total ]] || die "$name: no callgrind totals in $out"
    [[ $load == idle || $requests -gt 0 ]] || die "$name: wrk served no requests"
    echo "$total $requests"
}

measure() { # name url signal -- cmd...
    local name=$1 url=$2 sig=$3
    shift 4
    log "$name: start-up and shutdown alone"
    read -r base _ < <(run "$name" "$url" "$sig" idle -- "$@")
    log "$name: under wrk -c$CONNECTIONS for ${DURATION}s"
    read -r total requests < <(run "$name" "$url" "$sig" load -- "$@")
    python3 -c "print(f'{($total - $base) / $requests:.0f} $requests')"
}

# Exported, not passed with `env`: callgrind follows no exec.
export FAREGATE_THREADS=1 FAREGATE_LOG=warn
read -r FG_IPR FG_N < <(measure faregate "http://127.0.0.1:$FAREGATE_PORT/bench/free" INT -- \
    "$FG" serve --config "$TMP/faregate.toml")
read -r NG_IPR NG_N < <(measure nginx "http://127.0.0.1:$PROXY_PORT/bench/free" QUIT -- \
    "$NGINX" -p "$TMP" -c "$TMP/nginx-proxy.conf" -g 'daemon off; master_process off;')

cat <<MD
## User-space instructions per proxied request (callgrind)

- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
- load: \`wrk -t1 -c$CONNECTIONS -d${DURATION}s\` on /bench/free, each proxy alone under callgrind, one worker each

| proxy | requests measured | instructions per request | ÷ nginx |
|---|---:|---:|---:|
| nginx proxy_pass | $NG_N | $NG_IPR | 1.00 |
| faregate (free route, access log on) | $FG_N | $FG_IPR | $(python3 -c "print(f'{$FG_IPR / $NG_IPR:.2f}')") |
MD
