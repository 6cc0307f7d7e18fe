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
import json, os, re, shutil, signal, socket, subprocess, sys, tempfile, threading, time

BIN = os.environ.get("SELFHEAL_BIN", "target/release/selfheal")
KILLS = int(os.environ.get("KILLS", "40"))
REDIS_KILLS = int(os.environ.get("REDIS_KILLS", "5"))
RATE = int(os.environ.get("RATE", "200"))


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def http_get(port, path, rid=None, timeout=10.0):
    """One GET on a fresh connection; returns (status, headers dict) or (None, error)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            extra = f"X-Request-Id: {rid}\r\n" if rid else ""
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n{extra}\r\n".encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk: break
                data += chunk
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin1").split("\r\n")
        status = int(head[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in head[1:] if ":" in l)}
        return status, headers
    except Exception as e:  # noqa: BLE001 - any failure is a failed request here
        return None, str(e)


def pct(values, p):
    v = sorted(values); return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def main():
    work = tempfile.mkdtemp(prefix="selfheal-bench-recovery-")
    cfg = open("supervisor.toml").read()
    cfg = re.sub(r"restart_limit = \{ max = \d+, window = \"60s\" \}", 'restart_limit = { max = 100000, window = "1s" }', cfg)
    open(f"{work}/supervisor.toml", "w").write(cfg)
    os.makedirs(f"{work}/data")
    ports = {"redis": free_port(), "app": free_port(), "front": free_port()}
    env = dict(os.environ, SELFHEAL_DATA=f"{work}/data", SELFHEAL_RUN=work,
               SELFHEAL_REDIS_PORT=str(ports["redis"]), SELFHEAL_APP_PORT=str(ports["app"]),
               SELFHEAL_LISTEN=f"127.0.0.1:{ports['front']}")
    log = open(f"{work}/supervisor.log", "w")
    sup = subprocess.Popen([BIN, "--config", f"{work}/supervisor.toml"], env=env, stdout=log, stderr=subprocess.STDOUT)
    sock = f"{work}/admin.sock"

    def status():
        out = subprocess.run([BIN, "status", "--json", "--socket", sock], capture_output=True, text=True)
        return json.loads(out.stdout) if out.returncode == 0 else None

    def pid_of(name):
        s = status()
        return next((p["pid"] for p in (s or {}).get("programs", []) if p["name"] == name), None)

    try:
        deadline = time.time() + 30
        def app_ready():
            s = status()
            return s and all(p["ready"] for p in s["programs"] if p["name"] in ("redis", "app"))
        while not app_ready():
            if time.time() > deadline: raise SystemExit("stack not ready in 30 s; see " + log.name)
            time.sleep(0.05)
        app = ports["app"]
        http_get(app, "/", "warmup")

        # 1. /kill → first 2xx
        lat = []
        for i in range(KILLS):
            st, _ = http_get(app, "/kill")
            if st != 202: raise SystemExit(f"/kill answered {st}")
            t0 = time.monotonic()
            st, _ = http_get(app, "/", f"kill-{i}")
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
                st, h = http_get(app, "/", f"rk-{n}")
                results.append((sent, time.monotonic(), st))
                n += 1

        threads = [threading.Thread(target=client) for _ in range(1)]
        for t in threads: t.start()
        time.sleep(1)
        for _ in range(REDIS_KILLS):
            pid = pid_of("redis")
            kill_times.append(time.monotonic())
            os.kill(pid, signal.SIGKILL)
            time.sleep(3)  # longer than Redis's reset_after (2s)
        stop.set()
        for t in threads: t.join()
        ok = sum(1 for r in results if r[2] == 200)
        failed = len(results) - ok
        rec = []
        for k in kill_times:
            after = [r for r in results if r[0] >= k and r[2] == 200]
            if after: rec.append((min(r[1] for r in after) - k) * 1000)
        out = subprocess.run(["redis-cli", "-p", str(ports["redis"]), "GET", "selfheal:visits"], capture_output=True, text=True)
        counter = int(out.stdout.strip() or 0)
        expected = ok + 1 + KILLS  # warmup + one per kill round
        print(f"Redis SIGKILL × {REDIS_KILLS} under {RATE} req/s ({len(results)} requests):")
        print(f"  kill → first 2xx of a request sent after it: p50 {pct(rec, 50):.1f} ms   max {max(rec):.1f} ms")
        print(f"  failed requests: {failed}    counter {counter} vs 2xx answers {expected} → {'equal' if counter == expected else 'MISMATCH'}")
    finally:
        sup.send_signal(signal.SIGTERM)
        try: sup.wait(20)
        except subprocess.TimeoutExpired: sup.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
