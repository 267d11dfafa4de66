#!/usr/bin/env bash
# End-to-end x402 paid request rate: faregate against the official Python
# x402 server middleware, same machine, same run, same chain, as a ratio.
#
# Starts on 127.0.0.1 (free ports, temp dir):
#   - anvil --chain-id 84532 (automine), the EIP-3009 test token at Base
#     Sepolia's USDC address, the payer (anvil account 1) minted plenty;
#   - an nginx upstream serving a 39-byte JSON body at /bench/paid;
#   - faregate (release) with an x402 route in front of it, settling on the
#     anvil itself (settlement = "chain", gas from anvil account 2);
#   - then, one after the other, each Python variant: FastAPI + the x402
#     package's own middleware answering the same body, its own facilitator
#     settling on the same anvil (gas from anvil account 3).
# For each server, bench/x402/drive.py pre-signs distinct payments with the
# official Python client (each its own EIP-3009 nonce) and sends them with
# CONCURRENCY in flight for up to DURATION seconds, counting only 200s with a
# PAYMENT-RESPONSE of success:true. The payee's on-chain balance must grow by
# exactly the price times that count. Prints a markdown table, also written to
# bench/out/x402_paid.md.
#
# Usage: bash bench/x402_paid.sh
# Env:   DURATION (20)        seconds measured per server (at most 30)
#        CONCURRENCY (32)     requests in flight
#        N_FAREGATE (6000)    payments pre-signed for faregate
#        N_PYTHON (800)       payments pre-signed for each Python variant
#        FAREGATE_THREADS (1) faregate's worker threads ("auto": one per CPU);
#                             1 matches uvicorn's single worker
#        CHECK_CHAIN (true)   faregate reads the nonce state and balance before
#                             forwarding, as the reference verify reads the chain
#        GAS_LIMIT (500000)   faregate's x402.gas_limit: a fixed gas limit per
#                             transfer, as the Python SDK's signer sends (its
#                             _DEFAULT_TX_GAS_LIMIT); "estimate": estimate each one
#        PY_VARIANTS          "facilitator:ecc ..." (empty: none; default
#                             "inprocess:native inprocess:coincurve http:coincurve"):
#                             inprocess = the SDK facilitator in the server process;
#                             http = a separate facilitator server (bench/x402/
#                             python_facilitator.py) behind HTTPFacilitatorClient;
#                             native = eth_keys' pure-Python secp256k1, what a bare
#                             `pip install x402[fastapi,evm]` runs; coincurve = libsecp256k1
#        ANVIL_ARGS           extra anvil flags (e.g. "--prune-history"); each
#                             server gets a fresh anvil
#        RPC_COUNTS=1         let anvil log its calls and report the JSON-RPC calls
#                             per paid request of each server (logging costs anvil a little)
#        FAREGATE_BIN         use this faregate binary instead of building one
#        KEEP_TMP=1           keep the temp dir (configs, logs, raw results)
set -euo pipefail

DURATION=${DURATION:-20}
CONCURRENCY=${CONCURRENCY:-32}
N_FAREGATE=${N_FAREGATE:-6000}
N_PYTHON=${N_PYTHON:-800}
FAREGATE_THREADS=${FAREGATE_THREADS:-1}
CHECK_CHAIN=${CHECK_CHAIN:-true}
GAS_LIMIT=${GAS_LIMIT:-500000}
ANVIL_ARGS=${ANVIL_ARGS:-}
RPC_COUNTS=${RPC_COUNTS:-0}
PY_VARIANTS=${PY_VARIANTS-"inprocess:native inprocess:coincurve http:coincurve"}
BODY='{"ok":true,"msg":"hello from upstream"}'
USDC=0x036CbD53842c5426634e7929541eC2318f3dCF7e
PRICE_UNITS=10000 # 0.01 USD at 6 decimals
# anvil's development accounts (mnemonic "test test ... junk")
PAYER_KEY=59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d # account 1
PAYER=0x70997970C51812dc3A010C7d01b50e0d17dc79C8
FAREGATE_GAS_KEY=5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a # account 2
PYTHON_GAS_KEY=7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6   # account 3
PAY_TO=0xa0Ee7A142d267C1f36714E4a8F75612F20a79720                                # account 9

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
OUT_DIR="$BENCH_DIR/out"
X="$BENCH_DIR/x402"

log() { printf '[x402-paid] %s\n' "$*" >&2; }
die() {
    printf '[x402-paid] ERROR: %s\n' "$*" >&2
    exit 1
}

