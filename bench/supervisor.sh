#!/usr/bin/env bash
# Supervisor benchmarks: respawn latency, RSS, idle wakeups, orphan reaping
# latency (subreaper and PID 1), SIGTERM-to-exit. One command:
#
#     bench/supervisor.sh            # needs root (unshare --pid), gcc, python3
#
# Builds the release binary once, compiles tiny C fixtures into a temp dir,
# runs bench/supervisor_bench.py, prints the summary and writes it to
# target/bench-supervisor.md. Every process started is killed on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
for tool in gcc "$PY" unshare chrt; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "bench: run as root (PID 1 case uses unshare --pid)" >&2; exit 1; }

echo "bench: building release binary (once)" >&2
# The binary as shipped in the image: static-pie (ci/build-static.sh).
BIN="$ROOT/$("$ROOT/ci/build-static.sh" --quiet)"

WORK=$(mktemp -d /tmp/selfheal-bench.XXXXXX)
DRIVER=
cleanup() {
    if [ -n "$DRIVER" ]; then kill -TERM "$DRIVER" 2>/dev/null || true; wait "$DRIVER" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# crash: stamps its start as the first thing in main, prints a line, stamps
# right before exiting 1.
cat > "$WORK/crash.c" <<'C'
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static void stamp(int fd, char kind) {
    struct timespec ts; char line[64];
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int n = snprintf(line, sizeof line, "%c %lld\n", kind, (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
    write(fd, line, n);
}
int main(int argc, char **argv) {
    int fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT, 0644);
    stamp(fd, 'S');
    const char msg[] = "crashing\n";
    write(1, msg, sizeof msg - 1);
    stamp(fd, 'E');
    _exit(1);
}
C
# orphans: every PERIOD ms a middle process forks a grandchild and exits; the
# grandchild (now an orphan of the supervisor) writes its pid, waits 20 ms,
# writes "pid exit_ns" and exits; nobody but the supervisor can reap it.
cat > "$WORK/orphans.c" <<'C'
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static long long now(void) {
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
int main(int argc, char **argv) {
    const char *pids = argv[1], *exits = argv[2];
    int count = atoi(argv[3]), period_ms = atoi(argv[4]);
    for (int i = 0; i < count; i++) {
        usleep(period_ms * 1000);
        pid_t middle = fork();
        if (middle == 0) {
            pid_t parent = getpid();
            if (fork() == 0) {
                while (getppid() == parent) usleep(200);   /* re-parented */
                char self[32] = {0}, line[96];
                readlink("/proc/self", self, sizeof self - 1);   /* host pid */
                int fd = open(pids, O_WRONLY | O_APPEND | O_CREAT, 0644);
                int n = snprintf(line, sizeof line, "%s\n", self);
                write(fd, line, n); close(fd);
                usleep(20000);
                fd = open(exits, O_WRONLY | O_APPEND | O_CREAT, 0644);
                n = snprintf(line, sizeof line, "%s %lld\n", self, now());
                write(fd, line, n); close(fd);
                _exit(0);
            }
            _exit(0);
        }
        waitpid(middle, NULL, 0);
    }
    pause();
    return 0;
}
C
# baseline: the ideal reaper to compare with, a subreaper blocked in
# waitpid(-1); what it measures is the kernel and the machine, not selfheal.
cat > "$WORK/baseline.c" <<'C'
#include <errno.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    if (fork() == 0) { execv(argv[1], argv + 1); _exit(127); }
    for (;;)
        if (waitpid(-1, NULL, 0) < 0 && errno == ECHILD) return 0;
}
C
gcc -O2 -o "$WORK/baseline" "$WORK/baseline.c"
gcc -O2 -o "$WORK/crash" "$WORK/crash.c"
gcc -O2 -o "$WORK/orphans" "$WORK/orphans.c"

# Two passes: default scheduling (what a container gets), then SCHED_FIFO for
# the supervisor and its programs, which keeps the other users of a shared
# machine out of the tails and shows the supervisor's own latency.
: > "$WORK/summary.md"
for wrap in "" "chrt -f 10"; do
    echo "bench: pass with scheduling '${wrap:-default}'" >&2
    rm -rf "${WORK:?}/run" && mkdir "$WORK/run" && cp "$WORK/crash" "$WORK/orphans" "$WORK/baseline" "$WORK/run/"
    BENCH_WRAP="$wrap" "$PY" "$ROOT/bench/supervisor_bench.py" "$BIN" "$WORK/run" >> "$WORK/summary.md" &
    DRIVER=$!
    wait "$DRIVER"
    DRIVER=
    echo >> "$WORK/summary.md"
done
mkdir -p "$ROOT/target"
cp "$WORK/summary.md" "$ROOT/target/bench-supervisor.md"
cat "$WORK/summary.md"
echo "bench: summary written to target/bench-supervisor.md" >&2
