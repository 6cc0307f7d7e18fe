#!/usr/bin/env bash
# selfheal as a drop-in init vs tini and dumb-init (issue 12), side by side:
#   1. wall time of `selfheal -- true`, `tini -s -- true`, `dumb-init true` (and
#      plain `true` as the floor): RUNS rounds, each round runs the four once in
#      a shuffled order (interleaved, so machine load hits all alike); median,
#      p10 and p90 per command, in ms.
#   2. peak RSS (VmHWM) of the init process itself while it runs `sleep 1`,
#      read from /proc (the child's memory is not counted).
# Uses the release binary (built by bench_require). Targets: selfheal's
# median within 1 ms of tini's; RSS ≤ 4 MB. Figures: docs/benchmarks.md.
#
# Usage: bench/init_vs_tini.sh [RUNS]      (default 200)
#        SELFHEAL_BIN=path/to/selfheal bench/init_vs_tini.sh   (that binary, no build)
# Needs: tini, dumb-init (ci/install-deps.sh bench), python3.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
if [[ -n ${SELFHEAL_BIN:-} ]]; then
    # A given binary (e.g. the static one of the image: docker cp), no build.
    cd "$(dirname "$0")/.." && BIN=$SELFHEAL_BIN
    for tool in python3 tini dumb-init; do
        command -v "$tool" >/dev/null || { echo "missing: $tool (ci/install-deps.sh bench)" >&2; exit 1; }
    done
else
    bench_require python3 tini dumb-init
fi

runs=${1:-200}
echo "selfheal $($BIN --version | awk '{print $2}') ($BIN), $(tini --version), dumb-init $(dumb-init --version 2>&1 | awk '{print $2}')"
echo "$(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), kernel $(uname -r)"

python3 - "$runs" "$BIN" <<'PY'
import os, random, statistics, sys, time

runs, selfheal = int(sys.argv[1]), os.path.abspath(sys.argv[2])
tini, dumb_init, true = "/usr/bin/tini", "/usr/bin/dumb-init", "/bin/true"
commands = {
    "selfheal -- true": [selfheal, "--", true],
    "tini -s -- true": [tini, "-s", "--", true],
    "dumb-init true": [dumb_init, true],
    "true (floor)": [true],
}
devnull = os.open(os.devnull, os.O_RDWR)
actions = [(os.POSIX_SPAWN_DUP2, devnull, fd) for fd in (0, 1, 2)]

def once(argv):
    """Wall time of one run, spawn to reaped exit, in ms (exit code checked)."""
    start = time.perf_counter_ns()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
    _, status = os.waitpid(pid, 0)
    took = (time.perf_counter_ns() - start) / 1e6
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{argv}: exit status {status}")
    return took

names = list(commands)
for _ in range(10):  # warm-up: page cache, dynamic loader caches
    for name in names:
        once(commands[name])
times = {name: [] for name in names}
for _ in range(runs):
    random.shuffle(names)
    for name in names:
        times[name].append(once(commands[name]))

def q(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(p * len(s)))]

print(f"\nwall time of {runs} runs each, interleaved (ms):")
print(f"{'command':<20} {'median':>8} {'p10':>8} {'p90':>8}")
for name in commands:
    v = times[name]
    print(f"{name:<20} {statistics.median(v):8.3f} {q(v, 0.1):8.3f} {q(v, 0.9):8.3f}")
gap = statistics.median(times["selfheal -- true"]) - statistics.median(times["tini -s -- true"])
print(f"selfheal - tini (median): {gap:+.3f} ms  (target: ≤ 1 ms)")

def hwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0

def has_child(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return bool(f.read().split())
    except OSError:
        return False

print("\npeak RSS (VmHWM) of the init process while it runs `sleep 1`:")
for name, argv in [
    ("selfheal -- sleep 1", [selfheal, "--", "/bin/sleep", "1"]),
    ("tini -s -- sleep 1", [tini, "-s", "--", "/bin/sleep", "1"]),
    ("dumb-init sleep 1", [dumb_init, "/bin/sleep", "1"]),
]:
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
    deadline = time.monotonic() + 5
    while not has_child(pid) and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.5)  # settled: the child has run for half its second
    peak = hwm_kb(pid)
    os.waitpid(pid, 0)
    print(f"{name:<22} {peak / 1024:6.2f} MiB  ({peak} kB)")
PY
