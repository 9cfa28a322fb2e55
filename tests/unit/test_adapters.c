/* Unit tests for the loop seam over every event loop (loop layer): the
 * built-in loop and the libuv, libevent and libev adapters run one set of
 * test bodies, each driving the loop with its native run function through
 * a factory (loop_factory.h). An adapter that was not built shows up as
 * skipped. No server. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "aredis/error.h"
#include "aredis/loop.h"
#include "loop/loop.h"
#include "loop_factory.h"

/* ---- the built-in loop as a factory ----------------------------------- */

static const char *builtin_create(lf_env *e)
{
    e->loop = aredis_loop_new();
    return e->loop == NULL ? "aredis_loop_new returned NULL" : NULL;
}

static int builtin_run_until(lf_env *e, lf_pred pred, void *ud, int timeout_ms)
{
    int64_t end = aredis__now_ms() + timeout_ms;
    while (!pred(ud) && aredis__now_ms() < end) {
        if (aredis_loop_run_once(e->loop, 5) < 0)
            break;
    }
    return pred(ud);
}

static int builtin_nowait(lf_env *e)
{
    return aredis_loop_run_once(e->loop, 0) > 0;
}

static const char *builtin_destroy(lf_env *e)
{
    aredis_loop_free(e->loop);
    e->loop = NULL;
    return NULL;
}

static const loop_factory builtin_factory = {
    "builtin",       0, 1, builtin_create, builtin_run_until, builtin_nowait,
    builtin_destroy,
};

/* ---- the table and the test macro ------------------------------------- */

enum { F_BUILTIN, F_LIBUV, F_LIBEVENT, F_LIBEV, F_COUNT };
static const char *const factory_names[F_COUNT] = {"builtin", "libuv",
                                                   "libevent", "libev"};

static const loop_factory *factory_at(int i)
{
    const loop_factory *table[F_COUNT] = {&builtin_factory, lf_libuv,
                                          lf_libevent, lf_libev};
    return table[i];
}

static void run_adapter(int which, void (*body)(lf_env *))
{
    const loop_factory *f = factory_at(which);
    if (f == NULL)
        cr_skip_test("the %s adapter is not built", factory_names[which]);
    lf_env e = {0};
    e.f = f;
    const char *err = f->create(&e);
    cr_assert_null(err, "%s: %s", f->name, err);
    body(&e);
    err = f->destroy(&e);
    cr_assert_null(err, "%s: %s", f->name, err);
}

