#!/usr/bin/env bash
# The supervisor under load held: 1000 programs (`sleep infinity` each, no probe)
# in one config. Measures supervisor start → all started, the supervisor's own
# CPU time for it, RSS, respawn latency with 1000 running (vs 1 program), and
# SIGTERM → all stopped. One command:
#
#     bench/many_programs.sh               # needs gcc, python3
#     BIN=target/release/selfheal bench/many_programs.sh   # an already built binary
#
# Env: PROGRAMS (1000), RUNS (5), KILLS (200), BENCH_WRAP (e.g. "chrt -f 10":
# SCHED_FIFO for the supervisor and its programs, which keeps the other users of
# a shared machine out of the figures; needs root). Builds the release binary as
# shipped (static-pie, ci/build-static.sh) unless BIN is given, runs
# bench/many_programs.py, prints the summary and writes it to
# target/bench-many-programs.md. Every process started is killed on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
for tool in gcc "$PY"; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done

if [ -z "${BIN:-}" ]; then
    echo "bench: building release binary (once)" >&2
    BIN="$ROOT/$("$ROOT/ci/build-static.sh" --quiet)"
fi
BIN=$(realpath "$BIN")

WORK=$(mktemp -d /tmp/selfheal-bench.XXXXXX)
DRIVER=
cleanup() {
    if [ -n "$DRIVER" ]; then kill -TERM "$DRIVER" 2>/dev/null || true; wait "$DRIVER" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# stamp: appends "pid start_ns" to its file as the first thing in main, then
# waits for a signal like `sleep infinity`.
cat > "$WORK/stamp.c" <<'C'
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    struct timespec ts; char line[64];
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT, 0644);
    int n = snprintf(line, sizeof line, "%d %lld\n", getpid(),
                     (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
    write(fd, line, n);
    close(fd);
    for (;;) pause();
}
C
gcc -O2 -o "$WORK/stamp" "$WORK/stamp.c"

"$PY" "$ROOT/bench/many_programs.py" "$BIN" "$WORK" > "$WORK/summary.md" &
DRIVER=$!
wait "$DRIVER"
DRIVER=
mkdir -p "$ROOT/target"
cp "$WORK/summary.md" "$ROOT/target/bench-many-programs.md"
cat "$WORK/summary.md"
echo "bench: summary written to target/bench-many-programs.md" >&2
