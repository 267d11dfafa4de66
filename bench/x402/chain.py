#!/usr/bin/env python3
"""The local chain of bench/x402_paid.sh: anvil with the EIP-3009 test token at USDC's address.

    chain.py wait    --rpc URL [--timeout 30]
    chain.py setup   --rpc URL --token-json Token3009.json --at ADDR --mint-to ADDR --amount N
    chain.py balance --rpc URL --token ADDR --who ADDR
    chain.py stats   --rpc URL

`setup` follows interop/x402/README.md (and the testkit's `Anvil`): deploy
the fixture token from anvil's unlocked account 0, copy its runtime code to
ADDR with `anvil_setCode` (Base Sepolia USDC, so the official client pays
it under its default spend controls; the token's EIP-712 name and version,
"USD Coin" and "2", are immutables and move with the code), then mint N
atomic units to the payer. `balance` prints `balanceOf(who)`; `stats`
prints the block number as JSON. Plain JSON-RPC over urllib, so what the
bench sees of the chain goes through neither settler under test.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from typing import Any

from eth_utils import keccak


def rpc(url: str, method: str, params: list[Any]) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    req = urllib.request.Request(url, body, {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        answer = json.load(resp)
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer["result"]


def selector(signature: str) -> str:
    return keccak(text=signature)[:4].hex()


def word(value: int | str) -> str:
    if isinstance(value, str):  # an address
        value = int(value, 16)
    return f"{value:064x}"


def transact(url: str, sender: str, to: str | None, data: str) -> dict[str, Any]:
    tx: dict[str, Any] = {"from": sender, "data": data}
    if to:
        tx["to"] = to
    tx_hash = rpc(url, "eth_sendTransaction", [tx])
    for _ in range(500):
        receipt = rpc(url, "eth_getTransactionReceipt", [tx_hash])
        if receipt:
            if receipt["status"] != "0x1":
                raise RuntimeError(f"transaction {tx_hash} reverted: {receipt}")
            return receipt
        time.sleep(0.01)
    raise RuntimeError(f"{tx_hash} not mined within 5 s")


def balance(url: str, token: str, who: str) -> int:
    data = "0x" + selector("balanceOf(address)") + word(who)
    return int(rpc(url, "eth_call", [{"to": token, "data": data}, "latest"]), 16)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("wait")
    w.add_argument("--rpc", required=True)
    w.add_argument("--timeout", type=float, default=30)
    s = sub.add_parser("setup")
    s.add_argument("--rpc", required=True)
    s.add_argument("--token-json", required=True)
    s.add_argument("--at", required=True)
    s.add_argument("--mint-to", required=True)
    s.add_argument("--amount", type=int, required=True)
    b = sub.add_parser("balance")
    b.add_argument("--rpc", required=True)
    b.add_argument("--token", required=True)
    b.add_argument("--who", required=True)
    st = sub.add_parser("stats")
    st.add_argument("--rpc", required=True)
    args = ap.parse_args()

    if args.cmd == "wait":
        deadline = time.monotonic() + args.timeout
        while True:
            try:
                print(int(rpc(args.rpc, "eth_chainId", []), 16))
                return 0
            except OSError:
                if time.monotonic() > deadline:
                    print(f"chain.py: no answer from {args.rpc}", file=sys.stderr)
                    return 1
                time.sleep(0.1)
    if args.cmd == "setup":
        with open(args.token_json) as f:
            bytecode = json.load(f)["bytecode"]
        if not bytecode.startswith("0x"):
            bytecode = "0x" + bytecode
        deployer = rpc(args.rpc, "eth_accounts", [])[0]
        deployed = transact(args.rpc, deployer, None, bytecode)["contractAddress"]
        code = rpc(args.rpc, "eth_getCode", [deployed, "latest"])
        rpc(args.rpc, "anvil_setCode", [args.at, code])
        data = "0x" + selector("mint(address,uint256)") + word(args.mint_to) + word(args.amount)
        transact(args.rpc, deployer, args.at, data)
        got = balance(args.rpc, args.at, args.mint_to)
        if got < args.amount:
            print(f"chain.py: minted, but the balance is {got}", file=sys.stderr)
            return 1
        return 0
    if args.cmd == "balance":
        print(balance(args.rpc, args.token, args.who))
        return 0
    print(json.dumps({"block": int(rpc(args.rpc, "eth_blockNumber", []), 16)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
