/* Pipelines and MULTI/EXEC transactions, with WATCH (extras layer).
 *
 * A pipeline keeps its commands encoded (cmdbuf.h) until execute, then
 * submits them one by one through the public client API, in one loop turn,
 * and counts the completions: the batch completes when the last of them
 * has run, whatever order failures arrive in. Plain pipelines copy each
 * reply into a reply set (replyset.h) and deliver one ARRAY over the copies;
 * transactions deliver EXEC's own array, borrowed, without a copy. A
 * pipeline run again allocates nothing: the encoded commands, the slots and
 * the reply sets keep their memory from one batch to the next.
 *
 * Written only against include/aredis (client, exclusive connections,
 * writer) and util/alloc.h, so it works unchanged on every topology; it
 * must not include anything from src/client, src/conn or src/resp. */
#include <ctype.h>
#include <string.h>

#include "aredis/cluster.h"
#include "aredis/error.h"
#include "aredis/pipeline.h"
#include "aredis/script.h"
#include "extras/cmdbuf.h"
#include "extras/pipeline_int.h"
#include "extras/replyset.h"
#include "extras/script_int.h"
#include "util/alloc.h"
#include "util/msg.h"

/* WATCH state: none; waiting for a connection; WATCH sent; in place. */
enum { W_NONE, W_ACQUIRING, W_SENT, W_ON };
/* Batch state: none in flight; loading its scripts; sent. */
enum { X_IDLE, X_LOADING, X_SENT };
/* How a batch goes out: plain on the shared connection; MULTI/EXEC on the
 * shared connection; MULTI/EXEC on the WATCH connection. */
enum { M_PLAIN, M_TXN, M_WATCH };

#define MSG_CAP 320

struct aredis_pipeline {
    aredis_client *c;
    int transaction; /* as created */
    int multi;       /* aredis_pipeline_multi() since the last batch */
    aredis_pipeline_opts opts;
    aredis__cmdbuf q;        /* the queued commands */
    aredis_script **scripts; /* distinct scripts they use, retained */
    size_t nscripts, scripts_cap;

    /* WATCH and immediate mode. */
    aredis_exclusive *x;
    int wstate;
    aredis_pipeline_cb watch_cb;
    void *watch_ud;
    aredis__cmdbuf watchq;  /* the WATCH waiting for its connection */
    aredis__cmdbuf scratch; /* an immediate command on its way out */

    /* The batch in flight. */
    int xstate, mode;
    aredis_pipeline_cb cb;
    void *ud;
    size_t n;         /* user commands in it */
    size_t remaining; /* completions still to come */
    /* One entry per command, each pointing back at the pipeline: a
     * completion's ud is &slots[i], so i = ud - slots. */
    aredis_pipeline **slots;
    size_t slots_cap;
    /* Plain: the copies of the replies, the result's elements, in one of
     * two sets: while a batch's callback runs, its reply points into one
     * and the next batch, if the callback starts one, fills the other. */
    aredis__replyset sets[2];
    aredis__replyset *rs;       /* the set being filled */
    const aredis_reply *exec_r; /* EXEC's reply, when it has come */
    aredis_reply *exec_dup;     /* ... copied when it was not the last */
    /* Failures seen, by kind; finalize() decides which one is reported. */
    int batch_code; /* the batch as a whole: not sent in full, load... */
    char batch_msg[MSG_CAP];
    int fail_code; /* the first command that failed client-side */
    size_t fail_idx;
    char fail_msg[MSG_CAP];
    int cross_slot;   /* a cluster transaction over several slots */
    int multi_failed; /* MULTI refused by the server */
    char multi_msg[MSG_CAP];
    int qerr; /* a command the server refused to queue */
    size_t qerr_idx;
    char qerr_msg[MSG_CAP];

    /* Callbacks still to run that point at the pipeline (one per batch,
     * watch and immediate command). Freed when 0 after aredis_pipeline_free. */
    size_t refs;
    int freed;
    void *owner; /* the transaction helper, or NULL */
};

static const char *const s_multi[] = {"MULTI"};
static const char *const s_exec[] = {"EXEC"};
static const char *const s_discard[] = {"DISCARD"};

/* ------------------------------------------------------------------------
 * Lifetime
 * ------------------------------------------------------------------------ */

aredis_pipeline *aredis_pipeline_new(aredis_client *c, int transaction)
{
    if (c == NULL)
        return NULL;
    aredis_pipeline *p = aredis__calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->c = c;
    p->transaction = transaction != 0;
    aredis__cmdbuf_init(&p->q);
    aredis__cmdbuf_init(&p->watchq);
    aredis__cmdbuf_init(&p->scratch);
    aredis__replyset_init(&p->sets[0]);
    aredis__replyset_init(&p->sets[1]);
    p->rs = &p->sets[0];
    return p;
}

