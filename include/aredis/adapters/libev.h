/* Run aredis inside a libev loop.
 *
 *     struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);   (or EV_DEFAULT)
 *     aredis_loop *loop = aredis_loop_ev(ev);
 *     ... aredis_client_new(loop, ...), commands ...
 *     ev_run(ev, 0);
 *     aredis_loop_free(loop);         (after every client bound to it)
 *     ev_loop_destroy(ev);
 *
 * Header-only: every function is static, and the program links libev
 * itself (the CMake target aredis_libev carries the flags). libev must be
 * built with EV_MULTIPLICITY (the default).
 *
 * Keeping the loop alive: a socket aredis waits on (ev_io), an armed aredis
 * timer (ev_timer) and a pending deferred call keep ev_run() running.
 * Wake-up sources (ev_async) are unreferenced with ev_unref(), so ev_run()
 * returns when the clients have nothing left to do even though they can
 * still be woken from other threads. Call every function on the loop's
 * thread, except that the wake operation is thread-safe (ev_async_send). */
#ifndef AREDIS_ADAPTERS_LIBEV_H
#define AREDIS_ADAPTERS_LIBEV_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "../alloc.h"
#include "../error.h"
#include "../loop.h"

#if !EV_MULTIPLICITY
#error "the aredis libev adapter needs libev with EV_MULTIPLICITY"
#endif

typedef struct aredis__ev_io_src {
    ev_io io;
    struct ev_loop *loop;
    aredis_io_cb cb;
    void *arg;
    int fd;
    int events; /* the interest the ev_io was started with; 0 = stopped */
} aredis__ev_io_src;

typedef struct aredis__ev_timer_src {
    ev_timer timer;
    struct ev_loop *loop;
    aredis_event_cb cb;
    void *arg;
} aredis__ev_timer_src;

typedef struct aredis__ev_wake_src {
    ev_async async;
    struct ev_loop *loop;
    aredis_event_cb cb;
    void *arg;
} aredis__ev_wake_src;

static void *aredis__ev_calloc(size_t size)
{
    return aredis_get_allocator().calloc_fn(1, size);
}

static void aredis__ev_free(void *p)
{
    aredis_get_allocator().free_fn(p);
}

static void aredis__ev_on_io(struct ev_loop *loop, ev_io *io, int revents)
{
    aredis__ev_io_src *w = (aredis__ev_io_src *)io->data;
    int mask = 0;
    (void)loop;
    if (revents & EV_ERROR) {
        /* libev has stopped the watcher (a bad descriptor). Report it as
         * readiness of what was asked for, so the reader or writer meets
         * the error in its own call, and note that it is stopped. */
        mask = w->events;
        w->events = 0;
    } else {
        if (revents & EV_READ)
            mask |= AREDIS_EV_READ;
        if (revents & EV_WRITE)
            mask |= AREDIS_EV_WRITE;
        mask &= w->events;
    }
    if (mask != 0)
        w->cb(w->arg, mask);
}

static int aredis__ev_io_start(void *impl, int fd, aredis_io_cb cb, void *arg,
                               void **handle)
{
    if (fd < 0)
        return AREDIS_EINVAL;
    aredis__ev_io_src *w = (aredis__ev_io_src *)aredis__ev_calloc(sizeof *w);
    if (w == NULL)
        return AREDIS_ENOMEM;
    ev_io_init(&w->io, aredis__ev_on_io, fd, 0);
    w->io.data = w;
    w->loop = (struct ev_loop *)impl;
    w->cb = cb;
    w->arg = arg;
    w->fd = fd;
    *handle = w;
    return 0;
}

static int aredis__ev_io_update(void *impl, void *handle, int events)
{
    aredis__ev_io_src *w = (aredis__ev_io_src *)handle;
    (void)impl;
    events &= AREDIS_EV_READ | AREDIS_EV_WRITE;
    if (events == w->events)
        return 0;
    /* An ev_io's mask can only change while it is stopped. Stopping also
     * drops an event already pending for it in this batch. */
    ev_io_stop(w->loop, &w->io);
    if (events != 0) {
        ev_io_set(&w->io, w->fd,
                  ((events & AREDIS_EV_READ) ? EV_READ : 0) |
                      ((events & AREDIS_EV_WRITE) ? EV_WRITE : 0));
        ev_io_start(w->loop, &w->io);
    }
    w->events = events;
    return 0;
}

