#!/usr/bin/env bash
# The cost of `GET /metrics` on the admin socket with 100 programs: p50/p99 of a
# scrape (a fresh unix-socket connection each, as `curl --unix-socket` does),
# its size, the supervisor's RSS, and its idle wake-ups per second. One command:
#
#     bench/metrics_scrape.sh          # builds release; needs python3
#     SCRAPES=2000 IDLE_SECONDS=20 PROGRAMS=100 PROBED=10 bench/metrics_scrape.sh
#
# Phase 1: PROGRAMS programs (`sleep infinity`), PROBED of them with a tcp probe
# every second (to an address the supervisor itself listens on for them, so a
# probe spawns nothing), so the probe histograms are filled; SCRAPES scrapes
# after 100 warm-up ones; RSS before and after. Phase 2: the same without probes,
# the supervisor left alone for IDLE_SECONDS: wake-ups = voluntary + involuntary
# context switches of all its threads (/proc/PID/task/*/status) per second, and
# its RSS. Phase 3: the shipped stack (needs redis-server), whose scrape also
# fetches the proxy's page over TCP and appends it: SCRAPES/4 scrapes. Target (issue 13): a scrape ≤ 5 ms with 100 programs; RSS ≤ 8 MB and
# ≤ 0.1 wake-ups/s idle. Loopback and a temp dir only; cleans up on exit.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_setup metrics-scrape python3 redis-server
BIN=$(realpath "$BIN")
exec python3 bench/metrics_scrape.py "$BIN" "$WORK"
