/* Fault tests of the extras and of the client's life cycle against real
 * faults: a transaction retried while its server restarts, pipelines and
 * MULTI/EXEC batches cut part-way through being written (the fault proxy,
 * tests/support/faultproxy.c, resets the connection after a few KB have
 * gone up), aredis_client_close() with the server down, and, with the
 * server paused, a blocking SCAN iterator's deadline and the node API's
 * per-call deadlines.
 *
 * What the server ends up holding is checked on the server itself, through
 * a direct connection (testenv), never through the client under test.
 * Public API only; the built-in loop. Each test starts its own private
 * server (tests/support/faults.c). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aredis/aredis.h"
#include "faults.h"

static struct {
    faults_server srv;
    faults_proxy px;
    int have_px;
    aredis_loop *loop;
    aredis_client *c;
    faults_events ev;
} w;

static void start_server(const char *tag)
{
    cr_assert_eq(faults_server_start(&w.srv, tag, NULL, 0, 0), 0, "%s",
                 testenv_errstr());
}

static void start_proxy(void)
{
    cr_assert_eq(faults_proxy_start(&w.px, w.srv.s.port), 0, "%s",
                 testenv_errstr());
    w.have_px = 1;
}

static void proxy(const char *line)
{
    cr_assert_eq(faults_proxy_ctl(&w.px, line, NULL, 0), 0, "%s",
                 testenv_errstr());
}

static void start_client(int port, aredis_options o)
{
    w.c = faults_client_new(&w.loop, port, o, &w.ev);
    cr_assert_not_null(w.c, "%s", testenv_errstr());
}

static void finish(void)
{
    if (w.c != NULL) {
        cr_assert_eq(aredis_client_pending(w.c), 0);
        aredis_client_free(w.c);
    }
    aredis_loop_free(w.loop);
    w.c = NULL;
    w.loop = NULL;
    if (w.have_px)
        faults_proxy_stop(&w.px);
    cr_assert_eq(faults_server_stop(&w.srv), 0, "%s", testenv_errstr());
}

static int flag_set(const void *arg)
{
    return *(const int *)arg != 0;
}

/* ---- a transaction retried while the server restarts -------------------- */

/* The retry loop a program builds on aredis_transaction(): whenever the
 * transaction fails (other than by losing the WATCH race, which the helper
 * retries itself), submit it again at once. While the server is down each
 * attempt must wait for the connection, as a plain command does, rather
 * than fail at once and spin. */
static const char *const txn_keys[] = {"faults:x:seq"};
static struct {
    int attempts;
    int succeeded;
    int last_code;
    char last_msg[160];
} tx;

static void txn_got(aredis_pipeline *p, const aredis_reply *r, void *ud)
{
    (void)ud;
    if (r->type == AREDIS_REPLY_ERROR) {
        aredis_transaction_abort(p, r->code, r->str);
        return;
    }
    long long v = r->type == AREDIS_REPLY_STRING ? atoll(r->str) : 0;
    aredis_pipeline_multi(p);
    aredis_pipeline_command(p, "SET %s %lld", txn_keys[0], v + 1);
    aredis_transaction_commit(p);
}

static void txn_body(aredis_pipeline *p, void *ud)
{
    if (aredis_pipeline_immediate(p, txn_got, ud, "GET %s", txn_keys[0]) != 0)
        aredis_transaction_abort(p, AREDIS_ENOMEM, NULL);
}

static void txn_start(void);

static void txn_done(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    (void)ud;
    if (r->type == AREDIS_REPLY_ARRAY) {
        tx.succeeded = 1;
        return;
    }
    tx.last_code = r->code;
    snprintf(tx.last_msg, sizeof tx.last_msg, "%.*s", (int)r->len, r->str);
    if (tx.attempts < 100000) /* a bound on the spin being tested for */
        txn_start();
}

static void txn_start(void)
{
    tx.attempts++;
    int e =
        aredis_transaction(w.c, NULL, txn_body, txn_done, NULL, 1, txn_keys);
    cr_assert_eq(e, 0, "aredis_transaction: %s", aredis_err_name(e));
}