static void clear_queue(aredis_pipeline *p)
{
    aredis__cmdbuf_clear(&p->q);
    for (size_t i = 0; i < p->nscripts; i++)
        aredis__script_release(p->scripts[i]);
    p->nscripts = 0;
    p->multi = 0;
}

static void destroy(aredis_pipeline *p)
{
    clear_queue(p);
    aredis__cmdbuf_cleanup(&p->q);
    aredis__cmdbuf_cleanup(&p->watchq);
    aredis__cmdbuf_cleanup(&p->scratch);
    aredis__free(p->scripts);
    aredis__free(p->slots);
    aredis__replyset_cleanup(&p->sets[0]);
    aredis__replyset_cleanup(&p->sets[1]);
    aredis_reply_free(p->exec_dup);
    aredis__free(p);
}

/* A callback that pointed at p has finished. */
static void unref(aredis_pipeline *p)
{
    if (--p->refs == 0 && p->freed)
        destroy(p);
}

static void release_reply(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    (void)r;
    /* UNWATCH was the last command on the connection: nothing is left
     * unread, so it goes back to the pool for reuse. */
    aredis_exclusive_release(ud);
}

/* Leave immediate mode: UNWATCH, and the connection goes back once that is
 * answered. The pipeline itself is free to watch again at once. */
static void drop_watch(aredis_pipeline *p)
{
    aredis_exclusive *x = p->x;
    p->x = NULL;
    p->wstate = W_NONE;
    p->multi = 0;
    if (x != NULL &&
        aredis_exclusive_command(x, release_reply, x, "UNWATCH") != 0)
        /* Out of memory or the client is going away: give it back as it
         * is. A stale WATCH can at worst make the next borrower's EXEC
         * abort once, which its own retry absorbs. */
        aredis_exclusive_release(x);
}

void aredis__pipeline_destroy(aredis_pipeline *p)
{
    if (p == NULL || p->freed)
        return;
    p->freed = 1;
    if (p->xstate == X_IDLE) {
        clear_queue(p);
        if (p->wstate == W_ON)
            drop_watch(p);
    }
    /* A pending watch or batch finishes from its own callbacks. */
    if (p->refs == 0)
        destroy(p);
}

void aredis_pipeline_free(aredis_pipeline *p)
{
    if (p == NULL || p->owner != NULL)
        return;
    aredis__pipeline_destroy(p);
}

aredis_client *aredis_pipeline_client(const aredis_pipeline *p)
{
    return p->c;
}

size_t aredis_pipeline_size(const aredis_pipeline *p)
{
    return p->q.n;
}

int aredis_pipeline_watching(const aredis_pipeline *p)
{
    return p->wstate == W_ON;
}

void aredis__pipeline_set_owner(aredis_pipeline *p, void *owner)
{
    p->owner = owner;
}

void *aredis__pipeline_owner(const aredis_pipeline *p)
{
    return p->owner;
}

int aredis_pipeline_set_opts(aredis_pipeline *p, const aredis_pipeline_opts *o)
{
    aredis_pipeline_opts d = {0, AREDIS_PIPELINE_RETRY_NONE};
    if (p == NULL)
        return AREDIS_EINVAL;
    if (o == NULL)
        o = &d;
    if (o->retry < AREDIS_PIPELINE_RETRY_NONE ||
        o->retry > AREDIS_PIPELINE_RETRY_ALL ||
        (p->transaction && o->retry != AREDIS_PIPELINE_RETRY_NONE))
        return AREDIS_EINVAL;
    p->opts = *o;
    return 0;
}

/* ------------------------------------------------------------------------
 * Queueing
 * ------------------------------------------------------------------------ */

static int busy(const aredis_pipeline *p)
{
    return p == NULL || p->freed || p->xstate != X_IDLE ||
           p->wstate == W_ACQUIRING || p->wstate == W_SENT;
}

static int can_queue(const aredis_pipeline *p)
{
    if (busy(p))
        return AREDIS_ESTATE;
    if (p->wstate == W_ON && !p->multi)
        return AREDIS_ESTATE; /* immediate mode */
    return 0;
}

int aredis_pipeline_vcommand(aredis_pipeline *p, const char *fmt, va_list ap)
{
    int e = can_queue(p);
    return e != 0 ? e : aredis__cmdbuf_vfmt(&p->q, fmt, ap);
}

int aredis_pipeline_command(aredis_pipeline *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int e = aredis_pipeline_vcommand(p, fmt, ap);
    va_end(ap);
    return e;
}

