#!/usr/bin/env bash
# Webhook signatures against Stripe's own Node library: it makes headers
# (stripe.webhooks.generateTestHeaderString) for random payloads, secrets and
# times; crates/faregate-rails/tests/stripe_interop.rs checks that each
# verifies with our code and that ours are byte for byte the same.
#
# Usage: bash interop/stripe-signature.sh     Needs node and npm.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

STRIPE_VERSION=23.1.0
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/faregate-interop/stripe-$STRIPE_VERSION"
if [[ ! -d $CACHE/node_modules/stripe ]]; then
    mkdir -p "$CACHE"
    (cd "$CACHE" && npm install --silent --no-audit --no-fund "stripe@$STRIPE_VERSION" >/dev/null)
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
NODE_PATH="$CACHE/node_modules" node - "$TMP/vectors.json" <<'JS'
const fs = require('fs');
const crypto = require('crypto');
const stripe = require('stripe')('sk_test_interop');
const out = [];
for (let i = 0; i < 200; i++) {
  const payload = JSON.stringify({
    id: 'evt_' + crypto.randomBytes(8).toString('hex'),
    type: ['invoice.paid', 'checkout.session.completed', 'payment_method.attached'][i % 3],
    data: { object: { note: 'ünïcödé ✓ ' + crypto.randomBytes(i % 40).toString('base64') } },
  }, null, i % 2 ? 2 : 0);
  const secret = 'whsec_' + crypto.randomBytes(24).toString('base64');
  const timestamp = 1600000000 + Math.floor(Math.random() * 200000000);
  const header = stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp });
  out.push({ payload, secret, timestamp, header });
}
fs.writeFileSync(process.argv[2], JSON.stringify(out));
JS
FAREGATE_STRIPE_VECTORS="$TMP/vectors.json" cargo test --locked -p faregate-rails --test stripe_interop -- --nocapture
echo "stripe-signature: passed (stripe $STRIPE_VERSION)"
