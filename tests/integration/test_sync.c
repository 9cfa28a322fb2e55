/* Integration tests of the blocking facade beyond single commands
 * (include/aredis/sync.h and the blocking forms in pipeline.h,
 * transaction.h, script.h, pubsub.h, stream.h) against the real standalone
 * server: the host and port constructor, per-command deadlines,
 * pipelining with append / get-reply (order, exactly once, borrowed
 * replies, errors in their slots), the pipeline object executed and
 * waited for, MULTI/EXEC with WATCH and the transaction helper with a
 * blocking body, scripts, pub/sub get-message with a timeout, the stream
 * consumer run on the private loop, blocking calls refused from callbacks,
 * a server that is down, and allocations in the steady state (counting
 * allocator hooks). The facade runs its own built-in loop: CTest runs this
 * file on both of its backends (epoll, and poll through
 * AREDIS_LOOP_BACKEND=poll). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aredis/aredis.h"
#include "countalloc.h"
#include "testenv.h"

static testenv_server srv;

static void setup(void)
{
    cr_assert_eq(testenv_server_load(&srv, "standalone"), 0, "%s",
                 testenv_errstr());
}

TestSuite(sync_more, .init = setup, .timeout = 60);

static aredis_sync *connect_db(int db)
{
    char url[128];
    aredis_status st;
    aredis_sync *s = aredis_sync_connect(
        &(aredis_options){.url = testenv_url(url, sizeof url, &srv, db)}, &st);
    cr_assert_not_null(s, "%s", st.msg);
    return s;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run a command whose reply must be of type `type`; free it. */
static void must(aredis_sync *s, int type, const char *fmt, const char *a,
                 const char *b)
{
    aredis_reply *r = aredis_sync_command(s, fmt, a, b);
    cr_assert_not_null(r);
    cr_assert_eq(r->type, type, "%s: got %s: %.*s", fmt,
                 aredis_reply_type_name(r->type), (int)r->len,
                 r->type == AREDIS_REPLY_ERROR ? r->str : "");
    aredis_reply_free(r);
}

static void assert_error(const aredis_reply *r, int code)
{
    cr_assert_not_null(r);
    cr_assert_eq(r->type, AREDIS_REPLY_ERROR, "type %s, not an error",
                 aredis_reply_type_name(r->type));
    cr_assert_eq(r->code, code, "code %s (%s), expected %s",
                 aredis_err_name(r->code), r->str, aredis_err_name(code));
}

/* ---- the retry rule ------------------------------------------------------ */

/* The server closed the connection while the program did something else:
 * a command written after that close never reached the server, so it is
 * sent again on a new connection -- not failed "outcome unknown". The
 * facade writes before it looks at the socket (two system calls per
 * command); what proves the command unsent is, over TCP, the count of
 * bytes the server acknowledged before its FIN (without that evidence
 * this test fails), over a Unix socket the write's own failure. */
static void resend_after_close(aredis_sync *s)
{
    aredis_sync *admin = connect_db(0);
    char key[64];
    testenv_key(key, sizeof key, "sync-resend");
    must(s, AREDIS_REPLY_STATUS, "SET %s %s", key, "0");
    aredis_reply *id = aredis_sync_command(s, "CLIENT ID");
    cr_assert_eq(id->type, AREDIS_REPLY_INTEGER);
    aredis_reply *k =
        aredis_sync_command(admin, "CLIENT KILL ID %lld", id->integer);
    cr_assert_eq(k->type, AREDIS_REPLY_INTEGER, "%.*s", (int)k->len,
                 k->type == AREDIS_REPLY_ERROR ? k->str : "");
    cr_assert_eq(k->integer, 1);
    aredis_reply_free(k);
    aredis_reply_free(id);
    /* Let the close reach the client's socket. */
    nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
    /* INCR is not idempotent: only a command known unsent is re-sent. */
    aredis_reply *r = aredis_sync_command(s, "INCR %s", key);
    cr_assert_eq(r->type, AREDIS_REPLY_INTEGER, "got %s: %.*s",
                 aredis_reply_type_name(r->type), (int)r->len,
                 r->type == AREDIS_REPLY_ERROR ? r->str : "");
    cr_assert_eq(r->integer, 1);
    aredis_reply_free(r);
    aredis_sync_free(admin);
    aredis_sync_free(s);
}

Test(sync_more, command_after_server_close_is_sent_again)
{
    resend_after_close(connect_db(0));
}

Test(sync_more, command_after_server_close_is_sent_again_unix)
{
    cr_assert(srv.unixsocket[0] != '\0', "the test server has no socket");
    char url[160];
    snprintf(url, sizeof url, "unix://%s", srv.unixsocket);
    aredis_status st;
    aredis_sync *s = aredis_sync_connect(&(aredis_options){.url = url}, &st);
    cr_assert_not_null(s, "%s: %s", url, st.msg);
    resend_after_close(s);
}