Test(extras_faults, transaction_waits_for_server_restart, .timeout = 60)
{
    start_server("txrestart");
    start_client(w.srv.s.port, (aredis_options){0});
    txn_start();
    cr_assert(faults_run_until(w.loop, flag_set, &tx.succeeded, 5000),
              "the first transaction did not succeed: %s",
              aredis_err_name(tx.last_code));

    cr_assert_eq(faults_server_kill9(&w.srv), 0, "%s", testenv_errstr());
    tx.attempts = 0;
    tx.succeeded = 0;
    txn_start();
    faults_run_for(w.loop, 1500);
    int while_down = tx.attempts;
    cr_assert_eq(faults_server_restart(&w.srv), 0, "%s", testenv_errstr());
    cr_assert(faults_run_until(w.loop, flag_set, &tx.succeeded, 15000),
              "the transaction did not succeed after the restart (%d "
              "attempts; last: %s: %s)",
              tx.attempts, aredis_err_name(tx.last_code), tx.last_msg);
    fprintf(stderr, "FAULT transaction-restart: attempts=%d (%d while down)\n",
            tx.attempts, while_down);
    cr_assert_lt(tx.attempts, 20,
                 "the transaction was submitted %d times during one restart "
                 "(%d in the 1.5 s the server was down); last failure: %s: "
                 "%s",
                 tx.attempts, while_down, aredis_err_name(tx.last_code),
                 tx.last_msg);
    finish();
}

/* ---- batches cut part-way through being written -------------------------- */

enum { CUT_PAIRS = 1500, PAD = 4096, CUT_AFTER = 20000 };

typedef struct batch_result {
    int done;
    int type, code;
    char msg[200];
} batch_result;

static void on_batch(aredis_pipeline *p, const aredis_reply *r, void *ud)
{
    (void)p;
    batch_result *b = ud;
    b->done++;
    b->type = r->type;
    b->code = r->code;
    snprintf(b->msg, sizeof b->msg, "%.*s",
             r->type == AREDIS_REPLY_ERROR ? (int)r->len : 0,
             r->type == AREDIS_REPLY_ERROR ? r->str : "");
}

/* Queue CUT_PAIRS x (RPUSH key <i>, ECHO <4 KiB>): about 6 MB, of which the
 * proxy lets CUT_AFTER bytes reach the server before it resets the
 * connection -- the client has then written a few hundred KB at most. */
static void queue_cut_batch(aredis_pipeline *p, const char *key)
{
    static char pad[PAD];
    memset(pad, 'x', sizeof pad);
    for (int i = 0; i < CUT_PAIRS; i++) {
        cr_assert_eq(aredis_pipeline_command(p, "RPUSH %s %d", key, i), 0);
        const char *argv[] = {"ECHO", pad};
        size_t lens[] = {4, sizeof pad};
        cr_assert_eq(aredis_pipeline_commandv(p, 2, argv, lens), 0);
    }
}

static void cut_setup(const char *tag)
{
    start_server(tag);
    start_proxy();
    start_client(w.px.port, (aredis_options){0});
    /* Connected first, so the cut falls in the batch, not the handshake. */
    aredis_pipeline *p = aredis_pipeline_new(w.c, 0);
    aredis_pipeline_command(p, "PING");
    batch_result b = {0};
    cr_assert_eq(aredis_pipeline_execute(p, on_batch, &b), 0);
    cr_assert(faults_run_until(w.loop, flag_set, &b.done, 5000));
    cr_assert_eq(b.type, AREDIS_REPLY_ARRAY, "PING: %s", b.msg);
    aredis_pipeline_free(p);
    char line[64];
    snprintf(line, sizeof line, "cutafter %d up", CUT_AFTER);
    proxy(line);
}

/* After the cut: a PING through the same client answers PONG (not QUEUED:
 * no MULTI was left open), and the proxy saw the cut. The PING may be
 * re-sent: every connection was cut, and the shared one may learn it only
 * when the PING is written. */
