/* A command whose deadline passes before any of its bytes were written is
 * never sent, against a private real server stopped with SIGSTOP (so
 * nothing is answered meanwhile): the INCR that timed out must not have
 * run once the server is back, whether its bytes were held in a deep
 * pipeline (conn.h, aredis__conn_held) or refused by a full socket. The
 * timeout callback submits the next command itself. A command that
 * applies to the next one (CLIENT CACHING YES) never goes alone, and a
 * pooled connection whose command went before it was ready is free again.
 * Each test also asserts that every command completed exactly once, with
 * a reply. Public API only; the built-in loop. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aredis/aredis.h"
#include "faults.h"
#include "faultscheck.h"

enum { MAX_CMDS = 256 };

static struct {
    faults_server srv;
    aredis_loop *loop;
    aredis_client *c;
    faults_track t;
    faults_cmd cmds[MAX_CMDS];
    int next; /* what the timeout callback submitted, or -1 */
} w;

static void start(const char *tag)
{
    cr_assert_eq(faults_server_start(&w.srv, tag, NULL, 0, 0), 0, "%s",
                 testenv_errstr());
    w.c = faults_client_new(&w.loop, w.srv.s.port, (aredis_options){0}, NULL);
    cr_assert_not_null(w.c, "%s", testenv_errstr());
    faults_track_init(&w.t, w.cmds, MAX_CMDS);
    w.next = -1;
}

#define submit(...) faults_send_ok(&w.t, w.c, __VA_ARGS__)

#define wait_all(timeout_ms) faults_wait_all(w.loop, &w.t, (timeout_ms))

static void finish(void)
{
    faults_end(&w.t, w.c, w.loop, &w.srv);
}

/* The INCR's callback: recorded like the others, and its failure submits
 * the next command from inside the callback. */
static void on_incr(aredis_client *c, const aredis_reply *r, void *ud)
{
    faults_cmd *k = ud;
    faults_reply_cb(c, r, k);
    if (r != NULL && r->type == AREDIS_REPLY_ERROR && w.next < 0)
        w.next = faults_send(&w.t, c, NULL, "GET unsent:n");
}

/* A record for the next command, tracked like faults_send's. */
static faults_cmd *track(const char *cmd)
{
    cr_assert_lt(w.t.sent, MAX_CMDS);
    faults_cmd *k = &w.t.cmds[w.t.sent];
    memset(k, 0, sizeof *k);
    snprintf(k->cmd, sizeof k->cmd, "%s", cmd);
    k->t = &w.t;
    k->idx = w.t.sent;
    return k;
}

/* cmd (a plain format) with options o, whose failure submits the next
 * command from inside its callback (on_incr). */
static int submit_first(const aredis_cmd_opts *o, const char *cmd)
{
    faults_cmd *k = track(cmd);
    int e = aredis_command_opts(w.c, o, on_incr, k, cmd);
    cr_assert_eq(e, 0, "%s", aredis_err_name(e));
    return w.t.sent++;
}

/* INCR unsent:n with a 100 ms deadline. */
static int submit_incr(void)
{
    return submit_first(&(aredis_cmd_opts){.timeout_ms = 100}, "INCR unsent:n");
}

/* The INCR timed out unsent; the server, resumed, answers everything else;
 * the counter was never incremented. */
static void check(int incr)
{
    faults_run_for(w.loop, 300);
    faults_cmd *k = &w.cmds[incr];
    cr_assert_eq(k->calls, 1, "the INCR's deadline passed");
    cr_assert(k->type == AREDIS_REPLY_ERROR && k->code == AREDIS_ETIMEDOUT,
              "INCR: %s %s", aredis_err_name(k->code), k->text);
    cr_assert_geq(w.next, 0, "the timeout callback submitted the next one");
    cr_assert_eq(faults_server_resume(&w.srv), 0, "%s", testenv_errstr());
    int last = submit(NULL, "GET unsent:n");
    wait_all(10000);
    for (int i = 0; i < w.t.sent; i++)
        cr_assert(w.cmds[i].type != AREDIS_REPLY_ERROR || i == incr,
                  "command %d (%s): %s", i, w.cmds[i].cmd, w.cmds[i].text);
    cr_assert_eq(w.cmds[w.next].type, AREDIS_REPLY_NIL,
                 "the INCR that timed out ran before the next command: %s",
                 w.cmds[w.next].text);
    cr_assert_eq(w.cmds[last].type, AREDIS_REPLY_NIL,
                 "the INCR that timed out ran later: %s", w.cmds[last].text);
    cr_assert(strstr(k->text, "(not sent)") != NULL, "%s", k->text);
    finish();
}

