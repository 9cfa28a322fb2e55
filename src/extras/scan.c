/* SCAN, SSCAN, HSCAN and ZSCAN iterators (extras layer).
 *
 * Built only on the public client API (aredis_commandv_opts() and the
 * blocking facade's aredis_sync_commandv()), so the iterators work on every
 * topology without code of their own per topology. They must not reach
 * into the client, connection or resp layers' internals; the only internal
 * header used is the allocator's, so the user's allocator hooks apply.
 *
 * Both forms share the argument builder and the reply checks below: a SCAN
 * reply is a two-element array, the next cursor (a bulk string of decimal
 * digits) and the batch (an array).
 *
 * On a cluster client, a SCAN of the key space walks every primary in
 * turn, a cursor per node, through the node API (aredis/cluster.h): the
 * primaries are those that answer a PING sent to each (which also waits
 * for the slot map); SSCAN, HSCAN and ZSCAN go by their key's slot like
 * any command. A primary that leaves the cluster during the walk (a
 * failover) ends it with an error: the walk cannot know which keys the
 * new primary's cursor would repeat or miss. */
#include "aredis/scan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aredis/cluster.h"
#include "aredis/error.h"
#include "util/alloc.h"

/* The largest cursor is a 64-bit unsigned integer: 20 digits. */
#define CURSOR_MAX 20

/* A walk's arguments, copied out of the caller's options. The strings live
 * in the same allocation as the struct that embeds this one. */
typedef struct scan_args {
    int kind;
    const char *key;
    size_t keylen;
    const char *match;
    const char *type;
    char count[24]; /* "" when no COUNT */
    int64_t timeout_ms;
    char cursor[CURSOR_MAX + 1];
    size_t cursorlen;
} scan_args;

static const char *const scan_cmd[] = {"SCAN", "SSCAN", "HSCAN", "ZSCAN"};

/* Check options and measure the strings to copy. */
static int check_opts(const aredis_scan_opts *o, size_t *extra)
{
    if (o->kind < AREDIS_SCAN_KEYS || o->kind > AREDIS_SCAN_ZSET ||
        o->count < 0)
        return AREDIS_EINVAL;
    if ((o->kind == AREDIS_SCAN_KEYS) != (o->key == NULL))
        return AREDIS_EINVAL;
    if (o->type != NULL && o->kind != AREDIS_SCAN_KEYS)
        return AREDIS_EINVAL; /* the server only filters SCAN by type */
    size_t keylen = o->key == NULL   ? 0
                    : o->keylen != 0 ? o->keylen
                                     : strlen(o->key);
    size_t n = keylen + 1;
    if (o->match != NULL)
        n += strlen(o->match) + 1;
    if (o->type != NULL)
        n += strlen(o->type) + 1;
    *extra = n;
    return 0;
}

/* Copy the options into a and the strings into buf (sized by
 * check_opts()). */
static void copy_opts(scan_args *a, char *buf, const aredis_scan_opts *o)
{
    a->kind = o->kind;
    if (o->key != NULL) {
        a->keylen = o->keylen != 0 ? o->keylen : strlen(o->key);
        memcpy(buf, o->key, a->keylen);
        buf[a->keylen] = '\0';
        a->key = buf;
        buf += a->keylen + 1;
    }
    if (o->match != NULL) {
        size_t n = strlen(o->match);
        memcpy(buf, o->match, n + 1);
        a->match = buf;
        buf += n + 1;
    }
    if (o->type != NULL) {
        size_t n = strlen(o->type);
        memcpy(buf, o->type, n + 1);
        a->type = buf;
    }
    if (o->count > 0)
        snprintf(a->count, sizeof a->count, "%lld", o->count);
    a->timeout_ms = o->timeout_ms;
    memcpy(a->cursor, "0", 2);
    a->cursorlen = 1;
}

/* The next call's argument vector: at most
 * CMD [key] cursor [MATCH p] [COUNT n] [TYPE t]. */
#define SCAN_ARGV_MAX 9

