/* The libuv loop factory for the adapter tests: aredis_loop_uv() on a
 * private uv_loop_t, driven by uv_run(). See loop_factory.h. */
#include "loop_factory.h"

#ifdef AREDIS_TEST_LIBUV
#include <stdlib.h>

#include "aredis/adapters/libuv.h"
#include "loop/loop.h"

static void on_tick(uv_timer_t *t)
{
    lf_env *e = t->data;
    if (e->pred(e->ud) || aredis__now_ms() >= e->deadline)
        uv_stop(t->loop);
}

static void on_tick_closed(uv_handle_t *h)
{
    free(h);
}

static void close_left_over(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static const char *uv_create(lf_env *e)
{
    uv_loop_t *uv = malloc(sizeof *uv);
    uv_timer_t *tick = malloc(sizeof *tick);
    if (uv == NULL || tick == NULL || uv_loop_init(uv) != 0) {
        free(uv);
        free(tick);
        return "uv_loop_init failed";
    }
    uv_timer_init(uv, tick);
    tick->data = e;
    e->native = uv;
    e->tick = tick;
    e->loop = aredis_loop_uv(uv);
    return e->loop == NULL ? "aredis_loop_uv returned NULL" : NULL;
}

static int uv_run_until(lf_env *e, lf_pred pred, void *ud, int timeout_ms)
{
    if (pred(ud))
        return 1;
    e->pred = pred;
    e->ud = ud;
    e->deadline = aredis__now_ms() + timeout_ms;
    /* The tick both bounds the run and checks the predicate often. */
    uv_timer_start(e->tick, on_tick, 1, 1);
    uv_run(e->native, UV_RUN_DEFAULT);
    uv_timer_stop(e->tick);
    return pred(ud);
}

static int uv_nowait(lf_env *e)
{
    return uv_run(e->native, UV_RUN_NOWAIT) != 0;
}

static const char *uv_destroy(lf_env *e)
{
    uv_loop_t *uv = e->native;
    const char *problem = NULL;
    aredis_loop_free(e->loop);
    e->loop = NULL;
    uv_close(e->tick, on_tick_closed);
    /* Let the close callbacks run; a leaked active handle would keep
     * uv_run() busy, so it only gets a bounded number of passes. */
    for (int i = 0; i < 100 && uv_run(uv, UV_RUN_NOWAIT) != 0; i++)
        ;
    if (uv_loop_close(uv) != 0) {
        problem = "uv_loop_close: handles left open on the uv loop";
        /* Close whatever is left so that the sanitizer reports only the
         * failure above and not a cascade of leaks. */
        uv_walk(uv, close_left_over, NULL);
        uv_run(uv, UV_RUN_NOWAIT);
        uv_loop_close(uv);
    }
    free(uv);
    return problem;
}

static const loop_factory factory = {
    "libuv", 0, 2, uv_create, uv_run_until, uv_nowait, uv_destroy,
};
const loop_factory *const lf_libuv = &factory;
#else
const loop_factory *const lf_libuv = NULL;
#endif
