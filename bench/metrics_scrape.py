"""Driver of bench/metrics_scrape.sh: argv = BIN WORK (see the script's header)."""

import glob
import os
import socket
import statistics
import subprocess
import sys
import time

BIN, WORK = sys.argv[1], sys.argv[2]
PROGRAMS = int(os.environ.get("PROGRAMS", "100"))
PROBED = int(os.environ.get("PROBED", "10"))
SCRAPES = int(os.environ.get("SCRAPES", "2000"))
IDLE_SECONDS = float(os.environ.get("IDLE_SECONDS", "20"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def config(path, sock, probed):
    lines = ["[supervisor]", f'admin_socket = "{sock}"', ""]
    for i in range(PROGRAMS):
        lines += [f"[programs.p{i:03d}]", 'command = ["sleep", "infinity"]']
        if i < probed:
            port = free_port()
            lines += [f'listen = ["127.0.0.1:{port}"]',
                      f'health = {{ tcp = "127.0.0.1:{port}", interval = "1s" }}']
        lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def get(sock_path, path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock_path)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: selfheal\r\nConnection: close\r\n\r\n".encode())
    chunks = []
    while True:
        b = s.recv(65536)
        if not b:
            break
        chunks.append(b)
    s.close()
    data = b"".join(chunks)
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"GET {path}: {head[:200]!r}")
    return body


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def switches(pid):
    total = 0
    for status in glob.glob(f"/proc/{pid}/task/*/status"):
        try:
            with open(status) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def start(name, probed):
    d = os.path.join(WORK, name)
    os.makedirs(d)
    sock = os.path.join(d, "admin.sock")
    cfg = os.path.join(d, "supervisor.toml")
    config(cfg, sock, probed)
    log = open(os.path.join(d, "log"), "w")
    p = subprocess.Popen([BIN, "--config", cfg], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            body = get(sock, "/metrics").decode()
            if body.count("selfheal_program_up{") == PROGRAMS and \
                    f"selfheal_program_ready{{program=\"p{PROGRAMS - 1:03d}\"}} 1" in body and \
                    all(f"selfheal_program_ready{{program=\"p{i:03d}\"}} 1" in body for i in range(probed)):
                return p, sock
        except (FileNotFoundError, ConnectionRefusedError, SystemExit):
            pass
        time.sleep(0.05)
    p.kill()
    raise SystemExit(f"{name}: the programs did not all become ready")


def stop(p):
    p.terminate()
    p.wait(timeout=30)


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(q / 100 * (len(v) - 1))))]


print(f"{PROGRAMS} programs (sleep infinity), {PROBED} with a tcp probe every 1 s; "
      f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at start")

p, sock = start("scrape", PROBED)
rss_before = rss_kb(p.pid)
for _ in range(100):
    get(sock, "/metrics")
times = []
for _ in range(SCRAPES):
    t0 = time.perf_counter()
    body = get(sock, "/metrics")
    times.append((time.perf_counter() - t0) * 1000)
lines = body.count(b"\n")
print(f"scrape over the unix socket, {SCRAPES} scrapes (fresh connection each): "
      f"p50 {statistics.median(times):.2f} ms  p99 {pct(times, 99):.2f} ms  max {max(times):.2f} ms  "
      f"({len(body)} bytes, {lines} lines)")
print(f"supervisor RSS: {rss_before / 1024:.1f} MB before the scrapes, {rss_kb(p.pid) / 1024:.1f} MB after")
stop(p)

p, sock = start("idle", 0)
get(sock, "/metrics")  # one scrape first: the idle cost after it was served
time.sleep(1)
before = switches(p.pid)
time.sleep(IDLE_SECONDS)
woke = (switches(p.pid) - before) / IDLE_SECONDS
print(f"idle ({PROGRAMS} programs, no probes, after one scrape): "
      f"{woke:.2f} wake-ups/s over {IDLE_SECONDS:.0f} s (all threads' context switches); "
      f"RSS {rss_kb(p.pid) / 1024:.1f} MB")
stop(p)

# Phase 3: the shipped stack (redis, app, proxy), whose scrape also fetches the
# proxy's page over TCP (federation) and appends it.
d = os.path.join(WORK, "stack")
os.makedirs(os.path.join(d, "data"))
env = dict(os.environ, SELFHEAL_DATA=os.path.join(d, "data"), SELFHEAL_RUN=d,
           SELFHEAL_REDIS_PORT=str(free_port()), SELFHEAL_APP_PORT=str(free_port()),
           SELFHEAL_LISTEN=f"127.0.0.1:{free_port()}", SELFHEAL_PROXY_METRICS_PORT=str(free_port()))
for k in ("SELFHEAL_REDIS_URL", "SELFHEAL_CONFIG", "SELFHEAL_LOG_FORMAT"):
    env.pop(k, None)
log = open(os.path.join(d, "log"), "w")
p = subprocess.Popen([BIN, "--config", "supervisor.toml"], env=env, stdout=log, stderr=subprocess.STDOUT)
sock = os.path.join(d, "admin.sock")
deadline = time.time() + 30
while True:
    try:
        if b'selfheal_federation_up{program="proxy"} 1' in get(sock, "/metrics"):
            break
    except (FileNotFoundError, ConnectionRefusedError, SystemExit):
        pass
    if time.time() > deadline:
        p.kill()
        raise SystemExit("the shipped stack's scrape never held the proxy's page")
    time.sleep(0.05)
times = []
for _ in range(SCRAPES // 4):
    t0 = time.perf_counter()
    body = get(sock, "/metrics")
    times.append((time.perf_counter() - t0) * 1000)
print(f"shipped stack (3 programs + the proxy's page federated over TCP), {len(times)} scrapes: "
      f"p50 {statistics.median(times):.2f} ms  p99 {pct(times, 99):.2f} ms  ({len(body)} bytes)")
stop(p)