static int build_argv(const scan_args *a, const char **argv, size_t *lens)
{
    int n = 0;
    argv[n] = scan_cmd[a->kind];
    lens[n++] = strlen(scan_cmd[a->kind]);
    if (a->key != NULL) {
        argv[n] = a->key;
        lens[n++] = a->keylen;
    }
    argv[n] = a->cursor;
    lens[n++] = a->cursorlen;
    if (a->match != NULL) {
        argv[n] = "MATCH";
        lens[n++] = 5;
        argv[n] = a->match;
        lens[n++] = strlen(a->match);
    }
    if (a->count[0] != '\0') {
        argv[n] = "COUNT";
        lens[n++] = 5;
        argv[n] = a->count;
        lens[n++] = strlen(a->count);
    }
    if (a->type != NULL) {
        argv[n] = "TYPE";
        lens[n++] = 4;
        argv[n] = a->type;
        lens[n++] = strlen(a->type);
    }
    return n;
}

static int is_text(const aredis_reply *r)
{
    return r->type == AREDIS_REPLY_STRING || r->type == AREDIS_REPLY_STATUS ||
           r->type == AREDIS_REPLY_VERB;
}

/* Check a SCAN reply, store its cursor in a and return its batch.
 * \return 0 or AREDIS_EPROTO, with *why saying what is wrong. */
static int take_reply(scan_args *a, const aredis_reply *r,
                      const aredis_reply **batch, const char **why)
{
    if (r->type != AREDIS_REPLY_ARRAY || r->len != 2) {
        *why = "SCAN reply is not a two-element array";
        return AREDIS_EPROTO;
    }
    const aredis_reply *cur = &r->element[0];
    const aredis_reply *b = &r->element[1];
    if (!is_text(cur) || cur->len == 0 || cur->len > CURSOR_MAX ||
        strspn(cur->str, "0123456789") != cur->len) {
        *why = "SCAN reply has no valid cursor";
        return AREDIS_EPROTO;
    }
    if (b->type != AREDIS_REPLY_ARRAY && b->type != AREDIS_REPLY_SET) {
        *why = "SCAN reply has no element array";
        return AREDIS_EPROTO;
    }
    int pairs = a->kind == AREDIS_SCAN_HASH || a->kind == AREDIS_SCAN_ZSET;
    if (pairs && b->len % 2 != 0) {
        *why = "HSCAN/ZSCAN reply has an odd number of elements";
        return AREDIS_EPROTO;
    }
    memcpy(a->cursor, cur->str, cur->len);
    a->cursor[cur->len] = '\0';
    a->cursorlen = cur->len;
    *batch = b;
    return 0;
}

static int at_end(const scan_args *a)
{
    return a->cursorlen == 1 && a->cursor[0] == '0';
}

/* The number of elements (pairs for HSCAN/ZSCAN) in a checked batch. */
static size_t batch_count(const scan_args *a, const aredis_reply *b)
{
    int pairs = a->kind == AREDIS_SCAN_HASH || a->kind == AREDIS_SCAN_ZSET;
    return pairs ? b->len / 2 : b->len;
}

/* Fill e with the i-th element of a checked batch.
 * \return 0 or AREDIS_EPROTO. */
static int elem_at(const scan_args *a, const aredis_reply *b, size_t i,
                   aredis_scan_elem *e, const char **why)
{
    int pairs = a->kind == AREDIS_SCAN_HASH || a->kind == AREDIS_SCAN_ZSET;
    memset(e, 0, sizeof *e);
    /* NEVER: callers stay within the batch. */
    if (b->element == NULL || i >= batch_count(a, b)) {
        *why = "SCAN element out of range";
        return AREDIS_EPROTO;
    }
    const aredis_reply *k = &b->element[pairs ? 2 * i : i];
    if (!is_text(k)) {
        *why = "SCAN element is not a string";
        return AREDIS_EPROTO;
    }
    e->str = k->str;
    e->len = k->len;
    if (!pairs)
        return 0;
    const aredis_reply *v = k + 1;
    if (a->kind == AREDIS_SCAN_ZSET && v->type == AREDIS_REPLY_DOUBLE) {
        /* A RESP3 double (",", RESP3 "Double type"): keep the text too. */
        e->value = v->str;
        e->vlen = v->len;
        e->score = v->dval;
        return 0;
    }
    if (!is_text(v)) {
        *why = "HSCAN/ZSCAN value is not a string";
        return AREDIS_EPROTO;
    }
    e->value = v->str;
    e->vlen = v->len;
    if (a->kind == AREDIS_SCAN_ZSET) {
        /* Scores come as bulk strings ("1.5", "inf", "-inf"); replies are
         * NUL-terminated, so strtod() cannot run past the value. */
        char *end = NULL;
        e->score = v->len ? strtod(v->str, &end) : 0.0;
        if (v->len == 0 || end != v->str + v->len) {
            *why = "ZSCAN score is not a number";
            return AREDIS_EPROTO;
        }
    }
    return 0;
}

