/* Fault tests: a hostile or broken server (tests/support/fakeserver.c).
 *
 * For each of the fake server's scripts, the commands in flight must
 * complete exactly once with a clean error code and a message that names
 * the problem, the client must reconnect by itself (the fake server's later
 * connections behave: --then normal) and a later command must succeed, and
 * the test process's peak RSS must stay bounded while the client handles
 * replies that announce gigabytes. DESIGN.md decisions 1 and 6;
 * docs/guide/errors.md for the codes. Public API only. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strcasestr */
#endif

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "aredis/aredis.h"
#include "faults.h"

/* Peak RSS growth allowed while a hostile reply is handled. The client
 * needs a few MB at most; anything that believed a declared length
 * (4 GiB elements, a 10 GB bulk, a 400 MB bulk) would blow far past it,
 * even under ASan's overhead. */
#define RSS_BOUND_KB (32L * 1024)

typedef struct hostile {
    faults_fake fake;
    aredis_loop *loop;
    aredis_client *c;
    faults_events ev;
    faults_track t;
    faults_cmd cmds[16];
} hostile;

static void hostile_start(hostile *h, const char *script,
                          const char *const *extra, aredis_options o)
{
    memset(h, 0, sizeof *h);
    cr_assert_eq(faults_fake_start(&h->fake, script, extra), 0, "%s",
                 testenv_errstr());
    h->c = faults_client_new(&h->loop, h->fake.port, o, &h->ev);
    cr_assert_not_null(h->c, "%s", testenv_errstr());
    faults_track_init(&h->t, h->cmds, 16);
}

/* The common end of every test: nothing pending, no completion twice or
 * with NULL, everything freed (ASan checks the rest). */
static void hostile_finish(hostile *h)
{
    cr_assert_eq(h->t.twice, 0, "a command completed twice");
    cr_assert_eq(h->t.null_replies, 0, "a callback got a NULL reply");
    cr_assert_eq(aredis_client_pending(h->c), 0);
    aredis_client_free(h->c);
    aredis_loop_free(h->loop);
    faults_fake_stop(&h->fake);
}

static int contains_any(const char *s, const char *const *words)
{
    for (int i = 0; words[i] != NULL; i++)
        if (strcasestr(s, words[i]) != NULL)
            return 1;
    return 0;
}

static int disconnected(const void *arg)
{
    return faults_events_find(arg, 0, AREDIS_CONN_DISCONNECTED, 0) >= 0;
}

/* A later PING succeeds: the client got a new (normal) connection by
 * itself. \return when it succeeded, or -1. */
static int64_t expect_recovery(hostile *h)
{
    int i = faults_send(&h->t, h->c, &(aredis_cmd_opts){.timeout_ms = 5000},
                        "PING");
    cr_assert_geq(i, 0);
    cr_assert(faults_wait_track(h->loop, &h->t, 8000),
              "the PING after the fault never completed");
    faults_cmd *k = &h->cmds[i];
    char evs[1024];
    faults_events_str(&h->ev, evs, sizeof evs);
    cr_assert_eq(k->type, AREDIS_REPLY_STATUS,
                 "PING after the fault: type %d code %s: %s (events: %s)",
                 k->type, aredis_err_name(k->code), k->text, evs);
    cr_assert_str_eq(k->text, "PONG");
    return k->at_ms;
}

/* Scripts whose bytes the reader must refuse: every command in flight
 * fails, the first with `code` and a message naming the problem; the
 * others with the same code or as for a lost connection. */