for v in DURATION CONCURRENCY N_FAREGATE N_PYTHON; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
((DURATION <= 30)) || die "DURATION is at most 30 s per server"
[[ $FAREGATE_THREADS == auto || $FAREGATE_THREADS =~ ^[1-9][0-9]*$ ]] ||
    die "FAREGATE_THREADS must be a positive integer or 'auto'"
[[ $CHECK_CHAIN == true || $CHECK_CHAIN == false ]] || die "CHECK_CHAIN is true or false"
[[ $GAS_LIMIT == estimate || $GAS_LIMIT =~ ^[1-9][0-9]*$ ]] || die "GAS_LIMIT is a positive integer or 'estimate'"
if [[ $GAS_LIMIT == estimate ]]; then GAS_LIMIT_LINE=""; else GAS_LIMIT_LINE="gas_limit = $GAS_LIMIT"; fi
for variant in $PY_VARIANTS; do
    [[ $variant =~ ^(inprocess|http):(native|coincurve)$ ]] ||
        die "PY_VARIANTS: '$variant' is not inprocess|http : native|coincurve"
done

# ---------------------------------------------------------------- cleanup ---
TMP=""
PIDS=()
POLICY_RC_CREATED=0
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    stop_all
    if ((POLICY_RC_CREATED)); then rm -f /usr/sbin/policy-rc.d; fi
    if [[ -n $TMP && -d $TMP ]]; then
        if ((rc == 0)) && [[ ${KEEP_TMP:-0} != 1 ]]; then
            rm -rf "$TMP"
        else
            log "logs, configs and raw results kept in $TMP"
        fi
    fi
    exit "$rc"
}
stop_pid() { # pid
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}
stop_all() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    PIDS=()
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
install_nginx() { # as bench/run.sh does: nginx-light, without starting its service
    find_nginx >/dev/null && return 0
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "need nginx, but not root and no sudo"
        sudo=(sudo)
    fi
    command -v apt-get >/dev/null || die "need nginx; no apt-get here, install it by hand"
    export DEBIAN_FRONTEND=noninteractive
    if ((EUID == 0)) && [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        POLICY_RC_CREATED=1
    fi
    log "installing nginx-light"
    "${sudo[@]}" apt-get update >&2
    "${sudo[@]}" apt-get install -y nginx-light >&2
    if ((POLICY_RC_CREATED)); then
        rm -f /usr/sbin/policy-rc.d
        POLICY_RC_CREATED=0
    fi
}
install_nginx
NGINX=$(find_nginx) || die "nginx not found after install"
for t in curl python3 awk sed; do
    command -v "$t" >/dev/null || die "$t is required (not installed by this script)"
done
ANVIL=$(bash "$ROOT/interop/x402/anvil.sh") || die "cannot install anvil (interop/x402/anvil.sh)"
PY=$(bash "$X/venv.sh") || die "cannot set up the bench venv (bench/x402/venv.sh)"

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
TMP=$(mktemp -d "${TMPDIR:-/tmp}/faregate-x402-bench.XXXXXX")
mkdir -p "$TMP/upstream-tmp" "$TMP/data" "$OUT_DIR"
log "temp dir: $TMP"
read -r ANVIL_PORT UPSTREAM_PORT FAREGATE_PORT ADMIN_PORT PY_PORT FAC_PORT < <(
    python3 - <<'PY'
import socket
socks = []
for _ in range(6):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()
PY
)
[[ -n ${FAC_PORT:-} ]] || die "could not pick free ports"
RPC="http://127.0.0.1:$ANVIL_PORT"

render() { # template output
    sed -e "s|{{TMP}}|$TMP|g" -e "s|{{WORKERS}}|1|g" \
        -e "s|{{UPSTREAM_PORT}}|$UPSTREAM_PORT|g" -e "s|{{FAREGATE_PORT}}|$FAREGATE_PORT|g" \
        -e "s|{{ADMIN_PORT}}|$ADMIN_PORT|g" -e "s|{{ANVIL_PORT}}|$ANVIL_PORT|g" \
        -e "s|{{PAY_TO}}|$PAY_TO|g" -e "s|{{CHECK_CHAIN}}|$CHECK_CHAIN|g" \
        -e "s|{{GAS_LIMIT_LINE}}|$GAS_LIMIT_LINE|g" "$1" >"$2"
    if grep -nE '\{\{[A-Z_]+\}\}' "$2" >&2; then die "unfilled placeholder in $2 (from $1)"; fi
}
render "$BENCH_DIR/nginx-upstream.conf.tmpl" "$TMP/upstream.conf"
render "$X/faregate.toml.tmpl" "$TMP/faregate.toml"

wait_http() { # name pid url
    local name=$1 pid=$2 url=$3 i code
    for ((i = 0; i < 300; i++)); do
        kill -0 "$pid" 2>/dev/null || die "$name exited during startup: $(tail -n 20 "$TMP/$name".*log 2>/dev/null)"
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)
        [[ $code != 000 && -n $code ]] && return 0
        sleep 0.1
    done
    die "$name did not answer on $url within 30 s; see $TMP"
}
# CPU seconds (user + system) a process and its threads have used.
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f\n", ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0; }
balance() { "$PY" "$X/chain.py" balance --rpc "$RPC" --token "$USDC" --who "$PAY_TO"; }
block() { "$PY" "$X/chain.py" stats --rpc "$RPC" | sed 's/[^0-9]//g'; }

