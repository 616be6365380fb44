#!/usr/bin/env bash
# CI's fuzz step: builds every cargo-fuzz target, runs each one briefly from its seeds (and
# whatever corpus a cache brought back), and replays the saved crash reproducers. Exits non-zero
# on any crash, hang (> 10 s), out-of-memory (> 2 GiB) or build failure.
#
#   scripts/fuzz-ci.sh                 # 5 s per target
#   FUZZ_CI_SECONDS=30 scripts/fuzz-ci.sh
#
# Environment:
#   FUZZ_CI_SECONDS=5            # libFuzzer time per target (the whole suite stays under 15 minutes)
#   SANITIZER=none|address       # default none
#   FUZZ_BUILD_ARGS=--dev        # default --dev (unoptimized); "" for run.sh's release build
#   CARGO_TARGET_DIR=...         # where the fuzz build goes (default fuzz/target; cache it)
#
# Why an unoptimized build without AddressSanitizer: the cold build is what CI pays for, and on
# the 2-core development machine (while other builds ran) it took 2 min 56 s this way against
# 7 min 10 s for a release build without ASan and 11 min 43 s for run.sh's default (release,
# ASan); the whole step took 4 min 25 s, 8 min 33 s and 13 min 18 s (fuzz/README.md, "CI").
# Debug assertions and overflow checks stay on, so panics, integer overflow, hangs (> 10 s) and
# OOMs (> 2 GiB) are still caught; ASan would add memory errors in `unsafe` code, which the
# fuzzed crates do not have of their own. A 10 s run is a smoke test (the seeds, the reproducers,
# a few thousand to a few hundred thousand mutations); the real search is the long runs
# (`fuzz/run.sh`, release and ASan by default; fuzz/README.md, "Long runs").
#
# cargo-fuzz itself, when missing, is built from source by `cargo install` (48 s more here, its
# sources already downloaded): a CI job should cache ~/.cargo/bin and ~/.cargo/registry (and
# CARGO_TARGET_DIR, keyed on fuzz/Cargo.lock), or install a prebuilt cargo-fuzz.
#
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2

# cargo-fuzz 0.13.2 builds with rustc 1.95 (stable, through RUSTC_BOOTSTRAP=1, which run.sh sets).
CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version > /dev/null 2>&1; then
  echo "fuzz-ci: installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION" || exit 2
fi

seconds="${FUZZ_CI_SECONDS:-5}"
export SANITIZER="${SANITIZER:-none}"
export FUZZ_BUILD_ARGS="${FUZZ_BUILD_ARGS---dev}"
export RUSTC_BOOTSTRAP=1
read -r -a build_extra <<< "${FUZZ_BUILD_ARGS:-}"
started=$(date +%s)
status=0

echo "fuzz-ci: $seconds s per target, sanitizer $SANITIZER, build flags: ${FUZZ_BUILD_ARGS:-(release)}"
fuzz/run.sh "$seconds" || status=$?

# The reproducers of crashes already fixed must stay fixed: each file runs once. The unoptimized
# build is 10 to 20 times slower than release, where the slowest of them takes about a second:
# (28 s unoptimized). 120 s here still catches a hang.
if [ "$status" -ne 2 ]; then
  for dir in fuzz/repro/*/; do
    target=$(basename "$dir")
    files=("$dir"*)
    [ -e "${files[0]}" ] || continue
    echo "== replay fuzz/repro/$target/ (${#files[@]} inputs)"
    log="fuzz/logs/repro-$target.log"
    if ! (cd fuzz && cargo fuzz run --sanitizer "$SANITIZER" --debug-assertions "${build_extra[@]}" "$target" \
      "${files[@]#fuzz/}" -- -timeout=120 -rss_limit_mb=2048 > "../$log" 2>&1); then
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
