"""Shared by the stack benchmarks: free ports, a raw HTTP GET, percentiles, and
the shipped supervisor.toml run on free loopback ports in a temp dir."""
import json, os, re, shutil, signal, socket, subprocess, tempfile, time

BIN = os.environ.get("SELFHEAL_BIN", "target/release/selfheal")


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def get(port, path, rid=None, timeout=10.0):
    """GET on a fresh connection (JSON asked) → (status, headers, body), or
    (None, {}, error) on any failure."""
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
        lines = head.decode("latin1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
        return int(lines[0].split()[1]), headers, body
    except Exception as e:  # noqa: BLE001 - any failure is a failed request here
        return None, {}, str(e).encode()


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] if v else float("nan")


class Stack:
    """The shipped stack; `raise_limits` raises every restart limit (for kill
    loops); `edit` (text → text) changes the copy of supervisor.toml it runs,
    which is also the file `selfheal reload` re-reads."""

    def __init__(self, raise_limits=False, edit=None):
        self.work = tempfile.mkdtemp(prefix="selfheal-bench-")
        cfg = open("supervisor.toml").read()
        if raise_limits:
            cfg = re.sub(r"restart_limit = \{ max = \d+, window = \"60s\" \}",
                         'restart_limit = { max = 100000, window = "1s" }', cfg)
        if edit:
            cfg = edit(cfg)
        open(f"{self.work}/supervisor.toml", "w").write(cfg)
        os.makedirs(f"{self.work}/data")
        self.redis, self.app, self.front = free_port(), free_port(), free_port()
        env = dict(os.environ, SELFHEAL_DATA=f"{self.work}/data", SELFHEAL_RUN=self.work,
                   SELFHEAL_REDIS_PORT=str(self.redis), SELFHEAL_APP_PORT=str(self.app),
                   SELFHEAL_LISTEN=f"127.0.0.1:{self.front}",
                   SELFHEAL_PROXY_METRICS_PORT=str(free_port()))
        self.log = open(f"{self.work}/supervisor.log", "w")
        self.sock = f"{self.work}/admin.sock"
        self.proc = subprocess.Popen([BIN, "--config", f"{self.work}/supervisor.toml"], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def status(self):
        out = subprocess.run([BIN, "status", "--json", "--socket", self.sock], capture_output=True, text=True)
        return json.loads(out.stdout) if out.returncode == 0 else None

    def pid_of(self, name):
        s = self.status() or {}
        return next((p["pid"] for p in s.get("programs", []) if p["name"] == name), None)

    def wait_ready(self, names, timeout=30):
        deadline = time.time() + timeout
        while True:
            s = self.status()
            if s and all(p["ready"] for p in s["programs"] if p["name"] in names):
                return
            if time.time() > deadline:
                raise SystemExit(f"stack not ready in {timeout} s; see {self.log.name}")
            time.sleep(0.05)

    def cli(self, *args):
        """Runs `selfheal ARGS --socket …` → (exit code, stdout + stderr, seconds)."""
        t0 = time.monotonic()
        out = subprocess.run([BIN, *args, "--socket", self.sock], capture_output=True, text=True)
        return out.returncode, out.stdout + out.stderr, time.monotonic() - t0

    def counter(self):
        out = subprocess.run(["redis-cli", "-p", str(self.redis), "GET", "selfheal:visits"],
                             capture_output=True, text=True)
        return int(out.stdout.strip() or 0)

    def close(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.work, ignore_errors=True)
