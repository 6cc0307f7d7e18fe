#!/usr/bin/env python3
"""Crash under load, through the proxy (:front) of the shipped stack.

A paced load of RATE req/s (CLIENTS threads, a fresh connection per request, each
request with its own X-Request-Id, JSON answers carrying the app's pid) runs for
DURATION seconds while the app is crashed every 2–5 s (random), in two runs:
`/kill` through the proxy, and SIGKILL of the app's pid. Reported per run: requests,
failed (non-2xx or error), duplicates (Redis counter − 2xx answers), max and p99
latency, kill → first 2xx answered by the new instance, and the proxy's peak RSS.

Usage: bench/crash_under_load.sh   (RATE=200 DURATION=30 CLIENTS=4)
"""
import json, os, random, re, shutil, signal, socket, subprocess, tempfile, threading, time

BIN = os.environ.get("SELFHEAL_BIN", "target/release/selfheal")
RATE = int(os.environ.get("RATE", "200"))
DURATION = float(os.environ.get("DURATION", "30"))
CLIENTS = int(os.environ.get("CLIENTS", "4"))


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def get(port, path, rid=None, timeout=10.0):
    """GET on a fresh connection → (status, body bytes) or (None, error)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            extra = f"X-Request-Id: {rid}\r\n" if rid else ""
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: application/json\r\n"
                      f"Connection: close\r\n{extra}\r\n".encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk: break
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split(b"\r\n", 1)[0].split()[1]), body
    except Exception as e:  # noqa: BLE001
        return None, str(e).encode()


def pct(v, p):
    v = sorted(v); return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] if v else float("nan")


def rss_kb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"): return int(line.split()[1])
    except OSError:
        pass
    return 0


def run(mode, sup_env, work):
    cfg = open("supervisor.toml").read()
    # The run crashes the app ~10 times: keep the shipped limits (30 in 60 s).
    open(f"{work}/supervisor.toml", "w").write(cfg)
    sock = f"{work}/admin.sock"
    log = open(f"{work}/supervisor-{mode}.log", "w")
    sup = subprocess.Popen([BIN, "--config", f"{work}/supervisor.toml"], env=sup_env, stdout=log, stderr=subprocess.STDOUT)

    def status():
        out = subprocess.run([BIN, "status", "--json", "--socket", sock], capture_output=True, text=True)
        return json.loads(out.stdout) if out.returncode == 0 else None

    def pid_of(name):
        s = status() or {}
        return next((p["pid"] for p in s.get("programs", []) if p["name"] == name), None)

    front = int(sup_env["SELFHEAL_LISTEN"].rsplit(":", 1)[1])
    try:
        deadline = time.time() + 30
        while subprocess.run([BIN, "health", "--socket", sock], capture_output=True).returncode != 0:
            if time.time() > deadline: raise SystemExit(f"stack not ready; see {log.name}")
            time.sleep(0.05)
        proxy_pid = pid_of("proxy")
        results, kills, stop = [], [], threading.Event()
        lock = threading.Lock()

        def client(k):
            n, start = 0, time.monotonic()
            while not stop.is_set():
                target = start + n * CLIENTS / RATE
                now = time.monotonic()
                if target > now: time.sleep(target - now)
                sent = time.monotonic()
                st, body = get(front, "/", f"{mode}-{k}-{n}")
                done = time.monotonic()
                pid = None
                if st == 200:
                    try: pid = json.loads(body)["instance"]["pid"]
                    except Exception: pass  # noqa: BLE001
                with lock: results.append((sent, done, st, pid))
                n += 1

        def killer():
            while not stop.wait(random.uniform(2, 5)):
                old = pid_of("app")
                t = time.monotonic()
                if mode == "kill":
                    st, _ = get(front, "/kill", f"kill-{t}")
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
        out = subprocess.run(["redis-cli", "-p", sup_env["SELFHEAL_REDIS_PORT"], "GET", "selfheal:visits"], capture_output=True, text=True)
        counter = int(out.stdout.strip() or 0)
        print(f"{mode:>8}: {len(results)} requests at {RATE}/s over {DURATION:.0f}s, {len(kills)} crashes; "
              f"failed {failed}; duplicates {counter - len(ok)} (counter {counter}, 2xx {len(ok)}); "
              f"latency p50 {pct(lat, 50):.1f} ms p99 {pct(lat, 99):.1f} ms max {max(lat):.1f} ms; "
              f"crash → first 2xx from the new app p50 {pct(recover, 50):.1f} ms max {max(recover) if recover else float('nan'):.1f} ms; "
              f"proxy peak RSS {peak[0] / 1024:.1f} MB")
    finally:
        sup.send_signal(signal.SIGTERM)
        try: sup.wait(20)
        except subprocess.TimeoutExpired: sup.kill()


def main():
    for mode in ("kill", "sigkill"):
        work = tempfile.mkdtemp(prefix="selfheal-bench-crash-")
        os.makedirs(f"{work}/data")
        env = dict(os.environ, SELFHEAL_DATA=f"{work}/data", SELFHEAL_RUN=work,
                   SELFHEAL_REDIS_PORT=str(free_port()), SELFHEAL_APP_PORT=str(free_port()),
                   SELFHEAL_LISTEN=f"127.0.0.1:{free_port()}")
        try:
            run(mode, env, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
