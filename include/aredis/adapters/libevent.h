/* Run aredis inside a libevent 2 event_base.
 *
 *     struct event_base *base = event_base_new();
 *     aredis_loop *loop = aredis_loop_event(base);
 *     ... aredis_client_new(loop, ...), commands ...
 *     event_base_dispatch(base);
 *     aredis_loop_free(loop);         (after every client bound to it)
 *     event_base_free(base);
 *
 * Header-only: every function is static, and the program links libevent
 * itself (the CMake target aredis_libevent carries the flags). It needs no
 * evthread setup: a wake-up from another thread is a write to an eventfd
 * (a pipe where there is none) that the base watches.
 *
 * Keeping the loop alive: a socket aredis waits on, an armed aredis timer
 * and a pending deferred call keep event_base_dispatch() running. libevent
 * cannot unreference an event, so a wake-up source (which a client that
 * accepts commands from other threads holds) also keeps it running: end
 * the loop with event_base_loopexit()/loopbreak(), or free such clients
 * first. Call every function on the loop's thread, except that the wake
 * operation is thread-safe.
 *
 * Timer precision: unless the base is made with
 * EVENT_BASE_FLAG_PRECISE_TIMER, libevent reads a coarse clock (a few
 * milliseconds of resolution on Linux), so an aredis timer may fire that
 * much early or late. */
#ifndef AREDIS_ADAPTERS_LIBEVENT_H
#define AREDIS_ADAPTERS_LIBEVENT_H

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif

#include <event2/event.h>

#include "../alloc.h"
#include "../error.h"
#include "../loop.h"

/* One persistent event per direction: enabling and disabling a direction
 * is then an event_add()/event_del(), which libevent allows anywhere,
 * including inside the event's own callback. */
typedef struct aredis__event_io_src {
    struct event *rev, *wev;
    aredis_io_cb cb;
    void *arg;
    int events;
} aredis__event_io_src;

typedef struct aredis__event_timer_src {
    struct event *ev;
    struct event_base *base;
    aredis_event_cb cb;
    void *arg;
} aredis__event_timer_src;

typedef struct aredis__event_wake_src {
    struct event *ev;
    int rfd, wfd; /* equal for an eventfd */
    aredis_event_cb cb;
    void *arg;
} aredis__event_wake_src;

static void *aredis__event_calloc(size_t size)
{
    return aredis_get_allocator().calloc_fn(1, size);
}

static void aredis__event_free(void *p)
{
    aredis_get_allocator().free_fn(p);
}

static void aredis__event_on_read(evutil_socket_t fd, short what, void *arg)
{
    aredis__event_io_src *w = (aredis__event_io_src *)arg;
    (void)fd;
    (void)what;
    if (w->events & AREDIS_EV_READ)
        w->cb(w->arg, AREDIS_EV_READ);
}

static void aredis__event_on_write(evutil_socket_t fd, short what, void *arg)
{
    aredis__event_io_src *w = (aredis__event_io_src *)arg;
    (void)fd;
    (void)what;
    if (w->events & AREDIS_EV_WRITE)
        w->cb(w->arg, AREDIS_EV_WRITE);
}

static int aredis__event_io_start(void *impl, int fd, aredis_io_cb cb,
                                  void *arg, void **handle)
{
    struct event_base *base = (struct event_base *)impl;
    if (fd < 0)
        return AREDIS_EINVAL;
    aredis__event_io_src *w =
        (aredis__event_io_src *)aredis__event_calloc(sizeof *w);
    if (w == NULL)
        return AREDIS_ENOMEM;
    w->rev =
        event_new(base, fd, EV_READ | EV_PERSIST, aredis__event_on_read, w);
    w->wev =
        event_new(base, fd, EV_WRITE | EV_PERSIST, aredis__event_on_write, w);
    if (w->rev == NULL || w->wev == NULL) {
        if (w->rev != NULL)
            event_free(w->rev);
        if (w->wev != NULL)
            event_free(w->wev);
        aredis__event_free(w);
        return AREDIS_ENOMEM;
    }
    w->cb = cb;
    w->arg = arg;
    *handle = w;
    return 0;
}