/* ---- constructor, deadlines -------------------------------------------- */

Test(sync_more, connect_host_and_port)
{
    aredis_status st;
    aredis_sync *s = aredis_sync_connect_host(srv.host, srv.port, &st);
    cr_assert_not_null(s, "%s", st.msg);
    aredis_reply *r = aredis_sync_command(s, "PING");
    cr_assert_str_eq(r->str, "PONG");
    aredis_reply_free(r);
    aredis_sync_free(s);

    cr_assert_null(
        aredis_sync_connect_host("127.0.0.1", testenv_free_port(), &st));
    cr_assert_eq(st.code, AREDIS_ECONNREFUSED, "%s", st.msg);
}

Test(sync_more, per_command_deadline)
{
    aredis_sync *s = connect_db(0);
    long long t0 = now_ms();
    aredis_reply *r = aredis_sync_command_opts(
        s, &(aredis_cmd_opts){.timeout_ms = 100}, "DEBUG SLEEP %s", "0.5");
    long long took = now_ms() - t0;
    assert_error(r, AREDIS_ETIMEDOUT);
    aredis_reply_free(r);
    cr_assert(took >= 90 && took < 450, "the deadline of 100 ms took %lld ms",
              took);
    /* The argument-vector form, and no deadline: the handle goes on. */
    const char *argv[] = {"ECHO", "after"};
    r = aredis_sync_commandv_opts(s, &(aredis_cmd_opts){.timeout_ms = -1}, 2,
                                  argv, NULL);
    cr_assert_eq(r->type, AREDIS_REPLY_STRING, "%s",
                 aredis_reply_type_name(r->type));
    cr_assert_str_eq(r->str, "after");
    aredis_reply_free(r);
    aredis_sync_free(s);
}

Test(sync_more, server_down_gives_a_clear_code)
{
    testenv_server priv;
    cr_assert_eq(testenv_private_start(&priv, "syncdown", NULL), 0, "%s",
                 testenv_errstr());
    aredis_status st;
    aredis_sync *s =
        aredis_sync_connect(&(aredis_options){.host = priv.host,
                                              .port = priv.port,
                                              .reconnect_max_attempts = 1,
                                              .reconnect_initial_ms = 10},
                            &st);
    cr_assert_not_null(s, "%s", st.msg);
    cr_assert_eq(testenv_private_stop(&priv), 0, "%s", testenv_errstr());
    /* The connection is gone and reconnecting is refused: a command, an
     * appended one and a pipeline each fail with a code that says so. */
    aredis_reply *r = aredis_sync_command(s, "GET %s", "k");
    cr_assert_eq(r->type, AREDIS_REPLY_ERROR);
    cr_assert(r->code == AREDIS_ECONNREFUSED || r->code == AREDIS_ECLOSED,
              "%s: %s", aredis_err_name(r->code), r->str);
    aredis_reply_free(r);
    cr_assert_eq(aredis_sync_append(s, "GET %s", "k"), 0);
    const aredis_reply *g = aredis_sync_get_reply(s);
    cr_assert_eq(g->type, AREDIS_REPLY_ERROR);
    cr_assert_eq(g->code, AREDIS_ECONNREFUSED, "%s: %s",
                 aredis_err_name(g->code), g->str);
    aredis_pipeline *p = aredis_pipeline_new(aredis_sync_client(s), 0);
    cr_assert_eq(aredis_pipeline_command(p, "GET %s", "k"), 0);
    r = aredis_sync_pipeline_execute(s, p);
    assert_error(r, AREDIS_ECONNREFUSED);
    aredis_reply_free(r);
    aredis_pipeline_free(p);
    aredis_sync_free(s);
}

/* A server that wants a password, and none given: the handshake's refusal
 * comes back in the status, the server's long text cut cleanly to fit
 * (marked "...", never ending mid-word unmarked). */
Test(sync_more, refused_handshake_message_is_cut_cleanly)
{
    testenv_server priv;
    cr_assert_eq(
        testenv_private_start(&priv, "syncauth", "--requirepass s3cret"), 0,
        "%s", testenv_errstr());
    aredis_status st;
    aredis_sync *s = aredis_sync_connect(
        &(aredis_options){.host = priv.host,
                          .port = priv.port,
                          .reconnect_max_attempts = AREDIS_NO_RECONNECT},
        &st);
    cr_assert_eq(testenv_private_stop(&priv), 0, "%s", testenv_errstr());
    cr_assert_null(s);
    cr_assert_eq(st.code, AREDIS_EAUTH, "%s: %s", aredis_err_name(st.code),
                 st.msg);
    cr_assert(strstr(st.msg, "NOAUTH") != NULL, "%s", st.msg);
    size_t n = strlen(st.msg);
    cr_assert_lt(n, sizeof st.msg);
    cr_assert(n > 3 && strcmp(st.msg + n - 3, "...") == 0,
              "a long message cut without a mark: %s", st.msg);
}

