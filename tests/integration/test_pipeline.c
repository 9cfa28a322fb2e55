/* Integration tests of pipelines and MULTI/EXEC transactions with WATCH
 * (include/aredis/pipeline.h) against the real standalone server: replies
 * in order with per-command errors in their slots, EXECABORT naming the
 * refused command, EWATCH on a null EXEC, reuse, freeing at every stage,
 * lost connections that must not replay anything, and the WATCH connection
 * going back to the pool. Every completion is counted: exactly once, never
 * inside the call that scheduled it. Runs on the loop under test
 * (tests/support/testloop.h). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aredis/aredis.h"
#include "testclient.h"
#include "testenv.h"

static testenv_server srv;
static char url[128];

static void setup(void)
{
    testclient_standalone(&srv, url, sizeof url, 0);
}

static void assert_str(const aredis_reply *r, const char *want)
{
    cr_assert(r->type == AREDIS_REPLY_STRING || r->type == AREDIS_REPLY_STATUS,
              "type %s, want \"%s\"", aredis_reply_type_name(r->type), want);
    cr_assert_str_eq(r->str, want);
}

TestSuite(pipeline, .init = setup);

Test(pipeline, plain_replies_in_order_with_errors_in_their_slots)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = testclient_new(loop, url);
    char k[64], l[64];
    testenv_key(k, sizeof k, "plain");
    testenv_key(l, sizeof l, "plain-list");
    aredis_pipeline *p = aredis_pipeline_new(c, 0);
    cr_assert_not_null(p);
    cr_assert_eq(aredis_pipeline_command(p, "SET %s %s", k, "v1"), 0);
    cr_assert_eq(aredis_pipeline_command(p, "GET %s", k), 0);
    cr_assert_eq(aredis_pipeline_command(p, "LPUSH %s x", k),
                 0); /* WRONGTYPE */
    const char *argv[] = {"RPUSH", l, "a", "b"};
    cr_assert_eq(aredis_pipeline_commandv(p, 4, argv, NULL), 0);
    cr_assert_eq(aredis_pipeline_command(p, "LRANGE %s 0 -1", l), 0);
    cr_assert_eq(aredis_pipeline_command(p, "DEL %s %s", k, l), 0);
    cr_assert_eq(aredis_pipeline_size(p), 6);
    testgot g = {0};
    cr_assert_eq(aredis_pipeline_execute(p, testgot_keep_pipeline, &g), 0);
    cr_assert_eq(g.calls, 0, "never inside execute");
    cr_assert_eq(aredis_pipeline_command(p, "PING"), AREDIS_ESTATE,
                 "no queueing while a batch is in flight");
    cr_assert_eq(aredis_pipeline_execute(p, testgot_keep_pipeline, &g),
                 AREDIS_ESTATE);
    cr_assert(testloop_run_until(loop, &g.calls, 3000));
    cr_assert_eq(g.r->type, AREDIS_REPLY_ARRAY);
    cr_assert_eq(g.r->len, 6);
    assert_str(&g.r->element[0], "OK");
    assert_str(&g.r->element[1], "v1");
    cr_assert_eq(g.r->element[2].type, AREDIS_REPLY_ERROR);
    cr_assert_eq(g.r->element[2].code, AREDIS_ESERVER);
    cr_assert(strncmp(g.r->element[2].str, "WRONGTYPE", 9) == 0, "%s",
              g.r->element[2].str);
    cr_assert_eq(g.r->element[3].integer, 2);
    cr_assert_eq(g.r->element[4].type, AREDIS_REPLY_ARRAY);
    cr_assert_eq(g.r->element[4].len, 2);
    assert_str(&g.r->element[4].element[1], "b");
    cr_assert_eq(g.r->element[5].integer, 2);
    cr_assert_eq(aredis_pipeline_size(p), 0, "empty again after completion");
    int never = 0;
    testloop_run_until(loop, &never, 30);
    cr_assert_eq(g.calls, 1, "exactly once");
    testgot_clear(&g);
    aredis_pipeline_free(p);
    testclient_finish(loop, c);
}

