#!/usr/bin/env bash
# tests/support/redis-sentinel.sh - a throwaway Sentinel set-up for tests.
#
#   redis-sentinel.sh start NAME [--replicas N] [--sentinels N] [--service S]
#                     [--down-after MS] [--failover-timeout MS]
#                     [--sentinel-password PW]
#   redis-sentinel.sh stop NAME
#
# Starts one master, N replicas (default 2) and N sentinels (default 3) on
# 127.0.0.1, each through redis-server.sh (random claimed ports, unix
# sockets, watchdogs: see that script), as NAME-m, NAME-r1.., NAME-s1...
# The sentinels monitor the master as service S (default mymaster) with a
# quorum of 2 (1 with a single sentinel), down-after 1000 ms, failover
# timeout 5000 ms (both can be set), and the fast INFO/hello periods of
# SENTINEL DEBUG (the defaults take 10 s to learn replicas and each other).
# --sentinel-password makes the sentinels require that password (requirepass)
# and use it with each other (sentinel-pass); the data servers have none.
#
# Ready means: every replica's link to the master is up and a write on the
# master reaches every replica (WAIT), and every sentinel knows the master,
# all N replicas and the other sentinels. Then
# $AREDIS_TEST_STATE_DIR/NAME.state is written: host/port/pid of the first
# sentinel (so testenv_server_load("NAME") works), and
#   service=S  master=127.0.0.1:P  replicas=h:p,h:p  sentinels=h:p,h:p,h:p
#   members=NAME-s1 ... NAME-m   (the order stop uses)
#   master_pid=PID  replica_pids=PID,PID  sentinel_pids=PID,PID,PID
#   sentinel_password=PW  (empty without one)
# Tests that fail the master over must use a private set-up, never the
# shared fixture.
#
# `stop` stops the sentinels first (so they start no failover), then the
# replicas, then the master; it also stops the members of a start that
# failed half-way. Environment: as redis-server.sh (AREDIS_TEST_STATE_DIR,
# AREDIS_TEST_OWNER_PID, AREDIS_TEST_START_TIMEOUT...).
set -eEuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
state_dir=${AREDIS_TEST_STATE_DIR:-$PWD/test-servers}
start_timeout=${AREDIS_TEST_START_TIMEOUT:-20}
redis_cli=${REDIS_CLI:-redis-cli}
export AREDIS_TEST_STATE_DIR=$state_dir

