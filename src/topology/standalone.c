/* The standalone topology (topology layer): one server, every command to
 * it. The first implementation of topology.h; cluster and sentinel are
 * the next. */
#include "topology/topology.h"

#include "aredis/cluster.h"
#include "aredis/error.h"
#include "util/alloc.h"

typedef struct standalone {
    aredis__topology base;
    aredis__node node;
} standalone;

static aredis__node *sa_any(aredis__topology *t)
{
    return &((standalone *)t)->node;
}

static aredis__node *sa_route(aredis__topology *t, const aredis__cmd *cmd,
                              const char *bytes, const aredis__cmdclass *cls)
{
    (void)cmd;
    (void)bytes;
    (void)cls;
    return sa_any(t);
}

static aredis__node *sa_next(aredis__topology *t, const aredis__node *prev)
{
    return prev == NULL ? sa_any(t) : NULL;
}

static int sa_redirect(aredis__topology *t, aredis__cmd *cmd,
                       aredis__node *from, const char *bytes,
                       const aredis_reply *r)
{
    /* A standalone server does not redirect: a MOVED from one is an
     * error like any other, for the caller. */
    (void)t;
    (void)cmd;
    (void)from;
    (void)bytes;
    (void)r;
    return 0;
}

static void sa_node_lost(aredis__topology *t, aredis__node *n, int code)
{
    /* The node reconnects by itself; there is nowhere else to go. */
    (void)t;
    (void)n;
    (void)code;
}

static void sa_free(aredis__topology *t)
{
    aredis__node_cleanup(sa_any(t));
    aredis__free(t);
}

static const aredis__topology_vt standalone_vt = {
    .name = "standalone",
    .route = sa_route,
    .any = sa_any,
    .next = sa_next,
    .redirect = sa_redirect,
    .node_lost = sa_node_lost,
    .free = sa_free,
    .nodes = aredis__one_node_nodes,
    .slot_node = aredis__one_node_slot,
};

/* ---- queries for fan-out and the node API --------------------------------
 * Shared with sentinel.c: the one node is every node, primary of every
 * slot. */

size_t aredis__one_node_nodes(aredis__topology *t, int which,
                              aredis__node **out, size_t max)
{
    aredis__node *n = t->vt->any(t);
    if (n == NULL || (which & AREDIS_NODES_PRIMARIES) == 0)
        return 0;
    if (max > 0)
        out[0] = n;
    return 1;
}

aredis__node *aredis__one_node_slot(aredis__topology *t, unsigned slot)
{
    (void)slot;
    return t->vt->any(t);
}

aredis__topology *aredis__standalone_new(aredis_client *c)
{
    standalone *s = aredis__calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->base.vt = &standalone_vt;
    s->base.c = c;
    if (aredis__node_init(&s->node, c, c->cfg.host, c->cfg.port) != 0) {
        aredis__free(s);
        return NULL;
    }
    s->node.role = AREDIS__ROLE_MASTER;
    s->base.sole = &s->node;
    return &s->base;
}