Test(pipeline, transaction_delivers_the_exec_array)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = testclient_new(loop, url);
    char k[64], s[64];
    testenv_key(k, sizeof k, "tx");
    testenv_key(s, sizeof s, "tx-str");
    aredis_pipeline *p = aredis_pipeline_new(c, 1);
    aredis_pipeline_command(p, "SET %s 10", k);
    aredis_pipeline_command(p, "INCRBY %s 5", k);
    aredis_pipeline_command(p, "SET %s text", s);
    aredis_pipeline_command(p, "INCR %s", s); /* fails when EXEC runs it */
    aredis_pipeline_command(p, "GET %s", k);
    aredis_pipeline_command(p, "DEL %s %s", k, s);
    testgot g = {0};
    cr_assert_eq(aredis_pipeline_execute(p, testgot_keep_pipeline, &g), 0);
    cr_assert_eq(g.calls, 0);
    cr_assert(testloop_run_until(loop, &g.calls, 3000));
    cr_assert_eq(g.r->type, AREDIS_REPLY_ARRAY, "%s",
                 g.r->type == AREDIS_REPLY_ERROR ? g.r->str : "");
    cr_assert_eq(g.r->len, 6);
    assert_str(&g.r->element[0], "OK");
    cr_assert_eq(g.r->element[1].integer, 15);
    cr_assert_eq(g.r->element[3].type, AREDIS_REPLY_ERROR);
    cr_assert_eq(g.r->element[3].code, AREDIS_ESERVER);
    cr_assert(strstr(g.r->element[3].str, "not an integer") != NULL, "%s",
              g.r->element[3].str);
    assert_str(&g.r->element[4], "15");
    cr_assert_eq(g.r->element[5].integer, 2);

    /* An empty transaction is a valid one; an empty plain pipeline is
     * refused (nothing to send, so nothing could complete it). */
    testgot_clear(&g);
    cr_assert_eq(aredis_pipeline_execute(p, testgot_keep_pipeline, &g), 0);
    cr_assert(testloop_run_until(loop, &g.calls, 3000));
    cr_assert_eq(g.r->type, AREDIS_REPLY_ARRAY);
    cr_assert_eq(g.r->len, 0);
    aredis_pipeline *plain = aredis_pipeline_new(c, 0);
    cr_assert_eq(aredis_pipeline_execute(plain, testgot_keep_pipeline, &g),
                 AREDIS_EINVAL);
    aredis_pipeline_free(plain);
    testgot_clear(&g);
    aredis_pipeline_free(p);
    testclient_finish(loop, c);
}

Test(pipeline, execabort_names_the_refused_command)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = testclient_new(loop, url);
    char k[64];
    testenv_key(k, sizeof k, "abort");
    aredis_pipeline *p = aredis_pipeline_new(c, 1);
    aredis_pipeline_command(p, "SET %s first", k);
    aredis_pipeline_command(p, "INCR %s", k);
    aredis_pipeline_command(p, "SET %s", k); /* wrong number of arguments */
    aredis_pipeline_command(p, "NOSUCHCOMMAND");
    testgot g = {0};
    cr_assert_eq(aredis_pipeline_execute(p, testgot_keep_pipeline, &g), 0);
    cr_assert(testloop_run_until(loop, &g.calls, 3000));
    cr_assert_eq(g.r->type, AREDIS_REPLY_ERROR);
    cr_assert_eq(g.r->code, AREDIS_ESERVER);
    cr_assert(strncmp(g.r->str,
                      "EXECABORT: command 2 (SET) failed: ERR wrong "
                      "number of arguments",
                      58) == 0,
              "%s", g.r->str);
    /* Nothing of the block ran. */
    testgot r = {0};
    testgot_command(loop, c, &r, "EXISTS %s", k);
    cr_assert_eq(r.r->integer, 0);
    testgot_clear(&r);

    /* The pipeline is usable again at once. */
    testgot_clear(&g);
    aredis_pipeline_command(p, "SET %s second", k);
    aredis_pipeline_command(p, "GETDEL %s", k);
    cr_assert_eq(aredis_pipeline_execute(p, testgot_keep_pipeline, &g), 0);
    cr_assert(testloop_run_until(loop, &g.calls, 3000));
    cr_assert_eq(g.r->type, AREDIS_REPLY_ARRAY);
    assert_str(&g.r->element[1], "second");
    testgot_clear(&g);
    aredis_pipeline_free(p);
    testclient_finish(loop, c);
}

/* Long server errors with multi-byte characters end up in the batch's
 * message cut cleanly: EXECABORT naming a command whose name is longer
 * than the room for it (the server's own error quotes it too), and a
 * script that does not compile, whose error quotes 600 bytes of its
 * source. */
Test(pipeline, long_server_errors_are_cut_between_characters)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = testclient_new(loop, url);
    char name[129] = "", text[701] = "";
    for (int i = 0; i < 64; i++)
        strcat(name, "\xc3\xa9");
    for (int i = 0; i < 140; i++)
        strcat(text, "\xe2\x82\xac\xc3\xa9");
    aredis_pipeline *p = aredis_pipeline_new(c, 1);
    cr_assert_eq(aredis_pipeline_command(p, "%s %s", name, text), 0);
    testgot g = {0};
    cr_assert_eq(aredis_pipeline_execute(p, testgot_keep_pipeline, &g), 0);
    cr_assert(testloop_run_until(loop, &g.calls, 3000));
    cr_assert_eq(g.r->code, AREDIS_ESERVER, "%s", g.r->str);
    cr_assert(strncmp(g.r->str, "EXECABORT: command 0 (", 22) == 0, "%s",
              g.r->str);
    /* The name, cut to fit: the message goes on after it. */
    const char *end = strstr(g.r->str, ") failed: ");
    cr_assert_not_null(end, "%s", g.r->str);
    char cut[64];
    snprintf(cut, sizeof cut, "%.*s", (int)(end - g.r->str - 22),
             g.r->str + 22);
    testclient_cut_cleanly(cut, name);
    testgot_clear(&g);
    aredis_pipeline_free(p);

    char src[720];
    snprintf(src, sizeof src, "return 1 '%s'", text); /* one too many */
    aredis_script *s = aredis_script_new(src, strlen(src));
    cr_assert_not_null(s);
    p = aredis_pipeline_new(c, 0);
    cr_assert_eq(aredis_pipeline_script(p, s, 0, NULL, 0, NULL), 0);
    cr_assert_eq(aredis_pipeline_execute(p, testgot_keep_pipeline, &g), 0);
    cr_assert(testloop_run_until(loop, &g.calls, 3000));
    cr_assert_eq(g.r->type, AREDIS_REPLY_ERROR);
    cr_assert(strncmp(g.r->str, "SCRIPT LOAD failed: ", 20) == 0, "%s",
              g.r->str);
    testclient_cut_cleanly(g.r->str, NULL);
    testgot_clear(&g);
    aredis_pipeline_free(p);
    aredis_script_free(s);
    testclient_finish(loop, c);
}

