/* Integration tests of the asynchronous client and the blocking facade
 * against real redis-server processes: the shared standalone fixture, and
 * private servers this file starts (and stops) through the project's
 * tests/support/redis-server.sh for the tests that restart a server or
 * need ACL users. Every test counts callbacks: each command completes
 * exactly once, with a non-NULL reply. The same tests run on every event
 * loop (AREDIS_TEST_LOOP, see tests/support/testloop.h). */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include "aredis/aredis.h"
#include "testclient.h"
#include "testenv.h"
#include "testloop.h"

/* ---- helpers ----------------------------------------------------------- */

static testenv_server srv;

static void load_fixture(void)
{
    testclient_server(&srv, "standalone");
}

/* A client of the standalone fixture on database db. */
static aredis_client *fixture_client(aredis_loop *loop, int db)
{
    char url[128];
    return testclient_new(loop, testenv_url(url, sizeof url, &srv, db));
}

typedef struct counter {
    int calls;      /* callbacks run */
    int errors;     /* of which error replies */
    int last_code;  /* code of the last error */
    char last[256]; /* text of the last string/status/error reply */
    long long last_int;
    int last_type;
    int expect; /* done when calls reaches it */
    int done;
} counter;

static void count_cb(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    counter *k = ud;
    cr_assert_not_null(r, "callbacks always get a reply");
    k->calls++;
    k->last_type = r->type;
    if (r->type == AREDIS_REPLY_ERROR) {
        k->errors++;
        k->last_code = r->code;
    }
    if (r->type == AREDIS_REPLY_INTEGER)
        k->last_int = r->integer;
    if (r->str != NULL &&
        (r->type == AREDIS_REPLY_STRING || r->type == AREDIS_REPLY_STATUS ||
         r->type == AREDIS_REPLY_VERB || r->type == AREDIS_REPLY_ERROR))
        snprintf(k->last, sizeof k->last, "%.*s", (int)r->len, r->str);
    if (k->expect && k->calls >= k->expect)
        k->done = 1;
}

/* A private server (testenv_private_start), stopped at the end. */
static void private_start(testenv_server *p, const char *tag, const char *extra)
{
    char full[48];
    snprintf(full, sizeof full, "client-%s", tag);
    cr_assert_eq(testenv_private_start(p, full, extra), 0, "%s",
                 testenv_errstr());
}

static void private_stop(const testenv_server *p)
{
    cr_assert_eq(testenv_private_stop(p), 0, "%s", testenv_errstr());
}

/* ---- getting started ----------------------------------------------------- */

typedef struct script_state {
    int step;
    int done;
    char key[64];
    char log[1024];
} script_state;

static void step_cb(aredis_client *c, const aredis_reply *r, void *ud);

static void next_step(aredis_client *c, script_state *st)
{
    switch (st->step) {
    case 0:
        aredis_command(c, step_cb, st, "SET %s %s", st->key, "1");
        break;
    case 1:
        aredis_command(c, step_cb, st, "EXISTS %s", st->key);
        break;
    case 2:
        aredis_command(c, step_cb, st, "INCR %s", st->key);
        break;
    case 3:
        aredis_command(c, step_cb, st, "GET %s", st->key);
        break;
    case 4:
        aredis_command(c, step_cb, st, "EXPIRE %s %d", st->key, 100);
        break;
    case 5:
        aredis_command(c, step_cb, st, "TTL %s", st->key);
        break;
    default:
        st->done = 1;
    }
}

static void step_cb(aredis_client *c, const aredis_reply *r, void *ud)
{
    script_state *st = ud;
    size_t used = strlen(st->log);
    if (r->type == AREDIS_REPLY_INTEGER)
        snprintf(st->log + used, sizeof st->log - used, "%lld;", r->integer);
    else
        snprintf(st->log + used, sizeof st->log - used, "%.*s;", (int)r->len,
                 r->str ? r->str : "");
    st->step++;
    next_step(c, st); /* a command sent from inside a callback */
}

Test(client, getting_started_sequence, .init = load_fixture)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = fixture_client(loop, 0);
    script_state s = {0};
    testenv_key(s.key, sizeof s.key, "gs");
    next_step(c, &s);
    cr_assert(testloop_run_until(loop, &s.done, 10000), "log so far: %s",
              s.log);
    cr_assert_str_eq(s.log, "OK;1;2;2;1;100;");
    cr_assert_eq(aredis_client_pending(c), 0);
    cr_assert_eq(aredis_client_protocol(c), 3);
    aredis_client_free(c);
    testloop_free(loop);
}

/* ---- completion rules ------------------------------------------------------
 */

Test(client, every_command_completes_once, .init = load_fixture)
{
    aredis_loop *loop = testloop_new();
    char key[64];
    testenv_key(key, sizeof key, "many");
    aredis_client *c = fixture_client(loop, 0);
    enum { N = 20000 };
    counter k = {.expect = N};
    for (int i = 0; i < N; i++)
        cr_assert_eq(aredis_command(c, count_cb, &k, "INCR %s", key), 0);
    cr_assert_eq(k.calls, 0, "no callback runs inside the submit call");
    cr_assert(testloop_run_until(loop, &k.done, 20000));
    cr_assert_eq(k.calls, N);
    cr_assert_eq(k.errors, 0);
    cr_assert_eq(k.last_int, N, "replies arrive in order");
    aredis_client_free(c);
    testloop_free(loop);
}

