#!/usr/bin/env python3
"""Paired rounds at one connection (bench/llm-helpers.sh).

Usage: paired.py LUA DOUBLE_URL DOUBLE_KEY NAME=URL=KEY...
Each round loads the double, then every gateway (the order rotating from
round to round) with `wrk -t1 -c$CONNS -d${DURATION}s --latency`, and prints
each gateway's added p50 and p99 (its percentile less the double's of the
same round) in microseconds; at the end, the median of the rounds.
Env: ROUNDS (10), DURATION (4), CONNS (1), LLM_STREAM (0 or 1).
"""
import os
import re
import statistics
import subprocess
import sys

ROUNDS = int(os.environ.get("ROUNDS", "10"))
DURATION = os.environ.get("DURATION", "4")
CONNS = os.environ.get("CONNS", "1")
STREAM = os.environ.get("LLM_STREAM", "0")
SCALE = {"us": 1.0, "ms": 1e3, "s": 1e6}


def micros(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not m:
        sys.exit(f"unreadable wrk latency: {text}")
    return float(m.group(1)) * SCALE[m.group(2)]


def load(lua, url, key):
    env = dict(os.environ, LLM_KEY=key, LLM_STREAM=STREAM)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{CONNS}", f"-d{DURATION}s", "--latency", "-s", lua, url],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    pct = {p: micros(v) for p, v in re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M)}
    bad = re.search(r"^bad_responses (\d+)", out, re.M)
    if not bad or int(bad.group(1)) or "50" not in pct or "99" not in pct:
        sys.exit(f"bad responses or no latency from {url}:\n{out}")
    return pct["50"], pct["99"]


def main():
    lua, double_url, double_key, *targets = sys.argv[1:]
    gateways = [t.split("=", 2) for t in targets]
    added = {name: [] for name, _, _ in gateways}
    for r in range(ROUNDS):
        d50, d99 = load(lua, double_url, double_key)
        line = [f"round {r + 1}: double {d50:.0f}/{d99:.0f} us"]
        k = r % len(gateways)
        for name, url, key in gateways[k:] + gateways[:k]:
            p50, p99 = load(lua, url, key)
            added[name].append((p50 - d50, p99 - d99))
            line.append(f"{name} {p50 - d50:+.0f}/{p99 - d99:+.0f}")
        print("  ".join(line), flush=True)
    for name, pairs in added.items():
        p50 = statistics.median(a for a, _ in pairs)
        p99 = statistics.median(b for _, b in pairs)
        print(f"{name}: median added p50 {p50:+.0f} us, p99 {p99:+.0f} us "
              f"(p99 by round: {sorted(round(b) for _, b in pairs)})")


if __name__ == "__main__":
    main()