/* Each completion starts the next batch from inside the callback. */
typedef struct chain {
    aredis_pipeline *p;
    const char *key;
    int rounds, done;
    long long last;
} chain;

static void next_round(aredis_pipeline *p, const aredis_reply *r, void *ud)
{
    chain *ch = ud;
    cr_assert_eq(r->type, AREDIS_REPLY_ARRAY, "%s",
                 r->type == AREDIS_REPLY_ERROR ? r->str : "");
    ch->last = r->element[r->len - 1].integer;
    if (++ch->rounds == 5) {
        ch->done = 1;
        return;
    }
    cr_assert_eq(aredis_pipeline_size(p), 0);
    for (int i = 0; i <= ch->rounds; i++)
        cr_assert_eq(aredis_pipeline_command(p, "INCR %s", ch->key), 0);
    cr_assert_eq(aredis_pipeline_execute(p, next_round, ch), 0);
}

Test(pipeline, reused_from_its_own_callback)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = testclient_new(loop, url);
    char k[64];
    testenv_key(k, sizeof k, "chain");
    for (int tx = 0; tx <= 1; tx++) {
        chain ch = {aredis_pipeline_new(c, tx), k, 0, 0, 0};
        testgot g = {0};
        testgot_command(loop, c, &g, "DEL %s", k);
        testgot_clear(&g);
        aredis_pipeline_command(ch.p, "INCR %s", k);
        cr_assert_eq(aredis_pipeline_execute(ch.p, next_round, &ch), 0);
        cr_assert(testloop_run_until(loop, &ch.done, 5000));
        cr_assert_eq(ch.last, 1 + 2 + 3 + 4 + 5, "tx=%d", tx);
        aredis_pipeline_free(ch.p);
    }
    testclient_finish(loop, c);
}

static void free_in_callback(aredis_pipeline *p, const aredis_reply *r,
                             void *ud)
{
    testgot_keep_pipeline(p, r, ud);
    aredis_pipeline_free(p);
    aredis_pipeline_free(p); /* twice is harmless */
}

Test(pipeline, freed_never_executed_in_flight_and_in_its_callback)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = testclient_new(loop, url);
    char k[64];
    testenv_key(k, sizeof k, "free");

    /* Never executed: nothing runs, nothing leaks (ASan checks). */
    aredis_pipeline *p = aredis_pipeline_new(c, 1);
    aredis_pipeline_command(p, "SET %s never", k);
    aredis_pipeline_free(p);
    aredis_pipeline_free(NULL);

    /* In flight: the callback still runs, once, with the real outcome. */
    for (int tx = 0; tx <= 1; tx++) {
        testgot g = {0};
        p = aredis_pipeline_new(c, tx);
        aredis_pipeline_command(p, "SET %s inflight", k);
        aredis_pipeline_command(p, "GET %s", k);
        cr_assert_eq(aredis_pipeline_execute(p, testgot_keep_pipeline, &g), 0);
        aredis_pipeline_free(p);
        cr_assert(testloop_run_until(loop, &g.calls, 3000));
        cr_assert_eq(g.r->type, AREDIS_REPLY_ARRAY);
        assert_str(&g.r->element[1], "inflight");
        int never = 0;
        testloop_run_until(loop, &never, 30);
        cr_assert_eq(g.calls, 1);
        testgot_clear(&g);
    }

    /* Freed from its own callback. */
    testgot g = {0};
    p = aredis_pipeline_new(c, 0);
    aredis_pipeline_command(p, "DEL %s", k);
    cr_assert_eq(aredis_pipeline_execute(p, free_in_callback, &g), 0);
    cr_assert(testloop_run_until(loop, &g.calls, 3000));
    testgot_clear(&g);
    testclient_finish(loop, c);
}

