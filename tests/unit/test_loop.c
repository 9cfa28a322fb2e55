/* Unit tests for the built-in loop and the aredis_loop wrapper (loop
 * layer): readiness and interest, watchers changed inside a batch, timer
 * order and re-arming, wake-ups from threads, the deferred queue, run,
 * run_once and stop, freeing, errors and out-of-memory. Every LOOP_TEST
 * runs once per backend (epoll, poll). No server. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "aredis/alloc.h"
#include "aredis/error.h"
#include "aredis/loop.h"
#include "loop/loop.h"
#include "loop/loop_int.h"

/* The loop under test, made by the LOOP_TEST wrapper. A body that frees
 * it sets L to NULL. */
static aredis_loop *L;
static int use_poll;

static void run_on_backend(int force_poll, void (*body)(void))
{
    use_poll = force_poll;
    L = aredis__loop_new_builtin(force_poll);
    cr_assert_not_null(L);
#ifdef __linux__
    cr_assert_str_eq(aredis__loop_backend(L), force_poll ? "poll" : "epoll");
#endif
    body();
    aredis_loop_free(L);
    L = NULL;
}

/* One test body, run on each backend. */
#define LOOP_TEST(name)                   \
    static void name##_body(void);        \
    Test(loop_epoll, name, .timeout = 60) \
    {                                     \
        run_on_backend(0, name##_body);   \
    }                                     \
    Test(loop_poll, name, .timeout = 60)  \
    {                                     \
        run_on_backend(1, name##_body);   \
    }                                     \
    static void name##_body(void)

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

static int64_t now_ms(void)
{
    return aredis__now_ms();
}

/* Iterate until *flag is nonzero or ms pass; the loop must not fail. */
static void run_until(const int *flag, int ms)
{
    int64_t end = now_ms() + ms;
    while (!*flag && now_ms() < end)
        cr_assert_geq(aredis_loop_run_once(L, 10), 0);
}

typedef struct iorec {
    void *h;
    int fd;
    int calls;
    int last;
    int seen;
    struct iorec *other;
    int action; /* what the first call does; see on_io */
    int stop_after;
} iorec;

static iorec restarted; /* the watcher that action 3 starts */

static void on_io(void *arg, int events)
{
    iorec *r = arg;
    r->calls++;
    r->last = events;
    r->seen |= events;
    if (r->stop_after != 0 && r->calls % r->stop_after == 0)
        aredis_loop_stop(L);
    if (r->calls != 1)
        return;
    switch (r->action) {
    case 1: /* stop the other watcher */
        if (r->other->h != NULL) {
            aredis__loop_io_stop(L, r->other->h);
            r->other->h = NULL;
        }
        break;
    case 2: /* turn the other watcher to WRITE only */
        if (r->other->h != NULL)
            cr_assert_eq(
                aredis__loop_io_update(L, r->other->h, AREDIS_EV_WRITE), 0);
        break;
    case 3: /* stop itself, then watch the same descriptor again */
        aredis__loop_io_stop(L, r->h);
        r->h = NULL;
        restarted = (iorec){.fd = r->fd};
        cr_assert_eq(
            aredis__loop_io_start(L, r->fd, on_io, &restarted, &restarted.h),
            0);
        cr_assert_eq(aredis__loop_io_update(L, restarted.h, AREDIS_EV_READ), 0);
        break;
    case 4: /* read what is there and lose interest */
    {
        char buf[16];
        while (read(r->fd, buf, sizeof buf) > 0)
            ;
        cr_assert_eq(aredis__loop_io_update(L, r->h, 0), 0);
        break;
    }
    default:
        break;
    }
}

static iorec *watch(iorec *r, int fd, int events)
{
    r->fd = fd;
    cr_assert_eq(aredis__loop_io_start(L, fd, on_io, r, &r->h), 0);
    cr_assert_eq(aredis__loop_io_update(L, r->h, events), 0);
    return r;
}

/* ---- io --------------------------------------------------------------- */

LOOP_TEST(io_read_readiness)
{
    sockpair p = make_pair();
    iorec r = {0};
    watch(&r, p.a, AREDIS_EV_READ);
    cr_assert_eq(aredis_loop_run_once(L, 0), 1, "a watched socket is alive");
    cr_assert_eq(r.calls, 0, "nothing to read yet");
    put_byte(p.b);
    run_until(&r.calls, 2000);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.last, AREDIS_EV_READ);
    /* Level-triggered: still readable until it is read. */
    cr_assert_eq(aredis_loop_run_once(L, 2000), 1);
    cr_assert_eq(r.calls, 2);
    char c;
    cr_assert_eq(read(p.a, &c, 1), 1);
    cr_assert_eq(aredis_loop_run_once(L, 0), 1);
    cr_assert_eq(r.calls, 2, "read out: no more events");
    aredis__loop_io_stop(L, r.h);
    cr_assert_eq(aredis_loop_run_once(L, 0), 0, "stopped: idle");
    close_pair(p);
}

LOOP_TEST(io_interest_changes)
{
    sockpair p = make_pair();
    iorec r = {0};
    watch(&r, p.a, AREDIS_EV_READ | AREDIS_EV_WRITE);
    cr_assert_eq(aredis_loop_run_once(L, 2000), 1);
    cr_assert_eq(r.last, AREDIS_EV_WRITE, "writable, nothing to read");
    put_byte(p.b);
    cr_assert_eq(aredis_loop_run_once(L, 2000), 1);
    cr_assert_eq(r.last, AREDIS_EV_READ | AREDIS_EV_WRITE);

    cr_assert_eq(aredis__loop_io_update(L, r.h, AREDIS_EV_WRITE), 0);
    cr_assert_eq(aredis__loop_io_update(L, r.h, AREDIS_EV_WRITE), 0);
    cr_assert_eq(aredis_loop_run_once(L, 2000), 1);
    cr_assert_eq(r.last, AREDIS_EV_WRITE, "READ is not asked for");

    int calls = r.calls;
    cr_assert_eq(aredis__loop_io_update(L, r.h, 0), 0);
    cr_assert_eq(aredis_loop_run_once(L, 50), 0, "no interest: idle");
    cr_assert_eq(r.calls, calls);

    /* Bits other than READ and WRITE are ignored. */
    cr_assert_eq(aredis__loop_io_update(L, r.h, AREDIS_EV_READ | 0x100), 0);
    cr_assert_eq(aredis_loop_run_once(L, 2000), 1);
    cr_assert_eq(r.last, AREDIS_EV_READ);
    aredis__loop_io_stop(L, r.h);
    close_pair(p);
}

LOOP_TEST(io_hang_up)
{
    sockpair p = make_pair();
    iorec r = {0}, w = {0};
    watch(&r, p.a, AREDIS_EV_READ);
    close(p.b);
    run_until(&r.calls, 2000);
    cr_assert(r.last & AREDIS_EV_READ);
    char c;
    cr_assert_eq(read(p.a, &c, 1), 0, "end of stream");

    /* A hung-up socket with no interest must not spin the loop: with
     * epoll that means it is not registered at all. */
    cr_assert_eq(aredis__loop_io_update(L, r.h, 0), 0);
    int calls = r.calls;
    cr_assert_eq(aredis_loop_run_once(L, 30), 0);
    cr_assert_eq(r.calls, calls);

    /* A writer of a hung-up socket hears of it too. */
    aredis__loop_io_stop(L, r.h);
    watch(&w, p.a, AREDIS_EV_WRITE);
    run_until(&w.calls, 2000);
    cr_assert_eq(w.last, AREDIS_EV_WRITE);
    aredis__loop_io_stop(L, w.h);
    close(p.a);
}

LOOP_TEST(io_many_watchers)
{
    enum { N = 100 };
    sockpair p[N];
    iorec r[N];
    memset(r, 0, sizeof r);
    for (int i = 0; i < N; i++) {
        p[i] = make_pair();
        watch(&r[i], p[i].a, AREDIS_EV_READ);
        put_byte(p[i].b);
    }
    int all = 0;
    for (int round = 0; round < 200 && !all; round++) {
        cr_assert_eq(aredis_loop_run_once(L, 10), 1);
        all = 1;
        for (int i = 0; i < N; i++)
            all &= r[i].calls > 0;
    }
    cr_assert(all, "some watchers never ran");
    /* Stop every other watcher, in a scrambled order, which moves the
     * poll backend's entries around. */
    srand(3);
    int order[N / 2];
    for (int i = 0; i < N / 2; i++)
        order[i] = 2 * i + 1;
    for (int i = N / 2 - 1; i > 0; i--) {
        int j = rand() % (i + 1), x = order[i];
        order[i] = order[j];
        order[j] = x;
    }
    for (int i = 0; i < N / 2; i++) {
        aredis__loop_io_stop(L, r[order[i]].h);
        r[order[i]].h = NULL;
    }
    int before[N];
    for (int i = 0; i < N; i++)
        before[i] = r[i].calls;
    cr_assert_eq(aredis_loop_run_once(L, 2000), 1);
    for (int i = 0; i < N; i++) {
        if (i % 2 == 0)
            cr_assert_eq(r[i].calls, before[i] + 1, "watcher %d", i);
        else
            cr_assert_eq(r[i].calls, before[i], "stopped watcher %d ran", i);
    }
    for (int i = 0; i < N; i++) {
        aredis__loop_io_stop(L, r[i].h);
        close_pair(p[i]);
    }
    cr_assert_eq(aredis_loop_run_once(L, 0), 0);
}

/* Two watchers ready in the same batch: whichever runs first acts on the
 * other, which must then get nothing that no longer applies. */
static void same_batch_case(int action)
{
    sockpair p1 = make_pair(), p2 = make_pair();
    iorec r1 = {.action = action}, r2 = {.action = action};
    r1.other = &r2;
    r2.other = &r1;
    put_byte(p1.b);
    put_byte(p2.b);
    watch(&r1, p1.a, AREDIS_EV_READ);
    watch(&r2, p2.a, AREDIS_EV_READ);
    cr_assert_eq(aredis_loop_run_once(L, 2000), 1);
    cr_assert_eq(r1.calls + r2.calls, 1, "both ran in the batch");
    iorec *first = r1.calls ? &r1 : &r2, *second = first == &r1 ? &r2 : &r1;
    for (int i = 0; i < 5; i++)
        cr_assert_eq(aredis_loop_run_once(L, 100), 1);
    if (action == 1) {
        cr_assert_eq(second->calls, 0, "a stopped watcher ran");
    } else {
        cr_assert_eq(second->seen, AREDIS_EV_WRITE,
                     "READ delivered after the interest became WRITE");
    }
    cr_assert_gt(first->calls, 1);
    aredis__loop_io_stop(L, r1.h);
    aredis__loop_io_stop(L, r2.h);
    close_pair(p1);
    close_pair(p2);
}

LOOP_TEST(io_stopped_in_batch_gets_no_stale_event)
{
    same_batch_case(1);
}

LOOP_TEST(io_updated_in_batch_gets_no_stale_event)
{
    same_batch_case(2);
}

/* A watcher that stops itself and starts a new one on the same descriptor:
 * the new one is not handed the old one's event. */
LOOP_TEST(io_restarted_on_same_fd_in_batch)
{
    sockpair p = make_pair();
    iorec r = {.action = 3};
    put_byte(p.b);
    watch(&r, p.a, AREDIS_EV_READ);
    cr_assert_eq(aredis_loop_run_once(L, 2000), 1);
    cr_assert_eq(r.calls, 1);
    cr_assert_null(r.h);
    cr_assert_eq(restarted.calls, 0);
    cr_assert_eq(aredis_loop_run_once(L, 2000), 1);
    cr_assert_eq(restarted.calls, 1);
    cr_assert_eq(restarted.last, AREDIS_EV_READ);
    aredis__loop_io_stop(L, restarted.h);
    close_pair(p);
}

/* Stop, close, and watch a new socket on the same descriptor number. */
LOOP_TEST(io_descriptor_reused_after_stop)
{
    sockpair p = make_pair();
    iorec r = {0}, r2 = {0};
    int fd = p.a;
    watch(&r, p.a, AREDIS_EV_READ);
    aredis__loop_io_stop(L, r.h);
    close_pair(p);
    sockpair q = make_pair();
    if (q.a != fd) {
        cr_assert_eq(dup2(q.a, fd), fd);
        close(q.a);
        q.a = fd;
    }
    watch(&r2, q.a, AREDIS_EV_READ);
    put_byte(q.b);
    run_until(&r2.calls, 2000);
    cr_assert_eq(r2.last, AREDIS_EV_READ);
    cr_assert_eq(r.calls, 0);
    aredis__loop_io_stop(L, r2.h);
    close_pair(q);
}

LOOP_TEST(io_bad_arguments)
{
    void *h = NULL;
    cr_assert_eq(aredis__loop_io_start(L, -1, on_io, NULL, &h), AREDIS_EINVAL);
    cr_assert_null(h);
    /* epoll cannot watch a regular file; poll reports it always ready. */
    char path[] = "/tmp/aredis-loop-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    iorec r = {0};
    cr_assert_eq(aredis__loop_io_start(L, fd, on_io, &r, &r.h), 0);
    int rc = aredis__loop_io_update(L, r.h, AREDIS_EV_READ);
    if (use_poll) {
        cr_assert_eq(rc, 0);
        cr_assert_eq(aredis_loop_run_once(L, 2000), 1);
        cr_assert_eq(r.last, AREDIS_EV_READ);
    } else {
        cr_assert_eq(rc, AREDIS_EINVAL);
        cr_assert_eq(aredis_loop_run_once(L, 0), 0, "a failed update");
    }
    aredis__loop_io_stop(L, r.h);
    close(fd);
}

/* ---- run, stop, run_once ---------------------------------------------- */

LOOP_TEST(stop_from_inside_a_callback)
{
    sockpair p = make_pair();
    iorec r = {.stop_after = 3};
    watch(&r, p.a, AREDIS_EV_READ);
    put_byte(p.b); /* never read: ready on every iteration */
    cr_assert_eq(aredis_loop_run(L), 0);
    cr_assert_eq(r.calls, 3);
    /* A stop asked for outside run() makes the next run() return at once;
     * it is not lost, and it is consumed. */
    aredis_loop_stop(L);
    cr_assert_eq(aredis_loop_run(L), 0);
    cr_assert_eq(r.calls, 3);
    cr_assert_eq(aredis_loop_run(L), 0);
    cr_assert_eq(r.calls, 6);
    aredis__loop_io_stop(L, r.h);
    close_pair(p);
}

typedef struct trec {
    void *h;
    int idx;
    int calls;
    int64_t deadline, fired_at;
    int rearm_ms; /* >= 0: re-arm itself with this many ms */
    int rearms_left;
    int stop_self;
    struct trec *victim; /* stopped by this one's callback */
    struct trec *pushed; /* re-armed 5 s away by this one's callback */
} trec;

static int fire_log[512], fire_n;

static void on_timer(void *arg)
{
    trec *t = arg;
    t->calls++;
    t->fired_at = now_ms();
    if (fire_n < 512)
        fire_log[fire_n++] = t->idx;
    cr_assert_eq(aredis__loop_timer_deadline(L, t->h), -1,
                 "a firing timer is disarmed");
    if (t->victim != NULL && t->victim->h != NULL) {
        aredis__loop_timer_stop(L, t->victim->h);
        t->victim->h = NULL;
    }
    if (t->pushed != NULL)
        cr_assert_eq(aredis__loop_timer_set(L, t->pushed->h, 5000), 0);
    if (t->rearms_left > 0) {
        t->rearms_left--;
        cr_assert_eq(aredis__loop_timer_set(L, t->h, t->rearm_ms), 0);
    }
    if (t->stop_self) {
        aredis__loop_timer_stop(L, t->h);
        t->h = NULL;
    }
}

static void start_timer(trec *t)
{
    cr_assert_eq(aredis__loop_timer_start(L, on_timer, t, &t->h), 0);
    cr_assert_eq(aredis__loop_timer_deadline(L, t->h), -1);
}

LOOP_TEST(run_returns_when_idle)
{
    int64_t t0 = now_ms();
    cr_assert_eq(aredis_loop_run(L), 0);
    cr_assert_lt(now_ms() - t0, 1000, "an empty loop returns at once");

    trec t = {0};
    start_timer(&t);
    cr_assert_eq(aredis__loop_timer_set(L, t.h, 20), 0);
    t0 = now_ms();
    cr_assert_eq(aredis_loop_run(L), 0);
    cr_assert_eq(t.calls, 1);
    cr_assert_geq(now_ms() - t0, 19);
    cr_assert_lt(now_ms() - t0, 2000);

    /* A watcher that loses interest in its callback ends the run. */
    sockpair p = make_pair();
    iorec r = {.action = 4};
    watch(&r, p.a, AREDIS_EV_READ);
    put_byte(p.b);
    cr_assert_eq(aredis_loop_run(L), 0);
    cr_assert_eq(r.calls, 1);
    aredis__loop_io_stop(L, r.h);
    aredis__loop_timer_stop(L, t.h);
    close_pair(p);
}

LOOP_TEST(run_once_timeout_is_honoured)
{
    trec far = {0}, soon = {0};
    start_timer(&far);
    cr_assert_eq(aredis__loop_timer_set(L, far.h, 60000), 0);
    int64_t t0 = now_ms();
    cr_assert_eq(aredis_loop_run_once(L, 100), 1);
    int64_t el = now_ms() - t0;
    cr_assert_geq(el, 90, "returned after %lld ms", (long long)el);
    cr_assert_lt(el, 2000);

    t0 = now_ms();
    cr_assert_eq(aredis_loop_run_once(L, 0), 1);
    cr_assert_lt(now_ms() - t0, 1000, "timeout 0 polls");

    /* The next timer shortens a long wait. */
    start_timer(&soon);
    cr_assert_eq(aredis__loop_timer_set(L, soon.h, 30), 0);
    t0 = now_ms();
    while (soon.calls == 0 && now_ms() - t0 < 2000)
        cr_assert_eq(aredis_loop_run_once(L, 10000), 1);
    cr_assert_eq(soon.calls, 1);
    cr_assert_lt(now_ms() - t0, 2000);

    /* An idle loop with no wake source does not block, whatever the
     * timeout: nothing could end the wait. */
    aredis__loop_timer_stop(L, far.h);
    aredis__loop_timer_stop(L, soon.h);
    t0 = now_ms();
    cr_assert_eq(aredis_loop_run_once(L, -1), 0);
    cr_assert_eq(aredis_loop_run_once(L, 5000), 0);
    cr_assert_lt(now_ms() - t0, 1000);
}

/* ---- timers ----------------------------------------------------------- */

/* Fired in (deadline, arming order): deadlines from the loop itself. */
static void check_fire_order(trec *t)
{
    for (int k = 1; k < fire_n; k++) {
        const trec *a = &t[fire_log[k - 1]], *b = &t[fire_log[k]];
        cr_assert(a->deadline < b->deadline ||
                      (a->deadline == b->deadline && a->idx < b->idx),
                  "out of order at %d: %lld then %lld", k,
                  (long long)a->deadline, (long long)b->deadline);
    }
}

LOOP_TEST(timers_fire_in_deadline_order)
{
    enum { N = 100 };
    trec t[N];
    memset(t, 0, sizeof t);
    srand(1234 + use_poll);
    fire_n = 0;
    int64_t t0 = now_ms();
    for (int i = 0; i < N; i++) {
        t[i].idx = i;
        start_timer(&t[i]);
        int ms = rand() % 100;
        int64_t before = now_ms();
        cr_assert_eq(aredis__loop_timer_set(L, t[i].h, ms), 0);
        t[i].deadline = aredis__loop_timer_deadline(L, t[i].h);
        cr_assert_geq(t[i].deadline, before + ms);
        cr_assert_leq(t[i].deadline, now_ms() + ms);
    }
    cr_assert_eq(aredis_loop_run(L), 0);
    cr_assert_lt(now_ms() - t0, 2000);
    cr_assert_eq(fire_n, N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(t[i].calls, 1, "timer %d", i);
        cr_assert_geq(t[i].fired_at, t[i].deadline, "timer %d early", i);
    }
    check_fire_order(t);
    for (int i = 0; i < N; i++)
        aredis__loop_timer_stop(L, t[i].h);
}

LOOP_TEST(timer_heap_survives_random_operations)
{
    enum { N = 300, OPS = 3000 };
    trec t[N];
    memset(t, 0, sizeof t);
    srand(99 + use_poll);
    for (int i = 0; i < N; i++) {
        t[i].idx = i;
        start_timer(&t[i]);
    }
    for (int op = 0; op < OPS; op++) {
        int i = rand() % N;
        int64_t ms = rand() % 4 == 0 ? -1 : rand() % 40;
        cr_assert_eq(aredis__loop_timer_set(L, t[i].h, ms), 0);
    }
    int armed = 0;
    for (int i = 0; i < N; i++) {
        t[i].deadline = aredis__loop_timer_deadline(L, t[i].h);
        armed += t[i].deadline >= 0;
    }
    cr_assert_gt(armed, 0);
    fire_n = 0;
    cr_assert_eq(aredis_loop_run(L), 0);
    cr_assert_eq(fire_n, armed);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(t[i].calls, t[i].deadline >= 0, "timer %d", i);
        if (t[i].calls)
            cr_assert_geq(t[i].fired_at, t[i].deadline);
    }
    for (int k = 1; k < fire_n; k++)
        cr_assert_leq(t[fire_log[k - 1]].deadline, t[fire_log[k]].deadline);
    for (int i = 0; i < N; i++)
        aredis__loop_timer_stop(L, t[i].h);
}

