#!/usr/bin/env bash
# Installs the system packages selfheal's stack and tests need, on Debian/Ubuntu.
# Usage: ci/install-deps.sh [run|test|bench]   (default: test)
set -euo pipefail

want=${1:-test}
packages=(redis-server)                       # the stack itself
case "$want" in
  # fixtures, lint venv, ps, unshare, image stand-ins; chromium + python3-websocket
  # (websocket-client) drive the status page in a real browser (tests/browser/page_test.py);
  # the Prometheus text parser of the /metrics tests (PyPI's prometheus-client as Debian
  # packages it for /usr/bin/python3, which is externally managed: a bare `pip install`
  # is refused there)
  test) packages+=(python3 python3-venv python3-prometheus-client procps util-linux debootstrap chromium python3-websocket) ;;
  bench) packages+=(python3 procps util-linux nginx-light wrk gcc tini dumb-init) ;;  # tini, dumb-init: bench/init_vs_tini.sh
  run) ;;
  *) echo "usage: $0 [run|test|bench]" >&2; exit 64 ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
if ! command -v apt-get >/dev/null; then
  echo "error: apt-get not found; install these packages yourself: ${missing[*]}" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then sudo=(sudo); else
    echo "error: not root and no sudo; as root run: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq || { echo "error: apt-get update failed (network?)" >&2; exit 1; }
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
  || { echo "error: apt-get install ${missing[*]} failed" >&2; exit 1; }
# Debian starts a system redis-server on :6379 when installed; the stack runs its own.
if [ -d /run/systemd/system ] && systemctl is-active --quiet redis-server 2>/dev/null; then
  "${sudo[@]}" systemctl disable --now redis-server >/dev/null 2>&1 || true
fi
