/* Slot maps from CLUSTER SHARDS / SLOTS / NODES replies, and the MOVED/ASK
 * redirect parser (see slotmap.h). Every reply is untrusted: each element
 * is type-checked, every number range-checked, every host length-checked,
 * and a slot claimed twice is an error, so a hostile or corrupted reply
 * gives a clear error and never a half-built map. */
#include "topology/slotmap.h"

#include <stdio.h>
#include <string.h>

#include "aredis/error.h"
#include "util/alloc.h"
#include "util/msg.h"

#define HOST_MAX AREDIS__REDIRECT_HOST_MAX

/* Say why in err and give AREDIS_EPROTO (a constant, also for static
 * analysis, which does not follow variadic calls). */
#define fail(...) (aredis__msgf(__VA_ARGS__), AREDIS_EPROTO)

static int oom(char *err, size_t errcap)
{
    if (err != NULL && errcap > 0)
        snprintf(err, errcap, "out of memory building the slot map");
    return AREDIS_ENOMEM;
}

/* ---- reply helpers -------------------------------------------------------
 */

static int is_text(const aredis_reply *r)
{
    return r->type == AREDIS_REPLY_STRING || r->type == AREDIS_REPLY_STATUS ||
           r->type == AREDIS_REPLY_VERB;
}

static int is_list(const aredis_reply *r)
{
    return r->type == AREDIS_REPLY_ARRAY || r->type == AREDIS_REPLY_SET;
}

/* A RESP3 map, or its RESP2 form: an array of key, value, key, value. */
static int is_pairs(const aredis_reply *r)
{
    return (r->type == AREDIS_REPLY_MAP || r->type == AREDIS_REPLY_ARRAY) &&
           r->len % 2 == 0;
}

static int text_eq(const aredis_reply *r, const char *s)
{
    size_t n = strlen(s);
    return is_text(r) && r->len == n && memcmp(r->str, s, n) == 0;
}

/* The value of key in a map (or pair array), or NULL. */
static const aredis_reply *pair_get(const aredis_reply *m, const char *key)
{
    for (size_t i = 0; i + 1 < m->len; i += 2)
        if (text_eq(&m->element[i], key))
            return &m->element[i + 1];
    return NULL;
}

/* An integer in [lo, hi], as an INTEGER or as decimal text. */
static int get_int(const aredis_reply *r, long long lo, long long hi,
                   long long *v)
{
    long long x = 0;
    if (r->type == AREDIS_REPLY_INTEGER) {
        x = r->integer;
    } else if (is_text(r) && r->len > 0 && r->len <= 18) {
        for (size_t i = 0; i < r->len; i++) {
            if (r->str[i] < '0' || r->str[i] > '9')
                return -1;
            x = x * 10 + (r->str[i] - '0');
        }
    } else {
        return -1;
    }
    if (x < lo || x > hi)
        return -1;
    *v = x;
    return 0;
}

/* ---- the builder ---------------------------------------------------------
 */

typedef struct pair {
    unsigned shard, node;
} pair;

typedef struct builder {
    aredis__slotmap *m;
    size_t capnodes, capshards;
    pair *reps; /* replica -> shard, grouped at the end */
    size_t nreps, capreps;
    const char *answered;
    size_t answered_len;
    char *err;
    size_t errcap;
} builder;

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap * 2 : 8;
    while (n < need)
        n *= 2;
    void *q = aredis__reallocarray(*p, n, size);
    if (q == NULL)
        return -1;
    *p = q;
    *cap = n;
    return 0;
}

static int valid_host(const char *h, size_t n)
{
    if (n == 0 || n > HOST_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)h[i] <= ' ' || (unsigned char)h[i] == 0x7f)
            return 0;
    return 1;
}

static int valid_id(const char *s, size_t n)
{
    if (n > 40)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
              (s[i] >= 'A' && s[i] <= 'F')))
            return 0;
    return 1;
}

/* Add (or find) the node host:port. host NULL, "" or "?" means the host
 * that answered. Returns its index, or a negative aredis_err. */
