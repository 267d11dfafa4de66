#!/usr/bin/env python3
"""Verifications per second of the OFFICIAL Python x402 code (SDK 2.25.0), one core.

    bench_verify.py --corpus FILE --seconds N [--name valid]
                    [--mode facilitator|scheme-offline] [--ecc coincurve|native]

Times, in a loop on the corpus entry `--name` (default "valid", which must
verify as valid), the same work faregate's in-process verifier does for a
PAYMENT-SIGNATURE header, with no RPC:

  1. `x402.http.utils.decode_payment_signature_header(header)`: base64 decode,
     JSON parse, pydantic `PaymentPayload` model (what the SDK's resource
     server does in `_extract_payment`);
  2. `x402ResourceServerSync.find_matching_requirements([offer], payload)`:
     matching `accepted` against the server's offer (scheme, network, amount,
     asset, payTo, maxTimeoutSeconds exact; extra as a subset);
  3. the exact-EVM facilitator's verify: scheme/network/extra/recipient/
     amount/time-window checks, EIP-712 digest and secp256k1 recovery.

The facilitator's verify ends with chain reads (eth_getCode for the payer and
the asset, an eth_call simulation of transferWithAuthorization). To keep the
SDK's code path untouched but drop the network, the facilitator runs on an
in-process signer double (`InProcessChain`): the payer has no code (so the
EOA/ecrecover branch runs, as for any wallet key), the asset has code, and the
simulation `read_contract` returns at once. Modes:

  facilitator     (default) the public entry point `x402FacilitatorSync.verify`
                  with the exact-EVM scheme registered, double as signer: the
                  full official path, simulation answered in process;
  scheme-offline  the scheme's own `_verify(payload, requirements,
                  simulate=False)` -- the offline part only, as the SDK's
                  settle uses it -- skipping the facilitator's routing/hooks.

secp256k1 recovery is eth_keys' (what the SDK calls). eth_keys uses
coincurve (libsecp256k1, C) when it is installed -- requirements.txt installs
it, as a production Python facilitator would -- and its pure-Python backend
otherwise, ~70x slower; `--ecc native` measures that bare `x402[evm]` setup.

Prints one JSON line:
  {"impl": "python-x402-2.25.0", "verifications_per_second": F, "seconds": F,
   "iterations": N, "mode": M, "ecc": E}

The verify checks the wall clock (validBefore >= now + 6), so run it within
`maxTimeoutSeconds - 6 - N` seconds of building the corpus (or build the corpus
with a larger maxTimeoutSeconds); it exits 1 if the payload stops verifying.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

ECC_BACKENDS = {"coincurve": "eth_keys.backends.CoinCurveECCBackend",
                "native": "eth_keys.backends.NativeECCBackend"}
if __name__ == "__main__":  # eth_keys reads this when it first recovers a key
    for i, arg in enumerate(sys.argv):
        if arg.startswith("--ecc"):
            choice = arg.split("=", 1)[1] if "=" in arg else sys.argv[i + 1]
            if choice in ECC_BACKENDS:
                os.environ["ECC_BACKEND_CLASS"] = ECC_BACKENDS[choice]
    os.environ.setdefault("ECC_BACKEND_CLASS", ECC_BACKENDS["coincurve"])

from x402 import x402FacilitatorSync, x402ResourceServerSync
from x402.http.utils import decode_payment_signature_header
from x402.mechanisms.evm.exact import ExactEvmFacilitatorScheme, ExactEvmServerScheme
from x402.mechanisms.evm.utils import normalize_address
from x402.schemas import PaymentRequirements

IMPL = "python-x402-2.25.0"


class InProcessChain:
    """FacilitatorEvmSigner double: every read answers at once, nothing is sent."""

    def __init__(self, contracts: set[str]) -> None:
        self._contracts = {c.lower() for c in contracts}

    def get_addresses(self) -> list[str]:
        return ["0x0000000000000000000000000000000000000001"]

    def get_code(self, address: str) -> bytes:
        return b"\x60\x00" if address.lower() in self._contracts else b""

    def read_contract(self, address: str, abi: Any, function_name: str, *args: Any) -> Any:
        return None  # the transferWithAuthorization simulation "succeeds"

    def get_chain_id(self) -> int:
        raise NotImplementedError

    def verify_typed_data(self, *args: Any) -> bool:
        raise NotImplementedError

    def write_contract(self, *args: Any, **kwargs: Any) -> str:
        raise NotImplementedError

    def send_transaction(self, to: str, data: bytes) -> str:
        raise NotImplementedError

    def wait_for_transaction_receipt(self, tx_hash: str) -> Any:
        raise NotImplementedError

    def get_balance(self, address: str, token_address: str) -> int:
        raise NotImplementedError


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--name", default="valid")
    ap.add_argument("--mode", choices=["facilitator", "scheme-offline"], default="facilitator")
    ap.add_argument("--ecc", choices=sorted(ECC_BACKENDS), default="coincurve",
                    help="eth_keys backend for secp256k1 recovery")
    args = ap.parse_args()

    # One core, like the Rust bench's single verifier thread.
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    with open(args.corpus) as f:
        corpus = json.load(f)
    entries = [e for e in corpus if e["name"] == args.name]
    if not entries:
        print(f"bench_verify.py: no corpus entry named {args.name!r}", file=sys.stderr)
        return 2
    entry = entries[0]
    header: str = entry["header"]
    offer = PaymentRequirements.model_validate(entry["requirements"])

    chain = InProcessChain({normalize_address(offer.asset)})
    scheme = ExactEvmFacilitatorScheme(chain)
    facilitator = x402FacilitatorSync()
    facilitator.register(["eip155:*"], scheme)
    server = x402ResourceServerSync()
    server.register("eip155:*", ExactEvmServerScheme())
    offers = [offer]

    if args.mode == "facilitator":
        def verify_one() -> bool:
            payload = decode_payment_signature_header(header)
            matched = server.find_matching_requirements(offers, payload)
            if matched is None:
                return False
            return facilitator.verify(payload, matched).is_valid
    else:
        def verify_one() -> bool:
            payload = decode_payment_signature_header(header)
            matched = server.find_matching_requirements(offers, payload)
            if matched is None:
                return False
            return scheme._verify(payload, matched, simulate=False)[0].is_valid

    for _ in range(50):  # warm-up (imports, caches such as the asset-contract check)
        if not verify_one():
            print(f"bench_verify.py: entry {args.name!r} does not verify as valid "
                  "(expired? rebuild the corpus just before the bench)", file=sys.stderr)
            return 1

    iterations = 0
    start = time.perf_counter()
    deadline = start + args.seconds
    while True:
        for _ in range(20):
            if not verify_one():
                print("bench_verify.py: the payload stopped verifying mid-run "
                      "(validBefore reached?)", file=sys.stderr)
                return 1
        iterations += 20
        now = time.perf_counter()
        if now >= deadline:
            break
    elapsed = now - start
    print(json.dumps({"impl": IMPL, "verifications_per_second": round(iterations / elapsed, 1),
                      "seconds": round(elapsed, 3), "iterations": iterations,
                      "mode": args.mode, "ecc": args.ecc}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