/* ---- pipelining: append, get reply --------------------------------------- */

Test(sync_more, append_then_read_in_order_exactly_once)
{
    aredis_sync *s = connect_db(0);
    char key[64];
    testenv_key(key, sizeof key, "pipe");
    must(s, AREDIS_REPLY_INTEGER, "DEL %s", key, NULL);
    enum { N = 300 };
    for (int i = 0; i < N; i++)
        cr_assert_eq(aredis_sync_append(s, "INCR %s", key), 0);
    const char *argv[] = {"GET", key};
    cr_assert_eq(aredis_sync_appendv(s, 2, argv, NULL), 0);
    cr_assert_eq(aredis_sync_pending(s), N + 1);
    for (int i = 0; i < N; i++) {
        const aredis_reply *r = aredis_sync_get_reply(s);
        cr_assert_eq(r->type, AREDIS_REPLY_INTEGER, "reply %d: %s", i,
                     aredis_reply_type_name(r->type));
        cr_assert_eq(r->integer, i + 1, "reply %d out of order", i);
    }
    const aredis_reply *r = aredis_sync_get_reply(s);
    cr_assert_eq(r->type, AREDIS_REPLY_STRING);
    cr_assert_eq(atoi(r->str), N);
    cr_assert_eq(aredis_sync_pending(s), 0);
    /* Nothing left: a clear error, every time. */
    r = aredis_sync_get_reply(s);
    assert_error(r, AREDIS_ESTATE);
    assert_error(aredis_sync_get_reply(s), AREDIS_ESTATE);
    must(s, AREDIS_REPLY_INTEGER, "DEL %s", key, NULL);
    aredis_sync_free(s);
}

Test(sync_more, replies_are_borrowed_until_the_next_read)
{
    aredis_sync *s = connect_db(0);
    char key[64];
    testenv_key(key, sizeof key, "borrow");
    cr_assert_eq(aredis_sync_append(s, "SET %s %s", key, "first value"), 0);
    cr_assert_eq(aredis_sync_append(s, "GET %s", key), 0);
    cr_assert_eq(aredis_sync_append(s, "ECHO %s", "third"), 0);
    cr_assert_str_eq(aredis_sync_get_reply(s)->str, "OK");
    const aredis_reply *got = aredis_sync_get_reply(s);
    cr_assert_str_eq(got->str, "first value");
    /* Blocking calls in between leave the borrowed reply alone, and their
     * replies come back in their own right; the appended reply still
     * waiting keeps its place. */
    aredis_reply *own = aredis_sync_command(s, "SET %s %s", key, "second");
    cr_assert_str_eq(own->str, "OK");
    aredis_reply_free(own);
    cr_assert_eq(aredis_sync_append(s, "GET %s", key), 0);
    own = aredis_sync_command(s, "ECHO %s", "direct");
    cr_assert_str_eq(own->str, "direct");
    aredis_reply_free(own);
    cr_assert_str_eq(got->str, "first value");
    cr_assert_str_eq(aredis_sync_get_reply(s)->str, "third");
    cr_assert_str_eq(aredis_sync_get_reply(s)->str, "second");
    must(s, AREDIS_REPLY_INTEGER, "DEL %s", key, NULL);
    aredis_sync_free(s);
}

Test(sync_more, errors_stay_in_their_slots)
{
    aredis_sync *s = connect_db(0);
    char key[64];
    testenv_key(key, sizeof key, "slots");
    cr_assert_eq(aredis_sync_append(s, "SET %s %s", key, "text"), 0);
    cr_assert_eq(aredis_sync_append(s, "INCR %s", key), 0);
    /* A bad format is refused at once and takes no slot. */
    cr_assert_eq(aredis_sync_append(s, "GET %q"), AREDIS_EFORMAT);
    cr_assert_eq(aredis_sync_append(s, NULL), AREDIS_EFORMAT);
    cr_assert_eq(aredis_sync_append_opts(s,
                                         &(aredis_cmd_opts){.timeout_ms = 50},
                                         "DEBUG SLEEP %s", "0.3"),
                 0);
    cr_assert_eq(aredis_sync_append(s, "DEL %s", key), 0);
    cr_assert_eq(aredis_sync_pending(s), 4);
    cr_assert_str_eq(aredis_sync_get_reply(s)->str, "OK");
    const aredis_reply *r = aredis_sync_get_reply(s);
    assert_error(r, AREDIS_ESERVER);
    cr_assert(strstr(r->str, "not an integer") != NULL, "%s", r->str);
    assert_error(aredis_sync_get_reply(s), AREDIS_ETIMEDOUT);
    r = aredis_sync_get_reply(s);
    cr_assert_eq(r->type, AREDIS_REPLY_INTEGER);
    cr_assert_eq(r->integer, 1);
    aredis_sync_free(s);
}

