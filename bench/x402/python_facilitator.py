#!/usr/bin/env python3
"""An x402 facilitator server made of the OFFICIAL Python SDK's facilitator (2.25.0).

    python_facilitator.py --port P --rpc URL --gas-key HEX [--host 127.0.0.1]

`POST /verify`, `POST /settle` (body `{x402Version, paymentPayload,
paymentRequirements}`) and `GET /supported`, as the spec's facilitator API
and the SDK's `HTTPFacilitatorClient` speak them, over
`x402FacilitatorSync` with `ExactEvmFacilitatorScheme(FacilitatorWeb3Signer)`
on the anvil. The package ships the facilitator but no HTTP server for it;
this thin FastAPI wrapper is what the SDK's examples put around it. The
endpoints are plain `def`s, so FastAPI runs them in its thread pool: web3.py
blocks, and the signer's nonce lock is thread-safe, so settlements overlap.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import uvicorn
from fastapi import Body, FastAPI

from x402 import x402FacilitatorSync
from x402.mechanisms.evm import FacilitatorWeb3Signer
from x402.mechanisms.evm.exact import ExactEvmFacilitatorScheme
from x402.schemas import PaymentPayload, PaymentRequirements

NETWORK = "eip155:84532"


def build_app(rpc: str, gas_key: str) -> FastAPI:
    key = gas_key if gas_key.startswith("0x") else "0x" + gas_key
    facilitator = x402FacilitatorSync()
    facilitator.register([NETWORK], ExactEvmFacilitatorScheme(
        FacilitatorWeb3Signer(private_key=key, rpc_url=rpc)))
    app = FastAPI()

    def parse(body: dict[str, Any]) -> tuple[PaymentPayload, PaymentRequirements]:
        return (PaymentPayload.model_validate(body["paymentPayload"]),
                PaymentRequirements.model_validate(body["paymentRequirements"]))

    @app.post("/verify")
    def verify(body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        return facilitator.verify(*parse(body)).model_dump(by_alias=True, exclude_none=True)

    @app.post("/settle")
    def settle(body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        return facilitator.settle(*parse(body)).model_dump(by_alias=True, exclude_none=True)

    @app.get("/supported")
    def supported() -> dict[str, Any]:
        return facilitator.get_supported().model_dump(by_alias=True, exclude_none=True)

    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--rpc", required=True)
    ap.add_argument("--gas-key", required=True)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    uvicorn.run(build_app(args.rpc, args.gas_key), host=args.host, port=args.port,
                loop="uvloop", http="httptools", log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
