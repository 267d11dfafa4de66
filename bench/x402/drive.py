#!/usr/bin/env python3
"""Load driver of bench/x402_paid.sh: distinct paid requests, pre-signed, sent concurrently.

    drive.py --url URL --key PAYER_HEX --n N [--concurrency C] [--seconds S]
             [--warmup W] [--label NAME]

1. GETs URL unpaid and reads the 402's PAYMENT-REQUIRED header.
2. Has the OFFICIAL Python client (`x402ClientSync` with `ExactEvmScheme`
   over the payer's key, default spend controls) build W + N payments for it,
   each an EIP-3009 authorization with its own random nonce, encoded with the
   SDK's `encode_payment_signature_header`. Signing happens before any
   timing, in one process per CPU.
3. Sends the W warm-up payments one at a time (not counted), then the N
   others with C connections in flight (aiohttp, keep-alive), each at most
   once, until they are all answered or S seconds have passed.

A request counts as paid only when it answers 200 with a PAYMENT-RESPONSE
that decodes to `success: true` and a 32-byte transaction hash. Prints one
JSON line: paid requests per second over the measured window, the count of
each other outcome (status and reason), latency percentiles of the paid
ones, and the driver's own CPU seconds (to tell when the driver, not the
server, is the limit).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import aiohttp

PAY_HEADER = "PAYMENT-SIGNATURE"


def b64json(value: str | None) -> Any:
    if not value:
        return None
    try:
        return json.loads(base64.b64decode(value + "=" * (-len(value) % 4)))
    except Exception:
        return None


def sign_batch(job: tuple[str, str, int]) -> list[str]:
    """`count` payment headers for one PAYMENT-REQUIRED, by the official client."""
    key, required_header, count = job
    from eth_account import Account
    from x402 import x402ClientSync
    from x402.http.utils import decode_payment_required_header, encode_payment_signature_header
    from x402.mechanisms.evm.exact import ExactEvmScheme

    client = x402ClientSync()
    client.register("eip155:*", ExactEvmScheme(signer=Account.from_key(key)))
    required = decode_payment_required_header(required_header)
    return [encode_payment_signature_header(client.create_payment_payload(required))
            for _ in range(count)]


def sign_all(key: str, required_header: str, total: int) -> list[str]:
    procs = max(1, min(os.cpu_count() or 1, 8))
    shares = [total // procs + (1 if i < total % procs else 0) for i in range(procs)]
    with ProcessPoolExecutor(procs) as pool:
        batches = pool.map(sign_batch, [(key, required_header, n) for n in shares if n])
        return [h for batch in batches for h in batch]


def outcome(status: int, headers: Any, body: bytes) -> str:
    """`paid`, or what else happened."""
    settle = b64json(headers.get("PAYMENT-RESPONSE"))
    if status == 200:
        tx = (settle or {}).get("transaction") or ""
        if settle and settle.get("success") is True and len(tx) == 66 and tx.startswith("0x"):
            return "paid"
        return "200 without a successful PAYMENT-RESPONSE"
    reason = (settle or {}).get("errorReason")
    if not reason:
        required = b64json(headers.get("PAYMENT-REQUIRED"))
        reason = (required or {}).get("error")
    if not reason:
        reason = body[:120].decode("utf-8", "replace")
    return f"{status} {reason}"


async def one(session: aiohttp.ClientSession, url: str, header: str) -> tuple[str, float]:
    start = time.perf_counter()
    try:
        async with session.get(url, headers={PAY_HEADER: header}) as resp:
            body = await resp.read()
            return outcome(resp.status, resp.headers, body), time.perf_counter() - start
    except Exception as exc:  # a transport failure is an outcome too
        return f"error {type(exc).__name__}", time.perf_counter() - start


async def run(args: argparse.Namespace) -> dict[str, Any]:
    key = args.key if args.key.startswith("0x") else "0x" + args.key
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=args.concurrency, force_close=False)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        async with session.get(args.url) as resp:
            await resp.read()
            required = resp.headers.get("PAYMENT-REQUIRED")
            if resp.status != 402 or not required:
                raise SystemExit(f"drive.py: unpaid GET {args.url} answered {resp.status} "
                                 "without PAYMENT-REQUIRED")
        t0 = time.perf_counter()
        headers = sign_all(key, required, args.warmup + args.n)
        signing = time.perf_counter() - t0

        warm = Counter()
        for h in headers[: args.warmup]:
            warm[(await one(session, args.url, h))[0]] += 1
        todo = iter(headers[args.warmup:])
        outcomes: Counter[str] = Counter()
        latencies: list[float] = []
        cpu0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime + \
            resource.getrusage(resource.RUSAGE_SELF).ru_stime
        start = time.perf_counter()
        deadline = start + args.seconds
        last = start

        async def worker() -> None:
            nonlocal last
            for h in todo:
                if time.perf_counter() >= deadline:
                    return
                what, took = await one(session, args.url, h)
                outcomes[what] += 1
                last = time.perf_counter()
                if what == "paid":
                    latencies.append(took)

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        elapsed = last - start
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = usage.ru_utime + usage.ru_stime - cpu0

    latencies.sort()

    def pct(p: float) -> float | None:
        if not latencies:
            return None
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1e3, 2)

    paid = outcomes.get("paid", 0)
    return {
        "label": args.label,
        "url": args.url,
        "paid_per_second": round(paid / elapsed, 1) if elapsed > 0 else 0.0,
        "paid": paid,
        "sent": sum(outcomes.values()),
        "presigned": args.n,
        "seconds": round(elapsed, 3),
        "concurrency": args.concurrency,
        "other_outcomes": {k: v for k, v in outcomes.items() if k != "paid"},
        "warmup_outcomes": dict(warm),
        "latency_ms": {"p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99)},
        "driver_cpu_seconds": round(cpu, 3),
        "signing_seconds": round(signing, 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--key", required=True, help="payer's private key (hex)")
    ap.add_argument("--n", type=int, required=True, help="measured payments, pre-signed")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--label", default="")
    args = ap.parse_args()
    print(json.dumps(asyncio.run(run(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