int aredis_pipeline_commandv(aredis_pipeline *p, int argc,
                             const char *const *argv, const size_t *argvlen)
{
    int e = can_queue(p);
    return e != 0 ? e : aredis__cmdbuf_argv(&p->q, argc, argv, argvlen);
}

int aredis__pipeline_add_script(aredis_pipeline *p, aredis_script *s, int nkeys,
                                const char *const *keys, const size_t *keylens,
                                int nargs, const char *const *args,
                                const size_t *arglens)
{
    int e = can_queue(p);
    if (e != 0)
        return e;
    const char *sha = aredis_script_sha(s);
    int known = 0;
    for (size_t i = 0; i < p->nscripts && !known; i++)
        known = p->scripts[i] == s ||
                strcmp(aredis_script_sha(p->scripts[i]), sha) == 0;
    /* Make room first, so a queued EVALSHA always has its script. */
    if (!known && p->nscripts == p->scripts_cap) {
        size_t cap = p->scripts_cap ? p->scripts_cap * 2 : 4;
        // NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers
        aredis_script **v = aredis__reallocarray(p->scripts, cap, sizeof *v);
        if (v == NULL)
            return AREDIS_ENOMEM;
        p->scripts = v;
        p->scripts_cap = cap;
    }
    const char *head[2] = {"EVALSHA", sha};
    e = aredis__cmdbuf_lists(&p->q, 2, head, 1, nkeys, keys, keylens, nargs,
                             args, arglens);
    if (e != 0)
        return e;
    if (!known)
        p->scripts[p->nscripts++] = aredis__script_retain(s);
    return 0;
}

int aredis_pipeline_multi(aredis_pipeline *p)
{
    if (busy(p) || p->multi)
        return AREDIS_ESTATE;
    if (p->wstate == W_NONE && p->q.n != 0)
        return AREDIS_ESTATE;
    p->multi = 1;
    return 0;
}

int aredis_pipeline_reset(aredis_pipeline *p)
{
    if (busy(p) || p->owner != NULL)
        return AREDIS_ESTATE;
    clear_queue(p);
    if (p->wstate == W_ON)
        drop_watch(p);
    return 0;
}

/* ------------------------------------------------------------------------
 * WATCH and immediate mode
 * ------------------------------------------------------------------------ */

static void make_error(aredis_reply *e, int code, const char *msg)
{
    memset(e, 0, sizeof *e);
    e->type = AREDIS_REPLY_ERROR;
    e->code = code;
    e->str = msg;
    e->len = strlen(msg);
}

/* The watch ends without a connection: tell its callback. */
static void watch_fail(aredis_pipeline *p, int code, const char *what)
{
    char msg[MSG_CAP];
    aredis__msgf(msg, sizeof msg, "%s: %s", what, aredis_strerror(code));
    aredis_reply e;
    make_error(&e, code, msg);
    aredis_pipeline_cb cb = p->watch_cb;
    void *ud = p->watch_ud;
    p->watch_cb = NULL;
    p->wstate = W_NONE;
    if (cb != NULL)
        cb(p, &e, ud);
    unref(p);
}

static void watch_reply(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    aredis_pipeline *p = ud;
    aredis_pipeline_cb cb = p->watch_cb;
    void *wud = p->watch_ud;
    p->watch_cb = NULL;
    if (r->type == AREDIS_REPLY_ERROR) {
        if (r->code == AREDIS_ESERVER) {
            drop_watch(p); /* the connection is fine; clear what it holds */
        } else {
            /* Lost, timed out or canceled: no WATCH of ours can survive
             * on that connection (a timed-out one is closed on release,
             * its reply being unread), so it goes back as it is. */
            aredis_exclusive *x = p->x;
            p->x = NULL;
            p->wstate = W_NONE;
            aredis_exclusive_release(x);
        }
    } else if (p->freed) {
        drop_watch(p);
    } else {
        p->wstate = W_ON;
    }
    if (cb != NULL)
        cb(p, r, wud);
    unref(p);
}

static int send_watch(aredis_pipeline *p)
{
    int argc;
    const char *const *argv;
    const size_t *argvlen;
    int e = aredis__cmdbuf_decode(&p->watchq, 0, &argc, &argv, &argvlen);
    if (e != 0)
        return e;
    return aredis_exclusive_commandv(p->x, watch_reply, p, argc, argv, argvlen);
}