Test(sync_more, free_with_unread_replies)
{
    /* Under ASan: the slots of replies never read are freed with the
     * handle, whether their commands completed or not. */
    aredis_sync *s = connect_db(0);
    for (int i = 0; i < 50; i++)
        cr_assert_eq(aredis_sync_append(s, "ECHO %d", i), 0);
    cr_assert_str_eq(aredis_sync_get_reply(s)->str, "0");
    aredis_reply *r = aredis_sync_command(s, "PING");
    aredis_reply_free(r);
    for (int i = 0; i < 20; i++)
        cr_assert_eq(aredis_sync_append(s, "ECHO %d", i), 0);
    cr_assert_eq(aredis_sync_pending(s), 69);
    aredis_sync_free(s);
}

/* ---- the pipeline object, transactions ---------------------------------- */

Test(sync_more, pipeline_execute_waits)
{
    aredis_sync *s = connect_db(0);
    char key[64];
    testenv_key(key, sizeof key, "pobj");
    aredis_pipeline *p = aredis_pipeline_new(aredis_sync_client(s), 0);
    cr_assert_eq(aredis_pipeline_command(p, "SET %s %s", key, "5"), 0);
    cr_assert_eq(aredis_pipeline_command(p, "INCRBY %s %d", key, 10), 0);
    cr_assert_eq(aredis_pipeline_command(p, "LPUSH %s x", key), 0);
    aredis_reply *r = aredis_sync_pipeline_execute(s, p);
    cr_assert_eq(r->type, AREDIS_REPLY_ARRAY, "%s", r->str);
    cr_assert_eq(r->len, 3);
    cr_assert_str_eq(r->element[0].str, "OK");
    cr_assert_eq(r->element[1].integer, 15);
    cr_assert_eq(r->element[2].code, AREDIS_ESERVER);
    aredis_reply_free(r);
    /* Empty again: executing nothing is refused, nothing sent. */
    assert_error(r = aredis_sync_pipeline_execute(s, p), AREDIS_EINVAL);
    aredis_reply_free(r);
    aredis_pipeline_free(p);

    /* A MULTI ... EXEC pipeline, and one refused by the server. */
    p = aredis_pipeline_new(aredis_sync_client(s), 1);
    cr_assert_eq(aredis_pipeline_command(p, "INCR %s", key), 0);
    cr_assert_eq(aredis_pipeline_command(p, "GET %s", key), 0);
    r = aredis_sync_pipeline_execute(s, p);
    cr_assert_eq(r->type, AREDIS_REPLY_ARRAY, "%s", r->str);
    cr_assert_eq(r->element[0].integer, 16);
    cr_assert_str_eq(r->element[1].str, "16");
    aredis_reply_free(r);
    cr_assert_eq(aredis_pipeline_command(p, "INCR %s", key), 0);
    cr_assert_eq(aredis_pipeline_command(p, "SET %s", key), 0);
    r = aredis_sync_pipeline_execute(s, p);
    assert_error(r, AREDIS_ESERVER);
    cr_assert(strstr(r->str, "EXECABORT") != NULL, "%s", r->str);
    aredis_reply_free(r);
    aredis_pipeline_free(p);

    /* A pipeline of another client is refused. */
    aredis_sync *other = connect_db(0);
    p = aredis_pipeline_new(aredis_sync_client(other), 0);
    cr_assert_eq(aredis_pipeline_command(p, "PING"), 0);
    assert_error(r = aredis_sync_pipeline_execute(s, p), AREDIS_EINVAL);
    aredis_reply_free(r);
    aredis_pipeline_free(p);
    aredis_sync_free(other);
    must(s, AREDIS_REPLY_INTEGER, "DEL %s", key, NULL);
    aredis_sync_free(s);
}

