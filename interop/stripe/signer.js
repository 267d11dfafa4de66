// Signs webhook payloads with Stripe's own library for faregate's tests:
// reads one JSON object per line ({"payload", "secret", "timestamp"}) and
// writes the Stripe-Signature header that
// stripe.webhooks.generateTestHeaderString makes for it, one per line.
const readline = require('readline');
const stripe = require('stripe')('sk_test_faregate');
const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const { payload, secret, timestamp } = JSON.parse(line);
  const header = stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp });
  process.stdout.write(header + '\n');
});
