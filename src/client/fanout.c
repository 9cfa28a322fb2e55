/* Fan-out (client layer): commands a cluster client sends to several
 * nodes, or splits by slot, and whose replies it merges into the one reply
 * a single server would have given.
 *
 *  - The command table declares each command's cluster policy
 *    (util/cmdtable.h, AREDIS__CL_*): keys split by slot (MGET, MSET, DEL,
 *    EXISTS, UNLINK, TOUCH), every primary (KEYS, DBSIZE, FLUSHALL, SCRIPT
 *    LOAD...), every node (PUBSUB CHANNELS, INFO, PING...), or refused.
 *  - Each part is an ordinary command of the client (its own deadline,
 *    redirects, retries); the merged reply goes to the caller's callback
 *    when the last part has completed, so the exactly-once rule of every
 *    part gives the caller's. Parts go out together, in one loop turn.
 *  - A fan-out over nodes waits for the slot map when the topology does
 *    not know it yet (a client just created): a record of the client's
 *    own that the topology holds as it holds the commands waiting for the
 *    map, answered when the map arrives (hold_for_map, topology.h), with a
 *    deadline of the client's; the node pointers it gets from the topology are
 * used inside one call and never kept (a refresh may drop nodes): a node is
 * remembered by its address.
 *
 * Only cluster clients get here (client.c asks only when the topology
 * keeps commands' bytes), so a single server pays nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aredis/cluster.h"
#include "aredis/error.h"
#include "client/client_int.h"
#include "node/node.h"
#include "resp/resp.h"
#include "topology/topology.h"
#include "util/alloc.h"
#include "util/cmdtable.h"
#include "util/msg.h"

/* Kinds of fan-out besides the table's policies. */
enum { FAN_ACQUIRE = 100 };

/* Waiting for the slot map: for WAIT_MS at most in all, or the caller's
 * per-call timeout when that is shorter; once the client is closing (it
 * fetches no map of its own accord: only one already on its way is waited
 * for), for WAIT_CLOSING_MS more at most. */
#define WAIT_MS 3500
#define WAIT_CLOSING_MS 120

typedef struct part {
    struct aredis__fanout *f;
    aredis_reply *r; /* an owned copy of its reply; NULL until answered */
    char *name;      /* "host:port" of its node (fan-out over nodes) */
} part;

struct aredis__fanout {
    aredis_client *c;
    aredis_reply_cb cb;
    void *ud;
    int policy; /* AREDIS__CL_* or FAN_ACQUIRE */
    int which;  /* AREDIS_NODES_* for a fan-out over nodes */
    size_t nparts, left;
    part *parts;
    /* Split by slot: key i of the caller's order is element kpos[i] of
     * part kpart[i]'s reply. */
    size_t nkeys;
    uint32_t *kpart, *kpos;
    /* Kept while waiting for the map. */
    char *bytes;
    size_t len;
    aredis_cmd_opts o;
    int has_o;
    unsigned slot;               /* FAN_ACQUIRE */
    aredis_acquire_cb acb;       /* FAN_ACQUIRE */
    aredis__cmd *waiter;         /* its wait for the map (held), or NULL */
    int64_t deadline;            /* of the wait, in all (0: not waited) */
    aredis__fanout *next, *prev; /* in c->fanouts while waiting */
};

static void fan_free(aredis__fanout *f)
{
    for (size_t i = 0; i < f->nparts; i++) {
        aredis_reply_free(f->parts[i].r);
        aredis__free(f->parts[i].name);
    }
    aredis__free(f->parts);
    aredis__free(f->kpart);
    aredis__free(f->kpos);
    aredis__free(f->bytes);
    aredis__free(f);
}

/* ---- merging ------------------------------------------------------------- */

/* Deliver r (a client-side error: code, message) to the caller. */
/* The caller's callback, which may be NULL (client.h: the reply is then
 * ignored), as for a command that was not fanned out. */
static void deliver(aredis__fanout *f, const aredis_reply *r)
{
    if (f->cb != NULL)
        AREDIS__USER_CB(f->c, f->cb(f->c, r, f->ud));
}

static void reply_error(aredis__fanout *f, int code, const char *msg)
{
    aredis_reply r = aredis__error_reply(code, msg);
    deliver(f, &r);
}

static int is_ok(const aredis_reply *r)
{
    return r->type == AREDIS_REPLY_STATUS && r->len == 2 &&
           memcmp(r->str, "OK", 2) == 0;
}

static int same_reply(const aredis_reply *a, const aredis_reply *b)
{
    if (a->type != b->type || a->len != b->len)
        return 0;
    switch (a->type) {
    case AREDIS_REPLY_ARRAY:
    case AREDIS_REPLY_SET:
    case AREDIS_REPLY_MAP:
        for (size_t i = 0; i < a->len; i++)
            if (!same_reply(&a->element[i], &b->element[i]))
                return 0;
        return 1;
    case AREDIS_REPLY_INTEGER:
    case AREDIS_REPLY_BOOL:
        return a->integer == b->integer;
    case AREDIS_REPLY_NIL:
        return 1;
    default:
        return a->str == b->str || memcmp(a->str, b->str, a->len) == 0;
    }
}