static void acquired(aredis_client *c, aredis_exclusive *x, int status,
                     void *ud)
{
    (void)c;
    aredis_pipeline *p = ud;
    if (status != 0) {
        watch_fail(p, status, "no exclusive connection for WATCH");
        return;
    }
    if (p->freed) {
        aredis_exclusive_release(x);
        watch_fail(p, AREDIS_ECANCELED, "the pipeline was freed");
        return;
    }
    p->x = x;
    int e = send_watch(p);
    if (e != 0) {
        p->x = NULL;
        aredis_exclusive_release(x);
        watch_fail(p, e, "WATCH could not be sent");
        return;
    }
    p->wstate = W_SENT; /* the reference passes to watch_reply */
}

int aredis_pipeline_watch(aredis_pipeline *p, aredis_pipeline_cb cb, void *ud,
                          int nkeys, const char *const *keys)
{
    if (busy(p) || p->multi)
        return AREDIS_ESTATE;
    if (nkeys < 1 || keys == NULL)
        return AREDIS_EINVAL;
    if (p->wstate == W_NONE && p->q.n != 0)
        return AREDIS_ESTATE;
    aredis__cmdbuf_clear(&p->watchq);
    const char *head[1] = {"WATCH"};
    int e = aredis__cmdbuf_lists(&p->watchq, 1, head, 0, nkeys, keys, NULL, 0,
                                 NULL, NULL);
    if (e != 0)
        return e;
    if (p->wstate == W_ON) {
        /* More keys on the connection already held. */
        if ((e = send_watch(p)) != 0)
            return e;
        p->wstate = W_SENT;
    } else {
        /* On the node serving the first key (a cluster; on one server,
         * the server): the server refuses WATCH over several slots. */
        if ((e = aredis_client_acquire_key(p->c, keys[0], strlen(keys[0]),
                                           acquired, p)) != 0)
            return e;
        p->wstate = W_ACQUIRING;
    }
    p->watch_cb = cb;
    p->watch_ud = ud;
    p->refs++;
    return 0;
}

typedef struct immediate_req {
    aredis_pipeline *p;
    aredis_pipeline_cb cb;
    void *ud;
} immediate_req;

static void immediate_reply(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    immediate_req *q = ud;
    aredis_pipeline *p = q->p;
    if (q->cb != NULL)
        q->cb(p, r, q->ud);
    aredis__free(q);
    unref(p);
}

/* Send one command on the WATCH connection, its reply to cb. */
static int send_immediate(aredis_pipeline *p, aredis_pipeline_cb cb, void *ud,
                          int argc, const char *const *argv,
                          const size_t *argvlen)
{
    immediate_req *q = aredis__malloc(sizeof *q);
    if (q == NULL)
        return AREDIS_ENOMEM;
    q->p = p;
    q->cb = cb;
    q->ud = ud;
    int e = aredis_exclusive_commandv(p->x, immediate_reply, q, argc, argv,
                                      argvlen);
    if (e != 0) {
        aredis__free(q);
        return e;
    }
    p->refs++;
    return 0;
}

static int immediate_ok(const aredis_pipeline *p)
{
    return !busy(p) && p->wstate == W_ON && !p->multi;
}

int aredis_pipeline_vimmediate(aredis_pipeline *p, aredis_pipeline_cb cb,
                               void *ud, const char *fmt, va_list ap)
{
    if (!immediate_ok(p))
        return AREDIS_ESTATE;
    /* The client has no va_list form for exclusive connections: encode
     * here, then submit the argument vector. */
    aredis__cmdbuf_clear(&p->scratch);
    va_list copy;
    va_copy(copy, ap);
    int e = aredis__cmdbuf_vfmt(&p->scratch, fmt, copy);
    va_end(copy);
    int argc;
    const char *const *argv;
    const size_t *argvlen;
    if (e == 0)
        e = aredis__cmdbuf_decode(&p->scratch, 0, &argc, &argv, &argvlen);
    return e != 0 ? e : send_immediate(p, cb, ud, argc, argv, argvlen);
}

int aredis_pipeline_immediate(aredis_pipeline *p, aredis_pipeline_cb cb,
                              void *ud, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int e = aredis_pipeline_vimmediate(p, cb, ud, fmt, ap);
    va_end(ap);
    return e;
}

int aredis_pipeline_immediatev(aredis_pipeline *p, aredis_pipeline_cb cb,
                               void *ud, int argc, const char *const *argv,
                               const size_t *argvlen)
{
    if (!immediate_ok(p))
        return AREDIS_ESTATE;
    return send_immediate(p, cb, ud, argc, argv, argvlen);
}

typedef struct unwatch_req {
    aredis_exclusive *x;
    aredis_pipeline *p;
    aredis_pipeline_cb cb;
    void *ud;
} unwatch_req;