Test(client, server_errors_keep_their_text, .init = load_fixture)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = fixture_client(loop, 0);
    counter k = {.expect = 1};
    cr_assert_eq(aredis_command(c, count_cb, &k, "NOSUCHCOMMAND %d", 1), 0);
    cr_assert(testloop_run_until(loop, &k.done, 10000));
    cr_assert_eq(k.last_code, AREDIS_ESERVER);
    cr_assert(strncmp(k.last, "ERR unknown command", 19) == 0, "%s", k.last);
    aredis_client_free(c);
    testloop_free(loop);
}

Test(client, select_is_refused_with_a_clear_error, .init = load_fixture)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = fixture_client(loop, 0);
    counter k = {.expect = 2};
    cr_assert_eq(aredis_command(c, count_cb, &k, "SELECT 2"), 0);
    cr_assert_eq(k.calls, 0);
    cr_assert_eq(aredis_command(c, count_cb, &k, "select %d", 3), 0);
    cr_assert(testloop_run_until(loop, &k.done, 10000));
    cr_assert_eq(k.errors, 2);
    cr_assert_eq(k.last_code, AREDIS_EINVAL);
    cr_assert(strstr(k.last, "client option") != NULL, "%s", k.last);
    /* A bad format never runs its callback. */
    counter bad = {0};
    cr_assert_eq(aredis_command(c, count_cb, &bad, "GET %q"), AREDIS_EFORMAT);
    aredis_client_free(c);
    testloop_free(loop);
    cr_assert_eq(bad.calls, 0);
}

/* RESET and HELLO would change what the shared connection is (database,
 * name, protocol, user) behind the client's back: RESET put a db-5 client
 * on database 0 and on RESP2 while it still read RESP3. Both are refused
 * like SELECT, and the connection keeps its database. */
Test(client, reset_and_hello_are_refused, .init = load_fixture)
{
    aredis_loop *loop = testloop_new();
    char key[64];
    testenv_key(key, sizeof key, "reset");
    aredis_client *c = fixture_client(loop, 5);
    counter reset = {.expect = 1}, hello = {.expect = 1}, w = {.expect = 2};
    cr_assert_eq(aredis_command(c, count_cb, &reset, "RESET"), 0);
    cr_assert_eq(aredis_command(c, count_cb, &hello, "HELLO %d", 2), 0);
    cr_assert_eq(aredis_command(c, count_cb, &w, "SET %s five", key), 0);
    cr_assert_eq(aredis_command(c, count_cb, &w, "GET %s", key), 0);
    cr_assert(testloop_run_until(loop, &reset.done, 10000));
    cr_assert(testloop_run_until(loop, &hello.done, 10000));
    cr_assert(testloop_run_until(loop, &w.done, 10000));
    cr_assert_eq(reset.last_code, AREDIS_EINVAL, "%s", reset.last);
    cr_assert(strncmp(reset.last, "RESET is refused", 16) == 0, "%s",
              reset.last);
    cr_assert_eq(hello.last_code, AREDIS_EINVAL, "%s", hello.last);
    cr_assert(strncmp(hello.last, "HELLO is refused", 16) == 0, "%s",
              hello.last);
    cr_assert_eq(w.errors, 0, "%s", w.last);
    cr_assert_str_eq(w.last, "five");
    aredis_client_free(c);
    testloop_free(loop);
    /* The key went to database 5, where the client was told to write. */
    aredis_reply *r = testclient_direct(srv.port, "EXISTS %s", key);
    cr_assert_eq(r->integer, 0, "the SET went to database 0");
    aredis_reply_free(r);
}

/* A NULL handle given to a call that takes one is a bad argument, refused
 * with AREDIS_EINVAL (an error reply for the blocking calls), never a
 * crash. */
Test(client, null_handles_are_refused)
{
    cr_assert_eq(aredis_command(NULL, NULL, NULL, "PING"), AREDIS_EINVAL);
    cr_assert_eq(aredis_commandv(NULL, NULL, NULL, 1,
                                 (const char *const[]){"PING"}, NULL),
                 AREDIS_EINVAL);
    cr_assert_eq(aredis_command_ts(NULL, NULL, NULL, "PING"), AREDIS_EINVAL);
    cr_assert_eq(aredis_exclusive_command(NULL, NULL, NULL, "PING"),
                 AREDIS_EINVAL);
    cr_assert_eq(aredis_pubsub_subscribe(NULL, "ch", NULL, NULL),
                 AREDIS_EINVAL);
    cr_assert_eq(aredis_pubsub_unsubscribe(NULL, "ch"), AREDIS_EINVAL);
    cr_assert_eq(aredis_pubsub_get_message(NULL, 10, NULL, NULL),
                 AREDIS_EINVAL);
    cr_assert_eq(aredis_loop_run(NULL), AREDIS_EINVAL);
    cr_assert_eq(aredis_loop_run_once(NULL, 0), AREDIS_EINVAL);
    aredis_reply *r = aredis_sync_command(NULL, "PING");
    cr_assert_not_null(r);
    cr_assert_eq(r->type, AREDIS_REPLY_ERROR);
    cr_assert_eq(r->code, AREDIS_EINVAL, "%s", r->str);
    aredis_reply_free(r);
    cr_assert_eq(aredis_sync_append(NULL, "PING"), AREDIS_EINVAL);
    const aredis_reply *g = aredis_sync_get_reply(NULL);
    cr_assert_eq(g->code, AREDIS_EINVAL, "%s", g->str);
    cr_assert_eq(aredis_sync_pending(NULL), 0);
    cr_assert_eq(aredis_client_protocol(NULL), 0);
    cr_assert_null(aredis_client_loop(NULL));
    cr_assert_eq(aredis_client_pending(NULL), 0);
    aredis_client_set_data(NULL, &r, NULL);
    cr_assert_null(aredis_client_get_data(NULL));
}

