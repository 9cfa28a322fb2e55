/* The transaction helper (extras layer): WATCH the keys, run the user's
 * body, commit MULTI ... EXEC, and start over while EXEC reports that a
 * watched key changed -- the Python library's `transaction()`, with a bound
 * on the attempts and an optional pause between them.
 *
 * Built on pipeline.h (plus pipeline_int.h for owning the pipeline) and the
 * public loop timer; it must not include anything from src/client,
 * src/conn or src/resp. */
#include <string.h>

#include "aredis/error.h"
#include "aredis/loop.h"
#include "aredis/transaction.h"
#include "extras/pipeline_int.h"
#include "util/alloc.h"
#include "util/msg.h"

/* Where an attempt is: watching, open (the body may commit or abort),
 * committed, aborted, or waiting for the pause between attempts. */
enum { T_WATCHING, T_OPEN, T_COMMITTED, T_ABORTED, T_WAITING };

typedef struct txn {
    aredis_client *c;
    aredis_pipeline *p;
    aredis_transaction_fn fn;
    aredis_reply_cb done;
    void *ud;
    int max_attempts, attempt, state;
    int64_t delay_ms;
    aredis_loop *loop;
    aredis_timer *timer;
    int abort_code;
    char abort_msg[256];
    int nkeys;
    char **keys; /* one allocation: the pointers, then the strings */
} txn;

static void finish(txn *t, const aredis_reply *r)
{
    if (t->done != NULL)
        t->done(t->c, r, t->ud);
    /* Deferred by the pipeline itself when called from its callback. */
    aredis__pipeline_destroy(t->p);
    aredis_timer_free(t->timer);
    aredis__free(t->keys);
    aredis__free(t);
}

static void finish_error(txn *t, int code, const char *what)
{
    char msg[256];
    aredis__msgf(msg, sizeof msg, "%s: %s", what, aredis_strerror(code));
    aredis_reply e = {.type = AREDIS_REPLY_ERROR,
                      .code = code,
                      .len = strlen(msg),
                      .str = msg};
    finish(t, &e);
}

static void on_watched(aredis_pipeline *p, const aredis_reply *r, void *ud)
{
    txn *t = ud;
    if (r->type == AREDIS_REPLY_ERROR) {
        finish(t, r); /* WATCH failed: nothing to retry against */
        return;
    }
    t->state = T_OPEN;
    t->fn(p, t->ud);
}

static int start_attempt(txn *t)
{
    t->state = T_WATCHING;
    return aredis_pipeline_watch(t->p, on_watched, t, t->nkeys,
                                 (const char *const *)t->keys);
}

static void on_timer(void *arg)
{
    txn *t = arg;
    int e = start_attempt(t);
    if (e != 0)
        finish_error(t, e, "WATCH could not be sent for the next attempt");
}

static void on_exec(aredis_pipeline *p, const aredis_reply *r, void *ud)
{
    (void)p;
    txn *t = ud;
    if (r->type != AREDIS_REPLY_ERROR || r->code != AREDIS_EWATCH) {
        finish(t, r);
        return;
    }
    if (t->attempt >= t->max_attempts) {
        char msg[160];
        aredis__msgf(msg, sizeof msg,
                     "a watched key changed during each of the %d attempts: "
                     "the transaction did not run",
                     t->attempt);
        aredis_reply e = {.type = AREDIS_REPLY_ERROR,
                          .code = AREDIS_EWATCH,
                          .len = strlen(msg),
                          .str = msg};
        finish(t, &e);
        return;
    }
    /* The pipeline is already reset: EXEC dropped the WATCH and the
     * connection went back to the pool, so a pause holds none. */
    t->attempt++;
    int e;
    if (t->delay_ms > 0) {
        t->state = T_WAITING;
        if (t->timer == NULL &&
            (t->timer = aredis_timer_new(t->loop, on_timer, t)) == NULL)
            e = AREDIS_ENOMEM;
        else
            e = aredis_timer_start(t->timer, t->delay_ms);
    } else {
        e = start_attempt(t);
    }
    if (e != 0)
        finish_error(t, e, "could not start the next attempt");
}

