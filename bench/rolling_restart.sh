#!/usr/bin/env bash
# Rolling restart under load: the shipped stack with the app at `replicas = 4`,
# 200 req/s of keyed GETs through the proxy, `selfheal restart app` timed against
# 4 × (start-to-ready + drain) + 50 ms (both from the supervisor's events), and
# the failed requests (target 0). One command:
#
#     bench/rolling_restart.sh                                 # builds release
#     BIN=target/release/selfheal bench/rolling_restart.sh     # a built binary
#
# Env: REPLICAS (4), RATE (200), RUNS (3), EVERY (3 s between runs).
set -euo pipefail
# shellcheck source=bench/ops_lib.sh
source "$(dirname "$0")/ops_lib.sh"
ops_setup python3 redis-server redis-cli
ops_run bench/rolling_restart.py
