/* Integration tests of locks (include/aredis/lock.h) against the real
 * standalone server: acquire and release by the token holder only, the
 * three distinct refusals (not owned any more, never acquired, outcome
 * unknown is covered by tests/faults/test_lock_faults.c), expiry while
 * held, extend by adding and by replacing, fencing tokens that only grow,
 * timeouts honoured with one last attempt at the deadline, a poll interval
 * longer than the timeout refused, hand-off by notification (woken, not
 * polled, on RESP3 and RESP2), fair mode refusing a releaser that barges,
 * the watchdog, the client or the handle freed while an acquire waits,
 * the blocking facade, and several processes incrementing a plain key
 * under the lock (exact count; fencing tokens strictly increasing in
 * acquisition order), fair and not.
 *
 * Each test's lock names carry this process's pid (testenv_key), so tests
 * running beside each other never share a lock. Figures (hand-off
 * latency, timeout precision, waits under contention) are printed as
 * "LOCK ..." lines, never asserted: performance is measured in
 * benchmarks (bench/lock.sh), not in timed tests. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "aredis/aredis.h"
#include "testenv.h"

static testenv_server srv;
static char url[128];

static void setup(void)
{
    cr_assert_eq(testenv_server_load(&srv, "standalone"), 0, "%s",
                 testenv_errstr());
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", srv.port);
}

TestSuite(lock, .init = setup);

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int run_until(aredis_loop *loop, const int *flag, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    while (!*flag && now_ms() < end)
        aredis_loop_run_once(loop, 5);
    return *flag;
}

static void run_for(aredis_loop *loop, int ms)
{
    int never = 0;
    run_until(loop, &never, ms);
}

static aredis_client *client(aredis_loop *loop, int protocol)
{
    aredis_status st;
    aredis_client *c = aredis_client_new(
        loop, &(aredis_options){.url = url, .protocol = protocol}, &st);
    cr_assert_not_null(c, "%s", st.msg);
    return c;
}

static aredis_lock *lock_new(aredis_client *c, const char *name,
                             aredis_lock_options o)
{
    aredis_status st;
    aredis_lock *l = aredis_lock_new(c, name, &o, &st);
    cr_assert_not_null(l, "%s", st.msg);
    return l;
}

/* One callback's record. */
typedef struct done {
    int calls;
    int status;
    int64_t at_ms;
    double at_us;
} done;

static void on_done(aredis_lock *l, int status, void *ud)
{
    (void)l;
    done *d = ud;
    d->calls++;
    d->status = status;
    d->at_ms = now_ms();
    d->at_us = now_us();
}

/* Start op, wait for its callback, return its status. */
static int wait_done(aredis_loop *loop, done *d, int e, int timeout_ms)
{
    cr_assert_eq(e, 0, "the call was refused: %s", aredis_err_name(e));
    cr_assert(run_until(loop, &d->calls, timeout_ms), "no callback in %d ms",
              timeout_ms);
    return d->status;
}

static int acquire(aredis_loop *loop, aredis_lock *l, int64_t timeout)
{
    done d = {0};
    return wait_done(loop, &d, aredis_lock_acquire(l, timeout, on_done, &d),
                     (int)(timeout > 0 ? timeout : 0) + 5000);
}

static int release(aredis_loop *loop, aredis_lock *l)
{
    done d = {0};
    return wait_done(loop, &d, aredis_lock_release(l, on_done, &d), 5000);
}

static int extend(aredis_loop *loop, aredis_lock *l, int64_t ms, int how)
{
    done d = {0};
    return wait_done(loop, &d, aredis_lock_extend(l, ms, how, on_done, &d),
                     5000);
}

/* A command's reply, owned. */
typedef struct got {
    int calls;
    aredis_reply *r;
} got;

static void keep(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    got *g = ud;
    g->calls++;
    aredis_reply_free(g->r);
    g->r = aredis_reply_dup(r);
}

static aredis_reply *cmd(aredis_loop *loop, aredis_client *c, const char *fmt,
                         const char *a)
{
    got g = {0};
    cr_assert_eq(aredis_command(c, keep, &g, fmt, a), 0);
    cr_assert(run_until(loop, &g.calls, 5000), "%s timed out", fmt);
    return g.r;
}

static long long cmd_int(aredis_loop *loop, aredis_client *c, const char *fmt,
                         const char *a)
{
    aredis_reply *r = cmd(loop, c, fmt, a);
    cr_assert_eq(r->type, AREDIS_REPLY_INTEGER, "%s: %s", fmt,
                 r->type == AREDIS_REPLY_ERROR ? r->str : "not an integer");
    long long v = r->integer;
    aredis_reply_free(r);
    return v;
}

