/* Client fixtures shared by the integration tests (tests/support).
 *
 * On top of testloop.h (the loop under test) and Criterion: a fixture
 * server's address, a command straight to a server, a client on a URL, a reply
 * kept by a callback, one command run to its reply, how a SCAN walk ended, and
 * the end of a test (nothing left in flight, the client and the loop freed).
 * Every wait has a deadline in real time, so a test can fail but never hang.
 * Header-only, like testloop.h, whose per-process state it uses. */
#ifndef AREDIS_TESTS_TESTCLIENT_H
#define AREDIS_TESTS_TESTCLIENT_H

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "aredis/aredis.h"
#include "testenv.h"
#include "testloop.h"

/* Load the fixture server name (testenv_server_load: NULL for the test's
 * own) into *srv; the test fails when it is not there. */
static inline void testclient_server(testenv_server *srv, const char *name)
{
    cr_assert_eq(testenv_server_load(srv, name), 0, "%s", testenv_errstr());
}

/* The TCP port of the fixture server name (the first node of a cluster). */
static inline int testclient_port(const char *name)
{
    testenv_server s;
    testclient_server(&s, name);
    return s.port;
}

/* For a suite's .init: load the standalone fixture server into *srv and,
 * when url is not NULL, write its URL on database db into url[cap]. The
 * test fails when the server is not there. */
static inline void testclient_standalone(testenv_server *srv, char *url,
                                         size_t cap, int db)
{
    testclient_server(srv, "standalone");
    if (url != NULL)
        testenv_url(url, cap, srv, db);
}

/* A blocking connection (testenv.h) to 127.0.0.1:port; the test fails
 * when it cannot connect. */
static inline void testclient_connect_port(testenv_conn *c, int port)
{
    testenv_server s = {.host = "127.0.0.1", .port = port};
    cr_assert_eq(testenv_connect(c, &s), 0, "127.0.0.1:%d: %s", port,
                 testenv_errstr());
}

/* One command (aredis_command's format) on a new blocking connection to
 * 127.0.0.1:port, straight to that server: its reply, a copy the caller
 * frees. The test fails when the connection or the exchange fails. */
static inline aredis_reply *testclient_direct(int port, const char *fmt, ...)
{
    testenv_conn c;
    testclient_connect_port(&c, port);
    const aredis_reply *r;
    va_list ap;
    va_start(ap, fmt);
    int rc = testenv_vcommand(&c, &r, fmt, ap);
    va_end(ap);
    cr_assert_eq(rc, 0, "127.0.0.1:%d: %s: %s", port, fmt, testenv_errstr());
    aredis_reply *copy = aredis_reply_dup(r);
    cr_assert_not_null(copy);
    testenv_close(&c);
    return copy;
}

/* The node ID of the cluster node at 127.0.0.1:port (CLUSTER MYID). */
static inline void testclient_node_id(int port, char id[41])
{
    aredis_reply *r = testclient_direct(port, "CLUSTER MYID");
    cr_assert_eq(r->len, 40, "127.0.0.1:%d: %s", port, r->str);
    memcpy(id, r->str, 41);
    aredis_reply_free(r);
}

/* Start a private Redis Cluster of n primaries without replicas
 * (testenv_private_cluster_start, named after tag): its first primary in
 * *s, the ports of its primaries in ports[n]. The test fails when it
 * cannot be started. */
static inline void testclient_private_cluster(testenv_server *s,
                                              const char *tag, int *ports,
                                              int n)
{
    char extra[64];
    snprintf(extra, sizeof extra, "--primaries %d --replicas 0", n);
    cr_assert_eq(testenv_private_cluster_start(s, tag, extra), 0, "%s",
                 testenv_errstr());
    cr_assert_eq(testenv_state_ports(s->name, "primaries", ports, n), n, "%s",
                 testenv_errstr());
}

/* A client on url; the test fails when it cannot be made. */
static inline aredis_client *testclient_new(aredis_loop *loop, const char *url)
{
    aredis_status st;
    aredis_client *c =
        aredis_client_new(loop, &(aredis_options){.url = url}, &st);
    cr_assert_not_null(c, "%s", st.msg);
    return c;
}

/* The end of a test: let what the test left behind land (UNWATCHes,
 * releases to the pool), waiting in real time (up to 5 s on a loaded
 * machine) until nothing is left in flight, assert that, then free the
 * client and the loop. */
static inline void testclient_finish(aredis_loop *loop, aredis_client *c)
{
    int never = 0;
    testloop_run_until(loop, &never, 20);
    for (int waited = 0; aredis_client_pending(c) != 0 && waited < 5000;
         waited += 20)
        testloop_run_until(loop, &never, 20);
    cr_assert_eq(aredis_client_pending(c), 0, "nothing left in flight");
    aredis_client_free(c);
    testloop_free(loop);
}

