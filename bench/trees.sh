#!/usr/bin/env bash
# bench/trees.sh - the same benchmark recipes on two source trees, in one
# run, so that a change can be judged against what it replaced:
#
#   bench/trees.sh OLD_TREE NEW_TREE        (e.g. a `git worktree` of the
#                                            commit before, and this tree)
#
# Each round runs, for OLD then NEW: bench/client.sh (W in flight; the
# table-2 part only), bench/pipeline.sh and bench/pubsub.sh, each tree with
# its own scripts and its own Release build (TREE/build-bench). The rounds
# interleave the trees, so a slow phase of a shared machine hits both
# alike. After the rounds, instructions per command at W = 128 (callgrind)
# and system calls per command at W = 1 (strace), once per tree: those do
# not depend on the machine's load. Every recipe's full output is kept in
# OUT_DIR; a summary of the lines that carry figures is printed at the end.
#
# Environment (defaults in brackets):
#   ROUNDS [3]          rounds of the timed recipes
#   W_LIST ["16 128 1024"]  PIPE_N [200000]   for client.sh
#   BATCHES [2000]      for pipeline.sh (SIZE 100)
#   PUBSUB_N [300000]   for pubsub.sh
#   OUT_DIR [a temporary directory, kept and printed]
set -euo pipefail

[ $# = 2 ] || {
    sed -n '2,9p' "${BASH_SOURCE[0]}" >&2
    exit 2
}
old=$(cd "$1" && pwd)
new=$(cd "$2" && pwd)
for t in "$old" "$new"; do
    for s in client.sh pipeline.sh pubsub.sh; do
        [ -x "$t/bench/$s" ] || {
            echo "trees.sh: $t/bench/$s not found" >&2
            exit 1
        }
    done
done

ROUNDS=${ROUNDS:-3}
W_LIST=${W_LIST:-"16 128 1024"}
PIPE_N=${PIPE_N:-200000}
BATCHES=${BATCHES:-2000}
PUBSUB_N=${PUBSUB_N:-300000}
out=${OUT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/aredis-trees.XXXXXX")}
mkdir -p "$out"

# run TAG TREE RECIPE...: one recipe on one tree, output kept in OUT_DIR.
run() {
    local tag=$1 tree=$2
    shift 2
    echo "trees.sh: $tag: $*" >&2
    (cd "$tree" && env BUILD_DIR="$tree/build-bench" "$@") \
        >"$out/$tag.txt" 2>&1 || {
        echo "trees.sh: $tag failed (see $out/$tag.txt)" >&2
        return 1
    }
}

for r in $(seq 1 "$ROUNDS"); do
    for side in old new; do
        tree=$old
        [ $side = new ] && tree=$new
        run "$side-client-r$r" "$tree" PLACEMENTS=separate PARTS=pipe \
            W_LIST="$W_LIST" PIPE_N="$PIPE_N" REPEAT=1 bench/client.sh
        run "$side-pipeline-r$r" "$tree" BATCHES="$BATCHES" REPEAT=1 \
            bench/pipeline.sh
        run "$side-pubsub-r$r" "$tree" bench/pubsub.sh "$PUBSUB_N"
    done
done
for side in old new; do
    tree=$old
    [ $side = new ] && tree=$new
    run "$side-counts" "$tree" PLACEMENTS="" PARTS="strace callgrind" \
        bench/client.sh
done

echo "trees.sh: OLD=$old NEW=$new, outputs in $out"
for f in "$out"/*.txt; do
    echo "==== $(basename "$f" .txt)"
    grep -E '^ *[0-9]+ |ratio|aredis|hiredis|Ir|calls|per command' "$f" |
        grep -v '^trees.sh' | head -40 || true
done