Test(sync_more, watch_immediate_multi_exec)
{
    aredis_sync *s = connect_db(0), *rival = connect_db(0);
    char key[64];
    testenv_key(key, sizeof key, "watch");
    must(s, AREDIS_REPLY_STATUS, "SET %s %s", key, "1");
    aredis_pipeline *p = aredis_pipeline_new(aredis_sync_client(s), 0);
    const char *keys[] = {key};
    for (int round = 0; round < 2; round++) {
        cr_assert_eq(aredis_sync_pipeline_watch(s, p, 1, keys), 0);
        cr_assert_eq(aredis_pipeline_watching(p), 1);
        aredis_reply *r = aredis_sync_pipeline_immediate(s, p, "GET %s", key);
        cr_assert_eq(r->type, AREDIS_REPLY_STRING);
        long long v = atoll(r->str);
        aredis_reply_free(r);
        if (round == 1) /* another client changes the key meanwhile */
            must(rival, AREDIS_REPLY_INTEGER, "INCR %s", key, NULL);
        cr_assert_eq(aredis_pipeline_multi(p), 0);
        cr_assert_eq(aredis_pipeline_command(p, "SET %s %lld", key, v * 10), 0);
        r = aredis_sync_pipeline_execute(s, p);
        if (round == 0) {
            cr_assert_eq(r->type, AREDIS_REPLY_ARRAY, "%s", r->str);
            cr_assert_str_eq(r->element[0].str, "OK");
        } else {
            assert_error(r, AREDIS_EWATCH);
        }
        aredis_reply_free(r);
    }
    aredis_reply *r = aredis_sync_command(s, "GET %s", key);
    cr_assert_str_eq(r->str, "11", "got %s", r->str);
    aredis_reply_free(r);
    /* Immediate mode is checked: without a WATCH there is none. */
    assert_error(r = aredis_sync_pipeline_immediate(s, p, "GET %s", key),
                 AREDIS_ESTATE);
    aredis_reply_free(r);
    const char *argv[] = {"GET", key};
    assert_error(r = aredis_sync_pipeline_immediatev(s, p, 2, argv, NULL),
                 AREDIS_ESTATE);
    aredis_reply_free(r);
    aredis_pipeline_free(p);
    must(s, AREDIS_REPLY_INTEGER, "DEL %s", key, NULL);
    aredis_sync_free(rival);
    aredis_sync_free(s);
}

typedef struct body_state {
    const char *key;
    aredis_sync *rival; /* changes the key during the first attempts */
    int rival_rounds;
    int calls;
    int give_up; /* return this code instead of committing */
    int nested;  /* try a transaction inside the body */
    aredis_reply *nested_r;
} body_state;

static int incr_body(aredis_sync *s, aredis_pipeline *p, void *ud)
{
    body_state *b = ud;
    b->calls++;
    cr_assert_eq(aredis_transaction_attempt(p), b->calls);
    if (b->nested) {
        const char *keys[] = {b->key};
        b->nested_r = aredis_sync_transaction(s, NULL, incr_body, b, 1, keys);
        return AREDIS_ECANCELED;
    }
    aredis_reply *r = aredis_sync_pipeline_immediate(s, p, "GET %s", b->key);
    if (r->type == AREDIS_REPLY_ERROR) {
        int code = r->code;
        aredis_reply_free(r);
        return code;
    }
    long long v = r->type == AREDIS_REPLY_STRING ? atoll(r->str) : 0;
    aredis_reply_free(r);
    if (b->give_up)
        return b->give_up;
    if (b->calls <= b->rival_rounds)
        must(b->rival, AREDIS_REPLY_INTEGER, "INCRBY %s 100", b->key, NULL);
    aredis_pipeline_multi(p);
    aredis_pipeline_command(p, "SET %s %lld", b->key, v + 1);
    return 0;
}

Test(sync_more, transaction_helper_retries_a_blocking_body)
{
    aredis_sync *s = connect_db(0), *rival = connect_db(0);
    char key[64];
    testenv_key(key, sizeof key, "txn");
    must(s, AREDIS_REPLY_STATUS, "SET %s %s", key, "0");
    const char *keys[] = {key};

    /* Two attempts lose the race; the third commits. */
    body_state b = {.key = key, .rival = rival, .rival_rounds = 2};
    aredis_reply *r = aredis_sync_transaction(s, NULL, incr_body, &b, 1, keys);
    cr_assert_eq(r->type, AREDIS_REPLY_ARRAY, "%s", r->str);
    cr_assert_str_eq(r->element[0].str, "OK");
    aredis_reply_free(r);
    cr_assert_eq(b.calls, 3);
    r = aredis_sync_command(s, "GET %s", key);
    cr_assert_str_eq(r->str, "201");
    aredis_reply_free(r);

    /* Every attempt loses: AREDIS_EWATCH after max_attempts. */
    b = (body_state){.key = key, .rival = rival, .rival_rounds = 100};
    r = aredis_sync_transaction(
        s, &(aredis_transaction_opts){.max_attempts = 3, .delay_ms = 5},
        incr_body, &b, 1, keys);
    assert_error(r, AREDIS_EWATCH);
    aredis_reply_free(r);
    cr_assert_eq(b.calls, 3);

    /* The body gives up with a code of its own. */
    b = (body_state){.key = key, .give_up = AREDIS_ECANCELED};
    r = aredis_sync_transaction(s, NULL, incr_body, &b, 1, keys);
    assert_error(r, AREDIS_ECANCELED);
    aredis_reply_free(r);
    cr_assert_eq(b.calls, 1);

    /* A transaction inside the body is refused, clearly. */
    b = (body_state){.key = key, .nested = 1};
    r = aredis_sync_transaction(s, NULL, incr_body, &b, 1, keys);
    assert_error(r, AREDIS_ECANCELED);
    aredis_reply_free(r);
    assert_error(b.nested_r, AREDIS_ESTATE);
    aredis_reply_free(b.nested_r);

    /* Bad arguments. */
    assert_error(r = aredis_sync_transaction(s, NULL, NULL, NULL, 1, keys),
                 AREDIS_EINVAL);
    aredis_reply_free(r);
    assert_error(r = aredis_sync_transaction(s, NULL, incr_body, &b, 0, keys),
                 AREDIS_EINVAL);
    aredis_reply_free(r);
    aredis_loop *foreign = aredis_loop_new();
    assert_error(r = aredis_sync_transaction(
                     s, &(aredis_transaction_opts){.loop = foreign}, incr_body,
                     &b, 1, keys),
                 AREDIS_EINVAL);
    aredis_reply_free(r);
    aredis_loop_free(foreign);

    /* The handle is still fine afterwards; the value is untouched. */
    r = aredis_sync_command(s, "GET %s", key);
    cr_assert_str_eq(r->str, "501");
    aredis_reply_free(r);
    must(s, AREDIS_REPLY_INTEGER, "DEL %s", key, NULL);
    aredis_sync_free(rival);
    aredis_sync_free(s);
}

