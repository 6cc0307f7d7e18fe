#!/usr/bin/env bash
# The supervisor under load held: 1000 programs (`sleep infinity` each, no probe)
# in one config. Measures supervisor start → all started, the supervisor's own
# CPU time for it, RSS, respawn latency with 1000 running (vs 1 program in a
# second supervisor at the same time, kills interleaved), and
# SIGTERM → all stopped; start and stop twice, with the caller's environment and
# with its locale variables removed (the image's: each `sleep` then skips
# loading a locale, see many_programs.py). One command:
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
# spawn_floor: control. A C parent holding 3 MB of heap (the supervisor's while it
# starts the 1000) spawns N `sleep infinity` (own group, default signals, stdout
# to a pipe it keeps) with fork + exec awaited through a CLOEXEC pipe (what std's
# Command does) or with posix_spawn (glibc: clone(CLONE_VM|CLONE_VFORK)); prints
# wall and parent CPU. The floor of this machine for each way of spawning.
cat > "$WORK/spawn_floor.c" <<'C'
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
extern char **environ;
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static double cpu(void) {
    struct rusage r; getrusage(RUSAGE_SELF, &r);
    return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6;
}
int main(int argc, char **argv) {
    int n = atoi(argv[1]), vfork_like = atoi(argv[2]);
    char *heap = malloc(3 << 20); memset(heap, 1, 3 << 20);
    pid_t *pids = calloc(n, sizeof(pid_t));
    char *args[] = {"/usr/bin/sleep", "infinity", NULL};
    double t0 = now(), c0 = cpu();
    for (int i = 0; i < n; i++) {
        int out[2]; pipe2(out, O_CLOEXEC);
        if (vfork_like) {
            posix_spawn_file_actions_t fa; posix_spawn_file_actions_init(&fa);
            posix_spawn_file_actions_adddup2(&fa, out[1], 1);
            posix_spawnattr_t at; posix_spawnattr_init(&at);
            sigset_t all, none; sigfillset(&all); sigemptyset(&none);
            posix_spawnattr_setsigdefault(&at, &all); posix_spawnattr_setsigmask(&at, &none);
            posix_spawnattr_setpgroup(&at, 0);
            posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
            posix_spawn(&pids[i], args[0], &fa, &at, args, environ);
            posix_spawn_file_actions_destroy(&fa); posix_spawnattr_destroy(&at);
        } else {
            int err[2]; pipe2(err, O_CLOEXEC);
            pid_t p = fork();
            if (p == 0) {
                setpgid(0, 0); dup2(out[1], 1);
                for (int s = 1; s < 65; s++) if (s != SIGKILL && s != SIGSTOP) signal(s, SIG_DFL);
                execve(args[0], args, environ);
                int e = errno; write(err[1], &e, 4); _exit(127);
            }
            close(err[1]); int e; read(err[0], &e, 4); close(err[0]); pids[i] = p;
        }
        close(out[1]);
    }
    printf("%.1f %.1f\n", (now() - t0) * 1e3, (cpu() - c0) * 1e3);
    for (int i = 0; i < n; i++) kill(pids[i], SIGKILL);
    for (int i = 0; i < n; i++) waitpid(pids[i], NULL, 0);
    return 0;
}
C
gcc -O2 -o "$WORK/spawn_floor" "$WORK/spawn_floor.c"
# machine_floor: more controls, each a floor no supervisor can beat here.
#   parallel N T  N `sleep infinity` spawned by T threads at once (posix_spawn,
#                 own group, stdout to a pipe): wall ms. Shows whether spawning
#                 from several threads would beat the serial loop.
#   stop N        N `sleep infinity` (posix_spawn, own groups), each one's
#                 /proc/PID/comm read (as the observer reads the supervisor's),
#                 then SIGTERM to each group (last first) and wait for all: ms
#                 from the first kill until the last is reaped, parent CPU ms.
#   exec K        K `sleep 0` one after the other, each waited for: the CPU
#                 (user + system, from RUSAGE_CHILDREN) one process costs from
#                 clone to exit, in µs; N of them cost N × that of the cores.
cat > "$WORK/machine_floor.c" <<'C'
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
extern char **environ;
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e3 + t.tv_nsec / 1e6; }
static double cpu(int who) {
    struct rusage r; getrusage(who, &r);
    return r.ru_utime.tv_sec * 1e3 + r.ru_utime.tv_usec / 1e3 + r.ru_stime.tv_sec * 1e3 + r.ru_stime.tv_usec / 1e3;
}
static pid_t spawn_one(const char *arg) {
    char *args[] = {"/usr/bin/sleep", (char *)arg, NULL};
    int out[2]; pipe2(out, O_CLOEXEC);
    posix_spawn_file_actions_t fa; posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawnattr_t at; posix_spawnattr_init(&at);
    posix_spawnattr_setpgroup(&at, 0); posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
    pid_t pid; posix_spawn(&pid, args[0], &fa, &at, args, environ);
    posix_spawn_file_actions_destroy(&fa); posix_spawnattr_destroy(&at);
    close(out[1]);
    return pid;
}
static pid_t *pids; static int per;
static void *spawner(void *arg) {
    long k = (long)arg;
    for (int i = 0; i < per; i++) pids[k * per + i] = spawn_one("infinity");
    return NULL;
}
int main(int argc, char **argv) {
    int n = atoi(argv[2]);
    if (!strcmp(argv[1], "parallel")) {
        int threads = atoi(argv[3]); per = n / threads; pids = calloc(n, sizeof(pid_t));
        pthread_t t[16]; double t0 = now();
        for (long i = 0; i < threads; i++) pthread_create(&t[i], NULL, spawner, (void *)i);
        for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
        printf("%.1f\n", now() - t0);
        for (int i = 0; i < per * threads; i++) kill(pids[i], SIGKILL);
        while (wait(NULL) > 0) {}
    } else if (!strcmp(argv[1], "stop")) {
        pids = calloc(n, sizeof(pid_t));
        for (int i = 0; i < n; i++) pids[i] = spawn_one("infinity");
        usleep(1000000);
        /* As the bench's observer does for the supervisor's children (it reads
           each one's comm): the /proc entries then exist, and the kernel must
           drop them when each is reaped. Equal terms. */
        for (int i = 0; i < n; i++) {
            char path[64], comm[32]; snprintf(path, sizeof path, "/proc/%d/comm", pids[i]);
            int fd = open(path, O_RDONLY); if (fd >= 0) { read(fd, comm, sizeof comm); close(fd); }
        }
        double t0 = now(), c0 = cpu(RUSAGE_SELF);
        for (int i = n - 1; i >= 0; i--) kill(-pids[i], SIGTERM);
        while (wait(NULL) > 0) {}
        printf("%.1f %.1f\n", now() - t0, cpu(RUSAGE_SELF) - c0);
    } else {
        for (int i = 0; i < n; i++) waitpid(spawn_one("0"), NULL, 0);
        printf("%.0f\n", cpu(RUSAGE_CHILDREN) * 1e3 / n);
    }
    return 0;
}
C
gcc -O2 -pthread -o "$WORK/machine_floor" "$WORK/machine_floor.c"

"$PY" "$ROOT/bench/many_programs.py" "$BIN" "$WORK" > "$WORK/summary.md" &
DRIVER=$!
wait "$DRIVER"
DRIVER=
mkdir -p "$ROOT/target"
cp "$WORK/summary.md" "$ROOT/target/bench-many-programs.md"
cat "$WORK/summary.md"
echo "bench: summary written to target/bench-many-programs.md" >&2