static long add_node(builder *b, const char *host, size_t hostlen, int port,
                     int tls_port, const char *id, size_t idlen, int primary,
                     int healthy)
{
    aredis__slotmap *m = b->m;
    if (host == NULL || hostlen == 0 || (hostlen == 1 && host[0] == '?')) {
        host = b->answered;
        hostlen = b->answered_len;
    }
    if (!valid_host(host, hostlen))
        return fail(b->err, b->errcap, "bad host '%.*s' in the slot map",
                    (int)(hostlen > 64 ? 64 : hostlen), host);
    if (port <= 0 && tls_port <= 0)
        return fail(b->err, b->errcap, "node %.*s has no port", (int)hostlen,
                    host);
    if (id != NULL && !valid_id(id, idlen))
        return fail(b->err, b->errcap, "bad node id '%.*s'",
                    (int)(idlen > 48 ? 48 : idlen), id);
    for (size_t i = 0; i < m->nnodes; i++) {
        aredis__slotnode *n = &m->nodes[i];
        if (n->port == port && n->tls_port == tls_port &&
            strlen(n->host) == hostlen && memcmp(n->host, host, hostlen) == 0) {
            if (primary)
                n->primary = 1;
            if (!healthy)
                n->healthy = 0;
            return (long)i;
        }
    }
    if (grow((void **)&m->nodes, &b->capnodes, m->nnodes + 1,
             sizeof *m->nodes) != 0)
        return oom(b->err, b->errcap);
    char *h = aredis__malloc(hostlen + 1);
    if (h == NULL)
        return oom(b->err, b->errcap);
    memcpy(h, host, hostlen);
    h[hostlen] = '\0';
    aredis__slotnode *n = &m->nodes[m->nnodes];
    memset(n, 0, sizeof *n);
    n->host = h;
    n->port = port;
    n->tls_port = tls_port;
    if (id != NULL) {
        memcpy(n->id, id, idlen);
        n->id[idlen] = '\0';
    }
    n->primary = (unsigned char)(primary != 0);
    n->healthy = (unsigned char)(healthy != 0);
    return (long)m->nnodes++;
}

/* The shard whose primary is node, created when new. */
static long add_shard(builder *b, unsigned node)
{
    aredis__slotmap *m = b->m;
    for (size_t i = 0; i < m->nshards; i++)
        if (m->shards[i].primary == node)
            return (long)i;
    if (m->nshards >= AREDIS__SLOT_NONE)
        return fail(b->err, b->errcap, "too many shards");
    if (grow((void **)&m->shards, &b->capshards, m->nshards + 1,
             sizeof *m->shards) != 0)
        return oom(b->err, b->errcap);
    m->shards[m->nshards] = (aredis__slotshard){.primary = node};
    m->nodes[node].primary = 1;
    return (long)m->nshards++;
}

static int add_replica(builder *b, unsigned shard, unsigned node)
{
    if (b->m->shards[shard].primary == node)
        return 0;
    for (size_t i = 0; i < b->nreps; i++)
        if (b->reps[i].shard == shard && b->reps[i].node == node)
            return 0;
    if (grow((void **)&b->reps, &b->capreps, b->nreps + 1, sizeof *b->reps) !=
        0)
        return oom(b->err, b->errcap);
    b->reps[b->nreps++] = (pair){shard, node};
    return 0;
}

static int assign(builder *b, long long lo, long long hi, unsigned shard)
{
    if (lo < 0 || hi >= AREDIS_CLUSTER_SLOTS || lo > hi)
        return fail(b->err, b->errcap, "bad slot range %lld-%lld", lo, hi);
    for (long long s = lo; s <= hi; s++) {
        if (b->m->slot[s] != AREDIS__SLOT_NONE)
            return fail(b->err, b->errcap, "slot %lld is served twice", s);
        b->m->slot[s] = (uint16_t)shard;
    }
    b->m->covered += (size_t)(hi - lo + 1);
    return 0;
}

static int begin(builder *b, aredis__slotmap **out, const char *answered,
                 char *err, size_t errcap)
{
    memset(b, 0, sizeof *b);
    *out = NULL;
    b->err = err;
    b->errcap = errcap;
    if (err != NULL && errcap > 0)
        err[0] = '\0';
    if (answered == NULL || !valid_host(answered, strlen(answered)))
        return fail(err, errcap, "no valid host for the node that answered");
    b->answered = answered;
    b->answered_len = strlen(answered);
    b->m = aredis__calloc(1, sizeof *b->m);
    if (b->m == NULL)
        return oom(err, errcap);
    for (size_t i = 0; i < AREDIS_CLUSTER_SLOTS; i++)
        b->m->slot[i] = AREDIS__SLOT_NONE;
    return 0;
}

