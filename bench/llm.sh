#!/usr/bin/env bash
# LLM gateway benchmark: faregate beside the LiteLLM proxy, budgets on, in one
# run, on one machine, in front of the same provider double.
#
# Starts on 127.0.0.1 (free ports, temp dir):
#   - the provider double: `faregate llm-double` (OpenAI chat completions,
#     deterministic replies, plain and streamed), checking its API key
#   - faregate `serve` with an LLM route (bench/llm/faregate.toml.tmpl): an
#     account with prepaid credit and a key made through the admin API, key
#     and account budgets on
#   - the LiteLLM proxy (PyPI litellm[proxy], bench/llm/requirements.txt, in
#     its own venv) with one worker per CPU, its deployment and provider
#     budgets on, shared through a Redis of its own (bench/llm/litellm.yaml.tmpl)
# then loads each (and the double directly) with the same wrk settings
# (bench/llm/chat.lua: POST /v1/chat/completions, max_tokens 16, plain and
# "stream": true), checks every response, and prints markdown tables: req/s,
# latency and latency added over the double, and the faregate/LiteLLM ratios.
# Written to bench/out/llm-latest.md as well.
#
# Latency is measured at a fixed concurrency (LAT_CONNECTIONS, and 1
# connection); throughput at saturation (SAT_CONNECTIONS). Added latency =
# proxy percentile - the double's own percentile at the same concurrency.
#
# With ROUNDS > 1 every cell (mode, connections) is measured ROUNDS times,
# the three targets back to back in each round, and each figure is the
# median of its rounds. Added latency is paired: each round's proxy
# percentile less the double's of the same round, then the median of those
# (the per-round added p99s are printed too). One noisy moment on the shared
# cores then moves one round, not the table.
#
# Usage: bash bench/llm.sh
# Env:   DURATION (8)          seconds measured per run (after a WARMUP s warm-up)
#        ROUNDS (1)            rounds per cell; figures are the median round
#        WARMUP (2)
#        LAT_CONNECTIONS (8)   connections of the latency runs
#        SAT_CONNECTIONS (64)  connections of the throughput runs
#        FAREGATE_THREADS      faregate's worker threads (default: one per CPU,
#                              as LiteLLM's workers)
#        LITELLM_WORKERS       LiteLLM's worker processes (default: one per CPU,
#                              LiteLLM's advice for a VM)
#        DOUBLE_THREADS (1)    the provider double's threads
#        FLUSH_INTERVAL (10ms) faregate's [store] flush_interval: how often its
#                              charges are committed (and fsynced) to SQLite
#        FAREGATE_BIN          use this faregate binary instead of building one
#        KEEP_TMP=1            keep the temp dir (configs, logs, raw wrk output)
set -euo pipefail

NCPU=$(nproc)
DURATION=${DURATION:-8}
ROUNDS=${ROUNDS:-1}
WARMUP=${WARMUP:-2}
LAT_CONNECTIONS=${LAT_CONNECTIONS:-8}
SAT_CONNECTIONS=${SAT_CONNECTIONS:-64}
FAREGATE_THREADS=${FAREGATE_THREADS:-$NCPU}
LITELLM_WORKERS=${LITELLM_WORKERS:-$NCPU}
DOUBLE_THREADS=${DOUBLE_THREADS:-1}
WRK_TIMEOUT=30s
ADMIN_TOKEN=bench-admin-token
DOUBLE_KEY=sk-double
LITELLM_MASTER_KEY=sk-bench-master-0123456789

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
LLM_DIR="$BENCH_DIR/llm"
OUT_DIR="$BENCH_DIR/out"
LUA="$LLM_DIR/chat.lua"

log() { printf '[llm-bench] %s\n' "$*" >&2; }
die() {
    printf '[llm-bench] ERROR: %s\n' "$*" >&2
    exit 1
}

for v in DURATION ROUNDS WARMUP LAT_CONNECTIONS SAT_CONNECTIONS FAREGATE_THREADS LITELLM_WORKERS DOUBLE_THREADS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done

