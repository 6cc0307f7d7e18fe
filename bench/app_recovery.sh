#!/usr/bin/env bash
# /kill → serving again, and Redis SIGKILL under 200 req/s, on the shipped stack.
# Usage: bench/app_recovery.sh   (KILLS=40 REDIS_KILLS=5 RATE=200)
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_require redis-server redis-cli python3
exec python3 bench/app_recovery.py