static int is_list(const aredis_reply *r)
{
    return r->type == AREDIS_REPLY_ARRAY || r->type == AREDIS_REPLY_SET ||
           r->type == AREDIS_REPLY_MAP;
}

/* Each merge below fills *out from the parts' replies (all present, none
 * an error), its nodes in *elems (the caller frees them after the
 * callback), and returns NULL, or what is wrong. */

static const char oom_merging[] = "out of memory merging the replies";

/* MGET: the keys' values in the caller's order. */
static const char *merge_keys(aredis__fanout *f, aredis_reply *out,
                              aredis_reply **elems)
{
    aredis_reply *v = aredis__calloc(f->nkeys > 0 ? f->nkeys : 1, sizeof *v);
    if ((*elems = v) == NULL)
        return oom_merging;
    for (size_t i = 0; i < f->nkeys; i++) {
        const aredis_reply *r = f->parts[f->kpart[i]].r;
        if (!is_list(r) || f->kpos[i] >= r->len)
            return "a part's reply is not the array expected";
        v[i] = r->element[f->kpos[i]];
    }
    out->type = AREDIS_REPLY_ARRAY;
    out->len = f->nkeys;
    out->element = v;
    return NULL;
}

/* DEL, EXISTS, DBSIZE...: the sum. */
static const char *merge_sum(aredis__fanout *f, aredis_reply *out)
{
    out->type = AREDIS_REPLY_INTEGER;
    for (size_t i = 0; i < f->nparts; i++) {
        if (f->parts[i].r->type != AREDIS_REPLY_INTEGER)
            return "a part's reply is not an integer";
        out->integer += f->parts[i].r->integer;
    }
    return NULL;
}

/* MSET, FLUSHALL...: OK when every part says OK; SCRIPT LOAD: the reply
 * every part gave. */
static const char *merge_same(aredis__fanout *f, aredis_reply *out, int ok)
{
    for (size_t i = 0; i < f->nparts; i++) {
        if (ok && !is_ok(f->parts[i].r))
            return "a part did not answer OK";
        if (!same_reply(f->parts[0].r, f->parts[i].r))
            return "the nodes answered differently";
    }
    *out = *f->parts[0].r;
    return NULL;
}

/* KEYS: every part's elements; PUBSUB CHANNELS: without repeats. */
static const char *merge_union(aredis__fanout *f, aredis_reply *out,
                               aredis_reply **elems, int uniq)
{
    size_t n = 0, k = 0;
    for (size_t i = 0; i < f->nparts; i++) {
        if (!is_list(f->parts[i].r))
            return "a part's reply is not an array";
        n += f->parts[i].r->len;
    }
    aredis_reply *v = aredis__calloc(n > 0 ? n : 1, sizeof *v);
    if ((*elems = v) == NULL)
        return oom_merging;
    for (size_t i = 0; i < f->nparts; i++) {
        const aredis_reply *r = f->parts[i].r;
        for (size_t j = 0; j < r->len; j++) {
            size_t d = 0;
            while (uniq && d < k && !same_reply(&v[d], &r->element[j]))
                d++;
            if (!uniq || d == k)
                v[k++] = r->element[j];
        }
    }
    *out = *f->parts[0].r;
    out->len = k;
    out->element = v;
    return NULL;
}

/* SCRIPT EXISTS: 1 where every part says 1 (step 1, from 0); PUBSUB
 * NUMSUB: name, count, ... with the counts summed (step 2, from 1). The
 * same arguments were asked of every node, so the arrays line up. */
static const char *merge_each(aredis__fanout *f, aredis_reply *out,
                              aredis_reply **elems, int and)
{
    for (size_t i = 0; i < f->nparts; i++)
        if (!is_list(f->parts[i].r) || f->parts[i].r->len != f->parts[0].r->len)
            return "the nodes' replies are not arrays of one length";
    size_t n = f->parts[0].r->len;
    aredis_reply *v = aredis__calloc(n > 0 ? n : 1, sizeof *v);
    if ((*elems = v) == NULL)
        return oom_merging;
    memcpy(v, f->parts[0].r->element, n * sizeof *v);
    for (size_t i = 1; i < f->nparts; i++) {
        const aredis_reply *e = f->parts[i].r->element;
        for (size_t j = and? 0 : 1; j < n; j += and? 1 : 2) {
            if (e[j].type != AREDIS_REPLY_INTEGER ||
                v[j].type != AREDIS_REPLY_INTEGER)
                return "a part's reply holds a non-integer";
            v[j].integer =
                and? v[j].integer && e[j].integer : v[j].integer + e[j].integer;
        }
    }
    *out = *f->parts[0].r;
    out->element = v;
    return NULL;
}

/* INFO, PING...: a map "host:port" -> that node's reply (errors too). */
static const char *merge_map(aredis__fanout *f, aredis_reply *out,
                             aredis_reply **elems)
{
    aredis_reply *v = aredis__calloc(2 * f->nparts + 1, sizeof *v);
    if ((*elems = v) == NULL)
        return oom_merging;
    for (size_t i = 0; i < f->nparts; i++) {
        v[2 * i].type = AREDIS_REPLY_STRING;
        v[2 * i].str = f->parts[i].name;
        v[2 * i].len = strlen(f->parts[i].name);
        v[2 * i + 1] = *f->parts[i].r;
    }
    out->type = AREDIS_REPLY_MAP;
    out->len = 2 * f->nparts;
    out->element = v;
    return NULL;
}

