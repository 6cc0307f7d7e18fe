#!/usr/bin/env bash
# Throughput and tail latency of `selfheal app` on GET / (one Redis Lua script per
# request: wrk sends no X-Request-Id, so every request is a fresh, keyed increment).
#
# Usage: bench/app_throughput.sh            (one run per runtime flavour, 10 s each)
#   DURATION=10s CONNECTIONS=32 WRK_THREADS=2 APP_THREADS="1 2" bench/app_throughput.sh
#
# Starts its own redis-server (AOF on, appendfsync everysec, as the shipped stack)
# on a free loopback port in a temp dir, and the app on another; cleans up on exit.
set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
WRK_THREADS=${WRK_THREADS:-2}
APP_THREADS=${APP_THREADS:-"1 2"}

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_setup app wrk redis-server redis-cli python3

# Waits (at most 10 s) until file $1 contains $2.
wait_log() {
  for _ in $(seq 1 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "timed out waiting for '$2' in $1:" >&2; cat "$1" >&2; exit 1
}

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly yes \
  --appendfsync everysec --dir "$WORK" >"$WORK/redis.log" 2>&1 &
bench_track $!
wait_log "$WORK/redis.log" "Ready to accept connections"

echo "selfheal app GET /  wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION  ($(nproc) cores, loopback)"
printf '%-22s %12s %10s %10s %14s\n' "runtime" "req/s" "p50" "p99" "counted/sent"
for threads in $APP_THREADS; do
  APP_PORT=$(free_port)
  "$BIN" app --listen "127.0.0.1:$APP_PORT" --redis "redis://127.0.0.1:$REDIS_PORT" \
    --threads "$threads" >"$WORK/app-$threads.log" 2>&1 &
  APP_PID=$!
  bench_track "$APP_PID"
  wait_log "$WORK/app-$threads.log" "serving on"
  # Warm the connection, and reset the counter so the check below is exact.
  curl -fsS -o /dev/null "http://127.0.0.1:$APP_PORT/"
  redis-cli -p "$REDIS_PORT" DEL selfheal:visits >/dev/null

  wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
    "http://127.0.0.1:$APP_PORT/" >"$WORK/wrk-$threads.txt"
  rps=$(awk '/^Requests\/sec/ {print $2}' "$WORK/wrk-$threads.txt")
  p50=$(awk '$1 == "50%" {print $2}' "$WORK/wrk-$threads.txt")
  p99=$(awk '$1 == "99%" {print $2}' "$WORK/wrk-$threads.txt")
  sent=$(awk '/requests in/ {print $1}' "$WORK/wrk-$threads.txt")
  errors=$(grep -E 'Non-2xx|Socket errors' "$WORK/wrk-$threads.txt" || true)
  counted=$(redis-cli -p "$REDIS_PORT" GET selfheal:visits)
  if [ "$threads" = 1 ]; then label="current-thread"; else label="multi-thread x$threads"; fi
  printf '%-22s %12s %10s %10s %14s\n' "$label" "$rps" "$p50" "$p99" "$counted/$sent"
  [ -z "$errors" ] || echo "  wrk reported: $errors"
  rss=$(awk '/VmHWM/ {print $2" "$3}' "/proc/$APP_PID/status")
  echo "  app peak RSS: $rss"

  kill "$APP_PID"; wait "$APP_PID" 2>/dev/null || true
done
