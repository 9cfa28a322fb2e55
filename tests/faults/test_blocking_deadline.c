/* Deadlines of blocking commands, against a private real server.
 *
 * The rule (include/aredis/options.h, docs/guide/commands.md): a per-call
 * timeout is the whole deadline; otherwise command_timeout_ms is a margin
 * on top of the time the server may hold a blocking command (BLPOP's
 * timeout argument, XREAD's BLOCK, WAIT's milliseconds), so a server-side
 * timeout answers nil as usual while a stalled server fails the command on
 * its deadline; a blocking command without a server-side limit waits as
 * long as it says. Each test also asserts that every command completed
 * exactly once. Public API only; the built-in loop. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "aredis/aredis.h"
#include "faults.h"
#include "faultscheck.h"

enum { MAX_CMDS = 16 };

static struct {
    faults_server srv;
    aredis_loop *loop;
    aredis_client *c;
    faults_track t;
    faults_cmd cmds[MAX_CMDS];
} w;

static void start(int64_t command_timeout_ms)
{
    cr_assert_eq(faults_server_start(&w.srv, "blockdl", NULL, 0, 0), 0, "%s",
                 testenv_errstr());
    w.loop = aredis_loop_new();
    cr_assert_not_null(w.loop);
    aredis_status st;
    w.c = aredis_client_new(
        w.loop,
        &(aredis_options){.host = "127.0.0.1",
                          .port = w.srv.s.port,
                          .command_timeout_ms = command_timeout_ms},
        &st);
    cr_assert_not_null(w.c, "%s", st.msg);
    faults_track_init(&w.t, w.cmds, MAX_CMDS);
}

#define submit(...) faults_send_ok(&w.t, w.c, __VA_ARGS__)

#define wait_all(timeout_ms) faults_wait_all(w.loop, &w.t, (timeout_ms))

/* Ready: a PING answered, so later timings hold no connect. */
static void ping_ok(void)
{
    int i = submit(NULL, "PING");
    wait_all(5000);
    cr_assert_eq(w.cmds[i].type, AREDIS_REPLY_STATUS, "PING: %s",
                 w.cmds[i].text);
}

static void finish(void)
{
    faults_end(&w.t, w.c, w.loop, &w.srv);
}

/* Hold every command of the server for ms (CLIENT PAUSE ... ALL). */
static void pause_server(int ms)
{
    testenv_conn a;
    cr_assert_eq(testenv_connect(&a, &w.srv.s), 0, "%s", testenv_errstr());
    const aredis_reply *r = NULL;
    cr_assert_eq(testenv_command(&a, &r, "CLIENT PAUSE %d ALL", ms), 0, "%s",
                 testenv_errstr());
    cr_assert_eq(r->type, AREDIS_REPLY_STATUS);
    testenv_close(&a);
}

static void expect_timeout(int i, int64_t t0, int64_t min_ms, int64_t max_ms)
{
    faults_cmd *k = &w.cmds[i];
    int64_t took = k->at_ms - t0;
    cr_assert(k->type == AREDIS_REPLY_ERROR && k->code == AREDIS_ETIMEDOUT,
              "%s: want ETIMEDOUT, got type %d %s: %s (after %lld ms)", k->cmd,
              k->type, aredis_err_name(k->code), k->text, (long long)took);
    cr_assert(took >= min_ms && took < max_ms,
              "%s: failed after %lld ms, want [%lld, %lld)", k->cmd,
              (long long)took, (long long)min_ms, (long long)max_ms);
}

/* BLPOP key 1 with command_timeout_ms = 100: the server's own timeout
 * comes first and answers nil; the client's deadline is 1,100 ms. */
Test(blocking_deadline, server_timeout_answers_nil_not_a_timeout, .timeout = 60)
{
    start(100);
    ping_ok();
    int64_t t0 = testenv_now_ms();
    int b = submit(NULL, "BLPOP blockdl:nil 1");
    int x = submit(NULL, "XREAD BLOCK 300 STREAMS blockdl:s $");
    wait_all(5000);
    cr_assert_eq(w.cmds[b].type, AREDIS_REPLY_NIL, "BLPOP: %s %s",
                 aredis_err_name(w.cmds[b].code), w.cmds[b].text);
    cr_assert_geq(w.cmds[b].at_ms - t0, 900, "BLPOP 1 answered early");
    cr_assert_eq(w.cmds[x].type, AREDIS_REPLY_NIL, "XREAD: %s %s",
                 aredis_err_name(w.cmds[x].code), w.cmds[x].text);
    finish();
}

/* BLPOP key 0 blocks without limit: command_timeout_ms does not cut it
 * short, a per-call timeout does, on time. */
Test(blocking_deadline, unbounded_unless_a_per_call_timeout, .timeout = 60)
{
    start(100);
    ping_ok();
    int64_t t0 = testenv_now_ms();
    int forever = submit(NULL, "BLPOP blockdl:forever 0");
    int bounded = submit(&(aredis_cmd_opts){.timeout_ms = 300},
                         "BLPOP blockdl:bounded 0");
    faults_run_for(w.loop, 1000);
    cr_assert_eq(w.cmds[forever].calls, 0,
                 "BLPOP 0 completed (%s) although it has no limit",
                 aredis_err_name(w.cmds[forever].code));
    cr_assert_eq(w.cmds[bounded].calls, 1, "the per-call timeout never fired");
    expect_timeout(bounded, t0, 280, 900);
    /* Feed the list: the unbounded one gets its element. */
    int push = submit(NULL, "LPUSH blockdl:forever v");
    wait_all(5000);
    cr_assert_eq(w.cmds[push].type, AREDIS_REPLY_INTEGER);
    cr_assert_eq(w.cmds[forever].type, AREDIS_REPLY_ARRAY, "BLPOP: %s %s",
                 aredis_err_name(w.cmds[forever].code), w.cmds[forever].text);
    finish();
}

/* A paused server holds BLPOP 1 (seconds), XREAD BLOCK 500 and WAIT 1 300
 * (milliseconds) past their server-side timeouts: each fails on its
 * deadline, the server-side time plus command_timeout_ms = 200, long
 * before the pause ends. Without the margin rule they would wait for the
 * pause (3 s) and then for their own timeouts. */
Test(blocking_deadline, paused_server_fails_on_the_deadline, .timeout = 60)
{
    start(200);
    ping_ok();
    pause_server(3000);
    int64_t t0 = testenv_now_ms();
    int b = submit(NULL, "BLPOP blockdl:paused 1");
    int x = submit(NULL, "XREAD BLOCK 500 STREAMS blockdl:s $");
    int wt = submit(NULL, "WAIT 1 300");
    wait_all(10000);
    expect_timeout(b, t0, 1150, 2500);
    expect_timeout(x, t0, 650, 2000);
    expect_timeout(wt, t0, 450, 1800);
    finish();
}