/* GET key equals want (NULL: the key does not exist). */
static void assert_value(aredis_loop *loop, aredis_client *c, const char *key,
                         const char *want)
{
    aredis_reply *r = cmd(loop, c, "GET %s", key);
    if (want == NULL)
        cr_assert_eq(r->type, AREDIS_REPLY_NIL, "%s should be gone", key);
    else
        cr_assert(r->type == AREDIS_REPLY_STRING && strcmp(r->str, want) == 0,
                  "%s should hold %s", key, want);
    aredis_reply_free(r);
}

static void finish(aredis_loop *loop, aredis_client *c1, aredis_client *c2)
{
    run_for(loop, 20);
    aredis_client_free(c1);
    aredis_client_free(c2);
    aredis_loop_free(loop);
}

Test(lock, acquire_release_by_the_holder_only)
{
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client(loop, 0), *c2 = client(loop, 0);
    char name[64];
    testenv_key(name, sizeof name, "basic");
    aredis_lock *a = lock_new(c, name, (aredis_lock_options){.ttl_ms = 5000});
    aredis_lock *b = lock_new(c2, name, (aredis_lock_options){.ttl_ms = 5000});
    char key[80];
    snprintf(key, sizeof key, "{%s}", name);
    cr_assert_str_eq(aredis_lock_key(a), key, "the name in a hash tag");

    cr_assert_eq(aredis_lock_held(a), 0);
    cr_assert_eq(acquire(loop, a, 0), 0);
    cr_assert_eq(aredis_lock_held(a), 1);
    int64_t v = aredis_lock_validity_ms(a);
    cr_assert(v > 4000 && v <= 5000, "validity %lld", (long long)v);
    cr_assert_eq(strlen(aredis_lock_token(a)), 32);
    assert_value(loop, c2, key, aredis_lock_token(a));
    long long pttl = cmd_int(loop, c2, "PTTL %s", key);
    cr_assert(pttl > 4000 && pttl <= 5000, "PTTL %lld", pttl);

    /* Someone else: refused at once with timeout 0, and their release is
     * refused too, with its own code, leaving the key alone. */
    cr_assert_eq(acquire(loop, b, 0), AREDIS_EBUSY);
    cr_assert_eq(aredis_lock_release(b, on_done, NULL), AREDIS_ENOTHELD);
    cr_assert_eq(
        aredis_lock_extend(b, 100, AREDIS_LOCK_EXTEND_ADD, on_done, NULL),
        AREDIS_ENOTHELD);
    cr_assert_eq(aredis_lock_acquire(a, 0, on_done, NULL), AREDIS_ESTATE,
                 "held already");
    assert_value(loop, c2, key, aredis_lock_token(a));

    cr_assert_eq(release(loop, a), 0);
    cr_assert_eq(aredis_lock_held(a), 0);
    assert_value(loop, c2, key, NULL);
    cr_assert_eq(aredis_lock_release(a, on_done, NULL), AREDIS_ENOTHELD,
                 "released already");
    cr_assert_eq(acquire(loop, b, 0), 0, "free again");
    cr_assert_str_neq(aredis_lock_token(a), aredis_lock_token(b));
    cr_assert_eq(release(loop, b), 0);
    aredis_lock_free(a);
    aredis_lock_free(b);
    finish(loop, c, c2);
}

Test(lock, names_with_a_hash_tag_are_kept)
{
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client(loop, 0);
    char name[80], k[64];
    snprintf(name, sizeof name, "app{%s}", testenv_key(k, sizeof k, "tag"));
    aredis_lock *l = lock_new(c, name, (aredis_lock_options){.fence = 1});
    cr_assert_str_eq(aredis_lock_key(l), name);
    cr_assert_eq(acquire(loop, l, 0), 0);
    char fence[128];
    snprintf(fence, sizeof fence, "%s:fence", name);
    assert_value(loop, c, fence, "1");
    cr_assert_eq(release(loop, l), 0);
    aredis_status st;
    cr_assert_null(aredis_lock_new(c, "", NULL, &st));
    cr_assert_eq(st.code, AREDIS_EINVAL);
    cr_assert_null(
        aredis_lock_new(c, "x", &(aredis_lock_options){.ttl_ms = -1}, &st));
    cr_assert_eq(st.code, AREDIS_EINVAL);
    cr_assert_null(aredis_lock_new(
        c, "x",
        &(aredis_lock_options){
            .ttl_ms = 100, .replicas = 1, .wait_timeout_ms = 100},
        &st));
    cr_assert_eq(st.code, AREDIS_EINVAL, "WAIT must end before the TTL");
    aredis_lock_free(l);
    finish(loop, c, NULL);
}