/* An error reply of our own, for failures that are not a server reply. */
static void local_error(aredis_reply *r, int code, const char *msg)
{
    memset(r, 0, sizeof *r);
    r->type = AREDIS_REPLY_ERROR;
    r->code = code;
    r->str = msg;
    r->len = strlen(msg);
}

/* The nodes of a cluster walk, from the MAP "host:port" -> PING reply that
 * aredis_nodes_command() answers: 0, or AREDIS_EPROTO with *why. */
static int parse_nodes(const aredis_reply *r, aredis_node_addr **out, size_t *n,
                       const char **why)
{
    *why = "the node list is not a map of addresses";
    if (r->type != AREDIS_REPLY_MAP || r->len == 0)
        return AREDIS_EPROTO;
    aredis_node_addr *v = aredis__calloc(r->len / 2, sizeof *v);
    if (v == NULL) {
        *why = "out of memory";
        return AREDIS_ENOMEM;
    }
    for (size_t i = 0; i < r->len / 2; i++) {
        const aredis_reply *k = &r->element[2 * i];
        const char *colon = k->str != NULL ? strrchr(k->str, ':') : NULL;
        if (k->type != AREDIS_REPLY_STRING || colon == NULL ||
            (size_t)(colon - k->str) >= sizeof v[i].host) {
            aredis__free(v);
            return AREDIS_EPROTO;
        }
        memcpy(v[i].host, k->str, (size_t)(colon - k->str));
        v[i].host[colon - k->str] = '\0';
        v[i].port = (int)strtol(colon + 1, NULL, 10);
        v[i].primary = 1;
    }
    *out = v;
    *n = r->len / 2;
    return 0;
}

/* The key space's walk goes node by node (a cluster client). */
static int walks_nodes(aredis_client *c, const scan_args *a)
{
    return a->kind == AREDIS_SCAN_KEYS && aredis_client_is_cluster(c);
}

/* The walk is at the end of a node's keys: on to the next node's, from
 * cursor 0. 1 when there is one. */
static int next_node(scan_args *a, size_t *node, size_t nnodes)
{
    if (*node + 1 >= nnodes)
        return 0;
    ++*node;
    memcpy(a->cursor, "0", 2);
    a->cursorlen = 1;
    return 1;
}

/* ---- asynchronous walk --------------------------------------------------- */

typedef struct scan_walk {
    scan_args a;
    aredis_node_addr *nodes; /* a cluster's primaries, or NULL */
    size_t nnodes, node;     /* ... and the one being walked */
    aredis_scan_batch_cb batch;
    aredis_scan_elem_cb element;
    aredis_scan_done_cb done;
    void *ud;
    char strings[]; /* key, match and type */
} scan_walk;

static void on_scan_reply(aredis_client *c, const aredis_reply *r, void *ud);

static int send_next(aredis_client *c, scan_walk *w)
{
    const char *argv[SCAN_ARGV_MAX];
    size_t lens[SCAN_ARGV_MAX];
    int argc = build_argv(&w->a, argv, lens);
    /* SCAN only reads: re-sending it after a lost connection is safe, so a
     * walk survives a reconnect. */
    if (w->nodes != NULL)
        return aredis_node_commandv(c, w->nodes[w->node].host,
                                    w->nodes[w->node].port, on_scan_reply, w,
                                    argc, argv, lens);
    aredis_cmd_opts o = {.timeout_ms = w->a.timeout_ms,
                         .flags = AREDIS_CMD_IDEMPOTENT};
    return aredis_commandv_opts(c, &o, on_scan_reply, w, argc, argv, lens);
}

static void finish(aredis_client *c, scan_walk *w, int status,
                   const aredis_reply *err)
{
    if (w->done != NULL)
        w->done(c, status, err, w->ud);
    aredis__free(w->nodes);
    aredis__free(w);
}

/* A cluster walk's primaries have answered: start on the first. */
static void on_primaries(aredis_client *c, const aredis_reply *r, void *ud)
{
    scan_walk *w = ud;
    aredis_reply local;
    const char *why = NULL;
    if (r->type == AREDIS_REPLY_ERROR) {
        finish(c, w, r->code != 0 ? r->code : AREDIS_ESERVER, r);
        return;
    }
    int e = parse_nodes(r, &w->nodes, &w->nnodes, &why);
    if (e == 0 && (e = send_next(c, w)) != 0)
        why = aredis_strerror(e);
    if (e != 0) {
        local_error(&local, e, why);
        finish(c, w, e, &local);
    }
}

