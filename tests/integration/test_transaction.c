/* Integration tests of the transaction helper (include/aredis/transaction.h)
 * against the real standalone server: many concurrent client-side
 * increments through WATCH/GET/MULTI/SET/EXEC give the exact total; the
 * attempts are bounded, paced by delay_ms, and abortable; misuse is refused;
 * `done` runs exactly once and never inside the call that scheduled it.
 * Runs on the loop under test (tests/support/testloop.h). */
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

/* ---- the client-side INCR of the Python library's README ------------------
 */

typedef struct incr {
    const char *key;
    int fn_calls;
    int done, ok;
    int max_attempt;
    int err_code;
    char err[256];
} incr;

static void incr_got(aredis_pipeline *p, const aredis_reply *r, void *ud)
{
    incr *t = ud;
    if (r->type == AREDIS_REPLY_ERROR) {
        cr_assert_eq(aredis_transaction_abort(p, r->code, r->str), 0);
        return;
    }
    long long v = r->type == AREDIS_REPLY_STRING ? atoll(r->str) : 0;
    cr_assert_eq(aredis_pipeline_multi(p), 0);
    cr_assert_eq(aredis_pipeline_command(p, "SET %s %lld", t->key, v + 1), 0);
    cr_assert_eq(aredis_transaction_commit(p), 0);
    cr_assert_eq(aredis_transaction_commit(p), AREDIS_ESTATE, "once");
}

static void incr_body(aredis_pipeline *p, void *ud)
{
    incr *t = ud;
    t->fn_calls++;
    int a = aredis_transaction_attempt(p);
    if (a > t->max_attempt)
        t->max_attempt = a;
    cr_assert(aredis_pipeline_watching(p));
    cr_assert_eq(aredis_pipeline_immediate(p, incr_got, t, "GET %s", t->key),
                 0);
}

static void incr_done(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    incr *t = ud;
    t->done++;
    if (r->type == AREDIS_REPLY_ARRAY && r->len == 1 &&
        r->element[0].type == AREDIS_REPLY_STATUS) {
        t->ok++;
    } else {
        t->err_code = r->code;
        snprintf(t->err, sizeof t->err, "%s: %s", aredis_err_name(r->code),
                 r->type == AREDIS_REPLY_ERROR ? r->str : "not an array");
    }
}

TestSuite(transaction, .init = setup);

Test(transaction, concurrent_client_side_incr_gives_the_exact_total)
{
    enum { N = 50 };
    aredis_loop *loop = testloop_new();
    aredis_client *c = testclient_new(loop, url);
    char k[64];
    testenv_key(k, sizeof k, "incr");
    testgot g = {0};
    testgot_command(loop, c, &g, "DEL %s", k);
    static incr t[N];
    const char *keys[] = {k};
    /* Eight connections race for one key, so some transactions lose many
     * times in a row: the bound only has to be out of reach here. */
    aredis_transaction_opts o = {.max_attempts = 1000};
    for (int i = 0; i < N; i++) {
        t[i] = (incr){.key = k};
        cr_assert_eq(
            aredis_transaction(c, &o, incr_body, incr_done, &t[i], 1, keys), 0);
        cr_assert_eq(t[i].fn_calls, 0, "never inside the call");
    }
    int all = 0, total_attempts = 0, retried = 0;
    for (int waited = 0; !all && waited < 30000; waited += 10) {
        testloop_run_once(loop, 10);
        all = 1;
        for (int i = 0; i < N; i++)
            all &= t[i].done == 1;
    }
    cr_assert(all, "every transaction completed");
    for (int i = 0; i < N; i++) {
        cr_assert_eq(t[i].ok, 1, "transaction %d: %s", i, t[i].err);
        cr_assert_eq(t[i].done, 1);
        cr_assert_eq(t[i].fn_calls, t[i].max_attempt);
        total_attempts += t[i].fn_calls;
        retried += t[i].fn_calls > 1;
    }
    testgot_command(loop, c, &g, "GET %s", k);
    cr_assert_eq(g.r->type, AREDIS_REPLY_STRING);
    cr_assert_str_eq(g.r->str, "50", "every increment counted exactly once");
    cr_log_info("%d transactions, %d attempts, %d retried", N, total_attempts,
                retried);
    testgot_command(loop, c, &g, "DEL %s", k);
    testgot_clear(&g);
    testclient_finish(loop, c);
}

/* ---- bounded attempts, pacing -----------------------------------------------
 */

