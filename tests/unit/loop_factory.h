/* Loop factories for the adapter tests (tests/unit/test_adapters.c).
 *
 * A factory makes an aredis loop on top of one event loop (the built-in
 * one, libuv, libevent or libev) and drives that loop with its own native
 * run function, so that one set of test bodies covers every adapter. The
 * libuv, libevent and libev factories live in their own files because
 * libevent's and libev's headers cannot share a translation unit (both
 * define EV_READ). Factories report problems as strings and never use
 * Criterion themselves. */
#ifndef AREDIS_TEST_LOOP_FACTORY_H
#define AREDIS_TEST_LOOP_FACTORY_H

#include <stdint.h>

#include "aredis/loop.h"

typedef struct lf_env lf_env;
typedef int (*lf_pred)(void *ud);

typedef struct loop_factory {
    const char *name;
    /* 1 when a started wake-up source keeps the native loop running:
     * libevent cannot unreference an event. */
    int wake_keeps_alive;
    /* How early (ms, by aredis__now_ms()) a timer may fire: the loop's
     * clock may be coarser than ours (libevent, libuv). */
    int timer_slack_ms;
    /* Make the native loop and e->loop on it; NULL, or what failed. */
    const char *(*create)(lf_env *e);
    /* Run the native loop with its own run function until pred(ud) holds
     * or timeout_ms has passed. Returns pred(ud). */
    int (*run_until)(lf_env *e, lf_pred pred, void *ud, int timeout_ms);
    /* One pass of the native loop that does not block. Returns 1 while the
     * loop has something that keeps it running, 0 when its run function
     * would return on its own. */
    int (*run_nowait)(lf_env *e);
    /* Free e->loop unless it is NULL, check that the native loop holds
     * nothing of aredis's any more, and free it. NULL, or the problem. */
    const char *(*destroy)(lf_env *e);
} loop_factory;

struct lf_env {
    const loop_factory *f;
    aredis_loop *loop;
    void *native;
    void *tick; /* the factory's own timer for run_until() */
    int64_t deadline;
    lf_pred pred;
    void *ud;
};

/* NULL when the adapter was not built. */
extern const loop_factory *const lf_libuv;
extern const loop_factory *const lf_libevent;
extern const loop_factory *const lf_libev;

#endif /* AREDIS_TEST_LOOP_FACTORY_H */
