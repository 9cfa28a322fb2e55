/* The fault tests' asserting forms of faults.h's submit and wait
 * (Criterion; header-only): a submit that must be taken, and a wait for
 * every tracked command that fails the test with the ones still waiting,
 * and the checks every fault test ends with. */
#ifndef AREDIS_TESTS_FAULTSCHECK_H
#define AREDIS_TESTS_FAULTSCHECK_H

#include <criterion/criterion.h>
#include <stdarg.h>

#include "aredis/aredis.h"
#include "faults.h"
#include "testenv.h"

/* faults_vsend(), asserting the submit itself worked: the index. */
static inline int faults_send_ok(faults_track *t, aredis_client *c,
                                 const aredis_cmd_opts *o, const char *fmt, ...)
    AREDIS_PRINTF(4, 5);

static inline int faults_send_ok(faults_track *t, aredis_client *c,
                                 const aredis_cmd_opts *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int i = faults_vsend(t, c, o, fmt, ap);
    va_end(ap);
    cr_assert_geq(i, 0, "submit of \"%s\" failed: %s", fmt, aredis_err_name(i));
    return i;
}

/* Every tracked command completed within timeout_ms, or the test fails
 * naming those still waiting. */
static inline void faults_wait_all(aredis_loop *loop, const faults_track *t,
                                   int timeout_ms)
{
    char pend[512];
    if (faults_wait_track(loop, t, timeout_ms))
        return;
    faults_track_pending_str(t, pend, sizeof pend);
    cr_assert_fail("commands still waiting after %d ms: %s", timeout_ms, pend);
}

/* The end of a fault test: every tracked callback ran once with a reply,
 * nothing is left pending; the client, the loop and the server go. */
static inline void faults_end(const faults_track *t, aredis_client *c,
                              aredis_loop *loop, faults_server *srv)
{
    cr_assert_eq(t->twice, 0, "callbacks ran twice");
    cr_assert_eq(t->null_replies, 0, "callbacks with a NULL reply");
    cr_assert_eq(t->completed, t->sent);
    cr_assert_eq(aredis_client_pending(c), 0);
    aredis_client_free(c);
    aredis_loop_free(loop);
    cr_assert_eq(faults_server_stop(srv), 0, "%s", testenv_errstr());
}

#endif /* AREDIS_TESTS_FAULTSCHECK_H */
