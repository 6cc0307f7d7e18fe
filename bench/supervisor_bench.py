"""Driver of bench/supervisor.sh: runs the release supervisor on generated
configs and measures it from the outside. Usage: supervisor_bench.py BIN WORK.
Prints a Markdown summary on stdout; progress on stderr. Every supervisor it
starts runs in its own session and is killed (group) on exit."""

import os
import platform
import signal
import subprocess
import sys
import time

BIN, WORK = sys.argv[1], sys.argv[2]
# Optional scheduling prefix for the supervisor (inherited by its programs), e.g.
# "chrt -f 10" to keep other users of a shared machine out of the figures.
WRAP = os.environ.get("BENCH_WRAP", "").split()
PROCS = []


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def cleanup(*_):
    for p in PROCS:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()


signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def start(name, programs, pid1=False):
    d = os.path.join(WORK, name)
    os.makedirs(d)
    cfg = os.path.join(d, "config.toml")
    with open(cfg, "w") as f:
        f.write(f'[supervisor]\nadmin_socket = "{d}/admin.sock"\n\n')
        f.write(programs.replace("@DIR@", d).replace("@WORK@", WORK))
    out = open(os.path.join(d, "log"), "w")
    argv = [BIN, "--config", cfg]
    if pid1:
        # Host /proc stays mounted, so fixtures can report host pids.
        argv = ["unshare", "--pid", "--fork"] + argv
    argv = WRAP + argv
    p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    PROCS.append(p)
    return p, d


def wait_until(what, timeout, check, step=0.005):
    deadline = time.monotonic() + timeout
    while True:
        v = check()
        if v:
            return v
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out after {timeout}s waiting for {what}")
        time.sleep(step)


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def wait_log(d, needle, n, timeout=30):
    wait_until(f"{n}x {needle!r} in {d}/log", timeout, lambda: read(f"{d}/log").count(needle) >= n)


def stop(p):
    if p.poll() is None:
        if "unshare" in p.args:
            os.killpg(p.pid, signal.SIGTERM)
        else:
            p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def supervisor_pid(p, pid1):
    if not pid1:
        return p.pid
    kids = read(f"/proc/{p.pid}/task/{p.pid}/children").split()
    return int(kids[0])


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(q / 100 * len(xs) + 0.5)) - 1))]


def status_field(pid, field):
    for line in read(f"/proc/{pid}/status").splitlines():
        if line.startswith(field + ":"):
            return line.split()[1]
    raise SystemExit(f"bench: no {field} for pid {pid}")


def smaps_pss(pid):
    for line in read(f"/proc/{pid}/smaps_rollup").splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def ctxt(pid):
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        for line in read(f"/proc/{pid}/task/{tid}/status").splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total


def ms(ns):
    return f"{ns / 1e6:.3f}"


def respawn(crashes=1000):
    log(f"respawn latency ({crashes} crashes)")
    p, d = start(
        "respawn",
        f"""[programs.crash]
command = ["@WORK@/crash", "@DIR@/stamps"]
restart = "always"
backoff = {{ initial = "0s", max = "0s" }}
restart_limit = {{ max = 1000000, window = "1s" }}
""",
    )
    stamps = f"{d}/stamps"
    wait_until("crashes", 120, lambda: read(stamps).count("S ") > crashes, step=0.05)
    stop(p)
    lines = [l.split() for l in read(stamps).splitlines() if l.strip()]
    lat = []
    last_exit = None
    for kind, ns in lines:
        if kind == "E":
            last_exit = int(ns)
        elif kind == "S" and last_exit is not None:
            lat.append(int(ns) - last_exit)
            last_exit = None
    lat = lat[:crashes]
    lines_out = read(f"{d}/log").count("crash    | crashing")
    return lat, lines_out