Test(pipeline, client_freed_under_a_batch)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = testclient_new(loop, url);
    testgot g[2] = {{0}, {0}};
    aredis_pipeline *p[2];
    for (int tx = 0; tx <= 1; tx++) {
        p[tx] = aredis_pipeline_new(c, tx);
        aredis_pipeline_command(p[tx], "PING");
        aredis_pipeline_command(p[tx], "PING");
        cr_assert_eq(
            aredis_pipeline_execute(p[tx], testgot_keep_pipeline, &g[tx]), 0);
    }
    /* Free order: the pipelines (deferred: in flight), then the client. */
    aredis_pipeline_free(p[0]);
    aredis_pipeline_free(p[1]);
    aredis_client_free(c);
    testloop_free(loop); /* runs the completions */
    for (int tx = 0; tx <= 1; tx++) {
        cr_assert_eq(g[tx].calls, 1, "tx=%d", tx);
        cr_assert_eq(g[tx].r->type, AREDIS_REPLY_ERROR);
        cr_assert_eq(g[tx].r->code, AREDIS_ECANCELED, "tx=%d: %s", tx,
                     g[tx].r->str);
        testgot_clear(&g[tx]);
    }
}

/* ---- lost connections ---------------------------------------------------- */

static long long client_id(aredis_loop *loop, aredis_client *c)
{
    testgot g = {0};
    testgot_command(loop, c, &g, "CLIENT ID");
    cr_assert_eq(g.r->type, AREDIS_REPLY_INTEGER);
    long long id = g.r->integer;
    testgot_clear(&g);
    return id;
}

Test(pipeline, a_lost_connection_fails_the_batch_and_replays_nothing)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = testclient_new(loop, url);
    char a[64], b[64];
    testenv_key(a, sizeof a, "lost-a");
    testenv_key(b, sizeof b, "lost-b");
    char id[32];

    /* Plain: the server closes the connection after the kill, so the SET
     * after it was written and never answered. */
    snprintf(id, sizeof id, "%lld", client_id(loop, c));
    aredis_pipeline *p = aredis_pipeline_new(c, 0);
    aredis_pipeline_command(p, "SET %s 1", a);
    aredis_pipeline_command(p, "CLIENT KILL ID %s SKIPME no", id);
    aredis_pipeline_command(p, "SET %s 1", b);
    testgot g = {0};
    cr_assert_eq(aredis_pipeline_execute(p, testgot_keep_pipeline, &g), 0);
    cr_assert(testloop_run_until(loop, &g.calls, 3000));
    cr_assert_eq(g.r->type, AREDIS_REPLY_ERROR);
    cr_assert_eq(g.r->code, AREDIS_EUNKNOWN, "%s", g.r->str);
    cr_assert(strncmp(g.r->str, "command 2 (SET): ", 17) == 0, "%s", g.r->str);
    testgot e = {0};
    testgot_command(loop, c, &e, "EXISTS %s %s", a, b);
    cr_assert_eq(e.r->integer, 1, "the SET after the kill was not re-sent");
    testgot_clear(&e);

    /* With RETRY_ALL the user allows it: it is sent again, and the batch
     * completes with every reply. */
    testgot_clear(&g);
    snprintf(id, sizeof id, "%lld", client_id(loop, c));
    cr_assert_eq(
        aredis_pipeline_set_opts(
            p, &(aredis_pipeline_opts){.retry = AREDIS_PIPELINE_RETRY_ALL}),
        0);
    aredis_pipeline_command(p, "DEL %s", b);
    aredis_pipeline_command(p, "CLIENT KILL ID %s SKIPME no", id);
    aredis_pipeline_command(p, "SET %s 1", b);
    cr_assert_eq(aredis_pipeline_execute(p, testgot_keep_pipeline, &g), 0);
    cr_assert(testloop_run_until(loop, &g.calls, 3000));
    cr_assert_eq(g.r->type, AREDIS_REPLY_ARRAY, "%s",
                 g.r->type == AREDIS_REPLY_ERROR ? g.r->str : "");
    assert_str(&g.r->element[2], "OK");
    aredis_pipeline_free(p);

    /* Transaction: MULTI ... EXEC written behind a kill is never replayed
     * on the next connection. */
    testgot_clear(&g);
    testgot_command(loop, c, &e, "DEL %s %s", a, b);
    testgot_clear(&e);
    snprintf(id, sizeof id, "%lld", client_id(loop, c));
    p = aredis_pipeline_new(c, 1);
    cr_assert_eq(
        aredis_pipeline_set_opts(
            p, &(aredis_pipeline_opts){.retry = AREDIS_PIPELINE_RETRY_ALL}),
        AREDIS_EINVAL, "transactions are never re-sent");
    aredis_pipeline_command(p, "SET %s 1", a);
    aredis_pipeline_command(p, "SET %s 1", b);
    testgot kill = {0};
    cr_assert_eq(aredis_command(c, testgot_keep, &kill,
                                "CLIENT KILL ID %s SKIPME no", id),
                 0);
    cr_assert_eq(aredis_pipeline_execute(p, testgot_keep_pipeline, &g), 0);
    cr_assert(testloop_run_until(loop, &g.calls, 3000));
    cr_assert_eq(g.r->type, AREDIS_REPLY_ERROR);
    cr_assert(g.r->code == AREDIS_EUNKNOWN || g.r->code == AREDIS_ECLOSED,
              "%s: %s", aredis_err_name(g.r->code), g.r->str);
    testgot_command(loop, c, &e, "EXISTS %s %s", a, b);
    cr_assert_eq(e.r->integer, 0, "the transaction did not run");
    testgot_clear(&e);
    testgot_clear(&kill);
    testgot_clear(&g);
    aredis_pipeline_free(p);
    testclient_finish(loop, c);
}

