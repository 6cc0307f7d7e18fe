#!/usr/bin/env bash
# /kill → serving again, and Redis SIGKILL under 200 req/s, on the shipped stack.
# Usage: bench/app_recovery.sh   (KILLS=40 REDIS_KILLS=5 RATE=200)
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in redis-server redis-cli python3; do
  command -v "$tool" >/dev/null || { echo "missing: $tool (make deps)" >&2; exit 1; }
done
cargo build --release --quiet
exec python3 bench/app_recovery.py