static void on_scan_reply(aredis_client *c, const aredis_reply *r, void *ud)
{
    scan_walk *w = ud;
    aredis_reply local;
    if (r->type == AREDIS_REPLY_ERROR) {
        finish(c, w, r->code != 0 ? r->code : AREDIS_ESERVER, r);
        return;
    }
    const aredis_reply *b = NULL;
    const char *why = NULL;
    int e = take_reply(&w->a, r, &b, &why);
    if (e != 0) {
        local_error(&local, e, why);
        finish(c, w, e, &local);
        return;
    }
    size_t n = batch_count(&w->a, b);
    if (n > 0 && w->batch != NULL && w->batch(c, b, w->ud) != 0) {
        finish(c, w, AREDIS_SCAN_STOPPED, NULL);
        return;
    }
    for (size_t i = 0; w->element != NULL && i < n; i++) {
        aredis_scan_elem el;
        e = elem_at(&w->a, b, i, &el, &why);
        if (e != 0) {
            local_error(&local, e, why);
            finish(c, w, e, &local);
            return;
        }
        if (w->element(c, &el, w->ud) != 0) {
            finish(c, w, AREDIS_SCAN_STOPPED, NULL);
            return;
        }
    }
    if (at_end(&w->a) && !next_node(&w->a, &w->node, w->nnodes)) {
        finish(c, w, AREDIS_SCAN_FINISHED, NULL);
        return;
    }
    e = send_next(c, w);
    if (e != 0) {
        /* The promise made when aredis_scan() returned 0 is that done runs
         * once: a refused submit (client being freed, out of memory) ends
         * the walk here, from this callback. */
        local_error(&local, e, aredis_strerror(e));
        finish(c, w, e, &local);
    }
}

int aredis_scan(aredis_client *c, const aredis_scan_opts *opts,
                aredis_scan_batch_cb batch, aredis_scan_elem_cb element,
                aredis_scan_done_cb done, void *ud)
{
    static const aredis_scan_opts all = {0};
    if (opts == NULL)
        opts = &all;
    size_t extra = 0;
    if (c == NULL || (batch == NULL && element == NULL))
        return AREDIS_EINVAL;
    int e = check_opts(opts, &extra);
    if (e != 0)
        return e;
    scan_walk *w = aredis__calloc(1, sizeof *w + extra);
    if (w == NULL)
        return AREDIS_ENOMEM;
    copy_opts(&w->a, w->strings, opts);
    w->batch = batch;
    w->element = element;
    w->done = done;
    w->ud = ud;
    if (walks_nodes(c, &w->a)) {
        static const char *const ping[] = {"PING"};
        e = aredis_nodes_commandv(c, AREDIS_NODES_PRIMARIES, on_primaries, w, 1,
                                  ping, NULL);
    } else {
        e = send_next(c, w);
    }
    if (e != 0)
        aredis__free(w);
    return e;
}

/* ---- blocking iterator --------------------------------------------------- */

struct aredis_sync_scan {
    aredis_sync *s;
    scan_args a;
    aredis_node_addr *nodes;   /* a cluster's primaries, or NULL */
    size_t nnodes, node;       /* ... and the one being walked */
    aredis_reply *reply;       /* the current batch's reply (owned) */
    const aredis_reply *batch; /* its element array */
    size_t next, n;            /* next element, elements in the batch */
    int started;
    int error;      /* sticky negative aredis_err, or 0 */
    char *errmsg;   /* its message (owned), or NULL */
    char strings[]; /* key, match and type */
};

static void set_status(aredis_status *st, int code, const char *msg)
{
    if (st == NULL)
        return;
    st->code = code;
    snprintf(st->msg, sizeof st->msg, "%s", msg);
}