Test(pipeline, blocking_and_refused_commands)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = testclient_new(loop, url);
    aredis_pipeline *p = aredis_pipeline_new(c, 1);
    aredis_pipeline_command(p, "BLPOP somewhere 1");
    testgot g = {0};
    cr_assert_eq(aredis_pipeline_execute(p, testgot_keep_pipeline, &g),
                 AREDIS_ENOTSUP);
    cr_assert_eq(aredis_pipeline_size(p), 1, "the queue is kept on error");
    cr_assert_eq(aredis_pipeline_reset(p), 0);
    aredis_pipeline_command(p, "XREAD COUNT 1 BLOCK 10 STREAMS s 0");
    cr_assert_eq(aredis_pipeline_execute(p, testgot_keep_pipeline, &g),
                 AREDIS_ENOTSUP);
    aredis_pipeline_reset(p);
    /* Commands that control the transaction itself, or that the server
     * refuses inside MULTI, would break the batch's framing. */
    const char *no_multi[] = {"EXEC", "MULTI", "DISCARD", "WATCH k", "SAVE"};
    for (size_t i = 0; i < sizeof no_multi / sizeof *no_multi; i++) {
        aredis_pipeline_command(p, "INCR counted");
        aredis_pipeline_command(p, no_multi[i]);
        cr_assert_eq(aredis_pipeline_execute(p, testgot_keep_pipeline, &g),
                     AREDIS_ENOTSUP, "%s", no_multi[i]);
        aredis_pipeline_reset(p);
    }
    /* Commands the client refuses would be missing from the batch: the
     * whole batch is refused instead, before anything is sent. */
    for (int tx = 0; tx <= 1; tx++) {
        aredis_pipeline *q = aredis_pipeline_new(c, tx);
        aredis_pipeline_command(q, "SET refused 1");
        aredis_pipeline_command(q, tx ? "SELECT 1" : "SUBSCRIBE news");
        cr_assert_eq(aredis_pipeline_execute(q, testgot_keep_pipeline, &g),
                     AREDIS_EINVAL, "tx=%d", tx);
        aredis_pipeline_free(q);
    }
    /* XREAD without BLOCK is fine. */
    aredis_pipeline_command(p, "XREAD COUNT 1 STREAMS block 0");
    cr_assert_eq(aredis_pipeline_execute(p, testgot_keep_pipeline, &g), 0);
    cr_assert(testloop_run_until(loop, &g.calls, 3000));
    cr_assert_eq(g.r->type, AREDIS_REPLY_ARRAY);
    testgot_clear(&g);
    aredis_pipeline_free(p);
    testclient_finish(loop, c);
}

/* ---- WATCH and immediate mode ---------------------------------------------
 */

Test(pipeline, watch_read_multi_exec)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = testclient_new(loop, url);
    char k[64];
    testenv_key(k, sizeof k, "watch");
    testgot g = {0};
    testgot_command(loop, c, &g, "SET %s 41", k);
    testgot_clear(&g);

    aredis_pipeline *p = aredis_pipeline_new(c, 0);
    const char *keys[] = {k};
    testgot w = {0};
    cr_assert_eq(
        aredis_pipeline_immediate(p, testgot_keep_pipeline, &g, "GET %s", k),
        AREDIS_ESTATE, "no immediate mode before a WATCH");
    cr_assert_eq(aredis_pipeline_watch(p, testgot_keep_pipeline, &w, 1, keys),
                 0);
    cr_assert_eq(w.calls, 0);
    cr_assert_eq(aredis_pipeline_watch(p, testgot_keep_pipeline, &w, 1, keys),
                 AREDIS_ESTATE);
    cr_assert_eq(aredis_pipeline_command(p, "GET %s", k), AREDIS_ESTATE);
    cr_assert(testloop_run_until(loop, &w.calls, 3000));
    assert_str(w.r, "OK");
    cr_assert(aredis_pipeline_watching(p));
    cr_assert_eq(aredis_pipeline_command(p, "GET %s", k), AREDIS_ESTATE,
                 "immediate mode needs aredis_pipeline_immediate()");
    cr_assert_eq(
        aredis_pipeline_immediate(p, testgot_keep_pipeline, &g, "GET %s", k),
        0);
    cr_assert(testloop_run_until(loop, &g.calls, 3000));
    assert_str(g.r, "41");
    long long v = atoll(g.r->str);
    cr_assert_eq(aredis_pipeline_multi(p), 0);
    cr_assert_eq(aredis_pipeline_multi(p), AREDIS_ESTATE, "nested MULTI");
    cr_assert_eq(
        aredis_pipeline_immediate(p, testgot_keep_pipeline, &g, "GET %s", k),
        AREDIS_ESTATE);
    cr_assert_eq(aredis_pipeline_command(p, "SET %s %lld", k, v + 1), 0);
    testgot x = {0};
    cr_assert_eq(aredis_pipeline_execute(p, testgot_keep_pipeline, &x), 0);
    cr_assert(testloop_run_until(loop, &x.calls, 3000));
    cr_assert_eq(x.r->type, AREDIS_REPLY_ARRAY, "%s",
                 x.r->type == AREDIS_REPLY_ERROR ? x.r->str : "");
    assert_str(&x.r->element[0], "OK");
    cr_assert(!aredis_pipeline_watching(p), "the batch ends the WATCH");
    testgot_clear(&g);
    testgot_command(loop, c, &g, "GET %s", k);
    assert_str(g.r, "42");
    testgot_clear(&g);
    testgot_clear(&w);
    testgot_clear(&x);
    aredis_pipeline_free(p);
    testclient_finish(loop, c);
}

