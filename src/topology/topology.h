/* Interface of the topology layer to the client: which server each
 * command goes to.
 *
 * A topology owns the nodes (src/node) and answers, per command, one
 * question: which node? It also reacts to what only it understands: a
 * node lost, a redirect (MOVED/ASK/TRYAGAIN in a cluster), a server whose
 * address changed (a sentinel's +switch-master). Standalone is one node;
 * cluster (a slot table over many nodes) and sentinel (one node whose
 * address moves) are new implementations of this table, not edits of the
 * client, which never knows which one it has. */
#ifndef AREDIS_TOPOLOGY_TOPOLOGY_H
#define AREDIS_TOPOLOGY_TOPOLOGY_H

#include "node/node.h"
#include "util/cmdtable.h"

/* route()'s answer for a command the topology kept. */
#define AREDIS__HELD ((aredis__node *)(void *)&aredis__held_marker)
extern const char aredis__held_marker;
/* route()'s answer for a command not encoded yet when the topology needs
 * its bytes to answer (its key, or to hold it): ask again once encoded. */
#define AREDIS__NEEDS_BYTES ((aredis__node *)(void *)&aredis__bytes_marker)
extern const char aredis__bytes_marker;

/* A command as route() sees it. The client asks before encoding it, so
 * that the writer fills the output buffer of the connection it goes to:
 * then bytes is NULL, argv the caller's arguments when it gave them
 * (argc, argv, argvlen as aredis_commandv() takes them), and cls the
 * classification by name when the name alone decides (NULL otherwise).
 * Once encoded, bytes (cmd->cc.len of them) and cls are both set. */
typedef struct aredis__cmdview {
    const aredis__cmdclass *cls;
    const char *bytes;
    int argc;
    const char *const *argv;
    const size_t *argvlen;
} aredis__cmdview;

typedef struct aredis__topology_vt {
    const char *name;
    /* The node for a command (v: what is known of it); NULL when there
     * is none (the caller fails it); AREDIS__HELD when the topology kept
     * the command (no slot map yet, its server being replaced): it sends
     * or completes it later, and takes it back from the deadline through
     * unwait(); before encoding (v->bytes NULL), AREDIS__NEEDS_BYTES when
     * it cannot answer yet, and never AREDIS__HELD: nothing is taken
     * before the bytes exist. */
    aredis__node *(*route)(aredis__topology *t, const aredis__cmd *cmd,
                           const aredis__cmdview *v);
    /* The node for work that names no key (pub/sub, acquire, the default
     * connection); NULL when there is none yet. */
    aredis__node *(*any)(aredis__topology *t);
    /* The nodes, one after the other: first with prev NULL, NULL after
     * the last. */
    aredis__node *(*next)(aredis__topology *t, const aredis__node *prev);
    /* A reply that may be a redirect for cmd, from node `from`: 1 when
     * the topology took the command back (it will be completed later), 0
     * to deliver r. bytes are the command's (NULL when they were not
     * kept: see keep_bytes), good until the topology submits anything:
     * one that keeps the command copies them (aredis__cmd_keep). */
    int (*redirect)(aredis__topology *t, aredis__cmd *cmd, aredis__node *from,
                    const char *bytes, const aredis_reply *r);
    /* Optional: a command it holds (AREDIS__CMD_PENDING) reached its
     * deadline: 1 when it was held here (now released to the caller). */
    int (*unwait)(aredis__topology *t, aredis__cmd *cmd);
    /* A node lost its shared connection (code says why). */
    void (*node_lost)(aredis__topology *t, aredis__node *n, int code);
    /* Optional (NULL: use n->host/n->port as they are). A connection of
     * n is about to look up its address: 0 to go ahead, 1 when the
     * topology is finding it and will answer with aredis__link_located()
     * on every link of n that waits (link->locating). */
    int (*locate)(aredis__topology *t, aredis__node *n);
    /* Cancel everything its nodes hold and free it all. */
    void (*free)(aredis__topology *t);

    /* ---- queries for fan-out and the node API (client/fanout.c) ---- */

    /* Fill out[0..max) with the nodes of a kind (AREDIS_NODES_PRIMARIES,
     * _REPLICAS or _ALL of aredis/cluster.h) and return how many there
     * are (possibly more than max). No primary is listed before the
     * topology knows where the slots are. The pointers are good until
     * control returns to the loop (a map refresh may drop nodes). */
    size_t (*nodes)(aredis__topology *t, int which, aredis__node **out,
                    size_t max);
    /* The primary serving a slot, NULL when not known. */
    aredis__node *(*slot_node)(aredis__topology *t, unsigned slot);
    /* Optional (a topology that learns its nodes: cluster). Hold cmd, a
     * wait of the client's own (aredis__cmd_is_wait(): no bytes), as a
     * command waiting for the map is held: complete it (a status reply)
     * once the topology knows where the slots are, at once when a map
     * arrives; the client's deadline takes it back through unwait(), and
     * free() cancels it like the others. */
    void (*hold_for_map)(aredis__topology *t, aredis__cmd *cmd);
    /* Optional (with hold_for_map). Why there is no map yet, as
     * "host:port: what it said" (the last node that failed to give one),
     * or NULL when nothing has failed yet; good until control returns to
     * the loop. For the message of a wait for the map that timed out. */
    const char *(*map_why)(aredis__topology *t);
} aredis__topology_vt;

