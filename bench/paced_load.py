#!/usr/bin/env python3
"""A paced load generator: RATE keyed GETs per second on a fresh connection each
(raw sockets, `X-Request-Id` unique per request, JSON asked), recording every
request's scheduled time, send time, end time, status and the app pid that
answered. (`wrk` cannot hold a fixed rate; wrk2 is not installed.)

Open loop: request i is due at t0 + i / RATE, whatever happened to the earlier
ones; WORKERS threads take the next due request, so one slow answer does not
hold back the schedule (with 8 workers at 200/s, a request may take 40 ms before
the schedule slips). Each record keeps both latencies: from the send (service
latency, what the tables report) and from the due time (includes any slip of the
generator itself, shown as "lag").

WORKERS (env, 8) sets the number of threads.

As a module: `load = PacedLoad(port, rate); load.start(); …; shots = load.stop()`.
As a script: `paced_load.py PORT [RATE] [SECONDS]` prints a summary line.
"""
import json, os, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stacklib import get, pct  # noqa: E402


class Shot:
    """One request: times are time.monotonic() seconds; status None = error."""
    __slots__ = ("due", "sent", "done", "status", "pid")

    def __init__(self, due, sent, done, status, pid):
        self.due, self.sent, self.done, self.status, self.pid = due, sent, done, status, pid

    @property
    def ms(self):
        return (self.done - self.sent) * 1000

    @property
    def lag_ms(self):
        return (self.sent - self.due) * 1000


class PacedLoad:
    def __init__(self, port, rate=200, workers=int(os.environ.get("WORKERS", "8")), path="/", tag="load"):
        self.port, self.rate, self.workers, self.path, self.tag = port, rate, workers, path, tag
        self.shots, self.lock, self.stop_flag = [], threading.Lock(), threading.Event()
        self.next_i, self.threads, self.t0 = 0, [], None

    def _take(self):
        with self.lock:
            i = self.next_i
            self.next_i += 1
        return i

    def _worker(self):
        while not self.stop_flag.is_set():
            i = self._take()
            due = self.t0 + i / self.rate
            wait = due - time.monotonic()
            if wait > 0 and self.stop_flag.wait(wait):
                return
            sent = time.monotonic()
            status, _, body = get(self.port, self.path, f"{self.tag}-{os.getpid()}-{i}", timeout=5)
            done = time.monotonic()
            pid = None
            if status == 200:
                try:
                    pid = json.loads(body)["instance"]["pid"]
                except Exception:  # noqa: BLE001 - a 200 without the JSON body still counts as served
                    pass
            with self.lock:
                self.shots.append(Shot(due, sent, done, status, pid))

    def start(self):
        self.t0 = time.monotonic()
        self.threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(self.workers)]
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join()
        with self.lock:
            return sorted(self.shots, key=lambda s: s.due)


def summary(shots):
    """{requests, failed, p50, p99, max, lag_max} over `shots` (latency of the
    served ones, ms); failed = not 200 (error or other status)."""
    ok = [s.ms for s in shots if s.status == 200]
    return {
        "requests": len(shots),
        "failed": sum(1 for s in shots if s.status != 200),
        "p50": pct(ok, 50), "p99": pct(ok, 99), "max": max(ok) if ok else float("nan"),
        "lag_max": max((s.lag_ms for s in shots), default=float("nan")),
    }


def failures(shots):
    """status → count of the failed requests (None: connection error)."""
    out = {}
    for s in shots:
        if s.status != 200:
            out[s.status] = out.get(s.status, 0) + 1
    return out


if __name__ == "__main__":
    port = int(sys.argv[1])
    rate = float(sys.argv[2]) if len(sys.argv) > 2 else 200
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 10
    load = PacedLoad(port, rate).start()
    time.sleep(seconds)
    s = summary(load.stop())
    print(f"{s['requests']} requests, {s['failed']} failed; p50 {s['p50']:.2f} ms p99 {s['p99']:.2f} ms "
          f"max {s['max']:.2f} ms; generator lag max {s['lag_max']:.2f} ms")