LOOP_TEST(timer_rearm_replaces)
{
    trec t = {0};
    start_timer(&t);
    cr_assert_eq(aredis__loop_timer_set(L, t.h, 60000), 0);
    cr_assert_eq(aredis__loop_timer_set(L, t.h, 10), 0);
    cr_assert_leq(aredis__loop_timer_deadline(L, t.h), now_ms() + 10);
    int64_t t0 = now_ms();
    cr_assert_eq(aredis_loop_run(L), 0);
    cr_assert_eq(t.calls, 1);
    cr_assert_lt(now_ms() - t0, 2000);

    t0 = now_ms();
    cr_assert_eq(aredis__loop_timer_set(L, t.h, 10), 0);
    cr_assert_eq(aredis__loop_timer_set(L, t.h, 300), 0);
    while (now_ms() - t0 < 100)
        cr_assert_eq(aredis_loop_run_once(L, 10), 1);
    cr_assert_eq(t.calls, 1, "the replaced arming fired");
    cr_assert_eq(aredis_loop_run(L), 0);
    cr_assert_eq(t.calls, 2);
    cr_assert_geq(t.fired_at - t0, 299);
    aredis__loop_timer_stop(L, t.h);
}

LOOP_TEST(timer_disarm)
{
    trec t = {0};
    start_timer(&t);
    cr_assert_eq(aredis__loop_timer_set(L, t.h, 10), 0);
    cr_assert_eq(aredis__loop_timer_set(L, t.h, -1), 0);
    cr_assert_eq(aredis__loop_timer_deadline(L, t.h), -1);
    cr_assert_eq(aredis__loop_timer_set(L, t.h, -5), 0, "twice is harmless");
    int64_t t0 = now_ms();
    cr_assert_eq(aredis_loop_run(L), 0, "a disarmed timer is not alive");
    cr_assert_lt(now_ms() - t0, 1000);
    cr_assert_eq(aredis_loop_run_once(L, 50), 0);
    cr_assert_eq(t.calls, 0);
    aredis__loop_timer_stop(L, t.h);
}