# A fresh chain for each server: anvil's cost per transaction grows with the
# chain it keeps, so a server measured later on the same chain would pay more.
ANVIL_PID=""
start_chain() { # name
    [[ -z $ANVIL_PID ]] || stop_pid "$ANVIL_PID"
    # shellcheck disable=SC2086 # ANVIL_ARGS is a list of words
    local quiet=--quiet
    ((RPC_COUNTS)) && quiet=""
    "$ANVIL" --host 127.0.0.1 --port "$ANVIL_PORT" --chain-id 84532 $quiet $ANVIL_ARGS \
        >"$TMP/anvil-$1.log" 2>&1 &
    ANVIL_PID=$!
    ANVIL_LOG="$TMP/anvil-$1.log"
    PIDS+=("$ANVIL_PID")
    "$PY" "$X/chain.py" wait --rpc "$RPC" >/dev/null || die "anvil did not start: $(tail "$TMP/anvil-$1.log")"
    "$PY" "$X/chain.py" setup --rpc "$RPC" --token-json "$ROOT/interop/x402/fixtures/Token3009.json" \
        --at "$USDC" --mint-to "$PAYER" --amount 1000000000000000 || die "token setup failed"
    log "fresh anvil on $RPC: token at $USDC, payer $PAYER funded"
}

"$NGINX" -p "$TMP" -c "$TMP/upstream.conf" -g 'daemon off;' >"$TMP/upstream.stdout.log" 2>&1 &
UPSTREAM_PID=$!
PIDS+=("$UPSTREAM_PID")
wait_http upstream "$UPSTREAM_PID" "http://127.0.0.1:$UPSTREAM_PORT/bench/paid"

# ---------------------------------------------------------------- measure ---
declare -A RATE PAID OTHER P50 P99 SRV_CPU ANVIL_CPU DRV_CPU BLOCKS CHAIN_OK LABEL SECS RPCS
ORDER=()

