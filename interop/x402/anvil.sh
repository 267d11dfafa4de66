#!/usr/bin/env bash
# Installs anvil (Foundry's local EVM node, from the npm registry) where
# faregate's x402 settlement tests look for it, and prints the path of the
# binary as its only stdout line. Idempotent (it installs only when the
# binary is missing; concurrent calls are serialised with flock) and quiet,
# but an npm failure is reported with npm's own errors and exit code. Needs
# node and npm. Use it as
#     FAREGATE_ANVIL=$(bash interop/x402/anvil.sh) cargo test -p faregate-x402
set -euo pipefail
ANVIL_VERSION=1.7.1
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/faregate-interop/anvil-$ANVIL_VERSION"
find_binary() {
    # The platform package (`@foundry-rs/anvil-linux-amd64`, …) carries the
    # binary; the postinstall fallback puts it beside the wrapper package.
    local candidate
    for candidate in "$CACHE"/node_modules/@foundry-rs/anvil-*/bin/anvil \
        "$CACHE/node_modules/@foundry-rs/anvil/anvil"; do
        if [[ -x $candidate ]]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}
if ! find_binary >/dev/null; then
    mkdir -p "$CACHE"
    # Serialise concurrent installs into the same folder.
    exec 9>"$CACHE.lock"
    if command -v flock >/dev/null; then flock 9; fi
    if ! find_binary >/dev/null; then
        if ! command -v npm >/dev/null; then
            echo "anvil.sh: npm is not installed; anvil comes from the npm package @foundry-rs/anvil" >&2
            exit 1
        fi
        echo "anvil.sh: installing @foundry-rs/anvil@$ANVIL_VERSION into $CACHE" >&2
        # npm's errors go to stderr; its summary (stdout) is dropped.
        if ! (cd "$CACHE" && npm install --loglevel=error --no-audit --no-fund \
            --no-progress "@foundry-rs/anvil@$ANVIL_VERSION" >/dev/null); then
            echo "anvil.sh: npm install @foundry-rs/anvil@$ANVIL_VERSION failed (see above)" >&2
            exit 1
        fi
    fi
fi
if ! binary=$(find_binary); then
    echo "anvil.sh: @foundry-rs/anvil@$ANVIL_VERSION installed no anvil binary for this platform" >&2
    exit 1
fi
if ! "$binary" --version >/dev/null 2>&1; then
    echo "anvil.sh: $binary does not run on this machine ($("$binary" --version 2>&1 | head -n1))" >&2
    exit 1
fi
echo "$binary"