LOOP_TEST(timer_rearms_and_stops_itself)
{
    trec t = {.rearms_left = 4, .rearm_ms = 1};
    start_timer(&t);
    cr_assert_eq(aredis__loop_timer_set(L, t.h, 0), 0);
    cr_assert_eq(aredis_loop_run(L), 0);
    cr_assert_eq(t.calls, 5);

    t.stop_self = 1;
    cr_assert_eq(aredis__loop_timer_set(L, t.h, 0), 0);
    cr_assert_eq(aredis_loop_run(L), 0);
    cr_assert_eq(t.calls, 6);
    cr_assert_null(t.h);
}

/* A watcher that, once its descriptor is readable, drains it, loses
 * interest and sets a timer: a timer moved while the loop already waits
 * for it (far timers wait on a timerfd with epoll). */
typedef struct setter {
    void *h;
    int fd;
    trec *t;
    int ms;
} setter;

static void on_set(void *arg, int events)
{
    setter *s = arg;
    (void)events;
    char c;
    while (read(s->fd, &c, 1) > 0)
        ;
    cr_assert_eq(aredis__loop_io_update(L, s->h, 0), 0);
    cr_assert_eq(aredis__loop_timer_set(L, s->t->h, s->ms), 0);
    s->t->deadline = aredis__loop_timer_deadline(L, s->t->h);
}

