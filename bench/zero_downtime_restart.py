#!/usr/bin/env python3
"""Driver of bench/zero_downtime_restart.sh: the shipped stack (redis, app,
proxy) on free ports, a steady RATE req/s of keyed GETs through the proxy
(bench/paced_load.py), and ROUNDS pairs of windows of WINDOW s each: a baseline
without restarts, then the same length with `selfheal restart app` every EVERY s
(the app restarts by surge: the new process starts beside the serving one on the
held socket, the old one drains once the new one is ready). Requests are counted
in the window they were due in. Prints a Markdown table.

Env: RATE (200), WINDOW (30), ROUNDS (1), EVERY (3), WARMUP (2); STRATEGY
(unset: as shipped, i.e. surge; `stop-first` sets the app's restart_strategy, a
control: the old process stops before the new one starts); START_DELAY (unset:
none; e.g. `0.3`: the app sleeps that many seconds before it starts, through
`sh -c 'sleep D; exec "$0" "$@"'`, to stand for an app slow to start).
"""
import os, signal, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paced_load import PacedLoad, failures, summary  # noqa: E402
from stacklib import Stack, pct  # noqa: E402

RATE = float(os.environ.get("RATE", "200"))
WINDOW = float(os.environ.get("WINDOW", "30"))
ROUNDS = int(os.environ.get("ROUNDS", "1"))
EVERY = float(os.environ.get("EVERY", "3"))
WARMUP = float(os.environ.get("WARMUP", "2"))
STRATEGY = os.environ.get("STRATEGY", "")
START_DELAY = os.environ.get("START_DELAY", "")


def edit(text):
    """The shipped config with the app's restart_strategy set to STRATEGY and
    its start delayed by START_DELAY."""
    for marker in ("[programs.app]\n", '"${SELFHEAL}", "app",'):
        if marker not in text:
            raise SystemExit(f"bench: supervisor.toml has no `{marker.strip()}` to edit")
    if STRATEGY:
        text = text.replace("[programs.app]\n", f'[programs.app]\nrestart_strategy = "{STRATEGY}"\n', 1)
    if START_DELAY:
        text = text.replace('"${SELFHEAL}", "app",',
                            f"\"sh\", \"-c\", 'sleep {float(START_DELAY)}; exec \"$0\" \"$@\"', \"${{SELFHEAL}}\", \"app\",", 1)
    return text


def loadavg():
    return open("/proc/loadavg").read().split()[0]


def sleep_until(t):
    while (d := t - time.monotonic()) > 0:
        time.sleep(d)


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    stack = Stack(edit=edit)
    try:
        stack.wait_ready(("redis", "app", "proxy"))
        load_before = loadavg()
        load = PacedLoad(stack.front, RATE).start()
        sleep_until(load.t0 + WARMUP)
        windows = {"baseline": [], "restarts": []}  # (start, end) of each window
        cli = []  # (code, seconds) of each `selfheal restart app`
        spans = []  # each restart: sent → 500 ms after it returned (the old one drains)
        for r in range(ROUNDS):
            t = time.monotonic()
            print(f"bench: round {r + 1}/{ROUNDS}: baseline {WINDOW:.0f} s", file=sys.stderr, flush=True)
            sleep_until(t + WINDOW)
            windows["baseline"].append((t, t + WINDOW))
            t = time.monotonic()
            print(f"bench: round {r + 1}/{ROUNDS}: `restart app` every {EVERY:g} s for {WINDOW:.0f} s",
                  file=sys.stderr, flush=True)
            k = 0
            while t + k * EVERY < t + WINDOW:
                sleep_until(t + k * EVERY)
                sent = time.monotonic()
                code, text, took = stack.cli("restart", "app")
                spans.append((sent, time.monotonic() + 0.5))
                if code != 0:
                    print(f"bench: `selfheal restart app` exited {code}: {text.strip()}", file=sys.stderr)
                cli.append((code, took))
                k += 1
            sleep_until(t + WINDOW)
            windows["restarts"].append((t, t + WINDOW))
        time.sleep(1)  # the last window's requests are answered
        shots = load.stop()
        load_after = loadavg()
    finally:
        stack.close()

    def within(name):
        return [s for s in shots if any(a <= s.due < b for a, b in windows[name])]

    base, rest = summary(within("baseline")), summary(within("restarts"))
    near = summary([s for s in shots if any(a <= s.due < b for a, b in spans)])
    pids = {s.pid for s in within("restarts") if s.pid}
    took = [c[1] * 1000 for c in cli]
    bad = sum(1 for c in cli if c[0] != 0)
    added = rest["p99"] - base["p99"]
    variant = ", ".join(([f"restart_strategy = {STRATEGY}"] if STRATEGY else [])
                        + ([f"the app starting {START_DELAY} s late"] if START_DELAY else []))
    print(f"Zero-downtime restart: shipped stack{' (' + variant + ')' if variant else ''}, {RATE:g} req/s of keyed GETs through the proxy "
          f"(fresh connection each), {ROUNDS} × ({WINDOW:g} s baseline + {WINDOW:g} s with "
          f"`selfheal restart app` every {EVERY:g} s); load average {load_before} before, {load_after} after\n")
    print("| window | requests | failed | p50 | p99 | max | generator lag max |")
    print("|---|---|---|---|---|---|---|")
    for name, s in (("baseline", base), (f"restarts ({len(cli)}, {len(pids)} app pids served)", rest)):
        print(f"| {name} | {s['requests']} | {s['failed']} | {s['p50']:.2f} ms | {s['p99']:.2f} ms | "
              f"{s['max']:.2f} ms | {s['lag_max']:.1f} ms |")
    print(f"| of which during a restart (sent → 500 ms after it returned) | {near['requests']} | {near['failed']} | "
          f"{near['p50']:.2f} ms | {near['p99']:.2f} ms | {near['max']:.2f} ms | {near['lag_max']:.1f} ms |")
    print()
    fails = failures(within("baseline") + within("restarts"))
    print(f"- failed requests: {base['failed'] + rest['failed']} (target 0) — "
          f"{'met' if base['failed'] + rest['failed'] == 0 else 'missed: ' + str(fails)}")
    print(f"- added p99 (restarts − baseline): {added:+.2f} ms (target ≤ 5 ms) — {'met' if added <= 5 else 'missed'}")
    print(f"- `selfheal restart app` round trip (waits for the new process ready): p50 {pct(took, 50):.0f} ms, "
          f"max {max(took):.0f} ms; {bad} of {len(cli)} exited non-zero")


if __name__ == "__main__":
    main()
