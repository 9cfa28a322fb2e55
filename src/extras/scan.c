/* SCAN, SSCAN, HSCAN and ZSCAN iterators (extras layer).
 *
 * Built only on the public client API (aredis_commandv_opts() and the
 * blocking facade's aredis_sync_commandv_opts()), so the iterators work on
 * every topology without code of their own per topology. They must not reach
 * into the client, connection or resp layers' internals; the only internal
 * header used is the allocator's, so the user's allocator hooks apply.
 *
 * Both forms share the argument builder and the reply checks below: a SCAN
 * reply is a two-element array, the next cursor (a bulk string of decimal
 * digits) and the batch (an array).
 *
 * On a cluster client, a SCAN of the key space walks the primaries in
 * turn, a cursor per node, through the node API (aredis/cluster.h): a PING
 * to every primary waits for the slot map, which then says which slots each
 * primary serves (aredis_client_slot_primary()); SSCAN, HSCAN and ZSCAN go
 * by their key's slot like any command. The walk follows the cluster when
 * it changes (the plan below): the slots of a node that no longer serves
 * them are walked again, from cursor 0, on the nodes that serve them now.
 * A cursor is never carried from one node to another: it means nothing
 * there. Every call of a walk, on any topology and through either API,
 * has the walk's timeout_ms (call_opts()). */