static void run_with_setter(setter *s)
{
    sockpair p = make_pair();
    s->fd = p.a;
    cr_assert_eq(aredis__loop_io_start(L, p.a, on_set, s, &s->h), 0);
    cr_assert_eq(aredis__loop_io_update(L, s->h, AREDIS_EV_READ), 0);
    put_byte(p.b);
    cr_assert_eq(aredis_loop_run(L), 0);
    aredis__loop_io_stop(L, s->h);
    close_pair(p);
}

/* The loop waits for a far timer; a nearer one set meanwhile ends the
 * wait at its own deadline, not the far one's. */
LOOP_TEST(far_timer_wait_ends_at_a_nearer_one_set_later)
{
    trec far = {0}, near = {.victim = &far};
    start_timer(&far);
    start_timer(&near);
    cr_assert_eq(aredis__loop_timer_set(L, far.h, 30000), 0);
    setter s = {.t = &near, .ms = 150};
    int64_t t0 = now_ms();
    uint64_t it0 = aredis__loop_iterations(L);
    run_with_setter(&s);
    cr_assert_eq(near.calls, 1);
    cr_assert_eq(far.calls, 0);
    cr_assert_null(far.h, "stopped by the near timer");
    cr_assert_geq(near.fired_at, near.deadline);
    cr_assert_lt(now_ms() - t0, 5000, "waited for the far deadline");
    cr_assert_lt(aredis__loop_iterations(L) - it0, 20, "the loop spun");
    aredis__loop_timer_stop(L, near.h);
}

/* A far timer moved later while the loop waits for it fires at its new
 * deadline, once, without the loop spinning in between: the wait for it
 * ends early (at the old deadline), and what is left of it is near. */
LOOP_TEST(far_timer_moved_later_fires_once_at_its_new_deadline)
{
    trec t = {0};
    start_timer(&t);
    cr_assert_eq(aredis__loop_timer_set(L, t.h, 150), 0);
    setter s = {.t = &t, .ms = 220};
    int64_t t0 = now_ms();
    uint64_t it0 = aredis__loop_iterations(L);
    run_with_setter(&s);
    cr_assert_eq(t.calls, 1);
    cr_assert_geq(t.fired_at, t.deadline, "fired early");
    cr_assert_geq(t.fired_at - t0, 219);
    cr_assert_lt(aredis__loop_iterations(L) - it0, 20, "the loop spun");
    aredis__loop_timer_stop(L, t.h);
}

/* A wait that only a far timer bounds, with a readable descriptor to end
 * it at once (with epoll, the timerfd is armed for the far deadline). */
static void wait_once_for_far(void)
{
    sockpair p = make_pair();
    iorec r = {0};
    watch(&r, p.a, AREDIS_EV_READ);
    put_byte(p.b);
    cr_assert_eq(aredis_loop_run_once(L, -1), 1);
    cr_assert_eq(r.calls, 1);
    aredis__loop_io_stop(L, r.h);
    close_pair(p);
}

/* The far timer the loop last waited for is stopped, and one due sooner
 * (but still far) is set: the wait ends at the new deadline. */
LOOP_TEST(far_timer_stopped_then_a_sooner_far_one_fires_on_time)
{
    trec far = {0}, sooner = {0};
    start_timer(&far);
    cr_assert_eq(aredis__loop_timer_set(L, far.h, 30000), 0);
    wait_once_for_far();
    aredis__loop_timer_stop(L, far.h);
    start_timer(&sooner);
    cr_assert_eq(aredis__loop_timer_set(L, sooner.h, 200), 0);
    sooner.deadline = aredis__loop_timer_deadline(L, sooner.h);
    int64_t t0 = now_ms();
    uint64_t it0 = aredis__loop_iterations(L);
    cr_assert_eq(aredis_loop_run(L), 0);
    cr_assert_eq(sooner.calls, 1);
    cr_assert_geq(sooner.fired_at, sooner.deadline, "fired early");
    cr_assert_lt(now_ms() - t0, 5000, "waited for the stopped timer");
    cr_assert_lt(aredis__loop_iterations(L) - it0, 20, "the loop spun");
    aredis__loop_timer_stop(L, sooner.h);
}

/* run_once() with a timeout of its own returns when it expires, however
 * far the next timer is and whatever the loop waited for before. */
LOOP_TEST(run_once_timeout_ends_the_wait_before_a_far_timer)
{
    trec far = {0};
    start_timer(&far);
    cr_assert_eq(aredis__loop_timer_set(L, far.h, 30000), 0);
    wait_once_for_far();
    int64_t t0 = now_ms();
    cr_assert_eq(aredis_loop_run_once(L, 150), 1);
    int64_t took = now_ms() - t0;
    cr_assert_geq(took, 140, "returned after %lld ms", (long long)took);
    cr_assert_lt(took, 5000, "waited for the far timer");
    cr_assert_eq(far.calls, 0);
    aredis__loop_timer_stop(L, far.h);
}

/* A timer that re-arms itself at 0 ms fires once per iteration; it cannot
 * hold one iteration for ever. */