static void unwatch_reply(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    unwatch_req *u = ud;
    aredis_exclusive_release(u->x);
    if (u->cb != NULL)
        u->cb(u->p, r, u->ud);
    aredis_pipeline *p = u->p;
    aredis__free(u);
    unref(p);
}

int aredis__pipeline_unwatch(aredis_pipeline *p, aredis_pipeline_cb cb,
                             void *ud)
{
    if (busy(p) || p->wstate != W_ON)
        return AREDIS_ESTATE;
    unwatch_req *u = aredis__malloc(sizeof *u);
    if (u == NULL)
        return AREDIS_ENOMEM;
    *u = (unwatch_req){p->x, p, cb, ud};
    int e = aredis_exclusive_command(p->x, unwatch_reply, u, "UNWATCH");
    if (e != 0) {
        aredis__free(u);
        return e;
    }
    p->x = NULL;
    p->wstate = W_NONE;
    clear_queue(p);
    p->refs++;
    return 0;
}

/* ------------------------------------------------------------------------
 * Executing
 * ------------------------------------------------------------------------ */

/* Remember why the batch as a whole failed; the first reason wins. The
 * message is `what` followed by the server's text (r) or the code's. */
static void batch_fail(aredis_pipeline *p, int code, const char *what,
                       const aredis_reply *r)
{
    if (p->batch_code != 0)
        return;
    p->batch_code = code;
    if (r != NULL)
        aredis__msgf(p->batch_msg, sizeof p->batch_msg, "%s%.*s", what,
                     (int)r->len, r->str);
    else
        aredis__msgf(p->batch_msg, sizeof p->batch_msg, "%s%s", what,
                     aredis_strerror(code));
}

/* A command failed on the client side (connection, deadline, freed):
 * keep the lowest-numbered such command for the message. */
static void command_fail(aredis_pipeline *p, size_t idx, const aredis_reply *r)
{
    if (p->fail_code != 0 && p->fail_idx <= idx)
        return;
    p->fail_code = r->code;
    p->fail_idx = idx;
    aredis__msgf(p->fail_msg, sizeof p->fail_msg, "%.*s", (int)r->len, r->str);
}

/* "SET" for the messages: the command's name, upper-cased and bounded. */
static void command_name(const aredis_pipeline *p, size_t idx, char *out,
                         size_t cap)
{
    size_t n;
    const char *name = aredis__cmdbuf_name(&p->q, idx, &n);
    aredis__msgf(out, cap, "%.*s", (int)n, name);
    for (char *c = out; *c != '\0'; c++)
        *c = (char)toupper((unsigned char)*c);
}

/* Release the WATCH connection after a batch: EXEC answered means the
 * server dropped every WATCH already (even when it aborted); otherwise it
 * still holds them. */
static void end_watch(aredis_pipeline *p, int exec_answered)
{
    if (!exec_answered) {
        drop_watch(p);
        return;
    }
    aredis_exclusive *x = p->x;
    p->x = NULL;
    p->wstate = W_NONE;
    aredis_exclusive_release(x);
}

/* Decide what the batch's callback gets, into *out (err and msg are
 * storage for an error). */
static const aredis_reply *outcome(aredis_pipeline *p, aredis_reply *res,
                                   char *msg, size_t cap)
{
    char name[40];
    if (p->batch_code != 0) {
        make_error(res, p->batch_code, p->batch_msg);
        return res;
    }
    if (p->mode == M_PLAIN) {
        if (p->fail_code != 0) {
            command_name(p, p->fail_idx, name, sizeof name);
            aredis__msgf(msg, cap, "command %zu (%s): %s", p->fail_idx, name,
                         p->fail_msg);
            make_error(res, p->fail_code, msg);
            return res;
        }
        /* The copies stay in the set, alive until after the callback. */
        memset(res, 0, sizeof *res);
        res->type = AREDIS_REPLY_ARRAY;
        res->len = p->n;
        res->element = p->n ? p->rs->elems : NULL;
        return res;
    }
    if (p->multi_failed) {
        aredis__msgf(msg, cap, "MULTI failed: %s", p->multi_msg);
        make_error(res, AREDIS_ESERVER, msg);
        return res;
    }
    const aredis_reply *r = p->exec_r;
    if (r == NULL) { /* cannot happen: EXEC is counted like the others */
        make_error(res, AREDIS_EPROTO, "EXEC was not answered");
        return res;
    }
    switch (r->type) {
    case AREDIS_REPLY_ARRAY:
        if (r->len == p->n)
            return r;
        /* A command the client failed without sending (a refusal this
         * layer does not know of): EXEC ran the others, and its slots no
         * longer line up with the commands. Say so rather than deliver a
         * shifted array. */
        if (p->fail_code != 0) {
            command_name(p, p->fail_idx, name, sizeof name);
            aredis__msgf(msg, cap,
                         "EXEC answered %zu replies for %zu commands, the "
                         "others ran: command %zu (%s): %s",
                         r->len, p->n, p->fail_idx, name, p->fail_msg);
        } else {
            aredis__msgf(msg, cap, "EXEC answered %zu replies for %zu commands",
                         r->len, p->n);
        }
        make_error(res, p->fail_code ? p->fail_code : AREDIS_EPROTO, msg);
        return res;
    case AREDIS_REPLY_NIL:
        /* RESP2 *-1, RESP3 _: a watched key was touched. */
        make_error(res, AREDIS_EWATCH, aredis_strerror(AREDIS_EWATCH));
        return res;
    case AREDIS_REPLY_ERROR:
        if (r->code == AREDIS_ESERVER && p->qerr) {
            command_name(p, p->qerr_idx, name, sizeof name);
            aredis__msgf(msg, cap, "EXECABORT: command %zu (%s) failed: %s",
                         p->qerr_idx, name, p->qerr_msg);
            make_error(res, AREDIS_ESERVER, msg);
            return res;
        }
        return r; /* the server's own error, or EXEC's client-side one */
    default:
        aredis__msgf(msg, cap, "unexpected EXEC reply of type %s",
                     aredis_reply_type_name(r->type));
        make_error(res, AREDIS_EPROTO, msg);
        return res;
    }
}

