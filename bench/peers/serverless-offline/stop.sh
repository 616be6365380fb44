#!/usr/bin/env bash
# Stops a serverless-offline started by start.sh: stop.sh <pgid>
# SIGTERM to the whole process group, then SIGKILL after 10 s if anything is left.
set -uo pipefail

pgid=${1:?usage: stop.sh <pgid>}
[[ $pgid =~ ^[0-9]+$ && $pgid -gt 1 ]] || { echo "stop.sh: bad pgid: $pgid" >&2; exit 2; }

kill -TERM -- "-$pgid" 2>/dev/null || exit 0   # already gone
for _ in $(seq 100); do
    kill -0 -- "-$pgid" 2>/dev/null || exit 0
    sleep 0.1
done
echo "stop.sh: group $pgid still alive after 10 s; SIGKILL" >&2
kill -KILL -- "-$pgid" 2>/dev/null || true