/* Group the replicas per shard and hand the map over (rc 0), or free it
 * all (rc < 0). */
static int finish(builder *b, int rc, aredis__slotmap **out)
{
    aredis__slotmap *m = b->m;
    if (rc == 0 && m != NULL && m->nshards == 0)
        rc = fail(b->err, b->errcap,
                  "the reply names no primary serving "
                  "any slot");
    if (rc == 0 && m != NULL && b->nreps > 0) {
        m->replicas = aredis__reallocarray(NULL, b->nreps, sizeof *m->replicas);
        if (m->replicas == NULL) {
            rc = oom(b->err, b->errcap);
        } else {
            for (size_t s = 0; s < m->nshards; s++) {
                m->shards[s].first_replica = (unsigned)m->nreplicas;
                for (size_t i = 0; i < b->nreps; i++)
                    if (b->reps[i].shard == s)
                        m->replicas[m->nreplicas++] = b->reps[i].node;
                m->shards[s].nreplicas =
                    (unsigned)m->nreplicas - m->shards[s].first_replica;
            }
        }
    }
    aredis__free(b->reps);
    if (rc != 0) {
        aredis__slotmap_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void aredis__slotmap_free(aredis__slotmap *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nnodes; i++)
        aredis__free(m->nodes[i].host);
    aredis__free(m->nodes);
    aredis__free(m->shards);
    aredis__free(m->replicas);
    aredis__free(m);
}

const aredis__slotshard *aredis__slotmap_shard(const aredis__slotmap *m,
                                               unsigned slot)
{
    if (m == NULL || slot >= AREDIS_CLUSTER_SLOTS ||
        m->slot[slot] == AREDIS__SLOT_NONE)
        return NULL;
    return &m->shards[m->slot[slot]];
}

const aredis__slotnode *aredis__slotmap_primary(const aredis__slotmap *m,
                                                unsigned slot)
{
    const aredis__slotshard *s = aredis__slotmap_shard(m, slot);
    return s == NULL ? NULL : &m->nodes[s->primary];
}

/* ---- CLUSTER SHARDS ------------------------------------------------------
 */

/* One node of a shard: its index, or a negative aredis_err. *primary is
 * set when its role is master. */
static long shard_node(builder *b, const aredis_reply *d, int *primary)
{
    if (!is_pairs(d))
        return fail(b->err, b->errcap, "CLUSTER SHARDS: a node is not a map");
    const aredis_reply *id = pair_get(d, "id");
    const aredis_reply *ep = pair_get(d, "endpoint");
    const aredis_reply *ip = pair_get(d, "ip");
    const aredis_reply *port = pair_get(d, "port");
    const aredis_reply *tls = pair_get(d, "tls-port");
    const aredis_reply *role = pair_get(d, "role");
    const aredis_reply *health = pair_get(d, "health");
    long long p = 0, tp = 0;
    if (port != NULL && get_int(port, 0, 65535, &p) != 0)
        return fail(b->err, b->errcap, "CLUSTER SHARDS: bad port");
    if (tls != NULL && get_int(tls, 0, 65535, &tp) != 0)
        return fail(b->err, b->errcap, "CLUSTER SHARDS: bad tls-port");
    if (role == NULL || !(text_eq(role, "master") || text_eq(role, "replica")))
        return fail(b->err, b->errcap, "CLUSTER SHARDS: a node has no role");
    /* The preferred endpoint; the ip when the server gave none. */
    const aredis_reply *host = ep != NULL ? ep : ip;
    if (host != NULL && host->type != AREDIS_REPLY_NIL && !is_text(host))
        return fail(b->err, b->errcap, "CLUSTER SHARDS: bad endpoint");
    if (id != NULL && !is_text(id))
        return fail(b->err, b->errcap, "CLUSTER SHARDS: bad node id");
    *primary = text_eq(role, "master");
    int healthy = health == NULL || text_eq(health, "online");
    int has_host = host != NULL && is_text(host);
    return add_node(b, has_host ? host->str : NULL, has_host ? host->len : 0,
                    (int)p, (int)tp, id != NULL ? id->str : NULL,
                    id != NULL ? id->len : 0, 0, healthy);
}

int aredis__slotmap_from_shards(aredis__slotmap **out, const aredis_reply *r,
                                const char *answered_host, char *err,
                                size_t errcap)
{
    builder b;
    int rc = begin(&b, out, answered_host, err, errcap);
    if (rc != 0)
        return rc;
    if (r == NULL || !is_list(r))
        rc = fail(err, errcap, "CLUSTER SHARDS: the reply is not an array");
    for (size_t i = 0; rc == 0 && r != NULL && i < r->len; i++) {
        const aredis_reply *sh = &r->element[i];
        if (!is_pairs(sh)) {
            rc = fail(err, errcap, "CLUSTER SHARDS: shard %zu is not a map", i);
            break;
        }
        const aredis_reply *slots = pair_get(sh, "slots");
        const aredis_reply *nodes = pair_get(sh, "nodes");
        if (slots == NULL || !is_list(slots) || slots->len % 2 != 0 ||
            nodes == NULL || !is_list(nodes)) {
            rc = fail(err, errcap,
                      "CLUSTER SHARDS: shard %zu lacks slots or nodes", i);
            break;
        }
        /* The nodes: primary first, so that its replicas have a shard.
         * When several claim to be master (a stale view during a
         * failover), a healthy one wins. */
        long prim = -1;
        int prim_healthy = 0;
        long idx[64];
        int role[64];
        size_t n = nodes->len;
        if (n > 64) {
            rc = fail(err, errcap, "CLUSTER SHARDS: shard %zu lists %zu nodes",
                      i, n);
            break;
        }
        for (size_t k = 0; rc == 0 && k < n; k++) {
            long x = shard_node(&b, &nodes->element[k], &role[k]);
            if (x < 0) {
                rc = (int)x;
                break;
            }
            idx[k] = x;
            if (role[k] &&
                (prim < 0 || (!prim_healthy && b.m->nodes[x].healthy))) {
                prim = x;
                prim_healthy = b.m->nodes[x].healthy;
            }
        }
        if (rc != 0)
            break;
        if (slots->len == 0)
            continue; /* a shard serving nothing: only its nodes are kept */
        if (prim < 0) {
            rc = fail(err, errcap,
                      "CLUSTER SHARDS: shard %zu serves slots but has no "
                      "primary",
                      i);
            break;
        }
        long s = add_shard(&b, (unsigned)prim);
        if (s < 0) {
            rc = (int)s;
            break;
        }
        for (size_t k = 0; rc == 0 && k < n; k++)
            if (idx[k] != prim)
                rc = add_replica(&b, (unsigned)s, (unsigned)idx[k]);
        for (size_t k = 0; rc == 0 && k < slots->len; k += 2) {
            long long lo, hi;
            if (get_int(&slots->element[k], 0, AREDIS_CLUSTER_SLOTS - 1, &lo) !=
                    0 ||
                get_int(&slots->element[k + 1], 0, AREDIS_CLUSTER_SLOTS - 1,
                        &hi) != 0)
                rc = fail(err, errcap, "CLUSTER SHARDS: bad slot number");
            else
                rc = assign(&b, lo, hi, (unsigned)s);
        }
    }
    return finish(&b, rc, out);
}

/* ---- CLUSTER SLOTS -------------------------------------------------------
 */

/* [host, port, id?, metadata?]: the node's index or a negative error. */
static long slots_node(builder *b, const aredis_reply *d)
{
    long long port;
    if (!is_list(d) || d->len < 2)
        return fail(b->err, b->errcap,
                    "CLUSTER SLOTS: a node is not "
                    "[host, port, ...]");
    const aredis_reply *host = &d->element[0];
    if (host->type != AREDIS_REPLY_NIL && !is_text(host))
        return fail(b->err, b->errcap, "CLUSTER SLOTS: bad host");
    if (get_int(&d->element[1], 1, 65535, &port) != 0)
        return fail(b->err, b->errcap, "CLUSTER SLOTS: bad port");
    const aredis_reply *id = d->len > 2 ? &d->element[2] : NULL;
    if (id != NULL && !is_text(id))
        return fail(b->err, b->errcap, "CLUSTER SLOTS: bad node id");
    int has_host = is_text(host);
    return add_node(b, has_host ? host->str : NULL, has_host ? host->len : 0,
                    (int)port, 0, id != NULL ? id->str : NULL,
                    id != NULL ? id->len : 0, 0, 1);
}

int aredis__slotmap_from_slots(aredis__slotmap **out, const aredis_reply *r,
                               const char *answered_host, char *err,
                               size_t errcap)
{
    builder b;
    int rc = begin(&b, out, answered_host, err, errcap);
    if (rc != 0)
        return rc;
    if (r == NULL || !is_list(r))
        rc = fail(err, errcap, "CLUSTER SLOTS: the reply is not an array");
    for (size_t i = 0; rc == 0 && r != NULL && i < r->len; i++) {
        const aredis_reply *e = &r->element[i];
        long long lo, hi;
        if (!is_list(e) || e->len < 3) {
            rc = fail(err, errcap,
                      "CLUSTER SLOTS: entry %zu is not [start, end, primary, "
                      "...]",
                      i);
            break;
        }
        if (get_int(&e->element[0], 0, AREDIS_CLUSTER_SLOTS - 1, &lo) != 0 ||
            get_int(&e->element[1], 0, AREDIS_CLUSTER_SLOTS - 1, &hi) != 0) {
            rc = fail(err, errcap, "CLUSTER SLOTS: entry %zu: bad slot number",
                      i);
            break;
        }
        long prim = slots_node(&b, &e->element[2]);
        if (prim < 0) {
            rc = (int)prim;
            break;
        }
        long s = add_shard(&b, (unsigned)prim);
        if (s < 0) {
            rc = (int)s;
            break;
        }
        for (size_t k = 3; rc == 0 && k < e->len; k++) {
            long x = slots_node(&b, &e->element[k]);
            rc = x < 0 ? (int)x : add_replica(&b, (unsigned)s, (unsigned)x);
        }
        if (rc == 0)
            rc = assign(&b, lo, hi, (unsigned)s);
    }
    return finish(&b, rc, out);
}

/* ---- CLUSTER NODES -------------------------------------------------------
 */

typedef struct span {
    const char *p;
    size_t n;
} span;

static int span_eq(span s, const char *lit)
{
    return s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0;
}

/* Whether the comma-separated flags hold flag. */
static int has_flag(span flags, const char *flag)
{
    const char *p = flags.p, *end = flags.p + flags.n;
    while (p < end) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        const char *e = c != NULL ? c : end;
        if (span_eq((span){p, (size_t)(e - p)}, flag))
            return 1;
        p = e + 1;
    }
    return 0;
}