static void on_ping(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    batch_result *b = ud;
    b->done++;
    b->type = r->type;
    b->code = r->code;
    snprintf(b->msg, sizeof b->msg, "%.*s", (int)r->len, r->str);
}

static void cut_after_check(void)
{
    proxy("reset");
    batch_result b = {0};
    aredis_cmd_opts o = {.timeout_ms = 5000, .flags = AREDIS_CMD_IDEMPOTENT};
    cr_assert_eq(aredis_command_opts(w.c, &o, on_ping, &b, "PING"), 0);
    cr_assert(faults_run_until(w.loop, flag_set, &b.done, 8000));
    cr_assert_eq(b.type, AREDIS_REPLY_STATUS, "PING after the cut: %s: %s",
                 aredis_err_name(b.code), b.msg);
    cr_assert_str_eq(b.msg, "PONG");
    cr_assert_geq(faults_events_find(&w.ev, 0, AREDIS_CONN_DISCONNECTED, 0), 0,
                  "the proxy never cut the connection");
}

/* The list's elements, read on the server: must be 0, 1, ..., n-1. Returns
 * n. A gap or a repeat means a command was sent twice or after the cut. */
static long long check_prefix(const char *key)
{
    testenv_conn a;
    cr_assert_eq(testenv_connect(&a, &w.srv.s), 0, "%s", testenv_errstr());
    const aredis_reply *r = NULL;
    cr_assert_eq(testenv_command(&a, &r, "LRANGE %s 0 -1", key), 0, "%s",
                 testenv_errstr());
    cr_assert_eq(r->type, AREDIS_REPLY_ARRAY);
    long long n = (long long)r->len;
    for (size_t i = 0; i < r->len; i++) {
        long long v = atoll(r->element[i].str);
        cr_assert_eq(v, (long long)i,
                     "%s holds %lld elements and element %zu is %lld: a "
                     "command ran out of order, twice, or after the cut "
                     "(last element: %s)",
                     key, n, i, v, r->element[r->len - 1].str);
    }
    testenv_close(&a);
    return n;
}

/* A plain pipeline (default: never re-sent) cut after a few KB: the
 * commands that reached the server ran once, in order; none of those the
 * client had not written yet ran later on a new connection. */
Test(extras_faults, pipeline_cut_while_writing, .timeout = 60)
{
    cut_setup("plcut");
    aredis_pipeline *p = aredis_pipeline_new(w.c, 0);
    queue_cut_batch(p, "faults:x:plain");
    batch_result b = {0};
    cr_assert_eq(aredis_pipeline_execute(p, on_batch, &b), 0);
    cr_assert(faults_run_until(w.loop, flag_set, &b.done, 20000),
              "the batch did not complete");
    cr_assert_eq(b.done, 1);
    cr_assert_eq(b.type, AREDIS_REPLY_ERROR, "the cut batch succeeded");
    cr_assert(b.code == AREDIS_EUNKNOWN || b.code == AREDIS_ECLOSED,
              "batch: %s: %s", aredis_err_name(b.code), b.msg);
    aredis_pipeline_free(p);
    cut_after_check();
    long long n = check_prefix("faults:x:plain");
    fprintf(stderr, "FAULT pipeline-cut: %lld of %d commands ran\n", n,
            CUT_PAIRS);
    cr_assert_lt(n, CUT_PAIRS / 10,
                 "%lld of %d RPUSHes ran: the part not written before the "
                 "cut was sent again",
                 n, CUT_PAIRS);
    finish();
}

/* The same cut in a MULTI ... EXEC on the shared connection: EXEC never
 * reached the server, so nothing ran -- in particular no command of the
 * block ran outside its MULTI on a new connection. */
