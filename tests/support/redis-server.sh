#!/usr/bin/env bash
# tests/support/redis-server.sh - throwaway redis-server instances for tests.
#
#   redis-server.sh start NAME [--tls] [EXTRA_REDIS_SERVER_ARGS...]
#   redis-server.sh stop NAME
#   redis-server.sh status NAME     (prints the state file; 0 if it runs)
#
# A server listens on 127.0.0.1 only, on a random free port, and on a unix
# socket in its own temporary directory; nothing is persisted. Its state is
# written to $AREDIS_TEST_STATE_DIR/NAME.state as KEY=VALUE lines (name, host,
# port, pid, unixsocket, dir, log) that tests/support/testenv.c reads. CTest
# runs `start` and `stop` as fixture tests (see tests/CMakeLists.txt).
#
# EXTRA arguments are appended to redis-server's command line, so they win
# over the defaults. "{port}" and "{dir}" inside them are replaced by the
# chosen port and the server's directory (for example --tls-port {port}).
#
# Several named servers may run at once. Concurrent starts are safe: a port
# taken by someone else makes redis-server exit with "Address already in use"
# and another port is tried; readiness is checked on the server's own unix
# socket, so no other process can pass for it.
#
# No server outlives its owner: a watchdog stops it when the owner process
# (the caller, e.g. ctest; AREDIS_TEST_OWNER_PID, 0 = none) has gone, or after
# AREDIS_TEST_SERVER_TTL seconds. A leftover from an earlier run with the same
# state file is stopped by the next `start`.
#
# Environment: AREDIS_TEST_STATE_DIR (default ./test-servers),
# AREDIS_TEST_PORT_MIN/MAX (7000-7999), AREDIS_TEST_START_TIMEOUT (s, 20),
# AREDIS_TEST_SERVER_TTL (s, 3600), AREDIS_TEST_KEEP=1 (keep the directory),
# REDIS_SERVER / REDIS_CLI (the binaries).
set -euo pipefail

state_dir=${AREDIS_TEST_STATE_DIR:-$PWD/test-servers}
port_min=${AREDIS_TEST_PORT_MIN:-7000}
port_max=${AREDIS_TEST_PORT_MAX:-7999}
start_timeout=${AREDIS_TEST_START_TIMEOUT:-20}
ttl=${AREDIS_TEST_SERVER_TTL:-3600}
redis_server=${REDIS_SERVER:-redis-server}
redis_cli=${REDIS_CLI:-redis-cli}

log() { echo "redis-server.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now_ms() { local t; t=$(date +%s%N); echo $((t / 1000000)); }

# The start time of a process (field 22 of /proc/PID/stat) tells it apart
# from a later process that reuses its pid.
proc_start() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  # shellcheck disable=SC2086 # split the fields on purpose
  set -- $s
  echo "${20}"
}

# alive PID START: that very process runs. A zombie counts as dead: an
# orphaned server is reaped by init only later, or never in a container.
alive() {
  local s
  [ -n "$1" ] && [ "$1" != 0 ] || return 1
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  # shellcheck disable=SC2086
  set -- $s "$2"
  [ "$1" != Z ] && [ "$1" != X ] && [ "${20}" = "${!#}" ]
}

# wait_dead PID START TIMEOUT_MS
wait_dead() {
  local deadline=$(($(now_ms) + $3))
  while alive "$1" "$2"; do
    [ "$(now_ms)" -lt $deadline ] || return 1
    sleep 0.01
  done
}

# stop_pid PID START: TERM (after CONT, a paused server ignores TERM), wait up
# to 5 s, then KILL. Fails only if the process survives even that.
stop_pid() {
  alive "$1" "$2" || return 0
  kill -CONT "$1" 2>/dev/null || true
  kill -TERM "$1" 2>/dev/null || true
  wait_dead "$1" "$2" 5000 && return 0
  log "pid $1 ignored SIGTERM for 5 s, sending SIGKILL"
  kill -KILL "$1" 2>/dev/null || true
  wait_dead "$1" "$2" 2000
}

log_tail() { # DIR: the end of the server's log, for failure reports
  local f
  for f in "$1/redis.log" "$1/stdout.log"; do
    [ -s "$f" ] || continue
    echo "----- last 20 lines of $f" >&2
    tail -n 20 "$f" >&2 || true
  done
}

check_name() {
  [[ $1 =~ ^[A-Za-z0-9_-]+$ ]] || die "bad server name '$1' (letters, digits, _ and - only)"
}

# read_state FILE: sets s_<key> for each KEY=VALUE line (no eval).
read_state() {
  local k v
  s_name="" s_port="" s_pid="" s_pidstart="" s_dir="" s_watchdog="" s_watchdogstart=""
  while IFS='=' read -r k v; do
    case $k in
      name | port | pid | pidstart | dir | watchdog | watchdogstart)
        printf -v "s_$k" '%s' "$v" ;;
    esac
  done <"$1"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Port claims. A port that is free now may belong to a server that a test