typedef struct loser {
    aredis_client *c;
    const char *key;
    aredis_pipeline *p;
    int fn_calls, done;
    int64_t first, last;
    testgot result;
} loser;

static void loser_changed(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    (void)r;
    loser *t = ud;
    aredis_pipeline_multi(t->p);
    aredis_pipeline_command(t->p, "SET %s mine", t->key);
    cr_assert_eq(aredis_transaction_commit(t->p), 0);
}

/* Every attempt: someone else writes the watched key before EXEC. */
static void loser_body(aredis_pipeline *p, void *ud)
{
    loser *t = ud;
    t->fn_calls++;
    t->last = testenv_now_ms();
    if (t->fn_calls == 1)
        t->first = t->last;
    cr_assert_eq(aredis_transaction_attempt(p), t->fn_calls);
    t->p = p;
    cr_assert_eq(
        aredis_command(t->c, loser_changed, t, "SET %s theirs", t->key), 0);
}

static void loser_done(aredis_client *c, const aredis_reply *r, void *ud)
{
    loser *t = ud;
    testgot_keep(c, r, &t->result);
    t->done++;
}

Test(transaction, attempts_are_bounded_and_paced)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = testclient_new(loop, url);
    char k[64];
    testenv_key(k, sizeof k, "loser");
    const char *keys[] = {k};
    /* paced 1 names the loop, paced 2 leaves it to the client's own. */
    for (int paced = 0; paced <= 2; paced++) {
        loser t = {.c = c, .key = k};
        aredis_transaction_opts o = {.max_attempts = 3,
                                     .delay_ms = paced ? 100 : 0,
                                     .loop = paced == 1 ? loop : NULL};
        cr_assert_eq(
            aredis_transaction(c, &o, loser_body, loser_done, &t, 1, keys), 0);
        cr_assert(testloop_run_until(loop, &t.done, 5000));
        cr_assert_eq(t.fn_calls, 3);
        cr_assert_eq(t.result.r->type, AREDIS_REPLY_ERROR);
        cr_assert_eq(t.result.r->code, AREDIS_EWATCH, "%s", t.result.r->str);
        cr_assert(strstr(t.result.r->str, "3 attempts") != NULL, "%s",
                  t.result.r->str);
        if (paced)
            cr_assert_geq(t.last - t.first, 2 * 100 - 10,
                          "two pauses of 100 ms: %lld ms",
                          (long long)(t.last - t.first));
        int never = 0;
        testloop_run_until(loop, &never, 30);
        cr_assert_eq(t.done, 1);
        testgot_clear(&t.result);
    }
    /* The default is 10 attempts. */
    loser t = {.c = c, .key = k};
    cr_assert_eq(
        aredis_transaction(c, NULL, loser_body, loser_done, &t, 1, keys), 0);
    cr_assert(testloop_run_until(loop, &t.done, 5000));
    cr_assert_eq(t.fn_calls, 10);
    cr_assert_eq(t.result.r->code, AREDIS_EWATCH);
    testgot_clear(&t.result);
    testgot g = {0};
    testgot_command(loop, c, &g, "DEL %s", k);
    testgot_clear(&g);
    testclient_finish(loop, c);
}

/* ---- abort, empty commits, misuse
 * -------------------------------------------- */

typedef struct misuse {
    int mode; /* 0 abort, 1 empty commit, 2 misuse then commit */
    int fn_calls, aborted_inside;
    testgot result;
} misuse;

static void misuse_body(aredis_pipeline *p, void *ud)
{
    misuse *t = ud;
    t->fn_calls++;
    if (t->mode == 0) {
        cr_assert_eq(aredis_transaction_abort(p, 1, "positive"), AREDIS_EINVAL);
        cr_assert_eq(aredis_transaction_abort(p, AREDIS_ECANCELED, "not today"),
                     0);
        t->aborted_inside = t->result.calls;
        cr_assert_eq(aredis_transaction_abort(p, AREDIS_ECANCELED, NULL),
                     AREDIS_ESTATE);
        cr_assert_eq(aredis_transaction_commit(p), AREDIS_ESTATE);
        return;
    }
    if (t->mode == 2) {
        /* The helper owns the pipeline. */
        cr_assert_eq(aredis_pipeline_execute(p, NULL, NULL), AREDIS_ESTATE);
        cr_assert_eq(aredis_pipeline_reset(p), AREDIS_ESTATE);
        aredis_pipeline_free(p); /* a no-op on it */
        cr_assert(aredis_pipeline_watching(p));
    }
    cr_assert_eq(aredis_transaction_commit(p), 0);
}

