#!/usr/bin/env bash
# scripts/mutation.sh - the project's own mutation test: does the test suite
# notice when the code is subtly wrong?
#
# Each mutant below is one small textual change to a source file (the exact
# text to find, and what to put instead). For each, the script copies the
# file's mutated version into a private copy of the tree, rebuilds there
# (incrementally, one build directory), runs the unit tests and then the
# integration and fault tests of the mutant's area, stopping at the first
# failure, and puts the file back. A mutant is KILLED when a test fails (or
# the build does), SURVIVED otherwise. It prints one line per mutant and the
# kill rate at the end.
#
#   scripts/mutation.sh                 every mutant
#   scripts/mutation.sh resp-03 link-02 just those
#   scripts/mutation.sh --area pool     those of one area
#   scripts/mutation.sh --list          the mutants, without running them
#   scripts/mutation.sh --check         only check that every mutant's text
#                                       still occurs exactly once
#
# It is run by hand, not in CI (it takes a long while: one build and one
# test run per mutant); see docs/guide/testing.md. Environment:
#   AREDIS_MUTATION_DIR  where the copy and its build live
#                        (default: ${TMPDIR:-/tmp}/aredis-mutation)
#   AREDIS_MUTATION_JOBS build jobs (default 2)
#   AREDIS_MUTATION_TIMEOUT  per-test timeout in seconds (default 120)
#
# A mutant whose text no longer occurs exactly once in its file (the code
# moved or changed) is reported STALE and makes the script exit non-zero:
# it is never counted as killed. Mutants marked `equivalent:` survive by
# design (the change cannot be observed; the note says why): they are run
# and reported, but left out of the kill rate.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

work=${AREDIS_MUTATION_DIR:-${TMPDIR:-/tmp}/aredis-mutation}
jobs=${AREDIS_MUTATION_JOBS:-2}
test_timeout=${AREDIS_MUTATION_TIMEOUT:-120}

# ---------------------------------------------------------------------------
# The areas: the tests that judge a mutant of each (after the unit tests).
# ---------------------------------------------------------------------------
area_tests() {
  case $1 in
    resp)        echo 'integration\.test_resp_server$|faults\.test_hostile$' ;;
    conn)        echo 'integration\.test_client$|faults\.test_(hostile|handshake|faults|reentry|unsent)$' ;;
    link)        echo 'faults\.test_(faults|reentry|extras)$|integration\.test_client$' ;;
    client)      echo 'integration\.test_(client|close|pool|alloc)$|faults\.test_(faults|unsent)$' ;;
    pool)        echo 'integration\.test_pool$|faults\.test_faults$' ;;
    pubsub)      echo 'integration\.test_pubsub$' ;;
    pipeline)    echo 'integration\.test_pipeline$|faults\.test_(extras|unsent)$' ;;
    transaction) echo 'integration\.test_transaction$|integration\.test_pipeline$|faults\.test_(extras|unsent)$' ;;
    *) echo "mutation.sh: unknown area $1" >&2; exit 2 ;;
  esac
}

