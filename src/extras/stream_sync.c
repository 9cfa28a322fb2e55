/* The blocking form of the stream consumer (extras layer): the consumer
 * runs on the facade's private loop while aredis_sync_stream_consumer_run()
 * waits (client/sync_int.h). */
#include <limits.h>

#include "aredis/error.h"
#include "aredis/stream.h"
#include "client/sync_int.h"

aredis_stream_consumer *aredis_sync_stream_consumer_new(
    aredis_sync *s, const aredis_stream_consumer_opts *opts, aredis_status *st)
{
    /* A NULL handle: the consumer's own check refuses the NULL client. */
    return aredis_stream_consumer_new(s != NULL ? s->client : NULL,
                                      s != NULL ? s->loop : NULL, opts, st);
}

static int begin(aredis_sync *s, const aredis_stream_consumer *sc)
{
    if (s == NULL || sc == NULL ||
        aredis_stream_consumer_client(sc) != s->client)
        return AREDIS_EINVAL;
    return aredis__sync_begin(s);
}

typedef struct run_arg {
    const aredis_stream_consumer *sc;
    unsigned long long from;
} run_arg;

static unsigned long long delivered(const aredis_stream_consumer *sc)
{
    aredis_stream_consumer_stats st;
    aredis_stream_consumer_stats_get(sc, &st);
    return st.delivered;
}

static int got_some(const void *arg)
{
    const run_arg *a = arg;
    return delivered(a->sc) > a->from;
}

int aredis_sync_stream_consumer_run(aredis_sync *s, aredis_stream_consumer *sc,
                                    int64_t timeout_ms)
{
    int e = begin(s, sc);
    if (e != 0)
        return e;
    /* AREDIS_ESTATE from start: running already (the client of a handle
     * is never gone), or stopping, which the wait below reports. */
    e = aredis_stream_consumer_start(sc);
    if (e != 0 && e != AREDIS_ESTATE)
        return e;
    run_arg a = {sc, delivered(sc)};
    e = aredis__sync_wait(s->loop, got_some, &a,
                          aredis__sync_deadline(timeout_ms));
    if (e != 0 && e != AREDIS_ETIMEDOUT)
        return e;
    unsigned long long n = delivered(sc) - a.from;
    return n > INT_MAX ? INT_MAX : (int)n;
}

static void on_stopped(aredis_stream_consumer *sc, void *ud)
{
    (void)sc;
    aredis_sync *s = ud;
    if (!s->w.abandoned)
        s->w.done = 1;
}

int aredis_sync_stream_consumer_stop(aredis_sync *s, aredis_stream_consumer *sc)
{
    int e = begin(s, sc);
    if (e == 0)
        e = aredis_stream_consumer_stop(sc, on_stopped, s);
    if (e == 0)
        e = aredis__sync_wait_call(s);
    return e;
}
