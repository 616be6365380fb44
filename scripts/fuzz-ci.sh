#!/usr/bin/env bash
# CI's fuzz step: builds every cargo-fuzz target, runs each one briefly from its seeds (and
# whatever corpus a cache brought back), and replays the saved crash reproducers. Exits non-zero
# on any crash, hang (> 10 s), out-of-memory (> 2 GiB) or build failure.
#
#   scripts/fuzz-ci.sh                 # 10 s per target
#   FUZZ_CI_SECONDS=30 scripts/fuzz-ci.sh
#
# Environment:
#   FUZZ_CI_SECONDS=10           # libFuzzer time per target
#   SANITIZER=none|address       # default none: see below
#   CARGO_TARGET_DIR=...         # where the fuzz build goes (default fuzz/target)
#
# Why SANITIZER=none by default: it is still a release build with debug assertions and overflow
# checks, so panics, integer overflow, hangs and OOMs are caught; what ASan adds is detection of
# memory errors in `unsafe` code, of which the fuzzed crates have none of their own. ASan makes
# the cold build and every execution slower (see fuzz/README.md, "CI"); the long runs and
# `fuzz/run.sh` keep ASan as their default.
#
# Works on a fresh clone: fuzz/corpus/ does not need to exist (run.sh creates it and starts from
# fuzz/seeds/). Crash inputs are written to fuzz/artifacts/<target>/ and libFuzzer's output to
# fuzz/logs/<target>.log; a CI job may upload both when this step fails.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2

# cargo-fuzz 0.13.2 builds with rustc 1.95 (stable, through RUSTC_BOOTSTRAP=1, which run.sh sets).
CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version > /dev/null 2>&1; then
  echo "fuzz-ci: installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION" || exit 2
fi

seconds="${FUZZ_CI_SECONDS:-10}"
export SANITIZER="${SANITIZER:-none}"
export RUSTC_BOOTSTRAP=1
started=$(date +%s)
status=0

echo "fuzz-ci: $seconds s per target, sanitizer $SANITIZER"
fuzz/run.sh "$seconds" || status=$?

# The reproducers of crashes already fixed must stay fixed: each file runs once.
if [ "$status" -ne 2 ]; then
  for dir in fuzz/repro/*/; do
    target=$(basename "$dir")
    files=("$dir"*)
    [ -e "${files[0]}" ] || continue
    echo "== replay fuzz/repro/$target/ (${#files[@]} inputs)"
    log="fuzz/logs/repro-$target.log"
    if ! (cd fuzz && cargo fuzz run --sanitizer "$SANITIZER" --debug-assertions "$target" \
      "${files[@]#fuzz/}" -- -timeout=10 -rss_limit_mb=2048 > "../$log" 2>&1); then
      echo "   reproducer crashes again (see $log)"
      status=1
    fi
  done
fi

if [ "$status" -ne 0 ]; then
  for log in fuzz/logs/*.log; do
    if grep -qE "panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer|deadly signal" "$log"; then
      echo "---- $log (last 60 lines)"
      tail -n 60 "$log"
    fi
  done
fi
echo "fuzz-ci: $(($(date +%s) - started)) s, exit $status"
exit "$status"
