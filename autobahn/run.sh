#!/usr/bin/env bash
# Runs the Autobahn WebSocket testsuite (fuzzingclient, cases 1-10) against wsgate on the echo
# config in this folder, and writes a summary. Exits non-zero when a case FAILED.
#
#   autobahn/run.sh                   # whole run; summary in autobahn/reports/servers/SUMMARY.md
#   AUTOBAHN_SUMMARY=autobahn/SUMMARY.md autobahn/run.sh   # refresh the committed summary
#   AUTOBAHN_CASES='["1.*","2.*"]' autobahn/run.sh   # a subset (JSON list of case patterns)
#
# Environment:
#   WSGATE_BIN        gateway binary to test (default: target/release/wsgate, built when missing
#                     or older than the sources of crates/wsgate and crates/wsgate-core)
#   WSGATE_REBUILD=1  run `cargo build --release` even when the binary looks up to date
#   PY27              Python 2.7 for the testsuite (default: pyenv's 2.7.18)
#   PY3               Python 3 for the summary (default: python3)
#   AUTOBAHN_CASES    JSON list of case patterns (default: all of 1 through 10)
#   AUTOBAHN_EXCLUDE  JSON list of case patterns to leave out (default: none)
#   AUTOBAHN_TIMEOUT  seconds the whole wstest run may take (default: 1800)
#   WSGATE_LOG        the gateway's log filter (default: info,wsgate=debug), logged to reports/wsgate.log
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
DEPS="$HERE/.deps"
REPORTS="$HERE/reports"
OUTDIR="$REPORTS/servers"
AUTOBAHN_VERSION="25.10.1"

PY27="${PY27:-}"
if [[ -z "$PY27" ]]; then
    if command -v pyenv >/dev/null 2>&1; then
        PY27="$(pyenv root)/versions/2.7.18/bin/python"
    else
        PY27="python2.7"
    fi
fi
PY3="${PY3:-python3}"
# Cases 1-7, 9 and 10 are the protocol cases (there is no 8; 12 and 13 are permessage-deflate).
CASES="${AUTOBAHN_CASES:-[\"1.*\",\"2.*\",\"3.*\",\"4.*\",\"5.*\",\"6.*\",\"7.*\",\"9.*\",\"10.*\"]}"
EXCLUDE="${AUTOBAHN_EXCLUDE:-[]}"
WSTEST_TIMEOUT="${AUTOBAHN_TIMEOUT:-1800}"

log() { printf '[autobahn] %s\n' "$*" >&2; }

# Imports from .deps through site.addsitedir, so that the *-nspkg.pth files of namespace packages
# (zope.interface) are read; a plain PYTHONPATH does not read them.
py27_deps() {
    "$PY27" -c "import site, sys; site.addsitedir(sys.argv[1]); sys.argv = sys.argv[1:]; $1" "$DEPS" "${@:2}"
}

# 1. The testsuite, installed once into .deps.
if ! [[ -x "$PY27" ]] && ! command -v "$PY27" >/dev/null 2>&1; then
    log "Python 2.7 not found at $PY27 (set PY27)"
    exit 2
fi
if ! py27_deps "import autobahntestsuite.wstest" >/dev/null 2>&1; then
    log "installing autobahntestsuite==$AUTOBAHN_VERSION into $DEPS"
    rm -rf "$DEPS.tmp"
    timeout 600 "$PY27" -m pip install --disable-pip-version-check --no-warn-script-location \
        --target "$DEPS.tmp" "autobahntestsuite==$AUTOBAHN_VERSION" >&2
    rm -rf "$DEPS"
    mv "$DEPS.tmp" "$DEPS"
    py27_deps "import autobahntestsuite.wstest" >/dev/null
fi

# 2. The gateway.
# Built when missing, when forced, or when a source of the gateway is newer than the binary (a
# stale binary would test old code under a new commit id).
BIN="${WSGATE_BIN:-$ROOT/target/release/wsgate}"
if [[ -z "${WSGATE_BIN:-}" ]]; then
    STALE=""
    if [[ -x "$BIN" ]]; then
        STALE="$(cd "$ROOT" && find crates/wsgate crates/wsgate-core Cargo.toml Cargo.lock \
            -newer "$BIN" -type f -print -quit 2>/dev/null || true)"
    fi
    if [[ ! -x "$BIN" || -n "$STALE" || "${WSGATE_REBUILD:-0}" == 1 ]]; then
        log "building wsgate (release)${STALE:+; $STALE is newer than the binary}"
        (cd "$ROOT" && cargo build --release --bin wsgate >&2)
    fi
fi
[[ -x "$BIN" ]] || { log "no gateway binary at $BIN"; exit 2; }
# What is tested: the commit (and whether the tree had changes) when the run starts.
COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git -C "$ROOT" --no-optional-locks status --porcelain --untracked-files=no -- crates Cargo.toml Cargo.lock 2>/dev/null)" ]]; then
    COMMIT="$COMMIT (+ uncommitted changes under crates/ or Cargo.*)"
fi
BUILT="$(date -u -r "$BIN" '+%Y-%m-%d %H:%M:%S UTC')"
"$BIN" check --config "$HERE/echo.toml" >&2

# 3. Fresh reports.
rm -rf "$OUTDIR"
mkdir -p "$OUTDIR"
rm -f "$REPORTS/wsgate.stdout" "$REPORTS/wsgate.log" "$REPORTS/wstest.log" "$REPORTS/fuzzingclient.json"

