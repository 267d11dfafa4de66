#!/usr/bin/env python3
"""The baseline of bench/x402_paid.sh: the OFFICIAL Python x402 server (SDK 2.25.0) on FastAPI.

    python_server.py --port P --rpc URL --gas-key HEX --pay-to ADDR
                     [--facilitator inprocess|URL] [--host 127.0.0.1]

One paid route, `GET /bench/paid`, priced at 10000 atomic units (0.01 USDC)
of the token at Base Sepolia's USDC address on eip155:84532, answering the
same 39-byte JSON body as the bench's nginx upstream. Everything on the
payment path is the SDK's, assembled as its docstrings show:

- `x402ResourceServer(facilitator)` with `ExactEvmServerScheme()` registered
  for eip155:84532, and the FastAPI middleware
  `x402.http.middleware.fastapi.payment_middleware(routes, server)`, built
  once at start-up (its docstring's example builds it inside the middleware
  function, i.e. per request; that would only make Python slower). It runs
  the reference flow: decode PAYMENT-SIGNATURE, match the offer, verify,
  call the handler, settle, add PAYMENT-RESPONSE.
- The facilitator is the SDK's own `ExactEvmFacilitatorScheme` over a
  `FacilitatorWeb3Signer(private_key, rpc_url)` (web3.py on the anvil):
  verify = field checks, EIP-712 recovery, eth_getCode of payer and asset,
  eth_call simulation of transferWithAuthorization; settle = send
  transferWithAuthorization with the gas key and wait for the receipt.
  `--facilitator inprocess` (default): an `x402Facilitator` in this process,
  passed to the resource server as its facilitator client (it has the
  client's `verify`/`settle`/`get_supported`). Its scheme's chain calls are
  synchronous web3.py, so they run on the event loop, one request at a time.
  `--facilitator URL`: the SDK's `HTTPFacilitatorClient(FacilitatorConfig(url))`
  to a facilitator server (bench/x402/python_facilitator.py), as a resource
  server talking to a remote facilitator is deployed.

The price is an `AssetAmount` with the token's real EIP-712 domain in
`extra` ("USD Coin", "2"): the SDK's "$0.01" would name Base Sepolia USDC's
domain ("USDC"), which this test token does not have, so every settlement
would revert. uvicorn serves it with uvloop and httptools (what `fastapi run`
picks), one worker, access log off. The secp256k1 backend is eth_keys'
default unless ECC_BACKEND_CLASS says otherwise (bench/x402_paid.sh sets it).
"""

from __future__ import annotations

import argparse
import logging

import uvicorn
from fastapi import FastAPI, Request, Response

from x402 import x402Facilitator, x402ResourceServer
from x402.http import FacilitatorConfig, HTTPFacilitatorClient
from x402.http.middleware.fastapi import payment_middleware
from x402.http.types import PaymentOption, RouteConfig
from x402.mechanisms.evm import FacilitatorWeb3Signer
from x402.mechanisms.evm.exact import ExactEvmFacilitatorScheme, ExactEvmServerScheme
from x402.schemas import AssetAmount

NETWORK = "eip155:84532"
USDC = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
BODY = b'{"ok":true,"msg":"hello from upstream"}'


def build_app(args: argparse.Namespace) -> FastAPI:
    if args.facilitator == "inprocess":
        key = args.gas_key if args.gas_key.startswith("0x") else "0x" + args.gas_key
        signer = FacilitatorWeb3Signer(private_key=key, rpc_url=args.rpc)
        facilitator = x402Facilitator()
        facilitator.register([NETWORK], ExactEvmFacilitatorScheme(signer))
        client = facilitator
    else:
        client = HTTPFacilitatorClient(FacilitatorConfig(url=args.facilitator))
    server = x402ResourceServer(client)
    server.register(NETWORK, ExactEvmServerScheme())
    price = AssetAmount(amount="10000", asset=USDC, extra={"name": "USD Coin", "version": "2"})
    routes = {
        "GET /bench/paid": RouteConfig(
            accepts=PaymentOption(scheme="exact", pay_to=args.pay_to, price=price,
                                  network=NETWORK, max_timeout_seconds=600),
            description="bench: a paid 39-byte JSON body",
            mime_type="application/json",
        )
    }
    x402 = payment_middleware(routes, server)

    app = FastAPI()

    @app.middleware("http")
    async def pay(request: Request, call_next):  # type: ignore[no-untyped-def]
        return await x402(request, call_next)

    @app.get("/bench/paid")
    async def paid() -> Response:
        return Response(content=BODY, media_type="application/json")

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(content=b"ok")

    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--rpc", required=True)
    ap.add_argument("--gas-key", required=True)
    ap.add_argument("--pay-to", required=True)
    ap.add_argument("--facilitator", default="inprocess")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    uvicorn.run(build_app(args), host=args.host, port=args.port, loop="uvloop",
                http="httptools", log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