aredis_sync_scan *aredis_sync_scan_new(aredis_sync *s,
                                       const aredis_scan_opts *opts,
                                       aredis_status *st)
{
    static const aredis_scan_opts all = {0};
    if (opts == NULL)
        opts = &all;
    size_t extra = 0;
    if (s == NULL || check_opts(opts, &extra) != 0) {
        set_status(st, AREDIS_EINVAL,
                   "invalid scan options (kind, key, type or count)");
        return NULL;
    }
    aredis_sync_scan *it = aredis__calloc(1, sizeof *it + extra);
    if (it == NULL) {
        set_status(st, AREDIS_ENOMEM, "out of memory");
        return NULL;
    }
    copy_opts(&it->a, it->strings, opts);
    it->s = s;
    set_status(st, 0, "");
    return it;
}

static int fail(aredis_sync_scan *it, int code, const char *msg, size_t len)
{
    /* Always negative, so that callers can tell it from "an element". */
    it->error = code < 0 ? code : AREDIS_EPROTO;
    aredis__free(it->errmsg);
    it->errmsg = aredis__strndup(msg, len); /* NULL reads as "" */
    aredis_reply_free(it->reply);
    it->reply = NULL;
    it->batch = NULL;
    it->n = it->next = 0;
    return it->error;
}

/* Fetch batches until one has elements or the walk ends.
 * \return 1 (a batch is ready), 0 (the end) or a negative aredis_err. */
static int fetch(aredis_sync_scan *it)
{
    if (!it->started && it->nodes == NULL &&
        walks_nodes(aredis_sync_client(it->s), &it->a)) {
        static const char *const ping[] = {"PING"};
        aredis_reply *r = aredis_sync_nodes_commandv(
            it->s, AREDIS_NODES_PRIMARIES, 1, ping, NULL);
        if (r == NULL) {
            static const char oom[] = "out of memory";
            return fail(it, AREDIS_ENOMEM, oom, sizeof oom - 1);
        }
        const char *why = NULL;
        int e = r->type == AREDIS_REPLY_ERROR
                    ? (r->code != 0 ? r->code : AREDIS_ESERVER)
                    : parse_nodes(r, &it->nodes, &it->nnodes, &why);
        if (e != 0) {
            it->reply = r; /* freed by fail() */
            return r->type == AREDIS_REPLY_ERROR
                       ? fail(it, e, r->str, r->len)
                       : fail(it, e, why, strlen(why));
        }
        aredis_reply_free(r);
    }
    while (it->next >= it->n) {
        if (it->started && at_end(&it->a) &&
            !next_node(&it->a, &it->node, it->nnodes))
            return 0;
        aredis_reply_free(it->reply);
        it->reply = NULL;
        it->batch = NULL;
        it->n = it->next = 0;
        const char *argv[SCAN_ARGV_MAX];
        size_t lens[SCAN_ARGV_MAX];
        int argc = build_argv(&it->a, argv, lens);
        aredis_reply *r = it->nodes != NULL
                              ? aredis_sync_node_commandv(
                                    it->s, it->nodes[it->node].host,
                                    it->nodes[it->node].port, argc, argv, lens)
                              : aredis_sync_commandv(it->s, argc, argv, lens);
        if (r == NULL) {
            static const char oom[] = "out of memory";
            return fail(it, AREDIS_ENOMEM, oom, sizeof oom - 1);
        }
        it->reply = r;
        it->started = 1;
        if (r->type == AREDIS_REPLY_ERROR)
            return fail(it, r->code != 0 ? r->code : AREDIS_ESERVER, r->str,
                        r->len);
        const char *why = NULL;
        int e = take_reply(&it->a, r, &it->batch, &why);
        if (e != 0)
            return fail(it, e, why, strlen(why));
        it->n = batch_count(&it->a, it->batch);
    }
    return 1;
}

int aredis_sync_scan_next(aredis_sync_scan *it, aredis_scan_elem *out)
{
    if (it == NULL || out == NULL)
        return AREDIS_EINVAL;
    if (it->error != 0)
        return it->error;
    int e = fetch(it);
    if (e <= 0)
        return e;
    const char *why = NULL;
    e = elem_at(&it->a, it->batch, it->next, out, &why);
    if (e != 0)
        return fail(it, e, why, strlen(why));
    it->next++;
    return 1;
}

const char *aredis_sync_scan_errmsg(const aredis_sync_scan *it)
{
    return it != NULL && it->errmsg != NULL ? it->errmsg : "";
}

void aredis_sync_scan_free(aredis_sync_scan *it)
{
    if (it == NULL)
        return;
    aredis_reply_free(it->reply);
    aredis__free(it->errmsg);
    aredis__free(it->nodes);
    aredis__free(it);
}
