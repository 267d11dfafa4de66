#!/usr/bin/env bash
# Runs the x402-conformance resource-server probe (PyPI x402-conformance,
# pinned in requirements.txt) against one paid URL of a running server:
#     bash interop/x402/conformance.sh http://127.0.0.1:PORT/paid/route
# It sends ONE unpaid GET and grades the 402 (checks P1-P7: status 402, a
# decodable PAYMENT-REQUIRED header, v2 shape, resource.url, accepts entries,
# EIP-712 extra, header size). Prints x402conf's JSON report on stdout and
# exits with its code: 0 if every error-severity check passed, 1 otherwise.
set -euo pipefail
if [[ $# -ne 1 ]]; then
    echo "usage: $0 URL" >&2
    exit 2
fi
PY="$(bash "$(dirname "${BASH_SOURCE[0]}")/install.sh")"
exec "$(dirname "$PY")/x402conf" resource "$1" --fail-on-error