# ---------------------------------------------------------------- cleanup ---
TMP=""
PIDS=()
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    local pid i
    # Each was started in a process group of its own (start_bg): stop the group.
    for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do
        for ((i = 0; i < 100; i++)); do
            kill -0 -- "-$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 -- "-$pid" 2>/dev/null; then
            log "process group $pid did not stop on SIGTERM; killing it"
            kill -KILL -- "-$pid" 2>/dev/null
        fi
        wait "$pid" 2>/dev/null
    done
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

# Starts "$@" in a process group of its own (setsid), so that cleanup can stop
# it with everything it forked (LiteLLM's uvicorn workers).
start_bg() { # name cmd...
    local name=$1
    shift
    setsid "$@" >"$TMP/$name.stdout.log" 2>"$TMP/$name.stderr.log" </dev/null &
    local pid=$! # setsid and env exec: this is the group's leader
    PIDS+=("$pid")
    eval "${name^^}_PID=$pid"
}

# ---------------------------------------------------------------- tools -----
install_missing() {
    local pkgs=()
    command -v wrk >/dev/null || pkgs+=(wrk)
    command -v redis-server >/dev/null || pkgs+=(redis-server)
    ((${#pkgs[@]})) || return 0
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "need to install ${pkgs[*]} but not root and no sudo"
        sudo=(sudo)
    fi
    command -v apt-get >/dev/null || die "need ${pkgs[*]}; no apt-get here, install them by hand"
    log "installing: ${pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update
    "${sudo[@]}" apt-get install -y "${pkgs[@]}"
}
install_missing
for t in wrk redis-server redis-cli curl python3 setsid awk sed timeout; do
    command -v "$t" >/dev/null || die "$t is required"
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
"$FG" llm-double --help >/dev/null 2>&1 || die "$FG has no llm-double subcommand (too old a build?)"

# ---------------------------------------------------------------- LiteLLM ---
log "LiteLLM venv (bench/llm/venv.sh)"
VENV=$(bash "$LLM_DIR/venv.sh") || die "cannot install LiteLLM (bench/llm/venv.sh)"
LITELLM="$VENV/bin/litellm"
[[ -x $LITELLM ]] || die "no litellm in $VENV"
LITELLM_VERSION=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))')

# ---------------------------------------------------------------- setup -----
TMP=$(mktemp -d "${TMPDIR:-/tmp}/faregate-llm-bench.XXXXXX")
mkdir -p "$OUT_DIR"
log "temp dir: $TMP"

read -r DOUBLE_PORT FAREGATE_PORT ADMIN_PORT LITELLM_PORT REDIS_PORT < <(
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
[[ -n ${REDIS_PORT:-} ]] || die "could not pick free ports"
log "ports: double=$DOUBLE_PORT faregate=$FAREGATE_PORT admin=$ADMIN_PORT litellm=$LITELLM_PORT redis=$REDIS_PORT"

render() { # template output
    sed -e "s|{{TMP}}|$TMP|g" \
        -e "s|{{DOUBLE_PORT}}|$DOUBLE_PORT|g" \
        -e "s|{{DOUBLE_KEY}}|$DOUBLE_KEY|g" \
        -e "s|{{FAREGATE_PORT}}|$FAREGATE_PORT|g" \
        -e "s|{{ADMIN_PORT}}|$ADMIN_PORT|g" \
        -e "s|{{ADMIN_TOKEN}}|$ADMIN_TOKEN|g" \
        -e "s|{{REDIS_PORT}}|$REDIS_PORT|g" \
        -e "s|{{FLUSH_INTERVAL}}|${FLUSH_INTERVAL:-10ms}|g" \
        -e "s|{{LITELLM_MASTER_KEY}}|$LITELLM_MASTER_KEY|g" \
        "$1" >"$2"
    if grep -nE '\{\{[A-Z_]+\}\}' "$2" >&2; then die "unfilled placeholder in $2 (from $1)"; fi
}
render "$LLM_DIR/faregate.toml.tmpl" "$TMP/faregate.toml"
render "$LLM_DIR/litellm.yaml.tmpl" "$TMP/litellm.yaml"

wait_http() { # name pid url timeout_s
    local name=$1 pid=$2 url=$3 limit=$4 i code
    for ((i = 0; i < limit * 5; i++)); do
        kill -0 "$pid" 2>/dev/null || die "$name exited during startup:
$(tail -n 30 "$TMP/$name".*.log 2>/dev/null)"
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)
        [[ $code == 200 ]] && return 0
        sleep 0.2
    done
    die "$name did not answer 200 on $url within $limit s; see logs in $TMP"
}

# ---------------------------------------------------------------- start -----
start_bg double "$FG" --threads "$DOUBLE_THREADS" llm-double \
    --listen "127.0.0.1:$DOUBLE_PORT" --api-key "$DOUBLE_KEY"
for ((i = 0; i < 50; i++)); do
    grep -q '^listening on' "$TMP/double.stdout.log" 2>/dev/null && break
    kill -0 "$DOUBLE_PID" 2>/dev/null || die "the double exited: $(cat "$TMP/double.stderr.log")"
    sleep 0.1
done
grep -q "^listening on 127.0.0.1:$DOUBLE_PORT" "$TMP/double.stdout.log" ||
    die "the double did not print 'listening on 127.0.0.1:$DOUBLE_PORT': $(cat "$TMP/double.stdout.log" "$TMP/double.stderr.log")"

"$FG" check-config "$TMP/faregate.toml" >"$TMP/faregate.check.log" 2>&1 ||
    die "faregate check-config rejected the generated config:
$(cat "$TMP/faregate.check.log")"
start_bg faregate env FAREGATE_LOG=warn "$FG" --threads "$FAREGATE_THREADS" serve --config "$TMP/faregate.toml"
wait_http faregate "$FAREGATE_PID" "http://127.0.0.1:$ADMIN_PORT/healthz" 15

start_bg redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --dir "$TMP"
for ((i = 0; i < 50; i++)); do
    redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
    sleep 0.1
done
redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG || die "redis did not start: $(cat "$TMP/redis".*.log)"

# LiteLLM: LITELLM_LOG=ERROR (its production guide), LITELLM_MODE=PRODUCTION (no .env),
# the bundled model cost map (the remote one cannot be fetched here), uvicorn
# (its default server) with one worker per CPU.
log "starting LiteLLM $LITELLM_VERSION ($LITELLM_WORKERS workers; takes ~20 s)"
start_bg litellm env LITELLM_MODE=PRODUCTION LITELLM_LOG=ERROR LITELLM_LOCAL_MODEL_COST_MAP=True \
    "$LITELLM" --config "$TMP/litellm.yaml" --host 127.0.0.1 --port "$LITELLM_PORT" \
    --num_workers "$LITELLM_WORKERS"
wait_http litellm "$LITELLM_PID" "http://127.0.0.1:$LITELLM_PORT/health/readiness" 180

# ---------------------------------------------------------------- faregate account
admin() { # method path [json] [extra curl args...]
    local method=$1 path=$2 data=${3:-}
    shift 3 || shift $#
    local args=(-sS --max-time 10 -X "$method" -H "Authorization: Bearer $ADMIN_TOKEN" "$@")
    [[ -n $data ]] && args+=(-H 'Content-Type: application/json' -d "$data")
    curl "${args[@]}" "http://127.0.0.1:$ADMIN_PORT$path"
}
json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

ACCOUNT=$(admin POST /v1/accounts '{"name":"llm-bench","currency":"USD"}' | json_field id) ||
    die "cannot create the faregate account"
admin POST "/v1/accounts/$ACCOUNT/credits" '{"amount":"1000.00","currency":"USD","reason":"bench"}' \
    -H "Idempotency-Key: llm-bench-$ACCOUNT" >"$TMP/credit.json" || die "cannot add credit"
FG_KEY=$(admin POST "/v1/accounts/$ACCOUNT/keys" '{}' | json_field key) || die "cannot issue the faregate key"
fg_balance() { admin GET "/v1/accounts/$ACCOUNT" | json_field balance; }
fg_debits() {
    curl -s --max-time 5 "http://127.0.0.1:$ADMIN_PORT/metrics" |
        awk '/^faregate_ledger_debits_total / { d = $2 } END { printf "%d\n", d }'
}
# LiteLLM's spend as its router budgets see it (shared through Redis): prints
# "provider_spend deployment_spend".
litellm_spend() {
    local p d
    p=$(curl -sS --max-time 10 -H "Authorization: Bearer $LITELLM_MASTER_KEY" \
        "http://127.0.0.1:$LITELLM_PORT/provider/budgets" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["providers"]["openai"]["spend"] or 0)')
    d=$(redis-cli -p "$REDIS_PORT" --scan --pattern 'deployment_spend:*' | head -n 1)
    d=$([[ -n $d ]] && redis-cli -p "$REDIS_PORT" get "$d" || echo 0)
    echo "${p:-0} ${d:-0}"
}

# ---------------------------------------------------------------- checks ----
declare -A BASE=(
    [double]="http://127.0.0.1:$DOUBLE_PORT"
    [faregate]="http://127.0.0.1:$FAREGATE_PORT"
    [litellm]="http://127.0.0.1:$LITELLM_PORT"
)
declare -A KEY=([double]="$DOUBLE_KEY" [faregate]="$FG_KEY" [litellm]="$LITELLM_MASTER_KEY")
declare -A LABEL=([double]="provider double (direct)" [faregate]="faregate" [litellm]="LiteLLM $LITELLM_VERSION")
declare -A PIDOF=([double]=$DOUBLE_PID [faregate]=$FAREGATE_PID [litellm]=$LITELLM_PID)
TARGETS=(double faregate litellm)

# The reply's text: message.content, or a stream's deltas joined (which must
# end with "data: [DONE]").
reply_text() { # file stream
    python3 - "$1" "$2" <<'PY'
import json, sys
raw = open(sys.argv[1], encoding="utf-8").read()
if sys.argv[2] == "0":
    print(json.loads(raw)["choices"][0]["message"]["content"])
    sys.exit(0)
events = [l[6:] for l in raw.splitlines() if l.startswith("data: ")]
if not events or events[-1] != "[DONE]":
    sys.exit("no data: [DONE] at the end")
text = ""
for e in events[:-1]:
    for c in json.loads(e).get("choices") or []:
        text += (c.get("delta") or {}).get("content") or ""
print(text)
PY
}
declare -A WANT_TEXT
check() { # target stream
    local t=$1 s=$2 body code text
    body='{"model":"double-1","messages":[{"role":"user","content":"Say hello to the benchmark."}],"max_tokens":16'
    ((s)) && body+=',"stream":true'
    body+='}'
    code=$(curl -sS -o "$TMP/check.body" -w '%{http_code}' --max-time 30 -N \
        -H "Authorization: Bearer ${KEY[$t]}" -H 'Content-Type: application/json' \
        -d "$body" "${BASE[$t]}/v1/chat/completions" 2>"$TMP/check.err" || true)
    [[ $code == 200 ]] || die "${LABEL[$t]} (stream=$s) answered ${code:-nothing}: $(head -c 600 "$TMP/check.body") $(cat "$TMP/check.err")"
    text=$(reply_text "$TMP/check.body" "$s" 2>"$TMP/check.err") ||
        die "${LABEL[$t]} (stream=$s): unreadable reply ($(cat "$TMP/check.err")): $(head -c 600 "$TMP/check.body")"
    [[ -n $text ]] || die "${LABEL[$t]} (stream=$s): empty reply: $(head -c 600 "$TMP/check.body")"
    # The double answers the same prompt with the same text: so must the proxies.
    [[ -n ${WANT_TEXT[$s]:-} ]] || WANT_TEXT[$s]=$text
    [[ $text == "${WANT_TEXT[$s]}" ]] || die "${LABEL[$t]} (stream=$s) replied '$text', the double '${WANT_TEXT[$s]}'"
    log "check ok: ${LABEL[$t]} stream=$s: '$text'"
}
for t in "${TARGETS[@]}"; do check "$t" 0 && check "$t" 1; done
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
    -d '{"model":"double-1","messages":[{"role":"user","content":"x"}]}' "${BASE[faregate]}/v1/chat/completions")
