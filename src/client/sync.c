/* The blocking facade (client layer): the asynchronous client driven by a
 * private built-in loop that runs only while a call waits.
 *
 * This file holds the handle, the single commands and the one wait every
 * blocking call uses (sync_int.h); the other blocking calls are built on
 * those in sync_more.c and the extras' *_sync.c files.
 *
 * In the steady state a call allocates nothing: the waiter lives in the
 * handle, and the owned reply's block is recycled by aredis_reply_free().
 * It makes two system calls, the write and a blocking read: the private
 * loop writes before it looks at the socket (write first), and when the
 * connection is all it waits for it waits inside the read (the
 * transport's read_wait, the socket in blocking mode with SO_RCVTIMEO for
 * a deadline) instead of polling first. A connection the server closed
 * while the program did something else is then found after the write; the
 * server's FIN carries how much of the stream it had acknowledged
 * (TCP_INFO), and a command beyond that never reached it, so it is sent
 * again on a new connection (a Unix socket refuses the write itself).
 * With TLS neither holds, and the loop keeps its order: a look (a wait of
 * 0 ms) before the write. docs/internals/client.md tells the whole story. */
#include <stdio.h>
#include <string.h>

#include "aredis/error.h"
#include "aredis/loop.h"
#include "client/client_int.h"
#include "client/sync_int.h"
#include "loop/loop.h"
#include "util/alloc.h"
#include "util/msg.h"

aredis_reply *aredis__sync_error(int code, const char *msg)
{
    if (msg == NULL)
        msg = aredis_strerror(code);
    aredis_reply r;
    memset(&r, 0, sizeof r);
    r.type = AREDIS_REPLY_ERROR;
    r.code = code;
    r.str = msg;
    r.len = strlen(msg);
    return aredis_reply_dup(&r);
}

int aredis__sync_wait(aredis_loop *loop, int (*done)(const void *arg),
                      const void *arg, int64_t deadline_ms)
{
    while (!done(arg)) {
        int timeout = -1;
        if (deadline_ms >= 0) {
            int64_t left = deadline_ms - aredis__now_ms();
            if (left <= 0)
                return AREDIS_ETIMEDOUT;
            timeout = left > INT32_MAX ? INT32_MAX : (int)left;
        }
        int e = aredis_loop_run_once(loop, timeout);
        if (e < 0)
            return e;
        /* Idle with the call unfinished cannot happen while a command is
         * pending (a watcher or a timer stays armed); if it ever did, say
         * so rather than spin. */
        if (e == 0 && !done(arg))
            return AREDIS_ESTATE;
    }
    return 0;
}

int64_t aredis__sync_deadline(int64_t timeout_ms)
{
    return timeout_ms < 0 ? -1 : aredis__now_ms() + timeout_ms;
}

static int flag_set(const void *flag)
{
    return *(const int *)flag != 0;
}

int aredis__sync_wait_flag(aredis_loop *loop, const int *flag,
                           int64_t deadline_ms)
{
    return aredis__sync_wait(loop, flag_set, flag, deadline_ms);
}

int aredis__sync_begin(aredis_sync *s)
{
    if (s == NULL)
        return AREDIS_EINVAL;
    if (aredis__loop_busy(s->loop))
        return AREDIS_EBUSY;
    if (s->broken)
        return AREDIS_ESTATE;
    s->w = (aredis__sync_waiter){0, 0, 0, NULL};
    return 0;
}

int aredis__sync_wait_call(aredis_sync *s)
{
    int e = aredis__sync_wait_flag(s->loop, &s->w.done, -1);
    if (e != 0) {
        s->w.abandoned = 1;
        s->broken = 1;
    }
    return e;
}

void aredis__sync_land(aredis__sync_waiter *w, const aredis_reply *r)
{
    if (w->abandoned)
        return;
    w->reply = aredis_reply_dup(r);
    w->done = 1;
}

void aredis__sync_on_reply(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    aredis__sync_land(ud, r);
}

const char *aredis__sync_why(int e)
{
    switch (e) {
    case AREDIS_EBUSY:
        return "a blocking call cannot be made from a callback that runs "
               "inside another blocking call on the same handle";
    case AREDIS_ESTATE:
        return "the handle is unusable after an internal error";
    case AREDIS_EINVAL:
        return "no handle given (NULL)";
    default:
        return NULL;
    }
}

aredis_reply *aredis__sync_reply(aredis_sync *s, int e)
{
    if (e != 0)
        return aredis__sync_error(e, NULL);
    if ((e = aredis__sync_wait_call(s)) != 0)
        return aredis__sync_error(
            e, "internal error: the private loop stopped before the call "
               "completed");
    return s->w.reply;
}

aredis_reply *aredis__sync_call(aredis_sync *s, const aredis_cmd_opts *o,
                                const char *fmt, va_list *ap, int argc,
                                const char *const *argv, const size_t *argvlen)
{
    int e = aredis__sync_begin(s);
    if (e != 0)
        return aredis__sync_error(e, aredis__sync_why(e));
    e = fmt != NULL ? aredis_vcommand_opts(s->client, o, aredis__sync_on_reply,
                                           &s->w, fmt, *ap)
                    : aredis_commandv_opts(s->client, o, aredis__sync_on_reply,
                                           &s->w, argc, argv, argvlen);
    return aredis__sync_reply(s, e);
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
    /* Before the first connect (nothing runs until the loop does). TLS
     * has neither a blocking read nor the evidence that lets a write go
     * first (sync.c's header). */
    aredis__config *cfg = &s->client->cfg;
    if (!cfg->tls && !aredis__config_more_of(cfg)->sentinel_tls) {
        cfg->blocking_reads = 1;
        aredis__loop_set_write_first(s->loop, 1);
    }
    /* The private loop runs only while a call waits, so a command another
     * thread submits waits for a call anyway; it may as well wait for the
     * reply the blocking read is waiting for. */
    aredis__loop_wake_set_passive(s->loop, aredis__ts_wake(s->client), 1);
    /* A PING proves the connection and the handshake. */
    aredis_reply *r = aredis_sync_command(s, "PING");
    if (r == NULL || r->type == AREDIS_REPLY_ERROR) {
        st->code = r ? r->code : AREDIS_ENOMEM;
        /* A server's text may not fit: cut it cleanly, marked "...". */
        aredis__msgf(st->msg, sizeof st->msg, "%s",
                     r ? r->str : "out of memory");
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
    aredis_reply *r = aredis__sync_call(s, NULL, fmt, &copy, 0, NULL, NULL);
    va_end(copy);
    return r;
}

aredis_reply *aredis_sync_command(aredis_sync *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    aredis_reply *r =
        fmt != NULL ? aredis__sync_call(s, NULL, fmt, &ap, 0, NULL, NULL)
                    : aredis__sync_error(AREDIS_EFORMAT, "no format given");
    va_end(ap);
    return r;
}

aredis_reply *aredis_sync_commandv(aredis_sync *s, int argc,
                                   const char *const *argv,
                                   const size_t *argvlen)
{
    return aredis__sync_call(s, NULL, NULL, NULL, argc, argv, argvlen);
}

void aredis_sync_free(aredis_sync *s)
{
    if (s == NULL)
        return;
    aredis_client_free(s->client);
    /* aredis_loop_free() runs the client's final release. */
    aredis_loop_free(s->loop);
    aredis__sync_more_free(s);
    aredis__free(s);
}

aredis_client *aredis_sync_client(const aredis_sync *s)
{
    return s != NULL ? s->client : NULL;
}
