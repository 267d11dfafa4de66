#!/usr/bin/env bash
# Load benchmark: faregate against nginx proxy_pass, in one run, on one machine.
#
# Starts on 127.0.0.1 (free ports, temp dir):
#   - an nginx upstream serving a ~40-byte JSON body at /bench/free and /bench/paid
#   - nginx proxy_pass in front of it (upstream keepalive pool, HTTP/1.1)
#   - the same nginx doing faregate's work too: forwarding headers, a request
#     id both ways, a JSON access log (nginx-proxy-same.conf.tmpl)
#   - faregate in front of it, access log on: a free route, a route for a
#     config-file API key, and a paid route (an account's key, credit reserved
#     in memory, debits written to a SQLite ledger by the batched writer)
# then measures each with the same wrk settings and prints a markdown table,
# also written to bench/out/latest.md.
#
# Usage: bash bench/run.sh
# Env:   WORKERS (1)       nginx worker_processes (upstream and proxy) and wrk threads
#        CONNECTIONS (64)  wrk connections
#        DURATION (10)     seconds measured per target (after a 2 s warm-up)
#        ROUNDS (1)        rounds over every target, interleaved; the table
#                          shows each target's median round
#        FAREGATE_THREADS  faregate's data-plane worker threads (default: WORKERS,
#                          to match nginx; "auto" leaves faregate's default, one per CPU)
#        FAREGATE_BIN      use this faregate binary instead of building one
#        KEEP_TMP=1        keep the temp dir (configs, logs, raw wrk output)
set -euo pipefail

WORKERS=${WORKERS:-1}
CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-1}
WARMUP=2
FAREGATE_THREADS=${FAREGATE_THREADS:-$WORKERS}
KEY=fg_test_benchbenchbenchbench01
BODY='{"ok":true,"msg":"hello from upstream"}'

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
OUT_DIR="$BENCH_DIR/out"

log() { printf '[bench] %s\n' "$*" >&2; }
die() {
    printf '[bench] ERROR: %s\n' "$*" >&2
    exit 1
}

for v in WORKERS CONNECTIONS DURATION; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
((CONNECTIONS >= WORKERS)) || die "CONNECTIONS ($CONNECTIONS) must be >= WORKERS ($WORKERS) for wrk"
[[ $FAREGATE_THREADS == auto || $FAREGATE_THREADS =~ ^[1-9][0-9]*$ ]] ||
    die "FAREGATE_THREADS must be a positive integer or 'auto', got '$FAREGATE_THREADS'"

# ---------------------------------------------------------------- cleanup ---
TMP=""
PIDS=()
POLICY_RC_CREATED=0
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    local pid i
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "process $pid did not stop on SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null
        fi
        wait "$pid" 2>/dev/null
    done
    if ((POLICY_RC_CREATED)); then rm -f /usr/sbin/policy-rc.d; fi
    if [[ -n $TMP && -d $TMP ]]; then
        if ((rc == 0)) && [[ ${KEEP_TMP:-0} != 1 ]]; then
            rm -rf "$TMP"
        else
            log "logs, configs and raw wrk output kept in $TMP"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- tools -----