/* RANDOMKEY: the first part that has a key. */
static const char *merge_first(aredis__fanout *f, aredis_reply *out)
{
    out->type = AREDIS_REPLY_NIL;
    for (size_t i = 0; i < f->nparts; i++) {
        if (f->parts[i].r->type != AREDIS_REPLY_NIL) {
            *out = *f->parts[i].r;
            break;
        }
    }
    return NULL;
}

/* A part that failed fails the whole, named by its node when it has one
 * (the other parts may have been applied: the fan-out is not atomic).
 * Returns 1 when the caller got that error. */
static int deliver_failure(aredis__fanout *f)
{
    for (size_t i = 0; i < f->nparts; i++) {
        const aredis_reply *r = f->parts[i].r;
        if (r->type != AREDIS_REPLY_ERROR)
            continue;
        if (f->parts[i].name == NULL) {
            deliver(f, r);
            return 1;
        }
        char msg[512];
        aredis__msgf(msg, sizeof msg, "%s: %.*s", f->parts[i].name, (int)r->len,
                     r->str);
        reply_error(f, r->code, msg);
        return 1;
    }
    return 0;
}

/* The caller's reply from the parts' replies (all present). */
static void merge(aredis__fanout *f)
{
    if (f->policy != AREDIS__CL_N_MAP && deliver_failure(f))
        return;
    aredis_reply out;
    memset(&out, 0, sizeof out);
    aredis_reply *elems = NULL;
    const char *bad;
    switch (f->policy) {
    case AREDIS__CL_S_ARRAY:
        bad = merge_keys(f, &out, &elems);
        break;
    case AREDIS__CL_S_SUM:
    case AREDIS__CL_P_SUM:
    case AREDIS__CL_N_SUM:
        bad = merge_sum(f, &out);
        break;
    case AREDIS__CL_S_OK:
    case AREDIS__CL_P_OK:
    case AREDIS__CL_N_OK:
    case AREDIS__CL_P_SAME:
        bad = merge_same(f, &out, f->policy != AREDIS__CL_P_SAME);
        break;
    case AREDIS__CL_P_FIRST:
        bad = merge_first(f, &out);
        break;
    case AREDIS__CL_P_UNION:
    case AREDIS__CL_N_UNIQ:
        bad = merge_union(f, &out, &elems, f->policy == AREDIS__CL_N_UNIQ);
        break;
    case AREDIS__CL_P_AND:
    case AREDIS__CL_N_PAIRSUM:
        bad = merge_each(f, &out, &elems, f->policy == AREDIS__CL_P_AND);
        break;
    case AREDIS__CL_N_MAP:
        bad = merge_map(f, &out, &elems);
        break;
    default:
        bad = "unknown fan-out";
        break;
    }
    /* reply.h: an empty aggregate's element is NULL, as the reader
     * makes it (never the scratch array, freed after the callback). */
    if (aredis__reply_is_aggregate(&out) && out.len == 0)
        out.element = NULL;
    if (bad != NULL)
        reply_error(f, AREDIS_EPROTO, bad);
    else
        deliver(f, &out);
    aredis__free(elems);
}

/* One part's reply: kept until the last one, then merged. */
static void on_part(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    part *p = ud;
    aredis__fanout *f = p->f;
    p->r = aredis_reply_dup(r);
    if (p->r == NULL) {
        static const aredis_reply oom = {.type = AREDIS_REPLY_ERROR,
                                         .code = AREDIS_ENOMEM,
                                         .len = 13,
                                         .str = "out of memory"};
        p->r = aredis_reply_dup(&oom); /* small: from the kept block */
    }
    if (--f->left > 0)
        return;
    if (p->r != NULL)
        merge(f);
    else
        reply_error(f, AREDIS_ENOMEM, "out of memory");
    fan_free(f);
}

/* ---- starting ------------------------------------------------------------ */

/* A part that could not be sent counts as answered with an error. */
static void part_failed(part *p, int code)
{
    char msg[128];
    aredis__msgf(msg, sizeof msg, "this part could not be sent: %s",
                 aredis_strerror(code));
    aredis_reply r = aredis__error_reply(code, msg);
    p->r = aredis_reply_dup(&r);
}

/* Every part of f has been tried, nsent of them sent. Returns 0 when at
 * least one went (the caller's callback will run when it completes), else
 * the first error (it will not; f is still the caller's). */
static int sent(aredis__fanout *f, size_t nsent, int first_error)
{
    if (nsent == 0)
        return first_error != 0 ? first_error : AREDIS_EINVAL;
    /* The parts sent are pending: their callbacks run from the loop, so
     * left cannot reach 0 here. */
    f->left -= f->nparts - nsent;
    return 0;
}