static int parse_uint(span s, long long max, long long *v)
{
    long long x = 0;
    if (s.n == 0 || s.n > 18)
        return -1;
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return -1;
        x = x * 10 + (s.p[i] - '0');
    }
    if (x > max)
        return -1;
    *v = x;
    return 0;
}

#define NODES_FIELDS 8

typedef struct nodes_line {
    span f[NODES_FIELDS]; /* id addr flags master ping pong epoch link */
    const char *slots;    /* the rest of the line, slots */
    const char *end;
    long node; /* index once added, -1 when skipped */
} nodes_line;

/* Split a line into its fixed fields; -1 when there are too few. */
static int split_line(const char *p, const char *end, nodes_line *l)
{
    for (int i = 0; i < NODES_FIELDS; i++) {
        while (p < end && *p == ' ')
            p++;
        const char *s = p;
        while (p < end && *p != ' ')
            p++;
        if (p == s)
            return -1;
        l->f[i] = (span){s, (size_t)(p - s)};
    }
    l->slots = p;
    l->end = end;
    return 0;
}

/* nodes_addr() of a node with no address (port 0): skipped. */
#define NO_ADDR (-1000)

/* "ip:port@cport[,hostname]" (or "ip:port" before Redis 4): the node's
 * index, NO_ADDR, or a negative aredis_err. */