static void on_borrowed(aredis_client *c, aredis_exclusive *x, int status,
                        void *ud)
{
    (void)c;
    cr_assert_eq(status, 0, "%s", aredis_err_name(status));
    *(aredis_exclusive **)ud = x;
}

/* A replicated acquire that cannot get a connection says so, with a code
 * of its own: AREDIS_EBUSY would tell the caller the lock is held. */
Test(lock, replicated_acquire_without_a_connection_is_not_busy)
{
    aredis_loop *loop = aredis_loop_new();
    aredis_status st;
    aredis_client *c = aredis_client_new(
        loop, &(aredis_options){.url = url, .pool_max = 1, .pool_wait_ms = 100},
        &st);
    cr_assert_not_null(c, "%s", st.msg);
    aredis_exclusive *x = NULL;
    cr_assert_eq(aredis_client_acquire(c, on_borrowed, &x), 0);
    int64_t until = now_ms() + 3000;
    while (x == NULL && now_ms() < until)
        aredis_loop_run_once(loop, 5);
    cr_assert_not_null(x);
    char name[64];
    testenv_key(name, sizeof name, "lock-nopool");
    aredis_lock *l =
        lock_new(c, name,
                 (aredis_lock_options){
                     .ttl_ms = 5000, .replicas = 1, .wait_timeout_ms = 100});
    cr_assert_eq(acquire(loop, l, 0), AREDIS_EPOOL);
    aredis_exclusive_release(x);
    aredis_lock_free(l);
    finish(loop, c, NULL);
}

Test(lock, expiry_while_held_then_release_refused_as_lost)
{
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client(loop, 0), *c2 = client(loop, 0);
    char name[64];
    testenv_key(name, sizeof name, "expiry");
    aredis_lock *a = lock_new(c, name, (aredis_lock_options){.ttl_ms = 100});
    aredis_lock *b = lock_new(c2, name, (aredis_lock_options){.ttl_ms = 5000});
    cr_assert_eq(acquire(loop, a, 0), 0);
    run_for(loop, 250);
    cr_assert_leq(aredis_lock_validity_ms(a), 0, "the validity ran out");
    cr_assert_eq(aredis_lock_held(a), 0, "an expired lock is not held");
    assert_value(loop, c2, aredis_lock_key(a), NULL);
    cr_assert_eq(acquire(loop, b, 0), 0, "expired: free for others");
    /* The old holder is refused, with "not owned any more", and does not
     * touch the new holder's key. */
    cr_assert_eq(extend(loop, a, 1000, AREDIS_LOCK_EXTEND_REPLACE),
                 AREDIS_ELOCKLOST);
    cr_assert_eq(release(loop, a), AREDIS_ELOCKLOST);
    assert_value(loop, c2, aredis_lock_key(b), aredis_lock_token(b));
    cr_assert_eq(aredis_lock_release(a, on_done, NULL), AREDIS_ENOTHELD,
                 "the refusal spent the token");
    cr_assert_eq(release(loop, b), 0);
    aredis_lock_free(a);
    aredis_lock_free(b);
    finish(loop, c, c2);
}

/* Once its validity has run out a handle holds nothing, says so, and may
 * acquire again (a new token) without a release first. */
Test(lock, expired_handle_acquires_again)
{
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client(loop, 0);
    char name[64];
    testenv_key(name, sizeof name, "reacquire");
    aredis_lock *a = lock_new(c, name, (aredis_lock_options){.ttl_ms = 100});
    cr_assert_eq(acquire(loop, a, 0), 0);
    char first[64];
    snprintf(first, sizeof first, "%s", aredis_lock_token(a));
    run_for(loop, 250);
    cr_assert_eq(aredis_lock_held(a), 0);
    cr_assert_eq(acquire(loop, a, 1000), 0, "not refused as held already");
    cr_assert_eq(aredis_lock_held(a), 1);
    cr_assert_str_neq(aredis_lock_token(a), first, "a new token");
    assert_value(loop, c, aredis_lock_key(a), aredis_lock_token(a));
    cr_assert_eq(release(loop, a), 0);
    aredis_lock_free(a);
    finish(loop, c, NULL);
}

