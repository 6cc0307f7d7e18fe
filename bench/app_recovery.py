#!/usr/bin/env python3
"""Recovery of the demo stack, measured at the app's own port.

1. /kill → app serving again: send /kill (202), then GET / at once; the request waits
   in the supervisor-held socket's backlog until the next incarnation accepts it.
   Latency = 202 received → first 200 received. KILLS kills (default 40), 1.2 s
   apart: longer than the app's `reset_after`, so each is a fresh crash restarted
   at once (faster crash loops are backed off on purpose).
2. Redis SIGKILL under 200 req/s: a paced client sends GET / (unique X-Request-Id) at
   RATE req/s for the whole phase; Redis is SIGKILLed REDIS_KILLS times; reported: the
   time from each kill to the first 200 of a request sent after it, failed requests,
   and whether the Redis counter equals the number of 200s (no loss, no double).

Usage: bench/app_recovery.sh   (builds release, runs the shipped supervisor.toml on
free loopback ports in a temp dir, with the app's restart limit raised for the run)
"""
import os, signal, threading, time

from stacklib import Stack, get, pct

KILLS = int(os.environ.get("KILLS", "40"))
REDIS_KILLS = int(os.environ.get("REDIS_KILLS", "5"))
RATE = int(os.environ.get("RATE", "200"))


def main():
    stack = Stack(raise_limits=True)
    try:
        stack.wait_ready(("redis", "app"))
        app = stack.app
        get(app, "/", "warmup")

        # 1. /kill → first 2xx
        lat = []
        for i in range(KILLS):
            st, _, _ = get(app, "/kill")
            if st != 202: raise SystemExit(f"/kill answered {st}")
            t0 = time.monotonic()
            st, _, _ = get(app, "/", f"kill-{i}")
            t1 = time.monotonic()
            if st != 200: raise SystemExit(f"request after kill {i} answered {st}")
            lat.append((t1 - t0) * 1000)
            time.sleep(1.2)  # longer than the app's reset_after (1s): each crash is a fresh one
        print(f"/kill → app serving again (first 2xx on its own port), {KILLS} kills:")
        print(f"  p50 {pct(lat, 50):.2f} ms   p99 {pct(lat, 99):.2f} ms   max {max(lat):.2f} ms")

        # 2. Redis SIGKILL under RATE req/s
        results, kill_times, stop = [], [], threading.Event()

        def client():
            n, start = 0, time.monotonic()
            while not stop.is_set():
                target = start + n / RATE
                now = time.monotonic()
                if target > now: time.sleep(target - now)
                sent = time.monotonic()
                st, _, _ = get(app, "/", f"rk-{n}")
                results.append((sent, time.monotonic(), st))
                n += 1

        t = threading.Thread(target=client)
        t.start()
        time.sleep(1)
        for _ in range(REDIS_KILLS):
            kill_times.append(time.monotonic())
            os.kill(stack.pid_of("redis"), signal.SIGKILL)
            time.sleep(3)  # longer than Redis's reset_after (2s)
        stop.set()
        t.join()
        ok = sum(1 for r in results if r[2] == 200)
        failed = len(results) - ok
        rec = []
        for k in kill_times:
            after = [r for r in results if r[0] >= k and r[2] == 200]
            if after: rec.append((min(r[1] for r in after) - k) * 1000)
        counter = stack.counter()
        expected = ok + 1 + KILLS  # warmup + one per kill round
        print(f"Redis SIGKILL × {REDIS_KILLS} under {RATE} req/s ({len(results)} requests):")
        print(f"  kill → first 2xx of a request sent after it: p50 {pct(rec, 50):.1f} ms   max {max(rec):.1f} ms")
        print(f"  failed requests: {failed}    counter {counter} vs 2xx answers {expected} → {'equal' if counter == expected else 'MISMATCH'}")
    finally:
        stack.close()


if __name__ == "__main__":
    main()