/* The extras' getters and blocking entries take a NULL handle the same
 * way: a neutral answer or AREDIS_EINVAL, never a crash. */
Test(client, extras_null_handles_are_refused)
{
    cr_assert_null(aredis_cache_client(NULL));
    char name[16];
    cr_assert_eq(aredis_cache_identity(NULL, "k", NULL, 0, name, sizeof name),
                 AREDIS_EINVAL);
    cr_assert_eq(aredis_ccache_get_state(NULL), AREDIS_EINVAL);
    aredis_ccache_stats cs;
    memset(&cs, 0xff, sizeof cs);
    aredis_ccache_get_stats(NULL, &cs);
    cr_assert_eq(cs.hits, 0);
    cr_assert_eq(cs.entries, 0);
    aredis_ccache_get_stats(NULL, NULL);
    cr_assert_str_eq(aredis_script_sha(NULL), "");
    size_t len = 7;
    cr_assert_str_eq(aredis_script_source(NULL, &len), "");
    cr_assert_eq(len, 0);
    cr_assert_null(aredis_pubsub_poll(NULL));
    cr_assert_eq(aredis_pubsub_subscriptions(NULL), 0);
    cr_assert_null(aredis_pubsub_client(NULL));
    aredis_status st;
    aredis_stream_consumer_opts so = {0};
    cr_assert_null(aredis_sync_stream_consumer_new(NULL, &so, &st));
    cr_assert_eq(st.code, AREDIS_EINVAL);
    cr_assert_eq(aredis_sync_stream_consumer_run(NULL, NULL, 0), AREDIS_EINVAL);
    cr_assert_eq(aredis_sync_stream_consumer_stop(NULL, NULL), AREDIS_EINVAL);
}

Test(client, database_option_selects, .init = load_fixture)
{
    aredis_loop *loop = testloop_new();
    char key[64];
    testenv_key(key, sizeof key, "db");
    aredis_client *c5 = fixture_client(loop, 5);
    aredis_client *c0 = fixture_client(loop, 0);
    counter a = {.expect = 2}, b = {.expect = 1};
    aredis_command(c5, count_cb, &a, "SET %s five", key);
    aredis_command(c5, count_cb, &a, "GET %s", key);
    cr_assert(testloop_run_until(loop, &a.done, 10000));
    cr_assert_str_eq(a.last, "five");
    aredis_command(c0, count_cb, &b, "EXISTS %s", key);
    cr_assert(testloop_run_until(loop, &b.done, 10000));
    cr_assert_eq(b.last_int, 0, "the key lives in db 5 only");
    aredis_client_free(c5);
    aredis_client_free(c0);
    testloop_free(loop);
}

static void free_in_cb(aredis_client *c, const aredis_reply *r, void *ud)
{
    count_cb(c, r, ud);
    aredis_client_free(c);
    aredis_client_free(c); /* twice is harmless */
}

Test(client, freed_inside_a_callback_completes_the_rest, .init = load_fixture)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = fixture_client(loop, 0);
    counter first = {0}, rest = {0};
    aredis_command(c, free_in_cb, &first, "PING");
    for (int i = 0; i < 100; i++)
        aredis_command(c, count_cb, &rest, "DEBUG SLEEP 0");
    int zero = 0;
    testloop_run_until(loop, &zero, 1000);
    cr_assert_eq(first.calls, 1);
    cr_assert_eq(rest.calls, 100, "every pending command completes once");
    cr_assert_eq(rest.errors, 100);
    cr_assert_eq(rest.last_code, AREDIS_ECANCELED);
    testloop_free(loop);
}

Test(client, freed_outside_with_commands_pending, .init = load_fixture)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = fixture_client(loop, 0);
    counter k = {0};
    for (int i = 0; i < 50; i++)
        aredis_command(c, count_cb, &k, "PING");
    aredis_client_free(c);
    cr_assert_eq(k.calls, 0, "never inside the free call");
    testloop_free(loop); /* runs the pending completions */
    cr_assert_eq(k.calls, 50);
    cr_assert_eq(k.last_code, AREDIS_ECANCELED);
}