/* Stop the server, then make a deep pipeline: 100 PINGs in one write,
 * one more in a second. With two writes unanswered, what comes next is
 * held in the output buffer, unwritten. */
static void hold(void)
{
    submit(NULL, "PING");
    wait_all(5000);
    cr_assert_eq(faults_server_pause(&w.srv), 0, "%s", testenv_errstr());
    for (int i = 0; i < 100; i++)
        submit(NULL, "PING");
    faults_run_for(w.loop, 50);
    submit(NULL, "PING");
    faults_run_for(w.loop, 50);
}

/* The INCR is held until its deadline. */
Test(unsent, held_in_a_deep_pipeline, .timeout = 60)
{
    start("unsent-held");
    hold();
    check(submit_incr());
}

/* CLIENT CACHING YES applies to the command after it: its deadline never
 * takes it out alone, so the INCR after it (no deadline) still goes with
 * it (the server refuses it: no tracking here). */
Test(unsent, a_command_for_the_next_one_never_goes_alone, .timeout = 60)
{
    start("unsent-next");
    hold();
    int yes =
        submit(&(aredis_cmd_opts){.timeout_ms = 100}, "CLIENT CACHING YES");
    int incr = submit(NULL, "INCR unsent:n");
    faults_run_for(w.loop, 300);
    cr_assert_eq(w.cmds[yes].code, AREDIS_ETIMEDOUT, "%s", w.cmds[yes].text);
    cr_assert(strstr(w.cmds[yes].text, "(not sent)") == NULL,
              "taken out without the command it applies to: %s",
              w.cmds[yes].text);
    cr_assert_eq(faults_server_resume(&w.srv), 0, "%s", testenv_errstr());
    wait_all(10000);
    cr_assert_eq(w.cmds[incr].type, AREDIS_REPLY_INTEGER, "%s",
                 w.cmds[incr].text);
    cr_assert_eq(w.cmds[incr].integer, 1);
    finish();
}

/* A full socket: the stopped server reads nothing, so 16 MB of SETs fill
 * the kernel's buffers and the INCR after them waits for the socket to
 * take more. */
Test(unsent, behind_a_full_socket, .timeout = 60)
{
    start("unsent-full");
    submit(NULL, "PING");
    wait_all(5000);
    cr_assert_eq(faults_server_pause(&w.srv), 0, "%s", testenv_errstr());
    size_t vlen = (size_t)1 << 20;
    char *v = malloc(vlen);
    cr_assert_not_null(v);
    memset(v, 'x', vlen);
    for (int i = 0; i < 16; i++) {
        char key[32];
        snprintf(key, sizeof key, "unsent:big:%d", i);
        const char *argv[] = {"SET", key, v};
        const size_t lens[] = {3, strlen(key), vlen};
        cr_assert_geq(faults_sendv(&w.t, w.c, NULL, 3, argv, lens), 0);
    }
    free(v);
    faults_run_for(w.loop, 50);
    check(submit_incr());
}

/* A blocking command on a pooled connection that is still connecting (the
 * stopped server never answers its handshake) times out unsent: the
 * connection, left with nothing to do, is free again for the next one. */