[[ $code == 401 ]] || die "faregate answered $code without a key (want 401)"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
    -d '{"model":"double-1","messages":[{"role":"user","content":"x"}]}' "${BASE[litellm]}/v1/chat/completions")
[[ $code == 401 ]] || die "LiteLLM answered $code without a key (want 401)"
log "check ok: both proxies refuse a request without a key"

# ---------------------------------------------------------------- load ------
declare -A RPS P50 P99 REQS BAD SOCKERR

# Prints: rps p50_ms p99_ms requests bad socket_errors(may hold spaces)
parse_wrk() {
    awk '
    function ms(v,   n, u) {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") return n / 1000
        if (u == "ms") return n
        if (u == "s")  return n * 1000
        if (u == "m")  return n * 60000
        return ""
    }
    /^Requests\/sec:/              { rps = $2 }
    /^[ \t]*50%[ \t]/              { p50 = ms($2) }
    /^[ \t]*99%[ \t]/              { p99 = ms($2) }
    /requests in /                 { reqs = $1 }
    /^bad_responses /              { bad = $2 }
    /Non-2xx or 3xx responses:/    { non2xx = $NF }
    /Socket errors:/               { s = $0; sub(/^[ \t]*Socket errors:[ \t]*/, "", s) }
    END {
        if (rps == "" || p50 == "" || p99 == "" || bad == "") exit 1
        printf "%s %s %s %s %d %s\n", rps, p50, p99, reqs, bad + non2xx, (s == "" ? "none" : s)
    }' "$1"
}

