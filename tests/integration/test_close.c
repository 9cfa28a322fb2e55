/* Integration tests of aredis_client_close() (client.h) against the real
 * standalone server: commands submitted before the close complete with
 * their real replies and then aredis_loop_run() returns by itself; new
 * submissions are refused; close twice, free after close, close from a
 * callback (the last one too), close with nothing pending, and commands
 * handed over by aredis_command_ts() before the close. The server-down
 * case is in tests/faults/test_extras.c. Built-in loop. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "aredis/aredis.h"
#include "testenv.h"

static testenv_server srv;
static aredis_loop *loop;
static aredis_client *cl;
static int released; /* the client's data destructor ran */

static void on_release(void *data)
{
    (void)data;
    released++;
}

static void setup(void)
{
    cr_assert_eq(testenv_server_load(&srv, "standalone"), 0, "%s",
                 testenv_errstr());
    char url[128];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/1", srv.port);
    loop = aredis_loop_new();
    cr_assert_not_null(loop);
    aredis_status st;
    cl = aredis_client_new(loop, &(aredis_options){.url = url}, &st);
    cr_assert_not_null(cl, "%s", st.msg);
    aredis_client_set_data(cl, NULL, on_release);
    released = 0;
}

typedef struct got {
    int calls;
    int type, code;
    char text[64];
} got;

static void keep(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    got *g = ud;
    cr_assert_not_null(r);
    g->calls++;
    g->type = r->type;
    g->code = r->code;
    snprintf(g->text, sizeof g->text, "%.*s", (int)r->len,
             r->str != NULL ? r->str : "");
}

/* Run the loop to its end: it must return by itself (the client released
 * itself) within a few seconds, and the loop is freed after. */
static void run_to_end(void)
{
    int64_t t0 = testenv_now_ms();
    cr_assert_eq(aredis_loop_run(loop), 0);
    cr_assert_lt(testenv_now_ms() - t0, 5000, "aredis_loop_run() took %lld ms",
                 (long long)(testenv_now_ms() - t0));
    cr_assert_eq(released, 1, "the client was not released");
    aredis_loop_free(loop);
    loop = NULL;
}

/* "Send GET, then close": the GET's real reply arrives. */
Test(close, get_then_close, .init = setup, .timeout = 30)
{
    got set = {0}, get = {0}, late = {0};
    cr_assert_eq(aredis_command(cl, keep, &set, "SET %s %s", "close:k", "v1"),
                 0);
    cr_assert_eq(aredis_command(cl, keep, &get, "GET %s", "close:k"), 0);
    aredis_client_close(cl);
    cr_assert_eq(aredis_command(cl, keep, &late, "PING"), AREDIS_ESTATE);
    cr_assert_eq(aredis_client_pending(cl), 2);
    aredis_client_close(cl); /* twice: a no-op */
    run_to_end();
    cr_assert_eq(set.calls, 1);
    cr_assert_eq(set.type, AREDIS_REPLY_STATUS, "SET: %s", set.text);
    cr_assert_eq(get.calls, 1);
    cr_assert_eq(get.type, AREDIS_REPLY_STRING, "GET: %s %s",
                 aredis_err_name(get.code), get.text);
    cr_assert_str_eq(get.text, "v1");
    cr_assert_eq(late.calls, 0);
}

/* Before the connection is even up: the commands wait for it as usual. */
Test(close, close_before_connected, .init = setup, .timeout = 30)
{
    got g[20];
    memset(g, 0, sizeof g);
    for (int i = 0; i < 20; i++)
        cr_assert_eq(aredis_command(cl, keep, &g[i], "INCR %s", "close:n"), 0);
    aredis_client_close(cl);
    run_to_end();
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(g[i].calls, 1);
        cr_assert_eq(g[i].type, AREDIS_REPLY_INTEGER, "INCR %d: %s", i,
                     g[i].text);
    }
}