static void misuse_done(aredis_client *c, const aredis_reply *r, void *ud)
{
    misuse *t = ud;
    testgot_keep(c, r, &t->result);
}

static void refused_body(aredis_pipeline *p, void *ud)
{
    misuse *t = ud;
    t->fn_calls++;
    cr_assert_eq(aredis_pipeline_multi(p), 0);
    cr_assert_eq(aredis_pipeline_command(p, "NOSUCHCOMMAND-%d", t->fn_calls),
                 0);
    cr_assert_eq(aredis_transaction_commit(p), 0);
}

/* Only a lost WATCH race is retried: an EXEC refused for another reason
 * (EXECABORT: a command the server refused to queue) ends the transaction
 * at once, with the server's error. */
Test(transaction, an_exec_refused_otherwise_is_not_retried)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = testclient_new(loop, url);
    char k[64];
    testenv_key(k, sizeof k, "refused");
    const char *keys[] = {k};
    misuse t = {0};
    cr_assert_eq(
        aredis_transaction(c, NULL, refused_body, misuse_done, &t, 1, keys), 0);
    cr_assert(testloop_run_until(loop, &t.result.calls, 5000));
    cr_assert_eq(t.result.r->type, AREDIS_REPLY_ERROR);
    cr_assert_neq(t.result.r->code, AREDIS_EWATCH, "%s", t.result.r->str);
    cr_assert(strstr(t.result.r->str, "EXECABORT") != NULL, "%s",
              t.result.r->str);
    cr_assert_eq(t.fn_calls, 1, "retried %d times", t.fn_calls - 1);
    testgot_clear(&t.result);
    testclient_finish(loop, c);
}

Test(transaction, abort_empty_commit_and_misuse)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = aredis_client_new(
        loop,
        &(aredis_options){.url = url, .pool_max = 1, .pool_wait_ms = 2000},
        NULL);
    char k[64];
    testenv_key(k, sizeof k, "misuse");
    const char *keys[] = {k};
    for (int mode = 0; mode <= 2; mode++) {
        misuse t = {.mode = mode};
        cr_assert_eq(
            aredis_transaction(c, NULL, misuse_body, misuse_done, &t, 1, keys),
            0);
        cr_assert(testloop_run_until(loop, &t.result.calls, 3000));
        cr_assert_eq(t.fn_calls, 1);
        if (mode == 0) {
            cr_assert_eq(t.aborted_inside, 0, "done never inside abort");
            cr_assert_eq(t.result.r->code, AREDIS_ECANCELED);
            cr_assert_str_eq(t.result.r->str, "not today");
        } else {
            cr_assert_eq(t.result.r->type, AREDIS_REPLY_ARRAY, "mode %d: %s",
                         mode, t.result.r->str);
            cr_assert_eq(t.result.r->len, 0, "an empty transaction");
        }
        /* pool_max is 1: each run got the connection back. */
        testgot_clear(&t.result);
    }
    misuse t = {0};
    aredis_transaction_opts bad = {.delay_ms = -1};
    cr_assert_eq(
        aredis_transaction(c, &bad, misuse_body, misuse_done, &t, 1, keys),
        AREDIS_EINVAL);
    bad = (aredis_transaction_opts){.max_attempts = -1};
    cr_assert_eq(
        aredis_transaction(c, &bad, misuse_body, misuse_done, &t, 1, keys),
        AREDIS_EINVAL);
    cr_assert_eq(
        aredis_transaction(c, NULL, misuse_body, misuse_done, &t, 0, keys),
        AREDIS_EINVAL);
    cr_assert_eq(aredis_transaction(c, NULL, NULL, misuse_done, &t, 1, keys),
                 AREDIS_EINVAL);
    aredis_pipeline *plain = aredis_pipeline_new(c, 1);
    cr_assert_eq(aredis_transaction_commit(plain), AREDIS_EINVAL);
    cr_assert_eq(aredis_transaction_abort(plain, AREDIS_ECANCELED, NULL),
                 AREDIS_EINVAL);
    cr_assert_eq(aredis_transaction_attempt(plain), 0);
    aredis_pipeline_free(plain);
    cr_assert_eq(t.fn_calls, 0);
    testclient_finish(loop, c);
}