Test(pipeline, a_changed_watched_key_gives_ewatch)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = testclient_new(loop, url);
    char k[64], k2[64];
    testenv_key(k, sizeof k, "ewatch");
    testenv_key(k2, sizeof k2, "ewatch-2");
    for (int proto = 2; proto <= 3; proto++) {
        /* RESP2 answers *-1, RESP3 _: both are NIL. */
        aredis_client *pc = aredis_client_new(
            loop, &(aredis_options){.url = url, .protocol = proto}, NULL);
        aredis_pipeline *p = aredis_pipeline_new(pc, 1);
        const char *keys[] = {k};
        const char *keys2[] = {k2};
        testgot w = {0}, g = {0}, x = {0};
        cr_assert_eq(
            aredis_pipeline_watch(p, testgot_keep_pipeline, &w, 1, keys), 0);
        cr_assert(testloop_run_until(loop, &w.calls, 3000));
        /* Watch a second key on the same connection. */
        testgot_clear(&w);
        cr_assert_eq(
            aredis_pipeline_watch(p, testgot_keep_pipeline, &w, 1, keys2), 0);
        cr_assert(testloop_run_until(loop, &w.calls, 3000));
        assert_str(w.r, "OK");
        cr_assert_eq(aredis_client_protocol(pc), proto);
        /* Someone else writes the second key. */
        testgot_command(loop, c, &g, "SET %s theirs", k2);
        aredis_pipeline_multi(p);
        aredis_pipeline_command(p, "SET %s mine", k);
        cr_assert_eq(aredis_pipeline_execute(p, testgot_keep_pipeline, &x), 0);
        cr_assert(testloop_run_until(loop, &x.calls, 3000));
        cr_assert_eq(x.r->type, AREDIS_REPLY_ERROR);
        cr_assert_eq(x.r->code, AREDIS_EWATCH, "proto %d: %s", proto, x.r->str);
        testgot_clear(&g);
        testgot_command(loop, c, &g, "EXISTS %s", k);
        cr_assert_eq(g.r->integer, 0, "the transaction did not run");
        testgot_clear(&g);
        testgot_clear(&w);
        testgot_clear(&x);
        aredis_pipeline_free(p);
        int never = 0;
        testloop_run_until(loop, &never, 30);
        aredis_client_free(pc);
    }
    testgot g = {0};
    testgot_command(loop, c, &g, "DEL %s", k2);
    testgot_clear(&g);
    testclient_finish(loop, c);
}

/* The WATCH connection goes back to the pool with its WATCH dropped: with
 * pool_max 1 the next watch gets the same connection, and a change to a key
 * watched before must not abort the next transaction. */
static void watch_on(aredis_loop *loop, aredis_pipeline *p, const char *key)
{
    testgot w = {0};
    const char *keys[] = {key};
    cr_assert_eq(aredis_pipeline_watch(p, testgot_keep_pipeline, &w, 1, keys),
                 0);
    cr_assert(testloop_run_until(loop, &w.calls, 3000));
    cr_assert_eq(w.r->type, AREDIS_REPLY_STATUS, "%s", w.r->str);
    testgot_clear(&w);
}

static long long exclusive_id(aredis_loop *loop, aredis_pipeline *p)
{
    testgot g = {0};
    cr_assert_eq(
        aredis_pipeline_immediate(p, testgot_keep_pipeline, &g, "CLIENT ID"),
        0);
    cr_assert(testloop_run_until(loop, &g.calls, 3000));
    long long id = g.r->integer;
    testgot_clear(&g);
    return id;
}

