#!/usr/bin/env bash
# `selfheal reload` with the config unchanged: a supervisor with 100 programs
# (`sleep infinity`, a third with an exec or tcp probe), reloaded RUNS times, timed
# as the CLI's round trip and as `POST /reload` on the admin socket; p50/max,
# target ≤ 50 ms; and no pid may change. One command:
#
#     bench/reload_unchanged.sh                                 # builds release
#     BIN=target/release/selfheal bench/reload_unchanged.sh     # a built binary
#
# Env: PROGRAMS (100), RUNS (50).
set -euo pipefail
# shellcheck source=bench/ops_lib.sh
source "$(dirname "$0")/ops_lib.sh"
ops_setup python3 sleep true
ops_run bench/reload_unchanged.py