Test(client, connection_refused_fails_commands)
{
    /* A port that nothing listens on: bind, note it, close. */
    testenv_server none;
    memset(&none, 0, sizeof none);
    none.port = testenv_free_port();
    cr_assert_gt(none.port, 0);
    aredis_loop *loop = testloop_new();
    char url[128];
    aredis_client *c = aredis_client_new(
        loop, &(aredis_options){.url = testenv_url(url, sizeof url, &none, 0)},
        NULL);
    counter k = {.expect = 3};
    for (int i = 0; i < 3; i++)
        aredis_command(c, count_cb, &k, "PING");
    cr_assert(testloop_run_until(loop, &k.done, 10000));
    cr_assert_eq(k.errors, 3);
    cr_assert_eq(k.last_code, AREDIS_ECONNREFUSED, "%s", k.last);
    cr_assert(strstr(k.last, "refused") != NULL, "%s", k.last);
    aredis_client_free(c);
    testloop_free(loop);
}

Test(client, bad_url_names_the_problem)
{
    aredis_loop *loop = testloop_new();
    aredis_status st;
    cr_assert_null(aredis_client_new(
        loop, &(aredis_options){.url = "http://127.0.0.1"}, &st));
    cr_assert_eq(st.code, AREDIS_EURL);
    cr_assert(strstr(st.msg, "http") != NULL, "%s", st.msg);
    cr_assert_null(aredis_client_new(NULL, NULL, &st));
    cr_assert_eq(st.code, AREDIS_EINVAL);
    testloop_free(loop);
}

Test(client, command_deadline_fails_only_that_command, .init = load_fixture)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = fixture_client(loop, 0);
    counter slow = {.expect = 1}, after = {.expect = 1};
    aredis_cmd_opts o = {.timeout_ms = 100};
    cr_assert_eq(aredis_command_opts(c, &o, count_cb, &slow, "DEBUG SLEEP 0.6"),
                 0);
    cr_assert_eq(aredis_command(c, count_cb, &after, "ECHO %s", "still-here"),
                 0);
    cr_assert(testloop_run_until(loop, &slow.done, 5000));
    cr_assert_eq(slow.last_code, AREDIS_ETIMEDOUT, "%s", slow.last);
    cr_assert_eq(after.calls, 0, "the next command waits for its own reply");
    cr_assert(testloop_run_until(loop, &after.done, 5000));
    cr_assert_eq(after.errors, 0);
    cr_assert_str_eq(after.last, "still-here",
                     "the late reply was read and dropped in order");
    cr_assert_eq(slow.calls, 1);
    aredis_client_free(c);
    testloop_free(loop);
}

/* Where each deadline's failure landed, in completion order. */
typedef struct deadlines {
    int order[16];
    int n, want, done;
} deadlines;

typedef struct deadline_cmd {
    deadlines *all;
    int timeout_ms;
    int code;
    int64_t at;
} deadline_cmd;

static void on_deadline(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    deadline_cmd *d = ud;
    d->code = r->code;
    d->at = testenv_now_ms();
    d->all->order[d->all->n++] = d->timeout_ms;
    d->all->done = d->all->n == d->all->want;
}

/* Deadlines submitted in no particular order, while the commands wait for
 * a connection that never comes: each fires on time, shortest first. */
Test(client, deadlines_fire_in_their_order)
{
    static const int ms[] = {700, 100, 600, 200, 650, 300, 500, 150,
                             400, 250, 550, 350, 450, 50,  750, 800};
    enum { N = sizeof ms / sizeof ms[0] };
    testenv_server none;
    memset(&none, 0, sizeof none);
    none.port = testenv_free_port();
    cr_assert_gt(none.port, 0);
    aredis_loop *loop = testloop_new();
    char url[128];
    aredis_client *c = aredis_client_new(
        loop,
        &(aredis_options){.url = testenv_url(url, sizeof url, &none, 0),
                          .reconnect_max_attempts = -1},
        NULL);
    deadlines all = {.want = N};
    deadline_cmd d[N];
    int64_t t0 = testenv_now_ms();
    for (int i = 0; i < N; i++) {
        d[i] = (deadline_cmd){.all = &all, .timeout_ms = ms[i]};
        cr_assert_eq(
            aredis_command_opts(c, &(aredis_cmd_opts){.timeout_ms = ms[i]},
                                on_deadline, &d[i], "PING"),
            0);
    }
    cr_assert(testloop_run_until(loop, &all.done, 3000), "%d of %d fired",
              all.n, N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(d[i].code, AREDIS_ETIMEDOUT, "%d ms", ms[i]);
        cr_assert_geq(d[i].at - t0, ms[i], "%d ms fired early", ms[i]);
        if (i > 0)
            cr_assert_lt(all.order[i - 1], all.order[i],
                         "%d ms fired after %d ms", all.order[i],
                         all.order[i - 1]);
    }
    aredis_client_free(c);
    testloop_free(loop);
}

/* A blocking command waits as long as it says, unless the call gives it
 * a deadline of its own: then that deadline holds. */
Test(client, a_blocking_command_keeps_a_per_call_deadline, .init = load_fixture)
{
    aredis_loop *loop = testloop_new();
    char key[64];
    testenv_key(key, sizeof key, "blpop-deadline");
    aredis_client *c = fixture_client(loop, 0);
    counter k = {.expect = 1};
    int64_t t0 = testenv_now_ms();
    cr_assert_eq(aredis_command_opts(c, &(aredis_cmd_opts){.timeout_ms = 200},
                                     count_cb, &k, "BLPOP %s 5", key),
                 0);
    cr_assert(testloop_run_until(loop, &k.done, 3000),
              "the per-call deadline was ignored");
    cr_assert_eq(k.last_code, AREDIS_ETIMEDOUT, "%s", k.last);
    cr_assert_lt(testenv_now_ms() - t0, 2000);
    aredis_client_free(c);
    testloop_free(loop);
}