Test(extras_faults, transaction_cut_while_writing, .timeout = 60)
{
    cut_setup("txcut");
    aredis_pipeline *p = aredis_pipeline_new(w.c, 1);
    queue_cut_batch(p, "faults:x:txn");
    batch_result b = {0};
    cr_assert_eq(aredis_pipeline_execute(p, on_batch, &b), 0);
    cr_assert(faults_run_until(w.loop, flag_set, &b.done, 20000),
              "the batch did not complete");
    cr_assert_eq(b.type, AREDIS_REPLY_ERROR, "the cut transaction succeeded");
    cr_assert_eq(b.code, AREDIS_ECLOSED,
                 "EXEC was never written, so the transaction did not run; "
                 "got %s: %s",
                 aredis_err_name(b.code), b.msg);
    aredis_pipeline_free(p);
    cut_after_check();
    long long n = check_prefix("faults:x:txn");
    cr_assert_eq(n, 0,
                 "%lld commands of a transaction whose EXEC never reached "
                 "the server ran (outside MULTI)",
                 n);
    finish();
}

/* The same cut in a WATCH transaction (MULTI ... EXEC on a borrowed
 * connection): the borrowed connection is never replaced behind the
 * borrower's back, so again nothing ran. */
static batch_result watch_b;

static void watched(aredis_pipeline *p, const aredis_reply *r, void *ud)
{
    (void)ud;
    cr_assert_neq(r->type, AREDIS_REPLY_ERROR, "WATCH: %s", r->str);
    char line[64];
    snprintf(line, sizeof line, "cutafter %d up", CUT_AFTER);
    proxy(line); /* the WATCH went through uncut */
    cr_assert_eq(aredis_pipeline_multi(p), 0);
    queue_cut_batch(p, "faults:x:watch");
    cr_assert_eq(aredis_pipeline_execute(p, on_batch, &watch_b), 0);
}

Test(extras_faults, watch_transaction_cut_while_writing, .timeout = 60)
{
    cut_setup("wtcut");
    proxy("reset");
    aredis_pipeline *p = aredis_pipeline_new(w.c, 0);
    const char *keys[] = {"faults:x:watched"};
    cr_assert_eq(aredis_pipeline_watch(p, watched, NULL, 1, keys), 0);
    cr_assert(faults_run_until(w.loop, flag_set, &watch_b.done, 20000),
              "the batch did not complete");
    cr_assert_eq(watch_b.type, AREDIS_REPLY_ERROR,
                 "the cut transaction succeeded");
    aredis_pipeline_free(p);
    cut_after_check();
    long long n = check_prefix("faults:x:watch");
    cr_assert_eq(n, 0,
                 "%lld commands of a WATCH transaction cut before EXEC ran", n);
    finish();
}

/* ---- aredis_client_close() with the server down ------------------------- */

typedef struct outcome {
    int calls, type, code;
} outcome;

static void on_outcome(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    outcome *o = ud;
    o->calls++;
    o->type = r->type;
    o->code = r->code;
}

static int released;
static void on_release(void *data)
{
    (void)data;
    released++;
}

/* Close, then aredis_loop_run() must return by itself within max_ms, the
 * client released. Returns the time it took. */
static int64_t close_and_run(int64_t max_ms)
{
    aredis_client_set_data(w.c, NULL, on_release);
    int64_t t0 = testenv_now_ms();
    aredis_client_close(w.c);
    cr_assert_eq(aredis_loop_run(w.loop), 0);
    int64_t took = testenv_now_ms() - t0;
    cr_assert_leq(took, max_ms, "aredis_loop_run() returned after %lld ms",
                  (long long)took);
    cr_assert_eq(released, 1, "the client was not released");
    w.c = NULL;
    return took;
}

/* The server is gone; the commands submitted before the close fail by the
 * usual rules -- the reconnect attempts run out (ECONNREFUSED), a deadline
 * passes (ETIMEDOUT) -- and then the loop returns. */