static long nodes_addr(builder *b, const nodes_line *l, int primary,
                       int healthy)
{
    span a = l->f[1];
    const char *at = memchr(a.p, '@', a.n);
    size_t n = at != NULL ? (size_t)(at - a.p) : a.n;
    const char *colon = NULL;
    for (size_t i = n; i > 0; i--)
        if (a.p[i - 1] == ':') {
            colon = a.p + i - 1;
            break;
        }
    long long port;
    if (colon == NULL ||
        parse_uint((span){colon + 1, (size_t)(a.p + n - colon - 1)}, 65535,
                   &port) != 0)
        return fail(b->err, b->errcap, "CLUSTER NODES: bad address '%.*s'",
                    (int)(a.n > 80 ? 80 : a.n), a.p);
    if (port == 0)
        return NO_ADDR;
    return add_node(b, a.p, (size_t)(colon - a.p), (int)port, 0, l->f[0].p,
                    l->f[0].n, primary, healthy);
}

/* A primary's slots: "N", "N-M"; "[N->-id]" and "[N-<-id]" are
 * migrations in progress, which do not change the owner. */
static int nodes_slots(builder *b, const nodes_line *l, unsigned node,
                       size_t lineno)
{
    long s = -1;
    const char *q = l->slots;
    while (q < l->end) {
        while (q < l->end && *q == ' ')
            q++;
        const char *t = q;
        while (q < l->end && *q != ' ')
            q++;
        if (q == t || *t == '[')
            continue;
        span tok = {t, (size_t)(q - t)};
        const char *dash = memchr(t, '-', tok.n);
        long long lo, hi;
        span a = {t, dash != NULL ? (size_t)(dash - t) : tok.n};
        span z = dash != NULL ? (span){dash + 1, (size_t)(q - dash - 1)} : a;
        if (parse_uint(a, AREDIS_CLUSTER_SLOTS - 1, &lo) != 0 ||
            parse_uint(z, AREDIS_CLUSTER_SLOTS - 1, &hi) != 0)
            return fail(b->err, b->errcap,
                        "CLUSTER NODES: line %zu: bad slot '%.*s'", lineno,
                        (int)(tok.n > 32 ? 32 : tok.n), t);
        if (s < 0) {
            s = add_shard(b, node);
            if (s < 0)
                return (int)s;
        }
        int rc = assign(b, lo, hi, (unsigned)s);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Replicas join their primary's shard (a replica of a primary that serves
 * no slot, or of one the reply does not list, joins none). */
static int nodes_replicas(builder *b, const nodes_line *lines, size_t nlines)
{
    for (size_t i = 0; i < nlines; i++) {
        const nodes_line *l = &lines[i];
        if (l->node < 0 || b->m->nodes[l->node].primary ||
            !has_flag(l->f[2], "slave"))
            continue;
        span master = l->f[3];
        for (size_t k = 0; k < nlines; k++) {
            const nodes_line *pl = &lines[k];
            if (pl->node < 0 || pl->f[0].n != master.n ||
                memcmp(pl->f[0].p, master.p, master.n) != 0)
                continue;
            for (size_t s = 0; s < b->m->nshards; s++) {
                if (b->m->shards[s].primary != (unsigned)pl->node)
                    continue;
                int rc = add_replica(b, (unsigned)s, (unsigned)l->node);
                if (rc != 0)
                    return rc;
            }
            break;
        }
    }
    return 0;
}

int aredis__slotmap_from_nodes(aredis__slotmap **out, const aredis_reply *r,
                               const char *answered_host, char *err,
                               size_t errcap)
{
    builder b;
    nodes_line *lines = NULL;
    size_t nlines = 0, caplines = 0;
    int rc = begin(&b, out, answered_host, err, errcap);
    if (rc != 0)
        return rc;
    if (r == NULL || !is_text(r))
        rc = fail(err, errcap, "CLUSTER NODES: the reply is not text");
    /* Pass 1: split the lines; add primaries and their slots. */
    const char *p = rc == 0 ? r->str : NULL;
    const char *end = rc == 0 ? r->str + r->len : NULL;
    while (rc == 0 && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl != NULL ? nl : end;
        const char *next = nl != NULL ? nl + 1 : end;
        if (e > p && e[-1] == '\r')
            e--;
        if (e == p) {
            p = next;
            continue;
        }
        if (grow((void **)&lines, &caplines, nlines + 1, sizeof *lines) != 0) {
            rc = oom(err, errcap);
            break;
        }
        nodes_line *l = &lines[nlines];
        if (split_line(p, e, l) != 0) {
            rc = fail(err, errcap, "CLUSTER NODES: line %zu is truncated",
                      nlines + 1);
            break;
        }
        if (!valid_id(l->f[0].p, l->f[0].n) || l->f[0].n != 40) {
            rc = fail(err, errcap, "CLUSTER NODES: line %zu: bad node id",
                      nlines + 1);
            break;
        }
        nlines++;
        p = next;
        l->node = -1;
        span flags = l->f[2];
        if (has_flag(flags, "handshake") || has_flag(flags, "noaddr"))
            continue;
        int healthy = !has_flag(flags, "fail") && !has_flag(flags, "fail?");
        int primary = has_flag(flags, "master");
        if (!primary && !has_flag(flags, "slave")) {
            rc = fail(err, errcap, "CLUSTER NODES: line %zu: no role in '%.*s'",
                      nlines, (int)(flags.n > 64 ? 64 : flags.n), flags.p);
            break;
        }
        long x = nodes_addr(&b, l, 0, healthy);
        if (x == NO_ADDR)
            continue;
        if (x < 0) {
            rc = (int)x;
            break;
        }
        l->node = x;
        if (!primary)
            continue;
        rc = nodes_slots(&b, l, (unsigned)x, nlines);
    }
    if (rc == 0)
        rc = nodes_replicas(&b, lines, nlines);
    aredis__free(lines);
    return finish(&b, rc, out);
}

/* ---- redirects -----------------------------------------------------------
 */

int aredis__redirect_parse(const char *msg, size_t len, aredis__redirect *out,
                           char *err, size_t errcap)
{
    int kind;
    size_t i;
    if (len >= 5 && memcmp(msg, "MOVED", 5) == 0 && (len == 5 || msg[5] == ' '))
        kind = AREDIS__REDIRECT_MOVED, i = 5;
    else if (len >= 3 && memcmp(msg, "ASK", 3) == 0 &&
             (len == 3 || msg[3] == ' '))
        kind = AREDIS__REDIRECT_ASK, i = 3;
    else
        return 0;
    const char *what = kind == AREDIS__REDIRECT_MOVED ? "MOVED" : "ASK";
    /* " <slot> <host>:<port>", exactly one space each. */
    if (i >= len || msg[i] != ' ')
        return fail(err, errcap, "truncated %s redirect: no slot", what);
    i++;
    size_t s0 = i;
    while (i < len && msg[i] >= '0' && msg[i] <= '9')
        i++;
    long long slot;
    if (parse_uint((span){msg + s0, i - s0}, AREDIS_CLUSTER_SLOTS - 1, &slot) !=
        0)
        return fail(err, errcap, "malformed %s redirect: bad slot '%.*s'", what,
                    (int)(i - s0 > 16 ? 16 : i - s0), msg + s0);
    if (i >= len || msg[i] != ' ')
        return fail(err, errcap,
                    "truncated %s redirect: no address after "
                    "slot %lld",
                    what, slot);
    i++;
    /* The address runs to the end (a trailing CR/LF is tolerated); the
     * port follows its last ':' (IPv6 addresses hold colons). */
    size_t a0 = i, a1 = len;
    while (a1 > a0 && (msg[a1 - 1] == '\r' || msg[a1 - 1] == '\n'))
        a1--;
    const char *colon = NULL;
    for (size_t k = a1; k > a0; k--)
        if (msg[k - 1] == ':') {
            colon = msg + k - 1;
            break;
        }
    long long port;
    if (colon == NULL)
        return fail(err, errcap, "malformed %s redirect: no port in '%.*s'",
                    what, (int)(a1 - a0 > 64 ? 64 : a1 - a0), msg + a0);
    if (parse_uint((span){colon + 1, (size_t)(msg + a1 - colon - 1)}, 65535,
                   &port) != 0 ||
        port == 0)
        return fail(
            err, errcap, "malformed %s redirect: bad port '%.*s'", what,
            (int)(msg + a1 - colon - 1 > 16 ? 16 : msg + a1 - colon - 1),
            colon + 1);
    size_t hl = (size_t)(colon - (msg + a0));
    const char *h = msg + a0;
    if (hl == 1 && h[0] == '?')
        hl = 0; /* unknown endpoint: the host that answered */
    /* IPv6 in brackets ("[::1]:6379") is accepted too. */
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
        h++, hl -= 2;
    if (hl > 0 && !valid_host(h, hl))
        return fail(err, errcap, "malformed %s redirect: bad host '%.*s'", what,
                    (int)(hl > 64 ? 64 : hl), h);
    out->kind = kind;
    out->slot = (unsigned)slot;
    memcpy(out->host, h, hl);
    out->host[hl] = '\0';
    out->port = (int)port;
    return 1;
}