def footprint():
    rows = {}
    for n in (1, 100):
        log(f"RSS with {n} programs")
        progs = "".join(f'[programs.p{i}]\ncommand = ["sleep", "infinity"]\n' for i in range(n))
        p, d = start(f"rss{n}", progs)
        wait_log(d, "started (pid", n)
        time.sleep(1)  # settle: allocator, admin API task
        rss = int(status_field(p.pid, "VmRSS"))
        anon = int(status_field(p.pid, "RssAnon"))
        file = int(status_field(p.pid, "RssFile"))
        pss = smaps_pss(p.pid)
        threads = int(status_field(p.pid, "Threads"))
        wake = None
        if n == 100:
            log("idle wakeups over 10 s with 100 programs")
            before = ctxt(p.pid)
            time.sleep(10)
            wake = (ctxt(p.pid) - before) / 10
        stop(p)
        rows[n] = (rss, threads, wake, anon, file, pss)
    return rows


def orphans(mode, count=200, period_ms=50):
    log(f"orphan reaping latency as {mode} ({count} orphans)")
    if mode == "baseline":
        d = os.path.join(WORK, "orphans-baseline")
        os.makedirs(d)
        argv = WRAP + [f"{WORK}/baseline", f"{WORK}/orphans", f"{d}/pids", f"{d}/exits", str(count), str(period_ms)]
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        PROCS.append(p)
    else:
        pid1 = mode == "pid1"
        p, d = start(
            f"orphans-{mode}",
            f"""[programs.maker]
command = ["@WORK@/orphans", "@DIR@/pids", "@DIR@/exits", "{count}", "{period_ms}"]
restart = "never"
""",
            pid1=pid1,
        )
        wait_log(d, "(init)" if pid1 else "(subreaper)", 1)
    # Poll every pending orphan each round. A sample counts only when the
    # poller noticed the pid gone less than `resolution` after its previous
    # look (else the poller itself was descheduled, and the sample is dropped).
    resolution = 500_000
    pending = {}  # pid -> last time seen present
    done = set()
    lat, discarded, reasons = [], 0, {}
    deadline = time.monotonic() + count * period_ms / 1000 + 30
    while len(lat) + discarded < count and time.monotonic() < deadline:
        for pid in read(f"{d}/pids").split():
            if pid not in pending and pid not in done:
                pending[pid] = None
        if not pending:
            time.sleep(0.001)
            continue
        exits = None
        for pid in list(pending):
            present = os.path.exists(f"/proc/{pid}")
            now = time.monotonic_ns()
            if present:
                pending[pid] = now
                continue
            if exits is None or pid not in exits:
                exits = dict(l.split() for l in read(f"{d}/exits").splitlines() if len(l.split()) == 2)
            last = pending.pop(pid)
            done.add(pid)
            exit_ns = int(exits[pid])
            if last is not None and now - last < resolution:
                # Gone within one short poll step: `now - exit` bounds the
                # latency from above (by less than the step when the pid was
                # seen after its exit stamp, which is the usual case).
                lat.append(max(0, now - exit_ns))
            else:
                discarded += 1
                why = "never seen" if last is None else "poller gap"
                reasons[why] = reasons.get(why, 0) + 1
    reaped_lines = read(f"{d}/log").count("reaped orphan pid")
    stop(p)
    log(f"  {len(lat)} samples, discarded: {reasons or 'none'}")
    if len(lat) < count // 4:
        raise SystemExit(f"bench: only {len(lat)} of {count} orphans measured ({mode}): {reasons}")
    return lat, reaped_lines, reasons or "none"


def sigterm(runs=50):
    log(f"SIGTERM to exit, 3-program chain ({runs} runs)")
    progs = """[programs.a]
command = ["sleep", "infinity"]
[programs.b]
command = ["sleep", "infinity"]
depends_on = { a = "started" }
[programs.c]
command = ["sleep", "infinity"]
depends_on = { b = "started" }
"""
    lat = []
    for i in range(runs):
        p, d = start(f"term{i}", progs)
        wait_log(d, "started (pid", 3)
        time.sleep(0.05)
        t0 = time.monotonic_ns()
        p.send_signal(signal.SIGTERM)
        code = p.wait(timeout=15)
        lat.append(time.monotonic_ns() - t0)
        if code != 0:
            raise SystemExit(f"bench: supervisor exited {code} after SIGTERM (run {i})")
    return lat