run() { # target stream conns round
    local t=$1 s=$2 c=$3 id="$1-s$2-c$3-r$4" out
    local vars=(LLM_KEY="${KEY[$t]}" LLM_STREAM="$s")
    kill -0 "${PIDOF[$t]}" 2>/dev/null || die "${LABEL[$t]} is no longer running; see logs in $TMP"
    log "${LABEL[$t]} stream=$s c=$c round $4/$ROUNDS: warm-up ${WARMUP}s, then ${DURATION}s"
    env "${vars[@]}" timeout $((WARMUP + 60)) wrk -t 1 -c "$c" -d "${WARMUP}s" --timeout "$WRK_TIMEOUT" \
        -s "$LUA" "${BASE[$t]}" >"$TMP/wrk-$id-warmup.txt" 2>&1 ||
        die "wrk warm-up failed for $id: $(cat "$TMP/wrk-$id-warmup.txt")"
    out="$TMP/wrk-$id.txt"
    env "${vars[@]}" timeout $((DURATION + 90)) wrk -t 1 -c "$c" -d "${DURATION}s" --timeout "$WRK_TIMEOUT" \
        --latency -s "$LUA" "${BASE[$t]}" >"$out" 2>&1 || die "wrk failed for $id: $(cat "$out")"
    local r p5 p9 n b e
    read -r r p5 p9 n b e < <(parse_wrk "$out") || die "cannot parse wrk output for $id:
$(cat "$out")"
    RPS[$id]=$r P50[$id]=$p5 P99[$id]=$p9 REQS[$id]=$n BAD[$id]=$b SOCKERR[$id]=$e
    log "  $r req/s, p50 $p5 ms, p99 $p9 ms, $n requests, $b bad, socket errors: $e"
}