/* ---- scripts ----------------------------------------------------------- */

Test(sync_more, script_eval_loads_when_needed)
{
    aredis_sync *s = connect_db(0);
    char key[64];
    testenv_key(key, sizeof key, "script");
    const char *src = "redis.call('SET', KEYS[1], ARGV[1]) "
                      "return redis.call('INCRBY', KEYS[1], ARGV[2])";
    aredis_script *sc = aredis_script_new(src, strlen(src));
    const char *keys[] = {key}, *args[] = {"40", "2"};
    must(s, AREDIS_REPLY_STATUS, "SCRIPT FLUSH", NULL, NULL);
    for (int i = 0; i < 2; i++) { /* NOSCRIPT, then cached */
        aredis_reply *r = aredis_sync_script_eval(s, sc, 1, keys, 2, args);
        cr_assert_eq(r->type, AREDIS_REPLY_INTEGER, "%s",
                     r->type == AREDIS_REPLY_ERROR ? r->str : "");
        cr_assert_eq(r->integer, 42);
        aredis_reply_free(r);
    }
    /* Binary-safe form with lengths. */
    const size_t klen[] = {strlen(key)}, alen[] = {1, 1};
    const char *args2[] = {"7x", "3y"};
    aredis_reply *r =
        aredis_sync_script_evalv(s, sc, 1, keys, klen, 2, args2, alen);
    cr_assert_eq(r->integer, 10);
    aredis_reply_free(r);
    aredis_script_free(sc);

    /* A script error keeps the server's message. */
    const char *bad = "return redis.call('INCR', KEYS[1], 'extra')";
    sc = aredis_script_new(bad, strlen(bad));
    r = aredis_sync_script_eval(s, sc, 1, keys, 0, NULL);
    assert_error(r, AREDIS_ESERVER);
    aredis_reply_free(r);
    /* Bad arguments: nothing sent. */
    assert_error(r = aredis_sync_script_eval(s, sc, -1, keys, 0, NULL),
                 AREDIS_EINVAL);
    aredis_reply_free(r);
    aredis_script_free(sc);
    must(s, AREDIS_REPLY_INTEGER, "DEL %s", key, NULL);
    aredis_sync_free(s);
}

/* ---- pub/sub ----------------------------------------------------------- */

static int handler_calls, nested_code;

static void on_alert(aredis_pubsub *ps, const aredis_pubsub_message *m,
                     void *ud)
{
    (void)ps;
    aredis_sync *s = ud;
    if (m->kind != AREDIS_PUBSUB_MESSAGE)
        return;
    handler_calls++;
    /* A blocking call from inside a blocking call: refused at once. */
    aredis_reply *r = aredis_sync_command(s, "PING");
    nested_code = r->code;
    aredis_reply_free(r);
    const aredis_pubsub_message *dummy;
    cr_assert_eq(aredis_sync_pubsub_get_message(s, ps, 0, &dummy),
                 AREDIS_EBUSY);
    cr_assert_eq(aredis_sync_append(s, "PING"), AREDIS_EBUSY);
    cr_assert_eq(aredis_sync_get_reply(s)->code, AREDIS_EBUSY);
}