/* Close from inside the callback of the first of three commands: the
 * other two still get their replies; a submit in the same callback after
 * the close is refused. */
static got cb_got[3];
static int refused_in_cb;

static void close_in_cb(aredis_client *c, const aredis_reply *r, void *ud)
{
    keep(c, r, ud);
    aredis_client_close(c);
    refused_in_cb = aredis_command(c, NULL, NULL, "PING");
}

Test(close, close_from_callback, .init = setup, .timeout = 30)
{
    cr_assert_eq(aredis_command(cl, close_in_cb, &cb_got[0], "PING"), 0);
    cr_assert_eq(aredis_command(cl, keep, &cb_got[1], "ECHO %s", "b"), 0);
    cr_assert_eq(aredis_command(cl, keep, &cb_got[2], "ECHO %s", "c"), 0);
    run_to_end();
    cr_assert_eq(refused_in_cb, AREDIS_ESTATE);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(cb_got[i].calls, 1);
    cr_assert_str_eq(cb_got[0].text, "PONG");
    cr_assert_str_eq(cb_got[1].text, "b");
    cr_assert_str_eq(cb_got[2].text, "c");
}

/* Close from the last pending command's own callback: nothing is left, so
 * the client goes at once (after the callback returns). */
static got last_got;

static void close_in_last(aredis_client *c, const aredis_reply *r, void *ud)
{
    keep(c, r, ud);
    cr_assert_eq(aredis_client_pending(c), 0);
    aredis_client_close(c);
    cr_assert_eq(released, 0, "released inside the callback");
}

Test(close, close_from_last_callback, .init = setup, .timeout = 30)
{
    cr_assert_eq(aredis_command(cl, close_in_last, &last_got, "PING"), 0);
    run_to_end();
    cr_assert_eq(last_got.calls, 1);
    cr_assert_str_eq(last_got.text, "PONG");
}

/* Nothing pending: the close is a free, still from the loop. */
Test(close, close_idle, .init = setup, .timeout = 30)
{
    aredis_client_close(cl);
    cr_assert_eq(released, 0, "released inside aredis_client_close()");
    run_to_end();
}

/* Free after close, in the same turn: the free wins and cancels. */
Test(close, free_after_close, .init = setup, .timeout = 30)
{
    got g = {0};
    cr_assert_eq(aredis_command(cl, keep, &g, "PING"), 0);
    aredis_client_close(cl);
    aredis_client_free(cl);
    aredis_client_close(cl); /* still a no-op before the release */
    run_to_end();
    cr_assert_eq(g.calls, 1);
    cr_assert_eq(g.type, AREDIS_REPLY_ERROR);
    cr_assert_eq(g.code, AREDIS_ECANCELED);
}

/* A command handed over by the thread-safe entry point before the close
 * is submitted and answered; one after it is refused. */
Test(close, thread_safe_before_close, .init = setup, .timeout = 30)
{
    got g = {0}, late = {0};
    cr_assert_eq(aredis_command_ts(cl, keep, &g, "ECHO %s", "ts"), 0);
    aredis_client_close(cl);
    cr_assert_eq(aredis_command_ts(cl, keep, &late, "PING"), AREDIS_ESTATE);
    run_to_end();
    cr_assert_eq(g.calls, 1);
    cr_assert_eq(g.type, AREDIS_REPLY_STRING, "%s: %s", aredis_err_name(g.code),
                 g.text);
    cr_assert_str_eq(g.text, "ts");
    cr_assert_eq(late.calls, 0);
}

/* aredis_client_free() for comparison: the GET is canceled, which is what
 * close is for. */
Test(close, free_cancels_get, .init = setup, .timeout = 30)
{
    got g = {0};
    cr_assert_eq(aredis_command(cl, keep, &g, "GET %s", "close:k"), 0);
    aredis_client_free(cl);
    run_to_end();
    cr_assert_eq(g.calls, 1);
    cr_assert_eq(g.code, AREDIS_ECANCELED);
}