# measure key label n url server_pids...
measure() {
    local key=$1 label=$2 n=$3 url=$4
    shift 4
    local pids=("$@") out="$TMP/drive-$key.json" b0 b1 k0 k1 a0 a1 s0=0 s1=0 p
    # A first paid request, checked by hand, before the load.
    b0=$(balance) k0=$(block) a0=$(cpu_of "$ANVIL_PID")
    local log0
    log0=$(wc -l <"$ANVIL_LOG")
    for p in "${pids[@]}"; do s0=$(awk -v a="$s0" -v b="$(cpu_of "$p")" 'BEGIN { print a + b }'); done
    log "$label: signing $n payments, then up to ${DURATION}s at $CONCURRENCY in flight"
    "$PY" "$X/drive.py" --url "$url" --key "$PAYER_KEY" --n "$n" --concurrency "$CONCURRENCY" \
        --seconds "$DURATION" --label "$label" >"$out" 2>"$TMP/drive-$key.err" ||
        die "$label: drive.py failed: $(tail -n 20 "$TMP/drive-$key.err")"
    for p in "${pids[@]}"; do
        kill -0 "$p" 2>/dev/null || die "$label: a server process died under load; see $TMP"
        s1=$(awk -v a="$s1" -v b="$(cpu_of "$p")" 'BEGIN { print a + b }')
    done
    b1=$(balance) k1=$(block) a1=$(cpu_of "$ANVIL_PID")
    ORDER+=("$key")
    LABEL[$key]=$label
    read -r RATE[$key] PAID[$key] OTHER[$key] P50[$key] P99[$key] DRV_CPU[$key] SECS[$key] < <(
        "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1]))
o=sum(d["other_outcomes"].values())
print(d["paid_per_second"], d["paid"], o, d["latency_ms"]["p50"], d["latency_ms"]["p99"], d["driver_cpu_seconds"], d["seconds"])' "$out")
    # Settled = paid requests + the warm-up's paid ones.
    local warm
    warm=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["warmup_outcomes"].get("paid", 0))' "$out")
    local want=$(((PAID[$key] + warm) * PRICE_UNITS)) got=$((b1 - b0))
    if ((got == want)); then CHAIN_OK[$key]="yes"; else CHAIN_OK[$key]="NO ($got units, want $want)"; fi
    BLOCKS[$key]=$((k1 - k0))
    # anvil logs each call's method name on a line of its own
    if ((RPC_COUNTS)); then
        RPCS[$key]=$(tail -n +"$((log0 + 1))" "$ANVIL_LOG" | { grep -E '^[a-z]+_[A-Za-z]+$' || true; } |
            sort | uniq -c | sort -rn |
            awk -v n="$((PAID[$key] + warm))" '{ printf "%s%s %.2f", sep, $2, $1 / n; sep = ", " }')
    fi
    SRV_CPU[$key]=$(awk -v a="$s0" -v b="$s1" 'BEGIN { printf "%.2f", b - a }')
    ANVIL_CPU[$key]=$(awk -v a="$a0" -v b="$a1" 'BEGIN { printf "%.2f", b - a }')
    log "$label: ${RATE[$key]} paid/s (${PAID[$key]} paid, ${OTHER[$key]} other), chain agrees: ${CHAIN_OK[$key]}"
}

# faregate
start_chain faregate
fg_env=(FAREGATE_LOG=warn FAREGATE_BENCH_X402_KEY="$FAREGATE_GAS_KEY")
[[ $FAREGATE_THREADS == auto ]] || fg_env+=(FAREGATE_THREADS="$FAREGATE_THREADS")
FAREGATE_BENCH_X402_KEY=$FAREGATE_GAS_KEY "$FG" check-config "$TMP/faregate.toml" >"$TMP/faregate.check.log" 2>&1 ||
    die "faregate check-config rejected the config: $(cat "$TMP/faregate.check.log")"
env -u FAREGATE_THREADS "${fg_env[@]}" "$FG" serve --config "$TMP/faregate.toml" \
    >"$TMP/faregate.access.log" 2>"$TMP/faregate.stderr.log" &
FAREGATE_PID=$!
PIDS+=("$FAREGATE_PID")
wait_http faregate "$FAREGATE_PID" "http://127.0.0.1:$ADMIN_PORT/healthz"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$FAREGATE_PORT/bench/paid")
[[ $code == 402 ]] || die "faregate's unpaid GET answered $code, not 402"
measure faregate "faregate (Rust, settlement = \"chain\")" "$N_FAREGATE" \
    "http://127.0.0.1:$FAREGATE_PORT/bench/paid" "$FAREGATE_PID"
stop_pid "$FAREGATE_PID"

# the official Python server, each variant
declare -A ECC_CLASS=([native]=eth_keys.backends.NativeECCBackend [coincurve]=eth_keys.backends.CoinCurveECCBackend)
for variant in $PY_VARIANTS; do
    fac=${variant%%:*} ecc=${variant##*:}
    export ECC_BACKEND_CLASS=${ECC_CLASS[$ecc]}
    start_chain "py-$fac-$ecc"
    pids=()
    if [[ $fac == http ]]; then
        "$PY" "$X/python_facilitator.py" --port "$FAC_PORT" --rpc "$RPC" --gas-key "$PYTHON_GAS_KEY" \
            >"$TMP/pyfac-$ecc.log" 2>&1 &
        FAC_PID=$!
        PIDS+=("$FAC_PID")
        pids+=("$FAC_PID")
        wait_http pyfac "$FAC_PID" "http://127.0.0.1:$FAC_PORT/supported"
        facilitator="http://127.0.0.1:$FAC_PORT"
    else
        facilitator=inprocess
    fi
    "$PY" "$X/python_server.py" --port "$PY_PORT" --rpc "$RPC" --gas-key "$PYTHON_GAS_KEY" \
        --pay-to "$PAY_TO" --facilitator "$facilitator" >"$TMP/pyserver-$fac-$ecc.log" 2>&1 &
    SRV_PID=$!
    PIDS+=("$SRV_PID")
    pids+=("$SRV_PID")
    wait_http pyserver "$SRV_PID" "http://127.0.0.1:$PY_PORT/healthz"
    case $fac in
        inprocess) where="facilitator in process" ;;
        http) where="facilitator server over HTTP" ;;
    esac
    measure "py-$fac-$ecc" "official Python (FastAPI + x402 middleware, $where, $ecc secp256k1)" \
        "$N_PYTHON" "http://127.0.0.1:$PY_PORT/bench/paid" "${pids[@]}"
    for p in "${pids[@]}"; do stop_pid "$p"; done
    unset ECC_BACKEND_CLASS