WSGATE_PID=""
WSTEST_PID=""
stop_wstest() {
    if [[ -n "$WSTEST_PID" ]] && kill -0 "$WSTEST_PID" 2>/dev/null; then
        log "stopping wstest (timeout pid $WSTEST_PID)"
        # timeout passes the TERM on to wstest, and kills it 10 s later if it is still there.
        kill -TERM "$WSTEST_PID" 2>/dev/null || true
        wait "$WSTEST_PID" 2>/dev/null || true
    fi
    WSTEST_PID=""
}
stop_wsgate() {
    if [[ -n "$WSGATE_PID" ]] && kill -0 "$WSGATE_PID" 2>/dev/null; then
        log "stopping wsgate (pid $WSGATE_PID)"
        kill -TERM "$WSGATE_PID" 2>/dev/null || true
        # shutdown_grace is 10 s; give it a little more, then insist.
        for _ in $(seq 1 150); do
            kill -0 "$WSGATE_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$WSGATE_PID" 2>/dev/null; then
            log "wsgate did not stop on SIGTERM; killing pid $WSGATE_PID"
            kill -KILL "$WSGATE_PID" 2>/dev/null || true
        fi
        wait "$WSGATE_PID" 2>/dev/null || true
    fi
    WSGATE_PID=""
}
trap 'stop_wstest; stop_wsgate' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 4. Start wsgate on a free port and read the port from its one line on stdout.
START=$(date +%s)
NO_COLOR=1 WSGATE_LOG="${WSGATE_LOG:-info,wsgate=debug}" "$BIN" serve --config "$HERE/echo.toml" --listen 127.0.0.1:0 \
    >"$REPORTS/wsgate.stdout" 2>"$REPORTS/wsgate.log" &
WSGATE_PID=$!
URL=""
for _ in $(seq 1 300); do
    URL="$(sed -n 's#^wsgate listening on \(ws://127\.0\.0\.1:[0-9]*/[^ ]*\).*#\1#p' "$REPORTS/wsgate.stdout" | head -n1)"
    [[ -n "$URL" ]] && break
    if ! kill -0 "$WSGATE_PID" 2>/dev/null; then
        log "wsgate exited before listening:"
        cat "$REPORTS/wsgate.log" >&2
        exit 2
    fi
    sleep 0.1
done
[[ -n "$URL" ]] || { log "wsgate printed no listening line within 30 s"; exit 2; }
log "wsgate (pid $WSGATE_PID) listening on $URL"

# 5. The fuzzingclient spec and the run.
"$PY3" - "$REPORTS/fuzzingclient.json" "$OUTDIR" "$URL" "$CASES" "$EXCLUDE" <<'EOF'
import json, sys
path, outdir, url, cases, exclude = sys.argv[1:]
spec = {
    "outdir": outdir,
    # failByDrop false is what fuzzingclient uses anyway ("spec conformance"); written out to be plain.
    "options": {"failByDrop": False},
    "servers": [{"agent": "wsgate", "url": url}],
    "cases": json.loads(cases),
    "exclude-cases": json.loads(exclude),
    "exclude-agent-cases": {},
}
with open(path, "w") as f:
    json.dump(spec, f, indent=2)
EOF
log "running wstest fuzzingclient (log: $REPORTS/wstest.log, timeout ${WSTEST_TIMEOUT}s)"
# In the background and waited for, so that a signal to this script is handled at once (the
# trap then stops wstest and wsgate) rather than after wstest ends.
WSTEST_RC=0
(cd "$REPORTS" && exec timeout --kill-after=10 "$WSTEST_TIMEOUT" "$PY27" -u -c \
    "import site, sys; site.addsitedir(sys.argv[1]); sys.argv = ['wstest'] + sys.argv[2:]; from autobahntestsuite.wstest import run; sys.exit(run())" \
    "$DEPS" -m fuzzingclient -s "$REPORTS/fuzzingclient.json") >"$REPORTS/wstest.log" 2>&1 &
WSTEST_PID=$!
wait "$WSTEST_PID" || WSTEST_RC=$?
WSTEST_PID=""
END=$(date +%s)
stop_wsgate
if [[ "$WSTEST_RC" != 0 ]]; then
    log "wstest exited with $WSTEST_RC (124: timed out); last lines of its log:"
    tail -n 20 "$REPORTS/wstest.log" >&2
fi

# 6. The summary; its exit code is the run's.
SUMMARY_RC=0
# The committed summary is rewritten only when asked (AUTOBAHN_SUMMARY=autobahn/SUMMARY.md);
# test runs write theirs next to the reports, so they leave the work tree clean.
SUMMARY_OUT="${AUTOBAHN_SUMMARY:-$OUTDIR/SUMMARY.md}"
"$PY3" "$HERE/summarize.py" --reports "$OUTDIR" --out "$SUMMARY_OUT" \
    --wall-seconds "$((END - START))" --cases "$CASES" --exclude "$EXCLUDE" \
    --binary "$BIN" --commit "$COMMIT" --built "$BUILT" || SUMMARY_RC=$?
if [[ "$WSTEST_RC" != 0 && "$SUMMARY_RC" == 0 ]]; then
    exit 1
fi
exit "$SUMMARY_RC"
