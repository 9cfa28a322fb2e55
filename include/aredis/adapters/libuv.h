/* Run aredis inside a libuv loop.
 *
 *     uv_loop_t *uv = uv_default_loop();
 *     aredis_loop *loop = aredis_loop_uv(uv);
 *     ... aredis_client_new(loop, ...), commands ...
 *     uv_run(uv, UV_RUN_DEFAULT);
 *     aredis_loop_free(loop);         (after every client bound to it)
 *     uv_run(uv, UV_RUN_DEFAULT);     (lets libuv run the close callbacks)
 *     uv_loop_close(uv);
 *
 * Header-only: every function is static, and the program links libuv
 * itself (the CMake target aredis_libuv carries the flags).
 *
 * Keeping the loop alive: a socket aredis waits on (uv_poll_t with a
 * nonzero interest), an armed aredis timer (uv_timer_t) and a pending
 * deferred call keep uv_run() running, as they should. Wake-up sources
 * (uv_async_t) are unreferenced with uv_unref(), so uv_run() returns when
 * the clients have nothing left to do even though they can still be woken
 * from other threads.
 *
 * libuv handles are released asynchronously: aredis closes them with
 * uv_close() and frees them in the close callback, so run the uv loop once
 * more after aredis_loop_free() (or after freeing clients) before
 * uv_loop_close(). Call every function on the loop's thread, except that
 * the wake operation is thread-safe (uv_async_send). */
#ifndef AREDIS_ADAPTERS_LIBUV_H
#define AREDIS_ADAPTERS_LIBUV_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "../alloc.h"
#include "../error.h"
#include "../loop.h"

/* Each aredis source is one of these, allocated with aredis's allocator.
 * The uv handle comes first so the close callback can free the whole. */
typedef struct aredis__uv_io_src {
    uv_poll_t poll;
    aredis_io_cb cb;
    void *arg;
    int events; /* the interest uv_poll_start() was given; 0 = stopped */
} aredis__uv_io_src;

typedef struct aredis__uv_timer_src {
    uv_timer_t timer;
    aredis_event_cb cb;
    void *arg;
    int in_cb; /* inside its own callback; see aredis__uv_timer_set() */
} aredis__uv_timer_src;

typedef struct aredis__uv_wake_src {
    uv_async_t async;
    aredis_event_cb cb;
    void *arg;
} aredis__uv_wake_src;

static int aredis__uv_err(int uverr)
{
    switch (uverr) {
    case 0:
        return 0;
    case UV_ENOMEM:
        return AREDIS_ENOMEM;
    case UV_EEXIST:
        return AREDIS_EBUSY; /* the descriptor already has a uv_poll_t */
    case UV_EBADF:
    case UV_EINVAL:
    case UV_EPERM:
    case UV_ENOTSOCK:
        return AREDIS_EINVAL;
    default:
        return AREDIS_EIO;
    }
}

static void *aredis__uv_calloc(size_t size)
{
    return aredis_get_allocator().calloc_fn(1, size);
}

static void aredis__uv_on_close(uv_handle_t *h)
{
    aredis_get_allocator().free_fn(h->data);
}

static void aredis__uv_on_poll(uv_poll_t *p, int status, int events)
{
    aredis__uv_io_src *w = (aredis__uv_io_src *)p->data;
    int mask = 0;
    if (status < 0) {
        /* libuv has stopped the handle (POLLERR). Report the error as
         * readiness of what was asked for, so the reader or writer meets
         * it in its own call, and note that the handle is stopped. */
        mask = w->events;
        w->events = 0;
    } else {
        if (events & (UV_READABLE | UV_DISCONNECT))
            mask |= AREDIS_EV_READ;
        if (events & UV_WRITABLE)
            mask |= AREDIS_EV_WRITE;
        mask &= w->events;
    }
    if (mask != 0)
        w->cb(w->arg, mask);
}

static int aredis__uv_io_start(void *impl, int fd, aredis_io_cb cb, void *arg,
                               void **handle)
{
    aredis__uv_io_src *w = (aredis__uv_io_src *)aredis__uv_calloc(sizeof *w);
    if (w == NULL)
        return AREDIS_ENOMEM;
    /* uv_poll_init() registers the handle with the loop only once it has
     * succeeded, so a failure can be freed at once. */
    int rc = uv_poll_init((uv_loop_t *)impl, &w->poll, fd);
    if (rc != 0) {
        aredis_get_allocator().free_fn(w);
        return aredis__uv_err(rc);
    }
    w->poll.data = w;
    w->cb = cb;
    w->arg = arg;
    *handle = w;
    return 0;
}

static int aredis__uv_io_update(void *impl, void *handle, int events)
{
    aredis__uv_io_src *w = (aredis__uv_io_src *)handle;
    (void)impl;
    events &= AREDIS_EV_READ | AREDIS_EV_WRITE;
    if (events == w->events)
        return 0;
    int rc;
    if (events == 0) {
        rc = uv_poll_stop(&w->poll);
    } else {
        int uvev = ((events & AREDIS_EV_READ) ? UV_READABLE : 0) |
                   ((events & AREDIS_EV_WRITE) ? UV_WRITABLE : 0);
        /* Restarting with another mask replaces the old one. */
        rc = uv_poll_start(&w->poll, uvev, aredis__uv_on_poll);
    }
    if (rc != 0)
        return aredis__uv_err(rc);
    w->events = events;
    return 0;
}