/* Submit a part's bytes: routed by the topology (n NULL) or to node n. */
static int send_part(aredis__fanout *f, part *p, aredis__node *n,
                     const char *bytes, size_t len)
{
    p->f = f;
    int e =
        aredis__submit_bytes(f->c, n != NULL ? &n->main : NULL,
                             f->has_o ? &f->o : NULL, on_part, p, bytes, len);
    if (e != 0)
        part_failed(p, e);
    return e;
}

static char *node_name(const aredis__node *n)
{
    char buf[300];
    snprintf(buf, sizeof buf, "%s:%d", n->host != NULL ? n->host : "", n->port);
    return aredis__strndup(buf, strlen(buf));
}

/* The topology's nodes of a kind into *v (an array to free when it is
 * not local); their count. */
static size_t list_nodes(aredis_client *c, int which, aredis__node **local,
                         size_t nlocal, aredis__node ***v)
{
    aredis__topology *t = c->topo;
    *v = local;
    size_t k = t->vt->nodes(t, which, local, nlocal);
    if (k <= nlocal)
        return k;
    // NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers
    aredis__node **big = aredis__calloc(k, sizeof *big);
    if (big == NULL)
        return 0;
    k = t->vt->nodes(t, which, big, k);
    *v = big;
    return k;
}

static int wait_map(aredis__fanout *f);

/* Send f's command to every node of its kind: 0 when sent (f belongs to
 * its parts), 1 when the map is not known yet, else an error (f is still
 * the caller's). */
static int start_nodes(aredis__fanout *f)
{
    aredis_client *c = f->c;
    aredis__node *local[16], **v;
    size_t k = list_nodes(c, f->which, local, 16, &v);
    if (k == 0 ||
        ((f->which & AREDIS_NODES_PRIMARIES) &&
         c->topo->vt->nodes(c->topo, AREDIS_NODES_PRIMARIES, NULL, 0) == 0)) {
        if (v != local)
            aredis__free(v);
        return 1;
    }
    int e = 0;
    f->parts = aredis__calloc(k, sizeof *f->parts);
    if (f->parts == NULL)
        e = AREDIS_ENOMEM;
    else
        f->nparts = k; /* fan_free frees what the parts hold */
    for (size_t i = 0; i < k && e == 0; i++)
        if ((f->parts[i].name = node_name(v[i])) == NULL)
            e = AREDIS_ENOMEM;
    size_t nsent = 0;
    if (e == 0) {
        f->left = k;
        for (size_t i = 0; i < k; i++) {
            int pe = send_part(f, &f->parts[i], v[i], f->bytes, f->len);
            if (pe == 0)
                nsent++;
            else if (e == 0)
                e = pe;
        }
        e = sent(f, nsent, e);
    }
    if (v != local)
        aredis__free(v);
    return e;
}

static const char nomap[] =
    "no slot map: the cluster's nodes did not say which node serves which "
    "slots in time";
static const char nomap_closing[] =
    "canceled: the client is closing and has no slot map";

/* The wait for the map is over without one: the caller's one callback
 * gets why (code, msg), and f goes. */
static void wait_failed(aredis__fanout *f, int code, const char *msg)
{
    aredis_client *c = f->c;
    char buf[512]; /* a composed message: errors.md, 511 bytes */
    if (code == AREDIS_ETIMEDOUT) {
        int closing = c->closing || c->freeing;
        code = closing ? AREDIS_ECANCELED : AREDIS_ETIMEDOUT;
        msg = closing ? nomap_closing : nomap;
        /* What the nodes said instead, when one did: a seed that refuses
         * connections, a server without cluster support... */
        const char *why = closing || c->topo->vt->map_why == NULL
                              ? NULL
                              : c->topo->vt->map_why(c->topo);
        if (why != NULL) {
            aredis__msgf(buf, sizeof buf, "%s (%s)", nomap, why);
            msg = buf;
        }
    }
    if (f->policy == FAN_ACQUIRE)
        AREDIS__USER_CB(c, f->acb(c, NULL, code, f->ud));
    else
        reply_error(f, code, msg);
    fan_free(f);
}

/* The topology answered f's wait: it knows the map (r a status), or the
 * wait ended (r an error: the deadline, or the client freed). */
static void on_map_known(aredis_client *c, const aredis_reply *r, void *ud)
{
    aredis__fanout *f = ud;
    /* Off the waiting list before anything may run the caller's code. */
    if (f->prev != NULL)
        f->prev->next = f->next;
    else
        c->fanouts = f->next;
    if (f->next != NULL)
        f->next->prev = f->prev;
    f->next = f->prev = NULL;
    f->waiter = NULL;
    if (r->type == AREDIS_REPLY_ERROR) {
        wait_failed(f, r->code, r->str);
        return;
    }
    int rc;
    if (f->policy == FAN_ACQUIRE) {
        aredis__node *n = c->topo->vt->slot_node(c->topo, f->slot);
        rc = n == NULL ? 1 : aredis__pool_acquire(n, f->acb, f->ud);
        if (rc < 0) {
            AREDIS__USER_CB(c, f->acb(c, NULL, AREDIS_ESTATE, f->ud));
            fan_free(f);
            return;
        }
        if (rc == 0) {
            fan_free(f);
            return;
        }
    } else {
        /* The parts hold the pending count from here on. */
        rc = start_nodes(f);
        if (rc == 0)
            return;
        if (rc < 0) {
            /* Nothing could be sent: the caller still gets its one
             * callback. */
            reply_error(f, rc, "the command could not be sent to the nodes");
            fan_free(f);
            return;
        }
    }
    /* A map, but not yet the slot's primary (or any primary): the next. */
    rc = wait_map(f);
    if (rc != 0)
        wait_failed(f, rc, aredis_strerror(rc));
}

