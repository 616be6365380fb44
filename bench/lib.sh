# Helpers shared by the bench scripts (sourced, not run). The caller keeps the PIDs of what it
# started in its array `pids` and ends them in its EXIT trap.

# The folder of the release binaries: $CARGO_TARGET_DIR/release if set, else target/release.
release_dir() {
    local dir=${CARGO_TARGET_DIR:-target}
    case "$dir" in /*) ;; *) dir=$PWD/$dir ;; esac
    echo "$dir/release"
}

# A free TCP port on 127.0.0.1 (free when asked; the caller binds it right after).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Whether PID still runs (a child that ended is a zombie until waited for).
running() {
    local state
    state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# Ends every process in `pids`, the last started first (cluster nodes before their Redis, so that
# they leave the cluster cleanly): SIGTERM, then SIGKILL after 10 s.
stop_pids() {
    local i p
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        p=${pids[i]}
        kill "$p" 2>/dev/null || true
        for _ in $(seq 1 100); do running "$p" || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    pids=()
}

# rcli ARGS...: redis-cli against the Redis start_redis started.
rcli() { redis-cli -h 127.0.0.1 -p "$redis_port" "$@"; }

# start_redis LOG: one redis-server on a free port of 127.0.0.1, nothing written to disk, added to
# `pids`; sets $redis_port and $redis_pid.
start_redis() {
    local log=$1
    redis_port=$(free_port)
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no > "$log" 2>&1 &
    redis_pid=$!
    pids+=("$redis_pid")
    for _ in $(seq 1 100); do
        [ "$(rcli ping 2>/dev/null)" = PONG ] && return 0
        sleep 0.1
    done
    echo "redis-server does not answer on $redis_port" >&2
    cat "$log" >&2
    return 1
}

# start_listener LOG COMMAND... : starts a process that prints "... listening on ADDR", adds it to
# `pids`; sets $addr (HOST:PORT) and $pid.
start_listener() {
    local log=$1; shift
    # Emptied here, not by the child's redirection: that may come after the first look below,
    # which would then read the address of an earlier process that wrote the same log.
    : > "$log"
    "$@" >> "$log" 2> "$log.err" &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 1 100); do
        addr=$(grep -o 'listening on [^ ]*' "$log" 2>/dev/null | head -1 | sed 's/listening on //; s#ws://##; s#/.*##') || true
        [ -n "$addr" ] && return 0
        sleep 0.1
    done
    echo "no listening line from $*" >&2
    cat "$log.err" >&2
    return 1
}

# The lines of machine.txt every run starts with.
machine_lines() {
    echo "machine:   $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB"
    echo "kernel:    $(uname -sr)"
    echo "rustc:     $(rustc --version)"
    echo "wsgate:    $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
}

# settle PID... : waits (at most 30 s) until none of the processes used CPU for a whole second,
# so that a server still starting (a Node process loading its modules after it listens) does not
# share the cores with the first scenario.
settle() {
    local last now p ticks
    last=""
    for _ in $(seq 1 30); do
        now=""
        for p in "$@"; do
            ticks=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo gone)
            now="$now $ticks"
        done
        if [ "$now" = "$last" ]; then return 0; fi
        last=$now
        sleep 1
    done
}