Test(unsent, pooled_connection_freed_when_its_command_never_went, .timeout = 60)
{
    cr_assert_eq(faults_server_start(&w.srv, "unsent-pool", NULL, 0, 0), 0,
                 "%s", testenv_errstr());
    w.c = faults_client_new(
        &w.loop, w.srv.s.port,
        (aredis_options){.pool_max = 1, .pool_wait_ms = 1000}, NULL);
    cr_assert_not_null(w.c, "%s", testenv_errstr());
    faults_track_init(&w.t, w.cmds, MAX_CMDS);
    submit(NULL, "PING");
    wait_all(5000);
    cr_assert_eq(faults_server_pause(&w.srv), 0, "%s", testenv_errstr());
    int b = submit(&(aredis_cmd_opts){.timeout_ms = 100}, "BLPOP unsent:q 0");
    faults_run_for(w.loop, 300);
    cr_assert_eq(w.cmds[b].code, AREDIS_ETIMEDOUT, "%s", w.cmds[b].text);
    cr_assert(strstr(w.cmds[b].text, "(not sent)") != NULL, "%s",
              w.cmds[b].text);
    cr_assert_eq(faults_server_resume(&w.srv), 0, "%s", testenv_errstr());
    int next = submit(NULL, "BLPOP unsent:q 0.1");
    wait_all(5000);
    cr_assert_eq(w.cmds[next].type, AREDIS_REPLY_NIL,
                 "the only pooled connection stayed busy: %s %s",
                 aredis_err_name(w.cmds[next].code), w.cmds[next].text);
    finish();
}

/* ---- the parts of a whole stay whole -------------------------------------
 */

/* A stopped server, and a client whose connection waits for it: the TCP
 * connection completes in the kernel, the handshake is never answered. */
static void start_unready(const char *tag, aredis_options o)
{
    cr_assert_eq(faults_server_start(&w.srv, tag, NULL, 0, 0), 0, "%s",
                 testenv_errstr());
    cr_assert_eq(faults_server_pause(&w.srv), 0, "%s", testenv_errstr());
    w.c = faults_client_new(&w.loop, w.srv.s.port, o, NULL);
    cr_assert_not_null(w.c, "%s", testenv_errstr());
    faults_track_init(&w.t, w.cmds, MAX_CMDS);
    w.next = -1;
}

/* SET unsent:n ran inside a MULTI or not at all: its reply was QUEUED or
 * a client-side failure (never the +OK of a SET run alone), and EXEC
 * answered it with an array whenever the key was set. */
static void check_whole(int set, int exec, int got)
{
    faults_cmd *s = &w.cmds[set], *x = &w.cmds[exec], *g = &w.cmds[got];
    cr_assert(s->type == AREDIS_REPLY_ERROR || strcmp(s->text, "QUEUED") == 0,
              "the SET ran outside its transaction: %s", s->text);
    cr_assert(x->type == AREDIS_REPLY_ARRAY ||
                  (x->type == AREDIS_REPLY_ERROR && x->code != AREDIS_ESERVER),
              "EXEC: %s %s", aredis_err_name(x->code), x->text);
    cr_assert(g->type == AREDIS_REPLY_NIL || x->type == AREDIS_REPLY_ARRAY,
              "the key was set, but not by EXEC: %s", g->text);
}

/* MULTI, SET, EXEC submitted as parts of a whole (AREDIS_CMD_TOGETHER)
 * while the connection waits for the server, with deadlines that differ:
 * the MULTI's passes first and its callback submits the next command.
 * MULTI is not taken out alone, so the SET never runs outside it. */
Test(unsent, a_waiting_transaction_is_never_split, .timeout = 60)
{
    start_unready("unsent-txn", (aredis_options){0});
    int multi = submit_first(
        &(aredis_cmd_opts){.timeout_ms = 100, .flags = AREDIS_CMD_TOGETHER},
        "MULTI");
    aredis_cmd_opts part = {.timeout_ms = 5000, .flags = AREDIS_CMD_TOGETHER};
    int set = submit(&part, "SET unsent:n 1");
    int exec = submit(&part, "EXEC");
    faults_run_for(w.loop, 300);
    cr_assert_eq(w.cmds[multi].code, AREDIS_ETIMEDOUT, "%s",
                 w.cmds[multi].text);
    cr_assert(strstr(w.cmds[multi].text, "(not sent)") == NULL,
              "MULTI taken out alone: %s", w.cmds[multi].text);
    cr_assert_geq(w.next, 0, "the timeout callback submitted the next one");
    cr_assert_eq(faults_server_resume(&w.srv), 0, "%s", testenv_errstr());
    wait_all(10000);
    cr_assert_str_eq(w.cmds[set].text, "QUEUED");
    cr_assert_eq(w.cmds[exec].type, AREDIS_REPLY_ARRAY, "EXEC: %s",
                 w.cmds[exec].text);
    check_whole(set, exec, w.next);
    finish();
}

