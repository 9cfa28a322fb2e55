/* Application timers (loop layer): a thin public wrapper over the loop's
 * timer operation, so programs get the same one-shot timer on the built-in
 * loop and on every adapter. */
#include <stddef.h>

#include "aredis/error.h"
#include "loop/loop.h"
#include "util/alloc.h"

struct aredis_timer {
    aredis_loop *loop;
    void *handle;
    aredis_event_cb cb;
    void *arg;
};

static void fire(void *arg)
{
    aredis_timer *t = arg;
    t->cb(t->arg);
}

aredis_timer *aredis_timer_new(aredis_loop *loop, aredis_event_cb cb, void *arg)
{
    if (loop == NULL || cb == NULL)
        return NULL;
    aredis_timer *t = aredis__calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->loop = loop;
    t->cb = cb;
    t->arg = arg;
    if (aredis__loop_timer_start(loop, fire, t, &t->handle) != 0) {
        aredis__free(t);
        return NULL;
    }
    return t;
}

int aredis_timer_start(aredis_timer *t, int64_t ms)
{
    if (t == NULL || ms < 0)
        return AREDIS_EINVAL;
    return aredis__loop_timer_set(t->loop, t->handle, ms);
}

void aredis_timer_stop(aredis_timer *t)
{
    if (t != NULL)
        aredis__loop_timer_set(t->loop, t->handle, -1);
}

void aredis_timer_free(aredis_timer *t)
{
    if (t == NULL)
        return;
    aredis__loop_timer_stop(t->loop, t->handle);
    aredis__free(t);
}