log() { echo "redis-sentinel.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now_ms() { local t; t=$(date +%s%N); echo $((t / 1000000)); }

srv() { bash "$here/redis-server.sh" "$@"; }

# state_get FILE KEY: the value of KEY=... in a state file.
state_get() {
  local k v
  while IFS='=' read -r k v; do
    if [ "$k" = "$2" ]; then
      printf '%s\n' "$v"
      return 0
    fi
  done <"$1"
  return 1
}

sentinel_pass=""

# cli MEMBER ARGS...: redis-cli on the member's own unix socket (with the
# sentinels' password for a sentinel).
cli() {
  local sock auth=()
  sock=$(state_get "$state_dir/$1.state" unixsocket) || return 1
  if [[ -n $sentinel_pass && $1 == *-s[0-9]* ]]; then
    auth=(--no-auth-warning -a "$sentinel_pass")
  fi
  shift
  timeout 2 "$redis_cli" "${auth[@]}" -s "$sock" "$@" 2>/dev/null
}

# field TEXT NAME: the value after the line NAME in a flat RESP2 map as
# redis-cli prints it (one item per line).
field() {
  local want=$2 prev="" line
  while IFS= read -r line; do
    line=${line%$'\r'}
    if [ "$prev" = "$want" ]; then
      printf '%s\n' "$line"
      return 0
    fi
    prev=$line
  done <<<"$1"
  return 1
}

# wait_until DESCRIPTION COMMAND...: poll every 50 ms until it succeeds.
wait_until() {
  local what=$1 deadline=$(($(now_ms) + start_timeout * 1000))
  shift
  until "$@"; do
    if [ "$(now_ms)" -ge $deadline ]; then
      log "not ready after ${start_timeout}s: $what"
      return 1
    fi
    sleep 0.05
  done
}

replica_linked() {
  local info
  info=$(cli "$1" info replication) || return 1
  [[ $info == *master_link_status:up* ]]
}

# stream_flows MASTER N: a write on the master reaches its N replicas
# (SET, WAIT, DEL on one connection). A replica reports master_link_status:up
# once it has loaded the master's snapshot, but when its first REPLCONF ACK
# reaches the master before the master has seen its snapshot child exit,
# the master sends it nothing more until the replica's next ACK, up to a
# second later: a write acknowledged in that window is not on the replica,
# and a master killed or paused then loses it in the failover.
stream_flows() {
  local out
  out=$(printf 'SET aredis-setup:ready 1\nWAIT %s 1000\nDEL aredis-setup:ready\n' "$2" |
    cli "$1") || return 1
  [ "$(sed -n 2p <<<"$out")" = "$2" ]
}

sentinel_knows_all() { # MEMBER SERVICE NREPLICAS NSENTINELS
  local out
  out=$(cli "$1" sentinel master "$2") || return 1
  [ "$(field "$out" num-slaves)" = "$3" ] &&
    [ "$(field "$out" num-other-sentinels)" = "$(($4 - 1))" ] &&
    [[ $(field "$out" flags) == master ]]
}

cmd_stop() {
  local name=$1 file="$state_dir/$1.state" members=() m rc=0
  if [ -f "$file" ]; then
    read -r -a members <<<"$(state_get "$file" members || true)"
  else
    # A start that failed half-way: whatever members it left.
    for m in "$state_dir/$name"-s*.state "$state_dir/$name"-r*.state \
             "$state_dir/$name"-m.state; do
      [ -f "$m" ] || continue
      m=${m##*/}
      members+=("${m%.state}")
    done
  fi
  for m in "${members[@]}"; do
    srv stop "$m" || rc=1
  done
  rm -f "$file"
  [ $rc = 0 ] && log "$name: stopped"
  return $rc
}

cmd_start() {
  local name=$1 nrep=2 nsen=3 service=mymaster down_after=1000 fo_timeout=5000
  shift
  while [ $# -gt 0 ]; do
    case $1 in
      --replicas) nrep=$2; shift 2 ;;
      --sentinels) nsen=$2; shift 2 ;;
      --service) service=$2; shift 2 ;;
      --down-after) down_after=$2; shift 2 ;;
      --failover-timeout) fo_timeout=$2; shift 2 ;;
      --sentinel-password) sentinel_pass=$2; shift 2 ;;
      *) die "unknown option '$1'" ;;
    esac
  done
  [[ $nrep =~ ^[0-9]$ && $nsen =~ ^[1-9]$ ]] || die "bad --replicas/--sentinels"
  [[ $down_after =~ ^[0-9]+$ && $fo_timeout =~ ^[0-9]+$ ]] ||
    die "bad --down-after/--failover-timeout"
  [[ $sentinel_pass =~ ^[A-Za-z0-9_.-]*$ ]] || die "bad --sentinel-password"
  [[ $service =~ ^[A-Za-z0-9_.-]+$ ]] || die "bad service name '$service'"
  mkdir -p "$state_dir"
  if [ -f "$state_dir/$name.state" ]; then cmd_stop "$name" || true; fi
  # Every member belongs to our caller (ctest), not to this script.
  export AREDIS_TEST_OWNER_PID=${AREDIS_TEST_OWNER_PID:-$PPID}
  trap 'log "$name: start failed, stopping what started"; cmd_stop "$name" || true' ERR

  local i mport members=() replicas="" sentinels="" p
  srv start "$name-m" >/dev/null
  mport=$(state_get "$state_dir/$name-m.state" port)
  for ((i = 1; i <= nrep; i++)); do
    srv start "$name-r$i" --replicaof 127.0.0.1 "$mport" >/dev/null
    members=("$name-r$i" "${members[@]}")
  done
  for ((i = 1; i <= nrep; i++)); do
    wait_until "$name-r$i linked to the master" replica_linked "$name-r$i"
    p=$(state_get "$state_dir/$name-r$i.state" port)
    replicas+="${replicas:+,}127.0.0.1:$p"
  done
  if [ "$nrep" -gt 0 ]; then
    wait_until "the master's writes reach its $nrep replicas" \
      stream_flows "$name-m" "$nrep"
  fi

  local quorum=2
  [ "$nsen" -ge 2 ] || quorum=1
  for ((i = 1; i <= nsen; i++)); do
    if [ -n "$sentinel_pass" ]; then
      srv start "$name-s$i" --sentinel --requirepass "$sentinel_pass" >/dev/null
    else
      srv start "$name-s$i" --sentinel >/dev/null
    fi
    members=("$name-s$i" "${members[@]}")
    p=$(state_get "$state_dir/$name-s$i.state" port)
    sentinels+="${sentinels:+,}127.0.0.1:$p"
    if [ -n "$sentinel_pass" ] &&
       ! [ "$(cli "$name-s$i" sentinel config set sentinel-pass "$sentinel_pass")" = OK ]; then
      log "$name-s$i: setting sentinel-pass failed"
      false
    fi
    if ! [ "$(cli "$name-s$i" sentinel debug info-period 1000 publish-period 500)" = OK ] ||
       ! [ "$(cli "$name-s$i" sentinel monitor "$service" 127.0.0.1 "$mport" $quorum)" = OK ] ||
       ! [ "$(cli "$name-s$i" sentinel set "$service" down-after-milliseconds "$down_after" \
                failover-timeout "$fo_timeout")" = OK ]; then
      log "$name-s$i: configuring the sentinel failed"
      false
    fi
  done
  members+=("$name-m")
  for ((i = 1; i <= nsen; i++)); do
    wait_until "$name-s$i knows $nrep replicas and $((nsen - 1)) sentinels" \
      sentinel_knows_all "$name-s$i" "$service" "$nrep" "$nsen"
  done
  trap - ERR

  local f="$state_dir/$name-s1.state" rpids="" spids=""
  for ((i = 1; i <= nrep; i++)); do
    rpids+="${rpids:+,}$(state_get "$state_dir/$name-r$i.state" pid)"
  done
  for ((i = 1; i <= nsen; i++)); do
    spids+="${spids:+,}$(state_get "$state_dir/$name-s$i.state" pid)"
  done
  cat >"$state_dir/$name.state.tmp" <<EOF
name=$name
host=127.0.0.1
port=$(state_get "$f" port)
pid=$(state_get "$f" pid)
unixsocket=$(state_get "$f" unixsocket)
dir=$(state_get "$f" dir)
log=$(state_get "$f" log)
service=$service
master=127.0.0.1:$mport
replicas=$replicas
sentinels=$sentinels
members=${members[*]}
master_pid=$(state_get "$state_dir/$name-m.state" pid)
replica_pids=$rpids
sentinel_pids=$spids
sentinel_password=$sentinel_pass
EOF
  mv -f "$state_dir/$name.state.tmp" "$state_dir/$name.state"
  log "$name: ready: master 127.0.0.1:$mport, replicas $replicas, sentinels $sentinels ($service)"
}

[ $# -ge 2 ] || { sed -n '2,6p' "${BASH_SOURCE[0]}" >&2; exit 2; }
cmd=$1
name=$2
shift 2
[[ $name =~ ^[A-Za-z0-9_-]+$ ]] || die "bad set-up name '$name'"
case $cmd in
  start) cmd_start "$name" "$@" ;;
  stop) cmd_stop "$name" ;;
  *) die "unknown command '$cmd'" ;;
esac