def main():
    try:
        resp, resp_lines = respawn()
        fp = footprint()
        orph_sub, sub_lines, sub_disc = orphans("subreaper")
        orph_init, init_lines, init_disc = orphans("pid1")
        orph_base, _, base_disc = orphans("baseline")
        term = sigterm()
    finally:
        cleanup()

    def verdict(ok):
        return "met" if ok else "**missed**"

    def dist(xs):
        return f"{ms(pct(xs, 50))} | {ms(pct(xs, 90))} | {ms(pct(xs, 99))} | {ms(max(xs))}"

    out = []
    out.append(f"Scheduling: `{' '.join(WRAP) or 'default (SCHED_OTHER)'}`. "
               f"Machine: {platform.machine()}, {os.cpu_count()} cores, kernel {platform.release()}, "
               f"load average {os.getloadavg()[0]:.2f} at the end; binary `{BIN}` (release).\n")
    out.append("| measure | samples | p50 ms | p90 ms | p99 ms | max ms | target | verdict |")
    out.append("|---|---|---|---|---|---|---|---|")
    out.append(f"| respawn latency (exit stamp → next start stamp) | {len(resp)} | {dist(resp)} | p99 ≤ 2 ms | {verdict(pct(resp, 99) <= 2e6)} |")
    out.append(f"| orphan exit → reaped, subreaper | {len(orph_sub)} | {dist(orph_sub)} | ≤ 5 ms | {verdict(pct(orph_sub, 99) <= 5e6)} |")
    out.append(f"| orphan exit → reaped, PID 1 (unshare --pid) | {len(orph_init)} | {dist(orph_init)} | ≤ 5 ms | {verdict(pct(orph_init, 99) <= 5e6)} |")
    out.append(f"| *control:* orphan exit → reaped by a C subreaper blocked in `waitpid(-1)` | {len(orph_base)} | {dist(orph_base)} | (kernel + machine floor) | – |")
    out.append(f"| SIGTERM → 3-program chain stopped, supervisor exited | {len(term)} | {dist(term)} | ≤ 20 ms | {verdict(pct(term, 99) <= 20e6)} |")
    out.append("")
    out.append("| measure | value | target | verdict |")
    out.append("|---|---|---|---|")
    for n, target in ((1, 4), (100, 6)):
        rss, thr, _, anon, file, pss = fp[n]
        out.append(f"| VmRSS, {n} program{'s' if n > 1 else ''} (`sleep infinity`), admin API up | "
                   f"{rss / 1024:.2f} MB (anon {anon / 1024:.2f} MB, file {file / 1024:.2f} MB, "
                   f"PSS {pss / 1024:.2f} MB; {thr} thread{'s' if thr > 1 else ''}) | ≤ {target} MB | {verdict(rss <= target * 1024)} |")
    wake = fp[100][2]
    out.append(f"| idle context switches, 100 programs, no probes, over 10 s (all threads) | {wake:.2f}/s | ≤ 0.1/s | {verdict(wake <= 0.1)} |")
    out.append("")
    out.append(f"Checks: {resp_lines} `crashing` lines captured for the respawn run; "
               f"{sub_lines} and {init_lines} `reaped orphan` lines (subreaper, PID 1); "
               f"orphan samples discarded (the bench poller must notice the pid gone "
               f"< 0.5 ms after its previous look at it): subreaper {sub_disc}, PID 1 {init_disc}, control {base_disc}.")
    print("\n".join(out))


if __name__ == "__main__":
    main()
