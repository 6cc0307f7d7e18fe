#!/usr/bin/env bash
# Zero-downtime restart under load: the shipped stack on free ports, 200 req/s of
# keyed GETs through the proxy; a baseline window, then the same window with
# `selfheal restart app` every 3 s. Failed requests (target 0) and the added p99
# (target ≤ 5 ms). One command:
#
#     bench/zero_downtime_restart.sh                                 # builds release
#     BIN=target/release/selfheal bench/zero_downtime_restart.sh     # a built binary
#
# Env: RATE (200), WINDOW (30 s), ROUNDS (1 pair of windows), EVERY (3 s).
set -euo pipefail
# shellcheck source=bench/ops_lib.sh
source "$(dirname "$0")/ops_lib.sh"
ops_setup python3 redis-server redis-cli
ops_run bench/zero_downtime_restart.py
