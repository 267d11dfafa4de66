#!/usr/bin/env python3
"""Runs the OFFICIAL x402 facilitator (Python SDK 2.25.0) over a corpus.

    oracle.py --rpc URL --key HEX_GAS_KEY --corpus FILE [--settle-first NAME]

The facilitator is the SDK's own: `x402FacilitatorSync()` with the `exact`
EVM facilitator scheme (`x402.mechanisms.evm.exact.ExactEvmFacilitatorScheme`)
registered for `eip155:*`, on a `FacilitatorWeb3Signer(private_key, rpc_url)`
talking to the chain at --rpc (an anvil for tests). --key pays the gas of a
settlement. The wildcard registration lets a payload whose `accepted.network`
differs from the offer reach the scheme's own `network_mismatch` check instead
of failing the facilitator's routing.

For each corpus entry (corpus.py's output) it calls
`facilitator.verify(PaymentPayload, PaymentRequirements)` -- the full verify:
field checks, EIP-712 recovery, eth_getCode, and an eth_call simulation of
transferWithAuthorization -- and prints one JSON list on stdout:
    [{"name", "isValid", "invalidReason", "invalidMessage", "payer"}]
A verify that raises is reported as isValid false with invalidReason
"exception:<Type>" and the message.

--settle-first NAME settles that entry with `facilitator.settle` before
verifying everything, so verifying the same payload afterwards shows the
replay verdict (`invalid_exact_evm_nonce_already_used`). The settlement
result goes to stderr; the script exits 1 if that settlement failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from x402 import x402FacilitatorSync
from x402.mechanisms.evm import FacilitatorWeb3Signer
from x402.mechanisms.evm.exact import ExactEvmFacilitatorScheme
from x402.schemas import PaymentPayload, PaymentRequirements


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rpc", required=True, help="JSON-RPC URL of the chain (anvil)")
    ap.add_argument("--key", required=True, help="facilitator's private key (pays gas)")
    ap.add_argument("--corpus", required=True, help="corpus.py output")
    ap.add_argument("--settle-first", default=None, metavar="NAME",
                    help="settle this corpus entry before verifying")
    args = ap.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)

    with open(args.corpus) as f:
        corpus = json.load(f)

    signer = FacilitatorWeb3Signer(private_key=args.key, rpc_url=args.rpc)
    facilitator = x402FacilitatorSync()
    facilitator.register(["eip155:*"], ExactEvmFacilitatorScheme(signer))

    def models(entry: dict) -> tuple[PaymentPayload, PaymentRequirements]:
        return (PaymentPayload.model_validate(entry["payload"]),
                PaymentRequirements.model_validate(entry["requirements"]))

    rc = 0
    if args.settle_first:
        chosen = [e for e in corpus if e["name"] == args.settle_first]
        if not chosen:
            print(f"oracle.py: no corpus entry named {args.settle_first!r}", file=sys.stderr)
            return 2
        settled = facilitator.settle(*models(chosen[0]))
        print("oracle.py: settle " + args.settle_first + ": "
              + settled.model_dump_json(by_alias=True, exclude_none=True), file=sys.stderr)
        if not settled.success:
            rc = 1

    verdicts = []
    for entry in corpus:
        try:
            result = facilitator.verify(*models(entry))
            verdicts.append({"name": entry["name"], "isValid": result.is_valid,
                             "invalidReason": result.invalid_reason,
                             "invalidMessage": result.invalid_message,
                             "payer": result.payer})
        except Exception as exc:  # routing errors, malformed entries
            verdicts.append({"name": entry["name"], "isValid": False,
                             "invalidReason": f"exception:{type(exc).__name__}",
                             "invalidMessage": str(exc), "payer": None})
    print(json.dumps(verdicts))
    return rc


if __name__ == "__main__":
    sys.exit(main())
