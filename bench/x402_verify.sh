#!/usr/bin/env bash
# x402 verification throughput per core: faregate's in-process verifier
# against the official Python SDK's, on the same payload, one run, a ratio.
#
# Each side decodes the PAYMENT-SIGNATURE header, matches `accepted` against
# the offer, checks the terms and the time window, builds the EIP-712 digest
# and recovers the signer with secp256k1, in a loop on one thread pinned to
# one CPU (taskset), no RPC:
#   - faregate: crates/faregate-x402/benches/verify.rs in rate mode
#     (decode_header + verify_exact), release build;
#   - Python: interop/x402/bench_verify.py (x402 2.25.0: decode, the resource
#     server's find_matching_requirements, x402FacilitatorSync.verify with the
#     exact-EVM scheme on an in-process chain double), run unchanged through
#     bench/x402/py_verify_rate.py, twice: with eth_keys' pure-Python
#     secp256k1 (what a bare `pip install "x402[fastapi,evm]"` runs: nothing
#     in it pulls coincurve) and with coincurve (libsecp256k1).
# Rates are verifications per CPU second of the looping thread (the per-core
# figure, steady on a shared machine) and per wall second (what the thread
# got of its core). The payload is the `valid` entry of a fresh
# interop/x402/corpus.py corpus. Prints a markdown table, also written to
# bench/out/x402_verify.md.
#
# Usage: bash bench/x402_verify.sh
# Env:   SECONDS_EACH (5)  CPU seconds each side loops
#        CPU (last CPU)    the CPU every side is pinned to, one after the other
#        VERIFY_BENCH_BIN  use this bench binary instead of building it
set -euo pipefail

SECONDS_EACH=${SECONDS_EACH:-5}
CPU=${CPU:-$(($(nproc) - 1))}
PAYER_KEY=59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d # anvil account 1

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
OUT_DIR="$BENCH_DIR/out"

log() { printf '[x402-verify] %s\n' "$*" >&2; }
die() {
    printf '[x402-verify] ERROR: %s\n' "$*" >&2
    exit 1
}
[[ $SECONDS_EACH =~ ^[1-9][0-9]*$ ]] || die "SECONDS_EACH must be a positive integer"
[[ $CPU =~ ^[0-9]+$ ]] || die "CPU must be a CPU number"
for t in taskset python3; do command -v "$t" >/dev/null || die "$t is required"; done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/faregate-x402-verify.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$OUT_DIR"

# ---------------------------------------------------------------- build -----
if [[ -n ${VERIFY_BENCH_BIN:-} ]]; then
    BIN=$VERIFY_BENCH_BIN
else
    log "building the verify bench (release)"
    (cd "$ROOT" && cargo bench -p faregate-x402 --bench verify --no-run --message-format=json) \
        >"$TMP/build.json" 2>"$TMP/build.log" || die "cargo bench --no-run failed: $(tail -n 30 "$TMP/build.log")"
    BIN=$(python3 -c 'import json, sys
exe = None
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    t = m.get("target") or {}
    if m.get("reason") == "compiler-artifact" and t.get("name") == "verify" and "bench" in t.get("kind", []):
        exe = m.get("executable") or exe
print(exe or "")' "$TMP/build.json")
fi
[[ -x $BIN ]] || die "verify bench binary not found: '$BIN'"
PY=$(bash "$ROOT/interop/x402/install.sh") || die "interop/x402/install.sh failed"

# ---------------------------------------------------------------- payload ---
# The offer both sides check against: Base Sepolia USDC, 0.01 USDC. A long
# maxTimeoutSeconds keeps the payload valid (validBefore >= now + 6) all run.
cat >"$TMP/requirements.json" <<'EOF'
{"scheme": "exact", "network": "eip155:84532", "amount": "10000",
 "asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
 "payTo": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", "maxTimeoutSeconds": 600,
 "extra": {"name": "USDC", "version": "2"}}
EOF
"$PY" "$ROOT/interop/x402/corpus.py" --key "$PAYER_KEY" --requirements "$TMP/requirements.json" \
    --now "$(date +%s)" --out "$TMP/corpus.json" || die "corpus.py failed"

# ---------------------------------------------------------------- run -------
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "faregate: ${SECONDS_EACH}s on CPU $CPU"
X402_VERIFY_CORPUS="$TMP/corpus.json" X402_VERIFY_RATE_SECONDS=$SECONDS_EACH \
    taskset -c "$CPU" "$BIN" >"$TMP/rust.json" || die "the Rust rate run failed"
for ecc in coincurve native; do
    log "python ($ecc): ${SECONDS_EACH}s on CPU $CPU"
    taskset -c "$CPU" "$PY" "$BENCH_DIR/x402/py_verify_rate.py" --corpus "$TMP/corpus.json" \
        --seconds "$SECONDS_EACH" --ecc "$ecc" >"$TMP/py-$ecc.json" || die "bench_verify.py ($ecc) failed"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report ----
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $commit != unknown && -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    commit="$commit (+ uncommitted changes)"
fi
cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
report="$TMP/report.md"
python3 - "$TMP" "$commit" "$(nproc) CPUs, ${cpu_model:-unknown}" "$load_before" "$load_after" \
    "$SECONDS_EACH" "$CPU" >"$report" <<'PY'
import json, sys, time
tmp, commit, machine, load0, load1, secs, cpu = sys.argv[1:]
rust = json.load(open(f"{tmp}/rust.json"))
py = {e: json.load(open(f"{tmp}/py-{e}.json")) for e in ("native", "coincurve")}
r = rust["verifications_per_cpu_second"]
print("## x402 verification per core: faregate vs the official Python SDK\n")
print(f"- date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; commit: {commit}")
print(f"- machine: {machine}; load average before / after: {load0} / {load1}")
print(f"- each side: one thread pinned to CPU {cpu}, {secs} CPU seconds, the same `valid` "
      "payload from interop/x402/corpus.py; decode + match + checks + EIP-712 + recovery, no RPC\n")
print("| verifier | secp256k1 | verifications / CPU s | µs / verification | verifications / wall s | faregate ÷ this (CPU) |")
print("|---|---|---:|---:|---:|---:|")
rows = [("faregate-x402 `verify_exact` (Rust)", "libsecp256k1 (alloy-primitives `secp256k1`)", rust),
        ("official Python x402 2.25.0, default install", "eth_keys pure Python", py["native"]),
        ("official Python x402 2.25.0 + coincurve", "libsecp256k1 (coincurve)", py["coincurve"])]
for name, ecc, d in rows:
    v = d["verifications_per_cpu_second"]
    print(f"| {name} | {ecc} | {v:,.0f} | {d['micros_per_verification_cpu']:,.1f} | "
          f"{d['verifications_per_wall_second']:,.0f} | {r / v:,.1f}× |")
s = rust["stages_micros_cpu"]
print(f"\nfaregate's stages alone, CPU µs: decode {s['decode_header']:.1f}; EIP-712 domain "
      f"separator {s['eip712_domain_separator']:.1f} of a signing hash of {s['eip712_signing_hash']:.1f}; "
      f"recovery {s['recover_secp256k1']:.1f} (pure-Rust k256, the previous backend: "
      f"{s['recover_k256']:.1f}).")
PY
cp "$report" "$OUT_DIR/x402_verify.md"
echo
cat "$report"
echo
log "written to ${OUT_DIR#"$ROOT"/}/x402_verify.md"