FG_BAL0=$(fg_balance)
FG_DEB0=$(fg_debits)
read -r LL_PROV0 LL_DEP0 < <(litellm_spend)
START_TS=$(date +%s)

CONNS=(1 "$LAT_CONNECTIONS" "$SAT_CONNECTIONS")
for s in 0 1; do
    for c in "${CONNS[@]}"; do
        for ((r = 1; r <= ROUNDS; r++)); do
            for t in "${TARGETS[@]}"; do run "$t" "$s" "$c" "$r"; done
        done
    done
done
LOAD_SECONDS=$(($(date +%s) - START_TS))

# Each figure of a cell is the median of its rounds (the lower middle one
# for an even count); bad responses are summed over the rounds.
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
for s in 0 1; do for t in "${TARGETS[@]}"; do for c in "${CONNS[@]}"; do
    id="$t-s$s-c$c" rps=() p50=() p99=() bad=0 err=none
    for ((r = 1; r <= ROUNDS; r++)); do
        rps+=("${RPS[$id-r$r]}") p50+=("${P50[$id-r$r]}") p99+=("${P99[$id-r$r]}")
        bad=$((bad + BAD[$id-r$r]))
        [[ ${SOCKERR[$id-r$r]} == none ]] || err="${SOCKERR[$id-r$r]} (round $r)"
    done
    RPS[$id]=$(median "${rps[@]}") P50[$id]=$(median "${p50[@]}") P99[$id]=$(median "${p99[@]}")
    BAD[$id]=$bad SOCKERR[$id]=$err