Test(transaction, a_failed_watch_completes_without_calling_the_body)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = aredis_client_new(
        loop, &(aredis_options){.url = url, .pool_max = 1, .pool_wait_ms = 100},
        NULL);
    char k[64];
    testenv_key(k, sizeof k, "busy");
    const char *keys[] = {k};
    /* Hold the only exclusive connection. */
    aredis_pipeline *holder = aredis_pipeline_new(c, 1);
    cr_assert_eq(aredis_pipeline_watch(holder, NULL, NULL, 1, keys), 0);
    /* Until the WATCH is answered (in real time, not a number of loop
     * turns, which differs from one loop to another). */
    int64_t until = testenv_now_ms() + 3000;
    while (!aredis_pipeline_watching(holder) && testenv_now_ms() < until)
        testloop_run_once(loop, 10);
    cr_assert(aredis_pipeline_watching(holder));
    misuse t = {.mode = 1};
    cr_assert_eq(
        aredis_transaction(c, NULL, misuse_body, misuse_done, &t, 1, keys), 0);
    cr_assert(testloop_run_until(loop, &t.result.calls, 3000));
    cr_assert_eq(t.fn_calls, 0);
    cr_assert_eq(t.result.r->code, AREDIS_EPOOL, "%s", t.result.r->str);
    testgot_clear(&t.result);
    aredis_pipeline_free(holder);
    testclient_finish(loop, c);
}

/* The client goes away while the body waits for its read: the read fails
 * with AREDIS_ECANCELED, the body aborts, and done runs once. */
Test(transaction, client_freed_during_a_read)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = testclient_new(loop, url);
    char k[64];
    testenv_key(k, sizeof k, "freed");
    const char *keys[] = {k};
    incr t = {.key = k};
    cr_assert_eq(aredis_transaction(c, NULL, incr_body, incr_done, &t, 1, keys),
                 0);
    cr_assert(testloop_run_until(loop, &t.fn_calls, 3000));
    aredis_client_free(c); /* the GET is in flight */
    testloop_free(loop);
    cr_assert_eq(t.done, 1);
    cr_assert_eq(t.ok, 0);
    cr_assert_eq(t.err_code, AREDIS_ECANCELED, "%s", t.err);
}

/* ---- a long server error ------------------------------------------------- */

/* 600 bytes of 2- and 3-byte characters. */
static void long_text(char *buf, size_t cap)
{
    buf[0] = '\0';
    for (int i = 0; i < 120; i++)
        strncat(buf, "\xc3\xa9\xe2\x82\xac", cap - strlen(buf) - 1);
}

typedef struct longerr {
    char said[1024]; /* the server's error, whole */
    testgot result;
} longerr;

static void longerr_got(aredis_pipeline *p, const aredis_reply *r, void *ud)
{
    longerr *t = ud;
    cr_assert_eq(r->type, AREDIS_REPLY_ERROR);
    snprintf(t->said, sizeof t->said, "%s", r->str);
    cr_assert_eq(aredis_transaction_abort(p, r->code, r->str), 0);
}

/* aredis_transaction()'s ud is the body's and done's: a longerr. */
static void longerr_done(aredis_client *c, const aredis_reply *r, void *ud)
{
    testgot_keep(c, r, &((longerr *)ud)->result);
}

static void longerr_body(aredis_pipeline *p, void *ud)
{
    char text[700];
    long_text(text, sizeof text);
    cr_assert_eq(aredis_pipeline_immediate(p, longerr_got, ud, "EVAL %s 0 %s",
                                           "return redis.error_reply(ARGV[1])",
                                           text),
                 0);
}

/* The body aborts with a Lua error of 600 bytes (the documented idiom:
 * the failed read's own message): done gets it cut cleanly, between two
 * characters and marked. */
Test(transaction, an_abort_with_a_long_server_error_is_cut_cleanly)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = testclient_new(loop, url);
    char k[64];
    testenv_key(k, sizeof k, "longerr");
    const char *keys[] = {k};
    longerr t;
    memset(&t, 0, sizeof t);
    cr_assert_eq(
        aredis_transaction(c, NULL, longerr_body, longerr_done, &t, 1, keys),
        0);
    cr_assert(testloop_run_until(loop, &t.result.calls, 5000));
    cr_assert_gt(strlen(t.said), 500, "%s", t.said);
    const aredis_reply *r = t.result.r;
    cr_assert_eq(r->type, AREDIS_REPLY_ERROR);
    cr_assert_eq(r->code, AREDIS_ESERVER, "%s", aredis_err_name(r->code));
    cr_assert_eq(r->len, strlen(r->str));
    testclient_cut_cleanly(r->str, t.said);
    testgot_clear(&t.result);
    testclient_finish(loop, c);
}