/* What a callback got: a copy of the last reply, and how many times it
 * ran. */
typedef struct testgot {
    int calls;
    aredis_reply *r;
} testgot;

/* Free the kept reply and zero the counts. */
static inline void testgot_clear(testgot *g)
{
    aredis_reply_free(g->r);
    memset(g, 0, sizeof *g);
}

/* An aredis_reply_cb; ud is a testgot. */
static inline void testgot_keep(aredis_client *c, const aredis_reply *r,
                                void *ud)
{
    (void)c;
    testgot *g = ud;
    cr_assert_not_null(r);
    g->calls++;
    aredis_reply_free(g->r);
    g->r = aredis_reply_dup(r);
    cr_assert_not_null(g->r);
}

/* An aredis_pipeline_cb; ud is a testgot. */
static inline void testgot_keep_pipeline(aredis_pipeline *p,
                                         const aredis_reply *r, void *ud)
{
    (void)p;
    testgot_keep(NULL, r, ud);
}

/* Run one command (aredis_command's format) and wait up to 3 s for its
 * reply, kept in *g (cleared first). */
static inline void testgot_command(aredis_loop *loop, aredis_client *c,
                                   testgot *g, const char *fmt, ...)
{
    testgot_clear(g);
    va_list ap;
    va_start(ap, fmt);
    int rc = aredis_vcommand(c, testgot_keep, g, fmt, ap);
    va_end(ap);
    cr_assert_eq(rc, 0, "%s: submit failed (%d)", fmt, rc);
    cr_assert(testloop_run_until(loop, &g->calls, 3000), "%s timed out", fmt);
}

/* Wait (up to ~30 s) until each of the n testgots has its reply, then a
 * few more loop turns, and assert each got exactly one callback. */
static inline void testgot_wait_all(aredis_loop *loop, testgot *g, size_t n)
{
    for (int spins = 0; spins < 3000; spins++) {
        size_t done = 0;
        for (size_t i = 0; i < n; i++)
            done += g[i].calls > 0;
        if (done == n)
            break;
        aredis_loop_run_once(loop, 10);
    }
    /* A second callback would come in the next turns, if any. */
    for (int spins = 0; spins < 5; spins++)
        aredis_loop_run_once(loop, 1);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(g[i].calls, 1, "command %zu: %d callbacks", i, g[i].calls);
}

/* A message the library cut to fit its buffer (a long server error) ends
 * with "..." after a prefix of `whole`, the text it quoted (NULL: not
 * checked), and never splits a UTF-8 character. */
static inline void testclient_cut_cleanly(const char *msg, const char *whole)
{
    size_t n = strlen(msg);
    cr_assert_geq(n, 3);
    cr_assert_str_eq(msg + n - 3, "...", "not marked as cut: %s", msg);
    const unsigned char *p = (const unsigned char *)msg;
    while (*p != 0) {
        cr_assert(*p < 0x80 || *p >= 0xC0, "a character split: %s", msg);
        int k = *p < 0x80 ? 0 : *p >= 0xF0 ? 3 : *p >= 0xE0 ? 2 : 1;
        p++;
        for (int i = 0; i < k; i++, p++)
            cr_assert_eq(*p & 0xC0, 0x80, "a character split: %s", msg);
    }
    if (whole != NULL)
        cr_assert_eq(strncmp(msg, whole, n - 3), 0, "not a prefix: %s", msg);
}

/* How an aredis_scan() walk ended, as testscan_done saw it. */
typedef struct testscan_end {
    int calls;     /* runs of the done callback: 0 while the walk goes on */
    int status;    /* AREDIS_SCAN_FINISHED, AREDIS_SCAN_STOPPED or an error */
    char err[256]; /* for an error, the text of the error reply */
} testscan_end;

/* An aredis_scan_done_cb that keeps how the walk ended, checking that a
 * failure (a negative status), and only a failure, carries an error reply.
 * ud is the walk's state (the batch and element callbacks get the same),
 * which must begin with a testscan_end. */
static inline void testscan_done(aredis_client *c, int status,
                                 const aredis_reply *err, void *ud)
{
    (void)c;
    testscan_end *end = ud;
    end->calls++;
    end->status = status;
    if (status < 0) {
        cr_assert_not_null(err, "a failure carries its error reply");
        cr_assert_eq(err->type, AREDIS_REPLY_ERROR);
        snprintf(end->err, sizeof end->err, "%.*s", (int)err->len, err->str);
    } else {
        cr_assert_null(err);
    }
}

#endif /* AREDIS_TESTS_TESTCLIENT_H */
