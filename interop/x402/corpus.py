#!/usr/bin/env python3
"""Builds a corpus of x402 v2 `exact`/EIP-3009 payment payloads for one offer.

    corpus.py --key HEX --requirements REQ.json [--now UNIX] [--out FILE]
              [--resource-url URL]

REQ.json holds one PaymentRequirements object (`{"scheme":"exact","network":
"eip155:84532","amount":…,"asset":…,"payTo":…,"maxTimeoutSeconds":…,"extra":
{"name":…,"version":…}}`) or a whole PaymentRequired (its `accepts[0]` is used).

Signing goes through the official Python SDK's client code (x402 2.25.0):
`x402.mechanisms.evm.build_typed_data_for_signing` builds the EIP-712 domain
from `extra.name`/`extra.version`, the chain id from `network` and
`verifyingContract = asset`, exactly as `ExactEvmScheme` (client) does, and
`EthAccountSigner.sign_typed_data` signs it. Payloads are wrapped in the SDK's
`PaymentPayload` model and dumped the way the client encodes its
PAYMENT-SIGNATURE header (camelCase, nulls dropped: no `extensions`).

Output (`--out`, default stdout): a JSON list of
    {"name", "payload", "requirements", "header", "expect"}
where `payload` is the PaymentPayload, `requirements` the server's offer it is
checked against, `header` the base64 PAYMENT-SIGNATURE value a client would
send, and `expect` the verdict the reference facilitator gives
(`{"isValid": bool, "invalidReason": str|null}`; oracle.py checks it for real).

Every entry has its own random nonce. Cases: valid, wrong_amount (value =
amount-1, re-signed), overpaid_amount (amount+1, re-signed; x402-rs accepts it,
the reference does not), wrong_recipient (to != payTo, re-signed), expired
(validBefore = now+5 < now+6), not_yet_valid (validAfter = now+3600),
bad_signature (one byte of r flipped), other_chain (signed for another
chainId), network_changed (accepted.network differs from the offer),
wrong_signer (signed by a key that is not `from`), unfunded_payer (a
well-formed payment from a key holding no tokens). Times are relative to
--now (default: the clock).

`expect` is the semantic verdict. One differs from what oracle.py prints on a
bare anvil: for unfunded_payer the reference facilitator's simulation reverts
with OZ's custom error `ERC20InsufficientBalance`, which it cannot name, and
its diagnosis batch needs Multicall3 (not deployed on anvil), so it answers
`invalid_exact_evm_transaction_simulation_failed` rather than
`invalid_exact_evm_insufficient_balance`. Treat reason strings as opaque and
assert on isValid where they differ.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time

from eth_account import Account
from eth_utils import keccak

from x402.http.utils import encode_payment_signature_header
from x402.mechanisms.evm import build_typed_data_for_signing
from x402.mechanisms.evm import constants as C
from x402.mechanisms.evm.signers import EthAccountSigner
from x402.mechanisms.evm.types import (
    ExactEIP3009Authorization,
    ExactEIP3009Payload,
    TypedDataField,
)
from x402.mechanisms.evm.utils import create_nonce, get_evm_chain_id
from x402.schemas import PaymentPayload, PaymentRequirements, ResourceInfo


def sign(signer: EthAccountSigner, auth: ExactEIP3009Authorization, chain_id: int,
         asset: str, name: str, version: str) -> str:
    """Signs like x402's ExactEvmScheme (client) `_sign_authorization`."""
    domain, types, primary, message = build_typed_data_for_signing(
        auth, chain_id, asset, name, version)
    fields = {t: [TypedDataField(name=f["name"], type=f["type"]) for f in fs]
              for t, fs in types.items()}
    return "0x" + signer.sign_typed_data(domain, fields, primary, message).hex()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--key", required=True, help="payer's private key (hex)")
    ap.add_argument("--requirements", required=True, help="JSON file: PaymentRequirements")
    ap.add_argument("--now", type=int, default=None, help="unix time the corpus is built for")
    ap.add_argument("--out", default="-", help="output file (default stdout)")
    ap.add_argument("--resource-url", default=None,
                    help="also put resource {url} into every payload")
    args = ap.parse_args()

    with open(args.requirements) as f:
        req_json = json.load(f)
    if isinstance(req_json, dict) and "accepts" in req_json:
        req_json = req_json["accepts"][0]
    req = PaymentRequirements.model_validate(req_json)
    extra = req.extra or {}
    if "name" not in extra or "version" not in extra:
        print("corpus.py: requirements.extra needs name and version", file=sys.stderr)
        return 2

    now = args.now if args.now is not None else int(time.time())
    chain_id = get_evm_chain_id(str(req.network))
    other_chain = 8453 if chain_id != 8453 else 84532
    key = args.key if args.key.startswith("0x") else "0x" + args.key
    payer = EthAccountSigner(Account.from_key(key))
    # A second, deterministic key that is not the payer.
    stranger = EthAccountSigner(Account.from_key(keccak(b"faregate-corpus-stranger" + bytes.fromhex(key[2:]))))
    resource = ResourceInfo(url=args.resource_url) if args.resource_url else None

    def authorization(**over: str) -> ExactEIP3009Authorization:
        fields = dict(from_address=payer.address, to=req.pay_to, value=req.amount,
                      valid_after="0", valid_before=str(now + req.max_timeout_seconds),
                      nonce=create_nonce())
        fields.update(over)
        return ExactEIP3009Authorization(**fields)

    def entry(name: str, auth: ExactEIP3009Authorization, signature: str,
              expect: str | None, accepted: PaymentRequirements | None = None) -> dict:
        inner = ExactEIP3009Payload(authorization=auth, signature=signature).to_dict()
        payload = PaymentPayload(x402_version=2, payload=inner, accepted=accepted or req,
                                 resource=resource)
        return {
            "name": name,
            "payload": payload.model_dump(by_alias=True, exclude_none=True, mode="json"),
            "requirements": req_json,
            "header": encode_payment_signature_header(payload),
            "expect": {"isValid": expect is None, "invalidReason": expect},
        }

    def signed(auth: ExactEIP3009Authorization, by: EthAccountSigner = payer,
               chain: int = chain_id) -> str:
        return sign(by, auth, chain, req.asset, extra["name"], extra["version"])

    cases = []
    a = authorization()
    cases.append(entry("valid", a, signed(a), None))

    a = authorization(value=str(int(req.amount) - 1))
    cases.append(entry("wrong_amount", a, signed(a), C.ERR_AUTHORIZATION_VALUE_MISMATCH))

    a = authorization(value=str(int(req.amount) + 1))
    cases.append(entry("overpaid_amount", a, signed(a), C.ERR_AUTHORIZATION_VALUE_MISMATCH))

    a = authorization(to=stranger.address)
    cases.append(entry("wrong_recipient", a, signed(a), C.ERR_RECIPIENT_MISMATCH))

    a = authorization(valid_before=str(now + 5))
    cases.append(entry("expired", a, signed(a), C.ERR_VALID_BEFORE_EXPIRED))

    a = authorization(valid_after=str(now + 3600))
    cases.append(entry("not_yet_valid", a, signed(a), C.ERR_VALID_AFTER_FUTURE))

    a = authorization()
    sig = bytearray.fromhex(signed(a)[2:])
    sig[0] ^= 0x01  # flip a bit of r
    cases.append(entry("bad_signature", a, "0x" + sig.hex(), C.ERR_INVALID_SIGNATURE))

    a = authorization()
    cases.append(entry("other_chain", a, signed(a, chain=other_chain), C.ERR_INVALID_SIGNATURE))

    a = authorization()
    moved = copy.deepcopy(req)
    moved.network = f"eip155:{other_chain}"
    cases.append(entry("network_changed", a, signed(a), C.ERR_NETWORK_MISMATCH, accepted=moved))

    a = authorization()
    cases.append(entry("wrong_signer", a, signed(a, by=stranger), C.ERR_INVALID_SIGNATURE))

    a = authorization(from_address=stranger.address)
    cases.append(entry("unfunded_payer", a, signed(a, by=stranger), C.ERR_INSUFFICIENT_BALANCE))

    text = json.dumps(cases, indent=1) + "\n"
    if args.out == "-":
        sys.stdout.write(text)
    else:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
