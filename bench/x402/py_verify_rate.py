#!/usr/bin/env python3
"""Runs interop/x402/bench_verify.py unchanged, timed by CPU as well as by wall clock.

    py_verify_rate.py [bench_verify.py arguments...]

bench_verify.py (the official Python SDK's decode + match + verify loop, one
core, no RPC) times its loop with `time.perf_counter()`: wall-clock time,
which on a shared machine also counts the time other processes held the
core. To get the per-core rate that the Rust side reports (CPU seconds of
the verifying thread), this wrapper swaps `time.perf_counter` for the
thread's CPU clock (`time.thread_time`) before running the script as
`__main__`. bench_verify.py calls that clock only to start its loop, check
its deadline and stop (nothing in the SDK calls it), so its loop then runs
for `--seconds` of CPU time and its printed rate is per CPU second. Each
reading also records the wall clock, so the wall rate of the same loop is
reported too.

Prints one JSON line: bench_verify.py's own, plus
`verifications_per_cpu_second`, `verifications_per_wall_second`,
`cpu_seconds`, `wall_seconds` and `micros_per_verification_cpu`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import runpy
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.join(HERE, "..", "..", "interop", "x402", "bench_verify.py")


def main() -> int:
    marks: list[tuple[float, float]] = []
    wall_clock = time.perf_counter

    def cpu_clock() -> float:
        cpu, wall = time.thread_time(), wall_clock()
        marks.append((cpu, wall))
        return cpu

    time.perf_counter = cpu_clock  # type: ignore[assignment]
    sys.argv = [BENCH, *sys.argv[1:]]
    out = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out):
        try:
            runpy.run_path(BENCH, run_name="__main__")
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    time.perf_counter = wall_clock  # type: ignore[assignment]
    text = out.getvalue().strip()
    if code != 0 or not text:
        print(text)
        return code or 1
    result = json.loads(text.splitlines()[-1])
    if len(marks) < 2:
        print("py_verify_rate.py: bench_verify.py did not read its clock", file=sys.stderr)
        return 1
    (cpu0, wall0), (cpu1, wall1) = marks[0], marks[-1]
    n = result["iterations"]
    result.update({
        "verifications_per_cpu_second": round(n / (cpu1 - cpu0), 1),
        "verifications_per_wall_second": round(n / (wall1 - wall0), 1),
        "cpu_seconds": round(cpu1 - cpu0, 3),
        "wall_seconds": round(wall1 - wall0, 3),
        "micros_per_verification_cpu": round((cpu1 - cpu0) * 1e6 / n, 2),
    })
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
