/* Fault tests: a program that re-enters the client from its callbacks while
 * connections are lost.
 *
 * The most common asynchronous pattern keeps W commands in flight by
 * submitting the next command from each completion callback; a program
 * that also submits from its DISCONNECTED / RECONNECTING event handler
 * re-enters the client while a lost connection is being dealt with. Against
 * a private server whose client connections are killed (CLIENT KILL) and
 * which is itself killed and restarted several times, this checks that
 *   - every command completes exactly once, never with NULL;
 *   - the client never holds more than one connection to the server
 *     (CLIENT LIST): a lost link starts one connect attempt, not two;
 *   - the loop does not spin while the client is idle;
 *   - aredis_loop_run_once() reports the loop idle within 1 s of
 *     aredis_client_free() (nothing leaked keeps it alive);
 * and ASan finds no leak or use after free. Public API only. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aredis/aredis.h"
#include "faults.h"

enum {
    WINDOW = 16,        /* commands kept in flight */
    MAX_CMDS = 1 << 20, /* records; refilling stops well before */
    ROUNDS = 6,         /* faults: CLIENT KILL and kill -9 alternate */
};

static struct {
    faults_server srv;
    aredis_loop *loop;
    aredis_client *c;
    unsigned char *calls; /* callbacks per command: must end at 1 */
    int sent, completed, twice, nulls, ok, errors;
    int refill;          /* callbacks and events submit more */
    int from_events;     /* submissions made by the event handler */
    int connected;       /* CONNECTED events */
    int submit_failures; /* submits that returned an error */
} w;

static void submit_one(void);

static void on_reply(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    size_t i = (size_t)(uintptr_t)ud;
    if (w.calls[i]++ > 0) {
        w.twice++;
        return;
    }
    w.completed++;
    if (r == NULL) {
        w.nulls++;
        return;
    }
    if (r->type == AREDIS_REPLY_ERROR)
        w.errors++;
    else
        w.ok++;
    /* The pattern under test: the next command comes from the callback. */
    if (w.refill)
        submit_one();
}

static void submit_one(void)
{
    if (w.sent >= MAX_CMDS - WINDOW)
        return;
    size_t i = (size_t)w.sent;
    int e = i % 2 ? aredis_command(w.c, on_reply, (void *)(uintptr_t)i,
                                   "INCR reentry:counter")
                  : aredis_command(w.c, on_reply, (void *)(uintptr_t)i,
                                   "GET reentry:counter");
    if (e == 0)
        w.sent++;
    else
        w.submit_failures++;
}

static void on_event(aredis_client *c, const aredis_conn_event *ev, void *ud)
{
    (void)c;
    (void)ud;
    if (ev->type == AREDIS_CONN_CONNECTED && !ev->exclusive)
        w.connected++;
    /* Re-entry while the connection is being dealt with. */
    if (w.refill && (ev->type == AREDIS_CONN_DISCONNECTED ||
                     ev->type == AREDIS_CONN_RECONNECTING)) {
        w.from_events++;
        submit_one();
    }
}

/* The server's normal client connections, not counting the one asking. */
static int client_connections(void)
{
    testenv_conn a;
    cr_assert_eq(testenv_connect(&a, &w.srv.s), 0, "%s", testenv_errstr());
    const aredis_reply *r = NULL;
    cr_assert_eq(testenv_command(&a, &r, "CLIENT LIST TYPE normal"), 0, "%s",
                 testenv_errstr());
    cr_assert(r->type == AREDIS_REPLY_STRING || r->type == AREDIS_REPLY_VERB);
    int lines = 0;
    for (size_t k = 0; k < r->len; k++)
        lines += r->str[k] == '\n';
    testenv_close(&a);
    return lines - 1;
}

static void client_kill(void)
{
    testenv_conn a;
    cr_assert_eq(testenv_connect(&a, &w.srv.s), 0, "%s", testenv_errstr());
    const aredis_reply *r = NULL;
    cr_assert_eq(testenv_command(&a, &r, "CLIENT KILL TYPE normal SKIPME yes"),
                 0, "%s", testenv_errstr());
    testenv_close(&a);
}

static int connected_since(const void *arg)
{
    return w.connected > *(const int *)arg;
}

static int all_done(const void *arg)
{
    (void)arg;
    return w.completed == w.sent;
}