Test(pipeline, reset_and_free_unwatch_and_give_the_connection_back)
{
    aredis_loop *loop = testloop_new();
    /* pool_wait_ms outlasts a stall of the shared server (other tests send
     * it DEBUG SLEEP): only a connection never given back fails. */
    aredis_client *c = aredis_client_new(
        loop,
        &(aredis_options){.url = url, .pool_max = 1, .pool_wait_ms = 1500},
        NULL);
    char k[64], k2[64];
    testenv_key(k, sizeof k, "unwatch");
    testenv_key(k2, sizeof k2, "unwatch-2");
    aredis_pipeline *p = aredis_pipeline_new(c, 1);
    watch_on(loop, p, k);
    long long id = exclusive_id(loop, p);

    /* While it is held, another watch cannot get a connection. */
    aredis_pipeline *q = aredis_pipeline_new(c, 1);
    testgot w = {0};
    const char *keys2[] = {k2};
    cr_assert_eq(aredis_pipeline_watch(q, testgot_keep_pipeline, &w, 1, keys2),
                 0);
    cr_assert(testloop_run_until(loop, &w.calls, 3000));
    cr_assert_eq(w.r->code, AREDIS_EPOOL, "%s", w.r->str);
    cr_assert(!aredis_pipeline_watching(q), "a failed watch resets");
    testgot_clear(&w);

    for (int round = 0; round < 2; round++) {
        if (round == 0) {
            cr_assert_eq(aredis_pipeline_reset(p), 0);
        } else {
            aredis_pipeline_free(p);
            p = NULL;
        }
        /* The old key changes: it must no longer be watched. */
        testgot g = {0};
        testgot_command(loop, c, &g, "SET %s changed", k);
        testgot_clear(&g);
        watch_on(loop, q, k2);
        cr_assert_eq(exclusive_id(loop, q), id, "the same connection, reused");
        aredis_pipeline_multi(q);
        aredis_pipeline_command(q, "INCR %s", k2);
        testgot x = {0};
        cr_assert_eq(aredis_pipeline_execute(q, testgot_keep_pipeline, &x), 0);
        cr_assert(testloop_run_until(loop, &x.calls, 3000));
        cr_assert_eq(x.r->type, AREDIS_REPLY_ARRAY, "round %d: %s", round,
                     x.r->type == AREDIS_REPLY_ERROR ? x.r->str : "");
        testgot_clear(&x);
        if (round == 0)
            watch_on(loop, p, k);
    }
    testgot g = {0};
    testgot_command(loop, c, &g, "DEL %s %s", k, k2);
    testgot_clear(&g);
    aredis_pipeline_free(q);
    testclient_finish(loop, c);
}

Test(pipeline, freed_while_its_watch_is_pending)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = testclient_new(loop, url);
    char k[64];
    testenv_key(k, sizeof k, "watch-free");
    const char *keys[] = {k};
    testgot w = {0}, r = {0};
    aredis_pipeline *p = aredis_pipeline_new(c, 1);
    cr_assert_eq(aredis_pipeline_watch(p, testgot_keep_pipeline, &w, 1, keys),
                 0);
    cr_assert_eq(aredis_pipeline_reset(p), AREDIS_ESTATE);
    aredis_pipeline_free(p);
    cr_assert(testloop_run_until(loop, &w.calls, 3000));
    cr_assert_eq(w.r->code, AREDIS_ECANCELED, "%s", w.r->str);
    testgot_clear(&w);

    /* Freed with an immediate read in flight: it still completes. */
    p = aredis_pipeline_new(c, 1);
    watch_on(loop, p, k);
    cr_assert_eq(
        aredis_pipeline_immediate(p, testgot_keep_pipeline, &r, "PING"), 0);
    aredis_pipeline_free(p);
    cr_assert(testloop_run_until(loop, &r.calls, 3000));
    assert_str(r.r, "PONG");
    testgot_clear(&r);
    testclient_finish(loop, c);
}

/* A WATCH connection lost between WATCH and EXEC must not let EXEC run
 * unguarded on a new connection: a borrowed connection is never
 * reconnected behind the borrower's back, so the batch fails. */
Test(pipeline, watch_connection_lost_before_exec)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = testclient_new(loop, url);
    char k[64], id[32];
    testenv_key(k, sizeof k, "watch-lost");
    aredis_pipeline *p = aredis_pipeline_new(c, 1);
    watch_on(loop, p, k);
    snprintf(id, sizeof id, "%lld", exclusive_id(loop, p));
    testgot g = {0};
    testgot_command(loop, c, &g, "CLIENT KILL ID %s", id);
    testgot_clear(&g);
    testgot_command(loop, c, &g, "SET %s theirs", k);
    testgot_clear(&g);
    aredis_pipeline_multi(p);
    aredis_pipeline_command(p, "SET %s mine", k);
    testgot x = {0};
    cr_assert_eq(aredis_pipeline_execute(p, testgot_keep_pipeline, &x), 0);
    cr_assert(testloop_run_until(loop, &x.calls, 3000));
    cr_assert_eq(x.r->type, AREDIS_REPLY_ERROR, "EXEC ran without its WATCH");
    testgot_clear(&x);
    aredis_pipeline_free(p);
    testclient_finish(loop, c);
}

/* ---- out of memory at every allocation ------------------------------------
 */

