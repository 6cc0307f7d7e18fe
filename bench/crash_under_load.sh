#!/usr/bin/env bash
# 200 req/s through the proxy while the app is crashed every 2–5 s (/kill, then SIGKILL).
# Usage: bench/crash_under_load.sh   (RATE=200 DURATION=30 CLIENTS=4)
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_require redis-server redis-cli python3
exec python3 bench/crash_under_load.py