# has killed and will restart on the same port; another start must not take
# it meanwhile. So every start claims its port in a directory shared by all
# starts on this machine (mkdir is atomic): the claim names the owner process
# and holds while that process lives. The same owner may start on its own
# claimed port again (a restart); a claim whose owner is gone is taken over.
ports_dir=${AREDIS_TEST_PORTS_DIR:-${TMPDIR:-/tmp}/aredis-test-ports}

# claim_port PORT OWNER OWNER_START: 0 if the port is now ours.
claim_port() {
  local d="$ports_dir/$1" o="" os=""
  mkdir -p "$ports_dir"
  if mkdir "$d" 2>/dev/null; then
    echo "$2 $3" >"$d/owner.tmp" && mv -f "$d/owner.tmp" "$d/owner"
    return 0
  fi
  read -r o os <"$d/owner" 2>/dev/null || return 1 # being written: not ours
  [ "$o" = "$2" ] && [ "$os" = "$3" ] && return 0
  # Owner 0 (none) never holds a claim against others for long: its server
  # is stopped explicitly, and the claim is released then.
  if [ "$o" != 0 ] && alive "$o" "$os"; then return 1; fi
  rm -rf "$d"
  mkdir "$d" 2>/dev/null || return 1
  echo "$2 $3" >"$d/owner.tmp" && mv -f "$d/owner.tmp" "$d/owner"
}

# ready DIR: the server answers PING on its unix socket. The socket lives in
# our private directory, so whoever answers is our server; and it works
# whatever the TCP side is (TLS-only, requirepass: NOAUTH is an answer too).
# Redis opens all its listeners before it serves any, so by then the TCP
# port is ours as well.
ready() {
  local out
  out=$(timeout 2 "$redis_cli" -s "$1/redis.sock" ping 2>/dev/null) || return 1
  [[ $out == PONG || $out == NOAUTH* ]]
}

cmd_stop() {
  local name=$1 file="$state_dir/$1.state" rc=0
  if [ ! -f "$file" ]; then
    log "$name: not running (no $file)"
    return 0
  fi
  read_state "$file"
  # The watchdog first, so it does not race us; then the server.
  if alive "$s_watchdog" "$s_watchdogstart"; then
    kill -TERM "$s_watchdog" 2>/dev/null || true
  fi
  if ! stop_pid "$s_pid" "$s_pidstart"; then
    log "$name: pid $s_pid could not be stopped"
    rc=1
  fi
  if [ $rc != 0 ] || [ -n "${AREDIS_TEST_DUMP_LOG:-}" ]; then log_tail "$s_dir"; fi
  if [ "${AREDIS_TEST_KEEP:-0}" = 1 ]; then
    log "$name: kept $s_dir"
  elif [ -n "$s_dir" ] && [ -d "$s_dir" ]; then
    rm -rf "$s_dir"
  fi
  rm -f "$file"
  [ $rc = 0 ] && log "$name: stopped (port $s_port, pid $s_pid)"
  return $rc
}

# --tls (right after NAME): a TLS-only server. make-certs.sh writes a CA,
# a server and a client certificate into the server's directory (ca.crt,
# server.crt/.key, client.crt/.key); the TLS port is the chosen port and
# plain TCP is off; client certificates are optional (EXTRA arguments such
# as --tls-auth-clients yes override that). The unix socket stays
# plaintext, so the readiness check works unchanged.
tls_setup() { # DIR; sets tls_args
  bash "$(dirname "${BASH_SOURCE[0]}")/make-certs.sh" "$1" >"$1/make-certs.log" 2>&1 ||
    { cat "$1/make-certs.log" >&2; rm -rf "$1"; die "certificate generation failed"; }
  tls_args=(--port 0 --tls-port '{port}' --tls-cert-file '{dir}/server.crt'
            --tls-key-file '{dir}/server.key' --tls-ca-cert-file '{dir}/ca.crt'
            --tls-auth-clients optional)
}

