/* The blocking form of pub/sub's get-message (client layer): the
 * asynchronous aredis_pubsub_get_message() waited for on the facade's
 * private loop. The message is copied into a buffer the handle keeps and
 * reuses. */
#include <string.h>

#include "aredis/error.h"
#include "aredis/pubsub.h"
#include "client/sync_int.h"
#include "util/alloc.h"

/* Copy m into s->msg; 0 or AREDIS_ENOMEM. */
static int keep(aredis_sync *s, const aredis_pubsub_message *m)
{
    size_t need = m->channel_len + m->pattern_len + m->data_len + 3;
    if (need > s->msg.cap) {
        char *b = aredis__malloc(need);
        if (b == NULL)
            return AREDIS_ENOMEM;
        aredis__free(s->msg.buf);
        s->msg.buf = b;
        s->msg.cap = need;
    }
    s->msg.m = *m;
    char *p = s->msg.buf;
#define COPY(field, len)             \
    if (m->field != NULL) {          \
        memcpy(p, m->field, m->len); \
        p[m->len] = '\0';            \
        s->msg.m.field = p;          \
        p += m->len + 1;             \
    }
    COPY(channel, channel_len)
    COPY(pattern, pattern_len)
    COPY(data, data_len)
#undef COPY
    return 0;
}

static void on_message(aredis_pubsub *ps, const aredis_pubsub_message *m,
                       int status, void *ud)
{
    (void)ps;
    aredis_sync *s = ud;
    if (s->w.abandoned)
        return;
    s->w.status = status == 0 && m != NULL ? keep(s, m) : status;
    s->w.done = 1;
}

int aredis_sync_pubsub_get_message(aredis_sync *s, aredis_pubsub *ps,
                                   int64_t timeout_ms,
                                   const aredis_pubsub_message **out)
{
    if (out == NULL || ps == NULL || aredis_pubsub_client(ps) != s->client)
        return AREDIS_EINVAL;
    *out = NULL;
    int e = aredis__sync_begin(s);
    if (e == 0)
        e = aredis_pubsub_get_message(ps, timeout_ms, on_message, s);
    if (e == 0)
        e = aredis__sync_wait_call(s);
    if (e == 0 && (e = s->w.status) == 0)
        *out = &s->msg.m;
    return e;
}