/* Enable or disable one direction; 0 or AREDIS_EIO. */
static int aredis__event_io_dir(struct event *ev, int want, int have)
{
    if (want && !have)
        return event_add(ev, NULL) == 0 ? 0 : AREDIS_EIO;
    if (!want && have)
        (void)event_del(ev);
    return 0;
}

static int aredis__event_io_update(void *impl, void *handle, int events)
{
    aredis__event_io_src *w = (aredis__event_io_src *)handle;
    (void)impl;
    events &= AREDIS_EV_READ | AREDIS_EV_WRITE;
    if (events == w->events)
        return 0;
    int r = events & AREDIS_EV_READ, had_r = w->events & AREDIS_EV_READ;
    int wr = events & AREDIS_EV_WRITE, had_w = w->events & AREDIS_EV_WRITE;
    if (aredis__event_io_dir(w->rev, r, had_r) != 0)
        return AREDIS_EIO;
    if (aredis__event_io_dir(w->wev, wr, had_w) != 0) {
        /* Leave the watcher as it was. */
        (void)aredis__event_io_dir(w->rev, had_r, r);
        return AREDIS_EIO;
    }
    w->events = events;
    return 0;
}

static void aredis__event_io_stop(void *impl, void *handle)
{
    aredis__event_io_src *w = (aredis__event_io_src *)handle;
    (void)impl;
    /* event_free() also takes the events off the active queue, so
     * neither callback can still run in the current batch. */
    event_free(w->rev);
    event_free(w->wev);
    aredis__event_free(w);
}

static void aredis__event_on_timer(evutil_socket_t fd, short what, void *arg)
{
    aredis__event_timer_src *w = (aredis__event_timer_src *)arg;
    (void)fd;
    (void)what;
    w->cb(w->arg);
}

static int aredis__event_timer_start(void *impl, aredis_event_cb cb, void *arg,
                                     void **handle)
{
    aredis__event_timer_src *w =
        (aredis__event_timer_src *)aredis__event_calloc(sizeof *w);
    if (w == NULL)
        return AREDIS_ENOMEM;
    w->base = (struct event_base *)impl;
    w->ev = evtimer_new(w->base, aredis__event_on_timer, w);
    if (w->ev == NULL) {
        aredis__event_free(w);
        return AREDIS_ENOMEM;
    }
    w->cb = cb;
    w->arg = arg;
    *handle = w;
    return 0;
}

static int aredis__event_timer_set(void *impl, void *handle, int64_t ms)
{
    aredis__event_timer_src *w = (aredis__event_timer_src *)handle;
    (void)impl;
    if (ms < 0) {
        (void)evtimer_del(w->ev);
        return 0;
    }
    /* About 35 years: far enough to mean "never", near enough that
     * libevent's now + timeout cannot overflow. */
    if (ms > ((int64_t)1 << 40))
        ms = (int64_t)1 << 40;
    struct timeval tv;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    /* libevent measures from the time cached for the iteration; refresh
     * it so a timer set late in a long callback is not short. Adding a
     * pending timer again reschedules it. */
    (void)event_base_update_cache_time(w->base);
    return evtimer_add(w->ev, &tv) == 0 ? 0 : AREDIS_ENOMEM;
}

static void aredis__event_timer_stop(void *impl, void *handle)
{
    aredis__event_timer_src *w = (aredis__event_timer_src *)handle;
    (void)impl;
    event_free(w->ev);
    aredis__event_free(w);
}