static void aredis__ev_io_stop(void *impl, void *handle)
{
    aredis__ev_io_src *w = (aredis__ev_io_src *)handle;
    (void)impl;
    ev_io_stop(w->loop, &w->io);
    aredis__ev_free(w);
}

static void aredis__ev_on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    aredis__ev_timer_src *w = (aredis__ev_timer_src *)t->data;
    (void)loop;
    (void)revents;
    w->cb(w->arg);
}

static int aredis__ev_timer_start(void *impl, aredis_event_cb cb, void *arg,
                                  void **handle)
{
    aredis__ev_timer_src *w =
        (aredis__ev_timer_src *)aredis__ev_calloc(sizeof *w);
    if (w == NULL)
        return AREDIS_ENOMEM;
    ev_timer_init(&w->timer, aredis__ev_on_timer, 0., 0.);
    w->timer.data = w;
    w->loop = (struct ev_loop *)impl;
    w->cb = cb;
    w->arg = arg;
    *handle = w;
    return 0;
}

static int aredis__ev_timer_set(void *impl, void *handle, int64_t ms)
{
    aredis__ev_timer_src *w = (aredis__ev_timer_src *)handle;
    (void)impl;
    ev_timer_stop(w->loop, &w->timer);
    if (ms < 0)
        return 0;
    /* libev measures from the time cached for the iteration; refresh it
     * so a timer set late in a long callback is not short. */
    ev_now_update(w->loop);
    ev_timer_set(&w->timer, (ev_tstamp)ms / 1000., 0.);
    ev_timer_start(w->loop, &w->timer);
    return 0;
}

static void aredis__ev_timer_stop(void *impl, void *handle)
{
    aredis__ev_timer_src *w = (aredis__ev_timer_src *)handle;
    (void)impl;
    ev_timer_stop(w->loop, &w->timer);
    aredis__ev_free(w);
}

static void aredis__ev_on_async(struct ev_loop *loop, ev_async *a, int revents)
{
    aredis__ev_wake_src *w = (aredis__ev_wake_src *)a->data;
    (void)loop;
    (void)revents;
    w->cb(w->arg);
}

static int aredis__ev_wake_start(void *impl, aredis_event_cb cb, void *arg,
                                 void **handle)
{
    aredis__ev_wake_src *w =
        (aredis__ev_wake_src *)aredis__ev_calloc(sizeof *w);
    if (w == NULL)
        return AREDIS_ENOMEM;
    ev_async_init(&w->async, aredis__ev_on_async);
    w->async.data = w;
    w->loop = (struct ev_loop *)impl;
    w->cb = cb;
    w->arg = arg;
    ev_async_start(w->loop, &w->async);
    /* A source that can only be woken must not keep ev_run() going. */
    ev_unref(w->loop);
    *handle = w;
    return 0;
}

static void aredis__ev_wake_send(void *impl, void *handle)
{
    aredis__ev_wake_src *w = (aredis__ev_wake_src *)handle;
    (void)impl;
    ev_async_send(w->loop, &w->async);
}

static void aredis__ev_wake_stop(void *impl, void *handle)
{
    aredis__ev_wake_src *w = (aredis__ev_wake_src *)handle;
    (void)impl;
    /* libev wants the reference back before an unreferenced watcher is
     * stopped. */
    ev_ref(w->loop);
    ev_async_stop(w->loop, &w->async);
    aredis__ev_free(w);
}

/** Wrap a libev loop.
 * \param ev the loop; borrowed: it must outlive the aredis loop, and aredis
 *        never destroys it.
 * \return an owned aredis loop for aredis_loop_free(), or NULL when out of
 *         memory. aredis_loop_run() returns AREDIS_ENOTSUP on it: run ev.
 * \since 0.1 */
static inline aredis_loop *aredis_loop_ev(struct ev_loop *ev)
{
    static const aredis_loop_ops ops = {
        aredis__ev_io_start,   aredis__ev_io_update,
        aredis__ev_io_stop,    aredis__ev_timer_start,
        aredis__ev_timer_set,  aredis__ev_timer_stop,
        aredis__ev_wake_start, aredis__ev_wake_send,
        aredis__ev_wake_stop,  NULL,
    };
    return aredis_loop_new_custom(&ops, ev);
}

#endif /* AREDIS_ADAPTERS_LIBEV_H */