/* Wait for the slot map: a wait the topology holds until it knows where
 * the slots are, within the deadline. 0, or an error (AREDIS_ETIMEDOUT:
 * the deadline has passed; f is still the caller's). */
static int wait_map(aredis__fanout *f)
{
    aredis_client *c = f->c;
    int64_t now = aredis__now_ms();
    if (f->deadline == 0) {
        int64_t wait = c->closing || c->freeing ? WAIT_CLOSING_MS : WAIT_MS;
        if (f->has_o && f->o.timeout_ms > 0 && f->o.timeout_ms < wait)
            wait = f->o.timeout_ms;
        f->deadline = now + wait;
    }
    if (now >= f->deadline)
        return AREDIS_ETIMEDOUT;
    if (c->topo->vt->hold_for_map == NULL)
        return AREDIS_ENOTSUP; /* NEVER: its nodes are known at once */
    aredis__cmd *w = aredis__cmd_new(c);
    if (w == NULL)
        return AREDIS_ENOMEM;
    if (aredis__heap_set(&c->deadlines, &w->dl, f->deadline) != 0) {
        aredis__cmd_free(c, w);
        return AREDIS_ENOMEM;
    }
    w->cb = on_map_known;
    w->ud = f;
    w->timeout_ms = (uint32_t)(f->deadline - now);
    c->pending++; /* a callback is owed: the client waits for it */
    f->waiter = w;
    f->next = c->fanouts;
    f->prev = NULL;
    if (c->fanouts != NULL)
        c->fanouts->prev = f;
    c->fanouts = f;
    c->topo->vt->hold_for_map(c->topo, w);
    aredis__rearm(c); /* its deadline may be the earliest */
    return 0;
}

void aredis__fanout_closing(aredis_client *c)
{
    int64_t until = aredis__now_ms() + WAIT_CLOSING_MS;
    for (aredis__fanout *f = c->fanouts; f != NULL; f = f->next) {
        if (f->waiter == NULL || f->deadline <= until)
            continue;
        f->deadline = until;
        /* In the heap already: a new key allocates nothing. */
        (void)aredis__heap_set(&c->deadlines, &f->waiter->dl, until);
    }
    aredis__rearm(c);
}

static aredis__fanout *fan_new(aredis_client *c, const aredis_cmd_opts *o,
                               aredis_reply_cb cb, void *ud, int policy)
{
    aredis__fanout *f = aredis__calloc(1, sizeof *f);
    if (f == NULL)
        return NULL;
    f->c = c;
    f->cb = cb;
    f->ud = ud;
    f->policy = policy;
    if (o != NULL) {
        f->o = *o;
        f->has_o = 1;
    }
    return f;
}

/* A fan-out over nodes of a kind: now, or once the map is known. */
static int fan_nodes(aredis_client *c, const aredis_cmd_opts *o,
                     aredis_reply_cb cb, void *ud, int policy, int which,
                     const char *bytes, size_t len)
{
    aredis__fanout *f = fan_new(c, o, cb, ud, policy);
    if (f == NULL)
        return AREDIS_ENOMEM;
    f->which = which;
    f->len = len;
    if ((f->bytes = aredis__strndup(bytes, len)) == NULL) {
        fan_free(f);
        return AREDIS_ENOMEM;
    }
    int rc = start_nodes(f);
    if (rc == 1)
        rc = wait_map(f);
    if (rc != 0)
        fan_free(f);
    return rc;
}

/* ---- split by slot ---------------------------------------------------------
 */

/* Send one command per group of a split: the name, then the group's keys
 * (and values). 0 when at least one went, else the first error. */
static int send_groups(aredis__fanout *f, int argc, const char **argv,
                       const size_t *lens, int step)
{
    /* One command per group: the name, then its keys (and values). */
    const char **sub = aredis__calloc((size_t)argc, sizeof *sub);
    size_t *sublen = aredis__calloc((size_t)argc, sizeof *sublen);
    aredis_buf b;
    aredis_buf_init(&b);
    size_t nsent = 0;
    int first = 0;
    size_t nkeys = f->nkeys, ngroups = f->nparts;
    for (size_t g = 0; g < ngroups && sub != NULL && sublen != NULL; g++) {
        int k = 0;
        sub[k] = argv[0];
        sublen[k++] = lens[0];
        for (size_t i = 0; i < nkeys; i++) {
            if (f->kpart[i] != g)
                continue;
            for (int j = 0; j < step; j++) {
                size_t a = 1 + i * (size_t)step + (size_t)j;
                sub[k] = argv[a];
                sublen[k++] = lens[a];
            }
        }
        b.len = 0;
        int pe = aredis_write_argv(&b, k, sub, sublen);
        if (pe == 0)
            pe = send_part(f, &f->parts[g], NULL, b.data, b.len);
        else
            part_failed(&f->parts[g], pe);
        if (pe == 0)
            nsent++;
        else if (first == 0)
            first = pe;
    }
    if (sub == NULL || sublen == NULL)
        first = AREDIS_ENOMEM;
    aredis_buf_cleanup(&b);
    aredis__free(sub);
    aredis__free(sublen);
    return sent(f, nsent, first);
}