static void aredis__event_on_wake(evutil_socket_t fd, short what, void *arg)
{
    aredis__event_wake_src *w = (aredis__event_wake_src *)arg;
    char buf[64];
    (void)fd;
    (void)what;
    /* Drain first: a wake that lands after this read makes the descriptor
     * readable again, so it gets a callback of its own. */
    for (;;) {
        ssize_t n = read(w->rfd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == (ssize_t)sizeof buf && w->rfd != w->wfd)
            continue;
        break;
    }
    w->cb(w->arg);
}

/* A non-blocking, close-on-exec eventfd, or pipe where there is none. */
static int aredis__event_wake_open(aredis__event_wake_src *w)
{
#ifdef __linux__
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd >= 0) {
        w->rfd = w->wfd = fd;
        return 0;
    }
#endif
    int p[2];
    if (pipe(p) != 0)
        return AREDIS_EIO;
    for (int i = 0; i < 2; i++) {
        int fl = fcntl(p[i], F_GETFL);
        if (fl < 0 || fcntl(p[i], F_SETFL, fl | O_NONBLOCK) != 0 ||
            fcntl(p[i], F_SETFD, FD_CLOEXEC) != 0) {
            close(p[0]);
            close(p[1]);
            return AREDIS_EIO;
        }
    }
    w->rfd = p[0];
    w->wfd = p[1];
    return 0;
}

static void aredis__event_wake_close(aredis__event_wake_src *w)
{
    if (w->wfd != w->rfd)
        close(w->wfd);
    close(w->rfd);
}

static int aredis__event_wake_start(void *impl, aredis_event_cb cb, void *arg,
                                    void **handle)
{
    aredis__event_wake_src *w =
        (aredis__event_wake_src *)aredis__event_calloc(sizeof *w);
    if (w == NULL)
        return AREDIS_ENOMEM;
    int rc = aredis__event_wake_open(w);
    if (rc != 0) {
        aredis__event_free(w);
        return rc;
    }
    w->ev = event_new((struct event_base *)impl, w->rfd, EV_READ | EV_PERSIST,
                      aredis__event_on_wake, w);
    if (w->ev == NULL || event_add(w->ev, NULL) != 0) {
        if (w->ev != NULL)
            event_free(w->ev);
        aredis__event_wake_close(w);
        aredis__event_free(w);
        return AREDIS_ENOMEM;
    }
    w->cb = cb;
    w->arg = arg;
    *handle = w;
    return 0;
}

static void aredis__event_wake_send(void *impl, void *handle)
{
    aredis__event_wake_src *w = (aredis__event_wake_src *)handle;
    (void)impl;
    for (;;) {
        ssize_t n;
        if (w->rfd == w->wfd) {
            uint64_t one = 1;
            n = write(w->wfd, &one, sizeof one);
        } else {
            char c = 1;
            n = write(w->wfd, &c, 1);
        }
        /* EAGAIN: the pipe is full, hence readable, which is enough. */
        if (n >= 0 || errno != EINTR)
            return;
    }
}

static void aredis__event_wake_stop(void *impl, void *handle)
{
    aredis__event_wake_src *w = (aredis__event_wake_src *)handle;
    (void)impl;
    event_free(w->ev);
    aredis__event_wake_close(w);
    aredis__event_free(w);
}

/** Wrap a libevent event_base.
 * \param base the base; borrowed: it must outlive the aredis loop, and
 *        aredis never frees it.
 * \return an owned aredis loop for aredis_loop_free(), or NULL when out of
 *         memory. aredis_loop_run() returns AREDIS_ENOTSUP on it: run the
 *         base. \since 0.1 */
static inline aredis_loop *aredis_loop_event(struct event_base *base)
{
    static const aredis_loop_ops ops = {
        aredis__event_io_start,   aredis__event_io_update,
        aredis__event_io_stop,    aredis__event_timer_start,
        aredis__event_timer_set,  aredis__event_timer_stop,
        aredis__event_wake_start, aredis__event_wake_send,
        aredis__event_wake_stop,  NULL,
    };
    return aredis_loop_new_custom(&ops, base);
}

#endif /* AREDIS_ADAPTERS_LIBEVENT_H */
