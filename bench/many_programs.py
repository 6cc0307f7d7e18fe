"""Driver of bench/many_programs.sh: the supervisor with N programs (default
1000, `sleep infinity` each, no probe). Usage: many_programs.py BIN WORK.
Prints a Markdown summary on stdout; progress on stderr. Every supervisor it
starts runs in its own session and is killed (group) on exit.

Observer: the kernel's list of the supervisor's children
(/proc/PID/task/*/children), read every ~1 ms. It costs the supervisor nothing
(no admin API request, no signal), unlike `selfheal status --json`, which would
make it serialize N programs on every poll. A child counts once it has exec'd
(its /proc/PID/comm is `sleep` or `stamp`), so a fork that has not yet reached
exec is not counted as started.

Environments: the start and the stop are measured twice, once with the
caller's environment as it is and once with the locale variables (LANG,
LANGUAGE, LC_*) removed, which is the environment of the image (`docker run
selfheal` sets no locale, so its programs run in the POSIX locale). The
supervisor passes its environment on, and each `sleep` spends about 0.2 ms of
CPU loading a locale such as C.UTF-8 before its main runs: 200 ms of the two
cores for 1000 programs, which is not the supervisor's work. The C controls
run in both environments too."""

import json
import os
import platform
import signal
import subprocess
import sys
import time

BIN, WORK = sys.argv[1], sys.argv[2]
N = int(os.environ.get("PROGRAMS", "1000"))
RUNS = int(os.environ.get("RUNS", "5"))
KILLS = int(os.environ.get("KILLS", "200"))
# Optional scheduling prefix for the supervisor (inherited by its programs), e.g.
# "chrt -f 10" to keep the other users of a shared machine out of the figures.
WRAP = os.environ.get("BENCH_WRAP", "").split()
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROCS = []


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def cleanup():
    for p in PROCS:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()


signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def config(d, n, stamp):
    """N programs; the first is the stamp fixture (starts, stamps, pauses)."""
    lines = [f'[supervisor]\nadmin_socket = "{d}/admin.sock"\nshutdown_timeout = "10s"\n']
    lines.append(
        f'[programs.p0]\ncommand = ["{stamp}", "{d}/stamps"]\nrestart = "always"\n'
        'backoff = { initial = "0s", max = "0s" }\n'
        'restart_limit = { max = 1000000, window = "1s" }\n'
    )
    for i in range(1, n):
        lines.append(f'[programs.p{i}]\ncommand = ["sleep", "infinity"]\n')
    path = os.path.join(d, "config.toml")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


def wait_exec(pid, comm):
    deadline = time.monotonic() + 10
    while read(f"/proc/{pid}/comm").strip() != comm:
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: {pid} did not become {comm}")
        time.sleep(0.0005)


def children(pid):
    kids = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        kids += read(f"/proc/{pid}/task/{tid}/children").split()
    return kids


def execd(kids):
    """How many of `kids` run the programs' binaries (a fork not yet exec'd
    still has the supervisor's name)."""
    return sum(1 for k in kids if read(f"/proc/{k}/comm").strip() in ("sleep", "stamp"))


def cpu_ns(pid):
    """On-CPU time of every thread (schedstat, ns) and utime+stime (ticks → ns)."""
    sched = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        fields = read(f"/proc/{pid}/task/{tid}/schedstat").split()
        if fields:
            sched += int(fields[0])
    stat = read(f"/proc/{pid}/stat")
    rest = stat[stat.rindex(")") + 2:].split()
    ticks = int(rest[11]) + int(rest[12])  # fields 14, 15: utime, stime
    return sched, ticks * 1_000_000_000 // CLK_TCK


def status_kb(pid, field):
    for line in read(f"/proc/{pid}/status").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(q / 100 * len(xs) + 0.5)) - 1))]


def without_locale():
    """The caller's environment minus the locale variables (the image's locale)."""
    return {k: v for k, v in os.environ.items()
            if k not in ("LANG", "LANGUAGE") and not k.startswith("LC_")}


