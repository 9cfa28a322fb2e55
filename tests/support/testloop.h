/* Test helper: one set of integration tests, every event loop.
 *
 * A test asks for "the loop under test" with testloop_new() and drives it
 * with testloop_run_once() or testloop_run_until(); which loop that is comes
 * from the environment variable AREDIS_TEST_LOOP (builtin, libuv, libevent,
 * libev), set by CTest when it registers the same test binary once per loop.
 * Header-only: the adapters it uses are compiled in when the test defines
 * AREDIS_TEST_HAVE_LIBUV / _LIBEVENT / _LIBEV. */
#ifndef AREDIS_TESTS_TESTLOOP_H
#define AREDIS_TESTS_TESTLOOP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aredis/loop.h"

#ifdef AREDIS_TEST_HAVE_LIBUV
#include "aredis/adapters/libuv.h"
#endif
#ifdef AREDIS_TEST_HAVE_LIBEVENT
#include "aredis/adapters/libevent.h"
#endif
#ifdef AREDIS_TEST_HAVE_LIBEV
#include "aredis/adapters/libev.h"
#endif

typedef enum { TL_BUILTIN, TL_LIBUV, TL_LIBEVENT, TL_LIBEV } testloop_kind;

/* The native loop behind the aredis loop of the test in progress (each
 * Criterion test runs in its own process, so one at a time). */
static struct {
    testloop_kind kind;
    void *native;
} testloop_state;

static inline testloop_kind testloop_kind_from_env(void)
{
    const char *s = getenv("AREDIS_TEST_LOOP");
    if (s == NULL || strcmp(s, "builtin") == 0)
        return TL_BUILTIN;
#ifdef AREDIS_TEST_HAVE_LIBUV
    if (strcmp(s, "libuv") == 0)
        return TL_LIBUV;
#endif
#ifdef AREDIS_TEST_HAVE_LIBEVENT
    if (strcmp(s, "libevent") == 0)
        return TL_LIBEVENT;
#endif
#ifdef AREDIS_TEST_HAVE_LIBEV
    if (strcmp(s, "libev") == 0)
        return TL_LIBEV;
#endif
    fprintf(stderr, "AREDIS_TEST_LOOP=%s: not built in\n", s);
    abort();
}

static inline const char *testloop_name(void)
{
    static const char *names[] = {"builtin", "libuv", "libevent", "libev"};
    return names[testloop_kind_from_env()];
}

/* A new loop of the kind under test. */
static inline aredis_loop *testloop_new(void)
{
    testloop_state.kind = testloop_kind_from_env();
    switch (testloop_state.kind) {
#ifdef AREDIS_TEST_HAVE_LIBUV
    case TL_LIBUV: {
        uv_loop_t *uv = malloc(sizeof *uv);
        if (uv == NULL || uv_loop_init(uv) != 0)
            abort();
        testloop_state.native = uv;
        return aredis_loop_uv(uv);
    }
#endif
#ifdef AREDIS_TEST_HAVE_LIBEVENT
    case TL_LIBEVENT: {
        struct event_base *base = event_base_new();
        testloop_state.native = base;
        return aredis_loop_event(base);
    }
#endif
#ifdef AREDIS_TEST_HAVE_LIBEV
    case TL_LIBEV: {
        struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
        testloop_state.native = ev;
        return aredis_loop_ev(ev);
    }
#endif
    default:
        testloop_state.native = NULL;
        return aredis_loop_new();
    }
}

#ifdef AREDIS_TEST_HAVE_LIBUV
static inline void testloop_uv_noop(uv_timer_t *t)
{
    (void)t;
}
#endif
#ifdef AREDIS_TEST_HAVE_LIBEVENT
static inline void testloop_ev_noop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}
#endif
#ifdef AREDIS_TEST_HAVE_LIBEV
static inline void testloop_libev_noop(struct ev_loop *l, ev_timer *t, int r)
{
    (void)l;
    (void)t;
    (void)r;
}
#endif

/* Wait up to ms for events and dispatch them once. */
static inline void testloop_run_once(aredis_loop *loop, int ms)
{
    switch (testloop_state.kind) {
#ifdef AREDIS_TEST_HAVE_LIBUV
    case TL_LIBUV: {
        uv_loop_t *uv = testloop_state.native;
        uv_timer_t t;
        uv_timer_init(uv, &t);
        uv_timer_start(&t, testloop_uv_noop, (uint64_t)ms, 0);
        uv_run(uv, UV_RUN_ONCE);
        uv_close((uv_handle_t *)&t, NULL);
        uv_run(uv, UV_RUN_NOWAIT); /* completes the close */
        break;
    }
#endif
#ifdef AREDIS_TEST_HAVE_LIBEVENT
    case TL_LIBEVENT: {
        struct event_base *base = testloop_state.native;
        struct event *t = evtimer_new(base, testloop_ev_noop, NULL);
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        evtimer_add(t, &tv);
        event_base_loop(base, EVLOOP_ONCE);
        event_free(t);
        break;
    }
#endif
#ifdef AREDIS_TEST_HAVE_LIBEV
    case TL_LIBEV: {
        struct ev_loop *ev = testloop_state.native;
        ev_timer t;
        ev_timer_init(&t, testloop_libev_noop, ms / 1000.0, 0.);
        ev_timer_start(ev, &t);
        ev_run(ev, EVRUN_ONCE);
        ev_timer_stop(ev, &t);
        break;
    }
#endif
    default:
        aredis_loop_run_once(loop, ms);
    }
}

/* Run the loop under test until *flag is nonzero or timeout_ms of real
 * time have passed, waiting at most 10 ms at a time. \return *flag. */
static inline int testloop_run_until(aredis_loop *loop, const int *flag,
                                     int timeout_ms)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!*flag) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        long long ms = (long long)(t.tv_sec - t0.tv_sec) * 1000 +
                       (t.tv_nsec - t0.tv_nsec) / 1000000;
        if (ms >= timeout_ms)
            break;
        testloop_run_once(loop, 10);
    }
    return *flag;
}

/* Free the aredis loop, then the native one (after letting it finish the
 * handle closes the adapter started). */
static inline void testloop_free(aredis_loop *loop)
{
    aredis_loop_free(loop);
    switch (testloop_state.kind) {
#ifdef AREDIS_TEST_HAVE_LIBUV
    case TL_LIBUV: {
        uv_loop_t *uv = testloop_state.native;
        uv_run(uv, UV_RUN_DEFAULT);
        if (uv_loop_close(uv) != 0) {
            fprintf(stderr, "libuv loop still has handles\n");
            abort();
        }
        free(uv);
        break;
    }
#endif
#ifdef AREDIS_TEST_HAVE_LIBEVENT
    case TL_LIBEVENT:
        event_base_free(testloop_state.native);
        break;
#endif
#ifdef AREDIS_TEST_HAVE_LIBEV
    case TL_LIBEV:
        ev_loop_destroy(testloop_state.native);
        break;
#endif
    default:
        break;
    }
    testloop_state.native = NULL;
}

#endif /* AREDIS_TESTS_TESTLOOP_H */