#include "aredis/scan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aredis/cluster.h"
#include "aredis/error.h"
#include "util/alloc.h"
#include "util/msg.h"

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
/* 0, or AREDIS_EINVAL with *why saying which option is wrong. */
static int check_opts(const aredis_scan_opts *o, size_t *extra,
                      const char **why)
{
    *why = NULL;
    if (o->kind < AREDIS_SCAN_KEYS || o->kind > AREDIS_SCAN_ZSET)
        *why = "bad scan option: unknown kind";
    else if (o->count < 0)
        *why = "bad scan option: negative count";
    else if (o->kind == AREDIS_SCAN_KEYS && o->key != NULL)
        *why = "bad scan option: a key walk (SCAN) takes no key";
    else if (o->kind != AREDIS_SCAN_KEYS && o->key == NULL)
        *why = "bad scan option: SSCAN, HSCAN and ZSCAN need a key";
    else if (o->type != NULL && o->kind != AREDIS_SCAN_KEYS)
        /* the server only filters SCAN by type */
        *why = "bad scan option: type filters only a key walk (SCAN)";
    if (*why != NULL)
        return AREDIS_EINVAL;
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

/* The options of each call of a walk (SCANs, the PING that waits for a
 * cluster's slot map, the failover probe): the walk's deadline, and
 * idempotent, since they only read: sent again after a lost connection,
 * so a walk survives a reconnect. */
static aredis_cmd_opts call_opts(const scan_args *a)
{
    return (aredis_cmd_opts){.timeout_ms = a->timeout_ms,
                             .flags = AREDIS_CMD_IDEMPOTENT};
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

/* The key space's walk goes node by node (a cluster client). */
static int walks_nodes(aredis_client *c, const scan_args *a)
{
    return a->kind == AREDIS_SCAN_KEYS && aredis_client_is_cluster(c);
}

/* Back to the start of a node's keys. */
static void restart(scan_args *a)
{
    memcpy(a->cursor, "0", 2);
    a->cursorlen = 1;
}

/* ---- a cluster walk's plan ------------------------------------------------
 *
 * A part is the slots one primary served when the walk met it, walked with
 * one cursor on that node; part_of[slot] names each slot's part, parts are
 * walked in order. Before each call, and after a failed one, the walk asks
 * the client's slot map who serves the current part's slots now:
 *
 *  - still its node (or, for some slots, nobody): go on with it;
 *  - other nodes only (a failover, a node gone): each slot goes to the
 *    part of its new node that has not started yet, or to a new part at
 *    the end, and the walk moves on. The new node is walked from cursor 0
 *    (its keys from the start: some may repeat).
 *
 * A call that failed on a node the map still names (killed, not yet
 * replaced) waits for the client to know better: a probe, a command for
 * the part's first slot, which the client holds while that slot's node is
 * unreachable and sends at once when a map names another (within the
 * walk's timeout_ms, or the client's retry budget). Then the part starts
 * over from cursor 0 on whichever node serves it: a node that came back
 * may have restarted, and a cursor means nothing to another process. A
 * part fails PLAN_TRIES times at most. */

#define PLAN_NONE 0xFFFFu
#define PLAN_TRIES 3

typedef struct scan_part {
    aredis_node_addr node;
    unsigned first; /* its lowest slot */
    int fails;      /* failed calls */
} scan_part;

typedef struct scan_plan {
    uint16_t *part_of; /* per slot: its part, or PLAN_NONE; NULL: no plan */
    scan_part *parts;
    size_t nparts, cap, cur;
} scan_plan;

static void plan_free(scan_plan *p)
{
    aredis__free(p->part_of);
    aredis__free(p->parts);
    memset(p, 0, sizeof *p);
}

static int same_node(const aredis_node_addr *a, const aredis_node_addr *b)
{
    return a->port == b->port && strcmp(a->host, b->host) == 0;
}

/* The part of node from part `from` on, added at the end when there is
 * none: its index, or -1 (out of memory). */
static long plan_part(scan_plan *p, const aredis_node_addr *node, size_t from)
{
    for (size_t i = from; i < p->nparts; i++)
        if (same_node(&p->parts[i].node, node))
            return (long)i;
    if (p->nparts == p->cap) {
        size_t cap = p->cap != 0 ? 2 * p->cap : 4;
        if (cap > PLAN_NONE)
            cap = PLAN_NONE; /* indexes below PLAN_NONE */
        scan_part *v = cap > p->cap
                           ? aredis__reallocarray(p->parts, cap, sizeof *v)
                           : NULL;
        if (v == NULL)
            return -1;
        p->parts = v;
        p->cap = cap;
    }
    memset(&p->parts[p->nparts], 0, sizeof p->parts[0]);
    p->parts[p->nparts].node = *node;
    p->parts[p->nparts].first = AREDIS_CLUSTER_SLOTS;
    return (long)p->nparts++;
}

/* Give slot k to part j. */
static void plan_give(scan_plan *p, unsigned k, long j)
{
    p->part_of[k] = (uint16_t)j;
    if (k < p->parts[j].first)
        p->parts[j].first = k;
}

/* A part per primary of the client's map, in slot order: 0 or
 * AREDIS_ENOMEM. */
static int plan_build(scan_plan *p, aredis_client *c)
{
    p->part_of = aredis__malloc(AREDIS_CLUSTER_SLOTS * sizeof *p->part_of);
    if (p->part_of == NULL)
        return AREDIS_ENOMEM;
    aredis_node_addr a;
    unsigned last = 0;
    for (unsigned s = 0; s < AREDIS_CLUSTER_SLOTS; s = last + 1) {
        int has = aredis_client_slot_primary(c, s, &a, &last);
        long j = has == 1 ? plan_part(p, &a, 0) : (long)PLAN_NONE;
        if (has < 0 || j < 0)
            return AREDIS_ENOMEM;
        for (unsigned k = s; k <= last; k++) {
            if (j == (long)PLAN_NONE)
                p->part_of[k] = PLAN_NONE; /* nobody serves it */
            else
                plan_give(p, k, j);
        }
    }
    return 0;
}

/* Hand the current part's slots to the nodes that serve them now, when
 * none is its node's any more and each is served: 1 (the walk moves on to
 * the next part, from cursor 0), 0 (it stays), or AREDIS_ENOMEM. */
static int plan_rehome(scan_plan *p, aredis_client *c, scan_args *a)
{
    size_t i = p->cur;
    aredis_node_addr now;
    unsigned last = 0;
    for (unsigned s = p->parts[i].first; s < AREDIS_CLUSTER_SLOTS;
         s = last + 1) {
        int has = aredis_client_slot_primary(c, s, &now, &last);
        if (has < 0)
            return AREDIS_ENOMEM; /* NEVER: the arguments are valid */
        for (unsigned k = s; k <= last; k++)
            if (p->part_of[k] == i &&
                (has == 0 || same_node(&now, &p->parts[i].node)))
                return 0;
    }
    for (unsigned s = p->parts[i].first; s < AREDIS_CLUSTER_SLOTS;
         s = last + 1) {
        (void)aredis_client_slot_primary(c, s, &now, &last);
        long j = -1;
        for (unsigned k = s; k <= last; k++) {
            if (p->part_of[k] != i)
                continue;
            if (j < 0 && (j = plan_part(p, &now, i + 1)) < 0)
                return AREDIS_ENOMEM;
            plan_give(p, k, j);
        }
    }
    p->cur++;
    restart(a);
    return 1;
}

/* Before a call: the part to walk, its node checked against the map (its
 * first slot's primary; all its slots when that is another). 1 (walk
 * parts[cur]), 0 (every part is done) or AREDIS_ENOMEM. */
static int plan_current(scan_plan *p, aredis_client *c, scan_args *a)
{
    while (p->cur < p->nparts) {
        const scan_part *x = &p->parts[p->cur];
        aredis_node_addr now;
        if (aredis_client_slot_primary(c, x->first, &now, NULL) == 1 &&
            same_node(&now, &x->node))
            return 1;
        int e = plan_rehome(p, c, a);
        if (e <= 0)
            return e < 0 ? e : 1;
    }
    return 0;
}

/* The current part's node finished its keys (cursor 0 again). */
static void plan_done(scan_plan *p)
{
    p->cur++;
}

/* What to do after a call on the current part failed with code. */
enum { PLAN_END, PLAN_GO, PLAN_PROBE };

static int plan_failed(scan_plan *p, aredis_client *c, scan_args *a, int code)
{
    if (code == AREDIS_ECANCELED || code == AREDIS_ESTATE ||
        code == AREDIS_ENOMEM)
        return PLAN_END; /* the client is going away, or no memory */
    int e = plan_rehome(p, c, a);
    if (e != 0)
        return e > 0 ? PLAN_GO : PLAN_END;
    /* Its node still serves its slots: the server's own refusal ends the
     * walk; a lost or silent node is waited for, a few times. */
    if (code == AREDIS_ESERVER || code == AREDIS_EPROTO ||
        ++p->parts[p->cur].fails >= PLAN_TRIES)
        return PLAN_END;
    restart(a);
    return PLAN_PROBE;
}

/* The probe: EXISTS of a key of the current part's first slot, "{n}" for
 * the first n whose digits hash there, idempotent, within the walk's
 * deadline. The async and blocking walks send it alike. */
typedef struct scan_probe {
    char key[24];
    const char *argv[2];
    size_t lens[2];
    aredis_cmd_opts opts;
} scan_probe;

static void probe_init(scan_probe *pr, const scan_plan *p, const scan_args *a)
{
    char *buf = pr->key;
    const char **argv = pr->argv;
    size_t *lens = pr->lens;
    pr->opts = call_opts(a);
    unsigned slot = p->parts[p->cur].first;
    /* Count up in decimal, in place, from "0": at most a few hundred
     * thousand tries find any slot, far from the 20 digits there are. */
    char *d = buf + 1;
    size_t n = 1;
    d[0] = '0';
    while (aredis_cluster_keyslot(d, n) != slot && n < 20) {
        size_t i = n;
        while (i > 0 && d[i - 1] == '9')
            d[--i] = '0';
        if (i == 0) {
            memmove(d + 1, d, n++);
            d[0] = '1';
        } else {
            d[i - 1]++;
        }
    }
    buf[0] = '{';
    d[n] = '}';
    argv[0] = "EXISTS";
    lens[0] = 6;
    argv[1] = buf;
    lens[1] = n + 2;
}

/* ---- asynchronous walk --------------------------------------------------- */

typedef struct scan_walk {
    scan_args a;
    scan_plan plan; /* a cluster walk's, or none */
    aredis_scan_batch_cb batch;
    aredis_scan_elem_cb element;
    aredis_scan_done_cb done;
    void *ud;
    char strings[]; /* key, match and type */
} scan_walk;

static void on_scan_reply(aredis_client *c, const aredis_reply *r, void *ud);
static void on_probe(aredis_client *c, const aredis_reply *r, void *ud);

static void finish(aredis_client *c, scan_walk *w, int status,
                   const aredis_reply *err)
{
    if (w->done != NULL)
        w->done(c, status, err, w->ud);
    plan_free(&w->plan);
    aredis__free(w);
}

/* End the walk with a local error (not a reply's). */
static void finish_local(aredis_client *c, scan_walk *w, int e, const char *why)
{
    aredis_reply local;
    local_error(&local, e, why != NULL ? why : aredis_strerror(e));
    finish(c, w, e, &local);
}

static int send_call(aredis_client *c, scan_walk *w)
{
    const char *argv[SCAN_ARGV_MAX];
    size_t lens[SCAN_ARGV_MAX];
    int argc = build_argv(&w->a, argv, lens);
    aredis_cmd_opts o = call_opts(&w->a);
    if (w->plan.part_of != NULL) {
        const aredis_node_addr *n = &w->plan.parts[w->plan.cur].node;
        return aredis_node_commandv_opts(c, &o, n->host, n->port, on_scan_reply,
                                         w, argc, argv, lens);
    }
    return aredis_commandv_opts(c, &o, on_scan_reply, w, argc, argv, lens);
}

/* A call failed (code; r the reply, NULL when it could not be sent): on
 * to the nodes that serve the part now, a probe, or the end. */
static void call_failed(aredis_client *c, scan_walk *w, int code,
                        const aredis_reply *r);

/* The next call: the current part's, the walk's end, or its failure. */
static void send_next(aredis_client *c, scan_walk *w)
{
    if (w->plan.part_of != NULL) {
        int more = plan_current(&w->plan, c, &w->a);
        if (more <= 0) {
            if (more == 0)
                finish(c, w, AREDIS_SCAN_FINISHED, NULL);
            else
                finish_local(c, w, more, NULL);
            return;
        }
    }
    int e = send_call(c, w);
    if (e == 0)
        return;
    /* The promise made when aredis_scan() returned 0 is that done runs
     * once: a refused submit (client being freed, out of memory, a node
     * the client no longer knows) is a failed call, here in a callback. */
    if (w->plan.part_of != NULL)
        call_failed(c, w, e, NULL);
    else
        finish_local(c, w, e, NULL);
}

static void call_failed(aredis_client *c, scan_walk *w, int code,
                        const aredis_reply *r)
{
    int next = w->plan.part_of != NULL ? plan_failed(&w->plan, c, &w->a, code)
                                       : PLAN_END;
    if (next == PLAN_GO) {
        send_next(c, w);
        return;
    }
    if (next == PLAN_PROBE) {
        scan_probe pr;
        probe_init(&pr, &w->plan, &w->a);
        int e =
            aredis_commandv_opts(c, &pr.opts, on_probe, w, 2, pr.argv, pr.lens);
        if (e == 0)
            return;
        code = e;
        r = NULL;
    }
    if (r != NULL)
        finish(c, w, code, r);
    else
        finish_local(c, w, code, NULL);
}

/* The probe has its answer: the part goes on, on whichever node serves
 * it now; or the client gave up waiting for one (the probe's error). */
static void on_probe(aredis_client *c, const aredis_reply *r, void *ud)
{
    scan_walk *w = ud;
    if (r->type != AREDIS_REPLY_ERROR) {
        send_next(c, w);
        return;
    }
    int code = r->code != 0 ? r->code : AREDIS_ESERVER;
    int e = code == AREDIS_ECANCELED || code == AREDIS_ESTATE
                ? 0
                : plan_rehome(&w->plan, c, &w->a);
    if (e > 0)
        send_next(c, w);
    else if (e < 0)
        finish_local(c, w, e, NULL);
    else
        finish(c, w, code, r);
}

/* A cluster walk's primaries have answered (the slot map is known): the
 * plan, then its first part. */
static void on_primaries(aredis_client *c, const aredis_reply *r, void *ud)
{
    scan_walk *w = ud;
    if (r->type == AREDIS_REPLY_ERROR) {
        finish(c, w, r->code != 0 ? r->code : AREDIS_ESERVER, r);
        return;
    }
    int e = plan_build(&w->plan, c);
    if (e != 0) {
        finish_local(c, w, e, NULL);
        return;
    }
    send_next(c, w);
}

static void on_scan_reply(aredis_client *c, const aredis_reply *r, void *ud)
{
    scan_walk *w = ud;
    if (r->type == AREDIS_REPLY_ERROR) {
        call_failed(c, w, r->code != 0 ? r->code : AREDIS_ESERVER, r);
        return;
    }
    const aredis_reply *b = NULL;
    const char *why = NULL;
    int e = take_reply(&w->a, r, &b, &why);
    if (e != 0) {
        finish_local(c, w, e, why);
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
            finish_local(c, w, e, why);
            return;
        }
        if (w->element(c, &el, w->ud) != 0) {
            finish(c, w, AREDIS_SCAN_STOPPED, NULL);
            return;
        }
    }
    if (at_end(&w->a)) {
        if (w->plan.part_of == NULL) {
            finish(c, w, AREDIS_SCAN_FINISHED, NULL);
            return;
        }
        plan_done(&w->plan);
    }
    send_next(c, w);
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
    const char *why;
    int e = check_opts(opts, &extra, &why);
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
        aredis_cmd_opts o = call_opts(&w->a);
        e = aredis_nodes_commandv_opts(c, &o, AREDIS_NODES_PRIMARIES,
                                       on_primaries, w, 1, ping, NULL);
    } else {
        e = send_call(c, w);
    }
    if (e != 0)
        aredis__free(w);
    return e;
}

