#!/usr/bin/env python3
"""Drives the live status page in a real headless Chromium over the DevTools
protocol (tests/integration/ops_page.rs runs it against a real supervisor).

  page_test.py --url URL --expect app,worker --kill app --screenshot OUT.png
               [--expect-text TEXT] [--mode live|polling] [--timeout SECONDS]

1. Starts `chromium --headless=new --remote-debugging-port=0` with a fresh
   profile, reads the port from DevToolsActivePort, opens URL (with a token
   login, `/?token=…`, the page must land on `/` with the token gone from the
   address).
2. Waits until the page lists every program of --expect, and (--mode live, the
   default) its event stream is live.
3. Marks the document, SIGKILLs the pid the page shows for --kill, and waits,
   without reloading, until the page shows a new pid, the restart count one
   higher and (live) an `exited` event of that program.
4. Checks the phone layout (one column at 390 px), saves a screenshot, prints
   one JSON line of what it saw, exits 0. Any failure: a message on stderr and
   exit 1 (2: Chromium or websocket-client is missing). It never skips.
"""

import argparse
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

try:
    import websocket  # websocket-client (Debian: python3-websocket)
except ImportError:
    print("page_test: the Python package websocket-client is missing: "
          "run `make deps` (apt-get install python3-websocket)", file=sys.stderr)
    sys.exit(2)


class Failure(Exception):
    pass


def find_chromium(explicit):
    for name in [explicit, "chromium", "chromium-browser", "google-chrome"]:
        if name and shutil.which(name):
            return shutil.which(name)
    print("page_test: Chromium is missing: run `make deps` (apt-get install chromium)",
          file=sys.stderr)
    sys.exit(2)


