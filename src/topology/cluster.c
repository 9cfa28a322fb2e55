/* The Redis Cluster topology (topology layer), first version: a slot
 * table over the cluster's primaries, filled from CLUSTER SLOTS, and MOVED
 * followed.
 *
 *  - Nodes: one aredis__node per primary address met (the seeds, the
 *    map's primaries, MOVED targets), kept for the client's life.
 *  - Map: CLUSTER SLOTS is asked of the first seed that answers, from
 *    the loop right after the client is created. Until it arrives, a
 *    command whose slot has no known owner goes to the first seed, whose
 *    MOVED teaches the owner (so the first commands never fail for want
 *    of a map).
 *  - Routing: the command's first key (the command table's key positions,
 *    the key-count argument of EVAL and the like, the STREAMS argument of
 *    XREAD) gives the slot; slot -> node is one array read. A command
 *    naming no key goes to the first seed.
 *  - MOVED: the slot is patched to the new owner at once and the command
 *    is sent there again, its bytes being kept for that; after
 *    MAX_REDIRECTS redirects it fails with an error naming the last one.
 *    A malformed redirect fails the command with the parser's reason.
 *    ASK: ASKING then the command, on the target's connection, once; the
 *    map is not patched.
 *
 * Not yet here (see the issue): periodic and MOVED-triggered refreshes,
 * replicas, TRYAGAIN/CLUSTERDOWN backoff, fan-out, node removal. */
#include <stdio.h>
#include <string.h>

#include "aredis/cluster.h"
#include "aredis/error.h"
#include "loop/loop.h"
#include "topology/slotmap.h"
#include "topology/topology.h"
#include "transport/transport.h"
#include "util/alloc.h"
#include "util/cmdtable.h"

/* Redirects one command may follow before it fails. */
#define MAX_REDIRECTS 5

typedef struct cnode {
    aredis__node node;
    struct cnode *next;
} cnode;

typedef struct cluster {
    aredis__topology base;
    cnode *nodes; /* the first seed first */
    /* The primary serving each slot, or NULL when unknown. */
    aredis__node *owner[AREDIS_CLUSTER_SLOTS];
    aredis__defer fetch; /* asks for the map from the loop */
    size_t fetch_seed;   /* the seed asked last */
    int fetching;
} cluster;

static cluster *of(aredis__topology *t)
{
    return (cluster *)t;
}

/* The node for host:port, created when new; NULL when out of memory. */
static aredis__node *node_at(cluster *cl, const char *host, int port)
{
    for (cnode *n = cl->nodes; n != NULL; n = n->next)
        if (n->node.port == port && strcmp(n->node.host, host) == 0)
            return &n->node;
    cnode *n = aredis__calloc(1, sizeof *n);
    if (n == NULL)
        return NULL;
    if (aredis__node_init(&n->node, cl->base.c, host, port) != 0) {
        aredis__free(n);
        return NULL;
    }
    n->node.role = AREDIS__ROLE_MASTER;
    /* Appended: the first seed stays first. */
    cnode **tail = &cl->nodes;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = n;
    return &n->node;
}

/* ---- keys ------------------------------------------------------------- */

/* The slot of an encoded command's first key, or -1 when it names none. */
static int command_slot(const char *bytes)
{
    aredis__cmdclass cls;
    int argc = aredis__cmd_classify(bytes, &cls);
    const aredis__cmdinfo *info = cls.info;
    if (info == NULL)
        return -1;
    /* Positive int8_t positions, read without sign extension. */
    int want = info->first_key > 0 ? (unsigned char)info->first_key : 0;
    int numkeys = info->numkeys > 0 ? (unsigned char)info->numkeys : 0;
    aredis__args it;
    const char *arg = NULL;
    size_t len = 0;
    aredis__args_init(&it, bytes);
    if (numkeys > 0) {
        /* EVAL script numkeys key...: the first key follows the count. */
        for (int i = 0; i <= numkeys; i++)
            if (!aredis__args_next(&it, &arg, &len))
                return -1;
        if (len == 0 || (len == 1 && arg[0] == '0'))
            return -1;
        if (!aredis__args_next(&it, &arg, &len))
            return -1;
        return (int)aredis_cluster_keyslot(arg, len);
    }
    if ((info->flags & AREDIS__CMDF_MOVABLE) &&
        (aredis__word_is(info->name, info->len, "xread", 5) ||
         aredis__word_is(info->name, info->len, "xreadgroup", 10))) {
        /* XREAD ... STREAMS key... id...: the first key follows STREAMS. */
        while (aredis__args_next(&it, &arg, &len))
            if (aredis__word_is(arg, len, "streams", 7))
                return aredis__args_next(&it, &arg, &len)
                           ? (int)aredis_cluster_keyslot(arg, len)
                           : -1;
        return -1;
    }
    if (want <= 0 || want >= argc)
        return -1;
    for (int i = 0; i <= want; i++)
        if (!aredis__args_next(&it, &arg, &len))
            return -1;
    return (int)aredis_cluster_keyslot(arg, len);
}

