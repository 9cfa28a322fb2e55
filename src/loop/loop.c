/* The aredis_loop wrapper (loop layer).
 *
 * An aredis_loop is an operations table, the adapter's pointer and the
 * queue of deferred calls. The aredis__loop_* wrappers dispatch to the
 * table; run, run_once and stop drive the built-in loop (builtin.c) and
 * drain the queue once per iteration. On a custom loop the queue is run
 * from a zero-delay timer of the application's own loop. This file must
 * not call into any layer above the loop. */
#include "loop/loop_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aredis/error.h"
#include "util/alloc.h"

/* A deferred call that keeps queueing itself again would make
 * aredis_loop_free() spin for ever; after this many drains whatever is
 * still queued is dropped without being run. */
#define FREE_DRAIN_ROUNDS 1000

/* Spare objects kept per kind (aredis__loop_spare_put), and the largest
 * spare block kept. */
#define SPARE_MAX 8
#define SPARE_BLOCK_MAX 4096

struct aredis_loop {
    aredis_loop_ops ops;
    void *impl;
    int is_builtin;

    /* The deferred queue: a circular doubly linked FIFO through
     * aredis__defer.next/prev, with this sentinel as its head, so a call
     * is added and removed in O(1) wherever it is. */
    aredis__defer queue;
    /* The calls detached for the drain in progress, the same way. Calls
     * queued while it runs go to `queue` and wait for the next drain, so
     * a call that queues itself again cannot keep one drain going for
     * ever; aredis__loop_undefer() unlinks from either list alike. */
    aredis__defer draining;

    /* Custom loops only: a timer of the application's loop, armed at 0 ms
     * while the queue is not empty. A timer rather than a wake-up, because
     * the adapters' wake-ups do not keep the application's loop running
     * (uv_unref, ev_unref) and pending calls must. */
    void *drain_timer;
    int drain_timer_armed;

    void *data;
    void (*data_free)(void *);

    struct {
        void *obj[SPARE_MAX];
        void (*free_fn)(void *);
        int n;
    } spare[AREDIS__SPARE_KINDS];
    struct {
        void *p;
        size_t cap;
    } blocks[SPARE_MAX];
    int nblocks;

    void *slot[AREDIS__SLOTS]; /* aredis__loop_slot() */

    /* > 0 while inside aredis_loop_run/run_once or a drain: what runs then
     * is a callback, which may neither re-enter the loop (AREDIS_EBUSY)
     * nor free it at once (free_pending defers that to the outermost
     * frame). */
    int depth;
    int write_first; /* aredis__loop_set_write_first() */
    int stop_requested;
    int free_pending;

    /* Iterations of the built-in loop so far (waits, whether or not they
     * returned events): tests bound it over an idle period to prove the
     * loop sleeps when there is nothing to do. */
    uint64_t iterations;
};

