#!/usr/bin/env python3
"""Where the start-up and exit time of `INIT -- /bin/true` goes, phase by phase,
from kernel tracepoints (no ptrace, so no strace distortion). Used for the
"Drop-in init" section of docs/benchmarks.md.

Usage (root, perf installed):
    bench/init_phases.py [RUNS] INIT_BINARY [INIT_BINARY…]
e.g. bench/init_phases.py 100 target/release/selfheal /usr/bin/tini

Each binary runs `BINARY -- /bin/true` RUNS times (tini with -s) under
`perf record` of exec/fork/exit and a few marker syscalls; the medians of:
  startup      exec of the init → its first rt_sigprocmask (for selfheal: the
               hygiene step, after ld.so/libc/std init and argument parsing)
  to runtime   → epoll_create1 (selfheal: hygiene, low fds, launch, runtime)
  to handlers  → PR_SET_CHILD_SUBREAPER (selfheal: signal handlers installed,
               writer thread if any)
  to fork      → fork of the main program (selfheal: stack, spawn preparation)
  fork → exec  the child's set-up before it execs /bin/true
  exit → exit  /bin/true's exit → the init's exit_group (reap, stop, teardown)
  overhead     everything but /bin/true's own run
"""
import os
import re
import statistics
import subprocess
import sys
import tempfile

EVENTS = [
    "sched:sched_process_exec", "sched:sched_process_fork", "sched:sched_process_exit",
    "syscalls:sys_enter_epoll_create1", "syscalls:sys_enter_exit_group",
    "syscalls:sys_enter_rt_sigprocmask", "syscalls:sys_enter_prctl",
]
LINE = re.compile(r"\s*(.+?)\s+(\d+)/(\d+)\s+([\d.]+):\s+(\S+):\s*(.*)")


def record(runs, binaries, data):
    loops = []
    for b in binaries:
        args = "-s -- /bin/true" if b.endswith("tini") else "-- /bin/true"
        loops.append(f"for i in $(seq {runs}); do {b} {args}; done")
    cmd = ["perf", "record", "-q", "-o", data]
    for e in EVENTS:
        cmd += ["-e", e]
    subprocess.run(cmd + ["--", "sh", "-c", "; ".join(loops)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = subprocess.run(["perf", "script", "-i", data, "-F", "comm,pid,tid,time,event,trace"],
                         check=True, capture_output=True, text=True).stdout
    events = []
    for line in out.splitlines():
        m = LINE.match(line)
        if m:
            comm, pid, tid, t, name, trace = m.groups()
            events.append((int(pid), int(tid), float(t) * 1000, name, trace))
    return events


def phases(events, binary):
    found = {}

    def add(key, value):
        found.setdefault(key, []).append(value)

    for i, (pid, _, t_exec, name, trace) in enumerate(events):
        if name != "sched:sched_process_exec" or f"filename={binary} " not in trace + " ":
            continue
        window = events[i + 1:i + 120]
        own = [e for e in window if e[0] == pid and e[1] == pid]

        def first(kind, after=t_exec):
            return next((e[2] for e in own if e[3].endswith(kind) and e[2] >= after), None)

        child = next((e for e in window if e[3] == "sched:sched_process_exec"
                      and "/bin/true" in e[4]), None)
        if child is None:
            continue
        fork = next((e for e in own if e[3] == "sched:sched_process_fork"
                     and f"child_pid={child[0]}" in e[4]), None)
        child_exit = next((e for e in window if e[0] == child[0]
                           and e[3] == "sched:sched_process_exit"), None)
        exit_group = first("exit_group")
        mask = first("rt_sigprocmask")
        if None in (fork, child_exit, exit_group, mask):
            continue
        add("startup", mask - t_exec)
        epoll = first("epoll_create1")
        if epoll is not None:
            add("to runtime", epoll - mask)
            prctl = [e[2] for e in own if e[3].endswith("prctl") and epoll <= e[2] <= fork[2]]
            if prctl:
                add("to handlers", prctl[-1] - epoll)
                add("to fork", fork[2] - prctl[-1])
        add("fork → exec", child[2] - fork[2])
        add("exit → exit", exit_group - child_exit[2])
        add("overhead", exit_group - t_exec - (child_exit[2] - child[2]))
    return found


def main():
    args = sys.argv[1:]
    runs = int(args.pop(0)) if args and args[0].isdigit() else 100
    binaries = [os.path.abspath(b) for b in args]
    with tempfile.TemporaryDirectory() as tmp:
        events = record(runs, binaries, os.path.join(tmp, "perf.data"))
    order = ["startup", "to runtime", "to handlers", "to fork", "fork → exec",
             "exit → exit", "overhead"]
    for b in binaries:
        found = phases(events, b)
        n = len(found.get("overhead", []))
        print(f"{b} ({n} runs), medians in ms:")
        for key in order:
            if key in found:
                print(f"  {key:<12} {statistics.median(found[key]):6.3f}")


if __name__ == "__main__":
    main()