LOOP_TEST(timer_zero_rearm_waits_for_next_iteration)
{
    trec t = {.rearms_left = 1000000, .rearm_ms = 0};
    start_timer(&t);
    cr_assert_eq(aredis__loop_timer_set(L, t.h, 0), 0);
    cr_assert_eq(aredis_loop_run_once(L, 0), 1);
    cr_assert_eq(t.calls, 1);
    cr_assert_eq(aredis_loop_run_once(L, 0), 1);
    cr_assert_eq(t.calls, 2);
    aredis__loop_timer_stop(L, t.h);
}

LOOP_TEST(timer_callback_stops_and_pushes_other_due_timers)
{
    trec a = {.idx = 0}, b = {.idx = 1}, c = {.idx = 2};
    a.victim = &b;
    a.pushed = &c;
    start_timer(&a);
    start_timer(&b);
    start_timer(&c);
    /* All due at once, a first (it was armed first). */
    cr_assert_eq(aredis__loop_timer_set(L, a.h, 0), 0);
    cr_assert_eq(aredis__loop_timer_set(L, b.h, 0), 0);
    cr_assert_eq(aredis__loop_timer_set(L, c.h, 0), 0);
    fire_n = 0;
    usleep(2000);
    cr_assert_eq(aredis_loop_run_once(L, 0), 1, "c is still armed");
    cr_assert_eq(a.calls, 1);
    cr_assert_eq(b.calls, 0, "a stopped timer fired");
    cr_assert_null(b.h);
    cr_assert_eq(c.calls, 0, "a timer pushed back fired");
    cr_assert_gt(aredis__loop_timer_deadline(L, c.h), now_ms() + 4000);
    aredis__loop_timer_stop(L, a.h);
    aredis__loop_timer_stop(L, c.h);
}

/* ---- wake-ups --------------------------------------------------------- */

enum { WAKE_THREADS = 4, WAKES = 1000 };

typedef struct wakectx {
    void *h;
    pthread_t loop_thread;
    atomic_int finished;
    atomic_int calls;
    int wrong_thread;
    int seen_after_all;
    struct wakectx *victim;
} wakectx;

static void on_wake(void *arg)
{
    wakectx *w = arg;
    if (!pthread_equal(pthread_self(), w->loop_thread))
        w->wrong_thread = 1;
    atomic_fetch_add(&w->calls, 1);
    if (atomic_load(&w->finished) == WAKE_THREADS)
        w->seen_after_all = 1;
    if (w->victim != NULL && w->victim->h != NULL) {
        aredis__loop_wake_stop(L, w->victim->h);
        w->victim->h = NULL;
    }
}

static void *waker(void *arg)
{
    wakectx *w = arg;
    for (int i = 0; i < WAKES; i++)
        aredis__loop_wake(L, w->h);
    /* The last wake follows the thread's "finished", so a callback that
     * starts after it sees every thread finished. */
    atomic_fetch_add(&w->finished, 1);
    aredis__loop_wake(L, w->h);
    return NULL;
}

static void wake_init(wakectx *w)
{
    memset(w, 0, sizeof *w);
    w->loop_thread = pthread_self();
    atomic_init(&w->finished, 0);
    atomic_init(&w->calls, 0);
    cr_assert_eq(aredis__loop_wake_start(L, on_wake, w, &w->h), 0);
}

LOOP_TEST(wake_from_threads)
{
    wakectx w;
    wake_init(&w);
    /* A far timer keeps the loop alive, so run_once() really blocks and
     * the wakes have to interrupt it. */
    trec keep = {0};
    start_timer(&keep);
    cr_assert_eq(aredis__loop_timer_set(L, keep.h, 60000), 0);
    pthread_t th[WAKE_THREADS];
    for (int i = 0; i < WAKE_THREADS; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, waker, &w), 0);
    int64_t end = now_ms() + 20000;
    while (!w.seen_after_all && now_ms() < end)
        cr_assert_eq(aredis_loop_run_once(L, 1000), 1);
    for (int i = 0; i < WAKE_THREADS; i++)
        pthread_join(th[i], NULL);
    cr_assert(w.seen_after_all, "no callback after the last wake");
    cr_assert_eq(w.wrong_thread, 0, "a callback ran off the loop thread");
    int calls = atomic_load(&w.calls);
    cr_assert_geq(calls, 1);
    cr_assert_leq(calls, WAKE_THREADS * (WAKES + 1));
    aredis__loop_wake_stop(L, w.h);
    aredis__loop_timer_stop(L, keep.h);
}

LOOP_TEST(wake_coalesces_and_keeps_nothing_alive)
{
    wakectx a, b;
    wake_init(&a);
    wake_init(&b);
    int64_t t0 = now_ms();
    cr_assert_eq(aredis_loop_run(L), 0);
    cr_assert_lt(now_ms() - t0, 1000, "a wake source kept the loop alive");
    cr_assert_eq(atomic_load(&a.calls), 0, "a callback without a wake");
    for (int i = 0; i < 10; i++)
        aredis__loop_wake(L, a.h);
    aredis__loop_wake(L, b.h);
    cr_assert_eq(atomic_load(&a.calls), 0, "ran inside wake()");
    cr_assert_eq(aredis_loop_run_once(L, 0), 0);
    cr_assert_eq(atomic_load(&a.calls), 1, "ten wakes, one callback");
    cr_assert_eq(atomic_load(&b.calls), 1);
    cr_assert_eq(aredis_loop_run_once(L, 0), 0);
    cr_assert_eq(atomic_load(&a.calls), 1);
    aredis__loop_wake_stop(L, a.h);
    aredis__loop_wake_stop(L, b.h);
}

static void *wake_later(void *arg)
{
    wakectx *w = arg;
    usleep(50000);
    aredis__loop_wake(L, w->h);
    return NULL;
}

/* With nothing else to do but a started wake source, run_once() waits for
 * the wake (or its timeout) instead of spinning; run() still returns. */
LOOP_TEST(idle_run_once_waits_for_a_wake)
{
    wakectx w;
    wake_init(&w);
    int64_t t0 = now_ms();
    cr_assert_eq(aredis_loop_run_once(L, 100), 0);
    int64_t el = now_ms() - t0;
    cr_assert_geq(el, 90, "returned after %lld ms", (long long)el);
    cr_assert_lt(el, 2000);

    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, wake_later, &w), 0);
    t0 = now_ms();
    cr_assert_eq(aredis_loop_run_once(L, -1), 0);
    el = now_ms() - t0;
    pthread_join(th, NULL);
    cr_assert_eq(atomic_load(&w.calls), 1);
    cr_assert_geq(el, 40, "did not wait for the wake: %lld ms", (long long)el);
    cr_assert_lt(el, 5000);

    t0 = now_ms();
    cr_assert_eq(aredis_loop_run(L), 0);
    cr_assert_lt(now_ms() - t0, 1000);
    aredis__loop_wake_stop(L, w.h);
    t0 = now_ms();
    cr_assert_eq(aredis_loop_run_once(L, -1), 0, "nothing can wake it");
    cr_assert_lt(now_ms() - t0, 1000);
}

LOOP_TEST(wake_stopped_by_another_callback)
{
    wakectx a, b;
    wake_init(&a);
    wake_init(&b);
    a.victim = &b;
    b.victim = &a;
    aredis__loop_wake(L, a.h);
    aredis__loop_wake(L, b.h);
    cr_assert_eq(aredis_loop_run_once(L, 0), 0);
    cr_assert_eq(atomic_load(&a.calls) + atomic_load(&b.calls), 1,
                 "a stopped wake source ran");
    wakectx *left = a.h != NULL ? &a : &b;
    aredis__loop_wake(L, left->h);
    cr_assert_eq(aredis_loop_run_once(L, 0), 0);
    cr_assert_eq(atomic_load(&left->calls), 1 + (left == &a));
    aredis__loop_wake_stop(L, left->h);
}

