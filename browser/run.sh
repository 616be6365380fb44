#!/usr/bin/env bash
# Runs the browser tests: Debian's headless Chromium, driven by playwright-core, against the wsgate
# release binary (or $WSGATE_BIN): wss with a JWT in the subprotocol, web pages of other sites
# attacking the unauthenticated management API, and the web console under each management auth.
#   browser/run.sh
# Installs what is missing (Debian's chromium, `npm ci` here); builds nothing: build the gateway
# first with `cargo build --release -p wsgate`. No browser is downloaded by npm (playwright-core
# has none). Exits non-zero when a test fails or a prerequisite is missing.
#   WSGATE_BIN    the gateway (default: target/release/wsgate)
#   CHROMIUM_BIN  the browser (default: /usr/bin/chromium)
#   CI=true       a chromium still missing after the install attempt is a failure (it is one anyway;
#                 CI only makes the message louder and skips nothing)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
export WSGATE_BIN="${WSGATE_BIN:-$repo/target/release/wsgate}"
export CHROMIUM_BIN="${CHROMIUM_BIN:-/usr/bin/chromium}"

die() { echo "browser/run.sh: $*" >&2; exit 1; }

[ -x "$WSGATE_BIN" ] || die "no wsgate binary at $WSGATE_BIN: run \`cargo build --release -p wsgate\` or set WSGATE_BIN"
command -v node >/dev/null || die "node (>= 20) is needed"
command -v npm >/dev/null || die "npm is needed"
command -v openssl >/dev/null || die "the openssl CLI is needed (the test makes its certificate with it)"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
    || die "node >= 20 is needed for its test runner, found $(node --version)"

if [ ! -x "$CHROMIUM_BIN" ]; then
    if [ "$CHROMIUM_BIN" = /usr/bin/chromium ] && command -v apt-get >/dev/null; then
        sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        echo "browser/run.sh: installing Debian's chromium" >&2
        $sudo apt-get update -qq || true
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null || true
    fi
    if [ ! -x "$CHROMIUM_BIN" ]; then
        if [ "${CI:-}" = "true" ]; then
            echo "::error::browser/run.sh: no chromium at $CHROMIUM_BIN (CI=true: the browser tests must run, they are not skipped)" >&2
        fi
        die "no chromium at $CHROMIUM_BIN (apt-get install chromium, or set CHROMIUM_BIN)"
    fi
fi

cd "$here"
want="$(node -p 'require("./package.json").devDependencies["playwright-core"]')"
have="$(node -p 'try { require("./node_modules/playwright-core/package.json").version } catch { "" }')"
if [ "$want" != "$have" ]; then
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
fi

# Bounded: 60 s per test, 90 s for everything.
exec timeout --kill-after=10 90 node --test --test-timeout=60000 "$here"/*.test.mjs