/* ---- on a borrowed connection ---------------------------------------------
 */

static aredis_exclusive *w_x;

static void on_acquired(aredis_client *c, aredis_exclusive *x, int status,
                        void *ud)
{
    (void)c;
    (void)ud;
    cr_assert_eq(status, 0, "%s", aredis_err_name(status));
    w_x = x;
}

static int acquired(const void *arg)
{
    (void)arg;
    return w_x != NULL;
}

/* A command on the borrowed connection, tracked (no argument has a
 * space). */
static int xsend(aredis_reply_cb cb, const char *cmd)
{
    faults_cmd *k = track(cmd);
    char buf[64];
    const char *argv[8];
    int argc = 0;
    snprintf(buf, sizeof buf, "%s", cmd);
    for (char *t = buf; *t != '\0' && argc < 8; argc++) {
        argv[argc] = t;
        t += strcspn(t, " ");
        if (*t == ' ')
            *t++ = '\0';
    }
    int e = aredis_exclusive_commandv(w_x, cb, k, argc, argv, NULL);
    cr_assert_eq(e, 0, "%s", aredis_err_name(e));
    return w.t.sent++;
}

static int next_sent(const void *arg)
{
    (void)arg;
    return w.next >= 0;
}

/* The MULTI's callback: its failure sends the next command on the same
 * borrowed connection. */
static void on_xmulti(aredis_client *c, const aredis_reply *r, void *ud)
{
    faults_reply_cb(c, r, ud);
    if (r != NULL && r->type == AREDIS_REPLY_ERROR && w.next < 0)
        w.next = xsend(faults_reply_cb, "GET unsent:n");
}

/* MULTI, SET, EXEC on an exclusive connection that waits for the server:
 * the MULTI submitted first times out first (the client's deadline; the
 * SET and EXEC came later), and nothing of the borrower's sequence is
 * taken out, so the SET never runs on its own. */
Test(unsent, a_borrowed_connection_keeps_its_sequence_whole, .timeout = 60)
{
    start_unready("unsent-lent",
                  (aredis_options){.command_timeout_ms = 1000, .pool_max = 1});
    w_x = NULL;
    cr_assert_eq(aredis_client_acquire(w.c, on_acquired, NULL), 0);
    cr_assert(faults_run_until(w.loop, acquired, NULL, 5000));
    int multi = xsend(on_xmulti, "MULTI");
    faults_run_for(w.loop, 500);
    int set = xsend(faults_reply_cb, "SET unsent:n 1");
    int exec = xsend(faults_reply_cb, "EXEC");
    /* Until the MULTI's deadline: the others' comes 500 ms later. */
    cr_assert(faults_run_until(w.loop, next_sent, NULL, 5000),
              "the timeout callback submitted the next one");
    cr_assert_eq(w.cmds[multi].code, AREDIS_ETIMEDOUT, "%s",
                 w.cmds[multi].text);
    cr_assert_eq(faults_server_resume(&w.srv), 0, "%s", testenv_errstr());
    wait_all(10000);
    check_whole(set, exec, w.next);
    aredis_exclusive_release(w_x);
    int last = submit(NULL, "GET unsent:n");
    wait_all(10000);
    check_whole(set, exec, last);
    finish();
}

/* ---- the transaction helper ------------------------------------------------
 */

static struct {
    int bodies, done, twice, code, type;
    char text[160];
} tx;