# ---------------------------------------------------------------------------
# The mutants. A block per mutant:
#   === <id> <area> <file>
#   [equivalent: <why the change cannot be observed>]
#   ---
#   <the exact text to find: one or more lines, occurring once in the file>
#   +++
#   <what replaces it>
#   (blank line)
# ---------------------------------------------------------------------------
mutants() {
  cat <<'MUTANTS'
=== resp-01 resp src/resp/reader.c
---
    if (rd->depth >= rd->lim.max_depth)
+++
    if (rd->depth > rd->lim.max_depth)

=== resp-02 resp src/resp/reader.c
---
    if (!is_crlf(body + n))
        return fail(rd, AREDIS_EPROTO, "bulk string not followed by CRLF");
+++
    if (body[n] != '\r')
        return fail(rd, AREDIS_EPROTO, "bulk string not followed by CRLF");

=== resp-03 resp src/resp/reader.c
---
    if (r == NUM_BIG || (r == NUM_OK && !neg && v > limit))
+++
    if (r == NUM_BIG || (r == NUM_OK && !neg && v > limit + 1))

=== resp-04 resp src/resp/reader.c
---
    if (pairs)
        limit /= 2;
+++
    if (pairs)
        limit /= 1;

=== resp-05 resp src/resp/reader.c
---
    if (cr[1] != '\n')
+++
    if (0)

=== resp-06 resp src/resp/reader.c
---
    if (t == '#' && (llen != 1 || (line[0] != 't' && line[0] != 'f')))
+++
    if (t == '#' && (llen != 1))

=== resp-07 resp src/resp/reader.c
---
    if (t == '_' && llen != 0)
+++
    if (0)

=== resp-08 resp src/resp/reader.c
---
        if (r != NUM_OK || v > (uint64_t)LLONG_MAX + (uint64_t)neg)
+++
        if (r != NUM_OK || v > (uint64_t)LLONG_MAX + 1)

=== resp-09 resp src/resp/reader.c
---
    if (t == ',' && aredis__parse_double(line, llen, &d) != 0)
+++
    if (t == ',' && aredis__parse_double(line, llen, &d) != 0 && 0)

=== resp-10 resp src/resp/reader.c
---
    if ((size_t)(end - body) < n + 2) {
+++
    if ((size_t)(end - body) < n + 1) {

=== resp-11 resp src/resp/writer.c
---
    return len + count_digits(len) + 5;
+++
    return len + count_digits(len) + 4;

=== resp-12 resp src/resp/reader.c
---
    if (neg || v > rd->lim.max_bulk_len || (size_t)(end - body) < v + 2 ||
+++
    if (neg || (size_t)(end - body) < v + 2 ||

=== resp-13 resp src/resp/reader.c
---
        (*digits == '0' && (q - digits > 1 || neg)))
        return 0;
+++
        0)
        return 0;

=== conn-01 conn src/conn/conn.c
equivalent: a SKIP while OFF sets skip_next, but OFF ends only with ON, which clears skip_next too (as the server does), and every command while OFF clears it
---
        if (!*off)
            *skip = 1;
+++
        *skip = 1;

=== conn-02 conn src/conn/conn.c
---
    case AREDIS__REPLY_ON:
        *off = 0;
        *skip = 0;
        return 0;
+++
    case AREDIS__REPLY_ON:
        *off = 0;
        *skip = 0;
        return 1;

=== conn-03 conn src/conn/conn.c
---
        if (e == 1 && (cmd == NULL || cmd->end > cn->heard))
+++
        if (e == 1 && cmd == NULL)

=== conn-04 conn src/conn/conn.c
---
        if (e == 1 && (r->type == AREDIS_REPLY_PUSH || cn->raw_push)) {
+++
        if (e == 1 && cn->raw_push) {

=== conn-05 conn src/conn/conn.c
---
    cn->out_pos += n;
    cn->written += n;
+++
    cn->out_pos += n;
    cn->written += n + 1;

=== conn-06 conn src/conn/conn.c
---
    if (!server || !version)
        return 0;
+++
    if (!server && !version)
        return 0;

=== conn-07 conn src/conn/conn.c
---
    } else if (cfg->max_attempts >= 0 && cn->attempts >= cfg->max_attempts) {
+++
    } else if (cfg->max_attempts >= 0 && cn->attempts > cfg->max_attempts) {

=== conn-08 conn src/conn/conn.c
---
    int replay = !(cn->lent && !cn->keep);
+++
    int replay = 1;

=== conn-09 conn src/conn/conn.c
---
            else if (cmd->end > written)
                bytes = cmd_bytes(cn, cmd); /* never reached the server */
+++
            else if (cmd->end >= written)
                bytes = cmd_bytes(cn, cmd); /* never reached the server */

=== conn-10 conn src/conn/conn.c
---
            if ((cmd->flags & AREDIS__CC_NO_RESEND) || !replay)
+++
            if (!replay)

=== conn-11 conn src/conn/conn.c
---
        if (cmd->flags & AREDIS__CC_WAS_SENT)
            fail(cn, cmd, AREDIS_EUNKNOWN, unknown);
+++
        if (0)
            fail(cn, cmd, AREDIS_EUNKNOWN, unknown);

=== conn-12 conn src/conn/conn.c
---
    for (int i = 1; i < attempt && d < cfg->backoff_max_ms; i++)
        d *= 2;
+++
    for (int i = 1; i < attempt && d < cfg->backoff_max_ms; i++)
        d *= 1;

=== conn-13 conn src/conn/conn.c
---
    if (d > cfg->backoff_max_ms)
        d = cfg->backoff_max_ms;
+++
    if (0)
        d = cfg->backoff_max_ms;

=== conn-14 conn src/conn/conn.c
---
    int64_t delay = was_ready ? 0 : backoff_ms(cfg, cn->attempts);
+++
    int64_t delay = backoff_ms(cfg, cn->attempts);

=== conn-15 conn src/conn/conn.c
---
    if (cn->state == AREDIS__ST_CONNECTING && cn->addr_next < cn->naddrs) {
+++
    if (0) {

=== conn-16 conn src/conn/conn.c
---
        } else if (blame && cmd->end <= cn->heard) {
+++
        } else if (blame && 0) {

=== conn-17 conn src/conn/conn.c
---
    if (cn->exclusive && cn->npend == 0 && !cn->keep) {
        retry = 0;
+++
    if (cn->exclusive && cn->npend == 0) {
        retry = 0;

=== conn-18 conn src/conn/conn.c
---
    return !cn->lent && !aredis__conn_cmd_bound(cmd);
+++
    return !cn->broken && !aredis__conn_cmd_bound(cmd);

=== conn-19 conn src/conn/conn.c
---
            r->end -= run;
+++
            r->end -= 0;

=== conn-20 conn src/conn/conn.c
---
        if (first_silent)
            return 0;
+++
        if (first_silent > 1)
            return 0;

=== link-01 link src/node/link.c
---
    if (!(cmd->flags & AREDIS__CMD_DONE)) {
        if (a->reply != NULL) {
+++
    {
        if (a->reply != NULL) {

=== link-02 pool src/node/link.c
equivalent: the commands the lost connection carried complete after this event, and the last completion gives the link back (complete()); a link that carried none was free already
---
        if (l->exclusive && l->conn.state == AREDIS__ST_IDLE && !l->conn.broken)
            aredis__pool_link_idle(l);
+++
        if (0)
            aredis__pool_link_idle(l);

=== link-03 link src/node/link.c
---
            aredis__conn_wrote(&l->conn, (size_t)w);
            continue;
+++
            aredis__conn_wrote(&l->conn, (size_t)w);
            return 0;

=== link-04 link src/node/link.c
---
    l->conn.lent = l->borrowed;
+++
    l->conn.lent = 0;

=== link-05 pubsub src/node/link.c
---
    l->conn.keep = l->pubsub != NULL;
+++
    l->conn.keep = 0;

=== link-06 link src/node/link.c
equivalent: dead code: records are zeroed when made and every command reaches link_submit before any connection carried it, so WAS_SENT is never set there
---
        (uint8_t)((cmd->cc.flags & (AREDIS__CC_WAS_SENT | AREDIS__CC_GLUED |
+++
        (uint8_t)((cmd->cc.flags & (AREDIS__CC_GLUED |

=== link-07 link src/node/link.c
equivalent: a full read is followed by one more read that returns "would block": one system call more, nothing a caller can observe
---
        return !l->c->freeing && (size_t)n == avail;
+++
        return !l->c->freeing && (size_t)n <= avail;

=== client-01 client src/util/heap.c
---
        if (!before(n, h->v[parent]))
            break;
+++
        if (0)
            break;

=== client-02 client src/util/heap.c
---
        if (child + 1 < h->len && before(h->v[child + 1], h->v[child]))
            child++;
+++
        if (0)
            child++;

=== client-03 client src/client/client.c
---
    if (o != NULL && o->timeout_ms != 0)
        timeout = o->timeout_ms;
+++
    if (o != NULL && o->timeout_ms != 0 && !(cmd->flags & AREDIS__CMD_BLOCKING))
        timeout = o->timeout_ms;

=== client-04 client src/client/client.c
---
            unsent = aredis__link_cancel(l, cmd);
+++
            unsent = 0;

=== client-05 client src/client/client.c
---
    if (c->cfg.max_queued >= 0 && m->conn.npend >= (size_t)c->cfg.max_queued &&
+++
    if (c->cfg.max_queued >= 0 && m->conn.npend > (size_t)c->cfg.max_queued &&

=== client-06 client src/client/client.c
equivalent: a second guard: every completion path takes the command out of each structure another path could find it in (deadline heap, pool queue, done list) or checks DONE itself (link completion, cancel list)
---
    if (cmd->flags & AREDIS__CMD_DONE)
        return;
    cmd->flags |= AREDIS__CMD_DONE;
+++
    cmd->flags |= AREDIS__CMD_DONE;

=== client-07 client src/client/client.c
---
        if (unsent)
            aredis__cmd_free(c, cmd);
+++
        if (unsent && 0)
            aredis__cmd_free(c, cmd);

=== client-08 client src/client/client.c
---
            if (!aredis__conn_cmd_bound(&cmd->cc))
+++
            if (1)

=== pool-01 pool src/node/pool.c
---
        if (l == NULL && p->size < c->cfg.pool_max &&
+++
        if (l == NULL && p->size <= c->cfg.pool_max &&

=== pool-02 pool src/node/pool.c
---
            now - aredis__plink_of(l)->idle_since >= c->cfg.pool_idle_ms)
+++
            now - aredis__plink_of(l)->idle_since >= 10 * c->cfg.pool_idle_ms)

=== pool-03 pool src/node/pool.c
---
    cmd->wait_until = aredis__now_ms() + c->cfg.pool_wait_ms;
+++
    cmd->wait_until = aredis__now_ms() + 2 * c->cfg.pool_wait_ms;

=== pool-04 pool src/node/pool.c
equivalent: its one caller that can meet a busy link (the DISCONNECTED event, connection IDLE) leaves only completions already decided, which are delivered whatever the link does next; complete() checks idleness itself
---
    if (l->borrowed || !aredis__conn_idle(&l->conn) || c->freeing)
        return;
+++
    if (l->borrowed || c->freeing)
        return;

=== pubsub-01 pubsub src/node/pubsub.c
---
        if (subs[i].kind == AREDIS_PUBSUB_PSUBSCRIBE)
+++
        if (0)

=== pubsub-02 pubsub src/node/pubsub.c
---
        else if (subs[i].kind == AREDIS_PUBSUB_SSUBSCRIBE)
+++
        else if (0)

=== pipeline-01 pipeline src/extras/pipeline.c
---
static const char *const s_exec[] = {"EXEC"};
+++
static const char *const s_exec[] = {"DISCARD"};

=== pipeline-02 transaction src/extras/pipeline.c
---
    unsigned flags = txn ? AREDIS_CMD_TOGETHER : plain_flags(p->opts.retry);
+++
    unsigned flags = txn ? 0 : plain_flags(p->opts.retry);

=== pipeline-03 pipeline src/extras/pipeline.c
---
    return AREDIS_CMD_NO_RESEND;
}
+++
    return 0;
}

=== pipeline-04 transaction src/extras/pipeline.c
---
    unsigned flags = txn ? AREDIS_CMD_TOGETHER : plain_flags(p->opts.retry);
+++
    unsigned flags = txn ? AREDIS_CMD_NO_RESEND : plain_flags(p->opts.retry);

=== transaction-01 transaction src/extras/transaction.c
---
    if (r->type != AREDIS_REPLY_ERROR || r->code != AREDIS_EWATCH) {
+++
    if (r->type != AREDIS_REPLY_ERROR) {

MUTANTS
}

# ---------------------------------------------------------------------------
# Parsing and applying (python3: literal, exact-count replacement).
# ---------------------------------------------------------------------------
mutant_prog=$(cat <<'PY'
import sys, re
cmd = sys.argv[1]
text = sys.stdin.read() if cmd != "apply" else None
def parse(src):
    out, cur, part = [], None, None
    for line in src.split("\n"):
        if line.startswith("=== "):
            if cur: out.append(cur)
            _, mid, area, path = line.split(None, 3)
            cur = {"id": mid, "area": area, "file": path, "old": [], "new": [], "equiv": ""}
            part = None
        elif cur is None:
            continue
        elif part is None and line.startswith("equivalent:"):
            cur["equiv"] = line[len("equivalent:"):].strip()
        elif line == "---" and part is None:
            part = "old"
        elif line == "+++" and part == "old":
            part = "new"
        elif part == "new" and line == "":
            out.append(cur); cur = None; part = None
        elif part:
            cur[part].append(line)
    if cur: out.append(cur)
    return out
if cmd == "list":
    for m in parse(text):
        print("\t".join([m["id"], m["area"], m["file"], m["equiv"]]))
elif cmd == "show":
    want = sys.argv[2]
    for m in parse(text):
        if m["id"] == want:
            print("\n".join(m["old"]) + "\0" + "\n".join(m["new"]), end="")
elif cmd == "check":
    # check <root>: every mutant's text occurs exactly once in its file
    bad = 0
    for m in parse(text):
        try:
            n = open(sys.argv[2] + "/" + m["file"]).read().count("\n".join(m["old"]))
        except OSError as e:
            n = -1
        if n != 1:
            bad += 1
            print(f"{m['id']:<16} STALE     {m['file']}: text found {n} times")
    sys.exit(1 if bad else 0)
elif cmd == "apply":
    # apply <file> <oldfile> <newfile>: exit 3 unless old occurs exactly once
    path, oldf, newf = sys.argv[2:5]
    src = open(path).read()
    old = open(oldf).read(); new = open(newf).read()
    n = src.count(old)
    if n != 1:
        print(f"text found {n} times", file=sys.stderr); sys.exit(3)
    open(path, "w").write(src.replace(old, new, 1))
PY
)
mutant_tool() { python3 -c "$mutant_prog" "$@"; }

list_mutants() { mutants | mutant_tool list; }

usage() { sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; }

# ---------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------
only=() area_only=""
while [ $# -gt 0 ]; do
  case $1 in
    --list) list_mutants | awk -F'\t' '{printf "%-16s %-12s %s%s\n", $1, $2, $3, ($4 ? "  (equivalent: " $4 ")" : "")}'; exit 0 ;;
    --area) area_only=$2; shift ;;
    --check) mutants | mutant_tool check "$root" && echo "mutation: every mutant matches"; exit $? ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "mutation.sh: unknown option $1" >&2; exit 2 ;;
    *) only+=("$1") ;;
  esac
  shift
done

# ---------------------------------------------------------------------------
# The private copy and its build
# ---------------------------------------------------------------------------
tree=$work/tree
build=$work/build
echo "mutation: copying the tree to $tree"
# The files git tracks, and the new ones it does not ignore, as they are in
# the working tree; modification times kept, so the build stays incremental.
rm -rf "$tree"
mkdir -p "$tree"
git -C "$root" ls-files -z --cached --others --exclude-standard |
  (cd "$root" && xargs -0 sh -c 'for f; do if [ -e "$f" ]; then printf "%s\0" "$f"; fi; done' sh) |
  tar -C "$root" --null -T - -cf - | tar -C "$tree" -xf -
if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=${CC:-gcc} cmake -S "$tree" -B "$build" -DCMAKE_BUILD_TYPE=Debug \
    -DAREDIS_ASAN=ON -DAREDIS_UBSAN=ON -DAREDIS_WERROR=ON >"$work/configure.log" 2>&1 ||
    { echo "mutation: configure failed, see $work/configure.log" >&2; exit 1; }
fi

log=$work/log
mkdir -p "$log"

build_all() { AREDIS_SKIP_DEPS=1 cmake --build "$build" -j"$jobs" >"$1" 2>&1; }

# run_tests <area> <logfile>: unit tests, then the area's; 0 when all pass.
run_tests() {
  local regex
  regex=$(area_tests "$1")
  AREDIS_SKIP_DEPS=1 ctest --test-dir "$build" -L unit --stop-on-failure \
    --timeout "$test_timeout" >"$2" 2>&1 || return 1
  AREDIS_SKIP_DEPS=1 ctest --test-dir "$build" -R "$regex" --stop-on-failure \
    --timeout "$test_timeout" >>"$2" 2>&1 || return 1
}

echo "mutation: baseline build"
build_all "$log/baseline-build.log" ||
  { echo "mutation: the unmutated tree does not build: $log/baseline-build.log" >&2; exit 1; }

# Select the mutants.
mapfile -t rows < <(list_mutants)
selected=()
for row in "${rows[@]}"; do
  IFS=$'\t' read -r id area file equiv <<<"$row"
  if [ ${#only[@]} -gt 0 ]; then
    keep=0
    for o in "${only[@]}"; do [ "$o" = "$id" ] && keep=1; done
    [ $keep = 1 ] || continue
  fi
  [ -n "$area_only" ] && [ "$area_only" != "$area" ] && continue
  selected+=("$row")
done

# The baseline of each area involved must pass, or no mutant can be judged.
declare -A base_ok=()
for row in "${selected[@]}"; do
  IFS=$'\t' read -r id area file equiv <<<"$row"
  [ -n "${base_ok[$area]:-}" ] && continue
  echo "mutation: baseline tests of $area"
  if ! run_tests "$area" "$log/baseline-$area.log"; then
    echo "mutation: the unmutated tree fails the $area tests; see $log/baseline-$area.log" >&2
    exit 1
  fi
  base_ok[$area]=1
done

killed=0 survived=0 equiv_survived=0 stale=0 total=0
survivors=()
for row in "${selected[@]}"; do
  IFS=$'\t' read -r id area file equiv <<<"$row"
  total=$((total + 1))
  mutants | mutant_tool show "$id" >"$work/pair"
  # Split "old\0new" into two files.
  python3 -c 'import sys; a,b=open(sys.argv[1]).read().split("\0",1); open(sys.argv[2],"w").write(a); open(sys.argv[3],"w").write(b)' \
    "$work/pair" "$work/old" "$work/new"
  cp "$tree/$file" "$work/original"
  if ! mutant_tool apply "$tree/$file" "$work/old" "$work/new" </dev/null 2>"$work/apply.err"; then
    printf '%-16s STALE     %s: %s\n' "$id" "$file" "$(cat "$work/apply.err")"
    stale=$((stale + 1))
    continue
  fi
  start=$(date +%s)
  if ! build_all "$log/$id-build.log"; then
    verdict=killed how="build"
  elif ! run_tests "$area" "$log/$id-test.log"; then
    verdict=killed
    how=$(grep -m1 -E '\*\*\*Failed|\*\*\*Timeout|\*\*\*Exception|Failed  ' "$log/$id-test.log" |
          sed -E 's/^ *[0-9]+\/[0-9]+ Test +#[0-9]+: //; s/ +\.+.*//' || true)
    how="by ${how:-a test}"
  else
    verdict=survived how=""
  fi
  cp "$work/original" "$tree/$file"
  took=$(( $(date +%s) - start ))
  if [ $verdict = killed ]; then
    killed=$((killed + 1))
    printf '%-16s killed    %s (%ss)\n' "$id" "$how" "$took"
  elif [ -n "$equiv" ]; then
    equiv_survived=$((equiv_survived + 1))
    printf '%-16s survived  equivalent: %s\n' "$id" "$equiv"
  else
    survived=$((survived + 1))
    survivors+=("$id")
    printf '%-16s SURVIVED  %s (%ss)\n' "$id" "$file" "$took"
  fi
done
# Leave the copy's build matching the real tree.
build_all "$log/final-build.log" || true

judged=$((killed + survived))
rate=0
[ $judged -gt 0 ] && rate=$((100 * killed / judged))
echo "mutation: $total mutants: $killed killed, $survived survived," \
  "$equiv_survived equivalent, $stale stale; kill rate $rate % ($killed/$judged)"
[ ${#survivors[@]} -gt 0 ] && echo "mutation: survivors: ${survivors[*]}"
if [ $stale -gt 0 ]; then
  echo "mutation: $stale mutants no longer match the code: update their text" >&2
  exit 1
fi
exit 0
