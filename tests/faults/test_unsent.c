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

static int submit(const aredis_cmd_opts *o, const char *fmt, ...)
    AREDIS_PRINTF(2, 3);

static int submit(const aredis_cmd_opts *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int i = faults_vsend(&w.t, w.c, o, fmt, ap);
    va_end(ap);
    cr_assert_geq(i, 0, "submit of \"%s\" failed: %s", fmt, aredis_err_name(i));
    return i;
}

static void wait_all(int timeout_ms)
{
    char pend[512];
    if (faults_wait_track(w.loop, &w.t, timeout_ms))
        return;
    faults_track_pending_str(&w.t, pend, sizeof pend);
    cr_assert_fail("commands still waiting after %d ms: %s", timeout_ms, pend);
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

/* INCR unsent:n with a 100 ms deadline, tracked like faults_send's. */
static int submit_incr(void)
{
    faults_cmd *k = &w.t.cmds[w.t.sent];
    memset(k, 0, sizeof *k);
    snprintf(k->cmd, sizeof k->cmd, "INCR unsent:n");
    k->t = &w.t;
    k->idx = w.t.sent;
    int e = aredis_command_opts(w.c, &(aredis_cmd_opts){.timeout_ms = 100},
                                on_incr, k, "INCR unsent:n");
    cr_assert_eq(e, 0, "%s", aredis_err_name(e));
    return w.t.sent++;
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
    cr_assert_eq(w.t.twice, 0, "callbacks ran twice");
    cr_assert_eq(w.t.null_replies, 0, "callbacks with a NULL reply");
    cr_assert_eq(w.t.completed, w.t.sent);
    cr_assert_eq(aredis_client_pending(w.c), 0);
    aredis_client_free(w.c);
    aredis_loop_free(w.loop);
    cr_assert_eq(faults_server_stop(&w.srv), 0, "%s", testenv_errstr());
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
    cr_assert_eq(w.t.twice, 0, "callbacks ran twice");
    cr_assert_eq(w.t.null_replies, 0, "callbacks with a NULL reply");
    cr_assert_eq(w.t.completed, w.t.sent);
    aredis_client_free(w.c);
    aredis_loop_free(w.loop);
    cr_assert_eq(faults_server_stop(&w.srv), 0, "%s", testenv_errstr());
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
    cr_assert_eq(w.t.twice, 0, "callbacks ran twice");
    cr_assert_eq(w.t.null_replies, 0, "callbacks with a NULL reply");
    cr_assert_eq(w.t.completed, w.t.sent);
    aredis_client_free(w.c);
    aredis_loop_free(w.loop);
    cr_assert_eq(faults_server_stop(&w.srv), 0, "%s", testenv_errstr());
}