/* The last completion has run: deliver, and make the pipeline empty and
 * reusable before the callback so that it may start the next batch. */
static void finalize(aredis_pipeline *p)
{
    /* The longest message: a fixed text, three counts, a command name and
     * one stored message of MSG_CAP. */
    char msg[2 * MSG_CAP];
    aredis_reply res;
    const aredis_reply *out = outcome(p, &res, msg, sizeof msg);

    /* What the reply points into leaves the pipeline until the callback
     * has returned. */
    aredis__replyset *rs = p->rs;
    aredis_reply *exec_dup = p->exec_dup;
    aredis_pipeline_cb cb = p->cb;
    void *ud = p->ud;
    int exec_answered = p->exec_r != NULL;
    /* No batch can finish inside cb, so the other set is free. */
    p->rs = rs == &p->sets[0] ? &p->sets[1] : &p->sets[0];
    p->exec_dup = NULL;
    p->exec_r = NULL;
    p->cb = NULL;
    p->ud = NULL;
    p->xstate = X_IDLE;
    clear_queue(p);
    if (p->mode == M_WATCH)
        end_watch(p, exec_answered);

    if (cb != NULL)
        cb(p, out, ud);

    /* No batch started from cb: the next one fills the set just used,
     * whose memory fits it already. */
    if (p->xstate == X_IDLE)
        p->rs = rs;
    aredis_reply_free(exec_dup);
    unref(p);
}

static void done_one(aredis_pipeline *p)
{
    if (--p->remaining == 0)
        finalize(p);
}

static size_t slot_index(const aredis_pipeline *p, void *ud)
{
    return (size_t)((aredis_pipeline **)ud - p->slots);
}

static void plain_reply(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    aredis_pipeline *p = *(aredis_pipeline **)ud;
    size_t i = slot_index(p, ud);
    if (r->type == AREDIS_REPLY_ERROR && r->code != AREDIS_ESERVER) {
        command_fail(p, i, r);
    } else if (aredis__replyset_put(p->rs, i, r) != 0) {
        aredis_reply oom;
        make_error(&oom, AREDIS_ENOMEM, "out of memory copying the reply");
        command_fail(p, i, &oom);
    }
    done_one(p);
}

static void multi_reply(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    aredis_pipeline *p = ud;
    /* A client-side failure of MULTI shows in EXEC's own reply. */
    if (r->type == AREDIS_REPLY_ERROR && r->code == AREDIS_ESERVER &&
        !p->multi_failed) {
        p->multi_failed = 1;
        aredis__msgf(p->multi_msg, sizeof p->multi_msg, "%.*s", (int)r->len,
                     r->str);
    }
    done_one(p);
}

static void queued_reply(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    aredis_pipeline *p = *(aredis_pipeline **)ud;
    size_t i = slot_index(p, ud);
    /* +QUEUED, or the reason the server will answer EXEC with EXECABORT. */
    if (r->type == AREDIS_REPLY_ERROR) {
        if (r->code != AREDIS_ESERVER) {
            command_fail(p, i, r);
        } else if (!p->qerr || i < p->qerr_idx) {
            p->qerr = 1;
            p->qerr_idx = i;
            aredis__msgf(p->qerr_msg, sizeof p->qerr_msg, "%.*s", (int)r->len,
                         r->str);
        }
    }
    done_one(p);
}

