/* Locks under real faults (include/aredis/lock.h): the replicated mode
 * against a master and a replica whose replication link runs through the
 * fault proxy, kill -9 of the master with a failover by hand (REPLICAOF NO
 * ONE), and the watchdog when its server stops.
 *
 *   - replica link black-holed: the replica never acknowledges, so every
 *     replicated acquire fails with AREDIS_ENOREPLICAS and its key is
 *     deleted again (3 rounds);
 *   - healthy link: the acquire succeeds, the master is killed, the
 *     replica promoted, and a second client is refused there: the
 *     acknowledged key survived the failover (3 rounds, fresh servers);
 *   - kill -9 while WAIT pends: the acquire's callback runs exactly once,
 *     with an error, never "acquired" (3 rounds);
 *   - the watchdog reports the loss once, within the TTL, when its server
 *     stops.
 *
 * Every server is private to the test (tests/support/faults.h). Each
 * scenario prints a "LOCKFAULT ..." line with what it saw. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "aredis/aredis.h"
#include "faults.h"

/* A blocking command on a loopback port (testenv); the reply is borrowed
 * until the connection is closed. */
static const aredis_reply *blocking_cmd(testenv_conn *tc, int port,
                                        const char *fmt, const char *a)
{
    testenv_server s;
    memset(&s, 0, sizeof s);
    snprintf(s.host, sizeof s.host, "127.0.0.1");
    s.port = port;
    cr_assert_eq(testenv_connect(tc, &s), 0, "%s", testenv_errstr());
    const aredis_reply *r = NULL;
    cr_assert_eq(testenv_command(tc, &r, fmt, a), 0, "%s", testenv_errstr());
    return r;
}

static int info_has(int port, const char *what)
{
    testenv_conn tc;
    const aredis_reply *r = blocking_cmd(&tc, port, "INFO %s", "replication");
    int yes = r->type == AREDIS_REPLY_STRING || r->type == AREDIS_REPLY_VERB
                  ? strstr(r->str, what) != NULL
                  : 0;
    testenv_close(&tc);
    return yes;
}

static int key_exists(int port, const char *key)
{
    testenv_conn tc;
    const aredis_reply *r = blocking_cmd(&tc, port, "EXISTS %s", key);
    cr_assert_eq(r->type, AREDIS_REPLY_INTEGER);
    int yes = (int)r->integer;
    testenv_close(&tc);
    return yes;
}

/* A master, the proxy in front of it, and a replica replicating through
 * the proxy; returns when the replication link is up. */
typedef struct pair {
    faults_server m, r;
    faults_proxy px;
} pair;

static void pair_start(pair *p)
{
    cr_assert_eq(faults_server_start(&p->m, "lockm", NULL, 0, 0), 0, "%s",
                 testenv_errstr());
    cr_assert_eq(faults_proxy_start(&p->px, p->m.s.port), 0, "%s",
                 testenv_errstr());
    char extra[96];
    snprintf(extra, sizeof extra, "--replicaof 127.0.0.1 %d", p->px.port);
    cr_assert_eq(faults_server_start(&p->r, "lockr", extra, 0, 0), 0, "%s",
                 testenv_errstr());
    int64_t end = testenv_now_ms() + 20000;
    while (!(info_has(p->r.s.port, "master_link_status:up") &&
             info_has(p->m.s.port, "state=online")) &&
           testenv_now_ms() < end)
        usleep(20000);
    cr_assert(info_has(p->r.s.port, "master_link_status:up"),
              "the replica never synchronised");
}

static void pair_stop(pair *p)
{
    faults_server_stop(&p->r);
    faults_server_stop(&p->m);
    faults_proxy_stop(&p->px);
}

typedef struct done {
    int calls;
    int status;
    int64_t at_ms;
} done;

static void on_done(aredis_lock *l, int status, void *ud)
{
    (void)l;
    done *d = ud;
    d->calls++;
    d->status = status;
    d->at_ms = testenv_now_ms();
}

static int flag_set(const void *arg)
{
    return ((const done *)arg)->calls > 0;
}

static aredis_client *client_on(aredis_loop *loop, int port)
{
    aredis_status st;
    aredis_client *c = aredis_client_new(
        loop,
        &(aredis_options){.host = "127.0.0.1",
                          .port = port,
                          .reconnect_max_attempts = AREDIS_NO_RECONNECT},
        &st);
    cr_assert_not_null(c, "%s", st.msg);
    return c;
}