Test(sync_more, pubsub_get_message_with_timeout)
{
    aredis_sync *s = connect_db(0), *pub = connect_db(0);
    char ch[64], alert[64];
    testenv_key(ch, sizeof ch, "news");
    testenv_key(alert, sizeof alert, "alert");
    aredis_pubsub *ps = aredis_pubsub_new(aredis_sync_client(s), NULL);
    cr_assert_eq(aredis_pubsub_subscribe(ps, ch, NULL, NULL), 0);
    cr_assert_eq(aredis_pubsub_subscribe(ps, alert, on_alert, s), 0);
    /* The confirmation of the channel without a handler is queued (the
     * other goes to its handler). */
    const aredis_pubsub_message *m;
    cr_assert_eq(aredis_sync_pubsub_get_message(s, ps, 2000, &m), 0);
    cr_assert_eq(m->kind, AREDIS_PUBSUB_SUBSCRIBE);
    cr_assert_str_eq(m->channel, ch);
    /* Nothing published: the timeout, on time. */
    long long t0 = now_ms();
    cr_assert_eq(aredis_sync_pubsub_get_message(s, ps, 100, &m),
                 AREDIS_ETIMEDOUT);
    long long took = now_ms() - t0;
    cr_assert(took >= 90 && took < 1000, "100 ms took %lld ms", took);
    cr_assert_null(m);

    /* Messages in order, binary-safe, each borrowed until the next call;
     * the handler of the other channel runs during the wait. */
    must(pub, AREDIS_REPLY_INTEGER, "PUBLISH %s %s", ch, "one");
    must(pub, AREDIS_REPLY_INTEGER, "PUBLISH %s %s", alert, "!");
    aredis_reply *r = aredis_sync_command(pub, "PUBLISH %s %b", ch, "t\0o", 3);
    aredis_reply_free(r);
    cr_assert_eq(aredis_sync_pubsub_get_message(s, ps, 2000, &m), 0);
    cr_assert_eq(m->kind, AREDIS_PUBSUB_MESSAGE);
    cr_assert_eq(m->channel_len, strlen(ch));
    cr_assert_str_eq(m->channel, ch);
    cr_assert_str_eq(m->data, "one");
    cr_assert_eq(aredis_sync_pubsub_get_message(s, ps, 2000, &m), 0);
    cr_assert_eq(m->data_len, 3);
    cr_assert_eq(memcmp(m->data, "t\0o", 3), 0);
    cr_assert_eq(handler_calls, 1);
    cr_assert_eq(nested_code, AREDIS_EBUSY);
    /* The handle is usable after the refused calls. */
    must(s, AREDIS_REPLY_STATUS, "PING", NULL, NULL);

    /* Arguments. */
    cr_assert_eq(aredis_sync_pubsub_get_message(s, ps, 0, NULL), AREDIS_EINVAL);
    aredis_pubsub *foreign = aredis_pubsub_new(aredis_sync_client(pub), NULL);
    cr_assert_eq(aredis_sync_pubsub_get_message(s, foreign, 0, &m),
                 AREDIS_EINVAL);
    aredis_pubsub_free(foreign);
    aredis_pubsub_free(ps);
    aredis_sync_free(pub);
    aredis_sync_free(s);
}

/* ---- streams ----------------------------------------------------------- */

typedef struct seen {
    aredis_sync *s;
    int n;
    char last[64];
    int nested_code;
} seen;

static int on_entry(aredis_stream_consumer *sc, const aredis_stream_entry *e,
                    unsigned flags, void *ud)
{
    (void)sc;
    (void)flags;
    seen *v = ud;
    v->n++;
    const aredis_reply *f = aredis_stream_entry_field(e, "n", 1);
    cr_assert_not_null(f);
    snprintf(v->last, sizeof v->last, "%.*s", (int)f->len, f->str);
    aredis_reply *r = aredis_sync_command(v->s, "PING");
    v->nested_code = r->code;
    aredis_reply_free(r);
    return AREDIS_STREAM_ACCEPT;
}

Test(sync_more, stream_consumer_runs_on_the_private_loop)
{
    aredis_sync *s = connect_db(0), *prod = connect_db(0);
    char stream[64];
    testenv_key(stream, sizeof stream, "stream");
    must(s, AREDIS_REPLY_INTEGER, "DEL %s", stream, NULL);
    seen v = {.s = s};
    aredis_status st;
    aredis_stream_consumer *sc = aredis_sync_stream_consumer_new(
        s,
        &(aredis_stream_consumer_opts){.stream = stream,
                                       .group = "g",
                                       .consumer = "c1",
                                       .block_ms = 200,
                                       .create_group = 1,
                                       .create_id = "0",
                                       .on_entry = on_entry,
                                       .ud = &v},
        &st);
    cr_assert_not_null(sc, "%s", st.msg);
    /* Nothing yet: the run ends at its timeout with 0 entries. */
    cr_assert_eq(aredis_sync_stream_consumer_run(s, sc, 150), 0);
    for (int i = 1; i <= 5; i++) {
        char n[8];
        snprintf(n, sizeof n, "%d", i);
        must(prod, AREDIS_REPLY_STRING, "XADD %s * n %s", stream, n);
    }
    int total = 0;
    for (int i = 0; i < 20 && total < 5; i++) {
        int got = aredis_sync_stream_consumer_run(s, sc, 2000);
        cr_assert_geq(got, 0, "%s", aredis_err_name(got));
        total += got;
    }
    cr_assert_eq(total, 5);
    cr_assert_eq(v.n, 5);
    cr_assert_str_eq(v.last, "5");
    cr_assert_eq(v.nested_code, AREDIS_EBUSY);
    cr_assert_eq(aredis_sync_stream_consumer_stop(s, sc), 0);
    aredis_stream_consumer_stats stats;
    aredis_stream_consumer_stats_get(sc, &stats);
    cr_assert_eq(stats.acked, 5);
    /* Acknowledged: nothing left pending for the group. */
    aredis_reply *r = aredis_sync_command(s, "XPENDING %s g", stream);
    cr_assert_eq(r->type, AREDIS_REPLY_ARRAY);
    cr_assert_eq(r->element[0].integer, 0);
    aredis_reply_free(r);
    cr_assert_eq(aredis_sync_stream_consumer_stop(s, sc), AREDIS_ESTATE);
    aredis_stream_consumer_free(sc);
    must(s, AREDIS_REPLY_INTEGER, "DEL %s", stream, NULL);
    aredis_sync_free(prod);
    aredis_sync_free(s);
}