def locale_of(env):
    env = os.environ if env is None else env
    return ", ".join(f"{k}={v}" for k, v in sorted(env.items())
                     if k in ("LANG", "LANGUAGE") or k.startswith("LC_")) or "none (POSIX)"


def start_run(i, n, stamp, env=None):
    d = os.path.join(WORK, f"run{i}")
    os.makedirs(d)
    cfg = config(d, n, stamp)
    out = open(os.path.join(d, "log"), "w")
    t0_wall_ms = time.time_ns() // 1_000_000
    t0 = time.monotonic_ns()
    p = subprocess.Popen(WRAP + [BIN, "--config", cfg], stdout=out, stderr=subprocess.STDOUT,
                         start_new_session=True, env=env)
    PROCS.append(p)
    if WRAP:
        # The wrapper execs the supervisor: same pid, once the exec is done.
        wait_exec(p.pid, os.path.basename(BIN)[:15])
    # Phase 1: every child forked (cheap: one small file per poll).
    deadline = time.monotonic() + 60
    while True:
        kids = children(p.pid) if p.poll() is None else None
        if kids is None:
            raise SystemExit(f"bench: supervisor exited {p.returncode}: {read(d + '/log')[-2000:]}")
        if len(kids) >= n:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: only {len(kids)} of {n} children after 60 s")
        time.sleep(0.001)
    forked = time.monotonic_ns() - t0
    # Phase 2: every child exec'd (reads N comm files; done once per poll).
    while execd(kids) < n:
        if time.monotonic() > deadline:
            raise SystemExit("bench: children did not all exec within 60 s")
        time.sleep(0.002)
        kids = children(p.pid)
    started = time.monotonic_ns() - t0
    sched, ticks = cpu_ns(p.pid)
    spawned = last_spawn_ms(d) - t0_wall_ms
    return p, d, forked, started, sched, ticks, spawned


def last_spawn_ms(d):
    """When the supervisor's last spawn returned (the child had exec'd), by
    its own clock: the latest `started_at_ms` in `status --json`, asked once
    the start is over. The same moment the C loop's wall ends at."""
    done = subprocess.run([BIN, "status", "--json", "--socket", f"{d}/admin.sock"],
                          capture_output=True, text=True, timeout=30)
    programs = json.loads(done.stdout)["programs"]
    return max(p["started_at_ms"] for p in programs if p.get("started_at_ms"))


discarded = [0]


def first_stamp(d):
    """Waits until the stamp program of run dir `d` has stamped once."""
    stamps = f"{d}/stamps"
    deadline = time.monotonic() + 10
    while len(read(stamps).split()) < 2:  # exec'd, about to stamp
        if time.monotonic() > deadline:
            raise SystemExit("bench: the stamp program never stamped")
        time.sleep(0.001)


def kill_once(d):
    """SIGKILL the stamp program of run dir `d`; latency = kill → its next
    start stamp, or None when the bench itself was descheduled around the kill."""
    stamps = f"{d}/stamps"
    lines = read(stamps).split()
    pid = int(lines[-2])
    count = len(lines)
    time.sleep(0.02)  # let the supervisor settle between kills
    t0 = time.monotonic_ns()
    os.kill(pid, signal.SIGKILL)
    gap = time.monotonic_ns() - t0
    deadline = time.monotonic() + 10
    while len(read(stamps).split()) <= count:
        if time.monotonic() > deadline:
            raise SystemExit("bench: no respawn within 10 s")
        time.sleep(0.0002)
    new = read(stamps).split()
    # A sample counts only when the bench itself was not descheduled
    # between its clock read and the kill (a busy shared machine).
    if gap < 500_000:
        return int(new[count + 1]) - t0
    discarded[0] += 1
    return None


def respawn_interleaved(dirs, kills):
    """Kills the stamp program of each supervisor in turn, `kills` rounds: the
    1000-program one and the 1-program control run at the same time, so a
    hiccup of the machine (its tail is several ms here) falls on both series
    alike instead of on whichever ran at that moment. One list per dir."""
    for d in dirs:
        first_stamp(d)
    lat = [[] for _ in dirs]
    for _ in range(kills):
        for j, d in enumerate(dirs):
            sample = kill_once(d)
            if sample is not None:
                lat[j].append(sample)
    return lat