static aredis_lock *replicated(aredis_client *c, const char *name,
                               int64_t wait_ms)
{
    aredis_status st;
    aredis_lock *l = aredis_lock_new(c, name,
                                     &(aredis_lock_options){
                                         .ttl_ms = 10000,
                                         .replicas = 1,
                                         .wait_timeout_ms = wait_ms,
                                         .fence = 1,
                                     },
                                     &st);
    cr_assert_not_null(l, "%s", st.msg);
    return l;
}

Test(lock_faults, replica_link_blackholed_acquire_fails_and_key_is_gone)
{
    pair p;
    pair_start(&p);
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client_on(loop, p.m.s.port);
    /* Healthy first: the same acquire succeeds, so a failure below is the
     * black hole's doing. (A generous WAIT here: a loaded machine may take
     * a while to acknowledge.) */
    aredis_lock *h = replicated(c, "bh", 5000);
    done d = {0};
    cr_assert_eq(aredis_lock_acquire(h, 0, on_done, &d), 0);
    cr_assert(faults_run_until(loop, flag_set, &d, 10000));
    cr_assert_eq(d.status, 0, "healthy: %s", aredis_err_name(d.status));
    d = (done){0};
    cr_assert_eq(aredis_lock_release(h, on_done, &d), 0);
    cr_assert(faults_run_until(loop, flag_set, &d, 5000));
    aredis_lock_free(h);
    aredis_lock *l = replicated(c, "bh", 200);

    cr_assert_eq(faults_proxy_ctl(&p.px, "drop on", NULL, 0), 0, "%s",
                 testenv_errstr());
    int failed = 0;
    for (int round = 0; round < 3; round++) {
        d = (done){0};
        cr_assert_eq(aredis_lock_acquire(l, 0, on_done, &d), 0);
        cr_assert(faults_run_until(loop, flag_set, &d, 5000));
        faults_run_for(loop, 50);
        cr_assert_eq(d.calls, 1);
        int gone = !key_exists(p.m.s.port, aredis_lock_key(l));
        fprintf(stderr,
                "LOCKFAULT black-holed replica link, round %d: %s, key %s\n",
                round + 1, aredis_err_name(d.status),
                gone ? "gone" : "STILL THERE");
        cr_assert_eq(d.status, AREDIS_ENOREPLICAS);
        cr_assert(gone, "the key was deleted again");
        cr_assert_eq(aredis_lock_held(l), 0);
        failed++;
    }
    fprintf(stderr, "LOCKFAULT black-holed: acquire failed %d/3\n", failed);
    aredis_lock_free(l);
    faults_run_for(loop, 20);
    aredis_client_free(c);
    aredis_loop_free(loop);
    pair_stop(&p);
}

Test(lock_faults, acknowledged_lock_survives_kill9_and_promotion)
{
    int refused = 0;
    for (int round = 0; round < 3; round++) {
        pair p;
        pair_start(&p);
        aredis_loop *loop = aredis_loop_new();
        aredis_client *c = client_on(loop, p.m.s.port);
        aredis_lock *l = replicated(c, "fo", 5000);
        done d = {0};
        cr_assert_eq(aredis_lock_acquire(l, 0, on_done, &d), 0);
        cr_assert(faults_run_until(loop, flag_set, &d, 10000));
        cr_assert_eq(d.status, 0, "%s", aredis_err_name(d.status));

        cr_assert_eq(faults_server_kill9(&p.m), 0, "%s", testenv_errstr());
        testenv_conn tc;
        const aredis_reply *r =
            blocking_cmd(&tc, p.r.s.port, "REPLICAOF NO %s", "ONE");
        cr_assert_eq(r->type, AREDIS_REPLY_STATUS);
        testenv_close(&tc);

        aredis_client *c2 = client_on(loop, p.r.s.port);
        aredis_lock *l2 = replicated(c2, "fo", 1000);
        done d2 = {0};
        cr_assert_eq(aredis_lock_acquire(l2, 0, on_done, &d2), 0);
        cr_assert(faults_run_until(loop, flag_set, &d2, 5000));
        fprintf(stderr,
                "LOCKFAULT kill -9 + promotion, round %d: second client %s\n",
                round + 1,
                d2.status == AREDIS_EBUSY ? "refused"
                                          : aredis_err_name(d2.status));
        cr_assert_eq(d2.status, AREDIS_EBUSY, "refused on the new master");
        refused++;
        aredis_lock_free(l2);
        aredis_lock_free(l);
        faults_run_for(loop, 50);
        aredis_client_free(c2);
        aredis_client_free(c);
        aredis_loop_free(loop);
        pair_stop(&p);
    }
    fprintf(stderr, "LOCKFAULT after promotion: refused %d/3\n", refused);
}

