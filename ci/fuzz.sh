#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time; fails on any crash
# (a panic, a failed differential assertion, a timeout or an out-of-memory).
#
# Usage: ci/fuzz.sh [TARGET…]          (default: every target in fuzz/Cargo.toml)
#   FUZZ_SECONDS=60       time per target (default 60)
#   FUZZ_SEED=0           libFuzzer's -seed (0: a random one; CI fixes one so a
#                         run can be replayed)
#   FUZZ_SANITIZER=none   cargo-fuzz --sanitizer (default none: the code under test
#                         is safe Rust, so the findings are panics and assertion
#                         failures; `address` builds slower and runs ~2× slower)
#
# Installs cargo-fuzz if missing. libFuzzer needs nightly flags (-Z); on a
# stable toolchain RUSTC_BOOTSTRAP=1 allows them, as here.
# Each target starts from its seed corpus in fuzz/corpus/TARGET, copied to a
# temporary directory so that a run never rewrites the repository; a crashing
# input is kept in fuzz/artifacts/TARGET/ and printed.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
SANITIZER=${FUZZ_SANITIZER:-none}
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cd fuzz && cargo fuzz list)
fi
[ ${#targets[@]} -gt 0 ] || { echo "no fuzz targets found" >&2; exit 1; }

work=$(mktemp -d -t selfheal-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT

# Debug assertions on: an arithmetic overflow in a parser is a finding too.
FUZZ_FLAGS=(--sanitizer "$SANITIZER" --debug-assertions)
(cd fuzz && cargo fuzz build "${FUZZ_FLAGS[@]}")
failed=()
for t in "${targets[@]}"; do
  mkdir -p "$work/$t"
  [ -d "fuzz/corpus/$t" ] && cp -r "fuzz/corpus/$t/." "$work/$t/"
  echo "== $t: ${SECONDS_PER_TARGET}s from $(find "$work/$t" -type f | wc -l) seeds"
  if (cd fuzz && cargo fuzz run "${FUZZ_FLAGS[@]}" "$t" "$work/$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" -seed="${FUZZ_SEED:-0}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1) >"$work/$t.log" 2>&1; then
    grep -E '^(#[0-9]+ *DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$work/$t.log" || tail -n 3 "$work/$t.log"
    echo "== $t: no crash ($(find "$work/$t" -type f | wc -l) inputs in the corpus after the run)"
  else
    failed+=("$t")
    tail -n 40 "$work/$t.log"
    echo "== $t: CRASH; input kept in fuzz/artifacts/$t/:"
    for a in fuzz/artifacts/"$t"/*; do
      [ -f "$a" ] || continue
      echo "-- $a"; od -c "$a" | head -n 20
    done
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found crashes in: ${failed[*]}" >&2
  exit 1
fi
echo "fuzzing: ${#targets[@]} targets, ${SECONDS_PER_TARGET}s each, no crash"
