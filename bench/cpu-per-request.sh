#!/usr/bin/env bash
# CPU time one process spends per request under load: a steadier figure than
# requests/s on a shared machine, where the load generator and the upstream
# compete for the same cores.
#
# Usage: bash bench/cpu-per-request.sh PID[,PID...] URL [SECONDS] [CONNECTIONS]
#   PID   the processes to account (all their threads: user + system time),
#         e.g. every worker of an nginx with several
#   WRK_THREADS (env, default 1): wrk's threads
#   URL   what wrk loads, e.g. http://127.0.0.1:8402/bench/free
# Prints: requests/s and CPU microseconds per request of PID.
set -euo pipefail
pid=${1:?PID}
url=${2:?URL}
secs=${3:-5}
conns=${4:-64}
IFS=, read -r -a pids <<<"$pid"
for p in "${pids[@]}"; do
    [[ -d /proc/$p ]] || { echo "no process $p" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
hz=$(getconf CLK_TCK)
ticks() {
    local sum=0 f
    for p in "${pids[@]}"; do
        for f in /proc/"$p"/task/*/stat; do
            # fields 14 and 15: utime and stime, in clock ticks (after the comm field)
            sum=$((sum + $(sed 's/.*) //' "$f" | awk '{print $12 + $13}')))
        done
    done
    echo "$sum"
}
before=$(ticks)
out=$(wrk -t"${WRK_THREADS:-1}" -c"$conns" -d"${secs}s" "$url")
after=$(ticks)
requests=$(awk '/requests in/ {print $1}' <<<"$out")
rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
python3 - "$before" "$after" "$requests" "$hz" "$rps" <<'PY'
import sys
before, after, requests, hz, rps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
us = (after - before) / hz * 1e6 / max(requests, 1)
print(f"requests/s {rps}  cpu_us_per_request {us:.1f}")
PY