done; done; done
# Added latency, paired by round: median over the rounds of (proxy − double).
declare -A A50 A99
for s in 0 1; do for t in "${TARGETS[@]}"; do for c in "${CONNS[@]}"; do
    [[ $t == double ]] && continue
    id="$t-s$s-c$c" d50=() d99=()
    for ((r = 1; r <= ROUNDS; r++)); do
        b="double-s$s-c$c-r$r"
        d50+=("$(awk -v a="${P50[$id-r$r]}" -v b="${P50[$b]}" 'BEGIN { print a - b }')")
        d99+=("$(awk -v a="${P99[$id-r$r]}" -v b="${P99[$b]}" 'BEGIN { print a - b }')")
    done
    A50[$id]=$(median "${d50[@]}") A99[$id]=$(median "${d99[@]}")
done; done; done

# Charges land after the answer (faregate's batched writer; LiteLLM's
# callbacks and its in-memory → Redis sync): give both a moment.
sleep 3
FG_BAL1=$(fg_balance)
FG_DEB1=$(fg_debits)
read -r LL_PROV1 LL_DEP1 < <(litellm_spend)
sum_reqs() { # target: requests of its warm-ups and measured runs
    local t=$1 n=0 f
    for f in "$TMP"/wrk-"$t"-*.txt; do
        n=$((n + $(awk '/requests in / { print $1 }' "$f")))
    done
    echo "$n"
}
FG_SENT=$(sum_reqs faregate)
LL_SENT=$(sum_reqs litellm)

# ---------------------------------------------------------------- report ----
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $commit != unknown && -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    commit="$commit (+ uncommitted changes)"
fi
cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
wrk_ver=$( (wrk -v 2>&1 || true) | head -n 1 | awk '{ print $1, $2 }')
py_ver=$("$VENV/bin/python" -c 'import platform; print(platform.python_version())')
uvicorn_ver=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("uvicorn"))')
redis_ver=$(redis-server --version | awk '{ print $3 }' | sed 's/^v=//')
fg_ver=$("$FG" --version 2>/dev/null || echo unknown)

