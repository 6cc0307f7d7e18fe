# Sourced by the bench scripts: tool checks, the release build, a temp dir and the
# processes started in it cleaned up on exit, free loopback ports.
# shellcheck shell=bash
# shellcheck disable=SC2034 # BIN and WORK are for the sourcing script

# bench_require TOOL… : from the repository root, checks the tools, builds release.
bench_require() {
  local tool
  cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "missing: $tool (make deps / ci/install-deps.sh bench)" >&2; exit 1; }
  done
  cargo build --release --quiet
  BIN=${CARGO_TARGET_DIR:-target}/release/selfheal
}

# bench_setup NAME TOOL… : bench_require, plus a temp dir WORK and the processes
# tracked in it cleaned up on exit.
bench_setup() {
  local name=$1
  shift
  bench_require "$@"
  WORK=$(mktemp -d -t "selfheal-bench-$name.XXXXXX")
  PIDS=()
  trap bench_cleanup EXIT INT TERM
}

# Remember a background process to stop at exit: bench_track $!
bench_track() { PIDS+=("$1"); }

bench_cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