static void protocol_case_opts(const char *script, aredis_options opts,
                               int code, const char *const *words)
{
    hostile h;
    const char *const extra[] = {"--then", "normal", NULL};
    hostile_start(&h, script, extra, opts);
    long mark = faults_rss_mark_kb();
    int64_t t0 = testenv_now_ms();
    aredis_cmd_opts o = {.timeout_ms = 5000};
    for (int i = 0; i < 3; i++)
        cr_assert_geq(faults_send(&h.t, h.c, &o, "GET key%d", i), 0);
    cr_assert(faults_wait_track(h.loop, &h.t, 8000), "%d of 3 completed",
              h.t.completed);
    long peak = faults_rss_peak_kb();

    faults_cmd *first = &h.cmds[0];
    cr_assert_eq(first->type, AREDIS_REPLY_ERROR, "type %d: %s", first->type,
                 first->text);
    cr_assert_eq(first->code, code, "%s: got %s (%s), want %s", script,
                 aredis_err_name(first->code), first->text,
                 aredis_err_name(code));
    cr_assert(contains_any(first->text, words),
              "%s: the message does not name the problem: \"%s\"", script,
              first->text);
    for (int i = 1; i < 3; i++) {
        int c = h.cmds[i].code;
        cr_assert(
            h.cmds[i].type == AREDIS_REPLY_ERROR &&
                (c == code || c == AREDIS_EUNKNOWN || c == AREDIS_ECLOSED),
            "%s: command %d: type %d %s: %s", script, i, h.cmds[i].type,
            aredis_err_name(c), h.cmds[i].text);
    }
    int d = faults_events_find(&h.ev, 0, AREDIS_CONN_DISCONNECTED, 0);
    cr_assert_geq(d, 0, "no DISCONNECTED event");
    cr_assert_eq(h.ev.ev[d].code, code, "DISCONNECTED with %s",
                 aredis_err_name(h.ev.ev[d].code));

    int64_t ok = expect_recovery(&h);
    char name[64];
    snprintf(name, sizeof name, "hostile-%s", script);
    faults_summary(name, &h.t, ok - t0);
    fprintf(stderr, "MEM %s: peak RSS growth %ld KiB (bound %ld)\n", script,
            peak - mark, RSS_BOUND_KB);
    cr_assert_lt(peak - mark, RSS_BOUND_KB, "%s: peak RSS grew by %ld KiB",
                 script, peak - mark);
    hostile_finish(&h);
}

static void protocol_case(const char *script, int code,
                          const char *const *words)
{
    protocol_case_opts(script, (aredis_options){0}, code, words);
}

Test(hostile, hugearray, .timeout = 30)
{
    protocol_case("hugearray", AREDIS_ETOOBIG,
                  (const char *const[]){"4294967295", "max_elements", NULL});
}

Test(hostile, hugebulk, .timeout = 30)
{
    protocol_case("hugebulk", AREDIS_ETOOBIG,
                  (const char *const[]){"9999999999", "max_bulk_len", NULL});
}

Test(hostile, deep_nesting, .timeout = 30)
{
    protocol_case("deep", AREDIS_ETOOBIG,
                  (const char *const[]){"max_depth", "nest", "deep", NULL});
}

/* 3 MB of valid RESP3 (*1000000, then a million "_\r\n"), under a 4 MiB
 * max_buffer: its nodes alone would take 48 MB. max_reply_memory (twice
 * max_buffer by default) refuses it while it is scanned, so RSS grows by
 * about the bytes received, not 16 times them; then the client recovers. */
Test(hostile, many_tiny_items, .timeout = 30)
{
    protocol_case_opts(
        "manynils", (aredis_options){.limits = {.max_buffer = 4u << 20}},
        AREDIS_ETOOBIG, (const char *const[]){"max_reply_memory", NULL});
}

Test(hostile, garbage_type_byte, .timeout = 30)
{
    protocol_case("garbage", AREDIS_EPROTO,
                  (const char *const[]){"0x40", "'@'", "type byte", NULL});
}

/* A reply with no command waiting for it: the stream can no longer be
 * trusted, so the connection must be dropped (EPROTO) and replaced. No
 * command is submitted before the stray reply has arrived, so it cannot
 * pass for a reply to one. */
Test(hostile, stray_reply, .timeout = 30)
{
    hostile h;
    const char *const extra[] = {"--then", "normal", NULL};
    hostile_start(&h, "stray", extra, (aredis_options){0});
    int64_t t0 = testenv_now_ms();
    int got = faults_run_until(h.loop, disconnected, &h.ev, 5000);
    char evs[1024];
    faults_events_str(&h.ev, evs, sizeof evs);
    cr_assert(got, "the client ignored a reply nobody asked for (events: %s)",
              evs);
    int d = faults_events_find(&h.ev, 0, AREDIS_CONN_DISCONNECTED, 0);
    cr_assert_eq(h.ev.ev[d].code, AREDIS_EPROTO, "events: %s", evs);
    cr_assert_neq(h.ev.ev[d].msg[0], '\0', "DISCONNECTED without a reason");
    cr_assert_geq(faults_events_find(&h.ev, 0, AREDIS_CONN_CONNECTED, 0), 0,
                  "events: %s", evs);
    int64_t ok = expect_recovery(&h);
    faults_summary("hostile-stray", &h.t, ok - t0);
    hostile_finish(&h);
}

/* The server accepts the command and never answers: its own deadline
 * fails it (the connection stays). When the fake server finally closes
 * that connection, the client reconnects and the next command works. */