/* A record that stands for a wait (hold_for_map), not for a command: it
 * has no bytes. */
static inline int aredis__cmd_is_wait(const aredis__cmd *cmd)
{
    return cmd->cc.len == 0;
}

struct aredis__topology {
    const aredis__topology_vt *vt;
    aredis_client *c;
    /* Commands may be redirected to another node after their reply (a
     * cluster): every connection keeps each command's bytes until its
     * reply (aredis__conn_config.keep_inflight), and redirect() gets them.
     * Without it, only commands that may be re-sent after a lost
     * connection (AREDIS__CMD_RETRY) keep theirs (cmd->cc.copy). A
     * command the topology holds (route() answering AREDIS__HELD), or
     * takes back, needs a copy of its own: aredis__cmd_keep(). */
    int keep_bytes;
};

/* ---- held.c: commands a topology holds --------------------------------------
 */

/* In order, linked through cc.next; each marked AREDIS__CMD_PENDING with
 * no link, so the client's deadline takes it back through unwait(). link
 * shares room with wait_until: set wait_until after the push. */
typedef struct aredis__held {
    aredis__cmd *head, *tail;
} aredis__held;

void aredis__held_push(aredis__held *h, aredis__cmd *cmd);
/* Take cmd out (its PENDING mark too): 1 if it was held here. */
int aredis__held_remove(aredis__held *h, aredis__cmd *cmd);
/* The whole list (still PENDING, linked through cc.next); h is empty. */
aredis__cmd *aredis__held_take(aredis__held *h);

/* ---- standalone.c ---------------------------------------------------------
 */

/* One server, from the client's configuration. NULL when out of memory. */
aredis__topology *aredis__standalone_new(aredis_client *c);

/* ---- cluster.c ------------------------------------------------------------
 */

/* A Redis Cluster from the configuration's seeds (c->cfg.cluster). NULL
 * when out of memory. */
aredis__topology *aredis__cluster_new(aredis_client *c);

/* The wait (ms) before a held cluster command is sent again, after
 * `retries` earlier retries: after a TRYAGAIN (tryagain set) or another
 * cause (CLUSTERDOWN, no map, a node unreachable). Without a deadline a
 * command is retried aredis__cluster_retry_budget() times at most. */
int64_t aredis__cluster_backoff(int tryagain, int retries);
int aredis__cluster_retry_budget(int tryagain);

/* Tests: cluster clients route the commands named (lower case, separated
 * by spaces; their subcommands too) as ones the built-in table does not
 * know, learning their keys from a server; NULL or "" for none. Set
 * before the clients are made. */
void aredis__cluster_test_unknown(const char *names);
/* Tests: a cluster client meets the node host:port as it would a MOVED
 * target (the next map drops it unless it lists it); 0 or an error. */
int aredis__cluster_test_meet(aredis_client *c, const char *host, int port);
/* Tests: the node records a cluster client holds (0 for another client). */
size_t aredis__cluster_test_node_count(aredis_client *c);

/* ---- sentinel.c -----------------------------------------------------------
 */

/* One server whose address the sentinels of the client's configuration
 * name (cfg.more->nsentinels > 0). NULL when out of memory. */
aredis__topology *aredis__sentinel_new(aredis_client *c);

/* ---- shared by the topologies of one node (standalone, sentinel) ------- */

/* nodes and slot_node for a topology whose only node is vt->any(). */
size_t aredis__one_node_nodes(aredis__topology *t, int which,
                              aredis__node **out, size_t max);
aredis__node *aredis__one_node_slot(aredis__topology *t, unsigned slot);

#endif /* AREDIS_TOPOLOGY_TOPOLOGY_H */
