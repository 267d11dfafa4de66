#!/usr/bin/env bash
# Installs Stripe's Node library where faregate's tests look for it
# (the subscription lifecycle test signs its webhooks with it) and prints
# the node_modules folder. Needs node and npm.
set -euo pipefail
STRIPE_VERSION=23.1.0
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/faregate-interop/stripe-$STRIPE_VERSION"
if [[ ! -d $CACHE/node_modules/stripe ]]; then
    mkdir -p "$CACHE"
    (cd "$CACHE" && npm install --silent --no-audit --no-fund "stripe@$STRIPE_VERSION" >/dev/null)
fi
echo "$CACHE/node_modules"