def c_median(args, env=None):
    """Median of 3 runs of a C control (each prints numbers on one line)."""
    runs = []
    for _ in range(3):
        done = subprocess.run(WRAP + args, capture_output=True, text=True, check=True, env=env)
        runs.append(tuple(float(x) for x in done.stdout.split()))
    return sorted(runs)[1]


def machine_floors():
    """The C controls of machine_floor.c, medians of 3 runs each."""
    exe = os.path.join(WORK, "machine_floor")
    return {
        "parallel": c_median([exe, "parallel", str(N), "2"]),
        "stop": c_median([exe, "stop", str(N)]),
        "exec": c_median([exe, "exec", "200"]),
        "exec_posix": c_median([exe, "exec", "200"], without_locale()),
    }


def stop(p):
    t0 = time.monotonic_ns()
    p.send_signal(signal.SIGTERM)
    code = p.wait(timeout=30)
    took = time.monotonic_ns() - t0
    if code != 0:
        raise SystemExit(f"bench: supervisor exited {code} after SIGTERM")
    return took


def main():
    stamp = os.path.join(WORK, "stamp")
    rows = []
    rows_posix = []
    resp, resp1 = [], []
    rss = None
    floors = {}
    more = {}
    try:
        for i in range(RUNS):
            log(f"run {i + 1}/{RUNS}: {N} programs")
            p, d, forked, started, sched, ticks, spawned = start_run(i, N, stamp)
            if i == RUNS - 1:
                time.sleep(1)  # settle: the admin API task, the allocator
                rss = (status_kb(p.pid, "VmRSS"), status_kb(p.pid, "RssAnon"),
                       status_kb(p.pid, "VmHWM"))
                log(f"respawn latency with {N} programs running, and with 1 program "
                    f"beside it as the control ({KILLS} kills each, interleaved)")
                c, cd, *_ = start_run("control", 1, stamp)
                resp, resp1 = respawn_interleaved([d, cd], KILLS)
                stop(c)
            took = stop(p)
            rows.append((forked, started, sched, ticks, took, spawned * 1_000_000))
        for i in range(RUNS):
            log(f"run {i + 1}/{RUNS}: {N} programs, no locale variables (the image's)")
            p, d, forked, started, sched, ticks, spawned = start_run(
                f"posix{i}", N, stamp, without_locale())
            took = stop(p)
            rows_posix.append((forked, started, sched, ticks, took, spawned * 1_000_000))
        floors = {}
        spawn_floor = os.path.join(WORK, "spawn_floor")
        for name, mode, env in (
                ("fork + exec awaited (as std::process::Command)", "0", None),
                ("posix_spawn (clone with CLONE_VM and CLONE_VFORK)", "1", None),
                ("posix_spawn, no locale variables", "1", without_locale())):
            log(f"control: a C loop spawning {N} with {name}")
            floors[name] = c_median([spawn_floor, str(N), mode], env)
        log(f"control: machine floors (parallel spawning, stop, one process's CPU)")
        more = machine_floors()
    finally:
        cleanup()

    def ms(ns):
        return f"{ns / 1e6:.1f}"

    def med(k, rows=rows):
        return sorted(r[k] for r in rows)[len(rows) // 2]

    def span(k, rows=rows):
        xs = [r[k] for r in rows]
        return f"{ms(med(k, rows))} ({ms(min(xs))}–{ms(max(xs))})"

    def verdict(ok):
        return "met" if ok else "**missed**"

    load = os.getloadavg()
    out = [
        f"Scheduling: `{' '.join(WRAP) or 'default (SCHED_OTHER)'}`. "
        f"{N} programs, {RUNS} runs (median, min–max). Machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, kernel {platform.release()}, load average "
        f"{load[0]:.2f} / {load[1]:.2f} at the end; binary `{BIN}`.\n",
        "| measure | value | target | verdict |",
        "|---|---|---|---|",
        f"| **the caller's environment** (locale: {locale_of(None)}) | | | |",
        f"| supervisor start → all {N} forked | {span(0)} ms | – | – |",
        f"| supervisor start → its last spawn returned (its own `started_at_ms`; where the C loop's wall ends) | {span(5)} ms | – | – |",
        f"| supervisor start → all {N} exec'd (started) | {span(1)} ms | ≤ 400 ms idle | {verdict(med(1) <= 400e6)} |",
        f"| supervisor CPU until then (schedstat, all threads) | {span(2)} ms | ≤ 100 ms | {verdict(med(2) <= 100e6)} |",
        f"| same from utime+stime (10 ms ticks) | {span(3)} ms | | |",
        f"| VmRSS (RssAnon; peak VmHWM), {N} running | {rss[0] / 1024:.1f} MB ({rss[1] / 1024:.1f}; {rss[2] / 1024:.1f}) | ≤ 16 MB | {verdict(rss[0] <= 16 * 1024)} |",
        f"| respawn, SIGKILL → next start stamp, {N} running: p50 / p99 / max ({len(resp)} kills) | "
        f"{pct(resp, 50) / 1e6:.2f} / {pct(resp, 99) / 1e6:.2f} / {max(resp) / 1e6:.2f} ms | p99 within 25 % of 1 program | "
        f"{verdict(pct(resp, 99) <= 1.25 * pct(resp1, 99))} |",
        f"| *control:* same with 1 program (its own supervisor, run at the same time, kills interleaved) | {pct(resp1, 50) / 1e6:.2f} / {pct(resp1, 99) / 1e6:.2f} / {max(resp1) / 1e6:.2f} ms | | |",
        f"| (respawn samples discarded: the bench descheduled > 0.5 ms around its kill) | {discarded[0]} | | |",
        f"| SIGTERM → all {N} stopped, supervisor exited | {span(4)} ms | ≤ 100 ms | {verdict(med(4) <= 100e6)} |",
        "| **the image's environment** (the same minus LANG, LANGUAGE, LC_*: the POSIX locale) | | | |",
        f"| supervisor start → all {N} forked | {span(0, rows_posix)} ms | – | – |",
        f"| supervisor start → its last spawn returned (its own `started_at_ms`) | {span(5, rows_posix)} ms | – | – |",
        f"| supervisor start → all {N} exec'd (started) | {span(1, rows_posix)} ms | ≤ 400 ms idle | {verdict(med(1, rows_posix) <= 400e6)} |",
        f"| supervisor CPU until then (schedstat, all threads) | {span(2, rows_posix)} ms | ≤ 100 ms | {verdict(med(2, rows_posix) <= 100e6)} |",
        f"| SIGTERM → all {N} stopped, supervisor exited | {span(4, rows_posix)} ms | ≤ 100 ms | {verdict(med(4, rows_posix) <= 100e6)} |",
        "| **controls** | | | |",
    ]
    for name, (wall, cpu) in floors.items():
        out.append(f"| *control:* a C loop spawning {N} (3 MB heap), {name}: wall / parent CPU (median of 3) | "
                   f"{wall:.0f} / {cpu:.0f} ms | (machine floor) | – |")
    cores = os.cpu_count() or 1
    out += [
        f"| *control:* the same {N} by posix_spawn from 2 threads at once: wall (median of 3) | "
        f"{more['parallel'][0]:.0f} ms | (machine floor) | – |",
        f"| *control:* CPU of one `sleep` from clone to exit (C, 200 in turn); × {N} ÷ {cores} cores | "
        f"{more['exec'][0]:.0f} µs; {more['exec'][0] * N / cores / 1e3:.0f} ms | (lower bound of the start) | – |",
        f"| *control:* the same with no locale variables | "
        f"{more['exec_posix'][0]:.0f} µs; {more['exec_posix'][0] * N / cores / 1e3:.0f} ms | (lower bound of the start) | – |",
        f"| *control:* a C parent stopping {N} `sleep`s: SIGTERM to each group → all reaped; parent CPU (median of 3) | "
        f"{more['stop'][0]:.0f} / {more['stop'][1]:.0f} ms | (machine floor) | – |",
    ]
    print("\n".join(out))


if __name__ == "__main__":
    main()