static void exec_reply(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    aredis_pipeline *p = ud;
    p->exec_r = r;
    /* Usually the last reply, used in place; when a failure completed it
     * ahead of the others, it must outlive this callback. */
    if (p->remaining > 1) {
        p->exec_dup = aredis_reply_dup(r);
        p->exec_r = p->exec_dup;
        if (p->exec_dup == NULL)
            batch_fail(p, AREDIS_ENOMEM,
                       "out of memory keeping EXEC's reply: ", NULL);
    }
    done_one(p);
}

static void discard_reply(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    (void)r;
    done_one(ud);
}

static unsigned plain_flags(int retry)
{
    if (retry == AREDIS_PIPELINE_RETRY_ALL)
        return AREDIS_CMD_IDEMPOTENT;
    if (retry == AREDIS_PIPELINE_RETRY_UNSENT)
        return 0;
    return AREDIS_CMD_NO_RESEND;
}

static int submit(aredis_pipeline *p, aredis_reply_cb cb, void *ud, int argc,
                  const char *const *argv, const size_t *argvlen,
                  unsigned flags)
{
    if (p->mode == M_WATCH)
        /* The client has no per-command options on an exclusive
         * connection, and needs none: a borrowed one is never replayed,
         * and a deadline takes nothing out of it. */
        return aredis_exclusive_commandv(p->x, cb, ud, argc, argv, argvlen);
    aredis_cmd_opts o = {p->opts.timeout_ms, flags};
    return aredis_commandv_opts(p->c, &o, cb, ud, argc, argv, argvlen);
}

/* Submit the whole batch in this loop turn. Return 0 when something was
 * submitted (the batch will complete), else the first submit error. */
static int send_batch(aredis_pipeline *p)
{
    int txn = p->mode != M_PLAIN;
    /* A transaction's parts go together (never re-sent, never taken out
     * alone by a deadline); a plain pipeline's are independent commands
     * that only its retry policy keeps from being re-sent. */
    unsigned flags = txn ? AREDIS_CMD_TOGETHER : plain_flags(p->opts.retry);
    int e = 0;
    p->xstate = X_SENT;
    p->remaining = 0;
    if (txn) {
        if ((e = submit(p, multi_reply, p, 1, s_multi, NULL, flags)) != 0)
            return e;
        p->remaining++;
    }
    for (size_t i = 0; i < p->n; i++) {
        int argc;
        const char *const *argv;
        const size_t *argvlen;
        if ((e = aredis__cmdbuf_decode(&p->q, i, &argc, &argv, &argvlen)) != 0)
            break;
        e = submit(p, txn ? queued_reply : plain_reply, &p->slots[i], argc,
                   argv, argvlen, flags);
        if (e != 0)
            break;
        p->remaining++;
    }
    if (e == 0 && txn &&
        (e = submit(p, exec_reply, p, 1, s_exec, NULL, flags)) == 0)
        p->remaining++;
    if (e == 0)
        return 0;
    if (p->remaining == 0)
        return e;
    batch_fail(p, e, "the batch could not be sent in full: ", NULL);
    /* Never leave a MULTI open behind us: on the shared connection the
     * next caller's commands would be queued into it. */
    if (txn && submit(p, discard_reply, p, 1, s_discard, NULL, flags) == 0)
        p->remaining++;
    return 0;
}

static const char crossslot[] =
    "CROSSSLOT a transaction's keys must share one slot on a cluster (use "
    "a {hash tag}); nothing was sent";

/* A MULTI/EXEC batch on a cluster: its connection to the slot's primary
 * is here; the batch runs on it as on a WATCH connection, and it goes back
 * to the pool when EXEC has answered (end_watch). */
static void txn_acquired(aredis_client *c, aredis_exclusive *x, int status,
                         void *ud)
{
    (void)c;
    aredis_pipeline *p = ud;
    int e = status;
    if (e == 0) {
        p->x = x;
        p->wstate = W_ON;
        p->mode = M_WATCH;
        if (p->freed)
            e = AREDIS_ECANCELED;
        else if (p->cross_slot)
            e = AREDIS_EINVAL;
        else if ((e = send_batch(p)) == 0)
            return;
    }
    if (e == AREDIS_EINVAL && p->cross_slot && p->batch_code == 0) {
        p->batch_code = e;
        aredis__msgf(p->batch_msg, sizeof p->batch_msg, "%s", crossslot);
    }
    batch_fail(p, e, "the transaction could not be sent: ", NULL);
    finalize(p);
}