Test(hostile, silent_server, .timeout = 30)
{
    hostile h;
    const char *const extra[] = {"--then", "normal", "--hold-ms", "800", NULL};
    hostile_start(&h, "silent", extra, (aredis_options){0});
    int64_t t0 = testenv_now_ms();
    int i = faults_send(&h.t, h.c, &(aredis_cmd_opts){.timeout_ms = 300},
                        "GET key");
    cr_assert_geq(i, 0);
    cr_assert(faults_wait_track(h.loop, &h.t, 5000),
              "a command with a 300 ms deadline never completed");
    faults_cmd *k = &h.cmds[i];
    cr_assert_eq(k->code, AREDIS_ETIMEDOUT, "got %s: %s",
                 aredis_err_name(k->code), k->text);
    int64_t took = k->at_ms - t0;
    cr_assert(took >= 250 && took < 2000, "timed out after %lld ms",
              (long long)took);
    cr_assert(faults_run_until(h.loop, disconnected, &h.ev, 5000),
              "the server's close went unnoticed");
    int64_t ok = expect_recovery(&h);
    faults_summary("hostile-silent", &h.t, ok - t0);
    hostile_finish(&h);
}

/* Accepted, never a byte back, not even to HELLO: the connect deadline
 * covers the handshake. With reconnection off the command fails with
 * ETIMEDOUT; the next command starts a new round and succeeds. */
Test(hostile, silent_accept_connect_timeout, .timeout = 30)
{
    hostile h;
    const char *const extra[] = {"--then", "normal", NULL};
    hostile_start(
        &h, "silent-accept", extra,
        (aredis_options){.connect_timeout_ms = 300,
                         .reconnect_max_attempts = AREDIS_NO_RECONNECT});
    int64_t t0 = testenv_now_ms();
    int i = faults_send(&h.t, h.c, NULL, "GET key");
    cr_assert_geq(i, 0);
    cr_assert(faults_wait_track(h.loop, &h.t, 5000),
              "a command behind a 300 ms connect deadline never completed");
    faults_cmd *k = &h.cmds[i];
    cr_assert_eq(k->code, AREDIS_ETIMEDOUT, "got %s: %s",
                 aredis_err_name(k->code), k->text);
    int64_t took = k->at_ms - t0;
    cr_assert(took >= 250 && took < 2000, "failed after %lld ms",
              (long long)took);
    int d = faults_events_find(&h.ev, 0, AREDIS_CONN_DISCONNECTED, 0);
    cr_assert_geq(d, 0);
    cr_assert_eq(h.ev.ev[d].code, AREDIS_ETIMEDOUT);
    int64_t ok = expect_recovery(&h);
    faults_summary("hostile-silent-accept", &h.t, ok - t0);
    hostile_finish(&h);
}

/* The same server with reconnection on: the timed-out attempt is retried
 * and the command waiting for it succeeds on the next connection. */
Test(hostile, silent_accept_then_reconnects, .timeout = 30)
{
    hostile h;
    const char *const extra[] = {"--then", "normal", NULL};
    hostile_start(&h, "silent-accept", extra,
                  (aredis_options){.connect_timeout_ms = 300});
    int i = faults_send(&h.t, h.c, NULL, "ECHO hello");
    cr_assert_geq(i, 0);
    cr_assert(faults_wait_track(h.loop, &h.t, 8000));
    faults_cmd *k = &h.cmds[i];
    char evs[1024];
    faults_events_str(&h.ev, evs, sizeof evs);
    cr_assert_eq(k->type, AREDIS_REPLY_STRING, "got %s: %s (events: %s)",
                 aredis_err_name(k->code), k->text, evs);
    cr_assert_str_eq(k->text, "hello");
    int d = faults_events_find(&h.ev, 0, AREDIS_CONN_DISCONNECTED, 0);
    cr_assert_geq(d, 0, "events: %s", evs);
    cr_assert_eq(h.ev.ev[d].code, AREDIS_ETIMEDOUT, "events: %s", evs);
    cr_assert_geq(faults_events_find(&h.ev, d, AREDIS_CONN_RECONNECTING, 0), 0,
                  "events: %s", evs);
    hostile_finish(&h);
}

/* A 400 MB bulk announced, 2 MB of it trickled, then silence: the reader
 * accepts the header (under max_bulk_len), so only the deadline ends the
 * command, and memory must follow the bytes received, never the length
 * announced. Then the server closes and the client recovers. */
