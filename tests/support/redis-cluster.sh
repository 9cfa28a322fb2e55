#!/usr/bin/env bash
# tests/support/redis-cluster.sh - a throwaway Redis Cluster for tests.
#
#   redis-cluster.sh start NAME [--primaries N] [--replicas R] [--tls] [EXTRA_ARGS...]
#   redis-cluster.sh stop NAME
#   redis-cluster.sh status NAME    (prints the state file; 0 if every node runs)
#
# Starts N primaries (default 3) with R replicas each (default 1), each one a
# server of tests/support/redis-server.sh named NAME-node<i> (primaries
# first), so every node gets a claimed free loopback port, a unix socket,
# a watchdog and a state file of its own. The slots are split evenly over
# the primaries in order, and the cluster is built by hand (SET-CONFIG-EPOCH,
# ADDSLOTSRANGE, MEET, REPLICATE): that is deterministic and needs no
# `redis-cli --cluster create` join polling.
#
# "Ready" is more than cluster_state:ok. Right after that, nodes may still
# disagree (a replica still seen as a primary, a node still in handshake),
# and tests that start then see spurious redirects. So start returns only
# when, on every node:
#   - CLUSTER NODES lists every node, with N primaries and N*R replicas, and
#     no fail, pfail, handshake or noaddr flag;
#   - the slot map (primary id -> slots, replica id -> primary id) is the
#     same as on every other node, and covers all 16384 slots;
#   - cluster_state is ok;
#   - CLUSTER SLOTS lists every node (a replica appears there only once it
#     has replicated something: --repl-ping-replica-period 1 makes that
#     quick);
#   - and every replica reports master_link_status:up.
#
# The state file $AREDIS_TEST_STATE_DIR/NAME.state describes the first
# primary in the format of redis-server.sh (so tests/support/testenv.c reads
# it as a server), plus:
#   nodes=127.0.0.1:P1,...        every node, primaries first
#   primaries=127.0.0.1:P1,...    replicas=127.0.0.1:P4,...
#   node_names=NAME-node0,...     the per-node state files' names
#
# --tls: a TLS cluster. One set of certificates (make-certs.sh, one CA) is
# written to $AREDIS_TEST_STATE_DIR/NAME-certs and shared by every node;
# each node serves TLS only on its port (plain TCP off), and the cluster
# bus and replication use TLS too (tls-cluster, tls-replication; the nodes
# authenticate to each other with the client certificate). The state file
# then also has tls_dir=<that directory> (ca.crt, client.crt/.key).
#
# EXTRA arguments go to every redis-server (as for redis-server.sh; {port}
# and {dir} are replaced). Environment: as redis-server.sh, plus
# AREDIS_TEST_CLUSTER_TIMEOUT (s, 60) for forming the cluster and
# AREDIS_TEST_CLUSTER_NODE_TIMEOUT (ms, 2000, the cluster-node-timeout).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
state_dir=${AREDIS_TEST_STATE_DIR:-$PWD/test-servers}
form_timeout=${AREDIS_TEST_CLUSTER_TIMEOUT:-60}
node_timeout=${AREDIS_TEST_CLUSTER_NODE_TIMEOUT:-2000}
redis_cli=${REDIS_CLI:-redis-cli}
export AREDIS_TEST_STATE_DIR=$state_dir