Test(client, unix_socket, .init = load_fixture)
{
    cr_assert_neq(srv.unixsocket[0], '\0', "fixture has a unix socket");
    aredis_loop *loop = testloop_new();
    char url[256];
    snprintf(url, sizeof url, "unix://%s?db=1", srv.unixsocket);
    aredis_status st;
    aredis_client *c =
        aredis_client_new(loop, &(aredis_options){.url = url}, &st);
    cr_assert_not_null(c, "%s", st.msg);
    counter k = {.expect = 1};
    aredis_command(c, count_cb, &k, "ECHO %b", "u\0x", (size_t)3);
    cr_assert(testloop_run_until(loop, &k.done, 10000));
    cr_assert_eq(k.errors, 0, "%s", k.last);
    cr_assert_eq(memcmp(k.last, "u", 2), 0);
    aredis_client_free(c);
    testloop_free(loop);
}

/* ---- protocol and replies -------------------------------------------------
 */

static void check_hgetall(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    counter *k = ud;
    k->calls++;
    k->last_type = r->type;
    if (r->type == AREDIS_REPLY_MAP && r->len == 4 &&
        aredis_reply_map_get(r, "f2", 2) != NULL &&
        strcmp(aredis_reply_map_get(r, "f2", 2)->str, "v2") == 0)
        k->last_int = 1;
    k->done = 1;
}

static void check_scores(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    counter *k = ud;
    k->calls++;
    k->last_type = r->type;
    if (r->type == AREDIS_REPLY_ARRAY && r->len == 2 &&
        r->element[1].type == AREDIS_REPLY_ARRAY &&
        r->element[1].element[1].type == AREDIS_REPLY_DOUBLE &&
        r->element[1].element[1].dval == 2.5)
        k->last_int = 1;
    k->done = 1;
}

static void same_shapes(int protocol)
{
    aredis_loop *loop = testloop_new();
    char url[128], key[64], zkey[64];
    testenv_key(key, sizeof key, "h");
    testenv_key(zkey, sizeof zkey, "z");
    aredis_client *c = aredis_client_new(
        loop,
        &(aredis_options){.url = testenv_url(url, sizeof url, &srv, 0),
                          .protocol = protocol,
                          .normalize_resp2 = 1},
        NULL);
    counter set = {.expect = 2}, h = {0}, z = {0};
    aredis_command(c, count_cb, &set, "HSET %s f1 v1 f2 v2", key);
    aredis_command(c, count_cb, &set, "ZADD %s 1 a 2.5 b", zkey);
    aredis_command(c, check_hgetall, &h, "HGETALL %s", key);
    aredis_command(c, check_scores, &z, "ZRANGE %s 0 -1 WITHSCORES", zkey);
    cr_assert(testloop_run_until(loop, &z.done, 10000));
    cr_assert_eq(aredis_client_protocol(c), protocol);
    cr_assert_eq(h.last_type, AREDIS_REPLY_MAP, "protocol %d: type %d",
                 protocol, h.last_type);
    cr_assert_eq(h.last_int, 1);
    cr_assert_eq(z.last_int, 1, "protocol %d: pairs with doubles", protocol);
    aredis_client_free(c);
    testloop_free(loop);
}

Test(client, resp2_normalised_to_resp3_shapes, .init = load_fixture)
{
    same_shapes(2);
    same_shapes(3);
}

static const aredis_reply *upper_hook(aredis_client *c, const aredis_reply *r,
                                      aredis_reply_arena *a, void *ud)
{
    (void)c;
    (void)ud;
    if (r->type != AREDIS_REPLY_STRING)
        return NULL;
    aredis_reply *n = aredis_arena_nodes(a, 1);
    char *s = aredis_arena_strndup(a, r->str, r->len);
    cr_assert(n && s);
    for (size_t i = 0; i < r->len; i++)
        s[i] = (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 32 : s[i]);
    *n = *r;
    n->str = s;
    return n;
}

Test(client, reply_hooks_reshape_replies, .init = load_fixture)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = fixture_client(loop, 0);
    cr_assert_eq(aredis_client_set_reply_hook(c, "echo", upper_hook, NULL), 0);
    cr_assert_eq(aredis_client_set_reply_hook(c, "", upper_hook, NULL),
                 AREDIS_EINVAL);
    counter k = {.expect = 1}, p = {.expect = 1};
    aredis_command(c, count_cb, &k, "ECHO %s", "shout");
    aredis_command(c, count_cb, &p, "PING %s", "quiet");
    cr_assert(testloop_run_until(loop, &p.done, 10000));
    cr_assert_str_eq(k.last, "SHOUT");
    cr_assert_str_eq(p.last, "quiet", "other commands are not hooked");
    cr_assert_eq(aredis_client_set_reply_hook(c, "ECHO", NULL, NULL), 0);
    k.done = 0;
    k.expect = 2;
    aredis_command(c, count_cb, &k, "ECHO %s", "calm");
    cr_assert(testloop_run_until(loop, &k.done, 10000));
    cr_assert_str_eq(k.last, "calm");
    aredis_client_free(c);
    testloop_free(loop);
}

