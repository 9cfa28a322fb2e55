/* The libevent loop factory for the adapter tests: aredis_loop_event() on
 * a private event_base, driven by event_base_loop(). See loop_factory.h. */
#include "loop_factory.h"

#ifdef AREDIS_TEST_LIBEVENT
#include <stddef.h>

#include "aredis/adapters/libevent.h"
#include "loop/loop.h"

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    lf_env *e = arg;
    (void)fd;
    (void)what;
    if (e->pred(e->ud) || aredis__now_ms() >= e->deadline)
        event_base_loopbreak(e->native);
}

static const char *event_create(lf_env *e)
{
    struct event_base *base = event_base_new();
    if (base == NULL)
        return "event_base_new failed";
    e->native = base;
    e->tick = event_new(base, -1, EV_PERSIST, on_tick, e);
    if (e->tick == NULL)
        return "event_new failed";
    e->loop = aredis_loop_event(base);
    return e->loop == NULL ? "aredis_loop_event returned NULL" : NULL;
}

static int event_run_until(lf_env *e, lf_pred pred, void *ud, int timeout_ms)
{
    if (pred(ud))
        return 1;
    e->pred = pred;
    e->ud = ud;
    e->deadline = aredis__now_ms() + timeout_ms;
    struct timeval tv = {0, 1000};
    event_add(e->tick, &tv);
    event_base_loop(e->native, 0);
    event_del(e->tick);
    return pred(ud);
}

static int event_nowait(lf_env *e)
{
    /* 1 means "no events pending or active": the loop would return. */
    return event_base_loop(e->native, EVLOOP_NONBLOCK) == 0;
}

static const char *event_destroy(lf_env *e)
{
    struct event_base *base = e->native;
    const char *problem = NULL;
    aredis_loop_free(e->loop);
    e->loop = NULL;
    if (e->tick != NULL)
        event_free(e->tick);
    if (base == NULL)
        return NULL;
    if (event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED |
                                            EVENT_BASE_COUNT_ACTIVE) != 0)
        problem = "events left on the event_base";
    event_base_free(base);
    return problem;
}

static const loop_factory factory = {
    "libevent",    1, 10, event_create, event_run_until, event_nowait,
    event_destroy,
};
const loop_factory *const lf_libevent = &factory;
#else
const loop_factory *const lf_libevent = NULL;
#endif