/* ---- allocations in the steady state ---------------------------------- */

/* Allocations per operation of `what`, after a warm-up of the same. */
#define PER_CALL(what, rounds, ...)                                   \
    do {                                                              \
        for (int warm_ = 0; warm_ < 20; warm_++) {                    \
            __VA_ARGS__;                                              \
        }                                                             \
        long before_ = countalloc_calls;                              \
        for (int i_ = 0; i_ < (rounds); i_++) {                       \
            __VA_ARGS__;                                              \
        }                                                             \
        per[n_per] = (double)(countalloc_calls - before_) / (rounds); \
        names[n_per++] = (what);                                      \
    } while (0)

Test(sync_alloc_more, steady_state, .init = setup)
{
    cr_assert_eq(aredis_set_allocator(&countalloc_hooks), 0);
    aredis_sync *s = connect_db(0);
    char key[64], val[100];
    testenv_key(key, sizeof key, "alloc");
    memset(val, 'v', sizeof val - 1);
    val[sizeof val - 1] = '\0';
    double per[8];
    const char *names[8];
    int n_per = 0;

    /* Pipelined: 50 commands appended, then read. (The client keeps 64
     * spare command records; a larger batch allocates the rest again each
     * time, as the records of a burst are released when it drains.) */
    PER_CALL("append+get_reply (per command)", 20, {
        for (int k = 0; k < 25; k++) {
            aredis_sync_append(s, "SET %s %s", key, val);
            aredis_sync_append(s, "GET %s", key);
        }
        for (int k = 0; k < 50; k++)
            cr_assert_neq(aredis_sync_get_reply(s)->type, AREDIS_REPLY_ERROR);
    });
    per[n_per - 1] /= 50;
    double pipelined = per[n_per - 1];

    aredis_pipeline *p = aredis_pipeline_new(aredis_sync_client(s), 0);
    PER_CALL("pipeline execute of 10 (per execute)", 50, {
        for (int k = 0; k < 10; k++)
            aredis_pipeline_command(p, "GET %s", key);
        aredis_reply_free(aredis_sync_pipeline_execute(s, p));
    });
    aredis_pipeline_free(p);

    const char *src = "return redis.call('GET', KEYS[1])";
    aredis_script *sc = aredis_script_new(src, strlen(src));
    const char *keys[] = {key};
    PER_CALL("script eval", 200, {
        aredis_reply_free(aredis_sync_script_eval(s, sc, 1, keys, 0, NULL));
    });
    aredis_script_free(sc);

    PER_CALL("command_opts", 200, {
        aredis_reply_free(aredis_sync_command_opts(
            s, &(aredis_cmd_opts){.timeout_ms = 1000}, "GET %s", key));
    });

    aredis_sync *pub = connect_db(0);
    aredis_pubsub *ps = aredis_pubsub_new(aredis_sync_client(s), NULL);
    aredis_pubsub_subscribe(ps, key, NULL, NULL);
    const aredis_pubsub_message *m;
    cr_assert_eq(aredis_sync_pubsub_get_message(s, ps, 2000, &m), 0);
    PER_CALL("pubsub get_message", 200, {
        aredis_reply_free(aredis_sync_command(pub, "PUBLISH %s %s", key, "x"));
        cr_assert_eq(aredis_sync_pubsub_get_message(s, ps, 2000, &m), 0);
    });
    aredis_pubsub_free(ps);
    aredis_sync_free(pub);

    fprintf(stderr, "steady-state allocations per call:\n");
    for (int i = 0; i < n_per; i++)
        fprintf(stderr, "  %-40s %.2f\n", names[i], per[i]);
    /* The pipelined path reuses its slots and their blocks. */
    cr_assert_eq(pipelined, 0.0, "%.2f allocations per pipelined command",
                 pipelined);
    aredis_reply_free(aredis_sync_command(s, "DEL %s", key));
    aredis_sync_free(s);
    aredis_set_allocator(NULL);
}
