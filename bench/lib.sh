# bench/lib.sh - what the benchmark recipes share: sourced, not run.
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   bench_init cache.sh              # name for messages; sets root, build
#   bench_build bench_cache          # Release build of a target; sets bin
#   bench_pin                        # server_cpu / client_cpu arrays
#   bench_server [redis-server args] # throwaway server; sets port
#   bench_banner                     # one line: server version, CPUs
#
# The server listens on a free loopback port with no persistence, in its
# own temporary directory ($tmp), and is stopped (and $tmp removed) when
# the script exits. BUILD_DIR (default build-bench) is where targets are
# built.

bench_init() {
    bench_name=$1
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    build=${BUILD_DIR:-$root/build-bench}
    tmp=$(mktemp -d)
    server_pid=""
    server_cpu=() client_cpu=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM HUP
    for tool in redis-server redis-cli cmake; do
        command -v "$tool" >/dev/null || bench_die "$tool not found"
    done
}

bench_die() {
    echo "$bench_name: $*" >&2
    exit 1
}

bench_cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}

# bench_build target [hint]: build it (Release) and set bin to it.
bench_build() {
    if [ ! -f "$build/CMakeCache.txt" ]; then
        cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
            -DAREDIS_BUILD_TESTS=OFF -DAREDIS_BUILD_EXAMPLES=OFF >/dev/null
    fi
    cmake --build "$build" --target "$1" -j "$(nproc)" >/dev/null
    bin=$build/bench/$1
    [ -x "$bin" ] || bench_die "$bin was not built${2:+ ($2)}"
}

# Server on CPU 0 and client on CPU 1 when the machine has two.
bench_pin() {
    if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
        server_cpu=(taskset -c 0)
        client_cpu=(taskset -c 1)
    fi
}

bench_port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# bench_server [args...]: start redis-server (nice 10, on server_cpu) and
# wait until it answers PING; sets port and server_pid.
bench_server() {
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        port=$((20000 + RANDOM % 20000))
        bench_port_free "$port" || continue
        nice -n 10 "${server_cpu[@]}" redis-server --port "$port" \
            --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" \
            --logfile "$tmp/redis-$port.log" --daemonize no "$@" &
        server_pid=$!
        for _ in $(seq 50); do
            [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && return 0
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    done
    bench_die "could not start redis-server"
}

bench_banner() {
    echo "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') on" \
        "127.0.0.1:$port; $(nproc) CPUs${server_cpu:+, server on CPU 0, client on CPU 1}"
}
