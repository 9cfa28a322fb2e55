/* The blocking facade (client layer): the asynchronous client driven by a
 * private built-in loop that runs only while a call waits. */
#include "aredis/sync.h"

#include <stdio.h>
#include <string.h>

#include "aredis/error.h"
#include "aredis/loop.h"
#include "util/alloc.h"

struct aredis_sync {
    aredis_loop *loop;
    aredis_client *client;
};

typedef struct waiter {
    int done;
    int abandoned; /* the caller gave up: the callback frees the waiter */
    aredis_reply *reply;
} waiter;

static aredis_reply *error_reply(int code, const char *msg)
{
    aredis_reply r;
    memset(&r, 0, sizeof r);
    r.type = AREDIS_REPLY_ERROR;
    r.code = code;
    r.str = msg;
    r.len = strlen(msg);
    return aredis_reply_dup(&r);
}

static void on_reply(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    waiter *w = ud;
    if (w->abandoned) {
        aredis__free(w);
        return;
    }
    w->reply = aredis_reply_dup(r);
    w->done = 1;
}

/* Run the private loop until the waiter's command completed. The command
 * always completes (a deadline, a lost connection or a reply), so this
 * ends; a loop failure is reported as an error reply. */
static aredis_reply *wait_for(aredis_sync *s, waiter *w)
{
    while (!w->done) {
        int e = aredis_loop_run_once(s->loop, -1);
        if (e < 0 && !w->done)
            return error_reply(e, "event loop failed");
        /* Idle with the command unfinished cannot happen (a pending
         * command always keeps a watcher or a timer armed); if it ever
         * did, say so rather than spin. */
        if (e == 0 && !w->done) {
            w->abandoned = 1;
            return error_reply(AREDIS_ESTATE,
                               "internal error: the loop went idle before "
                               "the command completed");
        }
    }
    aredis_reply *r = w->reply;
    aredis__free(w);
    return r;
}

static aredis_reply *submit_wait(aredis_sync *s, const char *fmt, va_list *ap,
                                 int argc, const char *const *argv,
                                 const size_t *argvlen)
{
    /* On the heap: if the wait ever had to be abandoned, the callback
     * still has somewhere valid to land. */
    waiter *w = aredis__calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    int e = fmt != NULL
                ? aredis_vcommand(s->client, on_reply, w, fmt, *ap)
                : aredis_commandv(s->client, on_reply, w, argc, argv, argvlen);
    if (e != 0) {
        aredis__free(w);
        return error_reply(e, aredis_strerror(e));
    }
    return wait_for(s, w);
}

aredis_sync *aredis_sync_connect(const aredis_options *opts, aredis_status *st)
{
    aredis_status dummy;
    if (st == NULL)
        st = &dummy;
    st->code = 0;
    st->msg[0] = '\0';
    aredis_sync *s = aredis__calloc(1, sizeof *s);
    if (s == NULL || (s->loop = aredis_loop_new()) == NULL) {
        aredis__free(s);
        st->code = AREDIS_ENOMEM;
        snprintf(st->msg, sizeof st->msg, "out of memory");
        return NULL;
    }
    s->client = aredis_client_new(s->loop, opts, st);
    if (s->client == NULL) {
        aredis_loop_free(s->loop);
        aredis__free(s);
        return NULL;
    }
    /* A PING proves the connection and the handshake. */
    aredis_reply *r = aredis_sync_command(s, "PING");
    if (r == NULL || r->type == AREDIS_REPLY_ERROR) {
        st->code = r ? r->code : AREDIS_ENOMEM;
        snprintf(st->msg, sizeof st->msg, "%s", r ? r->str : "out of memory");
        aredis_reply_free(r);
        aredis_sync_free(s);
        return NULL;
    }
    aredis_reply_free(r);
    return s;
}

aredis_reply *aredis_sync_vcommand(aredis_sync *s, const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    aredis_reply *r = submit_wait(s, fmt, &copy, 0, NULL, NULL);
    va_end(copy);
    return r;
}

aredis_reply *aredis_sync_command(aredis_sync *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    aredis_reply *r = fmt != NULL
                          ? submit_wait(s, fmt, &ap, 0, NULL, NULL)
                          : error_reply(AREDIS_EFORMAT, "no format given");
    va_end(ap);
    return r;
}

aredis_reply *aredis_sync_commandv(aredis_sync *s, int argc,
                                   const char *const *argv,
                                   const size_t *argvlen)
{
    return submit_wait(s, NULL, NULL, argc, argv, argvlen);
}

void aredis_sync_free(aredis_sync *s)
{
    if (s == NULL)
        return;
    aredis_client_free(s->client);
    /* aredis_loop_free() runs the client's final release. */
    aredis_loop_free(s->loop);
    aredis__free(s);
}

aredis_client *aredis_sync_client(const aredis_sync *s)
{
    return s != NULL ? s->client : NULL;
}