static void aredis__uv_io_stop(void *impl, void *handle)
{
    aredis__uv_io_src *w = (aredis__uv_io_src *)handle;
    (void)impl;
    uv_close((uv_handle_t *)&w->poll, aredis__uv_on_close);
}

static void aredis__uv_on_timer(uv_timer_t *t)
{
    aredis__uv_timer_src *w = (aredis__uv_timer_src *)t->data;
    /* w outlives the callback even if it stops the timer: the memory is
     * only released by the close callback, in a later iteration. */
    w->in_cb = 1;
    w->cb(w->arg);
    w->in_cb = 0;
}

static int aredis__uv_timer_start(void *impl, aredis_event_cb cb, void *arg,
                                  void **handle)
{
    aredis__uv_timer_src *w =
        (aredis__uv_timer_src *)aredis__uv_calloc(sizeof *w);
    if (w == NULL)
        return AREDIS_ENOMEM;
    int rc = uv_timer_init((uv_loop_t *)impl, &w->timer);
    if (rc != 0) {
        aredis_get_allocator().free_fn(w);
        return aredis__uv_err(rc);
    }
    w->timer.data = w;
    w->cb = cb;
    w->arg = arg;
    *handle = w;
    return 0;
}

static int aredis__uv_timer_set(void *impl, void *handle, int64_t ms)
{
    aredis__uv_timer_src *w = (aredis__uv_timer_src *)handle;
    if (ms < 0)
        return aredis__uv_err(uv_timer_stop(&w->timer));
    /* libuv (1.44 at least) runs a timer that is due again as soon as its
     * callback returns within the same pass over the timers, so a timer
     * re-armed at 0 ms from its own callback would never let the loop go
     * on. Waiting 1 ms sends it to a later iteration, as the seam wants. */
    if (ms == 0 && w->in_cb)
        ms = 1;
    /* libuv measures from the time cached at the start of the iteration;
     * refresh it so a timer set late in a long callback is not short. */
    uv_update_time((uv_loop_t *)impl);
    return aredis__uv_err(
        uv_timer_start(&w->timer, aredis__uv_on_timer, (uint64_t)ms, 0));
}

static void aredis__uv_timer_stop(void *impl, void *handle)
{
    aredis__uv_timer_src *w = (aredis__uv_timer_src *)handle;
    (void)impl;
    uv_close((uv_handle_t *)&w->timer, aredis__uv_on_close);
}

static void aredis__uv_on_async(uv_async_t *a)
{
    aredis__uv_wake_src *w = (aredis__uv_wake_src *)a->data;
    w->cb(w->arg);
}

static int aredis__uv_wake_start(void *impl, aredis_event_cb cb, void *arg,
                                 void **handle)
{
    aredis__uv_wake_src *w =
        (aredis__uv_wake_src *)aredis__uv_calloc(sizeof *w);
    if (w == NULL)
        return AREDIS_ENOMEM;
    int rc = uv_async_init((uv_loop_t *)impl, &w->async, aredis__uv_on_async);
    if (rc != 0) {
        aredis_get_allocator().free_fn(w);
        return aredis__uv_err(rc);
    }
    w->async.data = w;
    w->cb = cb;
    w->arg = arg;
    /* A source that can only be woken must not keep uv_run() going. */
    uv_unref((uv_handle_t *)&w->async);
    *handle = w;
    return 0;
}

static void aredis__uv_wake_send(void *impl, void *handle)
{
    (void)impl;
    (void)uv_async_send(&((aredis__uv_wake_src *)handle)->async);
}

static void aredis__uv_wake_stop(void *impl, void *handle)
{
    aredis__uv_wake_src *w = (aredis__uv_wake_src *)handle;
    (void)impl;
    uv_close((uv_handle_t *)&w->async, aredis__uv_on_close);
}

/** Wrap a libuv loop.
 * \param uv the loop; borrowed: it must outlive the aredis loop, and
 *        aredis never closes it.
 * \return an owned aredis loop for aredis_loop_free(), or NULL when out of
 *         memory. aredis_loop_run() returns AREDIS_ENOTSUP on it: run uv.
 * \since 0.1 */
static inline aredis_loop *aredis_loop_uv(uv_loop_t *uv)
{
    static const aredis_loop_ops ops = {
        aredis__uv_io_start,   aredis__uv_io_update,
        aredis__uv_io_stop,    aredis__uv_timer_start,
        aredis__uv_timer_set,  aredis__uv_timer_stop,
        aredis__uv_wake_start, aredis__uv_wake_send,
        aredis__uv_wake_stop,  NULL,
    };
    return aredis_loop_new_custom(&ops, uv);
}

#endif /* AREDIS_ADAPTERS_LIBUV_H */