static const aredis_reply *count_hook(aredis_client *c, const aredis_reply *r,
                                      aredis_reply_arena *a, void *ud)
{
    (void)c;
    (void)r;
    (void)a;
    (*(int *)ud)++;
    return NULL;
}

/* A command its deadline completed: its late reply is read and dropped,
 * and no hook reshapes it for a callback that will never see it. */
Test(client, a_late_reply_is_dropped_before_any_hook, .init = load_fixture)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = fixture_client(loop, 0);
    int hooked = 0;
    cr_assert_eq(aredis_client_set_reply_hook(c, "debug", count_hook, &hooked),
                 0);
    counter late = {.expect = 1}, after = {.expect = 1};
    cr_assert_eq(aredis_command_opts(c, &(aredis_cmd_opts){.timeout_ms = 50},
                                     count_cb, &late, "DEBUG SLEEP 0.3"),
                 0);
    cr_assert_eq(aredis_command(c, count_cb, &after, "PING"), 0);
    cr_assert(testloop_run_until(loop, &after.done, 5000));
    cr_assert_eq(late.calls, 1);
    cr_assert_eq(late.last_code, AREDIS_ETIMEDOUT, "%s", late.last);
    cr_assert_eq(hooked, 0, "the hook ran for a reply nobody receives");
    cr_assert_str_eq(after.last, "PONG");
    aredis_client_free(c);
    testloop_free(loop);
}

/* One command far larger than the socket's send buffer: written in full
 * (waiting for the socket to become writable between parts), answered. */
Test(client, a_command_larger_than_the_socket_buffer, .init = load_fixture)
{
    enum { BIG = 16 << 20 };
    aredis_loop *loop = testloop_new();
    char key[64];
    testenv_key(key, sizeof key, "big");
    aredis_client *c = fixture_client(loop, 0);
    counter ping = {.expect = 1}, set = {.expect = 1}, len = {.expect = 1},
            del = {.expect = 1};
    /* Connected first: the SET goes out alone, on a ready connection. */
    cr_assert_eq(aredis_command(c, count_cb, &ping, "PING"), 0);
    cr_assert(testloop_run_until(loop, &ping.done, 5000));
    char *v = malloc(BIG);
    cr_assert_not_null(v);
    memset(v, 'x', BIG);
    cr_assert_eq(
        aredis_command(c, count_cb, &set, "SET %s %b", key, v, (size_t)BIG), 0);
    free(v);
    cr_assert(testloop_run_until(loop, &set.done, 10000),
              "the big SET was never answered");
    cr_assert_str_eq(set.last, "OK");
    aredis_command(c, count_cb, &len, "STRLEN %s", key);
    aredis_command(c, count_cb, &del, "DEL %s", key);
    cr_assert(testloop_run_until(loop, &del.done, 5000));
    cr_assert_eq(len.last_int, BIG);
    aredis_client_free(c);
    testloop_free(loop);
}

Test(client, client_reply_off_skip_on, .init = load_fixture)
{
    aredis_loop *loop = testloop_new();
    char key[64];
    testenv_key(key, sizeof key, "cr");
    aredis_client *c = fixture_client(loop, 0);
    counter off = {0}, silent = {0}, on = {0}, skip = {0}, last = {.expect = 1};
    aredis_command(c, count_cb, &off, "CLIENT REPLY OFF");
    aredis_command(c, count_cb, &silent, "SET %s a", key);
    aredis_command(c, count_cb, &silent, "INCRBY %s 1", "x-not-a-number-key");
    aredis_command(c, count_cb, &on, "CLIENT REPLY ON");
    aredis_command(c, count_cb, &skip, "CLIENT REPLY SKIP");
    aredis_command(c, count_cb, &silent, "SET %s b", key);
    aredis_command(c, count_cb, &last, "GET %s", key);
    cr_assert(testloop_run_until(loop, &last.done, 10000));
    cr_assert_eq(off.calls, 1);
    cr_assert_eq(off.last_type, AREDIS_REPLY_NIL);
    cr_assert_eq(silent.calls, 3);
    cr_assert_eq(silent.errors, 0);
    cr_assert_eq(on.calls, 1);
    cr_assert_str_eq(on.last, "OK");
    cr_assert_eq(skip.calls, 1);
    cr_assert_str_eq(last.last, "b", "the reply queue stayed in step");
    aredis_client_free(c);
    testloop_free(loop);
}

static void on_push(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    counter *k = ud;
    k->calls++;
    if (r->type == AREDIS_REPLY_PUSH && r->len >= 1 &&
        strcmp(r->element[0].str, "invalidate") == 0)
        k->done = 1;
}

Test(client, resp3_pushes_go_to_the_push_handler, .init = load_fixture)
{
    aredis_loop *loop = testloop_new();
    char key[64];
    testenv_key(key, sizeof key, "push");
    aredis_client *c = fixture_client(loop, 0);
    aredis_client *w = fixture_client(loop, 0);
    counter pushes = {0}, k = {.expect = 2}, wk = {.expect = 1};
    aredis_client_set_push_handler(c, on_push, &pushes);
    aredis_command(c, count_cb, &k, "CLIENT TRACKING ON");
    aredis_command(c, count_cb, &k, "GET %s", key);
    cr_assert(testloop_run_until(loop, &k.done, 10000));
    aredis_command(w, count_cb, &wk, "SET %s changed", key);
    cr_assert(testloop_run_until(loop, &pushes.done, 10000));
    cr_assert_eq(k.calls, 2, "the push reached no command callback");
    aredis_client_free(c);
    aredis_client_free(w);
    testloop_free(loop);
}

