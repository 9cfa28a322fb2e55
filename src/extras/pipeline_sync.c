/* Blocking forms of pipelines, transactions and scripts (extras layer), on
 * the blocking facade: each submits the asynchronous call with a callback
 * that lands its outcome in the handle, and waits on the handle's private
 * loop (client/sync_int.h). */
#include <stdarg.h>
#include <string.h>

#include "aredis/error.h"
#include "aredis/pipeline.h"
#include "aredis/script.h"
#include "aredis/transaction.h"
#include "client/sync_int.h"

/* 0 when s may wait for a call on p now (s->w cleared), else the code. */
static int begin(aredis_sync *s, const aredis_pipeline *p)
{
    if (p == NULL || aredis_pipeline_client(p) != s->client)
        return AREDIS_EINVAL;
    return aredis__sync_begin(s);
}

static aredis_reply *refusal(int e)
{
    const char *msg = aredis__sync_why(e);
    if (e == AREDIS_EINVAL)
        msg = "the pipeline does not belong to this handle's client";
    return aredis__sync_error(e, msg);
}

static void on_pipe(aredis_pipeline *p, const aredis_reply *r, void *ud)
{
    (void)p;
    aredis__sync_land(ud, r);
}

aredis_reply *aredis_sync_pipeline_execute(aredis_sync *s, aredis_pipeline *p)
{
    int e = begin(s, p);
    if (e != 0)
        return refusal(e);
    return aredis__sync_reply(s, aredis_pipeline_execute(p, on_pipe, &s->w));
}

static void on_watch(aredis_pipeline *p, const aredis_reply *r, void *ud)
{
    (void)p;
    aredis__sync_waiter *w = ud;
    if (w->abandoned)
        return;
    w->status = r->type == AREDIS_REPLY_ERROR ? r->code : 0;
    w->done = 1;
}

int aredis_sync_pipeline_watch(aredis_sync *s, aredis_pipeline *p, int nkeys,
                               const char *const *keys)
{
    int e = begin(s, p);
    if (e == 0)
        e = aredis_pipeline_watch(p, on_watch, &s->w, nkeys, keys);
    if (e == 0)
        e = aredis__sync_wait_call(s);
    return e != 0 ? e : s->w.status;
}

aredis_reply *aredis_sync_pipeline_immediate(aredis_sync *s, aredis_pipeline *p,
                                             const char *fmt, ...)
{
    int e = begin(s, p);
    if (e != 0)
        return refusal(e);
    va_list ap;
    va_start(ap, fmt);
    e = fmt != NULL ? aredis_pipeline_vimmediate(p, on_pipe, &s->w, fmt, ap)
                    : AREDIS_EFORMAT;
    va_end(ap);
    return aredis__sync_reply(s, e);
}

aredis_reply *aredis_sync_pipeline_immediatev(aredis_sync *s,
                                              aredis_pipeline *p, int argc,
                                              const char *const *argv,
                                              const size_t *argvlen)
{
    int e = begin(s, p);
    if (e != 0)
        return refusal(e);
    return aredis__sync_reply(
        s, aredis_pipeline_immediatev(p, on_pipe, &s->w, argc, argv, argvlen));
}

/* ---- the transaction helper ---------------------------------------------- */

/* From the loop: an attempt's keys are watched; its body runs once the
 * wait returns, outside the loop, so that it can make blocking calls. */
static void tx_body(aredis_pipeline *p, void *ud)
{
    aredis_sync *s = ud;
    s->tx.due = p;
    s->tx.wake = 1;
}

static void tx_done(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    aredis_sync *s = ud;
    s->tx.result = aredis_reply_dup(r);
    s->tx.done = 1;
    s->tx.wake = 1;
}

aredis_reply *aredis_sync_transaction(aredis_sync *s,
                                      const aredis_transaction_opts *o,
                                      aredis_sync_transaction_fn fn, void *ud,
                                      int nkeys, const char *const *keys)
{
    if (o != NULL && o->loop != NULL && o->loop != s->loop)
        return aredis__sync_error(AREDIS_EINVAL,
                                  "a blocking transaction pauses on the "
                                  "handle's own loop: leave the loop NULL");
    int e = aredis__sync_begin(s);
    if (e != 0)
        return refusal(e);
    if (s->tx.active)
        return aredis__sync_error(AREDIS_ESTATE,
                                  "a transaction is already running on "
                                  "this handle");
    if (fn == NULL)
        return aredis__sync_error(AREDIS_EINVAL, "no transaction body");
    memset(&s->tx, 0, sizeof s->tx);
    e = aredis_transaction(s->client, o, tx_body, tx_done, s, nkeys, keys);
    if (e != 0)
        return aredis__sync_error(e, NULL);
    s->tx.active = 1;
    for (;;) {
        e = aredis__sync_wait_flag(s->loop, &s->tx.wake, -1);
        if (e != 0 || s->broken) {
            /* The helper's callbacks may still land in s->tx: it stays
             * active, and the handle unusable. */
            s->broken = 1;
            return aredis__sync_error(e != 0 ? e : AREDIS_ESTATE,
                                      "internal error: the private loop "
                                      "stopped during the transaction");
        }
        s->tx.wake = 0;
        if (s->tx.done)
            break;
        aredis_pipeline *p = s->tx.due;
        s->tx.due = NULL;
        int rc = fn(s, p, ud);
        if (rc < 0)
            aredis_transaction_abort(p, rc, NULL);
        else if ((rc = aredis_transaction_commit(p)) != 0)
            aredis_transaction_abort(p, rc,
                                     "the transaction could not be committed");
    }
    aredis_reply *r = s->tx.result;
    memset(&s->tx, 0, sizeof s->tx);
    return r;
}

/* ---- scripts ------------------------------------------------------------- */

aredis_reply *aredis_sync_script_evalv(aredis_sync *s, aredis_script *sc,
                                       int nkeys, const char *const *keys,
                                       const size_t *keylens, int nargs,
                                       const char *const *args,
                                       const size_t *arglens)
{
    int e = aredis__sync_begin(s);
    if (e != 0)
        return refusal(e);
    return aredis__sync_reply(
        s, aredis_script_evalv(s->client, sc, aredis__sync_on_reply, &s->w,
                               nkeys, keys, keylens, nargs, args, arglens));
}

aredis_reply *aredis_sync_script_eval(aredis_sync *s, aredis_script *sc,
                                      int nkeys, const char *const *keys,
                                      int nargs, const char *const *args)
{
    return aredis_sync_script_evalv(s, sc, nkeys, keys, NULL, nargs, args,
                                    NULL);
}