Test(lock, extend_by_adding_and_by_replacing)
{
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client(loop, 0);
    char name[64];
    testenv_key(name, sizeof name, "extend");
    aredis_lock *l = lock_new(c, name, (aredis_lock_options){.ttl_ms = 1000});
    cr_assert_eq(aredis_lock_extend(l, 100, 7, on_done, NULL), AREDIS_EINVAL);
    cr_assert_eq(acquire(loop, l, 0), 0);
    cr_assert_eq(extend(loop, l, 5000, AREDIS_LOCK_EXTEND_ADD), 0);
    long long pttl = cmd_int(loop, c, "PTTL %s", aredis_lock_key(l));
    cr_assert(pttl > 5500 && pttl <= 6000, "added: PTTL %lld", pttl);
    int64_t v = aredis_lock_validity_ms(l);
    cr_assert(v > 5500 && v <= 6000, "validity %lld", (long long)v);
    cr_assert_eq(extend(loop, l, 2000, AREDIS_LOCK_EXTEND_REPLACE), 0);
    pttl = cmd_int(loop, c, "PTTL %s", aredis_lock_key(l));
    cr_assert(pttl > 1500 && pttl <= 2000, "replaced: PTTL %lld", pttl);
    v = aredis_lock_validity_ms(l);
    cr_assert(v > 1500 && v <= 2000, "validity %lld", (long long)v);
    cr_assert_eq(release(loop, l), 0);
    aredis_lock_free(l);
    finish(loop, c, NULL);
}

Test(lock, fencing_tokens_only_grow)
{
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client(loop, 0), *c2 = client(loop, 2);
    char name[64];
    testenv_key(name, sizeof name, "fence");
    aredis_lock *a =
        lock_new(c, name, (aredis_lock_options){.ttl_ms = 100, .fence = 1});
    aredis_lock *b =
        lock_new(c2, name, (aredis_lock_options){.ttl_ms = 5000, .fence = 1});
    long long last = 0;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(acquire(loop, a, 0), 0);
        cr_assert_gt(aredis_lock_fence(a), last);
        last = aredis_lock_fence(a);
        cr_assert_eq(release(loop, a), 0);
    }
    /* A stale holder: its lock expires while it still believes in it. */
    cr_assert_eq(acquire(loop, a, 0), 0);
    long long stale = aredis_lock_fence(a);
    run_for(loop, 250);
    cr_assert_eq(acquire(loop, b, 0), 0);
    cr_assert_gt(aredis_lock_fence(b), stale,
                 "the stale holder's token is below the current one");
    cr_assert_eq(release(loop, b), 0);
    cr_assert_eq(release(loop, a), AREDIS_ELOCKLOST);
    aredis_lock_free(a);
    aredis_lock_free(b);
    finish(loop, c, c2);
}

Test(lock, timeout_honoured_never_early)
{
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client(loop, 0), *c2 = client(loop, 0);
    char name[64];
    testenv_key(name, sizeof name, "timeout");
    aredis_lock *a = lock_new(c, name, (aredis_lock_options){.ttl_ms = 10000});
    aredis_lock *b = lock_new(c2, name, (aredis_lock_options){.poll_ms = 50});
    cr_assert_eq(acquire(loop, a, 0), 0);
    for (int i = 0; i < 3; i++) {
        done d = {0};
        int64_t t0 = now_ms();
        cr_assert_eq(
            wait_done(loop, &d, aredis_lock_acquire(b, 200, on_done, &d), 5000),
            AREDIS_ETIMEDOUT);
        int64_t took = d.at_ms - t0;
        aredis_lock_stats st;
        aredis_lock_get_stats(b, &st);
        fprintf(stderr,
                "LOCK timeout 200 ms: gave up after %lld ms "
                "(attempts %d, polls %d, wakeups %d)\n",
                (long long)took, st.attempts, st.polls, st.wakeups);
        cr_assert_geq(took, 200, "never early: %lld ms", (long long)took);
        cr_assert_geq(st.polls, 3, "polled every 50 ms");
        cr_assert_eq(aredis_lock_held(b), 0);
    }
    cr_assert_eq(release(loop, a), 0);
    aredis_lock_free(a);
    aredis_lock_free(b);
    finish(loop, c, c2);
}

Test(lock, one_last_attempt_at_the_deadline)
{
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client(loop, 0), *c2 = client(loop, 0);
    char name[64];
    testenv_key(name, sizeof name, "deadline");
    /* The holder's key expires (no release, so no notification) at 250 ms;
     * the waiter polls every 400 ms and gives up at 400 ms: only an attempt
     * at the deadline can get it. */
    aredis_lock *a = lock_new(c, name, (aredis_lock_options){.ttl_ms = 250});
    aredis_lock *b = lock_new(c2, name, (aredis_lock_options){.poll_ms = 400});
    cr_assert_eq(acquire(loop, a, 0), 0);
    cr_assert_eq(acquire(loop, b, 400), 0);
    aredis_lock_stats st;
    aredis_lock_get_stats(b, &st);
    cr_assert_eq(st.polls, 1, "acquired by the attempt at the deadline");
    cr_assert_eq(release(loop, b), 0);
    aredis_lock_free(a);
    aredis_lock_free(b);
    finish(loop, c, c2);
}

