/* A Redis Cluster slot map (topology layer), and the parsers that build
 * one from a server's reply. Pure: no I/O, no loop; everything here works
 * on replies already read.
 *
 * A map is a list of nodes (address, id, role, health), a list of shards
 * (one primary and its replicas, as node indices) and a 16384-entry table
 * slot -> shard, so that routing a slot is one array read.
 *
 * Three sources give the same map:
 *   CLUSTER SHARDS (7.0+)  aredis__slotmap_from_shards()
 *   CLUSTER SLOTS          aredis__slotmap_from_slots()
 *   CLUSTER NODES          aredis__slotmap_from_nodes()
 * in RESP2 or RESP3 alike. An endpoint the server does not know (a NULL,
 * "" or "?" host) is the host that answered, with the reported port: that
 * is what the cluster specification asks of clients, e.g. for nodes behind
 * a load balancer or a node that has not learned its own address yet.
 *
 * Errors: a parser returns 0, or a negative aredis_err (AREDIS_EPROTO for
 * a reply that is not a valid map, AREDIS_ENOMEM) and writes a sentence
 * into err (at most errcap bytes) that says what was wrong. */
#ifndef AREDIS_TOPOLOGY_SLOTMAP_H
#define AREDIS_TOPOLOGY_SLOTMAP_H

#include <stddef.h>
#include <stdint.h>

#include "aredis/cluster.h"
#include "aredis/reply.h"

/* slot[] value of a slot no shard serves. */
#define AREDIS__SLOT_NONE 0xffffu

typedef struct aredis__slotnode {
    char *host;   /* never empty; owned by the map */
    int port;     /* plaintext port, or the only one reported; 0 = none */
    int tls_port; /* CLUSTER SHARDS' tls-port; 0 when not reported */
    char id[41];  /* node id, "" when the reply gave none */
    unsigned char primary; /* 1: serves slots as a primary */
    unsigned char healthy; /* 0: reported failed or still loading */
} aredis__slotnode;

typedef struct aredis__slotshard {
    unsigned primary;       /* index into nodes */
    unsigned first_replica; /* its replicas: replicas[first ... +nreplicas] */
    unsigned nreplicas;
} aredis__slotshard;

typedef struct aredis__slotmap {
    aredis__slotnode *nodes;
    size_t nnodes;
    aredis__slotshard *shards;
    size_t nshards;
    unsigned *replicas; /* node indices, grouped per shard */
    size_t nreplicas;
    size_t covered;                      /* slots that have a shard */
    uint16_t slot[AREDIS_CLUSTER_SLOTS]; /* shard index or AREDIS__SLOT_NONE */
} aredis__slotmap;

/* Build *out from a CLUSTER SHARDS, CLUSTER SLOTS or CLUSTER NODES reply
 * received from answered_host (used for unknown endpoints; must not be
 * empty). On failure *out is NULL. Free with aredis__slotmap_free(). */
int aredis__slotmap_from_shards(aredis__slotmap **out, const aredis_reply *r,
                                const char *answered_host, char *err,
                                size_t errcap);
int aredis__slotmap_from_slots(aredis__slotmap **out, const aredis_reply *r,
                               const char *answered_host, char *err,
                               size_t errcap);
int aredis__slotmap_from_nodes(aredis__slotmap **out, const aredis_reply *r,
                               const char *answered_host, char *err,
                               size_t errcap);

void aredis__slotmap_free(aredis__slotmap *m);

/* The shard serving slot, or NULL when none does (or slot >= 16384). */
const aredis__slotshard *aredis__slotmap_shard(const aredis__slotmap *m,
                                               unsigned slot);

/* The primary node serving slot, or NULL. */
const aredis__slotnode *aredis__slotmap_primary(const aredis__slotmap *m,
                                                unsigned slot);

/* ---- redirects -------------------------------------------------------------
 */

enum { AREDIS__REDIRECT_MOVED = 1, AREDIS__REDIRECT_ASK = 2 };

/* The longest host a redirect may name (a DNS name is at most 253 bytes). */
#define AREDIS__REDIRECT_HOST_MAX 255

typedef struct aredis__redirect {
    int kind;      /* AREDIS__REDIRECT_MOVED or _ASK */
    unsigned slot; /* 0 .. 16383 */
    /* NUL-terminated; "" when the server did not know the endpoint
     * ("MOVED 3999 :6380" or "?"): the caller uses the host that answered. */
    char host[AREDIS__REDIRECT_HOST_MAX + 1];
    int port; /* 1 .. 65535 */
} aredis__redirect;

/* Parse an error reply's text ("MOVED 3999 127.0.0.1:6381",
 * "ASK 3999 ::1:6381", "MOVED 3999 host.example:6381", "MOVED 3999 :6381").
 * Returns 1 and fills *out for a redirect; 0 when the text is not a
 * redirect at all (another error: nothing in *out); AREDIS_EPROTO when it
 * starts like a redirect but is truncated or malformed, with the reason in
 * err. */
int aredis__redirect_parse(const char *msg, size_t len, aredis__redirect *out,
                           char *err, size_t errcap);

#endif /* AREDIS_TOPOLOGY_SLOTMAP_H */