/* One test body, run once per factory. */
#define ADAPTER_TEST(name)                      \
    static void name##_body(lf_env *e);         \
    Test(adapter_builtin, name, .timeout = 60)  \
    {                                           \
        run_adapter(F_BUILTIN, name##_body);    \
    }                                           \
    Test(adapter_libuv, name, .timeout = 60)    \
    {                                           \
        run_adapter(F_LIBUV, name##_body);      \
    }                                           \
    Test(adapter_libevent, name, .timeout = 60) \
    {                                           \
        run_adapter(F_LIBEVENT, name##_body);   \
    }                                           \
    Test(adapter_libev, name, .timeout = 60)    \
    {                                           \
        run_adapter(F_LIBEV, name##_body);      \
    }                                           \
    static void name##_body(lf_env *e)

/* ---- helpers ---------------------------------------------------------- */

typedef struct sockpair {
    int a, b;
} sockpair;

static sockpair make_pair(void)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    return (sockpair){sv[0], sv[1]};
}

static void close_pair(sockpair p)
{
    close(p.a);
    close(p.b);
}

static void put_byte(int fd)
{
    char c = 'x';
    cr_assert_eq(write(fd, &c, 1), 1);
}

/* An io watcher and what it saw. `other` and `on_first` let one
 * watcher's callback act on another's. */
typedef struct iorec {
    lf_env *e;
    void *h;
    int calls;
    int last;
    int seen; /* every mask received, OR-ed */
    struct iorec *other;
    int action; /* 1: stop other, 2: other's interest -> WRITE */
} iorec;

static void on_io(void *arg, int events)
{
    iorec *r = arg;
    r->calls++;
    r->last = events;
    r->seen |= events;
    if (r->calls == 1 && r->other != NULL) {
        if (r->action == 1 && r->other->h != NULL) {
            aredis__loop_io_stop(r->e->loop, r->other->h);
            r->other->h = NULL;
        } else if (r->action == 2 && r->other->h != NULL) {
            cr_assert_eq(aredis__loop_io_update(r->e->loop, r->other->h,
                                                AREDIS_EV_WRITE),
                         0);
        }
    }
}

static int pred_calls(void *ud)
{
    return ((iorec *)ud)->calls > 0;
}

static int pred_int(void *ud)
{
    return *(int *)ud != 0;
}

static int pred_atomic(void *ud)
{
    return atomic_load((atomic_int *)ud) != 0;
}

static int pred_either(void *ud)
{
    iorec *r = ud;
    return r[0].calls > 0 || r[1].calls > 0;
}

static int pred_never(void *ud)
{
    (void)ud;
    return 0;
}

/* Run for about ms with nothing expected to make the predicate true. */
static void run_for(lf_env *e, int ms)
{
    e->f->run_until(e, pred_never, NULL, ms);
}

/* ---- io --------------------------------------------------------------- */

ADAPTER_TEST(io_readiness_and_interest)
{
    sockpair p = make_pair();
    iorec r = {.e = e};
    cr_assert_eq(aredis__loop_io_start(e->loop, p.a, on_io, &r, &r.h), 0);
    run_for(e, 30);
    cr_assert_eq(r.calls, 0, "%s: no interest, no callback", e->f->name);

    cr_assert_eq(aredis__loop_io_update(e->loop, r.h, AREDIS_EV_READ), 0);
    cr_assert_eq(aredis__loop_io_update(e->loop, r.h, AREDIS_EV_READ), 0,
                 "setting the same interest again is harmless");
    run_for(e, 30);
    cr_assert_eq(r.calls, 0, "%s: nothing to read yet", e->f->name);
    put_byte(p.b);
    cr_assert(e->f->run_until(e, pred_calls, &r, 2000), "%s: no READ",
              e->f->name);
    cr_assert_eq(r.last, AREDIS_EV_READ);

    /* Writable and readable, but only WRITE is asked for now. */
    r.calls = 0;
    r.seen = 0;
    cr_assert_eq(aredis__loop_io_update(e->loop, r.h, AREDIS_EV_WRITE), 0);
    cr_assert(e->f->run_until(e, pred_calls, &r, 2000));
    cr_assert_eq(r.seen, AREDIS_EV_WRITE, "%s: got mask %d", e->f->name,
                 r.seen);

    /* No interest: quiet even though the socket is ready both ways. */
    cr_assert_eq(aredis__loop_io_update(e->loop, r.h, 0), 0);
    r.calls = 0;
    run_for(e, 50);
    cr_assert_eq(r.calls, 0, "%s: events with no interest", e->f->name);

    cr_assert_eq(aredis__loop_io_update(e->loop, r.h, AREDIS_EV_READ), 0);
    cr_assert(e->f->run_until(e, pred_calls, &r, 2000));
    cr_assert_eq(r.last, AREDIS_EV_READ);
    aredis__loop_io_stop(e->loop, r.h);
    close_pair(p);
}

ADAPTER_TEST(io_peer_close_reads_end_of_stream)
{
    sockpair p = make_pair();
    iorec r = {.e = e};
    cr_assert_eq(aredis__loop_io_start(e->loop, p.a, on_io, &r, &r.h), 0);
    cr_assert_eq(aredis__loop_io_update(e->loop, r.h, AREDIS_EV_READ), 0);
    close(p.b);
    cr_assert(e->f->run_until(e, pred_calls, &r, 2000));
    cr_assert(r.last & AREDIS_EV_READ);
    char c;
    cr_assert_eq(read(p.a, &c, 1), 0, "end of stream");
    aredis__loop_io_stop(e->loop, r.h);
    close(p.a);
}

/* A reconnect: stop the watcher, close the socket, and watch a new socket
 * that got the same descriptor number, before the loop has run again
 * (libuv has not even run the old handle's close callback yet). */
ADAPTER_TEST(io_descriptor_reused_after_stop)
{
    sockpair p = make_pair();
    iorec r = {.e = e}, r2 = {.e = e};
    int fd = p.a;
    cr_assert_eq(aredis__loop_io_start(e->loop, p.a, on_io, &r, &r.h), 0);
    cr_assert_eq(aredis__loop_io_update(e->loop, r.h, AREDIS_EV_READ), 0);
    aredis__loop_io_stop(e->loop, r.h);
    close_pair(p);
    sockpair q = make_pair();
    if (q.a != fd) {
        /* Put the new socket at the old number. */
        cr_assert_eq(dup2(q.a, fd), fd);
        close(q.a);
        q.a = fd;
    }
    cr_assert_eq(aredis__loop_io_start(e->loop, q.a, on_io, &r2, &r2.h), 0);
    cr_assert_eq(aredis__loop_io_update(e->loop, r2.h, AREDIS_EV_READ), 0);
    put_byte(q.b);
    cr_assert(e->f->run_until(e, pred_calls, &r2, 2000),
              "%s: the new socket on a reused descriptor is not watched",
              e->f->name);
    cr_assert_eq(r.calls, 0);
    cr_assert_eq(r2.last, AREDIS_EV_READ);
    aredis__loop_io_stop(e->loop, r2.h);
    close_pair(q);
}

/* Two watchers ready in the same batch; whichever runs first changes the
 * other, which must then get nothing that no longer applies. */
static void stale_event_case(lf_env *e, int action)
{
    sockpair p1 = make_pair(), p2 = make_pair();
    iorec r[2] = {{.e = e, .action = action}, {.e = e, .action = action}};
    iorec *r1 = &r[0], *r2 = &r[1];
    r1->other = r2;
    r2->other = r1;
    cr_assert_eq(aredis__loop_io_start(e->loop, p1.a, on_io, r1, &r1->h), 0);
    cr_assert_eq(aredis__loop_io_start(e->loop, p2.a, on_io, r2, &r2->h), 0);
    /* Both ready before the loop looks, so both are in one batch. */
    put_byte(p1.b);
    put_byte(p2.b);
    cr_assert_eq(aredis__loop_io_update(e->loop, r1->h, AREDIS_EV_READ), 0);
    cr_assert_eq(aredis__loop_io_update(e->loop, r2->h, AREDIS_EV_READ), 0);
    cr_assert(e->f->run_until(e, pred_either, r, 2000),
              "%s: neither watcher ran", e->f->name);
    run_for(e, 50);
    iorec *first = r1->seen & AREDIS_EV_READ ? r1 : r2;
    iorec *second = first == r1 ? r2 : r1;
    cr_assert(first->seen & AREDIS_EV_READ);
    if (action == 1) {
        cr_assert_eq(second->calls, 0, "%s: a stopped watcher ran", e->f->name);
    } else {
        cr_assert_eq(second->seen & AREDIS_EV_READ, 0,
                     "%s: READ delivered after the interest became WRITE",
                     e->f->name);
        cr_assert(second->seen & AREDIS_EV_WRITE);
    }
    aredis__loop_io_stop(e->loop, r1->h);
    aredis__loop_io_stop(e->loop, r2->h);
    close_pair(p1);
    close_pair(p2);
}

ADAPTER_TEST(io_stopped_in_batch_gets_no_stale_event)
{
    stale_event_case(e, 1);
}

ADAPTER_TEST(io_updated_in_batch_gets_no_stale_event)
{
    stale_event_case(e, 2);
}

/* ---- timers ----------------------------------------------------------- */

typedef struct trec {
    lf_env *e;
    void *h;
    int idx;
    int calls;
    int64_t set_at, fired_at;
    int64_t delay;
    int rearm; /* re-arm itself this many more times */
    int stop_self;
} trec;

static int fire_log[64], fire_n;

static void on_timer(void *arg)
{
    trec *t = arg;
    t->calls++;
    t->fired_at = aredis__now_ms();
    if (fire_n < 64)
        fire_log[fire_n++] = t->idx;
    if (t->rearm > 0) {
        t->rearm--;
        cr_assert_eq(aredis__loop_timer_set(t->e->loop, t->h, 1), 0);
    }
    if (t->stop_self) {
        aredis__loop_timer_stop(t->e->loop, t->h);
        t->h = NULL;
    }
}

static int pred_timer_calls(void *ud)
{
    return ((trec *)ud)->calls > 0;
}

static int pred_fire_n(void *ud)
{
    return fire_n >= *(int *)ud;
}

ADAPTER_TEST(timers_fire_in_order)
{
    enum { N = 20, STEP = 15 };
    trec t[N];
    int perm[N];
    for (int i = 0; i < N; i++)
        perm[i] = i;
    srand(42);
    for (int i = N - 1; i > 0; i--) {
        int j = rand() % (i + 1), x = perm[i];
        perm[i] = perm[j];
        perm[j] = x;
    }
    fire_n = 0;
    int64_t t0 = aredis__now_ms();
    for (int i = 0; i < N; i++) {
        t[i] = (trec){.e = e, .idx = i, .delay = (int64_t)perm[i] * STEP};
        cr_assert_eq(
            aredis__loop_timer_start(e->loop, on_timer, &t[i], &t[i].h), 0);
        t[i].set_at = aredis__now_ms();
        cr_assert_eq(aredis__loop_timer_set(e->loop, t[i].h, t[i].delay), 0);
    }
    int64_t span = aredis__now_ms() - t0;
    int want = N;
    cr_assert(e->f->run_until(e, pred_fire_n, &want, 5000), "%s: %d fired",
              e->f->name, fire_n);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(t[i].calls, 1);
        cr_assert_geq(t[i].fired_at - t[i].set_at,
                      t[i].delay - e->f->timer_slack_ms,
                      "%s: timer %d fired %lld ms early", e->f->name, i,
                      (long long)(t[i].delay - (t[i].fired_at - t[i].set_at)));
    }
    /* Delays STEP ms apart fire in delay order, unless arming itself took
     * that long (a badly overloaded machine), which the check allows. */
    if (span < STEP) {
        for (int k = 1; k < N; k++)
            cr_assert_lt(t[fire_log[k - 1]].delay, t[fire_log[k]].delay,
                         "%s: out of order at %d", e->f->name, k);
    }
    for (int i = 0; i < N; i++)
        aredis__loop_timer_stop(e->loop, t[i].h);
}

ADAPTER_TEST(timer_rearm_replaces_and_disarm_cancels)
{
    trec t = {.e = e};
    cr_assert_eq(aredis__loop_timer_start(e->loop, on_timer, &t, &t.h), 0);
    /* A long arming replaced by a short one fires once, soon. */
    cr_assert_eq(aredis__loop_timer_set(e->loop, t.h, 60000), 0);
    cr_assert_eq(aredis__loop_timer_set(e->loop, t.h, 10), 0);
    cr_assert(e->f->run_until(e, pred_timer_calls, &t, 2000));
    run_for(e, 30);
    cr_assert_eq(t.calls, 1);

    /* A short arming replaced by a longer one waits for the longer. */
    t.calls = 0;
    int64_t t0 = aredis__now_ms();
    cr_assert_eq(aredis__loop_timer_set(e->loop, t.h, 10), 0);
    cr_assert_eq(aredis__loop_timer_set(e->loop, t.h, 300), 0);
    run_for(e, 100);
    cr_assert_eq(t.calls, 0, "%s: the replaced arming fired", e->f->name);
    cr_assert(e->f->run_until(e, pred_timer_calls, &t, 2000));
    cr_assert_geq(t.fired_at - t0, 300 - e->f->timer_slack_ms);

    /* Disarmed: never fires; disarming twice is harmless. */
    t.calls = 0;
    cr_assert_eq(aredis__loop_timer_set(e->loop, t.h, 10), 0);
    cr_assert_eq(aredis__loop_timer_set(e->loop, t.h, -1), 0);
    cr_assert_eq(aredis__loop_timer_set(e->loop, t.h, -1), 0);
    run_for(e, 60);
    cr_assert_eq(t.calls, 0);
    aredis__loop_timer_stop(e->loop, t.h);
}

ADAPTER_TEST(timer_rearms_and_stops_itself)
{
    trec t = {.e = e, .rearm = 4};
    cr_assert_eq(aredis__loop_timer_start(e->loop, on_timer, &t, &t.h), 0);
    cr_assert_eq(aredis__loop_timer_set(e->loop, t.h, 0), 0);
    int five = 5;
    fire_n = 0;
    cr_assert(e->f->run_until(e, pred_fire_n, &five, 2000));
    run_for(e, 20);
    cr_assert_eq(t.calls, 5);

    /* Stopped (and freed) from inside its own callback. */
    t.stop_self = 1;
    cr_assert_eq(aredis__loop_timer_set(e->loop, t.h, 0), 0);
    cr_assert(e->f->run_until(e, pred_fire_n, &(int){6}, 2000));
    cr_assert_null(t.h);
    run_for(e, 20);
    cr_assert_eq(t.calls, 6);
}

/* ---- wake-ups --------------------------------------------------------- */

enum { WAKE_THREADS = 4, WAKES = 1000 };

typedef struct wakectx {
    lf_env *e;
    void *h;
    pthread_t loop_thread;
    atomic_int finished;
    atomic_int calls;
    int wrong_thread;
    int seen_after_all;
} wakectx;

static void on_wake(void *arg)
{
    wakectx *w = arg;
    if (!pthread_equal(pthread_self(), w->loop_thread))
        w->wrong_thread = 1;
    atomic_fetch_add(&w->calls, 1);
    if (atomic_load(&w->finished) == WAKE_THREADS)
        w->seen_after_all = 1;
}

static void *waker(void *arg)
{
    wakectx *w = arg;
    for (int i = 0; i < WAKES; i++)
        aredis__loop_wake(w->e->loop, w->h);
    /* This thread's last wake comes after it counts itself finished, so
     * a callback that starts after it sees every thread finished. */
    atomic_fetch_add(&w->finished, 1);
    aredis__loop_wake(w->e->loop, w->h);
    return NULL;
}

ADAPTER_TEST(wake_from_threads_runs_on_the_loop_thread)
{
    wakectx w = {.e = e, .loop_thread = pthread_self()};
    atomic_init(&w.finished, 0);
    atomic_init(&w.calls, 0);
    cr_assert_eq(aredis__loop_wake_start(e->loop, on_wake, &w, &w.h), 0);
    pthread_t th[WAKE_THREADS];
    for (int i = 0; i < WAKE_THREADS; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, waker, &w), 0);
    int ok = e->f->run_until(e, pred_int, &w.seen_after_all, 20000);
    for (int i = 0; i < WAKE_THREADS; i++)
        pthread_join(th[i], NULL);
    cr_assert(ok, "%s: no callback after the last wake (%d calls)", e->f->name,
              atomic_load(&w.calls));
    cr_assert_eq(w.wrong_thread, 0, "a wake callback ran off the loop thread");
    cr_assert_geq(atomic_load(&w.calls), 1);
    cr_assert_leq(atomic_load(&w.calls), WAKE_THREADS * (WAKES + 1),
                  "more callbacks than wakes");
    aredis__loop_wake_stop(e->loop, w.h);
}

ADAPTER_TEST(wake_stopped_before_it_runs_never_runs)
{
    wakectx w = {.e = e, .loop_thread = pthread_self()};
    atomic_init(&w.finished, 0);
    atomic_init(&w.calls, 0);
    cr_assert_eq(aredis__loop_wake_start(e->loop, on_wake, &w, &w.h), 0);
    aredis__loop_wake(e->loop, w.h);
    cr_assert(e->f->run_until(e, pred_atomic, &w.calls, 2000));
    int before = atomic_load(&w.calls);
    aredis__loop_wake(e->loop, w.h);
    aredis__loop_wake_stop(e->loop, w.h);
    run_for(e, 30);
    cr_assert_eq(atomic_load(&w.calls), before);
}

/* ---- the deferred queue ----------------------------------------------- */

typedef struct drec {
    aredis__defer d;
    lf_env *e;
    int id;
    int calls;
    int requeue_forever;
    struct drec *also; /* deferred by this one's first run */
} drec;

static int dlog[32], dlog_n;

static void on_defer(void *arg)
{
    drec *r = arg;
    r->calls++;
    if (dlog_n < 32)
        dlog[dlog_n++] = r->id;
    if (r->requeue_forever || (r->also != NULL && r->calls == 1)) {
        if (r->also != NULL)
            aredis__loop_defer(r->e->loop, &r->also->d, on_defer, r->also);
        aredis__loop_defer(r->e->loop, &r->d, on_defer, r);
    }
}

static int pred_dlog(void *ud)
{
    return dlog_n >= *(int *)ud;
}

ADAPTER_TEST(deferred_calls_run_in_order)
{
    drec d[5] = {{.id = 0}, {.id = 1}, {.id = 2}, {.id = 3}, {.id = 4}};
    for (int i = 0; i < 5; i++)
        d[i].e = e;
    d[1].also = &d[4]; /* 1 defers 4, then itself again */
    dlog_n = 0;
    aredis__loop_defer(e->loop, &d[1].d, on_defer, &d[1]);
    aredis__loop_defer(e->loop, &d[2].d, on_defer, &d[2]);
    aredis__loop_defer(e->loop, &d[1].d, on_defer, &d[1]); /* no-op */
    aredis__loop_defer(e->loop, &d[3].d, on_defer, &d[3]);
    aredis__loop_defer(e->loop, &d[0].d, on_defer, &d[0]);
    aredis__loop_undefer(e->loop, &d[0].d);
    aredis__loop_undefer(e->loop, &d[0].d); /* no-op */
    cr_assert_eq(dlog_n, 0, "a deferred call ran inside defer()");
    int five = 5;
    cr_assert(e->f->run_until(e, pred_dlog, &five, 2000), "%s: %d ran",
              e->f->name, dlog_n);
    run_for(e, 20);
    int want[] = {1, 2, 3, 4, 1};
    cr_assert_eq(dlog_n, 5);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(dlog[i], want[i], "%s: position %d is %d", e->f->name, i,
                     dlog[i]);
    cr_assert_eq(d[0].calls, 0, "an undeferred call ran");
    cr_assert_eq(aredis__defer_queued(&d[1].d), 0);
}

/* A call that keeps queueing itself runs once per turn of the loop, so
 * timers and sockets still get their turn. */
ADAPTER_TEST(requeueing_call_does_not_starve_the_loop)
{
    drec r = {.e = e, .requeue_forever = 1};
    trec t = {.e = e};
    dlog_n = 0;
    cr_assert_eq(aredis__loop_timer_start(e->loop, on_timer, &t, &t.h), 0);
    cr_assert_eq(aredis__loop_timer_set(e->loop, t.h, 20), 0);
    aredis__loop_defer(e->loop, &r.d, on_defer, &r);
    cr_assert(e->f->run_until(e, pred_timer_calls, &t, 5000),
              "%s: the timer never fired", e->f->name);
    cr_assert_gt(r.calls, 1);
    aredis__loop_undefer(e->loop, &r.d);
    int calls = r.calls;
    run_for(e, 30);
    cr_assert_eq(r.calls, calls);
    aredis__loop_timer_stop(e->loop, t.h);
}

ADAPTER_TEST(free_runs_pending_deferred_calls)
{
    drec d[2] = {{.id = 0}, {.id = 1}};
    d[0].e = d[1].e = e;
    d[0].also = &d[1];
    dlog_n = 0;
    aredis__loop_defer(e->loop, &d[0].d, on_defer, &d[0]);
    aredis_loop_free(e->loop);
    e->loop = NULL;
    cr_assert_eq(d[0].calls, 2, "the call and its own requeue");
    cr_assert_eq(d[1].calls, 1, "a call queued by a call");
}

static void on_defer_free_loop(void *arg)
{
    drec *r = arg;
    r->calls++;
    aredis_loop_free(r->e->loop);
    /* Still valid until this drain returns; later calls run first. */
    aredis__loop_defer(r->e->loop, &r->also->d, on_defer, r->also);
    r->e->loop = NULL;
}

ADAPTER_TEST(loop_freed_from_a_deferred_call)
{
    drec later = {.e = e, .id = 7};
    drec r = {.e = e, .also = &later};
    dlog_n = 0;
    aredis__loop_defer(e->loop, &r.d, on_defer_free_loop, &r);
    cr_assert(e->f->run_until(e, pred_int, &later.calls, 2000));
    cr_assert_eq(r.calls, 1);
    cr_assert_null(e->loop);
}

/* ---- keeping the native loop alive ------------------------------------ */

/* Poll without blocking until the loop reports idle; 1 if it did. */
static int settles_idle(lf_env *e, int ms)
{
    int64_t end = aredis__now_ms() + ms;
    while (e->f->run_nowait(e)) {
        if (aredis__now_ms() >= end)
            return 0;
        usleep(1000);
    }
    return 1;
}

static int stays_alive(lf_env *e, int ms)
{
    int64_t end = aredis__now_ms() + ms;
    while (aredis__now_ms() < end) {
        if (!e->f->run_nowait(e))
            return 0;
        usleep(1000);
    }
    return 1;
}

ADAPTER_TEST(only_pending_work_keeps_the_native_loop_running)
{
    sockpair p = make_pair();
    iorec r = {.e = e};
    trec t = {.e = e};
    cr_assert(settles_idle(e, 2000), "%s: busy with nothing", e->f->name);

    /* Started but idle sources do not count. */
    cr_assert_eq(aredis__loop_io_start(e->loop, p.a, on_io, &r, &r.h), 0);
    cr_assert_eq(aredis__loop_timer_start(e->loop, on_timer, &t, &t.h), 0);
    cr_assert(settles_idle(e, 2000), "%s: kept alive by idle sources",
              e->f->name);

    cr_assert_eq(aredis__loop_timer_set(e->loop, t.h, 60000), 0);
    cr_assert(stays_alive(e, 30), "%s: an armed timer does not keep it",
              e->f->name);
    cr_assert_eq(aredis__loop_timer_set(e->loop, t.h, -1), 0);
    cr_assert(settles_idle(e, 2000));

    cr_assert_eq(aredis__loop_io_update(e->loop, r.h, AREDIS_EV_READ), 0);
    cr_assert(stays_alive(e, 30), "%s: a watched socket does not keep it",
              e->f->name);
    cr_assert_eq(aredis__loop_io_update(e->loop, r.h, 0), 0);
    cr_assert(settles_idle(e, 2000));

    /* A pending deferred call keeps it until the call has run. */
    drec d = {.e = e};
    dlog_n = 0;
    aredis__loop_defer(e->loop, &d.d, on_defer, &d);
    cr_assert(settles_idle(e, 2000));
    cr_assert_eq(d.calls, 1, "%s: idle before the deferred call ran",
                 e->f->name);

    /* Wake-ups are unreferenced where the loop allows it. */
    wakectx w = {.e = e, .loop_thread = pthread_self()};
    atomic_init(&w.finished, 0);
    atomic_init(&w.calls, 0);
    cr_assert_eq(aredis__loop_wake_start(e->loop, on_wake, &w, &w.h), 0);
    if (e->f->wake_keeps_alive)
        cr_assert(stays_alive(e, 30));
    else
        cr_assert(settles_idle(e, 2000), "%s: kept alive by a wake source",
                  e->f->name);
    aredis__loop_wake_stop(e->loop, w.h);
    cr_assert(settles_idle(e, 2000));

    aredis__loop_io_stop(e->loop, r.h);
    aredis__loop_timer_stop(e->loop, t.h);
    close_pair(p);
}

ADAPTER_TEST(run_is_only_for_the_builtin_loop)
{
    int builtin = e->f == &builtin_factory;
    cr_assert_eq(aredis_loop_run(e->loop), builtin ? 0 : AREDIS_ENOTSUP);
    cr_assert_eq(aredis_loop_run_once(e->loop, 0),
                 builtin ? 0 : AREDIS_ENOTSUP);
}