Test(hostile, endless_bulk, .timeout = 30)
{
    hostile h;
    const char *const extra[] = {"--then", "normal", "--hold-ms", "200", NULL};
    hostile_start(&h, "endlessbulk", extra, (aredis_options){0});
    long mark = faults_rss_mark_kb();
    int64_t t0 = testenv_now_ms();
    int i = faults_send(&h.t, h.c, &(aredis_cmd_opts){.timeout_ms = 500},
                        "GET big");
    cr_assert_geq(i, 0);
    cr_assert(faults_wait_track(h.loop, &h.t, 5000));
    faults_cmd *k = &h.cmds[i];
    cr_assert_eq(k->code, AREDIS_ETIMEDOUT, "got %s: %s",
                 aredis_err_name(k->code), k->text);
    /* Let the whole trickle arrive, and the close after it. */
    cr_assert(faults_run_until(h.loop, disconnected, &h.ev, 8000),
              "the server's close after the stream went unnoticed");
    long peak = faults_rss_peak_kb();
    int64_t ok = expect_recovery(&h);
    faults_summary("hostile-endlessbulk", &h.t, ok - t0);
    fprintf(stderr, "MEM endlessbulk: peak RSS growth %ld KiB (bound %ld)\n",
            peak - mark, RSS_BOUND_KB);
    cr_assert_lt(peak - mark, RSS_BOUND_KB, "peak RSS grew by %ld KiB",
                 peak - mark);
    hostile_finish(&h);
}

/* The same trickle against a client whose max_buffer is 1 MiB: the reply
 * can never fit, so the connection fails with ETOOBIG by the time 1 MiB
 * has arrived, not at the command's deadline. */
Test(hostile, endless_bulk_over_max_buffer, .timeout = 30)
{
    hostile h;
    const char *const extra[] = {"--then", "normal", NULL};
    hostile_start(&h, "endlessbulk", extra,
                  (aredis_options){.limits = {.max_buffer = 1u << 20}});
    long mark = faults_rss_mark_kb();
    int64_t t0 = testenv_now_ms();
    int i = faults_send(&h.t, h.c, &(aredis_cmd_opts){.timeout_ms = 10000},
                        "GET big");
    cr_assert_geq(i, 0);
    cr_assert(faults_wait_track(h.loop, &h.t, 8000));
    long peak = faults_rss_peak_kb();
    faults_cmd *k = &h.cmds[i];
    cr_assert_eq(k->code, AREDIS_ETOOBIG, "got %s: %s",
                 aredis_err_name(k->code), k->text);
    cr_assert(contains_any(k->text,
                           (const char *const[]){"max_buffer", "buffer", NULL}),
              "message: %s", k->text);
    cr_assert_lt(k->at_ms - t0, 5000, "ETOOBIG only after %lld ms",
                 (long long)(k->at_ms - t0));
    int64_t ok = expect_recovery(&h);
    faults_summary("hostile-endlessbulk-max-buffer", &h.t, ok - t0);
    cr_assert_lt(peak - mark, RSS_BOUND_KB, "peak RSS grew by %ld KiB",
                 peak - mark);
    hostile_finish(&h);
}

static int got_push(const void *arg)
{
    return *(const int *)arg > 0;
}

static void on_push(aredis_client *c, const aredis_reply *push, void *ud)
{
    (void)c;
    int *n = ud;
    if (push != NULL && push->type == AREDIS_REPLY_PUSH)
        (*n)++;
}

/* The control case for stray_reply: a RESP3 push arriving with no command
 * waiting is legitimate out-of-band data. It goes to the push handler and
 * the connection carries on. */
Test(hostile, push_is_not_a_stray_reply, .timeout = 30)
{
    hostile h;
    hostile_start(&h, "push", NULL, (aredis_options){0});
    int pushes = 0;
    aredis_client_set_push_handler(h.c, on_push, &pushes);
    int got = faults_run_until(h.loop, got_push, &pushes, 5000);
    char evs[1024];
    faults_events_str(&h.ev, evs, sizeof evs);
    cr_assert(got, "the push message never reached the handler (events: %s)",
              evs);
    int i = faults_send(&h.t, h.c, &(aredis_cmd_opts){.timeout_ms = 5000},
                        "ECHO still-here");
    cr_assert_geq(i, 0);
    cr_assert(faults_wait_track(h.loop, &h.t, 8000));
    cr_assert_eq(h.cmds[i].type, AREDIS_REPLY_STRING, "%s: %s",
                 aredis_err_name(h.cmds[i].code), h.cmds[i].text);
    cr_assert_str_eq(h.cmds[i].text, "still-here");
    faults_events_str(&h.ev, evs, sizeof evs);
    cr_assert_eq(faults_events_find(&h.ev, 0, AREDIS_CONN_DISCONNECTED, 0), -1,
                 "a push message dropped the connection (events: %s)", evs);
    hostile_finish(&h);
}