static long alloc_count, fail_at = -1, failures;

static int should_fail(void)
{
    if (fail_at >= 0 && alloc_count++ == fail_at) {
        failures++;
        return 1;
    }
    return 0;
}
static void *t_malloc(size_t n)
{
    return should_fail() ? NULL : malloc(n);
}
static void *t_calloc(size_t n, size_t s)
{
    return should_fail() ? NULL : calloc(n, s);
}
static void *t_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : realloc(p, n);
}

/* Records without allocating: the allocator under test is failing. */
typedef struct seen {
    int calls, type, code;
} seen;

static void note(aredis_pipeline *p, const aredis_reply *r, void *ud)
{
    (void)p;
    seen *s = ud;
    s->calls++;
    s->type = r->type;
    s->code = r->code;
}

/* For N = 0, 1, ...: fail the Nth allocation from queueing on (the
 * library's and the client's alike). Whatever fails, execute either
 * returns an error, or its callback runs exactly once; a transaction cut
 * short leaves no MULTI open on the shared connection (the PING after it
 * gets PONG, not QUEUED); and nothing leaks (ASan). */
Test(pipeline, out_of_memory_at_every_allocation)
{
    aredis_set_allocator(
        &(aredis_allocator){t_malloc, t_calloc, t_realloc, free});
    aredis_loop *loop = testloop_new();
    /* A pooled connection the client fails to allocate leaves the WATCH
     * waiting for pool_wait_ms (then AREDIS_EPOOL): keep that short. */
    aredis_client *c = aredis_client_new(
        loop, &(aredis_options){.url = url, .pool_wait_ms = 100}, NULL);
    cr_assert_not_null(c);
    char k[64];
    testenv_key(k, sizeof k, "oom");
    aredis_script *s = aredis_script_new("return 7", 8);
    int completed = 0, refused = 0, failed = 0;
    for (long n = 0; n < 400; n++) {
        long most = 0;
        for (int mode = 0; mode < 4; mode++) {
            alloc_count = 0;
            failures = 0;
            fail_at = n;
            aredis_pipeline *p = aredis_pipeline_new(c, mode == 1);
            seen g = {0};
            int e = AREDIS_ENOMEM;
            if (p != NULL && mode == 3) {
                /* WATCH, an immediate read, MULTI ... EXEC. */
                const char *keys[] = {k};
                seen w = {0}, r = {0};
                e = aredis_pipeline_watch(p, note, &w, 1, keys);
                if (e == 0) {
                    cr_assert(testloop_run_until(loop, &w.calls, 3000), "n=%ld",
                              n);
                    if (w.type == AREDIS_REPLY_ERROR)
                        e = w.code;
                }
                if (e == 0 && (e = aredis_pipeline_immediate(p, note, &r,
                                                             "GET %s", k)) == 0)
                    cr_assert(testloop_run_until(loop, &r.calls, 3000), "n=%ld",
                              n);
                if (e == 0 && (e = aredis_pipeline_multi(p)) == 0 &&
                    (e = aredis_pipeline_command(p, "INCR %s", k)) == 0)
                    e = aredis_pipeline_execute(p, note, &g);
            } else if (p != NULL) {
                aredis_pipeline_command(p, "SET %s 1", k);
                aredis_pipeline_command(p, "INCR %s", k);
                if (mode == 2)
                    aredis_pipeline_script(p, s, 0, NULL, 0, NULL);
                aredis_pipeline_command(p, "GET %s", k);
                e = aredis_pipeline_size(p)
                        ? aredis_pipeline_execute(p, note, &g)
                        : AREDIS_EINVAL;
            }
            if (e == 0) {
                cr_assert(testloop_run_until(loop, &g.calls, 3000),
                          "n=%ld mode=%d", n, mode);
                int never = 0;
                testloop_run_until(loop, &never, 5);
                cr_assert_eq(g.calls, 1, "n=%ld mode=%d", n, mode);
                if (g.type == AREDIS_REPLY_ARRAY)
                    completed++;
                else
                    failed++;
            } else {
                refused++;
            }
            fail_at = -1;
            aredis_pipeline_free(p);
            /* PONG, not QUEUED: no MULTI was left open. */
            testgot ping = {0};
            cr_assert_eq(aredis_command(c, testgot_keep, &ping, "PING"), 0);
            cr_assert(testloop_run_until(loop, &ping.calls, 3000));
            cr_assert_eq(ping.r->type, AREDIS_REPLY_STATUS);
            cr_assert_str_eq(ping.r->str, "PONG", "n=%ld mode=%d", n, mode);
            testgot_clear(&ping);
            if (failures > most)
                most = failures;
        }
        if (most == 0)
            break; /* every run needs fewer than n allocations */
    }
    cr_log_info("out of memory: %d completed, %d failed in the callback, %d "
                "refused",
                completed, failed, refused);
    cr_assert_gt(failed + refused, 0);
    aredis_script_free(s);
    testclient_finish(loop, c);
    aredis_set_allocator(NULL);
}