/* ---- the deferred queue ----------------------------------------------- */

typedef struct drec {
    aredis__defer d;
    int id;
    int calls;
    int forever;
    struct drec *also;   /* deferred by the first run */
    struct drec *cancel; /* undeferred by the first run */
    int try_run;         /* record what run/run_once return from here */
    int run_rc, run_once_rc;
    int free_loop;
} drec;

static int dlog[64], dlog_n;

static void on_defer(void *arg)
{
    drec *r = arg;
    r->calls++;
    if (dlog_n < 64)
        dlog[dlog_n++] = r->id;
    if (r->try_run) {
        r->run_rc = aredis_loop_run(L);
        r->run_once_rc = aredis_loop_run_once(L, 0);
    }
    if (r->free_loop) {
        aredis_loop_free(L);
        L = NULL;
        return;
    }
    if (r->forever || (r->calls == 1 && r->also != NULL)) {
        if (r->also != NULL)
            aredis__loop_defer(L, &r->also->d, on_defer, r->also);
        aredis__loop_defer(L, &r->d, on_defer, r);
    }
    if (r->calls == 1 && r->cancel != NULL)
        aredis__loop_undefer(L, &r->cancel->d);
}

static void expect_log(const int *want, int n)
{
    cr_assert_eq(dlog_n, n, "%d calls ran, expected %d", dlog_n, n);
    for (int i = 0; i < n; i++)
        cr_assert_eq(dlog[i], want[i], "position %d: %d, expected %d", i,
                     dlog[i], want[i]);
}

LOOP_TEST(deferred_fifo_and_defer_from_defer)
{
    drec d[5];
    memset(d, 0, sizeof d);
    for (int i = 0; i < 5; i++)
        d[i].id = i;
    d[1].also = &d[4];   /* 1 defers 4, then itself again */
    d[2].cancel = &d[3]; /* 2 cancels 3, already detached for this drain */
    dlog_n = 0;
    aredis__loop_defer(L, &d[1].d, on_defer, &d[1]);
    aredis__loop_defer(L, &d[2].d, on_defer, &d[2]);
    aredis__loop_defer(L, &d[1].d, on_defer, &d[1]); /* queued: no-op */
    aredis__loop_defer(L, &d[3].d, on_defer, &d[3]);
    cr_assert_eq(dlog_n, 0, "ran inside defer()");
    cr_assert_eq(aredis_loop_run_once(L, 0), 1, "more was queued");
    expect_log((int[]){1, 2}, 2);
    cr_assert_eq(aredis__defer_queued(&d[3].d), 0);
    cr_assert_eq(aredis_loop_run_once(L, 0), 0);
    expect_log((int[]){1, 2, 4, 1}, 4);
    cr_assert_eq(aredis__defer_queued(&d[1].d), 0);
    cr_assert_eq(d[3].calls, 0);
}

LOOP_TEST(undefer_keeps_the_queue_in_order)
{
    drec d[4];
    memset(d, 0, sizeof d);
    for (int i = 0; i < 4; i++)
        d[i].id = i;
    dlog_n = 0;
    aredis__loop_defer(L, &d[0].d, on_defer, &d[0]);
    aredis__loop_defer(L, &d[1].d, on_defer, &d[1]);
    aredis__loop_undefer(L, &d[1].d); /* the tail */
    aredis__loop_undefer(L, &d[1].d); /* not queued: no-op */
    aredis__loop_defer(L, &d[2].d, on_defer, &d[2]);
    aredis__loop_defer(L, &d[3].d, on_defer, &d[3]);
    aredis__loop_undefer(L, &d[0].d); /* the head */
    aredis__loop_defer(L, &d[1].d, on_defer, &d[1]);
    cr_assert_eq(aredis_loop_run(L), 0);
    expect_log((int[]){2, 3, 1}, 3);
    cr_assert_eq(d[0].calls, 0);
}

/* Undefer is O(1) wherever the call is: many clients each cancelling
 * their deferred call used to walk the queue from its head. 100,000 calls
 * cancelled from the tail backwards took ~5e9 steps that way (minutes);
 * now it is a blink, so a generous bound cannot be flaky. */