/* ---- private servers: ACL users, restarts ----------------------------------
 */

Test(client, acl_user_and_wrong_password)
{
    testenv_server p;
    private_start(&p, "acl",
                  "--user alice on '>alicepw' '~*' '&*' '+@all' "
                  "--user default off");
    aredis_loop *loop = testloop_new();
    char url[160];
    snprintf(url, sizeof url, "redis://alice:alicepw@127.0.0.1:%d", p.port);
    aredis_client *good =
        aredis_client_new(loop, &(aredis_options){.url = url}, NULL);
    counter g = {.expect = 1};
    aredis_command(good, count_cb, &g, "ACL WHOAMI");
    cr_assert(testloop_run_until(loop, &g.done, 10000));
    cr_assert_str_eq(g.last, "alice");

    snprintf(url, sizeof url, "redis://alice:nope@127.0.0.1:%d", p.port);
    aredis_client *bad =
        aredis_client_new(loop, &(aredis_options){.url = url}, NULL);
    counter b = {.expect = 1};
    aredis_command(bad, count_cb, &b, "PING");
    cr_assert(testloop_run_until(loop, &b.done, 10000));
    cr_assert_eq(b.last_code, AREDIS_EAUTH, "%s", b.last);
    cr_assert(strstr(b.last, "WRONGPASS") != NULL, "%s", b.last);

    /* RESP2 with user + password goes through AUTH user pass. */
    snprintf(url, sizeof url, "redis://alice:alicepw@127.0.0.1:%d?protocol=2",
             p.port);
    aredis_client *two =
        aredis_client_new(loop, &(aredis_options){.url = url}, NULL);
    counter t = {.expect = 1};
    aredis_command(two, count_cb, &t, "ACL WHOAMI");
    cr_assert(testloop_run_until(loop, &t.done, 10000));
    cr_assert_str_eq(t.last, "alice");
    aredis_client_free(good);
    aredis_client_free(bad);
    aredis_client_free(two);
    testloop_free(loop);
    private_stop(&p);
}

Test(client, server_restart_mid_run)
{
    testenv_server p;
    private_start(&p, "restart", "");
    aredis_loop *loop = testloop_new();
    char url[128];
    aredis_client *c = aredis_client_new(
        loop, &(aredis_options){.url = testenv_url(url, sizeof url, &p, 0)},
        NULL);
    counter before = {.expect = 1};
    aredis_command(c, count_cb, &before, "SET k v");
    cr_assert(testloop_run_until(loop, &before.done, 10000));
    cr_assert_eq(before.errors, 0);

    /* Commands in flight when the server dies each complete once. */
    counter during = {.expect = 5};
    aredis_command(c, count_cb, &during, "DEBUG SLEEP 2");
    for (int i = 0; i < 4; i++)
        aredis_command(c, count_cb, &during, "PING");
    int zero = 0;
    testloop_run_until(loop, &zero, 200);
    cr_assert_eq(kill((pid_t)p.pid, SIGKILL), 0);
    cr_assert(testloop_run_until(loop, &during.done, 10000));
    cr_assert_eq(during.calls, 5);
    cr_assert_eq(during.errors, 5, "%d errors, last %d: %s", during.errors,
                 during.last_code, during.last);
    cr_assert(during.last_code == AREDIS_EUNKNOWN ||
                  during.last_code == AREDIS_ECLOSED,
              "code %d: %s", during.last_code, during.last);

    /* Same port again: the next command reconnects. */
    private_stop(&p);
    char extra[64];
    snprintf(extra, sizeof extra, "--port %d", p.port);
    testenv_server q;
    int rc = testenv_private_start(&q, "client-restart", extra);
    if (rc == 0) {
        counter after = {.expect = 1};
        aredis_command(c, count_cb, &after, "PING");
        cr_assert(testloop_run_until(loop, &after.done, 10000));
        cr_assert_eq(after.errors, 0, "%s", after.last);
        cr_assert_str_eq(after.last, "PONG");
        private_stop(&q);
    }
    aredis_client_free(c);
    testloop_free(loop);
    cr_assert_eq(rc, 0, "restarting on the same port: %s", testenv_errstr());
}

/* ---- the blocking facade
 * ----------------------------------------------------- */