/* The key positions of a split command: every argument from 1 (step 1),
 * or key value pairs (step 2). */
static int split(aredis_client *c, const aredis_cmd_opts *o, aredis_reply_cb cb,
                 void *ud, int policy, const aredis__cmdinfo *info,
                 const char *bytes)
{
    aredis__args it;
    int argc = aredis__args_init(&it, bytes);
    int step = info->key_step > 1 ? info->key_step : 1;
    size_t nkeys = (size_t)(argc - 1) / (size_t)step;
    aredis__fanout *f = fan_new(c, o, cb, ud, policy);
    const char **argv = aredis__calloc((size_t)argc, sizeof *argv);
    size_t *lens = aredis__calloc((size_t)argc, sizeof *lens);
    uint16_t *group = aredis__calloc(AREDIS_CLUSTER_SLOTS, sizeof *group);
    uint32_t *gsize = aredis__calloc(nkeys, sizeof *gsize);
    int e = 0;
    if (f == NULL || argv == NULL || lens == NULL || group == NULL ||
        gsize == NULL ||
        (f->kpart = aredis__calloc(nkeys, sizeof *f->kpart)) == NULL ||
        (f->kpos = aredis__calloc(nkeys, sizeof *f->kpos)) == NULL) {
        e = AREDIS_ENOMEM;
        goto done;
    }
    for (int i = 0; i < argc; i++)
        aredis__args_next(&it, &argv[i], &lens[i]);
    /* Groups in the order of their first key. */
    size_t ngroups = 0;
    f->nkeys = nkeys;
    for (size_t i = 0; i < nkeys; i++) {
        size_t a = 1 + i * (size_t)step;
        unsigned s = aredis_cluster_keyslot(argv[a], lens[a]);
        if (group[s] == 0)
            group[s] = (uint16_t)++ngroups;
        uint32_t g = group[s] - 1u;
        f->kpart[i] = g;
        f->kpos[i] = gsize[g]++;
    }
    f->parts = aredis__calloc(ngroups, sizeof *f->parts);
    if (f->parts == NULL) {
        e = AREDIS_ENOMEM;
        goto done;
    }
    f->nparts = f->left = ngroups;
    e = send_groups(f, argc, argv, lens, step);
    if (e == 0)
        f = NULL; /* its parts own it now */
done:
    if (f != NULL)
        fan_free(f);
    aredis__free(argv);
    aredis__free(lens);
    aredis__free(group);
    aredis__free(gsize);
    return e;
}

/* ---- the client's questions ---------------------------------------------- */

/* 1 when the keys of a command split by slot (MGET, MSET...: keys from
 * its first key on, every step arguments) are in several slots. */
static int spans_slots(const aredis__cmdinfo *info, const char *bytes)
{
    aredis__args it;
    int argc = aredis__args_init(&it, bytes);
    int first = (unsigned char)info->first_key;
    int step = info->key_step > 0 ? info->key_step : 1;
    const char *a = NULL;
    size_t n = 0;
    int s0 = -1;
    for (int i = 0; i < argc && aredis__args_next(&it, &a, &n); i++) {
        if (first <= 0 || i < first || (i - first) % step != 0)
            continue;
        int s = (int)aredis_cluster_keyslot(a, n);
        if (s0 < 0)
            s0 = s;
        else if (s != s0)
            return 1;
    }
    return 0;
}

static const char crossslot_refuse[] =
    "CROSSSLOT Keys in request don't hash to the same slot (refused before "
    "sending: cross_slot = refuse)";

static const char refused[] =
    "refused on a cluster client: what this command does depends on the "
    "node or the connection it reaches; send it to a node "
    "(aredis_node_command, aredis/cluster.h) or use the API made for it "
    "(scan.h, transaction.h)";

/* What a cluster client does with a classified command, beyond routing
 * it by its first key: 0 route it, 1 fan it out (fanout_start), 2 refuse
 * it (*why: the message). */
static int fanout_check(aredis_client *c, const aredis__cmdclass *k,
                        const char *bytes, const char **why)
{
    const aredis__cmdinfo *info = k->info;
    if (info == NULL)
        return 0;
    int policy = aredis__cmd_cluster(k->flags);
    if (policy == AREDIS__CL_REFUSE) {
        *why = refused;
        return 2;
    }
    if (policy >= AREDIS__CL_S_ARRAY) {
        aredis__args it;
        int argc = aredis__args_init(&it, bytes);
        int step = info->key_step > 1 ? info->key_step : 1;
        /* A malformed one (MSET k) goes as it is: the server says why. */
        if (argc < 2 || (argc - 1) % step != 0 || !spans_slots(info, bytes))
            return 0;
        if (aredis__config_more_of(&c->cfg)->cluster_cross_slot ==
            AREDIS_CROSS_SLOT_REFUSE) {
            *why = crossslot_refuse;
            return 2;
        }
        return 1;
    }
    return policy != AREDIS__CL_KEY;
}