done

# ---------------------------------------------------------------- report ----
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $commit != unknown && -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    commit="$commit (+ uncommitted changes)"
fi
cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
threads_desc=$([[ $FAREGATE_THREADS == auto ]] && echo "tokio default ($(nproc))" || echo "$FAREGATE_THREADS")
report="$TMP/report.md"
{
    echo "## x402 paid requests end to end: faregate vs the official Python server"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); commit: $commit"
    echo "- machine: $(nproc) CPUs, ${cpu_model:-unknown}; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- chain: anvil $("$ANVIL" --version 2>/dev/null | head -n 1 | awk '{ print $NF }') --chain-id 84532, mining: ${ANVIL_ARGS:-automine}, a fresh chain per server; token at $USDC; price $PRICE_UNITS units (0.01 USD)"
    echo "- load: bench/x402/drive.py (aiohttp), $CONCURRENCY requests in flight, up to ${DURATION}s per server, each payment pre-signed by the official client with its own nonce, after 10 warm-up payments"
    echo "- faregate: $threads_desc worker thread(s), settlement = \"chain\", check_chain = $CHECK_CHAIN, gas limit: $GAS_LIMIT, upstream nginx; Python: uvicorn (uvloop, httptools), one worker"
    echo
    echo "| server | paid req/s | faregate ÷ this | paid | other outcomes | p50 ms | p99 ms | server CPU ms / paid | this ÷ faregate (server CPU / paid) | anvil CPU ms / paid | blocks | chain balance agrees |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    for k in "${ORDER[@]}"; do
        awk -v name="${LABEL[$k]}" -v rate="${RATE[$k]}" -v fg="${RATE[faregate]}" -v paid="${PAID[$k]}" \
            -v other="${OTHER[$k]}" -v p50="${P50[$k]}" -v p99="${P99[$k]}" -v scpu="${SRV_CPU[$k]}" \
            -v acpu="${ANVIL_CPU[$k]}" -v blocks="${BLOCKS[$k]}" -v ok="${CHAIN_OK[$k]}" \
            -v fgcpu="${SRV_CPU[faregate]}" -v fgpaid="${PAID[faregate]}" 'BEGIN {
            n = paid + 10
            ratio = (rate > 0) ? sprintf("%.1f×", fg / rate) : "—"
            per = scpu * 1000 / n; fgper = fgcpu * 1000 / (fgpaid + 10)
            cpuratio = (fgper > 0) ? sprintf("%.1f×", per / fgper) : "—"
            printf "| %s | %.1f | %s | %d | %d | %s | %s | %.2f | %s | %.2f | %d | %s |\n", name, rate, ratio, paid, other, p50, p99, per, cpuratio, acpu * 1000 / n, blocks, ok
        }'
    done
    echo
    echo "Other outcomes (status and reason), per server:"
    for k in "${ORDER[@]}"; do
        echo "- ${LABEL[$k]}: $("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["other_outcomes"] or "none")' "$TMP/drive-$k.json"); driver CPU ${DRV_CPU[$k]} s over ${SECS[$k]} s"
    done
    if ((RPC_COUNTS)); then
        echo
        echo "JSON-RPC calls to anvil per paid request (measured run and warm-up):"
        for k in "${ORDER[@]}"; do echo "- ${LABEL[$k]}: ${RPCS[$k]}"; done
    fi
} >"$report"
cp "$report" "$OUT_DIR/x402_paid.md"
echo
cat "$report"
echo
log "written to ${OUT_DIR#"$ROOT"/}/x402_paid.md"
for k in "${ORDER[@]}"; do
    [[ ${CHAIN_OK[$k]} == yes ]] || die "${LABEL[$k]}: the payee's balance does not match the paid count"
done
