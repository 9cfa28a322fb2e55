/* Lua scripts (extras layer): a script object (source + SHA-1), EVALSHA
 * with the SCRIPT LOAD fallback on NOSCRIPT, and queueing in pipelines.
 *
 * Written against the public client API only (aredis_commandv), so it
 * works the same on every topology; it must not include anything from
 * src/client, src/conn or src/resp. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "aredis/error.h"
#include "aredis/script.h"
#include "extras/cmdbuf.h"
#include "extras/pipeline_int.h"
#include "extras/script_int.h"
#include "extras/sha1.h"
#include "util/alloc.h"

struct aredis_script {
    /* Atomic: a script may be shared by clients on several threads. */
    atomic_size_t refs;
    size_t len;
    char sha[41];
    char src[]; /* len bytes and a NUL */
};

aredis_script *aredis_script_new(const char *src, size_t len)
{
    if (src == NULL && len != 0)
        return NULL;
    if (len > SIZE_MAX - sizeof(aredis_script) - 1)
        return NULL;
    aredis_script *s = aredis__malloc(sizeof *s + len + 1);
    if (s == NULL)
        return NULL;
    atomic_init(&s->refs, 1);
    s->len = len;
    if (len != 0)
        memcpy(s->src, src, len);
    s->src[len] = '\0';
    aredis__sha1_hex(s->src, len, s->sha);
    return s;
}

aredis_script *aredis__script_retain(aredis_script *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void aredis__script_release(aredis_script *s)
{
    if (s != NULL &&
        atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        aredis__free(s);
}

void aredis_script_free(aredis_script *s)
{
    aredis__script_release(s);
}

const char *aredis_script_sha(const aredis_script *s)
{
    return s != NULL ? s->sha : "";
}

const char *aredis_script_source(const aredis_script *s, size_t *len)
{
    if (len != NULL)
        *len = s != NULL ? s->len : 0;
    return s != NULL ? s->src : "";
}

/* ------------------------------------------------------------------------
 * EVALSHA, and SCRIPT LOAD + EVALSHA again on NOSCRIPT
 * ------------------------------------------------------------------------ */

typedef struct eval_req {
    aredis_script *s; /* retained */
    aredis_reply_cb cb;
    void *ud;
    /* The EVALSHA, kept encoded: the keys and arguments are the caller's
     * and may be gone by the time it has to be sent again. */
    aredis__cmdbuf cmd;
} eval_req;

static void req_free(eval_req *q)
{
    aredis__cmdbuf_cleanup(&q->cmd);
    aredis__script_release(q->s);
    aredis__free(q);
}

static void deliver(aredis_client *c, eval_req *q, const aredis_reply *r)
{
    if (q->cb != NULL)
        q->cb(c, r, q->ud);
    req_free(q);
}

static void deliver_error(aredis_client *c, eval_req *q, int code,
                          const char *what)
{
    char msg[160];
    snprintf(msg, sizeof msg, "%s: %s", what, aredis_strerror(code));
    aredis_reply e = {.type = AREDIS_REPLY_ERROR,
                      .code = code,
                      .len = strlen(msg),
                      .str = msg};
    deliver(c, q, &e);
}

static int send_eval(aredis_client *c, eval_req *q, aredis_reply_cb cb)
{
    int argc;
    const char *const *argv;
    const size_t *argvlen;
    int e = aredis__cmdbuf_decode(&q->cmd, 0, &argc, &argv, &argvlen);
    if (e != 0)
        return e;
    return aredis_commandv(c, cb, q, argc, argv, argvlen);
}

/* The server's way of saying "load it first" (EVALSHA, FCALL does not
 * apply): "-NOSCRIPT No matching script. Please use EVAL." */
static int is_noscript(const aredis_reply *r)
{
    return r->type == AREDIS_REPLY_ERROR && r->code == AREDIS_ESERVER &&
           r->len >= 8 && memcmp(r->str, "NOSCRIPT", 8) == 0;
}

static void second_reply(aredis_client *c, const aredis_reply *r, void *ud)
{
    deliver(c, ud, r);
}

static void load_reply(aredis_client *c, const aredis_reply *r, void *ud)
{
    eval_req *q = ud;
    /* A script that does not compile fails here: its message ("ERR Error
     * compiling script ...") says more than a second NOSCRIPT would. */
    if (r->type == AREDIS_REPLY_ERROR) {
        deliver(c, q, r);
        return;
    }
    int e = send_eval(c, q, second_reply);
    if (e != 0)
        deliver_error(c, q, e, "EVALSHA could not be sent after SCRIPT LOAD");
}

static void first_reply(aredis_client *c, const aredis_reply *r, void *ud)
{
    eval_req *q = ud;
    if (is_noscript(r)) {
        /* The script did not run, so sending it again is safe whatever it
         * does. Loading first (rather than EVAL with the source) is what
         * the server caches under the same SHA for every later call. */
        const char *argv[3] = {"SCRIPT", "LOAD", q->s->src};
        size_t argvlen[3] = {6, 4, q->s->len};
        if (aredis_commandv(c, load_reply, q, 3, argv, argvlen) == 0)
            return;
    }
    deliver(c, q, r);
}

int aredis_script_evalv(aredis_client *c, aredis_script *s, aredis_reply_cb cb,
                        void *ud, int nkeys, const char *const *keys,
                        const size_t *keylens, int nargs,
                        const char *const *args, const size_t *arglens)
{
    if (c == NULL || s == NULL)
        return AREDIS_EINVAL;
    eval_req *q = aredis__calloc(1, sizeof *q);
    if (q == NULL)
        return AREDIS_ENOMEM;
    aredis__cmdbuf_init(&q->cmd);
    q->s = aredis__script_retain(s);
    q->cb = cb;
    q->ud = ud;
    const char *head[2] = {"EVALSHA", s->sha};
    int e = aredis__cmdbuf_lists(&q->cmd, 2, head, 1, nkeys, keys, keylens,
                                 nargs, args, arglens);
    if (e == 0)
        e = send_eval(c, q, first_reply);
    if (e != 0)
        req_free(q); /* a refused submit never runs its callback */
    return e;
}

int aredis_script_eval(aredis_client *c, aredis_script *s, aredis_reply_cb cb,
                       void *ud, int nkeys, const char *const *keys, int nargs,
                       const char *const *args)
{
    return aredis_script_evalv(c, s, cb, ud, nkeys, keys, NULL, nargs, args,
                               NULL);
}

/* ------------------------------------------------------------------------
 * In pipelines: the pipeline does the loading (pipeline.c)
 * ------------------------------------------------------------------------ */

int aredis_pipeline_scriptv(aredis_pipeline *p, aredis_script *s, int nkeys,
                            const char *const *keys, const size_t *keylens,
                            int nargs, const char *const *args,
                            const size_t *arglens)
{
    if (p == NULL || s == NULL)
        return AREDIS_EINVAL;
    return aredis__pipeline_add_script(p, s, nkeys, keys, keylens, nargs, args,
                                       arglens);
}

int aredis_pipeline_script(aredis_pipeline *p, aredis_script *s, int nkeys,
                           const char *const *keys, int nargs,
                           const char *const *args)
{
    return aredis_pipeline_scriptv(p, s, nkeys, keys, NULL, nargs, args, NULL);
}