LOOP_TEST(undefer_takes_constant_time)
{
    enum { N = 100000 };
    drec *d = calloc(N, sizeof *d);
    cr_assert_not_null(d);
    for (int i = 0; i < N; i++) {
        d[i].id = i;
        aredis__loop_defer(L, &d[i].d, on_defer, &d[i]);
    }
    int64_t t0 = aredis__now_ms();
    for (int i = N - 1; i >= 1; i -= 2)
        aredis__loop_undefer(L, &d[i].d);
    int64_t took = aredis__now_ms() - t0;
    cr_assert_lt(took, 2000, "undefer of %d calls took %lld ms", N / 2,
                 (long long)took);
    dlog_n = 0;
    cr_assert_eq(aredis_loop_run(L), 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(d[i].calls, i % 2 == 0, "call %d ran %d times", i,
                     d[i].calls);
    cr_assert_eq(dlog_n, 64);
    for (int i = 0; i < 64; i++)
        cr_assert_eq(dlog[i], 2 * i, "position %d ran %d", i, dlog[i]);
    free(d);
}

/* A call cancelled from the middle of the drain in progress does not run;
 * the ones around it do, in order. */
LOOP_TEST(undefer_from_the_middle_of_a_drain)
{
    drec d[5];
    memset(d, 0, sizeof d);
    for (int i = 0; i < 5; i++) {
        d[i].id = i;
        aredis__loop_defer(L, &d[i].d, on_defer, &d[i]);
    }
    d[1].cancel = &d[3];
    dlog_n = 0;
    cr_assert_eq(aredis_loop_run_once(L, 0), 0);
    expect_log((int[]){0, 1, 2, 4}, 4);
    cr_assert_eq(d[3].calls, 0);
    cr_assert_eq(aredis__defer_queued(&d[3].d), 0);
}

LOOP_TEST(run_is_kept_alive_by_deferred_calls)
{
    drec d = {.id = 9};
    aredis__loop_defer(L, &d.d, on_defer, &d);
    cr_assert_eq(aredis_loop_run(L), 0);
    cr_assert_eq(d.calls, 1);
}

LOOP_TEST(free_runs_deferred_calls)
{
    drec d[3];
    memset(d, 0, sizeof d);
    for (int i = 0; i < 3; i++)
        d[i].id = i;
    d[0].also = &d[2];
    dlog_n = 0;
    aredis__loop_defer(L, &d[0].d, on_defer, &d[0]);
    aredis__loop_defer(L, &d[1].d, on_defer, &d[1]);
    aredis_loop_free(L);
    L = NULL;
    expect_log((int[]){0, 1, 2, 0}, 4);
}

LOOP_TEST(free_bounds_a_call_that_requeues_itself)
{
    drec d = {.forever = 1};
    dlog_n = 0;
    aredis__loop_defer(L, &d.d, on_defer, &d);
    aredis_loop_free(L);
    L = NULL;
    cr_assert_gt(d.calls, 1);
    cr_assert_leq(d.calls, 100000);
}

static int data_frees;

static void free_data(void *p)
{
    data_frees++;
    free(p);
}

LOOP_TEST(free_from_inside_a_callback)
{
    drec d = {.id = 1, .free_loop = 1};
    drec later = {.id = 2};
    aredis_loop_set_data(L, malloc(16), free_data);
    data_frees = 0;
    dlog_n = 0;
    aredis__loop_defer(L, &d.d, on_defer, &d);
    aredis__loop_defer(L, &later.d, on_defer, &later);
    /* A watcher and a timer left started are freed with the loop. */
    sockpair p = make_pair();
    iorec r = {0};
    watch(&r, p.a, AREDIS_EV_READ);
    aredis_loop *l = L;
    cr_assert_eq(aredis_loop_run(l), 0);
    cr_assert_null(L);
    expect_log((int[]){1, 2}, 2);
    cr_assert_eq(data_frees, 1);
    close_pair(p);
}

LOOP_TEST(reentry_is_ebusy)
{
    drec d = {.try_run = 1};
    aredis__loop_defer(L, &d.d, on_defer, &d);
    cr_assert_eq(aredis_loop_run_once(L, 0), 0);
    cr_assert_eq(d.run_rc, AREDIS_EBUSY);
    cr_assert_eq(d.run_once_rc, AREDIS_EBUSY);
    /* Also from a call run by aredis_loop_free(). */
    drec e = {.try_run = 1};
    aredis__loop_defer(L, &e.d, on_defer, &e);
    aredis_loop_free(L);
    L = NULL;
    cr_assert_eq(e.calls, 1);
    cr_assert_eq(e.run_rc, AREDIS_EBUSY);
    cr_assert_eq(e.run_once_rc, AREDIS_EBUSY);
}

static int timer_try_rc = 1;

static void on_timer_try_run(void *arg)
{
    (void)arg;
    timer_try_rc = aredis_loop_run(L);
}

LOOP_TEST(reentry_from_a_timer_is_ebusy)
{
    void *h;
    cr_assert_eq(aredis__loop_timer_start(L, on_timer_try_run, NULL, &h), 0);
    cr_assert_eq(aredis__loop_timer_set(L, h, 0), 0);
    timer_try_rc = 1;
    cr_assert_eq(aredis_loop_run(L), 0);
    cr_assert_eq(timer_try_rc, AREDIS_EBUSY);
    aredis__loop_timer_stop(L, h);
}

LOOP_TEST(user_data_and_leftover_sources_are_freed)
{
    cr_assert_null(aredis_loop_get_data(L));
    void *p = malloc(32);
    data_frees = 0;
    aredis_loop_set_data(L, p, free_data);
    cr_assert_eq(aredis_loop_get_data(L), p);
    /* Nothing stopped: freeing the loop must release all of it. */
    sockpair sp = make_pair();
    void *io1, *io2, *t1, *t2, *w;
    cr_assert_eq(aredis__loop_io_start(L, sp.a, on_io, NULL, &io1), 0);
    cr_assert_eq(aredis__loop_io_update(L, io1, AREDIS_EV_READ), 0);
    cr_assert_eq(aredis__loop_io_start(L, sp.b, on_io, NULL, &io2), 0);
    cr_assert_eq(aredis__loop_timer_start(L, on_timer, NULL, &t1), 0);
    cr_assert_eq(aredis__loop_timer_set(L, t1, 1000), 0);
    cr_assert_eq(aredis__loop_timer_start(L, on_timer, NULL, &t2), 0);
    cr_assert_eq(aredis__loop_wake_start(L, on_wake, NULL, &w), 0);
    aredis_loop_free(L);
    L = NULL;
    cr_assert_eq(data_frees, 1);
    close_pair(sp);
}

/* ---- out of memory ---------------------------------------------------- */

static int allocs_left;

static void *oom_malloc(size_t n)
{
    return allocs_left-- > 0 ? malloc(n) : NULL;
}

static void *oom_calloc(size_t c, size_t n)
{
    return allocs_left-- > 0 ? calloc(c, n) : NULL;
}

static void *oom_realloc(void *p, size_t n)
{
    return allocs_left-- > 0 ? realloc(p, n) : NULL;
}

/* Bytes the loop holds (counted by an allocator of its own). */
static long held_bytes;

static void *held_malloc(size_t n)
{
    void *p = malloc(n);
    if (p != NULL)
        held_bytes += (long)malloc_usable_size(p);
    return p;
}

static void *held_calloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p != NULL)
        held_bytes += (long)malloc_usable_size(p);
    return p;
}

static void *held_realloc(void *p, size_t n)
{
    size_t old = p != NULL ? malloc_usable_size(p) : 0;
    void *q = realloc(p, n);
    if (q != NULL) {
        held_bytes -= (long)old;
        held_bytes += (long)malloc_usable_size(q);
    }
    return q;
}

static void held_free(void *p)
{
    if (p != NULL)
        held_bytes -= (long)malloc_usable_size(p);
    free(p);
}

typedef struct readone {
    aredis_loop *l;
    void *h;
    int fd, calls;
} readone;

/* Read the byte that is there and lose interest. */
static void on_readone(void *arg, int events)
{
    readone *r = arg;
    char c;
    cr_assert_eq(events, AREDIS_EV_READ);
    cr_assert_eq(read(r->fd, &c, 1), 1);
    cr_assert_eq(aredis__loop_io_update(r->l, r->h, 0), 0);
    r->calls++;
}

/* More descriptors ready at once than one wait hands over: each is served
 * once, in as many waits as it takes. What the loop holds grows by the
 * watcher per descriptor, and with epoll by nothing else (the ready
 * arrays are sized for a batch, not for every registration: 64 bytes a
 * watcher at 200, where they grew to 91). */
LOOP_TEST(many_ready_descriptors)
{
    enum { N = 200 };
    static sockpair p[N];
    static readone r[N];
    aredis_allocator a = {held_malloc, held_calloc, held_realloc, held_free};
    held_bytes = 0;
    cr_assert_eq(aredis_set_allocator(&a), 0);
    aredis_loop *l = aredis__loop_new_builtin(use_poll);
    cr_assert_not_null(l);
    long base = held_bytes;
    for (int i = 0; i < N; i++) {
        p[i] = make_pair();
        r[i] = (readone){.l = l, .fd = p[i].a};
        cr_assert_eq(
            aredis__loop_io_start(l, p[i].a, on_readone, &r[i], &r[i].h), 0);
        cr_assert_eq(aredis__loop_io_update(l, r[i].h, AREDIS_EV_READ), 0);
        put_byte(p[i].b);
    }
    double per = (double)(held_bytes - base) / N;
    fprintf(stderr, "%s: %.0f bytes a watcher\n", aredis__loop_backend(l), per);
    if (!use_poll)
        cr_assert_leq(per, 75.0, "%.0f bytes a watcher", per);
    int served = 0;
    for (int round = 0; round < 100 && served < N; round++) {
        cr_assert_geq(aredis_loop_run_once(l, 1000), 0);
        served = 0;
        for (int i = 0; i < N; i++)
            served += r[i].calls;
    }
    for (int i = 0; i < N; i++) {
        cr_assert_eq(r[i].calls, 1, "descriptor %d: %d calls", i, r[i].calls);
        aredis__loop_io_stop(l, r[i].h);
        close_pair(p[i]);
    }
    aredis_loop_free(l);
    aredis_set_allocator(NULL);
}

static const aredis_allocator oom_allocator = {oom_malloc, oom_calloc,
                                               oom_realloc, free};

/* Build a loop with 12 watchers, 20 timers and a wake-up under a budget
 * of allocations. Returns 1 when everything succeeded; otherwise every
 * failure was a clean AREDIS_ENOMEM. */