static void tx_body(aredis_pipeline *p, void *ud)
{
    (void)ud;
    tx.bodies++;
    cr_assert_eq(aredis_pipeline_multi(p), 0);
    cr_assert_eq(aredis_pipeline_command(p, "INCR unsent:n"), 0);
    cr_assert_eq(aredis_transaction_commit(p), 0);
}

static void tx_done(aredis_client *c, const aredis_reply *r, void *ud);

static void tx_start(void)
{
    const char *keys[] = {"unsent:n"};
    cr_assert_eq(aredis_transaction(w.c, NULL, tx_body, tx_done, NULL, 1, keys),
                 0);
}

/* The first attempt's failure (its WATCH timed out) starts the next one
 * from inside the callback. */
static void tx_done(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    (void)ud;
    cr_assert_not_null(r);
    if (++tx.done == 1) {
        tx.code = r->code;
        tx.type = r->type;
        snprintf(tx.text, sizeof tx.text, "%.*s", (int)r->len,
                 r->str != NULL ? r->str : "");
        tx_start();
    } else if (tx.done == 2) {
        cr_assert_eq(r->type, AREDIS_REPLY_ARRAY, "%.*s", (int)r->len,
                     r->str != NULL ? r->str : "");
    } else {
        tx.twice++;
    }
}

static int tx_one_done(const void *arg)
{
    (void)arg;
    return tx.done >= 1;
}

static int tx_both_done(const void *arg)
{
    (void)arg;
    return tx.done >= 2;
}

/* aredis_transaction() while the server does not answer: its WATCH, on a
 * borrowed connection still waiting for the server, times out; the next
 * transaction, started from that callback, runs once the server is back,
 * and the body of the first never ran. */
Test(unsent, a_transaction_whose_watch_times_out_waiting, .timeout = 60)
{
    start_unready("unsent-watch", (aredis_options){.command_timeout_ms = 500});
    memset(&tx, 0, sizeof tx);
    tx_start();
    cr_assert(faults_run_until(w.loop, tx_one_done, NULL, 5000),
              "the WATCH's deadline passed");
    cr_assert_eq(tx.type, AREDIS_REPLY_ERROR);
    cr_assert_eq(tx.code, AREDIS_ETIMEDOUT, "%s", tx.text);
    cr_assert_eq(tx.bodies, 0);
    cr_assert_eq(faults_server_resume(&w.srv), 0, "%s", testenv_errstr());
    cr_assert(faults_run_until(w.loop, tx_both_done, NULL, 10000),
              "the second transaction did not complete");
    cr_assert_eq(tx.bodies, 1);
    int got = submit(NULL, "GET unsent:n");
    wait_all(10000);
    cr_assert_str_eq(w.cmds[got].text, "1", "the INCR ran once");
    cr_assert_eq(tx.twice, 0);
    finish();
}

/* ---- pipelines ------------------------------------------------------------
 */

static struct {
    int calls, code, type;
    char text[200];
} pl;

static void pl_done(aredis_pipeline *p, const aredis_reply *r, void *ud)
{
    (void)p;
    (void)ud;
    cr_assert_not_null(r);
    if (pl.calls++ == 0) {
        pl.code = r->code;
        pl.type = r->type;
        snprintf(pl.text, sizeof pl.text, "%.*s", (int)r->len,
                 r->str != NULL ? r->str : "");
    }
}

static int pl_called(const void *arg)
{
    (void)arg;
    return pl.calls > 0;
}

/* Held in a deep pipeline with a 100 ms deadline: INCR unsent:n as a
 * plain pipeline's command or inside a transaction. */
static aredis_pipeline *held_pipeline(int transaction)
{
    start("unsent-pipe");
    memset(&pl, 0, sizeof pl);
    hold();
    aredis_pipeline *p = aredis_pipeline_new(w.c, transaction);
    cr_assert_not_null(p);
    cr_assert_eq(
        aredis_pipeline_set_opts(p, &(aredis_pipeline_opts){.timeout_ms = 100}),
        0);
    cr_assert_eq(aredis_pipeline_command(p, "INCR unsent:n"), 0);
    cr_assert_eq(aredis_pipeline_execute(p, pl_done, NULL), 0);
    cr_assert(faults_run_until(w.loop, pl_called, NULL, 5000));
    cr_assert_eq(pl.type, AREDIS_REPLY_ERROR);
    cr_assert_eq(pl.code, AREDIS_ETIMEDOUT, "%s", pl.text);
    cr_assert_eq(faults_server_resume(&w.srv), 0, "%s", testenv_errstr());
    return p;
}

