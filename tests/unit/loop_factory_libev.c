/* The libev loop factory for the adapter tests: aredis_loop_ev() on a
 * private ev_loop, driven by ev_run(). See loop_factory.h. */
#include "loop_factory.h"

#ifdef AREDIS_TEST_LIBEV
#include <stdlib.h>

#include "aredis/adapters/libev.h"
#include "loop/loop.h"

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
    lf_env *e = t->data;
    (void)revents;
    if (e->pred(e->ud) || aredis__now_ms() >= e->deadline)
        ev_break(loop, EVBREAK_ONE);
}

static const char *ev_create(lf_env *e)
{
    struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
    ev_timer *tick = malloc(sizeof *tick);
    if (ev == NULL || tick == NULL) {
        if (ev != NULL)
            ev_loop_destroy(ev);
        free(tick);
        return "ev_loop_new failed";
    }
    ev_timer_init(tick, on_tick, 0.001, 0.001);
    tick->data = e;
    e->native = ev;
    e->tick = tick;
    e->loop = aredis_loop_ev(ev);
    return e->loop == NULL ? "aredis_loop_ev returned NULL" : NULL;
}

static int ev_run_until(lf_env *e, lf_pred pred, void *ud, int timeout_ms)
{
    if (pred(ud))
        return 1;
    e->pred = pred;
    e->ud = ud;
    e->deadline = aredis__now_ms() + timeout_ms;
    ev_timer_again(e->native, e->tick);
    ev_run(e->native, 0);
    ev_timer_stop(e->native, e->tick);
    return pred(ud);
}

static int ev_nowait(lf_env *e)
{
    return ev_run(e->native, EVRUN_NOWAIT) != 0;
}

static const char *ev_destroy(lf_env *e)
{
    struct ev_loop *ev = e->native;
    const char *problem = NULL;
    aredis_loop_free(e->loop);
    e->loop = NULL;
    if (ev == NULL)
        return NULL;
    ev_timer_stop(ev, e->tick);
    free(e->tick);
    /* Nothing may be left active or pending (unreferenced wake-ups are
     * given their reference back when they are stopped, so they count). */
    if (ev_pending_count(ev) != 0 || ev_run(ev, EVRUN_NOWAIT) != 0)
        problem = "watchers left on the ev loop";
    ev_loop_destroy(ev);
    return problem;
}

static const loop_factory factory = {
    "libev", 0, 2, ev_create, ev_run_until, ev_nowait, ev_destroy,
};
const loop_factory *const lf_libev = &factory;
#else
const loop_factory *const lf_libev = NULL;
#endif