find_nginx() {
    command -v nginx 2>/dev/null && return 0
    [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx && return 0
    return 1
}

install_missing() {
    local pkgs=()
    find_nginx >/dev/null || pkgs+=(nginx)
    command -v wrk >/dev/null || pkgs+=(wrk)
    ((${#pkgs[@]})) || return 0
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "need to install ${pkgs[*]} but not root and no sudo"
        sudo=(sudo)
    fi
    command -v apt-get >/dev/null || die "need ${pkgs[*]}; no apt-get here, install them by hand"
    export DEBIAN_FRONTEND=noninteractive
    # Keep the nginx package from starting its system service (on :80) on install.
    if ((EUID == 0)) && [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        POLICY_RC_CREATED=1
    fi
    log "installing: ${pkgs[*]}"
    "${sudo[@]}" apt-get update
    local apt_pkgs=()
    for p in "${pkgs[@]}"; do
        if [[ $p == nginx ]] && apt-cache show nginx-light >/dev/null 2>&1; then
            apt_pkgs+=(nginx-light)
        else
            apt_pkgs+=("$p")
        fi
    done
    "${sudo[@]}" apt-get install -y "${apt_pkgs[@]}"
    if ((POLICY_RC_CREATED)); then
        rm -f /usr/sbin/policy-rc.d
        POLICY_RC_CREATED=0
    fi
}

install_missing
NGINX=$(find_nginx) || die "nginx not found after install"
command -v wrk >/dev/null || die "wrk not found after install"
for t in curl python3 sha256sum awk sed timeout; do
    command -v "$t" >/dev/null || die "$t is required (not installed by this script)"
done

# ---------------------------------------------------------------- faregate --
if [[ -n ${FAREGATE_BIN:-} ]]; then
    FG=$FAREGATE_BIN
    log "using FAREGATE_BIN=$FG"
else
    log "building faregate (release)"
    (cd "$ROOT" && cargo build --release -p faregate) || die "cargo build --release -p faregate failed"
    FG="${CARGO_TARGET_DIR:-$ROOT/target}/release/faregate"
    [[ $FG == /* ]] || FG="$ROOT/$FG"
fi
[[ -x $FG ]] || die "faregate binary not found or not executable: $FG"

# ---------------------------------------------------------------- setup -----
TMP=$(mktemp -d "${TMPDIR:-/tmp}/faregate-bench.XXXXXX")
mkdir -p "$TMP/upstream-tmp" "$TMP/proxy-tmp" "$OUT_DIR"
log "temp dir: $TMP"

# Free loopback ports, all held at once while picking so they are distinct.
read -r UPSTREAM_PORT PROXY_PORT FAREGATE_PORT ADMIN_PORT SAME_PORT < <(
    python3 - <<'PY'
import socket
socks = []
for _ in range(5):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()
PY
)
[[ -n ${SAME_PORT:-} ]] || die "could not pick free ports"
log "ports: upstream=$UPSTREAM_PORT proxy=$PROXY_PORT faregate=$FAREGATE_PORT admin=$ADMIN_PORT"

KEY_SHA256=$(printf '%s' "$KEY" | sha256sum | cut -d' ' -f1)

render() { # template output
    sed -e "s|{{TMP}}|$TMP|g" \
        -e "s|{{WORKERS}}|$WORKERS|g" \
        -e "s|{{UPSTREAM_PORT}}|$UPSTREAM_PORT|g" \
        -e "s|{{PROXY_PORT}}|$PROXY_PORT|g" \
        -e "s|{{FAREGATE_PORT}}|$FAREGATE_PORT|g" \
        -e "s|{{ADMIN_PORT}}|$ADMIN_PORT|g" \
        -e "s|{{SAME_PORT}}|$SAME_PORT|g" \
        -e "s|{{KEY_SHA256}}|$KEY_SHA256|g" \
        "$1" >"$2"
    if grep -nE '\{\{[A-Z_]+\}\}' "$2" >&2; then die "unfilled placeholder in $2 (from $1)"; fi
}
render "$BENCH_DIR/nginx-upstream.conf.tmpl" "$TMP/upstream.conf"
render "$BENCH_DIR/nginx-proxy.conf.tmpl" "$TMP/proxy.conf"
render "$BENCH_DIR/nginx-proxy-same.conf.tmpl" "$TMP/same.conf"
render "$BENCH_DIR/faregate.toml.tmpl" "$TMP/faregate.toml"

# ---------------------------------------------------------------- start -----
start_nginx() { # name
    local name=$1
    "$NGINX" -t -q -p "$TMP" -c "$TMP/$name.conf" -g 'daemon off;' >"$TMP/$name.check.log" 2>&1 ||
        die "nginx config check failed for $name: $(cat "$TMP/$name.check.log")"
    "$NGINX" -p "$TMP" -c "$TMP/$name.conf" -g 'daemon off;' >"$TMP/$name.stdout.log" 2>&1 &
    PIDS+=($!)
    eval "${name^^}_PID=$!"
}

wait_ready() { # name pid url
    local name=$1 pid=$2 url=$3 i code
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || die "$name exited during startup; see logs in $TMP: $(tail -n 20 "$TMP/$name".*.log 2>/dev/null)"
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)
        [[ $code != 000 && -n $code ]] && return 0
        sleep 0.1
    done
    die "$name did not answer on $url within 15 s; see logs in $TMP"
}

start_nginx upstream
wait_ready upstream "$UPSTREAM_PID" "http://127.0.0.1:$UPSTREAM_PORT/bench/free"
start_nginx proxy
wait_ready proxy "$PROXY_PID" "http://127.0.0.1:$PROXY_PORT/bench/free"
start_nginx same
wait_ready same "$SAME_PID" "http://127.0.0.1:$SAME_PORT/bench/free"

"$FG" check-config "$TMP/faregate.toml" >"$TMP/faregate.check.log" 2>&1 ||
    die "faregate check-config rejected the generated config:
$(cat "$TMP/faregate.check.log")"
# The paying account: a million dollars at a micro-dollar a call.
fgcli() { FAREGATE_LOG=warn "$FG" "$@" --config "$TMP/faregate.toml"; }
ACCOUNT=$(fgcli accounts create --name bench | cut -f1) || die "cannot create the bench account"
fgcli credits add --account "$ACCOUNT" --amount 1000000 --reason bench >/dev/null || die "cannot add credit"
PAID_KEY=$(fgcli keys create --account "$ACCOUNT" 2>/dev/null) || die "cannot issue the bench key"
fg_env=(FAREGATE_LOG=warn)
[[ $FAREGATE_THREADS == auto ]] || fg_env+=(FAREGATE_THREADS="$FAREGATE_THREADS")
env -u FAREGATE_THREADS "${fg_env[@]}" "$FG" serve --config "$TMP/faregate.toml" \
    >"$TMP/faregate.access.log" 2>"$TMP/faregate.stderr.log" &
FAREGATE_PID=$!
PIDS+=("$FAREGATE_PID")
wait_ready faregate "$FAREGATE_PID" "http://127.0.0.1:$ADMIN_PORT/healthz"
wait_ready faregate "$FAREGATE_PID" "http://127.0.0.1:$FAREGATE_PORT/bench/free"

# ---------------------------------------------------------------- checks ----
expect() { # label want_status url [curl args...]
    local label=$1 want=$2 url=$3 got
    shift 3
    got=$(curl -sS -o "$TMP/check.body" -w '%{http_code}' --max-time 5 "$@" "$url" 2>"$TMP/check.err" || true)
    if [[ $got != "$want" ]]; then
        die "$label: GET $url answered ${got:-nothing} (want $want)
curl: $(cat "$TMP/check.err")
body: $(head -c 600 "$TMP/check.body" 2>/dev/null)"
    fi
    if [[ $want == 200 && $(cat "$TMP/check.body") != "$BODY" ]]; then
        die "$label: GET $url answered 200 but not the upstream's body; got: $(head -c 600 "$TMP/check.body")"
    fi
    log "check ok: $label -> $got"
}
AUTH=(-H "Authorization: Bearer $KEY")
PAID_AUTH=(-H "Authorization: Bearer $PAID_KEY")
expect "upstream" 200 "http://127.0.0.1:$UPSTREAM_PORT/bench/free"
expect "upstream paid path" 200 "http://127.0.0.1:$UPSTREAM_PORT/bench/paid"
expect "upstream key path" 200 "http://127.0.0.1:$UPSTREAM_PORT/bench/key"
expect "nginx proxy_pass" 200 "http://127.0.0.1:$PROXY_PORT/bench/free"
expect "nginx proxy_pass, same work" 200 "http://127.0.0.1:$SAME_PORT/bench/free"
expect "faregate free" 200 "http://127.0.0.1:$FAREGATE_PORT/bench/free"
expect "faregate key route without key" 401 "http://127.0.0.1:$FAREGATE_PORT/bench/key"
expect "faregate key route with key" 200 "http://127.0.0.1:$FAREGATE_PORT/bench/key" "${AUTH[@]}"
expect "faregate paid without key" 401 "http://127.0.0.1:$FAREGATE_PORT/bench/paid"
expect "faregate paid with the account's key" 200 "http://127.0.0.1:$FAREGATE_PORT/bench/paid" "${PAID_AUTH[@]}"

# ---------------------------------------------------------------- load ------
TARGETS=(upstream nginx nginx_same faregate_free faregate_key faregate_paid)
declare -A LABEL=(
    [upstream]="upstream (direct)"
    [nginx]="nginx proxy_pass"
    [nginx_same]="nginx proxy_pass, same work (forwarding headers, request id, access log)"
    [faregate_free]="faregate free route"
    [faregate_key]="faregate API-key route"
    [faregate_paid]="faregate paid route (credits + ledger)"
)
declare -A URL=(
    [upstream]="http://127.0.0.1:$UPSTREAM_PORT/bench/free"
    [nginx]="http://127.0.0.1:$PROXY_PORT/bench/free"
    [nginx_same]="http://127.0.0.1:$SAME_PORT/bench/free"
    [faregate_free]="http://127.0.0.1:$FAREGATE_PORT/bench/free"
    [faregate_key]="http://127.0.0.1:$FAREGATE_PORT/bench/key"
    [faregate_paid]="http://127.0.0.1:$FAREGATE_PORT/bench/paid"
)
declare -A PIDOF=([upstream]=$UPSTREAM_PID [nginx]=$PROXY_PID [nginx_same]=$SAME_PID [faregate_free]=$FAREGATE_PID [faregate_key]=$FAREGATE_PID [faregate_paid]=$FAREGATE_PID)
declare -A RPS P50 P99 NON2XX SOCKERR ROUND_RPS ROUND_P50 ROUND_P99
LEDGER_DEBITS=0 LEDGER_BATCHES=0 LEDGER_ROWS=0

# Prints: rps p50_ms p99_ms non2xx socket_errors (socket_errors last, may hold spaces)
parse_wrk() {
    awk '
    function ms(v,   n, u) {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") return n / 1000
        if (u == "ms") return n
        if (u == "s")  return n * 1000
        if (u == "m")  return n * 60000
        if (u == "h")  return n * 3600000
        return ""
    }
    /^Requests\/sec:/              { rps = $2 }
    /^[ \t]*50%[ \t]/              { p50 = ms($2) }
    /^[ \t]*99%[ \t]/              { p99 = ms($2) }
    /Non-2xx or 3xx responses:/    { non2xx = $NF }
    /Socket errors:/               { s = $0; sub(/^[ \t]*Socket errors:[ \t]*/, "", s) }
    END {
        if (rps == "" || p50 == "" || p99 == "") exit 1
        printf "%s %s %s %s %s\n", rps, p50, p99, (non2xx == "" ? 0 : non2xx), (s == "" ? "none" : s)
    }' "$1"
}

run_target() { # key round
    local t=$1 round=$2 url=${URL[$1]} args=() out
    [[ $t == faregate_key ]] && args=("${AUTH[@]}")
    [[ $t == faregate_paid ]] && args=("${PAID_AUTH[@]}")
    kill -0 "${PIDOF[$t]}" 2>/dev/null || die "${LABEL[$t]}: its server is no longer running; see logs in $TMP"
    log "${LABEL[$t]}: warm-up ${WARMUP}s"
    timeout $((WARMUP + 30)) wrk -t "$WORKERS" -c "$CONNECTIONS" -d "${WARMUP}s" "${args[@]}" "$url" \
        >"$TMP/wrk-$t-warmup.txt" 2>&1 || die "wrk warm-up failed for ${LABEL[$t]}: $(cat "$TMP/wrk-$t-warmup.txt")"
    log "${LABEL[$t]}: measuring ${DURATION}s"
    out="$TMP/wrk-$t-$round.txt"
    [[ $t == faregate_paid ]] && ledger_metrics >"$TMP/ledger-before.txt"
    timeout $((DURATION + 60)) wrk -t "$WORKERS" -c "$CONNECTIONS" -d "${DURATION}s" --latency "${args[@]}" "$url" \
        >"$out" 2>&1 || die "wrk failed for ${LABEL[$t]}: $(cat "$out")"
    if [[ $t == faregate_paid ]]; then
        sleep 0.2
        ledger_metrics >"$TMP/ledger-after.txt"
        local d0 b0 r0 d1 b1 r1
        read -r d0 b0 r0 <"$TMP/ledger-before.txt"
        read -r d1 b1 r1 <"$TMP/ledger-after.txt"
        LEDGER_DEBITS=$((LEDGER_DEBITS + d1 - d0)) LEDGER_BATCHES=$((LEDGER_BATCHES + b1 - b0))
        LEDGER_ROWS=$((LEDGER_ROWS + r1 - r0))
    fi
    kill -0 "${PIDOF[$t]}" 2>/dev/null || die "${LABEL[$t]}: its server died under load; see logs in $TMP"
    local r p5 p9 n s
    read -r r p5 p9 n s < <(parse_wrk "$out") || die "cannot parse wrk output for ${LABEL[$t]}:
$(cat "$out")"
    ROUND_RPS[$t]+="$r " ROUND_P50[$t]+="$p5 " ROUND_P99[$t]+="$p9 "
    NON2XX[$t]=$((${NON2XX[$t]:-0} + n))
    [[ $s == none ]] || SOCKERR[$t]="$s"
    log "${LABEL[$t]} (round $round/$ROUNDS): $r req/s, p50 ${p5} ms, p99 ${p9} ms"
}

median() { # numbers...
    printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# Prints: debits batches rows (the ledger writer's counters)
ledger_metrics() {
    curl -s --max-time 5 "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '
        /^faregate_ledger_debits_total / { d = $2 }
        /^faregate_ledger_batches_total / { b = $2 }
        /^faregate_ledger_rows_total / { r = $2 }
        END { printf "%d %d %d\n", d, b, r }'
}

# Rounds interleave the targets, so that a slow minute of this shared
# machine does not fall on one target only.
for ((round = 1; round <= ROUNDS; round++)); do
    for t in "${TARGETS[@]}"; do run_target "$t" "$round"; done
done
for t in "${TARGETS[@]}"; do
    # shellcheck disable=SC2086 # word splitting of the lists is wanted
    RPS[$t]=$(median ${ROUND_RPS[$t]}) P50[$t]=$(median ${ROUND_P50[$t]}) P99[$t]=$(median ${ROUND_P99[$t]})
    SOCKERR[$t]=${SOCKERR[$t]:-none}
done
# The ledger must account for every paid request: verify it.
fgcli ledger verify >"$TMP/ledger-verify.txt" 2>&1 || die "ledger verify failed: $(cat "$TMP/ledger-verify.txt")"

# ---------------------------------------------------------------- report ----
access_lines=$(wc -l <"$TMP/faregate.access.log" | tr -d ' ')
dropped=$( (curl -s --max-time 5 "http://127.0.0.1:$ADMIN_PORT/metrics" || true) |
    awk '/^faregate_access_log_dropped_total/ { print $NF; found = 1 } END { if (!found) print "unknown" }')

commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $commit != unknown && -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    commit="$commit (+ uncommitted changes)"
fi
cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
[[ -n $cpu_model ]] || cpu_model=unknown
nginx_ver=$("$NGINX" -v 2>&1 | sed 's|^nginx version: ||')
wrk_ver=$( (wrk -v 2>&1 || true) | head -n 1 | awk '{ print $1, $2 }')
fg_ver=$("$FG" --version 2>/dev/null || echo unknown)
threads_desc=$([[ $FAREGATE_THREADS == auto ]] && echo "default ($(nproc))" || echo "$FAREGATE_THREADS")

report="$TMP/report.md"
{
    echo "## faregate vs nginx proxy_pass"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "- commit: $commit"
    echo "- machine: $(nproc) CPUs, $cpu_model"
    echo "- load: \`wrk -t $WORKERS -c $CONNECTIONS -d ${DURATION}s --latency\`, after a ${WARMUP}s warm-up per target; everything on 127.0.0.1"
    echo "- rounds: $ROUNDS, targets interleaved; each figure is the target's median round"
    echo "- processes (one machine): wrk $WORKERS thread(s); nginx upstream $WORKERS worker(s); nginx proxy $WORKERS worker(s); faregate $threads_desc data-plane worker thread(s) + main thread (accepts, ledger writer, admin) + access-log thread"
    echo "- versions: $nginx_ver, $wrk_ver, $fg_ver"
    echo "- response: ${#BODY}-byte JSON from the upstream; paid route sends \`Authorization: Bearer <key>\`"
    echo
    echo "| target | req/s | p50 ms | p99 ms | req/s ÷ nginx proxy_pass | ÷ nginx, same work | added p99 vs upstream (ms) |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for t in "${TARGETS[@]}"; do
        awk -v name="${LABEL[$t]}" -v t="$t" -v rps="${RPS[$t]}" -v p50="${P50[$t]}" -v p99="${P99[$t]}" \
            -v nrps="${RPS[nginx]}" -v srps="${RPS[nginx_same]}" -v up99="${P99[upstream]}" -v bad="${NON2XX[$t]}" 'BEGIN {
            flag = (bad + 0 > 0) ? " (!)" : ""
            added = (t == "upstream") ? "—" : sprintf("%+.2f", p99 - up99)
            printf "| %s%s | %.0f | %.2f | %.2f | %.2f | %.2f | %s |\n", name, flag, rps, p50, p99, rps / nrps, rps / srps, added
        }'
    done
    echo
    awk -v d="$LEDGER_DEBITS" -v b="$LEDGER_BATCHES" -v r="$LEDGER_ROWS" -v s="$((DURATION * ROUNDS))" 'BEGIN {
        printf "Paid route ledger (measured runs only): %d debits in %d database transactions", d, b
        if (d > 0) printf " = %.2f transactions per 1000 paid requests", b * 1000 / d
        printf "; %d ledger rows written = %.0f rows/s. `faregate ledger verify`: ok.\n\n", r, r / s
    }'
    if ((ROUNDS >= 3)); then
        echo "Each round's req/s ÷ nginx proxy_pass of the same round; their geometric mean and its 95% confidence interval (Student's t over the rounds' log ratios): an interval that holds 1.00 is parity within this run's noise."
        echo
        echo "| target | per round | mean | 95% CI |"
        echo "|---|---|---:|---|"
        for t in nginx_same faregate_free faregate_key faregate_paid; do
            awk -v name="${LABEL[$t]}" -v a="${ROUND_RPS[$t]}" -v b="${ROUND_RPS[nginx]}" 'BEGIN {
                n = split(a, x, " "); split(b, y, " ")
                # two-sided 95% Student t for n - 1 degrees of freedom
                split("12.71 4.30 3.18 2.78 2.57 2.45 2.36 2.31 2.26 2.23 2.20 2.18 2.16 2.14 2.13", tq, " ")
                list = ""; sum = 0
                for (i = 1; i <= n; i++) {
                    r[i] = log(x[i] / y[i]); sum += r[i]
                    list = list sprintf("%s%.2f", (i > 1 ? ", " : ""), x[i] / y[i])
                }
                mean = sum / n; ss = 0
                for (i = 1; i <= n; i++) ss += (r[i] - mean) ^ 2
                half = ((n - 1 <= 15) ? tq[n - 1] : 2.0) * sqrt(ss / (n - 1) / n)
                printf "| %s | %s | %.2f | %.2f–%.2f |\n", name, list, exp(mean), exp(mean - half), exp(mean + half)
            }'
        done
        echo
    fi
    echo "Errors during measurement:"
    for t in "${TARGETS[@]}"; do
        echo "- ${LABEL[$t]}: non-2xx/3xx responses ${NON2XX[$t]}; socket errors: ${SOCKERR[$t]}"
    done
    echo "- faregate access log: $access_lines lines written (warm-ups, checks and runs), $dropped dropped under back-pressure"
} >"$report"

cp "$report" "$OUT_DIR/latest.md"
echo
cat "$report"
echo
log "written to ${OUT_DIR#"$ROOT"/}/latest.md"

bad=0
for t in "${TARGETS[@]}"; do
    if ((NON2XX[$t] > 0)); then bad=1; fi
done
if ((bad)); then
    die "some targets answered non-2xx responses under load (marked (!)): their numbers are not comparable"
fi