ms2() { awk -v v="$1" 'BEGIN { printf "%.2f", v }'; }
added() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.2f", a - b }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f×", a / b; else print "n/a" }'; }
# faregate's added latency as a fraction of LiteLLM's: "1/N" (smaller is better).
frac() { # fg_added ll_added
    awk -v f="$1" -v l="$2" 'BEGIN {
        if (l <= 0) { print "n/a (LiteLLM adds ≤ 0)"; exit }
        if (f <= 0) { printf "faregate adds ≤ 0 (%+.2f ms)", f; exit }
        printf "1/%d", int(l / f)
    }'
}
mode_name() { (($1)) && echo "streamed" || echo "non-streamed"; }

report="$TMP/report.md"
{
    echo "## LLM gateway: faregate vs LiteLLM, budgets on"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); commit: $commit"
    echo "- machine: $NCPU CPUs ($cpu_model); wrk, the double and both proxies share them"
    echo "- load: \`wrk -t 1 -c N -d ${DURATION}s --latency -s bench/llm/chat.lua\` after a ${WARMUP}s warm-up per run, $ROUNDS round(s) per cell with the targets back to back (figures: the median round), POST /v1/chat/completions, max_tokens 16 (16 output tokens), plain or \`\"stream\": true\` (18 SSE chunks + [DONE]); every response checked (200 and a complete body)"
    echo "- provider double: \`faregate --threads $DOUBLE_THREADS llm-double\`, token delay 0"
    echo "- faregate: $fg_ver, \`--threads $FAREGATE_THREADS\`, access log on; account credit + key budget (1000 USD/day) + account budget (10000 USD/month), SQLite ledger, charges committed every ${FLUSH_INTERVAL:-10ms}"
    echo "- LiteLLM: $LITELLM_VERSION (Python $py_ver, uvicorn $uvicorn_ver), \`--num_workers $LITELLM_WORKERS\`, LITELLM_MODE=PRODUCTION, LITELLM_LOG=ERROR; master key; deployment budget (1000 USD/1d) + provider budget (10000 USD/30d) in Redis $redis_ver; no database (see docs/BENCHMARKS.md)"
    echo "- wrk: $wrk_ver"
    for s in 0 1; do
        echo
        echo "### $(mode_name "$s") chat completions"
        echo
        echo "| target | conns | req/s | p50 ms | p99 ms | added p50 ms | added p99 ms | bad |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|"
        for t in "${TARGETS[@]}"; do
            for c in "${CONNS[@]}"; do
                id="$t-s$s-c$c" base="double-s$s-c$c"
                if [[ $t == double ]]; then a50="—" a99="—"; else
                    a50=$(added "${A50[$id]}" 0) a99=$(added "${A99[$id]}" 0)
                fi
                printf '| %s | %d | %.0f | %s | %s | %s | %s | %s |\n' "${LABEL[$t]}" "$c" "${RPS[$id]}" \
                    "$(ms2 "${P50[$id]}")" "$(ms2 "${P99[$id]}")" "$a50" "$a99" "${BAD[$id]}"
            done
        done
    done
    echo
    echo "### faregate ÷ LiteLLM"
    echo
    echo "| | non-streamed | streamed | issue's target |"
    echo "|---|---:|---:|---|"
    row() { # label kind conns [pct]
        local label=$1 kind=$2 c=${3:-} pct=${4:-} cells=() s f l b
        for s in 0 1; do
            f="faregate-s$s-c$c" l="litellm-s$s-c$c" b="double-s$s-c$c"
            if [[ $kind == peak ]]; then
                local fp=0 lp=0 cc
                for cc in "${CONNS[@]}"; do
                    fp=$(awk -v a="$fp" -v b="${RPS[faregate-s$s-c$cc]}" 'BEGIN { print (b > a) ? b : a }')
                    lp=$(awk -v a="$lp" -v b="${RPS[litellm-s$s-c$cc]}" 'BEGIN { print (b > a) ? b : a }')
                done
                cells+=("$(ratio "$fp" "$lp") ($(printf '%.0f' "$fp") vs $(printf '%.0f' "$lp"))")
            elif [[ $kind == rps ]]; then
                cells+=("$(ratio "${RPS[$f]}" "${RPS[$l]}") ($(printf '%.0f' "${RPS[$f]}") vs $(printf '%.0f' "${RPS[$l]}"))")
            else
                local -n A="A$pct"
                cells+=("$(frac "${A[$f]}" "${A[$l]}") ($(added "${A[$f]}" 0) vs $(added "${A[$l]}" 0) ms)")
            fi
        done
        local target="≥ 50×"
        [[ $kind == lat ]] && target="≤ 1/50"
        echo "| $label | ${cells[0]} | ${cells[1]} | $target |"
    }
    row "peak throughput (best of 1, $LAT_CONNECTIONS, $SAT_CONNECTIONS conns)" peak
    row "throughput, $SAT_CONNECTIONS conns" rps "$SAT_CONNECTIONS"
    row "added p50, $LAT_CONNECTIONS conns" lat "$LAT_CONNECTIONS" 50
    row "added p99, $LAT_CONNECTIONS conns" lat "$LAT_CONNECTIONS" 99
    row "added p50, 1 conn" lat 1 50
    row "added p99, 1 conn" lat 1 99
    if ((ROUNDS > 1)); then
        echo
        echo "### Added p99 in each round (ms, faregate vs LiteLLM, each over the double of the same round)"
        echo
        echo "| mode | conns | rounds |"
        echo "|---|---:|---|"
        for s in 0 1; do for c in "${CONNS[@]}"; do
            cells=""
            for ((r = 1; r <= ROUNDS; r++)); do
                b="double-s$s-c$c-r$r"
                cells+="$(added "${P99[faregate-s$s-c$c-r$r]}" "${P99[$b]}") vs $(added "${P99[litellm-s$s-c$c-r$r]}" "${P99[$b]}")"
                ((r < ROUNDS)) && cells+="; "
            done
            echo "| $(mode_name "$s") | $c | $cells |"
        done; done
    fi
    echo
    echo "### Both were charging"
    echo
    awk -v b0="$FG_BAL0" -v b1="$FG_BAL1" -v d0="$FG_DEB0" -v d1="$FG_DEB1" -v n="$FG_SENT" 'BEGIN {
        printf "- faregate: account balance %s → %s USD (−%.6f) over %d requests sent in the load runs; %d charges written to the ledger\n", b0, b1, b0 - b1, n, d1 - d0
    }'
    awk -v p0="$LL_PROV0" -v p1="$LL_PROV1" -v e0="$LL_DEP0" -v e1="$LL_DEP1" -v n="$LL_SENT" 'BEGIN {
        printf "- LiteLLM: provider budget spend %.6f → %.6f USD (+%.6f), deployment budget spend %.6f → %.6f USD (+%.6f) over %d requests sent in the load runs\n", p0, p1, p1 - p0, e0, e1, e1 - e0, n
    }'
    echo "- load phase: ${LOAD_SECONDS}s"
    echo
    echo "Socket errors (timeouts count here; none expected):"
    for s in 0 1; do for t in "${TARGETS[@]}"; do for c in "${CONNS[@]}"; do
        id="$t-s$s-c$c"
        [[ ${SOCKERR[$id]} == none ]] || echo "- $id: ${SOCKERR[$id]}"
    done; done; done
} >"$report"

cp "$report" "$OUT_DIR/llm-latest.md"
echo
cat "$report"
echo
log "written to ${OUT_DIR#"$ROOT"/}/llm-latest.md"

awk -v b0="$FG_BAL0" -v b1="$FG_BAL1" 'BEGIN { exit !(b1 < b0) }' || die "faregate's balance did not go down"
awk -v p0="$LL_PROV0" -v p1="$LL_PROV1" 'BEGIN { exit !(p1 > p0) }' || die "LiteLLM's budget spend did not go up"
bad=0
for id in "${!BAD[@]}"; do ((BAD[$id] == 0)) || bad=1; done # rounds and their sums alike
((bad == 0)) || die "some runs had bad responses (column 'bad'): their numbers are not comparable"
