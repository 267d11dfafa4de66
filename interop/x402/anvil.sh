#!/usr/bin/env bash
# Installs anvil (Foundry's local EVM node, from the npm registry) where
# faregate's x402 settlement tests look for it, and prints the path of the
# binary. Idempotent and quiet; needs node and npm. Use it as
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
    (cd "$CACHE" && npm install --silent --no-audit --no-fund "@foundry-rs/anvil@$ANVIL_VERSION" >/dev/null)
fi
if ! binary=$(find_binary); then
    echo "anvil.sh: @foundry-rs/anvil@$ANVIL_VERSION installed no anvil binary for this platform" >&2
    exit 1
fi
echo "$binary"
