#!/usr/bin/env python3
"""Pays an x402 v2 URL once with the OFFICIAL Python client (SDK 2.25.0).

    pay.py URL --key HEX [--method GET] [--header K:V]... [--data BODY]
           [--no-spend-controls] [--twice] [--timeout SECONDS]

The client is the SDK's, configured as its README shows: `x402Client()` with
`ExactEvmScheme(signer=Account.from_key(KEY))` registered for `eip155:*`, and
an `httpx.AsyncClient(transport=x402_httpx_transport(client))`. It sends the
request, and on a 402 reads PAYMENT-REQUIRED, picks an offer, signs an
EIP-3009 authorization (offline, no RPC) and retries once with a
PAYMENT-SIGNATURE header. Spend controls stay at the SDK default (only known
assets such as USDC on eip155:84532, at most $1 a payment);
--no-spend-controls disables them (`set_spend_controls(False)`).

Prints one JSON line:
  {"status": int, "headers": {lowercased name: value}, "body": text,
   "payment_response": decoded PAYMENT-RESPONSE JSON or null,
   "payment_signature": the PaymentPayload the client sent (decoded) or null,
   "requests": how many HTTP requests went out}
Repeated response headers are joined with ", ". Exit 0 whatever the HTTP
status: the caller asserts. If the client itself gives up (no offer it can
pay, spend controls, undecodable PAYMENT-REQUIRED...) the line is
{"status": null, "error": "...", ...} and the exit code is 3.

--twice: fetches the 402 once, has the SDK build ONE payment
(`x402HTTPClient.handle_402_response`), then sends the same paid request
twice concurrently with that same PAYMENT-SIGNATURE (a double-spend/replay
probe) and prints a JSON list of the two results (same shape as above).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
from typing import Any

import httpx
from eth_account import Account

from x402 import x402Client
from x402.http.clients import x402_httpx_transport
from x402.http.x402_http_client import x402HTTPClient
from x402.mechanisms.evm.exact import ExactEvmScheme


def b64json(value: str | None) -> Any:
    """Decodes a base64 (standard or URL-safe, padding optional) JSON header."""
    if not value:
        return None
    padded = value.strip() + "=" * (-len(value.strip()) % 4)
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            return json.loads(decode(padded).decode("utf-8"))
        except Exception:
            continue
    return None


class Recorder(httpx.AsyncBaseTransport):
    """Underlying transport that remembers what went out."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.sent: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def describe(response: httpx.Response, payment_header: str | None, requests: int) -> dict:
    headers: dict[str, str] = {}
    for name, value in response.headers.multi_items():
        name = name.lower()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return {
        "status": response.status_code,
        "headers": headers,
        "body": response.text,
        "payment_response": b64json(response.headers.get("payment-response")),
        "payment_signature": b64json(payment_header),
        "requests": requests,
    }


def parse_headers(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition(":")
        if not sep:
            raise SystemExit(f"pay.py: --header wants K:V, got {pair!r}")
        out[name.strip()] = value.strip()
    return out


async def run(args: argparse.Namespace) -> tuple[Any, int]:
    key = args.key if args.key.startswith("0x") else "0x" + args.key
    client = x402Client()
    client.register("eip155:*", ExactEvmScheme(signer=Account.from_key(key)))
    if args.no_spend_controls:
        client.set_spend_controls(False)
    headers = parse_headers(args.header)
    content = args.data.encode() if args.data is not None else None
    recorder = Recorder()

    if not args.twice:
        try:
            async with httpx.AsyncClient(transport=x402_httpx_transport(client, recorder),
                                         timeout=args.timeout) as http:
                response = await http.request(args.method, args.url, headers=headers,
                                              content=content)
        except Exception as exc:
            return ({"status": None, "error": f"{type(exc).__name__}: {exc}",
                     "requests": len(recorder.sent)}, 3)
        sent = [r.headers.get("payment-signature") for r in recorder.sent]
        paid = next((h for h in reversed(sent) if h), None)
        return describe(response, paid, len(recorder.sent)), 0

    async with httpx.AsyncClient(transport=recorder, timeout=args.timeout) as http:
        first = await http.request(args.method, args.url, headers=headers, content=content)
        if first.status_code != 402:
            return [describe(first, None, 1)], 0
        try:
            pay_headers, _payload = await x402HTTPClient(client).handle_402_response(
                dict(first.headers), first.content, args.url)
        except Exception as exc:
            return ({"status": None, "error": f"{type(exc).__name__}: {exc}",
                     "requests": 1}, 3)
        both = {**headers, **pay_headers}
        responses = await asyncio.gather(
            http.request(args.method, args.url, headers=both, content=content),
            http.request(args.method, args.url, headers=both, content=content))
        signature = next(iter(pay_headers.values()), None)
        return [describe(r, signature, len(recorder.sent)) for r in responses], 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url")
    ap.add_argument("--key", required=True, help="payer's private key (hex)")
    ap.add_argument("--method", default="GET")
    ap.add_argument("--header", action="append", default=[], metavar="K:V")
    ap.add_argument("--data", default=None, help="request body")
    ap.add_argument("--no-spend-controls", action="store_true")
    ap.add_argument("--twice", action="store_true",
                    help="send one payment twice concurrently")
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()
    result, code = asyncio.run(run(args))
    print(json.dumps(result))
    return code


if __name__ == "__main__":
    sys.exit(main())