/* A plain pipeline's commands are independent: never re-sent after a loss
 * (RETRY_NONE, the default) is not "never taken out", so one that times
 * out unwritten is never sent. */
Test(unsent, a_plain_pipeline_command_times_out_unsent, .timeout = 60)
{
    aredis_pipeline *p = held_pipeline(0);
    cr_assert(strstr(pl.text, "(not sent)") != NULL, "%s", pl.text);
    int got = submit(NULL, "GET unsent:n");
    wait_all(10000);
    cr_assert_eq(w.cmds[got].type, AREDIS_REPLY_NIL,
                 "the INCR that timed out unsent ran: %s", w.cmds[got].text);
    cr_assert_eq(pl.calls, 1);
    aredis_pipeline_free(p);
    finish();
}

/* A transaction's parts stay whole: MULTI, INCR and EXEC all time out
 * unwritten, none is taken out, and the transaction runs whole once the
 * server is back (its late replies dropped). */
Test(unsent, a_transaction_times_out_whole, .timeout = 60)
{
    aredis_pipeline *p = held_pipeline(1);
    cr_assert(strstr(pl.text, "(not sent)") == NULL, "%s", pl.text);
    int got = submit(NULL, "GET unsent:n");
    wait_all(10000);
    cr_assert_str_eq(w.cmds[got].text, "1",
                     "the transaction did not run whole");
    cr_assert_eq(pl.calls, 1);
    aredis_pipeline_free(p);
    finish();
}

/* ---- a command the pool holds ----------------------------------------------
 */

/* The rule holds wherever a command waits: a part of a whole waiting for
 * a pooled connection (the only one is busy) is not taken out by its
 * deadline, and goes once the connection is free. */
Test(unsent, a_part_waiting_for_the_pool_stays, .timeout = 60)
{
    cr_assert_eq(faults_server_start(&w.srv, "unsent-pooled", NULL, 0, 0), 0,
                 "%s", testenv_errstr());
    w.c = faults_client_new(
        &w.loop, w.srv.s.port,
        (aredis_options){.pool_max = 1, .pool_wait_ms = 5000}, NULL);
    cr_assert_not_null(w.c, "%s", testenv_errstr());
    faults_track_init(&w.t, w.cmds, MAX_CMDS);
    int busy = submit(NULL, "BLPOP unsent:q 0");
    faults_run_for(w.loop, 50);
    int part = submit(
        &(aredis_cmd_opts){.timeout_ms = 100, .flags = AREDIS_CMD_TOGETHER},
        "BLPOP unsent:r 0");
    faults_run_for(w.loop, 200);
    cr_assert_eq(w.cmds[part].code, AREDIS_ETIMEDOUT, "%s", w.cmds[part].text);
    cr_assert(strstr(w.cmds[part].text, "(not sent)") == NULL,
              "taken out alone: %s", w.cmds[part].text);
    submit(NULL, "LPUSH unsent:q x");
    faults_run_for(w.loop, 100);
    submit(NULL, "LPUSH unsent:r y");
    /* The part, sent once the connection was free, pops what was pushed
     * (its reply dropped); the list stays full if it never went. */
    int len = -1;
    for (int i = 0; i < 60 && (len < 0 || w.cmds[len].integer != 0); i++) {
        len = submit(NULL, "LLEN unsent:r");
        wait_all(10000);
        if (w.cmds[len].integer != 0)
            faults_run_for(w.loop, 50);
    }
    cr_assert_eq(w.cmds[busy].type, AREDIS_REPLY_ARRAY, "%s",
                 w.cmds[busy].text);
    cr_assert_eq(w.cmds[len].integer, 0,
                 "the part that timed out waiting was never sent");
    finish();
}