Test(extras_faults, close_with_server_down, .timeout = 60)
{
    start_server("closedown");
    start_client(w.srv.s.port, (aredis_options){0});
    outcome ping = {0};
    cr_assert_eq(aredis_command(w.c, on_outcome, &ping, "PING"), 0);
    cr_assert(faults_run_until(w.loop, flag_set, &ping.calls, 5000));
    cr_assert_eq(ping.type, AREDIS_REPLY_STATUS);
    cr_assert_eq(faults_server_kill9(&w.srv), 0, "%s", testenv_errstr());
    faults_run_for(w.loop, 100); /* the client sees the connection go */

    outcome incr[3], dl = {0};
    memset(incr, 0, sizeof incr);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(
            aredis_command(w.c, on_outcome, &incr[i], "INCR %s", "faults:x:n"),
            0);
    aredis_cmd_opts o = {.timeout_ms = 150};
    cr_assert_eq(
        aredis_command_opts(w.c, &o, on_outcome, &dl, "GET %s", "faults:x:n"),
        0);
    int64_t took = close_and_run(10000);
    fprintf(stderr, "FAULT close-server-down: loop returned after %lld ms\n",
            (long long)took);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(incr[i].calls, 1);
        cr_assert_eq(incr[i].code, AREDIS_ECONNREFUSED, "INCR %d: %s", i,
                     aredis_err_name(incr[i].code));
    }
    cr_assert_eq(dl.calls, 1);
    cr_assert_eq(dl.code, AREDIS_ETIMEDOUT, "GET: %s",
                 aredis_err_name(dl.code));
    finish();
}

/* Reconnecting forever: a command with a deadline ends the close at that
 * deadline; the loop does not wait for the server. */
Test(extras_faults, close_reconnecting_forever, .timeout = 60)
{
    int port = testenv_free_port();
    cr_assert_gt(port, 0);
    w.srv.running = 0;
    start_client(port, (aredis_options){.reconnect_max_attempts = -1,
                                        .command_timeout_ms = 300});
    outcome g = {0};
    cr_assert_eq(aredis_command(w.c, on_outcome, &g, "GET %s", "k"), 0);
    int64_t took = close_and_run(3000);
    cr_assert_geq(took, 250, "the close did not wait for the deadline");
    cr_assert_eq(g.calls, 1);
    cr_assert_eq(g.code, AREDIS_ETIMEDOUT, "%s", aredis_err_name(g.code));
    aredis_loop_free(w.loop);
    w.loop = NULL;
}

/* ---- a blocking SCAN iterator's deadline ---------------------------------
 */

/* The blocking iterator's calls have the walk's timeout_ms (they had the
 * client's command_timeout_ms, 10 s here): with the server paused
 * (SIGSTOP), the next element is AREDIS_ETIMEDOUT within a few hundred
 * ms, and stays so; once the server runs again a new iterator walks every
 * key. */
Test(extras_faults, sync_scan_times_out_on_a_paused_server, .timeout = 60)
{
    enum { NKEYS = 30 };
    start_server("syncscan");
    char url[128];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", w.srv.s.port);
    aredis_status st;
    aredis_sync *sy = aredis_sync_connect(
        &(aredis_options){.url = url, .command_timeout_ms = 10000}, &st);
    cr_assert_not_null(sy, "%s", st.msg);
    for (int i = 0; i < NKEYS; i++) {
        aredis_reply *r = aredis_sync_command(sy, "SET scan:%d v", i);
        cr_assert_not_null(r);
        cr_assert_eq(r->type, AREDIS_REPLY_STATUS, "%s", r->str);
        aredis_reply_free(r);
    }
    aredis_scan_opts o = {.match = "scan:*", .count = 5, .timeout_ms = 200};
    aredis_sync_scan *it = aredis_sync_scan_new(sy, &o, &st);
    cr_assert_not_null(it, "%s", st.msg);
    cr_assert_eq(faults_server_pause(&w.srv), 0, "%s", testenv_errstr());
    int64_t start = testenv_now_ms();
    aredis_scan_elem e;
    int rc = aredis_sync_scan_next(it, &e);
    int64_t took = testenv_now_ms() - start;
    cr_assert_eq(faults_server_resume(&w.srv), 0, "%s", testenv_errstr());
    fprintf(stderr, "FAULT sync-scan-paused: %d after %lld ms\n", rc,
            (long long)took);
    cr_assert_eq(rc, AREDIS_ETIMEDOUT, "%d: %s", rc,
                 aredis_sync_scan_errmsg(it));
    cr_assert_lt(took, 1500, "took %lld ms", (long long)took);
    cr_assert_eq(aredis_sync_scan_next(it, &e), AREDIS_ETIMEDOUT, "sticky");
    aredis_sync_scan_free(it);

    char seen[NKEYS] = {0};
    it = aredis_sync_scan_new(sy, &o, &st);
    cr_assert_not_null(it, "%s", st.msg);
    while ((rc = aredis_sync_scan_next(it, &e)) == 1) {
        cr_assert(e.len > 5 && e.len < 10, "%.*s", (int)e.len, e.str);
        char num[8] = {0};
        memcpy(num, e.str + 5, e.len - 5);
        int i = (int)strtol(num, NULL, 10);
        cr_assert(i >= 0 && i < NKEYS, "%.*s", (int)e.len, e.str);
        seen[i] = 1;
    }
    cr_assert_eq(rc, 0, "%d: %s", rc, aredis_sync_scan_errmsg(it));
    for (int i = 0; i < NKEYS; i++)
        cr_assert(seen[i], "scan:%d was never returned", i);
    aredis_sync_scan_free(it);
    aredis_sync_free(sy);
    finish();
}

