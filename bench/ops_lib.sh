# Sourced by the benchmarks of a changing stack (zero_downtime_restart.sh,
# reload_unchanged.sh, rolling_restart.sh): the binary, a Python driver run in the
# background and everything it started stopped on exit.
# shellcheck shell=bash

# ops_setup TOOL… : from the repository root, checks the tools; BIN is the
# binary given, or a release build (honours CARGO_TARGET_DIR).
ops_setup() {
  local tool
  cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "bench: missing $tool (make deps / ci/install-deps.sh bench)" >&2; exit 1; }
  done
  if [ -z "${BIN:-}" ]; then
    echo "bench: building release binary" >&2
    cargo build --release --quiet
    BIN="${CARGO_TARGET_DIR:-target}/release/selfheal"
  fi
  BIN=$(realpath "$BIN")
  export SELFHEAL_BIN=$BIN
  DRIVER=
  trap ops_cleanup EXIT
  trap 'exit 130' INT TERM
}

# The driver stops its own supervisors on TERM; whatever it started that is still
# there after it exited (it was killed) is stopped here, by pid.
ops_cleanup() {
  local kids=()
  if [ -n "$DRIVER" ]; then
    mapfile -t kids < <(pgrep -P "$DRIVER" || true)
    kill -TERM "$DRIVER" 2>/dev/null || true
    wait "$DRIVER" 2>/dev/null || true
    for pid in "${kids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  fi
}

# ops_run DRIVER.py ARGS… : runs the driver, waits for it, exits with its code.
ops_run() {
  python3 "$@" &
  DRIVER=$!
  local code=0
  wait "$DRIVER" || code=$?
  DRIVER=
  return "$code"
}