Test(lock_faults, kill9_while_wait_pends_completes_once_with_an_error)
{
    int errors = 0;
    for (int round = 0; round < 3; round++) {
        pair p;
        pair_start(&p);
        cr_assert_eq(faults_proxy_ctl(&p.px, "drop on", NULL, 0), 0);
        aredis_loop *loop = aredis_loop_new();
        aredis_client *c = client_on(loop, p.m.s.port);
        aredis_lock *l = replicated(c, "k9", 5000);
        done d = {0};
        cr_assert_eq(aredis_lock_acquire(l, 0, on_done, &d), 0);
        faults_run_for(loop, 300);
        cr_assert_eq(d.calls, 0, "WAIT is pending");
        cr_assert_eq(faults_server_kill9(&p.m), 0, "%s", testenv_errstr());
        cr_assert(faults_run_until(loop, flag_set, &d, 5000));
        faults_run_for(loop, 300);
        fprintf(stderr,
                "LOCKFAULT kill -9 during WAIT, round %d: %d call, %s\n",
                round + 1, d.calls, aredis_err_name(d.status));
        cr_assert_eq(d.calls, 1, "exactly once");
        cr_assert_neq(d.status, 0, "never acquired");
        cr_assert_eq(aredis_lock_held(l), 0);
        errors++;
        aredis_lock_free(l);
        faults_run_for(loop, 50);
        aredis_client_free(c);
        aredis_loop_free(loop);
        pair_stop(&p);
    }
    fprintf(stderr, "LOCKFAULT kill -9 during WAIT: one error callback %d/3\n",
            errors);
}

Test(lock_faults, watchdog_reports_the_loss_once_when_the_server_stops)
{
    for (int round = 0; round < 3; round++) {
        faults_server s;
        cr_assert_eq(faults_server_start(&s, "lockwd", NULL, 0, 0), 0, "%s",
                     testenv_errstr());
        aredis_loop *loop = aredis_loop_new();
        aredis_client *c = client_on(loop, s.s.port);
        done lost = {0};
        aredis_lock *l = aredis_lock_new(c, "wd",
                                         &(aredis_lock_options){
                                             .ttl_ms = 300,
                                             .watchdog = 1,
                                             .on_lost = on_done,
                                             .lost_ud = &lost,
                                         },
                                         NULL);
        cr_assert_not_null(l);
        done d = {0};
        cr_assert_eq(aredis_lock_acquire(l, 0, on_done, &d), 0);
        cr_assert(faults_run_until(loop, flag_set, &d, 5000));
        cr_assert_eq(d.status, 0);
        faults_run_for(loop, 700);
        cr_assert_eq(lost.calls, 0, "kept alive meanwhile");
        int64_t left = aredis_lock_validity_ms(l);
        int64_t t0 = testenv_now_ms();
        cr_assert_eq(faults_server_stop(&s), 0, "%s", testenv_errstr());
        cr_assert(faults_run_until(loop, flag_set, &lost, 5000),
                  "the loss was reported");
        int64_t after = lost.at_ms - t0;
        faults_run_for(loop, 400);
        fprintf(stderr,
                "LOCKFAULT watchdog, server stopped, round %d: lost reported "
                "once after %lld ms (%s; validity left at the stop %lld ms, "
                "TTL 300)\n",
                round + 1, (long long)after, aredis_err_name(lost.status),
                (long long)left);
        cr_assert_eq(lost.calls, 1, "once");
        cr_assert_leq(after, left + 250,
                      "reported when the validity ran out: %lld ms",
                      (long long)after);
        aredis_lock_free(l);
        faults_run_for(loop, 20);
        aredis_client_free(c);
        aredis_loop_free(loop);
    }
}
