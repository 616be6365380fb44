#!/usr/bin/env bash
# Runs every test of the project: Rust unit and end-to-end tests, then the Python compat suite
# (boto3, websockets, AWS CLI; Redis for the cluster-mode tests) against the release binary.
# Installs what it needs itself.
#   scripts/test.sh
# CI (.ci/run) calls exactly this.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check and cargo clippy -D warnings"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "layers: no file of crates/wsgate/src or crates/wsgate-core/src imports one that imports it back"
python3 scripts/check-layers.py crates/wsgate/src crates/wsgate-core/src

step "cargo build --release (the binary the compat suite drives)"
cargo build --release --locked --workspace

step "the README's first command resolves to the gateway: cargo run --release -- check"
cargo run --release --locked -- check --config examples/wsgate.toml

step "cargo test (unit tests of the pure core, gateway unit tests, end-to-end tests)"
cargo test --workspace --locked

step "Redis for the cluster-mode compat tests (they start their own servers on free ports)"
# Only installed here, never started: Debian's package may start a system Redis on 6379, which
# no test uses. compat/redis_support.py fails (not skips) on CI when redis-server is missing.
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    sudo=""
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then sudo="sudo"; fi
    $sudo apt-get update
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server redis-tools
fi
redis-server --version

step "compat suite: boto3, websockets and the AWS CLI against target/release/wsgate"
WSGATE_BIN="$PWD/target/release/wsgate" compat/run.sh

step "browser: headless Chromium (playwright-core): wss with a JWT in the subprotocol; cross-site pages against the management API"
WSGATE_BIN="$PWD/target/release/wsgate" browser/run.sh

step "built-in bootstraps (Python and Node) against a fake Lambda Runtime API"
compat/.venv/bin/python -m pytest crates/wsgate/tests/bootstrap -q -p no:cacheprovider -n 2

step "fuzzing: a short run of every cargo-fuzz target and the saved reproducers (fuzz/)"
scripts/fuzz-ci.sh

step "Autobahn testsuite (cases 1-10) against autobahn/echo.toml"
WSGATE_BIN="$PWD/target/release/wsgate" autobahn/run.sh
