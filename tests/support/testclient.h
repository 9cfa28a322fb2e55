/* Client fixtures shared by the integration tests (tests/support).
 *
 * On top of testloop.h (the loop under test) and Criterion: a client on a
 * URL, a reply kept by a callback, one command run to its reply, and the end
 * of a test (nothing left in flight, the client and the loop freed). Every
 * wait has a deadline in real time, so a test can fail but never hang.
 * Header-only, like testloop.h, whose per-process state it uses. */
#ifndef AREDIS_TESTS_TESTCLIENT_H
#define AREDIS_TESTS_TESTCLIENT_H

#include <criterion/criterion.h>
#include <stdarg.h>
#include <string.h>

#include "aredis/aredis.h"
#include "testenv.h"
#include "testloop.h"

/* For a suite's .init: load the standalone fixture server into *srv and,
 * when url is not NULL, write its URL on database db into url[cap]. The
 * test fails when the server is not there. */
static inline void testclient_standalone(testenv_server *srv, char *url,
                                         size_t cap, int db)
{
    cr_assert_eq(testenv_server_load(srv, "standalone"), 0, "%s",
                 testenv_errstr());
    if (url != NULL)
        testenv_url(url, cap, srv, db);
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

#endif /* AREDIS_TESTS_TESTCLIENT_H */