Test(lock, poll_interval_longer_than_the_timeout_is_refused)
{
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client(loop, 0);
    char name[64];
    testenv_key(name, sizeof name, "poll");
    aredis_lock *l = lock_new(c, name, (aredis_lock_options){.poll_ms = 500});
    cr_assert_eq(aredis_lock_acquire(l, 100, on_done, NULL), AREDIS_EINVAL);
    cr_assert_eq(aredis_lock_held(l), 0);
    cr_assert_eq(acquire(loop, l, 500), 0, "equal is fine");
    cr_assert_eq(release(loop, l), 0);
    cr_assert_eq(acquire(loop, l, -1), 0, "no limit is fine");
    cr_assert_eq(release(loop, l), 0);
    aredis_lock_free(l);
    finish(loop, c, NULL);
}

/* B waits for A's lock with a poll interval far longer than the test; A
 * releases; B must have been woken by the release, not by a poll. Returns
 * the hand-off time in microseconds (release call to B's callback). */
static double handoff_once(aredis_loop *loop, aredis_lock *a, aredis_lock *b)
{
    cr_assert_eq(acquire(loop, a, 0), 0);
    done d = {0};
    cr_assert_eq(aredis_lock_acquire(b, 60000, on_done, &d), 0);
    /* Until B has subscribed and tried again after the confirmation. */
    aredis_lock_stats st = {0};
    int64_t end = now_ms() + 5000;
    while (st.attempts < 2 && now_ms() < end) {
        aredis_loop_run_once(loop, 5);
        aredis_lock_get_stats(b, &st);
    }
    cr_assert_eq(st.attempts, 2, "B is waiting");
    run_for(loop, 10);
    cr_assert_eq(d.calls, 0);
    double t0 = now_us();
    cr_assert_eq(aredis_lock_release(a, NULL, NULL), 0);
    cr_assert(run_until(loop, &d.calls, 5000));
    cr_assert_eq(d.status, 0);
    aredis_lock_get_stats(b, &st);
    cr_assert_eq(st.polls, 0, "woken, not polled");
    cr_assert_geq(st.wakeups, 2, "the confirmation and the release");
    cr_assert_eq(release(loop, b), 0);
    return d.at_us - t0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void handoff(int protocol)
{
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client(loop, protocol), *c2 = client(loop, protocol);
    char name[64];
    testenv_key(name, sizeof name, protocol == 2 ? "handoff2" : "handoff3");
    aredis_lock *a = lock_new(c, name, (aredis_lock_options){0});
    aredis_lock *b =
        lock_new(c2, name, (aredis_lock_options){.poll_ms = 60000});
    enum { REPS = 30 };
    double us[REPS];
    for (int i = 0; i < REPS; i++)
        us[i] = handoff_once(loop, a, b);
    qsort(us, REPS, sizeof *us, cmp_double);
    fprintf(stderr,
            "LOCK hand-off RESP%d (debug build, same loop): p50 %.0f us, "
            "max %.0f us over %d\n",
            protocol == 2 ? 2 : 3, us[REPS / 2], us[REPS - 1], REPS);
    aredis_lock_free(a);
    aredis_lock_free(b);
    finish(loop, c, c2);
}

Test(lock, handoff_by_notification_resp3)
{
    handoff(0);
}

Test(lock, handoff_by_notification_resp2)
{
    handoff(2);
}

/* Fair mode: a waiter queued behind the holder gets the lock; the holder
 * releasing and trying again at once is refused. */
Test(lock, fair_mode_refuses_the_releaser_barging)
{
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client(loop, 0), *c2 = client(loop, 0);
    char name[64];
    testenv_key(name, sizeof name, "fair");
    aredis_lock_options o = {.fair = 1, .poll_ms = 60000};
    aredis_lock *a = lock_new(c, name, o), *b = lock_new(c2, name, o);
    char queue[96];
    snprintf(queue, sizeof queue, "%s:queue", aredis_lock_key(a));
    for (int round = 0; round < 3; round++) {
        cr_assert_eq(acquire(loop, a, 0), 0);
        cr_assert_eq(cmd_int(loop, c, "LLEN %s", queue), 0,
                     "a try-once attempt does not queue");
        done d = {0};
        cr_assert_eq(aredis_lock_acquire(b, 60000, on_done, &d), 0);
        int64_t end = now_ms() + 5000;
        while (cmd_int(loop, c, "LLEN %s", queue) != 1 && now_ms() < end)
            run_for(loop, 5);
        cr_assert_eq(cmd_int(loop, c, "LLEN %s", queue), 1, "B queued");
        cr_assert_eq(release(loop, a), 0);
        cr_assert_eq(acquire(loop, a, 0), AREDIS_EBUSY,
                     "the releaser must not barge past the queue");
        cr_assert(run_until(loop, &d.calls, 5000));
        cr_assert_eq(d.status, 0, "B, the head of the queue, got it");
        aredis_lock_stats st;
        aredis_lock_get_stats(b, &st);
        cr_assert_eq(st.polls, 0, "woken, not polled");
        cr_assert_eq(cmd_int(loop, c, "LLEN %s", queue), 0);
        cr_assert_eq(release(loop, b), 0);
    }
    /* A waiter giving up leaves the queue. */
    cr_assert_eq(acquire(loop, a, 0), 0);
    aredis_lock *w = lock_new(c2, name, (aredis_lock_options){.fair = 1});
    cr_assert_eq(acquire(loop, w, 150), AREDIS_ETIMEDOUT);
    run_for(loop, 50);
    cr_assert_eq(cmd_int(loop, c, "LLEN %s", queue), 0, "left the queue");
    cr_assert_eq(release(loop, a), 0);
    aredis_lock_free(w);
    aredis_lock_free(a);
    aredis_lock_free(b);
    finish(loop, c, c2);
}

static void on_lost(aredis_lock *l, int status, void *ud)
{
    on_done(l, status, ud);
}

/* The watchdog keeps a short lock for five times its TTL. 600 ms rather
 * than shorter: it extends every 200 ms, so only a stall of the whole test
 * process of 400 ms (a loaded machine under the sanitizers) could lose it.
 * AREDIS_TEST_WATCHDOG_TTL_MS overrides it (300 is the documented figure). */
Test(lock, watchdog_keeps_a_short_lock)
{
    const char *ttl_env = getenv("AREDIS_TEST_WATCHDOG_TTL_MS");
    int ttl = ttl_env != NULL ? atoi(ttl_env) : 600;
    cr_assert_gt(ttl, 0, "bad AREDIS_TEST_WATCHDOG_TTL_MS");
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client(loop, 0), *c2 = client(loop, 0);
    char name[64];
    testenv_key(name, sizeof name, "watchdog");
    done lost = {0};
    aredis_lock *a = lock_new(c, name,
                              (aredis_lock_options){.ttl_ms = ttl,
                                                    .watchdog = 1,
                                                    .on_lost = on_lost,
                                                    .lost_ud = &lost});
    aredis_lock *b = lock_new(c2, name, (aredis_lock_options){0});
    cr_assert_eq(acquire(loop, a, 0), 0);
    run_for(loop, 3000);
    cr_assert_eq(lost.calls, 0, "not lost");
    cr_assert_eq(aredis_lock_held(a), 1);
    cr_assert_gt(aredis_lock_validity_ms(a), 0);
    cr_assert_eq(acquire(loop, b, 0), AREDIS_EBUSY, "still held after 3 s");
    assert_value(loop, c2, aredis_lock_key(a), aredis_lock_token(a));
    cr_assert_eq(release(loop, a), 0);
    /* Released: the watchdog stops, and reports nothing. */
    run_for(loop, 400);
    cr_assert_eq(lost.calls, 0);
    assert_value(loop, c2, aredis_lock_key(a), NULL);

    /* Taken away behind its back: reported once, as lost. */
    cr_assert_eq(acquire(loop, a, 0), 0);
    aredis_reply_free(cmd(loop, c2, "DEL %s", aredis_lock_key(a)));
    cr_assert(run_until(loop, &lost.calls, 2000));
    cr_assert_eq(lost.status, AREDIS_ELOCKLOST);
    cr_assert_eq(aredis_lock_held(a), 0);
    run_for(loop, 300);
    cr_assert_eq(lost.calls, 1, "once");
    cr_assert_eq(release(loop, a), AREDIS_ELOCKLOST);
    aredis_lock_free(a);
    aredis_lock_free(b);
    finish(loop, c, c2);
}

/* The client freed while an acquire waits: its callback runs once, with
 * AREDIS_ECANCELED; the handle is freed from inside it. */
static void free_in_cb(aredis_lock *l, int status, void *ud)
{
    on_done(l, status, ud);
    aredis_lock_free(l);
}

Test(lock, client_freed_while_an_acquire_waits)
{
    for (int protocol = 2; protocol <= 3; protocol++) {
        aredis_loop *loop = aredis_loop_new();
        aredis_client *c = client(loop, 0), *c2 = client(loop, protocol);
        char name[64];
        testenv_key(name, sizeof name, "freed");
        aredis_lock *a = lock_new(c, name, (aredis_lock_options){0});
        aredis_lock *b = lock_new(c2, name, (aredis_lock_options){0});
        cr_assert_eq(acquire(loop, a, 0), 0);
        done d = {0};
        cr_assert_eq(aredis_lock_acquire(b, -1, free_in_cb, &d), 0);
        run_for(loop, 300);
        cr_assert_eq(d.calls, 0, "waiting");
        aredis_client_free(c2);
        run_for(loop, 100);
        cr_assert_eq(d.calls, 1, "called once");
        cr_assert_eq(d.status, AREDIS_ECANCELED);
        cr_assert_eq(release(loop, a), 0);
        aredis_lock_free(a);
        run_for(loop, 20);
        aredis_client_free(c);
        aredis_loop_free(loop);
        cr_assert_eq(d.calls, 1);
    }
}

Test(lock, handle_freed_while_an_acquire_waits_or_holds)
{
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client(loop, 0), *c2 = client(loop, 0);
    char name[64];
    testenv_key(name, sizeof name, "hfree");
    aredis_lock *a = lock_new(c, name, (aredis_lock_options){0});
    aredis_lock *b = lock_new(c2, name, (aredis_lock_options){0});
    cr_assert_eq(acquire(loop, a, 0), 0);
    done d = {0};
    cr_assert_eq(aredis_lock_acquire(b, -1, on_done, &d), 0);
    run_for(loop, 100);
    aredis_lock_free(b);
    cr_assert_eq(d.calls, 0, "never inside the free");
    run_for(loop, 100);
    cr_assert_eq(d.calls, 1);
    cr_assert_eq(d.status, AREDIS_ECANCELED);
    /* Freed while held: released in the background. */
    char key[96];
    snprintf(key, sizeof key, "%s", aredis_lock_key(a));
    aredis_lock_free(a);
    run_for(loop, 100);
    assert_value(loop, c2, key, NULL);
    finish(loop, c, c2);
}

Test(lock, blocking_facade)
{
    aredis_status st;
    aredis_sync *s = aredis_sync_connect(&(aredis_options){.url = url}, &st);
    cr_assert_not_null(s, "%s", st.msg);
    char name[64];
    testenv_key(name, sizeof name, "sync");
    aredis_lock *a =
        aredis_sync_lock_new(s, name, &(aredis_lock_options){.fence = 1}, &st);
    aredis_lock *b = aredis_sync_lock_new(s, name, NULL, &st);
    cr_assert_not_null(a);
    cr_assert_eq(aredis_sync_lock_release(a), AREDIS_ENOTHELD);
    cr_assert_eq(aredis_sync_lock_acquire(a, 0), 0);
    cr_assert_gt(aredis_lock_fence(a), 0);
    cr_assert_eq(aredis_sync_lock_acquire(b, 0), AREDIS_EBUSY);
    int64_t t0 = now_ms();
    cr_assert_eq(aredis_sync_lock_acquire(b, 100), AREDIS_ETIMEDOUT);
    cr_assert_geq(now_ms() - t0, 100);
    cr_assert_eq(aredis_sync_lock_extend(a, 60000, AREDIS_LOCK_EXTEND_REPLACE),
                 0);
    cr_assert_gt(aredis_lock_validity_ms(a), 50000);
    cr_assert_eq(aredis_sync_lock_release(a), 0);
    cr_assert_eq(aredis_sync_lock_acquire(b, 1000), 0);
    cr_assert_eq(aredis_sync_lock_release(b), 0);
    /* A handle of an asynchronous client is not the facade's to drive. */
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client(loop, 0);
    aredis_lock *x = lock_new(c, name, (aredis_lock_options){0});
    cr_assert_eq(aredis_sync_lock_acquire(x, 0), AREDIS_EINVAL);
    aredis_lock_free(x);
    finish(loop, c, NULL);
    aredis_lock_free(a);
    aredis_lock_free(b);
    aredis_sync_free(s);
}

/* ---- several processes -------------------------------------------------
 *
 * Each child connects through the blocking facade and, n times: acquires
 * (no limit), reads the plain counter key, writes it + 1 (a lost update
 * if two held the lock at once), appends its fencing token to a list (the
 * list's order is the acquisition order), and releases. It reports its
 * longest wait and its finishing time through a pipe. */

typedef struct child_report {
    double max_wait_ms;
    double done_ms;
    int failures;
} child_report;

static void child_run(const char *name, const char *counter, const char *list,
                      int n, int fair, int fd)
{
    child_report rep = {0};
    aredis_sync *s = aredis_sync_connect(&(aredis_options){.url = url}, NULL);
    aredis_lock *l =
        s ? aredis_sync_lock_new(s, name,
                                 &(aredis_lock_options){
                                     .ttl_ms = 10000, .fence = 1, .fair = fair},
                                 NULL)
          : NULL;
    double start = now_us();
    for (int i = 0; l != NULL && i < n; i++) {
        double t0 = now_us();
        if (aredis_sync_lock_acquire(l, 30000) != 0) {
            rep.failures++;
            continue;
        }
        double w = (now_us() - t0) / 1000;
        if (w > rep.max_wait_ms)
            rep.max_wait_ms = w;
        aredis_reply *r = aredis_sync_command(s, "GET %s", counter);
        long long v = r && r->type == AREDIS_REPLY_STRING ? atoll(r->str) : 0;
        aredis_reply_free(r);
        aredis_reply_free(
            aredis_sync_command(s, "SET %s %lld", counter, v + 1));
        aredis_reply_free(aredis_sync_command(s, "RPUSH %s %lld", list,
                                              aredis_lock_fence(l)));
        if (aredis_sync_lock_release(l) != 0)
            rep.failures++;
    }
    rep.done_ms = (now_us() - start) / 1000;
    if (l == NULL)
        rep.failures = n;
    ssize_t wr = write(fd, &rep, sizeof rep);
    (void)wr;
    aredis_lock_free(l);
    aredis_sync_free(s);
}

static void processes(int fair)
{
    enum { NPROC = 4 };
    const char *env = getenv("AREDIS_TEST_LOCK_N");
    int n = env ? atoi(env) : 1000;
    char name[64], counter[64], list[64];
    testenv_key(name, sizeof name, fair ? "mp-fair" : "mp");
    testenv_key(counter, sizeof counter, fair ? "mp-fair:n" : "mp:n");
    testenv_key(list, sizeof list, fair ? "mp-fair:fences" : "mp:fences");
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pids[NPROC];
    for (int p = 0; p < NPROC; p++) {
        pids[p] = fork();
        cr_assert_geq(pids[p], 0);
        if (pids[p] == 0) {
            close(fds[0]);
            child_run(name, counter, list, n, fair, fds[1]);
            _exit(0);
        }
    }
    close(fds[1]);
    child_report reps[NPROC];
    for (int p = 0; p < NPROC; p++) {
        cr_assert_eq(read(fds[0], &reps[p], sizeof reps[p]),
                     (ssize_t)sizeof reps[p], "child %d reported", p);
        int status;
        waitpid(pids[p], &status, 0);
    }
    close(fds[0]);
    double max_wait = 0, first = 1e18, last = 0;
    for (int p = 0; p < NPROC; p++) {
        cr_assert_eq(reps[p].failures, 0, "child %d: %d failed calls", p,
                     reps[p].failures);
        if (reps[p].max_wait_ms > max_wait)
            max_wait = reps[p].max_wait_ms;
        if (reps[p].done_ms < first)
            first = reps[p].done_ms;
        if (reps[p].done_ms > last)
            last = reps[p].done_ms;
    }
    aredis_sync *s = aredis_sync_connect(&(aredis_options){.url = url}, NULL);
    cr_assert_not_null(s);
    aredis_reply *r = aredis_sync_command(s, "GET %s", counter);
    cr_assert_eq(r->type, AREDIS_REPLY_STRING);
    cr_assert_eq(atoll(r->str), (long long)NPROC * n,
                 "exact count: no two holders at once");
    aredis_reply_free(r);
    r = aredis_sync_command(s, "LRANGE %s 0 -1", list);
    cr_assert_eq(r->type, AREDIS_REPLY_ARRAY);
    cr_assert_eq(r->len, (size_t)NPROC * n);
    for (size_t i = 1; i < r->len; i++)
        cr_assert_lt(atoll(r->element[i - 1].str), atoll(r->element[i].str),
                     "fencing tokens strictly increasing in acquisition "
                     "order (entry %zu)",
                     i);
    aredis_reply_free(r);
    aredis_reply_free(aredis_sync_command(s, "DEL %s %s", counter, list));
    aredis_sync_free(s);
    fprintf(stderr,
            "LOCK %d processes x %d increments (%s, debug build): count "
            "exact, max wait %.1f ms, finished %.0f..%.0f ms (spread %.0f "
            "%%)\n",
            NPROC, n, fair ? "fair" : "not fair", max_wait, first, last,
            100.0 * (last - first) / last);
}

Test(lock, processes_increment_under_the_lock)
{
    processes(0);
}

Test(lock, processes_increment_under_the_fair_lock)
{
    processes(1);
}