/* Start a fan-out: 0 (cb runs exactly once, from the loop) or an error
 * (it never runs). bytes may be in the client's scratch buffer. */
static int fanout_start(aredis_client *c, const aredis_cmd_opts *o,
                        aredis_reply_cb cb, void *ud, const aredis__cmdclass *k,
                        const char *bytes, size_t len)
{
    int policy = aredis__cmd_cluster(k->flags);
    if (policy >= AREDIS__CL_S_ARRAY) {
        /* The parts are encoded into the client's scratch buffer, where
         * bytes may live: work from a copy. */
        char *copy = aredis__strndup(bytes, len);
        if (copy == NULL)
            return AREDIS_ENOMEM;
        int e = split(c, o, cb, ud, policy, k->info, copy);
        aredis__free(copy);
        return e;
    }
    int which =
        policy >= AREDIS__CL_N_UNIQ ? AREDIS_NODES_ALL : AREDIS_NODES_PRIMARIES;
    return fan_nodes(c, o, cb, ud, policy, which, bytes, len);
}

int aredis__cluster_submit(aredis_client *c, aredis__cmd *cmd,
                           const char *bytes, const aredis__cmdclass *k,
                           const aredis_cmd_opts *o)
{
    const char *why = NULL;
    int fan = fanout_check(c, k, bytes, &why);
    if (fan == 0)
        return 1;
    if (fan == 2) {
        aredis__defer_done(c, cmd,
                           aredis__cmd_cluster(k->flags) == AREDIS__CL_REFUSE
                               ? AREDIS_ENOTSUP
                               : AREDIS_EINVAL,
                           why);
        return 0;
    }
    /* The parts are commands of their own: this record goes. */
    size_t len = cmd->cc.len;
    aredis_reply_cb cb = cmd->cb;
    void *ud = cmd->ud;
    c->pending--;
    aredis__cmd_free(c, cmd);
    return fanout_start(c, o, cb, ud, k, bytes, len);
}

/* ---- public: nodes and exclusive connections by slot --------------------- */

int aredis_client_is_cluster(const aredis_client *c)
{
    return c != NULL && c->cfg.cluster;
}

static void copy_addr(aredis_node_addr *out, const aredis__node *n)
{
    snprintf(out->host, sizeof out->host, "%s", n->host != NULL ? n->host : "");
    out->port = n->port;
    out->primary = n->role != AREDIS__ROLE_REPLICA;
}

size_t aredis_client_nodes(aredis_client *c, int which, aredis_node_addr *out,
                           size_t max)
{
    if (c == NULL || c->topo == NULL)
        return 0;
    aredis__node *local[16], **v;
    size_t k = list_nodes(c, which, local, 16, &v);
    for (size_t i = 0; i < k && i < max; i++)
        copy_addr(&out[i], v[i]);
    if (v != local)
        aredis__free(v);
    return k;
}

int aredis_client_slot_primary(aredis_client *c, unsigned slot,
                               aredis_node_addr *out, unsigned *last)
{
    if (c == NULL || c->topo == NULL || out == NULL ||
        slot >= AREDIS_CLUSTER_SLOTS)
        return AREDIS_EINVAL;
    aredis__topology *t = c->topo;
    aredis__node *n = t->vt->slot_node(t, slot);
    if (last != NULL) {
        unsigned s = slot;
        while (s + 1 < AREDIS_CLUSTER_SLOTS && t->vt->slot_node(t, s + 1) == n)
            s++;
        *last = s;
    }
    if (n == NULL)
        return 0;
    copy_addr(out, n);
    return 1;
}

int aredis__nodes_submit(aredis_client *c, const aredis_cmd_opts *o, int which,
                         aredis_reply_cb cb, void *ud, const char *bytes,
                         size_t len)
{
    if (which < AREDIS_NODES_PRIMARIES || which > AREDIS_NODES_ALL)
        return AREDIS_EINVAL;
    return fan_nodes(c, o, cb, ud, AREDIS__CL_N_MAP, which, bytes, len);
}

int aredis_client_acquire_slot(aredis_client *c, unsigned slot,
                               aredis_acquire_cb cb, void *ud)
{
    if (c == NULL || cb == NULL || slot >= AREDIS_CLUSTER_SLOTS)
        return AREDIS_EINVAL;
    if (c->freeing || c->closing)
        return AREDIS_ESTATE;
    aredis__node *n = c->topo->vt->slot_node(c->topo, slot);
    if (n != NULL)
        return aredis__pool_acquire(n, cb, ud);
    aredis__fanout *f = fan_new(c, NULL, NULL, ud, FAN_ACQUIRE);
    if (f == NULL)
        return AREDIS_ENOMEM;
    f->slot = slot;
    f->acb = cb;
    int e = wait_map(f);
    if (e != 0)
        fan_free(f);
    return e;
}

