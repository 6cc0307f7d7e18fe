#!/usr/bin/env python3
"""Driver of bench/reload_unchanged.sh: a supervisor with PROGRAMS programs
(`sleep infinity` each; every third has a probe, alternately `exec = ["true"]`
and `tcp` to a listener of this driver, 1 s interval), then RUNS reloads with the
config file unchanged, timed two ways: the CLI round trip (`selfheal reload`,
process start included) and the API round trip (`POST /reload` on the admin
socket from this process: read + parse + validate the file, diff, apply, answer).
Checks that every reload answered `unchanged` for every program and that no pid
changed. Prints a Markdown table.

Env: PROGRAMS (100), RUNS (50).
"""
import json, os, shutil, signal, socket, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stacklib import BIN, pct  # noqa: E402

N = int(os.environ.get("PROGRAMS", "100"))
RUNS = int(os.environ.get("RUNS", "50"))


def loadavg():
    return open("/proc/loadavg").read().split()[0]


def tcp_listener():
    """A TCP port that accepts and closes (the tcp probes' target)."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)

    def serve():
        while True:
            try:
                c, _ = srv.accept()
                c.close()
            except OSError:
                return

    threading.Thread(target=serve, daemon=True).start()
    return srv, srv.getsockname()[1]


def config(d, port):
    lines = [f'[supervisor]\nadmin_socket = "{d}/admin.sock"\nshutdown_timeout = "10s"\n']
    for i in range(N):
        lines.append(f'[programs.p{i}]\ncommand = ["sleep", "infinity"]')
        if i % 3 == 0:
            probe = 'exec = ["true"]' if i % 6 == 0 else f'tcp = "127.0.0.1:{port}"'
            lines.append(f'health = {{ {probe}, interval = "1s", timeout = "500ms" }}')
        lines.append("")
    path = f"{d}/supervisor.toml"
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


def post_reload(sock):
    """POST /reload on the admin socket → (status, body, seconds)."""
    t0 = time.monotonic()
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(sock)
        s.sendall(b"POST /reload HTTP/1.1\r\nHost: selfheal\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    took = time.monotonic() - t0
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body, took


def status(sock):
    out = subprocess.run([BIN, "status", "--json", "--socket", sock], capture_output=True, text=True)
    return json.loads(out.stdout) if out.stdout else None


def pids(sock):
    return {p["name"]: p["pid"] for p in status(sock)["programs"]}


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = tempfile.mkdtemp(prefix="selfheal-bench-reload-")
    srv, port = tcp_listener()
    sock = f"{work}/admin.sock"
    log = open(f"{work}/supervisor.log", "w")
    proc = subprocess.Popen([BIN, "--config", config(work, port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            s = status(sock) if os.path.exists(sock) else None
            if s and len(s["programs"]) == N and all(p["pid"] and p["ready"] for p in s["programs"]):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"bench: {N} programs not running and ready; see {log.name}")
            time.sleep(0.1)
        before = pids(sock)
        load_before = loadavg()
        cli, api, wrong = [], [], 0
        for _ in range(RUNS):
            t0 = time.monotonic()
            out = subprocess.run([BIN, "reload", "--socket", sock], capture_output=True, text=True)
            cli.append((time.monotonic() - t0) * 1000)
            if out.returncode != 0 or out.stdout.count(": unchanged") != N:
                wrong += 1
                print(f"bench: reload (CLI) answered {out.returncode}: {out.stdout[:300]}{out.stderr[:300]}",
                      file=sys.stderr)
            code, body, took = post_reload(sock)
            api.append(took * 1000)
            changes = json.loads(body).get("changes", []) if code == 200 else []
            if code != 200 or sum(1 for c in changes if c.get("change") == "unchanged") != N:
                wrong += 1
                print(f"bench: POST /reload answered {code}: {body[:300]!r}", file=sys.stderr)
            time.sleep(0.05)
        load_after = loadavg()
        after = pids(sock)
        changed = sorted(n for n in before if after.get(n) != before[n])
        rss = next((int(l.split()[1]) for l in open(f"/proc/{proc.pid}/status") if l.startswith("VmRSS:")), 0)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        srv.close()
        shutil.rmtree(work, ignore_errors=True)

    print(f"Reload with the config unchanged: {N} programs (`sleep infinity`; {len(range(0, N, 3))} with a "
          f"1 s exec or tcp probe), {RUNS} reloads each way; load average {load_before} before, "
          f"{load_after} after; supervisor RSS after {rss / 1024:.1f} MB\n")
    print("| measure | p50 | p99 | max | target |")
    print("|---|---|---|---|---|")
    for name, xs in (("`selfheal reload` (CLI round trip)", cli), ("`POST /reload` (API round trip: apply)", api)):
        met = lambda v: "met" if v <= 50 else "missed"  # noqa: E731
        print(f"| {name} | {pct(xs, 50):.1f} ms | {pct(xs, 99):.1f} ms | {max(xs):.1f} ms | "
              f"≤ 50 ms: p50 {met(pct(xs, 50))}, max {met(max(xs))} |")
    print()
    print(f"- answers not `unchanged` for all {N}: {wrong} of {2 * RUNS}")
    print(f"- pids changed across the {2 * RUNS} reloads: {len(changed)} of {len(before)}"
          + (f" ({', '.join(changed[:10])})" if changed else ""))
    if wrong or changed:
        sys.exit(1)


if __name__ == "__main__":
    main()