/* ---- the node API's per-call options --------------------------------------
 */

typedef struct node_outcome {
    int calls, type, code, part_code;
} node_outcome;

static void on_node_outcome(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    node_outcome *o = ud;
    o->calls++;
    o->type = r->type;
    o->code = r->code;
    if (r->type == AREDIS_REPLY_MAP && r->len == 2)
        o->part_code = r->element[1].code;
}

/* aredis_node_command_opts() and aredis_nodes_command_opts() give the
 * command their options' deadline, not the client's (10 s): with the
 * server paused, the node's PING fails with AREDIS_ETIMEDOUT after
 * 150 ms, and the fan-out's map holds that error for the node. On one
 * server the node API names that server. */
Test(extras_faults, node_commands_have_their_own_deadline, .timeout = 60)
{
    start_server("nodeopts");
    start_client(w.srv.s.port, (aredis_options){.command_timeout_ms = 10000});
    outcome ping = {0};
    cr_assert_eq(aredis_command(w.c, on_outcome, &ping, "PING"), 0);
    cr_assert(faults_run_until(w.loop, flag_set, &ping.calls, 5000));
    aredis_node_addr n;
    cr_assert_eq(aredis_client_nodes(w.c, AREDIS_NODES_ALL, &n, 1), 1);

    cr_assert_eq(faults_server_pause(&w.srv), 0, "%s", testenv_errstr());
    aredis_cmd_opts o = {.timeout_ms = 150};
    node_outcome one = {0}, each = {0};
    int64_t start = testenv_now_ms();
    cr_assert_eq(aredis_node_command_opts(w.c, &o, n.host, n.port,
                                          on_node_outcome, &one, "PING"),
                 0);
    cr_assert_eq(aredis_nodes_command_opts(w.c, &o, AREDIS_NODES_ALL,
                                           on_node_outcome, &each, "PING"),
                 0);
    int both = 0;
    while (both == 0 && testenv_now_ms() < start + 3000) {
        faults_run_for(w.loop, 10);
        both = one.calls > 0 && each.calls > 0;
    }
    int64_t took = testenv_now_ms() - start;
    cr_assert_eq(faults_server_resume(&w.srv), 0, "%s", testenv_errstr());
    cr_assert(both, "no reply after %lld ms", (long long)took);
    cr_assert_lt(took, 1000, "took %lld ms", (long long)took);
    cr_assert_eq(one.type, AREDIS_REPLY_ERROR);
    cr_assert_eq(one.code, AREDIS_ETIMEDOUT, "%s", aredis_err_name(one.code));
    cr_assert_eq(each.type, AREDIS_REPLY_MAP);
    cr_assert_eq(each.part_code, AREDIS_ETIMEDOUT, "%s",
                 aredis_err_name(each.part_code));
    faults_run_for(w.loop, 300); /* the late replies land on nobody */
    cr_assert_eq(one.calls, 1);
    cr_assert_eq(each.calls, 1);
    finish();
}
