#!/usr/bin/env bash
# 200 req/s through the proxy while the app is crashed every 2–5 s (/kill, then SIGKILL).
# Usage: bench/crash_under_load.sh   (RATE=200 DURATION=30 CLIENTS=4)
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in redis-server redis-cli python3; do
  command -v "$tool" >/dev/null || { echo "missing: $tool (make deps)" >&2; exit 1; }
done
cargo build --release --quiet
exec python3 bench/crash_under_load.py
