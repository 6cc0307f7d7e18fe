#!/usr/bin/env python3
"""Crash under load, through the proxy (:front) of the shipped stack.

A paced load of RATE req/s (CLIENTS threads, a fresh connection per request, each
request with its own X-Request-Id, JSON answers carrying the app's pid) runs for
DURATION seconds while the app is crashed every 2–5 s (random), in two runs:
`/kill` through the proxy, and SIGKILL of the app's pid. Reported per run: requests,
failed (non-2xx or error), duplicates (Redis counter − 2xx answers), p50/p99/max
latency, crash → first 2xx answered by the new instance, and the proxy's peak RSS.

Usage: bench/crash_under_load.sh   (RATE=200 DURATION=30 CLIENTS=4)
"""
import json, os, random, signal, threading, time

from stacklib import Stack, get, pct

RATE = int(os.environ.get("RATE", "200"))
DURATION = float(os.environ.get("DURATION", "30"))
CLIENTS = int(os.environ.get("CLIENTS", "4"))


def rss_kb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"): return int(line.split()[1])
    except OSError:
        pass
    return 0


def run(mode):
    # The run crashes the app ~10 times: the shipped limits (30 in 60 s) hold.
    stack = Stack()
    front = stack.front
    try:
        stack.wait_ready(("redis", "app", "proxy"))
        proxy_pid = stack.pid_of("proxy")
        results, kills, stop = [], [], threading.Event()
        lock = threading.Lock()

        def client(k):
            n, start = 0, time.monotonic()
            while not stop.is_set():
                target = start + n * CLIENTS / RATE
                now = time.monotonic()
                if target > now: time.sleep(target - now)
                sent = time.monotonic()
                st, _, body = get(front, "/", f"{mode}-{k}-{n}")
                done = time.monotonic()
                pid = None
                if st == 200:
                    try: pid = json.loads(body)["instance"]["pid"]
                    except Exception: pass  # noqa: BLE001
                with lock: results.append((sent, done, st, pid))
                n += 1

        def killer():
            while not stop.wait(random.uniform(2, 5)):
                old = stack.pid_of("app")
                t = time.monotonic()
                if mode == "kill":
                    st, _, _ = get(front, "/kill", f"kill-{t}")
                    if st != 202: print(f"  /kill answered {st}")
                else:
                    os.kill(old, signal.SIGKILL)
                kills.append((t, old))

        peak = [0]

        def sampler():
            while not stop.wait(0.2): peak[0] = max(peak[0], rss_kb(proxy_pid))

        threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
        threads += [threading.Thread(target=killer), threading.Thread(target=sampler)]
        for t in threads: t.start()
        time.sleep(DURATION)
        stop.set()
        for t in threads: t.join()
        ok = [r for r in results if r[2] == 200]
        failed = len(results) - len(ok)
        lat = [(r[1] - r[0]) * 1000 for r in ok]
        recover = []
        for t, old in kills:
            firsts = [r[1] for r in ok if r[0] >= t and r[3] not in (None, old)]
            if firsts: recover.append((min(firsts) - t) * 1000)
        counter = stack.counter()
        print(f"{mode:>8}: {len(results)} requests at {RATE}/s over {DURATION:.0f}s, {len(kills)} crashes; "
              f"failed {failed}; duplicates {counter - len(ok)} (counter {counter}, 2xx {len(ok)}); "
              f"latency p50 {pct(lat, 50):.1f} ms p99 {pct(lat, 99):.1f} ms max {max(lat):.1f} ms; "
              f"crash → first 2xx from the new app p50 {pct(recover, 50):.1f} ms max {max(recover) if recover else float('nan'):.1f} ms; "
              f"proxy peak RSS {peak[0] / 1024:.1f} MB")
    finally:
        stack.close()


def main():
    for mode in ("kill", "sigkill"):
        run(mode)


if __name__ == "__main__":
    main()
