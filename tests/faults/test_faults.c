/* Fault tests against real servers: killed, paused, busy and late
 * redis-server processes, killed client connections, a TLS server
 * restarted, and a fault proxy in front (tests/support/faultproxy.c) that
 * delays, blackholes and cuts traffic.
 *
 * Every test starts its own private server (tests/support/redis-server.sh
 * through faults.h) so it can kill, stop or restart it, and asserts the
 * client's completion guarantees (DESIGN.md decision 1): each command's
 * callback runs exactly once (a per-command record, faults_cmd.calls),
 * never with NULL; errors arrive by code (docs/guide/errors.md); and the
 * client works again afterwards. Each test prints one line
 *
 *   FAULT <name>: sent=N completed=N errors={CODE:n,...} recovered_ms=T
 *
 * where recovered_ms is the time from the end of the fault (server back,
 * SIGCONT, proxy healed) to the first successful completion after it.
 *
 * Beside the test's own client, every test runs the refill-from-callback
 * driver (tests/support/refill.h) on the same loop, through the same fault:
 * a second client keeping REFILL_W commands in flight by submitting from
 * its completion callbacks, failure callbacks and event handler. At the end
 * (end_all) it must show exactly-once completion, at most one connection
 * on the server (CLIENT LIST, sampled during the test and checked after
 * it), a loop that does not spin while idle, and aredis_loop_run()
 * returning within a second of the clients being freed.
 * Public API only, apart from the loop's iteration counter; the built-in
 * loop. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aredis/aredis.h"
#include "faults.h"
#include "faultscheck.h"
#include "refill.h"

enum {
    MAX_CMDS = 1100,
    REFILL_W = 8,
    /* Loop iterations allowed over IDLE_MS with both clients idle: a few
     * timers may fire; a spinning loop makes thousands. */
    IDLE_MS = 500,
    IDLE_MAX_ITERATIONS = 40,
};

/* One test's world. Static: each Criterion test runs in its own process. */
static struct {
    faults_server srv;
    faults_proxy px;
    int have_px;
    aredis_loop *loop;
    aredis_client *c;
    faults_events ev;
    faults_track t;
    faults_cmd cmds[MAX_CMDS];
    refill *rf;
} w;