int aredis_transaction(aredis_client *c, const aredis_transaction_opts *o,
                       aredis_transaction_fn fn, aredis_reply_cb done, void *ud,
                       int nkeys, const char *const *keys)
{
    aredis_transaction_opts d = {0, 0, NULL};
    if (o == NULL)
        o = &d;
    if (c == NULL || fn == NULL || nkeys < 1 || keys == NULL ||
        o->max_attempts < 0 || o->delay_ms < 0)
        return AREDIS_EINVAL;
    size_t bytes = (size_t)nkeys * sizeof(char *);
    for (int i = 0; i < nkeys; i++) {
        if (keys[i] == NULL)
            return AREDIS_EINVAL;
        bytes += strlen(keys[i]) + 1;
    }
    txn *t = aredis__calloc(1, sizeof *t);
    char **k = aredis__malloc(bytes);
    aredis_pipeline *p = aredis_pipeline_new(c, 1);
    int e = AREDIS_ENOMEM;
    if (t == NULL || k == NULL || p == NULL)
        goto fail;
    char *s = (char *)(k + nkeys);
    for (int i = 0; i < nkeys; i++) {
        size_t n = strlen(keys[i]) + 1;
        memcpy(s, keys[i], n);
        k[i] = s;
        s += n;
    }
    t->c = c;
    t->p = p;
    t->fn = fn;
    t->done = done;
    t->ud = ud;
    t->max_attempts = o->max_attempts ? o->max_attempts : 10;
    t->attempt = 1;
    t->delay_ms = o->delay_ms;
    t->loop = o->loop != NULL ? o->loop : aredis_client_loop(c);
    t->nkeys = nkeys;
    t->keys = k;
    aredis__pipeline_set_owner(p, t);
    if ((e = start_attempt(t)) == 0)
        return 0;
fail:
    aredis__pipeline_destroy(p);
    aredis__free(k);
    aredis__free(t);
    return e;
}

static txn *owner_of(const aredis_pipeline *p)
{
    return p != NULL ? aredis__pipeline_owner(p) : NULL;
}

int aredis_transaction_commit(aredis_pipeline *p)
{
    txn *t = owner_of(p);
    if (t == NULL)
        return AREDIS_EINVAL;
    if (t->state != T_OPEN || !aredis_pipeline_watching(p))
        return AREDIS_ESTATE;
    int e = aredis__pipeline_execute(p, on_exec, t);
    if (e == 0)
        t->state = T_COMMITTED;
    return e;
}

static void on_unwatched(aredis_pipeline *p, const aredis_reply *r, void *ud)
{
    (void)p;
    (void)r;
    txn *t = ud;
    aredis_reply e = {.type = AREDIS_REPLY_ERROR,
                      .code = t->abort_code,
                      .len = strlen(t->abort_msg),
                      .str = t->abort_msg};
    finish(t, &e);
}

int aredis_transaction_abort(aredis_pipeline *p, int code, const char *msg)
{
    txn *t = owner_of(p);
    if (t == NULL || code >= 0)
        return AREDIS_EINVAL;
    if (t->state != T_OPEN)
        return AREDIS_ESTATE;
    t->state = T_ABORTED;
    t->abort_code = code;
    /* Often a server's error text (the body's failed read): cut cleanly. */
    aredis__msgf(t->abort_msg, sizeof t->abort_msg, "%s",
                 msg != NULL ? msg : aredis_strerror(code));
    /* done runs once UNWATCH is answered: from the loop, and after any
     * read still in flight on the connection. */
    if (aredis__pipeline_unwatch(p, on_unwatched, t) != 0)
        /* UNWATCH cannot be sent (the client is being freed, or out of
         * memory): freeing the pipeline gives the connection back, and
         * done runs now rather than never. */
        on_unwatched(p, NULL, t);
    return 0;
}

int aredis_transaction_attempt(const aredis_pipeline *p)
{
    const txn *t = owner_of(p);
    return t != NULL ? t->attempt : 0;
}