log() { echo "redis-cluster.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now_ms() { local t; t=$(date +%s%N); echo $((t / 1000000)); }

check_name() {
  [[ $1 =~ ^[A-Za-z0-9_-]+$ ]] || die "bad cluster name '$1' (letters, digits, _ and - only)"
}

# field NODE KEY: a value from a node's redis-server.sh state file.
field() { sed -n "s/^$2=//p" "$state_dir/$1.state"; }

# cli NODE ARGS...: redis-cli on the node's own unix socket, so no other
# process can answer for it. Bounded, and never fails the script: callers
# compare the output (redis-cli exits 0 on error replies anyway).
cli() {
  local sock
  sock=$(field "$1" unixsocket)
  shift
  timeout 5 "$redis_cli" -s "$sock" "$@" 2>/dev/null || true
}

# node_names NAME: the per-node servers that exist for a cluster, in order.
node_names() {
  local f n
  for f in "$state_dir/$1"-node*.state; do
    [ -e "$f" ] || continue
    n=${f##*/}
    echo "${n%.state}"
  done | sort -V
}

cmd_stop() {
  local name=$1 n rc=0
  for n in $(node_names "$name"); do
    bash "$here/redis-server.sh" stop "$n" || rc=1
  done
  rm -rf "$state_dir/$name-certs"
  rm -f "$state_dir/$name.state"
  [ $rc = 0 ] && log "$name: stopped"
  return $rc
}

# view NODE: the node's slot map in a canonical form, one line per node,
# sorted: "<id> master <slots...>" or "<id> slave <primary-id>". Also
# checks the node list: prints nothing when a node is missing, failing or
# not yet known by its address.
view() {
  local out line id flags master out2=()
  out=$(cli "$1" cluster nodes)
  [ -n "$out" ] || return 0
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    # shellcheck disable=SC2086 # split the fields on purpose
    set -- $line
    id=$1 flags=$3 master=$4
    case ",$flags," in
      *,fail,* | *,fail\?,* | *,handshake,* | *,noaddr,*) return 0 ;;
    esac
    if [[ ,$flags, == *,master,* ]]; then
      shift 8
      out2+=("$id master $*")
    elif [[ ,$flags, == *,slave,* ]]; then
      out2+=("$id slave $master")
    else
      return 0
    fi
  done <<<"$out"
  printf '%s\n' "${out2[@]}" | sort
}

# is_ready: the readiness test described at the top.
is_ready() {
  local n v first="" slots
  for n in "${names[@]}"; do
    v=$(view "$n")
    [ "$(grep -c . <<<"$v")" = "${#names[@]}" ] || return 1
    [ "$(grep -c ' master' <<<"$v")" = "$primaries" ] || return 1
    [ "$(grep -c ' slave ' <<<"$v")" = $((primaries * replicas)) ] || return 1
    if [ -z "$first" ]; then
      first=$v
      # Every slot is covered: add up the ranges.
      slots=$(sed -n 's/^[^ ]* master //p' <<<"$v" | tr ' ' '\n' |
        awk -F- 'NF==2 {s += $2 - $1 + 1} NF==1 && $1 != "" {s++} END {print s+0}')
      [ "$slots" = 16384 ] || return 1
    elif [ "$v" != "$first" ]; then
      return 1
    fi
    [[ $(cli "$n" cluster info) == *cluster_state:ok* ]] || return 1
    # CLUSTER SLOTS leaves out a replica until it has replicated something
    # (offset 0 reads as "loading" in CLUSTER SHARDS): wait until every
    # node lists every node there.
    [ "$(cli "$n" cluster slots | grep -E '^[0-9a-f]{40}$' | sort -u | grep -c .)" = \
      "${#names[@]}" ] || return 1
  done
  for n in "${names[@]:$primaries}"; do
    [[ $(cli "$n" info replication) == *master_link_status:up* ]] || return 1
  done
}

cmd_start() {
  local name=$1 primaries=3 replicas=1 tls=0
  shift
  while [ $# -gt 0 ]; do
    case $1 in
      --primaries) primaries=$2; shift 2 ;;
      --replicas) replicas=$2; shift 2 ;;
      --tls) tls=1; shift ;;
      *) break ;;
    esac
  done
  [[ $primaries =~ ^[1-9][0-9]*$ && $replicas =~ ^[0-9]+$ ]] ||
    die "bad --primaries/--replicas"

  # A leftover from an earlier run under the same name goes first.
  if [ -n "$(node_names "$name")" ] || [ -f "$state_dir/$name.state" ]; then
    log "$name: stopping a leftover cluster from an earlier run"
    cmd_stop "$name" || true
  fi
  mkdir -p "$state_dir"

  local certs=$state_dir/$name-certs
  if [ $tls = 1 ]; then
    bash "$here/make-certs.sh" "$certs" >/dev/null 2>&1 ||
      die "$name: certificate generation failed"
    set -- --port 0 --tls-port '{port}' --tls-cluster yes --tls-replication yes \
      --tls-cert-file "$certs/server.crt" --tls-key-file "$certs/server.key" \
      --tls-client-cert-file "$certs/client.crt" \
      --tls-client-key-file "$certs/client.key" \
      --tls-ca-cert-file "$certs/ca.crt" --tls-auth-clients optional "$@"
  fi

  # The nodes belong to our caller (ctest), not to this short-lived script.
  export AREDIS_TEST_OWNER_PID=${AREDIS_TEST_OWNER_PID:-$PPID}

  local total=$((primaries * (1 + replicas))) i n
  names=()
  for ((i = 0; i < total; i++)); do
    n=$name-node$i
    names+=("$n")
    if ! bash "$here/redis-server.sh" start "$n" --cluster-enabled yes \
      --cluster-config-file '{dir}/nodes.conf' --cluster-node-timeout "$node_timeout" \
      --cluster-require-full-coverage yes --repl-ping-replica-period 1 "$@"; then
      cmd_stop "$name" || true
      die "$name: node $i did not start"
    fi
  done

  local ids=() ports=() id
  for n in "${names[@]}"; do
    id=$(cli "$n" cluster myid)
    [[ $id =~ ^[0-9a-f]{40}$ ]] || { cmd_stop "$name" || true; die "$n: no cluster id ('$id')"; }
    ids+=("$id")
    ports+=("$(field "$n" port)")
  done

  # Slots and config epochs first (SET-CONFIG-EPOCH needs a node that knows
  # no other node yet), then one MEET per node from node 0.
  local lo hi r
  for ((i = 0; i < primaries; i++)); do
    lo=$((16384 * i / primaries))
    hi=$((16384 * (i + 1) / primaries - 1))
    r=$(cli "${names[$i]}" cluster set-config-epoch $((i + 1)))
    [ "$r" = OK ] || { cmd_stop "$name" || true; die "${names[$i]}: SET-CONFIG-EPOCH: $r"; }
    r=$(cli "${names[$i]}" cluster addslotsrange "$lo" "$hi")
    [ "$r" = OK ] || { cmd_stop "$name" || true; die "${names[$i]}: ADDSLOTSRANGE: $r"; }
  done
  for ((i = 1; i < total; i++)); do
    r=$(cli "${names[0]}" cluster meet 127.0.0.1 "${ports[$i]}")
    [ "$r" = OK ] || { cmd_stop "$name" || true; die "MEET ${ports[$i]}: $r"; }
  done

  # Replica j of primary p is node primaries + p*replicas + j. REPLICATE
  # needs the primary to be known to the replica first.
  local deadline=$(($(now_ms) + form_timeout * 1000)) p waiting
  waiting=()
  for ((i = primaries; i < total; i++)); do waiting+=("$i"); done
  while [ ${#waiting[@]} -gt 0 ]; do
    local left=()
    for i in "${waiting[@]}"; do
      p=$(((i - primaries) / (replicas > 0 ? replicas : 1)))
      r=$(cli "${names[$i]}" cluster replicate "${ids[$p]}")
      [ "$r" = OK ] || left+=("$i")
    done
    waiting=("${left[@]+"${left[@]}"}")
    [ ${#waiting[@]} -eq 0 ] && break
    if [ "$(now_ms)" -ge $deadline ]; then
      cmd_stop "$name" || true
      die "$name: replicas could not attach within ${form_timeout}s ($r)"
    fi
    sleep 0.05
  done

  while ! is_ready; do
    if [ "$(now_ms)" -ge $deadline ]; then
      for n in "${names[@]}"; do
        log "---- $n (port $(field "$n" port)) CLUSTER NODES:"
        cli "$n" cluster nodes >&2
      done
      AREDIS_TEST_DUMP_LOG=1 cmd_stop "$name" || true
      die "$name: not ready after ${form_timeout}s"
    fi
    sleep 0.05
  done

  local all="" prim="" repl=""
  for ((i = 0; i < total; i++)); do
    all+="${all:+,}127.0.0.1:${ports[$i]}"
    if ((i < primaries)); then
      prim+="${prim:+,}127.0.0.1:${ports[$i]}"
    else
      repl+="${repl:+,}127.0.0.1:${ports[$i]}"
    fi
  done
  local file="$state_dir/$name.state" nlist
  nlist=$(
    IFS=,
    echo "${names[*]}"
  )
  {
    sed -e "s/^name=.*/name=$name/" "$state_dir/${names[0]}.state" |
      grep -v '^watchdog'
    echo "nodes=$all"
    echo "primaries=$prim"
    echo "replicas=$repl"
    echo "node_names=$nlist"
    if [ $tls = 1 ]; then echo "tls_dir=$certs"; fi
  } >"$file.tmp"
  mv -f "$file.tmp" "$file"
  log "$name: ready, $primaries primaries + $((primaries * replicas)) replicas: $all"
}

cmd_status() {
  local file="$state_dir/$1.state" n rc=0
  [ -f "$file" ] || { log "$1: not running"; return 1; }
  cat "$file"
  for n in $(node_names "$1"); do
    bash "$here/redis-server.sh" status "$n" >/dev/null || rc=1
  done
  return $rc
}

usage() {
  sed -n '2,6p' "${BASH_SOURCE[0]}" >&2
  exit 2
}

[ $# -ge 2 ] || usage
cmd=$1
name=$2
shift 2
check_name "$name"
case $cmd in
  start) cmd_start "$name" "$@" ;;
  stop) cmd_stop "$name" ;;
  status) cmd_status "$name" ;;
  *) usage ;;
esac