/* Run the loop for ms, with a server that stays put. */
static void settle(int ms)
{
    faults_run_for(w.loop, ms);
}

static void run_scenario(int protocol)
{
    memset(&w, 0, sizeof w);
    w.calls = calloc(MAX_CMDS, 1);
    cr_assert_not_null(w.calls);
    cr_assert_eq(faults_server_start(&w.srv, "reentry", NULL, 0, 0), 0, "%s",
                 testenv_errstr());
    w.c = faults_client_new(&w.loop, w.srv.s.port,
                            (aredis_options){.protocol = protocol,
                                             .reconnect_max_attempts = -1,
                                             .reconnect_initial_ms = 10,
                                             .reconnect_max_ms = 50,
                                             .command_timeout_ms = 3000},
                            NULL);
    cr_assert_not_null(w.c, "%s", testenv_errstr());
    aredis_client_set_event_handler(w.c, on_event, NULL);
    w.refill = 1;
    for (int i = 0; i < WINDOW; i++)
        submit_one();
    int seen = 0;
    cr_assert(faults_run_until(w.loop, connected_since, &seen, 5000),
              "never connected");

    for (int round = 0; round < ROUNDS; round++) {
        settle(150);
        seen = w.connected;
        if (round % 2 == 0) {
            client_kill();
        } else {
            cr_assert_eq(faults_server_kill9(&w.srv), 0, "%s",
                         testenv_errstr());
            settle(30); /* a few failed attempts while it is down */
            cr_assert_eq(faults_server_restart(&w.srv), 0, "%s",
                         testenv_errstr());
        }
        cr_assert(faults_run_until(w.loop, connected_since, &seen, 5000),
                  "round %d: never reconnected", round);
        settle(150);
        int n = client_connections();
        cr_assert_leq(n, 1,
                      "round %d: the client holds %d connections to the "
                      "server",
                      round, n);
        cr_assert_eq(w.twice, 0, "round %d: a command completed twice", round);
    }
    cr_assert_gt(w.from_events, 0, "the event handler never re-entered");

    /* Stop refilling; everything submitted completes exactly once. */
    w.refill = 0;
    cr_assert(faults_run_until(w.loop, all_done, NULL, 10000),
              "%d of %d commands completed", w.completed, w.sent);
    cr_assert_eq(w.twice, 0);
    cr_assert_eq(w.nulls, 0);
    cr_assert_eq(w.submit_failures, 0);
    cr_assert_eq(aredis_client_pending(w.c), 0);
    cr_assert_gt(w.ok, 0);
    for (int i = 0; i < w.sent; i++)
        cr_assert_eq(w.calls[i], 1, "command %d: %d callbacks", i, w.calls[i]);
    cr_assert_leq(client_connections(), 1);

    /* Idle: the loop waits instead of spinning (about 10 turns of 100 ms
     * in a second; a leaked watcher on a dead socket makes thousands). */
    int64_t t0 = testenv_now_ms();
    int turns = 0;
    while (testenv_now_ms() - t0 < 1000) {
        aredis_loop_run_once(w.loop, 100);
        turns++;
    }
    cr_assert_leq(turns, 50, "%d loop turns in 1 s while idle", turns);

    /* Freed, the client leaves nothing that keeps the loop alive. */
    aredis_client_free(w.c);
    t0 = testenv_now_ms();
    int alive = 1;
    while (alive == 1 && testenv_now_ms() - t0 < 1000)
        alive = aredis_loop_run_once(w.loop, 50);
    cr_assert_eq(alive, 0,
                 "the loop still had work 1 s after aredis_client_free()");
    cr_assert_eq(aredis_loop_run(w.loop), 0);
    aredis_loop_free(w.loop);
    fprintf(stderr,
            "FAULT reentry-resp%d: sent=%d completed=%d ok=%d errors=%d "
            "from_events=%d reconnects=%d\n",
            protocol, w.sent, w.completed, w.ok, w.errors, w.from_events,
            w.connected);
    cr_assert_eq(faults_server_stop(&w.srv), 0, "%s", testenv_errstr());
    free(w.calls);
}

Test(reentry, refill_from_callbacks_and_events_resp3, .timeout = 90)
{
    run_scenario(3);
}

Test(reentry, refill_from_callbacks_and_events_resp2, .timeout = 90)
{
    run_scenario(2);
}