int aredis_client_acquire_key(aredis_client *c, const void *key, size_t len,
                              aredis_acquire_cb cb, void *ud)
{
    if (key == NULL && len != 0)
        return AREDIS_EINVAL;
    return aredis_client_acquire_slot(c, aredis_cluster_keyslot(key, len), cb,
                                      ud);
}

/* ---- public: commands to a node, or to each ------------------------------ */

static aredis__node *node_by_addr(aredis_client *c, const char *host, int port)
{
    aredis__topology *t = c->topo;
    for (aredis__node *n = t->vt->next(t, NULL); n != NULL;
         n = t->vt->next(t, n))
        if (n->port == port &&
            strcmp(n->host != NULL ? n->host : "", host) == 0)
            return n;
    return NULL;
}

/* Encode (fmt and ap, or argv) and send to host:port, or to every node
 * of a kind (host NULL), with the caller's options o (may be NULL). */
static int to_nodes(aredis_client *c, const aredis_cmd_opts *o,
                    const char *host, int port, int which, aredis_reply_cb cb,
                    void *ud, const char *fmt, va_list *ap, int argc,
                    const char *const *argv, const size_t *argvlen)
{
    if (c == NULL)
        return AREDIS_EINVAL;
    if (c->freeing || c->closing)
        return AREDIS_ESTATE;
    aredis__node *n = NULL;
    if (host != NULL && (n = node_by_addr(c, host, port)) == NULL)
        return AREDIS_EINVAL;
    aredis_buf b;
    aredis_buf_init(&b);
    int e = fmt != NULL ? aredis_write_vfmt(&b, fmt, *ap)
                        : aredis_write_argv(&b, argc, argv, argvlen);
    if (e == 0)
        e = n != NULL
                ? aredis__submit_bytes(c, &n->main, o, cb, ud, b.data, b.len)
                : aredis__nodes_submit(c, o, which, cb, ud, b.data, b.len);
    aredis_buf_cleanup(&b);
    return e;
}

int aredis_node_command_opts(aredis_client *c, const aredis_cmd_opts *o,
                             const char *host, int port, aredis_reply_cb cb,
                             void *ud, const char *fmt, ...)
{
    if (host == NULL || fmt == NULL)
        return host == NULL ? AREDIS_EINVAL : AREDIS_EFORMAT;
    va_list ap;
    va_start(ap, fmt);
    int e = to_nodes(c, o, host, port, 0, cb, ud, fmt, &ap, 0, NULL, NULL);
    va_end(ap);
    return e;
}

int aredis_node_command(aredis_client *c, const char *host, int port,
                        aredis_reply_cb cb, void *ud, const char *fmt, ...)
{
    if (host == NULL || fmt == NULL)
        return host == NULL ? AREDIS_EINVAL : AREDIS_EFORMAT;
    va_list ap;
    va_start(ap, fmt);
    int e = to_nodes(c, NULL, host, port, 0, cb, ud, fmt, &ap, 0, NULL, NULL);
    va_end(ap);
    return e;
}

int aredis_node_commandv_opts(aredis_client *c, const aredis_cmd_opts *o,
                              const char *host, int port, aredis_reply_cb cb,
                              void *ud, int argc, const char *const *argv,
                              const size_t *argvlen)
{
    if (host == NULL)
        return AREDIS_EINVAL;
    return to_nodes(c, o, host, port, 0, cb, ud, NULL, NULL, argc, argv,
                    argvlen);
}

int aredis_node_commandv(aredis_client *c, const char *host, int port,
                         aredis_reply_cb cb, void *ud, int argc,
                         const char *const *argv, const size_t *argvlen)
{
    return aredis_node_commandv_opts(c, NULL, host, port, cb, ud, argc, argv,
                                     argvlen);
}

int aredis_nodes_command_opts(aredis_client *c, const aredis_cmd_opts *o,
                              int which, aredis_reply_cb cb, void *ud,
                              const char *fmt, ...)
{
    if (fmt == NULL)
        return AREDIS_EFORMAT;
    va_list ap;
    va_start(ap, fmt);
    int e = to_nodes(c, o, NULL, 0, which, cb, ud, fmt, &ap, 0, NULL, NULL);
    va_end(ap);
    return e;
}

int aredis_nodes_command(aredis_client *c, int which, aredis_reply_cb cb,
                         void *ud, const char *fmt, ...)
{
    if (fmt == NULL)
        return AREDIS_EFORMAT;
    va_list ap;
    va_start(ap, fmt);
    int e = to_nodes(c, NULL, NULL, 0, which, cb, ud, fmt, &ap, 0, NULL, NULL);
    va_end(ap);
    return e;
}

int aredis_nodes_commandv_opts(aredis_client *c, const aredis_cmd_opts *o,
                               int which, aredis_reply_cb cb, void *ud,
                               int argc, const char *const *argv,
                               const size_t *argvlen)
{
    return to_nodes(c, o, NULL, 0, which, cb, ud, NULL, NULL, argc, argv,
                    argvlen);
}

int aredis_nodes_commandv(aredis_client *c, int which, aredis_reply_cb cb,
                          void *ud, int argc, const char *const *argv,
                          const size_t *argvlen)
{
    return to_nodes(c, NULL, NULL, 0, which, cb, ud, NULL, NULL, argc, argv,
                    argvlen);
}