/* ---- the map ------------------------------------------------------------ */

static void fetch_map(void *arg);

/* Apply a new map: every slot to its primary's node. */
static void apply_map(cluster *cl, const aredis__slotmap *m)
{
    aredis__node *by_shard[256];
    size_t n = m->nshards < 256 ? m->nshards : 256;
    for (size_t i = 0; i < n; i++) {
        const aredis__slotnode *p = &m->nodes[m->shards[i].primary];
        by_shard[i] = node_at(cl, p->host, p->port);
    }
    for (size_t s = 0; s < AREDIS_CLUSTER_SLOTS; s++) {
        unsigned sh = m->slot[s];
        if (sh != AREDIS__SLOT_NONE && sh < n && by_shard[sh] != NULL)
            cl->owner[s] = by_shard[sh];
    }
}

static void on_slots(aredis_client *c, const aredis_reply *r, void *ud)
{
    if (c->freeing)
        return; /* the topology is going away with the client */
    cluster *cl = ud;
    cl->fetching = 0;
    const aredis__endpoint *seed = &c->cfg.seeds[cl->fetch_seed];
    aredis__slotmap *m = NULL;
    char err[160];
    if (r->type != AREDIS_REPLY_ERROR &&
        aredis__slotmap_from_slots(&m, r, seed->host, err, sizeof err) == 0) {
        apply_map(cl, m);
        aredis__slotmap_free(m);
        return;
    }
    /* This seed could not say: ask the next one, once around. */
    if (cl->fetch_seed + 1 < c->cfg.nseeds) {
        cl->fetch_seed++;
        aredis__loop_defer(c->loop, &cl->fetch, fetch_map, cl);
    }
}

static void fetch_map(void *arg)
{
    cluster *cl = arg;
    aredis_client *c = cl->base.c;
    if (c->freeing || c->closing || cl->fetching)
        return;
    const aredis__endpoint *seed = &c->cfg.seeds[cl->fetch_seed];
    aredis__node *n = node_at(cl, seed->host, seed->port);
    if (n == NULL)
        return;
    static const char slots[] = "*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n";
    if (aredis__submit_encoded(c, &n->main, on_slots, cl, slots,
                               sizeof slots - 1) == 0)
        cl->fetching = 1;
}

/* ---- the table ---------------------------------------------------------- */

static aredis__node *cl_any(aredis__topology *t)
{
    return &of(t)->nodes->node;
}

static aredis__node *cl_route(aredis__topology *t, const aredis__cmd *cmd,
                              const char *bytes)
{
    (void)cmd;
    int slot = command_slot(bytes);
    if (slot >= 0 && of(t)->owner[slot] != NULL)
        return of(t)->owner[slot];
    return cl_any(t);
}

static aredis__node *cl_sole(aredis__topology *t)
{
    (void)t;
    return NULL; /* never one server: no encoding into a connection */
}

static aredis__node *cl_next(aredis__topology *t, const aredis__node *prev)
{
    if (prev == NULL)
        return cl_any(t);
    cnode *n = ((cnode *)(void *)prev)->next;
    return n != NULL ? &n->node : NULL;
}

/* Send a redirected command to node n: blocking commands through its
 * pool, the others on its shared connection. */
static int resend(aredis__node *n, aredis__cmd *cmd)
{
    if (cmd->flags & AREDIS__CMD_BLOCKING) {
        aredis__pool_route(n, cmd, cmd->cc.copy);
        return 0;
    }
    return aredis__link_submit(&n->main, cmd, cmd->cc.copy);
}