static void start_server(const char *tag, const char *extra, int port, int tls)
{
    cr_assert_eq(faults_server_start(&w.srv, tag, extra, port, tls), 0, "%s",
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

/* A client on port with the given options (host and port filled in), and
 * the refill driver beside it with the same options. The driver watches
 * the server itself (not the proxy): the port of the server started so
 * far, or `port` for a server that is still to start there. */
static void start_client(int port, aredis_options o)
{
    if (o.client_name == NULL)
        o.client_name = "faults-main"; /* only leaked sockets have no name */
    w.c = faults_client_new(&w.loop, port, o, &w.ev);
    cr_assert_not_null(w.c, "%s", testenv_errstr());
    o.host = "127.0.0.1";
    o.port = port;
    faults_track_init(&w.t, w.cmds, MAX_CMDS);
    int observe = w.have_px ? w.srv.s.port : port;
    if (o.tls.enabled)
        observe = 0; /* the sampler speaks plain TCP */
    char why[512];
    w.rf = refill_start(w.loop, &o, REFILL_W, observe, why, sizeof why);
    cr_assert_not_null(w.rf, "%s", why);
}

/* The refill driver's checks and the end of both clients and the loop.
 * drain_ms: how long the driver's commands may take to complete (a server
 * that is down holds them in a backoff; then the idle check is skipped). */
static void end_all(int drain_ms)
{
    char why[4096];
    int q = refill_quiesce(w.rf, drain_ms, IDLE_MS, IDLE_MAX_ITERATIONS, why,
                           sizeof why);
    cr_assert_eq(q, 0, "%s", why);
    if (w.c != NULL)
        aredis_client_free(w.c);
    w.c = NULL;
    refill_free_client(w.rf);
    int64_t took = refill_run_loop(w.loop, 5000);
    refill *rf = w.rf;
    w.rf = NULL;
    int f = refill_finish(rf, w.srv.base[0] ? w.srv.base : "no-server", why,
                          sizeof why);
    cr_assert_eq(f, 0, "refill driver: %s", why);
    cr_assert_lt(took, 1000,
                 "aredis_loop_run() returned %lld ms after the clients "
                 "were freed",
                 (long long)took);
    aredis_loop_free(w.loop);
    w.loop = NULL;
}

/* Submit, asserting the submit itself worked; returns the command's index. */
#define submit(...) faults_send_ok(&w.t, w.c, __VA_ARGS__)

static void wait_all(int timeout_ms)
{
    if (faults_wait_track(w.loop, &w.t, timeout_ms))
        return;
    char pend[1024], evs[2048];
    faults_track_pending_str(&w.t, pend, sizeof pend);
    faults_events_str(&w.ev, evs, sizeof evs);
    cr_assert_fail("%d of %d commands completed within %d ms; waiting: %s; "
                   "events: %s",
                   w.t.completed, w.t.sent, timeout_ms, pend, evs);
}

/* SET faults:big:<i> to a value of n bytes. */
static void submit_set(int i, const char *val, size_t n)
{
    char key[32];
    snprintf(key, sizeof key, "faults:big:%d", i);
    const char *argv[] = {"SET", key, val};
    size_t lens[] = {3, strlen(key), n};
    int k = faults_sendv(&w.t, w.c, NULL, 3, argv, lens);
    cr_assert_geq(k, 0, "submit failed: %s", aredis_err_name(k));
}

/* Wait until commands [0, n) have completed. */
static int first_n_done_n;
static int first_n_done(const void *arg)
{
    (void)arg;
    for (int i = 0; i < first_n_done_n; i++)
        if (w.cmds[i].calls == 0)
            return 0;
    return 1;
}

static void wait_until_completed(int n, int timeout_ms)
{
    first_n_done_n = n;
    cr_assert(faults_run_until(w.loop, first_n_done, NULL, timeout_ms),
              "commands 0..%d did not complete within %d ms", n - 1,
              timeout_ms);
}

static void expect_status(int i, const char *text)
{
    faults_cmd *k = &w.cmds[i];
    cr_assert_eq(k->type, AREDIS_REPLY_STATUS, "command %d: type %d %s: %s", i,
                 k->type, aredis_err_name(k->code), k->text);
    cr_assert_str_eq(k->text, text, "command %d", i);
}

static void expect_string(int i, const char *text)
{
    faults_cmd *k = &w.cmds[i];
    cr_assert_eq(k->type, AREDIS_REPLY_STRING, "command %d: type %d %s: %s", i,
                 k->type, aredis_err_name(k->code), k->text);
    cr_assert_str_eq(k->text, text, "command %d", i);
}

static void expect_error(int i, int code1, int code2)
{
    faults_cmd *k = &w.cmds[i];
    cr_assert(k->type == AREDIS_REPLY_ERROR &&
                  (k->code == code1 || k->code == code2),
              "command %d: want %s%s%s, got type %d %s: %s", i,
              aredis_err_name(code1), code2 ? " or " : "",
              code2 ? aredis_err_name(code2) : "", k->type,
              aredis_err_name(k->code), k->text);
}

/* A PING that must succeed; returns when it did. */
static int64_t ping_ok(int timeout_ms)
{
    int i = submit(&(aredis_cmd_opts){.timeout_ms = timeout_ms}, "PING");
    wait_all(timeout_ms + 2000);
    char evs[2048];
    faults_events_str(&w.ev, evs, sizeof evs);
    cr_assert_eq(w.cmds[i].type, AREDIS_REPLY_STATUS,
                 "PING: %s: %s (events: %s)", aredis_err_name(w.cmds[i].code),
                 w.cmds[i].text, evs);
    return w.cmds[i].at_ms;
}

/* The first successful completion at or after `since`. */
static int64_t first_ok_after(int64_t since)
{
    int64_t best = -1;
    for (int i = 0; i < w.t.sent; i++) {
        faults_cmd *k = &w.cmds[i];
        if (k->calls && k->type != AREDIS_REPLY_ERROR && k->at_ms >= since &&
            (best < 0 || k->at_ms < best))
            best = k->at_ms;
    }
    return best < 0 ? -1 : best - since;
}

/* Every test ends here: the completion guarantees, then everything freed
 * and stopped (ASan reports leaks at exit). */
static void finish(void)
{
    cr_assert_eq(w.t.twice, 0,
                 "%d callbacks ran for commands already "
                 "completed",
                 w.t.twice);
    cr_assert_eq(w.t.null_replies, 0, "callbacks with a NULL reply");
    cr_assert_eq(w.t.completed, w.t.sent);
    cr_assert_eq(aredis_client_pending(w.c), 0);
    end_all(5000);
    if (w.have_px)
        faults_proxy_stop(&w.px);
    cr_assert_eq(faults_server_stop(&w.srv), 0, "%s", testenv_errstr());
}

/* A raw connection to the server, named so that the refill driver's
 * CLIENT LIST check does not take it for a leaked socket. */
static void admin_connect(testenv_conn *a)
{
    cr_assert_eq(testenv_connect(a, &w.srv.s), 0, "%s", testenv_errstr());
    cr_assert_geq(refill_name_conn(a), 0, "%s", testenv_errstr());
}

/* Some connection of the server is blocked in `cmd` (CLIENT LIST). */
static int blocked_in(const faults_server *srv, const char *cmd)
{
    testenv_conn a;
    cr_assert_eq(testenv_connect(&a, &srv->s), 0, "%s", testenv_errstr());
    const aredis_reply *r = NULL;
    cr_assert_eq(testenv_command(&a, &r, "CLIENT LIST"), 0, "%s",
                 testenv_errstr());
    char want[64];
    snprintf(want, sizeof want, "cmd=%s", cmd);
    int found = r->type == AREDIS_REPLY_STRING || r->type == AREDIS_REPLY_VERB
                    ? strstr(r->str, want) != NULL
                    : 0;
    testenv_close(&a);
    return found;
}

static int event_seq_after(const void *arg)
{
    /* DISCONNECTED, then RECONNECTING, then CONNECTED, after index *from. */
    const int *from = arg;
    int d = faults_events_find(&w.ev, *from, AREDIS_CONN_DISCONNECTED, 0);
    int r =
        d < 0 ? -1 : faults_events_find(&w.ev, d, AREDIS_CONN_RECONNECTING, 0);
    int c = r < 0 ? -1 : faults_events_find(&w.ev, r, AREDIS_CONN_CONNECTED, 0);
    return c >= 0;
}

static int connected_once(const void *arg)
{
    (void)arg;
    return faults_events_find(&w.ev, 0, AREDIS_CONN_CONNECTED, 0) >= 0;
}

/* ---- (a) server killed with commands in flight, restarted --------------- */

/* 100 commands wait behind DEBUG SLEEP when the server is killed. Those
 * that may be re-sent (AREDIS_CMD_IDEMPOTENT, or read-only with
 * retry_read_only) succeed on the restarted server; the others fail with
 * EUNKNOWN (written) or ECLOSED (not written) and are never re-sent. */
Test(faults, kill9_inflight_then_restart, .timeout = 60)
{
    start_server("kill9", NULL, 0, 0);
    start_client(w.srv.s.port, (aredis_options){.retry_read_only = 1,
                                                .reconnect_max_attempts = -1,
                                                .reconnect_initial_ms = 50,
                                                .reconnect_max_ms = 200});
    ping_ok(5000);

    int sleep_i = submit(NULL, "DEBUG SLEEP 2");
    aredis_cmd_opts idem = {.flags = AREDIS_CMD_IDEMPOTENT};
    int first = w.t.sent;
    for (int i = 0; i < 100; i++) {
        switch (i % 4) {
        case 0:
            submit(NULL, "INCR faults:a:counter");
            break;
        case 1:
            submit(&idem, "SET faults:a:idem:%d v%d", i, i);
            break;
        case 2:
            submit(NULL, "GET faults:a:ro:%d", i);
            break;
        default:
            submit(NULL, "HGETALL faults:a:hash:%d", i);
        }
    }
    faults_run_for(w.loop, 300); /* all written; the server sleeps */
    cr_assert_eq(w.t.completed, 1, "only the PING may have completed");

    cr_assert_eq(faults_server_kill9(&w.srv), 0, "%s", testenv_errstr());
    cr_assert_eq(faults_server_restart(&w.srv), 0, "%s", testenv_errstr());
    int64_t healed = testenv_now_ms();
    wait_all(15000);

    expect_error(sleep_i, AREDIS_EUNKNOWN, AREDIS_ECLOSED);
    for (int i = 0; i < 100; i++) {
        int k = first + i;
        faults_cmd *c = &w.cmds[k];
        switch (i % 4) {
        case 0:
            expect_error(k, AREDIS_EUNKNOWN, AREDIS_ECLOSED);
            break;
        case 1:
            expect_status(k, "OK");
            break;
        case 2:
            cr_assert_eq(c->type, AREDIS_REPLY_NIL,
                         "GET %d (read-only, retried): type %d %s: %s", i,
                         c->type, aredis_err_name(c->code), c->text);
            break;
        default:
            cr_assert(c->type == AREDIS_REPLY_MAP ||
                          c->type == AREDIS_REPLY_ARRAY,
                      "HGETALL %d (read-only, retried): type %d %s: %s", i,
                      c->type, aredis_err_name(c->code), c->text);
        }
    }
    /* The writes that failed "outcome unknown" were not re-sent behind
     * the caller's back: the new server never saw an INCR. */
    int g = submit(NULL, "GET faults:a:counter");
    int e = submit(NULL, "EXISTS faults:a:idem:1");
    wait_all(5000);
    cr_assert_eq(w.cmds[g].type, AREDIS_REPLY_NIL,
                 "a non-idempotent INCR was re-sent (counter %s)",
                 w.cmds[g].text);
    cr_assert_eq(w.cmds[e].integer, 1, "an idempotent SET was not re-sent");
    faults_summary("kill9-inflight-restart", &w.t, first_ok_after(healed));
    finish();
}

/* ---- (b) server stopped past the deadline, then continued -------------------
 */

/* While the server is stopped the kernel still accepts the bytes; the
 * commands' deadlines fail them with ETIMEDOUT and the connection stays.
 * After SIGCONT the late replies arrive and must be dropped in order:
 * each later ECHO gets its own argument back. */
Test(faults, sigstop_past_deadline, .timeout = 60)
{
    start_server("sigstop", NULL, 0, 0);
    start_client(w.srv.s.port, (aredis_options){0});
    ping_ok(5000);

    cr_assert_eq(faults_server_pause(&w.srv), 0, "%s", testenv_errstr());
    int64_t t0 = testenv_now_ms();
    aredis_cmd_opts dl = {.timeout_ms = 300};
    int first = w.t.sent;
    for (int i = 0; i < 20; i++)
        submit(&dl, "ECHO stopped:%d", i);
    wait_all(3000);
    for (int i = 0; i < 20; i++) {
        expect_error(first + i, AREDIS_ETIMEDOUT, 0);
        int64_t took = w.cmds[first + i].at_ms - t0;
        cr_assert(took >= 250 && took < 2000,
                  "command %d timed out after %lld ms", i, (long long)took);
    }
    cr_assert_eq(faults_server_resume(&w.srv), 0, "%s", testenv_errstr());
    int64_t healed = testenv_now_ms();

    int after = w.t.sent;
    for (int i = 0; i < 20; i++)
        submit(&(aredis_cmd_opts){.timeout_ms = 5000}, "ECHO after:%d", i);
    wait_all(8000);
    for (int i = 0; i < 20; i++) {
        char want[32];
        snprintf(want, sizeof want, "after:%d", i);
        expect_string(after + i, want);
    }
    cr_assert_eq(faults_events_find(&w.ev, 0, AREDIS_CONN_DISCONNECTED, 0), -1,
                 "a timeout must not drop the connection");
    faults_summary("sigstop-past-deadline", &w.t, first_ok_after(healed));
    finish();
}

/* ---- (c) the server kills the client's connection ----------------------- */

/* CLIENT KILL from another connection: the client notices, says so with
 * DISCONNECTED, RECONNECTING and CONNECTED events, and reconnects without
 * waiting for a command. */
Test(faults, client_kill_reconnects_by_itself, .timeout = 60)
{
    start_server("ckill", NULL, 0, 0);
    start_client(w.srv.s.port, (aredis_options){0});
    cr_assert(faults_run_until(w.loop, connected_once, NULL, 5000),
              "never connected");
    int from = w.ev.n;

    testenv_conn a;
    admin_connect(&a);
    const aredis_reply *r = NULL;
    cr_assert_eq(testenv_command(&a, &r, "CLIENT KILL TYPE normal SKIPME yes"),
                 0, "%s", testenv_errstr());
    cr_assert_eq(r->type, AREDIS_REPLY_INTEGER);
    cr_assert_geq(r->integer, 1, "no client connection was killed");
    testenv_close(&a);
    int64_t t0 = testenv_now_ms();

    int got = faults_run_until(w.loop, event_seq_after, &from, 5000);
    char evs[2048];
    faults_events_str(&w.ev, evs, sizeof evs);
    cr_assert(got,
              "no DISCONNECTED, RECONNECTING, CONNECTED sequence "
              "without a command (events: %s)",
              evs);
    int d = faults_events_find(&w.ev, from, AREDIS_CONN_DISCONNECTED, 0);
    int rc = faults_events_find(&w.ev, d, AREDIS_CONN_RECONNECTING, 0);
    cr_assert_eq(w.ev.ev[rc].attempt, 1, "events: %s", evs);
    cr_assert_neq(w.ev.ev[d].code, 0, "DISCONNECTED without a code");
    int c = faults_events_find(&w.ev, rc, AREDIS_CONN_CONNECTED, 0);
    int64_t back = w.ev.ev[c].at_ms - t0;
    ping_ok(5000);
    faults_summary("client-kill", &w.t, back);
    finish();
}

/* ---- (d) CLIENT PAUSE ALL ----------------------------------------------- */

Test(faults, client_pause_all, .timeout = 60)
{
    start_server("pause", NULL, 0, 0);
    start_client(w.srv.s.port, (aredis_options){0});
    ping_ok(5000);

    testenv_conn a;
    admin_connect(&a);
    const aredis_reply *r = NULL;
    cr_assert_eq(testenv_command(&a, &r, "CLIENT PAUSE 500 ALL"), 0, "%s",
                 testenv_errstr());
    cr_assert_eq(r->type, AREDIS_REPLY_STATUS);
    testenv_close(&a);
    int64_t t0 = testenv_now_ms();

    int first = w.t.sent;
    for (int i = 0; i < 50; i++)
        submit(&(aredis_cmd_opts){.timeout_ms = 3000}, "INCR faults:d:n");
    wait_all(5000);
    for (int i = 0; i < 50; i++) {
        faults_cmd *k = &w.cmds[first + i];
        cr_assert_eq(k->type, AREDIS_REPLY_INTEGER, "INCR %d: %s: %s", i,
                     aredis_err_name(k->code), k->text);
        cr_assert_eq(k->integer, i + 1, "replies out of order");
    }
    int64_t waited = w.cmds[first].at_ms - t0;
    cr_assert_geq(waited, 350,
                  "answered after %lld ms: the pause did not "
                  "hold the commands",
                  (long long)waited);
    cr_assert_eq(w.t.errors, 0);
    faults_summary("client-pause-all", &w.t, waited);
    finish();
}

/* ---- (e) a blocking command does not stall other callers ---------------- */

/* BLPOP 2 goes to an exclusive connection by itself; the PING sent after
 * it (behind a DEBUG SLEEP 0.5 that holds the whole server) returns long
 * before the BLPOP does. On one shared connection it would wait 2 s. */
Test(faults, blocking_command_on_exclusive_connection, .timeout = 60)
{
    start_server("blpop", NULL, 0, 0);
    start_client(w.srv.s.port, (aredis_options){0});
    ping_ok(5000);

    int64_t t0 = testenv_now_ms();
    int b = submit(NULL, "BLPOP faults:e:list 2");
    faults_run_for(w.loop, 50); /* BLPOP is on its way and blocking */
    int s = submit(NULL, "DEBUG SLEEP 0.5");
    int p = submit(NULL, "PING");
    wait_all(8000);

    cr_assert_eq(w.cmds[b].type, AREDIS_REPLY_NIL, "BLPOP: %d %s: %s",
                 w.cmds[b].type, aredis_err_name(w.cmds[b].code),
                 w.cmds[b].text);
    expect_status(s, "OK");
    expect_status(p, "PONG");
    int64_t ping_ms = w.cmds[p].at_ms - t0, blpop_ms = w.cmds[b].at_ms - t0;
    cr_assert_lt(w.cmds[p].at_ms, w.cmds[b].at_ms,
                 "PING (%lld ms) waited for BLPOP (%lld ms)",
                 (long long)ping_ms, (long long)blpop_ms);
    cr_assert_lt(ping_ms, 1500, "PING took %lld ms", (long long)ping_ms);
    cr_assert_geq(blpop_ms, 1800, "BLPOP 2 returned after %lld ms",
                  (long long)blpop_ms);
    cr_assert_geq(ping_ms, 400, "PING did not wait for DEBUG SLEEP (%lld ms)",
                  (long long)ping_ms);
    faults_summary("debug-sleep-with-blpop", &w.t, ping_ms);
    finish();
}

/* ---- (f) the fault proxy ------------------------------------------------ */

Test(faults, proxy_delay, .timeout = 60)
{
    start_server("pdelay", NULL, 0, 0);
    start_proxy();
    start_client(w.px.port, (aredis_options){0});
    ping_ok(5000);

    proxy("delay 100");
    int64_t t0 = testenv_now_ms();
    int first = w.t.sent;
    for (int i = 0; i < 20; i++)
        submit(&(aredis_cmd_opts){.timeout_ms = 5000}, "ECHO slow:%d", i);
    wait_all(8000);
    for (int i = 0; i < 20; i++) {
        char want[32];
        snprintf(want, sizeof want, "slow:%d", i);
        expect_string(first + i, want);
    }
    int64_t took = w.cmds[first].at_ms - t0;
    cr_assert_geq(took, 190, "100 ms each way, yet answered in %lld ms",
                  (long long)took);
    cr_assert_lt(took, 3000, "answered in %lld ms", (long long)took);
    proxy("reset");
    faults_summary("proxy-delay-100", &w.t, took);
    finish();
}

/* A blackhole: the connection stays up and nothing comes back, so only the
 * deadlines end the commands. The byte stream is then beyond repair (the
 * requests were lost, so the replies the client waits to drop will never
 * come): the proxy cuts the connection and the client must reconnect. */
Test(faults, proxy_drop_past_deadline, .timeout = 60)
{
    start_server("pdrop", NULL, 0, 0);
    start_proxy();
    start_client(w.px.port, (aredis_options){0});
    ping_ok(5000);

    proxy("drop on");
    int64_t t0 = testenv_now_ms();
    int first = w.t.sent;
    for (int i = 0; i < 10; i++)
        submit(&(aredis_cmd_opts){.timeout_ms = 300}, "ECHO dropped:%d", i);
    wait_all(3000);
    for (int i = 0; i < 10; i++) {
        expect_error(first + i, AREDIS_ETIMEDOUT, 0);
        int64_t took = w.cmds[first + i].at_ms - t0;
        cr_assert(took >= 250 && took < 2000, "timed out after %lld ms",
                  (long long)took);
    }
    proxy("reset");
    proxy("cut");
    int64_t healed = testenv_now_ms();
    int e = submit(&(aredis_cmd_opts){.timeout_ms = 5000}, "ECHO back");
    wait_all(8000);
    expect_string(e, "back");
    faults_summary("proxy-drop", &w.t, first_ok_after(healed));
    finish();
}

/* Fill a key with a 1 MiB value through a direct connection. */
static void set_big(const char *key, size_t n)
{
    char *v = malloc(n);
    cr_assert_not_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = (char)('a' + i % 26);
    testenv_conn a;
    admin_connect(&a);
    const aredis_reply *r = NULL;
    cr_assert_eq(testenv_command(&a, &r, "SET %s %b", key, v, n), 0, "%s",
                 testenv_errstr());
    cr_assert_eq(r->type, AREDIS_REPLY_STATUS);
    testenv_close(&a);
    free(v);
}

static void check_big(int i, size_t n)
{
    faults_cmd *k = &w.cmds[i];
    cr_assert_eq(k->type, AREDIS_REPLY_STRING, "GET big: %s: %s",
                 aredis_err_name(k->code), k->text);
    cr_assert_eq(strncmp(k->text, "abcdefghij", 10), 0);
    (void)n;
}

/* The connection is reset 1000 bytes into a 1 MiB reply: GET is read-only
 * but retry_read_only is off, so the outcome is "unknown". Then it works. */
Test(faults, proxy_cutafter_mid_reply, .timeout = 60)
{
    start_server("pcutafter", NULL, 0, 0);
    set_big("faults:f:big", 1u << 20);
    start_proxy();
    start_client(w.px.port, (aredis_options){0});
    ping_ok(5000);

    proxy("cutafter 1000");
    int g = submit(&(aredis_cmd_opts){.timeout_ms = 5000}, "GET faults:f:big");
    wait_all(8000);
    expect_error(g, AREDIS_EUNKNOWN, 0);
    proxy("reset");
    int64_t healed = testenv_now_ms();
    int g2 = submit(&(aredis_cmd_opts){.timeout_ms = 5000}, "GET faults:f:big");
    wait_all(8000);
    check_big(g2, 1u << 20);
    faults_summary("proxy-cutafter-1000", &w.t, first_ok_after(healed));
    finish();
}

/* The same cut with retry_read_only on: the GET is re-sent on the new
 * connection and succeeds; the caller never sees the cut. */
Test(faults, proxy_cutafter_read_only_retried, .timeout = 60)
{
    start_server("pcutretry", NULL, 0, 0);
    set_big("faults:f:big", 1u << 20);
    start_proxy();
    start_client(w.px.port, (aredis_options){.retry_read_only = 1});
    ping_ok(5000);

    proxy("cutafter 1000"); /* applies once: the retry gets through */
    int64_t t0 = testenv_now_ms();
    int g = submit(&(aredis_cmd_opts){.timeout_ms = 5000}, "GET faults:f:big");
    wait_all(8000);
    check_big(g, 1u << 20);
    cr_assert_geq(faults_events_find(&w.ev, 0, AREDIS_CONN_DISCONNECTED, 0), 0,
                  "the cut was not seen");
    faults_summary("proxy-cutafter-retried", &w.t, first_ok_after(t0));
    finish();
}

/* Every connection reset while commands wait behind DEBUG SLEEP and a
 * BLPOP blocks on its exclusive connection: all fail with EUNKNOWN (or
 * ECLOSED if not yet written); afterwards both the shared connection and
 * the pool work again. */
Test(faults, proxy_cut_all, .timeout = 60)
{
    start_server("pcut", NULL, 0, 0);
    start_proxy();
    start_client(w.px.port, (aredis_options){0});
    ping_ok(5000);

    int first = w.t.sent;
    int blpop = submit(NULL, "BLPOP faults:f:list 5");
    faults_run_for(w.loop, 100);
    cr_assert(blocked_in(&w.srv, "blpop"),
              "the BLPOP was not blocking on the server before the cut");
    submit(NULL, "DEBUG SLEEP 0.5");
    for (int i = 0; i < 10; i++)
        submit(NULL, "INCR faults:f:cut");
    faults_run_for(w.loop, 150);
    proxy("cut");
    int64_t healed = testenv_now_ms();
    /* Well under the BLPOP's own 5 s: a written BLPOP must fail now, not
     * be sent again on a new connection. */
    faults_wait_track(w.loop, &w.t, 2000);
    if (w.cmds[blpop].calls == 0) {
        int again = blocked_in(&w.srv, "blpop");
        wait_all(8000);
        cr_assert_fail("BLPOP (written, not idempotent) did not fail at the "
                       "cut: %s; it completed %lld ms later as type %d %s",
                       again ? "it was re-sent on a new exclusive connection "
                               "(the server shows a client blocked in blpop)"
                             : "it stayed pending",
                       (long long)(w.cmds[blpop].at_ms - healed),
                       w.cmds[blpop].type, aredis_err_name(w.cmds[blpop].code));
    }
    wait_all(5000);
    for (int i = first; i < w.t.sent; i++)
        expect_error(i, AREDIS_EUNKNOWN, AREDIS_ECLOSED);
    int p = submit(&(aredis_cmd_opts){.timeout_ms = 5000}, "PING");
    int b = submit(&(aredis_cmd_opts){.timeout_ms = 5000},
                   "BLPOP faults:f:list 0.2");
    wait_all(8000);
    expect_status(p, "PONG");
    cr_assert_eq(w.cmds[b].type, AREDIS_REPLY_NIL,
                 "BLPOP after the cut: %s: %s", aredis_err_name(w.cmds[b].code),
                 w.cmds[b].text);
    faults_summary("proxy-cut", &w.t, first_ok_after(healed));
    finish();
}

/* ---- (g) no server at start --------------------------------------------- */

/* Reconnecting forever: commands submitted while nothing listens wait,
 * and succeed, in order, once the server starts 500 ms later. */
Test(faults, server_starts_late, .timeout = 60)
{
    int port = testenv_free_port();
    cr_assert_gt(port, 0);
    start_client(port, (aredis_options){.reconnect_max_attempts = -1});
    int first = w.t.sent;
    for (int i = 0; i < 10; i++)
        submit(NULL, "INCR faults:g:n");
    faults_run_for(w.loop, 500);
    cr_assert_eq(w.t.completed, 0,
                 "%d commands gave up while reconnecting "
                 "forever (first: %s)",
                 w.t.completed, aredis_err_name(w.cmds[first].code));
    start_server("late", NULL, port, 0);
    int64_t healed = testenv_now_ms();
    wait_all(10000);
    for (int i = 0; i < 10; i++) {
        faults_cmd *k = &w.cmds[first + i];
        cr_assert_eq(k->type, AREDIS_REPLY_INTEGER, "INCR %d: %s: %s", i,
                     aredis_err_name(k->code), k->text);
        cr_assert_eq(k->integer, i + 1);
    }
    int d = faults_events_find(&w.ev, 0, AREDIS_CONN_DISCONNECTED, 0);
    cr_assert_geq(d, 0);
    cr_assert_eq(w.ev.ev[d].code, AREDIS_ECONNREFUSED);
    cr_assert_geq(faults_events_find(&w.ev, d, AREDIS_CONN_RECONNECTING, 0), 0);
    faults_summary("server-starts-late", &w.t, first_ok_after(healed));
    finish();
}

/* Default attempts and no server, ever: the commands fail with
 * ECONNREFUSED within a bounded time, and a later command starts a new
 * round (and fails the same way, rather than hanging). */
Test(faults, server_never_starts, .timeout = 60)
{
    int port = testenv_free_port();
    cr_assert_gt(port, 0);
    start_client(port, (aredis_options){0});
    int64_t t0 = testenv_now_ms();
    for (int i = 0; i < 5; i++)
        submit(NULL, "PING");
    wait_all(10000);
    int64_t took = testenv_now_ms() - t0;
    for (int i = 0; i < 5; i++)
        expect_error(i, AREDIS_ECONNREFUSED, 0);
    cr_assert_lt(took, 5000, "gave up only after %lld ms", (long long)took);
    int again = submit(NULL, "PING");
    wait_all(10000);
    expect_error(again, AREDIS_ECONNREFUSED, 0);
    /* Three retries per outage by default. */
    int nrec = 0;
    for (int i = 0; i < w.ev.n; i++)
        nrec += w.ev.ev[i].type == AREDIS_CONN_RECONNECTING &&
                !w.ev.ev[i].exclusive;
    cr_assert_geq(nrec, 3, "only %d reconnect attempts announced", nrec);
    fprintf(stderr, "server-never-starts: first round failed after %lld ms\n",
            (long long)took);
    faults_summary("server-never-starts", &w.t, -1);
    finish();
}

/* The bound on commands queued while disconnected: past max_queued, new
 * commands fail at once with EBUSY (AREDIS_QUEUE_FAIL); those queued
 * succeed when the server comes. */
Test(faults, queue_bound_while_down, .timeout = 60)
{
    int port = testenv_free_port();
    cr_assert_gt(port, 0);
    start_client(
        port, (aredis_options){.reconnect_max_attempts = -1, .max_queued = 5});
    for (int i = 0; i < 10; i++)
        submit(NULL, "ECHO q:%d", i);
    faults_run_for(w.loop, 200);
    cr_assert_eq(w.t.completed, 5, "%d completed while the server was down",
                 w.t.completed);
    for (int i = 5; i < 10; i++)
        expect_error(i, AREDIS_EBUSY, 0);
    start_server("queue", NULL, port, 0);
    int64_t healed = testenv_now_ms();
    wait_all(10000);
    for (int i = 0; i < 5; i++) {
        char want[16];
        snprintf(want, sizeof want, "q:%d", i);
        expect_string(i, want);
    }
    faults_summary("queue-bound-fail", &w.t, first_ok_after(healed));
    finish();
}

/* AREDIS_QUEUE_WAIT: the same overflow is accepted, and all of it goes
 * through once the server is there. */
Test(faults, queue_wait_while_down, .timeout = 60)
{
    int port = testenv_free_port();
    cr_assert_gt(port, 0);
    start_client(port, (aredis_options){.reconnect_max_attempts = -1,
                                        .max_queued = 5,
                                        .queue_full = AREDIS_QUEUE_WAIT});
    for (int i = 0; i < 10; i++)
        submit(NULL, "ECHO q:%d", i);
    faults_run_for(w.loop, 300);
    cr_assert_eq(w.t.completed, 0);
    start_server("queuewait", NULL, port, 0);
    int64_t healed = testenv_now_ms();
    wait_all(10000);
    for (int i = 0; i < 10; i++) {
        char want[16];
        snprintf(want, sizeof want, "q:%d", i);
        expect_string(i, want);
    }
    faults_summary("queue-bound-wait", &w.t, first_ok_after(healed));
    finish();
}

/* ---- (h) TLS server restarted ------------------------------------------- */

#ifdef AREDIS_TEST_TLS
Test(faults, tls_server_restart, .timeout = 60)
{
    char dir[256], extra[1024], ca[300];
    cr_assert_eq(faults_tls_dir(dir, sizeof dir, extra, sizeof extra), 0, "%s",
                 testenv_errstr());
    snprintf(ca, sizeof ca, "%s/ca.crt", dir);
    start_server("tls", extra, 0, 1);
    start_client(w.srv.s.port,
                 (aredis_options){.tls = {.enabled = 1, .ca_file = ca},
                                  .reconnect_max_attempts = -1,
                                  .reconnect_initial_ms = 50,
                                  .reconnect_max_ms = 200});
    ping_ok(5000);

    int first = w.t.sent;
    submit(NULL, "DEBUG SLEEP 2");
    for (int i = 0; i < 10; i++)
        submit(NULL, "INCR faults:h:n");
    faults_run_for(w.loop, 200);
    cr_assert_eq(faults_server_kill9(&w.srv), 0, "%s", testenv_errstr());
    cr_assert_eq(faults_server_restart(&w.srv), 0, "%s", testenv_errstr());
    int64_t healed = testenv_now_ms();
    wait_all(10000);
    for (int i = first; i < w.t.sent; i++)
        expect_error(i, AREDIS_EUNKNOWN, AREDIS_ECLOSED);
    int after = w.t.sent;
    for (int i = 0; i < 10; i++)
        submit(&(aredis_cmd_opts){.timeout_ms = 5000}, "ECHO tls:%d", i);
    wait_all(10000);
    for (int i = 0; i < 10; i++) {
        char want[16];
        snprintf(want, sizeof want, "tls:%d", i);
        expect_string(after + i, want);
    }
    int c1 = faults_events_find(&w.ev, 0, AREDIS_CONN_CONNECTED, 0);
    cr_assert_geq(faults_events_find(&w.ev, c1 + 1, AREDIS_CONN_CONNECTED, 0),
                  0, "no second CONNECTED event");
    faults_summary("tls-restart", &w.t, first_ok_after(healed));
    finish();
    faults_rmdir(dir);
}
#endif

/* ---- thread-safe submit under a server crash ---------------------------- */

typedef struct ts_job {
    aredis_client *c;
    int n;
    int rejected; /* submits that returned an error */
} ts_job;

static pthread_t loop_thread;
static int wrong_thread; /* callbacks that ran off the loop thread */

static void ts_cb(aredis_client *c, const aredis_reply *r, void *ud)
{
    if (!pthread_equal(pthread_self(), loop_thread))
        wrong_thread++;
    faults_reply_cb(c, r, ud);
}

static void *ts_submitter(void *arg)
{
    ts_job *j = arg;
    for (int i = 0; i < j->n; i++) {
        /* Slots 0 and 1 are the loop thread's PING and DEBUG SLEEP. */
        faults_cmd *k = &w.cmds[2 + i];
        k->t = &w.t;
        k->idx = 2 + i;
        snprintf(k->cmd, sizeof k->cmd, "INCR faults:ts:n");
        if (aredis_command_ts(j->c, ts_cb, k, "INCR %s", "faults:ts:n") != 0)
            j->rejected++;
        if (i % 50 == 49) {
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

/* Another thread submits 400 commands through aredis_command_ts() while the
 * loop thread runs, the server sleeps in DEBUG SLEEP and is killed and
 * restarted in the middle: each command still completes exactly once, on
 * the loop thread; those written to the dead server fail, the rest
 * succeed on the new one, whose counter then matches them exactly. */
Test(faults, thread_submit_across_a_crash, .timeout = 60)
{
    start_server("ts", NULL, 0, 0);
    start_client(w.srv.s.port, (aredis_options){.reconnect_max_attempts = -1,
                                                .reconnect_initial_ms = 50,
                                                .reconnect_max_ms = 200});
    loop_thread = pthread_self();
    ping_ok(5000);
    int sleep_i = submit(NULL, "DEBUG SLEEP 2");

    ts_job j = {.c = w.c, .n = 400};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, ts_submitter, &j), 0);
    faults_run_for(w.loop, 40);
    cr_assert_eq(faults_server_kill9(&w.srv), 0, "%s", testenv_errstr());
    faults_run_for(w.loop, 50);
    cr_assert_eq(faults_server_restart(&w.srv), 0, "%s", testenv_errstr());
    int64_t healed = testenv_now_ms();
    /* The loop keeps running while the thread may still submit. */
    faults_run_for(w.loop, 200);
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert_eq(j.rejected, 0, "%d thread-safe submits were refused",
                 j.rejected);
    w.t.sent = 2 + j.n;
    wait_all(15000);
    cr_assert_eq(wrong_thread, 0, "%d callbacks ran off the loop thread",
                 wrong_thread);
    expect_error(sleep_i, AREDIS_EUNKNOWN, AREDIS_ECLOSED);

    /* The old server answered no INCR (it slept until killed), so the
     * replies that arrived are the new server's: 1..C, each once. */
    static unsigned char seen[402];
    int ok = 0, failed = 0;
    for (int i = 2; i < 2 + j.n; i++) {
        faults_cmd *k = &w.cmds[i];
        cr_assert_eq(k->calls, 1, "command %d: %d callbacks", i, k->calls);
        if (k->type == AREDIS_REPLY_INTEGER) {
            cr_assert(k->integer >= 1 && k->integer <= j.n && !seen[k->integer],
                      "INCR reply %lld out of place", k->integer);
            seen[k->integer] = 1;
            ok++;
        } else {
            cr_assert(
                k->type == AREDIS_REPLY_ERROR &&
                    (k->code == AREDIS_EUNKNOWN || k->code == AREDIS_ECLOSED),
                "command %d: type %d %s: %s", i, k->type,
                aredis_err_name(k->code), k->text);
            failed++;
        }
    }
    int g = submit(NULL, "GET faults:ts:n");
    wait_all(5000);
    long long counter = w.cmds[g].type == AREDIS_REPLY_STRING
                            ? strtoll(w.cmds[g].text, NULL, 10)
                            : 0;
    cr_assert_eq(counter, ok,
                 "the new server counted %lld INCRs, %d replies "
                 "said so",
                 counter, ok);
    fprintf(stderr, "thread-submit-crash: %d succeeded, %d failed\n", ok,
            failed);
    faults_summary("thread-submit-crash", &w.t, first_ok_after(healed));
    finish();
}

/* ---- more of the same faults, other angles ------------------------------ */

/* CLIENT KILL while a BLPOP blocks on an exclusive connection: the BLPOP
 * ends at once with EUNKNOWN (it was written and is not idempotent), the
 * event says which connection it was, and the pool works afterwards. */
Test(faults, client_kill_ends_blocked_blpop, .timeout = 60)
{
    start_server("ckillb", NULL, 0, 0);
    start_client(w.srv.s.port, (aredis_options){0});
    ping_ok(5000);
    int b = submit(NULL, "BLPOP faults:c:list 5");
    faults_run_for(w.loop, 100);
    cr_assert(blocked_in(&w.srv, "blpop"), "the BLPOP is not blocking");

    testenv_conn a;
    admin_connect(&a);
    const aredis_reply *r = NULL;
    cr_assert_eq(testenv_command(&a, &r, "CLIENT KILL TYPE normal SKIPME yes"),
                 0, "%s", testenv_errstr());
    testenv_close(&a);
    int64_t t0 = testenv_now_ms();
    faults_wait_track(w.loop, &w.t, 2000);
    cr_assert_eq(w.cmds[b].calls, 1, "the BLPOP outlived its connection");
    expect_error(b, AREDIS_EUNKNOWN, 0);
    cr_assert_lt(w.cmds[b].at_ms - t0, 1000, "BLPOP failed only after %lld ms",
                 (long long)(w.cmds[b].at_ms - t0));
    char evs[2048];
    faults_events_str(&w.ev, evs, sizeof evs);
    cr_assert_geq(faults_events_find(&w.ev, 0, AREDIS_CONN_DISCONNECTED, 1), 0,
                  "no DISCONNECTED event for the exclusive connection "
                  "(events: %s)",
                  evs);
    int b2 = submit(&(aredis_cmd_opts){.timeout_ms = 5000},
                    "BLPOP faults:c:list 0.2");
    int64_t healed = testenv_now_ms();
    wait_all(8000);
    cr_assert_eq(w.cmds[b2].type, AREDIS_REPLY_NIL, "%s: %s",
                 aredis_err_name(w.cmds[b2].code), w.cmds[b2].text);
    faults_summary("client-kill-blpop", &w.t, first_ok_after(healed));
    finish();
}

/* A command's deadline runs while it waits for a connection, too. */
Test(faults, deadline_while_disconnected, .timeout = 60)
{
    int port = testenv_free_port();
    cr_assert_gt(port, 0);
    start_client(port, (aredis_options){.reconnect_max_attempts = -1});
    int64_t t0 = testenv_now_ms();
    int d = submit(&(aredis_cmd_opts){.timeout_ms = 300}, "PING");
    int n = submit(NULL, "ECHO patient");
    faults_run_for(w.loop, 1000);
    cr_assert_eq(w.cmds[d].calls, 1,
                 "a 300 ms deadline did not fire while "
                 "disconnected");
    expect_error(d, AREDIS_ETIMEDOUT, 0);
    int64_t took = w.cmds[d].at_ms - t0;
    cr_assert(took >= 250 && took < 800, "timed out after %lld ms",
              (long long)took);
    cr_assert_eq(w.cmds[n].calls, 0,
                 "a command without a deadline gave up "
                 "(%s)",
                 aredis_err_name(w.cmds[n].code));
    start_server("dlate", NULL, port, 0);
    int64_t healed = testenv_now_ms();
    wait_all(10000);
    expect_string(n, "patient");
    faults_summary("deadline-while-disconnected", &w.t, first_ok_after(healed));
    finish();
}

/* Freeing the client while it waits to reconnect: every pending command
 * completes with ECANCELED, once, from the loop. */
Test(faults, free_during_backoff, .timeout = 60)
{
    int port = testenv_free_port();
    cr_assert_gt(port, 0);
    start_client(port, (aredis_options){.reconnect_max_attempts = -1});
    for (int i = 0; i < 10; i++)
        submit(NULL, "PING");
    faults_run_for(w.loop, 300);
    cr_assert_eq(w.t.completed, 0);
    aredis_client_free(w.c);
    w.c = NULL;
    cr_assert_eq(w.t.completed, 0, "callbacks ran inside aredis_client_free");
    end_all(0); /* runs the loop until it has nothing left */
    cr_assert_eq(w.t.completed, 10);
    cr_assert_eq(w.t.twice, 0);
    for (int i = 0; i < 10; i++)
        expect_error(i, AREDIS_ECANCELED, 0);
    faults_summary("free-during-backoff", &w.t, -1);
}

/* Freeing the client with commands in flight to a stopped server. */
Test(faults, free_with_server_stopped, .timeout = 60)
{
    start_server("freestop", NULL, 0, 0);
    start_client(w.srv.s.port, (aredis_options){0});
    ping_ok(5000);
    cr_assert_eq(faults_server_pause(&w.srv), 0, "%s", testenv_errstr());
    for (int i = 0; i < 10; i++)
        submit(NULL, "INCR faults:free:n");
    submit(NULL, "BLPOP faults:free:list 5");
    faults_run_for(w.loop, 200);
    aredis_client_free(w.c);
    w.c = NULL;
    end_all(0);
    cr_assert_eq(faults_server_resume(&w.srv), 0, "%s", testenv_errstr());
    cr_assert_eq(w.t.completed, w.t.sent);
    cr_assert_eq(w.t.twice, 0);
    for (int i = 1; i < w.t.sent; i++)
        expect_error(i, AREDIS_ECANCELED, 0);
    faults_summary("free-with-server-stopped", &w.t, -1);
    cr_assert_eq(faults_server_stop(&w.srv), 0, "%s", testenv_errstr());
}

/* The backoff between attempts grows and stays under reconnect_max_ms,
 * attempts count 1, 2, 3... within an outage, and each attempt comes when
 * its RECONNECTING event said it would. */
Test(faults, backoff_is_capped, .timeout = 60)
{
    int port = testenv_free_port();
    cr_assert_gt(port, 0);
    /* 60, 120, 240: the doubling overshoots the cap, which must hold. */
    start_client(port, (aredis_options){.reconnect_max_attempts = -1,
                                        .reconnect_initial_ms = 60,
                                        .reconnect_max_ms = 200});
    submit(NULL, "PING"); /* something waits, so the client keeps trying */
    faults_run_for(w.loop, 3000);
    char evs[4096];
    faults_events_str(&w.ev, evs, sizeof evs);
    int n = 0, last_attempt = 0;
    int64_t max_delay = 0;
    for (int i = 0; i < w.ev.n; i++) {
        if (w.ev.ev[i].type != AREDIS_CONN_RECONNECTING)
            continue;
        n++;
        cr_assert_eq(w.ev.ev[i].attempt, last_attempt + 1, "events: %s", evs);
        last_attempt = w.ev.ev[i].attempt;
        cr_assert(w.ev.ev[i].delay_ms >= 0 && w.ev.ev[i].delay_ms <= 200,
                  "delay %lld ms outside [0, reconnect_max_ms=200] (events: "
                  "%s)",
                  (long long)w.ev.ev[i].delay_ms, evs);
        if (w.ev.ev[i].delay_ms > max_delay)
            max_delay = w.ev.ev[i].delay_ms;
        /* The attempt fails at once (nothing listens): the next
         * DISCONNECTED marks when it was made. */
        int d = faults_events_find(&w.ev, i, AREDIS_CONN_DISCONNECTED, 0);
        if (d >= 0) {
            int64_t gap = w.ev.ev[d].at_ms - w.ev.ev[i].at_ms;
            /* Late by up to a second on a loaded machine; never early. */
            cr_assert(gap >= w.ev.ev[i].delay_ms - 15 &&
                          gap <= w.ev.ev[i].delay_ms + 1000,
                      "announced %lld ms, attempted after %lld ms",
                      (long long)w.ev.ev[i].delay_ms, (long long)gap);
        }
    }
    cr_assert_geq(n, 8,
                  "only %d attempts in 3 s with a 200 ms cap (events: "
                  "%s)",
                  n, evs);
    cr_assert_geq(max_delay, 100, "the backoff never grew (events: %s)", evs);
    aredis_client_free(w.c);
    w.c = NULL;
    end_all(0);
    cr_assert_eq(w.t.completed, 1);
    expect_error(0, AREDIS_ECANCELED, 0);
    fprintf(stderr, "backoff: %d attempts in 3 s, largest delay %lld ms\n", n,
            (long long)max_delay);
}

/* The proxy accepts and resets every connection: commands that were never
 * written fail with a connect error (never "outcome unknown"); once the
 * proxy lets connections through, the next command starts a new round. */
Test(faults, proxy_refuse, .timeout = 60)
{
    start_server("prefuse", NULL, 0, 0);
    start_proxy();
    proxy("refuse on");
    start_client(w.px.port, (aredis_options){0});
    int64_t t0 = testenv_now_ms();
    for (int i = 0; i < 3; i++)
        submit(NULL, "PING");
    wait_all(8000);
    int64_t took = testenv_now_ms() - t0;
    for (int i = 0; i < 3; i++) {
        faults_cmd *k = &w.cmds[i];
        cr_assert(k->type == AREDIS_REPLY_ERROR && k->code != AREDIS_EUNKNOWN &&
                      k->code != AREDIS_ETIMEDOUT,
                  "PING %d, never written: %s: %s", i, aredis_err_name(k->code),
                  k->text);
    }
    cr_assert_lt(took, 5000, "gave up after %lld ms", (long long)took);
    proxy("refuse off");
    int64_t healed = testenv_now_ms();
    ping_ok(5000);
    fprintf(stderr, "proxy-refuse: commands failed with %s after %lld ms\n",
            aredis_err_name(w.cmds[0].code), (long long)took);
    faults_summary("proxy-refuse", &w.t, first_ok_after(healed));
    finish();
}

/* Held bytes (pause on down) arrive late but intact. */
Test(faults, proxy_pause_down, .timeout = 60)
{
    start_server("ppause", NULL, 0, 0);
    start_proxy();
    start_client(w.px.port, (aredis_options){0});
    ping_ok(5000);
    proxy("pause on down");
    int64_t t0 = testenv_now_ms();
    int first = w.t.sent;
    for (int i = 0; i < 20; i++)
        submit(&(aredis_cmd_opts){.timeout_ms = 5000}, "ECHO held:%d", i);
    faults_run_for(w.loop, 400);
    cr_assert_eq(w.t.completed, first, "replies got through a paused proxy");
    proxy("pause off");
    int64_t healed = testenv_now_ms();
    wait_all(5000);
    for (int i = 0; i < 20; i++) {
        char want[32];
        snprintf(want, sizeof want, "held:%d", i);
        expect_string(first + i, want);
    }
    cr_assert_geq(w.cmds[first].at_ms - t0, 400);
    faults_summary("proxy-pause-down", &w.t, first_ok_after(healed));
    finish();
}

/* Commands that may be re-sent, when the server does not come back: once
 * the attempts are spent they fail, within a bounded time, exactly once.
 * They had been written to the dead server, so "it did not run" would be
 * a lie: they fail with EUNKNOWN (errors.md), not with the connect error. */
Test(faults, retryable_when_server_never_returns, .timeout = 60)
{
    start_server("gone", NULL, 0, 0);
    start_client(w.srv.s.port, (aredis_options){.retry_read_only = 1});
    ping_ok(5000);
    int s = submit(NULL, "DEBUG SLEEP 2");
    aredis_cmd_opts idem = {.flags = AREDIS_CMD_IDEMPOTENT};
    int first = w.t.sent;
    for (int i = 0; i < 5; i++) {
        submit(&idem, "SET faults:gone:%d v", i);
        submit(NULL, "GET faults:gone:%d", i);
    }
    faults_run_for(w.loop, 200);
    cr_assert_eq(faults_server_kill9(&w.srv), 0, "%s", testenv_errstr());
    int64_t t0 = testenv_now_ms();
    wait_all(10000);
    int64_t took = testenv_now_ms() - t0;
    expect_error(s, AREDIS_EUNKNOWN, AREDIS_ECLOSED);
    for (int i = first; i < w.t.sent; i++)
        expect_error(i, AREDIS_EUNKNOWN, 0);
    cr_assert_lt(took, 5000, "the retried commands failed after %lld ms",
                 (long long)took);
    fprintf(stderr, "retryable-server-gone: failed with %s after %lld ms\n",
            aredis_err_name(w.cmds[first].code), (long long)took);
    faults_summary("retryable-server-gone", &w.t, -1);
    finish();
}

/* pool_max exclusive connections at most: a second blocking command waits
 * pool_wait_ms for the one in use, then fails with EPOOL; the pool's
 * connection serves again once free. */
Test(faults, pool_exhausted, .timeout = 60)
{
    start_server("pool", NULL, 0, 0);
    start_client(w.srv.s.port,
                 (aredis_options){.pool_max = 1, .pool_wait_ms = 300});
    ping_ok(5000);
    int64_t t0 = testenv_now_ms();
    int b1 = submit(NULL, "BLPOP faults:pool:a 1");
    int b2 = submit(NULL, "BLPOP faults:pool:b 1");
    int p = submit(NULL, "PING");
    wait_all(5000);
    cr_assert_eq(w.cmds[b1].type, AREDIS_REPLY_NIL, "%s: %s",
                 aredis_err_name(w.cmds[b1].code), w.cmds[b1].text);
    expect_error(b2, AREDIS_EPOOL, 0);
    int64_t waited = w.cmds[b2].at_ms - t0;
    cr_assert(waited >= 250 && waited < 900, "EPOOL after %lld ms",
              (long long)waited);
    expect_status(p, "PONG");
    cr_assert_lt(w.cmds[p].at_ms - t0, 250,
                 "the shared connection waited "
                 "for the pool");
    int b3 = submit(NULL, "BLPOP faults:pool:c 0.1");
    wait_all(5000);
    cr_assert_eq(w.cmds[b3].type, AREDIS_REPLY_NIL);
    faults_summary("pool-exhausted", &w.t, -1);
    finish();
}

/* A stopped server still completes TCP connects (the kernel does), but
 * never the handshake: the connect deadline ends each attempt and the
 * command fails with ETIMEDOUT once they are spent. After SIGCONT the
 * next command connects. */
Test(faults, sigstop_during_connect, .timeout = 60)
{
    start_server("stopconn", NULL, 0, 0);
    cr_assert_eq(faults_server_pause(&w.srv), 0, "%s", testenv_errstr());
    start_client(w.srv.s.port, (aredis_options){.connect_timeout_ms = 200,
                                                .reconnect_initial_ms = 50,
                                                .reconnect_max_ms = 100});
    int64_t t0 = testenv_now_ms();
    int i = submit(NULL, "PING");
    wait_all(8000);
    int64_t took = w.cmds[i].at_ms - t0;
    expect_error(i, AREDIS_ETIMEDOUT, 0);
    cr_assert(took >= 600 && took < 4000,
              "4 attempts of 200 ms each, yet failed after %lld ms",
              (long long)took);
    cr_assert_eq(faults_server_resume(&w.srv), 0, "%s", testenv_errstr());
    int64_t healed = testenv_now_ms();
    ping_ok(5000);
    faults_summary("sigstop-during-connect", &w.t, first_ok_after(healed));
    finish();
}

/* A command that may be re-sent keeps its deadline across the outage: it
 * fails with ETIMEDOUT when that passes, not when the server is back. */
Test(faults, retry_keeps_its_deadline, .timeout = 60)
{
    start_server("retrydl", NULL, 0, 0);
    start_client(w.srv.s.port, (aredis_options){.reconnect_max_attempts = -1,
                                                .reconnect_initial_ms = 50,
                                                .reconnect_max_ms = 100});
    ping_ok(5000);
    int s = submit(NULL, "DEBUG SLEEP 2");
    int i = submit(
        &(aredis_cmd_opts){.timeout_ms = 600, .flags = AREDIS_CMD_IDEMPOTENT},
        "SET faults:rd:k v");
    int64_t t0 = testenv_now_ms();
    faults_run_for(w.loop, 200);
    cr_assert_eq(faults_server_kill9(&w.srv), 0, "%s", testenv_errstr());
    faults_run_for(w.loop, 800); /* nobody listens during the deadline */
    cr_assert_eq(w.cmds[i].calls, 1,
                 "the deadline passed while the command "
                 "waited to be re-sent, and it is still waiting");
    expect_error(i, AREDIS_ETIMEDOUT, 0);
    int64_t took = w.cmds[i].at_ms - t0;
    cr_assert(took >= 500 && took < 900, "ETIMEDOUT after %lld ms",
              (long long)took);
    expect_error(s, AREDIS_EUNKNOWN, AREDIS_ECLOSED);
    cr_assert_eq(faults_server_restart(&w.srv), 0, "%s", testenv_errstr());
    int64_t healed = testenv_now_ms();
    /* It timed out: it must not be sent anyway once the server is back. */
    int e = submit(NULL, "EXISTS faults:rd:k");
    wait_all(5000);
    cr_assert_eq(w.cmds[e].type, AREDIS_REPLY_INTEGER);
    cr_assert_eq(w.cmds[e].integer, 0,
                 "a command that had completed with "
                 "ETIMEDOUT was still sent after the restart");
    faults_summary("retry-keeps-deadline", &w.t, first_ok_after(healed));
    finish();
}

/* Commands that timed out on a stopped server, which is then killed: the
 * disconnect must not complete them a second time. */
Test(faults, timeout_then_crash_completes_once, .timeout = 60)
{
    start_server("tocrash", NULL, 0, 0);
    start_client(w.srv.s.port, (aredis_options){.reconnect_max_attempts = -1,
                                                .reconnect_initial_ms = 50,
                                                .reconnect_max_ms = 100,
                                                .retry_read_only = 1});
    ping_ok(5000);
    cr_assert_eq(faults_server_pause(&w.srv), 0, "%s", testenv_errstr());
    int first = w.t.sent;
    aredis_cmd_opts dl = {.timeout_ms = 200};
    aredis_cmd_opts dli = {.timeout_ms = 200, .flags = AREDIS_CMD_IDEMPOTENT};
    for (int i = 0; i < 10; i++) {
        submit(&dl, "INCR faults:tc:n");
        submit(&dl, "GET faults:tc:%d", i);
        submit(&dli, "SET faults:tc:%d v", i);
    }
    int late = submit(NULL, "INCR faults:tc:late"); /* no deadline */
    wait_until_completed(first + 30, 3000);
    cr_assert_eq(faults_server_kill9(&w.srv), 0, "%s", testenv_errstr());
    cr_assert_eq(faults_server_restart(&w.srv), 0, "%s", testenv_errstr());
    int64_t healed = testenv_now_ms();
    wait_all(8000);
    for (int i = first; i < first + 30; i++)
        expect_error(i, AREDIS_ETIMEDOUT, 0);
    expect_error(late, AREDIS_EUNKNOWN, AREDIS_ECLOSED);
    /* None of the timed-out ones may reappear on the new server. */
    int e = submit(NULL, "EXISTS faults:tc:0 faults:tc:5 faults:tc:9");
    wait_all(5000);
    cr_assert_eq(w.cmds[e].integer, 0, "timed-out SETs were re-sent");
    ping_ok(5000);
    faults_summary("timeout-then-crash", &w.t, first_ok_after(healed));
    finish();
}

/* Every new connection is set up the same way: database, client name and
 * password are applied again after the server restarts. */
Test(faults, reconnect_restores_connection_setup, .timeout = 60)
{
    start_server("setup", "--requirepass s3cret", 0, 0);
    start_client(w.srv.s.port, (aredis_options){.db = 3,
                                                .password = "s3cret",
                                                .client_name = "faults-setup",
                                                .reconnect_max_attempts = -1,
                                                .reconnect_initial_ms = 50,
                                                .reconnect_max_ms = 100});
    ping_ok(5000);
    cr_assert_eq(faults_server_kill9(&w.srv), 0, "%s", testenv_errstr());
    cr_assert_eq(faults_server_restart(&w.srv), 0, "%s", testenv_errstr());
    int64_t healed = testenv_now_ms();
    int s = submit(NULL, "SET faults:setup:k here");
    int n = submit(NULL, "CLIENT GETNAME");
    wait_all(8000);
    expect_status(s, "OK");
    expect_string(n, "faults-setup");
    /* The key must be in database 3 of the new server. */
    testenv_conn a;
    admin_connect(&a);
    const aredis_reply *r = NULL;
    cr_assert_eq(testenv_command(&a, &r, "AUTH s3cret"), 0, "%s",
                 testenv_errstr());
    cr_assert_eq(testenv_command(&a, &r, "SELECT 3"), 0, "%s",
                 testenv_errstr());
    cr_assert_eq(testenv_command(&a, &r, "GET faults:setup:k"), 0, "%s",
                 testenv_errstr());
    cr_assert_eq(r->type, AREDIS_REPLY_STRING,
                 "the key is not in db 3: SELECT was not applied again");
    testenv_close(&a);
    faults_summary("reconnect-setup", &w.t, first_ok_after(healed));
    finish();
}

/* Two outages in a row: the attempt count starts at 1 for each. And with
 * reconnection off, no RECONNECTING at all; the next command connects. */
Test(faults, attempts_restart_per_outage, .timeout = 60)
{
    start_server("outages", NULL, 0, 0);
    start_client(w.srv.s.port, (aredis_options){0});
    ping_ok(5000);
    for (int round = 0; round < 2; round++) {
        int from = w.ev.n;
        testenv_conn a;
        admin_connect(&a);
        const aredis_reply *r = NULL;
        cr_assert_eq(testenv_command(&a, &r, "CLIENT KILL TYPE normal"), 0,
                     "%s", testenv_errstr());
        testenv_close(&a);
        char evs[2048];
        int got = faults_run_until(w.loop, event_seq_after, &from, 5000);
        faults_events_str(&w.ev, evs, sizeof evs);
        cr_assert(got, "round %d: events %s", round, evs);
        int rc = faults_events_find(&w.ev, from, AREDIS_CONN_RECONNECTING, 0);
        cr_assert_eq(w.ev.ev[rc].attempt, 1, "round %d: events %s", round, evs);
    }
    ping_ok(5000);
    faults_summary("two-outages", &w.t, -1);
    finish();
}

Test(faults, no_reconnect_then_next_command, .timeout = 60)
{
    start_server("noreconn", NULL, 0, 0);
    start_client(w.srv.s.port, (aredis_options){.reconnect_max_attempts =
                                                    AREDIS_NO_RECONNECT});
    ping_ok(5000);
    int from = w.ev.n;
    testenv_conn a;
    admin_connect(&a);
    const aredis_reply *r = NULL;
    cr_assert_eq(testenv_command(&a, &r, "CLIENT KILL TYPE normal"), 0, "%s",
                 testenv_errstr());
    testenv_close(&a);
    int64_t t0 = testenv_now_ms();
    faults_run_for(w.loop, 500);
    char evs[2048];
    faults_events_str(&w.ev, evs, sizeof evs);
    cr_assert_geq(faults_events_find(&w.ev, from, AREDIS_CONN_DISCONNECTED, 0),
                  0, "events: %s", evs);
    cr_assert_eq(faults_events_find(&w.ev, from, AREDIS_CONN_RECONNECTING, 0),
                 -1, "reconnecting with AREDIS_NO_RECONNECT (events: %s)", evs);
    cr_assert_eq(faults_events_find(&w.ev, from, AREDIS_CONN_CONNECTED, 0), -1,
                 "reconnected with AREDIS_NO_RECONNECT (events: %s)", evs);
    int64_t ok = ping_ok(5000);
    faults_summary("no-reconnect", &w.t, ok - t0 - 500);
    finish();
}

/* The server dies in the middle of a 32 MB upload (500 SETs of 64 KiB
 * queued behind DEBUG SLEEP). The kernel can hold only a few MB of it (the
 * send buffer is capped by net.core.wmem_max, and the sleeping server's
 * receive buffer does not grow), so most commands were never written.
 * errors.md: those "did not run" - they may fail with ECLOSED or be sent
 * on the new connection - while those written may have run and fail with
 * EUNKNOWN, never re-sent. Every command starting past 20 MB must not say
 * EUNKNOWN; the new server holds exactly the keys whose SET succeeded;
 * and the pipeline after it is in step. */
Test(faults, kill9_during_large_upload, .timeout = 60)
{
    start_server("upload", NULL, 0, 0);
    start_client(w.srv.s.port, (aredis_options){.reconnect_max_attempts = -1,
                                                .reconnect_initial_ms = 50,
                                                .reconnect_max_ms = 100});
    ping_ok(5000);
    enum { N = 500, SZ = 64 * 1024 };
    char *val = malloc(SZ);
    cr_assert_not_null(val);
    memset(val, 'u', SZ);
    int s = submit(NULL, "DEBUG SLEEP 3");
    int first = w.t.sent;
    for (int i = 0; i < N; i++)
        submit_set(i, val, SZ);
    free(val);
    faults_run_for(w.loop, 500);
    cr_assert_eq(faults_server_kill9(&w.srv), 0, "%s", testenv_errstr());
    cr_assert_eq(faults_server_restart(&w.srv), 0, "%s", testenv_errstr());
    int64_t healed = testenv_now_ms();
    wait_all(20000);
    expect_error(s, AREDIS_EUNKNOWN, 0);
    int unknown = 0, closed = 0, ok = 0, bad_tail = 0, bad_tail_i = -1;
    for (int i = 0; i < N; i++) {
        faults_cmd *k = &w.cmds[first + i];
        if (k->type == AREDIS_REPLY_STATUS) {
            ok++;
        } else {
            expect_error(first + i, AREDIS_EUNKNOWN, AREDIS_ECLOSED);
            unknown += k->code == AREDIS_EUNKNOWN;
            closed += k->code == AREDIS_ECLOSED;
        }
        if ((size_t)i * SZ > 20u * 1024 * 1024 && k->code == AREDIS_EUNKNOWN) {
            bad_tail++;
            if (bad_tail_i < 0)
                bad_tail_i = i;
        }
    }
    fprintf(stderr, "upload: %d EUNKNOWN, %d ECLOSED, %d re-sent and OK\n",
            unknown, closed, ok);
    cr_assert_eq(bad_tail, 0,
                 "%d commands queued more than 20 MB behind a sleeping "
                 "server (never written) failed with EUNKNOWN, the first "
                 "#%d: \"%s\" (%d EUNKNOWN, %d ECLOSED, %d OK in all)",
                 bad_tail, bad_tail_i,
                 bad_tail_i >= 0 ? w.cmds[first + bad_tail_i].text : "",
                 unknown, closed, ok);

    /* Exactly the SETs that said OK reached the new server. */
    int ex = w.t.sent;
    for (int i = 0; i < N; i++)
        submit(NULL, "EXISTS faults:big:%d", i);
    int after = w.t.sent;
    for (int i = 0; i < 10; i++)
        submit(NULL, "ECHO up:%d", i);
    wait_all(10000);
    for (int i = 0; i < N; i++) {
        int set_ok = w.cmds[first + i].type == AREDIS_REPLY_STATUS;
        cr_assert_eq(w.cmds[ex + i].type, AREDIS_REPLY_INTEGER);
        cr_assert_eq(w.cmds[ex + i].integer, set_ok,
                     "SET %d said %s, yet the key %s on the new server", i,
                     set_ok ? "OK" : aredis_err_name(w.cmds[first + i].code),
                     set_ok ? "is missing" : "exists (it was re-sent)");
    }
    for (int i = 0; i < 10; i++) {
        char want[16];
        snprintf(want, sizeof want, "up:%d", i);
        expect_string(after + i, want);
    }
    faults_summary("kill9-large-upload", &w.t, first_ok_after(healed));
    finish();
}

/* A refused password is not an outage to wait out: with the default
 * attempts the commands fail with EAUTH and the server's own text. */
Test(faults, wrong_password_fails_with_eauth, .timeout = 60)
{
    start_server("authbad", "--requirepass right", 0, 0);
    start_client(w.srv.s.port, (aredis_options){.password = "wrong"});
    int64_t t0 = testenv_now_ms();
    int i = submit(NULL, "PING");
    wait_all(10000);
    int64_t took = testenv_now_ms() - t0;
    expect_error(i, AREDIS_EAUTH, 0);
    cr_assert(strstr(w.cmds[i].text, "WRONGPASS") != NULL ||
                  strstr(w.cmds[i].text, "invalid") != NULL,
              "message: %s", w.cmds[i].text);
    cr_assert_lt(took, 5000, "failed after %lld ms", (long long)took);
    faults_summary("wrong-password", &w.t, -1);
    finish();
}

/* The server closes idle connections (CONFIG SET timeout 1): an idle
 * client must come back by itself, and a command after the idle gap works
 * without an error. */
Test(faults, server_idle_timeout, .timeout = 60)
{
    start_server("idle", NULL, 0, 0);
    start_client(w.srv.s.port, (aredis_options){0});
    ping_ok(5000);
    int b = submit(NULL, "BLPOP faults:idle:list 0.1"); /* a pool member */
    wait_all(5000);
    cr_assert_eq(w.cmds[b].type, AREDIS_REPLY_NIL);
    testenv_conn a;
    admin_connect(&a);
    const aredis_reply *r = NULL;
    cr_assert_eq(testenv_command(&a, &r, "CONFIG SET timeout 1"), 0, "%s",
                 testenv_errstr());
    testenv_close(&a);
    int from = w.ev.n;
    faults_run_for(w.loop, 2600);
    char evs[2048];
    faults_events_str(&w.ev, evs, sizeof evs);
    cr_assert_geq(faults_events_find(&w.ev, from, AREDIS_CONN_DISCONNECTED, 0),
                  0, "the server's idle close went unnoticed (events: %s)",
                  evs);
    int64_t t0 = testenv_now_ms();
    int p = submit(&(aredis_cmd_opts){.timeout_ms = 5000}, "PING");
    int b2 = submit(&(aredis_cmd_opts){.timeout_ms = 5000},
                    "BLPOP faults:idle:list 0.1");
    wait_all(8000);
    expect_status(p, "PONG");
    cr_assert_eq(w.cmds[b2].type, AREDIS_REPLY_NIL, "BLPOP after idle: %s: %s",
                 aredis_err_name(w.cmds[b2].code), w.cmds[b2].text);
    faults_summary("server-idle-timeout", &w.t, w.cmds[p].at_ms - t0);
    finish();
}

/* Take a slot of a nearly full server. The refill driver's CLIENT LIST
 * sampler may hold one for a moment: try again until the server has room. */
static void hog_connect(testenv_conn *h)
{
    int64_t until = testenv_now_ms() + 2000;
    for (;;) {
        const aredis_reply *r = NULL;
        if (testenv_connect(h, &w.srv.s) == 0) {
            if (refill_name_conn(h) == 0 &&
                testenv_command(h, &r, "PING") == 0 &&
                r->type == AREDIS_REPLY_STATUS)
                return;
            testenv_close(h);
        }
        cr_assert_lt(testenv_now_ms(), until, "no slot for a hog: %s",
                     testenv_errstr());
        faults_run_for(w.loop, 20);
    }
}

/* While the server is full (maxclients), each reconnect's handshake is
 * refused; the client keeps trying and gets in once a slot frees up. */
Test(faults, maxclients_during_reconnect, .timeout = 60)
{
    start_server("maxcl", NULL, 0, 0);
    start_client(w.srv.s.port, (aredis_options){.reconnect_max_attempts = -1,
                                                .reconnect_initial_ms = 50,
                                                .reconnect_max_ms = 100});
    ping_ok(5000);
    testenv_conn a, hog[2];
    admin_connect(&a);
    const aredis_reply *r = NULL;
    /* Room for the admin connection and two hogs: the hogs take the slots
     * of the client and of the refill driver beside it. */
    cr_assert_eq(testenv_command(&a, &r, "CONFIG SET maxclients 3"), 0, "%s",
                 testenv_errstr());
    cr_assert_eq(testenv_command(&a, &r, "CLIENT KILL TYPE normal SKIPME yes"),
                 0, "%s", testenv_errstr());
    for (int i = 0; i < 2; i++)
        hog_connect(&hog[i]);
    int first = w.t.sent;
    for (int i = 0; i < 5; i++)
        submit(NULL, "ECHO full:%d", i);
    faults_run_for(w.loop, 600);
    char evs[2048];
    faults_events_str(&w.ev, evs, sizeof evs);
    cr_assert_eq(w.t.completed, first,
                 "commands completed while the server "
                 "refused every connection (events: %s)",
                 evs);
    testenv_close(&hog[0]);
    testenv_close(&hog[1]);
    int64_t healed = testenv_now_ms();
    wait_all(8000);
    for (int i = 0; i < 5; i++) {
        char want[16];
        snprintf(want, sizeof want, "full:%d", i);
        expect_string(first + i, want);
    }
    cr_assert_eq(testenv_command(&a, &r, "CONFIG SET maxclients 10000"), 0,
                 "%s", testenv_errstr());
    testenv_close(&a);
    int d = faults_events_find(&w.ev, 0, AREDIS_CONN_DISCONNECTED, 0);
    int refused = faults_events_find(&w.ev, d + 1, AREDIS_CONN_DISCONNECTED, 0);
    faults_events_str(&w.ev, evs, sizeof evs);
    cr_assert_geq(refused, 0, "no refused reconnect was reported (events: %s)",
                  evs);
    fprintf(stderr, "maxclients: refused reconnect reported as %s: %s\n",
            aredis_err_name(w.ev.ev[refused].code), w.ev.ev[refused].msg);
    faults_summary("maxclients-reconnect", &w.t, first_ok_after(healed));
    finish();
}

/* ---- behaviours pinned down exactly ------------------------------------- */

/* The RECONNECTING events on the shared connection from index `from` up to
 * time `until` (inclusive); their attempts must count 1, 2, 3... */
static int count_reconnecting(int from, int64_t until)
{
    char evs[4096];
    faults_events_str(&w.ev, evs, sizeof evs);
    int n = 0;
    for (int i = from; i < w.ev.n; i++) {
        if (w.ev.ev[i].type != AREDIS_CONN_RECONNECTING ||
            w.ev.ev[i].exclusive || w.ev.ev[i].at_ms > until)
            continue;
        n++;
        cr_assert_eq(w.ev.ev[i].attempt, n, "attempt %d announced as %d: %s", n,
                     w.ev.ev[i].attempt, evs);
    }
    return n;
}

/* reconnect_max_attempts = 3 and nothing listening: the first connect and
 * exactly three reconnects, announced by exactly three RECONNECTING events,
 * then the waiting commands fail with the connect error. Nothing is
 * waiting after that, so no further attempt is made. */
Test(faults, reconnect_attempts_are_exact, .timeout = 60)
{
    int port = testenv_free_port();
    cr_assert_gt(port, 0);
    start_client(port, (aredis_options){.reconnect_max_attempts = 3,
                                        .reconnect_initial_ms = 20,
                                        .reconnect_max_ms = 40});
    int a = submit(NULL, "PING");
    int b = submit(NULL, "ECHO waiting");
    wait_all(5000);
    expect_error(a, AREDIS_ECONNREFUSED, 0);
    expect_error(b, AREDIS_ECONNREFUSED, 0);
    char evs[4096];
    faults_events_str(&w.ev, evs, sizeof evs);
    int n = count_reconnecting(0, w.cmds[a].at_ms);
    cr_assert_eq(n, 3,
                 "%d RECONNECTING events before the commands failed, "
                 "with reconnect_max_attempts = 3 (events: %s)",
                 n, evs);
    faults_run_for(w.loop, 300);
    faults_events_str(&w.ev, evs, sizeof evs);
    cr_assert_eq(count_reconnecting(0, INT64_MAX), 3,
                 "attempts went on with nothing waiting (events: %s)", evs);
    faults_summary("reconnect-attempts-exact", &w.t, -1);
    /* The server comes: the next command starts a new round and works. */
    start_server("attempts", NULL, port, 0);
    ping_ok(5000);
    finish();
}

/* A command that may be re-sent (AREDIS_CMD_IDEMPOTENT) was written, then
 * the server died for good. It waits through reconnect_max_attempts
 * attempts (exactly that many RECONNECTING events) and then fails with
 * AREDIS_EUNKNOWN: it was written once, so "it did not run" - what the
 * connect error would say - may be false (errors.md). */
Test(faults, retryable_written_then_attempts_spent_is_unknown, .timeout = 60)
{
    start_server("spent", NULL, 0, 0);
    start_client(w.srv.s.port, (aredis_options){.reconnect_max_attempts = 2,
                                                .reconnect_initial_ms = 20,
                                                .reconnect_max_ms = 40});
    ping_ok(5000);
    int s = submit(NULL, "DEBUG SLEEP 2");
    int i = submit(&(aredis_cmd_opts){.flags = AREDIS_CMD_IDEMPOTENT},
                   "SET faults:spent:k v");
    faults_run_for(w.loop, 200); /* both written; the server sleeps */
    cr_assert_eq(w.cmds[i].calls, 0);
    int from = w.ev.n;
    cr_assert_eq(faults_server_kill9(&w.srv), 0, "%s", testenv_errstr());
    wait_all(5000);
    expect_error(s, AREDIS_EUNKNOWN, 0);
    expect_error(i, AREDIS_EUNKNOWN, 0);
    cr_assert(strstr(w.cmds[i].text, "outcome unknown") != NULL, "message: %s",
              w.cmds[i].text);
    char evs[4096];
    faults_events_str(&w.ev, evs, sizeof evs);
    int n = count_reconnecting(from, w.cmds[i].at_ms);
    cr_assert_eq(n, 2,
                 "%d RECONNECTING events before the retried command failed, "
                 "with reconnect_max_attempts = 2 (events: %s)",
                 n, evs);
    cr_assert_eq(faults_server_restart(&w.srv), 0, "%s", testenv_errstr());
    int e = submit(NULL, "EXISTS faults:spent:k");
    wait_all(5000);
    cr_assert_eq(w.cmds[e].integer, 0, "the SET was sent after it failed");
    faults_summary("retryable-attempts-spent", &w.t, -1);
    finish();
}

static int cmd_done(const void *arg)
{
    return w.cmds[*(const int *)arg].calls > 0;
}

/* Deadlines are kept per command: on a stalled connection (server stopped,
 * then the proxy blackholing) a 300 ms deadline submitted behind a 2 s one
 * fires at 300 ms, not when the earlier command's deadline does. */
static void short_behind_long(const char *what)
{
    int64_t t0 = testenv_now_ms();
    int lng = submit(&(aredis_cmd_opts){.timeout_ms = 2000}, "ECHO long");
    int sht = submit(&(aredis_cmd_opts){.timeout_ms = 300}, "ECHO short");
    faults_run_until(w.loop, cmd_done, &sht, 1500);
    cr_assert_eq(w.cmds[sht].calls, 1,
                 "%s: the 300 ms deadline had not fired after 1500 ms", what);
    expect_error(sht, AREDIS_ETIMEDOUT, 0);
    int64_t took = w.cmds[sht].at_ms - t0;
    /* Well before the earlier command's 2 s (the margin is for a loaded
     * machine). */
    cr_assert(took >= 280 && took < 1500,
              "%s: the 300 ms deadline fired after %lld ms", what,
              (long long)took);
    cr_assert_eq(w.cmds[lng].calls, 0,
                 "%s: the 2 s deadline fired with the 300 ms one", what);
    wait_all(4000);
    expect_error(lng, AREDIS_ETIMEDOUT, 0);
    took = w.cmds[lng].at_ms - t0;
    cr_assert(took >= 1900 && took < 2600,
              "%s: the 2 s deadline fired after %lld ms", what,
              (long long)took);
}

Test(faults, short_deadline_behind_long_one, .timeout = 60)
{
    start_server("dlorder", NULL, 0, 0);
    start_proxy();
    start_client(w.px.port, (aredis_options){0});
    ping_ok(5000);
    cr_assert_eq(faults_server_pause(&w.srv), 0, "%s", testenv_errstr());
    short_behind_long("server stopped");
    cr_assert_eq(faults_server_resume(&w.srv), 0, "%s", testenv_errstr());
    ping_ok(5000);
    proxy("drop on");
    short_behind_long("proxy dropping");
    proxy("reset");
    proxy("cut"); /* the stream lost its requests: start afresh */
    int64_t healed = testenv_now_ms();
    ping_ok(5000);
    faults_summary("short-deadline-behind-long", &w.t, first_ok_after(healed));
    finish();
}

/* ---- a borrowed connection that is lost --------------------------------- */

static aredis_exclusive *borrowed;
static int borrowed_status = 1;

static void on_acquired(aredis_client *c, aredis_exclusive *x, int status,
                        void *ud)
{
    (void)c;
    (void)ud;
    borrowed = x;
    borrowed_status = status;
}

static int acquired(const void *arg)
{
    (void)arg;
    return borrowed_status != 1;
}

/* Submit a space-separated command on the borrowed connection. */
static int xsubmit(aredis_exclusive *x, const char *line)
{
    cr_assert_lt(w.t.sent, MAX_CMDS);
    faults_cmd *k = &w.cmds[w.t.sent];
    memset(k, 0, sizeof *k);
    snprintf(k->cmd, sizeof k->cmd, "%s", line);
    k->t = &w.t;
    k->idx = w.t.sent;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", line);
    const char *argv[8];
    int argc = 0;
    for (char *save = NULL, *p = strtok_r(buf, " ", &save);
         p != NULL && argc < 8; p = strtok_r(NULL, " ", &save))
        argv[argc++] = p;
    int rc = aredis_exclusive_commandv(x, faults_reply_cb, k, argc, argv, NULL);
    cr_assert_eq(rc, 0, "submit of \"%s\" on the borrowed connection: %s", line,
                 aredis_err_name(rc));
    return w.t.sent++;
}

/* The id of the server connection blocked in `cmd`, or -1. */
static long long client_id_in(const char *cmd)
{
    testenv_conn a;
    admin_connect(&a);
    const aredis_reply *r = NULL;
    cr_assert_eq(testenv_command(&a, &r, "CLIENT LIST"), 0, "%s",
                 testenv_errstr());
    char want[64];
    snprintf(want, sizeof want, " cmd=%s ", cmd);
    long long id = -1;
    const char *hit = strstr(r->str, want);
    if (hit != NULL) {
        const char *line = hit;
        while (line > r->str && line[-1] != '\n')
            line--;
        if (strncmp(line, "id=", 3) == 0)
            id = strtoll(line + 3, NULL, 10);
    }
    testenv_close(&a);
    return id;
}

/* The borrowed connection is killed with two commands on it (a BLPOP
 * blocking and a PING behind it, both written) and a third queued but not
 * written: the first two fail with AREDIS_EUNKNOWN "connection lost,
 * outcome unknown: ...", the third with AREDIS_ECLOSED "connection lost
 * before the command was sent", nothing is re-sent on a new connection
 * behind the borrower's back, and every later
 * command on it fails with AREDIS_ECLOSED "the exclusive connection was
 * lost: release it and acquire another" (docs/guide/resilience.md). Once
 * released, the next borrowed connection works. */
Test(faults, borrowed_connection_lost, .timeout = 60)
{
    start_server("borrow", NULL, 0, 0);
    start_client(w.srv.s.port, (aredis_options){0});
    ping_ok(5000);
    cr_assert_eq(aredis_client_acquire(w.c, on_acquired, NULL), 0);
    cr_assert(faults_run_until(w.loop, acquired, NULL, 5000));
    cr_assert_eq(borrowed_status, 0, "acquire: %s",
                 aredis_err_name(borrowed_status));
    int b = xsubmit(borrowed, "BLPOP faults:borrow:list 5");
    int p = xsubmit(borrowed, "PING");
    faults_run_for(w.loop, 150);
    long long id = client_id_in("blpop");
    cr_assert_geq(id, 0, "the BLPOP is not blocking on the server");

    testenv_conn a;
    admin_connect(&a);
    const aredis_reply *r = NULL;
    cr_assert_eq(testenv_command(&a, &r, "CLIENT KILL ID %lld", id), 0, "%s",
                 testenv_errstr());
    cr_assert_eq(r->type, AREDIS_REPLY_INTEGER);
    cr_assert_eq(r->integer, 1);
    testenv_close(&a);
    /* The server has closed the connection; the client has not read that
     * yet. A command submitted now is queued, never written. */
    struct timespec pause = {0, 20 * 1000000L};
    nanosleep(&pause, NULL);
    int u = xsubmit(borrowed, "ECHO unsent");
    wait_until_completed(u + 1, 2000);
    const char *unknown = "connection lost, outcome unknown";
    expect_error(b, AREDIS_EUNKNOWN, 0);
    expect_error(p, AREDIS_EUNKNOWN, 0);
    cr_assert_eq(strncmp(w.cmds[b].text, unknown, strlen(unknown)), 0,
                 "message: %s", w.cmds[b].text);
    cr_assert_eq(strncmp(w.cmds[p].text, unknown, strlen(unknown)), 0,
                 "message: %s", w.cmds[p].text);
    expect_error(u, AREDIS_ECLOSED, 0);
    cr_assert_str_eq(w.cmds[u].text,
                     "connection lost before the command was sent");
    faults_run_for(w.loop, 300);
    cr_assert_lt(client_id_in("blpop"), 0,
                 "the BLPOP was sent again on a new connection");

    const char *lost = "the exclusive connection was lost: release it and "
                       "acquire another";
    int later = xsubmit(borrowed, "PING");
    cr_assert_eq(w.cmds[later].calls, 0, "completed inside the submit");
    wait_all(2000);
    expect_error(later, AREDIS_ECLOSED, 0);
    cr_assert_str_eq(w.cmds[later].text, lost);
    aredis_exclusive_release(borrowed);

    borrowed = NULL;
    borrowed_status = 1;
    cr_assert_eq(aredis_client_acquire(w.c, on_acquired, NULL), 0);
    cr_assert(faults_run_until(w.loop, acquired, NULL, 5000));
    cr_assert_eq(borrowed_status, 0);
    int again = xsubmit(borrowed, "PING");
    wait_all(5000);
    expect_status(again, "PONG");
    aredis_exclusive_release(borrowed);
    faults_summary("borrowed-connection-lost", &w.t, -1);
    finish();
}