int64_t aredis__now_ms(void)
{
    struct timespec ts;
    /* CLOCK_MONOTONIC cannot fail on the systems aredis supports; a zero
     * clock would only make timers fire early, never crash. */
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the deferred queue ----------------------------------------------- */

static void list_init(aredis__defer *sentinel)
{
    sentinel->next = sentinel->prev = sentinel;
}

static int list_empty(const aredis__defer *sentinel)
{
    return sentinel->next == sentinel;
}

/* Unlink d; it is left linked to itself, so a second unlink is harmless. */
static void list_unlink(aredis__defer *d)
{
    d->prev->next = d->next;
    d->next->prev = d->prev;
    d->next = d->prev = d;
}

/* Move every call of `from` to the end of `to` (empty). */
static void list_move(aredis__defer *to, aredis__defer *from)
{
    if (list_empty(from))
        return;
    to->next = from->next;
    to->prev = from->prev;
    to->next->prev = to;
    to->prev->next = to;
    list_init(from);
}

static void drain_timer_arm(aredis_loop *l)
{
    if (l->drain_timer == NULL || l->drain_timer_armed || list_empty(&l->queue))
        return;
    /* If the adapter cannot arm it, the calls stay queued: the next defer
     * or drain tries again, and aredis_loop_free() runs them at the
     * latest. */
    if (l->ops.timer_set(l->impl, l->drain_timer, 0) == 0)
        l->drain_timer_armed = 1;
}

void aredis__loop_defer(aredis_loop *l, aredis__defer *d, aredis_event_cb cb,
                        void *arg)
{
    if (aredis__defer_queued(d))
        return;
    d->cb = cb;
    d->arg = arg;
    d->next = &l->queue;
    d->prev = l->queue.prev;
    d->prev->next = d;
    l->queue.prev = d;
    drain_timer_arm(l);
}

void aredis__loop_undefer(aredis_loop *l, aredis__defer *d)
{
    if (!aredis__defer_queued(d))
        return;
    list_unlink(d); /* from the queue or the drain in progress, alike */
    if (list_empty(&l->queue) && l->drain_timer_armed) {
        (void)l->ops.timer_set(l->impl, l->drain_timer, -1);
        l->drain_timer_armed = 0;
    }
}

/* Run the calls queued so far, in order. Each is unqueued before it runs,
 * so it may queue itself again (for the next drain). */
static void drain(aredis_loop *l)
{
    /* A drain inside a drain would be a callback running the loop, which
     * the depth check refuses; the guard only keeps the lists sane. */
    if (!list_empty(&l->draining))
        return;
    list_move(&l->draining, &l->queue);
    while (!list_empty(&l->draining)) {
        aredis__defer *d = l->draining.next;
        list_unlink(d);
        d->cb(d->arg);
    }
}

/* ---- shared state of the layer above ---------------------------------- */

void **aredis__loop_slot(aredis_loop *l, int kind)
{
    return &l->slot[kind];
}

/* ---- spare objects ---------------------------------------------------- */

void *aredis__loop_spare_take(aredis_loop *l, int kind)
{
    return l->spare[kind].n > 0 ? l->spare[kind].obj[--l->spare[kind].n] : NULL;
}

int aredis__loop_spare_put(aredis_loop *l, int kind, void *obj,
                           void (*free_fn)(void *))
{
    if (l->spare[kind].n == SPARE_MAX)
        return -1;
    l->spare[kind].obj[l->spare[kind].n++] = obj;
    l->spare[kind].free_fn = free_fn;
    return 0;
}

void *aredis__loop_spare_block_take(aredis_loop *l, size_t *cap)
{
    if (l->nblocks == 0)
        return NULL;
    /* The largest: a connection's output buffer and a client's encoding
     * area share the cache, and the smaller would only grow again. */
    int best = 0;
    for (int i = 1; i < l->nblocks; i++)
        if (l->blocks[i].cap > l->blocks[best].cap)
            best = i;
    void *p = l->blocks[best].p;
    *cap = l->blocks[best].cap;
    l->blocks[best] = l->blocks[--l->nblocks];
    return p;
}

int aredis__loop_spare_block_put(aredis_loop *l, void *block, size_t cap)
{
    if (cap > SPARE_BLOCK_MAX)
        return 1;
    if (l->nblocks == SPARE_MAX)
        return -1;
    l->blocks[l->nblocks].p = block;
    l->blocks[l->nblocks].cap = cap;
    l->nblocks++;
    return 0;
}

/* ---- creation and destruction ----------------------------------------- */

static void loop_destroy(aredis_loop *l)
{
    /* Callbacks run by the drains below see a loop that is busy: a nested
     * aredis_loop_free() only sets free_pending, which is already moot. */
    l->depth++;
    for (int round = 0; !list_empty(&l->queue) && round < FREE_DRAIN_ROUNDS;
         round++)
        drain(l);
    /* Whatever still requeues itself is dropped unrun. */
    for (aredis__defer *d = l->queue.next, *next; d != &l->queue; d = next) {
        next = d->next;
        d->next = d->prev = d;
    }
    list_init(&l->queue);
    /* After the drains: a final release may have given objects back. */
    for (int k = 0; k < AREDIS__SPARE_KINDS; k++)
        while (l->spare[k].n > 0)
            l->spare[k].free_fn(l->spare[k].obj[--l->spare[k].n]);
    while (l->nblocks > 0)
        aredis__free(l->blocks[--l->nblocks].p);
    if (l->drain_timer != NULL) {
        l->ops.timer_stop(l->impl, l->drain_timer);
        l->drain_timer = NULL;
    }
    if (l->ops.free != NULL)
        l->ops.free(l->impl);
    if (l->data_free != NULL)
        l->data_free(l->data);
    aredis__free(l);
}

static aredis_loop *loop_alloc(void)
{
    aredis_loop *l = aredis__calloc(1, sizeof *l);
    if (l == NULL)
        return NULL;
    list_init(&l->queue);
    list_init(&l->draining);
    return l;
}

aredis_loop *aredis__loop_new_builtin(int force_poll)
{
    aredis__builtin *b;
    if (aredis__builtin_new(force_poll, &b) != 0)
        return NULL;
    aredis_loop *l = loop_alloc();
    if (l == NULL) {
        aredis__builtin_ops.free(b);
        return NULL;
    }
    l->ops = aredis__builtin_ops;
    l->impl = b;
    l->is_builtin = 1;
    return l;
}

aredis_loop *aredis_loop_new(void)
{
    /* A test knob: AREDIS_LOOP_BACKEND=poll selects the portable backend
     * where epoll exists. Any other value means the default. */
    const char *be = getenv("AREDIS_LOOP_BACKEND");
    return aredis__loop_new_builtin(be != NULL && strcmp(be, "poll") == 0);
}

static void on_drain_timer(void *arg)
{
    aredis_loop *l = arg;
    l->drain_timer_armed = 0;
    l->depth++;
    drain(l);
    l->depth--;
    if (l->depth == 0 && l->free_pending) {
        loop_destroy(l);
        return;
    }
    drain_timer_arm(l);
}

aredis_loop *aredis_loop_new_custom(const aredis_loop_ops *ops, void *impl)
{
    /* Every operation but free is required. */
    if (ops == NULL || !ops->io_start || !ops->io_update || !ops->io_stop ||
        !ops->timer_start || !ops->timer_set || !ops->timer_stop ||
        !ops->wake_start || !ops->wake || !ops->wake_stop)
        return NULL;
    aredis_loop *l = loop_alloc();
    if (l == NULL)
        return NULL;
    l->ops = *ops;
    l->impl = impl;
    /* Started now rather than at the first defer, because
     * aredis__loop_defer() has no way to report a failure. */
    if (ops->timer_start(impl, on_drain_timer, l, &l->drain_timer) != 0) {
        aredis__free(l);
        return NULL;
    }
    return l;
}

void aredis_loop_free(aredis_loop *l)
{
    if (l == NULL)
        return;
    if (l->depth > 0) {
        l->free_pending = 1;
        return;
    }
    loop_destroy(l);
}

/* ---- running the built-in loop ---------------------------------------- */

/* One iteration: wait, dispatch, then drain the queue. Returns 1 while
 * something is still being waited for, 0 when idle, or a negative error.
 *
 * It does not wait at all when calls are queued, nor when the loop is idle
 * and either `for_run` is set (run() is about to return) or no wake source
 * is started (nothing could end the wait but the timeout). An idle
 * run_once() with a wake source does wait: that is how a caller waits for
 * a name resolution or a submission from another thread without spinning.
 * On a write-first loop, queued calls are drained instead of waiting, and
 * that is the whole iteration. */
static int loop_iterate(aredis_loop *l, int timeout_ms, int for_run)
{
    aredis__builtin *b = l->impl;
    /* Write first: the deferred calls (the writes among them) make a turn
     * of their own, so that the caller sees what they completed before
     * the loop waits. */
    if (l->write_first && !list_empty(&l->queue)) {
        drain(l);
        return aredis__builtin_alive(b) || !list_empty(&l->queue);
    }
    int idle = !aredis__builtin_alive(b);
    if (!list_empty(&l->queue) ||
        (idle && (for_run || !aredis__builtin_wakeable(b))))
        timeout_ms = 0;
    l->iterations++;
    int rc = aredis__builtin_poll(b, timeout_ms);
    drain(l);
    if (rc < 0)
        return rc;
    return aredis__builtin_alive(b) || !list_empty(&l->queue);
}

int aredis__loop_busy(const aredis_loop *l)
{
    return l->depth > 0;
}

int aredis_loop_run_once(aredis_loop *l, int timeout_ms)
{
    if (l == NULL)
        return AREDIS_EINVAL;
    if (!l->is_builtin)
        return AREDIS_ENOTSUP;
    if (l->depth > 0)
        return AREDIS_EBUSY;
    l->depth++;
    int rc = loop_iterate(l, timeout_ms < 0 ? -1 : timeout_ms, 0);
    l->depth--;
    if (l->free_pending) {
        loop_destroy(l);
        return rc < 0 ? rc : 0;
    }
    return rc;
}

int aredis_loop_run(aredis_loop *l)
{
    if (l == NULL)
        return AREDIS_EINVAL;
    if (!l->is_builtin)
        return AREDIS_ENOTSUP;
    if (l->depth > 0)
        return AREDIS_EBUSY;
    l->depth++;
    int rc = 0;
    /* A stop requested while the loop was not running is honoured here:
     * the request is consumed by the next run, never lost. */
    while (!l->stop_requested && !l->free_pending) {
        rc = loop_iterate(l, -1, 1);
        if (rc <= 0)
            break;
    }
    l->stop_requested = 0;
    l->depth--;
    if (l->free_pending)
        loop_destroy(l);
    return rc < 0 ? rc : 0;
}

void aredis_loop_stop(aredis_loop *l)
{
    l->stop_requested = 1;
}

int aredis__loop_io_set_wait(aredis_loop *l, void *handle,
                             aredis__io_wait_cb cb)
{
    if (!l->is_builtin)
        return AREDIS_ENOTSUP;
    aredis__builtin_io_set_wait(l->impl, handle, cb);
    return 0;
}

void aredis__loop_wake_set_passive(aredis_loop *l, void *handle, int on)
{
    if (l->is_builtin && handle != NULL)
        aredis__builtin_wake_set_passive(l->impl, handle, on);
}

void aredis__loop_set_write_first(aredis_loop *l, int on)
{
    l->write_first = l->is_builtin && on;
}

/* ---- user data -------------------------------------------------------- */

void aredis_loop_set_data(aredis_loop *l, void *data, void (*free_fn)(void *))
{
    /* A pointer that is replaced is not freed: the caller may still be
     * using it, and get_data() gave it a way to take it back. */
    l->data = data;
    l->data_free = free_fn;
}

void *aredis_loop_get_data(const aredis_loop *l)
{
    return l->data;
}

/* ---- the operations, as the layers above call them -------------------- */

int aredis__loop_io_start(aredis_loop *l, int fd, aredis_io_cb cb, void *arg,
                          void **handle)
{
    return l->ops.io_start(l->impl, fd, cb, arg, handle);
}

int aredis__loop_io_update(aredis_loop *l, void *handle, int events)
{
    return l->ops.io_update(l->impl, handle, events);
}

void aredis__loop_io_stop(aredis_loop *l, void *handle)
{
    if (handle != NULL)
        l->ops.io_stop(l->impl, handle);
}

int aredis__loop_timer_start(aredis_loop *l, aredis_event_cb cb, void *arg,
                             void **handle)
{
    return l->ops.timer_start(l->impl, cb, arg, handle);
}

int aredis__loop_timer_set(aredis_loop *l, void *handle, int64_t ms)
{
    return l->ops.timer_set(l->impl, handle, ms);
}

void aredis__loop_timer_stop(aredis_loop *l, void *handle)
{
    if (handle != NULL)
        l->ops.timer_stop(l->impl, handle);
}

int aredis__loop_wake_start(aredis_loop *l, aredis_event_cb cb, void *arg,
                            void **handle)
{
    return l->ops.wake_start(l->impl, cb, arg, handle);
}

void aredis__loop_wake(aredis_loop *l, void *handle)
{
    l->ops.wake(l->impl, handle);
}

void aredis__loop_wake_stop(aredis_loop *l, void *handle)
{
    if (handle != NULL)
        l->ops.wake_stop(l->impl, handle);
}

/* ---- for the loop's own tests ----------------------------------------- */

const char *aredis__loop_backend(const aredis_loop *l)
{
    return l->is_builtin ? aredis__builtin_backend(l->impl) : NULL;
}

uint64_t aredis__loop_iterations(const aredis_loop *l)
{
    return l->iterations;
}

int64_t aredis__loop_timer_deadline(const aredis_loop *l, const void *handle)
{
    return l->is_builtin ? aredis__builtin_timer_deadline(handle) : -1;
}