static int cl_redirect(aredis__topology *t, aredis__cmd *cmd,
                       const aredis_reply *r)
{
    cluster *cl = of(t);
    aredis_client *c = t->c;
    aredis__redirect rd;
    char err[200];
    /* A command on a connection its caller chose (inside a transaction on
     * a borrowed connection, say) keeps its redirect: sending it to
     * another node would silently take it out of its context. */
    if (cmd->flags & AREDIS__CMD_PINNED)
        return 0;
    int rc = aredis__redirect_parse(r->str, r->len, &rd, err, sizeof err);
    if (rc == 0)
        return 0; /* another error: the caller's */
    if (rc < 0 || cmd->cc.copy == NULL) {
        aredis__finish_error(c, cmd, AREDIS_EPROTO,
                             rc < 0 ? err
                                    : "redirected, but the command's bytes "
                                      "were not kept");
        aredis__cmd_free(c, cmd);
        return 1;
    }
    if (++cmd->redirects > MAX_REDIRECTS) {
        snprintf(err, sizeof err, "too many cluster redirects (%d), last: %.*s",
                 MAX_REDIRECTS, (int)(r->len > 120 ? 120 : r->len), r->str);
        aredis__finish_error(c, cmd, AREDIS_EPROTO, err);
        aredis__cmd_free(c, cmd);
        return 1;
    }
    /* An unknown endpoint is the host that answered: the node whose
     * connection carried the reply is not known here, so the first seed's
     * host stands in (clusters with unknown endpoints sit behind one
     * address). */
    const char *host = rd.host[0] != '\0' ? rd.host : c->cfg.seeds[0].host;
    aredis__node *n = node_at(cl, host, rd.port);
    int e = n == NULL ? AREDIS_ENOMEM : 0;
    if (e == 0 && rd.kind == AREDIS__REDIRECT_MOVED)
        cl->owner[rd.slot] = n;
    if (e == 0 && rd.kind == AREDIS__REDIRECT_ASK &&
        !(cmd->flags & AREDIS__CMD_BLOCKING)) {
        /* ASKING, then the command, back to back on one connection. */
        static const char asking[] = "*1\r\n$6\r\nASKING\r\n";
        e = aredis__submit_encoded(c, &n->main, NULL, NULL, asking,
                                   sizeof asking - 1);
    }
    if (e == 0)
        e = resend(n, cmd);
    if (e != 0) {
        aredis__finish_error(c, cmd, e, "out of memory following a redirect");
        aredis__cmd_free(c, cmd);
    }
    return 1;
}

static void cl_node_lost(aredis__topology *t, aredis__node *n, int code)
{
    /* The node reconnects by itself; a later version refreshes the map. */
    (void)t;
    (void)n;
    (void)code;
}

static void cl_free(aredis__topology *t)
{
    cluster *cl = of(t);
    aredis__loop_undefer(t->c->loop, &cl->fetch);
    cnode *n = cl->nodes;
    while (n != NULL) {
        cnode *next = n->next;
        aredis__node_cleanup(&n->node);
        aredis__free(n);
        n = next;
    }
    aredis__free(cl);
}

/* ---- queries for fan-out and the node API ----------------------------------
 * Read-only views of the map for client/fanout.c and the public node API
 * (aredis/cluster.h): they keep no pointer. */

/* out[0..max) gets n unless it is there already; the new count. */
static size_t add_unique(aredis__node **out, size_t k, size_t max,
                         aredis__node *n)
{
    for (size_t i = 0; i < k && i < max; i++)
        if (out[i] == n)
            return k;
    if (k < max)
        out[k] = n;
    return k + 1;
}

static size_t cl_nodes(aredis__topology *t, int which, aredis__node **out,
                       size_t max)
{
    cluster *cl = of(t);
    size_t k = 0;
    if (which & AREDIS_NODES_PRIMARIES) {
        /* The primaries are the slots' owners: ranges are long, so the
         * owner changes rarely from one slot to the next. */
        aredis__node *last = NULL;
        for (size_t s = 0; s < AREDIS_CLUSTER_SLOTS; s++) {
            aredis__node *n = cl->owner[s];
            if (n != NULL && n != last) {
                k = add_unique(out, k, max, n);
                last = n;
            }
        }
    }
    if (which & AREDIS_NODES_REPLICAS)
        for (cnode *n = cl->nodes; n != NULL; n = n->next)
            if (n->node.role == AREDIS__ROLE_REPLICA)
                k = add_unique(out, k, max, &n->node);
    return k;
}

static aredis__node *cl_slot_node(aredis__topology *t, unsigned slot)
{
    return slot < AREDIS_CLUSTER_SLOTS ? of(t)->owner[slot] : NULL;
}

static const aredis__topology_vt cluster_vt = {
    .name = "cluster",
    .route = cl_route,
    .any = cl_any,
    .sole = cl_sole,
    .next = cl_next,
    .redirect = cl_redirect,
    .node_lost = cl_node_lost,
    .free = cl_free,
    .nodes = cl_nodes,
    .slot_node = cl_slot_node,
};

aredis__topology *aredis__cluster_new(aredis_client *c)
{
    if (c->cfg.nseeds == 0)
        return NULL;
    cluster *cl = aredis__calloc(1, sizeof *cl);
    if (cl == NULL)
        return NULL;
    cl->base.vt = &cluster_vt;
    cl->base.c = c;
    cl->base.keep_bytes = 1;
    for (size_t i = 0; i < c->cfg.nseeds; i++) {
        if (node_at(cl, c->cfg.seeds[i].host, c->cfg.seeds[i].port) == NULL) {
            cl_free(&cl->base);
            return NULL;
        }
    }
    aredis__loop_defer(c->loop, &cl->fetch, fetch_map, cl);
    return &cl->base;
}