cmd_start() {
  local name=$1 tls=0 tls_args=()
  shift
  if [ "${1:-}" = --tls ]; then tls=1; shift; fi
  local file="$state_dir/$name.state"
  mkdir -p "$state_dir"

  # A state file left by an earlier run (ctest killed, no cleanup): stop
  # that server before starting a new one under the same name.
  if [ -f "$file" ]; then
    log "$name: stopping a leftover server from an earlier run"
    cmd_stop "$name" || true
  fi

  # Who owns us: when that process is gone, so is the server.
  local owner=${AREDIS_TEST_OWNER_PID:-$PPID} owner_start=""
  if [ "$owner" != 0 ]; then
    owner_start=$(proc_start "$owner") || die "owner pid $owner is not running"
  fi

  # A short path: unix socket paths are limited to 107 bytes.
  local dir
  dir=$(mktemp -d "${TMPDIR:-/tmp}/aredis-$name.XXXXXX")
  if [ $tls = 1 ]; then tls_setup "$dir" && set -- "${tls_args[@]}" "$@"; fi

  local attempt port pid pidstart args extra a deadline started=0
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    port=$((port_min + RANDOM % (port_max - port_min + 1)))
    claim_port "$port" "$owner" "${owner_start:-0}" || continue
    if port_in_use "$port"; then continue; fi

    extra=()
    for a in "$@"; do
      a=${a//\{port\}/$port}
      extra+=("${a//\{dir\}/$dir}")
    done
    args=(--port "$port" --bind 127.0.0.1
          --unixsocket "$dir/redis.sock" --unixsocketperm 700
          --dir "$dir" --logfile "$dir/redis.log" --pidfile "$dir/redis.pid"
          --save '' --appendonly no --daemonize no
          --enable-debug-command local --shutdown-timeout 0
          --repl-diskless-sync-delay 0 "${extra[@]}")
    printf '%s\n' "$redis_server" "${args[@]}" >"$dir/cmdline"
    : >"$dir/redis.log"

    # In the background with every standard stream on a file: ctest waits
    # for the test's stdout/stderr to close, so the server must not hold them.
    (cd "$dir" && exec "$redis_server" "${args[@]}" </dev/null >>"$dir/stdout.log" 2>&1) &
    pid=$!
    pidstart=$(proc_start "$pid" || echo 0)

    deadline=$(($(now_ms) + start_timeout * 1000))
    while :; do
      if ready "$dir"; then
        started=1
        break
      fi
      if ! alive "$pid" "$pidstart"; then
        if grep -qs "Address already in use" "$dir/redis.log" "$dir/stdout.log"; then
          log "$name: port $port is taken, trying another ($attempt)"
          break
        fi
        log "$name: redis-server died during start-up (port $port)"
        log_tail "$dir"
        rm -rf "$dir"
        exit 1
      fi
      if [ "$(now_ms)" -ge $deadline ]; then
        log "$name: not ready after ${start_timeout}s (port $port)"
        log_tail "$dir"
        stop_pid "$pid" "$pidstart" || true
        rm -rf "$dir"
        exit 1
      fi
      sleep 0.02
    done
    [ $started = 1 ] && break
  done
  if [ $started != 1 ]; then
    rm -rf "$dir"
    die "$name: no free port found in $port_min-$port_max"
  fi

  # The watchdog: a detached loop that stops the server when its owner
  # exits or the TTL runs out. `stop` kills it first.
  (
    trap - EXIT
    end=$(($(date +%s) + ttl))
    while alive "$pid" "$pidstart" && [ "$(date +%s)" -lt $end ]; do
      if [ "$owner" != 0 ] && ! alive "$owner" "$owner_start"; then break; fi
      sleep 1
    done
    stop_pid "$pid" "$pidstart" || true
    # Tidy up as `stop` would, unless a newer server has taken the name.
    if [ -f "$file" ] && read_state "$file" && [ "$s_pid" = "$pid" ]; then
      [ "${AREDIS_TEST_KEEP:-0}" = 1 ] || rm -rf "$dir"
      rm -f "$file"
    fi
  ) </dev/null >/dev/null 2>&1 &
  local wd=$! wdstart
  wdstart=$(proc_start "$wd" || echo 0)

  # Written then renamed, so a reader never sees half a file.
  cat >"$file.tmp" <<EOF
name=$name
host=127.0.0.1
port=$port
pid=$pid
pidstart=$pidstart
unixsocket=$dir/redis.sock
dir=$dir
log=$dir/redis.log
watchdog=$wd
watchdogstart=$wdstart
EOF
  mv -f "$file.tmp" "$file"
  log "$name: ready on 127.0.0.1:$port (pid $pid, state $file)"
}

cmd_status() {
  local file="$state_dir/$1.state"
  [ -f "$file" ] || { log "$1: not running"; return 1; }
  cat "$file"
  read_state "$file"
  alive "$s_pid" "$s_pidstart"
}

usage() {
  sed -n '2,8p' "${BASH_SOURCE[0]}" >&2
  exit 2
}

[ $# -ge 2 ] || usage
cmd=$1
name=$2
shift 2
check_name "$name"
case $cmd in
  start)
    command -v "$redis_server" >/dev/null ||
      die "$redis_server not found (Debian: apt-get install redis-server redis-tools, or scripts/deps.sh test)"
    command -v "$redis_cli" >/dev/null || die "$redis_cli not found (Debian: apt-get install redis-tools)"
    cmd_start "$name" "$@" ;;
  stop) cmd_stop "$name" ;;
  status) cmd_status "$name" ;;
  *) usage ;;
esac
