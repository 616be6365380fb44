#!/usr/bin/env bash
# Starts serverless-offline (serverless 3 + serverless-offline 13, in-process handlers) as a
# wsgate benchmark peer.
#
#   start.sh <ws_port>
#
# WebSockets at ws://127.0.0.1:<ws_port>/ (any path is accepted), management API at
# http://127.0.0.1:<ws_port>/@connections/{id}. The Lambda invoke endpoint listens on
# SLS_LAMBDA_PORT (default: a free port); SLS_HTTP_PORT (default: a free port) is not opened
# (no http events) but kept off serverless-offline's default 3000.
#
# Prints exactly two lines on stdout, then exits leaving the server running:
#   PID <pid of the node process that holds the sockets and runs the handlers>
#   PGID <process group to give to stop.sh>
# Logs go to $SLS_PEER_LOG (default: a file in a fresh temp dir, named on stderr).
# SLS_PEER_START_TIMEOUT bounds the wait for the port (seconds, default 60).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ws_port=${1:?usage: start.sh <ws_port>}
[[ $ws_port =~ ^[0-9]+$ ]] || { echo "start.sh: bad port: $ws_port" >&2; exit 2; }
timeout_s=${SLS_PEER_START_TIMEOUT:-60}

cd "$here"
if [[ ! -x node_modules/.bin/serverless ]]; then
    echo "start.sh: installing node_modules (npm ci)" >&2
    npm ci --no-audit --no-fund --loglevel=error >&2
fi

# Nothing may leave the machine: no telemetry, no notifications/update checks, no dashboard,
# no AWS (dummy credentials, never used by `offline`).
export SLS_WS_PORT=$ws_port
# The other two ports default to free ones picked by the kernel (ws_port + n could be taken,
# or above 65535). httpPort is never opened (no http events) but must not be the default 3000.
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
export SLS_HTTP_PORT=${SLS_HTTP_PORT:-$(free_port)}
export SLS_LAMBDA_PORT=${SLS_LAMBDA_PORT:-$(free_port)}
export SLS_TELEMETRY_DISABLED=1 SLS_TRACKING_DISABLED=1 SLS_NOTIFICATIONS_MODE=off
export SLS_DISABLE_AUTO_UPDATE=1 SLS_DEPRECATION_DISABLE='*' SLS_INTERACTIVE_SETUP_DISABLE=1
export SLS_GEO_LOCATION=no-cn CI=1 NO_COLOR=1 FORCE_COLOR=0
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-AKIDLOCALBENCH} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-local}
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
# serverless logs one "notice" line per handler invocation; SLS_LOG_LEVEL=warning silences them
# (the default here is serverless' own default, notice).
export SLS_LOG_LEVEL=${SLS_LOG_LEVEL:-notice}

# A port already in use would make the readiness probe below succeed against someone else.
for port in "$SLS_WS_PORT" "$SLS_LAMBDA_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "start.sh: 127.0.0.1:$port is already in use" >&2
        exit 1
    fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sls-peer.XXXXXX")
log=${SLS_PEER_LOG:-$tmp/serverless-offline.log}
echo "start.sh: log in $log" >&2

# serverless keeps a schema cache and state under $HOME/.serverless and would read ~/.aws:
# give it a HOME of its own inside this folder (git-ignored).
mkdir -p "$here/.home"

# Its own session, hence its own process group: the session leader writes its PID (= PGID)
# and becomes node. (setsid forks when the caller is already a group leader, so $! would not
# always be that PID.)
HOME="$here/.home" setsid bash -c 'echo $$ >"$0"; exec node node_modules/serverless/bin/serverless.js offline start' \
    "$tmp/pgid" </dev/null >"$log" 2>&1 &
for _ in $(seq 50); do [[ -s $tmp/pgid ]] && break; sleep 0.1; done
leader=$(cat "$tmp/pgid" 2>/dev/null || true)
[[ -n $leader ]] || { echo "start.sh: serverless did not start" >&2; exit 1; }
pgid=$leader

# Bounded wait until the WebSocket port accepts connections.
deadline=$((SECONDS + timeout_s))
until (exec 3<>"/dev/tcp/127.0.0.1/$ws_port") 2>/dev/null; do
    if ! kill -0 "$leader" 2>/dev/null; then
        echo "start.sh: serverless exited before listening; last log lines:" >&2
        tail -n 30 "$log" >&2
        exit 1
    fi
    if ((SECONDS >= deadline)); then
        echo "start.sh: port $ws_port not open after ${timeout_s}s; stopping" >&2
        tail -n 30 "$log" >&2
        kill -TERM -- "-$pgid" 2>/dev/null || true
        exit 1
    fi
    sleep 0.1
done

# The process that holds the listening socket: the inode of 127.0.0.1:<port> in LISTEN state
# (st 0A) from /proc/net/tcp, then the member of our process group with that socket open.
port_hex=$(printf '%04X' "$ws_port")
inode=$(awk -v p=":$port_hex" '$2 ~ p"$" && $4 == "0A" { print $10; exit }' /proc/net/tcp)
pid=
if [[ -n $inode ]]; then
    for candidate in $(ps -o pid= -g "$pgid" 2>/dev/null || true); do
        if ls -l "/proc/$candidate/fd" 2>/dev/null | grep -q "socket:\[$inode\]"; then
            pid=$candidate
            break
        fi
    done
fi
if [[ -z $pid ]]; then
    echo "start.sh: could not find the listening process; using the group leader $leader" >&2
    pid=$leader
fi

echo "PID $pid"
echo "PGID $pgid"
