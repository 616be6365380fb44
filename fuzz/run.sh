#!/usr/bin/env bash
# Runs every fuzz target for a while; fails if any of them crashes.
#
#   fuzz/run.sh [seconds]        # default 30 s per target
#
# Environment:
#   SANITIZER=address|none       # default address (ASan); `none` if ASan does not build here
#   TARGETS="config events"      # a subset of the targets
#   FUZZ_ARGS="-runs=10000000"   # extra libFuzzer flags
#   FUZZ_BUILD_ARGS="--codegen-units 16"   # extra `cargo fuzz build` / `run` flags
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). It uses nightly-only rustc flags: on a stable
# toolchain they are allowed through RUSTC_BOOTSTRAP=1, set below.
#
# Working corpora go to fuzz/corpus/<target> (seeded from fuzz/seeds/<target>), crashes to
# fuzz/artifacts/<target>/, each target's libFuzzer output to fuzz/logs/<target>.log.
# fuzz/dicts/<target>.dict, when present, is passed as the libFuzzer dictionary.
set -uo pipefail

seconds="${1:-30}"
case "$seconds" in
  '' | *[!0-9]*) echo "usage: $0 [seconds]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")" || exit 2
export RUSTC_BOOTSTRAP=1
sanitizer="${SANITIZER:-address}"
read -r -a targets <<< "${TARGETS:-route_selection proxy_result sigv4_header config mgmt_path mgmt_request events authorizer}"
read -r -a extra <<< "${FUZZ_ARGS:-}"
read -r -a build_extra <<< "${FUZZ_BUILD_ARGS:-}"

# Release with debug assertions, so integer overflow and debug_assert! count as crashes.
build_flags=(--sanitizer "$sanitizer" --debug-assertions "${build_extra[@]}")

if ! cargo fuzz build "${build_flags[@]}"; then
  echo "run.sh: build failed" >&2
  exit 2
fi

mkdir -p logs
failed=()
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "seeds/$target"
  log="logs/$target.log"
  dict=()
  if [ -f "dicts/$target.dict" ]; then dict=(-dict="dicts/$target.dict"); fi
  echo "== $target: ${seconds}s"
  # -timeout: an input taking over 10 s is a hang; -rss_limit_mb: over 2 GiB is a crash.
  cargo fuzz run "${build_flags[@]}" "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    "${dict[@]}" "${extra[@]}" > "$log" 2>&1
  status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  echo "   executions: ${runs:-?}  exec/s: ${speed:-?}  exit: $status"
  if [ "$status" -ne 0 ]; then
    failed+=("$target")
    grep -E "panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer|SUMMARY|Test unit written to" "$log" | head -n 8 | sed 's/^/   /'
  fi
done

if [ "${#failed[@]}" -ne 0 ]; then
  echo "run.sh: crash in: ${failed[*]} (see fuzz/logs/ and fuzz/artifacts/)" >&2
  exit 1
fi
echo "run.sh: no crash"