static int build_under_budget(int budget, sockpair *p)
{
    allocs_left = budget;
    aredis_set_allocator(&oom_allocator);
    int ok = 1;
    aredis_loop *l = aredis__loop_new_builtin(use_poll);
    if (l == NULL) {
        aredis_set_allocator(NULL);
        return 0;
    }
    for (int i = 0; i < 12; i++) {
        void *h;
        int rc = aredis__loop_io_start(l, p[i].a, on_io, NULL, &h);
        if (rc == 0)
            rc = aredis__loop_io_update(l, h, AREDIS_EV_READ);
        cr_assert(rc == 0 || rc == AREDIS_ENOMEM, "io: %d", rc);
        ok &= rc == 0;
    }
    for (int i = 0; i < 20; i++) {
        void *h;
        int rc = aredis__loop_timer_start(l, on_timer, NULL, &h);
        if (rc == 0)
            cr_assert_eq(aredis__loop_timer_set(l, h, 1000 + i), 0,
                         "timer_set never fails");
        cr_assert(rc == 0 || rc == AREDIS_ENOMEM, "timer: %d", rc);
        ok &= rc == 0;
    }
    void *w;
    int rc = aredis__loop_wake_start(l, on_wake, NULL, &w);
    cr_assert(rc == 0 || rc == AREDIS_ENOMEM);
    ok &= rc == 0;
    aredis_loop_free(l);
    aredis_set_allocator(NULL);
    return ok;
}

LOOP_TEST(out_of_memory_is_an_error_never_a_crash)
{
    sockpair p[12];
    for (int i = 0; i < 12; i++)
        p[i] = make_pair();
    int budget = 0;
    while (!build_under_budget(budget, p)) {
        budget++;
        cr_assert_lt(budget, 500, "never succeeded");
    }
    cr_assert_gt(budget, 5, "failures were injected");
    for (int i = 0; i < 12; i++)
        close_pair(p[i]);
}

/* ---- not per backend -------------------------------------------------- */

Test(loop, backend_from_the_environment)
{
    setenv("AREDIS_LOOP_BACKEND", "poll", 1);
    aredis_loop *l = aredis_loop_new();
    cr_assert_not_null(l);
    cr_assert_str_eq(aredis__loop_backend(l), "poll");
    aredis_loop_free(l);
    setenv("AREDIS_LOOP_BACKEND", "nonsense", 1);
    l = aredis_loop_new();
    cr_assert_not_null(l);
#ifdef __linux__
    cr_assert_str_eq(aredis__loop_backend(l), "epoll");
#endif
    aredis_loop_free(l);
    unsetenv("AREDIS_LOOP_BACKEND");
    aredis_loop_free(NULL);
}

Test(loop, monotonic_clock)
{
    int64_t a = aredis__now_ms();
    usleep(20000);
    int64_t b = aredis__now_ms();
    cr_assert_geq(b - a, 19);
    cr_assert_lt(b - a, 5000);
}

/* A custom loop that records what the wrapper asks of it. */
typedef struct fake {
    int timers, timer_stops, sets, frees;
    int64_t last_ms;
    aredis_event_cb timer_cb;
    void *timer_arg;
} fake;

static int fake_io_start(void *impl, int fd, aredis_io_cb cb, void *arg,
                         void **handle)
{
    (void)fd;
    (void)cb;
    (void)arg;
    *handle = impl;
    return 0;
}

static int fake_io_update(void *impl, void *handle, int events)
{
    (void)impl;
    (void)handle;
    (void)events;
    return 0;
}

static void fake_stop(void *impl, void *handle)
{
    (void)impl;
    (void)handle;
}

static int fake_timer_start(void *impl, aredis_event_cb cb, void *arg,
                            void **handle)
{
    fake *f = impl;
    f->timers++;
    f->timer_cb = cb;
    f->timer_arg = arg;
    *handle = f;
    return 0;
}

static int fake_timer_set(void *impl, void *handle, int64_t ms)
{
    fake *f = impl;
    (void)handle;
    f->sets++;
    f->last_ms = ms;
    return 0;
}

static void fake_timer_stop(void *impl, void *handle)
{
    fake *f = impl;
    (void)handle;
    f->timer_stops++;
}

static int fake_wake_start(void *impl, aredis_event_cb cb, void *arg,
                           void **handle)
{
    (void)cb;
    (void)arg;
    *handle = impl;
    return 0;
}

static void fake_free(void *impl)
{
    ((fake *)impl)->frees++;
}

static const aredis_loop_ops fake_ops = {
    fake_io_start,  fake_io_update,  fake_stop,       fake_timer_start,
    fake_timer_set, fake_timer_stop, fake_wake_start, fake_stop,
    fake_stop,      fake_free,
};

Test(loop_custom, run_is_not_supported)
{
    fake f = {0};
    aredis_loop *l = aredis_loop_new_custom(&fake_ops, &f);
    cr_assert_not_null(l);
    cr_assert_eq(aredis_loop_run(l), AREDIS_ENOTSUP);
    cr_assert_eq(aredis_loop_run_once(l, 0), AREDIS_ENOTSUP);
    cr_assert_null(aredis__loop_backend(l));
    aredis_loop_free(l);
    cr_assert_eq(f.frees, 1);
    cr_assert_eq(f.timer_stops, 1, "the drain timer is stopped");
}

Test(loop_custom, incomplete_ops_are_refused)
{
    fake f = {0};
    aredis_loop_ops ops = fake_ops;
    cr_assert_null(aredis_loop_new_custom(NULL, &f));
    ops.timer_set = NULL;
    cr_assert_null(aredis_loop_new_custom(&ops, &f));
    ops = fake_ops;
    ops.free = NULL; /* optional */
    aredis_loop *l = aredis_loop_new_custom(&ops, &f);
    cr_assert_not_null(l);
    aredis_loop_free(l);
    cr_assert_eq(f.frees, 0);
}

Test(loop_custom, deferred_calls_ride_a_zero_timer)
{
    fake f = {0};
    aredis_loop *l = aredis_loop_new_custom(&fake_ops, &f);
    cr_assert_not_null(l);
    cr_assert_eq(f.timers, 1);
    cr_assert_eq(f.sets, 0);
    drec a = {.id = 1}, b = {.id = 2};
    L = l;
    dlog_n = 0;
    aredis__loop_defer(l, &a.d, on_defer, &a);
    cr_assert_eq(f.sets, 1);
    cr_assert_eq(f.last_ms, 0);
    aredis__loop_defer(l, &b.d, on_defer, &b);
    cr_assert_eq(f.sets, 1, "armed once while the queue is not empty");
    /* The application's loop fires the timer. */
    f.timer_cb(f.timer_arg);
    expect_log((int[]){1, 2}, 2);
    /* Undeferring the last queued call disarms the timer. */
    aredis__loop_defer(l, &a.d, on_defer, &a);
    cr_assert_eq(f.sets, 2);
    aredis__loop_undefer(l, &a.d);
    cr_assert_eq(f.sets, 3);
    cr_assert_eq(f.last_ms, -1);
    /* What is queued at free time runs before the loop goes. */
    aredis__loop_defer(l, &b.d, on_defer, &b);
    aredis_loop_free(l);
    L = NULL;
    expect_log((int[]){1, 2, 2}, 3);
    cr_assert_eq(f.frees, 1);
}

Test(loop_custom, free_from_a_deferred_call)
{
    fake f = {0};
    aredis_loop *l = aredis_loop_new_custom(&fake_ops, &f);
    cr_assert_not_null(l);
    drec a = {.id = 1, .free_loop = 1}, b = {.id = 2};
    L = l;
    dlog_n = 0;
    aredis__loop_defer(l, &a.d, on_defer, &a);
    aredis__loop_defer(l, &b.d, on_defer, &b);
    f.timer_cb(f.timer_arg);
    expect_log((int[]){1, 2}, 2);
    cr_assert_eq(f.frees, 1, "freed once the drain was over");
}