class Browser:
    """One headless Chromium and one page target, driven over CDP."""

    def __init__(self, binary, width, height):
        self.profile = tempfile.mkdtemp(prefix="selfheal-chromium-")
        args = [
            binary, "--headless=new", "--remote-debugging-port=0",
            "--user-data-dir=" + self.profile, "--no-first-run",
            "--no-default-browser-check", "--disable-gpu", "--disable-extensions",
            "--disable-background-networking", "--disable-dev-shm-usage",
            "--hide-scrollbars", "--window-size=%d,%d" % (width, height), "about:blank",
        ]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run as root otherwise
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + 30
        lines = []
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Failure("chromium exited with %s: %s" % (
                    self.proc.returncode, self.proc.stderr.read().decode(errors="replace")[-2000:]))
            try:
                with open(port_file) as f:
                    lines = f.read().split()
                if len(lines) >= 2:
                    break
            except FileNotFoundError:
                pass
            time.sleep(0.05)
        else:
            raise Failure("chromium wrote no DevToolsActivePort within 30 s")
        self.ws = websocket.create_connection(
            "ws://127.0.0.1:%s%s" % (lines[0], lines[1]), timeout=30, suppress_origin=True)
        self.next_id = 0
        self.session = None
        self.exceptions = []
        self.console_errors = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]
        for domain in ["Page", "Runtime", "Log"]:
            self.call(domain + ".enable")
        self.viewport(width, height, False)

    def call(self, method, params=None, timeout=30):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while True:
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                reply = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                raise Failure("no answer to %s within %s s" % (method, timeout))
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise Failure("%s: %s" % (method, reply["error"]))
                return reply.get("result", {})
            self.on_event(reply)

    def on_event(self, msg):
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Runtime.exceptionThrown":
            self.exceptions.append(params.get("exceptionDetails", {}).get("text", str(params)))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            self.console_errors.append(params["entry"].get("text", ""))
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.console_errors.append(str(params.get("args")))

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise Failure("evaluate failed: %s" % result["exceptionDetails"])
        return result.get("result", {}).get("value")

    def viewport(self, width, height, mobile):
        self.call("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        with open(path, "wb") as f:
            f.write(base64.b64decode(data["data"]))

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


# What the page shows, read from the DOM (the fields are the data-field cells).
READ = r"""(() => {
  if (!document.body || !document.getElementById('programs')) {
    return {loaded: false, conn: null, marker: window.__pageTestMarker || null, href: location.href,
            rows: [], events: [], error: null, text: '', markup: 0};
  }
  const rows = Array.from(document.querySelectorAll('#programs tr')).map(tr => {
    const f = {name: tr.dataset.program, state: tr.dataset.state};
    tr.querySelectorAll('td[data-field]').forEach(td => { f[td.dataset.field] = td.textContent.trim(); });
    return f;
  });
  const events = Array.from(document.querySelectorAll('#events li[data-seq]')).map(li => ({
    seq: Number(li.dataset.seq), kind: li.dataset.kind, program: li.dataset.program,
    text: li.textContent}));
  const error = document.getElementById('error');
  return {loaded: document.body.dataset.loaded === 'true', conn: document.body.dataset.conn || null,
          marker: window.__pageTestMarker || null, href: location.href, rows, events,
          error: error && !error.hidden ? error.textContent : null,
          text: document.body.innerText,
          markup: document.querySelectorAll('main i, main b, main img, main script').length};
})()"""

PHONE = r"""(() => {
  const head = document.querySelector('thead');
  const row = document.querySelector('#programs tr');
  const cell = row && row.querySelector('td[data-field="pid"]');
  return {thead: getComputedStyle(head).display, row: row ? getComputedStyle(row).display : null,
          rowWidth: row ? row.getBoundingClientRect().width : 0,
          cellTop: cell ? cell.getBoundingClientRect().top : 0,
          nameTop: row ? row.querySelector('td').getBoundingClientRect().top : 0,
          scrollWidth: document.documentElement.scrollWidth, innerWidth: innerWidth};
})()"""


def wait(browser, what, timeout, check):
    """Polls the DOM (every 20 ms) until check(state) is truthy; returns (state, value)."""
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        state = browser.evaluate(READ)
        value = check(state)
        if value:
            return state, value
        time.sleep(0.02)
    raise Failure("timed out after %s s waiting for %s; the page shows:\n%s" % (
        timeout, what, json.dumps(state, indent=1)[:6000]))


def row(state, name):
    return next((r for r in state["rows"] if r["name"] == name), None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--expect", required=True, help="comma-separated program names")
    ap.add_argument("--expect-text", action="append", default=[],
                    help="text the page must show literally (e.g. markup in a reason)")
    ap.add_argument("--kill", required=True, help="the program whose pid to SIGKILL")
    ap.add_argument("--screenshot", required=True)
    ap.add_argument("--mode", choices=["live", "polling"], default="live")
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--chromium")
    args = ap.parse_args()

    browser = Browser(find_chromium(args.chromium), 1100, 760)
    try:
        browser.call("Page.navigate", {"url": args.url})
        names = [n for n in args.expect.split(",") if n]
        state, _ = wait(browser, "the page to list %s (%s)" % (names, args.mode), args.timeout,
                        lambda s: s["loaded"] and all(row(s, n) for n in names)
                        and s["conn"] == args.mode)
        if "token=" in state["href"]:
            raise Failure("the token stayed in the address: %s" % state["href"])
        for text in args.expect_text:
            if text not in state["text"]:
                raise Failure("the page does not show %r literally:\n%s" % (text, state["text"]))
        if state["markup"]:
            raise Failure("data became markup: %d elements" % state["markup"])

        target = row(state, args.kill)
        if not target["pid"].isdigit():
            state, target = wait(browser, "a pid for %s" % args.kill, args.timeout,
                                 lambda s: row(s, args.kill)["pid"].isdigit() and row(s, args.kill))
        old_pid, old_restarts = int(target["pid"]), int(target["restarts"])
        last_seq = max([e["seq"] for e in state["events"]] or [0])
        browser.evaluate("window.__pageTestMarker = 'before-kill'")
        killed_at = time.monotonic()
        os.kill(old_pid, signal.SIGKILL)

        def restarted(s):
            r = row(s, args.kill)
            if s["marker"] != "before-kill":
                raise Failure("the page was reloaded")
            if not r or not r["pid"].isdigit() or int(r["pid"]) == old_pid:
                return None
            if int(r["restarts"]) != old_restarts + 1:
                return None
            exited = [e for e in s["events"] if e["seq"] > last_seq
                      and e["kind"] == "exited" and e["program"] == args.kill]
            if args.mode == "live" and not exited:
                return None
            return {"new_pid": int(r["pid"]), "restarts": int(r["restarts"]),
                    "exited_event": exited[0]["text"] if exited else None}

        state, seen = wait(browser, "the page to show %s restarted" % args.kill, args.timeout,
                           restarted)
        # Kill → restart on the page, within the DOM poll's 20 ms (plus one evaluate).
        seen["shown_after_ms"] = round((time.monotonic() - killed_at) * 1000)
        kinds = [e["kind"] for e in state["events"]]
        if args.mode == "live" and kinds and [e["seq"] for e in state["events"]] != sorted(
                [e["seq"] for e in state["events"]], reverse=True):
            raise Failure("events are not newest first: %s" % kinds)

        browser.screenshot(args.screenshot)

        browser.viewport(390, 844, True)
        phone = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            phone = browser.evaluate(PHONE)
            if phone["innerWidth"] == 390:
                break
            time.sleep(0.1)
        if not (phone["thead"] == "none" and phone["row"] == "block"
                and phone["scrollWidth"] <= 390 and phone["cellTop"] > phone["nameTop"]):
            raise Failure("the phone layout is not one column: %s" % phone)
        if browser.exceptions:
            raise Failure("script exceptions: %s" % browser.exceptions)
        csp = [e for e in browser.console_errors if "Content Security Policy" in e]
        if csp:
            raise Failure("blocked by the page's CSP: %s" % csp)

        print(json.dumps({"ok": True, "mode": state["conn"], "old_pid": old_pid,
                          "old_restarts": old_restarts, **seen, "events": kinds[:20],
                          "console_errors": browser.console_errors}))
        return 0
    except Failure as e:
        print("page_test: FAILED: %s" % e, file=sys.stderr)
        if browser.exceptions:
            print("page_test: script exceptions: %s" % browser.exceptions, file=sys.stderr)
        return 1
    finally:
        browser.close()


if __name__ == "__main__":
    sys.exit(main())
