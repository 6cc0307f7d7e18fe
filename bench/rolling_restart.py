#!/usr/bin/env python3
"""Driver of bench/rolling_restart.sh: the shipped stack with the app at
`replicas = REPLICAS` (4), RATE req/s of keyed GETs through the proxy
(bench/paced_load.py), and RUNS rolling restarts (`selfheal restart app`, which
returns once the rollout is done), EVERY s apart. For each run, from the
supervisor's events (`selfheal events --json`, subscribed before the first run):
start-to-ready of each new instance (`started` → `ready`, by pid) and the drain of
each old one (`stopping` → `stopped`, by pid); the bound is
REPLICAS × (mean start-to-ready + mean drain) + 50 ms. Prints a Markdown table.

Env: REPLICAS (4), RATE (200), RUNS (3), EVERY (3), WARMUP (2).
"""
import json, os, signal, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paced_load import PacedLoad, failures, summary  # noqa: E402
from stacklib import BIN, Stack  # noqa: E402

REPLICAS = int(os.environ.get("REPLICAS", "4"))
RATE = float(os.environ.get("RATE", "200"))
RUNS = int(os.environ.get("RUNS", "3"))
EVERY = float(os.environ.get("EVERY", "3"))
WARMUP = float(os.environ.get("WARMUP", "2"))


def loadavg():
    return open("/proc/loadavg").read().split()[0]


def app_instances(stack):
    s = stack.status() or {"programs": []}
    return [p for p in s["programs"] if p.get("program") == "app"]


def wait_replicas(stack, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        live = app_instances(stack)
        if len(live) == REPLICAS and all(p["ready"] and not p["retiring"] for p in live):
            return sorted(p["pid"] for p in live)
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: not {REPLICAS} ready app instances in {timeout} s: {live}")
        time.sleep(0.05)


def read_events(path):
    out = []
    for line in open(path):
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def spans(events, begin, end, t0, t1):
    """pid → (begin ts_ms, end ts_ms) for app instances whose `begin` event is
    within [t0, t1] (epoch ms) and that have an `end` event."""
    first, out = {}, {}
    for e in events:
        if not str(e.get("program") or "").startswith("app") or "pid" not in e:
            continue
        if e["kind"] == begin and t0 <= e["ts_ms"] <= t1:
            first[e["pid"]] = e["ts_ms"]
        elif e["kind"] == end and e["pid"] in first:
            out[e["pid"]] = (first[e["pid"]], e["ts_ms"])
    return out


def with_replicas(text):
    """The shipped config with the app's replicas line set to REPLICAS."""
    line = 'replicas = "${SELFHEAL_APP_REPLICAS:-1}"'
    if line not in text:
        raise SystemExit(f"bench: supervisor.toml has no `{line}` line to edit")
    return text.replace(line, f"replicas = {REPLICAS}", 1)


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    stack = Stack(edit=with_replicas)
    events_proc = None
    try:
        stack.wait_ready(("redis", "app", "proxy"))
        wait_replicas(stack)
        ev_path = f"{stack.work}/events.jsonl"
        events_proc = subprocess.Popen([BIN, "events", "--json", "--recent", "1", "--socket", stack.sock],
                                       stdout=open(ev_path, "w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while os.path.getsize(ev_path) == 0:  # subscribed: the one recent event is there
            if time.monotonic() > deadline:
                raise SystemExit("bench: `selfheal events` printed nothing")
            time.sleep(0.02)
        load_before = loadavg()
        load = PacedLoad(stack.front, RATE).start()
        time.sleep(WARMUP)
        runs = []  # (wall ms start, wall ms end, seconds, code, text, old pids, new pids)
        for r in range(RUNS):
            old = wait_replicas(stack)
            w0 = time.time() * 1000
            code, text, took = stack.cli("restart", "app")
            w1 = time.time() * 1000
            new = wait_replicas(stack)
            runs.append((w0, w1, took, code, text.strip(), old, new))
            print(f"bench: run {r + 1}/{RUNS}: `restart app` {took * 1000:.0f} ms, exit {code}",
                  file=sys.stderr, flush=True)
            time.sleep(EVERY)  # the last old instance drains; the load runs on
        shots = load.stop()
        load_after = loadavg()
        events_proc.terminate()
        events_proc.wait()
        events = read_events(ev_path)
    finally:
        if events_proc and events_proc.poll() is None:
            events_proc.terminate()
            events_proc.wait()
        stack.close()

    s = summary(shots)
    print(f"Rolling restart: shipped stack with the app at `replicas = {REPLICAS}` (surge, one instance at a time), "
          f"{RATE:g} req/s of keyed GETs through the proxy during {RUNS} runs of `selfheal restart app` "
          f"{EVERY:g} s apart; load average {load_before} before, {load_after} after\n")
    print(f"| run | `restart app` | start-to-ready (each new, ms) | drain (each old, ms) | "
          f"bound {REPLICAS} × (ready + drain) + 50 ms | within | exit |")
    print("|---|---|---|---|---|---|---|")
    all_ok = True
    for i, (w0, w1, took, code, text, old, new) in enumerate(runs, 1):
        ready = spans(events, "started", "ready", w0, w1)
        drain = spans(events, "stopping", "stopped", w0, w1 + EVERY * 1000)
        rd = [b - a for p, (a, b) in sorted(ready.items(), key=lambda kv: kv[1]) if p in new]
        dr = [b - a for p, (a, b) in sorted(drain.items(), key=lambda kv: kv[1]) if p in old]
        complete = len(rd) == REPLICAS and len(dr) == REPLICAS
        bound = REPLICAS * (sum(rd) / max(len(rd), 1) + sum(dr) / max(len(dr), 1)) + 50
        within = complete and took * 1000 <= bound
        all_ok &= within and code == 0
        print(f"| {i} | {took * 1000:.0f} ms | {', '.join(map(str, rd))} | {', '.join(map(str, dr))} | "
              f"{bound:.0f} ms{'' if complete else ' (events missing)'} | {'yes' if within else 'no'} | {code} |")
    print()
    print(f"- requests: {s['requests']}, failed {s['failed']} (target 0) — "
          f"{'met' if s['failed'] == 0 else 'missed: ' + str(failures(shots))}")
    print(f"- latency over the whole run: p50 {s['p50']:.2f} ms, p99 {s['p99']:.2f} ms, max {s['max']:.2f} ms; "
          f"generator lag max {s['lag_max']:.1f} ms")
    print(f"- app pids that answered: {len({x.pid for x in shots if x.pid})}")


if __name__ == "__main__":
    main()