Test(sync, commands_return_owned_replies, .init = load_fixture)
{
    char url[128], key[64];
    testenv_key(key, sizeof key, "sync");
    aredis_status st;
    aredis_sync *s = aredis_sync_connect(
        &(aredis_options){.url = testenv_url(url, sizeof url, &srv, 0)}, &st);
    cr_assert_not_null(s, "%s", st.msg);
    aredis_reply *r = aredis_sync_command(s, "SET %s %d", key, 41);
    cr_assert_str_eq(r->str, "OK");
    aredis_reply_free(r);
    const char *argv[] = {"INCR", key};
    r = aredis_sync_commandv(s, 2, argv, NULL);
    cr_assert_eq(r->integer, 42);
    aredis_reply_free(r);
    r = aredis_sync_command(s, "GET %q");
    cr_assert_eq(r->type, AREDIS_REPLY_ERROR);
    cr_assert_eq(r->code, AREDIS_EFORMAT);
    aredis_reply_free(r);
    aredis_sync_free(s);

    testenv_server none;
    memset(&none, 0, sizeof none);
    none.port = testenv_free_port();
    cr_assert_null(aredis_sync_connect(
        &(aredis_options){.url = testenv_url(url, sizeof url, &none, 0)}, &st));
    cr_assert_eq(st.code, AREDIS_ECONNREFUSED, "%s", st.msg);
}

/* Proves which loop this run exercises: adapters refuse the built-in run. */
Test(client, runs_on_the_loop_under_test)
{
    aredis_loop *loop = testloop_new();
    int e = aredis_loop_run_once(loop, 0);
    if (strcmp(testloop_name(), "builtin") == 0)
        cr_assert_geq(e, 0);
    else
        cr_assert_eq(e, AREDIS_ENOTSUP, "%s: %d", testloop_name(), e);
    testloop_free(loop);
}

/* ---- TLS and IPv6 through the whole client ------------------------------- */

#ifdef AREDIS_TEST_TLS
Test(client, tls_verified_and_refused)
{
    testenv_server tls;
    testclient_server(&tls, "tls");
    char url[128], ca[400];
    snprintf(url, sizeof url, "rediss://127.0.0.1:%d", tls.port);
    snprintf(ca, sizeof ca, "%s/ca.crt", tls.dir);
    aredis_loop *loop = testloop_new();
    aredis_options o = {.url = url};
    o.tls.ca_file = ca;
    aredis_client *good = aredis_client_new(loop, &o, NULL);
    counter g = {.expect = 1};
    aredis_command(good, count_cb, &g, "ECHO %s", "secure");
    cr_assert(testloop_run_until(loop, &g.done, 10000));
    cr_assert_str_eq(g.last, "secure");

    /* Without the CA the server's certificate is not trusted. */
    aredis_client *bad =
        aredis_client_new(loop, &(aredis_options){.url = url}, NULL);
    counter b = {.expect = 1};
    aredis_command(bad, count_cb, &b, "PING");
    cr_assert(testloop_run_until(loop, &b.done, 10000));
    cr_assert_eq(b.last_code, AREDIS_ETLS, "%d: %s", b.last_code, b.last);
    cr_assert(strstr(b.last, "verify") != NULL, "%s", b.last);
    aredis_client_free(good);
    aredis_client_free(bad);
    testloop_free(loop);
}
#endif

static int have_ipv6(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6,
                             .sin6_addr = in6addr_loopback};
    int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

Test(client, ipv6_loopback)
{
    if (!have_ipv6())
        cr_skip_test("this machine has no usable ::1");
    testenv_server v6;
    testclient_server(&v6, "ipv6");
    char url[128];
    snprintf(url, sizeof url, "redis://[::1]:%d/0", v6.port);
    aredis_loop *loop = testloop_new();
    aredis_client *c =
        aredis_client_new(loop, &(aredis_options){.url = url}, NULL);
    counter k = {.expect = 1};
    aredis_command(c, count_cb, &k, "CLIENT INFO");
    cr_assert(testloop_run_until(loop, &k.done, 10000));
    cr_assert_eq(k.errors, 0, "%s", k.last);
    cr_assert(strstr(k.last, "addr=[::1]:") != NULL ||
                  strstr(k.last, "addr=::1:") != NULL,
              "%s", k.last);
    aredis_client_free(c);
    testloop_free(loop);
}

static const aredis_reply *counting_hook(aredis_client *c,
                                         const aredis_reply *r,
                                         aredis_reply_arena *a, void *ud)
{
    (void)c;
    (void)r;
    (void)a;
    (*(int *)ud)++;
    return NULL; /* the reply as it came */
}

/* A command keeps the hook it was submitted under, whatever happens to the
 * table before its reply: replaced, then removed, with both in flight. */
Test(client, reply_hook_kept_by_commands_in_flight, .init = load_fixture)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = fixture_client(loop, 0);
    int first = 0, second = 0;
    counter k = {.expect = 3};
    cr_assert_eq(aredis_client_set_reply_hook(c, "ECHO", counting_hook, &first),
                 0);
    aredis_command(c, count_cb, &k, "ECHO %s", "one");
    cr_assert_eq(
        aredis_client_set_reply_hook(c, "echo", counting_hook, &second), 0);
    aredis_command(c, count_cb, &k, "ECHO %s", "two");
    cr_assert_eq(aredis_client_set_reply_hook(c, "ECHO", NULL, NULL), 0);
    aredis_command(c, count_cb, &k, "ECHO %s", "three");
    cr_assert(testloop_run_until(loop, &k.done, 10000));
    cr_assert_eq(k.errors, 0);
    cr_assert_str_eq(k.last, "three");
    cr_assert_eq(first, 1, "the first hook ran %d times", first);
    cr_assert_eq(second, 1, "the second hook ran %d times", second);
    aredis_client_free(c);
    testloop_free(loop);
}