/* ---- blocking iterator --------------------------------------------------- */

struct aredis_sync_scan {
    aredis_sync *s;
    scan_args a;
    scan_plan plan;            /* a cluster walk's, or none */
    aredis_reply *reply;       /* the current batch's reply (owned) */
    const aredis_reply *batch; /* its element array */
    size_t next, n;            /* next element, elements in the batch */
    int planned;               /* the walk's kind was looked at */
    int begun;      /* a call answered since the cursor was last set to 0 */
    int error;      /* sticky negative aredis_err, or 0 */
    char *errmsg;   /* its message (owned), or NULL */
    char strings[]; /* key, match and type */
};

static void set_status(aredis_status *st, int code, const char *msg)
{
    if (st == NULL)
        return;
    st->code = code;
    aredis__msgf(st->msg, sizeof st->msg, "%s", msg);
}

aredis_sync_scan *aredis_sync_scan_new(aredis_sync *s,
                                       const aredis_scan_opts *opts,
                                       aredis_status *st)
{
    static const aredis_scan_opts all = {0};
    if (opts == NULL)
        opts = &all;
    size_t extra = 0;
    const char *why = "no blocking handle";
    if (s == NULL || check_opts(opts, &extra, &why) != 0) {
        set_status(st, AREDIS_EINVAL, why);
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

static int fail_oom(aredis_sync_scan *it)
{
    static const char oom[] = "out of memory";
    return fail(it, AREDIS_ENOMEM, oom, sizeof oom - 1);
}

/* fail() with an error reply r, which the iterator keeps for its text. */
static int fail_reply(aredis_sync_scan *it, aredis_reply *r)
{
    aredis_reply_free(it->reply);
    it->reply = r; /* freed by fail() */
    return fail(it, r->code != 0 ? r->code : AREDIS_ESERVER, r->str, r->len);
}

/* A cluster walk's plan, once the slot map is known (a PING to every
 * primary waits for it): 0 or a negative aredis_err. */
static int sync_plan(aredis_sync_scan *it)
{
    static const char *const ping[] = {"PING"};
    aredis_cmd_opts o = call_opts(&it->a);
    aredis_reply *r = aredis_sync_nodes_commandv_opts(
        it->s, &o, AREDIS_NODES_PRIMARIES, 1, ping, NULL);
    if (r == NULL)
        return fail_oom(it);
    if (r->type == AREDIS_REPLY_ERROR)
        return fail_reply(it, r);
    aredis_reply_free(r);
    int e = plan_build(&it->plan, aredis_sync_client(it->s));
    return e != 0 ? fail(it, e, aredis_strerror(e), strlen(aredis_strerror(e)))
                  : 0;
}

/* A call on the current part failed (r, owned): 1 to go on (on the nodes
 * that now serve the part, or on its own node from cursor 0 once a probe
 * has waited for the client to know better), else the walk's error. */
static int sync_failed(aredis_sync_scan *it, aredis_reply *r)
{
    aredis_client *c = aredis_sync_client(it->s);
    int code = r->code != 0 ? r->code : AREDIS_ESERVER;
    int next = it->plan.part_of != NULL
                   ? plan_failed(&it->plan, c, &it->a, code)
                   : PLAN_END;
    if (next == PLAN_END)
        return fail_reply(it, r);
    it->begun = 0;
    aredis_reply_free(r);
    if (next == PLAN_GO)
        return 1;
    scan_probe pr;
    probe_init(&pr, &it->plan, &it->a);
    aredis_reply *p =
        aredis_sync_commandv_opts(it->s, &pr.opts, 2, pr.argv, pr.lens);
    if (p == NULL)
        return fail_oom(it);
    if (p->type != AREDIS_REPLY_ERROR) {
        aredis_reply_free(p);
        return 1;
    }
    code = p->code != 0 ? p->code : AREDIS_ESERVER;
    int e = code == AREDIS_ECANCELED || code == AREDIS_ESTATE
                ? 0
                : plan_rehome(&it->plan, c, &it->a);
    if (e == 0)
        return fail_reply(it, p);
    aredis_reply_free(p);
    return e > 0 ? 1 : fail_oom(it);
}

/* Fetch batches until one has elements or the walk ends.
 * \return 1 (a batch is ready), 0 (the end) or a negative aredis_err. */
static int fetch(aredis_sync_scan *it)
{
    aredis_client *c = aredis_sync_client(it->s);
    if (!it->planned) {
        it->planned = 1;
        if (walks_nodes(c, &it->a)) {
            int e = sync_plan(it);
            if (e != 0)
                return e;
        }
    }
    while (it->next >= it->n) {
        if (it->begun && at_end(&it->a)) {
            if (it->plan.part_of == NULL)
                return 0;
            plan_done(&it->plan);
            it->begun = 0;
        }
        aredis_reply_free(it->reply);
        it->reply = NULL;
        it->batch = NULL;
        it->n = it->next = 0;
        if (it->plan.part_of != NULL) {
            size_t cur = it->plan.cur;
            int more = plan_current(&it->plan, c, &it->a);
            if (more == 0)
                return 0;
            if (more < 0)
                return fail_oom(it);
            if (it->plan.cur != cur)
                it->begun = 0;
        }
        const char *argv[SCAN_ARGV_MAX];
        size_t lens[SCAN_ARGV_MAX];
        int argc = build_argv(&it->a, argv, lens);
        const aredis_node_addr *node = it->plan.part_of != NULL
                                           ? &it->plan.parts[it->plan.cur].node
                                           : NULL;
        aredis_cmd_opts o = call_opts(&it->a);
        aredis_reply *r =
            node != NULL
                ? aredis_sync_node_commandv_opts(it->s, &o, node->host,
                                                 node->port, argc, argv, lens)
                : aredis_sync_commandv_opts(it->s, &o, argc, argv, lens);
        if (r == NULL)
            return fail_oom(it);
        if (r->type == AREDIS_REPLY_ERROR) {
            int e = sync_failed(it, r);
            if (e <= 0)
                return e;
            continue;
        }
        it->reply = r;
        it->begun = 1;
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
    plan_free(&it->plan);
    aredis__free(it);
}