/* Send the batch, or, for a transaction on a cluster, first borrow a
 * connection to the primary serving its keys' slot: MULTI/EXEC must not go
 * through the shared connections, which route each command by its key. */
static int go(aredis_pipeline *p)
{
    if (p->mode != M_TXN || !aredis_client_is_cluster(p->c))
        return send_batch(p);
    int slot = -1;
    p->cross_slot = 0;
    for (size_t i = 0; i < p->n; i++) {
        int s = aredis__cmdbuf_slot(&p->q, i);
        if (s < 0)
            continue;
        if (slot < 0)
            slot = s;
        else if (s != slot)
            p->cross_slot = 1;
    }
    p->xstate = X_SENT;
    p->remaining = 0;
    return aredis_client_acquire_slot(p->c, slot < 0 ? 0 : (unsigned)slot,
                                      txn_acquired, p);
}

static void load_reply(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    aredis_pipeline *p = ud;
    if (r->type == AREDIS_REPLY_ERROR)
        batch_fail(p, r->code, "SCRIPT LOAD failed: ", r);
    if (--p->remaining != 0)
        return;
    if (p->freed)
        batch_fail(p, AREDIS_ECANCELED,
                   "canceled: the pipeline was freed before its batch was "
                   "sent: ",
                   NULL);
    if (p->batch_code == 0) {
        int e = go(p);
        if (e == 0)
            return;
        batch_fail(p, e, "the batch could not be sent: ", NULL);
    }
    finalize(p);
}

static int reserve(void **v, size_t *cap, size_t n, size_t size)
{
    if (n <= *cap)
        return 0;
    void *nv = aredis__reallocarray(*v, n, size);
    if (nv == NULL)
        return AREDIS_ENOMEM;
    *v = nv;
    *cap = n;
    return 0;
}

int aredis__pipeline_execute(aredis_pipeline *p, aredis_pipeline_cb cb,
                             void *ud)
{
    if (busy(p))
        return AREDIS_ESTATE;
    int mode = p->wstate == W_ON              ? M_WATCH
               : (p->transaction || p->multi) ? M_TXN
                                              : M_PLAIN;
    size_t n = p->q.n;
    if (mode == M_PLAIN && n == 0)
        return AREDIS_EINVAL;
    for (size_t i = 0; i < n; i++) {
        /* Refused by the client, such a command would be missing from
         * the server's side of the batch -- in a transaction, while the
         * rest of it runs. */
        if (aredis__cmdbuf_is_refused(&p->q, i))
            return AREDIS_EINVAL;
        if (mode == M_TXN && aredis__cmdbuf_no_multi(&p->q, i))
            return AREDIS_ENOTSUP;
    }
    void *v = p->slots;
    // NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers
    if (reserve(&v, &p->slots_cap, n, sizeof *p->slots) != 0)
        return AREDIS_ENOMEM;
    p->slots = v;
    for (size_t i = 0; i < n; i++)
        p->slots[i] = p;
    if (mode == M_PLAIN && aredis__replyset_reset(p->rs, n) != 0)
        return AREDIS_ENOMEM;
    p->mode = mode;
    p->n = n;
    p->cb = cb;
    p->ud = ud;
    p->exec_r = NULL;
    p->batch_code = p->fail_code = p->multi_failed = p->qerr = 0;

    int e;
    if (p->nscripts == 0) {
        e = go(p);
    } else {
        /* Scripts first, answered before the batch goes out: a script that
         * does not compile fails the batch instead of running the rest of
         * it (what the Python library does too). SCRIPT LOAD is safe to
         * repeat, hence idempotent. */
        p->xstate = X_LOADING;
        p->remaining = 0;
        e = 0;
        for (size_t i = 0; i < p->nscripts; i++) {
            size_t len;
            const char *src = aredis_script_source(p->scripts[i], &len);
            const char *argv[3] = {"SCRIPT", "LOAD", src};
            size_t argvlen[3] = {6, 4, len};
            e = submit(p, load_reply, p, 3, argv, argvlen,
                       AREDIS_CMD_IDEMPOTENT);
            if (e != 0)
                break;
            p->remaining++;
        }
        if (e != 0 && p->remaining != 0) {
            batch_fail(p, e, "SCRIPT LOAD could not be sent: ", NULL);
            e = 0;
        }
    }
    if (e != 0) {
        p->xstate = X_IDLE;
        p->cb = NULL;
        p->ud = NULL;
        return e;
    }
    p->refs++;
    return 0;
}

int aredis_pipeline_execute(aredis_pipeline *p, aredis_pipeline_cb cb, void *ud)
{
    if (p != NULL && p->owner != NULL)
        return AREDIS_ESTATE;
    return aredis__pipeline_execute(p, cb, ud);
}
